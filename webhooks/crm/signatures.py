"""Proving that a webhook request comes from the CRM it claims: one verifier per scheme, built at
start by `build_verifier` from a mapping file's `auth:` block (bad options: `AuthConfigError`).
A request not proven raises `AuthFailed`, safe to log: never a secret or signature in it."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Protocol
from urllib.parse import urlsplit, urlunsplit

from marshmallow import Schema, ValidationError, fields, validate
from werkzeug.datastructures import Headers

# A request's headers: werkzeug's (case-insensitive), or a plain mapping.
RequestHeaders = Mapping[str, str] | Headers

DEFAULT_MAX_AGE = 300  # seconds a signed timestamp may differ from our clock, either way
SCHEMES: tuple[str, ...] = ("hubspot", "salesforce", "standard-webhooks", "hmac", "basic",
                            "token", "none")
_ALGORITHMS = {"sha256": hashlib.sha256, "sha1": hashlib.sha1, "sha512": hashlib.sha512}
# HubSpot v3 signs the URI after decoding exactly these escapes (hex digits in either case).
_HUBSPOT_V3_ESCAPES = re.compile(r"%(3A|2F|3F|40|21|24|27|28|29|2A|2C|3B)", re.IGNORECASE)


class AuthConfigError(ValueError):
    """The `auth:` options of a mapping file are wrong; the message names the key and the fix."""


class AuthFailed(Exception):
    """The request is not proven authentic; str(e) is a short reason, safe to log and show.
    `setup`, when set, says what in the bridge's or the CRM's setup makes every such request
    fail, and the fix: shown to the admin (log, /readyz, console), never to the sender."""

    def __init__(self, reason: str, setup: str = "") -> None:
        super().__init__(reason)
        self.setup = setup


@dataclass(frozen=True)
class SignedRequest:
    """The request exactly as received, plus the current time."""
    method: str
    url: str  # full public URL the CRM called: scheme://host/path?query
    headers: RequestHeaders  # case-insensitive (werkzeug Headers)
    query: Mapping[str, str]
    body: bytes
    now: float  # epoch seconds
    remote_addr: str = ""  # the client's address (the proxy's X-Forwarded-For with TRUST_FORWARDED)


@dataclass(frozen=True)
class Proof:
    """What a successful verification tells besides "authentic"."""
    delivery_id: str | None = None  # sender-given id stable across retries, else None


def _str(required: bool = False, check: Any = None, **kw: Any) -> Any:
    """A non-empty string option (plus an optional `check`); secrets are `_Secrets`."""
    checks = [validate.Length(min=1, error="empty, expected a non-empty string")]
    return fields.String(required=required, validate=[*checks, check] if check else checks, **kw,
                         error_messages={"required": "missing, expected a string",
                                         "null": "empty, expected a string",
                                         "invalid": "expected a string"})


class _Secrets(fields.Field):
    """A secret, or a list of them (old and new, to rotate a CRM's secret without downtime).
    Empty items of a list are dropped, so `[${NEW}, ${OLD:-}]` works once OLD is unset."""

    default_error_messages = {  # noqa: RUF012 - marshmallow's own class attribute
        "required": "missing, expected a string (use ${{NAME}} for secrets)",
        "null": "empty, expected a string (use ${{NAME}} for secrets)",
        "invalid": "expected a string or a list of strings (use ${{NAME}} for secrets)",
        "empty": "empty, expected a non-empty string (use ${{NAME}} for secrets)",
    }

    def __init__(self, check: Any = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.check = check

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        items = value if isinstance(value, list) else [value]
        if not all(isinstance(item, str) for item in items):
            raise self.make_error("invalid")
        secrets = tuple(item for item in items if item)
        if not secrets:
            raise self.make_error("empty")
        if self.check is not None:
            for index, secret in enumerate(secrets):
                try:
                    self.check(secret)
                except ValidationError as err:
                    where = f"[{index}]: " if isinstance(value, list) else ""
                    raise ValidationError(f"{where}{err.messages[0]}") from None
        return secrets


_MAX_AGE = fields.Integer(  # schemas deep-copy their fields, so one instance can be shared
    load_default=DEFAULT_MAX_AGE, error_messages={"invalid": "expected a whole number of seconds"},
    validate=validate.Range(min=1, error="expected a positive number of seconds"))
# A Standard Webhooks secret: "whsec_" (optional, as in the reference SDKs) then strict base64.
_WHSEC = validate.Regexp(
    r"^(whsec_)?(?=.)([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$",
    error="expected whsec_ followed by base64")


class Verifier(Protocol):
    """Proves requests for one scheme. Verifiers subclass it to inherit verify_payload."""
    scheme: str
    strip_field: str | None = None  # a body field that carries the secret: not to be stored
    url_bound: bool = False  # does the signature cover the URL (PUBLIC_URL must be right)?

    def verify(self, request: SignedRequest) -> Proof:
        """Check the request as received; raises AuthFailed."""

    def verify_payload(self, payload: Any) -> None:
        """Check what needs the parsed body; raises AuthFailed. Most schemes have nothing to."""
        return None  # explicit: verifiers that need no body inherit this, not an abstract stub


def _same(given: str | bytes, expected: str | bytes) -> bool:
    """Constant-time equality; str is compared as UTF-8 (compare_digest refuses non-ASCII str)."""
    a = given.encode() if isinstance(given, str) else given
    return hmac.compare_digest(a, expected.encode() if isinstance(expected, str) else expected)


def _no_v3_setup(request: SignedRequest) -> str:
    """Why a HubSpot request without a v3 signature is refused, and the two fixes."""
    version = (_header(request, "X-HubSpot-Signature-Version", required=False) or "v1").lower()
    if _header(request, "X-HubSpot-Signature", required=False):
        sent = f"HubSpot signs these requests with {version[:8]} only (X-HubSpot-Signature)"
    else:
        sent = ("HubSpot sends these requests unsigned (a workflow's \"Send a webhook\" "
                "without request signature)")
    return (f"requests are refused because {sent}, and this source accepts v3 only: either "
            "add `versions: [v3, v2]` (or v1) to the mapping's `auth:` block (v1/v2 carry no "
            "timestamp, so a captured request can be replayed), or authenticate with a secret "
            "header instead (`auth: {scheme: token, header: ...}` and the same header in the "
            "workflow's webhook action)")


def _header(request: SignedRequest, name: str, required: bool = True) -> str:
    """The header's stripped value; "" when absent or blank, or AuthFailed if required."""
    value = (request.headers.get(name) or "").strip()
    if required and not value:
        raise AuthFailed(f"missing header {name}")
    return value


def field_value(payload: Any, dotted: str) -> Any:
    """The body field `dotted` names: `token`, or `auth.application_token` for a nested one
    (a form body read with `unflatten`); None when absent."""
    for part in dotted.split("."):
        if not isinstance(payload, Mapping):
            return None
        payload = payload.get(part)
    return payload


def strip(payload: Any, dotted: str) -> None:
    """Remove the body field `dotted` names (a secret is not an event's data)."""
    *parents, last = dotted.split(".")
    for part in parents:
        payload = payload.get(part) if isinstance(payload, Mapping) else None
    if isinstance(payload, dict):
        payload.pop(last, None)


def _check_fresh(timestamp: str, now: float, max_age: int, per_second: int = 1) -> None:
    """Refuse a timestamp (epoch s, or ms with per_second=1000) more than max_age s off now."""
    try:
        seconds = int(timestamp) / per_second
    except (ValueError, OverflowError):
        raise AuthFailed("timestamp is not an integer") from None
    if abs(now - seconds) > max_age:
        raise AuthFailed(f"timestamp is more than {max_age} seconds off")


def _any_same(given: str | bytes, secrets: tuple[str | bytes, ...]) -> bool:
    """Does `given` equal any of `secrets`? Every one is compared (constant time each)."""
    return [_same(given, secret) for secret in secrets].count(True) > 0


def _check_token(given: Any, secrets: tuple[str, ...], where: str) -> None:
    """Refuse a missing token (naming where it was expected) or one that matches no secret."""
    if given is None or given == "":
        raise AuthFailed(f"missing token in {where}")
    if not isinstance(given, str) or not _any_same(given, secrets):
        raise AuthFailed("token does not match")


@dataclass(frozen=True)
class HubSpotVerifier(Verifier):
    """HubSpot v3 (HMAC-SHA256 base64, dated in ms). A request that carries v3 headers is judged
    by v3 alone; v1/v2 (SHA-256 hex of secret+..., no timestamp, so a captured request can be
    replayed) are accepted only when `versions` lists them and no v3 header came. Fails on a
    missing header, a version not accepted, a stale or future v3 timestamp, or no match."""
    secret: tuple[str, ...] = field(repr=False)
    max_age: int = DEFAULT_MAX_AGE
    versions: tuple[str, ...] = ("v3",)
    scheme = "hubspot"
    url_bound = True
    options: ClassVar = {"secret": _Secrets(required=True), "max_age": _MAX_AGE,
                         "versions": fields.List(fields.String(validate=validate.OneOf(
                             ["v1", "v2", "v3"], error="expected v1, v2 or v3")),
                             validate=validate.Length(min=1, error="expected a non-empty list"))}

    def verify(self, request: SignedRequest) -> Proof:
        method, body = request.method.encode(), request.body
        if signature := _header(request, "X-HubSpot-Signature-v3", required=False):
            timestamp = _header(request, "X-HubSpot-Request-Timestamp")
            _check_fresh(timestamp, request.now, self.max_age, per_second=1000)
            uri = _HUBSPOT_V3_ESCAPES.sub(lambda m: chr(int(m.group(1), 16)), request.url)
            content = method + uri.encode() + body + timestamp.encode()
            expected: tuple[str | bytes, ...] = tuple(
                base64.b64encode(hmac.digest(key.encode(), content, "sha256"))
                for key in self.secret)
            if not _any_same(signature, expected):
                raise AuthFailed("HubSpot v3 signature does not match")
            return Proof()
        legacy = [v for v in self.versions if v != "v3"]
        if not legacy:
            raise AuthFailed("missing header X-HubSpot-Signature-v3 (v1/v2 signatures carry no "
                             "timestamp and are not accepted by this source)",
                             setup=_no_v3_setup(request))
        signature = _header(request, "X-HubSpot-Signature")
        version = (_header(request, "X-HubSpot-Signature-Version", required=False) or "v1").lower()
        if version not in legacy:
            raise AuthFailed(f"HubSpot signature version {version[:8]!r} is not accepted "
                             f"(accepted: {', '.join(self.versions)})")
        url = request.url.encode()
        expected = tuple(hashlib.sha256(key.encode() + (
            body if version == "v1" else method + url + body)).hexdigest() for key in self.secret)
        if not _any_same(signature.lower(), expected):
            raise AuthFailed(f"HubSpot {version} signature does not match")
        return Proof()


@dataclass(frozen=True)
class TokenVerifier(Verifier):
    """A shared secret sent as is in one header, query parameter or top-level body field.
    Fails when it is missing there or differs."""
    secret: tuple[str, ...] = field(repr=False)
    header: str | None = None
    query: str | None = None
    field: str | None = None
    scheme = "token"
    options: ClassVar = {"secret": _Secrets(required=True), "header": _str(), "query": _str(),
                         "field": _str()}
    exactly_one: ClassVar = ("header", "query", "field")

    def verify(self, request: SignedRequest) -> Proof:
        if self.header:
            _check_token(_header(request, self.header, False), self.secret, f"header {self.header}")
        elif self.query:
            where = f"query parameter {self.query}"
            _check_token(request.query.get(self.query), self.secret, where)
        return Proof()

    @property
    def strip_field(self) -> str | None:  # type: ignore[override]
        return self.field

    def verify_payload(self, payload: Any) -> None:
        if self.field:
            _check_token(field_value(payload, self.field), self.secret, f"field {self.field}")


@dataclass(frozen=True)
class SalesforceVerifier(Verifier):
    """Outbound Messages: the payload's OrganizationId must name our org, and the URL token must
    match when set (build_verifier requires the token or an allow_ips list: the org id is
    public, printed in every Web-to-Lead form). Ids compare on their first 15 characters,
    case-sensitively (the 18-character form only adds
    a checksum of the casing). Fails on a missing or different org, or a missing or bad token."""
    organization_id: str
    token: tuple[str, ...] | None = field(default=None, repr=False)
    token_query: str = "token"  # noqa: S105 - a parameter name, not a secret
    scheme = "salesforce"
    options: ClassVar = {
        "organization_id": _str(True, check=validate.Regexp(
            r"^([A-Za-z0-9]{15}|[A-Za-z0-9]{18})$", error="expected a 15 or 18 character id")),
        "token": _Secrets(), "token_query": _str(load_default="token")}

    def verify(self, request: SignedRequest) -> Proof:
        if self.token is not None:
            given = request.query.get(self.token_query)
            _check_token(given, self.token, f"query parameter {self.token_query}")
        return Proof()

    def verify_payload(self, payload: Any) -> None:
        given = payload.get("OrganizationId") if isinstance(payload, Mapping) else None
        given = given.strip() if isinstance(given, str) else ""
        if not given:
            raise AuthFailed("missing OrganizationId")
        if len(given) not in (15, 18) or not _same(given[:15], self.organization_id[:15]):
            raise AuthFailed("OrganizationId is not the expected organization")


@dataclass(frozen=True)
class StandardWebhooksVerifier(Verifier):
    """Standard Webhooks: HMAC-SHA256 of "{id}.{timestamp}.{body}"; any v1 entry matching any key
    passes (rotation). Fails on a missing webhook-* header, a timestamp more than max_age off, or
    no match. The keys are the base64-decoded "whsec_..." secrets."""
    keys: tuple[bytes, ...] = field(repr=False)
    max_age: int = DEFAULT_MAX_AGE
    scheme = "standard-webhooks"
    options: ClassVar = {"secret": _Secrets(check=_WHSEC), "max_age": _MAX_AGE,
                         "secrets": _Secrets(check=_WHSEC)}
    exactly_one: ClassVar = ("secret", "secrets")

    def verify(self, request: SignedRequest) -> Proof:
        msg_id, timestamp = _header(request, "webhook-id"), _header(request, "webhook-timestamp")
        signatures = _header(request, "webhook-signature").split()
        _check_fresh(timestamp, request.now, self.max_age)
        content = f"{msg_id}.{timestamp}.".encode() + request.body
        expected = [base64.b64encode(hmac.digest(k, content, "sha256")) for k in self.keys]
        given = [s.removeprefix("v1,") for s in signatures if s.startswith("v1,")]
        if not any(_same(g, e) for g in given for e in expected):
            raise AuthFailed("webhook-signature does not match")
        return Proof(delivery_id=msg_id)


@dataclass(frozen=True)
class HmacVerifier(Verifier):
    """A generic HMAC of the body, or of "{timestamp}.{body}" when timestamp_header is set, in
    one header (hex in any case, or base64; after `prefix` if set). Fails on a missing header or
    prefix, a timestamp more than max_age off, or a signature that does not match."""
    secret: tuple[str, ...] = field(repr=False)
    header: str
    algorithm: str = "sha256"
    encoding: str = "hex"
    prefix: str | None = None
    timestamp_header: str | None = None
    max_age: int = DEFAULT_MAX_AGE
    scheme = "hmac"
    options: ClassVar = {
        "secret": _Secrets(required=True), "header": _str(True), "prefix": _str(),
        "max_age": _MAX_AGE,
        "algorithm": _str(load_default="sha256", check=validate.OneOf(
            list(_ALGORITHMS), error="expected one of: sha256, sha1, sha512")),
        "encoding": _str(load_default="hex", check=validate.OneOf(
            ["hex", "base64"], error="expected hex or base64")),
        "timestamp_header": _str()}

    def verify(self, request: SignedRequest) -> Proof:
        signature = _header(request, self.header)
        if self.prefix and not signature.startswith(self.prefix):
            raise AuthFailed(f"signature in {self.header} lacks the prefix {self.prefix!r}")
        signature = signature.removeprefix(self.prefix or "").strip()
        content = request.body
        if self.timestamp_header:
            timestamp = _header(request, self.timestamp_header)
            _check_fresh(timestamp, request.now, self.max_age)
            content = timestamp.encode() + b"." + content
        hex_ = self.encoding == "hex"
        digests = [hmac.digest(key.encode(), content, _ALGORITHMS[self.algorithm])
                   for key in self.secret]
        expected = tuple(d.hex() if hex_ else base64.b64encode(d).decode() for d in digests)
        if not _any_same(signature.lower() if hex_ else signature, expected):
            raise AuthFailed(f"signature in {self.header} does not match")
        return Proof()


@dataclass(frozen=True)
class BasicVerifier(Verifier):
    """HTTP Basic credentials. Fails when absent, malformed, or either part differs."""
    username: str
    password: tuple[str, ...] = field(repr=False)
    scheme = "basic"
    options: ClassVar = {"username": _str(True), "password": _Secrets(required=True)}

    def verify(self, request: SignedRequest) -> Proof:
        kind, _, encoded = _header(request, "Authorization", required=False).partition(" ")
        if kind.lower() != "basic" or not encoded.strip():
            raise AuthFailed("missing basic credentials")
        try:
            user, sep, password = base64.b64decode(encoded.strip(), validate=True).partition(b":")
        except binascii.Error:
            raise AuthFailed("malformed basic credentials") from None
        # `&`, not `and`: both parts are compared, so timing does not tell which one differs.
        if not (sep and _same(user, self.username) & _any_same(password, self.password)):
            raise AuthFailed("basic credentials do not match")
        return Proof()


@dataclass(frozen=True)
class NoneVerifier(Verifier):
    """No authentication: every request passes."""
    scheme = "none"
    options: ClassVar[dict[str, fields.Field]] = {}

    def verify(self, request: SignedRequest) -> Proof:
        return Proof()


@dataclass(frozen=True)
class AllowIps(Verifier):
    """Any scheme, plus: the client's address must be in one of `networks` (auth.allow_ips).
    The address is the socket's peer, or X-Forwarded-For's last hop with TRUST_FORWARDED."""
    inner: Verifier
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]

    @property
    def scheme(self) -> str:  # type: ignore[override]
        return self.inner.scheme

    @property
    def strip_field(self) -> str | None:  # type: ignore[override]
        return self.inner.strip_field

    @property
    def url_bound(self) -> bool:  # type: ignore[override]
        return self.inner.url_bound

    def verify(self, request: SignedRequest) -> Proof:
        try:
            address = ipaddress.ip_address(request.remote_addr.strip())
        except ValueError:
            raise AuthFailed("client address unknown; auth.allow_ips needs one") from None
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        if not any(address in network for network in self.networks):
            raise AuthFailed(f"client address {address} is not in auth.allow_ips")
        return self.inner.verify(request)

    def verify_payload(self, payload: Any) -> None:
        self.inner.verify_payload(payload)


