"""When a recall may be sent, and which day a token's quota counts: pure functions of time."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from .calling_hours import CallingHours
from .recall import DATE_FORMAT as RECALL_DATE_FORMAT

MAX_PERIOD_MOVES = 60  # a cap that still has no room this many periods on is a bug, not a plan


@dataclass(frozen=True)
class Caps:
    """How often one lead may be called: at most `per_day` recalls a day, `per_week` a week
    (Monday to Sunday), in the operation's time zone. None: no cap."""

    per_day: int | None = None
    per_week: int | None = None


@dataclass(frozen=True)
class Plan:
    """What to do with a recall now: `send` it (dates may have moved: `note` says from when, to
    when and by which rule), or not: `expired`, or `refused` (outside the calling hours of a
    source that says `outside: refuse`); `note` says why."""

    action: str  # send | expired | refused
    recall: dict[str, str] | None
    note: str
    asked: str = ""  # the recall_date the event asked for


def schedule(recall: dict[str, str], timezone: str, now: float, min_lead: float,
             expire_after: float, hours: CallingHours | None = None, caps: Caps | None = None,
             dialled: Iterable[float] = ()) -> Plan:
    """When to send `recall`, read in `timezone` (the operation's). In this order:
    - a callback time more than `expire_after` seconds past is not sent (expired);
    - never less than `min_lead` seconds ahead (wolkvox's minimum): an earlier date moves on;
    - within the calling `hours`: a date outside them moves to the next open moment, or is
      refused when the hours say `outside: refuse`;
    - within the lead's `caps`: `dialled` are the epoch times of its recalls already due, and
      a period (day, week) that is full moves the date to the next one with room (and open).
    Each move is named in the note; the result is the smallest moment that satisfies them."""
    zone = ZoneInfo(timezone)
    asked = datetime.strptime(recall["recall_date"], RECALL_DATE_FORMAT).replace(tzinfo=zone)
    current = datetime.fromtimestamp(now, zone)
    if asked < current - timedelta(seconds=expire_after):
        return Plan("expired", None, f"expired: callback time {asked:%Y-%m-%d %H:%M} passed "
                    f"more than {expire_after / 3600:g} h ago", recall["recall_date"])
    when, why = asked, []
    if when < current + timedelta(seconds=min_lead):
        when = _in_zone(current + timedelta(seconds=min_lead), zone)
        why.append(f"wolkvox wants {min_lead / 60:g} min ahead")
    if hours is not None and not hours.is_open(when):
        closed = f"{hours.why_closed(when)} ({hours.name})"
        if hours.outside == "refuse":
            return Plan("refused", None, f"refused: callback time {when:%Y-%m-%d %H:%M} is "
                        f"outside the calling hours: {closed}", recall["recall_date"])
        when = hours.next_open(when)
        why.append(closed)
    if caps is not None:
        when = _within_caps(when, zone, hours, caps, sorted(dialled), why)
    moved = when.strftime(RECALL_DATE_FORMAT)
    note = (f"recall_date moved from {recall['recall_date']} to {moved}: {'; '.join(why)}"
            if moved != recall["recall_date"] else "")
    return Plan("send", {**recall, "recall_date": moved}, note, recall["recall_date"])


def _within_caps(when: datetime, zone: ZoneInfo, hours: CallingHours | None, caps: Caps,
                 dialled: list[float], why: list[str]) -> datetime:
    """The first moment from `when` on whose day and week still have room for one more."""
    for _ in range(MAX_PERIOD_MOVES):
        day = when.date()
        week = day - timedelta(days=day.weekday())
        for limit, start, days, label in ((caps.per_day, day, 1, "per_day"),
                                          (caps.per_week, week, 7, "per_week")):
            if limit is None:
                continue
            begins, ends = _midnight(start, zone), _midnight(start + timedelta(days=days), zone)
            used = sum(begins.timestamp() <= t < ends.timestamp() for t in dialled)
            if used >= limit:
                period = f"{start:%Y-%m-%d}" if days == 1 else f"the week of {start:%Y-%m-%d}"
                why.append(f"the lead was already called {used} time(s) on {period} "
                           f"(max_recalls.{label}: {limit})")
                when = hours.next_open(ends) if hours is not None else ends
                break
        else:
            return when
    raise ValueError("max_recalls: no room found in 60 periods")


def _midnight(day: Any, zone: ZoneInfo) -> datetime:
    """The first instant of `day` in `zone` (a midnight skipped by DST is the first after)."""
    return _in_zone(datetime.combine(day, time(), zone), zone)


def _in_zone(moment: datetime, zone: ZoneInfo) -> datetime:
    # Through UTC: a wall time inside a DST gap becomes the real instant after it.
    return moment.astimezone(UTC).astimezone(zone)


def epoch(recall: dict[str, str], timezone: str) -> float:
    """The instant `recall`'s recall_date names, read in `timezone`."""
    return datetime.strptime(recall["recall_date"], RECALL_DATE_FORMAT).replace(
        tzinfo=ZoneInfo(timezone)).timestamp()


def day(timezone: str, now: float) -> str:
    """The quota day of `now` in the operation's timezone, as YYYY-MM-DD."""
    return datetime.fromtimestamp(now, ZoneInfo(timezone)).strftime("%Y-%m-%d")


def next_day(timezone: str, now: float) -> float:
    """Epoch seconds of the next midnight in `timezone`: when a daily quota resets."""
    zone = ZoneInfo(timezone)
    today = datetime.fromtimestamp(now, zone).date()
    return datetime.combine(today + timedelta(days=1), datetime.min.time(), zone).timestamp()


def local(epoch: float, timezone: str) -> str:
    """`epoch` as YYYY-MM-DD HH:MM in `timezone`, for reasons an operator reads."""
    return f"{datetime.fromtimestamp(epoch, ZoneInfo(timezone)):%Y-%m-%d %H:%M}"
