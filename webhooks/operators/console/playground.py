"""The playground's own pieces: the Content-Type a pasted body is read with, dates as people
read them, and the sample shipped beside a mapping. The judging is the intake pipeline's
(intake/pipeline.py `try_body`), as the hook, `flask mappings try` and the API do it."""

from __future__ import annotations

import glob
from datetime import datetime
from pathlib import Path

from ...bridge import Bridge
from ...crm.formats import format_of
from ...mapping.source import Source
from ...recall import DATE_FORMAT

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def content_type(source: Source, chosen: str, body: bytes) -> str:
    """The Content-Type the body is read with: fixed by the format, except for a form source,
    where the person chooses; a multipart body's boundary is read from its first line."""
    if source.format != "form":
        return format_of(source.format).sample_type
    if chosen == "multipart/form-data":
        first = body.lstrip(b"\r\n").split(b"\n", 1)[0].strip()
        if first.startswith(b"--") and len(first) > 2:
            boundary = first[2:].decode("latin-1").replace("\\", "").replace('"', "")
            return f'multipart/form-data; boundary="{boundary}"'
        return "multipart/form-data"
    return FORM_TYPES[0]


def pretty_date(recall_date: str | None) -> str:
    """A recall date (YYYYmmddHHMMSS) as people read it: 2030-12-01 10:30:00."""
    try:
        return f"{datetime.strptime(recall_date or '', DATE_FORMAT):%Y-%m-%d %H:%M:%S}"
    except ValueError:
        return recall_date or ""


def sample(bridge: Bridge, name: str) -> str:
    """The source's sample body shipped beside its mapping (samples/<name>.*), or ""."""
    folder = Path(bridge.settings.mappings_dir) / "samples"
    for path in sorted(folder.glob(f"{glob.escape(name)}.*")):
        if path.is_file() and path.stat().st_size <= bridge.settings.max_body_bytes:
            return path.read_text(encoding="utf-8", errors="replace")
    return ""
