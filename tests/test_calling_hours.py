"""Calling hours: Ley 2300's window, holidays, closed dates, DST, and config mistakes named by key.

Every date asserted in a worked example is first checked against the `holidays` package and the
calendar (weekday), so a wrong assumption fails loudly instead of passing silently."""

from __future__ import annotations

import functools
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import holidays
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from webhooks.timing.calling_hours import CallingHours, CallingHoursError, load_calling_hours

BOGOTA = ZoneInfo("America/Bogota")
MEXICO = ZoneInfo("America/Mexico_City")
LEY_2300 = load_calling_hours("co-ley-2300", "America/Bogota")
CO = holidays.country_holidays("CO", years=range(2026, 2028), language="es")
WEEKDAY = dict(zip(range(7), ("mon", "tue", "wed", "thu", "fri", "sat", "sun"), strict=True))


def bogota(*args: int) -> datetime:
    return datetime(*args, tzinfo=BOGOTA)


def same_instant(a: datetime, b: datetime) -> bool:
    """Aware datetimes in one zone compare by wall clock, ignoring fold: compare instants."""
    return a.astimezone(UTC) == b.astimezone(UTC) and a.utcoffset() == b.utcoffset()


# --- Worked examples: co-ley-2300 in America/Bogota ------------------------------------------

def test_worked_example_dates_are_what_the_calendar_and_holidays_package_say():
    assert date(2026, 11, 27).weekday() == 4 and date(2026, 11, 27) not in CO  # Friday
    assert date(2026, 11, 28).weekday() == 5 and date(2026, 11, 28) not in CO  # Saturday
    assert date(2026, 11, 29).weekday() == 6 and date(2026, 11, 30) not in CO  # Sun, Mon
    assert date(2027, 1, 9).weekday() == 5
    assert CO.get(date(2027, 1, 11)) == "Día de los Reyes Magos (observado)"  # a Monday
    assert date(2027, 1, 11).weekday() == 0 and date(2027, 1, 12) not in CO
    assert CO.get(date(2027, 3, 25)) == "Jueves Santo" and CO.get(date(2027, 3, 26)) == (
        "Viernes Santo")
    assert date(2027, 3, 24) not in CO and date(2027, 3, 27).weekday() == 5
    assert date(2027, 3, 27) not in CO
    assert date(2026, 12, 31).weekday() == 3 and date(2026, 12, 31) not in CO  # Thursday
    assert CO.get(date(2027, 1, 1)) == "Año Nuevo" and date(2027, 1, 1).weekday() == 4
    assert date(2027, 1, 2).weekday() == 5 and date(2027, 1, 2) not in CO


@pytest.mark.parametrize(("asked", "expected"), [
    # Friday 18:59 plus a 30-minute lead is 19:29, after closing: Saturday at 08:00 + margin.
    (bogota(2026, 11, 27, 18, 59) + timedelta(minutes=30), bogota(2026, 11, 28, 8, 10)),
    (bogota(2026, 11, 28, 15, 0), bogota(2026, 11, 30, 7, 10)),  # Saturday closes at 15:00
    (bogota(2026, 11, 29, 0, 0), bogota(2026, 11, 30, 7, 10)),  # Sunday, any time
    (bogota(2026, 11, 29, 12, 30), bogota(2026, 11, 30, 7, 10)),
    (bogota(2026, 11, 29, 23, 59), bogota(2026, 11, 30, 7, 10)),
    (bogota(2027, 1, 9, 16, 0), bogota(2027, 1, 12, 7, 10)),  # Reyes Magos moved to Monday
    (bogota(2027, 3, 24, 19, 30), bogota(2027, 3, 27, 8, 10)),  # Jueves and Viernes Santo
    (bogota(2026, 12, 31, 18, 0), bogota(2026, 12, 31, 18, 0)),  # 31 Dec is a working day
    (bogota(2026, 12, 31, 19, 0), bogota(2027, 1, 2, 8, 10)),  # 1 Jan 2027 is a Friday holiday
])
def test_ley_2300_next_open_worked_examples(asked, expected):
    result = LEY_2300.next_open(asked)
    assert result == expected and result.tzinfo == BOGOTA


def test_next_open_accepts_a_moment_in_any_zone_and_answers_in_the_operations_zone():
    result = LEY_2300.next_open(datetime(2026, 11, 28, 0, 29, tzinfo=UTC))  # Fri 19:29 Bogota
    assert result == bogota(2026, 11, 28, 8, 10) and result.tzinfo == BOGOTA


