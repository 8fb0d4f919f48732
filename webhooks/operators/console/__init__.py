"""The operator console under /console: on with ADMIN_TOKEN (VIEWER_TOKEN: read only).

Server-rendered pages (Jinja), usable without JavaScript, in English and Spanish. Every page
reads through the store's views and every action goes through `webhooks.operators.operations`, which
writes the audit log; the console has no SQL of its own.

Modules: `web.py` (the blueprint: who is signed in, CSRF, headers, helpers), `login.py`
(sign in and out, the language switch), `throttle.py` (failed sign-ins slowed down per client),
`sessions.py` (a signed-out session stays out, in every process), `overview.py` and
`chart.py` (today's figures, the tokens, the 48 h chart), `events.py` (the
events pages and the actions on one event), `bulk.py`, `sources.py` and `playground.py`
(each mapping, and what it makes of a body), `capture.py` (test events as they arrive),
`filters.py` (the events filter form), `i18n.py` (languages, labels).

Translations: `translations/es/LC_MESSAGES/console.po`, compiled to `console.mo` (both kept
in git; English is the source text). After changing a visible text, from the repository's root:

    .venv/bin/pybabel extract -F webhooks/operators/console/babel.cfg -k lazy_gettext \
        --no-location --sort-output -o /tmp/console.pot webhooks/operators/console
    .venv/bin/pybabel update -D console -N -i /tmp/console.pot \
        -d webhooks/operators/console/translations
    (translate the new entries in console.po)
    .venv/bin/pybabel compile -D console -d webhooks/operators/console/translations

tests/test_console.py fails when a text has no Spanish translation or a .mo is older than its
.po.
"""

from __future__ import annotations

import hashlib
import hmac
import logging

import click
from flask import Flask
from flask.sessions import SecureCookieSessionInterface
from flask_babel import Babel
from flask_wtf.csrf import CSRFProtect

from ...bridge import bridge_of
from ..access import enabled, throttle_of
from . import i18n
from .sessions import SignOuts
from .web import SESSION_MAX_AGE, https

log = logging.getLogger(__name__)
SESSION_COOKIE = "console_session"
SECRET_LABEL = b"recall-bridge console session key"  # HMAC message: the key's purpose


class ConsoleSessions(SecureCookieSessionInterface):
    """The console's signed session cookie: its own name and path, HttpOnly, SameSite=Strict,
    and Secure when the bridge is reached over https (the request, or PUBLIC_URL)."""

    def get_cookie_name(self, app: Flask) -> str:
        return SESSION_COOKIE

    def get_cookie_path(self, app: Flask) -> str:
        return "/console"

    def get_cookie_httponly(self, app: Flask) -> bool:
        return True

    def get_cookie_samesite(self, app: Flask) -> str:
        return "Strict"

    def get_cookie_secure(self, app: Flask) -> bool:
        return https()


def init_app(app: Flask) -> None:
    """Register the console when ADMIN_TOKEN is set; otherwise say how to turn it on."""
    settings = bridge_of(app).settings
    # said when a server starts, not before every command of the CLI
    say = log.debug if click.get_current_context(silent=True) else log.info
    if not enabled(settings):
        say("console off: set ADMIN_TOKEN (and optionally VIEWER_TOKEN) to open /console")
        return
    if not app.secret_key:
        # Derived, not random: every gunicorn worker (and machine) with the same ADMIN_TOKEN
        # reads the others' session cookies, and changing the token signs everyone out.
        app.secret_key = hmac.new(settings.admin_token.encode(), SECRET_LABEL,
                                  hashlib.sha256).hexdigest()
    if type(app.session_interface) is SecureCookieSessionInterface:
        app.session_interface = ConsoleSessions()
    # CSRF is checked by the console's own before_request (web.py), so that webhooks and the
    # JSON API, which no browser form posts to, are never checked.
    app.config["WTF_CSRF_CHECK_DEFAULT"] = False
    app.config.setdefault("WTF_CSRF_TIME_LIMIT", None)  # as long as the session lasts
    csrf = app.extensions.get("csrf") or CSRFProtect(app)
    babel = app.extensions.get("babel")
    if babel is None:
        Babel(app, locale_selector=i18n.select_locale)
    else:
        babel.locale_selector = i18n.chained(babel.locale_selector)
    app.extensions["console"] = {"csrf": csrf, "throttle": throttle_of(app),
                                 "sign_outs": SignOuts(SESSION_MAX_AGE)}

    from . import bulk, capture, events, login, overview, sources  # noqa: F401  (routes)
    from .web import bp

    app.register_blueprint(bp)
    say("console on at /console (%s)", "admin and viewer tokens"
             if settings.viewer_token else "admin token")
