"""flask commands an operator runs: check and try mappings, list, show and retry events."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ENVIRON, ROOT, bridge_of, drain
from tests.test_receiver import ZAP_HEADERS, zap
from webhooks.mapping.files import ENV_REF, ConfigError, load_source
from webhooks.settings import Settings

PHONE = "93001234567"
MASKED = "********567"

# A source whose campaign comes from a lead's stage through a `map:` table: an unknown stage
# makes an event invalid, and adding the stage to the table is the fix an operator makes.
CRM_MAPPING = """\
description: test CRM with a stage -> campaign table
auth: {scheme: token, header: X-Bridge-Token, secret: "${ZAPIER_SHARED_SECRET}"}
event_id: request_id
recall:
  type_campaign: predictive
  campaign_id:
    path: stage
    map: {%s}
  customer_id: {path: lead_id}
  recall_telephone: {path: phone, phone: {region: CO, prefix: "9"}}
  recall_date: {path: callback_at, date: {timezone: America/Bogota}}
"""


# Values that pass each auth scheme's checks (a Salesforce org id, a Standard Webhooks key),
# for a ${NAME} a shipped mapping uses that conftest's ENVIRON does not set.
STAND_INS = ("00D5e000000AbCdEAK", "whsec_" + base64.b64encode(b"0" * 32).decode())


def stand_ins(mappings_dir: Path) -> dict[str, str]:
    """For each mapping file, the first stand-in that lets it load with ENVIRON's gaps filled.
    Once ENVIRON covers every shipped mapping this returns {}."""
    environ: dict[str, str] = {}
    for path in sorted(mappings_dir.glob("*.yaml")):
        missing = set(ENV_REF.findall(path.read_text(encoding="utf-8"))) - set(ENVIRON)
        for value in STAND_INS:
            trial = {**ENVIRON, **environ, **{name: value for name in missing}}
            try:
                load_source(path, Settings(wolkvox_token="t", environ=trial,
                                           wolkvox_base_url="http://127.0.0.1:1"))
            except ConfigError:
                continue
            environ.update({name: value for name in missing})
            break
    return environ


@pytest.fixture
def build(make_app: Any, mappings_dir: Path) -> Any:
    """make_app, with stand-ins for the secrets of shipped mappings that ENVIRON lacks."""
    def factory(**overrides: Any) -> Any:
        return make_app(environ=stand_ins(mappings_dir), **overrides)
    return factory


@pytest.fixture
def app(build: Any) -> Any:
    return build()


def cli(app: Any, *args: str) -> Any:
    return app.test_cli_runner().invoke(args=list(args))


def receive(app: Any, body: dict, path: str = "/hooks/zapier") -> int:
    answer = app.test_client().post(path, json=body, headers=ZAP_HEADERS).get_json()
    return answer["events"][0]["id"]


def listed(output: str) -> dict[int, list[str]]:
    """`events list` lines by id: [date, time, status, result, source, customer, reason words...]
    (the result is one word while the call has none: `-`)."""
    return {int(line.split()[0]): line.split()[1:] for line in output.splitlines()}


# --- mappings ----------------------------------------------------------------------------
def test_mappings_check_lists_every_shipped_source_with_its_url(app, mappings_dir):
    result = cli(app, "mappings", "check")
    assert result.exit_code == 0, result.output
    shipped = sorted(path.stem for path in mappings_dir.glob("*.yaml"))
    assert {"zapier", "hubspot-workflow"} <= set(shipped)
    lines = [line for line in result.output.splitlines() if line.startswith("ok  ")]
    assert len(lines) == len(shipped)
    for name, line in zip(shipped, lines, strict=True):
        assert line.startswith(f"ok  POST /hooks/{name}  format=")
    assert "auth=token" in lines[shipped.index("zapier")]
    # each write-back under its source, on or off (the tests set HubSpot's app token)
    assert "      writeback 'HubSpot note' on scheduled, failed, expired, called -> " \
        "api.hubapi.com: on" in result.output.splitlines()


def test_mappings_try_prints_the_recall_fields_with_the_phone_masked(app):
    result = cli(app, "mappings", "try", "zapier", str(ROOT / "mappings/samples/zapier.json"))
    assert result.exit_code == 0, result.output
    assert "event 0: ok  id=zap-7f3a9c" in result.output
    for line in ("type_campaign: predictive", "campaign_id: 4638", "customer_id: 98765",
                 f"recall_telephone: {MASKED}", "recall_date: 20301201103000"):
        assert f"  {line}\n" in result.output
    assert PHONE not in result.output
    assert bridge_of(app).store.counts() == {}  # nothing stored, nothing sent


def test_mappings_try_with_show_phone_prints_the_phone_in_full(app):
    result = cli(app, "mappings", "try", "zapier", str(ROOT / "mappings/samples/zapier.json"),
                 "--show-phone")
    assert result.exit_code == 0, result.output
    assert f"  recall_telephone: {PHONE}\n" in result.output


def test_mappings_try_on_an_invalid_sample_prints_each_field_error(app, tmp_path):
    sample = tmp_path / "bad.json"
    sample.write_text(json.dumps({"request_id": "bad-1", "lead_id": 5, "phone": "300 12",
                                  "callback_at": "someday"}))
    result = cli(app, "mappings", "try", "zapier", str(sample))
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "event 0: INVALID  id=bad-1"
    assert sorted(line.split(":")[0] for line in lines[1:]) == [
        "  recall_date", "  recall_telephone"]
    assert "too short" in result.output and "expected ISO 8601" in result.output
    assert "300 12" not in result.output and "30012" not in result.output


def test_mappings_try_with_an_unknown_source_names_the_known_ones(app):
    result = cli(app, "mappings", "try", "nope", str(ROOT / "mappings/samples/zapier.json"))
    assert result.exit_code != 0
    assert "unknown source 'nope'" in result.output and "zapier" in result.output


# --- events ------------------------------------------------------------------------------
def test_events_list_shows_each_event_and_filters_by_status(app):
    good = receive(app, zap(lead=1))
    bad = receive(app, zap(lead=2, phone="12"))
    everything = listed(cli(app, "events", "list").output)
    assert set(everything) == {good, bad}
    assert everything[good][2:6] == ["queued", "-", "zapier", "1"]
    assert everything[bad][2:5] == ["invalid", "-", "zapier"]
    assert "recall_telephone" in " ".join(everything[bad][6:])
    only_invalid = listed(cli(app, "events", "list", "--status", "invalid").output)
    assert list(only_invalid) == [bad]


def test_events_list_says_when_there_are_none(app):
    result = cli(app, "events", "list")
    assert result.exit_code == 0
    assert result.output == "no events\n"


def test_events_show_masks_the_phone_in_the_recall_and_in_wolkvox_answer(app, sandbox):
    event_id = receive(app, zap())
    drain(app)
    assert [r["recall_telephone"] for r in sandbox.recalls()] == [PHONE]
    result = cli(app, "events", "show", str(event_id))
    assert result.exit_code == 0, result.output
    assert f"id: {event_id}\n" in result.output
    assert "status: delivered\n" in result.output
    [recall_line] = [line for line in result.output.splitlines() if line.startswith("recall: ")]
    recall = json.loads(recall_line.removeprefix("recall: "))
    assert recall["recall_telephone"] == MASKED and recall["customer_id"] == "1"
    [attempt] = [line for line in result.output.splitlines() if line.startswith("  ")]
    assert "delivered" in attempt and "http=202" in attempt and "code=202" in attempt
    assert f"to phone {MASKED}" in attempt
    assert PHONE not in result.output


def test_events_show_of_an_unknown_id_says_so(app):
    result = cli(app, "events", "show", "999")
    assert result.exit_code != 0
    assert "no event 999" in result.output


def test_events_retry_maps_an_invalid_event_again_with_the_fixed_mapping(build, mappings_dir,
                                                                         sandbox):
    (mappings_dir / "crm.yaml").write_text(CRM_MAPPING % "hot: 4638")
    before = build()
    event_id = receive(before, zap(stage="warm"), "/hooks/crm")
    row = bridge_of(before).store.get(event_id)
    assert row["status"] == "invalid" and row["recall"] is None
    assert "campaign_id" in row["reason"]

    still = cli(before, "events", "retry", str(event_id))
    assert still.exit_code != 0 and "still invalid" in still.output
    assert bridge_of(before).store.get(event_id)["status"] == "invalid"

    (mappings_dir / "crm.yaml").write_text(CRM_MAPPING % "hot: 4638, warm: 4639")
    after = build()
    result = cli(after, "events", "retry", str(event_id))
    assert result.exit_code == 0, result.output
    assert result.output == f"event {event_id} queued\n"
    row = bridge_of(after).store.get(event_id)
    assert row["status"] == "queued" and row["attempts"] == 0
    assert row["recall"]["campaign_id"] == "4639"
    assert row["reason"] == "re-queued by an operator (was invalid)"
    drain(after)
    assert bridge_of(after).store.get(event_id)["status"] == "delivered"
    assert [r["campaign_id"] for r in sandbox.recalls()] == ["4639"]


def test_events_retry_refuses_a_delivered_event_with_a_clear_message(app, sandbox):
    event_id = receive(app, zap())
    drain(app)
    result = cli(app, "events", "retry", str(event_id))
    assert result.exit_code != 0
    assert f"event {event_id} is delivered; only " in result.output
    assert "can be retried" in result.output
    assert bridge_of(app).store.get(event_id)["status"] == "delivered"
    assert len(sandbox.recalls()) == 1


def test_events_purge_deletes_old_finished_events_and_keeps_queued_ones(app, sandbox, clock):
    delivered = receive(app, zap(lead=1))
    drain(app)
    queued = receive(app, zap(lead=2))
    clock.advance(days=31)
    fresh = receive(app, zap(lead=3, phone="12"))  # invalid, but recent
    result = cli(app, "events", "purge", "--days", "30")
    assert result.exit_code == 0, result.output
    assert "deleted 1 event(s)" in result.output
    store = bridge_of(app).store
    assert store.get(delivered) is None and store.attempts_of(delivered) == []
    assert store.get(queued)["status"] == "queued"
    assert store.get(fresh)["status"] == "invalid"


def test_events_retry_judges_an_ignored_event_again_with_todays_when(build, mappings_dir):
    (mappings_dir / "crm.yaml").write_text(CRM_MAPPING % "hot: 4638"
                                           + "when: \"stage == 'hot'\"\n")
    before = build()
    event_id = receive(before, zap(stage="warm"), "/hooks/crm")
    assert bridge_of(before).store.get(event_id)["status"] == "ignored"
    listed_ignored = listed(cli(before, "events", "list", "--status", "ignored").output)
    assert list(listed_ignored) == [event_id]
    still = cli(before, "events", "retry", str(event_id))
    assert still.exit_code != 0 and "still ignored" in still.output

    (mappings_dir / "crm.yaml").write_text(CRM_MAPPING % "hot: 4638, warm: 4639"
                                           + "when: \"stage == 'hot' || stage == 'warm'\"\n")
    after = build()
    result = cli(after, "events", "retry", str(event_id))
    assert result.exit_code == 0, result.output
    row = bridge_of(after).store.get(event_id)
    assert row["status"] == "queued" and row["recall"]["campaign_id"] == "4639"


def test_events_retry_of_an_expired_event_reschedules_it_and_keeps_its_history(
        app, sandbox, clock):
    created = clock().timestamp()
    event_id = receive(app, zap(callback_at="2020-01-01T10:00:00-05:00"))
    drain(app)
    store = bridge_of(app).store
    assert store.get(event_id)["status"] == "expired"
    clock.advance(days=2)  # past MAX_EVENT_AGE too: a retry must not fail it at once
    sandbox.configure(script=[500])
    result = cli(app, "events", "retry", str(event_id))
    assert result.exit_code == 0, result.output
    assert "callback time 20200101100000 ->" in result.output
    drain(app)
    row = store.get(event_id)
    assert row["status"] == "queued" and row["attempts"] == 1  # retried, not failed by age
    assert row["created_at"] == pytest.approx(created)
    assert [a["outcome"] for a in store.attempts_of(event_id)] == ["expired", "requeued",
                                                                   "retry"]
    clock.advance(minutes=1)
    drain(app)
    assert store.get(event_id)["status"] == "delivered"
    [recall] = sandbox.recalls()
    assert recall["recall_date"] > "2020"  # the send-time rules moved it 30 minutes ahead


def test_events_retry_at_sets_the_new_callback_time(app, sandbox, clock):
    event_id = receive(app, zap(callback_at="2020-01-01T10:00:00-05:00"))
    drain(app)
    result = cli(app, "events", "retry", str(event_id), "--at", "2031-03-04T09:15:00-05:00")
    assert result.exit_code == 0, result.output
    drain(app)
    assert [r["recall_date"] for r in sandbox.recalls()] == ["20310304091500"]
    past = cli(app, "events", "retry", str(event_id), "--at", "2001-01-01T00:00:00Z")
    assert past.exit_code != 0  # delivered now; and a past --at is refused with a reason


def test_events_retry_refuses_a_callback_time_in_the_past(app, sandbox):
    event_id = receive(app, zap(callback_at="2020-01-01T10:00:00-05:00"))
    drain(app)
    result = cli(app, "events", "retry", str(event_id), "--at", "2001-01-01T00:00:00Z")
    assert result.exit_code != 0 and "is in the past" in result.output


@pytest.mark.parametrize("args", [
    ["events", "show", "99999999999999999999"], ["events", "show", "0"],
    ["events", "retry", "--", "-5"], ["events", "list", "--limit", "0"],
    ["events", "list", "--limit", "99999999999"], ["events", "purge", "--days", "0"],
    ["events", "purge", "--days", "999999999999"]])
def test_cli_arguments_out_of_range_get_a_clear_error_not_a_traceback(app, args):
    result = cli(app, *args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "Error: Invalid value" in result.output


def test_crm_data_printed_to_a_terminal_has_control_characters_escaped(app):
    event_id = receive(app, zap(lead=1, request_id="evil\x1b[2J\r\nFAKE", phone="12"))
    listing = cli(app, "events", "list").output
    shown = cli(app, "events", "show", str(event_id)).output
    for output in (listing, shown):
        assert "\x1b" not in output and "\r" not in output
    assert "dedup_key: evil\\x1b[2J\\r\\nFAKE" in shown


def test_events_purge_removes_ignored_events_by_status(build, mappings_dir, clock):
    (mappings_dir / "crm.yaml").write_text(CRM_MAPPING % "hot: 4638"
                                           + "when: \"stage == 'hot'\"\n")
    app = build()
    ignored = receive(app, zap(lead=1, stage="cold"), "/hooks/crm")
    invalid = receive(app, zap(lead=2, stage="hot", phone="12"), "/hooks/crm")
    clock.advance(days=8)
    result = cli(app, "events", "purge", "--days", "7", "--status", "ignored")
    assert result.exit_code == 0 and "deleted 1 event(s)" in result.output
    store = bridge_of(app).store
    assert store.get(ignored) is None and store.get(invalid)["status"] == "invalid"
