"""When a recall may be sent, and which day a token's quota counts: pure functions of time."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from .recall import DATE_FORMAT as RECALL_DATE_FORMAT


def schedule(recall: dict[str, str], timezone: str, now: float, min_lead: float,
             expire_after: float) -> tuple[dict[str, str] | None, str]:
    """(recall to send, note) or (None, why it expired).

    A recall is never scheduled less than `min_lead` seconds ahead (an earlier date moves
    forward), and a callback time more than `expire_after` seconds past is not sent at all.
    `recall_date` is read in `timezone`, the operation's."""
    zone = ZoneInfo(timezone)
    when = datetime.strptime(recall["recall_date"], RECALL_DATE_FORMAT).replace(tzinfo=zone)
    current = datetime.fromtimestamp(now, zone)
    if when < current - timedelta(seconds=expire_after):
        return None, (f"expired: callback time {when:%Y-%m-%d %H:%M} passed more than "
                      f"{expire_after / 3600:g} h ago")
    earliest = current + timedelta(seconds=min_lead)
    if when < earliest:
        moved = earliest.strftime(RECALL_DATE_FORMAT)
        return {**recall, "recall_date": moved}, (
            f"recall_date moved from {recall['recall_date']} to {moved}: wolkvox wants "
            f"{min_lead / 60:g} min ahead")
    return recall, ""


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
