"""The bridge as a whole through the API: the overview's figures, the sources and their URLs,
and trying a sample body on a source's mapping (nothing stored, nothing sent)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from flask_smorest import abort
from jmespath.exceptions import JMESPathError

from ...bridge import current_bridge
from ...crm import formats
from ...intake import judge as intake
from ...intake import trial
from ...intake.receiver import hook_base
from ...lifecycle import Status
from ...recall import mask_recall
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
        content_type = sample.get("content_type") or formats.CONTENT_TYPES[source.format]
    else:
        body, content_type = json.dumps(sample["body"]).encode(), "application/json"
    answer: dict[str, Any] = {"source": name, "error": None, "events": [], "note": None}
    try:
        events = source.events_of(source.parse(body, content_type))
    except formats.FormatError as err:
        return {**answer, "error": f"unreadable {source.format} body: {err}"}
    except JMESPathError as err:
        return {**answer, "error": f"the mapping's `events` path fails on this body: {err}"}
    limit, note = b.settings.max_events_per_request, None
    if not events:
        note = "no events: the mapping's `events` path found nothing in this body"
    elif len(events) > limit:
        note = (f"{len(events)} events: the hook refuses more than {limit} in one request "
                f"(413); the first {limit} are judged here")
    now = b.settings.clock()
    return {**answer, "note": note, "events": [_verdict(b, source, event, index, now)
                                               for index, event in enumerate(events[:limit])]}


def _verdict(b: Any, source: Any, event: Any, index: int, now: datetime) -> dict[str, Any]:
    found = intake.verdict(source, event, index, None, now)
    judged = found.event
    recall, plan = judged.recall, None
    if recall is not None:
        when = trial.when_sent(b, source, recall, now)
        plan = {"action": when.action, "recall_date": when.sent,
                "note": (when.note or "as asked") + (trial.CAPS_NOTE if when.caps else "")}
        recall = mask_recall(recall)
    reason = judged.reason
    if judged.status == Status.QUEUED and source.lookup is not None:
        reason = f"fields come after the lookup of {source.lookup.describe()} (done by the worker)"
    return {"index": index, "status": judged.status.value, "dedup_key": judged.dedup_key,
            "reason": reason, "errors": found.errors, "recall": recall, "plan": plan}
