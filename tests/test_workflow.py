"""The status workflow through the dashboard: valid and refused transitions, patient emails
with their iCalendar files, the timeline and the audit trail."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from icalendar import Calendar
from sqlalchemy import func, select

from booking.audit.models import AuditEvent
from booking.extensions import db
from booking.notifications.models import OutboxEmail
from booking.outcomes.models import TreatmentPlan
from booking.requests.events import RequestEvent
from booking.requests.models import ConsultationRequest, RequestStatus
from booking.scheduling.admin_services import add_extra_hours, edit_appointment_type
from booking.scheduling.closures import close_clinic
from booking.scheduling.models import Appointment, VisitMode
from booking.staff.models import StaffUser
from booking.timeutil import clinic_dt, clinic_today, from_clinic_local, now_utc, to_clinic_tz
from tests.factories import (
    appointment_started,
    make_appointment_type,
    make_hours,
    make_location,
    make_request,
)
from tests.support import (
    AuthActions,
    Clinic,
    clock_change_ahead,
    csrf_token,
    deliver_waiting_emails,
    when,
    winter_day,
)
from tests.test_destructive_confirmation import asked, confirm

CSRF_VALUE = re.compile(r'csrf_token"[^>]*value="([^"]+)"')
CSRF_SEEN = re.compile(r'name="action-seen"[^>]*value="([^"]+)"')


@pytest.fixture
def working_hours() -> dict[str, tuple[str, str]]:
    return {"weber": ("07:00", "19:00"), "okafor": ("07:00", "19:00")}


@dataclass(frozen=True)
class Waiting(Clinic):
    """``clinic`` (both specialists working 07:00-19:00) and one waiting request."""

    reference: str


@pytest.fixture
def clinic(app: Flask, clinic: Clinic) -> Waiting:
    with app.app_context():
        return Waiting(**vars(clinic), reference=make_request().reference)


DECLINE_REASON = "We do not treat this problem: a pain clinic does."


def act(client: FlaskClient, reference: str, action: str, **fields: Any):
    token = csrf_token(client, f"/staff/requests/{reference}")
    prefix = {
        "confirm": "slot",
        "reschedule": "slot",
        "decline": "close",
        "cancel": "close",
        "complete": "complete",
    }.get(action, "action")
    if action == "complete":
        fields = {"plan": "physiotherapy", **fields}  # completing records the plan decided
    if action == "decline":
        fields = {"message": DECLINE_REASON, **fields}  # a decline says why (CloseForm)
    data = {f"{prefix}-csrf_token": token, **{f"{prefix}-{k}": v for k, v in fields.items()}}
    if action == "no_show":
        data["confirmed"] = "1"  # its confirmation page's button (asked first: see below)
    return client.post(f"/staff/requests/{reference}/{action}", data=data)


# Staff book times to come; a day of next January keeps the clinic on winter time.
DAY = winter_day(14)
NEXT_DAY = DAY + timedelta(days=1)


def slot(clinic: Waiting, day: str = DAY.isoformat(), start: str = "10:00", **kw: Any) -> dict:
    return {
        "specialist": kw.get("specialist", clinic.weber.id),
        "location": clinic.location,
        "day": day,
        "start": start,
        "appointment_type": kw.get("appointment_type", clinic.type),
        "message": kw.get("message", ""),
    }


def _request(app: Flask, reference: str) -> ConsultationRequest:
    with app.app_context():
        consultation = db.session.scalars(
            select(ConsultationRequest).where(ConsultationRequest.reference == reference)
        ).one()
        db.session.expunge_all()
        return consultation


def _patient_emails(app: Flask) -> list[OutboxEmail]:
    with app.app_context():
        rows = db.session.scalars(
            select(OutboxEmail)
            .where(OutboxEmail.template == "request_update")
            .order_by(OutboxEmail.id)
        ).all()
        db.session.expunge_all()
        return list(rows)


def _event(email: OutboxEmail) -> tuple[str, Any]:
    assert email.attachment_body is not None
    calendar = Calendar.from_ical(email.attachment_body)
    (event,) = calendar.walk("VEVENT")
    return str(calendar["METHOD"]), event


def test_a_moved_appointments_email_gives_the_old_time_and_the_new(
    app: Flask, client: FlaskClient, clinic: Waiting
) -> None:
    """Staff move a confirmed appointment: the patient's email says when it was as well as
    when it is now, in both parts, as its other times are written (clinic time)."""
    AuthActions(client).attempt(clinic.coordinator.email)
    assert act(client, clinic.reference, "confirm", **slot(clinic)).status_code == 302
    # The confirmation went: else the move's email is the confirmation at the new time.
    deliver_waiting_emails(app)
    moved = slot(clinic, day=NEXT_DAY.isoformat(), start="14:30")
    assert act(client, clinic.reference, "reschedule", **moved).status_code == 302

    rescheduled = _patient_emails(app)[-1]
    assert rescheduled.subject == f"Your appointment has changed ({clinic.reference})"
    assert f"When: {when(NEXT_DAY, '14:30')}\n" in rescheduled.body_text
    assert f"Previous time, no longer kept: {when(DAY, '10:00')}\n" in rescheduled.body_text
    assert rescheduled.body_html is not None
    assert when(NEXT_DAY, "14:30") in rescheduled.body_html
    assert f"<s>{when(DAY, '10:00')}</s>" in rescheduled.body_html


@pytest.mark.parametrize("delivered", [True, False], ids=["first-delivered", "first-waiting"])
def test_a_second_move_gives_the_time_the_patient_was_last_told(
    app: Flask, client: FlaskClient, clinic: Waiting, delivered: bool
) -> None:
    """Moved from A to B, then from B to C: the second email's previous time is B only if
    the first email (A to B) went out. Still waiting, it is withdrawn by the second, so the
    patient never learnt B: the second gives A, the time they were told."""
    AuthActions(client).attempt(clinic.coordinator.email)
    assert act(client, clinic.reference, "confirm", **slot(clinic)).status_code == 302
    deliver_waiting_emails(app)  # the patient was told A
    b = slot(clinic, day=NEXT_DAY.isoformat(), start="14:30")
    assert act(client, clinic.reference, "reschedule", **b).status_code == 302
    if delivered:
        deliver_waiting_emails(app)
    c = slot(clinic, day=NEXT_DAY.isoformat(), start="16:00")
    assert act(client, clinic.reference, "reschedule", **c).status_code == 302

    *_, second = _patient_emails(app)
    assert f"When: {when(NEXT_DAY, '16:00')}\n" in second.body_text
    told = when(NEXT_DAY, "14:30") if delivered else when(DAY, "10:00")
    assert f"Previous time, no longer kept: {told}\n" in second.body_text
    assert f"<s>{told}</s>" in second.body_html
    # The first, waiting, was withdrawn: the patient gets the second alone.
    assert len(_patient_emails(app)) == (3 if delivered else 2)

    # Back to A before either went out: nothing moved for the patient, no previous time.
    a = slot(clinic)
    assert act(client, clinic.reference, "reschedule", **a).status_code == 302
    *_, third = _patient_emails(app)
    assert f"When: {when(DAY, '10:00')}\n" in third.body_text
    if delivered:
        assert f"Previous time, no longer kept: {when(NEXT_DAY, '14:30')}\n" in third.body_text
    else:
        assert "Previous time" not in third.body_text


def test_confirm_reschedule_cancel_update_one_calendar_event(
    app: Flask, client: FlaskClient, clinic: Waiting
) -> None:
    AuthActions(client).attempt(clinic.coordinator.email)
    reference = clinic.reference

    response = act(client, reference, "confirm", **slot(clinic, message="Please bring your MRI."))
    assert response.status_code == 302
    consultation = _request(app, reference)
    assert consultation.status == RequestStatus.CONFIRMED
    assert consultation.assigned_specialist_id == clinic.weber.id
    assert consultation.confirmed_at is not None

    # Reschedule to the next day with Dr. Okafor, then cancel.
    deliver_waiting_emails(app)
    assert (
        act(
            client,
            reference,
            "reschedule",
            **slot(clinic, day=NEXT_DAY.isoformat(), start="14:30", specialist=clinic.okafor.id),
        ).status_code
        == 302
    )
    deliver_waiting_emails(app)
    assert act(client, reference, "cancel", message="The clinic is closed.").status_code == 302
    assert _request(app, reference).status == RequestStatus.CANCELLED

    confirmed, rescheduled, cancelled = _patient_emails(app)
    assert confirmed.recipient == "erika.mustermann@example.com"
    assert confirmed.subject == f"Your appointment is confirmed ({reference})"
    assert rescheduled.subject == f"Your appointment has changed ({reference})"
    assert cancelled.subject == f"Your request {reference} is cancelled"
    assert "Please bring your MRI." in confirmed.body_text
    # 10:00 in Berlin in December is 09:00 UTC; the email shows clinic time, as people write
    # it: no seconds, no time zone's long name.
    assert f"When: {when(DAY, '10:00')}\n" in confirmed.body_text
    assert "10:00:00" not in confirmed.body_text and "Central European" not in confirmed.body_text

    method, first = _event(confirmed)
    assert method == "REQUEST"
    assert first.decoded("dtstart") == datetime.combine(DAY, time(9, 0), tzinfo=UTC)
    assert first.decoded("dtend") == datetime.combine(DAY, time(9, 45), tzinfo=UTC)
    assert int(first["SEQUENCE"]) == 0
    assert str(first["STATUS"]) == "CONFIRMED"

    method, second = _event(rescheduled)
    assert method == "REQUEST"
    assert str(second["UID"]) == str(first["UID"])
    assert int(second["SEQUENCE"]) == 1
    assert second.decoded("dtstart") == datetime.combine(NEXT_DAY, time(13, 30), tzinfo=UTC)

    # The patient is the event's attendee (RFC 5546): calendar apps match updates and the
    # cancellation to the event by it. Their address only, no name; no reply expected.
    for event in (first, second):
        attendee = event["ATTENDEE"]
        assert str(attendee) == "mailto:erika.mustermann@example.com"
        assert (attendee.params["PARTSTAT"], attendee.params["RSVP"]) == ("ACCEPTED", "FALSE")
        assert "CN" not in attendee.params

    assert "The appointment below no longer takes place." in cancelled.body_text
    method, third = _event(cancelled)
    assert str(third["ATTENDEE"]) == "mailto:erika.mustermann@example.com"
    assert method == "CANCEL"
    assert str(third["UID"]) == str(first["UID"])
    assert int(third["SEQUENCE"]) == 2
    assert str(third["STATUS"]) == "CANCELLED"
    for email in (confirmed, rescheduled, cancelled):
        assert "text/calendar" in (email.attachment_type or "")
        for detail in ("Herniated", "herniated", "Ibuprofen", "1970"):
            assert detail not in email.body_text and detail not in (email.attachment_body or "")

    with app.app_context():
        events = db.session.scalars(
            select(RequestEvent).order_by(RequestEvent.occurred_at, RequestEvent.id)
        ).all()
        assert [(e.from_status, e.to_status) for e in events] == [
            ("requested", "confirmed"),
            ("confirmed", "confirmed"),
            ("confirmed", "cancelled"),
        ]
        audit = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "request_rescheduled")
        ).one()
        assert audit.target_id == reference
        assert audit.actor_email == "coord@example.com"
        assert audit.details["specialist"] == {"before": clinic.weber.id, "after": clinic.okafor.id}
        assert audit.details["sequence"] == {"before": 0, "after": 1}
        assert audit.ip_address == "127.0.0.1"


@pytest.mark.parametrize(
    ("path", "final", "subject"),
    [
        (["decline"], "declined", "About your request"),
        (["cancel"], "cancelled", "is cancelled"),
        (["confirm", "complete"], "completed", "Thank you for your visit"),
        (["confirm", "no_show"], "no_show", "We missed you"),
    ],
)
def test_each_valid_transition_emails_the_patient(
    app: Flask,
    client: FlaskClient,
    clinic: Waiting,
    path: list[str],
    final: str,
    subject: str,
) -> None:
    AuthActions(client).attempt(clinic.coordinator.email)
    for action in path:
        fields = slot(clinic) if action == "confirm" else {}
        if action in ("complete", "no_show"):
            _started(app, clinic.reference, timedelta(minutes=10))
        assert act(client, clinic.reference, action, **fields).status_code == 302
    assert _request(app, clinic.reference).status == final
    emails = _patient_emails(app)
    assert len(emails) == len(path)
    assert subject in emails[-1].subject
    if final in ("declined", "completed", "no_show"):
        assert emails[-1].attachment_body is None


def test_the_thank_you_email_links_to_the_private_page_that_still_opens(
    app: Flask, client: FlaskClient, clinic: Waiting
) -> None:
    """The completed request's page still opens (until ``MANAGE_LINK_DAYS_AFTER_CLOSE`` after
    it closed) and shows what happened, the patient's data and their rights: the "Thank you
    for your visit" email links to it, says until when, and the link works."""
    AuthActions(client).attempt(clinic.coordinator.email)
    assert act(client, clinic.reference, "confirm", **slot(clinic)).status_code == 302
    _started(app, clinic.reference, timedelta(minutes=10))
    assert act(client, clinic.reference, "complete").status_code == 302
    email = _patient_emails(app)[-1]
    assert "Thank you for your visit" in email.subject
    [url] = re.findall(r"http\S+/manage/open/\S+", email.body_text)
    assert f'<a href="{url}">Open your private page</a>' in email.body_html
    closed = _request(app, clinic.reference).closed_at
    assert closed is not None
    with app.app_context():
        until = (closed + timedelta(days=app.config["MANAGE_LINK_DAYS_AFTER_CLOSE"])).astimezone(
            to_clinic_tz(closed).tzinfo
        )
    until_text = f"Your private link works until {until.day} {until:%B} {until.year}."
    assert until_text in email.body_text and until_text in email.body_html
    assert "Your private page (a private link: do not share it):" in email.body_text

    patient = app.test_client()
    page = patient.get("/manage/" + url.partition("/manage/")[2], follow_redirects=True)
    assert page.status_code == 200
    shown = page.get_data(as_text=True)
    assert clinic.reference in shown and "nothing can be changed here any more" in shown


