"""Failed sign-ins slowed down per client address: after the n-th wrong token in a row, that
address waits 2**(n-1) s (at most MAX_DELAY) before its next try is even looked at.

The waiting is a refusal (429 with Retry-After), not a sleep, so guessing costs the guesser
time and the bridge no thread. Counts live in the process: with N gunicorn workers a guesser
gets at most N tries per delay, which still makes guessing a 20-character token hopeless.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict

FIRST_DELAY = 1.0  # seconds after the first wrong token
MAX_DELAY = 60.0  # the delay stops growing here
FORGET_AFTER = 15 * 60  # a client quiet this long starts again from the first delay, seconds
MAX_CLIENTS = 10_000  # addresses remembered at once; the oldest are forgotten first


class Throttle:
    """Per client address: consecutive failures, and when the next try may be looked at."""

    def __init__(self) -> None:
        self._failed: OrderedDict[str, tuple[int, float]] = OrderedDict()  # -> (count, until)
        self._lock = threading.Lock()

    def wait(self, client: str, now: float) -> int:
        """Whole seconds `client` must still wait before trying again (0: it may try now)."""
        with self._lock:
            _, until = self._failed.get(client, (0, 0.0))
        return math.ceil(until - now) if until > now else 0

    def failed(self, client: str, now: float) -> int:
        """Count a wrong token from `client`; the seconds it must now wait."""
        with self._lock:
            count, until = self._failed.pop(client, (0, 0.0))
            if now - until > FORGET_AFTER:
                count = 0
            delay = min(FIRST_DELAY * 2 ** count, MAX_DELAY)
            self._failed[client] = (count + 1, now + delay)
            while len(self._failed) > MAX_CLIENTS:
                self._failed.popitem(last=False)
        return math.ceil(delay)

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._failed.pop(client, None)
