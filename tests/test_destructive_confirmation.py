"""Closing, deactivating, deleting and resetting on the admin pages are asked about first,
without JavaScript: the row's button answers with a page saying what will happen (and warning
when patients would be left with nothing to book), and changes nothing; that page's own
button does it."""

from __future__ import annotations

import re
from html import unescape

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.datastructures import MultiDict
from werkzeug.test import TestResponse

from booking.extensions import db
from booking.scheduling.models import (
    Appointment,
    AppointmentType,
    ClinicClosure,
    Location,
    ScheduleException,
    WorkingHours,
)
from booking.staff.models import StaffUser
from booking.timeutil import now_utc, to_clinic_tz
from tests.factories import book_first_open_time, make_appointment_type, make_location
from tests.support import AuthActions, Clinic, csrf_token, page_token

FORM_RE = re.compile(
    r'<form method="post" action="([^"]+)" aria-labelledby="confirm-heading".*?</form>', re.S
)
HIDDEN_RE = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')
CLOSED_DAYS = "/staff/admin/scheduling/closed-days"


def press(client: FlaskClient, path: str, **fields: str) -> TestResponse:
    """A row's button, as the page posts it (no confirmation)."""
    token = csrf_token(client, "/staff/accounts")
    return client.post(path, data={"csrf_token": token, **fields})


def asked(response: TestResponse) -> tuple[str, list[str], str]:
    """The confirmation page's question, warnings and text (it must be one)."""
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    heading = re.search(r'<h1 class="h2" id="confirm-heading">(.*?)</h1>', page, re.S)
    assert heading, "not a confirmation page"
    warnings = re.findall(
        r'<div class="alert alert-warning"><strong>Warning:</strong> (.*?)</div>', page
    )
    return unescape(heading[1]), [unescape(w) for w in warnings], page


def confirm(client: FlaskClient, page: str) -> TestResponse:
    """The confirmation page's own button: its form, as a browser sends it."""
    form = FORM_RE.search(page)
    assert form, "no confirming form"
    data = [(name, unescape(value)) for name, value in HIDDEN_RE.findall(form[0])]
    assert ("confirmed", "1") in data
    return client.post(unescape(form[1]), data=MultiDict(data))


def test_deactivating_a_specialist_is_confirmed_first_and_warns_of_their_appointments(
    app: Flask, client: FlaskClient, clinic: Clinic
) -> None:
    with app.app_context():
        book_first_open_time(clinic)
    AuthActions(client).login(email=clinic.admin.email)

    question, warnings, page = asked(
        press(client, f"/staff/accounts/{clinic.weber.id}/active", active="0")
    )

    assert question == "Deactivate the account of <bdi>Dr. Weber</bdi>?"
    assert warnings == [
        "<bdi>Dr. Weber</bdi> still has 1 appointment to come: it stays booked with them, and "
        "is to be moved to another specialist or cancelled."
    ]
    assert 'href="/staff/accounts"' in page  # cancel
    with app.app_context():
        assert db.session.get(StaffUser, clinic.weber.id).active
    assert confirm(client, page).status_code == 302
    with app.app_context():
        assert not db.session.get(StaffUser, clinic.weber.id).active
    # Reactivating takes nothing away: not asked.
    assert press(client, f"/staff/accounts/{clinic.weber.id}/active", active="1").status_code == 302


def test_closing_the_last_open_location_warns_that_patients_could_book_nothing(
    app: Flask, client: FlaskClient, clinic: Clinic
) -> None:
    AuthActions(client).login(email=clinic.admin.email)
    path = f"/staff/admin/locations/{clinic.location}/active"

    question, warnings, page = asked(press(client, path, active="0"))

    assert question.startswith("Close ") and question.endswith("?")
    assert any("This is the last open location" in w for w in warnings)
    with app.app_context():
        assert db.session.get(Location, clinic.location).active
        other = make_location("Annex", "Hauptstr. 2, Berlin").id
    # Another location open: no such warning.
    _question, warnings, _page = asked(press(client, path, active="0"))
    assert not any("last open location" in w for w in warnings)
    assert confirm(client, page).status_code == 302
    with app.app_context():
        assert not db.session.get(Location, clinic.location).active
        assert db.session.get(Location, other).active


