"""Recall Bridge: CRM callback webhooks in, wolkvox recalls out.

`create_app()` builds everything from settings; nothing happens at import time.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from .bridge import EXTENSION, Bridge, bridge_of, current_bridge
from .delivery.worker import Worker
from .mapping.files import ConfigError, load_sources
from .observability import logs
from .settings import (
    SPOOL_ROOT,
    Settings,
    alert_problems,
    call_results_problems,
    token_problems,
)
from .store import Store, StoreTimeouts, StoreUnavailable
from .store.identity import fingerprint
from .store.spool import Spool

log = logging.getLogger("webhooks")


def load_config(test_config: Mapping[str, Any] | None = None) -> tuple[Settings, dict]:
    """Settings and compiled sources, or ConfigError with one line per problem."""
    try:
        settings = Settings.from_env()
        if test_config:
            settings = settings.with_overrides(test_config)
    except ValueError as err:
        raise ConfigError([str(err)]) from None
    problems = token_problems(settings)
    results_problems, warnings = call_results_problems(settings)
    problems += results_problems + alert_problems(settings)
    for warning in warnings:
        log.warning("%s", warning)
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
    app.extensions[EXTENSION] = Bridge(settings, sources, store, spool, new_delivery=_worker)
    logs.setup(settings)

    from .intake import receiver
    from .operators import api, cli, console, health, scrape

    app.register_blueprint(receiver.bp)
    app.register_blueprint(health.bp)
    cli.init_app(app)
    scrape.init_app(app)
    console.init_app(app)
    api.init_app(app)
    return app


def _worker(bridge: Bridge) -> Worker:
    return Worker(bridge.store, bridge.sources, bridge.settings,
                  spool_depth=lambda: bridge.spool.depth().requests)


__all__ = ["Bridge", "bridge_of", "current_bridge", "ConfigError", "create_app", "load_config"]
