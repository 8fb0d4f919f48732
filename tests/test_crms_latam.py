"""The CRMs Latin American contact centers use, end to end: each shipped mapping's sample,
proven the way that CRM proves a request, through the receiver and the store to the sandbox
wolkvox (Kommo and Bitrix24 through their API look-alikes on loopback); forged requests; and
what the vendors document today for the CRMs shipped before (HubSpot's generic object events,
Pipedrive's timezone_id, Dataverse's bodies stripped for size, the CRMs' own time of a change).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ENVIRON, ROOT, Clock, bridge_of, drain
from tests.crm_lookalike import CrmLookalike
from tests.hubspot_lookalike import HubSpotLookalike
from tests.test_crms import (
    counts,
    dynamics_webhook_key,
    hubspot_v3,
    pipedrive_basic,
    point_hubspot_at,
    results,
    sample,
    soon,
)

KOMMO_LEAD = 15318175  # samples/kommo.txt
KOMMO_MAIN_CONTACT = 12345
KOMMO_OTHER_CONTACT = 12399
BITRIX24_LEAD = 1000983  # samples/bitrix24.txt
BITRIX24_SECRET = "inbound-secret"
HUBSPOT_OBJECT_CONTACT = 512  # samples/hubspot-object.json
MONDAY_CHALLENGE = "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"
FORM = "application/x-www-form-urlencoded"


# --- how each CRM proves a request: body, "wrong" or "missing" -> test client arguments ------
def url_token(name: str, content_type: str = "application/json") -> Callable[..., Any]:
    """A secret in the URL's `?token=` (the CRM signs nothing)."""
    def prove(body: bytes, forged: str | None = None) -> dict[str, Any]:
        query = {} if forged == "missing" else {
            "token": "guessed" if forged == "wrong" else ENVIRON[name]}
        return {"data": body, "query_string": query, "headers": {"Content-Type": content_type}}
    return prove


def bitrix24_token(body: bytes, forged: str | None = None) -> dict[str, Any]:
    """Bitrix24 posts the outbound webhook's application token as auth[application_token]."""
    if forged == "wrong":
        body = body.replace(ENVIRON["BITRIX24_APPLICATION_TOKEN"].encode(), b"guessed")
    elif forged == "missing":
        body = re.sub(rb"&auth%5Bapplication_token%5D=[^&]*", b"", body)
    return {"data": body, "headers": {"Content-Type": FORM}}


def flow_header(body: bytes, forged: str | None = None) -> dict[str, Any]:
    """Salesforce Flow's HTTP Callout, with the header its Named Credential adds."""
    headers = {"Content-Type": "application/json"}
    if forged != "missing":
        headers["X-Bridge-Token"] = "guessed" if forged == "wrong" \
            else ENVIRON["SALESFORCE_FLOW_SECRET"]
    return {"data": body, "headers": headers}


@dataclass(frozen=True)
class Crm:
    """A shipped mapping, its sample, how the CRM proves a request, and the recall it makes
    (recall_date None: as soon as wolkvox allows)."""

    source: str
    sample: str
    prove: Callable[..., dict[str, Any]]
    customer_id: str
    recall_date: str | None
    recall_telephone: str = "93001234567"

    def post(self, app: Any, forged: str | None = None, body: bytes | None = None) -> Any:
        body = sample(self.sample) if body is None else body
        return app.test_client().post(f"/hooks/{self.source}", **self.prove(body, forged))


CRMS = [
    Crm("kommo", "kommo.txt", url_token("KOMMO_WEBHOOK_TOKEN", FORM), str(KOMMO_LEAD),
        "20301201103000"),
    Crm("bitrix24", "bitrix24.txt", bitrix24_token, str(BITRIX24_LEAD), "20301201103000"),
    Crm("odoo", "odoo.json", url_token("ODOO_WEBHOOK_TOKEN"), "57", "20301201103000"),
    Crm("rdstation", "rdstation.json", url_token("RDSTATION_WEBHOOK_TOKEN"),
        "650890f2a0a1b2000f1e2d3c", "20301201103000"),
    Crm("activecampaign", "activecampaign.txt", url_token("ACTIVECAMPAIGN_WEBHOOK_TOKEN", FORM),
        "42", "20301201090000"),
    Crm("monday", "monday.json", url_token("MONDAY_WEBHOOK_TOKEN"), "1772099344", None),
    Crm("salesforce-flow", "salesforce-flow.json", flow_header, "00Q5e000001AbCdEAK",
        "20301201103000"),
]
BY_SOURCE = {crm.source: crm for crm in CRMS}
each_crm = pytest.mark.parametrize("crm", CRMS, ids=[crm.source for crm in CRMS])


