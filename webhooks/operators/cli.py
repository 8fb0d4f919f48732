"""flask commands: mappings check/try, deliver, events list/show/retry, sandbox."""

from __future__ import annotations

import json
import signal
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from flask import Flask
from flask.cli import AppGroup

from ..bridge import current_bridge
from ..crm.formats import format_of
from ..intake import pipeline as intake
from ..lifecycle import TERMINAL, AttemptOutcome, Status
from ..mapping.source import Source
from ..mapping.writeback import WritebackTemplateError, context, sample_facts
from ..observability.logs import printable as safe  # CRM data for a terminal: escapes shown
from ..recall import mask_phone
from ..settings import SPOOL_ROOT
from ..store import MAX_ID
from ..timing import rules as timerules
from .operations import RetryRefused, purge_events, retry_event, retry_writebacks

mappings = AppGroup("mappings", help="Check and try the mapping files.")
events = AppGroup("events", help="See and re-queue stored events.")
spool = AppGroup("spool", help="Requests kept on disk while the store was down.")


def init_app(app: Flask) -> None:
    app.cli.add_command(mappings)
    app.cli.add_command(events)
    app.cli.add_command(deliver)
    app.cli.add_command(sandbox)
    app.cli.add_command(spool)


@mappings.command("check")
def mappings_check() -> None:
    """Load every mapping (the app does so at start) and list the sources it serves."""
    for name, source in sorted(current_bridge().sources.items()):
        click.echo(f"ok  POST /hooks/{name}  format={source.format} "
                   f"auth={source.verifier.scheme}  {source.description}")
        for entry in source.writebacks:
            state = f"off ({entry.off})" if entry.off else "on"
            click.echo(f"      writeback {entry.name!r} on {', '.join(entry.moments)} -> "
                       f"{entry.host}: {state}")


@mappings.command("try")
@click.argument("source_name")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--show-phone", is_flag=True, help="Print phone numbers in full.")
def mappings_try(source_name: str, file: Path, show_phone: bool) -> None:
    """Map a sample body FILE as SOURCE would, printing each event's verdict: the recall
    fields, or why it is ignored or invalid. Nothing is stored or sent, and the signature is
    not checked."""
    bridge = current_bridge()
    source = bridge.sources.get(source_name)
    if source is None:
        raise click.ClickException(f"unknown source {source_name!r}; known: "
                                   f"{', '.join(sorted(bridge.sources))}")
    result = intake.try_body(bridge, source, file.read_bytes(),
                             format_of(source.format).sample_type)
    if result.problem == intake.Problem.FORMAT:
        raise click.ClickException(f"{file}: {result.detail}")
    if result.problem is not None:
        raise click.ClickException(f"the mapping's `events` path fails on {file.name}: "
                                   f"{safe(result.detail)}")
    if result.handshake is not None:
        click.echo("the CRM's handshake: the hook answers it with "
                   + safe(json.dumps(result.handshake.answer, ensure_ascii=False)))
    elif not result.found:
        click.echo(f"no events: the `events` path found nothing in {file.name}")
    if result.over_limit:
        click.echo(f"note: {result.found} events; the hook refuses more than {result.limit} "
                   f"in one request (413); the first {result.limit} are judged here")
    for tried in result.events:
        _print_tried(tried, show_phone)
        _print_record(source, tried, bridge.settings.clock(), show_phone)
        _print_writebacks(source, tried, bridge.settings.clock().timestamp())


def _print_record(source: Source, tried: intake.Tried, now: datetime, show_phone: bool) -> None:
    """The campaign record the event's lead would be added with (`campaign_record:`)."""
    if source.record is None or tried.recall is None or tried.when is None:
        return
    record = source.record_of(tried.verdict.event.raw, now, tried.recall["customer_id"])
    if not show_phone:
        record = {k: mask_phone(v) if k.startswith("tel") else v for k, v in record.items()}
    when = ("before its first recall" if source.record.add == "always" else
            "when wolkvox says the campaign does not have it")
    click.echo(f"  campaign record (add_record, {when}): "
               + safe(json.dumps(record, ensure_ascii=False)))


