"""The application shell: settings, error pages, the development mail viewer, the CLI."""

from __future__ import annotations

import mailbox
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from booking import create_app
from booking.extensions import db
from booking.notifications.models import OutboxEmail
from booking.requests.models import ConsultationRequest


def test_production_refuses_to_start_without_a_secret_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import config

    monkeypatch.setattr(config.ProductionConfig, "SECRET_KEY", None)
    with pytest.raises(RuntimeError, match="SECRET_KEY is not set"):
        create_app("production")


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
    page = client.get("/privacy").get_data(as_text=True)
    assert f"Version {app.config['PRIVACY_NOTICE_VERSION']}" in page


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

    listing = client.get("/dev/mail").get_data(as_text=True)
    assert "We received your request SC-7K4M-Q2XD" in listing
    shown = client.get(f"/dev/mail/{key}").get_data(as_text=True)
    assert "Your reference: SC-7K4M-Q2XD" in shown
    assert "<script>alert(1)</script>" not in shown  # the HTML part is escaped into a sandbox
    assert client.get("/dev/mail/not-a-key").status_code == 404


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
