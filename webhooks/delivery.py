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
from .store.events import Attempt, Claimed
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
        lease = self.settings.lease_seconds
        renewed = self.now()
        handled = 0
        while not self._stop.is_set():
            now = self.now()
            if now - renewed > lease / 3:
                if not self.store.renew_slot(key, slot, holder, now + lease):
                    break  # our lease lapsed and the slot went to someone else
                renewed = now
            claimed = self.store.claim(group.sources, holder, now, lease)
            if not claimed:
                break
            handled += 1
            verdict = self._deliver(key, group.target, claimed[0], probing)
            if probing and verdict != "held":
                self.store.release_hold(key)
                log.info("token %s works again: hold released", key)
                probing = None
            if verdict == "held":
                break
        return handled > 0

    # --- one event ---------------------------------------------------------------------
    def _deliver(self, key: str, target: Target, event: Claimed,
                 probing: dict[str, Any] | None) -> str:
        """Send one claimed event and record the outcome; returns the outcome's word."""
        now = self.now()
        source = self.sources.get(event.source)
        if source is None:
            return self._finish(event, Status.FAILED, f"source {event.source} has no mapping")
        recall = event.recall
        if recall is None:  # a lookup source: the CRM object is fetched here, not on receipt
            try:
                recall = fetch_and_map(source, event.raw, self._session(), self.settings.clock())
            except LookupRetry as err:
                return self._retry(event, str(err), Attempt("retry", str(err)), now)
            except (LookupFailed, RecallInvalid) as err:
                status = Status.INVALID if isinstance(err, RecallInvalid) else Status.FAILED
                return self._finish(event, status, str(err), Attempt("failed", str(err)))
        recall, note = self._apply_time_rules(recall, target, now)
        if recall is None:
            return self._finish(event, Status.EXPIRED, note, Attempt("expired", note))
        day = self._day(target, now)
        limit = self.settings.wolkvox_daily_limit
        if limit and not self.store.reserve_quota(key, day, limit):
            until = self._next_day(target, now)
            reason = (f"held: daily quota of {limit} calls used up; waits for "
                      f"{datetime.fromtimestamp(until, ZoneInfo(target.timezone)):%Y-%m-%d %H:%M}"
                      f" {target.timezone}")
            return self._hold(key, event, "quota", reason, until, now)
        try:
            result = wolkvox.send_recall(self._session(), target, recall,
                                         self.settings.wolkvox_timeouts)
        except wolkvox.WolkvoxError as err:
            return self._on_error(key, event, recall, err, day, note)
        answer = result.answer
        reason = f"delivered: {mask_phones_in(answer.msg)}" + (f" ({note})" if note else "")
        self.store.finish(event.id, Status.DELIVERED, reason, self.now(),
                          _attempt("delivered", reason, answer), recall=recall)
        return "delivered"

    def _on_error(self, key: str, event: Claimed, recall: dict[str, str],
                  err: wolkvox.WolkvoxError, day: str, note: str) -> str:
        now = self.now()
        target = self.sources[event.source].target
        if isinstance(err, wolkvox.Rejected):
            return self._finish(event, Status.FAILED, err.reason,
                                _attempt("failed", err.reason, err.answer), recall)
        if isinstance(err, wolkvox.RetrySoon):
            self.store.finish(event.id, Status.QUEUED, f"retry soon: {err.reason}", now,
                              _attempt("retry", err.reason, err.answer),
                              next_attempt_at=now + RETRY_SOON)
            return "retry"
        if isinstance(err, wolkvox.QuotaExceeded):
            return self._hold(key, event, "quota", f"held: {err.reason}",
                              self._next_day(target, now), now, err.answer)
        if isinstance(err, wolkvox.TokenRejected):
            if self.settings.wolkvox_daily_limit:
                self.store.refund_quota(key, day)  # not certain wolkvox counted it; be fair
            until = now + self.settings.token_probe_interval
            return self._hold(key, event, "token", f"held: {err.reason}; probing every "
                              f"{self.settings.token_probe_interval:g} s", until, now,
                              err.answer)
        return self._retry(event, err.reason, _attempt("retry", err.reason, err.answer), now)

    def _retry(self, event: Claimed, reason: str, attempt: Attempt, now: float) -> str:
        attempts = event.attempts + 1
        if now - event.created_at >= self.settings.max_event_age:
            final = f"failed after {attempts} attempts over the maximum age: {reason}"
            return self._finish(event, Status.FAILED, final, attempt)
        delay = backoff_delay(attempts, random.random())
        self.store.finish(event.id, Status.QUEUED, f"retry in {delay:.0f} s: {reason}", now,
                          attempt, count=True, next_attempt_at=now + delay)
        return "retry"

    def _hold(self, key: str, event: Claimed, kind: str, reason: str, until: float,
              now: float, answer: wolkvox.Answer | None = None) -> str:
        self.store.hold(key, kind, reason, until, now)
        attempt = _attempt("held", reason, answer) if answer else None
        self.store.finish(event.id, Status.QUEUED, reason, now, attempt, next_attempt_at=now)
        self.store.note_waiting(self.groups[key].sources, reason, now)
        return "held"

    def _finish(self, event: Claimed, status: Status, reason: str,
                attempt: Attempt | None = None, recall: dict[str, str] | None = None) -> str:
        self.store.finish(event.id, status, reason, self.now(), attempt, recall=recall)
        return status.value

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
            session = self._local.session = requests.Session()
        return session


def _attempt(outcome: str, reason: str, answer: wolkvox.Answer | None) -> Attempt:
    if answer is None:
        return Attempt(outcome, reason)
    return Attempt(outcome, reason, answer.latency_ms, answer.http_status, answer.code,
                   answer.msg)
