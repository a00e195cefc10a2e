"""The waitlist: a freed time is offered by email and goes to the first patient to accept."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from babel.dates import format_datetime
from flask import Flask
from sqlalchemy import func, select

from booking.audit.models import AuditEvent
from booking.dashboard import services as workflow
from booking.extensions import db
from booking.manage import services as manage
from booking.notifications.models import OutboxEmail
from booking.requests import waitlist
from booking.requests.models import ConsultationRequest, RequestStatus, TriageLevel
from booking.requests.waitlist import (
    MIN_OFFER_WINDOW,
    OFFER_LIFETIME,
    OfferAlreadyYours,
    OfferExpired,
    OfferGone,
    OfferLocked,
    OfferUnavailable,
    WaitlistLocked,
    accept_offer,
    join_waitlist,
    leave_waitlist,
    offer_next_waves,
    offer_open_until,
)
from booking.scheduling.availability import open_slots
from booking.scheduling.models import (
    AppointmentType,
    ClinicSettings,
    SlotOffer,
    SlotOfferRecipient,
    WaitlistEntry,
)
from booking.scheduling.services import SlotChoice
from booking.staff.models import StaffUser
from booking.timeutil import END_OF_DAY, WHEN, now_utc, to_clinic_tz
from tests.factories import (
    confirm_at,
    make_appointment_type,
    make_request,
)
from tests.support import Clinic, csrf_token, open_manage_link, section_at, sql_statements

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def _book(appointment_type, slot, email: str) -> ConsultationRequest:
    return make_request(
        email=email,
        slot=SlotChoice(appointment_type.id, slot.specialist_id, slot.location_id, slot.starts_at),
    )


@pytest.fixture
def working_hours() -> dict[str, tuple[str, str]]:
    return {"weber": ("09:00", "17:00")}


@dataclass(frozen=True)
class Waitlist(Clinic):
    """Dr. Weber working 09:00-17:00, a 60-minute type (``type``), one booked request
    ("first", at the earliest time) and three later ones on the waiting list."""

    first: int
    waiting: list[int]
    early: datetime


@pytest.fixture
def clinic(app: Flask, clinic: Clinic) -> Waitlist:
    with app.app_context():
        appointment_type = make_appointment_type("Long evaluation", minutes=60)
        start = now_utc() + timedelta(days=2)
        slots = open_slots(appointment_type, start, start + timedelta(days=5))
        # Every slot is an hour plus the buffer apart only for the first of each: pick far apart.
        early = slots[0]
        later = [s for s in slots if s.starts_at >= early.starts_at + timedelta(days=1)]
        first = _book(appointment_type, early, "first@example.com")
        waiting = [
            _book(appointment_type, later[i * 8], f"waiting{i}@example.com") for i in range(3)
        ]
        for consultation in waiting:
            join_waitlist(consultation)
        return Waitlist(
            **{**vars(clinic), "type": appointment_type.id},
            first=first.id,
            waiting=[w.id for w in waiting],
            early=early.starts_at,
        )


def _cancel_first(app: Flask, clinic: Waitlist) -> SlotOffer:
    with app.app_context():
        manage.cancel(db.session.get(ConsultationRequest, clinic.first), None)
        offer = db.session.scalars(select(SlotOffer)).one()
        db.session.expunge(offer)
        return offer


def test_a_cancellation_offers_the_time_to_the_waitlist(app: Flask, clinic: Waitlist) -> None:
    offer = _cancel_first(app, clinic)
    assert offer.starts_at == clinic.early
    with app.app_context():
        offers = db.session.scalars(
            select(OutboxEmail).where(OutboxEmail.template == "waitlist_offer")
        ).all()
        assert sorted(e.recipient for e in offers) == [
            "waiting0@example.com",
            "waiting1@example.com",
            "waiting2@example.com",
        ]
        assert all(f"/offers/{offer.token}" in e.body_text for e in offers)
        # The email says how long the offer is open: two days, or until the time comes within
        # the minimum notice (24 hours), after which no patient may book it. The time is about
        # two days ahead here, so the notice closes the offer first.
        until = offer.starts_at - timedelta(hours=24)
        assert until < offer.created_at + OFFER_LIFETIME
        # English as written in Germany, where the test clinic is (timeutil.dates_locale).
        when = format_datetime(until, WHEN, tzinfo=ZoneInfo("Europe/Berlin"), locale="en_DE")
        # With the clinic's zone: a patient of a video visit may be in another.
        until_text = f"The offer is open until {when}, Germany (Berlin) Time."
        assert all(until_text in e.body_text and until_text in e.body_html for e in offers)
        # Their times are held, not confirmed: the email does not call them appointments.
        assert all("the time you hold stays as it is" in e.body_text for e in offers)
        assert all("Long evaluation (60 minutes)" in e.body_text for e in offers)  # what kind


def test_an_offer_not_emailed_yet_is_withdrawn_when_its_patient_no_longer_waits(
    app: Flask, clinic: Waitlist
) -> None:
    """The offers' emails wait for the mail server; meanwhile one waiting patient cancels
    and another leaves the list: their offers are not sent after all (an earlier time
    offered after a cancellation), the third patient's is."""
    _cancel_first(app, clinic)
    with app.app_context():
        manage.cancel(db.session.get(ConsultationRequest, clinic.waiting[0]), None)
        leave_waitlist(db.session.get(ConsultationRequest, clinic.waiting[1]))
        offers = db.session.scalars(
            select(OutboxEmail.recipient).where(OutboxEmail.template == "waitlist_offer")
        ).all()
        # waiting0's cancellation freed its own time: offered to those still waiting.
        assert sorted(offers) == ["waiting2@example.com", "waiting2@example.com"]


def _confirm_first(app: Flask, clinic: Waitlist, starts_at: datetime) -> list[SlotOffer]:
    """Staff confirm the held request "first" at ``starts_at``; the offers made."""
    with app.app_context():
        confirm_at(
            db.session.get(ConsultationRequest, clinic.first),
            db.session.get(StaffUser, clinic.coordinator.id),
            db.session.get(AppointmentType, clinic.type),
            starts_at,
            clinic.weber.id,
            clinic.location,
        )
        offers = db.session.scalars(select(SlotOffer)).all()
        db.session.expunge_all()
        return list(offers)


