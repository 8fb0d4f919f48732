"""The store's errors, and how a database error is shortened and sorted into one of them."""

from __future__ import annotations

from sqlalchemy.exc import DataError, IntegrityError, SQLAlchemyError


class StoreUnavailable(Exception):
    """The database did not answer or cannot be written now; nothing was written. Retry later."""


class StoreRefused(Exception):
    """The database refused these values (too long, not storable): retrying cannot help."""


def short(err: Exception) -> str:
    """The first line of the driver's message, without the SQL it came with."""
    inner = getattr(err, "orig", None) or err
    return (str(inner).strip().splitlines() or [type(inner).__name__])[0][:200]


def translate(err: SQLAlchemyError) -> Exception:
    """StoreRefused for what the data caused, StoreUnavailable for everything else."""
    if isinstance(err, DataError | IntegrityError):
        return StoreRefused(short(err))
    return StoreUnavailable(short(err))
