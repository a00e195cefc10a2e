"""Accessibility of the request form, in every state that matters: the urgent
symptoms' questions, each step (empty, with errors, filled in), finishing later and the
request sent. What is checked: ``tests/e2e/accessibility.py``.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

from tests.e2e import accessibility
from tests.e2e.accessibility import (
    Site,
    assert_accessible,
    draft_hidden,
    finish_later_with_errors,
    review_with_errors,
    show,
    step_with_errors,
)
from tests.e2e.pages import add_document, fill_steps_to_review, give_consent
from tests.support import pdf_bytes

pytestmark = pytest.mark.e2e

# The demo clinic (seeded once for this module) and a fresh browser for each test.
site = accessibility.site
patient = accessibility.patient


def _request_with_a_time(site: Site, page: Page) -> None:
    site.answer_red_flags(page)
    expect(page).to_have_url(site("/request/time"))
    page.get_by_role("form", name=re.compile(r"^Open times from ")).get_by_role(
        "radio"
    ).first.check()
    page.get_by_role("button", name="Continue with this time").click()
    expect(page.get_by_text("Your chosen time", exact=True)).to_be_visible()


def _documents_with_one_added(site: Site, page: Page) -> None:
    site.visit(page, "/request/steps/documents")
    pdf = site.scratch / "mri-report.pdf"
    pdf.write_bytes(pdf_bytes("MRI lumbar spine"))
    add_document(page, pdf)


def _documents_with_a_refused_file(site: Site, page: Page) -> None:
    """With scripts: the refused file stays in the progress area, with its reason (and no
    button to try again: the same file would be refused again)."""
    site.visit(page, "/request/steps/documents")
    not_a_document = site.scratch / "notes.pdf"
    not_a_document.write_bytes(b"this is not a PDF")
    page.get_by_label("Choose one or more files").set_input_files(not_a_document)
    expect(page.locator("#upload-progress")).to_contain_text("not a PDF, JPEG or PNG")


def _finish_later_sent(site: Site, page: Page) -> None:
    site.visit(page, "/request/later")
    page.get_by_label("Email address", exact=True).fill("erika.mustermann@example.com")
    page.get_by_role("button", name="Email me the link").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("We have emailed you a link")


def _submitted(site: Site, page: Page) -> None:
    site.answer_red_flags(page, yes="fever")
    page.goto(site("/request/steps/time"))
    fill_steps_to_review(page)
    give_consent(page)
    page.get_by_role("button", name="Send my request").click()
    expect(page).to_have_url(site("/request/submitted"))


def _red_flags_with_errors(site: Site, page: Page) -> None:
    page.goto(site("/request/start"))
    page.get_by_role("button", name="Continue").click()
    expect(page).to_have_title(re.compile(r"^Error: "))


def _red_flags_with_emergency_advice(site: Site, page: Page) -> None:
    page.goto(site("/request/start"))
    page.locator("input[name=red_bladder_bowel][value=yes]").check()
    expect(page.get_by_role("alert")).to_be_visible()


def _emergency(site: Site, page: Page) -> None:
    site.answer_red_flags(page, yes="bladder_bowel")
    expect(page).to_have_url(site("/request/emergency"))


def _emergency_with_errors(site: Site, page: Page) -> None:
    _emergency(site, page)
    page.get_by_role("button", name="Ask the clinic to call me back").click()
    expect(page).to_have_title(re.compile(r"^Error: "))


def _call_back_requested(site: Site, page: Page) -> None:
    _emergency(site, page)
    page.get_by_label("Your name").fill("Jonas Weber")
    page.get_by_label("Your phone number").fill("030 901820")
    page.get_by_role("button", name="Ask the clinic to call me back").click()
    expect(page).to_have_url(site("/request/emergency/call-back"))


# The request form's pages (the other patient pages: test_accessibility_patient.py), each in
# a fresh browser.
PATIENT_PAGES: dict[str, str | Callable[[Site, Page], None]] = {
    "urgent symptoms": "/request/start",
    "urgent symptoms in Spanish": "/request/start?lang=es",
    "urgent symptoms with errors": _red_flags_with_errors,
    "urgent symptoms, emergency advice shown": _red_flags_with_emergency_advice,
    "emergency stop": _emergency,
    "emergency stop with errors": _emergency_with_errors,
    "call-back requested": _call_back_requested,
    "time picker": "/request/time",
    "step 1: time": "/request/steps/time",
    "step 1: time, with a chosen time": _request_with_a_time,
    "step 2: about you": "/request/steps/about",
    "step 2: about you with errors": step_with_errors,
    "step 3: your symptoms": "/request/steps/symptoms",
    "step 4: pain and daily life": "/request/steps/function",
    "step 4: pain and daily life, part 2": "/request/steps/function?page=2",
    "step 5: health and treatment": "/request/steps/history",
    "step 5: health and treatment, part 2": "/request/steps/history?page=2",
    "step 6: documents": "/request/steps/documents",
    "step 6: documents, one added": _documents_with_one_added,
    "step 6: documents, a file refused": _documents_with_a_refused_file,
    "step 7: check and send": "/request/steps/review",
    "step 7: check and send with errors": review_with_errors,
    "finish later": "/request/later",
    "finish later with errors": finish_later_with_errors,
    "finish later: link sent": _finish_later_sent,
    "finish later: link no longer valid": "/request/resume/not-a-token",
    "unfinished request hidden after an hour": draft_hidden,
    "step 2: about you in Spanish": "/request/steps/about?lang=es",
    "request sent (urgent)": _submitted,
}


@pytest.mark.parametrize("name", PATIENT_PAGES)
def test_patient_page_has_no_serious_accessibility_problem(
    name: str, site: Site, patient: Page
) -> None:
    show(site, patient, PATIENT_PAGES[name])
    assert_accessible(patient, name)
