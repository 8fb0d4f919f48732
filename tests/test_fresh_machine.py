"""The README's `make test` on a fresh machine: what it cannot find is skipped with the fix named,
and in CI (CI=true) fails instead. Each check runs pytest in a child process, as make does."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

BROWSER_SUITE = "tests/test_console_browser.py"


def pytest_run(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """pytest in a child process from the project root, CI unset unless `env` sets it."""
    environ = {name: value for name, value in os.environ.items()
               if name not in ("CI", "TEST_CHROMIUM")}
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rs",
                           "-q", *args], cwd=ROOT, env={**environ, **env}, capture_output=True,
                          text=True, timeout=300)


def only_skips(stdout: str) -> bool:
    """pytest's summary line says every test of the run was skipped, and nothing else."""
    summaries = re.findall(r"^=*\s*(.+?) in [\d.]+s", stdout, re.MULTILINE)
    return bool(summaries) and re.fullmatch(r"\d+ skipped", summaries[-1]) is not None


@pytest.fixture
def no_chromium(tmp_path: Path) -> str:
    return str(tmp_path / "nowhere" / "chromium")


def test_without_chromium_the_browser_suite_is_skipped_naming_the_fix(tmp_path, no_chromium):
    result = pytest_run(tmp_path, BROWSER_SUITE, TEST_CHROMIUM=no_chromium)
    assert result.returncode == 0, result.stdout + result.stderr
    assert only_skips(result.stdout)
    assert f"needs Chromium at {no_chromium}" in result.stdout
    assert "apt-get install chromium" in result.stdout and "TEST_CHROMIUM" in result.stdout


def test_ci_false_is_a_developers_machine_too(tmp_path, no_chromium):
    result = pytest_run(tmp_path, BROWSER_SUITE, TEST_CHROMIUM=no_chromium, CI="false")
    assert result.returncode == 0, result.stdout + result.stderr
    assert only_skips(result.stdout)


def test_in_ci_a_missing_chromium_fails_the_browser_suite(tmp_path, no_chromium):
    result = pytest_run(tmp_path, BROWSER_SUITE, TEST_CHROMIUM=no_chromium, CI="true")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "skipped" not in result.stdout
    assert f"{no_chromium} is missing and CI runs the browser suite" in result.stdout
    assert ".ci/run installs it" in result.stdout


def test_without_the_systems_time_zones_the_suite_runs_on_the_pinned_tzdata(tmp_path):
    """A slim image or PaaS with no /usr/share/zoneinfo: requirements.txt's tzdata answers
    (before it, collection stopped with ZoneInfoNotFoundError tracebacks)."""
    empty = tmp_path / "zoneinfo"
    empty.mkdir()
    result = pytest_run(tmp_path, "tests/test_calling_windows.py", "-m", "not postgres",
                        PYTHONTZPATH=str(empty))
    assert result.returncode == 0, result.stdout + result.stderr
    assert " passed" in result.stdout
    assert "ZoneInfoNotFoundError" not in result.stdout + result.stderr


# A guard, not a new behaviour: a PostgreSQL that does not answer skips its variants outside CI.
PG_TEST = "tests/test_calling_windows.py::test_store_keeps_when_each_delivered_recall_rings"
NO_POSTGRES = "postgresql://postgres@127.0.0.1:1/test"  # port 1: refused at once


def test_without_postgresql_its_variants_are_skipped_outside_ci_and_fail_in_ci(tmp_path):
    result = pytest_run(tmp_path, PG_TEST, TEST_DATABASE_URL=NO_POSTGRES)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed, 1 skipped" in result.stdout
    assert "PostgreSQL not reachable (set TEST_DATABASE_URL)" in result.stdout
    result = pytest_run(tmp_path, PG_TEST, TEST_DATABASE_URL=NO_POSTGRES, CI="true")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "PostgreSQL is required in CI" in result.stdout
