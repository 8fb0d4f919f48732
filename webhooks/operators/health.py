"""/healthz (the process answers) and /readyz (it can do its job), as JSON."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue

from ..bridge import current_bridge
from ..store import StoreRefused, StoreUnavailable
from ..store.spool import Depth

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    return jsonify({"status": "ok"})


def spool_state(depth: Depth, now: float) -> dict[str, Any]:
    """The spool on /readyz: this store's requests waiting, other stores' requests left alone
    in the same folder (with their stores' fingerprints), and files set aside."""
    return {"requests": depth.requests,
            "oldest_age_seconds": round(now - depth.oldest, 1) if depth.oldest else None,
            "foreign": {"requests": depth.foreign, "stores": list(depth.foreign_stores)},
            "set_aside": depth.set_aside}


def spool_problems(depth: Depth) -> list[str]:
    """What an operator must look at in the spool folder (readiness does not depend on it)."""
    problems = []
    if depth.foreign:
        problems.append(
            f"spool: {depth.foreign} request(s) in the spool folder belong to another store "
            f"({', '.join(depth.foreign_stores)}), not this one: left for the bridge of that "
            "store (give each bridge its own SPOOL_DIR, or leave it unset)")
    if depth.set_aside:
        problems.append(
            f"spool: {depth.set_aside} request(s) set aside as not replayable: see the "
            ".reason files in set-aside/ of the spool folder; a file moved back is replayed")
    return problems


def call_results_state(interval: float, states: list[dict[str, Any]],
                       awaiting: int) -> dict[str, Any]:
    """Call results on /readyz: on or off, how many recalls await theirs, and each campaign
    whose last report did not go well (readiness does not depend on it: recalls still go)."""
    return {
        "on": interval > 0, "interval": interval, "awaiting": awaiting,
        "reports_not_ok": [
            {"token": r["token_key"], "campaign_id": r["campaign_id"], "outcome": r["outcome"],
             "reason": r["reason"],
             "at": datetime.fromtimestamp(r["last_at"], UTC).isoformat() if r["last_at"] else None}
            for r in states if r["outcome"] not in (None, "ok")],
    }


def writebacks_state(bridge: Any, counts: dict[tuple[str, str], int]) -> list[dict[str, Any]]:
    """Each source's write-backs on /readyz: on, or off and why, and how many are in each
    status (readiness does not depend on them: recalls still go)."""
    return [{"source": name, "name": entry.name, "on": not entry.off, "off": entry.off,
             "moments": list(entry.moments), "host": entry.host,
             "counts": {status: n for (source, status), n in sorted(counts.items())
                        if source == name}}
            for name, source in sorted(bridge.sources.items()) for entry in source.writebacks]


@bp.get("/readyz")
def readyz() -> ResponseReturnValue:
    """Ready when the database takes a write and mappings are loaded. Lists held tokens and
    why, the spool (requests kept on disk while the store was down), setup problems found on
    real requests (a wrong PUBLIC_URL), and event counts."""
    bridge = current_bridge()
    now = bridge.settings.clock().timestamp()
    depth = bridge.spool.depth()
    body: dict = {"sources": sorted(bridge.sources), "database": "ok", "held_tokens": [],
                  "spool": spool_state(depth, now),
                  "problems": [f"{name}: {message}"
                               for name, message in sorted(bridge.diagnostics.items())]
                  + spool_problems(depth)}
    try:
        bridge.store.probe_write(now)
        for key, hold in bridge.store.holds().items():
            sources = ([key.split(":", 1)[1]] if key.startswith(("lookup:", "writeback:"))
                       else sorted(s.name for s in bridge.sources.values() if s.target.key == key))
            body["held_tokens"].append({
                "token": key, "sources": sources, "kind": hold["kind"], "reason": hold["reason"],
                "until": datetime.fromtimestamp(hold["until"], UTC).isoformat(),
                "active": hold["until"] > now,
            })
        body["events"] = bridge.store.counts()
        body["call_results"] = call_results_state(bridge.settings.call_results_interval,
                                                  bridge.store.report_states(),
                                                  bridge.store.awaiting_count())
        body["writebacks"] = writebacks_state(bridge, bridge.store.writeback_counts())
        body["alerts"] = {"on": bool(bridge.settings.alert_webhook_url), "standing": [
            {"key": a["key"], "text": a["text"],
             "since": datetime.fromtimestamp(a["since"], UTC).isoformat()}
            for a in bridge.store.alert_states() if a["active"]]}
    except (StoreUnavailable, StoreRefused) as err:
        body.update(database=f"cannot write: {err}", status="unready")
        return jsonify(body), 503
    body["status"] = "ready" if bridge.sources else "unready"
    return jsonify(body), 200 if bridge.sources else 503
