"""The counters the bridge updates, kept by each process.

With PROMETHEUS_MULTIPROC_DIR set (a directory every gunicorn worker and `deliver` process of
the machine shares, empty when they start), prometheus-client writes them to files there and
`counters()` adds up every process's; unset, it is the process's own registry. /metrics
(operators/scrape.py) serves them beside the gauges it reads from the store.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, multiprocess
from prometheus_client.registry import Collector

from ..lifecycle import CALL_RESULTS

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


def webhook_received(source: str, result: str, count: int = 1) -> None:
    """A webhook's events by source and result (accepted, duplicate, invalid, ignored, ...)."""
    _instruments().received.labels(source=source, result=result).inc(count)


def webhook_refused(source: str, status: int) -> None:
    """A webhook request of a known source answered with an error status."""
    _instruments().refused.labels(source=source, status=str(status)).inc()


def delivery_outcome(outcome: str) -> None:
    """One delivery decision: delivered, retry, held, failed, expired, refused."""
    _instruments().outcomes.labels(outcome=outcome).inc()


_results: tuple[Counter, Counter] | None = None


def _result_counters() -> tuple[Counter, Counter]:
    global _results
    if _results is None:
        with _lock:
            if _results is None:
                _results = (
                    Counter(f"{PREFIX}_call_results", "Call results learnt from wolkvox's "
                            "report, by wolkvox's word (answer, no-answer, busy, ...; other)",
                            ["result"]),
                    Counter(f"{PREFIX}_report_calls", "Calls to wolkvox's call-result "
                            "report, by outcome (ok, bad, refused, failed)", ["outcome"]))
    return _results


def call_result(word: str) -> None:
    """One call result: wolkvox's word lower-cased when it is a known one, else "other"."""
    label = word.lower() if word.upper() in CALL_RESULTS else "other"
    _result_counters()[0].labels(result=label).inc()


def report_call(outcome: str) -> None:
    """One call to the call-result report: ok, bad (an unreadable answer), refused, failed."""
    _result_counters()[1].labels(outcome=outcome).inc()


_writebacks: Counter | None = None
_adds: Counter | None = None


def record_add(outcome: str) -> None:
    """One add_record call (a lead put into its campaign): added, refused, retry."""
    global _adds
    if _adds is None:
        with _lock:
            if _adds is None:
                _adds = Counter(f"{PREFIX}_record_adds", "Leads added to a wolkvox campaign "
                                "(add_record) before their recall, by outcome (added, "
                                "refused, retry)", ["outcome"])
    _adds.labels(outcome=outcome).inc()


def writeback(source: str, outcome: str) -> None:
    """One write-back call's outcome: done, retry, held, failed."""
    global _writebacks
    if _writebacks is None:
        with _lock:
            if _writebacks is None:
                _writebacks = Counter(f"{PREFIX}_writebacks", "Write-back calls to the CRMs, "
                                      "by source and outcome (done, retry, held, failed)",
                                      ["source", "outcome"])
    _writebacks.labels(source=source, outcome=outcome).inc()


def wolkvox_call(seconds: float) -> None:
    """How long one call to wolkvox took."""
    _instruments().latency.observe(seconds)


def counters() -> Collector:
    """Every counter, each series shown from the start at 0."""
    _instruments()
    return _ProcessCounters()


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
