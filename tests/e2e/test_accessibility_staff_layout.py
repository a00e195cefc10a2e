"""The staff pages on every screen: nothing cut off or scrolling sideways on a laptop, a
tablet, a small window or a phone; wide tables stacked or in a box a keyboard scrolls, with
scripts and without. What is checked: ``tests/e2e/accessibility.py``.
"""

from __future__ import annotations

import re
from datetime import time, timedelta

import pytest
from playwright.sync_api import Browser, Locator, expect
from sqlalchemy import select

from booking.cli import DEMO_PASSWORD
from booking.dashboard import services as workflow
from booking.extensions import db
from booking.outcomes import schedule
from booking.outcomes.models import FollowUp, Plan
from booking.outcomes.services import send_due_followups
from booking.timeutil import clinic_today
from tests.e2e import accessibility
from tests.e2e.accessibility import ADMIN, COORDINATOR, Site, assert_accessible
from tests.e2e.conftest import PHONE, PHONE_WIDTH, browser_page
from tests.e2e.pages import cells_beyond_the_screen, page_width, sign_in
from tests.factories import (
    make_appointment_type,
    make_hours,
    make_location,
    make_request,
    make_staff,
)
from tests.support import QUEUE_CAPTION
from tests.test_outcome_results import _answer
from tests.test_outcomes import _start

pytestmark = pytest.mark.e2e

# The demo clinic, seeded once for this module.
site = accessibility.site


@pytest.mark.parametrize("width", [1280, 1024, 800])
def test_staff_pages_fit_the_screen_without_sideways_scrolling(width: int, site: Site) -> None:
    """The admin's menu (the longest) and a record with its documents fit a laptop, a tablet
    and a small window: nothing is cut off or needs sideways scrolling."""
    page = site.admin
    before = page.viewport_size
    page.set_viewport_size({"width": width, "height": 800})
    try:
        for path in ("/staff/", "/staff/requests/{reference}", "/staff/admin/audit"):
            page.goto(site(path.format(reference=site.reference)))
            assert page_width(page) <= width, f"{path} scrolls sideways at {width} px"
            menu = page.get_by_role("button", name="Menu")
            if menu.is_visible():  # a narrow window folds the menu behind its button
                menu.click()
            expect(page.get_by_role("button", name="Sign out")).to_be_in_viewport()
    finally:
        page.set_viewport_size(before)


def test_staff_phone_without_scripts_reaches_the_menu_and_signs_out(
    site: Site, browser: Browser
) -> None:
    """On a phone the staff menu folds behind a button only Bootstrap's script opens; with
    scripts off (README: every page works without them) the menu is shown, so a shared ward
    device can still be signed out."""
    with browser_page(browser, java_script_enabled=False, **PHONE) as page:
        sign_in(page, site.server, COORDINATOR, password=DEMO_PASSWORD)
        expect(page.get_by_role("button", name="Menu")).to_be_hidden()
        menu = page.get_by_role("navigation", name="Staff")
        expect(menu.get_by_role("link", name="Agenda")).to_be_visible()
        sign_out = page.get_by_role("button", name="Sign out")
        expect(sign_out).to_be_visible()
        sign_out.click()
        expect(page).to_have_url(re.compile(r"/staff/login(\?|$)"))
        page.goto(site("/staff/"))
        expect(page).to_have_url(re.compile(r"/staff/login(\?|$)"))


@pytest.mark.parametrize(
    "path",
    [
        "/staff/accounts",
        "/staff/admin/locations",
        "/staff/admin/scheduling/",
        "/staff/requests/{reference}/summary",
        "/staff/outcomes",
    ],
)
def test_staff_page_fits_a_phone_without_sideways_scrolling(path: str, site: Site) -> None:
    """Wide tables scroll in their own box; nothing in them (hidden text for screen readers
    included) widens the page."""
    page = site.admin
    before = page.viewport_size
    page.set_viewport_size({"width": PHONE_WIDTH, "height": 844})
    try:
        path = path.format(reference=site.reference)
        page.goto(site(path))
        expect(page).not_to_have_url(re.compile(r"/staff/login"))
        assert page_width(page) <= PHONE_WIDTH, f"{path} scrolls sideways on a phone"
    finally:
        page.set_viewport_size(before)


