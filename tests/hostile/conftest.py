"""Shared pieces of the hostile-input suite.

Every case drives the app through HTTP as an attacker would (CSRF on, real uploads, real
database: SQLite, and PostgreSQL when ``TEST_DATABASE_URL`` is set) and then checks three
things: the answer is a clear 4xx or the form again with a visible message (never a 500),
nothing was stored partially (``snapshot`` before and after), and text that is stored and
shown again comes out escaped in pages, in the emails' HTML and neutralised in the CSV.
"""

from __future__ import annotations

import csv
import html
import io
import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from markupsafe import escape
from sqlalchemy import func, select
from werkzeug.test import TestResponse

from booking.documents.models import Document
from booking.extensions import db
from booking.notifications.models import OutboxEmail
from booking.notifications.services import deliver_outbox_email
from booking.requests.events import RequestEvent
from booking.requests.models import ConsultationRequest, MedicalHistory, Patient
from booking.scheduling.availability import open_slots
from booking.scheduling.models import (
    Appointment,
    AppointmentType,
    ClinicSettings,
    Location,
    ScheduleException,
    SlotOffer,
    WaitlistEntry,
    WorkingHours,
)
from booking.scheduling.services import SlotChoice
from booking.staff.models import RecoveryCode, StaffUser
from booking.timeutil import now_utc
from tests.factories import (
    make_request,
)
from tests.smtp import SmtpServer
from tests.support import Account, AuthActions, Clinic, export_queue, open_manage_link, stored_files

# Script and HTML that would run or change the page if it were ever rendered unescaped.
MARKUP = '<script>alert("xss")</script><img src=x onerror=alert(1)>'
RAW_MARKERS = ("<script>alert", "<img src=x")

# Every table a hostile request could leave a partial row in (the audit trail is left out:
# refused sign-ins and views are rightly audited).
TRACKED = (
    ConsultationRequest,
    Patient,
    MedicalHistory,
    Document,
    OutboxEmail,
    RequestEvent,
    Appointment,
    StaffUser,
    Location,
    AppointmentType,
    WorkingHours,
    ScheduleException,
    ClinicSettings,
    WaitlistEntry,
    SlotOffer,
    RecoveryCode,
)


def snapshot(app: Flask) -> dict[str, Any]:
    """Row counts, every request's status and time, staff, locations, and the stored files."""
    with app.app_context():
        state: dict[str, Any] = {
            model.__tablename__: db.session.scalar(select(func.count()).select_from(model))
            for model in TRACKED
        }
        state["requests"] = sorted(
            db.session.execute(
                select(
                    ConsultationRequest.reference,
                    ConsultationRequest.status,
                    ConsultationRequest.assigned_specialist_id,
                )
            ).all()
        )
        state["appointments"] = sorted(
            db.session.execute(
                select(
                    Appointment.request_id,
                    Appointment.starts_at,
                    Appointment.specialist_id,
                    Appointment.active,
                    Appointment.sequence,
                )
            ).all()
        )
        state["staff"] = sorted(
            db.session.execute(
                select(StaffUser.email, StaffUser.full_name, StaffUser.active, StaffUser.role)
            ).all()
        )
        state["locations"] = sorted(
            db.session.execute(select(Location.name, Location.address, Location.active)).all()
        )
        state["types"] = sorted(
            db.session.execute(
                select(
                    AppointmentType.name, AppointmentType.duration_minutes, AppointmentType.active
                )
            ).all()
        )
        db.session.remove()
    state["files"] = [p.name for p in stored_files(Path(app.config["UPLOAD_DIR"]))]
    return state


def visible_text(page: str) -> str:
    """What a reader sees: tags dropped, entities decoded, whitespace collapsed."""
    page = re.sub(r"<(script|style)\b.*?</\1>", " ", page, flags=re.S)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def assert_refused(
    response: TestResponse, status: int | tuple[int, ...], message: str | None = None
) -> str:
    """A clear refusal: the expected 4xx (never a 500) and, when given, the message on the
    page the user sees. Returns the page."""
    expected = (status,) if isinstance(status, int) else status
    assert response.status_code in expected, (
        f"expected {expected}, got {response.status_code}: "
        f"{visible_text(response.get_data(as_text=True))[:300]}"
    )
    assert all(400 <= code < 500 for code in expected)
    page = response.get_data(as_text=True)
    assert "Traceback" not in page
    if message is not None:
        assert message in visible_text(page), f"{message!r} not shown"
    return page


