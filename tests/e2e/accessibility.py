"""The accessibility checks of every patient page and every main staff page, in a real
browser, and the demo clinic they look at; the tests are in ``test_accessibility_*.py``, one
module a theme, so the checks spread over the test workers (each module is one unit of
pytest-xdist's ``--dist loadfile``).

* axe-core (bundled with axe-playwright-python) finds no serious or critical violation on any
  page, in every state that matters (empty, with errors, after sending, signed in or not);
* every control the accessibility tree exposes has an accessible name (read from chromium's
  own accessibility tree, not from our markup);
* form errors are announced: a summary with role=alert, the title starts with "Error", and
  every invalid field carries aria-invalid and an accessible description naming its error;
* every tab stop shows a visible focus indicator;
* the patient pages fit a 390 px wide phone without sideways scrolling (WCAG reflow).

``site``: one app with the demo data (``flask seed-demo``) and one browser serve a whole
module (each module using it seeds its own, with ``site = accessibility.site``); the
signed-in pages share one signed-in browser context. Tests using it only read, or act in
browser contexts of their own, so their order does not matter.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
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
from tests.e2e.conftest import LiveServer, browser_page, build_app, serving
from tests.e2e.pages import (
    fill_about_you,
    fill_steps_to_review,
    fill_symptoms,
    reach,
    save_and_continue,
    sign_in,
    submit_sign_in,
    submit_sign_in_code,
)
from tests.smtp import free_port
from tests.support import pdf_bytes

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


def show(site: Site, page: Page, how: str | Callable[[Site, Page], None]) -> None:
    """A page in the state ``how`` names: a path (see ``Site.visit``) or a function that
    takes the page there."""
    if callable(how):
        how(site, page)
    else:
        site.visit(page, how)


# --- states of the pages that more than one module checks ------------------------------------


def step_with_errors(site: Site, page: Page) -> None:
    site.visit(page, "/request/steps/about")
    page.get_by_role("button", name="Save and continue").click()
    expect(page).to_have_title(re.compile(r"^Error: Step 2 of 7"))


def review_with_errors(site: Site, page: Page) -> None:
    """Every step answered (a document added) but the consent: the review asks for it."""
    site.answer_red_flags(page)
    page.goto(site("/request/steps/time"))
    pdf = site.scratch / "mri-report.pdf"
    pdf.write_bytes(pdf_bytes("MRI lumbar spine"))
    fill_steps_to_review(page, document=pdf)
    page.get_by_role("button", name="Send my request").click()
    expect(page).to_have_title(re.compile(r"^Error: Step 7 of 7"))


def finish_later_with_errors(site: Site, page: Page) -> None:
    site.visit(page, "/request/later")  # no email address in the draft yet
    page.get_by_role("button", name="Email me the link").click()
    expect(page).to_have_title(re.compile(r"^Error: "))


def draft_hidden(site: Site, page: Page) -> None:
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


def manage_documents_with_errors(site: Site, page: Page) -> None:
    page.goto(site(site.manage_path))
    not_a_document = site.scratch / "notes.pdf"
    not_a_document.write_bytes(b"this is not a PDF")
    form = page.get_by_role("form", name="Add documents")
    form.get_by_role("group", name="Document 1").get_by_label("File", exact=True).set_input_files(
        not_a_document
    )
    form.get_by_role("button", name="Send the documents").click()
    expect(page.get_by_role("alert")).to_be_visible()


def login_with_error(site: Site, page: Page) -> None:
    page.goto(site("/staff/login"))
    submit_sign_in(page, COORDINATOR, "not the password")
    expect(page.get_by_role("alert")).to_be_visible()


def login_code(site: Site, page: Page, wrong: bool = False) -> None:
    page.goto(site("/staff/login"))
    submit_sign_in(page, SPECIALIST_2FA, DEMO_PASSWORD)
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign-in code")
    if wrong:
        submit_sign_in_code(page, "12345")
        expect(page.get_by_role("alert")).to_be_visible()


def two_factor_setup(site: Site, page: Page, enrol: bool = False) -> None:
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


def hours_with_errors(site: Site, page: Page) -> None:
    page.goto(site("/staff/admin/scheduling/"))
    page.get_by_role("link", name="Dr. Lena Weber", exact=True).click()
    page.get_by_role("button", name="Add the hours").click()
    expect(page.get_by_role("alert").first).to_be_visible()


def raise_section(page: Page) -> Locator:
    """The record's "Raise the triage level" section, opened (its form is folded away)."""
    section = page.get_by_role("region", name=re.compile(r"^Triage level: "))
    form = section.get_by_role("radiogroup", name="New triage level")
    if not form.is_visible():
        section.get_by_text("Raise the triage level", exact=True).first.click()
    expect(form).to_be_visible()
    return section


def raise_shown(site: Site, page: Page) -> None:
    page.goto(site(f"/staff/requests/{site.reference}"))
    raise_section(page)


def raise_without_a_reason(site: Site, page: Page) -> None:
    """A level chosen, the reason left out: refused, with the summary and the reason's own
    error (the level chosen is not in error). Nothing is saved, the demo's request stays as
    it is for the other tests."""
    raise_shown(site, page)
    section = raise_section(page)
    section.get_by_role("radio", name="Emergency: call the patient back at once").check()
    section.get_by_role("button", name="Raise the triage level").click()
    expect(page).to_have_title(re.compile(r"^Error: "))
    section = raise_section(page)  # open again on the refused page
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
