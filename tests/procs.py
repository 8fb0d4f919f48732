"""Real processes for the multi-process suites and benchmarks: gunicorn and `flask deliver`."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import requests
import sqlalchemy as sa

from webhooks.store.holders import HOST

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Proc:
    """A child process with its output in a file, killed at the end of the test."""

    def __init__(self, args: list[str], env: Mapping[str, str], log: Path):
        self.log = log
        self.handle = log.open("wb")
        self.popen = subprocess.Popen(args, cwd=ROOT, env={**os.environ, **env},
                                      stdout=self.handle, stderr=subprocess.STDOUT,
                                      start_new_session=True)

    def output(self) -> str:
        if not self.handle.closed:
            self.handle.flush()
        return self.log.read_text(errors="replace")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, sig)
            self.popen.wait(20)
        self.handle.close()


def gunicorn(env: Mapping[str, str], log: Path, port: int | None = None,
             app: str = "wsgi:app") -> tuple[Proc, str]:
    """Start gunicorn (the shipped settings) serving `app` on a free port and wait until
    /healthz answers; (proc, base url)."""
    port = port or free_port()
    proc = Proc([str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", app],
                {"PORT": str(port), "HOST": "127.0.0.1", **env}, log)
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: _answers(url + "/healthz"), 30, proc)
    return proc, url


def deliver(env: Mapping[str, str], log: Path, threads: int = 2) -> Proc:
    return Proc([str(BIN / "flask"), "--app", "wsgi", "deliver", "--threads", str(threads)],
                env, log)


def wait_until(condition, timeout: float, proc: Proc | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if proc is not None and proc.popen.poll() is not None:
            raise AssertionError(f"process exited early:\n{proc.output()[-3000:]}")
        time.sleep(0.05)
    raise AssertionError("timed out" + (f":\n{proc.output()[-3000:]}" if proc else ""))


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code == 200
    except requests.RequestException:
        return False


def held_by(engine: sa.Engine, proc: Proc | int) -> dict[str, int]:
    """Slots and `sending` events whose holder is `proc`, or the process of that pid
    (host:pid:start/thread)."""
    pattern = f"{HOST}:{proc if isinstance(proc, int) else proc.popen.pid}:%"
    with engine.connect() as connection:
        slots = connection.execute(sa.text(
            "SELECT count(*) FROM slots WHERE holder LIKE :p"), {"p": pattern}).scalar()
        claims = connection.execute(sa.text(
            "SELECT count(*) FROM events WHERE status = 'sending' AND holder LIKE :p"),
            {"p": pattern}).scalar()
    return {"slots": slots, "claims": claims}


def slot_holders(engine: sa.Engine) -> set[int]:
    """The pids of this host's processes that hold a slot now."""
    with engine.connect() as connection:
        holders = connection.execute(sa.text(
            "SELECT holder FROM slots WHERE holder LIKE :p"), {"p": f"{HOST}:%"}).scalars()
        return {int(holder.split(":")[1]) for holder in holders}
