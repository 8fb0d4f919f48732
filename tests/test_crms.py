"""Every shipped CRM mapping, end to end: its sample, proven the way that CRM proves a request,
through the receiver and the store to the sandbox wolkvox; forged and repeated deliveries; and
what is special to each CRM (Salesforce's SOAP, HubSpot's batches and contact lookup, the
Standard Webhooks test vector)."""

from __future__ import annotations

import base64
import hmac
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.conftest import ENVIRON, ROOT, Clock, bridge_of, drain
from tests.hubspot_lookalike import HubSpotLookalike
from webhooks.crm.formats import salesforce_ack

SAMPLES = ROOT / "mappings" / "samples"
BOGOTA = ZoneInfo("America/Bogota")

ORG_ID = ENVIRON["SALESFORCE_ORG_ID"]  # the org of samples/salesforce.xml
OTHER_ORG_ID = "00D000000000001AAA"
HUBSPOT_API = "https://api.hubapi.com"
HUBSPOT_CONTACT = 65059681032  # the objectId of samples/hubspot.json

# Standard Webhooks' public test vector.
SW_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SW_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SW_TIMESTAMP = 1614265330
SW_BODY = b'{"test": 2432232314}'
SW_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


# --- how each CRM proves a request: body, clock, forged? -> test client post() arguments ----
def salesforce_request(body: bytes, clock: Clock, forged: bool = False) -> dict[str, Any]:
    if forged:  # Salesforce signs nothing: a forger can only claim some other org
        body = body.replace(ORG_ID.encode(), OTHER_ORG_ID.encode())
    return {"data": body, "headers": {"Content-Type": "text/xml; charset=utf-8",
                                      "SOAPAction": '""'},
            "query_string": {"token": ENVIRON["SALESFORCE_URL_TOKEN"]}}


def hubspot_v3(body: bytes, clock: Clock, forged: bool = False,
               url: str = "http://localhost/hooks/hubspot") -> dict[str, Any]:
    secret = "not-the-app-secret" if forged else ENVIRON["HUBSPOT_CLIENT_SECRET"]
    timestamp = str(int(clock().timestamp() * 1000))
    signed = b"POST" + url.encode() + body + timestamp.encode()
    signature = base64.b64encode(hmac.digest(secret.encode(), signed, "sha256")).decode()
    return {"data": body, "headers": {"Content-Type": "application/json",
                                      "X-HubSpot-Signature-v3": signature,
                                      "X-HubSpot-Request-Timestamp": timestamp}}


def pipedrive_basic(body: bytes, clock: Clock, forged: bool = False) -> dict[str, Any]:
    password = "guessed" if forged else ENVIRON["PIPEDRIVE_WEBHOOK_PASSWORD"]
    credentials = base64.b64encode(f"recall-bridge:{password}".encode()).decode()
    return {"data": body, "headers": {"Content-Type": "application/json",
                                      "Authorization": f"Basic {credentials}"}}


def zoho_form(body: bytes, clock: Clock, forged: bool = False) -> dict[str, Any]:
    token = "guessed" if forged else ENVIRON["ZOHO_WEBHOOK_TOKEN"]
    return {"data": body, "query_string": {"token": token},
            "headers": {"Content-Type": "application/x-www-form-urlencoded; charset=UTF-8"}}


def dynamics_webhook_key(body: bytes, clock: Clock, forged: bool = False) -> dict[str, Any]:
    key = "guessed" if forged else ENVIRON["DYNAMICS_WEBHOOK_KEY"]
    return {"data": body, "query_string": {"code": key},
            "headers": {"Content-Type": "application/json",
                        "x-ms-dynamics-organization": "example.crm.dynamics.com",
                        "x-ms-dynamics-entity-name": "contact",
                        "x-ms-dynamics-request-name": "Update"}}


def standard_webhooks(body: bytes, clock: Clock, forged: bool = False,
                      msg_id: str = "msg_2Kq0sample") -> dict[str, Any]:
    secret = "whsec_" + base64.b64encode(b"f" * 24).decode() if forged \
        else ENVIRON["ZAPIER_WEBHOOK_SECRET"]
    timestamp = str(int(clock().timestamp()))
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.digest(key, f"{msg_id}.{timestamp}.".encode() + body, "sha256")
    return {"data": body, "headers": {"Content-Type": "application/json",
                                      "webhook-id": msg_id, "webhook-timestamp": timestamp,
                                      "webhook-signature": "v1," + base64.b64encode(digest)
                                      .decode()}}


