"""/metrics in the Prometheus text format, and the counters the bridge updates.

Counters and the latency histogram are kept by each process. With PROMETHEUS_MULTIPROC_DIR
set (a directory every gunicorn worker and `deliver` process of the machine shares, empty when
they start), prometheus-client writes them to files there and /metrics adds up every
process's, whichever worker answers; unset, the process's own registry is shown. The queue,
quota and hold gauges are read from the store at scrape time (StoreCollector): they are right
whatever process answers, and never summed across processes.

With METRICS_TOKEN set, /metrics wants `Authorization: Bearer <METRICS_TOKEN>`.
"""

from __future__ import annotations

import hmac
import logging
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Flask, Response, current_app, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from ..lifecycle import Status
from ..store import StoreRefused, StoreUnavailable
from ..timing import rules as timerules

log = logging.getLogger(__name__)
bp = Blueprint("metrics", __name__)
PREFIX = "recall_bridge"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # read by prometheus-client itself, at its import
# wolkvox answers in 0.1-2 s; its own limit, and WOLKVOX_TIMEOUT's default, is 60 s
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)


@dataclass(frozen=True)
class _Instruments:
    received: Counter
    outcomes: Counter
    latency: Histogram
    refused: Counter


_made: _Instruments | None = None
_lock = threading.Lock()


def _instruments() -> _Instruments:
    """The process's counters, made on first use (not at import: in multiprocess mode making
    one opens its file)."""
    global _made
    if _made is None:
        with _lock:
            if _made is None:
                _made = _Instruments(
                    Counter(f"{PREFIX}_webhooks_received", "Webhook events received, by "
                            "source and result (accepted, duplicate, invalid, ignored, test, "
                            "spooled...)", ["source", "result"]),
                    Counter(f"{PREFIX}_deliveries", "Delivery decisions, by outcome "
                            "(delivered, retry, held, failed, expired, ...)", ["outcome"]),
                    Histogram(f"{PREFIX}_wolkvox_call_seconds", "How long one call to wolkvox "
                              "took", buckets=LATENCY_BUCKETS),
                    Counter(f"{PREFIX}_webhooks_refused", "Webhook requests of a known "
                            "source answered with an error, by source and HTTP status (401 "
                            "not authenticated, 400 unreadable, 413 too large, 503 store and "
                            "spool both unavailable...)", ["source", "status"]))
    return _made


def init_app(app: Flask) -> None:
    """Register /metrics."""
    app.register_blueprint(bp)


def webhook_received(source: str, result: str, count: int = 1) -> None:
    """A webhook's events by source and result (accepted, duplicate, invalid, ignored, ...)."""
    _instruments().received.labels(source=source, result=result).inc(count)


def webhook_refused(source: str, status: int) -> None:
    """A webhook request of a known source answered with an error status."""
    _instruments().refused.labels(source=source, status=str(status)).inc()


def delivery_outcome(outcome: str) -> None:
    """One delivery decision: delivered, retry, held, failed, expired, refused."""
    _instruments().outcomes.labels(outcome=outcome).inc()


def wolkvox_call(seconds: float) -> None:
    """How long one call to wolkvox took."""
    _instruments().latency.observe(seconds)


@bp.get("/metrics")
def scrape() -> Response:
    bridge = current_app.extensions["recall_bridge"]
    wanted = bridge.settings.metrics_token
    if wanted:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
                given.strip().encode(), wanted.encode()):
            return Response("send Authorization: Bearer <METRICS_TOKEN>\n", 401,
                            {"WWW-Authenticate": 'Bearer realm="metrics"'},
                            mimetype="text/plain")
    return Response(generate_latest(registry_for(bridge)), mimetype=CONTENT_TYPE_LATEST)


def registry_for(bridge: Any) -> CollectorRegistry:
    """What a scrape shows: the counters (every process's in multiprocess mode) and the
    store's gauges. A process without a web server (`deliver` on a machine of its own) can
    serve it with prometheus_client.start_http_server(port, registry=registry_for(bridge))."""
    _instruments()  # every series is shown from the start, at 0
    registry = CollectorRegistry()
    registry.register(_ProcessCounters())
    registry.register(StoreCollector(bridge))
    registry.register(SpoolCollector(bridge))
    return registry


