"""A wolkvox look-alike for demos and tests: same path, query, token header, limits and error
bodies as wolkvox-api.md, plus knobs (latency, scripted failures, quota, valid tokens) and a
list of the recalls it received.

Control endpoints (JSON): GET /_sandbox/recalls, DELETE /_sandbox/recalls (reset),
GET /_sandbox/stats, POST /_sandbox/config {"latency": s, "tokens": [...], "daily_limit": n,
"script": [500, "timeout", "html", "trickle", {"status": 429, "retry_after": "5"}, 202, ...]}
(each scripted answer is used once, in order; "trickle" sends a 202 one byte a second, as a
server that answers too slowly would; the call stays in flight until the last byte).

Call results: GET /api/v2/reports_manager.php?api=campaign_3 answers the rows of a campaign
within [date_ini, date_end] (the sandbox's time zone, `timezone` in the config) that are not
in the future, under the same token, slot and quota rules as recalls, ranges of 31 days at
most. The dialer is played with POST /_sandbox/dial {"customer_id", "result" (ANSWER),
"campaign_id", "telephone", "date" ("YYYY-mm-dd HH:MM:SS")}, the defaults from the customer's
last recall and now; {"autodial": "ANSWER"} in the config dials every recall received at its
date. GET /_sandbox/calls lists the rows. Scripted report answers: "report_html",
"report_not_json", "report_huge", "report_bad_rows", "report_bad_date".
"""

from __future__ import annotations

import json
import re
import select
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import Flask, Response, jsonify, request
from flask.typing import ResponseReturnValue
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

MAX_IN_FLIGHT = 2
ERRORS = {
    "no_api": (400, "THE API YOU WANT TO CONSULT DOES NOT EXIST"),
    "params": (400, "SOME PARAMETERS ARE REQUIRED"),
    "no_token": (401, "PLEASE ENTER THE WOLKVOX-TOKEN"),
    "bad_token": (403, "PLEASE VALIDATE TOKEN"),
    "quota": (403, "TOKEN LIMIT EXCEEDED"),
    "concurrency": (403, f"EXCEEDS THE LIMIT OF SIMULTANEOUS REQUESTS PER TOKEN ({MAX_IN_FLIGHT})"),
    "maintenance": (403, "SERVER UNDER MAINTENANCE"),
}


class SandboxState:
    """Everything the sandbox remembers; one lock guards it."""

    def __init__(self, tokens: list[str], latency: float = 0.0, daily_limit: int = 0,
                 max_in_flight: int = MAX_IN_FLIGHT):
        self.lock = threading.Lock()
        self.tokens = set(tokens)
        self.latency = latency
        self.daily_limit = daily_limit
        self.max_in_flight = max_in_flight
        self.timezone = "America/Bogota"
        self.autodial: str | None = None
        self.refuse_unknown = False  # refuse a recall for a customer a campaign does not have
        self.reset()

    def reset(self) -> None:
        self.recalls: list[dict[str, Any]] = []
        self.in_flight: Counter[str] = Counter()
        self.max_seen: Counter[str] = Counter()
        self.max_asked: Counter[str] = Counter()  # calls in flight when one arrived, + 1
        self.refused: Counter[str] = Counter()
        self.used: Counter[str] = Counter()
        self.script: list[Any] = []
        self.requests = 0
        self.calls: list[dict[str, str]] = []  # the dialer's rows, as campaign_3 answers them
        self.report_requests: list[dict[str, Any]] = []
        self.reports: Counter[str] = Counter()
        self.records: dict[str, dict[str, dict[str, Any]]] = {}  # campaign -> customer -> record
        self.adds: list[dict[str, Any]] = []  # each add_record call: campaign, status, records

    def admit(self, token: str, api: str) -> str:
        """A call of `api` by `token` under wolkvox's rules (call under the lock): "" when it
        is taken (in flight, a unit used), else the kind of ERRORS it is refused with."""
        self.requests += 1
        if not token:
            return "no_token"
        if request.args.get("api") != api:
            return "no_api"
        if token not in self.tokens:
            return "bad_token"
        self.max_asked[token] = max(self.max_asked[token], self.in_flight[token] + 1)
        if self.in_flight[token] >= self.max_in_flight:
            self.refused[token] += 1
            return "concurrency"
        if self.daily_limit and self.used[token] >= self.daily_limit:
            return "quota"
        self.in_flight[token] += 1
        self.max_seen[token] = max(self.max_seen[token], self.in_flight[token])
        self.used[token] += 1
        return ""

    def local(self, when: datetime | None = None) -> str:
        zone = ZoneInfo(self.timezone)
        return f"{(when or datetime.now(zone)).astimezone(zone):%Y-%m-%d %H:%M:%S}"

    def dial(self, customer_id: str, result: str = "ANSWER", campaign_id: str | None = None,
             telephone: str | None = None, date: str | None = None) -> dict[str, str] | None:
        """A row of the dialer (call under the lock); None when no campaign is known."""
        last: dict[str, Any] = next(
            (r for r in reversed(self.recalls) if r["customer_id"] == customer_id), {})
        campaign = campaign_id or last.get("campaign_id")
        if not campaign:
            return None
        row = {"campaign_id": str(campaign), "customer_name": "", "customer_last_name": "",
               "id_type": "", "customer_id": customer_id,
               "date": date or self.local(), "telephone": telephone or
               last.get("recall_telephone", ""), "result": result,
               "conn_id": f"sandbox-{len(self.calls) + 1}"}
        self.calls.append(row)
        return row


