"""Staff follow-through on emergency and urgent requests (#15): calls logged from the record
page, the wait against the clinic's targets, and the escalation of an emergency nobody
acknowledged (once, also with two workers)."""

from __future__ import annotations

import secrets
import threading
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from booking.audit.models import AuditEvent
from booking.dashboard.services import log_callback
from booking.extensions import db
from booking.messages.models import Message
from booking.notifications.models import OutboxEmail
from booking.openinghours import closed_days, working_hours_setting
from booking.patients.services import CallbackSubmission, request_callback
from booking.requests.asks import InformationRequest
from booking.requests.calls import CallbackAttempt, CallOutcome
from booking.requests.escalation import URGENT_CATCH_UP, escalate_overdue
from booking.requests.events import EventKind, RequestEvent
from booking.requests.followup import (
    ClinicHours,
    Targets,
    add_working_time,
    wait_of,
    working_time,
)
from booking.requests.models import ConsultationRequest, RequestStatus, TriageLevel
from booking.staff.models import StaffUser
from booking.timeutil import clinic_today
from tests.factories import make_request
from tests.support import (
    AuthActions,
    Clinic,
    Staff,
    answer_red_flags,
    csrf_token,
    post_request,
    text,
    valid_answers,
)
from tests.test_destructive_confirmation import asked, confirm

BERLIN = ZoneInfo("Europe/Berlin")
HOUR = timedelta(hours=1)
HOURS = ClinicHours(frozenset(range(5)), time(8), time(18), BERLIN)
TARGETS = Targets(emergency=timedelta(minutes=30), urgent=timedelta(hours=4))
ON_CALL = "on-call@example.com"


def berlin(*args: int) -> datetime:
    return datetime(*args, tzinfo=BERLIN).astimezone(UTC)


# The time maths: pure functions -------------------------------------------------------------


def test_working_time_counts_only_the_clinics_hours() -> None:
    # Tuesday 17:00 to Wednesday 09:00: an hour before closing, an hour after opening.
    assert working_time(berlin(2026, 12, 8, 17), berlin(2026, 12, 9, 9), HOURS) == timedelta(
        hours=2
    )
    # Friday 16:00 to Monday 10:00: the weekend does not count.
    assert working_time(berlin(2026, 12, 4, 16), berlin(2026, 12, 7, 10), HOURS) == timedelta(
        hours=4
    )
    # Saturday to Sunday: nothing; an end before the start: nothing.
    assert working_time(berlin(2026, 12, 5, 9), berlin(2026, 12, 6, 17), HOURS) == timedelta()
    assert working_time(berlin(2026, 12, 7, 10), berlin(2026, 12, 7, 9), HOURS) == timedelta()
    # Three whole weeks, Monday 08:00 to Monday 08:00: 3 x 5 x 10 hours.
    assert working_time(berlin(2026, 11, 16, 8), berlin(2026, 12, 7, 8), HOURS) == timedelta(
        hours=150
    )
    # Across the change to summer time (Sunday 29 March 2026): still 10 hours a day.
    assert working_time(berlin(2026, 3, 27, 8), berlin(2026, 3, 30, 18), HOURS) == timedelta(
        hours=20
    )


def test_an_urgent_request_is_due_after_four_working_hours() -> None:
    # Friday evening: due on Monday at noon.
    assert add_working_time(berlin(2026, 12, 4, 19), timedelta(hours=4), HOURS) == berlin(
        2026, 12, 7, 12
    )
    # Tuesday 16:00: two hours that day, two the next morning.
    assert add_working_time(berlin(2026, 12, 8, 16), timedelta(hours=4), HOURS) == berlin(
        2026, 12, 9, 10
    )
    wait = wait_of(
        TriageLevel.URGENT, berlin(2026, 12, 4, 16), berlin(2026, 12, 7, 9), TARGETS, HOURS
    )
    assert wait is not None
    assert (wait.waited, wait.target, wait.overdue) == (timedelta(hours=3), TARGETS.urgent, False)
    assert wait.due_at == berlin(2026, 12, 7, 10)
    wait = wait_of(
        TriageLevel.URGENT, berlin(2026, 12, 4, 16), berlin(2026, 12, 7, 10), TARGETS, HOURS
    )
    assert wait is not None and wait.overdue


def test_public_holidays_do_not_count_as_working_time() -> None:
    """Berlin's holidays from the ``holidays`` package, and a day the clinic chose to close."""
    closed = closed_days("DE-BE", "2026-12-31", 2026)
    assert date(2026, 12, 25) in closed and date(2026, 12, 26) in closed  # Christmas
    assert date(2026, 3, 8) in closed  # International Women's Day: Berlin only
    assert date(2026, 12, 31) in closed and date(2026, 12, 24) not in closed
    assert date(2027, 1, 1) in closed  # the years around this one too
    assert date(2026, 3, 8) not in closed_days("DE-BY", "", 2026)  # not in Bavaria
    assert closed_days("", "", 2026) == frozenset()
    hours = replace(HOURS, closed=closed)
    # Thursday 24 December, 16:00: two hours that day; Friday 25 (Christmas), the weekend and
    # nothing else in between; two hours on Monday 28 December.
    assert add_working_time(berlin(2026, 12, 24, 16), timedelta(hours=4), hours) == berlin(
        2026, 12, 28, 10
    )
    assert working_time(berlin(2026, 12, 24, 16), berlin(2026, 12, 28, 10), hours) == timedelta(
        hours=4
    )
    # Over whole weeks too: 14 December to 4 January is 3 weeks of 5 days, less Christmas Day,
    # New Year's Eve (closed) and New Year's Day: 12 days of 10 hours.
    assert working_time(berlin(2026, 12, 14, 8), berlin(2027, 1, 4, 8), hours) == timedelta(
        hours=120
    )
    assert working_time(berlin(2026, 12, 14, 8), berlin(2027, 1, 4, 8), HOURS) == timedelta(
        hours=150
    )


@pytest.mark.parametrize("zone", ["Europe/Berlin", "Europe/Madrid"])
def test_working_hours_over_the_night_count_real_time_across_a_clock_change(zone: str) -> None:
    """Hours that cover the night (00:00-23:59, every day) count real time: the day the
    clocks go forward has an hour less of it, the day they go back an hour more, a target
    added to such a midnight ends that many real hours later, and whole weeks with a clock
    change in them count it too."""
    tz = ZoneInfo(zone)
    hours = ClinicHours(frozenset(range(7)), time(0), time(23, 59), tz)

    def local(*args: int) -> datetime:
        return datetime(*args, tzinfo=tz).astimezone(UTC)

    day = timedelta(hours=23, minutes=59)
    # Sunday 29 March 2026: 02:00 becomes 03:00; Sunday 25 October: 03:00 becomes 02:00.
    assert working_time(local(2026, 3, 29), local(2026, 3, 29, 23, 59), hours) == day - HOUR
    assert working_time(local(2026, 10, 25), local(2026, 10, 25, 23, 59), hours) == day + HOUR
    for change in (local(2026, 3, 29), local(2026, 10, 25)):
        assert add_working_time(change, timedelta(hours=4), hours) - change == timedelta(hours=4)
    # Two weeks from Monday 23 March (the middle days counted as a whole week), and from
    # Monday 19 October.
    assert working_time(local(2026, 3, 23), local(2026, 4, 6), hours) == 14 * day - HOUR
    assert working_time(local(2026, 10, 19), local(2026, 11, 2), hours) == 14 * day + HOUR
    # A week without a clock change still counts by the clock face.
    assert working_time(local(2026, 6, 1), local(2026, 6, 15), hours) == 14 * day


