"""Prebuilt Core statements compiled once and run straight on a DBAPI connection (the ingest
hot path: the group commit's writer, on SQLite and on PostgreSQL).

SQLAlchemy's per-execution work (cache key, result set-up, type processing) costs several
times what SQLite itself spends on a one-row insert, and under a burst every webhook pays it
inside the single writer. The statements stay the ones defined with Core in events.py; only
how they are executed changes: positional values for sqlite3 (qmark), named ones for psycopg
(pyformat).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any


class Prepared:
    """`statement` compiled for `dialect` once; `run()` executes it with a dict of values."""

    def __init__(self, statement: Any, dialect: Any, keys: Iterable[str] | None = None,
                 json_keys: Iterable[str] = ()):
        compiled = statement.compile(dialect=dialect, column_keys=list(keys) if keys else None)
        self.sql = str(compiled)
        self.positional = compiled.positiontup is not None
        self.order = tuple(compiled.positiontup or compiled.params)
        self.defaults = dict(compiled.params)
        self.json = frozenset(json_keys)  # JSON columns: serialized as SQLAlchemy's JSON does

    def run(self, connection: Any, values: dict[str, Any]) -> list[Any]:
        """Execute on a DBAPI `connection` (inside its transaction); the rows it returns."""
        merged = {**self.defaults, **values}
        named = {key: json.dumps(merged[key]) if key in self.json else _plain(merged[key])
                 for key in set(self.order)}
        # qmark lists a value once per use (a name used twice comes twice)
        args = [named[key] for key in self.order] if self.positional else named
        return connection.execute(self.sql, args).fetchall()


def _plain(value: Any) -> Any:
    return str(value) if isinstance(value, str) and type(value) is not str else value
