"""Issue 15, items 6, 9 and 10: what a CRM's own format and habits make of its events.

Through the hook, the console and the API, on SQLite and PostgreSQL (the `make_app` fixture).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ENVIRON, drain
from tests.test_console import signed_in, text
from tests.test_crms import hubspot_v3, sample, soon
from tests.test_crms_latam import BY_SOURCE
from tests.test_delivery import receive
from tests.test_receiver import zap
from webhooks.bridge import bridge_of
from webhooks.mapping.files import ConfigError

ADMIN = "a" * 32
FORM = "application/x-www-form-urlencoded"


@pytest.fixture
def app(make_app: Any) -> Any:
    return make_app(admin_token=ADMIN)


def api_ids(app: Any, **query: str) -> list[int]:
    answer = app.test_client().get("/api/v1/events", query_string=query,
                                   headers={"Authorization": f"Bearer {ADMIN}"})
    assert answer.status_code == 200, answer.get_json()
    return [e["id"] for e in answer.get_json()["events"]]


def console_ids(client: Any, **query: str) -> list[int]:
    page = text(client.get("/console/events", query_string=query))
    return [int(found) for found in re.findall(r'href="/console/events/(\d+)"', page)]


# --- item 9: ignored and invalid events keep their lead ----------------------------------------
def test_ignored_event_is_found_by_its_customer_in_the_console_and_the_api(app):
    body = sample("activecampaign.txt").replace(b"type=contact_tag_added",
                                                b"type=contact_updated")
    answer = BY_SOURCE["activecampaign"].post(app, body=body)
    [event] = answer.get_json()["events"]
    assert event["result"] == "ignored"
    assert api_ids(app, customer_id="42") == [event["id"]]
    [shown] = app.test_client().get(
        "/api/v1/events", query_string={"customer_id": "42"},
        headers={"Authorization": f"Bearer {ADMIN}"}).get_json()["events"]
    assert shown["customer_id"] == "42"
    client = signed_in(app, ADMIN)
    assert console_ids(client, customer="42") == [event["id"]]
    row = text(client.get("/console/events", query_string={"customer": "42"}))
    assert re.search(r">\s*42\s*<", row), "the customer column shows the contact id"


def test_invalid_event_keeps_the_customer_and_campaign_the_mapping_makes(app):
    [bad] = receive(app, zap(lead=77, phone="12", campaign_id="555"))
    assert api_ids(app, customer_id="77") == [bad]
    stored = bridge_of(app).store.get(bad)
    assert stored["status"] == "invalid"
    assert (stored["campaign_id"], stored["customer_id"]) == ("555", "77")
    assert console_ids(signed_in(app, ADMIN), customer="77") == [bad]


def test_lookup_source_ignored_event_keeps_the_id_the_event_carries(make_app):
    app = make_app(admin_token=ADMIN)
    body = sample("bitrix24.txt").replace(b"ONCRMLEADUPDATE", b"ONCRMLEADDELETE")
    answer = BY_SOURCE["bitrix24"].post(app, body=body)
    [event] = answer.get_json()["events"]
    assert event["result"] == "ignored"
    assert api_ids(app, customer_id="1000983") == [event["id"]]


def test_event_whose_customer_cannot_be_made_stays_without_one(app):
    [bad] = receive(app, {"request_id": "no-lead", "phone": "300 123 4567"})
    stored = bridge_of(app).store.get(bad)
    assert stored["status"] == "invalid" and stored["customer_id"] is None


# --- item 6: the shipped mappings use the CRM's transition, not its state ---------------------
def test_activecampaign_edit_of_a_contact_already_tagged_is_ignored_not_a_new_call(app, sandbox):
    tagged = BY_SOURCE["activecampaign"].post(app)
    assert results_of(tagged) == ["accepted"]
    drain(app)
    edited = sample("activecampaign.txt").replace(b"type=contact_tag_added",
                                                  b"type=contact_updated").replace(
        b"2026-11-28T12%3A00%3A00", b"2026-11-28T12%3A05%3A00")
    assert results_of(BY_SOURCE["activecampaign"].post(app, body=edited)) == ["ignored"]
    drain(app)
    assert len(sandbox.recalls()) == 1


def test_activecampaign_another_tag_added_is_ignored(app):
    body = sample("activecampaign.txt").replace(b"&tag=callback", b"&tag=vip").replace(
        b"contact%5Btags%5D=callback", b"contact%5Btags%5D=vip")
    assert results_of(BY_SOURCE["activecampaign"].post(app, body=body)) == ["ignored"]


def rdstation_edit(updated_at: str, callback_at: str | None) -> bytes:
    """An RD Station "deal updated" for the sample's deal, in the callback stage, edited at
    `updated_at` (a new event each time), asking for `callback_at` (None: no date)."""
    body = json.loads(rdstation_as_documented(callback_at or ""))
    body["document"]["updated_at"] = updated_at
    if callback_at is None:
        body["document"]["deal_custom_fields"][1]["value"] = None
    return json.dumps(body).encode()


@pytest.mark.parametrize("asked", ["2030-12-01T12:30:00-03:00", None], ids=["dated", "no-date"])
def test_rdstation_edit_asking_what_the_recall_ahead_asked_is_a_duplicate_not_a_call(
        app, sandbox, clock, asked):
    crm = BY_SOURCE["rdstation"]
    [first] = results_of_ids(crm.post(app, body=rdstation_edit("2026-11-28T14:00:00-03:00",
                                                              asked)))
    drain(app)
    clock.advance(minutes=5)  # a later edit: with no date, now + 30 min would be 5 min later
    [second] = results_of_ids(crm.post(app, body=rdstation_edit("2026-11-28T14:05:00-03:00",
                                                               asked)))
    drain(app)
    assert len(sandbox.recalls()) == 1, "the edit re-scheduled the call"
    stored = bridge_of(app).store.get(second)
    assert stored["status"] == "superseded"
    assert f"duplicate of event {first}" in stored["reason"]


def test_the_repeat_check_reads_the_last_recall_with_the_claim_not_before_each_call(
        app, sandbox, clock, monkeypatch):
    """The lead's last delivered recall comes with the claim (made ahead, while the previous
    call is in flight): no query stands between two calls. A query at call time fails here."""
    crm = BY_SOURCE["rdstation"]
    asked = "2030-12-01T12:30:00-03:00"
    [first] = results_of_ids(crm.post(app, body=rdstation_edit("2026-11-28T14:00:00-03:00",
                                                              asked)))
    drain(app)
    store = bridge_of(app).store

    def queried(*args: Any) -> None:
        raise AssertionError("ahead_in_wolkvox queried on the call's path")

    monkeypatch.setattr(store, "ahead_in_wolkvox", queried)
    clock.advance(minutes=5)
    [second] = results_of_ids(crm.post(app, body=rdstation_edit("2026-11-28T14:05:00-03:00",
                                                               asked)))
    drain(app)
    assert len(sandbox.recalls()) == 1
    assert f"duplicate of event {first}" in store.get(second)["reason"]
    clock.advance(minutes=5)  # another date: a new call, judged from the claim's row too
    crm.post(app, body=rdstation_edit("2026-11-28T14:10:00-03:00", "2030-12-02T12:30:00-03:00"))
    drain(app)
    assert [r["recall_date"] for r in sandbox.recalls()] == ["20301201103000", "20301202103000"]


def test_rdstation_edit_asking_another_date_or_none_is_a_new_call(app, sandbox, clock):
    crm = BY_SOURCE["rdstation"]
    crm.post(app, body=rdstation_edit("2026-11-28T14:00:00-03:00", "2030-12-01T12:30:00-03:00"))
    drain(app)
    crm.post(app, body=rdstation_edit("2026-11-28T14:05:00-03:00", "2030-12-02T12:30:00-03:00"))
    drain(app)
    crm.post(app, body=rdstation_edit("2026-11-28T14:06:00-03:00", None))
    drain(app)
    dates = [r["recall_date"] for r in sandbox.recalls()]
    assert dates == ["20301201103000", "20301202103000", soon(clock)]


def results_of_ids(answer: Any) -> list[int]:
    assert [e["result"] for e in answer.get_json()["events"]] == ["accepted"]
    return [e["id"] for e in answer.get_json()["events"]]


def results_of(answer: Any) -> list[str]:
    return [e["result"] for e in answer.get_json()["events"]]


# --- item 10: the vendors' own formats -----------------------------------------------------------
def rdstation_as_documented(callback_at: str) -> bytes:
    """A deal in the callback stage shaped like RD Station's documented CRM payload
    (developers.rdstation.com/reference/webhooks-payload-crm): each custom field is
    {"value": ..., "custom_field": {"id": ..., "label": ...}}."""
    return json.dumps({
        "event_name": "crm_deal_updated",
        "document": {
            "id": "650890f2a0a1b2000f1e2d3c", "name": "Ana", "updated_at":
            "2026-11-28T14:00:00.000-03:00",
            "deal_stage": {"id": "6508a0f2a0a1b2000f1e2d40", "name": "Retornar"},
            "contacts": [{"name": "Ana", "phones": [{"phone": "+57 300 123 4567"}]}],
            "deal_custom_fields": [
                {"value": None, "custom_field": {"id": "611e89b0f269d0000b3bb2c2",
                                                 "label": "Whatsapp", "type": "text"}},
                {"value": callback_at, "custom_field": {"id": "6508a0f2a0a1b2000f1e2d99",
                                                        "label": "Retornar em",
                                                        "type": "datetime"}}]}}).encode()


def test_rdstation_callback_time_is_read_from_custom_field_id_as_rd_station_sends_it(
        app, sandbox, clock):
    answer = BY_SOURCE["rdstation"].post(
        app, body=rdstation_as_documented("2030-12-01T12:30:00-03:00"))
    assert answer.status_code == 202, answer.get_data(as_text=True)
    drain(app)
    [recall] = sandbox.recalls()
    assert recall["recall_date"] == "20301201103000"  # 12:30 in Sao Paulo is 10:30 in Bogota
    assert recall["recall_date"] != soon(clock)


def test_rdstation_sample_has_the_documented_custom_field_shape():
    body = json.loads(sample("rdstation.json"))
    [field] = body["document"]["deal_custom_fields"]
    assert set(field) == {"value", "custom_field"} and "id" in field["custom_field"]


def test_monday_event_is_answered_200_since_monday_retries_anything_else(app, sandbox):
    answer = BY_SOURCE["monday"].post(app)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.get_json()["events"][0]["result"] == "accepted"
    again = BY_SOURCE["monday"].post(app)
    assert again.status_code == 200 and again.get_json()["events"][0]["result"] == "duplicate"


def test_answer_status_is_a_mapping_setting_and_the_default_stays_202(make_app, mappings_dir):
    path = mappings_dir / "zapier.yaml"
    path.write_text(path.read_text(encoding="utf-8") + "answer: {status: 201}\n",
                    encoding="utf-8")
    app = make_app()
    answer = app.test_client().post("/hooks/zapier", json=zap(),
                                    headers={"X-Bridge-Token": ENVIRON["ZAPIER_SHARED_SECRET"]})
    assert answer.status_code == 201
    other = BY_SOURCE["odoo"].post(app)
    assert other.status_code == 202


def test_answer_status_other_than_a_success_is_refused_at_start(make_app, mappings_dir: Path):
    path = mappings_dir / "zapier.yaml"
    path.write_text(path.read_text(encoding="utf-8") + "answer: {status: 500}\n",
                    encoding="utf-8")
    with pytest.raises(ConfigError, match="must be 200, 201 or 202"):
        make_app()


# --- item 10: HubSpot workflow requests without a v3 signature --------------------------------
def hubspot_v1(body: bytes) -> dict[str, str]:
    """The older signature a workflow's webhook may carry: SHA-256 hex of secret + body."""
    digest = hashlib.sha256(ENVIRON["HUBSPOT_CLIENT_SECRET"].encode() + body).hexdigest()
    return {"X-HubSpot-Signature": digest, "X-HubSpot-Signature-Version": "v1",
            "Content-Type": "application/json"}


