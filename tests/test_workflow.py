"""The status workflow through the dashboard: valid and refused transitions, patient emails
with their iCalendar files, the timeline and the audit trail."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from icalendar import Calendar
from sqlalchemy import select

from booking.audit.models import AuditEvent
from booking.extensions import db
from booking.notifications.models import OutboxEmail
from booking.requests.events import RequestEvent
from booking.requests.models import ConsultationRequest, RequestStatus
from tests.factories import (
    make_request,
)
from tests.support import AuthActions, Clinic, csrf_token

CSRF_VALUE = re.compile(r'csrf_token"[^>]*value="([^"]+)"')


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
    data = {f"{prefix}-csrf_token": token, **{f"{prefix}-{k}": v for k, v in fields.items()}}
    return client.post(f"/staff/requests/{reference}/{action}", data=data)


def slot(clinic: Waiting, day: str = "2026-12-03", start: str = "10:00", **kw: Any) -> dict:
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
    assert (
        act(
            client,
            reference,
            "reschedule",
            **slot(clinic, day="2026-12-04", start="14:30", specialist=clinic.okafor.id),
        ).status_code
        == 302
    )
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
    assert "When: Thu 3 Dec 2026, 10:00\n" in confirmed.body_text
    assert "10:00:00" not in confirmed.body_text and "Central European" not in confirmed.body_text

    method, first = _event(confirmed)
    assert method == "REQUEST"
    assert first.decoded("dtstart") == datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
    assert first.decoded("dtend") == datetime(2026, 12, 3, 9, 45, tzinfo=UTC)
    assert int(first["SEQUENCE"]) == 0
    assert str(first["STATUS"]) == "CONFIRMED"

    method, second = _event(rescheduled)
    assert method == "REQUEST"
    assert str(second["UID"]) == str(first["UID"])
    assert int(second["SEQUENCE"]) == 1
    assert second.decoded("dtstart") == datetime(2026, 12, 4, 13, 30, tzinfo=UTC)

    method, third = _event(cancelled)
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
        assert act(client, clinic.reference, action, **fields).status_code == 302
    assert _request(app, clinic.reference).status == final
    emails = _patient_emails(app)
    assert len(emails) == len(path)
    assert subject in emails[-1].subject
    if final in ("declined", "completed", "no_show"):
        assert emails[-1].attachment_body is None


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


@pytest.mark.parametrize(("state", "action"), INVALID)
def test_invalid_transitions_are_refused_and_change_nothing(
    app: Flask, client: FlaskClient, clinic: Waiting, state: str, action: str
) -> None:
    AuthActions(client).attempt(clinic.coordinator.email)
    for step in TO_REACH[state]:
        fields = slot(clinic) if step == "confirm" else {}
        assert act(client, clinic.reference, step, **fields).status_code == 302
    emails_before = len(_patient_emails(app))

    fields = slot(clinic, day="2026-12-10") if action in ("confirm", "reschedule") else {}
    response = act(client, clinic.reference, action, **fields)

    assert response.status_code == 409
    page = response.get_data(as_text=True)
    assert "cannot be changed" in page or "already confirmed" in page or "Only a confirmed" in page
    assert _request(app, clinic.reference).status == state
    assert len(_patient_emails(app)) == emails_before


def test_unknown_action_is_not_found(client: FlaskClient, clinic: Waiting) -> None:
    AuthActions(client).attempt(clinic.coordinator.email)
    assert act(client, clinic.reference, "delete").status_code == 404


def test_a_time_skipped_by_the_clock_change_is_refused(
    app: Flask, client: FlaskClient, clinic: Waiting
) -> None:
    AuthActions(client).attempt(clinic.coordinator.email)
    # Berlin skips from 02:00 to 03:00 on 28 March 2027.
    response = act(
        client, clinic.reference, "confirm", **slot(clinic, day="2027-03-28", start="02:30")
    )
    assert response.status_code == 409
    assert "does not exist" in response.get_data(as_text=True)
    assert _request(app, clinic.reference).status == RequestStatus.REQUESTED


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
