"""The spool, trusted (issue 15): a spooled request goes back only into the store that
acknowledged it, never wins over a newer callback of its lead, and one bad file neither stops
the rest nor vanishes; spooled and refused requests are counted on /metrics."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pytest

import webhooks.bridge
from tests.conftest import bridge_of, drain
from tests.test_metrics import scrape, value
from tests.test_receiver import ZAP_HEADERS, zap
from webhooks.lifecycle import Status
from webhooks.store import NewEvent, Store, StoreUnavailable
from webhooks.store.identity import fingerprint, safe_url
from webhooks.store.spool import SET_ASIDE, owner

RECALL = {"type_campaign": "predictive", "campaign_id": "4638", "customer_id": "7",
          "recall_telephone": "93001234567", "recall_date": "20301201103000"}


@pytest.fixture(autouse=True)
def no_background_replay(monkeypatch):
    """The web process's replayer waits an hour between tries here: each test replays when
    it means to, so the order of a replay against a live request is the test's, not a race's."""
    monkeypatch.setattr(webhooks.bridge, "SPOOL_REPLAY_EVERY", 3600.0)


def break_store(monkeypatch, app) -> None:
    """Every write answers StoreUnavailable, as a database that is down does."""
    def broken(*_args, **_kwargs):
        raise StoreUnavailable("could not connect to server")

    monkeypatch.setattr(bridge_of(app).store, "add_events", broken)


def spool_one(app, monkeypatch, body: dict) -> None:
    with monkeypatch.context() as patch:
        break_store(patch, app)
        answer = app.test_client().post("/hooks/zapier", json=body, headers=ZAP_HEADERS)
    assert answer.status_code == 202 and answer.get_json()["spooled"] is True
    # the outage ends: the store answers again, and the breaker's pause is over
    bridge_of(app).breaker.open_until = time.monotonic() - 1


# --- item 2: a spooled request goes back only into its own store ---------------------------
def test_two_bridges_on_two_stores_sharing_a_spool_folder_replay_only_their_own(
        make_app, monkeypatch, tmp_path):
    shared = str(tmp_path / "shared-spool")
    first = make_app(spool_dir=shared)  # SQLite or PostgreSQL
    second = make_app(spool_dir=shared, database_url=f"sqlite:///{tmp_path / 'other.db'}")
    one, two = bridge_of(first), bridge_of(second)
    spool_one(first, monkeypatch, zap(lead=1))
    [path] = one.spool.files()

    assert two.spool.replay(two.store) == 0  # the other bridge leaves it alone...
    assert two.store.counts() == {} and path.exists()
    assert one.spool.store != two.spool.store
    assert owner(path) == one.spool.store
    assert json.loads(path.read_text())["store"] == one.spool.store
    ready = second.test_client().get("/readyz").get_json()
    assert ready["spool"]["requests"] == 0
    assert ready["spool"]["foreign"] == {"requests": 1, "stores": [one.spool.store]}
    assert any("belong to another store" in p for p in ready["problems"]), ready["problems"]
    assert value(scrape(second), "recall_bridge_spool_foreign_requests") == 1

    assert one.spool.replay(one.store) == 1  # ...for the store that acknowledged it
    assert one.store.counts() == {"queued": 1} and two.store.counts() == {}
    assert second.test_client().get("/readyz").get_json()["spool"]["foreign"]["requests"] == 0


def test_each_store_has_a_spool_folder_of_its_own_by_default(make_app, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # the default folder is relative, as instance/bridge.db is
    first = make_app(spool_dir="")
    second = make_app(spool_dir="", database_url=f"sqlite:///{tmp_path / 'other.db'}")
    one, two = bridge_of(first), bridge_of(second)
    spool_one(first, monkeypatch, zap(lead=1))
    spool_one(second, monkeypatch, zap(lead=2))
    assert len(one.spool.files()) == 1 and len(two.spool.files()) == 1
    assert one.spool.folder != two.spool.folder
    assert one.spool.folder == Path("instance/spool") / one.spool.store
    assert two.spool.folder == Path("instance/spool") / two.spool.store
    assert one.spool.depth().foreign == 0 and two.spool.depth().foreign == 0


def test_a_store_keeps_its_fingerprint_across_restarts_and_two_stores_differ(database_url,
                                                                             tmp_path):
    opened = [Store(database_url) for _ in range(2)]
    other = Store(f"sqlite:///{tmp_path / 'other.db'}")
    try:
        for store in (*opened, other):
            store.migrate()
        prints = [fingerprint(store) for store in opened]
        assert prints[0] == prints[1]  # the same store, opened twice (a restart)
        assert fingerprint(other) != prints[0]
    finally:
        for store in (*opened, other):
            store.dispose()


def test_the_fingerprints_url_has_no_password_and_one_spelling_per_store(monkeypatch, tmp_path):
    url = safe_url("postgresql+psycopg://bridge:s3cret@DB.example.com/recall")
    assert "s3cret" not in url and url == "postgresql+psycopg://bridge@db.example.com:5432/recall"
    monkeypatch.chdir(tmp_path)
    assert safe_url("sqlite:///instance/bridge.db") == \
        f"sqlite:///{tmp_path.resolve() / 'instance/bridge.db'}"


def test_a_file_without_a_store_is_left_alone_and_shown(make_app, tmp_path):
    app = make_app()
    bridge = bridge_of(app)
    bridge.spool.folder.mkdir(parents=True, exist_ok=True)
    record = {"source": "zapier", "received_at": time.time(), "events": []}
    legacy = bridge.spool.folder / f"{time.time_ns():020d}-123-000001.json"  # before 0007
    legacy.write_text(json.dumps(record))
    assert bridge.spool.replay(bridge.store) == 0 and legacy.exists()
    spool = app.test_client().get("/readyz").get_json()["spool"]
    assert spool["foreign"] == {"requests": 1, "stores": ["unknown"]}


def test_spool_adopt_replays_a_request_spooled_before_stores_had_fingerprints(
        make_app, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    app = make_app(spool_dir="")
    bridge = bridge_of(app)
    spool_one(app, monkeypatch, zap(lead=3))
    [path] = bridge.spool.files()
    record = json.loads(path.read_text())
    del record["store"]
    legacy = Path("instance/spool") / f"{time.time_ns():020d}-123-000001.json"
    legacy.write_text(json.dumps(record))  # where and how a version before 0007 wrote it
    path.unlink()
    assert bridge.spool.replay(bridge.store) == 0
    result = app.test_cli_runner().invoke(args=["spool", "adopt"])
    assert result.exit_code == 0, result.output
    assert "adopted 1 spooled request(s)" in result.output and "replayed 1" in result.output
    assert not legacy.exists() and bridge.store.counts() == {"queued": 1}


# --- item 4: the lead's newest acknowledged request wins, whichever path it took ---------------
@pytest.mark.parametrize("delivered_first", [True, False], ids=["newer-delivered",
                                                                "newer-queued"])
def test_a_request_spooled_in_an_outage_never_replaces_a_newer_live_one(
        make_app, monkeypatch, sandbox, clock, delivered_first):
    app = make_app()
    bridge = bridge_of(app)
    spool_one(app, monkeypatch, zap(lead=5, request_id="t1",
                                    callback_at="2030-12-01T10:30:00-05:00"))  # at t1
    clock.advance(seconds=60)
    live = app.test_client().post("/hooks/zapier", headers=ZAP_HEADERS, json=zap(  # at t2
        lead=5, request_id="t2", callback_at="2030-12-02T16:00:00-05:00"))
    assert live.status_code == 202
    [newer] = [e["id"] for e in live.get_json()["events"]]
    if delivered_first:
        drain(app)
    clock.advance(seconds=5)
    assert bridge.spool.replay(bridge.store) == 1
    drain(app)
    assert [r["recall_date"] for r in sandbox.recalls()] == ["20301202160000"]
    [older] = [r for r in bridge.store.list_events(limit=5) if r["id"] != newer]
    assert older["status"] == "superseded"
    assert f"event {newer} of the same lead was acknowledged later" in older["reason"]
    assert bridge.store.get(newer)["status"] == "delivered"


def add(store: Store, key: str, acknowledged: float, occurred: float | None = None,
        date: str = "20301201103000") -> tuple[int, str]:
    [outcome] = store.add_events([NewEvent(source="zapier", dedup_key=key, token_key="tok",
                                           raw={}, recall={**RECALL, "recall_date": date},
                                           occurred_at=occurred)], acknowledged)
    return outcome.id, outcome.result


def test_a_lead_is_ordered_by_acknowledgement_time_not_by_row_id(store):
    newer, _ = add(store, "b", acknowledged=200.0)
    older, result = add(store, "a", acknowledged=100.0)  # stored after, acknowledged before
    assert result == "superseded" and store.get(newer)["status"] == "queued"
    assert store.get(older)["reason"].startswith(
        f"superseded on arrival: event {newer} of the same lead was acknowledged later")
    newest, result = add(store, "c", acknowledged=300.0)
    assert result == "accepted" and store.get(newer)["status"] == "superseded"
    assert store.get(newer)["reason"] == f"superseded by event {newest} for the same lead"


def test_the_crms_occurred_at_orders_a_lead_before_the_acknowledgement_time(store):
    changed_later, _ = add(store, "b", acknowledged=100.0, occurred=50.0)
    changed_first, result = add(store, "a", acknowledged=200.0, occurred=40.0)
    assert result == "superseded" and store.get(changed_later)["status"] == "queued"
    assert "reports a later change" in store.get(changed_first)["reason"]


# --- item 5: a bad file is set aside with its reason, the rest replayed, and it is counted ------
def _corrupt(kind: str, record: dict) -> str:
    """Make a spooled record bad in one way; returns the file's new text."""
    if kind == "not-json":
        return "{this is not json"
    if kind == "received_at":
        record["received_at"] = "yesterday"
    elif kind == "status":
        record["events"][0]["status"] = 5
    elif kind == "recall":
        record["events"][0]["recall"]["recall_telephone"] = 93001234567
    elif kind == "events":
        record["events"] = {"0": record["events"][0]}
    elif kind == "unknown-field":
        record["events"][0]["colour"] = "blue"
    return json.dumps(record)


