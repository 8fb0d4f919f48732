"""/metrics: counters that move with webhooks and deliveries, gauges read from the store at
scrape time, the optional METRICS_TOKEN, and counts summed across gunicorn workers."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ENVIRON, SANDBOX_TOKEN, bridge_of, drain
from tests.procs import gunicorn
from tests.test_delivery import receive
from tests.test_receiver import ZAP_HEADERS, zap


def samples(text: str) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted labels): value} of a Prometheus text exposition."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def scrape(app, token: str | None = None) -> dict[tuple[str, tuple], float]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    answer = app.test_client().get("/metrics", headers=headers)
    assert answer.status_code == 200
    assert answer.content_type.startswith("text/plain")
    return samples(answer.get_data(as_text=True))


def value(found: dict, name: str, **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


RECEIVED = "recall_bridge_webhooks_received_total"


def test_counters_move_after_a_webhook_and_a_delivery(make_app, sandbox):
    app = make_app()
    before = scrape(app)
    receive(app, zap(lead=1), zap(lead=1), zap(lead=2, phone="12"))
    drain(app)
    after = scrape(app)

    def moved(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved(RECEIVED, source="zapier", result="accepted") == 1
    assert moved(RECEIVED, source="zapier", result="duplicate") == 1
    assert moved(RECEIVED, source="zapier", result="invalid") == 1
    assert moved("recall_bridge_deliveries_total", outcome="delivered") == 1
    assert moved("recall_bridge_wolkvox_call_seconds_count") == 1
    assert moved("recall_bridge_wolkvox_call_seconds_bucket", le="+Inf") == 1


def test_queue_quota_and_holds_are_read_from_the_store(make_app, sandbox, clock):
    app = make_app(wolkvox_daily_limit=100)
    bridge = bridge_of(app)
    key = bridge.sources["zapier"].target.key
    receive(app, zap(lead=1), zap(lead=2), zap(lead=3, phone="12"))
    found = scrape(app)
    assert value(found, "recall_bridge_store_up") == 1
    assert value(found, "recall_bridge_events", status="queued") == 2
    assert value(found, "recall_bridge_events", status="invalid") == 1
    assert value(found, "recall_bridge_events", status="delivered") == 0  # shown at 0
    assert value(found, "recall_bridge_quota_used", token=key) == 0
    assert ("recall_bridge_oldest_due_seconds", (("token", key),)) in found
    drain(app)
    now = clock().timestamp()
    bridge.store.hold(key, "quota", "daily quota used up", now + 600, now, 100)
    found = scrape(app)
    assert value(found, "recall_bridge_events", status="queued") == 0
    assert value(found, "recall_bridge_events", status="delivered") == 2
    assert value(found, "recall_bridge_quota_used", token=key) == 2
    assert value(found, "recall_bridge_calls_in_flight", token=key) == 0
    assert value(found, "recall_bridge_token_held", token=key, kind="quota") == 1
    clock.advance(seconds=601)  # the hold has run out: no longer shown as held
    assert value(scrape(app), "recall_bridge_token_held", token=key, kind="quota") == 0


def test_a_store_that_does_not_answer_is_said_and_the_counters_still_shown(make_app, monkeypatch):
    from webhooks.store import StoreUnavailable

    app = make_app()

    def down():
        raise StoreUnavailable("database is locked")

    monkeypatch.setattr(bridge_of(app).store, "counts", down)
    found = scrape(app)  # still answers: the counters are there, the store's gauges not
    assert value(found, "recall_bridge_store_up") == 0
    assert not any(name == "recall_bridge_events" for name, _ in found)
    assert any(name == RECEIVED or name == "recall_bridge_wolkvox_call_seconds_count"
               for name, _ in found)


def test_metrics_token_is_asked_for_when_set(make_app):
    open_app = make_app()
    assert open_app.test_client().get("/metrics").status_code == 200
    app = make_app(metrics_token="metrics-token-0123456789abcdef")
    client = app.test_client()
    missing = client.get("/metrics")
    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert client.get("/metrics", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert client.get("/metrics", headers={
        "Authorization": "Basic metrics-token-0123456789abcdef"}).status_code == 401
    assert scrape(app, token="metrics-token-0123456789abcdef")


@pytest.mark.slow
def test_two_gunicorn_workers_show_the_counts_of_both(sandbox, mappings_dir, tmp_path):
    """With PROMETHEUS_MULTIPROC_DIR, every scrape shows the webhooks of every worker,
    whichever worker answers it."""
    shared = tmp_path / "metrics"
    shared.mkdir()
    env = {**ENVIRON, "DATABASE_URL": f"sqlite:///{tmp_path / 'bridge.db'}",
           "WOLKVOX_TOKEN": SANDBOX_TOKEN, "WOLKVOX_BASE_URL": sandbox.url,
           "MAPPINGS_DIR": str(mappings_dir), "SPOOL_DIR": str(tmp_path / "spool"),
           "WEB_CONCURRENCY": "2", "DELIVERY_WORKER": "false", "SOURCES": "zapier",
           "PROMETHEUS_MULTIPROC_DIR": str(shared)}
    proc, url = gunicorn(env, tmp_path / "gunicorn.log")
    try:
        def send(_: int) -> int:
            body = zap(lead=1, request_id=uuid.uuid4().hex)
            answer = requests.post(f"{url}/hooks/zapier", json=body, headers=ZAP_HEADERS,
                                   timeout=10)
            return answer.json()["counts"].get("accepted", 0)

        accepted = 0
        with ThreadPoolExecutor(8) as pool:
            for _ in range(20):  # until both workers have taken some
                accepted += sum(pool.map(send, range(16)))
                if len(list(shared.glob("counter_*.db"))) >= 2:
                    break
        assert len(list(shared.glob("counter_*.db"))) == 2, proc.output()[-2000:]
        for _ in range(10):  # each scrape goes to one worker or the other
            found = samples(requests.get(f"{url}/metrics", timeout=10).text)
            assert value(found, RECEIVED, source="zapier", result="accepted") == accepted
    finally:
        proc.kill()


@pytest.mark.slow
def test_a_deliver_process_of_its_own_serves_its_metrics(make_app, sandbox, database_url,
                                                         tmp_path):
    from tests.procs import BIN, Proc, free_port, wait_until

    app = make_app()
    receive(app, zap(lead=1))
    port = free_port()
    env = {**ENVIRON, "DATABASE_URL": database_url, "WOLKVOX_TOKEN": SANDBOX_TOKEN,
           "WOLKVOX_BASE_URL": sandbox.url, "SOURCES": "zapier",
           "MAPPINGS_DIR": bridge_of(app).settings.mappings_dir, "POLL_INTERVAL": "0.05"}
    proc = Proc([str(BIN / "flask"), "--app", "wsgi", "deliver", "--threads", "1",
                 "--metrics-port", str(port)], env, tmp_path / "deliver.log")
    try:
        wait_until(lambda: len(sandbox.recalls()) == 1, 30, proc)

        def scraped() -> str:
            try:
                return requests.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
            except requests.RequestException:
                return ""

        wait_until(lambda: 'recall_bridge_deliveries_total{outcome="delivered"} 1.0'
                   in scraped(), 20, proc)
        assert 'recall_bridge_events{status="delivered"} 1.0' in scraped()
    finally:
        proc.kill()
