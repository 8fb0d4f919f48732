"""Send one write-back to its CRM and say what the answer means, in the one error family.

2xx: done (the CRM's answer is kept, short). 401/403: the source's write-back credentials
are held (WritebackRefused): its write-backs wait and are probed; nothing is lost. 429 honours
Retry-After; 5xx, a transport fault, a deadline or an unreadable answer are retried with
backoff. A redirect is not followed (a write-back goes only where its mapping says) and fails,
naming where it pointed; any other 4xx fails with what the CRM said. The answer is read up to
ANSWER_LIMIT and the call never outlives its deadline, so a CRM that trickles, floods or never
answers costs one thread that long, never a recall.
"""

from __future__ import annotations

import http.client
import json
import time
from urllib.parse import urlsplit

import requests
import urllib3.exceptions

from .. import reasons
from ..mapping.writeback import Request
from ..recall import mask_phones_in
from . import errors
from .deadline import Call, CallAborted, deadline
from .wolkvox import seconds_after

ANSWER_LIMIT = 64 * 1024  # a created note's answer is a few hundred bytes
_READ_ERRORS = (requests.RequestException, urllib3.exceptions.HTTPError,
                http.client.HTTPException, OSError)


class WritebackRetry(errors.RetryLater):
    """The CRM did not take it now (transport, 5xx, 429): retry with backoff."""


class WritebackRefused(errors.HoldCredentials):
    """The CRM refused the write-back's credentials (401/403): hold the source's write-backs."""


class WritebackFailed(errors.GiveUp):
    """The CRM refused the request itself (4xx, a redirect), or its template failed."""


def send(request: Request, what: str, session: requests.Session, timeouts: tuple[float, float],
         call: Call | None = None) -> errors.Answer:
    """Send `request`; the CRM's answer when it took it (2xx), else one of the errors above.
    `what` names the write-back in reasons ("HubSpot note")."""
    host = request.host
    started = time.perf_counter()
    try:
        with deadline(timeouts[1], call):
            response = session.request(
                request.method, request.url, headers=request.headers, timeout=timeouts,
                allow_redirects=False, stream=True,
                **({"json": request.json} if request.form is None else {"data": request.form}))
            with response:
                content = response.raw.read(ANSWER_LIMIT, decode_content=True)
    except CallAborted as err:
        raise WritebackRetry(reasons.WRITEBACK_CUT_SHORT(what=what, why=err.why)) from None
    except _READ_ERRORS as err:
        raise WritebackRetry(reasons.WRITEBACK_TRANSPORT(what=what,
                                                         error=type(err).__name__)) from None
    latency = (time.perf_counter() - started) * 1000
    status = response.status_code
    said = message(content, created=200 <= status < 300)
    answer = errors.Answer(status, None, said, latency)
    if 200 <= status < 300:
        return answer
    if status in (401, 403):
        raise WritebackRefused(reasons.WRITEBACK_REFUSED(what=what, host=host, status=status),
                               answer)
    if status == 429:
        after = seconds_after(response.headers.get("Retry-After")) or 10.0
        raise WritebackRetry(reasons.WRITEBACK_RATE(what=what, host=host), answer, after)
    if 300 <= status < 400:
        to = urlsplit(response.headers.get("Location", "")).netloc or "?"
        raise WritebackFailed(reasons.WRITEBACK_REDIRECT(what=what, host=host, status=status,
                                                         to=to), answer)
    if 400 <= status < 500 and status not in (408, 425):
        raise WritebackFailed(
            reasons.WRITEBACK_HTTP_SAID(what=what, host=host, status=status, said=said) if said
            else reasons.WRITEBACK_HTTP(what=what, host=host, status=status), answer)
    raise WritebackRetry(reasons.WRITEBACK_HTTP(what=what, host=host, status=status), answer)


def message(content: bytes, created: bool = False) -> str:
    """What a CRM's answer says, short and phone-masked: the id of what it `created` ("id
    123"), or an error's message; "" when it is not JSON (an HTML page says nothing useful)."""
    try:
        data = json.loads(content)
    except (ValueError, RecursionError):
        return ""
    if isinstance(data, list) and data and isinstance(data[0], dict):
        data = data[0]
    if isinstance(data, dict) and isinstance(data.get("_embedded"), dict):  # Kommo's notes
        inner = next(iter(data["_embedded"].values()), None)
        data = inner[0] if isinstance(inner, list) and inner and isinstance(inner[0], dict) \
            else data
    if isinstance(data, dict) and isinstance(data.get("data"), list | dict):  # Zoho, Pipedrive
        inner = data["data"][0] if isinstance(data["data"], list) and data["data"] \
            else data["data"]
        data = inner if isinstance(inner, dict) else data
    if not isinstance(data, dict):
        return ""
    details = data.get("details")
    found = data.get("id") or (details.get("id") if isinstance(details, dict) else None) \
        or data.get("result")
    if created and isinstance(found, int | str) and not isinstance(found, bool):
        return f"id {str(found)[:64]}"
    for key in ("error_description", "message", "detail", "title", "error", "errorCode"):
        value = data.get(key)
        if isinstance(value, str) and value.strip():
            return mask_phones_in(" ".join(value.split()))[:200]
    return ""
