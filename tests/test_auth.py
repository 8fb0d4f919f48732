"""Request authenticity: each scheme accepts what its sender signs and refuses anything else."""

import base64
import hashlib
import hmac
from typing import Any

import pytest
from werkzeug.datastructures import Headers

from webhooks.crm.signatures import (
    SCHEMES,
    AuthConfigError,
    AuthFailed,
    Proof,
    SignedRequest,
    build_verifier,
)

NOW = 1_700_000_000.0

# HubSpot's public vectors (its Python SDK tests).
HS_SECRET = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy"
HS_BODY = b"{'example_field':'example_value'}"
HS_URI = "https://www.example.com/webhook_uri"
HS_V1 = "69fc6631a867edd4f9e9e627fc5c1148e3fbdd8b21837b6d2b8901c1fa57f750"
HS_V2_POST = "4fe4e3a7d3cf09db53be39d0a58130e2aaba074ec123a9e355b876a689a1c383"
HS_V2_GET_EMPTY = "eee2dddcc73c94d699f5e395f4b9d454a069a6855fbfa152e91e88823087200e"

# Standard Webhooks' public vector.
SW_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SW_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SW_TIMESTAMP = 1614265330
SW_BODY = b'{"test": 2432232314}'
SW_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

# GitHub's documented vector (X-Hub-Signature-256), a generic "sha256=" hex HMAC.
GH_SECRET = "It's a Secret to Everybody"
GH_BODY = b"Hello, World!"
GH_SIGNATURE = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"

SF_ORG_18 = "00D5e000000AbCdEAK"
SF_ORG_15 = "00D5e000000AbCd"


def request(
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    *,
    method: str = "POST",
    url: str = "https://bridge.example.com/hooks/crm",
    query: dict[str, str] | None = None,
    now: float = NOW,
    remote_addr: str = "127.0.0.1",
) -> SignedRequest:
    return SignedRequest(method, url, Headers(headers or {}), query or {}, body, now, remote_addr)


def hubspot_v3(secret: str, method: str, uri: str, body: bytes, timestamp_ms: int) -> str:
    """What HubSpot sends as X-HubSpot-Signature-v3 for an already-decoded uri."""
    content = f"{method}{uri}{body.decode()}{timestamp_ms}".encode()
    return base64.b64encode(hmac.new(secret.encode(), content, hashlib.sha256).digest()).decode()


def hmac_signature(secret: str, content: bytes, algorithm: str, encoding: str) -> str:
    digest = hmac.new(secret.encode(), content, algorithm).digest()
    return digest.hex() if encoding == "hex" else base64.b64encode(digest).decode()


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def refused(verifier: Any, req: SignedRequest) -> str:
    with pytest.raises(AuthFailed) as caught:
        verifier.verify(req)
    return str(caught.value)


# --- HubSpot ---------------------------------------------------------------------------------

@pytest.fixture
def hubspot() -> Any:
    return build_verifier({"scheme": "hubspot", "secret": HS_SECRET})


@pytest.fixture
def hubspot_legacy() -> Any:
    """A source that also accepts v1/v2 (a HubSpot that sends no v3): says so in its file."""
    return build_verifier({"scheme": "hubspot", "secret": HS_SECRET,
                           "versions": ["v1", "v2", "v3"]})


def test_hubspot_v1_public_vector_is_accepted(hubspot_legacy: Any) -> None:
    headers = {"X-HubSpot-Signature": HS_V1, "X-HubSpot-Signature-Version": "v1"}
    assert hubspot_legacy.verify(request(HS_BODY, headers, url=HS_URI)) == Proof()


def test_hubspot_without_version_header_means_v1(hubspot_legacy: Any) -> None:
    unversioned = request(HS_BODY, {"X-HubSpot-Signature": HS_V1}, url=HS_URI)
    assert hubspot_legacy.verify(unversioned) == Proof()


def test_hubspot_v2_public_vector_for_post_is_accepted(hubspot_legacy: Any) -> None:
    headers = {"X-HubSpot-Signature": HS_V2_POST, "X-HubSpot-Signature-Version": "v2"}
    hubspot_legacy.verify(request(HS_BODY, headers, url=HS_URI))


