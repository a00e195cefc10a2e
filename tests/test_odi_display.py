"""Staff see an ODI score only when it is valid, and each section's answer either way."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient

from tests.factories import make_request
from tests.support import AuthActions, Staff


def _record(app: Flask, client: FlaskClient, auth: AuthActions, odi: dict) -> str:
    with app.app_context():
        reference = make_request(odi_answers=odi).reference
    auth.login("coordinator")
    return client.get(f"/staff/requests/{reference}").get_data(as_text=True)


def test_one_answered_section_is_not_scored(
    app: Flask, client: FlaskClient, auth: AuthActions, staff: Staff
) -> None:
    page = _record(app, client, auth, {"walking": 5})
    assert "Not scored: 9 sections unanswered" in page
    assert "a score needs at least 8 of the 10 sections" in page
    assert "100.0%" not in page and "Extreme limitation" not in page
    # The answer given is still shown, section by section.
    assert "I am in bed most of the time" in page


def test_eight_answered_sections_are_scored_over_those_sections(
    app: Flask, client: FlaskClient, auth: AuthActions, staff: Staff
) -> None:
    odi = dict.fromkeys(
        ("pain_intensity", "personal_care", "lifting", "walking", "sitting", "standing"), 1
    ) | {"sleeping": 1, "social_life": 1}
    page = _record(app, client, auth, odi)
    assert "20.0%" in page and "8 of 10 sections answered" in page
    assert "Not scored" not in page


def test_the_highest_band_is_named_neutrally(
    app: Flask, client: FlaskClient, auth: AuthActions, staff: Staff
) -> None:
    odi = dict.fromkeys(
        ("pain_intensity", "personal_care", "lifting", "walking", "sitting", "standing"), 5
    ) | {"sleeping": 4, "social_life": 5, "travelling": 5}
    page = _record(app, client, auth, odi)
    assert "Extreme limitation" in page
    for judgement in ("Bed-bound", "exaggerating", "Crippling"):
        assert judgement not in page
