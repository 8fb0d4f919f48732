"""gunicorn settings; every value can be overridden on the command line or by GUNICORN_CMD_ARGS."""

import os
import sys

from webhooks.server.accesslog import SafeLogger
from webhooks.server.whole_requests import REQUEST_TIMEOUT, WholeRequestWorker

bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# gthread whose threads get only whole requests: a client that stalls mid-request holds a
# buffer, not a thread, and gets a 408 after REQUEST_TIMEOUT seconds
# (webhooks/server/whole_requests.py).
worker_class = WholeRequestWorker.configured(
    request_timeout=float(os.environ.get("REQUEST_TIMEOUT", REQUEST_TIMEOUT)))
threads = int(os.environ.get("GUNICORN_THREADS", "8"))  # ?wait= holds a thread while it waits
timeout = 60
graceful_timeout = 90  # lets a delivery thread finish its call and give back what it claimed
accesslog = "-"
# The query string can carry a shared secret (token schemes): log the path only.
access_log_format = '%(h)s "%(m)s %(U)s" %(s)s %(b)s %(L)ss'
# Escapes control characters in the access log (no forged lines) and redacts query strings
# in both logs (gunicorn quotes a malformed request line, query string and all).
logger_class = SafeLogger


def on_starting(server):
    """Refuse to start, in one line per problem, before any worker boots."""
    if getattr(server.app, "app_uri", "wsgi:app") != "wsgi:app":
        return  # another app under the same settings (the ingest benchmark's baseline)
    from webhooks import ConfigError, load_config

    try:
        load_config()
    except ConfigError as err:
        for problem in err.problems:
            print(f"recall-bridge: {problem}", file=sys.stderr)
        sys.exit(2)


def post_worker_init(worker):
    """Each web worker replays its spool and also delivers, unless DELIVERY_WORKER=false
    (separate `deliver` processes)."""
    bridge = worker.wsgi.extensions.get("recall_bridge")
    if bridge is not None:
        bridge.start_background()


def worker_exit(server, worker):
    bridge = getattr(getattr(worker, "wsgi", None), "extensions", {}).get("recall_bridge")
    if bridge is not None:
        bridge.stop_background()


def child_exit(server, worker):
    """prometheus-client's multiprocess mode: a dead worker's live gauges leave /metrics (its
    counters stay in the sums). The directory is emptied by whoever starts the processes."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
