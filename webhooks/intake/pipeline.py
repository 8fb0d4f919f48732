"""One road for a request body: prove it, read it, answer a handshake or split and judge its
events. The hook, the capture URL, `flask mappings try`, the console's playground and the
API's try all take it (`take`, or `try_body` for the three that try), so they all say the
same thing about one body; trying adds when each recall would be sent (`when_sent`).

A request the hook must refuse raises `Refused`, with the status to answer; the source's
format turns it into the CRM's own convention (crm/formats.py). Nothing here is stored or
sent: the receiver stores what `take` judged.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from jmespath.exceptions import JMESPathError

from .. import reasons
from ..bridge import Bridge
from ..crm import formats
from ..crm.signatures import AuthFailed, SignedRequest
from ..delivery.plan import plan_for
from ..lifecycle import Status
from ..mapping.source import Source, fit_key
from ..recall import mask_recall
from ..store.events import NewEvent
from .judge import Verdict, verdict

CAPS_NOTE = " (contact caps are counted when it is sent)"


class Problem(StrEnum):
    """Why a request was refused, for the pages that try a body (the hook sends `status`)."""

    TOO_LARGE = "too large"  # MAX_BODY_BYTES
    AUTH = "auth"  # the signature, token or secret field
    FORMAT = "format"  # the body cannot be read as the source's format
    EVENTS = "events"  # the mapping's `events` path fails on it
    TOO_MANY = "too many"  # MAX_EVENTS_PER_REQUEST
    STORE = "store"  # the store refused its values


class Refused(Exception):
    """The hook refuses this request whole, answering `status` with `message` (safe to send:
    it never echoes the body). `detail` is the underlying error's own words; `logged`, when
    set, is the log line (after "hook <name>: ") at `level`; `auth` is the failed proof of
    the request `signed`, whose cause the receiver may explain to the admin."""

    def __init__(self, status: int, message: str, problem: Problem, *, detail: str = "",
                 logged: str | None = None, level: int = logging.WARNING,
                 auth: AuthFailed | None = None, signed: SignedRequest | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.problem = status, message, problem
        self.detail, self.logged, self.level = detail or message, logged, level
        self.auth, self.signed = auth, signed


@dataclass(frozen=True)
class Request:
    """A body as the hook received it. `signed` is the request whose authenticity is proven;
    None when a body is tried (pasted, a sample file), where it is not checked."""

    body: bytes
    content_type: str | None
    headers: Mapping[str, str] = field(default_factory=dict)
    signed: SignedRequest | None = None


@dataclass(frozen=True)
class Handshake:
    """The CRM proving the endpoint (monday.com's challenge): `answer` is what it expects."""

    answer: Any


@dataclass(frozen=True)
class Judged:
    """The events of one body, each judged; `found` is how many it holds (more than `limit`
    only when cut rather than refused, see `take`)."""

    verdicts: list[Verdict]
    found: int
    limit: int

    @property
    def events(self) -> list[Any]:
        return [v.event for v in self.verdicts]


def take(source: Source, request: Request, *, limit: int, now: datetime,
         whole: bool = True) -> Handshake | Judged:
    """The hook's order: authenticity (when `request.signed`), the body in the source's
    format, the payload's own proof, the secret field removed, the handshake, the events
    split (each with the mapping's `headers:`) and judged. Raises Refused. More than `limit`
    events are refused whole (413) when `whole`, as the hook does; else the first `limit`
    are judged (a try shows what the hook would make of them)."""
    delivery_id = _authenticate(source, request.signed)
    try:
        payload = source.parse(request.body, request.content_type)
    except formats.FormatError as err:
        raise Refused(400, f"unreadable {source.format} body: {err}", Problem.FORMAT,
                      detail=str(err), logged=f"unreadable body: {err}") from None
    if request.signed is not None:
        try:
            source.verifier.verify_payload(payload)
        except AuthFailed as err:
            raise _unauthenticated(err, request.signed) from None
    source.strip_secret(payload)  # a secret is not an event's data
    answer = source.handshake_answer(payload)
    if answer is not None:
        return Handshake(answer)
    try:
        events = source.split(payload)
    except JMESPathError as err:
        message = f"the mapping's `events` path fails on this body: {err}"
        raise Refused(400, message, Problem.EVENTS, detail=str(err), logged=message,
                      level=logging.ERROR) from None
    if whole and len(events) > limit:
        message = (f"{len(events)} events in one request; at most {limit} are taken "
                   "(MAX_EVENTS_PER_REQUEST): send them in smaller requests")
        raise Refused(413, message, Problem.TOO_MANY, logged=f"refused: {message}")
    judged = source.with_headers(events[:limit], request.headers)
    return Judged([verdict(source, event, index, delivery_id, now)
                   for index, event in enumerate(judged)], found=len(events), limit=limit)


def _authenticate(source: Source, signed: SignedRequest | None) -> str | None:
    """The CRM's delivery id once `signed` is proven (None when not checked)."""
    if signed is None:
        return None
    try:
        return source.verifier.verify(signed).delivery_id
    except AuthFailed as err:
        raise _unauthenticated(err, signed) from None


def _unauthenticated(err: AuthFailed, signed: SignedRequest) -> Refused:
    return Refused(401, f"not authenticated: {err}", Problem.AUTH, detail=str(err),
                   logged=f"refused: {err}", auth=err, signed=signed)


# --- the capture URL: judged like the hook's, kept as tests --------------------------------------
TEST_VERDICT = "test: would be "  # how a captured event's reason starts (TEST_WOULD_BE)


def as_test(event: NewEvent, capture: str) -> NewEvent:
    """A judged event kept as a capture: status `test`, what it would have been in the reason,
    and a dedup key of its own (a test never hides a real event, nor the other way round).
    The key holds `capture`, one per test request: a test sent again (after a mapping change)
    is judged afresh, not answered `duplicate` of the last one; within one request, two
    events with one id are still a duplicate, as the hook would say."""
    status = reasons.status(event.status)
    reason = (reasons.TEST_WOULD_BE_BECAUSE(status=status, reason=event.reason) if event.reason
              else reasons.TEST_WOULD_BE(status=status))
    return replace(event, status=Status.TEST,
                   dedup_key=fit_key(f"test:{capture}:{event.dedup_key}"), reason=reason)


def captured_verdict(reason: str) -> tuple[Status, str] | None:
    """What a captured event would have been and why, read back from its reason (None for a
    reason `as_test` did not write)."""
    verdict, _sep, detail = reason.removeprefix(TEST_VERDICT).partition(": ")
    if not reason.startswith(TEST_VERDICT) or verdict not in Status._value2member_map_:
        return None
    return Status(verdict), detail


# --- trying a body: the verdicts, and when each recall would be sent ---------------------------
@dataclass(frozen=True)
class When:
    """When the recall would be sent if it arrived now: `action` send, expired or refused;
    `asked` and `sent` as recall dates; `why` the rule that moved or stopped it."""

    action: str
    asked: str
    sent: str | None
    why: str
    note: str  # the whole rule that moved or stopped it ("" when sent as asked)
    caps: bool  # the source caps calls per lead: counted only when it is sent


@dataclass(frozen=True)
class Tried:
    """One event's verdict: `status` queued, ignored or invalid; `verdict` holds the event as
    the hook would store it (the recall unmasked)."""

    index: int
    status: str
    dedup_key: str
    reason: str
    errors: dict[str, list[str]]
    recall: dict[str, str] | None  # phone masked
    lookup: str | None  # the CRM lookup the fields wait for (mapped by the worker)
    when: When | None
    verdict: Verdict


@dataclass(frozen=True)
class Result:
    """What the hook would make of a body: its events tried, the handshake it would answer,
    or why it would refuse it (`problem` format or events, with the parser's or JMESPath's
    words in `detail`, and the hook's own answer in `message`)."""

    events: list[Tried] = field(default_factory=list)
    problem: Problem | None = None
    detail: str = ""
    message: str = ""
    limit: int = 0  # MAX_EVENTS_PER_REQUEST: more is refused whole by the hook (413)
    found: int = 0  # events the body splits into; only the first `limit` are judged
    handshake: Handshake | None = None

    @property
    def over_limit(self) -> bool:
        return self.found > self.limit


def try_body(bridge: Bridge, source: Source, body: bytes,
             content_type: str | None) -> Result:
    """Judge a pasted body as the hook would (after authenticity, which is not checked): at
    most MAX_EVENTS_PER_REQUEST events are judged (`found` says how many it holds; the hook
    refuses more, whole)."""
    limit, now = bridge.settings.max_events_per_request, bridge.settings.clock()
    try:
        taken = take(source, Request(body, content_type), limit=limit, now=now, whole=False)
    except Refused as refused:
        return Result(problem=refused.problem, detail=refused.detail, message=refused.message,
                      limit=limit)
    if isinstance(taken, Handshake):
        return Result(limit=limit, handshake=taken)
    return Result(tried(bridge, source, taken.verdicts, now), limit=limit, found=taken.found)


def try_event(bridge: Bridge, source: Source, raw: Any) -> Result:
    """Judge a stored event (its raw, already split) with today's mapping."""
    now = bridge.settings.clock()
    return Result(tried(bridge, source, [verdict(source, raw, 0, None, now)], now),
                  limit=bridge.settings.max_events_per_request, found=1)


def tried(bridge: Bridge, source: Source, verdicts: list[Verdict],
          now: datetime) -> list[Tried]:
    """Each verdict as a try shows it: the recall masked, and when it would be sent."""
    found = []
    for index, judged in enumerate(verdicts):
        event = judged.event
        recall = when = lookup = None
        if event.status == Status.QUEUED and event.recall is None and source.lookup:
            lookup = source.lookup.describe()
        elif event.status == Status.QUEUED and event.recall is not None:
            when = when_sent(bridge, source, event.recall, now)
            recall = mask_recall(event.recall)
        found.append(Tried(index, str(event.status), event.dedup_key, event.reason,
                           judged.errors, recall, lookup, when, judged))
    return found


def when_sent(bridge: Bridge, source: Source, recall: dict[str, str],
              now: datetime) -> When:
    """The date asked and the date that would be sent now, with the rule that moved it: the
    worker's own plan (delivery/plan.py), so the preview is what the worker would send."""
    plan = plan_for(source, bridge.store, bridge.settings, recall, now.timestamp())
    sent = plan.recall["recall_date"] if plan.recall else None
    why = plan.note.split(": ", 1)[1] if sent and sent != plan.asked else plan.note
    return When(plan.action, plan.asked, sent, why, plan.note, source.caps is not None)
