"""Accessibility of the main staff pages, signed out (sign-in, password, two-factor
sign-in) and signed in as the admin. What is checked: ``tests/e2e/accessibility.py``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from booking.cli import DEMO_PASSWORD
from booking.extensions import db
from booking.staff.models import StaffUser
from tests.e2e import accessibility
from tests.e2e.accessibility import (
    COORDINATOR,
    Site,
    assert_accessible,
    hours_with_errors,
    login_code,
    login_with_error,
    raise_shown,
    raise_without_a_reason,
    two_factor_setup,
)
from tests.e2e.pages import sign_in
from tests.factories import appointment_started, confirm_at, first_type_open_times, make_request

pytestmark = pytest.mark.e2e

# The demo clinic (seeded once for this module) and a fresh browser for each test.
site = accessibility.site
patient = accessibility.patient


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
    "login with an error": login_with_error,
    "sign-in code": login_code,
    "sign-in code with an error": lambda site, page: login_code(site, page, wrong=True),
    "forgot password": "/staff/password/forgot",
    "reset password": "{reset}",
    "reset link no longer valid": "/staff/password/reset/not-a-token",
    "two-factor setup": two_factor_setup,
    "two-factor recovery codes": lambda site, page: two_factor_setup(site, page, enrol=True),
    "what was written, not saved after signing out": _unsaved_text,
}


# Pages as the signed-in admin sees them (one browser for them all).
STAFF_PAGES: dict[str, str | Callable[..., None]] = {
    "queue": "/staff/",
    "queue, urgent only": "/staff/?triage=urgent",
    "record": "/staff/requests/{reference}",
    "record, raise the triage level shown": raise_shown,
    "record, raise the triage level without a reason": raise_without_a_reason,
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
    "specialist's hours with errors": hours_with_errors,
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
