"""Every upload is scanned by a real clamd before it is stored: a clean file is kept as
scanned, EICAR is refused with nothing stored and an audit row, and a scanner that is down
or silent refuses the file or holds it, hidden from staff, until the worker's retry passes.

clamd runs with a signature database made here that knows EICAR; without clamd installed
the tests are skipped (a failure under CI, which installs it: ``make browser``)."""

from __future__ import annotations

import io
import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from booking.audit.models import AuditEvent
from booking.documents.models import Document
from booking.documents.scanning import ScanStatus
from booking.documents.storage import DocumentStorage
from booking.extensions import db
from booking.requests.drafts import DraftDocument
from booking.requests.files import reconcile_files, rescan_pending
from tests.factories import make_request
from tests.support import (
    EICAR,
    REQUEST_STEPS,
    AuthActions,
    answer_red_flags,
    field_error,
    open_manage_link,
    open_step,
    outbox_emails,
    page_token,
    pdf_bytes,
    post_request,
    post_step,
    running_clamd,
    send_request,
    stored_files,
    upload,
)

CSRF_FIELD = 'name="docs-csrf_token"'


def infected_pdf(title: str = "MRI report") -> bytes:
    """A PDF that opens as one (it passes the content check) with EICAR inside it."""
    return pdf_bytes(title).replace(b"%%EOF", b"%" + EICAR + b"\n%%EOF")


