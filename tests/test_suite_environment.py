"""The suite does not depend on the shell it runs in: settings a developer exported (for
``make run``, another project, a clinic of their own) do not reach the apps under test."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from flask import Flask

ROOT = Path(__file__).resolve().parent.parent

# Settings a shell could hold, each of which the suite's expectations contradict.
EXPORTED = {
    "CLINIC_TIMEZONE": "America/Los_Angeles",
    "CLINIC_HOLIDAYS": "US-CA",
    "MAIL_SERVER": "smtp.clinic.example",
    "MAIL_PORT": "587",
    "MAIL_USERNAME": "clinic",
    "FLASK_DEBUG": "1",
    # Production's, which the production suite's deployment (tests/production) leaves at
    # their defaults: HTTPS, admins' second factor, rate limits in Redis.
    "FORCE_HTTPS": "0",
    "STAFF_2FA_REQUIRED_ROLES": "coordinator",
    "RATELIMIT_STORAGE_URI": "memory://",
}
# One of the suite's own inputs (README, "Two commands"): it stays.
REDIS_URL = "redis://127.0.0.1:1/15"


def test_the_app_under_test_has_the_suites_settings(app: Flask) -> None:
    """The settings the suite is written for, whatever the shell exports (the next test runs
    this one with other values exported)."""
    assert app.config["CLINIC_TIMEZONE"] == "Europe/Berlin"
    assert app.config["CLINIC_HOLIDAYS"] == ""
    # Mail goes to the tests' own servers only (nothing listens on port 1).
    assert (app.config["MAIL_SERVER"], app.config["MAIL_PORT"]) == ("127.0.0.1", 1)
    assert app.config["MAIL_USERNAME"] is None
    assert not app.debug
    # Nor do the processes the tests start (a worker, gunicorn, make): they inherit this
    # environment.
    assert not set(EXPORTED) & set(os.environ)
    # The suite's own inputs are left for it (the next test checks what it read).
    print(f"REDIS_URL={os.environ.get('REDIS_URL', '')}")


def test_settings_exported_in_the_shell_do_not_reach_the_tests(tmp_path: Path) -> None:
    """A real pytest run, so the settings must be gone before pytest's plugins and the
    conftest's imports read config.py. Without that, ``CLINIC_TIMEZONE=America/Los_Angeles``
    alone failed 80 tests of test_availability, test_outcomes and test_workflow."""
    test = f"{Path(__file__).relative_to(ROOT)}::test_the_app_under_test_has_the_suites_settings"
    options = ["-p", "no:randomly", "-p", "no:cacheprovider", "-s", "-q"]
    # Not the plugins of the property and browser tests, which import nothing of the project:
    # Hypothesis's alone takes a second to import, a third of this run (the others stay).
    options += ["-p", "no:hypothesispytest", "-p", "no:playwright"]
    ran = subprocess.run(
        [sys.executable, "-m", "pytest", test, *options, "--basetemp", str(tmp_path / "pytest")],
        cwd=ROOT,
        env={**os.environ, **EXPORTED, "REDIS_URL": REDIS_URL},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ran.returncode == 0, ran.stdout[-4000:] + ran.stderr[-2000:]
    assert " passed" in ran.stdout and " failed" not in ran.stdout, ran.stdout[-4000:]
    assert f"REDIS_URL={REDIS_URL}" in ran.stdout, ran.stdout[-4000:]