@pytest.mark.parametrize("kind", ["not-json", "received_at", "status", "recall", "events",
                                  "unknown-field"])
def test_a_bad_spool_file_is_set_aside_with_its_reason_and_the_rest_replayed(
        make_app, monkeypatch, clock, caplog, kind):
    app = make_app()
    bridge = bridge_of(app)
    for lead in (1, 2, 3):
        spool_one(app, monkeypatch, zap(lead=lead))
        clock.advance(seconds=1)
    bad = bridge.spool.files()[0]  # the oldest: everything else is behind it
    bad.write_text(_corrupt(kind, json.loads(bad.read_text())))
    with caplog.at_level(logging.INFO, logger="webhooks.store.spool"):
        assert bridge.spool.replay(bridge.store) == 2
        assert bridge.spool.replay(bridge.store) == 0
    assert bridge.store.counts() == {"queued": 2}
    aside = bridge.spool.folder / SET_ASIDE
    assert (aside / bad.name).exists() and not bad.exists()
    reason = (aside / f"{bad.stem}.reason").read_text()
    assert reason.startswith("unreadable: ")
    said = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(said) == 1 and said[0].exc_info is None  # once, without a traceback
    assert "93001234567" not in reason + said[0].getMessage()  # a bad value is not quoted
    ready = app.test_client().get("/readyz").get_json()
    assert ready["spool"]["requests"] == 0 and ready["spool"]["set_aside"] == 1
    assert any("set aside" in p for p in ready["problems"])
    assert value(scrape(app), "recall_bridge_spool_set_aside") == 1