@pytest.fixture(scope="module")
def clamd_socket(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_clamd(tmp_path_factory.mktemp("clamd")) as path:
        yield path


@pytest.fixture
def app_settings(app_settings: dict[str, Any], clamd_socket: str) -> dict[str, Any]:
    app_settings.update(CLAMAV_ENABLED=True, CLAMAV_ADDRESS=clamd_socket, CLAMAV_TIMEOUT=10)
    return app_settings


def audit_rows(app: Flask, action: str) -> list[AuditEvent]:
    with app.app_context():
        rows = list(db.session.scalars(select(AuditEvent).where(AuditEvent.action == action)))
        db.session.expunge_all()
        return rows


def documents(app: Flask, kind: type = Document) -> list[Any]:
    with app.app_context():
        rows = list(db.session.scalars(select(kind).order_by(kind.id)))
        db.session.expunge_all()
        return rows


def test_a_clean_file_is_stored_as_scanned_and_staff_see_it(
    app: Flask, client: FlaskClient, auth: AuthActions, upload_dir: Path, staff: Any
) -> None:
    response = post_request(client, files=[(pdf_bytes(), "mri.pdf")])
    assert response.status_code == 303
    [document] = documents(app)
    assert document.scan_status == ScanStatus.CLEAN
    assert len(stored_files(upload_dir)) == 1

    auth.login("coordinator")
    reference = documents_reference(app, document.request_id)
    page = client.get(f"/staff/requests/{reference}").get_data(as_text=True)
    assert "Virus scan: nothing found" in page
    assert client.get(f"/staff/requests/{reference}/documents/{document.id}").status_code == 200


def reach_documents_step(client: FlaskClient) -> None:
    """Answer every step before the documents, as a patient does."""
    assert answer_red_flags(client).status_code == 303
    for code in REQUEST_STEPS:
        assert post_step(client, code).status_code == 303


def documents_reference(app: Flask, request_id: int) -> str:
    from booking.requests.models import ConsultationRequest

    with app.app_context():
        return db.session.get(ConsultationRequest, request_id).reference


@pytest.mark.parametrize("lang", ["en", "es"])
def test_eicar_in_a_pdf_is_refused_through_the_request_form_with_nothing_stored(
    app: Flask, client: FlaskClient, upload_dir: Path, lang: str
) -> None:
    client.get(f"/request/start?lang={lang}")
    reach_documents_step(client)
    response = upload(client, (infected_pdf(), "scan.pdf"))
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    expected = "malware" if lang == "en" else "malicioso"
    assert expected in page, page[:3000]
    assert stored_files(upload_dir) == []
    assert documents(app, DraftDocument) == []
    [event] = audit_rows(app, "upload_refused_infected")
    assert event.details["signature"].startswith("SpineConsult.Test.EICAR")
    assert "scan.pdf" not in str(event.details)  # what was refused, not the patient's names


def test_eicar_is_refused_on_the_private_link_and_nothing_is_stored(
    app: Flask, client: FlaskClient, upload_dir: Path
) -> None:
    with app.app_context():
        consultation = make_request()
        url = open_manage_link(client, consultation)
    page = client.get(url).get_data(as_text=True)
    token = page.split(CSRF_FIELD, 1)[1].split('value="', 1)[1].split('"', 1)[0]
    response = client.post(
        url + "/documents",
        data={
            "docs-csrf_token": token,
            "docs-documents-0-file": (io.BytesIO(infected_pdf()), "report.pdf"),
        },
        content_type="multipart/form-data",
    )
    assert response.status_code == 422
    assert "malware" in response.get_data(as_text=True)
    assert documents(app) == []
    assert stored_files(upload_dir) == []
    assert len(audit_rows(app, "upload_refused_infected")) == 1


def test_an_infected_file_among_several_on_the_private_link_is_said_beside_it(
    app: Flask, client: FlaskClient, upload_dir: Path
) -> None:
    """The clean file before it was scanned and stored: it is deleted with the rest (all or
    none), and says on its field to be chosen again, its description kept."""
    with app.app_context():
        url = open_manage_link(client, make_request())
    page = client.get(url).get_data(as_text=True)
    token = page.split(CSRF_FIELD, 1)[1].split('value="', 1)[1].split('"', 1)[0]
    response = client.post(
        url + "/documents",
        data={
            "docs-csrf_token": token,
            "docs-documents-0-file": (io.BytesIO(pdf_bytes("CT")), "ct.pdf"),
            "docs-documents-0-description": "CT scan",
            "docs-documents-1-file": (io.BytesIO(infected_pdf()), "report.pdf"),
        },
        content_type="multipart/form-data",
    )
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert field_error(page, "docs-documents-0-file") == (
        "Error: Not added yet, as something else on this form needs correcting. "
        "Please choose this file again."
    )
    assert "malware" in field_error(page, "docs-documents-1-file")
    assert 'value="CT scan"' in page
    assert documents(app) == []
    assert stored_files(upload_dir) == []


def test_scanner_down_refuses_the_file_by_default(
    app: Flask, client: FlaskClient, upload_dir: Path, tmp_path: Path
) -> None:
    app.config["CLAMAV_ADDRESS"] = str(tmp_path / "nobody-listens.sock")
    reach_documents_step(client)
    response = upload(client, (pdf_bytes(), "mri.pdf"))
    assert response.status_code == 422
    assert "try again later" in response.get_data(as_text=True)
    assert stored_files(upload_dir) == []
    assert documents(app, DraftDocument) == []


@pytest.fixture
def silent_scanner(tmp_path: Path) -> Iterator[str]:
    """A unix socket that accepts connections and never answers, as a hung clamd does."""
    path = str(tmp_path / "silent.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(5)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield path
    stop.set()
    thread.join()
    for connection in held:
        connection.close()
    server.close()


def test_a_silent_scanner_times_out_and_the_file_is_refused(
    app: Flask, client: FlaskClient, upload_dir: Path, silent_scanner: str
) -> None:
    app.config.update(CLAMAV_ADDRESS=silent_scanner, CLAMAV_TIMEOUT=0.5)
    reach_documents_step(client)
    started = time.monotonic()
    response = upload(client, (pdf_bytes(), "mri.pdf"))
    assert time.monotonic() - started < 10
    assert response.status_code == 422
    assert "try again later" in response.get_data(as_text=True)
    assert stored_files(upload_dir) == []


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (pdf_bytes() + b"%" + b"0" * (1024 * 1024), "This file is larger than 1 MB."),
        (b"", "This file is empty."),
    ],
    ids=["too-large", "empty"],
)
def test_a_file_too_large_or_empty_is_refused_for_that_before_any_scan(
    app: Flask,
    client: FlaskClient,
    upload_dir: Path,
    silent_scanner: str,
    content: bytes,
    message: str,
) -> None:
    """The documents step's form checks no file: the scanner would get a file we refuse
    anyway (too long for clamd's StreamMaxLength, it answers as if down) and the patient
    would read that the scanner is down. The scanner here never answers: a file sent to it
    would wait its time-out and be refused with those words."""
    app.config.update(CLAMAV_ADDRESS=silent_scanner, CLAMAV_TIMEOUT=5, MAX_DOCUMENT_MB=1)
    reach_documents_step(client)
    started = time.monotonic()
    response = upload(client, (content, "mri.pdf"))
    # Werkzeug's test client spools a large body to a file it never closes.
    response.request.environ["wsgi.input"].close()
    assert time.monotonic() - started < 4  # not sent to the scanner
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)
    assert stored_files(upload_dir) == []


