"""A patient sends a consultation request in a real browser, finding every control the way a
screen-reader user would: text fields by their label, choices by their group's legend."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page, expect
from sqlalchemy import select

from booking.extensions import db
from booking.patients.models import ConsultationRequest, TriageLevel
from tests.e2e.conftest import PHONE, LiveServer

pytestmark = pytest.mark.e2e

PHONE_WIDTH = PHONE["viewport"]["width"]
REFERENCE_RE = re.compile(r"^SC-[2-9A-Z]{4}-[2-9A-Z]{4}$")
RED_FLAGS = [
    "New loss of bladder or bowel control",
    "Numbness in the groin or saddle area",
    "Rapidly worsening weakness in the legs",
    "Fever or unexplained weight loss together with back pain",
    "A history of cancer",
    "A recent serious injury, such as a fall or car accident",
]


def group(page: Page, legend: str) -> Locator:
    """The fieldset whose legend is exactly ``legend``, with or without "(optional)"."""
    name = re.compile(rf"^{re.escape(legend)}(?: \(optional\))?$")
    return page.get_by_role("group", name=name)


def choose(page: Page, legend: str, *options: str) -> None:
    """Tick the radio button or checkboxes labelled ``options`` in the group ``legend``."""
    for option in options:
        group(page, legend).get_by_label(option, exact=True).check()


def fill_about_you(page: Page, *, name: str = "Erika Mustermann", email: str) -> None:
    page.get_by_label("Full name", exact=True).fill(name)
    page.get_by_label("Date of birth", exact=True).fill("1970-05-17")
    page.get_by_label("Email address", exact=True).fill(email)
    page.get_by_label("Phone number", exact=True).fill("+49 30 901820")
    choose(page, "How should we contact you?", "Email")


def fill_symptoms(page: Page) -> None:
    choose(page, "Where does it hurt?", "Lower back", "Leg")
    choose(page, "Which side?", "Left")
    choose(page, "How long have you had this pain?", "3 to 12 months")
    choose(page, "Pain right now", "5")
    choose(page, "Pain at its worst in the last week", "8")
    choose(page, "Does the pain spread into your arm or leg?", "Yes")
    choose(page, "Do you have numbness or tingling?", "Yes")
    choose(page, "Do you have weakness in an arm or leg?", "No")
    choose(page, "Has a doctor told you what it is?", "Herniated (slipped) disc")
    choose(page, "Treatment you have already had", "Physiotherapy", "Pain medication")
    choose(page, "Scans you have already had", "MRI")
    page.get_by_label("When were the scans done?").fill("MRI in March 2026")
    page.get_by_label("Medicines you take now").fill("Ibuprofen 400 mg")
    choose(page, "Do you take blood thinners (anticoagulants)?", "No")
    choose(page, "Do you have diabetes?", "No")
    choose(page, "Do you smoke?", "Never smoked")


def answer_red_flags(page: Page, yes: str | None = None) -> None:
    for question in RED_FLAGS:
        choose(page, question, "Yes" if question == yes else "No")


def answer_some_odi_sections(page: Page) -> None:
    choose(page, "Pain intensity", "The pain is moderate at the moment")
    choose(page, "Walking", "Pain prevents me from walking more than 1 mile (1.6 km)")
    choose(page, "Sitting", "Pain prevents me sitting more than one hour")
    choose(page, "Sleeping", "My sleep is occasionally disturbed by pain")


def attach_document(page: Page, pdf: Path) -> None:
    # Ten rows offer "File": the patient must be able to tell Document 1 from the others.
    document = page.get_by_role("group", name="Document 1")
    document.get_by_label("File").set_input_files(pdf)
    document.get_by_label("What is it?").fill("MRI report, lumbar spine")


def give_consent(page: Page) -> None:
    page.get_by_role("checkbox", name="I have read the privacy notice").check()
    page.get_by_role("checkbox", name="I agree to be contacted about my request").check()


def send(page: Page) -> None:
    page.get_by_role("button", name="Send my request").click()


def open_form(page: Page, live_server: LiveServer) -> None:
    page.goto(live_server("/request"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Request a spine evaluation")


def fill_and_send(page: Page, pdf: Path, red_flag: str | None = None) -> None:
    fill_about_you(page, email="erika.mustermann@example.com")
    fill_symptoms(page)
    answer_red_flags(page, yes=red_flag)
    answer_some_odi_sections(page)
    attach_document(page, pdf)
    choose(page, "Days that suit you", "Monday", "Wednesday")
    choose(page, "Time of day", "Morning")
    give_consent(page)
    send(page)


def page_width(page: Page) -> int:
    return page.evaluate("document.documentElement.scrollWidth")


def shown_reference(page: Page) -> str:
    reference = page.get_by_text(REFERENCE_RE)
    expect(reference).to_be_visible()
    return reference.inner_text().strip()


def stored_requests(live_server: LiveServer) -> list[ConsultationRequest]:
    with live_server.app.app_context():
        requests = list(db.session.scalars(select(ConsultationRequest)))
        for request in requests:
            _ = request.documents  # loaded while the session is open
        return requests


def test_patient_sends_a_request_with_a_document(
    page: Page, live_server: LiveServer, pdf_file: Path
) -> None:
    open_form(page, live_server)
    fill_and_send(page, pdf_file)

    expect(page).to_have_url(live_server("/request/submitted"))

    expect(page).to_have_title(re.compile(r"^Request sent"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Your request was sent")
    expect(page.get_by_text("Please seek emergency care now")).to_have_count(0)
    expect(page.get_by_text("We received 1 document.")).to_be_visible()
    reference = shown_reference(page)

    [consultation] = stored_requests(live_server)
    assert consultation.reference == reference
    assert consultation.triage_level == TriageLevel.ROUTINE
    [document] = consultation.documents
    assert document.original_name == "mri-report.pdf"
    assert document.content_type == "application/pdf"
    assert document.size_bytes == pdf_file.stat().st_size
    assert document.description == "MRI report, lumbar spine"


def test_patient_on_a_phone_with_a_red_flag_is_told_to_seek_emergency_care(
    phone_page: Page, live_server: LiveServer, pdf_file: Path
) -> None:
    page = phone_page
    open_form(page, live_server)
    # The long form (the 0-10 pain scales in a row) fits the phone's width: no sideways scrolling.
    assert page_width(page) <= PHONE_WIDTH

    fill_and_send(page, pdf_file, red_flag="Numbness in the groin or saddle area")

    expect(page).to_have_url(live_server("/request/submitted"))

    urgent = page.get_by_role("alert").filter(has_text="Please seek emergency care now")
    expect(urgent).to_be_visible()
    expect(urgent.get_by_role("heading", level=1)).to_have_text("Please seek emergency care now")
    expect(urgent).to_contain_text("Call 112")
    assert page_width(page) <= PHONE_WIDTH
    reference = shown_reference(page)

    [consultation] = stored_requests(live_server)
    assert consultation.reference == reference
    assert consultation.triage_level == TriageLevel.URGENT
    assert len(consultation.documents) == 1


def test_form_with_errors_is_shown_again_with_a_summary_and_the_answers_kept(
    page: Page, live_server: LiveServer
) -> None:
    open_form(page, live_server)
    fill_about_you(page, name="", email="erika.mustermann@")
    fill_symptoms(page)
    answer_red_flags(page)
    give_consent(page)
    send(page)

    expect(page).to_have_title(re.compile(r"^Error: Request a spine evaluation"))
    summary = page.get_by_role("alert").filter(
        has=page.get_by_role("heading", name="Please correct the following")
    )
    expect(summary).to_be_visible()
    name_link = summary.get_by_role("link", name="Full name: Please enter your full name.")
    email_link = summary.get_by_role(
        "link", name="Email address: Please enter a valid email address, like name@example.com."
    )
    expect(summary.get_by_role("link")).to_have_count(2)
    expect(name_link).to_have_attribute("href", "#full_name")
    expect(email_link).to_have_attribute("href", "#email")

    # Each message is tied to its field, so a screen reader reads it with the field.
    full_name = page.get_by_label("Full name", exact=True)
    email = page.get_by_label("Email address", exact=True)
    expect(full_name).to_have_attribute("aria-invalid", "true")
    expect(full_name).to_have_accessible_description("Error: Please enter your full name.")
    expect(email).to_have_attribute("aria-invalid", "true")
    expect(email).to_have_accessible_description(
        "Error: Please enter a valid email address, like name@example.com."
    )

    # Nothing the patient typed or chose is lost.
    expect(full_name).to_have_value("")
    expect(email).to_have_value("erika.mustermann@")
    expect(page.get_by_label("Date of birth", exact=True)).to_have_value("1970-05-17")
    expect(page.get_by_label("Phone number", exact=True)).to_have_value("+49 30 901820")
    expect(group(page, "Where does it hurt?").get_by_label("Leg", exact=True)).to_be_checked()
    expect(group(page, "Pain at its worst in the last week").get_by_label("8")).to_be_checked()
    expect(group(page, RED_FLAGS[0]).get_by_label("No", exact=True)).to_be_checked()
    expect(page.get_by_role("checkbox", name="I have read the privacy notice")).to_be_checked()

    # The summary's link takes the patient to the field to correct.
    email_link.click()
    expect(email).to_be_focused()

    assert stored_requests(live_server) == []