INVALID = [
    ("requested", "complete"),
    ("requested", "no_show"),
    ("requested", "reschedule"),
    ("confirmed", "confirm"),
    ("confirmed", "decline"),
    ("completed", "cancel"),
    ("completed", "confirm"),
    ("declined", "confirm"),
    ("declined", "cancel"),
    ("cancelled", "confirm"),
    ("cancelled", "complete"),
    ("no_show", "complete"),
    ("no_show", "reschedule"),
]
TO_REACH = {
    "requested": [],
    "confirmed": ["confirm"],
    "completed": ["confirm", "complete"],
    "declined": ["decline"],
    "cancelled": ["cancel"],
    "no_show": ["confirm", "no_show"],
}


def test_moving_to_another_specialist_and_place_emails_the_new_ones(
    app: Flask, client: FlaskClient, clinic: Waiting
) -> None:
    """The email and calendar file of a confirmation or a move name the specialist and the
    place the appointment now has, not the ones it had (the patient would go to the wrong
    building)."""
    from booking.staff.models import StaffUser

    with app.app_context():
        west = make_location("Spine centre west", "Kantstr. 20, Berlin")
        make_hours(db.session.get(StaffUser, clinic.okafor.id), west, range(7), "07:00", "19:00")
        west_id = west.id
        day = (clinic_today() + timedelta(days=3)).isoformat()
    AuthActions(client).attempt(clinic.coordinator.email)
    assert act(client, clinic.reference, "confirm", **slot(clinic, day=day)).status_code == 302
    deliver_waiting_emails(app)
    moved = {**slot(clinic, day=day, start="14:00", specialist=clinic.okafor.id)}
    moved["location"] = west_id
    assert act(client, clinic.reference, "reschedule", **moved).status_code == 302

    confirmed, rescheduled = _patient_emails(app)
    assert "With: Dr. Weber" in confirmed.body_text and "Main clinic" in confirmed.body_text
    assert "With: Dr. Okafor" in rescheduled.body_text
    assert "Where: Spine centre west, Kantstr. 20, Berlin" in rescheduled.body_text
    assert "Dr. Weber" not in rescheduled.body_text and "Main clinic" not in rescheduled.body_text
    _method, event = _event(rescheduled)
    assert str(event["LOCATION"]) == "Spine centre west, Kantstr. 20, Berlin"


