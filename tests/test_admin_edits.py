"""An admin corrects what was set up earlier, through the real forms: a location's address
(patients read the new one in every email and calendar file written from then on) and an
appointment type's duration (new bookings only). Each change is audited; a page shown before
another admin's change does not undo it."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update

from booking.audit.models import AuditEvent
from booking.extensions import db
from booking.notifications.models import OutboxEmail, OutboxStatus
from booking.requests.events import EventKind, RequestEvent
from booking.requests.models import ConsultationRequest, RequestStatus
from booking.requests.reminders import send_due_reminders
from booking.scheduling.models import Appointment, AppointmentType, Location, VisitMode
from booking.staff.models import StaffUser
from booking.timeutil import now_utc
from tests.factories import (
    appointment_started,
    book_first_open_time,
    confirm_at,
    confirmed_request,
    make_appointment_type,
    move_to_next_time,
    offer_a_cancelled_time,
    set_visit_mode,
)
from tests.smtp import SmtpServer
from tests.support import (
    AuthActions,
    Clinic,
    calendar_location,
    checked_radios,
    deliver_waiting_emails,
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
    assert "it is emailed to every patient with an in-person appointment to come here" in text(page)
    shown = post_as_shown(admin, path, page, address=f"  {NEW_ADDRESS} ")
    assert "Main clinic saved." in text(shown)
    # The admin is told the patients will be emailed the new address: the emails are only in
    # the outbox yet.
    assert (
        "2 patients with appointments to come will be emailed the new address, with their "
        "calendar events updated."
    ) in text(shown)
    assert NEW_ADDRESS in text(shown)
    assert audits(app, "location_updated") == [
        {"address": {"before": OLD_ADDRESS, "after": NEW_ADDRESS}, "patients_emailed": 2}
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
    assert "Nothing was changed for <bdi>Main clinic</bdi>." in shown
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
        f"<bdi>Main clinic</bdi>, <bdi>{NEW_ADDRESS}</bdi>. Check the names and address below, "
        "then save again."
    ) in page
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


# The patients going there are told -----------------------------------------------------------


def calendar_event(ics: str) -> tuple[str, int, str]:
    """A calendar file's one event: its UID, SEQUENCE and LOCATION."""
    from icalendar import Calendar

    (event,) = Calendar.from_ical(ics).walk("VEVENT")
    return str(event["UID"]), int(event["SEQUENCE"]), str(event["LOCATION"])


def book_type(clinic: Clinic, kind: AppointmentType, **overrides: object) -> str:
    """A request booked at ``kind``'s first open time; its reference."""
    from booking.scheduling.services import SlotChoice
    from tests.factories import make_request

    slot = first_open_slot(kind)
    return make_request(
        slot=SlotChoice(kind.id, slot.specialist_id, slot.location_id, slot.starts_at),
        **overrides,
    ).reference


