"""A HubSpot CRM API look-alike for tests: GET /crm/v3/objects/contacts/<id>, on loopback.

It answers as HubSpot does for the one call the bridge's lookup makes: a Bearer token check
(401), the contact's requested properties (`?properties=a,b`; a property the contact lacks is
null), 404 for an unknown id, and on demand an error status for the next calls.
"""

from __future__ import annotations

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
        super().__init__()

    # --- control -----------------------------------------------------------------------
    def _forget(self) -> None:
        self.contacts.clear()

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

        return app


def _error(status: int, category: str, message: str) -> ResponseReturnValue:
    return jsonify({"status": "error", "message": message, "category": category,
                    "correlationId": str(uuid.uuid4())}), status
