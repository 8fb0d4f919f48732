"""What a contact center must be able to trust: limits that hold against any wolkvox, nothing
lost while the store is down, operator actions that do what they say, honest health."""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from tests.conftest import SANDBOX_TOKEN, bridge_of, drain
from tests.test_crms import (  # noqa: F401 - fixtures used by name
    HUBSPOT_API,
    hubspot_api,
    hubspot_event,
    post_hubspot,
)
from tests.test_delivery import event, receive
from tests.test_receiver import ZAP_HEADERS, hubspot_v3, zap
from webhooks.delivery.worker import Worker
from webhooks.outbound.wolkvox import seconds_after
from webhooks.settings import utcnow
from webhooks.store import StoreUnavailable


# --- 4. the concurrency limit holds against a wolkvox that answers byte by byte ---------------
@pytest.mark.slow
def test_a_trickling_wolkvox_never_gets_more_calls_in_flight_than_the_limit(make_app, sandbox,
                                                                           monkeypatch):
    # Real time: leases run out while a call trickles, which is what let a third call start.
    # A cut call's slot rests until its start + wolkvox's limit for a call: 60 s scaled to 3.
    monkeypatch.setattr("webhooks.outbound.wolkvox.CALL_LIMIT", 3.0)
    app = make_app(clock=utcnow, wolkvox_timeout=1.5, wolkvox_connect_timeout=0.5,
                   lookup_timeout=0.5, lease=1.5)
    ids = receive(app, *[zap(lead=n) for n in range(12)])
    sandbox.configure(script=["trickle"] * 200)
    bridge = bridge_of(app)
    workers = [Worker(bridge.store, bridge.sources, bridge.settings, name=f"w{n}")
               for n in range(2)]
    for worker in workers:
        worker.start(2)
    try:
        time.sleep(9)  # several leases (3.5 s each) and sweeps (5 s) long
    finally:
        for worker in workers:
            worker.stop(5)
    stats = sandbox.stats()
    print("calls in flight at most:", stats["max_asked"], "requests:", stats["requests"])
    assert stats["requests"] >= 4  # calls were made, and cut short, again and again
    # max_asked counts a call arriving while others are in flight, refused or not
    assert stats["max_asked"][SANDBOX_TOKEN] <= 2
    assert stats["refused_for_concurrency"] == 0
    store = bridge.store
    said = [a["reason"] for i in ids for a in store.attempts_of(i)]
    assert any("cut short: no complete answer within the call's deadline of 1.5 s" in r
               for r in said), said


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_from_wolkvox_is_honoured(make_app, sandbox, clock, status):
    app = make_app()
    sandbox.configure(script=[{"status": status, "retry_after": "600"}])
    [event_id] = receive(app, zap())
    drain(app)
    row = event(app, event_id)
    assert row["status"] == "queued" and "Retry-After 600 s" in row["reason"]
    assert row["next_attempt_at"] - clock().timestamp() >= 600
    clock.advance(seconds=599)
    drain(app)
    assert event(app, event_id)["status"] == "queued"
    clock.advance(seconds=2)
    drain(app)
    assert event(app, event_id)["status"] == "delivered"


def test_retry_after_reads_seconds_and_http_dates():
    assert seconds_after("120") == 120
    assert seconds_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412420.0) == 60
    assert seconds_after("soon") == 0 and seconds_after(None) == 0
    assert seconds_after("99999999") == 6 * 3600  # capped


# --- 6. a store outage loses nothing ------------------------------------------------------------
def _break_store(monkeypatch, app):
    """The store answers every write with StoreUnavailable, as a database that is down does
    (a real outage of PostgreSQL is in the read-only test below)."""
    def broken(*_args, **_kwargs):
        raise StoreUnavailable("could not connect to server")

    monkeypatch.setattr(bridge_of(app).store, "add_events", broken)


def test_requests_during_a_store_outage_are_spooled_acknowledged_and_replayed_in_order(
        make_app, monkeypatch, sandbox, clock):
    app = make_app()
    client = app.test_client()
    with monkeypatch.context() as patch:
        _break_store(patch, app)
        for lead in (1, 2, 3):
            answer = client.post("/hooks/zapier", json=zap(lead=lead), headers=ZAP_HEADERS)
            assert answer.status_code == 202
            assert answer.get_json()["spooled"] is True
            clock.advance(seconds=1)
        salesforce = client.post("/hooks/salesforce", data=b"<not-even-read/>",
                                 query_string={"token": "sf-url-token"},
                                 headers={"Content-Type": "text/xml"})
        assert salesforce.status_code == 400  # a bad body is still refused, spool or not
    bridge = bridge_of(app)
    depth = bridge.spool.depth()
    assert depth.requests == 3
    ready = client.get("/readyz").get_json()
    assert ready["spool"]["requests"] == 3 and ready["spool"]["oldest_age_seconds"] >= 0
    assert bridge.store.counts() == {}
    assert bridge.spool.replay(bridge.store) == 3
    assert bridge.spool.depth().requests == 0
    rows = bridge.store.list_events(limit=10)
    assert [r["customer_id"] for r in sorted(rows, key=lambda r: r["id"])] == ["1", "2", "3"]
    drain(app)
    assert [r["customer_id"] for r in sandbox.recalls()] == ["1", "2", "3"]


