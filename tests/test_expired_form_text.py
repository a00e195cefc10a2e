"""A form refused as expired shows back the text that was written in it, to copy.

The expired-form page said "Nothing was saved. Please go back, reload the page": a staff member
whose session ended (or who signed in again in another tab) while writing a long note lost
it, and so did a patient whose form sat open overnight, unless the browser's Back kept it.
The page now shows what was written, read-only. Never a password, a code or a token, and
never for a form another site made the browser post (its text would appear on this site)."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from booking.extensions import db
from booking.requests.events import EventKind, RequestEvent
from tests.factories import make_request
from tests.support import AuthActions, Staff

NOTE = "Called twice, no answer.\nTry again after 4 pm & ask about <the MRI> from March."


def _reference(app: Flask) -> str:
    with app.app_context():
        return make_request().reference


def _notes(app: Flask) -> int:
    with app.app_context():
        return db.session.scalar(
            select(func.count())
            .select_from(RequestEvent)
            .where(RequestEvent.kind == EventKind.NOTE)
        )


def test_a_staff_note_refused_as_expired_is_shown_back_to_copy(
    app: Flask, client: FlaskClient, auth: AuthActions, staff: Staff
) -> None:
    reference = _reference(app)
    auth.login("coordinator")
    notes = _notes(app)
    response = client.post(
        f"/staff/requests/{reference}/notes",
        data={"note-csrf_token": "from-a-session-that-ended", "note-text": NOTE},
    )
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "This form has expired" in page and "Copy it before you leave this page" in page
    assert (
        "Called twice, no answer.\nTry again after 4 pm &amp; ask about &lt;the MRI&gt; "
        "from March.</textarea>" in page
    )
    assert "Back to the dashboard" in page  # the staff frame
    assert response.headers["Cache-Control"] == "no-store, private"
    assert _notes(app) == notes  # nothing was saved


def test_a_password_or_code_is_never_shown_back(client: FlaskClient) -> None:
    response = client.post(
        "/staff/login",
        data={"email": "a@example.com", "password": "correct horse battery staple"},
    )
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "correct horse" not in page and "What you wrote" not in page
    response = client.post(
        "/staff/login/code", data={"code": "123 456 789 012", "recovery_code": "ab cd ef gh ij"}
    )
    page = response.get_data(as_text=True)
    assert "123 456" not in page and "ab cd ef" not in page
    # A new password typed again, in a field named otherwise.
    response = client.post(
        "/staff/password/reset",
        data={"password": "correct horse battery staple", "confirm": "correct horse battery"},
    )
    assert response.status_code == 400
    assert "correct horse" not in response.get_data(as_text=True)


def test_text_posted_from_another_site_is_not_shown_on_this_one(client: FlaskClient) -> None:
    hostile = "Your appointment is cancelled. Call +1 555 0100 at once to keep it."
    for headers in ({"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
        response = client.post(
            "/info/treatments/feedback", data={"comment": hostile}, headers=headers
        )
        assert response.status_code == 400
        assert "Call +1 555" not in response.get_data(as_text=True)


def test_a_patients_text_is_shown_back_in_their_language(client: FlaskClient) -> None:
    client.get("/?lang=es")
    response = client.post(
        "/info/treatments/feedback",
        data={"useful": "no", "comment": "Falta explicar la fusión lumbar, por favor."},
        headers={"Sec-Fetch-Site": "same-origin"},
    )
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "Falta explicar la fusión lumbar, por favor.</textarea>" in page
    assert "Lo que escribió" in page and "emergency-notice" in page
    assert "What you wrote" not in page


def test_choices_and_short_values_are_not_shown_as_writing(client: FlaskClient) -> None:
    response = client.post(
        "/info/treatments/feedback",
        data={"useful": "no", "comment": "too long", "page": "treatments"},
    )
    assert response.status_code == 400
    assert "What you wrote" not in response.get_data(as_text=True)


def test_a_script_asking_for_json_gets_the_message_not_the_page(client: FlaskClient) -> None:
    response = client.post(
        "/info/treatments/feedback",
        data={"comment": "A comment with some words in it."},
        headers={"Accept": "application/json"},
    )
    assert response.status_code == 400 and response.get_json()["ok"] is False
