"""The store's breaker: after a failure, webhooks go to the spool at once for a while."""

from __future__ import annotations

import logging
import threading
import time

log = logging.getLogger(__name__)
STORE_PAUSE = 2.0  # seconds webhooks go straight to the spool after the store failed one


class Breaker:
    """After the store failed a webhook (a timeout fired: STORE_LOCK_TIMEOUT and the others),
    the next webhooks are spooled at once for STORE_PAUSE seconds instead of each waiting out
    the same timeout: requests queued behind hung threads are answered in milliseconds, not
    after a timeout each. Then one webhook at a time tries the store; the first it stores
    closes the breaker. Per process."""

    def __init__(self, pause: float = STORE_PAUSE):
        self.pause = pause
        self.open_until = 0.0  # monotonic; 0: closed (the store answered last time)
        self._probe = threading.Lock()
        self._mine = threading.local()  # does this thread's request hold the probe?

    def try_store(self) -> bool:
        """May this request try the store? False: spool it now. True with the probe taken
        when half-open: the caller reports with `stored()` or `failed()` either way."""
        if not self.open_until:
            return True
        if time.monotonic() < self.open_until:
            return False
        self._mine.probing = self._probe.acquire(blocking=False)
        return self._mine.probing

    def stored(self) -> None:
        if self.open_until:
            self.open_until = 0.0
            log.info("store: answering again; webhooks are stored, not spooled")
        self.release()

    def failed(self) -> None:
        self.open_until = time.monotonic() + self.pause
        self.release()

    def release(self) -> None:
        """Give back the probe (if this thread's request held it)."""
        if getattr(self._mine, "probing", False):
            self._mine.probing = False
            self._probe.release()
