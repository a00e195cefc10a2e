"""Single-line fields refuse control characters (line breaks, other C0 and C1 controls, DEL)
and text-direction overrides, with a message on the field; multi-line fields keep their line
breaks and tabs but refuse the rest. One rule for every form (``CleanTextMeta``): the patient's
request steps and the staff forms alike."""

from __future__ import annotations

import io
from datetime import date
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from booking.documents.models import Document
from booking.extensions import db
from booking.notifications.models import OutboxEmail
from booking.requests.events import EventKind, RequestEvent
from booking.requests.models import ConsultationRequest, MedicalHistory, Patient
from booking.scheduling.models import Location
from booking.staff.models import StaffUser
from tests.factories import make_request
from tests.support import (
    AuthActions,
    Staff,
    _clinic_today,
    csrf_token,
    field_error,
    pdf_bytes,
    post_request,
    stored_files,
    valid_answers,
)
from tests.support import text as visible

SINGLE_LINE = "Please remove the line breaks or invisible characters."
MULTI_LINE = "Please remove the invisible characters"


def count(app: Flask, model: type) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model)) or 0


def assert_no_request_stored(app: Flask) -> None:
    for model in (ConsultationRequest, Patient, MedicalHistory, OutboxEmail):
        assert count(app, model) == 0, model.__name__
    assert stored_files(Path(app.config["UPLOAD_DIR"])) == []


def stored_request(app: Flask) -> tuple[Patient, MedicalHistory]:
    with app.app_context():
        consultation = db.session.scalars(select(ConsultationRequest)).one()
        patient, medical = consultation.patient, consultation.history
        db.session.expunge_all()
        return patient, medical


# The patient's request ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["Erika\r\nBcc: all@example.com", "Erika\nMustermann", "Erika\rMustermann"],
    ids=["crlf-header", "lf", "cr"],
)
def test_a_name_with_line_breaks_is_refused_on_its_field_and_nothing_is_stored(
    app: Flask, client: FlaskClient, name: str
) -> None:
    response = post_request(
        client, valid_answers(full_name=name), files=[(pdf_bytes(), "mri-report.pdf")]
    )
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert SINGLE_LINE in field_error(page, "full_name")
    assert SINGLE_LINE in visible(page[page.index('id="error-summary"') :])
    assert_no_request_stored(app)


SINGLE_LINE_VALUES = {
    "name-right-to-left-override": ("full_name", "Erika \u202eDCBA"),
    "name-left-to-right-embedding": ("full_name", "\u202aErika Mustermann"),
    "name-isolate": ("full_name", "Erika \u2066Mustermann\u2069"),
    "name-c1-control": ("full_name", "Erika\x9b2J Mustermann"),
    "name-del": ("full_name", "Erika\x7f Mustermann"),
    "name-line-separator": ("full_name", "Erika\u2028Mustermann"),
    "email-line-feed": ("email", "erika@example.com\nBcc: all@example.com"),
    "email-next-line": ("email", "erika@example.com\x85"),
    "phone-nul": ("phone", "+49 30 901820\x00"),
    "imaging-when-escape": ("imaging_when", "MRI in \x1b[31mMarch"),
    "imaging-when-override": ("imaging_when", "MRI in \u202ehcraM"),
    "guardian-name-isolate": ("guardian_name", "Max \u2067Mustermann\u2069"),
    "other-diagnosis-override": ("diagnosis_other", "Scoliosis \u202eevres"),
    "document-description-override": ("documents-0-description", "MRI \u202etroper"),
}


@pytest.mark.parametrize(
    ("field", "value"), SINGLE_LINE_VALUES.values(), ids=SINGLE_LINE_VALUES.keys()
)
def test_control_and_direction_characters_in_a_single_line_field_are_refused(
    app: Flask, client: FlaskClient, field: str, value: str
) -> None:
    document = (io.BytesIO(pdf_bytes()), "mri-report.pdf")
    response = post_request(client, valid_answers(**{field: value, "documents-0-file": document}))
    assert response.status_code == 422
    # A document's description is the documents step's "description" field.
    field_id = "description" if field == "documents-0-description" else field
    assert SINGLE_LINE in field_error(response.get_data(as_text=True), field_id)
    assert_no_request_stored(app)


def test_multi_line_answers_keep_their_line_breaks_and_tabs(
    app: Flask, client: FlaskClient
) -> None:
    history = "Office work.\r\n\tSitting most of the day.\nStanding desk since May."
    medications = "Ibuprofen 400 mg\r\nPantoprazole 20 mg"
    response = post_request(client, valid_answers(other_history=history, medications=medications))
    assert response.status_code == 303
    _patient, medical = stored_request(app)
    # Each line break as one character (browsers send CR LF and count one: the box's limit).
    assert medical.other_history == history.replace("\r\n", "\n")
    assert medical.medications == medications.replace("\r\n", "\n")


MULTI_LINE_VALUES = {
    "override": ("medications", "Ibuprofen\r\n\u202e400 mg"),
    "isolate": ("other_history", "Office work.\n\u2067Sitting\u2069"),
    "nul": ("allergies", "Penicillin\x00"),
    "form-feed": ("other_history", "Page one\x0cpage two"),
    "c1-control": ("surgery_details", "L4/L5 fusion\x9d 2019"),
}


