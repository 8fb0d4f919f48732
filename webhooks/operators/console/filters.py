"""The events filter as a person fills it in (status, source, from and to dates, customer id,
phone typed any way) -> the store's EventFilter, and what was wrong with it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask_babel import gettext as _

from ...bridge import Bridge
from ...lifecycle import Status
from ...store import EventFilter
from ..operations import phone_candidates
from .i18n import RESULT_FILTERS

FIELDS = ("status", "source", "result", "since", "until", "customer", "phone")
MAX_TEXT = 255  # a customer id or phone longer than this is no filter


@dataclass
class Form:
    """The filter form: its values as typed (shown again), the store filter they make, the
    problems found (each shown by its field), and whether it can match anything at all."""

    values: dict[str, str]
    where: EventFilter
    errors: dict[str, str] = field(default_factory=dict)
    matches_nothing: bool = False

    def query(self, **extra: Any) -> dict[str, Any]:
        """The filled-in values, for links that keep the filter (paging, bulk, ...)."""
        return {**{k: v for k, v in self.values.items() if v}, **extra}


def read(bridge: Bridge, args: Mapping[str, Any],
         statuses: tuple[Status, ...] | None = None) -> Form:
    """Read the form's fields from `args`; `statuses`: the ones allowed (default: any)."""
    values = {name: " ".join(str(args.get(name, "")).split())[:MAX_TEXT] for name in FIELDS}
    errors: dict[str, str] = {}
    allowed = statuses or tuple(Status)
    if values["status"] and values["status"] not in allowed:
        errors["status"] = _("Choose a status from the list.")
    if values["source"] and values["source"] not in bridge.sources:
        errors["source"] = _("Choose a source from the list.")
    if values["result"] and values["result"] not in RESULT_FILTERS:
        errors["result"] = _("Choose a result from the list.")
    timezone = ZoneInfo(bridge.settings.wolkvox_timezone)
    since = _day(values["since"], timezone, errors, "since")
    until = _day(values["until"], timezone, errors, "until", after=True)
    phones: tuple[str, ...] = ()
    if values["phone"]:
        phones = phone_candidates(bridge, values["phone"])
        if not phones:
            errors["phone"] = _("Type a phone number with its digits, e.g. 300 123 4567.")
    where = EventFilter(status=values["status"] if "status" not in errors else None,
                        source=values["source"] if "source" not in errors else None,
                        since=since, until=until, customer_id=values["customer"] or None,
                        phones=phones,
                        result=values["result"] if "result" not in errors else None)
    return Form(values, where, errors, matches_nothing="phone" in errors)


def _day(text: str, timezone: ZoneInfo, errors: dict[str, str], name: str,
         after: bool = False) -> float | None:
    """A date (YYYY-MM-DD) as the epoch of its first instant in the operation's zone, or of
    the next day's (`after`: the "to" date is included)."""
    if not text:
        return None
    try:
        day = date.fromisoformat(text) + timedelta(days=1 if after else 0)
        return datetime.combine(day, time(), timezone).timestamp()
    except (ValueError, OverflowError):
        errors[name] = _("Write the date as YYYY-MM-DD.")
        return None