def test_a_recall_is_never_set_inside_the_margin_after_opening():
    assert not LEY_2300.is_open(bogota(2026, 11, 30, 7, 9, 59))
    assert LEY_2300.is_open(bogota(2026, 11, 30, 7, 10))
    assert LEY_2300.next_open(bogota(2026, 11, 30, 7, 0)) == bogota(2026, 11, 30, 7, 10)


def test_window_end_is_exclusive():
    assert LEY_2300.is_open(bogota(2026, 11, 27, 18, 59, 59))
    assert not LEY_2300.is_open(bogota(2026, 11, 27, 19, 0))


def test_naive_moment_is_refused():
    with pytest.raises(ValueError, match="naive"):
        LEY_2300.next_open(datetime(2026, 11, 27, 12, 0))


def test_lima_has_no_dst_and_uses_peru_holidays():
    lima = load_calling_hours({"preset": "co-ley-2300", "holidays": "PE"}, "America/Lima")
    peru = holidays.country_holidays("PE", years=2026, language="es")
    assert peru.get(date(2026, 7, 28)) == "Día de la Independencia"  # Tuesday
    assert peru.get(date(2026, 7, 29)) == "Día de la Gran Parada Militar"  # Wednesday
    assert date(2026, 7, 30) not in peru and date(2026, 7, 28) not in CO
    zone = ZoneInfo("America/Lima")
    assert lima.next_open(datetime(2026, 7, 27, 19, 0, tzinfo=zone)) == datetime(
        2026, 7, 30, 7, 10, tzinfo=zone)
    assert lima.is_open(datetime(2026, 7, 20, 9, 0, tzinfo=zone))  # a CO, not PE, holiday


# --- Presets extended and overridden ---------------------------------------------------------

def test_preset_extended_with_a_closed_date_closes_it_and_keeps_the_preset_rules():
    hours = load_calling_hours({"preset": "co-ley-2300", "closed": ["2026-12-24"]},
                               "America/Bogota")
    assert hours.name == "co-ley-2300 + 1 closed date"
    assert CO.get(date(2026, 12, 25)) == "Navidad" and date(2026, 12, 24).weekday() == 3
    assert not hours.is_open(bogota(2026, 12, 24, 10, 0))
    assert hours.why_closed(bogota(2026, 12, 24, 10, 0)) == "closed date 2026-12-24"
    assert hours.next_open(bogota(2026, 12, 24, 10, 0)) == bogota(2026, 12, 26, 8, 10)
    assert hours.is_open(bogota(2026, 12, 23, 10, 0))  # the day before is a normal Wednesday
    assert not hours.is_open(bogota(2026, 12, 27, 10, 0))  # Sunday still closed
    assert not hours.is_open(bogota(2026, 12, 8, 10, 0))  # CO holiday still closed
    assert not hours.is_open(bogota(2026, 12, 23, 19, 0))  # weekday window unchanged


def test_business_preset_holidays_can_be_switched_to_another_country():
    assert CO.get(date(2026, 7, 20)) == "Día de la Independencia"
    mexico = holidays.country_holidays("MX", years=2026)
    assert date(2026, 9, 16) in mexico and date(2026, 9, 16) not in CO  # a Wednesday
    business = load_calling_hours("business", "America/Bogota")
    assert not business.is_open(bogota(2026, 7, 20, 9, 0))
    assert business.is_open(bogota(2026, 9, 16, 9, 0))
    assert business.next_open(bogota(2026, 9, 16, 18, 0)) == bogota(2026, 9, 17, 8, 10)
    moved = load_calling_hours({"preset": "business", "holidays": "MX"}, "America/Mexico_City")
    assert moved.country == "MX" and moved.name == "business + own holidays"
    assert not moved.is_open(datetime(2026, 9, 16, 9, 0, tzinfo=MEXICO))
    assert moved.is_open(datetime(2026, 7, 20, 9, 0, tzinfo=MEXICO))


def test_preset_weekly_is_replaced_and_margin_overridden():
    hours = load_calling_hours({"preset": "co-ley-2300", "weekly": {"sat": ["09:00-12:00"]},
                                "margin": 0}, "America/Bogota")
    assert not hours.is_open(bogota(2026, 11, 27, 10, 0))  # weekdays gone with the old week
    assert hours.next_open(bogota(2026, 11, 27, 10, 0)) == bogota(2026, 11, 28, 9, 0)
    assert not hours.is_open(bogota(2027, 5, 1, 10, 0))  # Saturday, Día del Trabajo: CO kept


