"""A Spanish-reading patient on a small phone with the browser's text at twice its size
(WCAG 1.4.4 resize text, 1.4.10 reflow): nothing lies beyond the screen's edge, and the
page does not scroll sideways.

Twice the text size: the clinic's stylesheet is served with ``html { font-size: 200% }``
added. Bootstrap and app.css size all text in rem, so this doubles every text exactly as a
browser's text-size setting does (a default font size of 32 px), while the screen keeps its
390 CSS pixels; a page zoom of 200 % would instead make the screen 195 px wide, which the
320 px reflow check covers. Spanish runs 20-30 % longer than English, and has long words
("adormecimiento", "consentimiento") that do not fit a line at that size.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Route, expect

import booking
from tests.e2e import test_accessibility
from tests.e2e.conftest import PHONE, PHONE_WIDTH, browser_page
from tests.e2e.pages import page_width
from tests.e2e.test_accessibility import Site, _review_with_errors

pytestmark = pytest.mark.e2e

# The demo clinic of the accessibility checks (seeded once for this module), with its way to
# a request's steps and its private page.
site = test_accessibility.site

STATIC = Path(booking.__file__).parent / "static"
TWICE_THE_TEXT = "\nhtml { font-size: 200% !important; }\n"

# The visible elements whose box reaches beyond the screen's right or left edge (text that
# is cut off, or there only by scrolling sideways), named with their text. Hidden text for
# screen readers (.visually-hidden, clipped to 1 px) and boxes that scroll inside themselves
# are not seen there, so are left out.
BEYOND_THE_SCREEN = """width => {
  const beyond = [];
  for (const element of document.body.querySelectorAll("*")) {
    const box = element.getBoundingClientRect();
    if (box.width === 0 || box.height === 0) continue;
    if (element.closest(".visually-hidden, .visually-hidden-focusable, .table-responsive")) {
      continue;
    }
    if (getComputedStyle(element).visibility === "hidden") continue;
    if (box.right > width + 0.5 || box.left < -0.5) {
      const text = (element.innerText || "").trim().replace(/\\s+/g, " ").slice(0, 40);
      beyond.push(`<${element.tagName.toLowerCase()}> ${JSON.stringify(text)} ` +
        `from ${Math.round(box.left)} to ${Math.round(box.right)} px`);
    }
  }
  return beyond;
}"""


@pytest.fixture
def big_text(browser: Browser) -> Iterator[Page]:
    """A 390 px phone whose browser shows text at twice its size: the clinic's stylesheet, as
    the app serves it (from its static folder), with the text size doubled."""
    stylesheet = (STATIC / "css" / "app.css").read_text(encoding="utf-8") + TWICE_THE_TEXT

    def enlarge(route: Route) -> None:
        route.fulfill(status=200, content_type="text/css; charset=utf-8", body=stylesheet)

    with browser_page(browser, **PHONE) as page:
        page.context.route(re.compile(r"/static/css/app\.css(\?.*)?$"), enlarge)
        yield page


def in_spanish(page: Page) -> None:
    """The page shown again in Spanish (the header's language switcher)."""
    page.goto(page.url.split("#")[0] + ("&" if "?" in page.url else "?") + "lang=es")
    expect(page.locator("html")).to_have_attribute("lang", "es")


def assert_fits(page: Page, what: str) -> None:
    assert page.evaluate("getComputedStyle(document.documentElement).fontSize") == "32px"
    beyond = page.evaluate(BEYOND_THE_SCREEN, PHONE_WIDTH)
    assert not beyond, f"{what}: beyond the screen's edge:\n" + "\n".join(beyond)
    assert page_width(page) <= PHONE_WIDTH, f"{what} scrolls sideways"


def test_spanish_pages_at_twice_the_text_size_fit_a_phone(site: Site, big_text: Page) -> None:
    page = big_text
    # The questions about urgent symptoms: a legend ends in "adormecimiento"; sent unanswered,
    # the error summary links each question.
    page.goto(site("/request/start?lang=es"))
    assert_fits(page, "the questions about urgent symptoms")
    page.get_by_role("button", name="Continuar").click()
    expect(page).to_have_title(re.compile(r"^Error: "))
    assert_fits(page, "the questions about urgent symptoms with errors")

    # The review, a document added: each step's name with "Cambiar" beside it, the
    # questions in the folded answers, "Su consentimiento".
    page.goto(site("/?lang=en"))
    _review_with_errors(site, page)
    in_spanish(page)
    for summary in page.locator("details.review-answers > summary").all():
        summary.click()
    assert_fits(page, "the review")
    change = page.get_by_role("link", name=re.compile(r"^Cambiar ?: Documentos$"))
    change.scroll_into_view_if_needed()
    expect(change).to_be_in_viewport(ratio=1)

    # The confirmation: the reference, and the email address in a sentence.
    page.locator("input[name=privacy_consent]").check()
    page.locator("input[name=contact_consent]").check()
    page.get_by_role("button", name="Enviar mi solicitud").click()
    expect(page).to_have_url(site("/request/submitted"))
    assert_fits(page, "the confirmation")


def test_the_pain_scale_at_twice_the_text_size_has_no_button_over_another(
    site: Site, big_text: Page
) -> None:
    """The 0-10 scale is a row of 11 on a phone; at twice the text size the buttons (40 px)
    were wider than their columns (31 px) and lay over each other: the scale wraps."""
    page = big_text
    site.visit(page, "/request/steps/function")
    in_spanish(page)
    scale = page.locator(".pain-scale").first
    boxes = [radio.bounding_box() for radio in scale.get_by_role("radio").all()]
    assert len(boxes) == 11
    for left, right in itertools.pairwise(boxes):
        if left["y"] == right["y"]:  # side by side on one row
            assert left["x"] + left["width"] <= right["x"], (left, right)
    assert_fits(page, "pain and daily life")


def test_the_header_with_the_clinics_phone_at_twice_the_text_size_fits_a_phone(
    site: Site, big_text: Page
) -> None:
    """ "Llámenos: +49 30 1234 5678" is one line that cannot break."""
    config = site.server.app.config
    before = config["CLINIC_PHONE"]
    config["CLINIC_PHONE"] = "+49 30 1234 5678"
    try:
        big_text.goto(site("/?lang=es"))
        assert_fits(big_text, "the home page with the clinic's phone")
        call = big_text.get_by_role("link", name=re.compile(r"^Llámenos: "))
        # The number itself stays whole, on one line.
        expect(call).to_contain_text("+49\u00a030\u00a01234\u00a05678")
    finally:
        config["CLINIC_PHONE"] = before