def test_a_record_of_a_patient_named_in_one_long_word_fits_a_phone(site: Site) -> None:
    """The name is the patient's, as typed (up to 200 characters): one long word in the
    record's and the intake summary's heading made the page scroll sideways, the record's
    actions a screen away."""
    with site.server.app.app_context():
        reference = make_request(full_name="Wolfeschlegelsteinhausenbergerdorff" * 3).reference
    page = site.admin
    before = page.viewport_size
    page.set_viewport_size({"width": PHONE_WIDTH, "height": 844})
    try:
        for path in (f"/staff/requests/{reference}", f"/staff/requests/{reference}/summary"):
            page.goto(site(path))
            expect(page.get_by_role("heading", level=1)).to_contain_text("Wolfeschlegel")
            assert page_width(page) <= PHONE_WIDTH, f"{path} scrolls sideways on a phone"
    finally:
        page.set_viewport_size(before)


# Addresses and file names are the patient's, as typed: no space, no hyphen to break at.
LONG_EMAIL = "maximiliantheodorwolfeschlegelsteinhausenberger@beispielklinikverwaltung.de"
LONG_FILE_NAME = "MRT_LWS_20261130_Befund_Radiologie_Charite_Mitte_final_version2_signed.pdf"


def test_a_record_with_a_long_email_address_and_file_name_fits_a_phone(site: Site) -> None:
    """A long email address (in the patient's details and each email on the timeline) made
    the record 680 px wide on a 390 px phone, and a long file name the intake summary 800 px:
    the page scrolled sideways, the record's actions a screen away. Such a word breaks at the
    screen's edge."""
    with site.server.app.app_context():
        consultation = make_request(full_name="Max Long", email=LONG_EMAIL, documents=1)
        consultation.documents[0].original_name = LONG_FILE_NAME
        db.session.commit()
        reference = consultation.reference
    page = site.admin
    before = page.viewport_size
    page.set_viewport_size({"width": PHONE_WIDTH, "height": 844})
    try:
        page.goto(site(f"/staff/requests/{reference}"))
        expect(page.get_by_role("link", name=LONG_EMAIL)).to_be_visible()
        expect(
            page.get_by_role("region", name="Timeline").get_by_text(f"Email to {LONG_EMAIL}")
        ).not_to_have_count(0)
        assert page_width(page) <= PHONE_WIDTH, "the record scrolls sideways on a phone"
        page.goto(site(f"/staff/requests/{reference}/summary"))
        expect(page.get_by_role("cell", name=LONG_FILE_NAME)).to_be_visible()
        assert page_width(page) <= PHONE_WIDTH, "the intake summary scrolls sideways on a phone"
    finally:
        page.set_viewport_size(before)


@pytest.mark.parametrize("path", ["/staff/", "/staff/admin/audit"])
def test_wide_staff_tables_stack_their_cells_on_a_phone(path: str, site: Site) -> None:
    """On a phone each request of the queue (its call-back, its appointment) and each entry
    of the audit trail (its action, its details) shows every cell on the screen, beside its
    column's name: no box to scroll sideways, and the page does not scroll sideways either.
    Screen readers still read a table, without the names shown twice."""
    page = site.admin
    before = page.viewport_size
    page.set_viewport_size({"width": PHONE_WIDTH, "height": 844})
    try:
        page.goto(site(path))
        expect(page).not_to_have_url(re.compile(r"/staff/login"))
        assert page_width(page) <= page.evaluate("window.innerWidth"), f"{path} scrolls sideways"
        assert page.locator("tbody tr").count() > 1
        assert not cells_beyond_the_screen(page), cells_beyond_the_screen(page)
        expect(
            page.get_by_role("table").first.get_by_role("cell").first
        ).not_to_have_accessible_name(re.compile(r"^(Triage|When)"))
        assert_accessible(page, f"{path} on a phone")
    finally:
        page.set_viewport_size(before)