def test_several_windows_a_day_and_day_ranges():
    hours = load_calling_hours({"weekly": {"mon-fri": ["08:00-12:00", "14:00-18:00"],
                                           "sat-sun": ["10:00-11:00"]}, "holidays": None},
                               "America/Bogota")
    assert hours.next_open(bogota(2026, 11, 27, 12, 0)) == bogota(2026, 11, 27, 14, 10)
    assert hours.next_open(bogota(2026, 11, 29, 9, 0)) == bogota(2026, 11, 29, 10, 10)
    assert hours.is_open(bogota(2026, 12, 8, 9, 0))  # holidays: null keeps holidays open


def test_touching_windows_are_one_window_with_no_margin_gap_between():
    hours = load_calling_hours({"weekly": {"mon": ["08:00-12:00", "12:00-18:00"]}},
                               "America/Bogota")
    assert hours.weekly[0] == ((time(8, 0), time(18, 0)),)
    assert hours.is_open(bogota(2026, 11, 30, 12, 5))


def test_a_window_can_run_to_midnight():
    hours = load_calling_hours({"weekly": {"fri": ["20:00-24:00"]}}, "America/Bogota")
    assert hours.weekly[4] == ((time(20, 0), None),)
    assert hours.is_open(bogota(2026, 11, 27, 23, 59, 59))
    assert hours.next_open(bogota(2026, 11, 28, 0, 0)) == bogota(2026, 12, 4, 20, 10)


def test_calling_hours_that_never_open_are_an_error_not_a_hang():
    closed_year = frozenset(date(2026, 1, 1) + timedelta(days=n) for n in range(500))
    hours = CallingHours(name="custom", timezone="America/Bogota",
                         weekly=(((time(8), time(18)),),) * 7, closed=closed_year)
    with pytest.raises(CallingHoursError, match="never open"):
        hours.next_open(bogota(2026, 1, 1, 9, 0))


# --- DST: windows are local wall times -------------------------------------------------------

def sunday_only(zone: str, window: str, margin: int = 10) -> CallingHours:
    return load_calling_hours({"weekly": {"sun": [window]}, "margin": margin}, zone)


def test_window_opening_inside_a_dst_gap_opens_at_the_first_real_instant_after_it():
    hours = sunday_only("America/Mexico_City", "02:00-05:00")  # 2022-04-03 02:00 -> 03:00
    assert date(2022, 4, 3).weekday() == 6
    result = hours.next_open(datetime(2022, 4, 3, 1, 30, tzinfo=MEXICO))
    assert result == datetime(2022, 4, 3, 3, 0, tzinfo=MEXICO)
    assert result.utcoffset() == timedelta(hours=-5)
    assert result.astimezone(UTC) == datetime(2022, 4, 3, 8, 0, tzinfo=UTC)


@pytest.mark.parametrize(("zone", "day"), [
    ("America/Santiago", date(2022, 9, 11)), ("America/Asuncion", date(2022, 10, 2))])
def test_midnight_dst_gap_opens_the_day_at_one_oclock(zone, day):
    assert day.weekday() == 6
    hours = sunday_only(zone, "00:00-06:00")
    local = ZoneInfo(zone)
    result = hours.next_open(datetime.combine(day - timedelta(days=1), time(23), local))
    assert result == datetime.combine(day, time(1), local)
    assert result.utcoffset() == timedelta(hours=-3)


def test_window_opening_inside_a_repeated_hour_uses_its_first_occurrence():
    hours = sunday_only("America/Mexico_City", "01:00-04:00")  # 2022-10-30 02:00 -> 01:00
    result = hours.next_open(datetime(2022, 10, 30, 0, 30, tzinfo=MEXICO))
    assert (result.hour, result.minute, result.fold) == (1, 10, 0)
    assert result.utcoffset() == timedelta(hours=-5)