def test_every_patient_going_to_the_new_address_is_emailed_it_with_their_calendar_updated(
    app: Flask, admin: FlaskClient, clinic: Clinic
) -> None:
    with app.app_context():
        kind = db.session.get(AppointmentType, clinic.type)
        held = book_type(clinic, kind)  # a time picked, not confirmed yet
        spanish = book_type(clinic, kind, locale="es", email="ana@example.com")
        coordinator = db.session.get(StaffUser, clinic.coordinator.id)
        booked = request(spanish).appointment
        confirm_at(
            request(spanish),
            coordinator,
            kind,
            booked.starts_at,
            booked.specialist_id,
            booked.location_id,
        )
        # Not told: a video visit (nobody comes to the address), a cancelled request, an
        # appointment already begun, a patient marked deceased.
        video = make_appointment_type(name="Video review", minutes=30)
        video.mode = VisitMode.VIDEO
        db.session.commit()
        book_type(clinic, video, email="video@example.com")
        cancelled = book_type(clinic, kind, email="cancelled@example.com")
        request(cancelled).status = RequestStatus.CANCELLED
        request(cancelled).appointment.active = False
        begun = book_type(clinic, kind, email="begun@example.com")
        appointment_started(begun)
        deceased = book_type(clinic, kind, email="family@example.com")
        request(deceased).patient.deceased_at = now_utc()
        db.session.commit()
        before = {
            reference: (request(reference).appointment.uid, request(reference).appointment.sequence)
            for reference in (held, spanish)
        }

    path = location_page(clinic)
    shown = post_as_shown(admin, path, admin.get(path).get_data(as_text=True), address=NEW_ADDRESS)
    assert (
        "2 patients with appointments to come will be emailed the new address, with their "
        "calendar events updated."
    ) in text(shown)
    assert audits(app, "location_updated")[-1]["patients_emailed"] == 2

    told = outbox_emails(app, "appointment_address")
    assert sorted(email.recipient for email in told) == [
        "ana@example.com",
        "erika.mustermann@example.com",
    ]
    with app.app_context():
        for email in told:
            consultation = db.session.get(ConsultationRequest, email.request_id)
            appointment = consultation.appointment
            uid, sequence = before[consultation.reference]
            # The same event, one sequence on: the patient's calendar moves it to the new place.
            assert calendar_event(email.attachment_body) == (
                uid,
                sequence + 1,
                f"Main clinic, {NEW_ADDRESS}",
            )
            assert appointment.sequence == sequence + 1
            assert email.attachment_type.startswith("text/calendar; method=REQUEST")
            for body in (email.body_text, text(email.body_html)):
                assert NEW_ADDRESS in body and OLD_ADDRESS not in body
                assert consultation.reference in body
                assert "/manage/open/" not in body  # no private link: it asks nothing
            assert consultation.reference in email.subject
    (english,) = [e for e in told if e.recipient != "ana@example.com"]
    assert "The appointment itself has not: it is on the same day, at the same time." in (
        english.body_text
    )
    assert "If you have a question, or cannot come to the new address" in english.body_text
    (es,) = [e for e in told if e.recipient == "ana@example.com"]
    assert es.attachment_name == "cita.ics"  # written in the patient's language


def test_a_change_of_spacing_or_capitals_emails_nobody(
    app: Flask, admin: FlaskClient, clinic: Clinic
) -> None:
    with app.app_context():
        book_first_open_time(clinic)
    path = location_page(clinic)
    page = admin.get(path).get_data(as_text=True)
    shown = post_as_shown(admin, path, page, address="friedrichstr.  1,  BERLIN")
    assert "The address changed in spacing or capitals only" in text(shown)
    assert outbox_emails(app, "appointment_address") == []
    with app.app_context():  # saved and audited all the same, without a count of emails
        assert db.session.get(Location, clinic.location).address == "friedrichstr.  1,  BERLIN"
    assert audits(app, "location_updated") == [
        {"address": {"before": OLD_ADDRESS, "after": "friedrichstr.  1,  BERLIN"}}
    ]


def test_an_address_corrected_in_two_saves_leaves_the_patient_one_email_if_the_first_waits(
    app: Flask, admin: FlaskClient, clinic: Clinic
) -> None:
    with app.app_context():
        reference = book_first_open_time(clinic).reference
        sequence = request(reference).appointment.sequence
    path = location_page(clinic)
    post_as_shown(admin, path, admin.get(path).get_data(as_text=True), address="Chausseestr. 21")
    (first,) = outbox_emails(app, "appointment_address")
    assert first.status == OutboxStatus.PENDING  # no worker has taken it yet
    post_as_shown(admin, path, admin.get(path).get_data(as_text=True), address=NEW_ADDRESS)

    (email,) = outbox_emails(app, "appointment_address")  # the first one withdrawn
    assert NEW_ADDRESS in email.body_text and "Chausseestr. 21" not in email.body_text
    assert calendar_event(email.attachment_body)[1] == sequence + 2


