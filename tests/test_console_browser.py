"""The console in a real browser (Debian's chromium, headless, driven by Playwright) against the
bridge served by gunicorn: sign in with the keyboard, watch a webhook become delivered, find it
by phone, retry a refused one with the keyboard, try the playground, watch a test event arrive
on the capture page, bulk retry, switch to Spanish, sign out; no browser console error on the
way. A screenshot of every page, in English and in Spanish, lands in test-output/console/."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import ENVIRON, ROOT, SANDBOX_TOKEN, in_ci
from tests.procs import gunicorn
from tests.test_receiver import ZAP_HEADERS, zap

pytestmark = pytest.mark.slow
ADMIN = "admin-token-for-the-browser-0123"
# Debian's chromium; TEST_CHROMIUM points the suite at another Chromium build.
CHROMIUM = Path(os.environ.get("TEST_CHROMIUM") or "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SHOTS = ROOT / "test-output" / "console"
PHONE = "301 555 1234"  # as a person types it; stored as 93015551234


@pytest.fixture(autouse=True)
def chromium() -> Path:
    """The browser, checked before anything starts: missing, the suite is skipped on a
    developer's machine with the fix, and fails in CI (.ci/run installs it)."""
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        if in_ci():
            pytest.fail(f"{CHROMIUM} is missing and CI runs the browser suite: .ci/run installs "
                        "it (apt-get install chromium)", pytrace=False)
        pytest.skip(f"the console's browser suite needs Chromium at {CHROMIUM}: install it with "
                    "`apt-get install chromium` (or `.ci/run`, as CI does), or set TEST_CHROMIUM "
                    "to a Chromium binary")
    return CHROMIUM


@pytest.fixture
def bridge(tmp_path: Path, sandbox: Any, mappings_dir: Path) -> Iterator[str]:
    """The bridge under gunicorn (two workers, each delivering) with the console on."""
    env = {**ENVIRON, "DATABASE_URL": f"sqlite:///{tmp_path / 'bridge.db'}",
           "MAPPINGS_DIR": str(mappings_dir), "WOLKVOX_BASE_URL": sandbox.url,
           "WOLKVOX_TOKEN": SANDBOX_TOKEN, "ADMIN_TOKEN": ADMIN, "POLL_INTERVAL": "0.05",
           "SPOOL_DIR": str(tmp_path / "spool"), "WEB_CONCURRENCY": "2"}
    proc, url = gunicorn(env, tmp_path / "web.log")
    try:
        yield url
    finally:
        proc.kill()


