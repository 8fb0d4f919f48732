"""The capture page: the newest test events (POST /hooks/<source>/test) as they arrive, so a
CRM admin who presses "send test" sees at once what the bridge made of it. Without JavaScript
the page refreshes itself; with it, static/capture.js asks capture.json for what is new."""

from __future__ import annotations

from typing import Any

from flask import jsonify, render_template, request

from ... import reasons
from ...bridge import current_bridge
from ...intake.pipeline import captured_verdict
from ...lifecycle import Status
from ...recall import mask_phone
from . import i18n
from .events import event_id_of, raw_text
from .web import bp, local_time, now

LATEST = 20  # test events shown
REFRESH = 5  # seconds between refreshes without JavaScript
POLL = 2  # seconds between polls with JavaScript


def _source() -> str | None:
    name = request.args.get("source", "")
    return name if name in current_bridge().sources else None


def items(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows as the page shows them: the verdict the event would have had, its recall (phone
    masked), its raw body."""
    shown = []
    for row in rows:
        reason = row["reason"] or ""
        captured = captured_verdict(reason)  # written by the capture URL's intake
        recall = dict(row.get("recall") or {})
        if "recall_telephone" in recall:
            recall["recall_telephone"] = mask_phone(recall["recall_telephone"])
        detail = captured[1] if captured else reason
        if captured and detail and row.get("reason_code") == reasons.TEST_WOULD_BE_BECAUSE.code:
            because = (reasons.params_from(row.get("reason_params")) or {}).get("reason", detail)
            detail = reasons.shown(because, i18n.current())  # the verdict's reason, translated
        shown.append({**row, "verdict": captured[0].value if captured else "",
                      "detail": detail,
                      "recall": recall,
                      "raw_text": raw_text(row.get("raw"))})
    return shown


@bp.get("/capture")
def capture() -> Any:
    source = _source()
    rows = items(current_bridge().store.latest(Status.TEST, source, limit=LATEST))
    # a setup problem seen on real or test requests (a refused signature): the fix, here too
    problems = sorted((name, message) for name, message in current_bridge().diagnostics.items()
                      if source is None or name == source)
    return render_template("console/capture.html", rows=rows, source=source,
                           problems=problems,
                           sources=sorted(current_bridge().sources), refresh=REFRESH, poll=POLL,
                           last=max((r["id"] for r in rows), default=0),
                           checked=local_time(now(), seconds=True))


@bp.get("/capture.json")
def capture_json() -> Any:
    """Test events newer than ?after=ID (of ?source=), each as the page's HTML for it."""
    rows = items(current_bridge().store.latest(Status.TEST, _source(),
                                       after=event_id_of(request.args.get("after")) or 0,
                                       limit=LATEST))
    return jsonify({"events": [{"id": row["id"], "html": render_template(
                        "console/_capture_item.html", row=row)} for row in rows],
                    "checked": local_time(now(), seconds=True)})
