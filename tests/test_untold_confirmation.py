"""A move of an appointment whose confirmation email has not gone yet: that email is withdrawn
(``withdraw_calendar_emails``), so the patient was never told the appointment is confirmed,
nor its time or how it takes place. They are sent the confirmation as the appointment now is,
never a move from a "previous" time or way they never heard of
(``emails.confirmation_untold``)."""

from __future__ import annotations

from flask import Flask

from booking.extensions import db
from booking.requests.models import ConsultationRequest
from booking.scheduling.models import VisitMode
from tests.factories import confirmed_request, move_to_next_time, set_visit_mode
from tests.support import Clinic, deliver_waiting_emails, outbox_emails


def reference_of(app: Flask, request_id: int) -> str:
    with app.app_context():
        return db.session.get_one(ConsultationRequest, request_id).reference


def test_moved_before_the_confirmation_went_the_patient_is_sent_the_confirmation(
    app: Flask, clinic: Clinic
) -> None:
    request_id = confirmed_request(app, clinic)
    move_to_next_time(app, clinic, request_id)
    reference = reference_of(app, request_id)
    [email] = outbox_emails(app, "request_update")
    assert email.subject == f"Your appointment is confirmed ({reference})"
    assert "Your appointment is confirmed." in email.body_text
    assert "Previous time" not in email.body_text
    assert "Previous time" not in email.body_html
    assert email.previous_starts_at is None


def test_nor_a_way_of_taking_part_the_patient_was_never_told(app: Flask, clinic: Clinic) -> None:
    """Confirmed by video, moved to in person before that went: the patient never knew it
    was by video."""
    set_visit_mode(app, clinic, VisitMode.VIDEO)
    request_id = confirmed_request(app, clinic)
    move_to_next_time(app, clinic, request_id, VisitMode.IN_PERSON)
    [email] = outbox_emails(app, "request_update")
    assert "This visit is now" not in email.body_text
    assert "not by video" not in email.body_html
    assert email.previous_mode is None
    assert email.subject == f"Your appointment is confirmed ({reference_of(app, request_id)})"


def test_moved_twice_before_it_went_it_is_still_the_confirmation(
    app: Flask, clinic: Clinic
) -> None:
    """The second move finds the first's email (a confirmation) waiting: the patient was
    told no time yet, and reads none as "previous"."""
    request_id = confirmed_request(app, clinic)
    move_to_next_time(app, clinic, request_id)
    move_to_next_time(app, clinic, request_id)
    [email] = outbox_emails(app, "request_update")
    assert email.subject == f"Your appointment is confirmed ({reference_of(app, request_id)})"
    assert "Previous time" not in email.body_text


def test_moved_after_the_confirmation_went_it_is_a_move(app: Flask, clinic: Clinic) -> None:
    request_id = confirmed_request(app, clinic)
    deliver_waiting_emails(app)
    move_to_next_time(app, clinic, request_id)
    email = outbox_emails(app, "request_update")[-1]
    assert email.subject == f"Your appointment has changed ({reference_of(app, request_id)})"
    assert "Previous time, no longer kept" in email.body_text
