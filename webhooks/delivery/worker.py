"""The delivery worker: claim a due event, within the token's slot and quota, send, record.

One loop per thread. A thread first owns one of its token's slots (a lease row, see
store/limits.py), then drains due events through it, one call at a time, so there are never
more calls in flight per token than slots, whatever the number of threads or processes.
Every decision is written to the event (`reason`) and, for calls, to its attempts.
"""

from __future__ import annotations

import logging
import random
import threading
from dataclasses import dataclass, field
from typing import Any

import requests

from ..lifecycle import RETRY_SOON, Status, backoff_delay
from ..outbound import wolkvox
from ..outbound.deadline import Call, new_session
from ..outbound.lookups import LookupFailed, LookupRefused, LookupRetry, fetch_and_map
from ..outbound.rate_gate import RateGate
from ..recall import RecallInvalid, Target, mask_phones_in
from ..settings import Settings
from ..store import Store, StoreUnavailable
from ..store.events import Attempt, Claimed, Decision
from ..store.holders import process_name
from ..timing import rules as timerules
from .drain import Batch, Drain
from .leases import Keeper, Tenure

log = logging.getLogger(__name__)
SWEEP_EVERY = 1.0  # seconds between looks for events a dead worker had claimed
# After a pass that found every slot taken, a thread does not answer wake-ups for this long
# (its next poll still comes): a queued event cannot free a slot, and its holder drains it.
# Under a burst every stored webhook wakes the idle threads; each look is a transaction.
FULL_PAUSE = 0.05


@dataclass
class TokenGroup:
    """A token and the sources that send with it."""

    target: Target
    sources: list[str] = field(default_factory=list)