@pytest.fixture
def page() -> Iterator[Any]:
    """A headless chromium page that records every console error and uncaught exception."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 900},
                                      locale="en-US")
        tab = context.new_page()
        tab.set_default_timeout(15_000)
        tab.errors = []
        tab.on("console", lambda message: message.type == "error" and tab.errors.append(
            f"console: {message.text}"))
        tab.on("pageerror", lambda error: tab.errors.append(f"page error: {error}"))
        try:
            yield tab
        finally:
            context.close()
            browser.close()


def shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def tab_to(page: Any, selector: str, limit: int = 60) -> None:
    """Press Tab until the element matching `selector` has the focus (keyboard only)."""
    for _ in range(limit):
        if page.evaluate("s => document.activeElement && document.activeElement.matches(s)",
                         selector):
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"Tab never reached {selector}")


def until(check: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.2)


def send(url: str, path: str = "/hooks/zapier", **body: Any) -> dict:
    answer = requests.post(url + path, json=zap(**body), headers=ZAP_HEADERS, timeout=10)
    assert answer.status_code == 202, answer.text
    return answer.json()["events"][0]


def status_on_page(page: Any, url: str, event_id: int) -> str:
    page.goto(f"{url}/console/events/{event_id}")
    return page.locator("h1 .status").get_attribute("class").split("status-")[-1]


def test_an_operator_walks_through_the_console(bridge: str, page: Any, sandbox: Any) -> None:
    url = bridge
    # --- sign in with the keyboard alone -------------------------------------------------
    page.goto(f"{url}/console/")
    assert page.url.startswith(f"{url}/console/login")
    assert page.title() == "Sign in · Recall Bridge"
    shot(page, "login-en")
    tab_to(page, "#token")
    page.keyboard.type(ADMIN)
    page.keyboard.press("Enter")
    page.wait_for_url(f"{url}/console/")
    assert page.get_by_role("heading", level=1).inner_text() == "Overview"
    page.keyboard.press("Tab")  # the skip link comes first
    assert page.evaluate("document.activeElement.className") == "skip"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"

    # --- a signed webhook becomes delivered on the events page ---------------------------
    delivered = send(url, lead=101, phone=PHONE)["id"]
    send(url, lead=102, phone="12")  # invalid: for the bulk retry
    page.goto(f"{url}/console/events")
    row = page.locator("tr", has=page.locator(f'a[href="/console/events/{delivered}"]'))

    def shown_delivered() -> bool:
        page.reload()
        return row.locator(".status").get_attribute("class").endswith("status-delivered")

    until(shown_delivered)
    assert row.locator(".status").inner_text() == "delivered"

    # --- filter by the phone as a person types it; open the event -------------------------
    page.get_by_label("Phone").fill(PHONE)
    page.get_by_role("button", name="Filter").click()
    links = page.locator("table.events tbody a")
    assert links.count() == 1 and links.first.inner_text() == str(delivered)
    assert "********234" in page.locator("table.events").inner_text()
    shot(page, "events-en")
    links.first.click()
    assert page.get_by_role("heading", level=1).inner_text().startswith(f"Event {delivered}")
    assert "delivered" in page.locator("#timeline ~ div table").inner_text()
    shot(page, "event-en")

    # --- wolkvox refuses one (400): failed; retried with the keyboard --------------------
    sandbox.configure(script=[400])
    failed = send(url, lead=103)["id"]
    until(lambda: status_on_page(page, url, failed) == "failed")
    assert "400" in page.locator("#timeline ~ div table").inner_text()
    shot(page, "event-failed-en")
    tab_to(page, 'form[action$="/retry"] button')
    page.keyboard.press("Enter")
    page.wait_for_load_state()
    assert "is queued again" in page.locator(".messages").inner_text()
    until(lambda: status_on_page(page, url, failed) == "delivered")
    shot(page, "event-retried-en")

    # --- sources and the playground ------------------------------------------------------
    page.goto(f"{url}/console/sources")
    assert f"{url}/hooks/zapier/test" in page.locator("main").inner_text()
    shot(page, "sources-en")
    page.get_by_role("link", name="Try a body with zapier", exact=True).click()
    page.get_by_label("Body (json)").fill(
        '{"request_id": "try-1", "lead_id": 55, "phone": "300 123 4567", '
        '"callback_at": "2030-12-01T10:30:00-05:00"}')
    page.get_by_role("button", name="Try this body").click()
    verdict = page.locator("#result").inner_text()
    assert "would be queued" in verdict and "********567" in verdict
    assert "2030-12-01 10:30:00, as asked" in verdict
    shot(page, "playground-en")

    # --- capture: a test event appears without reloading (the page's script polls) --------
    page.goto(f"{url}/console/capture")
    captured = send(url, "/hooks/zapier/test", lead=104)["id"]
    page.wait_for_selector(f'li[data-id="{captured}"]', timeout=10_000)
    assert "would be queued" in page.locator(f'li[data-id="{captured}"]').inner_text()
    shot(page, "capture-en")

    # --- bulk retry: preview, then confirm ---------------------------------------------
    page.goto(f"{url}/console/bulk")
    page.get_by_label("Status").select_option("invalid")
    page.get_by_label("Source").select_option("zapier")
    page.get_by_role("button", name="Preview").click()
    assert page.locator("#bulk-count").inner_text() == "1 event will be queued again."
    shot(page, "bulk-en")
    page.get_by_role("button", name=re.compile("^Confirm")).click()
    assert "0 events queued again; 1 refused." in page.locator(".messages").inner_text()

    page.goto(f"{url}/console/audit")
    # the retry, the bulk's retry that left its event invalid, and the bulk retry
    assert page.locator("main table tbody tr").count() == 3
    shot(page, "audit-en")
    page.goto(f"{url}/console/")
    shot(page, "overview-en")

    # --- in Spanish --------------------------------------------------------------------
    page.get_by_role("link", name="Español").click()
    assert page.locator("html").get_attribute("lang") == "es"
    assert page.get_by_role("heading", level=1).inner_text() == "Resumen"
    shot(page, "overview-es")
    spanish = {  # screenshot -> (page, its heading in Spanish)
        "events-es": (f"/console/events?phone={PHONE}", "Eventos"),
        "event-es": (f"/console/events/{failed}", f"Evento {failed}"),
        "bulk-es": ("/console/bulk?status=invalid&source=zapier&preview=1", "Reintento masivo"),
        "sources-es": ("/console/sources", "Orígenes"),
        "playground-es": (f"/console/sources/zapier/try?event={delivered}", "Pruebas: zapier"),
        "capture-es": ("/console/capture", "Captura"),
        "audit-es": ("/console/audit", "Auditoría"),
    }
    for name, (path, heading) in spanish.items():
        page.goto(url + path)
        assert page.get_by_role("heading", level=1).inner_text().startswith(heading), path
        shot(page, name)

    # --- sign out ----------------------------------------------------------------------
    page.get_by_role("button", name="Cerrar sesión").click()
    page.wait_for_url(re.compile(r".*/console/login"))
    assert page.get_by_role("heading", level=1).inner_text() == "Inicie sesión en la consola"
    shot(page, "login-es")
    page.goto(f"{url}/console/events")
    assert "/console/login" in page.url  # the session is gone

    assert page.errors == []


@pytest.fixture
def results_bridge(tmp_path: Path, sandbox: Any, mappings_dir: Path) -> Iterator[str]:
    """The bridge under gunicorn with call results on, against a sandbox that dials."""
    sandbox.configure(autodial="ANSWER")
    env = {**ENVIRON, "DATABASE_URL": f"sqlite:///{tmp_path / 'bridge.db'}",
           "MAPPINGS_DIR": str(mappings_dir), "WOLKVOX_BASE_URL": sandbox.url,
           "WOLKVOX_TOKEN": SANDBOX_TOKEN, "ADMIN_TOKEN": ADMIN, "POLL_INTERVAL": "0.05",
           "SPOOL_DIR": str(tmp_path / "spool"), "WEB_CONCURRENCY": "2",
           "CALL_RESULTS_INTERVAL": "1", "WOLKVOX_MIN_LEAD": "0"}
    proc, url = gunicorn(env, tmp_path / "web.log")
    try:
        yield url
    finally:
        proc.kill()


def test_a_callbacks_whole_story_reads_in_the_console_in_both_languages(
        results_bridge: str, page: Any, sandbox: Any) -> None:
    url = results_bridge
    now = datetime.now(UTC).isoformat()
    event_id = send(url, lead=301, phone=PHONE, callback_at=now)["id"]
    page.goto(f"{url}/console/login")
    page.fill("#token", ADMIN)
    page.keyboard.press("Enter")
    page.wait_for_url(f"{url}/console/")

    def called() -> bool:
        page.goto(f"{url}/console/events/{event_id}")
        return page.locator(".call-result").count() > 0 and "ANSWER" in page.locator(
            ".call-result").inner_text()

    until(called, 30)
    for lang, words, outcome in (("en", "answered (ANSWER)", "called"),
                                 ("es", "contestó (ANSWER)", "llamada")):
        page.context.add_cookies([{"name": "console_lang", "value": lang, "url": url}])
        page.goto(f"{url}/console/events/{event_id}")
        assert page.locator(".call-result").inner_text() == words
        timeline = page.locator("main").inner_text()
        assert outcome in timeline and PHONE not in timeline
        shot(page, f"event-call-result-{lang}")
        page.goto(f"{url}/console/events?result=ANSWER")
        assert words in page.locator("main").inner_text()
        page.goto(f"{url}/console/")
        shot(page, f"overview-calls-{lang}")
    assert page.errors == []


@pytest.fixture
def writeback_bridge(tmp_path: Path, sandbox: Any, mappings_dir: Path,
                     hubspot_server: Any) -> Iterator[tuple[str, Any]]:
    """The bridge under gunicorn writing HubSpot notes (a zapier mapping with the HubSpot
    write-back) to HubSpot's look-alike, call results on, against a sandbox that dials."""
    from tests.test_writeback import NOTE_MAPPING

    hubspot_server.reset()
    for lead in (401, 402):
        hubspot_server.add_contact(lead)
    (mappings_dir / "zapnote.yaml").write_text(NOTE_MAPPING % "{{ note }}", encoding="utf-8")
    sandbox.configure(autodial="ANSWER")
    env = {**ENVIRON, "DATABASE_URL": f"sqlite:///{tmp_path / 'bridge.db'}",
           "MAPPINGS_DIR": str(mappings_dir), "WOLKVOX_BASE_URL": sandbox.url,
           "WOLKVOX_TOKEN": SANDBOX_TOKEN, "ADMIN_TOKEN": ADMIN, "POLL_INTERVAL": "0.05",
           "SPOOL_DIR": str(tmp_path / "spool"), "WEB_CONCURRENCY": "2",
           "CALL_RESULTS_INTERVAL": "1", "WOLKVOX_MIN_LEAD": "0",
           "NOTES_URL": hubspot_server.url, "NOTES_TOKEN": ENVIRON["HUBSPOT_PRIVATE_APP_TOKEN"]}
    proc, url = gunicorn(env, tmp_path / "web.log")
    try:
        yield url, hubspot_server
    finally:
        proc.kill()


