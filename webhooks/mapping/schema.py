"""The mapping file's schema: what keys a `mappings/<source>.yaml` may hold and what they mean.

Validation happens once, at start; a mistake comes back as `key: what is expected`, and
`files.py` puts the file name in front.
"""

from __future__ import annotations

from typing import Any

import jmespath
from jmespath.exceptions import JMESPathError
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from ..crm.formats import FORMATS
from ..recall import FIELDS
from .converters import ConversionError, check_region, check_timezone


def _jmespath(value: str) -> None:
    try:
        jmespath.compile(value)
    except JMESPathError as err:
        raise ValidationError(f"not a valid JMESPath expression ({_first_line(err)})") from None


def _timezone(value: str) -> None:
    try:
        check_timezone(value)
    except ConversionError as err:
        raise ValidationError(str(err)) from None


def _region(value: str) -> None:
    try:
        check_region(value)
    except ConversionError as err:
        raise ValidationError(str(err)) from None


class PathField(fields.String):
    """A JMESPath expression, compiled to check it."""

    def __init__(self, **kwargs: Any):
        super().__init__(validate=_jmespath, **kwargs)


class PhoneOptions(Schema):
    region = fields.String(required=True, validate=_region,
                           metadata={"help": "ISO region of national numbers, e.g. CO"})
    prefix = fields.String(load_default="", validate=validate.Regexp(
        r"^\d*$", error="must be digits (the route digit wolkvox dials first, e.g. '9')"))


class DateOptions(Schema):
    timezone = fields.String(load_default=None, validate=_timezone)
    format = fields.String(load_default=None)
    # the time zone the CRM sent with the value (Pipedrive's timezone_id): a JMESPath into the
    # event, read as a zone name, or through `timezones` (the CRM's ids to zone names)
    timezone_from = PathField(load_default=None)
    timezones = fields.Dict(keys=fields.String(), values=fields.String(validate=_timezone),
                            load_default=None)


