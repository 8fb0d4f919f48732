"""Write-backs: the bridge tells the CRM what became of each callback (a note when wolkvox
took the recall, when it failed or expired, and how the call went), as its own stored work:
retried, held and failed on its own, never changing the event, never blocking a recall.
Real HTTP to the sandbox wolkvox and to HubSpot's look-alike (which checks the documented
note shape), SQLite and PostgreSQL."""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from tests.conftest import ENVIRON, ROOT, bridge_of
from tests.hubspot_lookalike import HubSpotLookalike
from tests.test_call_results import dial
from tests.test_receiver import ZAP_HEADERS, hubspot_v3, zap
from webhooks.mapping.files import load_source
from webhooks.mapping.writeback import WritebackTemplateError, context
from webhooks.settings import ConfigError, Settings

BOGOTA = ZoneInfo("America/Bogota")
START = datetime(2026, 12, 1, 10, 0, tzinfo=BOGOTA)  # a Tuesday morning
TOKEN = ENVIRON["HUBSPOT_PRIVATE_APP_TOKEN"]
NOTE_MAPPING = (ROOT / "mappings/zapier.yaml").read_text(encoding="utf-8") + """
rate: ${NOTES_RATE:-1000}
writeback:
  - name: CRM note
    on: [scheduled, failed, expired, called]
    url: ${NOTES_URL}/crm/v3/objects/notes
    headers: {Authorization: "Bearer ${NOTES_TOKEN}"}
    language: ${NOTES_LANGUAGE:-es}
    json:
      properties:
        hs_timestamp: "{{ at.epoch_ms }}"
        hs_note_body: "%s"
      associations:
        - to: {id: "{{ event.lead_id }}"}
          types: [{associationCategory: HUBSPOT_DEFINED, associationTypeId: 202}]
"""


@pytest.fixture
def crm(hubspot_server: HubSpotLookalike) -> HubSpotLookalike:
    hubspot_server.reset()
    for lead in range(1, 30):
        hubspot_server.add_contact(lead)
    return hubspot_server


def notes_app(make_app, mappings_dir: Path, clock, crm: HubSpotLookalike, body: str = "{{ note }}",
              **overrides):
    clock.now = START
    (mappings_dir / "zapnote.yaml").write_text(NOTE_MAPPING % body, encoding="utf-8")
    environ = {"NOTES_URL": crm.url, "NOTES_TOKEN": TOKEN, **overrides.pop("environ", {})}
    app = make_app(environ=environ, wolkvox_min_lead=0.0, **overrides)
    from webhooks.delivery.worker import Worker

    b = bridge_of(app)
    return app, b, Worker(b.store, b.sources, b.settings, name="test")


def post_note(app, *bodies: dict) -> list[int]:
    client = app.test_client()
    ids = []
    for body in bodies:
        answer = client.post("/hooks/zapnote", json=body, headers=ZAP_HEADERS).get_json()
        ids += [e["id"] for e in answer["events"]]
    return ids


def run(worker, passes: int = 20) -> None:
    """Deliver, then send the write-backs, until nothing is left to do now."""
    for _ in range(passes):
        if not (worker.run_once() | worker.writebacks.run_once()):
            return


def writebacks(b, event_id: int) -> list[dict]:
    return b.store.writebacks_of(event_id)


