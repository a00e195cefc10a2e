"""A patient picks a time, sends the request, and later moves the time, adds a document and
cancels through the private link in their email, read from the real SMTP server, in a real
browser. A real ``flask worker`` process delivers every email.

Controls are found the way a screen-reader user finds them: fields by their label, choices by
their group's legend, buttons and links by their name.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import (
    ADDRESS,
    CLINIC_EMAIL,
    IMAGING_REVIEW,
    LOCATION,
    SPECIALIST,
    LiveServer,
    manage_link,
    seed_schedule,
    text_of,
    wait_for_email,
)
from tests.e2e.pages import (
    PATIENT_EMAIL,
    answer_red_flags,
    clinic_day,
    day_legend,
    expect_step,
    full_time,
    pick_type,
    show_day,
    shown_reference,
    slot_label,
    walk_steps,
)
from tests.smtp import SmtpServer
from tests.support import pdf_bytes

pytestmark = pytest.mark.e2e


@pytest.fixture
def clinic(live_server: LiveServer) -> LiveServer:
    seed_schedule(live_server)
    return live_server


@pytest.mark.slow  # a real worker process sends the emails
def test_patient_picks_a_time_then_moves_it_adds_a_document_and_cancels_by_the_emailed_link(
    page: Page, clinic: LiveServer, smtp: SmtpServer, worker: subprocess.Popen, tmp_path: Path
) -> None:
    held_day, new_day = clinic_day(clinic, 3), clinic_day(clinic, 4)
    held_time, new_time = full_time(clinic, held_day, "10:00"), full_time(clinic, new_day, "11:30")

    # The home page leads to step 1, the questions about urgent symptoms, then the picker.
    page.goto(clinic("/"))
    page.get_by_role("link", name="Request an evaluation").first.click()
    expect(page).to_have_url(clinic("/request/start"))
    answer_red_flags(page)
    expect(page).to_have_url(clinic("/request/time"))
    expect(page).to_have_title(re.compile(r"^Step 1 of 7: Time · Choose a time"))
    pick_type(page, IMAGING_REVIEW)
    show_day(page, held_day)
    times = page.get_by_role("form", name=re.compile(r"^Open times from "))
    times.get_by_role("group", name=day_legend(held_day), exact=True).get_by_label(
        slot_label("10:00"), exact=True
    ).check()
    times.get_by_role("button", name="Continue with this time").click()

    # The steps start with the chosen time; the patient goes through them and sends.
    expect_step(page, "time")
    expect(page.get_by_text("Your chosen time", exact=True)).to_be_visible()
    expect(page.get_by_text(held_time, exact=True)).to_be_visible()
    expect(
        page.get_by_text(f"Imaging review · {SPECIALIST} · {LOCATION}, {ADDRESS}")
    ).to_be_visible()
    walk_steps(page)

    expect(page).to_have_url(clinic("/request/submitted"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Your request was sent")
    reference = shown_reference(page)

    # The receipt holds the chosen time and the private link.
    received = wait_for_email(smtp, f"We received your request {reference}", worker)
    assert received.rcpt_tos == [PATIENT_EMAIL]
    assert f"{held_time}, Imaging review, {SPECIALIST}, {LOCATION}, {ADDRESS}" in text_of(received)
    link = manage_link(received)
    # A random token that names nothing; opening it leads to the request's own page.
    assert link.startswith(clinic("/manage/open/")) and reference not in link

    page.goto(link)
    expect(page).to_have_url(clinic(f"/manage/{reference}"))
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Your request {reference}")
    status = "Status: Received: the clinic will confirm your appointment"
    expect(page.get_by_text(status)).to_be_visible()
    appointment = page.get_by_role("region", name="Your appointment")
    expect(appointment).to_contain_text(held_time)
    expect(appointment).to_contain_text(f"30 minutes · {SPECIALIST} · {LOCATION}, {ADDRESS}")

    # Move the time.
    appointment.get_by_role("link", name="Choose another time").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Choose another time")
    expect(page.get_by_text(f"Now: {held_time}, {SPECIALIST}, {LOCATION}")).to_be_visible()
    # Sent without a time: the page says so, and the focus goes there (errors.js).
    page.get_by_role("button", name="Move my appointment to this time").click()
    problem = page.get_by_role("alert").filter(has_text="Please choose")
    expect(problem).to_be_visible()
    expect(problem).to_be_focused()
    # One day's times at a time, as on the request's picker.
    show_day(page, held_day)
    held_day_times = page.get_by_role("group", name=day_legend(held_day), exact=True)
    # The patient's own time is not offered as "another" time.
    expect(held_day_times.get_by_label(slot_label("10:00"), exact=True)).to_have_count(0)
    show_day(page, new_day)
    page.get_by_role("group", name=day_legend(new_day), exact=True).get_by_label(
        slot_label("11:30"), exact=True
    ).check()
    page.get_by_role("button", name="Move my appointment to this time").click()

    expect(page).to_have_url(clinic(f"/manage/{reference}"))
    expect(
        page.get_by_role("status").filter(
            has_text="Your new time is saved. We have sent you a confirmation."
        )
    ).to_be_visible()
    expect(appointment).to_contain_text(new_time)
    expect(appointment).not_to_contain_text(held_time)

    # Add a document.
    pdf = tmp_path / "mri-report.pdf"
    pdf.write_bytes(pdf_bytes("MRI lumbar spine"))
    add_documents = page.get_by_role("form", name="Add documents")
    first = add_documents.get_by_role("group", name="Document 1")
    first.get_by_label("File", exact=True).set_input_files(pdf)
    first.get_by_label("What is it?").fill("MRI report, lumbar spine")
    add_documents.get_by_role("button", name="Send the documents").click()

    expect(page).to_have_url(clinic(f"/manage/{reference}"))
    expect(
        page.get_by_role("status").filter(has_text="Thank you: 1 document added.")
    ).to_be_visible()
    documents = page.get_by_role("region", name="Your documents")
    expect(documents.get_by_role("listitem")).to_have_count(1)
    expect(documents.get_by_role("listitem")).to_contain_text(
        "mri-report.pdf · MRI report, lumbar spine"
    )

    # Cancel.
    page.get_by_text("I want to cancel", exact=True).click()
    page.get_by_role("button", name="Cancel my request").click()

    expect(page).to_have_url(clinic(f"/manage/{reference}"))
    expect(
        page.get_by_role("status").filter(
            has_text="Your request is cancelled. We have sent you a confirmation."
        )
    ).to_be_visible()
    expect(page.get_by_text("Status: Cancelled")).to_be_visible()
    expect(page.get_by_role("button", name="Cancel my request")).to_have_count(0)
    expect(page.get_by_role("link", name="Choose another time")).to_have_count(0)

    # The patient is told of each change; the clinic of each thing the patient did.
    changed = wait_for_email(smtp, f"The time you hold has changed ({reference})", worker)
    assert changed.rcpt_tos == [PATIENT_EMAIL]
    assert f"When: {new_time}" in text_of(changed)
    cancelled = wait_for_email(smtp, f"Your request {reference} is cancelled", worker)
    assert cancelled.rcpt_tos == [PATIENT_EMAIL]
    for what in ("rescheduled", "documents added", "cancelled"):
        notice = wait_for_email(smtp, f"Patient update on {reference}: {what}", worker)
        assert notice.rcpt_tos == [CLINIC_EMAIL]
        assert clinic(f"/staff/requests/{reference}") in text_of(notice)
