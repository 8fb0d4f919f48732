"""The admin API under /api/v1 (bearer ADMIN_TOKEN or VIEWER_TOKEN): on with ADMIN_TOKEN.

The console's reads and actions as JSON, described by an OpenAPI 3 document at
/api/v1/openapi.json made by flask-smorest from the marshmallow schemas in schemas.py. The
document is public (it holds no data); every other path wants a token (common.py).
"""

from __future__ import annotations

from flask import Flask, Response, request
from flask_smorest import Api
from werkzeug.exceptions import HTTPException

from ...bridge import bridge_of
from ..access import enabled
from . import bridge, events
from .common import error
from .schemas import ErrorSchema

PREFIX = "/api/v1"
TITLE = "Recall Bridge admin API"
VERSION = "1"
OPENAPI_VERSION = "3.0.3"
SECURITY = {"bearerAuth": {"type": "http", "scheme": "bearer",
                           "description": "ADMIN_TOKEN (everything) or VIEWER_TOKEN (reads)"}}


class BridgeApi(Api):
    """flask-smorest's Api, with errors made JSON only under /api/v1: its default would turn
    every error of the app (hooks, console) into its own JSON."""

    ERROR_SCHEMA = ErrorSchema

    def _register_error_handlers(self) -> None:
        """None app-wide: each blueprint has its own (common.blueprint), and _unrouted."""


def init_app(app: Flask) -> None:
    """Register the API when ADMIN_TOKEN is set."""
    if not enabled(bridge_of(app).settings):
        return
    app.config.update(
        API_TITLE=TITLE, API_VERSION=VERSION, OPENAPI_VERSION=OPENAPI_VERSION,
        OPENAPI_URL_PREFIX=PREFIX, OPENAPI_JSON_PATH="openapi.json",
        API_SPEC_OPTIONS={"security": [{"bearerAuth": []}],
                          "components": {"securitySchemes": SECURITY}})
    api = BridgeApi(app)
    app.before_request(_unrouted)
    for blp in (events.bp, bridge.bp):
        api.register_blueprint(blp, url_prefix=PREFIX)


def _unrouted() -> Response | None:
    """A path under /api/v1 that no route takes, or a method it does not take: JSON like
    every other answer of the API (blueprint error handlers never see these)."""
    failed = request.routing_exception
    inside = request.path == PREFIX or request.path.startswith(PREFIX + "/")
    if not inside or not isinstance(failed, HTTPException) or (failed.code or 0) < 400:
        return None
    allow = {name: value for name, value in failed.get_headers() if name == "Allow"}
    return error(failed.code or 404, failed.description or "", allow)