@pytest.mark.parametrize(("zone", "asked", "expected", "offset"), [
    ("America/Mexico_City", datetime(2022, 4, 3, 1, 0), datetime(2022, 4, 3, 3, 30), -5),
    ("America/Mexico_City", datetime(2022, 10, 30, 0, 0), datetime(2022, 10, 30, 3, 30), -6),
    ("America/Santiago", datetime(2022, 9, 10, 22, 0), datetime(2022, 9, 11, 3, 30), -3),
    ("America/Santiago", datetime(2022, 4, 2, 22, 0), datetime(2022, 4, 3, 3, 30), -4),
])
def test_window_after_a_dst_change_opens_at_its_wall_time_not_an_hour_off(
        zone, asked, expected, offset):
    hours = sunday_only(zone, "03:20-05:00")
    result = hours.next_open(asked.replace(tzinfo=ZoneInfo(zone)))
    assert result.replace(tzinfo=None) == expected
    assert result.utcoffset() == timedelta(hours=offset)


def test_second_pass_of_a_repeated_hour_reopens_at_the_same_wall_time():
    hours = sunday_only("America/Mexico_City", "01:00-04:00")
    result = hours.next_open(datetime(2022, 10, 30, 1, 5, fold=1, tzinfo=MEXICO))
    assert (result.hour, result.minute, result.fold) == (1, 10, 1)
    assert result.utcoffset() == timedelta(hours=-6)


def test_fall_back_into_a_window_reopens_it_at_the_transition():
    hours = sunday_only("America/Mexico_City", "00:00-01:30")
    asked = datetime(2022, 10, 30, 1, 45, tzinfo=MEXICO)  # first pass, after the window
    assert not hours.is_open(asked)
    result = hours.next_open(asked)
    assert result.astimezone(UTC) == datetime(2022, 10, 30, 7, 0, tzinfo=UTC)
    assert (result.hour, result.minute, result.fold) == (1, 0, 1)


# --- why_closed and describe -----------------------------------------------------------------

@pytest.mark.parametrize(("moment", "reason"), [
    (bogota(2026, 11, 27, 12, 0), ""),
    (bogota(2026, 11, 29, 12, 0), "Sunday"),
    (bogota(2026, 7, 20, 12, 0), "public holiday (Día de la Independencia)"),
    (bogota(2026, 11, 27, 19, 29), "outside 07:00-19:00 on Friday"),
    (bogota(2026, 11, 28, 6, 0), "outside 08:00-15:00 on Saturday"),
    (bogota(2026, 11, 27, 7, 5), "before 07:10 on Friday: 10 min margin after the 07:00 opening"),
])
def test_why_closed_tells_the_operator_the_reason(moment, reason):
    assert LEY_2300.why_closed(moment) == reason


def test_describe_reads_as_one_line():
    assert LEY_2300.describe() == (
        "Mon-Fri 07:00-19:00, Sat 08:00-15:00, closed Sun and CO holidays; America/Bogota time,"
        " calls from 10 min after each opening")
    split = load_calling_hours({"weekly": {"mon-thu": ["08:00-12:00", "14:00-18:00"],
                                           "fri": ["08:00-12:00"]},
                                "holidays": {"country": "BR", "subdivision": "SP"},
                                "closed": ["2026-12-24"], "margin": 0, "outside": "refuse"},
                               "America/Sao_Paulo")
    assert split.describe() == (
        "Mon-Thu 08:00-12:00 and 14:00-18:00, Fri 08:00-12:00, closed Sat-Sun, BR-SP holidays"
        " and 2026-12-24; America/Sao_Paulo time; outside these hours a recall is refused")


# --- Configuration mistakes name the key -----------------------------------------------------

