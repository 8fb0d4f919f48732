"""The gunicorn side: a worker whose threads get whole requests only, and its logger."""
