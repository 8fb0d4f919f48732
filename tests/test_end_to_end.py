"""A real gunicorn, the sandbox over loopback, signed HubSpot webhooks: the whole path."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import signal
import subprocess
import time

import pytest
import requests

from tests.conftest import ENVIRON, ROOT, SANDBOX_TOKEN
from tests.procs import BIN, gunicorn, wait_until

pytestmark = pytest.mark.slow

BODY = (b'{"vid": 123445, "properties": {"phone": {"value": "+57 300 123 4567"}, '
        b'"callback_requested": {"value": "true"}, "callback_at": {"value": "1924963200000"}}}')


def signed_v3(url: str, body: bytes, secret: str = "hubspot-secret") -> dict[str, str]:
    timestamp = str(int(time.time() * 1000))
    message = b"POST" + url.encode() + body + timestamp.encode()
    signature = base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest())
    return {"X-HubSpot-Signature-v3": signature.decode(), "X-HubSpot-Request-Timestamp": timestamp,
            "Content-Type": "application/json"}


@pytest.fixture
def bridge_env(sandbox, tmp_path):
    return {**ENVIRON, "DATABASE_URL": f"sqlite:///{tmp_path / 'bridge.db'}",
            "WOLKVOX_TOKEN": SANDBOX_TOKEN, "WOLKVOX_BASE_URL": sandbox.url,
            "WEB_CONCURRENCY": "2", "POLL_INTERVAL": "0.1"}


def post_signed(base: str, body: bytes = BODY) -> requests.Response:
    url = f"{base}/hooks/hubspot-workflow"
    return requests.post(url, data=body, headers=signed_v3(url, body), timeout=10)


def test_signed_webhook_through_gunicorn_becomes_one_recall(bridge_env, sandbox, tmp_path):
    proc, base = gunicorn(bridge_env, tmp_path / "gunicorn.log")
    try:
        first = post_signed(base)
        assert first.status_code == 202, first.text
        assert first.json()["events"][0]["result"] == "accepted"
        assert post_signed(base).json()["events"][0]["result"] == "duplicate"
        wait_until(lambda: sandbox.recalls(), 10)
        time.sleep(0.5)  # a second recall, if the duplicate had been sent, would show by now
        recalls = sandbox.recalls()
        assert len(recalls) == 1
        assert recalls[0]["recall_telephone"] == "93001234567"
        assert recalls[0]["recall_date"] == "20301231110000"
        assert recalls[0]["customer_id"] == "123445"
        assert "93001234567" not in proc.output()  # no phone number in the logs
    finally:
        proc.kill(signal.SIGTERM)


def test_event_answered_before_a_crash_is_delivered_after_restart(bridge_env, sandbox,
                                                                   tmp_path):
    proc, base = gunicorn({**bridge_env, "DELIVERY_WORKER": "false"}, tmp_path / "one.log")
    try:
        assert post_signed(base).status_code == 202
        time.sleep(0.3)
        assert sandbox.recalls() == []
    finally:
        proc.kill(signal.SIGKILL)
    proc, base = gunicorn(bridge_env, tmp_path / "two.log")
    try:
        wait_until(lambda: sandbox.recalls(), 10, proc)
        assert len(sandbox.recalls()) == 1
    finally:
        proc.kill(signal.SIGTERM)


def test_misspelt_mapping_key_stops_gunicorn_with_one_line(bridge_env, tmp_path):
    bad = tmp_path / "mappings"
    bad.mkdir()
    text = (ROOT / "mappings" / "zapier.yaml").read_text().replace("recall_date:", "recal_date:")
    (bad / "zapier.yaml").write_text(text)
    result = subprocess.run([str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", "wsgi:app"],
                            cwd=ROOT, env={**bridge_env, "MAPPINGS_DIR": str(bad),
                                           "PATH": str(BIN)},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.startswith("recall-bridge:")]
    assert "mappings/zapier.yaml: recall.recal_date: unknown key; did you mean 'recall_date'?" \
        in "\n".join(lines)
    assert "Traceback" not in result.stderr


def test_chunked_body_over_the_limit_is_413_not_cut_and_accepted(bridge_env, tmp_path):
    proc, base = gunicorn({**bridge_env, "MAX_BODY_BYTES": "1000"}, tmp_path / "g.log")
    try:
        body = json.dumps({"lead_id": 1, "phone": "3001234567", "pad": "x" * 5000}).encode()
        chunks = (body[i:i + 512] for i in range(0, len(body), 512))  # no Content-Length
        response = requests.post(f"{base}/hooks/zapier", data=chunks, timeout=10,
                                 headers={"X-Bridge-Token": ENVIRON["ZAPIER_SHARED_SECRET"],
                                          "Content-Type": "application/json"})
        assert response.request.headers.get("Transfer-Encoding") == "chunked"
        assert response.status_code == 413, response.text
        small = json.dumps({"lead_id": 1, "phone": "3001234567"}).encode()
        response = requests.post(f"{base}/hooks/zapier", data=iter([small]), timeout=10,
                                 headers={"X-Bridge-Token": ENVIRON["ZAPIER_SHARED_SECRET"],
                                          "Content-Type": "application/json"})
        assert response.status_code == 202, response.text
    finally:
        proc.kill(signal.SIGTERM)