@pytest.mark.parametrize(("state", "action"), INVALID)
def test_invalid_transitions_are_refused_and_change_nothing(
    app: Flask, client: FlaskClient, clinic: Waiting, state: str, action: str
) -> None:
    AuthActions(client).attempt(clinic.coordinator.email)
    for step in TO_REACH[state]:
        fields = slot(clinic) if step == "confirm" else {}
        if step in ("complete", "no_show"):
            _started(app, clinic.reference, timedelta(minutes=10))
        assert act(client, clinic.reference, step, **fields).status_code == 302
    emails_before = len(_patient_emails(app))

    fields = (
        slot(clinic, day=(DAY + timedelta(days=7)).isoformat())
        if action in ("confirm", "reschedule")
        else {}
    )
    response = act(client, clinic.reference, action, **fields)

    assert response.status_code == 409
    page = response.get_data(as_text=True)
    assert "cannot be changed" in page or "already confirmed" in page or "Only a confirmed" in page
    assert _request(app, clinic.reference).status == state
    assert len(_patient_emails(app)) == emails_before


def test_the_message_boxes_say_which_language_the_patient_reads(
    app: Flask, client: FlaskClient, clinic: Waiting
) -> None:
    """Staff write in the clinic's language; a Spanish reader's emails carry their words as
    written, so the record says so by every box whose text the patient reads."""
    with app.app_context():
        reference = make_request(locale="es").reference
    AuthActions(client).attempt(clinic.coordinator.email)
    page = client.get(f"/staff/requests/{reference}").get_data(as_text=True)
    assert page.count("the patient reads in Spanish") == 2  # the time's and the close's
    assert "The patient reads in Spanish." in page  # a message on their private page


def test_unknown_action_is_not_found(client: FlaskClient, clinic: Waiting) -> None:
    AuthActions(client).attempt(clinic.coordinator.email)
    assert act(client, clinic.reference, "delete").status_code == 404


def test_a_time_skipped_by_the_clock_change_is_refused(
    app: Flask, client: FlaskClient, clinic: Waiting
) -> None:
    AuthActions(client).attempt(clinic.coordinator.email)
    # Berlin skips from 02:00 to 03:00 on the last Sunday of March.
    with app.app_context():
        day = clock_change_ahead(3, clinic_today())
    response = act(
        client, clinic.reference, "confirm", **slot(clinic, day=day.isoformat(), start="02:30")
    )
    # Refused on the time's field, as the scheduling forms refuse it.
    assert response.status_code == 422
    assert "does not exist in the clinic&#39;s time zone" in response.get_data(as_text=True)
    assert _request(app, clinic.reference).status == RequestStatus.REQUESTED


@pytest.mark.parametrize("action", ["confirm", "reschedule"])
def test_a_time_that_has_passed_is_refused_with_a_message(
    app: Flask, client: FlaskClient, clinic: Waiting, action: str
) -> None:
    """The patient is emailed the time staff enter: one that has passed (earlier today in
    clinic time, or yesterday) is refused on the form, and nothing is stored or sent."""
    AuthActions(client).attempt(clinic.coordinator.email)
    if action == "reschedule":
        assert act(client, clinic.reference, "confirm", **slot(clinic)).status_code == 302
    emails_before = len(_patient_emails(app))
    before = _request(app, clinic.reference)
    with app.app_context():
        passed = to_clinic_tz(now_utc() - timedelta(minutes=5))
    for day, start in [
        (passed.date(), passed.strftime("%H:%M")),
        (passed.date() - timedelta(days=1), "10:00"),
    ]:
        fields = slot(clinic, day=day.isoformat(), start=start)
        response = act(client, clinic.reference, action, **fields)
        assert response.status_code == 422
        page = response.get_data(as_text=True)
        error = re.search(r'<div id="slot-start-error"[^>]*>(.*?)</div>', page, re.S)
        assert error and "That time has passed" in error.group(1)
        # The form keeps what was entered, to correct.
        assert f'value="{day.isoformat()}"' in page
        after = _request(app, clinic.reference)
        assert (after.status, after.updated_at) == (before.status, before.updated_at)
        assert len(_patient_emails(app)) == emails_before


def _selected(page: str, field_id: str) -> list[str]:
    """The options a select shows chosen: (value, label) as the browser would submit."""
    select_html = re.search(rf'<select[^>]*id="{field_id}".*?</select>', page, re.S)
    assert select_html, f"no select {field_id}"
    return re.findall(r'<option(?: dir="auto")? selected value="([^"]*)">', select_html.group(0))


