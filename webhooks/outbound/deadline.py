"""Outbound HTTP calls that cannot outlive a deadline, and can be cut short from another thread.

requests' read timeout bounds each read, not the call: a server that trickles its answer a
byte at a time keeps a call open for as long as it likes. The concurrency limit of a wolkvox
token rests on a call never outliving the slot it was started in, so every outbound call runs
inside `deadline()`: a timer (or a keeper that lost the slot: `Call.abort`) shuts the call's
socket down, the read in progress ends at once, and the call raises `CallAborted`.

Sessions come from `new_session()`, whose connections tell the thread's current `Call` which
socket they are using; a call outside `deadline()` behaves as plain requests does.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import os
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from .. import reasons

_local = threading.local()


class CallAborted(Exception):
    """The call was cut short: its deadline passed, or its slot was lost. `why` says which;
    `counted` is False when the bridge, not the server, cut it short (a lost slot)."""

    def __init__(self, why: str, counted: bool = True):
        super().__init__(why)
        self.why = why
        self.counted = counted


class Call:
    """One outbound call in flight: the connections it uses, and whether it was cut short."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # The sockets themselves: http.client hands a close-delimited answer's socket to the
        # response and forgets it on the connection, which must not hide it from abort().
        self._sockets: list[socket.socket] = []
        self.aborted = ""  # why, once cut short
        self.counted = True  # the server's fault (too slow), rather than the bridge's
        # Seconds its slot must stay unused once it ended: a call we hung up on may still be
        # running at wolkvox, which counts it until it is done (set by wolkvox.send_recall).
        self.rest = 0.0

    def attach(self, connection: Any) -> None:
        sock = getattr(connection, "sock", None)
        if sock is None:
            return
        with self._lock:
            self._sockets.append(sock)
            aborted = self.aborted
        if aborted:  # cut short while connecting: do not let it go on
            _shutdown(sock)

    def abort(self, why: str, counted: bool = True) -> None:
        """Cut the call short (any thread): its socket is shut down, its read ends now.
        `counted` False: not the server's fault (the bridge gave up the slot)."""
        with self._lock:
            if self.aborted:
                return
            self.aborted, self.counted = why, counted
            sockets = list(self._sockets)
        for sock in sockets:
            _shutdown(sock)


class _Watchdog:
    """One thread per process that aborts the calls whose deadline has passed (a timer thread
    per call would cost a thread start on every call)."""

    def __init__(self) -> None:
        self._due: list[tuple[float, int, Call, float]] = []  # (monotonic deadline, n, call, s)
        self._wake = threading.Condition()
        self._pid = 0

    def watch(self, call: Call, seconds: float) -> tuple[float, int, Call, float]:
        entry = (time.monotonic() + seconds, next(_numbers), call, seconds)
        with self._wake:
            if self._pid != os.getpid():  # first use, or a forked child: start its own thread
                self._due, self._pid = [], os.getpid()
                threading.Thread(target=self._run, name="deadlines", daemon=True).start()
            heapq.heappush(self._due, entry)
            self._wake.notify()
        return entry

    def forget(self, entry: tuple[float, int, Call, float]) -> None:
        with self._wake, contextlib.suppress(ValueError):
            self._due.remove(entry)
            heapq.heapify(self._due)

    def _run(self) -> None:
        with self._wake:
            while True:
                now = time.monotonic()
                while self._due and self._due[0][0] <= now:
                    _, _, call, seconds = heapq.heappop(self._due)
                    call.abort(reasons.CALL_DEADLINE(seconds=f"{seconds:g}"))
                self._wake.wait(self._due[0][0] - now if self._due else None)


_watchdog = _Watchdog()
_numbers = itertools.count()


@contextlib.contextmanager
def deadline(seconds: float, call: Call | None = None) -> Iterator[Call]:
    """Run the block's calls (from `new_session()` sessions, in this thread) as one `Call` that
    is aborted after `seconds`. Raises CallAborted when it was cut short, whatever requests
    raised meanwhile (a broken connection is how the abort shows inside requests)."""
    call = call or Call()
    previous = getattr(_local, "call", None)
    _local.call = call
    entry = _watchdog.watch(call, seconds)
    try:
        yield call
    except Exception:
        if call.aborted:
            raise CallAborted(call.aborted, call.counted) from None
        raise
    finally:
        _watchdog.forget(entry)
        _local.call = previous
    if call.aborted:
        raise CallAborted(call.aborted, call.counted)


def new_session(base_url: str) -> requests.Session:
    """A session for one worker thread whose calls `deadline()` can cut short. Proxy and CA
    settings are read from the environment once, here, instead of on every call (requests'
    trust_env costs ~1 ms a call)."""
    session = requests.Session()
    adapter = _Adapter()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.proxies.update(requests.utils.get_environ_proxies(base_url))
    session.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get(
        "CURL_CA_BUNDLE") or True
    session.trust_env = False
    return session


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def _track(connection: Any) -> None:
    call = getattr(_local, "call", None)
    if call is not None:
        call.attach(connection)


class _Tracked:
    """A connection that attaches itself to the thread's call, so that the call can cut it."""

    sock: Any

    def connect(self) -> None:
        super().connect()  # type: ignore[misc]
        _track(self)

    def request(self, *args: Any, **kwargs: Any) -> None:
        if self.sock is not None:  # a kept-alive connection: connect() is not called again
            _track(self)
        super().request(*args, **kwargs)  # type: ignore[misc]


class _TrackedHTTP(_Tracked, HTTPConnection):
    pass


class _TrackedHTTPS(_Tracked, HTTPSConnection):
    pass


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _TrackedHTTP


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _TrackedHTTPS


class _Adapter(HTTPAdapter):
    _pools = {"http": _HTTPPool, "https": _HTTPSPool}  # noqa: RUF012

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = self._pools

    def proxy_manager_for(self, *args: Any, **kwargs: Any) -> Any:
        manager = super().proxy_manager_for(*args, **kwargs)
        manager.pool_classes_by_scheme = self._pools
        return manager
