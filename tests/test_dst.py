"""Daylight saving: the time rules (timerules.schedule) compute in real (UTC) seconds and format
the recall date in the source's zone at the end, so a DST change never sends a recall short of
WOLKVOX_MIN_LEAD, into the past, earlier than asked, or outside the calling hours.

The checks below read a 14-digit recall date the way docs/calling-hours.md says the bridge (and
wolkvox) read it, computed here independently of webhooks/timing/rules.py: a wall time the clock
reads once is that instant; one it reads twice (a fall-back's repeated hour) is the first pass;
one it never reads (a spring-forward gap) is the first instant after the gap."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from webhooks.timing.calling_hours import CallingHours, load_calling_hours
from webhooks.timing.rules import Caps, Plan, schedule

FORMAT = "%Y%m%d%H%M%S"
DST_ZONES = ("America/New_York", "America/Santiago", "Europe/Madrid", "Australia/Lord_Howe",
             "Pacific/Chatham")
ZONES = (*DST_ZONES, "America/Bogota")  # Bogota: no DST, the control
EXPIRE_AFTER = 7200
EVERY_DAY = "mon-sun"


def offset_changes(zone: ZoneInfo, first: datetime, last: datetime) -> list[datetime]:
    """Every UTC-offset change of `zone` between `first` and `last`, to the second."""
    found, day = [], first
    while day < last:
        after = day + timedelta(days=1)
        if day.astimezone(zone).utcoffset() != after.astimezone(zone).utcoffset():
            found.append(bisect_change(day, after, zone))
        day = after
    return found


def bisect_change(low_moment: datetime, high_moment: datetime, zone: ZoneInfo) -> datetime:
    """The first second of (low, high] whose UTC offset in `zone` is high's."""
    low, high = int(low_moment.timestamp()), math.ceil(high_moment.timestamp())
    before = datetime.fromtimestamp(low, zone).utcoffset()
    while high - low > 1:
        middle = (low + high) // 2
        low, high = ((middle, high) if datetime.fromtimestamp(middle, zone).utcoffset() == before
                     else (low, middle))
    return datetime.fromtimestamp(high, UTC)


TRANSITIONS = {name: offset_changes(ZoneInfo(name), datetime(2025, 1, 1, tzinfo=UTC),
                                    datetime(2031, 1, 1, tzinfo=UTC)) for name in ZONES}
assert all(len(TRANSITIONS[name]) == 12 for name in DST_ZONES), TRANSITIONS
assert TRANSITIONS["America/Bogota"] == []


def readings(wall: datetime, zone: ZoneInfo) -> list[datetime]:
    """The UTC instants at which the clock in `zone` reads the naive `wall`, earliest first."""
    found = {wall.replace(tzinfo=zone, fold=fold).astimezone(UTC) for fold in (0, 1)}
    return sorted(t for t in found if t.astimezone(zone).replace(tzinfo=None) == wall)


def read(recall_date: str, zone: ZoneInfo) -> tuple[datetime, bool]:
    """(the instant `recall_date` names as documented, True if it was in a gap)."""
    wall = datetime.strptime(recall_date, FORMAT)
    if found := readings(wall, zone):
        return found[0], False
    low, high = sorted(wall.replace(tzinfo=zone, fold=fold).astimezone(UTC) for fold in (0, 1))
    return bisect_change(low, high, zone), True


@dataclass(frozen=True)
class Case:
    zone: str
    now: float
    asked: str  # a 14-digit wall time, possibly in a gap or a repeated hour
    lead: float
    hours: CallingHours | None = None
    caps: Caps | None = None
    dialled: tuple[float, ...] = field(default=())

    def plan(self) -> Plan:
        return schedule({"recall_date": self.asked}, self.zone, self.now, self.lead, EXPIRE_AFTER,
                        self.hours, self.caps, self.dialled)


