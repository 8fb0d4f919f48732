"""gunicorn settings; every value can be overridden on the command line or by GUNICORN_CMD_ARGS."""

import os
import sys

bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "8"))  # ?wait= holds a thread while it waits
timeout = 60
graceful_timeout = 90  # lets a delivery thread finish its call and give back what it claimed
accesslog = "-"
# The query string can carry a shared secret (token schemes): log the path only.
access_log_format = '%(h)s "%(m)s %(U)s" %(s)s %(b)s %(L)ss'


def on_starting(server):
    """Refuse to start, in one line per problem, before any worker boots."""
    from webhooks import ConfigError, load_config

    try:
        load_config()
    except ConfigError as err:
        for problem in err.problems:
            print(f"recall-bridge: {problem}", file=sys.stderr)
        sys.exit(2)


def post_worker_init(worker):
    """Each web worker also delivers, unless DELIVERY_WORKER=false (separate `deliver`)."""
    bridge = worker.wsgi.extensions["recall_bridge"]
    if bridge.settings.delivery_worker:
        bridge.start_delivery()


def worker_exit(server, worker):
    bridge = getattr(worker, "wsgi", None)
    if bridge is not None and hasattr(bridge, "extensions"):
        bridge.extensions["recall_bridge"].stop_delivery()