def test_hubspot_v2_public_vector_for_get_with_empty_body_is_accepted(hubspot_legacy: Any) -> None:
    headers = {"X-HubSpot-Signature": HS_V2_GET_EMPTY, "X-HubSpot-Signature-Version": "v2"}
    hubspot_legacy.verify(request(b"", headers, method="GET", url=HS_URI))


def test_hubspot_v2_signs_the_url(hubspot_legacy: Any) -> None:
    headers = {"X-HubSpot-Signature": HS_V2_POST, "X-HubSpot-Signature-Version": "v2"}
    other = request(HS_BODY, headers, url=HS_URI + "?portal=1")
    assert refused(hubspot_legacy, other) == "HubSpot v2 signature does not match"


def test_hubspot_v1_vector_is_refused_when_sent_as_v2(hubspot_legacy: Any) -> None:
    headers = {"X-HubSpot-Signature": HS_V1, "X-HubSpot-Signature-Version": "v2"}
    refused(hubspot_legacy, request(HS_BODY, headers, url=HS_URI))


def test_hubspot_unknown_signature_version_is_refused(hubspot_legacy: Any) -> None:
    headers = {"X-HubSpot-Signature": HS_V1, "X-HubSpot-Signature-Version": "v9"}
    assert "not accepted" in refused(hubspot_legacy, request(HS_BODY, headers, url=HS_URI))


def test_hubspot_missing_signature_is_refused_naming_the_header(hubspot_legacy: Any) -> None:
    refusal = refused(hubspot_legacy, request(HS_BODY, url=HS_URI))
    assert refusal == "missing header X-HubSpot-Signature"


def test_hubspot_request_stripped_of_its_v3_headers_is_not_judged_by_v1_or_v2(
        hubspot: Any) -> None:
    # a captured request keeps valid v1/v2 signatures, which carry no timestamp: replayable
    for headers in ({"X-HubSpot-Signature": HS_V1, "X-HubSpot-Signature-Version": "v1"},
                    {"X-HubSpot-Signature": HS_V2_POST, "X-HubSpot-Signature-Version": "v2"}):
        assert "X-HubSpot-Signature-v3" in refused(hubspot, request(HS_BODY, headers, url=HS_URI))


def test_hubspot_v3_headers_are_judged_by_v3_alone_even_where_v1_is_accepted(
        hubspot_legacy: Any) -> None:
    ts = int(NOW * 1000) - 400_000  # stale: refused, and the valid v1 beside it does not help
    headers = {"X-HubSpot-Signature": HS_V1, "X-HubSpot-Signature-Version": "v1",
               "X-HubSpot-Signature-v3": hubspot_v3(HS_SECRET, "POST", HS_URI, HS_BODY, ts),
               "X-HubSpot-Request-Timestamp": str(ts)}
    assert "timestamp" in refused(hubspot_legacy, request(HS_BODY, headers, url=HS_URI))


def test_hubspot_fresh_v3_is_accepted(hubspot: Any) -> None:
    ts = int(NOW * 1000) - 60_000
    headers = {
        "X-HubSpot-Signature-v3": hubspot_v3(HS_SECRET, "POST", HS_URI, HS_BODY, ts),
        "X-HubSpot-Request-Timestamp": str(ts),
    }
    assert hubspot.verify(request(HS_BODY, headers, url=HS_URI)) == Proof()


def test_hubspot_v3_is_preferred_over_v1_headers(hubspot: Any) -> None:
    ts = int(NOW * 1000)
    headers = {
        "X-HubSpot-Signature": HS_V1,  # valid v1, but a present v3 signature decides
        "X-HubSpot-Signature-v3": hubspot_v3("another-secret", "POST", HS_URI, HS_BODY, ts),
        "X-HubSpot-Request-Timestamp": str(ts),
    }
    assert refused(hubspot, request(HS_BODY, headers, url=HS_URI)).startswith("HubSpot v3")


@pytest.mark.parametrize("age_ms", [301_000, -301_000], ids=["expired", "future"])
def test_hubspot_v3_with_timestamp_outside_max_age_is_refused(hubspot: Any, age_ms: int) -> None:
    ts = int(NOW * 1000) - age_ms
    headers = {
        "X-HubSpot-Signature-v3": hubspot_v3(HS_SECRET, "POST", HS_URI, HS_BODY, ts),
        "X-HubSpot-Request-Timestamp": str(ts),
    }
    assert "timestamp" in refused(hubspot, request(HS_BODY, headers, url=HS_URI))