@pytest.mark.parametrize(("spec", "message"), [
    ({"weekly": {}}, "calling_hours.weekly: no weekday selected"),
    ({"closed": ["2026-12-24"]}, "calling_hours.weekly: no weekday selected"),
    ({"weekly": {"mon": [], "sat": []}}, "calling_hours.weekly: no day has a window"),
    ({"weekly": {"mon": ["25:00-26:00"]}},
     "calling_hours.weekly.mon[0]: '25:00-26:00' is not HH:MM-HH:MM"),
    ({"weekly": {"mon": ["7-19"]}}, "calling_hours.weekly.mon[0]: '7-19' is not HH:MM-HH:MM"),
    ({"weekly": {"tue": ["08:00-12:00", "19:00-07:00"]}},
     "calling_hours.weekly.tue[1]: '19:00-07:00' ends before it starts"),
    ({"weekly": {"mon-fri": ["08:00-12:00", "11:00-14:00"]}},
     "calling_hours.weekly.mon-fri: windows 08:00-12:00 and 11:00-14:00 overlap"),
    ({"weekly": {"funday": ["08:00-12:00"]}}, "calling_hours.weekly.funday: unknown day"),
    ({"weekly": {"fri-mon": ["08:00-12:00"]}}, "calling_hours.weekly.fri-mon: unknown day"),
    ({"weekly": {"mon-fri": ["08:00-12:00"], "wed": ["13:00-14:00"]}},
     "calling_hours.weekly.wed: wed is given twice"),
    ({"weekly": {"mon": "08:00-12:00"}}, "calling_hours.weekly.mon: expected a list"),
    ({"weekly": {"mon": ["08:00-08:10"]}},
     "calling_hours.weekly.mon: 08:00-08:10 is not longer than the 10 min margin"),
    ({"preset": "business", "timezone": "America/Lima"},
     "calling_hours.timezone: unknown key (known: closed, holidays, margin, outside, preset,"
     " weekly)"),
    ({"preset": "ley-2300"}, "calling_hours.preset: unknown preset 'ley-2300' (known: business,"
     " co-ley-2300)"),
    ({"preset": "business", "holidays": "XX"}, "calling_hours.holidays: unknown country 'XX'"),
    ({"preset": "business", "holidays": {"country": "ZZ"}},
     "calling_hours.holidays.country: unknown country 'ZZ'"),
    ({"preset": "business", "holidays": {"country": "BR", "subdivision": "XX"}},
     "calling_hours.holidays.subdivision: 'XX' is not a subdivision of BR (known: AC, AL"),
    ({"preset": "business", "holidays": {"country": "MX", "subdivision": "JAL"}},
     "calling_hours.holidays.subdivision: 'JAL' is not a subdivision of MX (known: none)"),
    ({"preset": "business", "holidays": {"country": "CO", "region": "ANT"}},
     "calling_hours.holidays.region: unknown key (known: country, subdivision)"),
    ({"preset": "business", "closed": ["2026-02-30"]},
     "calling_hours.closed[0]: '2026-02-30' is not a date YYYY-MM-DD"),
    ({"preset": "business", "closed": ["2026-12-24", "24/12/2026"]},
     "calling_hours.closed[1]: '24/12/2026' is not a date YYYY-MM-DD"),
    ({"preset": "business", "closed": "2026-12-24"}, "calling_hours.closed: expected a list"),
    ({"preset": "business", "margin": 61}, "calling_hours.margin: 61 is not whole minutes"),
    ({"preset": "business", "margin": -1}, "calling_hours.margin: -1 is not whole minutes"),
    ({"preset": "business", "margin": "10"}, "calling_hours.margin: '10' is not whole minutes"),
    ({"preset": "business", "margin": True}, "calling_hours.margin: True is not whole minutes"),
    ({"preset": "business", "outside": "skip"}, "calling_hours.outside: 'skip' is not one of"),
])
def test_configuration_mistake_names_the_key(spec, message):
    with pytest.raises(CallingHoursError) as error:
        load_calling_hours(spec, "America/Bogota")
    assert str(error.value).startswith(message)


def test_unknown_preset_name_given_alone_names_the_key():
    with pytest.raises(CallingHoursError, match=r"^ops\.calling_hours: unknown preset 'co'"):
        load_calling_hours("co", "America/Bogota", key="ops.calling_hours")


def test_unknown_timezone_names_the_key():
    with pytest.raises(CallingHoursError, match=r"^calling_hours: timezone 'America/Bogata'"):
        load_calling_hours("business", "America/Bogata")


def test_yaml_dates_and_lowercase_country_are_accepted():
    hours = load_calling_hours({"preset": "business", "closed": [date(2026, 12, 24)],
                                "holidays": "mx"}, "America/Mexico_City")
    assert hours.closed == {date(2026, 12, 24)} and hours.country == "MX"


# --- Properties over random calendars, zones and moments -------------------------------------

ZONES = ("America/Bogota", "America/Lima", "America/Santiago", "America/Asuncion",
         "America/Mexico_City", "UTC", "Etc/GMT+5", "Etc/GMT-3")
CALENDARS = (None, "CO", "MX", "CL", "PE", "BR", {"country": "BR", "subdivision": "SP"},
             {"country": "BR", "subdivision": "BA"}, {"country": "CL", "subdivision": "AP"},
             {"country": "CL", "subdivision": "RM"})
FIRST, LAST = datetime(2020, 1, 1, tzinfo=UTC), datetime(2036, 1, 1, tzinfo=UTC)


