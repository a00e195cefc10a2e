"""An email withdrawn before it was sent leaves a line on the record's timeline: its outbox
row is deleted, and staff must still be able to tell the patient was never sent it, and why
(``booking.requests.withdrawals``)."""

from __future__ import annotations

import html

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from booking.audit.models import AuditEvent
from booking.audit.services import record
from booking.dashboard.services import confirm_request
from booking.extensions import db
from booking.notifications.models import OutboxEmail, OutboxStatus
from booking.notifications.services import withdraw_emails
from booking.requests import asks
from booking.requests.models import ConsultationRequest
from booking.staff.models import StaffUser
from tests.factories import confirmed_request, make_request, move_to_next_time, slot_two_days_ahead
from tests.support import AuthActions, Clinic, outbox_emails


@pytest.fixture
def coordinator_client(auth: AuthActions, clinic: Clinic) -> FlaskClient:
    auth.login("coordinator")
    return auth.client


def timeline(client: FlaskClient, reference: str) -> str:
    """The record's timeline as staff read it (entities unescaped)."""
    page = client.get(f"/staff/requests/{reference}").get_data(as_text=True)
    return html.unescape(page.split('id="timeline"')[1])


def withdrawal_rows(reference: str) -> list[AuditEvent]:
    return list(
        db.session.scalars(
            select(AuditEvent)
            .where(AuditEvent.action == "email_withdrawn", AuditEvent.target_id == reference)
            .order_by(AuditEvent.id)
        )
    )


def asked_then_confirmed(app: Flask, clinic: Clinic, reference: str | None = None) -> str:
    """A request (``reference``, or a new one) asked for information, then confirmed before
    the ask's email went: the confirmation withdraws it (``lifecycle.record_change``). Its
    reference."""
    with app.app_context():
        coordinator = db.session.get_one(StaffUser, clinic.coordinator.id)
        consultation = (
            make_request()
            if reference is None
            else db.session.scalars(
                select(ConsultationRequest).where(ConsultationRequest.reference == reference)
            ).one()
        )
        asks.ask_patient(consultation, coordinator, [], "Since when?")
        confirm_request(consultation, coordinator, slot_two_days_ahead(clinic))
        return consultation.reference


def test_a_confirmation_replaced_unsent_by_a_move_is_on_the_timeline(
    app: Flask, coordinator_client: FlaskClient, clinic: Clinic
) -> None:
    """Confirmed, then moved before the confirmation went: the move's email replaces it
    (``withdraw_calendar_emails``). The timeline says the confirmation was never sent."""
    request_id = confirmed_request(app, clinic)
    [confirmation] = outbox_emails(app, "request_update")
    move_to_next_time(app, clinic, request_id)
    with app.app_context():
        reference = db.session.get_one(ConsultationRequest, request_id).reference
        # (Told apart by its Message-ID: SQLite may give its id to a new row.)
        message_ids = db.session.scalars(select(OutboxEmail.message_id)).all()
        assert confirmation.message_id not in message_ids
        [row] = withdrawal_rows(reference)
        assert row.details == {
            "email": confirmation.id,
            "template": "request_update",
            "subject": f"Your appointment is confirmed ({reference})",
            "reason": "replaced",
        }

    text = timeline(coordinator_client, reference)
    assert (
        f"Email not sent (withdrawn): “Your appointment is confirmed ({reference})”"
        " — replaced by the email of a later change"
    ) in text
    # The email that replaced it is listed, waiting.
    assert text.count(f"“Your appointment is confirmed ({reference})”") == 2


def test_an_ask_closed_by_a_confirmation_shows_once(
    app: Flask, coordinator_client: FlaskClient, clinic: Clinic
) -> None:
    """The confirmation's audit row counts the ask's email it withdrew; the email's own row
    names it. The timeline shows it once, by name, not the count as well."""
    reference = asked_then_confirmed(app, clinic)
    with app.app_context():
        confirmed = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "request_confirmed")
        ).one()
        assert confirmed.details["emails_withdrawn"] == 1
        [row] = withdrawal_rows(reference)
        assert row.details["reason"] == "ask_closed"

    text = timeline(coordinator_client, reference)
    line = f"Email not sent (withdrawn): “We need something from you ({reference})”"
    assert text.count(line) == 1
    assert "the request for information ended with a change of the request" in text
    assert "withdrawn by this change" not in text


def test_an_older_change_that_kept_only_a_count_still_shows_it(
    app: Flask, coordinator_client: FlaskClient, clinic: Clinic
) -> None:
    """A change audited before withdrawals were itemised kept only how many emails it
    withdrew: the timeline still shows that, and later withdrawals by name beside it."""
    with app.app_context():
        reference = make_request().reference
        record(
            "request_rescheduled",
            target_type="request",
            target_id=reference,
            details={"emails_withdrawn": 2},
        )
        record("request_viewed", target_type="request", target_id=reference)
        db.session.commit()
    text = timeline(coordinator_client, reference)
    assert "2 emails not sent (withdrawn by this change)" in text

    asked_then_confirmed(app, clinic, reference)
    text = timeline(coordinator_client, reference)
    assert "2 emails not sent (withdrawn by this change)" in text
    assert f"Email not sent (withdrawn): “We need something from you ({reference})”" in text
    assert "1 email not sent" not in text


def test_an_email_withdrawn_while_being_sent_says_it_may_have_gone(
    app: Flask, coordinator_client: FlaskClient, clinic: Clinic
) -> None:
    """One a worker had claimed is past stopping if already handed to the mail server: the
    line says so, and the email's own line (sent, or gone) tells the rest."""
    request_id = confirmed_request(app, clinic)
    with app.app_context():
        email = db.session.scalars(
            select(OutboxEmail).where(OutboxEmail.request_id == request_id)
        ).first()
        assert email is not None
        email.status = OutboxStatus.SENDING
        db.session.commit()
        assert withdraw_emails([email.id], reason="outdated") == 1
        db.session.commit()
        reference = db.session.get_one(ConsultationRequest, request_id).reference
        [row] = withdrawal_rows(reference)
        assert row.details["while_sending"] is True
    text = timeline(coordinator_client, reference)
    assert "Email withdrawn while it was being sent (it went out only if listed as sent)" in text
