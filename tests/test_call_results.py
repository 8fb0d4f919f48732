"""Call results: the bridge learns from wolkvox's campaign_3 report how each delivered recall's
call went, asking only while a recall awaits, once per interval, within the token's slots and
quota share; bad answers change nothing and are said once. Real HTTP to the sandbox, SQLite
and PostgreSQL."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import SANDBOX_TOKEN, bridge_of
from tests.test_delivery import receive
from tests.test_receiver import zap
from webhooks.delivery.results import match, same_phone
from webhooks.outbound import reports
from webhooks.outbound.wolkvox import WolkvoxError
from webhooks.store.results import Awaiting

BOGOTA = ZoneInfo("America/Bogota")
START = datetime(2026, 12, 1, 10, 0, tzinfo=BOGOTA)  # a Tuesday morning, inside calling hours
RESULTS = {"call_results_interval": 60.0, "wolkvox_min_lead": 0.0}


def bridge(make_app, clock, **overrides):
    clock.now = START
    app = make_app(**{**RESULTS, **overrides})
    return app, bridge_of(app), _worker(app)


def _worker(app):
    from webhooks.delivery.worker import Worker

    b = bridge_of(app)
    return Worker(b.store, b.sources, b.settings, name="test")


def deliver(app, worker, *bodies):
    ids = receive(app, *bodies)
    for _ in range(20):
        if not worker.run_once():
            break
    return ids


def callback(lead: int, at: datetime = START, **extra) -> dict:
    return zap(lead, callback_at=at.isoformat(), **extra)


def dial(sandbox, customer: str, result: str = "ANSWER", at: datetime | None = None,
         **extra) -> None:
    body = {"customer_id": customer, "result": result, **extra}
    if at is not None:
        body["date"] = f"{at:%Y-%m-%d %H:%M:%S}"
    requests.post(f"{sandbox.url}/_sandbox/dial", json=body, timeout=5).raise_for_status()


def look(worker, clock, **later) -> None:
    clock.advance(**later)
    worker.run_once()


def report_requests(sandbox) -> list[dict]:
    with sandbox.state.lock:
        return list(sandbox.state.report_requests)


# --- the loop ----------------------------------------------------------------------------
def test_a_delivered_recall_learns_how_its_call_went(make_app, sandbox, clock):
    app, b, worker = bridge(make_app, clock)
    [event_id] = deliver(app, worker, callback(1))
    row = b.store.get(event_id)
    assert row["status"] == "delivered" and row["result_state"] == "awaiting"
    dial(sandbox, "1", "ANSWER", at=START + timedelta(minutes=1))
    look(worker, clock, minutes=2)
    row = b.store.get(event_id)
    assert (row["result_state"], row["call_result"]) == ("reported", "ANSWER")
    assert row["called_at"] == (START + timedelta(minutes=1)).timestamp()
    called = [a for a in b.store.attempts_of(event_id) if a["outcome"] == "called"]
    assert len(called) == 1 and called[0]["wolkvox_msg"] == "ANSWER"
    assert called[0]["reason_code"] == "call_reported"
    assert "answered (ANSWER)" in called[0]["reason"]
    # asked once as soon as it was delivered (nothing yet), once two minutes later
    first, asked = report_requests(sandbox)
    # the range runs from the earliest moment the call can be (its date less 10 minutes, and
    # its delivery) to now
    assert asked["campaign_id"] == first["campaign_id"] == "4638"
    assert asked["date_ini"] == f"{START:%Y%m%d%H%M%S}"  # delivered at START, dated START
    assert asked["date_end"] == f"{START + timedelta(minutes=2):%Y%m%d%H%M%S}"
    look(worker, clock, minutes=5)
    assert len(report_requests(sandbox)) == 2  # nothing awaits any more: no report


def test_no_report_is_asked_while_nothing_awaits(make_app, sandbox, clock):
    app, b, worker = bridge(make_app, clock)
    for _ in range(5):
        look(worker, clock, minutes=10)
    assert report_requests(sandbox) == []
    # a recall still ahead (its date less 10 minutes not come) is not asked about either
    deliver(app, worker, callback(2, START + timedelta(hours=3)))
    for _ in range(3):
        look(worker, clock, minutes=5)
    assert report_requests(sandbox) == []


def test_results_off_asks_nothing_and_awaits_nothing(make_app, sandbox, clock):
    app, b, worker = bridge(make_app, clock, call_results_interval=0.0)
    [event_id] = deliver(app, worker, callback(1))
    dial(sandbox, "1", at=START + timedelta(minutes=1))
    look(worker, clock, minutes=30)
    assert b.store.get(event_id)["result_state"] is None
    assert report_requests(sandbox) == []


def test_a_campaign_is_asked_at_most_once_per_interval_by_every_worker(make_app, sandbox, clock):
    app, b, worker = bridge(make_app, clock)
    other = _worker(app)  # another process's worker on the same store
    [event_id] = deliver(app, worker, callback(1))
    asked = len(report_requests(sandbox))  # once, as it was delivered
    assert asked == 1
    for _ in range(5):  # 50 s: within one 60 s interval
        look(worker, clock, seconds=10)
        other.run_once()
    assert len(report_requests(sandbox)) == 1
    look(other, clock, seconds=15)  # the interval has passed
    assert len(report_requests(sandbox)) == 2
    assert b.store.get(event_id)["result_state"] == "awaiting"


def test_the_first_row_after_the_recall_is_its_result_and_another_phone_is_said(
        make_app, sandbox, clock):
    app, b, worker = bridge(make_app, clock)
    dial(sandbox, "1", "BUSY", at=START - timedelta(minutes=20), campaign_id="4638")  # before
    [event_id] = deliver(app, worker, callback(1))
    dial(sandbox, "1", "NO-ANSWER", at=START + timedelta(minutes=3), telephone="3109998877")
    dial(sandbox, "1", "ANSWER", at=START + timedelta(minutes=9))
    look(worker, clock, minutes=10)
    row = b.store.get(event_id)
    assert row["call_result"] == "NO-ANSWER" and row["called_phone"] == "3109998877"
    [called] = [a for a in b.store.attempts_of(event_id) if a["outcome"] == "called"]
    assert called["reason_code"] == "call_reported_other_phone"
    assert "3109998877" not in called["reason"]  # masked


def test_a_newer_recall_of_the_lead_takes_over_the_wait(make_app, sandbox, clock):
    app, b, worker = bridge(make_app, clock)
    [older] = deliver(app, worker, callback(1))
    clock.advance(minutes=1)
    [newer] = deliver(app, worker, callback(1, START + timedelta(minutes=5), request_id="r2"))
    assert b.store.get(older)["result_state"] == "replaced"
    assert b.store.get(newer)["result_state"] == "awaiting"
    assert any(a["reason_code"] == "call_replaced" for a in b.store.attempts_of(older))


def test_a_recall_never_reported_is_closed_after_the_max_wait(make_app, sandbox, clock):
    app, b, worker = bridge(make_app, clock, call_results_max_wait=3600.0)
    [event_id] = deliver(app, worker, callback(1))
    look(worker, clock, minutes=1)
    assert b.store.get(event_id)["result_state"] == "awaiting"
    look(worker, clock, hours=1, minutes=1)
    row = b.store.get(event_id)
    assert row["result_state"] == "missing" and row["call_result"] is None
    assert [a["outcome"] for a in b.store.attempts_of(event_id)][-1] == "no_result"
    asked = len(report_requests(sandbox))
    look(worker, clock, minutes=5)
    assert len(report_requests(sandbox)) == asked  # no longer asked about


# --- within the token's limits -------------------------------------------------------------
def test_reports_use_at_most_their_share_of_the_daily_quota(make_app, sandbox, clock):
    app, b, worker = bridge(make_app, clock, wolkvox_daily_limit=20,
                            call_results_share=0.1)  # 2 units a day for reports
    [event_id] = deliver(app, worker, callback(1))
    for _ in range(5):
        look(worker, clock, minutes=2)
    assert len(report_requests(sandbox)) == 2
    day = f"{START:%Y-%m-%d}"
    key = b.sources["zapier"].target.key
    assert b.store.report_units(key, day) == 2
    [state] = b.store.report_states()
    assert state["outcome"] == "waiting" and state["reason_code"] == "report_waiting_units"
    assert b.store.get(event_id)["result_state"] == "awaiting"


def test_a_report_never_takes_the_units_queued_recalls_need(make_app, sandbox, clock):
    app, b, worker = bridge(make_app, clock, wolkvox_daily_limit=3, call_results_share=1.0)
    sandbox.configure(script=[202, 500])  # the second recall fails once and waits, queued
    deliver(app, worker, callback(1), callback(2))  # 2 units used; 1 left
    assert [e["status"] for e in b.store.list_events()] == ["queued", "delivered"]
    look(worker, clock, minutes=2)  # the queued recall needs the last unit: no report
    assert report_requests(sandbox) == []


def test_a_report_refused_for_the_token_holds_it_like_a_recall(make_app, sandbox, clock):
    app, b, worker = bridge(make_app, clock)
    deliver(app, worker, callback(1))
    sandbox.configure(tokens=["another-token"])
    look(worker, clock, minutes=2)
    key = b.sources["zapier"].target.key
    hold = b.store.holds()[key]
    assert hold["kind"] == "token" and "VALIDATE TOKEN" in hold["reason"]
    [state] = b.store.report_states()
    assert state["outcome"] == "refused"


def test_a_report_refused_for_the_quota_holds_the_token_until_the_day_ends(
        make_app, sandbox, clock):
    app, b, worker = bridge(make_app, clock)
    deliver(app, worker, callback(1))
    sandbox.configure(daily_limit=1)  # used by the recall
    look(worker, clock, minutes=2)
    hold = b.store.holds()[b.sources["zapier"].target.key]
    assert hold["kind"] == "quota"
    assert hold["until"] == datetime(2026, 12, 2, tzinfo=BOGOTA).timestamp()


# --- bad answers -----------------------------------------------------------------------------
def test_bad_report_answers_record_nothing_are_said_once_and_are_asked_again(
        make_app, sandbox, clock, caplog):
    app, b, worker = bridge(make_app, clock)
    [event_id] = deliver(app, worker, callback(1))
    dial(sandbox, "1", at=START + timedelta(minutes=1))
    bad = ["report_html", "report_not_json", "report_bad_rows", "report_bad_date",
           "report_huge"]
    codes = []
    with caplog.at_level(logging.WARNING, logger="webhooks.delivery.results"):
        for scripted in bad:
            sandbox.configure(script=[scripted, scripted])
            for _ in range(2):
                look(worker, clock, seconds=61)
                row = b.store.get(event_id)
                assert row["result_state"] == "awaiting" and row["call_result"] is None
            codes.append(b.store.report_states()[0]["reason_code"])
    assert codes == ["report_not_json", "report_not_json", "report_bad_rows",
                     "report_bad_rows", "report_too_large"]
    said = [r.getMessage() for r in caplog.records if r.name == "webhooks.delivery.results"]
    # once per problem, not once per report: five scripted answers twice each
    assert len(said) <= len(bad) and all("phone" not in s for s in said)
    look(worker, clock, seconds=61)  # a good answer at the next interval
    assert b.store.get(event_id)["call_result"] == "ANSWER"
    assert b.store.report_states()[0]["outcome"] == "ok"


def test_a_range_over_31_days_is_never_asked(make_app, sandbox, clock):
    app, b, worker = bridge(make_app, clock, call_results_max_wait=60 * 86400.0)
    deliver(app, worker, callback(1))
    look(worker, clock, days=40)
    asked = report_requests(sandbox)[-1]
    start = datetime.strptime(asked["date_ini"], "%Y%m%d%H%M%S")
    end = datetime.strptime(asked["date_end"], "%Y%m%d%H%M%S")
    assert end - start <= timedelta(days=31)
    assert b.store.report_states()[0]["outcome"] == "ok"


# --- matching and reading, generated -----------------------------------------------------------
rows_strategy = st.lists(st.builds(
    reports.Row, customer_id=st.sampled_from(["1", "2", "3"]),
    called_at=st.integers(0, 10_000).map(float),
    result=st.sampled_from(["ANSWER", "BUSY", "NO-ANSWER"]),
    telephone=st.sampled_from(["", "93001234567", "3001234567", "3109998877"])), max_size=30)
waiting_strategy = st.lists(st.builds(
    Awaiting, id=st.integers(1, 10**6), campaign_id=st.just("4638"),
    customer_id=st.sampled_from(["1", "2", "3", "4"]), phone=st.just("93001234567"),
    scheduled_for=st.integers(0, 10_000).map(float),
    delivered_at=st.integers(0, 10_000).map(float)), max_size=6,
    unique_by=lambda a: a.customer_id)


@settings(max_examples=200, deadline=None)
@given(waiting=waiting_strategy, rows=rows_strategy, unsure=st.sets(st.sampled_from("1234")))
def test_each_recall_gets_the_first_row_of_its_customer_after_it_could_be_called(
        waiting, rows, unsure):
    results = match(waiting, rows, set(unsure), "America/Bogota")
    by_id = {a.id: a for a in waiting}
    for result in results:
        recall = by_id[result.event_id]
        assert recall.customer_id not in unsure
        eligible = sorted(r.called_at for r in rows if r.customer_id == recall.customer_id
                          and r.called_at >= int(recall.since))
        assert eligible and result.called_at == eligible[0]
    matched = {r.event_id for r in results}
    for recall in waiting:  # a recall with an eligible row and no doubt is matched
        if recall.customer_id not in unsure and any(
                r.customer_id == recall.customer_id and r.called_at >= int(recall.since)
                for r in rows):
            assert recall.id in matched


@settings(max_examples=300, deadline=None)
@given(body=st.one_of(
    st.binary(max_size=300),
    st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=12),
                 lambda inner: st.lists(inner, max_size=4)
                 | st.dictionaries(st.sampled_from(["code", "data", "msg", "customer_id",
                                                    "date", "result", "telephone"]),
                                   inner, max_size=5), max_leaves=20).map(
        lambda value: __import__("json").dumps(value).encode())),
    status=st.sampled_from([200, 202, 400, 403, 500]))
def test_any_report_answer_is_a_report_or_one_of_the_wolkvox_kinds(body, status):
    try:
        report = reports.read_report(status, body, 1.0, "4638", "America/Bogota")
    except WolkvoxError:
        return
    assert all(row.customer_id and row.result for row in report.rows)


def test_the_same_phone_across_dial_prefixes():
    assert same_phone("93001234567", "3001234567")
    assert same_phone("573001234567", "93001234567")
    assert not same_phone("93001234567", "3109998877")
    assert same_phone("93001234567", "")


# --- where it shows ----------------------------------------------------------------------------
ADMIN = "admin-token-0123456789abcdef"


def answered(make_app, sandbox, clock):
    """A bridge with one answered callback (lead 1) and one awaiting (lead 2)."""
    app, b, worker = bridge(make_app, clock, admin_token=ADMIN)
    [answered_id, waiting_id] = deliver(app, worker, callback(1), callback(2))
    dial(sandbox, "1", "ANSWER", at=START + timedelta(minutes=1))
    look(worker, clock, minutes=2)
    return app, b, answered_id, waiting_id


def test_events_show_and_list_print_the_result_and_filter_by_it(make_app, sandbox, clock):
    app, b, answered_id, waiting_id = answered(make_app, sandbox, clock)
    runner = app.test_cli_runner()
    shown = runner.invoke(args=["events", "show", str(answered_id)]).output
    assert "call result: ANSWER" in shown
    assert "called at: 2026-12-01 10:01 America/Bogota" in shown
    assert "answered (ANSWER)" in shown  # the timeline's call
    listed = runner.invoke(args=["events", "list", "--result", "ANSWER"]).output
    assert f"{answered_id:>7}" in listed and f"{waiting_id:>7}" not in listed
    waiting = runner.invoke(args=["events", "list", "--result", "awaiting"]).output
    assert f"{waiting_id:>7}" in waiting and "awaiting result" in waiting


def test_the_api_event_gives_the_call_result_and_when_and_filters_by_it(
        make_app, sandbox, clock):
    app, b, answered_id, waiting_id = answered(make_app, sandbox, clock)
    client = app.test_client()
    auth = {"Authorization": f"Bearer {ADMIN}"}
    one = client.get(f"/api/v1/events/{answered_id}", headers=auth).get_json()
    assert one["call_result"] == "ANSWER" and one["result_state"] == "reported"
    assert one["called_at"].startswith("2026-12-01T15:01:00")
    assert any(a["outcome"] == "called" for a in one["attempts"])
    page = client.get("/api/v1/events?result=ANSWER", headers=auth).get_json()
    assert [e["id"] for e in page["events"]] == [answered_id]
    other = client.get(f"/api/v1/events/{waiting_id}", headers=auth).get_json()
    assert (other["call_result"], other["result_state"]) == (None, "awaiting")


def test_the_console_shows_the_result_in_the_page_language(make_app, sandbox, clock):
    from tests.test_console import signed_in

    app, b, answered_id, waiting_id = answered(make_app, sandbox, clock)
    client = signed_in(app)
    for lang, words, waiting in (("en", "answered (ANSWER)", "awaiting result"),
                                 ("es", "contestó (ANSWER)", "esperando resultado")):
        client.set_cookie("console_lang", lang)
        listed = client.get("/console/events").get_data(as_text=True)
        cell = f'<td class="nowrap">{waiting}</td>'
        assert words in listed and cell in listed
        filtered = client.get("/console/events?result=ANSWER").get_data(as_text=True)
        assert words in filtered and cell not in filtered
        page = client.get(f"/console/events/{answered_id}").get_data(as_text=True)
        assert words in page


def test_metrics_count_results_and_report_calls(make_app, sandbox, clock):
    app, b, answered_id, waiting_id = answered(make_app, sandbox, clock)
    text = app.test_client().get("/metrics").get_data(as_text=True)
    assert 'recall_bridge_call_results_total{result="answer"}' in text
    assert 'recall_bridge_report_calls_total{outcome="ok"}' in text


def test_the_overview_shows_answered_callbacks_per_source_and_day(make_app, sandbox, clock):
    from tests.test_console import signed_in

    app, b, answered_id, waiting_id = answered(make_app, sandbox, clock)
    auth = {"Authorization": f"Bearer {ADMIN}"}
    figures = app.test_client().get("/api/v1/overview", headers=auth).get_json()
    [zapier] = [s for s in figures["sources"] if s["source"] == "zapier"]
    assert zapier["calls"] == [{"day": "2026-12-01", "reported": 1, "answered": 1}]
    client = signed_in(app)
    client.set_cookie("console_lang", "es")
    page = client.get("/console/").get_data(as_text=True)
    assert "Rellamadas contestadas por día" in page and "2026-12-01" in page


def test_readyz_says_results_are_on_and_names_a_report_that_went_wrong(
        make_app, sandbox, clock):
    app, b, worker = bridge(make_app, clock)
    deliver(app, worker, callback(1))
    sandbox.configure(script=["report_html"])
    look(worker, clock, minutes=2)
    ready = app.test_client().get("/readyz")
    assert ready.status_code == 200  # recalls still go
    results = ready.get_json()["call_results"]
    assert results["on"] is True and results["awaiting"] == 1
    [bad] = results["reports_not_ok"]
    assert bad["campaign_id"] == "4638" and bad["outcome"] == "bad"
    assert "not JSON" in bad["reason"]


def test_a_report_waits_while_a_recall_of_the_token_is_due(make_app, sandbox, clock):
    app, b, worker = bridge(make_app, clock)
    deliver(app, worker, callback(1))
    asked = len(report_requests(sandbox))
    receive(app, callback(2))  # due now, not yet sent
    clock.advance(minutes=2)
    [group] = worker.groups.values()
    outcome = worker.results.look(group, clock().timestamp())
    assert outcome is not None and outcome.outcome == "busy"
    assert len(report_requests(sandbox)) == asked  # the recall goes first
    worker.run_once()  # sends the recall; the next look asks
    clock.advance(seconds=2)
    worker.run_once()
    assert len(report_requests(sandbox)) == asked + 1


# --- the sandbox's report ------------------------------------------------------------------------
def test_the_sandbox_report_keeps_wolkvoxs_range_and_shows_no_future_call(sandbox):
    headers = {"wolkvox-token": SANDBOX_TOKEN}
    url = f"{sandbox.url}/api/v2/reports_manager.php"
    dial(sandbox, "7", "BUSY", at=datetime(2026, 1, 5, 9, 0), campaign_id="4638")
    dial(sandbox, "8", "ANSWER", at=datetime(2099, 1, 5, 9, 0), campaign_id="4638")
    query = {"api": "campaign_3", "campaign_id": "4638", "date_ini": "20260101000000"}
    found = requests.get(url, params={**query, "date_end": "20260131000000"},
                         headers=headers, timeout=5).json()
    assert [r["customer_id"] for r in found["data"]] == ["7"]
    assert found["msg"] == "1 records were found"
    too_long = requests.get(url, params={**query, "date_end": "20260215000000"},
                            headers=headers, timeout=5)
    assert too_long.status_code == 400
    future = requests.get(url, params={**query, "date_ini": "20990101000000",
                                       "date_end": "20990131000000"}, headers=headers, timeout=5)
    assert future.json()["data"] == []  # not called yet
    assert requests.get(url, params=query, timeout=5).status_code == 401
    assert sandbox.stats()["reports"] == {SANDBOX_TOKEN: 3}
