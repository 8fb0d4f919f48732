"""POST /hooks/<source>: authenticity, parsing, mapping outcomes, dedup, and the answer."""

from __future__ import annotations

import base64
import hmac
import json
from typing import Any

from tests.conftest import bridge_of, drain
from webhooks.store import StoreUnavailable

ZAP_HEADERS = {"X-Bridge-Token": "zap-secret"}


def zap(lead: int = 1, phone: str = "300 123 4567", **extra: object) -> dict:
    return {"request_id": f"req-{lead}", "lead_id": lead, "phone": phone,
            "callback_at": "2030-12-01T10:30:00-05:00", **extra}


def hubspot_v3(secret: str, body: bytes, clock: Any,
               url: str = "http://localhost/hooks/hubspot-workflow") -> dict[str, str]:
    timestamp = str(int(clock().timestamp() * 1000))
    signed = b"POST" + url.encode() + body + timestamp.encode()
    digest = base64.b64encode(hmac.digest(secret.encode(), signed, "sha256")).decode()
    return {"X-HubSpot-Signature-v3": digest, "X-HubSpot-Request-Timestamp": timestamp,
            "Content-Type": "application/json"}


def test_authenticated_event_is_stored_and_answered_with_its_id(make_app):
    app = make_app()
    response = app.test_client().post("/hooks/zapier", json=zap(), headers=ZAP_HEADERS)
    assert response.status_code == 202
    event = response.get_json()["events"][0]
    assert event["result"] == "accepted" and event["status"] == "queued"
    stored = bridge_of(app).store.get(event["id"])
    assert stored["recall"] == {"type_campaign": "predictive", "campaign_id": "4638",
                                "customer_id": "1", "recall_telephone": "93001234567",
                                "recall_date": "20301201103000"}
    assert stored["dedup_key"] == "req-1"


def test_wrong_token_is_refused_and_nothing_is_stored(make_app):
    app = make_app()
    response = app.test_client().post("/hooks/zapier", json=zap(),
                                      headers={"X-Bridge-Token": "guess"})
    assert response.status_code == 401
    assert "zap-secret" not in response.get_data(as_text=True)
    assert bridge_of(app).store.counts() == {}


def test_tampered_hubspot_body_is_refused_and_nothing_is_stored(make_app, clock):
    app = make_app()
    body = (b'{"vid": 5, "properties": {"phone": {"value": "3001234567"}, '
            b'"callback_requested": {"value": "true"}}}')
    headers = hubspot_v3("hubspot-secret", body, clock)
    tampered = body.replace(b"3001234567", b"3009999999")
    client = app.test_client()
    assert client.post("/hooks/hubspot-workflow", data=tampered,
                       headers=headers).status_code == 401
    assert bridge_of(app).store.counts() == {}
    assert client.post("/hooks/hubspot-workflow", data=body, headers=headers).status_code == 202


def test_same_webhook_twice_is_a_duplicate_not_a_second_event(make_app):
    client = make_app().test_client()
    first = client.post("/hooks/zapier", json=zap(), headers=ZAP_HEADERS).get_json()
    second = client.post("/hooks/zapier", json=zap(), headers=ZAP_HEADERS).get_json()
    assert second["events"][0]["result"] == "duplicate"
    assert second["events"][0]["id"] == first["events"][0]["id"]


def test_unmappable_event_is_stored_invalid_with_the_field_and_reason(make_app):
    app = make_app()
    answer = app.test_client().post("/hooks/zapier", json=zap(phone="12"),
                                    headers=ZAP_HEADERS).get_json()
    event = answer["events"][0]
    assert event["result"] == "invalid"
    assert "recall_telephone" in event["reason"] and "12" not in event["reason"].split(":")[-1]
    assert bridge_of(app).store.get(event["id"])["status"] == "invalid"


def test_event_the_mapping_does_not_want_is_kept_as_ignored_with_its_reason(make_app, clock):
    app = make_app()
    body = json.dumps({"vid": 7, "properties": {"callback_requested": {"value": "false"}}})
    response = app.test_client().post(
        "/hooks/hubspot-workflow", data=body,
        headers=hubspot_v3("hubspot-secret", body.encode(), clock))
    assert response.status_code == 202
    [event] = response.get_json()["events"]
    assert event["result"] == "ignored" and event["status"] == "ignored"
    assert event["reason"] == ("ignored: the mapping's `when` is false "
                               "(properties.callback_requested.value == 'true')")
    stored = bridge_of(app).store.get(event["id"])
    assert stored["status"] == "ignored" and stored["raw"] == json.loads(body)
    drain(app)
    assert bridge_of(app).store.counts() == {"ignored": 1}


def test_ignored_event_names_the_paths_when_reads_that_are_missing(make_app, clock):
    # a body stripped for size, or another subscription: the reason says what was absent
    app = make_app()
    body = json.dumps({"vid": 8, "properties": {}})
    response = app.test_client().post(
        "/hooks/hubspot-workflow", data=body,
        headers=hubspot_v3("hubspot-secret", body.encode(), clock))
    [event] = response.get_json()["events"]
    assert event["reason"].endswith("; missing in the event: properties.callback_requested.value")
    repeat = app.test_client().post(
        "/hooks/hubspot-workflow", data=body,
        headers=hubspot_v3("hubspot-secret", body.encode(), clock))
    assert repeat.get_json()["events"][0]["result"] == "duplicate"  # a CRM retry: one row