def test_held_while_the_scanner_is_down_hidden_from_staff_until_the_retry_passes(
    app: Flask,
    client: FlaskClient,
    auth: AuthActions,
    upload_dir: Path,
    clamd_socket: str,
    silent_scanner: str,
    staff: Any,
) -> None:
    app.config.update(CLAMAV_ADDRESS=silent_scanner, CLAMAV_TIMEOUT=0.5, CLAMAV_WHEN_DOWN="hold")
    response = post_request(
        client, files=[(pdf_bytes(), "mri.pdf"), (infected_pdf(), "infected.pdf")]
    )
    assert response.status_code == 303
    clean, infected = documents(app)
    assert clean.scan_status == infected.scan_status == ScanStatus.PENDING
    assert len(stored_files(upload_dir)) == 2
    reference = documents_reference(app, clean.request_id)

    staff_client = auth.new_client("coordinator")
    record = f"/staff/requests/{reference}"
    page = staff_client.get(record).get_data(as_text=True)
    assert page.count("Not yet scanned for viruses") == 2
    assert f"/documents/{clean.id}" not in page
    assert staff_client.get(f"{record}/documents/{clean.id}").status_code == 404

    with app.app_context():  # the worker, while the scanner is still silent: nothing changes
        assert rescan_pending().still_pending == 2
    app.config["CLAMAV_ADDRESS"] = clamd_socket  # the scanner is back
    with app.app_context():
        result = rescan_pending()
    assert (result.clean, result.infected, result.still_pending) == (1, 1, 0)

    clean, infected = documents(app)
    assert clean.scan_status == ScanStatus.CLEAN
    assert infected.scan_status == ScanStatus.INFECTED
    assert [p.name for p in stored_files(upload_dir)] == [clean.stored_name]
    page = staff_client.get(record).get_data(as_text=True)
    assert "Removed: the virus scan found malware in it" in page
    assert staff_client.get(f"{record}/documents/{clean.id}").status_code == 200
    assert staff_client.get(f"{record}/documents/{infected.id}").status_code == 404
    [event] = audit_rows(app, "upload_removed_infected")
    assert event.target_id == reference
    assert event.details["document_id"] == infected.id


