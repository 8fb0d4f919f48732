"""The loop's costs: what call results (wolkvox's campaign_3 report) cost the token, and how
soon a result shows.

Set-up, real HTTP on loopback: the sandbox wolkvox in a thread, playing the dialer (every
recall it accepts is answered at its date: the row shows in the report at once for a callback
asked for now), and one bridge on SQLite (delivery threads in this process, every tunable at
its default but CALL_RESULTS_INTERVAL, WOLKVOX_MIN_LEAD 0 and WOLKVOX_DAILY_LIMIT, so that
the share applies). Three phases, each printed:
- units: N callbacks of N leads at once, until every result is in; wolkvox units spent (the
  sandbox's count: recalls and reports) per delivered recall. Target: 1 + at most
  CALL_RESULTS_SHARE.
- idle: with every result in, 3 intervals more; report calls made. Target 0.
- delay: one callback at a time, a random pause apart; from the row appearing in the report
  (the sandbox stamps the recall's arrival: its row is dated then) to the bridge showing the
  result (its `called` attempt). Target: at most one interval plus 5 s.

Usage: python bench/loop.py [--events 300] [--interval 10]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.drain import zapier_only  # noqa: E402
from bench.latency import percentiles  # noqa: E402
from webhooks import bridge_of, create_app  # noqa: E402
from webhooks.sandbox import create_sandbox, serve  # noqa: E402
from webhooks.settings import CALL_RESULTS_SHARE  # noqa: E402

TOKEN = "bench-loop-token-0123456789"
SECRET = "bench-secret"
DAILY_LIMIT = 10_000
DELAY_CALLBACKS = 8


def run(events: int, interval: float, workdir: Path) -> dict[str, Any]:
    sandbox_app = create_sandbox([TOKEN])
    state = sandbox_app.extensions["sandbox"]
    state.autodial = "ANSWER"
    server = serve(sandbox_app)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}"
    app = create_app({
        "database_url": f"sqlite:///{workdir / 'loop.db'}",
        "mappings_dir": str(zapier_only(workdir)), "wolkvox_token": TOKEN,
        "wolkvox_base_url": url, "spool_dir": str(workdir / "spool"),
        "call_results_interval": interval, "wolkvox_min_lead": 0.0,
        "wolkvox_daily_limit": DAILY_LIMIT,
        "environ": {"ZAPIER_SHARED_SECRET": SECRET, "WOLKVOX_CAMPAIGN_ID": "4638"}})
    bridge = bridge_of(app)
    client = app.test_client()
    bridge.start_delivery()
    try:
        units = _units(client, bridge, state, events, interval)
        idle = _idle(state, interval)
        delay = _delay(client, bridge, state, events, interval)
    finally:
        bridge.stop_background()
        server.shutdown()
    return {"events": events, "interval_s": interval, "share": CALL_RESULTS_SHARE,
            **units, **idle, **delay}


def _post(client: Any, lead: int) -> int:
    body = {"request_id": f"loop-{lead}", "lead_id": lead, "phone": "300 123 4567",
            "callback_at": datetime.now(UTC).isoformat()}
    answer = client.post("/hooks/zapier", json=body, headers={"X-Bridge-Token": SECRET})
    assert answer.status_code == 202, answer.get_data(as_text=True)
    return answer.get_json()["events"][0]["id"]


def _reported(bridge: Any) -> int:
    return len(bridge.store.list_events(result="ANSWER", limit=100_000))


def _units(client: Any, bridge: Any, state: Any, events: int, interval: float) -> dict:
    for lead in range(1, events + 1):
        _post(client, lead)
    deadline = time.monotonic() + 30 + 4 * interval
    while _reported(bridge) < events and time.monotonic() < deadline:
        time.sleep(0.2)
    delivered = len(bridge.store.list_events(status="delivered", limit=100_000))
    with state.lock:
        used, reports = sum(state.used.values()), sum(state.reports.values())
    return {"delivered": delivered, "reported": _reported(bridge), "units": used,
            "report_calls": reports,
            "units_per_recall": round(used / delivered, 4) if delivered else None}


def _idle(state: Any, interval: float) -> dict:
    with state.lock:
        before = sum(state.reports.values())
    time.sleep(3 * interval)
    with state.lock:
        after = sum(state.reports.values())
    return {"idle_seconds": 3 * interval, "idle_report_calls": after - before}


def _delay(client: Any, bridge: Any, state: Any, events: int, interval: float) -> dict:
    delays = []
    for n in range(DELAY_CALLBACKS):
        lead = events + 1 + n
        event_id = _post(client, lead)
        deadline = time.monotonic() + 2 * interval + 30
        while time.monotonic() < deadline:
            row = bridge.store.get(event_id)
            if row["call_result"]:
                break
            time.sleep(0.05)
        called = [a["at"] for a in bridge.store.attempts_of(event_id) if a["outcome"] == "called"]
        with state.lock:
            arrived = next(r["at"] for r in state.recalls if r["customer_id"] == str(lead))
        if called:
            delays.append(called[0] - arrived)
        time.sleep(random.uniform(0.2, 1.0) * interval)
    return {"delay_s": percentiles(delays) if delays else None, "delays": len(delays),
            "delay_target_s": interval + 5}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=300)
    parser.add_argument("--interval", type=float, default=10.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        print(json.dumps(run(args.events, args.interval, Path(workdir)), indent=2))


if __name__ == "__main__":
    main()
