"""A video visit's link to join it: staff give it from the request's record, and the patient
finds it in an email at once, in the calendar file, on their private page and in every
reminder; nothing else can be given one, and no other address can pass for one."""

from __future__ import annotations

import io
import json
import re
import zipfile
from datetime import timedelta

from flask import Flask
from flask.testing import FlaskClient
from icalendar import Calendar
from sqlalchemy import select, update
from werkzeug.test import TestResponse

from booking.audit.models import AuditEvent
from booking.dashboard import services as workflow
from booking.extensions import db
from booking.requests.events import EventKind, RequestEvent
from booking.requests.models import ConsultationRequest
from booking.requests.reminders import send_due_reminders
from booking.scheduling.availability import open_slots
from booking.scheduling.models import Appointment, VisitMode
from booking.staff.models import StaffUser
from booking.timeutil import now_utc, to_clinic_tz
from tests.factories import confirmed_request, make_appointment_type, set_visit_mode, staff_slot
from tests.support import (
    AuthActions,
    Clinic,
    calendar_location,
    deliver_waiting_emails,
    export_queue,
    open_manage_link,
    outbox_emails,
    page_token,
)

LINK = "https://meet.example.org/spine-4821?pwd=Xy7"
JOINABLE = "By video, from wherever suits you, with the link the clinic sent you."


def reference_of(app: Flask, request_id: int) -> str:
    with app.app_context():
        return db.session.get(ConsultationRequest, request_id).reference


def send_link(client: FlaskClient, reference: str, link: str) -> TestResponse:
    """The record's link form, filled in and sent as a coordinator's browser does."""
    page = client.get(f"/staff/requests/{reference}").get_data(as_text=True)
    seen = re.search(r'name="join-seen" type="hidden" value="([^"]*)"', page)
    assert seen, "no link form on the record"
    return client.post(
        f"/staff/requests/{reference}/join-link",
        data={"join-csrf_token": page_token(page), "join-seen": seen.group(1), "join-link": link},
    )


def stored_link(app: Flask, request_id: int) -> str | None:
    with app.app_context():
        return db.session.get(ConsultationRequest, request_id).appointment.join_link


def test_the_patient_gets_a_video_visits_link_at_once_and_finds_it_everywhere(
    app: Flask, client: FlaskClient, auth: AuthActions, clinic: Clinic
) -> None:
    set_visit_mode(app, clinic, VisitMode.VIDEO)
    request_id = confirmed_request(app, clinic)
    reference = reference_of(app, request_id)
    coordinator = auth.new_client("coordinator")
    record = coordinator.get(f"/staff/requests/{reference}").get_data(as_text=True)
    assert "The patient has no link to join yet" in record
    assert "· By video</p>" in record  # how the visit takes place, not the location
    summary = coordinator.get(f"/staff/requests/{reference}/summary").get_data(as_text=True)
    assert "· By video</dd>" in summary
    export = export_queue(coordinator, "status=all").get_data(as_text=True)
    [row] = [line for line in export.splitlines() if reference in line]
    assert row.endswith(",By video") and "Main clinic" not in row
    assert "Send the link to the patient" in record

    deliver_waiting_emails(app)  # the confirmation went out before there was a link
    sent = send_link(coordinator, reference, LINK)
    assert sent.status_code == 302
    assert "an email with the link is on its way to the patient" in coordinator.get(
        sent.location
    ).get_data(as_text=True)

    confirmed, joining = outbox_emails(app, "request_update")
    assert JOINABLE not in confirmed.body_text  # sent before there was a link
    assert joining.subject == f"How to join your video appointment ({reference})"
    assert f"Where: {JOINABLE}\nJoin the video visit: {LINK}\n" in joining.body_text
    assert "/manage/open/" in joining.body_text  # the private link, as a confirmation has
    assert f'<a href="{LINK}">Join the video visit</a>' in joining.body_html
    # The calendar event the patient holds is updated: its place is the link.
    (event,) = Calendar.from_ical(joining.attachment_body).walk("VEVENT")
    assert calendar_location(joining.attachment_body) == LINK
    assert str(event["URL"]) == LINK and int(event["SEQUENCE"]) == 1

    with app.app_context():
        (audit,) = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "join_link_set")
        ).all()
        # The audit trail outlives the appointment: never the link, which may hold a passcode.
        assert audit.details == {"replaced": False, "sequence": 1, "emailed": True}
        assert LINK not in str(audit.details)
        notes = db.session.scalars(
            select(RequestEvent.body).where(RequestEvent.kind == EventKind.NOTE)
        ).all()
        # True when written: the email is only in the outbox (its badge says what became of it).
        assert notes == [
            "Saved a link to join the video visit. An email giving the patient the link was "
            "written to the outbox."
        ]
        consultation = db.session.get(ConsultationRequest, request_id)
        manage_path = open_manage_link(client, consultation)
        starts_at = consultation.appointment.starts_at

    with app.app_context():
        day = to_clinic_tz(starts_at).date().isoformat()
    agenda = coordinator.get(f"/staff/calendar?date={day}").get_data(as_text=True)
    assert '<span class="small">By video</span>' in agenda

    manage = client.get(manage_path).get_data(as_text=True)
    assert f'<a class="btn btn-primary" href="{LINK}" rel="noreferrer noopener">' in manage
    assert JOINABLE in manage

    with app.app_context():
        assert len(send_due_reminders(now=starts_at - timedelta(hours=47))) == 1
    (reminder,) = outbox_emails(app, "appointment_reminder")
    assert f"Join the video visit: {LINK}\n" in reminder.body_text
    # The patient may be elsewhere: the subject names the clinic's time zone, as the body.
    assert reminder.subject.endswith(", Germany (Berlin) Time (" + reference + ")")
    assert f'<a href="{LINK}">' in reminder.body_html

    # The same link again is refused; a new one replaces it, and the patient is told.
    again = send_link(coordinator, reference, LINK)
    assert again.status_code == 409
    assert "The patient already has that link." in again.get_data(as_text=True)
    deliver_waiting_emails(app)
    assert send_link(coordinator, reference, LINK + "b").status_code == 302
    assert stored_link(app, request_id) == LINK + "b"
    assert len(outbox_emails(app, "request_update")) == 3
    with app.app_context():
        notes = db.session.scalars(
            select(RequestEvent.body)
            .where(RequestEvent.kind == EventKind.NOTE)
            .order_by(RequestEvent.id)
        ).all()
    assert notes[-1] == (
        "Saved a new link to join the video visit; the earlier one is no longer shown. An "
        "email giving the patient the new link was written to the outbox."
    )

    # Once the visit is over the page no longer offers it (a room may be used for others).
    with app.app_context():
        past = now_utc() - timedelta(hours=2)
        db.session.execute(
            update(Appointment)
            .where(Appointment.request_id == request_id)
            .values(
                starts_at=past,
                ends_at=past + timedelta(minutes=45),
                blocked_until=past + timedelta(minutes=55),
            )
        )
        db.session.commit()
    assert "Join the video visit" not in client.get(manage_path).get_data(as_text=True)


