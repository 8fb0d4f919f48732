"""Group commit: one thread per process writes the events of every request that is waiting,
in one transaction, and each request is answered once that transaction is on disk.

Each webhook alone would begin, write and commit (a WAL flush) in a transaction of its own,
with 8 request threads of a process taking turns in the GIL between their statements. Batched,
a burst of N requests costs one transaction and one flush, and the queue drains as fast as it
fills. The writer has a connection of its own and runs compiled statements on it (ingest.py,
prepared.py): SQLAlchemy's per-execution work would cost several times what the database
spends on the row. Nothing is answered before its commit, so durability is that of a single
request's transaction (SQLite's synchronous=FULL, PostgreSQL's synchronous_commit on).

Each database has its own `Backend`: SQLite writes one transaction at a time, so its writer
first takes the write lock shared by the database's processes (sqlite.py); PostgreSQL takes
no lock of ours, and a statement that hangs there is cut by the engine's watchdog
(timeouts.py) as on the ordinary path.
"""

from __future__ import annotations

import contextlib
import os
import queue
import sqlite3
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from .errors import StoreRefused, StoreUnavailable, short, timeout_message, translate
from .sqlite import WriteLock, pragmas
from .timeouts import MARGIN, StoreTimeouts, fired

MAX_BATCH = 64  # requests in one transaction at most


class Backend(Protocol):
    """How the writer talks to one kind of database."""

    wait: float  # how long a request waits for its commit by default
    # a transaction that failed for the database (not for its values) drops the connection:
    # a PostgreSQL session gone read-only (a failover) or otherwise stuck is not kept
    fresh_after_failure: bool

    def connect(self) -> Any: ...
    def begin(self, connection: Any) -> None: ...
    def commit(self, connection: Any) -> None: ...
    def rollback(self, connection: Any) -> None: ...
    def release(self, connection: Any) -> None: ...
    def refused(self, err: Exception) -> bool: ...
    def retried_alone(self, err: Exception) -> bool: ...
    def unavailable(self, err: Exception) -> str | None: ...
    def broken(self, connection: Any) -> bool: ...
    def drop(self, connection: Any) -> None: ...
    def waited(self) -> str: ...


@dataclass
class _Job:
    new: Sequence[Any]
    now: float
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    error: Exception | None = None
    abandoned: bool = False  # its request stopped waiting (and was spooled): skip it


class GroupCommit:
    """Writes jobs with `write(run, new, now) -> outcomes`, `run` executing a compiled
    statement by name on the writer's connection, through `backend`."""

    def __init__(self, backend: Backend, prepared: Callable[[], dict[str, Any]],
                 write: Callable[..., Any]):
        self._backend = backend
        self._prepared, self._write = prepared, write
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._pid = 0
        self._start = threading.Lock()
        self._thread: threading.Thread | None = None

    def submit(self, new: Sequence[Any], now: float) -> Any:
        """Store `new` with other waiting requests; its outcomes once they are committed.
        Raises StoreUnavailable or StoreRefused as a transaction of its own would, and
        StoreUnavailable when not committed within the backend's wait (SQLite: another process
        holds the write lock, STORE_LOCK_TIMEOUT; PostgreSQL: the server does not answer,
        STORE_STATEMENT_TIMEOUT): the writer then skips the job if it has not begun it; one
        it commits all the same is stored twice at worst as a duplicate, when the spool
        replays."""
        self._ensure_thread()
        job = _Job(new, now)
        self._queue.put(job)
        if not job.done.wait(self._backend.wait or None):  # 0: as long as it takes
            job.abandoned = True
            if not job.done.is_set():
                raise StoreUnavailable(self._backend.waited())
        if job.error is not None:
            raise job.error
        return job.result

    def _ensure_thread(self) -> None:
        if self._pid == os.getpid():
            return
        with self._start:
            if self._pid != os.getpid():  # first use, or a forked child: a thread of its own
                self._queue = queue.SimpleQueue()
                self._thread = threading.Thread(target=self._run, args=(self._queue,),
                                                name="group-commit", daemon=True)
                self._thread.start()
                self._pid = os.getpid()

    def close(self, timeout: float = 5.0) -> None:
        """Stop this process's writer once the jobs before it are written, and close its
        connection (the store is disposed of)."""
        with self._start:
            thread, self._thread = self._thread, None
            if thread is None or self._pid != os.getpid():
                return
            self._queue.put(None)
            self._pid = 0
        thread.join(timeout)

    def _run(self, waiting: queue.SimpleQueue[_Job | None]) -> None:
        """The writer: `waiting` is its own queue (a writer started after a close has another)."""
        connection = None
        statements = self._prepared()
        closing = False
        while not closing:
            first = waiting.get()
            jobs = [] if first is None else [first]
            closing = first is None
            while len(jobs) < MAX_BATCH and not closing:
                try:
                    job = waiting.get_nowait()
                except queue.Empty:
                    break
                closing = job is None
                if job is not None:
                    jobs.append(job)
            if not jobs:
                break
            try:
                if connection is None:
                    connection = self._backend.connect()
                if not self._commit(connection, statements, jobs):
                    self._backend.drop(connection)
                    connection = None
            except Exception as err:  # cannot even connect: every job is told
                message = self._backend.unavailable(err) or f"unexpected {type(err).__name__}"
                for job in jobs:
                    job.error = job.error or StoreUnavailable(message)
                if connection is not None:
                    self._backend.drop(connection)
                connection = None
            for job in jobs:
                job.done.set()
        if connection is not None:
            self._backend.drop(connection)

    def _commit(self, connection: Any, statements: dict[str, Any], jobs: list[_Job]) -> bool:
        """Write `jobs` in one transaction; False when the connection must be dropped."""
        def run(name: str, values: dict[str, Any]) -> list[Any]:
            return statements[name].run(connection, values)

        backend = self._backend
        jobs = [job for job in jobs if not job.abandoned]
        if not jobs:
            return True
        alone: Exception | None = None
        failed = False
        backend.begin(connection)
        try:
            try:
                for job in jobs:
                    job.result = self._write(run, job.new, job.now)
                backend.commit(connection)
            except BaseException:
                backend.rollback(connection)
                raise
        except Exception as err:
            if backend.refused(err) or backend.retried_alone(err):
                alone = err
            else:  # a bug must not leave requests waiting forever either
                message = backend.unavailable(err) or f"unexpected {type(err).__name__}"
                failed = True
                for job in jobs:
                    job.error = StoreUnavailable(message)
        finally:
            backend.release(connection)
        if backend.broken(connection) or failed and backend.fresh_after_failure:
            return False
        if alone is None:
            return True
        if len(jobs) == 1:
            jobs[0].error = (StoreRefused(short(alone))
                             if backend.refused(alone)
                             else StoreUnavailable(backend.unavailable(alone) or str(alone)))
            return True
        for n, job in enumerate(jobs):  # one request's values are at fault (or two writers
            if not self._commit(connection, statements, [job]):  # crossed): each alone
                for rest in jobs[n + 1:]:
                    rest.error = StoreUnavailable("the store's connection was lost")
                return False
        return True


