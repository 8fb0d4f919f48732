"""Calling hours: when a contact center may dial a lead, as pure functions of time.

`load_calling_hours` compiles config once into a `CallingHours`, which answers for any aware
datetime whether a recall may ring then (`is_open`), the earliest moment it may (`next_open`)
and, for an operator, why not (`why_closed`). No IO, no settings, no clock.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from itertools import groupby
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays

from .. import reasons

# wolkvox's job runs at minutes that are multiples of 6 and activates recalls due within the
# next 10, so a recall set at a window's opening could ring up to 10 minutes before it.
DEFAULT_MARGIN_MINUTES = 10
MAX_MARGIN_MINUTES = 60  # more than an hour of margin is a misread setting, not a policy
MAX_DAYS_AHEAD = 400  # hours that open at all open within a year; stop walking after that
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
OUTSIDE = ("move", "refuse")  # a recall asked outside the hours: moved to next_open, or refused
KNOWN_KEYS = ("closed", "holidays", "margin", "outside", "preset", "weekly")

PRESETS: dict[str, dict[str, Any]] = {
    # Ley 2300 de 2023, artículo 3 (Congreso de Colombia): collection and commercial contact
    # only Monday to Friday 07:00-19:00 and Saturday 08:00-15:00, never on Sundays or holidays.
    "co-ley-2300": {"weekly": {"mon-fri": ["07:00-19:00"], "sat": ["08:00-15:00"]},
                    "holidays": "CO"},
    # Practice, not law: the office day, for operations that only call during business hours.
    "business": {"weekly": {"mon-fri": ["08:00-18:00"]}, "holidays": "CO"},
}

Window = tuple[time, time | None]
_WINDOW = re.compile(r"(\d\d):(\d\d)-(\d\d):(\d\d)")
_DATE = re.compile(r"\d{4}-\d\d-\d\d")
_MINUTE = timedelta(minutes=1)


class CallingHoursError(ValueError):
    """Calling hours that cannot work; the message names the config key and what to fix."""


@dataclass(frozen=True)
class CallingHours:
    """Weekly windows of local wall time (end exclusive, None = 24:00) minus holidays and
    closed dates; a window opens `margin` after its start. Build it with load_calling_hours."""

    name: str
    timezone: str
    weekly: tuple[tuple[Window, ...], ...]
    country: str | None = None
    subdivision: str | None = None
    closed: frozenset[date] = frozenset()
    outside: str = "move"
    margin: timedelta = timedelta(minutes=DEFAULT_MARGIN_MINUTES)

    def __post_init__(self) -> None:
        if len(self.weekly) != 7 or self.outside not in OUTSIDE:
            raise ValueError("CallingHours needs 7 weekly entries and outside move|refuse")
        ZoneInfo(self.timezone)  # an unknown zone fails here, not at the first recall

    def is_open(self, moment: datetime) -> bool:
        """True if a recall may ring at `moment` (aware; a naive one is a ValueError)."""
        local = _utc(moment).astimezone(ZoneInfo(self.timezone))
        if local.date() in self.closed or self._holiday(local.date()):
            return False
        wall = _wall(local)
        return any(opens <= wall < ends for opens, ends in self._spans(local.weekday()))

    def next_open(self, moment: datetime) -> datetime:
        """The earliest t >= `moment` with is_open(t), in self.timezone.

        Walks days, not minutes: in an open day the answer can only be `moment` itself, an
        instant the clock reads a window's start + margin (twice in a repeated hour: the
        first pass comes first), or a DST change (the first instant after a gap that skipped
        the opening, or a fall-back into a window). Raises CallingHoursError if nothing opens
        within MAX_DAYS_AHEAD days, and ValueError for a naive `moment`."""
        zone = ZoneInfo(self.timezone)
        start = _utc(moment)
        first = start.astimezone(zone).date()
        for offset in range(MAX_DAYS_AHEAD + 1):
            day = first + timedelta(days=offset)
            spans = self._spans(day.weekday())
            if not spans or day in self.closed or self._holiday(day):
                continue
            candidates = [t for opens, _ in spans for t in _instants(day, opens, zone)]
            candidates += _changes(day, zone) + ([start] if offset == 0 else [])
            for candidate in sorted(t for t in candidates if t >= start):
                if self.is_open(candidate):
                    return candidate.astimezone(zone)
        raise CallingHoursError(f"calling hours {self.name!r} never open in the {MAX_DAYS_AHEAD}"
                                f" days after {moment.isoformat()}: {self.describe()}")

    def why_closed(self, moment: datetime) -> str:
        """Why a recall may not ring at `moment`, in a few words for an operator; "" if open."""
        if self.is_open(moment):
            return ""
        local = _utc(moment).astimezone(ZoneInfo(self.timezone))
        day, weekday, wall = local.date(), local.weekday(), _wall(local)
        named = reasons.WEEKDAYS[weekday]()
        if not self.weekly[weekday]:
            return named
        if holiday := self._holiday(day):
            return reasons.CLOSED_HOLIDAY(holiday=holiday)
        if day in self.closed:
            return reasons.CLOSED_DATE(date=day.isoformat())
        for opens, _ in self._spans(weekday):
            if opens - self.margin <= wall < opens:
                return reasons.CLOSED_MARGIN(
                    opens=_clock(opens // _MINUTE), day=named, margin=self.margin // _MINUTE,
                    opening=_clock((opens - self.margin) // _MINUTE))
        return reasons.CLOSED_OUTSIDE(windows=_windows(self.weekly[weekday]), day=named)

    def describe(self) -> str:
        """One line, e.g. "Mon-Fri 07:00-19:00, Sat 08:00-15:00, closed Sun and CO holidays;
        America/Bogota time, calls from 10 min after each opening"."""
        opened = [f"{days} {_windows(self.weekly[first])}" for days, first in self._runs(True)]
        shut = [days for days, _ in self._runs(False)]
        if self.country:
            shut.append("-".join(filter(None, (self.country, self.subdivision))) + " holidays")
        dates = sorted(self.closed)
        shut += [d.isoformat() for d in dates] if len(dates) <= 3 else [f"{len(dates)} dates"]
        text = ", ".join(opened)
        if shut:
            text += ", closed " + (f"{', '.join(shut[:-1])} and {shut[-1]}" if shut[1:]
                                   else shut[0])
        text += f"; {self.timezone} time"
        if self.margin:
            text += f", calls from {self.margin // _MINUTE} min after each opening"
        return text + ("; outside these hours a recall is refused"
                       if self.outside == "refuse" else "")

    def _spans(self, weekday: int) -> list[tuple[timedelta, timedelta]]:
        """(opens, ends) as wall-clock offsets from midnight, margin applied; a window too
        short for its margin never opens and is left out."""
        spans = [(_offset(start) + self.margin, _offset(end)) for start, end in
                 self.weekly[weekday]]
        return [(opens, ends) for opens, ends in spans if opens < ends]

    def _holiday(self, day: date) -> str | None:
        if not self.country:
            return None
        return _holiday_names(self.country, self.subdivision, day.year).get(day)

    def _runs(self, opened: bool) -> list[tuple[str, int]]:
        """("Mon-Fri", first weekday) per run of consecutive days with equal windows (opened)
        or with none (not opened)."""
        runs = [list(run) for windows, run in groupby(range(7), key=self.weekly.__getitem__)
                if bool(windows) == opened]
        return [(DAYS[run[0]].title() + (f"-{DAYS[run[-1]].title()}" if run[1:] else ""),
                 run[0]) for run in runs]


