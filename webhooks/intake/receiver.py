"""POST /hooks/<source>: prove, parse, map, store, then answer in the CRM's own convention.

The answer is sent only after the store has committed: a CRM stops retrying only once
nothing can be lost. Salesforce gets SOAP (Ack or Fault); everyone else JSON.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections import Counter
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Response, jsonify, request
from jmespath.exceptions import JMESPathError
from werkzeug.exceptions import RequestEntityTooLarge

from .. import reasons
from ..bridge import current_bridge
from ..crm import formats
from ..crm.signatures import AuthFailed, SignedRequest, matching_variant
from ..lifecycle import TERMINAL, Status
from ..mapping.source import fit_key
from ..observability import metrics
from ..store import NewEvent, StoreRefused, StoreUnavailable
from ..store.spool import SpoolFull
from . import judge as intake

log = logging.getLogger(__name__)
bp = Blueprint("receiver", __name__)
RETRY_AFTER = "30"  # seconds a CRM should wait when the store is down
WAIT_POLL = 0.05  # seconds between looks at an event's status during ?wait=


@bp.post("/hooks/<name>")
def receive(name: str) -> Response | tuple[Response, int]:
    return _receive(name, test=False)


@bp.post("/hooks/<name>/test")
def capture(name: str) -> Response | tuple[Response, int]:
    """The same checks as the real URL (authenticity, format, mapping), but each event is
    stored as `test`: shown in the console's capture page, never sent, removed by retention."""
    return _receive(name, test=True)


def _receive(name: str, test: bool) -> Response | tuple[Response, int]:
    bridge = current_bridge()
    source = bridge.sources.get(name)
    if source is None:
        return _json({"error": f"unknown source '{name}'",
                      "fix": f"add mappings/{name}.yaml, or check the URL"}, 404)
    soap = source.format == "salesforce"
    limit = bridge.settings.max_body_bytes
    try:
        body = request.get_data(cache=True)
    except RequestEntityTooLarge:
        body = None
    if body is None or len(body) > limit:
        return _refuse(soap, 413, f"body larger than {limit} bytes")
    now = bridge.settings.clock()
    url = public_url(bridge.settings) if source.verifier.url_bound else request.path
    signed = SignedRequest(method=request.method, url=url,
                           headers=request.headers, query=request.args, body=body,
                           now=now.timestamp(), remote_addr=request.remote_addr or "")
    try:
        proof = source.verifier.verify(signed)
        payload = source.parse(body, request.content_type)
        source.verifier.verify_payload(payload)
    except AuthFailed as err:
        log.warning("hook %s: refused: %s", name, err)
        _explain_url_mismatch(bridge, source, signed)
        if err.setup:  # every such request fails: tell the admin once, with the fix
            _diagnose(bridge, source.name, err.setup)
        return _refuse(soap, 401, f"not authenticated: {err}")
    except formats.FormatError as err:
        log.warning("hook %s: unreadable body: %s", name, err)
        return _refuse(soap, 400, f"unreadable {source.format} body: {err}")

    source.strip_secret(payload)  # a secret is not an event's data
    handshake = source.handshake_answer(payload)
    if handshake is not None:  # the CRM proving the endpoint (monday.com's challenge)
        log.info("hook %s: handshake answered", name)
        return _json(handshake if isinstance(handshake, dict) else {"answer": handshake}, 200)
    try:
        events = source.with_headers(
            intake.split(source, payload, bridge.settings.max_events_per_request),
            request.headers)
    except intake.TooManyEvents as err:
        log.warning("hook %s: refused: %s", name, err)
        return _refuse(soap, 413, str(err))
    except JMESPathError as err:
        log.error("hook %s: the mapping's `events` path fails on this body: %s", name, err)
        return _refuse(soap, 400, f"the mapping's `events` path fails on this body: {err}")
    new = [intake.judge(source, event, index, proof.delivery_id, now)
           for index, event in enumerate(events)]
    if test:
        capture = secrets.token_hex(6)
        new = [as_test(event, capture) for event in new]
    breaker = bridge.breaker
    if not breaker.try_store():
        return _spool(bridge, source, new, now.timestamp(),
                      StoreUnavailable(f"it failed in the last {breaker.pause:g} s"))
    try:
        outcomes = bridge.store.add_events(new, now.timestamp())
    except StoreRefused as err:  # the values themselves: retrying the same body cannot help
        breaker.stored()
        log.error("hook %s: the store refused this body's values: %s", name, err)
        return _refuse(soap, 400, f"the store refused this body's values: {err}")
    except StoreUnavailable as err:
        breaker.failed()
        return _spool(bridge, source, new, now.timestamp(), err)
    except BaseException:
        breaker.release()  # not the store's answer: another request probes
        raise
    breaker.stored()
    if bridge.worker is not None and any(o.result == "accepted" for o in outcomes):
        bridge.worker.wake()
    results = [_describe(index, *pair) for index, pair in enumerate(zip(new, outcomes,
                                                                         strict=True))]
    counts = Counter(r["result"] for r in results)
    for result, count in counts.items():
        metrics.webhook_received(name, result, count)
    # the access log has every request: a line of our own only for what is not plain
    (log.debug if set(counts) <= {"accepted"} else log.info)(
        "hook %s: %s", name, dict(counts) or "no events",
        extra={"source": name, "outcome": ",".join(sorted(counts)) or "none"})
    if soap:
        return _soap(formats.salesforce_ack(), 200)
    answer: dict[str, Any] = {"source": name, "received": len(results), "counts": counts,
                              "events": results}
    if test:
        answer["test"] = True
        return _json(answer, source.answer_status)
    waited = _wait_for_delivery(bridge, results, source.answer_wait)
    if waited:
        answer["events"] = waited
        return _json(answer, 200)
    return _json(answer, source.answer_status)  # the mapping's `answer.status`: 202 unless set


