"""The core's delivery shapes: one plan for the preview and the worker, a decision that
carries its refund (applied once), one gate per token with recalls first, one error family."""

from __future__ import annotations

import json
from datetime import datetime
from zoneinfo import ZoneInfo

from tests.conftest import bridge_of, drain
from tests.test_calling_windows import with_rules
from tests.test_delivery import receive
from tests.test_receiver import zap
from webhooks.delivery.decide import Decider
from webhooks.delivery.gate import Priority, TokenGate, TokenGroup
from webhooks.intake import trial
from webhooks.lifecycle import AttemptOutcome, Status
from webhooks.outbound import errors, lookups, wolkvox
from webhooks.store.events import Claimed, Decision
from webhooks.store.limits import HoldKind, lookup_key

BOGOTA = ZoneInfo("America/Bogota")


def used_quota(store, key: str, day: str) -> int:
    import sqlalchemy as sa

    with store.engine.connect() as connection:
        return connection.execute(sa.text("SELECT used FROM quota WHERE token_key = :k AND "
                                          "day = :d"), {"k": key, "d": day}).scalar() or 0


def test_the_preview_plans_the_date_the_worker_sends_for_a_capped_lead(
        make_app, sandbox, clock, mappings_dir):
    clock.now = datetime(2026, 11, 30, 9, 0, tzinfo=BOGOTA)  # Monday
    with_rules(mappings_dir, "calling_hours: co-ley-2300\nmax_recalls: {per_day: 1}\n")
    app = make_app()
    receive(app, zap(lead=7, request_id="first", callback_at="2026-11-30T10:00:00-05:00"))
    drain(app)
    clock.now = datetime(2026, 11, 30, 11, 0, tzinfo=BOGOTA)  # the 10:00 call is due: dialled
    second = zap(lead=7, request_id="second", callback_at="2026-11-30T16:00:00-05:00")
    bridge = bridge_of(app)
    with app.app_context():
        [tried] = trial.try_body(bridge, bridge.sources["zapier"], json.dumps(second).encode(),
                                 "application/json").events
    assert tried.when.sent == "20261201071000"  # the cap moved it, in the preview too
    assert "max_recalls.per_day: 1" in tried.when.note
    receive(app, second)
    drain(app)
    assert sandbox.recalls()[-1]["recall_date"] == tried.when.sent


def test_a_decision_refunds_its_quota_unit_when_written_and_only_once(make_app, clock):
    app = make_app(wolkvox_daily_limit=10)
    bridge = bridge_of(app)
    store, source = bridge.store, bridge.sources["zapier"]
    key, day = source.target.key, f"{clock().astimezone(BOGOTA):%Y-%m-%d}"
    receive(app, zap(callback_at="2020-01-01T10:00:00-05:00"))  # long past: expires
    now = clock().timestamp()
    [claimed] = store.claim(["zapier"], "h", now, 5.0, 1, (key, day, 10))
    assert used_quota(store, key, day) == 1
    decision = Decider(store, bridge.sources, bridge.settings).decide(key, claimed)
    assert decision.status == Status.EXPIRED and decision.refund == 1
    assert used_quota(store, key, day) == 1  # deciding writes nothing
    assert store.finish(claimed.id, "h", decision, now, (key, day))
    assert used_quota(store, key, day) == 0
    # written again (a drain's salvage after a store error): not ours any more, no refund
    assert not store.finish(claimed.id, "h", decision, now, (key, day))
    receive(app, zap(lead=2))
    [other] = store.claim(["zapier"], "h", now, 5.0, 1, (key, day, 10))
    assert used_quota(store, key, day) == 1
    store.finish(other.id, "h", Decision(Status.EXPIRED, "x", refund=1), now, (key, day))
    assert used_quota(store, key, day) == 0


def test_a_lower_priority_caller_of_the_gate_waits_while_recalls_are_due(make_app):
    app = make_app(wolkvox_max_concurrency=2)
    bridge = bridge_of(app)
    source = bridge.sources["zapier"]
    group = TokenGroup(source.target, ["zapier"])
    gate = TokenGate(bridge.store, bridge.settings, "gate-test")
    receive(app, zap())
    with gate.slot(group, Priority.REPORT) as report:
        assert report is None  # a recall is due: it goes first
    with gate.slot(group) as recall:
        assert recall is not None
        with gate.slot(group, Priority.RECALL) as another:
            assert another is not None and another.slot != recall.slot
            with gate.slot(group) as third:
                assert third is None  # two slots: both taken
    drain(app)
    with gate.slot(group, Priority.REPORT) as report:
        assert report is not None  # nothing due: a report may call now
        with gate.slot(group) as recall:
            assert recall is not None and recall.slot != report.slot


def test_a_caller_outside_a_claim_reserves_and_refunds_through_the_gate(make_app, clock):
    app = make_app(wolkvox_daily_limit=2)
    bridge = bridge_of(app)
    group = TokenGroup(bridge.sources["zapier"].target, ["zapier"])
    gate = TokenGate(bridge.store, bridge.settings, "gate-test")
    now = clock().timestamp()
    day, granted = gate.reserve(group, now, 3)
    assert granted == 2 and gate.reserve(group, now)[1] == 0
    gate.refund(group.key, day, 1)
    assert gate.reserve(group, now)[1] == 1


def test_wolkvox_and_lookup_errors_meet_one_ladder(make_app, clock):
    app = make_app()
    bridge = bridge_of(app)
    source = bridge.sources["zapier"]
    decider = Decider(bridge.store, bridge.sources, bridge.settings)
    event = Claimed(1, "zapier", {}, None, 0, clock().timestamp())
    now = clock().timestamp()
    answer = errors.Answer(401, None, "VALIDATE TOKEN", 3.0)
    assert issubclass(wolkvox.TokenRejected, errors.HoldCredentials)
    assert issubclass(lookups.LookupRefused, errors.HoldCredentials)
    token = decider.on_error(wolkvox.TokenRejected("token rejected", answer), event, source,
                             now, spent=True)
    crm = decider.on_error(lookups.LookupRefused("lookup: refused"), event, source, now,
                           credentials=(HoldKind.LOOKUP, lookup_key("zapier")))
    for decision in (token, crm):
        assert decision.status == Status.QUEUED and not decision.count
        assert decision.attempt.outcome == AttemptOutcome.HELD and decision.refund == 1
    assert (token.hold.kind, token.hold.key) == ("token", None)
    assert (crm.hold.kind, crm.hold.key) == ("lookup", "lookup:zapier")
    # a wolkvox call that was made keeps its unit; a lookup (no wolkvox call) gives it back
    later = decider.on_error(wolkvox.RetryLater("HTTP 503", answer, 30.0), event, source, now,
                             spent=True)
    crm_later = decider.on_error(lookups.LookupRetry("lookup: HTTP 503", 30.0), event, source,
                                 now)
    assert later.refund == 0 and crm_later.refund == 1
    assert later.next_attempt_at >= now + 30 and crm_later.next_attempt_at >= now + 30
    assert json.dumps([AttemptOutcome.HELD, HoldKind.QUOTA]) == '["held", "quota"]'
