"""The delivery worker: claim a due event, within the token's slot and quota, send, record.

One loop per thread. A thread first owns one of its token's slots (a lease row, see
store/limits.py), then drains due events through it, one call at a time, so there are never
more calls in flight per token than slots, whatever the number of threads or processes.
Every decision is written to the event (`reason`) and, for calls, to its attempts.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import requests

from . import wolkvox
from .lifecycle import RETRY_SOON, Status, backoff_delay
from .lookup import LookupFailed, LookupRetry, fetch_and_map
from .mapping.converters import RECALL_DATE_FORMAT
from .recall import RecallInvalid, mask_phones_in
from .settings import Settings
from .store import Store, StoreUnavailable
from .store.events import Attempt, Claimed, Decision, Quota
from .wolkvox import Target

log = logging.getLogger(__name__)
SWEEP_EVERY = 5.0  # seconds between looks for events abandoned by a dead worker


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
        self.sources = sources
        self.settings = settings
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.groups: dict[str, TokenGroup] = {}
        for source in sources.values():
            group = self.groups.setdefault(source.target.key, TokenGroup(source.target))
            group.sources.append(source.name)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._local = threading.local()
        self._last_sweep = 0.0

    # --- running -----------------------------------------------------------------------
    def start(self, threads: int | None = None) -> None:
        for n in range(threads or self.settings.worker_threads):
            thread = threading.Thread(target=self._loop, name=f"deliver-{n}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                worked = self.run_once()
            except StoreUnavailable as err:
                log.warning("store unavailable, delivery pauses: %s", err)
                worked = False
            except Exception:  # a bug must not kill delivery for every other event
                log.exception("delivery loop error")
                worked = False
            if not worked:
                self._stop.wait(self.settings.poll_interval * (0.5 + random.random()))

    def now(self) -> float:
        return self.settings.clock().timestamp()

    def run_once(self) -> bool:
        """One pass over every token: True if any event was handled."""
        now = self.now()
        if now - self._last_sweep >= SWEEP_EVERY:
            self._last_sweep = now
            if self.store.requeue_abandoned(now):
                log.info("re-queued events whose worker lease ran out")
        holds = self.store.holds()
        worked = False
        for key, group in random.sample(list(self.groups.items()), len(self.groups)):
            hold = holds.get(key)
            if hold and hold["until"] > now:
                continue
            worked |= self._with_slot(key, group, probing=hold)
        return worked

    def _with_slot(self, key: str, group: TokenGroup, probing: dict[str, Any] | None) -> bool:
        holder = f"{self.name}:{threading.get_ident()}"
        lease = self.settings.lease_seconds
        slot = self.store.take_slot(key, self.settings.wolkvox_max_concurrency, holder,
                                    self.now(), lease)
        if slot is None:
            return False
        try:
            return self._drain(key, group, slot, holder, probing)
        finally:
            self.store.release_slot(key, slot, holder)

    def _drain(self, key: str, group: TokenGroup, slot: int, holder: str,
               probing: dict[str, Any] | None) -> bool:
        """Send due events through one slot until none is due or the token is held.

        A helper thread writes each outcome while the next call is in flight, and claims the
        next batch during the last call of the current one: at full speed the slot waits on
        wolkvox alone. At most one outcome is unwritten at any time, so a crash can re-send
        at most the event in flight and the one just answered."""
        lease = self.settings.lease_seconds
        margin = self.settings.lease_margin  # lease - margin = the longest call
        target = group.target
        renewed = self.now()
        handled = 0
        held = ""
        pending: Future | None = None  # the last outcome, being written
        ahead: Future | None = None  # the next batch, being claimed
        with ThreadPoolExecutor(1, thread_name_prefix="record") as recorder:
            claimed_at, batch = self._claim(key, group, holder)
            while batch and not held and not self._stop.is_set():
                for index, event in enumerate(batch):
                    # Start a call only while its event's lease and the slot's lease both
                    # outlast the longest call: past that, another worker could take them.
                    started = self.now()
                    if started - renewed > margin / 2:
                        renewed = started
                        if not self.store.renew_slot(key, slot, holder, started + lease):
                            held = "the slot's lease was lost; claimed again later"
                    if held or self._stop.is_set() or started - claimed_at > margin:
                        self._give_back(key, target, batch[index:], holder, held)
                        break
                    if index == len(batch) - 1:
                        ahead = recorder.submit(self._claim, key, group, holder)
                    decision, hold = self._decide(key, target, event)
                    handled += 1
                    if pending is not None:
                        pending.result()
                    pending = recorder.submit(self.store.finish, event.id, decision, self.now())
                    if hold is not None:
                        self._hold(key, *hold, self.now())
                        held = hold[1]
                    elif probing:
                        self.store.release_hold(key)
                        log.info("token %s works again: hold released", key)
                        probing = None
                if ahead is not None:
                    (claimed_at, batch), ahead = ahead.result(), None
                elif held or self._stop.is_set():
                    batch = []
                else:  # the batch was kept too long: claim afresh
                    claimed_at, batch = self._claim(key, group, holder)
            if batch:  # claimed ahead, but the token is now held (or we are stopping)
                self._give_back(key, target, batch, holder, held)
            if pending is not None:
                pending.result()
        return handled > 0

    def _claim(self, key: str, group: TokenGroup, holder: str) -> tuple[float, list[Claimed]]:
        """(when, the token's next due events); holds the token when its quota is used up."""
        now = self.now()
        quota = self._quota(key, group.target, now)
        batch = self.store.claim(group.sources, holder, now, self.settings.lease_seconds,
                                 self.settings.claim_batch, quota)
        if batch is None:  # the day's quota is used up before wolkvox had to say so
            zone = group.target.timezone
            until = self._next_day(group.target, now)
            self._hold(key, "quota", f"held: daily quota of {quota[2]} calls used up; waits "
                       f"for {_local(until, zone)} {zone}", until, now)
            return now, []
        return now, batch

    def _give_back(self, key: str, target: Target, events: list[Claimed], holder: str,
                   reason: str) -> None:
        now = self.now()
        released = self.store.release([e.id for e in events], holder, now, reason)
        if released and self.settings.wolkvox_daily_limit:
            self.store.refund_quota(key, self._day(target, now), released)

    def _quota(self, key: str, target: Target, now: float) -> Quota | None:
        limit = self.settings.wolkvox_daily_limit
        return (key, self._day(target, now), limit) if limit else None

    # --- one event ---------------------------------------------------------------------
    def _decide(self, key: str, target: Target,
                event: Claimed) -> tuple[Decision, tuple[str, str, float] | None]:
        """Send one claimed event; (what becomes of it, (kind, reason, until) of a token hold
        or None). Only wolkvox (and the CRM, for lookups) is called here; the caller writes."""
        now = self.now()
        source = self.sources.get(event.source)
        if source is None:
            return Decision(Status.FAILED, f"source {event.source} has no mapping"), None
        recall = event.recall
        if recall is None:  # a lookup source: the CRM object is fetched here, not on receipt
            try:
                recall = fetch_and_map(source, event.raw, self._session(), self.settings.clock())
            except LookupRetry as err:
                self._refund(key, target, now)
                return self._retry(event, str(err), Attempt("retry", str(err)), now,
                                   err.after), None
            except (LookupFailed, RecallInvalid) as err:
                self._refund(key, target, now)
                status = Status.INVALID if isinstance(err, RecallInvalid) else Status.FAILED
                return Decision(status, str(err), Attempt("failed", str(err))), None
        recall, note = self._apply_time_rules(recall, target, now)
        if recall is None:
            self._refund(key, target, now)
            return Decision(Status.EXPIRED, note, Attempt("expired", note)), None
        try:
            result = wolkvox.send_recall(self._session(), target, recall,
                                         self.settings.wolkvox_timeouts)
        except wolkvox.WolkvoxError as err:
            return self._on_error(key, target, event, recall, err)
        reason = f"delivered: {mask_phones_in(result.answer.msg)}" + (f" ({note})" if note else "")
        return Decision(Status.DELIVERED, reason, _attempt("delivered", reason, result.answer),
                        recall=recall), None

    def _on_error(self, key: str, target: Target, event: Claimed, recall: dict[str, str],
                  err: wolkvox.WolkvoxError) -> tuple[Decision, tuple[str, str, float] | None]:
        now = self.now()
        if isinstance(err, wolkvox.Rejected):
            return Decision(Status.FAILED, err.reason, _attempt("failed", err.reason, err.answer),
                            recall=recall), None
        if isinstance(err, wolkvox.RetrySoon):
            return Decision(Status.QUEUED, f"retry soon: {err.reason}",
                            _attempt("retry", err.reason, err.answer),
                            next_attempt_at=now + RETRY_SOON), None
        if isinstance(err, wolkvox.QuotaExceeded):
            reason = f"held: {err.reason}"
            return (Decision(Status.QUEUED, reason, _attempt("held", reason, err.answer),
                             next_attempt_at=now),
                    ("quota", reason, self._next_day(target, now)))
        if isinstance(err, wolkvox.TokenRejected):
            self._refund(key, target, now)  # wolkvox refused it: assume no unit was spent
            interval = self.settings.token_probe_interval
            reason = f"held: {err.reason}; probing every {interval:g} s"
            return (Decision(Status.QUEUED, reason, _attempt("held", reason, err.answer),
                             next_attempt_at=now),
                    ("token", reason, now + interval))
        return self._retry(event, err.reason, _attempt("retry", err.reason, err.answer), now), None

    def _retry(self, event: Claimed, reason: str, attempt: Attempt, now: float,
               after: float = 0.0) -> Decision:
        attempts = event.attempts + 1
        if now - event.created_at >= self.settings.max_event_age:
            final = f"failed after {attempts} attempts over the maximum age: {reason}"
            return Decision(Status.FAILED, final, attempt, count=True)
        delay = max(backoff_delay(attempts, random.random()), after)
        return Decision(Status.QUEUED, f"retry in {delay:.0f} s: {reason}", attempt,
                        count=True, next_attempt_at=now + delay)

    def _hold(self, key: str, kind: str, reason: str, until: float, now: float) -> None:
        if kind == "lease":
            return
        self.store.hold(key, kind, reason, until, now)
        self.store.note_waiting(self.groups[key].sources, reason, now)
        log.warning("token %s held until %s: %s", key, _local(until, "UTC"), reason)

    def _refund(self, key: str, target: Target, now: float) -> None:
        if self.settings.wolkvox_daily_limit:
            self.store.refund_quota(key, self._day(target, now))

    # --- rules -------------------------------------------------------------------------
    def _apply_time_rules(self, recall: dict[str, str], target: Target,
                          now: float) -> tuple[dict[str, str] | None, str]:
        """(recall to send, note) or (None, why expired): never less than MIN_LEAD ahead,
        never a callback that passed more than EXPIRE_AFTER ago."""
        zone = ZoneInfo(target.timezone)
        when = datetime.strptime(recall["recall_date"], RECALL_DATE_FORMAT).replace(tzinfo=zone)
        current = datetime.fromtimestamp(now, zone)
        if when < current - timedelta(seconds=self.settings.expire_after):
            return None, (f"expired: callback time {when:%Y-%m-%d %H:%M} passed more than "
                          f"{self.settings.expire_after / 3600:g} h ago")
        earliest = current + timedelta(seconds=self.settings.wolkvox_min_lead)
        if when < earliest:
            moved = earliest.strftime(RECALL_DATE_FORMAT)
            return {**recall, "recall_date": moved}, (
                f"recall_date moved from {recall['recall_date']} to {moved}: wolkvox wants "
                f"{self.settings.wolkvox_min_lead / 60:g} min ahead")
        return recall, ""

    @staticmethod
    def _day(target: Target, now: float) -> str:
        return datetime.fromtimestamp(now, ZoneInfo(target.timezone)).strftime("%Y-%m-%d")

    @staticmethod
    def _next_day(target: Target, now: float) -> float:
        zone = ZoneInfo(target.timezone)
        today = datetime.fromtimestamp(now, zone).date()
        return datetime.combine(today + timedelta(days=1), datetime.min.time(), zone).timestamp()

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            targets = [g.target.base_url for g in self.groups.values()]
            session = self._local.session = wolkvox.new_session(targets[0] if targets else "")
        return session


def _local(epoch: float, timezone: str) -> str:
    return f"{datetime.fromtimestamp(epoch, ZoneInfo(timezone)):%Y-%m-%d %H:%M}"


def _attempt(outcome: str, reason: str, answer: wolkvox.Answer | None) -> Attempt:
    if answer is None:
        return Attempt(outcome, reason)
    return Attempt(outcome, reason, answer.latency_ms, answer.http_status, answer.code,
                   answer.msg)
