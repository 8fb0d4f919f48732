"""Fetch what a thin event lacks from its CRM, then map it. Runs in the worker only.

A mapping's `lookup:` declares one or two GETs (HubSpot: the contact; Kommo: the lead, then
its main contact; Bitrix24: the lead through the portal's REST webhook): each takes an id from
the event (or from the step before), puts it in its URL, and places the picked part of the
JSON answer in the event under `into`, where the recall fields read it. No CRM is coded here.

An id is validated and percent-encoded before it goes into a URL: it can name one object, it
can never change the path or the host (`../../v3/owners` is refused). Answers are classified
like wolkvox's: 429 honours Retry-After, 401/403 holds that CRM's credentials (LookupRefused),
404 (or a 400 whose message says the object is not found: Bitrix24's deleted lead) fails the
event with the CRM's message, anything else (transport faults while reading included) is
retried with backoff.
"""

from __future__ import annotations

import http.client
import json
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlsplit

import requests
import urllib3.exceptions

from .. import reasons
from ..mapping.lookups import LookupStep, ObjectIdInvalid, object_id_of
from ..mapping.source import Source
from ..recall import mask_phones_in
from . import errors
from .deadline import Call, CallAborted, deadline
from .wolkvox import seconds_after

ANSWER_LIMIT = 2 * 1024 * 1024  # a CRM record is a few KB; more is not read
# What reading an answer can raise (see wolkvox._READ_ERRORS): all of it is a passing fault.
_READ_ERRORS = (requests.RequestException, urllib3.exceptions.HTTPError,
                http.client.HTTPException, OSError)
# A 400 or 404 whose message says this: the object is gone (Bitrix24 answers a deleted lead's
# crm.lead.get with 400 {"error": "", "error_description": "Not found"}).
_GONE = re.compile(r"not[ _]found|does not exist|doesn't exist|no such|deleted", re.I)


class LookupRetry(errors.RetryLater):
    """The CRM did not answer usefully now (transport, 429, 5xx): retry with backoff, and not
    before `after` seconds when the CRM said so (429 Retry-After)."""

    def __init__(self, reason: str, after: float = 0.0):
        super().__init__(reason, after=after)


class LookupRefused(errors.HoldCredentials):
    """The CRM refused the lookup's credentials (401/403): hold them, probe slowly; the events
    wait and lose no attempt."""


class LookupFailed(errors.GiveUp):
    """The object does not exist (404, or a 400 saying so), the event names none, or the
    answer holds nothing where `pick` looks: the event fails with the reason."""


def fetch_and_map(source: Source, event: Any, session: requests.Session, now: datetime,
                  timeouts: tuple[float, float], call: Call | None = None,
                  pace: Callable[[float], float] | None = None) -> dict[str, str]:
    """The event's recall fields after its lookup's steps (`enrich`); raises the errors above
    or recall.RecallInvalid."""
    return source.map(enrich(source, event, session, timeouts, call, pace), now)


def enrich(source: Source, event: Any, session: requests.Session,
           timeouts: tuple[float, float], call: Call | None = None,
           pace: Callable[[float], float] | None = None) -> dict[str, Any]:
    """The event with what its lookup's steps fetched, each GET after its turn at the
    source's rate gate (`pace`: rate_gate.RateGate.pace), under their `into` names."""
    if source.lookup is None:
        raise ValueError(f"source {source.name} has no lookup")  # a caller's bug, by name
    enriched = dict(event) if isinstance(event, dict) else {"event": event}
    for step in source.lookup.steps:
        enriched[step.into] = fetch(step, enriched, session, timeouts, call, pace)
    return enriched


def fetch(step: LookupStep, event: dict[str, Any], session: requests.Session,
          timeouts: tuple[float, float], call: Call | None = None,
          pace: Callable[[float], float] | None = None) -> Any:
    """One step's GET, classified; the picked part of its answer. With `pace`, the GET waits
    for its turn first, at most as long as the call's own deadline (errors.RetryLater beyond)."""
    try:
        object_id = object_id_of(step.id.search(event))
    except ObjectIdInvalid as err:
        raise LookupFailed(reasons.of_error(err)) from None
    url = step.url.replace("{id}", quote(object_id, safe=""))
    host = urlsplit(url).netloc
    what = step.name or reasons.LOOKUP_OBJECT_AT(host=host)
    if pace is not None:
        pace(timeouts[1])
    try:
        with deadline(timeouts[1], call):
            response = session.get(url, timeout=timeouts, headers=step.headers,
                                   allow_redirects=False, stream=True)
            with response:
                content = response.raw.read(ANSWER_LIMIT, decode_content=True)
    except CallAborted as err:
        raise LookupRetry(reasons.LOOKUP_CUT_SHORT(why=err.why)) from None
    except _READ_ERRORS as err:
        raise LookupRetry(reasons.LOOKUP_TRANSPORT(error=type(err).__name__)) from None
    status = response.status_code
    if status in (400, 404):
        said = _message(content)
        if status == 404 or _GONE.search(said):
            raise LookupFailed(
                reasons.LOOKUP_NOT_FOUND_SAID(what=what, id=object_id, status=status, said=said)
                if said else reasons.LOOKUP_NOT_FOUND(what=what, id=object_id, status=status))
    if status in (401, 403):
        raise LookupRefused(reasons.LOOKUP_REFUSED(host=host, what=what, status=status))
    if status == 429:
        after = seconds_after(response.headers.get("Retry-After")) or 10.0
        raise LookupRetry(reasons.LOOKUP_RATE(host=host), after)
    if status != 200:
        raise LookupRetry(reasons.LOOKUP_HTTP(host=host, status=status, what=what))
    try:
        answer = json.loads(content)
    except (ValueError, RecursionError):  # RecursionError: thousands of nested `[`
        raise LookupRetry(reasons.LOOKUP_NOT_JSON(host=host, what=what)) from None
    picked = step.pick.search(answer)
    if picked is None:
        raise LookupFailed(reasons.LOOKUP_NOTHING(what=what, id=object_id,
                                                  pick=step.pick.expression))
    return picked


def _message(content: bytes) -> str:
    """What a CRM's error body says (Bitrix24's error_description, Kommo's detail or title,
    HubSpot's message), phones masked, at most 200 characters; "" when it says nothing."""
    try:
        data = json.loads(content)
    except (ValueError, RecursionError):
        return ""
    if not isinstance(data, dict):
        return ""
    for key in ("error_description", "message", "detail", "title", "error"):
        if isinstance(data.get(key), str) and data[key].strip():
            return mask_phones_in(" ".join(data[key].split()))[:200]
    return ""