_VERIFIERS: dict[str, Any] = {v.scheme: v for v in (
    HubSpotVerifier, SalesforceVerifier, StandardWebhooksVerifier, HmacVerifier, BasicVerifier,
    TokenVerifier, NoneVerifier)}
COMMON_OPTIONS = ("scheme", "allow_ips")


class _Options(Schema):
    error_messages = {"unknown": "unknown option", "type": "expected a mapping"}


def _messages(errors: Any, path: str) -> list[str]:
    """Flatten marshmallow's nested errors into "auth.key: message" lines."""
    if isinstance(errors, Mapping):
        return [line for key, sub in errors.items() for line in _messages(
            sub, f"{path}[{key}]" if isinstance(key, int) else f"{path}.{key}")]
    message = errors[0] if isinstance(errors, list) else errors
    return [f"{path}{message}" if message.startswith("[") else f"{path}: {message}"]


def build_verifier(options: Mapping[str, Any]) -> Verifier:
    """Validate a mapping file's `auth:` block (${NAME} already expanded) and build its verifier.

    Raises AuthConfigError naming `auth.<key>` and what is expected: missing or unknown scheme,
    unknown option, missing or empty secret, a badly typed value, an either/or pair misused, a
    bad `allow_ips` network, or a salesforce scheme with neither a token nor `allow_ips`.
    """
    if not isinstance(options, Mapping):
        raise AuthConfigError("auth: expected a mapping with a `scheme` key")
    scheme = options.get("scheme")
    if not isinstance(scheme, str) or scheme not in _VERIFIERS:
        what = "missing" if scheme is None else "unknown scheme"
        raise AuthConfigError(f"auth.scheme: {what}, expected one of: {', '.join(SCHEMES)}")
    cls = _VERIFIERS[scheme]
    schema = _Options.from_dict(cls.options, name=f"{cls.__name__}Options")()  # unknown: RAISE
    try:
        data = schema.load({k: v for k, v in options.items() if k not in COMMON_OPTIONS})
    except ValidationError as error:
        known = ", ".join([*COMMON_OPTIONS, *schema.fields])
        raise AuthConfigError("; ".join(
            f"{line}, expected one of: {known}" if line.endswith("unknown option") else line
            for line in sorted(_messages(error.messages, "auth")))) from None
    either = getattr(cls, "exactly_one", ())
    if either and sum(key in data for key in either) != 1:
        raise AuthConfigError(f"auth: set exactly one of {', '.join(f'auth.{k}' for k in either)}")
    networks = _networks(options.get("allow_ips"))
    if cls is SalesforceVerifier and not data.get("token") and not networks:
        raise AuthConfigError(
            "auth: the salesforce scheme needs a secret a stranger cannot know: set auth.token "
            "(a secret in the endpoint URL, e.g. ${SALESFORCE_URL_TOKEN}) or auth.allow_ips "
            "(Salesforce's IP ranges, see docs/crms.md); the OrganizationId alone is printed in "
            "every Web-to-Lead form")
    if cls is StandardWebhooksVerifier:  # _WHSEC has checked that every secret decodes
        secrets = data.get("secret") or data["secrets"]
        keys = tuple(base64.b64decode(secret.removeprefix("whsec_")) for secret in secrets)
        verifier: Verifier = StandardWebhooksVerifier(keys=keys, max_age=data["max_age"])
    else:
        if "versions" in data:
            data["versions"] = tuple(data["versions"])
        verifier = cls(**data)
    return AllowIps(verifier, networks) if networks else verifier


