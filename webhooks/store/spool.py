"""The spool: requests acknowledged while the store could not be written, kept on local disk
until the store answers again, then replayed into the store that acknowledged them.

Some CRMs never retry (Odoo, ActiveCampaign, a Dataverse 500) and others ban an endpoint that
fails (Pipedrive), so a store outage must not turn into lost callbacks. Each spooled request
is one file, written to a temporary name, fsync'd, then renamed into place (and the folder
fsync'd): a file either holds a whole request or does not exist. Names start with the arrival
time in nanoseconds, then the fingerprint of the store that acknowledged it (store/identity.py),
which the record holds too: a bridge replays only its own store's requests and leaves another
store's alone (two bridges sharing one folder), listing them on /readyz. The order of a lead's
requests does not depend on the replay's: the store orders them by when they were
acknowledged (store/ingest.py). One process replays at a time (an exclusive lock on a file in
the folder); a crash during replay re-adds a request whose events are already stored, which
the store answers as duplicates, so replay is safe to repeat.

A file that cannot be replayed as it is (not JSON, a field of the wrong type, values the store
refuses) is set aside: moved to `set-aside/` in the folder with a `.reason` file beside it,
logged once, counted on /readyz and /metrics; the rest is replayed. Moving it back into the
folder replays it again.

Errors: `SpoolFull` when the request cannot be written (disk full, folder not writable): the
only case in which a webhook is answered 503.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import math
import os
import time
import types
from collections.abc import Iterator
from dataclasses import MISSING, asdict, dataclass, fields
from enum import Enum
from itertools import count
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

from . import NewEvent, Store, StoreRefused, StoreUnavailable

log = logging.getLogger(__name__)
SUFFIX = ".json"
SET_ASIDE = "set-aside"  # subfolder of requests that cannot be replayed as they are
REASON = ".reason"  # beside each set-aside file: why
UNREADABLE = ".unreadable"  # what earlier versions renamed an unreadable file to
_sequence = count()
_HINTS = get_type_hints(NewEvent)
_FIELDS = {f.name: f for f in fields(NewEvent)}


class SpoolFull(OSError):
    """The spool could not keep the request (disk full or not writable): answer 503."""


class BadRecord(ValueError):
    """A spooled file that cannot be replayed as it is; the message says why."""


@dataclass(frozen=True)
class Depth:
    requests: int  # this store's requests waiting to be replayed
    oldest: float | None  # epoch seconds the oldest of them arrived
    foreign: int = 0  # requests of other stores (or of no known store), left alone
    foreign_stores: tuple[str, ...] = ()  # their fingerprints ("unknown": written unnamed)
    set_aside: int = 0  # files set aside as not replayable


class Spool:
    """A folder of spooled requests, replayed into the store whose fingerprint is `store`."""

    def __init__(self, folder: str | Path, store: str):
        self.folder = Path(folder)
        self.store = store

    def append(self, source: str, events: list[NewEvent], received_at: float) -> None:
        """Keep one request's events on disk before it is acknowledged; SpoolFull if not."""
        record = {"store": self.store, "source": source, "received_at": received_at,
                  "events": [asdict(event) for event in events]}
        name = f"{time.time_ns():020d}-{self.store}-{os.getpid()}-{next(_sequence):06d}"
        try:
            self._write(name, record)
        except OSError as err:
            raise SpoolFull(f"cannot spool the request: {err.strerror or err}") from None

    def _write(self, name: str, record: dict[str, Any]) -> Path:
        """`record` as the file `name`, whole or not at all: fsync'd under a temporary name,
        renamed into place, the folder fsync'd. OSError when it cannot be (nothing is left)."""
        temporary = self.folder / f".{name}.tmp"
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with temporary.open("w", encoding="utf-8") as handle:
                json.dump(record, handle, separators=(",", ":"))
                handle.flush()
                os.fsync(handle.fileno())
            final = self.folder / f"{name}{SUFFIX}"
            temporary.rename(final)
            _fsync_folder(self.folder)
            return final
        except OSError:
            with contextlib.suppress(OSError):
                temporary.unlink()
            raise

    def adopt(self, paths: list[Path]) -> list[Path]:
        """Make spooled files this store's: each is rewritten into the folder under this
        store's fingerprint (a file written before fingerprints, or one an operator knows to
        be this store's under an old URL), then replayed like any other. Returns the new
        files; BadRecord or OSError naming a file that cannot be adopted (nothing else of it
        is changed)."""
        adopted = []
        for path in paths:
            try:
                record = json.loads(path.read_text(encoding="utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as err:
                raise BadRecord(f"{path.name} is not a JSON record ({err})") from None
            if not isinstance(record, dict):
                raise BadRecord(f"{path.name} is not a JSON object")
            record["store"] = self.store
            arrived = path.name.split("-", 1)[0]
            name = (f"{arrived if arrived.isdigit() else f'{time.time_ns():020d}'}-"
                    f"{self.store}-{os.getpid()}-{next(_sequence):06d}")
            adopted.append(self._write(name, record))
            path.unlink()
        return adopted

    def unnamed(self, *elsewhere: str | Path) -> list[Path]:
        """Files written before spooled requests named their store, in the folder and in the
        folders `elsewhere` (where an earlier version wrote them)."""
        found = []
        for folder in (self.folder, *map(Path, elsewhere)):
            with contextlib.suppress(OSError):
                found += [p for p in sorted(folder.glob(f"*{SUFFIX}")) if owner(p) is None]
        return found

    def _all(self) -> list[Path]:
        try:
            return sorted(self.folder.glob(f"*{SUFFIX}"))
        except OSError:
            return []

    def files(self) -> list[Path]:
        """This store's spooled requests, oldest first."""
        return [path for path in self._all() if owner(path) == self.store]

    def depth(self) -> Depth:
        """What waits here: this store's requests, other stores', and what was set aside."""
        mine: list[Path] = []
        foreign: list[Path] = []
        for path in self._all():
            (mine if owner(path) == self.store else foreign).append(path)
        return Depth(len(mine), int(mine[0].name.split("-", 1)[0]) / 1e9 if mine else None,
                     len(foreign), tuple(sorted({owner(p) or "unknown" for p in foreign})),
                     self._set_aside_count())

    def _set_aside_count(self) -> int:
        try:
            return (sum(1 for _ in (self.folder / SET_ASIDE).glob(f"*{SUFFIX}"))
                    + sum(1 for _ in self.folder.glob(f"*{UNREADABLE}")))
        except OSError:
            return 0

    def replay(self, store: Store) -> int:
        """Store this store's spooled requests, deleting each once stored; a file that cannot
        be replayed as it is is set aside with its reason, and the rest goes on. Stops at the
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
                    received_at, events = self._read(path)
                except FileNotFoundError:
                    continue
                except (OSError, BadRecord) as err:
                    self._set_aside(path, f"unreadable: {err}")
                    continue
                try:
                    store.add_events(events, received_at)
                except StoreUnavailable:
                    break
                except StoreRefused as err:  # the values themselves: a retry cannot help
                    self._set_aside(path, f"the store refused its values: {err}")
                    continue
                path.unlink()
                replayed += 1
            if replayed:
                log.info("spool: replayed %d request(s) into the store", replayed)
            return replayed

    def _read(self, path: Path) -> tuple[float, list[NewEvent]]:
        """A spooled request's arrival time and events; BadRecord saying what is wrong."""
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
            raise BadRecord(f"not a JSON record ({err})") from None
        if not isinstance(record, dict):
            raise BadRecord("not a JSON object")
        if record.get("store") != self.store:
            raise BadRecord(f"its name says store {self.store} but the record says "
                            f"{record.get('store')!r}")
        received_at: Any = record.get("received_at")  # JSON: _fits checks it
        if not _fits(received_at, float):
            raise BadRecord(f"received_at is {_kind(received_at)}, not a time")
        if not isinstance(record.get("source"), str) or not isinstance(record.get("events"),
                                                                        list):
            raise BadRecord("source must be text and events a list")
        return float(received_at), [_event(index, item)
                                    for index, item in enumerate(record["events"])]

    def _set_aside(self, path: Path, reason: str) -> None:
        """Move a file that cannot be replayed to set-aside/, its reason beside it; logged
        once (the file is not looked at again)."""
        aside = self.folder / SET_ASIDE
        try:
            aside.mkdir(exist_ok=True)
            (aside / f"{path.stem}{REASON}").write_text(reason + "\n", encoding="utf-8")
            path.rename(aside / path.name)
        except OSError as err:  # left in place: tried again, and said again, next pass
            log.error("spool: %s cannot be replayed (%s) nor set aside: %s", path.name,
                      reason, err.strerror or err)
            return
        log.error("spool: %s set aside in %s/ of the spool folder: %s; fix it and move it "
                  "back into the folder to replay it", path.name, SET_ASIDE, reason)

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


def owner(path: Path) -> str | None:
    """The store fingerprint a spooled file's name carries; None for a name without one (a
    request spooled by a version before fingerprints, or a file put there by hand)."""
    parts = path.stem.split("-")
    return parts[1] if len(parts) == 4 else None


def _event(index: int, item: Any) -> NewEvent:
    """One spooled event as NewEvent, every field checked against its declared type."""
    if not isinstance(item, dict):
        raise BadRecord(f"event {index} is not an object")
    unknown = set(item) - set(_FIELDS)
    missing = {name for name, f in _FIELDS.items() if name not in item
               and f.default is MISSING and f.default_factory is MISSING}
    if unknown or missing:
        raise BadRecord(f"event {index}: unknown field(s) {sorted(unknown)}, missing "
                        f"{sorted(missing)}")
    values = {}
    for name, value in item.items():
        hint = _HINTS[name]
        if not _fits(value, hint):
            raise BadRecord(f"event {index}: {name} is {_kind(value)}, not {_name(hint)}")
        values[name] = _convert(value, hint)
    return NewEvent(**values)


def _fits(value: Any, hint: Any) -> bool:
    """Whether a JSON value can be the declared type `hint` (a tuple arrives as a list)."""
    origin, args = get_origin(hint), get_args(hint)
    if hint is Any:
        return True
    if origin in (Union, types.UnionType):
        return any(_fits(value, arg) for arg in args)
    if hint is type(None):
        return value is None
    if isinstance(value, bool):
        return hint is bool
    if hint is float:  # a JSON number: finite, and an integer one that a float holds
        return (math.isfinite(value) if isinstance(value, float)
                else isinstance(value, int) and abs(value) < 2**53)
    if isinstance(hint, type) and issubclass(hint, Enum):
        return any(value == member.value for member in hint)
    if isinstance(hint, type) and origin is None:
        return isinstance(value, hint)
    if origin is dict:
        return isinstance(value, dict) and all(
            _fits(k, args[0]) and _fits(v, args[1]) for k, v in value.items())
    if origin is tuple:
        return (isinstance(value, list) and len(value) == len(args)
                and all(_fits(v, a) for v, a in zip(value, args, strict=True)))
    if origin is list:
        return isinstance(value, list) and all(_fits(v, args[0]) for v in value)
    return True  # a type this check does not know: the store still refuses what it cannot keep


def _convert(value: Any, hint: Any) -> Any:
    for arg in get_args(hint) or (hint,):
        if isinstance(arg, type) and issubclass(arg, Enum) and _fits(value, arg):
            return arg(value)
        if get_origin(arg) is tuple and isinstance(value, list):
            return tuple(value)
    return value


def _name(hint: Any) -> str:
    return str(hint).replace("typing.", "").replace("webhooks.lifecycle.", "")


def _kind(value: Any) -> str:
    """What a JSON value is, never the value itself (it may be a phone number)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    kinds: dict[type, str] = {str: "text", list: "a list", dict: "an object"}
    return kinds.get(type(value), "another value")


def _fsync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
