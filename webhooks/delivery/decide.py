"""The decision for one claimed event: look the lead up, plan the recall, send it, and say
what becomes of the event.

Only wolkvox (and the CRM, for lookups) is called here, and the store is only read: the
decision carries its quota refund, its hold and the hold it lifts, and the drain applies them
with the outcome. Every outbound error meets one ladder (`on_error`), over the family of
outbound/errors.py, whichever call raised it.
"""

from __future__ import annotations

import logging
import random
import re
import threading
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import requests

from .. import reasons
from ..lifecycle import RETRY_SOON, AttemptOutcome, Status, backoff_delay
from ..mapping.source import Source
from ..observability import metrics
from ..outbound import errors, wolkvox
from ..outbound.deadline import Call, new_session
from ..outbound.errors import Answer, OutboundError
from ..outbound.lookups import enrich
from ..outbound.rate_gate import RateGate
from ..recall import RecallInvalid, mask_phones_in
from ..settings import Settings
from ..store import Store, StoreUnavailable
from ..store.events import MOMENTS, Attempt, Claimed, Decision
from ..store.limits import Hold, HoldKind, lookup_key
from ..timing import rules as timerules
from ..timing.rules import Action
from .plan import plan_for

log = logging.getLogger(__name__)
TOKEN = (HoldKind.TOKEN, None)  # the credentials a wolkvox call holds: the event's token


