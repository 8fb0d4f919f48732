"""The real gunicorn (shipped settings: 2 workers x 8 threads) against misbehaving clients on
real sockets: stalled requests, clients that never close, forged log lines, leaked secrets."""

from __future__ import annotations

import http.client
import json
import re
import shutil
import socket
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator

import pytest
import requests
from gunicorn.config import Config
from gunicorn.http.parser import RequestParser
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import ROOT
from tests.procs import Proc, gunicorn, wait_until
from webhooks.server.whole_requests import Arrival

pytestmark = pytest.mark.slow

REQUEST_TIMEOUT = 3.0  # short, so that the deadline tests are fast (the default is 10 s)
MAX_BODY_BYTES = 1024 * 1024
TOKEN = {"X-Bridge-Token": "zap-secret"}
HEAD = (b"POST /hooks/zapier HTTP/1.1\r\nHost: bridge\r\nContent-Type: application/json\r\n"
        b"X-Bridge-Token: zap-secret\r\n")


class Server:
    def __init__(self, proc: Proc, base: str):
        self.proc, self.base = proc, base
        self.port = int(base.rsplit(":", 1)[1])

    def connect(self, timeout: float = 10) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=timeout)

    def output(self) -> str:
        return self.proc.output()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("server")
    (tmp / "mappings").mkdir()
    shutil.copy(ROOT / "mappings" / "zapier.yaml", tmp / "mappings")
    env = {"DATABASE_URL": f"sqlite:///{tmp / 'bridge.db'}", "MAPPINGS_DIR": str(tmp / "mappings"),
           "SOURCES": "zapier", "WOLKVOX_TOKEN": "x", "WOLKVOX_BASE_URL": "http://127.0.0.1:9",
           "DELIVERY_WORKER": "false", "WOLKVOX_CAMPAIGN_ID": "4638",
           "ZAPIER_SHARED_SECRET": "zap-secret", "REQUEST_TIMEOUT": str(REQUEST_TIMEOUT)}
    proc, base = gunicorn(env, tmp / "gunicorn.log")
    yield Server(proc, base)
    proc.kill()


def webhook(**extra: object) -> dict:
    return {"request_id": uuid.uuid4().hex, "lead_id": 1, "phone": "300 123 4567",
            "callback_at": "2030-12-01T10:30:00-05:00", **extra}


def post_webhook(server: Server) -> None:
    answer = requests.post(f"{server.base}/hooks/zapier", json=webhook(), headers=TOKEN, timeout=5)
    assert answer.status_code == 202, answer.text


def get_healthz(server: Server) -> None:
    assert requests.get(f"{server.base}/healthz", timeout=5).status_code == 200


def slowest(*calls: Callable[[], None], rounds: int = 3) -> float:
    """The longest any call took; each runs `rounds` times (both workers get some)."""
    delays = []
    for _ in range(rounds):
        for call in calls:
            start = time.monotonic()
            call()
            delays.append(time.monotonic() - start)
    return max(delays)


def read_response(sock: socket.socket, buffered: bytes = b"") -> tuple[int, bytes, bytes]:
    """(status, body, bytes after it) of one response with a Content-Length."""
    data = buffered
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"connection closed after {data!r}")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    found = re.search(rb"(?im)^content-length: *(\d+)", head)
    length = int(found.group(1)) if found else 0
    while len(rest) < length:
        rest += sock.recv(65536)
    return int(head.split()[1]), rest[:length], rest[length:]


def final_answer(sock: socket.socket) -> bytes:
    """What a client gets before the server closes: a status line, or b"" (just closed)."""
    try:
        return sock.recv(64)
    except ConnectionResetError:
        return b""


# --- when a request is whole (pure; checked against gunicorn's own parser) ------------------
@st.composite
def http_requests(draw: st.DrawFn) -> bytes:
    body = draw(st.binary(max_size=300))
    head = b"POST /hooks/zapier HTTP/1.1\r\nHost: bridge\r\n"
    if draw(st.booleans()):
        return head + b"Content-Length: %d\r\n\r\n" % len(body) + body
    cuts = sorted(draw(st.lists(st.integers(0, len(body)), max_size=4)))
    chunks = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True) if b > a]
    ext = draw(st.sampled_from([b"", b";name=value", b' ; q="x y"']))
    trailer = draw(st.sampled_from([b"", b"X-Sum: 1\r\n"]))
    return (head + b"Transfer-Encoding: chunked\r\n\r\n"
            + b"".join(b"%x%s\r\n%s\r\n" % (len(c), ext, c) for c in chunks)
            + b"0" + ext + b"\r\n" + trailer + b"\r\n")