def broken_rules(case: Case, plan: Plan) -> list[str]:
    """What `plan` gets wrong for `case`, in words; [] when every rule holds in real time."""
    zone = ZoneInfo(case.zone)
    asked, _ = read(case.asked, zone)
    now = datetime.fromtimestamp(case.now, UTC)
    if plan.action == "expired":
        return [] if asked < now - timedelta(seconds=EXPIRE_AFTER) else [
            f"expired though asked {asked:%H:%M:%S} UTC is within {EXPIRE_AFTER} s of now"]
    if plan.action == "refused":
        return [] if case.hours is not None and case.hours.outside == "refuse" else [
            "refused without calling hours that refuse"]
    broken = []
    sent_date = plan.recall["recall_date"]
    sent, in_gap = read(sent_date, zone)
    if in_gap:
        broken.append(f"sent {sent_date}, a wall time the clock never reads")
    if sent.astimezone(zone).strftime(FORMAT) != sent_date:
        broken.append(f"sent {sent_date} does not convert back to the instant it names")
    if sent < asked:
        broken.append(f"sent {sent_date} is {(asked - sent).total_seconds():g} s before asked")
    if sent.timestamp() < case.now + case.lead:
        broken.append(f"sent {sent_date} is {sent.timestamp() - case.now:g} s ahead of now, "
                      f"not the {case.lead:g} s lead")
    if case.hours is not None and not case.hours.is_open(sent):
        broken.append(f"sent {sent_date} is outside the calling hours in real local time")
    if case.caps is not None and case.caps.per_day is not None:
        day = sent.astimezone(zone).date()
        used = sum(datetime.fromtimestamp(t, zone).date() == day for t in case.dialled)
        if used >= case.caps.per_day:
            broken.append(f"sent {sent_date} on a day already called {used} time(s)")
    return broken


def hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def window(start: int, end: int, margin: int, zone: str, outside: str = "move") -> CallingHours:
    """Every day open from `start` to `end` (minutes of the day, clamped to one day)."""
    start = max(0, min(start, 1439 - margin - 1))
    end = max(min(1440, end), start + margin + 1)
    return load_calling_hours({"weekly": {EVERY_DAY: [f"{hhmm(start)}-{hhmm(end)}"]},
                               "margin": margin, "outside": outside}, zone)


# --- the fixed set: 8,100 plans around every zone's two 2026 changes -------------------------

NOW_MINUTES = (-80, -45, -30, -20, -5, 0, 10, 30, 70)  # real minutes from the change
ASKED_MINUTES = (-70, -40, -15, 0, 10, 25, 45, 75, 130)  # wall minutes from the changing clock


def fixed_cases() -> list[Case]:
    """5 zones x 2 changes (2026) x 9 nows x 9 asked wall times x 10 rule sets = 8,100."""
    cases = []
    for name in DST_ZONES:
        zone = ZoneInfo(name)
        for change in [t for t in TRANSITIONS[name] if t.year == 2026]:
            # The wall time the clock leaves at the change (02:00 in New York in March).
            leaves = ((change - timedelta(seconds=1)).astimezone(zone).replace(tzinfo=None)
                      + timedelta(seconds=1))
            at = leaves.hour * 60 + leaves.minute or 1440  # Santiago's 24:00
            rules: list[tuple[float, CallingHours | None, Caps | None]] = [
                (1800, None, None), (3600, None, None), (300, None, None),
                (1800, window(at - 120, at + 180, 10, name), None),
                (1800, window(at - 30, at + 180, 10, name), None),
                (1800, window(at, at + 180, 0, name), None),
                (1800, window(at + 20, at + 240, 10, name), None),
                (3600, window(at - 180, at + 60, 10, name), None),
                (1800, window(at - 60, at + 120, 0, name), None),
                (1800, None, Caps(per_day=1)),
            ]
            for now_minutes in NOW_MINUTES:
                now = change.timestamp() + now_minutes * 60
                for asked_minutes in ASKED_MINUTES:
                    asked = (leaves + timedelta(minutes=asked_minutes)).strftime(FORMAT)
                    for lead, hours, caps in rules:
                        dialled = (now - 3 * 3600,) if caps else ()
                        cases.append(Case(name, now, asked, lead, hours, caps, dialled))
    return cases


def count_broken(cases: list[Case]) -> tuple[int, list[str]]:
    """How many plans break a rule, and the first few, with the case, for the message."""
    failing = []
    for case in cases:
        if broken := broken_rules(case, plan := case.plan()):
            moment = datetime.fromtimestamp(case.now, UTC)
            failing.append(f"{case.zone} now={moment:%Y-%m-%d %H:%M:%S}Z asked={case.asked} "
                           f"lead={case.lead:g} -> {plan.action} "
                           f"{plan.recall and plan.recall['recall_date']}: {'; '.join(broken)}")
    return len(failing), failing[:10]


def test_no_plan_around_the_2026_dst_changes_breaks_a_time_rule():
    cases = fixed_cases()
    assert len(cases) == 8100
    count, first = count_broken(cases)
    assert count == 0, f"{count} of {len(cases)} plans break a rule:\n" + "\n".join(first)


# --- worked examples -------------------------------------------------------------------------

NEW_YORK = ZoneInfo("America/New_York")


def ny(*args: int, fold: int = 0) -> float:
    return datetime(*args, tzinfo=NEW_YORK, fold=fold).timestamp()


