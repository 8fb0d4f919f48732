"""A compiled source: one mapping file turned into functions of an event.

Built once at start by `files.load_sources`; on the request path only `split`, `wanted`,
`dedup_key` and `map` run, all pure.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import jmespath
from jmespath.exceptions import JMESPathError
from jmespath.parser import ParsedResult

from ..calling_hours import CallingHours
from ..recall import FIELDS, RecallInvalid, Target, validate_recall
from ..timerules import Caps
from . import converters
from .paths import missing_paths

Converter = Callable[[Any, datetime], str]
KEY_LIMIT = 255  # the dedup key column; a longer key is hashed, never cut (cut keys collide)


@dataclass(frozen=True)
class FieldRule:
    """How one recall field is made: path or constant, default, map, converter."""

    name: str
    path: ParsedResult | None = None
    value: str | None = None
    default: Any = None
    table: Mapping[str, Any] | None = None
    convert: Converter | None = None
    sensitive: bool = False  # a phone: never echo its value in a reason
    phone: tuple[str, str] | None = None  # (region, prefix) of a `phone:` converter

    def apply(self, event: Any, now: datetime) -> Any:
        """The field's value for `event`; raises ValueError with a reason that is safe to log."""
        try:
            value = self.value if self.path is None else self.path.search(event)
        except JMESPathError as err:  # its message quotes the value: not for a phone
            raise ValueError("the path failed on this event" if self.sensitive
                             else f"the path failed: {err}") from None
        if value is None or value == "":
            value = self.default
        if value is None or value == "":
            raise ValueError("no value (the path found nothing and there is no default)")
        if self.table is not None:
            key = str(value).lower() if isinstance(value, bool) else str(value)
            if key not in self.table:
                shown = "this value" if self.sensitive else repr(key)
                raise ValueError(f"{shown} is not in its map (known: {', '.join(self.table)})")
            value = self.table[key]
        return self.convert(value, now) if self.convert else value


@dataclass(frozen=True)
class Lookup:
    """Fetch an object from the CRM before mapping; done by the worker, never on the request."""

    kind: str
    object_id: ParsedResult
    token: str = field(repr=False)
    properties: tuple[str, ...]
    base_url: str
    into: str


@dataclass(frozen=True)
class Source:
    """Everything the bridge knows of one source, checked and compiled."""

    name: str
    description: str
    format: str
    verifier: Any  # auth.Verifier
    events: ParsedResult
    event_id: ParsedResult | None
    when: ParsedResult | None
    rules: tuple[FieldRule, ...]
    target: Target
    lookup: Lookup | None = None
    hours: CallingHours | None = None  # when a recall may ring; None: any time
    caps: Caps | None = None  # how often one lead may be called

    def split(self, payload: Any) -> list[Any]:
        """The events in one request body: a list, or the single object the path found."""
        found = self.events.search(payload)
        if found is None:
            return []
        return list(found) if isinstance(found, list) else [found]

    def wanted(self, event: Any) -> bool:
        """False when the mapping's `when` says this event is not a callback request."""
        return True if self.when is None else _truthy(self.when.search(event))

    def unwanted_reason(self, event: Any) -> str:
        """Why `when` is false for `event`: the expression, and the paths it reads that the
        event lacks (the usual cause: another subscription, or a body stripped for size)."""
        assert self.when is not None
        expression = " ".join(self.when.expression.split())
        shown = expression if len(expression) <= 160 else expression[:157] + "..."
        missing = missing_paths(self.when, event)
        return (f"ignored: the mapping's `when` is false ({shown})"
                + (f"; missing in the event: {', '.join(missing)}" if missing else ""))

    def dedup_key(self, event: Any, index: int, delivery_id: str | None,
                  hashed: bool = False) -> str:
        """The CRM's id for this event: `event_id`, else the sender's delivery id, else a hash
        of the event (always the hash with `hashed`)."""
        if self.event_id is not None and not hashed:
            found = self.event_id.search(event)
            if found not in (None, "", []):
                return _fit(str(found))
        if delivery_id:
            return _fit(f"{delivery_id}#{index}" if index else delivery_id)
        canonical = json.dumps(event, sort_keys=True, separators=(",", ":"), default=str)
        return _sha256(canonical)

    def map(self, event: Any, now: datetime) -> dict[str, str]:
        """The five recall fields, validated; RecallInvalid says which field failed and why."""
        values: dict[str, Any] = {}
        errors: dict[str, list[str]] = {}
        for rule in self.rules:
            try:
                values[rule.name] = rule.apply(event, now)
            except ValueError as err:
                errors[rule.name] = [str(err)]
        if errors:
            raise RecallInvalid(errors)
        return validate_recall(values)


def compile_rule(name: str, spec: Mapping[str, Any], timezone: str) -> FieldRule:
    """A validated FieldSpec (or {"value": ...} for a constant) -> a FieldRule."""
    if "value" in spec:
        return FieldRule(name=name, value=spec["value"])
    convert: Converter | None = None
    if spec.get("phone") is not None:
        opts = spec["phone"]
        convert = _phone(opts["region"], opts["prefix"])
    elif spec.get("date") is not None:
        opts = spec["date"]
        convert = _date(opts.get("timezone") or timezone, opts.get("format"))
    elif spec.get("digits"):
        convert = _digits
    path = spec.get("path")
    table = spec.get("map")
    return FieldRule(
        name=name,
        path=jmespath.compile(path) if path else None,
        default=spec.get("default"),
        table={str(k).lower() if isinstance(k, bool) else str(k): v for k, v in table.items()}
        if table is not None else None,
        convert=convert,
        sensitive=name == "recall_telephone",
        phone=(spec["phone"]["region"], spec["phone"]["prefix"]) if spec.get("phone") else None,
    )


def rules_for(recall: Mapping[str, Any], timezone: str) -> tuple[FieldRule, ...]:
    return tuple(compile_rule(name, recall[name], timezone) for name in FIELDS)


def _phone(region: str, prefix: str) -> Converter:
    def convert(value: Any, now: datetime) -> str:
        return converters.to_phone(value, region=region, prefix=prefix)
    return convert


def _date(timezone: str, fmt: str | None) -> Converter:
    def convert(value: Any, now: datetime) -> str:
        return converters.to_date(value, timezone=timezone, format=fmt, now=now)
    return convert


def _digits(value: Any, now: datetime) -> str:
    return converters.to_digits(value)


def _fit(key: str) -> str:
    return key if len(key) <= KEY_LIMIT else _sha256(key)


def _sha256(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _truthy(value: Any) -> bool:
    """JMESPath's own truth: false, null, "", [] and {} are false; everything else, 0 too, true."""
    return value not in (False, None, "", [], {}) or value == 0 and not isinstance(value, bool)
