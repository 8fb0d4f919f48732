"""Leases bound to their holder's life: a killed process gives back its slots and claimed
events in seconds, a live one (slow, or paused with SIGSTOP) is never overtaken.

A holder is named `host:pid:start/thread`: the process part identifies one run of one
process (`start` is its start time, so a reused pid is another process). A slot row or a
`sending` event says which holder has it and until when (`lease_until`), and the holder's
process renews that every LEASE / 6 seconds (`Life.renew`, called by the keeper).

Whether a holder is dead is asked of something that outlives no process:
- PostgreSQL: each process holds a session advisory lock named after it, on a connection of
  its own (`Life`). The server drops the lock with the connection, so a killed process's lock
  is free at once; `pg_try_advisory_xact_lock` tells whether it is held. A row is taken over
  only when its lease ran out AND its holder's lock is free: a paused process keeps its lock
  (its connection stays open), and a process whose connection dropped stops renewing, so its
  keeper cuts its calls short before the lease runs out (see keeper.py).
- SQLite (one machine): the holder's pid is looked up with its start time in /proc; a dead
  process's rows are free at once.
A holder named otherwise (tests, another host on SQLite) is dead once its lease runs out.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Engine, create_engine, select, text, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from ..lifecycle import Status
from .errors import StoreUnavailable, short
from .tables import events, slots

HOST = socket.gethostname()[:40]  # names fit the 64-character holder column


def process_name() -> str:
    """This process's holder prefix: host, pid and start time."""
    pid = os.getpid()
    return f"{HOST}:{pid}:{_start_time(pid) or 0}"


def process_of(holder: str) -> str:
    return holder.split("/", 1)[0]


def local_process_dead(process: str) -> bool | None:
    """True or False for a process of this host named by `process_name`; None when it cannot
    be told (another host, another naming)."""
    host, _, rest = process.partition(":")
    pid_text, _, started = rest.partition(":")
    if host != HOST or not pid_text.isdigit() or not started.isdigit():
        return None
    now_started = _start_time(int(pid_text))
    if now_started is None:  # no /proc: a pid that exists is taken as alive
        try:
            os.kill(int(pid_text), 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False
    return now_started != int(started)


def _start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (/proc/<pid>/stat field 22); -1 when
    the process does not exist; None where /proc is not there."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read()
    except FileNotFoundError:
        return -1 if os.path.isdir("/proc/self") else None
    except OSError:
        return None
    return int(stat.rsplit(b")", 1)[1].split()[19])


class Life:
    """One process's tenure in the store: its lock (PostgreSQL) and its lease renewals."""

    def __init__(self, store: Any, name: str):
        self.store, self.name = store, name
        self._engine: Engine | None = None
        self._connection: Any = None
        if store.dialect == "postgresql":
            self._engine = create_engine(store.url, poolclass=NullPool, connect_args={
                "application_name": f"recall-bridge life {name}"[:63], "connect_timeout": 5})
            try:
                self._connection = self._engine.connect().execution_options(
                    isolation_level="AUTOCOMMIT")
                locked = self._connection.execute(text(
                    "SELECT pg_try_advisory_lock(hashtextextended(:n, 0))"), {"n": name}).scalar()
                self._connection.commit()  # autocommit: ends SQLAlchemy's own autobegin only
            except SQLAlchemyError as err:
                self.close()
                raise StoreUnavailable(short(err)) from err
            if not locked:  # a dropped connection of ours the server has not noticed yet
                self.close()
                raise StoreUnavailable(f"the lock of {name} is still held by an older session")

    def renew(self, tenures: Sequence[tuple[str, int, str]], until: float) -> set[str]:
        """Extend the leases of our holders' slots (token_key, slot, holder) and of their
        `sending` events to `until`; the holders whose slot is no longer theirs."""
        holders = [holder for _, _, holder in tenures]
        if self._connection is not None and self._connection.invalidated:
            # SQLAlchemy would reconnect on the next use, without our lock: never renew there
            raise StoreUnavailable("the connection holding this process's lock was lost")
        if self._connection is None and not tenures:
            return set()  # SQLite, nothing held: nothing to write
        try:
            if self._connection is not None:
                with self._connection.begin():
                    return _renew(self._connection, tenures, holders, until)
            with self.store.engine.begin() as connection:
                return _renew(connection, tenures, holders, until)
        except SQLAlchemyError as err:
            raise StoreUnavailable(short(err)) from err

    def close(self) -> None:
        """Give up the lock (the process's rows become free once their leases run out)."""
        if self._connection is not None:
            with contextlib.suppress(SQLAlchemyError):
                self._connection.close()
            self._connection = None
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None


def _renew(db: Any, tenures: Sequence[tuple[str, int, str]], holders: list[str],
           until: float) -> set[str]:
    lost = set()
    for token_key, slot, holder in tenures:
        if not db.execute(update(slots).where(
                slots.c.token_key == token_key, slots.c.slot == slot,
                slots.c.holder == holder).values(lease_until=until)).rowcount:
            lost.add(holder)
    if holders:
        db.execute(update(events).where(events.c.status == Status.SENDING,
                                        events.c.holder.in_(holders))
                   .values(lease_until=until))
    return lost


def dead_holders(db: Any, dialect: str, holders: Iterable[str], now: float,
                 leases: dict[str, float]) -> set[str]:
    """Which of `holders` are dead, inside the caller's transaction. `leases` gives each
    holder's lease end: a PostgreSQL holder is dead once that passed and its lock is free."""
    dead = set()
    for holder in set(holders):
        process = process_of(holder)
        if dialect == "postgresql":
            if leases.get(holder, now) < now and db.execute(text(
                    "SELECT pg_try_advisory_xact_lock(hashtextextended(:n, 0))"),
                    {"n": process}).scalar():
                dead.add(holder)
            continue
        local = local_process_dead(process)
        if local or (local is None and leases.get(holder, now) < now):
            dead.add(holder)
    return dead


def lapsed_holders(db: Any, dialect: str, now: float) -> set[str]:
    """Holders of `sending` events that are dead (their events can be claimed again)."""
    rows = db.execute(select(events.c.holder, events.c.lease_until).where(
        events.c.status == Status.SENDING).distinct()).all()
    leases: dict[str, float] = {}
    for holder, lease_until in rows:
        if holder is not None:
            leases[holder] = min(leases.get(holder, lease_until or 0.0), lease_until or 0.0)
    candidates = [h for h, until in leases.items()
                  if until < now or dialect != "postgresql"]
    return dead_holders(db, dialect, candidates, now, leases)
