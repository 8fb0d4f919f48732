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
    if timeouts is not None and isinstance(err, PoolTimeout):
        from .timeouts import fired

        return StoreUnavailable(fired("STORE_POOL_TIMEOUT", timeouts.pool, "pool"))
    return StoreUnavailable(timeout_message(short(err), timeouts))


def timeout_message(message: str, timeouts: Any = None) -> str:
    """A driver's `message`, or the message naming the setting of a timeout of `timeouts`
    (a StoreTimeouts) that it says fired."""
    if timeouts is None:
        return message
    from .timeouts import fired

    lowered = message.lower()
    if "database is locked" in lowered or "lock timeout" in lowered:
        return fired("STORE_LOCK_TIMEOUT", timeouts.lock, "lock")
    if "statement timeout" in lowered:
        return fired("STORE_STATEMENT_TIMEOUT", timeouts.statement, "statement")
    return message
