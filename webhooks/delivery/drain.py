"""One thread's use of one slot of a token: the delivery pipeline at full speed.

decide.py decides what becomes of each event, the worker (worker.py, through `Deliverer`)
claims, writes, holds and gives back; this module keeps the slot busy: the outcome writer
beside the next call, the next batch claimed during the last call, no call started on a slot
that may be lost, each decision's hold and lift applied, and what to give back when something
fails.
"""

from __future__ import annotations

import contextlib
import logging
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from typing import Any, Protocol

from ..observability import metrics
from ..outbound.deadline import Call
from ..store.events import Claimed, Decision
from ..store.limits import HoldKind
from ..timing import rules as timerules
from .gate import Batch, TokenGroup
from .leases import Tenure

log = logging.getLogger(__name__)


class Deliverer(Protocol):
    """What a drain needs of the worker that runs it (worker.Worker)."""

    @property
    def stopping(self) -> bool: ...
    def now(self) -> float: ...
    def trouble(self, tenure: Tenure) -> str: ...
    def claim(self, group: TokenGroup, holder: str) -> Batch: ...
    def give_back(self, key: str, batch: Batch, events: list[Claimed], holder: str,
                  reason: str = "") -> None: ...
    def decide(self, key: str, event: Claimed, call: Call | None = None) -> Decision: ...
    def finish(self, key: str, day: str, event: Claimed, holder: str, decision: Decision,
               now: float) -> bool: ...
    def hold(self, key: str, kind: HoldKind, reason: str, until: float, now: float,
             daily_limit: int | None = None) -> None: ...
    def lift(self, key: str, since: float) -> None: ...


