"""The bridge as a whole through the API: the overview's figures, the sources and their URLs,
and trying a sample body on a source's mapping (nothing stored, nothing sent)."""

from __future__ import annotations

import json
from typing import Any

from flask_smorest import abort

from ...bridge import current_bridge
from ...crm.formats import format_of
from ...intake import pipeline as intake
from ...intake.receiver import hook_base
from ...lifecycle import Status
from ...mapping.source import Source
from .. import overview as model
from . import schemas as s
from .common import blueprint, documents

bp = blueprint("bridge", "The overview, the sources, and trying a mapping")


@bp.route("/overview", methods=["GET"])
@bp.response(200, s.OverviewSchema)
@documents(bp, 401)
def overview() -> model.Overview:
    """What the console's overview shows, as figures: events by source (today, and the 7 local
    days that end today, in WOLKVOX_TIMEZONE; every configured source), each token's state
    (calls in flight, quota, hold in force, queue) and the hourly received and delivered
    counts of the last 48 hours."""
    return model.build(current_bridge())  # OverviewSchema names its fields for the API


@bp.route("/sources", methods=["GET"])
@bp.response(200, s.SourceListSchema)
@documents(bp, 401)
def sources() -> dict[str, Any]:
    """Every source served: the URLs to give the CRM, its format and auth scheme, where its
    recalls go (the token's fingerprint, the time zone) and its calling hours."""
    b = current_bridge()
    base = hook_base(b.settings)
    return {"sources": [{
        "name": name, "description": source.description, "url": f"{base}/hooks/{name}",
        "capture_url": f"{base}/hooks/{name}/test", "format": source.format,
        "auth": source.verifier.scheme, "token": source.target.key,
        "timezone": source.target.timezone,
        "calling_hours": source.hours.describe() if source.hours else None,
        "lookup": source.lookup.describe() if source.lookup else None,
    } for name, source in sorted(b.sources.items())]}


@bp.route("/sources/<name>/try", methods=["POST"])
@bp.arguments(s.TrySchema)
@bp.response(200, s.TryResultSchema)
@documents(bp, 400, 401, 404)
def try_mapping(sample: dict[str, Any], name: str) -> dict[str, Any]:
    """Judge a sample body as the source would, like `flask mappings try`: each event's
    verdict, with the recall (phone masked) or the errors per field. Nothing is stored or
    sent, and the signature is not checked. A body that cannot be read as the source's
    format, or on which the `events` path fails, is answered with `error` saying so."""
    b = current_bridge()
    source = b.sources.get(name)
    if source is None:
        abort(404, message=f"no source {name!r}; known: {', '.join(sorted(b.sources))}")
    if isinstance(sample["body"], str):
        body = sample["body"].encode("utf-8", "surrogatepass")
        content_type = sample.get("content_type") or format_of(source.format).sample_type
    else:
        body, content_type = json.dumps(sample["body"]).encode(), "application/json"
    result = intake.try_body(b, source, body, content_type)
    answer: dict[str, Any] = {"source": name, "error": None, "events": [], "note": None}
    if result.problem is not None:
        return {**answer, "error": result.message}
    return {**answer, "note": _note(result), "events": [_verdict(source, tried)
                                                          for tried in result.events]}


def _note(result: intake.Result) -> str | None:
    """What the hook would do with the body as a whole, when it is not plain."""
    if result.handshake is not None:
        return ("the CRM's handshake: the hook answers it with "
                f"{json.dumps(result.handshake.answer, ensure_ascii=False)}")
    if not result.found:
        return "no events: the mapping's `events` path found nothing in this body"
    if result.over_limit:
        return (f"{result.found} events: the hook refuses more than {result.limit} in one "
                f"request (413); the first {result.limit} are judged here")
    return None


def _verdict(source: Source, tried: intake.Tried) -> dict[str, Any]:
    plan = None
    if tried.when is not None:
        when = tried.when
        plan = {"action": when.action, "recall_date": when.sent,
                "note": (when.note or "as asked") + (intake.CAPS_NOTE if when.caps else "")}
    reason = tried.reason
    if tried.status == Status.QUEUED and source.lookup is not None:
        reason = f"fields come after the lookup of {source.lookup.describe()} (done by the worker)"
    return {"index": tried.index, "status": tried.status, "dedup_key": tried.dedup_key,
            "reason": reason, "errors": tried.errors, "recall": tried.recall, "plan": plan}