def test_only_a_whole_https_address_is_taken(app: Flask, auth: AuthActions, clinic: Clinic) -> None:
    set_visit_mode(app, clinic, VisitMode.VIDEO)
    request_id = confirmed_request(app, clinic)
    reference = reference_of(app, request_id)
    coordinator = auth.new_client("coordinator")
    for bad in (
        "http://meet.example.org/spine",  # not encrypted
        "javascript:alert(1)",
        "meet.example.org/spine",  # no scheme: the email would not open it
        "https://user:secret@meet.example.org/spine",
        "https://meet example.org/spine",
        "https://[meet.example.org/spine",
        "https://localhost/spine",
        "https://meet.example.org/" + "x" * 500,
        # Short as typed, too long as sent (and stored): each "ü" is "%C3%BC".
        "https://meet.example.org/" + "ü" * 100,
    ):
        refused = send_link(coordinator, reference, bad)
        assert refused.status_code == 422, bad
        page = refused.get_data(as_text=True)
        assert "<title>Error: " in page
        assert (
            "Please enter the whole link, starting with https://." in page
            or "Please enter a link of at most 500 characters." in page
        ), bad
    assert stored_link(app, request_id) is None
    assert len(outbox_emails(app, "request_update")) == 1  # the confirmation only
    # A link with letters beyond ASCII is kept as email clients and calendars take it.
    assert send_link(coordinator, reference, "https://münchen.example/räume/7").status_code == 302
    assert stored_link(app, request_id) == "https://xn--mnchen-3ya.example/r%C3%A4ume/7"


def test_a_visit_in_person_has_no_link_to_join(
    app: Flask, auth: AuthActions, clinic: Clinic
) -> None:
    request_id = confirmed_request(app, clinic)
    reference = reference_of(app, request_id)
    coordinator = auth.new_client("coordinator")
    record = coordinator.get(f"/staff/requests/{reference}").get_data(as_text=True)
    assert "Link to join the video visit" not in record
    refused = coordinator.post(
        f"/staff/requests/{reference}/join-link",
        data={"join-csrf_token": page_token(record), "join-link": LINK},
    )
    assert refused.status_code == 409
    assert "Only a confirmed video visit still to come can be given a link to join it." in (
        refused.get_data(as_text=True)
    )
    assert stored_link(app, request_id) is None
    assert len(outbox_emails(app, "request_update")) == 1