def test_hubspot_v3_max_age_is_configurable() -> None:
    verifier = build_verifier({"scheme": "hubspot", "secret": HS_SECRET, "max_age": 900})
    ts = int(NOW * 1000) - 600_000
    headers = {
        "X-HubSpot-Signature-v3": hubspot_v3(HS_SECRET, "POST", HS_URI, HS_BODY, ts),
        "X-HubSpot-Request-Timestamp": str(ts),
    }
    verifier.verify(request(HS_BODY, headers, url=HS_URI))


def test_hubspot_v3_without_timestamp_is_refused(hubspot: Any) -> None:
    headers = {"X-HubSpot-Signature-v3": hubspot_v3(HS_SECRET, "POST", HS_URI, HS_BODY, 0)}
    refusal = refused(hubspot, request(HS_BODY, headers, url=HS_URI))
    assert refusal == "missing header X-HubSpot-Request-Timestamp"


def test_hubspot_v3_decodes_the_listed_escapes_in_the_uri_before_signing(hubspot: Any) -> None:
    received = "https://www.example.com/webhook_uri?q=a%3Ab%2Fc%40d%21e%24f%27g%28h%29i%2Aj%2Ck%3Bl"
    decoded = "https://www.example.com/webhook_uri?q=a:b/c@d!e$f'g(h)i*j,k;l"
    ts = int(NOW * 1000)
    signed = {"X-HubSpot-Request-Timestamp": str(ts)}
    good = hubspot_v3(HS_SECRET, "POST", decoded, HS_BODY, ts)
    hubspot.verify(request(HS_BODY, {**signed, "X-HubSpot-Signature-v3": good}, url=received))
    as_received = hubspot_v3(HS_SECRET, "POST", received, HS_BODY, ts)
    headers = {**signed, "X-HubSpot-Signature-v3": as_received}
    refused(hubspot, request(HS_BODY, headers, url=received))


def test_hubspot_v3_keeps_other_escapes_in_the_uri(hubspot: Any) -> None:
    received = "https://www.example.com/webhook_uri?name=Jos%C3%A9%20P"
    ts = int(NOW * 1000)
    headers = {
        "X-HubSpot-Signature-v3": hubspot_v3(HS_SECRET, "POST", received, HS_BODY, ts),
        "X-HubSpot-Request-Timestamp": str(ts),
    }
    hubspot.verify(request(HS_BODY, headers, url=received))


# --- Standard Webhooks -----------------------------------------------------------------------

def sw_headers(signature: str = SW_SIGNATURE) -> dict[str, str]:
    return {"webhook-id": SW_ID, "webhook-timestamp": str(SW_TIMESTAMP),
            "webhook-signature": signature}


def test_standard_webhooks_public_vector_is_accepted_and_gives_the_delivery_id() -> None:
    verifier = build_verifier({"scheme": "standard-webhooks", "secret": SW_SECRET})
    proof = verifier.verify(request(SW_BODY, sw_headers(), now=SW_TIMESTAMP))
    assert proof == Proof(delivery_id=SW_ID)


def test_standard_webhooks_rotation_accepts_the_second_signature_and_second_secret() -> None:
    old = "whsec_" + base64.b64encode(b"an old key that was rotated out").decode()
    verifier = build_verifier({"scheme": "standard-webhooks", "secrets": [old, SW_SECRET]})
    stale = "v1," + base64.b64encode(b"\0" * 32).decode()
    headers = sw_headers(f"{stale} {SW_SIGNATURE}")
    assert verifier.verify(request(SW_BODY, headers, now=SW_TIMESTAMP)).delivery_id == SW_ID


def test_standard_webhooks_ignores_entries_of_other_versions() -> None:
    verifier = build_verifier({"scheme": "standard-webhooks", "secret": SW_SECRET})
    headers = sw_headers(SW_SIGNATURE.replace("v1,", "v2,"))
    refused(verifier, request(SW_BODY, headers, now=SW_TIMESTAMP))


@pytest.mark.parametrize("offset", [301, -301], ids=["expired", "future"])
def test_standard_webhooks_timestamp_outside_max_age_is_refused(offset: int) -> None:
    verifier = build_verifier({"scheme": "standard-webhooks", "secret": SW_SECRET})
    refusal = refused(verifier, request(SW_BODY, sw_headers(), now=SW_TIMESTAMP + offset))
    assert "timestamp" in refusal