# --- the story -------------------------------------------------------------------------------
def test_a_hubspot_contact_gets_a_note_when_scheduled_and_another_when_called(
        make_app, mappings_dir, clock, hubspot_server, sandbox):
    """The shipped hubspot-workflow mapping, as a CRM admin runs it: two notes on the contact,
    in Spanish, in HubSpot's documented shape."""
    hubspot_server.reset()
    hubspot_server.add_contact(123445)
    clock.now = START
    app = make_app(environ={"HUBSPOT_API_URL": hubspot_server.url}, wolkvox_min_lead=0.0,
                   call_results_interval=60.0)
    b = bridge_of(app)
    from webhooks.delivery.worker import Worker
    worker = Worker(b.store, b.sources, b.settings, name="test")
    body = json.loads((ROOT / "mappings/samples/hubspot-workflow.json").read_text())
    body["properties"]["callback_at"]["value"] = str(int((START + timedelta(minutes=40))
                                                         .timestamp() * 1000))
    raw = json.dumps(body).encode()
    answer = app.test_client().post(
        "/hooks/hubspot-workflow", data=raw,
        headers=hubspot_v3(ENVIRON["HUBSPOT_CLIENT_SECRET"], raw, clock))
    assert answer.status_code == 202, answer.get_data(as_text=True)
    [event_id] = [e["id"] for e in answer.get_json()["events"]]
    run(worker)
    assert b.store.get(event_id)["status"] == "delivered"
    [scheduled] = hubspot_server.notes
    assert scheduled["contact"] == "123445"
    assert scheduled["body"] == ("Llamada programada para el martes 1 de diciembre, 10:40 "
                                 "(hora de Bogotá).")
    assert scheduled["timestamp"] == "2026-12-01T15:00:00Z"  # the moment it was scheduled, UTC
    # the dialer calls; the report says so; the second note names the result in words
    clock.advance(minutes=45)
    dial(sandbox, "123445", "ANSWER", at=START + timedelta(minutes=41))
    run(worker)
    assert b.store.get(event_id)["call_result"] == "ANSWER"
    called = hubspot_server.notes[1]
    assert called["body"] == ("Llamada del martes 1 de diciembre, 10:41 (hora de Bogotá): "
                              "contestó (ANSWER).")
    rows = writebacks(b, event_id)
    assert [(w["moment"], w["status"], w["http_status"]) for w in rows] == [
        ("scheduled", "done", 201), ("called", "done", 201)]
    assert rows[0]["answer"] == f"id {scheduled['id']}"
    assert all(call["authorization"] == f"Bearer {TOKEN}" for call in hubspot_server.calls)


def test_a_shipped_write_back_is_off_until_its_credentials_are_set(tmp_path):
    env = {"HUBSPOT_CLIENT_SECRET": "s", "WOLKVOX_CAMPAIGN_ID": "1"}
    settings = Settings(wolkvox_token="t", wolkvox_server="1", environ=env)
    off = load_source(ROOT / "mappings/hubspot-workflow.yaml", settings)
    assert [w.off for w in off.writebacks] == ["HUBSPOT_PRIVATE_APP_TOKEN not set"]
    assert off.notices("scheduled") == ()
    on = load_source(ROOT / "mappings/hubspot-workflow.yaml",
                     Settings(wolkvox_token="t", wolkvox_server="1",
                              environ={**env, "HUBSPOT_PRIVATE_APP_TOKEN": "x"}))
    assert on.notices("scheduled") == on.notices("called") == ("HubSpot note",)


def test_an_outcome_of_a_source_with_its_write_back_off_queues_nothing(
        make_app, mappings_dir, clock, crm):
    app, b, worker = notes_app(make_app, mappings_dir, clock, crm, environ={"NOTES_TOKEN": ""})
    [event_id] = post_note(app, zap(1))
    run(worker)
    assert b.store.get(event_id)["status"] == "delivered"
    assert writebacks(b, event_id) == [] and crm.notes == []


def test_a_failed_recall_and_an_expired_one_are_told_with_their_reason(
        make_app, mappings_dir, clock, crm, sandbox):
    app, b, worker = notes_app(make_app, mappings_dir, clock, crm, expire_after=3600.0)
    sandbox.configure(script=[400])  # wolkvox refuses the recall itself
    [failed] = post_note(app, zap(1))
    run(worker)
    [expired] = post_note(app, zap(2, callback_at=(START - timedelta(hours=3)).isoformat()))
    run(worker)
    assert b.store.get(failed)["status"] == "failed"
    assert b.store.get(expired)["status"] == "expired"
    bodies = {note["contact"]: note["body"] for note in crm.notes}
    assert bodies["1"].startswith("No se pudo programar la llamada: ")
    assert bodies["2"].startswith("La llamada venció sin programarse: vencido: ")


def test_the_note_is_written_in_english_when_the_mapping_says_so(make_app, mappings_dir, clock,
                                                                  crm):
    app, b, worker = notes_app(make_app, mappings_dir, clock, crm,
                               environ={"NOTES_LANGUAGE": "en"})
    post_note(app, zap(1, callback_at=(START + timedelta(hours=1)).isoformat()))
    run(worker)
    assert [n["body"] for n in crm.notes] == [
        "Call scheduled for Tuesday, December 1, 11:00 (Bogotá time)."]


def test_calling_hours_that_move_the_recall_are_said_in_the_note(make_app, mappings_dir, clock,
                                                                  crm):
    app, b, worker = notes_app(make_app, mappings_dir, clock, crm, calling_hours="co-ley-2300")
    # Tuesday 21:00 is outside Ley 2300's hours: moved to Wednesday's opening
    post_note(app, zap(1, callback_at=START.replace(hour=21).isoformat()))
    run(worker)
    [note] = crm.notes
    assert note["body"].startswith("Llamada programada para el miércoles 2 de diciembre, 07:")
    assert note["body"].endswith("(hora de Bogotá); se movió por el horario de llamadas de la "
                                 "Ley 2300.")


