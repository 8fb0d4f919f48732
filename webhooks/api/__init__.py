"""The admin API under /api/v1 (bearer ADMIN_TOKEN or VIEWER_TOKEN): on with ADMIN_TOKEN."""

from __future__ import annotations

from flask import Flask

from ..access import enabled


def init_app(app: Flask) -> None:
    """Register the API when ADMIN_TOKEN is set."""
    if not enabled(app.extensions["recall_bridge"].settings):
        return