@settings(max_examples=300, deadline=None)
@given(http_requests(), st.data())
def test_a_request_is_whole_exactly_when_its_last_byte_arrives(request_bytes, data):
    cuts = sorted(data.draw(st.lists(st.integers(1, len(request_bytes) - 1), max_size=8)))
    pieces = [request_bytes[a:b]
              for a, b in zip([0, *cuts], [*cuts, len(request_bytes)], strict=True) if b > a]
    one_by_one = [request_bytes[i:i + 1] for i in range(len(request_bytes))]
    for split in (pieces, one_by_one):
        arrival = Arrival(4094)
        for piece in split[:-1]:
            assert not arrival.feed(piece)
        assert arrival.feed(split[-1])
    # gunicorn reads the request and its whole body from exactly these bytes, no more
    request = next(RequestParser(Config(), iter([bytes(arrival.data)]), ("127.0.0.1", 1)))
    assert request.body.read() is not None
    assert request.body.read() == b""


@pytest.mark.parametrize("head", [
    b"GET / HTTP/1.1\nHost: x\n",  # bare LF
    b"GET /" + b"a" * 5000,  # a request line over limit_request_line, unfinished
    b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
    b"POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
    b"POST / HTTP/1.1\r\nExpect: something\r\nContent-Length: 9\r\n\r\n",
    b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
])
def test_a_request_gunicorn_can_refuse_now_goes_to_it_at_once(head):
    assert Arrival(4094).feed(head)


def test_expect_100_continue_is_noticed_once_the_headers_are_in():
    arrival = Arrival(4094)
    assert not arrival.feed(HEAD + b"Expect: 100-continue\r\nContent-Length: 9\r\n\r\n")
    assert arrival.expects_continue


# --- stalled clients ------------------------------------------------------------------------
def test_clients_stalled_after_their_headers_do_not_delay_other_webhooks(server):
    stalled = []
    try:
        for _ in range(32):  # twice as many as the 2 x 8 threads
            sock = server.connect(timeout=REQUEST_TIMEOUT + 3)
            sock.sendall(HEAD + b"Content-Length: 1000\r\n\r\n")
            stalled.append(sock)
        time.sleep(0.3)  # every one accepted (and, with plain gthread, holding a thread)
        delay = slowest(lambda: post_webhook(server), lambda: get_healthz(server))
        print(f"slowest webhook or /healthz with 32 stalled clients: {delay:.3f}s")
        assert delay < 2

        start = time.monotonic()
        answers = {final_answer(sock)[:28] for sock in stalled}
        assert answers <= {b"HTTP/1.1 408 Request Timeout", b""}, answers
        assert time.monotonic() - start < REQUEST_TIMEOUT + 2
    finally:
        for sock in stalled:
            sock.close()
    assert "408: 127.0.0.1 sent" in server.output()


def test_a_client_stalling_past_the_buffer_limit_is_cut_off_at_the_deadline(server):
    """Past 64 KiB a request is read by a thread, but never for longer than the deadline."""
    stalled = []
    try:
        for _ in range(32):
            sock = server.connect(timeout=REQUEST_TIMEOUT + 5)
            sock.sendall(HEAD + b"Content-Length: %d\r\n\r\n" % MAX_BODY_BYTES + b" " * 100_000)
            stalled.append(sock)
        time.sleep(REQUEST_TIMEOUT + 1.5)
        delay = slowest(lambda: post_webhook(server), lambda: get_healthz(server))
        print(f"slowest webhook or /healthz after the deadline: {delay:.3f}s")
        assert delay < 2
        answers = {final_answer(sock)[:12] for sock in stalled}
        assert answers <= {b"HTTP/1.1 400", b""}, answers  # the app saw a client go away
    finally:
        for sock in stalled:
            sock.close()


def test_clients_that_never_close_do_not_freeze_the_server(server):
    """gthread lingers up to 2 s for the client's FIN after a closing answer, on its poller."""
    held = []
    try:
        for number in range(20):
            sock = server.connect()
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: bridge\r\nConnection: close\r\n\r\n"
                         if number % 2 else b"GET /healthz HTTP/1.1 junk\r\n\r\n")
            held.append(sock)
        time.sleep(0.3)
        delay = slowest(lambda: get_healthz(server))
        print(f"slowest /healthz with 20 clients not closing: {delay:.3f}s")
        assert delay < 2
    finally:
        for sock in held:
            sock.close()


# --- what must keep working -----------------------------------------------------------------
def test_bodies_up_to_the_limit_plain_or_chunked_are_accepted_and_larger_refused(server):
    url = f"{server.base}/hooks/zapier"
    small = json.dumps(webhook(padding="")).encode()
    full = json.dumps(webhook(padding="x" * (MAX_BODY_BYTES - len(small)))).encode()
    assert len(full) == MAX_BODY_BYTES
    answer = requests.post(url, data=full, headers=TOKEN, timeout=10)
    assert answer.status_code == 202, answer.text

    body = json.dumps(webhook(padding="y" * 200_000)).encode()
    pieces = iter([body[:10], body[10:150_000], body[150_000:]])  # a generator: chunked
    answer = requests.post(url, data=pieces, headers=TOKEN, timeout=10)
    assert answer.request.headers["Transfer-Encoding"] == "chunked"
    assert answer.status_code == 202, answer.text

    answer = requests.post(url, data=full + b" ", headers=TOKEN, timeout=10)
    assert answer.status_code == 413


