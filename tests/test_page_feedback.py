"""A reader's "was this page useful / report a problem" reaches the clinic: stored, listed for
admins only, and announced to staff by an email that carries no feedback."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from booking.content.reviews import REVIEWS
from booking.extensions import db
from booking.feedback.models import PageFeedback
from booking.notifications.models import OutboxEmail
from tests.support import AuthActions, Staff, csrf_token


def _send(client: FlaskClient, path: str, **fields: str) -> Any:
    """Post the feedback form of the page at ``path``, as a reader would."""
    action = "/info/home/feedback" if path == "/" else f"{path}/feedback"
    return client.post(action, data={"csrf_token": csrf_token(client, path), **fields})


def test_feedback_is_stored_and_staff_are_told_only_that_it_arrived(
    app: Flask, client: FlaskClient
) -> None:
    client.get("/?lang=es")
    response = _send(client, "/info/treatments", useful="no", comment="Falta la fusión lumbar.")
    assert response.status_code == 303
    assert response.headers["Location"].startswith("/info/treatments")
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Gracias. Su opinión se ha enviado a la clínica." in page
    with app.app_context():
        feedback = db.session.scalars(select(PageFeedback)).one()
        assert (feedback.page, feedback.useful, feedback.locale) == ("treatments", False, "es")
        assert feedback.comment == "Falta la fusión lumbar."
        # Encrypted at rest, like a message.
        raw = db.session.execute(db.text("SELECT comment FROM page_feedback")).scalar_one()
        assert "fusión" not in raw
        email = db.session.scalars(select(OutboxEmail)).one()
    assert email.recipient == "coordinators@example.com"
    assert "/staff/admin/feedback" in email.body_text
    assert "fusión" not in email.body_text + email.body_html + email.subject


def test_empty_feedback_is_refused_with_a_message(app: Flask, client: FlaskClient) -> None:
    response = _send(client, "/info/conditions", comment="   ")
    assert response.status_code == 400
    assert "Please answer the question or write a comment." in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalars(select(PageFeedback)).all() == []


def test_feedback_without_the_forms_token_is_refused(app: Flask, client: FlaskClient) -> None:
    assert client.post("/info/prepare/feedback", data={"useful": "yes"}).status_code == 400
    assert client.post("/info/nowhere/feedback", data={"useful": "yes"}).status_code in (400, 404)
    with app.app_context():
        assert db.session.scalars(select(PageFeedback)).all() == []


@pytest.fixture
def app_settings(app_settings: dict[str, Any]) -> dict[str, Any]:
    app_settings.update(
        FEEDBACK_RATE_LIMIT="2 per minute",
        CONTENT_AUTHOR="Ana Writer, patient information editor",
        CONTENT_REVIEWER="Dr Bo Spine, consultant spine surgeon",
    )
    return app_settings


def test_feedback_is_rate_limited(client: FlaskClient) -> None:
    statuses = [_send(client, "/info/evaluation", useful="yes").status_code for _ in range(3)]
    assert statuses == [303, 303, 429]


def test_only_admins_read_the_feedback(
    app: Flask, client: FlaskClient, auth: AuthActions, staff: Staff
) -> None:
    _send(client, "/info/prepare", useful="yes", comment="Clear, thank you")
    auth.login("coordinator")
    assert client.get("/staff/admin/feedback").status_code == 403
    auth.logout()
    auth.login("admin")
    page = client.get("/staff/admin/feedback").get_data(as_text=True)
    assert "Clear, thank you" in page and "prepare" in page


def test_every_information_page_names_its_authors_sources_and_review_dates(
    client: FlaskClient,
) -> None:
    for path in ("/", "/info/evaluation", "/info/conditions", "/info/treatments", "/info/prepare"):
        page = client.get(path).get_data(as_text=True)
        for text in (
            "Written by",
            "Ana Writer, patient information editor",
            "Checked by a doctor",
            "Dr Bo Spine, consultant spine surgeon",
            "Last reviewed",
            "December 5, 2026",
            "Next review due",
            "https://www.nice.org.uk/guidance/ng59",
        ):
            assert text in page, (path, text)
        assert 'name="csrf_token"' in page and "Was this page useful?" in page


def test_review_dates_are_real_and_the_next_is_within_a_year() -> None:
    """A page cannot claim a review that has not happened yet (the date is when its text was
    last checked), and is due again within a year of it."""
    for page, review in REVIEWS.items():
        assert review.last_reviewed <= date.today(), page
        assert review.last_reviewed < review.next_review, page
        assert review.next_review - review.last_reviewed <= timedelta(days=366), page