def test_what_the_crm_was_told_reads_in_the_console_in_both_languages(
        writeback_bridge: tuple[str, Any], page: Any) -> None:
    url, crm = writeback_bridge
    now = datetime.now(UTC).isoformat()
    told = send(url, "/hooks/zapnote", lead=401, phone=PHONE, callback_at=now)["id"]
    crm.contacts.pop("402")  # HubSpot refuses a note on a contact it does not know
    refused = send(url, "/hooks/zapnote", lead=402, phone=PHONE, callback_at=now)["id"]
    page.goto(f"{url}/console/login")
    page.fill("#token", ADMIN)
    page.keyboard.press("Enter")
    page.wait_for_url(f"{url}/console/")

    def both_notes() -> bool:
        page.goto(f"{url}/console/events/{told}")
        return page.locator("tr.writeback").count() == 2

    until(both_notes, 30)
    for lang, words in (("en", ("Told the CRM", "written", "scheduled", "called")),
                        ("es", ("Lo que se le dijo al CRM", "escrito", "programada",
                                "llamada"))):
        page.context.add_cookies([{"name": "console_lang", "value": lang, "url": url}])
        page.goto(f"{url}/console/events/{told}")
        section = page.locator("section[aria-labelledby=writebacks]").inner_text()
        assert all(word in section for word in words), section
        assert PHONE not in page.locator("main").inner_text()
        shot(page, f"event-writebacks-{lang}")
    page.goto(f"{url}/console/events/{refused}")
    assert page.locator("tr.writeback .status-wb-failed").count() >= 1
    crm.add_contact(402)
    page.get_by_role("button", name="Reintentar los writebacks fallidos").click()

    def refused_then_written() -> bool:
        page.goto(f"{url}/console/events/{refused}")
        return page.locator("tr.writeback .status-wb-failed").count() == 0 and \
            page.locator("tr.writeback .status-wb-done").count() >= 1

    until(refused_then_written, 30)
    bodies = [note["body"] for note in crm.notes if note["contact"] == "401"]
    assert bodies[0].startswith("Llamada programada para el ")
    assert bodies[1].startswith("Llamada del ") and bodies[1].endswith("contestó (ANSWER).")
    assert page.errors == []
