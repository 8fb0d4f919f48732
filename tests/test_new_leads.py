"""New leads: a mapping's `campaign_record:` puts a customer the campaign does not have into it
(wolkvox's add_record) before its recall: `missing` when wolkvox refuses the recall for it,
`always` before the lead's first recall; never twice, never a recall after a refused add.
Real HTTP to the sandbox wolkvox, SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import ENVIRON, ROOT, bridge_of
from tests.test_receiver import ZAP_HEADERS, zap
from webhooks.mapping.files import load_source
from webhooks.settings import ConfigError, Settings


def leads_app(make_app, sandbox, add: str, refuse_unknown: bool = True, **overrides):
    sandbox.configure(refuse_unknown=refuse_unknown)
    app = make_app(environ={"ZAPIER_CAMPAIGN_RECORD": add}, wolkvox_min_lead=0.0,
                   **overrides)
    from webhooks.delivery.worker import Worker

    b = bridge_of(app)
    return app, b, Worker(b.store, b.sources, b.settings, name="test")


def post(app, *bodies: dict) -> list[int]:
    client = app.test_client()
    answers = [client.post("/hooks/zapier", json=body, headers=ZAP_HEADERS).get_json()
               for body in bodies]
    return [e["id"] for answer in answers for e in answer["events"]]


def drain(worker) -> None:
    for _ in range(20):
        if not worker.run_once():
            return


def timeline(b, event_id: int) -> list[tuple[str, int | None]]:
    return [(a["outcome"], a["http_status"]) for a in b.store.attempts_of(event_id)]


def quota_used(b, token_key: str) -> int:
    from sqlalchemy import func, select

    from webhooks.store.tables import quota

    with b.store.engine.connect() as db:
        return int(db.execute(select(func.sum(quota.c.used)).where(
            quota.c.token_key == token_key)).scalar() or 0)


def state(sandbox):
    with sandbox.state.lock:
        return (dict(sandbox.state.records), list(sandbox.state.adds),
                list(sandbox.state.recalls))


def test_missing_adds_a_customer_wolkvox_refuses_then_calls_it_back(make_app, sandbox):
    app, b, worker = leads_app(make_app, sandbox, "missing", wolkvox_daily_limit=100)
    [event_id] = post(app, zap(7, name="Ana"))
    drain(worker)
    row = b.store.get(event_id)
    assert row["status"] == "delivered"
    assert timeline(b, event_id) == [("retry", 400), ("added", 200), ("delivered", 202)]
    attempts = b.store.attempts_of(event_id)
    assert "does not have customer 7 in campaign 4638" in attempts[0]["reason"]
    assert attempts[1]["reason"].startswith("added to campaign 4638: 1 records were added")
    records, adds, recalls = state(sandbox)
    assert records["4638"]["7"] == {"customer_id": "7", "customer_name": "Ana",
                                    "tel1": "93001234567"}
    assert adds[0]["campaign_status"] == "start" and len(recalls) == 1
    # three calls, three units: the refused recall, the add, the recall
    assert quota_used(b, row["token_key"]) == 3
    # the lead's next callback: remembered, no add
    [again] = post(app, zap(7, request_id="second", callback_at="2030-12-02T10:30:00-05:00"))
    drain(worker)
    assert timeline(b, again) == [("delivered", 202)]
    assert len(state(sandbox)[1]) == 1


def test_always_adds_the_record_before_the_leads_first_recall_once_across_processes(
        make_app, sandbox):
    from webhooks.delivery.worker import Worker

    app, b, worker = leads_app(make_app, sandbox, "always")
    other = Worker(b.store, b.sources, b.settings, name="other")
    [first] = post(app, zap(8))
    drain(worker)
    assert timeline(b, first) == [("added", 200), ("delivered", 202)]
    records, adds, recalls = state(sandbox)
    assert adds[0]["at"] < recalls[0]["at"]  # never the recall before its add
    [second] = post(app, zap(8, request_id="again", callback_at="2030-12-03T10:30:00-05:00"))
    drain(other)  # another process: it knows the customer was added
    assert timeline(b, second) == [("delivered", 202)]
    assert len(state(sandbox)[1]) == 1


def test_a_refused_add_fails_the_event_and_no_recall_goes_out(make_app, sandbox):
    app, b, worker = leads_app(make_app, sandbox, "always")
    sandbox.configure(script=[400])
    [event_id] = post(app, zap(9))
    drain(worker)
    row = b.store.get(event_id)
    assert row["status"] == "failed"
    assert row["reason"].startswith("adding to campaign 4638: wolkvox refused")
    assert "3001234567" not in row["reason"]  # wolkvox's message, masked
    assert state(sandbox)[2] == []  # no recall without its record
    assert not b.store.has_record(row["token_key"], "4638", "9")


def test_a_passing_fault_of_the_add_is_retried_before_any_recall(make_app, sandbox, clock):
    app, b, worker = leads_app(make_app, sandbox, "always")
    sandbox.configure(script=[503])
    [event_id] = post(app, zap(10))
    drain(worker)
    row = b.store.get(event_id)
    assert row["status"] == "queued" and row["attempts"] == 1
    assert "adding to campaign 4638" in row["reason"] and state(sandbox)[2] == []
    clock.advance(seconds=15)
    drain(worker)
    assert b.store.get(event_id)["status"] == "delivered"
    assert [o for o, _ in timeline(b, event_id)] == ["retry", "added", "delivered"]


def test_a_record_without_a_phone_is_invalid_with_the_reason(make_app, sandbox, mappings_dir):
    zapier = mappings_dir / "zapier.yaml"
    zapier.write_text(zapier.read_text().replace("      path: phone\n      phone:",
                                                 "      path: mobile\n      phone:"))
    app, b, worker = leads_app(make_app, sandbox, "always")
    [event_id] = post(app, zap(11))
    row = b.store.get(event_id)
    assert row["status"] == "invalid"
    assert "campaign_record.tel1" in row["reason"] and "no phone" in row["reason"]
    drain(worker)
    assert state(sandbox)[1] == [] and state(sandbox)[2] == []


def test_off_and_an_unmatched_refusal_send_the_recall_as_before(make_app, sandbox):
    app, b, worker = leads_app(make_app, sandbox, "off")
    [event_id] = post(app, zap(12))
    drain(worker)
    assert b.store.get(event_id)["status"] == "failed"  # the sandbox refuses the unknown
    assert state(sandbox)[1] == []
    app, b, worker = leads_app(make_app, sandbox, "missing",
                               wolkvox_not_in_campaign="cliente inexistente")
    [event_id] = post(app, zap(13))
    drain(worker)
    assert timeline(b, event_id) == [("failed", 400)]  # not what the pattern names


def test_the_adds_are_counted_on_metrics(make_app, sandbox):
    app, b, worker = leads_app(make_app, sandbox, "missing")
    post(app, zap(14))
    drain(worker)
    text = app.test_client().get("/metrics").get_data(as_text=True)
    assert 'recall_bridge_record_adds_total{outcome="added"}' in text


def test_mappings_try_shows_the_record_that_would_be_added(make_app, sandbox, tmp_path):
    from tests.test_cli import cli

    app, b, worker = leads_app(make_app, sandbox, "always")
    sample = tmp_path / "lead.json"
    sample.write_text(json.dumps(zap(15, name="Luis")))
    out = cli(app, "mappings", "try", "zapier", str(sample)).output
    assert "campaign record (add_record, before its first recall):" in out
    assert '"customer_id": "15"' in out and '"customer_name": "Luis"' in out
    assert "3001234567" not in out


@pytest.mark.parametrize(("block", "said"), [
    ("campaign_record:\n  add: sometimes\n  fields: {tel1: {path: phone}}\n",
     "campaign_record.add: must be missing, always or off"),
    ("campaign_record:\n  add: always\n  fields: {customer_name: {path: name}}\n",
     "needs tel1"),
    ("campaign_record:\n  add: always\n  fields: {tel1: {path: phone}, phone_2: {path: x}}\n",
     "is not a field of a wolkvox record"),
])
def test_a_bad_campaign_record_is_named_at_start(tmp_path: Path, block: str, said: str):
    path = tmp_path / "crm.yaml"
    text = (ROOT / "mappings/zapier.yaml").read_text()
    path.write_text(text[:text.index("# New leads")] + block)
    with pytest.raises(ConfigError) as err:
        load_source(path, Settings(wolkvox_token="t", wolkvox_server="1", environ=ENVIRON))
    assert said in str(err.value)


@pytest.mark.parametrize(("name", "sample"), [("rdstation", "rdstation.json"),
                                              ("hubspot-workflow", "hubspot-workflow.json"),
                                              ("kommo", None)])
def test_each_shipped_commented_campaign_record_works_once_uncommented(tmp_path, name, sample):
    from datetime import UTC, datetime

    from webhooks.crm.formats import format_of

    text = (ROOT / f"mappings/{name}.yaml").read_text()
    head, tail = text.split("# campaign_record:")
    block = "\n".join(line[2:] if line.startswith("# ") else line
                      for line in ("campaign_record:" + tail).splitlines())
    path = tmp_path / f"{name}.yaml"
    path.write_text(head + block + "\n")
    source = load_source(path, Settings(wolkvox_token="t", wolkvox_server="1",
                                        environ=ENVIRON))
    assert source.record is not None and source.record.add == "always"
    if sample is None:  # Kommo's record reads the lookup's contact: loaded, not mapped here
        return
    body = (ROOT / "mappings/samples" / sample).read_bytes()
    event = source.events_of(source.parse(body, format_of(source.format).sample_type))[0]
    record = source.record_of(event, datetime(2026, 12, 1, tzinfo=UTC), "c-1")
    assert record["customer_id"] == "c-1" and record["tel1"] == "93001234567"
    assert record["customer_name"]
