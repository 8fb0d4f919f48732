"""Calling windows and contact caps as the worker applies them: a recall rings only when the law
and the operation allow, every move says why, and caps hold across processes."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tests.conftest import bridge_of, drain
from tests.test_cli import cli
from tests.test_delivery import event, receive
from tests.test_receiver import zap
from webhooks import ConfigError

BOGOTA = ZoneInfo("America/Bogota")


def with_rules(mappings_dir: Path, rules: str) -> None:
    """The shipped zapier mapping plus `rules` (YAML lines at the top level)."""
    path = mappings_dir / "zapier.yaml"
    path.write_text(path.read_text(encoding="utf-8") + "\n" + rules, encoding="utf-8")


def sunday_night(clock) -> None:
    clock.now = datetime(2026, 11, 29, 21, 0, tzinfo=BOGOTA)  # a Sunday


def test_a_sunday_night_callback_rings_on_monday_morning_with_the_reason(
        make_app, sandbox, clock, mappings_dir):
    sunday_night(clock)
    with_rules(mappings_dir, "calling_hours: co-ley-2300\n")
    app = make_app()
    [event_id] = receive(app, zap(callback_at="2026-11-29T22:00:00-05:00"))
    drain(app)
    [sent] = sandbox.recalls()
    assert sent["recall_date"] == "20261130071000"  # Monday 07:00, plus wolkvox's 10 min
    row = event(app, event_id)
    assert row["status"] == "delivered"
    assert "recall_date moved from 20261129220000 to 20261130071000: Sunday (co-ley-2300)" in (
        row["reason"])
    listing = cli(app, "events", "list").output
    assert "moved from 20261129220000" in listing or "Sunday" in listing


def test_a_source_that_refuses_outside_the_hours_fails_the_event_with_the_reason(
        make_app, sandbox, clock, mappings_dir):
    sunday_night(clock)
    with_rules(mappings_dir, "calling_hours: {preset: co-ley-2300, outside: refuse}\n")
    app = make_app()
    [event_id] = receive(app, zap(callback_at="2026-11-29T22:00:00-05:00"))
    drain(app)
    assert sandbox.recalls() == []
    row = event(app, event_id)
    assert row["status"] == "failed"
    assert row["reason"].startswith("refused: callback time 2026-11-29 22:00 is outside the "
                                    "calling hours: Sunday (co-ley-2300")


def test_the_calling_hours_setting_applies_to_every_source_unless_one_says_none(
        make_app, sandbox, clock, mappings_dir):
    sunday_night(clock)
    app = make_app(calling_hours="business")
    receive(app, zap(lead=1, callback_at="2026-11-29T22:00:00-05:00"))
    drain(app)
    assert [r["recall_date"] for r in sandbox.recalls()] == ["20261130081000"]
    with_rules(mappings_dir, "calling_hours: none\n")
    sandbox.reset()
    free = make_app(calling_hours="business")
    receive(free, zap(lead=2, request_id="other", callback_at="2026-11-29T22:00:00-05:00"))
    drain(free)
    assert [r["recall_date"] for r in sandbox.recalls()] == ["20261129220000"]


def test_a_preset_extended_with_a_closing_day_skips_that_day(make_app, sandbox, clock,
                                                            mappings_dir):
    clock.now = datetime(2026, 12, 23, 20, 0, tzinfo=BOGOTA)  # Wednesday evening
    with_rules(mappings_dir, "calling_hours: {preset: co-ley-2300, closed: [2026-12-24]}\n")
    app = make_app()
    [event_id] = receive(app, zap(callback_at="2026-12-24T09:00:00-05:00"))
    drain(app)
    # the 24th is closed, the 25th is Christmas: Saturday the 26th at 08:10
    assert [r["recall_date"] for r in sandbox.recalls()] == ["20261226081000"]
    assert "closed date 2026-12-24" in event(app, event_id)["reason"]


def test_a_lead_called_today_is_called_again_tomorrow_at_most_once_a_day(
        make_app, sandbox, clock, mappings_dir):
    clock.now = datetime(2026, 11, 30, 9, 0, tzinfo=BOGOTA)  # Monday
    with_rules(mappings_dir, "calling_hours: co-ley-2300\nmax_recalls: {per_day: 1}\n")
    app = make_app()
    receive(app, zap(lead=7, request_id="first", callback_at="2026-11-30T10:00:00-05:00"))
    drain(app)
    clock.now = datetime(2026, 11, 30, 11, 0, tzinfo=BOGOTA)  # the 10:00 call is due: dialled
    other_process = make_app()  # the count is in the store, not in a process
    [second] = receive(other_process, zap(lead=7, request_id="second",
                                          callback_at="2026-11-30T16:00:00-05:00"))
    drain(other_process)
    assert [r["recall_date"] for r in sandbox.recalls()] == ["20261130100000", "20261201071000"]
    reason = event(other_process, second)["reason"]
    assert "the lead was already called 1 time(s) on 2026-11-30 (max_recalls.per_day: 1)" in reason
    # another lead is not held back by this one's cap
    receive(other_process, zap(lead=8, request_id="third",
                               callback_at="2026-11-30T16:00:00-05:00"))
    drain(other_process)
    assert sandbox.recalls()[-1]["recall_date"] == "20261130160000"


def test_a_weekly_cap_moves_the_recall_to_next_week(make_app, sandbox, clock, mappings_dir):
    with_rules(mappings_dir, "calling_hours: co-ley-2300\nmax_recalls: {per_week: 2}\n")
    app = make_app()
    for n, day in enumerate((30, 1)):  # Monday 30 November and Tuesday 1 December
        clock.now = datetime(2026, 11, 30, 8, 0, tzinfo=BOGOTA).replace(
            month=11 if day == 30 else 12, day=day)
        receive(app, zap(lead=9, request_id=f"r{n}",
                         callback_at=f"{clock.now:%Y-%m-%d}T09:00:00-05:00"))
        drain(app)
    clock.now = datetime(2026, 12, 2, 8, 0, tzinfo=BOGOTA)
    receive(app, zap(lead=9, request_id="r2", callback_at="2026-12-02T09:00:00-05:00"))
    drain(app)
    assert [r["recall_date"] for r in sandbox.recalls()][-1] == "20261207071000"  # Monday


def test_calling_hours_that_never_open_stop_the_start_naming_the_key(make_app, mappings_dir):
    with_rules(mappings_dir, "calling_hours: {weekly: {}}\n")
    with pytest.raises(ConfigError) as caught:
        make_app()
    [problem] = caught.value.problems
    assert problem.startswith("mappings/zapier.yaml: calling_hours.weekly")


def test_a_bad_calling_hours_setting_names_the_setting(make_app):
    with pytest.raises(ConfigError) as caught:
        make_app(calling_hours="co-ley-2030")
    assert any("CALLING_HOURS" in p for p in caught.value.problems)


def test_mappings_try_prints_the_date_asked_and_the_date_that_will_be_sent(
        make_app, clock, mappings_dir, tmp_path):
    sunday_night(clock)
    with_rules(mappings_dir, "calling_hours: co-ley-2300\n")
    app = make_app()
    sample = tmp_path / "sunday.json"
    sample.write_text('{"request_id": "s1", "lead_id": 5, "phone": "300 123 4567", '
                      '"callback_at": "2026-11-29T22:00:00-05:00"}')
    result = cli(app, "mappings", "try", "zapier", str(sample))
    assert result.exit_code == 0, result.output
    assert "  recall_date: 20261129220000\n" in result.output
    assert ("  sent: 20261130071000, moved from 20261129220000: Sunday (co-ley-2300)"
            in result.output)


def test_store_keeps_when_each_delivered_recall_rings(make_app, sandbox, clock):
    clock.now = datetime(2026, 11, 30, 9, 0, tzinfo=BOGOTA)
    app = make_app()
    [event_id] = receive(app, zap(callback_at="2026-11-30T10:00:00-05:00"))
    drain(app)
    assert event(app, event_id)["scheduled_for"] == datetime(
        2026, 11, 30, 10, 0, tzinfo=BOGOTA).timestamp()
    assert bridge_of(app).store.dialled(event(app, event_id)["token_key"], "4638", "1",
                                        0, clock().timestamp() + 7200) == [
        datetime(2026, 11, 30, 10, 0, tzinfo=BOGOTA).timestamp()]


# --- the time rules together, as pure functions (hypothesis) ----------------------------------
from datetime import UTC, timedelta  # noqa: E402

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from webhooks.timing.calling_hours import load_calling_hours  # noqa: E402
from webhooks.timing.rules import Caps, schedule  # noqa: E402

ZONES = ["America/Bogota", "America/Santiago", "America/Mexico_City", "America/Lima",
         "America/Sao_Paulo", "UTC"]
moments = st.datetimes(min_value=datetime(2021, 1, 1), max_value=datetime(2034, 12, 1),
                       timezones=st.just(UTC))


@settings(max_examples=400, deadline=None)
@given(now=moments, ahead=st.integers(-3 * 3600, 30 * 86400), zone=st.sampled_from(ZONES),
       preset=st.sampled_from(["co-ley-2300", "business"]),
       lead=st.integers(0, 4 * 3600))
def test_schedule_sends_inside_the_hours_never_before_asked_plus_lead_and_at_the_first_chance(
        now, ahead, zone, preset, lead):
    hours = load_calling_hours(preset, zone)
    asked = (now + timedelta(seconds=ahead)).astimezone(ZoneInfo(zone)).replace(microsecond=0)
    recall = {"recall_date": asked.strftime("%Y%m%d%H%M%S")}
    plan = schedule(recall, zone, now.timestamp(), lead, 7200, hours)
    # recall dates are wall times: one inside a daylight-saving change reads back an hour off
    asked_read = datetime.strptime(recall["recall_date"], "%Y%m%d%H%M%S").replace(
        tzinfo=ZoneInfo(zone))
    if plan.action == "expired":
        assert asked_read < now - timedelta(seconds=7200)
        return
    sent = datetime.strptime(plan.recall["recall_date"], "%Y%m%d%H%M%S").replace(
        tzinfo=ZoneInfo(zone))
    earliest = max(asked_read, now + timedelta(seconds=lead))
    assert hours.is_open(sent)
    assert sent >= earliest - timedelta(seconds=1)  # recall dates have whole seconds
    assert sent <= hours.next_open(earliest) + timedelta(seconds=1)  # the first chance
    assert (plan.note == "") == (plan.recall["recall_date"] == recall["recall_date"])


@settings(max_examples=200, deadline=None)
@given(now=moments, per_day=st.integers(1, 2), per_week=st.none() | st.integers(2, 5),
       calls=st.lists(st.integers(0, 6 * 86400), max_size=8))
def test_schedule_with_caps_lands_in_a_day_and_week_with_room(now, per_day, per_week, calls):
    zone = ZoneInfo("America/Bogota")
    hours = load_calling_hours("co-ley-2300", "America/Bogota")
    dialled = [now.timestamp() - t for t in calls]
    recall = {"recall_date": (now + timedelta(hours=1)).astimezone(zone).strftime(
        "%Y%m%d%H%M%S")}
    plan = schedule(recall, "America/Bogota", now.timestamp(), 1800, 7200, hours,
                    Caps(per_day, per_week), dialled)
    sent = datetime.strptime(plan.recall["recall_date"], "%Y%m%d%H%M%S").replace(tzinfo=zone)
    same_day = [t for t in dialled
                if datetime.fromtimestamp(t, zone).date() == sent.date()]
    assert len(same_day) < per_day
    if per_week is not None:
        week = sent.date().isocalendar()[:2]
        assert len([t for t in dialled
                    if datetime.fromtimestamp(t, zone).date().isocalendar()[:2] == week]) < per_week
    assert hours.is_open(sent)
