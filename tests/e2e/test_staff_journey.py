"""Staff in a real browser: a coordinator with two-factor sign-in works the triage queue while
a real ``flask worker`` process delivers the patient's confirmation, with its calendar
invitation, to a real SMTP server; an administrator enrols two-factor sign-in; an
administrator changes a specialist's hours and the patient's time picker offers the new times.

Controls are found the way a screen-reader user finds them: fields by their label, buttons and
links by their name.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pyotp
import pytest
from icalendar import Calendar
from playwright.sync_api import Browser, Page, expect

from booking.extensions import db
from booking.staff import twofactor
from booking.staff.models import StaffUser
from tests.e2e.conftest import (
    IMAGING_REVIEW,
    LOCATION,
    PHONE_WIDTH,
    SPECIALIST,
    LiveServer,
    browser_page,
    seed_schedule,
    wait_for_email,
)
from tests.e2e.pages import (
    cells_beyond_the_screen,
    clinic_day,
    day_legend,
    key_choose,
    key_type,
    page_width,
    pick_type,
    sign_in,
    tab_to,
)
from tests.factories import (
    make_appointment_type,
    make_hours,
    make_location,
    make_request,
    make_staff,
)
from tests.smtp import SmtpServer
from tests.support import QUEUE_CAPTION

pytestmark = pytest.mark.e2e

COORDINATOR = "chris.coordinator@example.com"
ADMIN = "alex.admin@example.com"
# The coordinator's authenticator app holds this key (enrolled before the test).
COORDINATOR_TOTP = pyotp.random_base32()
COORDINATOR_NAME = "Chris Coordinator"
REASON = "Phoned: numbness in both legs since this morning"


@dataclass(frozen=True)
class Seeded:
    reference: str
    name: str
    email: str


@dataclass(frozen=True)
class Clinic:
    server: LiveServer
    urgent: tuple[Seeded, ...]  # oldest first
    routine: tuple[Seeded, ...]  # oldest first


def _seed(hours_ago: float, name: str, *, urgent: bool) -> Seeded:
    email = f"{name.split()[0].lower()}@example.com"
    consultation = make_request(
        full_name=name, email=email, red_flags={"fever"} if urgent else None
    )
    # Routine requests waited longest: only triage can put the urgent ones first.
    consultation.created_at = datetime.now(UTC) - timedelta(hours=hours_ago)
    db.session.commit()
    return Seeded(consultation.reference, name, email)


def _enrol_two_factor(user: StaffUser, secret: str) -> None:
    """As if the user had scanned ``secret`` and typed the code their app showed."""
    assert twofactor.enable(user, secret, pyotp.TOTP(secret).now()) is not None


@pytest.fixture
def clinic(live_server: LiveServer) -> Clinic:
    """Staff (the coordinator with two-factor sign-in on), a location, hours and two routine
    and two urgent requests."""
    with live_server.app.app_context():
        coordinator = make_staff("coordinator", COORDINATOR, full_name=COORDINATOR_NAME)
        _enrol_two_factor(coordinator, COORDINATOR_TOTP)
        weber = make_staff("specialist", "lena.weber@example.com", full_name=SPECIALIST)
        make_location("Main clinic")
        west = make_location(LOCATION, "Kantstr. 20, Berlin")
        make_appointment_type("New-patient spine evaluation", 45)
        make_appointment_type("Imaging review", 30)
        make_hours(weber, west, range(7), "08:00", "18:00")
        routine = (
            _seed(5, "Rita Routine", urgent=False),
            _seed(4, "Otto Ordinary", urgent=False),
        )
        urgent = (_seed(3, "Ulla Urgent", urgent=True), _seed(1, "Nora Newest", urgent=True))
    return Clinic(server=live_server, urgent=urgent, routine=routine)


def appointment_day(clinic_tz: ZoneInfo) -> date:
    """Two weeks ahead at the clinic: always in the future, and no clock change at 10:30."""
    return datetime.now(clinic_tz).date() + timedelta(days=14)


@pytest.mark.slow  # a real worker process sends the emails
def test_coordinator_with_two_factor_confirms_the_newest_urgent_request_and_the_patient_is_invited(
    page: Page, clinic: Clinic, smtp: SmtpServer, worker: subprocess.Popen
) -> None:
    sign_in(page, clinic.server, COORDINATOR, totp_secret=COORDINATOR_TOTP)

    # Urgent first, then the longest waiting for a call-back.
    in_order = [*clinic.urgent, *clinic.routine]
    queue = page.get_by_role("table", name=QUEUE_CAPTION)
    expect(queue.get_by_role("rowheader")).to_have_text([s.reference for s in in_order])
    rows = queue.get_by_role("row").filter(has=page.get_by_role("rowheader"))
    for row, seeded, triage in zip(
        rows.all(), in_order, ["URGENT"] * 2 + ["routine"] * 2, strict=True
    ):
        expect(row).to_contain_text(seeded.name)
        expect(row.get_by_role("cell").first).to_have_text(triage)

    newest = clinic.urgent[-1]
    queue.get_by_role("link", name=newest.reference, exact=True).click()

    expect(page).to_have_url(clinic.server(f"/staff/requests/{newest.reference}"))
    expect(page.get_by_role("heading", level=1)).to_have_text(f"{newest.reference} · {newest.name}")
    # The name isolated from the reference beside it (a right-to-left name reorders otherwise).
    expect(page.get_by_role("heading", level=1).locator("bdi")).to_have_text(newest.name)
    red_flags = page.get_by_role("region", name="Red flags reported")
    expect(red_flags).to_be_visible()
    expect(red_flags.get_by_role("listitem")).to_have_text(
        ["Do you have a fever, or feel generally unwell, along with the pain? urgent"]
    )

    clinic_tz = ZoneInfo(clinic.server.app.config["CLINIC_TIMEZONE"])
    day = appointment_day(clinic_tz)
    confirm = page.get_by_role("form", name="Confirm an appointment")
    confirm.get_by_label("Specialist", exact=True).select_option(label=SPECIALIST)
    confirm.get_by_label("Location", exact=True).select_option(label=LOCATION)
    confirm.get_by_label("Date", exact=True).fill(day.isoformat())
    confirm.get_by_label("Time", exact=True).fill("10:30")
    confirm.get_by_label("Appointment type", exact=True).select_option(
        label="Imaging review (30 min)"
    )
    confirm.get_by_role("button", name="Confirm and email the patient").click()

    expect(page).to_have_url(clinic.server(f"/staff/requests/{newest.reference}"))
    expect(
        page.get_by_role("status").filter(has_text="Done: an email to the patient is on its way.")
    ).to_be_visible()
    expect(page.get_by_text("confirmed", exact=True)).to_be_visible()
    next_step = page.get_by_role("region", name="Next step")
    expect(next_step).to_contain_text(f"30 minutes · {SPECIALIST} · {LOCATION}")

    received = wait_for_email(smtp, f"Your appointment is confirmed ({newest.reference})", worker)
    assert received.rcpt_tos == [newest.email]
    message = received.message
    assert message["To"] == newest.email
    [invitation] = [
        part for part in message.iter_attachments() if part.get_content_type() == "text/calendar"
    ]
    assert invitation.get_param("method") == "REQUEST"
    calendar = Calendar.from_ical(invitation.get_content())
    [event] = calendar.walk("VEVENT")
    starts_at = event.decoded("DTSTART")
    expected = datetime.combine(day, time(10, 30), tzinfo=clinic_tz).astimezone(UTC)
    assert starts_at == expected
    assert starts_at.utcoffset() == timedelta(0)
    assert event.decoded("DTEND") - starts_at == timedelta(minutes=30)
    assert newest.reference in str(event["SUMMARY"])


def test_what_an_action_did_is_read_and_seen_where_it_was_done(page: Page, clinic: Clinic) -> None:
    """The record reloads at the part acted on (#calls): the message ("Call logged.") moves
    there and takes the focus, so a screen reader reads it and a sighted user sees it."""
    sign_in(page, clinic.server, COORDINATOR, totp_secret=COORDINATOR_TOTP)
    newest = clinic.urgent[-1]
    page.get_by_role("link", name=newest.reference, exact=True).click()
    calls = page.get_by_role("region", name="Call-backs")
    calls.get_by_label("No answer, left a message").check()
    calls.get_by_role("button", name="Log the call").click()
    message = page.get_by_role("status").filter(has_text="Call logged.")
    expect(message).to_be_focused()
    expect(message).to_be_in_viewport()
    expect(calls.get_by_role("status").filter(has_text="Call logged.")).to_have_count(1)
    expect(calls).to_contain_text("Not reached yet")


def test_coordinator_raises_a_routine_request_to_urgent_with_the_keyboard_alone(
    page: Page, clinic: Clinic
) -> None:
    """The patient of the longest-waiting routine request phoned about new symptoms: the
    coordinator opens the record from the queue, unfolds "Raise the triage level", chooses
    urgent, writes why and sends, with Tab, the arrow keys, Space, Enter and typing only. The
    request then joins the queue's urgent part, after the two urgent ones that arrived before
    the raise (each level in the order of its call-back clock, which for it starts at the
    raise), and its timeline shows the raise with the reason."""
    sign_in(page, clinic.server, COORDINATOR, totp_secret=COORDINATOR_TOTP)
    raised = clinic.routine[0]
    queue = page.get_by_role("table", name=QUEUE_CAPTION)
    expect(queue.get_by_role("rowheader")).to_have_text(
        [s.reference for s in (*clinic.urgent, *clinic.routine)]
    )
    link = queue.get_by_role("link", name=raised.reference, exact=True)
    tab_to(page, link, "the routine request's link")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_have_text(f"{raised.reference} · {raised.name}")

    section = page.get_by_role("region", name="Triage level: routine")
    levels = section.get_by_role("radiogroup", name="New triage level")
    expect(levels).to_be_hidden()  # folded away until asked for
    tab_to(page, section.locator("summary"), "Raise the triage level")
    page.keyboard.press("Enter")
    expect(levels).to_be_visible()
    expect(levels.get_by_role("radio")).to_have_count(2)  # urgent, emergency: only higher
    key_choose(page, "New triage level", "Urgent: call the patient back today")
    key_type(page, "Why (the new symptoms, and how the patient told you)", REASON)
    tab_to(page, section.get_by_role("button", name="Raise the triage level"), "the button")
    page.keyboard.press("Enter")

    raised_message = page.get_by_role("status").filter(has_text="Triage level raised")
    expect(raised_message).to_be_focused()
    expect(page.get_by_role("region", name="Triage level: URGENT")).to_be_visible()
    entry = (
        page.get_by_role("region", name="Timeline")
        .get_by_role("listitem")
        .filter(has_text="Raised the triage level from routine to urgent")
    )
    expect(entry).to_have_count(1)
    expect(entry).to_contain_text(f"Reason: {REASON}")
    expect(entry).to_contain_text(f"Note · {COORDINATOR_NAME}")

    queue_link = page.get_by_role("navigation", name="Staff").get_by_role(
        "link", name="Queue", exact=True
    )
    tab_to(page, queue_link, "the queue in the menu")
    page.keyboard.press("Enter")
    # Urgent first, then by the call-back clock: the raised one's started at the raise.
    in_order = [*clinic.urgent, raised, *clinic.routine[1:]]
    expect(queue.get_by_role("rowheader")).to_have_text([s.reference for s in in_order])
    rows = queue.get_by_role("row").filter(has=page.get_by_role("rowheader"))
    expect(rows.nth(2)).to_contain_text(raised.name)
    expect(rows.locator("td:first-child")).to_have_text(["URGENT"] * 3 + ["routine"])


def test_queue_and_record_fit_a_phone_without_sideways_scrolling(
    phone_page: Page, clinic: Clinic
) -> None:
    page = phone_page
    sign_in(page, clinic.server, COORDINATOR, totp_secret=COORDINATOR_TOTP)
    assert page_width(page) <= PHONE_WIDTH, "the queue scrolls sideways"
    # Each request stacks its cells: its call-back and appointment are on the screen too,
    # not beyond the edge of a box to scroll sideways.
    assert not cells_beyond_the_screen(page), cells_beyond_the_screen(page)

    newest = clinic.urgent[-1]
    page.get_by_role("link", name=newest.reference, exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(newest.reference)
    assert page_width(page) <= PHONE_WIDTH, "the record scrolls sideways"


def test_admin_who_must_use_two_factor_enrols_an_app_then_signs_in_with_its_code(
    page: Page, live_server: LiveServer
) -> None:
    live_server.app.config["STAFF_2FA_REQUIRED_ROLES"] = ["admin"]
    with live_server.app.app_context():
        make_staff("admin", ADMIN)

    # The first sign-in leads to the enrolment page, and nowhere else.
    sign_in(page, live_server, ADMIN, landing="Set up two-factor sign-in")
    expect(
        page.get_by_role("status").filter(has_text="Please set up two-factor sign-in to continue.")
    ).to_be_visible()
    expect(
        page.get_by_role("img", name=re.compile(r"^QR code for your authenticator app"))
    ).to_be_visible()
    page.goto(live_server("/staff/"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Set up two-factor sign-in")

    # The patient's app would scan the QR code; the same key is written out to type in.
    key = page.locator("code").inner_text().strip()
    # Five digits can never be right: every code has six.
    page.get_by_label("Code", exact=True).fill("12345")
    page.get_by_role("button", name="Turn on two-factor sign-in").click()
    code = page.get_by_label("Code", exact=True)
    expect(code).to_have_attribute("aria-invalid", "true")
    expect(code).to_have_accessible_description(re.compile(r"Error: That code is not right"))

    code.fill(pyotp.TOTP(key).now())
    page.get_by_role("button", name="Turn on two-factor sign-in").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Two-factor sign-in is on")
    expect(page.locator("#recovery-codes").get_by_role("listitem")).to_have_count(10)
    page.get_by_role("link", name="Continue").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Triage queue")

    page.get_by_role("button", name="Sign out").click()
    sign_in(page, live_server, ADMIN, totp_secret=key)


def test_admin_adds_working_hours_and_the_patient_is_offered_exactly_the_new_times(
    page: Page, browser: Browser, live_server: LiveServer
) -> None:
    # A specialist with no hours yet: the patient is offered nothing.
    seed_schedule(live_server, hours=None)
    with live_server.app.app_context():
        make_staff("admin", ADMIN)
    day = clinic_day(live_server, 3)

    with browser_page(browser) as patient:
        patient.goto(live_server("/request/time"))
        expect(
            patient.get_by_text(re.compile(r"^No open times in these two weeks"))
        ).to_be_visible()
        expect(patient.get_by_role("radio", name=re.compile(SPECIALIST))).to_have_count(0)

    sign_in(page, live_server, ADMIN)
    page.get_by_role("link", name="Scheduling", exact=True).click()
    page.get_by_role("link", name=SPECIALIST, exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Schedule of {SPECIALIST}")
    add = page.get_by_role("form", name="Add weekly hours")
    add.get_by_label("Day of the week", exact=True).select_option(label=day.strftime("%A"))
    add.get_by_label("Location", exact=True).select_option(label=LOCATION)
    add.get_by_label("Start time", exact=True).fill("14:00")
    add.get_by_label("End time", exact=True).fill("15:00")
    add.get_by_role("button", name="Add the hours").click()
    hours = page.get_by_role("table", name="Weekly working hours")
    expect(hours.get_by_role("row").filter(has_text=day.strftime("%A"))).to_contain_text("14:00")

    with browser_page(browser) as patient:
        patient.goto(live_server("/request/time"))
        pick_type(patient, IMAGING_REVIEW)
        times = patient.get_by_role("form", name=re.compile(r"^Open times from "))
        on_day = times.get_by_role("group", name=day_legend(day), exact=True)
        # Thirty minutes each, starting every quarter hour, inside 14:00-15:00.
        expect(on_day.get_by_role("radio")).to_have_count(3)
        expect(on_day.locator("label strong")).to_have_text(["14:00", "14:15", "14:30"])
        # Every time offered, on any day, lies in the new hours: the days listed are this
        # weekday's, three times each.
        starts = times.locator("label strong").all_inner_texts()
        assert starts, "no times offered"
        assert set(starts) == {"14:00", "14:15", "14:30"}
        days = times.get_by_role("navigation", name="Days with open times").get_by_role("link")
        listed = days.all_inner_texts()
        assert listed and all(
            text.startswith(day.strftime("%a ")) and text.endswith(" · 3 times") for text in listed
        ), listed
