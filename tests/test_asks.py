"""Asking the patient for what is missing (issue #17): staff ask from the record, the patient
answers on their private page, the request comes back to the queue marked "information
received"; the reminder; the clinic's checklist."""

from __future__ import annotations

import html
import io
import json
import re
import zipfile
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, text
from sqlalchemy.engine.default import DefaultDialect
from sqlalchemy.exc import OperationalError

from booking.documents.storage import DocumentUpload
from booking.extensions import db
from booking.notifications.models import OutboxEmail
from booking.requests import asks
from booking.requests.lifecycle import role_may
from booking.requests.models import ConsultationRequest, RequestStatus
from booking.staff.models import StaffUser
from booking.timeutil import clinic_today, now_utc
from tests.factories import make_request, make_staff
from tests.smtp import SmtpServer
from tests.support import (
    EXE_BYTES,
    AuthActions,
    Clinic,
    Staff,
    audited_actions,
    field_error,
    hidden_value,
    open_manage_link,
    pdf_bytes,
    stored_files,
)
from tests.test_destructive_confirmation import asked, confirm

CSRF_VALUE = re.compile(r'name="([a-z-]*csrf_token)"[^>]*value="([^"]+)"')
SUBMISSION_KEY = re.compile(r'name="answer-submission_key"[^>]*value="([^"]+)"')
QUESTION = "Did the pain start after a fall?"
ANSWER = "No fall. It started slowly in March."


@pytest.fixture
def staff_client(auth: AuthActions, clinic: Clinic) -> FlaskClient:
    auth.login("coordinator")
    return auth.client


def _new_request(app: Flask, **overrides: Any) -> str:
    with app.app_context():
        return make_request(**overrides).reference


def _load(app: Flask, reference: str) -> ConsultationRequest:
    consultation = db.session.scalars(
        select(ConsultationRequest).where(ConsultationRequest.reference == reference)
    ).one()
    return consultation


def _tokens(page: str) -> dict[str, str]:
    return dict(CSRF_VALUE.findall(page))


def _ask(client: FlaskClient, reference: str, items: list[str], question: str = "") -> Any:
    page = client.get(f"/staff/requests/{reference}").get_data(as_text=True)
    return client.post(
        f"/staff/requests/{reference}/ask",
        data={
            "ask-csrf_token": _tokens(page)["ask-csrf_token"],
            "ask-items": items,
            "ask-question": question,
        },
    )


def _patient(app: Flask, reference: str) -> tuple[FlaskClient, str]:
    patient = app.test_client()
    with app.app_context():
        url = open_manage_link(patient, _load(app, reference))
    return patient, url


def _answer(
    patient: FlaskClient,
    url: str,
    files: dict[int, tuple[bytes, str]],
    answer: str,
    then: Callable[[], None] | None = None,
    *,
    shown: str | None = None,
):
    """Send an answer from the page as it is shown, or from ``shown``, a page shown before
    (sent again: a double click, Back and send again); ``then``, if given, is called in
    between. Its hidden fields go with it, as a browser sends them."""
    page = shown if shown is not None else patient.get(url).get_data(as_text=True)
    if then is not None:
        then()
    data: dict[str, Any] = {
        "answer-csrf_token": _tokens(page)["answer-csrf_token"],
        "answer-ask_id": hidden_value(page, "answer-ask_id"),
        "answer-answer": answer,
    }
    if key := SUBMISSION_KEY.search(page):
        data["answer-submission_key"] = key.group(1)
    for index, (content, name) in files.items():
        data[f"answer-files-{index}-file"] = (io.BytesIO(content), name)
    return patient.post(f"{url}/answer", data=data, content_type="multipart/form-data")


def _emails(app: Flask, reference: str) -> list[OutboxEmail]:
    with app.app_context():
        consultation = _load(app, reference)
        return list(
            db.session.scalars(
                select(OutboxEmail)
                .where(OutboxEmail.request_id == consultation.id)
                .order_by(OutboxEmail.id)
            )
        )


def test_the_round_trip_from_ask_to_information_received(
    app: Flask, staff_client: FlaskClient, upload_dir: Path
) -> None:
    reference = _new_request(app)
    before = len(_emails(app, reference))

    response = _ask(staff_client, reference, ["imaging_report", "referral_letter"], QUESTION)
    assert response.status_code == 302
    with app.app_context():
        consultation = _load(app, reference)
        assert consultation.status == RequestStatus.AWAITING_PATIENT
    # The patient is told only that something is needed, with their link: no item, no question.
    [email] = _emails(app, reference)[before:]
    assert email.recipient == "erika.mustermann@example.com"
    assert email.subject == f"We need something from you ({reference})"
    assert "/manage/open/" in email.body_text
    for secret in ("MRI", "Referral", QUESTION):
        assert secret not in email.body_text and secret not in email.body_html
    # The queue: out of the "requested" tab, in "waiting for the patient".
    queue = staff_client.get("/staff/").get_data(as_text=True)
    assert reference not in queue
    waiting = staff_client.get("/staff/?status=awaiting_patient").get_data(as_text=True)
    assert reference in waiting and "Waiting for the patient" in waiting

    patient, url = _patient(app, reference)
    page = patient.get(url).get_data(as_text=True)
    assert "The clinic needs something from you" in page
    assert "MRI or CT report from the last 12 months" in page
    assert "Referral letter" in page
    assert QUESTION in page

    response = _answer(patient, url, {0: (pdf_bytes("MRI lumbar"), "mri.pdf")}, ANSWER)
    assert response.status_code == 302, response.get_data(as_text=True)[:800]
    page = patient.get(url).get_data(as_text=True)
    assert "Thank you: the clinic has received what you sent." in page
    assert "The clinic needs something from you" not in page

    with app.app_context():
        consultation = _load(app, reference)
        assert consultation.status == RequestStatus.REQUESTED
        assert consultation.information_received_at is not None
        [document] = consultation.documents
        assert (document.original_name, document.checklist_item) == ("mri.pdf", "imaging_report")
        [ask] = asks.asks_of(consultation)
        assert ask.answer == ANSWER and ask.answered_at is not None
        # Question and answer are encrypted at rest.
        raw = db.session.execute(
            text("SELECT question, answer FROM information_request WHERE id = :id"),
            {"id": ask.id},
        ).one()
        assert QUESTION not in raw[0] and ANSWER not in raw[1]
    assert len(stored_files(upload_dir)) == 1
    subjects = [e.subject for e in _emails(app, reference)[before + 1 :]]
    assert f"Thank you: we received your information ({reference})" in subjects
    assert f"Patient update on {reference}: information received" in subjects
    assert {"information_asked", "information_received"} <= set(audited_actions(app, reference))

    # Back in the queue, marked; the record shows the checklist with what is present.
    queue = staff_client.get("/staff/").get_data(as_text=True)
    row = queue[queue.index(reference) :]
    assert "Information received" in row[: row.index("</tr>")]
    record = staff_client.get(f"/staff/requests/{reference}").get_data(as_text=True)
    section = record[record.index('id="asks"') :]
    mri = section[section.index("MRI or CT report") :]
    assert "Present" in mri[: mri.index("</tr>")] and "mri.pdf" in mri[: mri.index("</tr>")]
    letter = section[section.index("Referral letter") :]
    assert "Asked, not sent" in letter[: letter.index("</tr>")]
    assert ANSWER in section

    # Staff look at it: the mark ends (audited, and on the timeline).
    response = _mark_reviewed(staff_client, reference, record)
    assert response.status_code == 302
    with app.app_context():
        assert _load(app, reference).information_received_at is None
    assert "information_reviewed" in audited_actions(app, reference)
    record = staff_client.get(f"/staff/requests/{reference}").get_data(as_text=True)
    assert "Marked the information the patient sent as reviewed." in record


def _answered_section(page: str) -> str:
    start = page.index('<section class="mb-4" aria-labelledby="answered-heading"')
    return page[start : page.index("</section>", start)]


