"""The gunicorn worker of the bridge: it gives a thread only to a whole request (its logger,
which cannot be made to forge a line or leak a query string, is accesslog.py).

Stalled clients. gunicorn's gthread worker gives a connection to a thread as soon as its first
bytes arrive; the thread then blocks reading the headers and the body for as long as the client
cares to wait. A client that sends its headers with `Content-Length: 1000` and stalls holds a
thread while it stays connected, so 16 of them freeze both workers (2 x 8 threads). gunicorn 27
has no setting for this: its `wait_for_data` only defers a connection that has sent nothing at
all (5 s), and `timeout` is about silent workers, not clients.

`WholeRequestWorker` keeps gthread (its thread pool, keep-alive, graceful stop, HTTP/2 upgrade)
and changes one thing: the main poller reads each request into a buffer of its own (non-blocking)
and hands the connection to a thread only when the request is whole: the header section plus
Content-Length bytes, or a chunked body up to its last chunk and trailers. The buffered bytes go
to gunicorn's own parser through its unreader, so parsing, limits and error answers are
gunicorn's. A connection is also handed over at once when gunicorn can judge it from what has
arrived (bad framing, a bare LF, an over-long request line), or once `buffer_limit` bytes are
buffered (a client sending that much is sending, not stalling; it bounds memory per connection).
A request that is not whole `request_timeout` seconds after it began (the connection's accept,
or its first byte on a kept-alive connection) is answered 408 and closed; in a thread, past the
buffer limit, reads stop at the same deadline (the application then sees a disconnect).
`Expect: 100-continue` is answered by the poller, or such a client would wait for nothing.
The one cost: a client that sends more than `buffer_limit` and then stalls holds a thread, until
the deadline at most (webhooks are small: 64 KiB covers them, and memory stays bounded).

Clients that never close. After an answer that closes the connection (`Connection: close`, a
400), gthread half-closes and waits up to 2 s for the client's FIN, on the poller thread itself:
20 clients that merely keep their socket open froze a worker for 12 s and more. The worker does
the same wait through the poller instead, without blocking it.

Why a buffer and not `recv(MSG_PEEK)`: data left in the socket keeps it readable, so the
level-triggered poller would spin on every half-sent request, and the kernel's receive buffer,
not a setting, would decide how much can wait.

Sharing connections out. Every worker polls the same listening socket and the first to call
accept() gets the connection: 16 connections opened at once landed anywhere from 8 and 8 to
14 and 2 on two workers (measured). Kept alive, the split lasts, and the busier worker, bound by
its GIL, serves its share slowly while the other idles. Here a worker holding connections waits
`ACCEPT_STEP` seconds per connection it holds (at most `threads` steps) before it accepts
another; a worker holding fewer is woken by the same connection and takes it first. A new
connection waits `threads` milliseconds at most (8), and not at all when a worker holds none
or there is one worker.

Liveness. `GET /healthz` is answered by the poller itself, never by a thread: with every thread
waiting on a hung store (up to its timeouts), a liveness probe queued behind them would fail and
get a healthy process restarted. It answers what the application's /healthz says, and closes.

Limits: TLS, PROXY protocol, uWSGI and HTTP/2 prior knowledge put other bytes before the request;
with any of them on, the worker does exactly what gthread does (terminate TLS in front of it).

"""

from __future__ import annotations

import contextlib
import errno
import re
import selectors
import socket
import time
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any, cast

from gunicorn import util
from gunicorn.http.errors import NoMoreData
from gunicorn.http.parser import RequestParser
from gunicorn.http.unreader import SocketUnreader
from gunicorn.workers.gthread import TConn, ThreadWorker

if TYPE_CHECKING:
    from gunicorn._types import _AddressType
    from gunicorn.config import Config
    from gunicorn.http import Request

REQUEST_TIMEOUT = 10.0  # seconds for a whole request (headers and body) to arrive, else 408
BUFFER_LIMIT = 64 * 1024  # bytes buffered per connection before a thread reads the rest
READ_SIZE = 64 * 1024  # largest single recv() of the poller
LINGER = 2.0  # seconds a closed connection is drained for the client's FIN (gunicorn's own)
LINGER_BYTES = 64 * 1024  # ... or until this much has been drained
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
TIMED_OUT = b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
ACCEPT_STEP = 0.001  # seconds a worker waits, per connection it holds, before accepting
HEALTHZ = re.compile(rb"(?:\r\n)?GET /healthz(?:\?[^ ]*)? HTTP/1\.[0-9]\r\n")
HEALTHY_BODY = b'{"status":"ok"}\n'  # what the application's /healthz answers
HEALTHY = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
           + str(len(HEALTHY_BODY)).encode() + b"\r\nCache-Control: no-store\r\n"
           b"Connection: close\r\n\r\n" + HEALTHY_BODY)
