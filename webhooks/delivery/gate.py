"""One gate per wolkvox token: every call to wolkvox takes one of its token's slots and one
unit of its daily quota here, recalls first.

A slot is a lease row (store/limits.py) renewed by this process's keeper; the quota is a
counter per token and day in the store, so both hold across threads, processes and machines.
Recalls reserve their units in the transaction that claims them (a batch at a time: the
drain's pace depends on it); a caller of lower priority (call-result reports, add_record)
takes a slot only while no recall of the token is due, and reserves its unit with `reserve`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import IntEnum

from ..recall import Target
from ..settings import Settings
from ..store import Store
from ..store.events import Claimed, Quota
from ..timing import rules as timerules
from .leases import Keeper, Tenure


class Priority(IntEnum):
    """Who may call wolkvox first with a token; the lower goes first."""

    RECALL = 0  # a lead waits for its callback
    REPORT = 1  # a call's result reported back (next)
    ADD_RECORD = 2  # a record added to a campaign (next)


@dataclass
class TokenGroup:
    """A token and the sources that send with it."""

    target: Target
    sources: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        return self.target.key


@dataclass(frozen=True)
class Batch:
    """Events claimed together, and the quota day their units were reserved on."""

    day: str
    events: list[Claimed]


class TokenGate:
    """The slots and quota of every token this process calls wolkvox with."""

    def __init__(self, store: Store, settings: Settings, name: str):
        self.store, self.settings, self.name = store, settings, name
        self.keeper: Keeper | None = None  # set once the process delivers (Worker.start)

    def now(self) -> float:
        return self.settings.clock().timestamp()

    @property
    def open(self) -> bool:
        """May a slot be taken now? Not while this process's leases cannot be kept."""
        return self.keeper is None or self.keeper.healthy

    @contextmanager
    def slot(self, group: TokenGroup,
             priority: Priority = Priority.RECALL) -> Iterator[Tenure | None]:
        """One of the token's slots for this thread, or None: every slot is taken, or (below
        recalls) a recall of the token is due, and takes the slot first. Released on exit,
        resting until `tenure.rest_until` when a call on it was cut short."""
        if priority > Priority.RECALL and self.store.any_due(group.sources, self.now()):
            yield None
            return
        holder = f"{self.name}/{threading.get_native_id()}"
        slot = self.store.take_slot(group.key, self.settings.wolkvox_max_concurrency, holder,
                                    self.now(), self.settings.lease)
        if slot is None:
            yield None
            return
        tenure = (self.keeper.enter(group.key, slot, holder) if self.keeper is not None
                  else Tenure(group.key, slot, holder))
        try:
            yield tenure
        finally:
            if self.keeper is not None:
                self.keeper.leave(tenure)
            self.store.release_slot(group.key, slot, holder, tenure.rest_until)

    def trouble(self, tenure: Tenure) -> str:
        """Why the thread holding `tenure` must not start a call now ("" when it may)."""
        return self.keeper.trouble(tenure) if self.keeper is not None else tenure.lost

    # --- quota -------------------------------------------------------------------------
    @property
    def daily_limit(self) -> int | None:
        return self.settings.wolkvox_daily_limit or None

    def day(self, group: TokenGroup, now: float) -> str:
        """The quota day of `now` for the token (its operation's timezone)."""
        return timerules.day(group.target.timezone, now)

    def quota(self, group: TokenGroup, day: str) -> Quota | None:
        """What a claim reserves its units against; None without a daily limit."""
        limit = self.daily_limit
        return (group.key, day, limit) if limit else None

    def quota_day(self, key: str, day: str) -> tuple[str, str] | None:
        """Where a decision's refund goes back to; None without a daily limit."""
        return (key, day) if self.daily_limit else None

    def reserve(self, group: TokenGroup, now: float, units: int = 1) -> tuple[str, int]:
        """For a call made outside a claim: the quota day and how many of `units` it
        granted (all of them without a daily limit; 0: the day's quota is used up)."""
        day = self.day(group, now)
        limit = self.daily_limit
        return day, self.store.reserve_quota(group.key, day, limit, units) if limit else units

    def refund(self, key: str, day: str, units: int = 1) -> None:
        """Give back units reserved on `day` for calls that were not made."""
        if self.daily_limit and units:
            self.store.refund_quota(key, day, units)
