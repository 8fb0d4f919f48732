"""The README's `make test` on a fresh machine: what it cannot find is skipped with the fix named,
and in CI (CI=true) fails instead. Each check runs pytest in a child process, as make does."""

from __future__ import annotations

import os
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


@pytest.fixture
def no_chromium(tmp_path: Path) -> str:
    return str(tmp_path / "nowhere" / "chromium")


def test_without_chromium_the_browser_suite_is_skipped_naming_the_fix(tmp_path, no_chromium):
    result = pytest_run(tmp_path, BROWSER_SUITE, TEST_CHROMIUM=no_chromium)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 skipped" in result.stdout
    assert f"needs Chromium at {no_chromium}" in result.stdout
    assert "apt-get install chromium" in result.stdout and "TEST_CHROMIUM" in result.stdout


def test_ci_false_is_a_developers_machine_too(tmp_path, no_chromium):
    result = pytest_run(tmp_path, BROWSER_SUITE, TEST_CHROMIUM=no_chromium, CI="false")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 skipped" in result.stdout


def test_in_ci_a_missing_chromium_fails_the_browser_suite(tmp_path, no_chromium):
    result = pytest_run(tmp_path, BROWSER_SUITE, TEST_CHROMIUM=no_chromium, CI="true")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "skipped" not in result.stdout
    assert f"{no_chromium} is missing and CI runs the browser suite" in result.stdout
    assert ".ci/run installs it" in result.stdout
