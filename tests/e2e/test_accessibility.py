"""Accessibility of every patient page and every main staff page, in a real browser.

* axe-core (bundled with axe-playwright-python) finds no serious or critical violation on any
  page, in every state that matters (empty, with errors, after sending, signed in or not);
* every control the accessibility tree exposes has an accessible name (read from chromium's
  own accessibility tree, not from our markup);
* form errors are announced: a summary with role=alert, the title starts with "Error", and
  every invalid field carries aria-invalid and an accessible description naming its error;
* every tab stop shows a visible focus indicator;
* the patient pages fit a 390 px wide phone without sideways scrolling (WCAG reflow).

One app with the demo data (``flask seed-demo``) and one browser serve the whole module; the
signed-in pages share one signed-in browser context. Tests here only read, or act in browser
contexts of their own, so their order does not matter.
"""

from __future__ import annotations

import mailbox
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pyotp
import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, Locator, Page, expect
from sqlalchemy import select

from booking.cli import DEMO_PASSWORD
from booking.extensions import db
from booking.requests.drafts import RequestDraft
from booking.requests.links import issue_link
from booking.requests.models import ConsultationRequest, TriageLevel
from booking.staff import twofactor
from booking.staff.auth import make_reset_token
from booking.staff.models import StaffUser
from tests.e2e.conftest import PHONE, PHONE_WIDTH, LiveServer, browser_page, build_app, serving
from tests.e2e.pages import (
    add_document,
    cells_beyond_the_screen,
    fill_about_you,
    fill_steps_to_review,
    fill_symptoms,
    give_consent,
    page_width,
    reach,
    save_and_continue,
    sign_in,
    submit_sign_in,
    submit_sign_in_code,
)
from tests.factories import appointment_started, confirm_at, first_type_open_times, make_request
from tests.smtp import free_port
from tests.support import QUEUE_CAPTION, pdf_bytes

pytestmark = pytest.mark.e2e

ADMIN = "admin@example.com"
COORDINATOR = "coordinator@example.com"
SPECIALIST = "dr.weber@example.com"  # enrols two-factor sign-in in one of the tests
SPECIALIST_2FA = "dr.okafor@example.com"  # has two-factor sign-in on from the start
FAILING_IMPACTS = {"serious", "critical"}
# Roles chromium gives to things a user operates; each must have a name.
CONTROL_ROLES = {
    "button",
    "checkbox",
    "combobox",
    "link",
    "listbox",
    "menuitem",
    "radio",
    "searchbox",
    "slider",
    "spinbutton",
    "switch",
    "tab",
    "textbox",
}
AXE = Axe()


