"""Form errors are announced and tied to their fields, and a question is required but
not invalid until the form is sent, on patient and staff forms. What is checked:
``tests/e2e/accessibility.py``.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

from tests.e2e import accessibility
from tests.e2e.accessibility import (
    Site,
    ax_controls,
    finish_later_with_errors,
    hours_with_errors,
    invalid_controls,
    login_code,
    login_with_error,
    manage_documents_with_errors,
    raise_without_a_reason,
    review_with_errors,
    step_with_errors,
    two_factor_setup,
)

pytestmark = pytest.mark.e2e

# The demo clinic (seeded once for this module) and a fresh browser for each test.
site = accessibility.site
patient = accessibility.patient


# --- form errors are announced ---------------------------------------------------------------


def _two_factor_setup_with_error(site: Site, page: Page) -> None:
    two_factor_setup(site, page)
    page.get_by_label("Code", exact=True).fill("12345")
    page.get_by_role("button", name="Turn on two-factor sign-in").click()


def _account_with_errors(site: Site, page: Page) -> None:
    page.goto(site("/staff/accounts"))
    page.get_by_role("button", name=re.compile(r"^(Add|Create)")).first.click()


def _forgot_password_with_errors(site: Site, page: Page) -> None:
    page.goto(site("/staff/password/forgot"))
    page.get_by_role("button", name="Send the link").click()


def _location_with_errors(site: Site, page: Page) -> None:
    page.goto(site("/staff/admin/locations"))
    page.get_by_role("button", name="Add the location").click()


# Each error state, and whether it is reached signed in as the admin.
ERROR_STATES: dict[str, tuple[Callable[..., None], bool]] = {
    "request step": (step_with_errors, False),
    "check and send": (review_with_errors, False),
    "finish later": (finish_later_with_errors, False),
    "manage: documents": (manage_documents_with_errors, False),
    "staff sign-in": (login_with_error, False),
    "sign-in code": (lambda site, page: login_code(site, page, wrong=True), False),
    "two-factor setup": (_two_factor_setup_with_error, False),
    "specialist's hours": (hours_with_errors, True),
    "new staff account": (_account_with_errors, True),
    "new location": (_location_with_errors, True),
    "record: raise the triage level": (raise_without_a_reason, True),
    "forgot password": (_forgot_password_with_errors, False),
}


@pytest.mark.parametrize("name", ERROR_STATES)
def test_form_errors_are_announced_and_tied_to_their_fields(
    name: str, site: Site, patient: Page
) -> None:
    how, signed_in = ERROR_STATES[name]
    page = site.admin if signed_in else patient
    how(site, page)

    # The title says so first (it is what a screen reader reads on arrival) ...
    expect(page).to_have_title(re.compile(r"^Error: "))
    # ... and a summary that screen readers announce lists every problem.
    summary = page.get_by_role("alert").filter(
        has=page.get_by_role("heading", name="Please correct the following")
    )
    expect(summary).to_be_visible()

    # Each link in the summary leads to something on the page.
    for href in summary.get_by_role("link").evaluate_all("links => links.map(a => a.hash)"):
        expect(page.locator(href), f"the summary links to {href}").to_have_count(1)

    # Each invalid field says so, and its error is read with it: a choice's error with its
    # group (screen readers read a group's description on entering it), a field's with it.
    invalid = page.locator("[aria-invalid=true]")
    if summary.get_by_role("link").count():
        expect(invalid.first).to_be_attached()
    for field in invalid.all():
        in_group = field.locator("xpath=ancestor::fieldset[@aria-describedby][1]")
        if field.get_attribute("type") in ("radio", "checkbox") and in_group.count():
            field = in_group
        expect(field).to_have_accessible_description(re.compile(r"Error: \S"))

    # No error message stands alone, unread when its field has the focus.
    orphans = page.locator(".invalid-feedback").evaluate_all(
        """messages => messages.filter(m => !m.id ||
            !document.querySelector(`[aria-describedby~="${m.id}"]`)).map(m => m.outerHTML)"""
    )
    assert not orphans, f"error messages no field refers to: {orphans}"


# --- required, and invalid only once refused -------------------------------------------------


# Each page, and whether it asks a question chromium announces as required. The pain and
# daily life step's questions are asked by the main problem (marked neither required nor
# "(optional)"), and chromium announces no checkbox as required (the review's consent boxes).
FRESH_FORMS = {
    "/request/start": True,
    "/request/steps/about": True,
    "/request/steps/symptoms": True,
    "/request/steps/function": False,
    "/request/steps/review": False,
    "/request/later": True,
    "/staff/login": True,
}


@pytest.mark.parametrize("path", FRESH_FORMS)
def test_unanswered_questions_are_required_but_not_invalid_before_sending(
    path: str, site: Site, patient: Page
) -> None:
    """A question nobody has answered yet is announced as required, not as invalid: the
    forms are checked by the server, and "invalid" on every question of a fresh page would
    tell a screen reader user they had already made mistakes."""
    site.visit(patient, path)
    patient.wait_for_load_state("load")
    assert not invalid_controls(patient), f"{path}: invalid before sending"
    if FRESH_FORMS[path]:
        assert any(c["required"] for c in ax_controls(patient)), f"{path}: nothing required"


def test_a_required_question_left_unanswered_is_invalid_once_sent(
    site: Site, patient: Page
) -> None:
    patient.goto(site("/request/start"))
    question = patient.get_by_role("radiogroup").first
    name = question.evaluate("group => group.querySelector('legend').textContent.trim()")
    required = {c["name"]: c["required"] for c in ax_controls(patient) if c["role"] == "radiogroup"}
    assert required[name], f"{name!r} is not announced as required"

    patient.get_by_role("button", name="Continue").click()
    expect(patient).to_have_title(re.compile(r"^Error: "))
    for radio in question.get_by_role("radio").all():
        expect(radio).to_have_attribute("aria-invalid", "true")
    assert invalid_controls(patient), "no question is announced as invalid after sending"
    assert required == {
        c["name"]: c["required"] for c in ax_controls(patient) if c["role"] == "radiogroup"
    }
