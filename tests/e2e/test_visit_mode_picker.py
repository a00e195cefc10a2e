"""The time picker in a real browser: a video visit has no place to choose, and the place
filter follows the type chosen, with the picker's script as without it."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from booking.extensions import db
from booking.scheduling import admin_services as admin
from booking.scheduling.models import VisitMode
from tests.e2e.conftest import LiveServer, seed_schedule
from tests.e2e.pages import TIMES_UPDATED
from tests.factories import make_location

pytestmark = pytest.mark.e2e

VIDEO = "Video consultation (20 minutes) · By video"
IN_PERSON = "New-patient spine evaluation (45 minutes)"


@pytest.fixture
def two_places_and_a_video_type(live_server: LiveServer) -> None:
    seed_schedule(live_server)
    with live_server.app.app_context():
        make_location("Branch", "Hauptstr. 9, Potsdam")
        admin.create_appointment_type("Video consultation", 20, None, mode=VisitMode.VIDEO)
        db.session.commit()


def test_the_place_filter_follows_the_type(
    page: Page, live_server: LiveServer, two_places_and_a_video_type: None
) -> None:
    page.goto(live_server("/request/time"))
    place = page.get_by_label("Place")
    expect(place).to_be_visible()

    page.get_by_label(VIDEO).check()
    expect(page.locator("#picker-status")).to_have_text(TIMES_UPDATED)
    expect(place).to_be_hidden()
    expect(page.get_by_text("the clinic will send you how to join")).to_be_visible()

    page.get_by_label(IN_PERSON).check()
    expect(place).to_be_visible()
    expect(page.get_by_text("the clinic will send you how to join")).to_have_count(0)


def test_without_scripts_the_video_types_page_has_no_place_filter(
    live_server: LiveServer, two_places_and_a_video_type: None, new_context
) -> None:
    context = new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(live_server("/request/time"))
    page.get_by_label(VIDEO).check()
    page.get_by_role("button", name="Show the times").click()
    expect(page.get_by_label("Place")).to_be_hidden()
    expect(page.get_by_text("the clinic will send you how to join")).to_be_visible()