# --- the CRM API look-alikes -----------------------------------------------------------------
@pytest.fixture(scope="module")
def crm_server() -> Iterator[CrmLookalike]:
    server = CrmLookalike(ENVIRON["KOMMO_TOKEN"], BITRIX24_SECRET).start()
    yield server
    server.stop()


@pytest.fixture
def crm_api(crm_server: CrmLookalike) -> CrmLookalike:
    """The look-alike knowing the samples' records: Kommo's lead with a main contact and
    another one, Bitrix24's lead in the callback stage."""
    crm_server.reset()
    crm_server.add_kommo_lead(KOMMO_LEAD, [(KOMMO_OTHER_CONTACT, False),
                                           (KOMMO_MAIN_CONTACT, True)])
    crm_server.add_kommo_contact(KOMMO_OTHER_CONTACT, "+57 301 765 4321", name="Luis")
    crm_server.add_kommo_contact(KOMMO_MAIN_CONTACT, "+57 300 123 4567")
    crm_server.add_bitrix24_lead(BITRIX24_LEAD, TITLE="Lead #1591", STATUS_ID="UC_CALLBACK",
                                 HAS_PHONE="Y", DATE_MODIFY="2026-11-28T12:00:00-05:00",
                                 UF_CRM_CALLBACK_AT="2030-12-01T10:30:00-05:00",
                                 PHONE=[{"ID": "11658", "VALUE_TYPE": "MOBILE",
                                         "VALUE": "+57 300 123 4567", "TYPE_ID": "PHONE"}])
    return crm_server


@pytest.fixture
def app(make_app: Any, crm_api: CrmLookalike) -> Any:
    """An app whose Kommo and Bitrix24 mappings call the look-alike."""
    return make_app(environ={"KOMMO_BASE_URL": crm_api.url,
                             "BITRIX24_WEBHOOK_URL": crm_api.bitrix24_webhook_url})


@pytest.fixture
def hubspot_contacts(hubspot_server: HubSpotLookalike, mappings_dir: Path) -> HubSpotLookalike:
    """HubSpot's look-alike knowing the object sample's contact, and this test's copy of
    hubspot.yaml pointed at it."""
    hubspot_server.reset()
    hubspot_server.add_contact(HUBSPOT_OBJECT_CONTACT, phone="+57 300 123 4567",
                               callback_at="2030-12-01T15:30:00Z")
    point_hubspot_at(hubspot_server, mappings_dir)
    return hubspot_server


def recall_fields(recall: dict[str, Any]) -> dict[str, Any]:
    return {k: recall[k] for k in ("type_campaign", "campaign_id", "customer_id",
                                   "recall_telephone", "recall_date")}


# --- every new CRM ---------------------------------------------------------------------------
@each_crm
def test_authenticated_sample_is_mapped_and_reaches_wolkvox(crm, app, sandbox, clock):
    response = crm.post(app)
    # monday retries anything but 200, so its mapping answers 200 (`answer: {status: 200}`)
    assert response.status_code == (200 if crm.source == "monday" else 202), \
        response.get_data(as_text=True)
    assert results(response) == ["accepted"]
    assert counts(app) == {"queued": 1}
    drain(app)
    assert counts(app) == {"delivered": 1}
    [recall] = sandbox.recalls()
    assert recall_fields(recall) == {
        "type_campaign": "predictive", "campaign_id": ENVIRON["WOLKVOX_CAMPAIGN_ID"],
        "customer_id": crm.customer_id, "recall_telephone": crm.recall_telephone,
        "recall_date": crm.recall_date or soon(clock)}


@each_crm
@pytest.mark.parametrize("forged", ["wrong", "missing"])
def test_request_with_a_wrong_or_missing_token_is_refused_and_nothing_is_stored(
        crm, forged, app, sandbox, crm_api):
    response = crm.post(app, forged=forged)
    assert response.status_code == 401
    assert "not authenticated" in response.get_json()["error"]
    assert counts(app) == {}
    drain(app)
    assert sandbox.recalls() == [] and crm_api.calls == []


@each_crm
def test_repeated_delivery_is_a_duplicate_and_makes_one_recall(crm, app, sandbox):
    first, second = crm.post(app), crm.post(app)
    assert results(second) == ["duplicate"]
    assert second.get_json()["events"][0]["id"] == first.get_json()["events"][0]["id"]
    drain(app)
    assert len(sandbox.recalls()) == 1