def test_confirming_at_another_time_offers_the_held_time(app: Flask, clinic: Waitlist) -> None:
    with app.app_context():
        appointment_type = db.session.get(AppointmentType, clinic.type)
        later = next(
            s.starts_at
            for s in open_slots(appointment_type, clinic.early, clinic.early + timedelta(days=1))
            if s.starts_at >= clinic.early + timedelta(hours=3)
        )
    (offer,) = _confirm_first(app, clinic, later)
    assert offer.starts_at == clinic.early
    with app.app_context():
        assert db.session.get(ConsultationRequest, clinic.first).appointment.starts_at == later
        offered = db.session.scalars(
            select(OutboxEmail.recipient).where(OutboxEmail.template == "waitlist_offer")
        ).all()
        assert sorted(offered) == [f"waiting{i}@example.com" for i in range(3)]


def test_confirming_at_the_held_time_offers_nothing(app: Flask, clinic: Waitlist) -> None:
    assert _confirm_first(app, clinic, clinic.early) == []
    with app.app_context():
        assert db.session.get(ConsultationRequest, clinic.first).appointment.starts_at == (
            clinic.early
        )
        assert not db.session.scalars(
            select(OutboxEmail).where(OutboxEmail.template == "waitlist_offer")
        ).all()


def test_a_time_still_held_after_the_move_is_not_offered(app: Flask, clinic: Waitlist) -> None:
    """Confirmed a quarter of an hour earlier or later, the hour-long appointment still holds
    most of the time it started at: offering that start would email the waiting patients a
    time that anyone accepting would find taken."""
    with app.app_context():
        held = db.session.get(ConsultationRequest, clinic.first).appointment
        near = [
            s.starts_at
            for s in open_slots(
                db.session.get(AppointmentType, clinic.type),
                clinic.early - timedelta(minutes=15),
                clinic.early + timedelta(minutes=16),
                specialist_id=clinic.weber.id,
                ignore_appointment_id=held.id,
                enforce_limits=False,
            )
            if s.starts_at != clinic.early
        ]
    assert near, "no time a quarter of an hour from the held one"
    assert _confirm_first(app, clinic, near[0]) == []
    with app.app_context():
        moved = db.session.get(ConsultationRequest, clinic.first).appointment
        assert moved.starts_at == near[0]
        assert not db.session.scalars(
            select(OutboxEmail).where(OutboxEmail.template == "waitlist_offer")
        ).all()


def test_the_first_to_accept_gets_it_and_the_others_see_it_is_gone(
    app: Flask, client, clinic: dict
) -> None:
    offer = _cancel_first(app, clinic)
    with app.app_context():
        offer_emails = db.session.scalar(select(func.max(OutboxEmail.id)))
        emails = {
            e.recipient: e.body_text
            for e in db.session.scalars(
                select(OutboxEmail).where(OutboxEmail.template == "waitlist_offer")
            )
        }
    links = {r: re.search(r"https?://[^/\s]+(/manage/\S+)", b).group(1) for r, b in emails.items()}
    # Opening each email's link trades its token for the request's cookie and lands on the
    # offer's page (the same browser holds both patients' cookies, each on its own pages).
    winner, loser = (
        client.get(links[patient]).headers["Location"]
        for patient in ("waiting1@example.com", "waiting0@example.com")
    )
    assert "/offers/" in winner and "/open/" not in winner

    page = client.get(winner).get_data(as_text=True)
    assert "Take this earlier time" in page
    assert client.post(winner, data={"csrf_token": CSRF.search(page).group(1)}).status_code == 302
    # Back on the page (the back button, the email's link again): it is theirs, not "gone";
    # sending it again changes nothing.
    for again in (
        client.get(winner),
        client.post(winner, data={"csrf_token": CSRF.search(page).group(1)}),
    ):
        assert again.status_code == 200
        text = again.get_data(as_text=True)
        assert "You took this earlier time." in text and "already taken" not in text

    page = client.get(loser).get_data(as_text=True)
    assert "already taken" in page
    assert "Take this earlier time" not in page
    # Someone who had the page open before it went: their click is refused too.
    manage_page = client.get(loser.split("/offers/")[0]).get_data(as_text=True)
    response = client.post(loser, data={"csrf_token": CSRF.search(manage_page).group(1)})
    assert response.status_code == 409
    assert "already taken" in response.get_data(as_text=True)

    with app.app_context():
        moved = db.session.get(ConsultationRequest, clinic.waiting[1])
        assert moved.appointment.starts_at == clinic.early == offer.starts_at
        stayed = db.session.get(ConsultationRequest, clinic.waiting[0])
        assert stayed.appointment.starts_at > clinic.early
        # As for any move: the clinic is told, and the later time given up is offered on,
        # to the patient still waiting who holds a later one still (waiting2).
        subjects = db.session.scalars(select(OutboxEmail.subject)).all()
        assert f"Patient update on {moved.reference}: rescheduled" in subjects
        offered_on = db.session.scalars(select(SlotOffer).where(SlotOffer.id != offer.id)).one()
        assert offered_on.starts_at > clinic.early
        recipients = db.session.scalars(
            select(OutboxEmail.recipient).where(
                OutboxEmail.template == "waitlist_offer", OutboxEmail.id > offer_emails
            )
        ).all()
        assert recipients == ["waiting2@example.com"]


def test_twenty_patients_accepting_at_once_one_wins(app: Flask, clinic: Waitlist) -> None:
    app.config["WAITLIST_WAVE_SIZE"] = 20  # all of them emailed at once
    with app.app_context():
        appointment_type = db.session.get(AppointmentType, clinic.type)
        start = now_utc() + timedelta(days=10)
        extra = open_slots(appointment_type, start, start + timedelta(days=30))
        spaced = extra[::8][:17]
        more = [_book(appointment_type, s, f"more{i}@example.com") for i, s in enumerate(spaced)]
        for consultation in more:
            join_waitlist(consultation)
        candidates = clinic.waiting + [m.id for m in more]
    assert len(candidates) == 20
    offer = _cancel_first(app, clinic)

    barrier = threading.Barrier(len(candidates))
    won: list[int] = []
    gone: list[int] = []
    errors: list[BaseException] = []

    def accept(request_id: int) -> None:
        try:
            with app.app_context():
                mine = db.session.get(SlotOffer, offer.id)
                consultation = db.session.get(ConsultationRequest, request_id)
                db.session.commit()  # end the read: never hold a transaction at the barrier
                barrier.wait()
                try:
                    accept_offer(mine, consultation)
                    won.append(request_id)
                except OfferGone:
                    gone.append(request_id)
                finally:
                    db.session.remove()
        except BaseException as exc:  # re-raised in the main thread below
            errors.append(exc)

    threads = [threading.Thread(target=accept, args=(rid,)) for rid in candidates]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    assert len(won) == 1 and len(gone) == 19
    with app.app_context():
        holders = db.session.scalars(
            select(ConsultationRequest).where(ConsultationRequest.id.in_(candidates))
        ).all()
        assert sum(1 for c in holders if c.appointment.starts_at == offer.starts_at) == 1
        assert db.session.get(SlotOffer, offer.id).claimed_by_request_id == won[0]


