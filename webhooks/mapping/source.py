"""A compiled source: one mapping file turned into functions of an event.

Built once at start by `files.load_sources`; on the request path only `split`, `wanted`,
`dedup_key` and `map` run, all pure.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any

import jmespath
from jmespath.exceptions import JMESPathError
from jmespath.parser import ParsedResult

from .. import reasons
from ..crm import formats
from ..crm.signatures import RequestHeaders, Verifier, strip
from ..recall import FIELDS, RecallInvalid, Target, validate_recall
from ..timing.calling_hours import CallingHours
from ..timing.rules import Caps
from . import converters
from .lookups import Lookup
from .paths import missing_paths, root_paths
from .writeback import Writeback

Converter = Callable[[Any, datetime, Any], str]  # (value, now, the event)
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
        return self.convert(value, now, event) if self.convert else value


@dataclass(frozen=True)
class CampaignRecord:
    """A mapping's `campaign_record:`: when the lead is added to the campaign, with what."""

    add: str  # missing | always
    status: str  # add_record's campaign_status
    rules: tuple[FieldRule, ...]

    def of(self, event: Any, now: datetime) -> tuple[dict[str, str], dict[str, list[str]]]:
        """The record's fields (customer_id apart) and the errors per field: a field whose
        path finds nothing is left out; one that fails its converter is an error; a record
        needs a phone."""
        values: dict[str, str] = {}
        errors: dict[str, list[str]] = {}
        for rule in self.rules:
            try:
                values[rule.name] = str(rule.apply(event, now))
            except ValueError as err:
                if not str(err).startswith("no value"):
                    errors[f"campaign_record.{rule.name}"] = [str(err)]
        if not errors and not any(name.startswith("tel") for name in values):
            errors["campaign_record.tel1"] = ["no phone: a record needs the number to dial"]
        return values, errors


