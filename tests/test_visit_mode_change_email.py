"""A move that changes how the visit takes place (in person, by video, by phone) says so first
in the patient's email, not only in its "Where" line: a patient who expected a video call
must not stay home, nor one who expected to come in travel for nothing."""

from __future__ import annotations

import pytest
from flask import Flask

from booking.extensions import db
from booking.notifications.models import OutboxEmail
from booking.requests import emails
from booking.requests.models import ConsultationRequest
from booking.scheduling.models import VisitMode
from tests.factories import confirmed_request, make_request, move_to_next_time, set_visit_mode
from tests.support import Clinic, deliver_waiting_emails, outbox_emails

NOW_IN_PERSON = "This visit is now in person at Main clinic, Friedrichstr. 1, Berlin, not by video."
NOW_IN_PERSON_HTML = (
    "This visit is now in person at <bdi>Main clinic</bdi>, Friedrichstr. 1, Berlin, not by video."
)
NOW_BY_VIDEO = "This visit is now by video, not in person: you do not come to the clinic."
NOW_BY_PHONE = "This visit is now by phone, not by video."


def top(text: str) -> str:
    """An email's text before the appointment's details."""
    return text.split("Your reference")[0]


def test_video_to_in_person_says_so_first(app: Flask, clinic: Clinic) -> None:
    set_visit_mode(app, clinic, VisitMode.VIDEO)
    request_id = confirmed_request(app, clinic)
    deliver_waiting_emails(app)  # the confirmation went: else the move confirms instead
    move_to_next_time(app, clinic, request_id, VisitMode.IN_PERSON)
    email = outbox_emails(app, "request_update")[-1]
    assert NOW_IN_PERSON in top(email.body_text)
    assert NOW_IN_PERSON_HTML in top(email.body_html)
    assert email.previous_mode == VisitMode.VIDEO.value


def test_in_person_to_video_says_the_patient_does_not_come(app: Flask, clinic: Clinic) -> None:
    request_id = confirmed_request(app, clinic)
    deliver_waiting_emails(app)  # the confirmation went: else the move confirms instead
    move_to_next_time(app, clinic, request_id, VisitMode.VIDEO)
    email = outbox_emails(app, "request_update")[-1]
    assert NOW_BY_VIDEO in top(email.body_text)
    assert NOW_BY_VIDEO in top(email.body_html)


def test_video_to_phone_says_so(app: Flask, clinic: Clinic) -> None:
    set_visit_mode(app, clinic, VisitMode.VIDEO)
    request_id = confirmed_request(app, clinic)
    deliver_waiting_emails(app)  # the confirmation went: else the move confirms instead
    move_to_next_time(app, clinic, request_id, VisitMode.PHONE)
    email = outbox_emails(app, "request_update")[-1]
    assert NOW_BY_PHONE in top(email.body_text) and NOW_BY_PHONE in top(email.body_html)


def test_a_move_of_the_time_alone_says_nothing_of_the_mode(app: Flask, clinic: Clinic) -> None:
    set_visit_mode(app, clinic, VisitMode.VIDEO)
    request_id = confirmed_request(app, clinic)
    deliver_waiting_emails(app)  # the confirmation went: else the move confirms instead
    move_to_next_time(app, clinic, request_id, None)
    email = outbox_emails(app, "request_update")[-1]
    assert "Your appointment has changed." in email.body_text
    assert "This visit is now" not in email.body_text
    assert "This visit is now" not in email.body_html
    assert email.previous_mode is None


def test_a_newer_move_that_replaces_the_email_unsent_still_says_it(
    app: Flask, clinic: Clinic
) -> None:
    """Moved from video to in person, then moved again before that email went: the patient
    never learned it is in person now, and the email that replaces it says so."""
    set_visit_mode(app, clinic, VisitMode.VIDEO)
    request_id = confirmed_request(app, clinic)
    deliver_waiting_emails(app)
    move_to_next_time(app, clinic, request_id, VisitMode.IN_PERSON)
    move_to_next_time(app, clinic, request_id, None)
    email = outbox_emails(app, "request_update")[-1]
    assert email.withdrawn_at is None
    assert NOW_IN_PERSON in top(email.body_text)


