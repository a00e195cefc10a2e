"""The audit trail's details read as the other pages do: specialists, locations and
appointment types by name (looked up once per kind for the page), times in clinic time."""

from __future__ import annotations

import html
import re
import secrets
from datetime import time, timedelta

from flask import Flask
from sqlalchemy import delete, update

from booking.audit.services import record
from booking.extensions import db
from booking.notifications.models import OutboxEmail, OutboxStatus
from booking.patients.services import CallbackSubmission, request_callback
from booking.requests import asks
from booking.requests.escalation import escalate_overdue
from booking.requests.followup import on_call_address
from booking.scheduling import admin_services
from booking.scheduling.models import WorkingHours
from booking.staff.models import StaffUser
from booking.templating import NOTHING
from booking.timeutil import from_clinic_local
from tests.factories import make_appointment_type, make_location
from tests.support import AuthActions, Clinic, sql_statements, winter_day

GONE = 424242  # an id no record has (one deleted since the row was written)


def _details(page: str) -> list[str]:
    """The Details cells' lines as read, without the ``<bdi>`` their names and texts are in
    (test_bidi_names.py checks those)."""
    return [
        html.unescape(re.sub(r"</?bdi>", "", line))
        for line in re.findall(r"<li>((?:[^<]|</?bdi>)*)</li>", page)
    ]


def test_ids_are_named_and_times_are_clinic_times(
    app: Flask, auth: AuthActions, clinic: Clinic
) -> None:
    with app.app_context():
        record(
            "request_rescheduled",
            target_type="request",
            target_id="SC-7K4M-Q2XD",
            details={
                "specialist": {"before": clinic.okafor.id, "after": clinic.weber.id},
                "location": {"before": None, "after": clinic.location},
                "appointment_type": {"before": clinic.type, "after": GONE},
                "starts_at": {"before": None, "after": "2026-12-09T09:00:00+00:00"},
            },
        )
        record(
            "working_hours_added",
            target_type="working_hours",
            target_id=1,
            details={
                "specialist_id": {"before": None, "after": GONE},
                "location_id": {"before": None, "after": clinic.location},
                "weekday": {"before": None, "after": 0},
                "start_time": {"before": None, "after": "09:00:00"},
            },
        )
        record(
            "schedule_exception_deleted",
            target_type="schedule_exception",
            target_id=2,
            details={"kind": {"before": "time_off", "after": None}},
        )
        record("erasure_requested", details={"due": "2026-12-04", "typed": "2026-02-31"})
        record("slot_offered", details={"starts_at": "2026-07-01T07:30:00+00:00", "wave": 1})
        # A row about an account or a place: its Record cell names it, with its id.
        record("staff_deactivated", target_type="staff", target_id=clinic.okafor.id)
        record("location_updated", target_type="location", target_id=GONE)
        db.session.commit()
    auth.login("admin")
    page = auth.client.get("/staff/admin/audit").get_data(as_text=True)
    assert (
        f'<td data-label="Record">Staff account <bdi>Dr. Okafor</bdi> ({clinic.okafor.id})</td>'
        in page
    )
    # No longer there: the id, as stored.
    assert f'<td data-label="Record">Location {GONE}</td>' in page
    lines = _details(page)
    assert "specialist: Dr. Okafor → Dr. Weber" in lines
    assert f"location: {NOTHING} → Main clinic" in lines
    assert f"appointment type: New-patient spine evaluation → {GONE}" in lines
    assert f"starts at: {NOTHING} → 9 Dec 2026, 10:00" in lines  # Berlin, winter
    # A key holding an id reads as what it is the id of, named or not.
    assert f"specialist: {NOTHING} → {GONE}" in lines  # no longer there: the id, as stored
    assert f"location: {NOTHING} → Main clinic" in lines
    assert f"weekday: {NOTHING} → Monday" in lines
    assert f"start time: {NOTHING} → 09:00" in lines  # a clinic wall-clock time, no instant
    assert f"kind: time off → {NOTHING}" in lines
    # A day alone as every staff page writes dates; what is no day stays as written.
    assert "due: 4 Dec 2026" in lines
    assert "typed: 2026-02-31" in lines
    assert not any(" id:" in line for line in lines), lines
    assert "starts at: 1 Jul 2026, 09:30" in lines  # Berlin, summer
    assert "wave: 1" in lines
    assert "+00:00" not in page


