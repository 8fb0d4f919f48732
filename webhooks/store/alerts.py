"""Operators' alerts as rows: each condition's state, judged in one transaction so that
every process agrees on what was told, and each message queued as a write-back of no event
(store/writebacks.py), sent, retried and held like the CRMs' ones."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, func, insert, select, update

from ..lifecycle import Status
from .tables import alerts, events
from .texts import text
from .writebacks import enqueue

ALERTS = "alerts"  # the write-backs' source name of the operators' messages
RAISED, CLEARED = "raised", "cleared"


@dataclass(frozen=True)
class Told:
    """A message queued: a condition raised or cleared."""

    key: str
    state: str  # raised | cleared
    text: str


class AlertStore:
    """Mixed into `Store`; expects `self._tx()`."""

    _tx: Callable[..., AbstractContextManager[Connection]]

    def judge_alerts(self, standing: Mapping[str, str], now: float,
                     quiet: float) -> list[Told]:
        """Bring the conditions' rows to `standing` (key -> what it is now) and queue a
        message for each one raised (unless it was told less than `quiet` s ago) and each
        one cleared whose raising was told; the messages queued."""
        told: list[Told] = []
        with self._tx(read=True) as db:  # nearly always: nothing changed, no write lock
            active = set(db.execute(select(alerts.c.key).where(alerts.c.active)).scalars())
        if active == set(standing):
            return told
        with self._tx() as db:
            rows = {r.key: r for r in db.execute(select(alerts).with_for_update())}
            for key, what in standing.items():
                row = rows.get(key)
                if row is not None and row.active:
                    continue
                say = row is None or row.said_at is None or now - row.said_at >= quiet
                values: dict[str, Any] = {"active": True, "since": now, "said": say,
                                          "text": text(what)}
                if say:
                    values["said_at"] = now
                    told.append(Told(key, RAISED, what))
                if row is None:
                    db.execute(insert(alerts).values(key=key, **values))
                else:
                    db.execute(update(alerts).where(alerts.c.key == key).values(**values))
            for key, row in rows.items():
                if not row.active or key in standing:
                    continue
                db.execute(update(alerts).where(alerts.c.key == key).values(
                    active=False, since=now, said=False))
                if row.said:
                    told.append(Told(key, CLEARED, row.text))
            for message in told:
                enqueue(db, None, ALERTS, ["alert"], message.state,
                        {"at": now, "key": message.key, "state": message.state,
                         "text": message.text}, now)
        return told

    def alert_states(self) -> list[dict[str, Any]]:
        with self._tx(read=True) as db:
            return [dict(r._mapping) for r in db.execute(select(alerts).order_by(alerts.c.key))]

    def failed_since(self, since: float) -> int:
        """Events that became failed since `since` (their last change)."""
        with self._tx(read=True) as db:
            return int(db.execute(select(func.count()).select_from(events).where(
                events.c.status == Status.FAILED, events.c.updated_at >= since)).scalar() or 0)