@dataclass(frozen=True)
class Crm:
    """A shipped mapping, its sample, how the CRM proves a request, and the recall it makes."""

    source: str
    sample: str
    prove: Callable[..., dict[str, Any]]
    customer_id: str
    recall_date: str
    recall_telephone: str = "93001234567"

    @property
    def soap(self) -> bool:
        return self.source == "salesforce"

    def post(self, app: Any, clock: Clock, forged: bool = False,
             body: bytes | None = None) -> Any:
        body = sample(self.sample) if body is None else body
        return app.test_client().post(f"/hooks/{self.source}",
                                      **self.prove(body, clock, forged))


CRMS = [
    Crm("salesforce", "salesforce.xml", salesforce_request, "00Q5e000001AbCdEAK",
        "20301201103000"),
    Crm("hubspot", "hubspot.json", hubspot_v3, str(HUBSPOT_CONTACT), "20301201103000"),
    Crm("pipedrive", "pipedrive.json", pipedrive_basic, "123", "20301201103000"),
    Crm("zoho", "zoho.txt", zoho_form, "4876876000000423001", "20301201103000"),
    Crm("dynamics", "dynamics.json", dynamics_webhook_key,
        "6d81597f-0f9f-e711-8122-000d3aa2331c", "20301231110000"),
    Crm("zapier-signed", "zapier-signed.json", standard_webhooks, "98766", "20301202090000",
        "93017654321"),
]
BY_SOURCE = {crm.source: crm for crm in CRMS}
each_crm = pytest.mark.parametrize("crm", CRMS, ids=[crm.source for crm in CRMS])


# --- the HubSpot CRM API look-alike ----------------------------------------------------------
@pytest.fixture
def hubspot_api(hubspot_server: HubSpotLookalike, mappings_dir: Path) -> HubSpotLookalike:
    """The look-alike, knowing the sample's contact, and this test's copy of hubspot.yaml
    pointed at it (the shipped file points at api.hubapi.com unless HUBSPOT_API_URL says)."""
    hubspot_server.reset()
    hubspot_server.add_contact(HUBSPOT_CONTACT, phone="+57 300 123 4567",
                               callback_at="2030-12-01T15:30:00Z", firstname="Max")
    point_hubspot_at(hubspot_server, mappings_dir)
    return hubspot_server


def point_hubspot_at(server: HubSpotLookalike, mappings_dir: Path) -> None:
    """This test's copy of hubspot.yaml calls `server` instead of api.hubapi.com."""
    path = mappings_dir / "hubspot.yaml"
    text = path.read_text(encoding="utf-8")
    default = f"${{HUBSPOT_API_URL:-{HUBSPOT_API}}}"
    assert default in text
    path.write_text(text.replace(default, server.url), encoding="utf-8")


# --- helpers ---------------------------------------------------------------------------------
def counts(app: Any) -> dict[str, int]:
    return bridge_of(app).store.counts()


def results(response: Any) -> list[str]:
    return [event["result"] for event in response.get_json()["events"]]


def soon(clock: Clock) -> str:
    """Where a recall for "now" lands: the minimum lead (30 min) ahead, Bogota wall time."""
    least = clock() + timedelta(minutes=30)
    if least.microsecond:  # never a fraction short of the lead: rounded up to a whole second
        least = least.replace(microsecond=0) + timedelta(seconds=1)
    return least.astimezone(BOGOTA).strftime("%Y%m%d%H%M%S")


def assert_ack(response: Any) -> None:
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.content_type.startswith("text/xml")
    assert response.get_data() == salesforce_ack()


def assert_soap_fault(response: Any, status: int) -> None:
    assert response.status_code == status
    assert response.content_type.startswith("text/xml")
    body = response.get_data(as_text=True)
    assert "<soapenv:Fault>" in body and "soapenv:Client" in body and "<Ack>" not in body


def outbound_message(*leads: tuple[str, str, str, str], org: str = ORG_ID) -> bytes:
    """A Salesforce Outbound Message with one Notification per (id, lead id, phone, callback)."""
    notifications = "".join(f"""
   <Notification>
    <Id>{notification_id}</Id>
    <sObject xsi:type="sf:Lead" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">
     <sf:Id>{lead_id}</sf:Id>
     <sf:Phone>{phone}</sf:Phone>
     <sf:Callback_At__c>{callback}</sf:Callback_At__c>
    </sObject>
   </Notification>""" for notification_id, lead_id, phone, callback in leads)
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"
    xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
 <soapenv:Body>
  <notifications xmlns="http://soap.sforce.com/2005/09/outbound">
   <OrganizationId>{org}</OrganizationId>
   <ActionId>04k5e000000AbCdAAK</ActionId>
   <SessionId xsi:nil="true"/>{notifications}
  </notifications>
 </soapenv:Body>