def test_standard_webhooks_missing_id_is_refused() -> None:
    verifier = build_verifier({"scheme": "standard-webhooks", "secret": SW_SECRET})
    headers = {k: v for k, v in sw_headers().items() if k != "webhook-id"}
    assert refused(verifier, request(SW_BODY, headers, now=SW_TIMESTAMP)).endswith("webhook-id")


# --- generic HMAC ----------------------------------------------------------------------------

def test_hmac_github_vector_with_prefix_is_accepted() -> None:
    verifier = build_verifier({"scheme": "hmac", "secret": GH_SECRET,
                               "header": "X-Hub-Signature-256", "prefix": "sha256="})
    verifier.verify(request(GH_BODY, {"X-Hub-Signature-256": GH_SIGNATURE}))


def test_hmac_configured_prefix_must_be_present() -> None:
    verifier = build_verifier({"scheme": "hmac", "secret": GH_SECRET,
                               "header": "X-Hub-Signature-256", "prefix": "sha256="})
    bare = GH_SIGNATURE.removeprefix("sha256=")
    assert "prefix" in refused(verifier, request(GH_BODY, {"X-Hub-Signature-256": bare}))


@pytest.mark.parametrize("algorithm", ["sha256", "sha1", "sha512"])
@pytest.mark.parametrize("encoding", ["hex", "base64"])
def test_hmac_accepts_each_algorithm_and_encoding(algorithm: str, encoding: str) -> None:
    verifier = build_verifier({"scheme": "hmac", "secret": "s3cret", "header": "X-Signature",
                               "algorithm": algorithm, "encoding": encoding})
    signature = hmac_signature("s3cret", b'{"id": 1}', algorithm, encoding)
    verifier.verify(request(b'{"id": 1}', {"X-Signature": signature}))
    other = "sha1" if algorithm != "sha1" else "sha256"
    wrong = hmac_signature("s3cret", b'{"id": 1}', other, encoding)
    refused(verifier, request(b'{"id": 1}', {"X-Signature": wrong}))


def test_hmac_hex_is_compared_case_insensitively() -> None:
    verifier = build_verifier({"scheme": "hmac", "secret": GH_SECRET, "header": "X-Sig"})
    upper = GH_SIGNATURE.removeprefix("sha256=").upper()
    verifier.verify(request(GH_BODY, {"X-Sig": upper}))


def test_hmac_with_timestamp_header_signs_timestamp_dot_body() -> None:
    verifier = build_verifier({"scheme": "hmac", "secret": "s3cret", "header": "X-Sig",
                               "timestamp_header": "X-Timestamp"})
    ts = str(int(NOW))
    signature = hmac_signature("s3cret", f"{ts}.".encode() + b"{}", "sha256", "hex")
    verifier.verify(request(b"{}", {"X-Sig": signature, "X-Timestamp": ts}))
    body_only = hmac_signature("s3cret", b"{}", "sha256", "hex")
    refused(verifier, request(b"{}", {"X-Sig": body_only, "X-Timestamp": ts}))


def test_hmac_with_timestamp_header_refuses_an_old_timestamp() -> None:
    verifier = build_verifier({"scheme": "hmac", "secret": "s3cret", "header": "X-Sig",
                               "timestamp_header": "X-Timestamp", "max_age": 60})
    ts = str(int(NOW) - 61)
    signature = hmac_signature("s3cret", f"{ts}.".encode() + b"{}", "sha256", "hex")
    refusal = refused(verifier, request(b"{}", {"X-Sig": signature, "X-Timestamp": ts}))
    assert "timestamp" in refusal


def test_hmac_with_timestamp_header_refuses_a_missing_timestamp() -> None:
    verifier = build_verifier({"scheme": "hmac", "secret": "s3cret", "header": "X-Sig",
                               "timestamp_header": "X-Timestamp"})
    signature = hmac_signature("s3cret", b"{}", "sha256", "hex")
    assert refused(verifier, request(b"{}", {"X-Sig": signature})) == "missing header X-Timestamp"


# --- tampering, for every scheme that signs the body -----------------------------------------

