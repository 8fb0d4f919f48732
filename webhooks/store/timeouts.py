"""How long the store may take before a caller is told `StoreUnavailable` (and a webhook is
spooled): connect, statement, pool and lock timeouts, each a setting named in the log when it
fires.

A hung database (PostgreSQL behind a dropped route, or a server that accepts TCP and never
answers; SQLite write-locked by another process) must not hold a webhook past what CRMs wait
(Odoo 1 s, Kommo 2 s). The defaults keep a webhook's answer, spooled, under 2 s:

- STORE_CONNECT_TIMEOUT: a new PostgreSQL connection (libpq rounds its own connect_timeout up
  to whole seconds and at least 2, so the wait is enforced here, to a fraction of a second);
- STORE_STATEMENT_TIMEOUT: one statement on PostgreSQL, both server-side (statement_timeout,
  for a slow query) and client-side (a watchdog that shuts the socket of a statement still
  running past it plus a margin: a server that never answers never applies its own timeout),
  and how long a request waits for the group commit (PostgreSQL) to write it, plus that margin;
- STORE_POOL_TIMEOUT: waiting for a free connection of the pool (SQLAlchemy pool_timeout);
- STORE_LOCK_TIMEOUT: waiting for a lock: PostgreSQL's lock_timeout, SQLite's busy timeout and
  how long a request waits for the group commit (SQLite) to write it.

TCP keepalive and tcp_user_timeout also close a PostgreSQL connection whose peer is gone
(packets dropped), so that an idle pooled connection is not found dead only by a webhook.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)
WATCH_STEP = 0.05  # seconds between the watchdog's looks at running statements
MARGIN = 0.2  # the client-side deadline is the server's statement_timeout plus this


@dataclass(frozen=True)
class StoreTimeouts:
    """Seconds; 0 turns one off (then the driver's own wait applies)."""

    connect: float = 1.0
    statement: float = 1.2
    pool: float = 0.5
    lock: float = 1.2


def fired(setting: str, seconds: float, what: str) -> str:
    """The message of a timeout that fired, naming its setting (and logged once here)."""
    message = f"store: {what} timeout ({setting}={seconds:g}s) fired"
    log.warning("%s; spooling webhooks, delivery pauses", message)
    return message


def connect_postgres(timeout: float, params: dict[str, Any]) -> Any:
    """A psycopg connection made within `timeout` seconds (a float, unlike libpq's own
    connect_timeout); psycopg's ConnectionTimeout if not, psycopg's OperationalError if refused."""
    import psycopg
    from psycopg import errors, waiting
    from psycopg.adapt import AdaptersMap
    from psycopg.conninfo import conninfo_attempts, make_conninfo

    if timeout <= 0:
        return psycopg.connect(**params)
    params = dict(params)
    # what psycopg's connect() takes besides connection parameters (SQLAlchemy passes some)
    extra = {name: params.pop(name) for name in ("autocommit", "prepare_threshold", "context",
                                                  "row_factory", "cursor_factory")
             if name in params}
    connection_params = psycopg.Connection._get_connection_params("", **params)
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    for attempt in conninfo_attempts(connection_params):
        left = deadline - time.monotonic()
        if left <= 0:
            break
        try:
            # psycopg's own connect loop, with a float deadline (its private generator: the
            # public connect() would round the timeout up to 2 s)
            gen = psycopg.Connection._connect_gen(make_conninfo("", **attempt))
            connection = waiting.wait_conn(gen, interval=WATCH_STEP, timeout=left)
        except errors._WaitTimeout:
            last = None
            continue
        except psycopg.Error as err:
            last = err
            continue
        connection._autocommit = bool(extra.get("autocommit", False))
        if extra.get("row_factory"):
            connection.row_factory = extra["row_factory"]
        if extra.get("cursor_factory"):
            connection.cursor_factory = extra["cursor_factory"]
        if extra.get("context"):
            connection._adapters = AdaptersMap(extra["context"].adapters)
        connection.prepare_threshold = extra.get("prepare_threshold", 5)
        return connection
    if last is not None:
        raise last
    # an OperationalError: SQLAlchemy wraps it, the store answers StoreUnavailable
    raise errors.ConnectionTimeout(fired("STORE_CONNECT_TIMEOUT", timeout, "connect"))


class Watchdog:
    """Shuts the socket of a PostgreSQL statement that runs past its deadline: the driver then
    fails it at once (the server closed the connection), and the pool drops the connection."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self._running: dict[int, tuple[float, Any]] = {}  # id(dbapi connection) -> deadline
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.fired = 0

    def arm(self, dbapi_connection: Any) -> None:
        if self._thread is None or not self._thread.is_alive():  # first use, or a fork
            with self._lock:
                if self._thread is None or not self._thread.is_alive():
                    self._running.clear()
                    self._thread = threading.Thread(target=self._watch, daemon=True,
                                                    name="store-watchdog")
                    self._thread.start()
        self._running[id(dbapi_connection)] = (time.monotonic() + self.seconds,
                                               dbapi_connection)

    def disarm(self, dbapi_connection: Any) -> None:
        self._running.pop(id(dbapi_connection), None)

    def _watch(self) -> None:
        while True:
            time.sleep(WATCH_STEP)
            now = time.monotonic()
            for key, (deadline, connection) in list(self._running.items()):
                if deadline <= now and self._running.pop(key, None) is not None:
                    self.fired += 1
                    fired("STORE_STATEMENT_TIMEOUT", self.seconds - MARGIN, "statement")
                    _shut(connection)


def _shut(connection: Any) -> None:
    """Shut (not close: the driver still owns the descriptor) a connection's socket."""
    try:
        sock = socket.socket(fileno=connection.pgconn.socket)
    except (OSError, AttributeError, ValueError):
        return
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    finally:
        sock.detach()  # the descriptor stays the driver's


def postgres_options(timeouts: StoreTimeouts) -> dict[str, Any]:
    """libpq parameters: server-side statement and lock timeouts, keepalive, tcp_user_timeout."""
    options = []
    if timeouts.statement > 0:
        options.append(f"-c statement_timeout={int(timeouts.statement * 1000)}")
    if timeouts.lock > 0:
        options.append(f"-c lock_timeout={int(timeouts.lock * 1000)}")
    params: dict[str, Any] = {"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 2,
                              "keepalives_count": 3, "tcp_user_timeout": 10_000}
    if options:
        params["options"] = " ".join(options)
    return params
