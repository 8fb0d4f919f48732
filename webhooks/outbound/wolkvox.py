"""The only module that speaks HTTP to wolkvox: one PUT per recall, and what its answer means.

Every answer becomes either `Delivered` or one of the `WolkvoxError` kinds below, each a
member of the outbound family (errors.py) that names what the worker does. requests',
urllib3's and http.client's exceptions, and what parsing the body raises, are translated here
and go no further (the worker's catch-all is for bugs).
A call we stopped waiting for, and a SIMULTANEOUS refusal, set `Call.rest`: how long the slot
must stay unused.
"""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, NoReturn

import requests
import urllib3.exceptions

from .. import reasons
from ..recall import Target, mask_phones_in, request_parts
from . import errors
from .deadline import Call, CallAborted, deadline
from .errors import Answer  # what wolkvox said: its own answers are read here

RECALL_PATH = "/api/v2/campaign.php"
MSG_LIMIT = 500  # longest wolkvox msg or body excerpt kept with an attempt
ANSWER_LIMIT = 64 * 1024  # wolkvox answers in a few hundred bytes; more is not read
MAX_RETRY_AFTER = 6 * 3600.0  # a Retry-After further out than this is taken as this
CALL_LIMIT = 60.0  # wolkvox's own limit for one call (wolkvox-api.md): it works no longer
SIMULTANEOUS_PAUSE = 1.5  # a slot refused for concurrency rests this long (lifecycle.RETRY_SOON)
# What reading an answer can raise besides requests' own: urllib3 reads the body (a reset or
# a close mid-body, a broken chunk, a body that is not the gzip it says), http.client parses
# it; requests translates these on its own reads only, and we read `raw`.
_READ_ERRORS = (requests.RequestException, urllib3.exceptions.HTTPError,
                http.client.HTTPException, OSError)
_TIMEOUTS = (requests.Timeout, urllib3.exceptions.TimeoutError, TimeoutError)


class WolkvoxError(errors.OutboundError):
    """Base of every non-delivery; `answer` holds what wolkvox said, `reason` why we decided."""

    answer: Answer


class RetryLater(WolkvoxError, errors.RetryLater):
    """Transient (transport error, timeout, 5xx, maintenance 403, unreadable body): back off,
    and not before `after` seconds when wolkvox said so (429 or 503 with Retry-After)."""


class RetrySoon(WolkvoxError, errors.RetrySoon):
    """Refused for concurrency: try again in a second or two; not a failed attempt."""


class QuotaExceeded(WolkvoxError, errors.HoldQuota):
    """The token's daily quota is used up: hold the token until the quota resets."""


class TokenRejected(WolkvoxError, errors.HoldCredentials):
    """The token is missing, invalid or expired: hold it and probe slowly; nothing is lost."""


class Rejected(WolkvoxError, errors.GiveUp):
    """wolkvox refused this recall for good (400): the event fails with wolkvox's message."""


@dataclass(frozen=True)
class Delivered:
    answer: Answer


def send_recall(session: requests.Session, target: Target, recall: Mapping[str, str],
                timeouts: tuple[float, float], call: Call | None = None) -> Delivered:
    """PUT one recall; return Delivered or raise the WolkvoxError kind that says what to do.

    The whole call, connect to last byte, ends within the read timeout (`timeouts[1]`, 60 s:
    wolkvox's own limit for one call), however slowly wolkvox answers; `call` lets another
    thread cut it short sooner (a lost slot)."""
    query, body = request_parts(recall)
    status, headers, content, latency = exchange(
        session, "PUT", target, RECALL_PATH, query, timeouts, call, json_body=body)
    try:
        return classify(status, content, latency, headers.get("Retry-After"))
    except RetrySoon:
        rest_refused(call)
        raise


def add_record(session: requests.Session, target: Target, campaign_id: str, status: str,
               record: Mapping[str, str], timeouts: tuple[float, float],
               call: Call | None = None) -> Delivered:
    """POST one record into a predictive campaign (add_record); Delivered on a 2xx, else the
    WolkvoxError kind its answer names. Its answer is not documented: any 2xx is taken."""
    query = {"api": "add_record", "type_campaign": "predictive", "campaign_id": campaign_id,
             "campaign_status": status}
    http_status, headers, content, latency = exchange(
        session, "POST", target, RECALL_PATH, query, timeouts, call, json_body=[dict(record)])
    data, answer = read_answer(http_status, content, latency)
    if 200 <= http_status < 300:
        return Delivered(answer)
    try:
        refuse(http_status, data, answer, headers.get("Retry-After"))
    except RetrySoon:
        rest_refused(call)
        raise


def rest_refused(call: Call | None) -> None:
    """Refused as SIMULTANEOUS: wolkvox counts more calls than we do, so the slot waits."""
    if call is not None:
        call.rest = max(call.rest, SIMULTANEOUS_PAUSE)


