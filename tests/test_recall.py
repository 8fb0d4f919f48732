"""The recall contract: the five fields' checks, the request built from them, phone masking."""

from __future__ import annotations

import pytest

from webhooks.recall import (
    RecallInvalid,
    mask_phone,
    mask_phones_in,
    request_parts,
    validate_recall,
)

GOOD = {"type_campaign": "predictive", "campaign_id": "4638", "customer_id": "12345",
        "recall_telephone": "93001234567", "recall_date": "20301201103000"}


def test_good_fields_are_accepted_as_they_are():
    assert validate_recall(GOOD) == GOOD


def test_integer_fields_are_coerced_to_strings():
    recall = validate_recall({**GOOD, "campaign_id": 4638, "customer_id": 12345,
                              "recall_telephone": 93001234567, "recall_date": 20301201103000})
    assert recall == GOOD
    assert all(isinstance(value, str) for value in recall.values())


@pytest.mark.parametrize(("field", "value", "says"), [
    ("type_campaign", "preview", "predictive"),
    ("campaign_id", "46x8", "numeric"),
    ("customer_id", "", "empty"),
    ("recall_telephone", "+573001234567", "digits"),
    ("recall_date", "203012011030", "14 digits"),
])
def test_each_bad_field_is_refused_naming_that_field(field, value, says):
    with pytest.raises(RecallInvalid) as caught:
        validate_recall({**GOOD, field: value})
    assert list(caught.value.errors) == [field]
    assert says in " ".join(caught.value.errors[field])
    assert str(caught.value).startswith(f"{field}: ")


def test_a_missing_field_is_refused_as_required():
    values = {k: v for k, v in GOOD.items() if k != "customer_id"}
    with pytest.raises(RecallInvalid) as caught:
        validate_recall(values)
    assert list(caught.value.errors) == ["customer_id"]


def test_several_bad_fields_are_all_named():
    with pytest.raises(RecallInvalid) as caught:
        validate_recall({**GOOD, "type_campaign": "preview", "recall_date": "tomorrow"})
    assert set(caught.value.errors) == {"type_campaign", "recall_date"}


def test_request_parts_puts_campaign_in_the_query_and_the_lead_in_the_body():
    query, body = request_parts(GOOD)
    assert query == {"api": "recall", "type_campaign": "predictive", "campaign_id": "4638"}
    assert body == {"recall_date": "20301201103000", "recall_telephone": "93001234567",
                    "customer_id": "12345"}


def test_mask_phone_keeps_only_the_last_three_digits():
    assert mask_phone("93001234567") == "********567"
    assert mask_phone("") == ""
    assert mask_phone(None) == ""


def test_mask_phones_in_hides_the_phone_wolkvox_repeats_in_its_msg():
    msg = ("customer_id 12345 has been updated and will be call back on 20301201103000 "
           "to phone 93001234567")
    masked = mask_phones_in(msg)
    assert "93001234567" not in masked
    assert masked.endswith("to phone ********567")
    assert "customer_id 12345" in masked and "20301201103000" in masked


def test_mask_phones_in_leaves_text_without_a_phone_alone():
    assert mask_phones_in("SOME PARAMETERS ARE REQUIRED") == "SOME PARAMETERS ARE REQUIRED"
    assert mask_phones_in("") == ""


def test_recall_date_that_is_not_a_real_date_is_refused():
    from webhooks.recall import RecallInvalid, validate_recall

    good = {"type_campaign": "predictive", "campaign_id": "1", "customer_id": "7",
            "recall_telephone": "93001234567", "recall_date": "20301301103000"}
    try:
        validate_recall(good)
    except RecallInvalid as err:
        assert list(err.errors) == ["recall_date"]
        assert "not a real date" in str(err)
    else:
        raise AssertionError("month 13 was accepted")