def _hs_v3_headers() -> dict[str, str]:
    ts = int(NOW * 1000)
    return {"X-HubSpot-Signature-v3": hubspot_v3(HS_SECRET, "POST", HS_URI, HS_BODY, ts),
            "X-HubSpot-Request-Timestamp": str(ts)}


SIGNED_CASES = {
    "hubspot-v1": ({"scheme": "hubspot", "secret": HS_SECRET, "versions": ["v1"]}, HS_BODY,
                   lambda: {"X-HubSpot-Signature": HS_V1}, NOW),
    "hubspot-v2": ({"scheme": "hubspot", "secret": HS_SECRET, "versions": ["v2"]}, HS_BODY,
                   lambda: {"X-HubSpot-Signature": HS_V2_POST,
                            "X-HubSpot-Signature-Version": "v2"}, NOW),
    "hubspot-v3": ({"scheme": "hubspot", "secret": HS_SECRET}, HS_BODY, _hs_v3_headers, NOW),
    "standard-webhooks": ({"scheme": "standard-webhooks", "secret": SW_SECRET}, SW_BODY,
                          sw_headers, SW_TIMESTAMP),
    "hmac": ({"scheme": "hmac", "secret": GH_SECRET, "header": "X-Hub-Signature-256",
              "prefix": "sha256="}, GH_BODY,
             lambda: {"X-Hub-Signature-256": GH_SIGNATURE}, NOW),
}


@pytest.mark.parametrize("case", SIGNED_CASES.values(), ids=SIGNED_CASES.keys())
def test_tampered_body_is_refused_by_every_signing_scheme(case: tuple[Any, ...]) -> None:
    options, body, headers, now = case
    verifier = build_verifier(options)
    verifier.verify(request(body, headers(), url=HS_URI, now=now))  # the untouched one passes
    refusal = refused(verifier, request(body + b" ", headers(), url=HS_URI, now=now))
    assert "does not match" in refusal


def test_refusals_never_show_the_secret_or_the_signature() -> None:
    verifier = build_verifier({"scheme": "hmac", "secret": GH_SECRET, "header": "X-Sig"})
    sent = "0" * 64
    refusal = refused(verifier, request(GH_BODY, {"X-Sig": sent}))
    assert GH_SECRET not in refusal and sent not in refusal
    assert GH_SIGNATURE.removeprefix("sha256=") not in refusal


# --- Basic -----------------------------------------------------------------------------------

@pytest.fixture
def basic_verifier() -> Any:
    return build_verifier({"scheme": "basic", "username": "pipedrive", "password": "pä55"})


def test_basic_good_credentials_are_accepted(basic_verifier: Any) -> None:
    assert basic_verifier.verify(request(b"{}", basic("pipedrive", "pä55"))) == Proof()


@pytest.mark.parametrize("user,password", [("pipedrive", "wrong"), ("someone", "pä55")])
def test_basic_bad_credentials_are_refused(basic_verifier: Any, user: str, password: str) -> None:
    refusal = refused(basic_verifier, request(b"{}", basic(user, password)))
    assert refusal == "basic credentials do not match"


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer abc"}])
def test_basic_missing_credentials_are_refused(basic_verifier: Any, headers: dict) -> None:
    assert refused(basic_verifier, request(b"{}", headers)) == "missing basic credentials"


def test_basic_malformed_credentials_are_refused(basic_verifier: Any) -> None:
    refusal = refused(basic_verifier, request(b"{}", {"Authorization": "Basic %%%"}))
    assert refusal == "malformed basic credentials"


# --- shared token ----------------------------------------------------------------------------

def test_token_in_header_is_checked() -> None:
    verifier = build_verifier({"scheme": "token", "secret": "t0ken", "header": "X-Api-Key"})
    verifier.verify(request(headers={"x-api-key": "t0ken"}))  # header names are case-insensitive
    assert refused(verifier, request(headers={"X-Api-Key": "nope"})) == "token does not match"
    assert refused(verifier, request()) == "missing token in header X-Api-Key"


def test_token_in_query_is_checked() -> None:
    verifier = build_verifier({"scheme": "token", "secret": "t0ken", "query": "key"})
    verifier.verify(request(query={"key": "t0ken"}))
    assert refused(verifier, request(query={"key": "t0ken!"})) == "token does not match"
    assert refused(verifier, request()) == "missing token in query parameter key"