@pytest.mark.parametrize(
    ("field", "value"), MULTI_LINE_VALUES.values(), ids=MULTI_LINE_VALUES.keys()
)
def test_other_controls_and_direction_overrides_in_a_multi_line_field_are_refused(
    app: Flask, client: FlaskClient, field: str, value: str
) -> None:
    overrides = {field: value}
    if field == "surgery_details":
        overrides["treatments"] = ["spine_surgery"]
    response = post_request(client, valid_answers(**overrides))
    assert response.status_code == 422
    assert MULTI_LINE in field_error(response.get_data(as_text=True), field)
    assert_no_request_stored(app)


def test_a_pasted_tab_in_a_single_line_field_becomes_a_space(
    app: Flask, client: FlaskClient
) -> None:
    response = post_request(client, valid_answers(full_name="Erika\tMustermann"))
    assert response.status_code == 303
    patient, _medical = stored_request(app)
    assert patient.full_name == "Erika Mustermann"


def test_right_to_left_text_with_direction_marks_is_kept(app: Flask, client: FlaskClient) -> None:
    """U+200F (and U+200E) only set the direction of neutral characters beside them: right-to-
    left text copied from other applications carries them, so they are not refused."""
    name = "\u05d3\u05d5\u05d3 \u05db\u05d4\u05df\u200f (David Cohen)"
    response = post_request(client, valid_answers(full_name=name))
    assert response.status_code == 303
    patient, _medical = stored_request(app)
    assert patient.full_name == name


def test_line_breaks_alone_are_an_empty_answer(app: Flask, client: FlaskClient) -> None:
    response = post_request(client, valid_answers(full_name="\r\n", imaging_when="\r\n"))
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert field_error(page, "full_name") == "Error: Please enter your full name."
    assert 'id="imaging_when-error"' not in page  # optional, and nothing was given
    assert_no_request_stored(app)


# Nothing visible: white space with zero-width and other format characters (category Cf).
INVISIBLE = " \u200b\u2060\ufeff\u00ad "


def a_childs_birth_date() -> str:
    """1 January ten years back from the clinic's year (the form counts the age on the
    clinic's day, not the machine's): ten years old, under 18, so a guardian is asked for."""
    return date(_clinic_today().year - 10, 1, 1).isoformat()


INVISIBLE_REQUIRED = {
    "guardian-of-a-minor": (
        {"date_of_birth": a_childs_birth_date(), "guardian_name": INVISIBLE},
        "guardian_name",
        "please give a parent or guardian's name.",
    ),
    "other-diagnosis": (
        {"diagnoses": ["other"], "diagnosis_other": INVISIBLE},
        "diagnosis_other",
        "Please tell us the other diagnosis.",
    ),
    # Multi-line, but asked for in the same way: text of nothing visible is no answer either.
    "surgery-details": (
        {"treatments": ["spine_surgery"], "surgery_details": INVISIBLE},
        "surgery_details",
        "Please tell us about your previous spine surgery.",
    ),
}


@pytest.mark.parametrize(
    ("overrides", "field", "message"), INVISIBLE_REQUIRED.values(), ids=INVISIBLE_REQUIRED.keys()
)
def test_a_required_one_line_answer_of_nothing_visible_is_no_answer(
    app: Flask, client: FlaskClient, overrides: dict[str, object], field: str, message: str
) -> None:
    """As a name of only zero-width characters is no name: a minor's request went through with
    an invisible guardian's name, shown blank to the staff."""
    response = post_request(client, valid_answers(**overrides))
    assert response.status_code == 422
    assert message in field_error(response.get_data(as_text=True), field)
    assert_no_request_stored(app)


def test_optional_one_line_answers_of_nothing_visible_are_not_kept(
    app: Flask, client: FlaskClient
) -> None:
    document = (io.BytesIO(pdf_bytes()), "mri-report.pdf")
    answers = valid_answers(
        imaging_when=INVISIBLE,
        guardian_name=INVISIBLE,  # an adult: not asked, and nothing kept
        **{"documents-0-file": document, "documents-0-description": INVISIBLE},
    )
    assert post_request(client, answers).status_code == 303
    patient, medical = stored_request(app)
    assert patient.guardian_name is None
    assert medical.imaging_when is None
    with app.app_context():
        assert db.session.scalars(select(Document.description)).all() == [None]


def test_format_characters_inside_visible_text_are_kept(app: Flask, client: FlaskClient) -> None:
    """The names' rule: a joiner is part of an emoji or of a word in some scripts."""
    when = "MRI \U0001f468\u200d\u2695\ufe0f m\u00e4rz 2026"
    assert post_request(client, valid_answers(imaging_when=when)).status_code == 303
    _patient, medical = stored_request(app)
    assert medical.imaging_when == when


