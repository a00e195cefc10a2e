"""Staff raise a request's triage level (new symptoms the patient reported after sending): only
to a higher level, with a reason, from a page that still shows the request as it is. The
request moves up the queue, is owed a call about the new symptoms, and its call-back clock and
escalation count from the raise; the clinic's inbox is alerted (the on-call address too, out
of hours, for an emergency), the patient is not emailed."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from booking.audit.models import AuditEvent
from booking.dashboard import services as workflow
from booking.extensions import db
from booking.notifications.models import OutboxEmail
from booking.requests.calls import CallOutcome
from booking.requests.emails import TO_PATIENT_TEMPLATES, TRIAGE_RAISED_TEMPLATE
from booking.requests.escalation import escalate_overdue
from booking.requests.events import EventKind
from booking.requests.lifecycle import WorkflowError
from booking.requests.models import ConsultationRequest, TriageLevel
from tests.factories import make_assigned_requests, make_request, staff_user
from tests.support import (
    QUEUE_CAPTION,
    AuthActions,
    Clinic,
    Staff,
    hidden_value,
    page_token,
    table_boxes,
)

BERLIN = ZoneInfo("Europe/Berlin")
ON_CALL = "on-call@example.com"
INBOX = "coordinators@example.com"  # the tests' STAFF_NOTIFICATION_EMAIL
REASON = "Wrote that there is new numbness around her bottom since yesterday"
STALE_LEVEL = "The triage level was changed while you had this page open"


def berlin(*args: int) -> datetime:
    return datetime(*args, tzinfo=BERLIN).astimezone(UTC)


@pytest.fixture
def app_settings(app_settings: dict[str, Any]) -> dict[str, Any]:
    app_settings["ON_CALL_EMAIL"] = ON_CALL
    return app_settings


@pytest.fixture
def working_hours() -> dict[str, tuple[str, str]]:
    return {"weber": ("08:00", "18:00"), "okafor": ("08:00", "18:00")}


def _routine(app: Flask, received: datetime | None = None, **overrides: Any) -> dict[str, Any]:
    """A routine request (no red flags), received at ``received`` (default: now)."""
    with app.app_context():
        consultation = make_request(full_name="Rita Notinmail", **overrides)
        assert consultation.triage_level == TriageLevel.ROUTINE
        if received is not None:
            consultation.created_at = received
        db.session.commit()
        return {"id": consultation.id, "reference": consultation.reference}


def _offered(page: str) -> list[str]:
    """The levels the record page's raise form offers."""
    return re.findall(r'name="raise-level" type="radio" value="([a-z]+)"', page)


def _record(client: FlaskClient, reference: str) -> str:
    response = client.get(f"/staff/requests/{reference}")
    assert response.status_code == 200
    return response.get_data(as_text=True)


def _raise(
    client: FlaskClient, reference: str, level: str, reason: str = REASON, page: str | None = None
):
    """Raise from the record page's form (``page``: one shown earlier), as a browser posts it."""
    page = page or _record(client, reference)
    data = {
        "raise-csrf_token": page_token(page),
        "raise-seen": hidden_value(page, "raise-seen"),
        "raise-shown": hidden_value(page, "raise-shown"),
        "raise-level": level,
        "raise-reason": reason,
    }
    return client.post(f"/staff/requests/{reference}/triage", data=data)


def _raise_now(
    request_id: int, level: TriageLevel, now: datetime, email: str = "coord@example.com"
):
    """The service, as the record page's form calls it (inside an app context)."""
    return workflow.raise_triage(
        db.session.get(ConsultationRequest, request_id), staff_user(email), level, REASON, now=now
    )


def _raised_audit(reference: str) -> list[dict[str, Any]]:
    rows = db.session.scalars(
        sa.select(AuditEvent).where(
            AuditEvent.target_id == reference, AuditEvent.action == "triage_raised"
        )
    )
    return [dict(row.details) for row in rows]


def _emails(request_id: int) -> list[OutboxEmail]:
    return list(
        db.session.scalars(
            sa.select(OutboxEmail)
            .where(OutboxEmail.request_id == request_id)
            .order_by(OutboxEmail.id)
        )
    )


# The action -------------------------------------------------------------------------------


