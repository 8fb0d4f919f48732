"""The sources page (each mapping: its URLs, format, auth scheme, token fingerprint, time zone,
calling hours and today's counts) and each source's playground (playground.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import abort, render_template, request
from flask_babel import gettext as _

from ...bridge import current_bridge
from ...intake import pipeline as intake
from ...intake.receiver import hook_base
from ...mapping.source import Source
from ...store import EventFilter
from ..overview import NO_EVENTS, Counts
from ..overview import today as today_counts
from . import playground
from .events import event_id_of
from .web import bp

RECENT = 20  # stored events offered to the playground


@dataclass(frozen=True)
class SourceView:
    name: str
    description: str
    url: str
    capture_url: str
    format: str
    scheme: str
    token: str  # fingerprint
    timezone: str
    hours: str  # calling hours described, or ""
    caps: Any  # timerules.Caps, or None
    problem: str  # a setup problem seen on real requests (a wrong PUBLIC_URL), or ""
    today: Counts
    writebacks: tuple[Any, ...] = ()  # mapping.writeback.Writeback: name, moments, host, off


def describe(name: str, source: Source, today: Counts = NO_EVENTS) -> SourceView:
    base = hook_base(current_bridge().settings)
    return SourceView(
        name, source.description, f"{base}/hooks/{name}",
        f"{base}/hooks/{name}/test", source.format, source.verifier.scheme,
        source.target.key, source.target.timezone,
        source.hours.describe() if source.hours else "", source.caps,
        current_bridge().diagnostics.get(name, ""), today, source.writebacks)


@bp.get("/sources")
def sources() -> Any:
    b = current_bridge()
    today = today_counts(b)  # the overview's figures, counted the same way
    return render_template("console/sources.html", sources=[
        describe(name, source, today.get(name, NO_EVENTS))
        for name, source in sorted(b.sources.items())])


@bp.route("/sources/<name>/try", methods=["GET", "POST"])
def try_source(name: str) -> Any:
    """Paste a body (POST), or pick a stored event (?event=ID), and see the verdict. Viewers
    may use it too: nothing is stored or sent."""
    b = current_bridge()
    source = b.sources.get(name)
    if source is None:
        abort(404)
    body, chosen, result, picked, problem = "", playground.FORM_TYPES[0], None, None, ""
    sample = playground.sample(b, name)
    if request.method == "POST":
        body = request.form.get("body", "")
        chosen = request.form.get("content_type", chosen)
        if body.strip():
            raw = body.encode("utf-8")
            result = intake.try_body(b, source, raw,
                                     playground.content_type(source, chosen, raw))
        else:
            problem = _("Paste a body to try.")
    elif request.args.get("event"):
        text = request.args["event"].strip().lstrip("#")
        wanted = event_id_of(text)
        picked = b.store.get(wanted) if wanted is not None else None
        if picked is None:
            problem = _("There is no event %(id)s.", id=text[:20])
        else:
            result = intake.try_event(b, source, picked["raw"])
    elif request.args.get("sample"):
        body = sample
    return render_template(
        "console/playground.html", source=describe(name, source), body=body,
        chosen=chosen, form_types=playground.FORM_TYPES, result=result, picked=picked,
        problem=problem, has_sample=bool(sample),
        recent=b.store.search(EventFilter(source=name), limit=RECENT),
        pretty_date=playground.pretty_date)
