"""Request confirmations per email address (``REQUEST_CONFIRMATION_ADDRESS_RATE_LIMIT``):
anyone can type someone else's address into request after request, from many network
addresses, and the clinic would email that inbox each time. Past the limit only the
confirmation is held back: the request is stored, the clinic told, the confirmation page
shows it all, and its timeline says so for staff."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from booking.extensions import db
from booking.requests.events import EventKind, RequestEvent
from booking.requests.models import ConsultationRequest
from tests.support import AuthActions, Staff, outbox_emails, post_request, valid_answers
from tests.support import text as visible

HELD_BACK = "The confirmation email to the patient was held back"
SENT = "We have sent a confirmation to"
NOT_SENT = "We have not emailed a confirmation to"


@pytest.fixture
def app_settings(app_settings: dict[str, Any]) -> dict[str, Any]:
    app_settings["REQUEST_CONFIRMATION_ADDRESS_RATE_LIMIT"] = "2 per hour"
    return app_settings


def send_from_a_new_browser(app: Flask, email: str, name: str) -> str:
    """A request sent from a browser of its own (another person, another network address as
    far as the session goes): its confirmation page's text."""
    browser = app.test_client()
    sent = post_request(browser, valid_answers(email=email, full_name=name))
    assert sent.status_code == 303, sent.status_code
    page = browser.get(sent.location)
    assert page.status_code == 200
    return page.get_data(as_text=True)


def notes_of(app: Flask, name: str) -> list[str | None]:
    with app.app_context():
        consultation = db.session.scalars(
            select(ConsultationRequest).where(ConsultationRequest.reference.is_not(None))
        ).all()
        (wanted,) = [c for c in consultation if c.patient.full_name == name]
        return list(
            db.session.scalars(
                select(RequestEvent.body).where(
                    RequestEvent.request_id == wanted.id, RequestEvent.kind == EventKind.NOTE
                )
            )
        )


def test_past_the_limit_the_request_is_stored_and_only_its_confirmation_held_back(
    app: Flask, staff: Staff
) -> None:
    pages = [
        send_from_a_new_browser(app, address, name)
        for address, name in (
            ("victim@example.com", "First Sender"),
            ("Victim@Example.COM", "Second Sender"),  # the same inbox, typed otherwise
            ("victim@example.com", "Third Sender"),
        )
    ]
    with app.app_context():
        stored = db.session.scalars(select(ConsultationRequest)).all()
        references = {c.patient.full_name: c.reference for c in stored}
    assert len(references) == 3  # every request stored: none refused, none lost
    receipts = outbox_emails(app, "request_received")
    assert len(receipts) == 2
    assert len(outbox_emails(app, "new_request_staff")) == 3  # the clinic hears of each

    # The third patient's page shows everything, and says no email went.
    first, _second, third = (visible(page) for page in pages)
    assert SENT in first and NOT_SENT not in first
    assert NOT_SENT in third and SENT not in third
    assert references["Third Sender"] in third
    assert "See your request, add documents, change the time or cancel" in third

    # Its timeline says so for staff; the others' say nothing of it.
    assert any(HELD_BACK in (note or "") for note in notes_of(app, "Third Sender"))
    assert not any(HELD_BACK in (note or "") for note in notes_of(app, "First Sender"))
    coordinator = app.test_client()
    AuthActions(coordinator).login(email=staff.coordinator.email)
    record = coordinator.get(f"/staff/requests/{references['Third Sender']}")
    assert HELD_BACK in visible(record.get_data(as_text=True))


def test_the_limit_is_per_email_address(app: Flask) -> None:
    for name in ("First Sender", "Second Sender"):
        send_from_a_new_browser(app, "victim@example.com", name)
    page = send_from_a_new_browser(app, "someone.else@example.com", "Other Patient")
    assert SENT in visible(page)
    assert [e.recipient for e in outbox_emails(app, "request_received")][-1] == (
        "someone.else@example.com"
    )
