"""Raw request bodies -> Python data, by the format a source declares.

Three formats: ``json``, ``form`` (urlencoded or multipart) and ``salesforce`` (a SOAP 1.1
Outbound Message). Each is a :class:`Format` (:func:`format_of` picks a source's): it reads a
body and owns the CRM's answer convention, JSON for ``json`` and ``form``, a SOAP Ack or Fault
for ``salesforce``. Everything here is a pure function of its input; the receiver only sends
the :class:`Reply` it is given.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import ParseError, fromstring
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.http import parse_options_header
from werkzeug.sansio.multipart import Data, Epilogue, Field, File, MultipartDecoder

if TYPE_CHECKING:
    from xml.etree.ElementTree import Element

FORMATS: tuple[str, ...] = ("json", "form", "salesforce")
SALESFORCE_CONTENT_TYPE = "text/xml; charset=utf-8"

# Deeper than this is no CRM's body; bounding it keeps every recursive walk (JMESPath, the
# JSON column's encoder, the store's cleaning) far from Python's recursion limit.
MAX_DEPTH = 64
# Bounds the work a hostile form body can cause; no CRM sends anywhere near this many fields.
MAX_FORM_FIELDS = 1000
# Outbound Message fields are flat; nesting this deep is not a Salesforce message.
MAX_SOBJECT_DEPTH = 5

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
OUTBOUND_NS = "http://soap.sforce.com/2005/09/outbound"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"

_BOM = b"\xef\xbb\xbf"
# Characters XML 1.0 cannot carry at all, even escaped: dropped from fault messages.
_NOT_XML_CHAR = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")

_ACK = f"""<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="{SOAP_ENV}">
 <soapenv:Body>
  <notificationsResponse xmlns="{OUTBOUND_NS}">
   <Ack>true</Ack>
  </notificationsResponse>
 </soapenv:Body>
</soapenv:Envelope>
""".encode()
_FAULT = f"""<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="{SOAP_ENV}">
 <soapenv:Body>
  <soapenv:Fault>
   <faultcode>soapenv:{{code}}</faultcode>
   <faultstring>{{text}}</faultstring>
  </soapenv:Fault>
 </soapenv:Body>
</soapenv:Envelope>
"""


class FormatError(ValueError):
    """The body cannot be read as the declared format.

    ``str(error)`` is a short reason that is safe to return to the sender and to log: it never
    echoes the body beyond a position.
    """


@dataclass(frozen=True)
class Reply:
    """What the hook sends back: `data` rendered as JSON by the web layer, or `body` as is
    (with its `content_type`) when `data` is None."""

    status: int
    data: Mapping[str, Any] | None = None
    body: bytes = b""
    content_type: str = "application/json"
    headers: Mapping[str, str] = field(default_factory=dict)


class Format:
    """A body format and the answer convention of the CRMs that send it: JSON, which carries
    the events' results and the mapping's `answer.status`."""

    name: ClassVar[str]
    sample_type: ClassVar[str]  # the Content-Type a sample body is read with
    answers_events: ClassVar[bool] = True  # the answer lists each event's result

    def parse(self, body: bytes, content_type: str | None) -> Any:
        """``body`` as Python data; FormatError when it cannot be read. ``content_type`` is
        the request's Content-Type (only ``form`` reads it)."""
        raise NotImplementedError

    def accepted(self, answer: Mapping[str, Any], status: int) -> Reply:
        """The request is kept (stored or spooled): `answer` with `status` (the mapping's
        `answer.status`, or 200 once delivered)."""
        return Reply(status, answer)

    def handshake(self, answer: Any) -> Reply:
        """The CRM proving the endpoint (monday.com's challenge): its expected answer."""
        return Reply(200, answer if isinstance(answer, dict) else {"answer": answer})

    def refusal(self, status: int, message: str) -> Reply:
        """The request is refused with `status`; `message` says why (never the body)."""
        return Reply(status, {"error": message})

    def unavailable(self, retry_after: str) -> Reply:
        """Nothing could be kept (the store and the spool are down): the CRM must retry."""
        return Reply(503, {"error": "storage unavailable; nothing was stored, retry later"},
                      headers={"Retry-After": retry_after})