def create_sandbox(tokens: list[str], latency: float = 0.0, daily_limit: int = 0) -> Flask:
    """A Flask app that behaves like wolkvox's recall API for the given valid tokens."""
    app = Flask("wolkvox_sandbox")
    state = SandboxState(tokens, latency, daily_limit)
    app.extensions["sandbox"] = state

    @app.put("/api/v2/campaign.php")
    def recall() -> ResponseReturnValue:
        token = request.headers.get("wolkvox-token", "")
        with state.lock:
            refused = state.admit(token, "recall")
            if refused:
                return _error(refused)
            scripted = state.script.pop(0) if state.script else None
        if scripted == "trickle":  # in flight until its generator ends (or the client leaves)
            client = request.environ.get("werkzeug.socket")
            return Response(_trickle(state, token, client), status=202,
                            mimetype="application/json")
        try:
            if state.latency:  # the call takes `latency` in all, counted from its arrival
                arrived = request.environ.get("sandbox.arrived", time.perf_counter())
                spent = time.perf_counter() - arrived
                time.sleep(max(0.0, state.latency - spent))
            return _answer(state, token, scripted)
        finally:
            with state.lock:
                state.in_flight[token] -= 1

    @app.post("/api/v2/campaign.php")
    def add_record() -> ResponseReturnValue:
        """add_record: a JSON array of records into a predictive campaign; each needs a
        customer_id and a tel1..tel10 of digits. The answer is not documented by wolkvox:
        this one says how many records were added."""
        token = request.headers.get("wolkvox-token", "")
        with state.lock:
            refused = state.admit(token, "add_record")
            if refused:
                return _error(refused)
            scripted = state.script.pop(0) if state.script else None
        try:
            if isinstance(scripted, int) and scripted >= 300:
                return jsonify({"code": scripted, "error": "Error",
                                "msg": f"SCRIPTED {scripted} for 3001234567"}), scripted
            query, body = request.args, request.get_json(silent=True)
            tels = (f"tel{n}" for n in range(1, 11))
            if query.get("type_campaign") not in ("predictive", "preview") or \
                    not str(query.get("campaign_id", "")).isdigit() or \
                    not query.get("campaign_status") or not isinstance(body, list) or not body \
                    or not all(isinstance(r, dict) and str(r.get("customer_id") or "") and
                               any(str(r.get(t) or "").isdigit() for t in list(tels))
                               for r in body):
                return _error("params")
            with state.lock:
                campaign = state.records.setdefault(str(query["campaign_id"]), {})
                for record in body:
                    campaign[str(record["customer_id"])] = dict(record)
                state.adds.append({"campaign_id": query["campaign_id"],
                                   "campaign_status": query["campaign_status"],
                                   "records": body, "at": time.time()})
            return jsonify({"code": 200, "error": None,
                            "msg": f"{len(body)} records were added to the campaign "
                                   f"{query['campaign_id']}"}), 200
        finally:
            with state.lock:
                state.in_flight[token] -= 1

    @app.get("/api/v2/reports_manager.php")
    def report() -> ResponseReturnValue:
        token = request.headers.get("wolkvox-token", "")
        with state.lock:
            refused = state.admit(token, "campaign_3")
            if refused:
                return _error(refused)
            state.reports[token] += 1
            state.report_requests.append({"token": token, "at": time.time(),
                                          **{k: request.args.get(k) for k in (
                                              "campaign_id", "date_ini", "date_end")}})
            scripted = state.script.pop(0) if state.script else None
        try:
            if state.latency:
                time.sleep(state.latency)
            return _report(state, scripted)
        finally:
            with state.lock:
                state.in_flight[token] -= 1

    @app.post("/_sandbox/dial")
    def dial() -> ResponseReturnValue:
        data = request.get_json(force=True, silent=True) or {}
        if not data.get("customer_id"):
            return jsonify({"error": "customer_id is required"}), 400
        if data.get("date"):
            try:
                datetime.strptime(data["date"], REPORT_DATE)
            except (TypeError, ValueError):
                return jsonify({"error": "date must be YYYY-mm-dd HH:MM:SS"}), 400
        with state.lock:
            row = state.dial(str(data["customer_id"]), str(data.get("result") or "ANSWER"),
                             data.get("campaign_id"), data.get("telephone"), data.get("date"))
        if row is None:
            return jsonify({"error": "no campaign known for this customer: send its recall "
                            "first, or give campaign_id"}), 404
        return jsonify(row), 201

    @app.get("/_sandbox/calls")
    def calls() -> ResponseReturnValue:
        with state.lock:
            return jsonify(list(state.calls))

    @app.get("/api/v2/real_time.php")
    def listed() -> ResponseReturnValue:
        with state.lock:
            return jsonify({"code": 200, "error": None, "data": list(state.recalls)})

    @app.get("/_sandbox/recalls")
    def recalls() -> ResponseReturnValue:
        with state.lock:
            return jsonify(list(state.recalls))

    @app.delete("/_sandbox/recalls")
    def reset() -> ResponseReturnValue:
        with state.lock:
            state.reset()
        return jsonify({"reset": True})

    @app.get("/_sandbox/stats")
    def stats() -> ResponseReturnValue:
        with state.lock:
            return jsonify({"requests": state.requests, "recalls": len(state.recalls),
                            "max_in_flight": dict(state.max_seen),
                            "max_asked": dict(state.max_asked),
                            "refused_for_concurrency": sum(state.refused.values()),
                            "used": dict(state.used), "reports": dict(state.reports),
                            "report_requests": len(state.report_requests)})

    @app.post("/_sandbox/config")
    def config() -> ResponseReturnValue:
        data = request.get_json(force=True)
        with state.lock:
            if "latency" in data:
                state.latency = float(data["latency"])
            if "tokens" in data:
                state.tokens = set(data["tokens"])
            if "daily_limit" in data:
                state.daily_limit = int(data["daily_limit"])
            if "script" in data:
                state.script = list(data["script"])
            if "autodial" in data:
                state.autodial = data["autodial"] or None
            if "timezone" in data:
                state.timezone = str(data["timezone"])
            if "refuse_unknown" in data:
                state.refuse_unknown = bool(data["refuse_unknown"])
        return jsonify({"ok": True})

    return app


