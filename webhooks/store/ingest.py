"""Storing a request's events: the hot path of every webhook.

Three statements, built once with Core: insert the event unless (source, dedup_key) exists,
read the existing one when it does, and supersede the lead's older queued events. They run on
a connection of the group commit's own (group_commit.py), compiled once and executed on the
DBAPI connection (prepared.py): SQLAlchemy's own work per execution costs several times what
the database spends on the row.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Engine,
    Float,
    bindparam,
    exists,
    literal,
    null,
    select,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from ..lifecycle import Received, Status
from ..reasons import SUPERSEDED_BY, SUPERSEDED_LATE_ACK, SUPERSEDED_LATE_CHANGE
from .errors import StoreUnavailable
from .events import LATER, LEAD_IS, NOT_LATER_THAN_NEW, NewEvent, Outcome
from .prepared import Prepared
from .tables import events
from .texts import text, why

if TYPE_CHECKING:
    from .group_commit import GroupCommit

Run = Callable[[str, dict[str, Any]], Sequence[Any]]  # (statement name, values) -> rows

EXISTING = select(events.c.id, events.c.status).where(
    events.c.source == bindparam("source"), events.c.dedup_key == bindparam("dedup_key"))
# the lead's queued events the new one is not older than (events.py has the order)
SUPERSEDE = update(events).where(
    *LEAD_IS, events.c.status == Status.QUEUED, events.c.id < bindparam("n"), NOT_LATER_THAN_NEW,
# `why`, `why_code`, `why_params`: the reason's columns (events.why)
).values(status=Status.SUPERSEDED, updated_at=bindparam("now"), reason=bindparam("why"),
         reason_code=bindparam("why_code"), reason_params=bindparam("why_params"),
         ).returning(events.c.id)
LATE = update(events).where(events.c.id == bindparam("n")).values(
    status=Status.SUPERSEDED, reason=bindparam("why"), reason_code=bindparam("why_code"),
    reason_params=bindparam("why_params")).returning(events.c.id)
ROW_KEYS = ("source", "dedup_key", "status", "token_key", "campaign_id", "customer_id", "phone",
            "raw", "recall", "reason", "attempts", "next_attempt_at", "created_at", "updated_at",
            "occurred_at", "reason_code", "reason_params")


class IngestStore:
    """Mixed into `Store`; expects `engine`, `dialect` and `group`."""

    engine: Engine
    dialect: str
    group: GroupCommit | None  # the writer; None only for SQLite in memory (not a store)

    def add_events(self, new: Sequence[NewEvent], now: float | None = None) -> list[Outcome]:
        """Store a request's events in one transaction; a repeated (source, dedup_key) is a
        duplicate, and a new queued event supersedes older queued ones of the same lead.
        StoreUnavailable if the database cannot be written now; StoreRefused if it refuses
        the values themselves (nothing is written either way)."""
        if self.group is None:
            raise StoreUnavailable("SQLite in memory cannot be shared by the bridge's "
                                   "threads: set DATABASE_URL to a file or to PostgreSQL")
        return self.group.submit(new, time.time() if now is None else now)

    @cached_property
    def statements(self) -> dict[str, Any]:
        """The hot path's statements for this database (built once)."""
        make = pg_insert if self.dialect == "postgresql" else sqlite_insert
        insert = make(events).on_conflict_do_nothing(
            index_elements=["source", "dedup_key"]).returning(events.c.id)
        found = {"insert": insert, "existing": EXISTING, "supersede": SUPERSEDE, "later": LATER,
                 "late": LATE}
        if self.dialect == "postgresql":
            found["order"] = _order_in_one()
        return found

    def prepared(self) -> dict[str, Prepared]:
        """The statements compiled for the DBAPI connection (the group commit's writer)."""
        found = self.statements
        dialect = self.engine.dialect
        prepared = {name: Prepared(statement, dialect) for name, statement in found.items()
                    if name != "insert"}
        prepared["insert"] = Prepared(found["insert"], dialect, ROW_KEYS, ("raw", "recall"))
        if self.dialect != "postgresql":
            prepared["order"] = _Order(prepared["later"], prepared["supersede"])  # type: ignore[assignment]
        return prepared