@dataclass(frozen=True)
class Source:
    """Everything the bridge knows of one source, checked and compiled."""

    name: str
    description: str
    format: str
    verifier: Verifier
    events: ParsedResult
    event_id: ParsedResult | None
    when: ParsedResult | None
    rules: tuple[FieldRule, ...]
    target: Target
    lookup: Lookup | None = None
    rate: float | None = None  # requests per second to its CRM (outbound/rate_gate.py); None: any
    hours: CallingHours | None = None  # when a recall may ring; None: any time
    caps: Caps | None = None  # how often one lead may be called
    unflatten: bool = False  # form: bracketed keys as nested objects
    headers: tuple[str, ...] = ()  # request headers copied into each event (lower case)
    occurred_at: ParsedResult | None = None  # the CRM's time of the change
    handshake: tuple[ParsedResult, ParsedResult] | None = None  # (when, answer)
    answer_wait: float = 0.0  # answer after delivery, waiting at most this long
    answer_status: int = 202  # the HTTP status of an accepted request's answer (`answer.status`)
    writebacks: tuple[Writeback, ...] = ()  # what it tells its CRM of each callback
    record: CampaignRecord | None = None  # adds the lead to the campaign (add_record)

    def notices(self, moment: str) -> tuple[str, ...]:
        """The names of its write-backs that are on for `moment`."""
        return tuple(w.name for w in self.writebacks if moment in w.moments and not w.off)

    def writeback(self, name: str) -> Writeback | None:
        return next((w for w in self.writebacks if w.name == name), None)

    def parse(self, body: bytes, content_type: str | None) -> Any:
        """The body in this source's format (FormatError when it cannot be read)."""
        payload = formats.parse_body(self.format, body, content_type)
        return formats.unflatten(payload) if self.unflatten else payload

    def events_of(self, payload: Any) -> list[Any]:
        """The events of a parsed body, its secret field removed first (a secret is not an
        event's data); JMESPathError when `events` fails on it."""
        self.strip_secret(payload)
        return self.split(payload)

    def strip_secret(self, payload: Any) -> None:
        """Remove the body field that carries the source's secret, if its scheme has one."""
        if self.verifier.strip_field:
            strip(payload, self.verifier.strip_field)

    def with_headers(self, events: list[Any], headers: RequestHeaders) -> list[Any]:
        """Each event with the mapping's `headers:` beside it, as `headers.<name>` (only those
        named: no credential reaches the stored event)."""
        if not self.headers:
            return events
        chosen = {name: headers.get(name, "") for name in self.headers if name in headers}
        return [{**event, "headers": chosen} if isinstance(event, dict) else event
                for event in events]

    def handshake_answer(self, payload: Any) -> Any:
        """The body to answer with when `payload` is the CRM's handshake, else None."""
        if self.handshake is None:
            return None
        when, answer = self.handshake
        try:
            return answer.search(payload) if _truthy(when.search(payload)) else None
        except JMESPathError:
            return None

    def occurred(self, event: Any) -> float | None:
        """The CRM's time of the change in `event` (epoch s), or None when not told."""
        if self.occurred_at is None:
            return None
        try:
            return converters.to_epoch(self.occurred_at.search(event))
        except (JMESPathError, ValueError, OverflowError):  # ConversionError is a ValueError
            return None

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
        missing = missing_paths(self._when_paths, event)
        if missing:
            return reasons.IGNORED_WHEN_MISSING(expression=shown, missing=", ".join(missing))
        return reasons.IGNORED_WHEN(expression=shown)

    @cached_property
    def _when_paths(self) -> list[ParsedResult]:
        """The paths `when` reads from an event, found once."""
        return root_paths(self.when) if self.when is not None else []

    def dedup_key(self, event: Any, index: int, delivery_id: str | None,
                  hashed: bool = False) -> str:
        """The CRM's id for this event: `event_id`, else the sender's delivery id, else a hash
        of the event (always the hash with `hashed`)."""
        if self.event_id is not None and not hashed:
            found = self.event_id.search(event)
            if found not in (None, "", []):
                return fit_key(str(found))
        if delivery_id:
            return fit_key(f"{delivery_id}#{index}" if index else delivery_id)
        canonical = json.dumps(event, sort_keys=True, separators=(",", ":"), default=str)
        return _sha256(canonical)

    def lead_of(self, event: Any, now: datetime) -> tuple[str, str] | None:
        """(campaign_id, customer_id) as the mapping makes them for `event`, whatever `when`
        says and whatever the other fields hold, so that an ignored or invalid event is found
        by its lead. None when no valid customer id comes out; the campaign is "" when it
        cannot be made (a stage map that does not know the value, a lookup's field). Never
        raises for what the event holds."""
        found: dict[str, str] = {}
        for rule in self.rules:
            if rule.name not in ("campaign_id", "customer_id"):
                continue
            try:
                found[rule.name] = validate_recall({rule.name: rule.apply(event, now)},
                                                   partial=True)[rule.name]
            except (ValueError, RecallInvalid, JMESPathError, TypeError):
                continue
        if "customer_id" not in found:
            return None
        return found.get("campaign_id", ""), found["customer_id"]

    def asked_date(self, event: Any) -> str | None:
        """The callback time `event` asks for, as the CRM sent it ("" for none: "as soon as
        possible" is a request of its own), before any default or conversion; None when the
        mapping cannot tell (a constant, a lookup source whose value is in the CRM's record,
        or a path that fails). Two requests asking the same are the same request."""
        if self.lookup is not None:
            return None
        rule = next(r for r in self.rules if r.name == "recall_date")
        if rule.path is None:
            return None
        try:
            value = rule.path.search(event)
        except JMESPathError:
            return None
        return "" if value in (None, "") else json.dumps(value, sort_keys=True, default=str)

    def map(self, event: Any, now: datetime) -> dict[str, str]:
        """The five recall fields, validated; RecallInvalid says which field failed and why."""
        values: dict[str, Any] = {}
        errors: dict[str, list[str]] = {}
        for rule in self.rules:
            try:
                values[rule.name] = rule.apply(event, now)
            except ValueError as err:
                errors[rule.name] = [str(err)]
        if self.record is not None:
            errors.update(self.record.of(event, now)[1])
        if errors:
            raise RecallInvalid(errors)
        return validate_recall(values)

    def record_of(self, event: Any, now: datetime, customer_id: str) -> dict[str, str]:
        """The campaign record for `event` (its customer_id the recall's); RecallInvalid."""
        if self.record is None:
            raise ValueError(f"source {self.name} adds no record")  # a caller's bug
        values, errors = self.record.of(event, now)
        if errors:
            raise RecallInvalid(errors)
        return {"customer_id": customer_id, **values}


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
        zone_from = opts.get("timezone_from")
        convert = _date(opts.get("timezone") or timezone, opts.get("format"),
                        jmespath.compile(zone_from) if zone_from else None, opts.get("timezones"))
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
    def convert(value: Any, now: datetime, event: Any) -> str:
        return converters.to_phone(value, region=region, prefix=prefix)
    return convert


def _date(timezone: str, fmt: str | None, zone_from: ParsedResult | None = None,
          zones: Mapping[str, str] | None = None) -> Converter:
    def convert(value: Any, now: datetime, event: Any) -> str:
        read_in = None
        if zone_from is not None:  # the zone the CRM sent with the value, when it did
            given = zone_from.search(event)
            if given not in (None, ""):
                key = str(given)
                if zones is not None and key not in zones:
                    raise converters.ConversionError(
                        f"time zone id {key[:20]!r} is not in the date's `timezones` table")
                read_in = zones[key] if zones is not None else key
                converters.check_timezone(read_in)
        # read in the CRM's zone, written in the operation's (what wolkvox and the rules read)
        return converters.to_date(value, timezone=timezone, format=fmt, now=now,
                                  read_in=read_in)
    return convert


def _digits(value: Any, now: datetime, event: Any) -> str:
    return converters.to_digits(value)


def fit_key(key: str) -> str:
    """A dedup key the column takes: as it is, or hashed when longer (never cut)."""
    return key if len(key) <= KEY_LIMIT else _sha256(key)


def _sha256(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _truthy(value: Any) -> bool:
    """JMESPath's own truth: false, null, "", [] and {} are false; everything else, 0 too, true."""
    return value not in (False, None, "", [], {}) or value == 0 and not isinstance(value, bool)