class Decider:
    """Decides one claimed event at a time; one instance serves every delivery thread (its
    HTTP sessions are per thread)."""

    def __init__(self, store: Store, sources: Mapping[str, Source], settings: Settings):
        self.store, self.sources, self.settings = store, sources, settings
        self.gate = RateGate(store)  # each source's CRM calls, at its mapping's rate:
        self._not_in_campaign = re.compile(settings.wolkvox_not_in_campaign)
        self._local = threading.local()

    def now(self) -> float:
        return self.settings.clock().timestamp()

    def decide(self, key: str, event: Claimed, call: Call | None = None,
               lookup_hold: Mapping[str, Any] | None = None) -> Decision:
        """What becomes of `event`, sent with the token `key`; `lookup_hold` is the hold on
        its source's lookup credentials being probed, if any. Never raises but for the store:
        a bug with one event fails that event, not the token's queue."""
        try:
            return self._with_notices(event, self._decide(key, event, call, lookup_hold))
        except StoreUnavailable:
            raise  # not this event's fault: the drain gives it back
        except Exception as err:
            log.exception("event %s: unexpected error", event.id)
            reason = reasons.FAILED_UNEXPECTED(error=type(err).__name__)
            return Decision(Status.FAILED, reason, Attempt(AttemptOutcome.FAILED, reason),
                            refund=1)

    def _with_notices(self, event: Claimed, decision: Decision) -> Decision:
        """The decision with the write-backs its outcome queues (its source's `writeback:`)."""
        moment = MOMENTS.get(decision.status)
        source = self.sources.get(event.source)
        if moment is None or source is None or not source.writebacks:
            return decision
        return replace(decision, notices=source.notices(moment))

    def _decide(self, key: str, event: Claimed, call: Call | None,
                lookup_hold: Mapping[str, Any] | None) -> Decision:
        now = self.now()
        source = self.sources[event.source]
        if event.recall is not None:
            return self._send(key, source, event, event.recall, call, now)
        # a lookup source: the CRM object is fetched here, not on receipt
        if source.lookup is None:  # stored unmapped by a mapping that has lost its lookup
            raise RuntimeError(f"source {source.name} has no lookup to map event {event.id}")
        try:
            enriched = enrich(source, event.raw, self._session(source.lookup.steps[0].url),
                              self.settings.lookup_timeouts, call, self.gate.pace(source))
            recall = source.map(enriched, self.settings.clock())
        except OutboundError as err:
            return self.on_error(err, event, source, now,
                                 credentials=(HoldKind.LOOKUP, lookup_key(source.name)))
        except RecallInvalid as err:
            why = reasons.of_error(err)
            return Decision(Status.INVALID, why, Attempt(AttemptOutcome.FAILED, why), refund=1)
        decision = self._send(key, source, event, recall, call, now, enriched)
        if lookup_hold is None:
            return decision
        return replace(decision, lifts=(lookup_key(source.name), lookup_hold["since"]))

    def _send(self, key: str, source: Source, event: Claimed, recall: dict[str, str],
              call: Call | None, now: float, mapped_from: Any = None) -> Decision:
        """The mapped recall: kept back (a later change, a repeat, the time rules), or sent,
        its lead added to the campaign first when the mapping says so (`campaign_record:`,
        mapped from `mapped_from`, the event as the recall was: after its lookup)."""
        kept = self._kept_back(key, source, event, recall, now)
        if kept is not None:
            return kept
        plan = plan_for(source, self.store, self.settings, recall, now)
        if plan.recall is None:
            status = Status.EXPIRED if plan.action == Action.EXPIRED else Status.FAILED
            return Decision(status, plan.note, Attempt(AttemptOutcome(plan.action), plan.note),
                            refund=1)
        steps = _Steps()
        try:
            result = self._record_and_recall(key, source, event, plan.recall, call, steps,
                                             event.raw if mapped_from is None else mapped_from)
        except RecallInvalid as err:
            why = reasons.of_error(err)
            return Decision(Status.INVALID, why, Attempt(AttemptOutcome.FAILED, why), refund=1)
        except OutboundError as err:
            return steps.applied(self.on_error(err, event, source, now, recall=plan.recall,
                                               spent=True))
        said = mask_phones_in(result.answer.msg)
        note = plan.note
        reason = (reasons.DELIVERED_MOVED(note=note, said=said) if note
                  else reasons.DELIVERED(said=said))
        return steps.applied(Decision(
            Status.DELIVERED, reason, _attempt(AttemptOutcome.DELIVERED, reason, result.answer),
            recall=plan.recall, scheduled_for=timerules.epoch(plan.recall, source.target.timezone),
            awaits_result=self.settings.call_results_interval > 0))

    def _record_and_recall(self, key: str, source: Source, event: Claimed,
                           recall: dict[str, str], call: Call | None, steps: _Steps,
                           mapped_from: Any) -> wolkvox.Delivered:
        """The recall, with its lead's record added first (`always`) or when wolkvox says it
        does not have the customer (`missing`). Every call is counted in `steps`; an add that
        fails raises, so a recall never goes out after a refused add."""
        target = source.target
        session = self._session(target.base_url)
        timeouts = self.settings.wolkvox_timeouts
        rule = source.record
        record = known = None
        if rule is not None:
            record = source.record_of(mapped_from, self.settings.clock(), recall["customer_id"])
            known = self.store.has_record(key, recall["campaign_id"], recall["customer_id"])
        if rule is not None and record is not None and rule.add == "always" and not known:
            self._add(session, target, rule.status, recall, record, call, steps)
        try:
            return steps.call(lambda: wolkvox.send_recall(session, target, recall, timeouts, call))
        except wolkvox.Rejected as err:
            if rule is None or record is None or rule.add != "missing" or known or \
                    not self._not_in_campaign.search(err.answer.msg or ""):
                raise
            why = reasons.RECORD_MISSING(customer=recall["customer_id"],
                                         campaign=recall["campaign_id"], said=err.answer.msg)
            steps.before.append(_attempt(AttemptOutcome.RETRY, why, err.answer))
        self._add(session, target, rule.status, recall, record, call, steps)
        return steps.call(lambda: wolkvox.send_recall(session, target, recall, timeouts, call))

    def _add(self, session: requests.Session, target: Any, status: str, recall: dict[str, str],
             record: dict[str, str], call: Call | None, steps: _Steps) -> None:
        """add_record, its attempt kept for the timeline; its error raised, named as an add."""
        campaign = recall["campaign_id"]
        try:
            added = steps.call(lambda: wolkvox.add_record(
                session, target, campaign, status, record, self.settings.wolkvox_timeouts, call))
        except OutboundError as err:
            metrics.record_add("refused" if isinstance(err, errors.GiveUp) else "retry")
            err.reason = reasons.RECORD_REFUSED(campaign=campaign, reason=err.reason)
            raise
        metrics.record_add("added")
        why = reasons.RECORD_ADDED(campaign=campaign, said=mask_phones_in(added.answer.msg))
        steps.before.append(_attempt(AttemptOutcome.ADDED, why, added.answer))
        steps.added = True

    def _kept_back(self, key: str, source: Source, event: Claimed, recall: dict[str, str],
                   now: float) -> Decision | None:
        """Superseded before any call: a later change of the lead known only after its lookup,
        or a repeat of the recall still ahead in wolkvox. None: it is to be planned."""
        reason: str | None = None
        if event.occurred_at is not None and source.lookup is not None:
            later = self.store.later_change(key, recall["campaign_id"], recall["customer_id"],
                                            event.occurred_at, event.id)
            if later is not None:  # known as the lead only now, after the lookup
                reason = reasons.SUPERSEDED_LATER_CHANGE(
                    event=later[0], later=timerules.local(later[1], "UTC"),
                    this=timerules.local(event.occurred_at, "UTC"))
        reason = reason or self._repeat_of(key, source, event, recall, now)
        if reason is None:
            return None
        return Decision(Status.SUPERSEDED, reason, Attempt(AttemptOutcome.SUPERSEDED, reason),
                        recall=recall, refund=1)

    def _repeat_of(self, key: str, source: Source, event: Claimed, recall: dict[str, str],
                   now: float) -> str | None:
        """The reason to keep `event` as a duplicate when it asks what the lead's last recall,
        still ahead in wolkvox, asked: same customer, phone and asked date ("no date" being a
        value of its own). None when it is a new request, or the mapping cannot tell."""
        asked = source.asked_date(event.raw)
        if asked is None:
            return None
        lead = (key, recall["campaign_id"], recall["customer_id"])
        known = event.last_delivered
        if known is not None and known.lead == lead:  # read with the claim, off the call's path
            last = known.ahead(now)
        else:
            last = self.store.ahead_in_wolkvox(*lead, now, event.id)
        if last is None or last["phone"] != recall["recall_telephone"] \
                or source.asked_date(last["raw"]) != asked:
            return None
        return reasons.SUPERSEDED_REPEAT(
            event=last["id"],
            scheduled=timerules.local(last["scheduled_for"], source.target.timezone))

    def on_error(self, err: OutboundError, event: Claimed, source: Source, now: float, *,
                 recall: dict[str, str] | None = None, spent: bool = False,
                 credentials: tuple[HoldKind, str | None] = TOKEN) -> Decision:
        """The one ladder: what an outbound error makes of the event. `spent`: the call took
        its quota unit (a wolkvox call was made; a credentials refusal is taken to spend
        none); `credentials`: what a credentials refusal holds (the token, or a lookup's)."""
        refund = 0 if spent and not isinstance(err, errors.HoldCredentials) else 1
        return replace(self._ladder(err, event, source, now, recall, credentials),
                       refund=refund)

    def _ladder(self, err: OutboundError, event: Claimed, source: Source, now: float,
                recall: dict[str, str] | None,
                credentials: tuple[HoldKind, str | None]) -> Decision:
        answer = err.answer
        if isinstance(err, errors.GiveUp):
            return Decision(Status.FAILED, err.reason,
                            _attempt(AttemptOutcome.FAILED, err.reason, answer), recall=recall)
        if isinstance(err, errors.RetrySoon):
            return Decision(Status.QUEUED, reasons.RETRY_SOON(reason=err.reason),
                            _attempt(AttemptOutcome.RETRY, err.reason, answer),
                            count=err.counted, next_attempt_at=now + RETRY_SOON)
        if isinstance(err, errors.HoldQuota):
            reason = reasons.HELD(reason=err.reason)
            until = timerules.next_day(source.target.timezone, now)
            return Decision(Status.QUEUED, reason, _attempt(AttemptOutcome.HELD, reason, answer),
                            count=err.counted, next_attempt_at=now,
                            hold=Hold(HoldKind.QUOTA, reason, until))
        if isinstance(err, errors.HoldCredentials):
            interval = self.settings.token_probe_interval
            reason = reasons.HELD_PROBING(reason=err.reason, interval=f"{interval:g}")
            kind, key = credentials
            return Decision(Status.QUEUED, reason, _attempt(AttemptOutcome.HELD, reason, answer),
                            count=err.counted, next_attempt_at=now,
                            hold=Hold(kind, reason, now + interval, key))
        if isinstance(err, errors.RetryLater) and not err.counted:  # our own pace: at `after`
            return Decision(Status.QUEUED, err.reason,
                            _attempt(AttemptOutcome.RETRY, err.reason, answer),
                            count=False, next_attempt_at=now + err.after)
        after = err.after if isinstance(err, errors.RetryLater) else 0.0
        return self._retry(event, err.reason, _attempt(AttemptOutcome.RETRY, err.reason, answer),
                           now, after)

    def _retry(self, event: Claimed, reason: str, attempt: Attempt, now: float,
               after: float = 0.0) -> Decision:
        """Counted: back off (not before `after`), or fail past MAX_EVENT_AGE."""
        attempts = event.attempts + 1
        if now - event.age_from >= self.settings.max_event_age:
            final = reasons.FAILED_MAX_AGE(attempts=attempts, reason=reason)
            return Decision(Status.FAILED, final, attempt, count=True)
        delay = max(backoff_delay(attempts, random.random()), after)
        return Decision(Status.QUEUED, reasons.RETRY_IN(delay=f"{delay:.0f}", reason=reason),
                        attempt, count=True, next_attempt_at=now + delay)

    def _session(self, base_url: str) -> requests.Session:
        """One session per thread and per host (its proxy settings are the host's)."""
        sessions = self._local.__dict__.setdefault("sessions", {})
        if base_url not in sessions:
            sessions[base_url] = new_session(base_url)
        return sessions[base_url]


class _Steps:
    """What a decision's calls before its last did: their attempts, how many quota units all
    its calls spent (a credentials refusal is taken to spend none), whether a record was
    added."""

    def __init__(self) -> None:
        self.before: list[Attempt] = []
        self.spent = 0
        self.added = False

    def call(self, make: Any) -> Any:
        self.spent += 1
        try:
            return make()
        except errors.HoldCredentials:
            self.spent -= 1
            raise

    def applied(self, decision: Decision) -> Decision:
        """`decision` with these steps: the attempts before its own, the units beyond the
        claim's one (or that one refunded when no call spent it), the record remembered."""
        if not self.before and not self.added and self.spent <= 1:
            return decision
        return replace(decision, before=tuple(self.before), added=self.added,
                       extra_units=max(self.spent - 1, 0),
                       refund=1 if self.spent == 0 else 0)


def _attempt(outcome: AttemptOutcome, reason: str, answer: Answer | None) -> Attempt:
    """An attempt as recorded; wolkvox's msg repeats the phone number, which is masked."""
    if answer is None:
        return Attempt(outcome, reason)
    return Attempt(outcome, reason, answer.latency_ms, answer.http_status, answer.code,
                   mask_phones_in(answer.msg))
