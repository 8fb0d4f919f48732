"""The admin API under /api/v1: bearer tokens and roles, the console's reads and actions as
JSON, every action audited as "api-admin", and answers that match the OpenAPI document."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import ROOT, bridge_of, drain
from tests.test_delivery import event, receive
from tests.test_receiver import zap

ADMIN = "admin-token-0123456789abcdef"
VIEWER = "viewer-token-0123456789abcdef"
PHONE = "93001234567"  # zap()'s "300 123 4567" as dialled
MASKED = "********567"
READS = [("GET", "/api/v1/events", None), ("GET", "/api/v1/events/{id}", None),
         ("GET", "/api/v1/overview", None), ("GET", "/api/v1/sources", None),
         ("GET", "/api/v1/audit", None),
         ("POST", "/api/v1/sources/zapier/try", {"body": zap()})]
ACTIONS = [("POST", "/api/v1/events/{id}/retry", {}),
           ("POST", "/api/v1/events/{id}/cancel", {"reason": "asked not to be called"}),
           ("POST", "/api/v1/events/{id}/reveal", None),
           ("POST", "/api/v1/bulk-retry", {"status": "invalid", "confirm": True})]


@pytest.fixture
def app(make_app):
    return make_app(admin_token=ADMIN, viewer_token=VIEWER)


def call(app, method, path, body=None, token=ADMIN, **kwargs):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return app.test_client().open(path, method=method, json=body, headers=headers, **kwargs)


def get(app, path, token=ADMIN, **query):
    return call(app, "GET", path, token=token, query_string=query)


def audit_of(app, event_id=None):
    return bridge_of(app).store.audit_log(event_id=event_id)


# --- access ------------------------------------------------------------------------------
def test_without_an_admin_token_there_is_no_api(make_app):
    app = make_app(viewer_token=VIEWER)
    assert get(app, "/api/v1/events", token=VIEWER).status_code == 404
    assert app.test_client().get("/api/v1/openapi.json").status_code == 404


@pytest.mark.parametrize(("method", "path", "body"), READS + ACTIONS)
def test_every_endpoint_wants_a_valid_bearer_token(app, method, path, body):
    [event_id] = receive(app, zap())
    path = path.format(id=event_id)
    missing = call(app, method, path, body, token=None)
    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"] == 'Bearer realm="recall-bridge"'
    assert missing.get_json()["code"] == 401
    wrong = call(app, method, path, body, token="not-a-token")
    assert wrong.status_code == 401
    assert 'error="invalid_token"' in wrong.headers["WWW-Authenticate"]
    basic = app.test_client().open(path, method=method, json=body,
                                   headers={"Authorization": f"Basic {ADMIN}"})
    assert basic.status_code == 401
    assert event(app, event_id)["status"] == "queued" and audit_of(app) == []


@pytest.mark.parametrize(("method", "path", "body"), READS)
def test_admin_and_viewer_both_read(app, method, path, body):
    [event_id] = receive(app, zap())
    for token in (ADMIN, VIEWER):
        answer = call(app, method, path.format(id=event_id), body, token=token)
        assert answer.status_code == 200, answer.get_json()
        assert answer.is_json


@pytest.mark.parametrize(("method", "path", "body"), ACTIONS)
def test_a_viewer_cannot_act(app, method, path, body):
    [event_id] = receive(app, zap(phone="12"))  # invalid: what a bulk retry would take
    answer = call(app, method, path.format(id=event_id), body, token=VIEWER)
    assert answer.status_code == 403
    assert "ADMIN_TOKEN" in answer.get_json()["message"]
    assert event(app, event_id)["status"] == "invalid" and audit_of(app) == []


def test_an_unknown_api_path_or_method_answers_json(app):
    missing = get(app, "/api/v1/nothing-here")
    assert missing.status_code == 404 and missing.get_json()["code"] == 404
    wrong = call(app, "DELETE", "/api/v1/events")
    assert wrong.status_code == 405 and "GET" in wrong.headers["Allow"]
    assert get(app, "/api/v1/events/0").status_code == 404  # ids start at 1
    assert get(app, f"/api/v1/events/{2**63}").status_code == 404


# --- reading events ----------------------------------------------------------------------
def test_events_come_newest_first_a_page_at_a_time(app):
    ids = receive(app, *[zap(lead=n) for n in range(7)])
    pages, before = [], None
    while True:
        query = {"limit": 3} | ({"before": before} if before else {})
        page = get(app, "/api/v1/events", **query).get_json()
        pages.append([e["id"] for e in page["events"]])
        before = page["next_before"]
        if before is None:
            break
    newest = sorted(ids, reverse=True)
    assert pages == [newest[:3], newest[3:6], newest[6:]]
    assert get(app, "/api/v1/events", limit=0).status_code == 422
    assert get(app, "/api/v1/events", limit=201).status_code == 422


def test_events_are_filtered_by_status_source_customer_and_time(app, clock):
    [first] = receive(app, zap(lead=1))
    clock.advance(hours=2)
    [second, bad] = receive(app, zap(lead=2), zap(lead=3, phone="12"))

    def ids(**query):
        answer = get(app, "/api/v1/events", **query)
        assert answer.status_code == 200, answer.get_json()
        return [e["id"] for e in answer.get_json()["events"]]

    assert ids(status="invalid") == [bad]
    assert ids(customer_id="2") == [second]
    assert ids(source="zapier") == [bad, second, first]
    assert ids(source="hubspot") == []
    middle = (clock() - timedelta(hours=1)).isoformat()
    assert ids(since=middle) == [bad, second]
    assert ids(until=middle) == [first]
    naive = (clock() - timedelta(hours=1)).astimezone(UTC).replace(tzinfo=None).isoformat()
    assert ids(until=naive) == [first]  # no offset: UTC
    assert get(app, "/api/v1/events", status="nope").status_code == 422
    assert get(app, "/api/v1/events", since="yesterday").status_code == 422


def test_a_phone_typed_as_a_person_would_finds_its_events_and_is_shown_masked(app):
    [wanted] = receive(app, zap(lead=1, phone="+57 301 555 1234"))
    receive(app, zap(lead=2))
    for typed in ("301 555 1234", "(301) 555-1234", "+57 3015551234", "93015551234"):
        found = get(app, "/api/v1/events", phone=typed).get_json()["events"]
        assert [e["id"] for e in found] == [wanted], typed
        assert found[0]["phone"] == "********234"
    assert get(app, "/api/v1/events", phone="no digits").get_json()["events"] == []
    listed = get(app, "/api/v1/events").get_data(as_text=True)
    assert "5551234" not in listed and "1234567" not in listed


def test_one_event_has_its_body_recall_attempts_and_audit_with_phones_masked(app, sandbox):
    [event_id] = receive(app, zap(lead=5, note="call 300 123 4567 after 5", mobile=3001234567))
    drain(app)
    answer = get(app, f"/api/v1/events/{event_id}")
    assert answer.status_code == 200
    shown = answer.get_json()
    assert shown["status"] == "delivered" and shown["customer_id"] == "5"
    assert shown["recall"]["recall_telephone"] == MASKED
    assert shown["recall"]["recall_date"] == "20301201103000"
    assert shown["raw"]["lead_id"] == 5 and shown["raw"]["phone"] == "*******567"
    assert shown["raw"]["note"] == "call *******567 after 5"
    assert shown["raw"]["mobile"] == "*******567"
    assert shown["raw"]["callback_at"] == "2030-12-01T10:30:00-05:00"  # a date is no phone
    assert [a["outcome"] for a in shown["attempts"]] == ["delivered"]
    assert shown["audit"] == []
    text = answer.get_data(as_text=True)
    assert "1234567" not in text
    missing = get(app, "/api/v1/events/999999")
    assert missing.status_code == 404 and missing.get_json()["message"] == "no event 999999"


def test_times_are_iso_8601_in_utc(app, clock):
    [event_id] = receive(app, zap())
    shown = get(app, f"/api/v1/events/{event_id}").get_json()
    created = datetime.fromisoformat(shown["created_at"])
    assert created.utcoffset() == timedelta(0)
    assert abs(created - clock()) < timedelta(seconds=1)


# --- actions -----------------------------------------------------------------------------
def test_cancel_needs_a_reason_and_is_audited(app, sandbox):
    [event_id] = receive(app, zap())
    path = f"/api/v1/events/{event_id}/cancel"
    assert call(app, "POST", path, {}).status_code == 422
    assert call(app, "POST", path, {"reason": "   "}).status_code == 422
    done = call(app, "POST", path, {"reason": "lead asked not to be called"})
    assert done.status_code == 200
    assert done.get_json() == {"id": event_id, "status": "cancelled",
                               "message": f"event {event_id} cancelled"}
    drain(app)
    assert sandbox.recalls() == []
    [entry] = audit_of(app, event_id)
    assert (entry["actor"], entry["action"], entry["detail"]) == (
        "api-admin", "cancel", "lead asked not to be called")
    again = call(app, "POST", path, {"reason": "again"})
    assert again.status_code == 409
    assert "only queued events can be cancelled" in again.get_json()["message"]
    assert call(app, "POST", "/api/v1/events/999999/cancel", {"reason": "x"}).status_code == 404


def test_retry_queues_a_failed_event_again_and_is_audited(app, sandbox):
    sandbox.configure(script=[400])
    [event_id] = receive(app, zap())
    drain(app)
    assert event(app, event_id)["status"] == "failed"
    path = f"/api/v1/events/{event_id}/retry"
    done = call(app, "POST", path)  # no body at all: `at` is optional
    assert done.status_code == 200, done.get_json()
    assert done.get_json()["status"] == "queued"
    [entry] = audit_of(app, event_id)
    assert (entry["actor"], entry["action"]) == ("api-admin", "retry")
    drain(app)
    assert event(app, event_id)["status"] == "delivered"
    refused = call(app, "POST", path, {})
    assert refused.status_code == 409 and "delivered" in refused.get_json()["message"]
    assert call(app, "POST", "/api/v1/events/999999/retry", {}).status_code == 404


def test_retry_at_a_time_reschedules_the_callback(app, sandbox, clock):
    sandbox.configure(script=[400])
    [event_id] = receive(app, zap())
    drain(app)
    later = (clock() + timedelta(days=2)).isoformat()
    done = call(app, "POST", f"/api/v1/events/{event_id}/retry", {"at": later})
    assert done.status_code == 200 and "callback time" in done.get_json()["message"]
    past = call(app, "POST", f"/api/v1/events/{event_id}/retry", {"at": "2001-01-01T00:00"})
    assert past.status_code == 409


def test_reveal_shows_the_phone_in_full_and_is_audited(app):
    [event_id] = receive(app, zap())
    shown = call(app, "POST", f"/api/v1/events/{event_id}/reveal")
    assert shown.status_code == 200
    assert shown.get_json() == {"id": event_id, "phone": PHONE}
    [entry] = audit_of(app, event_id)
    assert (entry["actor"], entry["action"]) == ("api-admin", "reveal")
    assert call(app, "POST", "/api/v1/events/999999/reveal").status_code == 404


def test_bulk_retry_previews_a_count_and_acts_only_when_confirmed(app):
    receive(app, *[zap(lead=n, phone="12") for n in range(3)], zap(lead=9))
    body = {"status": "invalid", "source": "zapier"}
    preview = call(app, "POST", "/api/v1/bulk-retry", body)
    assert preview.status_code == 200
    assert preview.get_json() == {"matched": 3, "confirmed": False}
    assert audit_of(app) == []
    done = call(app, "POST", "/api/v1/bulk-retry", {**body, "confirm": True}).get_json()
    assert (done["matched"], done["confirmed"], done["queued"], done["refused"]) == (
        3, True, 0, 3)  # still invalid with today's mapping
    assert "still invalid" in done["reasons"][0]
    entry, *retries = audit_of(app)  # each retry that left its event invalid, then the bulk
    assert (entry["actor"], entry["action"]) == ("api-admin", "bulk-retry")
    assert [e["action"] for e in retries] == ["retry"] * 3
    assert call(app, "POST", "/api/v1/bulk-retry", {"source": "zapier"}).status_code == 422
    assert call(app, "POST", "/api/v1/bulk-retry", {"status": "queued"}).status_code == 422
    since = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    later = call(app, "POST", "/api/v1/bulk-retry", {**body, "since": since}).get_json()
    assert later["matched"] == 0


def test_a_body_that_is_not_json_gets_400(app):
    [event_id] = receive(app, zap())
    answer = app.test_client().post(f"/api/v1/events/{event_id}/cancel", data="{nope",
                                    headers={"Authorization": f"Bearer {ADMIN}",
                                             "Content-Type": "application/json"})
    assert answer.status_code == 400 and answer.get_json()["code"] == 400


def test_the_audit_log_lists_what_operators_did_newest_first(app):
    [one, two] = receive(app, zap(lead=1), zap(lead=2))
    call(app, "POST", f"/api/v1/events/{one}/reveal")
    call(app, "POST", f"/api/v1/events/{two}/cancel", {"reason": "duplicate lead"})
    entries = get(app, "/api/v1/audit").get_json()["entries"]
    assert [(e["action"], e["event_id"], e["actor"]) for e in entries] == [
        ("cancel", two, "api-admin"), ("reveal", one, "api-admin")]
    assert [e["action"] for e in get(app, "/api/v1/audit", event_id=one).get_json()[
        "entries"]] == ["reveal"]
    assert len(get(app, "/api/v1/audit", limit=1).get_json()["entries"]) == 1


# --- the bridge --------------------------------------------------------------------------
def test_overview_counts_tokens_and_hours(app, sandbox, clock):
    receive(app, zap(lead=1), zap(lead=2), zap(lead=3, phone="12"))
    drain(app)
    receive(app, zap(lead=4))
    shown = get(app, "/api/v1/overview").get_json()
    [zapier] = [s for s in shown["sources"] if s["source"] == "zapier"]
    assert zapier["week"] == {"delivered": 2, "invalid": 1, "queued": 1}
    key = bridge_of(app).sources["zapier"].target.key
    [token] = [t for t in shown["tokens"] if t["token"] == key]
    assert token["queued"] == 1 and token["in_flight"] == 0 and token["hold"] is None
    assert token["max_in_flight"] == 2 and token["quota_limit"] is None
    assert "zapier" in token["sources"] and token["oldest_due_age_seconds"] == 0
    assert len(shown["hourly"]) == 48
    assert sum(h["received"] for h in shown["hourly"]) == 4
    assert sum(h["delivered"] for h in shown["hourly"]) == 2
    assert datetime.fromisoformat(shown["hourly"][-1]["hour"]) <= clock()


def test_overview_shows_a_held_token(app, clock):
    key = bridge_of(app).sources["zapier"].target.key
    now = clock().timestamp()
    bridge_of(app).store.hold(key, "quota", "daily quota used up", now + 600, now, 10)
    [token] = [t for t in get(app, "/api/v1/overview").get_json()["tokens"]
               if t["token"] == key]
    assert token["hold"]["kind"] == "quota" and token["hold"]["active"] is True


def test_sources_list_urls_format_auth_token_and_hours(app):
    shown = {s["name"]: s for s in get(app, "/api/v1/sources").get_json()["sources"]}
    assert set(shown) == set(bridge_of(app).sources)
    zapier = shown["zapier"]
    assert zapier["url"] == "http://localhost/hooks/zapier"
    assert zapier["capture_url"] == "http://localhost/hooks/zapier/test"
    assert (zapier["format"], zapier["auth"]) == ("json", "token")
    assert zapier["token"] == bridge_of(app).sources["zapier"].target.key
    assert zapier["timezone"] == "America/Bogota"
    assert "zap-secret" not in json.dumps(shown)
    assert shown["hubspot"]["lookup"] is not None


def test_sources_use_public_url(make_app):
    app = make_app(admin_token=ADMIN, public_url="https://bridge.example.com/")
    [zapier] = [s for s in get(app, "/api/v1/sources").get_json()["sources"]
                if s["name"] == "zapier"]
    assert zapier["url"] == "https://bridge.example.com/hooks/zapier"


def test_trying_a_sample_judges_it_and_stores_nothing(app, sandbox):
    sample = json.loads((ROOT / "mappings/samples/zapier.json").read_text())
    answer = call(app, "POST", "/api/v1/sources/zapier/try", {"body": sample})
    assert answer.status_code == 200, answer.get_json()
    shown = answer.get_json()
    [judged] = shown["events"]
    assert (judged["status"], judged["dedup_key"], judged["errors"]) == (
        "queued", "zap-7f3a9c", {})
    assert judged["recall"] == {"type_campaign": "predictive", "campaign_id": "4638",
                                "customer_id": "98765", "recall_telephone": MASKED,
                                "recall_date": "20301201103000"}
    assert judged["plan"]["action"] == "send"
    assert judged["plan"]["recall_date"] == "20301201103000"
    assert PHONE not in answer.get_data(as_text=True)
    bad = call(app, "POST", "/api/v1/sources/zapier/try",
               {"body": {"lead_id": 5, "phone": "300 12", "callback_at": "someday"}})
    [judged] = bad.get_json()["events"]
    assert judged["status"] == "invalid" and judged["recall"] is None
    assert sorted(judged["errors"]) == ["recall_date", "recall_telephone"]
    assert "30012" not in bad.get_data(as_text=True)
    assert bridge_of(app).store.counts() == {}  # nothing stored
    drain(app)
    assert sandbox.recalls() == []  # nothing sent
    assert audit_of(app) == []


def test_trying_a_raw_form_body_uses_the_sources_format(app):
    raw = (ROOT / "mappings/samples/zoho.txt").read_text()
    answer = call(app, "POST", "/api/v1/sources/zoho/try", {"body": raw})
    assert answer.status_code == 200, answer.get_json()
    [judged] = answer.get_json()["events"]
    assert judged["status"] == "queued"
    assert judged["recall"]["recall_telephone"].endswith("567")
    assert bridge_of(app).store.counts() == {}


def test_trying_an_unreadable_or_unknown_sample_says_why(app):
    unreadable = call(app, "POST", "/api/v1/sources/zapier/try", {"body": "{not json"})
    assert unreadable.status_code == 200
    assert unreadable.get_json()["error"].startswith("unreadable json body")
    assert unreadable.get_json()["events"] == []
    assert call(app, "POST", "/api/v1/sources/zapier/try", {}).status_code == 422
    unknown = call(app, "POST", "/api/v1/sources/nope/try", {"body": {}})
    assert unknown.status_code == 404 and "zapier" in unknown.get_json()["message"]
    empty = call(app, "POST", "/api/v1/sources/zapier/try", {"body": []}).get_json()
    assert empty["events"] == [] or empty["note"]


# --- the document --------------------------------------------------------------------------
def api_schema(app):
    import schemathesis

    return schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)


def test_the_openapi_document_is_valid_openapi_3(app):
    answer = app.test_client().get("/api/v1/openapi.json")  # public: it holds no data
    assert answer.status_code == 200
    document = answer.get_json()
    assert document["openapi"].startswith("3.")
    assert document["info"]["title"] == "Recall Bridge admin API"
    schema = api_schema(app)
    schema.validate()  # against the OpenAPI 3.0 meta-schema; raises if invalid
    operations = {(op.ok().method.upper(), op.ok().path.removeprefix("/api/v1"))
                  for op in schema.get_all_operations()}
    assert operations == {
        ("GET", "/events"), ("GET", "/events/{event_id}"),
        ("POST", "/events/{event_id}/retry"), ("POST", "/events/{event_id}/cancel"),
        ("POST", "/events/{event_id}/reveal"), ("POST", "/bulk-retry"), ("GET", "/audit"),
        ("GET", "/overview"), ("GET", "/sources"), ("POST", "/sources/{name}/try"),
        ("POST", "/writebacks/retry")}
    for path in document["paths"].values():
        for operation in path.values():
            if isinstance(operation, dict) and "responses" in operation:
                assert {"200", "401", "default"} <= set(operation["responses"])
    assert "swagger" not in json.dumps(document).lower()


@pytest.mark.slow
def test_every_operation_answers_as_its_document_says(app, sandbox):
    """Schemathesis generates requests from the document, valid ones and invalid ones, and
    checks each answer: never a server error, the body matches the schema documented for its
    status, and the status is documented. Half the cases aim at an existing event or source,
    so that the actions' answers are checked too, not only their 404s."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
    from schemathesis import GenerationMode
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        response_schema_conformance,
        status_code_conformance,
    )

    sandbox.configure(script=[400])
    ids = receive(app, zap(lead=1), zap(lead=2, phone="12"), zap(lead=3), zap(lead=4))
    drain(app)
    assert {event(app, i)["status"] for i in ids} == {"failed", "invalid", "delivered"}
    receive(app, zap(lead=5))  # and one queued
    schema = api_schema(app)
    checks = [not_a_server_error, response_schema_conformance, status_code_conformance]
    known = {"event_id": st.sampled_from([*ids, ids[-1] + 1]), "name": st.just("zapier")}
    started = time.monotonic()
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode), data=st.data())
            @settings(max_examples=EXAMPLES, deadline=None, database=None,
                      suppress_health_check=list(HealthCheck))
            def check(case, data):
                if case.path_parameters and data.draw(st.booleans()):
                    case.path_parameters = {name: data.draw(known[name])
                                            for name in case.path_parameters}
                case.call_and_validate(headers={"Authorization": f"Bearer {ADMIN}"},
                                       checks=checks)

            check()
    assert time.monotonic() - started < 60


EXAMPLES = 50  # per operation and mode: about 10 s on each database