class FieldSpec(Schema):
    """One recall field: `path` or `default`, then `map`, then one converter."""

    path = PathField(load_default=None)
    default = fields.Raw(load_default=None)
    map = fields.Dict(keys=fields.Raw(), values=fields.Raw(), load_default=None)
    phone = fields.Nested(PhoneOptions, load_default=None)
    date = fields.Nested(DateOptions, load_default=None)
    digits = fields.Boolean(load_default=False)

    @validates_schema
    def _one_source_one_converter(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("path") is None and data.get("default") is None:
            raise ValidationError("needs `path` (JMESPath into the event) or `default`")
        converters = [k for k in ("phone", "date") if data.get(k) is not None]
        converters += ["digits"] if data.get("digits") else []
        if len(converters) > 1:
            raise ValidationError(f"takes one converter, got {' and '.join(converters)}")


class ScalarOrSpec(fields.Field):
    """A recall field: a plain scalar (a constant) or a FieldSpec mapping."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, dict):
            return FieldSpec().load(value)
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            return {"value": str(value)}
        raise ValidationError("expected a constant, or a mapping with path/default/map and "
                              "one of phone/date/digits")


class RecallSpec(Schema):
    type_campaign = ScalarOrSpec(required=True)
    campaign_id = ScalarOrSpec(required=True)
    customer_id = ScalarOrSpec(required=True)
    recall_telephone = ScalarOrSpec(required=True)
    recall_date = ScalarOrSpec(required=True)


class AuthBlock(fields.Dict):
    """The `auth:` block; its scheme's own options are checked by auth.build_verifier."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        value = super()._deserialize(value, attr, data, **kwargs)
        if "scheme" not in value:
            raise ValidationError("needs `scheme` (hubspot, salesforce, standard-webhooks, hmac, "
                                  "basic, token or none)")
        return value


class WolkvoxBlock(Schema):
    """Per-source overrides, for one bridge serving several wolkvox operations."""

    server = fields.String(validate=validate.Regexp(r"^\d{1,4}$", error="must be up to 4 digits"))
    token = fields.String(validate=validate.Length(min=1))
    timezone = fields.String(validate=_timezone)
    base_url = fields.String(validate=validate.Length(min=1))


class LookupStepBlock(Schema):
    """One GET to the CRM: `url` with `{id}` filled from the event, its answer (JSON) picked
    and placed in the event under `into`, for the recall fields (and the next step) to read."""

    url = fields.String(required=True, validate=validate.Regexp(
        r"^https?://[^{}]+(\{id\}[^{}]*)?$|^https?://[^{}]*\{id\}[^{}]*$",
        error="must be an http(s) URL with one {{id}} placeholder (the object's id)"))
    id = PathField(required=True)
    headers = fields.Dict(keys=fields.String(), values=fields.String(), load_default=dict)
    pick = PathField(load_default="@")
    into = fields.String(required=True, validate=validate.Regexp(
        r"^[A-Za-z_][A-Za-z0-9_]*$", error="must be a plain name (letters, digits, _)"))
    name = fields.String(load_default="")  # what it fetches, for reasons: "Kommo lead"


class LookupBlock(Schema):
    """Fetch what a thin event lacks (its phone, its date) from the CRM before mapping: one or
    two steps (Kommo: the lead, then its main contact). Done by the worker, never on the
    request. The older HubSpot form (kind: hubspot-contact, object_id, token, properties,
    base_url, into) is read as one step."""

    steps = fields.List(fields.Nested(LookupStepBlock), load_default=None,
                        validate=validate.Length(min=1, max=2, error="one or two steps"))
    kind = fields.String(load_default=None, validate=validate.OneOf(["hubspot-contact"]))
    object_id = PathField(load_default=None)
    token = fields.String(load_default=None, validate=validate.Length(min=1))
    properties = fields.List(fields.String(), load_default=list)
    base_url = fields.String(load_default="https://api.hubapi.com")
    into = fields.String(load_default="contact")

    @validates_schema
    def _steps_or_kind(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("steps") is None and data.get("kind") is None:
            raise ValidationError("needs `steps` (one or two GETs)")
        if data.get("kind") and not (data.get("object_id") and data.get("token")):
            raise ValidationError("kind: hubspot-contact needs object_id and token")


class HandshakeBlock(Schema):
    """A request that only proves the endpoint (monday.com's challenge): when `when` is true
    of the body, answer 200 with the JSON `answer` makes of it, and store nothing."""

    when = PathField(required=True)
    answer = PathField(required=True)


class AnswerBlock(Schema):
    """When the CRM gets its answer: once stored (default), or once delivered, waiting at most
    `wait` seconds (what ?wait= does, for a CRM that cannot add a query string); and the HTTP
    status of an accepted request's answer (202 by default; 200 for a CRM that retries anything
    else, as monday.com does)."""

    after = fields.String(load_default="stored", validate=validate.OneOf(
        ["stored", "delivered"], error="must be stored or delivered"))
    wait = fields.Float(load_default=10.0, validate=validate.Range(
        min=0, max=25, error="must be 0 to 25 seconds (CRMs wait 30 at most)"))
    status = fields.Integer(load_default=202, validate=validate.OneOf(
        [200, 201, 202], error="must be 200, 201 or 202 (a success the CRM accepts)"))


class MaxRecalls(Schema):
    """Contact caps per lead, counted in the store."""

    per_day = fields.Integer(load_default=None, validate=validate.Range(
        min=1, error="must be a whole number, at least 1"))
    per_week = fields.Integer(load_default=None, validate=validate.Range(
        min=1, error="must be a whole number, at least 1"))


class OAuth2Block(Schema):
    """A write-back's OAuth 2 credentials: a token fetched from `token_url` (client
    credentials, or a refresh token), cached per process, renewed before it expires and once
    on a 401, and sent in `header` as `prefix token`."""

    token_url = fields.String(required=True, validate=validate.Regexp(
        r"^https?://", error="must be an http(s) URL"))
    grant = fields.String(load_default="client_credentials", validate=validate.OneOf(
        ["client_credentials", "refresh_token"],
        error="must be client_credentials or refresh_token"))
    client_id = fields.String(required=True, validate=validate.Length(min=1))
    client_secret = fields.String(required=True, validate=validate.Length(min=1))
    refresh_token = fields.String(load_default=None)
    scope = fields.String(load_default=None)
    header = fields.String(load_default="Authorization")
    prefix = fields.String(load_default="Bearer")  # Zoho: Zoho-oauthtoken

    @validates_schema
    def _refresh_needs_its_token(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("grant") == "refresh_token" and not data.get("refresh_token"):
            raise ValidationError("grant: refresh_token needs `refresh_token`")


RECORD_FIELDS = ("customer_name", "customer_last_name", "id_type", "age", "gender", "country",
                 "state", "city", "zone", "address", "email", "tel_extra",
                 *(f"tel{n}" for n in range(1, 11)), *(f"opt{n}" for n in range(1, 13)))


class CampaignRecordBlock(Schema):
    """Put the lead into the campaign (wolkvox's add_record) so that its recall has a record
    to call: `missing` (when wolkvox refuses the recall for a customer it does not have) or
    `always` (before the lead's first recall); `off` turns it off (for ${NAME:-off})."""

    add = fields.String(required=True, validate=validate.OneOf(
        ["missing", "always", "off"], error="must be missing, always or off"))
    campaign_status = fields.String(load_default="start", validate=validate.Length(min=1))
    record_fields = fields.Dict(data_key="fields", keys=fields.String(validate=validate.OneOf(
        RECORD_FIELDS, error="is not a field of a wolkvox record (customer_name, tel1..tel10, "
        "opt1..opt12, email, ...; customer_id is the recall's)")), values=ScalarOrSpec(),
        required=True)

    @validates_schema
    def _a_phone(self, data: dict[str, Any], **_: Any) -> None:
        if not any(name.startswith("tel") for name in data.get("record_fields") or {}):
            raise ValidationError("fields: needs tel1 (the number the campaign dials)")


class WritebackEntry(Schema):
    """One write-back: when (`on:`) and the request that tells the CRM (writeback.py)."""

    name = fields.String(load_default=None, validate=validate.Regexp(
        r"^[A-Za-z0-9][A-Za-z0-9 _.-]{0,63}$",
        error="must be up to 64 letters, digits, spaces, _ . or -"))
    on = fields.Raw(required=True)
    method = fields.String(load_default="POST", validate=validate.OneOf(
        ["POST", "PUT", "PATCH", "post", "put", "patch"], error="must be POST, PUT or PATCH"))
    url = fields.String(required=True, validate=validate.Regexp(
        r"^https?://", error="must be an http(s) URL"))
    headers = fields.Dict(keys=fields.String(validate=validate.Regexp(
        r"^[A-Za-z0-9-]{1,64}$", error="must be a header name")), values=fields.Raw(),
        load_default=dict)
    json = fields.Raw(load_default=None)
    form = fields.Dict(keys=fields.String(), values=fields.Raw(), load_default=None)
    language = fields.String(load_default="es", validate=validate.OneOf(
        ["es", "en"], error="must be es or en"))
    secret_url = fields.Boolean(load_default=False)
    oauth2 = fields.Nested(OAuth2Block, load_default=None)

    @validates_schema
    def _moments_and_one_body(self, data: dict[str, Any], **_: Any) -> None:
        moments = data.get("on")
        listed = moments if isinstance(moments, list) else [moments]
        known = ("scheduled", "failed", "expired", "called")
        if not listed or any(m not in known for m in listed):
            raise ValidationError(f"on: must be one or more of {', '.join(known)}")
        if (data.get("json") is None) == (data.get("form") is None):
            raise ValidationError("needs `json` (a body of templates) or `form`, not both")


RATE_LIMIT = 1000.0  # requests per second: no CRM documents more for one app
RATE_HELP = (f"must be a number of requests per second, above 0 and at most {RATE_LIMIT:g} "
             "(e.g. rate: 10, or rate: 0.5 for one every 2 s); leave it out for no limit")


class MappingFile(Schema):
    description = fields.String(load_default="")
    format = fields.String(load_default="json", validate=validate.OneOf(FORMATS))
    auth = AuthBlock(required=True)
    events = PathField(load_default="@")
    event_id = PathField(load_default=None)
    when = PathField(load_default=None)
    lookup = fields.Nested(LookupBlock, load_default=None)
    # requests per second to the source's CRM (lookups, and write-backs next): the rate gate
    rate = fields.Float(load_default=None,
                        error_messages={"invalid": RATE_HELP, "special": RATE_HELP},
                        validate=validate.Range(min=0, max=RATE_LIMIT, min_inclusive=False,
                                                error=RATE_HELP))
    unflatten = fields.Boolean(load_default=False)  # form: bracketed keys as nested objects
    headers = fields.List(fields.String(validate=validate.Regexp(
        r"^[A-Za-z0-9-]{1,64}$", error="must be a header name")), load_default=list)
    # the CRM's time of the change: orders a lead's events
    occurred_at = PathField(load_default=None)
    handshake = fields.Nested(HandshakeBlock, load_default=None)
    answer = fields.Nested(AnswerBlock, load_default=None)
    recall = fields.Nested(RecallSpec, required=True)
    wolkvox = fields.Nested(WolkvoxBlock, load_default=dict)
    # a preset name, a mapping (see calling_hours.py), or none/false for no calling hours
    calling_hours = fields.Raw(load_default=None, allow_none=True)
    max_recalls = fields.Nested(MaxRecalls, load_default=None)
    # a lead the campaign does not have yet is added to it (wolkvox's add_record)
    campaign_record = fields.Nested(CampaignRecordBlock, load_default=None)
    # what the bridge tells the CRM of each callback (mapping/writeback.py)
    writeback = fields.List(fields.Nested(WritebackEntry), load_default=list)


assert set(RecallSpec().fields) == set(FIELDS)


def _first_line(err: Exception) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