def test_token_in_body_field_is_checked_on_the_parsed_payload() -> None:
    verifier = build_verifier({"scheme": "token", "secret": "t0ken", "field": "secret"})
    verifier.verify(request(b"{}"))  # nothing to check before the body is parsed
    verifier.verify_payload({"secret": "t0ken", "phone": "+57 300"})
    with pytest.raises(AuthFailed, match="token does not match"):
        verifier.verify_payload({"secret": "t0ken-tampered"})
    with pytest.raises(AuthFailed, match="missing token in field secret"):
        verifier.verify_payload({"phone": "+57 300"})
    with pytest.raises(AuthFailed, match="missing token in field secret"):
        verifier.verify_payload(["not", "an", "object"])


# --- Salesforce ------------------------------------------------------------------------------

@pytest.mark.parametrize("configured", [SF_ORG_15, SF_ORG_18])
@pytest.mark.parametrize("received", [SF_ORG_15, SF_ORG_18])
def test_salesforce_15_and_18_character_ids_name_the_same_org(configured: str,
                                                              received: str) -> None:
    verifier = build_verifier({"scheme": "salesforce", "organization_id": configured,
                               "token": "t0ken"})
    verifier.verify(request(b"<xml/>", query={"token": "t0ken"}))
    verifier.verify_payload({"OrganizationId": received})


@pytest.mark.parametrize("received", ["00D5e000000XyZwEAK", "00D5e000000abcd", "00D5E000000AbCd"])
def test_salesforce_a_different_org_is_refused(received: str) -> None:
    verifier = build_verifier({"scheme": "salesforce", "organization_id": SF_ORG_18,
                               "token": "t0ken"})
    with pytest.raises(AuthFailed, match="not the expected organization"):
        verifier.verify_payload({"OrganizationId": received})


def test_salesforce_missing_organization_id_is_refused() -> None:
    verifier = build_verifier({"scheme": "salesforce", "organization_id": SF_ORG_18,
                               "token": "t0ken"})
    with pytest.raises(AuthFailed, match="missing OrganizationId"):
        verifier.verify_payload({"ActionId": "04k5e000000AbCdAAK"})


def test_salesforce_optional_url_token_is_checked() -> None:
    verifier = build_verifier({"scheme": "salesforce", "organization_id": SF_ORG_18,
                               "token": "t0ken", "token_query": "k"})
    verifier.verify(request(query={"k": "t0ken"}))
    assert refused(verifier, request(query={"k": "other"})) == "token does not match"
    assert refused(verifier, request()) == "missing token in query parameter k"


def test_salesforce_without_url_token_or_allow_ips_refuses_to_start() -> None:
    message = config_error({"scheme": "salesforce", "organization_id": SF_ORG_18})
    assert "auth.token" in message and "auth.allow_ips" in message
    assert "Web-to-Lead" in message


def test_salesforce_with_allow_ips_alone_starts_and_checks_the_address() -> None:
    verifier = build_verifier({"scheme": "salesforce", "organization_id": SF_ORG_18,
                               "allow_ips": ["13.108.0.0/14", "2001:db8::/32"]})
    verifier.verify(request(remote_addr="13.110.1.2"))
    verifier.verify(request(remote_addr="2001:db8::7"))
    verifier.verify(request(remote_addr="::ffff:13.108.0.9"))  # IPv4 seen through IPv6
    assert refused(verifier, request(remote_addr="203.0.113.9")) == (
        "client address 203.0.113.9 is not in auth.allow_ips")
    assert "address unknown" in refused(verifier, request(remote_addr=""))


# --- any scheme ------------------------------------------------------------------------------

def test_allow_ips_works_with_every_scheme_and_keeps_the_scheme_check() -> None:
    verifier = build_verifier({"scheme": "token", "secret": "t0ken", "header": "X-Key",
                               "allow_ips": ["10.0.0.0/8"]})
    assert verifier.scheme == "token"
    verifier.verify(request(headers={"X-Key": "t0ken"}, remote_addr="10.1.2.3"))
    assert refused(verifier, request(headers={"X-Key": "bad"}, remote_addr="10.1.2.3")) == (
        "token does not match")
    assert "not in auth.allow_ips" in refused(
        verifier, request(headers={"X-Key": "t0ken"}, remote_addr="192.168.1.1"))


