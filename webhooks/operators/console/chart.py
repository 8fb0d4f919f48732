"""The overview's chart, received vs delivered per hour, as geometry for an inline SVG drawn by
the template (no script, no image files): pure functions of the overview's hourly series
(operators/overview.py)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from ..overview import Hour

WIDTH, HEIGHT = 960, 260  # the SVG's viewBox; it scales to the page's width
LEFT, RIGHT, TOP, BOTTOM = 44, 8, 12, 40  # room for the value axis and two lines of labels
TICK_EVERY = 6  # hours between labels on the time axis


@dataclass(frozen=True)
class Slot:
    """One hour: where its two bars stand, their values, and the hour in local time."""

    x: float
    width: float
    received: int
    delivered: int
    received_y: float
    delivered_y: float
    starts: str  # "2030-12-01 10:00"


@dataclass(frozen=True)
class Tick:
    x: float
    hour: str  # "06:00"
    day: str  # "12-01" at local midnight, else ""


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    left: int
    top: int
    bottom: float  # the y of the zero line
    right: float
    slots: list[Slot]
    ticks: list[Tick]
    grid: list[tuple[float, int]]  # (y, value) of each horizontal line
    received: int  # totals over the period
    delivered: int

    def bar_height(self, y: float) -> float:
        return self.bottom - y


def nice_ceiling(peak: int) -> int:
    """The smallest 1, 2 or 5 times a power of ten that is at least `peak` (and at least 1)."""
    scale = 1
    while True:
        for step in (1, 2, 5):
            if step * scale >= peak:
                return step * scale
        scale *= 10


def hourly(hours: Sequence[Hour], zone: ZoneInfo) -> Chart:
    """The bars of `hours` (oldest first, as the overview gives them), labelled in `zone`."""
    top_value = nice_ceiling(max([h.received for h in hours] + [h.delivered for h in hours]
                                 + [1]))
    bottom, right = HEIGHT - BOTTOM, WIDTH - RIGHT
    slot_width = (right - LEFT) / max(len(hours), 1)

    def y(value: int) -> float:
        return round(bottom - (bottom - TOP) * value / top_value, 2)

    slots, ticks = [], []
    for i, hour in enumerate(hours):
        x = round(LEFT + i * slot_width, 2)
        start = datetime.fromtimestamp(hour.start, zone)
        slots.append(Slot(x, round(slot_width, 2), hour.received, hour.delivered,
                          y(hour.received), y(hour.delivered), f"{start:%Y-%m-%d %H:%M}"))
        if start.hour % TICK_EVERY == 0:
            ticks.append(Tick(x, f"{start:%H:%M}", f"{start:%m-%d}" if start.hour == 0 else ""))
    levels = range(top_value + 1) if top_value <= 5 else (0, top_value // 2, top_value)
    return Chart(WIDTH, HEIGHT, LEFT, TOP, bottom, right, slots, ticks,
                 [(y(v), v) for v in levels],
                 sum(h.received for h in hours), sum(h.delivered for h in hours))
