"""The privacy notice names everything a DPO needs in both languages, and each request keeps
what its patient consented to: version, language and the SHA-256 of the wording shown."""

from __future__ import annotations

import hashlib

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from booking.audit.models import AuditEvent
from booking.extensions import db
from booking.requests import notice
from tests.factories import make_request

SETTINGS = {
    "PRIVACY_CONTROLLER_NAME": "Wirbelsäulenpraxis Mitte GmbH",
    "PRIVACY_CONTROLLER_ADDRESS": "Friedrichstraße 100, 10117 Berlin",
    "PRIVACY_CONTACT_EMAIL": "privacy@clinic.example",
    "DPO_CONTACT": "Dr. Datenschutz, dpo@clinic.example",
    "SUPERVISORY_AUTHORITY": "Berliner Beauftragte für Datenschutz",
    "HEALTH_DATA_LAW": "§ 22 BDSG",
    "PROCESSOR_EMAIL": "Mailhost AG",
    "PROCESSOR_HOSTING": "Hosting eG",
    "RETENTION_DAYS": 3653,
}


@pytest.fixture
def app_settings(app_settings: dict) -> dict:
    return {**app_settings, **SETTINGS}


@pytest.mark.parametrize(
    ("language", "words"),
    [
        ("en", ["Art. 9(2)(h)", "3653 days", "supervisory authority", "withdraw"]),
        ("es", ["art. 9.2.h", "3653 días", "autoridad de control", "retirar"]),
    ],
)
def test_the_notice_names_every_item_in_both_languages(
    client: FlaskClient, language: str, words: list[str]
) -> None:
    page = client.get("/privacy", headers={"Accept-Language": language}).get_data(as_text=True)
    for value in (
        SETTINGS["PRIVACY_CONTROLLER_NAME"],
        SETTINGS["PRIVACY_CONTROLLER_ADDRESS"],
        SETTINGS["PRIVACY_CONTACT_EMAIL"],
        SETTINGS["DPO_CONTACT"],
        SETTINGS["SUPERVISORY_AUTHORITY"],
        SETTINGS["HEALTH_DATA_LAW"],
        SETTINGS["PROCESSOR_EMAIL"],
        SETTINGS["PROCESSOR_HOSTING"],
        *words,
    ):
        assert value in page, value


def test_a_request_keeps_the_notice_it_was_consented_to(app: Flask) -> None:
    with app.app_context():
        consultation = make_request(locale="es")
        assert consultation.privacy_notice_version == app.config["PRIVACY_NOTICE_VERSION"]
        assert consultation.privacy_notice_language == "es"
        shown = hashlib.sha256(notice.wording("es").encode()).hexdigest()
        assert consultation.privacy_notice_sha256 == shown
        assert shown != hashlib.sha256(notice.wording("en").encode()).hexdigest()
        [row] = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "request_submitted")
        ).all()
        assert row.target_id == consultation.reference
        assert row.details == {
            "notice_version": app.config["PRIVACY_NOTICE_VERSION"],
            "language": "es",
        }
        assert (row.actor_id, row.actor_email, row.ip_address) == (None, "patient", None)


def test_the_page_shows_the_fingerprint_the_consent_keeps(app: Flask, client: FlaskClient) -> None:
    page = client.get("/privacy", headers={"Accept-Language": "en"}).get_data(as_text=True)
    with app.app_context():
        assert notice.fingerprint("en") in page
