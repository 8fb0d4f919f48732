"""The store's one error, and how a database error is shortened for it."""

from __future__ import annotations


class StoreUnavailable(Exception):
    """The database did not answer; nothing was written. Safe to retry later."""


def short(err: Exception) -> str:
    """The first line of the driver's message, without the SQL it came with."""
    inner = getattr(err, "orig", None) or err
    return (str(inner).strip().splitlines() or [type(inner).__name__])[0][:200]