def load_calling_hours(spec: str | Mapping[str, Any], timezone: str,
                       key: str = "calling_hours") -> CallingHours:
    """Compile a preset name or a mapping (preset, weekly, holidays, closed, outside, margin)
    into CallingHours read in `timezone`. A preset's closed dates are added to; its weekly and
    holidays are replaced. Any mistake (unknown key, day, preset, country, subdivision or zone;
    bad, overlapping or too short window; bad date; margin outside 0..60; no window at all)
    raises CallingHoursError naming the key, e.g. "calling_hours.weekly.mon[0]: ..."."""
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise CallingHoursError(f"{key}: timezone {timezone!r} is not an IANA zone name, "
                                "e.g. America/Bogota") from None
    preset_key = key if isinstance(spec, str) else f"{key}.preset"
    spec = {"preset": spec} if isinstance(spec, str) else spec
    if not isinstance(spec, Mapping):
        raise CallingHoursError(f"{key}: expected a preset name or a mapping, got {spec!r}")
    for name in spec:
        if name not in KNOWN_KEYS:
            raise CallingHoursError(f"{key}.{name}: unknown key (known: {', '.join(KNOWN_KEYS)})")
    preset = spec.get("preset")
    if preset is not None and (not isinstance(preset, str) or preset not in PRESETS):
        raise CallingHoursError(f"{preset_key}: unknown preset {preset!r} "
                                f"(known: {', '.join(sorted(PRESETS))})")
    base = PRESETS[preset] if preset else {}
    margin = spec.get("margin", DEFAULT_MARGIN_MINUTES)
    if type(margin) is not int or not 0 <= margin <= MAX_MARGIN_MINUTES:  # True is an int
        raise CallingHoursError(f"{key}.margin: {margin!r} is not whole minutes from 0 to "
                                f"{MAX_MARGIN_MINUTES}")
    outside = spec.get("outside", "move")
    if outside not in OUTSIDE:
        raise CallingHoursError(f"{key}.outside: {outside!r} is not one of {', '.join(OUTSIDE)}")
    weekly = _weekly(spec.get("weekly", base.get("weekly")), f"{key}.weekly", margin)
    country, subdivision = _country(spec.get("holidays", base.get("holidays")),
                                    f"{key}.holidays")
    added = _closed(spec.get("closed"), f"{key}.closed")
    closed = _closed(base.get("closed"), f"{key}.preset") | added
    changes = [f"+ {len(added)} closed date{'s' * (len(added) != 1)}"] if added else []
    changes += [f"+ own {name}" for name in ("weekly", "holidays", "margin", "outside")
                if name in spec]
    return CallingHours(name=" ".join([preset, *changes]) if preset else "custom",
                        timezone=timezone, weekly=weekly, country=country,
                        subdivision=subdivision, closed=closed, outside=outside,
                        margin=timedelta(minutes=margin))


