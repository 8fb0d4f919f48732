from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from webhooks.mapping.converters import (
    ConversionError,
    check_region,
    check_timezone,
    to_date,
    to_digits,
    to_phone,
)
from webhooks.recall import DATE_FORMAT as RECALL_DATE_FORMAT

BOGOTA = "America/Bogota"
# 2026-11-30 15:30:00 UTC, which is 10:30 in Bogota (UTC-5 all year).
EPOCH_S = 1796052600
EPOCH_MS = EPOCH_S * 1000


def co_phone(value):
    return to_phone(value, region="CO", prefix="9")


# --- phones -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    ["+57 300 123 4567", "+573001234567", "+57 (300) 123-4567"],
)
def test_phone_in_international_form_becomes_prefixed_national_digits(value):
    assert co_phone(value) == "93001234567"


@pytest.mark.parametrize("value", ["300 123 4567", "(300) 123-4567", "300.123.4567", "3001234567"])
def test_phone_in_national_form_becomes_prefixed_national_digits(value):
    assert co_phone(value) == "93001234567"


def test_phone_with_country_code_but_no_plus_is_read_as_international():
    assert co_phone("573001234567") == "93001234567"


@pytest.mark.parametrize("value", ["0057 300 123 4567", "00573001234567"])
def test_phone_with_00_international_prefix_is_read_as_plus(value):
    assert co_phone(value) == "93001234567"


def test_phone_given_as_int_is_converted():
    assert co_phone(3001234567) == "93001234567"
    assert co_phone(573001234567) == "93001234567"


def test_already_prefixed_phone_is_not_prefixed_twice():
    assert co_phone("93001234567") == "93001234567"
    assert co_phone("9 300 123 4567") == "93001234567"


def test_phone_without_prefix_setting_is_bare_national_digits():
    assert to_phone("+57 300 123 4567", region="CO") == "3001234567"


def test_colombian_landline_in_new_ten_digit_form_is_accepted():
    assert co_phone("601 234 5678") == "96012345678"


def test_phone_of_another_country_keeps_its_country_code_and_gets_no_prefix():
    assert co_phone("+1 212 555 0100") == "12125550100"
    assert co_phone("+44 20 7946 0958") == "442079460958"


def test_phone_of_another_country_with_00_prefix_keeps_its_country_code():
    assert co_phone("001 212 555 0100") == "12125550100"


def test_phone_region_decides_what_is_domestic():
    assert to_phone("(212) 555-0100", region="US", prefix="1") == "12125550100"
    assert to_phone("+57 300 123 4567", region="US", prefix="1") == "573001234567"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("300", "too short for a CO phone number"),
        ("300 123", "too short for a CO phone number"),
        ("57 300 123 4567 89", "too long for a CO phone number"),
        ("+44 20", "not a valid international phone number"),
        ("300 abc 4567", "phone number contains letters"),
        ("+57 300 123 4567 ext 12", "phone number contains letters"),
        ("", "phone number is empty"),
        ("   ", "phone number is empty"),
        ("+-()", "phone number has no digits"),
        (None, "phone number is missing"),
        (True, "expected a phone number as text or integer, got bool"),
        (3001234567.0, "expected a phone number as text or integer, got float"),
    ],
)
def test_invalid_phone_is_refused_with_a_reason(value, reason):
    with pytest.raises(ConversionError) as excinfo:
        co_phone(value)
    assert str(excinfo.value) == reason


def test_phone_in_a_valid_length_but_unassigned_range_is_refused():
    # 10 digits like a mobile, but CO numbers never start with 2: possible, not valid.
    with pytest.raises(ConversionError, match="^not a valid CO phone number$"):
        co_phone("200 123 4567")


@pytest.mark.parametrize("value", ["300 123", "57 300 123 4567 89", "200 123 4567", "+44 20"])
def test_phone_error_message_does_not_contain_the_number(value):
    with pytest.raises(ConversionError) as excinfo:
        co_phone(value)
    assert not any(ch.isdigit() for ch in str(excinfo.value))


def test_conversion_error_is_a_value_error():
    with pytest.raises(ValueError):
        co_phone("12")


def test_phone_with_unknown_region_is_refused():
    with pytest.raises(ConversionError, match="unknown phone region 'XX'"):
        to_phone("3001234567", region="XX")


def test_phone_prefix_that_is_not_digits_is_refused():
    with pytest.raises(ConversionError, match="^phone prefix must be made of digits 0-9$"):
        to_phone("3001234567", region="CO", prefix="+9")


# --- dates ------------------------------------------------------------------------------------


def bogota(value, **kwargs):
    return to_date(value, timezone=BOGOTA, **kwargs)


def test_recall_date_format_is_fourteen_digits_24_hour():
    assert datetime(2026, 11, 30, 15, 30, 5).strftime(RECALL_DATE_FORMAT) == "20261130153005"


