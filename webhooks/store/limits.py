"""wolkvox's limits as rows, so they hold across threads, processes and machines.

- slots: N rows per token; a worker owns one by writing its lease, which its process renews.
  A dead holder's slot is free again (see life.py), so a slot is never lost. A slot released
  with a rest (a call cut short, a SIMULTANEOUS refusal) has no holder and is taken by no one
  before its `lease_until`: wolkvox may still count the call that ended there.
- quota: one counter per token per day; a unit is reserved before each call.
- holds: a token that must not be called until a time (quota reset, next probe), or a
  source's CRM lookup credentials (key `lookup:<source>`).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from ..lifecycle import Status
from .holders import Life, dead_holders
from .tables import events, holds, probe, quota, slots
from .texts import why


class HoldKind(StrEnum):
    """Why a key is held (the `kind` column of `holds`)."""

    QUOTA = "quota"  # the token's daily quota is used up: until midnight in its zone
    TOKEN = "token"  # noqa: S105 (a kind, not a secret) wolkvox refused the token: next probe
    LOOKUP = "lookup"  # a CRM refused a source's lookup credentials: until the next probe
    WRITEBACK = "writeback"  # a CRM refused a source's write-back credentials: next probe


@dataclass(frozen=True)
class Hold:
    """Stop using a key until `until`: the wolkvox token's (`key` None: the token the event
    was sent with), or a source's lookup credentials (`key` from `lookup_key`)."""

    kind: HoldKind
    reason: str
    until: float
    key: str | None = None


def lookup_key(source: str) -> str:
    """The hold key of a source's CRM lookup credentials."""
    return f"lookup:{source}"


def writeback_key(source: str) -> str:
    """The hold key of a source's CRM write-back credentials."""
    return f"writeback:{source}"