def _offer_page(app: Flask, client, recipient: str) -> str:
    """The offer page the link in ``recipient``'s offer email leads to (opening the link
    signs the browser in to that request)."""
    with app.app_context():
        email = db.session.scalars(
            select(OutboxEmail).where(
                OutboxEmail.template == "waitlist_offer", OutboxEmail.recipient == recipient
            )
        ).one()
    link = re.search(r"https?://[^/\s]+(/manage/\S+)", email.body_text).group(1)
    return client.get(link).headers["Location"]


def test_an_offer_older_than_its_lifetime_can_no_longer_be_taken(
    app: Flask, client, clinic: Waitlist
) -> None:
    offer = _cancel_first(app, clinic)
    with app.app_context():
        stored = db.session.get(SlotOffer, offer.id)
        stored.created_at = now_utc() - OFFER_LIFETIME - timedelta(minutes=1)
        db.session.commit()
    offer_page = _offer_page(app, client, "waiting0@example.com")
    page = client.get(offer_page).get_data(as_text=True)
    assert "this offer closed on" in page
    assert "Take this earlier time" not in page
    manage_page = client.get(offer_page.split("/offers/")[0]).get_data(as_text=True)
    response = client.post(offer_page, data={"csrf_token": CSRF.search(manage_page).group(1)})
    assert response.status_code == 409
    assert "this offer closed on" in response.get_data(as_text=True)
    with app.app_context():
        waiting = db.session.get(ConsultationRequest, clinic.waiting[0])
        assert waiting.appointment.starts_at > clinic.early
        assert db.session.get(SlotOffer, offer.id).claimed_by_request_id is None
        with pytest.raises(OfferExpired):
            accept_offer(db.session.get(SlotOffer, offer.id), waiting)


def test_an_offer_is_taken_only_by_a_request_it_was_sent_to(app: Flask, client, clinic) -> None:
    """The offer's link, forwarded or read by someone whose request is not on the waiting
    list, takes nothing: its page says it is not offered to this request (no button) and
    the service refuses it."""
    offer = _cancel_first(app, clinic)
    with app.app_context():
        appointment_type = db.session.get(AppointmentType, clinic.type)
        start = now_utc() + timedelta(days=12)
        late = open_slots(appointment_type, start, start + timedelta(days=5))[0]
        outsider = _book(appointment_type, late, "outsider@example.com")  # not waiting
        url = open_manage_link(client, outsider)
        outsider_id = outsider.id
        with pytest.raises(OfferGone):
            accept_offer(db.session.get(SlotOffer, offer.id), outsider)
    offer_page = f"{url}/offers/{offer.token}"
    page = client.get(offer_page)
    assert page.status_code == 200
    assert NOT_OFFERED in page.get_data(as_text=True)
    assert "Take this earlier time" not in page.get_data(as_text=True)
    token = CSRF.search(client.get(url).get_data(as_text=True)).group(1)
    refused = client.post(offer_page, data={"csrf_token": token})
    assert refused.status_code == 409
    assert NOT_OFFERED in refused.get_data(as_text=True)
    assert client.get(f"{url}/offers/not-a-token").status_code == 404
    with app.app_context():
        assert db.session.get(SlotOffer, offer.id).claimed_by_request_id is None
        kept = db.session.get(ConsultationRequest, outsider_id)
        assert kept.appointment.starts_at == late.starts_at


NOT_OFFERED = "This earlier time is no longer offered to your request."


def test_an_offer_after_leaving_the_waiting_list_says_why_it_cannot_be_taken(
    app: Flask, client, clinic: Waitlist
) -> None:
    """The patient left the waiting list after the offer's email: its link (from the
    email) was "page not found"; it now says the offer no longer applies, and takes
    nothing."""
    offer = _cancel_first(app, clinic)
    offer_page = _offer_page(app, client, "waiting0@example.com")
    with app.app_context():
        leave_waitlist(db.session.get(ConsultationRequest, clinic.waiting[0]))
    page = client.get(offer_page)
    assert page.status_code == 200
    assert NOT_OFFERED in page.get_data(as_text=True)
    assert "Take this earlier time" not in page.get_data(as_text=True)
    token = CSRF.search(client.get(offer_page.split("/offers/")[0]).get_data(as_text=True))
    refused = client.post(offer_page, data={"csrf_token": token.group(1)})
    assert refused.status_code == 409
    with app.app_context():
        assert db.session.get(SlotOffer, offer.id).claimed_by_request_id is None
        waiting = db.session.get(ConsultationRequest, clinic.waiting[0])
        assert waiting.appointment.starts_at > clinic.early


def test_an_offer_closes_when_its_time_comes_within_the_minimum_notice(
    app: Flask, client, clinic: Waitlist
) -> None:
    """No patient may book a time within the clinic's minimum notice: the offer closes then,
    as its email says, even inside its two days; the page shows no button and accepting is
    refused as closed, not as taken."""
    offer = _cancel_first(app, clinic)
    with app.app_context():
        # Three days' notice: the offered time, about two days ahead, is within it.
        db.session.add(ClinicSettings(id=1, min_notice_hours=72))
        db.session.commit()
        assert now_utc() < offer.created_at + OFFER_LIFETIME
    offer_page = _offer_page(app, client, "waiting1@example.com")
    page = client.get(offer_page).get_data(as_text=True)
    assert "this offer closed on" in page
    assert "Take this earlier time" not in page
    with app.app_context():
        waiting = db.session.get(ConsultationRequest, clinic.waiting[1])
        with pytest.raises(OfferExpired):
            accept_offer(db.session.get(SlotOffer, offer.id), waiting)
        assert db.session.get(SlotOffer, offer.id).claimed_by_request_id is None


