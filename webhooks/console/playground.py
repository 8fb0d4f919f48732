"""What a source makes of a body, as `flask mappings try` says it: parsed (formats.parse_body),
split (source.split), each event judged (intake.verdict) and, when it maps, when it would be
sent (timerules.schedule). Nothing is stored or sent, and authenticity is not checked.

Pure but for reading a sample body from the mappings folder."""

from __future__ import annotations

import glob
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from jmespath.exceptions import JMESPathError

from .. import formats, intake, timerules
from ..lifecycle import Status
from ..recall import DATE_FORMAT, mask_phone

CONTENT_TYPES = {"json": "application/json", "salesforce": "text/xml",
                 "form": "application/x-www-form-urlencoded"}  # what cli's `mappings try` uses
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


@dataclass(frozen=True)
class When:
    """When the recall would be sent if it arrived now: `action` send, expired or refused;
    `asked` and `sent` as recall dates; `why` the rule that moved or stopped it."""

    action: str
    asked: str
    sent: str | None
    why: str
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

    @property
    def over_limit(self) -> bool:
        return len(self.events) > self.limit


def content_type(source: Any, chosen: str, body: bytes) -> str:
    """The Content-Type the body is read with: fixed by the format, except for a form source,
    where the person chooses; a multipart body's boundary is read from its first line."""
    if source.format != "form":
        return CONTENT_TYPES[source.format]
    if chosen == "multipart/form-data":
        first = body.lstrip(b"\r\n").split(b"\n", 1)[0].strip()
        if first.startswith(b"--") and len(first) > 2:
            boundary = first[2:].decode("latin-1").replace("\\", "").replace('"', "")
            return f'multipart/form-data; boundary="{boundary}"'
        return "multipart/form-data"
    return FORM_TYPES[0]


def try_body(bridge: Any, source: Any, body: bytes, kind: str) -> Result:
    """Judge a pasted body as the hook would (after authenticity)."""
    limit = bridge.settings.max_events_per_request
    try:
        payload = formats.parse_body(source.format, body, kind)
    except formats.FormatError as err:
        return Result(problem="format", detail=str(err), limit=limit)
    if isinstance(payload, dict) and source.verifier.strip_field:
        payload.pop(source.verifier.strip_field, None)  # as the receiver does
    try:
        events = source.split(payload)
    except JMESPathError as err:
        return Result(problem="events", detail=str(err), limit=limit)
    return Result(judge_all(bridge, source, events), limit=limit)


def try_event(bridge: Any, source: Any, raw: Any) -> Result:
    """Judge a stored event (its raw, already split) with today's mapping."""
    return Result(judge_all(bridge, source, [raw]),
                  limit=bridge.settings.max_events_per_request)


def judge_all(bridge: Any, source: Any, events: list[Any]) -> list[Tried]:
    now = bridge.settings.clock()
    found = []
    for index, event in enumerate(events):
        verdict = intake.verdict(source, event, index, None, now)
        judged = verdict.event
        recall = when = lookup = None
        if judged.status == Status.QUEUED and judged.recall is None and source.lookup:
            lookup = source.lookup.kind
        elif judged.status == Status.QUEUED and judged.recall is not None:
            when = when_sent(bridge, source, judged.recall, now)
            recall = {**judged.recall,
                      "recall_telephone": mask_phone(judged.recall["recall_telephone"])}
        found.append(Tried(index, str(judged.status), judged.dedup_key, judged.reason,
                           verdict.errors, recall, lookup, when))
    return found


def when_sent(bridge: Any, source: Any, recall: dict[str, str], now: datetime) -> When:
    """The date asked and the date that would be sent now, with the rule that moved it (as
    cli's `mappings try` prints it)."""
    settings = bridge.settings
    plan = timerules.schedule(recall, source.target.timezone, now.timestamp(),
                              settings.wolkvox_min_lead, settings.expire_after, source.hours)
    sent = plan.recall["recall_date"] if plan.recall else None
    why = plan.note.split(": ", 1)[1] if sent and sent != plan.asked else plan.note
    return When(plan.action, plan.asked, sent, why, source.caps is not None)


def pretty_date(recall_date: str | None) -> str:
    """A recall date (YYYYmmddHHMMSS) as people read it: 2030-12-01 10:30:00."""
    try:
        return f"{datetime.strptime(recall_date or '', DATE_FORMAT):%Y-%m-%d %H:%M:%S}"
    except ValueError:
        return recall_date or ""


def sample(bridge: Any, name: str) -> str:
    """The source's sample body shipped beside its mapping (samples/<name>.*), or ""."""
    folder = Path(bridge.settings.mappings_dir) / "samples"
    for path in sorted(folder.glob(f"{glob.escape(name)}.*")):
        if path.is_file() and path.stat().st_size <= bridge.settings.max_body_bytes:
            return path.read_text(encoding="utf-8", errors="replace")
    return ""
