"""LOG_FORMAT=json: one JSON object a line, with the caller's event id, source, outcome and
latency; never a secret or a full phone. LOG_FORMAT=text keeps the line a person reads."""

from __future__ import annotations

import io
import json
import logging

import pytest

from webhooks import ConfigError
from webhooks.observability import logs
from webhooks.settings import Settings

SECRETS = {"ZAPIER_SHARED_SECRET": "zap-secret-value", "SALESFORCE_ORG_ID": "00D5e000000AbCd"}


@pytest.fixture(autouse=True)
def _no_handler_left_behind():
    yield
    bridge = logging.getLogger(logs.LOGGER)
    for handler in [h for h in bridge.handlers if h.get_name() == logs.HANDLER]:
        bridge.removeHandler(handler)


@pytest.fixture
def logged():
    """Set up logging as create_app does, into a buffer; (logger, the lines so far)."""
    stream = io.StringIO()
    logger = logging.getLogger("webhooks.test")

    def start(**settings):
        defaults = {"log_format": "json", "wolkvox_token": "wolkvox-token-123",
                    "admin_token": "admin-token-456-abcdefghijkl", "environ": SECRETS}
        logs.setup(Settings(**{**defaults, **settings}), stream=stream)
        return logger, lambda: stream.getvalue().splitlines()

    return start


def test_json_lines_have_time_level_logger_message_and_the_given_extras(logged):
    logger, lines = logged()
    logger.info("event %s delivered", 7, extra={"event_id": 7, "source": "zapier",
                                                 "outcome": "delivered", "latency_ms": 212.5,
                                                 "customer": "not in the allowlist"})
    logger.warning("no extras\nsecond line")
    first, second = (json.loads(line) for line in lines())
    assert first["level"] == "INFO" and first["logger"] == "webhooks.test"
    assert first["message"] == "event 7 delivered"
    assert (first["event_id"], first["source"], first["outcome"], first["latency_ms"]) == (
        7, "zapier", "delivered", 212.5)
    assert "customer" not in first
    assert first["time"].endswith("+00:00")
    assert second == {"time": second["time"], "level": "WARNING", "logger": "webhooks.test",
                      "message": "no extras\nsecond line"}  # one line, escaped


def test_json_lines_never_hold_a_secret_or_a_full_phone(logged):
    logger, lines = logged()
    logger.error("wolkvox said: recall for 300 123 4567 set; token wolkvox-token-123")
    logger.info("header X-Bridge-Token: zap-secret-value from +57 301 555 1234")
    logger.info("database postgresql://bridge:hunter22@db:5432/bridge")
    logger.info("the org 00D5e000000AbCd is public; callback at 20301201103000")
    try:
        raise ValueError("admin-token-456-abcdefghijkl and 3001234567 in a traceback")
    except ValueError:
        logger.exception("failed")
    text = "\n".join(lines())
    for secret in ("wolkvox-token-123", "zap-secret-value", "hunter22",
                   "admin-token-456-abcdefghijkl"):
        assert secret not in text
    for phone in ("300 123 4567", "3001234567", "301 555 1234"):
        assert phone not in text
    messages = [json.loads(line) for line in lines()]
    assert messages[0]["message"] == ("wolkvox said: recall for *******567 set; "
                                      "token [redacted]")
    assert messages[2]["message"] == "database postgresql://bridge:[redacted]@db:5432/bridge"
    assert "00D5e000000AbCd" in messages[3]["message"]  # not a secret by its name
    assert "20301201103000" in messages[3]["message"]  # a wolkvox date is no phone
    assert "[redacted]" in messages[4]["exception"] and "*******567" in messages[4]["exception"]


def test_text_keeps_todays_format(logged):
    root = logging.getLogger()
    saved = root.handlers[:]
    root.handlers.clear()  # as in production: nothing configured before the app
    try:
        logger, lines = logged(log_format="text")
        logger.warning("hook %s: refused", "zapier")
    finally:
        root.handlers[:] = saved
    [line] = lines()
    assert line.endswith(" WARNING webhooks.test: hook zapier: refused")


def test_setting_up_again_replaces_the_handler(logged):
    logger, lines = logged()
    logged()
    logger.info("once")
    assert len(lines()) == 1


def test_an_unknown_log_format_stops_the_app_with_one_line(make_app):
    with pytest.raises(ConfigError) as err:
        make_app(log_format="xml")
    assert err.value.problems == ["LOG_FORMAT='xml': expected one of text, json"]


def test_the_app_logs_json_when_asked(make_app, capsys):
    app = make_app(log_format="json")
    app.test_client().post("/hooks/zapier", json={"lead_id": 1, "phone": "12"},
                           headers={"X-Bridge-Token": "zap-secret"})
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()
             if line.startswith("{")]
    assert any(line["logger"] == "webhooks.intake.receiver" and "zapier" in line["message"]
               for line in lines)
