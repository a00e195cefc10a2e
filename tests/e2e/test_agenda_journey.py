"""A specialist's day on a tablet (1024 x 768): signing in opens today's agenda, a time grid
whose appointments say their time, patient, type and status in words (a held time says it is
not confirmed); following one opens the request's record. axe-core finds no serious
problem on the agenda."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Page, expect

from booking.dashboard import services as workflow
from booking.scheduling.services import SlotChoice
from booking.timeutil import clinic_today, from_clinic_local
from tests.e2e.accessibility import assert_accessible
from tests.e2e.conftest import (
    LOCATION,
    PHONE,
    PHONE_HEIGHT,
    PHONE_WIDTH,
    SPECIALIST,
    LiveServer,
    seed_schedule,
)
from tests.e2e.pages import page_width, sign_in
from tests.factories import make_appointment_type, make_request, make_staff, staff_user

pytestmark = pytest.mark.e2e

TABLET = {"viewport": {"width": 1024, "height": 768}, "has_touch": True}
SPECIALIST_EMAIL = "lena.weber@example.com"


@dataclass(frozen=True)
class Day:
    reference: str
    today: date  # Anna's day: the test's reading of the clinic's today
    later: date  # the held time's, two days after
    held_next_week: bool  # the held time is in the week after today's


def on_the_tests_today(page: Page, live_server: LiveServer, today: date) -> None:
    """The agenda on ``page`` was opened on the app's today (no date asked for) and shows it,
    which is ``today``, the test's reading that its appointments are on, or a later day: the
    clinic's midnight may pass between the test's reading and the app's. On a later day the
    page moves to the test's, in the same view."""
    shown = date.fromisoformat(page.locator("input[name=date]").get_attribute("value") or "")
    with live_server.app.app_context():
        now = clinic_today()
    assert today <= shown <= now, (today, shown, now)
    if shown != today:
        view = page.locator("select[name=view]").input_value()
        page.goto(live_server(f"/staff/calendar?view={view}&date={today.isoformat()}"))


def agenda_times(tz: ZoneInfo, day: date, start: time, minutes: int) -> str:
    """An appointment's start and end as the agenda writes them: "09:00\N{EN DASH}09:45"; on a
    day the clocks change (23 or 25 hours) each with its zone, "09:00 CEST\N{EN DASH}09:45
    CEST". The tests' day is today, which is such a day twice a year."""
    starts = datetime.combine(day, start, tzinfo=tz).astimezone(UTC)

    def midnight(on: date) -> datetime:
        return datetime.combine(on, time(), tzinfo=tz).astimezone(UTC)

    clock_change = midnight(day + timedelta(days=1)) - midnight(day) != timedelta(days=1)

    def text(moment: datetime) -> str:
        local = moment.astimezone(tz)
        return f"{local:%H:%M} {local.tzname()}" if clock_change else f"{local:%H:%M}"

    return f"{text(starts)}\N{EN DASH}{text(starts + timedelta(minutes=minutes))}"


@pytest.fixture
def tablet(new_context) -> Page:
    context = new_context(**TABLET)
    return context.new_page()


@pytest.fixture
def day(live_server: LiveServer) -> Day:
    """Dr. Weber works 08:00-18:00 every day; today at 09:00 she sees Anna (confirmed), and a
    patient holds a time the day after tomorrow."""
    schedule = seed_schedule(live_server, ("08:00", "18:00"))
    with live_server.app.app_context():
        from booking.extensions import db
        from booking.scheduling.models import AppointmentType, Location

        coordinator = make_staff("coordinator", "chris@example.com")
        weber = staff_user(SPECIALIST_EMAIL)
        place = db.session.get(Location, schedule.location_id)
        kind = db.session.scalars(
            db.select(AppointmentType).where(AppointmentType.duration_minutes == 45)
        ).one()
        anna = make_request(full_name="Anna Agenda", email="anna@example.com")
        today = clinic_today()
        workflow.confirm_request(
            anna, coordinator, workflow.Slot(kind, weber, place, today, time(9))
        )
        later = today + timedelta(days=2)
        make_request(
            full_name="Hugo Held",
            email="hugo@example.com",
            slot=SlotChoice(kind.id, weber.id, place.id, from_clinic_local(later, time(10))),
        )
        return Day(anna.reference, today, later, later.weekday() < today.weekday())