def _order_in_one() -> Any:
    """PostgreSQL: LATER and SUPERSEDE in one statement (one round trip, the hot path's cost):
    the lead's later event if there is one, else the ids superseded, as (kind, id,
    occurred_at, created_at) rows."""
    later = LATER.cte("later")
    superseded = SUPERSEDE.where(~exists(select(later.c.id))).cte("superseded")
    nothing = null().cast(Float)
    return union_all(
        select(literal("later"), later.c.id, later.c.occurred_at, later.c.created_at),
        select(literal("superseded"), superseded.c.id, nothing, nothing))


class _Order:
    """SQLite: LATER, then SUPERSEDE when nothing later is known, as `_order_in_one` does in
    one statement (on SQLite a statement costs no round trip)."""

    def __init__(self, later: Prepared, supersede: Prepared):
        self.later, self.supersede = later, supersede

    def run(self, connection: Any, values: dict[str, Any]) -> list[Any]:
        found = self.later.run(connection, values)
        if found:
            return [("later", *found[0])]
        return [("superseded", r[0], None, None) for r in self.supersede.run(connection, values)]


def store_events(run: Run, new: Sequence[NewEvent], now: float) -> list[Outcome]:
    """Insert each event through `run`; what became of each (inside the caller's transaction)."""
    outcomes: list[Outcome] = []
    for item in new:
        row = _row(item, now)
        found = run("insert", row)
        if not found:
            existing = run("existing", {"source": row["source"],
                                        "dedup_key": row["dedup_key"]})[0]
            outcomes.append(Outcome(Received.DUPLICATE, existing[0], existing[1]))
            continue
        new_id = found[0][0]
        superseded: tuple[int, ...] = ()
        if item.status == Status.QUEUED and row["customer_id"]:
            found = run("order", {
                "t": row["token_key"], "c": row["campaign_id"], "u": row["customer_id"],
                "n": new_id, "o": item.occurred_at, "a": now, "now": now,
                **_why(SUPERSEDED_BY(event=new_id))})
            later = [r[1:] for r in found if r[0] == "later"]
            if later:  # an older change arriving late (a redelivery, a spool replay): kept,
                # never sent, whichever way either came in
                run("late", {"n": new_id, **_why(_late(later[0], item.occurred_at, now))})
                outcomes.append(Outcome(Received.SUPERSEDED, new_id, Status.SUPERSEDED))
                continue
            superseded = tuple(r[1] for r in found)
        result = {Status.INVALID: Received.INVALID, Status.IGNORED: Received.IGNORED,
                  Status.TEST: Received.TEST}.get(item.status, Received.ACCEPTED)
        outcomes.append(Outcome(result, new_id, item.status, superseded))
    return outcomes


def _late(later: Any, occurred_at: float | None, acknowledged_at: float) -> str:
    """Why an event is superseded on arrival by the stored event `later` (id, occurred_at,
    created_at), in the terms the two were compared in."""
    if occurred_at is not None and later[1] is not None:
        return SUPERSEDED_LATE_CHANGE(event=later[0], later=_utc(later[1]),
                                      this=_utc(occurred_at))
    return SUPERSEDED_LATE_ACK(event=later[0], later=_utc(later[2]),
                               this=_utc(acknowledged_at))


def _why(reason: str) -> dict[str, Any]:
    """A reason's columns as the ingest statements bind them."""
    found = why(reason)
    return {"why": found["reason"], "why_code": found["reason_code"],
            "why_params": found["reason_params"]}


def _utc(epoch: float | None) -> str:
    return "-" if epoch is None else f"{datetime.fromtimestamp(epoch, UTC):%Y-%m-%d %H:%M:%S}Z"


def _row(item: NewEvent, now: float) -> dict[str, Any]:
    campaign_id, customer_id = item.lead or ("", None)
    if item.recall:
        campaign_id, customer_id = item.recall["campaign_id"], item.recall["customer_id"]
    return {"source": item.source, "dedup_key": text(item.dedup_key), "status": item.status,
            "token_key": item.token_key, "campaign_id": campaign_id,
            "customer_id": customer_id, "raw": item.raw, "recall": item.recall,
            "phone": item.recall["recall_telephone"] if item.recall else None,
            "occurred_at": item.occurred_at,
            **why(item.reason), "attempts": 0,
            "next_attempt_at": item.next_attempt_at or now, "created_at": now,
            "updated_at": now}
