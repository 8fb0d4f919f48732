"""What the admin API takes and answers, as marshmallow schemas: the OpenAPI document is made
from these, and every answer is dumped through them, so the two cannot drift apart.

Times are ISO 8601 (answers in UTC); a time given without an offset is read as UTC. Phones are
masked (the last 3 digits) everywhere but the reveal action's answer.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate

from ...lifecycle import Status
from ...store import MAX_ID
from ...store.texts import UNSTORABLE
from ..operations import BULK_STATUSES
from ..overview import HOURS, WEEK

PAGE_LIMIT = 200  # events one page may hold


class Epoch(fields.DateTime):
    """Epoch seconds in the store, an ISO 8601 UTC time in the answer."""

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        if isinstance(value, int | float):
            value = datetime.fromtimestamp(value, UTC)
        return super()._serialize(value, attr, obj, **kwargs)


def _time(**kwargs: Any) -> fields.Field:
    return fields.AwareDateTime(default_timezone=UTC, **kwargs)


def _not_blank(value: str) -> None:
    if not value.strip():
        raise ValidationError("must not be blank")


class Text(fields.String):
    """A string a database can compare and store: no NUL character and no unpaired
    surrogate (PostgreSQL refuses both; JSON can carry them). The document says so with a
    `pattern` (NUL only: JSON Schema patterns cannot name surrogates)."""

    def __init__(self, *args: Any, pattern: str = "^[^\\x00]*$", **kwargs: Any) -> None:
        kwargs["metadata"] = {"pattern": pattern, **kwargs.get("metadata", {})}
        super().__init__(*args, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        if UNSTORABLE.search(text):
            raise ValidationError("must not contain a NUL character or an unpaired surrogate")
        return text


class StrictBoolean(fields.Boolean):
    """JSON's true or false and nothing else: marshmallow's Boolean also takes "yes", 1 and
    "on", which the document (type: boolean) does not say."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


# --- errors ----------------------------------------------------------------------------------
class ErrorSchema(Schema):
    """Every error answer: the status, a message for a person, and per-field errors when the
    request's parameters or body were refused."""

    code = fields.Integer(required=True, metadata={"description": "the HTTP status"})
    status = fields.String(required=True, metadata={"description": "its name"})
    message = fields.String(metadata={"description": "what went wrong, and the fix"})
    errors = fields.Dict(metadata={"description": "per location and field: what is wrong"})


# --- events ----------------------------------------------------------------------------------
class EventQuery(Schema):
    status = Text(validate=validate.OneOf([s.value for s in Status]))
    source = Text(validate=validate.Length(max=64))
    since = _time(metadata={"description": "created at or after (ISO 8601)"})
    until = _time(metadata={"description": "created before (ISO 8601)"})
    customer_id = Text(validate=validate.Length(max=255))
    phone = Text(validate=validate.Length(max=64), metadata={
        "description": "as a person types it; matched in each source's normalization"})
    result = Text(validate=validate.Length(max=32), metadata={
        "description": "the call's result: wolkvox's word (ANSWER, BUSY, NO-ANSWER...), "
                       "awaiting, missing (no result reported), replaced, or none"})
    before = fields.Integer(validate=validate.Range(1, MAX_ID), metadata={
        "description": "only events with a smaller id: the previous page's next_before"})
    limit = fields.Integer(load_default=50, validate=validate.Range(1, PAGE_LIMIT))


class ReasonedSchema(Schema):
    """A stored reason: its English text, and its code and parameters (null on rows written
    before codes, and on free texts) for a client that shows it in its own language."""

    reason = fields.String(required=True, metadata={"description": "why, in English"})
    reason_code = fields.String(required=True, allow_none=True, metadata={
        "description": "the reason's kind (the same code always names the same reason)"})
    reason_params = fields.Dict(keys=fields.String(), required=True, allow_none=True, metadata={
        "description": "the reason's parameters by name; a nested reason is an object with "
                       "code, params and text"})


