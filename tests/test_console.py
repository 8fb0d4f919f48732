"""The operator console at /console: signing in with a token, what a viewer may not do, CSRF,
English and Spanish on every page, and each page doing what an operator needs (events found
by a phone typed any way, retry, cancel, reveal and bulk retry audited, the playground storing
nothing, the capture page showing test events)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

from tests.conftest import bridge_of, drain
from tests.test_delivery import event, receive
from tests.test_receiver import ZAP_HEADERS, zap
from webhooks.operators import throttle

ADMIN = "admin-token-0123456789abcdef"
VIEWER = "viewer-token-0123456789abcdef"
CONSOLE = Path(__file__).resolve().parent.parent / "webhooks" / "operators" / "console"
CATALOG = CONSOLE / "translations" / "es" / "LC_MESSAGES"


@pytest.fixture
def app(make_app):
    return make_app(admin_token=ADMIN, viewer_token=VIEWER)


def csrf_token(client, path: str = "/console/login") -> str:
    page = client.get(path)
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True))
    assert found, f"no CSRF token on {path} ({page.status_code})"
    return found.group(1)


def signed_in(app, token: str = ADMIN, **headers: str):
    client = app.test_client()
    answer = client.post("/console/login", data={"token": token, "csrf_token": csrf_token(
        client)}, headers=headers)
    assert answer.status_code == 303, answer.get_data(as_text=True)
    return client


def post(client, path: str, data: dict | None = None, token_from: str | None = None):
    """A console form post, with the CSRF token of the page the form is on."""
    token = csrf_token(client, token_from or "/console/")
    return client.post(path, data={**(data or {}), "csrf_token": token})


def text(answer) -> str:
    return answer.get_data(as_text=True)


def failed_event(app, sandbox) -> int:
    """An event wolkvox refused for good (a 400): failed."""
    sandbox.configure(script=[400])
    [event_id] = receive(app, zap(lead=7))
    drain(app)
    assert event(app, event_id)["status"] == "failed"
    return event_id


# --- access ------------------------------------------------------------------------------
def test_the_console_is_not_there_without_an_admin_token(make_app):
    client = make_app().test_client()
    for path in ("/console/", "/console/login", "/console/events", "/console/capture.json"):
        assert client.get(path).status_code == 404, path
    assert client.post("/hooks/zapier", json=zap(), headers=ZAP_HEADERS).status_code == 202


def test_signing_in_opens_a_strict_http_only_session_and_signing_out_ends_it(app):
    client = app.test_client()
    assert client.get("/console/events").headers["Location"].startswith(
        "/console/login?next=/console/events")
    token = csrf_token(client)
    answer = client.post("/console/login", data={"token": ADMIN, "csrf_token": token,
                                                  "next": "/console/events"})
    assert answer.status_code == 303 and answer.headers["Location"] == "/console/events"
    cookie = answer.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/console" in cookie
    assert "Secure" not in cookie  # plain http on loopback
    assert client.get("/console/events").status_code == 200
    assert post(client, "/console/logout").status_code == 303
    assert client.get("/console/events").status_code == 303  # back to the sign-in page


def test_the_session_cookie_is_secure_behind_https(make_app):
    app = make_app(admin_token=ADMIN, public_url="https://bridge.example.com")
    client = app.test_client()
    answer = client.post("/console/login", data={"token": ADMIN,
                                                  "csrf_token": csrf_token(client)})
    assert "Secure" in answer.headers["Set-Cookie"]
    https = make_app(admin_token=ADMIN).test_client()
    page = https.get("/console/login", base_url="https://localhost")
    assert "Secure" in page.headers["Set-Cookie"]


def test_a_next_page_outside_the_console_is_not_followed(app):
    client = app.test_client()
    answer = client.post("/console/login", data={"token": ADMIN, "next": "//evil.example/x",
                                                  "csrf_token": csrf_token(client)})
    assert answer.headers["Location"] == "/console/"


def test_a_wrong_token_is_refused_and_each_next_try_waits_longer(app, clock):
    client = app.test_client()
    token = csrf_token(client)
    wrong = client.post("/console/login", data={"token": "guess", "csrf_token": token})
    assert wrong.status_code == 401 and wrong.headers["Retry-After"] == "1"
    assert "That token is not valid" in text(wrong)
    early = client.post("/console/login", data={"token": ADMIN, "csrf_token": token})
    assert early.status_code == 429  # even the right token waits: guessing gets slow
    clock.advance(seconds=1)
    again = client.post("/console/login", data={"token": "guess-2", "csrf_token": token})
    assert again.status_code == 401 and again.headers["Retry-After"] == "2"
    clock.advance(seconds=2)
    assert client.post("/console/login", data={"token": ADMIN,
                                               "csrf_token": token}).status_code == 303


def test_the_delay_after_wrong_tokens_is_bounded_and_forgotten():
    limiter = throttle.Throttle()
    delays = [limiter.failed("10.0.0.1", 1000.0 + i * 100) for i in range(10)]
    assert delays[:4] == [1, 2, 4, 8] and max(delays) == throttle.MAX_DELAY
    assert limiter.wait("10.0.0.2", 2000.0) == 0  # another address is not slowed
    assert limiter.failed("10.0.0.1", 1e6) == 1  # quiet for long: starts again
    limiter.succeeded("10.0.0.1")
    assert limiter.wait("10.0.0.1", 1e6) == 0


def test_a_session_ends_after_twelve_hours(app, clock):
    client = signed_in(app)
    clock.advance(hours=12, seconds=1)
    assert client.get("/console/").status_code == 303


def test_a_viewer_sees_no_action_buttons_and_cannot_act(app, sandbox):
    failed = failed_event(app, sandbox)
    [queued] = receive(app, zap(lead=8))
    viewer = signed_in(app, VIEWER)
    page = text(viewer.get(f"/console/events/{failed}"))
    assert "Reveal the phone number" not in page and "/retry" not in page
    assert "/cancel" not in text(viewer.get(f"/console/events/{queued}"))
    assert "Confirm" not in text(viewer.get("/console/bulk?status=failed&preview=1"))
    for path, data in ((f"/console/events/{failed}/retry", {}),
                       (f"/console/events/{queued}/cancel", {"why": "no"}),
                       (f"/console/events/{failed}/reveal", {}),
                       ("/console/bulk", {"status": "failed"})):
        assert post(viewer, path, data).status_code == 403, path
    assert event(app, failed)["status"] == "failed" and event(app, queued)["status"] == "queued"
    assert bridge_of(app).store.audit_log() == []
    # reading is allowed, the playground too (it changes nothing)
    assert viewer.get("/console/audit").status_code == 200
    tried = post(viewer, "/console/sources/zapier/try", {"body": '{"lead_id": 1}'})
    assert tried.status_code == 200


def test_a_post_without_the_csrf_token_is_refused(app, sandbox):
    failed = failed_event(app, sandbox)
    client = signed_in(app)
    refused = client.post(f"/console/events/{failed}/retry", data={})
    assert refused.status_code == 400 and "The form expired" in text(refused)
    forged = client.post(f"/console/events/{failed}/retry", data={"csrf_token": "forged"})
    assert forged.status_code == 400
    assert event(app, failed)["status"] == "failed"
    assert app.test_client().post("/console/login", data={"token": ADMIN}).status_code == 400


def test_webhooks_are_not_csrf_checked_when_the_console_is_on(app):
    client = signed_in(app)  # a browser with a console session posting to a hook
    assert client.post("/hooks/zapier", json=zap(), headers=ZAP_HEADERS).status_code == 202
    assert client.post("/hooks/zapier/test", json=zap(),
                       headers=ZAP_HEADERS).status_code == 202


# --- languages ---------------------------------------------------------------------------
PAGES = {  # path -> (an English text on it, its Spanish translation)
    "/console/": ("Events per source", "Eventos por origen"),
    "/console/events": ("Newest events", "Eventos más recientes"),
    "/console/events/{id}": ("Recall as sent to wolkvox", "Rellamada tal como se envió a wolkvox"),
    "/console/bulk?status=failed&preview=1": ("No events match: nothing to retry.",
                                              "Ningún evento coincide: nada que reintentar."),
    "/console/sources": ("Calling hours", "Horario de llamadas"),
    "/console/sources/zapier/try?event={id}": ("would be queued", "quedaría en cola"),
    "/console/capture": ("No test events yet.", "Aún no hay eventos de prueba."),
    "/console/audit": ("Nothing recorded yet.", "Aún no hay nada registrado."),
}


@pytest.mark.parametrize("path", PAGES)
def test_every_page_is_in_english_or_spanish_as_the_browser_asks(app, path):
    [event_id] = receive(app, zap())
    client = signed_in(app)
    english, spanish = PAGES[path]
    url = path.format(id=event_id)
    page = text(client.get(url, headers={"Accept-Language": "en-US,en;q=0.9"}))
    assert '<html lang="en">' in page and english in page
    assert re.search(r"<title>[^<]+ · Recall Bridge</title>", page)
    assert '<a class="skip" href="#main">Skip to content</a>' in page
    page = text(client.get(url, headers={"Accept-Language": "es-CO,es;q=0.9,en;q=0.5"}))
    assert '<html lang="es">' in page and spanish in page, url
    assert "Saltar al contenido" in page and "Cerrar sesión" in page


def test_the_sign_in_page_and_errors_are_translated_too(app, clock):
    client = app.test_client()
    page = text(client.get("/console/login", headers={"Accept-Language": "es"}))
    assert "Token de acceso" in page and "Iniciar sesión" in page
    wrong = client.post("/console/login", headers={"Accept-Language": "es"},
                        data={"token": "x", "csrf_token": csrf_token(client)})
    assert "Ese token no es válido" in text(wrong)
    clock.advance(seconds=1)
    signed = signed_in(app)
    assert "Aquí no hay nada" in text(signed.get("/console/events/999999",
                                                 headers={"Accept-Language": "es"}))


def test_the_language_link_sets_the_language_over_the_browsers(app):
    client = signed_in(app)
    english = text(client.get("/console/events?status=failed"))
    link = re.search(r'href="(/console/language/es\?next=[^"]+)"', english).group(1)
    answer = client.get(link.replace("&amp;", "&"))
    assert answer.status_code == 303
    assert answer.headers["Location"] == "/console/events?status=failed"
    page = text(client.get("/console/events", headers={"Accept-Language": "en"}))
    assert '<html lang="es">' in page and "Filtrar eventos" in page
    client.get("/console/language/en?next=/console/")
    assert "Filter events" in text(client.get("/console/events",
                                              headers={"Accept-Language": "es"}))


def _console_texts() -> set:
    keywords = {**DEFAULT_KEYWORDS, "lazy_gettext": None}
    method_map = [("**.py", "python"), ("**/templates/**.html", "jinja2")]
    return {message[2] for message in extract_from_dir(str(CONSOLE), method_map,
                                                       keywords=keywords)}


def test_every_visible_text_has_a_spanish_translation():
    with (CATALOG / "console.po").open("rb") as handle:
        catalog = read_po(handle, locale="es")
    missing = []
    for msgid in _console_texts():
        message = catalog.get(msgid)
        strings = message.string if message else None
        if (not message or message.fuzzy or not strings
                or (isinstance(strings, tuple) and not all(strings))):
            missing.append(msgid)
    assert missing == [], "untranslated (see webhooks/operators/console/__init__.py)"


def test_the_compiled_spanish_catalog_matches_its_source():
    def entries(catalog) -> dict:
        as_key = lambda value: tuple(value) if isinstance(value, list | tuple) else value  # noqa: E731
        return {as_key(m.id): as_key(m.string) for m in catalog if m.id}

    with (CATALOG / "console.po").open("rb") as handle:
        source = entries(read_po(handle, locale="es"))
    with (CATALOG / "console.mo").open("rb") as handle:
        compiled = entries(read_mo(handle))
    assert compiled == source, "run pybabel compile (see webhooks/operators/console/__init__.py)"


# --- pages -------------------------------------------------------------------------------
def test_the_overview_counts_today_and_draws_the_last_48_hours(app, sandbox):
    receive(app, zap(lead=1), zap(lead=2), zap(lead=3, phone="12"))
    drain(app)
    client = signed_in(app)
    assert client.post("/hooks/zapier/test", json=zap(lead=4),
                       headers=ZAP_HEADERS).status_code == 202  # a capture: not received
    page = text(client.get("/console/"))
    row = re.search(r'<th scope="row"><a href="/console/events\?source=zapier">zapier</a>'
                    r"</th>(.*?)</tr>", page, re.S).group(1)
    cells = re.findall(r"<td[^>]*>(?:<a [^>]+>)?(\d+)", row)
    assert cells[:5] == ["3", "2", "0", "1", "0"]  # received, delivered, failed, invalid, ign.
    assert cells[5:] == cells[:5]  # the last 7 days hold today's
    key = bridge_of(app).sources["zapier"].target.key
    assert f"<code>{key}</code>" in page and bridge_of(app).settings.wolkvox_token not in page
    assert "<svg" in page and "3 events received and 2 recalls delivered" in page
    assert page.count('class="received"') == 1 and page.count('class="delivered"') == 1


def test_an_event_id_past_the_id_column_is_not_found_for_every_page_and_action(app):
    client = signed_in(app)
    huge = "/console/events/99999999999999999999"
    assert client.get(huge).status_code == 404
    for action in ("retry", "cancel", "reveal"):
        assert post(client, f"{huge}/{action}", {"why": "x"}).status_code == 404, action
    page = text(client.get("/console/sources/zapier/try", query_string={"event": huge[16:]}))
    assert "There is no event 99999999999999999999." in page


def test_events_are_found_by_a_phone_typed_with_spaces_and_shown_masked(app):
    [wanted] = receive(app, zap(lead=1, phone="+57 301 555 1234"))
    receive(app, zap(lead=2, phone="300 123 4567"))
    client = signed_in(app)
    page = text(client.get("/console/events", query_string={"phone": "301 555 1234"}))
    assert re.findall(r'href="/console/events/(\d+)"', page) == [str(wanted)]
    assert "********234" in page and "93015551234" not in page
    assert "Type a phone number" in text(client.get("/console/events?phone=abc"))


def test_events_filter_by_status_source_customer_and_dates(app, clock):
    ids = receive(app, zap(lead=1), zap(lead=2, phone="12"))
    client = signed_in(app)

    def found(**query: str) -> list[str]:
        page = text(client.get("/console/events", query_string=query))
        return re.findall(r'href="/console/events/(\d+)"', page)

    assert found(status="invalid") == [str(ids[1])]
    assert found(customer="1", source="zapier") == [str(ids[0])]
    assert len(found(since="2000-01-01", until=f"{clock().year + 1}-01-01")) == 2
    assert found(until="2000-01-01") == [] and found(since=f"{clock().year + 1}-01-01") == []
    assert "YYYY-MM-DD" in text(client.get("/console/events?since=yesterday"))


def test_events_page_by_page_with_an_older_link(app):
    ids = receive(app, *[zap(lead=n) for n in range(55)])
    client = signed_in(app)
    first = text(client.get("/console/events"))
    shown = re.findall(r'href="/console/events/(\d+)"', first)
    assert len(shown) == 50 and shown[0] == str(ids[-1])
    older = re.search(r'href="(/console/events\?before=\d+)" rel="next"', first).group(1)
    second = re.findall(r'href="/console/events/(\d+)"', text(client.get(older)))
    assert second == [str(i) for i in reversed(ids[:5])]


def test_one_event_shows_its_body_recall_timeline_and_audit(app, sandbox):
    failed = failed_event(app, sandbox)
    page = text(signed_in(app).get(f"/console/events/{failed}"))
    assert "&#34;request_id&#34;: &#34;req-7&#34;" in page  # the raw body, escaped
    assert "********567" in page and "93001234567" not in page
    assert "300 123 4567" not in page and "&#34;phone&#34;: &#34;*******567&#34;" in page
    assert f"/console/sources/zapier/try?event={failed}" in page
    assert "HTTP" in page and re.search(r'<td class="num">400</td>', page)
    assert re.search(r"\d+ ms", page)


def test_retry_cancel_and_reveal_go_through_operations_and_are_audited(app, sandbox):
    failed = failed_event(app, sandbox)
    [queued] = receive(app, zap(lead=9))
    client = signed_in(app)
    retried = post(client, f"/console/events/{failed}/retry", {"at": "2031-01-15T10:30"})
    assert retried.status_code == 303
    assert "is queued again" in text(client.get(retried.headers["Location"]))
    assert event(app, failed)["status"] == "queued"
    assert event(app, failed)["recall"]["recall_date"] == "20310115103000"
    cancelled = post(client, f"/console/events/{queued}/cancel", {"why": "asked not to call"})
    assert cancelled.status_code == 303
    assert event(app, queued)["reason"] == "cancelled by an operator: asked not to call"
    revealed = post(client, f"/console/events/{queued}/reveal")
    assert revealed.status_code == 200 and "93001234567" in text(revealed)
    log = bridge_of(app).store.audit_log()
    assert [(e["actor"], e["action"], e["event_id"]) for e in log] == [
        ("admin", "reveal", queued), ("admin", "cancel", queued), ("admin", "retry", failed)]
    audit_page = text(client.get("/console/audit"))
    assert "reveal phone" in audit_page and "asked not to call" in audit_page


def test_a_refused_action_says_why(app):
    [queued] = receive(app, zap())
    client = signed_in(app)
    answer = post(client, f"/console/events/{queued}/retry")
    assert "Not retried" in text(client.get(answer.headers["Location"]))
    answer = post(client, f"/console/events/{queued}/cancel", {"why": " "})
    assert "say why" in text(client.get(answer.headers["Location"]))
    assert post(client, "/console/events/999999/reveal").status_code == 404


def test_bulk_retry_previews_how_many_then_retries_on_confirmation(app, sandbox):
    receive(app, *[zap(lead=n, phone="12") for n in range(3)])
    client = signed_in(app)
    preview = text(client.get("/console/bulk", query_string={
        "status": "invalid", "source": "zapier", "preview": "1"}))
    assert "3 events will be queued again." in preview
    assert bridge_of(app).store.audit_log() == []  # a preview changes nothing
    done = post(client, "/console/bulk", {"status": "invalid", "source": "zapier"})
    assert done.status_code == 303
    result = text(client.get(done.headers["Location"]))
    assert "0 events queued again; 3 refused." in result and "still invalid" in result
    assert bridge_of(app).store.audit_log()[0]["action"] == "bulk-retry"
    assert "Choose failed, invalid or ignored" in text(client.get("/console/bulk?preview=1"))


def test_the_sources_page_lists_each_mapping(app):
    page = text(signed_in(app).get("/console/sources"))
    assert "http://localhost/hooks/zapier" in page
    assert "http://localhost/hooks/zapier/test" in page
    assert bridge_of(app).sources["zapier"].target.key in page and "token" in page


def test_the_playground_shows_the_verdict_and_stores_nothing(app):
    client = signed_in(app)
    body = '[{"request_id": "a", "lead_id": 1, "phone": "300 123 4567"}, {"lead_id": 2}]'
    page = text(client.get("/console/sources/zapier/try?sample=1"))
    assert "request_id" in page  # the sample body, ready to try
    answer = post(client, "/console/sources/zapier/try", {"body": body},
                  token_from="/console/sources/zapier/try")
    page = text(answer)
    assert answer.status_code == 200
    assert "The body makes 2 events." in page
    assert "would be queued" in page and "would be invalid" in page
    good = text(post(client, "/console/sources/zapier/try", {"body": (
        '{"request_id": "a", "lead_id": 1, "phone": "300 123 4567", '
        '"callback_at": "2030-12-01T10:30:00-05:00"}')}))
    assert "would be queued" in good and "********567" in good and "93001234567" not in good
    assert "the lead would be called at 2030-12-01 10:30:00, as asked" in good
    bad = text(post(client, "/console/sources/zapier/try", {"body": "{not json"}))
    assert "cannot be read as json" in bad
    assert bridge_of(app).store.counts() == {}


def test_the_playground_reads_a_form_body_with_the_content_type_chosen(app):
    client = signed_in(app)
    body = ("lead_id=4876876000000423001&phone=%2B57+300+123+4567"
            "&callback_at=2030-12-01T10%3A30%3A00-05%3A00&modified_time=2026-11-28T08%3A15")
    page = text(post(client, "/console/sources/zoho/try", {
        "body": body, "content_type": "application/x-www-form-urlencoded"}))
    assert "would be queued" in page, page
    multipart = ("--XyZ\r\nContent-Disposition: form-data; name=\"lead_id\"\r\n\r\n42\r\n"
                 "--XyZ\r\nContent-Disposition: form-data; name=\"phone\"\r\n\r\n3001234567\r\n"
                 "--XyZ--\r\n")
    page = text(post(client, "/console/sources/zoho/try", {
        "body": multipart, "content_type": "multipart/form-data"}))
    assert "The body makes 1 event." in page and "cannot be read" not in page


@pytest.mark.parametrize("name", ["bitrix24", "kommo", "activecampaign", "hubspot"])
def test_the_playground_judges_a_shipped_sample_as_the_hook_does(app, name):
    """Form sources unflatten their bracketed keys and drop their secret field (a nested one
    for bitrix24) before splitting; a lookup source says which lookup its fields wait for."""
    client = signed_in(app)
    sample = next((Path(bridge_of(app).settings.mappings_dir) / "samples").glob(f"{name}.*"))
    page = text(post(client, f"/console/sources/{name}/try", {
        "body": sample.read_text(encoding="utf-8"),
        "content_type": "application/x-www-form-urlencoded"}))
    assert "would be queued" in page, page
    assert "would be invalid" not in page
    if name == "hubspot":  # its sample also holds events of other subscriptions
        assert "The fields come after the HubSpot contact lookup" in page
    else:
        assert "would be ignored" not in page


def test_the_playground_judges_a_stored_event_again(app):
    [event_id] = receive(app, zap(phone="12"))
    page = text(signed_in(app).get(f"/console/sources/zapier/try?event={event_id}"))
    assert f"Stored event {event_id}, judged with today's mapping." in page
    assert "would be invalid" in page and "recall_telephone" in page
    assert bridge_of(app).store.counts() == {"invalid": 1}


def test_the_capture_page_shows_a_test_event_posted_to_the_capture_url(app):
    client = signed_in(app)
    empty = text(client.get("/console/capture"))
    assert "No test events yet" in empty and 'http-equiv="refresh"' in empty
    answer = client.post("/hooks/zapier/test", json=zap(), headers=ZAP_HEADERS)
    [captured] = answer.get_json()["events"]
    page = text(client.get("/console/capture?source=zapier"))
    assert f"Event {captured['id']}" in page and "would be queued" in page
    assert "********567" in page
    news = client.get(f"/console/capture.json?after={captured['id'] - 1}").get_json()
    assert [e["id"] for e in news["events"]] == [captured["id"]]
    assert "would be queued" in news["events"][0]["html"]
    assert client.get(f"/console/capture.json?after={captured['id']}").get_json()[
        "events"] == []
    assert app.test_client().get("/console/capture.json").status_code == 401


def test_console_pages_are_not_cached_and_cannot_be_framed(app):
    answer = signed_in(app).get("/console/")
    assert answer.headers["Cache-Control"] == "no-store"
    assert answer.headers["X-Frame-Options"] == "DENY"
    assert "script-src 'self'" in answer.headers["Content-Security-Policy"]
