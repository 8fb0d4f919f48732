"""Backlog benchmark: does delivery keep its pace, its query plan and its memory with 100,000
events waiting?

Set-up, all real processes on loopback: a fresh PostgreSQL database, N queued events inserted
directly (the rows store/ingest.py writes for the zapier mapping, one lead each, all due
now: one due time for all), VACUUM ANALYZE (what autovacuum does after a load this size), the
sandbox (latency L), then 2 `flask deliver` processes for a fixed time, in two halves:
1. the backlog as inserted, every event due at the same instant;
2. the same backlog with its due times moved 1 ms apart (an UPDATE, then ANALYZE, while the
   processes deliver on), as when events arrive one request at a time.
Printed:
- the drain rate of each half (recalls per second the sandbox received) against the token's
  ceiling 2 / L;
- the plan of the claim query (store/events.py `_claim`, built the same way) with EXPLAIN
  ANALYZE (rolled back) before each half, before ANALYZE and after the first half: the node
  types, the index read, the time; a Seq Scan in the first half's plan fails the figure;
- each deliver process's resident memory (VmRSS), sampled every few seconds over both
  halves: first, last, max and last / first (a leak shows as growth with the events handled).

Usage: python bench/backlog.py [--events 100000] [--seconds 36] [--latency 0.05]
       [--database URL]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.drain import (  # noqa: E402
    ENV,
    TOKEN,
    _stats,
    baseline,
    drop_database,
    fresh_database,
    start_sandbox,
    zapier_only,
)
from tests.procs import Proc, deliver, wait_until  # noqa: E402
from webhooks.intake.judge import judge  # noqa: E402
from webhooks.lifecycle import Status  # noqa: E402
from webhooks.mapping.files import load_sources  # noqa: E402
from webhooks.settings import Settings  # noqa: E402
from webhooks.store import NO_TIMEOUTS, Store  # noqa: E402
from webhooks.store.ingest import _row  # noqa: E402
from webhooks.store.tables import events  # noqa: E402

CHUNK = 10_000  # rows per executemany
SAMPLE_EVERY = 3.0  # seconds between memory samples


# --- the backlog ---------------------------------------------------------------------------
def queued_rows(env: dict[str, str], count: int, prefix: str = "backlog") -> list[dict]:
    """`count` queued events of distinct leads, all due now, in the rows store/ingest.py
    writes: one event judged by the real zapier mapping, copied with its own request and
    lead, each made a row by ingest.py's own `_row`."""
    settings = Settings.from_env(env)
    source = load_sources(settings.mappings_dir, settings)["zapier"]
    sample = {"request_id": f"{prefix}-0", "lead_id": 0, "phone": "300 123 4567",
              "callback_at": "2030-12-01T10:30:00-05:00"}
    model = judge(source, sample, 0, None, datetime.now(UTC))
    assert model.status == Status.QUEUED and model.recall, model.reason
    now = time.time()
    rows = []
    for n in range(count):
        item = replace(model, dedup_key=f"{prefix}-{n}",
                       raw={**sample, "request_id": f"{prefix}-{n}", "lead_id": n},
                       recall={**model.recall, "customer_id": str(n)})
        rows.append(_row(item, now))
    return rows


def insert_events(url: str, rows: list[dict]) -> float:
    """Migrate the database and insert `rows`; seconds taken.

    One INSERT through SQLAlchemy Core executed for every row, which psycopg 3 pipelines:
    3.5 s for 100,000 rows here, where multi-row VALUES lists took 13 s (insertmanyvalues,
    1,000 rows a statement) and 34 s (one `values([...])` of 2,000 rows a statement)."""
    store = Store(url, NO_TIMEOUTS)  # a bulk seed, not a webhook: no 1.2 s statement limit
    try:
        store.migrate()
        started = time.monotonic()
        with store.engine.begin() as connection:
            for at in range(0, len(rows), CHUNK):
                connection.execute(sa.insert(events), rows[at:at + CHUNK])
        return time.monotonic() - started
    finally:
        store.dispose()


def analyze(url: str, statement: str | None = None) -> None:
    """Run `statement` (if any), then VACUUM ANALYZE events: the statistics autovacuum would
    have gathered after a change this size."""
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            if statement:
                connection.execute(sa.text(statement))
            connection.execute(sa.text("VACUUM ANALYZE events"))
    finally:
        engine.dispose()


