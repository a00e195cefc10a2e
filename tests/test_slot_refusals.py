"""A time that was never offered is refused for what it is: a slot value that cannot be read
asks for a time again (nothing stored), on the request form and on the manage page."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from booking.extensions import db
from booking.notifications.models import OutboxEmail
from booking.patients.models import ConsultationRequest, Patient
from booking.scheduling.availability import OpenSlot, open_slots
from booking.scheduling.models import Appointment
from booking.scheduling.services import SlotChoice
from booking.timeutil import now_utc
from tests.factories import (
    make_appointment_type,
    make_hours,
    make_location,
    make_request,
    make_staff,
)
from tests.support import form_tokens, open_manage_link, post_request, valid_answers

CSRF = re.compile(r'csrf_token" type="hidden" value="([^"]+)"')
OFFERED = re.compile(r'name="slot" id="slot-([0-9.]+)"')


@dataclass
class Clinic:
    type_id: int
    slots: list[OpenSlot]  # open times three days out and later, earliest first


@pytest.fixture
def clinic(app: Flask) -> Clinic:
    """One specialist working every day 08:00-18:00 at one place; a 45-minute type."""
    with app.app_context():
        specialist = make_staff("specialist", "weber@example.com", full_name="Dr. Weber")
        location = make_location()
        appointment_type = make_appointment_type(minutes=45)
        make_hours(specialist, location)
        now = now_utc()
        slots = open_slots(appointment_type, now + timedelta(days=3), now + timedelta(days=10))
        return Clinic(appointment_type.id, slots)


def count(app: Flask, model: type) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model))


def post_with_slot(client: FlaskClient, type_id: str, slot: str):
    tokens = form_tokens(client, f"/request?type={type_id}&slot={slot}")
    return post_request(client, valid_answers(appointment_type=type_id, slot=slot), tokens=tokens)


# --- a slot value that cannot be read --------------------------------------------------------


@pytest.mark.parametrize(
    ("type_id", "slot"),
    [
        ("1", "garbage"),
        ("1", "1.1"),
        ("1", "1.1.-5"),
        ("garbage", "{key}"),  # a good time of no appointment type
    ],
)
def test_a_slot_value_that_cannot_be_read_is_asked_for_again(
    app: Flask, client: FlaskClient, clinic: Clinic, type_id: str, slot: str
) -> None:
    response = post_with_slot(client, type_id, slot.format(key=clinic.slots[0].key))

    assert response.status_code == 422
    page = response.get_data(as_text=True)
    # Named in the summary, linked to the time field, which offers open times again.
    summary = '<a href="#slot" class="alert-link">Appointment time: Please choose one of the times.'
    assert summary in page
    field = page[page.index('<fieldset id="slot"') :]
    field = field[: field.index("</fieldset>")]
    assert "Please choose one of the times." in field
    assert OFFERED.findall(field)
    assert 'name="slot" type="hidden"' not in page  # the unreadable value is not sent again
    for model in (ConsultationRequest, Patient, Appointment, OutboxEmail):
        assert count(app, model) == 0, model


def test_no_slot_still_sends_the_request_without_a_time(
    app: Flask, client: FlaskClient, clinic: Clinic
) -> None:
    response = post_with_slot(client, str(clinic.type_id), "")
    assert response.status_code == 303
    assert count(app, ConsultationRequest) == 1
    assert count(app, Appointment) == 0


def test_a_time_chosen_again_after_the_refusal_is_booked(
    app: Flask, client: FlaskClient, clinic: Clinic
) -> None:
    page = post_with_slot(client, str(clinic.type_id), "garbage").get_data(as_text=True)
    tokens = {
        "csrf_token": CSRF.search(page).group(1),
        "submission_token": re.search(
            r'name="submission_token" type="hidden" value="([^"]+)"', page
        ).group(1),
    }
    chosen = OFFERED.findall(page)[0]
    answers = valid_answers(appointment_type=str(clinic.type_id), slot=chosen)
    assert post_request(client, answers, tokens=tokens).status_code == 303
    with app.app_context():
        appointment = db.session.scalars(select(Appointment)).one()
        assert int(appointment.starts_at.timestamp()) == int(chosen.rpartition(".")[2])


# --- the manage page's reschedule form -------------------------------------------------------


@dataclass
class Booked:
    reference: str
    url: str
    starts_at: datetime


@pytest.fixture
def booked(app: Flask, client: FlaskClient, clinic: Clinic) -> Booked:
    """A request holding the first open time; ``client`` has opened its private link."""
    with app.app_context():
        slot = clinic.slots[0]
        consultation = make_request(
            slot=SlotChoice(clinic.type_id, slot.specialist_id, slot.location_id, slot.starts_at)
        )
        return Booked(
            consultation.reference, open_manage_link(client, consultation), slot.starts_at
        )


def reschedule(client: FlaskClient, booked: Booked, slot: str):
    page = client.get(booked.url + "/reschedule").get_data(as_text=True)
    return client.post(
        booked.url + "/reschedule", data={"csrf_token": CSRF.search(page).group(1), "slot": slot}
    )


def _unchanged(app: Flask, booked: Booked, emails: int) -> None:
    with app.app_context():
        appointment = db.session.scalars(select(Appointment)).one()
        assert (appointment.starts_at, appointment.sequence) == (booked.starts_at, 0)
        assert db.session.scalar(select(func.count()).select_from(OutboxEmail)) == emails


@pytest.mark.parametrize("slot", ["garbage", "1.1", "1.1.-5", ""])
def test_the_manage_page_asks_again_for_a_slot_value_it_cannot_read(
    app: Flask, client: FlaskClient, booked: Booked, slot: str
) -> None:
    emails = count(app, OutboxEmail)
    response = reschedule(client, booked, slot)
    assert response.status_code == 409
    page = response.get_data(as_text=True)
    assert '<div class="alert alert-danger" role="alert" id="problem" tabindex="-1">' in page
    assert "Please choose one of the times." in page
    assert OFFERED.search(page)  # the times to choose from
    _unchanged(app, booked, emails)