def test_more_events_than_the_limit_are_refused_whole_with_413(make_app, mappings_dir):
    (mappings_dir / "batch.yaml").write_text(BATCH_MAPPING)
    app = make_app(max_events_per_request=3)
    client = app.test_client()
    response = client.post("/hooks/batch", json=[zap(lead=n) for n in range(4)],
                           headers=ZAP_HEADERS)
    assert response.status_code == 413
    assert "4 events in one request; at most 3" in response.get_json()["error"]
    assert bridge_of(app).store.counts() == {}
    ok = client.post("/hooks/batch", json=[zap(lead=n) for n in range(3)], headers=ZAP_HEADERS)
    assert ok.status_code == 202 and bridge_of(app).store.counts() == {"queued": 3}


def test_the_default_event_limit_is_100_per_request(make_app, mappings_dir):
    (mappings_dir / "batch.yaml").write_text(BATCH_MAPPING)
    app = make_app()
    response = app.test_client().post("/hooks/batch", json=[zap(lead=n) for n in range(101)],
                                      headers=ZAP_HEADERS)
    assert response.status_code == 413
    assert bridge_of(app).store.counts() == {}


def test_unknown_source_is_404(make_app):
    response = make_app().test_client().post("/hooks/nope", json={})
    assert response.status_code == 404
    assert "mappings/nope.yaml" in response.get_json()["fix"]


def test_body_over_the_limit_is_413(make_app):
    app = make_app(max_body_bytes=1000)
    response = app.test_client().post("/hooks/zapier", json=zap(pad="x" * 2000),
                                      headers=ZAP_HEADERS)
    assert response.status_code == 413
    assert bridge_of(app).store.counts() == {}


def test_unparseable_body_is_400(make_app):
    response = make_app().test_client().post(
        "/hooks/zapier", data=b"{not json", headers={**ZAP_HEADERS,
                                                     "Content-Type": "application/json"})
    assert response.status_code == 400
    assert "JSON" in response.get_json()["error"]


def test_store_down_and_spool_unwritable_answers_503_with_retry_after(make_app, monkeypatch,
                                                                      tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the spool folder should be")
    app = make_app(spool_dir=str(blocker / "spool"))
    store = bridge_of(app).store

    def broken(*_args, **_kwargs):
        raise StoreUnavailable("database is locked")

    monkeypatch.setattr(store, "add_events", broken)
    response = app.test_client().post("/hooks/zapier", json=zap(), headers=ZAP_HEADERS)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "30"


BATCH_MAPPING = """
format: json
auth: {scheme: token, header: X-Bridge-Token, secret: "${ZAPIER_SHARED_SECRET}"}
events: "@"
event_id: request_id
recall:
  type_campaign: predictive
  campaign_id: "4638"
  customer_id: {path: to_string(lead_id)}
  recall_telephone: {path: phone, phone: {region: CO, prefix: "9"}}
  recall_date: {path: callback_at, date: {timezone: America/Bogota}}
"""

FIELD_TOKEN_MAPPING = """
format: json
auth: {scheme: token, field: secret, secret: field-secret}
events: "@"
when: "length(tags) > `0`"
recall:
  type_campaign: predictive
  campaign_id: "1"
  customer_id: {path: to_string(id)}
  recall_telephone: {path: phone, phone: {region: CO, prefix: "9"}}
  recall_date: {path: at, date: {timezone: America/Bogota}, default: now}
"""


def test_secret_sent_as_a_body_field_is_not_stored(make_app, mappings_dir):
    (mappings_dir / "fieldtoken.yaml").write_text(FIELD_TOKEN_MAPPING)
    app = make_app()
    answer = app.test_client().post("/hooks/fieldtoken", json={
        "secret": "field-secret", "id": 3, "phone": "3001234567", "tags": ["x"]}).get_json()
    stored = bridge_of(app).store.get(answer["events"][0]["id"])
    assert stored["status"] == "queued"
    assert "secret" not in stored["raw"] and stored["raw"]["id"] == 3


def test_when_that_fails_on_an_event_keeps_it_as_invalid_with_the_reason(make_app,
                                                                         mappings_dir):
    (mappings_dir / "fieldtoken.yaml").write_text(FIELD_TOKEN_MAPPING)
    app = make_app()
    response = app.test_client().post("/hooks/fieldtoken", json={
        "secret": "field-secret", "id": 3, "phone": "3001234567", "tags": 5})
    assert response.status_code == 202
    event = response.get_json()["events"][0]
    assert event["result"] == "invalid" and "`when` failed" in event["reason"]
    assert bridge_of(app).store.get(event["id"])["raw"]["tags"] == 5


def test_events_path_that_fails_on_the_body_is_400_naming_it(make_app, mappings_dir):
    (mappings_dir / "fieldtoken.yaml").write_text(
        FIELD_TOKEN_MAPPING.replace('events: "@"', 'events: "sort(items)"'))
    app = make_app()
    response = app.test_client().post("/hooks/fieldtoken", json={
        "secret": "field-secret", "items": 7})
    assert response.status_code == 400
    assert "`events` path" in response.get_json()["error"]
    assert bridge_of(app).store.counts() == {}

