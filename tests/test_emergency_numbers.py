"""The emergency and out-of-hours numbers follow the reader's language or the clinic's region,
with one wording on every page and in every patient email (booking/requests/triage.py)."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from booking.extensions import db
from booking.notifications.models import OutboxEmail
from tests.support import form_tokens, post_request, valid_answers


@pytest.fixture
def app_settings(app_settings: dict[str, Any]) -> dict[str, Any]:
    # A clinic in England that also serves Spanish readers from Latin America.
    app_settings.update(
        EMERGENCY_NUMBER="999", EMERGENCY_NUMBERS={"es": "911"}, OUT_OF_HOURS_NUMBER="111"
    )
    return app_settings


@pytest.mark.parametrize(
    ("lang", "call", "out_of_hours"),
    [
        ("en", "Call 999 or go to the nearest emergency department now.", "on 111"),
        ("es", "Llame al 911 o vaya ahora mismo al servicio de urgencias más cercano.", "111"),
    ],
)
@pytest.mark.parametrize("path", ["/", "/info/treatments", "/request/start"])
def test_every_page_gives_the_readers_numbers(
    client: FlaskClient, lang: str, call: str, out_of_hours: str, path: str
) -> None:
    page = client.get(path, query_string={"lang": lang}).get_data(as_text=True)
    assert call in page
    assert out_of_hours in page
    assert ("999" in page) == (lang == "en")


def test_the_red_flag_advice_calls_the_readers_number(client: FlaskClient) -> None:
    # The advice shown the moment an emergency answer is ticked (and on the stop page).
    client.get("/?lang=es")
    page = client.get("/request/start").get_data(as_text=True)
    assert 'href="tel:911"' in page and 'href="tel:999"' not in page


def test_the_spanish_receipt_gives_the_spanish_readers_number(
    app: Flask, client: FlaskClient
) -> None:
    client.get("/?lang=es")
    post_request(client, valid_answers(), tokens=form_tokens(client))
    with app.app_context():
        patient, _staff = db.session.scalars(select(OutboxEmail).order_by(OutboxEmail.id)).all()
    for body in (patient.body_text, patient.body_html):
        assert "Llame al 911" in body and "999" not in body
        assert "111" in body


def test_without_an_out_of_hours_line_the_patient_is_told_whom_to_call(
    app: Flask, client: FlaskClient
) -> None:
    assert "out-of-hours service on 111" in client.get("/").get_data(as_text=True)
    app.config["OUT_OF_HOURS_NUMBER"] = ""
    page = client.get("/").get_data(as_text=True)
    assert "call your family doctor or the out-of-hours service" in page