@pytest.mark.parametrize("signed", [True, False], ids=["v1-only", "unsigned"])
def test_hubspot_request_without_a_v3_signature_tells_the_admin_why_and_the_fix(
        app, signed, caplog):
    body = sample("hubspot-workflow.json")
    headers = hubspot_v1(body) if signed else {"Content-Type": "application/json"}
    with caplog.at_level(logging.ERROR, logger="webhooks"):
        answer = app.test_client().post("/hooks/hubspot-workflow", data=body, headers=headers)
        app.test_client().post("/hooks/hubspot-workflow", data=body, headers=headers)
    assert answer.status_code == 401
    said = "v1 only" if signed else "unsigned"
    logged = [r.getMessage() for r in caplog.records if "versions: [v3, v2]" in r.getMessage()]
    assert len(logged) == 1 and said in logged[0], "logged once, with the fix"
    problems = app.test_client().get("/readyz").get_json()["problems"]
    assert any(p.startswith("hubspot-workflow: ") and said in p and "versions: [v3, v2]" in p
               for p in problems), problems
    page = text(signed_in(app, ADMIN).get("/console/capture",
                                          query_string={"source": "hubspot-workflow"}))
    assert "versions: [v3, v2]" in page and said in page


def test_hubspot_request_whose_v3_signature_fails_is_no_setup_problem(app, clock):
    body = sample("hubspot-workflow.json")
    request = hubspot_v3(body, clock, forged=True, url="http://localhost/hooks/hubspot-workflow")
    assert app.test_client().post("/hooks/hubspot-workflow", **request).status_code == 401
    assert not [p for p in app.test_client().get("/readyz").get_json()["problems"]
                if "versions" in p]
