"""A message thread in a real browser, the patient's side in Spanish: the clinic writes, the
patient follows the link in the email (which does not hold the message), reads it on the
private page, and replies with a PDF; the clinic's email says only that a message waits."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from booking.extensions import db
from booking.messages import services as messages
from booking.requests.links import issue_link
from tests.e2e.conftest import (
    CLINIC_EMAIL,
    PHONE_WIDTH,
    LiveServer,
    manage_link,
    text_of,
    wait_for_email,
)
from tests.e2e.pages import page_width
from tests.factories import make_request, make_staff
from tests.smtp import SmtpServer

pytestmark = pytest.mark.e2e

QUESTION = "¿Puede enviarnos la carta de derivación de su médico?"


def test_a_spanish_patient_reads_and_answers_a_message_with_a_document(
    page: Page,
    live_server: LiveServer,
    smtp: SmtpServer,
    worker: subprocess.Popen,
    pdf_file: Path,
) -> None:
    with live_server.app.app_context():
        coordinator = make_staff("coordinator", "cora@example.com", full_name="Cora Coord")
        consultation = make_request(locale="es", email="lucia@example.com", full_name="Lucía")
        reference = consultation.reference
        messages.send_staff_message(consultation, coordinator, QUESTION)

    received = wait_for_email(
        smtp, f"Un mensaje de la clínica sobre su solicitud {reference}", worker
    )
    assert received.rcpt_tos == ["lucia@example.com"]
    assert QUESTION not in text_of(received)
    page.goto(manage_link(received))
    # The page opens at the thread, not at its top (the redirect keeps the fragment).
    expect(page).to_have_url(live_server(f"/manage/{reference}#messages"))
    expect(page.get_by_role("region", name="Mensajes con la clínica")).to_be_in_viewport()
    page.goto(live_server(f"/manage/{reference}?lang=es"))  # the header's language switcher

    thread = page.get_by_role("region", name="Mensajes con la clínica")
    expect(thread).to_contain_text(QUESTION)
    thread.get_by_label("Su mensaje").fill("Aquí la tiene.")
    thread.get_by_label("Archivo").set_input_files(pdf_file)
    thread.get_by_role("button", name="Enviar a la clínica").click()

    expect(page.get_by_text("Gracias: su mensaje se ha enviado a la clínica.")).to_be_visible()
    thread = page.get_by_role("region", name="Mensajes con la clínica")
    expect(thread).to_contain_text("Aquí la tiene.")
    expect(thread).to_contain_text("mri-report.pdf")
    expect(thread).not_to_contain_text("Nuevo")  # the clinic's message was read on opening
    notice = wait_for_email(smtp, f"Message from the patient on {reference}", worker)
    assert notice.rcpt_tos == [CLINIC_EMAIL]
    assert "Aquí la tiene" not in text_of(notice)
    assert live_server(f"/staff/requests/{reference}") in text_of(notice)


def test_a_long_link_in_a_message_does_not_widen_the_page_on_a_phone(
    phone_page: Page, live_server: LiveServer
) -> None:
    """A message holding one long unbroken word (a shared-drive link) wraps inside the
    thread: before, it made the private page 700 px wide on a 390 px phone, for good."""
    link = "https://drive.example.com/file/d/" + "a1B2c3D4e5" * 15 + "/view?usp=sharing"
    with live_server.app.app_context():
        consultation = make_request(email="lucia@example.com")
        reference = consultation.reference
        messages.send_patient_message(consultation, f"My MRI: {link}", None)
        token = issue_link(consultation)
        db.session.commit()
    phone_page.goto(live_server(f"/manage/open/{token}"))
    expect(phone_page).to_have_url(live_server(f"/manage/{reference}"))
    thread = phone_page.get_by_role("region", name="Messages with the clinic")
    expect(thread).to_contain_text("a1B2c3D4e5")
    assert page_width(phone_page) <= PHONE_WIDTH
