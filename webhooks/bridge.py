"""What one app holds, and the one way to reach it: `current_bridge()` in a request or a
command, `bridge_of(app)` with the app in hand (flaskr's `get_db()` is the model).

`create_app` (the package's `__init__`) builds the Bridge; every layer above reads it here, and
this module imports only what lies below it: settings, the store, the compiled sources.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from flask import Flask, current_app

from .mapping.source import Source
from .settings import Settings
from .store import Store
from .store.breaker import Breaker
from .store.spool import Spool
from .timing import rules as timerules

log = logging.getLogger(__name__)
EXTENSION = "recall_bridge"  # the key under app.extensions; read by bridge_of() alone
SPOOL_REPLAY_EVERY = 1.0  # seconds between tries to move spooled requests into the store


class Delivery(Protocol):
    """What the bridge asks of its delivery threads (delivery.worker.Worker)."""

    def start(self, threads: int | None = None) -> None: ...

    def stop(self) -> None: ...

    def wake(self) -> None: ...

    def wake_writebacks(self) -> None: ...


@dataclass
class Bridge:
    """What one app holds: settings, compiled sources, the store, and maybe a worker."""

    settings: Settings
    sources: dict[str, Source]
    store: Store
    spool: Spool
    new_delivery: Callable[[Bridge], Delivery] = field(repr=False)
    worker: Delivery | None = field(default=None)
    diagnostics: dict[str, str] = field(default_factory=dict)  # source -> a setup problem
    breaker: Breaker = field(default_factory=Breaker, repr=False)  # spool at once when hung
    _replayer: threading.Thread | None = field(default=None, repr=False)
    _stopped: threading.Event = field(default_factory=threading.Event, repr=False)

    def start_background(self) -> None:
        """What a web process runs beside its requests: delivery (unless DELIVERY_WORKER is
        false) and the spool's replay."""
        if self.settings.delivery_worker:
            self.start_delivery()
        self.start_spool_replayer()

    def start_spool_replayer(self) -> None:
        """Replay spooled requests into the store once it answers (once per process)."""
        if self._replayer is None or not self._replayer.is_alive():
            self._replayer = threading.Thread(target=self._replay_spool, name="spool-replay",
                                              daemon=True)
            self._replayer.start()

    def _replay_spool(self) -> None:
        said = ""
        while not self._stopped.wait(SPOOL_REPLAY_EVERY):
            try:
                self.spool.replay(self.store)
                said = ""
            except Exception as err:  # the thread must outlive any one bad try
                if repr(err) != said:  # once per distinct failure, not every second
                    log.exception("spool replay failed; retrying every %g s",
                                  SPOOL_REPLAY_EVERY)
                    said = repr(err)

    def stop_background(self) -> None:
        self._stopped.set()
        self.stop_delivery()

    def start_delivery(self, threads: int | None = None) -> Delivery:
        """Start delivery threads in this process (once); returns the worker."""
        if self.worker is None:
            self.worker = self.new_delivery(self)
            self.worker.start(threads)
        return self.worker

    def stop_delivery(self) -> None:
        if self.worker is not None:
            self.worker.stop()
            self.worker = None

    def token_states(self, now: float) -> dict[str, dict[str, Any]]:
        """Each token's state (`Store.tokens`), the configured ones first in the order of their
        sources' names, each with `sources` (the names that send through it) and `day` (its
        quota day in its time zone): [] and None for a token only the store still knows."""
        users: dict[str, list[str]] = {}
        days: dict[str, str] = {}
        for name, source in sorted(self.sources.items()):
            users.setdefault(source.target.key, []).append(name)
            days.setdefault(source.target.key, timerules.day(source.target.timezone, now))
        states = self.store.tokens(now, days)
        for key, state in states.items():
            state.update(sources=users.get(key, []), day=days.get(key))
        return states


def bridge_of(app: Flask) -> Bridge:
    """The bridge `create_app` built for `app`."""
    bridge: Bridge = app.extensions[EXTENSION]
    return bridge


def current_bridge() -> Bridge:
    """The bridge of the app handling this request or command."""
    return bridge_of(current_app)