def test_names_are_looked_up_once_per_kind_for_the_page(
    app: Flask, auth: AuthActions, clinic: Clinic
) -> None:
    with app.app_context():
        locations = [clinic.location] + [
            make_location(f"Site {n}", "Street 1").id for n in range(4)
        ]
        types = [clinic.type] + [make_appointment_type(f"Type {n}").id for n in range(4)]
        specialists = [clinic.weber.id, clinic.okafor.id, GONE]

    def write(count: int) -> None:
        with app.app_context():
            for n in range(count):
                record(
                    "request_confirmed",
                    details={
                        "specialist": {"before": None, "after": specialists[n % 3]},
                        "location": {"before": None, "after": locations[n % 5]},
                        "appointment_type": {"before": None, "after": types[n % 5]},
                    },
                )
            db.session.commit()

    def selects() -> int:
        with sql_statements(app, selects_only=True) as statements:
            page = auth.client.get(
                "/staff/admin/audit", query_string={"action": "request_confirmed"}
            )
        assert page.status_code == 200
        return len(statements)

    auth.login("admin")
    write(3)
    few = selects()
    write(47)
    many = selects()
    page = auth.client.get("/staff/admin/audit", query_string={"action": "request_confirmed"})
    lines = _details(page.get_data(as_text=True))
    assert len(lines) == 150  # 50 rows of 3 lines: a full page
    assert f"location: {NOTHING} → Site 3" in lines
    assert f"appointment type: {NOTHING} → Type 3" in lines
    assert many == few, (few, many)


def _record_cells(page: str) -> list[str]:
    """The Record cell of each row, newest first."""
    cells = re.findall(r'<td data-label="Record">(.*?)</td>', page, re.S)
    return [html.unescape(cell) for cell in cells]


def test_every_kind_of_record_is_named_as_the_clinic_calls_it(
    app: Flask, auth: AuthActions, clinic: Clinic
) -> None:
    with app.app_context():
        admin = db.session.get(StaffUser, clinic.admin.id)
        weber = db.session.get(StaffUser, clinic.weber.id)
        okafor = db.session.get(StaffUser, clinic.okafor.id)
        hours = db.session.scalars(
            db.select(WorkingHours).where(WorkingHours.specialist_id == weber.id)
        ).first()
        hours_id = hours.id
        # Deleted: its row is gone, its specialist is still named (from the row's details).
        admin_services.delete_working_hours(hours, admin)
        day = winter_day()
        off = admin_services.add_time_off(
            okafor, *(from_clinic_local(day, time(h)) for h in (15, 17)), None, admin
        ).exception.id
        asks.add_item({"en": "Pain diary"}, admin)
        asks.set_item_active("imaging_report", False, admin)
        record("access_refused", target_type="agenda", target_id=str(okafor.id))
        record("upload_refused_infected", target_type="upload", target_id="patients.step")
        record("booking_rules_updated", target_type="clinic_settings", target_id=1)
        db.session.commit()
    auth.login("admin")
    cells = _record_cells(auth.client.get("/staff/admin/audit").get_data(as_text=True))
    # Newest first, after the admin's own sign-in (a row about their account).
    assert cells[1:8] == [
        "Booking rules",
        "Patient's upload (patients.step)",
        f"Agenda of <bdi>Dr. Okafor</bdi> ({clinic.okafor.id})",
        "Checklist item “MRI or CT report from the last 12 months”",
        "Checklist item “Pain diary”",
        f"Time off of <bdi>Dr. Okafor</bdi> ({off})",
        f"Working hours of <bdi>Dr. Weber</bdi> ({hours_id})",
    ]


def test_naming_the_checklist_items_is_one_query_for_the_page(
    app: Flask, auth: AuthActions, clinic: Clinic
) -> None:
    def write(count: int) -> None:
        with app.app_context():
            admin = db.session.get(StaffUser, clinic.admin.id)
            for _n in range(count):
                for active in (False, True):
                    asks.set_item_active("imaging_report", active, admin)

    def selects() -> int:
        with sql_statements(app, selects_only=True) as statements:
            assert auth.client.get("/staff/admin/audit").status_code == 200
        return len(statements)

    auth.login("admin")
    write(1)
    few = selects()
    write(20)
    many = selects()
    assert many == few, (few, many)


def test_the_items_asked_of_a_patient_are_named_as_the_checklist_names_them(
    app: Flask, auth: AuthActions, clinic: Clinic
) -> None:
    with app.app_context():
        admin = db.session.get(StaffUser, clinic.admin.id)
        code = asks.add_item({"en": "Pain diary"}, admin).code
        # As ``asks.ask_patient`` and ``asks.answer_ask`` write them (codes, the request's
        # snapshot aside); an item no longer known stays as stored.
        record(
            "information_asked",
            target_type="request",
            target_id="SC-7K4M-Q2XD",
            details={"items": ["imaging_report", code, "retired_item"], "question": True},
        )
        record(
            "information_received",
            target_type="request",
            target_id="SC-7K4M-Q2XD",
            details={"documents": 1, "items": [code], "answered": False},
        )
        db.session.commit()
    auth.login("admin")
    lines = _details(auth.client.get("/staff/admin/audit").get_data(as_text=True))
    assert "items: MRI or CT report from the last 12 months, Pain diary, retired_item" in lines, (
        lines
    )
    assert "items: Pain diary" in lines


