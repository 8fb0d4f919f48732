"""webhooks.crm.formats: request bodies in each declared format -> Python data."""

import time

import pytest
from defusedxml.ElementTree import fromstring

from webhooks.crm.formats import (
    FORMATS,
    SALESFORCE_CONTENT_TYPE,
    FormatError,
    parse_body,
    salesforce_ack,
    salesforce_fault,
)

SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
OUTBOUND = "http://soap.sforce.com/2005/09/outbound"
BOM = b"\xef\xbb\xbf"

# The sample of docs/crm-webhooks.md, as Salesforce sends it.
SALESFORCE_SAMPLE = b"""\
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"
    xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
 <soapenv:Body>
  <notifications xmlns="http://soap.sforce.com/2005/09/outbound">
   <OrganizationId>00D5e000000AbCdEAK</OrganizationId>
   <ActionId>04k5e000000AbCdAAK</ActionId>
   <SessionId xsi:nil="true"/>
   <EnterpriseUrl>https://example.my.salesforce.com/services/Soap/c/59.0/00D5e000000AbCd</EnterpriseUrl>
   <PartnerUrl>https://example.my.salesforce.com/services/Soap/u/59.0/00D5e000000AbCd</PartnerUrl>
   <Notification>
    <Id>04l5e000000XyZ1AAK</Id>
    <sObject xsi:type="sf:Lead" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">
     <sf:Id>00Q5e000001AbCdEAK</sf:Id>
     <sf:Phone>(555) 010-2345</sf:Phone>
     <sf:Callback_At__c>2026-11-30T15:30:00.000Z</sf:Callback_At__c>
    </sObject>
   </Notification>
  </notifications>
 </soapenv:Body>
</soapenv:Envelope>
"""

SAMPLE_PARSED = {
    "OrganizationId": "00D5e000000AbCdEAK",
    "ActionId": "04k5e000000AbCdAAK",
    "SessionId": None,
    "EnterpriseUrl": "https://example.my.salesforce.com/services/Soap/c/59.0/00D5e000000AbCd",
    "PartnerUrl": "https://example.my.salesforce.com/services/Soap/u/59.0/00D5e000000AbCd",
    "Notification": [
        {
            "Id": "04l5e000000XyZ1AAK",
            "sObject": {
                "type": "Lead",
                "Id": "00Q5e000001AbCdEAK",
                "Phone": "(555) 010-2345",
                "Callback_At__c": "2026-11-30T15:30:00.000Z",
            },
        }
    ],
}

# The acknowledgement documented in docs/crm-webhooks.md.
DOCUMENTED_ACK = """\
<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">
 <soapenv:Body>
  <notificationsResponse xmlns="http://soap.sforce.com/2005/09/outbound">
   <Ack>true</Ack>
  </notificationsResponse>
 </soapenv:Body>
</soapenv:Envelope>
"""


def outbound_message(notifications: str, prolog: str = "") -> bytes:
    """A Salesforce Outbound Message around the given Notification elements."""
    return f"""{prolog}<soapenv:Envelope xmlns:soapenv="{SOAP}"
    xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
 <soapenv:Body>
  <notifications xmlns="{OUTBOUND}">
   <OrganizationId>00D5e000000AbCdEAK</OrganizationId>
   <ActionId>04k5e000000AbCdAAK</ActionId>
   {notifications}
  </notifications>
 </soapenv:Body>
</soapenv:Envelope>""".encode()


def lead_notification(n: int, fields: str = "") -> str:
    return f"""<Notification><Id>04l5e00000000{n:04d}</Id>
    <sObject xsi:type="sf:Lead" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">
     <sf:Id>00Q5e00000000{n:04d}</sf:Id>{fields}
    </sObject></Notification>"""


def test_formats_lists_the_three_formats():
    assert FORMATS == ("json", "form", "salesforce")
    assert SALESFORCE_CONTENT_TYPE == "text/xml; charset=utf-8"


def test_unknown_format_is_a_configuration_error_not_a_format_error():
    with pytest.raises(ValueError, match="unknown body format") as caught:
        parse_body("yaml", b"a: 1", None)
    assert not isinstance(caught.value, FormatError)


# --- Salesforce Outbound Messages ---------------------------------------------------------


def test_salesforce_documented_sample_is_parsed_to_the_exact_dict():
    assert parse_body("salesforce", SALESFORCE_SAMPLE, "text/xml") == SAMPLE_PARSED


