"""wolkvox's call-result report (campaign_3): one GET per campaign and range, and what its
answer means.

The answer is read as wolkvox's list envelope (`{"code": 200, "msg": "N records were
found", "data": [...]}`, wolkvox-api.md); a refusal is one of the wolkvox kinds every call
shares (wolkvox.refuse). An answer that cannot be read as a report at all (HTML, not JSON, not
the envelope, larger than REPORT_LIMIT) is `ReportUnreadable`: nothing of it is used, and it
is asked again at the next interval. Rows that cannot be read (no customer id, no result, a
date that does not parse) are counted and set aside; their customers are not matched from
this answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import requests

from .. import reasons
from ..recall import DATE_FORMAT, Target
from . import errors, wolkvox
from .deadline import Call

REPORT_PATH = "/api/v2/reports_manager.php"
REPORT_LIMIT = 32 * 1024 * 1024  # wolkvox caps a result at 256 MB; one campaign's range of
# awaited calls is a few thousand rows of ~300 bytes: more than this is not that
ROW_DATE = "%Y-%m-%d %H:%M:%S"  # the rows' `date`, in the operation's time
MAX_RANGE = timedelta(days=31)  # wolkvox's longest range
NEEDED = ("customer_id", "date", "result")


class ReportUnreadable(wolkvox.WolkvoxError, errors.RetryLater):
    """The answer is not a report: asked again at the next interval, nothing of it used."""


@dataclass(frozen=True)
class Row:
    """One dialing attempt of the campaign, as the report gave it."""

    customer_id: str
    called_at: float  # epoch of the row's `date`, read in the operation's time zone
    result: str  # wolkvox's word, as given
    telephone: str = ""


@dataclass(frozen=True)
class Report:
    """A report's readable rows, and what could not be read."""

    rows: list[Row]
    answer: errors.Answer
    bad: int = 0  # rows set aside
    problem: str = ""  # the first bad row's problem
    unsure: set[str] = field(default_factory=set)  # customers of bad rows: not matched now


def date_range(since: float, until: float, timezone: str) -> tuple[str, str]:
    """(date_ini, date_end) of a report covering [since, until], in the operation's time, the
    start floored to the second and kept within wolkvox's 31 days of the end."""
    zone = ZoneInfo(timezone)
    end = datetime.fromtimestamp(until, zone)
    start = max(datetime.fromtimestamp(int(since), zone), end - MAX_RANGE + timedelta(seconds=1))
    return f"{min(start, end):{DATE_FORMAT}}", f"{end:{DATE_FORMAT}}"


def fetch_report(session: requests.Session, target: Target, campaign_id: str, since: float,
                 until: float, timeouts: tuple[float, float], call: Call | None = None,
                 limit: int = REPORT_LIMIT) -> Report:
    """GET the campaign's call results between `since` and `until` (epochs); a Report, or
    raise the wolkvox kind its answer names (ReportUnreadable for an answer that is no
    report)."""
    date_ini, date_end = date_range(since, until, target.timezone)
    query = {"api": "campaign_3", "campaign_id": campaign_id, "date_ini": date_ini,
             "date_end": date_end}
    status, headers, content, latency = wolkvox.exchange(
        session, "GET", target, REPORT_PATH, query, timeouts, call, limit=limit + 1)
    if len(content) > limit:
        raise ReportUnreadable(reasons.REPORT_TOO_LARGE(
            campaign=campaign_id, limit=f"{limit / 1024 / 1024:g}"),
            errors.Answer(status, None, "", latency))
    try:
        return read_report(status, content, latency, campaign_id, target.timezone,
                           headers.get("Retry-After"))
    except wolkvox.RetrySoon:
        wolkvox.rest_refused(call)
        raise


def read_report(http_status: int, content: bytes, latency_ms: float, campaign_id: str,
                timezone: str, retry_after: str | None = None) -> Report:
    """A report's answer as a Report, or raise what it means."""
    data, answer = wolkvox.read_answer(http_status, content, latency_ms)
    if not 200 <= http_status < 300:
        wolkvox.refuse(http_status, data, answer, retry_after)
    if data is None:
        raise ReportUnreadable(reasons.REPORT_NOT_JSON(
            campaign=campaign_id, status=http_status, excerpt=answer.msg[:80]), answer)
    listed = data.get("data")
    if listed is None and answer.code in (200, 204, 404) and not data.get("error"):
        listed = []  # how wolkvox answers an empty range is not documented: none is no rows
    if not isinstance(listed, list):
        raise ReportUnreadable(reasons.REPORT_SHAPE(
            campaign=campaign_id, problem="no list of rows in `data`"), answer)
    zone = ZoneInfo(timezone)
    rows: list[Row] = []
    bad, problem, unsure = 0, "", set()
    for item in listed:
        row, why = _row(item, zone)
        if row is not None:
            if str(item.get("campaign_id", campaign_id)) == str(campaign_id):
                rows.append(row)
            continue
        bad += 1
        problem = problem or why
        if isinstance(item, Mapping) and _text(item.get("customer_id")):
            unsure.add(_text(item.get("customer_id")))
    return Report(rows, answer, bad, problem, unsure)


def _row(item: Any, zone: ZoneInfo) -> tuple[Row | None, str]:
    """A row, or None and what is wrong with it (never quoting its values: they hold phones)."""
    if not isinstance(item, Mapping):
        return None, "a row that is not an object"
    missing = [name for name in NEEDED if not _text(item.get(name))]
    if missing:
        return None, f"a row without {', '.join(missing)}"
    try:
        wall = datetime.strptime(_text(item["date"]), ROW_DATE)
    except ValueError:
        return None, "a date that is not YYYY-mm-dd HH:MM:SS"
    return Row(_text(item["customer_id"]), wall.replace(tzinfo=zone).timestamp(),
               _text(item["result"]), _text(item.get("telephone"))), ""


def _text(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        return ""
    return str(value).strip()

