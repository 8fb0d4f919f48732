"""Which store this is: a fingerprint that tells two stores apart, known while the store is down.

The fingerprint hashes the random id migration 0007 wrote once into the store together with
the store's URL without its password (a SQLite path made absolute, so `sqlite:///instance/...`
started from two folders names two stores). The id tells apart two databases reached by the
same URL at different times (a database dropped and created again); the URL tells apart a
copy of a database (a restored backup keeps the id). It is read once, when the process starts
(the store answers then: a bridge does not start without migrating it), and kept: the spool
needs it exactly when the store does not answer.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url

from .tables import store_identity

if TYPE_CHECKING:
    from . import Store

FINGERPRINT_LENGTH = 16  # hex characters: 64 bits tell a machine's stores apart
ID = select(store_identity.c.store_id).where(store_identity.c.id == 1)


def safe_url(url: str) -> str:
    """The store's URL without its password, normalized: the same store gives the same text
    (a relative SQLite path made absolute, the host lower-cased, PostgreSQL's default port)."""
    parsed = make_url(url)
    if parsed.drivername.startswith("sqlite"):
        database = parsed.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            database = os.path.realpath(database)
        return f"sqlite:///{database}"
    port = parsed.port or (5432 if parsed.drivername.startswith("postgresql") else None)
    # URL.set() takes None as "unchanged": the namedtuple's own _replace removes the password
    return parsed._replace(password=None, host=(parsed.host or "").lower() or None,
                           port=port).render_as_string(hide_password=False)


def fingerprint(store: Store) -> str:
    """This store's fingerprint (hex). StoreUnavailable if the store cannot be read; the
    store must be migrated (0007 writes the id; one emptied since is given a new one)."""
    with store._tx(read=True) as db:
        store_id = db.execute(ID).scalar()
    if store_id is None:
        make = pg_insert if store.dialect == "postgresql" else sqlite_insert
        with store._tx() as db:
            db.execute(make(store_identity).values(id=1, store_id=uuid.uuid4().hex)
                       .on_conflict_do_nothing(index_elements=["id"]))
            store_id = db.execute(ID).scalar_one()
    text = f"{store_id}\n{safe_url(store.url)}"
    return hashlib.sha256(text.encode()).hexdigest()[:FINGERPRINT_LENGTH]
