"""Recovery benchmark: how soon after a `deliver` process is killed with SIGKILL are its slots
and claimed events free for the others?

Set-up, as tests/test_recovery.py's first test, all real processes on loopback: a backlog of
queued events, the sandbox at 0.4 s a call, two `flask deliver` processes on one database
with the shipped defaults (WOLKVOX_TIMEOUT 60 s, LEASE 3 s, POLL_INTERVAL 0.5 s); the first
holds both of the token's slots, the second waits for one. SIGKILL the first, then watch the
slots and events tables (holder LIKE '<host>:<pid>:%'). Printed, per database:
- recovered: seconds from the kill until the killed process holds no slot and no `sending`
  event; taken over: until the survivor holds a slot;
- baseline: LEASE (a dead process's rows are free within about a lease) and WOLKVOX_TIMEOUT
  (the first design kept a claim for a lease of the longest call: ~100 s with these defaults).

Usage: python bench/recovery.py [--database sqlite,postgresql] [--events 300]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.backlog import insert_events, queued_rows  # noqa: E402
from bench.drain import (  # noqa: E402
    SHIPPED,
    _stats,
    drop_database,
    fresh_database,
    start_sandbox,
    zapier_only,
)
from tests.procs import Proc, deliver, held_by, wait_until  # noqa: E402
from webhooks.settings import LEASE, WOLKVOX_TIMEOUT, Settings  # noqa: E402
from webhooks.store import normalize_url  # noqa: E402

LATENCY = 0.4  # seconds the sandbox takes per call, as in tests/test_recovery.py
GIVE_UP = 300.0  # seconds: far past the first design's ~100 s, so a regression still measures


def run(database: str, workdir: Path, events: int = 300) -> dict:
    """Kill the deliver process that holds both slots; the seconds until they are free."""
    url = fresh_database(database, workdir)
    env = {**SHIPPED, "DATABASE_URL": url, "MAPPINGS_DIR": str(zapier_only(workdir))}
    procs: list[Proc] = []
    engine = sa.create_engine(normalize_url(url))
    try:
        sandbox, sandbox_url = start_sandbox(env, workdir, LATENCY)
        procs.append(sandbox)
        env["WOLKVOX_BASE_URL"] = sandbox_url
        insert_events(url, queued_rows(env, events, prefix="recovery"))
        first = deliver(env, workdir / f"first-{database}.log", threads=2)
        procs.append(first)
        wait_until(lambda: _stats(sandbox_url)["requests"] >= 4, 60, first)
        second = deliver(env, workdir / f"second-{database}.log", threads=2)
        procs.append(second)
        time.sleep(1.5)  # the second is up and finds both slots taken
        wait_until(lambda: held_by(engine, first)["slots"] == 2, 20, first)
        at_kill = held_by(engine, first)
        os.killpg(first.popen.pid, signal.SIGKILL)
        killed = time.monotonic()
        first.popen.wait(10)
        taken_over = None
        while True:
            now = time.monotonic()
            if taken_over is None and held_by(engine, second)["slots"]:
                taken_over = now - killed
            if held_by(engine, first) == {"slots": 0, "claims": 0}:
                recovered = now - killed
                break
            if now - killed > GIVE_UP:
                raise RuntimeError(f"the killed process still holds rows after {GIVE_UP:g} s")
            if second.popen.poll() is not None:
                raise RuntimeError(f"the second process exited:\n{second.output()[-3000:]}")
            time.sleep(0.02)
        if taken_over is None:
            wait_until(lambda: held_by(engine, second)["slots"] > 0, 60, second)
            taken_over = time.monotonic() - killed
    finally:
        engine.dispose()
        for proc in reversed(procs):
            proc.kill()
        drop_database(url)
    return {"database": url.split("://")[0].split("+")[0], "events": events,
            "latency_s": LATENCY, "held_at_kill": at_kill,
            "recovered_s": round(recovered, 2), "taken_over_s": round(taken_over, 2),
            "lease_s": LEASE, "wolkvox_timeout_s": WOLKVOX_TIMEOUT,
            "longest_call_s": Settings().longest_handling,
            "ratio_to_lease": round(recovered / LEASE, 3), "ok": recovered <= 5.0}


def table(results: list[dict]) -> str:
    lines = [f"recovery after SIGKILL (LEASE {LEASE:g} s, WOLKVOX_TIMEOUT {WOLKVOX_TIMEOUT:g} s)",
             f"{'database':<12}{'held at the kill':>18}{'free after s':>14}{'taken over s':>14}"]
    for r in results:
        held = f"{r['held_at_kill']['slots']} slots, {r['held_at_kill']['claims']} events"
        lines.append(f"{r['database']:<12}{held:>18}{r['recovered_s']:>14.2f}"
                     f"{r['taken_over_s']:>14.2f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", default="sqlite,postgresql",
                        help="comma list: sqlite, postgresql, or a postgresql:// server URL")
    parser.add_argument("--events", type=int, default=300)
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as workdir:
        for database in args.database.split(","):
            results.append(run(database, Path(workdir), args.events))
    print(table(results))
    print(json.dumps(results))


if __name__ == "__main__":
    main()
