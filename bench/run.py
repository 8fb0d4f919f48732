"""`make bench`: every figure in one run, each against its baseline measured in the same run.

Figures (each module also runs alone; see its docstring):
- ingest (bench/ingest.py): webhooks/s, latency (every round's p99) and the web workers' CPU
  per webhook of the bridge vs bare Flask, SQLite with 1 web instance and PostgreSQL with 2, at
  4 and 16 connections;
- drain (bench/drain.py): recalls/s through 2 web + 2 deliver processes on PostgreSQL vs a bare
  client and the token's ceiling, queued first and with webhooks arriving;
- idle latency (bench/latency.py): a webhook's answer to its recall on the wire, vs the
  webhook's own answer time;
- recovery (bench/recovery.py): seconds until a SIGKILLed deliver process's slots and claims
  are free, SQLite and PostgreSQL, vs LEASE;
- backlog (bench/backlog.py): drain rate (vs a bare client), claim plan and memory with
  100,000 queued events;
- loop (bench/loop.py): call results' costs: wolkvox units per delivered recall, report calls
  while nothing awaits, and the delay from a result in the report to the bridge showing it;
- writeback (bench/writeback.py): notes per second to a CRM that allows N per second, vs N,
  and the delay from a recall's delivery to its CRM note on an idle bridge.

Prints one table (a line per figure: name, value, baseline, ratio, unit, note) and one JSON
object, and writes the JSON to bench/results/<timestamp>.json. Exits 1 when a figure could not
be measured or failed its check (exactly-once, at most 2 in flight, a Seq Scan in the claim,
recovery over 5 s); a target missed (noted in the table) is not a failure.

Usage: python bench/run.py [--only ingest,drain,latency,recovery,backlog,console,loop,writeback]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import (  # noqa: E402
    backlog,
    console,
    drain,
    ingest,
    latency,
    loop,
    recovery,
    writeback,
)

RESULTS = Path(__file__).with_name("results")
INGEST_SECONDS = 9  # per app and connection count, in 3 interleaved rounds
DRAIN_EVENTS = 2000
DRAIN_LATENCY = 0.05
IDLE_WEBHOOKS = 200
BACKLOG_EVENTS = 100_000
BACKLOG_SECONDS = 36
# Targets of the issue "Performance": reported as met or missed, never a failure.
INGEST_P99_MS = {"sqlite": {16: 50}, "postgresql": {4: 30, 16: 100}}  # every round's p99
INGEST_RATIO = 0.25  # of bare Flask's throughput at 16 connections
INGEST_CPU_MS = 0.9  # the web workers' CPU per webhook on SQLite, delivery in them
DRAIN_RATIO = 0.95  # of a bare 2-thread client on the same sandbox (and shown: the ceiling)
DRAIN_ARRIVING = 600  # webhooks posted while the deliver processes send
RECOVERY_S = 5.0
RSS_GROWTH = 1.2
LOOP_EVENTS = 300
LOOP_INTERVAL = 10.0  # CALL_RESULTS_INTERVAL of the loop's figures (wolkvox advises 300 s)
WRITEBACK_NOTES = 300
WRITEBACK_PER_S = 20.0  # what the CRM look-alike allows (HubSpot Pro: 19 per second)
WRITEBACK_RATIO = 0.9  # of what the CRM allows, never above it
WRITEBACK_DELAY_MS = 1000.0  # p50, recall to note, idle bridge


# --- the figures -------------------------------------------------------------------------
def measure_ingest(workdir: Path) -> dict:
    return {"sqlite": ingest.run(INGEST_SECONDS, [4, 16], "sqlite", _dir(workdir, "ingest-sq")),
            "postgresql": ingest.run(INGEST_SECONDS, [4, 16], drain.postgres_base(),
                                     _dir(workdir, "ingest-pg"), instances=2)}


def measure_drain(workdir: Path) -> dict:
    return drain.run(DRAIN_EVENTS, DRAIN_LATENCY, None, _dir(workdir, "drain"),
                     arriving=DRAIN_ARRIVING)


def measure_latency(workdir: Path) -> dict:
    return latency.run(IDLE_WEBHOOKS, _dir(workdir, "latency"))


def measure_recovery(workdir: Path) -> dict:
    return {kind: recovery.run(kind, _dir(workdir, f"recovery-{kind}"))
            for kind in ("sqlite", "postgresql")}


def measure_backlog(workdir: Path) -> dict:
    return backlog.run(BACKLOG_EVENTS, BACKLOG_SECONDS, DRAIN_LATENCY, _dir(workdir, "backlog"))


def measure_console(workdir: Path) -> dict:
    return console.run(BACKLOG_EVENTS, 30, drain.postgres_base(), _dir(workdir, "console"))


def measure_loop(workdir: Path) -> dict:
    return loop.run(LOOP_EVENTS, LOOP_INTERVAL, _dir(workdir, "loop"))


def measure_writeback(workdir: Path) -> dict:
    return writeback.run(WRITEBACK_NOTES, WRITEBACK_PER_S, _dir(workdir, "writeback"))


FIGURES: dict[str, Callable[[Path], dict]] = {
    "ingest": measure_ingest, "drain": measure_drain, "latency": measure_latency,
    "recovery": measure_recovery, "backlog": measure_backlog, "console": measure_console,
    "loop": measure_loop, "writeback": measure_writeback}


# --- the table's lines ----------------------------------------------------------------------
def row(name: str, value: float | None, baseline: float | None, unit: str, note: str,
        ratio: float | None = None, ok: bool = True) -> dict:
    if ratio is None and baseline and value is not None:
        ratio = value / baseline
    return {"name": name, "value": value, "baseline": baseline,
            "ratio": None if ratio is None else round(ratio, 3), "unit": unit,
            "note": note if ok else f"FAIL: {note}", "ok": ok}


def met(good: bool) -> str:
    return "met" if good else "MISSED"


def ingest_rows(found: dict) -> list[dict]:
    rows = []
    for db, result in found.items():
        label = f"ingest {db} x{result['instances']}"
        for count in sorted({r["connections"] for r in result["runs"]}):
            bare, bridge = (next(r for r in result["runs"] if r["app"] == app and
                                 r["connections"] == count) for app in ("bare", "bridge"))
            ratio = bridge["per_s"] / bare["per_s"]
            clean = bridge["non_2xx"] == 0 and bridge["errors"] == 0
            answers = "every answer 2xx" if clean else \
                f"{bridge['non_2xx']} non-2xx, {bridge['errors']} socket errors"
            target = f"; target >= {INGEST_RATIO}: {met(ratio >= INGEST_RATIO)}" \
                if count == 16 else ""
            rows.append(row(f"{label} c{count}", bridge["per_s"], bare["per_s"], "req/s",
                            f"vs bare Flask{target}; load from {bridge['generator']}; {answers}",
                            ratio=ratio, ok=bridge["non_2xx"] == 0))
            worst = max(bridge["rounds_p99_ms"])
            limit = INGEST_P99_MS.get(db, {}).get(count)
            target = f"; target <= {limit} ms in every round: {met(worst <= limit)}" \
                if limit else ""
            rows.append(row(f"{label} c{count} p99", bridge["p99_ms"], bare["p99_ms"], "ms",
                            f"median round; rounds {bridge['rounds_p99_ms']}; p50 "
                            f"{bridge['p50_ms']:.1f} ms (bare {bare['p50_ms']:.1f}){target}"))
            cpu = bridge["cpu_ms_per_request"]
            target = f"; target <= {INGEST_CPU_MS} ms: {met(cpu <= INGEST_CPU_MS)}" \
                if db == "sqlite" and count == 16 else ""
            rows.append(row(f"{label} c{count} cpu", cpu, bare["cpu_ms_per_request"],
                            "ms/req", f"web workers' CPU (user + system, /proc) per webhook, "
                            f"median round; rounds {bridge['rounds_cpu_ms']}; baseline bare "
                            f"Flask's{target}"))
    return rows


def drain_rows(found: dict) -> list[dict]:
    rows = []
    phases = [("queued first", found)]
    if found.get("arriving"):
        phases.append((f"{found['arriving']['events']} arriving", found["arriving"]))
    for label, phase in phases:
        exact = phase["recalls"] == phase["unique_customers"] == phase["events"]
        bounded = (phase["max_in_flight"] or 0) <= 2 and phase["refused_for_concurrency"] == 0
        checks = (f"{phase['recalls']} recalls to {phase['unique_customers']} of "
                  f"{phase['events']} leads, max in flight {phase['max_in_flight']}, "
                  f"{phase['refused_for_concurrency']} refused")
        ratio = phase["ratio_to_baseline"]
        rows.append(row(f"drain postgresql, {label}", phase["bridge_per_s"],
                        found["baseline_per_s"], "recalls/s",
                        f"vs a bare 2-thread client on the same sandbox; 2 web + 2 deliver, "
                        f"latency {found['latency_s']:g} s; target >= {DRAIN_RATIO}: "
                        f"{met(ratio >= DRAIN_RATIO)}; {checks}", ok=exact and bounded))
        rows.append(row(f"drain postgresql, {label} vs ceiling", phase["bridge_per_s"],
                        found["ceiling_per_s"], "recalls/s", "2 calls in flight / latency"))
    return rows


def latency_rows(found: dict) -> list[dict]:
    lat, ans = found["latency_ms"], found["answer_ms"]
    note = (f"{found['webhooks']} webhooks one at a time, SQLite, POLL_INTERVAL "
            f"{found['poll_interval_s']:g} s (shipped default: the floor); baseline: the "
            "webhook's own answer")
    notes = {"p50": note, "p99": "from the webhook's answer to its recall's arrival at the "
             "sandbox (its `at`)", "max": f"min {lat['min']:.1f} ms"}
    return [row(f"idle latency {k}", lat[k], ans[k], "ms", notes[k]) for k in notes]


def recovery_rows(found: dict) -> list[dict]:
    rows = []
    for db, result in found.items():
        recovered = result["recovered_s"]
        rows.append(row(f"recovery {db}", recovered, result["lease_s"], "s",
                        f"baseline LEASE; WOLKVOX_TIMEOUT {result['wolkvox_timeout_s']:g} s "
                        f"(first design: a lease of the longest call, ~100 s); survivor has a "
                        f"slot at {result['taken_over_s']:.2f} s; target <= {RECOVERY_S:g} s: "
                        f"{met(recovered <= RECOVERY_S)}", ok=recovered <= RECOVERY_S))
    return rows


def backlog_rows(found: dict) -> list[dict]:
    rows = []
    for name, phase in found["phases"].items():
        plan = phase["claim_plan"]
        index = ", ".join(plan["indexes"]) or "no index"
        ok = not plan["seq_scan"] if name == "one_due_time" else True
        label = {"one_due_time": "one due time", "spread": "due times 1 ms apart"}[name]
        to_bare = phase["bridge_per_s"] / found["baseline_per_s"]
        rows.append(row(f"backlog drain, {label}", phase["bridge_per_s"],
                        found["baseline_per_s"], "recalls/s",
                        f"vs a bare 2-thread client; {found['events']:,} queued; "
                        f"{phase['seconds']:g} s; {phase['ratio_to_ceiling']:.3f} of the "
                        f"ceiling; target >= {DRAIN_RATIO}: {met(to_bare >= DRAIN_RATIO)}"))
        rows.append(row(f"backlog claim, {label}", plan["execution_ms"], None, "ms",
                        f"{' > '.join(plan['node_types'])} ({index}), "
                        f"{plan['rows_read']:,} rows read" +
                        ("; a Seq Scan" if plan["seq_scan"] else ""), ok=ok))
    unique = found["unique_customers"] == found["recalls"]
    if not unique:
        rows.append(row("backlog exactly once", found["unique_customers"], found["recalls"],
                        "leads", "recalls sent twice", ok=False))
    for n, rss in enumerate(found["rss"]):
        rows.append(row(f"backlog RSS deliver {n}", rss["last_mb"], rss["first_mb"], "MB",
                        f"last vs first of {rss['samples']} samples, max {rss['max_mb']} MB; "
                        f"flat (<= {RSS_GROWTH}): {met(rss['growth'] <= RSS_GROWTH)}",
                        ratio=rss["growth"]))
    return rows


def console_rows(found: dict) -> list[dict]:
    rows = []
    for name, entry in found["pages"].items():
        worst = max(entry["console"]["p95_ms"], entry["api"]["p95_ms"])
        plan = entry.get("plan") or {}
        rows.append(row(f"events page p95, {name}", entry["console"]["p95_ms"],
                        found["target_ms"], "ms",
                        f"API list p95 {entry['api']['p95_ms']} ms; {found['events']:,} events; "
                        f"plan {', '.join(plan.get('indexes', [])) or '-'}; target <= "
                        f"{found['target_ms']:g} ms: {met(worst <= found['target_ms'])}",
                        ok=not plan.get("seq_scan", False)))
    return rows


def loop_rows(found: dict) -> list[dict]:
    per = found["units_per_recall"]
    target = 1 + found["share"]
    delay = found["delay_s"] or {}
    worst = delay.get("max")
    all_in = found["reported"] == found["delivered"] == found["events"]
    return [
        row("loop units per recall", per, 1.0, "units",
            f"{found['units']} units for {found['delivered']} recalls ({found['report_calls']} "
            f"reports), CALL_RESULTS_INTERVAL {found['interval_s']:g} s; target <= {target:g}: "
            f"{met(per is not None and per <= target)}", ok=all_in),
        row("loop report calls while idle", found["idle_report_calls"], 0, "calls",
            f"over {found['idle_seconds']:g} s with nothing awaiting; target 0: "
            f"{met(found['idle_report_calls'] == 0)}"),
        row("loop result delay max", worst, found["delay_target_s"], "s",
            f"p50 {delay.get('p50')} s over {found['delays']} results; target <= "
            f"{found['delay_target_s']:g} s (one interval + 5 s): "
            f"{met(worst is not None and worst <= found['delay_target_s'])}",
            ok=found["delays"] > 0)]


def writeback_rows(found: dict) -> list[dict]:
    allowed = found["per_second"]
    rate = found["notes_per_s"]
    never_above = found["refused_429"] == 0 and found["busiest_second"] <= allowed
    delay = found["delay_ms"] or {}
    p50 = delay.get("p50")
    return [
        row("writeback notes per second", rate, allowed, "notes/s",
            f"{found['written']} of {found['notes']} notes, rate: {found['rate_setting']:g}; "
            f"target >= {WRITEBACK_RATIO} of what the CRM allows: "
            f"{met(rate is not None and rate >= WRITEBACK_RATIO * allowed)}; busiest second "
            f"{found['busiest_second']}, {found['refused_429']} answered 429 (never above: "
            f"{met(never_above)})", ok=found["written"] == found["notes"]),
        row("writeback delay p50", p50, WRITEBACK_DELAY_MS, "ms",
            f"recall at wolkvox to note at the CRM, idle bridge, {found['delays']} callbacks; "
            f"p90 {delay.get('p90')} ms, max {delay.get('max')} ms; target < "
            f"{WRITEBACK_DELAY_MS:g} ms: {met(p50 is not None and p50 < WRITEBACK_DELAY_MS)}",
            ok=found["delays"] > 0)]


ROWS: dict[str, Callable[[dict], list[dict]]] = {
    "ingest": ingest_rows, "drain": drain_rows, "latency": latency_rows,
    "recovery": recovery_rows, "backlog": backlog_rows, "console": console_rows,
    "loop": loop_rows, "writeback": writeback_rows}


def table(rows: list[dict]) -> str:
    lines = [f"{'figure':<36}{'value':>10}{'baseline':>10}{'ratio':>8}  {'unit':<10}note"]
    for r in rows:
        value = "-" if r["value"] is None else f"{r['value']:g}"
        baseline = "" if r["baseline"] is None else f"{r['baseline']:g}"
        ratio = "" if r["ratio"] is None else f"{r['ratio']:.3f}"
        lines.append(f"{r['name']:<36}{value:>10}{baseline:>10}{ratio:>8}  "
                     f"{r['unit']:<10}{r['note']}")
    return "\n".join(lines)


# --- the machine and the run --------------------------------------------------------------
def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    model = next((line.split(":", 1)[1].strip() for line in _lines("/proc/cpuinfo")
                  if line.startswith("model name")), platform.processor())
    memory = next((int(line.split()[1]) for line in _lines("/proc/meminfo")
                   if line.startswith("MemTotal:")), 0)
    return {"cpus": os.cpu_count(), "cpu_model": model,
            "memory_gb": round(memory / 1024 / 1024, 1), "kernel": platform.release(),
            "python": platform.python_version(), "load_average": os.getloadavg(),
            "git": _git()}


def _lines(path: str) -> list[str]:
    try:
        return Path(path).read_text().splitlines()
    except OSError:
        return []


def _git() -> dict[str, Any]:
    def out(*args: str) -> str:
        return subprocess.run(["git", *args], capture_output=True, text=True,
                              cwd=Path(__file__).parent).stdout.strip()

    return {"commit": out("rev-parse", "--short", "HEAD"),
            "uncommitted": out("status", "--porcelain", "--", "webhooks", "bench").splitlines()}


def _dir(workdir: Path, name: str) -> Path:
    path = workdir / name
    path.mkdir()
    return path


def run(names: list[str]) -> dict:
    """Measure the named figures in order; a figure that raises is recorded, not fatal."""
    report: dict[str, Any] = {"started": datetime.now().astimezone().isoformat(timespec="seconds"),
                              "machine": machine(), "figures": {}, "errors": {}, "rows": []}
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-") as workdir:
        for name in names:
            started = time.monotonic()
            print(f"bench: {name} ...", file=sys.stderr, flush=True)
            try:
                found = FIGURES[name](Path(workdir))
            except Exception as err:  # the other figures are still worth having
                traceback.print_exc()
                report["errors"][name] = f"{type(err).__name__}: {err}"[:2000]
                report["rows"].append(row(name, None, None, "", "not measured: "
                                          f"{type(err).__name__}", ok=False))
                continue
            report["figures"][name] = found
            report["rows"].extend(ROWS[name](found))
            print(f"bench: {name} took {time.monotonic() - started:.0f} s", file=sys.stderr,
                  flush=True)
    report["seconds"] = round(time.monotonic() - began)
    report["load_average_after"] = os.getloadavg()
    report["ok"] = all(r["ok"] for r in report["rows"])
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(FIGURES),
                        help=f"comma list of figures (default: all of {', '.join(FIGURES)})")
    args = parser.parse_args()
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = set(names) - set(FIGURES)
    if unknown:
        parser.error(f"unknown figure(s): {', '.join(sorted(unknown))}")
    report = run(names)
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{datetime.now():%Y%m%d-%H%M%S}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(table(report["rows"]))
    print(json.dumps(report))
    print(f"bench: {report['seconds']} s; written to {path}", file=sys.stderr)
    sys.exit(0 if report["ok"] else 1)


if __name__ == "__main__":
    main()
