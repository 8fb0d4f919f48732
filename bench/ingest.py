"""Ingest benchmark: signed webhooks answered per second, and their latency tail, against a bare
Flask JSON endpoint under the same gunicorn settings, measured side by side in one run.

Set-up, all real processes on loopback: the sandbox wolkvox (latency 0.1 s, so the web
workers' delivery threads send while webhooks arrive, as in production), the bridge with the
shipped gunicorn settings (gunicorn.conf.py: 2 workers x 8 threads, delivery in each), and the
bare app (bench/bare.py) under the same settings, as many instances of each as `--instances`
(the load is shared out between them). The load comes from wrk (Debian's package)
when it is installed, else from a Python load generator (slower: its own limits show).
Each round also reads the web workers' CPU time (user + system, /proc/<pid>/stat) before
and after: CPU per request, steadier than req/s on a shared machine.

Usage: python bench/ingest.py [--seconds 9] [--connections 4,16] [--database sqlite|URL]
       [--instances 1]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.drain import ENV, TOKEN, _up, drop_postgres, fresh_postgres  # noqa: E402
from tests.procs import ROOT, Proc, free_port, gunicorn, wait_until  # noqa: E402

LUA = Path(__file__).with_name("post.lua")
ROUNDS = 3  # each app this many times per connection count; the median round is reported


def load(url: str, connections: int, seconds: float) -> dict:
    """Post signed webhooks to `url` for `seconds` over `connections` keep-alive connections."""
    if shutil.which("wrk"):
        return _wrk(url, connections, seconds)
    return _python_load(url, connections, seconds)


def spread(urls: list[str], connections: int, seconds: float) -> dict:
    """`load` over several instances at once, the connections shared out: requests add up,
    latencies are the worst instance's (a conservative merge of percentiles)."""
    if len(urls) == 1:
        return load(urls[0], connections, seconds)
    shares = [connections // len(urls) + (n < connections % len(urls)) for n in range(len(urls))]
    found: list[dict] = [{} for _ in urls]

    def one(n: int) -> None:
        found[n] = load(urls[n], shares[n], seconds)

    threads = [threading.Thread(target=one, args=(n,)) for n in range(len(urls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    merged = {key: max(r[key] for r in found) for key in ("p50_ms", "p90_ms", "p99_ms",
                                                           "max_ms", "seconds")}
    merged.update({key: sum(r[key] for r in found) for key in ("requests", "errors",
                                                               "non_2xx", "per_s")})
    merged["generator"] = found[0]["generator"]
    return merged


def _wrk(url: str, connections: int, seconds: float) -> dict:
    env = {**os.environ, "BENCH_RUN": uuid.uuid4().hex[:8]}
    duration = f"{max(1, round(seconds))}s"  # wrk takes whole seconds
    out = subprocess.run(["wrk", "-t", str(min(connections, 2)), "-c", str(connections),
                          "-d", duration, "--timeout", "10s", "-s", str(LUA), url],
                         capture_output=True, text=True, env=env, timeout=seconds + 60)
    found = re.search(r"WRK_JSON (\{.*\})", out.stdout)
    if not found:
        raise RuntimeError(f"wrk printed no result:\n{out.stdout}\n{out.stderr}")
    result = json.loads(found.group(1))
    result["per_s"] = round(result["requests"] / result["seconds"], 1)
    result["generator"] = "wrk"
    return result


def _python_load(url: str, connections: int, seconds: float) -> dict:
    """The fallback: one thread and keep-alive session per connection."""
    run, latencies, errors = uuid.uuid4().hex[:8], [], [0]
    stop = time.monotonic() + seconds

    def connection(n: int) -> None:
        session, i = requests.Session(), 0
        while time.monotonic() < stop:
            i += 1
            body = {"request_id": f"{run}-{n}-{i}", "lead_id": n * 10_000_000 + i,
                    "phone": "300 123 4567", "callback_at": "2030-12-01T10:30:00-05:00"}
            started = time.perf_counter()
            response = session.post(f"{url}/hooks/zapier", json=body, timeout=10,
                                    headers={"X-Bridge-Token": "bench-secret"})
            latencies.append((time.perf_counter() - started) * 1000)
            errors[0] += response.status_code >= 300

    threads = [threading.Thread(target=connection, args=(n,)) for n in range(connections)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    took = time.monotonic() - started
    ordered = sorted(latencies)

    def pct(p: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))], 2)

    return {"requests": len(ordered), "seconds": round(took, 3), "p50_ms": pct(50),
            "p90_ms": pct(90), "p99_ms": pct(99), "max_ms": round(ordered[-1], 2),
            "errors": 0, "non_2xx": errors[0], "per_s": round(len(ordered) / took, 1),
            "generator": "python"}


def run(seconds: float, connections: list[int], database: str, workdir: Path,
        instances: int = 1) -> dict:
    """Bridge and bare app, each at every connection count; the figures and their ratios."""
    if database.startswith("postgres"):
        url = fresh_postgres(database)
    else:
        url = f"sqlite:///{workdir / 'bridge.db'}"
    port = free_port()
    mappings = workdir / "mappings"
    mappings.mkdir(exist_ok=True)
    shutil.copy(ROOT / "mappings" / "zapier.yaml", mappings)
    env = {**ENV, **json.loads(os.environ.get("BENCH_ENV", "{}")), "DATABASE_URL": url,
           "WOLKVOX_BASE_URL": f"http://127.0.0.1:{port}",
           "MAPPINGS_DIR": str(mappings), "SPOOL_DIR": str(workdir / "spool")}
    procs: list[Proc] = []
    results: dict = {"database": url.split("://")[0].split("+")[0], "instances": instances,
                     "seconds": seconds, "runs": []}
    try:
        bin_dir = Path(sys.executable).parent
        sandbox = Proc([str(bin_dir / "flask"), "--app", "wsgi", "sandbox", "--port", str(port),
                        "--latency", "0.1", "--token", TOKEN], env, workdir / "sandbox.log")
        procs.append(sandbox)
        wait_until(lambda: _up(f"http://127.0.0.1:{port}"), 30, sandbox)
        bares = []
        for n in range(instances):  # the baseline gets as many servers as the bridge
            proc, bare = _bare(env, workdir, n)
            procs.append(proc)
            bares.append(bare)
        bridges = []
        for n in range(instances):
            proc, web = gunicorn(env, workdir / f"web{n}.log")
            procs.append(proc)
            bridges.append(web)
        workers = {"bare": [], "bridge": []}  # the web workers' pids, for their CPU time
        for name, group in (("bare", procs[1:1 + instances]), ("bridge", procs[1 + instances:])):
            for proc in group:
                workers[name] += worker_pids(proc.popen.pid)
        for count in connections:
            rounds: dict[str, list[dict]] = {"bare": [], "bridge": []}
            for _ in range(ROUNDS):  # interleaved, so that a noisy moment hits both
                for name, targets in (("bare", bares), ("bridge", bridges)):
                    spread(targets, count, 1)  # warm up: imports, connections, caches
                    before = cpu_seconds(workers[name])
                    found = spread(targets, count, seconds / ROUNDS)
                    spent = cpu_seconds(workers[name]) - before
                    found["cpu_ms_per_request"] = round(spent * 1000 / max(found["requests"], 1),
                                                        3)
                    rounds[name].append(found)
            for name, found in rounds.items():
                middle = sorted(found, key=lambda r: r["per_s"])[len(found) // 2]
                results["runs"].append({
                    "app": name, "connections": count, **middle,
                    # every round's tail and CPU, not only the median round's
                    "rounds_p99_ms": [r["p99_ms"] for r in found],
                    "rounds_cpu_ms": [r["cpu_ms_per_request"] for r in found]})
        for count in connections:
            bare_run = _find(results, "bare", count)
            bridge_run = _find(results, "bridge", count)
            results[f"ratio_{count}"] = round(bridge_run["per_s"] / bare_run["per_s"], 3)
    finally:
        for proc in reversed(procs):
            proc.kill()
        if url.startswith("postgresql"):
            drop_postgres(url)
    return results


def worker_pids(master: int) -> list[int]:
    """The pids of a gunicorn master's workers (its children, from /proc)."""
    found: list[int] = []
    for task in Path(f"/proc/{master}/task").iterdir():
        found += [int(pid) for pid in (task / "children").read_text().split()]
    return found


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of `pids` so far (/proc/<pid>/stat, in clock ticks)."""
    ticks = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15 of stat)
    return ticks / os.sysconf("SC_CLK_TCK")


def _bare(env: dict, workdir: Path, n: int = 0) -> tuple[Proc, str]:
    port = free_port()
    proc = Proc([str(Path(sys.executable).parent / "gunicorn"), "-c", "gunicorn.conf.py",
                 "bench.bare:app"],
                {**env, "PORT": str(port), "HOST": "127.0.0.1"}, workdir / f"bare{n}.log")
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: _answers(url), 30, proc)
    return proc, url


def _answers(url: str) -> bool:
    try:
        return requests.get(f"{url}/healthz", timeout=1).ok
    except requests.RequestException:
        return False


def _find(results: dict, app: str, count: int) -> dict:
    return next(r for r in results["runs"] if r["app"] == app and r["connections"] == count)


def table(results: dict) -> str:
    lines = [f"ingest on {results['database']} ({results['instances']} web instance(s)), "
             f"{results['seconds']:g} s a run, load from {results['runs'][0]['generator']}",
             f"{'app':<8}{'conns':>6}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}"
             f"{'non-2xx':>9}{'cpu ms':>8}  every round's p99, cpu ms"]
    for r in results["runs"]:
        lines.append(f"{r['app']:<8}{r['connections']:>6}{r['per_s']:>10.1f}{r['p50_ms']:>9.2f}"
                     f"{r['p99_ms']:>9.2f}{r['max_ms']:>9.1f}{r['non_2xx']:>9}"
                     f"{r['cpu_ms_per_request']:>8.3f}  {r['rounds_p99_ms']} {r['rounds_cpu_ms']}")
    for key, value in results.items():
        if key.startswith("ratio_"):
            lines.append(f"bridge / bare at {key[6:]} connections: {value:.3f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=9)
    parser.add_argument("--connections", default="4,16")
    parser.add_argument("--database", default="sqlite")
    parser.add_argument("--instances", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        result = run(args.seconds, [int(c) for c in args.connections.split(",")],
                     args.database, Path(workdir), args.instances)
    print(table(result))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
