"""The overview: per source, today's and the last 7 days' events; per token, calls in flight,
quota used, hold, queue depth and the oldest due event's wait; received vs delivered per hour
over 48 hours (chart.py draws it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import render_template

from ...bridge import current_bridge
from ...lifecycle import Status
from . import chart
from .web import bp, midnight, now, zone

SHOWN = ("delivered", "failed", "invalid", "ignored")  # per source, beside "received"
WEEK = 7  # days, today included
HOURS = 48  # hours in the chart


@dataclass(frozen=True)
class Counts:
    """One source's events over a period: received (every stored event, test captures
    excepted) and those of the statuses operators watch."""

    received: int
    delivered: int
    failed: int
    invalid: int
    ignored: int


def summary(by_status: dict[str, int]) -> Counts:
    received = sum(n for status, n in by_status.items() if status != Status.TEST)
    return Counts(received, *(by_status.get(status, 0) for status in SHOWN))


@dataclass(frozen=True)
class Token:
    key: str  # the token's fingerprint (recall.Target.key), never the token
    sources: list[str]
    in_flight: int
    quota_used: int
    hold: dict[str, Any] | None  # active hold: kind, reason, until
    queued: int
    oldest_wait: float | None  # seconds the oldest due event has waited since it was stored


def tokens(bridge: Any, moment: float) -> list[Token]:
    """The tokens the sources send through (not those only the store still knows)."""
    found = []
    for key, row in bridge.token_states(moment).items():
        if not row["sources"]:
            continue
        hold = row.get("hold")
        oldest = row.get("oldest_due")
        found.append(Token(key, row["sources"], row.get("in_flight", 0),
                           row.get("quota_used", 0),
                           hold if hold and hold["until"] > moment else None,
                           row.get("queued", 0), moment - oldest if oldest else None))
    return found


@bp.get("/")
def overview() -> Any:
    b = current_bridge()
    moment = now()
    today = b.store.counts_by_source(midnight())
    week = b.store.counts_by_source(midnight(WEEK - 1))
    names = sorted(set(b.sources) | set(week))
    rows = [(name, summary(today.get(name, {})), summary(week.get(name, {}))) for name in names]
    hour = int(moment // 3600)
    series = b.store.hourly((hour - HOURS + 1) * 3600)  # test captures left out
    return render_template(
        "console/overview.html", rows=rows, tokens=tokens(b, moment),
        chart=chart.hourly(series, hour, HOURS, zone()), settings=b.settings)