def test_a_coordinator_raises_a_routine_request_with_a_reason(
    app: Flask, client: FlaskClient, staff: Staff
) -> None:
    request = _routine(app)
    AuthActions(client).login("coordinator")
    page = _record(client, request["reference"])
    assert "Raise the triage level" in page
    assert _offered(page) == ["urgent", "emergency"]
    with app.app_context():
        before = {e.id for e in _emails(request["id"])}

    response = _raise(client, request["reference"], "urgent", page=page)
    assert response.status_code == 302
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Triage level raised" in page
    assert REASON in page  # on the timeline
    with app.app_context():
        consultation = db.session.get(ConsultationRequest, request["id"])
        assert consultation.triage_level == TriageLevel.URGENT
        assert consultation.priority == 1
        assert consultation.triage_raised_at is not None
        assert consultation.unreached
        [note] = [e for e in consultation.events if e.kind == EventKind.NOTE]
        assert note.body == f"Raised the triage level from routine to urgent. Reason: {REASON}"
        assert note.actor_id == staff.coordinator.id
        [audit] = _raised_audit(request["reference"])
        assert audit["triage_level"] == {"before": "routine", "after": "urgent"}
        assert audit["note_id"] == note.id
        assert REASON not in str(audit)  # the reason may be medical: the timeline only
        new = [e for e in _emails(request["id"]) if e.id not in before]
        assert [(e.template, e.recipient) for e in new] == [(TRIAGE_RAISED_TEMPLATE, INBOX)]
        assert audit["email_ids"] == [new[0].id]
        # Whoever reads it away from the clinic reads the clinic's times as such.
        for row in ("Received", "Raised"):
            assert re.search(rf"{row}: .+, \d\d:\d\d, Germany \(Berlin\) Time\n", new[0].body_text)
            assert re.search(
                rf"{row}</th><td>[^<]+, \d\d:\d\d, Germany \(Berlin\) Time</td>", new[0].body_html
            )
        assert not any(e.template in TO_PATIENT_TEMPLATES for e in new)  # no patient email


def test_only_a_higher_level_is_offered_and_accepted(
    app: Flask, client: FlaskClient, staff: Staff
) -> None:
    with app.app_context():
        urgent = make_request(red_flags={"fever"})
        urgent_ref, urgent_id = urgent.reference, urgent.id
    AuthActions(client).login("coordinator")
    page = _record(client, urgent_ref)
    assert _offered(page) == ["emergency"]
    for level in ("urgent", "routine"):  # the same level, or lower: not offered, refused
        assert _raise(client, urgent_ref, level, page=page).status_code == 422
    with app.app_context():
        consultation = db.session.get(ConsultationRequest, urgent_id)
        assert consultation.triage_level == TriageLevel.URGENT
        assert consultation.triage_raised_at is None
        assert _raised_audit(urgent_ref) == []
        # Nor does the service lower or keep a level, whoever calls it.
        for level in (TriageLevel.URGENT, TriageLevel.ROUTINE):
            with pytest.raises(WorkflowError, match="only be raised above"):
                _raise_now(urgent_id, level, datetime.now(UTC))
            db.session.rollback()

    assert _raise(client, urgent_ref, "emergency", page=page).status_code == 302
    # An emergency is the highest level: nothing more to offer.
    assert "Raise the triage level" not in _record(client, urgent_ref)


def test_a_reason_is_required(app: Flask, client: FlaskClient, staff: Staff) -> None:
    request = _routine(app)
    AuthActions(client).login("coordinator")
    response = _raise(client, request["reference"], "emergency", reason="  ")
    assert response.status_code == 422
    assert "Please write why the triage level is raised." in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(ConsultationRequest, request["id"]).triage_level == "routine"
        assert _raised_audit(request["reference"]) == []


def test_a_stale_page_is_refused(app: Flask, client: FlaskClient, staff: Staff) -> None:
    """A colleague raised the level, or changed the request, since the page was shown."""
    first, second = _routine(app), _routine(app)
    AuthActions(client).login("coordinator")
    first_page = _record(client, first["reference"])
    second_page = _record(client, second["reference"])
    with app.app_context():
        _raise_now(first["id"], TriageLevel.URGENT, datetime.now(UTC), "admin@example.com")
        workflow.cancel_request(
            db.session.get(ConsultationRequest, second["id"]), staff_user("admin@example.com")
        )

    refused = _raise(client, first["reference"], "emergency", page=first_page)
    assert refused.status_code == 409
    assert STALE_LEVEL in refused.get_data(as_text=True)
    refused = _raise(client, second["reference"], "urgent", page=second_page)
    assert refused.status_code == 409
    assert "This request changed while you had it open" in refused.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(ConsultationRequest, first["id"]).triage_level == "urgent"
        assert len(_raised_audit(first["reference"])) == 1  # the colleague's only
        assert db.session.get(ConsultationRequest, second["id"]).triage_level == "routine"
        assert _raised_audit(second["reference"]) == []


