"""The emergency and out-of-hours numbers follow the reader's language or the clinic's region,
with one wording on every page and in every patient email (booking/requests/triage.py)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, render_template
from flask.testing import FlaskClient
from flask_babel import force_locale
from markupsafe import escape
from sqlalchemy import select

from booking.extensions import db
from booking.notifications.models import OutboxEmail
from booking.requests import triage
from booking.requests.models import ConsultationRequest
from tests.factories import confirmed_request
from tests.support import form_tokens, patient_email_values, post_request, valid_answers

# The English emergency number as a number in the text: not three nines inside a link's or a
# form's random token, which a page or an email carries (a test failed so once in a while).
UK_EMERGENCY = re.compile(r"(?<![\w/=?&%-])999(?![\w-])")

EMAIL_TEMPLATES = Path(__file__).parents[1] / "booking" / "templates" / "email"
# The emails to the clinic's staff. Every other email template (but the shared parts, "_*")
# goes to a patient: a new one is a patient's, and must carry the emergency wording, unless
# it is named here.
STAFF_EMAILS = frozenset(
    {
        "access_alert",
        "callback_staff",
        "erasure_staff",
        "escalation_staff",
        "escalation_staff_cancelled",
        "followup_worse_staff",
        "message_waiting_staff",
        "new_request_staff",
        "page_feedback_staff",
        "patient_action_staff",
        "staff_email_changed",
        "staff_password_reset",
        "staff_two_factor_reset",
        "triage_raised_staff",
    }
)
PATIENT_EMAILS = sorted({path.stem for path in EMAIL_TEMPLATES.glob("[!_]*.*")} - STAFF_EMAILS)
# The values a patient email needs beyond every patient email's (``patient_email_values``).
OWN_VALUES: dict[str, dict[str, Any]] = {
    "email_change_confirm": {"hours": 24, "confirm_url": "https://clinic.example/confirm"},
}


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
    assert bool(UK_EMERGENCY.search(page)) == (lang == "en")


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
        assert "Llame al 911" in body and not UK_EMERGENCY.search(body)
        assert "111" in body


def test_without_an_out_of_hours_line_the_patient_is_told_whom_to_call(
    app: Flask, client: FlaskClient
) -> None:
    assert "out-of-hours service on 111" in client.get("/").get_data(as_text=True)
    app.config["OUT_OF_HOURS_NUMBER"] = ""
    page = client.get("/").get_data(as_text=True)
    assert "call your family doctor or the out-of-hours service" in page


def test_the_staff_emails_named_exist() -> None:
    # A staff email renamed or removed must leave the list: a patient's email of its old
    # name would be let off the emergency wording.
    existing = {path.stem for path in EMAIL_TEMPLATES.glob("[!_]*.txt")}
    assert existing >= STAFF_EMAILS
    assert "request_received" in PATIENT_EMAILS and "draft_resume" in PATIENT_EMAILS


@pytest.mark.parametrize("lang", ["en", "es"])
@pytest.mark.parametrize("template", PATIENT_EMAILS)
def test_every_patient_email_has_the_emergency_wording_once(
    app: Flask, clinic: Any, template: str, lang: str
) -> None:
    """docs/clinical-content.md: every patient email carries the one emergency wording, in
    the email's language with that language's number, once (email/_patient.txt and
    _patient.html print it; an email extending _layout.html alone goes without)."""
    request_id = confirmed_request(app, clinic, locale=lang)
    with app.test_request_context(), force_locale(lang):
        context = patient_email_values(db.session.get(ConsultationRequest, request_id))
        context.update(OWN_VALUES.get(template, {}))
        wording = triage.emergency_context()
        bodies = {
            "text": render_template(f"email/{template}.txt", **context),
            "html": render_template(f"email/{template}.html", **context),
        }
    assert ("Llame al 911" in wording["emergency_call"]) == (lang == "es")
    for part, body in bodies.items():
        for name in ("emergency_signs", "emergency_call", "out_of_hours_advice"):
            text = wording[name] if part == "text" else str(escape(wording[name]))
            assert body.count(text) == 1, (part, name)
        assert bool(UK_EMERGENCY.search(body)) == (lang == "en"), part