@dataclass(frozen=True)
class Site:
    server: LiveServer
    reference: str  # the demo's urgent request
    manage_path: str  # its private link
    reset_path: str  # a password-reset link of the coordinator
    admin: Page  # a page signed in as the demo admin
    scratch: Path  # a folder for files a patient picks

    def __call__(self, path: str) -> str:
        return self.server(path)

    def visit(self, page: Page, path: str) -> None:
        """Go to ``path``; ``{manage}`` in it is the request's own page, reached as a patient
        does: the private link first (it leaves the page's cookie), then the page. The
        request form is reached as a patient does too: after the first step's questions, and
        a step (or "finish later") with a draft whose main problem is known."""
        if "{manage}" in path:
            page.goto(self(self.manage_path))
            path = path.format(manage=f"/manage/{self.reference}")
        if path.startswith(("/request/steps/", "/request/later")):
            self.start_steps(page)
        if path.startswith("/request/steps/"):  # as far as the step shown
            reach(page, self.server, urlsplit(path).path.removeprefix("/request/steps/"))
        page.goto(self(path))

    def answer_red_flags(self, page: Page, yes: str | None = None) -> None:
        """The first step answered: every question "no", but the one named ``red_<yes>``."""
        page.goto(self("/request/start"))
        for radio in page.locator("input[type=radio][value=no]").all():
            radio.check()
        if yes:
            page.locator(f"input[name=red_{yes}][value=yes]").check()
        page.get_by_role("button", name="Continue").click()
        expect(page).not_to_have_url(self("/request/start"))

    def start_steps(self, page: Page) -> None:
        """A draft in this browser, as far as the symptoms (the pain and daily life step asks
        the main problem's questions, so it needs them)."""
        self.answer_red_flags(page)
        reach(page, self.server, "symptoms")
        page.goto(self("/request/steps/symptoms"))
        fill_symptoms(page)
        save_and_continue(page, "function")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, browser: Browser) -> Iterator[Site]:
    # No worker runs: the emails stay in the outbox, and no SMTP server is needed.
    directory = tmp_path_factory.mktemp("a11y")
    app = build_app(directory, free_port())
    result = app.test_cli_runner().invoke(args=["seed-demo"])
    assert result.exit_code == 0, result.output
    secret = pyotp.random_base32()
    with app.app_context():
        urgent = db.session.scalar(
            select(ConsultationRequest).where(
                ConsultationRequest.triage_level == TriageLevel.URGENT
            )
        )
        reference, token = urgent.reference, issue_link(urgent)
        db.session.commit()
        okafor = db.session.scalar(select(StaffUser).where(StaffUser.email == SPECIALIST_2FA))
        assert twofactor.enable(okafor, secret, pyotp.TOTP(secret).now()) is not None
        coordinator = db.session.scalar(select(StaffUser).where(StaffUser.email == COORDINATOR))
        reset_token = make_reset_token(coordinator)
    with serving(app) as server, browser_page(browser, reduced_motion="reduce") as admin:
        sign_in(admin, server, ADMIN, password=DEMO_PASSWORD)
        yield Site(
            server=server,
            reference=reference,
            # Opening it trades the token for a cookie and lands on /manage/<reference>.
            manage_path=f"/manage/open/{token}",
            reset_path=f"/staff/password/reset/{reset_token}",
            admin=admin,
            scratch=directory,
        )


@pytest.fixture
def patient(browser: Browser) -> Iterator[Page]:
    """A fresh browser, as a patient has (no staff session, no earlier answers). It asks for
    reduced motion, so Bootstrap's colour transitions are off: axe measures a button's
    contrast in its final colours, not half-way through a transition (which failed now and
    then)."""
    with browser_page(browser, reduced_motion="reduce") as page:
        yield page


# --- what is checked on every page -----------------------------------------------------------


def axe_failures(page: Page) -> list[str]:
    """The serious and critical axe violations on the page, one readable line per element."""
    results = AXE.run(page)
    lines = []
    for violation in results.response["violations"]:
        if violation["impact"] not in FAILING_IMPACTS:
            continue
        for node in violation["nodes"]:
            summary = " ".join(node.get("failureSummary", "").split())
            lines.append(
                f"[{violation['impact']}] {violation['id']}: {violation['help']}\n"
                f"    at {' > '.join(map(str, node['target']))}\n"
                f"    {summary}\n"
                f"    {node['html'][:200]}\n"
                f"    see {violation['helpUrl']}"
            )
    return lines


def ax_nodes(page: Page) -> list[dict[str, Any]]:
    """Chromium's whole accessibility tree of the page, as a screen reader gets it."""
    cdp = page.context.new_cdp_session(page)
    try:
        return cdp.send("Accessibility.getFullAXTree")["nodes"]
    finally:
        cdp.detach()


def unnamed_controls(page: Page) -> list[str]:
    """Controls in chromium's accessibility tree that a screen reader would read without a
    name."""
    unnamed = []
    for node in ax_nodes(page):
        role = node.get("role", {}).get("value")
        if node.get("ignored") or role not in CONTROL_ROLES:
            continue
        name = str(node.get("name", {}).get("value", "")).strip()
        if not name:
            unnamed.append(f"{role} (backend node {node.get('backendDOMNodeId')})")
    return unnamed


def ax_controls(page: Page) -> list[dict[str, object]]:
    """Each control and radio group in chromium's accessibility tree: its role, name, and
    the invalid and required states a screen reader announces."""
    controls = []
    for node in ax_nodes(page):
        role = node.get("role", {}).get("value")
        if node.get("ignored") or role not in CONTROL_ROLES | {"radiogroup"}:
            continue
        states = {p["name"]: p["value"].get("value") for p in node.get("properties", [])}
        controls.append(
            {
                "role": role,
                "name": str(node.get("name", {}).get("value", "")).strip(),
                "invalid": states.get("invalid", "false") != "false",
                "required": bool(states.get("required")),
            }
        )
    return controls