@pytest.mark.parametrize(("hours_open", "offered"), [(1, False), (3, True)])
def test_a_time_that_would_be_offered_for_minutes_only_is_not_offered(
    app: Flask, clinic: Waitlist, hours_open: int, offered: bool
) -> None:
    """An offer closes when its time comes within the minimum notice: a time freed so close
    to that moment that the offer would be open less than ``MIN_OFFER_WINDOW`` is not
    offered at all (no offer, no email); one with a few hours left is."""
    with app.app_context():
        # The minimum notice set so that the freed time comes within it about (between
        # hours_open and hours_open + 1) hours from now.
        ahead = (clinic.early - now_utc()).total_seconds() // 3600
        db.session.add(ClinicSettings(id=1, min_notice_hours=int(ahead) - hours_open))
        db.session.commit()
        manage.cancel(db.session.get(ConsultationRequest, clinic.first), None)
        offers = db.session.scalars(select(SlotOffer)).all()
        emailed = db.session.scalars(
            select(OutboxEmail).where(OutboxEmail.template == "waitlist_offer")
        ).all()
        if not offered:
            assert offers == [] and emailed == []
        else:
            [offer] = offers
            assert offer_open_until(offer) - offer.created_at >= MIN_OFFER_WINDOW
            assert len(emailed) == 3


def test_an_offer_is_not_taken_within_the_change_notice(
    app: Flask, client, clinic: Waitlist
) -> None:
    """Taking an earlier time moves the appointment, which the patient may no longer do
    online once it is within the change and cancel notice: such patients are not emailed an
    offer, and one sent before the notice began is refused on its page with the reason."""
    offer = _cancel_first(app, clinic)
    with app.app_context():
        # Five days' notice: every waiting patient's time (three days or more ahead) is within it.
        db.session.add(ClinicSettings(id=1, min_notice_hours=24, cancel_notice_hours=120))
        db.session.commit()
        # The rule holds in the service too, whoever calls it.
        waiting = db.session.get(ConsultationRequest, clinic.waiting[2])
        with pytest.raises(OfferLocked):
            accept_offer(db.session.get(SlotOffer, offer.id), waiting)
    app.config["CLINIC_PHONE"] = "+49 30 5550 1234"
    offer_page = _offer_page(app, client, "waiting2@example.com")
    page = client.get(offer_page).get_data(as_text=True)
    assert "can no longer be changed online. Please call the clinic: +49 30 5550 1234." in page
    assert "Take this earlier time" not in page
    # Nor can the patient join the list of those waiting (no offer would come).
    with app.app_context(), pytest.raises(WaitlistLocked):
        join_waitlist(db.session.get(ConsultationRequest, clinic.waiting[1]))
    # The page offers no form; a token of this browser's session from another page.
    token = csrf_token(client, "/staff/login")
    response = client.post(offer_page, data={"csrf_token": token})
    assert response.status_code == 409
    with app.app_context():
        assert db.session.get(SlotOffer, offer.id).claimed_by_request_id is None
        waiting = db.session.get(ConsultationRequest, clinic.waiting[2])
        assert waiting.appointment.starts_at > clinic.early
        # A time freed now is offered to none of them.
        before = db.session.scalar(select(func.count()).select_from(OutboxEmail))
        workflow.cancel_request(
            db.session.get(ConsultationRequest, clinic.waiting[0]),
            db.session.get(StaffUser, clinic.coordinator.id),
        )
        offered = db.session.scalars(
            select(OutboxEmail).where(
                OutboxEmail.id > before, OutboxEmail.template == "waitlist_offer"
            )
        ).all()
        assert offered == []


