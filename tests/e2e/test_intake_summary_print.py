"""The intake summary printed from a real browser: A4, one or two pages for a typical request,
and nothing of the staff menu, forms or buttons on paper; the record page leads to it."""

from __future__ import annotations

import io
import re

import pytest
from playwright.sync_api import Page, expect
from pypdf import PdfReader

from booking.dashboard import services as workflow
from tests.e2e.conftest import LiveServer
from tests.e2e.pages import sign_in
from tests.factories import make_request, make_staff

pytestmark = pytest.mark.e2e

COORDINATOR = "cora.print@example.com"
NOTE = "Brings the MRI CD to the appointment."


def test_the_summary_prints_on_a4_without_the_menu_or_buttons(
    page: Page, live_server: LiveServer
) -> None:
    with live_server.app.app_context():
        coordinator = make_staff("coordinator", COORDINATOR, full_name="Cora Print")
        consultation = make_request(
            documents=3, red_flags={"fever", "cancer_history"}, full_name="Erika Mustermann"
        )
        workflow.add_note(consultation, coordinator, NOTE)
        reference = consultation.reference

    sign_in(page, live_server, COORDINATOR)
    page.goto(live_server(f"/staff/requests/{reference}"))
    page.get_by_role("link", name="Intake summary (to print, or as a PDF)").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Erika Mustermann")
    download = page.get_by_role("link", name="Download PDF")
    sign_out = page.get_by_role("button", name="Sign out")
    expect(download).to_be_visible()
    expect(sign_out).to_be_visible()

    page.emulate_media(media="print")
    expect(page.get_by_role("heading", level=1)).to_be_visible()
    expect(page.get_by_role("heading", name="Oswestry Disability Index")).to_be_visible()
    expect(page.get_by_text(NOTE)).to_be_visible()
    for hidden in (download, sign_out, page.get_by_role("link", name="Queue")):
        expect(hidden).to_be_hidden()
    assert page.locator("form:visible, button:visible, nav:visible").count() == 0

    # The browser's own "Save as PDF", with the page's @page size (A4).
    printed = PdfReader(io.BytesIO(page.pdf(prefer_css_page_size=True)))
    assert 1 <= len(printed.pages) <= 2
    box = printed.pages[0].mediabox
    assert (round(float(box.width)), round(float(box.height))) == (595, 842)
    text = " ".join(" ".join(p.extract_text() or "" for p in printed.pages).split())
    assert "Erika Mustermann" in text and NOTE in text
    assert not re.search(r"Sign out|Download PDF", text)
