"""What a file must be to be kept, the same on every way in: the request's documents step (a
draft) and the private page. A file that only starts like a PDF, JPEG or PNG is refused as
damaged (a whole PDF followed by other bytes is not), and the same file twice is kept once."""

from __future__ import annotations

import html
import io
import random
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from booking.documents.models import Document
from booking.documents.storage import CHUNK_SIZE, PDF_END, PDF_OBJECT
from booking.extensions import db
from booking.requests.drafts import DraftDocument
from tests.factories import make_request
from tests.support import (
    JPEG_BYTES,
    PNG_BYTES,
    answer_red_flags,
    csrf_token,
    open_manage_link,
    pdf_bytes,
    stored_files,
    upload,
)

DAMAGED = (
    "This file seems damaged or incomplete, so it cannot be opened. Please save or scan it "
    "again and send the new copy."
)
NOT_A_DOCUMENT = "This file is not a PDF, JPEG or PNG document. Please send a PDF or a photo."
TWICE_NAMED = "“%s” is the same file as one you have already added."

# Each starts as its type does (the first bytes pass), and is not a whole file of it.
DAMAGED_FILES = {
    "jpeg-magic-only": (b"\xff\xd8\xff", "photo.jpg"),
    "jpeg-cut-short": (JPEG_BYTES[: len(JPEG_BYTES) // 2], "photo.jpg"),
    "png-cut-short": (PNG_BYTES[: len(PNG_BYTES) - 20], "scan.png"),
    "pdf-header-only": (b"%PDF", "report.pdf"),
    "pdf-cut-short": (pdf_bytes()[:300], "report.pdf"),
    "pdf-after-a-byte-order-mark": (
        b"\xef\xbb\xbf" + pdf_bytes().replace(b"%PDF-1.4", b"%PDF<html>"),
        "report.pdf",
    ),
    # A signature added as an update, cut short inside it: its objects have no end marker.
    "pdf-update-cut-short": (
        pdf_bytes()
        + b"6 0 obj\n<< /Type /Sig /Filter /Adobe.PPKLite /SubFilter /adbe.pkcs7.detached "
        + b"/Contents <"
        + b"3082" * 1000,
        "report.pdf",
    ),
}

# A whole PDF with bytes after its end marker, as scanners, portals and mail gateways leave
# them, often far beyond the last 1024 bytes where the specification has readers look.
NOISE = random.Random(7).randbytes(4096)
assert PDF_END not in NOISE and not PDF_OBJECT.search(NOISE)
PADDED_FILES = {
    "nul-padding": pdf_bytes() + b"\0" * 4096,
    "random-bytes": pdf_bytes() + NOISE,
    "newline-run": pdf_bytes() + b"\r\n" * 2048,
    # The marker across two of the chunks the check reads back from the end.
    "padding-splitting-the-marker": pdf_bytes() + b"\0" * (CHUNK_SIZE - 4),
}


def post_documents(client: FlaskClient, link: str, *files: tuple[bytes, str]) -> Any:
    data: dict[str, Any] = {"docs-csrf_token": csrf_token(client, link)}
    for index, (content, name) in enumerate(files):
        data[f"docs-documents-{index}-file"] = (io.BytesIO(content), name)
    return client.post(f"{link}/documents", data=data, content_type="multipart/form-data")


def rows(app: Flask, kind: type) -> list[Any]:
    with app.app_context():
        return list(db.session.scalars(select(kind)))


@pytest.mark.parametrize(("content", "name"), DAMAGED_FILES.values(), ids=DAMAGED_FILES.keys())
def test_a_file_that_only_starts_like_a_document_is_refused_as_damaged_everywhere(
    app: Flask, client: FlaskClient, upload_dir: Path, content: bytes, name: str
) -> None:
    answer_red_flags(client)
    response = upload(client, (content, name))
    assert response.status_code == 422
    page = html.unescape(response.get_data(as_text=True))
    assert name in page and DAMAGED in page

    with app.app_context():
        link = open_manage_link(client, make_request())
    response = post_documents(client, link, (content, name))
    assert response.status_code == 422
    assert DAMAGED in html.unescape(response.get_data(as_text=True))

    assert rows(app, DraftDocument) == rows(app, Document) == []
    assert stored_files(upload_dir) == []


def test_whole_files_of_each_type_are_kept(
    app: Flask, client: FlaskClient, upload_dir: Path
) -> None:
    answer_red_flags(client)
    files = [(pdf_bytes(), "mri.pdf"), (JPEG_BYTES, "photo.jpg"), (PNG_BYTES, "scan.png")]
    assert upload(client, *files).status_code == 303
    types = sorted(document.content_type for document in rows(app, DraftDocument))
    assert types == ["application/pdf", "image/jpeg", "image/png"]


@pytest.mark.parametrize("content", PADDED_FILES.values(), ids=PADDED_FILES.keys())
def test_a_whole_pdf_with_bytes_after_its_end_is_kept_everywhere(
    app: Flask, client: FlaskClient, content: bytes
) -> None:
    """Viewers open it whole (pypdf, pdf.js, PDFium, Poppler, MuPDF skip what follows the
    marker), so refusing it would leave the patient with a report they cannot send."""
    answer_red_flags(client)
    assert upload(client, (content, "mri.pdf")).status_code == 303
    with app.app_context():
        link = open_manage_link(client, make_request())
    assert post_documents(client, link, (content, "mri.pdf")).status_code == 302
    kept = rows(app, DraftDocument) + rows(app, Document)
    assert [(d.content_type, d.size_bytes) for d in kept] == [("application/pdf", len(content))] * 2


def test_a_file_that_is_no_document_gets_the_same_words_on_both_ways_in(
    app: Flask, client: FlaskClient
) -> None:
    answer_red_flags(client)
    response = upload(client, (b"<html>not a report</html>", "report.pdf"))
    assert NOT_A_DOCUMENT in html.unescape(response.get_data(as_text=True))
    with app.app_context():
        link = open_manage_link(client, make_request())
    response = post_documents(client, link, (b"<html>not a report</html>", "report.pdf"))
    assert NOT_A_DOCUMENT in html.unescape(response.get_data(as_text=True))


def test_the_private_page_refuses_a_file_the_request_already_holds(
    app: Flask, client: FlaskClient, upload_dir: Path
) -> None:
    with app.app_context():
        link = open_manage_link(client, make_request())
    report = (pdf_bytes("MRI lumbar"), "mri.pdf")
    assert post_documents(client, link, report).status_code == 302

    # Again under another name, and twice in one go: kept once, as the documents step does.
    for files, refused in (
        ([(report[0], "mri-again.pdf")], "mri-again.pdf"),
        ([(JPEG_BYTES, "a.jpg"), (JPEG_BYTES, "b.jpg")], "b.jpg"),
    ):
        response = post_documents(client, link, *files)
        assert response.status_code == 422
        assert TWICE_NAMED % refused in html.unescape(response.get_data(as_text=True))
    assert [d.original_name for d in rows(app, Document)] == ["mri.pdf"]
    assert len(stored_files(upload_dir)) == 1  # the refused files' copies were deleted


def test_the_private_page_names_the_file_it_refuses_as_already_added(
    app: Flask, client: FlaskClient
) -> None:
    """Several files go in at once there, and the message stands above the form: it names
    the one refused (as the page writes any name the patient gave: escaped)."""
    with app.app_context():
        link = open_manage_link(client, make_request())
    assert post_documents(client, link, (pdf_bytes("MRI"), "mri.pdf")).status_code == 302

    response = post_documents(
        client, link, (pdf_bytes("CT"), "ct.pdf"), (pdf_bytes("MRI"), "<b>mri again.pdf")
    )
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert TWICE_NAMED % "&lt;b&gt;mri again.pdf" in page
    assert "<b>mri" not in page
    assert [d.original_name for d in rows(app, Document)] == ["mri.pdf"]