def test_offers_follow_the_appointment_type_staff_set_since_joining(
    app: Flask, clinic: Waitlist
) -> None:
    """Staff gave a patient on the list another kind of appointment: an offer of the kind
    they joined with is not for them, and one made before the change cannot turn their
    appointment back into it."""
    with app.app_context():
        follow_up = make_appointment_type("Follow-up", minutes=30)
        follow_up_id = follow_up.id
        start = now_utc() + timedelta(days=4)
        slots = open_slots(follow_up, start, start + timedelta(days=3))
        times = [slots[0].starts_at, slots[4].starts_at]
        changed, offered_before = clinic.waiting[0], clinic.waiting[1]

    def confirm_as_follow_up(request_id: int, starts_at: datetime) -> None:
        with app.app_context():
            confirm_at(
                db.session.get(ConsultationRequest, request_id),
                db.session.get(StaffUser, clinic.coordinator.id),
                db.session.get(AppointmentType, follow_up_id),
                starts_at,
                clinic.weber.id,
                clinic.location,
            )

    confirm_as_follow_up(changed, times[0])  # frees its held evaluation: offered on
    with app.app_context():
        before = {e.id for e in db.session.scalars(select(OutboxEmail))}
        manage.cancel(db.session.get(ConsultationRequest, clinic.first), None)
        offer = db.session.scalars(
            select(SlotOffer).where(SlotOffer.starts_at == clinic.early)
        ).one()
        db.session.expunge(offer)
        recipients = sorted(
            e.recipient
            for e in db.session.scalars(
                select(OutboxEmail).where(OutboxEmail.template == "waitlist_offer")
            )
            if e.id not in before
        )
        assert recipients == ["waiting1@example.com", "waiting2@example.com"]
    # Offered a long evaluation, then made a follow-up by staff before taking the offer.
    confirm_as_follow_up(offered_before, times[1])
    with app.app_context():
        with pytest.raises(OfferUnavailable):
            accept_offer(
                db.session.get(SlotOffer, offer.id),
                db.session.get(ConsultationRequest, offered_before),
            )
        kept = db.session.get(ConsultationRequest, offered_before).appointment
        assert kept.appointment_type_id == follow_up_id and kept.starts_at != offer.starts_at


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_second_click_on_the_offer_just_taken_says_it_is_theirs(
    app: Flask, clinic: Waitlist
) -> None:
    """A double click (or a second tab): the second attempt read the offer before the first
    one was stored. It was told "someone else has already taken this time" about the time
    it had just been given. PostgreSQL only: SQLite's BEGIN IMMEDIATE makes the second
    attempt wait for the first before it reads anything."""
    offer = _cancel_first(app, clinic)
    with app.app_context():
        # The second click's page, read before the first one is stored.
        stale_offer = db.session.get(SlotOffer, offer.id)
        stale_request = db.session.get(ConsultationRequest, clinic.waiting[1])
        assert stale_offer.claimed_by_request_id is None and stale_request.appointment
        with app.app_context():  # the first click, in its own session, stored first
            accept_offer(
                db.session.get(SlotOffer, offer.id),
                db.session.get(ConsultationRequest, clinic.waiting[1]),
            )
        with pytest.raises(OfferAlreadyYours):
            accept_offer(stale_offer, stale_request)
        # Another patient's click on it, read as late, is still "gone".
        other = db.session.get(ConsultationRequest, clinic.waiting[2])
        with pytest.raises(OfferGone) as refused:
            accept_offer(db.session.get(SlotOffer, offer.id), other)
        assert not isinstance(refused.value, OfferAlreadyYours)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_an_offer_taken_as_a_coordinator_gives_an_earlier_time_does_not_undo_it(
    app: Flask, clinic: Waitlist, monkeypatch: pytest.MonkeyPatch
) -> None:
    offer = _cancel_first(app, clinic)
    patient_id = clinic.waiting[0]
    with app.app_context():
        kind = db.session.get(AppointmentType, clinic.type)
        # Earlier than the offered time, and beyond the patient's 24-hour change notice (the
        # clinic works every day, so the two days before the offer hold such a time).
        earlier = next(
            s
            for s in open_slots(
                kind, now_utc() + timedelta(hours=26), offer.starts_at, enforce_limits=False
            )
            if s.starts_at + timedelta(hours=1, minutes=30) < offer.starts_at
        )
    errors: list[BaseException] = []
    real_expired = waitlist.offer_expired

    def coordinator_confirms(session_offer: SlotOffer, now: datetime | None = None) -> bool:
        """Runs between the patient's ``offered_to`` and the claim: another connection
        confirms the patient at the earlier time and commits. PostgreSQL only: on SQLite
        the patient's claim waits for the database's one writer, then sees the change."""

        def run() -> None:
            try:
                with app.app_context():
                    confirm_at(
                        db.session.get(ConsultationRequest, patient_id),
                        db.session.get(StaffUser, clinic.coordinator.id),
                        db.session.get(AppointmentType, clinic.type),
                        earlier.starts_at,
                        earlier.specialist_id,
                        earlier.location_id,
                    )
            except BaseException as exc:  # reported below, not lost in the thread
                errors.append(exc)

        other = threading.Thread(target=run)
        other.start()
        other.join(10)
        return real_expired(session_offer, now)

    monkeypatch.setattr(waitlist, "offer_expired", coordinator_confirms)
    with app.app_context(), pytest.raises(OfferGone):
        accept_offer(
            db.session.get(SlotOffer, offer.id),
            db.session.get(ConsultationRequest, patient_id),
        )
    assert not errors, errors
    with app.app_context():
        consultation = db.session.get(ConsultationRequest, patient_id)
        assert consultation.status == RequestStatus.CONFIRMED
        assert consultation.appointment.starts_at == earlier.starts_at
        # The offer is still free for the others on the list.
        claimed = db.session.scalar(
            select(SlotOffer.claimed_by_request_id).where(SlotOffer.id == offer.id)
        )
        assert claimed is None


def test_an_offered_time_booked_meanwhile_says_so_before_the_button(
    app: Flask, client, clinic: Waitlist
) -> None:
    """A patient who called the clinic was given the freed time by staff after the offers
    went out: the offer page showed "Take this earlier time", and only the press said it was
    gone. It now says so when the page opens."""
    offer = _cancel_first(app, clinic)
    offer_page = _offer_page(app, client, "waiting0@example.com")
    assert "Take this earlier time" in client.get(offer_page).get_data(as_text=True)
    with app.app_context():
        appointment_type = db.session.get(AppointmentType, clinic.type)
        slot = open_slots(appointment_type, offer.starts_at, offer.starts_at + timedelta(hours=1))[
            0
        ]
        assert slot.starts_at == offer.starts_at
        _book(appointment_type, slot, "caller@example.com")
    page = client.get(offer_page).get_data(as_text=True)
    assert "someone else has already taken this time" in page
    assert "Take this earlier time" not in page


def test_withdrawing_consent_withdraws_and_counts_the_offer_not_sent_yet(
    app: Flask, clinic: Waitlist
) -> None:
    from booking.audit.models import AuditEvent
    from booking.rights.services import withdraw_contact_consent

    _cancel_first(app, clinic)
    with app.app_context():
        withdraw_contact_consent(db.session.get(ConsultationRequest, clinic.waiting[0]))
        event = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "contact_consent_withdrawn")
        ).one()
        assert event.details == {"emails_withdrawn": 1}
        offers = db.session.scalars(
            select(OutboxEmail.recipient).where(OutboxEmail.template == "waitlist_offer")
        ).all()
        assert "waiting0@example.com" not in offers and len(offers) == 2


def _offered(app: Flask, after: int = 0) -> list[str]:
    """The addresses of the offer emails written after outbox id ``after``, in order."""
    with app.app_context():
        return list(
            db.session.scalars(
                select(OutboxEmail.recipient)
                .where(OutboxEmail.template == "waitlist_offer", OutboxEmail.id > after)
                .order_by(OutboxEmail.id)
            )
        )


def _waves(app: Flask, offer: SlotOffer) -> list[dict]:
    """The audit rows of an offer's waves, in order."""
    with app.app_context():
        return [
            e.details
            for e in db.session.scalars(
                select(AuditEvent)
                .where(AuditEvent.action == "slot_offered", AuditEvent.target_id == str(offer.id))
                .order_by(AuditEvent.id)
            )
        ]


def _last_email(app: Flask) -> int:
    with app.app_context():
        return db.session.scalar(select(func.max(OutboxEmail.id))) or 0