# --- how a CRM's answer is met -------------------------------------------------------------
def test_refused_credentials_hold_the_sources_write_backs_and_a_probe_lifts_the_hold(
        make_app, mappings_dir, clock, crm):
    app, b, worker = notes_app(make_app, mappings_dir, clock, crm,
                               environ={"NOTES_TOKEN": "revoked"})
    ids = post_note(app, zap(1), zap(2))
    run(worker)
    assert [b.store.get(i)["status"] for i in ids] == ["delivered", "delivered"]
    assert len([c for c in crm.calls if "note" in c]) == 1  # the second one waits: no call
    hold = b.store.holds()["writeback:zapnote"]
    assert hold["kind"] == "writeback" and "refused the credentials (HTTP 401)" in hold["reason"]
    rows = [w for i in ids for w in writebacks(b, i)]
    assert {w["status"] for w in rows} == {"queued"}
    assert all(w["attempts"] == 0 and "held: " in w["reason"] for w in rows)
    # the token is fixed in HubSpot; at the next probe the write-backs go out
    crm.token = "revoked"
    clock.advance(seconds=b.settings.token_probe_interval + 1)
    run(worker)
    crm.token = TOKEN
    assert "writeback:zapnote" not in b.store.holds()
    assert [w["status"] for i in ids for w in writebacks(b, i)] == ["done", "done"]


def test_passing_faults_are_retried_and_429_waits_for_its_retry_after(make_app, mappings_dir,
                                                                       clock, crm):
    app, b, worker = notes_app(make_app, mappings_dir, clock, crm)
    crm.failures = [503, 429]
    [event_id] = post_note(app, zap(1))
    run(worker)
    [row] = writebacks(b, event_id)
    assert (row["status"], row["attempts"], row["http_status"]) == ("queued", 1, 503)
    assert "retry in" in row["reason"]
    clock.advance(seconds=15)  # past the first backoff (10 s +-20 %)
    run(worker)
    [row] = writebacks(b, event_id)
    assert (row["status"], row["http_status"]) == ("queued", 429)
    assert row["next_attempt_at"] >= clock().timestamp() + 1 - 0.01
    clock.advance(seconds=40)
    run(worker)
    [row] = writebacks(b, event_id)
    assert (row["status"], row["attempts"]) == ("done", 2)
    assert b.store.get(event_id)["status"] == "delivered"  # never changed by its write-back


def test_a_redirect_an_html_page_and_a_huge_answer_are_each_met_without_harm(
        make_app, mappings_dir, clock, crm):
    app, b, worker = notes_app(make_app, mappings_dir, clock, crm)
    crm.odd = ["redirect", "html", "huge"]
    moved, proxied, huge = post_note(app, zap(1), zap(2), zap(3))
    run(worker)
    [row] = writebacks(b, moved)  # not followed: it goes only where its mapping says
    assert (row["status"], row["http_status"]) == ("failed", 301)
    assert "redirect (HTTP 301) to elsewhere.example" in row["reason"]
    [row] = writebacks(b, proxied)  # a proxy's page: a passing fault
    assert (row["status"], row["http_status"], row["attempts"]) == ("queued", 502, 1)
    [row] = writebacks(b, huge)  # 2xx: taken, its answer read up to the limit only
    assert (row["status"], row["http_status"], row["answer"]) == ("done", 201, "")
    assert all(call["note"] for call in crm.calls if "note" in call)
    assert [b.store.get(i)["status"] for i in (moved, proxied, huge)] == ["delivered"] * 3


def test_a_crm_refusing_the_note_fails_it_with_the_crms_message(make_app, mappings_dir, clock,
                                                                crm):
    app, b, worker = notes_app(make_app, mappings_dir, clock, crm)
    crm.contacts.pop("1")  # HubSpot: association to an unknown object
    [event_id] = post_note(app, zap(1))
    run(worker)
    [row] = writebacks(b, event_id)
    assert (row["status"], row["http_status"]) == ("failed", 400)
    assert "association to an unknown object" in row["reason"]
    assert b.store.get(event_id)["status"] == "delivered"


def test_a_template_failing_at_run_time_fails_its_write_back_not_the_event(
        make_app, mappings_dir, clock, crm):
    app, b, worker = notes_app(make_app, mappings_dir, clock, crm,
                               body="{{ event.deal.owner }}: {{ note }}")
    [event_id] = post_note(app, zap(1))
    run(worker)
    assert b.store.get(event_id)["status"] == "delivered"
    [row] = writebacks(b, event_id)
    assert row["status"] == "failed" and "its template failed" in row["reason"]
    assert "deal" in row["reason"] and crm.notes == []


