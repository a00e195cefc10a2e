"""Accessibility of the patient pages other than the request form (the clinic's
information pages, the patient's own private pages, the error pages), and every patient page
on a phone. What is checked: ``tests/e2e/accessibility.py``.
"""

from __future__ import annotations

import mailbox
import re
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from tests.e2e import accessibility
from tests.e2e.accessibility import Site, assert_accessible, manage_documents_with_errors, show
from tests.e2e.conftest import PHONE, PHONE_WIDTH, browser_page, build_app, serving
from tests.e2e.pages import cells_beyond_the_screen, page_width
from tests.smtp import free_port

pytestmark = pytest.mark.e2e

# The demo clinic (seeded once for this module) and a fresh browser for each test.
site = accessibility.site
patient = accessibility.patient


def _manage_cancel(site: Site, page: Page) -> None:
    page.goto(site(site.manage_path))
    page.get_by_text("I want to cancel", exact=True).click()
    expect(page.get_by_role("button", name="Cancel my request")).to_be_visible()


def _too_many_requests(site: Site, page: Page) -> None:
    config = site.server.app.config
    before = config["MANAGE_RATE_LIMIT"]
    # A limit of its own, so no other test's counts are involved.
    config["MANAGE_RATE_LIMIT"] = "1 per 59 minutes"
    try:
        page.goto(site(site.manage_path))
        response = page.goto(site(site.manage_path))
        assert response is not None and response.status == 429
    finally:
        config["MANAGE_RATE_LIMIT"] = before


# The patient pages but the request form's (test_accessibility_request.py), each in a fresh
# browser.
PATIENT_PAGES: dict[str, str | Callable[[Site, Page], None]] = {
    "home": "/",
    "evaluation": "/info/evaluation",
    "conditions": "/info/conditions",
    "treatments": "/info/treatments",
    "prepare": "/info/prepare",
    "privacy": "/privacy",
    "manage": "{manage}",
    "manage: cancel": _manage_cancel,
    "manage: documents with errors": manage_documents_with_errors,
    "manage: reschedule": "{manage}/reschedule",
    "not found": "/no-such-page",
    "too many requests": _too_many_requests,
}


@pytest.mark.parametrize("name", PATIENT_PAGES)
def test_patient_page_has_no_serious_accessibility_problem(
    name: str, site: Site, patient: Page
) -> None:
    show(site, patient, PATIENT_PAGES[name])
    assert_accessible(patient, name)


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/info/evaluation",
        "/info/conditions",
        "/info/treatments",
        "/info/prepare",
        "/privacy",
        "/request/start",
        "/request/time",
        "/request/steps/time",
        "/request/steps/about",
        "/request/steps/symptoms",
        "/request/steps/function",
        "/request/steps/function?page=2",
        "/request/steps/history",
        "/request/steps/history?page=2",
        "/request/steps/documents",
        "/request/steps/review",
        "/request/later",
        "{manage}",
        "{manage}/reschedule",
        "/no-such-page",
    ],
)
def test_patient_page_fits_a_phone_without_sideways_scrolling(
    path: str, site: Site, browser: Browser
) -> None:
    with browser_page(browser, **PHONE) as page:
        site.visit(page, path)
        assert page_width(page) <= PHONE_WIDTH, f"{path} scrolls sideways on a phone"


def test_the_development_mail_viewer_shows_each_subject_whole_on_a_phone(
    tmp_path: Path, browser: Browser
) -> None:
    """The development mail viewer (`make run`) on a phone: each email's subject, its link,
    is on the screen whole, not cut at the screen's edge."""
    app = build_app(tmp_path / "clinic", free_port(), DEV_MAIL_VIEWER=True)
    box = mailbox.Maildir(app.config["DEV_MAILDIR"], create=True)
    subject = "Your consultation request SC-7K4M-Q2XD was received: what happens next"
    message = EmailMessage()
    message["Subject"] = subject
    message["To"] = "erika.mustermann.with.a.long.address@example-hospital.com"
    message["From"] = "clinic@example.com"
    message["Date"] = "Fri, 27 Nov 2026 10:00:00 +0000"
    message.set_content("Your reference: SC-7K4M-Q2XD")
    box.add(message)
    with serving(app) as server, browser_page(browser, **PHONE) as page:
        page.goto(server("/dev/mail"))
        link = page.get_by_role("link", name=subject)
        expect(link).to_be_visible()
        assert page_width(page) <= PHONE_WIDTH, "the mail viewer scrolls sideways"
        assert not cells_beyond_the_screen(page), cells_beyond_the_screen(page)


def test_the_spanish_header_with_the_clinics_phone_fits_a_phone(
    tmp_path: Path, browser: Browser
) -> None:
    """The header's last row, the languages and "Call us" with the clinic's number, is longer
    in Spanish ("Llámenos: +49 30 1234 5678"): it ran 21 px past a phone's edge and every
    patient page scrolled sideways. The row wraps like the menu above it."""
    app = build_app(tmp_path / "clinic", free_port(), CLINIC_PHONE="+49 30 1234 5678")
    with serving(app) as server, browser_page(browser, **PHONE) as page:
        page.goto(server("/?lang=es"))
        call = page.get_by_role("link", name="Llámenos: +49 30 1234 5678")
        expect(call).to_be_visible()
        assert page_width(page) <= PHONE_WIDTH, "the Spanish header scrolls sideways"
        box = call.bounding_box()
        assert box is not None and box["x"] + box["width"] <= PHONE_WIDTH, box


MIN_TARGET_PX = 24  # WCAG 2.2 target size (minimum), 2.5.8


def short_targets(targets: Locator) -> list[str]:
    """The visible ``targets`` less than 24 CSS pixels high, with their height."""
    short = []
    for target in targets.all():
        box = target.bounding_box()
        if box is not None and box["height"] < MIN_TARGET_PX:
            short.append(f"{target.inner_text().strip()!r}: {box['height']:.1f} px")
    return short


def test_small_links_on_the_review_and_the_record_are_big_enough_to_tap(
    site: Site, browser: Browser
) -> None:
    """The review's "Change" links and the record's "Send a new link" button are small text
    links: each is still at least 24 px high, a target a finger can hit on a phone."""
    with browser_page(browser, **PHONE) as page:
        site.visit(page, "/request/steps/review")
        # The step's "Change": the red-flag step's, outside the step form, is a link.
        changes = page.get_by_role("button", name=re.compile(r"^Change")).or_(
            page.get_by_role("link", name=re.compile(r"^Change"))
        )
        expect(changes.first).to_be_visible()
        assert not short_targets(changes), short_targets(changes)

    page = site.admin
    page.goto(site(f"/staff/requests/{site.reference}"))
    send = page.locator("#new-link > summary")
    expect(send).to_have_text("Send a new link (the earlier ones stop working)")
    assert not short_targets(send), short_targets(send)
    # It only opens the box that says what it does; the button there sends.
    confirm = page.get_by_role("button", name="End the earlier links and send a new one")
    expect(confirm).to_be_hidden()
    send.click()
    expect(confirm).to_be_visible()