def test_the_most_urgent_then_the_longest_waiting_are_offered_first_a_wave_at_a_time(
    app: Flask, clinic: Waitlist
) -> None:
    """Two a wave: the urgent request first, whenever it joined, then the routine one that
    has waited longest on the list; the third is not emailed (yet). Only they are recorded
    as the offer's recipients, and the audit row says which wave and how many."""
    app.config["WAITLIST_WAVE_SIZE"] = 2
    with app.app_context():
        joined = {0: 1, 1: 3, 2: 2}  # hours ago: waiting1 joined first, waiting0 last
        for i, hours in joined.items():
            entry = db.session.scalars(
                select(WaitlistEntry).where(WaitlistEntry.request_id == clinic.waiting[i])
            ).one()
            entry.created_at = now_utc() - timedelta(hours=hours)
        db.session.get(ConsultationRequest, clinic.waiting[0]).triage_level = TriageLevel.URGENT
        db.session.commit()
    offer = _cancel_first(app, clinic)
    assert _offered(app) == ["waiting0@example.com", "waiting1@example.com"]
    with app.app_context():
        recipients = db.session.scalars(
            select(SlotOfferRecipient.request_id).where(SlotOfferRecipient.offer_id == offer.id)
        ).all()
        assert sorted(recipients) == sorted(clinic.waiting[:2])
    assert _waves(app, offer) == [
        {"starts_at": offer.starts_at.isoformat(), "wave": 1, "patients": 2}
    ]


def test_the_next_wave_goes_out_after_the_interval_and_not_before(
    app: Flask, clinic: Waitlist
) -> None:
    app.config["WAITLIST_WAVE_SIZE"] = 1
    offer = _cancel_first(app, clinic)
    assert _offered(app) == ["waiting0@example.com"]
    first = _last_email(app)
    interval = timedelta(minutes=app.config["WAITLIST_WAVE_MINUTES"])
    with app.app_context():
        assert offer_next_waves(now=offer.created_at + interval - timedelta(minutes=1)) == []
    assert _offered(app, first) == []
    second_at = offer.created_at + interval + timedelta(minutes=1)
    with app.app_context():
        assert len(offer_next_waves(now=second_at)) == 1
        # The run after it, a minute later, has nothing to send: the interval counts again.
        assert offer_next_waves(now=second_at + timedelta(minutes=1)) == []
    assert _offered(app, first) == ["waiting1@example.com"]
    second = _last_email(app)
    with app.app_context():
        assert len(offer_next_waves(now=second_at + interval)) == 1
        # Everyone waiting has been emailed: no more waves, no audit row for an empty one.
        assert offer_next_waves(now=second_at + 3 * interval) == []
        assert db.session.get(SlotOffer, offer.id).wave == 3
    # Nobody new to email: looked at again after the interval, not every minute till then.
    with sql_statements(app) as statements, app.app_context():
        assert offer_next_waves(now=second_at + 3 * interval + timedelta(minutes=1)) == []
    assert not [q for q in statements if q.lstrip().upper().startswith("UPDATE")], statements
    assert _offered(app, second) == ["waiting2@example.com"]
    assert [w["wave"] for w in _waves(app, offer)] == [1, 2, 3]
    assert [w["patients"] for w in _waves(app, offer)] == [1, 1, 1]
    # A patient of a later wave may take it.
    with app.app_context():
        accept_offer(
            db.session.get(SlotOffer, offer.id),
            db.session.get(ConsultationRequest, clinic.waiting[2]),
        )
        assert db.session.get(SlotOffer, offer.id).claimed_by_request_id == clinic.waiting[2]


def test_each_email_of_a_next_wave_goes_to_the_queue_at_once_by_its_id(
    app: Flask, clinic: Waitlist
) -> None:
    """Each patient of a wave is handed to the worker at once, by the outbox row's id: none
    waits for the sweep of lost tasks (MAIL_REQUEUE_AFTER_SECONDS), which would give the
    others of the wave minutes' start on a time the first to take it gets."""
    app.config["WAITLIST_WAVE_SIZE"] = 2
    offer = _cancel_first(app, clinic)  # the first wave: waiting0 and waiting1
    before = _last_email(app)
    huey = app.extensions["huey"]
    huey.flush()  # the first wave's tasks
    at = offer.created_at + timedelta(minutes=app.config["WAITLIST_WAVE_MINUTES"] + 1)
    with app.app_context():
        sent = offer_next_waves(now=at)
        written = db.session.scalars(
            select(OutboxEmail.id).where(
                OutboxEmail.template == "waitlist_offer", OutboxEmail.id > before
            )
        ).all()
    assert len(written) == 1 and sent == written
    assert [(task.name, task.args) for task in huey.pending()] == [("deliver_email", (written[0],))]


def test_no_next_wave_in_the_quiet_hours_the_due_one_goes_when_they_end(
    app: Flask, clinic: Waitlist
) -> None:
    """A time freed in the evening goes to its first wave at once; the next waves wait for
    the morning, so the urgent patients of the first are not outrun while they sleep."""
    app.config["WAITLIST_WAVE_SIZE"] = 1
    offer = _cancel_first(app, clinic)
    assert _offered(app) == ["waiting0@example.com"]  # the first wave, whatever the hour
    first = _last_email(app)
    interval = timedelta(minutes=app.config["WAITLIST_WAVE_MINUTES"])
    # Quiet from half an hour after the offer to three hours after it (clinic time).
    quiet_from, quiet_to = offer.created_at + timedelta(minutes=30), offer.created_at + 3 * interval
    with app.app_context():
        app.config["WAITLIST_QUIET_HOURS"] = "-".join(
            to_clinic_tz(at).strftime("%H:%M") for at in (quiet_from, quiet_to)
        )
    waitlist.init_app(app)
    with app.app_context():
        assert offer_next_waves(now=offer.created_at + interval + timedelta(minutes=1)) == []
        assert offer_next_waves(now=quiet_to - timedelta(minutes=1)) == []
        assert db.session.get(SlotOffer, offer.id).wave == 1
    assert _offered(app, first) == []
    with app.app_context():
        assert len(offer_next_waves(now=quiet_to + timedelta(minutes=1))) == 1
    assert _offered(app, first) == ["waiting1@example.com"]