class JsonFormat(Format):
    name, sample_type = "json", "application/json"

    def parse(self, body: bytes, content_type: str | None) -> Any:
        return _parse_json(body)


class FormFormat(Format):
    name, sample_type = "form", "application/x-www-form-urlencoded"

    def parse(self, body: bytes, content_type: str | None) -> Any:
        return _parse_form(body, content_type)


class SalesforceFormat(Format):
    """Salesforce stops redelivering an Outbound Message only on a SOAP Ack; anything else,
    a Fault included, is redelivered. Its answers never carry events."""

    name, sample_type = "salesforce", "text/xml"
    answers_events = False

    def parse(self, body: bytes, content_type: str | None) -> Any:
        return _parse_salesforce(body)

    def accepted(self, answer: Mapping[str, Any], status: int) -> Reply:
        return _soap(salesforce_ack(), 200)

    def refusal(self, status: int, message: str) -> Reply:
        return _soap(salesforce_fault(message, client=True), status)

    def unavailable(self, retry_after: str) -> Reply:
        return _soap(salesforce_fault("storage unavailable, retry later"), 500)


def _soap(body: bytes, status: int) -> Reply:
    return Reply(status, body=body, content_type=SALESFORCE_CONTENT_TYPE)


_BY_NAME: dict[str, Format] = {f.name: f for f in (JsonFormat(), FormFormat(),
                                                    SalesforceFormat())}


def format_of(name: str) -> Format:
    """The format a source declares (one of :data:`FORMATS`); ValueError for another name
    (a configuration bug, not the sender's fault)."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ValueError(f"unknown body format {name!r}; expected one of "
                         f"{', '.join(FORMATS)}") from None


def parse_body(fmt: str, body: bytes, content_type: str | None) -> Any:
    """Parse ``body`` as ``fmt`` (one of :data:`FORMATS`).

    ``content_type`` is the request's Content-Type header; only ``form`` uses it (to tell
    multipart from urlencoded and to find the boundary and charset).

    Raises :class:`FormatError` when the body cannot be read, and a plain :class:`ValueError`
    for an unknown ``fmt`` (a configuration bug, not the sender's fault).
    """
    return format_of(fmt).parse(body, content_type)


_BRACKETS = re.compile(r"\[([^\[\]]*)\]")


def unflatten(fields: dict[str, str]) -> dict[str, Any]:
    """Bracketed form keys as nested objects, the way PHP reads them (Kommo, Bitrix24 and
    ActiveCampaign post them): `leads[status][0][id]=1` gives
    {"leads": {"status": [{"id": "1"}]}}. A level whose keys are exactly 0..n-1 becomes a
    list. Raises FormatError when one key is both a value and an object (`a=1&a[b]=2`), or
    nests deeper than MAX_DEPTH."""
    root: dict[str, Any] = {}
    for key, value in fields.items():
        head, _, rest = key.partition("[")
        parts = [head] + (_BRACKETS.findall("[" + rest) if rest else [])
        if len(parts) > MAX_DEPTH:
            raise FormatError(f"form key nests more than {MAX_DEPTH} levels")
        node = root
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            here = node.get(part)
            if last:
                if isinstance(here, dict):
                    raise FormatError("a form key is both a value and an object")
                node[part] = value
            elif here is None:
                node[part] = node = {}
            elif isinstance(here, dict):
                node = here
            else:
                raise FormatError("a form key is both a value and an object")
    return _lists(root)


def _lists(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    items = {key: _lists(value) for key, value in node.items()}
    if items and set(items) == {str(n) for n in range(len(items))}:
        return [items[str(n)] for n in range(len(items))]
    return items


def salesforce_ack() -> bytes:
    """The SOAP acknowledgement Salesforce needs (``<Ack>true</Ack>``) to stop redelivering."""
    return _ACK


def salesforce_fault(message: str, *, client: bool = False) -> bytes:
    """A SOAP 1.1 Fault carrying ``message`` (XML-escaped).

    ``client=True`` gives ``soapenv:Client`` (the message itself is at fault: bad auth, bad
    body); otherwise ``soapenv:Server`` (we failed, e.g. storage is down). Salesforce retries
    either way, since neither is an Ack.
    """
    code = "Client" if client else "Server"
    return _FAULT.format(code=code, text=escape(_NOT_XML_CHAR.sub("", message))).encode()


def _parse_json(body: bytes) -> Any:
    """UTF-8 JSON (a leading byte order mark is dropped). NaN, Infinity and numbers too large
    for a float are refused: they are not JSON (RFC 8259) and PostgreSQL's JSON refuses them."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise FormatError(f"body is not valid JSON: not UTF-8 (byte {e.start})") from None
    if not text.strip():
        raise FormatError("body is not valid JSON: the body is empty")
    try:
        data = json.loads(text, parse_constant=_no_constant, parse_float=_finite)
    except json.JSONDecodeError as e:
        raise FormatError(
            f"body is not valid JSON: {e.msg} at line {e.lineno} column {e.colno}"
        ) from None
    except RecursionError:
        raise FormatError("body is not valid JSON: nested too deeply") from None
    except ValueError as e:  # an integer past Python's digit limit, NaN, Infinity, 1e999
        raise FormatError(f"body is not usable JSON: {str(e).split(';')[0][:120]}") from None
    _check_depth(data)
    return data


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"the number {text[:20]} is too large")
    return number


