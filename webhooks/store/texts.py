"""What a text column can hold, and a reason's columns: events, attempts and holds keep a
reason's English text, and beside it its code and parameters when it is a `Reason`."""

from __future__ import annotations

import re
from typing import Any

from ..reasons import code_of, params_json

# A NUL or an unpaired surrogate (a lone "\ud83d" escape in JSON) is text no database stores.
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def text(value: str) -> str:
    """A NUL or an unpaired surrogate cannot be stored in a text column (PostgreSQL refuses
    both): replaced, so that a reason quoting a CRM's bad data never fails a transaction."""
    return UNSTORABLE.sub("\ufffd", value) if UNSTORABLE.search(value) else value


def why(reason: str) -> dict[str, Any]:
    """A reason's columns: its text, and its code and parameters when it is a `Reason` (NULL
    for a free text, as every row written before codes existed)."""
    return {"reason": text(reason), "reason_code": code_of(reason),
            "reason_params": params_json(reason)}