class Drain:
    """One thread's use of one slot: send due events until none is due or the token is held.

    A helper thread writes each outcome while the next call is in flight, and claims the
    next batch during the last call of the current one: at full speed the slot waits on
    wolkvox alone. At most one outcome is unwritten at any time, so a crash can re-send at
    most the event in flight and the one just answered. The keeper renews the slot's and the
    claims' leases; a call starts only while the keeper says the slot is still ours, and the
    keeper cuts it short (through `tenure.call`) when it no longer is."""

    def __init__(self, worker: Deliverer, group: TokenGroup, tenure: Tenure,
                 probing: dict[str, Any] | None):
        self.worker, self.key, self.group = worker, group.key, group
        self.tenure, self.holder, self.probing = tenure, tenure.holder, probing
        self.handled = 0
        self.held = ""
        self.pending: Future | None = None  # the outcome being written
        self.unwritten: list[partial[bool]] = []  # outcomes decided, not yet known written
        self.ahead: Future | None = None  # the next batch, being claimed

    def run(self) -> bool:
        worker = self.worker
        batch = worker.claim(self.group, self.holder)
        with ThreadPoolExecutor(1, thread_name_prefix="record") as self.recorder:
            try:
                while (batch.events and not self.held and not worker.stopping
                       and not self.tenure.rest_until):
                    sent = self.handled
                    self._send(batch)
                    batch = self._next(batch, sent)
                worker.give_back(self.key, batch, batch.events, self.holder, self.held)
                self._written()
            except BaseException:
                self._salvage(batch)
                raise
        return self.handled > 0

    def _send(self, batch: Batch) -> None:
        """Send the batch's events in order, or stop early (a hold, a stop, leases too short,
        the quota day turned) and give the rest back."""
        worker, events = self.worker, batch.events
        zone = self.group.target.timezone
        for index, event in enumerate(events):
            # The call exists before the slot is judged ours: a slot lost from then on aborts it
            call = self.tenure.call = Call()
            self.held = self.held or worker.trouble(self.tenure)
            if (self.held or worker.stopping
                    or timerules.day(zone, worker.now()) != batch.day):
                self.tenure.call = None
                worker.give_back(self.key, batch, events[index:], self.holder, self.held)
                batch.events[index:] = []
                return
            if index == len(events) - 1:
                self.ahead = self.recorder.submit(worker.claim, self.group, self.holder)
            decision = worker.decide(self.key, event, call)
            self.tenure.call = None
            _observe(event, decision)
            self.handled += 1
            self._record(batch, event, decision)
            if call.rest > 0:
                # Cut short (wolkvox may still be working on it) or refused as SIMULTANEOUS
                # (wolkvox counts a call we do not): the slot rests, unused by any process,
                # and the rest of the batch goes back rather than meet the same refusal.
                self.tenure.rest_until = worker.now() + call.rest
                worker.give_back(self.key, batch, events[index + 1:], self.holder)
                batch.events[index + 1:] = []
                break
        batch.events[:] = []

    def _record(self, batch: Batch, event: Claimed, decision: Decision) -> None:
        """Write the outcome (and its refund) on the helper thread, and apply its hold or the
        hold it lifts here, before the next call."""
        write = partial(self.worker.finish, self.key, batch.day, event, self.holder, decision,
                        self.worker.now())
        self.unwritten.append(write)
        self._written()  # the previous outcome; at most one is in writing
        self.pending = self.recorder.submit(write)
        worker, hold = self.worker, decision.hold
        if decision.lifts is not None:
            worker.lift(*decision.lifts)
        if hold is not None:
            worker.hold(hold.key or self.key, hold.kind, hold.reason, hold.until, worker.now())
            self.held = hold.reason
        elif self.probing and _token_works(decision):
            worker.lift(self.key, self.probing["since"])
            self.probing = None

    def _next(self, batch: Batch, sent: int) -> Batch:
        """The batch claimed ahead, or a fresh claim when this one was cut short after
        sending some; an empty batch when nothing more should be sent now."""
        if self.ahead is not None:
            batch, self.ahead = self.ahead.result(), None
            return batch
        if (self.held or self.worker.stopping or self.handled == sent
                or self.tenure.rest_until):
            # nothing sent from this batch (a slow claim, say): leave the slot, come back later
            return Batch(batch.day, [])
        return self.worker.claim(self.group, self.holder)  # cut short: afresh

    def _written(self) -> None:
        """Wait for the outcome in writing; raises what writing it raised."""
        if self.pending is not None:
            self.pending.result()
            self.pending = None
            del self.unwritten[:-1]  # all but the outcome decided last are written

    def _salvage(self, batch: Batch) -> None:
        """After an error (the store down, most likely): write the outcomes not known to be
        written, and give back what was claimed but not sent, so that nothing waits for a
        lease to run out. Best effort: what fails here comes back by the sweep."""
        if self.pending is not None:
            with contextlib.suppress(Exception):
                self.pending.result()
        steps: list[Any] = list(self.unwritten)  # a written one is not ours: no second refund
        steps.append(partial(self.worker.give_back, self.key, batch, batch.events, self.holder))
        if self.ahead is not None:
            ahead = self.ahead
            steps.append(lambda: self.worker.give_back(self.key, ahead.result(),
                                                       ahead.result().events, self.holder))
        for step in steps:
            try:
                step()
            except Exception as err:
                log.warning("could not settle claimed events (%s); they return to the queue "
                            "once another worker sees this one stopped", err)
                return


def _observe(event: Claimed, decision: Decision) -> None:
    """Count the outcome, and say it in the log (one line an event: its id, source, outcome
    and wolkvox's latency, as fields of a JSON line with LOG_FORMAT=json)."""
    attempt = decision.attempt
    outcome = attempt.outcome if attempt else decision.status.value
    metrics.delivery_outcome(outcome)
    latency = attempt.latency_ms if attempt is not None else None
    if attempt is not None and attempt.http_status is not None and latency:
        metrics.wolkvox_call(latency / 1000)
    log.info("event %s (%s): %s", event.id, event.source, decision.reason[:200],
             extra={"event_id": event.id, "source": event.source, "outcome": outcome,
                    "latency_ms": latency})


def _token_works(decision: Decision) -> bool:
    """Did wolkvox accept the token on this call? Only an answer proves it: a delivery, or
    a refusal that is about the recall (400) rather than the token or the service."""
    status = decision.attempt.http_status if decision.attempt else None
    return status is not None and (200 <= status < 300 or status == 400)