def test_a_specialist_opens_todays_agenda_on_a_tablet_and_follows_an_appointment(
    live_server: LiveServer, day: Day, tablet: Page
) -> None:
    sign_in(tablet, live_server, SPECIALIST_EMAIL, landing=re.compile(r"^Agenda: "))
    expect(tablet).to_have_url(re.compile(r"/staff/calendar$"))
    on_the_tests_today(tablet, live_server, day.today)
    agenda = tablet.get_by_role("region", name=SPECIALIST)
    appointment = agenda.get_by_role("listitem").filter(has_text="Anna Agenda")
    expect(appointment).to_be_visible()
    said = " ".join(appointment.text_content().split())
    times = agenda_times(live_server.tz, day.today, time(9), 45)
    assert said == (
        f"{times} · Confirmed · Anna Agenda · New-patient spine evaluation · {LOCATION}"
    ), said
    expect(agenda.get_by_role("listitem").filter(has_text="Free").first).to_be_visible()
    assert page_width(tablet) <= 1024, "the agenda scrolls the page sideways on a tablet"
    assert_accessible(tablet, "today's agenda")

    # The week with the held time, which says so in words.
    tablet.get_by_label("View").select_option("week")
    tablet.get_by_role("button", name="Show").click()
    expect(tablet.get_by_role("heading", level=1)).to_contain_text("week of")
    if day.held_next_week:
        tablet.get_by_role("link", name="Next week").click()
    held = tablet.get_by_role("listitem").filter(has_text="Hugo Held")
    expect(held).to_contain_text("Held, not confirmed")
    assert page_width(tablet) <= 1024
    assert_accessible(tablet, "a week's agenda")

    today = tablet.get_by_role("link", name="Today")
    to_today = live_server(today.get_attribute("href") or "")
    today.click()
    expect(tablet).to_have_url(to_today)
    on_the_tests_today(tablet, live_server, day.today)
    tablet.get_by_role("link", name="Anna Agenda").click()
    expect(tablet.get_by_role("heading", level=1)).to_contain_text(day.reference)
    expect(tablet.get_by_role("heading", level=1)).to_contain_text("Anna Agenda")


# A phone turned sideways: wide enough for the week's time grid, in narrow columns.
PHONE_SIDEWAYS = {
    "viewport": {"width": PHONE_HEIGHT, "height": PHONE_WIDTH},
    "is_mobile": True,
    "has_touch": True,
}


def test_a_held_time_says_so_in_a_phones_narrow_column(
    live_server: LiveServer, day: Day, new_context
) -> None:
    """On a phone turned sideways a week's columns are narrow and an entry shows only the
    lines its length on the grid holds: "Held, not confirmed" after the name and the type was
    cut off. It comes first, after the time, and is seen whole without a tap."""
    later = day.later
    phone_page = new_context(**PHONE_SIDEWAYS).new_page()
    sign_in(phone_page, live_server, SPECIALIST_EMAIL, landing=re.compile(r"^Agenda: "))
    phone_page.goto(live_server(f"/staff/calendar?view=week&date={later.isoformat()}"))
    held = phone_page.get_by_role("listitem").filter(has_text="Hugo Held")
    status = held.locator(".agenda-status")
    expect(status).to_have_text("Held, not confirmed")
    entry, label = held.bounding_box(), status.bounding_box()
    assert entry is not None and label is not None
    assert entry["width"] < 200, entry  # a narrow column, as on the reviewer's phone
    assert label["y"] + label["height"] <= entry["y"] + entry["height"], (label, entry)


# The parts of an entry that lie (even in part) outside its box, so are cut off: its time,
# status and patient.
CUT_PARTS = """entry => {
    const box = entry.getBoundingClientRect();
    return [...entry.querySelectorAll(":scope > strong, :scope > .agenda-status, :scope > a")]
        .filter(part => [...part.getClientRects()].some(
            r => r.bottom > box.bottom + 0.5 || r.right > box.right + 0.5))
        .map(part => part.textContent.trim());
}"""


