"""The worker against the sandbox over loopback: what wolkvox gets, and what each answer does."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import requests

from tests.conftest import SANDBOX_TOKEN, bridge_of, drain
from tests.test_receiver import ZAP_HEADERS, zap
from webhooks.delivery.worker import Worker
from webhooks.store.holders import process_name


def receive(app, *bodies: dict) -> list[int]:
    client = app.test_client()
    ids = []
    for body in bodies:
        answer = client.post("/hooks/zapier", json=body, headers=ZAP_HEADERS).get_json()
        ids += [e["id"] for e in answer["events"]]
    return ids


def event(app, event_id: int) -> dict:
    return bridge_of(app).store.get(event_id)


def test_recall_reaches_wolkvox_with_the_documented_url_header_and_body(make_app, sandbox):
    app = make_app()
    seen = []
    sandbox.app.before_request_funcs.setdefault(None, []).append(
        lambda: seen.append((requests.utils.unquote(__import__("flask").request.full_path),
                             __import__("flask").request.headers.get("wolkvox-token"),
                             __import__("flask").request.get_json(silent=True))))
    try:
        [event_id] = receive(app, zap())
        drain(app)
    finally:
        sandbox.app.before_request_funcs[None].pop()
    path, token, body = seen[0]
    assert path == "/api/v2/campaign.php?api=recall&type_campaign=predictive&campaign_id=4638"
    assert token == SANDBOX_TOKEN
    assert body == {"recall_date": "20301201103000", "recall_telephone": "93001234567",
                    "customer_id": "1"}
    row = event(app, event_id)
    assert row["status"] == "delivered"
    assert "has been updated" in row["reason"] and "93001234567" not in row["reason"]


def test_wolkvox_500_then_202_is_delivered_after_a_retry(make_app, sandbox, clock):
    app = make_app()
    sandbox.configure(script=[500])
    [event_id] = receive(app, zap())
    drain(app)
    row = event(app, event_id)
    assert row["status"] == "queued" and row["attempts"] == 1
    assert "HTTP 500" in row["reason"]
    assert row["next_attempt_at"] - clock().timestamp() >= 7.9  # 10 s minus jitter
    clock.advance(seconds=15)
    drain(app)
    assert event(app, event_id)["status"] == "delivered"
    assert [a["outcome"] for a in bridge_of(app).store.attempts_of(event_id)] == [
        "retry", "delivered"]


def test_wolkvox_400_fails_the_event_with_its_message(make_app, sandbox):
    app = make_app()
    sandbox.configure(script=[400])
    [event_id] = receive(app, zap())
    drain(app)
    row = event(app, event_id)
    assert row["status"] == "failed"
    assert "SCRIPTED 400" in row["reason"]


def test_callback_time_too_soon_is_moved_forward_to_the_minimum_lead(make_app, sandbox, clock):
    app = make_app()
    soon = (clock() + timedelta(minutes=5)).astimezone(UTC).isoformat()
    [event_id] = receive(app, zap(callback_at=soon))
    drain(app)
    [recall] = sandbox.recalls()
    # the lead is never a fraction short: a fractional now rounds up to the next whole second
    least = clock() + timedelta(minutes=30)
    if least.microsecond:
        least = least.replace(microsecond=0) + timedelta(seconds=1)
    expected = least.astimezone(
        __import__("zoneinfo").ZoneInfo("America/Bogota")).strftime("%Y%m%d%H%M%S")
    assert recall["recall_date"] == expected
    assert "moved from" in event(app, event_id)["reason"]


def test_callback_long_past_is_expired_not_sent(make_app, sandbox, clock):
    app = make_app()
    past = (clock() - timedelta(hours=5)).isoformat()
    [event_id] = receive(app, zap(callback_at=past))
    drain(app)
    assert sandbox.recalls() == []
    assert event(app, event_id)["status"] == "expired"


def test_ten_events_for_one_customer_send_one_recall_and_supersede_nine(make_app, sandbox):
    app = make_app()
    ids = receive(app, *[zap(lead=7, request_id=f"burst-{n}") for n in range(10)])
    drain(app)
    assert len(sandbox.recalls()) == 1
    statuses = [event(app, i)["status"] for i in ids]
    assert statuses == ["superseded"] * 9 + ["delivered"]
    assert f"superseded by event {ids[1]}" in event(app, ids[0])["reason"]


def test_transport_error_is_retried_not_failed(make_app, sandbox):
    app = make_app(wolkvox_base_url="http://127.0.0.1:9")  # nothing listens on port 9
    [event_id] = receive(app, zap())
    drain(app)
    row = event(app, event_id)
    assert row["status"] == "queued" and row["attempts"] == 1
    assert "transport error" in row["reason"]


def test_retries_stop_at_the_maximum_age_with_the_last_reason(make_app, sandbox, clock):
    app = make_app(max_event_age=60)
    sandbox.configure(script=[503, 503])
    [event_id] = receive(app, zap())
    drain(app)
    clock.advance(seconds=61)
    drain(app)
    row = event(app, event_id)
    assert row["status"] == "failed"
    assert "maximum age" in row["reason"] and "HTTP 503" in row["reason"]


def test_non_json_answer_is_retried(make_app, sandbox):
    app = make_app()
    sandbox.configure(script=["html"])
    [event_id] = receive(app, zap())
    drain(app)
    assert "not wolkvox JSON" in event(app, event_id)["reason"]
    assert event(app, event_id)["status"] == "queued"


def test_wait_parameter_answers_200_with_wolkvox_message_once_delivered(make_app, sandbox):
    app = make_app()
    bridge_of(app).start_delivery(1)
    response = app.test_client().post("/hooks/zapier?wait=10", json=zap(),
                                      headers=ZAP_HEADERS)
    assert response.status_code == 200
    assert "has been updated" in response.get_json()["events"][0]["wolkvox"]
    assert "93001234567" not in response.get_data(as_text=True)  # wolkvox's msg, masked


def test_events_of_now_default_are_scheduled_after_the_minimum_lead(make_app, sandbox, clock):
    app = make_app()
    body = zap()
    del body["callback_at"]
    receive(app, body)
    drain(app)
    [recall] = sandbox.recalls()
    sent = datetime.strptime(recall["recall_date"], "%Y%m%d%H%M%S")
    local_now = clock().astimezone(__import__("zoneinfo").ZoneInfo("America/Bogota"))
    assert abs((sent - local_now.replace(tzinfo=None)).total_seconds() - 1800) < 2


def test_idle_threads_do_not_look_for_a_slot_at_every_wake_while_every_slot_is_taken(make_app):
    """Under a burst every stored webhook wakes its process's idle delivery threads; while
    both slots are taken a look finds nothing (the holders drain the queue), and each look is
    a transaction: woken 250 times in half a second, two threads look once or twice each
    (their polls, POLL_INTERVAL 1 s x 0.5-1.5), not at every wake-up."""
    app = make_app(poll_interval=1.0)
    bridge = bridge_of(app)
    store = bridge.store
    worker = Worker(store, bridge.sources, bridge.settings)
    [key] = worker.groups
    for n in range(2):  # live holders: threads of this very process
        assert store.take_slot(key, 2, f"{process_name()}/{n}", time.time(), 3600) is not None
    looks = []
    take_slot = store.take_slot
    store.take_slot = lambda *args: looks.append(1) or take_slot(*args)
    worker.start(2)
    try:
        for _ in range(250):
            worker.wake()
            time.sleep(0.002)
    finally:
        worker.stop(5)
    print("looks:", len(looks))
    assert 2 <= len(looks) <= 4