def test_config_allow_ips_names_the_bad_network() -> None:
    message = config_error({"scheme": "none", "allow_ips": ["10.0.0.0/8", "10.0.0.300/8"]})
    assert message.startswith("auth.allow_ips[1]:")
    assert config_error({"scheme": "none", "allow_ips": "10.0.0.0/8"}).startswith(
        "auth.allow_ips: expected a non-empty list")


@pytest.mark.parametrize("scheme,options,where", [
    ("token", {"header": "X-Key"}, lambda s: {"headers": {"X-Key": s}}),
    ("basic", {"username": "u"}, lambda s: {"headers": basic("u", s)}),
    ("hmac", {"header": "X-Sig"}, lambda s: {"headers": {
        "X-Sig": hmac_signature(s, b"{}", "sha256", "hex")}, "body": b"{}"}),
])
def test_a_secret_may_be_a_list_so_old_and_new_both_work_while_rotating(scheme, options, where):
    key = "password" if scheme == "basic" else "secret"
    verifier = build_verifier({"scheme": scheme, **options, key: ["new-one", "old-one", ""]})
    for secret in ("new-one", "old-one"):
        args = where(secret)
        verifier.verify(request(args.pop("body", b"{}"), **args))
    args = where("another")
    with pytest.raises(AuthFailed):
        verifier.verify(request(args.pop("body", b"{}"), **args))


def test_hubspot_secret_list_checks_each_secret_for_v3() -> None:
    verifier = build_verifier({"scheme": "hubspot", "secret": ["new-secret", HS_SECRET]})
    ts = int(NOW * 1000)
    headers = {"X-HubSpot-Signature-v3": hubspot_v3(HS_SECRET, "POST", HS_URI, HS_BODY, ts),
               "X-HubSpot-Request-Timestamp": str(ts)}
    verifier.verify(request(HS_BODY, headers, url=HS_URI))


def test_config_a_list_of_only_empty_secrets_is_refused() -> None:
    message = config_error({"scheme": "token", "query": "k", "secret": ["", ""]})
    assert message.startswith("auth.secret: empty")


def test_signed_url_seen_through_a_misconfigured_proxy_is_found_among_the_variants() -> None:
    from webhooks.crm.signatures import matching_variant

    ts = int(NOW * 1000)
    public = "https://bridge.example.com/hooks/hubspot?x=1"
    headers = {"X-HubSpot-Signature-v3": hubspot_v3(HS_SECRET, "POST", public, HS_BODY, ts),
               "X-HubSpot-Request-Timestamp": str(ts), "X-Forwarded-Host": "bridge.example.com",
               "Host": "10.0.0.5:8000"}
    verifier = build_verifier({"scheme": "hubspot", "secret": HS_SECRET})
    seen = request(HS_BODY, headers, url="http://10.0.0.5:8000/hooks/hubspot?x=1")
    refused(verifier, seen)
    assert matching_variant(verifier, seen) == public
    forged = request(b"{}", headers, url="http://10.0.0.5:8000/hooks/hubspot?x=1")
    assert matching_variant(verifier, forged) is None  # a bad signature stays unexplained


# --- none ------------------------------------------------------------------------------------

def test_none_lets_every_request_through() -> None:
    verifier = build_verifier({"scheme": "none"})
    assert verifier.scheme == "none"
    assert verifier.verify(request(b"anything")) == Proof()
    verifier.verify_payload({"anything": True})


# --- configuration ---------------------------------------------------------------------------

def config_error(options: Any) -> str:
    with pytest.raises(AuthConfigError) as caught:
        build_verifier(options)
    return str(caught.value)


def test_every_listed_scheme_can_be_built() -> None:
    minimal = {
        "hubspot": {"secret": "s"}, "salesforce": {"organization_id": SF_ORG_15, "token": "t"},
        "standard-webhooks": {"secret": SW_SECRET}, "hmac": {"secret": "s", "header": "X-S"},
        "basic": {"username": "u", "password": "p"}, "token": {"secret": "s", "query": "t"},
        "none": {},
    }
    assert set(minimal) == set(SCHEMES)
    for scheme, options in minimal.items():
        assert build_verifier({"scheme": scheme, **options}).scheme == scheme