def test_a_phones_week_shows_each_patients_whole_name(
    live_server: LiveServer, phone_page: Page
) -> None:
    """On a phone a week's columns were 8rem wide: a 45-minute entry's time and status took
    three of its four lines, and the patient's name was cut after its first word ("Maria"),
    or not shown at all after an URGENT badge. Each entry shows the time, the status and a
    long name, whole."""
    schedule = seed_schedule(live_server, ("08:00", "18:00"))
    with live_server.app.app_context():
        from booking.extensions import db
        from booking.scheduling.models import AppointmentType, Location

        coordinator = make_staff("coordinator", "chris@example.com")
        weber = staff_user(SPECIALIST_EMAIL)
        place = db.session.get(Location, schedule.location_id)
        kind = db.session.scalars(
            db.select(AppointmentType).where(AppointmentType.duration_minutes == 45)
        ).one()
        later = clinic_today() + timedelta(days=2)
        workflow.confirm_request(
            make_request(full_name="María José Fernández-Castellanos", email="mj@example.com"),
            coordinator,
            workflow.Slot(kind, weber, place, later, time(9)),
        )
        make_request(
            full_name="Konstantin Papadopoulos",
            email="kp@example.com",
            slot=SlotChoice(kind.id, weber.id, place.id, from_clinic_local(later, time(11))),
        )
    sign_in(phone_page, live_server, SPECIALIST_EMAIL, landing=re.compile(r"^Agenda: "))
    phone_page.goto(live_server(f"/staff/calendar?view=week&date={later.isoformat()}"))
    for name in ("María José Fernández-Castellanos", "Konstantin Papadopoulos"):
        entry = phone_page.get_by_role("listitem").filter(has_text=name)
        expect(entry.get_by_role("link", name=name)).to_be_visible()
        assert entry.evaluate(CUT_PARTS) == [], entry.inner_html()
    held = phone_page.get_by_role("listitem").filter(has_text="Konstantin Papadopoulos")
    expect(held.locator(".agenda-status")).to_have_text("Held, not confirmed")
    assert page_width(phone_page) <= PHONE_WIDTH, "the week scrolls the page sideways"


# The columns (days) of the agenda whose box lies, even in part, beyond the window's left or
# right edge: there only by scrolling sideways.
COLUMNS_BEYOND = """() => [...document.querySelectorAll(".agenda-col")]
    .filter(col => { const box = col.getBoundingClientRect();
        return box.left < -0.5 || box.right > window.innerWidth + 0.5; })
    .map(col => col.querySelector(".agenda-head").textContent.trim())"""


def test_a_phones_week_lists_every_day_across_the_screen(
    live_server: LiveServer, day: Day, phone_page: Page
) -> None:
    """On a phone a week was seven columns of a time grid, 12rem each, in a box to scroll
    sideways: 1.6 days showed, and scrolling to the others took the hours beside them out of
    view. On a phone the week is a list of its days, one under the other, each the screen's
    width; each appointment, with its times, status and patient, lies on the screen."""
    later = day.later
    sign_in(phone_page, live_server, SPECIALIST_EMAIL, landing=re.compile(r"^Agenda: "))
    phone_page.goto(live_server(f"/staff/calendar?view=week&date={day.today.isoformat()}"))
    expect(phone_page.get_by_role("heading", level=1)).to_contain_text("week of")
    days = phone_page.locator(".agenda-col")
    expect(days).to_have_count(7)
    assert phone_page.evaluate(COLUMNS_BEYOND) == []
    if day.held_next_week:
        phone_page.goto(live_server(f"/staff/calendar?view=week&date={later.isoformat()}"))
        expect(days).to_have_count(7)
        assert phone_page.evaluate(COLUMNS_BEYOND) == []
    held = phone_page.get_by_role("listitem").filter(has_text="Hugo Held")
    held.scroll_into_view_if_needed()
    box = held.bounding_box()
    assert box is not None
    assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE_WIDTH, box
    assert held.evaluate(CUT_PARTS) == [], held.inner_html()
    # Its day's heading is above it, on the same screen width: which day it is, is seen.
    heading = phone_page.get_by_role("heading", name=later.strftime("%a %-d %b"), exact=False)
    expect(heading).to_be_visible()
    assert page_width(phone_page) <= PHONE_WIDTH, "the week scrolls the page sideways"