def offset_changes(zone: ZoneInfo) -> list[datetime]:
    """Every UTC-offset change of `zone` in 2020-2035, to the second (found by bisection)."""
    found, day = [], FIRST
    while day < LAST:
        after = day + timedelta(days=1)
        if day.astimezone(zone).utcoffset() != after.astimezone(zone).utcoffset():
            low, high = int(day.timestamp()), int(after.timestamp())
            while high - low > 1:
                middle = (low + high) // 2
                same = (datetime.fromtimestamp(middle, zone).utcoffset()
                        == day.astimezone(zone).utcoffset())
                low, high = (middle, high) if same else (low, middle)
            found.append(datetime.fromtimestamp(high, UTC))
        day = after
    return found


TRANSITIONS = {name: offset_changes(ZoneInfo(name)) for name in ZONES}
assert len(TRANSITIONS["America/Mexico_City"]) == 6  # DST abolished after October 2022
assert len(TRANSITIONS["America/Santiago"]) > 20 and TRANSITIONS["America/Bogota"] == []
DST_ZONES = tuple(name for name in ZONES if TRANSITIONS[name])


def hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


@st.composite
def day_windows(draw: st.DrawFn, margin: int) -> list[str]:
    """1-3 windows, longer than the margin, some touching; starts favour the small hours,
    where Santiago, Asuncion and Mexico City move their clocks."""
    windows, cursor = [], 0
    for _ in range(draw(st.integers(1, 3))):
        start = cursor + draw(st.one_of(st.integers(0, 150), st.integers(0, 900)))
        end = start + draw(st.integers(margin + 1, 720))
        if end > 1440:
            break
        windows.append(f"{hhmm(start)}-{hhmm(end)}")
        cursor = end
    return windows or ["00:00-24:00"]


@st.composite
def cases(draw: st.DrawFn) -> tuple[CallingHours, datetime]:
    """Random calling hours and a moment: anywhere in 2020-2035, within hours of a DST change
    with a window placed around the change's wall time, or seconds around a window's opening
    (the edges where bugs live). The moment comes in any zone."""
    kind = draw(st.sampled_from(("anywhere", "around a DST change", "at an opening")))
    zone = draw(st.sampled_from(DST_ZONES if kind == "around a DST change" else ZONES))
    margin = draw(st.one_of(st.just(10), st.just(0), st.integers(0, 60)))
    days = draw(st.lists(st.sampled_from(tuple(WEEKDAY.values())), min_size=1, unique=True))
    weekly = {day: draw(day_windows(margin)) for day in days}
    if kind == "around a DST change":
        change = draw(st.sampled_from(TRANSITIONS[zone]))
        after = change.astimezone(ZoneInfo(zone))  # the wall clock just after the change
        start = min(max(after.hour * 60 + after.minute + draw(st.integers(-90, 45)), 0),
                    1440 - margin - 1)
        end = min(start + draw(st.integers(margin + 1, 150)), 1440)
        weekly[WEEKDAY[after.weekday()]] = [f"{hhmm(start)}-{hhmm(end)}"]
        moment = change + timedelta(seconds=draw(st.integers(-2 * 3600, 2 * 3600)))
    else:
        moment = FIRST + timedelta(seconds=draw(st.integers(0, int((LAST - FIRST)
                                                                    .total_seconds()))))
    local = moment.astimezone(ZoneInfo(zone))
    if kind == "at an opening":
        day = local.date() + timedelta(days=draw(st.integers(0, 6)))
        start = draw(st.sampled_from(weekly.get(WEEKDAY[day.weekday()], ["00:00-24:00"])))
        wall = datetime.combine(day, time.fromisoformat(start[:5])) + timedelta(
            minutes=margin, seconds=draw(st.integers(-90, 90)))
        moment = wall.replace(tzinfo=ZoneInfo(zone), fold=draw(st.integers(0, 1)))
        moment = moment.astimezone(UTC)  # a wall time in a DST gap becomes a real instant
    closed = sorted({(local.date() + timedelta(days=n)).isoformat()
                     for n in draw(st.lists(st.integers(-1, 14), max_size=4))})
    spec = {"weekly": weekly, "holidays": draw(st.sampled_from(CALENDARS)), "margin": margin,
            "closed": closed}
    event(kind)
    asked_in = ZoneInfo(draw(st.sampled_from(ZONES)))
    return load_calling_hours(spec, zone), moment.astimezone(asked_in)


