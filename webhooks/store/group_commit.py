"""Group commit: on SQLite, one thread per process writes the events of every request that is
waiting, in one transaction, and each request is answered once that transaction is on disk.

SQLite writes one transaction at a time. Each webhook alone would take the write lock, write,
commit (an fsync) and let the next one in; under a burst the lock passes between many threads
slowed down by each other's Python. Batched, a burst of N requests costs one lock hand-over
and one commit, and the queue drains as fast as it fills. The writer has a plain sqlite3
connection of its own and runs compiled statements on it (ingest.py, fast.py): while it holds
the write lock, it runs as little Python as possible. Nothing is answered before its commit,
so durability is that of a single request's transaction (synchronous=FULL).
"""

from __future__ import annotations

import os
import queue
import sqlite3
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import StoreRefused, StoreUnavailable
from .sqlite import WriteLock, pragmas
from .timeouts import fired

MAX_BATCH = 64  # requests in one transaction at most


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
    statement by name on the writer's connection, under `lock`."""

    def __init__(self, database: str, lock: WriteLock,
                 prepared: Callable[[], dict[str, Any]], write: Callable[..., Any],
                 wait: float = 0.0):
        self._database, self._lock = database, lock
        self._wait = wait  # STORE_LOCK_TIMEOUT: how long a request waits for its commit
        self._prepared, self._write = prepared, write
        self._queue: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._pid = 0
        self._start = threading.Lock()

    def submit(self, new: Sequence[Any], now: float) -> Any:
        """Store `new` with other waiting requests; its outcomes once they are committed.
        Raises StoreUnavailable or StoreRefused as a transaction of its own would, and
        StoreUnavailable when not committed within STORE_LOCK_TIMEOUT (another process holds
        SQLite's write lock): the writer then skips the job if it has not begun it; one it
        commits all the same is stored twice at worst as a duplicate, when the spool replays."""
        self._ensure_thread()
        job = _Job(new, now)
        self._queue.put(job)
        if not job.done.wait(self._wait or None):
            job.abandoned = True
            if not job.done.is_set():
                raise StoreUnavailable(fired("STORE_LOCK_TIMEOUT", self._wait, "lock"))
        if job.error is not None:
            raise job.error
        return job.result

    def _ensure_thread(self) -> None:
        if self._pid == os.getpid():
            return
        with self._start:
            if self._pid != os.getpid():  # first use, or a forked child: a thread of its own
                self._queue = queue.SimpleQueue()
                threading.Thread(target=self._run, name="group-commit", daemon=True).start()
                self._pid = os.getpid()

    def _run(self) -> None:
        connection = None
        statements = self._prepared()
        while True:
            jobs = [self._queue.get()]
            while len(jobs) < MAX_BATCH:
                try:
                    jobs.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                if connection is None:
                    connection = self._connect()
                self._commit(connection, statements, jobs)
            except sqlite3.Error as err:  # cannot even connect: every job is told
                for job in jobs:
                    job.error = job.error or StoreUnavailable(str(err)[:200])
                connection = None
            for job in jobs:
                job.done.set()

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self._database, isolation_level=None,
                                     timeout=self._wait or 30, check_same_thread=False)
        pragmas(connection, self._wait)
        return connection

    def _commit(self, connection: sqlite3.Connection, statements: dict[str, Any],
                jobs: list[_Job]) -> None:
        def run(name: str, values: dict[str, Any]) -> list[Any]:
            return statements[name].run(connection, values)

        jobs = [job for job in jobs if not job.abandoned]
        if not jobs:
            return
        refused: Exception | None = None
        self._lock.acquire()
        try:
            connection.execute("BEGIN IMMEDIATE")
            try:
                for job in jobs:
                    job.result = self._write(run, job.new, job.now)
                connection.execute("COMMIT")
            except BaseException:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                raise
        except (sqlite3.IntegrityError, sqlite3.DataError, sqlite3.ProgrammingError,
                ValueError) as err:
            refused = err
        except sqlite3.Error as err:
            message = (fired("STORE_LOCK_TIMEOUT", self._wait, "lock")
                       if "locked" in str(err) and self._wait else str(err)[:200])
            for job in jobs:
                job.error = StoreUnavailable(message)
        except Exception as err:  # a bug must not leave requests waiting forever
            for job in jobs:
                job.error = StoreUnavailable(f"unexpected {type(err).__name__}")
        finally:
            self._lock.release()
        if refused is None:
            return
        if len(jobs) == 1:
            jobs[0].error = StoreRefused(str(refused)[:200])
            return
        for job in jobs:  # one request's values are at fault: find it, store the rest
            self._commit(connection, statements, [job])
