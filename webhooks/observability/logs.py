"""The bridge's log lines: LOG_FORMAT=text (the default, for a person) or json (one object a
line, for a log pipeline).

A JSON line has `time` (ISO 8601, UTC), `level`, `logger` and `message`, then whichever of
EXTRAS the caller gave in `extra=` (`log.info("sent", extra={"event_id": 7, "outcome":
"delivered", "latency_ms": 212})`), and `exception` with the traceback. Nothing else from
`extra` is written. Text in a JSON line never holds a secret (the tokens, the values of
settings named like secrets, a password in a URL: "[redacted]") or a full phone number (any
phone-length digit run keeps its last 3 digits only).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import IO, Any

from ..recall import mask_phones_in
from ..settings import ConfigError, Settings

LOGGER = "webhooks"  # every module logs under it
HANDLER = "recall-bridge"  # the name of the handler set up here, so that setup() replaces it
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
FORMATS = ("text", "json")
EXTRAS = ("event_id", "source", "outcome", "latency_ms")  # what `extra=` may add to a line
# environment names whose values are secrets: ZAPIER_SHARED_SECRET, HUBSPOT_..._TOKEN, ...
SECRET_NAME = re.compile(r"SECRET|TOKEN|PASSWORD|PASSWD|PASS\b|KEY|CREDENTIAL|AUTH", re.I)
SHORTEST_SECRET = 6  # shorter values ("1", "true") are not worth redacting everywhere
_URL_PASSWORD = re.compile(r"(?<=://)([^/:@\s]*):[^/@\s]+@")
REDACTED = "[redacted]"


def printable(text: str, keep: str = "") -> str:
    """`text` with control and other non-printable characters escaped (\\r, \\x1b, \\u2028)."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c in keep else c.encode("unicode_escape").decode()
                   for c in text)


def setup(settings: Settings, stream: IO[str] | None = None) -> None:
    """Send the bridge's log lines to `stream` (default stderr) in LOG_FORMAT; ConfigError for
    an unknown format. Calling it again (another app in the same process) replaces the
    handler it set up."""
    if settings.log_format not in FORMATS:
        raise ConfigError([f"LOG_FORMAT={settings.log_format!r}: expected one of "
                           f"{', '.join(FORMATS)}"])
    logger = logging.getLogger(LOGGER)
    for handler in [h for h in logger.handlers if h.get_name() == HANDLER]:
        logger.removeHandler(handler)
    if settings.log_format == "text" and (logger.handlers or logging.getLogger().handlers):
        return  # logging is configured already (a test runner, a log config): use it
    handler = logging.StreamHandler(stream)
    handler.set_name(HANDLER)
    handler.setFormatter(JsonFormatter(secrets_of(settings)) if settings.log_format == "json"
                         else logging.Formatter(TEXT_FORMAT))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line; secrets redacted and phones masked."""

    def __init__(self, secrets: Iterable[str] = ()):
        super().__init__()
        self.secrets = sorted(set(secrets), key=len, reverse=True)  # longest first

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"),
            "level": record.levelname, "logger": record.name,
            "message": self.clean(record.getMessage()),
        }
        for name in EXTRAS:
            value = record.__dict__.get(name)
            if value is not None:
                line[name] = self.clean(value) if isinstance(value, str) else value
        if record.exc_info:
            line["exception"] = self.clean(self.formatException(record.exc_info))
        if record.stack_info:
            line["stack"] = self.clean(self.formatStack(record.stack_info))
        return json.dumps(line, ensure_ascii=False, default=str)

    def clean(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        return mask_phones_in(_URL_PASSWORD.sub(rf"\1:{REDACTED}@", text))


def secrets_of(settings: Settings) -> list[str]:
    """The values never to write: the bridge's tokens, and every setting or ${NAME} whose
    name says it is a secret."""
    found = [settings.wolkvox_token, settings.admin_token, settings.viewer_token,
             settings.metrics_token]
    found += [value for name, value in settings.environ.items() if SECRET_NAME.search(name)]
    return [value for value in found if isinstance(value, str)
            and len(value) >= SHORTEST_SECRET]