@pytest.mark.parametrize(
    ("screen", "scrolls"), [(PHONE, False), (PHONE_SIDEWAYS, True)], ids=["upright", "sideways"]
)
def test_the_weeks_box_is_a_tab_stop_only_where_it_scrolls_sideways(
    live_server: LiveServer, day: Day, new_context, screen: dict, scrolls: bool
) -> None:
    """The week's box is in the tab order so that a keyboard can scroll it sideways; on an
    upright phone the week is a list that scrolls nothing sideways, and the box was a stop
    that did nothing. It is one only where the grid overflows it (a phone turned sideways),
    and stays a region named by the specialist either way."""
    page = new_context(**screen).new_page()
    sign_in(page, live_server, SPECIALIST_EMAIL, landing=re.compile(r"^Agenda: "))
    page.goto(live_server(f"/staff/calendar?view=week&date={day.today.isoformat()}"))
    box = page.locator(".agenda-scroll")
    expect(box).to_have_role("region")
    expect(box).to_have_accessible_name(SPECIALIST)
    assert box.evaluate("box => box.scrollWidth > box.clientWidth") is scrolls
    expect(box).to_have_js_property("tabIndex", 0 if scrolls else -1)


# A short entry's start time and patient lie inside its box, and nothing is cut off below its
# one line (an entry clips what its length on the grid does not hold).
CLIPPED_KEY_TEXT = """entry => {
    const box = entry.getBoundingClientRect();
    const right = box.right - parseFloat(getComputedStyle(entry).paddingRight);
    const clipped = [...entry.querySelectorAll(":scope > strong, :scope > a")]
        .map(part => [part.textContent.trim(), part.getBoundingClientRect()])
        .filter(([, r]) => r.right > right + 0.5 || r.bottom > box.bottom + 0.5)
        .map(([text]) => text);
    return entry.scrollHeight > entry.clientHeight ? [...clipped, "a line below"] : clipped;
}"""


@pytest.mark.parametrize(("width", "view"), [(1280, "week"), (390, "day")])
def test_a_short_appointment_shows_its_time_and_patient_on_one_line(
    live_server: LiveServer, new_context, width: int, view: str
) -> None:
    """A 15-minute appointment is three grid lines high, room for one line of text: its text
    wrapped and was cut off after "10:00-10:15 · Confirmed ·", so the agenda did not say whose
    it was. A short entry is one line, its start and the patient first, and it ends where the
    next appointment (at 10:15) begins; the rest shows on focus."""
    schedule = seed_schedule(live_server, ("08:00", "18:00"))
    with live_server.app.app_context():
        from booking.extensions import db
        from booking.scheduling.models import ClinicSettings, Location

        # No buffer: the two appointments meet, so the first must end where the second starts.
        db.session.add(
            ClinicSettings(
                id=1, buffer_minutes=0, min_notice_hours=24, horizon_days=60, cancel_notice_hours=24
            )
        )
        db.session.commit()
        coordinator = make_staff("coordinator", "chris@example.com")
        weber = staff_user(SPECIALIST_EMAIL)
        place = db.session.get(Location, schedule.location_id)
        check = make_appointment_type("Quick check", 15)
        today = clinic_today()
        for name, at in (("Anna Agenda", time(10)), ("Bert Brief", time(10, 15))):
            workflow.confirm_request(
                make_request(full_name=name, email=f"{name.split()[0].lower()}@example.com"),
                coordinator,
                workflow.Slot(check, weber, place, today, at),
            )
    page = new_context(viewport={"width": width, "height": 900}).new_page()
    sign_in(page, live_server, SPECIALIST_EMAIL, landing=re.compile(r"^Agenda: "))
    page.goto(live_server(f"/staff/calendar?view={view}&date={today.isoformat()}"))
    first = page.get_by_role("listitem").filter(has_text="Anna Agenda")
    second = page.get_by_role("listitem").filter(has_text="Bert Brief")
    expect(first).to_contain_text("10:00")
    assert first.evaluate(CLIPPED_KEY_TEXT) == [], first.inner_html()
    assert second.evaluate(CLIPPED_KEY_TEXT) == [], second.inner_html()
    above, below = first.bounding_box(), second.bounding_box()
    assert above is not None and below is not None
    assert above["y"] + above["height"] <= below["y"] + 0.5, (above, below)
    # All of it (the end time, the status, the type) on focus, and read out all along.
    said = " ".join(first.text_content().split())
    times = agenda_times(live_server.tz, today, time(10), 15)
    assert said.startswith(f"{times} Anna Agenda · Confirmed · Quick check"), said
    first.get_by_role("link", name="Anna Agenda").focus()
    until = first.locator(".agenda-until").bounding_box()
    assert until is not None and until["width"] > 5, until
    focused = first.bounding_box()
    assert focused is not None and focused["height"] > above["height"], (focused, above)


