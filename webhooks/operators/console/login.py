"""Signing in with a token, signing out, and switching the console's language."""

from __future__ import annotations

import logging
from typing import Any

from flask import (
    current_app,
    g,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _

from ...bridge import current_bridge
from ..access import role_for
from . import i18n
from .sessions import new_session_id
from .web import bp, fingerprint, https, local_next, now

log = logging.getLogger(__name__)
LANGUAGE_COOKIE_AGE = 365 * 86400  # seconds


@bp.get("/login")
def login() -> Any:
    if g.role is not None:
        return redirect(local_next(request.args.get("next")), 303)
    return render_template("console/login.html", next=request.args.get("next", ""))


@bp.post("/login")
def sign_in() -> Any:
    """Open a session for the role the token names. A wrong token makes this client wait
    longer before its next try (throttle.py); the token is compared in constant time."""
    throttle = current_app.extensions["console"]["throttle"]
    client = request.remote_addr or "-"
    moment = now()
    target = request.form.get("next", "")
    wait = throttle.wait(client, moment)
    if wait:
        return _refused(429, _("Too many wrong tokens from this address: wait %(seconds)s s "
                               "and try again.", seconds=wait), wait, target)
    token = request.form.get("token", "")
    role = role_for(current_bridge().settings, token)
    if role is None:
        wait = throttle.failed(client, moment)
        log.warning("console: wrong token from %s (next try in %d s)", client, wait)
        return _refused(401, _("That token is not valid. You can try again in %(seconds)s s.",
                               seconds=wait), wait, target)
    if role == "admin":  # a viewer's sign-in must not reset the count of admin guesses
        throttle.succeeded(client)
    session.clear()  # a new session (and CSRF token) for every sign-in
    session.update(role=role, proof=fingerprint(token), since=moment, sid=new_session_id())
    log.info("console: %s signed in from %s", role, client)
    return redirect(local_next(target), 303)


def _refused(status: int, message: str, wait: int, target: str) -> Any:
    response = make_response(render_template("console/login.html", error=message,
                                             next=target), status)
    response.headers["Retry-After"] = str(wait)
    return response


@bp.post("/logout")
def logout() -> Any:
    """End the session for good: its id is written as signed out (sessions.py), so that a
    copy of the cookie opens nothing either; then the cookie is cleared."""
    sign_outs = current_app.extensions["console"]["sign_outs"]
    sign_outs.sign_out(current_bridge().store, session["sid"], g.role, now())
    log.info("console: %s signed out", g.role)
    session.clear()
    return redirect(url_for("console.login"), 303)


@bp.get("/language/<code>")
def language(code: str) -> Any:
    """Switch the console's language (a cookie) and go back to the page it was asked from."""
    response = redirect(local_next(request.args.get("next")), 303)
    if code in i18n.LANGUAGES:
        response.set_cookie(i18n.COOKIE, code, max_age=LANGUAGE_COOKIE_AGE, path="/console",
                            httponly=True, samesite="Lax", secure=https())
    return response