def test_the_message_is_in_the_patients_language(app: Flask, client: FlaskClient) -> None:
    client.get("/?lang=es")
    response = post_request(client, valid_answers(full_name="Erika\r\nMustermann"))
    assert response.status_code == 422
    message = field_error(response.get_data(as_text=True), "full_name")
    assert "Quite los saltos de línea o los caracteres invisibles." in message
    assert_no_request_stored(app)


# Staff forms -------------------------------------------------------------------------------


@pytest.fixture
def reference(app: Flask, staff: Staff) -> str:
    """The staff of ``staff`` and one request, by its reference."""
    with app.app_context():
        return make_request().reference


def signed_in(app: Flask, email: str) -> FlaskClient:
    client = app.test_client()
    AuthActions(client).login(email=email)
    return client


def post_note(client: FlaskClient, reference: str, text: str):
    token = csrf_token(client, f"/staff/requests/{reference}")
    return client.post(
        f"/staff/requests/{reference}/notes", data={"note-csrf_token": token, "note-text": text}
    )


def notes(app: Flask) -> list[str | None]:
    with app.app_context():
        stmt = select(RequestEvent.body).where(RequestEvent.kind == EventKind.NOTE)
        return list(db.session.scalars(stmt))


def test_a_staff_note_keeps_its_line_breaks(app: Flask, reference: str) -> None:
    coordinator = signed_in(app, "coord@example.com")
    text = "Called the patient.\r\nSends the MRI CD by post.\n\t- ask about the fall"
    assert post_note(coordinator, reference, text).status_code == 302
    assert notes(app) == [text.replace("\r\n", "\n")]  # a line break as one character


@pytest.mark.parametrize("text", ["Call back \u202eyadot", "Call back\x07 today"])
def test_a_staff_note_with_other_controls_is_refused(app: Flask, reference: str, text: str) -> None:
    coordinator = signed_in(app, "coord@example.com")
    response = post_note(coordinator, reference, text)
    assert response.status_code == 422
    assert MULTI_LINE in field_error(response.get_data(as_text=True), "note-text")
    assert notes(app) == []


@pytest.mark.parametrize(
    ("name", "address", "field"),
    [
        ("Annex\r\nBcc: all@example.com", "Ringstr. 5", "name"),
        ("Annex", "Ringstr. 5\n10115 Berlin", "address"),
        ("Annex \u202eKCAB", "Ringstr. 5", "name"),
    ],
    ids=["name-crlf", "address-line-feed", "name-override"],
)
def test_a_location_with_line_breaks_or_overrides_is_refused(
    app: Flask, reference: str, name: str, address: str, field: str
) -> None:
    admin = signed_in(app, "admin@example.com")
    token = csrf_token(admin, "/staff/admin/locations")
    response = admin.post(
        "/staff/admin/locations", data={"csrf_token": token, "name": name, "address": address}
    )
    assert response.status_code == 422
    assert SINGLE_LINE in field_error(response.get_data(as_text=True), field)
    assert count(app, Location) == 0


def test_a_location_whose_address_shows_nothing_is_refused(app: Flask, reference: str) -> None:
    """A zero-width space alone was stored as the address patients are sent to."""
    admin = signed_in(app, "admin@example.com")
    token = csrf_token(admin, "/staff/admin/locations")
    response = admin.post(
        "/staff/admin/locations", data={"csrf_token": token, "name": "Annex", "address": "\u200b"}
    )
    assert response.status_code == 422
    assert "Please enter the address." in field_error(response.get_data(as_text=True), "address")
    assert count(app, Location) == 0


def test_a_staff_account_name_with_line_breaks_is_refused(app: Flask, reference: str) -> None:
    admin = signed_in(app, "admin@example.com")
    data = {
        "csrf_token": csrf_token(admin, "/staff/accounts"),
        "full_name": "Nora New\r\nBcc: all@example.com",
        "email": "nora@example.com",
        "role": "coordinator",
        "password": "a long enough password",
    }
    response = admin.post("/staff/accounts", data=data)
    assert response.status_code == 422
    assert SINGLE_LINE in field_error(response.get_data(as_text=True), "full_name")
    with app.app_context():
        assert (
            db.session.scalars(select(StaffUser).where(StaffUser.email == "nora@example.com")).all()
            == []
        )


def test_the_admins_patient_search_refuses_line_breaks(app: Flask, reference: str) -> None:
    admin = signed_in(app, "admin@example.com")
    token = csrf_token(admin, "/staff/admin/privacy")
    response = admin.post(
        "/staff/admin/privacy",
        data={"csrf_token": token, "query": "erika.mustermann@example.com\n"},
    )
    assert response.status_code == 422
    assert SINGLE_LINE in field_error(response.get_data(as_text=True), "query")


def test_sign_in_with_a_line_break_in_the_address_is_refused(app: Flask, reference: str) -> None:
    client = app.test_client()
    token = csrf_token(client, "/staff/login")
    response = client.post(
        "/staff/login",
        data={"csrf_token": token, "email": "coord@example.com\r\n", "password": "x" * 12},
    )
    assert SINGLE_LINE in field_error(response.get_data(as_text=True), "email")
    assert client.get("/staff/").status_code == 302  # not signed in
