"""What every CRM API look-alike of the tests shares: a Flask app served on loopback in a
thread, the calls it was asked, and error statuses queued for the next calls."""

from __future__ import annotations

import threading
from typing import Any, Self

from flask import Flask
from werkzeug.serving import make_server


class Lookalike:
    """Subclasses set their records, then call `super().__init__()`, and build their routes
    in `_build` (recording in `calls`, answering `failures` first); `_forget` clears the
    records."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.failures: list[int] = []
        self.calls: list[dict[str, Any]] = []  # what each request asked for
        self.app = self._build()
        self.server = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _build(self) -> Flask:
        raise NotImplementedError

    def _forget(self) -> None:
        raise NotImplementedError

    def start(self) -> Self:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()

    def reset(self) -> None:
        with self.lock:
            self._forget()
            self.failures.clear()
            self.calls.clear()

    def fail_next(self, status: int = 500, times: int = 1) -> None:
        """The next `times` calls (with good credentials) answer `status` instead."""
        with self.lock:
            self.failures += [status] * times
