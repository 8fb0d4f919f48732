"""Value converters of the mapping language: `phone`, `date` and `digits`.

Pure functions of their input: no IO, no settings, no clock unless "now" is asked for. Each
raises ConversionError with a short reason for an operator, which never repeats the phone
number it refused (personal data that must not reach a log), nor any digit of it.
"""

import math
import re
import unicodedata
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any, TypeGuard
from zoneinfo import ZoneInfo, available_timezones

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumber, ValidationResult

from ..recall import DATE_FORMAT as RECALL_DATE_FORMAT

# |n| at or above this is epoch milliseconds, below it epoch seconds: 1e11 seconds is the year
# 5138 and 1e11 milliseconds is March 1973, so no callback date of this era is ambiguous.
EPOCH_MS_THRESHOLD = 1e11

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Microsoft's JSON date (Dataverse, WCF): "/Date(1795939200000)/" or "/Date(1795939200000-0500)/";
# the milliseconds are UTC, the offset only says where the writer was.
_MS_JSON_DATE = re.compile(r"/Date\((-?\d+)([+-]\d{4})?\)/")
_NUMBER = re.compile(r"[+-]?\d+(\.\d*)?")
_WOLKVOX_DATE = re.compile(r"\d{14}")


class ConversionError(ValueError):
    """A value could not be converted; str(error) says why, without echoing phone numbers."""


def check_region(code: str) -> None:
    """Raise ConversionError unless `code` is a region phonenumbers knows ("CO", "MX", "US")."""
    if isinstance(code, str) and code in phonenumbers.SUPPORTED_REGIONS:
        return
    hint = ""
    if isinstance(code, str) and code.upper() in phonenumbers.SUPPORTED_REGIONS:
        hint = f" (regions are upper case: {code.upper()!r})"
    raise ConversionError(
        f"unknown phone region {code!r}; expected a two-letter code such as CO, MX or US{hint}"
    )


def check_timezone(name: str) -> None:
    """Raise ConversionError unless `name` is a known IANA zone such as "America/Bogota"."""
    _zone(name)


def to_phone(value: Any, *, region: str, prefix: str = "") -> str:
    """Return a phone number in wolkvox dial format: `prefix` + national significant number.

    Accepts text in any usual form ("+57 300 123 4567", "300 123 4567", "(300) 123-4567",
    "573001234567", "0057 300 123 4567") or an int. With region CO and prefix "9" all of them
    give "93001234567".

    - Already prefixed input ("93001234567") is returned once prefixed, not twice: when the
      input is not a valid number as it stands, but its digits start with `prefix` and the
      rest is a valid number of `region`, that rest is used.
    - A valid number of another country ("+1 212 555 0100" with region CO) gives its country
      code followed by its national number ("12125550100"), without `prefix`: the prefix is
      the operation's route for domestic calls, and how an operation dials abroad is its own
      business; the country code keeps the number unambiguous.
    - Validity is checked with is_valid_number, not is_possible_number: wolkvox dials whatever
      it gets, so a number of the right length in an unassigned range is refused here, where
      an operator sees why, rather than burned as a failed call.

    Raises ConversionError for None, empty text, letters (vanity numbers, extensions),
    floats and other types, and numbers that are not valid.
    """
    check_region(region)
    if not isinstance(prefix, str) or not re.fullmatch(r"[0-9]*", prefix):
        raise ConversionError("phone prefix must be made of digits 0-9")
    text = _phone_text(value)
    home_code = phonenumbers.country_code_for_region(region)

    number = _parse(text, region)
    valid = _is_valid(number)  # checked once per candidate: it is the costly part
    digits = to_digits(text) if not valid else ""
    if not valid and digits.startswith("00"):
        # "0057 ..." means +57 to most people, but CO reads 005 as a carrier code.
        number = _parse("+" + digits[2:], region) or number
        valid = _is_valid(number)
    if not valid and prefix and digits.startswith(prefix) and "+" not in text:
        rest = _parse(digits[len(prefix) :], region)
        if _is_valid(rest) and rest.country_code == home_code:
            number, valid = rest, True
    if number is None or not valid:
        raise ConversionError(_invalid_phone_reason(number, text, region))

    national = phonenumbers.national_significant_number(number)
    if number.country_code == home_code:
        return prefix + national
    return f"{number.country_code}{national}"