def test_the_slot_form_chooses_nothing_the_coordinator_did_not(
    app: Flask, client: FlaskClient, clinic: Waiting
) -> None:
    """A new request's form has every select on "Choose"; an appointment's form shows its
    specialist, place and type, and once its specialist is deactivated it says so and asks
    for another instead of showing another doctor as the appointment's."""
    from booking.staff.models import StaffUser
    from booking.staff.services import set_staff_active

    AuthActions(client).attempt(clinic.coordinator.email)
    record = f"/staff/requests/{clinic.reference}"
    page = client.get(record).get_data(as_text=True)
    for field in ("slot-specialist", "slot-location", "slot-appointment_type"):
        assert _selected(page, field) == [""], field
    # Confirming without choosing a specialist names what is missing.
    fields = slot(clinic)
    fields["specialist"] = ""
    response = act(client, clinic.reference, "confirm", **fields)
    assert response.status_code == 422
    assert "Please choose a specialist." in response.get_data(as_text=True)
    assert _request(app, clinic.reference).status == RequestStatus.REQUESTED

    assert act(client, clinic.reference, "confirm", **slot(clinic)).status_code == 302
    page = client.get(record).get_data(as_text=True)
    assert _selected(page, "slot-specialist") == [str(clinic.weber.id)]
    assert _selected(page, "slot-location") == [str(clinic.location)]
    assert _selected(page, "slot-appointment_type") == [str(clinic.type)]

    with app.app_context():
        set_staff_active(
            db.session.get(StaffUser, clinic.weber.id),
            False,
            actor=db.session.get(StaffUser, clinic.admin.id),
        )
    page = client.get(record).get_data(as_text=True)
    assert _selected(page, "slot-specialist") == [""]
    help_text = re.search(r'<div id="slot-specialist-help"[^>]*>(.*?)</div>', page, re.S)
    assert help_text
    assert (
        "<bdi>Dr. Weber</bdi>, the appointment&#39;s specialist, is no longer active"
        in help_text.group(1)
    )
    assert 'aria-describedby="slot-specialist-help"' in page
    # The place and type are still offered, and still shown.
    assert _selected(page, "slot-location") == [str(clinic.location)]
    assert _selected(page, "slot-appointment_type") == [str(clinic.type)]


def test_staff_change_only_the_appointment_type_and_the_patient_is_told_how_to_take_part(
    app: Flask, client: FlaskClient, clinic: Waiting
) -> None:
    """In person to video at the same time, specialist and place is a change: audited (the
    type before and after), one email giving the new type and how to join; the same type,
    time and place again is refused."""
    with app.app_context():
        video = make_appointment_type("Video consultation", minutes=45)
        edit_appointment_type(video, video.name, {}, VisitMode.VIDEO, actor=None)
        db.session.commit()
        video_id = video.id
    AuthActions(client).attempt(clinic.coordinator.email)
    reference = clinic.reference
    assert act(client, reference, "confirm", **slot(clinic)).status_code == 302
    deliver_waiting_emails(app)  # else the confirmation, still waiting, is withdrawn by the change
    before = len(_patient_emails(app))

    response = act(client, reference, "reschedule", **slot(clinic, appointment_type=video_id))
    assert response.status_code == 302
    [email] = _patient_emails(app)[before:]
    # How the patient takes part changed, not the time: the subject says so.
    assert email.subject == f"Your appointment has changed: now by video ({reference})"
    assert "Appointment: Video consultation" in email.body_text
    assert "By video, from wherever suits you: the clinic will send you how to join." in (
        email.body_text
    )
    assert when(DAY, "10:00") in email.body_text
    with app.app_context():
        appointment = db.session.scalars(select(Appointment)).one()
        assert appointment.appointment_type_id == video_id
        audit = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "request_rescheduled")
        ).one()
        assert audit.details["appointment_type"] == {"before": clinic.type, "after": video_id}

    response = act(client, reference, "reschedule", **slot(clinic, appointment_type=video_id))
    assert response.status_code == 409
    assert "That is the appointment&#39;s current type, time and place." in response.get_data(
        as_text=True
    )
    assert len(_patient_emails(app)) == before + 1


@pytest.mark.parametrize("closed_by", ["settings", "admin"])
def test_a_time_on_a_day_the_clinic_is_closed_says_so_and_how_to_open_it(
    app: Flask, client: FlaskClient, clinic: Waiting, closed_by: str
) -> None:
    """On a public holiday or closed day (the settings', or one an admin closed in the app)
    the weekly hours do not apply: staff are told the clinic is closed and that extra hours
    open the day, not that the specialist is busy; with extra hours entered, the time is
    booked."""
    if closed_by == "settings":
        app.config["CLINIC_CLOSED_DAYS"] = DAY.isoformat()
    else:
        with app.app_context():
            close_clinic(DAY, "Team training", db.session.get(StaffUser, clinic.admin.id))
    AuthActions(client).attempt(clinic.coordinator.email)
    response = act(client, clinic.reference, "confirm", **slot(clinic))
    assert response.status_code == 409
    page = response.get_data(as_text=True)
    assert "The clinic is closed on" in page and "is not free at that time" not in page
    assert "an administrator can add extra hours for <bdi>Dr. Weber</bdi>" in page
    assert _request(app, clinic.reference).status == RequestStatus.REQUESTED
    with app.app_context():
        add_extra_hours(
            db.session.get(StaffUser, clinic.weber.id),
            from_clinic_local(DAY, time(9)),
            from_clinic_local(DAY, time(12)),
            clinic.location,
            None,
            actor=None,
        )
        db.session.commit()
    # Outside the extra hours, the day is still closed; inside, the time is booked.
    response = act(client, clinic.reference, "confirm", **slot(clinic, start="14:00"))
    assert "The clinic is closed on" in response.get_data(as_text=True)
    assert act(client, clinic.reference, "confirm", **slot(clinic)).status_code == 302
    assert _request(app, clinic.reference).status == RequestStatus.CONFIRMED


def test_a_specialist_cannot_be_booked_twice_at_once(
    app: Flask, client: FlaskClient, clinic: Waiting
) -> None:
    with app.app_context():
        other = make_request(email="max@example.com").reference
    AuthActions(client).attempt(clinic.coordinator.email)
    assert (
        act(client, clinic.reference, "confirm", **slot(clinic, start="10:00")).status_code == 302
    )
    response = act(client, other, "confirm", **slot(clinic, start="10:30"))
    assert response.status_code == 409
    assert "is not free at that time" in response.get_data(as_text=True)
    # Another specialist at the same time is fine.
    assert (
        act(
            client, other, "confirm", **slot(clinic, start="10:30", specialist=clinic.okafor.id)
        ).status_code
        == 302
    )


def test_specialists_work_only_their_own_requests(
    app: Flask, client: FlaskClient, clinic: Waiting
) -> None:
    reference = clinic.reference
    AuthActions(client).attempt(clinic.coordinator.email)
    assert act(client, reference, "confirm", **slot(clinic)).status_code == 302
    client.post(
        "/staff/logout", data={"csrf_token": csrf_token(client, f"/staff/requests/{reference}")}
    )

    # Dr. Okafor is not assigned: the request does not exist for her.
    AuthActions(client).attempt(clinic.okafor.email)
    assert client.get(f"/staff/requests/{reference}").status_code == 404
    token = CSRF_VALUE.search(client.get("/staff/queue").get_data(as_text=True))
    response = client.post(
        f"/staff/requests/{reference}/complete",
        data={"action-csrf_token": token.group(1) if token else ""},
    )
    assert response.status_code == 404
    assert reference not in client.get("/staff/queue?status=all").get_data(as_text=True)
    client.post("/staff/logout", data={"csrf_token": token.group(1) if token else ""})

    # Dr. Weber is assigned: she sees it, may complete it, but may not cancel it.
    AuthActions(client).attempt(clinic.weber.email)
    assert reference in client.get("/staff/queue?status=all").get_data(as_text=True)
    response = act(client, reference, "cancel")
    assert response.status_code == 409
    assert "role does not allow" in response.get_data(as_text=True)
    _started(app, reference, timedelta(minutes=10))
    assert act(client, reference, "complete").status_code == 302
    assert _request(app, reference).status == RequestStatus.COMPLETED


