"""Staff opening a patient's documents: the exact bytes, safe headers, an audit row for every
look, and nothing served across requests or from a missing file."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.http import parse_options_header

from booking import create_app
from booking.audit.models import AuditEvent
from booking.documents.models import Document
from booking.extensions import db
from booking.requests.models import ConsultationRequest
from tests.factories import PASSWORD, make_request, make_staff
from tests.support import (
    JPEG_BYTES,
    PNG_BYTES,
    AuthActions,
    Staff,
    csrf_token,
    fill_request,
    open_step,
    page_token,
    pdf_bytes,
    post_request,
    send_request,
    valid_answers,
)

STAFF_IP = "203.0.113.7"


@pytest.fixture
def staff_client(auth: AuthActions, staff: Staff) -> FlaskClient:
    """A browser signed in as the coordinator, calling from a known address."""
    return auth.new_client("coordinator", REMOTE_ADDR=STAFF_IP)


def documents_of(app: Flask, reference: str) -> list[dict[str, Any]]:
    with app.app_context():
        rows = db.session.scalars(
            select(Document)
            .join(Document.request)
            .where(ConsultationRequest.reference == reference)
            .order_by(Document.id)
        ).all()
        return [
            {
                "id": d.id,
                "name": d.original_name,
                "stored": d.stored_name,
                "type": d.content_type,
                "size": d.size_bytes,
            }
            for d in rows
        ]


def audit_rows(app: Flask, *actions: str) -> list[AuditEvent]:
    with app.app_context():
        rows = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action.in_(actions)).order_by(AuditEvent.id)
        ).all()
        db.session.expunge_all()
        return list(rows)


def doc_url(reference: str, document_id: int, download: bool = False) -> str:
    url = f"/staff/requests/{reference}/documents/{document_id}"
    return url + "?download=1" if download else url


def uploaded(app: Flask, client: FlaskClient, files: list[tuple[bytes, str]]) -> str:
    """Send ``files`` with a request through the patient's steps; the new reference."""
    response = post_request(client, files=files)
    assert response.status_code == 303, response.get_data(as_text=True)[:1000]
    return newest_reference(app)


def newest_reference(app: Flask) -> str:
    with app.app_context():
        return db.session.scalars(
            select(ConsultationRequest.reference).order_by(ConsultationRequest.id.desc())
        ).first()


def post_named_file(client: FlaskClient, filename: str, content: bytes) -> Any:
    """Send a request with a file called ``filename``, uploaded into the documents step with
    the multipart body written by hand the way a script (curl, requests) sends it: the name as
    a quoted string in UTF-8. The response of the send."""
    answers = valid_answers()
    assert fill_request(client, answers) is None
    boundary = "spineconsult-test-boundary"
    fields = {"csrf_token": page_token(open_step(client, "documents")), "nav": "upload"}
    body = b""
    for key, value in fields.items():
        body += (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'
        ).encode()
    quoted = filename.replace("\\", "\\\\").replace('"', '\\"')
    body += (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; '
            f'filename="{quoted}"\r\nContent-Type: application/pdf\r\n\r\n'
        ).encode()
        + content
        + f"\r\n--{boundary}--\r\n".encode()
    )
    uploaded = client.post(
        "/request/steps/documents",
        data=body,
        content_type=f"multipart/form-data; boundary={boundary}",
    )
    assert uploaded.status_code == 303, uploaded.get_data(as_text=True)[:1000]
    return send_request(client, answers)


def disposition(response: Any) -> tuple[str, dict[str, str]]:
    return parse_options_header(response.headers["Content-Disposition"])


# --- what is served -------------------------------------------------------------------------


def test_view_serves_the_stored_bytes_inline_with_safe_headers(
    app: Flask, staff_client: FlaskClient
) -> None:
    with app.app_context():
        reference = make_request(documents=2).reference
    _first, second = documents_of(app, reference)

    with staff_client.get(doc_url(reference, second["id"])) as response:
        assert response.status_code == 200
        body = response.get_data()
        headers = response.headers
    assert body == pdf_bytes("Report 1")  # the second document, byte for byte
    assert len(body) == second["size"]
    assert headers["Content-Type"] == "application/pdf"
    assert disposition(response) == ("inline", {"filename": "report-1.pdf"})
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert "no-store" in headers["Cache-Control"]
    csp = [part.strip() for part in headers["Content-Security-Policy"].split(";")]
    # A PDF may load nothing else; it is not sandboxed (browsers would refuse to show it).
    assert "default-src 'none'" in csp
    assert "sandbox" not in csp
    assert "ETag" not in headers  # nothing for a shared cache to key on