# --- the claim query's plan ----------------------------------------------------------------
def claim_query(sources: list[str], now: float, limit: int = 10) -> sa.Select:
    """The due-events query of store/events.py `_claim`, built the same way."""
    return (sa.select(events.c.id, events.c.source, events.c.raw, events.c.recall,
                      events.c.attempts, events.c.created_at, events.c.requeued_at,
                      events.c.token_key, events.c.campaign_id, events.c.customer_id)
            .where(events.c.status == Status.QUEUED, events.c.next_attempt_at <= now,
                   events.c.source.in_(sources))
            .order_by(events.c.next_attempt_at, events.c.id).limit(limit)
            .with_for_update(skip_locked=True))


def explain_claim(url: str, sources: list[str]) -> dict[str, Any]:
    """EXPLAIN (ANALYZE, FORMAT JSON) of the claim query, rolled back (it locks what it
    reads); the scans it used, the indexes they read, and its execution time."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            query = claim_query(sources, time.time())
            compiled = query.compile(dialect=connection.dialect,
                                     compile_kwargs={"literal_binds": True})
            plan = connection.execute(sa.text(
                f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {compiled}")).scalar()
            connection.rollback()
    finally:
        engine.dispose()
    top = plan[0]
    nodes = list(_nodes(top["Plan"]))
    scans = [n for n in nodes if "Scan" in n["Node Type"]]
    return {"scans": [n["Node Type"] for n in scans],
            "indexes": sorted({n["Index Name"] for n in scans if "Index Name" in n}),
            "seq_scan": any(n["Node Type"] == "Seq Scan" for n in scans),
            "node_types": [n["Node Type"] for n in nodes],
            "rows_read": sum(n.get("Actual Rows", 0) * n.get("Actual Loops", 1)
                             for n in scans),
            "execution_ms": round(top["Execution Time"], 3),
            "planning_ms": round(top["Planning Time"], 3), "plan": top["Plan"]}


def _brief(plan: dict) -> dict:
    return {k: v for k, v in plan.items() if k != "plan"}


def _nodes(node: dict) -> Any:
    yield node
    for child in node.get("Plans", []):
        yield from _nodes(child)


# --- resident memory -----------------------------------------------------------------------
def rss_kb(pid: int) -> int | None:
    """VmRSS of a live process in kB, from /proc/<pid>/status; None once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def memory(samples: list[int]) -> dict[str, Any]:
    return {"first_mb": round(samples[0] / 1024, 1), "last_mb": round(samples[-1] / 1024, 1),
            "max_mb": round(max(samples) / 1024, 1),
            "growth": round(samples[-1] / samples[0], 3), "samples": len(samples)}


# --- the run -------------------------------------------------------------------------------
SPREAD = ("UPDATE events SET next_attempt_at = created_at - 0.001 * ({count} - id) "
          "WHERE status = 'queued'")  # due times 1 ms apart: as if they arrived over 100 s


