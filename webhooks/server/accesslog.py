"""The gunicorn logger of the bridge: safe to feed client input.

`SafeLogger` escapes control and non-printable characters (and backslashes) in every
access-log atom, so `/hooks/x%0d%0aFAKE` is logged as `/hooks/x\\r\\nFAKE`, not as two lines. It
redacts query strings (which can carry a shared secret) in the access log's request line and
query atoms, and in everything written to the error log: gunicorn quotes the whole request line
of a malformed request there. Error-log messages keep their newlines (tracebacks, the config
dump; gunicorn writes client data there with repr()) but lose every other control character.
"""

from __future__ import annotations

import logging
import re

from gunicorn import glogging

from ..observability.logs import printable

QUERY = re.compile(r"\?\S+?(?=['\"]?(?:\s|$))")  # up to a space, or a quote that ends it
REDACTED = "[redacted]"


def redact_query(text: str) -> str:
    """Every `?query` in `text` replaced by `?[redacted]` (a lone "?" stays)."""
    return QUERY.sub("?" + REDACTED, text) if "?" in text else text


class _Scrub(logging.Filter):
    """Error-log records: controls escaped (newlines kept), query strings redacted."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: the handler reports it, as usual
            return True
        record.msg = redact_query(printable(message, keep="\n\t"))
        record.args = None
        return True


class SafeLogger(glogging.Logger):
    """gunicorn's logger, safe to feed client input: see the module docstring."""

    def setup(self, cfg):
        super().setup(cfg)
        if not any(isinstance(f, _Scrub) for f in self.error_log.filters):
            self.error_log.addFilter(_Scrub())

    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        for key in ("r", "{raw_uri}e"):
            if isinstance(atoms.get(key), str):
                atoms[key] = redact_query(atoms[key])
        for key in ("q", "{query_string}e"):
            if atoms.get(key):
                atoms[key] = REDACTED
        for key, value in atoms.items():
            if isinstance(value, str):
                atoms[key] = printable(value.replace("\\", "\\\\"))
        return atoms
