"""Trying a body on a source's mapping, as the hook would judge it after authenticity:
parsed (Source.parse), the secret field removed and split (Source.events_of), each event
judged (intake.verdict) and, when it maps, when it would be sent (delivery.plan_for).
Nothing is stored or sent. Used by `flask mappings try`, the console's playground and the
API's try."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from jmespath.exceptions import JMESPathError

from ..crm import formats
from ..delivery.plan import plan_for
from ..lifecycle import Status
from ..recall import mask_recall
from . import judge as intake

CAPS_NOTE = " (contact caps are counted when it is sent)"


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
    """One event's verdict: `status` queued, ignored or invalid."""

    index: int
    status: str
    dedup_key: str
    reason: str
    errors: dict[str, list[str]]
    recall: dict[str, str] | None  # phone masked
    lookup: str | None  # the CRM lookup the fields wait for (mapped by the worker)
    when: When | None


@dataclass(frozen=True)
class Result:
    """The events a body splits into, or why it could not be split (`problem`: "format" or
    "events", with the parser's or JMESPath's words in `detail`)."""

    events: list[Tried] = field(default_factory=list)
    problem: str | None = None
    detail: str = ""
    limit: int = 0  # MAX_EVENTS_PER_REQUEST: more is refused whole by the hook (413)
    found: int = 0  # events the body splits into; only the first `limit` are judged

    @property
    def over_limit(self) -> bool:
        return self.found > self.limit


def try_body(bridge: Any, source: Any, body: bytes, kind: str) -> Result:
    """Judge a pasted body as the hook would (after authenticity): at most
    MAX_EVENTS_PER_REQUEST events are judged (`found` says how many it holds; the hook refuses
    more, whole)."""
    limit = bridge.settings.max_events_per_request
    try:
        payload = source.parse(body, kind)
    except formats.FormatError as err:
        return Result(problem="format", detail=str(err), limit=limit)
    try:
        events = source.events_of(payload)
    except JMESPathError as err:
        return Result(problem="events", detail=str(err), limit=limit)
    # Judged up to the hook's own limit: a pasted body of 30,000 events made 19 MB of HTML.
    return Result(judge_all(bridge, source, events[:limit]), limit=limit, found=len(events))


def try_event(bridge: Any, source: Any, raw: Any) -> Result:
    """Judge a stored event (its raw, already split) with today's mapping."""
    return Result(judge_all(bridge, source, [raw]),
                  limit=bridge.settings.max_events_per_request, found=1)


def judge_all(bridge: Any, source: Any, events: list[Any]) -> list[Tried]:
    now = bridge.settings.clock()
    found = []
    for index, event in enumerate(events):
        verdict = intake.verdict(source, event, index, None, now)
        judged = verdict.event
        recall = when = lookup = None
        if judged.status == Status.QUEUED and judged.recall is None and source.lookup:
            lookup = source.lookup.describe()
        elif judged.status == Status.QUEUED and judged.recall is not None:
            when = when_sent(bridge, source, judged.recall, now)
            recall = mask_recall(judged.recall)
        found.append(Tried(index, str(judged.status), judged.dedup_key, judged.reason,
                           verdict.errors, recall, lookup, when))
    return found


def when_sent(bridge: Any, source: Any, recall: dict[str, str], now: datetime) -> When:
    """The date asked and the date that would be sent now, with the rule that moved it."""
    plan = plan_for(source, bridge.store, bridge.settings, recall, now.timestamp())
    sent = plan.recall["recall_date"] if plan.recall else None
    why = plan.note.split(": ", 1)[1] if sent and sent != plan.asked else plan.note
    return When(plan.action, plan.asked, sent, why, plan.note, source.caps is not None)


