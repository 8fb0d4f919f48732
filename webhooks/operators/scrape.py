"""/metrics in the Prometheus text format: the counters (observability/metrics.py) and the
gauges read from the store and the spool at scrape time (StoreCollector, SpoolCollector): they
are right whatever process answers, and never summed across processes.

With METRICS_TOKEN set, /metrics wants `Authorization: Bearer <METRICS_TOKEN>`.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Flask, Response, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from ..bridge import Bridge, current_bridge
from ..lifecycle import Status
from ..observability.metrics import PREFIX, counters
from ..store import StoreRefused, StoreUnavailable
from ..timing import rules as timerules

log = logging.getLogger(__name__)
bp = Blueprint("metrics", __name__)


def init_app(app: Flask) -> None:
    """Register /metrics."""
    app.register_blueprint(bp)


@bp.get("/metrics")
def scrape() -> Response:
    bridge = current_bridge()
    wanted = bridge.settings.metrics_token
    if wanted:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
                given.strip().encode(), wanted.encode()):
            return Response("send Authorization: Bearer <METRICS_TOKEN>\n", 401,
                            {"WWW-Authenticate": 'Bearer realm="metrics"'},
                            mimetype="text/plain")
    return Response(generate_latest(registry_for(bridge)), mimetype=CONTENT_TYPE_LATEST)


def registry_for(bridge: Bridge) -> CollectorRegistry:
    """What a scrape shows: the counters (every process's in multiprocess mode) and the
    store's gauges. A process without a web server (`deliver` on a machine of its own) can
    serve it with prometheus_client.start_http_server(port, registry=registry_for(bridge))."""
    registry = CollectorRegistry()
    registry.register(counters())
    registry.register(StoreCollector(bridge))
    registry.register(SpoolCollector(bridge))
    return registry


class SpoolCollector(Collector):
    """Gauges read from the spool folder at scrape time (right whatever process answers, and
    shown with the store down, when they matter): this store's requests waiting, the age of
    the oldest, other stores' requests left alone, and files set aside as not replayable."""

    def __init__(self, bridge: Bridge):
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

    def __init__(self, bridge: Bridge):
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
            awaiting = store.awaiting_count()
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
        yield GaugeMetricFamily(f"{PREFIX}_results_awaiting", "Delivered recalls awaiting "
                                "their call's result from wolkvox's report", value=awaiting)
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
