"""What an operator can do to an event, the same from the command line, the console and the
admin API: each action checks what it may do, does it through the store, writes it to the audit
log (who, when, what), and says what it did.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from .. import reasons
from ..bridge import Bridge
from ..intake import judge as intake
from ..lifecycle import CANCELLABLE, REJUDGED_ON_RETRY, RETRYABLE_BY_OPERATOR, Status
from ..mapping.converters import ConversionError, to_date, to_phone
from ..recall import DATE_FORMAT
from ..store import EventFilter


class RetryRefused(Exception):
    """The event cannot be retried (or cancelled) as asked; str(error) says why."""


class UnknownSource(RetryRefused):
    """A bulk retry named a source the bridge does not serve."""


BULK_LIMIT = 5000  # events one bulk retry may touch; more: narrow the filter
# What a bulk retry takes, in the order forms offer them: RETRYABLE_BY_OPERATOR but `expired`,
# whose callback times passed (one by one, an operator gives each a new time).
BULK_STATUSES = (Status.FAILED, Status.INVALID, Status.IGNORED)


def retry_event(bridge: Bridge, event_id: int, at: str | None = None, actor: str = "cli") -> str:
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
                           f"{_listed(RETRYABLE_BY_OPERATOR)} events can be retried")
    source = bridge.sources.get(row["source"])
    if source is None:
        raise RetryRefused(f"source {row['source']} has no mapping any more")
    now = bridge.settings.clock()
    wanted = _when(at, source.target.timezone, now) if at else None
    recall = row["recall"]
    was = (status, row["updated_at"])  # the retry holds only if nobody changed it since
    if status in REJUDGED_ON_RETRY:
        judged = intake.judge(source, row["raw"], 0, None, now)
        if judged.status != Status.QUEUED:
            if not bridge.store.requeue(event_id, now.timestamp(), judged.reason,
                                        status=judged.status, was=was):
                raise RetryRefused(_changed(event_id))
            bridge.store.audit(actor, "retry", f"{status} -> {judged.status} (judged again "
                               f"with today's mapping): {judged.reason}"[:1000],
                               now.timestamp(), event_id)
            raise RetryRefused(f"event {event_id} is still {judged.status} with today's "
                               f"mapping: {judged.reason}")
        recall = judged.recall
    moved, reason = "", reasons.REQUEUED(status=reasons.status(status))
    if recall is not None:
        asked = recall["recall_date"]
        zone = ZoneInfo(source.target.timezone)
        due = wanted or max(asked, now.astimezone(zone).strftime(DATE_FORMAT))
        recall = {**recall, "recall_date": due}
        if due != asked:
            moved = f"; callback time {asked} -> {due}"
            reason = reasons.REQUEUED_MOVED(status=reasons.status(status), asked=asked,
                                            due=due)
    if not bridge.store.requeue(event_id, now.timestamp(), reason, recall, was=was):
        raise RetryRefused(_changed(event_id))
    bridge.store.audit(actor, "retry", f"{status} -> {Status.QUEUED}{moved}", now.timestamp(),
                       event_id)
    return f"event {event_id} {Status.QUEUED}{moved}"


def _listed(statuses: Iterable[Status], last: str = "") -> str:
    """Statuses for a sentence: "failed, invalid or ignored" (`last`: the word before the
    last one; none: commas only, in alphabetical order)."""
    if not last:
        return ", ".join(sorted(statuses))
    *others, final = list(statuses)
    return f"{', '.join(others)} {last} {final}" if others else final


def _changed(event_id: int) -> str:
    return (f"event {event_id} changed while this retry was being made (another operator's "
            "retry or cancel came first): reload it and look again")


def check_source(bridge: Bridge, source: str | None) -> None:
    """UnknownSource unless `source` is empty (every source) or one the bridge serves."""
    if source and source not in bridge.sources:
        raise UnknownSource(f"no source {source!r}; known: {', '.join(sorted(bridge.sources))}")


def cancel_event(bridge: Bridge, event_id: int, why: str, actor: str) -> str:
    """Cancel a queued event (it is never sent), with the operator's reason."""
    why = " ".join(why.split())[:300]
    if not why:
        raise RetryRefused("say why the event is cancelled")
    now = bridge.settings.clock().timestamp()
    if not bridge.store.cancel(event_id, reasons.CANCELLED(why=why), now):
        row = bridge.store.get(event_id)
        status = row["status"] if row else None
        raise RetryRefused(f"no event {event_id}" if row is None else
                           f"event {event_id} is {status}; only {_listed(CANCELLABLE)} events "
                           "can be cancelled")
    bridge.store.audit(actor, "cancel", why, now, event_id)
    return f"event {event_id} cancelled"


