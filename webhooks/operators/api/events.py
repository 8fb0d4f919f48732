"""Events through the API: search (keyset pages), one event in full, the operator's actions on
it (retry, cancel, reveal the phone, bulk retry) and the audit log. Every action goes through
operations.py, which writes the audit log, as the command line and the console do."""

from __future__ import annotations

from typing import Any

from flask_smorest import abort
from marshmallow import RAISE

from ...bridge import current_bridge
from ...recall import mask_phone, mask_phones_in
from ...store import MAX_ID, EventFilter
from .. import operations
from . import schemas as s
from .common import ACTOR, admin_only, blueprint, documents, reasoned

bp = blueprint("events", "Events: search, detail, and the operator's actions")
EVENT = f"/events/<int(min=1, max={MAX_ID}):event_id>"


@bp.route("/events", methods=["GET"])
@bp.arguments(s.EventQuery, location="query", as_kwargs=True, unknown=RAISE)
@bp.response(200, s.EventPageSchema)
@documents(bp, 401)
def list_events(limit: int, before: int | None = None, phone: str | None = None,
                **query: Any) -> dict[str, Any]:
    """The newest events matching the filters, a page at a time (newest first)."""
    where = _filter(phone=phone, **query)
    if where is None:
        return {"events": [], "next_before": None}
    rows = current_bridge().store.search(where, before=before, limit=limit)
    return {"events": [_row(r) for r in rows],
            "next_before": rows[-1]["id"] if len(rows) == limit else None}


@bp.route(EVENT, methods=["GET"])
@bp.response(200, s.EventSchema)
@documents(bp, 401, 404)
def get_event(event_id: int) -> dict[str, Any]:
    """One event: its body as sent, the recall, every attempt and the operators' actions."""
    store = current_bridge().store
    row = _event(event_id)
    recall = dict(row["recall"]) if row["recall"] else None
    if recall and "recall_telephone" in recall:
        recall["recall_telephone"] = mask_phone(recall["recall_telephone"])
    return {**_row(row), "dedup_key": row["dedup_key"], "token": row["token_key"],
            "requeued_at": row["requeued_at"], "scheduled_for": row["scheduled_for"],
            "raw": masked(row["raw"]), "recall": recall,
            "attempts": [reasoned(a) for a in store.attempts_of(event_id)],
            "writebacks": [reasoned(w) for w in store.writebacks_of(event_id)],
            "audit": store.audit_log(event_id=event_id)}


@bp.route(f"{EVENT}/retry", methods=["POST"])
@admin_only
@bp.arguments(s.RetrySchema, required=False, as_kwargs=True)
@bp.response(200, s.ActionSchema)
@documents(bp, 400, 401, 403, 404, 409)
def retry(event_id: int, at: str | None = None) -> dict[str, Any]:
    """Queue a failed, expired, invalid or ignored event again (invalid and ignored ones are
    judged again with today's mapping); 409 says why when it cannot be."""
    _event(event_id)
    bridge = current_bridge()
    return _act(event_id, lambda: operations.retry_event(bridge, event_id, at, actor=ACTOR))


@bp.route(f"{EVENT}/cancel", methods=["POST"])
@admin_only
@bp.arguments(s.CancelSchema, as_kwargs=True)
@bp.response(200, s.ActionSchema)
@documents(bp, 400, 401, 403, 404, 409)
def cancel(event_id: int, reason: str) -> dict[str, Any]:
    """Cancel a queued event, with the reason: it is never sent."""
    _event(event_id)
    bridge = current_bridge()
    return _act(event_id, lambda: operations.cancel_event(bridge, event_id, reason, ACTOR))


@bp.route(f"{EVENT}/reveal", methods=["POST"])
@admin_only
@bp.response(200, s.RevealSchema)
@documents(bp, 401, 403, 404)
def reveal(event_id: int) -> dict[str, Any]:
    """The event's phone in full; written to the audit log."""
    _event(event_id)
    return {"id": event_id, "phone": operations.reveal_phone(current_bridge(), event_id, ACTOR)}