@pytest.mark.parametrize(
    ("setting", "quiet"),
    [
        (
            "21:00-08:00",
            {"20:59": False, "21:00": True, "02:00": True, "07:59": True, "08:00": False},
        ),
        ("13:00-14:30", {"12:59": False, "13:00": True, "14:29": True, "14:30": False}),
        # To midnight, as opening and working hours may end (24:00, the end of the day).
        (
            "21:00-24:00",
            {"20:59": False, "21:00": True, "23:59:59.999999": True, "00:00": False},
        ),
        ("0:00-24:00", {"00:00": True, "12:00": True, "23:59:59.999999": True}),
        ("", {"03:00": False, "21:30": False}),
    ],
)
def test_quiet_hours_are_read_in_clinic_time_and_may_cross_midnight(
    app: Flask, setting: str, quiet: dict[str, bool]
) -> None:
    app.config["WAITLIST_QUIET_HOURS"] = setting
    waitlist.init_app(app)
    with app.app_context():
        day = to_clinic_tz(now_utc()).date()
        for at, expected in quiet.items():
            moment = datetime.combine(
                day, time.fromisoformat(at), tzinfo=ZoneInfo(app.config["CLINIC_TIMEZONE"])
            )
            assert waitlist.in_quiet_hours(moment) is expected, (setting, at)


@pytest.mark.parametrize(
    "setting", ["9pm-8am", "21:00", "25:00-08:00", "21:00-21:00", "21:00-24:30", "21:00-25:00"]
)
def test_quiet_hours_that_cannot_be_read_stop_the_app(setting: str) -> None:
    from booking import create_app

    with pytest.raises(RuntimeError, match="WAITLIST_QUIET_HOURS must"):
        create_app({"SQLALCHEMY_DATABASE_URI": "sqlite://", "WAITLIST_QUIET_HOURS": setting})


def test_quiet_hours_may_end_at_24_00_but_not_start_there() -> None:
    assert waitlist.read_quiet_hours("21:00-24:00") == (time(21), END_OF_DAY)
    assert waitlist.read_quiet_hours("21:00 - 24:00") == (time(21), END_OF_DAY)
    with pytest.raises(ValueError, match="may end at 24:00 but not start there"):
        waitlist.read_quiet_hours("24:00-08:00")


@pytest.mark.parametrize("why", ["taken", "booked", "expired", "closing"])
def test_no_next_wave_for_an_offer_taken_booked_closed_or_closing(
    app: Flask, clinic: Waitlist, why: str
) -> None:
    """The time was taken through the offer, or given by staff to a patient who called; or
    the offer has closed, or would close less than MIN_OFFER_WINDOW after the next wave."""
    app.config["WAITLIST_WAVE_SIZE"] = 1
    offer = _cancel_first(app, clinic)
    interval = timedelta(minutes=app.config["WAITLIST_WAVE_MINUTES"])
    at = offer.created_at + interval + timedelta(minutes=1)
    before = _last_email(app)
    with app.app_context():
        if why == "taken":
            accept_offer(
                db.session.get(SlotOffer, offer.id),
                db.session.get(ConsultationRequest, clinic.waiting[0]),
            )
        elif why == "booked":
            appointment_type = db.session.get(AppointmentType, clinic.type)
            slot = open_slots(
                appointment_type, offer.starts_at, offer.starts_at + timedelta(hours=1)
            )[0]
            assert slot.starts_at == offer.starts_at
            _book(appointment_type, slot, "caller@example.com")
        elif why == "expired":
            at = offer_open_until(offer) + timedelta(minutes=1)
        else:
            at = offer_open_until(offer) - MIN_OFFER_WINDOW + timedelta(minutes=1)
        assert at > offer.created_at + interval
        offer_next_waves(now=at)
        assert db.session.get(SlotOffer, offer.id).wave == 1
        # For good: the job no longer works this offer every minute (a claim, a look at the
        # calendar) for the rest of its two days.
        with sql_statements(app) as statements:
            offer_next_waves(now=at + timedelta(minutes=1))
        assert not [q for q in statements if q.lstrip().upper().startswith("UPDATE")], statements
        # Taking it offers on the later time given up (another offer): none of this one.
        assert not [
            e
            for e in db.session.scalars(select(OutboxEmail).where(OutboxEmail.id > before))
            if f"/offers/{offer.token}" in e.body_text
        ]
    assert [w["wave"] for w in _waves(app, offer)] == [1]


def test_a_forwarded_offer_takes_nothing_for_another_waiting_patient(
    app: Flask, client, clinic: Waitlist
) -> None:
    """waiting1 waits for an earlier time too, but the first wave went to waiting0 only: the
    link forwarded to them shows no button and taking it is refused, until a wave emails
    them."""
    app.config["WAITLIST_WAVE_SIZE"] = 1
    offer = _cancel_first(app, clinic)
    with app.app_context():
        other = db.session.get(ConsultationRequest, clinic.waiting[1])
        url = open_manage_link(client, other)
        with pytest.raises(OfferGone):
            accept_offer(db.session.get(SlotOffer, offer.id), other)
    offer_page = f"{url}/offers/{offer.token}"
    page = client.get(offer_page).get_data(as_text=True)
    assert NOT_OFFERED in page and "Take this earlier time" not in page
    token = CSRF.search(client.get(url).get_data(as_text=True)).group(1)
    refused = client.post(offer_page, data={"csrf_token": token})
    assert refused.status_code == 409
    with app.app_context():
        assert db.session.get(SlotOffer, offer.id).claimed_by_request_id is None
        assert db.session.get(ConsultationRequest, clinic.waiting[1]).appointment.starts_at > (
            clinic.early
        )
        later = offer.created_at + timedelta(minutes=app.config["WAITLIST_WAVE_MINUTES"] + 1)
        offer_next_waves(now=later)
    assert "Take this earlier time" in client.get(offer_page).get_data(as_text=True)


def test_two_workers_running_the_wave_job_at_once_send_one_wave(
    app: Flask, clinic: Waitlist
) -> None:
    app.config["WAITLIST_WAVE_SIZE"] = 1
    offer = _cancel_first(app, clinic)
    before = _last_email(app)
    at = offer.created_at + timedelta(minutes=app.config["WAITLIST_WAVE_MINUTES"] + 1)
    barrier = threading.Barrier(2)
    sent: list[list[int]] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            with app.app_context():
                try:
                    barrier.wait()
                    sent.append(offer_next_waves(now=at))
                finally:
                    db.session.remove()
        except BaseException as exc:  # re-raised in the main thread below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    assert sorted(len(ids) for ids in sent) == [0, 1]
    assert _offered(app, before) == ["waiting1@example.com"]
    assert [w["wave"] for w in _waves(app, offer)] == [1, 2]
    with app.app_context():
        assert db.session.get(SlotOffer, offer.id).wave == 2


