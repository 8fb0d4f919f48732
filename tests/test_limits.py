"""wolkvox's limits: slots across stores, the daily quota, held tokens, concurrency refusals."""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from tests.conftest import SANDBOX_TOKEN, bridge_of, drain
from tests.test_delivery import event, receive
from tests.test_receiver import zap
from webhooks.store import Store


def test_a_token_never_has_more_slots_than_its_limit_across_stores(database_url):
    one, two = Store(database_url), Store(database_url)
    one.migrate()
    try:
        assert one.take_slot("tok", 2, "a", now=100.0, lease=10) is not None
        assert two.take_slot("tok", 2, "b", now=100.0, lease=10) is not None
        assert two.take_slot("tok", 2, "c", now=100.0, lease=10) is None
        assert one.take_slot("other", 2, "c", now=100.0, lease=10) is not None
    finally:
        one.dispose()
        two.dispose()


def test_a_crashed_holders_slot_is_free_once_its_lease_runs_out(store):
    assert store.take_slot("tok", 1, "dead", now=100.0, lease=10) == 0
    assert store.take_slot("tok", 1, "alive", now=105.0, lease=10) is None
    assert store.take_slot("tok", 1, "alive", now=110.5, lease=10) == 0


def test_quota_of_five_sends_five_today_holds_three_and_sends_them_tomorrow(
        make_app, sandbox, clock):
    zone = ZoneInfo("America/Bogota")
    clock.now = datetime(2026, 11, 28, 15, 0, tzinfo=zone)
    app = make_app(wolkvox_daily_limit=5)
    ids = receive(app, *[zap(lead=n) for n in range(8)])
    drain(app)
    assert len(sandbox.recalls()) == 5
    waiting = [event(app, i) for i in ids if event(app, i)["status"] == "queued"]
    assert len(waiting) == 3
    for row in waiting:
        assert "daily quota of 5 calls used up" in row["reason"]
        assert "2026-11-29 00:00 America/Bogota" in row["reason"]
        assert row["attempts"] == 0
    [held] = bridge_of(app).store.holds().values()
    assert held["kind"] == "quota"
    clock.now = datetime(2026, 11, 28, 23, 59, tzinfo=zone)
    drain(app)
    assert len(sandbox.recalls()) == 5
    clock.now = datetime(2026, 11, 29, 0, 1, tzinfo=zone)
    drain(app)
    assert len(sandbox.recalls()) == 8
    assert all(event(app, i)["status"] == "delivered" for i in ids)
    assert bridge_of(app).store.holds() == {}


def test_wolkvox_token_limit_answer_holds_the_token_without_burning_attempts(
        make_app, sandbox, clock):
    sandbox.configure(daily_limit=2)
    app = make_app()
    ids = receive(app, *[zap(lead=n) for n in range(4)])
    drain(app)
    assert len(sandbox.recalls()) == 2
    queued = [event(app, i) for i in ids if event(app, i)["status"] == "queued"]
    assert len(queued) == 2 and all(row["attempts"] == 0 for row in queued)
    assert all("TOKEN LIMIT EXCEEDED" in row["reason"] for row in queued)
    assert sandbox.stats()["requests"] == 3  # one refusal, then the token is held
    sandbox.configure(daily_limit=0)
    clock.advance(days=1)
    drain(app)
    assert len(sandbox.recalls()) == 4


def test_bad_token_holds_events_shows_in_readyz_and_drains_once_fixed(make_app, sandbox,
                                                                      clock):
    sandbox.configure(tokens=["another-token"])
    app = make_app(token_probe_interval=300)
    ids = receive(app, *[zap(lead=n) for n in range(3)])
    drain(app)
    assert sandbox.stats()["requests"] == 1  # one call, then held: no hammering
    assert all(event(app, i)["status"] == "queued" for i in ids)
    assert all(event(app, i)["attempts"] == 0 for i in ids)
    ready = app.test_client().get("/readyz").get_json()
    [held] = ready["held_tokens"]
    assert held["kind"] == "token" and "PLEASE VALIDATE TOKEN" in held["reason"]
    assert SANDBOX_TOKEN not in str(ready)
    clock.advance(seconds=100)
    drain(app)
    assert sandbox.stats()["requests"] == 1  # the next probe is not due yet
    sandbox.configure(tokens=[SANDBOX_TOKEN])
    clock.advance(seconds=201)
    drain(app)
    assert all(event(app, i)["status"] == "delivered" for i in ids)
    assert app.test_client().get("/readyz").get_json()["held_tokens"] == []


def test_concurrency_refusal_is_retried_soon_and_not_counted(make_app, sandbox, clock):
    app = make_app()
    with sandbox.state.lock:
        sandbox.state.max_in_flight = 0  # every call is refused for concurrency
    try:
        [event_id] = receive(app, zap())
        drain(app)
    finally:
        with sandbox.state.lock:
            sandbox.state.max_in_flight = 2
    row = event(app, event_id)
    assert row["status"] == "queued" and row["attempts"] == 0
    assert "SIMULTANEOUS" in row["reason"]
    assert row["next_attempt_at"] - clock().timestamp() < 3
    clock.advance(seconds=2)
    drain(app)
    assert event(app, event_id)["status"] == "delivered"