# --- Kommo: the lead, then its main contact ---------------------------------------------------
def test_kommo_lookup_fetches_the_lead_then_its_main_contact_with_the_token(app, sandbox,
                                                                            crm_api):
    response = BY_SOURCE["kommo"].post(app)
    event_id = response.get_json()["events"][0]["id"]
    assert bridge_of(app).store.get(event_id)["reason"] == "waiting for the CRM lookup"
    assert crm_api.calls == []  # never on the request path
    drain(app)
    lead_call, contact_call = crm_api.calls
    assert (lead_call["path"], lead_call["query"]) == (f"/api/v4/leads/{KOMMO_LEAD}",
                                                       {"with": "contacts"})
    assert contact_call["path"] == f"/api/v4/contacts/{KOMMO_MAIN_CONTACT}"
    bearer = f"Bearer {ENVIRON['KOMMO_TOKEN']}"
    assert lead_call["authorization"] == contact_call["authorization"] == bearer
    [recall] = sandbox.recalls()
    assert recall["recall_telephone"] == "93001234567"  # the main contact's, not the other's


def test_kommo_lead_without_a_main_contact_fails_with_the_reason(app, sandbox, crm_api):
    crm_api.add_kommo_lead(KOMMO_LEAD, [(KOMMO_OTHER_CONTACT, False)])
    event_id = BY_SOURCE["kommo"].post(app).get_json()["events"][0]["id"]
    drain(app)
    row = bridge_of(app).store.get(event_id)
    assert row["status"] == "failed"
    assert f"the answer for Kommo lead {KOMMO_LEAD} has nothing at" in row["reason"]
    assert len(crm_api.calls) == 1 and sandbox.recalls() == []


def test_kommo_lead_moved_to_another_status_is_ignored_and_not_looked_up(app, crm_api):
    body = sample("kommo.txt").replace(b"status_id%5D=67548619", b"status_id%5D=142")
    response = BY_SOURCE["kommo"].post(app, body=body)
    assert results(response) == ["ignored"]
    drain(app)
    assert counts(app) == {"ignored": 1} and crm_api.calls == []


def test_kommo_callback_status_is_a_setting(make_app, crm_api):
    app = make_app(environ={"KOMMO_BASE_URL": crm_api.url, "KOMMO_CALLBACK_STATUS_ID": "142"})
    body = sample("kommo.txt").replace(b"status_id%5D=67548619", b"status_id%5D=142")
    assert results(BY_SOURCE["kommo"].post(app)) == ["ignored"]
    assert results(BY_SOURCE["kommo"].post(app, body=body)) == ["accepted"]


def test_kommo_request_moving_two_leads_makes_two_events(app, crm_api):
    text = sample("kommo.txt").decode()
    second = "&".join(pair.replace("%5B0%5D", "%5B1%5D", 1).replace(str(KOMMO_LEAD), "15318176")
                      for pair in text.split("&") if pair.startswith("leads"))
    response = BY_SOURCE["kommo"].post(app, body=f"{text}&{second}".encode())
    assert results(response) == ["accepted", "accepted"]


# --- Bitrix24: the application token, the stage after the lookup ------------------------------
def test_bitrix24_application_token_is_checked_then_never_stored(app, crm_api):
    event_id = BY_SOURCE["bitrix24"].post(app).get_json()["events"][0]["id"]
    raw = bridge_of(app).store.get(event_id)["raw"]
    assert raw["data"] == {"FIELDS": {"ID": str(BITRIX24_LEAD)}}
    assert "application_token" not in raw["auth"]
    assert ENVIRON["BITRIX24_APPLICATION_TOKEN"] not in json.dumps(raw)


def test_bitrix24_lead_is_fetched_through_the_inbound_webhook_url(app, sandbox, crm_api):
    BY_SOURCE["bitrix24"].post(app)
    drain(app)
    [call] = crm_api.calls
    assert call["path"] == f"/rest/1/{BITRIX24_SECRET}/crm.lead.get"
    assert call["query"] == {"id": str(BITRIX24_LEAD)}
    assert len(sandbox.recalls()) == 1


def test_bitrix24_lead_outside_the_callback_stage_is_invalid_naming_its_stage(app, sandbox,
                                                                               crm_api):
    crm_api.add_bitrix24_lead(BITRIX24_LEAD, STATUS_ID="IN_PROCESS",
                              PHONE=[{"VALUE": "+57 300 123 4567", "TYPE_ID": "PHONE"}])
    event_id = BY_SOURCE["bitrix24"].post(app).get_json()["events"][0]["id"]
    drain(app)
    row = bridge_of(app).store.get(event_id)
    assert row["status"] == "invalid"
    assert "campaign_id: 'IN_PROCESS' is not in its map (known: UC_CALLBACK)" in row["reason"]
    assert sandbox.recalls() == []