def test_deactivating_the_last_bookable_type_warns_that_patients_could_book_nothing(
    app: Flask, client: FlaskClient, clinic: Clinic
) -> None:
    AuthActions(client).login(email=clinic.admin.email)
    path = f"/staff/admin/scheduling/types/{clinic.type}/active"

    question, warnings, page = asked(press(client, path, active="0"))

    assert question.startswith("Deactivate ") and question.endswith("?")
    assert any("This is the last appointment type patients can book" in w for w in warnings)
    with app.app_context():
        assert db.session.get(AppointmentType, clinic.type).active
        make_appointment_type("Follow-up", minutes=30)
    _question, warnings, _page = asked(press(client, path, active="0"))
    assert not any("last appointment type" in w for w in warnings)
    assert confirm(client, page).status_code == 302
    with app.app_context():
        assert not db.session.get(AppointmentType, clinic.type).active


def test_deleting_hours_and_time_off_is_confirmed_first(
    app: Flask, client: FlaskClient, clinic: Clinic
) -> None:
    with app.app_context():
        row_id = db.session.scalars(
            select(WorkingHours.id).where(WorkingHours.specialist_id == clinic.weber.id)
        ).first()
        start = now_utc().replace(microsecond=0)
        off = ScheduleException(
            specialist_id=clinic.weber.id,
            kind="time_off",
            starts_at=start,
            ends_at=start.replace(year=start.year + 1),
        )
        db.session.add(off)
        db.session.commit()
        off_id = off.id
    AuthActions(client).login(email=clinic.admin.email)
    base = f"/staff/admin/scheduling/specialists/{clinic.weber.id}"

    question, _warnings, page = asked(press(client, f"{base}/hours/{row_id}/delete"))
    assert question.startswith("Delete the working hours of <bdi>Dr. Weber</bdi> on ")
    off_question, _warnings, off_page = asked(press(client, f"{base}/exceptions/{off_id}/delete"))
    assert off_question.startswith("Delete the time off of <bdi>Dr. Weber</bdi> from ")
    with app.app_context():
        assert db.session.get(WorkingHours, row_id) is not None
        assert db.session.get(ScheduleException, off_id) is not None

    assert confirm(client, page).status_code == 302
    assert confirm(client, off_page).status_code == 302
    with app.app_context():
        assert db.session.get(WorkingHours, row_id) is None
        assert db.session.get(ScheduleException, off_id) is None


def test_closing_the_clinic_on_a_booked_day_lists_the_appointments_to_move(
    app: Flask, client: FlaskClient, clinic: Clinic
) -> None:
    """Closing a day cancels nothing: the page warns, and lists each appointment still to
    come on it (reference, time, specialist), linked to its record, so staff can move it."""
    with app.app_context():
        consultation = book_first_open_time(clinic)
        reference, starts_at = consultation.reference, consultation.appointment.starts_at
        day, at = to_clinic_tz(starts_at).date(), to_clinic_tz(starts_at).strftime("%H:%M")
    AuthActions(client).login(email=clinic.admin.email)
    page = client.get(CLOSED_DAYS).get_data(as_text=True)
    closing = {"csrf_token": page_token(page), "day": day.isoformat(), "reason": "Training"}

    question, warnings, page = asked(client.post(CLOSED_DAYS, data=closing))

    assert question.startswith("Close the clinic on ")
    assert warnings == [
        "1 appointment is booked on this day. Closing the clinic does not cancel it: it stays "
        "booked, and its patient would come to a closed clinic. Move it to another day, or "
        "enter extra hours for its specialist."
    ]
    listed = re.findall(r'<li><a href="([^"]+)">(.*?)</a></li>', page)
    assert listed == [
        (f"/staff/requests/{reference}", f"{reference} at {at} with <bdi>Dr. Weber</bdi>")
    ]
    assert confirm(client, page).status_code == 302
    with app.app_context():
        appointment = db.session.scalars(select(Appointment)).one()
        assert appointment.active and appointment.starts_at == starts_at  # not cancelled
        assert db.session.scalars(select(ClinicClosure.day)).all() == [day]
    shown = client.get(CLOSED_DAYS).get_data(as_text=True)
    assert "1 appointment booked on that day was not changed: please move it" in shown
    assert "1 appointment booked</strong>" in shown  # the day's row, with the agenda's link


def test_a_post_from_elsewhere_without_the_pages_token_is_refused(
    app: Flask, client: FlaskClient, clinic: Clinic
) -> None:
    """The confirmation is a form like any other: without the CSRF token it is refused."""
    AuthActions(client).login(email=clinic.admin.email)
    response = client.post(
        f"/staff/accounts/{clinic.weber.id}/active", data={"active": "0", "confirmed": "1"}
    )
    assert response.status_code == 400
    with app.app_context():
        assert db.session.get(StaffUser, clinic.weber.id).active
