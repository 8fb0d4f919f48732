"""The store: the only package that speaks SQL. SQLite (WAL) by default, PostgreSQL to scale.

`Store` opens the engine and migrates; `events.py` holds the event queries, `limits.py` the
slot leases, quota counters and token holds. Every database error leaves here as
`StoreUnavailable`, which the receiver turns into 503 + Retry-After.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from . import sqlite
from .errors import StoreRefused, StoreUnavailable, short
from .events import EventStore, NewEvent, Outcome
from .group import GroupCommit
from .ingest import IngestStore, store_events
from .limits import LimitStore
from .tables import MAX_ID
from .views import EventFilter, ViewStore

MIGRATIONS = Path(__file__).with_name("migrations")
MIGRATION_LOCK = 727_001  # PostgreSQL advisory lock id: one migrating process at a time


def normalize_url(url: str) -> str:
    """PaaS style postgres:// and plain postgresql:// mean the psycopg 3 driver here."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def make_engine(url: str, lock: sqlite.WriteLock | None = None) -> Engine:
    """An engine tuned per database: on SQLite, WAL and one writer at a time under `lock`
    (sqlite.py)."""
    url = normalize_url(url)
    if url.startswith("sqlite"):
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        for name, listener in sqlite.listeners(lock).items():
            event.listen(engine, name, listener)
        return engine
    # No pre-ping: it would double the round trips of the delivery loop; a dropped
    # connection fails one transaction (retried by the caller) and invalidates the pool.
    return create_engine(url, pool_size=5, max_overflow=10, pool_recycle=1800)


class Store(IngestStore, EventStore, LimitStore, ViewStore):
    """Events, attempts, slots, quota and holds, on one engine."""

    def __init__(self, url: str):
        self.url = normalize_url(url)
        database = make_url(self.url).database if self.url.startswith("sqlite") else None
        lock = sqlite.WriteLock(database) if database and database != ":memory:" else None
        self.engine = make_engine(self.url, lock)
        self.dialect = self.engine.dialect.name
        self.group = (GroupCommit(database, lock, self.prepared, store_events)
                      if lock is not None and database else None)

    def migrate(self) -> None:
        """Bring the schema to the newest version; safe to run from many processes at once."""
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        try:
            with self.engine.begin() as connection:
                if self.dialect == "postgresql":
                    connection.execute(text("SELECT pg_advisory_xact_lock(:id)"),
                                       {"id": MIGRATION_LOCK})
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
        except (DBAPIError, SQLAlchemyError) as err:
            raise StoreUnavailable(f"cannot migrate the database: {short(err)}") from err

    def dispose(self) -> None:
        self.engine.dispose()


__all__ = ["MAX_ID", "EventFilter", "NewEvent", "Outcome", "Store", "StoreRefused",
           "StoreUnavailable", "make_engine"]
