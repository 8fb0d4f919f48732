"""What every part of the admin API shares: bearer-token roles, admin-only actions, JSON errors
in one shape (ErrorSchema), and the documentation of those errors."""

from __future__ import annotations

import logging
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from flask import Response, current_app, jsonify, request
from flask_smorest import Blueprint
from werkzeug.exceptions import HTTPException

from ...bridge import current_bridge
from ...reasons import params_from
from ...store import StoreRefused, StoreUnavailable
from ..access import ADMIN, may_act, role_for, throttle_of
from .schemas import ErrorSchema

log = logging.getLogger(__name__)
ACTOR = "api-admin"  # who the audit log names for every action taken through the API
REALM = 'Bearer realm="recall-bridge"'
RETRY_AFTER = "30"  # seconds a client should wait when the store is down


def reasoned(row: dict[str, Any]) -> dict[str, Any]:
    """A stored row (an event, an attempt, a hold) with its reason's code, and its parameters
    read back from their JSON text (ReasonedSchema)."""
    return {**row, "reason_code": row.get("reason_code"),
            "reason_params": params_from(row.get("reason_params"))}


def blueprint(name: str, description: str) -> Blueprint:
    """A blueprint of the API: every request is authenticated, every error is JSON."""
    blp = Blueprint(name, __name__, description=description)
    blp.before_request(authenticate)
    blp.after_request(not_cached)
    blp.register_error_handler(HTTPException, http_error)
    blp.register_error_handler(StoreUnavailable, store_error)
    blp.register_error_handler(RecursionError, too_deep)
    blp.register_error_handler(StoreRefused, store_error)
    return blp


def authenticate() -> Response | None:
    """401 without a valid token (saying so in WWW-Authenticate), 403 when a viewer asks for
    an action; None lets the request through."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return error(401, "send Authorization: Bearer <ADMIN_TOKEN or VIEWER_TOKEN>",
                     {"WWW-Authenticate": REALM})
    throttle = throttle_of(current_app)
    client = request.remote_addr or "-"
    now = current_bridge().settings.clock().timestamp()
    wait = throttle.wait(client, now)
    if wait:
        return error(429, f"too many wrong tokens from this address: wait {wait} s and try "
                     "again", {"Retry-After": str(wait)})
    role = role_for(current_bridge().settings, token)
    if role is None:
        wait = throttle.failed(client, now)
        log.warning("api: wrong token from %s (next try in %d s)", client, wait)
        return error(401, "the token is neither ADMIN_TOKEN nor VIEWER_TOKEN",
                     {"WWW-Authenticate": f'{REALM}, error="invalid_token"',
                      "Retry-After": str(wait)})
    if role == ADMIN:  # not a viewer's: its token would reset the count of admin guesses
        throttle.succeeded(client)
    view = current_app.view_functions.get(request.endpoint or "")
    if getattr(view, "admin_only", False) and not may_act(role):
        return error(403, "this action needs the ADMIN_TOKEN; the viewer token reads only")
    return None


def too_deep(err: RecursionError) -> Response:
    """A JSON body nested too deeply for Python's parser, which recurses (the hook answers
    such a body 400 too; unhandled, it was a 500)."""
    return error(400, "the JSON body is nested too deeply to be read: send a flatter one")


def not_cached(response: Response) -> Response:
    """No answer of the API is for a cache: phones (the reveal's in full), reasons, bodies."""
    response.headers["Cache-Control"] = "no-store"
    return response


def admin_only(func: Callable[..., Any]) -> Callable[..., Any]:
    """Mark a view as an action: admins only (the mark survives flask-smorest's wrappers)."""
    func.admin_only = True  # type: ignore[attr-defined]
    return func


def error(code: int, message: str, headers: dict[str, str] | None = None,
          errors: dict[str, Any] | None = None) -> Response:
    """An error answer in ErrorSchema's shape."""
    body: dict[str, Any] = {"code": code, "status": HTTPStatus(code).phrase, "message": message}
    if errors:
        body["errors"] = errors
    response = jsonify(body)
    response.status_code = code
    response.headers.update(headers or {})
    return response


def http_error(err: HTTPException) -> Response:
    """Any HTTP error raised in a view (abort, webargs' 400 and 422) as JSON."""
    data = getattr(err, "data", None) or {}
    errors = data.get("errors") or data.get("messages")
    code = err.code or 500
    message = data.get("message") or (
        "the request's parameters or body are not valid: see errors" if errors
        else err.description or HTTPStatus(code).phrase)
    return error(code, message, data.get("headers"), errors)


def store_error(err: Exception) -> Response:
    return error(503, f"the store is unavailable: {err}; retry later",
                 {"Retry-After": RETRY_AFTER})


def documents(blp: Blueprint, *codes: int) -> Callable[[Callable[..., Any]], Any]:
    """Document the error answers a view can give, each in ErrorSchema's shape."""
    def decorate(func: Callable[..., Any]) -> Any:
        for code in (*codes, 429) if 401 in codes else codes:
            headers = ({"WWW-Authenticate": {"description": "Bearer",
                                             "schema": {"type": "string"}}}
                       if code == 401 else None)
            func = blp.alt_response(code, schema=ErrorSchema, description=DESCRIBED[code],
                                    headers=headers)(func)
        return func
    return decorate


DESCRIBED = {
    400: "the body is not JSON (or is nested too deeply to read)",
    401: "no token, or not a valid one (WWW-Authenticate says which)",
    403: "an action asked with the viewer token",
    404: "no such event or source",
    429: "too many wrong tokens from this address: wait Retry-After seconds",
    409: "the event cannot do that in its status (the message says why)",
    422: "a parameter or the body is not valid (errors says which)",
}
