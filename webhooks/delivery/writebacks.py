"""Write-backs: send what each callback's outcome queued for its CRM (store/writebacks.py).

Threads of their own in each delivery process (WRITEBACK_THREADS), so that a CRM that is
slow, floods its answer or never answers costs a write-back thread for WRITEBACK_TIMEOUT at
most, never a recall's slot. A thread takes the oldest due write-back of a source no other
thread of the process is sending to (one hung CRM holds one thread), waits for the source's
turn at its rate gate (the same turns as its lookups), renders the entry's templates and
sends it. The answer meets the one error family: retried with backoff (429: not before its
Retry-After) up to WRITEBACK_ATTEMPTS, failed with the CRM's message, or held: 401/403 holds
the source's write-back credentials (`writeback:<source>`) until the next probe, every
TOKEN_PROBE_INTERVAL, and an answer that proves them lifts it. The event never changes.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Mapping
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

import requests

from .. import reasons
from ..lifecycle import WRITEBACK_ATTEMPTS, WritebackStatus, backoff_delay
from ..mapping.source import Source
from ..mapping.writeback import Request, Writeback, WritebackTemplateError, context
from ..observability import metrics
from ..outbound import errors
from ..outbound.deadline import new_session
from ..outbound.oauth import TokenCache
from ..outbound.rate_gate import RateGate
from ..outbound.writeback import WritebackRefused, send
from ..settings import Settings
from ..store import Store, StoreUnavailable
from ..store.alerts import ALERTS
from ..store.limits import HoldKind, writeback_key
from ..store.writebacks import ClaimedWriteback, WritebackOutcome
from .alerts import Alerts

log = logging.getLogger(__name__)
LEASE_MARGIN = 5.0  # a claim outlives its call's deadline by this much
# An idle write-back thread looks this often: what this process queues wakes it at once (an
# outcome, an operator's retry); a reported call or an alert waits for the next look.
IDLE_POLL = 1.0


class Sender:
    """Sends one process's write-backs. `start()` runs threads; `run_once()` is one send."""

    def __init__(self, store: Store, sources: Mapping[str, Source], settings: Settings,
                 name: str, alerts: Alerts | None = None):
        self.store, self.settings, self.name = store, settings, name
        self.sources = {n: s for n, s in sources.items() if s.writebacks}
        self.alerts = alerts if alerts is not None and alerts.on else None
        self.gate = RateGate(store)
        self.tokens = TokenCache()  # OAuth 2 tokens, per credentials, for this process
        self._busy: set[str] = set()  # sources a thread of this process is sending to
        self._busy_lock = threading.Lock()
        self._local = threading.local()
        self._stop = threading.Event()
        self._nudge = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def on(self) -> bool:
        return bool(self.sources) or self.alerts is not None

    @property
    def destinations(self) -> list[str]:
        """The sources whose write-backs it sends, and the operators' alerts when on."""
        return [*self.sources, *([ALERTS] if self.alerts is not None else [])]

    def start(self, threads: int | None = None) -> None:
        if not self.on:
            return
        for n in range(threads or self.settings.writeback_threads):
            thread = threading.Thread(target=self._loop, args=(f"{self.name}/wb{n}",),
                                      name=f"writeback-{n}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float | None = None) -> None:
        self._stop.set()
        self._nudge.set()
        for thread in self._threads:
            thread.join(self.settings.writeback_timeout + 1 if timeout is None else timeout)

    def wake(self) -> None:
        """An outcome queued a write-back in this process: look now."""
        self._nudge.set()

    def _loop(self, holder: str) -> None:
        while not self._stop.is_set():
            try:
                sent = self.run_once(holder)
            except StoreUnavailable as err:
                log.warning("store unavailable, write-backs pause: %s", err)
                sent = False
            except Exception:  # a bug must not end every other write-back
                log.exception("write-back loop error")
                sent = False
            if not sent:
                self._nudge.wait(max(IDLE_POLL, self.settings.poll_interval)
                                 * (0.5 + random.random()))
                self._nudge.clear()

    def now(self) -> float:
        return self.settings.clock().timestamp()

    def run_once(self, holder: str | None = None) -> bool:
        """Send the oldest due write-back of a source that may be sent to; whether one was."""
        holder = holder or f"{self.name}/wb"
        now = self.now()
        if self.alerts is not None:
            self.alerts.check(now)
        holds = {key: hold for key, hold in self.store.holds().items()
                 if hold["kind"] == HoldKind.WRITEBACK}
        with self._busy_lock:
            open_ = [name for name in self.destinations if name not in self._busy
                     and holds.get(writeback_key(name), {}).get("until", 0) <= now]
        if not open_ or not self.store.any_writeback_due(open_, now):
            return False
        claimed = self.store.claim_writeback(
            open_, holder, now, sum(self.settings.writeback_timeouts) + LEASE_MARGIN)
        if claimed is None:
            return False
        with self._busy_lock:
            self._busy.add(claimed.source)
        try:
            outcome = self.decide(claimed)
        finally:
            with self._busy_lock:
                self._busy.discard(claimed.source)
        now = self.now()
        self.store.finish_writeback(claimed.id, holder, outcome, now)
        metrics.writeback(claimed.source, _counted_as(outcome))
        self._after(claimed.source, outcome, holds.get(writeback_key(claimed.source)), now)
        return True

    def decide(self, claimed: ClaimedWriteback) -> WritebackOutcome:
        """Render and send one write-back; how it went (never raises but for the store)."""
        if claimed.source == ALERTS and self.alerts is not None:
            return self._alert(claimed)
        source = self.sources.get(claimed.source)
        entry = source.writeback(claimed.name) if source is not None else None
        what = claimed.name
        if source is None or entry is None or entry.off or claimed.event_id is None:
            return WritebackOutcome(WritebackStatus.FAILED, reasons.WRITEBACK_GONE(what=what))
        try:
            request = entry.request(context(
                claimed.moment, claimed.facts, claimed.raw, claimed.source, claimed.event_id,
                source.target.timezone, entry.language))
        except WritebackTemplateError as err:
            return WritebackOutcome(WritebackStatus.FAILED,
                                    reasons.WRITEBACK_TEMPLATE(what=what, error=str(err)))
        try:
            answer = self._send(source, entry, request, what)
        except errors.OutboundError as err:
            return self._on_error(err, claimed)
        except Exception as err:  # a bug with one write-back fails that one alone
            log.exception("write-back %s: unexpected error", claimed.id)
            return WritebackOutcome(WritebackStatus.FAILED, reasons.WRITEBACK_TRANSPORT(
                what=what, error=type(err).__name__))
        return _done(what, request, answer)

    def _alert(self, claimed: ClaimedWriteback) -> WritebackOutcome:
        """An operators' message: no rate gate, no template (its text was judged)."""
        assert self.alerts is not None
        request = self.alerts.request(claimed.facts)
        try:
            answer = send(request, "alert", self._session(request.url),
                          self.settings.writeback_timeouts)
        except errors.OutboundError as err:
            return self._on_error(err, claimed)
        return _done("alert", request, answer)

    def _send(self, source: Source, entry: Writeback, request: Request,
              what: str) -> errors.Answer:
        """Its turn at the source's rate gate, then the call; with OAuth 2, the cached token,
        and once more with a new one when the CRM refuses it (it expired early, or was
        revoked and granted again)."""
        timeouts = self.settings.writeback_timeouts
        for renewed in (False, True):
            if entry.oauth2 is not None:
                name, value = self.tokens.header(entry.oauth2, timeouts, what)
                request = replace(request, headers={**request.headers, name: value})
            self.gate.pace(source)(self.settings.writeback_timeout)
            try:
                return send(request, what, self._session(request.url), timeouts)
            except WritebackRefused:
                if entry.oauth2 is None or renewed:
                    raise
                self.tokens.forget(entry.oauth2)
        raise AssertionError("unreachable")  # pragma: no cover

    def _on_error(self, err: errors.OutboundError,
                  claimed: ClaimedWriteback) -> WritebackOutcome:
        now = self.now()
        status = err.answer.http_status if err.answer else None
        said = err.answer.msg if err.answer else None
        if isinstance(err, errors.GiveUp):
            return WritebackOutcome(WritebackStatus.FAILED, err.reason, http_status=status,
                                    answer=said)
        if isinstance(err, errors.HoldCredentials):
            interval = self.settings.token_probe_interval
            return WritebackOutcome(
                WritebackStatus.QUEUED,
                reasons.WRITEBACK_HELD(reason=err.reason, interval=f"{interval:g}"),
                next_attempt_at=now, http_status=status, answer=said, held=True)
        after = err.after if isinstance(err, errors.RetryLater) else 0.0
        if not err.counted:  # our own pace: back at the turn, no attempt lost
            return WritebackOutcome(WritebackStatus.QUEUED, err.reason, next_attempt_at=now + after)
        attempts = claimed.attempts + 1
        if attempts >= WRITEBACK_ATTEMPTS:
            return WritebackOutcome(
                WritebackStatus.FAILED,
                reasons.WRITEBACK_GAVE_UP(attempts=attempts, reason=err.reason), count=True,
                http_status=status, answer=said)
        delay = max(backoff_delay(attempts, random.random()), after)
        return WritebackOutcome(
            WritebackStatus.QUEUED,
            reasons.WRITEBACK_RETRY(delay=f"{delay:.0f}", reason=err.reason), count=True,
            next_attempt_at=now + delay, http_status=status, answer=said)

    def _after(self, source: str, outcome: WritebackOutcome, hold: dict[str, Any] | None,
               now: float) -> None:
        """Hold the source's write-backs on a refusal; lift a hold an answer proved needless."""
        key = writeback_key(source)
        if outcome.held:
            until = now + self.settings.token_probe_interval
            self.store.hold(key, HoldKind.WRITEBACK, outcome.reason, until, now)
            self.store.note_writebacks_waiting(source, outcome.reason, now)
            log.warning("write-backs of %s held until the next probe: %s", source,
                        outcome.reason)
        elif hold is not None and outcome.http_status is not None \
                and outcome.http_status not in (401, 403) \
                and self.store.release_hold(key, since=hold["since"]):
            log.info("write-backs of %s: credentials work again, hold released", source)

    def _session(self, url: str) -> requests.Session:
        """One session per thread and per host (its proxy settings are the host's)."""
        sessions = self._local.__dict__.setdefault("sessions", {})
        host = urlsplit(url).netloc
        if host not in sessions:
            sessions[host] = new_session(url)
        return sessions[host]


def _done(what: str, request: Request, answer: errors.Answer) -> WritebackOutcome:
    """The CRM took it (2xx): its answer kept (the created record's id)."""
    return WritebackOutcome(
        WritebackStatus.DONE, reasons.WRITEBACK_SENT(what=what, host=request.host,
                                                     status=answer.http_status),
        http_status=answer.http_status, answer=answer.msg)


def _counted_as(outcome: WritebackOutcome) -> str:
    if outcome.status == WritebackStatus.DONE:
        return "done"
    if outcome.status == WritebackStatus.FAILED:
        return "failed"
    return "held" if outcome.held else "retry"