@bp.after_request
def _count_refused(response: Response) -> Response:
    """Every error answer to a known source's hook is counted on /metrics, whichever check
    gave it (an unknown source is not: its name is whatever the caller typed)."""
    name = (request.view_args or {}).get("name")
    if response.status_code >= 400 and name in current_bridge().sources:
        metrics.webhook_refused(name, response.status_code)
    return response


def as_test(event: NewEvent, capture: str) -> NewEvent:
    """A judged event kept as a capture: status `test`, what it would have been in the reason,
    and a dedup key of its own (a test never hides a real event, nor the other way round).
    The key holds `capture`, one per test request: a test sent again (after a mapping change)
    is judged afresh, not answered `duplicate` of the last one; within one request, two
    events with one id are still a duplicate, as the hook would say."""
    status = reasons.status(event.status)
    reason = (reasons.TEST_WOULD_BE_BECAUSE(status=status, reason=event.reason) if event.reason
              else reasons.TEST_WOULD_BE(status=status))
    return replace(event, status=Status.TEST,
                   dedup_key=fit_key(f"test:{capture}:{event.dedup_key}"), reason=reason)


def _spool(bridge: Any, source: Any, new: list[NewEvent], received_at: float,
           err: Exception) -> Response | tuple[Response, int]:
    """The store cannot be written: keep the request on local disk and acknowledge it (a CRM
    that never retries loses nothing); only a spool that cannot be written answers 503."""
    soap = source.format == "salesforce"
    try:
        bridge.spool.append(source.name, new, received_at)
    except SpoolFull as full:
        log.error("hook %s: store unavailable (%s) and %s", source.name, err, full)
        if soap:
            return _soap(formats.salesforce_fault("storage unavailable, retry later"), 500)
        response = _json({"error": "storage unavailable; nothing was stored, retry later"}, 503)
        response.headers["Retry-After"] = RETRY_AFTER
        return response
    bridge.start_spool_replayer()
    metrics.webhook_received(source.name, "spooled", len(new))
    log.warning("hook %s: store unavailable (%s): %d event(s) spooled to local disk",
                source.name, err, len(new))
    if soap:
        return _soap(formats.salesforce_ack(), 200)
    results = [{"index": index, "result": "spooled", "status": event.status.value}
               for index, event in enumerate(new)]
    return _json({"source": source.name, "received": len(new), "spooled": True,
                  "note": "the store is unavailable: the request is kept on the bridge's disk "
                          "and stored once the store answers again",
                  "counts": Counter(r["result"] for r in results), "events": results},
                 source.answer_status)


def _explain_url_mismatch(bridge: Any, source: Any, signed: SignedRequest) -> None:
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


def _diagnose(bridge: Any, name: str, message: str) -> None:
    """A setup problem of source `name`, for /readyz and the console: logged once per change."""
    if bridge.diagnostics.get(name) != message:
        bridge.diagnostics[name] = message
        log.error("hook %s: %s", name, message)


def _describe(index: int, event: NewEvent, outcome: Any) -> dict[str, Any]:
    item: dict[str, Any] = {"index": index, "result": outcome.result, "id": outcome.id,
                            "status": outcome.status}
    if outcome.result in ("invalid", "ignored", "test"):
        item["reason"] = event.reason
    if outcome.superseded:
        item["superseded"] = list(outcome.superseded)
    return item


def _wait_for_delivery(bridge: Any, results: list[dict[str, Any]],
                       answer_wait: float = 0.0) -> list | None:
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
    ids = [r["id"] for r in results if r["result"] == "accepted"]
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


def public_url(settings: Any) -> str:
    """The URL the CRM called, as it signed it: PUBLIC_URL + the raw path and query, or the
    request's own URL (made right behind a proxy by TRUST_FORWARDED)."""
    raw = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI")
    if not raw:
        query = request.query_string.decode("latin-1")
        raw = request.path + (f"?{query}" if query else "")
    return hook_base(settings) + raw


def hook_base(settings: Any) -> str:
    """Where CRMs reach the bridge: PUBLIC_URL, else this request's own scheme and host."""
    return (settings.public_url or request.host_url).rstrip("/")


def _refuse(soap: bool, status: int, message: str) -> Response | tuple[Response, int]:
    if soap:
        return _soap(formats.salesforce_fault(message, client=True), status)
    return _json({"error": message}, status)


def _soap(body: bytes, status: int) -> tuple[Response, int]:
    return Response(body, content_type=formats.SALESFORCE_CONTENT_TYPE), status


def _json(data: dict[str, Any], status: int) -> Response:
    response = jsonify(data)
    response.status_code = status
    return response