def invalid_controls(page: Page) -> list[str]:
    """The controls a screen reader would announce as invalid."""
    return [f"{c['role']} {c['name']!r}" for c in ax_controls(page) if c["invalid"]]


def assert_accessible(page: Page, what: str) -> None:
    page.wait_for_load_state("load")
    failures = axe_failures(page)
    assert not failures, f"{what} ({page.url}): {len(failures)} serious or critical:\n" + (
        "\n".join(failures)
    )
    unnamed = unnamed_controls(page)
    assert not unnamed, f"{what} ({page.url}): controls without a name: {unnamed}"


# --- the pages, in the states that matter ----------------------------------------------------


def _request_with_a_time(site: Site, page: Page) -> None:
    site.answer_red_flags(page)
    expect(page).to_have_url(site("/request/time"))
    page.get_by_role("form", name=re.compile(r"^Open times from ")).get_by_role(
        "radio"
    ).first.check()
    page.get_by_role("button", name="Continue with this time").click()
    expect(page.get_by_text("Your chosen time", exact=True)).to_be_visible()


def _step_with_errors(site: Site, page: Page) -> None:
    site.visit(page, "/request/steps/about")
    page.get_by_role("button", name="Save and continue").click()
    expect(page).to_have_title(re.compile(r"^Error: Step 2 of 7"))


def _documents_with_one_added(site: Site, page: Page) -> None:
    site.visit(page, "/request/steps/documents")
    pdf = site.scratch / "mri-report.pdf"
    pdf.write_bytes(pdf_bytes("MRI lumbar spine"))
    add_document(page, pdf)


def _documents_with_a_refused_file(site: Site, page: Page) -> None:
    """With scripts: the refused file stays in the progress area, with its reason and a
    button to try again."""
    site.visit(page, "/request/steps/documents")
    not_a_document = site.scratch / "notes.pdf"
    not_a_document.write_bytes(b"this is not a PDF")
    page.get_by_label("Choose one or more files").set_input_files(not_a_document)
    expect(page.locator("#upload-progress").get_by_role("button", name="Try again")).to_be_visible()


def _review_with_errors(site: Site, page: Page) -> None:
    """Every step answered (a document added) but the consent: the review asks for it."""
    site.answer_red_flags(page)
    page.goto(site("/request/steps/time"))
    pdf = site.scratch / "mri-report.pdf"
    pdf.write_bytes(pdf_bytes("MRI lumbar spine"))
    fill_steps_to_review(page, document=pdf)
    page.get_by_role("button", name="Send my request").click()
    expect(page).to_have_title(re.compile(r"^Error: Step 7 of 7"))


def _finish_later_with_errors(site: Site, page: Page) -> None:
    site.visit(page, "/request/later")  # no email address in the draft yet
    page.get_by_role("button", name="Email me the link").click()
    expect(page).to_have_title(re.compile(r"^Error: "))


def _finish_later_sent(site: Site, page: Page) -> None:
    site.visit(page, "/request/later")
    page.get_by_label("Email address", exact=True).fill("erika.mustermann@example.com")
    page.get_by_role("button", name="Email me the link").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("We have emailed you a link")


def _draft_hidden(site: Site, page: Page) -> None:
    """A draft that names the patient, with nothing saved for over an hour."""
    site.answer_red_flags(page)
    reach(page, site.server, "about")
    page.goto(site("/request/steps/about"))
    fill_about_you(page)
    save_and_continue(page, "symptoms")
    with site.server.app.app_context():
        draft = db.session.scalars(select(RequestDraft).order_by(RequestDraft.id.desc())).first()
        draft.updated_at -= timedelta(minutes=61)
        db.session.commit()
    page.reload()
    expect(page).to_have_url(site("/request/hidden"))


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


def _manage_cancel(site: Site, page: Page) -> None:
    page.goto(site(site.manage_path))
    page.get_by_text("I want to cancel", exact=True).click()
    expect(page.get_by_role("button", name="Cancel my request")).to_be_visible()