def _check_depth(data: Any) -> None:
    """FormatError when lists and objects nest deeper than MAX_DEPTH (iterative: no recursion)."""
    level: list[Any] = [data]
    for _ in range(MAX_DEPTH + 1):
        level = [child for item in level if isinstance(item, dict | list)
                 for child in (item.values() if isinstance(item, dict) else item)]
        if not level:
            return
    raise FormatError(f"body nests lists or objects more than {MAX_DEPTH} levels deep")


def _parse_form(body: bytes, content_type: str | None) -> dict[str, str]:
    """Form fields as a flat ``{name: value}``.

    Multipart when the content type says so, urlencoded otherwise (whatever else it says),
    decoded strictly with the declared charset (UTF-8 by default). A repeated name keeps its
    last value. Multipart file parts (with a filename) and parts without a name are skipped:
    a recall never comes from a file.
    """
    mimetype, options = parse_options_header(content_type)
    multipart = mimetype.lower() == "multipart/form-data"
    if multipart and not options.get("boundary"):
        raise FormatError("multipart form body without a boundary in its Content-Type")
    try:
        if multipart:
            return _parse_multipart(body, options.get("boundary", ""))
        charset = options.get("charset", "utf-8")
        text = body.decode(charset)
        return dict(parse_qsl(text, keep_blank_values=True, encoding=charset, errors="strict",
                              max_num_fields=MAX_FORM_FIELDS))
    except RequestEntityTooLarge:
        raise FormatError(f"form body has more than {MAX_FORM_FIELDS} parts") from None
    except LookupError:
        raise FormatError("form body declares an unknown charset") from None
    except UnicodeError:
        raise FormatError("form body is not valid text in its charset") from None
    except ValueError:  # parse_qsl's max_num_fields, or the multipart decoder
        if not multipart:
            raise FormatError(f"form body has more than {MAX_FORM_FIELDS} fields") from None
        raise FormatError("form body is malformed multipart") from None


def _parse_multipart(body: bytes, boundary: str) -> dict[str, str]:
    """multipart/form-data fields; werkzeug's exceptions are left to :func:`_parse_form`."""
    decoder = MultipartDecoder(boundary.encode("latin-1"), max_parts=MAX_FORM_FIELDS)
    decoder.receive_data(body)
    decoder.receive_data(None)
    fields: dict[str, str] = {}
    name: str | None = None
    charset = "utf-8"
    chunks: list[bytes] = []
    while not isinstance(event := decoder.next_event(), Epilogue):
        if isinstance(event, Field):
            name, chunks = event.name, []
            options = parse_options_header(event.headers.get("content-type"))[1]
            charset = options.get("charset", "utf-8")
        elif isinstance(event, File):
            name = None
        elif isinstance(event, Data) and name:
            chunks.append(event.data)
            if not event.more_data:
                fields[name] = b"".join(chunks).decode(charset)
    return fields