def test_a_hung_crm_blocks_neither_recalls_nor_other_write_backs(make_app, mappings_dir, clock,
                                                                  crm):
    """One write-back thread waits out the hung CRM's deadline; recalls go on, and so does
    another source's write-back, sent by the other thread."""
    clock.now = START
    hung = HubSpotLookalike(TOKEN).start()
    try:
        hung.add_contact(1)
        hung.hang = 3.0
        (mappings_dir / "zapslow.yaml").write_text(
            (NOTE_MAPPING % "{{ note }}").replace("${NOTES_URL}", hung.url)
            .replace("X-Bridge-Token", "X-Slow-Token"), encoding="utf-8")
        app, b, worker = notes_app(make_app, mappings_dir, clock, crm, writeback_timeout=1.0)
        slow = app.test_client().post("/hooks/zapslow", json=zap(1),
                                      headers={"X-Slow-Token": "zap-secret"}).get_json()
        run(worker)
        worker.start(threads=1)
        try:
            time.sleep(0.2)  # a write-back thread is now inside the hung call
            started = time.monotonic()
            [fast] = post_note(app, zap(2))
            while not crm.notes and time.monotonic() - started < 5:
                time.sleep(0.02)
            assert crm.notes and time.monotonic() - started < 1.0
            assert b.store.get(fast)["status"] == "delivered"
        finally:
            worker.stop()
        [row] = writebacks(b, slow["events"][0]["id"])
        assert row["status"] == "queued"
        assert "cut short" in row["reason"] or "transport error" in row["reason"]
    finally:
        hung.stop()


# --- the mapping ---------------------------------------------------------------------------
def _load(tmp_path: Path, block: str):
    path = tmp_path / "crm.yaml"
    path.write_text((ROOT / "mappings/zapier.yaml").read_text() + block, encoding="utf-8")
    return load_source(path, Settings(wolkvox_token="t", wolkvox_server="1", environ=ENVIRON))


@pytest.mark.parametrize(("block", "said"), [
    ("writeback:\n  - on: sent\n    url: https://x.example/n\n    json: {a: 1}\n",
     "on: must be one or more of scheduled, failed, expired, called"),
    ("writeback:\n  - on: called\n    url: https://x.example/n\n    json: {a: '{{ note'}\n",
     "writeback[0].json: '{{ note': "),
    ("writeback:\n  - on: called\n    url: 'https://{{ event.host }}/n'\n    json: {a: 1}\n",
     "url: its scheme and host must be written out"),
    ("writeback:\n  - on: called\n    url: https://x.example/n\n", "needs `json`"),
])
def test_a_bad_write_back_is_named_at_start(tmp_path, block, said):
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, block)
    assert said in str(err.value)


def test_a_value_cannot_send_the_write_back_to_another_host(tmp_path):
    source = _load(tmp_path, "writeback:\n  - on: called\n"
                             "    url: 'https://crm.example/leads/{{ event.lead_id }}/notes'\n"
                             "    json: {a: 1}\n")
    [entry] = source.writebacks
    request = entry.request(context("called", {}, {"lead_id": "../../@evil.example/x"}, "crm",
                                    1, "America/Bogota", "es"))
    assert request.host == "crm.example"
    assert request.url == "https://crm.example/leads/..%2F..%2F%40evil.example%2Fx/notes"


@hsettings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                        lambda inner: st.lists(inner, max_size=3)
                        | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                        max_leaves=10),
       moment=st.sampled_from(["scheduled", "failed", "expired", "called"]))
def test_any_event_body_renders_a_request_or_fails_with_a_reason(tmp_path, raw, moment):
    source = _load(tmp_path, "writeback:\n  - on: [scheduled, failed, expired, called]\n"
                             "    url: 'https://crm.example/leads/{{ event.lead_id }}/notes'\n"
                             "    json: {id: '{{ event.lead_id | int }}', text: '{{ note }}'}\n")
    [entry] = source.writebacks
    facts = {"at": 1.8e9, "scheduled_for": 1.8e9, "called_at": 1.8e9, "call_result": "BUSY",
             "recall": {"recall_telephone": "93001234567"}, "reason": "r"}
    try:
        request = entry.request(context(moment, facts, raw, "crm", 1, "America/Bogota", "es"))
    except WritebackTemplateError as err:
        assert str(err)
        return
    assert request.host == "crm.example"
    assert "3001234567" not in json.dumps(request.json)  # the phone is masked unless asked


