"""A video or phone visit never reads as a visit to the address: the appointment type says how
its visits take place, and every page, email and calendar file that shows the time follows it."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

from booking.audit.models import AuditEvent
from booking.extensions import db
from booking.requests.models import ConsultationRequest
from booking.requests.reminders import send_due_reminders
from booking.scheduling.availability import open_slots
from booking.scheduling.models import AppointmentType, Location, VisitMode
from booking.staff.models import StaffUser
from booking.timeutil import now_utc
from tests.factories import (
    confirmed_request,
    make_hours,
    make_location,
    set_visit_mode,
)
from tests.support import (
    AuthActions,
    Clinic,
    answer_red_flags,
    calendar_location,
    checked_radios,
    form_values,
    open_manage_link,
    open_step,
    outbox_emails,
    post_step,
    step_answers,
)

ADDRESS = "Friedrichstr. 1"  # the clinic fixture's location
BY_VIDEO = "By video, from wherever suits you: the clinic will send you how to join."
BY_PHONE = "By phone: the specialist will call you on the phone number you gave."
HAVE_AT_HAND = "Please have your scan reports, a list of your medicines"
BRING = "Please bring your scans (MRI, CT or X-ray discs or reports)"


def test_a_video_visit_the_patient_books_never_sends_them_to_the_address(
    app: Flask, client: FlaskClient, clinic: Clinic
) -> None:
    set_visit_mode(app, clinic, VisitMode.VIDEO)
    with app.app_context():
        kind = db.session.get(AppointmentType, clinic.type)
        start = now_utc() + timedelta(days=2)
        slot = open_slots(kind, start, start + timedelta(days=7))[0].key
    answer_red_flags(client, query=f"?type={clinic.type}&slot={slot}")
    time_step = open_step(client, "time")
    assert BY_VIDEO in time_step and ADDRESS not in time_step
    chosen = {**step_answers("time"), "appointment_type": str(clinic.type), "slot": slot}
    assert post_step(client, "time", chosen).status_code == 303
    for code in ("about", "symptoms", "function", "history"):
        assert post_step(client, code).status_code == 303
    documents = open_step(client, "documents")
    assert "You can also add them later with your private link." in documents
    assert "bring them to your visit" not in documents
    post_step(client, "documents", {})
    review = open_step(client, "review")
    assert BY_VIDEO in review and ADDRESS not in review
    assert "No documents. You can also add them later with your private link." in review
    assert "bring them to your visit" not in review
    assert post_step(client, "review").status_code == 303

    page = client.get("/request/submitted").get_data(as_text=True)
    assert BY_VIDEO in page and HAVE_AT_HAND in page
    assert ADDRESS not in page and BRING not in page
    ics = client.get("/request/submitted/appointment.ics").get_data(as_text=True)
    assert calendar_location(ics) == "By video"

    (receipt,) = outbox_emails(app, "request_received")
    for body in (receipt.body_text, receipt.body_html):
        assert BY_VIDEO in body and HAVE_AT_HAND in body
        assert ADDRESS not in body and BRING not in body
    assert calendar_location(receipt.attachment_body) == "By video"

    with app.app_context():
        consultation = db.session.scalars(select(ConsultationRequest)).one()
        manage_path = open_manage_link(client, consultation)
    manage = client.get(manage_path).get_data(as_text=True)
    assert BY_VIDEO in manage and ADDRESS not in manage


def test_a_phone_visit_confirmed_by_staff_and_its_reminder_say_how_to_take_part(
    app: Flask, clinic: Clinic
) -> None:
    set_visit_mode(app, clinic, VisitMode.PHONE)
    request_id = confirmed_request(app, clinic)
    (update,) = outbox_emails(app, "request_update")
    assert f"Where: {BY_PHONE}" in update.body_text
    assert HAVE_AT_HAND in update.body_text and BRING not in update.body_text
    assert ADDRESS not in update.body_text and ADDRESS not in update.body_html
    assert calendar_location(update.attachment_body) == "By phone"

    with app.app_context():
        starts_at = db.session.get(ConsultationRequest, request_id).appointment.starts_at
        assert len(send_due_reminders(now=starts_at - timedelta(hours=47))) == 1
    (reminder,) = outbox_emails(app, "appointment_reminder")
    text = reminder.body_text
    assert "Please have ready:\n- your phone, switched on, somewhere quiet and private\n" in text
    assert "- your scan reports: MRI, CT or X-ray\n" in text
    assert "Please bring" not in text and ADDRESS not in text
    assert "<li>your phone, switched on, somewhere quiet and private</li>" in reminder.body_html


def test_a_spanish_reader_reads_how_their_video_visit_takes_place(
    app: Flask, clinic: Clinic
) -> None:
    set_visit_mode(app, clinic, VisitMode.VIDEO)
    confirmed_request(app, clinic, locale="es")
    (update,) = outbox_emails(app, "request_update")
    assert "Por videollamada, desde donde le venga bien" in update.body_text
    # The patient may be anywhere: the time names the clinic's zone (the calendar file is UTC).
    assert re.search(r"Cuándo: .+, \d\d:\d\d, hora de Alemania \(Berlín\)\n", update.body_text)
    assert "Tenga a mano los informes de sus pruebas de imagen" in update.body_text
    assert ADDRESS not in update.body_text
    assert calendar_location(update.attachment_body) == "Por videollamada"


def test_an_in_person_visit_still_gives_the_address_and_what_to_bring(
    app: Flask, clinic: Clinic
) -> None:
    confirmed_request(app, clinic)
    (update,) = outbox_emails(app, "request_update")
    assert f"Where: Main clinic, {ADDRESS}, Berlin" in update.body_text
    assert "Germany (Berlin) Time" not in update.body_text  # a visit to the clinic
    assert BRING in update.body_text and HAVE_AT_HAND not in update.body_text
    assert calendar_location(update.attachment_body) == f"Main clinic, {ADDRESS}, Berlin"


EVALUATION = "New-patient spine evaluation"  # the clinic fixture's type


def save_type(client: FlaskClient, type_id: int, mode: str, name: str = EVALUATION) -> TestResponse:
    """The type's edit page, filled in and sent as an admin's browser does."""
    path = f"/staff/admin/scheduling/types/{type_id}"
    page = client.get(path).get_data(as_text=True)
    return client.post(path, data={**form_values(page), "name": name, "mode": mode})


def test_the_admin_sets_how_a_types_visits_take_place(
    app: Flask, auth: AuthActions, clinic: Clinic
) -> None:
    admin_client = auth.new_client("admin")
    path = f"/staff/admin/scheduling/types/{clinic.type}"
    page = admin_client.get(path).get_data(as_text=True)
    assert checked_radios(page) == {"mode": "in_person"}  # every type so far: in person

    refused = save_type(admin_client, clinic.type, "x")
    assert refused.status_code == 422
    assert "Please choose one of the options shown." in refused.get_data(as_text=True)

    saved = save_type(admin_client, clinic.type, "phone")
    assert saved.status_code == 302
    overview = admin_client.get(saved.location).get_data(as_text=True)
    assert "Appointment type saved." in overview and "<td>By phone</td>" in overview
    with app.app_context():
        assert db.session.get(AppointmentType, clinic.type).mode is VisitMode.PHONE
        (audit,) = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "appointment_type_updated")
        ).all()
        assert audit.details == {"mode": {"before": "in_person", "after": "phone"}}


@pytest.mark.parametrize("mode", list(VisitMode))
def test_every_mode_has_a_label_and_a_place(app: Flask, mode: VisitMode) -> None:
    from booking.scheduling.visits import MODE_LABELS, where

    with app.test_request_context():
        assert str(MODE_LABELS[mode])
        place = where(mode, "Main clinic", ADDRESS)
        assert (ADDRESS in place) is (mode is VisitMode.IN_PERSON)


def test_the_picker_of_a_visit_from_home_offers_no_place(
    app: Flask, client: FlaskClient, clinic: Clinic
) -> None:
    """Dr. Okafor works at a second place at the same hours: for a visit to a place, the
    first available specialist's times come once per place, with a place filter; for a video
    visit, once per time, no place to choose and no place named."""
    with app.app_context():
        branch = make_location("Branch", "Hauptstr. 9, Potsdam")
        make_hours(db.session.get(StaffUser, clinic.okafor.id), branch, range(7), "08:00", "18:00")
    path = f"/request/time?type={clinic.type}"

    def times(page: str) -> list[str]:
        return re.findall(r'name="slot" id="slot-([^"]+)"', page)

    in_person = client.get(path).get_data(as_text=True)
    assert '<div class="mb-3 col-md-6" id="picker-place">' in in_person
    assert "Dr. Okafor · Branch" in in_person and "By video" not in in_person
    per_place = times(in_person)

    set_visit_mode(app, clinic, VisitMode.VIDEO)
    with app.app_context():
        branch_id = db.session.scalars(select(Location.id).where(Location.name == "Branch")).one()
    # A place asked for (an old link) is not held against a visit from home.
    video = client.get(f"{path}&location={branch_id}").get_data(as_text=True)
    assert 'id="picker-place" hidden' in video
    assert BY_VIDEO in video and "· By video</label>" in video
    assert " · Branch" not in video and " · Main clinic" not in video
    per_time = times(video)
    assert per_time and len(per_time) < len(per_place)
    starts = [key.rsplit(".", 1)[1] for key in per_time]
    assert len(starts) == len(set(starts))  # each start time once


def test_how_visits_take_place_does_not_change_under_booked_appointments(
    app: Flask, auth: AuthActions, clinic: Clinic
) -> None:
    """A patient booked in person holds an email and a calendar file with the address: the
    next reminder must not say "by video" without a word. The admin is told why, and what to
    do instead; the type is unchanged."""
    confirmed_request(app, clinic)
    admin_client = auth.new_client("admin")
    refused = save_type(admin_client, clinic.type, "video")
    assert refused.status_code == 422
    message = refused.get_data(as_text=True)
    assert "1 appointment to come is booked as this type stands" in message
    assert "Add a new type for the other way" in message
    with app.app_context():
        assert db.session.get(AppointmentType, clinic.type).mode is VisitMode.IN_PERSON
    # Its names can still change.
    renamed = save_type(admin_client, clinic.type, "in_person", name="First spine visit")
    assert renamed.status_code == 302