@pytest.mark.parametrize("zone", ["Europe/Berlin", "Europe/Madrid"])
def test_working_hours_to_24_00_are_the_whole_day_across_a_clock_change(zone: str) -> None:
    """ "00:00-24:00" (``CLINIC_WORKING_HOURS``): 24:00 is the midnight that ends the day, so
    the clinic is open to its last minute, a day counts its real 23, 24 or 25 hours, and a
    week seven whole days."""
    tz = ZoneInfo(zone)
    hours = ClinicHours(frozenset(range(7)), *working_hours_setting("00:00-24:00"), tz)

    def local(*args: int) -> datetime:
        return datetime(*args, tzinfo=tz).astimezone(UTC)

    assert hours.is_open(local(2026, 12, 5, 23, 59, 59))
    assert hours.week == timedelta(days=7)
    for day, real in ((date(2026, 3, 29), 23), (date(2026, 6, 1), 24), (date(2026, 10, 25), 25)):
        midnight = local(day.year, day.month, day.day)
        following = datetime.combine(day + timedelta(days=1), time(), tzinfo=tz).astimezone(UTC)
        assert hours.open_on(day) == (midnight, following)
        assert working_time(midnight, following, hours) == timedelta(hours=real)
    assert working_time(local(2026, 3, 23), local(2026, 4, 6), hours) == timedelta(days=14) - HOUR
    assert working_time(local(2026, 6, 1), local(2026, 6, 15), hours) == timedelta(days=14)


def test_an_emergency_counts_clock_minutes_at_any_hour() -> None:
    received = berlin(2026, 12, 5, 23, 50)  # a Saturday night
    wait = wait_of(
        TriageLevel.EMERGENCY, received, received + timedelta(minutes=29), TARGETS, HOURS
    )
    assert wait is not None and wait.waited == timedelta(minutes=29) and not wait.overdue
    wait = wait_of(
        TriageLevel.EMERGENCY, received, received + timedelta(minutes=42), TARGETS, HOURS
    )
    assert wait is not None and wait.overdue and wait.due_at == received + timedelta(minutes=30)
    assert wait_of(TriageLevel.ROUTINE, received, received, TARGETS, HOURS) is None


# Fixtures -----------------------------------------------------------------------------------


@pytest.fixture
def app_settings(app_settings: dict[str, Any]) -> dict[str, Any]:
    app_settings["ON_CALL_EMAIL"] = ON_CALL
    return app_settings


def _emergency() -> ConsultationRequest:
    return request_callback(
        CallbackSubmission(
            submission_token=secrets.token_urlsafe(32),
            locale="es",
            full_name="Juana Notinmail",
            phone="+4930901821",
            red_flags={"saddle_numbness"},
        )
    )


@pytest.fixture
def emergency(app: Flask, staff: Staff) -> dict[str, Any]:
    """An emergency call-back request, just received."""
    with app.app_context():
        consultation = _emergency()
        return {
            "id": consultation.id,
            "reference": consultation.reference,
            "created_at": consultation.created_at,
        }


def _received(app: Flask, request_id: int, ago: timedelta) -> None:
    """Move the request's arrival back (the clock moved forward since)."""
    with app.app_context():
        db.session.execute(
            sa.update(ConsultationRequest)
            .where(ConsultationRequest.id == request_id)
            .values(created_at=datetime.now(UTC) - ago)
        )
        db.session.commit()


def _escalations(app: Flask) -> list[OutboxEmail]:
    with app.app_context():
        rows = list(
            db.session.scalars(
                sa.select(OutboxEmail).where(OutboxEmail.template == "escalation_staff")
            )
        )
        db.session.expunge_all()
        return rows


def _escalated_once(
    app: Flask, request: dict[str, Any], at: datetime, hidden: tuple[str, ...]
) -> tuple[OutboxEmail, dict[str, Any]]:
    """The one escalation of ``request`` (its id and reference), made ``at``: one email to the
    on-call address naming the reference and the dashboard link and none of the ``hidden``
    patient details, ``escalated_at`` set, one timeline entry and one audit row. Returns the
    email and the audit row's details."""
    [email] = _escalations(app)
    assert email.recipient == ON_CALL
    assert request["reference"] in email.subject
    assert f"/staff/requests/{request['reference']}" in email.body_text
    for detail in hidden:
        assert detail not in email.body_text and detail not in email.body_html
        assert detail not in email.subject
    with app.app_context():
        consultation = db.session.get(ConsultationRequest, request["id"])
        assert consultation.escalated_at == at
        assert [e.kind for e in consultation.events] == [EventKind.ESCALATION]
        audit = db.session.scalars(
            sa.select(AuditEvent).where(AuditEvent.action == "request_escalated")
        ).one()
        assert audit.target_id == request["reference"]
        return email, dict(audit.details)


def _log_call(request_id: int, outcome: CallOutcome, called_at: datetime | None = None) -> None:
    """The coordinator logs a call to the patient (inside an app context)."""
    coordinator = db.session.scalars(
        sa.select(StaffUser).where(StaffUser.email == "coord@example.com")
    ).one()
    log_callback(db.session.get(ConsultationRequest, request_id), coordinator, outcome, called_at)


def _queue_row(client: FlaskClient, reference: str) -> str:
    """The queue's row for ``reference``, as the signed-in user sees it."""
    page = client.get("/staff/").get_data(as_text=True)
    row = page[page.index(reference) :]
    return row[: row.index("</tr>")]


# Logging a call -----------------------------------------------------------------------------


def test_a_call_that_reaches_the_patient_acknowledges_the_request(
    app: Flask, client: FlaskClient, emergency: dict[str, Any]
) -> None:
    account = AuthActions(client).login("coordinator")
    reference = emergency["reference"]
    page = client.get(f"/staff/requests/{reference}").get_data(as_text=True)
    # An emergency shows its call-backs first, with the wait against the target.
    assert page.index("Call-backs") < page.index("Patient</h2>")
    assert "waiting 0 min, target 30 min" in page and "No call logged yet." in page
    token = csrf_token(client, f"/staff/requests/{reference}")
    # No answer: logged, but the patient still waits for the clinic's call.
    response = client.post(
        f"/staff/requests/{reference}/calls",
        data={"call-csrf_token": token, "call-outcome": "no_answer"},
    )
    assert response.status_code == 302
    page = client.get(f"/staff/requests/{reference}").get_data(as_text=True)
    assert "Not reached yet" in page and "Patient reached" not in page
    with app.app_context():
        assert db.session.get(ConsultationRequest, emergency["id"]).acknowledged_at is None
        audit = db.session.scalars(
            sa.select(AuditEvent).where(AuditEvent.action == "callback_logged")
        ).one()
        assert audit.details["acknowledged"] is False
    response = client.post(
        f"/staff/requests/{reference}/calls",
        data={
            "call-csrf_token": token,
            "call-outcome": "reached",
            "call-note": "Advised A&E now; she is on her way.",
        },
    )
    assert response.status_code == 302
    page = client.get(f"/staff/requests/{reference}").get_data(as_text=True)
    assert "Reached and advised" in page and "Advised A&amp;E now; she is on her way." in page
    assert "Patient reached" in page and f"by <bdi>{account.full_name}</bdi>" in page
    assert "Not reached yet" not in page
    # How long they waited, in the past tense: "waiting" read as if they still were.
    assert "reached after 0 min, target 30 min" in page
    assert "waiting 0 min" not in page

    with app.app_context():
        consultation = db.session.get(ConsultationRequest, emergency["id"])
        assert consultation.acknowledged_by_id == account.id
        first_acknowledged = consultation.acknowledged_at
        call = db.session.scalars(
            sa.select(CallbackAttempt).where(CallbackAttempt.outcome == CallOutcome.REACHED)
        ).one()
        assert call.caller_id == account.id
        event = db.session.get(RequestEvent, call.event_id)
        assert event.kind == EventKind.CALL and event.body.startswith("Advised A&E")
        audit = db.session.scalars(
            sa.select(AuditEvent)
            .where(AuditEvent.action == "callback_logged")
            .order_by(AuditEvent.id.desc())
        ).first()
        assert audit.target_id == reference and audit.details["acknowledged"] is True
        assert "A&E" not in str(audit.details)  # the note stays on the timeline

    # Another call, entered as made an hour ago: logged; the acknowledgement stays the first.
    # (An hour of real time, then the clinic's clock: on a clock-change night the clock face
    # minus an hour is a time that never was, or one an hour further back.)
    _received(app, emergency["id"], timedelta(hours=2, minutes=5))
    called = (datetime.now(UTC) - timedelta(hours=1)).astimezone(BERLIN)
    response = client.post(
        f"/staff/requests/{reference}/calls",
        data={
            "call-csrf_token": token,
            "call-outcome": "no_answer",
            "call-day": called.date().isoformat(),
            "call-at": called.strftime("%H:%M"),
        },
    )
    assert response.status_code == 302
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(CallbackAttempt)) == 3
        consultation = db.session.get(ConsultationRequest, emergency["id"])
        assert consultation.acknowledged_at == first_acknowledged


