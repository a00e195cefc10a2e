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
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Route, expect
from sqlalchemy import select

import booking
from booking.extensions import db
from booking.requests.links import issue_link
from booking.requests.waitlist import join_waitlist
from booking.scheduling.models import SlotOffer, SlotOfferRecipient
from booking.staff.models import StaffUser
from tests.e2e import accessibility
from tests.e2e.accessibility import Site, draft_hidden, review_with_errors
from tests.e2e.conftest import PHONE, PHONE_WIDTH, browser_page
from tests.e2e.pages import page_width
from tests.factories import confirm_at, first_type_open_times, make_request

pytestmark = pytest.mark.e2e

# The demo clinic of the accessibility checks (seeded once for this module), with its way to
# a request's steps and its private page.
site = accessibility.site

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


# The text and controls in the page's main column that reach into the side margins (the
# container's padding, 24 px a side at twice the text size) or beyond: on the screen, but
# against its edge, or cut off by a phone's rounded corners. Read from the text itself (its
# lines' boxes), as rows and columns reach into the padding by design (Bootstrap's gutters).
INTO_THE_MARGIN = """() => {
  const main = document.querySelector("main");
  const style = getComputedStyle(main);
  const box = main.getBoundingClientRect();
  const left = box.left + parseFloat(style.paddingLeft);
  const right = box.right - parseFloat(style.paddingRight);
  const outside = [];
  const report = (element, rect, what) => {
    if (rect.width === 0 || rect.height === 0) return;
    if (rect.right > right + 0.5 || rect.left < left - 0.5) {
      outside.push(`${what} ${JSON.stringify((element.innerText || element.textContent || "")
        .trim().replace(/\\s+/g, " ").slice(0, 40))} from ${Math.round(rect.left)} to ` +
        `${Math.round(rect.right)} px (the column: ${Math.round(left)} to ${Math.round(right)})`);
    }
  };
  const walker = document.createTreeWalker(main, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const element = node.parentElement;
    if (!node.textContent.trim()) continue;
    if (element.closest(".visually-hidden, .visually-hidden-focusable, .table-responsive")) {
      continue;
    }
    if (getComputedStyle(element).visibility === "hidden") continue;
    const range = document.createRange();
    range.selectNodeContents(node);
    for (const rect of range.getClientRects()) {
      report(element, rect, `<${element.tagName.toLowerCase()}> text`);
    }
  }
  for (const control of main.querySelectorAll("button, input, select, textarea, img, .btn")) {
    if (control.closest(".visually-hidden, .visually-hidden-focusable")) continue;
    report(control, control.getBoundingClientRect(), `<${control.tagName.toLowerCase()}>`);
  }
  return outside;
}"""


def assert_fits(page: Page, what: str) -> None:
    # The page as loaded with the enlarged stylesheet: after a click that navigates, the
    # new document may still be waiting for it (a 16 px root font, seen under load).
    page.wait_for_load_state("load")
    expect(page.locator("html")).to_have_css("font-size", "32px")
    beyond = page.evaluate(BEYOND_THE_SCREEN, PHONE_WIDTH)
    assert not beyond, f"{what}: beyond the screen's edge:\n" + "\n".join(beyond)
    assert page_width(page) <= PHONE_WIDTH, f"{what} scrolls sideways"


def assert_in_its_column(page: Page, what: str) -> None:
    """``assert_fits``, and nothing in the page's main column reaches into its margins."""
    assert_fits(page, what)
    outside = page.evaluate(INTO_THE_MARGIN)
    assert not outside, f"{what}: into the margin:\n" + "\n".join(outside)


def test_spanish_pages_at_twice_the_text_size_fit_a_phone(site: Site, big_text: Page) -> None:
    page = big_text
    # The questions about urgent symptoms: a legend ends in "adormecimiento"; sent unanswered,
    # the error summary links each question.
    page.goto(site("/request/start?lang=es"))
    assert_in_its_column(page, "the questions about urgent symptoms")
    page.get_by_role("button", name="Continuar").click()
    expect(page).to_have_title(re.compile(r"^Error: "))
    assert_in_its_column(page, "the questions about urgent symptoms with errors")

    # The review, a document added: each step's name with "Cambiar" beside it, the
    # questions in the folded answers, "Su consentimiento".
    page.goto(site("/?lang=en"))
    review_with_errors(site, page)
    in_spanish(page)
    for summary in page.locator("details.review-answers > summary").all():
        summary.click()
    assert_in_its_column(page, "the review")
    change = page.get_by_role("button", name=re.compile(r"^Cambiar ?: Documentos$"))
    change.scroll_into_view_if_needed()
    expect(change).to_be_in_viewport(ratio=1)

    # The confirmation: the reference, and the email address in a sentence.
    page.locator("input[name=privacy_consent]").check()
    page.locator("input[name=contact_consent]").check()
    page.get_by_role("button", name="Enviar mi solicitud").click()
    expect(page).to_have_url(site("/request/submitted"))
    assert_in_its_column(page, "the confirmation")


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
    assert_in_its_column(page, "pain and daily life")


