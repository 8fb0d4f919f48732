"""Signing out ends a session everywhere: its cookie, copied or kept, opens nothing afterwards.

The session cookie is signed, not stored, so clearing it in the browser that signs out leaves
any copy of it valid until SESSION_MAX_AGE. Each sign-in therefore gets a random session id
(in the cookie), and signing out writes that id's digest to the audit log ("sign-out"), which
every process (gunicorn workers, other machines on the same store) reads: a session whose id
is there is signed out. Each process remembers the sign-outs of the last SESSION_MAX_AGE (older
sessions have lapsed anyway) and asks the store only for entries newer than the last it saw,
a scan bounded by the primary key.

If the store cannot be read, the sign-outs this process already knows still hold; the pages
themselves need the store and say so.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading

from ...store import Store, StoreUnavailable

log = logging.getLogger(__name__)
ACTION = "sign-out"  # the audit log's action for a signed-out session
PREFIX = "session "  # the entry's detail: PREFIX + the session id's digest
# Ids are read again this far behind the newest seen: on PostgreSQL a transaction that took a
# lower id can commit after a higher one was read.
OVERLAP = 100


def new_session_id() -> str:
    """A random id for a new session (kept in its signed cookie)."""
    return secrets.token_urlsafe(18)


def digest(session_id: str) -> str:
    """What the audit log keeps of a session id (the id itself opens nothing, but need not
    be shown)."""
    return hashlib.sha256(session_id.encode()).hexdigest()[:32]


class SignOuts:
    """The sessions signed out in the last `max_age` seconds, as this process knows them."""

    def __init__(self, max_age: float) -> None:
        self.max_age = max_age
        self._gone: dict[str, float] = {}  # digest -> when it was signed out
        self._seen: int | None = None  # the newest audit id read (None: nothing read yet)
        self._lock = threading.Lock()

    def sign_out(self, store: Store, session_id: str, role: str, now: float) -> None:
        """End `session_id` for every process: an audit entry naming it. Raises the store's
        errors (StoreUnavailable): the operator is then told the sign-out did not take."""
        store.audit(role, ACTION, PREFIX + digest(session_id), now)
        with self._lock:
            self._gone[digest(session_id)] = now

    def signed_out(self, store: Store, session_id: str, now: float) -> bool:
        """Whether `session_id` was signed out, here or by another process."""
        with self._lock:
            try:
                self._refresh(store, now)
            except StoreUnavailable as err:
                log.warning("console: cannot read sign-outs (%s): the ones known here hold",
                            err)
            return digest(session_id) in self._gone

    def _refresh(self, store: Store, now: float) -> None:
        oldest = now - self.max_age
        newest = store.last_audit_id()  # read first: an entry written meanwhile comes next time
        after = 0 if self._seen is None else max(self._seen - OVERLAP, 0)
        if newest > after:
            for row in store.audit_since(after, ACTION, oldest):
                if row["detail"].startswith(PREFIX):
                    self._gone[row["detail"].removeprefix(PREFIX)] = row["at"]
        self._seen = newest
        for key in [key for key, at in self._gone.items() if at < oldest]:
            del self._gone[key]