def test_config_unknown_scheme_lists_the_known_ones() -> None:
    message = config_error({"scheme": "zoho"})
    assert message.startswith("auth.scheme:")
    assert all(scheme in message for scheme in SCHEMES)


def test_config_missing_scheme_names_the_key() -> None:
    assert config_error({"secret": "s"}).startswith("auth.scheme: missing")


def test_config_unknown_option_names_the_key() -> None:
    message = config_error({"scheme": "hubspot", "secret": "s", "max_agee": 60})
    assert message.startswith("auth.max_agee: unknown option")
    assert "max_age" in message.removeprefix("auth.max_agee")


def test_config_missing_secret_names_the_key_and_the_fix() -> None:
    message = config_error({"scheme": "hubspot"})
    assert message == "auth.secret: missing, expected a string (use ${NAME} for secrets)"


@pytest.mark.parametrize("scheme,extra", [("hmac", {"header": "X-S"}), ("token", {"query": "t"})])
def test_config_empty_secret_is_refused(scheme: str, extra: dict) -> None:
    assert config_error({"scheme": scheme, "secret": "", **extra}).startswith("auth.secret: empty")


def test_config_empty_basic_password_is_refused() -> None:
    message = config_error({"scheme": "basic", "username": "u", "password": ""})
    assert message.startswith("auth.password: empty")


def test_config_token_needs_exactly_one_place() -> None:
    assert "exactly one of" in config_error({"scheme": "token", "secret": "s"})
    both = {"scheme": "token", "secret": "s", "header": "X-Key", "query": "key"}
    assert "auth.header" in config_error(both)


def test_config_standard_webhooks_needs_a_secret_or_secrets() -> None:
    assert "auth.secret" in config_error({"scheme": "standard-webhooks"})


def test_config_standard_webhooks_secret_must_be_base64_and_is_not_echoed() -> None:
    message = config_error({"scheme": "standard-webhooks", "secrets": [SW_SECRET, "whsec_n0t!b64"]})
    assert message.startswith("auth.secrets[1]:")
    assert "n0t!b64" not in message


def test_config_hmac_options_are_checked() -> None:
    assert config_error({"scheme": "hmac", "secret": "s"}).startswith("auth.header: missing")
    bad_algorithm = {"scheme": "hmac", "secret": "s", "header": "X-S", "algorithm": "md5"}
    assert config_error(bad_algorithm).startswith("auth.algorithm:")
    bad_encoding = {"scheme": "hmac", "secret": "s", "header": "X-S", "encoding": "base32"}
    assert config_error(bad_encoding).startswith("auth.encoding:")
    bad_age = {"scheme": "hmac", "secret": "s", "header": "X-S", "max_age": "soon"}
    assert config_error(bad_age).startswith("auth.max_age:")


def test_config_salesforce_org_id_must_have_15_or_18_characters() -> None:
    message = config_error({"scheme": "salesforce", "organization_id": "00D5e000000AbCdE"})
    assert message.startswith("auth.organization_id:")


def test_config_none_takes_no_options() -> None:
    assert config_error({"scheme": "none", "secret": "s"}).startswith("auth.secret: unknown")


def test_config_is_a_value_error_for_callers_that_catch_those() -> None:
    assert issubclass(AuthConfigError, ValueError)


def test_verifier_repr_does_not_show_secrets() -> None:
    verifier = build_verifier({"scheme": "basic", "username": "u", "password": "hunter2"})
    assert "hunter2" not in repr(verifier)


def test_token_in_a_nested_body_field_is_checked_and_removed() -> None:
    from webhooks.crm.signatures import strip

    verifier = build_verifier({"scheme": "token", "secret": "t0ken",
                               "field": "auth.application_token"})
    payload = {"event": "ONCRMLEADUPDATE", "auth": {"application_token": "t0ken", "domain": "x"}}
    verifier.verify_payload(payload)
    with pytest.raises(AuthFailed, match="token does not match"):
        verifier.verify_payload({"auth": {"application_token": "guess"}})
    with pytest.raises(AuthFailed, match="missing token in field auth.application_token"):
        verifier.verify_payload({"auth": "not an object"})
    strip(payload, verifier.strip_field)
    assert payload == {"event": "ONCRMLEADUPDATE", "auth": {"domain": "x"}}
