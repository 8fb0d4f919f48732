"""POST /hooks/<source>: take the request (pipeline.py), store what it judged, then answer in
the CRM's own convention (its format's: crm/formats.py).

The answer is sent only after the store has committed: a CRM stops retrying only once
nothing can be lost. A refusal, wherever it arises, is answered in one place (`_receive`).
"""

from __future__ import annotations

import logging
import secrets
import time
from collections import Counter
from collections.abc import Mapping
from typing import Any, cast
from urllib.parse import urlsplit

from flask import Blueprint, Response, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge

from ..bridge import Bridge, current_bridge
from ..crm import formats
from ..crm.signatures import SignedRequest, matching_variant
from ..lifecycle import TERMINAL, Received, Status
from ..mapping.source import Source
from ..observability import metrics
from ..settings import Settings
from ..store import NewEvent, Outcome, StoreRefused, StoreUnavailable
from ..store.spool import SpoolFull
from .pipeline import Handshake, Problem, Refused, Request, as_test, take

log = logging.getLogger(__name__)
bp = Blueprint("receiver", __name__)
RETRY_AFTER = "30"  # seconds a CRM should wait when the store is down
WAIT_POLL = 0.05  # seconds between looks at an event's status during ?wait=
EXPLAINED = frozenset({Received.INVALID, Received.IGNORED, Received.TEST})  # with a reason


@bp.post("/hooks/<name>")
def receive(name: str) -> Response:
    return _receive(name, test=False)


@bp.post("/hooks/<name>/test")
def capture(name: str) -> Response:
    """The same checks as the real URL (authenticity, format, mapping), but each event is
    stored as `test`: shown in the console's capture page, never sent, removed by retention."""
    return _receive(name, test=True)


def _receive(name: str, test: bool) -> Response:
    bridge = current_bridge()
    source = bridge.sources.get(name)
    if source is None:
        return _json({"error": f"unknown source '{name}'",
                      "fix": f"add mappings/{name}.yaml, or check the URL"}, 404)
    wire = formats.format_of(source.format)
    try:
        return _send(_handle(bridge, source, wire, test))
    except Refused as refused:
        if refused.logged:
            log.log(refused.level, "hook %s: %s", name, refused.logged)
        if refused.auth is not None:
            _explain_refused_proof(bridge, source, refused)
        return _send(wire.refusal(refused.status, refused.message))


def _handle(bridge: Bridge, source: Source, wire: formats.Format,
            test: bool) -> formats.Reply:
    """The request taken, stored (or spooled) and answered; Refused when it is refused."""
    now = bridge.settings.clock()
    taken = take(source, _request(bridge.settings, source, now.timestamp()), now=now,
                 limit=bridge.settings.max_events_per_request)
    if isinstance(taken, Handshake):  # the CRM proving the endpoint (monday.com's challenge)
        log.info("hook %s: handshake answered", source.name)
        return wire.handshake(taken.answer)
    new = taken.events
    if test:
        capture = secrets.token_hex(6)
        new = [as_test(event, capture) for event in new]
    try:
        outcomes = _store(bridge, new, now.timestamp())
    except StoreUnavailable as err:
        return _spool(bridge, source, wire, new, now.timestamp(), err)
    results = [_describe(index, *pair) for index, pair in enumerate(zip(new, outcomes,
                                                                         strict=True))]
    counts = Counter(r["result"] for r in results)
    for result, count in counts.items():
        metrics.webhook_received(source.name, result, count)
    # the access log has every request: a line of our own only for what is not plain
    (log.debug if set(counts) <= {Received.ACCEPTED} else log.info)(
        "hook %s: %s", source.name, {str(k): n for k, n in counts.items()} or "no events",
        extra={"source": source.name, "outcome": ",".join(sorted(counts)) or "none"})
    answer: dict[str, Any] = {"source": source.name, "received": len(results),
                              "counts": counts, "events": results}
    if test:
        answer["test"] = True
    elif wire.answers_events:
        waited = _wait_for_delivery(bridge, results, source.answer_wait)
        if waited:
            return wire.accepted({**answer, "events": waited}, 200)
    return wire.accepted(answer, source.answer_status)  # `answer.status`: 202 unless set