def test_the_earliest_reaching_call_acknowledges_whatever_order_they_are_logged_in(
    app: Flask, staff: Staff, emergency: dict[str, Any]
) -> None:
    """Calls may be logged after the fact: one that reached the patient before the call
    logged first moves the acknowledgement (and who made it) back to it, so the wait shown
    against the target is the real one; a later reaching call moves nothing."""
    _received(app, emergency["id"], timedelta(hours=3))
    now = datetime.now(UTC).replace(microsecond=0)
    with app.app_context():
        _log_call(emergency["id"], CallOutcome.REACHED, now - timedelta(minutes=30))
        admin = db.session.get(StaffUser, staff.admin.id)
        earlier = now - timedelta(hours=2)
        log_callback(
            db.session.get(ConsultationRequest, emergency["id"]),
            admin,
            CallOutcome.REACHED,
            earlier,
        )
        consultation = db.session.get(ConsultationRequest, emergency["id"])
        assert consultation.acknowledged_at == earlier
        assert consultation.acknowledged_by_id == staff.admin.id
        audit = db.session.scalars(
            sa.select(AuditEvent)
            .where(AuditEvent.action == "callback_logged")
            .order_by(AuditEvent.id.desc())
        ).first()
        assert audit.details["acknowledged"] is True

        _log_call(emergency["id"], CallOutcome.REACHED, now - timedelta(minutes=10))
        consultation = db.session.get(ConsultationRequest, emergency["id"])
        assert consultation.acknowledged_at == earlier
        assert consultation.acknowledged_by_id == staff.admin.id


def test_a_call_needs_an_outcome_and_a_time_that_has_been(
    app: Flask, client: FlaskClient, emergency: dict[str, Any]
) -> None:
    AuthActions(client).login("coordinator")
    reference = emergency["reference"]
    token = csrf_token(client, f"/staff/requests/{reference}")
    response = client.post(f"/staff/requests/{reference}/calls", data={"call-csrf_token": token})
    assert response.status_code == 422
    assert "Please choose what came of the call." in response.get_data(as_text=True)
    tomorrow = datetime.now(UTC).astimezone(BERLIN) + timedelta(days=1)
    response = client.post(
        f"/staff/requests/{reference}/calls",
        data={
            "call-csrf_token": token,
            "call-outcome": "reached",
            "call-day": tomorrow.date().isoformat(),
            "call-at": "10:00",
        },
    )
    assert response.status_code == 422
    assert "The time of the call is in the future." in response.get_data(as_text=True)
    # Berlin's clocks skipped from 02:00 to 03:00 on 29 March 2026: 02:30 was never a time
    # there (it used to be stored as 03:30).
    response = client.post(
        f"/staff/requests/{reference}/calls",
        data={
            "call-csrf_token": token,
            "call-outcome": "reached",
            "call-day": "2026-03-29",
            "call-at": "02:30",
        },
    )
    assert response.status_code == 422
    assert "That time does not exist on that day because of a clock change." in response.get_data(
        as_text=True
    )
    # A date with the time left empty (or a time without a date) is a message, not a call
    # logged silently as made now.
    for when in ({"call-day": "2026-11-20"}, {"call-at": "10:00"}):
        response = client.post(
            f"/staff/requests/{reference}/calls",
            data={"call-csrf_token": token, "call-outcome": "reached", **when},
        )
        assert response.status_code == 422, when
        page = response.get_data(as_text=True)
        assert "Please enter both the date and the time, or neither." in page
    # Without the CSRF token nothing is logged.
    response = client.post(f"/staff/requests/{reference}/calls", data={"call-outcome": "reached"})
    assert response.status_code in (400, 422)
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(CallbackAttempt)) == 0


def test_a_call_with_the_outcome_other_needs_the_note_it_points_to(
    app: Flask, client: FlaskClient, emergency: dict[str, Any]
) -> None:
    # "Other (see the note)" with the note left empty (or only spaces) said nothing of what
    # came of the call: the form asks for the note, and nothing is logged.
    AuthActions(client).login("coordinator")
    reference = emergency["reference"]
    token = csrf_token(client, f"/staff/requests/{reference}")
    for note in ("", "   "):
        response = client.post(
            f"/staff/requests/{reference}/calls",
            data={"call-csrf_token": token, "call-outcome": "other", "call-note": note},
        )
        assert response.status_code == 422, note
        assert "Please say in the note what came of the call." in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(CallbackAttempt)) == 0
    # With the note, it is logged; the other outcomes still need none.
    for outcome, note in (
        ("other", "Spoke to the daughter: the patient is in hospital."),
        ("no_answer", ""),
    ):
        response = client.post(
            f"/staff/requests/{reference}/calls",
            data={"call-csrf_token": token, "call-outcome": outcome, "call-note": note},
        )
        assert response.status_code == 302, outcome
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(CallbackAttempt)) == 2


# No email address: the record offers no email -----------------------------------------------

# What the record offers only for a patient who can be emailed.
EMAIL_FORMS = (
    "Ask and email the patient",
    'name="msg-body"',
    "Send to the patient",
    "Confirm and email the patient",
    "Sent in the email, which the patient reads in",
)


def test_the_record_of_a_patient_without_email_offers_calls_not_emails(
    app: Flask, client: FlaskClient, clinic: Clinic, emergency: dict[str, Any]
) -> None:
    AuthActions(client).login("coordinator")
    with app.app_context():
        emailed = make_request().reference
    page = client.get(f"/staff/requests/{emailed}").get_data(as_text=True)
    assert all(form in page for form in EMAIL_FORMS)  # what a patient with email gets

    page = client.get(f"/staff/requests/{emergency['reference']}").get_data(as_text=True)
    assert [form for form in EMAIL_FORMS if form in page] == []
    assert "The patient left no email address: please call them instead." in page
    assert (
        "The patient left no email address and would not learn of a message: please call "
        "them." in page
    )
    assert "The patient left no email address, so they are not told of the changes" in page
    assert page.count('href="#calls">Log a call</a>') == 3
    assert 'id="calls"' in page and "Log the call" in page
    assert "Confirm the appointment" in page


def test_asking_or_writing_to_a_patient_without_email_is_still_refused(
    app: Flask, client: FlaskClient, emergency: dict[str, Any]
) -> None:
    """A form posted anyway (an old tab, a forged post) is refused by the server: nothing is
    stored and nothing is sent."""
    AuthActions(client).login("coordinator")
    record = f"/staff/requests/{emergency['reference']}"
    token = csrf_token(client, record)
    with app.app_context():
        emails_before = db.session.scalar(sa.select(sa.func.count()).select_from(OutboxEmail))
    asked = client.post(
        f"{record}/ask", data={"ask-csrf_token": token, "ask-question": "Any scans?"}
    )
    assert asked.status_code == 409
    assert "The patient left no email address: please call them instead." in asked.get_data(
        as_text=True
    )
    written = client.post(f"{record}/messages", data={"msg-csrf_token": token, "msg-body": "Hi"})
    assert written.status_code == 409
    assert "would not learn of a message" in written.get_data(as_text=True)
    # No link to send: the page said one was on its way, and the timeline that it was sent.
    linked = client.post(
        f"{record}/new-link", data={"link-csrf_token": token, "link-confirm": "yes"}
    )
    assert "there is no link to send" in client.get(linked.headers["Location"]).get_data(
        as_text=True
    )
    with app.app_context():
        consultation = db.session.get(ConsultationRequest, emergency["id"])
        assert consultation.status == RequestStatus.REQUESTED
        assert db.session.scalar(sa.select(sa.func.count()).select_from(InformationRequest)) == 0
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Message)) == 0
        assert (
            db.session.scalar(sa.select(sa.func.count()).select_from(OutboxEmail)) == emails_before
        )
        assert [event.kind for event in consultation.events] == []