def test_salesforce_message_with_three_notifications_gives_three_events():
    body = outbound_message("".join(lead_notification(n) for n in range(3)))
    parsed = parse_body("salesforce", body, "text/xml")
    assert [n["Id"] for n in parsed["Notification"]] == [
        "04l5e000000000000",
        "04l5e000000000001",
        "04l5e000000000002",
    ]
    assert [n["sObject"]["Id"] for n in parsed["Notification"]][2] == "00Q5e000000000002"


def test_salesforce_nil_field_is_none_and_empty_field_is_empty_string():
    fields = '<sf:Phone xsi:nil="true"/><sf:Callback_At__c></sf:Callback_At__c>'
    parsed = parse_body("salesforce", outbound_message(lead_notification(1, fields)), None)
    sobject = parsed["Notification"][0]["sObject"]
    assert sobject["Phone"] is None
    assert sobject["Callback_At__c"] == ""
    assert parsed["SessionId"] is None  # absent header field


@pytest.mark.parametrize("declaration", [b"", b'<?xml version="1.0" encoding="UTF-8"?>\n'])
def test_salesforce_message_with_byte_order_mark_is_parsed(declaration):
    body = BOM + declaration + SALESFORCE_SAMPLE
    assert parse_body("salesforce", body, "text/xml") == SAMPLE_PARSED


def test_salesforce_message_without_notifications_is_an_empty_message():
    parsed = parse_body("salesforce", outbound_message(""), "text/xml")
    assert parsed["Notification"] == []
    assert parsed["OrganizationId"] == "00D5e000000AbCdEAK"


def test_salesforce_message_with_101_notifications_parses_all_for_the_receiver_to_refuse():
    # MAX_EVENTS_PER_REQUEST is the one limit on events, for every format (413 at the receiver)
    body = outbound_message("".join(lead_notification(n) for n in range(101)))
    assert len(parse_body("salesforce", body, "text/xml")["Notification"]) == 101


def test_salesforce_entity_expansion_bomb_is_refused_quickly():
    # Classic "billion laughs": lol9 expands to 10**9 copies of "lol" (3 GB).
    entities = '<!ENTITY lol0 "lol">' + "".join(
        f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10)
    )
    body = outbound_message("", prolog=f"<!DOCTYPE lolz [{entities}]>").replace(
        b"04k5e000000AbCdAAK", b"&lol9;"
    )
    started = time.perf_counter()
    with pytest.raises(FormatError, match="not allowed") as caught:
        parse_body("salesforce", body, "text/xml")
    assert time.perf_counter() - started < 1
    assert "lol" not in str(caught.value)


def test_salesforce_internal_entity_declaration_is_refused():
    body = outbound_message("", prolog='<!DOCTYPE e [<!ENTITY org "00D5e000000AbCdEAK">]>')
    with pytest.raises(FormatError, match="not allowed"):
        parse_body("salesforce", body.replace(b"04k5e000000AbCdAAK", b"&org;"), None)


def test_salesforce_external_entity_is_refused():
    prolog = '<!DOCTYPE e [<!ENTITY secret SYSTEM "file:///etc/passwd">]>'
    body = outbound_message("", prolog=prolog).replace(b"04k5e000000AbCdAAK", b"&secret;")
    with pytest.raises(FormatError, match="not allowed") as caught:
        parse_body("salesforce", body, None)
    assert "root" not in str(caught.value)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"garbage",
        b'{"OrganizationId": "00D5e000000AbCdEAK"}',
        SALESFORCE_SAMPLE[:-40],
        b"<Envelope><Body/></Envelope>",
        f'<soapenv:Envelope xmlns:soapenv="{SOAP}"><soapenv:Body/></soapenv:Envelope>'.encode(),
    ],
    ids=["empty", "garbage", "json", "truncated", "not-soap", "no-notifications"],
)
def test_salesforce_garbage_is_a_format_error(body):
    with pytest.raises(FormatError):
        parse_body("salesforce", body, "text/xml")


def test_salesforce_notification_without_id_is_a_format_error():
    body = outbound_message(lead_notification(1).replace("<Id>04l5e000000000001</Id>", ""))
    with pytest.raises(FormatError, match="no Id"):
        parse_body("salesforce", body, "text/xml")