def _print_writebacks(source: Source, tried: intake.Tried, now: float) -> None:
    """The requests its write-backs would send, for each moment (credentials masked)."""
    event = tried.verdict.event
    if not source.writebacks or tried.recall is None or tried.when is None:
        return
    recall = dict(event.recall or {})
    zone = source.target.timezone
    scheduled = (timerules.epoch({**recall, "recall_date": tried.when.sent}, zone)
                 if tried.when.sent else None)
    for entry in source.writebacks:
        if entry.off:
            click.echo(f"  writeback {entry.name!r}: off ({entry.off})")
            continue
        for moment in entry.moments:
            facts = sample_facts(moment, recall, scheduled, now)
            try:
                request = entry.request(context(moment, facts, event.raw, source.name, 0, zone,
                                                entry.language)).shown(entry.secret_url)
            except WritebackTemplateError as err:
                click.echo(f"  writeback {entry.name!r} on {moment}: its template fails: "
                           f"{safe(str(err))}")
                continue
            click.echo(f"  writeback {entry.name!r} on {moment}: "
                       + safe(json.dumps(request, ensure_ascii=False)))


def _print_tried(tried: intake.Tried, show_phone: bool) -> None:
    """One event's verdict: its errors per field, why it is not queued, or its recall."""
    head = f"event {tried.index}: {{}}  id={safe(tried.dedup_key)}"
    if tried.errors:
        click.echo(head.format(tried.status.upper()))
        for field, messages in tried.errors.items():
            click.echo(f"  {field}: {safe(' '.join(messages))}")
    elif tried.status != Status.QUEUED:
        click.echo(head.format(tried.status.upper()))
        click.echo(f"  {safe(tried.reason)}")
    elif tried.recall is None or tried.when is None:
        click.echo(head.format("ok") + "; fields come after the CRM lookup (done by the "
                   "worker)")
    else:
        recall = (tried.verdict.event.recall or {}) if show_phone else tried.recall
        click.echo(head.format("ok"))
        for field, value in recall.items():
            click.echo(f"  {field}: {safe(value)}")
        click.echo(f"  {_when_sent(tried.when)}")


@click.command("deliver")
@click.option("--threads", type=click.IntRange(1, 64), default=None,
              help="Delivery threads (WORKER_THREADS).")
@click.option("--metrics-port", type=click.IntRange(1, 65535), default=None,
              help="Serve /metrics on this port (a deliver process on a machine of its own).")
def deliver(threads: int | None, metrics_port: int | None) -> None:
    """Deliver queued events until stopped (SIGTERM or Ctrl-C)."""
    bridge = current_bridge()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    if metrics_port is not None:
        from prometheus_client import start_http_server

        from . import scrape

        start_http_server(metrics_port, registry=scrape.registry_for(bridge))
    bridge.start_delivery(threads)
    bridge.start_spool_replayer()
    tokens = {source.target.key for source in bridge.sources.values()}
    click.echo(f"delivering for {len(tokens)} token(s), "
               f"{threads or bridge.settings.worker_threads} thread(s)"
               + (f", /metrics on port {metrics_port}" if metrics_port else "")
               + "; Ctrl-C stops")
    stop.wait()
    bridge.stop_background()


EVENT_ID = click.IntRange(1, MAX_ID)


@events.command("list")
@click.option("--status", type=click.Choice([s.value for s in Status]), default=None)
@click.option("--source", default=None)
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@click.option("--result", default=None, metavar="RESULT",
              help="wolkvox's word for the call (ANSWER, BUSY, NO-ANSWER...), awaiting, "
                   "missing (no result reported), replaced, or none")
def events_list(status: str | None, source: str | None, limit: int,
                result: str | None) -> None:
    """The newest events, one line each (the call's result beside the status)."""
    rows = current_bridge().store.list_events(status, source, limit, result)
    for row in rows:
        click.echo(f"{row['id']:>7}  {_time(row['updated_at'])}  {row['status']:<10} "
                   f"{safe(_result_of(row)):<14} "
                   f"{safe(row['source']):<18} {safe(row['customer_id'] or '-'):<14} "
                   f"{safe(row['reason'])[:160]}")
    if not rows:
        click.echo("no events")