HEX = frozenset(b"0123456789abcdefABCDEF")
MAX_CHUNK_LINE = 8190  # a chunk-size line longer than this is refused by gunicorn anyway


class RequestTimedOut(NoMoreData):
    """The rest of the request did not arrive by its deadline: the connection is closed.

    A NoMoreData, so gunicorn treats it like a client that went away (no traceback).
    """

    def __str__(self) -> str:
        return "the request did not arrive in time"


class Arrival:
    """How much of one HTTP/1 request has arrived. Pure: bytes in, "ready for a thread?" out.

    Ready means whole, or that gunicorn's parser can answer from what is here (bad framing,
    a bare LF, a request line over `line_limit`). Being lenient is safe: a thread only parses.
    """

    def __init__(self, line_limit: int = 0):
        self.data = bytearray()
        self.line_limit = line_limit
        self.expects_continue = False  # HTTP/1.1 `Expect: 100-continue` and a body to come
        self._searched = 0  # where the search for the blank line resumes
        self._head_end: int | None = None
        self._body_end: int | None = None  # a Content-Length body, or none
        self._chunk_at: int | None = None  # the next chunk-size line of a chunked body
        self._judged = False  # gunicorn can answer from what is here

    def feed(self, data: bytes) -> bool:
        self.data += data
        return self.ready()

    def ready(self) -> bool:
        data = self.data
        if self._judged:
            return True
        if self._head_end is None:
            start = self._searched
            end = data.find(b"\r\n\r\n", start)
            if end < 0:
                self._searched = max(0, len(data) - 3)
                self._judged = self._bare_lf(start) or self._line_too_long()
                return self._judged
            self._head_end = end + 4
            self._judged = not self._frame(bytes(data[:end]))
            if self._judged:
                return True
        if self._body_end is not None:
            return len(data) >= self._body_end
        return self._chunks_done()

    def _bare_lf(self, start: int) -> bool:
        at = self.data.find(b"\n", start)
        while at >= 0:
            if at == 0 or self.data[at - 1] != ord("\r"):
                return True
            at = self.data.find(b"\n", at + 1)
        return False

    def _line_too_long(self) -> bool:
        if not self.line_limit:
            return False
        skip = 2 if self.data.startswith(b"\r\n") else 0  # one empty line may come first
        return self.data.find(b"\r\n", skip) < 0 and len(self.data) > self.line_limit + skip + 2

    def _frame(self, head: bytes) -> bool:
        """Read the body's framing from the header section; False: let gunicorn answer."""
        assert self._head_end is not None  # ready() has found the blank line
        lines = head.split(b"\r\n")
        if lines[0] == b"":
            lines.pop(0)
        request_line = lines[0] if lines else b""
        lengths: list[bytes] = []
        codings: list[bytes] = []
        expect: list[bytes] = []
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name, value = name.strip().lower(), value.strip(b" \t")
            if name == b"content-length":
                lengths.append(value)
            elif name == b"transfer-encoding":
                codings += [c.strip(b" \t").lower() for c in value.split(b",")]
            elif name == b"expect":
                expect.append(value.lower())
        if codings:
            if lengths or codings[-1] != b"chunked":
                return False
            self._chunk_at = self._head_end
        elif lengths:
            if len(lengths) > 1 or not lengths[0].isdigit():
                return False
            self._body_end = self._head_end + int(lengths[0])
        else:
            self._body_end = self._head_end
        if expect:
            if expect != [b"100-continue"]:
                return False  # gunicorn answers 417
            self.expects_continue = re.search(rb" HTTP/1\.[1-9]$", request_line) is not None
        return True

    def _chunks_done(self) -> bool:
        data, at = self.data, self._chunk_at
        assert at is not None
        while True:
            eol = data.find(b"\r\n", at)
            if eol < 0:
                self._judged = len(data) - at > MAX_CHUNK_LINE
                return self._judged
            size = bytes(data[at:eol]).split(b";", 1)[0].rstrip(b" \t")
            if not size or not HEX.issuperset(size):
                self._judged = True
                return True
            length = int(size, 16)
            if length == 0:
                trailers = eol + 2
                return (data[trailers:trailers + 2] == b"\r\n"
                        or data.find(b"\r\n\r\n", trailers) >= 0)
            end = eol + 2 + length
            if len(data) < end + 2:
                return False
            if data[end:end + 2] != b"\r\n":
                self._judged = True
                return True
            at = self._chunk_at = end + 2


