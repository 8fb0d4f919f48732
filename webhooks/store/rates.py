"""The rate gate's rows: the next moment a call to a destination may start.

One row per key (a source's CRM). A turn is reserved in one statement (an upsert that moves
the row's `next_at` on by one spacing and returns it), so two processes, or two machines on
one PostgreSQL, never get the same moment: PostgreSQL locks the row for the statement,
SQLite has one writer. Times are epoch seconds from the callers' clocks, which must agree
to well within one spacing (NTP), as the leases already require.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import NamedTuple

from sqlalchemy import Connection, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from .tables import rates


class Turn(NamedTuple):
    """When the caller may start its call, and whether that moment is now its own."""

    at: float
    taken: bool


class RateStore:
    """Mixed into `Store`; expects `self._tx()` and `self.dialect`."""

    dialect: str
    _tx: Callable[..., AbstractContextManager[Connection]]

    def take_turn(self, key: str, spacing: float, now: float, max_wait: float) -> Turn:
        """Reserve the key's next free moment: not before `now`, and `spacing` seconds after
        the last one reserved. When that moment is more than `max_wait` seconds away, nothing
        is reserved (the caller comes back later) and the Turn says when it would have been."""
        insert = (pg_insert if self.dialect == "postgresql" else sqlite_insert)(rates)
        later = func.greatest if self.dialect == "postgresql" else func.max  # SQLite: max(a, b)
        statement = insert.values(key=key, next_at=now + spacing).on_conflict_do_update(
            index_elements=["key"],
            set_={"next_at": later(rates.c.next_at, now) + spacing},
            where=rates.c.next_at <= now + max_wait,
        ).returning(rates.c.next_at)
        with self._tx() as db:
            moved = db.execute(statement).scalar()
            if moved is not None:
                return Turn(moved - spacing, True)
            busy = db.execute(select(rates.c.next_at).where(rates.c.key == key)).scalar_one()
            return Turn(max(busy, now), False)
