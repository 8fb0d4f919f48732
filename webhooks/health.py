"""/healthz (the process answers) and /readyz (it can do its job), as JSON."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, current_app, jsonify
from flask.typing import ResponseReturnValue

from .store import StoreUnavailable

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz() -> ResponseReturnValue:
    """Ready when the database answers and mappings are loaded; lists held tokens and why."""
    bridge = current_app.extensions["recall_bridge"]
    body: dict = {"sources": sorted(bridge.sources), "database": "ok", "held_tokens": []}
    try:
        bridge.store.ping()
        now = bridge.settings.clock().timestamp()
        for key, hold in bridge.store.holds().items():
            sources = sorted(s.name for s in bridge.sources.values() if s.target.key == key)
            body["held_tokens"].append({
                "token": key, "sources": sources, "kind": hold["kind"], "reason": hold["reason"],
                "until": datetime.fromtimestamp(hold["until"], UTC).isoformat(),
                "active": hold["until"] > now,
            })
        body["events"] = bridge.store.counts()
    except StoreUnavailable as err:
        body.update(database=f"unavailable: {err}", status="unready")
        return jsonify(body), 503
    body["status"] = "ready" if bridge.sources else "unready"
    return jsonify(body), 200 if bridge.sources else 503
