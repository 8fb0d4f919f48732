"""Write-backs' figures: how fast the bridge writes notes to a CRM that allows N per second,
and how soon a note follows its recall on an idle bridge.

Set-up, real HTTP on loopback: the sandbox wolkvox and HubSpot's look-alike (tests/
hubspot_lookalike.py: it checks the documented note shape and answers 429 with Retry-After
past `notes_per_second` in any second), each in a thread; one bridge on SQLite with a zapier
mapping that writes a HubSpot note on `scheduled`, its `rate:` RATE_SHARE of N.
- rate: M callbacks delivered first (write-back threads not started), then the threads start
  and write the M notes; notes per second from the first note to the last, against N. Target:
  at least 0.9 N; never above N (the look-alike's 429s, and its busiest second).
- delay: the bridge started as in production (delivery and write-back threads), one callback
  at a time, a random pause apart; from the recall's arrival at the sandbox to its note's at
  the look-alike. Target: p50 under 1 s.

Usage: python bench/writeback.py [--notes 300] [--per-second 20]
"""

from __future__ import annotations

import argparse
import json
import logging
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
from tests.hubspot_lookalike import HubSpotLookalike  # noqa: E402
from webhooks import bridge_of, create_app  # noqa: E402
from webhooks.delivery.worker import Worker  # noqa: E402
from webhooks.sandbox import create_sandbox, serve  # noqa: E402

TOKEN = "bench-writeback-token-012345"
SECRET = "bench-secret"
CRM_TOKEN = "bench-crm-token"
RATE_SHARE = 0.95  # the mapping's rate: under the CRM's limit, as the shipped ones are
DELAY_CALLBACKS = 20
NOTE = """
rate: %s
writeback:
  - name: HubSpot note
    on: scheduled
    url: %s/crm/v3/objects/notes
    headers: {Authorization: "Bearer %s"}
    json:
      properties: {hs_timestamp: "{{ at.iso }}", hs_note_body: "{{ note }}"}
      associations:
        - to: {id: "{{ event.lead_id }}"}
          types: [{associationCategory: HUBSPOT_DEFINED, associationTypeId: 202}]
"""


def run(notes: int, per_second: float, workdir: Path) -> dict[str, Any]:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a line per note otherwise
    sandbox_app = create_sandbox([TOKEN])
    state = sandbox_app.extensions["sandbox"]
    server = serve(sandbox_app)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    crm = HubSpotLookalike(CRM_TOKEN).start()
    for lead in range(1, notes + DELAY_CALLBACKS + 1):
        crm.add_contact(lead)
    mappings = zapier_only(workdir)
    zapier = mappings / "zapier.yaml"
    zapier.write_text(zapier.read_text() + NOTE % (per_second * RATE_SHARE, crm.url, CRM_TOKEN))
    app = create_app({
        "database_url": f"sqlite:///{workdir / 'writeback.db'}", "mappings_dir": str(mappings),
        "wolkvox_token": TOKEN, "wolkvox_base_url": f"http://127.0.0.1:{server.server_port}",
        "spool_dir": str(workdir / "spool"), "wolkvox_min_lead": 0.0,
        "environ": {"ZAPIER_SHARED_SECRET": SECRET, "WOLKVOX_CAMPAIGN_ID": "4638"}})
    bridge = bridge_of(app)
    client = app.test_client()
    try:
        rate = _rate(client, bridge, crm, notes, per_second)
        crm.notes_per_second = None
        bridge.start_delivery()
        delay = _delay(client, crm, state, notes)
    finally:
        bridge.stop_background()
        crm.stop()
        server.shutdown()
    return {"notes": notes, "per_second": per_second, "rate_setting": per_second * RATE_SHARE,
            **rate, **delay}


def _post(client: Any, lead: int) -> None:
    body = {"request_id": f"wb-{lead}", "lead_id": lead, "phone": "300 123 4567",
            "callback_at": datetime.now(UTC).isoformat()}
    answer = client.post("/hooks/zapier", json=body, headers={"X-Bridge-Token": SECRET})
    assert answer.status_code == 202, answer.get_data(as_text=True)


def _rate(client: Any, bridge: Any, crm: HubSpotLookalike, notes: int,
          per_second: float) -> dict[str, Any]:
    crm.notes_per_second = per_second
    for lead in range(1, notes + 1):
        _post(client, lead)
    worker = Worker(bridge.store, bridge.sources, bridge.settings, name="bench")
    while worker.run_once():  # every recall delivered: the notes wait in the store
        pass
    worker.writebacks.start()
    deadline = time.monotonic() + 30 + 3 * notes / per_second
    while len(crm.notes) < notes and time.monotonic() < deadline:
        time.sleep(0.05)
    worker.writebacks.stop()
    arrived = sorted(note["at"] for note in crm.notes)
    span = arrived[-1] - arrived[0] if len(arrived) > 1 else 0.0
    busiest = max(sum(1 for t in arrived if start <= t < start + 1.0) for start in arrived)
    return {"written": len(arrived), "notes_per_s": round((len(arrived) - 1) / span, 2)
            if span else None, "busiest_second": busiest, "refused_429": crm.refused_notes}


def _delay(client: Any, crm: HubSpotLookalike, state: Any, notes: int) -> dict[str, Any]:
    delays = []
    for n in range(DELAY_CALLBACKS):
        lead = notes + 1 + n
        before = len(crm.notes)
        _post(client, lead)
        deadline = time.monotonic() + 10
        while len(crm.notes) == before and time.monotonic() < deadline:
            time.sleep(0.005)
        note = next((x for x in crm.notes if x["contact"] == str(lead)), None)
        with state.lock:
            recall = next((r["at"] for r in state.recalls if r["customer_id"] == str(lead)),
                          None)
        if note is not None and recall is not None:
            delays.append((note["at"] - recall) * 1000)
        time.sleep(random.uniform(0.1, 0.5))
    return {"delay_ms": percentiles(delays) if delays else None, "delays": len(delays)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notes", type=int, default=300)
    parser.add_argument("--per-second", type=float, default=20.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        print(json.dumps(run(args.notes, args.per_second, Path(workdir)), indent=2))


if __name__ == "__main__":
    main()