def test_bitrix24_events_other_than_lead_add_or_update_are_ignored(app, crm_api):
    body = sample("bitrix24.txt").replace(b"ONCRMLEADUPDATE", b"ONCRMCONTACTUPDATE")
    assert results(BY_SOURCE["bitrix24"].post(app, body=body)) == ["ignored"]
    drain(app)
    assert crm_api.calls == []


# --- Odoo, ActiveCampaign, monday.com ---------------------------------------------------------
def test_odoo_is_answered_once_the_event_is_stored_before_wolkvox_is_called(app, sandbox):
    response = BY_SOURCE["odoo"].post(app)  # Odoo waits about 1 s and never retries
    assert response.status_code == 202 and results(response) == ["accepted"]
    assert counts(app) == {"queued": 1} and sandbox.recalls() == []


def test_odoo_empty_callback_field_calls_as_soon_as_allowed(app, sandbox, clock):
    body = json.loads(sample("odoo.json"))
    body["x_studio_callback_at"] = False  # Odoo writes false for an empty field
    BY_SOURCE["odoo"].post(app, body=json.dumps(body).encode())
    drain(app)
    assert sandbox.recalls()[0]["recall_date"] == soon(clock)


def test_activecampaign_contact_without_the_callback_tag_is_ignored(app):
    body = sample("activecampaign.txt").replace(b"contact%5Btags%5D=callback",
                                                b"contact%5Btags%5D=newsletter").replace(
        b"&tag=callback", b"&tag=newsletter")
    assert results(BY_SOURCE["activecampaign"].post(app, body=body)) == ["ignored"]


def test_monday_challenge_is_answered_with_the_challenge_and_nothing_is_stored(app):
    response = BY_SOURCE["monday"].post(app, body=sample("monday-challenge.json"))
    assert response.status_code == 200
    assert response.get_json() == {"challenge": MONDAY_CHALLENGE}
    assert counts(app) == {}


def test_monday_challenge_without_the_url_token_is_refused(app):
    response = BY_SOURCE["monday"].post(app, forged="missing",
                                        body=sample("monday-challenge.json"))
    assert response.status_code == 401
    assert counts(app) == {}


def test_monday_phone_column_cleared_is_ignored(app):
    body = json.loads(sample("monday.json"))
    body["event"]["value"] = None
    assert results(BY_SOURCE["monday"].post(app, body=json.dumps(body).encode())) == ["ignored"]


# --- HubSpot: the generic object.propertyChange, and its own time of the change ---------------
def post_hubspot(app: Any, clock: Clock, events: list[dict[str, Any]]) -> Any:
    return app.test_client().post("/hooks/hubspot",
                                  **hubspot_v3(json.dumps(events).encode(), clock))


def object_change(event_id: int, occurred_at: int, object_type: str = "0-1",
                  object_id: int = HUBSPOT_OBJECT_CONTACT) -> dict[str, Any]:
    [event, _] = json.loads(sample("hubspot-object.json"))
    return {**event, "eventId": event_id, "occurredAt": occurred_at,
            "objectTypeId": object_type, "objectId": object_id}


def test_hubspot_object_property_change_of_a_contact_makes_a_recall(make_app, sandbox, clock,
                                                                    hubspot_contacts):
    app = make_app()
    response = app.test_client().post("/hooks/hubspot",
                                      **hubspot_v3(sample("hubspot-object.json"), clock))
    assert results(response) == ["accepted", "ignored"]  # the sample's second one is a deal
    drain(app)
    [call] = hubspot_contacts.calls
    assert call["id"] == str(HUBSPOT_OBJECT_CONTACT)
    [recall] = sandbox.recalls()
    assert (recall["customer_id"], recall["recall_telephone"], recall["recall_date"]) == (
        str(HUBSPOT_OBJECT_CONTACT), "93001234567", "20301201103000")


@pytest.mark.parametrize("object_type", ["0-2", "0-3", "0-5", "2-123456"])
def test_hubspot_object_property_change_of_another_object_type_is_ignored(
        make_app, clock, hubspot_contacts, object_type):
    app = make_app()
    response = post_hubspot(app, clock, [object_change(1, 1795885200000, object_type)])
    assert results(response) == ["ignored"]
    drain(app)
    assert hubspot_contacts.calls == []


