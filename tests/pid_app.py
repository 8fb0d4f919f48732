"""A Flask app that answers every GET with the pid of the worker that served it: served by the
shipped gunicorn settings, it shows how connections are shared out (tests/test_server.py)."""

import os

from flask import Flask

app = Flask(__name__)


@app.get("/", defaults={"path": ""})
@app.get("/<path:path>")
def pid(path: str) -> str:
    return str(os.getpid())
