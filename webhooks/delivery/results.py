"""Call results: how each delivered recall's call went, from wolkvox's campaign_3 report.

A delivery thread with nothing to send looks here (`Results.look`, at most once a second
per token and process). A campaign's report is asked only while one of its delivered recalls
awaits its result (its date less 10 minutes has come), at most once per CALL_RESULTS_INTERVAL
per campaign and token across every process (the `reports` row's turn), through one of the
token's slots at report priority (taken only while no recall of the token is due), with one
quota unit within CALL_RESULTS_SHARE of the daily limit that no queued recall needs. Its range
runs from the earliest moment a row can be an awaited call to now.

A recall's result is the first row of its customer dated at or after its date less 10
minutes and its delivery. A recall with no row CALL_RESULTS_MAX_WAIT after its date is closed
as "no result reported". A refusal of the token or its quota holds the token as a recall's
does; an answer that is not a report is asked again at the next interval, its reason logged
once and kept on the campaign's row (/readyz).
"""

from __future__ import annotations

import logging
import math
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass

import requests

from .. import reasons
from ..observability import metrics
from ..outbound import errors
from ..outbound.deadline import Call, new_session
from ..outbound.reports import Report, ReportUnreadable, Row, fetch_report
from ..recall import mask_phone
from ..settings import Settings
from ..store import Store
from ..store.limits import HoldKind
from ..store.results import Awaiting, Result
from ..store.writebacks import NoticesOf
from ..timing import rules as timerules
from .gate import Priority, TokenGate, TokenGroup

log = logging.getLogger(__name__)
LOOK_EVERY = 1.0  # seconds between two looks of a process at one token's awaited results


@dataclass(frozen=True)
class Asked:
    """What one look did: the campaign asked about, and how it went."""

    campaign_id: str
    outcome: str  # ok | bad | refused | failed | waiting (no unit) | busy (no slot)
    matched: int = 0


Hold = Callable[[str, HoldKind, str, float, float], None]  # Worker.hold


class Results:
    """The report side of one process's delivery: asks, matches and records results."""

    def __init__(self, store: Store, settings: Settings, gate: TokenGate, hold: Hold,
                 notices: NoticesOf | None = None, wake: Callable[[], None] | None = None):
        self.store, self.settings, self.gate, self.hold = store, settings, gate, hold
        self.notices = notices  # the write-backs a reported call queues, by source
        self.wake = wake  # the write-back threads: a reported call may have queued some
        self._next_look: dict[str, float] = {}
        self._local = threading.local()

    @property
    def on(self) -> bool:
        return self.settings.call_results_interval > 0

    def look(self, group: TokenGroup, now: float) -> Asked | None:
        """Ask one of the token's campaigns for its results when one awaits and its turn has
        come; None when nothing was asked."""
        if not self.on or self._next_look.get(group.key, 0.0) > now:
            return None
        self._next_look[group.key] = now + LOOK_EVERY
        max_wait = self.settings.call_results_max_wait
        # reports that keep failing must not keep a recall awaiting for ever
        self.store.close_unreported(group.key, None, now - max_wait, max_wait, now)
        awaiting = self.store.awaiting(group.key, now)
        if not awaiting:
            return None
        campaign = random.choice(sorted(awaiting))
        return self._ask(group, campaign, awaiting[campaign], now)

    def _ask(self, group: TokenGroup, campaign: str, waiting: list[Awaiting],
             now: float) -> Asked:
        interval, key = self.settings.call_results_interval, group.key
        with self.gate.slot(group, Priority.REPORT) as tenure:
            if tenure is None or self.gate.trouble(tenure):
                return Asked(campaign, "busy")  # recalls first: looked at again in a second
            if not self.store.take_report_turn(key, campaign, now, interval):
                return Asked(campaign, "busy")  # another process asks it this interval
            day = self.gate.day(group, now)
            if not self._unit(group, day):
                reason = reasons.REPORT_WAITING_UNITS(campaign=campaign)
                self._record(key, campaign, now, "waiting", reason)
                return Asked(campaign, "waiting")
            call = tenure.call = Call()
            try:
                report = fetch_report(
                    self._session(group.target.base_url), group.target, campaign,
                    min(a.since for a in waiting), now, self.settings.wolkvox_timeouts, call)
            except errors.OutboundError as err:
                return self._refused(group, campaign, day, err, now)
            finally:
                tenure.call = None
                if call.rest > 0:
                    tenure.rest_until = self.gate.now() + call.rest
        return self._matched(group, campaign, waiting, report, now)

    def _unit(self, group: TokenGroup, day: str) -> bool:
        """One quota unit for a report, within its share; always without a daily limit."""
        limit = self.gate.daily_limit
        if not limit:
            return True
        share = math.floor(limit * self.settings.call_results_share)
        return self.store.reserve_report_unit(group.key, day, limit, share, group.sources)

    def _refused(self, group: TokenGroup, campaign: str, day: str, err: errors.OutboundError,
                 now: float) -> Asked:
        key, zone = group.key, group.target.timezone
        uncounted = isinstance(err, errors.HoldCredentials | errors.HoldQuota | errors.RetrySoon)
        if uncounted and self.gate.daily_limit:
            self.store.refund_report_unit(key, day)
        reason: str = reasons.REPORT_FAILED(campaign=campaign, cause=err.reason)
        if isinstance(err, errors.HoldQuota):
            self.hold(key, HoldKind.QUOTA, reasons.HELD(reason=err.reason),
                      timerules.next_day(zone, now), now)
            outcome = "refused"
        elif isinstance(err, errors.HoldCredentials):
            interval = self.settings.token_probe_interval
            self.hold(key, HoldKind.TOKEN, reasons.HELD_PROBING(
                reason=err.reason, interval=f"{interval:g}"), now + interval, now)
            outcome = "refused"
        elif isinstance(err, errors.RetrySoon):  # concurrency: the turn comes back soon
            self.store.give_back_turn(key, campaign, now + 1.5)
            outcome = "refused"
        else:
            outcome = "bad" if isinstance(err, ReportUnreadable) else "failed"
            if isinstance(err, ReportUnreadable):
                reason = err.reason
        self._record(key, campaign, now, outcome, reason)
        return Asked(campaign, outcome)

    def _matched(self, group: TokenGroup, campaign: str, waiting: list[Awaiting],
                 report: Report, now: float) -> Asked:
        key, zone = group.key, group.target.timezone
        results = match(waiting, report.rows, report.unsure, zone)
        written = self.store.record_results(results, now, self.notices)
        if written and self.wake is not None:
            self.wake()
        for result in results:
            metrics.call_result(result.word)
        max_wait = self.settings.call_results_max_wait
        self.store.close_unreported(key, campaign, now, max_wait, now)
        if report.bad:
            reason = reasons.REPORT_BAD_ROWS(campaign=campaign, count=report.bad,
                                             problem=report.problem)
            outcome = "bad"
        else:
            reason = reasons.REPORT_OK(campaign=campaign, rows=len(report.rows),
                                       matched=written)
            outcome = "ok"
        self._record(key, campaign, now, outcome, reason, len(report.rows) + report.bad)
        return Asked(campaign, outcome, written)

    def _record(self, key: str, campaign: str, now: float, outcome: str, reason: str,
                rows: int | None = None) -> None:
        """Keep how the report went on its row, count it, and log a problem once (not again
        while the next reports repeat it)."""
        if outcome not in ("waiting", "busy"):
            metrics.report_call(outcome)
        before = self.store.record_report(key, campaign, now, outcome, reason, rows)
        if outcome == "ok":
            log.info("%s", reason)
        elif reason != before:
            log.warning("token %s: %s", key, reason)

    def _session(self, base_url: str) -> requests.Session:
        sessions = self._local.__dict__.setdefault("sessions", {})
        if base_url not in sessions:
            sessions[base_url] = new_session(base_url)
        return sessions[base_url]


