"""A time that was never offered is refused for what it is, on the request's time step, the
manage page and a waitlist offer: a slot value that cannot be read asks for a time again, and a
well-formed time that was never open for booking (past, outside the hours, inside the notice,
past the horizon) is "not available", not "just taken by someone else". Nothing is stored."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from booking.extensions import db
from booking.notifications.models import OutboxEmail
from booking.requests.models import ConsultationRequest, Patient
from booking.requests.waitlist import join_waitlist
from booking.scheduling.availability import OpenSlot, open_slots
from booking.scheduling.models import Appointment, AppointmentType, SlotOffer, SlotOfferRecipient
from booking.scheduling.services import SlotChoice
from booking.timeutil import clinic_today, from_clinic_local, now_utc
from tests.factories import (
    make_request,
)
from tests.support import Clinic, form_tokens, open_manage_link, post_request, valid_answers

CSRF = re.compile(r'csrf_token" type="hidden" value="([^"]+)"')
OFFERED = re.compile(r'name="slot" id="slot-([0-9.]+)"')
# The time step sends the patient to the time picker to choose again.
PICK_AGAIN = (
    '<a class="btn btn-outline-primary" href="/request/time">Choose a time from our open slots</a>'
)
NOT_SENT_AGAIN = '<input type="hidden" name="slot" value="">'  # the refused value is dropped


@dataclass(frozen=True)
class Offered(Clinic):
    """The shared ``clinic`` (Dr. Weber, 08:00-18:00 every day, a 45-minute type) and the
    times it offers three days out and later, earliest first."""

    slots: list[OpenSlot]


@pytest.fixture
def clinic(app: Flask, clinic: Clinic) -> Offered:
    with app.app_context():
        appointment_type = db.session.get(AppointmentType, clinic.type)
        now = now_utc()
        slots = open_slots(appointment_type, now + timedelta(days=3), now + timedelta(days=10))
        return Offered(**vars(clinic), slots=slots)


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
    app: Flask, client: FlaskClient, clinic: Offered, type_id: str, slot: str
) -> None:
    response = post_with_slot(client, type_id, slot.format(key=clinic.slots[0].key))

    assert response.status_code == 422
    page = response.get_data(as_text=True)
    # Named in the summary, linked to the time step's notice, which leads to the open times.
    summary = '<a href="#slot" class="alert-link">Appointment time: Please choose one of the times.'
    assert summary in page
    notice = page[page.index('id="slot"') :]
    assert notice.index("The time you picked is no longer available.") < notice.index(PICK_AGAIN)
    assert NOT_SENT_AGAIN in page and 'name="slot" type="hidden"' not in page
    for model in (ConsultationRequest, Patient, Appointment, OutboxEmail):
        assert count(app, model) == 0, model


def test_no_slot_still_sends_the_request_without_a_time(
    app: Flask, client: FlaskClient, clinic: Offered
) -> None:
    response = post_with_slot(client, str(clinic.type), "")
    assert response.status_code == 303
    assert count(app, ConsultationRequest) == 1
    assert count(app, Appointment) == 0


@pytest.mark.parametrize(("type_id", "slot"), [("1", "garbage"), ("garbage", "{key}")])
def test_a_time_chosen_again_after_the_refusal_is_booked(
    app: Flask, client: FlaskClient, clinic: Offered, type_id: str, slot: str
) -> None:
    refused = post_with_slot(client, type_id, slot.format(key=clinic.slots[0].key))
    assert refused.status_code == 422
    # The patient follows the link to the picker and chooses one of the times it offers.
    picker = client.get(f"/request/time?type={clinic.type}").get_data(as_text=True)
    chosen = OFFERED.findall(picker)[0]
    time_step = client.get(f"/request/steps/time?type={clinic.type}&slot={chosen}")
    page = time_step.get_data(as_text=True)
    assert "Your chosen time" in page
    sent = {
        name: re.search(rf'name="{name}" type="hidden" value="([^"]*)"', page).group(1)
        for name in ("csrf_token", "appointment_type", "slot")
    }
    assert sent["appointment_type"] == str(clinic.type) and sent["slot"] == chosen
    answers = valid_answers(appointment_type=sent.pop("appointment_type"), slot=sent.pop("slot"))
    assert post_request(client, answers, tokens=sent).status_code == 303
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
def booked(app: Flask, client: FlaskClient, clinic: Offered) -> Booked:
    """A request holding the first open time; ``client`` has opened its private link."""
    with app.app_context():
        slot = clinic.slots[0]
        consultation = make_request(
            slot=SlotChoice(clinic.type, slot.specialist_id, slot.location_id, slot.starts_at)
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
        appointment = db.session.scalars(
            select(Appointment)
            .join(ConsultationRequest)
            .where(ConsultationRequest.reference == booked.reference)
        ).one()
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


# --- a well-formed time that was never offered -----------------------------------------------

NOT_OFFERED = "Sorry, that time is not available for booking."
TAKEN = "that time was just taken"


def forged_start(clinic: Offered, kind: str) -> datetime:
    """A start the clinic never offered patients, of one kind."""
    day = clinic_today() + timedelta(days=5)
    now = now_utc()
    with db.session.no_autoflush:
        appointment_type = db.session.get(AppointmentType, clinic.type)
    if kind == "past":
        return from_clinic_local(clinic_today() - timedelta(days=2), time(10))
    if kind == "outside hours":
        return from_clinic_local(day, time(3))
    if kind == "off the quarter hours":
        return from_clinic_local(day, time(10, 7))
    if kind == "too soon":  # in the hours, inside the 24 hours' notice
        soon = open_slots(
            appointment_type,
            now + timedelta(hours=1),
            now + timedelta(hours=23),
            enforce_limits=False,
        )
        return soon[0].starts_at
    assert kind == "too far"  # in the hours, past the 60 days' horizon
    far = open_slots(
        appointment_type, now + timedelta(days=62), now + timedelta(days=64), enforce_limits=False
    )
    return far[0].starts_at


def key_for(clinic: Offered, starts_at: datetime) -> str:
    first = clinic.slots[0]
    return f"{first.specialist_id}.{first.location_id}.{int(starts_at.timestamp())}"


KINDS = ["past", "outside hours", "off the quarter hours", "too soon", "too far"]


@pytest.mark.parametrize("kind", KINDS)
def test_a_time_never_offered_is_refused_as_not_available_not_as_taken(
    app: Flask, client: FlaskClient, clinic: Offered, kind: str
) -> None:
    with app.app_context():
        slot = key_for(clinic, forged_start(clinic, kind))
    response = post_with_slot(client, str(clinic.type), slot)

    assert response.status_code == 409
    page = response.get_data(as_text=True)
    assert NOT_OFFERED in page
    assert TAKEN not in page
    assert PICK_AGAIN in page  # open times to choose from instead
    for model in (ConsultationRequest, Patient, Appointment, OutboxEmail):
        assert count(app, model) == 0, model


def test_a_retired_appointment_type_is_not_available_either(
    app: Flask, client: FlaskClient, clinic: Offered
) -> None:
    with app.app_context():
        db.session.get(AppointmentType, clinic.type).active = False
        db.session.add(AppointmentType(name="Follow-up", duration_minutes=30, active=True))
        db.session.commit()
    response = post_with_slot(client, str(clinic.type), clinic.slots[0].key)
    assert response.status_code == 409
    assert NOT_OFFERED in response.get_data(as_text=True)
    assert count(app, ConsultationRequest) == 0


def test_a_time_someone_booked_is_still_said_to_be_taken(
    app: Flask, client: FlaskClient, clinic: Offered
) -> None:
    slot = clinic.slots[0]
    with app.app_context():
        make_request(
            slot=SlotChoice(clinic.type, slot.specialist_id, slot.location_id, slot.starts_at)
        )
    response = post_with_slot(client, str(clinic.type), slot.key)
    assert response.status_code == 409
    page = response.get_data(as_text=True)
    assert TAKEN in page
    assert NOT_OFFERED not in page
    summary = page[page.index('id="error-summary"') :].split("</div>", 1)[0]
    assert summary.count(TAKEN) == 1  # listed once in the summary, not once per mention
    assert count(app, ConsultationRequest) == 1


@pytest.mark.parametrize("kind", KINDS)
def test_the_manage_page_refuses_a_time_never_offered_as_not_available(
    app: Flask, client: FlaskClient, clinic: Offered, booked: Booked, kind: str
) -> None:
    with app.app_context():
        slot = key_for(clinic, forged_start(clinic, kind))
        emails = db.session.scalar(select(func.count()).select_from(OutboxEmail))
    response = reschedule(client, booked, slot)
    assert response.status_code == 409
    page = response.get_data(as_text=True)
    assert "Sorry, that time is not available for booking. Please choose another." in page
    assert "just taken" not in page
    _unchanged(app, booked, emails)


def test_the_manage_page_still_says_taken_for_a_booked_time(
    app: Flask, client: FlaskClient, clinic: Offered, booked: Booked
) -> None:
    other = next(s for s in clinic.slots if s.starts_at >= booked.starts_at + timedelta(hours=2))
    with app.app_context():
        make_request(
            email="someone.else@example.com",
            slot=SlotChoice(clinic.type, other.specialist_id, other.location_id, other.starts_at),
        )
        emails = db.session.scalar(select(func.count()).select_from(OutboxEmail))
    response = reschedule(client, booked, other.key)
    assert response.status_code == 409
    page = response.get_data(as_text=True)
    assert "Sorry, that time was just taken. Please choose another." in page
    assert "not available for booking" not in page
    _unchanged(app, booked, emails)


def test_a_waitlist_offer_for_a_time_no_longer_offered_says_so(
    app: Flask, client: FlaskClient, clinic: Offered, booked: Booked
) -> None:
    """An offer outlives a change of the hours: here its time is no longer in them. (A time
    that came within the minimum notice closes the offer instead: tests/test_waitlist.py.)"""
    with app.app_context():
        # Offers are for requests on the waiting list they were emailed to
        # (``waitlist.offered_to``).
        waiting = db.session.scalars(
            select(ConsultationRequest).where(ConsultationRequest.reference == booked.reference)
        ).one()
        join_waitlist(waiting)
        # 03:00 in two days: outside the hours, beyond the notice, before the booked time.
        closed = from_clinic_local(clinic_today() + timedelta(days=2), time(3))
        first = clinic.slots[0]
        offer = SlotOffer(
            token="offer-token-" + "x" * 20,
            appointment_type_id=clinic.type,
            specialist_id=first.specialist_id,
            location_id=first.location_id,
            starts_at=closed,
        )
        db.session.add(offer)
        db.session.flush()
        db.session.add(SlotOfferRecipient(offer_id=offer.id, request_id=waiting.id))
        db.session.commit()
        token = offer.token
        emails = db.session.scalar(select(func.count()).select_from(OutboxEmail))
    url = f"{booked.url}/offers/{token}"
    page = client.get(url).get_data(as_text=True)
    # Said when the page opens (no button), and again to a post all the same.
    assert "Sorry, this time is no longer available for booking." in page
    assert "Take this earlier time" not in page
    manage_page = client.get(booked.url).get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', manage_page).group(1)
    response = client.post(url, data={"csrf_token": csrf})
    assert response.status_code == 409
    page = response.get_data(as_text=True)
    assert "Sorry, this time is no longer available for booking." in page
    assert "someone else has already taken" not in page
    _unchanged(app, booked, emails)
    with app.app_context():
        assert db.session.scalars(select(SlotOffer)).one().claimed_by_request_id is None
