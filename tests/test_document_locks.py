"""Documents and the locks they take: a patient's upload on their private page holds no lock
on the request while the virus scanner is waited on, and a file taken out of a draft just as
another tab sends it is kept for the request.

The scanner is held for real: a unix socket that takes the upload and answers only when the
test lets it go (then by hanging up, which ``CLAMAV_WHEN_DOWN = hold`` stores as not yet
scanned). While it holds, another connection asks for the request's row (PostgreSQL:
``FOR UPDATE NOWAIT``) or for SQLite's write lock (``BEGIN IMMEDIATE`` without waiting).
"""

from __future__ import annotations

import io
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from booking.documents.models import Document
from booking.documents.scanning import ScanStatus
from booking.documents.storage import get_storage
from booking.extensions import db
from booking.requests import drafts
from booking.requests.asks import ask_patient
from booking.requests.drafts import DraftDocument, RequestDraft
from tests.factories import make_request, make_staff
from tests.support import (
    csrf_token,
    fill_request,
    hidden_value,
    open_manage_link,
    page_token,
    pdf_bytes,
    request_row_is_free,
    send_request,
    stored_files,
    valid_answers,
)


@dataclass
class HeldScanner:
    """A scanner that takes each upload and says nothing until ``release``."""

    path: str
    connected: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)


@pytest.fixture
def held_scanner(tmp_path: Path) -> Iterator[HeldScanner]:
    scanner = HeldScanner(str(tmp_path / "held.sock"))
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(scanner.path)
    server.listen(5)
    server.settimeout(0.2)
    held: list[socket.socket] = []

    def serve() -> None:
        while not scanner.released.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue
            scanner.connected.set()
        for connection in held:
            connection.close()  # the upload is told the scanner did not answer

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield scanner
    scanner.released.set()
    thread.join()
    server.close()


@pytest.fixture
def app_settings(app_settings: dict[str, Any], held_scanner: HeldScanner) -> dict[str, Any]:
    return {
        **app_settings,
        "CLAMAV_ENABLED": True,
        "CLAMAV_ADDRESS": held_scanner.path,
        "CLAMAV_TIMEOUT": 30,  # far longer than the test holds it
        "CLAMAV_WHEN_DOWN": "hold",
    }


def post_documents(client: FlaskClient, link: str) -> Any:
    return client.post(
        f"{link}/documents",
        data={
            "docs-csrf_token": csrf_token(client, link),
            "docs-documents-0-file": _file("mri.pdf"),
        },
        content_type="multipart/form-data",
    )


def _file(name: str) -> tuple[Any, str]:
    return io.BytesIO(pdf_bytes(name)), name


def post_message(client: FlaskClient, link: str) -> Any:
    return client.post(
        f"{link}/messages",
        data={
            "msg-csrf_token": csrf_token(client, link),
            "msg-body": "Here is the letter.",
            "msg-document-file": _file("letter.pdf"),
        },
        content_type="multipart/form-data",
    )


def post_answer(client: FlaskClient, link: str) -> Any:
    page = client.get(link).get_data(as_text=True)
    return client.post(
        f"{link}/answer",
        data={
            "answer-csrf_token": page_token(page),
            "answer-ask_id": hidden_value(page, "answer-ask_id"),
            "answer-answer": "The report you asked for.",
            "answer-files-0-file": _file("mri.pdf"),
        },
        content_type="multipart/form-data",
    )


@pytest.mark.parametrize(
    "send", [post_documents, post_message, post_answer], ids=["documents", "message", "answer"]
)
def test_an_upload_waiting_on_the_scanner_holds_no_lock_on_the_request(
    app: Flask,
    client: FlaskClient,
    held_scanner: HeldScanner,
    upload_dir: Path,
    send: Callable[[FlaskClient, str], Any],
) -> None:
    with app.app_context():
        consultation = make_request()
        if send is post_answer:
            ask_patient(consultation, make_staff(), ["imaging_report"], None)
        request_id = consultation.id
        link = open_manage_link(client, consultation)
        db.session.remove()
    responses: list[Any] = []
    upload = threading.Thread(target=lambda: responses.append(send(client, link)))
    upload.start()
    try:
        assert held_scanner.connected.wait(timeout=20), "the upload never reached the scanner"
        with app.app_context():
            # Staff confirming the request, or the patient's other tab, are not kept waiting.
            assert request_row_is_free(app, request_id)
    finally:
        held_scanner.released.set()
        upload.join(timeout=30)
    assert not upload.is_alive()
    [response] = responses
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    with app.app_context():
        [document] = db.session.scalars(select(Document)).all()
        assert document.request_id == request_id
        assert document.scan_status == ScanStatus.PENDING  # held for the worker's retry
    assert len(stored_files(upload_dir)) == 1


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_file_removed_from_a_draft_another_tab_just_sent_stays_with_the_request(
    app: Flask, client: FlaskClient, upload_dir: Path
) -> None:
    """PostgreSQL only: SQLite's BEGIN IMMEDIATE holds the write lock from the removing
    page's first read, so the send cannot come in between."""
    app.config["CLAMAV_ENABLED"] = False
    answers = valid_answers()
    assert fill_request(client, answers, files=[(pdf_bytes("MRI"), "mri.pdf")]) is None
    with app.app_context():
        # The removing page has read the draft (unsent, with its file) ...
        draft = db.session.scalars(select(RequestDraft)).one()
        [document] = draft.documents
        document_id, stored_name = document.id, document.stored_name
        # ... when the other tab sends it (in a thread: a page of its own, its own session).
        sent: list[Any] = []
        other_tab = threading.Thread(target=lambda: sent.append(send_request(client, answers)))
        other_tab.start()
        other_tab.join(timeout=30)
        assert [response.status_code for response in sent] == [303]
        assert drafts.remove_document(draft, document_id) is False
    with app.app_context():
        [kept] = db.session.scalars(select(Document)).all()
        assert kept.stored_name == stored_name
        assert get_storage().exists(stored_name)
        assert db.session.scalars(select(DraftDocument)).all() == []
    assert len(stored_files(upload_dir)) == 1