def _networks(value: Any) -> tuple[Any, ...]:
    """auth.allow_ips as networks; AuthConfigError naming the bad item."""
    if value is None:
        return ()
    if not isinstance(value, list) or not value:
        raise AuthConfigError("auth.allow_ips: expected a non-empty list of networks in CIDR "
                              "form, e.g. [13.108.0.0/14, 2001:db8::/32]")
    networks = []
    for index, item in enumerate(value):
        try:
            networks.append(ipaddress.ip_network(str(item).strip(), strict=False))
        except ValueError:
            raise AuthConfigError(f"auth.allow_ips[{index}]: {str(item)[:60]!r} is not an IP "
                                  "network (CIDR such as 13.108.0.0/14)") from None
    return tuple(networks)


def url_variants(url: str, headers: RequestHeaders) -> list[str]:
    """Other URLs the sender may have signed when the bridge sees `url` differently (a proxy
    that ends TLS, rewrites the host or the port): the scheme swapped, the host from forwarded
    headers, the port dropped. Used only to explain a failed signature, never to accept one."""
    parts = urlsplit(url)
    hosts = {parts.netloc, parts.hostname or ""}
    for name in ("X-Forwarded-Host", "X-Original-Host", "Host"):
        value = (headers.get(name) or "").split(",")[0].strip()
        if value:
            hosts.update({value, value.split(":")[0]})
    forwarded = headers.get("Forwarded") or ""
    hosts.update(m.group(1) for m in re.finditer(r'host="?([^;,"\s]+)', forwarded))
    variants = []
    for scheme in ("https", "http"):
        for host in sorted(h for h in hosts if h):
            candidate = urlunsplit((scheme, host, parts.path, parts.query, parts.fragment))
            if candidate != url and candidate not in variants:
                variants.append(candidate)
    return variants


def matching_variant(verifier: Verifier, request: SignedRequest) -> str | None:
    """The first of `url_variants` under which the request's signature holds, if any."""
    if not verifier.url_bound:
        return None
    for candidate in url_variants(request.url, request.headers):
        try:
            verifier.verify(replace(request, url=candidate))
        except AuthFailed:
            continue
        return candidate
    return None