def exchange(session: requests.Session, method: str, target: Target, path: str,
             query: Mapping[str, str], timeouts: tuple[float, float], call: Call | None,
             json_body: Any = None, limit: int = ANSWER_LIMIT,
             ) -> tuple[int, Mapping[str, str], bytes, float]:
    """One call to wolkvox with the token's header, within the call's deadline: (HTTP status,
    headers, at most `limit` bytes of the body, latency in ms). Transport faults raise the
    retry kinds here (and set `call.rest` when wolkvox may still be working on it); what the
    answer means is the caller's to classify (`classify`, `refuse`)."""
    started = time.perf_counter()
    try:
        with deadline(timeouts[1], call):
            response = session.request(
                method, target.base_url + path, params=query, json=json_body,
                timeout=timeouts, headers={"wolkvox-token": target.token},
                allow_redirects=False, stream=True)
            with response:
                content = response.raw.read(limit, decode_content=True)
    except CallAborted as err:
        # Ambiguous (the recall may be set), but re-sending the same recall is harmless.
        _rest(call, started)
        kind = RetryLater if err.counted else RetrySoon
        raise kind(reasons.WOLKVOX_CUT_SHORT(why=err.why),
                   _answer(None, None, "", started)) from None
    except _TIMEOUTS as err:
        if not isinstance(err, requests.ConnectTimeout):  # else wolkvox never had the call
            _rest(call, started)
        answer = _answer(None, None, "", started)
        raise RetryLater(reasons.WOLKVOX_TIMEOUT(error=type(err).__name__), answer) from None
    except _READ_ERRORS as err:
        raise RetryLater(reasons.WOLKVOX_TRANSPORT(error=type(err).__name__),
                         _answer(None, None, "", started)) from None
    return response.status_code, response.headers, content, _elapsed(started)


def _rest(call: Call | None, started: float) -> None:
    """A call we stopped waiting for may still be running at wolkvox, which learns of the
    hang-up only at its next write, and works on a call for CALL_LIMIT s at most: its slot
    stays unused until then."""
    if call is not None:
        call.rest = max(call.rest, CALL_LIMIT - (time.perf_counter() - started))


def classify(http_status: int, content: bytes, latency_ms: float,
             retry_after: str | None = None) -> Delivered:
    """wolkvox-api.md's error table as code: Delivered, or raise the matching WolkvoxError.

    wolkvox's msg repeats the phone ("INVALID recall_telephone: <the phone>"): it is masked
    here, once, so that no reason, attempt, log line or hold built from the answer shows it."""
    data, answer = read_answer(http_status, content, latency_ms)
    if 200 <= http_status < 300:
        if answer.code == 202:
            return Delivered(answer)
        raise RetryLater(reasons.WOLKVOX_NO_202(status=http_status), answer)
    refuse(http_status, data, answer, retry_after)


def read_answer(http_status: int, content: bytes,
                latency_ms: float) -> tuple[dict[str, Any] | None, Answer]:
    """The body as a JSON object (None when it is not one) and the answer to record, its msg
    phone-masked."""
    data = _json(content)
    code = _int(data.get("code")) if data is not None else None
    msg = mask_phones_in(str(data.get("msg") or data.get("error") or "")) if data else ""
    return data, Answer(http_status, code, (msg or _excerpt(content))[:MSG_LIMIT], latency_ms)


def refuse(http_status: int, data: dict[str, Any] | None, answer: Answer,
           retry_after: str | None = None) -> NoReturn:
    """A wolkvox answer that is not a success, whatever the call (a recall, a report, an
    added record): raise the WolkvoxError kind its status and msg name."""
    msg = answer.msg if data is not None else ""
    upper = msg.upper()
    if http_status in (429, 503):
        after = seconds_after(retry_after)
        busy = answer.msg or "busy"
        why = (reasons.WOLKVOX_BUSY_AFTER(status=http_status, msg=busy, after=f"{after:g}")
               if after else reasons.WOLKVOX_BUSY(status=http_status, msg=busy))
        raise RetryLater(why, answer, after)
    if data is None and http_status not in (400, 401):
        raise RetryLater(reasons.WOLKVOX_NOT_JSON(status=http_status), answer)
    if http_status == 400:
        raise Rejected(reasons.WOLKVOX_REFUSED(msg=answer.msg or "HTTP 400"), answer)
    if http_status == 401 or "VALIDATE TOKEN" in upper:
        raise TokenRejected(reasons.WOLKVOX_TOKEN_REJECTED(msg=answer.msg or f"HTTP {http_status}"),
                            answer)
    if http_status == 403 and "SIMULTANEOUS" in upper:
        raise RetrySoon(reasons.WOLKVOX_CONCURRENCY(msg=msg), answer)
    if http_status == 403 and "TOKEN LIMIT EXCEEDED" in upper:
        raise QuotaExceeded(reasons.WOLKVOX_QUOTA(msg=msg), answer)
    raise RetryLater(reasons.WOLKVOX_HTTP(status=http_status, msg=answer.msg or "no message"),
                     answer)


def seconds_after(value: str | None, now: float | None = None) -> float:
    """A Retry-After header (seconds, or an HTTP date) as seconds from now; 0 when absent or
    unreadable; at most MAX_RETRY_AFTER."""
    text = (value or "").strip()
    if not text:
        return 0.0
    try:
        seconds = float(text) if text.replace(".", "", 1).isdigit() else (
            parsedate_to_datetime(text).timestamp() - (time.time() if now is None else now))
    except (TypeError, ValueError, IndexError, OverflowError):
        return 0.0
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def _json(content: bytes) -> dict[str, Any] | None:
    """The body as a JSON object, or None: not JSON, not an object, or nested too deep for the
    parser (thousands of `[` raise RecursionError)."""
    try:
        data = json.loads(content)
    except (ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def _int(value: Any) -> int | None:
    """`code` as an int: 202 and "202" are; 1e999 (infinity), NaN, lists are not."""
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        return None


def _excerpt(content: bytes) -> str:
    return mask_phones_in(" ".join(content[:200].decode("utf-8", "replace").split()))


def _elapsed(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


def _answer(status: int | None, code: int | None, msg: str, started: float) -> Answer:
    return Answer(status, code, msg, _elapsed(started))
