"""Kommo and Bitrix24 API look-alikes for tests, on loopback: the GETs the bridge's lookups make.

Kommo (API v4, https://developers.kommo.com/reference/getting-a-lead-by-its-id and
.../get-contact): `GET /api/v4/leads/<id>` (`?with=contacts` adds `_embedded.contacts`, each
with `id` and `is_main`) and `GET /api/v4/contacts/<id>` (the phone in `custom_fields_values`,
`field_code` PHONE), both behind `Authorization: Bearer <long-lived token>` (401 otherwise).

Bitrix24 (https://apidocs.bitrix24.com/api-reference/crm/leads/crm-lead-get.html): an inbound
webhook `GET /rest/<user id>/<secret>/crm.lead.get[.json]?id=<id>` answering
`{"result": {...lead...}, "time": {...}}`; the secret in the path is the credential (401 with
INVALID_CREDENTIALS otherwise).

What either answers for an id it does not know is not confirmed by the vendors' pages: this
look-alike answers Kommo with 404 and Bitrix24 with 400 "Not found". `fail_next` makes the
next calls answer an error status instead.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, jsonify, request
from flask.typing import ResponseReturnValue

from tests.lookalike import Lookalike

BITRIX24_USER = "1"


class CrmLookalike(Lookalike):
    """Serve with `start()`; tell it records with `add_kommo_lead`, `add_kommo_contact` and
    `add_bitrix24_lead`; see what was asked in `calls`."""

    def __init__(self, kommo_token: str, bitrix24_secret: str):
        self.kommo_token = kommo_token
        self.bitrix24_secret = bitrix24_secret
        self.kommo_leads: dict[str, dict[str, Any]] = {}
        self.kommo_contacts: dict[str, dict[str, Any]] = {}
        self.bitrix24_leads: dict[str, dict[str, Any]] = {}
        self.written: list[dict[str, Any]] = []  # Kommo notes and Bitrix24 comments created
        super().__init__()

    @property
    def bitrix24_webhook_url(self) -> str:
        """The inbound webhook URL a Bitrix24 portal gives, with its trailing slash."""
        return f"{self.url}/rest/{BITRIX24_USER}/{self.bitrix24_secret}/"

    # --- control -----------------------------------------------------------------------
    def _forget(self) -> None:
        self.kommo_leads.clear()
        self.kommo_contacts.clear()
        self.bitrix24_leads.clear()
        self.written.clear()

    def add_kommo_lead(self, lead_id: int, contacts: list[tuple[int, bool]],
                       status_id: int = 67548619) -> None:
        """A lead and its linked contacts, as (contact id, is_main)."""
        with self.lock:
            self.kommo_leads[str(lead_id)] = {"id": lead_id, "status_id": status_id,
                                              "contacts": contacts}

    def add_kommo_contact(self, contact_id: int, phone: str | None, name: str = "Ana") -> None:
        with self.lock:
            self.kommo_contacts[str(contact_id)] = {"id": contact_id, "name": name,
                                                    "phone": phone}

    def add_bitrix24_lead(self, lead_id: int | str, **fields: Any) -> None:
        """A lead as crm.lead.get's `result` holds it: ID, STATUS_ID, PHONE, UF_CRM_..."""
        with self.lock:
            self.bitrix24_leads[str(lead_id)] = {"ID": str(lead_id), **fields}

    # --- the APIs ----------------------------------------------------------------------
    def _build(self) -> Flask:
        app = Flask("crm_lookalike")

        @app.get("/api/v4/leads/<lead_id>")
        def kommo_lead(lead_id: str) -> ResponseReturnValue:
            if refused := self._kommo_check():
                return refused
            with self.lock:
                lead = self.kommo_leads.get(lead_id)
            if lead is None:
                return _kommo_error(404, "Not Found")
            return jsonify(_kommo_lead(self.url, lead, "contacts" in
                                       request.args.get("with", "").split(",")))

        @app.get("/api/v4/contacts/<contact_id>")
        def kommo_contact(contact_id: str) -> ResponseReturnValue:
            if refused := self._kommo_check():
                return refused
            with self.lock:
                contact = self.kommo_contacts.get(contact_id)
            if contact is None:
                return _kommo_error(404, "Not Found")
            return jsonify(_kommo_contact(self.url, contact))

        @app.get("/rest/<user>/<secret>/<method>")
        def bitrix24(user: str, secret: str, method: str) -> ResponseReturnValue:
            with self.lock:
                self._record()
                if (user, secret) != (BITRIX24_USER, self.bitrix24_secret):
                    return jsonify({"error": "INVALID_CREDENTIALS",
                                    "error_description": "Invalid request credentials"}), 401
                if self.failures:
                    return jsonify({"error": "INTERNAL_SERVER_ERROR",
                                    "error_description": "Internal error"}), self.failures.pop(0)
                if method.removesuffix(".json") != "crm.lead.get":
                    return jsonify({"error": "ERROR_METHOD_NOT_FOUND",
                                    "error_description": "Method not found!"}), 404
                lead = self.bitrix24_leads.get(request.args.get("id", ""))
            if lead is None:
                return jsonify({"error": "", "error_description": "Not found"}), 400
            return jsonify({"result": lead, "time": {
                "start": 1705764932.998683, "finish": 1705764933.173995,
                "duration": 0.17531204223632812, "date_start": "2024-01-20T18:35:32+02:00",
                "date_finish": "2024-01-20T18:35:33+02:00"}})

        @app.post("/api/v4/leads/notes")
        def kommo_notes() -> ResponseReturnValue:
            """Kommo's add-notes: a list of {entity_id (int), note_type, params.text}."""
            if refused := self._kommo_check():
                return refused
            body = request.get_json(silent=True)
            if not isinstance(body, list) or not body or not all(
                    isinstance(n, dict) and isinstance(n.get("entity_id"), int)
                    and n.get("note_type") == "common" and isinstance(n.get("params"), dict)
                    and isinstance(n["params"].get("text"), str) and n["params"]["text"]
                    for n in body):
                return jsonify({"validation-errors": [{"request_id": "0", "errors": [
                    {"code": "NotSupportedChoice", "path": "entity_id",
                     "detail": "The value you selected is not a valid choice."}]}],
                    "title": "Bad Request", "type": "https://httpstatus.es/400",
                    "status": 400, "detail": "Request validation failed"}), 400
            with self.lock:
                notes = []
                for note in body:
                    note_id = 76787983 + len(self.written)
                    self.written.append({"crm": "kommo", "id": note_id,
                                         "to": str(note["entity_id"]),
                                         "text": note["params"]["text"]})
                    notes.append({"id": note_id, "entity_id": note["entity_id"],
                                  "request_id": "0", "_links": {"self": {
                                      "href": f"{self.url}/api/v4/leads/notes/{note_id}"}}})
            return jsonify({"_links": {"self": {"href": f"{self.url}/api/v4/leads/notes"}},
                            "_embedded": {"notes": notes}})

        @app.post("/rest/<user>/<secret>/<method>")
        def bitrix24_post(user: str, secret: str, method: str) -> ResponseReturnValue:
            """crm.timeline.comment.add: fields ENTITY_ID, ENTITY_TYPE (lead), COMMENT."""
            body = request.get_json(silent=True)
            with self.lock:
                self._record()
                if (user, secret) != (BITRIX24_USER, self.bitrix24_secret):
                    return jsonify({"error": "INVALID_CREDENTIALS",
                                    "error_description": "Invalid request credentials"}), 401
                if method.removesuffix(".json") != "crm.timeline.comment.add":
                    return jsonify({"error": "ERROR_METHOD_NOT_FOUND",
                                    "error_description": "Method not found!"}), 404
                fields = body.get("fields") if isinstance(body, dict) else None
                if not isinstance(fields, dict) or fields.get("ENTITY_TYPE") != "lead" or \
                        not str(fields.get("ENTITY_ID", "")).isdigit() or \
                        not isinstance(fields.get("COMMENT"), str) or not fields["COMMENT"]:
                    return jsonify({"error": "ERROR_ARGUMENT",
                                    "error_description": "Argument 'fields' is invalid"}), 400
                comment_id = 1000 + len(self.written)
                self.written.append({"crm": "bitrix24", "id": comment_id,
                                     "to": str(fields["ENTITY_ID"]), "text": fields["COMMENT"]})
            return jsonify({"result": comment_id, "time": {"start": 1733200000.1,
                                                           "finish": 1733200000.2}})

        return app

    def _record(self) -> None:
        self.calls.append({"path": request.path, "query": request.args.to_dict(),
                           "authorization": request.headers.get("Authorization")})

    def _kommo_check(self) -> ResponseReturnValue | None:
        """Record the call; a 401 for a wrong token, or the next failure asked for."""
        with self.lock:
            self._record()
            if request.headers.get("Authorization") != f"Bearer {self.kommo_token}":
                return _kommo_error(401, "Unauthorized")
            if self.failures:
                status = self.failures.pop(0)
                return _kommo_error(status, "Error")
        return None