class EventRowSchema(ReasonedSchema):
    id = fields.Integer(required=True)
    source = fields.String(required=True)
    status = fields.String(required=True)
    customer_id = fields.String(required=True, allow_none=True)
    phone = fields.String(required=True, allow_none=True, metadata={"description": "masked"})
    reason = fields.String(required=True, metadata={"description": "why it is in its status"})
    failed_attempts = fields.Integer(required=True, metadata={
        "description": "failures counted toward the backoff"})
    created_at = Epoch(required=True)
    updated_at = Epoch(required=True)
    next_attempt_at = Epoch(required=True)
    call_result = fields.String(required=True, allow_none=True, metadata={
        "description": "how the recall's call went, wolkvox's word as its report gives it "
                       "(ANSWER, NO-ANSWER, BUSY, ANSWER-MACHINE...); null until reported"})
    called_at = Epoch(required=True, allow_none=True, metadata={
        "description": "when the call was made, as wolkvox's report dates it"})
    result_state = fields.String(required=True, allow_none=True, metadata={
        "description": "awaiting, reported, missing (no result within "
                       "CALL_RESULTS_MAX_WAIT), replaced (a newer recall awaits); null: not "
                       "asked about"})


class EventPageSchema(Schema):
    events = fields.List(fields.Nested(EventRowSchema), required=True)
    next_before = fields.Integer(required=True, allow_none=True, metadata={
        "description": "pass as `before` for the next page; null on the last one"})


class AttemptSchema(ReasonedSchema):
    id = fields.Integer(required=True)
    at = Epoch(required=True)
    outcome = fields.String(required=True)
    latency_ms = fields.Float(required=True, allow_none=True)
    http_status = fields.Integer(required=True, allow_none=True)
    wolkvox_code = fields.Integer(required=True, allow_none=True)
    wolkvox_msg = fields.String(required=True, allow_none=True, metadata={
        "description": "wolkvox's answer, phones masked"})


class WritebackSchema(ReasonedSchema):
    id = fields.Integer(required=True)
    name = fields.String(required=True, metadata={"description": "the mapping's entry"})
    moment = fields.String(required=True, metadata={
        "description": "what it tells: scheduled, failed, expired or called"})
    status = fields.String(required=True, metadata={
        "description": "queued, sending, done or failed (the event's own status never "
                       "changes for it)"})
    attempts = fields.Integer(required=True)
    created_at = Epoch(required=True)
    updated_at = Epoch(required=True)
    sent_at = Epoch(required=True, allow_none=True)
    http_status = fields.Integer(required=True, allow_none=True, metadata={
        "description": "the CRM's last answer"})
    answer = fields.String(required=True, allow_none=True, metadata={
        "description": "what the CRM said, short, phones masked (the created note's id)"})


class WritebackRetrySchema(Schema):
    source = Text(validate=validate.Length(max=64))
    ids = fields.List(fields.Integer(validate=validate.Range(1, MAX_ID)),
                      validate=validate.Length(max=1000))


class WritebackRetriedSchema(Schema):
    queued = fields.List(fields.Integer(), required=True, metadata={
        "description": "the failed write-backs queued again"})


class AuditEntrySchema(Schema):
    id = fields.Integer(required=True)
    at = Epoch(required=True)
    actor = fields.String(required=True)
    action = fields.String(required=True)
    event_id = fields.Integer(required=True, allow_none=True)
    detail = fields.String(required=True)


class EventSchema(EventRowSchema):
    dedup_key = fields.String(required=True)
    token = fields.String(required=True, metadata={"description": "the token's fingerprint"})
    requeued_at = Epoch(required=True, allow_none=True)
    scheduled_for = Epoch(required=True, allow_none=True)
    raw = fields.Raw(required=True, allow_none=True, metadata={
        "description": "the event as the CRM sent it, phone-length digit runs masked"})
    recall = fields.Dict(keys=fields.String(), values=fields.String(), required=True,
                         allow_none=True, metadata={"description": "phone masked"})
    attempts = fields.List(fields.Nested(AttemptSchema), required=True)
    writebacks = fields.List(fields.Nested(WritebackSchema), required=True, metadata={
        "description": "what the bridge told (or is telling) the CRM of this callback"})
    audit = fields.List(fields.Nested(AuditEntrySchema), required=True)


