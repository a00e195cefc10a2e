"""How much work sending a request with a picked time does (issue #8), and that the shortcuts
keep its meaning: one flush stores the request and the held time, the emails name the
specialist and the place, nothing is read back after the commit, and a taken time writes no
file."""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from booking.extensions import db
from booking.notifications.models import OutboxEmail
from booking.requests.models import ConsultationRequest
from booking.scheduling.availability import OpenSlot, open_slots
from booking.scheduling.models import Appointment, AppointmentType
from booking.timeutil import now_utc
from tests.factories import make_appointment_type, make_hours, make_location, make_staff
from tests.support import (
    fill_request,
    form_tokens,
    pdf_bytes,
    send_request,
    sql_statements,
    step_answers,
    stored_files,
    valid_answers,
)


@pytest.fixture
def open_slot(app: Flask) -> OpenSlot:
    """An open time a few days out: a specialist working every day at one place."""
    with app.app_context():
        specialist = make_staff("specialist", "weber@example.com", full_name="Dr. Weber")
        location = make_location("North clinic", "Nordstr. 9, Berlin")
        make_appointment_type(minutes=45)
        make_hours(specialist, location)
        appointment_type = db.session.scalars(select(AppointmentType)).one()
        now = now_utc()
        return open_slots(appointment_type, now + timedelta(days=3), now + timedelta(days=10))[0]


def fill_with_time(client: FlaskClient, slot: OpenSlot, type_id: int = 1) -> dict[str, str]:
    """Every step up to the review, with ``slot`` picked and a document; the answers."""
    tokens = form_tokens(client, f"/request?type={type_id}&slot={slot.key}")
    answers = valid_answers(appointment_type=str(type_id), slot=slot.key)
    assert fill_request(client, answers, [(pdf_bytes(), "mri.pdf")], tokens) is None
    return tokens


def test_a_picked_time_is_stored_with_the_request_in_one_go(
    app: Flask, client: FlaskClient, open_slot: OpenSlot
) -> None:
    tokens = fill_with_time(client, open_slot)
    send = {**step_answers("review"), "nav": "send", **tokens}  # the review page's Send
    with sql_statements(app) as seen:
        response = client.post("/request/steps/review", data=send)
    assert response.status_code == 303

    seen = [" ".join(s.split()) for s in seen]
    writes = [s.split("(")[0].strip() for s in seen if s.startswith(("INSERT", "UPDATE"))]
    # The request is never updated after its insert (the assigned specialist goes in with it);
    # the updates save the review's answers in the draft, mark the draft sent with its request,
    # and raise the availability version (a time was taken).
    updates = [s for s in writes if s.startswith("UPDATE")]
    assert [u.split(" SET")[0] for u in updates] == [
        "UPDATE request_draft",
        "UPDATE request_draft",
        "UPDATE availability_version",
    ], writes
    assert sum(s.startswith("INSERT INTO appointment") for s in writes) == 1
    assert sum(s.startswith("INSERT INTO consultation_request") for s in writes) == 1
    # A bound that catches a lazy load in a loop; today 31 (SQLite): reading the draft,
    # locking it twice (saving the review's answers, then sending: a file another tab adds
    # meanwhile goes in or is refused), updating it, moving its document and the confirmation
    # page's private link are 10 of them; the audit row's link to the new reference is one
    # (booking.audit AuditReference); the check that the time is still open reads the days an
    # admin closed the clinic (booking.scheduling.closures), one.
    assert len([s for s in seen if s.startswith(("SELECT", "INSERT", "UPDATE"))]) <= 33, seen

    with app.app_context():
        consultation = db.session.scalars(select(ConsultationRequest)).one()
        appointment = consultation.appointment
        assert (appointment.specialist_id, appointment.location_id) == (
            open_slot.specialist_id,
            open_slot.location_id,
        )
        assert (appointment.starts_at, appointment.ends_at) == (
            open_slot.starts_at,
            open_slot.ends_at,
        )
        assert consultation.assigned_specialist_id == open_slot.specialist_id
        receipt = db.session.scalars(
            select(OutboxEmail).where(OutboxEmail.template == "request_received")
        ).one()
        for text in (receipt.body_text, receipt.body_html):
            assert "Dr. Weber" in text
            assert "North clinic" in text
            assert "Nordstr. 9, Berlin" in text
        assert "LOCATION:North clinic\\, Nordstr. 9" in receipt.attachment_body  # RFC 5545
        assert consultation.reference in receipt.attachment_body

    page = client.get("/request/submitted").get_data(as_text=True)
    assert consultation.reference in page


def test_nothing_is_read_back_after_the_commit(
    app: Flask, client: FlaskClient, open_slot: OpenSlot
) -> None:
    tokens = fill_with_time(client, open_slot)
    send = {**step_answers("review"), "nav": "send", **tokens}
    with sql_statements(app) as seen:
        assert client.post("/request/steps/review", data=send).status_code == 303
    # An expired object read back after the commit shows as a SELECT of a row just written,
    # by its primary key; the submission's own reads (is this token or reference taken, is
    # the time free) look rows up by other columns.
    seen = [" ".join(s.split()) for s in seen]
    for table in ("consultation_request", "patient", "medical_history", "appointment"):
        reloads = [s for s in seen if s.startswith("SELECT") and f"WHERE {table}.id = " in s]
        assert not reloads, reloads


def test_a_taken_time_writes_no_file_and_stores_nothing(
    app: Flask, client: FlaskClient, open_slot: OpenSlot, upload_dir
) -> None:
    tokens = fill_with_time(client, open_slot)
    assert send_request(client, tokens=tokens).status_code == 303

    other = FlaskClient(app, app.response_class, use_cookies=True)
    other_tokens = fill_with_time(other, open_slot)  # its document is in its draft
    files_before = stored_files(upload_dir)
    response = send_request(other, tokens=other_tokens)

    assert response.status_code == 409
    page = response.get_data(as_text=True)
    assert "that time was just taken" in page
    assert "Choose a time from our open slots" in page  # the time step, to choose again
    assert stored_files(upload_dir) == files_before
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(ConsultationRequest)) == 1
        assert db.session.scalar(select(func.count()).select_from(Appointment)) == 1
        assert db.session.scalar(select(func.count()).select_from(OutboxEmail)) == 2