def _kommo_lead(base: str, lead: dict[str, Any], with_contacts: bool) -> dict[str, Any]:
    embedded: dict[str, Any] = {"tags": [], "companies": []}
    if with_contacts:
        embedded["contacts"] = [
            {"id": contact_id, "is_main": is_main,
             "_links": {"self": {"href": f"{base}/api/v4/contacts/{contact_id}"}}}
            for contact_id, is_main in lead["contacts"]]
    return {"id": lead["id"], "name": "", "price": 1000, "responsible_user_id": 12345678,
            "group_id": 0, "status_id": lead["status_id"], "pipeline_id": 8572511,
            "loss_reason_id": None, "created_by": 11087123, "updated_by": 11087123,
            "created_at": 1795885194, "updated_at": 1795885200, "closed_at": None,
            "closest_task_at": None, "is_deleted": False, "custom_fields_values": None,
            "score": None, "account_id": 12345678,
            "_links": {"self": {"href": f"{base}/api/v4/leads/{lead['id']}"}},
            "_embedded": embedded}


def _kommo_contact(base: str, contact: dict[str, Any]) -> dict[str, Any]:
    fields = [] if contact["phone"] is None else [
        {"field_id": 1698052, "field_name": "Phone", "field_code": "PHONE",
         "field_type": "multitext",
         "values": [{"value": contact["phone"], "enum_id": 1037745, "enum_code": "MOB"}]}]
    return {"id": contact["id"], "name": contact["name"], "first_name": contact["name"],
            "last_name": "", "responsible_user_id": 504141, "group_id": 0,
            "created_by": 504141, "updated_by": 504141, "created_at": 1726573127,
            "updated_at": 1726573130, "closest_task_at": None, "is_deleted": False,
            "custom_fields_values": fields or None, "account_id": 12345678,
            "_links": {"self": {"href": f"{base}/api/v4/contacts/{contact['id']}"}},
            "_embedded": {"tags": [], "companies": []}}


def _kommo_error(status: int, title: str) -> ResponseReturnValue:
    return jsonify({"title": title, "type": f"https://httpstatus.es/{status}",
                    "status": status, "detail": title}), status
