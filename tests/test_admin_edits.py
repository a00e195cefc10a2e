"""An admin corrects what was set up earlier, through the real forms: a location's address
(patients read the new one in every email and calendar file written from then on) and an
appointment type's duration (new bookings only). Each change is audited; a page shown before
another admin's change does not undo it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from booking.audit.models import AuditEvent
from booking.extensions import db
from booking.requests.models import ConsultationRequest
from booking.scheduling.models import AppointmentType, Location
from booking.staff.models import StaffUser
from tests.factories import book_first_open_time, confirm_at
from tests.support import (
    AuthActions,
    Clinic,
    calendar_location,
    checked_radios,
    field_error,
    first_open_slot,
    form_values,
    outbox_emails,
    text,
)

OLD_ADDRESS = "Friedrichstr. 1, Berlin"  # the clinic fixture's
NEW_ADDRESS = "Chausseestr. 12, 10115 Berlin"


def location_page(clinic: Clinic) -> str:
    return f"/staff/admin/locations/{clinic.location}"


def post_as_shown(client: FlaskClient, path: str, page: str, **changes: str) -> str:
    """Send ``page``'s form (as it was shown, perhaps a while ago) with ``changes`` typed in;
    the page answered, after its redirect if any."""
    data = {**form_values(page), **checked_radios(page), **changes}
    response = client.post(path, data=data)
    if response.status_code == 302:
        return client.get(response.headers["Location"]).get_data(as_text=True)
    assert response.status_code == 422, response.status_code
    return response.get_data(as_text=True)


def audits(app: Flask, action: str) -> list[dict]:
    with app.app_context():
        return [
            row.details
            for row in db.session.scalars(
                select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
            )
        ]


def request(reference: str) -> ConsultationRequest:
    """The request ``reference`` (inside an app context)."""
    return db.session.scalars(
        select(ConsultationRequest).where(ConsultationRequest.reference == reference)
    ).one()


@pytest.fixture
def admin(auth: AuthActions, clinic: Clinic) -> FlaskClient:
    return auth.new_client("admin")


# A location's address -----------------------------------------------------------------------


def test_a_new_address_is_audited_and_read_by_the_emails_written_after_it(
    app: Flask, admin: FlaskClient, clinic: Clinic
) -> None:
    with app.app_context():
        # Two patients' times picked before the change, one read in English, one in Spanish.
        held = [book_first_open_time(clinic).reference for _ in range(2)]
        request(held[1]).locale = "es"
        db.session.commit()

    path = location_page(clinic)
    page = admin.get(path).get_data(as_text=True)
    assert form_values(page)["address"] == OLD_ADDRESS
    assert "Emails already sent keep the old one." in text(page)
    shown = post_as_shown(admin, path, page, address=f"  {NEW_ADDRESS} ")
    assert "Main clinic saved." in text(shown)
    # The admin is told who was sent the old address, and what happens next.
    assert (
        "2 appointments to come are at this location: their patients were sent the old "
        "address. Emails written from now on, such as the reminder, give the new one"
    ) in text(shown)
    assert NEW_ADDRESS in text(shown)
    assert audits(app, "location_updated") == [
        {"address": {"before": OLD_ADDRESS, "after": NEW_ADDRESS}}
    ]

    # A coordinator confirms both: the emails and calendar files give the new address, in
    # either language.
    with app.app_context():
        coordinator = db.session.get(StaffUser, clinic.coordinator.id)
        kind = db.session.get(AppointmentType, clinic.type)
        for reference in held:
            consultation = request(reference)
            appointment = consultation.appointment
            confirm_at(
                consultation,
                coordinator,
                kind,
                appointment.starts_at,
                appointment.specialist_id,
                appointment.location_id,
            )
    confirmations = outbox_emails(app, "request_update")
    assert len(confirmations) == 2
    for email in confirmations:
        for body in (email.body_text, text(email.body_html)):
            assert NEW_ADDRESS in body and OLD_ADDRESS not in body
        assert calendar_location(email.attachment_body).endswith(f", {NEW_ADDRESS}")


def test_saving_the_page_unchanged_writes_nothing(
    app: Flask, admin: FlaskClient, clinic: Clinic
) -> None:
    path = location_page(clinic)
    shown = post_as_shown(admin, path, admin.get(path).get_data(as_text=True))
    assert "Nothing was changed for Main clinic." in text(shown)
    assert audits(app, "location_updated") == []


def test_an_empty_address_is_refused_at_the_address(
    app: Flask, admin: FlaskClient, clinic: Clinic
) -> None:
    path = location_page(clinic)
    page = post_as_shown(admin, path, admin.get(path).get_data(as_text=True), address="   ")
    assert field_error(page, "address") == "Error: Please enter the address."
    with app.app_context():
        assert db.session.get(Location, clinic.location).address == OLD_ADDRESS


def test_a_page_shown_before_another_admins_change_does_not_undo_it(
    app: Flask, auth: AuthActions, admin: FlaskClient, clinic: Clinic
) -> None:
    path = location_page(clinic)
    older = admin.get(path).get_data(as_text=True)  # this tab, opened first
    other = auth.new_client("admin")
    post_as_shown(other, path, other.get(path).get_data(as_text=True), address=NEW_ADDRESS)

    # This tab renames the place: the address it still shows must not come back with it.
    page = post_as_shown(admin, path, older, name="Spine centre")
    assert (
        "Another administrator changed this location since the page was shown: it is now "
        f"Main clinic, {NEW_ADDRESS}. Check the names and address below, then save again."
    ) in text(page)
    with app.app_context():
        location = db.session.get(Location, clinic.location)
        assert (location.name, location.address) == ("Main clinic", NEW_ADDRESS)
    assert len(audits(app, "location_updated")) == 1

    # The page now knows the location as it is: corrected and sent again, it is saved.
    shown = post_as_shown(admin, path, page, address=NEW_ADDRESS)
    assert "Spine centre saved." in text(shown)
    with app.app_context():
        location = db.session.get(Location, clinic.location)
        assert (location.name, location.address) == ("Spine centre", NEW_ADDRESS)


# An appointment type's duration -------------------------------------------------------------


def type_page(clinic: Clinic) -> str:
    return f"/staff/admin/scheduling/types/{clinic.type}"


def test_a_new_duration_applies_to_new_bookings_and_booked_ones_keep_their_times(
    app: Flask, admin: FlaskClient, clinic: Clinic
) -> None:
    with app.app_context():
        reference = book_first_open_time(clinic).reference
        booked = request(reference).appointment
        kept = (booked.starts_at, booked.ends_at)
        assert kept[1] - kept[0] == timedelta(minutes=45)

    path = type_page(clinic)
    page = admin.get(path).get_data(as_text=True)
    assert form_values(page)["duration_minutes"] == "45"
    assert (
        "A new duration applies to the times offered from now on: appointments already booked "
        "keep their times."
    ) in text(page)
    shown = post_as_shown(admin, path, page, duration_minutes="30")
    assert "Appointment type saved." in text(shown)
    assert (
        "1 appointment of this type is still to come: it keeps its time and its length. Only "
        "times booked from now on take 30 minutes."
    ) in text(shown)
    assert "30 minutes" in text(shown)
    assert audits(app, "appointment_type_updated") == [
        {"duration_minutes": {"before": 45, "after": 30}}
    ]
    with app.app_context():
        appointment = request(reference).appointment
        assert (appointment.starts_at, appointment.ends_at) == kept
        slot = first_open_slot(db.session.get(AppointmentType, clinic.type))
        assert slot.ends_at - slot.starts_at == timedelta(minutes=30)


@pytest.mark.parametrize(("typed", "message"), [("4", "from 5 to 480"), ("", "duration")])
def test_a_duration_out_of_range_is_refused_at_its_box(
    app: Flask, admin: FlaskClient, clinic: Clinic, typed: str, message: str
) -> None:
    path = type_page(clinic)
    page = post_as_shown(
        admin, path, admin.get(path).get_data(as_text=True), duration_minutes=typed
    )
    assert message in field_error(page, "duration_minutes")
    with app.app_context():
        assert db.session.get(AppointmentType, clinic.type).duration_minutes == 45
    assert audits(app, "appointment_type_updated") == []


def test_a_type_page_shown_before_another_admins_change_does_not_undo_it(
    app: Flask, auth: AuthActions, admin: FlaskClient, clinic: Clinic
) -> None:
    path = type_page(clinic)
    older = admin.get(path).get_data(as_text=True)  # this tab, opened first
    other = auth.new_client("admin")
    post_as_shown(other, path, other.get(path).get_data(as_text=True), duration_minutes="60")

    # This tab renames the type: the 45 minutes it still shows must not come back with it.
    page = post_as_shown(admin, path, older, name="Spine evaluation")
    assert (
        "Another administrator changed this appointment type since the page was shown: it is "
        "now New-patient spine evaluation, 60 minutes (In person, at the location). Check the "
        "form below, then save again."
    ) in text(page)
    with app.app_context():
        kind = db.session.get(AppointmentType, clinic.type)
        assert (kind.name, kind.duration_minutes) == ("New-patient spine evaluation", 60)
    assert len(audits(app, "appointment_type_updated")) == 1

    # The page now knows the type as it is: corrected and sent again, it is saved.
    shown = post_as_shown(admin, path, page, duration_minutes="60")
    assert "Appointment type saved." in text(shown)
    with app.app_context():
        kind = db.session.get(AppointmentType, clinic.type)
        assert (kind.name, kind.duration_minutes) == ("Spine evaluation", 60)