def test_a_held_file_that_cannot_be_read_does_not_hold_back_the_others(
    app: Flask,
    client: FlaskClient,
    upload_dir: Path,
    clamd_socket: str,
    silent_scanner: str,
) -> None:
    """The retry takes held files in order; one whose file is gone (or damaged, or sealed
    with a key no longer configured) used to stop the job there, on every run, so every
    later held document stayed hidden from staff for good."""
    app.config.update(CLAMAV_ADDRESS=silent_scanner, CLAMAV_TIMEOUT=0.5, CLAMAV_WHEN_DOWN="hold")
    response = post_request(client, files=[(pdf_bytes("gone"), "a.pdf"), (pdf_bytes(), "b.pdf")])
    assert response.status_code == 303
    lost, kept = documents(app)
    (upload_dir / lost.stored_name).unlink()
    app.config["CLAMAV_ADDRESS"] = clamd_socket  # the scanner is back
    with app.app_context():
        result = rescan_pending()
    assert (result.clean, result.unreadable) == (1, [lost.id])
    lost, kept = documents(app)
    assert (lost.scan_status, kept.scan_status) == (ScanStatus.PENDING, ScanStatus.CLEAN)


def test_an_infected_file_whose_removal_fails_is_removed_by_the_reconciliation(
    app: Flask,
    client: FlaskClient,
    upload_dir: Path,
    clamd_socket: str,
    silent_scanner: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The retry finds two held files infected; removing the first fails (EIO). The job
    went down there, the second stayed held, and the first file stayed on disk for good:
    the next retry reads only held rows, and the reconciliation counted the infected row's
    file as wanted. Now the job goes on, and the reconciliation removes the leftover."""
    app.config.update(CLAMAV_ADDRESS=silent_scanner, CLAMAV_TIMEOUT=0.5, CLAMAV_WHEN_DOWN="hold")
    sent = post_request(
        client, files=[(infected_pdf("one"), "a.pdf"), (infected_pdf("two"), "b.pdf")]
    )
    assert sent.status_code == 303
    first, _second = documents(app)
    app.config["CLAMAV_ADDRESS"] = clamd_socket  # the scanner is back
    real_delete = DocumentStorage.delete

    def failing_once(self: DocumentStorage, name: str) -> None:
        if name == first.stored_name:
            raise OSError(5, "Input/output error")
        real_delete(self, name)

    monkeypatch.setattr(DocumentStorage, "delete", failing_once)
    with app.app_context():
        assert rescan_pending().infected == 2
    assert [d.scan_status for d in documents(app)] == [ScanStatus.INFECTED] * 2
    assert [p.name for p in stored_files(upload_dir)] == [first.stored_name]

    monkeypatch.setattr(DocumentStorage, "delete", real_delete)
    old = time.time() - 2 * 3600  # past the reconciliation's hour
    os.utime(upload_dir / first.stored_name, (old, old))
    with app.app_context():
        found = reconcile_files()
    assert found.orphan_files == [first.stored_name] and found.removed == 1
    assert found.missing_files == []  # infected rows' files are meant to be gone
    assert stored_files(upload_dir) == []


MANAGE_LINK_RE = re.compile(r"https?://[^/\s]+(/manage/open/[A-Za-z0-9_\-]+)")


def _held_then_scanned(
    app: Flask, client: FlaskClient, clamd_socket: str, silent_scanner: str
) -> tuple[Document, Document]:
    """A request sent with a clean file and an infected one while the scanner was silent
    (both held), then the worker's retry once the scanner is back."""
    app.config.update(CLAMAV_ADDRESS=silent_scanner, CLAMAV_TIMEOUT=0.5, CLAMAV_WHEN_DOWN="hold")
    response = post_request(
        client, files=[(pdf_bytes(), "mri.pdf"), (infected_pdf(), "lumbar-mri.pdf")]
    )
    assert response.status_code == 303
    app.config["CLAMAV_ADDRESS"] = clamd_socket
    with app.app_context():
        assert rescan_pending().infected == 1
    clean, infected = documents(app)
    return clean, infected


def test_the_patient_is_told_when_a_held_document_is_removed_and_can_send_a_clean_copy(
    app: Flask, client: FlaskClient, clamd_socket: str, silent_scanner: str
) -> None:
    """The retry deleted a held file it found infected; staff saw "Removed" on the record,
    but the patient, told at sending that the request was received with its documents, went
    on thinking the clinic had their report, and their private page listed it as any other.
    They get an email (when and the link, never the file's name) and the page says so."""
    _clean, infected = _held_then_scanned(app, client, clamd_socket, silent_scanner)
    (email,) = outbox_emails(app, "document_removed")
    reference = documents_reference(app, infected.request_id)
    assert email.recipient == "erika.mustermann@example.com"
    assert reference in email.subject
    assert "virus check found a problem" in email.body_text
    for part in (email.subject, email.body_text, email.body_html):
        assert "lumbar-mri" not in part and "mri.pdf" not in part
    link = MANAGE_LINK_RE.search(email.body_text).group(1)
    page = client.get(link, follow_redirects=True).get_data(as_text=True)
    mine = page.split('id="docs-heading"', 1)[1].split("</ul>", 1)[0]
    items = mine.split("<li>")[1:]
    [removed] = [item for item in items if "lumbar-mri.pdf" in item]
    [kept] = [item for item in items if "lumbar-mri.pdf" not in item]
    assert "Removed: our virus check found a problem in this file" in removed
    assert "Please add a new copy" in removed
    assert "Removed" not in kept


def test_no_email_for_a_document_removed_from_a_closed_request(
    app: Flask, client: FlaskClient, clamd_socket: str, silent_scanner: str
) -> None:
    """Cancelled before the scanner came back: there is nothing to send a copy to."""
    from booking.requests.models import ConsultationRequest, RequestStatus

    app.config.update(CLAMAV_ADDRESS=silent_scanner, CLAMAV_TIMEOUT=0.5, CLAMAV_WHEN_DOWN="hold")
    assert post_request(client, files=[(infected_pdf(), "a.pdf")]).status_code == 303
    (held,) = documents(app)
    with app.app_context():
        db.session.get(ConsultationRequest, held.request_id).status = RequestStatus.CANCELLED
        db.session.commit()
    app.config["CLAMAV_ADDRESS"] = clamd_socket
    with app.app_context():
        assert rescan_pending().infected == 1
    assert outbox_emails(app, "document_removed") == []


def _draft_file_removed_by_the_scan(
    app: Flask, client: FlaskClient, clamd_socket: str, silent_scanner: str
) -> None:
    """An infected file added to a draft's documents step while the scanner was down (held
    for a later scan), then found and removed by the retry once the scanner is back."""
    app.config.update(CLAMAV_ADDRESS=silent_scanner, CLAMAV_TIMEOUT=0.5, CLAMAV_WHEN_DOWN="hold")
    reach_documents_step(client)
    assert upload(client, (infected_pdf(), "scan.pdf")).status_code == 303
    app.config["CLAMAV_ADDRESS"] = clamd_socket
    with app.app_context():
        assert rescan_pending().infected == 1


def test_a_draft_shows_a_held_document_removed_and_it_can_be_taken_off(
    app: Flask, client: FlaskClient, clamd_socket: str, silent_scanner: str
) -> None:
    """Still filling in the request: the documents step said "Accepted" for a file the retry
    had deleted, and the review listed it as any other."""
    _draft_file_removed_by_the_scan(app, client, clamd_socket, silent_scanner)
    assert outbox_emails(app, "document_removed") == []  # the page says it

    page = open_step(client, "documents")
    added = page.split('id="added-heading"', 1)[1].split("</section>", 1)[0]
    assert "Removed" in added and "Accepted" not in added
    assert "Please remove it from the list and add a new copy" in added
    review = open_step(client, "review")
    removed = "scan.pdf</bdi> <strong>(removed: our virus check found a problem in this file)"
    assert removed in review
    document_id = re.search(r'name="remove" value="(\d+)"', page).group(1)
    response = client.post(
        "/request/steps/documents", data={"csrf_token": page_token(page), "remove": document_id}
    )
    assert response.status_code == 303
    assert documents(app, DraftDocument) == []
    assert "scan.pdf" not in open_step(client, "documents")


def test_a_removed_document_is_told_in_spanish_to_a_spanish_reader(
    app: Flask, client: FlaskClient, clamd_socket: str, silent_scanner: str
) -> None:
    """The email and the private page in the request's language, with no English left."""
    from tests.test_spanish_everywhere import english_in_page, english_in_text

    client.get("/request/start?lang=es")
    _held_then_scanned(app, client, clamd_socket, silent_scanner)
    (email,) = outbox_emails(app, "document_removed")
    assert "control antivirus" in email.body_text
    assert english_in_text(f"{email.subject}\n{email.body_text}") == []
    assert english_in_page(email.body_html) == []
    link = MANAGE_LINK_RE.search(email.body_text).group(1)
    page = client.get(link, follow_redirects=True).get_data(as_text=True)
    # What the page says of the file (its name and description are the patient's words).
    said = page.split("lumbar-mri.pdf", 1)[1].split("<br>", 1)[1].split("</li>", 1)[0]
    assert said.startswith("<strong>Borrado: nuestro control antivirus")
    assert english_in_page(said) == []


def test_a_draft_at_the_limit_takes_the_clean_copy_of_a_removed_file(
    app: Flask, client: FlaskClient, clamd_socket: str, silent_scanner: str
) -> None:
    """A file the retry removed counted toward ``MAX_DOCUMENTS``: a draft at the limit lost
    its upload form, and its clean copy was refused as one too many. Only the files kept
    count now."""
    app.config.update(
        MAX_DOCUMENTS=2, CLAMAV_ADDRESS=silent_scanner, CLAMAV_TIMEOUT=0.5, CLAMAV_WHEN_DOWN="hold"
    )
    reach_documents_step(client)
    held = upload(client, (pdf_bytes(), "mri.pdf"), (infected_pdf(), "scan.pdf"))
    assert held.status_code == 303
    app.config["CLAMAV_ADDRESS"] = clamd_socket
    with app.app_context():
        assert rescan_pending().infected == 1

    page = open_step(client, "documents")
    assert 'id="files"' in page  # the upload form: one of the two places is free again
    assert upload(client, (pdf_bytes("MRI report, again"), "scan-new.pdf")).status_code == 303
    rows = documents(app, DraftDocument)
    assert [(d.original_name, d.removed) for d in rows] == [
        ("mri.pdf", False),
        ("scan.pdf", True),
        ("scan-new.pdf", False),
    ]
    assert 'id="files"' not in open_step(client, "documents")  # two kept: full
    refused = upload(client, (pdf_bytes("one more"), "more.pdf"))
    assert refused.status_code == 422
    assert "at most 2 documents" in refused.get_data(as_text=True)


def test_the_same_file_the_scan_removed_is_refused_with_what_to_send_instead(
    app: Flask, client: FlaskClient, clamd_socket: str, silent_scanner: str
) -> None:
    """The patient told a file was removed adds the same file again while the scanner is
    down: it was refused as "the same file as one you have already added", which reads as
    if the clinic had it. It is refused as the file the virus check found a problem in,
    with what to send instead."""
    _draft_file_removed_by_the_scan(app, client, clamd_socket, silent_scanner)
    app.config["CLAMAV_ADDRESS"] = silent_scanner  # down again
    refused = upload(client, (infected_pdf(), "scan (1).pdf"))
    assert refused.status_code == 422
    page = refused.get_data(as_text=True)
    assert "the same file our virus check found a problem in" in page
    assert "a new scan or photo of the paper document is safest" in page
    assert "already added" not in page
    assert [(d.original_name, d.removed) for d in documents(app, DraftDocument)] == [
        ("scan.pdf", True)
    ]


def test_a_request_at_the_limit_takes_the_clean_copy_of_a_removed_file(
    app: Flask, client: FlaskClient, clamd_socket: str, silent_scanner: str
) -> None:
    """The same on the private page: the patient is told to add a new copy of the removed
    file, and the page said the request held as many documents as it can."""
    app.config["MAX_DOCUMENTS"] = 2
    clean, _infected = _held_then_scanned(app, client, clamd_socket, silent_scanner)
    from booking.requests.models import ConsultationRequest

    with app.app_context():
        url = open_manage_link(client, db.session.get(ConsultationRequest, clean.request_id))
    page = client.get(url).get_data(as_text=True)
    assert "holds as many documents as it can" not in page
    assert "Please add a new copy" in page
    token = page.split(CSRF_FIELD, 1)[1].split('value="', 1)[1].split('"', 1)[0]

    def add(name: str) -> Any:
        return client.post(
            url + "/documents",
            data={
                "docs-csrf_token": token,
                "docs-documents-0-file": (io.BytesIO(pdf_bytes(name)), name),
            },
            content_type="multipart/form-data",
        )

    assert add("lumbar-mri-new.pdf").status_code == 302
    assert [d.original_name for d in documents(app)] == [
        "mri.pdf",
        "lumbar-mri.pdf",
        "lumbar-mri-new.pdf",
    ]
    page = client.get(url).get_data(as_text=True)
    assert "Your request holds as many documents as it can (2)." in page
    refused = add("one-more.pdf")
    assert refused.status_code == 409
    assert "at most 2 documents; you have 2 already" in refused.get_data(as_text=True)


def test_a_file_held_for_its_scan_is_received_not_accepted_until_it_passes(
    app: Flask, client: FlaskClient, clamd_socket: str, silent_scanner: str
) -> None:
    """The scanner down (``CLAMAV_WHEN_DOWN = hold``): the documents step said "Accepted" for
    a file it may yet remove, with scripts and without, and the review listed it as any other.
    Now it is received and being checked, and the patient is told they will hear if it cannot
    be kept; once the scan passes, it is accepted."""
    app.config.update(CLAMAV_ADDRESS=silent_scanner, CLAMAV_TIMEOUT=0.5, CLAMAV_WHEN_DOWN="hold")
    reach_documents_step(client)
    assert upload(client, (pdf_bytes(), "mri.pdf")).status_code == 303
    page = open_step(client, "documents")
    scripted = client.post(
        "/request/steps/documents",
        data={
            "files": [(io.BytesIO(pdf_bytes("CT report")), "ct.pdf")],
            "csrf_token": page_token(page),
        },
        headers={"Accept": "application/json"},
        content_type="multipart/form-data",
    )
    assert scripted.status_code == 200
    # ``held``: the page's summary names this mark too (uploads.js, ``data-kept-held``).
    assert scripted.get_json() == {"ok": True, "message": "Received - being checked", "held": True}

    added = open_step(client, "documents").split('id="added-heading"', 1)[1]
    added = added.split("</section>", 1)[0]
    assert added.count("Received - being checked") == 2 and "Accepted" not in added
    assert "If we cannot keep it, we will tell you" in added
    review = open_step(client, "review")
    assert (
        "<bdi>mri.pdf</bdi> (received - being checked for viruses: if we cannot keep it" in review
    )

    app.config["CLAMAV_ADDRESS"] = clamd_socket
    with app.app_context():
        assert rescan_pending().clean == 2
    added = open_step(client, "documents").split('id="added-heading"', 1)[1]
    added = added.split("</section>", 1)[0]
    assert added.count("Accepted") == 2 and "being checked" not in added
    assert "being checked" not in open_step(client, "review")


def test_the_private_page_says_a_held_file_is_being_checked(
    app: Flask, client: FlaskClient, clamd_socket: str, silent_scanner: str
) -> None:
    """Sent while the scanner was down: the private page listed the held file as any other;
    it says now that it is being checked, and that the patient is emailed if it cannot be
    kept (the ``document_removed`` email)."""
    from booking.requests.models import ConsultationRequest

    app.config.update(CLAMAV_ADDRESS=silent_scanner, CLAMAV_TIMEOUT=0.5, CLAMAV_WHEN_DOWN="hold")
    assert post_request(client, files=[(pdf_bytes(), "mri.pdf")]).status_code == 303
    (held,) = documents(app)
    with app.app_context():
        url = open_manage_link(client, db.session.get(ConsultationRequest, held.request_id))
    mine = client.get(url).get_data(as_text=True).split('id="docs-heading"', 1)[1]
    mine = mine.split("</ul>", 1)[0]
    assert "Received - being checked for viruses. If we cannot keep it, we will email you." in mine

    app.config["CLAMAV_ADDRESS"] = clamd_socket
    with app.app_context():
        assert rescan_pending().clean == 1
    mine = client.get(url).get_data(as_text=True).split('id="docs-heading"', 1)[1]
    assert "being checked" not in mine.split("</ul>", 1)[0]


def send_with_one_removed_and_one_held(
    app: Flask, client: FlaskClient, clamd_socket: str, silent_scanner: str
) -> None:
    """A request sent with three files: one scanned clean, one the scan removed while it was a
    draft (its row stays, to say so), and one held for its scan (the scanner down again)."""
    app.config.update(CLAMAV_ADDRESS=silent_scanner, CLAMAV_TIMEOUT=0.5, CLAMAV_WHEN_DOWN="hold")
    reach_documents_step(client)
    assert upload(client, (pdf_bytes(), "mri.pdf"), (infected_pdf(), "scan.pdf")).status_code == 303
    app.config["CLAMAV_ADDRESS"] = clamd_socket  # back: one passes, the other is removed
    with app.app_context():
        result = rescan_pending()
    assert (result.clean, result.infected) == (1, 1)
    app.config["CLAMAV_ADDRESS"] = silent_scanner  # down again: the next file is held
    assert upload(client, (pdf_bytes("CT report"), "ct.pdf")).status_code == 303
    assert post_step(client, "documents", {}).status_code == 303
    assert send_request(client).status_code == 303
    assert len(documents(app)) == 3


def test_the_clinic_is_told_how_many_documents_are_kept_and_still_being_checked(
    app: Flask, client: FlaskClient, clamd_socket: str, silent_scanner: str
) -> None:
    """The new request's notice to the clinic counted every document row: one the virus scan
    removed while the request was a draft as received, and one held for its scan (the scanner
    down) as any other, though staff cannot open it yet. It counts the documents kept, and
    says how many of them are still being checked."""
    send_with_one_removed_and_one_held(app, client, clamd_socket, silent_scanner)

    (notice,) = outbox_emails(app, "new_request_staff")
    held = "1 is still being checked for viruses and cannot be opened yet"
    assert f"Documents: 2 ({held})" in notice.body_text
    assert f"<td>2 ({held})</td>" in notice.body_html


def test_the_clinic_is_told_the_documents_with_nothing_held(
    app: Flask, client: FlaskClient
) -> None:
    """Every file scanned when it came: the count alone, nothing said of a virus check."""
    assert post_request(client, files=[(pdf_bytes(), "mri.pdf")]).status_code == 303
    (notice,) = outbox_emails(app, "new_request_staff")
    assert "Documents: 1\n" in notice.body_text
    assert "<td>1</td>" in notice.body_html


def test_the_confirmation_counts_no_document_the_scan_removed(
    app: Flask, client: FlaskClient, clamd_socket: str, silent_scanner: str
) -> None:
    """The confirmation page said "We received 3 documents." counting the one the virus scan
    had removed from the draft (the documents step had told the patient it was removed)."""
    send_with_one_removed_and_one_held(app, client, clamd_socket, silent_scanner)
    page = client.get("/request/submitted").get_data(as_text=True)
    assert "We received 2 documents." in page
