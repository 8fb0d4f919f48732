"""SQLite as a store several processes write: WAL, and one writer at a time in arrival order.

SQLite lets one transaction write at a time. Left to itself, a writer that finds the database
locked sleeps in SQLite's busy handler (1, 2, 5, 10 ... 100 ms steps) and retries, so under a
burst most of a webhook's latency is sleeping while the lock is free. Here every write
transaction first takes a lock shared by this database's threads (a mutex) and processes (an
flock on `<database>.lock`), and releases it after its COMMIT or ROLLBACK: a waiting writer is
woken the moment the lock is released, and SQLite's own lock is then always free. Reads take
no lock (WAL readers never wait).

Durability is SQLite's default for WAL, synchronous=FULL: each commit is on disk before the
webhook that wrote it is answered.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any

from sqlalchemy.exc import OperationalError

READ_ONLY = "recall_bridge_read_only"  # execution option: a transaction that only reads


class WriteLock:
    """One writing transaction at a time across the threads and processes of one database."""

    def __init__(self, database: str):
        self.path = f"{database}.lock"
        self._mutex = threading.Lock()
        self._file: Any = None
        self._pid = 0

    def acquire(self) -> None:
        self._mutex.acquire()
        try:
            if self._pid != os.getpid():  # a forked child needs its own open file
                self._file = Path(self.path).open("a")  # noqa: SIM115 - held for life
                self._pid = os.getpid()
            fcntl.flock(self._file, fcntl.LOCK_EX)
        except BaseException:
            self._mutex.release()
            raise

    def release(self) -> None:
        try:
            fcntl.flock(self._file, fcntl.LOCK_UN)
        finally:
            self._mutex.release()


def pragmas(connection: Any, busy: float = 30.0) -> None:
    """WAL, a busy timeout for writers outside this lock (another tool, another process
    holding a write transaction: STORE_LOCK_TIMEOUT), foreign keys."""
    connection.isolation_level = None  # we issue BEGIN ourselves (below)
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={int((busy or 30.0) * 1000)}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def listeners(lock: WriteLock | None, busy: float = 30.0) -> dict[str, Any]:
    """The engine events that begin and end transactions under `lock`; a writer outside it
    is waited for `busy` seconds (STORE_LOCK_TIMEOUT)."""

    def connect(dbapi_connection: Any, _record: Any) -> None:
        pragmas(dbapi_connection, busy)

    def begin(connection: Any) -> None:
        if connection.get_execution_options().get(READ_ONLY):
            connection.exec_driver_sql("BEGIN")
            return
        if lock is not None:
            lock.acquire()
            connection.info["holds_write_lock"] = True
        try:
            # Take SQLite's write lock up front: a read that later writes would otherwise
            # deadlock with another process doing the same.
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            release(connection)
            raise

    def ending(sql: str) -> Any:
        # SQLAlchemy fires its commit and rollback events before it commits or rolls back: the
        # statement is run here, so that the lock is released only once SQLite's is (the
        # driver's own commit then finds no transaction and does nothing).
        def end(connection: Any) -> None:
            try:
                raw = connection.connection.dbapi_connection
                if raw is not None and raw.in_transaction:
                    raw.execute(sql)
            except sqlite3.Error as err:
                if sql == "COMMIT":  # a failed ROLLBACK is tried again by the driver's own
                    raise OperationalError(sql, None, err) from err
            finally:
                release(connection)
        return end

    def release(connection: Any) -> None:
        if connection.info.pop("holds_write_lock", False):
            lock.release()  # type: ignore[union-attr]

    return {"connect": connect, "begin": begin, "commit": ending("COMMIT"),
            "rollback": ending("ROLLBACK")}
