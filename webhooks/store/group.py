"""Group commit: on SQLite, one thread per process writes the events of every request that is
waiting, in one transaction, and each request is answered once that transaction is on disk.

SQLite writes one transaction at a time. Each webhook alone would take the write lock, write,
commit (an fsync) and let the next one in; under a burst the lock passes between many threads
slowed down by each other's Python. Batched, a burst of N requests costs one lock hand-over
and one commit, and the queue drains as fast as it fills. Nothing is answered before its
commit, so durability is that of a single request's transaction.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import StoreRefused, StoreUnavailable

MAX_BATCH = 64  # requests in one transaction at most


@dataclass
class _Job:
    new: Sequence[Any]
    now: float
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    error: Exception | None = None


class GroupCommit:
    """Writes jobs with `write(connection, new, now) -> outcomes` inside `transaction()`."""

    def __init__(self, transaction: Callable[[], Any], write: Callable[..., Any]):
        self._transaction, self._write = transaction, write
        self._queue: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._pid = 0
        self._start = threading.Lock()

    def submit(self, new: Sequence[Any], now: float) -> Any:
        """Store `new` with other waiting requests; its outcomes once they are committed.
        Raises StoreUnavailable or StoreRefused as a transaction of its own would."""
        self._ensure_thread()
        job = _Job(new, now)
        self._queue.put(job)
        job.done.wait()
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
        while True:
            jobs = [self._queue.get()]
            while len(jobs) < MAX_BATCH:
                try:
                    jobs.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            self._commit(jobs)
            for job in jobs:
                job.done.set()

    def _commit(self, jobs: list[_Job]) -> None:
        try:
            with self._transaction() as db:
                for job in jobs:
                    job.result = self._write(db, job.new, job.now)
        except StoreRefused as err:
            if len(jobs) == 1:
                jobs[0].error = err
                return
            for job in jobs:  # one request's values are at fault: find it, store the rest
                self._commit([job])
        except StoreUnavailable as err:
            for job in jobs:
                job.error = err
        except Exception as err:  # a bug must not leave requests waiting forever
            for job in jobs:
                job.error = StoreUnavailable(f"unexpected {type(err).__name__}")
