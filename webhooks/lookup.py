"""Fetch the CRM object a thin event points at, then map it. Runs in the worker only.

HubSpot's webhooks API sends `contact.propertyChange` events with an object id and no phone;
the mapping's `lookup:` block names the object id path and the properties to fetch, and the
fetched properties are placed under `lookup.into` (default `contact`) beside the event.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any
from urllib.parse import quote

import requests

from .deadline import Call, CallAborted, deadline

# An object id a CRM gives: letters, digits and . _ : @ -, never "." or ".." alone, so that it
# can only ever name one object: it cannot climb out of the lookup's path or change its host.
_OBJECT_ID = re.compile(r"(?!\.{1,2}$)[A-Za-z0-9_.:@-]{1,128}")


class LookupRetry(Exception):
    """The CRM did not answer usefully now (transport, 429, 5xx, auth): retry with backoff,
    and not before `after` seconds when the CRM said so (429 Retry-After)."""

    def __init__(self, reason: str, after: float = 0.0):
        super().__init__(reason)
        self.after = after


class LookupFailed(Exception):
    """The object does not exist (404) or the event names none: the event fails."""


def object_id_of(value: Any) -> str:
    """`value` as an object id for a lookup URL, or LookupFailed saying why it is not one."""
    if value is None or value == "":
        raise LookupFailed("lookup: the event has no object id at the lookup's object_id path")
    text = str(value) if isinstance(value, int | str) and not isinstance(value, bool) else None
    if text is None or not _OBJECT_ID.fullmatch(text):
        shown = repr(value)[:40]
        raise LookupFailed(f"lookup: object id {shown} is not an id (letters, digits, . _ : @ -, "
                           "at most 128 characters)")
    return text


def fetch_and_map(source: Any, event: Any, session: requests.Session, now: datetime,
                  timeouts: tuple[float, float], call: Call | None = None) -> dict[str, str]:
    """The event's recall fields after fetching its object; raises the errors above or
    recall.RecallInvalid."""
    lookup = source.lookup
    object_id = object_id_of(lookup.object_id.search(event))
    url = f"{lookup.base_url}/crm/v3/objects/contacts/{quote(object_id, safe='')}"
    params = {"properties": ",".join(lookup.properties)} if lookup.properties else None
    try:
        with deadline(timeouts[1], call):
            response = session.get(url, params=params, timeout=timeouts,
                                   headers={"Authorization": f"Bearer {lookup.token}"})
    except CallAborted as err:
        raise LookupRetry(f"lookup: cut short: {err.why}") from None
    except requests.RequestException as err:
        raise LookupRetry(f"lookup: transport error: {type(err).__name__}") from None
    if response.status_code == 404:
        raise LookupFailed(f"lookup: contact {object_id} not found in HubSpot (404)")
    if response.status_code in (401, 403):
        raise LookupRetry(f"lookup: HubSpot refused the private app token (HTTP "
                          f"{response.status_code}); check the lookup's token and its scopes")
    if response.status_code == 429:
        after = response.headers.get("Retry-After", "")
        raise LookupRetry("lookup: HubSpot rate limit (HTTP 429)",
                          float(after) if after.replace(".", "", 1).isdigit() else 10.0)
    if response.status_code != 200:
        raise LookupRetry(f"lookup: HubSpot answered HTTP {response.status_code}")
    try:
        properties = response.json().get("properties") or {}
    except (ValueError, AttributeError):
        raise LookupRetry("lookup: HubSpot's answer is not JSON") from None
    enriched = {**event, lookup.into: properties} if isinstance(event, dict) else {
        "event": event, lookup.into: properties}
    return source.map(enriched, now)
