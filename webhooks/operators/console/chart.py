"""The overview's chart, received vs delivered per hour, as geometry for an inline SVG drawn by
the template (no script, no image files): pure functions of the store's hourly series."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

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


def hourly(series: dict[str, dict[int, int]], last_hour: int, hours: int,
           zone: ZoneInfo) -> Chart:
    """`series` as store.hourly gives it ({"received"|"delivered": {epoch hour: n}}), for the
    `hours` hours ending with `last_hour` (epoch seconds // 3600), labelled in `zone`."""
    received, delivered = series.get("received", {}), series.get("delivered", {})
    first = last_hour - hours + 1
    span = [first + i for i in range(hours)]
    top_value = nice_ceiling(max([received.get(h, 0) for h in span] +
                                 [delivered.get(h, 0) for h in span] + [1]))
    bottom, right = HEIGHT - BOTTOM, WIDTH - RIGHT
    slot_width = (right - LEFT) / hours

    def y(value: int) -> float:
        return round(bottom - (bottom - TOP) * value / top_value, 2)

    slots, ticks = [], []
    for i, hour in enumerate(span):
        x = round(LEFT + i * slot_width, 2)
        start = datetime.fromtimestamp(hour * 3600, zone)
        slots.append(Slot(x, round(slot_width, 2), received.get(hour, 0),
                          delivered.get(hour, 0), y(received.get(hour, 0)),
                          y(delivered.get(hour, 0)), f"{start:%Y-%m-%d %H:%M}"))
        if start.hour % TICK_EVERY == 0:
            ticks.append(Tick(x, f"{start:%H:%M}", f"{start:%m-%d}" if start.hour == 0 else ""))
    levels = range(top_value + 1) if top_value <= 5 else (0, top_value // 2, top_value)
    return Chart(WIDTH, HEIGHT, LEFT, TOP, bottom, right, slots, ticks,
                 [(y(v), v) for v in levels],
                 sum(received.get(h, 0) for h in span), sum(delivered.get(h, 0) for h in span))