def test_wide_staff_tables_scroll_in_a_box_a_keyboard_reaches_without_scripts(
    site: Site, browser: Browser
) -> None:
    """Wider than a phone but narrower than the table, the queue scrolls in its box: without
    scripts too, the box is a named stop in the tab order and the arrow keys scroll it."""
    with browser_page(
        browser, java_script_enabled=False, viewport={"width": 700, "height": 800}
    ) as page:
        sign_in(page, site.server, COORDINATOR, password=DEMO_PASSWORD)
        box = page.get_by_role("region", name=QUEUE_CAPTION)
        # Laid out with its styles, the table is wider than the box: there is something to
        # scroll (a key pressed before that scrolls nothing, and the test would say nothing).
        page.wait_for_function("box => box.scrollWidth > box.clientWidth", arg=box.element_handle())
        box.focus()
        expect(box).to_be_focused()
        # Polled, pressed again while nothing moved: the arrow keys may scroll smoothly, a
        # while after they are pressed, and a loaded machine may take a moment more.
        for _ in range(50):
            page.keyboard.press("ArrowRight")
            if box.evaluate("box => box.scrollLeft") > 0:
                break
            page.wait_for_timeout(100)
        expect(box).to_be_focused()
        assert box.evaluate("box => box.scrollLeft") > 0


# Staff pages whose tables scroll in a box (.table-responsive), and the boxes each shows
# with the demo data, by the name a screen reader announces.
SCROLLING_TABLES: dict[str, list[str]] = {
    "/staff/accounts": ["Staff accounts"],
    "/staff/admin/locations": ["Clinic locations"],
    "/staff/admin/scheduling/": ["Appointment types patients can book"],
    "Dr. Lena Weber": ["Weekly working hours table"],  # her page, reached from the one above
    "/staff/admin/checklist": ["Checklist items"],
    "/staff/admin/privacy/{reference}": ["This patient's requests"],
    "/staff/outcomes/follow-ups": [],
    "/staff/insights": ["Disability scores at request table"],
    "/staff/outcomes": ["Response rate per time point"],
}
# A box named after its table's caption, but where that is also its section's name (said
# twice in a row otherwise).
BOX_NAMES = {
    "Weekly working hours": "Weekly working hours table",
    "Disability scores at request": "Disability scores at request table",
}
# The name of the section a box is in (its heading), if any.
SECTION_NAME = """box => {
  const section = box.closest("section[aria-labelledby]");
  const heading = section && document.getElementById(section.getAttribute("aria-labelledby"));
  return heading ? heading.textContent.trim() : null;
}"""


def test_every_staff_table_box_is_a_named_stop_in_the_tab_order_without_scripts(
    site: Site, browser: Browser
) -> None:
    """On a phone the staff tables that do not stack their cells scroll in their box: without
    scripts too, each box is a region named after its table, in the tab order, and the arrow
    keys scroll it (scroll-regions.js only takes it out where the table fits)."""
    with browser_page(browser, java_script_enabled=False, **PHONE) as page:
        sign_in(page, site.server, ADMIN, password=DEMO_PASSWORD)
        for where, names in SCROLLING_TABLES.items():
            if where.startswith("/"):
                page.goto(site(where.format(reference=site.reference)))
            else:
                page.goto(site("/staff/admin/scheduling/"))
                page.get_by_role("link", name=where, exact=True).click()
            expect(page).not_to_have_url(re.compile(r"/staff/login"))
            shown = []
            for box in page.locator(".table-responsive").all():
                caption = box.locator("caption").inner_text().strip()
                name = BOX_NAMES.get(caption, caption)
                expect(box, f"{where}: {caption!r}").to_have_role("region")
                expect(box, f"{where}: {caption!r}").to_have_accessible_name(name)
                expect(box, f"{where}: {caption!r}").to_have_attribute("tabindex", "0")
                assert box.evaluate(SECTION_NAME) != name, f"{where}: {name!r} said twice"
                shown.append(name)
                if box.evaluate("box => box.scrollWidth > box.clientWidth"):
                    box.focus()
                    expect(box).to_be_focused()
                    page.keyboard.press("ArrowRight")
                    for _ in range(50):  # the arrow keys may scroll smoothly
                        if box.evaluate("box => box.scrollLeft") > 0:
                            break
                        page.wait_for_timeout(100)
                    assert box.evaluate("box => box.scrollLeft") > 0, f"{where}: {caption!r}"
            assert set(names) <= set(shown), f"{where} shows {shown}"


def has_tab_stop(box: Locator) -> bool:
    return box.evaluate("box => box.hasAttribute('tabindex') || box.hasAttribute('role')")