def test_confirming_a_patient_without_email_says_to_call_them(
    app: Flask, client: FlaskClient, clinic: Clinic, emergency: dict[str, Any]
) -> None:
    AuthActions(client).login("coordinator")
    record = f"/staff/requests/{emergency['reference']}"
    with app.app_context():
        day = clinic_today() + timedelta(days=2)
        emails_before = db.session.scalar(sa.select(sa.func.count()).select_from(OutboxEmail))
    response = client.post(
        f"{record}/confirm",
        data={
            "slot-csrf_token": csrf_token(client, record),
            "slot-appointment_type": clinic.type,
            "slot-specialist": clinic.weber.id,
            "slot-location": clinic.location,
            "slot-day": day.isoformat(),
            "slot-start": "10:00",
        },
    )
    assert response.status_code == 302
    page = client.get(record).get_data(as_text=True)
    assert "Done. The patient left no email address: please call them to tell them." in page
    assert "email to the patient is on its way" not in page
    assert "Reschedule the appointment" in page and "Reschedule and email" not in page
    with app.app_context():
        consultation = db.session.get(ConsultationRequest, emergency["id"])
        assert consultation.status == RequestStatus.CONFIRMED
        # Nothing to the patient (no address); no email to the clinic either.
        assert (
            db.session.scalar(sa.select(sa.func.count()).select_from(OutboxEmail)) == emails_before
        )


# The queue ----------------------------------------------------------------------------------


def test_the_queue_shows_the_wait_against_the_target(
    app: Flask, client: FlaskClient, emergency: dict[str, Any]
) -> None:
    AuthActions(client).login("coordinator")
    _received(app, emergency["id"], timedelta(minutes=42, seconds=10))
    with app.app_context():
        routine = make_request().reference
    row = _queue_row(client, emergency["reference"])
    assert "Overdue" in row and "waiting 42 min, target 30 min" in row
    assert "waiting" not in _queue_row(client, routine)

    with app.app_context():
        _log_call(emergency["id"], CallOutcome.NO_ANSWER)
    row = _queue_row(client, emergency["reference"])  # no answer: still waiting
    assert "Overdue" in row and "Patient reached" not in row
    with app.app_context():
        _log_call(emergency["id"], CallOutcome.REACHED)
    row = _queue_row(client, emergency["reference"])
    assert "Patient reached" in row and "by <bdi>Cora Coord</bdi>" in row and "Overdue" not in row


# Closing a request whose patient nobody reached --------------------------------------------

UNREACHED_BOX = (
    "The patient has not been reached about their urgent symptoms: close the request anyway"
)
UNREACHED_REFUSAL = (
    "Nobody has reached this patient about their urgent symptoms: no call that reached them is "
    "logged. Call them first, or tick the box to close the request anyway."
)


def _close(client: FlaskClient, reference: str, action: str, **fields: str):
    """Decline or cancel from the record page's form, as a browser posts it."""
    record = f"/staff/requests/{reference}"
    token = csrf_token(client, record)
    data = {"close-csrf_token": token, **{f"close-{k}": v for k, v in fields.items()}}
    return client.post(f"{record}/{action}", data=data)


def _closing_audit(reference: str) -> list[dict[str, Any]]:
    rows = db.session.scalars(
        sa.select(AuditEvent).where(
            AuditEvent.target_id == reference,
            AuditEvent.action.in_(["request_declined", "request_cancelled"]),
        )
    )
    return [dict(row.details) for row in rows]


@pytest.mark.parametrize("action", ["decline", "cancel"])
def test_closing_an_unreached_emergency_needs_the_box_ticked(
    app: Flask, client: FlaskClient, emergency: dict[str, Any], action: str
) -> None:
    """Declining or cancelling ends the call-back target and the escalation, and the patient
    (a phone number only) hears nothing: refused until staff tick the box that says so."""
    AuthActions(client).login("coordinator")
    reference = emergency["reference"]
    page = client.get(f"/staff/requests/{reference}").get_data(as_text=True)
    assert UNREACHED_BOX in page and 'name="close-unreached"' in page

    refused = _close(client, reference, action)
    assert refused.status_code == 422
    assert UNREACHED_REFUSAL in refused.get_data(as_text=True)
    with app.app_context():
        consultation = db.session.get(ConsultationRequest, emergency["id"])
        assert consultation.status == RequestStatus.REQUESTED
        assert consultation.events == []
        assert _closing_audit(reference) == []

    closed = _close(client, reference, action, unreached="y")
    assert closed.status_code == 302
    page = client.get(closed.headers["Location"]).get_data(as_text=True)
    assert "please call them to tell them" in page
    assert "Closed without reaching the patient about their urgent symptoms" in page
    with app.app_context():
        consultation = db.session.get(ConsultationRequest, emergency["id"])
        expected = RequestStatus.DECLINED if action == "decline" else RequestStatus.CANCELLED
        assert consultation.status == expected
        assert sorted(e.kind for e in consultation.events) == [EventKind.NOTE, EventKind.STATUS]
        [audit] = _closing_audit(reference)
        assert audit["unreached"] is True


def test_the_service_refuses_an_unreached_close_without_the_confirmation(
    app: Flask, staff: Staff
) -> None:
    """The rule is the service's: a caller that skips the form is refused the same way."""
    from booking.dashboard.services import cancel_request, decline_request
    from booking.requests.lifecycle import WorkflowError

    urgent = _urgent(app, datetime.now(UTC))
    with app.app_context():
        coordinator = db.session.scalars(
            sa.select(StaffUser).where(StaffUser.email == "coord@example.com")
        ).one()
        for operation in (decline_request, cancel_request):
            consultation = db.session.get(ConsultationRequest, urgent["id"])
            with pytest.raises(WorkflowError, match="Nobody has reached this patient"):
                operation(consultation, coordinator)
            db.session.rollback()
        consultation = db.session.get(ConsultationRequest, urgent["id"])
        assert consultation.status == RequestStatus.REQUESTED
        assert _closing_audit(urgent["reference"]) == []


def test_a_routine_or_a_reached_request_closes_without_the_box(
    app: Flask, client: FlaskClient, emergency: dict[str, Any]
) -> None:
    AuthActions(client).login("coordinator")
    with app.app_context():
        routine = make_request().reference
        _log_call(emergency["id"], CallOutcome.REACHED)
    for reference, action in ((routine, "decline"), (emergency["reference"], "cancel")):
        page = client.get(f"/staff/requests/{reference}").get_data(as_text=True)
        assert UNREACHED_BOX not in page
        # A box posted anyway (an old page) is not offered, so not recorded.
        reason = "We do not treat this here." if action == "decline" else ""  # CloseForm
        assert _close(client, reference, action, unreached="y", message=reason).status_code == 302
        with app.app_context():
            [audit] = _closing_audit(reference)
            assert "unreached" not in audit
            note = "Closed without reaching the patient"
            assert not any(note in (e.body or "") for e in _events_of(reference))


# The visit of a patient nobody reached: missed, or seen ---------------------------------------


def _urgent_visit_started(app: Flask, clinic: Clinic) -> dict[str, Any]:
    """An urgent request (fever with the pain), confirmed by the coordinator, whose
    appointment started an hour ago; nobody has reached the patient by phone."""
    from booking.dashboard.services import confirm_request
    from tests.factories import appointment_started, slot_two_days_ahead

    with app.app_context():
        consultation = make_request(red_flags={"fever"}, full_name="Uma Notinmail")
        assert consultation.triage_level == TriageLevel.URGENT
        coordinator = db.session.get(StaffUser, clinic.coordinator.id)
        confirm_request(consultation, coordinator, slot_two_days_ahead(clinic))
        appointment_started(consultation.reference)
        consultation = db.session.get(ConsultationRequest, consultation.id)
        assert consultation.unreached
        return {
            "id": consultation.id,
            "reference": consultation.reference,
            "starts_at": consultation.appointment.starts_at,
            "specialist_id": consultation.appointment.specialist_id,
        }


