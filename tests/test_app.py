"""The application shell: settings, error pages, the development mail viewer, the CLI."""

from __future__ import annotations

import json
import mailbox
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from email_validator import EmailNotValidError
from flask import Flask
from sqlalchemy import delete, func, select

import config
from booking import create_app
from booking.extensions import db
from booking.notifications.models import OutboxEmail, OutboxStatus
from booking.requests.models import ConsultationRequest
from tests.factories import make_request
from tests.smtp import free_port
from tests.support import booking_warnings, send_each_waiting_email


def test_production_refuses_to_start_without_a_secret_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(config.ProductionConfig, "SECRET_KEY", None)
    with pytest.raises(RuntimeError, match="SECRET_KEY is not set"):
        create_app("production")


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("SECRET_KEY", config.DEVELOPMENT_SECRET_KEY, "SECRET_KEY is a value published"),
        ("SECRET_KEY", config.TESTING_SECRET_KEY, "SECRET_KEY is a value published"),
        ("SECRET_KEY", "s" * 31, r"SECRET_KEY is too short \(31 characters\)"),
        ("ENCRYPTION_KEY", config.DEVELOPMENT_ENCRYPTION_KEY, "ENCRYPTION_KEY is a key published"),
        ("ENCRYPTION_KEY", config.TESTING_ENCRYPTION_KEY, "ENCRYPTION_KEY is a key published"),
        # The same key written with a stray space around it is still the published key.
        ("ENCRYPTION_KEY", f" {config.DEVELOPMENT_ENCRYPTION_KEY}\n", "ENCRYPTION_KEY is a key"),
    ],
)
def test_production_refuses_to_start_with_a_published_or_short_key(
    monkeypatch: pytest.MonkeyPatch, production_config: type, setting: str, value: str, message: str
) -> None:
    """The keys in config.py are public: with one, anyone could forge a session or an older
    signed manage link, or read the documents."""
    monkeypatch.setattr(production_config, setting, value)
    with pytest.raises(RuntimeError, match=message):
        create_app("production")


