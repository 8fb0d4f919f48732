"""Environment -> typed settings. Every tunable and its default lives here, once.

Nothing reads the environment at import time: `Settings.from_env()` is called by
`create_app()`, and tests build a `Settings` with their own values.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from typing import Any

# --- defaults: each a named constant with what it is for -----------------------------------
DATABASE_URL = "sqlite:///instance/bridge.db"  # embedded store; postgresql://... to scale out
MAPPINGS_DIR = "mappings"  # one YAML file per source; the file name is the URL
WOLKVOX_BASE_URL = "https://wv{server}.wolkvox.com"  # {server} is the 4-digit server code
WOLKVOX_TIMEZONE = "America/Bogota"  # recall_date is read by wolkvox in the operation's time
WOLKVOX_MAX_CONCURRENCY = 2  # wolkvox refuses a third call in flight for one token
WOLKVOX_TIMEOUT = 60.0  # wolkvox's own limit for one call, seconds (read timeout)
WOLKVOX_CONNECT_TIMEOUT = 5.0  # a host that does not accept a connection in 5 s is down
LOOKUP_TIMEOUT = 20.0  # read timeout of a CRM lookup (HubSpot answers in well under 1 s)
WOLKVOX_MIN_LEAD = 30 * 60  # wolkvox wants recalls at least 30 minutes ahead, seconds
EXPIRE_AFTER = 2 * 3600  # a callback more than this far in the past is worthless, seconds
MAX_EVENT_AGE = 24 * 3600  # stop retrying an event this old (transient errors only), seconds
MAX_BODY_BYTES = 1024 * 1024  # larger webhook bodies are refused with 413
TOKEN_PROBE_INTERVAL = 5 * 60  # a held bad token is probed this often, seconds
LEASE = 3.0  # a slot or claimed event stays its holder's this long after its last renewal, s
POLL_INTERVAL = 0.5  # an idle worker looks for due events this often, seconds
WORKER_THREADS = 2  # delivery threads per worker process (one per slot is enough)
CLAIM_BATCH = 10  # events a delivery thread claims at once (fewer round trips at full speed)
MAX_WAIT = 25.0  # ?wait=N on a hook is capped here (CRMs time out at 30 s)
MAX_EVENTS_PER_REQUEST = 100  # Salesforce and HubSpot send at most 100; more is refused whole
# Call results (delivery/results.py): wolkvox's campaign_3 report, asked for a campaign only
# while a delivered recall of it awaits its result; wolkvox advises once every 5 minutes.
CALL_RESULTS_INTERVAL = 0.0  # seconds between two reports of one campaign; 0: off
CALL_RESULTS_ADVISED = 300.0  # wolkvox's advice: a shorter interval is warned about at start
CALL_RESULTS_SHARE = 0.1  # of WOLKVOX_DAILY_LIMIT at most for reports (recalls need the rest)
CALL_RESULTS_MAX_WAIT = 24 * 3600.0  # a recall with no reported call this long after its date
# is closed as "no result reported", seconds
# Write-backs (delivery/writebacks.py): what the bridge tells each CRM, sent by threads of
# their own in each delivery process, so that a slow CRM never holds a recall's slot.
WRITEBACK_TIMEOUT = 10.0  # one write-back call, read timeout and deadline, seconds
WRITEBACK_THREADS = 2  # per delivery process; one hung CRM holds one of them at most
# Operators' alerts (delivery/alerts.py): posted as {"text": ...} to ALERT_WEBHOOK_URL
ALERT_FAILURES = 10  # callbacks failed within ALERT_WINDOW that raise an alert; 0: never
ALERT_WINDOW = 600.0  # seconds the failures are counted over
ALERT_QUIET = 900.0  # one message per condition per this many seconds at most
# What wolkvox answers a recall for a customer the campaign does not have is not documented
# (wolkvox-api.md): the message is matched with this pattern, a setting, to confirm on a real
# operation (docs/crms.md says how).
WOLKVOX_NOT_IN_CAMPAIGN = (r"(?i)not (found|exist|registered)|does ?n[o']t exist|no existe|"
                           r"not in (the )?campaign|unknown customer|no registrad")
# requests acknowledged while the store was down, until replayed: unset, a folder per store
# under SPOOL_ROOT (named by its fingerprint), so bridges started in one folder never share one
SPOOL_ROOT = "instance/spool"
MIN_TOKEN_LENGTH = 24  # ADMIN_TOKEN, VIEWER_TOKEN, METRICS_TOKEN: shorter ones can be guessed
TOKEN_RECIPE = 'python -c "import secrets; print(secrets.token_urlsafe(32))"'  # noqa: S105
# A hung store (webhooks/store/timeouts.py): each wait short enough that a webhook is answered,
# stored or spooled, within 2 s (Odoo waits 1 s, Kommo 2 s); 0 turns one off.
STORE_CONNECT_TIMEOUT = 1.0  # a new PostgreSQL connection, seconds
STORE_STATEMENT_TIMEOUT = 1.2  # one PostgreSQL statement (server-side and client-side), seconds
STORE_POOL_TIMEOUT = 0.5  # waiting for a free connection of the pool (PostgreSQL), seconds
STORE_LOCK_TIMEOUT = 1.2  # a lock: SQLite's write lock, PostgreSQL's lock_timeout, seconds


class ConfigError(Exception):
    """The configuration cannot run; `problems` holds one readable line each."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