def test_at_spring_forward_the_lead_is_counted_in_real_seconds():
    # 01:50 EST; the clock jumps 02:00 -> 03:00. 03:10 EDT is only 20 real minutes ahead.
    plan = Case("America/New_York", ny(2026, 3, 8, 1, 50), "20260308031000", 1800).plan()
    assert plan.recall["recall_date"] == "20260308032000"
    assert "30 min ahead" in plan.note


def test_at_fall_back_the_lead_never_lands_in_the_past():
    # 01:20 EST, the second pass: 30 real minutes on is 01:50 EST, still in the repeated hour,
    # whose date would read as 01:50 EDT, an hour ago; it is sent at 02:00 EST instead.
    plan = Case("America/New_York", ny(2026, 11, 1, 1, 20, fold=1), "20261101010000",
                1800).plan()
    assert plan.recall["recall_date"] == "20261101020000"
    assert "the clock repeats" in plan.note


def test_a_first_pass_date_of_a_repeated_hour_is_sent_as_asked():
    plan = Case("America/New_York", ny(2026, 11, 1, 0, 0), "20261101013000", 1800).plan()
    assert (plan.recall["recall_date"], plan.note) == ("20261101013000", "")


def test_a_date_in_a_spring_forward_gap_goes_out_at_the_first_instant_after_it():
    plan = Case("America/New_York", ny(2026, 3, 7, 12, 0), "20260308023000", 1800).plan()
    assert plan.recall["recall_date"] == "20260308030000"
    assert "does not exist" in plan.note


def test_a_window_reopened_by_a_fall_back_never_moves_the_recall_before_the_date_asked():
    # Open 00:00-01:30; asked 01:45 EDT (closed). The clock falls back to 01:00 EST, inside the
    # window again, but "...010000" would read as 01:00 EDT, 45 minutes before the date asked.
    hours = load_calling_hours({"weekly": {EVERY_DAY: ["00:00-01:30"]}, "margin": 0},
                               "America/New_York")
    case = Case("America/New_York", ny(2026, 10, 31, 12, 0), "20261101014500", 1800, hours)
    plan = case.plan()
    assert broken_rules(case, plan) == []
    assert plan.recall["recall_date"] == "20261102000000"


def test_without_dst_nothing_changes():
    zone = ZoneInfo("America/Bogota")
    now = datetime(2026, 3, 8, 1, 50, tzinfo=zone).timestamp()
    plan = Case("America/Bogota", now, "20260308021000", 1800).plan()
    assert plan.recall["recall_date"] == "20260308022000"


def test_a_fractional_now_never_rounds_the_lead_down():
    now = ny(2026, 6, 1, 12, 0) + 0.6
    plan = Case("America/New_York", now, "20260601120000", 1800).plan()
    assert plan.recall["recall_date"] == "20260601123001"


# --- the property, over generated plans ------------------------------------------------------

@st.composite
def cases(draw: st.DrawFn) -> Case:
    """A plan within three hours of a DST change (or any moment, for Bogota), the date asked
    as a wall time near it (gaps and repeated hours included), and rules placed around it."""
    name = draw(st.sampled_from(ZONES))
    zone = ZoneInfo(name)
    if TRANSITIONS[name]:
        change = draw(st.sampled_from(TRANSITIONS[name]))
    else:
        change = datetime(2025, 1, 1, tzinfo=UTC) + timedelta(minutes=draw(
            st.integers(0, 6 * 365 * 1440)))
    now = change.timestamp() + draw(st.integers(-3 * 3600, 3 * 3600)) + draw(
        st.sampled_from((0.0, 0.25, 0.999)))
    leaves = ((change - timedelta(seconds=1)).astimezone(zone).replace(tzinfo=None)
              + timedelta(seconds=1))
    asked = (leaves + timedelta(minutes=draw(st.integers(-240, 240)))).strftime(FORMAT)
    lead = draw(st.sampled_from((0, 300, 1800, 3600, 7200)) | st.integers(0, 4 * 3600))
    hours = None
    if draw(st.booleans()):
        at = leaves.hour * 60 + leaves.minute
        start = at + draw(st.integers(-180, 120))
        margin = draw(st.sampled_from((0, 10, 30)))
        hours = window(start, start + draw(st.integers(margin + 2, 300)), margin, name,
                       draw(st.sampled_from(("move", "move", "refuse"))))
    caps, dialled = None, ()
    if draw(st.integers(0, 4)) == 0:
        caps = Caps(per_day=draw(st.integers(1, 2)))
        dialled = tuple(now - t for t in draw(st.lists(st.integers(0, 2 * 86400), max_size=4)))
    return Case(name, now, asked, lead, hours, caps, dialled)


@settings(max_examples=1500, deadline=None)
@given(case=cases())
def test_every_plan_holds_in_real_time_across_dst(case):
    plan = case.plan()
    assert broken_rules(case, plan) == []