def test_a_link_does_not_follow_the_visit_to_a_type_not_by_video(
    app: Flask, clinic: Clinic
) -> None:
    """Rescheduled as an in-person visit, the patient is sent to the address, and the old
    video link is gone for good (it would come back if the visit became a video one again)."""
    set_visit_mode(app, clinic, VisitMode.VIDEO)
    request_id = confirmed_request(app, clinic)
    with app.app_context():
        consultation = db.session.get(ConsultationRequest, request_id)
        coordinator = db.session.get(StaffUser, clinic.coordinator.id)
        workflow.set_join_link(consultation, coordinator, LINK)
        in_person = make_appointment_type("Spine review in person", minutes=30)
        appointment: Appointment = db.session.get(ConsultationRequest, request_id).appointment
        # The first in-person time after the visit (not "an hour later": at the end of a
        # day that is after hours, and the test would fail by the clock).
        later = open_slots(in_person, appointment.ends_at, appointment.ends_at + timedelta(days=7))
        workflow.reschedule_request(
            db.session.get(ConsultationRequest, request_id),
            coordinator,
            staff_slot(in_person, later[0].starts_at, later[0].specialist_id, later[0].location_id),
        )
    assert stored_link(app, request_id) is None
    moved = outbox_emails(app, "request_update")[-1]
    assert "Your appointment has changed." in moved.body_text
    assert LINK not in moved.body_text and "Friedrichstr. 1" in moved.body_text


def test_the_patients_copy_of_their_data_opens_no_video_visit(
    app: Flask, auth: AuthActions, clinic: Clinic
) -> None:
    """The archive travels (a download, an email attachment): like the private links in its
    emails, the link that joins the visit is left out of it, wherever it was."""
    set_visit_mode(app, clinic, VisitMode.VIDEO)
    request_id = confirmed_request(app, clinic)
    reference = reference_of(app, request_id)
    # A first link, replaced: its email (sent) still holds it, and it may open a room yet.
    for link in ("https://rooms.example.net/dr-weber?pwd=OLD", LINK):
        with app.app_context():
            workflow.set_join_link(
                db.session.get(ConsultationRequest, request_id),
                db.session.get(StaffUser, clinic.coordinator.id),
                link,
            )
        deliver_waiting_emails(app)
    admin = auth.new_client("admin")
    page = admin.get(f"/staff/admin/privacy/{reference}").get_data(as_text=True)
    response = admin.post(
        f"/staff/admin/privacy/{reference}/export", data={"csrf_token": page_token(page)}
    )
    assert response.status_code == 200
    archive = zipfile.ZipFile(io.BytesIO(response.get_data()))
    everything = "".join(archive.read(name).decode() for name in archive.namelist())
    assert "meet.example.org" not in everything and "rooms.example.net" not in everything
    assert "/manage/open/[redacted]" in everything  # the clinic's own links keep their page
    [exported] = json.loads(archive.read("patient.json"))["requests"]
    assert "join_link" not in exported["appointment"]
    joining = next(e for e in exported["emails"] if "How to join" in e["subject"])
    assert "Join the video visit: [redacted]" in joining["body_text"]


def test_a_video_visit_moved_by_the_patient_loses_its_link_and_the_clinic_is_told(
    app: Flask, clinic: Clinic
) -> None:
    """A video service's link is made for one meeting (or one specialist's room): after the
    patient moves the visit, their email says the clinic will send how to join, and the
    clinic's notice asks for a link for the new time."""
    from booking.manage import services as manage
    from booking.scheduling.availability import open_slots
    from booking.scheduling.services import SlotChoice

    set_visit_mode(app, clinic, VisitMode.VIDEO)
    request_id = confirmed_request(app, clinic)
    with app.app_context():
        consultation = db.session.get(ConsultationRequest, request_id)
        workflow.set_join_link(consultation, db.session.get(StaffUser, clinic.coordinator.id), LINK)
        appointment = db.session.get(ConsultationRequest, request_id).appointment
        later = next(
            slot
            for slot in open_slots(
                appointment.appointment_type,
                appointment.starts_at + timedelta(days=1),
                appointment.starts_at + timedelta(days=8),
            )
        )
        manage.reschedule(
            db.session.get(ConsultationRequest, request_id),
            SlotChoice(
                appointment.appointment_type_id,
                later.specialist_id,
                later.location_id,
                later.starts_at,
            ),
        )
    assert stored_link(app, request_id) is None
    moved = outbox_emails(app, "request_update")[-1]
    assert "Your appointment has changed." in moved.body_text
    assert LINK not in moved.body_text and LINK not in (moved.attachment_body or "")
    assert "the clinic will send you how to join" in moved.body_text
    (notice,) = outbox_emails(app, "patient_action_staff")
    assert "its link was for the old time, so please send one for the new time" in (
        notice.body_text
    )


