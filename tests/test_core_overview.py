"""The console's overview and the API's /overview show the same figures for the same store
(one read model, operators/overview.py): the days are the operation's local days, every
configured source is listed, and a hold whose time has passed is shown by neither. On SQLite
and PostgreSQL (the `database_url` fixture)."""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from tests.conftest import bridge_of, drain
from tests.test_console import ADMIN, signed_in, text
from tests.test_delivery import receive
from tests.test_receiver import ZAP_HEADERS, zap

BOGOTA = ZoneInfo("America/Bogota")  # UTC-5 all year
NOW = datetime(2030, 11, 25, 0, 30, tzinfo=BOGOTA)  # half an hour after local midnight
SHOWN = ("delivered", "failed", "invalid", "ignored")  # the console's columns after "received"


@pytest.fixture
def app(make_app, clock):
    clock.now = NOW
    return make_app(admin_token=ADMIN, wolkvox_timezone="America/Bogota")


def received_at(app, clock, when: datetime, *bodies: dict) -> list[int]:
    """Events the hook received at `when` (the clock is put back to NOW afterwards)."""
    clock.now = when
    try:
        return receive(app, *bodies)
    finally:
        clock.now = NOW


def api_overview(app) -> dict:
    answer = app.test_client().get("/api/v1/overview",
                                   headers={"Authorization": f"Bearer {ADMIN}"})
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return answer.get_json()


def api_figures(by_status: dict[str, int]) -> list[int]:
    """The console's five columns, from the API's counts by status."""
    received = sum(n for status, n in by_status.items() if status != "test")
    return [received, *(by_status.get(status, 0) for status in SHOWN)]


def console_rows(page: str) -> dict[str, tuple[list[int], list[int]]]:
    """{source: (today's five figures, the week's)} from the overview page's first table."""
    rows = re.findall(r'<th scope="row"><a href="/console/events\?source=([^"]+)">[^<]+</a>'
                      r"</th>(.*?)</tr>", page, re.S)
    found = {}
    for name, cells in rows:
        numbers = [int(n) for n in re.findall(r"<td[^>]*>(?:<a [^>]+>)?(\d+)", cells)]
        assert len(numbers) == 10, (name, numbers)
        found[name] = (numbers[:5], numbers[5:])
    return found


def console_token(page: str, key: str) -> str:
    """The token's row on the overview page (its tokens table)."""
    found = re.search(rf"<code>{re.escape(key)}</code></th>(.*?)</tr>", page, re.S)
    assert found, f"no row for token {key}"
    return found.group(1)


def test_both_count_the_seven_local_days_around_midnight_in_bogota(app, clock):
    late = received_at(app, clock, datetime(2030, 11, 24, 23, 50, tzinfo=BOGOTA),
                       zap(lead=1), zap(lead=2, phone="12"))  # yesterday, 40 minutes ago
    early = received_at(app, clock, datetime(2030, 11, 25, 0, 10, tzinfo=BOGOTA),
                        zap(lead=3))  # today, 20 minutes ago
    first_day = received_at(app, clock, datetime(2030, 11, 19, 0, 5, tzinfo=BOGOTA),
                            zap(lead=4))  # the 7th local day back: in the week
    received_at(app, clock, datetime(2030, 11, 18, 23, 55, tzinfo=BOGOTA),
                zap(lead=5))  # within 168 hours, but the day before the week's first
    assert len(late + early + first_day) == 4
    shown = api_overview(app)
    page = text(signed_in(app).get("/console/"))
    [zapier] = [s for s in shown["sources"] if s["source"] == "zapier"]
    assert api_figures(zapier["today"]) == [1, 0, 0, 0, 0]
    assert api_figures(zapier["week"]) == [4, 0, 0, 1, 0]
    assert console_rows(page)["zapier"] == (api_figures(zapier["today"]),
                                            api_figures(zapier["week"]))
    assert datetime.fromisoformat(shown["today_since"]) == datetime(2030, 11, 25, tzinfo=BOGOTA)
    assert datetime.fromisoformat(shown["week_since"]) == datetime(2030, 11, 19, tzinfo=BOGOTA)


def test_both_list_every_configured_source_with_or_without_events(app, clock):
    received_at(app, clock, NOW, zap(lead=1))
    shown = api_overview(app)
    rows = console_rows(text(signed_in(app).get("/console/")))
    configured = sorted(bridge_of(app).sources)
    assert [s["source"] for s in shown["sources"]] == configured == list(rows)
    hubspot = next(s for s in shown["sources"] if s["source"] == "hubspot")
    assert hubspot["today"] == hubspot["week"] == {}
    assert rows["hubspot"] == ([0] * 5, [0] * 5)


def test_neither_shows_a_lapsed_hold_and_both_show_one_in_force(app, clock):
    store = bridge_of(app).store
    key = bridge_of(app).sources["zapier"].target.key
    now = NOW.timestamp()
    received_at(app, clock, NOW, zap(lead=1))
    store.hold(key, "quota", "daily quota used up", now - 60, now - 3600, 10)  # lapsed
    store.hold("lookup:hubspot", "token", "HubSpot refused the token", now + 600, now)
    client = signed_in(app)
    [token] = api_overview(app)["tokens"]  # one token; a CRM lookup's hold is no token
    assert token["token"] == key and token["hold"] is None and token["queued"] == 1
    row = console_token(text(client.get("/console/")), key)
    assert "held until" not in row and "none" in row

    store.hold(key, "quota", "daily quota used up", now + 600, now, 10)
    [token] = api_overview(app)["tokens"]
    assert token["hold"]["active"] is True and token["hold"]["reason"] == "daily quota used up"
    assert datetime.fromisoformat(token["hold"]["until"]).timestamp() == now + 600
    row = console_token(text(client.get("/console/")), key)
    assert "held until 2030-11-25 00:40" in row and "daily quota used up" in row


def test_the_hourly_series_and_the_sources_page_agree_with_the_overview(app, clock, sandbox):
    received_at(app, clock, datetime(2030, 11, 24, 23, 50, tzinfo=BOGOTA), zap(lead=1))
    received_at(app, clock, datetime(2030, 11, 25, 0, 10, tzinfo=BOGOTA),
                zap(lead=2), zap(lead=3, phone="12"))
    drain(app)  # at NOW: two recalls delivered in the current hour
    client = signed_in(app)
    assert client.post("/hooks/zapier/test", json=zap(lead=9),
                       headers=ZAP_HEADERS).status_code == 202  # a capture: not received
    shown = api_overview(app)
    hours = shown["hourly"]
    assert len(hours) == 48
    assert datetime.fromisoformat(hours[-1]["hour"]) == datetime(2030, 11, 25, tzinfo=BOGOTA)
    assert [(h["received"], h["delivered"]) for h in hours[-2:]] == [(1, 0), (2, 2)]
    page = text(client.get("/console/"))
    received = sum(h["received"] for h in hours)
    delivered = sum(h["delivered"] for h in hours)
    assert f"{received} events received and {delivered} recalls delivered" in page
    assert "2030-11-25 00:00: 2 received, 2 delivered" in page  # the current hour's bar
    [zapier] = [s for s in shown["sources"] if s["source"] == "zapier"]
    assert zapier["today"]["test"] == 1 and api_figures(zapier["today"]) == [2, 1, 0, 1, 0]
    sources = text(client.get("/console/sources"))
    assert "2 received, 1 delivered, 0 failed, 1 invalid, 0 ignored" in sources