def test_salesforce_ack_is_the_documented_envelope():
    ack = salesforce_ack()
    assert ack.decode("utf-8") == DOCUMENTED_ACK
    root = fromstring(ack)
    assert root.tag == f"{{{SOAP}}}Envelope"
    assert root.findtext(
        f"{{{SOAP}}}Body/{{{OUTBOUND}}}notificationsResponse/{{{OUTBOUND}}}Ack"
    ) == ("true")


@pytest.mark.parametrize(("client", "code"), [(True, "soapenv:Client"), (False, "soapenv:Server")])
def test_salesforce_fault_carries_the_escaped_message_and_faultcode(client, code):
    fault = salesforce_fault('bad <token> & "org"\x00', client=client)
    assert fault.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    assert b"&lt;token&gt; &amp;" in fault
    fault_el = fromstring(fault).find(f"{{{SOAP}}}Body/{{{SOAP}}}Fault")
    assert fault_el is not None
    assert fault_el.findtext("faultcode") == code
    assert fault_el.findtext("faultstring") == 'bad <token> & "org"'


# --- JSON -----------------------------------------------------------------------------------


def test_json_body_is_parsed():
    assert parse_body("json", b'[{"eventId": 1, "phone": "\xc3\xa9"}]', None) == [
        {"eventId": 1, "phone": "\u00e9"}
    ]


def test_json_with_byte_order_mark_is_parsed():
    assert parse_body("json", BOM + b'{"vid": 123445}', "application/json") == {"vid": 123445}


@pytest.mark.parametrize("body", [b"", b"  \n", b'{"vid": 1,', b"\xff\xfe{}", b"[" * 100_000])
def test_invalid_json_is_a_format_error(body):
    with pytest.raises(FormatError, match="body is not valid JSON"):
        parse_body("json", body, "application/json")


def test_invalid_json_error_says_where_without_echoing_the_body():
    with pytest.raises(FormatError, match="line 2 column 11") as caught:
        parse_body("json", b'{"secret":\n "value", oops}', None)
    assert "secret" not in str(caught.value)


# --- Forms ----------------------------------------------------------------------------------

URLENCODED = "application/x-www-form-urlencoded"


def test_urlencoded_form_is_a_flat_dict_of_strings():
    body = b"phone=%2B57+300+123+4567&name=Jos%C3%A9&empty="
    assert parse_body("form", body, URLENCODED) == {
        "phone": "+57 300 123 4567",
        "name": "Jos\u00e9",
        "empty": "",
    }


def test_form_without_content_type_is_read_as_urlencoded():
    assert parse_body("form", b"a=1&b=2", None) == {"a": "1", "b": "2"}
    assert parse_body("form", b"a=1", "text/plain") == {"a": "1"}


def test_form_with_repeated_key_keeps_the_last_value():
    assert parse_body("form", b"a=1&b=2&a=3", URLENCODED) == {"a": "3", "b": "2"}


def multipart(*parts: tuple[str, str, bytes]) -> bytes:
    """A multipart/form-data body with boundary XyZ; each part is (name, filename, data)."""
    out = b""
    for name, filename, data in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out += f"--XyZ\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + data + b"\r\n"
    return out + b"--XyZ--\r\n"


MULTIPART = "multipart/form-data; boundary=XyZ"


def test_multipart_form_with_two_fields_is_parsed():
    body = multipart(("phone", "", b"+57 300 123 4567"), ("name", "", "Jos\u00e9".encode()))
    assert parse_body("form", body, MULTIPART) == {"phone": "+57 300 123 4567", "name": "Jos\u00e9"}


def test_multipart_file_parts_are_skipped_and_repeated_keys_keep_the_last_value():
    body = multipart(("a", "", b"1"), ("upload", "x.csv", b"x,y\n1,2"), ("a", "", b"2"))
    assert parse_body("form", body, MULTIPART) == {"a": "2"}


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"name=%FF", URLENCODED),
        (b"name=\xff", URLENCODED),
        (b"a=1", "application/x-www-form-urlencoded; charset=no-such-charset"),
        (multipart(("a", "", b"1"))[:-12], MULTIPART),
        (multipart(("a", "", b"\xff")), MULTIPART),
        (multipart(("a", "", b"1")), "multipart/form-data"),
    ],
    ids=["bad-escape", "bad-byte", "bad-charset", "truncated", "multipart-bad-byte", "boundary"],
)
def test_undecodable_form_is_a_format_error(body, content_type):
    with pytest.raises(FormatError):
        parse_body("form", body, content_type)