def test_a_waiting_reminder_is_written_again_and_a_patient_without_an_address_is_for_a_call(
    app: Flask, admin: FlaskClient, clinic: Clinic
) -> None:
    reminded = confirmed_request(app, clinic)
    unreachable = confirmed_request(app, clinic)
    with app.app_context():
        # No address first: whether both appointments fall in one reminder's window depends
        # on the time of day the test runs; only the reachable patient is reminded either way.
        db.session.get(ConsultationRequest, unreachable).patient.email = None
        db.session.commit()
        starts_at = db.session.get(ConsultationRequest, reminded).appointment.starts_at
        assert len(send_due_reminders(now=starts_at - timedelta(hours=47))) == 1
    (waiting,) = outbox_emails(app, "appointment_reminder")
    assert OLD_ADDRESS in waiting.body_text

    path = location_page(clinic)
    shown = post_as_shown(admin, path, admin.get(path).get_data(as_text=True), address=NEW_ADDRESS)
    assert (
        "1 patient with an appointment to come will be emailed the new address, with their "
        "calendar event updated."
    ) in text(shown)
    assert (
        "1 patient with an appointment to come at this location left no email address: "
        "please phone them with the new address."
    ) in text(shown)
    (rewritten,) = outbox_emails(app, "appointment_reminder")
    assert rewritten.message_id != waiting.message_id
    assert NEW_ADDRESS in rewritten.body_text and OLD_ADDRESS not in rewritten.body_text
    (told,) = outbox_emails(app, "appointment_address")
    assert told.request_id == reminded


def test_a_waiting_receipt_or_confirmation_is_written_again_with_the_new_address(
    app: Flask, admin: FlaskClient, clinic: Clinic
) -> None:
    """Written just before the correction (a booking or confirmation saved as the admin
    saved), not sent yet: delivered as it is, it gave the old address. It goes again with
    the new one and the updated calendar file, saying all it said: that the time is held or
    confirmed, with whom, the clinic's message. One on its way already is left as it is."""
    from booking.dashboard.services import confirm_request
    from tests.factories import staff_slot

    with app.app_context():
        held = book_first_open_time(clinic).id
        confirmed = book_first_open_time(clinic)
        appointment = confirmed.appointment
        confirm_request(
            confirmed,
            db.session.get(StaffUser, clinic.coordinator.id),
            staff_slot(
                db.session.get(AppointmentType, clinic.type),
                appointment.starts_at,
                appointment.specialist_id,
                appointment.location_id,
            ),
            "Please bring your MRI discs.",
        )
        confirmed = confirmed.id
        # The confirmed patient's receipt went out before.
        sent = db.session.scalars(
            select(OutboxEmail).where(
                OutboxEmail.request_id == confirmed, OutboxEmail.template == "request_received"
            )
        ).one()
        sent.status = OutboxStatus.SENT
        db.session.commit()
        sent_id = sent.id
    before = {
        e.id for e in outbox_emails(app, "request_received") + outbox_emails(app, "request_update")
    }

    path = location_page(clinic)
    post_as_shown(admin, path, admin.get(path).get_data(as_text=True), address=NEW_ADDRESS)

    receipts = {e.request_id: e for e in outbox_emails(app, "request_received")}
    assert receipts[confirmed].id == sent_id and OLD_ADDRESS in receipts[confirmed].body_text
    (update,) = outbox_emails(app, "request_update")
    with app.app_context():
        sequences = {
            request_id: db.session.get(ConsultationRequest, request_id).appointment.sequence
            for request_id in (held, confirmed)
        }
    for email, request_id in ((receipts[held], held), (update, confirmed)):
        assert email.id not in before  # the one written before is gone
        assert email.status == OutboxStatus.PENDING
        for body in (email.body_text, text(email.body_html)):
            assert NEW_ADDRESS in body and OLD_ADDRESS not in body
        assert "/manage/open/" in email.body_text  # the private link it gave
        assert calendar_event(email.attachment_body)[1:] == (
            sequences[request_id],
            f"Main clinic, {NEW_ADDRESS}",
        )
    assert receipts[held].subject.startswith("We received your request")
    assert "The time you chose, which we hold for you until we confirm it:" in (
        receipts[held].body_text
    )
    assert update.subject.startswith("Your appointment is confirmed")
    assert "Your appointment is confirmed." in update.body_text
    assert "A message from the clinic:\nPlease bring your MRI discs." in update.body_text
    assert update.staff_message == "Please bring your MRI discs."
    # Each patient is told the new address too.
    told = outbox_emails(app, "appointment_address")
    assert sorted(email.request_id for email in told) == sorted([held, confirmed])


def waiting(app: Flask, template: str) -> list[OutboxEmail]:
    return [e for e in outbox_emails(app, template) if e.status == OutboxStatus.PENDING]