def test_notes_go_on_the_timeline_and_never_to_the_patient(
    app: Flask, client: FlaskClient, clinic: Waiting
) -> None:
    AuthActions(client).attempt(clinic.coordinator.email)
    reference = clinic.reference
    token = csrf_token(client, f"/staff/requests/{reference}")
    response = client.post(
        f"/staff/requests/{reference}/notes",
        data={"note-csrf_token": token, "note-text": "Called the patient <b>twice</b>."},
    )
    assert response.status_code == 302
    page = client.get(f"/staff/requests/{reference}").get_data(as_text=True)
    assert "Called the patient &lt;b&gt;twice&lt;/b&gt;." in page
    assert _patient_emails(app) == []
    # An empty note is refused with a message.
    response = client.post(
        f"/staff/requests/{reference}/notes", data={"note-csrf_token": token, "note-text": " "}
    )
    assert response.status_code == 422
    assert "Please write the note." in response.get_data(as_text=True)


def test_the_record_reads_summary_then_next_step_then_history(
    client: FlaskClient, clinic: Waiting
) -> None:
    """On a phone the record is one column in source order, and a screen reader reads that
    order on every width: the next step came after the whole history (scores, documents,
    messages), and the preferred time, part of the request's summary, after everything.
    Now: the patient and their preferred time, the next step, the history, then the notes
    and timeline (a wide screen puts the next step and the notes in the right-hand column)."""
    AuthActions(client).attempt(clinic.coordinator.email)
    page = client.get(f"/staff/requests/{clinic.reference}").get_data(as_text=True)
    order = [
        'id="patient-heading"',
        'id="wishes-heading"',
        'id="actions-heading"',
        'id="symptoms-heading"',
        'id="documents-heading"',
        'id="note-heading"',
        'id="timeline-heading"',
    ]
    places = [page.index(heading) for heading in order]
    assert places == sorted(places)
    parts = re.findall(r'<div class="(record-[a-z]+)">', page)
    assert parts == ["record-summary", "record-actions", "record-details", "record-log"]


# Completed and no-show say what happened at the appointment: not before it starts ----------

AFTER_START_SUBJECTS = {"complete": "Thank you for your visit", "no_show": "We missed you"}


def _started(app: Flask, reference: str, ago: timedelta) -> None:
    with app.app_context():
        appointment_started(reference, ago)


def _starts_at(app: Flask, reference: str) -> str:
    """The request's appointment's start as staff and patients read it (clinic time)."""
    with app.test_request_context():
        starts_at = db.session.scalars(
            select(Appointment.starts_at)
            .join(ConsultationRequest, ConsultationRequest.id == Appointment.request_id)
            .where(ConsultationRequest.reference == reference)
        ).one()
        return clinic_dt(starts_at, "when")


def _confirmed_in_two_days(app: Flask, client: FlaskClient, clinic: Waiting) -> str:
    """Confirm the waiting request for 10:00 (clinic time) two days ahead; returns how the
    page writes that time."""
    with app.app_context():
        day = clinic_today() + timedelta(days=2)
    response = act(client, clinic.reference, "confirm", **slot(clinic, day=day.isoformat()))
    assert response.status_code == 302
    return _starts_at(app, clinic.reference)


def _stored(app: Flask) -> dict[str, int]:
    """How many emails, timeline entries, plans and audit rows (other than looks at the
    record, which opening it to post a form adds) there are."""
    with app.app_context():
        count = {
            model.__name__: db.session.scalar(select(func.count()).select_from(model)) or 0
            for model in (OutboxEmail, RequestEvent, TreatmentPlan)
        }
        count["AuditEvent"] = (
            db.session.scalar(
                select(func.count())
                .select_from(AuditEvent)
                .where(AuditEvent.action != "request_viewed")
            )
            or 0
        )
        return count


def _offered(page: str) -> dict[str, bool]:
    return {
        "complete": "/complete" in page and "Mark completed" in page,
        "no_show": "/no_show" in page and "Mark as no-show" in page,
    }


@pytest.mark.parametrize("action", ["complete", "no_show"])
def test_completed_and_no_show_are_refused_before_the_appointment_starts(
    app: Flask, client: FlaskClient, clinic: Waiting, action: str
) -> None:
    AuthActions(client).attempt(clinic.coordinator.email)
    when = _confirmed_in_two_days(app, client, clinic)
    record_page = f"/staff/requests/{clinic.reference}"

    # The record offers neither, and says from when they can be done.
    page = client.get(record_page).get_data(as_text=True)
    assert _offered(page) == {"complete": False, "no_show": False}
    later = f"Once the appointment has started ({when}), the request can be completed or marked"
    assert later in page

    # A post made anyway (an old tab, a forged form) is refused: nothing stored, no email.
    before = _stored(app)
    response = act(client, clinic.reference, action)
    assert response.status_code == 409
    target = "completed" if action == "complete" else "no-show"
    assert (
        f"The appointment starts on {when}: the request can be marked {target} only from then."
        in response.get_data(as_text=True)
    )
    assert _request(app, clinic.reference).status == RequestStatus.CONFIRMED
    assert _stored(app) == before


def test_a_specialist_is_told_when_their_appointment_can_be_closed(
    app: Flask, client: FlaskClient, clinic: Waiting
) -> None:
    """A specialist may only complete or mark no-show: before the start, their record says
    when, not that nothing more is possible."""
    AuthActions(client).attempt(clinic.coordinator.email)
    when = _confirmed_in_two_days(app, client, clinic)
    AuthActions(client).logout()
    AuthActions(client).attempt(clinic.weber.email)
    page = client.get(f"/staff/requests/{clinic.reference}").get_data(as_text=True)
    assert f"Once the appointment has started ({when})" in page
    assert "No further changes are possible" not in page
    assert _offered(page) == {"complete": False, "no_show": False}


def test_cancelling_after_the_appointment_began_does_not_say_it_no_longer_takes_place(
    app: Flask, client: FlaskClient, clinic: Waiting
) -> None:
    """Staff closing a request late (the clinic called the visit off on the day) cancel an
    appointment already begun: the patient is told the request is cancelled, not that an
    appointment in the past "no longer takes place"."""
    AuthActions(client).attempt(clinic.coordinator.email)
    assert act(client, clinic.reference, "confirm", **slot(clinic)).status_code == 302
    with app.app_context():
        appointment_started(clinic.reference)
    assert act(client, clinic.reference, "cancel", message="").status_code == 302
    cancelled = _patient_emails(app)[-1]
    assert "Your request has been cancelled." in cancelled.body_text
    assert "no longer takes place" not in cancelled.body_text + cancelled.body_html


@pytest.mark.parametrize("action", ["complete", "no_show"])
def test_completed_and_no_show_are_possible_once_the_appointment_started(
    app: Flask, client: FlaskClient, clinic: Waiting, action: str
) -> None:
    AuthActions(client).attempt(clinic.coordinator.email)
    _confirmed_in_two_days(app, client, clinic)
    # Ten minutes into the appointment (a no-show is known by then; a visit may be done).
    _started(app, clinic.reference, timedelta(minutes=10))
    page = client.get(f"/staff/requests/{clinic.reference}").get_data(as_text=True)
    assert _offered(page) == {"complete": True, "no_show": True}
    assert "Once the appointment has started" not in page

    emails_before = len(_patient_emails(app))
    assert act(client, clinic.reference, action).status_code == 302
    consultation = _request(app, clinic.reference)
    assert consultation.status == ("completed" if action == "complete" else "no_show")
    emails = _patient_emails(app)
    assert len(emails) == emails_before + 1
    assert AFTER_START_SUBJECTS[action] in emails[-1].subject