def reveal_phone(bridge: Bridge, event_id: int, actor: str) -> str | None:
    """The event's phone in full, written to the audit log as an operator's action."""
    row = bridge.store.get(event_id)
    phone = (row or {}).get("phone") or ((row or {}).get("recall") or {}).get("recall_telephone")
    if phone:
        bridge.store.audit(actor, "reveal", "phone shown in full",
                           bridge.settings.clock().timestamp(), event_id)
    return phone


def bulk_retry(bridge: Bridge, where: EventFilter, actor: str) -> dict[str, Any]:
    """Retry every failed, invalid or ignored event `where` selects (its status must be one
    of those); counts of what happened, and the first few refusals."""
    if where.status not in BULK_STATUSES:
        raise RetryRefused(f"a bulk retry takes {_listed(BULK_STATUSES, 'or')} events: "
                           "choose one")
    check_source(bridge, where.source)
    ids = bridge.store.ids(where, BULK_LIMIT + 1)
    if len(ids) > BULK_LIMIT:
        raise RetryRefused(f"more than {BULK_LIMIT} events: narrow the time range or source")
    done: dict[str, Any] = {"queued": 0, "refused": 0, "reasons": []}
    for event_id in ids:
        try:
            retry_event(bridge, event_id, actor=actor)
            done["queued"] += 1
        except RetryRefused as err:
            done["refused"] += 1
            if len(done["reasons"]) < 5:
                done["reasons"].append(str(err))
    bridge.store.audit(actor, "bulk-retry", f"{where.status} of {where.source or 'every source'}"
                       f": {done['queued']} queued, {done['refused']} refused",
                       bridge.settings.clock().timestamp())
    return done


def retry_writebacks(bridge: Bridge, actor: str, source: str | None = None,
                     ids: Iterable[int] | None = None) -> list[int]:
    """Queue failed write-backs again (these `ids`, or every one of `source`, or all, up to
    BULK_LIMIT), their attempts reset; the ids queued. The events do not change."""
    check_source(bridge, source)
    now = bridge.settings.clock().timestamp()
    chosen = bridge.store.retry_writebacks(now, reasons.WRITEBACK_REQUEUED(),
                                           ids=list(ids) if ids is not None else None,
                                           source=source, limit=BULK_LIMIT)
    if chosen:
        bridge.store.audit(actor, "retry-writebacks",
                           f"{len(chosen)} failed write-back(s) of "
                           f"{source or 'every source'} queued again", now)
        if bridge.worker is not None:
            bridge.worker.wake_writebacks()
    return chosen


def purge_events(bridge: Bridge, days: int, statuses: list[str], actor: str = "cli") -> int:
    """Delete finished events in `statuses` last changed more than `days` days ago (with
    their attempts); how many went. Written to the audit log, as every operator's action."""
    now = bridge.settings.clock().timestamp()
    removed = bridge.store.purge(now - days * 86400, statuses)
    bridge.store.audit(actor, "purge", f"{removed} event(s) ({', '.join(statuses)}) finished "
                       f"more than {days} day(s) ago", now)
    return removed


def phone_candidates(bridge: Bridge, typed: str) -> tuple[str, ...]:
    """A phone number as a person types it, normalized the way each source's mapping does
    (region and route prefix): what it would be stored as."""
    found = {d for d in ["".join(ch for ch in typed if ch.isdigit())] if d}
    for source in bridge.sources.values():
        for rule in source.rules:
            if rule.phone is not None:
                try:
                    found.add(to_phone(typed, region=rule.phone[0], prefix=rule.phone[1]))
                except ConversionError:
                    continue
    return tuple(sorted(found))


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