def test_back_to_the_mode_the_patient_was_told_says_nothing(app: Flask, clinic: Clinic) -> None:
    """Moved to in person and back to video before the first email went: for the patient
    nothing changed how they take part."""
    set_visit_mode(app, clinic, VisitMode.VIDEO)
    request_id = confirmed_request(app, clinic)
    deliver_waiting_emails(app)
    move_to_next_time(app, clinic, request_id, VisitMode.IN_PERSON)
    move_to_next_time(app, clinic, request_id, VisitMode.VIDEO)
    email = outbox_emails(app, "request_update")[-1]
    assert "This visit is now" not in email.body_text


def reference_of(app: Flask, request_id: int) -> str:
    with app.app_context():
        return db.session.get_one(ConsultationRequest, request_id).reference


@pytest.mark.parametrize(
    ("before", "after", "said"),
    [
        (VisitMode.VIDEO, VisitMode.IN_PERSON, "now in person"),
        (VisitMode.IN_PERSON, VisitMode.VIDEO, "now by video"),
        (VisitMode.VIDEO, VisitMode.PHONE, "now by phone"),
    ],
)
def test_the_subject_says_how_the_visit_now_takes_place(
    app: Flask, clinic: Clinic, before: VisitMode, after: VisitMode, said: str
) -> None:
    """A patient who only glances at their inbox learns it too: the subject says it."""
    set_visit_mode(app, clinic, before)
    request_id = confirmed_request(app, clinic)
    deliver_waiting_emails(app)  # the confirmation went: else the move confirms instead
    move_to_next_time(app, clinic, request_id, after)
    email = outbox_emails(app, "request_update")[-1]
    reference = reference_of(app, request_id)
    assert email.subject == f"Your appointment has changed: {said} ({reference})"


def test_a_move_of_the_time_alone_keeps_its_subject(app: Flask, clinic: Clinic) -> None:
    set_visit_mode(app, clinic, VisitMode.VIDEO)
    request_id = confirmed_request(app, clinic)
    deliver_waiting_emails(app)  # the confirmation went: else the move confirms instead
    move_to_next_time(app, clinic, request_id, None)
    email = outbox_emails(app, "request_update")[-1]
    assert email.subject == f"Your appointment has changed ({reference_of(app, request_id)})"


def test_a_newer_move_that_replaces_the_email_unsent_keeps_the_subject(
    app: Flask, clinic: Clinic
) -> None:
    """The patient never learned the visit is in person now: the replacing email's subject
    says it, though its own move changed only the time."""
    set_visit_mode(app, clinic, VisitMode.VIDEO)
    request_id = confirmed_request(app, clinic)
    deliver_waiting_emails(app)
    move_to_next_time(app, clinic, request_id, VisitMode.IN_PERSON)
    move_to_next_time(app, clinic, request_id, None)
    email = outbox_emails(app, "request_update")[-1]
    reference = reference_of(app, request_id)
    assert email.subject == f"Your appointment has changed: now in person ({reference})"


def test_back_to_the_mode_the_patient_was_told_keeps_the_plain_subject(
    app: Flask, clinic: Clinic
) -> None:
    set_visit_mode(app, clinic, VisitMode.VIDEO)
    request_id = confirmed_request(app, clinic)
    deliver_waiting_emails(app)
    move_to_next_time(app, clinic, request_id, VisitMode.IN_PERSON)
    move_to_next_time(app, clinic, request_id, VisitMode.VIDEO)
    email = outbox_emails(app, "request_update")[-1]
    assert email.subject == f"Your appointment has changed ({reference_of(app, request_id)})"


@pytest.mark.parametrize("held", [False, True])
@pytest.mark.parametrize("mode", list(VisitMode))
def test_a_move_subject_naming_the_mode_is_still_read_as_a_move(
    app: Flask, held: bool, mode: VisitMode
) -> None:
    """The outbox row keeps no kind: an email written again (a corrected address) is
    told a move by its subject (``emails.update_kind``)."""
    with app.app_context():
        consultation = make_request()
        subject = emails._mode_changed_subjects(consultation, held)[mode]
        email = OutboxEmail(template="request_update", subject=subject)
        assert emails.update_kind(consultation, email) == "rescheduled"
