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
from .limits import LimitStore

MIGRATIONS = Path(__file__).with_name("migrations")
MIGRATION_LOCK = 727_001  # PostgreSQL advisory lock id: one migrating process at a time


def normalize_url(url: str) -> str:
    """PaaS style postgres:// and plain postgresql:// mean the psycopg 3 driver here."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def make_engine(url: str) -> Engine:
    """An engine tuned per database: on SQLite, WAL and one writer at a time (sqlite.py)."""
    url = normalize_url(url)
    if url.startswith("sqlite"):
        database = make_url(url).database
        lock = None
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
            lock = sqlite.WriteLock(database)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        for name, listener in sqlite.listeners(lock).items():
            event.listen(engine, name, listener)
        return engine
    # No pre-ping: it would double the round trips of the delivery loop; a dropped
    # connection fails one transaction (retried by the caller) and invalidates the pool.
    return create_engine(url, pool_size=5, max_overflow=10, pool_recycle=1800)


class Store(EventStore, LimitStore):
    """Events, attempts, slots, quota and holds, on one engine."""

    def __init__(self, url: str):
        self.url = normalize_url(url)
        self.engine = make_engine(self.url)
        self.dialect = self.engine.dialect.name
        self._prepared = {}
        if self.dialect == "sqlite" and ":memory:" not in self.url:
            self.group = GroupCommit(self._tx, self._store)

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

    def ping(self) -> None:
        """Raise StoreUnavailable unless the database answers a trivial query."""
        try:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except SQLAlchemyError as err:
            raise StoreUnavailable(short(err)) from err

    def dispose(self) -> None:
        self.engine.dispose()


__all__ = ["NewEvent", "Outcome", "Store", "StoreRefused", "StoreUnavailable", "make_engine"]