class DeadlineUnreader(SocketUnreader):
    """gunicorn's socket reader, but no read waits past `deadline` (time.monotonic())."""

    deadline: float | None = None

    def chunk(self, size_hint: int | None = None) -> bytes:
        if self.deadline is None:
            return super().chunk(size_hint)  # type: ignore[call-arg]  # gunicorn 27's; not in the stubs
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise RequestTimedOut()
        previous = self.sock.gettimeout()  # finish_body() may have set a shorter one
        self.sock.settimeout(remaining if previous is None else min(previous, remaining))
        try:
            return super().chunk(size_hint)  # type: ignore[call-arg]  # gunicorn 27's; not in the stubs
        except TimeoutError:
            if time.monotonic() >= self.deadline:
                raise RequestTimedOut() from None
            raise
        finally:
            self.sock.settimeout(previous)


class BufferedConn(TConn):
    """A connection whose next request is read by the poller before a thread sees it."""

    parser: RequestParser | None  # HTTP/1 only: the worker buffers no other protocol

    def __init__(self, cfg: Config, sock: socket.socket, client: _AddressType,
                 server: _AddressType, linger: Callable[[BufferedConn], None]) -> None:
        super().__init__(cfg, sock, client, server)
        self.linger = linger  # the worker's non-blocking graceful close
        self.drained = 0
        self.arrival = Arrival(cfg.limit_request_line)
        self.deadline = 0.0
        self.continued = False  # the poller has sent "100 Continue" for this request
        self.data_ready = True  # never make a thread wait: a thread gets a ready request

    def begin(self, deadline: float) -> bool:
        """Start reading the next request (with what the last one read ahead); ready?"""
        self.deadline, self.continued = deadline, False
        self.arrival = Arrival(self.cfg.limit_request_line)
        ahead = self.parser.unreader.take_buffered() if self.parser is not None else b""
        return bool(ahead) and self.arrival.feed(ahead)

    def init(self) -> None:
        """Runs in the thread before each request: give the parser what the poller read."""
        if self.parser is None:
            self.initialized = True
            self.parser = RequestParser(self.cfg, self.sock, self.client)
            self.parser.unreader = DeadlineUnreader(self.sock)
        self.parser.unreader.unread(bytes(self.arrival.data))
        # the parser's unreader is always the DeadlineUnreader set above
        self.parser.unreader.deadline = self.deadline  # type: ignore[attr-defined]
        self.arrival = Arrival()

    def close(self, graceful: bool = False) -> None:
        if graceful:
            self.linger(self)
        else:
            super().close()


