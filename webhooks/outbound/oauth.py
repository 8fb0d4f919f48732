"""OAuth 2 tokens for write-backs, with Authlib: a connected app's client credentials
(Salesforce) or a refresh token (Zoho). One token per credentials and process, cached,
renewed LEEWAY seconds before it expires (or, when the server gives no lifetime, as
Salesforce's client credentials do not, when a call is refused with 401), and never logged.

A token endpoint that refuses the credentials (400 invalid_client or invalid_grant, 401) is a
credentials refusal: the source's write-backs are held and probed, as for a static token. A
fault reaching it is a passing one: retried with backoff.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import requests
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.requests_client import OAuth2Session

from .. import reasons
from ..mapping.writeback import OAuth2
from .writeback import WritebackRefused, WritebackRetry

LEEWAY = 60.0  # a token this close to its expiry is renewed first


class TokenCache:
    """The process's tokens, by credentials; safe across the write-back threads."""

    def __init__(self, clock: Any = time.time):
        self.clock = clock
        self._tokens: dict[tuple[str, str, str], dict[str, Any]] = {}
        self._lock = threading.Lock()

    def header(self, spec: OAuth2, timeouts: tuple[float, float],
               what: str) -> tuple[str, str]:
        """(header name, value) carrying a valid token for `spec`; fetched when none is
        cached or it expires within LEEWAY."""
        with self._lock:
            token = self._tokens.get(spec.key)
        if token is None or (token.get("expires_at") and
                             float(token["expires_at"]) - LEEWAY <= self.clock()):
            token = self._fetch(spec, timeouts, what)
            with self._lock:
                self._tokens[spec.key] = token
        return spec.header, f"{spec.prefix} {token['access_token']}".strip()

    def forget(self, spec: OAuth2) -> None:
        """The CRM refused the token: the next call fetches a new one."""
        with self._lock:
            self._tokens.pop(spec.key, None)

    def _fetch(self, spec: OAuth2, timeouts: tuple[float, float], what: str) -> dict[str, Any]:
        client = OAuth2Session(spec.client_id, spec.client_secret, scope=spec.scope,
                               token_endpoint_auth_method="client_secret_post")  # noqa: S106
        client.trust_env = False
        extra = {"refresh_token": spec.refresh_token} if spec.grant == "refresh_token" else {}
        try:
            token = client.fetch_token(spec.token_url, grant_type=spec.grant,
                                       timeout=timeouts, allow_redirects=False, **extra)
        except OAuthError as err:  # the server answered an OAuth error: the credentials
            raise WritebackRefused(reasons.WRITEBACK_TOKEN_REFUSED(
                what=what, host=_host(spec), error=str(err.error)[:64])) from None
        except (requests.RequestException, ValueError, OSError) as err:
            raise WritebackRetry(reasons.WRITEBACK_TOKEN_FAILED(
                what=what, host=_host(spec), error=type(err).__name__)) from None
        finally:
            client.close()
        if not isinstance(token, dict) or not token.get("access_token"):
            raise WritebackRetry(reasons.WRITEBACK_TOKEN_FAILED(
                what=what, host=_host(spec), error="no access_token"))
        return dict(token)


def _host(spec: OAuth2) -> str:
    return spec.token_url.split("/", 3)[2] if "://" in spec.token_url else spec.token_url
