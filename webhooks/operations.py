"""What an operator can do to an event, the same from the command line, the console and the
admin API: each action checks what it may do, does it through the store, and says what it did.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from . import intake
from .lifecycle import REJUDGED_ON_RETRY, RETRYABLE_BY_OPERATOR, Status
from .mapping.converters import ConversionError, to_date
from .recall import DATE_FORMAT


class RetryRefused(Exception):
    """The event cannot be retried as asked; str(error) says why, for the operator."""


def retry_event(bridge: Any, event_id: int, at: str | None = None) -> str:
    """Queue a failed, expired, invalid or ignored event again and say what was done.

    An invalid or ignored event is judged again with today's mapping (it may stay ignored or
    invalid, with today's reason: RetryRefused). A recall whose time has passed is rescheduled
    to `at` (ISO 8601 or YYYYmmddHHMMSS, read in the source's time zone), or to now, which the
    send-time rules move to the earliest moment they allow. The event keeps its id, created_at
    and history; its age for MAX_EVENT_AGE starts again.
    """
    row = bridge.store.get(event_id)
    if row is None:
        raise RetryRefused(f"no event {event_id}")
    status = row["status"]
    if status not in RETRYABLE_BY_OPERATOR:
        raise RetryRefused(f"event {event_id} is {status}; only "
                           f"{', '.join(sorted(RETRYABLE_BY_OPERATOR))} events can be retried")
    source = bridge.sources.get(row["source"])
    if source is None:
        raise RetryRefused(f"source {row['source']} has no mapping any more")
    now = bridge.settings.clock()
    wanted = _when(at, source.target.timezone, now) if at else None
    recall = row["recall"]
    if status in REJUDGED_ON_RETRY:
        judged = intake.judge(source, row["raw"], 0, None, now)
        if judged.status != Status.QUEUED:
            bridge.store.requeue(event_id, now.timestamp(), judged.reason, status=judged.status)
            raise RetryRefused(f"event {event_id} is still {judged.status} with today's "
                               f"mapping: {judged.reason}")
        recall = judged.recall
    moved = ""
    if recall is not None:
        asked = recall["recall_date"]
        zone = ZoneInfo(source.target.timezone)
        due = wanted or max(asked, now.astimezone(zone).strftime(DATE_FORMAT))
        recall = {**recall, "recall_date": due}
        if due != asked:
            moved = f"; callback time {asked} -> {due}"
    reason = f"re-queued by an operator (was {status}){moved}"
    bridge.store.requeue(event_id, now.timestamp(), reason, recall)
    return f"event {event_id} queued{moved}"


def _when(at: str, timezone: str, now: datetime) -> str:
    """`--at` as a recall_date in the source's zone; RetryRefused if unreadable or past."""
    try:
        due = to_date(at, timezone=timezone, now=now)
    except ConversionError as err:
        raise RetryRefused(f"--at {at!r}: {err}") from None
    moment = datetime.strptime(due, DATE_FORMAT).replace(tzinfo=ZoneInfo(timezone))
    if moment < now:
        raise RetryRefused(f"--at {at!r} is in the past")
    return due

