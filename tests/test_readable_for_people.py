"""What people read says things the way people say them: status words rather than codes,
times without seconds or time-zone names, real plurals, and the clinic's emails in the
clinic's language whatever the patient's."""

from __future__ import annotations

import html
import io
import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from booking.extensions import db
from booking.notifications.models import OutboxEmail
from booking.scheduling.models import AppointmentType
from booking.scheduling.services import SlotChoice
from tests.factories import make_request
from tests.support import (
    AuthActions,
    Clinic,
    csrf_token,
    fill_request,
    first_open_slot,
    open_manage_link,
    pdf_bytes,
    red_flag_answers,
    send_request,
    valid_answers,
)

CSRF = re.compile(r'csrf_token" type="hidden" value="([^"]+)"')
SECONDS = re.compile(r"\d{1,2}:\d{2}:\d{2}")
# "Thu 3 Dec 2026, 10:00" / "jue 3 dic 2026, 10:00"
READABLE = re.compile(r"\w{3}\.? \d{1,2} \w{3}\.? \d{4}, \d{2}:\d{2}\b")
ZONE_NAMES = ("Central European", "Europa central", "GMT", "UTC")


def _booked(app: Flask, client: FlaskClient, clinic: Clinic, locale: str) -> dict[str, Any]:
    """A request in ``locale`` holding the first open slot; ``client`` has its private link."""
    with app.app_context():
        appointment_type = db.session.get(AppointmentType, clinic.type)
        slot = first_open_slot(appointment_type)
        consultation = make_request(
            locale=locale,
            slot=SlotChoice(clinic.type, slot.specialist_id, slot.location_id, slot.starts_at),
        )
        return {"reference": consultation.reference, "url": open_manage_link(client, consultation)}


def _emails(app: Flask) -> list[OutboxEmail]:
    with app.app_context():
        rows = db.session.scalars(select(OutboxEmail).order_by(OutboxEmail.id)).all()
        db.session.expunge_all()
        return list(rows)


def _add_documents(client: FlaskClient, url: str, count: int) -> str:
    token = CSRF.search(client.get(url).get_data(as_text=True)).group(1)
    data: dict[str, Any] = {"docs-csrf_token": token}
    for n in range(count):
        data[f"docs-documents-{n}-file"] = (
            io.BytesIO(pdf_bytes(f"Report {count}-{n}")),
            f"r{n}.pdf",
        )
        data[f"docs-documents-{n}-description"] = ""
    response = client.post(url + "/documents", data=data, content_type="multipart/form-data")
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    return client.get(response.headers["Location"]).get_data(as_text=True)


@pytest.mark.parametrize(
    ("locale", "status"),
    [
        ("en", "Received: the clinic will confirm your appointment"),
        ("es", "Recibida. La clínica le confirmará la cita"),
    ],
)
def test_the_patient_page_shows_a_status_and_a_time_people_read(
    app: Flask, client: FlaskClient, clinic: Clinic, locale: str, status: str
) -> None:
    booked = _booked(app, client, clinic, locale)
    page = client.get(booked["url"], query_string={"lang": locale}).get_data(as_text=True)
    assert f"<strong>{status}</strong>" in page
    assert "<strong>requested</strong>" not in page
    assert READABLE.search(page), "the appointment's time"
    assert not SECONDS.search(page)
    assert not [name for name in ZONE_NAMES if name in page]

    # The patient's emails, likewise.
    receipt = next(e for e in _emails(app) if e.template == "request_received")
    for body in (receipt.body_text, receipt.body_html):
        assert READABLE.search(body)
        assert not SECONDS.search(body)
        assert not [name for name in ZONE_NAMES if name in body]


@pytest.mark.parametrize(
    ("locale", "one", "two"),
    [
        ("en", "Thank you: 1 document added.", "Thank you: 2 documents added."),
        ("es", "Gracias: 1 documento añadido.", "Gracias: 2 documentos añadidos."),
    ],
)
def test_counts_use_real_plural_forms(
    app: Flask, client: FlaskClient, clinic: Clinic, locale: str, one: str, two: str
) -> None:
    booked = _booked(app, client, clinic, locale)
    client.get(booked["url"], query_string={"lang": locale})
    assert one in _add_documents(client, booked["url"], 1)
    assert two in _add_documents(client, booked["url"], 2)
    notices = [e.body_text for e in _emails(app) if e.template == "patient_action_staff"]
    assert len(notices) == 2
    # The clinic reads English, whatever the patient's language.
    assert "The patient added 1 document.\n" in notices[0]
    assert "The patient added 2 documents.\n" in notices[1]
    assert "(s)" not in "".join(notices)


def test_the_clinic_gets_its_emails_in_its_own_language_for_a_spanish_patient(
    app: Flask, client: FlaskClient, clinic: Clinic
) -> None:
    booked = _booked(app, client, clinic, "es")
    client.get(booked["url"], query_string={"lang": "es"})
    page = _add_documents(client, booked["url"], 1)
    assert '<html lang="es">' in page
    by_template = {e.template: e for e in _emails(app)}
    assert by_template["request_received"].subject.startswith("Hemos recibido")
    staff = [by_template["new_request_staff"], by_template["patient_action_staff"]]
    assert staff[0].subject == f"New request {booked['reference']}"
    assert staff[1].subject == f"Patient update on {booked['reference']}: documents added"
    # The clinic's time, named: its reader may be away, in another zone.
    zoned = r"[^<\n]+, \d\d:\d\d, Germany \(Berlin\) Time"
    assert re.search(rf"Received: {zoned}\n", staff[0].body_text)
    assert re.search(rf"Received</th><td>{zoned}</td>", staff[0].body_html)
    for email in staff:
        assert "For privacy, this email contains no patient details." in email.body_text
        assert "Novedad" not in email.subject + email.body_text
        assert '<html lang="en">' in email.body_html