def _parse_salesforce(body: bytes) -> dict[str, Any]:
    """A Salesforce Outbound Message as ``{"OrganizationId", ..., "Notification": [...]}``.

    Parsed with defusedxml and no DTD allowed (SOAP forbids one), so entity declarations,
    entity-expansion bombs and external entities are refused before anything is expanded.
    ``xsi:nil="true"`` gives None; an empty element gives ``""``; an absent field is absent.
    """
    try:
        root = fromstring(body.removeprefix(_BOM).lstrip(), forbid_dtd=True)
    except DefusedXmlException:
        raise FormatError("Salesforce message refused: DTDs and entities are not allowed") from None
    except ParseError as e:
        line, column = e.position
        raise FormatError(f"body is not well-formed XML (line {line}, column {column})") from None
    except (LookupError, ValueError):  # expat asks Python's codecs for an unusual encoding
        raise FormatError("body is not readable XML: its declared encoding is unknown or "
                          "not one XML can be read in") from None
    body_el = root.find(f"{{{SOAP_ENV}}}Body") if root.tag == f"{{{SOAP_ENV}}}Envelope" else None
    if body_el is None:
        raise FormatError("body is not a SOAP 1.1 envelope")
    message = body_el.find(f"{{{OUTBOUND_NS}}}notifications")
    if message is None:
        raise FormatError("SOAP body has no Salesforce outbound notifications element")
    notifications = message.findall(f"{{{OUTBOUND_NS}}}Notification")
    result: dict[str, Any] = {
        "OrganizationId": _required_text(message, "OrganizationId"),
        "ActionId": _required_text(message, "ActionId"),
    }
    for optional in ("SessionId", "EnterpriseUrl", "PartnerUrl"):
        result[optional] = _value(message.find(f"{{{OUTBOUND_NS}}}{optional}"))
    result["Notification"] = [_notification(n) for n in notifications]
    return result


def _notification(element: Element) -> dict[str, Any]:
    """One ``Notification``: its ``Id`` and its ``sObject``."""
    sobject = element.find(f"{{{OUTBOUND_NS}}}sObject")
    if sobject is None:
        raise FormatError("a Notification has no sObject")
    return {"Id": _required_text(element, "Id"), "sObject": _sobject(sobject, 0)}


def _sobject(element: Element, depth: int) -> dict[str, Any]:
    """Fields by local name (namespace prefix dropped), and ``type`` from ``xsi:type``."""
    xsi_type = element.get(f"{{{XSI_NS}}}type")
    fields: dict[str, Any] = {"type": xsi_type.rpartition(":")[2] if xsi_type else None}
    for child in element:
        fields[child.tag.rpartition("}")[2]] = _value(child, depth)
    return fields


def _value(element: Element | None, depth: int = MAX_SOBJECT_DEPTH) -> Any:
    """None when absent or ``xsi:nil``; text ("" when empty); a dict for a nested object.

    An element with children is a FormatError once ``depth`` reaches
    :data:`MAX_SOBJECT_DEPTH`; the envelope's own fields use that default, so never nest.
    """
    if element is None or element.get(f"{{{XSI_NS}}}nil") in ("true", "1"):
        return None
    if len(element):
        if depth >= MAX_SOBJECT_DEPTH:
            raise FormatError("Salesforce message has an unexpected nested element")
        return _sobject(element, depth + 1)
    return element.text or ""


def _required_text(parent: Element, name: str) -> str:
    """The text of the outbound child ``name``; FormatError when absent, nil or empty."""
    value = _value(parent.find(f"{{{OUTBOUND_NS}}}{name}"))
    if not value:
        raise FormatError(f"Salesforce message has no {name}")
    return value