# The lines of an entry's text cut through by an edge that clips it (the entry's, or an edge
# inside it): a line either shows whole or not at all.
LINES_CUT_THROUGH = """entry => {
    const clips = [entry, ...entry.querySelectorAll("*")]
        .filter(el => getComputedStyle(el).overflowY !== "visible")
        .map(el => el.getBoundingClientRect().bottom
             - parseFloat(getComputedStyle(el).borderBottomWidth));
    const edge = Math.min(...clips);
    const range = document.createRange();
    range.selectNodeContents(entry);
    return [...range.getClientRects()]
        .filter(line => line.height > 0 && line.top < edge - 0.5 && line.bottom > edge + 0.5)
        .map(line => [Math.round(line.top), Math.round(line.bottom), Math.round(edge)]);
}"""
# Whether an entry shows its whole text: none of it lies below the entry's bottom edge.
SHOWN_WHOLE = """entry => {
    const box = entry.getBoundingClientRect();
    const range = document.createRange();
    range.selectNodeContents(entry);
    return [...range.getClientRects()].every(line => line.bottom <= box.bottom + 0.5);
}"""
LONG_NAME = "Maximiliane Theodora Wolfeschlegel-Steinhausen"
LONG_REASON = "Teaching the physiotherapy students lumbar stabilisation exercises"


def test_a_longer_entry_is_cut_at_a_whole_line_and_opens_whole(
    live_server: LiveServer, tablet: Page
) -> None:
    """In a week's narrow columns a 45-minute appointment with a long name, and time off
    with a long reason, held more text than their place on the grid: the entry's edge cut
    its last line in half. Each is cut after its last whole line; all of it is read out,
    and shown on hover and on focus (time off, which has no link, is a tab stop for that)."""
    schedule = seed_schedule(live_server, ("08:00", "18:00"))
    with live_server.app.app_context():
        from booking.extensions import db
        from booking.scheduling.models import AppointmentType, Location, ScheduleException

        coordinator = make_staff("coordinator", "chris@example.com")
        weber = staff_user(SPECIALIST_EMAIL)
        place = db.session.get(Location, schedule.location_id)
        kind = db.session.scalars(
            db.select(AppointmentType).where(AppointmentType.duration_minutes == 45)
        ).one()
        day = clinic_today()
        workflow.confirm_request(
            make_request(full_name=LONG_NAME, email="max@example.com"),
            coordinator,
            workflow.Slot(kind, weber, place, day, time(9)),
        )
        db.session.add(
            ScheduleException(
                specialist_id=weber.id,
                kind="time_off",
                starts_at=from_clinic_local(day, time(14)),
                ends_at=from_clinic_local(day, time(14, 30)),
                reason=LONG_REASON,
            )
        )
        db.session.commit()
    sign_in(tablet, live_server, SPECIALIST_EMAIL, landing=re.compile(r"^Agenda: "))
    tablet.goto(live_server(f"/staff/calendar?view=week&date={day.isoformat()}"))
    tablet.wait_for_load_state()  # the deferred scripts have run
    appointment = tablet.get_by_role("listitem").filter(has_text=LONG_NAME)
    time_off = tablet.get_by_role("listitem").filter(has_text=LONG_REASON)
    tablet.mouse.move(0, 0)
    for entry in (appointment, time_off):
        # It holds more than its place shows (else there is nothing to cut), cut at a line.
        assert not entry.evaluate(SHOWN_WHOLE), entry.inner_html()
        assert entry.evaluate(LINES_CUT_THROUGH) == [], entry.inner_html()
        entry.hover()
        assert entry.evaluate(SHOWN_WHOLE), "not whole on hover"
        tablet.mouse.move(0, 0)
    # Read out whole all along.
    expect(appointment).to_contain_text(LONG_NAME)
    expect(time_off).to_contain_text(LONG_REASON)
    # By keyboard: the appointment's link, and the time off itself.
    appointment.get_by_role("link", name=LONG_NAME).focus()
    assert appointment.evaluate(SHOWN_WHOLE)
    expect(time_off).to_have_attribute("tabindex", "0")
    time_off.focus()
    expect(time_off).to_be_focused()
    assert time_off.evaluate(SHOWN_WHOLE)
    # A cut entry in the tab order is no accessibility problem (axe-core).
    assert_accessible(tablet, "a week with entries cut at a whole line")
