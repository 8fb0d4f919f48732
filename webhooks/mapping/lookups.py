"""A source's declared lookup (`lookup:` in its mapping): the GETs that fetch what a thin
event lacks, and the ids they may put in a URL. outbound/lookups.py makes the calls."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from jmespath.parser import ParsedResult

from .. import reasons

# An object id a CRM gives: letters, digits and . _ : @ -, never "." or ".." alone, so that it
# can only ever name one object: it cannot climb out of the lookup's path or change its host.
_OBJECT_ID = re.compile(r"(?!\.{1,2}$)[A-Za-z0-9_.:@-]{1,128}")


@dataclass(frozen=True)
class LookupStep:
    """One GET: `url` has one `{id}`; `id` finds the id; `pick` the part of the answer kept
    under `into`."""

    url: str = field(repr=False)  # may carry a secret (Bitrix24's webhook URL)
    id: ParsedResult
    headers: dict[str, str] = field(repr=False)
    pick: ParsedResult
    into: str
    name: str = ""  # what it fetches, for reasons ("HubSpot contact"); default: the host


@dataclass(frozen=True)
class Lookup:
    """A source's lookup: its steps (its credentials are held as `lookup:<source>`)."""

    steps: tuple[LookupStep, ...]

    @property
    def object_id(self) -> ParsedResult:
        return self.steps[0].id

    def describe(self) -> str:
        """What it fetches, step by step ("HubSpot contact"; a host when unnamed: never the
        URL, which may carry a secret)."""
        return " then ".join(step.name or urlsplit(step.url).hostname or "the CRM"
                             for step in self.steps)


class ObjectIdInvalid(ValueError):
    """The event names no object id for the lookup, or one that is not an id."""


def object_id_of(value: Any) -> str:
    """`value` as an object id for a lookup URL, or ObjectIdInvalid saying why it is not one."""
    if value is None or value == "":
        raise ObjectIdInvalid(reasons.LOOKUP_NO_ID())
    text = str(value) if isinstance(value, int | str) and not isinstance(value, bool) else None
    if text is None or not _OBJECT_ID.fullmatch(text):
        shown = repr(value)[:40]
        raise ObjectIdInvalid(reasons.LOOKUP_BAD_ID(shown=shown))
    return text