def _weekly(value: Any, where: str, margin: int) -> tuple[tuple[Window, ...], ...]:
    """Day names or ranges ("mon-fri") to lists of "HH:MM-HH:MM"; a day not listed is closed."""
    if not isinstance(value, Mapping) or not value:
        raise CallingHoursError(f"{where}: no weekday selected: give days and hours, e.g. "
                                "{mon-fri: ['07:00-19:00']}")
    days: list[list[tuple[int, int]] | None] = [None] * 7
    for name, texts in value.items():
        first, dash, last = str(name).strip().lower().partition("-")
        last = last if dash else first
        if first not in DAYS or last not in DAYS or DAYS.index(last) < DAYS.index(first):
            raise CallingHoursError(f"{where}.{name}: unknown day (use {' '.join(DAYS)} or a "
                                    "range like mon-fri)")
        if not isinstance(texts, list | tuple):
            raise CallingHoursError(f"{where}.{name}: expected a list like ['07:00-19:00']")
        windows = sorted(_window(text, f"{where}.{name}[{i}]") for i, text in enumerate(texts))
        for earlier, later in zip(windows, windows[1:], strict=False):
            if later[0] < earlier[1]:
                raise CallingHoursError(f"{where}.{name}: windows "
                                        f"{_windows([earlier, later])} overlap")
        for weekday in range(DAYS.index(first), DAYS.index(last) + 1):
            if days[weekday] is not None:
                raise CallingHoursError(f"{where}.{name}: {DAYS[weekday]} is given twice")
            days[weekday] = windows
    week = []
    for weekday, given in enumerate(days):
        merged: list[tuple[int, int]] = []
        for start, end in given or []:
            # Touching windows are one: a margin between them would open a gap nobody wrote.
            if merged and merged[-1][1] == start:
                merged[-1] = (merged[-1][0], end)
            else:
                merged.append((start, end))
        for start, end in merged:
            if end - start <= margin:
                raise CallingHoursError(f"{where}.{DAYS[weekday]}: {_windows([(start, end)])} "
                                        f"is not longer than the {margin} min margin: it never "
                                        "opens")
        week.append(tuple((time(s // 60, s % 60), time(e // 60, e % 60) if e < 1440 else None)
                          for s, e in merged))
    if not any(week):
        raise CallingHoursError(f"{where}: no day has a window: recalls could never be sent")
    return tuple(week)


def _window(text: Any, where: str) -> tuple[int, int]:
    """'HH:MM-HH:MM' as minutes from midnight (start, end); 24:00 is allowed as an end."""
    match = _WINDOW.fullmatch(text.replace(" ", "")) if isinstance(text, str) else None
    h1, m1, h2, m2 = map(int, match.groups()) if match else (99, 0, 0, 0)
    if h1 > 23 or m1 > 59 or m2 > 59 or h2 > 24 or (h2 == 24 and m2):
        raise CallingHoursError(f"{where}: {text!r} is not HH:MM-HH:MM")
    if h2 * 60 + m2 <= h1 * 60 + m1:
        raise CallingHoursError(f"{where}: {text!r} ends before it starts (end is exclusive; "
                                "use 24:00 for midnight, and one window per day across it)")
    return h1 * 60 + m1, h2 * 60 + m2


def _country(value: Any, where: str) -> tuple[str | None, str | None]:
    """(country, subdivision) from "CO", {country: BR, subdivision: SP}, or null/false."""
    if value is None or value is False:
        return None, None
    country, subdivision, country_key = value, None, where
    if isinstance(value, Mapping):
        for name in value:
            if name not in ("country", "subdivision"):
                raise CallingHoursError(f"{where}.{name}: unknown key (known: country, "
                                        "subdivision)")
        country, subdivision = value.get("country"), value.get("subdivision")
        country_key = f"{where}.country"
    if not isinstance(country, str) or not country.strip():
        raise CallingHoursError(f"{country_key}: {country!r} is not a country code like CO")
    country = country.strip().upper()
    try:
        known = holidays.country_holidays(country).subdivisions
    except NotImplementedError:
        raise CallingHoursError(f"{country_key}: unknown country {country!r} (use a code the "
                                "holidays package knows, e.g. CO, MX, PE, CL)") from None
    if subdivision is None:
        return country, None
    try:
        holidays.country_holidays(country, subdiv=str(subdivision))
    except NotImplementedError:
        raise CallingHoursError(f"{where}.subdivision: {subdivision!r} is not a subdivision of "
                                f"{country} (known: {', '.join(known) or 'none'})") from None
    return country, str(subdivision)


def _closed(value: Any, where: str) -> frozenset[date]:
    """Extra closed dates from "YYYY-MM-DD" strings or dates (YAML reads an unquoted
    2026-12-24 as a date already)."""
    if value is None:
        return frozenset()
    if not isinstance(value, list | tuple | set | frozenset):
        raise CallingHoursError(f"{where}: expected a list of dates YYYY-MM-DD")
    days = set()
    for i, item in enumerate(value):
        try:
            if isinstance(item, date) and not isinstance(item, datetime):
                days.add(item)
            elif isinstance(item, str) and _DATE.fullmatch(item):
                days.add(date.fromisoformat(item))
            else:
                raise ValueError(item)
        except ValueError:
            raise CallingHoursError(f"{where}[{i}]: {item!r} is not a date YYYY-MM-DD") from None
    return frozenset(days)


@lru_cache(maxsize=256)
def _holiday_names(country: str, subdivision: str | None, year: int) -> dict[date, str]:
    """One year's holidays, computed once: next_open is called per recall."""
    # Without an explicit language `holidays` picks one from the process locale; reasons must
    # not change with the environment, so use the country's own ("Día de la Independencia").
    language = holidays.country_holidays(country, subdiv=subdivision).default_language
    return dict(holidays.country_holidays(country, subdiv=subdivision, years=year,
                                          language=language))


def _instants(day: date, wall: timedelta, zone: ZoneInfo) -> list[datetime]:
    """The UTC instants the clock in `zone` reads `wall` on `day`: none in a DST gap, two in a
    repeated hour, otherwise one."""
    naive = datetime.combine(day, time()) + wall
    instants = {naive.replace(tzinfo=zone, fold=fold).astimezone(UTC) for fold in (0, 1)}
    return [t for t in instants if t.astimezone(zone).replace(tzinfo=None) == naive]


def _changes(day: date, zone: ZoneInfo) -> list[datetime]:
    """The UTC instant `zone` changes its UTC offset, if the clock reads `day` just after."""
    midnight = int(datetime.combine(day, time(), zone).timestamp())
    low, high = midnight - 3 * 3600, midnight + 27 * 3600  # a day, whatever the offsets
    before = datetime.fromtimestamp(low, zone).utcoffset()
    if datetime.fromtimestamp(high, zone).utcoffset() == before:
        return []
    while high - low > 1:  # offsets change on whole seconds: bisect, ~17 steps
        middle = (low + high) // 2
        low, high = ((middle, high) if datetime.fromtimestamp(middle, zone).utcoffset() == before
                     else (low, middle))
    change = datetime.fromtimestamp(high, UTC)
    return [change] if change.astimezone(zone).date() == day else []


def _utc(moment: datetime) -> datetime:
    """`moment` as a UTC instant. Going through UTC matters: astimezone() into a datetime's own
    zone returns it as is, so a wall time inside a DST gap would be read as written."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{moment!r} is naive: calling hours need an aware datetime")
    return moment.astimezone(UTC)


def _wall(local: datetime) -> timedelta:
    return local - local.replace(hour=0, minute=0, second=0, microsecond=0)  # same zone: wall


def _offset(moment: time | None) -> timedelta:
    return timedelta(days=1) if moment is None else timedelta(hours=moment.hour,
                                                              minutes=moment.minute)


def _clock(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _windows(windows: Any) -> str:
    """Windows as times or minutes, as "08:00-12:00 and 14:00-18:00"."""
    return " and ".join(f"{_clock(_offset(s) // _MINUTE if isinstance(s, time) else s)}-"
                        f"{_clock(_offset(e) // _MINUTE if not isinstance(e, int) else e)}"
                        for s, e in windows)
