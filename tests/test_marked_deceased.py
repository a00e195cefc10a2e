"""Marked deceased, a patient is sent nothing more: not even what was written to them
before and is still waiting in the outbox. The clinic's own emails still go."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from booking.audit.models import AuditEvent
from booking.extensions import db
from booking.notifications.models import OutboxEmail, OutboxStatus
from booking.outcomes.services import mark_deceased
from tests.factories import make_request, make_staff
from tests.smtp import SmtpServer
from tests.support import send_each_waiting_email

PATIENT = "erika.mustermann@example.com"


@pytest.fixture
def app_settings(mail_settings: dict[str, Any]) -> dict[str, Any]:
    return mail_settings


def _templates() -> list[str]:
    return sorted(db.session.scalars(select(OutboxEmail.template)))


def test_marking_deceased_withdraws_the_patients_emails_still_waiting(
    app: Flask, smtp: SmtpServer
) -> None:
    """The receipt of the request (and a message waiting, a receipt of what they sent:
    every email to the patient) waits for the mail server; staff mark the patient
    deceased: it never goes. The clinic's notice of the new request still does."""
    from booking.messages.emails import message_for_patient
    from booking.requests.emails import message_received

    with app.app_context():
        coordinator = make_staff("coordinator", "coord@example.com")
        consultation = make_request()
        other = make_request(email="otto@example.com", full_name="Otto Other")
        message_for_patient(consultation)
        message_received(consultation, datetime.now(UTC), 0)
        db.session.commit()
        waiting = {e.template for e in consultation.emails if e.recipient == PATIENT}
        assert waiting == {"request_received", "message_waiting", "message_received"}
        mark_deceased(consultation, coordinator)
        assert _templates() == sorted(
            ["new_request_staff", "new_request_staff", "request_received"]
        )
        [event] = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "patient_marked_deceased")
        ).all()
        assert event.details == {"emails_withdrawn": 3}
        send_each_waiting_email()
        assert other.patient.email == "otto@example.com"
    recipients = sorted(r for message in smtp.received for r in message.rcpt_tos)
    assert PATIENT not in recipients
    assert "otto@example.com" in recipients
    assert len(smtp.received) == 3  # both clinic notices and the other patient's receipt


def test_an_email_written_as_the_patient_was_marked_is_dropped_at_delivery(
    app: Flask, smtp: SmtpServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A change that wrote an email to the patient while staff marked them deceased (its
    transaction committed after the withdrawal) leaves it in the outbox: the worker reads
    the patient before sending and drops it, saying why in the log."""
    with app.app_context():
        consultation = make_request()
        # As a concurrent transaction would leave it: marked, the email still waiting.
        consultation.patient.deceased_at = datetime.now(UTC)
        db.session.commit()
        with caplog.at_level(logging.INFO, logger="booking.notifications.services"):
            send_each_waiting_email()
        assert _templates() == ["new_request_staff"]
        [clinic] = db.session.scalars(select(OutboxEmail)).all()
        assert clinic.status == OutboxStatus.SENT
    assert [r for message in smtp.received for r in message.rcpt_tos] == [clinic.recipient]
    assert "(request_received) withdrawn at delivery: patient marked deceased" in caplog.text