def test_the_patient_reads_what_they_sent_once_the_ask_is_answered(
    app: Flask, staff_client: FlaskClient, upload_dir: Path
) -> None:
    """Once answered, the ask's form leaves the private page: what was asked, when, and what
    the patient sent (their answer, the files' names) stay in view, read only, each ask with
    its own files, and still there once the request is closed."""
    reference = _new_request(app)
    patient, url = _patient(app, reference)
    assert 'id="answered-heading"' not in patient.get(url).get_data(as_text=True)
    assert _ask(staff_client, reference, ["imaging_report"], QUESTION).status_code == 302
    assert 'id="answered-heading"' not in patient.get(url).get_data(as_text=True)  # open
    response = _answer(patient, url, {0: (pdf_bytes("MRI lumbar"), "mri.pdf")}, ANSWER)
    assert response.status_code == 302, response.get_data(as_text=True)[:800]
    assert _ask(staff_client, reference, ["referral_letter"]).status_code == 302
    response = _answer(patient, url, {0: (pdf_bytes("Referral"), "letter.pdf")}, "")
    assert response.status_code == 302, response.get_data(as_text=True)[:800]

    page = patient.get(url).get_data(as_text=True)
    assert "The clinic needs something from you" not in page
    section = _answered_section(page)
    assert '<h2 class="h4" id="answered-heading">What you sent when the clinic asked</h2>' in (
        section
    )
    latest, first = section.split("<li class=")[1:]  # a list item per ask, the latest first
    assert "Referral letter" in latest and "letter.pdf" in latest
    assert "mri.pdf" not in latest and QUESTION not in latest and "Your answer:" not in latest
    assert "MRI or CT report from the last 12 months" in first and "mri.pdf" in first
    assert html.escape(QUESTION) in first and ANSWER in first and "letter.pdf" not in first
    with app.app_context():
        today = clinic_today().strftime("%-d %b %Y")
    assert f"Asked on {today}, answered on {today}" in first

    with app.app_context():  # closed: the page shows what happened, this too
        _load(app, reference).status = RequestStatus.CANCELLED
        db.session.commit()
    page = patient.get(url).get_data(as_text=True)
    assert "This request is closed" in page
    assert ANSWER in _answered_section(page) and "letter.pdf" in _answered_section(page)


@pytest.mark.parametrize(
    ("items", "files", "answer", "detail"),
    [
        (
            ["imaging_report", "referral_letter"],
            {0: (pdf_bytes("MRI lumbar"), "mri.pdf")},
            ANSWER,
            "Items asked for that the patient sent: 1 of 2. They also wrote an answer: "
            "read it on the record.",
        ),
        (
            ["imaging_report", "referral_letter"],
            {1: (pdf_bytes("Referral"), "letter.pdf")},
            "",
            "Items asked for that the patient sent: 1 of 2.",
        ),
        (["imaging_report"], {}, ANSWER, "Items asked for that the patient sent: 0 of 1. They"),
        (
            ["imaging_report"],
            {0: (pdf_bytes("MRI lumbar"), "mri.pdf")},
            "",
            "The patient sent what the clinic asked for.",
        ),
        ([], {}, ANSWER, "The patient sent what the clinic asked for."),
    ],
)
def test_the_clinics_notice_says_what_the_patient_sent(
    app: Flask,
    staff_client: FlaskClient,
    upload_dir: Path,
    items: list[str],
    files: dict[int, tuple[bytes, str]],
    answer: str,
    detail: str,
) -> None:
    """The clinic's email says the patient "sent what the clinic asked for" only when every
    item asked came with its file: a patient who writes that they have no referral letter
    has answered, but the record still lacks it."""
    reference = _new_request(app)
    assert _ask(staff_client, reference, items, QUESTION).status_code == 302
    patient, url = _patient(app, reference)
    before = len(_emails(app, reference))
    response = _answer(patient, url, files, answer)
    assert response.status_code == 302, response.get_data(as_text=True)[:800]
    [notice] = [
        e
        for e in _emails(app, reference)[before:]
        if e.subject == f"Patient update on {reference}: information received"
    ]
    assert detail in notice.body_text and detail in notice.body_html
    if "what the clinic asked for" not in detail:
        assert "what the clinic asked for" not in notice.body_text


def _mark_reviewed(client: FlaskClient, reference: str, record: str) -> Any:
    """ "Mark as reviewed" from the record page ``record`` as it was loaded (its mark)."""
    received = re.search(r'name="reviewed-received" type="hidden" value="([^"]*)"', record)
    assert received is not None
    return client.post(
        f"/staff/requests/{reference}/ask/reviewed",
        data={
            "reviewed-csrf_token": _tokens(record)["reviewed-csrf_token"],
            "reviewed-received": received.group(1),
        },
    )


def test_a_page_opened_before_a_new_answer_does_not_clear_its_mark(
    app: Flask, staff_client: FlaskClient, upload_dir: Path
) -> None:
    """Staff A opened the record on the first answer; the patient answered a second ask
    since. A's "Mark as reviewed" is refused (409, saying why) and the new answer keeps its
    mark; from the page as it is now, it clears."""
    reference = _new_request(app)
    assert _ask(staff_client, reference, ["imaging_report"]).status_code == 302
    patient, url = _patient(app, reference)
    assert _answer(patient, url, {}, ANSWER).status_code == 302
    old_page = staff_client.get(f"/staff/requests/{reference}").get_data(as_text=True)
    assert _ask(staff_client, reference, [], QUESTION).status_code == 302
    assert _answer(patient, url, {}, "It is worse at night.").status_code == 302
    with app.app_context():
        newest = _load(app, reference).information_received_at
    assert newest is not None

    response = _mark_reviewed(staff_client, reference, old_page)
    assert response.status_code == 409
    assert "The patient sent more information after you opened this page." in response.get_data(
        as_text=True
    )
    assert "<title>Error: " in response.get_data(as_text=True)  # said first on arrival
    with app.app_context():
        assert _load(app, reference).information_received_at == newest
    assert "information_reviewed" not in audited_actions(app, reference)

    page = staff_client.get(f"/staff/requests/{reference}").get_data(as_text=True)
    assert _mark_reviewed(staff_client, reference, page).status_code == 302
    with app.app_context():
        assert _load(app, reference).information_received_at is None


def test_a_refused_file_stores_nothing_and_the_request_keeps_waiting(
    app: Flask, staff_client: FlaskClient, upload_dir: Path
) -> None:
    reference = _new_request(app)
    assert _ask(staff_client, reference, ["imaging_report"]).status_code == 302
    patient, url = _patient(app, reference)

    response = _answer(patient, url, {0: (EXE_BYTES, "scan.pdf")}, ANSWER)
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "Please correct the following" in page
    with app.app_context():
        consultation = _load(app, reference)
        assert consultation.status == RequestStatus.AWAITING_PATIENT
        assert consultation.documents == []
        assert asks.open_ask(consultation) is not None
    assert stored_files(upload_dir) == []

    # Nothing at all is refused with a message too.
    response = _answer(patient, url, {}, "")
    assert response.status_code == 422
    assert "Please choose a file or write your answer." in response.get_data(as_text=True)


def test_an_answer_with_a_file_the_request_already_holds_stores_nothing(
    app: Flask, staff_client: FlaskClient, upload_dir: Path
) -> None:
    """The report sent with the request, sent again as the answer (under another name), or
    one file sent for two items: refused with the words of the page's "add documents", and
    nothing is kept; the request still waits for the answer."""
    reference = _new_request(app, documents=1)  # holds "report-0.pdf"
    assert _ask(staff_client, reference, ["imaging_report", "referral_letter"]).status_code == 302
    patient, url = _patient(app, reference)
    files_before = stored_files(upload_dir)
    for files, refused in (
        ({0: (pdf_bytes("Report 0"), "mri.pdf")}, "mri.pdf"),
        ({0: (pdf_bytes("MRI"), "mri.pdf"), 1: (pdf_bytes("MRI"), "letter.pdf")}, "letter.pdf"),
    ):
        response = _answer(patient, url, files, ANSWER)
        assert response.status_code == 422
        page = html.unescape(response.get_data(as_text=True))
        assert f"“{refused}” is the same file as one you have already added." in page
        assert ANSWER in page  # what was written stays on the page
    assert stored_files(upload_dir) == files_before
    with app.app_context():
        consultation = _load(app, reference)
        assert consultation.status == RequestStatus.AWAITING_PATIENT
        assert [d.original_name for d in consultation.documents] == ["report-0.pdf"]
        assert asks.open_ask(consultation).answered_at is None
    # Another file is taken.
    assert _answer(patient, url, {0: (pdf_bytes("MRI"), "mri.pdf")}, ANSWER).status_code == 302


NOT_ADDED_YET = (
    "Error: Not added yet, as something else on this form needs correcting. "
    "Please choose this file again."
)
NOT_ADDED_WITH_OURS = (
    "Error: Not added yet: we could not store another file on this form just now, and the "
    "files are added together. Please choose this file again."
)