def match(waiting: list[Awaiting], rows: list[Row], unsure: set[str],
          timezone: str) -> list[Result]:
    """Each awaited recall's result: the first row of its customer dated at or after the
    earliest moment it can have been called (its date less 10 minutes, and its delivery: a
    row's date has whole seconds). A row is one recall's at most; a customer with an
    unreadable row is left for the next report."""
    by_customer: dict[str, list[Row]] = {}
    for row in sorted(rows, key=lambda r: r.called_at):
        by_customer.setdefault(row.customer_id, []).append(row)
    results = []
    for recall in sorted(waiting, key=lambda a: a.since):
        if recall.customer_id in unsure:
            continue
        candidates = by_customer.get(recall.customer_id, [])
        found = next((r for r in candidates if r.called_at >= math.floor(recall.since)), None)
        if found is None:
            continue
        candidates.remove(found)
        results.append(_result(recall, found, timezone))
    return results


def _result(recall: Awaiting, row: Row, timezone: str) -> Result:
    at = timerules.local(row.called_at, timezone)
    words = reasons.result_word(row.result)
    if same_phone(recall.phone, row.telephone):
        return Result(recall.id, row.result, row.called_at, reasons.CALL_REPORTED(
            at=at, zone=timezone, words=words, result=row.result))
    phone = "".join(ch for ch in row.telephone if ch.isdigit())[:32] or None
    return Result(recall.id, row.result, row.called_at, reasons.CALL_REPORTED_OTHER_PHONE(
        at=at, zone=timezone, phone=mask_phone(row.telephone), words=words,
        result=row.result), phone)


def same_phone(recall_phone: str | None, row_phone: str) -> bool:
    """Is the row's telephone the recall's? Dial prefixes differ (a route digit, the country
    code): the same when their last 10 digits are (all of the shorter's, when it has fewer,
    7 at least). A row with no telephone is taken as the recall's."""
    a = "".join(ch for ch in recall_phone or "" if ch.isdigit())
    b = "".join(ch for ch in row_phone if ch.isdigit())
    if not b or not a:
        return True
    n = min(len(a), len(b), 10)
    return n >= 7 and a[-n:] == b[-n:]
