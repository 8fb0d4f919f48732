"""The store's errors, and how a database error is shortened and sorted into one of them."""

from __future__ import annotations

from typing import Any

from sqlalchemy.exc import DataError, IntegrityError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout


class StoreUnavailable(Exception):
    """The database did not answer or cannot be written now; nothing was written. Retry later."""


class StoreRefused(Exception):
    """The database refused these values (too long, not storable): retrying cannot help."""


def short(err: Exception) -> str:
    """The first line of the driver's message, without the SQL it came with."""
    inner = getattr(err, "orig", None) or err
    return (str(inner).strip().splitlines() or [type(inner).__name__])[0][:200]


def translate(err: SQLAlchemyError, timeouts: Any = None) -> Exception:
    """StoreRefused for what the data caused, StoreUnavailable for everything else (naming
    the setting of a timeout of `timeouts`, a StoreTimeouts, that fired)."""
    if isinstance(err, DataError | IntegrityError):
        return StoreRefused(short(err))
    message = short(err)
    if timeouts is not None:
        from .timeouts import fired

        lowered = message.lower()
        if isinstance(err, PoolTimeout):
            message = fired("STORE_POOL_TIMEOUT", timeouts.pool, "pool")
        elif "database is locked" in lowered or "lock timeout" in lowered:
            message = fired("STORE_LOCK_TIMEOUT", timeouts.lock, "lock")
        elif "statement timeout" in lowered:
            message = fired("STORE_STATEMENT_TIMEOUT", timeouts.statement, "statement")
    return StoreUnavailable(message)