def assert_escaped(page: str, value: str) -> None:
    """``value`` is on the page as text: present escaped, never as live markup."""
    for marker in RAW_MARKERS:
        if marker in value:
            assert marker not in page, f"unescaped {marker!r} on the page"
    assert str(escape(value)) in page, (
        f"the value is not shown (escaped) on the page: {visible_text(page)[:3000]}"
    )


# The export's headings (booking/dashboard/export.py) by the short names these tests use.
CSV_COLUMNS = {
    "Reference": "reference",
    "Patient": "patient",
    "Specialist": "specialist",
    "Location": "location",
}


def csv_rows(client: FlaskClient, query: str = "status=all") -> list[dict[str, str]]:
    """The export's rows, read as a spreadsheet does (after its byte-order mark)."""
    response = export_queue(client, query)
    assert response.status_code == 200
    rows = csv.DictReader(io.StringIO(response.get_data().decode("utf-8-sig")))
    return [{CSV_COLUMNS.get(k, k): v for k, v in row.items()} for row in rows]


def outbox(app: Flask, template: str | None = None) -> list[OutboxEmail]:
    with app.app_context():
        query = select(OutboxEmail).order_by(OutboxEmail.id)
        if template is not None:
            query = query.where(OutboxEmail.template == template)
        rows = list(db.session.scalars(query))
        db.session.expunge_all()
        return rows


def delivered_html(app: Flask, smtp: SmtpServer, template: str) -> list[str]:
    """Deliver the outbox's emails of ``template`` through the real SMTP server and return
    the HTML part of each message as received."""
    rows = outbox(app, template)
    assert rows, f"no {template} email was written"
    before = len(smtp.received)
    with app.app_context():
        for row in rows:
            deliver_outbox_email(row.id)
    received = smtp.collector.wait_for(before + len(rows))[before:]
    parts = []
    for item in received:
        part = item.message.get_body(preferencelist=("html",))
        assert part is not None
        parts.append(part.get_content())
    return parts


@dataclass(frozen=True)
class Cases(Clinic):
    """``clinic`` and two patients the client has opened the private links of: one holding a
    time ("booked"), one without a time and with a document ("waiting")."""

    booked: str
    booked_link: str
    waiting: str
    waiting_link: str
    waiting_document: int
    slot_keys: list[str]

    @property
    def placeholders(self) -> dict[str, Any]:
        """Values for the cases' URL and field templates ("/staff/requests/{waiting}")."""
        return {
            **{k: v for k, v in vars(self).items() if not isinstance(v, Account)},
            "admin_id": self.admin.id,
            "coordinator_id": self.coordinator.id,
            "weber": self.weber.id,
            "okafor": self.okafor.id,
        }


@pytest.fixture
def clinic(app: Flask, client: FlaskClient, clinic: Clinic) -> Cases:
    with app.app_context():
        appointment_type = db.session.get(AppointmentType, clinic.type)
        # Two days out: the booked time must stay more than the cancellation notice (24 h)
        # away while the test runs; the first open time after "now" is only just past the
        # minimum notice (also 24 h), so a test running minutes later could no longer move it.
        start = now_utc() + timedelta(days=2)
        slots = open_slots(appointment_type, start, start + timedelta(days=14))
        booked = make_request(
            email="booked@example.com",
            slot=SlotChoice(
                appointment_type.id,
                slots[0].specialist_id,
                slots[0].location_id,
                slots[0].starts_at,
            ),
        )
        waiting = make_request(email="waiting@example.com", documents=1)
        return Cases(
            **vars(clinic),
            booked=booked.reference,
            booked_link=open_manage_link(client, booked),
            waiting=waiting.reference,
            waiting_link=open_manage_link(client, waiting),
            waiting_document=waiting.documents[0].id,
            slot_keys=[s.key for s in slots[1:40]],
        )


@pytest.fixture
def coordinator(auth: AuthActions, clinic: Cases) -> FlaskClient:
    """A second browser, signed in as the coordinator."""
    return auth.new_client("coordinator")


@pytest.fixture
def admin(auth: AuthActions, clinic: Cases) -> FlaskClient:
    """A second browser, signed in as the admin."""
    return auth.new_client("admin")