def test_hubspot_late_redelivery_of_an_older_change_is_superseded_and_the_newer_one_kept(
        make_app, sandbox, clock, hubspot_contacts):
    app = make_app()
    newer = post_hubspot(app, clock, [object_change(2, 1795885260000)]).get_json()["events"][0]
    late = post_hubspot(app, clock, [object_change(1, 1795885200000)]).get_json()["events"][0]
    assert newer["result"] == "accepted"
    assert late["result"] == "superseded"
    row = bridge_of(app).store.get(late["id"])
    assert row["status"] == "superseded"
    assert f"superseded on arrival: event {newer['id']} of the same lead reports a later " \
           "change (2026-11-28 17:01:00Z against 2026-11-28 17:00:00Z)" == row["reason"]
    drain(app)
    assert bridge_of(app).store.get(newer["id"])["status"] == "delivered"
    assert bridge_of(app).store.get(late["id"])["status"] == "superseded"
    assert len(hubspot_contacts.calls) == 1 and len(sandbox.recalls()) == 1


# --- Pipedrive: the time zone a time was entered in ------------------------------------------
def pipedrive_time(timezone_id: Any) -> bytes:
    body = json.loads(sample("pipedrive.json"))
    body["data"]["custom_fields"]["8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f"][
        "timezone_id"] = timezone_id
    return json.dumps(body).encode()


def post_pipedrive(app: Any, clock: Clock, body: bytes) -> Any:
    return app.test_client().post("/hooks/pipedrive", **pipedrive_basic(body, clock))


def test_pipedrive_timezone_id_changes_the_recall_date(make_app, sandbox, clock, mappings_dir):
    path = mappings_dir / "pipedrive.yaml"  # the account's ids: here 310 Bogota, 340 Mexico City
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace('"310": America/Bogota', '"310": America/Bogota\n'
                                 '        "340": America/Mexico_City'), encoding="utf-8")
    app = make_app()
    post_pipedrive(app, clock, pipedrive_time(340))
    drain(app)
    # 10:30 in Mexico City (UTC-6) is 11:30 in Bogota (UTC-5), the operation's time
    assert sandbox.recalls()[0]["recall_date"] == "20301201113000"


def test_pipedrive_time_without_a_timezone_id_is_bogota_time(make_app, sandbox, clock):
    app = make_app()
    post_pipedrive(app, clock, pipedrive_time(None))
    drain(app)
    assert sandbox.recalls()[0]["recall_date"] == "20301201103000"


def test_pipedrive_timezone_id_not_in_the_table_is_invalid_naming_the_id(make_app, clock):
    app = make_app()
    [event] = post_pipedrive(app, clock, pipedrive_time(999)).get_json()["events"]
    assert event["result"] == "invalid"
    assert "time zone id '999' is not in the date's `timezones` table" in event["reason"]


# --- Dataverse: a body stripped for size -------------------------------------------------------
def test_dataverse_body_stripped_for_size_is_invalid_with_the_fix_in_its_reason(make_app,
                                                                                clock):
    app = make_app()
    request = dynamics_webhook_key(sample("dynamics-size-exceeded.json"), clock)
    request["headers"]["x-ms-dynamics-msg-size-exceeded"] = "true"
    response = app.test_client().post("/hooks/dynamics", **request)
    [event] = response.get_json()["events"]
    assert event["result"] == "invalid"
    for words in ("stripped this body for size", "x-ms-dynamics-msg-size-exceeded",
                  "256 KB", "filtering attributes", "Post Image"):
        assert words in event["reason"]
    assert counts(app) == {"invalid": 1}


def test_dataverse_full_body_still_makes_its_recall(make_app, clock):
    app = make_app()
    response = app.test_client().post("/hooks/dynamics",
                                      **dynamics_webhook_key(sample("dynamics.json"), clock))
    [event] = response.get_json()["events"]
    assert event["result"] == "accepted"
    assert bridge_of(app).store.get(event["id"])["raw"]["headers"] == {}  # only when sent


# --- the samples as `mappings try` reads them ---------------------------------------------------
@pytest.mark.parametrize("source, file", [
    ("kommo", "kommo.txt"), ("bitrix24", "bitrix24.txt"), ("odoo", "odoo.json"),
    ("rdstation", "rdstation.json"), ("activecampaign", "activecampaign.txt"),
    ("monday", "monday.json"), ("salesforce-flow", "salesforce-flow.json"),
    ("hubspot", "hubspot-object.json"), ("pipedrive", "pipedrive.json")])
def test_mappings_try_maps_each_new_sample(app, source, file):
    result = app.test_cli_runner().invoke(args=["mappings", "try", source,
                                                str(ROOT / "mappings/samples" / file)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("event 0: ok  id="), result.output

