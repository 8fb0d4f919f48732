"""What the console and the admin API stand on: searches that page by id, cancel, reveal,
bulk retry, the capture URL, the audit log, and the overview's figures."""

from __future__ import annotations

import pytest

from tests.conftest import bridge_of, drain
from tests.test_delivery import event, receive
from tests.test_receiver import ZAP_HEADERS, zap
from webhooks.operators.operations import (
    RetryRefused,
    bulk_retry,
    cancel_event,
    phone_candidates,
    reveal_phone,
)
from webhooks.store import EventFilter


def test_events_page_by_page_newest_first_with_each_filter(make_app, sandbox):
    app = make_app()
    ids = receive(app, *[zap(lead=n) for n in range(7)], zap(lead=99, phone="12"))
    store = bridge_of(app).store
    first = store.search(EventFilter(), limit=3)
    assert [r["id"] for r in first] == sorted(ids, reverse=True)[:3]
    second = store.search(EventFilter(), before=first[-1]["id"], limit=3)
    assert [r["id"] for r in second] == sorted(ids, reverse=True)[3:6]
    assert [r["id"] for r in store.search(EventFilter(status="invalid"))] == [ids[-1]]
    assert [r["customer_id"] for r in store.search(EventFilter(customer_id="4"))] == ["4"]
    assert store.count(EventFilter(source="zapier")) == 8
    assert store.count(EventFilter(source="zapier", status="queued")) == 7


def test_a_phone_typed_as_a_person_would_finds_the_event(make_app):
    app = make_app()
    [wanted] = receive(app, zap(lead=1, phone="+57 301 555 1234"))
    receive(app, zap(lead=2, phone="300 123 4567"))
    bridge = bridge_of(app)
    for typed in ("301 555 1234", "(301) 555-1234", "+57 3015551234", "93015551234"):
        found = bridge.store.search(EventFilter(phones=phone_candidates(bridge, typed)))
        assert [r["id"] for r in found] == [wanted], typed
        assert found[0]["phone"] == "93015551234"


def test_cancelling_a_queued_event_keeps_it_from_wolkvox_and_is_audited(make_app, sandbox):
    app = make_app()
    [event_id] = receive(app, zap())
    bridge = bridge_of(app)
    with pytest.raises(RetryRefused, match="say why"):
        cancel_event(bridge, event_id, "  ", "admin")
    assert cancel_event(bridge, event_id, "lead asked not to be called", "admin") == (
        f"event {event_id} cancelled")
    drain(app)
    assert sandbox.recalls() == []
    row = event(app, event_id)
    assert row["status"] == "cancelled"
    assert row["reason"] == "cancelled by an operator: lead asked not to be called"
    [entry] = bridge.store.audit_log(event_id=event_id)
    assert (entry["actor"], entry["action"]) == ("admin", "cancel")
    with pytest.raises(RetryRefused, match="only queued events can be cancelled"):
        cancel_event(bridge, event_id, "again", "admin")


def test_revealing_a_phone_is_an_audited_action(make_app):
    app = make_app()
    [event_id] = receive(app, zap())
    bridge = bridge_of(app)
    assert reveal_phone(bridge, event_id, "admin") == "93001234567"
    assert [e["action"] for e in bridge.store.audit_log(event_id=event_id)] == ["reveal"]


def test_bulk_retry_judges_each_invalid_event_again_and_says_what_happened(make_app,
                                                                          mappings_dir):
    app = make_app()
    receive(app, *[zap(lead=n, phone="12") for n in range(3)])
    bridge = bridge_of(app)
    with pytest.raises(RetryRefused, match="choose one"):
        bulk_retry(bridge, EventFilter(source="zapier"), "admin")
    done = bulk_retry(bridge, EventFilter(status="invalid", source="zapier"), "admin")
    assert done["queued"] == 0 and done["refused"] == 3  # still invalid with today's mapping
    assert "still invalid" in done["reasons"][0]
    assert bridge.store.audit_log(limit=1)[0]["action"] == "bulk-retry"


def test_the_capture_url_judges_like_the_real_one_and_stores_a_test_event(make_app, sandbox):
    app = make_app()
    client = app.test_client()
    refused = client.post("/hooks/zapier/test", json=zap(), headers={"X-Bridge-Token": "x"})
    assert refused.status_code == 401
    answer = client.post("/hooks/zapier/test", json=zap(), headers=ZAP_HEADERS)
    assert answer.status_code == 202 and answer.get_json()["test"] is True
    [captured] = answer.get_json()["events"]
    assert captured["result"] == "test" and captured["reason"] == "test: would be queued"
    bad = client.post("/hooks/zapier/test", json=zap(lead=2, phone="12"), headers=ZAP_HEADERS)
    assert bad.get_json()["events"][0]["reason"].startswith("test: would be invalid: invalid:")
    real = client.post("/hooks/zapier", json=zap(), headers=ZAP_HEADERS).get_json()
    assert real["events"][0]["result"] == "accepted"  # the same body, not a duplicate
    drain(app)
    assert len(sandbox.recalls()) == 1  # only the real one
    latest = bridge_of(app).store.latest("test", "zapier")
    assert [r["status"] for r in latest] == ["test", "test"]


def test_captures_of_two_long_event_ids_alike_in_their_first_250_characters_are_two(make_app):
    client = make_app().test_client()
    stem = "r" * 250
    keys = set()
    for tail in ("a", "b"):
        answer = client.post("/hooks/zapier/test", json=zap(request_id=stem + tail),
                             headers=ZAP_HEADERS).get_json()
        [captured] = answer["events"]
        assert captured["result"] == "test"
        keys.add(captured["id"])
    assert len(keys) == 2


def test_overview_counts_hours_and_tokens(make_app, sandbox, clock):
    app = make_app()
    receive(app, zap(lead=1), zap(lead=2), zap(lead=3, phone="12"))
    drain(app)
    store = bridge_of(app).store
    now = clock().timestamp()
    assert store.counts_by_source(now - 3600) == {"zapier": {"delivered": 2, "invalid": 1}}
    hours = store.hourly(now - 48 * 3600)
    assert sum(hours["received"].values()) == 3 and sum(hours["delivered"].values()) == 2
    key = bridge_of(app).sources["zapier"].target.key
    receive(app, zap(lead=4))
    token = store.tokens(now, {key: "2000-01-01"})[key]
    assert token["queued"] == 1 and token["in_flight"] == 0 and token["hold"] is None
    assert token["oldest_due"] == pytest.approx(now)