def utcnow() -> datetime:
    """The real clock; tests inject their own through `Settings.clock`."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class Settings:
    """Typed settings for one app. Environment names are the field names upper-cased."""

    database_url: str = DATABASE_URL
    mappings_dir: str = MAPPINGS_DIR
    sources: str = ""  # comma list of mapping names to serve; empty: every file
    wolkvox_server: str = ""
    wolkvox_token: str = field(default="", repr=False)
    wolkvox_base_url: str = WOLKVOX_BASE_URL
    wolkvox_timezone: str = WOLKVOX_TIMEZONE
    wolkvox_max_concurrency: int = WOLKVOX_MAX_CONCURRENCY
    wolkvox_daily_limit: int = 0  # 0: no quota known; wolkvox's own 403 still holds the token
    wolkvox_timeout: float = WOLKVOX_TIMEOUT
    wolkvox_connect_timeout: float = WOLKVOX_CONNECT_TIMEOUT
    lookup_timeout: float = LOOKUP_TIMEOUT
    wolkvox_min_lead: float = WOLKVOX_MIN_LEAD
    expire_after: float = EXPIRE_AFTER
    max_event_age: float = MAX_EVENT_AGE
    max_body_bytes: int = MAX_BODY_BYTES
    token_probe_interval: float = TOKEN_PROBE_INTERVAL
    lease: float = LEASE
    poll_interval: float = POLL_INTERVAL
    worker_threads: int = WORKER_THREADS
    claim_batch: int = CLAIM_BATCH
    public_url: str = ""  # e.g. https://bridge.example.com, for signatures behind a proxy
    trust_forwarded: bool = False  # trust X-Forwarded-Proto/Host from one proxy hop
    delivery_worker: bool = True  # run a delivery thread inside the web process
    max_wait: float = MAX_WAIT
    max_events_per_request: int = MAX_EVENTS_PER_REQUEST
    spool_dir: str = ""  # empty: SPOOL_ROOT/<the store's fingerprint>
    store_connect_timeout: float = STORE_CONNECT_TIMEOUT
    store_statement_timeout: float = STORE_STATEMENT_TIMEOUT
    store_pool_timeout: float = STORE_POOL_TIMEOUT
    store_lock_timeout: float = STORE_LOCK_TIMEOUT
    call_results_interval: float = CALL_RESULTS_INTERVAL
    call_results_share: float = CALL_RESULTS_SHARE
    call_results_max_wait: float = CALL_RESULTS_MAX_WAIT
    writeback_timeout: float = WRITEBACK_TIMEOUT
    writeback_threads: int = WRITEBACK_THREADS
    wolkvox_not_in_campaign: str = WOLKVOX_NOT_IN_CAMPAIGN
    alert_webhook_url: str = field(default="", repr=False)  # Slack, Teams, Google Chat...
    alert_language: str = "es"  # es | en
    alert_failures: int = ALERT_FAILURES
    calling_hours: str = ""  # default calling hours of every source: a preset or inline YAML
    admin_token: str = field(default="", repr=False)  # enables /console and /api/v1 (all)
    viewer_token: str = field(default="", repr=False)  # read-only access to both
    metrics_token: str = field(default="", repr=False)  # if set, /metrics wants it (bearer)
    log_format: str = "text"  # text | json
    environ: Mapping[str, str] = field(default_factory=dict, repr=False)  # for ${NAME}
    clock: Callable[[], datetime] = field(default=utcnow, repr=False, compare=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read every field from `env` (default: os.environ); raise ValueError naming a bad one."""
        env = dict(os.environ if env is None else env)
        values: dict[str, Any] = {}
        for f in fields(cls):
            name = f.name.upper()
            if f.name in ("environ", "clock") or name not in env or env[name] == "":
                continue
            values[f.name] = _coerce(name, env[name], _kind(f.default))
        values["environ"] = env
        settings = cls(**values)
        return replace(settings, **overrides) if overrides else settings

    def with_overrides(self, overrides: Mapping[str, Any]) -> Settings:
        """A copy with `overrides` applied (lower-case field names; used by test_config)."""
        known = {f.name for f in fields(self)}
        unknown = set(overrides) - known
        if unknown:
            raise ValueError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        return replace(self, **overrides)

    @property
    def wolkvox_timeouts(self) -> tuple[float, float]:
        """(connect, read) timeouts for requests."""
        return (self.wolkvox_connect_timeout, self.wolkvox_timeout)

    @property
    def lookup_timeouts(self) -> tuple[float, float]:
        """(connect, read) timeouts of a CRM lookup."""
        return (self.wolkvox_connect_timeout, self.lookup_timeout)

    @property
    def writeback_timeouts(self) -> tuple[float, float]:
        """(connect, read) timeouts of a write-back call."""
        return (self.wolkvox_connect_timeout, self.writeback_timeout)

    @property
    def longest_handling(self) -> float:
        """The longest one event can take in a worker: a CRM lookup, then the wolkvox call,
        each bounded by its deadline (plus the connect timeouts)."""
        return sum(self.lookup_timeouts) + sum(self.wolkvox_timeouts)