def _request(settings: Settings, source: Source, now: float) -> Request:
    """This HTTP request for the pipeline; Refused (413) past MAX_BODY_BYTES."""
    limit = settings.max_body_bytes
    try:
        body = request.get_data(cache=True)
    except RequestEntityTooLarge:
        body = None
    if body is None or len(body) > limit:
        raise Refused(413, f"body larger than {limit} bytes", Problem.TOO_LARGE)
    url = public_url(settings) if source.verifier.url_bound else request.path
    # werkzeug's Headers is read as a mapping whose keys are case-insensitive
    headers = cast(Mapping[str, str], request.headers)
    signed = SignedRequest(method=request.method, url=url, headers=headers,
                           query=request.args, body=body, now=now,
                           remote_addr=request.remote_addr or "")
    return Request(body, request.content_type, headers, signed)


def _store(bridge: Bridge, new: list[NewEvent], received_at: float) -> list[Outcome]:
    """What storing `new` did, through the store's breaker. StoreUnavailable when it cannot
    be written (the caller spools); Refused when the store refuses the values themselves."""
    breaker = bridge.breaker
    if not breaker.try_store():
        raise StoreUnavailable(f"it failed in the last {breaker.pause:g} s")
    try:
        outcomes = bridge.store.add_events(new, received_at)
    except StoreRefused as err:  # the values themselves: retrying the same body cannot help
        breaker.stored()
        message = f"the store refused this body's values: {err}"
        raise Refused(400, message, Problem.STORE, logged=message, level=logging.ERROR) from None
    except StoreUnavailable:
        breaker.failed()
        raise
    except BaseException:
        breaker.release()  # not the store's answer: another request probes
        raise
    breaker.stored()
    if bridge.worker is not None and any(o.result == Received.ACCEPTED for o in outcomes):
        bridge.worker.wake()
    return outcomes


@bp.after_request
def _count_refused(response: Response) -> Response:
    """Every error answer to a known source's hook is counted on /metrics, whichever check
    gave it (an unknown source is not: its name is whatever the caller typed)."""
    name = (request.view_args or {}).get("name")
    if response.status_code >= 400 and name in current_bridge().sources:
        metrics.webhook_refused(name, response.status_code)
    return response


def _spool(bridge: Bridge, source: Source, wire: formats.Format, new: list[NewEvent],
           received_at: float, err: StoreUnavailable) -> formats.Reply:
    """The store cannot be written: keep the request on local disk and acknowledge it (a CRM
    that never retries loses nothing); only a spool that cannot be written is unavailable."""
    try:
        bridge.spool.append(source.name, new, received_at)
    except SpoolFull as full:
        log.error("hook %s: store unavailable (%s) and %s", source.name, err, full)
        return wire.unavailable(RETRY_AFTER)
    bridge.start_spool_replayer()
    metrics.webhook_received(source.name, Received.SPOOLED, len(new))
    log.warning("hook %s: store unavailable (%s): %d event(s) spooled to local disk",
                source.name, err, len(new))
    results = [{"index": index, "result": Received.SPOOLED, "status": event.status.value}
               for index, event in enumerate(new)]
    return wire.accepted({"source": source.name, "received": len(new), "spooled": True,
                          "note": "the store is unavailable: the request is kept on the "
                                  "bridge's disk and stored once the store answers again",
                          "counts": Counter(r["result"] for r in results), "events": results},
                         source.answer_status)


def _explain_refused_proof(bridge: Bridge, source: Source, refused: Refused) -> None:
    """A refused proof that is the setup's fault (every such request fails): tell the admin
    once, with the fix."""
    if refused.signed is not None:
        _explain_url_mismatch(bridge, source, refused.signed)
    if refused.auth is not None and refused.auth.setup:
        _diagnose(bridge, source.name, refused.auth.setup)


