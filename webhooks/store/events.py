"""Event and attempt queries: claim due events, record outcomes, read them (storing a
request's events is ingest.py)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Connection,
    Engine,
    Float,
    and_,
    bindparam,
    cast,
    delete,
    func,
    insert,
    not_,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.exc import SQLAlchemyError

from ..lifecycle import AttemptOutcome, Moment, Received, ResultState, Status
from ..reasons import (
    CLAIMED_AGAIN,
    SUPERSEDED_BEFORE_SENT,
    SUPERSEDED_BY_WAS,
    SUPERSEDED_WORKER_STOPPED,
)
from .errors import translate
from .holders import lapsed_holders
from .limits import Hold, refund
from .results import replace_awaiting
from .sqlite import READ_ONLY
from .tables import attempts, campaign_records, events, writebacks
from .texts import text, why
from .writebacks import enqueue_for_event


@dataclass(frozen=True)
class NewEvent:
    """One event of a request, ready to store: mapped (`recall`) or `invalid` with a reason."""

    source: str
    dedup_key: str
    token_key: str
    raw: Any
    status: Status = Status.QUEUED
    recall: dict[str, str] | None = None
    reason: str = ""
    next_attempt_at: float | None = None
    lead: tuple[str, str] | None = None  # (campaign, customer) before mapping (lookups)
    occurred_at: float | None = None  # the CRM's time of the change, when the mapping says


@dataclass(frozen=True)
class Outcome:
    """What storing one event did (accepted, duplicate, invalid...), with the event id."""

    result: Received
    id: int
    status: str
    superseded: tuple[int, ...] = ()


@dataclass(frozen=True)
class Attempt:
    """One call to wolkvox (or a decision without one), as recorded for an operator."""

    outcome: AttemptOutcome
    reason: str
    latency_ms: float | None = None
    http_status: int | None = None
    wolkvox_code: int | None = None
    wolkvox_msg: str | None = None


@dataclass(frozen=True)
class Decision:
    """Where a claimed event goes next, and why: what the worker decided, with what it costs
    the token. Deciding writes nothing: the drain applies `hold` and `lifts`, and `finish`
    gives back `refund` quota units in the outcome's own transaction, so a decision written
    twice (salvage after a store error) refunds once."""

    status: Status
    reason: str
    attempt: Attempt | None = None
    count: bool = False  # a failed attempt that counts toward the backoff
    next_attempt_at: float | None = None
    recall: dict[str, str] | None = None  # the recall as sent (dates may have moved)
    scheduled_for: float | None = None  # delivered: the epoch its recall_date names
    refund: int = 0  # quota units reserved for it that no call spent
    hold: Hold | None = None  # stop using the token (or the lookup's credentials) until then
    lifts: tuple[str, float] | None = None  # a hold (key, since) this outcome proved needless
    awaits_result: bool = False  # delivered with call results on: its call's result is asked
    notices: tuple[str, ...] = ()  # the source's write-backs this outcome queues (its moment)
    before: tuple[Attempt, ...] = ()  # calls made before the main one (an add_record)
    extra_units: int = 0  # quota units its calls spent beyond the one reserved with its claim
    added: bool = False  # its lead was added to its recall's campaign (remember it)


Quota = tuple[str, str, int]  # (token_key, day, daily limit)
# The outcome a write-back tells (a mapping's `writeback: on:`), by the status it leaves.
MOMENTS = {Status.DELIVERED: Moment.SCHEDULED, Status.FAILED: Moment.FAILED,
           Status.EXPIRED: Moment.EXPIRED}
LEAD = (events.c.token_key, events.c.campaign_id, events.c.customer_id)  # one lead's events
LEAD_IS = (events.c.token_key == bindparam("t"), events.c.campaign_id == bindparam("c"),
           events.c.customer_id == bindparam("u"))
# The order of a lead's events: the CRM's time of the change when both events have one (a
# mapping's occurred_at), else when the bridge acknowledged each (created_at: the request's
# arrival, kept by the spool for a request replayed later); equal, the one stored later wins.
# The new event's values are bound, cast so that PostgreSQL knows their type even when null.
NEW_OCCURRED = cast(bindparam("o", type_=Float), Float)
NEW_ACKNOWLEDGED = cast(bindparam("a", type_=Float), Float)
_BY_CRM = and_(NEW_OCCURRED.is_not(None), events.c.occurred_at.is_not(None))
LATER_THAN_NEW = or_(and_(_BY_CRM, events.c.occurred_at > NEW_OCCURRED),
                     and_(not_(_BY_CRM), events.c.created_at > NEW_ACKNOWLEDGED))
NOT_LATER_THAN_NEW = or_(and_(_BY_CRM, events.c.occurred_at <= NEW_OCCURRED),
                         and_(not_(_BY_CRM), events.c.created_at <= NEW_ACKNOWLEDGED))
# A change of the lead later than this event's, already known: this one is late.
LATER = select(events.c.id, events.c.occurred_at, events.c.created_at).where(
    *LEAD_IS, LATER_THAN_NEW, events.c.id != bindparam("n"),
    or_(*(events.c.status == status for status in (Status.QUEUED, Status.SENDING,
                                                    Status.DELIVERED)))).limit(1)


@dataclass(frozen=True)
class Claimed:
    id: int
    source: str
    raw: Any
    recall: dict[str, str] | None
    attempts: int
    age_from: float  # when it was stored, or last re-queued by an operator: MAX_EVENT_AGE
    occurred_at: float | None = None  # the CRM's time of the change, when the mapping says
    # read with the claim: its lead's last delivered recall (None: not read; a LastDelivered
    # whose row is None: the lead has none)
    last_delivered: LastDelivered | None = None


@dataclass(frozen=True)
class LastDelivered:
    """A lead's last delivered recall (id, phone, raw, scheduled_for) as the claim found it,
    for the repeat check before its next call (delivery/decide.py), read off the call's path:
    a claim is made ahead, while the previous call is in flight."""

    lead: tuple[str, str, str]  # token key, campaign id, customer id
    row: dict[str, Any] | None

    def ahead(self, now: float) -> dict[str, Any] | None:
        """The row when it is still set to ring after `now`, else None."""
        return still_ahead(self.row, now)


def still_ahead(row: Any, now: float) -> dict[str, Any] | None:
    if row is None or row["scheduled_for"] is None or row["scheduled_for"] <= now:
        return None
    return dict(row)


def _last_delivered(db: Connection, rows: Sequence[Any]) -> dict[tuple[str, str, str],
                                                                  LastDelivered]:
    """For the claimed rows of mapped events, each lead's last delivered recall, in one query.
    A lead claimed twice in one batch is left out (its first call changes the answer)."""
    leads = Counter((r.token_key, r.campaign_id, r.customer_id) for r in rows
                    if r.recall is not None and r.customer_id)
    wanted = [lead for lead, times in leads.items() if times == 1]
    if not wanted:
        return {}
    found: dict[tuple[str, str, str], LastDelivered] = {
        lead: LastDelivered(lead, None) for lead in wanted}
    for row in db.execute(select(events.c.id, events.c.phone, events.c.raw,
                                 events.c.scheduled_for, *LEAD).where(
            events.c.status == Status.DELIVERED, tuple_(*LEAD).in_(wanted))
            .order_by(events.c.id)).mappings():
        lead = (row["token_key"], row["campaign_id"], row["customer_id"])
        found[lead] = LastDelivered(lead, {key: row[key] for key in
                                           ("id", "phone", "raw", "scheduled_for")})
    return found


class EventStore:
    """Mixed into `Store`; expects `self.engine` and `self.dialect`."""

    engine: Engine
    dialect: str

    if TYPE_CHECKING:  # LimitStore's (quota units), beside this one in Store
        def _reserve(self, db: Connection, token_key: str, day: str, limit: int,
                     units: int = 1) -> int: ...

    @contextmanager
    def _tx(self, read: bool = False) -> Iterator[Connection]:
        """A transaction; `read`: one that only reads (on SQLite it takes no write lock)."""
        try:
            if read:
                with self.engine.connect() as connection:
                    connection.execution_options(**{READ_ONLY: True})
                    with connection.begin():
                        yield connection
            else:
                with self.engine.begin() as connection:
                    yield connection
        except SQLAlchemyError as err:
            raise translate(err, getattr(self, "timeouts", None)) from err

    # --- delivery ----------------------------------------------------------------------
    def claim(self, sources: Iterable[str], holder: str, now: float, lease: float,
              limit: int = 1, quota: Quota | None = None) -> list[Claimed] | None:
        """Mark up to `limit` due queued events of `sources` as ours until now + lease.

        With `quota`, one unit of the token's day is reserved per event in the same
        transaction; None means the quota is used up (nothing was claimed)."""
        with self._tx() as db:
            return self._claim(db, sources, holder, now, lease, limit, quota)

    def _claim(self, db: Connection, sources: Iterable[str], holder: str, now: float,
               lease: float, limit: int = 1, quota: Quota | None = None) -> list[Claimed] | None:
        due = (select(events.c.id, events.c.source, events.c.raw, events.c.recall,
                      events.c.attempts, events.c.created_at, events.c.requeued_at,
                      events.c.occurred_at, *LEAD)
               .where(events.c.status == Status.QUEUED, events.c.next_attempt_at <= now,
                      events.c.source.in_(list(sources)))
               .order_by(events.c.next_attempt_at, events.c.id).limit(limit)
               .with_for_update(skip_locked=True))
        rows = db.execute(due).all()
        if not rows:
            return []
        # A lead's newer event waits while an older one is being sent, so that wolkvox gets
        # the newer callback last. Few events are `sending` at once: read them all.
        busy = (select(*LEAD, func.min(events.c.id)).where(events.c.status == Status.SENDING)
                .group_by(*LEAD))
        oldest_sending = {(t, c, u): i for t, c, u, i in db.execute(busy)}
        rows = [r for r in rows
                if oldest_sending.get((r.token_key, r.campaign_id, r.customer_id), r.id) >= r.id]
        if not rows:
            return []
        if quota is not None:
            granted = self._reserve(db, *quota, len(rows))
            if not granted:
                return None
            rows = rows[:granted]
        db.execute(update(events).where(events.c.id.in_([r.id for r in rows])).values(
            status=Status.SENDING, holder=holder, lease_until=now + lease, updated_at=now))
        last = _last_delivered(db, rows)
        return [Claimed(r.id, r.source, r.raw, r.recall, r.attempts,
                        max(r.created_at, r.requeued_at or 0.0), r.occurred_at,
                        last.get((r.token_key, r.campaign_id, r.customer_id))) for r in rows]

    def finish(self, event_id: int, holder: str, decision: Decision, now: float,
               quota_day: tuple[str, str] | None = None) -> bool:
        """Record where a claimed event goes next, why, and the attempt, and give its
        `refund` back to `quota_day` (token key, day; None: no daily limit). False (nothing
        written, nothing refunded) when the event is no longer ours: its lease ran out and it
        was claimed again, or this outcome was written already.
        A retry becomes `superseded` when a newer event of the same lead has arrived."""
        values: dict[str, Any] = {"status": decision.status, **why(decision.reason),
                                  "updated_at": now, "holder": None, "lease_until": None}
        if decision.count:
            values["attempts"] = events.c.attempts + 1
        if decision.next_attempt_at is not None:
            values["next_attempt_at"] = decision.next_attempt_at
        if decision.recall is not None:
            values.update(_lead_values(decision.recall))
        if decision.scheduled_for is not None:
            values["scheduled_for"] = decision.scheduled_for
        if decision.status == Status.DELIVERED:
            values["delivered_at"] = now
            if decision.awaits_result:
                values["result_state"] = ResultState.AWAITING
        with self._tx() as db:
            if decision.status == Status.QUEUED:
                newer = db.execute(select(events.c.id).where(
                    _newer_of_lead(event_id), events.c.status.in_(
                        [Status.QUEUED, Status.SENDING])).limit(1)).scalar()
                if newer is not None:
                    values.update(status=Status.SUPERSEDED, **why(SUPERSEDED_BY_WAS(
                        event=newer, reason=decision.reason)))
            ours = bool(db.execute(update(events).where(
                events.c.id == event_id, events.c.holder == holder,
                events.c.status == Status.SENDING).values(**values)).rowcount)
            for before in decision.before if ours else ():
                db.execute(insert(attempts).values(event_id=event_id, at=now,
                                                   **_attempt_row(before)))
            if ours and decision.attempt is not None:
                db.execute(insert(attempts).values(event_id=event_id, at=now,
                                                   **_attempt_row(decision.attempt)))
            if ours and decision.added and decision.recall is not None:
                remember_record(db, event_id, decision.recall, now)
            if ours and decision.extra_units and quota_day is not None:
                refund(db, *quota_day, -decision.extra_units)  # spent: counted as used
            if ours and decision.awaits_result:
                replace_awaiting(db, event_id, now)
            if ours and decision.refund and quota_day is not None:
                refund(db, *quota_day, decision.refund)
            moment = MOMENTS.get(decision.status)
            if ours and decision.notices and moment is not None:  # the row holds the recall now
                enqueue_for_event(db, event_id, moment, lambda _source: decision.notices,
                                  why(decision.reason), now)
            return ours

    def has_record(self, token_key: str, campaign_id: str, customer_id: str) -> bool:
        """Has the bridge added this customer to this campaign (add_record)?"""
        with self._tx(read=True) as db:
            return db.execute(select(campaign_records.c.added_at).where(
                campaign_records.c.token_key == token_key,
                campaign_records.c.campaign_id == campaign_id,
                campaign_records.c.customer_id == customer_id)).first() is not None

    def release(self, ids: Sequence[int], holder: str, now: float, reason: str = "") -> int:
        """Give back claimed events that were not sent (a hold, a stop, a batch kept too
        long); one whose lead has a newer event meanwhile is superseded instead. Returns how
        many were given back either way (their quota units are to be refunded)."""
        if not ids:
            return 0
        ours = (events.c.id.in_(list(ids)), events.c.holder == holder,
                events.c.status == Status.SENDING)
        with self._tx() as db:
            return _unclaim(db, ours, now, SUPERSEDED_BEFORE_SENT(), reason)

    def any_due(self, sources: Iterable[str], now: float) -> bool:
        """Is any queued event of `sources` due now? (A lower-priority caller of a token's
        gate waits while recalls are.)"""
        with self._tx(read=True) as db:
            return db.execute(select(events.c.id).where(
                events.c.status == Status.QUEUED, events.c.next_attempt_at <= now,
                events.c.source.in_(list(sources))).limit(1)).first() is not None

    def note_waiting(self, sources: Iterable[str], reason: str, now: float) -> int:
        """Write why queued events of `sources` wait (a held token), so an operator sees it."""
        with self._tx() as db:
            return db.execute(update(events).where(
                events.c.status == Status.QUEUED, events.c.source.in_(list(sources)),
            ).values(**why(reason), updated_at=now)).rowcount

    def requeue_abandoned(self, now: float) -> int:
        """`sending` events whose holder is dead (life.py) go back to the queue, or are
        superseded when a newer event of the same lead has arrived meanwhile."""
        with self._tx(read=True) as db:  # nearly always none: no write lock to find that
            if not lapsed_holders(db, self.dialect, now):
                return 0
        with self._tx() as db:
            dead = lapsed_holders(db, self.dialect, now)
            if not dead:
                return 0
            lapsed = (events.c.status == Status.SENDING, events.c.holder.in_(sorted(dead)))
            return _unclaim(db, lapsed, now, SUPERSEDED_WORKER_STOPPED(), CLAIMED_AGAIN())

    def later_change(self, token_key: str, campaign_id: str, customer_id: str,
                     occurred_at: float, event_id: int) -> tuple[int, float] | None:
        """A change of the lead the CRM made after `occurred_at`, already stored and not
        superseded (its id and time): the event `event_id` is then late. For sources that
        look the lead up, whose lead is known only once they are mapped."""
        with self._tx(read=True) as db:
            row = db.execute(LATER, {"t": token_key, "c": campaign_id, "u": customer_id,
                                     "o": occurred_at, "a": None, "n": event_id}).first()
            return (row.id, row.occurred_at) if row else None

    def dialled(self, token_key: str, campaign_id: str, customer_id: str, since: float,
                until: float) -> list[float]:
        """When the lead's delivered recalls were set to ring, between `since` and `until`
        (recalls still ahead are left out: the next one sent replaces them in wolkvox)."""
        with self._tx(read=True) as db:
            return list(db.execute(select(events.c.scheduled_for).where(
                events.c.token_key == token_key, events.c.campaign_id == campaign_id,
                events.c.customer_id == customer_id, events.c.status == Status.DELIVERED,
                events.c.scheduled_for >= since, events.c.scheduled_for <= until)).scalars())

    def ahead_in_wolkvox(self, token_key: str, campaign_id: str, customer_id: str,
                         now: float, event_id: int) -> dict[str, Any] | None:
        """The lead's last delivered recall (id, phone, raw, scheduled_for) when it is still
        ahead (set to ring after `now`), else None: a repeat of its request is no new call."""
        with self._tx(read=True) as db:
            row = db.execute(select(
                events.c.id, events.c.phone, events.c.raw, events.c.scheduled_for).where(
                events.c.token_key == token_key, events.c.campaign_id == campaign_id,
                events.c.customer_id == customer_id, events.c.status == Status.DELIVERED,
                events.c.id != event_id).order_by(events.c.id.desc()).limit(1)).mappings().first()
            return still_ahead(row, now)

    # --- reading -----------------------------------------------------------------------
    def get(self, event_id: int) -> dict[str, Any] | None:
        with self._tx(read=True) as db:
            row = db.execute(select(events).where(events.c.id == event_id)).mappings().first()
            return dict(row) if row else None

    def statuses(self, ids: Sequence[int]) -> dict[int, tuple[str, str]]:
        """{id: (status, reason)} for the given ids."""
        with self._tx(read=True) as db:
            rows = db.execute(select(events.c.id, events.c.status, events.c.reason)
                              .where(events.c.id.in_(list(ids)))).all()
        return {r.id: (r.status, r.reason) for r in rows}

    def list_events(self, status: str | None = None, source: str | None = None,
                    limit: int = 50, result: str | None = None) -> list[dict[str, Any]]:
        """The newest events; `result`: wolkvox's word for the call (ANSWER, BUSY...), or a
        result state (awaiting, missing, replaced), or `none` (no result)."""
        query = select(events).order_by(events.c.id.desc()).limit(limit)
        if status:
            query = query.where(events.c.status == status)
        if result:
            query = query.where(result_is(result))
        if source:
            query = query.where(events.c.source == source)
        with self._tx(read=True) as db:
            return [dict(r) for r in db.execute(query).mappings()]

    def attempts_of(self, event_id: int) -> list[dict[str, Any]]:
        with self._tx(read=True) as db:
            return [dict(r) for r in db.execute(
                select(attempts).where(attempts.c.event_id == event_id)
                .order_by(attempts.c.id)).mappings()]

    def last_answer(self, event_id: int) -> dict[str, Any] | None:
        with self._tx(read=True) as db:
            row = db.execute(select(attempts).where(attempts.c.event_id == event_id)
                             .order_by(attempts.c.id.desc()).limit(1)).mappings().first()
            return dict(row) if row else None

    def counts(self) -> dict[str, int]:
        """How many events are in each status."""
        with self._tx(read=True) as db:
            rows = db.execute(select(events.c.status, func.count()).group_by(events.c.status))
            return {status: n for status, n in rows}

    def purge(self, before: float, statuses: Iterable[str]) -> int:
        """Delete events in `statuses` last changed before `before`, with their attempts and
        write-backs."""
        with self._tx() as db:
            old = select(events.c.id).where(events.c.status.in_(list(statuses)),
                                            events.c.updated_at < before)
            db.execute(delete(attempts).where(attempts.c.event_id.in_(old)))
            db.execute(delete(writebacks).where(writebacks.c.event_id.in_(old)))
            return db.execute(delete(events).where(events.c.status.in_(list(statuses)),
                                                   events.c.updated_at < before)).rowcount

    def requeue(self, event_id: int, now: float, reason: str,
                recall: dict[str, str] | None = None, at: float | None = None,
                status: Status = Status.QUEUED,
                was: tuple[str, float] | None = None) -> bool:
        """An operator's retry: queued again (due at `at`, default now), attempts reset, its
        age counted afresh (requeued_at); created_at and the attempts so far are kept, and the
        retry itself is written among them. With `status` invalid or ignored, an event judged
        again with today's mapping keeps that verdict and its new reason instead.

        With `was` (status, updated_at as the operator's read found them), only if the event
        is still so: False, and nothing written, when another retry or cancel came first."""
        values: dict[str, Any] = {"status": status, **why(reason), "updated_at": now}
        if status == Status.QUEUED:
            values.update(attempts=0, next_attempt_at=now if at is None else at,
                          requeued_at=now, holder=None, lease_until=None)
        if recall is not None:
            values.update(_lead_values(recall))
        which = [events.c.id == event_id]
        if was is not None:
            which += [events.c.status == was[0], events.c.updated_at == was[1]]
        with self._tx() as db:
            if not db.execute(update(events).where(*which).values(**values)).rowcount:
                return False
            db.execute(insert(attempts).values(event_id=event_id, at=now,
                                               outcome=AttemptOutcome.REQUEUED,
                                               **why(reason)))
        return True


def result_is(result: str) -> Any:
    """The events whose call result is `result`: a word of wolkvox's, a result state, or
    `none`."""
    if result.lower() == "none":
        return events.c.call_result.is_(None)
    if result.lower() in {state.value for state in ResultState}:
        return events.c.result_state == result.lower()
    return events.c.call_result == result.upper()


def _attempt_row(attempt: Attempt) -> dict[str, Any]:
    row = dict(attempt.__dict__)
    row.update(why(row["reason"]))
    if row["wolkvox_msg"] is not None:
        row["wolkvox_msg"] = text(row["wolkvox_msg"])
    if row["wolkvox_code"] is not None and not -2**31 <= row["wolkvox_code"] < 2**31:
        row["wolkvox_code"] = None  # an absurd code in an answer is not worth a failed write
    return row


def _lead_values(recall: dict[str, str]) -> dict[str, Any]:
    """The recall and the lead columns that supersede and ordering work on."""
    return {"recall": recall, "campaign_id": recall.get("campaign_id"),
            "customer_id": recall.get("customer_id"), "phone": recall.get("recall_telephone")}


def _unclaim(db: Connection, which: tuple[Any, ...], now: float, superseded_reason: str,
             queued_reason: str = "") -> int:
    """Claimed events matching `which` leave their worker: superseded when a newer event of
    their lead is pending, else queued again. Returns how many left either way."""
    newer = select(events.c.id).where(_newer_of_lead(None), events.c.status.in_(
        [Status.QUEUED, Status.SENDING])).exists()
    unclaimed = {"holder": None, "lease_until": None, "updated_at": now}
    superseded = db.execute(update(events).where(*which, newer).values(
        status=Status.SUPERSEDED, **why(superseded_reason), **unclaimed)).rowcount
    return superseded + db.execute(update(events).where(*which).values(
        status=Status.QUEUED, **unclaimed,
        **(why(queued_reason) if queued_reason else {}))).rowcount


def _newer_of_lead(event_id: int | None) -> Any:
    """Events of the same lead as `event_id` (or, with None, as the row being updated),
    stored after it."""
    this = events.alias("this") if event_id is not None else events
    other = events if event_id is not None else events.alias("newer")
    found = [other.c.token_key == this.c.token_key,
             other.c.campaign_id == this.c.campaign_id,
             other.c.customer_id == this.c.customer_id, other.c.id > this.c.id]
    if event_id is not None:
        found.append(this.c.id == event_id)
    return and_(*found)


def remember_record(db: Connection, event_id: int, recall: dict[str, str], now: float) -> None:
    """The event's lead is in its campaign now (inside the caller's transaction)."""
    token_key = db.execute(select(events.c.token_key).where(events.c.id == event_id)).scalar()
    key = {"token_key": token_key, "campaign_id": str(recall["campaign_id"]),
           "customer_id": str(recall["customer_id"])}
    if db.execute(select(campaign_records.c.added_at).where(
            *(getattr(campaign_records.c, k) == v for k, v in key.items()))).first() is None:
        db.execute(insert(campaign_records).values(**key, added_at=now, event_id=event_id))