def test_download_is_an_attachment(app: Flask, staff_client: FlaskClient) -> None:
    with app.app_context():
        reference = make_request(documents=1).reference
    (document,) = documents_of(app, reference)

    with staff_client.get(doc_url(reference, document["id"], download=True)) as response:
        assert response.status_code == 200
        assert response.get_data() == pdf_bytes("Report 0")
    assert disposition(response) == ("attachment", {"filename": "report-0.pdf"})
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "no-store" in response.headers["Cache-Control"]
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    # Any other value of ?download means "view".
    with staff_client.get(doc_url(reference, document["id"]) + "?download=yes") as response:
        assert disposition(response)[0] == "inline"


def test_production_serves_a_document_with_the_same_headers(
    app: Flask,
    production_config: type,
    app_settings: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Under production's settings (Talisman forcing https, its own policy on every other
    page) a document keeps the headers its view gives it: nothing overrides or drops them.
    (nginx adds no headers of its own: deploy/nginx/spineconsult.conf.)"""
    monkeypatch.setattr(production_config, "UPLOAD_DIR", app_settings["UPLOAD_DIR"])
    monkeypatch.setattr(production_config, "CLAMAV_REQUIRED", False)  # no clamd here
    monkeypatch.setattr(production_config, "CLAMAV_ENABLED", False)
    monkeypatch.setattr(production_config, "HUEY_BACKEND", "memory")  # the mail it queues
    production = create_app("production")
    with production.app_context():  # the test app's database, made by ``app``
        make_staff("coordinator", "chris@example.com")
        reference = make_request(documents=1).reference
    (document,) = documents_of(production, reference)
    browser = production.test_client()
    site = "https://clinic.example.com"
    token = csrf_token(browser, "/staff/login", base_url=site)
    signed_in = browser.post(
        "/staff/login",
        base_url=site,
        data={"email": "chris@example.com", "password": PASSWORD, "csrf_token": token},
        headers={"Origin": site},
    )
    assert signed_in.status_code == 302

    for download in (False, True):
        with browser.get(doc_url(reference, document["id"], download), base_url=site) as response:
            assert response.status_code == 200
            assert response.get_data() == pdf_bytes("Report 0")
        assert disposition(response) == (
            "attachment" if download else "inline",
            {"filename": "report-0.pdf"},
        )
        assert response.headers["Content-Type"] == "application/pdf"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Cache-Control"] == "no-store, private"
        assert response.headers["Content-Security-Policy"] == (
            "default-src 'none'; img-src 'self'; frame-ancestors 'self'"
        )
        assert "max-age=" in response.headers["Strict-Transport-Security"]


def test_content_type_is_the_detected_type_not_the_name(
    app: Flask, client: FlaskClient, staff_client: FlaskClient
) -> None:
    reference = uploaded(app, client, [(PNG_BYTES, "scan.pdf"), (JPEG_BYTES, "photo.png")])
    png, jpeg = documents_of(app, reference)
    assert (png["type"], jpeg["type"]) == ("image/png", "image/jpeg")

    with staff_client.get(doc_url(reference, png["id"])) as response:
        assert response.status_code == 200
        assert response.headers["Content-Type"] == "image/png"
        assert response.get_data() == PNG_BYTES
    # Saved under a name ending in what the bytes are, whatever the name said.
    assert disposition(response) == ("inline", {"filename": "scan.pdf.png"})
    assert response.headers["Content-Security-Policy"].startswith("sandbox;")  # images: sandboxed
    with staff_client.get(doc_url(reference, jpeg["id"], download=True)) as response:
        assert response.headers["Content-Type"] == "image/jpeg"
        assert response.get_data() == JPEG_BYTES
    assert disposition(response) == ("attachment", {"filename": "photo.png.jpg"})


@pytest.mark.parametrize(
    ("sent_name", "saved_as"),
    [
        ("MRI-report.bat", "MRI-report.bat.pdf"),
        ("befund.hta", "befund.hta.pdf"),
        ("letter.html", "letter.html.pdf"),
        ("referral", "referral.pdf"),
        ("REPORT.PDF", "REPORT.PDF"),
    ],
)
def test_a_file_is_saved_only_as_what_its_bytes_are(
    app: Flask, client: FlaskClient, staff_client: FlaskClient, sent_name: str, saved_as: str
) -> None:
    """A file that starts like a PDF is accepted as one, whatever its name: a batch file
    whose first line is ``%PDF-1.4`` would run its other lines if saved as ``.bat``. Staff
    save it with the checked type's extension; the page still shows the name as sent."""
    polyglot = b"%PDF-1.4\r\n@echo off\r\ncalc.exe\r\n%%EOF\r\n"
    response = post_named_file(client, sent_name, polyglot)
    assert response.status_code == 303, response.get_data(as_text=True)[:1000]
    reference = newest_reference(app)
    (document,) = documents_of(app, reference)
    assert (document["name"], document["type"]) == (sent_name, "application/pdf")
    for download in (False, True):
        with staff_client.get(doc_url(reference, document["id"], download)) as response:
            assert response.status_code == 200
        assert disposition(response) == (
            "attachment" if download else "inline",
            {"filename": saved_as},
        )