def test_a_waiting_moves_email_written_again_still_gives_the_previous_time(
    app: Flask, admin: FlaskClient, clinic: Clinic
) -> None:
    """A move's email waiting when the address is corrected is written again with the new
    address and still says the time it moved from, as the first did."""
    from booking.dashboard.services import reschedule_request
    from booking.scheduling.availability import open_slots
    from booking.timeutil import clinic_dt
    from tests.factories import staff_slot

    request_id = confirmed_request(app, clinic)
    deliver_waiting_emails(app)  # the patient was told the confirmed time
    with app.app_context():
        consultation = db.session.get_one(ConsultationRequest, request_id)
        was = consultation.appointment.starts_at
        kind = db.session.get_one(AppointmentType, clinic.type)
        later = next(
            slot
            for slot in open_slots(kind, was + timedelta(days=1), was + timedelta(days=8))
            if slot.location_id == clinic.location
        )
        reschedule_request(
            consultation,
            db.session.get_one(StaffUser, clinic.coordinator.id),
            staff_slot(kind, later.starts_at, later.specialist_id, later.location_id),
        )
        was_when = clinic_dt(was, "when")
    previous = f"Previous time, no longer kept: {was_when}"
    (moved,) = waiting(app, "request_update")
    assert previous in moved.body_text

    path = location_page(clinic)
    post_as_shown(admin, path, admin.get(path).get_data(as_text=True), address=NEW_ADDRESS)

    (again,) = waiting(app, "request_update")
    assert again.message_id != moved.message_id and NEW_ADDRESS in again.body_text
    assert again.subject == moved.subject  # still the move's email
    assert previous in again.body_text and f"<s>{was_when}</s>" in again.body_html


def test_a_waiting_moves_email_written_again_still_says_the_visit_is_now_in_person(
    app: Flask, admin: FlaskClient, clinic: Clinic
) -> None:
    """A move from video to in person whose email waits when the address is corrected: the
    email written again still says first that the visit is now in person, at the new
    address."""
    set_visit_mode(app, clinic, VisitMode.VIDEO)
    request_id = confirmed_request(app, clinic)
    deliver_waiting_emails(app)
    move_to_next_time(app, clinic, request_id, VisitMode.IN_PERSON)

    path = location_page(clinic)
    post_as_shown(admin, path, admin.get(path).get_data(as_text=True), address=NEW_ADDRESS)

    (again,) = waiting(app, "request_update")
    now = f"This visit is now in person at Main clinic, {NEW_ADDRESS}, not by video."
    assert now in again.body_text.split("Your reference")[0]
    assert again.previous_mode == VisitMode.VIDEO.value
    assert again.subject.startswith("Your appointment has changed: now in person (")


def test_the_emails_written_again_are_queued_in_the_order_the_patient_should_read_them(
    app: Flask, admin: FlaskClient, clinic: Clinic
) -> None:
    """A patient whose confirmation and reminder wait in the outbox when the address is
    corrected: each is written again, and the queue hands them to the worker in the order
    they were written, the confirmation before the email saying the address changed, the
    reminder after it. The new address went to the queue first: a worker could send it
    before the confirmation of the appointment it is about."""
    request_id = confirmed_request(app, clinic)
    with app.app_context():
        starts_at = db.session.get(ConsultationRequest, request_id).appointment.starts_at
        assert len(send_due_reminders(now=starts_at - timedelta(hours=47))) == 1
    huey = app.extensions["huey"]
    huey.flush()  # the emails' first handing over, before the correction

    path = location_page(clinic)
    post_as_shown(admin, path, admin.get(path).get_data(as_text=True), address=NEW_ADDRESS)

    queued = [task.args[0] for task in huey.pending() if task.name == "deliver_email"]
    with app.app_context():
        written = {
            email.id: email.template
            for email in db.session.scalars(
                select(OutboxEmail).where(
                    OutboxEmail.request_id == request_id, OutboxEmail.withdrawn_at.is_(None)
                )
            )
        }
    assert [written[email_id] for email_id in queued if email_id in written] == [
        "request_update",
        "appointment_address",
        "appointment_reminder",
    ]
    assert queued == sorted(queued)