@events.command("show")
@click.argument("event_id", type=EVENT_ID)
def events_show(event_id: int) -> None:
    """One event: its recall fields, its attempts and wolkvox's answers (phones masked)."""
    store = current_bridge().store
    row = store.get(event_id)
    if row is None:
        raise click.ClickException(f"no event {event_id}")
    for key in ("id", "source", "dedup_key", "status", "reason", "attempts"):
        click.echo(f"{key}: {safe(str(row[key]))}")
    for key in ("created_at", "updated_at", "next_attempt_at"):
        click.echo(f"{key}: {_time(row[key])}")
    recall = dict(row["recall"] or {})
    if recall:
        recall["recall_telephone"] = mask_phone(recall.get("recall_telephone"))
        click.echo("recall: " + safe(json.dumps(recall, ensure_ascii=False)))
    if row["result_state"]:
        click.echo(f"call result: {_result_of(row)}")
    if row["called_at"] is not None:
        zone = current_bridge().settings.wolkvox_timezone
        click.echo(f"called at: {timerules.local(row['called_at'], zone)} {zone}"
                   + (f" (on {mask_phone(row['called_phone'])}, not the recall's phone)"
                      if row["called_phone"] else ""))
    for attempt in store.attempts_of(event_id):
        said = (attempt["reason"] if attempt["outcome"] in RESULT_OUTCOMES
                else attempt["wolkvox_msg"] or attempt["reason"])  # phones masked
        click.echo(f"  {_time(attempt['at'])}  {attempt['outcome']:<9} "
                   f"http={attempt['http_status'] or '-'} code={attempt['wolkvox_code'] or '-'} "
                   f"{attempt['latency_ms'] or 0:.0f} ms  {safe(said)}")
    for writeback in store.writebacks_of(event_id):
        said = writeback["reason"] + (f" ({writeback['answer']})" if writeback["answer"]
                                      and writeback["status"] == "done" else "")
        click.echo(f"writeback {writeback['id']} {safe(writeback['name'])!r} on "
                   f"{writeback['moment']}: {writeback['status']}  "
                   f"attempts={writeback['attempts']} http={writeback['http_status'] or '-'} "
                   f"{_time(writeback['updated_at'])}  {safe(said)}")


@events.command("retry")
@click.argument("event_id", type=EVENT_ID)
@click.option("--at", "at", default=None, metavar="TIME",
              help="Call back at TIME (ISO 8601, or YYYYmmddHHMMSS in the operation's zone); "
                   "default: the earliest time the rules allow.")
def events_retry(event_id: int, at: str | None) -> None:
    """Re-queue a failed, expired, invalid or ignored event. An invalid or ignored one is
    judged again with today's mapping; one whose callback time has passed is rescheduled."""
    bridge = current_bridge()
    try:
        message = retry_event(bridge, event_id, at)
    except RetryRefused as err:
        raise click.ClickException(str(err)) from None
    click.echo(message)


@events.command("retry-writebacks")
@click.argument("ids", nargs=-1, type=EVENT_ID)
@click.option("--source", default=None, help="Only this source's write-backs.")
def events_retry_writebacks(ids: tuple[int, ...], source: str | None) -> None:
    """Queue failed write-backs again: these write-back IDS (`events show` lists them), or
    every failed one (of --source). The events themselves do not change."""
    try:
        chosen = retry_writebacks(current_bridge(), "cli", source, list(ids) if ids else None)
    except RetryRefused as err:
        raise click.ClickException(str(err)) from None
    click.echo(f"{len(chosen)} failed write-back(s) queued again"
               + (f": {', '.join(map(str, chosen[:20]))}" if chosen else ""))


@events.command("purge")
@click.option("--days", type=click.IntRange(min=1, max=36_500), required=True,
              help="Delete finished events last changed more than this many days ago.")
@click.option("--status", "statuses", multiple=True,
              type=click.Choice(sorted(s.value for s in TERMINAL)),
              help="Only these statuses (repeat); default: every finished status.")
