"""Call results as rows: which delivered recalls await their call's result, each campaign's
report turn, the report units of a token's day, and the results themselves.

A delivered recall awaits (`result_state` awaiting) when call results were on as it was
delivered; it is asked about once its date less `EARLY` has come (wolkvox activates a recall
up to 10 minutes early). delivery/results.py asks the reports and matches their rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, func, insert, select, update

from .. import reasons
from ..lifecycle import AttemptOutcome, Moment, ResultState, Status
from .tables import attempts, events, quota, reports
from .texts import why
from .writebacks import NoticesOf, enqueue_for_event

EARLY = 600.0  # wolkvox activates a recall up to 10 minutes before its date
REPORT_UNITS = ":reports"  # the quota row of a token's report units: token_key + this


@dataclass(frozen=True)
class Awaiting:
    """A delivered recall awaiting its call's result."""

    id: int
    campaign_id: str
    customer_id: str
    phone: str | None
    scheduled_for: float
    delivered_at: float

    @property
    def since(self) -> float:
        """The earliest moment a report row can be this recall's call."""
        return max(self.scheduled_for - EARLY, self.delivered_at)


@dataclass(frozen=True)
class Result:
    """A report row matched to an awaiting recall: how its call went."""

    event_id: int
    word: str  # wolkvox's word, as given
    called_at: float
    reason: str  # reasons.CALL_REPORTED...
    called_phone: str | None = None  # the row's telephone, when it is not the recall's