def _manage_documents_with_errors(site: Site, page: Page) -> None:
    page.goto(site(site.manage_path))
    not_a_document = site.scratch / "notes.pdf"
    not_a_document.write_bytes(b"this is not a PDF")
    form = page.get_by_role("form", name="Add documents")
    form.get_by_role("group", name="Document 1").get_by_label("File", exact=True).set_input_files(
        not_a_document
    )
    form.get_by_role("button", name="Send the documents").click()
    expect(page.get_by_role("alert")).to_be_visible()


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


PATIENT_PAGES: dict[str, str | Callable[..., None]] = {
    "home": "/",
    "evaluation": "/info/evaluation",
    "conditions": "/info/conditions",
    "treatments": "/info/treatments",
    "prepare": "/info/prepare",
    "privacy": "/privacy",
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
    "step 2: about you with errors": _step_with_errors,
    "step 3: your symptoms": "/request/steps/symptoms",
    "step 4: pain and daily life": "/request/steps/function",
    "step 4: pain and daily life, part 2": "/request/steps/function?page=2",
    "step 5: health and treatment": "/request/steps/history",
    "step 5: health and treatment, part 2": "/request/steps/history?page=2",
    "step 6: documents": "/request/steps/documents",
    "step 6: documents, one added": _documents_with_one_added,
    "step 6: documents, a file refused": _documents_with_a_refused_file,
    "step 7: check and send": "/request/steps/review",
    "step 7: check and send with errors": _review_with_errors,
    "finish later": "/request/later",
    "finish later with errors": _finish_later_with_errors,
    "finish later: link sent": _finish_later_sent,
    "finish later: link no longer valid": "/request/resume/not-a-token",
    "unfinished request hidden after an hour": _draft_hidden,
    "step 2: about you in Spanish": "/request/steps/about?lang=es",
    "request sent (urgent)": _submitted,
    "manage": "{manage}",
    "manage: cancel": _manage_cancel,
    "manage: documents with errors": _manage_documents_with_errors,
    "manage: reschedule": "{manage}/reschedule",
    "not found": "/no-such-page",
    "too many requests": _too_many_requests,
}


@pytest.mark.parametrize("name", PATIENT_PAGES)
def test_patient_page_has_no_serious_accessibility_problem(
    name: str, site: Site, patient: Page
) -> None:
    how = PATIENT_PAGES[name]
    if callable(how):
        how(site, patient)
    else:
        site.visit(patient, how)
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


def _login_with_error(site: Site, page: Page) -> None:
    page.goto(site("/staff/login"))
    submit_sign_in(page, COORDINATOR, "not the password")
    expect(page.get_by_role("alert")).to_be_visible()


def _login_code(site: Site, page: Page, wrong: bool = False) -> None:
    page.goto(site("/staff/login"))
    submit_sign_in(page, SPECIALIST_2FA, DEMO_PASSWORD)
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign-in code")
    if wrong:
        submit_sign_in_code(page, "12345")
        expect(page.get_by_role("alert")).to_be_visible()


def _two_factor_setup(site: Site, page: Page, enrol: bool = False) -> None:
    # Only the specialist enrols: the coordinator can look at the page any number of times.
    who = SPECIALIST if enrol else COORDINATOR
    # A specialist lands on their agenda, a coordinator on the queue.
    landing = re.compile(r"^Agenda: ") if enrol else "Triage queue"
    sign_in(page, site.server, who, password=DEMO_PASSWORD, landing=landing)
    page.goto(site("/staff/two-factor"))
    if enrol:
        key = page.locator("code").inner_text().strip()
        page.get_by_label("Code", exact=True).fill(pyotp.TOTP(key).now())
        page.get_by_role("button", name="Turn on two-factor sign-in").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Two-factor sign-in is on")


def _hours_with_errors(site: Site, page: Page) -> None:
    page.goto(site("/staff/admin/scheduling/"))
    page.get_by_role("link", name="Dr. Lena Weber", exact=True).click()
    page.get_by_role("button", name="Add the hours").click()
    expect(page.get_by_role("alert").first).to_be_visible()