def events_purge(days: int, statuses: tuple[str, ...]) -> None:
    """Retention: delete finished events (and their attempts) older than --days. Queued
    and sending events are never deleted."""
    removed = purge_events(current_bridge(), days, list(statuses) or [s.value for s in TERMINAL])
    click.echo(f"deleted {removed} event(s) finished more than {days} day(s) ago")


@spool.command("adopt")
@click.argument("files", nargs=-1, type=click.Path(exists=True, dir_okay=False,
                                                    path_type=Path))
def spool_adopt(files: tuple[Path, ...]) -> None:
    """Make spooled FILES this store's, to be replayed into it: without FILES, those written
    before spooled requests named their store (a version before 0007). Only for files known
    to be this store's: another store's callbacks replayed here are lost to it."""
    from ..store.spool import BadRecord

    bridge = current_bridge()
    # unset SPOOL_DIR: earlier versions wrote to SPOOL_ROOT itself
    chosen = list(files) or bridge.spool.unnamed(
        *(() if bridge.settings.spool_dir else (SPOOL_ROOT,)))
    try:
        adopted = bridge.spool.adopt(chosen)
    except (BadRecord, OSError) as err:
        raise click.ClickException(f"{err}; the files before it were adopted") from None
    replayed = bridge.spool.replay(bridge.store)
    click.echo(f"adopted {len(adopted)} spooled request(s) for store {bridge.spool.store}, "
               f"replayed {replayed} (the rest is replayed by the web process once the store "
               "answers)")


@click.command("sandbox")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8765, show_default=True)
@click.option("--token", "tokens", multiple=True,
              help="A valid token (repeat); default: WOLKVOX_TOKEN.")
@click.option("--latency", type=float, default=0.0, help="Seconds per call.")
@click.option("--daily-limit", type=int, default=0, help="Calls per token; 0: none.")
@click.option("--autodial", default="", metavar="RESULT",
              help="play the dialer: every recall is called at its date with this result "
                   "(ANSWER, BUSY, NO-ANSWER...), shown in the campaign_3 report")
@click.option("--refuse-unknown", is_flag=True,
              help="refuse a recall for a customer the campaign does not have (add it first "
                   "with add_record)")
def sandbox(host: str, port: int, tokens: tuple[str, ...], latency: float,
            daily_limit: int, autodial: str, refuse_unknown: bool) -> None:
    """Serve a wolkvox look-alike on loopback (see webhooks/sandbox.py)."""
    from ..sandbox import create_sandbox, serve

    valid = list(tokens) or [current_bridge().settings.wolkvox_token]
    app = create_sandbox(valid, latency, daily_limit)
    app.extensions["sandbox"].autodial = autodial.upper() or None
    app.extensions["sandbox"].refuse_unknown = refuse_unknown
    app.extensions["sandbox"].timezone = current_bridge().settings.wolkvox_timezone
    server = serve(app, host, port)
    click.echo(f"wolkvox sandbox on http://{host}:{server.server_port} "
               f"({len(valid)} token(s), latency {latency:g} s)")
    server.serve_forever()


RESULT_OUTCOMES = (AttemptOutcome.CALLED, AttemptOutcome.NO_RESULT)
RESULT_STATES = {"awaiting": "awaiting result", "missing": "no result reported",
                 "replaced": "a newer recall awaits instead"}


def _result_of(row: dict[str, Any]) -> str:
    """The call's result as `events` prints it: wolkvox's word, or where it stands."""
    if row.get("call_result"):
        return str(row["call_result"])
    return RESULT_STATES.get(row.get("result_state") or "", "-")


def _when_sent(when: intake.When) -> str:
    """The date asked and the date that would be sent now, with the rule that moved it."""
    caps = intake.CAPS_NOTE if when.caps else ""
    if when.sent is None:
        return f"sent: never, {when.note}"
    return (f"sent: {when.sent}, as asked{caps}" if when.sent == when.asked
            else f"sent: {when.sent}, moved from {when.asked}: {when.why}{caps}")


def _time(epoch: float | None) -> str:
    if not epoch:
        return "-"
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%SZ")