def _no_show(client: FlaskClient, reference: str, *, confirmed: bool = True, **fields: str):
    """Mark no-show from the record page's form, as a browser posts it: by default from its
    confirmation page (``confirmed``), which carries the form's fields as they were."""
    record = f"/staff/requests/{reference}"
    token = csrf_token(client, record)
    data = {"action-csrf_token": token, **{f"action-{k}": v for k, v in fields.items()}}
    if confirmed:
        data["confirmed"] = "1"
    return client.post(f"{record}/no_show", data=data)


def _audit_of(reference: str, action: str) -> list[dict[str, Any]]:
    rows = db.session.scalars(
        sa.select(AuditEvent).where(AuditEvent.target_id == reference, AuditEvent.action == action)
    )
    return [dict(row.details) for row in rows]


def test_marking_an_unreached_urgent_patient_no_show_needs_the_box_ticked(
    app: Flask, client: FlaskClient, clinic: Clinic
) -> None:
    """A missed visit of an urgent patient nobody reached is when the clinic must keep
    calling: marking it no-show ends the call-back target and the escalation, so it is
    refused until staff tick the box that says so, as for a decline or cancellation."""
    urgent = _urgent_visit_started(app, clinic)
    reference = urgent["reference"]
    AuthActions(client).login("coordinator")
    page = client.get(f"/staff/requests/{reference}").get_data(as_text=True)
    assert 'name="action-unreached"' in page

    # Unticked, it is not even asked about; nor done from a (forged) confirming post.
    assert _no_show(client, reference).status_code == 422
    refused = _no_show(client, reference, confirmed=False)
    assert refused.status_code == 422
    assert UNREACHED_REFUSAL in refused.get_data(as_text=True)
    assert "<title>Error: " in refused.get_data(as_text=True)  # said first on arrival
    # The summary says in a few words what to do; the box's long statement and the
    # refusal's reason are beside the box.
    page = refused.get_data(as_text=True)
    summary = page.split('id="error-summary"')[1].split(">", 1)[1].split("</div>")[0]
    assert text(summary) == (
        "Please correct the following Tick the box to confirm that nobody has reached the patient."
    )
    assert 'href="#action-unreached"' in summary
    with app.app_context():
        consultation = db.session.get(ConsultationRequest, urgent["id"])
        assert consultation.status == RequestStatus.CONFIRMED
        assert _audit_of(reference, "request_no_show") == []

    # Ticked: asked about first, saying the call-back target and the escalation stop;
    # nothing is done, and the ticked box goes through the page.
    with app.app_context():
        emails = db.session.scalar(sa.select(sa.func.count()).select_from(OutboxEmail))
    question, warnings, asking = asked(_no_show(client, reference, confirmed=False, unreached="y"))
    assert question == f"Mark {reference} as no-show?"
    assert warnings == [
        "Nobody has reached this patient about their urgent symptoms: the call-back target "
        "and the escalation to the on-call address stop."
    ]
    assert '<input type="hidden" name="action-unreached" value="y">' in asking
    with app.app_context():
        consultation = db.session.get(ConsultationRequest, urgent["id"])
        assert consultation.status == RequestStatus.CONFIRMED
        assert _audit_of(reference, "request_no_show") == []
        assert db.session.scalar(sa.select(sa.func.count()).select_from(OutboxEmail)) == emails

    marked = confirm(client, asking)
    assert marked.status_code == 302
    page = client.get(marked.headers["Location"]).get_data(as_text=True)
    assert "Marked as no-show without reaching the patient about their urgent symptoms" in page
    with app.app_context():
        consultation = db.session.get(ConsultationRequest, urgent["id"])
        assert consultation.status == RequestStatus.NO_SHOW
        assert consultation.acknowledged_at is None  # still not reached: a missed visit
        [audit] = _audit_of(reference, "request_no_show")
        assert audit["unreached"] is True


def test_the_service_refuses_an_unreached_no_show_without_the_confirmation(
    app: Flask, clinic: Clinic
) -> None:
    from booking.dashboard.services import mark_no_show
    from booking.requests.lifecycle import WorkflowError

    urgent = _urgent_visit_started(app, clinic)
    with app.app_context():
        coordinator = db.session.get(StaffUser, clinic.coordinator.id)
        consultation = db.session.get(ConsultationRequest, urgent["id"])
        with pytest.raises(WorkflowError, match="Nobody has reached this patient"):
            mark_no_show(consultation, coordinator)
        db.session.rollback()
        consultation = db.session.get(ConsultationRequest, urgent["id"])
        assert consultation.status == RequestStatus.CONFIRMED


def test_a_reached_urgent_patient_is_marked_no_show_without_the_box(
    app: Flask, client: FlaskClient, clinic: Clinic
) -> None:
    urgent = _urgent_visit_started(app, clinic)
    with app.app_context():
        _log_call(urgent["id"], CallOutcome.REACHED)
    AuthActions(client).login("coordinator")
    page = client.get(f"/staff/requests/{urgent['reference']}").get_data(as_text=True)
    assert 'name="action-unreached"' not in page
    assert _no_show(client, urgent["reference"]).status_code == 302
    with app.app_context():
        [audit] = _audit_of(urgent["reference"], "request_no_show")
        assert "unreached" not in audit


def _no_show_details(page: str) -> str:
    """The opening tag of the disclosure around the record's no-show form ("" if none)."""
    form_at = page.index('/no_show"')
    opened = page.rfind("<details", 0, form_at)
    if opened == -1 or page.rfind("</details>", 0, form_at) > opened:
        return ""
    return page[opened : page.index(">", opened) + 1]


def test_the_no_show_is_folded_away_from_mark_completed(
    app: Flask, client: FlaskClient, clinic: Clinic
) -> None:
    """A no-show cannot be undone and emails the patient "We missed you": its button sat
    right after "Mark completed", one Tab and Enter (or a click beside it) from closing the
    request of a patient who came. It is folded away, as the decline and cancellation are,
    and unfolded when refused, so its box and error show."""
    urgent = _urgent_visit_started(app, clinic)
    AuthActions(client).login("coordinator")
    page = client.get(f"/staff/requests/{urgent['reference']}").get_data(as_text=True)
    assert "Mark completed" in page
    assert _no_show_details(page) == '<details class="mb-2">'
    assert "it cannot be undone, and the patient is emailed" in page

    refused = _no_show(client, urgent["reference"]).get_data(as_text=True)
    assert _no_show_details(refused) == '<details class="mb-2" open>'


def test_completing_the_visit_of_an_unreached_urgent_patient_counts_as_reaching_them(
    app: Flask, client: FlaskClient, clinic: Clinic
) -> None:
    """Completed means the patient was seen: reached at the appointment, by the specialist
    who saw them. Left "not reached", a completed request stayed on the queue's banner of
    failed alerts for good, its wait ran on, and the record said nobody reached them."""
    urgent = _urgent_visit_started(app, clinic)
    reference = urgent["reference"]
    AuthActions(client).login("coordinator")
    record = f"/staff/requests/{reference}"
    response = client.post(
        f"{record}/complete",
        data={
            "complete-csrf_token": csrf_token(client, record),
            "complete-plan": "physiotherapy",
        },
    )
    assert response.status_code == 302
    with app.app_context():
        consultation = db.session.get(ConsultationRequest, urgent["id"])
        assert consultation.status == RequestStatus.COMPLETED
        assert not consultation.unreached
        assert consultation.acknowledged_at == urgent["starts_at"]
        assert consultation.acknowledged_by_id == urgent["specialist_id"]
        [audit] = _audit_of(reference, "request_completed")
        assert audit["acknowledged"] is True


