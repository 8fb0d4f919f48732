"""The overview as one read model: what an operator sees on the console's first page and what
GET /api/v1/overview answers are the same figures, built here once from the bridge and the
store's views, and only drawn differently (a table and a chart, or JSON).

Per source: today's and the last 7 days' events. "Today" starts at local midnight and "7 days"
is today and the 6 days before, both in the operation's time zone (WOLKVOX_TIMEZONE), the
days an operator thinks in. Every configured source is listed, with or without events, and
so is a source no longer configured whose events are still in those days.

Per token the sources send through: calls in flight, quota used on its day, its hold (a hold
whose time has passed is no hold, and is not shown), queue depth and the oldest due event's
wait. Per hour, over the last HOURS hours: events received (test captures left out) and
recalls delivered.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo

from ..bridge import Bridge
from ..lifecycle import ANSWERED, Status
from ..reasons import params_from

HOURS = 48  # hours in the hourly series (the console's chart), the current one last
WEEK = 7  # days in the week's figures, today included
HOUR = 3600  # seconds


@dataclass(frozen=True)
class Counts:
    """One source's events over a period, by status as the store counts them (`by_status`,
    test captures included), with the figures operators watch: `received` (every event but
    test captures) and the delivered, failed, invalid and ignored among them."""

    by_status: Mapping[str, int]

    @classmethod
    def of(cls, by_status: Mapping[str, int]) -> Counts:
        return cls(MappingProxyType(dict(by_status)))

    @property
    def received(self) -> int:
        return sum(n for status, n in self.by_status.items() if status != Status.TEST)

    @property
    def delivered(self) -> int:
        return self.by_status.get(Status.DELIVERED, 0)

    @property
    def failed(self) -> int:
        return self.by_status.get(Status.FAILED, 0)

    @property
    def invalid(self) -> int:
        return self.by_status.get(Status.INVALID, 0)

    @property
    def ignored(self) -> int:
        return self.by_status.get(Status.IGNORED, 0)


NO_EVENTS = Counts.of({})


@dataclass(frozen=True)
class CallDay:
    """One source's call results on one day (the operation's), as wolkvox's report said."""

    day: str  # YYYY-MM-DD
    reported: int  # results that came in for calls made that day
    answered: int  # of which the customer answered (ANSWER)


@dataclass(frozen=True)
class SourceFigures:
    name: str
    configured: bool  # False: its mapping is gone, its events are still counted
    today: Counts
    week: Counts
    calls: tuple[CallDay, ...] = ()  # the week's days with results, newest first


@dataclass(frozen=True)
class Hold:
    """A token's hold in force: no recall is sent through it until `until`."""

    kind: str  # "quota" or "token" (a string until the hold kinds become an enum)
    reason: str
    since: float
    until: float
    reason_code: str | None = None  # the reason's kind and parameters (reasons.py), if coded
    reason_params: dict[str, Any] | None = None


@dataclass(frozen=True)
class TokenFigures:
    key: str  # the token's fingerprint (recall.Target.key), never the token
    sources: tuple[str, ...]  # the configured sources that send through it
    in_flight: int
    max_in_flight: int  # WOLKVOX_MAX_CONCURRENCY
    quota_day: str  # YYYY-MM-DD in the token's time zone
    quota_used: int
    quota_limit: int | None  # WOLKVOX_DAILY_LIMIT; None when unknown
    hold: Hold | None  # None: not held now
    queued: int
    oldest_wait: float | None  # seconds the oldest due event has waited since it was stored


@dataclass(frozen=True)
class Hour:
    start: int  # epoch seconds, on the hour
    received: int
    delivered: int


@dataclass(frozen=True)
class Overview:
    now: float
    timezone: str  # the operation's (WOLKVOX_TIMEZONE): the days are its days
    today_since: float  # local midnight today
    week_since: float  # local midnight WEEK - 1 days ago
    sources: tuple[SourceFigures, ...]  # by name
    tokens: tuple[TokenFigures, ...]  # in the order of their first source's name
    hours: tuple[Hour, ...]  # HOURS of them, oldest first

    @property
    def received(self) -> int:
        """Events received over the hourly series."""
        return sum(hour.received for hour in self.hours)

    @property
    def delivered(self) -> int:
        """Recalls delivered over the hourly series."""
        return sum(hour.delivered for hour in self.hours)