def test_an_address_email_still_waiting_goes_when_the_patient_moves_their_time(
    app: Flask, admin: FlaskClient, clinic: Clinic
) -> None:
    """Delivered after the move, it would tell the patient their old time "has not changed"."""
    from booking.manage.services import reschedule
    from booking.scheduling.services import SlotChoice

    with app.app_context():
        reference = book_first_open_time(clinic).reference
    path = location_page(clinic)
    post_as_shown(admin, path, admin.get(path).get_data(as_text=True), address=NEW_ADDRESS)
    assert len(outbox_emails(app, "appointment_address")) == 1
    with app.app_context():
        consultation = request(reference)
        later = next(
            slot
            for slot in open_slot_list(clinic)
            if slot.starts_at > consultation.appointment.starts_at
        )
        reschedule(
            consultation,
            SlotChoice(clinic.type, later.specialist_id, later.location_id, later.starts_at),
        )
    assert outbox_emails(app, "appointment_address") == []
    (moved,) = outbox_emails(app, "request_update")  # which gives the new time and address
    assert NEW_ADDRESS in moved.body_text


@pytest.mark.parametrize("then", ["answered", "withdrawn"])
def test_asking_the_patient_for_information_leaves_a_waiting_address_email_to_go(
    mail_settings: dict[str, object],
    smtp: SmtpServer,
    app: Flask,
    admin: FlaskClient,
    clinic: Clinic,
    then: str,
) -> None:
    """The held time's new address waits for the worker; staff ask the patient for
    information, and the patient answers or staff stop asking. Neither changes the time held
    or its place (only the status, between the unconfirmed ones): delivered through the
    worker, the patient gets the new address and every email about the ask."""
    from booking.notifications.services import deliver_outbox_email
    from booking.requests import asks

    with app.app_context():
        reference = book_first_open_time(clinic).reference
        db.session.execute(update(OutboxEmail).values(status=OutboxStatus.SENT))  # the receipt
        db.session.commit()
    path = location_page(clinic)
    post_as_shown(admin, path, admin.get(path).get_data(as_text=True), address=NEW_ADDRESS)
    with app.app_context():
        coordinator = db.session.get_one(StaffUser, clinic.coordinator.id)
        ask = asks.ask_patient(request(reference), coordinator, [], "Since when?")
        if then == "answered":
            asks.answer_ask(request(reference), ask.id, [], "Since March.")
        else:
            asks.withdraw_ask(request(reference), coordinator)
        ids = list(
            db.session.scalars(
                select(OutboxEmail.id)
                .where(OutboxEmail.status == OutboxStatus.PENDING)
                .order_by(OutboxEmail.id)
            )
        )
        assert [deliver_outbox_email(i) for i in ids] == [None] * len(ids)
    received = smtp.collector.wait_for(len(ids))
    subjects = [m.message["Subject"] for m in received]
    assert f"We need something from you ({reference})" in subjects
    assert [m for m in received if NEW_ADDRESS in str(m.message)], subjects


def _told_the_new_address(
    app: Flask, admin: FlaskClient, clinic: Clinic
) -> tuple[int, OutboxEmail]:
    """A patient booked at the location, and its address changed: the request's id and the
    email telling them the new one (not sent yet)."""
    with app.app_context():
        request_id = book_first_open_time(clinic).id
    path = location_page(clinic)
    post_as_shown(admin, path, admin.get(path).get_data(as_text=True), address=NEW_ADDRESS)
    (told,) = outbox_emails(app, "appointment_address")
    return request_id, told


def _begin_the_visit(request_id: int) -> None:
    """The request's appointment began five minutes ago (time passing; inside an app
    context)."""
    begun = now_utc() - timedelta(minutes=5)
    db.session.execute(
        update(Appointment)
        .where(Appointment.request_id == request_id)
        .values(starts_at=begun, ends_at=begun + timedelta(minutes=45))
    )
    db.session.commit()


def test_an_address_email_that_could_not_go_before_the_appointment_is_not_sent(
    app: Flask, admin: FlaskClient, clinic: Clinic
) -> None:
    """The mail server away until the visit began (emails are retried for days): the new
    address, sent then, tells the patient nothing they can use. Not sent, and failed with its
    reason, so the record shows staff the patient was never told."""
    from booking.notifications.services import deliver_outbox_email

    request_id, told = _told_the_new_address(app, admin, clinic)
    with app.app_context():
        _begin_the_visit(request_id)
        assert deliver_outbox_email(told.id) is None
        email = db.session.get(OutboxEmail, told.id)
        assert (email.status, email.last_error) == (OutboxStatus.FAILED, "AppointmentBegun")