class SqliteBackend:
    """A plain sqlite3 connection; every transaction under the database's write lock."""

    def __init__(self, database: str, lock: WriteLock, wait: float):
        self._database, self._lock = database, lock
        self.wait = wait  # STORE_LOCK_TIMEOUT: the lock's wait is the request's
        self.fresh_after_failure = False  # a busy database leaves the connection as it was

    def connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self._database, isolation_level=None,
                                     timeout=self.wait or 30, check_same_thread=False)
        pragmas(connection, self.wait)
        return connection

    def begin(self, connection: sqlite3.Connection) -> None:
        self._lock.acquire()
        try:
            connection.execute("BEGIN IMMEDIATE")
        except BaseException:
            self._lock.release()
            raise

    def commit(self, connection: sqlite3.Connection) -> None:
        connection.execute("COMMIT")

    def rollback(self, connection: sqlite3.Connection) -> None:
        if connection.in_transaction:
            connection.execute("ROLLBACK")

    def release(self, connection: sqlite3.Connection) -> None:
        self._lock.release()

    def refused(self, err: Exception) -> bool:
        return isinstance(err, sqlite3.IntegrityError | sqlite3.DataError
                          | sqlite3.ProgrammingError | ValueError)

    def retried_alone(self, err: Exception) -> bool:
        return False

    def unavailable(self, err: Exception) -> str | None:
        if not isinstance(err, sqlite3.Error):
            return None
        if "locked" in str(err) and self.wait:
            return self.waited()
        return str(err)[:200]

    def waited(self) -> str:
        return fired("STORE_LOCK_TIMEOUT", self.wait, "lock")

    def broken(self, connection: sqlite3.Connection) -> bool:
        return False  # SQLite's errors leave the connection usable

    def drop(self, connection: sqlite3.Connection) -> None:
        connection.close()


class PostgresBackend:
    """A psycopg connection of the engine's pool, held by the writer (the engine's connect
    timeout and server-side timeouts apply); each transaction watched by the engine's
    watchdog, which shuts a connection whose server stopped answering."""

    def __init__(self, engine: Any, timeouts: StoreTimeouts):
        self._engine, self._timeouts = engine, timeouts
        # a request waits for its commit as long as the watchdog lets a statement run
        self.wait = timeouts.statement + MARGIN if timeouts.statement > 0 else 0.0
        self.fresh_after_failure = True
        self._watchdog = getattr(engine, "watchdog", None)  # None: STORE_STATEMENT_TIMEOUT=0
        self._fairies: dict[int, Any] = {}  # id(psycopg connection) -> its pool checkout

    def connect(self) -> Any:
        fairy = self._engine.raw_connection()
        connection = fairy.driver_connection
        self._fairies[id(connection)] = fairy
        return connection

    def begin(self, connection: Any) -> None:
        if self._watchdog is not None:
            self._watchdog.arm(connection)

    def commit(self, connection: Any) -> None:
        connection.commit()

    def rollback(self, connection: Any) -> None:
        import psycopg

        if connection.broken or connection.closed:
            return
        with contextlib.suppress(psycopg.Error):  # broken now: dropped after this transaction
            connection.rollback()

    def release(self, connection: Any) -> None:
        if self._watchdog is not None:
            self._watchdog.disarm(connection)

    def refused(self, err: Exception) -> bool:
        import psycopg

        return isinstance(err, psycopg.DataError | psycopg.IntegrityError | ValueError)

    def retried_alone(self, err: Exception) -> bool:
        """A deadlock or serialization failure with another process's writer: each request
        then gets a transaction of its own."""
        from psycopg import errors

        return isinstance(err, errors.TransactionRollback | errors.DeadlockDetected)

    def unavailable(self, err: Exception) -> str | None:
        import psycopg
        from sqlalchemy.exc import SQLAlchemyError

        if isinstance(err, SQLAlchemyError):  # from the pool: a connect or pool timeout
            return str(translate(err, self._timeouts))
        if not isinstance(err, psycopg.Error):
            return None
        return timeout_message(short(err), self._timeouts)

    def waited(self) -> str:
        return fired("STORE_STATEMENT_TIMEOUT", self._timeouts.statement, "statement")

    def broken(self, connection: Any) -> bool:
        return bool(connection.broken or connection.closed)

    def drop(self, connection: Any) -> None:
        fairy = self._fairies.pop(id(connection), None)
        if fairy is not None:
            fairy.invalidate()
