"""The operator console under /console (see webhooks/console/views.py): on with ADMIN_TOKEN."""

from __future__ import annotations

import logging

from flask import Flask

from ..access import enabled

log = logging.getLogger(__name__)


def init_app(app: Flask) -> None:
    """Register the console when ADMIN_TOKEN is set; otherwise say how to turn it on."""
    settings = app.extensions["recall_bridge"].settings
    if not enabled(settings):
        log.info("console off: set ADMIN_TOKEN (and optionally VIEWER_TOKEN) to open /console")
        return