def test_with_scripts_a_table_box_is_a_tab_stop_only_while_its_table_overflows(
    site: Site, browser: Browser
) -> None:
    """With scripts, a box whose table fits is no stop in the tab order (nor a region: it
    scrolls nothing); narrowed until its table overflows, it is one again, under the name
    the server gave it, and widened, not again. A page opened on a phone starts with it."""
    hours = "Weekly working hours"
    with browser_page(browser, viewport={"width": 1280, "height": 800}) as page:
        sign_in(page, site.server, ADMIN, password=DEMO_PASSWORD)
        page.goto(site("/staff/admin/scheduling/"))
        page.get_by_role("link", name="Dr. Lena Weber", exact=True).click()
        page.wait_for_load_state()  # the deferred scripts have run
        box = page.locator(".table-responsive").filter(
            has=page.get_by_role("table", name=hours, exact=True)
        )
        assert not box.evaluate("box => box.scrollWidth > box.clientWidth")
        assert not has_tab_stop(box)
        expect(page.get_by_role("region", name=f"{hours} table")).to_have_count(0)

        page.set_viewport_size({"width": PHONE_WIDTH, "height": 844})
        region = page.get_by_role("region", name=f"{hours} table", exact=True)
        expect(region).to_have_attribute("tabindex", "0")
        assert region.evaluate("box => box.scrollWidth > box.clientWidth")

        page.set_viewport_size({"width": 1280, "height": 800})
        expect(region).to_have_count(0)
        assert not has_tab_stop(box)

    with browser_page(browser, **PHONE) as page:
        sign_in(page, site.server, ADMIN, password=DEMO_PASSWORD)
        page.goto(site("/staff/accounts"))
        region = page.get_by_role("region", name="Staff accounts", exact=True)
        assert region.evaluate("box => box.scrollWidth > box.clientWidth")
        expect(region).to_have_attribute("tabindex", "0")
        region.focus()
        expect(region).to_be_focused()


def test_a_records_date_and_time_fields_side_by_side_line_up_on_a_phone(site: Site) -> None:
    """The appointment's and the call's date and time sit side by side; the time's hint
    ("Clinic time. ...") pushed its field below the date's, by 25 px and 67 px on a phone.
    The pairs line up at their fields."""
    page = site.admin
    before = page.viewport_size
    page.set_viewport_size({"width": PHONE_WIDTH, "height": 844})
    try:
        page.goto(site(f"/staff/requests/{site.reference}"))
        for day, at in (("#slot-day", "#slot-start"), ("#call-day", "#call-at")):
            left, right = page.locator(day).bounding_box(), page.locator(at).bounding_box()
            assert left is not None and right is not None
            assert abs(left["y"] - right["y"]) < 1, (day, left, at, right)
    finally:
        page.set_viewport_size(before)


def test_insights_on_a_phone_has_no_serious_accessibility_problem(site: Site) -> None:
    """The weekly chart is wider than a phone: it scrolls in a box a keyboard can reach,
    opened at this week; the bar charts fit the phone's width; the table of scores scrolls in
    its own box too, not the page."""
    page = site.admin
    before = page.viewport_size
    page.set_viewport_size({"width": PHONE_WIDTH, "height": 844})
    try:
        page.goto(site("/staff/insights"))
        expect(page.get_by_role("heading", level=1)).to_have_text("Insights")
        assert page_width(page) <= PHONE_WIDTH, "insights scroll sideways on a phone"
        # The weekly chart opens at this week: its box showed the oldest weeks (often empty)
        # and this week's bar was out of sight until scrolled to.
        latest = page.locator("#chart-weekly rect").last.bounding_box()
        assert latest is not None
        assert latest["x"] >= 0 and latest["x"] + latest["width"] <= PHONE_WIDTH, latest
        # The horizontal bar charts fit the phone's width: their bars and numbers were cut
        # off at the right edge until scrolled.
        for chart in ("#chart-diagnosis", "#chart-triage", "#chart-region"):
            values = page.locator(f"{chart} text[font-weight]")
            assert values.count(), chart
            for index in range(values.count()):
                box = values.nth(index).bounding_box()
                assert box is not None, chart
                assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE_WIDTH, (chart, box)
        assert_accessible(page, "insights on a phone")
    finally:
        page.set_viewport_size(before)


# The box of each chart on the insights page, by the chart's id.
CHART_BOX = "div:has(> svg#{})"
BAR_CHARTS = ("chart-diagnosis", "chart-triage", "chart-region")