def test_a_no_show_is_asked_about_first_and_the_pages_button_marks_it(
    app: Flask, client: FlaskClient, clinic: Waiting
) -> None:
    """A no-show closes the request for good and emails the patient "We missed you": the
    record's button answers with a page saying so and changes nothing; its own button does
    it, with the record's state carried through."""
    AuthActions(client).attempt(clinic.coordinator.email)
    _confirmed_in_two_days(app, client, clinic)
    _started(app, clinic.reference, timedelta(minutes=10))
    record_page = f"/staff/requests/{clinic.reference}"
    before = _stored(app)

    question, warnings, page = asked(
        client.post(
            f"{record_page}/no_show",
            data={
                "action-csrf_token": csrf_token(client, record_page),
                "action-seen": CSRF_SEEN.search(client.get(record_page).get_data(as_text=True))[1],
            },
        )
    )

    assert question == f"Mark {clinic.reference} as no-show?"
    assert warnings == []
    assert "The request is closed for good: this cannot be undone." in page
    assert "The patient is emailed that they missed the appointment." in page
    assert "Mark as no-show and email the patient" in page
    assert f'href="{record_page}"' in page  # cancel
    assert 'name="action-seen"' in page
    assert _request(app, clinic.reference).status == RequestStatus.CONFIRMED
    assert _stored(app) == before  # no email, no timeline entry, no audit row

    assert confirm(client, page).status_code == 302
    assert _request(app, clinic.reference).status == RequestStatus.NO_SHOW
    assert "We missed you" in _patient_emails(app)[-1].subject
    # The record then says so in words ("a request that is no-show" is not English), and so
    # does a change posted from a page shown before.
    closed = " ".join(client.get(record_page).get_data(as_text=True).split())
    assert "No further changes are possible for a request that is marked as a no-show." in closed
    assert "that is no-show" not in closed
    refused = act(client, clinic.reference, "cancel")
    assert refused.status_code == 409
    assert (
        "A request that is marked as a no-show cannot be changed to cancelled."
        in refused.get_data(as_text=True)
    )


def test_a_no_show_that_would_be_refused_is_refused_without_being_asked_about(
    app: Flask, client: FlaskClient, clinic: Waiting
) -> None:
    """Asked about only when it can be made: one refused (not begun, a stale page) says why
    at once, not after a confirmation."""
    AuthActions(client).attempt(clinic.coordinator.email)
    _confirmed_in_two_days(app, client, clinic)
    token = csrf_token(client, f"/staff/requests/{clinic.reference}")
    before = _stored(app)
    response = client.post(
        f"/staff/requests/{clinic.reference}/no_show", data={"action-csrf_token": token}
    )
    assert response.status_code == 409
    assert "the request can be marked no-show only from then" in response.get_data(as_text=True)
    _started(app, clinic.reference, timedelta(minutes=10))
    stale = client.post(
        f"/staff/requests/{clinic.reference}/no_show",
        data={"action-csrf_token": token, "action-seen": "an older page"},
    )
    assert stale.status_code == 409
    # (The coordinator's own confirmation a moment ago is what changed it.)
    assert "You changed this request a moment ago" in stale.get_data(as_text=True)
    assert _request(app, clinic.reference).status == RequestStatus.CONFIRMED
    assert _stored(app) == before


def test_the_no_show_email_names_the_appointments_day_not_today(
    app: Flask, client: FlaskClient, clinic: Waiting
) -> None:
    """Marked three days after the appointment, the email still says which one was missed."""
    AuthActions(client).attempt(clinic.coordinator.email)
    _confirmed_in_two_days(app, client, clinic)
    _started(app, clinic.reference, timedelta(days=3))
    when = _starts_at(app, clinic.reference)
    assert act(client, clinic.reference, "no_show").status_code == 302
    email = _patient_emails(app)[-1]
    assert email.subject == (f"We missed you at your appointment on {when} ({clinic.reference})")
    assert "today" not in email.subject and "today" not in email.body_text


def test_an_appointment_without_a_type_leaves_the_type_to_choose(app: Flask) -> None:
    """An appointment row may have no type (the column is nullable): the form asks for one
    rather than failing on the note about a type no longer offered."""
    from types import SimpleNamespace

    from booking.dashboard.forms import SlotForm

    with app.test_request_context():
        form = SlotForm(prefix="slot")
        weber = SimpleNamespace(id=7, full_name="Dr. Weber")
        form.set_choices([weber], [], [])
        appointment = SimpleNamespace(
            starts_at=now_utc(),
            specialist_id=7,
            specialist=weber,
            location_id=None,
            appointment_type_id=None,
        )
        form.show_appointment(appointment)
        assert form.specialist.data == 7
        assert form.appointment_type.data is None and not form.appointment_type.description
        assert form.location.data is None


SEEN = re.compile(r'name="(slot|close|complete|action)-seen" type="hidden" value="([^"]*)"')


def _page_state(client: FlaskClient, reference: str) -> tuple[str, dict[str, str]]:
    """The record page's CSRF token and each status form's state as the page showed it."""
    page = client.get(f"/staff/requests/{reference}").get_data(as_text=True)
    return CSRF_VALUE.search(page).group(1), dict(SEEN.findall(page))


def _start_hour(app: Flask, request_id: int) -> int:
    with app.app_context():
        appointment = db.session.scalars(
            select(Appointment).where(Appointment.request_id == request_id)
        ).one()
        return to_clinic_tz(appointment.starts_at).hour


def _post(client: FlaskClient, reference: str, action: str, prefix: str, token, seen, **fields):
    data = {f"{prefix}-csrf_token": token, f"{prefix}-seen": seen[prefix]}
    data |= {f"{prefix}-{name}": value for name, value in fields.items()}
    return client.post(f"/staff/requests/{reference}/{action}", data=data)


