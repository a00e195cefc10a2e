"""Bad input through the request's steps: a clear message for the patient, answers kept, nothing
stored.

Every case goes through the steps as a browser would (CSRF on, each step's answers, multipart
uploads into the documents step) and then checks that no request and no file of one was left
behind, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import errno
import io
import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from werkzeug.test import TestResponse

from booking.documents.models import Document
from booking.documents.storage import DocumentRejected, DocumentStorage
from booking.extensions import db
from booking.notifications.models import OutboxEmail
from booking.patients import steps
from booking.requests.drafts import RequestDraft
from booking.requests.models import ConsultationRequest, MedicalHistory, Patient
from booking.timeutil import clinic_today
from tests.support import (
    EXE_BYTES,
    JPEG_BYTES,
    PNG_BYTES,
    REQUEST_STEPS,
    answer_red_flags,
    as_lists,
    field_error,
    form_tokens,
    open_step,
    pdf_bytes,
    post_request,
    post_step,
    step_answers,
    stored_files,
    text,
    upload,
    valid_answers,
)

MB = 1024 * 1024
STORED_MODELS = (ConsultationRequest, Patient, MedicalHistory, Document, OutboxEmail)
FULL_NAME_KEPT = 'value="Erika Mustermann"'
STORAGE_FAILED = "We could not store this file just now. Please try again."
NOT_A_DOCUMENT = "This file is not a PDF, JPEG or PNG document."
EXPIRED = "your last answers were not saved yet"

AppBuilder = Callable[..., tuple[Flask, FlaskClient, Path]]


def count(model: type) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def assert_no_request_stored(app: Flask) -> None:
    with app.app_context():
        assert {m.__name__: count(m) for m in STORED_MODELS} == dict.fromkeys(
            (m.__name__ for m in STORED_MODELS), 0
        )


def assert_nothing_stored(app: Flask, upload_dir: Path) -> None:
    assert_no_request_stored(app)
    assert stored_files(upload_dir) == []


def error_summary(page: str) -> str:
    match = re.search(r'id="error-summary".*?</ul>', page, re.S)
    assert match, "no error summary on the page"
    return text(match.group(0))


def assert_field_error(page: str, field_id: str, message: str) -> None:
    assert message in field_error(page, field_id)
    summary = error_summary(page)
    assert message in summary
    assert f'href="#{field_id}"' in page


def is_checked(page: str, name: str, value: str) -> bool:
    """Whether the re-rendered form still ticks this answer."""
    attrs = (r"\bchecked\b", f'name="{name}"', f'value="{value}"')
    return bool(re.search("<input" + "".join(f"(?=[^>]*{a})" for a in attrs), page))


def upload_messages(page: str) -> str:
    """The documents step's list of the files it did not add, with the reasons."""
    match = re.search(r'id="error-summary".*?</ul>', page, re.S)
    assert match, "no file was refused on the page"
    return text(match.group(0)).replace(" : ", ": ")  # "<strong>name</strong>: reason"


# One answer of each step, to see that it is kept: (field, what shows it on the step's page).
SAMPLE_ANSWERS = {
    "about": ("full_name", lambda page: FULL_NAME_KEPT in page),
    "symptoms": ("pain_locations", lambda page: is_checked(page, "pain_locations", "lower_back")),
    "function": ("odi_walking", lambda page: is_checked(page, "odi_walking", "2")),
    "history": ("medications", lambda page: "Ibuprofen 400 mg" in page),
}


def assert_answers_kept(
    client: FlaskClient, page: str, field_id: str, answers: dict[str, Any]
) -> None:
    """What the patient gave is there to correct: on the page of the step that refused it, and
    on the steps before it (their answers are saved in the draft)."""
    asked = as_lists(answers)
    refused = next(
        code for code in (*REQUEST_STEPS, "review") if field_id in steps.fields_of(code, asked)
    )
    refused_on = next(
        n
        for n in range(1, steps.pages_of(refused, asked) + 1)
        if field_id in steps.fields_of(refused, asked, n)
    )
    for code, (name, shown) in SAMPLE_ANSWERS.items():
        if steps.number(code) > steps.number(refused):
            break
        if name == field_id or name not in steps.fields_of(code, asked):
            continue
        on = next(
            n
            for n in range(1, steps.pages_of(code, asked) + 1)
            if name in steps.fields_of(code, asked, n)
        )
        if code == refused and on > refused_on:
            continue  # a later page of the step that refused: not reached yet
        here = code == refused and on == refused_on
        assert shown(page if here else open_step(client, f"{code}?page={on}")), (code, name)