def to_date(
    value: Any, *, timezone: str, format: str | None = None, now: datetime | None = None,
    read_in: str | None = None,
) -> str:
    """Return `value` as a wolkvox recall_date "YYYYmmddHHMMSS", wall time in `timezone`.

    A time without an offset is read in `read_in` (the zone the CRM sent with it) when given,
    else in `timezone`.

    Accepts, in this order of reading:
    - a datetime (naive: read in `timezone`) or a date (midnight in `timezone`);
    - an int or float: epoch seconds, or epoch milliseconds when abs(n) >= 1e11 (but a
      14-digit int is a wolkvox date, see below: as milliseconds it would be after 2286);
    - the text "now" (any case): the `now` argument, by default datetime.now(UTC);
    - text matching `format` (a strptime format), when given; it is tried before the forms
      below, so that an explicit "%Y%m%d" is not taken for epoch seconds;
    - 14 digits: already a wolkvox date, read in `timezone` (never taken for epoch);
    - other numeric text ("1795962600", "1795962600000", "1795962600.5"): epoch, as numbers
      (so a compact "20261130" needs format="%Y%m%d");
    - ISO 8601 with offset or Z, naive (read in `timezone`) or date-only (midnight).

    A naive time that does not exist in `timezone` (skipped by a DST jump) is moved to the
    real time after the jump. Past dates are converted as they are; the delivery rules decide
    what to do with them. Raises ConversionError for None, booleans, empty or unreadable text,
    and dates outside the years 1000-9999.
    """
    zone = _zone(timezone)
    moment = _to_datetime(value, format=format, now=now)
    if moment.tzinfo is None or moment.utcoffset() is None:
        moment = moment.replace(tzinfo=_zone(read_in) if read_in else zone)
    try:
        # Through UTC, because astimezone() to the zone a datetime already has is a no-op and
        # would leave a time inside a DST gap as it is.
        local = moment.astimezone(UTC).astimezone(zone)
    except OverflowError:
        raise ConversionError("date is out of range") from None
    if not 1000 <= local.year <= 9999:
        raise ConversionError("date is out of range (years 1000-9999)")
    return local.strftime(RECALL_DATE_FORMAT)


def to_epoch(value: Any) -> float | None:
    """`value` (any form `to_date` reads) as epoch seconds; None for an empty value. A naive
    time is read as UTC. Raises ConversionError when it cannot be read."""
    if value is None or value == "":
        return None
    moment = _to_datetime(value, format=None, now=None)
    if moment.tzinfo is None or moment.utcoffset() is None:
        moment = moment.replace(tzinfo=UTC)
    try:  # in UTC too: its date there must exist (0001-01-01T00:00+05:00 is in year 0)
        return moment.astimezone(UTC).timestamp()
    except (OverflowError, ValueError):
        raise ConversionError("date is out of range") from None


def to_digits(value: Any) -> str:
    """Return only the digits of `value` (text or int), as ASCII 0-9.

    Raises ConversionError for None, booleans, floats and other types, and for values
    without a single digit.
    """
    if value is None:
        raise ConversionError("value is missing")
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ConversionError(f"expected text or an integer, got {type(value).__name__}")
    digits = "".join(str(unicodedata.decimal(ch)) for ch in str(value) if ch.isdecimal())
    if not digits:
        raise ConversionError("value has no digits")
    return digits


@lru_cache(maxsize=1)
def _known_zones() -> frozenset[str]:
    # "localtime" (the server's own zone) is in the zone directory but names no real place.
    return frozenset(available_timezones()) - {"localtime", "posixrules"}


def _zone(name: str) -> ZoneInfo:
    if not isinstance(name, str) or name not in _known_zones():
        raise ConversionError(
            f"unknown timezone {name!r}; expected an IANA name such as America/Bogota"
        )
    return ZoneInfo(name)