TRICKLE_INTERVAL = 1.0  # seconds between the bytes of a "trickle" answer


def _trickle(state: SandboxState, token: str, client: Any) -> Iterator[bytes]:
    """The answer, a byte every TRICKLE_INTERVAL; it ends as soon as the client hangs up (as
    a server that notices a closed connection does), so the call stops counting in flight."""
    body = json.dumps({"code": 202, "error": None, "msg": "TRICKLED " + "." * 200}).encode()
    try:
        for index in range(len(body)):
            yield body[index:index + 1]
            if _hung_up(client, TRICKLE_INTERVAL):
                return
    finally:
        with state.lock:
            state.in_flight[token] -= 1


def _hung_up(client: Any, wait: float) -> bool:
    """Wait up to `wait` seconds; True as soon as the client closed its connection."""
    if client is None:
        time.sleep(wait)
        return False
    readable, _, _ = select.select([client], [], [], wait)
    if not readable:
        return False
    try:
        return client.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


def _answer(state: SandboxState, token: str, scripted: Any) -> ResponseReturnValue:
    if isinstance(scripted, dict):
        status = int(scripted["status"])
        headers = {"Retry-After": str(scripted["retry_after"])} if "retry_after" in scripted \
            else {}
        return jsonify({"code": status, "error": "Error", "msg": f"SCRIPTED {status}"}), \
            status, headers
    if scripted == "timeout":
        time.sleep(3600)  # the client's read timeout ends it
    if scripted == "html":
        return "<html><body>502 Bad Gateway</body></html>", 502, {"Content-Type": "text/html"}
    if scripted == "maintenance":
        return _error("maintenance")
    if isinstance(scripted, int) and scripted != 202:
        return jsonify({"code": scripted, "error": "Error", "msg": f"SCRIPTED {scripted}"}), \
            scripted
    body = request.get_json(silent=True) or {}
    query = request.args
    missing = [k for k in ("type_campaign", "campaign_id") if not query.get(k)]
    missing += [k for k in ("recall_date", "recall_telephone", "customer_id") if not body.get(k)]
    if missing or query.get("type_campaign") != "predictive" \
            or not re.fullmatch(r"\d{14}", str(body.get("recall_date", ""))) \
            or not str(body.get("recall_telephone", "")).isdigit():
        return _error("params")
    customer = str(body["customer_id"])
    with state.lock:
        unknown = state.refuse_unknown and customer not in state.records.get(
            str(query["campaign_id"]), {})
    if unknown:  # wolkvox's own words for this are not documented: the sandbox's
        return jsonify({"code": 400, "error": "Error",
                        "msg": f"customer_id {customer} does not exist in the campaign "
                               f"{query['campaign_id']}"}), 400
    record = {"campaign_id": query["campaign_id"], "type_campaign": query["type_campaign"],
              "token": token, "at": time.time(), **{k: str(body[k]) for k in
              ("recall_date", "recall_telephone", "customer_id")}}
    with state.lock:
        state.recalls.append(record)
        if state.autodial:  # the dialer calls at the recall's date
            at = datetime.strptime(str(record["recall_date"]), "%Y%m%d%H%M%S")
            state.dial(str(record["customer_id"]), state.autodial, date=f"{at:{REPORT_DATE}}")
    msg = (f"customer_id {body['customer_id']} has been updated and will be call back on "
           f"{body['recall_date']} to phone {body['recall_telephone']}")
    return jsonify({"code": "202" if len(state.recalls) % 2 else 202, "error": None,
                    "msg": msg}), 202