def test_a_failed_address_email_is_offered_again_only_before_the_visit(
    app: Flask, admin: FlaskClient, clinic: Clinic
) -> None:
    """Failed for good (the patient's mailbox refused it), it is on the record's list of
    emails the patient was never given: sent again while the appointment is to come, but
    not once it has begun (the patient went where they went; staff only take it off)."""
    from booking.dashboard.services import still_wanted

    request_id, told = _told_the_new_address(app, admin, clinic)
    with app.app_context():
        failed = db.session.get(OutboxEmail, told.id)
        failed.status = OutboxStatus.FAILED
        db.session.commit()
        consultation = db.session.get(ConsultationRequest, request_id)
        assert still_wanted(consultation, failed)
        _begin_the_visit(request_id)
        assert not still_wanted(db.session.get(ConsultationRequest, request_id), failed)


RESEND_CSRF = re.compile(r'name="resend-csrf_token" type="hidden" value="([^"]+)"')


@pytest.mark.parametrize("clock", ["agreed", "ahead"])
def test_a_failed_confirmation_or_reminder_is_sent_again_with_the_new_address(
    app: Flask, admin: FlaskClient, auth: AuthActions, clinic: Clinic, clock: str
) -> None:
    """The patient's mailbox refused their confirmation (with the clinic's message) and a
    reminder, then an admin corrected the location's address. Staff press "Send it again":
    a copy gave the old address (the correction written by a server whose clock is behind),
    or a bare new link took the place of the confirmation, losing its message and calendar
    file. Each goes again as the appointment now is: its kind, message and private link, the
    new address, the calendar file of the event as it now is."""
    from booking.dashboard.services import confirm_request
    from tests.factories import make_request, slot_two_days_ahead

    with app.app_context():
        consultation = make_request()
        reference, request_id = consultation.reference, consultation.id
        confirm_request(
            consultation,
            db.session.get(StaffUser, clinic.coordinator.id),
            slot_two_days_ahead(clinic),
            "Please bring your MRI discs.",
        )
        starts_at = db.session.get(ConsultationRequest, request_id).appointment.starts_at
        assert len(send_due_reminders(now=starts_at - timedelta(hours=47))) == 1
        db.session.execute(update(OutboxEmail).values(status=OutboxStatus.SENT))
        db.session.execute(
            update(OutboxEmail)
            .where(OutboxEmail.template.in_(["request_update", "appointment_reminder"]))
            .values(status=OutboxStatus.FAILED)
        )
        if clock == "ahead":  # written by a server whose clock runs a few seconds ahead
            db.session.execute(
                update(OutboxEmail).values(created_at=now_utc() + timedelta(seconds=5))
            )
        db.session.commit()
    failed = {
        e.id for t in ("request_update", "appointment_reminder") for e in outbox_emails(app, t)
    }

    path = location_page(clinic)
    post_as_shown(admin, path, admin.get(path).get_data(as_text=True), address=NEW_ADDRESS)
    coordinator = auth.new_client("coordinator")
    page = coordinator.get(f"/staff/requests/{reference}").get_data(as_text=True)
    response = coordinator.post(
        f"/staff/requests/{reference}/resend-emails",
        data={
            "resend-csrf_token": RESEND_CSRF.search(page).group(1),
            "resend-email": "erika.mustermann@example.com",
        },
        follow_redirects=True,
    )
    assert "2 emails are on their way to the patient again." in " ".join(
        response.get_data(as_text=True).split()
    )
    with app.app_context():  # true when written: the copies are only in the outbox yet
        notes = db.session.scalars(
            select(RequestEvent.body)
            .where(RequestEvent.kind == EventKind.NOTE)
            .order_by(RequestEvent.id)
        ).all()
    assert notes[-1] == "The patient's failed emails were written to the outbox again."

    again = [
        e
        for t in ("request_update", "appointment_reminder", "manage_link")
        for e in outbox_emails(app, t)
        if e.id not in failed
    ]
    assert sorted(e.template for e in again) == ["appointment_reminder", "request_update"]
    (update_email,) = [e for e in again if e.template == "request_update"]
    (reminder,) = [e for e in again if e.template == "appointment_reminder"]
    for email in again:
        assert email.status == OutboxStatus.PENDING
        for body in (email.body_text, text(email.body_html)):
            assert NEW_ADDRESS in body and OLD_ADDRESS not in body
        assert "/manage/open/" in email.body_text
    assert update_email.subject.startswith("Your appointment is confirmed")
    assert "A message from the clinic:\nPlease bring your MRI discs." in update_email.body_text
    with app.app_context():
        sequence = db.session.get(ConsultationRequest, request_id).appointment.sequence
    assert calendar_event(update_email.attachment_body)[1:] == (
        sequence,
        f"Main clinic, {NEW_ADDRESS}",
    )
    assert reminder.subject.startswith("Reminder: your appointment on")


