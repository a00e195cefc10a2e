"""A patient's request, sent through its steps, stored whole on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import re

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from booking.documents.models import Document
from booking.documents.storage import get_storage
from booking.extensions import db
from booking.notifications.models import OutboxEmail, OutboxStatus
from booking.requests import triage
from booking.requests.models import ConsultationRequest, RequestStatus, TriageLevel
from tests.support import (
    JPEG_BYTES,
    REQUEST_STEPS,
    answer_red_flags,
    fill_every_step,
    open_step,
    page_token,
    pdf_bytes,
    post_request,
    post_step,
    step_answers,
    stored_files,
    valid_answers,
)

REFERENCE_RE = re.compile(r"^SC-[2-9A-Z]{4}-[2-9A-Z]{4}$")


def count(model: type) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def test_the_steps_offer_every_section(client: FlaskClient) -> None:
    answer_red_flags(client)
    post_step(client, "symptoms")  # the main problem decides the questions of the next step
    pages = {code: open_step(client, code) for code in ("time", *REQUEST_STEPS[1:], "documents")}
    pages["review"] = open_step(client, "review")
    # The pain and daily life step is shown in pages: the pain scales, then the instrument's.
    assert "Your pain" in pages["function"]
    pages["function"] = open_step(client, "function?page=2")
    for code, text in (
        ("time", "Days that suit you"),
        ("about", "About you"),
        ("symptoms", "Your symptoms"),
        ("function", "Oswestry Disability Index"),
        ("history", "Health and treatment"),
        ("review", "Your consent"),
    ):
        assert text in pages[code], code
    for page in pages.values():
        # Asked on the first step and kept in the draft, not carried by the pages.
        assert "Warning signs" not in page and 'name="red_' not in page
    # The documents step takes several files, each only a PDF, JPEG or PNG.
    documents = pages["documents"]
    assert 'enctype="multipart/form-data"' in documents
    assert documents.count('accept="application/pdf,image/jpeg,image/png"') == 1
    assert 'type="file" id="files" name="files" multiple' in documents


def test_full_request_with_two_documents_is_stored_whole(
    app: Flask, client: FlaskClient, upload_dir
) -> None:
    report, photo = pdf_bytes("MRI lumbar spine"), JPEG_BYTES
    response = post_request(client, files=[(report, "mri-report.pdf"), (photo, "scan.jpg")])

    assert response.status_code == 303
    assert response.headers["Location"].endswith("/request/submitted")
    with app.app_context():
        consultation = db.session.scalars(select(ConsultationRequest)).one()
        assert REFERENCE_RE.match(consultation.reference)
        assert consultation.status == RequestStatus.REQUESTED
        assert consultation.triage_level == TriageLevel.ROUTINE
        assert consultation.created_at.tzinfo is not None
        assert consultation.patient.phone == "+4930901820"
        assert consultation.privacy_notice_version == app.config["PRIVACY_NOTICE_VERSION"]

        history = consultation.history
        assert history.pain_locations == ["lower_back", "leg"]
        assert history.diagnoses == ["herniated_disc"]
        assert history.odi_sections_answered == 9  # sex life skipped
        assert history.odi_answers["lifting"] == 3
        assert "sex_life" not in history.odi_answers
        assert history.odi_percent == 40.0  # 18 / (5 x 9) x 100
        assert history.odi_band == "moderate"
        assert history.request.red_flags == []

        documents = consultation.documents
        assert [d.original_name for d in documents] == ["mri-report.pdf", "scan.jpg"]
        assert [d.content_type for d in documents] == ["application/pdf", "image/jpeg"]
        for document, content in zip(documents, (report, photo), strict=True):
            on_disk = (upload_dir / document.stored_name).read_bytes()
            assert content not in on_disk  # encrypted at rest
            with get_storage().open(document.stored_name, document.sha256) as plain:
                assert plain.read() == content
            assert document.sha256 == hashlib.sha256(content).hexdigest()
            assert document.size_bytes == len(content)
            assert document.stored_name not in document.original_name
        assert len(stored_files(upload_dir)) == 2

        emails = db.session.scalars(select(OutboxEmail).order_by(OutboxEmail.id)).all()
        assert [e.recipient for e in emails] == [
            "erika.mustermann@example.com",
            "coordinators@example.com",
        ]
        assert all(e.status == OutboxStatus.PENDING for e in emails)
        assert all(e.request_id == consultation.id for e in emails)
        reference = consultation.reference

    page = client.get("/request/submitted").get_data(as_text=True)
    assert reference in page
    assert "What happens next" in page
    assert "Please seek emergency care now" not in page
    assert "We received 2 documents." in page


ADVICE_TITLES = {
    triage.EMERGENCY: "Please seek emergency care now",
    triage.URGENT: "Please contact your doctor today",
}
LEVELS = {
    triage.EMERGENCY: TriageLevel.EMERGENCY,
    triage.URGENT: TriageLevel.URGENT,
    triage.REVIEW: TriageLevel.ROUTINE,
}


@pytest.mark.parametrize("flag", triage.ASKED, ids=lambda flag: flag.code)
def test_each_red_flag_gets_the_advice_and_triage_of_its_pathway(
    app: Flask, client: FlaskClient, flag: triage.RedFlag
) -> None:
    answers = valid_answers(**{f"red_{flag.code}": "yes"})
    response = post_request(client, answers)

    assert response.status_code == 303
    if flag.pathway == triage.EMERGENCY:
        # The first step stops the request: the emergency page, nothing stored (the
        # call-back is tested in test_red_flag_step.py).
        assert response.headers["Location"] == "/request/emergency"
        with app.app_context():
            assert count(ConsultationRequest) == 0
        return
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    advice = ADVICE_TITLES.get(flag.pathway)
    for title in ADVICE_TITLES.values():
        assert (title in page) == (title == advice)
    if advice:
        assert 'role="alert"' in page
    with app.app_context():
        consultation = db.session.scalars(select(ConsultationRequest)).one()
        assert consultation.triage_level == LEVELS[flag.pathway]
        assert consultation.red_flags == [flag.code]
        staff = db.session.scalars(
            select(OutboxEmail).where(OutboxEmail.recipient == "coordinators@example.com")
        ).one()
        assert staff.subject.startswith("URGENT") == (flag.pathway == triage.URGENT)
        assert str(flag.question) not in staff.body_text  # flags stay inside the dashboard
        receipt = db.session.scalars(
            select(OutboxEmail).where(OutboxEmail.template == "request_received")
        ).one()
        # The receipt repeats the advice for the patient's safety, and says so: it does not
        # claim to hold no medical details at all. No time was chosen: none to change.
        if advice:
            assert "no other medical details: only the advice above" in receipt.body_text
        else:
            assert "this email contains no medical details." in receipt.body_text
        assert "See your request, add documents or cancel here" in receipt.body_text


def test_sending_twice_or_again_after_back_does_not_create_a_second_request(
    app: Flask, client: FlaskClient, upload_dir
) -> None:
    fill_every_step(client, files=((pdf_bytes(), "a.pdf"),))
    data = {**step_answers("review"), "nav": "send"}
    data["csrf_token"] = page_token(open_step(client, "review"))
    first = client.post("/request/steps/review", data=data)
    second = client.post("/request/steps/review", data=data)  # a double click, a refresh
    back = client.get("/request/steps/review")  # Back, then Send again
    third = client.post("/request/steps/review", data=data)

    for response in (first, second, back, third):
        assert response.status_code == 303
        assert response.headers["Location"].endswith("/request/submitted")
    with app.app_context():
        assert count(ConsultationRequest) == 1
        assert count(Document) == 1
        assert count(OutboxEmail) == 2
    assert len(stored_files(upload_dir)) == 1


def test_a_new_form_makes_a_new_request(app: Flask, client: FlaskClient) -> None:
    post_request(client)
    post_request(client)
    with app.app_context():
        references = db.session.scalars(select(ConsultationRequest.reference)).all()
    assert len(set(references)) == 2


def test_confirmation_page_without_a_request_goes_to_the_first_step(client: FlaskClient) -> None:
    response = client.get("/request/submitted")
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/request/start")


def test_under_18_needs_a_guardian(app: Flask, client: FlaskClient) -> None:
    answers = valid_answers(date_of_birth="2015-01-01")
    response = post_request(client, answers)
    assert response.status_code == 422
    assert "parent or guardian" in response.get_data(as_text=True)

    response = post_request(
        client, valid_answers(date_of_birth="2015-01-01", guardian_name="Max Mustermann")
    )
    assert response.status_code == 303
    with app.app_context():
        assert db.session.scalars(select(ConsultationRequest)).one().patient.guardian_name == (
            "Max Mustermann"
        )
