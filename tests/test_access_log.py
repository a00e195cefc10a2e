"""gunicorn's access log (with the project's gunicorn.conf.py) holds no private-link tokens,
reset tokens or search terms: a real gunicorn serves the app and its log is read."""

from __future__ import annotations

import contextlib
import logging
import secrets
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from flask import Flask
from werkzeug.routing import AnyConverter, Rule
from werkzeug.serving import make_server

from booking import create_app
from booking.accesslog import redact_path, redact_text
from booking.crypto import new_key
from tests.smtp import free_port
from tests.support import files_environment, wait_until

ROOT = Path(__file__).resolve().parent.parent
SECRETS = ["tok3n-of-the-patient", "reset-t0ken-of-staff", "Mustermann", "offer-t0ken"]


def test_redact_path() -> None:
    assert redact_path("/manage/SC-1/abc/reschedule?x=1") == "/manage/SC-1/[redacted]/reschedule"
    assert redact_path("/manage/SC-1/abc/offers/def") == "/manage/SC-1/[redacted]/offers/[redacted]"
    assert redact_path("/staff/password/reset/xyz") == "/staff/password/reset/[redacted]"
    assert redact_path("/staff/requests/SC-1?q=name") == "/staff/requests/SC-1"


def _example_path(rule: Rule, secret: str) -> str:
    """``rule``'s address with ``secret`` for every token and a plain value for the rest."""
    values: dict[str, object] = {}
    for name in rule.arguments:
        if "token" in name:
            # A signed token is three dot-separated parts (the older manage links).
            values[name] = (
                f"{secret}.{secret}.{secret}"
                if name == "token" and ("<signed:" in rule.rule)
                else secret
            )
        elif f"<int:{name}>" in rule.rule:
            values[name] = 7
        elif isinstance(rule._converters.get(name), AnyConverter):  # one of a few actions
            values[name] = min(rule._converters[name].items)
        else:
            values[name] = "SC-2026-ABCD" if name == "reference" else "x"
    return rule.build(values, append_unknown=False)[1]


def test_every_address_with_a_token_is_redacted_and_page_names_are_kept() -> None:
    """Each route of the app with a token in its address (the private, resume, follow-up and
    reset links, an offer): the token appears in no log line; the other addresses of the
    patient's pages keep their page names, so the log still says what was asked for."""
    app = create_app({"SQLALCHEMY_DATABASE_URI": "sqlite://"})
    secret = "S3cretT0ken"
    with_tokens = 0
    for rule in app.url_map.iter_rules():
        path = _example_path(rule, secret)
        redacted = redact_path(path + "?q=Mustermann")
        assert "Mustermann" not in redacted
        if any("token" in name for name in rule.arguments):
            with_tokens += 1
            assert secret not in redacted, rule.rule
            assert secret not in redact_text(f"Error handling request GET {path}"), rule.rule
        else:
            assert redacted == path, rule.rule
    assert (
        with_tokens >= 8
    )  # manage (new and older, each with an offer), resume, follow-up x2, reset


@pytest.mark.slow
def test_gunicorn_access_log_has_no_tokens_or_search_terms(tmp_path: Path) -> None:
    port = free_port()
    env = files_environment(tmp_path, "empty.sqlite3")
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


def test_redact_text_finds_paths_anywhere() -> None:
    text = "Error handling request GET /manage/open/abc\nException on /request/resume/xyz [GET]"
    assert redact_text(text) == (
        "Error handling request GET /manage/open/[redacted]\n"
        "Exception on /request/resume/[redacted] [GET]"
    )


