"""When a recall may be sent, and which day a token's quota counts: pure functions of time."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from ..recall import DATE_FORMAT as RECALL_DATE_FORMAT
from .calling_hours import CallingHours

MAX_PERIOD_MOVES = 60  # a cap that still has no room this many periods on is a bug, not a plan


@dataclass(frozen=True)
class Caps:
    """How often one lead may be called: at most `per_day` recalls a day, `per_week` a week
    (Monday to Sunday), in the operation's time zone. None: no cap."""

    per_day: int | None = None
    per_week: int | None = None


class Action(StrEnum):
    """What a plan does with a recall now."""

    SEND = "send"  # send it (its date may have moved)
    EXPIRED = "expired"  # its callback time passed more than EXPIRE_AFTER ago
    REFUSED = "refused"  # outside the calling hours of a source that says `outside: refuse`


@dataclass(frozen=True)
class Plan:
    """What to do with a recall now: `send` it (dates may have moved: `note` says from when, to
    when and by which rule), or not: `expired`, or `refused` (outside the calling hours of a
    source that says `outside: refuse`); `note` says why."""

    action: Action
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
      a period (day, week) that is full moves the date to the next one with room (and open);
    - the date sent names one instant: a moment in the second pass of a repeated hour (a
      fall-back) moves to the end of that hour, as its date would read as the first pass.
    Each move is named in the note; the result is the smallest moment that satisfies them.
    Every comparison and addition is in real (UTC) seconds, so a DST change moves nothing by
    its size; the asked date is read as `epoch` reads it (a wall time inside a DST gap is the
    first instant after the gap, a repeated one the first pass: docs/calling-hours.md)."""
    zone = ZoneInfo(timezone)
    asked, in_gap = _read(recall["recall_date"], zone)
    current = datetime.fromtimestamp(now, UTC)
    if asked < current - timedelta(seconds=expire_after):
        return Plan(Action.EXPIRED, None, f"expired: callback time {_clock(asked, zone)} passed "
                    f"more than {expire_after / 3600:g} h ago", recall["recall_date"])
    when, why = asked, []
    if in_gap:
        why.append(f"{_clock_text(recall['recall_date'])} does not exist in {timezone} (a DST "
                   f"change skips it): read as {_clock(asked, zone)}")
    # Whole seconds, rounded up: the date sent has no fraction and must stay min_lead ahead.
    earliest = datetime.fromtimestamp(math.ceil(now + min_lead), UTC)
    if when < earliest:
        when = earliest
        why.append(f"wolkvox wants {min_lead / 60:g} min ahead")
    for _ in range(MAX_PERIOD_MOVES):
        if hours is not None and not hours.is_open(when):
            closed = f"{hours.why_closed(when)} ({hours.name})"
            if hours.outside == "refuse":
                return Plan(Action.REFUSED, None, f"refused: callback time {_clock(when, zone)} is "
                            f"outside the calling hours: {closed}", recall["recall_date"])
            when = hours.next_open(when).astimezone(UTC)
            why.append(closed)
        if caps is not None:
            when = _within_caps(when, zone, hours, caps, sorted(dialled), why)
        unrepeated = _after_repeat(when, zone)
        if unrepeated == when:
            break
        why.append(f"{_clock(when, zone)} {when.astimezone(zone):%Z} is a wall time the clock "
                   "repeats (a DST change), and its date would name the first pass: sent when "
                   "the repeat ends")
        when = unrepeated
    else:
        raise ValueError("schedule: no moment found that satisfies every rule")
    moved = when.astimezone(zone).strftime(RECALL_DATE_FORMAT)
    note = (f"recall_date moved from {recall['recall_date']} to {moved}: {'; '.join(why)}"
            if moved != recall["recall_date"] else "")
    return Plan(Action.SEND, {**recall, "recall_date": moved}, note, recall["recall_date"])


def _within_caps(when: datetime, zone: ZoneInfo, hours: CallingHours | None, caps: Caps,
                 dialled: list[float], why: list[str]) -> datetime:
    """The first moment (UTC) from `when` on whose day and week still have room for one more."""
    for _ in range(MAX_PERIOD_MOVES):
        day = when.astimezone(zone).date()
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
                when = hours.next_open(ends).astimezone(UTC) if hours is not None else ends
                break
        else:
            return when
    raise ValueError("max_recalls: no room found in 60 periods")


def _midnight(day: Any, zone: ZoneInfo) -> datetime:
    """The first instant (UTC) of `day` in `zone` (a midnight skipped by DST: the first after)."""
    return _instant(datetime.combine(day, time()), zone)[0]


def _read(recall_date: str, zone: ZoneInfo) -> tuple[datetime, bool]:
    return _instant(datetime.strptime(recall_date, RECALL_DATE_FORMAT), zone)


def _instant(wall: datetime, zone: ZoneInfo) -> tuple[datetime, bool]:
    """The UTC instant the naive `wall` names in `zone`, and whether it fell in a DST gap.

    A wall time the clock reads twice (a fall-back) is its first pass; one it never reads (a
    spring-forward gap) is the first instant after the gap: the clock shows neither, so the
    earliest real moment at or after what was asked. Python's own reading of a gap (fold=0:
    the offset before the change) would move it on by the size of the gap instead."""
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if first.astimezone(zone).replace(tzinfo=None) == wall:
        return first, False
    # In a gap the two folds read with the offsets before and after the change; it lies between.
    low, high = sorted(wall.replace(tzinfo=zone, fold=fold).astimezone(UTC) for fold in (0, 1))
    return _change_between(low, high, zone), True


def _after_repeat(moment: datetime, zone: ZoneInfo) -> datetime:
    """`moment` if its wall time names it (read as the first pass), else, for the second pass
    of a repeated hour, the end of the repeat: the first instant whose wall time is new."""
    local = moment.astimezone(zone)
    first = local.replace(fold=0).astimezone(UTC)
    if first == moment:
        return moment
    # The clock fell back at a change between the first pass and this one; the repeat lasts
    # as long as the two passes are apart (an hour, 30 minutes on Lord Howe).
    return _change_between(first, moment, zone) + (moment - first)


def _change_between(low: datetime, high: datetime, zone: ZoneInfo) -> datetime:
    """The first whole second of (low, high] with `high`'s UTC offset in `zone`."""
    lo, hi = int(low.timestamp()), math.ceil(high.timestamp())
    before = datetime.fromtimestamp(lo, zone).utcoffset()
    while hi - lo > 1:  # offsets change on whole seconds: bisect, ~12 steps for an hour
        middle = (lo + hi) // 2
        lo, hi = ((middle, hi) if datetime.fromtimestamp(middle, zone).utcoffset() == before
                  else (lo, middle))
    return datetime.fromtimestamp(hi, UTC)


