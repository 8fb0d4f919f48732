"""Bulk retry: every failed, invalid or ignored event of a source in a time range, after a
preview of how many (GET, nothing changes) and a confirmation (POST, operations.bulk_retry)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import ngettext

from ...bridge import current_bridge
from ..operations import (
    BULK_LIMIT,
    BULK_STATUSES,
    RetryRefused,
    bulk_retry,
    retry_writebacks,
)
from . import filters
from .web import acting, bp

FIELDS = ("status", "source", "since", "until")


def _form(args: Mapping[str, Any]) -> filters.Form:
    form = filters.read(current_bridge(), {name: args.get(name, "") for name in FIELDS},
                        BULK_STATUSES)
    if not form.values["status"]:
        form.errors["status"] = _("Choose failed, invalid or ignored.")
    return form


@bp.get("/bulk")
def bulk() -> Any:
    form = _form(request.args)
    asked = "preview" in request.args
    count = None
    if asked and not form.errors:
        count = current_bridge().store.count(form.where, cap=BULK_LIMIT)
    return render_template("console/bulk.html", form=form, asked=asked, count=count,
                           limit=BULK_LIMIT, statuses=BULK_STATUSES,
                           sources=sorted(current_bridge().sources), **_writebacks())


def _writebacks() -> dict[str, Any]:
    """How many write-backs failed, and of which sources."""
    counts = current_bridge().store.writeback_counts()
    failed = {source: n for (source, status), n in counts.items() if status == "failed"}
    return {"failed_writebacks": sum(failed.values()), "writeback_sources": sorted(failed)}


@bp.post("/bulk/writebacks")
@acting
def bulk_writebacks() -> Any:
    """Queue every failed write-back (of a source) again."""
    source = request.form.get("source") or None
    try:
        queued = retry_writebacks(current_bridge(), g.role, source)
    except RetryRefused as err:
        flash(_("Nothing was retried: %(why)s", why=str(err)), "error")
    else:
        flash(_("%(num)s write-back(s) queued again.", num=len(queued)), "ok")
    return redirect(url_for("console.bulk"), 303)


@bp.post("/bulk")
@acting
def bulk_confirm() -> Any:
    form = _form(request.form)
    if form.errors:
        return render_template("console/bulk.html", form=form, asked=True, count=None,
                               limit=BULK_LIMIT, statuses=BULK_STATUSES,
                               sources=sorted(current_bridge().sources), **_writebacks()), 400
    try:
        done = bulk_retry(current_bridge(), form.where, actor=g.role)
    except RetryRefused as err:
        flash(_("Nothing was retried: %(why)s", why=str(err)), "error")
    else:
        flash(ngettext("%(num)d event queued again", "%(num)d events queued again",
                       done["queued"]) + "; " +
              ngettext("%(num)d refused", "%(num)d refused", done["refused"]) + ".", "ok")
        for reason in done["reasons"]:
            flash(_("Refused: %(why)s", why=reason), "error")
    return redirect(url_for("console.bulk", **form.query()), 303)
