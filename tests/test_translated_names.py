"""Locations and appointment types are named in each language patients read: a Spanish patient
reads the Spanish names on the time picker, the steps, the confirmation, the emails and the
calendar file (whoever's action sends them); a name not given in Spanish reads as the clinic's;
the admin gives the names through the real forms."""

from __future__ import annotations

import html
import re
from datetime import UTC
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_babel import force_locale
from sqlalchemy import select

from booking.audit.models import AuditEvent
from booking.extensions import db
from booking.requests.models import ConsultationRequest
from booking.scheduling.models import AppointmentType, Location, VisitMode
from tests.factories import make_appointment_type, make_location
from tests.support import (
    AuthActions,
    Clinic,
    calendar_location,
    checked_radios,
    csrf_token,
    fill_request,
    first_open_slot,
    form_tokens,
    form_values,
    open_step,
    outbox_emails,
    page_token,
    send_request,
    valid_answers,
)

BERLIN = ZoneInfo("Europe/Berlin")
TYPE_ES = "Primera consulta de columna"
PLACE_ES = "Clínica principal"
ADDRESS = "Friedrichstr. 1, Berlin"  # the clinic fixture's: the same in every language


@pytest.fixture
def clinic(app: Flask, clinic: Clinic) -> Clinic:
    """``clinic`` with its location and appointment type named in Spanish too."""
    with app.app_context():
        db.session.get(Location, clinic.location).names = {"es": PLACE_ES}
        db.session.get(AppointmentType, clinic.type).names = {"es": TYPE_ES}
        db.session.commit()
    return clinic