def local_midnight(now: float, timezone: str, days_ago: int = 0) -> float:
    """The epoch of midnight in `timezone`, `days_ago` days before the day of `now`."""
    zone = ZoneInfo(timezone)
    day = datetime.fromtimestamp(now, zone).date() - timedelta(days=days_ago)
    return datetime.combine(day, time(), zone).timestamp()


def build(bridge: Bridge) -> Overview:
    """The overview now, as the bridge's clock tells it."""
    now = bridge.settings.clock().timestamp()
    timezone = bridge.settings.wolkvox_timezone
    today_since = local_midnight(now, timezone)
    week_since = local_midnight(now, timezone, WEEK - 1)
    today = bridge.store.counts_by_source(today_since)
    week = bridge.store.counts_by_source(week_since)
    calls = call_days(bridge.store.called_since(week_since), timezone)
    names = sorted(set(bridge.sources) | set(week) | set(today))
    sources = tuple(SourceFigures(name, name in bridge.sources,
                                  Counts.of(today.get(name, {})), Counts.of(week.get(name, {})),
                                  calls.get(name, ()))
                    for name in names)
    return Overview(now, timezone, today_since, week_since, sources, tokens(bridge, now),
                    hours(bridge, now))


def call_days(results: list[tuple[str, float, str]],
              timezone: str) -> dict[str, tuple[CallDay, ...]]:
    """Per source, per day of the call in `timezone`: results reported and answered."""
    zone = ZoneInfo(timezone)
    days: dict[str, dict[str, list[int]]] = {}
    for source, called_at, word in results:
        day = f"{datetime.fromtimestamp(called_at, zone):%Y-%m-%d}"
        figures = days.setdefault(source, {}).setdefault(day, [0, 0])
        figures[0] += 1
        figures[1] += word.upper() == ANSWERED
    return {source: tuple(CallDay(day, n, answered)
                          for day, (n, answered) in sorted(by_day.items(), reverse=True))
            for source, by_day in days.items()}


def today(bridge: Bridge) -> dict[str, Counts]:
    """Each source's events since local midnight (the sources page), as `build` counts them."""
    now = bridge.settings.clock().timestamp()
    since = local_midnight(now, bridge.settings.wolkvox_timezone)
    return {name: Counts.of(counts)
            for name, counts in bridge.store.counts_by_source(since).items()}


def tokens(bridge: Bridge, now: float) -> tuple[TokenFigures, ...]:
    """The tokens the sources send through; not those only the store still knows (a token no
    mapping names any more, a CRM lookup's hold: /readyz lists every hold)."""
    settings = bridge.settings
    found = []
    for key, state in bridge.token_states(now).items():
        if not state["sources"]:
            continue
        oldest = state.get("oldest_due")
        found.append(TokenFigures(
            key, tuple(state["sources"]), state.get("in_flight", 0),
            settings.wolkvox_max_concurrency, state["day"], state.get("quota_used", 0),
            settings.wolkvox_daily_limit or None, _hold(state.get("hold"), now),
            state.get("queued", 0), now - oldest if oldest is not None else None))
    return tuple(found)


def _hold(row: dict[str, Any] | None, now: float) -> Hold | None:
    if not row or row["until"] <= now:
        return None  # lapsed: the worker sends again, whatever the row still says
    return Hold(row["kind"], row["reason"], row["since"], row["until"],
                row.get("reason_code"), params_from(row.get("reason_params")))


def hours(bridge: Bridge, now: float) -> tuple[Hour, ...]:
    """Received and delivered per hour, the HOURS hours ending with the current one."""
    first = int(now // HOUR) - HOURS + 1
    series = bridge.store.hourly(first * HOUR)  # test captures left out
    received, delivered = series.get("received", {}), series.get("delivered", {})
    return tuple(Hour(hour * HOUR, received.get(hour, 0), delivered.get(hour, 0))
                 for hour in range(first, first + HOURS))
