"""/metrics in the Prometheus text format, and the counters the bridge updates."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Register /metrics."""


def webhook_received(source: str, result: str, count: int = 1) -> None:
    """A webhook's events by source and result (accepted, duplicate, invalid, ignored, ...)."""


def delivery_outcome(outcome: str) -> None:
    """One delivery decision: delivered, retry, held, failed, expired, refused."""


def wolkvox_call(seconds: float) -> None:
    """How long one call to wolkvox took."""
