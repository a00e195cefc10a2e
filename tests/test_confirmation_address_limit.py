"""Request confirmations per email address (``REQUEST_CONFIRMATION_ADDRESS_RATE_LIMIT``):
anyone can type someone else's address into request after request, from many network
addresses, and the clinic would email that inbox each time. Past the limit only the
confirmation is held back: the request is stored, the clinic told, the confirmation page
shows it all, and its timeline says so for staff."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from booking.extensions import db
from booking.requests.events import EventKind, RequestEvent
from booking.requests.models import ConsultationRequest
from tests.support import (
    AuthActions,
    Staff,
    outbox_emails,
    post_request,
    running_redis,
    valid_answers,
)
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


def confirmations_of_three_requests(app: Flask) -> list[bool]:
    """Three requests with one address, each from a browser of its own: whether each one's
    page says its confirmation went. Every request is stored, and the clinic told of each."""
    pages = [
        send_from_a_new_browser(app, "victim@example.com", name)
        for name in ("First Sender", "Second Sender", "Third Sender")
    ]
    with app.app_context():
        assert len(db.session.scalars(select(ConsultationRequest)).all()) == 3
    assert len(outbox_emails(app, "new_request_staff")) == 3
    return [SENT in visible(page) for page in pages]


def test_with_the_limits_storage_away_the_limit_is_counted_in_memory(
    app_settings: dict[str, Any], request: pytest.FixtureRequest
) -> None:
    """Redis down: Flask-Limiter counts in each process's memory until it is back
    (RATELIMIT_IN_MEMORY_FALLBACK_ENABLED), and so does the limit per address: the
    confirmations go, and the limit still holds."""
    app_settings["RATELIMIT_STORAGE_URI"] = "redis://127.0.0.1:1/0"  # nothing listens there
    app = request.getfixturevalue("app")
    assert confirmations_of_three_requests(app) == [True, True, False]
    assert len(outbox_emails(app, "request_received")) == 2


@pytest.fixture
def refusing_redis(tmp_path: Path) -> Iterator[str]:
    """A real Redis that answers, and counts the limits per network address, but refuses
    every other key (its ACL): a storage that fails at the limit per email address alone,
    after the request's own limits were counted (as one going away at that moment would).
    Yields its URL."""
    acl = ["--user", "default", "off"]
    acl += ["--user", "limiter", "on", ">secret", "~LIMITS:LIMITER/127.0.0.1/*", "+@all"]
    with running_redis(tmp_path, *acl) as server:
        yield f"redis://limiter:secret@127.0.0.1:{server.port}/0"


def test_a_storage_failing_at_the_count_lets_every_confirmation_go(
    app_settings: dict[str, Any],
    request: pytest.FixtureRequest,
    refusing_redis: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The limit cannot be counted: each confirmation is treated as within it (logged), so
    the limit is never the reason a patient is not sent their request's receipt."""
    app_settings["RATELIMIT_STORAGE_URI"] = refusing_redis
    app = request.getfixturevalue("app")
    caplog.set_level(logging.WARNING, logger="booking.security")

    assert confirmations_of_three_requests(app) == [True, True, True]
    assert len(outbox_emails(app, "request_received")) == 3
    warnings = [r.getMessage() for r in caplog.records if r.name == "booking.security"]
    assert (
        warnings
        == ["the request-confirmation-address limit could not be counted; treated as within it"] * 3
    )