class ResultStore:
    """Mixed into `Store`; expects `self._tx()` and `self._upsert()`."""

    dialect: str
    _tx: Callable[..., AbstractContextManager[Connection]]
    _upsert: Callable[[Any], Any]

    # --- what awaits ---------------------------------------------------------------------
    def awaiting(self, token_key: str, now: float) -> dict[str, list[Awaiting]]:
        """The token's delivered recalls whose result may be in a report now, by campaign,
        leaving out campaigns whose report turn has not come."""
        with self._tx(read=True) as db:
            waiting = db.execute(select(reports.c.campaign_id).where(
                reports.c.token_key == token_key, reports.c.next_at > now)).scalars()
            not_yet = set(waiting)
            rows = db.execute(select(
                events.c.id, events.c.campaign_id, events.c.customer_id, events.c.phone,
                events.c.scheduled_for, events.c.delivered_at).where(
                events.c.result_state == ResultState.AWAITING,
                events.c.token_key == token_key,
                events.c.scheduled_for <= now + EARLY)).all()
        found: dict[str, list[Awaiting]] = {}
        for r in rows:
            if r.campaign_id in not_yet or r.scheduled_for is None:
                continue
            found.setdefault(r.campaign_id, []).append(Awaiting(
                r.id, r.campaign_id, r.customer_id, r.phone, r.scheduled_for,
                r.delivered_at if r.delivered_at is not None else r.scheduled_for - EARLY))
        return found

    def awaiting_count(self) -> int:
        """How many delivered recalls await their result (the /metrics gauge)."""
        with self._tx(read=True) as db:
            return db.execute(select(func.count()).select_from(events).where(
                events.c.result_state == ResultState.AWAITING)).scalar_one()

    # --- turns -------------------------------------------------------------------------
    def take_report_turn(self, token_key: str, campaign_id: str, now: float,
                         interval: float) -> bool:
        """The campaign's report turn for this caller (no other process asks it until now +
        `interval`); False when another took it first."""
        with self._tx() as db:
            created = db.execute(self._upsert(reports).values(
                token_key=token_key, campaign_id=campaign_id, next_at=now + interval,
                reason="").on_conflict_do_nothing(
                index_elements=["token_key", "campaign_id"])).rowcount
            if created:
                return True
            return bool(db.execute(update(reports).where(
                reports.c.token_key == token_key, reports.c.campaign_id == campaign_id,
                reports.c.next_at <= now).values(next_at=now + interval)).rowcount)

    def give_back_turn(self, token_key: str, campaign_id: str, next_at: float) -> None:
        """The turn was taken but no report asked (no slot, no unit): come back at `next_at`."""
        with self._tx() as db:
            db.execute(update(reports).where(
                reports.c.token_key == token_key, reports.c.campaign_id == campaign_id,
            ).values(next_at=next_at))

    def record_report(self, token_key: str, campaign_id: str, now: float, outcome: str,
                      reason: str, rows: int | None = None) -> str:
        """How the campaign's report went; returns the reason the last one had (so a reason
        that repeats is logged once)."""
        with self._tx() as db:
            before = db.execute(select(reports.c.reason).where(
                reports.c.token_key == token_key,
                reports.c.campaign_id == campaign_id)).scalar()
            db.execute(update(reports).where(
                reports.c.token_key == token_key, reports.c.campaign_id == campaign_id,
            ).values(last_at=now, outcome=outcome, rows=rows, **why(reason)))
            return before or ""

    def report_states(self) -> list[dict[str, Any]]:
        """Every campaign's report row: its turn and how the last report went."""
        with self._tx(read=True) as db:
            return [dict(r) for r in db.execute(
                select(reports).order_by(reports.c.token_key, reports.c.campaign_id)).mappings()]

    # --- units -------------------------------------------------------------------------
    def reserve_report_unit(self, token_key: str, day: str, limit: int, share: int,
                            sources: Iterable[str]) -> bool:
        """One unit of the token's day for a report: only while reports have used less than
        `share` units today, and never one of the last units the token's queued recalls
        need. Counted in the token's quota and in its report row (token_key + REPORT_UNITS)."""
        with self._tx() as db:
            used = self._units(db, token_key, day)
            spent = self._units(db, token_key + REPORT_UNITS, day)
            needed = db.execute(select(func.count()).select_from(events).where(
                events.c.status.in_([Status.QUEUED, Status.SENDING]),
                events.c.source.in_(list(sources)))).scalar_one()
            if spent >= share or limit - used - needed < 1:
                return False
            for key in (token_key, token_key + REPORT_UNITS):
                db.execute(update(quota).where(quota.c.token_key == key, quota.c.day == day)
                           .values(used=quota.c.used + 1))
            return True

    def refund_report_unit(self, token_key: str, day: str) -> None:
        """A report unit not spent (no call made, or refused before wolkvox counted it)."""
        with self._tx() as db:
            for key in (token_key, token_key + REPORT_UNITS):
                db.execute(update(quota).where(quota.c.token_key == key, quota.c.day == day,
                                               quota.c.used >= 1)
                           .values(used=quota.c.used - 1))

    def report_units(self, token_key: str, day: str) -> int:
        """Units reports used on the token's `day`."""
        with self._tx(read=True) as db:
            return db.execute(select(quota.c.used).where(
                quota.c.token_key == token_key + REPORT_UNITS,
                quota.c.day == day)).scalar() or 0

    def _units(self, db: Connection, key: str, day: str) -> int:
        db.execute(self._upsert(quota).values(token_key=key, day=day, used=0)
                   .on_conflict_do_nothing(index_elements=["token_key", "day"]))
        return db.execute(select(quota.c.used).where(
            quota.c.token_key == key, quota.c.day == day).with_for_update()).scalar_one()

    # --- results -------------------------------------------------------------------------
    def record_results(self, results: Iterable[Result], now: float,
                       notices: NoticesOf | None = None) -> int:
        """Write each result on its recall, still awaiting, with an attempt saying it, and
        queue the write-backs its source names for a call (`notices`); how many were
        written."""
        written = 0
        with self._tx() as db:
            for result in results:
                if not db.execute(update(events).where(
                        events.c.id == result.event_id,
                        events.c.result_state == ResultState.AWAITING).values(
                        result_state=ResultState.REPORTED, call_result=result.word[:32],
                        called_at=result.called_at, called_phone=result.called_phone)).rowcount:
                    continue
                written += 1
                db.execute(insert(attempts).values(
                    event_id=result.event_id, at=now, outcome=AttemptOutcome.CALLED,
                    wolkvox_msg=result.word[:500], **why(result.reason)))
                if notices is not None:
                    enqueue_for_event(
                        db, result.event_id, Moment.CALLED,
                        lambda source: notices(source, Moment.CALLED),
                        {"call_result": result.word[:32], "called_at": result.called_at,
                         "other_phone": result.called_phone is not None, **why(result.reason)},
                        now)
        return written

    def close_unreported(self, token_key: str, campaign_id: str | None, before: float,
                         max_wait: float, now: float) -> list[int]:
        """Recalls of the token (and campaign) still awaiting whose date + `max_wait` is
        before `before`: closed as "no result reported", each with an attempt saying it."""
        which = [events.c.result_state == ResultState.AWAITING,
                 events.c.token_key == token_key,
                 events.c.scheduled_for + max_wait < before]
        if campaign_id is not None:
            which.append(events.c.campaign_id == campaign_id)
        reason = reasons.CALL_NOT_REPORTED(hours=f"{max_wait / 3600:g}")
        with self._tx(read=True) as db:  # nearly always none: no write lock to find that
            if db.execute(select(events.c.id).where(*which).limit(1)).first() is None:
                return []
        with self._tx() as db:
            ids = list(db.execute(select(events.c.id).where(*which)).scalars())
            if not ids:
                return []
            db.execute(update(events).where(events.c.id.in_(ids), *which).values(
                result_state=ResultState.MISSING))
            db.execute(insert(attempts), [
                {"event_id": i, "at": now, "outcome": AttemptOutcome.NO_RESULT, **why(reason)}
                for i in ids])
            return ids


def replace_awaiting(db: Connection, event_id: int, now: float) -> None:
    """A lead's recall was delivered and awaits its result: the lead's older recalls still
    awaiting theirs stop (inside the caller's transaction)."""
    this = events.alias("this")
    lead = select(this.c.token_key, this.c.campaign_id, this.c.customer_id).where(
        this.c.id == event_id).subquery()
    older = select(events.c.id).where(
        events.c.result_state == ResultState.AWAITING, events.c.id != event_id,
        events.c.token_key == lead.c.token_key, events.c.campaign_id == lead.c.campaign_id,
        events.c.customer_id == lead.c.customer_id)
    ids = list(db.execute(older).scalars())
    if not ids:
        return
    db.execute(update(events).where(events.c.id.in_(ids)).values(
        result_state=ResultState.REPLACED))
    reason = reasons.CALL_REPLACED(event=event_id)
    db.execute(insert(attempts), [
        {"event_id": i, "at": now, "outcome": AttemptOutcome.SUPERSEDED, **why(reason)}
        for i in ids])