def test_expect_100_continue_is_answered_before_the_body_is_sent(server):
    body = json.dumps(webhook()).encode()
    with server.connect(timeout=5) as sock:
        sock.sendall(HEAD + b"Expect: 100-continue\r\nContent-Length: %d\r\n\r\n" % len(body))
        interim = sock.recv(25)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(body)
        status, answer, _ = read_response(sock)
        assert status == 202, answer  # and no second "100 Continue" before it


def test_keep_alive_serves_several_requests_on_one_connection(server):
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        sockets = []
        for _ in range(2):
            connection.request("POST", "/hooks/zapier", json.dumps(webhook()),
                               {**TOKEN, "Content-Type": "application/json"})
            sockets.append(connection.sock)
            answer = connection.getresponse()
            assert answer.status == 202, answer.read()
            answer.read()
        assert sockets[0] is sockets[1]  # the second request did not reconnect
    finally:
        connection.close()

    requests_ = b"".join(HEAD + b"Content-Length: %d\r\n\r\n" % len(b) + b
                         for b in (json.dumps(webhook()).encode() for _ in range(2)))
    with server.connect(timeout=5) as sock:
        sock.sendall(requests_)  # pipelined: both in one send
        status, _, rest = read_response(sock)
        assert status == 202
        status, _, _ = read_response(sock, rest)
        assert status == 202


def test_a_burst_of_new_connections_is_shared_out_between_the_workers(tmp_path):
    """Both workers poll one listening socket; left alone, the first to call accept() takes
    the connection, and 16 opened at once landed up to 14 to 2. The busier worker waits a little
    before accepting, so each round of 16 is shared 8 to 8, give or take 2."""
    proc, base = gunicorn({}, tmp_path / "gunicorn.log", app="tests.pid_app:app")
    port = int(base.rsplit(":", 1)[1])
    try:
        booted: set[str] = set()
        wait_until(lambda: booted.add(requests.get(base, timeout=5).text) or len(booted) == 2,
                   30, proc)  # both workers answer
        splits = []
        for _ in range(6):
            sockets = [socket.create_connection(("127.0.0.1", port), timeout=5)
                       for _ in range(16)]
            served = Counter()
            for sock in sockets:
                sock.sendall(b"GET /pid HTTP/1.1\r\nHost: bridge\r\n\r\n")
                status, body, _ = read_response(sock)
                assert status == 200
                served[int(body)] += 1
            for sock in sockets:
                sock.close()
            splits.append(sorted(served.values()))
            time.sleep(0.3)  # the workers see the connections closed
    finally:
        proc.kill()
    print("connections per worker, each round:", splits)
    assert all(len(split) == 2 and split[0] >= 6 for split in splits), splits


# --- logs -----------------------------------------------------------------------------------
def test_the_access_log_cannot_be_forged_with_control_characters(server):
    marker = uuid.uuid4().hex[:8]
    for path in (f"/hooks/zapier{marker}%0d%0aFORGED", f"/hooks/zapier{marker}%1b[2JESC"):
        requests.post(server.base + path, json={}, timeout=5)
    with server.connect(timeout=5) as sock:  # a raw escape in the request line itself
        sock.sendall(b"GET /hooks/zapier" + marker.encode() + b"\x1b[2J HTTP/1.1\r\n\r\n")
        assert read_response(sock)[0] == 400

    wait_until(lambda: server.output().count(marker) >= 3, 5)  # all three logged
    output = server.output()
    assert not [line for line in output.splitlines() if line.startswith("FORGED")]
    assert "\x1b" not in output and "\r" not in output
    assert f"/hooks/zapier{marker}\\r\\nFORGED" in output
    assert f"/hooks/zapier{marker}\\x1b[2JESC" in output


def test_the_error_log_never_shows_a_query_string(server):
    lines = [
        b"GET /hooks/zapier?token=s3cr3t-value HTTP/1.1 junk",  # bad version
        b"GET /hooks/zapier?token=s3cr3t-value",  # two parts
        b"GET hooks/zapier?token=s3cr3t-value HTTP/1.1",  # not a path
        b"GET ?token=s3cr3t-value HTTP/1.1",  # no path at all
        b"GET /hooks/zapier?token=s3cr3t-value\x01 HTTP/1.1",  # a control character
        b"GET /hooks/zapier?token=s3cr3t-value&pad=" + b"a" * 5000 + b" HTTP/1.1",  # too long
        b"POST /hooks/zapier?token=s3cr3t-value HTTP/1.1\r\nContent-Length: 1\r\n"
        b"Content-Length: 2",  # invalid headers
    ]
    before = server.output().count("Invalid request from ip=")
    for line in lines:
        with server.connect(timeout=5) as sock:
            sock.sendall(line + b"\r\n\r\n")
            assert 400 <= read_response(sock)[0] < 500

    def logged() -> int:
        return server.output().count("Invalid request from ip=") - before

    wait_until(lambda: logged() >= len(lines), 5)
    output = server.output()
    assert "s3cr3t-value" not in output
    assert "?[redacted]" in output  # what was there instead