def test_iso_date_with_z_is_converted_to_the_timezone():
    assert bogota("2026-11-30T15:30:00.000Z") == "20261130103000"


def test_iso_date_with_offset_is_converted_to_the_timezone():
    assert bogota("2026-11-30T10:30:00-05:00") == "20261130103000"
    assert bogota("2026-11-30T17:30:00+02:00") == "20261130103000"


@pytest.mark.parametrize("value", ["2026-11-30 10:30", "2026-11-30T10:30:00", " 2026-11-30T10:30 "])
def test_naive_iso_date_is_read_in_the_timezone(value):
    assert bogota(value) == "20261130103000"


def test_date_only_means_midnight_in_the_timezone():
    assert bogota("2026-11-30") == "20261130000000"


@pytest.mark.parametrize("value", [EPOCH_S, str(EPOCH_S), float(EPOCH_S)])
def test_epoch_seconds_as_number_or_text_are_converted(value):
    assert bogota(value) == "20261130103000"


@pytest.mark.parametrize("value", [EPOCH_MS, str(EPOCH_MS), float(EPOCH_MS)])
def test_epoch_milliseconds_as_number_or_text_are_converted(value):
    assert bogota(value) == "20261130103000"


def test_fractional_epoch_seconds_are_truncated_to_the_second():
    assert bogota(EPOCH_S + 0.9) == "20261130103000"
    assert bogota(f"{EPOCH_S}.5") == "20261130103000"
    assert bogota(EPOCH_MS + 999) == "20261130103000"


def test_epoch_below_1e11_is_seconds_and_from_1e11_on_is_milliseconds():
    assert to_date(99_999_999_999, timezone="UTC") == "51381116094639"
    assert to_date(100_000_000_000, timezone="UTC") == "19730303094640"


def test_fourteen_digit_wolkvox_date_passes_through_unchanged():
    assert bogota("20261130153000") == "20261130153000"


def test_fourteen_digit_number_is_read_as_wolkvox_date_not_epoch_milliseconds():
    # As epoch milliseconds it would be the year 2612.
    assert bogota(20261130153000) == "20261130153000"


def test_fourteen_digits_that_are_no_date_are_refused():
    with pytest.raises(ConversionError, match="not a valid YYYYmmddHHMMSS"):
        bogota("20261330153000")


def test_now_is_the_injected_now_in_the_timezone():
    now = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)
    assert bogota("now", now=now) == "20260501070000"
    assert bogota("NOW", now=now) == "20260501070000"


def test_now_without_injected_now_is_the_current_time():
    before = datetime.now(UTC).replace(microsecond=0)
    result = to_date("now", timezone="UTC")
    after = datetime.now(UTC)
    moment = datetime.strptime(result, RECALL_DATE_FORMAT).replace(tzinfo=UTC)
    assert before <= moment <= after


def test_past_dates_are_converted_as_they_are():
    assert bogota("2020-01-01T00:00:00Z") == "20191231190000"


def test_datetime_objects_are_converted():
    assert bogota(datetime(2026, 11, 30, 15, 30, tzinfo=UTC)) == "20261130103000"
    assert bogota(datetime(2026, 11, 30, 10, 30)) == "20261130103000"
    plus_one = timezone(timedelta(hours=1))
    assert bogota(datetime(2026, 11, 30, 16, 30, tzinfo=plus_one)) == "20261130103000"


def test_date_object_means_midnight_in_the_timezone():
    assert bogota(date(2026, 11, 30)) == "20261130000000"


def test_custom_format_reads_other_forms_in_the_timezone():
    assert bogota("30/11/2026 10:30", format="%d/%m/%Y %H:%M") == "20261130103000"


def test_custom_format_wins_over_epoch_for_numeric_text():
    assert bogota("20261130", format="%Y%m%d") == "20261130000000"


def test_custom_format_still_accepts_iso_dates():
    assert bogota("2026-11-30T15:30:00Z", format="%d/%m/%Y") == "20261130103000"


def test_custom_format_with_offset_is_converted():
    assert bogota("30/11/2026 15:30 +0000", format="%d/%m/%Y %H:%M %z") == "20261130103000"


@pytest.mark.parametrize(
    ("zone", "summer", "winter"),
    [
        ("America/New_York", "20260701080000", "20260115070000"),
        ("Europe/Madrid", "20260701140000", "20260115130000"),
        ("America/Bogota", "20260701070000", "20260115070000"),
    ],
)
def test_utc_offset_follows_daylight_saving_time_of_the_zone(zone, summer, winter):
    assert to_date("2026-07-01T12:00:00Z", timezone=zone) == summer
    assert to_date("2026-01-15T12:00:00Z", timezone=zone) == winter


