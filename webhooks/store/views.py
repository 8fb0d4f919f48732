"""What operators see and do through the console and the admin API: event searches that stay
fast on large tables (keyset paging on the primary key, an index per filter), the overview's
counts and hourly series, each token's state, cancelling, and the audit log."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Integer, cast, func, insert, select, update

from ..lifecycle import CANCELLABLE, Status
from .events import result_is
from .tables import attempts, audit, events, holds, quota, slots
from .texts import text, why

# The columns of an events page row: not the body (big), not the recall (the phone is there).
LISTED = (events.c.id, events.c.source, events.c.status, events.c.customer_id, events.c.phone,
          events.c.reason, events.c.attempts, events.c.created_at, events.c.updated_at,
          events.c.next_attempt_at, events.c.token_key, events.c.reason_code,
          events.c.reason_params, events.c.result_state, events.c.call_result,
          events.c.called_at)
COUNT_CAP = 100_000  # a count past this says "more than" (a bulk action is refused past it)


@dataclass(frozen=True)
class EventFilter:
    """What an events page or a bulk action asks for; None or empty means any."""

    status: str | None = None
    source: str | None = None
    since: float | None = None  # created at or after (epoch s)
    until: float | None = None  # created before
    customer_id: str | None = None
    phones: tuple[str, ...] = ()  # the phone as dialled, in each source's normalization
    result: str | None = None  # the call's result: wolkvox's word, a result state, or none

    def where(self) -> list[Any]:
        found = []
        if self.status:
            found.append(events.c.status == self.status)
        if self.source:
            found.append(events.c.source == self.source)
        if self.since is not None:
            found.append(events.c.created_at >= self.since)
        if self.until is not None:
            found.append(events.c.created_at < self.until)
        if self.customer_id:
            found.append(events.c.customer_id == self.customer_id)
        if self.phones:
            found.append(events.c.phone.in_(list(self.phones)))
        if self.result:
            found.append(result_is(self.result))
        return found


class ViewStore:
    """Mixed into `Store`; expects `_tx()` and `dialect`."""

    dialect: str
    _tx: Callable[..., AbstractContextManager[Connection]]  # EventStore's transaction

    # --- events ----------------------------------------------------------------------------
    def search(self, where: EventFilter, before: int | None = None,
               limit: int = 50) -> list[dict[str, Any]]:
        """The newest events matching `where`, with ids below `before` (the previous page's
        last id): each page costs the same, however deep."""
        query = select(*LISTED).where(*where.where()).order_by(events.c.id.desc()).limit(limit)
        if before is not None:
            query = query.where(events.c.id < before)
        with self._tx(read=True) as db:
            return [dict(row) for row in db.execute(query).mappings()]

    def count(self, where: EventFilter, cap: int = COUNT_CAP) -> int:
        """How many events match, counted up to `cap` (cap + 1 means "more")."""
        inner = select(events.c.id).where(*where.where()).limit(cap + 1).subquery()
        with self._tx(read=True) as db:
            return db.execute(select(func.count()).select_from(inner)).scalar_one()

    def ids(self, where: EventFilter, limit: int = COUNT_CAP) -> list[int]:
        """The ids matching `where`, oldest first (a bulk action works through them)."""
        query = select(events.c.id).where(*where.where()).order_by(events.c.id).limit(limit)
        with self._tx(read=True) as db:
            return list(db.execute(query).scalars())

    def cancel(self, event_id: int, reason: str, now: float) -> bool:
        """A queued event becomes `cancelled` with the operator's reason; False if it is not
        queued any more (a worker took it, or it is finished)."""
        with self._tx() as db:
            return bool(db.execute(update(events).where(
                events.c.id == event_id, events.c.status.in_(list(CANCELLABLE))).values(
                status=Status.CANCELLED, **why(reason), updated_at=now)).rowcount)

    def latest(self, status: str, source: str | None = None, after: int = 0,
               limit: int = 20) -> list[dict[str, Any]]:
        """The newest events of one status (the capture page's test events), newer than
        `after` when given."""
        query = (select(*LISTED, events.c.raw, events.c.recall)
                 .where(events.c.status == status, events.c.id > after)
                 .order_by(events.c.id.desc()).limit(limit))
        if source:
            query = query.where(events.c.source == source)
        with self._tx(read=True) as db:
            return [dict(row) for row in db.execute(query).mappings()]

    # --- the overview ----------------------------------------------------------------------
    def called_since(self, since: float) -> list[tuple[str, float, str]]:
        """(source, called_at, wolkvox's word) of every call result dated since `since`."""
        with self._tx(read=True) as db:
            return [(r.source, r.called_at, r.call_result) for r in db.execute(
                select(events.c.source, events.c.called_at, events.c.call_result).where(
                    events.c.called_at >= since, events.c.call_result.is_not(None)))]

    def counts_by_source(self, since: float) -> dict[str, dict[str, int]]:
        """{source: {status: events created since `since`}}."""
        query = (select(events.c.source, events.c.status, func.count())
                 .where(events.c.created_at >= since)
                 .group_by(events.c.source, events.c.status))
        found: dict[str, dict[str, int]] = defaultdict(dict)
        with self._tx(read=True) as db:
            for source, status, n in db.execute(query):
                found[source][status] = n
        return dict(found)

    def hourly(self, since: float) -> dict[str, dict[int, int]]:
        """{"received": {hour: n}, "delivered": {hour: n}}, hours as epoch seconds // 3600:
        events created, and recalls delivered (their successful attempt), since `since`."""
        created, done = self._hour(events.c.created_at), self._hour(attempts.c.at)
        received = (select(created, func.count()).where(
            events.c.created_at >= since, events.c.status != Status.TEST).group_by(created))
        delivered = (select(done, func.count())
                     .where(attempts.c.at >= since, attempts.c.outcome == "delivered")
                     .group_by(done))
        with self._tx(read=True) as db:
            return {"received": {int(h): n for h, n in db.execute(received)},
                    "delivered": {int(h): n for h, n in db.execute(delivered)}}

    def _hour(self, column: Any) -> Any:
        # floor(epoch / 3600): CAST truncates on SQLite and rounds on PostgreSQL
        if self.dialect == "postgresql":
            return func.floor(column / 3600)
        return cast(column / 3600, Integer)

    def tokens(self, now: float, days: dict[str, str]) -> dict[str, dict[str, Any]]:
        """Per token: calls in flight now, quota used on its day (`days`: token -> the day
        in its time zone), its hold, queue depth and the oldest due event's wait."""
        found: dict[str, dict[str, Any]] = {key: {"in_flight": 0, "quota_used": 0, "queued": 0,
                                                  "oldest_due": None, "hold": None}
                                            for key in days}
        with self._tx(read=True) as db:
            # A delivery thread holds its slot while it looks for due events too: a call is
            # in flight on a held slot only while the token has an event being sent.
            held: dict[str, int] = dict(db.execute(select(slots.c.token_key, func.count()).where(
                slots.c.holder.is_not(None), slots.c.lease_until > now)
                .group_by(slots.c.token_key)).all())
            sending: dict[str, int] = dict(db.execute(
                select(events.c.token_key, func.count()).where(
                    events.c.status == Status.SENDING).group_by(events.c.token_key)).all())
            for key, n in held.items():
                found.setdefault(key, {})["in_flight"] = min(n, sending.get(key, 0))
            for key, day in days.items():
                used = db.execute(select(quota.c.used).where(
                    quota.c.token_key == key, quota.c.day == day)).scalar()
                found[key]["quota_used"] = used or 0
            for key, n in db.execute(select(events.c.token_key, func.count()).where(
                    events.c.status == Status.QUEUED).group_by(events.c.token_key)):
                found.setdefault(key, {})["queued"] = n
            for key, oldest in db.execute(
                    select(events.c.token_key, func.min(events.c.created_at)).where(
                        events.c.status == Status.QUEUED, events.c.next_attempt_at <= now)
                    .group_by(events.c.token_key)):
                found.setdefault(key, {})["oldest_due"] = oldest  # created_at: its age
            for row in db.execute(select(holds)).mappings():
                found.setdefault(row["token_key"], {})["hold"] = dict(row)
        return found

    # --- the audit log ---------------------------------------------------------------------
    def audit(self, actor: str, action: str, detail: str, now: float,
              event_id: int | None = None) -> None:
        """Record what an operator did."""
        with self._tx() as db:
            db.execute(insert(audit).values(at=now, actor=actor[:64], action=action[:32],
                                            event_id=event_id, detail=text(detail)))

    def audit_since(self, after: int, action: str, since: float) -> list[dict[str, Any]]:
        """Audit entries of one `action` with ids above `after`, written at or after `since`,
        oldest first: what a process has not seen yet (the primary key bounds the scan)."""
        query = (select(audit.c.id, audit.c.at, audit.c.detail)
                 .where(audit.c.id > after, audit.c.action == action, audit.c.at >= since)
                 .order_by(audit.c.id))
        with self._tx(read=True) as db:
            return [dict(row) for row in db.execute(query).mappings()]

    def last_audit_id(self) -> int:
        """The newest audit entry's id (0: none)."""
        with self._tx(read=True) as db:
            return db.execute(select(func.max(audit.c.id))).scalar() or 0

    def audit_log(self, limit: int = 100, event_id: int | None = None) -> list[dict[str, Any]]:
        query = select(audit).order_by(audit.c.id.desc()).limit(limit)
        if event_id is not None:
            query = query.where(audit.c.event_id == event_id)
        with self._tx(read=True) as db:
            return [dict(row) for row in db.execute(query).mappings()]