def test_redact_text_finds_full_links_in_emails() -> None:
    """What the outbox keeps of a delivered email (booking.notifications): its links as full
    addresses, in plain text and in HTML attributes, with each token replaced."""
    site = "https://clinic.example:8443"
    links = {
        f"{site}/manage/open/AbC-_1": f"{site}/manage/open/[redacted]",
        f"{site}/manage/open/AbC-_1/offers/oF-2": (
            f"{site}/manage/open/[redacted]/offers/[redacted]"
        ),
        f"{site}/request/resume/rE_3": f"{site}/request/resume/[redacted]",
        f"{site}/follow-up/open/fU-4": f"{site}/follow-up/open/[redacted]",
        f"{site}/follow-up/open/fU-4/stop": f"{site}/follow-up/open/[redacted]/stop",
        f"{site}/staff/password/reset/a.b-c": f"{site}/staff/password/reset/[redacted]",
        f"{site}/manage/SC-AB12-CD34/si.gned": f"{site}/manage/SC-AB12-CD34/[redacted]",
    }
    for link, kept in links.items():
        assert redact_text(f"Your private link:\n{link}\n") == f"Your private link:\n{kept}\n"
        html = f"<p><a href=\"{link}\">Open</a><br>{link}</p><a href='{link}'>x</a>"
        assert (
            redact_text(html)
            == f"<p><a href=\"{kept}\">Open</a><br>{kept}</p><a href='{kept}'>x</a>"
        )
    # Addresses without a token are left as they are.
    plain = f"{site}/staff/requests/SC-AB12-CD34 and {site}/manage/SC-AB12-CD34/cancel"
    assert redact_text(plain) == plain


@pytest.mark.slow
def test_no_token_in_any_log_after_errors_on_secret_addresses(tmp_path: Path) -> None:
    """Errors on a private link's and an unfinished request's addresses, under a real
    gunicorn: its error log (the request line and the traceback), its access log and the
    app's log name the pages without their tokens."""
    port = free_port()
    # Production settings: errors are handled and logged by the app (development's debug
    # mode would let them all escape to gunicorn).
    env = files_environment(
        tmp_path,
        "empty.sqlite3",
        SPINECONSULT_ENV="production",
        SECRET_KEY=secrets.token_hex(32),
        ENCRYPTION_KEY=new_key(),
        FORCE_HTTPS="false",
        STAFF_NOTIFICATION_EMAIL="coordinators@clinic.example",
        ALLOW_SQLITE_IN_PRODUCTION="1",
    )
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
            "tests.fault_wsgi:app",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    tokens = ["Open-t0ken-of-the-patient", "Legacy-t0ken-of-the-patient", "Resume-t0ken-x"]
    paths = [
        f"/manage/open/{tokens[0]}",
        f"/manage/SC-2026-ABCD/{tokens[1]}/cancel",
        f"/request/resume/{tokens[2]}",
    ]
    statuses = []
    try:

        def listening() -> bool:
            assert server.poll() is None, "the server exited"
            try:
                with urllib.request.urlopen(base + "/robots.txt", timeout=5):  # noqa: S310
                    return True
            except OSError:
                return False

        wait_until(listening, "the server to listen")
        for path in paths:
            try:
                with urllib.request.urlopen(base + path, timeout=30) as response:  # noqa: S310
                    statuses.append(response.status)
            except urllib.error.HTTPError as error:
                statuses.append(error.code)
                error.close()
    finally:
        server.terminate()
        log = server.communicate(timeout=30)[0].decode(errors="replace")
    assert statuses == [500, 500, 500], statuses
    # The faults were reached and logged: gunicorn's error log, its traceback, the app's log.
    assert "Error handling request GET /manage/open/[redacted]" in log, log
    assert "Error handling request GET /manage/SC-2026-ABCD/[redacted]/cancel" in log, log
    assert "RuntimeError: fault injected on /manage/open/[redacted]" in log, log
    assert "Exception on /request/resume/[redacted] [GET]" in log, log
    for token in tokens:
        assert token not in log, log


def test_the_development_servers_access_lines_have_no_tokens_or_search_terms(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    """make run serves with Werkzeug's development server, whose access lines quote each
    request's whole address."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    caplog.set_level(logging.INFO, logger="werkzeug")
    base = f"http://127.0.0.1:{server.server_port}"
    try:
        for path in [
            f"/manage/open/{SECRETS[0]}",
            f"/staff/password/reset/{SECRETS[1]}",
            "/staff/?q=Mustermann",
        ]:
            with contextlib.suppress(urllib.error.HTTPError):
                urllib.request.urlopen(base + path, timeout=10).close()  # noqa: S310
    finally:
        server.shutdown()
        thread.join(timeout=10)
    lines = [r.getMessage() for r in caplog.records if r.name == "werkzeug"]
    text = "\n".join(lines)
    assert "/manage/open/[redacted]" in text
    assert "/staff/password/reset/[redacted]" in text
    assert "/staff/?[redacted]" in text
    for secret in SECRETS:
        assert secret not in text, f"{secret!r} appeared in the development server's log"