class _ProcessCounters(Collector):
    """The counters: summed over every process's files in multiprocess mode, else this
    process's registry (with prometheus-client's process and Python metrics)."""

    def collect(self) -> Iterator[Any]:
        if os.environ.get(MULTIPROC_ENV):
            merged = CollectorRegistry()
            multiprocess.MultiProcessCollector(merged)
            yield from merged.collect()
        else:
            yield from REGISTRY.collect()


class SpoolCollector(Collector):
    """Gauges read from the spool folder at scrape time (right whatever process answers, and
    shown with the store down, when they matter): this store's requests waiting, the age of
    the oldest, other stores' requests left alone, and files set aside as not replayable."""

    def __init__(self, bridge: Any):
        self.bridge = bridge

    def collect(self) -> Iterator[GaugeMetricFamily]:
        depth = self.bridge.spool.depth()
        now = self.bridge.settings.clock().timestamp()
        for name, documentation, value in (
                ("spool_requests", "Requests spooled while the store was down, waiting to be "
                 "replayed into it", depth.requests),
                ("spool_oldest_seconds", "Age of the oldest of them (0: none)",
                 max(0.0, now - depth.oldest) if depth.oldest else 0.0),
                ("spool_foreign_requests", "Requests of another store in the spool folder, "
                 "left alone", depth.foreign),
                ("spool_set_aside", "Spooled requests set aside as not replayable (see "
                 "set-aside/ in the spool folder)", depth.set_aside)):
            family = GaugeMetricFamily(f"{PREFIX}_{name}", documentation)
            family.add_metric([], value)
            yield family


class StoreCollector(Collector):
    """Gauges read from the store at scrape time: events by status (the queue's depth among
    them), each token's calls in flight, quota used today and oldest due event, and the held
    tokens with their kind. With the store down: recall_bridge_store_up 0 and nothing else."""

    def __init__(self, bridge: Any):
        self.bridge = bridge

    def collect(self) -> Iterator[GaugeMetricFamily]:
        store, now = self.bridge.store, self.bridge.settings.clock().timestamp()
        zones = {s.target.key: s.target.timezone for s in self.bridge.sources.values()}
        up = GaugeMetricFamily(f"{PREFIX}_store_up", "1 when the store answered this scrape")
        try:
            counts = store.counts()
            tokens = store.tokens(now, {key: timerules.day(zone, now)
                                        for key, zone in zones.items()})
            holds = store.holds()
        except (StoreUnavailable, StoreRefused) as err:
            log.warning("metrics: the store did not answer: %s", err)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        events = GaugeMetricFamily(f"{PREFIX}_events", "Events in each status (queued: the "
                                   "queue's depth)", labels=["status"])
        for status in Status:
            events.add_metric([status.value], counts.get(status.value, 0))
        yield events
        yield self._per_token("calls_in_flight", "Calls to wolkvox in flight", tokens,
                              "in_flight")
        yield self._per_token("quota_used", "Quota units used today (the token's time zone)",
                              {key: tokens[key] for key in zones if key in tokens},
                              "quota_used")
        oldest = GaugeMetricFamily(f"{PREFIX}_oldest_due_seconds", "Age of the oldest queued "
                                   "event that is due, per token", labels=["token"])
        for key, state in sorted(tokens.items()):
            if state.get("oldest_due") is not None:
                oldest.add_metric([key], max(0.0, now - state["oldest_due"]))
        yield oldest
        held = GaugeMetricFamily(f"{PREFIX}_token_held", "1 per token held now, with its kind "
                                 "(quota, token)", labels=["token", "kind"])
        for key, hold in sorted(holds.items()):
            if hold["until"] > now:
                held.add_metric([key, hold["kind"]], 1)
        yield held

    @staticmethod
    def _per_token(name: str, documentation: str, tokens: dict[str, dict[str, Any]],
                   field: str) -> GaugeMetricFamily:
        family = GaugeMetricFamily(f"{PREFIX}_{name}", documentation, labels=["token"])
        for key, state in sorted(tokens.items()):
            family.add_metric([key], state.get(field, 0))
        return family