def text(page: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def test_a_spanish_patient_reads_the_spanish_names_from_the_picker_to_the_calendar(
    app: Flask, client: FlaskClient, auth: AuthActions, clinic: Clinic
) -> None:
    picker = text(client.get("/request/time?lang=es").get_data(as_text=True))
    assert TYPE_ES in picker and PLACE_ES in picker
    assert "New-patient spine evaluation" not in picker and "Main clinic" not in picker

    with app.app_context():
        slot = first_open_slot(db.session.get(AppointmentType, clinic.type))
    tokens = form_tokens(client, f"/request?type={clinic.type}&slot={slot.key}")
    # Each name isolated (test_bidi_names).
    chosen = f"<bdi>Dr. Weber</bdi> · <bdi>{PLACE_ES}</bdi>, {ADDRESS}"
    assert chosen in open_step(client, "time")  # the time step's card
    answers = valid_answers(appointment_type=str(clinic.type), slot=slot.key)
    assert fill_request(client, answers, tokens=tokens) is None
    assert chosen in open_step(client, "review")
    assert send_request(client, answers, tokens).status_code == 303

    confirmation = client.get("/request/submitted").get_data(as_text=True)
    assert f"<bdi>{PLACE_ES}</bdi>, {ADDRESS}" in confirmation
    assert "Main clinic" not in confirmation
    download = client.get("/request/submitted/appointment.ics").get_data(as_text=True)
    assert calendar_location(download) == f"{PLACE_ES}, {ADDRESS}"

    (receipt,) = outbox_emails(app, "request_received")
    assert receipt.recipient == "erika.mustermann@example.com"
    assert f"{PLACE_ES}, {ADDRESS}" in receipt.body_text
    assert f"<bdi>{PLACE_ES}</bdi>, {ADDRESS}" in receipt.body_html  # isolated (test_bidi_names)
    assert "Main clinic" not in receipt.body_text + receipt.body_html
    assert calendar_location(receipt.attachment_body) == f"{PLACE_ES}, {ADDRESS}"

    # A coordinator confirms it on an English page: the patient's email and calendar file
    # still name the place in Spanish.
    with app.app_context():
        reference = db.session.scalars(select(ConsultationRequest.reference)).one()
    staff = auth.new_client("coordinator")
    record = f"/staff/requests/{reference}"
    assert "Main clinic" in staff.get(record).get_data(as_text=True)
    local = slot.starts_at.astimezone(BERLIN)
    fields = {
        "specialist": slot.specialist_id,
        "location": slot.location_id,
        "day": local.date().isoformat(),
        "start": local.strftime("%H:%M"),
        "appointment_type": clinic.type,
        "message": "",
    }
    data = {"slot-csrf_token": csrf_token(staff, record)}
    data.update({f"slot-{name}": value for name, value in fields.items()})
    assert staff.post(f"{record}/confirm", data=data).status_code == 302
    (confirmed,) = outbox_emails(app, "request_update")
    assert f"{PLACE_ES}, {ADDRESS}" in confirmed.body_text
    assert calendar_location(confirmed.attachment_body) == f"{PLACE_ES}, {ADDRESS}"
    assert slot.starts_at.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ") in confirmed.attachment_body


def test_a_name_not_given_in_spanish_reads_as_the_clinics(
    app: Flask, client: FlaskClient, clinic: Clinic
) -> None:
    with app.app_context():
        imaging = make_appointment_type("Imaging review", minutes=30).id
        make_location("Spine centre west", "Kantstraße 20, Berlin")
    picker = client.get(f"/request/time?lang=es&type={imaging}").get_data(as_text=True)
    assert "Imaging review" in picker and TYPE_ES in picker
    assert "Spine centre west" in picker and PLACE_ES in picker

    with app.test_request_context("/?lang=es"), force_locale("es"):
        place = db.session.get(Location, clinic.location)
        imaging_type = db.session.get(AppointmentType, imaging)
        assert (place.display_name, imaging_type.display_name) == (PLACE_ES, "Imaging review")
        # A regional variant reads its language's name; a language without one, the clinic's.
        assert place.name_in("es_MX") == PLACE_ES
        assert place.name_in("de") == place.name_in(None) == "Main clinic"
    # Staff pages stay in the clinic's language.
    with app.test_request_context("/staff/"):
        assert db.session.get(Location, clinic.location).display_name == "Main clinic"


TYPE_PAGE = "/staff/admin/scheduling/types/{id}"
LOCATION_PAGE = "/staff/admin/locations/{id}"


def _post_names(client: FlaskClient, path: str, **names: str) -> str:
    """Fill in and send a names page's form as a browser does; the page it leads to."""
    page = client.get(path).get_data(as_text=True)
    assert 'for="name_es"' in page and "Name in Spanish" in page
    data = {**form_values(page), **checked_radios(page), "csrf_token": page_token(page), **names}
    response = client.post(path, data=data)
    assert response.status_code == 302, text(response.get_data(as_text=True))[:2000]
    return client.get(response.headers["Location"]).get_data(as_text=True)


def _audits(app: Flask, action: str) -> list[dict]:
    with app.app_context():
        return [
            row.details
            for row in db.session.scalars(
                select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
            )
        ]


def test_the_admin_names_a_type_and_a_location_in_spanish_through_the_forms(
    app: Flask, client: FlaskClient, auth: AuthActions, clinic: Clinic
) -> None:
    with app.app_context():
        imaging = make_appointment_type("Imaging review", minutes=30).id
    admin = auth.new_client("admin")
    page = _post_names(
        admin,
        TYPE_PAGE.format(id=imaging),
        name="Imaging review",
        name_es="  Revisión de pruebas   de imagen ",
    )
    assert "Appointment type saved." in page
    assert "Spanish: Revisión de pruebas de imagen" in text(page)
    assert _audits(app, "appointment_type_updated") == [
        {"name_es": {"before": None, "after": "Revisión de pruebas de imagen"}}
    ]
    page = _post_names(
        admin, LOCATION_PAGE.format(id=clinic.location), name="Main clinic", name_es="Sede central"
    )
    assert "Spanish: Sede central" in text(page)
    picker = text(client.get(f"/request/time?lang=es&type={imaging}").get_data(as_text=True))
    assert "Revisión de pruebas de imagen" in picker and "Sede central" in picker

    # Emptied, the Spanish name is gone and Spanish readers read the clinic's; the admin's
    # list says so.
    page = _post_names(
        admin, LOCATION_PAGE.format(id=clinic.location), name="Main clinic", name_es=""
    )
    assert "Main clinic No name in Spanish: its readers see this one." in text(page)
    with app.app_context():
        assert db.session.get(Location, clinic.location).names == {}
    picker = text(client.get(f"/request/time?lang=es&type={imaging}").get_data(as_text=True))
    assert "Main clinic" in picker and "Sede central" not in picker

    # A new type named in both languages at once, on the scheduling page's form.
    overview = "/staff/admin/scheduling/"
    data = {
        "type-csrf_token": csrf_token(admin, overview),
        "type-submit": "pressed",
        "type-name": "Video consultation",
        "type-name_es": "Videoconsulta",
        "type-duration_minutes": "20",
        "type-mode": "video",
    }
    assert admin.post(overview, data=data).status_code == 302
    with app.app_context():
        video = db.session.scalars(
            select(AppointmentType).where(AppointmentType.name == "Video consultation")
        ).one()
        assert video.names == {"es": "Videoconsulta"}
        assert video.mode is VisitMode.VIDEO


def test_a_spanish_name_another_type_reads_is_refused_next_to_its_box(
    app: Flask, auth: AuthActions, clinic: Clinic
) -> None:
    with app.app_context():
        imaging = make_appointment_type("Imaging review", minutes=30).id
    admin = auth.new_client("admin")
    path = TYPE_PAGE.format(id=imaging)
    data = {
        **form_values(admin.get(path).get_data(as_text=True)),
        "name": "Imaging review",
        "name_es": TYPE_ES,
        "mode": "in_person",
    }
    response = admin.post(path, data=data)
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    error = re.search(r'<div id="name_es-error"[^>]*>(.*?)</div>', page, re.S)
    assert error is not None
    assert f"Another appointment type is already called {TYPE_ES} in Spanish." in text(
        error.group(1)
    )
    assert f'value="{TYPE_ES}"' in page  # what was typed stays
    with app.app_context():
        assert db.session.get(AppointmentType, imaging).names == {}
    assert admin.get(TYPE_PAGE.format(id=9999)).status_code == 404