</soapenv:Envelope>
""".encode()


def hubspot_event(n: int, object_id: int = HUBSPOT_CONTACT, **changes: Any) -> dict[str, Any]:
    return {"eventId": 1000 + n, "subscriptionId": 234567, "portalId": 12345678,
            "appId": 987654, "occurredAt": 1795939200000 + n,
            "subscriptionType": "contact.propertyChange", "attemptNumber": 0,
            "objectId": object_id, "propertyName": "callback_requested",
            "propertyValue": "true", "changeSource": "CRM_UI", **changes}


def post_hubspot(app: Any, clock: Clock, events: list[dict[str, Any]]) -> Any:
    return BY_SOURCE["hubspot"].post(app, clock, body=json.dumps(events).encode())


# --- every CRM -------------------------------------------------------------------------------
@each_crm
def test_authenticated_sample_is_mapped_and_reaches_wolkvox(crm, make_app, sandbox, clock,
                                                            hubspot_api):
    app = make_app()
    response = crm.post(app, clock)
    if crm.soap:
        assert_ack(response)
    else:
        assert response.status_code == 202, response.get_data(as_text=True)
        assert "accepted" in results(response)
    ignored = {"ignored": 1} if crm.source == "hubspot" else {}  # the sample's other event
    assert counts(app) == {"queued": 1, **ignored}
    drain(app)
    assert counts(app) == {"delivered": 1, **ignored}
    [recall] = sandbox.recalls()
    assert {k: recall[k] for k in ("type_campaign", "campaign_id", "customer_id",
                                   "recall_telephone", "recall_date")} == {
        "type_campaign": "predictive", "campaign_id": ENVIRON["WOLKVOX_CAMPAIGN_ID"],
        "customer_id": crm.customer_id, "recall_telephone": crm.recall_telephone,
        "recall_date": crm.recall_date}


@each_crm
def test_forged_request_is_refused_and_nothing_is_stored(crm, make_app, sandbox, clock,
                                                         hubspot_api):
    app = make_app()
    response = crm.post(app, clock, forged=True)
    if crm.soap:
        assert_soap_fault(response, 401)
    else:
        assert response.status_code == 401
        assert "not authenticated" in response.get_json()["error"]
    assert counts(app) == {}
    drain(app)
    assert sandbox.recalls() == []


@each_crm
def test_duplicate_delivery_is_answered_without_a_second_recall(crm, make_app, sandbox, clock,
                                                                hubspot_api):
    app = make_app()
    first, second = crm.post(app, clock), crm.post(app, clock)
    if crm.soap:  # Salesforce must get its Ack for the repeat too, or it resends again
        assert_ack(first)
        assert_ack(second)
    else:
        assert second.status_code == 202
        assert set(results(second)) == {"duplicate"}  # an ignored event is kept, so too
        assert second.get_json()["events"][0]["id"] == first.get_json()["events"][0]["id"]
    assert sum(counts(app).values()) == len(results(first)) if not crm.soap else 1
    drain(app)
    assert len(sandbox.recalls()) == 1


# --- Salesforce ------------------------------------------------------------------------------
SALESFORCE = BY_SOURCE["salesforce"]


def test_salesforce_message_of_three_notifications_makes_three_recalls_and_one_ack(
        make_app, sandbox, clock):
    app = make_app()
    body = outbound_message(
        ("04l5e000000XyZ1AAK", "00Q5e000001AAAAEAK", "300 123 4567", "2030-12-01T15:30:00.000Z"),
        ("04l5e000000XyZ2AAK", "00Q5e000001BBBBEAK", "301 765 4321", "2030-12-02T15:30:00.000Z"),
        ("04l5e000000XyZ3AAK", "00Q5e000001CCCCEAK", "+57 310 555 1234", ""))
    response = SALESFORCE.post(app, clock, body=body)
    assert_ack(response)
    assert counts(app) == {"queued": 3}
    drain(app)
    recalls = {r["customer_id"]: (r["recall_telephone"], r["recall_date"])
               for r in sandbox.recalls()}
    assert recalls == {"00Q5e000001AAAAEAK": ("93001234567", "20301201103000"),
                       "00Q5e000001BBBBEAK": ("93017654321", "20301202103000"),
                       "00Q5e000001CCCCEAK": ("93105551234", soon(clock))}


def test_salesforce_other_org_gets_a_soap_fault_401_and_nothing_is_stored(make_app, clock):
    app = make_app()
    body = outbound_message(("04l5e000000XyZ1AAK", "00Q5e000001AAAAEAK", "300 123 4567",
                             "2030-12-01T15:30:00.000Z"), org=OTHER_ORG_ID)
    response = SALESFORCE.post(app, clock, body=body)
    assert_soap_fault(response, 401)
    assert "OrganizationId" in response.get_data(as_text=True)
    assert counts(app) == {}


def test_salesforce_org_id_in_its_15_character_form_is_our_org(make_app, clock):
    app = make_app()
    body = sample("salesforce.xml").replace(ORG_ID.encode(), ORG_ID[:15].encode())
    assert_ack(SALESFORCE.post(app, clock, body=body))
    assert counts(app) == {"queued": 1}


def test_salesforce_message_starting_with_a_byte_order_mark_is_acknowledged(make_app, clock):
    app = make_app()
    response = SALESFORCE.post(app, clock, body=b"\xef\xbb\xbf" + sample("salesforce.xml"))
    assert_ack(response)
    assert counts(app) == {"queued": 1}


def test_salesforce_entity_expansion_bomb_is_refused_quickly_and_nothing_is_stored(
        make_app, clock):
    app = make_app()
    entities = '<!ENTITY lol0 "lol">' + "".join(
        f'<!ENTITY lol{n} "{f"&lol{n - 1};" * 10}">' for n in range(1, 10))
    bomb = sample("salesforce.xml").replace(
        b"<soapenv:Envelope", f"<!DOCTYPE soapenv:Envelope [{entities}]>\n<soapenv:Envelope"
        .encode(), 1).replace(b"(300) 123-4567", b"&lol9;")  # 10^9 "lol"s if expanded
    started = time.perf_counter()
    response = SALESFORCE.post(app, clock, body=bomb)
    assert time.perf_counter() - started < 1.0
    assert_soap_fault(response, 400)
    assert "DTD" in response.get_data(as_text=True)
    assert counts(app) == {}


# --- HubSpot webhooks API: batches and the contact lookup --------------------------------
def test_hubspot_batch_of_100_events_in_one_request_makes_100_recalls(make_app, sandbox,
                                                                      clock, hubspot_api):
    app = make_app()
    for n in range(100):
        hubspot_api.add_contact(1000 + n, phone=f"300 123 {4500 + n}",
                                callback_at="2030-12-01T15:30:00Z")
    response = post_hubspot(app, clock, [hubspot_event(n, 1000 + n) for n in range(100)])
    assert response.status_code == 202
    assert response.get_json()["counts"] == {"accepted": 100}
    drain(app, passes=5)
    assert counts(app) == {"delivered": 100}
    recalls = sandbox.recalls()
    assert sorted(r["customer_id"] for r in recalls) == [str(1000 + n) for n in range(100)]
    assert {r["recall_telephone"] for r in recalls} == {f"9300123{4500 + n}" for n in range(100)}


def test_hubspot_lookup_fetches_the_contact_with_the_token_then_the_recall_is_sent(
        make_app, sandbox, clock, hubspot_api):
    app = make_app()
    response = post_hubspot(app, clock, [hubspot_event(1)])
    event_id = response.get_json()["events"][0]["id"]
    assert bridge_of(app).store.get(event_id)["reason"] == "waiting for the CRM lookup"
    assert hubspot_api.calls == []  # never on the request path
    drain(app)
    [call] = hubspot_api.calls
    assert call["id"] == str(HUBSPOT_CONTACT)
    assert call["authorization"] == f"Bearer {ENVIRON['HUBSPOT_PRIVATE_APP_TOKEN']}"
    assert {"phone", "mobilephone", "callback_at"} <= set(call["properties"])
    assert bridge_of(app).store.get(event_id)["status"] == "delivered"
    [recall] = sandbox.recalls()
    assert (recall["customer_id"], recall["recall_telephone"], recall["recall_date"]) == (
        str(HUBSPOT_CONTACT), "93001234567", "20301201103000")


def test_hubspot_contact_not_in_the_crm_fails_the_event_with_the_reason(make_app, sandbox,
                                                                        clock, hubspot_api):
    app = make_app()
    response = post_hubspot(app, clock, [hubspot_event(1, object_id=404404)])
    event_id = response.get_json()["events"][0]["id"]
    drain(app)
    row = bridge_of(app).store.get(event_id)
    assert row["status"] == "failed"
    assert "lookup: HubSpot contact 404404 not found (HTTP 404)" in row["reason"]
    assert sandbox.recalls() == []


def test_hubspot_lookup_answering_500_is_retried_and_delivered_after_the_backoff(
        make_app, sandbox, clock, hubspot_api):
    app = make_app()
    hubspot_api.fail_next(500)
    response = post_hubspot(app, clock, [hubspot_event(1)])
    event_id = response.get_json()["events"][0]["id"]
    drain(app)
    row = bridge_of(app).store.get(event_id)
    assert row["status"] == "queued" and row["attempts"] == 1
    assert "HTTP 500" in row["reason"]
    assert sandbox.recalls() == []
    clock.advance(seconds=15)  # the first backoff is 10 s, give or take 20 %
    drain(app)
    assert bridge_of(app).store.get(event_id)["status"] == "delivered"
    assert len(hubspot_api.calls) == 2 and len(sandbox.recalls()) == 1


def test_hubspot_events_sharing_an_event_id_are_told_apart_by_the_composite_key(
        make_app, clock, hubspot_api):
    app = make_app()  # HubSpot: eventId alone "is not guaranteed to be unique"
    same_id = [hubspot_event(1), hubspot_event(1, object_id=77), hubspot_event(1, occurredAt=5)]
    response = post_hubspot(app, clock, same_id)
    # the third is an older change of the first one's contact: kept, superseded on arrival
    assert results(response) == ["accepted", "accepted", "superseded"]
    keys = {bridge_of(app).store.get(e["id"])["dedup_key"] for e in response.get_json()["events"]}
    assert f"12345678:234567:1001:{HUBSPOT_CONTACT}:1795939200001" in keys and len(keys) == 3
    assert results(post_hubspot(app, clock, same_id)) == ["duplicate"] * 3


def test_hubspot_events_the_mapping_does_not_want_are_ignored_not_looked_up(
        make_app, clock, hubspot_api):
    app = make_app()
    response = post_hubspot(app, clock, [
        hubspot_event(1, propertyName="lifecyclestage", propertyValue="lead"),
        hubspot_event(2, propertyValue="false"),
        hubspot_event(3, subscriptionType="contact.creation")])
    assert results(response) == ["ignored"] * 3
    drain(app)
    assert counts(app) == {"ignored": 3} and hubspot_api.calls == []
    reasons = [e["reason"] for e in response.get_json()["events"]]
    assert all(r.startswith("ignored: the mapping's `when` is false") for r in reasons)


# --- Standard Webhooks -----------------------------------------------------------------------
def sw_vector_headers() -> dict[str, str]:
    return {"Content-Type": "application/json", "webhook-id": SW_ID,
            "webhook-timestamp": str(SW_TIMESTAMP), "webhook-signature": SW_SIGNATURE}


def test_standard_webhooks_public_vector_passes_the_receiver_at_its_time(make_app, clock):
    clock.now = datetime.fromtimestamp(SW_TIMESTAMP, UTC)
    app = make_app(environ={"ZAPIER_WEBHOOK_SECRET": SW_SECRET})
    response = app.test_client().post("/hooks/zapier-signed", data=SW_BODY,
                                      headers=sw_vector_headers())
    assert response.status_code == 202, response.get_data(as_text=True)
    [event] = response.get_json()["events"]
    # Authentic, but {"test": ...} is no callback request: kept as invalid, under the
    # message's webhook-id, for an operator to see.
    assert event["result"] == "invalid"
    stored = bridge_of(app).store.get(event["id"])
    assert stored["dedup_key"] == SW_ID and stored["raw"] == {"test": 2432232314}


def test_standard_webhooks_public_vector_is_refused_six_minutes_later(make_app, clock):
    clock.now = datetime.fromtimestamp(SW_TIMESTAMP + 360, UTC)
    app = make_app(environ={"ZAPIER_WEBHOOK_SECRET": SW_SECRET})
    response = app.test_client().post("/hooks/zapier-signed", data=SW_BODY,
                                      headers=sw_vector_headers())
    assert response.status_code == 401
    assert "timestamp" in response.get_json()["error"]
    assert counts(app) == {}


# --- Pipedrive, Dynamics: only the callback change makes a recall ----------------------------
def test_pipedrive_person_edit_that_leaves_the_callback_fields_alone_is_ignored(make_app,
                                                                                  clock):
    app = make_app()
    event = json.loads(sample("pipedrive.json"))
    event["meta"]["id"] = "another-event"
    event["previous"] = {"name": "Ana G."}
    response = BY_SOURCE["pipedrive"].post(app, clock, body=json.dumps(event).encode())
    assert results(response) == ["ignored"]
    assert counts(app) == {"ignored": 1}


def test_dynamics_update_that_clears_the_callback_flag_is_ignored(make_app, clock):
    app = make_app()
    body = sample("dynamics.json").replace(
        b'{"key": "new_callbackrequested", "value": true}',
        b'{"key": "new_callbackrequested", "value": false}')
    assert b'"value": false}' in body
    response = BY_SOURCE["dynamics"].post(app, clock, body=body)
    assert results(response) == ["ignored"]
    assert counts(app) == {"ignored": 1}


# --- Zoho: no event id, the lead and its modified time make one ------------------------------
def test_zoho_later_edit_of_the_same_lead_is_a_new_event_that_supersedes_the_first(
        make_app, sandbox, clock):
    app = make_app()
    zoho = BY_SOURCE["zoho"]
    first = zoho.post(app, clock).get_json()["events"][0]
    later = sample("zoho.txt").replace(b"08%3A15%3A42", b"09%3A00%3A00").replace(
        b"2030-12-01T10", b"2030-12-03T10")
    second = zoho.post(app, clock, body=later).get_json()["events"][0]
    assert second["result"] == "accepted" and second["superseded"] == [first["id"]]
    drain(app)
    [recall] = sandbox.recalls()
    assert recall["recall_date"] == "20301203103000"


def test_hubspot_changes_of_one_contact_in_a_burst_cost_one_lookup_and_one_recall(
        make_app, sandbox, clock, hubspot_api):
    app = make_app()
    response = post_hubspot(app, clock, [hubspot_event(n) for n in range(3)])
    ids = [e["id"] for e in response.get_json()["events"]]
    drain(app)
    statuses = [bridge_of(app).store.get(i)["status"] for i in ids]
    assert statuses == ["superseded", "superseded", "delivered"]
    assert len(hubspot_api.calls) == 1
    assert len(sandbox.recalls()) == 1


def test_hubspot_rate_limit_is_retried_no_sooner_than_its_retry_after(make_app, sandbox, clock,
                                                                       hubspot_api):
    app = make_app()
    hubspot_api.fail_next(429)
    response = post_hubspot(app, clock, [hubspot_event(1)])
    event_id = response.get_json()["events"][0]["id"]
    drain(app)
    row = bridge_of(app).store.get(event_id)
    assert row["status"] == "queued" and "429" in row["reason"]
    assert row["next_attempt_at"] - clock().timestamp() >= 60
    clock.advance(seconds=61)
    drain(app)
    assert bridge_of(app).store.get(event_id)["status"] == "delivered"


def test_hubspot_refusing_the_lookup_token_holds_it_and_says_so_without_burning_attempts(
        make_app, clock, hubspot_api):
    app = make_app(environ={"HUBSPOT_PRIVATE_APP_TOKEN": "revoked-token"},
                   token_probe_interval=60)
    hubspot_api.add_contact(77, phone="+57 301 555 1234", callback_at="2030-12-01T15:30:00Z")
    response = post_hubspot(app, clock, [hubspot_event(1), hubspot_event(2, object_id=77)])
    ids = [e["id"] for e in response.get_json()["events"]]
    drain(app)
    rows = [bridge_of(app).store.get(i) for i in ids]
    assert all(row["status"] == "queued" and row["attempts"] == 0 for row in rows)
    assert all("refused the credentials for HubSpot contact (HTTP 401)" in row["reason"]
               for row in rows)
    assert all("revoked-token" not in row["reason"] for row in rows)
    assert len(hubspot_api.calls) <= 1  # one refusal, then the credentials are held
    [hold] = [h for key, h in bridge_of(app).store.holds().items() if key.startswith("lookup:")]
    assert hold["kind"] == "lookup"
    fixed = make_app()  # the right token, same database: the next probe works, the hold goes
    clock.advance(seconds=61)
    drain(fixed)
    assert all(bridge_of(fixed).store.get(i)["status"] == "delivered" for i in ids)
    assert bridge_of(fixed).store.holds() == {}
