"""Fixtures that read like the feature list: a sandbox wolkvox on loopback, a database of each
kind, an app factory, a clock the test can move, and helpers to sign and send webhooks."""

from __future__ import annotations

import os
import shutil
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pytest
import requests
import sqlalchemy as sa
from hypothesis import settings as hypothesis_settings

from tests.hubspot_lookalike import HubSpotLookalike
from webhooks import create_app
from webhooks.bridge import bridge_of
from webhooks.sandbox import create_sandbox, serve
from webhooks.store import Store, normalize_url

ROOT = Path(__file__).resolve().parent.parent
# CI explores the same generated cases on every run (a failure there can be reproduced from its
# log); a developer's machine draws new ones each time, and keeps the failures it found.
hypothesis_settings.register_profile("ci", derandomize=True, print_blob=True)


def in_ci() -> bool:
    """True under CI (CI=true, as CI services set it): what a developer's machine may skip
    (PostgreSQL, the browser) fails there instead. CI=false or CI=0 is a developer's machine."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


if in_ci():
    hypothesis_settings.load_profile("ci")


def pytest_configure(config: pytest.Config) -> None:
    """Stop at once, naming the fix, on a machine without an IANA time zone database (minimal
    containers ship none): every time rule needs one, and without it each module fails to
    import with a traceback that does not say why."""
    try:
        ZoneInfo("America/Bogota")
    except ZoneInfoNotFoundError:
        raise pytest.UsageError(
            "no IANA time zone database found (zoneinfo looks in the system's and in the tzdata "
            "package): install it with `apt-get install tzdata` (or `pip install tzdata` in "
            ".venv); the bridge needs it to run too") from None
SANDBOX_TOKEN = "test-token-0123"
ENVIRON = {
    "WOLKVOX_CAMPAIGN_ID": "4638",
    "ZAPIER_SHARED_SECRET": "zap-secret",
    "HUBSPOT_CLIENT_SECRET": "hubspot-secret",
    "HUBSPOT_PRIVATE_APP_TOKEN": "hubspot-private-app-token",
    # The shipped lookups are paced under each CRM's limit (rate:); the look-alikes have none,
    # and tests/test_core_rate_gate.py sets its own rates.
    "HUBSPOT_RATE": "1000", "KOMMO_RATE": "1000", "BITRIX24_RATE": "1000",
    "SALESFORCE_ORG_ID": "00D5e000000AbCdEAK",
    "SALESFORCE_URL_TOKEN": "sf-url-token",
    "PIPEDRIVE_WEBHOOK_PASSWORD": "pipedrive-password",
    "ZOHO_WEBHOOK_TOKEN": "zoho-token",
    "DYNAMICS_WEBHOOK_KEY": "dynamics-key",
    "ZAPIER_WEBHOOK_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",  # Standard Webhooks' vector
    "KOMMO_WEBHOOK_TOKEN": "kommo-url-token",
    "KOMMO_BASE_URL": "https://mycompany.kommo.com",  # tests point it at tests/crm_lookalike.py
    "KOMMO_TOKEN": "kommo-long-lived-token",
    "BITRIX24_APPLICATION_TOKEN": "jvh9y1ulvt2m6k5or90v9mg8nn32ozas",  # samples/bitrix24.txt's
    "BITRIX24_WEBHOOK_URL": "https://some-domain.bitrix24.com/rest/1/inbound-secret/",
    "ODOO_WEBHOOK_TOKEN": "odoo-token",
    "RDSTATION_WEBHOOK_TOKEN": "rdstation-token",
    "ACTIVECAMPAIGN_WEBHOOK_TOKEN": "activecampaign-token",
    "MONDAY_WEBHOOK_TOKEN": "monday-token",
    "SALESFORCE_FLOW_SECRET": "sf-flow-secret",
}


class Clock:
    """A clock the test moves by hand; starts at the real now."""

    def __init__(self, start: datetime | None = None):
        self.now = start or datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


class Sandbox:
    """The wolkvox look-alike, served in a thread on loopback."""

    def __init__(self) -> None:
        self.app = create_sandbox([SANDBOX_TOKEN])
        self.state = self.app.extensions["sandbox"]
        self.server = serve(self.app)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def configure(self, **options: Any) -> None:
        requests.post(f"{self.url}/_sandbox/config", json=options, timeout=5).raise_for_status()

    def recalls(self) -> list[dict[str, Any]]:
        return requests.get(f"{self.url}/_sandbox/recalls", timeout=5).json()

    def stats(self) -> dict[str, Any]:
        return requests.get(f"{self.url}/_sandbox/stats", timeout=5).json()

    def reset(self) -> None:
        with self.state.lock:
            self.state.reset()
            self.state.tokens = {SANDBOX_TOKEN}
            self.state.latency = 0.0
            self.state.daily_limit = 0
            self.state.autodial = None
            self.state.refuse_unknown = False


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator[Sandbox]:
    sandbox = Sandbox()
    yield sandbox
    sandbox.server.shutdown()


@pytest.fixture
def sandbox(sandbox_server: Sandbox) -> Sandbox:
    sandbox_server.reset()
    return sandbox_server


# --- databases ---------------------------------------------------------------------------
def postgres_url() -> str | None:
    """TEST_DATABASE_URL if it answers; in CI a missing PostgreSQL fails the suite."""
    url = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
    try:
        engine = sa.create_engine(normalize_url(url))
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
        engine.dispose()
        return url
    except Exception as err:
        if in_ci():
            raise RuntimeError(f"PostgreSQL is required in CI: {url}: {err}") from err
        return None


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped at the end."""
    base = postgres_url()
    if base is None:
        pytest.skip("PostgreSQL not reachable (set TEST_DATABASE_URL); runs in CI")
    name = f"rb_test_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(normalize_url(base), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = normalize_url(base).rsplit("/", 1)[0] + f"/{name}"
    yield url
    with admin.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _empty_postgres(url: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        tables = connection.execute(sa.text(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
            "AND tablename <> 'alembic_version'")).scalars().all()
        if tables:
            connection.execute(sa.text(
                f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite store migrated once for the session: each test starts from a copy of it
    (migrating a new file through every revision takes ~0.1 s; a copy, a millisecond)."""
    path = tmp_path_factory.mktemp("template") / "bridge.db"
    template = Store(f"sqlite:///{path}")
    template.migrate()
    template.dispose()
    return path


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each store and delivery test runs on SQLite and on PostgreSQL, on a store at the
    newest schema (the migrations themselves are tested on new files of their own)."""
    if request.param == "sqlite":
        shutil.copy(request.getfixturevalue("sqlite_template"), tmp_path / "bridge.db")
        return f"sqlite:///{tmp_path / 'bridge.db'}"
    url = request.getfixturevalue("pg_database")
    _empty_postgres(url)
    return url


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    """A migrated store on this test's database, on its own (no app)."""
    opened = Store(database_url)
    opened.migrate()
    yield opened
    opened.dispose()


# --- apps --------------------------------------------------------------------------------
@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def mappings_dir(tmp_path: Path) -> Path:
    """A copy of the shipped mappings, which a test may add to."""
    target = tmp_path / "mappings"
    shutil.copytree(ROOT / "mappings", target)
    return target


@pytest.fixture
def make_app(sandbox: Sandbox, database_url: str, clock: Clock, mappings_dir: Path,
             tmp_path: Path) -> Any:
    """Build an app on this test's database and sandbox; stops its worker afterwards."""
    apps: list[Any] = []

    def build(**overrides: Any) -> Any:
        environ = {**ENVIRON, **overrides.pop("environ", {})}
        config = {
            "database_url": database_url, "mappings_dir": str(mappings_dir),
            "wolkvox_token": SANDBOX_TOKEN, "wolkvox_base_url": sandbox.url,
            "environ": environ, "clock": clock, "poll_interval": 0.05,
            "wolkvox_timeout": 5.0, "lease": 1.0,
            "spool_dir": str(tmp_path / "spool"), **overrides,
        }
        app = create_app(config)
        apps.append(app)
        return app

    yield build
    for app in apps:
        bridge = bridge_of(app)
        bridge.stop_background()
        bridge.store.dispose()


def drain(app: Any, passes: int = 50) -> None:
    """Run the worker in this thread until a pass finds nothing to do."""
    worker = bridge_of(app).worker or _worker(app)
    for _ in range(passes):
        if not worker.run_once():
            return
    raise AssertionError("the queue did not drain")


def _worker(app: Any) -> Any:
    from webhooks.delivery.worker import Worker

    bridge = bridge_of(app)
    return Worker(bridge.store, bridge.sources, bridge.settings, name="test")


@pytest.fixture(scope="module")
def hubspot_server() -> Iterator[HubSpotLookalike]:
    """HubSpot's CRM API look-alike on loopback, with the token of ENVIRON."""
    server = HubSpotLookalike(ENVIRON["HUBSPOT_PRIVATE_APP_TOKEN"]).start()
    yield server
    server.stop()