class WholeRequestWorker(ThreadWorker):
    """gthread, but a thread only ever waits on the application, never on a client."""

    request_timeout = REQUEST_TIMEOUT
    buffer_limit = BUFFER_LIMIT

    @classmethod
    def configured(cls, **tunables: float) -> type[WholeRequestWorker]:
        """This worker with other `request_timeout` / `buffer_limit` (for gunicorn.conf.py)."""
        unknown = set(tunables) - {"request_timeout", "buffer_limit"}
        if unknown:
            raise TypeError(f"unknown tunable(s): {', '.join(sorted(unknown))}")
        return type(cls.__name__, (cls,), {"__module__": cls.__module__, **tunables})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cfg = self.cfg
        self.buffering = not (cfg.is_ssl or cfg.protocol != "http" or cfg.proxy_protocol != "off"
                              or cfg.http2_cleartext in ("prior-knowledge", "both"))
        self.receiving: dict[BufferedConn, None] = {}  # in deadline order (insertion + constant)
        self.lingering: dict[BufferedConn, None] = {}  # half-closed, draining till the client's FIN
        self.accept_after: float | None = None  # waiting to accept until then (monotonic)
        self.waited = False  # that wait is over: accept the next connection at once

    def init_process(self) -> None:
        if not self.buffering:
            self.log.warning("TLS, PROXY protocol, uWSGI or HTTP/2 prior knowledge is on: "
                             "requests are not buffered, a stalled client holds a thread")
        super().init_process()

    def set_accept_enabled(self, enabled: bool | None) -> None:
        """gthread turns accepting back on at every turn of its loop: not while waiting."""
        if enabled and self.accept_after is not None:
            if time.monotonic() < self.accept_after:
                return
            self.accept_after, self.waited = None, True
        super().set_accept_enabled(enabled)

    # gthread passes a float, never None (which its stubs allow)
    def wait_for_and_dispatch_events(self, timeout: float) -> None:  # type: ignore[override]
        if self.accept_after is not None:  # wake up when the wait is over
            timeout = max(0.0, min(timeout, self.accept_after - time.monotonic()))
        super().wait_for_and_dispatch_events(timeout)

    def accept(self, listener: socket.socket) -> None:
        if self.nr_conns and not self.waited and self.cfg.workers > 1:  # a less busy one first
            steps = min(self.nr_conns, self.cfg.threads)
            self.accept_after = time.monotonic() + steps * ACCEPT_STEP
            self.set_accept_enabled(False)
            return
        self.waited = False
        if not self.buffering:
            return super().accept(listener)
        try:
            sock, client = listener.accept()
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        self.nr_conns += 1
        self.enqueue_req(BufferedConn(self.cfg, sock, client, listener.getsockname(),
                                      self._linger))

    def enqueue_req(self, conn: TConn) -> None:
        """New, kept-alive and pipelined requests all come here: buffer, then hand over."""
        if not self.buffering:
            return super().enqueue_req(conn)
        conn = cast(BufferedConn, conn)  # buffering: accept() made every connection one
        conn.sock.setblocking(False)
        if conn.begin(time.monotonic() + self.request_timeout):
            if self._liveness(conn):
                return None
            return super().enqueue_req(conn)
        self.receiving[conn] = None
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_bytes, conn))

    def _on_bytes(self, conn: BufferedConn, _sock: socket.socket) -> None:
        try:
            data = conn.sock.recv(READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:  # gone before its request was whole: nothing to answer
            self._forget(conn)
            conn.close()
            return
        arrival = conn.arrival
        if arrival.feed(data) or len(arrival.data) >= self.buffer_limit:
            self._forget(conn, closing=False)
            if not self._liveness(conn):
                super().enqueue_req(conn)
        elif arrival.expects_continue and not conn.continued and self._send(conn, CONTINUE):
            conn.continued = True

    def _liveness(self, conn: BufferedConn) -> bool:
        """Answer a whole `GET /healthz` from the poller (see the module's docstring) and
        close the connection; False for any other request."""
        if not (conn.arrival.ready() and HEALTHZ.match(conn.arrival.data)):
            return False
        self.nr_conns -= 1
        with contextlib.suppress(OSError):
            conn.sock.send(HEALTHY)
        conn.close(graceful=True)
        return True

    def _send(self, conn: BufferedConn, data: bytes) -> bool:
        """One non-blocking send; False (and the connection closed) if it could not all go."""
        try:
            if conn.sock.send(data) == len(data):
                return True
        except OSError:
            pass
        self._forget(conn)
        conn.close()
        return False

    def _forget(self, conn: BufferedConn, closing: bool = True) -> None:
        self.receiving.pop(conn, None)
        with contextlib.suppress(KeyError, ValueError, OSError):
            self.poller.unregister(conn.sock)
        if closing:
            self.nr_conns -= 1

    def _linger(self, conn: BufferedConn) -> None:
        """gthread's graceful close, without blocking the poller: half-close, then drain
        until the client's FIN (or LINGER seconds), so that unread bytes do not make the
        kernel reset the connection under the last response."""
        try:
            conn.sock.shutdown(socket.SHUT_WR)
            conn.sock.setblocking(False)
            self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._drain, conn))
        except (OSError, KeyError, ValueError):
            util.close(conn.sock)
            return
        conn.deadline, conn.drained = time.monotonic() + LINGER, 0
        self.lingering[conn] = None

    def _drain(self, conn: BufferedConn, _sock: socket.socket) -> None:
        try:
            data = conn.sock.recv(READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        conn.drained += len(data)
        if not data or conn.drained >= LINGER_BYTES:
            self._unlinger(conn)

    def _unlinger(self, conn: BufferedConn) -> None:
        del self.lingering[conn]
        with contextlib.suppress(KeyError, ValueError, OSError):
            self.poller.unregister(conn.sock)
        util.close(conn.sock)

    def murder_pending(self) -> None:
        """Also answer 408 to requests that are not whole by their deadline, and finish
        lingering closes (each loop)."""
        super().murder_pending()
        now = time.monotonic()
        while self.lingering:
            conn = next(iter(self.lingering))
            if conn.deadline > now:
                break
            self._unlinger(conn)
        while self.receiving:
            conn = next(iter(self.receiving))
            if conn.deadline > now:
                break
            self._forget(conn)
            if not conn.arrival.data:  # a connection that never sent anything: just close
                conn.close()
                continue
            self.log.info("408: %s sent %d bytes, not a whole request, in %gs",
                          conn.client[0] if isinstance(conn.client, tuple) else conn.client,
                          len(conn.arrival.data), self.request_timeout)
            with contextlib.suppress(OSError):
                conn.sock.send(TIMED_OUT)
            conn.close(graceful=True)

    def handle_request(self, req: Request, conn: TConn) -> bool:
        if getattr(conn, "continued", False):
            # the poller has already said "100 Continue" (gunicorn's flag, not in its stubs)
            req._expected_100_continue = False  # type: ignore[attr-defined]
        return super().handle_request(req, conn)
