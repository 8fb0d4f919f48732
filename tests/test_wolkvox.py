"""What the bridge sends to wolkvox, and what each kind of answer tells the worker to do."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses

from webhooks.outbound.wolkvox import (
    Delivered,
    QuotaExceeded,
    Rejected,
    RetryLater,
    RetrySoon,
    TokenRejected,
    WolkvoxError,
    classify,
    send_recall,
)
from webhooks.recall import Target

BASE = "https://wv0005.wolkvox.com"
URL = BASE + "/api/v2/campaign.php"
TOKEN = "secret-token-xyz"
TARGET = Target(base_url=BASE, token=TOKEN, timezone="America/Bogota")
RECALL = {"type_campaign": "predictive", "campaign_id": "4638", "customer_id": "12345",
          "recall_telephone": "93001234567", "recall_date": "20301201103000"}
TIMEOUTS = (5.0, 60.0)
OK_MSG = ("customer_id 12345 has been updated and will be call back on 20301201103000 "
          "to phone 93001234567")


def body(code: object, msg: str | None, error: str | None = "Error") -> bytes:
    return json.dumps({"code": code, "error": error, "msg": msg}).encode()


def send(**reply: object):
    """send_recall against a faked wolkvox answering `reply` (responses.add keywords)."""
    with responses.RequestsMock() as fake:
        fake.add(responses.PUT, URL, **reply)
        with requests.Session() as session:
            result = send_recall(session, TARGET, RECALL, TIMEOUTS)
        return result, list(fake.calls)  # the mock forgets its calls when it closes


def refused(**reply: object) -> WolkvoxError:
    with pytest.raises(WolkvoxError) as caught:
        send(**reply)
    return caught.value


# --- delivered ---------------------------------------------------------------------------
@pytest.mark.parametrize("code", [202, "202"])
def test_202_with_code_202_is_delivered_whether_code_is_an_int_or_a_string(code):
    result, _ = send(status=202, body=body(code, OK_MSG, error=None))
    assert isinstance(result, Delivered)
    assert result.answer.http_status == 202
    assert result.answer.code == 202
    assert result.answer.msg == OK_MSG.replace("93001234567", "********567")  # masked as read


@pytest.mark.parametrize("content", [
    body(200, "OK"), b"{}", b"<html>accepted</html>", b"[202]",
])
def test_2xx_without_code_202_in_the_body_is_retried_later(content):
    with pytest.raises(RetryLater) as caught:
        classify(202, content, 1.0)
    assert "without code 202" in caught.value.reason
    assert caught.value.counted


# --- wolkvox's error table ---------------------------------------------------------------
def test_400_some_parameters_are_required_is_rejected_with_wolkvox_msg():
    error = refused(status=400, body=body(400, "SOME PARAMETERS ARE REQUIRED"))
    assert type(error) is Rejected
    assert error.answer.msg == "SOME PARAMETERS ARE REQUIRED"
    assert "SOME PARAMETERS ARE REQUIRED" in error.reason
    assert error.answer.http_status == 400 and error.answer.code == 400


def test_401_is_token_rejected_and_not_counted():
    error = refused(status=401, body=body(401, "PLEASE ENTER THE WOLKVOX-TOKEN"))
    assert type(error) is TokenRejected
    assert not error.counted
    assert "PLEASE ENTER THE WOLKVOX-TOKEN" in error.reason


def test_403_please_validate_token_is_token_rejected():
    error = refused(status=403, body=body(403, "PLEASE VALIDATE TOKEN"))
    assert type(error) is TokenRejected
    assert not error.counted


def test_403_token_limit_exceeded_is_quota_exceeded_and_not_counted():
    error = refused(status=403, body=body(403, "TOKEN LIMIT EXCEEDED"))
    assert type(error) is QuotaExceeded
    assert not error.counted


def test_403_simultaneous_requests_is_retry_soon_and_not_counted_as_an_attempt():
    error = refused(status=403, body=body(
        403, "EXCEEDS THE LIMIT OF SIMULTANEOUS REQUESTS PER TOKEN (2)"))
    assert type(error) is RetrySoon
    assert error.counted is False


def test_other_403_is_maintenance_retried_later_and_counted():
    error = refused(status=403, body=body(403, "SERVER UNDER MAINTENANCE"))
    assert type(error) is RetryLater
    assert error.counted
    assert "HTTP 403" in error.reason and "SERVER UNDER MAINTENANCE" in error.reason


@pytest.mark.parametrize("status", [500, 503])
def test_5xx_is_retried_later(status):
    error = refused(status=status, body=body(status, "Internal error"))
    assert type(error) is RetryLater
    assert error.counted
    assert f"HTTP {status}" in error.reason


def test_html_502_from_a_proxy_is_retried_later_with_an_excerpt_of_the_page():
    page = b"<html><body><h1>502 Bad Gateway</h1>\n  <p>nginx</p></body></html>"
    error = refused(status=502, body=page, content_type="text/html")
    assert type(error) is RetryLater
    assert "not wolkvox JSON" in error.reason
    assert error.answer.code is None
    assert "502 Bad Gateway" in error.answer.msg and "\n" not in error.answer.msg


def test_a_long_msg_is_cut_to_a_bounded_length():
    error = refused(status=503, body=body(503, "X" * 5000))
    assert 0 < len(error.answer.msg) <= 500


# --- transport ---------------------------------------------------------------------------
def test_timeout_is_retried_later_as_a_timeout():
    error = refused(body=requests.exceptions.ReadTimeout("read timed out"))
    assert type(error) is RetryLater
    assert error.counted
    assert error.reason.startswith("timeout")
    assert error.answer.http_status is None and error.answer.code is None


def test_connection_error_is_retried_later_as_a_transport_error():
    error = refused(body=requests.exceptions.ConnectionError("connection reset"))
    assert type(error) is RetryLater
    assert "transport error" in error.reason
    assert error.answer.http_status is None


def test_unreachable_host_is_retried_later_and_no_requests_exception_escapes():
    target = Target(base_url="http://127.0.0.1:1", token=TOKEN, timezone="America/Bogota")
    with requests.Session() as session, pytest.raises(RetryLater):
        send_recall(session, target, RECALL, (0.5, 0.5))


# --- the request -------------------------------------------------------------------------
def test_the_request_is_the_documented_put_with_query_token_header_and_json_body():
    _, calls = send(status=202, body=body(202, OK_MSG, error=None))
    [call] = calls
    request = call.request
    assert request.method == "PUT"
    url = urlsplit(request.url)
    assert f"{url.scheme}://{url.netloc}" == BASE
    assert url.path == "/api/v2/campaign.php"
    assert parse_qs(url.query) == {"api": ["recall"], "type_campaign": ["predictive"],
                                   "campaign_id": ["4638"]}
    assert request.headers["wolkvox-token"] == TOKEN
    assert request.headers["Content-Type"] == "application/json"
    assert json.loads(request.body) == {"recall_date": "20301201103000",
                                        "recall_telephone": "93001234567",
                                        "customer_id": "12345"}


def test_the_connect_and_read_timeouts_are_passed_on_every_call():
    _, calls = send(status=202, body=body(202, OK_MSG, error=None))
    assert calls[0].request.req_kwargs["timeout"] == TIMEOUTS


# --- the target --------------------------------------------------------------------------
def test_target_key_is_stable_differs_by_token_and_does_not_reveal_it():
    same = Target(base_url=BASE, token=TOKEN, timezone="UTC")
    other = Target(base_url=BASE, token="another-token", timezone="America/Bogota")
    assert TARGET.key == same.key
    assert TARGET.key != other.key
    assert TOKEN not in TARGET.key
    assert TOKEN not in repr(TARGET)