def test_one_offers_failing_wave_holds_back_no_other_offers(
    app: Flask, clinic: Waitlist, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Two offers due their next wave; the first one's email cannot be written: the second's
    wave still goes out, and the first's claim is undone with it, so the next run sends it."""
    app.config["WAITLIST_WAVE_SIZE"] = 1
    first = _cancel_first(app, clinic)  # the early time: waiting0 emailed
    with app.app_context():
        manage.cancel(db.session.get(ConsultationRequest, clinic.waiting[0]), None)
        second = db.session.scalars(select(SlotOffer).where(SlotOffer.id != first.id)).one()
        db.session.expunge(second)
    # The second offer's first wave; waiting0's email of the first, not sent yet, was
    # withdrawn as they cancelled.
    assert _offered(app) == ["waiting1@example.com"]
    before = _last_email(app)
    at = second.created_at + timedelta(minutes=app.config["WAITLIST_WAVE_MINUTES"] + 1)
    compose = waitlist.emails.waitlist_offer

    def fail_for_the_first(consultation, offer, open_until):
        if offer.id == first.id:
            raise RuntimeError("cannot compose")
        return compose(consultation, offer, open_until)

    monkeypatch.setattr(waitlist.emails, "waitlist_offer", fail_for_the_first)
    with app.app_context():
        [sent] = offer_next_waves(now=at)  # the first offer's, earlier in the list, failed
        assert f"/offers/{second.token}" in db.session.get(OutboxEmail, sent).body_text
        assert db.session.get(SlotOffer, first.id).wave == 1
        assert db.session.get(SlotOffer, second.id).wave == 2
    assert _offered(app, before) == ["waiting2@example.com"]
    assert f"next wave of offer {first.id} failed; the others go on" in caplog.text
    monkeypatch.setattr(waitlist.emails, "waitlist_offer", compose)
    with app.app_context():
        [again] = offer_next_waves(now=at)
        assert f"/offers/{first.token}" in db.session.get(OutboxEmail, again).body_text
        assert db.session.get(SlotOffer, first.id).wave == 2
    assert _offered(app, before) == ["waiting2@example.com", "waiting1@example.com"]


def _offer_email(app: Flask, recipient: str) -> int:
    with app.app_context():
        return db.session.scalars(
            select(OutboxEmail.id).where(
                OutboxEmail.template == "waitlist_offer", OutboxEmail.recipient == recipient
            )
        ).one()


@pytest.mark.parametrize("ended", ["taken", "closed", "booked"])
def test_an_offer_gone_before_its_email_could_go_is_not_sent_and_shown_to_staff(
    mail_settings: dict, app: Flask, clinic: Waitlist, smtp, auth, ended: str
) -> None:
    """The offer's emails wait (the queue down, the mail server away: retried for days).
    One still goes, late, while the offer is open. Then the offer ends: another patient
    takes it, it closes, or the clinic books its time for a caller. Sent now, an email
    would send its patient to an offer that is gone: it is not sent, and it is failed with
    its reason, so the record shows staff the patient was never told of it, as past."""
    from booking.notifications.models import OutboxStatus
    from booking.notifications.services import deliver_outbox_email
    from booking.requests.emails import unnotified

    offer = _cancel_first(app, clinic)
    late, gone = (
        _offer_email(app, "waiting2@example.com"),
        _offer_email(app, "waiting0@example.com"),
    )
    with app.app_context():
        assert deliver_outbox_email(late) is None  # open: sent, however late
        if ended == "taken":
            accept_offer(
                db.session.get(SlotOffer, offer.id),
                db.session.get(ConsultationRequest, clinic.waiting[1]),
            )
        elif ended == "closed":
            db.session.get(SlotOffer, offer.id).created_at = now_utc() - OFFER_LIFETIME
            db.session.commit()
        else:
            appointment_type = db.session.get(AppointmentType, clinic.type)
            end = offer.starts_at + timedelta(hours=1)
            slot = open_slots(appointment_type, offer.starts_at, end)[0]
            assert slot.starts_at == offer.starts_at
            _book(appointment_type, slot, "caller@example.com")
        assert deliver_outbox_email(gone) is None
        email = db.session.get(OutboxEmail, gone)
        assert (email.status, email.last_error) == (OutboxStatus.FAILED, "OfferClosed")
        consultation = db.session.get(ConsultationRequest, clinic.waiting[0])
        assert [e.id for e in unnotified(consultation)] == [gone]
        reference = consultation.reference
    assert [r.rcpt_tos for r in smtp.collector.wait_for(1)] == [["waiting2@example.com"]]
    assert len(smtp.received) == 1
    auth.login("coordinator")
    page = auth.client.get(f"/staff/requests/{reference}").get_data(as_text=True)
    banner = section_at(page, 'id="unnotified"')
    assert "An earlier time is free" in banner
    assert "(not sent: the offer was no longer open when it could go out)" in banner


@pytest.mark.parametrize("booked", [False, True])
def test_a_failed_offer_is_not_sent_again_once_the_clinic_booked_its_time(
    app: Flask, clinic: Waitlist, booked: bool
) -> None:
    """An offer's email failed for good (the patient's mailbox refused it). Staff send the
    patient's failed emails again: the offer goes again while it is open, but not once the
    clinic has booked its time for a caller (nobody took the offer, nor did it close): its
    link would only say the time is taken. It is left out, as its delivery would leave it."""
    from booking.dashboard.services import resend_patient_emails
    from booking.notifications.models import OutboxStatus

    offer = _cancel_first(app, clinic)
    failed = _offer_email(app, "waiting0@example.com")
    with app.app_context():
        db.session.get(OutboxEmail, failed).status = OutboxStatus.FAILED
        db.session.commit()
        if booked:
            appointment_type = db.session.get(AppointmentType, clinic.type)
            end = offer.starts_at + timedelta(hours=1)
            slot = open_slots(appointment_type, offer.starts_at, end)[0]
            assert slot.starts_at == offer.starts_at
            _book(appointment_type, slot, "caller@example.com")
        resent = resend_patient_emails(
            db.session.get(ConsultationRequest, clinic.waiting[0]),
            db.session.get(StaffUser, clinic.coordinator.id),
            "waiting0@example.com",
        )
        templates = [db.session.get(OutboxEmail, i).template for i in resent.email_ids]
    assert templates == ([] if booked else ["waitlist_offer"])
    assert resent.left_out == (1 if booked else 0)