def test_replaying_a_request_already_stored_makes_duplicates_not_new_events(make_app,
                                                                             monkeypatch):
    app = make_app()
    with monkeypatch.context() as patch:
        _break_store(patch, app)
        app.test_client().post("/hooks/zapier", json=zap(lead=7), headers=ZAP_HEADERS)
    bridge = bridge_of(app)
    [spooled] = bridge.spool.files()
    kept = spooled.read_bytes()
    assert bridge.spool.replay(bridge.store) == 1
    spooled.write_bytes(kept)  # a crash after storing, before deleting: replayed again
    assert bridge.spool.replay(bridge.store) == 1
    assert bridge.store.counts() == {"queued": 1}


def test_the_web_process_replays_the_spool_by_itself_once_the_store_is_back(make_app,
                                                                             monkeypatch):
    app = make_app()
    with monkeypatch.context() as patch:
        _break_store(patch, app)
        app.test_client().post("/hooks/zapier", json=zap(lead=9), headers=ZAP_HEADERS)
    bridge = bridge_of(app)
    deadline = time.monotonic() + 10
    while bridge.store.counts() != {"queued": 1} and time.monotonic() < deadline:
        time.sleep(0.1)
    assert bridge.store.counts() == {"queued": 1}
    assert bridge.spool.depth().requests == 0


@pytest.mark.parametrize("database_url", [pytest.param("postgresql", marks=pytest.mark.postgres)],
                         indirect=True)
def test_postgres_that_refuses_writes_is_unready_and_webhooks_are_spooled(make_app, database_url,
                                                                         pg_database):
    app = make_app()
    engine = sa.create_engine(pg_database, isolation_level="AUTOCOMMIT")
    name = pg_database.rsplit("/", 1)[1]
    with engine.connect() as connection:
        connection.execute(sa.text(f'ALTER DATABASE "{name}" SET '
                                   "default_transaction_read_only = on"))
    try:
        bridge = bridge_of(app)
        bridge.store.engine.dispose()  # new connections get the read-only default
        with bridge.store.engine.connect() as connection:  # reads still work...
            connection.execute(sa.text("SELECT count(*) FROM events"))
        ready = app.test_client().get("/readyz")
        assert ready.status_code == 503  # ...but it cannot write, so it is not ready
        assert ready.get_json()["database"].startswith("cannot write:")
        answer = app.test_client().post("/hooks/zapier", json=zap(lead=4), headers=ZAP_HEADERS)
        assert answer.status_code == 202 and answer.get_json()["spooled"] is True
    finally:
        with engine.connect() as connection:
            connection.execute(sa.text(f'ALTER DATABASE "{name}" RESET '
                                       "default_transaction_read_only"))
        engine.dispose()
    bridge.store.engine.dispose()
    assert app.test_client().get("/readyz").status_code == 200
    assert bridge.spool.replay(bridge.store) == 1
    assert bridge.store.counts() == {"queued": 1}


# --- 7. operator actions do what they say -------------------------------------------------------
def test_raising_the_daily_limit_and_restarting_releases_a_quota_hold_the_same_day(
        make_app, sandbox, clock):
    clock.now = datetime(2026, 11, 28, 15, 0, tzinfo=ZoneInfo("America/Bogota"))
    app = make_app(wolkvox_daily_limit=2)
    ids = receive(app, *[zap(lead=n) for n in range(4)])
    drain(app)
    assert len(sandbox.recalls()) == 2
    held = [event(app, i) for i in ids if event(app, i)["status"] == "queued"]
    assert all(row["reason"].startswith("held: daily quota of 2") for row in held)
    restarted = make_app(wolkvox_daily_limit=10)  # same database, the new limit
    drain(restarted)
    assert len(sandbox.recalls()) == 4
    assert bridge_of(restarted).store.holds() == {}


