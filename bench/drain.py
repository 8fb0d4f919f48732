"""Drain benchmark: how close does the bridge come to wolkvox's ceiling for one token?

Set-up, all real processes on loopback: the sandbox (latency L, 2 calls in flight per token),
2 gunicorn web instances and 2 `flask deliver` processes on one PostgreSQL (or SQLite).
N events are received through the web instances first, then the deliver processes start and
drain the queue. Printed:
- ceiling: 2 / L recalls per second, the most the token allows;
- baseline: a bare client with 2 threads calling the sandbox back to back, in this run
  (the sandbox's and HTTP's own overhead, without the bridge);
- bridge: recalls per second from the first to the last recall the sandbox received;
- ratios bridge/ceiling and bridge/baseline; exactly-once and concurrency refusals;
- with --arriving M (600 by default), the same for M more webhooks posted through the web
  instances while the deliver processes run: the drain with requests coming in.

Usage: python bench/drain.py [--events 2000] [--latency 0.05] [--database URL] [--arriving 600]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.procs import ROOT, Proc, deliver, free_port, gunicorn, wait_until  # noqa: E402
from webhooks.outbound.deadline import new_session  # noqa: E402
from webhooks.store import normalize_url  # noqa: E402

TOKEN = "bench-token-0001"
PG_DEFAULT = "postgresql://postgres@127.0.0.1:5432/test"
SHIPPED = {"WOLKVOX_CAMPAIGN_ID": "4638", "ZAPIER_SHARED_SECRET": "bench-secret",
           "WOLKVOX_TOKEN": TOKEN, "SOURCES": "zapier"}  # every tunable at its default
ENV = {**SHIPPED, "POLL_INTERVAL": "0.2"}  # throughput figures: idle polls do not count


def fresh_postgres(base: str) -> str:
    name = f"rb_bench_{os.getpid()}_{int(time.time())}"
    admin = sa.create_engine(normalize_url(base), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return normalize_url(base).rsplit("/", 1)[0] + f"/{name}"


def drop_postgres(url: str) -> None:
    base, name = url.rsplit("/", 1)
    admin = sa.create_engine(base + "/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def postgres_base(database: str | None = None) -> str:
    """The PostgreSQL server the benchmarks create their databases on."""
    return database or os.environ.get("TEST_DATABASE_URL", PG_DEFAULT)


def fresh_database(kind: str, workdir: Path) -> str:
    """A new empty database: `sqlite` (a file in `workdir`), `postgresql` (on the server of
    TEST_DATABASE_URL), or a postgresql:// URL of a server to create it on."""
    if kind == "sqlite":
        return f"sqlite:///{workdir / f'bridge-{time.monotonic_ns()}.db'}"
    return fresh_postgres(postgres_base(None if kind == "postgresql" else kind))


def drop_database(url: str) -> None:
    """Drop a database made by `fresh_database` (SQLite files go with their workdir)."""
    if url.startswith("postgresql"):
        drop_postgres(url)


def zapier_only(workdir: Path) -> Path:
    """A mappings folder with the shipped zapier mapping alone: no other secrets needed."""
    mappings = workdir / "mappings"
    mappings.mkdir(exist_ok=True)
    shutil.copy(ROOT / "mappings" / "zapier.yaml", mappings)
    return mappings