def _unsaved_text(site: Site, page: Page) -> None:
    """Signed out in another tab while writing a note: the note's post is answered by the
    page that says it was not saved and shows it back to copy (``unsaved_text_page``)."""
    sign_in(page, site.server, COORDINATOR, password=DEMO_PASSWORD)
    page.goto(site(f"/staff/requests/{site.reference}"))
    page.get_by_label("Internal note").fill("Called the GP: the MRI report follows.")
    other = page.context.new_page()
    other.goto(site("/staff/"))
    other.get_by_role("button", name="Sign out").click()
    expect(other).to_have_url(re.compile(r"/staff/login"))
    other.close()
    with page.expect_response(lambda response: response.status == 401):
        page.get_by_role("button", name="Save the note").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(
        "Signed out: what you wrote was not saved"
    )
    expect(page.get_by_label("Internal note")).to_have_value(
        "Called the GP: the MRI report follows."
    )


def _raise_section(page: Page) -> Locator:
    """The record's "Raise the triage level" section, opened (its form is folded away)."""
    section = page.get_by_role("region", name=re.compile(r"^Triage level: "))
    form = section.get_by_role("radiogroup", name="New triage level")
    if not form.is_visible():
        section.get_by_text("Raise the triage level", exact=True).first.click()
    expect(form).to_be_visible()
    return section


def _raise_shown(site: Site, page: Page) -> None:
    page.goto(site(f"/staff/requests/{site.reference}"))
    _raise_section(page)


def _raise_without_a_reason(site: Site, page: Page) -> None:
    """A level chosen, the reason left out: refused, with the summary and the reason's own
    error (the level chosen is not in error). Nothing is saved, the demo's request stays as
    it is for the other tests."""
    _raise_shown(site, page)
    section = _raise_section(page)
    section.get_by_role("radio", name="Emergency: call the patient back at once").check()
    section.get_by_role("button", name="Raise the triage level").click()
    expect(page).to_have_title(re.compile(r"^Error: "))
    section = _raise_section(page)  # open again on the refused page
    expect(
        section.get_by_role("alert").get_by_role(
            "link", name="Please write why the triage level is raised."
        )
    ).to_be_visible()
    reason = section.get_by_label(re.compile(r"^Why \(the new symptoms"))
    expect(reason).to_have_attribute("aria-invalid", "true")
    expect(reason).to_have_accessible_description(
        re.compile(r"Error: Please write why the triage level is raised\.")
    )
    expect(section.locator("[aria-invalid=true]")).to_have_count(1)


def _colleague_details(site: Site, page: Page, *, refused: bool = False) -> None:
    """A colleague's name and email address, opened from the accounts page; ``refused``: sent
    with the name left out (nothing is saved, the demo's account stays as it is)."""
    page.goto(site("/staff/accounts"))
    page.get_by_role("link", name=re.compile(r"^Correct name or email")).first.click()
    expect(page.get_by_role("heading", level=1)).to_have_text(re.compile(r"^Correct the account"))
    if refused:
        page.get_by_label("Full name").fill("")
        page.get_by_role("button", name="Save the corrections").click()
        expect(page).to_have_title(re.compile(r"^Error: "))
        expect(page.get_by_label("Full name")).to_have_attribute("aria-invalid", "true")


def _close_asked(site: Site, page: Page) -> None:
    """A location's "Close", asked about first: the confirmation page (nothing is closed)."""
    page.goto(site("/staff/admin/locations"))
    page.get_by_role("button", name=re.compile(r"^Close")).first.click()
    expect(page.get_by_role("heading", level=1)).to_have_text(re.compile(r"^Close .*\?$"))


# Pages for signed-out staff: each runs in a fresh browser.
SIGNED_OUT_PAGES: dict[str, str | Callable[..., None]] = {
    "login": "/staff/login",
    "login with an error": _login_with_error,
    "sign-in code": _login_code,
    "sign-in code with an error": lambda site, page: _login_code(site, page, wrong=True),
    "forgot password": "/staff/password/forgot",
    "reset password": "{reset}",
    "reset link no longer valid": "/staff/password/reset/not-a-token",
    "two-factor setup": _two_factor_setup,
    "two-factor recovery codes": lambda site, page: _two_factor_setup(site, page, enrol=True),
    "what was written, not saved after signing out": _unsaved_text,
}

