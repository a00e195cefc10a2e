"""gunicorn's access log (with the project's gunicorn.conf.py) holds no private-link tokens,
reset tokens or search terms: a real gunicorn serves the app and its log is read."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from booking.accesslog import redact_path
from tests.smtp import free_port
from tests.support import wait_until

ROOT = Path(__file__).resolve().parent.parent
SECRETS = ["tok3n-of-the-patient", "reset-t0ken-of-staff", "Mustermann", "offer-t0ken"]


def test_redact_path() -> None:
    assert redact_path("/manage/SC-1/abc/reschedule?x=1") == "/manage/SC-1/[redacted]/reschedule"
    assert redact_path("/manage/SC-1/abc/offers/def") == "/manage/SC-1/[redacted]/offers/[redacted]"
    assert redact_path("/staff/password/reset/xyz") == "/staff/password/reset/[redacted]"
    assert redact_path("/staff/requests/SC-1?q=name") == "/staff/requests/SC-1"


@pytest.mark.slow
def test_gunicorn_access_log_has_no_tokens_or_search_terms(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "SPINECONSULT_ENV": "development",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'empty.sqlite3'}",
        "HUEY_SQLITE_PATH": str(tmp_path / "huey.sqlite3"),
        "UPLOAD_DIR": str(tmp_path / "uploads"),
        "REDIS_URL": "",
    }
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
            "wsgi:app",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    paths = [
        "/manage/SC-2026-ABCD/tok3n-of-the-patient/reschedule",
        "/manage/SC-2026-ABCD/tok3n-of-the-patient/offers/offer-t0ken",
        "/staff/password/reset/reset-t0ken-of-staff",
        "/staff/?q=Mustermann",
        "/info/privacy?lang=es",
    ]
    try:

        def listening() -> bool:
            assert server.poll() is None, "the server exited"
            try:
                with urllib.request.urlopen(base + "/robots.txt", timeout=5):  # noqa: S310
                    return True
            except OSError:  # not listening yet (URLError, refused, timed out)
                return False

        wait_until(listening, "the server to listen")
        for path in paths:
            try:
                with urllib.request.urlopen(base + path, timeout=30):  # noqa: S310 - local
                    pass
            except urllib.error.HTTPError as error:
                error.close()  # the status does not matter here, only what is logged
    finally:
        server.terminate()
        log = server.communicate(timeout=30)[0].decode(errors="replace")
    assert log.count('"GET /manage/SC-2026-ABCD/[redacted]/reschedule HTTP/1.1"') == 1, log
    assert "/offers/[redacted]" in log
    assert '"GET /staff/password/reset/[redacted] HTTP/1.1"' in log
    assert '"GET /staff/ HTTP/1.1"' in log
    assert " req=" in log and "req=-" not in log.split("robots.txt")[-1]
    for secret in SECRETS:
        assert secret not in log
