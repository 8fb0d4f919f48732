"""The bridge as a whole through the API: the overview's figures, the sources and their URLs,
and trying a sample body on a source's mapping (nothing stored, nothing sent)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from flask_smorest import abort
from jmespath.exceptions import JMESPathError

from ...bridge import current_bridge
from ...crm import formats
from ...intake import judge as intake
from ...intake import trial
from ...intake.receiver import hook_base
from ...lifecycle import Status
from ...recall import mask_recall
from . import schemas as s
from .common import blueprint, documents, reasoned

bp = blueprint("bridge", "The overview, the sources, and trying a mapping")
HOURS = 48  # the overview's hourly series
WEEK = 7 * 86400


@bp.route("/overview", methods=["GET"])
@bp.response(200, s.OverviewSchema)
@documents(bp, 401)
def overview() -> dict[str, Any]:
    """Events by source (today, 7 days), each token's state (calls in flight, quota, hold,
    queue) and the hourly received and delivered counts of the last 48 hours."""
    b = current_bridge()
    now = b.settings.clock().timestamp()
    zone = b.settings.wolkvox_timezone
    midnight = datetime.fromtimestamp(now, ZoneInfo(zone)).replace(
        hour=0, minute=0, second=0, microsecond=0).timestamp()
    today, week = b.store.counts_by_source(midnight), b.store.counts_by_source(now - WEEK)
    return {"now": now, "timezone": zone,
            "sources": [{"source": name, "today": today.get(name, {}), "week": counts}
                        for name, counts in sorted(week.items())],
            "tokens": _tokens(b, now), "hourly": _hourly(b, now)}


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


def _tokens(b: Any, now: float) -> list[dict[str, Any]]:
    """Each token's state, with the sources that send through it."""
    limit = b.settings.wolkvox_daily_limit or None
    answer = []
    for key, state in sorted(b.token_states(now).items()):
        hold = state.get("hold")
        oldest = state.get("oldest_due")
        answer.append({
            "token": key, "sources": state["sources"],
            "in_flight": state.get("in_flight", 0),
            "max_in_flight": b.settings.wolkvox_max_concurrency,
            "quota_day": state["day"], "quota_used": state.get("quota_used", 0),
            "quota_limit": limit, "queued": state.get("queued", 0),
            "hold": {**reasoned(hold), "active": hold["until"] > now} if hold else None,
            "oldest_due_age_seconds": round(now - oldest, 1) if oldest is not None else None,
        })
    return answer


def _hourly(b: Any, now: float) -> list[dict[str, Any]]:
    first = int(now // 3600) - HOURS + 1
    counts = b.store.hourly(first * 3600)
    return [{"hour": hour * 3600, "received": counts["received"].get(hour, 0),
             "delivered": counts["delivered"].get(hour, 0)}
            for hour in range(first, first + HOURS)]