@bp.route("/bulk-retry", methods=["POST"])
@admin_only
@bp.arguments(s.BulkRetrySchema, as_kwargs=True)
@bp.response(200, s.BulkResultSchema)
@documents(bp, 400, 401, 403, 409, 422)
def bulk_retry(status: str, confirm: bool, **query: Any) -> dict[str, Any]:
    """Retry every failed, invalid or ignored event the filter selects. Without
    `confirm: true` nothing is done: the answer is how many would be. A confirmed retry of
    more than 5000 events is refused (409): narrow the time range or the source."""
    try:
        operations.check_source(current_bridge(), query.get("source"))
    except operations.UnknownSource as err:
        abort(422, message=str(err), errors={"json": {"source": [str(err)]}})
    where = _filter(status=status, **query)
    assert where is not None  # no phone filter here
    matched = current_bridge().store.count(where)
    if not confirm:
        return {"matched": matched, "confirmed": False}
    try:
        done = operations.bulk_retry(current_bridge(), where, ACTOR)
    except operations.RetryRefused as err:
        abort(409, message=str(err))
    return {"matched": matched, "confirmed": True, **done}


@bp.route("/writebacks/retry", methods=["POST"])
@admin_only
@bp.arguments(s.WritebackRetrySchema, required=False, as_kwargs=True)
@bp.response(200, s.WritebackRetriedSchema)
@documents(bp, 400, 401, 403, 422)
def retry_writebacks(source: str | None = None, ids: list[int] | None = None) -> dict[str, Any]:
    """Queue failed write-backs again (these `ids`, or every one of `source`, or all); the
    events do not change."""
    try:
        queued = operations.retry_writebacks(current_bridge(), ACTOR, source, ids)
    except operations.UnknownSource as err:
        abort(422, message=str(err), errors={"json": {"source": [str(err)]}})
    return {"queued": queued}


@bp.route("/audit", methods=["GET"])
@bp.arguments(s.AuditQuery, location="query", as_kwargs=True, unknown=RAISE)
@bp.response(200, s.AuditLogSchema)
@documents(bp, 401)
def audit(limit: int, event_id: int | None = None) -> dict[str, Any]:
    """What operators did, newest first: who, when, what, on which event."""
    return {"entries": current_bridge().store.audit_log(limit=limit, event_id=event_id)}


def masked(value: Any) -> Any:
    """`value` (an event as sent) with every phone-length digit run masked, in text and in
    numbers alike: the phone is shown in full only by the audited reveal."""
    if isinstance(value, dict):
        return {key: masked(item) for key, item in value.items()}
    if isinstance(value, list):
        return [masked(item) for item in value]
    if isinstance(value, str):
        return mask_phones_in(value)
    if isinstance(value, int) and not isinstance(value, bool):
        shown = mask_phones_in(str(value))
        return value if shown == str(value) else shown
    return value


def _filter(phone: str | None = None, since: Any = None, until: Any = None,
            **query: Any) -> EventFilter | None:
    """The search's filter; None when a phone was asked for that no source could dial."""
    phones: tuple[str, ...] = ()
    if phone is not None:
        phones = operations.phone_candidates(current_bridge(), phone)
        if not phones:
            return None
    return EventFilter(since=since.timestamp() if since else None,
                       until=until.timestamp() if until else None, phones=phones, **query)


def _row(row: dict[str, Any]) -> dict[str, Any]:
    return {**reasoned(row), "phone": mask_phone(row["phone"]) if row["phone"] else None,
            "failed_attempts": row["attempts"]}


def _event(event_id: int) -> dict[str, Any]:
    row = current_bridge().store.get(event_id)
    if row is None:
        abort(404, message=f"no event {event_id}")
    return row


def _act(event_id: int, action: Any) -> dict[str, Any]:
    try:
        message = action()
    except operations.RetryRefused as err:
        abort(409, message=str(err))
    row = current_bridge().store.get(event_id) or {}
    return {"id": event_id, "status": row.get("status", ""), "message": message}