def test_a_page_opened_before_the_patient_moved_cannot_confirm_the_old_time(
    app: Flask, client: FlaskClient, clinic: Waiting
) -> None:
    """The coordinator opens a request holding 10:00; the patient then moves it to 15:00 on
    their private page. Confirming from the page still showing 10:00 is refused with the
    reason, and nothing changes: the patient is not told "confirmed at 10:00" after choosing
    15:00. The page shown again carries the new state, so confirming from it works."""
    from booking.manage import services as manage
    from booking.scheduling.services import SlotChoice
    from booking.timeutil import from_clinic_local

    with app.app_context():
        # Not DAY: a patient picks a time only within the booking horizon (two months).
        day = clinic_today() + timedelta(days=7)
        held = make_request(
            email="held@example.com",
            slot=SlotChoice(
                clinic.type, clinic.weber.id, clinic.location, from_clinic_local(day, time(10))
            ),
        )
        reference = held.reference
    AuthActions(client).attempt(clinic.coordinator.email)
    token, seen = _page_state(client, reference)
    assert set(seen) == {"slot", "close"} and seen["slot"] == seen["close"]
    with app.app_context():
        consultation = db.session.scalars(
            select(ConsultationRequest).where(ConsultationRequest.reference == reference)
        ).one()
        later = from_clinic_local(day, time(15))
        manage.reschedule(
            consultation, SlotChoice(clinic.type, clinic.weber.id, clinic.location, later)
        )
    emails_before = len(_patient_emails(app))

    response = _post(
        client, reference, "confirm", "slot", token, seen, **slot(clinic, day=day.isoformat())
    )
    assert response.status_code == 409
    page = response.get_data(as_text=True)
    assert "This request changed while you had it open" in page
    consultation = _request(app, reference)
    assert consultation.status == RequestStatus.REQUESTED
    assert _start_hour(app, consultation.id) == 15
    assert len(_patient_emails(app)) == emails_before
    # The page shown with the refusal has the request as it is now: confirming works.
    fresh = dict(SEEN.findall(page))
    assert fresh["slot"] != seen["slot"]
    response = _post(
        client,
        reference,
        "confirm",
        "slot",
        token,
        fresh,
        **slot(clinic, day=day.isoformat(), start="15:00"),
    )
    assert response.status_code == 302
    assert _request(app, reference).status == RequestStatus.CONFIRMED


def test_the_same_change_sent_twice_says_it_was_made_once(
    app: Flask, client: FlaskClient, clinic: Waiting
) -> None:
    """A double click or a reload posts the same reschedule again: the first post moved the
    appointment and emailed the patient. The second is refused as stale, but saying the
    coordinator's own change was made, not that "the patient or a colleague" changed it and
    "nothing was done", which reads as if the move had failed."""
    AuthActions(client).attempt(clinic.coordinator.email)
    assert act(client, clinic.reference, "confirm", **slot(clinic)).status_code == 302
    token, seen = _page_state(client, clinic.reference)
    fields = slot(clinic, start="11:00")
    first = _post(client, clinic.reference, "reschedule", "slot", token, seen, **fields)
    assert first.status_code == 302
    emails = len(_patient_emails(app))
    again = _post(client, clinic.reference, "reschedule", "slot", token, seen, **fields)
    assert again.status_code == 409
    page = again.get_data(as_text=True)
    assert "You changed this request a moment ago" in page, page
    assert "the change was made once" in page
    assert "changed while you had it open" not in page
    assert len(_patient_emails(app)) == emails
    assert _start_hour(app, _request(app, clinic.reference).id) == 11


def test_two_coordinators_rescheduling_at_once_do_not_undo_each_other(
    app: Flask, client: FlaskClient, clinic: Waiting
) -> None:
    """Both open the confirmed request; the first moves it to 11:00. The second, whose page
    still shows 10:00, is refused instead of moving it again unseen (the patient would get
    two "changed" emails and the first coordinator would never know)."""
    auth = AuthActions(client)
    auth.attempt(clinic.coordinator.email)
    assert act(client, clinic.reference, "confirm", **slot(clinic)).status_code == 302
    other = auth.new_client("admin")
    token_a, seen_a = _page_state(client, clinic.reference)
    token_b, seen_b = _page_state(other, clinic.reference)
    assert seen_a == seen_b
    moved = _post(
        client,
        clinic.reference,
        "reschedule",
        "slot",
        token_a,
        seen_a,
        **slot(clinic, start="11:00"),
    )
    assert moved.status_code == 302
    refused = _post(
        other,
        clinic.reference,
        "reschedule",
        "slot",
        token_b,
        seen_b,
        **slot(clinic, start="15:00"),
    )
    assert refused.status_code == 409
    assert "This request changed while you had it open" in refused.get_data(as_text=True)
    assert _start_hour(app, _request(app, clinic.reference).id) == 11
    # A stale cancel is refused the same way.
    refused = _post(other, clinic.reference, "cancel", "close", token_b, seen_b)
    assert refused.status_code == 409
    assert _request(app, clinic.reference).status == RequestStatus.CONFIRMED


def test_declining_a_request_that_holds_a_time_says_the_time_is_released(
    app: Flask, client: FlaskClient, clinic: Waiting
) -> None:
    """The patient picked a time when they asked; the decline email says that time is no
    longer kept and names it, as the calendar file it carries cancels it."""
    from booking.scheduling.services import SlotChoice
    from booking.timeutil import from_clinic_local

    with app.app_context():
        # Not DAY: a patient picks a time only within the booking horizon (two months).
        day = clinic_today() + timedelta(days=7)
        held = make_request(
            email="held@example.com",
            slot=SlotChoice(
                clinic.type, clinic.weber.id, clinic.location, from_clinic_local(day, time(10))
            ),
        )
        reference, starts_at = held.reference, held.appointment.starts_at
    AuthActions(client).attempt(clinic.coordinator.email)
    assert act(client, reference, "decline").status_code == 302
    [email] = [e for e in _patient_emails(app) if e.recipient == "held@example.com"]
    assert "The time you had chosen, below, is no longer kept for you." in email.body_text
    # Whatever reason staff give, the patient still learns where to turn.
    assert "talk to your family doctor about other ways to get care" in email.body_text
    assert "talk to your family doctor about other ways to get care" in email.body_html
    with app.app_context():
        assert f"When: {clinic_dt(starts_at, 'when')}" in email.body_text
    assert "Appointment: New-patient spine evaluation\n" in email.body_text
    assert _event(email)[0] == "CANCEL"


DECLINE_REASON_MISSING = (
    "Please give the reason for declining: the email tells the patient why the clinic cannot "
    "see them, and what they can do instead."
)


def test_a_decline_must_give_the_patient_its_reason(
    app: Flask, client: FlaskClient, clinic: Waiting
) -> None:
    """A decline's email says only that the clinic cannot see the patient: without the reason
    they are left not knowing why, nor what to do. Refused without one (nothing stored, what
    was filled in kept); given, it follows the news in both parts of the email."""
    with app.app_context():
        # Urgent and nobody has called: the form has a box to tick too, kept when refused.
        urgent = make_request(email="urgent@example.com", red_flags={"fever"}).reference
    AuthActions(client).attempt(clinic.coordinator.email)
    page = client.get(f"/staff/requests/{urgent}").get_data(as_text=True)
    # Beside a cancellation, whose message stays optional, required for a decline: not
    # "(optional)", and its help says so.
    assert 'for="close-message">Message sent with the decline or cancellation</label>' in page
    assert "Required to decline: say why the clinic cannot see the patient" in page

    for blank in ("", "  \r\n "):
        refused = act(client, urgent, "decline", message=blank, unreached="y")
        assert refused.status_code == 422
        page = refused.get_data(as_text=True)
        assert DECLINE_REASON_MISSING in page
        [box] = re.findall(r'<textarea[^>]*id="close-message"[^>]*>', page)
        assert 'aria-invalid="true"' in box and "close-message-error" in box
        [tick] = re.findall(r'<input[^>]*name="close-unreached"[^>]*>', page)
        assert " checked " in tick  # kept
    assert _request(app, urgent).status == RequestStatus.REQUESTED
    assert _patient_emails(app) == []
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(RequestEvent)) == 0
        declined = select(AuditEvent).where(AuditEvent.action == "request_declined")
        assert db.session.scalars(declined).all() == []

    # Cancelling needs none: most are the patient's own, asked by phone.
    assert act(client, clinic.reference, "cancel", message="").status_code == 302
    assert _request(app, clinic.reference).status == RequestStatus.CANCELLED

    reason = "We do not treat children's scoliosis.\nThe children's hospital does: ask them."
    assert act(client, urgent, "decline", message=reason, unreached="y").status_code == 302
    assert _request(app, urgent).status == RequestStatus.DECLINED
    [email] = [e for e in _patient_emails(app) if e.recipient == "urgent@example.com"]
    text = email.body_text
    news = "We are sorry that we cannot offer you an appointment at our clinic for it."
    assert text.index(news) < text.index("A message from the clinic:\nWe do not treat children")
    assert text.index(reason) < text.index("Your reference:")
    assert text.count(reason) == 1
    html = email.body_html
    assert html.index(news) < html.index("We do not treat children") < html.index("Your reference")
    # Its lines stay lines in the HTML part too.
    assert "scoliosis.<br>The children&#39;s hospital does: ask them." in html


