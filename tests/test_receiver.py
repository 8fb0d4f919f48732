"""POST /hooks/<source>: authenticity, parsing, mapping outcomes, dedup, and the answer."""

from __future__ import annotations

import hashlib
import json

from sqlalchemy.exc import OperationalError

from tests.conftest import bridge_of

ZAP_HEADERS = {"X-Bridge-Token": "zap-secret"}


def zap(lead: int = 1, phone: str = "300 123 4567", **extra: object) -> dict:
    return {"request_id": f"req-{lead}", "lead_id": lead, "phone": phone,
            "callback_at": "2030-12-01T10:30:00-05:00", **extra}


def hubspot_v1(secret: str, body: bytes) -> dict[str, str]:
    digest = hashlib.sha256(secret.encode() + body).hexdigest()
    return {"X-HubSpot-Signature": digest, "X-HubSpot-Signature-Version": "v1",
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


def test_tampered_hubspot_body_is_refused_and_nothing_is_stored(make_app):
    app = make_app()
    body = (b'{"vid": 5, "properties": {"phone": {"value": "3001234567"}, '
            b'"callback_requested": {"value": "true"}}}')
    headers = hubspot_v1("hubspot-secret", body)
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


def test_event_the_mapping_does_not_want_is_ignored_not_stored(make_app):
    app = make_app()
    body = json.dumps({"vid": 7, "properties": {"callback_requested": {"value": "false"}}})
    response = app.test_client().post(
        "/hooks/hubspot-workflow", data=body,
        headers=hubspot_v1("hubspot-secret", body.encode()))
    assert response.status_code == 202
    assert response.get_json()["events"][0]["result"] == "ignored"
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


def test_store_down_answers_503_with_retry_after(make_app, monkeypatch):
    app = make_app()
    store = bridge_of(app).store

    def broken(*_args, **_kwargs):
        raise OperationalError("INSERT", {}, Exception("database is locked"))

    monkeypatch.setattr(store.engine, "begin", broken)
    response = app.test_client().post("/hooks/zapier", json=zap(), headers=ZAP_HEADERS)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "30"


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