def test_a_set_aside_file_moved_back_is_replayed(make_app, monkeypatch):
    app = make_app()
    bridge = bridge_of(app)
    spool_one(app, monkeypatch, zap(lead=1))
    [path] = bridge.spool.files()
    kept = path.read_text()
    path.write_text(kept.replace('"received_at":', '"received_at":"x","was":', 1))
    bridge.spool.replay(bridge.store)
    assert bridge.spool.depth().set_aside == 1
    (bridge.spool.folder / SET_ASIDE / path.name).unlink()
    path.write_text(kept)  # fixed, and moved back
    assert bridge.spool.replay(bridge.store) == 1
    assert bridge.store.counts() == {Status.QUEUED.value: 1}


def test_the_replayer_logs_a_failure_that_repeats_once_not_every_try(make_app, monkeypatch,
                                                                      caplog):
    app = make_app()
    bridge = bridge_of(app)
    tries = []

    def failing(_store):
        tries.append(1)
        raise RuntimeError("a bug in replay")

    monkeypatch.setattr(bridge.spool, "replay", failing)
    monkeypatch.setattr(webhooks.bridge, "SPOOL_REPLAY_EVERY", 0.01)
    with caplog.at_level(logging.ERROR, logger="webhooks"):
        bridge.start_spool_replayer()
        deadline = time.monotonic() + 5
        while len(tries) < 20 and time.monotonic() < deadline:
            time.sleep(0.01)
        bridge.stop_background()
    assert len(tries) >= 20
    said = [r for r in caplog.records if "spool replay failed" in r.getMessage()]
    assert len(said) == 1 and said[0].exc_info is not None  # the traceback, once


# --- item 11: spooled and refused requests are on /metrics -------------------------------------
REFUSED = "recall_bridge_webhooks_refused_total"
RECEIVED = "recall_bridge_webhooks_received_total"


def test_spooled_and_refused_requests_are_counted_on_metrics(make_app, monkeypatch, tmp_path):
    app = make_app(max_body_bytes=1000)
    client = app.test_client()
    before = scrape(app)
    spool_one(app, monkeypatch, zap(lead=1))
    client.post("/hooks/zapier", json=zap(), headers={"X-Bridge-Token": "wrong"})  # 401
    client.post("/hooks/zapier", data=b"{not json", headers={
        **ZAP_HEADERS, "Content-Type": "application/json"})  # 400
    client.post("/hooks/zapier", json=zap(note="x" * 2000), headers=ZAP_HEADERS)  # 413
    blocked = make_app(spool_dir=str(tmp_path / "a-file"))
    (tmp_path / "a-file").write_text("where the spool folder should be")
    with monkeypatch.context() as patch:
        break_store(patch, blocked)
        answer = blocked.test_client().post("/hooks/zapier", json=zap(), headers=ZAP_HEADERS)
    assert answer.status_code == 503
    client.post("/hooks/nowhere", json={})  # 404: not counted, its name is the caller's
    after = scrape(app)

    def moved(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved(RECEIVED, source="zapier", result="spooled") == 1
    for status in ("401", "400", "413", "503"):
        assert moved(REFUSED, source="zapier", status=status) == 1, status
    assert moved(REFUSED, source="nowhere", status="404") == 0
