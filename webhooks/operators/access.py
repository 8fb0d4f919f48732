"""Who may see and do what in the console and the admin API: a token names a role.

ADMIN_TOKEN gives every read and action, VIEWER_TOKEN reads only; with no ADMIN_TOKEN the
console and the API are off (404). Tokens are compared in constant time, every one of them,
so timing does not tell which role a guess came close to.
"""

from __future__ import annotations

import hmac
from typing import Any

from ..settings import Settings

ADMIN = "admin"
VIEWER = "viewer"


def enabled(settings: Settings) -> bool:
    return bool(settings.admin_token)


def role_for(settings: Settings, token: str | None) -> str | None:
    """"admin", "viewer", or None for a token that is neither (or missing)."""
    given = (token or "").encode()
    admin = hmac.compare_digest(given, settings.admin_token.encode())
    viewer = bool(settings.viewer_token) & hmac.compare_digest(
        given, settings.viewer_token.encode())
    if not given or not settings.admin_token:
        return None
    return ADMIN if admin else VIEWER if viewer else None


def throttle_of(app: Any) -> Any:
    """The app's one throttle of wrong tokens (console/throttle.py), shared by the console's
    sign-in and the API's bearer tokens: a guesser gets no fresh budget by switching."""
    from .throttle import Throttle

    return app.extensions.setdefault("token_throttle", Throttle())


def may_act(role: str | None) -> bool:
    """Retry, cancel, reveal, bulk actions: admins only."""
    return role == ADMIN