def test_a_specialist_raises_only_a_request_they_may_work(
    app: Flask, client: FlaskClient, clinic: Clinic
) -> None:
    with app.app_context():
        own, other = make_assigned_requests(clinic)
    AuthActions(client).login(email="weber@example.com")
    assert _raise(client, own["reference"], "urgent").status_code == 302
    with app.app_context():
        request_id = db.session.scalar(
            sa.select(ConsultationRequest.id).where(
                ConsultationRequest.reference == other["reference"]
            )
        )
        with pytest.raises(WorkflowError, match="not assigned to you"):
            _raise_now(request_id, TriageLevel.URGENT, datetime.now(UTC), "weber@example.com")
        db.session.rollback()
        assert len(_raised_audit(own["reference"])) == 1
        assert _raised_audit(other["reference"]) == []


# The queue and the call-back ----------------------------------------------------------------


def test_a_raised_request_goes_to_the_top_of_the_queue(
    app: Flask, client: FlaskClient, staff: Staff
) -> None:
    older = _routine(app, berlin(2026, 11, 2, 9))
    old = _routine(app, berlin(2026, 11, 3, 9))
    newest = _routine(app, berlin(2026, 11, 4, 9))
    AuthActions(client).login("coordinator")

    def order() -> list[str]:
        page = client.get("/staff/queue").get_data(as_text=True)
        references = [older["reference"], old["reference"], newest["reference"]]
        return sorted(references, key=page.index)

    assert order() == [older["reference"], old["reference"], newest["reference"]]
    assert _raise(client, newest["reference"], "urgent").status_code == 302
    assert order() == [newest["reference"], older["reference"], old["reference"]]


def test_the_queue_says_the_order_it_is_in(app: Flask, client: FlaskClient, staff: Staff) -> None:
    """Within a level the queue goes by the call-back clock, which for a raised request
    starts at the raise: the one that arrived first may come second. Its caption (the
    table's name, and its scrolling box's) said "then the oldest waiting", which a
    coordinator reads as "the one that arrived first"."""
    first = _routine(app, berlin(2026, 11, 2, 9))
    second = _routine(app, berlin(2026, 11, 3, 9))
    AuthActions(client).login("coordinator")
    assert _raise(client, second["reference"], "urgent").status_code == 302
    assert _raise(client, first["reference"], "urgent").status_code == 302
    page = client.get("/staff/queue").get_data(as_text=True)
    assert sorted([first["reference"], second["reference"]], key=page.index) == [
        second["reference"],
        first["reference"],
    ]
    assert table_boxes(page) == [(QUEUE_CAPTION, QUEUE_CAPTION)]