REPORT_DATE = "%Y-%m-%d %H:%M:%S"
MAX_RANGE = timedelta(days=31)


def _report(state: SandboxState, scripted: Any) -> ResponseReturnValue:
    """campaign_3's answer: the campaign's rows within the range, not in the future."""
    if scripted == "report_html":
        return "<html><body>Service Unavailable</body></html>", 200, {"Content-Type": "text/html"}
    if scripted == "report_not_json":
        return '{"code": 200, "data": [', 200, {"Content-Type": "application/json"}
    if scripted == "report_huge":
        filler = [{"customer_id": str(n), "date": "2026-01-01 00:00:00", "result": "BUSY",
                   "telephone": "", "campaign_id": "0", "note": "x" * 400}
                  for n in range(90_000)]
        return jsonify({"code": 200, "error": None, "msg": "huge", "data": filler})
    if isinstance(scripted, int | dict) or scripted in ("timeout", "maintenance"):
        return _answer(state, "", scripted)
    query = request.args
    try:
        start = datetime.strptime(query.get("date_ini", ""), "%Y%m%d%H%M%S")
        end = datetime.strptime(query.get("date_end", ""), "%Y%m%d%H%M%S")
    except ValueError:
        return _error("params")
    if not query.get("campaign_id"):
        return _error("params")
    if end < start or end - start > MAX_RANGE:
        # wolkvox documents the 31-day limit, not the message it answers over it
        return jsonify({"code": 400, "error": "Error",
                        "msg": "THE DATE RANGE MUST NOT EXCEED 31 DAYS"}), 400
    campaign = query["campaign_id"]
    with state.lock:
        now = state.local()
        rows = [dict(r) for r in state.calls
                if (campaign == "all" or r["campaign_id"] == campaign)
                and f"{start:{REPORT_DATE}}" <= r["date"] <= f"{end:{REPORT_DATE}}"
                and r["date"] <= now]
    if scripted == "report_bad_rows":
        rows = [{k: v for k, v in r.items() if k not in ("customer_id", "result")}
                for r in rows] or [{"date": now}]
    if scripted == "report_bad_date":
        rows = [{**r, "date": "31/02/2026 25:61"} for r in rows] or [
            {"customer_id": "0", "result": "ANSWER", "date": "31/02/2026 25:61"}]
    return jsonify({"code": 200, "error": None, "msg": f"{len(rows)} records were found",
                    "data": rows})


def _error(kind: str) -> ResponseReturnValue:
    status, msg = ERRORS[kind]
    return jsonify({"code": status, "error": "Error", "msg": msg}), status


def serve(app: Flask, host: str = "127.0.0.1", port: int = 0) -> BaseWSGIServer:
    """A threaded server for the sandbox; call serve_forever() (or run it in a thread)."""
    return make_server(host, port, app, threaded=True, request_handler=_KeepAlive)


class _KeepAlive(WSGIRequestHandler):
    """Keeps connections open (as a real HTTPS endpoint allows), marks when each request
    line arrived, so `latency` is the whole time the server takes, and logs nothing per
    request (a benchmark would measure the log)."""

    protocol_version = "HTTP/1.1"

    def parse_request(self) -> bool:
        self.arrived = time.perf_counter()
        return super().parse_request()

    def make_environ(self) -> Any:
        environ = super().make_environ()
        environ["sandbox.arrived"] = self.arrived
        return environ

    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass
