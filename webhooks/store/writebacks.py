"""Write-backs as rows: the outbox of what the bridge tells each CRM about a callback.

A write-back is written in the transaction of the outcome that causes it (`enqueue`, called
by `EventStore.finish` and `ResultStore.record_results`), so nothing is lost between an
outcome and its notice. The delivery processes claim due ones (a lease, as events have;
`FOR UPDATE SKIP LOCKED` on PostgreSQL), send them through their source's rate gate and
write how it went. An event's own status never changes because of its write-backs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, func, insert, or_, select, update

from ..lifecycle import Moment, WritebackStatus
from .tables import events, writebacks
from .texts import text, why

ANSWER_KEPT = 500  # characters of a CRM's answer kept on the row

# A source's write-back entries for a moment (a mapping's `writeback:`, compiled by the
# mapping layer): the store only writes the rows its caller names.
NoticesOf = Callable[[str, Moment], Sequence[str]]


@dataclass(frozen=True)
class ClaimedWriteback:
    """A write-back claimed for sending, with what its templates read."""

    id: int
    event_id: int | None  # None: an operators' alert
    source: str
    name: str
    moment: str
    facts: dict[str, Any]
    attempts: int
    raw: Any  # the event as the CRM sent it (its ids)


@dataclass(frozen=True)
class WritebackOutcome:
    """How one send went: its new status, why, and the CRM's answer."""

    status: WritebackStatus
    reason: str
    count: bool = False  # a failed attempt that counts toward WRITEBACK_ATTEMPTS
    next_attempt_at: float | None = None
    http_status: int | None = None
    answer: str | None = None
    held: bool = False  # the CRM refused the credentials: the source's write-backs wait


def enqueue(db: Connection, event_id: int | None, source: str, names: Sequence[str], moment: str,
            facts: Mapping[str, Any], now: float) -> int:
    """Queue one write-back per entry name, inside the caller's transaction; how many."""
    if not names:
        return 0
    db.execute(insert(writebacks), [
        {"event_id": event_id, "source": source, "name": name[:64], "moment": moment,
         "facts": dict(facts), "status": WritebackStatus.QUEUED, "attempts": 0,
         "next_attempt_at": now, "created_at": now, "updated_at": now, "reason": ""}
        for name in names])
    return len(names)


def enqueue_for_event(db: Connection, event_id: int, moment: str,
                      names_of: Callable[[str], Sequence[str]], facts: Mapping[str, Any],
                      now: float) -> None:
    """Queue the write-backs `names_of(source)` names for an event's `moment`, inside the
    caller's transaction (after its outcome is written), with the facts their templates read:
    the moment, the recall as sent and its date, frozen now, and `facts`."""
    row = db.execute(select(events.c.source, events.c.recall, events.c.scheduled_for)
                     .where(events.c.id == event_id)).one()
    names = names_of(row.source)
    if names:
        enqueue(db, event_id, row.source, names, moment,
                {"at": now, "recall": row.recall, "scheduled_for": row.scheduled_for, **facts},
                now)


def _due(now: float) -> Any:
    """A write-back that may be claimed: queued and due, or sending with its lease run out
    (its process stopped)."""
    return or_(and_(writebacks.c.status == WritebackStatus.QUEUED,
                    writebacks.c.next_attempt_at <= now),
               and_(writebacks.c.status == WritebackStatus.SENDING,
                    writebacks.c.lease_until < now))


