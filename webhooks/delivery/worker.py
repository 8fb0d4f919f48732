"""The delivery worker: the threads that send recalls, and the token bookkeeping around them.

One loop per thread. A thread first owns one of its token's slots through the token's gate
(gate.py), then drains due events through it (drain.py), one call at a time, so there are
never more calls in flight per token than slots, whatever the number of threads or
processes. What becomes of each event is decided in decide.py; the worker claims, gives back,
holds and lifts holds. Every decision is written to the event (`reason`) and, for calls, to
its attempts.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable, Mapping
from typing import Any

from .. import reasons
from ..mapping.source import Source
from ..outbound.deadline import Call
from ..settings import Settings
from ..store import Store, StoreUnavailable
from ..store.events import Claimed, Decision
from ..store.holders import process_name
from ..store.limits import HoldKind, lookup_key
from ..timing import rules as timerules
from .alerts import Alerts
from .decide import Decider
from .drain import Drain
from .gate import Batch, TokenGate, TokenGroup
from .leases import Keeper, Tenure
from .results import Results
from .writebacks import Sender

log = logging.getLogger(__name__)
SWEEP_EVERY = 1.0  # seconds between looks for events a dead worker had claimed


class Worker:
    """Delivers queued events. `start()` runs threads; `run_once()` is one pass, for tests."""

    def __init__(self, store: Store, sources: Mapping[str, Source], settings: Settings,
                 name: str | None = None, spool_depth: Callable[[], int] | None = None):
        self.store = store
        self.sources = sources
        self.settings = settings
        # host:pid:start (store/life.py): a dead process's slots and claims are free at once
        self.name = name or process_name()
        self.keeper: Keeper | None = None
        self.gate = TokenGate(store, settings, self.name)
        self.decider = Decider(store, sources, settings)
        self.writebacks = Sender(store, sources, settings, self.name,
                                 Alerts(store, settings, sources, spool_depth))
        self.results = Results(store, settings, self.gate, self.hold, self.notices,
                               self.writebacks.wake)
        self.groups: dict[str, TokenGroup] = {}
        for source in sources.values():
            group = self.groups.setdefault(source.target.key, TokenGroup(source.target))
            group.sources.append(source.name)
        self._stop = threading.Event()
        self._nudge = threading.Event()  # set when an event is queued here: no poll to wait
        self._threads: list[threading.Thread] = []
        self._last_sweep = 0.0
        self._lookup_holds: dict[str, dict[str, Any]] = {}
        self._paused: set[str] = set()

    # --- running -----------------------------------------------------------------------
    def start(self, threads: int | None = None) -> None:
        """Start the keeper (this process's leases), then the delivery threads."""
        self.keeper = self.gate.keeper = Keeper(self.store, self.name, self.settings)
        self.keeper.start()
        for n in range(threads or self.settings.worker_threads):
            thread = threading.Thread(target=self._loop, name=f"deliver-{n}", daemon=True)
            thread.start()
            self._threads.append(thread)
        self.writebacks.start()

    def stop(self, timeout: float | None = None) -> None:
        """Stop after the calls in flight; waits up to their longest duration by default,
        so that claimed, unsent events are given back rather than left to other processes."""
        timeout = self.settings.longest_handling + 1 if timeout is None else timeout
        self._stop.set()
        self._nudge.set()
        for thread in self._threads:
            thread.join(timeout)
        self.writebacks.stop()
        if self.keeper is not None:
            self.keeper.stop()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                worked = self._pass()
            except StoreUnavailable as err:
                log.warning("store unavailable, delivery pauses: %s", err)
                worked = False
            except Exception:  # a bug must not kill delivery for every other event
                log.exception("delivery loop error")
                worked = False
            if not worked:
                pause = self.settings.poll_interval * (0.5 + random.random())
                if worked is None:
                    # Every slot was taken: a queued event cannot free one, and their holders
                    # drain the queue. Wake-ups (every stored webhook, under a burst) are not
                    # answered until the next poll: each look is two transactions.
                    self._stop.wait(pause)
                else:
                    self._nudge.wait(pause)
                self._nudge.clear()

    def wake(self) -> None:
        """An event was queued in this process: idle delivery threads look now, instead of at
        their next poll (other processes still find it at theirs)."""
        self._nudge.set()

    def wake_writebacks(self) -> None:
        """Write-backs were queued (an operator's retry): the write-back threads look now."""
        self.writebacks.wake()

    def now(self) -> float:
        return self.settings.clock().timestamp()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run_once(self) -> bool:
        """One pass over every token: True if any event was handled."""
        return bool(self._pass())

    def _pass(self) -> bool | None:
        """One pass over every token: whether any event was handled; None when every slot of
        every token it looked at was taken."""
        now = self.now()
        if self.keeper is None and now - self._last_sweep >= SWEEP_EVERY:  # else the keeper
            self._last_sweep = now
            if self.store.requeue_abandoned(now):
                log.info("re-queued events claimed by a worker that stopped")
        holds = self.store.holds()
        # sources whose CRM lookup credentials are held (refused) wait, unless a probe is due
        self._lookup_holds = {key: hold for key, hold in holds.items()
                              if hold["kind"] == HoldKind.LOOKUP}
        self._paused = {name for name in self.sources
                        if self._lookup_holds.get(lookup_key(name), {}).get("until", 0) > now}
        worked, full = False, True
        for key, group in random.sample(list(self.groups.items()), len(self.groups)):
            hold = holds.get(key)
            if hold and self._limit_raised(key, hold):
                hold = None
            if hold and hold["until"] > now:
                continue
            found = self._with_slot(group, probing=hold)
            worked |= bool(found)
            full &= found is None
            if hold is None and not found:  # nothing sent: ask how the delivered calls went
                self.results.look(group, now)
        return None if full and not worked else worked

    def _limit_raised(self, key: str, hold: dict[str, Any]) -> bool:
        """A quota hold of our own counter is judged against today's WOLKVOX_DAILY_LIMIT:
        raised (or removed) since, the hold is lifted and the token's events go out today."""
        limit, judged = self.settings.wolkvox_daily_limit, hold.get("daily_limit")
        if hold["kind"] != HoldKind.QUOTA or judged is None or (limit and limit <= judged):
            return False
        if self.store.release_hold(key, since=hold["since"]):
            log.info("token %s: daily limit is now %s (was %s): quota hold lifted", key,
                     limit or "unset", judged)
        return True

    def _with_slot(self, group: TokenGroup,
                   probing: dict[str, Any] | None) -> bool | None:
        """Drain the token's due events through one of its slots: whether any was handled;
        None when every slot was taken."""
        if not self.gate.open:
            return False  # leases cannot be kept now: take no slot
        with self.gate.slot(group) as tenure:
            if tenure is None:
                return None
            return Drain(self, group, tenure, probing).run()

    def trouble(self, tenure: Tenure) -> str:
        """Why the thread holding `tenure` must not start a call now ("" when it may)."""
        return self.gate.trouble(tenure)

    def claim(self, group: TokenGroup, holder: str) -> Batch:
        """The token's next due events, with the quota day their units were reserved on;
        holds the token when its quota is used up."""
        now = self.now()
        day = self.gate.day(group, now)
        sources = [name for name in group.sources if name not in self._paused]
        if not sources:
            return Batch(day, [])
        quota = self.gate.quota(group, day)
        events = self.store.claim(sources, holder, now, self.settings.lease,
                                  self.settings.claim_batch, quota)
        if events is None:  # the day's quota is used up before wolkvox had to say so
            zone, limit = group.target.timezone, self.gate.daily_limit
            until = timerules.next_day(zone, now)
            self.hold(group.key, HoldKind.QUOTA, reasons.HELD_QUOTA_USED(
                limit=limit, until=timerules.local(until, zone), zone=zone),
                until, now, daily_limit=limit)
            return Batch(day, [])
        return Batch(day, events)

    def give_back(self, key: str, batch: Batch, events: list[Claimed], holder: str,
                  reason: str = "") -> None:
        """Return claimed, unsent events to the queue and their quota units to their day."""
        if not events:
            return
        released = self.store.release([e.id for e in events], holder, self.now(), reason)
        self.gate.refund(key, batch.day, released)

    def finish(self, key: str, day: str, event: Claimed, holder: str, decision: Decision,
               now: float) -> bool:
        """Write `decision` (and give its refund back to `day`, in the same transaction):
        False when the event is no longer ours, or the outcome was written already."""
        written = self.store.finish(event.id, holder, decision, now,
                                    self.gate.quota_day(key, day))
        if written and decision.notices:
            self.writebacks.wake()
        return written

    def notices(self, source: str, moment: str) -> tuple[str, ...]:
        """The write-backs of `source` that `moment` queues (its mapping's `writeback:`)."""
        known = self.sources.get(source)
        return known.notices(moment) if known is not None else ()

    def decide(self, key: str, event: Claimed, call: Call | None = None) -> Decision:
        """What becomes of `event` (decide.py), with the probe of its lookup's held
        credentials when one is due."""
        lookup_hold = self._lookup_holds.get(lookup_key(event.source))
        return self.decider.decide(key, event, call, lookup_hold)

    def lift(self, key: str, since: float) -> None:
        """An outcome proved a held key works again: lift that hold (not one set since)."""
        if self.store.release_hold(key, since=since):
            log.info("%s works again: hold released", key)

    def hold(self, key: str, kind: HoldKind, reason: str, until: float, now: float,
             daily_limit: int | None = None) -> None:
        """Hold a wolkvox token, or a CRM lookup's credentials (`lookup:` keys), and say so
        on the events that wait for it."""
        self.store.hold(key, kind, reason, until, now, daily_limit)
        waiting = (self.groups[key].sources if key in self.groups else
                   [name for name in self.sources if lookup_key(name) == key])
        self.store.note_waiting(waiting, reason, now)
        log.warning("token %s held until %s UTC: %s", key, timerules.local(until, "UTC"), reason)
