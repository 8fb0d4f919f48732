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
from datetime import timedelta
from typing import TYPE_CHECKING, Any, cast

from gunicorn import glogging

from ..observability.logs import printable

if TYPE_CHECKING:
    from gunicorn._types import _EnvironType
    from gunicorn.config import Config
    from gunicorn.glogging import _AtomsDict
    from gunicorn.http import Request
    from gunicorn.http.wsgi import Response

QUERY = re.compile(r"\?\S+?(?=['\"]?(?:\s|$))")  # up to a space, or a quote that ends it
REDACTED = "[redacted]"
ATOM = re.compile(r"%\(([^)]+)\)")  # an atom's name in access_log_format
# What gunicorn's plain atoms read of the environ (not the {name}i, {name}o, {name}e ones)
PLAIN_ENVIRON = ("REMOTE_ADDR", "REQUEST_METHOD", "RAW_URI", "SERVER_PROTOCOL", "PATH_INFO",
                 "QUERY_STRING", "HTTP_REFERER", "HTTP_USER_AGENT", "HTTP_AUTHORIZATION")


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

    def setup(self, cfg: Config) -> None:
        super().setup(cfg)
        if not any(isinstance(f, _Scrub) for f in self.error_log.filters):
            self.error_log.addFilter(_Scrub())
        # the atoms the access log's format names, as SafeAtoms reads them
        self._wanted = frozenset(name.lower() if name.startswith("{") else name
                                 for name in ATOM.findall(cfg.access_log_format))
        self._plain = not any(name.startswith("{") for name in self._wanted)

    def atoms(self, resp: Response, req: Request, environ: _EnvironType,
              request_time: timedelta) -> _AtomsDict:
        # Only the atoms the format names are made and escaped: gunicorn's own make one per
        # request header and environ entry, and escaping them all cost more than the rest of
        # the line (the access log is written for every webhook).
        if self._plain:  # no {name}i, {name}o or {name}e atom
            environ = cast("_EnvironType", {key: environ[key] for key in PLAIN_ENVIRON
                                            if key in environ})
            req = cast("Request", ())
        # A plain dict to us: gunicorn adds a "{name}e" key per environ entry, which the
        # stubs' TypedDict cannot list.
        made = cast("dict[str, Any]", super().atoms(resp, req, environ, request_time))
        atoms = {key: made[key] for key in self._wanted if key in made}
        for key in ("r", "{raw_uri}e"):
            if isinstance(atoms.get(key), str):
                atoms[key] = redact_query(atoms[key])
        for key in ("q", "{query_string}e"):
            if atoms.get(key):
                atoms[key] = REDACTED
        for key, value in atoms.items():
            if isinstance(value, str):
                atoms[key] = printable(value.replace("\\", "\\\\"))
        return cast("_AtomsDict", atoms)