class RetrySchema(Schema):
    at = Text(validate=validate.Length(min=1, max=64), metadata={
        "description": "call back at this time (ISO 8601, or YYYYmmddHHMMSS in the source's "
                       "time zone); default: the earliest time the rules allow"})


class CancelSchema(Schema):
    reason = Text(required=True, validate=[validate.Length(max=1000), _not_blank],
                  pattern="^[^\\x00]*[^\\s\\x00][^\\x00]*$")


class ActionSchema(Schema):
    id = fields.Integer(required=True)
    status = fields.String(required=True, metadata={"description": "the event's status now"})
    message = fields.String(required=True)


class RevealSchema(Schema):
    id = fields.Integer(required=True)
    phone = fields.String(required=True, allow_none=True, metadata={
        "description": "in full; null when the event has none"})


class BulkRetrySchema(Schema):
    status = Text(required=True, validate=validate.OneOf(BULK_STATUSES))
    source = Text(validate=validate.Length(max=64))
    since = _time()
    until = _time()
    confirm = StrictBoolean(load_default=False, metadata={
        "description": "false: only count (a preview); true: retry them"})


class BulkResultSchema(Schema):
    matched = fields.Integer(required=True, metadata={
        "description": "events the filter selects (counted up to 100000; 100001: more)"})
    confirmed = fields.Boolean(required=True)
    queued = fields.Integer(metadata={"description": "after a confirmed retry"})
    refused = fields.Integer(metadata={"description": "after a confirmed retry"})
    reasons = fields.List(fields.String(), metadata={"description": "the first few refusals"})


class AuditQuery(Schema):
    event_id = fields.Integer(validate=validate.Range(1, MAX_ID))
    limit = fields.Integer(load_default=100, validate=validate.Range(1, 1000))


class AuditLogSchema(Schema):
    entries = fields.List(fields.Nested(AuditEntrySchema), required=True)


# --- the overview ----------------------------------------------------------------------------
# Dumped from operators/overview.py's read model, the console's overview's too: the attribute
# each field reads is named where the API's name differs.
_DAYS = "in the operation's time zone (WOLKVOX_TIMEZONE)"


def _counts(attribute: str, description: str) -> fields.Dict:
    return fields.Dict(keys=fields.String(), values=fields.Integer(), required=True,
                       attribute=attribute, metadata={"description": description})


class CallDaySchema(Schema):
    day = fields.String(required=True, metadata={"description": f"YYYY-MM-DD {_DAYS}"})
    reported = fields.Integer(required=True, metadata={
        "description": "call results wolkvox's report gave for calls made that day"})
    answered = fields.Integer(required=True, metadata={
        "description": "of which the customer answered (ANSWER)"})


class SourceCountsSchema(Schema):
    source = fields.String(required=True, attribute="name")
    today = _counts("today.by_status", f"events created since midnight {_DAYS}, by status")
    week = _counts("week.by_status", f"events created in the last {WEEK} days {_DAYS}: today "
                   f"and the {WEEK - 1} days before, from `week_since`; by status")
    calls = fields.List(fields.Nested(CallDaySchema), required=True, metadata={
        "description": "per day of the week with call results, newest first: how many "
                       "callbacks were called and answered"})


class HoldSchema(ReasonedSchema):
    kind = fields.String(required=True)
    since = Epoch(required=True)
    until = Epoch(required=True)
    active = fields.Constant(True, required=True, metadata={
        "type": "boolean", "description": "always true: a hold whose time has passed is "
                                          "not shown (the token shows `hold: null`)"})


class TokenSchema(Schema):
    token = fields.String(required=True, attribute="key", metadata={
        "description": "the token's fingerprint"})
    sources = fields.List(fields.String(), required=True, metadata={
        "description": "the configured sources that send through it"})
    in_flight = fields.Integer(required=True)
    max_in_flight = fields.Integer(required=True)
    quota_day = fields.String(required=True, metadata={
        "description": "the quota's day (YYYY-MM-DD) in the token's time zone"})
    quota_used = fields.Integer(required=True)
    quota_limit = fields.Integer(required=True, allow_none=True, metadata={
        "description": "WOLKVOX_DAILY_LIMIT; null when unknown"})
    hold = fields.Nested(HoldSchema, required=True, allow_none=True, metadata={
        "description": "the hold in force; null when the token is not held now"})
    queued = fields.Integer(required=True)
    oldest_due_age_seconds = fields.Function(
        lambda token: None if token.oldest_wait is None else round(token.oldest_wait, 1),
        required=True, allow_none=True, metadata={
            "type": "number", "description": "how long the oldest due event has waited "
                                             "since it was stored; null: nothing due"})