def test_production_starts_with_keys_of_its_own_and_development_with_the_published_ones(
    production_config: type,
    app_settings: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    production = create_app("production")
    assert production.config["SECRET_KEY"] not in config.PUBLISHED_SECRET_KEYS
    # Development and the tests keep theirs: only production checks. The development app's
    # database and queue file in the test's folder, not in the instance/ `make run` uses.
    monkeypatch.setattr(
        config.DevelopmentConfig, "SQLALCHEMY_DATABASE_URI", app_settings["SQLALCHEMY_DATABASE_URI"]
    )
    monkeypatch.setattr(config.DevelopmentConfig, "HUEY_BACKEND", "sqlite")  # REDIS_URL unset
    monkeypatch.setattr(
        config.DevelopmentConfig, "HUEY_SQLITE_PATH", str(tmp_path / "development-huey.sqlite3")
    )
    development = create_app("development")
    assert Path(development.extensions["huey"].storage.filename).is_relative_to(tmp_path)
    assert development.config["SECRET_KEY"] == config.DEVELOPMENT_SECRET_KEY
    assert development.config["ENCRYPTION_KEY"] == config.DEVELOPMENT_ENCRYPTION_KEY


def test_production_warns_of_per_process_rate_limits_and_a_plain_http_site(
    monkeypatch: pytest.MonkeyPatch, production_config: type, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(production_config, "RATELIMIT_STORAGE_URI", "memory://")
    monkeypatch.setattr(production_config, "HUEY_BACKEND", "sqlite")  # REDIS_URL unset
    monkeypatch.setattr(production_config, "PUBLIC_BASE_URL", "http://clinic.example")
    # The variable and the setting read from it (config.py reads the environment at import).
    monkeypatch.delenv("EMERGENCY_NUMBER", raising=False)
    monkeypatch.setattr(production_config, "EMERGENCY_NUMBER_SET", False)
    monkeypatch.setattr(production_config, "ON_CALL_EMAIL", None)
    monkeypatch.setattr(production_config, "CLINIC_PHONE", "")
    monkeypatch.setattr(production_config, "CLINIC_TIMEZONE_SET", False)
    monkeypatch.setattr(production_config, "CLINIC_HOLIDAYS", "")
    with booking_warnings(caplog):
        create_app("production")
    assert "EMERGENCY_NUMBER is not set: patients with urgent symptoms are told to call 112" in (
        caplog.text
    )
    # What safety texts and the call-back clock rest on, left at a default.
    assert "CLINIC_PHONE is not set" in caplog.text
    assert "CLINIC_TIMEZONE is not set: every time is shown and counted in Europe/Berlin" in (
        caplog.text
    )
    assert "CLINIC_HOLIDAYS is empty" in caplog.text
    assert "ON_CALL_EMAIL is not set" in caplog.text
    assert "rate limits are counted in each server process's memory" in caplog.text
    assert "PUBLIC_BASE_URL is not an https:// address" in caplog.text
    assert "the task queue is a SQLite file on this machine" in caplog.text
    caplog.clear()
    # Redis for the counts, the site on https: nothing to say.
    monkeypatch.setattr(production_config, "RATELIMIT_STORAGE_URI", "redis://127.0.0.1:1/0")
    monkeypatch.setattr(production_config, "HUEY_BACKEND", "redis")
    monkeypatch.setattr(production_config, "REDIS_URL", "redis://127.0.0.1:1/0")
    monkeypatch.setattr(production_config, "PUBLIC_BASE_URL", "https://clinic.example")
    monkeypatch.setenv("EMERGENCY_NUMBER", "112")
    monkeypatch.setattr(production_config, "EMERGENCY_NUMBER_SET", True)
    monkeypatch.setattr(production_config, "ON_CALL_EMAIL", "on-call@clinic.example")
    monkeypatch.setattr(production_config, "CLINIC_PHONE", "+49 30 5550 1234")
    monkeypatch.setattr(production_config, "CLINIC_TIMEZONE_SET", True)
    monkeypatch.setattr(production_config, "CLINIC_HOLIDAYS", "DE-BE")
    with booking_warnings(caplog):
        create_app("production")
    assert "EMERGENCY_NUMBER" not in caplog.text and "ON_CALL_EMAIL" not in caplog.text
    assert "CLINIC_" not in caplog.text
    assert "rate limits are counted" not in caplog.text
    assert "PUBLIC_BASE_URL" not in caplog.text
    assert "MAIL_DEFAULT_SENDER" not in caplog.text
    assert "task queue" not in caplog.text


def test_production_refuses_to_start_without_the_clinics_alert_address(
    monkeypatch: pytest.MonkeyPatch, production_config: type, caplog: pytest.LogCaptureFixture
) -> None:
    """New, urgent and emergency requests are emailed to STAFF_NOTIFICATION_EMAIL: production
    has no example address to fall back on, so a forgotten setting cannot lose them."""
    for unset in (None, "", "  "):
        monkeypatch.setattr(production_config, "STAFF_NOTIFICATION_EMAIL", unset)
        with pytest.raises(RuntimeError, match="STAFF_NOTIFICATION_EMAIL is not set"):
            create_app("production")
    monkeypatch.setattr(production_config, "STAFF_NOTIFICATION_EMAIL", "team@clinic.example")
    monkeypatch.setattr(production_config, "MAIL_DEFAULT_SENDER", None)
    with booking_warnings(caplog):
        create_app("production")  # the sender is only warned of: mail still goes out
    assert "MAIL_DEFAULT_SENDER is not set, or is at the example address" in caplog.text
    # The clinic's name over the example address: the name its emails are signed with.
    assert "would come from SpineConsult Clinic <no-reply@example.com>" in caplog.text
    # Set, but to the example address (copied from the README): warned of the same.
    caplog.clear()
    monkeypatch.setattr(production_config, "MAIL_DEFAULT_SENDER", "Clinic <no-reply@example.com>")
    with booking_warnings(caplog):
        create_app("production")
    assert "would come from Clinic <no-reply@example.com>" in caplog.text


@pytest.mark.parametrize("setting", ["MAIL_DEFAULT_SENDER", "MAIL_REPLY_TO"])
def test_a_sender_set_by_hand_that_is_not_one_address_is_refused(
    monkeypatch: pytest.MonkeyPatch,
    production_config: type,
    app_settings: dict[str, Any],
    setting: str,
) -> None:
    """A name with a comma and no quotes reads as two addresses ("Klinik X" and "Orthopädie
    <praxis@...>"): every email would carry two senders, or a Reply-To to no address. Refused
    at start-up in every environment, as any malformed setting, saying how to write it; the
    name in double quotes, as email writes it, is one address and starts."""
    bare = "Klinik X, Orthopädie <praxis@klinik.example>"
    refused = rf"{setting} must be one email address, but '{bare}' "
    monkeypatch.setattr(production_config, setting, bare)
    with pytest.raises(RuntimeError, match=refused) as error:
        create_app("production")
    assert '"Klinik X, Orthopädie" <praxis@klinik.example>' in str(error.value)  # the fix
    with pytest.raises(RuntimeError, match=refused):
        create_app({**app_settings, setting: bare})
    # Two addresses, or a name with no address at all: the same mistake.
    for wrong in ("praxis@klinik.example, empfang@klinik.example", "Klinik X"):
        with pytest.raises(RuntimeError, match=rf"{setting} must be one email address"):
            create_app({**app_settings, setting: wrong})

    quoted = '"Klinik X, Orthopädie" <praxis@klinik.example>'
    monkeypatch.setattr(production_config, setting, quoted)
    assert create_app("production").config[setting] == quoted
    assert create_app({**app_settings, setting: "praxis@klinik.example"}).config[setting] == (
        "praxis@klinik.example"
    )


@pytest.mark.parametrize(
    "setting", ["STAFF_NOTIFICATION_EMAIL", "ON_CALL_EMAIL", "PRIVACY_CONTACT_EMAIL"]
)
def test_a_clinic_address_that_is_not_one_valid_address_is_refused(
    monkeypatch: pytest.MonkeyPatch,
    production_config: type,
    app_settings: dict[str, Any],
    setting: str,
) -> None:
    """The clinic's own addresses are checked as the senders are: a typo in ON_CALL_EMAIL
    (no domain's dot, two addresses with a comma) would send every escalation of an
    emergency to nobody, each email failing only when the worker tried it. Refused at
    start-up in every environment, naming the setting; a valid address (with or without a
    name) starts, and an optional one may stay unset."""
    for wrong, why in (
        ("on-call@clinic", "is no valid address"),
        ("on call@clinic.example", "is no valid address"),
        ("josé@clinic.example", "is no valid address"),
        ("team", "holds no address"),
        ("a@clinic.example, b@clinic.example", "reads as 2 addresses"),
    ):
        refused = rf"{setting} must be one email address, but '{wrong}' {why}"
        monkeypatch.setattr(production_config, setting, wrong)
        with pytest.raises(RuntimeError, match=refused) as error:
            create_app("production")
        assert "shared mailbox" in str(error.value)  # the fix for two addresses
        with pytest.raises(RuntimeError, match=refused):
            create_app({**app_settings, setting: wrong})

    for good in ("team@clinic.example", '"Klinik X, Team" <team@clinic.example>'):
        monkeypatch.setattr(production_config, setting, good)
        assert create_app("production").config[setting] == good
        assert create_app({**app_settings, setting: good}).config[setting] == good
    if setting != "STAFF_NOTIFICATION_EMAIL":  # production requires that one
        monkeypatch.setattr(production_config, setting, None)
        assert create_app("production").config[setting] is None


@pytest.mark.parametrize(
    "address",
    [
        "team@clinic.example",
        "on-call@clinic",
        "on call@clinic.example",
        "josé@clinic.example",
        "team@clínica.example",
        "no-reply@localhost",
        "team@clinic..example",
        ".team@clinic.example",
        "team@clinic.test",
    ],
)
def test_a_clinic_address_is_read_by_the_forms_own_rule(
    monkeypatch: pytest.MonkeyPatch, app_settings: dict[str, Any], address: str
) -> None:
    """Start-up and the forms read an address by one rule (``check_email_address``), so they
    cannot drift apart: an address a form refuses is refused as a setting, and one a form
    takes starts. Were the rule made stricter (here: one more domain refused), both would
    follow it."""
    from wtforms.validators import ValidationError

    from booking import forms

    def form_takes(address: str) -> bool:
        with create_app(app_settings).test_request_context():
            try:
                forms.EmailAddress("refused").check(address)
            except ValidationError:
                return False
            return True

    def starts_with(address: str) -> bool:
        try:
            create_app({**app_settings, "ON_CALL_EMAIL": address})
        except RuntimeError as error:
            assert f"ON_CALL_EMAIL must be one email address, but '{address}'" in str(error)
            return False
        return True

    assert starts_with(address) == form_takes(address)

    rule = forms.check_email_address

    def stricter(address: str) -> None:
        if address.endswith("@clinic.example"):
            raise EmailNotValidError("This domain is refused now.")
        rule(address)

    monkeypatch.setattr(forms, "check_email_address", stricter)
    assert starts_with(address) == form_takes(address)
    if address.endswith("@clinic.example"):
        assert not form_takes(address)


def test_production_refuses_a_sqlite_database_unless_it_is_allowed(
    monkeypatch: pytest.MonkeyPatch, production_config: type, tmp_path: Path
) -> None:
    """DATABASE_URL unset means a SQLite file in instance/: production refuses it, naming
    both settings, so a forgotten DATABASE_URL cannot put the patients' data in a file
    outside the PostgreSQL backups. A single-machine install allows it on purpose."""
    sqlite_file = f"sqlite:///{tmp_path / 'spineconsult.sqlite3'}"
    monkeypatch.setattr(production_config, "SQLALCHEMY_DATABASE_URI", sqlite_file)
    monkeypatch.setattr(production_config, "ALLOW_SQLITE_IN_PRODUCTION", False)
    with pytest.raises(RuntimeError, match="DATABASE_URL is a SQLite database") as refused:
        create_app("production")
    assert "ALLOW_SQLITE_IN_PRODUCTION=1" in str(refused.value)
    monkeypatch.setattr(production_config, "ALLOW_SQLITE_IN_PRODUCTION", True)
    assert create_app("production").config["SQLALCHEMY_DATABASE_URI"] == sqlite_file


def test_production_refuses_to_start_in_debug_mode(
    monkeypatch: pytest.MonkeyPatch, production_config: type
) -> None:
    """FLASK_DEBUG=1 (or `flask --debug`, which sets it) would run the Werkzeug debugger,
    which runs code typed into an error page. Production's settings name DEBUG off, and an
    app asked for debug mode either way does not start."""
    assert create_app("production").debug is False
    monkeypatch.setenv("FLASK_DEBUG", "1")
    with pytest.raises(RuntimeError, match="Debug mode is on"):
        create_app("production")
    monkeypatch.delenv("FLASK_DEBUG")
    monkeypatch.setattr(production_config, "DEBUG", True)
    with pytest.raises(RuntimeError, match="Debug mode is on"):
        create_app("production")


def test_the_suites_production_apps_keep_their_files_out_of_the_project(
    monkeypatch: pytest.MonkeyPatch, production_config: type, tmp_path: Path
) -> None:
    """Production's files default to the project's instance/ folder, which `make run` uses
    (config.py): the suite's production apps, built on ``production_config``, keep theirs in
    the test's own folder. Without REDIS_URL each of them wrote instance/huey.sqlite3, the
    queue's SQLite file, in the checkout."""
    monkeypatch.setattr(production_config, "HUEY_BACKEND", "sqlite")  # REDIS_URL unset
    production = create_app("production")
    instance = str(config.INSTANCE_DIR)
    in_the_project = {
        name: value
        for name, value in production.config.items()
        if isinstance(value, str) and instance in value
    }
    assert in_the_project == {}
    queue_file = Path(production.extensions["huey"].storage.filename)
    assert queue_file.is_file() and queue_file.is_relative_to(tmp_path)


def test_production_refuses_to_start_without_a_languages_compiled_catalogue(
    monkeypatch: pytest.MonkeyPatch, production_config: type, tmp_path: Path
) -> None:
    """The .mo files are built at install (`make install`, `pybabel compile`), not kept in
    git: installed with pip alone, Flask-Babel fell back to English without a word, and
    Spanish readers got English pages and emergency advice."""
    source = Path(__file__).parent.parent / "booking" / "translations" / "es" / "LC_MESSAGES"
    folder = tmp_path / "translations" / "es" / "LC_MESSAGES"
    folder.mkdir(parents=True)
    shutil.copy(source / "messages.po", folder / "messages.po")  # the source only
    monkeypatch.setattr(
        production_config, "BABEL_TRANSLATION_DIRECTORIES", str(tmp_path / "translations")
    )
    with pytest.raises(RuntimeError, match="translations of es are not compiled"):
        create_app("production")
    shutil.copy(source / "messages.mo", folder / "messages.mo")
    app = create_app("production")
    with app.test_request_context(headers={"Accept-Language": "es"}):
        from flask_babel import gettext

        assert gettext("Your documents are too large") == "Sus documentos son demasiado grandes"


def test_production_names_every_setting_that_stops_it_at_once(
    monkeypatch: pytest.MonkeyPatch, production_config: type
) -> None:
    """An operator fixing one refused setting per restart would meet the next only then:
    every setting that stops the app is named in the one error."""
    monkeypatch.setattr(production_config, "STAFF_NOTIFICATION_EMAIL", "")
    monkeypatch.setattr(production_config, "ALLOW_SQLITE_IN_PRODUCTION", False)
    monkeypatch.setattr(production_config, "SQLALCHEMY_DATABASE_URI", "sqlite://")
    monkeypatch.setattr(production_config, "ENCRYPTION_KEY", None)
    monkeypatch.setattr(production_config, "CLINIC_OPENING_HOURS", "Someday 9-5")
    with pytest.raises(RuntimeError) as refused:
        create_app("production")
    message = str(refused.value)
    assert message.startswith("4 settings stop the app from starting:\n- "), message
    for named in (
        "STAFF_NOTIFICATION_EMAIL is not set",
        "DATABASE_URL is a SQLite database",
        "ENCRYPTION_KEY is not set",
        "CLINIC_OPENING_HOURS cannot be read",
    ):
        assert named in message


def test_unknown_environment_name_is_refused() -> None:
    with pytest.raises(RuntimeError, match="Unknown SPINECONSULT_ENV"):
        create_app("staging")


def test_pages_have_friendly_errors(client) -> None:
    response = client.get("/no-such-page")
    assert response.status_code == 404
    page = response.get_data(as_text=True)
    assert "Page not found" in page
    assert "Traceback" not in page
    assert client.delete("/request").status_code == 405


def test_a_staff_page_not_found_keeps_the_staff_frame(client, staff) -> None:
    """Signed in, a wrong staff address shows the staff menu and a way back to the
    dashboard, not the patients' frame with its emergency banner and request form link."""
    from tests.support import AuthActions

    AuthActions(client).login("coordinator")
    response = client.get("/staff/requests/SC-NONE-NONE")
    assert response.status_code == 404
    page = response.get_data(as_text=True)
    assert "Page not found" in page and "Back to the dashboard" in page
    assert "emergency-notice" not in page and "Go to the request form" not in page
    assert "Sign out" in page
    patient_page = client.get("/no-such-page").get_data(as_text=True)
    assert "emergency-notice" in patient_page and "Go to the request form" in patient_page


def test_an_expired_sign_in_form_keeps_the_staff_frame_and_leads_back_to_sign_in(client) -> None:
    """Signed out, an error on a staff page (here the sign-in form sent without its token, as
    after the form expired) leads back to the sign-in page: the dashboard would only redirect
    there, and the patients' frame has no way to it at all."""
    response = client.post("/staff/login", data={"email": "a@example.com", "password": "x"})
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "This form has expired" in page
    assert 'href="/staff/login">Back to staff sign-in</a>' in page
    assert "Back to the dashboard" not in page and "Sign out" not in page
    assert "emergency-notice" not in page and "Go to the request form" not in page


def test_patient_pages_carry_the_emergency_notice_and_load_no_third_party_assets(client) -> None:
    for path in ("/request/start", "/privacy"):
        page = client.get(path).get_data(as_text=True)
        assert "Is it an emergency?" in page
        assert "Call 112" in page
        assert "cdn." not in page and "https://" not in page.split("</head>")[0]
        assert '<html lang="en">' in page


def test_bootstrap_is_served_locally(client) -> None:
    page = client.get("/request/start").get_data(as_text=True)
    assert "/bootstrap/static/css/bootstrap.min.css" in page
    with client.get("/bootstrap/static/css/bootstrap.min.css") as css:
        assert css.status_code == 200


def test_privacy_notice_shows_the_version_that_consent_records(app: Flask, client) -> None:
    """By the day it took effect, as people read a date ("2026-12-05" is "5 Dec 2026")."""
    app.config["PRIVACY_NOTICE_VERSION"] = "2026-12-05"
    page = client.get("/privacy").get_data(as_text=True)
    assert "Version of 5 Dec 2026" in page and "2026-12-05" not in page
    # A version named otherwise is shown as written.
    app.config["PRIVACY_NOTICE_VERSION"] = "v2"
    assert "Version v2" in client.get("/privacy").get_data(as_text=True)


@pytest.fixture
def dev_settings(app_settings: dict[str, Any]) -> dict[str, Any]:
    app_settings["DEV_MAIL_VIEWER"] = True
    return app_settings


def test_dev_mail_viewer_lists_and_shows_what_the_sink_received(
    dev_settings: dict[str, Any], app: Flask, client
) -> None:
    maildir_path = Path(app.config["DEV_MAILDIR"])
    maildir_path.parent.mkdir(parents=True, exist_ok=True)
    box = mailbox.Maildir(maildir_path, create=True)
    message = EmailMessage()
    message["Subject"] = "We received your request SC-7K4M-Q2XD"
    message["To"] = "erika@example.com"
    message["From"] = "clinic@example.com"
    message["Date"] = "Fri, 27 Nov 2026 10:00:00 +0000"
    message.set_content("Your reference: SC-7K4M-Q2XD")
    message.add_alternative("<p>Your reference: <script>alert(1)</script></p>", subtype="html")
    key = box.add(message)
    undated = EmailMessage()
    undated["Subject"] = "No date"
    undated["Date"] = "not a date"
    box.add(undated)

    listing = client.get("/dev/mail").get_data(as_text=True)
    assert listing.index("SC-7K4M-Q2XD") < listing.index("No date")  # newest first, undated last
    assert "We received your request SC-7K4M-Q2XD" in listing
    # In the clinic's time, as the staff pages write times: not the header's UTC.
    assert '<td data-label="Date">27 Nov 2026, 11:00</td>' in listing
    assert "Times are the clinic's (Germany (Berlin) Time)." in listing
    shown = client.get(f"/dev/mail/{key}").get_data(as_text=True)
    assert "Your reference: SC-7K4M-Q2XD" in shown
    assert "27 Nov 2026, 11:00, Germany (Berlin) Time" in shown
    assert "<script>alert(1)</script>" not in shown  # the HTML part is escaped into a sandbox
    assert client.get("/dev/mail/not-a-key").status_code == 404


@pytest.fixture
def mail_sink(dev_settings: dict[str, Any]) -> Iterator[Path]:
    """`make run`'s mail sink, started by its Procfile line (as honcho does, in a shell),
    on a free port, writing to a Maildir whose directory exists with none of its folders
    (copied without its empty folders, or emptied by hand). Ask for it before ``app``."""
    root = Path(__file__).resolve().parent.parent
    maildir = Path(dev_settings["DEV_MAILDIR"])
    maildir.mkdir(parents=True)
    port = free_port()
    dev_settings["MAIL_PORT"] = port
    [line] = [
        row for row in (root / "Procfile").read_text().splitlines() if row.startswith("mail:")
    ]
    sink = subprocess.Popen(
        ["/bin/sh", "-c", line.removeprefix("mail:").strip()],
        cwd=root,
        env={
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            "MAIL_PORT": str(port),
            "DEV_MAILDIR": str(maildir),
        },
        start_new_session=True,  # the shell and the sink it starts: stopped together
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert sink.poll() is None, "the mail sink stopped"
                assert time.monotonic() < deadline, "the mail sink did not start"
                time.sleep(0.1)
        yield maildir
    finally:
        # The whole group: stopping the shell alone left the sink running after the test.
        os.killpg(sink.pid, signal.SIGTERM)
        sink.wait(timeout=10)


def test_the_dev_mail_sink_makes_the_maildirs_folders_it_misses(
    mail_sink: Path, app: Flask, client
) -> None:
    """aiosmtpd's own handler made the Maildir's cur/new/tmp only with its directory: an
    instance/mail without them made the sink answer each email with a 500, and the worker
    failed every email for good. The sink makes them, and the viewer lists what it got."""
    with app.app_context():
        make_request()
        send_each_waiting_email()
        statuses = db.session.scalars(select(OutboxEmail.status)).all()
        assert statuses and set(statuses) == {OutboxStatus.SENT}
    assert {folder.name for folder in mail_sink.iterdir()} >= {"cur", "new", "tmp"}
    assert len(mailbox.Maildir(mail_sink, create=False)) == len(statuses)
    assert "We received your request" in client.get("/dev/mail").get_data(as_text=True)


def test_the_dev_mail_viewer_opens_a_maildir_without_its_folders(
    dev_settings: dict[str, Any], app: Flask, client
) -> None:
    Path(app.config["DEV_MAILDIR"]).mkdir(parents=True)
    assert client.get("/dev/mail").status_code == 200


def test_dev_mail_viewer_does_not_exist_outside_development(client) -> None:
    assert client.get("/dev/mail").status_code == 404


def test_seed_demo_adds_requests_once(app: Flask) -> None:
    runner = app.test_cli_runner()
    first = runner.invoke(args=["seed-demo"])
    assert first.exit_code == 0, first.output
    assert first.output.count("Added demo request") == 3
    second = runner.invoke(args=["seed-demo"])
    assert "no demo data added" in second.output
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(ConsultationRequest)) == 3
        urgent = db.session.scalars(
            select(ConsultationRequest).where(ConsultationRequest.triage_level == "urgent")
        ).all()
        assert len(urgent) == 1
        assert db.session.scalar(select(func.count()).select_from(OutboxEmail)) == 6
        # Every request gone (erased, purged), the accounts kept: it says so, and adds none.
        db.session.execute(delete(OutboxEmail))
        for consultation in db.session.scalars(select(ConsultationRequest)):
            db.session.delete(consultation)
        db.session.commit()
    third = runner.invoke(args=["seed-demo"])
    assert third.exit_code == 0, third.output
    assert "already holds staff accounts; no demo data added" in third.output


def test_every_setting_is_listed_in_the_readme() -> None:
    """config.py says every setting is in README.md's table: one read from the environment
    but missing there is a setting an operator cannot find."""
    root = Path(__file__).resolve().parent.parent
    read = set(re.findall(r'_env\w*\(\s*"([A-Z0-9_]+)"', (root / "config.py").read_text()))
    readme = (root / "README.md").read_text()
    assert read, "no settings found in config.py"
    assert sorted(name for name in read if f"`{name}`" not in readme) == []


def _settings_read_from(environment: dict[str, str], *names: str) -> dict[str, Any]:
    """``config.Config``'s values for ``names`` as a fresh process reads them from
    ``environment`` (and nothing else of the environment the tests run in)."""
    root = Path(__file__).resolve().parent.parent
    code = "import json, sys, config\n"
    code += "print(json.dumps({n: getattr(config.Config, n) for n in sys.argv[1:]}))"
    env = {"PATH": os.environ.get("PATH", ""), **environment}
    out = subprocess.run(
        [sys.executable, "-c", code, *names],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out)


def test_the_default_retention_keeps_records_ten_calendar_years() -> None:
    """BGB 630f: ten years, whatever leap days they hold. 3650 days fell two or three days
    short, so a record could be deleted before its ten years were over."""
    days = _settings_read_from({}, "RETENTION_DAYS")["RETENTION_DAYS"]
    start = date(2024, 1, 1)
    for offset in range(366 * 4):  # every day of a leap-year cycle
        closed = start + timedelta(days=offset)
        # 29 February's tenth anniversary is 1 March in a common year.
        try:
            ten_years = closed.replace(year=closed.year + 10)
        except ValueError:
            ten_years = date(closed.year + 10, 3, 1)
        assert closed + timedelta(days=days) >= ten_years, closed


@pytest.mark.parametrize(
    ("environment", "expected"),
    [({}, False), ({"EMERGENCY_NUMBER": ""}, False), ({"EMERGENCY_NUMBER": "112"}, True)],
)
def test_the_settings_say_whether_the_emergency_number_was_set(
    environment: dict[str, str], expected: bool
) -> None:
    """112 is the default too: the start-up warning needs to know whether it was a choice."""
    read = _settings_read_from(environment, "EMERGENCY_NUMBER", "EMERGENCY_NUMBER_SET")
    assert read == {"EMERGENCY_NUMBER": "112", "EMERGENCY_NUMBER_SET": expected}


@pytest.mark.slow
def test_make_run_migrates_and_seeds_the_database_its_env_file_names(tmp_path: Path) -> None:
    """make run's web server and worker read .env through honcho; its migration and demo data
    must too, or they fill the default SQLite file while the server opens another database."""
    root = Path(__file__).resolve().parent.parent
    database = tmp_path / "from-env-file.sqlite3"
    env_file = tmp_path / ".env"
    env_file.write_text(
        f"DATABASE_URL=sqlite:///{database}\n"
        f"UPLOAD_DIR={tmp_path / 'uploads'}\n"
        f"HUEY_SQLITE_PATH={tmp_path / 'huey.sqlite3'}\n"
        f"DEV_MAILDIR={tmp_path / 'mail'}\n"
    )
    # No `install` (the suite runs in an installed venv); the settings only from the file.
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "SPINECONSULT_ENV")}
    made = subprocess.run(
        ["make", "-o", "install", "dev-db", f"ENV_FILE={env_file}", f"VENV={sys.prefix}"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert made.returncode == 0, made.stdout + made.stderr
    engine = sa.create_engine(f"sqlite:///{database}")
    try:
        with engine.connect() as conn:
            assert conn.scalar(sa.text("SELECT count(*) FROM alembic_version")) == 1
            assert conn.scalar(sa.text("SELECT count(*) FROM consultation_request")) > 0
    finally:
        engine.dispose()
