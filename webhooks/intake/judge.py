"""One event of a request body to the event ready to store: made storable, judged, mapped.

Pure functions of their input. The intake pipeline (pipeline.py: the hook, the capture URL,
`mappings try`, the console's playground, the API's try) and `events retry` all judge events
here, so they all say the same thing about one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from jmespath.exceptions import JMESPathError

from .. import reasons
from ..lifecycle import Status
from ..mapping.lookups import ObjectIdInvalid, object_id_of
from ..mapping.source import Source
from ..recall import RecallInvalid
from ..store.events import NewEvent, text


@dataclass(frozen=True)
class Verdict:
    """One event judged: what to store, and, when the mapping failed, the errors per field."""

    event: NewEvent
    errors: dict[str, list[str]] = field(default_factory=dict)


def judge(source: Source, event: Any, index: int, delivery_id: str | None,
          now: datetime) -> NewEvent:
    """One event as it will be stored: queued (mapped, or waiting for its lookup), ignored
    (`when` is false) or invalid, each with its reason. Never raises for what the event holds."""
    return verdict(source, event, index, delivery_id, now).event


def verdict(source: Source, event: Any, index: int, delivery_id: str | None,
            now: datetime) -> Verdict:
    """`judge`, with the mapping's errors per field when it failed (for `mappings try` and the
    console's playground)."""
    event, unstorable = storable(event)
    common = {"source": source.name, "token_key": source.target.key, "raw": event,
              "occurred_at": source.occurred(event)}
    # an ignored or invalid event keeps its lead too, to be found by its customer (made
    # only then: a mapped event's lead is its recall's)
    def lead() -> tuple[str, str] | None:
        return source.lead_of(event, now)

    try:
        common["dedup_key"] = source.dedup_key(event, index, delivery_id)
    except JMESPathError as err:
        common["dedup_key"] = source.dedup_key(event, index, None, hashed=True)
        return _invalid(common, reasons.INVALID_EVENT_ID(error=str(err)), lead=lead())
    if unstorable:
        return _invalid(common, reasons.INVALID_UNSTORABLE(paths=", ".join(unstorable[:5])),
                        lead=lead())
    try:
        wanted = source.wanted(event)
    except JMESPathError as err:  # kept as invalid, for replay after a fix
        return _invalid(common, reasons.INVALID_WHEN(error=str(err)), lead=lead())
    if not wanted:
        return Verdict(NewEvent(**common, status=Status.IGNORED, lead=lead(),
                                reason=source.unwanted_reason(event)))
    if source.lookup is not None:  # mapped in the worker, after the CRM lookup
        try:
            object_id = object_id_of(source.lookup.object_id.search(event))
        except (ObjectIdInvalid, JMESPathError) as err:
            return _invalid(common, reasons.INVALID(error=reasons.of_error(err)), lead=lead())
        return Verdict(NewEvent(**common, reason=reasons.WAITING_LOOKUP(),
                                lead=("", f"{source.name}:{object_id}")))
    try:
        return Verdict(NewEvent(**common, recall=source.map(event, now)))
    except RecallInvalid as err:
        return _invalid(common, reasons.INVALID(error=str(err)), err.errors, lead=lead())


def _invalid(common: dict[str, Any], reason: str,
             errors: dict[str, list[str]] | None = None,
             lead: tuple[str, str] | None = None) -> Verdict:
    return Verdict(NewEvent(**common, status=Status.INVALID, reason=reason, lead=lead),
                   errors or {})


def storable(value: Any) -> tuple[Any, list[str]]:
    """`value` with every NUL and unpaired surrogate replaced by U+FFFD, and the paths where
    one was found (`properties.phone.value`, `[2].id`). Values without one are returned as is."""
    problems: list[str] = []
    return _clean(value, "", problems), problems


def _clean(value: Any, path: str, problems: list[str]) -> Any:
    if isinstance(value, str):
        cleaned = text(value)
        if cleaned is not value:
            problems.append(path or "the event")
        return cleaned
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            name = _clean(key, f"{path}.<key>" if path else "<key>", problems)
            out[name] = _clean(item, f"{path}.{name}" if path else str(name), problems)
        return out
    if isinstance(value, list):
        return [_clean(item, f"{path}[{i}]", problems) for i, item in enumerate(value)]
    return value