class Worker:
    """Delivers queued events. `start()` runs threads; `run_once()` is one pass, for tests."""

    def __init__(self, store: Store, sources: dict[str, Any], settings: Settings,
                 name: str | None = None):
        self.store = store
        self.gate = RateGate(store)  # each source's CRM calls, at its mapping's rate:
        self.sources = sources
        self.settings = settings
        # host:pid:start (store/life.py): a dead process's slots and claims are free at once
        self.name = name or process_name()
        self.keeper: Keeper | None = None
        self.groups: dict[str, TokenGroup] = {}
        for source in sources.values():
            group = self.groups.setdefault(source.target.key, TokenGroup(source.target))
            group.sources.append(source.name)
        self._stop = threading.Event()
        self._nudge = threading.Event()  # set when an event is queued here: no poll to wait
        self._threads: list[threading.Thread] = []
        self._local = threading.local()
        self._last_sweep = 0.0
        self._lookup_holds: dict[str, dict[str, Any]] = {}
        self._paused: set[str] = set()

    # --- running -----------------------------------------------------------------------
    def start(self, threads: int | None = None) -> None:
        """Start the keeper (this process's leases), then the delivery threads."""
        self.keeper = Keeper(self.store, self.name, self.settings)
        self.keeper.start()
        for n in range(threads or self.settings.worker_threads):
            thread = threading.Thread(target=self._loop, name=f"deliver-{n}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float | None = None) -> None:
        """Stop after the calls in flight; waits up to their longest duration by default,
        so that claimed, unsent events are given back rather than left to other processes."""
        timeout = self.settings.longest_handling + 1 if timeout is None else timeout
        self._stop.set()
        self._nudge.set()
        for thread in self._threads:
            thread.join(timeout)
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
                if worked is None:  # every slot was taken
                    self._stop.wait(min(FULL_PAUSE, pause))
                    pause -= FULL_PAUSE
                if pause > 0:
                    self._nudge.wait(pause)
                self._nudge.clear()

    def wake(self) -> None:
        """An event was queued in this process: idle delivery threads look now, instead of at
        their next poll (other processes still find it at theirs)."""
        self._nudge.set()

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
                              if key.startswith("lookup:")}
        self._paused = {name for name in self.sources
                        if self._lookup_holds.get(lookup_key(name), {}).get("until", 0) > now}
        worked, full = False, True
        for key, group in random.sample(list(self.groups.items()), len(self.groups)):
            hold = holds.get(key)
            if hold and self._limit_raised(key, hold):
                hold = None
            if hold and hold["until"] > now:
                continue
            found = self._with_slot(key, group, probing=hold)
            worked |= bool(found)
            full &= found is None
        return None if full and not worked else worked

    def _limit_raised(self, key: str, hold: dict[str, Any]) -> bool:
        """A quota hold of our own counter is judged against today's WOLKVOX_DAILY_LIMIT:
        raised (or removed) since, the hold is lifted and the token's events go out today."""
        limit, judged = self.settings.wolkvox_daily_limit, hold.get("daily_limit")
        if hold["kind"] != "quota" or judged is None or (limit and limit <= judged):
            return False
        if self.store.release_hold(key, since=hold["since"]):
            log.info("token %s: daily limit is now %s (was %s): quota hold lifted", key,
                     limit or "unset", judged)
        return True

    def _with_slot(self, key: str, group: TokenGroup,
                   probing: dict[str, Any] | None) -> bool | None:
        """Drain the token's due events through one of its slots: whether any was handled;
        None when every slot was taken."""
        if self.keeper is not None and not self.keeper.healthy:
            return False  # leases cannot be kept now: take no slot
        holder = f"{self.name}/{threading.get_native_id()}"
        slot = self.store.take_slot(key, self.settings.wolkvox_max_concurrency, holder,
                                    self.now(), self.settings.lease)
        if slot is None:
            return None
        tenure = (self.keeper.enter(key, slot, holder) if self.keeper is not None
                  else Tenure(key, slot, holder))
        try:
            return Drain(self, key, group, tenure, probing).run()
        finally:
            if self.keeper is not None:
                self.keeper.leave(tenure)
            self.store.release_slot(key, slot, holder, tenure.rest_until)

    def trouble(self, tenure: Tenure) -> str:
        """Why the thread holding `tenure` must not start a call now ("" when it may)."""
        return self.keeper.trouble(tenure) if self.keeper is not None else tenure.lost

    def claim(self, key: str, group: TokenGroup, holder: str) -> Batch:
        """The token's next due events, with the quota day their units were reserved on;
        holds the token when its quota is used up."""
        now = self.now()
        zone = group.target.timezone
        day = timerules.day(zone, now)
        limit = self.settings.wolkvox_daily_limit
        sources = [name for name in group.sources if name not in self._paused]
        if not sources:
            return Batch(day, [])
        events = self.store.claim(sources, holder, now, self.settings.lease,
                                  self.settings.claim_batch, (key, day, limit) if limit else None)
        if events is None:  # the day's quota is used up before wolkvox had to say so
            until = timerules.next_day(zone, now)
            self.hold(key, "quota", f"held: daily quota of {limit} calls used up; waits for "
                      f"{timerules.local(until, zone)} {zone}", until, now, daily_limit=limit)
            return Batch(day, [])
        return Batch(day, events)

    def give_back(self, key: str, batch: Batch, events: list[Claimed], holder: str,
                  reason: str = "") -> None:
        """Return claimed, unsent events to the queue and their quota units to their day."""
        if not events:
            return
        released = self.store.release([e.id for e in events], holder, self.now(), reason)
        self.refund(key, batch.day, released)

    def refund(self, key: str, day: str, units: int = 1) -> None:
        if self.settings.wolkvox_daily_limit and units:
            self.store.refund_quota(key, day, units)

    def hold(self, key: str, kind: str, reason: str, until: float, now: float,
             daily_limit: int | None = None) -> None:
        """Hold a wolkvox token, or a CRM lookup's credentials (`lookup:` keys), and say so
        on the events that wait for it."""
        self.store.hold(key, kind, reason, until, now, daily_limit)
        waiting = (self.groups[key].sources if key in self.groups else
                   [name for name in self.sources if lookup_key(name) == key])
        self.store.note_waiting(waiting, reason, now)
        log.warning("token %s held until %s UTC: %s", key, timerules.local(until, "UTC"), reason)

    # --- one event ---------------------------------------------------------------------
    def decide(self, key: str, event: Claimed, day: str,
               call: Call | None = None) -> tuple[Decision, Hold | None]:
        """Send one claimed event: what becomes of it, and a token hold if one is due. Only
        wolkvox (and the CRM, for lookups) is called here; the caller writes the outcome.
        Never raises: a bug with one event fails that event, not the token's queue."""
        try:
            return self._decide(key, event, day, call)
        except StoreUnavailable:
            raise  # not this event's fault: the drain gives it back
        except Exception as err:
            log.exception("event %s: unexpected error", event.id)
            self.refund(key, day)
            reason = f"failed: unexpected {type(err).__name__} (see the worker log)"
            return Decision(Status.FAILED, reason, Attempt("failed", reason)), None

    def _decide(self, key: str, event: Claimed, day: str,
                call: Call | None) -> tuple[Decision, Hold | None]:
        now = self.now()
        source = self.sources[event.source]
        target = source.target
        recall = event.recall
        if recall is None:  # a lookup source: the CRM object is fetched here, not on receipt
            try:
                lookup = source.lookup
                recall = fetch_and_map(source, event.raw, self._session(lookup.steps[0].url),
                                       self.settings.clock(), self.settings.lookup_timeouts, call,
                                       self.gate.pace(source))
            except LookupRefused as err:  # the CRM refused our credentials: hold them
                self.refund(key, day)
                interval = self.settings.token_probe_interval
                reason = f"held: {err}; probing every {interval:g} s"
                return (Decision(Status.QUEUED, reason, Attempt("held", reason),
                                 next_attempt_at=now),
                        Hold("lookup", reason, now + interval, lookup_key(source.name)))
            except LookupRetry as err:
                self.refund(key, day)
                return self._retry(event, str(err), Attempt("retry", str(err)), now,
                                   err.after), None
            except (LookupFailed, RecallInvalid) as err:
                self.refund(key, day)
                status = Status.INVALID if isinstance(err, RecallInvalid) else Status.FAILED
                return Decision(status, str(err), Attempt("failed", str(err))), None
            held = self._lookup_holds.get(lookup_key(source.name))
            if held and self.store.release_hold(lookup_key(source.name), since=held["since"]):
                log.info("lookup of %s works again: hold released", source.name)
        if event.occurred_at is not None and source.lookup is not None:
            later = self.store.later_change(key, recall["campaign_id"], recall["customer_id"],
                                            event.occurred_at, event.id)
            if later is not None:  # known as the lead only now, after the lookup
                self.refund(key, day)
                reason = (f"superseded: event {later[0]} of the same lead reports a later "
                          f"change ({timerules.local(later[1], 'UTC')} UTC against "
                          f"{timerules.local(event.occurred_at, 'UTC')} UTC)")
                return Decision(Status.SUPERSEDED, reason, Attempt("superseded", reason),
                                recall=recall), None
        repeat = self._repeat_of(key, source, event, recall, now)
        if repeat is not None:  # a CRM firing on every edit: the call stays as it was
            self.refund(key, day)
            return Decision(Status.SUPERSEDED, repeat, Attempt("superseded", repeat),
                            recall=recall), None
        plan = self.plan(key, source, recall, now)
        if plan.recall is None:
            self.refund(key, day)
            status = Status.EXPIRED if plan.action == "expired" else Status.FAILED
            return Decision(status, plan.note, Attempt(plan.action, plan.note)), None
        recall, note = plan.recall, plan.note
        try:
            result = wolkvox.send_recall(self._session(target.base_url), target, recall,
                                         self.settings.wolkvox_timeouts, call)
        except wolkvox.WolkvoxError as err:
            return self._on_error(key, target, event, recall, err, day)
        said = mask_phones_in(result.answer.msg)
        reason = f"delivered, {note}; wolkvox: {said}" if note else f"delivered: {said}"
        return Decision(Status.DELIVERED, reason, _attempt("delivered", reason, result.answer),
                        recall=recall, scheduled_for=timerules.epoch(recall, target.timezone)), None

    def _repeat_of(self, key: str, source: Any, event: Claimed, recall: dict[str, str],
                   now: float) -> str | None:
        """The reason to keep `event` as a duplicate when it asks what the lead's last recall,
        still ahead in wolkvox, asked: same customer, phone and asked date ("no date" being a
        value of its own). None when it is a new request, or the mapping cannot tell."""
        asked = source.asked_date(event.raw)
        if asked is None:
            return None
        last = self.store.ahead_in_wolkvox(key, recall["campaign_id"], recall["customer_id"],
                                           now, event.id)
        if last is None or last["phone"] != recall["recall_telephone"] \
                or source.asked_date(last["raw"]) != asked:
            return None
        return (f"superseded: duplicate of event {last['id']}, still ahead in wolkvox "
                f"({timerules.local(last['scheduled_for'], source.target.timezone)}): same "
                "customer, phone and asked date; not sent again")

    def plan(self, key: str, source: Any, recall: dict[str, str], now: float) -> timerules.Plan:
        """When to send `recall`: the time rules, the source's calling hours, and its contact
        caps counted over the lead's recalls already due (from the store: every process)."""
        dialled: list[float] = []
        if source.caps is not None:
            dialled = self.store.dialled(key, recall["campaign_id"], recall["customer_id"],
                                         now - 8 * 86400, now)
        return timerules.schedule(recall, source.target.timezone, now,
                                  self.settings.wolkvox_min_lead, self.settings.expire_after,
                                  source.hours, source.caps, dialled)

    def _on_error(self, key: str, target: Target, event: Claimed, recall: dict[str, str],
                  err: wolkvox.WolkvoxError, day: str) -> tuple[Decision, Hold | None]:
        now = self.now()
        if isinstance(err, wolkvox.Rejected):
            return Decision(Status.FAILED, err.reason, _attempt("failed", err.reason, err.answer),
                            recall=recall), None
        if isinstance(err, wolkvox.RetrySoon):
            return Decision(Status.QUEUED, f"retry soon: {err.reason}",
                            _attempt("retry", err.reason, err.answer), count=err.counted,
                            next_attempt_at=now + RETRY_SOON), None
        if isinstance(err, wolkvox.QuotaExceeded):
            reason = f"held: {err.reason}"
            return (Decision(Status.QUEUED, reason, _attempt("held", reason, err.answer),
                             count=err.counted, next_attempt_at=now),
                    Hold("quota", reason, timerules.next_day(target.timezone, now)))
        if isinstance(err, wolkvox.TokenRejected):
            self.refund(key, day)  # wolkvox refused it: assume no unit was spent
            interval = self.settings.token_probe_interval
            reason = f"held: {err.reason}; probing every {interval:g} s"
            return (Decision(Status.QUEUED, reason, _attempt("held", reason, err.answer),
                             count=err.counted, next_attempt_at=now),
                    Hold("token", reason, now + interval))
        after = getattr(err, "after", 0.0)  # RetryLater: counted, with backoff (or Retry-After)
        return self._retry(event, err.reason, _attempt("retry", err.reason, err.answer), now,
                           after), None

    def _retry(self, event: Claimed, reason: str, attempt: Attempt, now: float,
               after: float = 0.0) -> Decision:
        attempts = event.attempts + 1
        if now - event.age_from >= self.settings.max_event_age:
            final = f"failed after {attempts} attempts over the maximum age: {reason}"
            return Decision(Status.FAILED, final, attempt, count=True)
        delay = max(backoff_delay(attempts, random.random()), after)
        return Decision(Status.QUEUED, f"retry in {delay:.0f} s: {reason}", attempt,
                        count=True, next_attempt_at=now + delay)

    def _session(self, base_url: str) -> requests.Session:
        """One session per thread and per host (its proxy settings are the host's)."""
        sessions = self._local.__dict__.setdefault("sessions", {})
        if base_url not in sessions:
            sessions[base_url] = new_session(base_url)
        return sessions[base_url]


@dataclass(frozen=True)
class Hold:
    """Stop using a token until `until`: `kind` quota (reset), token (next probe), or lookup
    (a CRM's credentials, held under `key` instead of the wolkvox token's)."""

    kind: str
    reason: str
    until: float
    key: str | None = None


def lookup_key(source: str) -> str:
    """The hold key of a source's CRM lookup credentials."""
    return f"lookup:{source}"


def _attempt(outcome: str, reason: str, answer: wolkvox.Answer | None) -> Attempt:
    """An attempt as recorded; wolkvox's msg repeats the phone number, which is masked."""
    if answer is None:
        return Attempt(outcome, reason)
    return Attempt(outcome, reason, answer.latency_ms, answer.http_status, answer.code,
                   mask_phones_in(answer.msg))
