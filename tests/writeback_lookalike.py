"""Look-alikes of the CRM APIs the shipped write-backs call, on loopback, each checking the
vendor's documented request shape (shared docs, crm-webhooks.md "Writing back") and answering
as the vendor does, errors included.

Salesforce: `POST /services/oauth2/token` (client credentials, form body: grant_type,
client_id, client_secret) answers an access token and the instance URL, with no lifetime;
`POST /services/data/vXX.X/sobjects/Task` wants `Authorization: Bearer <token>` (401
INVALID_SESSION_ID), a WhoId that is a Lead or Contact id (00Q / 003, 15 or 18 characters:
400 MALFORMED_ID), a Subject, a Status and an ActivityDate YYYY-MM-DD; 201 with the Task's id.
Zoho CRM: `POST /oauth/v2/token` (refresh token grant) answers an access token for 3600 s,
or, as Zoho does, 200 with `{"error": "invalid_code"}`; `POST /crm/v2/Leads/<id>/Notes`
wants `Authorization: Zoho-oauthtoken <token>` and `{"data": [{"Note_Title", "Note_Content"}]}`;
201 with `data[0].details.id`.
Pipedrive: `POST /api/v1/notes` with the `x-api-token` header (401 otherwise): `content` and
one of person_id, deal_id, lead_id, org_id; 201 `{"success": true, "data": {"id"}}`.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

from flask import Flask, jsonify, request
from flask.typing import ResponseReturnValue

from tests.lookalike import Lookalike

SALESFORCE_ID = re.compile(r"^(00Q|003)[A-Za-z0-9]{12}([A-Za-z0-9]{3})?$")


class WritebackLookalike(Lookalike):
    """Salesforce, Zoho and Pipedrive; `written` holds each record created, `tokens` the
    access tokens handed out (an entry removed: that token is refused, as a revoked one)."""

    def __init__(self, client_id: str, client_secret: str, refresh_token: str,
                 pipedrive_token: str):
        self.client_id, self.client_secret = client_id, client_secret
        self.refresh_token, self.pipedrive_token = refresh_token, pipedrive_token
        self.tokens: set[str] = set()
        self.written: list[dict[str, Any]] = []
        super().__init__()

    def _forget(self) -> None:
        self.tokens.clear()
        self.written.clear()

    def _build(self) -> Flask:
        app = Flask("writeback_lookalike")

        @app.post("/services/oauth2/token")
        def salesforce_token() -> ResponseReturnValue:
            form = request.form
            with self.lock:
                self.calls.append({"path": request.path, "grant": form.get("grant_type")})
                if form.get("grant_type") != "client_credentials":
                    return jsonify({"error": "unsupported_grant_type",
                                    "error_description": "grant type not supported"}), 400
                if (form.get("client_id"), form.get("client_secret")) != (
                        self.client_id, self.client_secret):
                    return jsonify({"error": "invalid_client",
                                    "error_description": "invalid client credentials"}), 400
                token = "00D" + secrets.token_hex(8)
                self.tokens.add(token)
            return jsonify({"access_token": token, "instance_url": self.url,
                            "id": f"{self.url}/id/00D/005", "token_type": "Bearer",
                            "issued_at": "1733200000000", "signature": "c2lnbmF0dXJl"})

        @app.post("/services/data/<version>/sobjects/Task")
        def salesforce_task(version: str) -> ResponseReturnValue:
            body = request.get_json(silent=True)
            with self.lock:
                self.calls.append({"path": request.path, "body": body})
                if not self._bearer("Bearer"):
                    return jsonify([{"message": "Session expired or invalid",
                                     "errorCode": "INVALID_SESSION_ID"}]), 401
                problem = _task_problem(version, body)
                if problem:
                    return jsonify([{"message": problem[1], "errorCode": problem[0],
                                     "fields": []}]), 400
                task_id = f"00T{len(self.written):015d}"
                self.written.append({"crm": "salesforce", "id": task_id, "to": body["WhoId"],
                                     "title": body["Subject"], "text": body.get("Description"),
                                     "date": body["ActivityDate"]})
            return jsonify({"id": task_id, "success": True, "errors": []}), 201

        @app.post("/oauth/v2/token")
        def zoho_token() -> ResponseReturnValue:
            form = request.form
            with self.lock:
                self.calls.append({"path": request.path, "grant": form.get("grant_type")})
                if form.get("grant_type") != "refresh_token" or (
                        form.get("client_id"), form.get("client_secret"),
                        form.get("refresh_token")) != (self.client_id, self.client_secret,
                                                       self.refresh_token):
                    return jsonify({"error": "invalid_code"})  # Zoho answers 200 so
                token = "1000." + secrets.token_hex(16)
                self.tokens.add(token)
            return jsonify({"access_token": token, "api_domain": self.url,
                            "token_type": "Bearer", "expires_in": 3600})

        @app.post("/crm/v2/Leads/<lead_id>/Notes")
        def zoho_note(lead_id: str) -> ResponseReturnValue:
            body = request.get_json(silent=True)
            with self.lock:
                self.calls.append({"path": request.path, "body": body})
                if not self._bearer("Zoho-oauthtoken"):
                    return jsonify({"code": "INVALID_TOKEN", "details": {},
                                    "message": "invalid oauth token", "status": "error"}), 401
                notes = body.get("data") if isinstance(body, dict) else None
                if not isinstance(notes, list) or not notes or not all(
                        isinstance(n, dict) and isinstance(n.get("Note_Content"), str)
                        and n["Note_Content"].strip() for n in notes):
                    return jsonify({"data": [{"code": "MANDATORY_NOT_FOUND", "details": {
                        "api_name": "Note_Content"}, "message": "required field not found",
                        "status": "error"}]}), 400
                if not lead_id.isdigit():
                    return jsonify({"code": "INVALID_URL_PATTERN", "details": {},
                                    "message": "Please check if the URL trying to access is a "
                                    "correct one", "status": "error"}), 400
                note_id = str(4876876000001000000 + len(self.written))
                self.written.append({"crm": "zoho", "id": note_id, "to": lead_id,
                                     "title": notes[0].get("Note_Title"),
                                     "text": notes[0]["Note_Content"]})
            return jsonify({"data": [{"code": "SUCCESS", "details": {"id": note_id},
                                      "message": "record added", "status": "success"}]}), 201

        @app.post("/api/v1/notes")
        def pipedrive_note() -> ResponseReturnValue:
            body = request.get_json(silent=True)
            with self.lock:
                self.calls.append({"path": request.path, "body": body})
                if request.headers.get("x-api-token") != self.pipedrive_token:
                    return jsonify({"success": False, "error": "You need to be authorized to "
                                    "make this request.", "errorCode": 401}), 401
                if not isinstance(body, dict) or not isinstance(body.get("content"), str) \
                        or not body["content"].strip():
                    return jsonify({"success": False, "error": "Content is required",
                                    "errorCode": 400}), 400
                links = [key for key in ("person_id", "deal_id", "lead_id", "org_id")
                         if body.get(key)]
                if not links or any(not isinstance(body[k], int) for k in links
                                    if k != "lead_id"):
                    return jsonify({"success": False, "error": "The note must be attached to "
                                    "a person, deal, lead or organization (an integer id)",
                                    "errorCode": 400}), 400
                note_id = 7000 + len(self.written)
                self.written.append({"crm": "pipedrive", "id": note_id,
                                     "to": str(body[links[0]]), "text": body["content"]})
            return jsonify({"success": True, "data": {"id": note_id,
                                                      "content": body["content"]}}), 201

        return app

    def _bearer(self, prefix: str) -> bool:
        header = request.headers.get("Authorization", "")
        return header.startswith(prefix + " ") and header[len(prefix) + 1:] in self.tokens


def _task_problem(version: str, body: Any) -> tuple[str, str] | None:
    if not re.fullmatch(r"v\d+\.\d", version):
        return ("NOT_FOUND", "The requested resource does not exist")
    if not isinstance(body, dict):
        return ("JSON_PARSER_ERROR", "the body is not a JSON object")
    if not isinstance(body.get("WhoId"), str) or not SALESFORCE_ID.match(body["WhoId"]):
        return ("MALFORMED_ID", f"Name ID: id value of incorrect type: {body.get('WhoId')}")
    if not isinstance(body.get("Subject"), str) or len(body["Subject"]) > 255:
        return ("STRING_TOO_LONG", "Subject: data value too large")
    if body.get("Status") not in ("Not Started", "In Progress", "Completed", "Waiting on "
                                  "someone else", "Deferred"):
        return ("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", "Status: bad value")
    if not isinstance(body.get("ActivityDate"), str) or not re.fullmatch(
            r"\d{4}-\d\d-\d\d", body["ActivityDate"]):
        return ("INVALID_TYPE_ON_FIELD_IN_RECORD", "Due Date Only: value not of required type")
    return None


class ChatLookalike(Lookalike):
    """An incoming webhook of a team chat (Slack, Teams, Google Chat): POST {"text": ...};
    400 "invalid_payload" without a text, as Slack answers; `failures` first."""

    def __init__(self) -> None:
        self.messages: list[str] = []
        super().__init__()

    def _forget(self) -> None:
        self.messages.clear()

    def _build(self) -> Flask:
        app = Flask("chat_lookalike")

        @app.post("/services/T000/B000/secret")
        def incoming() -> ResponseReturnValue:
            body = request.get_json(silent=True)
            with self.lock:
                self.calls.append({"body": body})
                if self.failures:
                    return "internal_error", self.failures.pop(0)
                if not isinstance(body, dict) or not isinstance(body.get("text"), str) \
                        or not body["text"]:
                    return "invalid_payload", 400
                self.messages.append(body["text"])
            return "ok", 200

        return app

    @property
    def hook(self) -> str:
        return f"{self.url}/services/T000/B000/secret"