class HourSchema(Schema):
    hour = Epoch(required=True, attribute="start")
    received = fields.Integer(required=True)
    delivered = fields.Integer(required=True)


class OverviewSchema(Schema):
    now = Epoch(required=True)
    timezone = fields.String(required=True, metadata={
        "description": "WOLKVOX_TIMEZONE: the days of `today` and `week` are its days"})
    today_since = Epoch(required=True, metadata={"description": "local midnight today"})
    week_since = Epoch(required=True, metadata={
        "description": f"local midnight {WEEK - 1} days ago"})
    sources = fields.List(fields.Nested(SourceCountsSchema), required=True, metadata={
        "description": "every configured source, with or without events, and any other "
                       "whose events fall in the week; by name"})
    tokens = fields.List(fields.Nested(TokenSchema), required=True, metadata={
        "description": "the tokens the configured sources send through"})
    hourly = fields.List(fields.Nested(HourSchema), required=True, attribute="hours",
                         metadata={"description": f"the last {HOURS} hours, the current one "
                                                  "last; test captures are not received"})


# --- sources ---------------------------------------------------------------------------------
class SourceSchema(Schema):
    name = fields.String(required=True)
    description = fields.String(required=True)
    url = fields.String(required=True, metadata={"description": "the URL the CRM calls"})
    capture_url = fields.String(required=True, metadata={
        "description": "judged like the real one, stored as `test`, never sent"})
    format = fields.String(required=True)
    auth = fields.String(required=True, metadata={"description": "the auth scheme"})
    token = fields.String(required=True, metadata={"description": "the wolkvox token's "
                                                   "fingerprint"})
    timezone = fields.String(required=True)
    calling_hours = fields.String(required=True, allow_none=True)
    lookup = fields.String(required=True, allow_none=True, metadata={
        "description": "the CRM lookup done before mapping, if any"})


class SourceListSchema(Schema):
    sources = fields.List(fields.Nested(SourceSchema), required=True)


class TrySchema(Schema):
    """A sample body: raw text (a string, read as the source's format), or JSON (any other
    value, sent as a JSON body)."""

    body = fields.Raw(required=True, allow_none=True, metadata={
        "description": "the body: a string is the raw text; anything else is JSON"})
    content_type = Text(validate=validate.Length(max=200), metadata={
        "description": "the raw text's Content-Type; default: the source's format's"})


class PlanSchema(Schema):
    action = fields.String(required=True, metadata={"description": "send, expired or refused"})
    recall_date = fields.String(required=True, allow_none=True, metadata={
        "description": "what would be sent now"})
    note = fields.String(required=True, metadata={"description": "why the date moved, or why "
                                                  "it would not be sent"})


class VerdictSchema(Schema):
    index = fields.Integer(required=True)
    status = fields.String(required=True, metadata={
        "description": "what it would be stored as: queued, ignored or invalid"})
    dedup_key = fields.String(required=True)
    reason = fields.String(required=True)
    errors = fields.Dict(keys=fields.String(), values=fields.List(fields.String()),
                         required=True, metadata={"description": "per recall field"})
    recall = fields.Dict(keys=fields.String(), values=fields.String(), required=True,
                         allow_none=True, metadata={"description": "phone masked; null when "
                                                    "invalid, ignored or after a lookup"})
    plan = fields.Nested(PlanSchema, required=True, allow_none=True)


class TryResultSchema(Schema):
    source = fields.String(required=True)
    error = fields.String(required=True, allow_none=True, metadata={
        "description": "why the body cannot be split into events (unreadable in the "
                       "source's format, or the mapping's `events` path fails); null if it can"})
    events = fields.List(fields.Nested(VerdictSchema), required=True)
    note = fields.String(required=True, allow_none=True)
