"""The patient's receipts for what they send through their private link: documents added on
the manage page (coalesced while one waits) and messages; no file name, description or
message text; none without an address; in the patient's language."""

from __future__ import annotations

import io
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from booking.extensions import db
from tests.factories import make_request
from tests.support import csrf_token, open_manage_link, outbox_emails, pdf_bytes

DESCRIPTION = "Lumbar MRI from March, Zebra-42"
MESSAGE = "The pain now goes down my left leg. Walrus-17"


def _open(client: FlaskClient, **overrides: Any) -> tuple[str, str]:
    """A request (documents and messages go to an open one) whose page ``client`` opened:
    its reference and page."""
    consultation = make_request(**overrides)
    page = open_manage_link(client, consultation)
    reference = consultation.reference
    db.session.remove()
    return reference, page


def _add_document(client: FlaskClient, page: str, name: str) -> None:
    response = client.post(
        f"{page}/documents",
        data={
            "docs-csrf_token": csrf_token(client, page),
            "docs-documents-0-file": (io.BytesIO(pdf_bytes(name)), name),
            "docs-documents-0-description": DESCRIPTION,
        },
        content_type="multipart/form-data",
    )
    assert response.status_code == 302, response.status_code


def _send_message(client: FlaskClient, page: str, file: str | None = None) -> None:
    data: dict[str, Any] = {"msg-csrf_token": csrf_token(client, page), "msg-body": MESSAGE}
    if file is not None:
        data["msg-document-file"] = (io.BytesIO(pdf_bytes(file)), file)
        data["msg-document-description"] = DESCRIPTION
    response = client.post(f"{page}/messages", data=data, content_type="multipart/form-data")
    assert response.status_code in (302, 303), response.status_code


def _private(email: Any, *secrets: str) -> None:
    for body in (email.body_text, email.body_html, email.subject):
        for secret in (DESCRIPTION, MESSAGE, *secrets):
            assert secret not in body


def test_a_document_added_on_the_page_writes_one_receipt_with_the_count(
    app: Flask, client: FlaskClient
) -> None:
    with app.app_context():
        reference, page = _open(client)
    _add_document(client, page, "mri-lumbar.pdf")
    (receipt,) = outbox_emails(app, "documents_received")
    assert receipt.recipient == "erika.mustermann@example.com"
    assert receipt.subject == f"We received your documents ({reference})"
    assert f"We received the document you added to your request {reference} on " in (
        receipt.body_text
    )
    assert "/manage/open/" in receipt.body_text and "/manage/open/" in receipt.body_html
    _private(receipt, "mri-lumbar")


def test_three_files_one_after_another_give_one_receipt_saying_three(
    app: Flask, client: FlaskClient
) -> None:
    with app.app_context():
        reference, page = _open(client, documents=2)  # the request's own: not counted
    for name in ("one.pdf", "two.pdf", "three.pdf"):
        _add_document(client, page, name)
    (receipt,) = outbox_emails(app, "documents_received")
    assert (
        f"We received the 3 documents you added to your request {reference}, the last one on "
        in receipt.body_text
    )
    _private(receipt, "one.pdf", "two.pdf", "three.pdf")


def test_a_document_after_the_receipt_went_out_gets_a_receipt_of_its_own(
    app: Flask, client: FlaskClient
) -> None:
    from booking.notifications.models import OutboxEmail, OutboxStatus

    with app.app_context():
        _reference, page = _open(client)
    _add_document(client, page, "one.pdf")
    with app.app_context():
        db.session.execute(
            db.update(OutboxEmail)
            .where(OutboxEmail.template == "documents_received")
            .values(status=OutboxStatus.SENT)
        )
        db.session.commit()
    _add_document(client, page, "two.pdf")
    _add_document(client, page, "three.pdf")
    first, second = outbox_emails(app, "documents_received")
    assert "We received the document you added" in first.body_text
    assert "We received the 2 documents you added" in second.body_text


def test_a_message_writes_a_receipt_without_its_text(app: Flask, client: FlaskClient) -> None:
    with app.app_context():
        reference, page = _open(client)
    _send_message(client, page, file="letter.pdf")
    (receipt,) = outbox_emails(app, "message_received")
    assert receipt.subject == f"We received your message ({reference})"
    assert f"We received the message you sent about your request {reference} on " in (
        receipt.body_text
    )
    assert "It came with 1 document." in receipt.body_text
    assert "#messages" in receipt.body_text
    _private(receipt, "letter.pdf")
    # Its attachment is the message's: no receipt of documents besides.
    assert outbox_emails(app, "documents_received") == []


@pytest.mark.parametrize("sends", ["documents", "message"])
def test_no_receipt_for_a_patient_without_an_address(
    app: Flask, client: FlaskClient, sends: str
) -> None:
    with app.app_context():
        _reference, page = _open(client, email=None, preferred_contact="phone")
    if sends == "documents":
        _add_document(client, page, "one.pdf")
    else:
        _send_message(client, page)
    assert outbox_emails(app, "documents_received") == []
    assert outbox_emails(app, "message_received") == []


def test_a_spanish_request_gets_its_receipt_in_spanish(app: Flask, client: FlaskClient) -> None:
    """The receipt is written in the request's language (``force_locale``); its Spanish
    wording is not in the catalogue yet, so the page's language is checked, not the text."""
    with app.app_context():
        reference, page = _open(client, locale="es")
    _add_document(client, page, "uno.pdf")
    _send_message(client, page)
    for template in ("documents_received", "message_received"):
        (receipt,) = outbox_emails(app, template)
        assert '<html lang="es">' in receipt.body_html
        assert receipt.body_text.startswith("Estimado/a Erika Mustermann:")
        assert reference in receipt.subject


def test_a_waiting_receipt_follows_a_corrected_address(app: Flask, client: FlaskClient) -> None:
    """Staff correcting the address send the waiting emails to the new one
    (``readdress_waiting``): a receipt too, not to a mailbox that may be somebody else's."""
    from booking.requests import emails
    from booking.requests.models import ConsultationRequest

    with app.app_context():
        reference, page = _open(client)
    _add_document(client, page, "one.pdf")
    with app.app_context():
        consultation = db.session.scalars(
            db.select(ConsultationRequest).where(ConsultationRequest.reference == reference)
        ).one()
        old = consultation.patient.email
        consultation.patient.email = "erika.new@example.com"
        emails.readdress_waiting(consultation, old)
        db.session.commit()
    (receipt,) = outbox_emails(app, "documents_received")
    assert receipt.recipient == "erika.new@example.com"
    assert "We received the document you added" in receipt.body_text