def test_a_decline_without_a_message_still_reads_whole(app: Flask, clinic: Waiting) -> None:
    """Declined before a reason was required, or written again from an old email (a resend
    of a failed one): the email still says what happened and where to turn, and no empty
    "message" heading."""
    from booking.requests.emails import patient_update

    with app.app_context():
        consultation = db.session.scalars(
            select(ConsultationRequest).where(ConsultationRequest.reference == clinic.reference)
        ).one()
        consultation.status = RequestStatus.DECLINED
        email = patient_update(consultation, "declined", None)
        for part in (email.body_text, email.body_html):
            assert "cannot offer you an appointment at our clinic for it" in part
            assert "talk to your family doctor about other ways to get care" in part
            assert "A message from the clinic" not in part
        assert "\n\n\n" not in email.body_text


def _closing_help(page: str) -> dict[str, str]:
    """What the record's "Decline or cancel" disclosure says beside each button, by action
    (a button is described by its paragraph), its lead as "lead", its summary as "summary",
    and the label of its message as "message"."""
    field = page.index('name="close-seen"')
    details = page[page.rindex("<details", 0, field) : page.index("</details>", field)]
    said = {
        "summary": re.search(r"<summary>(.*?)</summary>", details, re.S)[1],
        "lead": re.search(r"<form[^>]*>\s*<p>(.*?)</p>", details, re.S)[1],
    }
    if message := re.search(r'<label[^>]*for="close-message">(.*?)<', details, re.S):
        said["message"] = message[1].strip()
    for action in ("decline", "cancel"):
        button = re.search(rf'<button[^>]*/{action}"[^>]*>', details)
        if button is not None:
            assert f'aria-describedby="{action}-help"' in button[0]
            said[action] = re.search(rf'id="{action}-help">(.*?)</p>', details, re.S)[1]
    return said


DECLINE_HELP = (
    "Declining: the clinic will not see the patient for this request. Their email says we "
    "cannot offer them an appointment for it and to ask their family doctor about other care: "
    "give the reason in the message."
)
CANCEL_HELP = (
    "Cancelling: the patient asked to cancel, or the visit will not happen. Their email says "
    "the request is cancelled. If the clinic cancels, say why in the message, and what the "
    "patient can do."
)


def _mark_deceased(app: Flask, clinic: Waiting) -> None:
    """Staff (the coordinator) mark the clinic's waiting request's patient deceased."""
    from booking.outcomes.services import mark_deceased

    with app.app_context():
        consultation = db.session.scalars(
            select(ConsultationRequest).where(ConsultationRequest.reference == clinic.reference)
        ).one()
        mark_deceased(consultation, db.session.get(StaffUser, clinic.coordinator.id))


def test_decline_and_cancel_each_say_what_they_mean_and_that_they_are_final(
    app: Flask, client: FlaskClient, clinic: Waiting
) -> None:
    """Both close the request for good and email the patient; the page said neither, nor
    how they differ: a decline is the clinic saying no (the email sends the patient to their
    family doctor), a cancellation is a visit that will not happen (the patient asked)."""
    AuthActions(client).attempt(clinic.coordinator.email)
    record = f"/staff/requests/{clinic.reference}"
    assert _closing_help(client.get(record).get_data(as_text=True)) == {
        "summary": "Decline or cancel",
        "lead": "Either closes the request for good: it cannot be undone, and the patient is "
        "emailed.",
        "message": "Message sent with the decline or cancellation",
        "decline": DECLINE_HELP,
        "cancel": CANCEL_HELP,
    }

    # Confirmed, the request can only be cancelled: the box offers no "either", nor a
    # decline, and says what it cancels (a bare "Cancel" read as "cancel this form").
    assert act(client, clinic.reference, "confirm", **slot(clinic)).status_code == 302
    assert _closing_help(client.get(record).get_data(as_text=True)) == {
        "summary": "Cancel the appointment",
        "lead": "This closes the request for good: it cannot be undone, and the patient is "
        "emailed.",
        "message": "Message sent with the cancellation",
        "cancel": CANCEL_HELP,
    }
    page = client.get(record).get_data(as_text=True)
    assert 'name="close-message"' in page
    assert "Send a new link" in page

    # Nothing goes to a patient marked deceased: the page promises no email, and offers
    # neither a message to send with the closing nor a new link.
    _mark_deceased(app, clinic)
    page = client.get(record).get_data(as_text=True)
    assert _closing_help(page) == {
        "summary": "Cancel the appointment",
        "lead": "This closes the request for good: it cannot be undone.",
        "cancel": "Cancelling: the patient asked to cancel, or the visit will not happen.",
    }
    assert 'name="close-message"' not in page
    assert "Send a new link" not in page


def test_no_email_to_a_patient_marked_deceased(
    app: Flask, client: FlaskClient, clinic: Waiting
) -> None:
    """Once staff mark the patient deceased, nothing more goes to the address (the family
    may read it), and staff are told so instead of 'an email to the patient is on its way'."""
    _mark_deceased(app, clinic)
    AuthActions(client).attempt(clinic.coordinator.email)
    response = act(client, clinic.reference, "confirm", **slot(clinic))
    assert response.status_code == 302
    page = client.get(response.location).get_data(as_text=True)
    assert "No email was sent: the patient is marked deceased." in page
    assert _request(app, clinic.reference).status == RequestStatus.CONFIRMED
    assert _patient_emails(app) == []


def test_the_no_show_box_promises_an_email_only_while_one_can_go(
    app: Flask, client: FlaskClient, clinic: Waiting
) -> None:
    """The folded no-show box says whether the patient is emailed: not once they are marked
    deceased (nothing more goes to the address)."""
    AuthActions(client).attempt(clinic.coordinator.email)
    _confirmed_in_two_days(app, client, clinic)
    _started(app, clinic.reference, timedelta(minutes=30))
    record = f"/staff/requests/{clinic.reference}"
    emailed = (
        "This closes the request for good: it cannot be undone, and the patient is emailed "
        "that they missed the appointment."
    )
    page = client.get(record).get_data(as_text=True)
    assert _offered(page)["no_show"]
    assert emailed in page

    _mark_deceased(app, clinic)
    page = client.get(record).get_data(as_text=True)
    assert _offered(page)["no_show"]
    assert emailed not in page
    assert "This closes the request for good: it cannot be undone.</p>" in page
