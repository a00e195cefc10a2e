"""A stored document whose encrypted file was altered: staff get the "damaged" page with a
409 (not a 500, not a cut-off download), the attempt is audited, and an ERROR line with a
stable name and the document's ids goes to the log for the operators' alerting."""

from __future__ import annotations

import logging
import os
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from booking.audit.models import AuditEvent
from booking.documents.models import Document
from booking.documents.storage import CHUNK_SIZE, HEADER_BYTES, TAG_BYTES
from booking.extensions import db
from booking.requests.models import ConsultationRequest
from tests.factories import make_request
from tests.support import (
    AuthActions,
    Staff,
    fill_request,
    pdf_bytes,
    send_request,
    upload,
    valid_answers,
)

STAFF_IP = "203.0.113.9"
ALERT = "document_damaged"


@pytest.fixture
def coordinator(auth: AuthActions, staff: Staff) -> FlaskClient:
    """A browser signed in as the coordinator, calling from a known address."""
    return auth.new_client("coordinator", REMOTE_ADDR=STAFF_IP)


def one_document(app: Flask, **overrides: Any) -> dict[str, Any]:
    with app.app_context():
        consultation = make_request(documents=1, **overrides)
        doc = consultation.documents[0]
        return {
            "reference": consultation.reference,
            "request_id": consultation.id,
            "id": doc.id,
            "stored": Path(app.config["UPLOAD_DIR"]) / doc.stored_name,
        }


def url_of(document: dict[str, Any], download: bool) -> str:
    url = f"/staff/requests/{document['reference']}/documents/{document['id']}"
    return url + "?download=1" if download else url


def flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def audit_rows(app: Flask) -> list[AuditEvent]:
    with app.app_context():
        rows = db.session.scalars(select(AuditEvent).order_by(AuditEvent.id)).all()
        db.session.expunge_all()
        return list(rows)


def alerts(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.ERROR]


DAMAGE = {
    "altered-byte": lambda path: flip(path, HEADER_BYTES + 3),
    "altered-tag": lambda path: flip(path, path.stat().st_size - 1),
    "truncated": lambda path: path.write_bytes(path.read_bytes()[:-5]),
}


@pytest.mark.parametrize("download", [False, True], ids=["view", "download"])
@pytest.mark.parametrize("damage", DAMAGE.values(), ids=DAMAGE.keys())
def test_a_damaged_document_is_a_409_with_the_damaged_page_an_audit_row_and_an_alert(
    app: Flask,
    coordinator: FlaskClient,
    caplog: pytest.LogCaptureFixture,
    damage: Any,
    download: bool,
) -> None:
    document = one_document(app, full_name="Dora Damaged")
    damage(document["stored"])
    rows_before = len(audit_rows(app))
    caplog.set_level(logging.INFO, logger="booking")

    response = coordinator.get(url_of(document, download))

    assert response.status_code == 409
    page = response.get_data(as_text=True)
    assert "This document is damaged" in page
    assert "restore it from the backup" in page
    assert "Traceback" not in page and not response.data.startswith(b"%PDF")
    assert "Content-Disposition" not in response.headers

    # Audited, and committed although the answer is an error: a fresh session sees it.
    (row,) = audit_rows(app)[rows_before:]
    assert row.action == "document_damaged"
    assert (row.target_type, row.target_id) == ("request", document["reference"])
    assert row.actor_email == "coord@example.com" and row.ip_address == STAFF_IP
    assert row.details["document_id"] == document["id"]
    assert row.details["problem"]  # what the check found, for whoever restores it

    (alert,) = alerts(caplog)
    assert alert.levelname == "ERROR"
    assert alert.name == "booking.dashboard.services"
    assert alert.getMessage().startswith(f"{ALERT}: document {document['id']} ")
    assert alert.event == ALERT  # type: ignore[attr-defined]
    assert alert.document_id == document["id"]  # type: ignore[attr-defined]
    assert alert.consultation_id == document["request_id"]  # type: ignore[attr-defined]
    # Ids only: the log never carries the patient's name or the file's.
    assert "Dora" not in caplog.text and "report-0.pdf" not in caplog.text


def test_a_damaged_document_is_not_recorded_as_viewed(app: Flask, coordinator: FlaskClient) -> None:
    document = one_document(app)
    flip(document["stored"], HEADER_BYTES + 3)
    for download in (False, True):
        assert coordinator.get(url_of(document, download)).status_code == 409
    actions = [row.action for row in audit_rows(app)]
    assert actions.count("document_damaged") == 2
    assert "document_viewed" not in actions and "document_downloaded" not in actions


def test_damage_at_the_end_of_a_large_document_is_found_before_anything_is_sent(
    app: Flask, coordinator: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    """The whole file is checked before the response starts, so damage in its last chunk is
    the damaged page, not a 200 whose body stops short; and the check reads chunk by chunk,
    never the whole document into memory."""
    size = 6 * 1024 * 1024
    end = b"\n%%EOF\n"  # where a PDF reader looks for it: the upload's check does too
    content = (pdf_bytes() + os.urandom(size))[: size - len(end)] + end
    patient = app.test_client()
    assert fill_request(patient, valid_answers()) is None
    uploaded = upload(patient, (content, "scan.pdf"))
    uploaded.request.environ["wsgi.input"].close()  # the test client spools a big body to a file
    assert uploaded.status_code == 303
    assert send_request(patient).status_code == 303
    with app.app_context():
        doc = db.session.scalars(select(Document)).one()
        reference = db.session.scalars(select(ConsultationRequest.reference)).one()
        document = {"reference": reference, "id": doc.id}
        stored = Path(app.config["UPLOAD_DIR"]) / doc.stored_name
    chunks = -(-size // CHUNK_SIZE)
    assert stored.stat().st_size == HEADER_BYTES + size + chunks * TAG_BYTES
    flip(stored, stored.stat().st_size - TAG_BYTES - 10)  # inside the last chunk
    caplog.set_level(logging.INFO, logger="booking")

    assert coordinator.get(url_of(document, True)).status_code == 409  # templates now loaded
    tracemalloc.start()
    try:
        response = coordinator.get(url_of(document, True))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert response.status_code == 409
    assert "This document is damaged" in response.get_data(as_text=True)
    assert peak < 2 * 1024 * 1024, peak  # a few chunks, far below the document's 6 MB
    assert len(alerts(caplog)) == 2


def test_an_intact_document_opens_and_raises_no_alert(
    app: Flask, coordinator: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    document = one_document(app)
    caplog.set_level(logging.INFO, logger="booking")
    response = coordinator.get(url_of(document, True))
    assert response.status_code == 200
    assert response.data.startswith(b"%PDF")
    response.close()
    assert alerts(caplog) == []
    assert "document_damaged" not in [row.action for row in audit_rows(app)]