def run(count: int, seconds: float, latency: float, workdir: Path,
        database: str = "postgresql") -> dict:
    """Insert the backlog (one due time for all), explain the claim, deliver for half of
    `seconds`; spread the due times 1 ms apart, explain again, deliver for the other half,
    the same processes throughout (their memory is sampled all along); the figures."""
    url = fresh_database(database, workdir)
    env = {**ENV, "DATABASE_URL": url, "MAPPINGS_DIR": str(zapier_only(workdir)),
           "DELIVERY_WORKER": "false"}
    procs: list[Proc] = []
    try:
        sandbox, sandbox_url = start_sandbox(env, workdir, latency)
        procs.append(sandbox)
        env["WOLKVOX_BASE_URL"] = sandbox_url
        base_rate = baseline(sandbox_url)  # a bare 2-thread client on the same sandbox
        requests.delete(f"{sandbox_url}/_sandbox/recalls", timeout=5)
        rows = queued_rows(env, count)
        insert_seconds = insert_events(url, rows)
        del rows
        plans = {"before_analyze": explain_claim(url, ["zapier"])}
        analyze(url)
        plans["one_due_time"] = explain_claim(url, ["zapier"])
        workers = [deliver(env, workdir / f"deliver{n}.log") for n in range(2)]
        procs.extend(workers)
        wait_until(lambda: _stats(sandbox_url)["recalls"] > 0, 60, workers[0])
        samples: list[list[int]] = [[] for _ in workers]
        windows = {"one_due_time": _deliver_for(workers, seconds / 2, samples)}
        plans["one_due_time_after"] = explain_claim(url, ["zapier"])
        analyze(url, SPREAD.format(count=count))  # the processes deliver on meanwhile
        plans["spread"] = explain_claim(url, ["zapier"])
        windows["spread"] = _deliver_for(workers, seconds / 2, samples)
        recalls = requests.get(f"{sandbox_url}/_sandbox/recalls", timeout=30).json()
        stats = _stats(sandbox_url)
    finally:
        for proc in reversed(procs):
            proc.kill()
        drop_database(url)
    ceiling = 2 / latency
    ids = [r["customer_id"] for r in recalls]
    rss = [memory(s) for s in samples]
    phases = {}
    for name, (begin, end) in windows.items():
        times = sorted(r["at"] for r in recalls if begin <= r["at"] < end)
        rate = (len(times) - 1) / (times[-1] - times[0])
        phases[name] = {"seconds": round(end - begin, 1), "recalls": len(times),
                        "bridge_per_s": round(rate, 1),
                        "ratio_to_ceiling": round(rate / ceiling, 3),
                        "ratio_to_baseline": round(rate / base_rate, 3),
                        "claim_plan": _brief(plans[name])}
    return {
        "database": url.split("://")[0].split("+")[0], "events": count,
        "insert_seconds": round(insert_seconds, 1), "seconds": seconds, "latency_s": latency,
        "ceiling_per_s": ceiling, "baseline_per_s": round(base_rate, 1), "phases": phases,
        "bridge_per_s": phases["one_due_time"]["bridge_per_s"],
        "ratio_to_ceiling": phases["one_due_time"]["ratio_to_ceiling"],
        "recalls": len(recalls), "unique_customers": len(set(ids)),
        "max_in_flight": stats["max_in_flight"].get(TOKEN),
        "refused_for_concurrency": stats["refused_for_concurrency"],
        "claim_plan": _brief(plans["one_due_time"]),
        "claim_plan_before_analyze": _brief(plans["before_analyze"]),
        "claim_plan_after_drain": _brief(plans["one_due_time_after"]),
        "rss": rss, "rss_growth_max": max(r["growth"] for r in rss),
        "ok": not plans["one_due_time"]["seq_scan"] and len(set(ids)) == len(ids),
    }


def _deliver_for(workers: list[Proc], seconds: float,
                 samples: list[list[int]]) -> tuple[float, float]:
    """Let the deliver processes work for `seconds`, sampling their memory; the wall-clock
    window (the sandbox stamps recalls with time.time())."""
    begin = time.time()
    stop = time.monotonic() + seconds
    while True:
        for n, proc in enumerate(workers):
            found = rss_kb(proc.popen.pid)
            if found is None:
                raise RuntimeError(f"deliver process exited:\n{proc.output()[-3000:]}")
            samples[n].append(found)
        left = stop - time.monotonic()
        if left <= 0:
            return begin, time.time()
        time.sleep(min(SAMPLE_EVERY, left))


def table(result: dict) -> str:
    lines = [f"backlog of {result['events']:,} queued events on {result['database']} "
             f"(inserted in {result['insert_seconds']:g} s), 2 deliver processes for "
             f"{result['seconds']:g} s, sandbox latency {result['latency_s']:g} s, "
             f"{result['recalls']} recalls to {result['unique_customers']} leads, "
             f"max in flight {result['max_in_flight']}"]
    for label, plan in (("before ANALYZE", result["claim_plan_before_analyze"]),
                        ("one due time, after the drain", result["claim_plan_after_drain"])):
        lines.append(f"claim, {label}: {_plan_line(plan)}")
    for name, phase in result["phases"].items():
        lines.append(f"{name}: {phase['bridge_per_s']:.1f} recalls/s of "
                     f"{result['ceiling_per_s']:g} ({phase['ratio_to_ceiling']:.3f}; "
                     f"{phase['ratio_to_baseline']:.3f} of a bare client's "
                     f"{result['baseline_per_s']:g}) over "
                     f"{phase['seconds']:g} s; claim: {_plan_line(phase['claim_plan'])}")
    for n, rss in enumerate(result["rss"]):
        lines.append(f"deliver {n} RSS: first {rss['first_mb']} MB, last {rss['last_mb']} MB, "
                     f"max {rss['max_mb']} MB, last/first {rss['growth']}")
    return "\n".join(lines)


def _plan_line(plan: dict) -> str:
    return (f"{' > '.join(plan['node_types'])}; index {', '.join(plan['indexes']) or 'none'}; "
            f"{plan['execution_ms']} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=36)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--database", default="postgresql",
                        help="postgresql (TEST_DATABASE_URL or local) or a server URL")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        result = run(args.events, args.seconds, args.latency, Path(workdir), args.database)
    print(table(result))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