def test_the_clinic_language_is_a_setting(
    app_settings: dict[str, Any], app: Flask, client: FlaskClient, clinic: Clinic
) -> None:
    """A Spanish clinic: its own emails in Spanish, an English patient's in English."""
    app.config["BABEL_DEFAULT_LOCALE"] = "es"
    _booked(app, client, clinic, "en")
    by_template = {e.template: e for e in _emails(app)}
    assert by_template["new_request_staff"].subject.startswith("Nueva solicitud")
    assert by_template["request_received"].subject.startswith("We received your request")


def test_the_audit_trail_shows_values_as_written(
    app: Flask, auth: AuthActions, clinic: Clinic
) -> None:
    from booking.audit.services import record
    from booking.scheduling.services import create_location

    with app.app_context():
        create_location("Praxis West", "Kantstraße 20, Berlin", actor=None)
        record(
            "settings_changed",
            details={"buffer_minutes": {"before": 10, "after": 15}, "notify": True},
        )
        db.session.commit()
    auth.login("admin")
    page = auth.client.get("/staff/admin/audit").get_data(as_text=True)
    assert "<li>address: <bdi>Kantstraße 20, Berlin</bdi></li>" in page  # text typed: isolated
    assert "<li>name: <bdi>Praxis West</bdi></li>" in page
    assert "<li>buffer minutes: 10 → 15</li>" in page
    assert "<li>notify: yes</li>" in page
    assert "\\u00df" not in page and "{&#34;" not in page and '{"' not in page


def test_the_error_summary_reads_as_label_then_message(app: Flask, client: FlaskClient) -> None:
    answers = valid_answers()
    assert fill_request(client, answers) is None
    del answers["contact_consent"]
    response = send_request(client, answers)
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    summary = re.search(
        r'<div class="alert alert-danger"[^>]*id="error-summary".*?</div>', page, re.S
    )
    assert summary, "no error summary"
    items = re.findall(r'class="alert-link">([^<]+)</a>', summary.group(0))
    assert items and all(
        item.startswith("I agree to be contacted about my request by email or phone: ")
        for item in items
    ), items
    assert ".:" not in summary.group(0)


@pytest.mark.parametrize(
    ("lang", "item"),
    [
        (
            "en",
            "Do you have a fever, or feel generally unwell, along with the pain? "
            "Please answer yes or no.",
        ),
        (
            "es",
            "¿Tiene fiebre, o se encuentra mal en general, además del dolor? Responda sí o no.",
        ),
    ],
)
def test_a_question_in_the_error_summary_keeps_its_question_mark(
    client: FlaskClient, lang: str, item: str
) -> None:
    """Not "¿Tiene fiebre ... del dolor: Responda sí o no." (an opening "¿" and no close)."""
    client.get(f"/?lang={lang}")
    answers = red_flag_answers()
    del answers["red_fever"]
    token = csrf_token(client, "/request/start")
    response = client.post("/request/start", data={**answers, "csrf_token": token})
    assert response.status_code == 422
    summary = re.search(r'id="error-summary".*?</ul>', response.get_data(as_text=True), re.S)
    assert summary, "no error summary"
    items = [html.unescape(i) for i in re.findall(r'class="alert-link">([^<]+)</a>', summary[0])]
    assert items == [item]


def test_the_record_names_the_patients_language(
    app: Flask, client: FlaskClient, auth: AuthActions, clinic: Clinic
) -> None:
    booked = _booked(app, client, clinic, "es")
    auth.login("coordinator", client=(staff := app.test_client()))
    page = staff.get(f"/staff/requests/{booked['reference']}").get_data(as_text=True)
    assert '<dd class="col-sm-8">Spanish</dd>' in page


@pytest.fixture
def demo_clinic(app_settings: dict[str, Any]) -> dict[str, str]:
    """The development settings' clinic card (what `make run` shows)."""
    from config import DevelopmentConfig

    card = {
        key: getattr(DevelopmentConfig, key)
        for key in ("CLINIC_ADDRESS", "CLINIC_PHONE", "CLINIC_OPENING_HOURS")
    }
    app_settings.update(card)
    return card


def test_the_demo_home_page_shows_the_clinics_address_phone_and_hours(
    demo_clinic: dict[str, str], client: FlaskClient
) -> None:
    assert all(demo_clinic.values()), demo_clinic
    page = client.get("/").get_data(as_text=True)
    assert demo_clinic["CLINIC_ADDRESS"] in page
    assert demo_clinic["CLINIC_PHONE"] in page
    # "Mon-Fri 8:00-18:00|Sat 9:00-13:00|Sun closed", as English readers write it.
    dash = "\u2009\u2013\u2009"  # CLDR's range: an en dash between thin spaces
    hours = [f"Mon{dash}Fri 08:00{dash}18:00", f"Sat 09:00{dash}13:00", "Sun closed"]
    assert "".join(f"<li>{line}</li>" for line in hours) in page