def _explain_url_mismatch(bridge: Bridge, source: Source, signed: SignedRequest) -> None:
    """A URL-bound signature that fails only because the bridge sees another URL than the one
    the CRM signed (PUBLIC_URL or the proxy settings): say so once, with the fix."""
    signed_url = matching_variant(source.verifier, signed)
    if signed_url is None:
        return
    seen, wanted = urlsplit(signed.url), urlsplit(signed_url)
    base = f"{wanted.scheme}://{wanted.netloc}"
    fix = (f"set PUBLIC_URL={base}" if bridge.settings.public_url
           else f"set PUBLIC_URL={base}, or TRUST_FORWARDED=true behind one proxy that sends "
                "X-Forwarded-Proto and X-Forwarded-Host")
    message = (f"signatures fail because the CRM signed {base} but the bridge sees "
               f"{seen.scheme}://{seen.netloc}: {fix}")
    _diagnose(bridge, source.name, message)


def _diagnose(bridge: Bridge, name: str, message: str) -> None:
    """A setup problem of source `name`, for /readyz and the console: logged once per change."""
    if bridge.diagnostics.get(name) != message:
        bridge.diagnostics[name] = message
        log.error("hook %s: %s", name, message)


def _describe(index: int, event: NewEvent, outcome: Outcome) -> dict[str, Any]:
    item: dict[str, Any] = {"index": index, "result": outcome.result, "id": outcome.id,
                            "status": outcome.status}
    if outcome.result in EXPLAINED:
        item["reason"] = event.reason
    if outcome.superseded:
        item["superseded"] = list(outcome.superseded)
    return item


def _wait_for_delivery(bridge: Bridge, results: list[dict[str, Any]],
                       answer_wait: float = 0.0) -> list[dict[str, Any]] | None:
    """With ?wait=N, or a mapping that answers after delivery: poll until every accepted
    event is settled; the events with wolkvox's answers if all were delivered in time, else
    None (the caller answers 202)."""
    try:
        asked = float(request.args.get("wait", 0))
    except ValueError:
        asked = 0.0
    wait = min(max(asked, answer_wait), bridge.settings.max_wait)
    if wait != wait:  # NaN
        return None
    ids = [r["id"] for r in results if r["result"] == Received.ACCEPTED]
    if wait <= 0 or not ids:
        return None
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        statuses = bridge.store.statuses(ids)
        if all(status in TERMINAL for status, _ in statuses.values()):
            break
        time.sleep(WAIT_POLL)
    else:
        return None
    if any(status != Status.DELIVERED for status, _ in statuses.values()):
        return None
    out = []
    for item in results:
        if item["id"] in statuses:
            answer = bridge.store.last_answer(item["id"]) or {}
            item = {**item, "status": Status.DELIVERED.value, "wolkvox": answer.get("wolkvox_msg")}
        out.append(item)
    return out


def public_url(settings: Settings) -> str:
    """The URL the CRM called, as it signed it: PUBLIC_URL + the raw path and query, or the
    request's own URL (made right behind a proxy by TRUST_FORWARDED)."""
    raw = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI")
    if not raw:
        query = request.query_string.decode("latin-1")
        raw = request.path + (f"?{query}" if query else "")
    return hook_base(settings) + raw


def hook_base(settings: Settings) -> str:
    """Where CRMs reach the bridge: PUBLIC_URL, else this request's own scheme and host."""
    return (settings.public_url or request.host_url).rstrip("/")


def _send(answer: formats.Reply) -> Response:
    """A format's answer as the HTTP response: its data as JSON, or its body as is."""
    if answer.data is not None:
        response = _json(answer.data, answer.status)
    else:
        response = Response(answer.body, status=answer.status, content_type=answer.content_type)
    response.headers.update(answer.headers)
    return response


def _json(data: Mapping[str, Any], status: int) -> Response:
    response = jsonify(data)
    response.status_code = status
    return response
