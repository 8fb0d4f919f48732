"""The spool: requests acknowledged while the store could not be written, kept on local disk
until the store answers again, then replayed into it in arrival order.

Some CRMs never retry (Odoo, ActiveCampaign, a Dataverse 500) and others ban an endpoint that
fails (Pipedrive), so a store outage must not turn into lost callbacks. Each spooled request
is one file, written to a temporary name, fsync'd, then renamed into place (and the folder
fsync'd): a file either holds a whole request or does not exist. Names start with the arrival
time in nanoseconds, so sorting them is the arrival order. One process replays at a time (an
exclusive lock on a file in the folder); a crash during replay re-adds a request whose events
are already stored, which the store answers as duplicates, so replay is safe to repeat.

Errors: `SpoolFull` when the request cannot be written (disk full, folder not writable): the
only case in which a webhook is answered 503.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from itertools import count
from pathlib import Path
from typing import Any

from .lifecycle import Status
from .store import NewEvent, Store, StoreUnavailable

log = logging.getLogger(__name__)
SUFFIX = ".json"
_sequence = count()


class SpoolFull(OSError):
    """The spool could not keep the request (disk full or not writable): answer 503."""


@dataclass(frozen=True)
class Depth:
    requests: int
    oldest: float | None  # epoch seconds the oldest spooled request arrived


class Spool:
    """A folder of spooled requests (SPOOL_DIR)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    def append(self, source: str, events: list[NewEvent], received_at: float) -> None:
        """Keep one request's events on disk before it is acknowledged; SpoolFull if not."""
        record = {"source": source, "received_at": received_at,
                  "events": [asdict(event) for event in events]}
        name = f"{time.time_ns():020d}-{os.getpid()}-{next(_sequence):06d}"
        temporary = self.folder / f".{name}.tmp"
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with temporary.open("w", encoding="utf-8") as handle:
                json.dump(record, handle, separators=(",", ":"))
                handle.flush()
                os.fsync(handle.fileno())
            temporary.rename(self.folder / f"{name}{SUFFIX}")
            _fsync_folder(self.folder)
        except OSError as err:
            with contextlib.suppress(OSError):
                temporary.unlink()
            raise SpoolFull(f"cannot spool the request: {err.strerror or err}") from None

    def files(self) -> list[Path]:
        """The spooled requests, oldest first."""
        try:
            return sorted(self.folder.glob(f"*{SUFFIX}"))
        except OSError:
            return []

    def depth(self) -> Depth:
        files = self.files()
        if not files:
            return Depth(0, None)
        return Depth(len(files), int(files[0].name.split("-", 1)[0]) / 1e9)

    def replay(self, store: Store) -> int:
        """Store every spooled request, oldest first, deleting each once stored. Stops at the
        first StoreUnavailable (the rest waits for the next try). Returns requests replayed;
        0 at once when another process is replaying."""
        if not self.files():
            return 0
        with self._exclusive() as mine:
            if not mine:
                return 0
            replayed = 0
            for path in self.files():
                try:
                    record = json.loads(path.read_text(encoding="utf-8"))
                    events = [_event(item) for item in record["events"]]
                except (OSError, ValueError, KeyError, TypeError) as err:
                    log.error("spool: %s is unreadable (%s); moved aside", path.name, err)
                    path.rename(path.with_suffix(".unreadable"))
                    continue
                try:
                    store.add_events(events, record["received_at"])
                except StoreUnavailable:
                    break
                path.unlink()
                replayed += 1
            if replayed:
                log.info("spool: replayed %d request(s) into the store", replayed)
            return replayed

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[bool]:
        try:
            handle = (self.folder / ".replay.lock").open("a")
        except OSError:
            yield False
            return
        with handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                yield False
                return
            yield True


def _event(item: dict[str, Any]) -> NewEvent:
    item = {**item, "status": Status(item["status"])}
    if item.get("lead") is not None:
        item["lead"] = tuple(item["lead"])
    return NewEvent(**item)


def _fsync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
