"""Recall Bridge: CRM callback webhooks in, wolkvox recalls out.

`create_app()` builds everything from settings; nothing happens at import time.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from .delivery.worker import Worker
from .mapping.files import ConfigError, load_sources
from .observability import logs
from .settings import SPOOL_ROOT, Settings, token_problems
from .store import Store, StoreTimeouts, StoreUnavailable
from .store.identity import fingerprint
from .store.spool import Spool
from .timing import rules as timerules

log = logging.getLogger("webhooks")
SPOOL_REPLAY_EVERY = 1.0  # seconds between tries to move spooled requests into the store


@dataclass
class Bridge:
    """What one app holds: settings, compiled sources, the store, and maybe a worker."""

    settings: Settings
    sources: dict[str, Any]
    store: Store
    spool: Spool
    worker: Worker | None = field(default=None)
    diagnostics: dict[str, str] = field(default_factory=dict)  # source -> a setup problem
    breaker: Any = field(default=None, repr=False)  # receiver.Breaker: spool at once when hung
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

    def start_delivery(self, threads: int | None = None) -> Worker:
        """Start delivery threads in this process (once); returns the worker."""
        if self.worker is None:
            self.worker = Worker(self.store, self.sources, self.settings)
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


def load_config(test_config: Mapping[str, Any] | None = None) -> tuple[Settings, dict]:
    """Settings and compiled sources, or ConfigError with one line per problem."""
    try:
        settings = Settings.from_env()
        if test_config:
            settings = settings.with_overrides(test_config)
    except ValueError as err:
        raise ConfigError([str(err)]) from None
    problems = token_problems(settings)
    if problems:
        raise ConfigError(problems)
    return settings, load_sources(settings.mappings_dir, settings)


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app: settings (environment, then `test_config`), mappings, store, routes.

    Raises ConfigError when a setting or mapping is wrong, naming each problem; the store
    is migrated to the newest schema. Delivery threads are started by the server hook
    (gunicorn.conf.py) or `Bridge.start_delivery`, never at import.
    """
    settings, sources = load_config(test_config)
    store = Store(settings.database_url, StoreTimeouts(
        connect=settings.store_connect_timeout, statement=settings.store_statement_timeout,
        pool=settings.store_pool_timeout, lock=settings.store_lock_timeout))
    try:
        store.migrate()
        # known now, while the store answers: the spool needs it when the store does not
        store_fingerprint = fingerprint(store)
    except StoreUnavailable as err:
        raise ConfigError([f"DATABASE_URL: {err}"]) from None
    for source in sources.values():
        if source.verifier.scheme == "none":
            log.warning("source %s accepts unauthenticated requests (auth: none)", source.name)

    app = Flask(__name__)
    app.json.sort_keys = False  # type: ignore[attr-defined]  # answers keep their fields' order
    # One byte over the limit is read, so that a chunked body (no Content-Length), which
    # werkzeug cuts at the limit without an error, can be told from one that fits.
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes + 1
    if settings.trust_forwarded:  # one proxy: its X-Forwarded-For/-Proto/-Host are the truth
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=1, x_proto=1, x_host=1)
    spool = Spool(settings.spool_dir or f"{SPOOL_ROOT}/{store_fingerprint}", store_fingerprint)
    app.extensions["recall_bridge"] = Bridge(settings, sources, store, spool)
    logs.setup(settings)

    from .intake import receiver
    from .observability import metrics
    from .operators import api, cli, console, health

    app.register_blueprint(receiver.bp)
    app.extensions["recall_bridge"].breaker = receiver.Breaker()
    app.register_blueprint(health.bp)
    cli.init_app(app)
    metrics.init_app(app)
    console.init_app(app)
    api.init_app(app)
    return app


__all__ = ["Bridge", "ConfigError", "create_app", "load_config"]