def test_an_offer_of_a_time_there_goes_with_the_new_address_waiting_or_sent_again(
    app: Flask, admin: FlaskClient, auth: AuthActions, clinic: Clinic
) -> None:
    """A time freed at the location is offered to a waiting patient: the offer's email, not
    sent yet when the admin corrects the address, gave the old one, and the patient who took
    it went there. It goes with the new address, the same offer (its link). Failed for good
    and sent again by staff after another correction, it gives the address as it then is."""
    from booking.requests import emails

    with app.app_context():
        # From two days on: a time freed within the next hours (early in the clinic's
        # morning, the first open time is today's) is offered to nobody (``MIN_OFFER_WINDOW``).
        slots = open_slot_list(clinic, after=timedelta(days=2))
        reference = offer_a_cancelled_time(clinic.type, slots).reference
    (offered,) = outbox_emails(app, "waitlist_offer")
    assert OLD_ADDRESS in offered.body_text
    token = emails.offer_token_in(offered)

    path = location_page(clinic)
    post_as_shown(admin, path, admin.get(path).get_data(as_text=True), address=NEW_ADDRESS)
    (again,) = outbox_emails(app, "waitlist_offer")
    assert again.id != offered.id and again.status == OutboxStatus.PENDING
    for body in (again.body_text, text(again.body_html)):
        assert NEW_ADDRESS in body and OLD_ADDRESS not in body
    assert emails.offer_token_in(again) == token  # the same offer
    assert again.recipient == "waiting@example.com"

    # It fails for good (everything else went), and the address is corrected once more.
    with app.app_context():
        db.session.execute(update(OutboxEmail).values(status=OutboxStatus.SENT))
        db.session.execute(
            update(OutboxEmail).where(OutboxEmail.id == again.id).values(status=OutboxStatus.FAILED)
        )
        db.session.commit()
    post_as_shown(admin, path, admin.get(path).get_data(as_text=True), address="Ackerstr. 3")
    assert [e.id for e in outbox_emails(app, "waitlist_offer")] == [again.id]
    coordinator = auth.new_client("coordinator")
    page = coordinator.get(f"/staff/requests/{reference}").get_data(as_text=True)
    coordinator.post(
        f"/staff/requests/{reference}/resend-emails",
        data={
            "resend-csrf_token": RESEND_CSRF.search(page).group(1),
            "resend-email": "waiting@example.com",
        },
    )
    (_failed, resent) = outbox_emails(app, "waitlist_offer")
    for body in (resent.body_text, text(resent.body_html)):
        assert "Ackerstr. 3" in body and NEW_ADDRESS not in body
    assert emails.offer_token_in(resent) == token


def open_slot_list(clinic: Clinic, after: timedelta = timedelta(0)) -> list:
    """The clinic's type's open times in the next two weeks, from ``after`` on (inside an
    app context)."""
    from booking.scheduling.availability import open_slots

    kind = db.session.get(AppointmentType, clinic.type)
    start = now_utc() + after
    return open_slots(kind, start, start + timedelta(days=14))


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
        "now <bdi>New-patient spine evaluation</bdi>, 60 minutes (In person, at the location). "
        "Check the form below, then save again."
    ) in page
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
