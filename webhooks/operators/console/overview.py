"""The overview page: the read model of operators/overview.py (per source, today's and the last
7 days' events; per token, calls in flight, quota used, hold, queue depth and the oldest due
event's wait; received vs delivered per hour), drawn as tables and a chart (chart.py)."""

from __future__ import annotations

from flask import render_template

from ...bridge import current_bridge
from ...lifecycle import Status
from .. import overview as model
from . import chart
from .web import bp, zone


@bp.get("/")
def overview() -> str:
    shown = model.build(current_bridge())
    return render_template("console/overview.html", overview=shown,
                           chart=chart.hourly(shown.hours, zone()), Status=Status)