def file_part(content: bytes, filename: str, content_type: str | None = None) -> tuple:
    if content_type is None:
        return (io.BytesIO(content), filename)
    return (io.BytesIO(content), filename, content_type)


def post_large(client: FlaskClient, **kwargs: Any) -> TestResponse:
    """``post_request`` for a body over 500 KB, which Werkzeug's test client spools to a
    temporary file it never closes (a ResourceWarning, so an error under filterwarnings)."""
    response = post_request(client, **kwargs)
    response.request.environ["wsgi.input"].close()
    return response


@pytest.fixture
def app_with(app_settings: dict[str, Any], request: pytest.FixtureRequest) -> AppBuilder:
    """Build the app with some settings changed: the app fixtures are only asked for here."""

    def build(**settings: Any) -> tuple[Flask, FlaskClient, Path]:
        app_settings.update(settings)
        return (
            request.getfixturevalue("app"),
            request.getfixturevalue("client"),
            request.getfixturevalue("upload_dir"),
        )

    return build


def tomorrow() -> str:
    return (clinic_today() + timedelta(days=1)).isoformat()


# Answers the form must refuse: (overrides, field the message sits next to, message, kept text);
# a callable is evaluated in the app context (today is the clinic's today).
INVALID_ANSWERS = {
    # Spaces in place of a choice (no browser sends them): refused, never stored or read as a
    # number (Optional() alone reads them as no answer).
    "pain_score_of_spaces": (
        {"back_pain_now": " "},
        "back_pain_now",
        "Please choose a number from 0 to 10.",
        None,
    ),
    "side_of_spaces": (
        {"pain_side": " "},
        "pain_side",
        "Please choose one of the options shown.",
        None,
    ),
    "odi_section_of_spaces": (
        {"odi_lifting": "  "},
        "odi_lifting",
        "Please choose one of the statements.",
        None,
    ),
    "no_privacy_consent": (
        {"privacy_consent": None},
        "privacy_consent",
        "Please confirm that you have read the privacy notice.",
        None,
    ),
    "no_contact_consent": (
        {"contact_consent": None},
        "contact_consent",
        "Please agree to be contacted, or we cannot reply.",
        None,
    ),
    "email_without_at": (
        {"email": "erika.mustermann.example.com"},
        "email",
        "Please enter a valid email address, like name@example.com.",
        'value="erika.mustermann.example.com"',
    ),
    "email_without_domain": (
        {"email": "erika@"},
        "email",
        "Please enter a valid email address, like name@example.com.",
        'value="erika@"',
    ),
    # The mail library cannot send to it (no SMTPUTF8): refused with a reason, not
    # accepted and then never reached.
    "email_with_accents_before_the_at": (
        {"email": "josé@ejemplo.es"},
        "email",
        "Our emails cannot reach an address with accents or other special letters before the @.",
        'value="josé@ejemplo.es"',
    ),
    "phone_too_short": (
        {"phone": "12"},
        "phone",
        "Please enter a valid phone number",
        'value="12"',
    ),
    "phone_letters": (
        {"phone": "abc"},
        "phone",
        "Please enter a valid phone number",
        'value="abc"',
    ),
    "born_tomorrow": (
        {"date_of_birth": tomorrow},
        "date_of_birth",
        "Your date of birth must be in the past.",
        lambda: f'value="{tomorrow()}"',
    ),
    "born_before_1900": (
        {"date_of_birth": "1899-12-31"},
        "date_of_birth",
        "Please check the year of your date of birth.",
        'value="1899-12-31"',
    ),
    "date_of_birth_not_a_date": (
        {"date_of_birth": "17.05.1970"},
        "date_of_birth",
        "Please enter your date of birth as day, month and year.",
        None,
    ),
    "odi_above_5": (
        {"odi_lifting": "6"},
        "odi_lifting",
        "Please choose one of the statements.",
        None,
    ),
    "odi_negative": (
        {"odi_lifting": "-1"},
        "odi_lifting",
        "Please choose one of the statements.",
        None,
    ),
    "odi_not_a_number": (
        {"odi_sleeping": "x"},
        "odi_sleeping",
        "Please choose one of the statements.",
        None,
    ),
    "pain_now_11": (
        {"back_pain_now": "11"},
        "back_pain_now",
        "Please choose a number from 0 to 10.",
        None,
    ),
    "pain_now_not_a_number": (
        {"leg_pain_now": "x"},
        "leg_pain_now",
        "Please choose a number from 0 to 10.",
        None,
    ),
    "pain_worst_not_a_number": (
        {"back_pain_worst": "x"},
        "back_pain_worst",
        "Please choose a number from 0 to 10.",
        None,
    ),
    "worst_pain_below_pain_now": (
        {"back_pain_now": "8", "back_pain_worst": "5"},
        "back_pain_worst",
        "Your worst pain cannot be lower than your pain right now.",
        None,
    ),
    "worst_leg_pain_below_leg_pain_now": (
        {"leg_pain_now": "6", "leg_pain_worst": "2"},
        "leg_pain_worst",
        "Your worst pain cannot be lower than your pain right now.",
        None,
    ),
    "region_missing": (
        {"spine_region": None},
        "spine_region",
        "Please tell us where your main problem is.",
        None,
    ),
    "region_unknown": (
        {"spine_region": "knee"},
        "spine_region",
        "Please choose one of the options shown.",
        None,
    ),
    # The region's pain scores are required: a neck patient rates the neck and the arm.
    "neck_pain_missing_for_a_neck_patient": (
        {"spine_region": "neck", "arm_pain_now": "2", "arm_pain_worst": "3"},
        "neck_pain_now",
        "Please rate this pain right now from 0 to 10.",
        None,
    ),
    "arm_pain_worst_missing_for_both": (
        {"spine_region": "both", "neck_pain_now": "2", "neck_pain_worst": "3", "arm_pain_now": "1"},
        "arm_pain_worst",
        "Please rate this pain at its worst from 0 to 10.",
        None,
    ),
    "unknown_pain_location": (
        {"pain_locations": ["lower_back", "spleen"]},
        "pain_locations",
        "Please choose from the options shown.",
        None,
    ),
    "unknown_contact_method": (
        {"preferred_contact": "pigeon"},
        "preferred_contact",
        "Please choose one of the options shown.",
        None,
    ),
    "other_diagnosis_without_text": (
        {"diagnoses": ["herniated_disc", "other"], "diagnosis_other": ""},
        "diagnosis_other",
        "Please tell us the other diagnosis.",
        None,
    ),
    # "Not sure / no diagnosis yet" contradicts a named one: the patient says which holds.
    "not_sure_and_a_named_diagnosis": (
        {"diagnoses": ["not_sure", "herniated_disc"]},
        "diagnoses",
        "You ticked “Not sure / no diagnosis yet” and a diagnosis: please untick one of them.",
        None,
    ),
    "not_sure_and_another_diagnosis": (
        {"diagnoses": ["other", "not_sure"], "diagnosis_other": "Scoliosis"},
        "diagnoses",
        "You ticked “Not sure / no diagnosis yet” and a diagnosis: please untick one of them.",
        "Scoliosis",
    ),
    "spine_surgery_without_details": (
        {"treatments": ["physiotherapy", "spine_surgery"], "surgery_details": "   "},
        "surgery_details",
        "Please tell us about your previous spine surgery.",
        None,
    ),
    "other_history_too_long": (
        {"other_history": "Sitting all day. " + "x" * 1984},
        "other_history",
        "Please shorten this to 2000 characters or fewer (it has 2001).",
        "Sitting all day. " + "x" * 1984,
    ),
}