@pytest.mark.parametrize("scripts", [True, False], ids=["scripts", "no-scripts"])
def test_an_insights_chart_box_is_a_tab_stop_only_where_it_scrolls(
    site: Site, browser: Browser, scripts: bool
) -> None:
    """The horizontal bar charts take their box's width and scroll nothing, on any screen:
    their box was still a stop in the tab order (and a region named twice, as its section
    is). Only the chart over time, wider than a phone, scrolls in a box a keyboard reaches;
    with scripts, not where it fits (a laptop)."""
    for width, scrolls in ((PHONE_WIDTH, True), (1280, False)):
        with browser_page(
            browser, java_script_enabled=scripts, viewport={"width": width, "height": 800}
        ) as page:
            sign_in(page, site.server, ADMIN, password=DEMO_PASSWORD)
            page.goto(site("/staff/insights"))
            page.wait_for_load_state()  # the deferred scripts have run
            for chart in BAR_CHARTS:
                box = page.locator(CHART_BOX.format(chart))
                assert not box.evaluate("box => box.scrollWidth > box.clientWidth"), chart
                assert not has_tab_stop(box), (chart, width)
            weekly = page.locator(CHART_BOX.format("chart-weekly"))
            assert weekly.evaluate("box => box.scrollWidth > box.clientWidth") is scrolls
            if scrolls or not scripts:
                expect(weekly).to_have_attribute("tabindex", "0")
                expect(weekly).to_have_role("region")
                expect(weekly).to_have_accessible_name("Requests per week")
            else:
                expect(weekly).not_to_have_attribute("tabindex", "0")


def test_the_administration_menu_closes_on_escape_and_on_a_click_outside(site: Site) -> None:
    """The admin pages' group in the staff menu opens over the page as a dropdown, but stayed
    open on Escape and on a click elsewhere (a <details> closes only by its summary). Escape
    now closes it, the focus back on its summary; so does a click outside it."""
    page = site.admin
    before = page.viewport_size
    page.set_viewport_size({"width": 1280, "height": 800})
    try:
        page.goto(site("/staff/"))
        page.wait_for_load_state()  # the deferred scripts have run
        menu = page.get_by_role("navigation", name="Staff")
        group = menu.locator("details.nav-group")
        summary = group.locator("summary")
        accounts = menu.get_by_role("link", name="Staff accounts")
        summary.focus()
        page.keyboard.press("Enter")
        expect(group).to_have_attribute("open", "")
        page.keyboard.press("Tab")
        expect(accounts).to_be_focused()
        page.keyboard.press("Escape")
        expect(group).not_to_have_attribute("open", "")
        expect(accounts).to_be_hidden()
        expect(summary).to_be_focused()
        # Opened again from its summary, by keyboard: Escape on the summary closes it too.
        page.keyboard.press("Enter")
        expect(accounts).to_be_visible()
        page.keyboard.press("Escape")
        expect(accounts).to_be_hidden()
        expect(summary).to_be_focused()

        summary.click()
        expect(accounts).to_be_visible()
        page.get_by_role("heading", level=1).click()
        expect(group).not_to_have_attribute("open", "")
        expect(accounts).to_be_hidden()
        # A click inside it (its summary) still toggles it as before.
        summary.click()
        expect(accounts).to_be_visible()
        summary.click()
        expect(accounts).to_be_hidden()
    finally:
        page.set_viewport_size(before)


# The staff menu's links (the admin group's summary among them) and the signed-in block (who,
# their account, "Sign out"), each with its box.
MENU_ROW = """() => {
  const box = element => { const r = element.getBoundingClientRect();
    return {text: element.textContent.trim(), top: r.top, bottom: r.bottom, left: r.left,
            right: r.right, width: r.width}; };
  const nav = document.getElementById("staff-nav");
  return {
    links: [...nav.querySelectorAll(".navbar-nav > .nav-item > .nav-link, .nav-group > summary")]
      .map(box),
    account: box(nav.querySelector("form")),
    items: [...nav.querySelectorAll("form > :not([type=hidden])")].map(box),
  };
}"""