class LimitStore:
    """Mixed into `Store`; expects `self._tx()` and `self.dialect`."""

    dialect: str
    _tx: Callable[..., AbstractContextManager[Connection]]  # EventStore's transaction

    def _upsert(self, table: Any) -> Any:
        return (pg_insert if self.dialect == "postgresql" else sqlite_insert)(table)

    # --- slots -------------------------------------------------------------------------
    def take_slot(self, token_key: str, size: int, holder: str, now: float,
                  lease: float) -> int | None:
        """Own one of the token's `size` slots until now + lease (renewed by the keeper); a
        slot is free when released, or when its holder is dead (life.py). None when all are
        taken."""
        with self._tx(read=True) as db:  # idle threads must not queue for the write lock
            rows, dead = self._slots(db, token_key, size, now)
            if len(rows) == size and not any(_free(r, dead, now) for r in rows.values()):
                return None
        order = list(range(size))
        random.shuffle(order)  # spread contention over the rows
        with self._tx() as db:
            rows, dead = self._slots(db, token_key, size, now)
            if len(rows) < size:  # the token's first take: its rows
                db.execute(self._upsert(slots).values(
                    [{"token_key": token_key, "slot": n, "lease_until": 0.0}
                     for n in range(size)]
                ).on_conflict_do_nothing(index_elements=["token_key", "slot"]))
                rows, dead = self._slots(db, token_key, size, now)
            for n in order:
                row = rows[n]
                if not _free(row, dead, now):
                    continue
                same = (slots.c.holder.is_(None) if row.holder is None
                        else slots.c.holder == row.holder)
                taken = db.execute(update(slots).where(
                    slots.c.token_key == token_key, slots.c.slot == n, same,
                    slots.c.lease_until == row.lease_until,
                ).values(holder=holder, lease_until=now + lease)).rowcount
                if taken:
                    return n
        return None

    def _slots(self, db: Any, token_key: str, size: int,
               now: float) -> tuple[dict[int, Any], set[str]]:
        """The token's slot rows by number, and which of their holders are dead."""
        rows = {r.slot: r for r in db.execute(select(slots).where(
            slots.c.token_key == token_key, slots.c.slot < size))}
        held = {r.holder: r.lease_until for r in rows.values() if r.holder is not None}
        return rows, dead_holders(db, self.dialect, held, now, held) if held else set()

    def release_slot(self, token_key: str, slot: int, holder: str,
                     rest_until: float = 0.0) -> None:
        """Give the slot up; with `rest_until`, no one may take it before then (wolkvox may
        still be working on the call that ended on it). Nothing when it is no longer ours."""
        with self._tx() as db:
            db.execute(update(slots).where(
                slots.c.token_key == token_key, slots.c.slot == slot,
                slots.c.holder == holder).values(holder=None, lease_until=rest_until))

    def hold_life(self, name: str) -> Life:
        """This process's tenure: its lock on PostgreSQL, its lease renewals everywhere."""
        return Life(self, name)

    # --- quota -------------------------------------------------------------------------
    def _reserve(self, db: Any, token_key: str, day: str, limit: int, units: int = 1) -> int:
        """Take up to `units` of the day's quota inside the caller's transaction (claims do
        this); returns how many were granted, 0 when the quota is used up."""
        db.execute(self._upsert(quota).values(token_key=token_key, day=day, used=0)
                   .on_conflict_do_nothing(index_elements=["token_key", "day"]))
        used = db.execute(select(quota.c.used).where(
            quota.c.token_key == token_key, quota.c.day == day).with_for_update()).scalar_one()
        granted = max(0, min(units, limit - used))
        if granted:
            db.execute(update(quota).where(quota.c.token_key == token_key,
                                           quota.c.day == day).values(used=used + granted))
        return granted

    def reserve_quota(self, token_key: str, day: str, limit: int, units: int = 1) -> int:
        """Take up to `units` of the day's quota, for a call made outside a claim; how many
        were granted."""
        with self._tx() as db:
            return self._reserve(db, token_key, day, limit, units)

    def refund_quota(self, token_key: str, day: str, units: int = 1) -> None:
        """Give back units reserved for calls that were not made."""
        with self._tx() as db:
            refund(db, token_key, day, units)

    # --- holds -------------------------------------------------------------------------
    def hold(self, token_key: str, kind: HoldKind, reason: str, until: float, now: float,
             daily_limit: int | None = None) -> None:
        """Hold a token until `until` (the quota reset, or the next probe of a bad token); a
        quota hold of our own counter remembers the `daily_limit` it was judged against."""
        with self._tx() as db:
            values = {"kind": kind, **why(reason), "until": until, "since": now,
                      "daily_limit": daily_limit}
            db.execute(self._upsert(holds).values(token_key=token_key, **values)
                       .on_conflict_do_update(index_elements=["token_key"], set_=values))

    def release_hold(self, token_key: str, since: float | None = None) -> bool:
        """Lift the token's hold (with `since`, only that hold, not one set meanwhile), and
        clear the "held: ..." reason it wrote on the token's queued events. True if lifted."""
        with self._tx() as db:
            which = [holds.c.token_key == token_key, *([holds.c.since == since] if since else [])]
            reason = db.execute(select(holds.c.reason).where(*which)).scalar()
            if reason is None:
                return False
            db.execute(delete(holds).where(*which))
            db.execute(update(events).where(
                events.c.token_key == token_key, events.c.status == Status.QUEUED,
                events.c.reason == reason).values(reason="", reason_code=None,
                                                  reason_params=None))
            return True

    def holds(self) -> dict[str, dict[str, Any]]:
        """{token_key: {kind, reason, until, since, daily_limit}} for every held token."""
        with self._tx(read=True) as db:
            rows = db.execute(select(holds)).mappings()
            return {r["token_key"]: {k: r[k] for k in ("kind", "reason", "reason_code",
                                                       "reason_params", "until", "since",
                                                       "daily_limit")} for r in rows}

    # --- health ------------------------------------------------------------------------
    def probe_write(self, now: float) -> None:
        """Write one row and commit: the database takes writes (StoreUnavailable if not)."""
        with self._tx() as db:
            db.execute(self._upsert(probe).values(id=1, at=now).on_conflict_do_update(
                index_elements=["id"], set_={"at": now}))


def refund(db: Any, token_key: str, day: str, units: int) -> None:
    """Give back `units` of the token's quota day inside the caller's transaction."""
    db.execute(update(quota).where(quota.c.token_key == token_key, quota.c.day == day,
                                   quota.c.used >= units)
               .values(used=quota.c.used - units))


def _free(row: Any, dead: set[str], now: float) -> bool:
    """May the slot row be taken now: released and done resting, or its holder dead?"""
    if row.holder is None:
        return row.lease_until <= now
    return row.holder in dead