@pytest.mark.parametrize(
    ("sent_name", "shown_name"),
    [
        ('my "scan".pdf', 'my "scan".pdf'),
        ("Röntgen Befund \u2013 März.pdf", "Röntgen Befund \u2013 März.pdf"),
        ("../../etc/passwd.pdf", "passwd.pdf"),
        ("C:\\Users\\erika\\MRT befund.pdf", "MRT befund.pdf"),
        ('x.pdf"; filename="evil.pdf', 'x.pdf"; filename="evil.pdf'),
        ("scan\tfinal\x07.pdf", "scanfinal.pdf"),
        ("文件 \\ report.pdf", "report.pdf"),
    ],
    ids=["quotes", "non-ascii", "unix-path", "windows-path", "param-injection", "control", "cjk"],
)
def test_awkward_filenames_are_safe_in_the_header(
    app: Flask, client: FlaskClient, staff_client: FlaskClient, sent_name: str, shown_name: str
) -> None:
    response = post_named_file(client, sent_name, pdf_bytes())
    assert response.status_code == 303, response.get_data(as_text=True)[:1000]
    reference = newest_reference(app)
    (document,) = documents_of(app, reference)
    assert document["name"] == shown_name

    for download in (False, True):
        with staff_client.get(doc_url(reference, document["id"], download)) as response:
            assert response.status_code == 200
            assert response.get_data() == pdf_bytes()
            raw = response.headers["Content-Disposition"]
        raw.encode("ascii")  # a plain header value; non-ASCII goes in RFC 5987 form
        assert "\r" not in raw and "\n" not in raw
        kind, params = parse_options_header(raw)
        assert kind == ("attachment" if download else "inline")
        # One file name, as the patient's computer called it, with no path a browser could
        # follow (parse_options_header folds filename* into filename).
        assert set(params) == {"filename"}
        assert params["filename"] == shown_name
        assert "/" not in params["filename"] and "\\" not in params["filename"]


# --- the audit trail ------------------------------------------------------------------------


def test_each_view_and_download_is_audited(
    app: Flask, staff_client: FlaskClient, staff: Staff
) -> None:
    with app.app_context():
        reference = make_request(documents=2).reference
    first, second = documents_of(app, reference)

    with staff_client.get(doc_url(reference, first["id"])) as response:
        assert response.status_code == 200
    with staff_client.get(doc_url(reference, first["id"])) as response:
        assert response.status_code == 200
    with staff_client.get(doc_url(reference, second["id"], download=True)) as response:
        assert response.status_code == 200

    rows = audit_rows(app, "document_viewed", "document_downloaded")
    assert [(r.action, r.details) for r in rows] == [
        ("document_viewed", {"document_id": first["id"]}),
        ("document_viewed", {"document_id": first["id"]}),
        ("document_downloaded", {"document_id": second["id"]}),
    ]
    for row in rows:
        assert row.actor_id == staff.coordinator.id
        assert row.actor_email == staff.coordinator.email
        assert row.ip_address == STAFF_IP
        assert (row.target_type, row.target_id) == ("request", reference)
        assert row.occurred_at is not None


