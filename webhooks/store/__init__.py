"""The store: the only package that speaks SQL. SQLite (WAL) by default, PostgreSQL to scale.

`Store` opens the engine and migrates; `events.py` holds the event queries, `limits.py` the
slot leases, quota counters and token holds, `rates.py` the rate gate's turns. Every database
error leaves here as `StoreUnavailable`, which the receiver turns into 503 + Retry-After.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from . import sqlite
from .alerts import AlertStore
from .errors import StoreRefused, StoreUnavailable, short
from .events import EventStore, NewEvent, Outcome
from .group_commit import Backend, GroupCommit, PostgresBackend, SqliteBackend
from .ingest import IngestStore, store_events
from .limits import LimitStore
from .rates import RateStore, Turn
from .results import ResultStore
from .tables import MAX_ID
from .timeouts import MARGIN, StoreTimeouts, Watchdog, connect_postgres, postgres_options
from .views import EventFilter, ViewStore
from .writebacks import WritebackStore

MIGRATIONS = Path(__file__).with_name("migrations")
MIGRATION_LOCK = 727_001  # PostgreSQL advisory lock id: one migrating process at a time
NO_TIMEOUTS = StoreTimeouts(connect=0, statement=0, pool=0, lock=0)  # migrations wait


def normalize_url(url: str) -> str:
    """PaaS style postgres:// and plain postgresql:// mean the psycopg 3 driver here."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def make_engine(url: str, lock: sqlite.WriteLock | None = None,
                timeouts: StoreTimeouts | None = None) -> Engine:
    """An engine tuned per database: on SQLite, WAL and one writer at a time under `lock`
    (sqlite.py); on both, the waits of `timeouts` (timeouts.py; default: the defaults)."""
    timeouts = timeouts or StoreTimeouts()
    url = normalize_url(url)
    if url.startswith("sqlite"):
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": timeouts.lock or 30,
                                                  "check_same_thread": False})
        for name, listener in sqlite.listeners(lock, timeouts.lock).items():
            event.listen(engine, name, listener)
        return engine
    # No pre-ping: it would double the round trips of the delivery loop; a dropped
    # connection fails one transaction (retried by the caller) and invalidates the pool.
    engine = create_engine(url, pool_size=5, max_overflow=10, pool_recycle=1800,
                           pool_timeout=timeouts.pool or 30,
                           connect_args=postgres_options(timeouts))
    _with_deadlines(engine, timeouts)
    return engine


def _with_deadlines(engine: Engine, timeouts: StoreTimeouts) -> None:
    """PostgreSQL: connect within STORE_CONNECT_TIMEOUT, and no statement, COMMIT or ROLLBACK
    waiting on the server past STORE_STATEMENT_TIMEOUT (plus a margin: the server's own
    statement_timeout answers first when the server is alive)."""
    if timeouts.connect > 0:
        event.listen(engine, "do_connect",
                     lambda _dialect, _record, _cargs, cparams:
                     connect_postgres(timeouts.connect, cparams))
    if timeouts.statement <= 0:
        return
    watchdog = Watchdog(timeouts.statement + MARGIN)
    engine.watchdog = watchdog  # type: ignore[attr-defined]  # for tests and metrics

    def before(_conn: Any, cursor: Any, *_args: Any) -> None:
        watchdog.arm(cursor.connection)

    def after(_conn: Any, cursor: Any, *_args: Any) -> None:
        watchdog.disarm(cursor.connection)

    def failed(context: Any) -> None:
        cursor = getattr(context.execution_context, "cursor", None)
        if cursor is not None:
            watchdog.disarm(cursor.connection)

    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "after_cursor_execute", after)
    event.listen(engine, "handle_error", failed)
    dialect = engine.dialect
    for name in ("do_commit", "do_rollback"):
        setattr(dialect, name, _watched(getattr(dialect, name), watchdog))


def _watched(method: Any, watchdog: Watchdog) -> Any:
    def run(dbapi_connection: Any) -> Any:
        watchdog.arm(dbapi_connection)
        try:
            return method(dbapi_connection)
        finally:
            watchdog.disarm(dbapi_connection)
    return run


class Store(IngestStore, EventStore, LimitStore, RateStore, ResultStore, ViewStore,
            WritebackStore, AlertStore):
    """Events, attempts, slots, quota, holds, rate turns, call results and write-backs, on
    one engine."""

    def __init__(self, url: str, timeouts: StoreTimeouts | None = None):
        self.url = normalize_url(url)
        self.timeouts = timeouts or StoreTimeouts()
        database = make_url(self.url).database if self.url.startswith("sqlite") else None
        lock = sqlite.WriteLock(database) if database and database != ":memory:" else None
        self._lock = lock
        self.engine = make_engine(self.url, lock, self.timeouts)
        self.dialect = self.engine.dialect.name
        self.group = self._group_commit(database, lock)

    def _group_commit(self, database: str | None,
                      lock: sqlite.WriteLock | None) -> GroupCommit | None:
        """The ingest path's writer (group_commit.py): on PostgreSQL, and on SQLite on a file."""
        if self.dialect == "postgresql":
            backend: Backend = PostgresBackend(self.engine, self.timeouts)
        elif lock is not None and database:
            backend = SqliteBackend(database, lock, self.timeouts.lock)
        else:
            return None
        return GroupCommit(backend, self.prepared, store_events)

    def migrate(self) -> None:
        """Bring the schema to the newest version; safe to run from many processes at once."""
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        # Migrations wait as long as they need (another process migrating holds the lock).
        engine = make_engine(self.url, self._lock, NO_TIMEOUTS)
        try:
            with engine.begin() as connection:
                if self.dialect == "postgresql":
                    connection.execute(text("SELECT pg_advisory_xact_lock(:id)"),
                                       {"id": MIGRATION_LOCK})
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
        except (DBAPIError, SQLAlchemyError) as err:
            raise StoreUnavailable(f"cannot migrate the database: {short(err)}") from err
        finally:
            engine.dispose()

    def dispose(self) -> None:
        if self.group is not None:
            self.group.close()
        self.engine.dispose()


__all__ = ["MAX_ID", "EventFilter", "NewEvent", "Outcome", "Store", "StoreRefused",
           "StoreTimeouts", "StoreUnavailable", "Turn", "make_engine"]