@pytest.mark.parametrize(
    ("overrides", "field_id", "message", "kept"),
    list(INVALID_ANSWERS.values()),
    ids=list(INVALID_ANSWERS),
)
def test_invalid_answer_is_explained_next_to_its_field_and_nothing_is_stored(
    app: Flask,
    client: FlaskClient,
    upload_dir: Path,
    overrides: dict[str, Any],
    field_id: str,
    message: str,
    kept: str | Callable[[], str] | None,
) -> None:
    with app.app_context():  # answers that depend on today's date in the clinic
        overrides = {k: v() if callable(v) else v for k, v in overrides.items()}
        kept = kept() if callable(kept) else kept
    answers = valid_answers(**overrides)
    response = post_request(client, answers)

    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert_field_error(page, field_id, message)
    assert "Not a valid choice" not in page
    assert "is not a valid choice" not in page
    # What the patient typed is still there to correct.
    assert_answers_kept(client, page, field_id, answers)
    if kept is not None:
        assert kept in page
    assert_nothing_stored(app, upload_dir)


def test_only_the_wrong_answer_is_flagged(client: FlaskClient) -> None:
    """An invalid pain score does not also trigger the worst-versus-now comparison."""
    answers = valid_answers(back_pain_now="11", back_pain_worst="8")
    page = post_request(client, answers).get_data(as_text=True)
    assert "Please choose a number from 0 to 10." in field_error(page, "back_pain_now")
    assert 'id="back_pain_worst-error"' not in page