def test_opening_a_record_is_audited(app: Flask, staff_client: FlaskClient, staff: Staff) -> None:
    with app.app_context():
        reference = make_request(documents=1).reference
    assert audit_rows(app, "request_viewed") == []

    assert staff_client.get(f"/staff/requests/{reference}").status_code == 200
    # Typed another way, the address sends to the reference's own: one view, audited there.
    typed = staff_client.get(f"/staff/requests/{reference.lower()}")
    assert (typed.status_code, typed.headers["Location"]) == (302, f"/staff/requests/{reference}")
    assert staff_client.get(typed.headers["Location"]).status_code == 200

    rows = audit_rows(app, "request_viewed")
    assert len(rows) == 2
    for row in rows:
        assert (row.target_type, row.target_id) == ("request", reference)
        assert row.actor_id == staff.coordinator.id
        assert row.ip_address == STAFF_IP
    # Listing the queue shows no medical detail and is not a record view.
    assert staff_client.get("/staff/").status_code == 200
    assert len(audit_rows(app, "request_viewed")) == 2

    # A form sent back with an error shows the whole record again: a read like the others.
    page = staff_client.get(f"/staff/requests/{reference}").get_data(as_text=True)
    token = re.search(r'name="note-csrf_token"[^>]*value="([^"]+)"', page)
    assert token, "no note form on the record"
    refused = staff_client.post(
        f"/staff/requests/{reference}/notes",
        data={"note-csrf_token": token.group(1), "note-text": ""},
    )
    assert refused.status_code == 422 and "Erika Mustermann" in refused.get_data(as_text=True)
    assert len(audit_rows(app, "request_viewed")) == 4


# --- what is refused ------------------------------------------------------------------------


def test_a_document_of_another_request_is_not_found(app: Flask, staff_client: FlaskClient) -> None:
    with app.app_context():
        mine = make_request(documents=1, email="mine@example.com").reference
        other = make_request(documents=1, email="other@example.com").reference
    (other_document,) = documents_of(app, other)

    for download in (False, True):
        response = staff_client.get(doc_url(mine, other_document["id"], download))
        assert response.status_code == 404
        assert pdf_bytes("Report 0") not in response.get_data()
    assert staff_client.get(doc_url(mine, 999_999)).status_code == 404
    assert staff_client.get(doc_url("SC-ZZZZ-ZZZZ", other_document["id"])).status_code == 404
    assert audit_rows(app, "document_viewed", "document_downloaded") == []


def test_a_missing_file_is_not_found_not_a_server_error(
    app: Flask, staff_client: FlaskClient, upload_dir: Path
) -> None:
    with app.app_context():
        reference = make_request(documents=1).reference
    (document,) = documents_of(app, reference)
    (upload_dir / document["stored"]).unlink()

    for download in (False, True):
        with staff_client.get(doc_url(reference, document["id"], download)) as response:
            assert response.status_code == 404
            assert "Content-Disposition" not in response.headers
    # The record page still opens and lists the document.
    page = staff_client.get(f"/staff/requests/{reference}")
    assert page.status_code == 200
    assert "report-0.pdf" in page.get_data(as_text=True)


def test_only_signed_in_staff_who_may_see_the_request_get_its_documents(
    app: Flask, client: FlaskClient
) -> None:
    with app.app_context():
        reference = make_request(documents=1).reference
        specialist = make_staff("specialist", "spec@example.com").email
    (document,) = documents_of(app, reference)

    response = client.get(doc_url(reference, document["id"]))
    assert response.status_code == 302
    assert "/staff/login" in response.headers["Location"]
    assert pdf_bytes("Report 0") not in response.get_data()

    # A specialist sees only requests assigned to them: this one does not exist for them.
    AuthActions(client).login(email=specialist)
    assert client.get(doc_url(reference, document["id"])).status_code == 404
    assert client.get(doc_url(reference, document["id"], download=True)).status_code == 404
    assert audit_rows(app, "document_viewed", "document_downloaded") == []
