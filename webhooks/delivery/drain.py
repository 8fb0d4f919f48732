"""One thread's use of one slot of a token: the delivery pipeline at full speed.

The worker (delivery.py) decides what becomes of each event; this module keeps the slot busy:
claims, the outcome writer beside the next call, the next batch claimed during the last
call, no call started on a slot that may be lost, and what to give back when something fails.
"""

from __future__ import annotations

import contextlib
import logging
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from ..observability import metrics
from ..outbound.deadline import Call
from ..store.events import Claimed, Decision
from ..timing import rules as timerules

if TYPE_CHECKING:
    from .leases import Tenure
    from .worker import TokenGroup, Worker

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Batch:
    """Events claimed together, and the quota day their units were reserved on."""

    day: str
    events: list[Claimed]


class Drain:
    """One thread's use of one slot: send due events until none is due or the token is held.

    A helper thread writes each outcome while the next call is in flight, and claims the
    next batch during the last call of the current one: at full speed the slot waits on
    wolkvox alone. At most one outcome is unwritten at any time, so a crash can re-send at
    most the event in flight and the one just answered. The keeper renews the slot's and the
    claims' leases; a call starts only while the keeper says the slot is still ours, and the
    keeper cuts it short (through `tenure.call`) when it no longer is."""

    def __init__(self, worker: Worker, key: str, group: TokenGroup, tenure: Tenure,
                 probing: dict[str, Any] | None):
        self.worker, self.key, self.group = worker, key, group
        self.tenure, self.holder, self.probing = tenure, tenure.holder, probing
        self.store = worker.store
        self.handled = 0
        self.held = ""
        self.pending: Future | None = None  # the outcome being written
        self.unwritten: list[tuple[int, Decision]] = []  # decided, not yet known written
        self.ahead: Future | None = None  # the next batch, being claimed

    def run(self) -> bool:
        worker = self.worker
        batch = worker.claim(self.key, self.group, self.holder)
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
                self.ahead = self.recorder.submit(worker.claim, self.key, self.group,
                                                  self.holder)
            decision, hold = worker.decide(self.key, event, batch.day, call)
            self.tenure.call = None
            _observe(event, decision)
            self.handled += 1
            self.unwritten.append((event.id, decision))
            self._written()  # the previous outcome; at most one is in writing
            self.pending = self.recorder.submit(self.store.finish, event.id, self.holder,
                                                decision, worker.now())
            if hold is not None:
                worker.hold(hold.key or self.key, hold.kind, hold.reason, hold.until,
                            worker.now())
                self.held = hold.reason
            elif self.probing and _token_works(decision):
                self.store.release_hold(self.key, since=self.probing["since"])
                log.info("token %s works again: hold released", self.key)
                self.probing = None
            if call.rest > 0:
                # Cut short (wolkvox may still be working on it) or refused as SIMULTANEOUS
                # (wolkvox counts a call we do not): the slot rests, unused by any process,
                # and the rest of the batch goes back rather than meet the same refusal.
                self.tenure.rest_until = worker.now() + call.rest
                worker.give_back(self.key, batch, events[index + 1:], self.holder)
                batch.events[index + 1:] = []
                break
        batch.events[:] = []

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
        return self.worker.claim(self.key, self.group, self.holder)  # cut short: afresh

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
        steps = [partial(self.store.finish, event_id, self.holder, decision, self.worker.now())
                 for event_id, decision in self.unwritten]
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