@pytest.mark.parametrize(
    ("part", "message"),
    [
        pytest.param(
            (EXE_BYTES, "report.pdf", "application/pdf"),
            "This file is not a PDF, JPEG or PNG document.",
            id="executable_named_pdf",
        ),
        pytest.param(
            (EXE_BYTES, "scan.jpg", "image/jpeg"),
            "This file is not a PDF, JPEG or PNG document.",
            id="executable_named_jpeg",
        ),
        pytest.param(
            (b"Just some notes about my back.\n", "notes.pdf", "application/pdf"),
            "This file is not a PDF, JPEG or PNG document.",
            id="text_named_pdf",
        ),
        pytest.param(
            (b"", "empty.pdf", "application/pdf"),
            "This file is empty.",
            id="empty_file",
        ),
    ],
)
def test_refused_document_is_named_with_the_reason_on_the_documents_step(
    app: Flask,
    client: FlaskClient,
    upload_dir: Path,
    part: tuple[bytes, str, str],
    message: str,
) -> None:
    # A new stream for each run: the test client closes the files it sent.
    answers = valid_answers(
        **{"documents-0-file": file_part(*part), "documents-0-description": "MRI"}
    )
    response = post_request(client, answers)

    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert f"{part[1]}: {message}" in upload_messages(page)
    assert 'value="MRI"' in page  # the description is kept to send again
    assert FULL_NAME_KEPT in open_step(client, "about")  # the answers are kept in the draft
    assert_nothing_stored(app, upload_dir)


