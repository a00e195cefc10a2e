"""Hostile files, on the request's documents step and on the private link's "add documents"
form.

Files are judged by their bytes, never by their name or claimed type; a refused file gets a
message naming it and nothing (row or file) of it is kept; odd names are kept for display only,
made harmless, and never decide where a file is written.
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from booking.documents.models import Document
from booking.extensions import db
from tests.hostile.conftest import Cases, assert_escaped, assert_refused, snapshot
from tests.support import (
    EXE_BYTES,
    JPEG_BYTES,
    PNG_BYTES,
    answer_red_flags,
    csrf_token,
    open_step,
    page_token,
    pdf_bytes,
    post_request,
    step_answers,
    valid_answers,
)

MB = 1024 * 1024
NOT_A_DOCUMENT = "This file is not a PDF, JPEG or PNG document"

# Files that lie about what they are: (content, name, claimed type, message).
LYING_FILES = {
    "exe-named-pdf": (EXE_BYTES, "mri-report.pdf", "application/pdf", NOT_A_DOCUMENT),
    "html-named-pdf": (
        b"<!doctype html><script>alert(1)</script>",
        "report.pdf",
        "application/pdf",
        NOT_A_DOCUMENT,
    ),
    "svg-with-script-named-png": (
        b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><script>alert(2)</script>'
        b"</svg>",
        "scan.png",
        "image/png",
        NOT_A_DOCUMENT,
    ),
    "html-first-polyglot-with-pdf-inside": (
        b"<html><script>alert(1)</script></html>\n" + pdf_bytes(),
        "letter.pdf",
        "application/pdf",
        NOT_A_DOCUMENT,
    ),
    "zip-named-jpg": (
        b"PK\x03\x04" + b"\x00" * 200,
        "photo.jpg",
        "image/jpeg",
        NOT_A_DOCUMENT,
    ),
    "gif-named-png": (b"GIF89a\x01\x00\x01\x00\x00\x00\x00;", "x.png", "image/png", NOT_A_DOCUMENT),
    "zero-bytes": (b"", "empty.pdf", "application/pdf", "This file is empty."),
    "one-byte": (b"%", "tiny.pdf", "application/pdf", NOT_A_DOCUMENT),
}


def file_part(content: bytes, name: str, claimed: str | None) -> tuple:
    if claimed is None:
        return (io.BytesIO(content), name)
    return (io.BytesIO(content), name, claimed)


def post_form(
    client: FlaskClient, files: list[tuple[bytes, str, str | None]], **answers: Any
) -> Any:
    """A request through its steps, ``files`` uploaded one by one into the documents step."""
    data: dict[str, Any] = valid_answers(**answers)
    for index, (content, name, claimed) in enumerate(files):
        data[f"documents-{index}-file"] = file_part(content, name, claimed)
    return post_request(client, data)


def add_documents(client: FlaskClient, link: str, files: list[tuple[bytes, str, str | None]]):
    data: dict[str, Any] = {"docs-csrf_token": csrf_token(client, link)}
    for index, (content, name, claimed) in enumerate(files):
        data[f"docs-documents-{index}-file"] = file_part(content, name, claimed)
    return client.post(f"{link}/documents", data=data, content_type="multipart/form-data")


@pytest.mark.parametrize(
    ("content", "name", "claimed", "message"), LYING_FILES.values(), ids=LYING_FILES.keys()
)
def test_a_file_that_lies_about_its_type_is_refused_on_the_documents_step(
    app: Flask, client: FlaskClient, content: bytes, name: str, claimed: str, message: str
) -> None:
    before = snapshot(app)
    assert_refused(post_form(client, [(content, name, claimed)]), 422, message)
    assert snapshot(app) == before


@pytest.mark.parametrize(
    ("content", "name", "claimed", "message"),
    [LYING_FILES["exe-named-pdf"], LYING_FILES["svg-with-script-named-png"]],
    ids=["exe-named-pdf", "svg-named-png"],
)
def test_a_file_that_lies_about_its_type_is_refused_on_the_private_link(
    app: Flask,
    client: FlaskClient,
    clinic: Cases,
    content: bytes,
    name: str,
    claimed: str,
    message: str,
) -> None:
    before = snapshot(app)
    # A good file beside it: the set is refused whole, nothing of it is kept.
    files = [(pdf_bytes(), "good.pdf", None), (content, name, claimed)]
    assert_refused(add_documents(client, clinic.booked_link, files), 422, message)
    assert snapshot(app) == before


def test_an_empty_file_is_refused_on_the_private_link(
    app: Flask, client: FlaskClient, clinic: Cases
) -> None:
    before = snapshot(app)
    files = [(b"", "empty.pdf", "application/pdf")]
    assert_refused(add_documents(client, clinic.booked_link, files), 422, "This file is empty.")
    assert snapshot(app) == before


# Names a browser (or a hand-made post) may send; each is kept for display only.
ODD_NAMES = {
    "path-traversal": ("../../../../etc/passwd.pdf", "passwd.pdf"),
    # Multipart quoting eats the backslashes on the way in; no separator may survive.
    "windows-traversal": ("..\\..\\Windows\\system32\\boot.pdf", "....Windowssystem32boot.pdf"),
    "absolute-path": ("/var/www/static/shell.pdf", "shell.pdf"),
    "nul-byte": ("report.pdf\x00.html", "report.pdf.html"),
    "right-to-left-override": ("invoice\u202efdp.exe", "invoicefdp.exe"),
    "markup": ("<img src=x onerror=alert(1)>.pdf", "<img src=x onerror=alert(1)>.pdf"),
    "very-long": ("a" * 1000 + ".pdf", "a" * 255),
}


@pytest.mark.parametrize(("name", "shown"), ODD_NAMES.values(), ids=ODD_NAMES.keys())
def test_an_odd_file_name_never_decides_where_the_file_goes(
    app: Flask,
    client: FlaskClient,
    coordinator: FlaskClient,
    tmp_path: Path,
    name: str,
    shown: str,
) -> None:
    upload_dir = Path(app.config["UPLOAD_DIR"])
    outside_before = sorted(p for p in tmp_path.rglob("*") if upload_dir not in p.parents)
    response = post_form(client, [(pdf_bytes(), name, "text/html")])
    assert response.status_code == 303
    with app.app_context():
        doc = db.session.scalars(select(Document).order_by(Document.id.desc())).first()
        reference = doc.request.reference
        db.session.expunge_all()
    assert doc.original_name == shown
    assert doc.content_type == "application/pdf"  # from the bytes, not the claimed type
    # Stored under a random name inside the upload folder; nothing written anywhere else.
    assert re.fullmatch(r"[0-9a-f]{32}", doc.stored_name)
    assert (upload_dir / doc.stored_name).is_file()
    outside_after = sorted(p for p in tmp_path.rglob("*") if upload_dir not in p.parents)
    new_outside = {p for p in outside_after if p not in outside_before and p.is_file()}
    assert not {p for p in new_outside if p.suffix in (".pdf", ".html", ".exe")}
    assert_escaped(
        coordinator.get(f"/staff/requests/{reference}").get_data(as_text=True), doc.original_name
    )
    download = coordinator.get(f"/staff/requests/{reference}/documents/{doc.id}?download=1")
    assert download.status_code == 200
    assert download.mimetype == "application/pdf"
    assert download.headers["X-Content-Type-Options"] == "nosniff"
    disposition = download.headers["Content-Disposition"]
    assert disposition.startswith("attachment")
    assert "/" not in disposition and "\\" not in disposition and "\x00" not in disposition
    download.close()


def test_a_jpeg_html_polyglot_is_served_only_as_a_sandboxed_image(
    app: Flask, client: FlaskClient, coordinator: FlaskClient
) -> None:
    polyglot = JPEG_BYTES + b"<html><script>alert(document.cookie)</script></html>"
    assert post_form(client, [(polyglot, "photo.html", "text/html")]).status_code == 303
    with app.app_context():
        doc = db.session.scalars(select(Document).order_by(Document.id.desc())).first()
        path = f"/staff/requests/{doc.request.reference}/documents/{doc.id}"
    response = coordinator.get(path)
    assert response.status_code == 200
    assert response.mimetype == "image/jpeg"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Content-Security-Policy"].startswith("sandbox;")
    assert "script-src" not in response.headers["Content-Security-Policy"]
    response.close()


def test_a_file_under_a_text_fields_name_is_no_answer(app: Flask, client: FlaskClient) -> None:
    before = snapshot(app)
    answer_red_flags(client)
    data: dict[str, Any] = {**step_answers("about"), "nav": "next"}
    data["csrf_token"] = page_token(open_step(client, "about"))
    data["full_name"] = (io.BytesIO(EXE_BYTES), "name.exe")
    response = client.post("/request/steps/about", data=data, content_type="multipart/form-data")
    assert_refused(response, 422, "Please enter your full name.")
    assert snapshot(app) == before


def test_too_many_files_on_the_documents_step_are_refused(app: Flask, client: FlaskClient) -> None:
    before = snapshot(app)
    limit = app.config["MAX_DOCUMENTS"]
    # Different scans (the same file twice is kept once): a byte after the image's end.
    files = [(PNG_BYTES + bytes([n]), f"scan-{n}.png", None) for n in range(limit + 1)]
    response = post_form(client, files)
    assert_refused(response, 422, f"You can send at most {limit} documents")
    after = snapshot(app)
    # The first ten wait in the draft; no request and nothing else was stored.
    assert len(after.pop("files")) == len(before.pop("files")) + limit
    assert after == before


def test_too_many_files_on_the_private_link_are_refused(
    app: Flask, client: FlaskClient, clinic: Cases
) -> None:
    link = clinic.waiting_link  # already holds one document
    limit = app.config["MAX_DOCUMENTS"]
    # Different scans (the same file twice is refused): a byte after the image's end.
    for batch in range(3):
        files = [
            (PNG_BYTES + bytes([batch * 3 + n]), f"scan-{batch}-{n}.png", None) for n in range(3)
        ]
        assert add_documents(client, link, files).status_code == 302
    before = snapshot(app)
    files = [
        (PNG_BYTES + b"\x10", "one-more.png", None),
        (PNG_BYTES + b"\x11", "and-another.png", None),
    ]
    assert_refused(add_documents(client, link, files), 409, f"at most {limit} documents")
    assert snapshot(app) == before


@pytest.fixture
def small_limits(app_settings: dict[str, Any]) -> dict[str, Any]:
    """1 MB per file, 2 files: the whole body may be 4 MB."""
    app_settings.update(MAX_DOCUMENT_MB=1, MAX_DOCUMENTS=2)
    return app_settings


def test_a_file_over_the_size_limit_is_refused_with_a_message(
    small_limits: dict[str, Any], app: Flask, client: FlaskClient
) -> None:
    before = snapshot(app)
    big = pdf_bytes() + b"\x00" * MB
    response = post_form(client, [(big, "big.pdf", None)])
    response.request.environ["wsgi.input"].close()  # the test client spools big bodies
    assert_refused(response, 422, "This file is larger than 1 MB.")
    assert snapshot(app) == before


@pytest.mark.parametrize("where", ["documents-step", "private-link"])
def test_a_body_over_the_request_limit_is_a_friendly_413(
    small_limits: dict[str, Any],
    app: Flask,
    client: FlaskClient,
    clinic: Cases,
    where: str,
) -> None:
    before = snapshot(app)
    huge = pdf_bytes() + b"\x00" * (5 * MB)
    files = [(huge, "huge.pdf", None)]
    if where == "documents-step":
        response = post_form(client, files)
    else:
        response = add_documents(client, clinic.booked_link, files)
    response.request.environ["wsgi.input"].close()
    assert_refused(response, 413, "Nothing was saved")
    assert snapshot(app) == before
