"""Mapping files: every mistake is one line naming the file, the key and what is expected; a
valid file compiles into a Source whose map, when and dedup_key behave as documented."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from webhooks.mapping.files import ConfigError, load_source, load_sources
from webhooks.recall import RecallInvalid
from webhooks.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = Settings(wolkvox_token="t", wolkvox_base_url="http://127.0.0.1:1",
                    environ={"CRM_SECRET": "s3cret", "CAMPAIGN": "4638"})
NOW = datetime(2030, 1, 1, tzinfo=UTC)
LABEL = "mappings/crm.yaml"

# A valid mapping using each key of the language once.
VALID: dict[str, Any] = {
    "description": "test CRM",
    "format": "json",
    "auth": {"scheme": "token", "header": "X-Token", "secret": "${CRM_SECRET}"},
    "events": "leads",
    "event_id": "id",
    "when": "wants_call",
    "recall": {
        "type_campaign": "predictive",
        "campaign_id": {"path": "stage", "default": "hot",
                        "map": {"hot": "${CAMPAIGN}", "warm": "4639"}},
        "customer_id": {"path": "customer", "digits": True},
        "recall_telephone": {"path": "phone", "phone": {"region": "CO", "prefix": "9"}},
        "recall_date": {"path": "callback",
                        "date": {"timezone": "America/Bogota", "format": "%d/%m/%Y %H:%M"}},
    },
}
LEAD = {"id": "ev-1", "wants_call": True, "customer": "C-98765", "phone": "300 123 4567",
        "callback": "01/12/2030 10:30"}


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    path = tmp_path / "mappings"
    path.mkdir()
    return path


def write(folder: Path, spec: dict[str, Any] | str, name: str = "crm.yaml") -> Path:
    path = folder / name
    path.write_text(spec if isinstance(spec, str) else yaml.safe_dump(spec, sort_keys=False),
                    encoding="utf-8")
    return path


def variant(change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    spec = copy.deepcopy(VALID)
    change(spec)
    return spec


def problems_of(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_source(path, SETTINGS)
    assert str(caught.value) == "\n".join(caught.value.problems)
    return caught.value.problems


def compiled(folder: Path, spec: dict[str, Any] | None = None) -> Any:
    return load_source(write(folder, spec or VALID), SETTINGS)


# --- each mistake, one line: file, key, what is expected ------------------------------------
def _rename_recall_telephone(spec: dict[str, Any]) -> None:
    spec["recall"]["recall_phone"] = spec["recall"].pop("recall_telephone")


MISTAKES = {
    "misspelt top-level key": (
        lambda s: s.update(evnets=s.pop("events")),
        "evnets", ["unknown key", "did you mean 'events'"]),
    "misspelt recall field": (
        _rename_recall_telephone,
        "recall.recall_phone", ["unknown key", "did you mean 'recall_telephone'"]),
    "misspelt converter option": (
        lambda s: s["recall"]["recall_telephone"].update(phone={"regoin": "CO"}),
        "recall.recall_telephone.phone.regoin", ["did you mean 'region'", "region, prefix"]),
    "bad JMESPath": (
        lambda s: s.update(when="leads[?"),
        "when", ["not a valid JMESPath expression"]),
    "unknown converter": (
        lambda s: s["recall"]["recall_date"].update(email=True),
        "recall.recall_date.email", ["unknown key", "phone, date, digits"]),
    "two converters on one field": (
        lambda s: s["recall"]["recall_telephone"].update(digits=True),
        "recall.recall_telephone", ["takes one converter", "phone and digits"]),
    "missing ${NAME}": (
        lambda s: s["auth"].update(secret="${NOT_EXPORTED}"),
        "auth.secret", ["NOT_EXPORTED is not set", "export NOT_EXPORTED="]),
    "unknown auth scheme": (
        lambda s: s["auth"].update(scheme="oauth"),
        "auth.scheme", ["unknown scheme", "hubspot", "token", "none"]),
    "bad format": (
        lambda s: s.update(format="xml"),
        "format", ["json", "form", "salesforce"]),
    "unknown phone region": (
        lambda s: s["recall"]["recall_telephone"].update(phone={"region": "XX"}),
        "recall.recall_telephone.phone.region", ["unknown phone region 'XX'", "CO"]),
    "unknown timezone": (
        lambda s: s["recall"]["recall_date"].update(date={"timezone": "Mars/Olympus"}),
        "recall.recall_date.date.timezone", ["unknown timezone 'Mars/Olympus'",
                                             "America/Bogota"]),
}


@pytest.mark.parametrize("mistake", list(MISTAKES))
def test_a_mistake_is_one_line_naming_the_file_the_key_and_what_is_expected(folder, mistake):
    change, key, expected = MISTAKES[mistake]
    problems = problems_of(write(folder, variant(change)))
    [line] = [p for p in problems if p.startswith(f"{LABEL}: {key}: ")]
    for words in expected:
        assert words in line


def test_missing_secret_never_leaks_the_other_secrets(folder):
    problems = problems_of(write(folder, variant(
        lambda s: s["auth"].update(secret="${NOT_EXPORTED}"))))
    assert not any("s3cret" in p for p in problems)


def test_unreadable_yaml_names_the_line(folder):
    path = write(folder, "auth:\n  scheme: none\n   bad: indent\n")
    [line] = problems_of(path)
    assert line.startswith(f"{LABEL}: not readable YAML (line 3)")


def test_a_file_that_is_not_a_mapping_of_keys_is_refused(folder):
    [line] = problems_of(write(folder, "- recall\n- auth\n"))
    assert line.startswith(f"{LABEL}: expected a mapping of keys")


@pytest.mark.parametrize("name", ["Bad Name.yaml", "UPPER.yaml", "-dash.yaml"])
def test_a_file_name_that_cannot_be_a_url_is_refused(folder, name):
    [line] = problems_of(write(folder, VALID, name))
    assert line.startswith(f"mappings/{name}: file name must be lower-case")
    assert "/hooks/<name>" in line


def test_every_problem_of_every_file_is_reported_together(folder):
    write(folder, VALID, "good.yaml")
    write(folder, variant(lambda s: (s.update(format="xml"), s.update(evnets="@"))), "one.yaml")
    write(folder, variant(lambda s: s["auth"].update(scheme="oauth")), "two.yaml")
    with pytest.raises(ConfigError) as caught:
        load_sources(folder, SETTINGS)
    problems = caught.value.problems
    assert len(problems) == 3
    assert sum(p.startswith("mappings/one.yaml: format: ") for p in problems) == 1
    assert sum(p.startswith("mappings/one.yaml: evnets: ") for p in problems) == 1
    assert sum(p.startswith("mappings/two.yaml: auth.scheme: ") for p in problems) == 1


def test_missing_folder_is_one_problem_naming_the_setting(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load_sources(tmp_path / "nowhere", SETTINGS)
    assert "MAPPINGS_DIR" in caught.value.problems[0]


# --- a valid file ------------------------------------------------------------------------
def test_every_yaml_file_becomes_a_source_named_by_the_file_and_samples_are_skipped(folder):
    write(folder, VALID, "crm.yaml")
    write(folder, VALID, "other_crm.yaml")
    (folder / "samples").mkdir()
    (folder / "samples" / "crm.json").write_text("{}")
    (folder / "README.md").write_text("# notes")
    sources = load_sources(folder, SETTINGS)
    assert sorted(sources) == ["crm", "other_crm"]
    assert sources["crm"].name == "crm" and sources["crm"].description == "test CRM"
    assert sources["crm"].verifier.scheme == "token"


def test_a_valid_file_maps_an_event_with_default_map_digits_date_format_and_phone(folder):
    source = compiled(folder)
    assert source.split({"leads": [LEAD, LEAD]}) == [LEAD, LEAD]
    assert source.map(LEAD, NOW) == {
        "type_campaign": "predictive",
        "campaign_id": "4638",  # no stage: default "hot", then the map, then ${CAMPAIGN}
        "customer_id": "98765",  # digits of C-98765
        "recall_telephone": "93001234567",  # CO national number, prefixed with 9
        "recall_date": "20301201103000",  # 01/12/2030 10:30 by the format, Bogota time
    }
    assert source.map({**LEAD, "stage": "warm"}, NOW)["campaign_id"] == "4639"


def test_the_wolkvox_target_comes_from_the_settings_unless_the_file_overrides_it(folder):
    settings = Settings(wolkvox_token="t", wolkvox_server="5", environ=SETTINGS.environ)
    target = load_source(write(folder, VALID), settings).target
    assert target.base_url == "https://wv0005.wolkvox.com"
    assert target.timezone == "America/Bogota" and target.token == "t"
    override = variant(lambda s: s.update(wolkvox={"server": "32", "token": "${CRM_SECRET}",
                                                   "timezone": "America/Mexico_City"}))
    other = load_source(write(folder, override), settings).target
    assert other.base_url == "https://wv0032.wolkvox.com"
    assert other.timezone == "America/Mexico_City" and other.token == "s3cret"
    assert other.key != target.key


def test_no_token_anywhere_is_a_problem_naming_the_setting(folder):
    settings = Settings(wolkvox_base_url="http://127.0.0.1:1", environ=SETTINGS.environ)
    with pytest.raises(ConfigError) as caught:
        load_source(write(folder, VALID), settings)
    assert caught.value.problems[0].startswith(f"{LABEL}: wolkvox.token: ")
    assert "WOLKVOX_TOKEN" in caught.value.problems[0]


def test_a_field_error_names_the_field_and_each_failing_field_is_reported(folder):
    source = compiled(folder)
    with pytest.raises(RecallInvalid) as caught:
        source.map({**LEAD, "stage": "cold", "callback": "someday"}, NOW)
    assert set(caught.value.errors) == {"campaign_id", "recall_date"}
    assert "'cold' is not in its map" in caught.value.errors["campaign_id"][0]


def test_a_map_miss_on_the_phone_names_the_field_but_not_the_number(folder):
    source = compiled(folder, variant(lambda s: s["recall"]["recall_telephone"].update(
        map={"office": "3001234567"})))
    with pytest.raises(RecallInvalid) as caught:
        source.map({**LEAD, "phone": "3009876543"}, NOW)
    assert list(caught.value.errors) == ["recall_telephone"]
    assert "not in its map" in str(caught.value)
    assert "9876543" not in str(caught.value)


@pytest.mark.parametrize(("key", "value"), [(1, 1), (False, False)])
def test_a_map_table_accepts_number_and_boolean_keys(folder, key, value):
    source = compiled(folder, variant(lambda s: s["recall"]["campaign_id"].update(
        map={key: "4638"})))
    assert source.map({**LEAD, "stage": value}, NOW)["campaign_id"] == "4638"


@pytest.mark.parametrize(("name", "event"), [
    ("zapier", {"phone": "300 123 4567", "callback_at": "2030-12-01T10:30:00-05:00"}),
    ("hubspot-workflow", {"properties": {"phone": {"value": "300 123 4567"},
                                         "callback_requested": {"value": "true"}}}),
])
def test_a_shipped_mapping_refuses_an_event_without_a_customer_id(name, event):
    settings = Settings(wolkvox_token="t", wolkvox_base_url="http://127.0.0.1:1", environ={
        "WOLKVOX_CAMPAIGN_ID": "4638", "ZAPIER_SHARED_SECRET": "z", "HUBSPOT_CLIENT_SECRET": "h"})
    source = load_source(ROOT / "mappings" / f"{name}.yaml", settings)
    source.map({**event, "lead_id": 7, "vid": 7}, NOW)  # loads and maps with an id
    with pytest.raises(RecallInvalid) as caught:
        source.map(event, NOW)
    assert "customer_id" in caught.value.errors


# --- when --------------------------------------------------------------------------------
@pytest.mark.parametrize(("value", "wanted"), [
    (False, False), (None, False), ("", False), ([], False), ({}, False),
    (0, True), (0.0, True), ("0", True), ("false", True), ([0], True), ({"a": 1}, True),
    (True, True), (1, True),
])
def test_when_follows_jmespath_truthiness_where_zero_is_true(folder, value, wanted):
    source = compiled(folder)
    assert source.wanted({**LEAD, "wants_call": value}) is wanted


def test_when_on_a_missing_key_is_false_and_without_when_every_event_is_wanted(folder):
    assert compiled(folder).wanted({"id": "x"}) is False
    no_when = variant(lambda s: s.pop("when"))
    assert compiled(folder, no_when).wanted({"id": "x"}) is True


# --- dedup key ---------------------------------------------------------------------------
def test_dedup_key_is_the_event_id_when_the_mapping_has_one(folder):
    source = compiled(folder)
    assert source.dedup_key(LEAD, 0, "delivery-9") == "ev-1"
    assert source.dedup_key({**LEAD, "id": 42}, 3, None) == "42"


def test_dedup_key_falls_back_to_the_delivery_id_with_the_index_for_batches(folder):
    source = compiled(folder)
    event = {k: v for k, v in LEAD.items() if k != "id"}
    assert source.dedup_key(event, 0, "delivery-9") == "delivery-9"
    assert source.dedup_key(event, 1, "delivery-9") == "delivery-9#1"
    assert source.dedup_key(event, 2, "delivery-9") == "delivery-9#2"


def test_dedup_key_hash_is_stable_across_key_order_and_differs_by_content(folder):
    source = compiled(folder, variant(lambda s: s.pop("event_id")))
    forward = {"a": 1, "b": {"x": 1, "y": 2}}
    backward = {"b": {"y": 2, "x": 1}, "a": 1}
    key = source.dedup_key(forward, 0, None)
    assert key.startswith("sha256:")
    assert key == source.dedup_key(backward, 0, None)
    assert key != source.dedup_key({**forward, "a": 2}, 0, None)


def test_sources_setting_loads_only_the_named_mappings_and_names_a_missing_one(tmp_path):
    folder = tmp_path / "mappings"
    folder.mkdir()
    for name in ("zapier", "hubspot-workflow"):
        (folder / f"{name}.yaml").write_text((ROOT / "mappings" / f"{name}.yaml").read_text())
    settings = Settings(wolkvox_token="t", wolkvox_base_url="http://127.0.0.1:1",
                        sources="zapier", environ={"WOLKVOX_CAMPAIGN_ID": "1",
                                                   "ZAPIER_SHARED_SECRET": "z"})
    assert list(load_sources(folder, settings)) == ["zapier"]  # no HubSpot secret needed
    with pytest.raises(ConfigError) as caught:
        load_sources(folder, replace(settings, sources="zapier,pipedrive"))
    assert "SOURCES: no mapping file for pipedrive" in str(caught.value)


def test_env_reference_with_a_default_uses_it_when_unset(tmp_path):
    folder = tmp_path / "mappings"
    folder.mkdir()
    text = (ROOT / "mappings" / "zapier.yaml").read_text().replace(
        "${WOLKVOX_CAMPAIGN_ID}", "${CAMPAIGN:-777}")
    (folder / "zapier.yaml").write_text(text)
    settings = Settings(wolkvox_token="t", wolkvox_base_url="http://127.0.0.1:1",
                        environ={"ZAPIER_SHARED_SECRET": "z"})
    source = load_source(folder / "zapier.yaml", settings)
    assert source.map({"lead_id": 1, "phone": "3001234567"}, NOW)["campaign_id"] == "777"
    with_env = replace(settings, environ={"ZAPIER_SHARED_SECRET": "z", "CAMPAIGN": "9"})
    source = load_source(folder / "zapier.yaml", with_env)
    assert source.map({"lead_id": 1, "phone": "3001234567"}, NOW)["campaign_id"] == "9"