def token_problems(settings: Settings) -> list[str]:
    """One line per access token that is set but too short to resist guessing (the console's
    and the API's throttle slow a guesser down; a short token is still found), naming the
    setting and how to make a good one. Empty when every token set is long enough."""
    problems = []
    for name in ("admin_token", "viewer_token", "metrics_token"):
        value = getattr(settings, name)
        if value and len(value) < MIN_TOKEN_LENGTH:
            problems.append(f"{name.upper()} is {len(value)} characters; it needs at least "
                            f"{MIN_TOKEN_LENGTH} (make one with: {TOKEN_RECIPE})")
    return problems


def call_results_problems(settings: Settings) -> tuple[list[str], list[str]]:
    """(problems that stop the start, warnings) about the call-results settings."""
    problems, warnings = [], []
    interval = settings.call_results_interval
    if interval < 0:
        problems.append(f"CALL_RESULTS_INTERVAL={interval:g} must be 0 (off) or seconds")
    elif 0 < interval < CALL_RESULTS_ADVISED:
        warnings.append(f"CALL_RESULTS_INTERVAL={interval:g} s: wolkvox advises one report "
                        f"every {CALL_RESULTS_ADVISED:g} s at most; a shorter interval is "
                        "for tests and sandboxes")
    if not 0 <= settings.call_results_share <= 1:
        problems.append(f"CALL_RESULTS_SHARE={settings.call_results_share:g} must be between "
                        "0 and 1 (the share of WOLKVOX_DAILY_LIMIT reports may use)")
    if settings.call_results_max_wait <= 0:
        problems.append("CALL_RESULTS_MAX_WAIT must be a positive number of seconds")
    return problems, warnings


def alert_problems(settings: Settings) -> list[str]:
    """Problems that stop the start, about the alert settings."""
    problems = []
    url = settings.alert_webhook_url
    if url and not url.startswith(("https://", "http://")):
        problems.append("ALERT_WEBHOOK_URL must be an http(s) URL (a Slack, Microsoft Teams or "
                        "Google Chat incoming webhook, or any URL taking {\"text\": ...})")
    if settings.alert_language not in ("es", "en"):
        problems.append(f"ALERT_LANGUAGE={settings.alert_language!r} must be es or en")
    try:
        re.compile(settings.wolkvox_not_in_campaign)
    except re.error as err:
        problems.append(f"WOLKVOX_NOT_IN_CAMPAIGN is not a regular expression: {err}")
    if settings.alert_failures < 0:
        problems.append("ALERT_FAILURES must be 0 (no failure alerts) or a number of failures")
    return problems


def _kind(default: Any) -> type:
    return type(default) if isinstance(default, bool | int | float) else str


def _coerce(name: str, raw: str, kind: type) -> Any:
    try:
        if kind is bool:
            lowered = raw.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError
        return kind(raw)
    except ValueError:
        raise ValueError(f"setting {name}={raw!r} is not a valid {kind.__name__}") from None
