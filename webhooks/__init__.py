"""Recall Bridge: CRM callback webhooks in, wolkvox recalls out.

`create_app()` builds everything from settings; nothing happens at import time.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from .delivery import Worker
from .mapping.files import ConfigError, load_sources
from .settings import Settings
from .store import Store, StoreUnavailable

log = logging.getLogger("webhooks")


@dataclass
class Bridge:
    """What one app holds: settings, compiled sources, the store, and maybe a worker."""

    settings: Settings
    sources: dict[str, Any]
    store: Store
    worker: Worker | None = field(default=None)

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


def load_config(test_config: Mapping[str, Any] | None = None) -> tuple[Settings, dict]:
    """Settings and compiled sources, or ConfigError with one line per problem."""
    try:
        settings = Settings.from_env()
        if test_config:
            settings = settings.with_overrides(test_config)
    except ValueError as err:
        raise ConfigError([str(err)]) from None
    return settings, load_sources(settings.mappings_dir, settings)


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app: settings (environment, then `test_config`), mappings, store, routes.

    Raises ConfigError when a setting or mapping is wrong, naming each problem; the store
    is migrated to the newest schema. Delivery threads are started by the server hook
    (gunicorn.conf.py) or `Bridge.start_delivery`, never at import.
    """
    settings, sources = load_config(test_config)
    store = Store(settings.database_url)
    try:
        store.migrate()
    except StoreUnavailable as err:
        raise ConfigError([f"DATABASE_URL: {err}"]) from None
    for source in sources.values():
        if source.verifier.scheme == "none":
            log.warning("source %s accepts unauthenticated requests (auth: none)", source.name)

    app = Flask(__name__)
    # One byte over the limit is read, so that a chunked body (no Content-Length), which
    # werkzeug cuts at the limit without an error, can be told from one that fits.
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes + 1
    if settings.trust_forwarded:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_proto=1, x_host=1)  # type: ignore[method-assign]
    app.extensions["recall_bridge"] = Bridge(settings, sources, store)
    _logging()

    from . import cli, health, receiver

    app.register_blueprint(receiver.bp)
    app.register_blueprint(health.bp)
    cli.init_app(app)
    return app


def _logging() -> None:
    if not log.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)


__all__ = ["Bridge", "ConfigError", "create_app", "load_config"]