@pytest.mark.parametrize("who", [COORDINATOR, ADMIN], ids=["coordinator", "admin"])
def test_the_staff_menu_is_one_row_at_1024_px(site: Site, browser: Browser, who: str) -> None:
    """At 1024 px (a tablet held across, a small laptop) the menu is shown whole, not folded,
    and wrapped to two rows for a coordinator (Outcomes under Queue) and an admin
    (Administration under Queue), who is signed in and "Sign out" on two rows again. Its
    links are on one row, and who is signed in, their account and "Sign out" beside them;
    nothing is left out: every link shown and named as before."""
    with browser_page(browser, viewport={"width": 1024, "height": 768}) as page:
        sign_in(page, site.server, who, password=DEMO_PASSWORD)
        page.goto(site("/staff/"))
        menu = page.get_by_role("navigation", name="Staff")
        expect(page.get_by_role("button", name="Menu")).to_be_hidden()
        row = page.evaluate(MENU_ROW)
        links, account = row["links"], row["account"]
        tops = {round(link["top"]) for link in links}
        assert len(tops) == 1, links
        assert account["left"] >= max(link["right"] for link in links) - 0.5, (account, links)
        assert account["top"] < links[0]["bottom"] and account["bottom"] > links[0]["top"]
        assert account["right"] <= 1024, account
        names = ["Queue", "Agenda", "Insights", "Outcomes"]
        if who == ADMIN:
            names.append("Scheduling")
            expect(menu.locator("details.nav-group > summary")).to_have_accessible_name(
                "Administration"
            )
        for name in names:
            expect(menu.get_by_role("link", name=name, exact=True)).to_be_in_viewport()
        for item in row["items"]:
            assert item["width"] > 0, item
        expect(menu.get_by_role("link", name="Your account")).to_be_in_viewport()
        expect(menu.get_by_role("button", name="Sign out")).to_be_in_viewport()
        expect(menu.get_by_text("set up two-factor sign-in")).to_be_visible()
        assert page_width(page) <= 1024, "the page scrolls sideways at 1024 px"


@pytest.fixture(scope="module")
def followed_up(site: Site) -> str:
    """A request seen yesterday and completed, its six-week questionnaire answered: its
    record draws the follow-up charts. Made once, with a place of its own (the demo's names
    are taken)."""
    with site.server.app.app_context():
        coordinator = make_staff("coordinator")
        specialist = make_staff("specialist")
        location = make_location("Follow-up chart clinic")
        make_hours(specialist, location, range(7), "09:00", "17:00")
        consultation = make_request(followup_consent=True, spine_region="lower_back")
        workflow.confirm_request(
            consultation,
            coordinator,
            workflow.Slot(
                make_appointment_type("Follow-up chart visit"),
                specialist,
                location,
                clinic_today() - timedelta(days=1),
                time(10),
            ),
        )
        workflow.complete_request(consultation, coordinator, Plan.PHYSIOTHERAPY, None)
        send_due_followups(now=schedule.due_at(_start(consultation.id), "6w", site.server.tz))
        [follow_up] = db.session.scalars(
            select(FollowUp).where(FollowUp.request_id == consultation.id)
        ).all()
        _answer(follow_up, odi=38, back_now=3)
        return consultation.reference


@pytest.mark.parametrize("scripts", [True, False], ids=["scripts", "no-scripts"])
def test_a_records_follow_up_chart_box_is_a_tab_stop_only_where_it_scrolls(
    site: Site, browser: Browser, followed_up: str, scripts: bool
) -> None:
    """The record's follow-up charts scroll in their box on a phone, which a keyboard
    reaches; on a laptop they fit, and the box was still a stop in the tab order that
    scrolled nothing. With scripts, it is one only where it scrolls, as the insights' chart
    over time is (.chart-scroll)."""
    for width, scrolls in ((PHONE_WIDTH, True), (1280, False)):
        with browser_page(
            browser, java_script_enabled=scripts, viewport={"width": width, "height": 800}
        ) as page:
            sign_in(page, site.server, ADMIN, password=DEMO_PASSWORD)
            page.goto(site(f"/staff/requests/{followed_up}"))
            page.wait_for_load_state()  # the deferred scripts have run
            for chart, name in (
                ("progress-disability", "Disability index (0-100 %)"),
                ("progress-pain", "Pain right now (0-10)"),
            ):
                box = page.locator(CHART_BOX.format(chart))
                assert box.evaluate("box => box.scrollWidth > box.clientWidth") is scrolls
                if scrolls or not scripts:
                    expect(box).to_have_attribute("tabindex", "0")
                    expect(box).to_have_role("region")
                    expect(box).to_have_accessible_name(name)
                else:  # still a region, named by its chart (aria-labelledby), not a stop
                    expect(box).not_to_have_attribute("tabindex", "0")