def _phone_text(value: Any) -> str:
    if value is None:
        raise ConversionError("phone number is missing")
    if isinstance(value, bool) or not isinstance(value, str | int):
        kind = type(value).__name__
        raise ConversionError(f"expected a phone number as text or integer, got {kind}")
    text = str(value).strip()
    if not text:
        raise ConversionError("phone number is empty")
    if any(ch.isalpha() for ch in text):
        raise ConversionError("phone number contains letters")
    if not any(ch.isdecimal() for ch in text):
        raise ConversionError("phone number has no digits")
    return text


def _parse(text: str, region: str) -> PhoneNumber | None:
    try:
        return phonenumbers.parse(text, region)
    except NumberParseException:
        return None


def _is_valid(number: PhoneNumber | None) -> TypeGuard[PhoneNumber]:
    return number is not None and phonenumbers.is_valid_number(number)


def _invalid_phone_reason(number: PhoneNumber | None, text: str, region: str) -> str:
    if number is None:  # unparsable: say "too long" when that is why
        try:
            phonenumbers.parse(text, region)
        except NumberParseException as err:
            if err.error_type == NumberParseException.TOO_LONG:
                return f"too long for a {region} phone number"
        return f"not a valid {region} phone number"
    if number.country_code != phonenumbers.country_code_for_region(region):
        return "not a valid international phone number"
    length = phonenumbers.is_possible_number_with_reason(number)
    return {
        ValidationResult.TOO_SHORT: f"too short for a {region} phone number",
        ValidationResult.TOO_LONG: f"too long for a {region} phone number",
    }.get(length, f"not a valid {region} phone number")


def _to_datetime(value: Any, *, format: str | None, now: datetime | None) -> datetime:
    expected = "expected ISO 8601, epoch seconds or milliseconds, or " + (
        f"a date matching format {format!r}" if format else "YYYYmmddHHMMSS"
    )
    if value is None:
        raise ConversionError(f"date is missing; {expected}")
    if isinstance(value, bool):
        raise ConversionError(f"{expected}, got a boolean")
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime.combine(value, time())
    if isinstance(value, int) and _WOLKVOX_DATE.fullmatch(str(value)):
        value = str(value)
    if isinstance(value, int | float):
        return _from_epoch(value)
    if not isinstance(value, str):
        raise ConversionError(f"{expected}, got {type(value).__name__}")

    text = value.strip()
    if not text:
        raise ConversionError(f"date is empty; {expected}")
    if text.lower() == "now":
        return now if now is not None else datetime.now(UTC)
    if match := _MS_JSON_DATE.fullmatch(text):
        try:
            return _EPOCH + timedelta(milliseconds=int(match.group(1)))
        except (OverflowError, ValueError):  # past datetime's years, or too many digits
            raise ConversionError("date is out of range") from None
    if format:
        try:
            return datetime.strptime(text, format)
        except ValueError:
            pass  # not in the given format; the standard forms may still read it
    if _WOLKVOX_DATE.fullmatch(text):
        try:
            return datetime.strptime(text, RECALL_DATE_FORMAT)
        except ValueError:
            raise ConversionError("14 digits that are not a valid YYYYmmddHHMMSS date") from None
    if _NUMBER.fullmatch(text):
        try:
            number = float(text) if "." in text else int(text)
        except ValueError:  # past Python's digit limit for int(): no date is that long
            raise ConversionError("epoch time is out of range") from None
        return _from_epoch(number)
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise ConversionError(expected) from None


def _from_epoch(number: float) -> datetime:
    if isinstance(number, float) and not math.isfinite(number):
        raise ConversionError("epoch time is not a finite number")
    try:
        if abs(number) >= EPOCH_MS_THRESHOLD:
            return _EPOCH + timedelta(milliseconds=number)
        return _EPOCH + timedelta(seconds=number)
    except OverflowError:
        raise ConversionError("epoch time is out of range") from None