def test_the_whole_phone_is_given_only_to_a_template_that_names_it():
    facts = {"at": 1.8e9, "recall": {"recall_telephone": "93001234567"}}
    values = context("scheduled", facts, {}, "crm", 1, "America/Bogota", "es")
    assert values["recall"]["recall_telephone"] != "93001234567"
    assert values["recall"]["recall_telephone"].endswith("567")
    assert values["phone"] == "93001234567"


def test_two_threads_never_send_one_write_back_twice(make_app, mappings_dir, clock, crm):
    app, b, worker = notes_app(make_app, mappings_dir, clock, crm)
    ids = post_note(app, *(zap(n) for n in range(1, 21)))
    while worker.run_once():
        pass
    barrier = threading.Barrier(2)

    def send_all() -> None:
        barrier.wait()
        while worker.writebacks.run_once(f"t{threading.get_ident()}"):
            pass

    threads = [threading.Thread(target=send_all) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(int(n["contact"]) for n in crm.notes) == list(range(1, 21))
    assert all(w["status"] == "done" for i in ids for w in writebacks(b, i))


# --- where it shows ----------------------------------------------------------------------------
ADMIN = "admin-token-0123456789abcdef"


def test_each_write_back_shows_in_events_show_the_api_the_console_readyz_and_metrics(
        make_app, mappings_dir, clock, crm):
    from tests.test_cli import cli
    from tests.test_console import post, signed_in

    app, b, worker = notes_app(make_app, mappings_dir, clock, crm, admin_token=ADMIN)
    crm.contacts.pop("2")
    done, refused = post_note(app, zap(1), zap(2))
    run(worker)
    shown = cli(app, "events", "show", str(done)).output
    assert "writeback" in shown and "'CRM note' on scheduled: done" in shown
    assert "http=201" in shown and "id 9000000" in shown
    api = app.test_client().get(f"/api/v1/events/{refused}",
                                headers={"Authorization": f"Bearer {ADMIN}"}).get_json()
    [told] = api["writebacks"]
    assert (told["moment"], told["status"], told["http_status"]) == ("scheduled", "failed", 400)
    assert told["reason_code"] == "writeback_http_said"
    # the console: the section in both languages, and the retry of the failed one
    client = signed_in(app)
    page = client.get(f"/console/events/{refused}").get_data(as_text=True)
    assert "Told the CRM" in page and "CRM note" in page and "failed" in page
    client.set_cookie("console_lang", "es")
    page = client.get(f"/console/events/{refused}").get_data(as_text=True)
    assert "Lo que se le dijo al CRM" in page and "programada" in page
    crm.add_contact(2)
    answer = post(client, f"/console/events/{refused}/writebacks/retry",
                  token_from=f"/console/events/{refused}")
    assert answer.status_code == 303
    run(worker)
    assert [w["status"] for w in writebacks(b, refused)] == ["done"]
    assert b.store.get(refused)["status"] == "delivered"
    assert any(e["action"] == "retry-writebacks" for e in b.store.audit_log())
    # the bulk page offers the failed ones of every source at once
    crm.contacts.pop("3")
    [again] = post_note(app, zap(3))
    run(worker)
    page = client.get("/console/bulk").get_data(as_text=True)
    assert "1 writeback a un CRM falló." in page
    crm.add_contact(3)
    assert post(client, "/console/bulk/writebacks", {"source": "zapnote"},
                token_from="/console/bulk").status_code == 303
    run(worker)
    assert [w["status"] for w in writebacks(b, again)] == ["done"]
    ready = app.test_client().get("/readyz").get_json()["writebacks"]
    [mine] = [w for w in ready if w["source"] == "zapnote"]
    assert mine["on"] and mine["counts"] == {"done": 3}
    metrics = app.test_client().get("/metrics").get_data(as_text=True)
    assert 'recall_bridge_writebacks_total{outcome="done",source="zapnote"}' in metrics
    assert 'recall_bridge_writebacks_total{outcome="failed",source="zapnote"}' in metrics


def test_mappings_check_and_try_show_each_write_back_and_its_request(make_app, mappings_dir,
                                                                     clock, crm):
    from tests.test_cli import cli

    app, b, worker = notes_app(make_app, mappings_dir, clock, crm)
    checked = cli(app, "mappings", "check").output
    assert "writeback 'CRM note' on scheduled, failed, expired, called -> 127.0.0.1: on" \
        in checked
    sample = mappings_dir / "note.json"
    sample.write_text(json.dumps(zap(1)), encoding="utf-8")
    tried = cli(app, "mappings", "try", "zapnote", str(sample)).output
    lines = [line for line in tried.splitlines() if "writeback 'CRM note' on" in line]
    assert len(lines) == 4
    request = json.loads(lines[0].split(": ", 1)[1])
    assert request["headers"] == {"Authorization": "***"}  # the token is never printed
    assert request["json"]["properties"]["hs_note_body"].startswith("Llamada programada para")
    assert TOKEN not in tried and crm.calls == []  # nothing is sent


def test_the_cli_retries_failed_write_backs(make_app, mappings_dir, clock, crm):
    from tests.test_cli import cli

    app, b, worker = notes_app(make_app, mappings_dir, clock, crm)
    crm.contacts.pop("1")
    [event_id] = post_note(app, zap(1))
    run(worker)
    assert [w["status"] for w in writebacks(b, event_id)] == ["failed"]
    crm.add_contact(1)
    said = cli(app, "events", "retry-writebacks", "--source", "zapnote").output
    assert said.startswith("1 failed write-back(s) queued again")
    run(worker)
    assert [w["status"] for w in writebacks(b, event_id)] == ["done"]
    assert cli(app, "events", "retry-writebacks", "--source", "nope").exit_code != 0


# --- every shipped write-back, against its CRM's look-alike --------------------------------
CLIENT_ID, CLIENT_SECRET, REFRESH = "3MVG9client", "client-secret", "1000.refresh"
PIPEDRIVE_TOKEN = "pipedrive-api-token"


@pytest.fixture(scope="module")
def crm_apis(hubspot_server):
    from tests.crm_lookalike import CrmLookalike
    from tests.test_crms_latam import BITRIX24_SECRET
    from tests.writeback_lookalike import WritebackLookalike

    kommo_bitrix = CrmLookalike(ENVIRON["KOMMO_TOKEN"], BITRIX24_SECRET).start()
    others = WritebackLookalike(CLIENT_ID, CLIENT_SECRET, REFRESH, PIPEDRIVE_TOKEN).start()
    yield kommo_bitrix, others, hubspot_server
    kommo_bitrix.stop()
    others.stop()


SHIPPED = {  # source: (its sample body, which look-alike serves its CRM: 0 Kommo/Bitrix24)
    "hubspot": ("hubspot.json", 2),
    "hubspot-workflow": ("hubspot-workflow.json", 2),
    "pipedrive": ("pipedrive.json", 1),
    "kommo": ("kommo.txt", 0),
    "bitrix24": ("bitrix24.txt", 0),
    "salesforce": ("salesforce.xml", 1),
    "salesforce-flow": ("salesforce-flow.json", 1),
    "zoho": ("zoho.txt", 1),
}


def _shipped(name: str, crm_apis, **env: str):
    kommo_bitrix, others, hubspot = crm_apis
    from tests.test_crms_latam import BITRIX24_SECRET

    environ = {**ENVIRON, "KOMMO_BASE_URL": kommo_bitrix.url,
               "BITRIX24_WEBHOOK_URL": f"{kommo_bitrix.url}/rest/1/{BITRIX24_SECRET}/",
               "PIPEDRIVE_API_URL": others.url, "PIPEDRIVE_API_TOKEN": PIPEDRIVE_TOKEN,
               "SALESFORCE_INSTANCE_URL": others.url, "SALESFORCE_CLIENT_ID": CLIENT_ID,
               "SALESFORCE_CLIENT_SECRET": CLIENT_SECRET, "ZOHO_API_DOMAIN": others.url,
               "ZOHO_ACCOUNTS_URL": others.url, "ZOHO_CLIENT_ID": CLIENT_ID,
               "ZOHO_CLIENT_SECRET": CLIENT_SECRET, "ZOHO_REFRESH_TOKEN": REFRESH,
               "HUBSPOT_API_URL": hubspot.url,
               "KOMMO_RATE": "1000", "BITRIX24_RATE": "1000", "PIPEDRIVE_RATE": "1000", **env}
    settings = Settings(wolkvox_token="t", wolkvox_server="1", environ=environ)
    return load_source(ROOT / f"mappings/{name}.yaml", settings), settings


def _sample_event(source, sample: str):
    from webhooks.crm.formats import format_of

    body = (ROOT / "mappings/samples" / sample).read_bytes()
    payload = source.parse(body, format_of(source.format).sample_type)
    return source.events_of(payload)[0]


def _claim(source, event, moment: str, writeback_id: int = 1):
    from webhooks.store.writebacks import ClaimedWriteback

    facts = {"at": START.timestamp(), "scheduled_for": (START + timedelta(hours=1)).timestamp(),
             "recall": {"recall_telephone": "93001234567"}, "reason": ""}
    if moment == "called":
        facts.update(call_result="NO-ANSWER",
                     called_at=(START + timedelta(hours=1, minutes=2)).timestamp())
    return ClaimedWriteback(writeback_id, 1, source.name, source.writebacks[0].name, moment,
                            facts, 0, event)


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_each_shipped_write_back_is_taken_by_its_crm_in_the_documented_shape(
        name, crm_apis, store):
    from webhooks.delivery.writebacks import Sender

    source, settings = _shipped(name, crm_apis)
    [entry] = source.writebacks
    assert not entry.off, entry.off
    sample, which = SHIPPED[name]
    server = crm_apis[which]
    server.reset()
    event = _sample_event(source, sample)
    customer = next(rule for rule in source.rules if rule.name == "customer_id")
    if which == 2:  # HubSpot: a note goes only on a contact it knows
        server.add_contact(customer.apply(event, START) if source.lookup is None
                           else event["objectId"])
    sender = Sender(store, {name: source}, settings, "test")
    for moment in ("scheduled", "called"):
        outcome = sender.decide(_claim(source, event, moment))
        assert outcome.status == "done", outcome.reason
        assert outcome.http_status in (200, 201) and outcome.answer.startswith("id ")
    written = server.written if which != 2 else [
        {"crm": "hubspot", "to": n["contact"], "text": n["body"]} for n in server.notes]
    scheduled, called = [w for w in written if w["crm"] == name.split("-")[0]]
    assert scheduled["text"] == ("Llamada programada para el martes 1 de diciembre, 11:00 "
                                 "(hora de Bogotá).")
    assert called["text"] == ("Llamada del martes 1 de diciembre, 11:02 (hora de Bogotá): "
                              "no contestó (NO-ANSWER).")
    # on the CRM object the callback is about: the customer id the recall was sent with
    assert scheduled["to"] == called["to"] == str(customer.apply(event, START))
    if "title" in scheduled:
        assert scheduled["title"] == "Llamada programada"
        assert called["title"] == "Llamada: no contestó"


def test_an_oauth_token_is_fetched_once_and_fetched_again_when_the_crm_refuses_it(
        crm_apis, store):
    from webhooks.delivery.writebacks import Sender

    source, settings = _shipped("salesforce", crm_apis)
    others = crm_apis[1]
    others.reset()
    event = _sample_event(source, "salesforce.xml")
    sender = Sender(store, {"salesforce": source}, settings, "test")
    for n in range(3):
        assert sender.decide(_claim(source, event, "scheduled", n)).status == "done"
    tokens = [c for c in others.calls if c["path"] == "/services/oauth2/token"]
    assert len(tokens) == 1  # cached
    others.tokens.clear()  # revoked (or expired early) at Salesforce
    assert sender.decide(_claim(source, event, "scheduled")).status == "done"
    assert len([c for c in others.calls if c["path"] == "/services/oauth2/token"]) == 2


def test_refused_oauth_credentials_hold_the_write_backs(crm_apis, store):
    from webhooks.delivery.writebacks import Sender

    source, settings = _shipped("zoho", crm_apis, ZOHO_REFRESH_TOKEN="1000.revoked")
    crm_apis[1].reset()
    event = _sample_event(source, "zoho.txt")
    outcome = Sender(store, {"zoho": source}, settings, "test").decide(
        _claim(source, event, "scheduled"))
    assert outcome.status == "queued" and outcome.reason.code == "writeback_held"
    assert "refused the OAuth credentials (invalid_code)" in outcome.reason
    assert REFRESH not in outcome.reason and CLIENT_SECRET not in outcome.reason


# --- operators' alerts -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def chat_server():
    from tests.writeback_lookalike import ChatLookalike

    server = ChatLookalike().start()
    yield server
    server.stop()


@pytest.fixture
def chat(chat_server):
    chat_server.reset()
    return chat_server


def alerting(make_app, clock, chat, spool=lambda: 0, **overrides):
    from webhooks.delivery.worker import Worker

    clock.now = START
    app = make_app(alert_webhook_url=chat.hook, **overrides)
    b = bridge_of(app)
    return app, b, Worker(b.store, b.sources, b.settings, name="test", spool_depth=spool)


def tell(worker, clock, **later) -> None:
    clock.advance(**later)
    worker.writebacks.alerts.check(clock().timestamp(), force=True)
    while worker.writebacks.run_once():
        pass


def test_a_held_token_is_told_once_and_its_release_once(make_app, clock, chat):
    from webhooks.store.limits import HoldKind

    app, b, worker = alerting(make_app, clock, chat, alert_language="en")
    now = clock().timestamp()
    key = next(iter(b.sources.values())).target.key
    b.store.hold(key, HoldKind.TOKEN, "wolkvox refused the token (HTTP 401)", now + 300, now)
    tell(worker, clock, seconds=1)
    for _ in range(3):
        tell(worker, clock, minutes=1)
    [raised] = chat.messages
    assert raised.startswith("⚠️ Recall Bridge: wolkvox token ") and "is held" in raised
    assert "refused the token" in raised
    b.store.release_hold(key)
    tell(worker, clock, minutes=1)
    assert chat.messages[1].startswith("✅ Recall Bridge, resolved: wolkvox token ")
    # held again within 15 minutes of the last message: not told again (nor its release)
    b.store.hold(key, HoldKind.TOKEN, "wolkvox refused the token (HTTP 401)", now + 900, now)
    tell(worker, clock, minutes=1)
    b.store.release_hold(key)
    tell(worker, clock, minutes=1)
    assert len(chat.messages) == 2
    # 15 minutes later it is told again
    b.store.hold(key, HoldKind.QUOTA, "quota used up", now + 9000, now)
    tell(worker, clock, minutes=16)
    assert len(chat.messages) == 3 and "quota used up" in chat.messages[2]


def test_failures_past_the_threshold_and_the_spool_are_told_in_spanish(make_app, clock, chat,
                                                                        sandbox):
    waiting = {"requests": 0}
    app, b, worker = alerting(make_app, clock, chat, spool=lambda: waiting["requests"],
                              alert_failures=2, wolkvox_min_lead=0.0)
    sandbox.configure(script=[400, 400])
    from tests.test_delivery import receive

    receive(app, zap(1), zap(2))
    while worker.run_once():
        pass
    waiting["requests"] = 3
    tell(worker, clock, seconds=1)
    texts = sorted(chat.messages)
    assert len(texts) == 2
    assert "2 rellamadas fallaron en los últimos 10 minutos" in texts[0] + texts[1]
    assert any("3 solicitud(es) de webhook están guardadas" in t for t in texts)
    waiting["requests"] = 0
    tell(worker, clock, minutes=11)  # the failures are older than the window, the spool empty
    assert len(chat.messages) == 4
    assert all(m.startswith("✅ Recall Bridge, resuelto: ") for m in chat.messages[2:])


def test_an_alert_is_stored_work_retried_until_the_chat_takes_it(make_app, clock, chat):
    from webhooks.store.limits import HoldKind

    app, b, worker = alerting(make_app, clock, chat)
    chat.failures = [503]
    now = clock().timestamp()
    b.store.hold("lookup:hubspot", HoldKind.LOOKUP, "HubSpot refused the token", now + 300, now)
    tell(worker, clock, seconds=1)
    assert chat.messages == []
    tell(worker, clock, seconds=15)  # past the first backoff
    [message] = chat.messages
    assert "las consultas al CRM de hubspot están retenidas" in message


def test_two_processes_tell_a_condition_once(make_app, clock, chat):
    from webhooks.delivery.worker import Worker
    from webhooks.store.limits import HoldKind

    app, b, worker = alerting(make_app, clock, chat)
    other = Worker(b.store, b.sources, b.settings, name="other")
    now = clock().timestamp()
    b.store.hold("lookup:kommo", HoldKind.LOOKUP, "Kommo refused the token", now + 300, now)
    tell(worker, clock, seconds=1)
    tell(other, clock, seconds=1)
    assert len(chat.messages) == 1
    assert app.test_client().get("/readyz").get_json()["alerts"]["standing"][0]["key"] == \
        "hold:lookup:kommo"


def test_a_move_of_seconds_is_not_said_but_a_move_of_minutes_is():
    from webhooks.mapping.writeback import moved_words

    def facts(asked: str, moved: str) -> dict:
        why = [{"code": "moved_min_lead", "params": {"minutes": "30"}, "text": "t"}]
        return {"reason_code": "delivered_moved", "reason_params": json.dumps(
            {"note": {"code": "moved", "params": {"asked": asked, "moved": moved, "why": why},
                      "text": "t"}})}

    assert moved_words(facts("20261201100000", "20261201100001"), "es") == ""
    assert moved_words(facts("20261201100000", "20261201103000"), "es") == \
        "se movió: wolkvox exige 30 min de anticipación"
    assert moved_words(facts("20261201100000", "20261201103000"), "en") == \
        "moved: wolkvox wants 30 min ahead"