# Pages as the signed-in admin sees them (one browser for them all).
STAFF_PAGES: dict[str, str | Callable[..., None]] = {
    "queue": "/staff/",
    "queue, urgent only": "/staff/?triage=urgent",
    "record": "/staff/requests/{reference}",
    "record, raise the triage level shown": _raise_shown,
    "record, raise the triage level without a reason": _raise_without_a_reason,
    "intake summary": "/staff/requests/{reference}/summary",
    "calendar, week": "/staff/calendar",
    "calendar, day": "/staff/calendar?view=day",
    "insights": "/staff/insights",
    "staff accounts": "/staff/accounts",
    "a colleague's name and email": _colleague_details,
    "a colleague's name and email with an error": lambda site, page: _colleague_details(
        site, page, refused=True
    ),
    "your account": "/staff/account",
    "locations": "/staff/admin/locations",
    "closing a location, asked about first": _close_asked,
    "a location's names and address": "/staff/admin/locations/1",
    "scheduling": "/staff/admin/scheduling/",
    "an appointment type's names and duration": "/staff/admin/scheduling/types/1",
    "specialist's hours with errors": _hours_with_errors,
    "audit trail": "/staff/admin/audit",
    "privacy": "/staff/admin/privacy",
    "privacy: a patient": "/staff/admin/privacy/{reference}",
    "erasure requests": "/staff/admin/privacy/erasures",
    "checklist of what to ask for": "/staff/admin/checklist",
    "outcomes": "/staff/outcomes",
    "follow-ups": "/staff/outcomes/follow-ups",
    "outcomes settings": "/staff/outcomes/settings",
}


@pytest.mark.parametrize("name", SIGNED_OUT_PAGES)
def test_staff_sign_in_page_has_no_serious_accessibility_problem(
    name: str, site: Site, patient: Page
) -> None:
    how = SIGNED_OUT_PAGES[name]
    if callable(how):
        how(site, patient)
    else:
        patient.goto(site(how.format(reset=site.reset_path)))
    assert_accessible(patient, name)


@pytest.mark.parametrize("name", STAFF_PAGES)
def test_staff_page_has_no_serious_accessibility_problem(name: str, site: Site) -> None:
    how = STAFF_PAGES[name]
    page = site.admin
    if callable(how):
        how(site, page)
    else:
        page.goto(site(how.format(reference=site.reference)))
        expect(page).not_to_have_url(re.compile(r"/staff/login"))
    assert_accessible(page, name)


def test_the_banner_of_late_emails_has_no_serious_accessibility_problem(site: Site) -> None:
    """No worker runs here: the demo's emails wait. Written a day ago, they are late
    (MAIL_LATE_MINUTES), and every staff page of an admin or coordinator says so; one of
    them failed for good too. Put back as they were afterwards, for the other tests."""
    from sqlalchemy import update

    from booking.notifications.models import OutboxEmail, OutboxStatus
    from booking.timeutil import now_utc

    app = site.server.app
    with app.app_context():
        before = db.session.execute(
            select(OutboxEmail.id, OutboxEmail.status, OutboxEmail.created_at)
        ).all()
        db.session.execute(update(OutboxEmail).values(created_at=now_utc() - timedelta(days=1)))
        db.session.execute(
            update(OutboxEmail)
            .where(OutboxEmail.id == before[0].id)
            .values(status=OutboxStatus.FAILED, claimed_at=now_utc())
        )
        db.session.commit()
    try:
        page = site.admin
        page.goto(site("/staff/"))
        expect(page.get_by_role("region", name="Emails are not going out")).to_be_visible()
        assert_accessible(page, "the queue with late emails")
    finally:
        with app.app_context():
            for row in before:
                db.session.execute(
                    update(OutboxEmail)
                    .where(OutboxEmail.id == row.id)
                    .values(status=row.status, created_at=row.created_at, claimed_at=None)
                )
            db.session.commit()


