"""Back in seconds after a crash, never overtaken while alive: real `deliver` processes on one
database, killed, paused and cut off from it, with wolkvox's own 60 s call limit in force."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import pytest
import sqlalchemy as sa

from tests.conftest import ENVIRON, SANDBOX_TOKEN, bridge_of
from tests.procs import Proc, deliver, gunicorn, held_by, slot_holders, wait_until
from tests.test_delivery import event, receive
from tests.test_receiver import zap

pytestmark = pytest.mark.slow
LATENCY = 0.4  # seconds wolkvox takes per call in these tests


def environment(app: Any, sandbox: Any, database_url: str) -> dict[str, str]:
    """A deliver process's settings: the shipped defaults (WOLKVOX_TIMEOUT 60 s, LEASE 3 s)."""
    return {**ENVIRON, "DATABASE_URL": database_url, "WOLKVOX_TOKEN": SANDBOX_TOKEN,
            "WOLKVOX_BASE_URL": sandbox.url, "SOURCES": "zapier",
            "MAPPINGS_DIR": bridge_of(app).settings.mappings_dir, "POLL_INTERVAL": "0.05"}


def arrivals(sandbox: Any) -> int:
    return sandbox.stats()["requests"]


def start_pair(make_app: Any, sandbox: Any, database_url: str, tmp_path: Any,
               events: int = 80) -> tuple[Any, list[int], Proc, Proc]:
    """`first` holds both slots and is delivering; `second` waits for a slot."""
    app = make_app()
    ids = receive(app, *[zap(lead=n) for n in range(events)])
    sandbox.configure(latency=LATENCY)
    env = environment(app, sandbox, database_url)
    first = deliver(env, tmp_path / "first.log", threads=2)
    wait_until(lambda: arrivals(sandbox) >= 4, 30, first)
    second = deliver(env, tmp_path / "second.log", threads=2)
    time.sleep(1.5)  # the second is up, finds both slots taken
    return app, ids, first, second


def kill_and_time(engine: sa.Engine, sandbox: Any, victim: Proc | int,
                  survivor: Proc) -> int:
    """SIGKILL `victim` (a process group, or one pid) and assert its slots and claims are free
    within 5 s; how many calls it had in flight at wolkvox (they may still be answered)."""
    pid = victim if isinstance(victim, int) else victim.popen.pid
    (os.kill if isinstance(victim, int) else os.killpg)(pid, signal.SIGKILL)
    killed = time.monotonic()
    with sandbox.state.lock:  # the dead process's calls wolkvox is still answering
        orphans = sandbox.state.in_flight[SANDBOX_TOKEN]
    if not isinstance(victim, int):
        victim.popen.wait(10)  # reaped: a zombie's pid still looks alive
    wait_until(lambda: held_by(engine, victim) == {"slots": 0, "claims": 0}, 20, survivor)
    recovered = time.monotonic() - killed
    print(f"slots and claims of the killed process free {recovered:.2f} s after SIGKILL")
    assert recovered < 5
    return orphans


def test_a_killed_deliver_process_gives_back_its_slots_and_claims_within_5_s(
        make_app, sandbox, database_url, tmp_path):
    app, ids, first, second = start_pair(make_app, sandbox, database_url, tmp_path)
    engine = bridge_of(app).store.engine
    try:
        wait_until(lambda: held_by(engine, first)["slots"] == 2, 20, first)
        orphans = kill_and_time(engine, sandbox, first, second)
        wait_until(lambda: all(event(app, i)["status"] == "delivered" for i in ids), 60, second)
    finally:
        first.kill()
        second.kill()
    # A killed process's last calls may still be running at wolkvox when its slots are taken
    # over (nothing can stop them there): at most those, above the limit, and wolkvox's
    # refusal of an extra call is retried in 1.5 s without counting as a failed attempt.
    assert sandbox.stats()["max_asked"][SANDBOX_TOKEN] <= 2 + orphans
    assert all(event(app, i)["attempts"] == 0 for i in ids)


def test_a_killed_web_worker_gives_back_its_slots_and_claims_within_5_s(
        make_app, sandbox, database_url, tmp_path):
    """gunicorn's workers deliver too (DELIVERY_WORKER's default): one killed (the OOM killer)
    while it holds a slot frees it as a deliver process would; gunicorn starts another."""
    app = make_app()
    ids = receive(app, *[zap(lead=n) for n in range(80)])
    sandbox.configure(latency=LATENCY)
    engine = bridge_of(app).store.engine
    web, _ = gunicorn(environment(app, sandbox, database_url), tmp_path / "web.log")
    try:
        wait_until(lambda: slot_holders(engine), 30, web)
        victim = min(slot_holders(engine))
        assert held_by(engine, victim)["slots"] >= 1
        orphans = kill_and_time(engine, sandbox, victim, web)  # gunicorn reaps it
        wait_until(lambda: all(event(app, i)["status"] == "delivered" for i in ids), 60, web)
    finally:
        web.kill()
    assert sandbox.stats()["max_asked"][SANDBOX_TOKEN] <= 2 + orphans
    assert all(event(app, i)["attempts"] == 0 for i in ids)


def test_a_paused_deliver_process_is_never_overtaken_and_carries_on_when_resumed(
        make_app, sandbox, database_url, tmp_path):
    app, ids, first, second = start_pair(make_app, sandbox, database_url, tmp_path)
    engine = bridge_of(app).store.engine
    try:
        wait_until(lambda: held_by(engine, first)["slots"] >= 1, 20, first)
        os.killpg(first.popen.pid, signal.SIGSTOP)
        paused = held_by(engine, first)
        time.sleep(8)  # far past its 3 s leases
        assert held_by(engine, first) == paused  # nothing of a live process is taken
        assert sandbox.stats()["max_asked"][SANDBOX_TOKEN] <= 2
        os.killpg(first.popen.pid, signal.SIGCONT)
        wait_until(lambda: all(event(app, i)["status"] == "delivered" for i in ids), 90, first)
    finally:
        first.kill()
        second.kill()
    assert sandbox.stats()["max_asked"][SANDBOX_TOKEN] <= 2
    assert all(event(app, i)["attempts"] == 0 for i in ids)


@pytest.mark.parametrize("database_url", [pytest.param("postgresql", marks=pytest.mark.postgres)],
                         indirect=True)
def test_a_deliver_process_cut_off_from_postgres_stops_calling_before_its_slots_move(
        make_app, sandbox, database_url, tmp_path):
    app, ids, first, second = start_pair(make_app, sandbox, database_url, tmp_path)
    engine = bridge_of(app).store.engine
    wait_until(lambda: held_by(engine, first)["slots"] >= 1, 20, first)
    engine = sa.create_engine(database_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            cut = connection.execute(sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name LIKE :name"),
                {"name": f"recall-bridge life %:{first.popen.pid}:%"}).all()
        assert cut == [(True,)]
        wait_until(lambda: "leases not renewed" in first.output(), 10)  # within ~2 s
        wait_until(lambda: all(event(app, i)["status"] == "delivered" for i in ids), 90, second)
    finally:
        engine.dispose()
        first.kill()
        second.kill()
    assert sandbox.stats()["max_asked"][SANDBOX_TOKEN] <= 2