def _clock(moment: datetime, zone: ZoneInfo) -> str:
    return f"{moment.astimezone(zone):%Y-%m-%d %H:%M}"


def _clock_text(recall_date: str) -> str:
    return f"{datetime.strptime(recall_date, RECALL_DATE_FORMAT):%Y-%m-%d %H:%M}"


def epoch(recall: dict[str, str], timezone: str) -> float:
    """The instant `recall`'s recall_date names, read in `timezone` as `schedule` reads it (a
    repeated wall time is its first pass, one in a DST gap the first instant after it)."""
    return _read(recall["recall_date"], ZoneInfo(timezone))[0].timestamp()


def day(timezone: str, now: float) -> str:
    """The quota day of `now` in the operation's timezone, as YYYY-MM-DD."""
    return datetime.fromtimestamp(now, ZoneInfo(timezone)).strftime("%Y-%m-%d")


def next_day(timezone: str, now: float) -> float:
    """Epoch seconds of the next midnight in `timezone`: when a daily quota resets."""
    zone = ZoneInfo(timezone)
    today = datetime.fromtimestamp(now, zone).date()
    return _midnight(today + timedelta(days=1), zone).timestamp()


def local(epoch: float, timezone: str) -> str:
    """`epoch` as YYYY-MM-DD HH:MM in `timezone`, for reasons an operator reads."""
    return f"{datetime.fromtimestamp(epoch, ZoneInfo(timezone)):%Y-%m-%d %H:%M}"