def _started_visit(site: Site) -> str:
    """A new urgent request (nobody has reached the patient), confirmed by the coordinator,
    whose appointment started an hour ago: its record offers "Complete the request" and
    "Mark as no-show" with the box for a patient nobody reached. A request of its own: the
    demo's stay as they are for the other tests."""
    app = site.server.app
    with app.app_context():
        consultation = make_request(red_flags={"fever"}, full_name="Uma Started")
        coordinator = db.session.scalar(select(StaffUser).where(StaffUser.email == COORDINATOR))
        kind, slots = first_type_open_times(days_ahead=2)
        slot = slots[0]
        confirm_at(
            consultation, coordinator, kind, slot.starts_at, slot.specialist_id, slot.location_id
        )
        appointment_started(consultation.reference)
        return consultation.reference


def test_a_record_whose_appointment_has_started_has_no_serious_accessibility_problem(
    site: Site,
) -> None:
    """The record's actions once the visit has started, as they are and as refused: the
    no-show without its box ticked, the completion without a plan."""
    reference = _started_visit(site)
    page = site.admin
    page.goto(site(f"/staff/requests/{reference}"))
    page.get_by_text("The patient did not come").click()  # folded away from "Mark completed"
    no_show = page.get_by_role("button", name="Mark as no-show")
    complete = page.get_by_role("button", name="Mark completed")
    expect(no_show).to_be_visible()
    expect(complete).to_be_visible()
    expect(
        page.get_by_role("checkbox", name=re.compile(r"^The patient has not been reached"))
    ).to_be_visible()
    assert_accessible(page, "record, appointment started")

    no_show.click()
    expect(page).to_have_title(re.compile(r"^Error: "))
    expect(page.get_by_role("link", name=re.compile(r"^Tick the box"))).to_be_visible()
    assert_accessible(page, "record, no-show refused")

    page.get_by_role("button", name="Mark completed").click()
    expect(page).to_have_title(re.compile(r"^Error: "))
    expect(
        page.get_by_role("heading", level=4, name="Please correct the following")
    ).to_be_visible()
    assert_accessible(page, "record, completion refused")


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
    """The charts are wider than a phone: each scrolls in a box a keyboard can reach; the
    table of scores scrolls in its own box too, not the page."""
    page = site.admin
    before = page.viewport_size
    page.set_viewport_size({"width": PHONE_WIDTH, "height": 844})
    try:
        page.goto(site("/staff/insights"))
        expect(page.get_by_role("heading", level=1)).to_have_text("Insights")
        assert page_width(page) <= PHONE_WIDTH, "insights scroll sideways on a phone"
        assert_accessible(page, "insights on a phone")
    finally:
        page.set_viewport_size(before)


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
        changes = page.get_by_role("link", name=re.compile(r"^Change"))
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


# --- form errors are announced ---------------------------------------------------------------


def _two_factor_setup_with_error(site: Site, page: Page) -> None:
    _two_factor_setup(site, page)
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
    "request step": (_step_with_errors, False),
    "check and send": (_review_with_errors, False),
    "finish later": (_finish_later_with_errors, False),
    "manage: documents": (_manage_documents_with_errors, False),
    "staff sign-in": (_login_with_error, False),
    "sign-in code": (lambda site, page: _login_code(site, page, wrong=True), False),
    "two-factor setup": (_two_factor_setup_with_error, False),
    "specialist's hours": (_hours_with_errors, True),
    "new staff account": (_account_with_errors, True),
    "new location": (_location_with_errors, True),
    "record: raise the triage level": (_raise_without_a_reason, True),
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


# --- the focus is always visible -------------------------------------------------------------