def test_a_file_the_service_refuses_in_an_answer_is_named_and_the_others_are_chosen_again(
    app: Flask, staff_client: FlaskClient, upload_dir: Path, tmp_path: Path
) -> None:
    """As on "add documents": the refusal of one file (the same file as one the request
    holds, the virus scanner down) is said beside it and every other file says it was not
    added, rather than one message above the form and no telling which to choose again."""
    reference = _new_request(app, documents=1)  # holds "report-0.pdf"
    assert _ask(staff_client, reference, ["imaging_report", "referral_letter"]).status_code == 302
    patient, url = _patient(app, reference)
    files_before = stored_files(upload_dir)
    two = {0: (pdf_bytes("MRI"), "mri.pdf"), 1: (pdf_bytes("Report 0"), "letter.pdf")}
    response = _answer(patient, url, two, ANSWER)
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert field_error(page, "answer-files-0-file") == NOT_ADDED_YET
    assert field_error(page, "answer-files-1-file") == (
        "Error: “letter.pdf” is the same file as one you have already added."
    )
    assert stored_files(upload_dir) == files_before  # the MRI's copy, stored first, deleted

    app.config.update(CLAMAV_ENABLED=True, CLAMAV_ADDRESS=str(tmp_path / "nobody-listens.sock"))
    response = _answer(patient, url, {0: two[0], 1: (pdf_bytes("Letter"), "letter.pdf")}, ANSWER)
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert field_error(page, "answer-files-0-file") == (
        "Error: We cannot check files for viruses at the moment, so this file was not saved. "
        "Please try again later."
    )
    assert field_error(page, "answer-files-1-file") == NOT_ADDED_WITH_OURS
    assert stored_files(upload_dir) == files_before
    with app.app_context():
        consultation = _load(app, reference)
        assert [d.original_name for d in consultation.documents] == ["report-0.pdf"]
        assert asks.open_ask(consultation).answered_at is None


def test_a_storage_failure_in_an_answer_is_said_beside_the_file(
    app: Flask, staff_client: FlaskClient, tmp_path: Path
) -> None:
    """Our storage fails (its folder cannot be made: a file stands where it should be)."""
    reference = _new_request(app)
    assert _ask(staff_client, reference, ["imaging_report", "referral_letter"]).status_code == 302
    patient, url = _patient(app, reference)
    blocked = tmp_path / "uploads-blocked"
    blocked.write_bytes(b"")
    app.config["UPLOAD_DIR"] = str(blocked)
    two = {0: (pdf_bytes("MRI"), "mri.pdf"), 1: (pdf_bytes("Letter"), "letter.pdf")}
    response = _answer(patient, url, two, ANSWER)
    assert response.status_code == 503
    page = response.get_data(as_text=True)
    assert field_error(page, "answer-files-0-file") == (
        "Error: We could not store this file just now. Please try again."
    )
    assert field_error(page, "answer-files-1-file") == NOT_ADDED_WITH_OURS
    assert ANSWER in html.unescape(page)
    with app.app_context():
        assert _load(app, reference).documents == []


def test_an_answer_the_database_failed_to_store_is_said_not_received_and_nothing_is_kept(
    app: Flask,
    staff_client: FlaskClient,
    upload_dir: Path,
    failing_commit: Callable[[], None],
) -> None:
    """The commit fails (the database restarting): the form again saying nothing was
    received, each file to choose again and the answer kept, rather than "we cannot confirm"
    with the files left for the clean-up; no file, no answer, no audit row; sent again, it
    is received."""
    reference = _new_request(app)
    assert _ask(staff_client, reference, ["imaging_report", "referral_letter"]).status_code == 302
    patient, url = _patient(app, reference)
    files_before = stored_files(upload_dir)
    two = {0: (pdf_bytes("MRI"), "mri.pdf"), 1: (pdf_bytes("Letter"), "letter.pdf")}
    response = _answer(patient, url, two, ANSWER, then=failing_commit)
    assert response.status_code == 503
    page = response.get_data(as_text=True)
    summary = page.split('id="error-summary"')[1].split("</div>")[0]
    assert (
        "Our system had a problem, so what you sent was not received. Please choose your "
        "files again and send it all in a few minutes."
    ) in summary
    for index in (0, 1):
        assert field_error(page, f"answer-files-{index}-file") == (
            "Error: Not added: our system had a problem. Please choose it again in a few minutes."
        )
    assert ANSWER in html.unescape(page)
    assert stored_files(upload_dir) == files_before
    with app.app_context():
        consultation = _load(app, reference)
        assert consultation.documents == []
        assert consultation.status == RequestStatus.AWAITING_PATIENT
        assert asks.open_ask(consultation).answered_at is None
    assert "information_received" not in audited_actions(app, reference)

    assert _answer(patient, url, two, ANSWER).status_code == 302  # sent again
    with app.app_context():
        consultation = _load(app, reference)
        assert sorted(d.original_name for d in consultation.documents) == ["letter.pdf", "mri.pdf"]
        assert consultation.status == RequestStatus.REQUESTED


def test_an_answer_stored_whose_commit_answer_was_lost_is_thanked_and_its_emails_go(
    app: Flask,
    staff_client: FlaskClient,
    upload_dir: Path,
    lost_commit_answer: Callable[[], None],
) -> None:
    """The commit is made, then its answer lost: found stored after all (a row names the
    file), the patient is thanked as they would have been, the file kept, and the receipt
    and the clinic's notice handed to the queue rather than left minutes for the sweep."""
    reference = _new_request(app)
    assert _ask(staff_client, reference, ["imaging_report"]).status_code == 302
    patient, url = _patient(app, reference)
    huey = app.extensions["huey"]
    huey.flush()
    response = _answer(
        patient, url, {0: (pdf_bytes("MRI"), "mri.pdf")}, ANSWER, then=lost_commit_answer
    )
    assert response.status_code == 302
    assert huey.pending_count() >= 2  # the patient's receipt and the clinic's notice
    shown = patient.get(url).get_data(as_text=True)
    assert "Thank you: the clinic has received what you sent." in shown
    with app.app_context():
        consultation = _load(app, reference)
        [document] = consultation.documents
        assert consultation.status == RequestStatus.REQUESTED
    assert [p.name for p in stored_files(upload_dir)] == [document.stored_name]