def test_naive_time_skipped_by_dst_jump_moves_to_the_real_time_after_it():
    # New York jumps from 02:00 to 03:00 on 2026-03-08.
    assert to_date("2026-03-08T02:30:00", timezone="America/New_York") == "20260308033000"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("garbage", "expected ISO 8601, epoch seconds or milliseconds, or YYYYmmddHHMMSS"),
        ("30/11/2026", "expected ISO 8601, epoch seconds or milliseconds, or YYYYmmddHHMMSS"),
        ("", "date is empty; expected ISO 8601"),
        (None, "date is missing; expected ISO 8601"),
        (True, "got a boolean"),
        (False, "got a boolean"),
        ([2026, 11, 30], "got list"),
        (float("nan"), "epoch time is not a finite number"),
        (10**30, "epoch time is out of range"),
        ("0001-01-01T00:00:00", "date is out of range"),
    ],
)
def test_unreadable_date_is_refused_with_what_was_expected(value, reason):
    with pytest.raises(ConversionError) as excinfo:
        bogota(value)
    assert reason in str(excinfo.value)


def test_unreadable_date_with_format_names_the_format():
    with pytest.raises(ConversionError) as excinfo:
        bogota("tomorrow", format="%d/%m/%Y")
    assert str(excinfo.value) == (
        "expected ISO 8601, epoch seconds or milliseconds, or a date matching format '%d/%m/%Y'"
    )


def test_date_with_unknown_timezone_is_refused():
    with pytest.raises(ConversionError, match="unknown timezone 'Mars/Olympus'"):
        to_date("2026-11-30", timezone="Mars/Olympus")


# --- digits -----------------------------------------------------------------------------------


def test_digits_keeps_only_the_digits():
    assert to_digits("CC 1.234.567-8") == "12345678"
    assert to_digits("00123") == "00123"


def test_digits_of_an_int_is_its_decimal_text():
    assert to_digits(4638) == "4638"


def test_digits_turns_non_ascii_digits_into_ascii():
    assert to_digits("٤٦٣٨") == "4638"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("abc", "value has no digits"),
        ("", "value has no digits"),
        (None, "value is missing"),
        (True, "expected text or an integer, got bool"),
        (12.5, "expected text or an integer, got float"),
    ],
)
def test_digits_without_digits_is_refused(value, reason):
    with pytest.raises(ConversionError) as excinfo:
        to_digits(value)
    assert str(excinfo.value) == reason


# --- checks of mapping settings ---------------------------------------------------------------


@pytest.mark.parametrize("name", ["America/Bogota", "America/Mexico_City", "Europe/Madrid", "UTC"])
def test_known_timezone_passes_the_check(name):
    assert check_timezone(name) is None


@pytest.mark.parametrize(
    "name", ["Mars/Olympus", "america/bogota", "", "localtime", "-05:00", None]
)
def test_unknown_timezone_fails_the_check(name):
    with pytest.raises(ConversionError, match="expected an IANA name such as America/Bogota"):
        check_timezone(name)


@pytest.mark.parametrize("code", ["CO", "MX", "US", "ES"])
def test_known_region_passes_the_check(code):
    assert check_region(code) is None


@pytest.mark.parametrize("code", ["XX", "", "COL", "57", None])
def test_unknown_region_fails_the_check(code):
    with pytest.raises(ConversionError, match="expected a two-letter code such as CO, MX or US"):
        check_region(code)


def test_region_in_lower_case_fails_with_a_hint():
    with pytest.raises(ConversionError, match=r"regions are upper case: 'CO'"):
        check_region("co")


def test_microsoft_json_date_is_read_as_utc_milliseconds():
    # 1924963200000 ms = 2030-12-31T16:00:00Z = 11:00 in Bogota, whatever the writer's offset
    assert to_date("/Date(1924963200000)/", timezone="America/Bogota") == "20301231110000"
    assert to_date("/Date(1924963200000-0500)/", timezone="America/Bogota") == "20301231110000"


def test_a_time_without_offset_can_be_read_in_the_crms_zone_and_written_in_the_operations():
    # 10:30 in Mexico City (UTC-6 in December) is 11:30 in Bogota (UTC-5)
    assert to_date("2030-12-01 10:30:00", timezone="America/Bogota",
                   read_in="America/Mexico_City") == "20301201113000"
    assert to_date("2030-12-01 10:30:00", timezone="America/Bogota") == "20301201103000"
    assert to_date("2030-12-01T10:30:00Z", timezone="America/Bogota",
                   read_in="America/Mexico_City") == "20301201053000"  # an offset wins


def test_an_epoch_of_thousands_of_digits_is_refused_not_a_crash():
    with pytest.raises(ConversionError, match="out of range"):
        to_date("3" * 5000, timezone="America/Bogota")