def opening_instants(hours: CallingHours, start: datetime, end: datetime) -> list[datetime]:
    """Where an earlier opening could hide in [start, end): start itself, every instant a
    window's start + margin is on the clock (both passes of a repeated hour), and every
    offset change. Checked with is_open instead of scanning minute by minute. Compared in UTC:
    datetimes sharing a zone compare by wall clock, wrong across a DST change."""
    zone = ZoneInfo(hours.timezone)
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    found = [start] + [t for t in TRANSITIONS[hours.timezone] if start <= t < end]
    day = start.astimezone(zone).date() - timedelta(days=1)
    while day <= end.astimezone(zone).date():
        for window_start, _ in hours.weekly[day.weekday()]:
            wall = datetime.combine(day, window_start) + hours.margin
            found += [wall.replace(tzinfo=zone, fold=fold).astimezone(UTC) for fold in (0, 1)]
        day += timedelta(days=1)
    return [t for t in found if start <= t < end]


@functools.cache
def public_holidays(country: str, subdivision: str | None, year: int) -> holidays.HolidayBase:
    return holidays.country_holidays(country, subdiv=subdivision, years=year)


def is_open_by_the_rule(hours: CallingHours, moment: datetime) -> bool:
    """The written rule, computed straight from the holidays package."""
    local = moment.astimezone(ZoneInfo(hours.timezone))
    day = local.date()
    if day in hours.closed or (hours.country and day in public_holidays(
            hours.country, hours.subdivision, day.year)):
        return False
    wall = timedelta(hours=local.hour, minutes=local.minute, seconds=local.second,
                     microseconds=local.microsecond)
    return any(timedelta(hours=s.hour, minutes=s.minute) + hours.margin <= wall
               < (timedelta(hours=e.hour, minutes=e.minute) if e else timedelta(days=1))
               for s, e in hours.weekly[day.weekday()])


PROPERTY = settings(max_examples=500, deadline=None)


@PROPERTY
@given(cases())
def test_next_open_is_open(case):
    hours, moment = case
    result = hours.next_open(moment)
    assert hours.is_open(result)
    assert result.tzinfo == ZoneInfo(hours.timezone)


@PROPERTY
@given(cases())
def test_next_open_is_never_before_the_moment_asked(case):
    hours, moment = case
    result = hours.next_open(moment)
    assert result.astimezone(UTC) >= moment.astimezone(UTC)
    event("kept" if result.astimezone(UTC) == moment.astimezone(UTC) else "moved")


@PROPERTY
@given(cases())
def test_next_open_is_the_earliest_open_moment(case):
    hours, moment = case
    result = hours.next_open(moment)
    for candidate in opening_instants(hours, moment, result):
        assert not hours.is_open(candidate), candidate
    if result.astimezone(UTC) > moment.astimezone(UTC):
        assert not hours.is_open(result.astimezone(UTC) - timedelta(microseconds=1))


@PROPERTY
@given(cases())
def test_next_open_is_idempotent(case):
    hours, moment = case
    result = hours.next_open(moment)
    assert same_instant(hours.next_open(result), result)


@PROPERTY
@given(cases())
def test_next_open_keeps_wall_times_across_dst(case):
    hours, moment = case
    zone = ZoneInfo(hours.timezone)
    result = hours.next_open(moment)
    wall = result.replace(tzinfo=None).time()
    openings = {(datetime.combine(date.min, start) + hours.margin).time()
                for start, _ in hours.weekly[result.weekday()]}
    # Arithmetic in UTC: `result - 1 µs` in its own zone is wall-clock arithmetic.
    just_before = result.astimezone(UTC) - timedelta(microseconds=1)
    after_change = just_before.astimezone(zone).utcoffset() != result.utcoffset()
    if result.astimezone(UTC) == moment.astimezone(UTC):
        event("result is the moment asked")
    elif wall in openings:
        event("result is a window start + margin")
    else:
        # The only other answer: the clock jumped at that instant (out of a gap, or back into a
        # window), and then the opening wall time was not on the clock when it was due.
        event("result is a DST change")
        assert after_change, (result, openings)


@PROPERTY
@given(cases())
def test_is_open_follows_the_written_rule(case):
    hours, moment = case
    assert hours.is_open(moment) == is_open_by_the_rule(hours, moment)
    assert (hours.why_closed(moment) == "") == hours.is_open(moment)