# For the focused element: what it is, its outline, and the colour behind the outline (the
# first opaque background among its ancestors), with the contrast between the two.
FOCUS_STYLE_JS = """() => {
  const el = document.activeElement;
  if (!el || el === document.body) return null;
  // A date or time field whose own calendar button has the focus: the browser draws that
  // ring itself, inside the field, out of the page's reach (a stop of its own in chromium).
  if (!el.matches(":focus")) return {what: el.tagName, outline: null, contrast: null};
  const style = getComputedStyle(el);
  const rgb = c => (c.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => {
    const f = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  let bg = [255, 255, 255];
  for (let node = el.parentElement; node; node = node.parentElement) {
    const c = rgb(getComputedStyle(node).backgroundColor);
    if (c.length === 3 || (c.length === 4 && c[3] === 1)) { bg = c.slice(0, 3); break; }
  }
  const fg = rgb(style.outlineColor).slice(0, 3);
  const [hi, lo] = [lum(fg), lum(bg)].sort((a, b) => b - a);
  return {
    what: el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") + " " +
          (el.getAttribute("aria-label") || el.textContent || el.name || "").trim().slice(0, 40),
    outline: style.outlineStyle !== "none" ? parseFloat(style.outlineWidth) : 0,
    contrast: (hi + 0.05) / (lo + 0.05),
  };
}"""
MAX_TAB_STOPS = 400


def focus_problems(page: Page) -> list[str]:
    """Tab through every stop of the page; the ones without a clear focus indicator (an
    outline of at least 2 px with at least 3:1 contrast against what is behind it)."""
    problems, seen = [], 0
    page.locator("body").focus()
    for _ in range(MAX_TAB_STOPS):
        page.keyboard.press("Tab")
        focused = page.evaluate(FOCUS_STYLE_JS)
        if focused is None:  # past the last stop
            break
        seen += 1
        if focused["outline"] is None:
            continue
        if focused["outline"] < 2 or focused["contrast"] < 3:
            problems.append(
                f"{focused['what']}: outline {focused['outline']} px, "
                f"contrast {focused['contrast']:.1f}:1"
            )
    assert seen > 1, "no tab stops found"
    return problems


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/request/start",
        "/request/time",
        "/request/steps/about",
        "/request/steps/function",
        "/request/steps/documents",
        "/request/steps/review",
        "/request/later",
        "{manage}",
        "{manage}/reschedule",
        "/staff/login",
    ],
)
def test_every_tab_stop_on_patient_pages_shows_the_focus(
    path: str, site: Site, patient: Page
) -> None:
    site.visit(patient, path)
    problems = focus_problems(patient)
    assert not problems, "tab stops without a visible focus:\n" + "\n".join(problems)


@pytest.mark.parametrize(
    "path",
    ["/staff/", "/staff/requests/{reference}", "/staff/calendar", "/staff/admin/scheduling/"],
)
def test_every_tab_stop_on_staff_pages_shows_the_focus(path: str, site: Site) -> None:
    page = site.admin
    page.goto(site(path.format(reference=site.reference)))
    problems = focus_problems(page)
    assert not problems, "tab stops without a visible focus:\n" + "\n".join(problems)


# --- the checks themselves see problems ------------------------------------------------------


def test_the_checks_report_an_unlabelled_field_and_a_hidden_focus(
    site: Site, patient: Page
) -> None:
    """Break a real page on purpose: every check above must notice (a scan that cannot fail
    would pass every page)."""
    page = patient
    page.goto(site("/privacy"))
    page.evaluate(
        """() => {
          const field = document.createElement("input");
          field.type = "text";
          field.id = "unlabelled";
          document.querySelector("main").append(field);
          const link = document.querySelector("footer a");
          link.style.setProperty("outline", "none", "important");
        }"""
    )
    failures = axe_failures(page)
    assert any(" label: " in failure and "#unlabelled" in failure for failure in failures), failures
    assert any(name.startswith("textbox") for name in unnamed_controls(page))
    assert any("Privacy notice: outline 0 px" in problem for problem in focus_problems(page))


@pytest.mark.parametrize("path", ["/request/start", "/request/steps/about", "/staff/login"])
def test_the_first_tab_stop_skips_to_the_main_content(path: str, site: Site, patient: Page) -> None:
    page = patient
    site.visit(page, path)
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to main content")
    expect(skip).to_be_focused()
    expect(skip).to_be_visible()  # hidden until focused, then shown
    page.keyboard.press("Enter")
    expect(page.get_by_role("main")).to_be_focused()
    # The next Tab goes on inside the content, past the header's links.
    page.keyboard.press("Tab")
    assert page.evaluate("document.querySelector('main').contains(document.activeElement)")
