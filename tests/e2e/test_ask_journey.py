"""Asking a patient for a missing MRI report, in a real browser, in English and in Spanish
(issue #17): the coordinator ticks the item on the record, the patient's email says only that
something is needed, the reminder comes after a moved clock, the patient uploads the report
on their private page, and the request is back in the queue marked "information received"."""

from __future__ import annotations

import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from booking.requests import asks
from booking.timeutil import now_utc
from tests.e2e.conftest import LiveServer, manage_link, text_of, wait_for_email
from tests.e2e.pages import sign_in
from tests.factories import make_request, make_staff
from tests.smtp import SmtpServer
from tests.support import PASSWORD

pytestmark = pytest.mark.e2e

COORDINATOR = "cora@example.com"
QUESTION = "When was the MRI taken?"
# What the patient reads, by the language of their request.
PATIENT = {
    "en": {
        "subject": "We need something from you ({})",
        "reminder": "Reminder: we still need something from you ({})",
        "heading": "The clinic needs something from you",
        "item": "MRI or CT report from the last 12 months",
        "answer": "Your answer",
        "send": "Send to the clinic",
        "thanks": "Thank you: the clinic has received what you sent.",
    },
    "es": {
        "subject": "Necesitamos algo de usted ({})",
        "reminder": "Recordatorio: todavía necesitamos algo de usted ({})",
        "heading": "La clínica necesita algo de usted",
        "item": "Informe de resonancia magnética o TC de los últimos 12 meses",
        "answer": "Su respuesta",
        "send": "Enviar a la clínica",
        "thanks": "Gracias: la clínica ha recibido lo que nos envió.",
    },
}


@pytest.mark.parametrize("language", ["en", "es"])
def test_a_coordinator_asks_for_a_missing_mri_report_and_gets_it(
    page: Page,
    live_server: LiveServer,
    smtp: SmtpServer,
    worker: subprocess.Popen,
    pdf_file: Path,
    language: str,
) -> None:
    words = PATIENT[language]
    with live_server.app.app_context():
        make_staff("coordinator", COORDINATOR, full_name="Cora Coord", password=PASSWORD)
        reference = make_request(locale=language, email="lucia@example.com").reference

    # The coordinator asks from the record.
    sign_in(page, live_server, COORDINATOR)
    page.goto(live_server(f"/staff/requests/{reference}"))
    form = page.get_by_role("form", name="Ask the patient for something")
    form.get_by_label("MRI or CT report from the last 12 months").check()
    form.get_by_label("A question for the patient").fill(QUESTION)
    form.get_by_role("button", name="Ask and email the patient").click()
    expect(page.get_by_text("The patient is asked by email.")).to_be_visible()
    page.goto(live_server("/staff/?status=awaiting_patient"))
    expect(page.get_by_role("row").filter(has_text=reference)).to_be_visible()

    # The email says only that something is needed.
    asked = wait_for_email(smtp, words["subject"].format(reference), worker)
    assert asked.rcpt_tos == ["lucia@example.com"]
    assert QUESTION not in text_of(asked) and words["item"] not in text_of(asked)

    # Five days on, the one reminder (the job run with the clock moved on).
    with live_server.app.app_context():
        later = now_utc() + timedelta(days=live_server.app.config["ASK_REMINDER_DAYS"], hours=1)
        assert len(asks.send_due_reminders(later)) == 1
        assert asks.send_due_reminders(later) == []
    wait_for_email(smtp, words["reminder"].format(reference), worker)

    # The patient follows the link (in a browser of their own) and sends the report.
    patient = page.context.browser.new_context(locale=language).new_page()
    patient.goto(manage_link(asked))
    patient.goto(live_server(f"/manage/{reference}?lang={language}"))
    ask = patient.get_by_role("region", name=words["heading"])
    expect(ask).to_contain_text(QUESTION)
    ask.get_by_role("group", name=words["item"]).get_by_label("File").or_(
        ask.get_by_role("group", name=words["item"]).get_by_label("Archivo")
    ).set_input_files(pdf_file)
    ask.get_by_label(words["answer"]).fill("March 2026.")
    ask.get_by_role("button", name=words["send"]).click()
    expect(patient.get_by_text(words["thanks"])).to_be_visible()
    expect(patient.get_by_role("region", name=words["heading"])).to_have_count(0)
    patient.context.close()

    # Back in the queue, marked; the record shows the report present.
    page.goto(live_server("/staff/"))
    row = page.get_by_role("row").filter(has_text=reference)
    expect(row).to_contain_text("Information received")
    row.get_by_role("link", name=reference).click()
    checklist = page.get_by_role("table", name="The clinic's checklist for this request")
    mri = checklist.get_by_role("row").filter(has_text="MRI or CT report")
    expect(mri).to_contain_text("Present")
    expect(mri).to_contain_text("mri-report.pdf")
    expect(page.get_by_role("region", name="Information from the patient")).to_contain_text(
        "March 2026."
    )