def test_a_row_about_a_thing_of_a_request_names_it_once(
    app: Flask, auth: AuthActions, clinic: Clinic
) -> None:
    reference = "SC-7K4M-Q2XD"
    with app.app_context():
        # As ``record_view``, the messages, the phone log and the virus scan write them.
        record("request_viewed", target_type="request", target_id=reference)
        record(
            "document_viewed",
            target_type="request",
            target_id=reference,
            details={"document_id": 12},
        )
        record(
            "message_sent",
            target_type="request",
            target_id=reference,
            details={"message_id": 31, "from": "staff"},
        )
        record(
            "callback_logged",
            target_type="request",
            target_id=reference,
            details={"call_id": 4, "outcome": "reached", "acknowledged": False},
        )
        record("note_added", target_type="request", target_id=reference, details={"note_id": 9})
        record(
            "upload_removed_infected",
            target_type="draft",
            target_id="d-81",
            details={"document_id": 15, "signature": "Eicar-Test-Signature"},
        )
        db.session.commit()
    auth.login("admin")
    page = auth.client.get("/staff/admin/audit").get_data(as_text=True)
    link = f'<a href="/staff/requests/{reference}" class="font-monospace">{reference}</a>'
    rows = re.findall(
        r'<td data-label="Record">(.*?)</td>.*?<td data-label="Details">(.*?)</td>', page, re.S
    )
    assert [(cell, _details(details)) for cell, details in rows[1:7]] == [
        ("Document 15 of a request not yet sent (d-81)", ["signature: Eicar-Test-Signature"]),
        (f"Note 9 on {link}", []),
        (f"Phone call 4 about {link}", ["outcome: reached", "acknowledged: no"]),
        (f"Message 31 of {link}", ["from: staff"]),
        (f"Document 12 of {link}", []),
        (link, []),
    ]
    # A row whose only detail is said in its Record cell has no (empty) list of details.
    assert [details for _cell, details in rows[2:7:3]] == ["", ""]


def _escalated_emergency(now_after: timedelta) -> int:
    """An emergency call-back request escalated as the worker escalates it (its alert written
    to the outbox, the row in the trail); the alert's id."""
    consultation = request_callback(
        CallbackSubmission(
            submission_token=secrets.token_urlsafe(32),
            locale="en",
            full_name="Juana Notinmail",
            phone="+4930901821",
            red_flags={"saddle_numbness"},
        )
    )
    [email_id] = escalate_overdue(now=consultation.created_at + now_after)
    return email_id


def test_an_escalations_alert_is_named_by_its_recipient_and_delivery(
    app: Flask, auth: AuthActions, clinic: Clinic
) -> None:
    """The escalated row keeps the id of the on-call alert: the trail says where it went
    and whether it was sent, looked up once for the page however many rows name one."""

    def selects() -> int:
        with sql_statements(app, selects_only=True) as statements:
            page = auth.client.get(
                "/staff/admin/audit", query_string={"action": "request_escalated"}
            )
        assert page.status_code == 200
        return len(statements)

    with app.app_context():
        address = on_call_address()
        sent = _escalated_emergency(timedelta(minutes=31))
        db.session.execute(
            update(OutboxEmail).where(OutboxEmail.id == sent).values(status=OutboxStatus.SENT)
        )
        db.session.commit()
    auth.login("admin")
    one = selects()
    with app.app_context():
        waiting = _escalated_emergency(timedelta(minutes=40))
        gone = _escalated_emergency(timedelta(minutes=50))
        db.session.execute(delete(OutboxEmail).where(OutboxEmail.id == gone))
        db.session.commit()
        # Its id given again to another email (SQLite reuses the highest id once deleted):
        # a patient's, not the alert the row names.
        db.session.add(
            OutboxEmail(
                id=gone,
                template="request_received",
                recipient="erika.patient@example.org",
                subject="Your request",
                body_text="",
                body_html="",
                message_id="<reused@example.org>",
            )
        )
        db.session.commit()
    three = selects()
    page = auth.client.get("/staff/admin/audit", query_string={"action": "request_escalated"})
    lines = _details(page.get_data(as_text=True))
    assert f"email: alert to {address}, sent" in lines, lines
    assert f"email: alert to {address}, waiting to be sent" in lines
    assert f"email: alert email {gone}, no longer in the outbox" in lines
    assert not any("erika.patient" in line for line in lines), lines
    assert not any(" id:" in line for line in lines), lines
    assert waiting != sent
    assert three == one, (one, three)
