"""The keeper: one thread per delivering process that keeps its slots and claims its own.

Every LEASE / 6 seconds it gives a dead process's claimed events back to the queue (busy
delivery threads do not look), and renews, in one transaction, the lease of each slot the process's
delivery threads hold and of every event they have claimed (store/life.py says when a lease
that is not renewed lets another process take over). A thread asks `trouble()` before each
call, and the keeper cuts a call in flight short (`Call.abort`) when its slot is no longer
its own.

On PostgreSQL the process's life lock lives on the keeper's connection. When that connection
drops, the server frees the lock, and other processes may take the slots once the leases run
out. So a keeper that has not renewed for LEASE - LEASE / 3 seconds (its connection dropped,
or the database hangs) cuts every call in flight short and gives up every slot, before any
lease can run out: a process never has a call in flight on a slot it may have lost. Safety
rests on the machines' clocks agreeing to well within LEASE / 3 (NTP).

On SQLite (one machine) a live process's rows are never taken, so a slow renewal is harmless
and is only logged.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from .. import reasons
from ..outbound.deadline import Call
from ..settings import Settings
from ..store import Store, StoreUnavailable

log = logging.getLogger(__name__)


@dataclass(eq=False)
class Tenure:
    """One delivery thread's hold on one slot of a token."""

    token_key: str
    slot: int
    holder: str
    lost: str = ""  # why the slot is no longer this thread's, once it is not
    call: Call | None = field(default=None, repr=False)  # the call in flight, if any
    rest_until: float = 0.0  # once set, the slot is left resting until then (Call.rest)

    def lose(self, why: str) -> None:
        if not self.lost:
            self.lost = why
        call = self.call  # read once: the delivery thread may clear it meanwhile
        if call is not None:
            call.abort(why, counted=False)


class Keeper:
    """Renews the leases of one process's delivery threads; see the module docstring."""

    def __init__(self, store: Store, name: str, settings: Settings):
        self.store, self.name, self.settings = store, name, settings
        self.interval = settings.lease / 3
        self.strict = store.dialect == "postgresql"  # a lapsed renewal endangers the limit
        self._tenures: set[Tenure] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._life: Any = None
        self._last_ok = time.monotonic()
        self._renewing: Future | None = None
        self._submitted = 0.0
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="keeper-renew")
        self._thread: threading.Thread | None = None

    # --- the delivery threads' side ------------------------------------------------------
    def enter(self, token_key: str, slot: int, holder: str) -> Tenure:
        tenure = Tenure(token_key, slot, holder)
        with self._lock:
            self._tenures.add(tenure)
        return tenure

    def leave(self, tenure: Tenure) -> None:
        with self._lock:
            self._tenures.discard(tenure)

    @property
    def healthy(self) -> bool:
        """Has this process renewed recently enough to start a call (PostgreSQL)?"""
        if not self.strict:
            return True
        return self._life is not None and (
            time.monotonic() - self._last_ok < self._give_up_after - self.interval / 2)

    @property
    def _give_up_after(self) -> float:
        """Seconds without a renewal after which every call is cut short: a lease's third
        before anyone else could take a slot over."""
        return self.settings.lease - self.interval

    def trouble(self, tenure: Tenure) -> str:
        """Why `tenure`'s thread must not start a call now; "" when it may."""
        if tenure.lost:
            return tenure.lost
        if not self.healthy:
            return "this process could not renew its leases in time; slots given up"
        return ""

    # --- the keeper's own thread ---------------------------------------------------------
    def start(self) -> None:
        self._acquire()
        self._thread = threading.Thread(target=self._run, name="keeper", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.interval * 3)
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self._life is not None:
            self._life.close()
            self._life = None

    def _run(self) -> None:
        while not self._stop.wait(self.interval / 4):
            try:
                self._tick()
            except Exception:  # the keeper must outlive any one bad tick
                log.exception("keeper tick failed")

    def _acquire(self) -> None:
        try:
            self._life = self.store.hold_life(self.name)
            self._last_ok = time.monotonic()
        except StoreUnavailable as err:
            log.warning("keeper: cannot take this process's lock yet: %s", err)
            self._life = None

    def _tick(self) -> None:
        """Renew every `interval` (in a helper thread: a hung database must not stop the
        keeper from noticing), and give up when renewals have lapsed too long."""
        if self._life is None:
            self._acquire()
            return
        now = time.monotonic()
        # Twice per interval: a dead process's claims are found within half a second of its
        # leases running out, and a renewal is never more than an interval late.
        if self._renewing is None and now - self._submitted >= self.interval / 2:
            with self._lock:
                tenures = [(t.token_key, t.slot, t.holder) for t in self._tenures]
            until = self.settings.clock().timestamp() + self.settings.lease
            self._submitted = now
            self._renewing = self._pool.submit(self._renew, self._life, tenures, until)
        if self._renewing is not None and self._renewing.done():
            renewing, self._renewing = self._renewing, None
            try:
                lost = renewing.result()
            except StoreUnavailable as err:
                log.warning("keeper: could not renew leases: %s", err)
            else:
                self._last_ok = self._submitted
                with self._lock:
                    for tenure in self._tenures:
                        if tenure.holder in lost:
                            tenure.lose(reasons.SLOT_TAKEN_OVER())
        late = time.monotonic() - self._last_ok
        if self.strict and late >= self._give_up_after:
            self._give_up(reasons.LEASES_NOT_RENEWED(seconds=f"{late:.1f}"))

    def _renew(self, life: Any, tenures: list[tuple[str, int, str]], until: float) -> set[str]:
        """In the helper thread: renew, then give a dead process's claims back."""
        lost = life.renew(tenures, until)
        try:
            if self.store.requeue_abandoned(self.settings.clock().timestamp()):
                log.info("re-queued events claimed by a worker that stopped")
        except StoreUnavailable as err:
            log.warning("keeper: could not look for a stopped worker's events: %s", err)
        return lost

    def _give_up(self, why: str) -> None:
        """Cut every call short and drop the lock's connection; a new one is taken next tick."""
        log.error("keeper: %s: every call in flight is cut short and its slot given up", why)
        with self._lock:
            for tenure in self._tenures:
                tenure.lose(why)
        life, self._life, self._renewing = self._life, None, None
        self._last_ok = time.monotonic()  # the next life starts afresh
        if life is not None:
            threading.Thread(target=life.close, daemon=True).start()  # may hang: not here
