"""A HubSpot CRM API look-alike for tests, on loopback: the contact the bridge's lookup GETs
and the notes its write-backs POST.

`GET /crm/v3/objects/contacts/<id>` answers as HubSpot does: a Bearer token check (401), the
contact's requested properties (`?properties=a,b`; a property the contact lacks is null), 404
for an unknown id. `POST /crm/v3/objects/notes` checks the documented shape (HubSpot's notes
guide): `properties.hs_timestamp` (epoch milliseconds or an ISO 8601 UTC time) and
`properties.hs_note_body`, and `associations` of `{"to": {"id"}, "types":
[{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 202}]}` (202: note to
contact) to a contact it knows; 400 VALIDATION_ERROR otherwise, 201 with the note's id when
it is right. `notes_per_second` makes it answer 429 with Retry-After past that many notes in
one second, as HubSpot's ten-secondly limit does. On demand an error status for the next calls.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

from flask import Flask, jsonify, request
from flask.typing import ResponseReturnValue

from tests.lookalike import Lookalike

DEFAULT_PROPERTIES = ("createdate", "hs_object_id", "lastmodifieddate")  # HubSpot always adds


class HubSpotLookalike(Lookalike):
    """Serve with `start()`; tell it contacts with `add_contact`, errors with `fail_next`."""

    def __init__(self, token: str):
        self.token = token
        self.contacts: dict[str, dict[str, Any]] = {}
        self.notes: list[dict[str, Any]] = []  # each note created: contact, body, timestamp, at
        self.notes_per_second: float | None = None
        self.refused_notes = 0  # 429s answered for going past notes_per_second
        self.hang = 0.0  # seconds a notes POST waits before answering
        self.odd: list[str] = []  # the next notes POSTs' odd answers: redirect, html, huge
        super().__init__()

    # --- control -----------------------------------------------------------------------
    def _forget(self) -> None:
        self.contacts.clear()
        self.notes.clear()
        self.notes_per_second = None
        self.refused_notes = 0
        self.hang = 0.0
        self.odd = []

    def add_contact(self, contact_id: int | str, **properties: Any) -> None:
        with self.lock:
            self.contacts[str(contact_id)] = properties

    # --- the API -----------------------------------------------------------------------
    def _build(self) -> Flask:
        app = Flask("hubspot_lookalike")

        @app.get("/crm/v3/objects/contacts/<contact_id>")
        def contact(contact_id: str) -> ResponseReturnValue:
            wanted = [p for p in request.args.get("properties", "").split(",") if p]
            with self.lock:
                self.calls.append({"id": contact_id, "properties": wanted,
                                   "authorization": request.headers.get("Authorization")})
                if request.headers.get("Authorization") != f"Bearer {self.token}":
                    return _error(401, "INVALID_AUTHENTICATION",
                                  "Authentication credentials not found.")
                if self.failures:
                    status = self.failures.pop(0)
                    if status == 429:  # HubSpot's ten-secondly limit; says when to come back
                        return (*_error(429, "RATE_LIMIT", "rate limited"), {"Retry-After": "60"})
                    return _error(status, "INTERNAL_ERROR", "internal error")
                known = self.contacts.get(contact_id)
                if known is None:
                    return _error(404, "OBJECT_NOT_FOUND", "resource not found")
                properties = {name: None for name in (*DEFAULT_PROPERTIES, *wanted)}
                properties.update({k: v for k, v in known.items() if k in properties})
                properties["hs_object_id"] = contact_id
            return jsonify({"id": contact_id, "properties": properties,
                            "createdAt": "2026-11-01T09:00:00.000Z",
                            "updatedAt": "2026-11-28T12:00:00.000Z", "archived": False})

        @app.post("/crm/v3/objects/notes")
        def create_note() -> ResponseReturnValue:
            if self.hang:
                time.sleep(self.hang)
            body = request.get_json(silent=True)
            with self.lock:
                self.calls.append({"note": body,
                                   "authorization": request.headers.get("Authorization")})
                if request.headers.get("Authorization") != f"Bearer {self.token}":
                    return _error(401, "INVALID_AUTHENTICATION",
                                  "Authentication credentials not found.")
                if self.failures:
                    status = self.failures.pop(0)
                    if status == 429:
                        return (*_error(429, "RATE_LIMIT", "rate limited"), {"Retry-After": "1"})
                    return _error(status, "INTERNAL_ERROR", "internal error")
                odd = self.odd.pop(0) if self.odd else None
                if odd == "redirect":  # a moved API: wherever it points, not followed
                    return "", 301, {"Location": "https://elsewhere.example/crm/v3/objects/notes"}
                if odd == "html":  # a proxy's error page
                    return "<html><body><h1>502 Bad Gateway</h1></body></html>", 502, \
                        {"Content-Type": "text/html"}
                if odd == "huge":  # an answer far larger than a note's
                    return "{" + " " * (8 * 1024 * 1024) + "}", 201, \
                        {"Content-Type": "application/json"}
                now = time.time()
                if self.notes_per_second is not None and sum(
                        1 for note in self.notes if note["at"] > now - 1.0) \
                        >= self.notes_per_second:
                    self.refused_notes += 1
                    return (*_error(429, "RATE_LIMIT", "You have reached your ten_secondly "
                                    "limit."), {"Retry-After": "1"})
                problem = self._note_problem(body)
                if problem:
                    return _error(400, "VALIDATION_ERROR", problem)
                note_id = str(9_000_000 + len(self.notes))
                props = body["properties"]
                contact = str(body["associations"][0]["to"]["id"])
                self.notes.append({"id": note_id, "contact": contact,
                                   "body": props["hs_note_body"],
                                   "timestamp": props["hs_timestamp"], "at": now})
            return jsonify({"id": note_id, "properties": {**props, "hs_object_id": note_id},
                            "createdAt": "2026-12-03T12:00:00.000Z", "archived": False}), 201

        return app

    def _note_problem(self, body: Any) -> str:
        """What HubSpot would refuse in a note's body; "" when it is right."""
        if not isinstance(body, dict) or not isinstance(body.get("properties"), dict):
            return "Invalid input JSON: properties is required"
        props = body["properties"]
        stamp = props.get("hs_timestamp")
        if not (isinstance(stamp, int) or isinstance(stamp, str) and (
                stamp.isdigit() or re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?Z",
                                                stamp))):
            return "Property values were not valid: hs_timestamp must be epoch ms or ISO 8601"
        if not isinstance(props.get("hs_note_body"), str) or not props["hs_note_body"].strip():
            return "Property values were not valid: hs_note_body is required"
        links = body.get("associations")
        if not isinstance(links, list) or not links:
            return "a note must be associated to a record"
        for link in links:
            to = link.get("to") if isinstance(link, dict) else None
            types = link.get("types") if isinstance(link, dict) else None
            if not isinstance(to, dict) or str(to.get("id")) not in self.contacts:
                return f"association to an unknown object: {to!r}"
            if types != [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 202}]:
                return f"invalid association type for note to contact: {types!r}"
        return ""


def _error(status: int, category: str, message: str) -> ResponseReturnValue:
    return jsonify({"status": "error", "message": message, "category": category,
                    "correlationId": str(uuid.uuid4())}), status
