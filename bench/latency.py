"""Idle latency benchmark: on an idle bridge, how long after a webhook is answered does its
recall reach wolkvox?

Set-up, all real processes on loopback: the sandbox with no latency (it stamps each recall
`at` = time.time() as it arrives: "on the wire"), and the bridge as shipped: gunicorn with
gunicorn.conf.py (2 workers, delivery threads in each), SQLite, every tunable at its default,
POLL_INTERVAL 0.5 s among them. One signed webhook at a time: post it, wait until its recall
has arrived, pause a random 50-250 ms (so posts do not fall into step with the workers'
polls), post the next. Printed:
- latency: from the webhook's answer (its client's time.time()) to its recall's `at`;
- baseline: the webhook's own answer time, measured by the same client.
An idle delivery thread looks for due events every POLL_INTERVAL x (0.5 to 1.5) seconds, so
the default 0.5 s sets the floor of these figures, not the bridge's own work.

Usage: python bench/latency.py [--webhooks 200]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.drain import SHIPPED, _stats, start_sandbox, zapier_only  # noqa: E402
from tests.procs import Proc, gunicorn, wait_until  # noqa: E402
from webhooks.settings import POLL_INTERVAL, WORKER_THREADS  # noqa: E402

WARM_UP = 5  # webhooks sent first and not counted: imports, connections, caches
PAUSE = (0.05, 0.25)  # seconds between a recall's arrival and the next webhook


def percentiles(values: list[float]) -> dict[str, float]:
    """p50, p90, p99, min and max of `values` (nearest rank), rounded to 0.01."""
    ordered = sorted(values)

    def rank(p: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))], 2)

    return {"p50": rank(50), "p90": rank(90), "p99": rank(99), "min": round(ordered[0], 2),
            "max": round(ordered[-1], 2)}


def run(count: int, workdir: Path, seed: int = 1) -> dict:
    """Post `count` webhooks one at a time to an idle bridge; the figures."""
    env = {**SHIPPED, "DATABASE_URL": f"sqlite:///{workdir / 'latency.db'}",
           "MAPPINGS_DIR": str(zapier_only(workdir)), "SPOOL_DIR": str(workdir / "spool")}
    procs: list[Proc] = []
    pace = random.Random(seed)
    answers: dict[str, tuple[float, float]] = {}  # customer id: (answer ms, answered at)
    try:
        sandbox, sandbox_url = start_sandbox(env, workdir, 0.0)
        procs.append(sandbox)
        env["WOLKVOX_BASE_URL"] = sandbox_url
        proc, bridge = gunicorn(env, workdir / "web.log")
        procs.append(proc)
        session = requests.Session()
        for n in range(WARM_UP + count):
            lead = str(n)
            body = {"request_id": f"idle-{n}", "lead_id": n, "phone": "300 123 4567",
                    "callback_at": "2030-12-01T10:30:00-05:00"}
            started = time.perf_counter()
            response = session.post(f"{bridge}/hooks/zapier", json=body, timeout=30,
                                    headers={"X-Bridge-Token": SHIPPED["ZAPIER_SHARED_SECRET"]})
            answered = time.time()
            took = (time.perf_counter() - started) * 1000
            if response.status_code != 202:
                raise RuntimeError(f"webhook {n}: {response.status_code} {response.text}")
            if n >= WARM_UP:
                answers[lead] = (took, answered)
            wait_until(lambda n=n: _stats(sandbox_url)["recalls"] > n, 30, proc)
            time.sleep(pace.uniform(*PAUSE))
        recalls = requests.get(f"{sandbox_url}/_sandbox/recalls", timeout=30).json()
    finally:
        for proc in reversed(procs):
            proc.kill()
    arrived = {r["customer_id"]: r["at"] for r in recalls}
    if len(recalls) != len(arrived) or not set(answers) <= set(arrived):
        raise RuntimeError("a recall went missing or was sent twice")
    latency = [(arrived[lead] - at) * 1000 for lead, (_, at) in answers.items()]
    answer = [took for took, _ in answers.values()]
    found, base = percentiles(latency), percentiles(answer)
    return {"database": "sqlite", "webhooks": count, "poll_interval_s": POLL_INTERVAL,
            "delivery_threads": f"2 web workers x {WORKER_THREADS}",
            "pause_s": list(PAUSE), "latency_ms": found, "answer_ms": base,
            "ratio_p50": round(found["p50"] / base["p50"], 1),
            "ratio_p99": round(found["p99"] / base["p99"], 1),
            "recalls": len(recalls), "ok": True}


def table(result: dict) -> str:
    lat, ans = result["latency_ms"], result["answer_ms"]
    return "\n".join([
        f"idle latency, {result['webhooks']} webhooks one at a time, SQLite, "
        f"POLL_INTERVAL {result['poll_interval_s']:g} s (the shipped default)",
        f"{'':<28}{'p50':>8}{'p90':>8}{'p99':>8}{'min':>8}{'max':>8}",
        f"{'answer to recall (ms)':<28}" + "".join(f"{lat[k]:>8.1f}" for k in
                                                  ("p50", "p90", "p99", "min", "max")),
        f"{'webhook answer (ms)':<28}" + "".join(f"{ans[k]:>8.1f}" for k in
                                                ("p50", "p90", "p99", "min", "max"))])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--webhooks", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        result = run(args.webhooks, Path(workdir))
    print(table(result))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
