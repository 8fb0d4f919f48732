"""The events pages: the filtered list (keyset paging), one event with its timeline and audit
entries, the actions on it (retry, cancel, reveal the phone: through operations.py, which
writes the audit log), and the audit log itself."""

from __future__ import annotations

import json
from typing import Any

from flask import abort, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _

from ...bridge import current_bridge
from ...lifecycle import CANCELLABLE, RETRYABLE_BY_OPERATOR, TERMINAL, Status
from ...recall import mask_phone, mask_phones_in
from ...store import MAX_ID
from ..operations import (
    RetryRefused,
    cancel_event,
    retry_event,
    retry_writebacks,
    reveal_phone,
)
from . import filters
from .web import acting, bp

PAGE = 50  # events per page
AUDIT_PAGE = 200  # audit entries shown
EVENT = f"/events/<int(min=1, max={MAX_ID}):event_id>"  # out of range: 404, as unknown


@bp.get("/events")
def events() -> Any:
    """Newest first, 50 a page; "older" continues below the last id shown (?before=)."""
    store = current_bridge().store
    form = filters.read(current_bridge(), request.args)
    before = event_id_of(request.args.get("before"))
    rows = [] if form.matches_nothing else store.search(form.where, before=before,
                                                        limit=PAGE + 1)
    older = rows[PAGE - 1]["id"] if len(rows) > PAGE else None
    return render_template("console/events.html", form=form, rows=rows[:PAGE], older=older,
                           before=before, statuses=list(Status),
                           sources=sorted(current_bridge().sources))


@bp.get(EVENT)
def event(event_id: int) -> Any:
    return _event_page(event_id)


def _event_page(event_id: int, revealed: str | None = None) -> Any:
    store = current_bridge().store
    row = store.get(event_id)
    if row is None:
        abort(404)
    recall = dict(row["recall"] or {})
    if "recall_telephone" in recall:
        recall["recall_telephone"] = mask_phone(recall["recall_telephone"])
    return render_template(
        "console/event.html", row=row, recall=recall, revealed=revealed,
        raw=raw_text(row["raw"]),
        attempts=store.attempts_of(event_id),
        writebacks=store.writebacks_of(event_id),
        audit=store.audit_log(limit=AUDIT_PAGE, event_id=event_id),
        phone=row.get("phone") or (row["recall"] or {}).get("recall_telephone"),
        has_source=row["source"] in current_bridge().sources,
        pending=row["status"] not in TERMINAL,  # it has a next attempt to show
        can_retry=row["status"] in RETRYABLE_BY_OPERATOR,
        can_cancel=row["status"] in CANCELLABLE)


@bp.post(f"{EVENT}/retry")
@acting
def retry(event_id: int) -> Any:
    """Queue a failed, expired, invalid or ignored event again, at the time asked (optional)."""
    at = request.form.get("at", "").strip() or None
    try:
        retry_event(current_bridge(), event_id, at=at, actor=g.role)
        flash(_("Event %(id)s is queued again.", id=event_id), "ok")
    except RetryRefused as err:
        flash(_("Not retried: %(why)s", why=str(err)), "error")
    return redirect(url_for("console.event", event_id=event_id), 303)


@bp.post(f"{EVENT}/writebacks/retry")
@acting
def retry_writebacks_of(event_id: int) -> Any:
    """Queue this event's failed write-backs again; the event does not change."""
    failed = [w["id"] for w in current_bridge().store.writebacks_of(event_id)
              if w["status"] == "failed"]
    queued = retry_writebacks(current_bridge(), g.role, ids=failed) if failed else []
    flash(_("%(num)s write-back(s) queued again.", num=len(queued)), "ok")
    return redirect(url_for("console.event", event_id=event_id), 303)


@bp.post(f"{EVENT}/cancel")
@acting
def cancel(event_id: int) -> Any:
    """Cancel a queued event with the operator's reason: it is never sent."""
    try:
        cancel_event(current_bridge(), event_id, request.form.get("why", ""), actor=g.role)
        flash(_("Event %(id)s is cancelled: it will not be sent.", id=event_id), "ok")
    except RetryRefused as err:
        flash(_("Not cancelled: %(why)s", why=str(err)), "error")
    return redirect(url_for("console.event", event_id=event_id), 303)


@bp.post(f"{EVENT}/reveal")
@acting
def reveal(event_id: int) -> Any:
    """The phone in full, on this answer only (never in a cookie or a URL); audited."""
    if current_bridge().store.get(event_id) is None:
        abort(404)
    revealed = reveal_phone(current_bridge(), event_id, actor=g.role)
    return _event_page(event_id, revealed=revealed or "")


@bp.get("/audit")
def audit() -> Any:
    return render_template("console/audit.html",
                           entries=current_bridge().store.audit_log(limit=AUDIT_PAGE))


def raw_text(raw: object) -> str:
    """An event's body for the page: indented JSON, every phone-length digit run masked (the
    phone is shown in full only through the audited reveal)."""
    return mask_phones_in(json.dumps(raw, indent=2, ensure_ascii=False, default=str))


def event_id_of(text: str | None) -> int | None:
    """A typed event id (?before=, ?event=), or None when it is not one."""
    if text and text.isascii() and text.isdigit() and 0 < int(text) <= MAX_ID:
        return int(text)
    return None