def test_a_call_before_the_raise_does_not_count_as_reaching_the_patient(
    app: Flask, staff: Staff
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    request = _routine(app, now - timedelta(hours=3))
    with app.app_context():
        coordinator = staff_user("coord@example.com")

        def call(at: datetime) -> None:
            consultation = db.session.get(ConsultationRequest, request["id"])
            workflow.log_callback(consultation, coordinator, CallOutcome.REACHED, at)

        call(now - timedelta(hours=2))  # about the request as it was
        _raise_now(request["id"], TriageLevel.URGENT, now - timedelta(hours=1))
        consultation = db.session.get(ConsultationRequest, request["id"])
        assert consultation.acknowledged_at is None and consultation.unreached
        call(now - timedelta(minutes=90))  # made before the raise, logged after it
        consultation = db.session.get(ConsultationRequest, request["id"])
        assert consultation.acknowledged_at is None
        call(now - timedelta(minutes=30))
        consultation = db.session.get(ConsultationRequest, request["id"])
        assert consultation.acknowledged_at == now - timedelta(minutes=30)


def test_the_wait_shown_counts_from_the_raise(
    app: Flask, client: FlaskClient, staff: Staff
) -> None:
    now = datetime.now(UTC)
    request = _routine(app, now - timedelta(days=3))
    with app.app_context():
        _raise_now(request["id"], TriageLevel.EMERGENCY, now - timedelta(minutes=10, seconds=5))
    AuthActions(client).login("coordinator")
    page = _record(client, request["reference"])
    assert "waiting 10 min, target 30 min" in page and "Overdue" not in page


def test_an_old_request_raised_to_urgent_escalates_on_its_target_from_the_raise(
    app: Flask, staff: Staff
) -> None:
    """Ten days old when raised: neither escalated at once (counted from its arrival it is
    long overdue) nor left to the queue by the catch-up, but four working hours on."""
    raised = berlin(2026, 11, 16, 9)  # a Monday morning
    request = _routine(app, raised - timedelta(days=10))
    with app.app_context():
        _raise_now(request["id"], TriageLevel.URGENT, raised)
        assert escalate_overdue(now=raised + timedelta(minutes=1)) == []
        assert escalate_overdue(now=raised + timedelta(hours=3, minutes=59)) == []
        [escalation] = escalate_overdue(now=raised + timedelta(hours=4, minutes=1))
        email = db.session.get(OutboxEmail, escalation)
        assert email.recipient == ON_CALL and request["reference"] in email.subject
        # Counted from the raise, and nothing the patient was never told (the request's
        # answers gave no advice: staff raised it).
        for body in (email.body_text, html.unescape(email.body_html)):
            assert "since staff raised the request to URGENT for new symptoms" in body
            assert "since the request arrived" not in body and "warning sign" not in body
        consultation = db.session.get(ConsultationRequest, request["id"])
        assert consultation.escalated_at == raised + timedelta(hours=4, minutes=1)


def test_an_escalated_request_raised_to_emergency_escalates_again_on_the_new_clock(
    app: Flask, staff: Staff
) -> None:
    received = berlin(2026, 11, 16, 9)
    with app.app_context():
        consultation = make_request(red_flags={"fever"})
        consultation.created_at = received
        db.session.commit()
        request_id = consultation.id
        assert len(escalate_overdue(now=received + timedelta(hours=4, minutes=1))) == 1
        raised = received + timedelta(hours=5)
        _raise_now(request_id, TriageLevel.EMERGENCY, raised)
        assert db.session.get(ConsultationRequest, request_id).escalated_at is None
        assert escalate_overdue(now=raised + timedelta(minutes=29)) == []
        [escalation] = escalate_overdue(now=raised + timedelta(minutes=31))
        email = db.session.get(OutboxEmail, escalation)
        for body in (email.body_text, html.unescape(email.body_html)):
            assert "31 minutes after staff raised the request to EMERGENCY" in body
            assert "told to seek emergency care" not in body


# The alert ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("level", "raised", "recipients"),
    [
        (TriageLevel.URGENT, berlin(2026, 11, 21, 22), [INBOX]),  # Saturday night
        (TriageLevel.EMERGENCY, berlin(2026, 11, 16, 10), [INBOX]),  # Monday morning
        (TriageLevel.EMERGENCY, berlin(2026, 11, 21, 22), [INBOX, ON_CALL]),
    ],
)
def test_the_clinic_is_alerted_and_on_call_out_of_hours_for_an_emergency(
    app: Flask, staff: Staff, level: TriageLevel, raised: datetime, recipients: list[str]
) -> None:
    request = _routine(app, raised - timedelta(days=3))
    with app.app_context():
        before = {e.id for e in _emails(request["id"])}
        ids = _raise_now(request["id"], level, raised)
        new = [e for e in _emails(request["id"]) if e.id not in before]
        assert [e.id for e in new] == ids
        assert [e.recipient for e in new] == recipients
        assert {e.template for e in new} == {TRIAGE_RAISED_TEMPLATE}
        word = "EMERGENCY" if level == TriageLevel.EMERGENCY else "URGENT"
        for email in new:
            assert email.subject.startswith(f"{word}: request {request['reference']} raised")
            assert "Cora Coord raised request" in email.body_text
            assert f"/staff/requests/{request['reference']}" in email.body_text
            for hidden in ("numbness", "Rita", "Notinmail"):  # no reason, no patient details
                assert hidden not in email.body_text and hidden not in (email.body_html or "")