def test_the_header_with_the_clinics_phone_at_twice_the_text_size_fits_a_phone(
    site: Site, big_text: Page
) -> None:
    """ "Llámenos: +49 30 1234 5678" is one line that cannot break."""
    config = site.server.app.config
    before = config["CLINIC_PHONE"]
    config["CLINIC_PHONE"] = "+49 30 1234 5678"
    try:
        big_text.goto(site("/?lang=es"))
        assert_in_its_column(big_text, "the home page with the clinic's phone")
        call = big_text.get_by_role("link", name=re.compile(r"^Llámenos: "))
        # The number itself stays whole, on one line.
        expect(call).to_contain_text("+49\u00a030\u00a01234\u00a05678")
    finally:
        config["CLINIC_PHONE"] = before


def _offered_an_earlier_time(site: Site) -> str:
    """A Spanish request confirmed at a late time, on the waiting list, emailed an earlier
    one: the offer's link, as its email holds it (the private link, then the offer)."""
    app = site.server.app
    with app.app_context():
        consultation = make_request(locale="es", full_name="Lucía Fernández")
        coordinator = db.session.scalar(select(StaffUser).where(StaffUser.role == "coordinator"))
        kind, slots = first_type_open_times(days_ahead=4)
        early, late = slots[0], slots[-1]
        confirm_at(
            consultation, coordinator, kind, late.starts_at, late.specialist_id, late.location_id
        )
        join_waitlist(consultation)
        offer = SlotOffer(
            token=secrets.token_urlsafe(32),
            appointment_type_id=kind.id,
            specialist_id=early.specialist_id,
            location_id=early.location_id,
            starts_at=early.starts_at,
        )
        db.session.add(offer)
        db.session.flush()
        db.session.add(SlotOfferRecipient(offer_id=offer.id, request_id=consultation.id))
        token = issue_link(consultation)
        db.session.commit()
        return f"/manage/open/{token}/offers/{offer.token}"


def _too_many(site: Site, page: Page) -> None:
    """The friendly 429 page, in Spanish (a limit of its own: no other test's counts)."""
    config = site.server.app.config
    before = config["MANAGE_RATE_LIMIT"]
    config["MANAGE_RATE_LIMIT"] = "1 per 58 minutes"
    try:
        page.goto(site(f"{site.manage_path}?lang=es"))
        response = page.goto(site(f"{site.manage_path}?lang=es"))
        assert response is not None and response.status == 429
        expect(page.locator("html")).to_have_attribute("lang", "es")
    finally:
        config["MANAGE_RATE_LIMIT"] = before


def test_the_patients_own_pages_at_twice_the_text_size_fit_a_phone(
    site: Site, big_text: Page
) -> None:
    """The pages a patient reaches by a link or a wait, in Spanish at twice the text size:
    the request's page (its title holds the reference, kept on one line), an earlier time
    offered, a link that no longer works, an unfinished request hidden after an hour, and
    the page that asks to wait (429)."""
    page = big_text
    page.goto(site(_offered_an_earlier_time(site)))
    expect(page.get_by_role("heading", level=1)).to_have_text("Adelantar su cita")
    expect(page.locator("form button[type=submit]")).to_be_visible()  # the offer is open
    assert_in_its_column(page, "an earlier time offered")
    page.get_by_role("link", name=re.compile("Volver a su solicitud")).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("SC-")
    assert_in_its_column(page, "the request's page")

    for path, what in (
        ("/manage/open/not-a-token?lang=es", "a private link that no longer works"),
        ("/request/resume/not-a-token?lang=es", "a link to carry on that no longer works"),
    ):
        page.goto(site(path))
        assert_in_its_column(page, what)

    page.goto(site("/?lang=en"))  # the way to a hidden draft is written in English
    draft_hidden(site, page)
    in_spanish(page)
    assert_in_its_column(page, "an unfinished request hidden after an hour")

    _too_many(site, page)
    assert_in_its_column(page, "too many requests")


# Each step's name in the list of steps: its font size, line height and height, in px.
STEP_NAMES = """() => [...document.querySelectorAll(".request-steps .badge")].map(badge => {
  const style = getComputedStyle(badge);
  return {text: badge.innerText.trim(), size: parseFloat(style.fontSize),
          line: parseFloat(style.lineHeight), height: badge.getBoundingClientRect().height};
})"""


def test_the_steps_names_wrapped_at_twice_the_text_size_keep_their_lines_apart(
    site: Site, big_text: Page
) -> None:
    """A step's name too long for the phone's line wraps inside its badge, whose line-height
    of 1 set each line against the next ("4. Dolor y vida diaria"): the names get the line
    spacing of running text."""
    page = big_text
    site.visit(page, "/request/steps/function")
    in_spanish(page)
    names = page.evaluate(STEP_NAMES)
    assert len(names) == 7
    wrapped = [name for name in names if name["height"] > 1.9 * name["line"]]
    assert wrapped, names  # some name does wrap at this size, or the test shows nothing
    for name in names:
        assert name["line"] >= 1.3 * name["size"], name
    assert_in_its_column(page, "pain and daily life")
