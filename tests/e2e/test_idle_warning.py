"""The warning before the idle sign-out (booking/static/js/idle-warning.js): a note being
typed sends nothing to the server, and the session's idle limit (STAFF_IDLE_MINUTES) would
end it with the text. The browser's clock is Playwright's, moved on by the test; the
server's is real, so the session is really kept alive by the button's post."""

from __future__ import annotations

from datetime import timedelta

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from booking.extensions import db
from booking.staff.models import StaffSession
from tests.e2e.conftest import LiveServer
from tests.e2e.pages import sign_in
from tests.factories import make_request, make_staff

pytestmark = pytest.mark.e2e


def test_the_idle_warning_keeps_the_session_and_the_typed_note(
    page: Page, live_server: LiveServer
) -> None:
    idle = live_server.app.config["STAFF_IDLE_MINUTES"]
    with live_server.app.app_context():
        make_staff("coordinator", "chris@example.com")
        reference = make_request(full_name="Nora Note", email="nora@example.com").reference
    page.clock.install()
    sign_in(page, live_server, "chris@example.com")
    page.goto(live_server(f"/staff/requests/{reference}"))
    note = page.get_by_label("Internal note")
    note.fill("Called the GP: the MRI report follows.")
    warning = page.get_by_role("alert").filter(has_text="You will be signed out")
    expect(warning).to_be_hidden()

    # The server's record of activity is moved back as far as the browser's clock is
    # moved on: as if the coordinator had been typing all that time.
    with live_server.app.app_context():
        session = db.session.scalars(select(StaffSession)).one()
        session.last_seen_at -= timedelta(minutes=idle - 2)
        db.session.commit()
    page.clock.fast_forward(f"{idle - 2:02d}:00")
    expect(warning).to_be_visible()
    warning.get_by_role("button", name="Stay signed in").click()
    expect(warning).to_be_hidden()
    expect(note).to_have_value("Called the GP: the MRI report follows.")  # the page stayed
    with live_server.app.app_context():
        session = db.session.scalars(select(StaffSession)).one()
        db.session.refresh(session)
        assert session.ended_at is None
        # Moved on to the button's post (the server's clock is real).
        assert session.last_seen_at > session.created_at

    page.get_by_role("button", name="Save the note").click()
    expect(page.get_by_text("Note added.")).to_be_visible()
    page.wait_for_load_state("load")  # the new page's script has set its timer

    # Nobody there: the warning comes again, then, once the limit has passed, the box says
    # so and offers no button (Playwright fires each timer due in a jump once: two jumps).
    page.clock.fast_forward(f"{idle - 2:02d}:00")
    expect(warning).to_be_visible()
    page.clock.fast_forward("03:00")
    gone = page.get_by_role("alert").filter(has_text="You have been signed out")
    expect(gone).to_be_visible()
    expect(gone.get_by_role("button")).to_have_count(0)


def test_a_tab_left_open_does_not_warn_while_another_tab_is_used(
    page: Page, live_server: LiveServer
) -> None:
    """Each tab counted from its own page: a coordinator working in one tab was told in the
    other that they would be, then had been, signed out. Page loads are shared between the
    tabs (localStorage), so the idle tab warns only when every tab has been idle."""
    idle = live_server.app.config["STAFF_IDLE_MINUTES"]
    with live_server.app.app_context():
        make_staff("coordinator", "chris@example.com")
    page.clock.install()
    sign_in(page, live_server, "chris@example.com")
    other = page.context.new_page()
    other.clock.install()
    warning = page.get_by_role("alert").filter(has_text="You will be signed out")
    for _ in range(3):  # an hour and a half of work in the other tab, a page every 20 minutes
        page.clock.fast_forward("20:00")
        other.clock.fast_forward("20:00")
        other.goto(live_server("/staff/"))  # waits for its load: its script has run
        page.clock.fast_forward("00:02")  # the idle tab's timer runs
        expect(warning).to_be_hidden()
    expect(page.get_by_role("alert").filter(has_text="You have been signed out")).to_have_count(0)
    page.clock.fast_forward(f"{idle - 2:02d}:00")  # now every tab is idle
    expect(warning).to_be_visible()