class WritebackStore:
    """Mixed into `Store`; expects `self._tx()`."""

    _tx: Callable[..., AbstractContextManager[Connection]]

    def claim_writeback(self, sources: Iterable[str], holder: str, now: float,
                        lease: float) -> ClaimedWriteback | None:
        """The oldest due write-back of `sources` (queued and due, or sending with its lease
        run out: its process stopped), marked ours until now + lease; None when none is."""
        names = list(sources)
        if not names:
            return None
        with self._tx() as db:
            row = db.execute(
                select(writebacks.c.id, writebacks.c.event_id, writebacks.c.source,
                       writebacks.c.name, writebacks.c.moment, writebacks.c.facts,
                       writebacks.c.attempts)
                .where(_due(now), writebacks.c.source.in_(names))
                .order_by(writebacks.c.next_attempt_at, writebacks.c.id).limit(1)
                .with_for_update(skip_locked=True)).first()
            if row is None:
                return None
            db.execute(update(writebacks).where(writebacks.c.id == row.id).values(
                status=WritebackStatus.SENDING, holder=holder, lease_until=now + lease,
                updated_at=now))
            raw = None if row.event_id is None else db.execute(
                select(events.c.raw).where(events.c.id == row.event_id)).scalar()
        return ClaimedWriteback(row.id, row.event_id, row.source, row.name, row.moment,
                                dict(row.facts or {}), row.attempts, raw)

    def any_writeback_due(self, sources: Iterable[str], now: float) -> bool:
        """Is a write-back of `sources` due? (One read, no write lock: an idle bridge's poll.)"""
        names = list(sources)
        if not names:
            return False
        with self._tx(read=True) as db:
            return db.execute(select(writebacks.c.id).where(
                writebacks.c.source.in_(names), _due(now)).limit(1)).first() is not None

    def finish_writeback(self, writeback_id: int, holder: str, outcome: WritebackOutcome,
                         now: float) -> bool:
        """Write how a claimed write-back went; False when it is no longer ours."""
        values: dict[str, Any] = {
            "status": outcome.status, **why(outcome.reason), "updated_at": now,
            "holder": None, "lease_until": None}
        if outcome.count:
            values["attempts"] = writebacks.c.attempts + 1
        if outcome.next_attempt_at is not None:
            values["next_attempt_at"] = outcome.next_attempt_at
        if outcome.http_status is not None:
            values["http_status"] = outcome.http_status
        if outcome.answer is not None:
            values["answer"] = text(outcome.answer[:ANSWER_KEPT])
        if outcome.status == WritebackStatus.DONE:
            values["sent_at"] = now
        with self._tx() as db:
            return bool(db.execute(update(writebacks).where(
                writebacks.c.id == writeback_id, writebacks.c.holder == holder,
                writebacks.c.status == WritebackStatus.SENDING).values(**values)).rowcount)

    def note_writebacks_waiting(self, source: str, reason: str, now: float) -> int:
        """Say on a source's queued write-backs why they wait (its credentials are held)."""
        with self._tx() as db:
            return db.execute(update(writebacks).where(
                writebacks.c.source == source,
                writebacks.c.status == WritebackStatus.QUEUED).values(
                **why(reason), updated_at=now)).rowcount

    def writebacks_of(self, event_id: int) -> list[dict[str, Any]]:
        """An event's write-backs, oldest first, as rows."""
        with self._tx(read=True) as db:
            rows = db.execute(select(writebacks).where(writebacks.c.event_id == event_id)
                              .order_by(writebacks.c.id))
            return [dict(row._mapping) for row in rows]

    def writeback(self, writeback_id: int) -> dict[str, Any] | None:
        with self._tx(read=True) as db:
            row = db.execute(select(writebacks).where(writebacks.c.id == writeback_id)).first()
            return dict(row._mapping) if row is not None else None

    def writeback_counts(self) -> dict[tuple[str, str], int]:
        """How many write-backs each source has in each status."""
        with self._tx(read=True) as db:
            rows = db.execute(select(writebacks.c.source, writebacks.c.status, func.count())
                              .group_by(writebacks.c.source, writebacks.c.status))
            return {(source, status): n for source, status, n in rows}

    def retry_writebacks(self, now: float, reason: str, ids: Iterable[int] | None = None,
                         source: str | None = None, limit: int = 1000) -> list[int]:
        """An operator's retry: failed write-backs (these `ids`, or of `source`, or all, the
        oldest `limit`) queued again with their attempts reset; the ids re-queued."""
        which = [writebacks.c.status == WritebackStatus.FAILED]
        if ids is not None:
            which.append(writebacks.c.id.in_(list(ids)))
        if source is not None:
            which.append(writebacks.c.source == source)
        with self._tx() as db:
            chosen = list(db.execute(select(writebacks.c.id).where(*which)
                                     .order_by(writebacks.c.id).limit(limit)).scalars())
            if chosen:
                db.execute(update(writebacks).where(writebacks.c.id.in_(chosen), *which).values(
                    status=WritebackStatus.QUEUED, attempts=0, next_attempt_at=now,
                    updated_at=now, **why(reason)))
            return chosen