def _events_of(reference: str) -> list[RequestEvent]:
    return list(
        db.session.scalars(
            sa.select(RequestEvent)
            .join(ConsultationRequest)
            .where(ConsultationRequest.reference == reference)
        )
    )


# Escalation ---------------------------------------------------------------------------------


def test_an_unacknowledged_emergency_escalates_once(app: Flask, emergency: dict[str, Any]) -> None:
    received = emergency["created_at"]
    with app.app_context():
        assert escalate_overdue(now=received + timedelta(minutes=29)) == []
        assert len(escalate_overdue(now=received + timedelta(minutes=31))) == 1
        assert escalate_overdue(now=received + timedelta(minutes=45)) == []
        # The worker was down for a day: still nothing more.
        assert escalate_overdue(now=received + timedelta(days=1)) == []
    email, audit = _escalated_once(
        app,
        emergency,
        received + timedelta(minutes=31),
        ("Juana", "Notinmail", "901821", "saddle", "Saddle"),
    )
    assert emergency["reference"] in email.body_text
    assert audit["target_minutes"] == 30


def test_one_escalation_that_fails_does_not_hold_back_the_others(
    app: Flask, emergency: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two emergencies overdue; composing the first one's alarm fails (a damaged row, a
    missing key): the second is still escalated, and the first is tried again next run."""
    from booking.requests import emails as patient_emails

    with app.app_context():
        second = _emergency().id
    real_escalation = patient_emails.escalation

    def failing_first(consultation, recipient, wait):
        if consultation.id == emergency["id"]:
            raise RuntimeError("cannot compose this one")
        return real_escalation(consultation, recipient, wait)

    monkeypatch.setattr(patient_emails, "escalation", failing_first)
    later = emergency["created_at"] + timedelta(minutes=45)
    with app.app_context():
        assert len(escalate_overdue(now=later)) == 1
        assert db.session.get(ConsultationRequest, second).escalated_at is not None
        assert db.session.get(ConsultationRequest, emergency["id"]).escalated_at is None
    monkeypatch.setattr(patient_emails, "escalation", real_escalation)
    with app.app_context():
        assert len(escalate_overdue(now=later)) == 1  # the first, on the next run
    assert len(_escalations(app)) == 2


def test_the_queue_row_and_the_timeline_say_the_request_was_escalated(
    app: Flask, client: FlaskClient, emergency: dict[str, Any]
) -> None:
    """Escalating writes the on-call email to the outbox; the worker sends it later, or
    fails to (the timeline's email entry and the failed-alerts banner say which): the row
    and the timeline say what is true at once, not that the on-call address was emailed."""
    _received(app, emergency["id"], timedelta(minutes=45))
    AuthActions(client).login("coordinator")
    row = _queue_row(client, emergency["reference"])
    assert "Overdue" in row and "Escalated to on-call" not in row
    with app.app_context():
        assert len(escalate_overdue()) == 1
    row = _queue_row(client, emergency["reference"])
    assert "Overdue" in row and "Escalated to on-call" in row and "emailed" not in row
    record = client.get(f"/staff/requests/{emergency['reference']}").get_data(as_text=True)
    assert (
        "patient not reached within its target; an email to the on-call address was written "
        "to the outbox."
    ) in record


def test_an_emergency_found_late_by_a_worker_that_was_down_escalates(
    app: Flask, emergency: dict[str, Any]
) -> None:
    with app.app_context():
        assert len(escalate_overdue(now=emergency["created_at"] + timedelta(hours=6))) == 1
    assert len(_escalations(app)) == 1


def test_no_escalation_once_the_patient_was_reached(app: Flask, emergency: dict[str, Any]) -> None:
    with app.app_context():
        _log_call(emergency["id"], CallOutcome.REACHED)
        assert escalate_overdue(now=emergency["created_at"] + timedelta(hours=1)) == []
    assert _escalations(app) == []


def test_calls_that_did_not_reach_the_patient_still_escalate(
    app: Flask, emergency: dict[str, Any]
) -> None:
    """A wrong number or no answer: the patient, told to seek emergency care, has still not
    heard from the clinic, and the on-call address must know."""
    with app.app_context():
        _log_call(emergency["id"], CallOutcome.WRONG_NUMBER)
        _log_call(emergency["id"], CallOutcome.NO_ANSWER)
        assert len(escalate_overdue(now=emergency["created_at"] + timedelta(hours=1))) == 1
    [email] = _escalations(app)
    assert "patient not reached" in email.subject
    assert "no call is logged, or none reached them" in email.body_text


def _urgent(app: Flask, received: datetime) -> dict[str, Any]:
    """An urgent request (fever with the pain) that arrived at ``received``."""
    with app.app_context():
        consultation = make_request(red_flags={"fever"}, full_name="Uma Notinmail")
        assert consultation.triage_level == TriageLevel.URGENT
        consultation.created_at = received
        db.session.commit()
        return {"id": consultation.id, "reference": consultation.reference}


def test_an_urgent_request_escalates_once_after_four_working_hours(
    app: Flask, staff: Staff
) -> None:
    received = berlin(2026, 11, 16, 9)  # a Monday morning
    urgent = _urgent(app, received)
    with app.app_context():
        assert escalate_overdue(now=received + timedelta(hours=3, minutes=59)) == []
        assert len(escalate_overdue(now=received + timedelta(hours=4, minutes=1))) == 1
        assert escalate_overdue(now=received + timedelta(days=2)) == []
    email, audit = _escalated_once(
        app,
        urgent,
        received + timedelta(hours=4, minutes=1),
        ("Uma", "Notinmail", "901820", "fever", "Fever"),
    )
    assert "urgent request" in email.subject
    assert "4 h 00 min of working time" in email.subject
    assert "after 4 h 01 min of the clinic's working time" in email.body_text
    assert audit["level"] == "urgent"
    assert audit["working_time"] is True
    assert audit["target_minutes"] == 240


def test_an_urgent_request_sent_on_friday_evening_escalates_on_monday(
    app: Flask, staff: Staff
) -> None:
    received = berlin(2026, 11, 20, 17)  # Friday, an hour before closing
    _urgent(app, received)
    with app.app_context():
        # 62 hours of clock time over the weekend, one hour of working time: not overdue.
        assert escalate_overdue(now=berlin(2026, 11, 23, 7)) == []
        assert escalate_overdue(now=berlin(2026, 11, 23, 10, 59)) == []  # 3 h 59 min
        assert len(escalate_overdue(now=berlin(2026, 11, 23, 11, 1))) == 1
    assert len(_escalations(app)) == 1


def test_an_urgent_request_long_overdue_is_left_to_the_queue(app: Flask, staff: Staff) -> None:
    """Up to a week after it fell due an urgent request still escalates (a worker that was
    down catches up); one overdue for longer, as when urgent requests first escalated, does
    not flood the on-call address."""
    due = berlin(2026, 11, 16, 13)  # received Monday 09:00, four working hours
    _urgent(app, berlin(2026, 11, 16, 9))
    with app.app_context():
        assert escalate_overdue(now=due + URGENT_CATCH_UP + timedelta(minutes=1)) == []
        assert len(escalate_overdue(now=due + URGENT_CATCH_UP)) == 1


def _withdrawn(app: Flask, received: datetime, withdrawn: list[str]) -> dict[str, Any]:
    """A request whose patient answered ``withdrawn`` yes, then no, before sending (urgent
    for it alone), that arrived at ``received``."""
    with app.app_context():
        consultation = make_request(full_name="Uma Notinmail")
        consultation.withdrawn_red_flags = withdrawn
        consultation.triage_level = TriageLevel.URGENT
        consultation.created_at = received
        db.session.commit()
        return {"id": consultation.id, "reference": consultation.reference}


def test_an_emergency_answer_changed_to_no_escalates_on_the_emergency_target(
    app: Flask, staff: Staff
) -> None:
    """Lost bladder control, then "no": the patient read "go to emergency now" and may have
    changed the answer to get an appointment. Held to the urgent target (working time), the
    request sent on Friday evening escalated on Monday at noon; it is held to the emergency's
    (30 minutes of clock time), and the email says why."""
    received = berlin(2026, 11, 20, 19)  # Friday, after closing
    request = _withdrawn(app, received, ["bladder_bowel"])
    with app.app_context():
        assert escalate_overdue(now=received + timedelta(minutes=29)) == []
        assert len(escalate_overdue(now=received + timedelta(minutes=31))) == 1
        assert escalate_overdue(now=berlin(2026, 11, 23, 12, 1)) == []
    email, audit = _escalated_once(
        app, request, received + timedelta(minutes=31), ("Uma", "Notinmail", "901820")
    )
    assert (
        f"urgent request {request['reference']}, an emergency-symptom answer was changed to "
        "no, patient not reached after 31 minutes"
    ) in email.subject
    for body in (email.body_text, email.body_html):
        assert "has not been reached" in body and "emergency-symptom answer" in body
        assert "31 minutes after the request arrived" in body
        assert "target is 30 minutes" in body and "working time" not in body
    assert audit["level"] == "urgent"
    assert audit["working_time"] is False
    assert audit["target_minutes"] == 30


def test_an_urgent_answer_changed_to_no_keeps_the_urgent_target(app: Flask, staff: Staff) -> None:
    """Fever, then "no": a call-back today, in the clinic's working time, as before."""
    _withdrawn(app, berlin(2026, 11, 20, 19), ["fever"])
    with app.app_context():
        assert escalate_overdue(now=berlin(2026, 11, 21, 12)) == []  # Saturday noon
        assert escalate_overdue(now=berlin(2026, 11, 23, 11, 59)) == []  # Monday
        assert len(escalate_overdue(now=berlin(2026, 11, 23, 12, 1))) == 1
    [email] = _escalations(app)
    assert "4 h 00 min of working time" in email.subject
    assert "emergency" not in email.subject + email.body_text


def test_an_emergency_answer_changed_to_no_long_overdue_is_left_to_the_queue(
    app: Flask, staff: Staff
) -> None:
    """Held to the emergency's target, the request keeps the urgent catch-up (from its new
    due moment): the unreached ones of long ago are not all emailed tonight."""
    received = berlin(2026, 11, 16, 9)
    due = received + timedelta(minutes=30)
    _withdrawn(app, received, ["saddle_numbness"])
    with app.app_context():
        assert escalate_overdue(now=due + URGENT_CATCH_UP + timedelta(minutes=1)) == []
        assert len(escalate_overdue(now=due + URGENT_CATCH_UP)) == 1


def test_the_queue_shows_an_emergency_answer_changed_to_no_against_the_emergency_target(
    app: Flask, client: FlaskClient, staff: Staff
) -> None:
    AuthActions(client).login("coordinator")
    emergency = _withdrawn(
        app, datetime.now(UTC) - timedelta(minutes=42, seconds=10), ["both_legs"]
    )
    urgent = _withdrawn(app, datetime.now(UTC) - timedelta(minutes=42, seconds=10), ["fever"])
    row = _queue_row(client, emergency["reference"])
    assert "Overdue" in row and "waiting 42 min, target 30 min" in row
    assert "target 4 h 00 min" in _queue_row(client, urgent["reference"])


def test_an_acknowledged_urgent_or_a_routine_request_does_not_escalate(
    app: Flask, staff: Staff
) -> None:
    received = berlin(2026, 11, 16, 9)
    urgent = _urgent(app, received)
    with app.app_context():
        routine = make_request()
        routine.created_at = received
        db.session.commit()
        _log_call(urgent["id"], CallOutcome.REACHED, called_at=received + timedelta(hours=1))
        assert escalate_overdue(now=received + timedelta(days=7)) == []
    assert _escalations(app) == []


def _coordinator() -> StaffUser:
    return db.session.scalars(
        sa.select(StaffUser).where(StaffUser.email == "coord@example.com")
    ).one()


def test_an_unreached_urgent_request_the_patient_cancelled_still_escalates(
    app: Flask, staff: Staff
) -> None:
    """The patient cancelled through their private link before anyone called: they may have
    found help elsewhere or may still need the call, and the on-call address is told."""
    from booking.manage.services import cancel

    received = berlin(2026, 11, 16, 9)
    urgent = _urgent(app, received)
    with app.app_context():
        cancel(db.session.get(ConsultationRequest, urgent["id"]), None)
        assert escalate_overdue(now=received + timedelta(hours=3, minutes=59)) == []
        assert len(escalate_overdue(now=received + timedelta(hours=4, minutes=1))) == 1
        assert escalate_overdue(now=received + timedelta(days=2)) == []
        [email] = db.session.scalars(
            sa.select(OutboxEmail).where(OutboxEmail.template == "escalation_staff_cancelled")
        ).all()
        assert email.recipient == ON_CALL
        assert f"urgent request {urgent['reference']} cancelled by the patient" in email.subject
        assert "The patient cancelled this request" in email.body_text
        assert f"/staff/requests/{urgent['reference']}" in email.body_text
        for detail in ("Uma", "Notinmail", "901820", "fever", "Fever"):
            assert detail not in email.body_text + email.body_html + email.subject
        consultation = db.session.get(ConsultationRequest, urgent["id"])
        assert consultation.status == RequestStatus.CANCELLED
        assert EventKind.ESCALATION in [e.kind for e in consultation.events]
        audit = db.session.scalars(
            sa.select(AuditEvent).where(AuditEvent.action == "request_escalated")
        ).one()
        assert audit.details["cancelled_by_patient"] is True


def test_a_cancellation_staff_confirmed_or_after_a_call_does_not_escalate(
    app: Flask, staff: Staff
) -> None:
    from booking.dashboard.services import cancel_request
    from booking.manage.services import cancel

    received = berlin(2026, 11, 16, 9)
    by_staff, reached = _urgent(app, received), _urgent(app, received)
    with app.app_context():
        cancel_request(
            db.session.get(ConsultationRequest, by_staff["id"]),
            _coordinator(),
            close_unreached=True,
        )
        _log_call(reached["id"], CallOutcome.REACHED, called_at=received + timedelta(hours=1))
        cancel(db.session.get(ConsultationRequest, reached["id"]), "Feeling better")
        assert escalate_overdue(now=received + timedelta(days=2)) == []
    assert _escalations(app) == []


def test_two_workers_at_once_send_one_escalation(app: Flask, emergency: dict[str, Any]) -> None:
    at = emergency["created_at"] + timedelta(minutes=40)
    barrier = threading.Barrier(2)
    results: list[list[int]] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            with app.app_context():
                barrier.wait()
                results.append(escalate_overdue(now=at))
                db.session.remove()
        except BaseException as exc:  # collected and re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors, errors
    assert sorted(len(r) for r in results) == [0, 1]
    assert len(_escalations(app)) == 1
    with app.app_context():
        escalations = db.session.scalars(
            sa.select(RequestEvent).where(RequestEvent.kind == EventKind.ESCALATION)
        ).all()
        assert len(escalations) == 1


def test_a_cancelled_emergency_of_long_ago_is_not_escalated(app: Flask, staff: Staff) -> None:
    """Open emergencies escalate however late; cancelled ones only within the catch-up, as
    urgent ones: a request cancelled months ago (before this rule existed, or a worker down
    for weeks) is not an alarm for tonight's on-call clinician."""
    from booking.manage.services import cancel

    received = berlin(2026, 11, 16, 9)
    with app.app_context():
        consultation = make_request(red_flags={"bladder_bowel"}, full_name="Uma Notinmail")
        assert consultation.triage_level == TriageLevel.EMERGENCY
        consultation.created_at = received
        db.session.commit()
        cancel(db.session.get(ConsultationRequest, consultation.id), None)
        assert escalate_overdue(now=received + URGENT_CATCH_UP + timedelta(hours=1)) == []
        assert len(escalate_overdue(now=received + timedelta(hours=1))) == 1


def _callback_alerts(app: Flask) -> list[str]:
    """The recipients of the clinic's alert of a new emergency call-back request."""
    with app.app_context():
        request_id = _emergency().id
        return list(
            db.session.scalars(
                sa.select(OutboxEmail.recipient).where(
                    OutboxEmail.request_id == request_id, OutboxEmail.template == "callback_staff"
                )
            )
        )


def test_out_of_hours_an_emergency_call_back_reaches_the_on_call_address_at_once(
    app: Flask, staff: Staff
) -> None:
    """Out of the clinic's working time nobody may read its inbox before the morning: the
    call-back alert went there only, and the on-call clinician heard of it when the
    escalation's target (30 minutes) had passed. A copy now goes to the on-call address at
    once; in working time the clinic's inbox alone, as before."""
    from booking.timeutil import clinic_today

    with app.app_context():
        today = clinic_today().weekday()
    app.config.update(CLINIC_WORKING_DAYS=[(today + 1) % 7], CLINIC_WORKING_HOURS="08:00-18:00")
    assert sorted(_callback_alerts(app)) == sorted(
        [app.config["STAFF_NOTIFICATION_EMAIL"], ON_CALL]
    )
    # Open all day: to 24:00, or a request sent in the minute before midnight is out of
    # hours (the test failed at 23:59 clinic time).
    app.config.update(CLINIC_WORKING_DAYS=list(range(7)), CLINIC_WORKING_HOURS="00:00-24:00")
    assert _callback_alerts(app) == [app.config["STAFF_NOTIFICATION_EMAIL"]]


def test_on_a_day_an_admin_closed_the_clinic_a_call_back_alert_reaches_the_on_call_address(
    app: Flask, staff: Staff
) -> None:
    """A day closed in the app is out of the clinic's working time, as a public holiday is:
    nobody reads the clinic's inbox on it, so the on-call clinician gets the copy at once
    (and an urgent request's working time does not run on it). Reopened, it is open again."""
    from booking.scheduling.closures import close_clinic, reopen_clinic
    from booking.scheduling.models import ClinicClosure

    app.config.update(CLINIC_WORKING_DAYS=list(range(7)), CLINIC_WORKING_HOURS="00:00-24:00")
    with app.app_context():
        admin = db.session.get(StaffUser, staff.admin.id)
        close_clinic(clinic_today(), "Burst pipe", admin)
    assert sorted(_callback_alerts(app)) == sorted(
        [app.config["STAFF_NOTIFICATION_EMAIL"], ON_CALL]
    )
    with app.app_context():
        closure = db.session.scalars(sa.select(ClinicClosure)).one()
        reopen_clinic(closure, db.session.get(StaffUser, staff.admin.id))
    assert _callback_alerts(app) == [app.config["STAFF_NOTIFICATION_EMAIL"]]


def _new_request_alerts(app: Flask, client: FlaskClient, withdrawn: str) -> list[str]:
    """The recipients of the clinic's alert of a new request sent with ``withdrawn`` answered
    yes, then no."""
    assert answer_red_flags(client, yes=[withdrawn]).status_code in (302, 303)
    assert post_request(client, valid_answers()).status_code == 303
    with app.app_context():
        consultation = db.session.scalars(
            sa.select(ConsultationRequest).order_by(ConsultationRequest.id.desc()).limit(1)
        ).one()
        assert consultation.withdrawn_red_flags == [withdrawn]
        return list(
            db.session.scalars(
                sa.select(OutboxEmail.recipient).where(
                    OutboxEmail.request_id == consultation.id,
                    OutboxEmail.template == "new_request_staff",
                )
            )
        )


def test_out_of_hours_an_emergency_answer_changed_to_no_reaches_the_on_call_address_at_once(
    app: Flask, client: FlaskClient, staff: Staff
) -> None:
    """Its call-back is due in 30 minutes at any hour: out of the clinic's working time the
    new request's alert goes to the on-call address at once too, as an emergency call-back's
    does; in working time the clinic's inbox alone. A changed urgent answer's alert goes to
    the clinic's inbox alone at any hour, as before."""
    with app.app_context():
        today = clinic_today().weekday()
    clinic = app.config["STAFF_NOTIFICATION_EMAIL"]
    app.config.update(CLINIC_WORKING_DAYS=[(today + 1) % 7], CLINIC_WORKING_HOURS="08:00-18:00")
    assert sorted(_new_request_alerts(app, client, "bladder_bowel")) == sorted([clinic, ON_CALL])
    assert _new_request_alerts(app, client, "fever") == [clinic]
    app.config.update(CLINIC_WORKING_DAYS=list(range(7)), CLINIC_WORKING_HOURS="00:00-24:00")
    assert _new_request_alerts(app, client, "bladder_bowel") == [clinic]


def test_a_failed_alert_of_a_cancelled_unreached_request_is_shown_on_the_queue(
    app: Flask, client: FlaskClient, staff: Staff
) -> None:
    """The on-call alert of an urgent request its patient cancelled unreached failed for
    good (the mail server refused it): the request has left the open lists, so the queue's
    banner of failed alerts is where staff learn that the patient still needs the call."""
    from booking.manage.services import cancel
    from booking.notifications.models import OutboxStatus

    received = berlin(2026, 11, 16, 9)
    urgent = _urgent(app, received)
    with app.app_context():
        cancel(db.session.get(ConsultationRequest, urgent["id"]), None)
        # The patient's-action notice went; the escalation, hours later, did not.
        db.session.execute(sa.update(OutboxEmail).values(status=OutboxStatus.SENT))
        db.session.commit()
        assert len(escalate_overdue(now=received + timedelta(hours=5))) == 1
        db.session.execute(
            sa.update(OutboxEmail)
            .where(OutboxEmail.template == "escalation_staff_cancelled")
            .values(status=OutboxStatus.FAILED)
        )
        db.session.commit()
    AuthActions(client).attempt(staff.coordinator.email)
    page = client.get("/staff/").get_data(as_text=True)
    banner = page.split('id="failed-alerts-heading"')[1].split("</section>")[0]
    assert urgent["reference"] in banner


def test_a_call_in_the_hour_the_clocks_repeat_is_read_as_the_second_one(
    app: Flask, client: FlaskClient, emergency: dict[str, Any]
) -> None:
    """New York, 1 November 2026: 01:00-02:00 happens twice. The request arrived at 01:10
    the second time round (06:10 UTC); the coordinator called at 01:30, also the second
    time. Read as the first 01:30 (05:30 UTC) the call was refused as before the request,
    leaving the real time unloggable, or an earlier one stored an hour early."""
    from booking.timeutil import clinic_instants

    app.config["CLINIC_TIMEZONE"] = "America/New_York"
    arrived = datetime(2026, 11, 1, 6, 10, tzinfo=UTC)
    with app.app_context():
        assert clinic_instants(date(2026, 11, 1), time(1, 30)) == (
            datetime(2026, 11, 1, 5, 30, tzinfo=UTC),
            datetime(2026, 11, 1, 6, 30, tzinfo=UTC),
        )
        assert clinic_instants(date(2026, 3, 8), time(2, 30)) == ()  # the skipped hour
        assert len(clinic_instants(date(2026, 11, 2), time(1, 30))) == 1
        sa_update = sa.update(ConsultationRequest).where(ConsultationRequest.id == emergency["id"])
        db.session.execute(sa_update.values(created_at=arrived))
        db.session.commit()
    AuthActions(client).login("coordinator")
    reference = emergency["reference"]
    response = client.post(
        f"/staff/requests/{reference}/calls",
        data={
            "call-csrf_token": csrf_token(client, f"/staff/requests/{reference}"),
            "call-outcome": "reached",
            "call-day": "2026-11-01",
            "call-at": "01:30",
        },
    )
    assert response.status_code == 302
    with app.app_context():
        consultation = db.session.get(ConsultationRequest, emergency["id"])
        assert consultation.acknowledged_at == datetime(2026, 11, 1, 6, 30, tzinfo=UTC)