def test_an_answer_the_database_cannot_say_it_stored_keeps_its_files_and_says_so(
    app: Flask,
    staff_client: FlaskClient,
    upload_dir: Path,
    failing_commit: Callable[[], None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The commit fails and the database cannot be asked whether it was stored after all
    (still failing): the file stays for the reconciliation, and the page says it cannot
    confirm, rather than "not received"."""

    def still_failing(*_args: object) -> bool:
        raise OperationalError("select", {}, Exception("the database system is shutting down"))

    # Neither by its files nor, once the commit failed, by its form's one-time key.
    monkeypatch.setattr("booking.requests.asks.named_by_rows", still_failing)
    commit, failed, answered_with = DefaultDialect.do_commit, [], asks.answered_with

    def noted(self: DefaultDialect, connection: Any) -> None:
        try:
            commit(self, connection)
        except Exception:
            failed.append(True)
            raise

    def failing_once_the_commit_failed(request_id: int, key: str) -> bool:
        return still_failing() if failed else answered_with(request_id, key)

    monkeypatch.setattr(DefaultDialect, "do_commit", noted)
    monkeypatch.setattr("booking.requests.asks.answered_with", failing_once_the_commit_failed)
    reference = _new_request(app)
    assert _ask(staff_client, reference, ["imaging_report"]).status_code == 302
    patient, url = _patient(app, reference)
    response = _answer(patient, url, {0: (pdf_bytes("MRI"), "mri.pdf")}, ANSWER, failing_commit)
    assert response.status_code == 503
    assert "we cannot confirm that this was sent" in response.get_data(as_text=True)
    assert len(stored_files(upload_dir)) == 1
    with app.app_context():
        assert _load(app, reference).documents == []


def test_an_answer_without_a_file_the_database_failed_to_store_is_said_not_received(
    app: Flask, staff_client: FlaskClient, failing_commit: Callable[[], None]
) -> None:
    """No file to look for: the form's one-time key says the answer was not stored, so the
    page says so (the answer kept, to send again), not "we cannot confirm"; sent again from
    the page shown, it is received once."""
    reference = _new_request(app)
    assert _ask(staff_client, reference, [], QUESTION).status_code == 302
    patient, url = _patient(app, reference)
    response = _answer(patient, url, {}, ANSWER, then=failing_commit)
    assert response.status_code == 503
    page = response.get_data(as_text=True)
    summary = page.split('id="error-summary"')[1].split("</div>")[0]
    assert (
        "Our system had a problem, so your answer was not received. It is still below: please "
        "send it again in a few minutes."
    ) in summary
    assert ANSWER in html.unescape(page)
    with app.app_context():
        assert asks.open_ask(_load(app, reference)).answered_at is None

    assert _answer(patient, url, {}, ANSWER, shown=page).status_code == 302  # sent again
    with app.app_context():
        consultation = _load(app, reference)
        assert consultation.status == RequestStatus.REQUESTED
    assert audited_actions(app, reference).count("information_received") == 1


@pytest.mark.parametrize("with_file", [False, True], ids=["no-file", "file"])
def test_an_answer_stored_whose_commit_answer_was_lost_is_found_by_its_key_and_sent_once(
    app: Flask,
    staff_client: FlaskClient,
    upload_dir: Path,
    lost_commit_answer: Callable[[], None],
    with_file: bool,
) -> None:
    """The commit is made, then its answer lost: found by the form's one-time key (with a
    file or none), the patient is thanked and the emails handed to the queue; the same page
    sent again (Back, send) is thanked too, and answers nothing twice."""
    reference = _new_request(app)
    assert _ask(staff_client, reference, ["imaging_report"], QUESTION).status_code == 302
    patient, url = _patient(app, reference)
    huey = app.extensions["huey"]
    huey.flush()
    files = {0: (pdf_bytes("MRI"), "mri.pdf")} if with_file else {}
    shown = patient.get(url).get_data(as_text=True)
    response = _answer(patient, url, files, ANSWER, then=lost_commit_answer, shown=shown)
    assert response.status_code == 302
    assert huey.pending_count() >= 2  # the patient's receipt and the clinic's notice
    thanks = "Thank you: the clinic has received what you sent."
    assert thanks in patient.get(url).get_data(as_text=True)
    files = {0: (pdf_bytes("MRI"), "mri.pdf")} if with_file else {}  # (a stream is read once)
    assert _answer(patient, url, files, ANSWER, shown=shown).status_code == 302
    assert thanks in patient.get(url).get_data(as_text=True)
    with app.app_context():
        consultation = _load(app, reference)
        assert consultation.status == RequestStatus.REQUESTED
        assert len(consultation.documents) == with_file
    assert len(stored_files(upload_dir)) == with_file
    assert audited_actions(app, reference).count("information_received") == 1


@pytest.mark.parametrize("with_file", [False, True], ids=["no-file", "file"])
def test_an_answer_whose_checks_the_database_failed_is_said_not_received(
    app: Flask,
    staff_client: FlaskClient,
    upload_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    with_file: bool,
) -> None:
    """The database fails in the checks before anything is written (a file saved, a row
    changed): nothing can be stored, so the page says the answer was not received, rather
    than "we cannot confirm"."""
    reference = _new_request(app)
    assert _ask(staff_client, reference, ["imaging_report"], QUESTION).status_code == 302
    patient, url = _patient(app, reference)

    def down(*_args: object) -> None:
        raise OperationalError("select", {}, Exception("the database system is shutting down"))

    files = {0: (pdf_bytes("MRI"), "mri.pdf")} if with_file else {}
    response = _answer(
        patient,
        url,
        files,
        ANSWER,
        then=lambda: monkeypatch.setattr("booking.requests.asks.no_room_for", down),
    )
    assert response.status_code == 503
    page = response.get_data(as_text=True)
    assert (
        "Please choose your files again and send it all in a few minutes."
        if with_file
        else "It is still below: please send it again in a few minutes."
    ) in page
    assert ANSWER in html.unescape(page)
    assert stored_files(upload_dir) == []
    with app.app_context():
        assert asks.open_ask(_load(app, reference)).answered_at is None


def test_an_answer_sent_meanwhile_by_the_same_page_is_not_stored_twice(
    app: Flask, staff_client: FlaskClient, upload_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The service itself, for the send that finds the first one committed only once it
    holds the lock (its files scanned meanwhile): nothing answered twice, this one's file
    deleted."""
    reference = _new_request(app)
    assert _ask(staff_client, reference, ["imaging_report"], QUESTION).status_code == 302
    key = "k" * 43
    with app.app_context():
        consultation = _load(app, reference)
        ask_id = asks.open_ask(consultation).id
        upload = DocumentUpload(io.BytesIO(pdf_bytes("MRI")), "mri.pdf")
        assert asks.answer_ask(consultation, ask_id, [], ANSWER, key=key) == 0
        # The first send found only under the lock: not by the check before it.
        real, calls = asks.answered_with, []

        def late(request_id: int, key: str) -> bool:
            calls.append(key)
            return len(calls) > 1 and real(request_id, key)

        monkeypatch.setattr(asks, "answered_with", late)
        monkeypatch.setattr(asks, "_open_ask_with_room", lambda *_args: None)  # (answered)
        files = [("imaging_report", upload)]
        assert asks.answer_ask(_load(app, reference), ask_id, files, ANSWER, key=key) == 1
        assert len(calls) == 2
        assert _load(app, reference).documents == []
    assert stored_files(upload_dir) == []
    assert audited_actions(app, reference).count("information_received") == 1


def test_a_spanish_speaking_patient_is_asked_in_spanish(
    app: Flask, staff_client: FlaskClient
) -> None:
    reference = _new_request(app, locale="es")
    assert _ask(staff_client, reference, ["imaging_report"], QUESTION).status_code == 302
    [email] = [e for e in _emails(app, reference) if e.template == "request_update"]
    assert email.subject == f"Necesitamos algo de usted ({reference})"
    assert "Abra su página privada" in email.body_text
    # The timeline note is the staff's, in English.
    record = staff_client.get(f"/staff/requests/{reference}").get_data(as_text=True)
    assert "Asked the patient for: MRI or CT report from the last 12 months, a question" in record

    patient, url = _patient(app, reference)
    page = patient.get(url, headers={"Accept-Language": "es"}).get_data(as_text=True)
    assert "La clínica necesita algo de usted" in page
    assert "Informe de resonancia magnética o TC de los últimos 12 meses" in page


def test_one_reminder_after_the_set_days_whoever_runs_the_job(
    app: Flask, staff_client: FlaskClient
) -> None:
    reference = _new_request(app)
    assert _ask(staff_client, reference, [], QUESTION).status_code == 302
    days = app.config["ASK_REMINDER_DAYS"]
    with app.app_context():
        assert asks.send_due_reminders(now_utc() + timedelta(days=days - 1)) == []
        later = now_utc() + timedelta(days=days, minutes=1)
        [queued] = asks.send_due_reminders(later)
        # A second run (another worker, or the job after the worker was down) sends nothing.
        assert asks.send_due_reminders(later) == []
        assert asks.send_due_reminders(later + timedelta(days=days)) == []
        email = db.session.get(OutboxEmail, queued)
        assert email is not None
        assert email.subject == f"Reminder: we still need something from you ({reference})"
        assert QUESTION not in email.body_text
    record = staff_client.get(f"/staff/requests/{reference}").get_data(as_text=True)
    assert "Reminded on" in record


def test_one_patients_failing_reminder_holds_back_no_later_patients(
    app: Flask, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """One reminder that cannot be written (here its email fails) is logged and tried again
    next run; every other patient still gets theirs."""
    with app.app_context():
        coordinator = make_staff("coordinator", "cora@example.com")
        failing = make_request(email="failing@example.com")
        other = make_request(email="other@example.com")
        for consultation in (failing, other):
            ask = asks.ask_patient(consultation, coordinator, [], QUESTION)
            ask.asked_at -= timedelta(days=app.config["ASK_REMINDER_DAYS"] + 1)
            db.session.commit()
        failing_id = failing.id
        compose = asks.emails.information_reminder

        def fail_for_one(consultation: ConsultationRequest) -> OutboxEmail | None:
            if consultation.id == failing_id:
                raise RuntimeError("cannot compose")
            return compose(consultation)

        monkeypatch.setattr(asks.emails, "information_reminder", fail_for_one)
        [queued] = asks.send_due_reminders()
        assert db.session.get(OutboxEmail, queued).recipient == "other@example.com"
        monkeypatch.setattr(asks.emails, "information_reminder", compose)
        [again] = asks.send_due_reminders()  # the failed one's claim was undone with it
        assert db.session.get(OutboxEmail, again).recipient == "failing@example.com"
    assert "reminder of ask" in caplog.text and "failed; the others go on" in caplog.text


def test_an_answered_ask_is_not_reminded(app: Flask, staff_client: FlaskClient) -> None:
    reference = _new_request(app)
    assert _ask(staff_client, reference, [], QUESTION).status_code == 302
    patient, url = _patient(app, reference)
    assert _answer(patient, url, {}, ANSWER).status_code == 302
    with app.app_context():
        later = now_utc() + timedelta(days=app.config["ASK_REMINDER_DAYS"] + 1)
        assert asks.send_due_reminders(later) == []


def test_an_answer_to_an_ask_the_clinic_replaced_since_the_page_showed_it_is_not_filed(
    app: Flask, staff_client: FlaskClient, upload_dir: Path
) -> None:
    """The patient's page shows ask A (a scan report; "did you fall?"); staff withdraw it and
    ask B (the list of medicines). The page's answer was filed under B: the scan report as
    the list of medicines, B answered with A's answer, B's question never shown. Now it is
    refused, nothing kept, and the page shows B with what was typed."""
    reference = _new_request(app)
    assert _ask(staff_client, reference, ["imaging_report"], "Did you fall?").status_code == 302
    patient, url = _patient(app, reference)
    page = patient.get(url).get_data(as_text=True)
    record = staff_client.get(f"/staff/requests/{reference}").get_data(as_text=True)
    assert (
        staff_client.post(
            f"/staff/requests/{reference}/ask/withdraw",
            data={"withdraw-csrf_token": _tokens(record)["withdraw-csrf_token"], "confirmed": "1"},
        ).status_code
        == 302
    )
    assert (
        _ask(staff_client, reference, ["medication_list"], "Which painkillers?").status_code == 302
    )
    stale = {
        "answer-csrf_token": _tokens(page)["answer-csrf_token"],
        "answer-ask_id": hidden_value(page, "answer-ask_id"),
        "answer-answer": "No fall.",
    }
    response = patient.post(
        f"{url}/answer",
        data={**stale, "answer-files-0-file": (io.BytesIO(pdf_bytes("MRI lumbar")), "mri.pdf")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 409
    shown = response.get_data(as_text=True)
    assert "The clinic has changed what it is asking you for" in shown
    assert "Which painkillers?" in shown and "No fall." in shown
    with app.app_context():
        consultation = _load(app, reference)
        assert consultation.documents == []
        assert asks.open_ask(consultation).question == "Which painkillers?"
        assert consultation.status == RequestStatus.AWAITING_PATIENT
    assert stored_files(upload_dir) == []
    # The page shown again answers the ask it shows.
    again = {**stale, "answer-ask_id": hidden_value(shown, "answer-ask_id")}
    again["answer-answer"] = "Ibuprofen."
    assert patient.post(f"{url}/answer", data=again).status_code == 302
    with app.app_context():
        answered = asks.asks_of(_load(app, reference))[0]
        assert (answered.question, answered.answer) == ("Which painkillers?", "Ibuprofen.")


def test_a_page_shown_before_the_form_named_its_ask_is_answered_only_for_a_first_ask(
    app: Flask, staff_client: FlaskClient
) -> None:
    """A page open while the release that added the ask's id came in posts none: its answer
    is taken for the open ask when nothing could be mixed up with it (the request's first
    ask), and refused as changed otherwise: after an ask withdrawn, or one answered from
    another tab (the old page still shows it)."""
    reference = _new_request(app)
    assert _ask(staff_client, reference, [], "Which side hurts more?").status_code == 302
    patient, url = _patient(app, reference)
    page = patient.get(url).get_data(as_text=True)
    old_page = {"answer-csrf_token": _tokens(page)["answer-csrf_token"], "answer-answer": "Left."}
    assert patient.post(f"{url}/answer", data=old_page).status_code == 302
    with app.app_context():
        assert asks.asks_of(_load(app, reference))[0].answer == "Left."
    # The first ask answered (from another tab, say); the old page, still showing it, is
    # sent again once staff asked something else.
    assert _ask(staff_client, reference, [], "Did you fall?").status_code == 302
    assert patient.post(f"{url}/answer", data=old_page).status_code == 409
    with app.app_context():
        assert asks.open_ask(_load(app, reference)).answer is None
    # An ask withdrawn and another asked: the page may show either.
    other = _new_request(app)
    assert _ask(staff_client, other, [], "Did you fall?").status_code == 302
    record = staff_client.get(f"/staff/requests/{other}").get_data(as_text=True)
    withdraw = {"withdraw-csrf_token": _tokens(record)["withdraw-csrf_token"], "confirmed": "1"}
    assert staff_client.post(f"/staff/requests/{other}/ask/withdraw", data=withdraw).status_code
    assert _ask(staff_client, other, [], "Which painkillers?").status_code == 302
    patient, url = _patient(app, other)
    page = patient.get(url).get_data(as_text=True)
    old_page = {"answer-csrf_token": _tokens(page)["answer-csrf_token"], "answer-answer": "No."}
    assert patient.post(f"{url}/answer", data=old_page).status_code == 409


def test_staff_can_stop_waiting_and_the_patient_is_told_to_send_nothing(
    app: Flask, staff_client: FlaskClient
) -> None:
    reference = _new_request(app)
    assert _ask(staff_client, reference, ["medication_list"]).status_code == 302
    before = len(_emails(app, reference))
    record = staff_client.get(f"/staff/requests/{reference}").get_data(as_text=True)
    # The record's button asks first (it emails the patient at once): nothing changes yet.
    question, _warnings, page = asked(
        staff_client.post(
            f"/staff/requests/{reference}/ask/withdraw",
            data={"withdraw-csrf_token": _tokens(record)["withdraw-csrf_token"]},
        )
    )
    assert question == f"Stop waiting for the patient of {reference}?"
    assert "The patient is emailed that they need not send anything more" in page
    assert f'href="/staff/requests/{reference}#asks"' in page  # cancel
    assert len(_emails(app, reference)) == before
    with app.app_context():
        assert _load(app, reference).status == RequestStatus.AWAITING_PATIENT
    response = confirm(staff_client, page)
    assert response.status_code == 302
    # The patient, emailed the ask, is told that nothing more is needed.
    emails = _emails(app, reference)
    assert len(emails) == before + 1
    assert emails[-1].subject == f"You need not send us anything more ({reference})"
    assert "you need not send anything" in emails[-1].body_text
    with app.app_context():
        assert _load(app, reference).status == RequestStatus.REQUESTED
    assert "information_ask_withdrawn" in audited_actions(app, reference)
    patient, url = _patient(app, reference)
    assert "The clinic needs something from you" not in patient.get(url).get_data(as_text=True)
    # Withdrawn again from the same page: refused, said in a message, the title says so first.
    again = staff_client.post(
        f"/staff/requests/{reference}/ask/withdraw",
        data={"withdraw-csrf_token": _tokens(record)["withdraw-csrf_token"], "confirmed": "1"},
        follow_redirects=True,
    )
    shown = again.get_data(as_text=True)
    assert 'class="alert alert-danger' in shown and "<title>Error: " in shown
    assert "<title>Error: " not in staff_client.get(f"/staff/requests/{reference}").get_data(
        as_text=True
    )


def test_a_specialist_may_ask_their_own_patient_and_withdraw_the_ask(
    app: Flask, auth: AuthActions, clinic: Clinic
) -> None:
    """Asking for information decides nothing about the request (and the specialist may write
    to the patient): the role's rule allows it, for the requests assigned to them only."""
    with app.app_context():
        weber = db.session.get(StaffUser, clinic.weber.id)
        assert role_may(weber, RequestStatus.AWAITING_PATIENT)
        assert role_may(weber, RequestStatus.REQUESTED)
        assert not role_may(weber, RequestStatus.CONFIRMED)
        consultation = make_request()
        consultation.assigned_specialist_id = weber.id
        db.session.commit()
        theirs = consultation.reference
        other = make_request().reference
    client = auth.new_client("specialist")
    assert _ask(client, theirs, ["medication_list"]).status_code == 302
    record = client.get(f"/staff/requests/{theirs}").get_data(as_text=True)
    withdrawn = client.post(
        f"/staff/requests/{theirs}/ask/withdraw",
        data={"withdraw-csrf_token": _tokens(record)["withdraw-csrf_token"], "confirmed": "1"},
    )
    assert withdrawn.status_code == 302
    assert [a for a in audited_actions(app, theirs) if a.startswith("information")] == [
        "information_asked",
        "information_ask_withdrawn",
    ]
    assert client.get(f"/staff/requests/{other}").status_code == 404


def test_a_patient_marked_deceased_is_not_asked(app: Flask, staff_client: FlaskClient) -> None:
    """The request would wait for an answer that cannot come (nothing more is sent to the
    address), and the page said the patient was emailed."""
    reference = _new_request(app)
    with app.app_context():
        _load(app, reference).patient.deceased_at = now_utc()
        db.session.commit()
    before = len(_emails(app, reference))
    response = _ask(staff_client, reference, ["medication_list"])
    assert response.status_code == 409
    page = response.get_data(as_text=True)
    assert "The patient is marked deceased: nothing is sent to them." in page
    assert "The patient is asked by email" not in page
    assert len(_emails(app, reference)) == before
    with app.app_context():
        assert _load(app, reference).status == RequestStatus.REQUESTED


def test_an_ask_needs_an_item_or_a_question_and_an_unconfirmed_request(
    app: Flask, staff_client: FlaskClient, clinic: Clinic
) -> None:
    reference = _new_request(app)
    response = _ask(staff_client, reference, [])
    assert response.status_code == 422
    assert "Please tick what the patient should send, or write a question." in (
        response.get_data(as_text=True)
    )
    with app.app_context():
        assert _load(app, reference).status == RequestStatus.REQUESTED
        # A confirmed request is past asking: refused by the service whatever the page offers.
        consultation = _load(app, reference)
        consultation.status = RequestStatus.CONFIRMED
        db.session.commit()
    page = staff_client.get(f"/staff/requests/{reference}").get_data(as_text=True)
    assert "Ask the patient for something" not in page
    response = staff_client.post(
        f"/staff/requests/{reference}/ask",
        data={"ask-csrf_token": _tokens(page)["note-csrf_token"], "ask-question": QUESTION},
    )
    assert response.status_code == 409
    assert "Only a request that is not confirmed yet" in response.get_data(as_text=True)


def test_confirming_a_waiting_request_ends_the_information_received_mark(
    app: Flask, staff_client: FlaskClient, clinic: Clinic
) -> None:
    reference = _new_request(app)
    assert _ask(staff_client, reference, [], QUESTION).status_code == 302
    patient, url = _patient(app, reference)
    assert _answer(patient, url, {}, ANSWER).status_code == 302
    _confirm(staff_client, reference, clinic)
    with app.app_context():
        consultation = _load(app, reference)
        assert consultation.status == RequestStatus.CONFIRMED
        assert consultation.information_received_at is None


def test_admins_shape_the_checklist_staff_ask_from(
    app: Flask, auth: AuthActions, clinic: Clinic
) -> None:
    reference = _new_request(app, locale="es")
    auth.login("admin")
    client = auth.client
    page = client.get("/staff/admin/checklist").get_data(as_text=True)
    tokens = _tokens(page)
    response = client.post(
        "/staff/admin/checklist",
        data={
            "csrf_token": tokens["csrf_token"],
            "label": "X-ray of the whole spine",
            "label_es": "Radiografía de toda la columna",
        },
    )
    assert response.status_code == 302
    # The same name again (any case), or a default item's, is refused: it would be listed
    # twice in every ask and checklist.
    # So is one spaced differently, or one whose Spanish name is another item's.
    for name, spanish in (
        ("x-ray of the whole spine", ""),
        ("Referral letter", ""),
        ("X-ray  of the  whole spine", ""),
        ("Whole-spine X-ray", "radiografía de toda la columna"),
    ):
        again = client.post(
            "/staff/admin/checklist",
            data={"csrf_token": tokens["csrf_token"], "label": name, "label_es": spanish},
        )
        assert again.status_code == 422, name
        assert "already has an item with this name" in again.get_data(as_text=True)
    # A name of nothing visible is no name (it showed as a blank item).
    blank = client.post(
        "/staff/admin/checklist", data={"csrf_token": tokens["csrf_token"], "label": "\u200b"}
    )
    assert blank.status_code == 422
    for _twice in range(2):  # pressed in two tabs: one change, one audit row
        response = client.post(
            "/staff/admin/checklist/operation_notes/active",
            data={"csrf_token": tokens["csrf_token"], "active": "0"},
        )
        assert response.status_code == 302
    assert audited_actions(app, "operation_notes") == ["checklist_item_switched_off"]
    page = client.get("/staff/admin/checklist").get_data(as_text=True)
    assert "X-ray of the whole spine" in page and "switched off" in page
    assert {"checklist_item_added", "checklist_item_switched_off"} <= {
        row
        for row in audited_actions(app, "x_ray_of_the_whole_spine")
        + audited_actions(app, "operation_notes")
    }

    record = client.get(f"/staff/requests/{reference}").get_data(as_text=True)
    form = record[record.index('id="ask-heading"') :]
    assert "X-ray of the whole spine" in form and "Notes of earlier operations" not in form
    assert _ask(client, reference, ["x_ray_of_the_whole_spine"]).status_code == 302
    patient, url = _patient(app, reference)
    page = patient.get(url, headers={"Accept-Language": "es"}).get_data(as_text=True)
    assert "Radiografía de toda la columna" in page
    # A switched-off item cannot be asked for by a hand-made post either.
    assert _ask(client, _new_request(app), ["operation_notes"]).status_code == 422


def test_a_new_items_spanish_name_like_another_items_is_refused_at_that_name(
    app: Flask, auth: AuthActions, clinic: Clinic
) -> None:
    """A new name in English and, in Spanish, a default item's Spanish name: the refusal was
    shown at the English name, which is new, leaving the admin to guess what to change."""
    auth.login("admin")
    client = auth.client
    token = _tokens(client.get("/staff/admin/checklist").get_data(as_text=True))["csrf_token"]
    with app.test_request_context():
        spanish = asks.label_of("referral_letter", None, "es")
    assert spanish != asks.label_of("referral_letter", None, "en")
    response = client.post(
        "/staff/admin/checklist",
        data={"csrf_token": token, "label": "Passport copy", "label_es": spanish.upper()},
    )
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    said = "Error: The checklist already has an item with this name."
    assert field_error(page, "label_es") == said
    assert 'id="label-error"' not in page
    # The clinic's own name taken is still said at it (first, when both are).
    response = client.post(
        "/staff/admin/checklist",
        data={"csrf_token": token, "label": "Referral letter", "label_es": spanish},
    )
    assert field_error(response.get_data(as_text=True), "label") == said
    assert 'id="label_es-error"' not in response.get_data(as_text=True)


@pytest.fixture
def spanish_clinic(app_settings: dict[str, Any]) -> None:
    """The clinic's own language is Spanish (``BABEL_DEFAULT_LOCALE``); patients read English
    too. Asked for before ``app``."""
    app_settings["BABEL_DEFAULT_LOCALE"] = "es"


def test_a_spanish_clinics_admin_names_an_item_in_english_too(
    spanish_clinic: None, app: Flask, auth: AuthActions, staff: Staff
) -> None:
    """The form offered a name "in Spanish" besides the clinic's own, whatever the clinic's
    language: at a Spanish clinic the two were one language, the name typed in the Spanish
    box was dropped unsaid, and no English name could be given. The form follows the
    clinic's language: its name, then one per other language patients read."""
    auth.login("admin")
    client = auth.client
    page = client.get("/staff/admin/checklist").get_data(as_text=True)
    assert 'for="label_en"' in page and "Name in English" in page
    assert 'name="label_es"' not in page
    token = _tokens(page)["csrf_token"]
    response = client.post(
        "/staff/admin/checklist",
        data={
            "csrf_token": token,
            "label": "Radiografía de toda la columna",
            "label_en": "X-ray of the whole spine",
        },
    )
    assert response.status_code == 302
    with app.app_context():
        [item] = db.session.scalars(select(asks.ChecklistItem))
        assert item.labels == {
            "es": "Radiografía de toda la columna",
            "en": "X-ray of the whole spine",
        }
    with app.test_request_context():
        assert asks.label_of(item.code, item.labels, "en") == "X-ray of the whole spine"
        english = asks.label_of("referral_letter", None, "en")
    # An English name like another item's is refused at the English name.
    response = client.post(
        "/staff/admin/checklist",
        data={"csrf_token": token, "label": "Carta del médico de cabecera", "label_en": english},
    )
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert field_error(page, "label_en") == (
        "Error: The checklist already has an item with this name."
    )
    assert 'id="label-error"' not in page


def _main_name_label(page: str, field_id: str) -> str:
    """The label's text of the field ``field_id`` (without its "optional" mark)."""
    [label] = re.findall(rf'<label [^>]*for="{field_id}">([^<]*)<', page)
    return html.unescape(label).strip()


def test_a_spanish_clinics_admin_reads_which_language_each_name_is_in(
    spanish_clinic: None, app: Flask, auth: AuthActions, clinic: Clinic
) -> None:
    """Beside "Name in English", the clinic's own name field was labelled just "Name": read
    as the English one's twin, a Spanish clinic's admin typed English there. Every form
    naming what patients read (checklist items, locations, appointment types) says the
    clinic's language at its main name."""
    auth.login("admin")
    client = auth.client
    for path, main, other in (
        ("/staff/admin/checklist", "label", "label_en"),
        ("/staff/admin/locations", "name", "name_en"),
        (f"/staff/admin/locations/{clinic.location}", "name", "name_en"),
        ("/staff/admin/scheduling/", "type-name", "type-name_en"),
        (f"/staff/admin/scheduling/types/{clinic.type}", "name", "name_en"),
    ):
        page = client.get(path).get_data(as_text=True)
        assert _main_name_label(page, main) == "Name in Spanish", path
        assert _main_name_label(page, other) == "Name in English", path


def test_an_english_clinics_main_name_says_english(auth: AuthActions, staff: Staff) -> None:
    auth.login("admin")
    page = auth.client.get("/staff/admin/checklist").get_data(as_text=True)
    assert _main_name_label(page, "label") == "Name in English"
    assert _main_name_label(page, "label_es") == "Name in Spanish"


def test_the_patients_export_holds_the_asks_and_erasure_removes_them(
    app: Flask, auth: AuthActions, clinic: Clinic
) -> None:
    reference = _new_request(app)
    auth.login("admin")
    client = auth.client
    assert _ask(client, reference, ["referral_letter"], QUESTION).status_code == 302
    patient, url = _patient(app, reference)
    assert _answer(patient, url, {}, ANSWER).status_code == 302
    with app.app_context():
        consultation = _load(app, reference)
        consultation.status = RequestStatus.DECLINED  # erasure needs a closed request
        db.session.commit()

    page = client.get(f"/staff/admin/privacy/{reference}").get_data(as_text=True)
    token = _tokens(page)["csrf_token"]
    response = client.post(f"/staff/admin/privacy/{reference}/export", data={"csrf_token": token})
    assert response.status_code == 200
    archive = zipfile.ZipFile(io.BytesIO(response.get_data()))
    [exported] = json.loads(archive.read("patient.json"))["requests"]
    [ask] = exported["information_requests"]
    assert (ask["items"], ask["question"], ask["answer"]) == (
        ["Referral letter"],
        QUESTION,
        ANSWER,
    )
    summary = archive.read("summary.txt").decode()
    assert QUESTION in summary and ANSWER in summary

    response = client.post(
        f"/staff/admin/privacy/{reference}/erase",
        data={"csrf_token": token, "confirmation": reference},
    )
    assert response.status_code == 302
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(asks.InformationRequest)) == 0


def _confirm(staff_client: FlaskClient, reference: str, clinic: Clinic) -> None:
    """Staff confirm the request at a time of Dr. Weber's, through the record's form."""
    record = staff_client.get(f"/staff/requests/{reference}").get_data(as_text=True)
    # Ahead, as a real appointment is: the patient's private link ends 30 days after the
    # appointment (a fixed date here broke this file from then on).
    with staff_client.application.app_context():
        day = clinic_today() + timedelta(days=3)
    response = staff_client.post(
        f"/staff/requests/{reference}/confirm",
        data={
            "slot-csrf_token": _tokens(record)["slot-csrf_token"],
            "slot-specialist": clinic.weber.id,
            "slot-location": clinic.location,
            "slot-day": day.isoformat(),
            "slot-start": "10:00",
            "slot-appointment_type": clinic.type,
        },
    )
    assert response.status_code == 302, response.get_data(as_text=True)[:800]


def test_a_request_confirmed_while_waiting_stops_asking_and_reminding(
    app: Flask, staff_client: FlaskClient, clinic: Clinic
) -> None:
    reference = _new_request(app)
    assert _ask(staff_client, reference, ["imaging_report"], QUESTION).status_code == 302
    _confirm(staff_client, reference, clinic)
    with app.app_context():
        consultation = _load(app, reference)
        assert consultation.status == RequestStatus.CONFIRMED
        assert asks.open_ask(consultation) is None
        [ask] = asks.asks_of(consultation)
        assert ask.withdrawn_at is not None and ask.answered_at is None
        later = now_utc() + timedelta(days=app.config["ASK_REMINDER_DAYS"] + 1)
        assert asks.send_due_reminders(later) == []
    patient, url = _patient(app, reference)
    assert "The clinic needs something from you" not in patient.get(url).get_data(as_text=True)
    record = staff_client.get(f"/staff/requests/{reference}").get_data(as_text=True)
    assert "Asked, not sent" in record and "Asked, waiting" not in record


def test_staff_confirming_a_moment_after_asking_are_told_the_ask_ended(
    mail_settings: dict[str, Any],
    smtp: SmtpServer,
    app: Flask,
    staff_client: FlaskClient,
    clinic: Clinic,
) -> None:
    """A coordinator asks, then confirms before the worker has sent the ask's email. The
    confirmation ends the ask (the patient's page stops asking) and withdraws that email, by
    design: it would send the patient to a page with nothing to answer. Delivered through
    the worker to a real mail server, the patient gets the confirmation alone; the
    coordinator, told a moment ago "asked by email", is told the ask ended."""
    from booking.notifications.services import deliver_outbox_email

    reference = _new_request(app)
    assert _ask(staff_client, reference, ["imaging_report"], QUESTION).status_code == 302
    _confirm(staff_client, reference, clinic)
    record = staff_client.get(f"/staff/requests/{reference}").get_data(as_text=True)
    assert "The patient is no longer asked for the information requested" in html.unescape(record)
    with app.app_context():
        ids = list(db.session.scalars(select(OutboxEmail.id).order_by(OutboxEmail.id)))
        assert [deliver_outbox_email(i) for i in ids] == [None] * len(ids)
    subjects = [m.message["Subject"] for m in smtp.collector.wait_for(len(ids))]
    assert sorted(subjects) == sorted(
        [
            f"We received your request {reference}",
            f"New request {reference}",
            f"Your appointment is confirmed ({reference})",
        ]
    )


@pytest.mark.parametrize(("action", "locale"), [("decline", "en"), ("cancel", "es")])
def test_an_ask_email_still_waiting_is_withdrawn_when_the_request_closes(
    app: Flask, action: str, locale: str
) -> None:
    """The ask's email and its reminder wait for the mail server; staff then decline or
    cancel the request: neither goes (the closing email says where it stands). Told apart
    from the request's other emails by their subject, in the patient's language."""
    from booking.dashboard import services as workflow
    from booking.requests import emails

    with app.app_context():
        coordinator = make_staff("coordinator", "coord@example.com")
        consultation = make_request(locale=locale)
        asks.ask_patient(consultation, coordinator, ["imaging_report"], None)
        emails.information_reminder(consultation)
        db.session.commit()
        asked = set(
            db.session.scalars(
                select(OutboxEmail.subject).where(
                    OutboxEmail.id.in_(emails.waiting_ask_emails(consultation))
                )
            )
        )
        assert len(asked) == 2
        if action == "decline":
            workflow.decline_request(consultation, coordinator, "Not a case for us.")
        else:
            workflow.cancel_request(consultation, coordinator)
        waiting = db.session.scalars(
            select(OutboxEmail).where(OutboxEmail.request_id == consultation.id)
        ).all()
    # (By subject: SQLite gives a deleted row's id to the next one.)
    assert asked.isdisjoint(e.subject for e in waiting)
    # The receipt, the clinic's notice and the closing email still go.
    assert sorted(e.template for e in waiting) == [
        "new_request_staff",
        "request_received",
        "request_update",
    ]


def test_an_answer_with_more_files_than_the_request_has_room_for_stores_nothing(
    app_settings: dict[str, Any], app: Flask, staff_client: FlaskClient, upload_dir: Path
) -> None:
    """The request holds one document and the limit is two (set below before the app is
    made): two files are one too many, refused with a message; nothing is kept."""
    assert app_settings["MAX_DOCUMENTS"] == 2
    reference = _new_request(app, documents=1)
    _ask(staff_client, reference, ["imaging_report", "referral_letter"])
    patient, url = _patient(app, reference)
    files_before = stored_files(upload_dir)
    two = {0: (pdf_bytes("MRI"), "mri.pdf"), 1: (pdf_bytes("Letter"), "letter.pdf")}
    response = _answer(patient, url, two, ANSWER)
    page = response.get_data(as_text=True)
    assert "A request can hold at most 2 documents; you have 1 already." in page
    # About no one file: each file chosen says it was not added (no browser keeps it chosen).
    assert field_error(page, "answer-files-0-file") == NOT_ADDED_YET
    assert field_error(page, "answer-files-1-file") == NOT_ADDED_YET
    assert stored_files(upload_dir) == files_before
    with app.app_context():
        consultation = _load(app, reference)
        assert consultation.status == RequestStatus.AWAITING_PATIENT
        assert len(consultation.documents) == 1
    # One file fits.
    assert _answer(patient, url, {0: (pdf_bytes("MRI"), "mri.pdf")}, ANSWER).status_code == 302
    with app.app_context():
        assert len(_load(app, reference).documents) == 2


@pytest.fixture
def app_settings(app_settings: dict[str, Any], request: pytest.FixtureRequest) -> dict[str, Any]:
    if request.node.name.startswith("test_an_answer_with_more_files_than"):
        app_settings["MAX_DOCUMENTS"] = 2
    return app_settings


def test_the_checklist_points_to_the_documents_sent_with_the_request(
    app: Flask, staff_client: FlaskClient
) -> None:
    """A document sent with the request has no checklist item: the checklist does not call
    the items "not received" then, but points staff to the documents to check first."""
    with_one = _new_request(app, documents=1)
    without = _new_request(app)
    record = staff_client.get(f"/staff/requests/{with_one}").get_data(as_text=True)
    assert "the 1 document sent with the request</a>" in record
    assert "Not received" not in record
    bare = staff_client.get(f"/staff/requests/{without}").get_data(as_text=True)
    assert "Not received" in bare and "sent with the request</a>" not in bare


def _said_above_the_checklist(record: str) -> str:
    section = record[record.index('id="asks"') :]
    before = section[: section.index("<table")]
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", before.split("</h2>")[1])).split())


def test_the_checklist_tells_documents_added_later_from_those_sent_with_the_request(
    app: Flask, staff_client: FlaskClient
) -> None:
    """A document the patient added later (on their private page, or with a message) was
    counted as "sent with the request": the pointer says which came when."""
    from booking.manage.services import add_documents
    from booking.messages.services import send_patient_message

    with app.app_context():
        consultation = make_request(documents=1)
        sent_at = consultation.created_at - timedelta(hours=2)  # sent, then added to later
        consultation.created_at = consultation.documents[0].uploaded_at = sent_at
        db.session.commit()
        reference = consultation.reference
    record = staff_client.get(f"/staff/requests/{reference}").get_data(as_text=True)
    assert _said_above_the_checklist(record) == (
        "An item not asked for may already be in the 1 document sent with the request: "
        "check before asking."
    )
    with app.app_context():
        consultation = _load(app, reference)
        add_documents(consultation, [DocumentUpload(io.BytesIO(pdf_bytes("Scan")), "scan.pdf")])
        upload = DocumentUpload(io.BytesIO(pdf_bytes("Letter")), "letter.pdf")
        send_patient_message(_load(app, reference), "The letter.", upload)
    record = staff_client.get(f"/staff/requests/{reference}").get_data(as_text=True)
    assert _said_above_the_checklist(record) == (
        "An item not asked for may already be in the 3 documents (1 sent with the request, "
        "2 added later): check before asking."
    )
    # None sent with the request: they were all added later.
    with app.app_context():
        consultation = make_request()
        consultation.created_at -= timedelta(hours=2)
        db.session.commit()
        add_documents(consultation, [DocumentUpload(io.BytesIO(pdf_bytes("Scan")), "scan.pdf")])
        later = consultation.reference
    record = staff_client.get(f"/staff/requests/{later}").get_data(as_text=True)
    assert _said_above_the_checklist(record) == (
        "An item not asked for may already be in the 1 document the patient added later: "
        "check before asking."
    )


def test_the_checklist_points_to_the_documents_once_not_on_every_row(
    app: Flask, staff_client: FlaskClient
) -> None:
    """Every item not asked for read "Not asked for · see the 1 document sent with the
    request", the same pointer down the whole table: it is said once, above the checklist,
    and the rows say only "Not asked for"."""
    reference = _new_request(app, documents=1)
    record = staff_client.get(f"/staff/requests/{reference}").get_data(as_text=True)
    section = record[record.index('id="asks"') :]
    before = section[: section.index("<table")]
    said = " ".join(html.unescape(re.sub(r"<[^>]+>", "", before.split("</h2>")[1])).split())
    assert said == (
        "An item not asked for may already be in the 1 document sent with the request: "
        "check before asking."
    ), said
    assert section.count("sent with the request</a>") == 1
    cells = re.findall(
        r"<td>\s*(<span class=\"text-body-secondary\">Not asked for.*?)</td>", section, re.S
    )
    assert len(cells) > 1, section
    assert {" ".join(re.sub(r"<[^>]+>", " ", c).split()) for c in cells} == {"Not asked for"}


def test_the_question_for_the_patient_says_optional_once(
    app: Flask, staff_client: FlaskClient
) -> None:
    """The label says "(optional)": its hint no longer starts with "Optional." as well."""
    reference = _new_request(app)
    record = staff_client.get(f"/staff/requests/{reference}").get_data(as_text=True)
    assert "The patient reads it on their private page; the email only says" in record
    assert "Optional. The patient reads" not in record


def test_no_reminder_once_the_patient_answered_while_the_job_ran(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The job reads the asks due, then claims each: a patient who answers in between gets
    "thank you", not "we still need something from you" after it."""
    import sqlalchemy

    from booking.requests import asks as job

    with app.app_context():
        coordinator = make_staff("coordinator", "cora@example.com")
        consultation = make_request()
        ask = job.ask_patient(consultation, coordinator, [], "Which side hurts more?")
        ask.asked_at -= timedelta(days=app.config["ASK_REMINDER_DAYS"] + 1)
        db.session.commit()
        request_id = consultation.id
        answered: list[bool] = []

        def answer_then_claim(*args):
            if not answered:
                answered.append(True)
                job.answer_ask(
                    db.session.get(ConsultationRequest, request_id), ask.id, [], "The left."
                )
            return sqlalchemy.update(*args)

        monkeypatch.setattr(job, "update", answer_then_claim)
        assert job.send_due_reminders() == []
        assert answered
        subjects = db.session.scalars(
            select(OutboxEmail.subject).where(OutboxEmail.request_id == request_id)
        ).all()
        assert not [s for s in subjects if s.startswith("Reminder: we still need")], subjects


def test_a_document_the_virus_scan_removed_is_not_present_on_the_checklist(
    app: Flask, staff_client: FlaskClient
) -> None:
    """The patient's file for an item was held for its scan and then removed as infected: the
    checklist still said "Present" (and pointed to documents no longer there), so staff would
    not ask again. A removed file is not present now; one held for its scan is present, said
    to be not yet scanned."""
    from booking.documents.scanning import ScanStatus

    with app.app_context():
        consultation = make_request(documents=3)
        removed, held, _clean = consultation.documents
        removed.checklist_item, removed.scan_status = "imaging_report", ScanStatus.INFECTED
        held.checklist_item, held.scan_status = "referral_letter", ScanStatus.PENDING
        db.session.commit()
        reference = consultation.reference
    record = staff_client.get(f"/staff/requests/{reference}").get_data(as_text=True)
    section = record[record.index('id="asks"') :]
    imaging = section[section.index("MRI or CT report") :]
    imaging = imaging[: imaging.index("</tr>")]
    assert "Present" not in imaging and "report-0.pdf" not in imaging
    letter = section[section.index("Referral letter") :]
    letter = letter[: letter.index("</tr>")]
    assert "Present" in letter and "<bdi>report-1.pdf</bdi> (not yet scanned for viruses)" in letter
    assert "the 1 document sent with the request</a>" in section  # the clean one only

    summary = staff_client.get(f"/staff/requests/{reference}/summary").get_data(as_text=True)
    assert "report-0.pdf</bdi> <strong>(removed: the virus scan found malware in it)" in summary
    assert "report-1.pdf</bdi> <strong>(not yet scanned for viruses: it opens" in summary
    assert "report-2.pdf</bdi></td>" in summary
