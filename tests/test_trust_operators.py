"""Issue 15, item 11: the operators' smaller holes. The playground judges no more events than
the hook takes; wrong bearer tokens are throttled; short tokens do not start; a signed-out
cookie opens nothing; a hostile `next` or a deep JSON body is refused, not a 500; concurrent
retries of one event let one win (409 for the others); every operator's action is audited;
`confirm` is what the document says; a repeated capture test is judged afresh; a revealed
phone is not for caches. Real HTTP on loopback where concurrency is the point."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.conftest import ENVIRON, ROOT, bridge_of, drain
from tests.test_console import csrf_token
from tests.test_delivery import event, receive
from tests.test_receiver import ZAP_HEADERS, zap
from webhooks import ConfigError
from webhooks.sandbox import serve

ADMIN = "admin-token-for-item-eleven-0123"
VIEWER = "viewer-token-for-item-eleven-0123"


@pytest.fixture
def app(make_app):
    return make_app(admin_token=ADMIN, viewer_token=VIEWER)




def signed_in(app, token: str = ADMIN):
    client = app.test_client()
    answer = client.post("/console/login", data={"token": token,
                                                 "csrf_token": csrf_token(client)})
    assert answer.status_code == 303, answer.get_data(as_text=True)
    return client


def api(app, method, path, body=None, token=ADMIN, **kwargs):
    return app.test_client().open(path, method=method, json=body,
                                  headers={"Authorization": f"Bearer {token}"}, **kwargs)


def failed_events(app, sandbox, *leads: int) -> list[int]:
    sandbox.configure(script=[400] * len(leads))
    ids = receive(app, *[zap(lead=n) for n in leads])
    drain(app)
    assert {event(app, i)["status"] for i in ids} == {"failed"}
    return ids


class Served:
    """The app on a threaded server on loopback, for real concurrent requests."""

    def __init__(self, app):
        self.server = serve(app)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def all_read_before_any_writes(app, readers: int):
    """Make `readers` concurrent actions all read the event before any of them writes it:
    the interleaving that let three retries all succeed, made certain instead of likely."""
    store = bridge_of(app).store
    barrier = threading.Barrier(readers, timeout=10)
    original = store.get

    def get(event_id):
        row = original(event_id)
        if threading.current_thread() is not threading.main_thread():
            with contextlib.suppress(threading.BrokenBarrierError):
                barrier.wait()
        return row

    store.get = get
    return lambda: setattr(store, "get", original)


# --- the playground --------------------------------------------------------------------------
def test_the_playground_judges_no_more_events_than_the_hook_takes(app):
    limit = bridge_of(app).settings.max_events_per_request
    client = signed_in(app)
    body = json.dumps([zap(lead=n) for n in range(30 * limit)])  # 3,000 events
    answer = client.post("/console/sources/zapier/try",
                         data={"body": body, "csrf_token": csrf_token(
                             client, "/console/sources/zapier/try")})
    page = answer.get_data(as_text=True)
    assert answer.status_code == 200
    assert page.count('class="card tried') == limit
    assert f"The body makes {30 * limit} events." in page
    assert f"Only the first {limit} are judged here" in page
    # the body is shown again (MAX_BODY_BYTES bounds it); every event judged made 30x the page
    assert len(page) < 2 * len(body), (len(page), len(body))


# --- tokens ----------------------------------------------------------------------------------
def test_wrong_bearer_tokens_are_throttled_like_the_console(app, clock):
    first = api(app, "GET", "/api/v1/events", token="wrong-guess-1")
    assert first.status_code == 401 and first.headers["Retry-After"] == "1"
    waits = api(app, "GET", "/api/v1/events", token=ADMIN)  # even the right one waits
    assert waits.status_code == 429 and waits.headers["Retry-After"] == "1"
    assert "wait" in waits.get_json()["message"]
    clock.advance(seconds=1.1)
    second = api(app, "GET", "/api/v1/events", token="wrong-guess-2")
    assert second.status_code == 401 and second.headers["Retry-After"] == "2"
    clock.advance(seconds=2.1)
    # the console's sign-in counts the same guesses: a guesser gains nothing by switching
    client = app.test_client()
    refused = client.post("/console/login", data={"token": "wrong-guess-3",
                                                  "csrf_token": csrf_token(client)})
    assert refused.status_code == 401 and refused.headers["Retry-After"] == "4"
    assert api(app, "GET", "/api/v1/events").status_code == 429
    clock.advance(seconds=4.1)
    assert api(app, "GET", "/api/v1/events").status_code == 200


def test_a_viewers_token_does_not_reset_the_count_of_admin_guesses(app, clock):
    assert api(app, "GET", "/api/v1/events", token="guess-1").status_code == 401
    clock.advance(seconds=1.1)
    assert api(app, "GET", "/api/v1/events", token=VIEWER).status_code == 200
    answer = api(app, "GET", "/api/v1/events", token="guess-2")
    assert answer.headers["Retry-After"] == "2"  # not 1: the viewer's success reset nothing


def test_the_document_says_a_token_can_be_throttled(app):
    document = app.test_client().get("/api/v1/openapi.json").get_json()
    for path in document["paths"].values():
        for operation in path.values():
            if isinstance(operation, dict) and "responses" in operation:
                assert "429" in operation["responses"]


@pytest.mark.parametrize("name", ["ADMIN_TOKEN", "VIEWER_TOKEN", "METRICS_TOKEN"])
def test_a_short_token_does_not_start_and_says_how_to_make_one(make_app, name):
    others = {"admin_token": ADMIN} if name != "ADMIN_TOKEN" else {}
    with pytest.raises(ConfigError) as refused:
        make_app(**others, **{name.lower(): "x" * 23})
    said = str(refused.value)
    assert name in said and "24" in said and "secrets.token_urlsafe(32)" in said
    make_app(**others, **{name.lower(): "x" * 24})  # long enough: starts


def test_admin_token_x_is_refused_by_the_real_command(tmp_path):
    """`ADMIN_TOKEN=x flask ...` as an operator would type it: refused, naming the fix."""
    env = {**ENVIRON, "PATH": "/usr/bin:/bin", "ADMIN_TOKEN": "x",
           "DATABASE_URL": f"sqlite:///{tmp_path / 'bridge.db'}",
           "MAPPINGS_DIR": str(ROOT / "mappings"), "SPOOL_DIR": str(tmp_path / "spool"),
           "WOLKVOX_TOKEN": "t", "WOLKVOX_SERVER": "0000"}
    done = subprocess.run([sys.executable, "-c", "from webhooks import create_app; "
                           "create_app()"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode != 0
    assert "ADMIN_TOKEN is 1 characters; it needs at least 24" in done.stderr
    assert 'python -c "import secrets; print(secrets.token_urlsafe(32))"' in done.stderr


# --- sessions --------------------------------------------------------------------------------
def test_a_copied_session_cookie_opens_nothing_after_signing_out(app):
    client = signed_in(app)
    cookie = client.get_cookie("console_session", path="/console").value
    thief = app.test_client()
    thief.set_cookie("console_session", cookie, path="/console")
    assert thief.get("/console/").status_code == 200  # the copy works while signed in
    answer = client.post("/console/logout", data={"csrf_token": csrf_token(client,
                                                                           "/console/")})
    assert answer.status_code == 303
    kept = thief.get("/console/")
    assert kept.status_code == 303 and "/console/login" in kept.headers["Location"]
    assert [e["action"] for e in bridge_of(app).store.audit_log()] == ["sign-out"]
    assert signed_in(app).get("/console/").status_code == 200  # signing in again works


def test_a_sign_out_in_one_process_holds_in_another(make_app):
    """Two apps on one store stand for two gunicorn workers: the sign-out one of them wrote
    is read by the other."""
    one = make_app(admin_token=ADMIN)
    other = make_app(admin_token=ADMIN)
    client = signed_in(one)
    cookie = client.get_cookie("console_session", path="/console").value
    elsewhere = other.test_client()
    elsewhere.set_cookie("console_session", cookie, path="/console")
    assert elsewhere.get("/console/").status_code == 200
    client.post("/console/logout", data={"csrf_token": csrf_token(client, "/console/")})
    assert elsewhere.get("/console/").status_code == 303


@pytest.mark.parametrize("target", ["/console/\r\nSet-Cookie: a=b", "/console/\nx",
                                    "/console/\tx", "/console/ x", "/console\x00"])
def test_a_next_with_control_characters_goes_to_the_console_home(app, target):
    client = app.test_client()
    answer = client.post("/console/login", data={"token": ADMIN, "next": target,
                                                 "csrf_token": csrf_token(client)})
    assert answer.status_code == 303
    assert answer.headers["Location"] == "/console/"
    assert "Set-Cookie: a=b" not in str(answer.headers)
    assert client.get("/console/login", query_string={"next": target}).status_code == 303
    switched = app.test_client().get("/console/language/es", query_string={"next": target})
    assert switched.status_code == 303 and switched.headers["Location"] == "/console/"


# --- the API's bodies --------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/api/v1/bulk-retry", "/api/v1/sources/zapier/try",
                                  "/api/v1/events/1/cancel"])
def test_a_deeply_nested_json_body_answers_400_not_500(app, path):
    [event_id] = receive(app, zap())
    assert event_id == 1
    body = b"[" * 100_000 + b"]" * 100_000
    answer = app.test_client().post(path, data=body, content_type="application/json",
                                    headers={"Authorization": f"Bearer {ADMIN}"})
    assert answer.status_code == 400, answer.get_data(as_text=True)[:300]
    assert "nested too deeply" in answer.get_json()["message"]
    hook = app.test_client().post("/hooks/zapier", data=body, content_type="application/json",
                                  headers=ZAP_HEADERS)
    assert hook.status_code == 400  # the same answer as the hook's


@pytest.mark.parametrize("confirm", ["yes", 1, "1", "true", "on", 0, "no", None])
def test_confirm_takes_only_a_json_boolean_as_documented(app, confirm):
    receive(app, zap(phone="12"))
    answer = api(app, "POST", "/api/v1/bulk-retry", {"status": "invalid", "confirm": confirm})
    assert answer.status_code == 422, answer.get_json()
    assert "confirm" in json.dumps(answer.get_json()["errors"])
    document = app.test_client().get("/api/v1/openapi.json").get_json()
    schema = document["components"]["schemas"]["BulkRetry"]["properties"]["confirm"]
    assert schema["type"] == "boolean"
    assert api(app, "POST", "/api/v1/bulk-retry",
               {"status": "invalid", "confirm": True}).get_json()["confirmed"] is True


def test_a_revealed_phone_is_not_for_caches(app):
    [event_id] = receive(app, zap())
    answer = api(app, "POST", f"/api/v1/events/{event_id}/reveal")
    assert answer.get_json()["phone"] == "93001234567"
    assert answer.headers["Cache-Control"] == "no-store"
    client = signed_in(app)
    page = client.post(f"/console/events/{event_id}/reveal",
                       data={"csrf_token": csrf_token(client, f"/console/events/{event_id}")})
    assert "93001234567" in page.get_data(as_text=True)
    assert page.headers["Cache-Control"] == "no-store"


# --- concurrent actions ------------------------------------------------------------------------
def test_three_concurrent_retries_of_one_event_queue_it_once(app, sandbox):
    [event_id] = failed_events(app, sandbox, 1)
    served = Served(app)
    restore = all_read_before_any_writes(app, 3)
    try:
        with ThreadPoolExecutor(3) as pool:
            answers = list(pool.map(lambda _: requests.post(
                f"{served.url}/api/v1/events/{event_id}/retry", json={},
                headers={"Authorization": f"Bearer {ADMIN}"}, timeout=30), range(3)))
    finally:
        restore()
        served.close()
    codes = sorted(a.status_code for a in answers)
    assert codes == [200, 409, 409], [a.text for a in answers]
    assert all("changed while" in a.json()["message"] for a in answers if a.status_code == 409)
    audit = bridge_of(app).store.audit_log(event_id=event_id)
    assert [e["action"] for e in audit] == ["retry"]
    requeues = [a for a in bridge_of(app).store.attempts_of(event_id)
                if a["outcome"] == "requeued"]
    assert len(requeues) == 1 and event(app, event_id)["status"] == "queued"


def test_three_concurrent_cancels_of_one_event_cancel_it_once(app):
    [event_id] = receive(app, zap())
    served = Served(app)
    restore = all_read_before_any_writes(app, 3)
    try:
        with ThreadPoolExecutor(3) as pool:
            answers = list(pool.map(lambda n: requests.post(
                f"{served.url}/api/v1/events/{event_id}/cancel", json={"reason": f"asked {n}"},
                headers={"Authorization": f"Bearer {ADMIN}"}, timeout=30), range(3)))
    finally:
        restore()
        served.close()
    assert sorted(a.status_code for a in answers) == [200, 409, 409]
    assert [e["action"] for e in bridge_of(app).store.audit_log()] == ["cancel"]


# --- the audit log -----------------------------------------------------------------------------
def test_a_retry_that_leaves_an_event_invalid_is_audited(app):
    [event_id] = receive(app, zap(phone="12"))
    answer = api(app, "POST", f"/api/v1/events/{event_id}/retry", {})
    assert answer.status_code == 409 and "still invalid" in answer.get_json()["message"]
    [entry] = bridge_of(app).store.audit_log(event_id=event_id)
    assert entry["action"] == "retry" and entry["actor"] == "api-admin"
    assert entry["detail"].startswith("invalid -> invalid")


def test_events_purge_is_audited(app, sandbox, clock):
    failed_events(app, sandbox, 1, 2)
    clock.advance(days=40)
    done = app.test_cli_runner().invoke(args=["events", "purge", "--days", "30"])
    assert done.exit_code == 0 and "deleted 2 event(s)" in done.output
    [entry] = bridge_of(app).store.audit_log()
    assert (entry["actor"], entry["action"], entry["event_id"]) == ("cli", "purge", None)
    assert entry["detail"].startswith("2 event(s)") and "30 day(s)" in entry["detail"]


def test_a_bulk_retry_of_an_unknown_source_is_refused_with_422(app):
    receive(app, zap(phone="12"))
    for confirm in (False, True):
        answer = api(app, "POST", "/api/v1/bulk-retry",
                     {"status": "invalid", "source": "zapierr", "confirm": confirm})
        assert answer.status_code == 422, answer.get_json()
        body = answer.get_json()
        assert "no source 'zapierr'" in body["message"] and "zapier" in body["errors"]["json"][
            "source"][0]
    assert bridge_of(app).store.audit_log() == []


# --- the capture page --------------------------------------------------------------------------
def test_a_capture_test_sent_again_is_judged_afresh_not_a_duplicate(app, mappings_dir):
    client = app.test_client()
    first = client.post("/hooks/zapier/test", json=zap(phone="12"), headers=ZAP_HEADERS)
    assert first.get_json()["events"][0]["result"] == "test"
    again = client.post("/hooks/zapier/test", json=zap(phone="12"), headers=ZAP_HEADERS)
    [item] = again.get_json()["events"]
    assert item["result"] == "test" and item["reason"].startswith("test: would be invalid")
    rows = bridge_of(app).store.latest("test")
    assert len(rows) == 2  # the capture page shows both
    twice = client.post("/hooks/zapier/test", json=[zap(), zap()], headers=ZAP_HEADERS)
    assert [e["result"] for e in twice.get_json()["events"]] == ["test", "duplicate"]
