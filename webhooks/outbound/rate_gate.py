"""One rate gate per CRM: every call to a source's CRM waits for its turn first.

A mapping's `rate:` says how many requests per second its CRM takes (HubSpot, Kommo and
Bitrix24 each document one, and answer 429 past it). The gate spaces the calls of one source
evenly, 1 / rate seconds apart, whichever thread, process or machine makes them: each turn
is reserved in the store (store/rates.py), then the caller sleeps until it. A turn further
away than the caller may wait is not reserved; the caller is told to retry later instead of
holding its worker thread (and the wolkvox slot it owns) for it.

Lookups are the first caller (outbound/lookups.py); a new kind of CRM call (write-backs)
takes its turn the same way, through `RateGate.pace(source)`, never with its own counter.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial

from .. import reasons
from ..mapping.source import Source
from ..store.rates import RateStore
from .errors import WaitTurn

# Waits for a turn, at most the given seconds; returns how long it waited (see RateGate.wait).
Pace = Callable[[float], float]


class RateGate:
    """Turns at a per-key rate, kept in the store so they hold across processes."""

    def __init__(self, store: RateStore, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep):
        self.store = store
        self.clock = clock  # wall-clock epoch seconds: the turns are shared across machines
        self.sleep = sleep

    def wait(self, key: str, rate: float | None, max_wait: float) -> float:
        """Take `key`'s next turn at `rate` requests per second and sleep until it; returns
        the seconds slept. No `rate` (the mapping sets none): no wait, no store. Raises
        errors.WaitTurn (not a failed attempt), with `after` the wait, when the turn is more
        than `max_wait` seconds away; StoreUnavailable when the store cannot be asked."""
        if rate is None:
            return 0.0
        now = self.clock()
        turn = self.store.take_turn(key, 1.0 / rate, now, max_wait)
        if not turn.taken:
            after = turn.at - now
            raise WaitTurn(reasons.RATE_TURN(source=key, rate=f"{rate:g}",
                                             wait=f"{after:.1f}"), after=after)
        pause = turn.at - self.clock()
        if pause > 0:
            self.sleep(pause)
        return max(pause, 0.0)

    def pace(self, source: Source) -> Pace:
        """The gate of `source`'s CRM: one key per source, at its mapping's `rate:`, shared by
        every kind of call made to that CRM."""
        return partial(self.wait, source.name, source.rate)