def test_file_over_the_per_file_limit(app_with: AppBuilder) -> None:
    app, client, upload_dir = app_with(MAX_DOCUMENT_MB=1)
    big_pdf = pdf_bytes() + b"%" + b"0" * (MB + MB // 2)

    response = post_large(client, files=[(big_pdf, "big-scan.pdf")])

    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "big-scan.pdf: This file is larger than 1 MB." in upload_messages(page)
    assert FULL_NAME_KEPT in open_step(client, "about")
    assert_nothing_stored(app, upload_dir)


def test_a_refused_second_document_is_named_and_the_first_is_kept_in_the_draft(
    app: Flask, client: FlaskClient, upload_dir: Path
) -> None:
    files = [(pdf_bytes(), "mri-report.pdf"), (EXE_BYTES, "letter.pdf")]
    response = post_request(client, files=files)

    page = response.get_data(as_text=True)
    assert response.status_code == 422
    refused = upload_messages(page)
    assert f"letter.pdf: {NOT_A_DOCUMENT}" in refused and "mri-report.pdf" not in refused
    assert "mri-report.pdf" in open_step(client, "documents")
    assert_no_request_stored(app)
    assert len(stored_files(upload_dir)) == 1  # the draft's accepted file, nothing else


@pytest.mark.parametrize("together", [True, False], ids=["in-one-upload", "in-a-later-upload"])
def test_eleven_documents_when_ten_are_allowed(
    app: Flask, client: FlaskClient, upload_dir: Path, together: bool
) -> None:
    """An eleventh file is refused, whether sent with the ten or after them."""
    assert app.config["MAX_DOCUMENTS"] == 10
    answer_red_flags(client)
    # Ten different photos (the same file twice is kept once): bytes after the image's end.
    photos = [(PNG_BYTES + bytes([i]), f"photo-{i}.png") for i in range(10)]
    eleventh = (JPEG_BYTES, "eleventh.jpg")
    if together:
        response = upload(client, *photos, eleventh)
    else:
        assert upload(client, *photos).status_code == 303
        response = upload(client, eleventh)

    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "eleventh.jpg: You can send at most 10 documents with one request." in upload_messages(
        page
    )
    assert "eleventh.jpg" not in open_step(client, "documents")
    assert_no_request_stored(app)
    assert len(stored_files(upload_dir)) == 10


def test_body_over_the_total_limit_gets_the_friendly_413_page(app_with: AppBuilder) -> None:
    app, client, upload_dir = app_with(MAX_DOCUMENTS=2, MAX_DOCUMENT_MB=1)
    assert app.config["MAX_CONTENT_LENGTH"] == 4 * MB
    big_pdf = pdf_bytes() + b"%" + b"0" * (4 * MB + MB // 2)

    response = post_large(client, files=[(big_pdf, "whole-archive.pdf")])

    page = response.get_data(as_text=True)
    assert response.status_code == 413
    assert "too large" in page
    assert "Nothing was saved" in page
    assert "Request Entity Too Large" not in page
    assert_nothing_stored(app, upload_dir)


@pytest.mark.parametrize(
    "csrf_token", [None, "", "not-the-token"], ids=["missing", "empty", "wrong"]
)
def test_missing_or_wrong_csrf_token_gets_the_expired_page(
    app: Flask, client: FlaskClient, upload_dir: Path, csrf_token: str | None
) -> None:
    tokens = form_tokens(client)
    if csrf_token is None:
        del tokens["csrf_token"]
    else:
        tokens["csrf_token"] = csrf_token

    response = post_request(client, tokens=tokens, files=[(pdf_bytes(), "mri.pdf")])

    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert EXPIRED in page and "press the button again" in page
    assert_nothing_stored(app, upload_dir)


def test_upload_folder_that_cannot_be_created(app_with: AppBuilder, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_bytes(b"a regular file where the upload folder's parent should be")
    app, client, upload_dir = app_with(UPLOAD_DIR=str(blocker / "uploads"))

    response = post_request(client, files=[(pdf_bytes(), "mri.pdf")])

    page = response.get_data(as_text=True)
    assert response.status_code == 503  # our storage, not the file: monitoring sees it
    assert f"mri.pdf: {STORAGE_FAILED}" in upload_messages(page)
    assert "Please correct the following" not in page  # not the patient's mistake
    assert FULL_NAME_KEPT in open_step(client, "about")
    assert blocker.read_bytes().startswith(b"a regular file")
    assert_nothing_stored(app, upload_dir)


@pytest.mark.parametrize(
    ("failure", "message", "status"),
    [
        pytest.param(
            OSError(errno.ENOSPC, "No space left on device"),
            STORAGE_FAILED,
            503,
            id="disk_full",
        ),
        pytest.param(
            DocumentRejected(NOT_A_DOCUMENT), NOT_A_DOCUMENT, 422, id="refused_while_storing"
        ),
    ],
)
def test_failure_while_storing_the_second_document_names_it_and_keeps_the_first(
    app: Flask,
    client: FlaskClient,
    upload_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    failure: Exception,
    message: str,
    status: int,
) -> None:
    real_save = DocumentStorage.save
    saved: list[str] = []

    def save_then_fail(self: DocumentStorage, stream: Any, max_bytes: int) -> Any:
        if saved:
            raise failure
        stored = real_save(self, stream, max_bytes)
        saved.append(stored.stored_name)
        return stored

    monkeypatch.setattr(DocumentStorage, "save", save_then_fail)
    files = [(pdf_bytes(), "mri-report.pdf"), (JPEG_BYTES, "scan.jpg")]

    response = post_request(client, files=files)

    page = response.get_data(as_text=True)
    assert response.status_code == status
    refused = upload_messages(page)
    assert f"scan.jpg: {message}" in refused and "mri-report.pdf" not in refused
    assert len(saved) == 1  # the first file really was written before the failure
    assert "mri-report.pdf" in open_step(client, "documents")
    assert_no_request_stored(app)
    assert [path.name for path in stored_files(upload_dir)] == saved


def test_control_characters_are_refused_rather_than_failing_on_postgresql(
    app: Flask, client: FlaskClient, upload_dir: Path
) -> None:
    """Text pasted from a PDF can carry NUL and other control characters; PostgreSQL refuses NUL
    in text, so each step refuses them on the field they are in (more in
    tests/test_single_line_fields.py)."""
    answers = valid_answers(
        full_name="Erika\x00 Mustermann",
        medications="Ibu\x00profen\x07 400 mg",
        other_history="Office work.\r\n\tSitting\x1b most of the day.",
    )
    answer_red_flags(client)
    about = post_step(client, "about", step_answers("about", answers))
    assert about.status_code == 422
    assert "Please remove the line breaks or invisible characters." in field_error(
        about.get_data(as_text=True), "full_name"
    )
    history = post_step(client, "history", step_answers("history", answers))
    assert history.status_code == 422
    for field_id in ("medications", "other_history"):
        assert "Please remove the invisible characters" in field_error(
            history.get_data(as_text=True), field_id
        )
    documents = upload(client, (pdf_bytes(), "mri.pdf"), description="MRI\x00 report")
    assert documents.status_code == 422
    assert "Please remove the line breaks or invisible characters." in field_error(
        documents.get_data(as_text=True), "description"
    )
    assert_nothing_stored(app, upload_dir)


def test_file_posted_in_place_of_a_text_answer(
    app: Flask, client: FlaskClient, upload_dir: Path
) -> None:
    """Flask-WTF merges uploads into the form data: a file under a text field's name is no
    answer, not a crash."""
    answers = valid_answers(full_name=file_part(b"Erika", "name.txt", "text/plain"))
    response = post_request(client, answers)

    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert_field_error(page, "full_name", "Please enter your full name.")
    assert 'value="erika.mustermann@example.com"' in page
    assert_nothing_stored(app, upload_dir)


@pytest.mark.parametrize(
    "token", ["x" * 5000, "too-short", "not a token; at all" * 2], ids=["long", "short", "spaces"]
)
def test_a_posted_submission_token_is_ignored(app: Flask, client: FlaskClient, token: str) -> None:
    """Only the draft's own token is stored; one posted with the steps (which could overflow
    the column on PostgreSQL, or name another request) is not read."""
    answer_red_flags(client)
    for code in (*REQUEST_STEPS, "documents", "review"):
        response = post_step(client, code, {**step_answers(code), "submission_token": token})
        assert response.status_code == 303, code

    with app.app_context():
        stored = db.session.scalars(select(ConsultationRequest.submission_token)).one()
        draft_token = db.session.scalars(select(RequestDraft.submission_token)).one()
    assert stored == draft_token != token
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", stored)


@pytest.mark.parametrize(
    "answer", [{"red_cancer_history": "maybe"}, {"red_saddle_numbness": None}, {"red_fever": ""}]
)
def test_a_first_step_without_every_answer_stores_nothing_and_says_so(
    app: Flask, client: FlaskClient, upload_dir: Path, answer: dict[str, Any]
) -> None:
    """An unanswered warning sign is never read as "no": the first step asks again."""
    answers = {k: v for k, v in valid_answers(**answer).items() if v is not None}
    response = post_request(client, answers)
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "Please answer yes or no." in error_summary(page)
    assert client.get("/request/steps/about").location.endswith("/request/start")
    assert_nothing_stored(app, upload_dir)