def test_the_same_limit_after_a_restart_keeps_the_quota_hold(make_app, sandbox, clock):
    clock.now = datetime(2026, 11, 28, 15, 0, tzinfo=ZoneInfo("America/Bogota"))
    make = make_app(wolkvox_daily_limit=2)
    receive(make, *[zap(lead=n) for n in range(3)])
    drain(make)
    drain(make_app(wolkvox_daily_limit=2))
    assert len(sandbox.recalls()) == 2


def test_a_held_reason_on_queued_events_is_cleared_when_the_hold_is_lifted(make_app, sandbox,
                                                                           clock):
    sandbox.configure(tokens=["another-token"])
    app = make_app(token_probe_interval=60)
    ids = receive(app, *[zap(lead=n) for n in range(3)])
    drain(app)
    waiting = [event(app, i) for i in ids if event(app, i)["status"] == "queued"]
    assert all("held:" in row["reason"] for row in waiting) and len(waiting) >= 2
    sandbox.configure(tokens=[SANDBOX_TOKEN])
    with sandbox.state.lock:
        sandbox.state.latency = 0
    clock.advance(seconds=61)
    bridge = bridge_of(app)
    [hold] = bridge.store.holds().values()
    assert bridge.store.release_hold(next(iter(bridge.store.holds())), since=hold["since"])
    assert all(event(app, i)["reason"] == "" for i in ids if event(app, i)["status"] == "queued")


# --- 1. a wrong PUBLIC_URL is explained, once ---------------------------------------------------
def test_signatures_failing_only_for_the_url_say_so_in_the_log_and_readyz(make_app, clock,
                                                                          caplog):
    app = make_app()
    body = json.dumps({"vid": 3, "properties": {"callback_requested": {"value": "true"},
                                                "phone": {"value": "3001234567"}}}).encode()
    public = "https://bridge.example.com/hooks/hubspot-workflow"
    headers = {**hubspot_v3("hubspot-secret", body, clock, url=public),
               "X-Forwarded-Proto": "https", "X-Forwarded-Host": "bridge.example.com"}
    client = app.test_client()
    with caplog.at_level(logging.ERROR, logger="webhooks.intake.receiver"):
        for _ in range(3):
            assert client.post("/hooks/hubspot-workflow", data=body,
                               headers=headers).status_code == 401
    explained = [r.getMessage() for r in caplog.records if "PUBLIC_URL" in r.getMessage()]
    assert len(explained) == 1  # once, not on every request
    assert "signed https://bridge.example.com but the bridge sees http://localhost" in (
        explained[0])
    assert "TRUST_FORWARDED=true" in explained[0]
    [problem] = client.get("/readyz").get_json()["problems"]
    assert problem.startswith("hubspot-workflow: signatures fail because")
    fixed = make_app(trust_forwarded=True)
    assert fixed.test_client().post("/hooks/hubspot-workflow", data=body,
                                    headers=headers).status_code == 202


def test_a_plainly_wrong_signature_is_not_blamed_on_the_url(make_app, clock, caplog):
    app = make_app()
    body = b'{"vid": 3}'
    headers = {**hubspot_v3("not-the-secret", body, clock,
                            url="https://bridge.example.com/hooks/hubspot-workflow"),
               "X-Forwarded-Host": "bridge.example.com"}
    with caplog.at_level(logging.ERROR, logger="webhooks.intake.receiver"):
        app.test_client().post("/hooks/hubspot-workflow", data=body, headers=headers)
    assert not [r for r in caplog.records if "PUBLIC_URL" in r.getMessage()]
    assert app.test_client().get("/readyz").get_json()["problems"] == []


# --- 10. lookup URLs cannot be steered ---------------------------------------------------------
@pytest.mark.parametrize("object_id", ["../../v3/owners", "..", "1/../../owners", "1?x=2",
                                       "1#frag", "//evil.example.com/x", "a b"])
def test_an_object_id_that_would_change_the_lookup_url_is_never_fetched(
        make_app, clock, hubspot_api, object_id):  # noqa: F811
    app = make_app()
    response = post_hubspot(app, clock, [hubspot_event(1, object_id=object_id)])
    [result] = response.get_json()["events"]
    assert result["result"] == "invalid" and "is not an id" in result["reason"]
    drain(app)
    assert hubspot_api.calls == []


def test_hubspot_lookup_still_reaches_the_contact_by_its_id(make_app, clock,
                                                            hubspot_api):  # noqa: F811
    assert HUBSPOT_API.startswith("https://")
    app = make_app()
    post_hubspot(app, clock, [hubspot_event(1)])
    drain(app)
    assert [call["id"] for call in hubspot_api.calls] == [str(hubspot_event(1)["objectId"])]

