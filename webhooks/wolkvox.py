"""The only module that speaks HTTP to wolkvox: one PUT per recall, and what its answer means.

Every answer becomes either `Delivered` or one of the `WolkvoxError` kinds below, named by
what the worker should do. requests' exceptions are translated here and go no further.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import requests

from .recall import Target, request_parts

RECALL_PATH = "/api/v2/campaign.php"
MSG_LIMIT = 500  # longest wolkvox msg or body excerpt kept with an attempt


@dataclass(frozen=True)
class Answer:
    """What wolkvox said, whatever it was."""

    http_status: int | None
    code: int | None
    msg: str
    latency_ms: float


class WolkvoxError(Exception):
    """Base of every non-delivery; `answer` holds what wolkvox said, `reason` why we decided."""

    counted = True  # does it count as a failed attempt of the event?

    def __init__(self, reason: str, answer: Answer):
        super().__init__(reason)
        self.reason = reason
        self.answer = answer


class RetryLater(WolkvoxError):
    """Transient (transport error, timeout, 5xx, maintenance 403, unreadable body): back off."""


class RetrySoon(WolkvoxError):
    """Refused for concurrency: try again in a second or two; not a failed attempt."""

    counted = False


class QuotaExceeded(WolkvoxError):
    """The token's daily quota is used up: hold the token until the quota resets."""

    counted = False


class TokenRejected(WolkvoxError):
    """The token is missing, invalid or expired: hold it and probe slowly; nothing is lost."""

    counted = False


class Rejected(WolkvoxError):
    """wolkvox refused this recall for good (400): the event fails with wolkvox's message."""


@dataclass(frozen=True)
class Delivered:
    answer: Answer


def new_session(base_url: str) -> requests.Session:
    """A session for one worker thread. Proxy and CA settings are read from the environment
    once, here, instead of on every call (requests' trust_env costs ~1 ms a call)."""
    session = requests.Session()
    session.proxies.update(requests.utils.get_environ_proxies(base_url))
    session.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get(
        "CURL_CA_BUNDLE") or True
    session.trust_env = False
    return session


def send_recall(session: requests.Session, target: Target, recall: Mapping[str, str],
                timeouts: tuple[float, float]) -> Delivered:
    """PUT one recall; return Delivered or raise the WolkvoxError kind that says what to do."""
    query, body = request_parts(recall)
    started = time.perf_counter()
    try:
        response = session.put(
            target.base_url + RECALL_PATH, params=query, json=body, timeout=timeouts,
            headers={"wolkvox-token": target.token}, allow_redirects=False,
        )
    except requests.Timeout as err:
        # Ambiguous (the recall may be set), but re-sending the same recall is harmless.
        answer = _answer(None, None, "", started)
        raise RetryLater(f"timeout: {type(err).__name__}", answer) from None
    except requests.RequestException as err:
        raise RetryLater(f"transport error: {type(err).__name__}",
                         _answer(None, None, "", started)) from None
    return classify(response.status_code, response.content, _elapsed(started))


def classify(http_status: int, content: bytes, latency_ms: float) -> Delivered:
    """wolkvox-api.md's error table as code: Delivered, or raise the matching WolkvoxError."""
    data = _json(content)
    code = _int(data.get("code")) if data is not None else None
    msg = str(data.get("msg") or data.get("error") or "") if data is not None else ""
    answer = Answer(http_status, code, (msg or _excerpt(content))[:MSG_LIMIT], latency_ms)
    upper = msg.upper()
    if 200 <= http_status < 300:
        if code == 202:
            return Delivered(answer)
        raise RetryLater(f"HTTP {http_status} without code 202 in the body", answer)
    if data is None and http_status not in (400, 401):
        raise RetryLater(f"HTTP {http_status} with a body that is not wolkvox JSON", answer)
    if http_status == 400:
        raise Rejected(f"wolkvox refused the recall: {answer.msg or 'HTTP 400'}", answer)
    if http_status == 401 or "VALIDATE TOKEN" in upper:
        raise TokenRejected(f"token rejected: {answer.msg or f'HTTP {http_status}'}", answer)
    if http_status == 403 and "SIMULTANEOUS" in upper:
        raise RetrySoon(f"refused for concurrency: {msg}", answer)
    if http_status == 403 and "TOKEN LIMIT EXCEEDED" in upper:
        raise QuotaExceeded(f"daily quota used up: {msg}", answer)
    raise RetryLater(f"HTTP {http_status}: {answer.msg or 'no message'}", answer)


def _json(content: bytes) -> dict[str, Any] | None:
    try:
        data = json.loads(content)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _excerpt(content: bytes) -> str:
    return " ".join(content[:200].decode("utf-8", "replace").split())


def _elapsed(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


def _answer(status: int | None, code: int | None, msg: str, started: float) -> Answer:
    return Answer(status, code, msg, _elapsed(started))
