"""The recall contract: the five fields wolkvox needs, their validation, the date format, where
a recall goes (`Target`), and the request.

Pure functions of their input: no IO here. `wolkvox.py` sends what `request_parts` builds.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate

DATE_FORMAT = "%Y%m%d%H%M%S"  # wolkvox's recall_date
FIELDS = ("type_campaign", "campaign_id", "customer_id", "recall_telephone", "recall_date")
QUERY_FIELDS = ("type_campaign", "campaign_id")
BODY_FIELDS = ("recall_date", "recall_telephone", "customer_id")


@dataclass(frozen=True)
class Target:
    """Where and as whom to send: one wolkvox operation and its token."""

    base_url: str
    token: str = field(repr=False)
    timezone: str

    @property
    def key(self) -> str:
        """Stable fingerprint of (base URL, token): names the token in the store and in health
        output without revealing it."""
        return hashlib.sha256(f"{self.base_url}|{self.token}".encode()).hexdigest()[:16]


class RecallInvalid(ValueError):
    """The mapped fields do not make a recall wolkvox would accept; `errors` says per field."""

    def __init__(self, errors: Mapping[str, list[str]]):
        self.errors = {k: list(v) for k, v in errors.items()}
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in self.errors.items()))


def _real_date(value: str) -> None:
    if not _DIGITS_14.fullmatch(value):
        raise ValidationError("must be 14 digits, YYYYmmddHHMMSS")
    if not _is_date(value):
        raise ValidationError("is not a real date and time (YYYYmmddHHMMSS)")


_DIGITS_14 = re.compile(r"[0-9]{14}")


class RecallSchema(Schema):
    """What wolkvox-api.md says of each field, as checks with readable messages.

    Digits are ASCII 0-9 to the very end of the text: not any script's digits, and no trailing
    newline (which a `$` lets through); wolkvox takes neither."""

    type_campaign = fields.String(
        required=True,
        validate=validate.OneOf(["predictive"], error="must be 'predictive' "
                                "(wolkvox recalls work for predictive campaigns only)"))
    campaign_id = fields.String(required=True, validate=[
        validate.Regexp(r"[0-9]*\Z", error="must be a numeric id"),
        validate.Length(min=1, error="must not be empty"),
        validate.Length(max=18, error="is too long (at most 18 digits)")])
    customer_id = fields.String(required=True, validate=[
        validate.Length(min=1, error="must not be empty"),
        validate.Length(max=255, error="is too long (at most 255 characters)")])
    recall_telephone = fields.String(
        required=True,
        validate=validate.Regexp(r"[0-9]{5,20}\Z", error="must be 5 to 20 digits, nothing else"))
    recall_date = fields.String(required=True, validate=_real_date)


_SCHEMA = RecallSchema()


def validate_recall(values: Mapping[str, Any], partial: bool = False) -> dict[str, str]:
    """Return the five fields as strings, or raise RecallInvalid naming each bad field
    (with `partial`, only the fields given are checked and returned)."""
    data = {k: (str(v) if isinstance(v, int | float) and not isinstance(v, bool) else v)
            for k, v in values.items() if v is not None}
    try:
        return _SCHEMA.load(data, partial=partial)
    except ValidationError as err:
        raise RecallInvalid({k: _flat(v) for k, v in err.normalized_messages().items()}) from None


def request_parts(recall: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """(query parameters, JSON body) of the wolkvox PUT, as wolkvox-api.md shows them."""
    query = {"api": "recall", **{k: recall[k] for k in QUERY_FIELDS}}
    return query, {k: recall[k] for k in BODY_FIELDS}


def mask_phone(value: str | None) -> str:
    """Keep the last 3 digits only: enough to tell two leads apart, not enough to dial."""
    if not value:
        return ""
    return "*" * max(len(value) - 3, 0) + value[-3:]


def mask_recall(recall: dict[str, Any]) -> dict[str, Any]:
    """A copy of `recall` with its phone masked, to show."""
    return {**recall, "recall_telephone": mask_phone(recall["recall_telephone"])}


# A phone-length digit run: 7 to 15 digits (E.164's longest), which may be written with spaces,
# dots, dashes or brackets between them (at most two in a row) and a leading +.
_PHONE_IN_TEXT = re.compile(r"\+?(?<!\d)\d(?:[ .\-()]{0,2}\d){6,14}(?!\d)")

_ISO_DATE = re.compile(r"\d{4}-\d\d-\d\d(?:[ T]\d\d)?$")


def mask_phones_in(text: str) -> str:
    """Mask every phone-length digit run in `text` (wolkvox's msg repeats the phone, an error
    excerpt may quote one), keeping the last 3 digits. A 14-digit wolkvox date is left as is."""
    return _PHONE_IN_TEXT.sub(_mask_run, text or "")


def _mask_run(match: re.Match[str]) -> str:
    run = match.group(0)
    digits = re.sub(r"\D", "", run)
    if len(digits) == 14 and run.isdigit() and _is_date(digits) or _ISO_DATE.match(run):
        return run
    return mask_phone(digits)


def _is_date(digits: str) -> bool:
    """Whether 14 ASCII digits are a real date and time in DATE_FORMAT (the constructor's
    checks, as strptime's, at a tenth of its cost: it runs for every webhook)."""
    try:
        datetime(int(digits[:4]), int(digits[4:6]), int(digits[6:8]), int(digits[8:10]),
                 int(digits[10:12]), int(digits[12:14]))
    except ValueError:
        return False
    return True


def _flat(messages: Any) -> list[str]:
    if isinstance(messages, dict):
        return [m for v in messages.values() for m in _flat(v)]
    if isinstance(messages, list):
        return [str(m) for m in messages]
    return [str(messages)]