def test_unknown_403_backs_off_as_a_counted_attempt(make_app, sandbox):
    app = make_app()
    sandbox.configure(script=["maintenance"])
    [event_id] = receive(app, zap())
    drain(app)
    row = event(app, event_id)
    assert row["status"] == "queued" and row["attempts"] == 1
    assert "MAINTENANCE" in row["reason"]


def test_healthz_answers_and_readyz_reports_database_and_sources(make_app):
    client = make_app().test_client()
    assert client.get("/healthz").get_json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    body = ready.get_json()
    assert body["database"] == "ok" and "zapier" in body["sources"]


def test_abandoned_sending_event_is_claimed_again_after_its_lease(make_app, sandbox, clock):
    app = make_app()
    [event_id] = receive(app, zap())
    store = bridge_of(app).store
    now = clock().timestamp()
    [claimed] = store.claim(["zapier"], "dead-worker", now, lease=30)
    assert claimed.id == event_id
    drain(app)
    assert sandbox.recalls() == []  # still leased to the dead worker
    clock.advance(seconds=31)
    drain(app)
    assert event(app, event_id)["status"] == "delivered"
    assert len(sandbox.recalls()) == 1


def test_backoff_follows_the_schedule_with_jitter():
    from webhooks.lifecycle import backoff_delay

    assert [round(backoff_delay(n, 0.5)) for n in range(1, 9)] == [
        10, 30, 120, 600, 1800, 3600, 3600, 3600]
    assert 8 <= backoff_delay(1, 0.0) <= backoff_delay(1, 0.999) <= 12


def test_recall_date_in_the_operation_timezone_moves_forward_not_back(make_app, sandbox, clock):
    app = make_app()
    later = clock() + timedelta(hours=3)
    receive(app, zap(callback_at=later.isoformat()))
    drain(app)
    [recall] = sandbox.recalls()
    assert recall["recall_date"] == later.astimezone(ZoneInfo("America/Bogota")).strftime(
        "%Y%m%d%H%M%S")


def test_store_failing_mid_drain_neither_resends_nor_leaks_quota(make_app, sandbox, clock,
                                                                 monkeypatch):
    from webhooks.delivery.worker import Worker
    from webhooks.store import StoreUnavailable

    app = make_app(wolkvox_daily_limit=10)
    ids = receive(app, *[zap(lead=n) for n in range(5)])
    store = bridge_of(app).store
    real_finish = store.finish
    failures = iter([True])

    def flaky_finish(*args, **kwargs):
        if next(failures, False):
            raise StoreUnavailable("connection reset")
        return real_finish(*args, **kwargs)

    monkeypatch.setattr(store, "finish", flaky_finish)
    worker = Worker(store, bridge_of(app).sources, bridge_of(app).settings, name="flaky")
    with contextlib.suppress(StoreUnavailable):
        worker.run_once()
    assert [event(app, i)["status"] for i in ids].count("sending") == 0  # all settled
    drain(app)
    sent = [r["customer_id"] for r in sandbox.recalls()]
    assert sorted(sent) == [str(n) for n in range(5)]  # each exactly once
    assert all(event(app, i)["status"] == "delivered" for i in ids)
    day = datetime.fromtimestamp(clock().timestamp(), ZoneInfo("America/Bogota"))
    with store.engine.connect() as connection:
        used = connection.execute(sa.text("SELECT used FROM quota WHERE day = :d"),
                                  {"d": day.strftime("%Y-%m-%d")}).scalar()
    assert used == 5


def test_a_held_token_is_released_only_by_an_answer_that_proves_it(make_app, sandbox, clock):
    sandbox.configure(tokens=["another-token"])
    app = make_app(token_probe_interval=60)
    ids = receive(app, zap(lead=1), zap(lead=2))
    drain(app)
    assert bridge_of(app).store.holds()
    sandbox.configure(tokens=[SANDBOX_TOKEN], script=[503, 503])
    clock.advance(seconds=61)
    drain(app)  # both calls meet a 503: they prove nothing about the token
    assert bridge_of(app).store.holds(), "a 503 must not release the hold"
    clock.advance(seconds=61)
    drain(app)
    assert bridge_of(app).store.holds() == {}
    assert all(event(app, i)["status"] == "delivered" for i in ids)


def test_lifting_a_probed_hold_leaves_a_hold_set_meanwhile(store):
    store.hold("tok", "token", "held: token rejected", until=200.0, now=100.0)
    store.hold("tok", "quota", "held: quota used up", until=900.0, now=250.0)
    store.release_hold("tok", since=100.0)  # the probe's view of the hold was from 100
    assert store.holds()["tok"]["kind"] == "quota"
    store.release_hold("tok", since=250.0)
    assert store.holds() == {}


def test_worker_holder_names_fit_the_column_with_a_long_host_name(make_app, monkeypatch):
    import socket

    from webhooks.delivery.worker import Worker

    monkeypatch.setattr(socket, "gethostname", lambda: "recall-bridge-worker-" + "x" * 60)
    app = make_app()
    worker = Worker(bridge_of(app).store, bridge_of(app).sources, bridge_of(app).settings)
    assert len(f"{worker.name}:{2**22}") <= 64
    receive(app, zap())
    while worker.run_once():
        pass
    assert bridge_of(app).store.counts() == {"delivered": 1}
