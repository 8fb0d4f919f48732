"""The console's blueprint: who is signed in, CSRF on every POST, the response headers, the
error pages, and what every template is given (the role, the language, time formats)."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import wraps
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import format_timedelta
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from ...bridge import current_bridge
from ...recall import mask_phone
from ..access import may_act
from . import i18n

bp = Blueprint("console", __name__, url_prefix="/console", template_folder="templates",
               static_folder="static")
PUBLIC = frozenset({"console.login", "console.sign_in", "console.language", "console.static"})
JSON_ENDPOINTS = frozenset({"console.capture_json"})
SECTION = {"console.event": "console.events", "console.reveal": "console.events",
           "console.try_source": "console.sources", "console.bulk_confirm": "console.bulk"}
SESSION_MAX_AGE = 12 * 3600  # a sign-in lasts this long (and no longer than the browser)
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
                               "img-src 'self' data:; object-src 'none'; base-uri 'none'; "
                               "form-action 'self'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",  # Flask-WTF compares the referrer over https
}


def now() -> float:
    return current_bridge().settings.clock().timestamp()


def zone() -> ZoneInfo:
    """The operation's time zone (WOLKVOX_TIMEZONE): every time on the console is shown in it."""
    return ZoneInfo(current_bridge().settings.wolkvox_timezone)


def https() -> bool:
    """Whether the operator reaches the bridge over https (the request, or PUBLIC_URL):
    cookies must then be Secure."""
    return request.is_secure or current_bridge().settings.public_url.lower().startswith("https://")


def fingerprint(token: str) -> str:
    """What a session keeps of the token it was opened with: a new token signs it out."""
    key = current_app.secret_key
    key = key if isinstance(key, bytes) else str(key).encode()
    return hmac.new(key, token.encode(), hashlib.sha256).hexdigest()[:32]


def signed_in_role() -> str | None:
    """The role of this request's session, if its token is still the configured one, it is
    younger than SESSION_MAX_AGE and it was not signed out."""
    role = session.get("role")
    settings = current_bridge().settings
    token = {"admin": settings.admin_token, "viewer": settings.viewer_token}.get(role or "")
    proof = session.get("proof")
    if not token or not isinstance(proof, str) or not hmac.compare_digest(
            proof, fingerprint(token)):
        return None
    since = session.get("since")
    if not isinstance(since, int | float) or not 0 <= now() - since <= SESSION_MAX_AGE:
        return None
    sid = session.get("sid")
    if not isinstance(sid, str) or current_app.extensions["console"]["sign_outs"].signed_out(
            current_bridge().store, sid, now()):
        return None  # signed out (sessions.py), here or with a copy of this cookie
    return role


def local_next(target: str | None) -> str:
    """A place to go back to after signing in or switching language: a console path only."""
    # A control character (CR/LF: a header split; tab) or a space is never in a path the
    # console made; urlsplit drops some of them silently, so they are refused first.
    if target and target.isprintable() and " " not in target:
        parts = urlsplit(target)
        if (not parts.scheme and not parts.netloc and parts.path.startswith("/console")
                and "\\" not in target):
            return target
    return url_for("console.overview")


def here() -> str:
    """This page's path and query, to come back to."""
    query = request.query_string.decode("latin-1")
    return request.path + (f"?{query}" if query else "")


@bp.before_request
def guard() -> Any:
    i18n.DOMAIN.as_default()
    g.role = signed_in_role()
    if g.role is None and request.endpoint not in PUBLIC:
        if request.endpoint in JSON_ENDPOINTS:
            return jsonify({"error": "sign in to the console first"}), 401
        return redirect(url_for("console.login", next=here() if request.method == "GET"
                                else None), 303)
    if request.method == "POST":
        current_app.extensions["console"]["csrf"].protect()
    return None


def acting(view: Callable[..., Any]) -> Callable[..., Any]:
    """Only an administrator may do this (retry, cancel, reveal, bulk retry): 403 for others."""

    @wraps(view)
    def checked(*args: Any, **kwargs: Any) -> Any:
        if not may_act(g.get("role")):
            abort(403)
        return view(*args, **kwargs)

    return checked


@bp.after_request
def headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if request.endpoint != "console.static":
        response.headers["Cache-Control"] = "no-store"  # phones and reasons: not for caches
    response.vary.add("Cookie")
    return response


@bp.errorhandler(CSRFError)
def csrf_refused(error: CSRFError) -> tuple[str, int]:
    return error_page(400, _("The form expired or did not come from this console. Go back, "
                             "reload the page and try again."))


@bp.errorhandler(403)
def forbidden(error: HTTPException) -> tuple[str, int]:
    return error_page(403, _("Your token can look but not act: sign in with the "
                             "administrator token to do this."))


@bp.errorhandler(404)
def not_found(error: HTTPException) -> tuple[str, int]:
    return error_page(404, _("There is nothing here."))


def error_page(status: int, message: str) -> tuple[str, int]:
    titles = {400: _("Request refused"), 403: _("Not allowed"), 404: _("Not found")}
    return render_template("console/error.html", title=titles.get(status, str(status)),
                           message=message), status


def local_time(epoch: float | None, seconds: bool = False) -> str:
    """Epoch seconds as wall time in the operation's zone."""
    if not epoch:
        return "-"
    return datetime.fromtimestamp(epoch, zone()).strftime(
        "%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def duration(seconds: float | None) -> str:
    """A length of time in the page's language ("3 minutes", "3 minutos")."""
    if seconds is None:
        return "-"
    return format_timedelta(timedelta(seconds=max(seconds, 0)), threshold=1.1)


@bp.context_processor
def page_context() -> dict[str, Any]:
    role = g.get("role")
    return {
        "role": role,
        "role_label": i18n.label(i18n.ROLE_LABELS, role),
        "can_act": may_act(role),
        "lang": i18n.current(),
        "languages": i18n.LANGUAGES,
        "here": here(),
        "active": SECTION.get(request.endpoint or "", request.endpoint),
        "timezone": current_bridge().settings.wolkvox_timezone,
        "status_label": lambda s: i18n.label(i18n.STATUS_LABELS, s),
        "status_options": lambda values: [(v, i18n.label(i18n.STATUS_LABELS, v))
                                          for v in values],
        "outcome_label": lambda s: i18n.label(i18n.OUTCOME_LABELS, s),
        "writeback_label": lambda s: i18n.label(i18n.WRITEBACK_LABELS, s),
        "moment_label": lambda s: i18n.label(i18n.MOMENT_LABELS, s),
        "call_result": i18n.call_result,
        "result_options": [(k, str(v)) for k, v in i18n.RESULT_FILTERS.items()],
        "reason": i18n.reason,
        "action_label": lambda s: i18n.label(i18n.ACTION_LABELS, s),
        "actor_label": lambda s: i18n.label(i18n.ACTOR_LABELS, s),
        "pairs": lambda values: [(v, v) for v in values],
        "masked": mask_phone,
        "local": local_time,
        "duration": duration,
    }
