"""One intake path: the hook, the capture URL, `flask mappings try`, the console's playground
and the API's try take a body through the same function, so they judge it alike, refuse it
alike and preview the same callback time the worker then sends."""

from __future__ import annotations

import json
import logging
from datetime import timedelta

from tests.conftest import bridge_of, drain
from tests.test_api import ADMIN, VIEWER, call
from tests.test_cli import cli
from tests.test_console import post, signed_in, text
from tests.test_metrics import RECEIVED, scrape, value
from tests.test_receiver import ZAP_HEADERS, zap
from webhooks.lifecycle import Received
from webhooks.recall import mask_recall


def _app(make_app):
    return make_app(admin_token=ADMIN, viewer_token=VIEWER)


def _pretty(recall_date: str) -> str:
    d = recall_date
    return f"{d[:4]}-{d[4:6]}-{d[6:8]} {d[8:10]}:{d[10:12]}:{d[12:14]}"


def test_every_try_judges_a_body_as_the_hook_stores_it_and_previews_what_the_worker_sends(
        make_app, sandbox, clock, tmp_path):
    app = _app(make_app)
    soon = (clock() + timedelta(minutes=10)).isoformat()  # inside wolkvox's 30-minute lead
    body = [zap(lead=1, callback_at=soon), zap(lead=2, phone="12")]
    raw = json.dumps(body)

    tried = call(app, "POST", "/api/v1/sources/zapier/try", {"body": raw}).get_json()
    queued, invalid = tried["events"]
    assert (queued["status"], invalid["status"]) == ("queued", "invalid")
    sent = queued["plan"]["recall_date"]
    assert queued["plan"]["action"] == "send" and sent > queued["recall"]["recall_date"]

    path = tmp_path / "body.json"
    path.write_text(raw)
    printed = cli(app, "mappings", "try", "zapier", str(path)).output
    assert f"event 0: ok  id={queued['dedup_key']}" in printed
    assert f"event 1: INVALID  id={invalid['dedup_key']}" in printed
    assert f"  sent: {sent}, moved from " in printed

    page = text(post(signed_in(app), "/console/sources/zapier/try", {"body": raw}))
    assert "would be queued" in page and "would be invalid" in page
    assert f"the lead would be called at {_pretty(sent)}, moved from" in page

    answer = app.test_client().post("/hooks/zapier", json=body, headers=ZAP_HEADERS)
    stored = answer.get_json()["events"]
    assert [e["result"] for e in stored] == [Received.ACCEPTED, Received.INVALID]
    assert stored[1]["reason"] == invalid["reason"]  # the same words, from the same judge
    store = bridge_of(app).store
    assert [store.get(e["id"])["dedup_key"] for e in stored] == [queued["dedup_key"],
                                                                 invalid["dedup_key"]]
    assert mask_recall(store.get(stored[0]["id"])["recall"]) == queued["recall"]
    drain(app)
    [recall] = sandbox.recalls()
    assert recall["recall_date"] == sent  # the preview is what the worker sent


def test_a_body_the_hook_refuses_is_refused_with_the_same_words_by_every_try(make_app,
                                                                            tmp_path):
    app = _app(make_app)
    for raw, words in (("{not json", "unreadable json body: body is not valid JSON"),
                       ('"just a string"', None)):
        hook = app.test_client().post("/hooks/zapier", data=raw, headers={
            **ZAP_HEADERS, "Content-Type": "application/json"})
        tried = call(app, "POST", "/api/v1/sources/zapier/try", {"body": raw}).get_json()
        if words is None:  # not a refusal: a body the mapping makes nothing valid of
            assert hook.status_code == 202 and tried["error"] is None
            continue
        assert hook.status_code == 400 and hook.get_json()["error"].startswith(words)
        assert tried["error"] == hook.get_json()["error"]
        path = tmp_path / "bad.json"
        path.write_text(raw)
        result = cli(app, "mappings", "try", "zapier", str(path))
        assert result.exit_code != 0 and "body is not valid JSON" in result.output


def test_salesforce_answers_a_refusal_with_a_soap_fault_and_json_sources_with_json(make_app):
    app = _app(make_app)
    bad = b"<not xml"
    soap = app.test_client().post("/hooks/salesforce?token=sf-url-token", data=bad,
                                  headers={"Content-Type": "text/xml"})
    json_source = app.test_client().post("/hooks/zapier", data=bad, headers={
        **ZAP_HEADERS, "Content-Type": "application/json"})
    assert json_source.status_code == 400 and json_source.is_json
    assert soap.status_code == 400 and soap.content_type.startswith("text/xml")
    assert "soapenv:Client" in soap.get_data(as_text=True) and not soap.is_json


def test_a_handshake_is_answered_by_the_hook_and_named_by_every_try(make_app, tmp_path):
    app = _app(make_app)
    challenge = {"challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}
    hook = app.test_client().post("/hooks/monday?token=monday-token", json=challenge)
    assert hook.status_code == 200 and hook.get_json() == challenge
    assert bridge_of(app).store.counts() == {}

    tried = call(app, "POST", "/api/v1/sources/monday/try",
                 {"body": json.dumps(challenge)}).get_json()
    assert tried["events"] == [] and tried["note"].startswith("the CRM's handshake")
    assert challenge["challenge"] in tried["note"]
    path = tmp_path / "challenge.json"
    path.write_text(json.dumps(challenge))
    printed = cli(app, "mappings", "try", "monday", str(path)).output
    assert printed.startswith("the CRM's handshake: the hook answers it with ")
    assert "no events" not in printed


def test_the_capture_url_judges_as_the_hook_and_counts_results_by_the_enums_names(make_app,
                                                                                 caplog):
    app = _app(make_app)
    before = value(scrape(app, ADMIN), RECEIVED, source="zapier", result="test")
    with caplog.at_level(logging.INFO, logger="webhooks.intake.receiver"):
        answer = app.test_client().post("/hooks/zapier/test", headers=ZAP_HEADERS,
                                        json=[zap(lead=1), zap(lead=2, phone="12")]).get_json()
    assert answer["test"] is True and answer["counts"] == {Received.TEST.value: 2}
    reasons = [e["reason"] for e in answer["events"]]
    tried = call(app, "POST", "/api/v1/sources/zapier/try",
                 {"body": json.dumps([zap(lead=1), zap(lead=2, phone="12")])}).get_json()
    assert reasons[0] == "test: would be queued"
    assert reasons[1] == f"test: would be invalid: {tried['events'][1]['reason']}"
    assert value(scrape(app, ADMIN), RECEIVED, source="zapier", result="test") == before + 2
    assert "hook zapier: {'test': 2}" in caplog.text  # the log line names results as before