def test_a_link_saved_for_a_patient_without_an_email_address_says_so_on_the_timeline(
    app: Flask, clinic: Clinic
) -> None:
    set_visit_mode(app, clinic, VisitMode.VIDEO)
    request_id = confirmed_request(app, clinic)
    deliver_waiting_emails(app)
    with app.app_context():
        consultation = db.session.get(ConsultationRequest, request_id)
        consultation.patient.email = None
        db.session.commit()
        workflow.set_join_link(consultation, db.session.get(StaffUser, clinic.coordinator.id), LINK)
        notes = db.session.scalars(
            select(RequestEvent.body).where(RequestEvent.kind == EventKind.NOTE)
        ).all()
    assert notes == [
        "Saved a link to join the video visit; no email went: tell the patient by phone."
    ]
    assert len(outbox_emails(app, "request_update")) == 1  # the confirmation only


def test_failed_emails_sent_again_hand_over_only_the_current_link(
    app: Flask, clinic: Clinic
) -> None:
    """The patient's address bounced the confirmation and both link emails; corrected, the
    confirmation (which says a link will come) and the replaced link's email are out of date:
    the newest link's email goes again, with a new private link."""
    from booking.notifications.models import OutboxEmail, OutboxStatus

    set_visit_mode(app, clinic, VisitMode.VIDEO)
    request_id = confirmed_request(app, clinic)
    with app.app_context():
        coordinator = db.session.get(StaffUser, clinic.coordinator.id)

        def bounced() -> None:
            """Each email failed for good before the next was written (a waiting one would
            be withdrawn by it)."""
            db.session.execute(update(OutboxEmail).values(status=OutboxStatus.FAILED))
            db.session.commit()

        bounced()
        for link in (LINK, LINK + "b"):
            workflow.set_join_link(
                db.session.get(ConsultationRequest, request_id), coordinator, link
            )
            bounced()
        ids = workflow.resend_patient_emails(
            db.session.get(ConsultationRequest, request_id), coordinator, "fixed@example.com"
        ).email_ids
        copies = [db.session.get(OutboxEmail, i) for i in ids]
        texts = sorted((c.template, c.body_text) for c in copies)
        # The failed email resent, retired, keeps no link that opens anything (a sent one's
        # rule): neither the video visit's nor its private link's token.
        retired = db.session.scalars(
            select(OutboxEmail)
            .where(OutboxEmail.template == "request_update", OutboxEmail.id.not_in(ids))
            .order_by(OutboxEmail.id.desc())
            .limit(1)
        ).one()
        kept = retired.body_text + retired.body_html + (retired.attachment_body or "")
        assert "meet.example.org" not in kept and "/manage/open/[redacted]" in kept
    assert [template for template, _text in texts] == ["manage_link", "request_update"]
    joining = texts[1][1]
    assert f"Join the video visit: {LINK}b\n" in joining
    assert f"{LINK}\n" not in joining


def test_a_reminder_still_waiting_is_written_again_with_the_link(
    app: Flask, auth: AuthActions, clinic: Clinic
) -> None:
    """The reminder was written (not yet sent) before staff gave the visit its link, then
    before they replaced it: it would have arrived saying the clinic will send the link, then
    with the old room. Each time it is written again with the link as it is now, and stays
    one reminder (the job does not send another)."""
    set_visit_mode(app, clinic, VisitMode.VIDEO)
    request_id = confirmed_request(app, clinic)
    reference = reference_of(app, request_id)
    coordinator = auth.new_client("coordinator")
    deliver_waiting_emails(app)
    with app.app_context():
        starts_at = db.session.get(ConsultationRequest, request_id).appointment.starts_at
        assert len(send_due_reminders(now=starts_at - timedelta(hours=47))) == 1
    (waiting,) = outbox_emails(app, "appointment_reminder")
    assert "Join the video visit" not in waiting.body_text

    assert send_link(coordinator, reference, LINK).status_code == 302
    (rewritten,) = outbox_emails(app, "appointment_reminder")
    assert rewritten.message_id != waiting.message_id  # a new email, not the one waiting
    assert f"Join the video visit: {LINK}\n" in rewritten.body_text

    assert send_link(coordinator, reference, LINK + "b").status_code == 302
    (again,) = outbox_emails(app, "appointment_reminder")
    assert f"Join the video visit: {LINK}b\n" in again.body_text
    with app.app_context():
        assert send_due_reminders(now=starts_at - timedelta(hours=46)) == []
    assert len(outbox_emails(app, "appointment_reminder")) == 1
