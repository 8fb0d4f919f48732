"""What operators use: the console, the admin API, the flask commands, /readyz, and the
one place for their actions (operations.py)."""