def start_sandbox(env: dict, workdir: Path, latency: float) -> tuple[Proc, str]:
    """The wolkvox sandbox as its own process (`flask sandbox`, which builds the app: `env`
    names the database and mappings); (proc, base url)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = Proc([str(Path(sys.executable).parent / "flask"), "--app", "wsgi", "sandbox",
                 "--port", str(port), "--latency", str(latency), "--token", TOKEN],
                {**env, "WOLKVOX_BASE_URL": url}, workdir / f"sandbox-{port}.log")
    wait_until(lambda: _up(url), 30, proc)
    return proc, url


def baseline(sandbox: str, seconds: float = 3.0) -> float:
    """Recalls per second of a bare 2-thread client against the same sandbox."""
    stop = time.monotonic() + seconds
    counts = [0, 0]

    def loop(n: int) -> None:
        session = new_session(sandbox)  # the same client set-up as the bridge's
        i = 0
        while time.monotonic() < stop:
            i += 1
            session.put(f"{sandbox}/api/v2/campaign.php",
                        params={"api": "recall", "type_campaign": "predictive",
                                "campaign_id": "1"},
                        json={"recall_date": "20301201103000", "recall_telephone": "93001234567",
                              "customer_id": f"base-{n}-{i}"},
                        headers={"wolkvox-token": TOKEN}, timeout=10).raise_for_status()
            counts[n] += 1

    started = time.monotonic()
    threads = [threading.Thread(target=loop, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts) / (time.monotonic() - started)


def post_events(urls: list[str], count: int, first: int = 0) -> None:
    def post(i: int) -> int:
        body = {"request_id": f"bench-{i}", "lead_id": i, "phone": "300 123 4567",
                "callback_at": "2030-12-01T10:30:00-05:00"}
        response = requests.post(f"{urls[i % len(urls)]}/hooks/zapier", json=body,
                                 headers={"X-Bridge-Token": "bench-secret"}, timeout=30)
        response.raise_for_status()
        return response.status_code

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(post, range(first, first + count)))


def run(events: int, latency: float, database: str | None, workdir: Path,
        arriving: int = 0) -> dict:
    """Run the whole set-up once; return the figures (also used by the slow test). With
    `arriving`, a second phase: that many more webhooks posted while the deliver processes
    run (they arrive faster than they can be sent: the drain goes on with requests coming)."""
    pg_base = postgres_base(database)
    url = fresh_postgres(pg_base) if pg_base.startswith("postgres") else pg_base
    env = {**ENV, "DATABASE_URL": url, "MAPPINGS_DIR": str(zapier_only(workdir)),
           "DELIVERY_WORKER": "false", "WEB_CONCURRENCY": "2"}
    procs: list[Proc] = []
    try:
        sandbox, sandbox_url = start_sandbox(env, workdir, latency)
        procs.append(sandbox)
        env["WOLKVOX_BASE_URL"] = sandbox_url
        base_rate = baseline(sandbox_url)
        requests.delete(f"{sandbox_url}/_sandbox/recalls", timeout=5)
        webs = []
        for n in range(2):
            proc, web = gunicorn(env, workdir / f"web{n}.log")
            procs.append(proc)
            webs.append(web)
        received_at = time.monotonic()
        post_events(webs, events)
        receive_seconds = time.monotonic() - received_at
        for n in range(2):
            procs.append(deliver(env, workdir / f"deliver{n}.log"))
        wait_until(lambda: _stats(sandbox_url)["recalls"] >= events, 600, procs[-1])
        time.sleep(1.0)  # anything sent twice would arrive now
        recalls = requests.get(f"{sandbox_url}/_sandbox/recalls", timeout=30).json()
        stats = _stats(sandbox_url)
        during = _arriving(webs, sandbox_url, events, arriving, procs[-1]) if arriving else None
    finally:
        for proc in reversed(procs):
            proc.kill()
        if url != pg_base and url.startswith("postgresql"):
            drop_postgres(url)
    rate = _rate(recalls)
    ceiling = 2 / latency
    ids = [r["customer_id"] for r in recalls]
    if during is not None:
        during.update(ratio_to_ceiling=round(during["bridge_per_s"] / ceiling, 3),
                      ratio_to_baseline=round(during["bridge_per_s"] / base_rate, 3))
    return {
        "arriving": during,
        "events": events, "latency_s": latency, "database": url.split("://")[0],
        "received_per_s": round(events / receive_seconds, 1),
        "ceiling_per_s": ceiling, "baseline_per_s": round(base_rate, 1),
        "bridge_per_s": round(rate, 1),
        "ratio_to_ceiling": round(rate / ceiling, 3),
        "ratio_to_baseline": round(rate / base_rate, 3),
        "recalls": len(recalls), "unique_customers": len(set(ids)),
        "refused_for_concurrency": stats["refused_for_concurrency"],
        "max_in_flight": stats["max_in_flight"].get(TOKEN),
    }


def _arriving(webs: list[str], sandbox_url: str, first: int, count: int, proc: Proc) -> dict:
    """`count` webhooks posted through `webs` while the deliver processes run: the drain's
    rate from the first of their recalls to the last, and its checks."""
    requests.delete(f"{sandbox_url}/_sandbox/recalls", timeout=5)
    posted = time.monotonic()
    post_events(webs, count, first)
    receive_seconds = time.monotonic() - posted
    wait_until(lambda: _stats(sandbox_url)["recalls"] >= count, 300, proc)
    time.sleep(1.0)
    recalls = requests.get(f"{sandbox_url}/_sandbox/recalls", timeout=30).json()
    stats = _stats(sandbox_url)
    return {"events": count, "received_per_s": round(count / receive_seconds, 1),
            "bridge_per_s": round(_rate(recalls), 1), "recalls": len(recalls),
            "unique_customers": len({r["customer_id"] for r in recalls}),
            "refused_for_concurrency": stats["refused_for_concurrency"],
            "max_in_flight": stats["max_in_flight"].get(TOKEN)}


def _rate(recalls: list[dict]) -> float:
    """Recalls per second from the first recall the sandbox received to the last."""
    times = sorted(r["at"] for r in recalls)
    return (len(times) - 1) / (times[-1] - times[0])


def _up(url: str) -> bool:
    try:
        return requests.get(f"{url}/_sandbox/stats", timeout=1).ok
    except requests.RequestException:
        return False


def _stats(url: str) -> dict:
    return requests.get(f"{url}/_sandbox/stats", timeout=10).json()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--database", default=None, help="default: TEST_DATABASE_URL or local PG")
    parser.add_argument("--arriving", type=int, default=600,
                        help="webhooks posted while the deliver processes run (0: none)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        result = run(args.events, args.latency, args.database, Path(workdir), args.arriving)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
