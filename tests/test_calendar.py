"""The agenda (/staff/calendar): day and week time grids of held and confirmed appointments,
free time, breaks and time off; who may see whose; a clock change; the specialist's landing
page."""

from __future__ import annotations

import html as html_lib
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from booking.audit.models import AuditEvent
from booking.calendar.agenda import MAX_CLAMP_LINES, Entry, EntryKind, grid_css
from booking.dashboard import services as workflow
from booking.extensions import db
from booking.requests.models import ConsultationRequest
from booking.scheduling.admin_services import add_extra_hours, add_time_off
from booking.scheduling.availability import open_slots
from booking.scheduling.models import ClinicSettings
from booking.scheduling.services import SlotChoice
from booking.staff.services import set_staff_active
from booking.timeutil import clinic_today, from_clinic_local
from tests.factories import (
    make_appointment_type,
    make_hours,
    make_location,
    make_request,
    staff_user,
)
from tests.support import AuthActions, Staff

ENTRY_RE = re.compile(r'<li class="agenda-entry ([^"]*)"[^>]*>(.*?)</li>', re.S)
HEADING_RE = re.compile(r'<h3 class="agenda-head" id="col-([^"]+)">(.*?)</h3>', re.S)


def text(fragment: str) -> str:
    """What a reader gets from a piece of the page: the text, tags gone (inline: a short
    entry's "09:40<span>-10:00</span>" reads as one time), spaces collapsed (and the en dash
    between two times read as a hyphen)."""
    plain = html_lib.unescape(re.sub(r"<[^>]+>", "", fragment)).replace("\N{EN DASH}", "-")
    return " ".join(plain.split())


def entries(page: str) -> list[tuple[str, str]]:
    """Every entry of the agenda's grids as (its classes, its text), in page order."""
    return [(classes, text(body)) for classes, body in ENTRY_RE.findall(page)]


def entry(page: str, containing: str) -> tuple[str, str]:
    [found] = [e for e in entries(page) if containing in e[1]]
    return found


def columns(page: str) -> list[str]:
    """The columns' headings."""
    return [text(body) for _key, body in HEADING_RE.findall(page)]


def agenda(client: FlaskClient, **args: Any) -> str:
    response = client.get("/staff/calendar", query_string=args)
    assert response.status_code == 200, response.status_code
    return response.get_data(as_text=True)


@dataclass(frozen=True)
class Day:
    day: date
    weber: int
    okafor: int
    mitte: int
    west: int


def hold(type_id: int, specialist_id: int, location_id: int, starts_at: datetime, **kw: Any):
    """A request whose patient holds that time (not yet confirmed by staff)."""
    return make_request(slot=SlotChoice(type_id, specialist_id, location_id, starts_at), **kw)


def confirm(name: str, specialist: Any, location: Any, kind: Any, day: date, at: time):
    coordinator = staff_user("coord@example.com")
    consultation = make_request(full_name=name, email=f"{name.split()[0].lower()}@example.com")
    workflow.confirm_request(
        consultation, coordinator, workflow.Slot(kind, specialist, location, day, at)
    )
    return consultation


def next_weeks_monday(today: date) -> date:
    """Next week's Monday, at least two days after ``today``."""
    day = today + timedelta(days=7 - today.weekday())
    return day + timedelta(days=7) if (day - today).days < 2 else day


@pytest.fixture
def next_monday() -> date:
    """Next week's Monday, read once for the test, in the clinic's zone and before any app
    is made: the settings a test gives the app (``closed_tuesday``) and the bookings made in
    it (``monday``) name the same week, even when the clinic's Saturday turns into Sunday
    between the two (next week's Monday is then a week later)."""
    return next_weeks_monday(datetime.now(ZoneInfo("Europe/Berlin")).date())


@pytest.fixture
def monday(app: Flask, staff: Staff, next_monday: date) -> Day:
    """Next week's Monday (at least two days ahead). Dr. Weber works 08:00-12:00 and
    13:00-17:00 at Mitte, has time off from 15:00 ("Conference"), a confirmed appointment at
    09:00 (Anna), an urgent patient holding 10:00 (Hugo) and a cancelled one at 11:00 (Carl).
    Dr. Okafor works 09:00-17:00 at West and sees Ben at 14:00. 30-minute appointments, the
    default 10-minute buffer."""
    with app.app_context():
        weber, okafor = staff_user(staff.weber.email), staff_user(staff.okafor.email)
        coordinator = staff_user(staff.coordinator.email)
        mitte, west = make_location("Mitte", "A 1"), make_location("West", "B 2")
        kind = make_appointment_type("Spine evaluation", minutes=30)
        make_hours(weber, mitte, range(7), "08:00", "12:00")
        make_hours(weber, mitte, range(7), "13:00", "17:00")
        make_hours(okafor, west, range(7), "09:00", "17:00")
        day = next_monday
        confirm("Anna Mitte", weber, mitte, kind, day, time(9))
        hold(
            kind.id,
            weber.id,
            mitte.id,
            from_clinic_local(day, time(10)),
            full_name="Hugo Held",
            email="hugo@example.com",
            red_flags={"fever_weight_loss"},
        )
        cancelled = confirm("Carl Cancelled", weber, mitte, kind, day, time(11))
        workflow.cancel_request(cancelled, coordinator)
        confirm("Ben West", okafor, west, kind, day, time(14))
        add_time_off(
            weber,
            from_clinic_local(day, time(15)),
            from_clinic_local(day, time(17)),
            "Conference",
            actor=None,
        )
        make_request(full_name="Wanda Waiting", email="wanda@example.com")  # holds no time
        return Day(day, weber.id, okafor.id, mitte.id, west.id)


def test_a_specialists_day_shows_held_and_confirmed_times_free_time_breaks_and_time_off(
    client: FlaskClient, monday: Day
) -> None:
    AuthActions(client).attempt("weber@example.com")
    page = agenda(client, date=monday.day.isoformat())

    assert [text for _classes, text in entries(page)] == [
        # The buffer before and after each appointment is neither free nor booked: left blank.
        "08:00-08:50 · Free · Mitte",
        "09:00-09:30 · Confirmed · Anna Mitte · Spine evaluation · Mitte",
        "09:40-09:50 · Free · Mitte",
        # The status first: an entry shows the lines its length holds, a phone's column few.
        "10:00-10:30 · Held, not confirmed URGENT · Hugo Held · Spine evaluation · Mitte",
        "10:40-12:00 · Free · Mitte",  # Carl's cancelled 11:00 is free again
        "12:00-13:00 · Break",
        "13:00-15:00 · Free · Mitte",
        "15:00-17:00 · Time off: Conference",
    ]
    held_classes, _text = entry(page, "Hugo Held")
    confirmed_classes, _text = entry(page, "Anna Mitte")
    assert "agenda-held" in held_classes and "agenda-held" not in confirmed_classes
    # Placed on the grid: 5-minute rows from 08:00, so 09:00 starts at line 13.
    assert "ag-from-13 ag-to-19" in confirmed_classes
    assert "ag-from-25 ag-to-31" in held_classes
    # Each appointment leads to the request's record.
    anna = re.search(r'href="(/staff/requests/SC-[^"]+)">Anna Mitte<', page)
    assert anna is not None and client.get(anna.group(1)).status_code == 200
    # The zone as the patients' pages name it, not its identifier.
    assert "2 appointments (1 held, not confirmed) · times in Germany (Berlin) Time" in text(page)
    assert "Ben West" not in page and "Wanda Waiting" not in page


def test_a_buffer_raised_since_the_bookings_is_not_shown_free_after_them(
    app: Flask, client: FlaskClient, monday: Day
) -> None:
    """Booked with the 10-minute buffer, then the admin asks 25: patients can book nothing in
    the 25 minutes after each appointment, nor end one in the 25 minutes before it
    (``availability.open_slots``), so the agenda does not show them free either: nothing is
    free between Anna and Hugo."""
    with app.app_context():
        db.session.add(ClinicSettings(id=1, buffer_minutes=25))
        db.session.commit()
    AuthActions(client).attempt("weber@example.com")
    shown = [text for _classes, text in entries(agenda(client, date=monday.day.isoformat()))]
    assert shown[:4] == [
        "08:00-08:35 · Free · Mitte",
        "09:00-09:30 · Confirmed · Anna Mitte · Spine evaluation · Mitte",
        "10:00-10:30 · Held, not confirmed URGENT · Hugo Held · Spine evaluation · Mitte",
        "10:55-12:00 · Free · Mitte",
    ]


def test_a_time_held_while_the_clinic_waits_for_the_patient_is_not_shown_free(
    app: Flask, client: FlaskClient, monday: Day, staff: Staff
) -> None:
    """Asking the patient for something (an MRI report) keeps the time they hold: booking
    still counts it as taken, so the agenda shows it held, not free to offer by phone."""
    from booking.requests import asks
    from booking.requests.models import ConsultationRequest, RequestStatus

    with app.app_context():
        [hugo] = [
            c
            for c in db.session.scalars(select(ConsultationRequest))
            if c.patient.full_name == "Hugo Held"
        ]
        asks.ask_patient(hugo, staff_user(staff.coordinator.email), [], "Please send your MRI.")
        assert db.session.get(ConsultationRequest, hugo.id).status == RequestStatus.AWAITING_PATIENT
    AuthActions(client).attempt("weber@example.com")
    page = agenda(client, date=monday.day.isoformat())
    assert entry(page, "Hugo Held")[1] == (
        "10:00-10:30 · Held, not confirmed URGENT · Hugo Held · Spine evaluation · Mitte"
    )
    assert "09:40-09:50 · Free · Mitte" in [t for _c, t in entries(page)]
    assert "09:40-12:00 · Free · Mitte" not in text(page)
    assert "2 appointments (1 held, not confirmed)" in text(page)


def test_coordinators_see_the_specialists_side_by_side_and_switch_between_them(
    client: FlaskClient, monday: Day
) -> None:
    AuthActions(client).attempt("coord@example.com")
    day = monday.day.isoformat()

    both = agenda(client, date=day)
    assert columns(both) == ["Dr. Okafor", "Dr. Weber"]
    assert "Specialists side by side" in both
    assert (
        entry(both, "Ben West")[1] == "14:00-14:30 · Confirmed · Ben West · Spine evaluation · West"
    )
    assert "Hugo Held" in both and "Anna Mitte" in both
    assert "Carl Cancelled" not in both

    weber = agenda(client, date=day, specialist=monday.weber)
    assert columns(weber) == ["Dr. Weber"] and "Ben West" not in weber and "Hugo Held" in weber
    west = agenda(client, date=day, location=monday.west)
    assert "Ben West" in west and "Anna Mitte" not in west and "· Mitte" not in text(west)

    week = agenda(client, date=day, view="week", specialist=monday.okafor)
    assert len(columns(week)) == 7 and "Ben West" in week and "Anna Mitte" not in week
    assert re.search(r"<h2[^>]*>Dr\. Okafor</h2>", week)


def test_a_specialist_sees_only_their_own_agenda_and_is_refused_anothers(
    app: Flask, client: FlaskClient, monday: Day
) -> None:
    AuthActions(client).attempt("weber@example.com")
    day = monday.day.isoformat()
    page = agenda(client, date=day)
    assert columns(page) == ["Dr. Weber"]
    assert 'id="specialist"' not in page  # no switching to another specialist
    for view in ("day", "week"):
        assert "Ben West" not in agenda(client, date=day, view=view)

    refused = client.get("/staff/calendar", query_string={"date": day, "specialist": monday.okafor})
    assert refused.status_code == 403
    assert "Ben West" not in refused.get_data(as_text=True)
    with app.app_context():
        event = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "access_refused")
        ).one()
        assert (event.target_type, event.target_id) == ("agenda", str(monday.okafor))
        assert event.details["reason"] == "not_own_agenda"
    # Their own id is no refusal.
    assert "Anna Mitte" in agenda(client, date=day, specialist=monday.weber)


def test_an_admin_sees_any_specialists_agenda(client: FlaskClient, monday: Day) -> None:
    AuthActions(client).attempt("admin@example.com")
    page = agenda(client, date=monday.day.isoformat(), specialist=monday.okafor)
    assert "Ben West" in page and "Anna Mitte" not in page


@pytest.fixture
def madrid(app_settings: dict[str, Any]) -> ZoneInfo:
    app_settings["CLINIC_TIMEZONE"] = "Europe/Madrid"
    return ZoneInfo("Europe/Madrid")


def _last_sunday(year: int, month: int) -> date:
    """The last Sunday of ``month``: Europe's clocks change then (March and October)."""
    last = date(year, month + 1, 1) - timedelta(days=1)
    return last - timedelta(days=(last.weekday() - 6) % 7)


def test_the_week_of_a_clock_change_keeps_each_time_on_its_row(
    madrid: ZoneInfo, app: Flask, client: FlaskClient, staff: Staff
) -> None:
    """The week of the next spring clock change (a patient still holds a time that Sunday),
    when Madrid's clocks go from 02:00 CET to 03:00 CEST: the Sunday has 23 hours, and 10:00
    is 10:00 on every day's row. (It was 28 March 2027, fixed: the test would have failed
    from the day before.)"""
    with app.app_context():
        soon = clinic_today() + timedelta(days=3)
    sunday = _last_sunday(soon.year, 3)
    if sunday < soon:
        sunday = _last_sunday(soon.year + 1, 3)
    week = [sunday - timedelta(days=6 - n) for n in range(7)]
    with app.app_context():
        db.session.add(ClinicSettings(id=1, horizon_days=730))
        db.session.commit()
        weber = staff_user(staff.weber.email)
        mitte = make_location("Mitte", "A 1")
        kind = make_appointment_type("Spine evaluation", minutes=30)
        make_hours(weber, mitte, range(7), "08:00", "12:00")
        confirm("Fran Friday", weber, mitte, kind, sunday - timedelta(days=2), time(10))
        confirm("Sara Sunday", weber, mitte, kind, sunday, time(10))
        hold(
            kind.id,
            weber.id,
            mitte.id,
            from_clinic_local(sunday, time(11)),
            full_name="Hana Held",
            email="hana@example.com",
        )
    AuthActions(client).attempt("weber@example.com")
    page = agenda(client, date=week[2].isoformat(), view="week")

    assert columns(page) == [f"{day:%a} {day.day} {day:%b}" for day in week[:6]] + [
        f"Sun {sunday.day} Mar 23-hour day: the clocks go forward"
    ]
    friday_classes, friday = entry(page, "Fran Friday")
    sunday_classes, sunday_text = entry(page, "Sara Sunday")
    assert friday.startswith("10:00-10:30 ")  # 09:00 UTC
    assert sunday_text.startswith("10:00 CEST-10:30 CEST ")  # 08:00 UTC
    # The same wall-clock time on the same grid row (from 08:00: 10:00 starts line 25).
    assert "ag-from-25 ag-to-31" in friday_classes and "ag-from-25 ag-to-31" in sunday_classes
    held_classes, held = entry(page, "Hana Held")
    assert "agenda-held" in held_classes and "Held, not confirmed" in held
    assert held.startswith("11:00 CEST-11:30 CEST ")
    assert "ag-from-37 ag-to-43" in held_classes
    # Sunday's morning is whole: free from 08:00 CEST to the buffer before the appointment.
    assert "08:00 CEST-09:50 CEST · Free · Mitte" in [t for _c, t in entries(page)]
    assert "3 appointments (1 held, not confirmed)" in text(page)

    # The day itself, and the 25-hour Sunday of October.
    day = agenda(client, date=sunday.isoformat())
    assert "23-hour day" in day and "Sara Sunday" in day and "Fran Friday" not in day
    autumn = agenda(client, date=_last_sunday(sunday.year, 10).isoformat())
    assert "25-hour day: the clocks go back" in autumn
    assert "08:00 CET-12:00 CET · Free · Mitte" in [t for _c, t in entries(autumn)]


def test_a_specialist_lands_on_todays_agenda_after_signing_in(
    app: Flask, client: FlaskClient, staff: Staff, monkeypatch: pytest.MonkeyPatch
) -> None:
    with app.app_context():
        today = next_weeks_monday(clinic_today()) + timedelta(days=2)  # a Wednesday: open
    monkeypatch.setattr("booking.calendar.views.clinic_today", lambda: today)
    auth = AuthActions(client)
    response = auth.attempt("weber@example.com")
    assert response.status_code == 302 and response.headers["Location"] == "/staff/calendar"
    page = client.get("/staff/calendar").get_data(as_text=True)
    assert "<h1" in page and "Agenda:" in page
    assert f"col-{today.isoformat()}-{staff.weber.id}" in page  # today, theirs
    # Their staff home is the agenda too; the queue has its own address.
    home = client.get("/staff/")
    assert home.status_code == 302 and home.headers["Location"] == "/staff/calendar"
    assert client.get("/staff/queue").status_code == 200

    other = auth.new_client(email="coord@example.com")
    assert other.get("/staff/").status_code == 200  # the queue
    coordinator = client.application.test_client()
    assert auth.attempt("coord@example.com", client=coordinator).headers["Location"] == "/staff/"


@pytest.fixture
def weekdays_only(app: Flask, staff: Staff) -> date:
    """Dr. Weber works Monday to Friday, 08:00-12:00 at Mitte; the clinic's opening hours are
    not set (Monday to Friday). Gives a Sunday some weeks ahead."""
    with app.app_context():
        make_hours(staff_user(staff.weber.email), make_location("Mitte", "A 1"), range(5))
        db.session.commit()
        return next_weeks_monday(clinic_today()) + timedelta(days=13)


def test_the_agenda_opens_on_the_next_open_day_when_the_clinic_is_closed_today(
    app: Flask,
    client: FlaskClient,
    staff: Staff,
    weekdays_only: date,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Opened on a Sunday, the agenda shows Monday (Tuesday when Monday is a closed day), says
    the clinic is closed today and links today's agenda; with a date asked for, or extra hours
    today, it shows today."""
    sunday = weekdays_only
    monday, tuesday = sunday + timedelta(days=1), sunday + timedelta(days=2)
    monkeypatch.setattr("booking.calendar.views.clinic_today", lambda: sunday)
    AuthActions(client).attempt(staff.coordinator.email)

    page = agenda(client)
    assert f"col-{monday.isoformat()}-{staff.weber.id}" in page
    notice = "The clinic is closed today"
    assert notice in page and f"{sunday.day}" in text(page.split(notice)[1].split("</p>")[0])
    assert f'href="/staff/calendar?date={sunday.isoformat()}&amp;view=day' in page
    asked = agenda(client, date=sunday.isoformat())
    assert f"col-{sunday.isoformat()}-{staff.weber.id}" in asked and notice not in asked
    week = agenda(client, view="week")
    assert f"col-{monday.isoformat()}-{staff.weber.id}" in week  # the week it opens

    app.config["CLINIC_CLOSED_DAYS"] = monday.isoformat()
    assert f"col-{tuesday.isoformat()}-{staff.weber.id}" in agenda(client)

    # A specialist working extra hours on the Sunday opens their agenda on it.
    with app.app_context():
        weber = staff_user(staff.weber.email)
        add_extra_hours(
            weber,
            from_clinic_local(sunday, time(9)),
            from_clinic_local(sunday, time(12)),
            make_location("West", "B 2").id,
            "Sunday clinic",
            actor=None,
        )
        db.session.commit()
    specialist = app.test_client()
    AuthActions(specialist).attempt(staff.weber.email)
    page = agenda(specialist)
    assert f"col-{sunday.isoformat()}-{staff.weber.id}" in page and notice not in page


def test_the_agenda_css_has_a_class_for_every_grid_line() -> None:
    """The stylesheet is generated: it must be what the generator makes today."""
    css = Path(__file__).resolve().parent.parent / "booking/static/css/agenda.css"
    assert css.read_text() == grid_css()
    assert ".ag-from-289{grid-row-start:289}" in css.read_text()
    assert f".ag-lines-{MAX_CLAMP_LINES}{{-webkit-line-clamp:{MAX_CLAMP_LINES};" in css.read_text()


@pytest.mark.parametrize(
    ("minutes", "lines"), [(30, 2), (40, 3), (45, 3), (60, 5), (90, 7), (24 * 60, MAX_CLAMP_LINES)]
)
def test_a_longer_entry_is_cut_after_the_whole_lines_its_place_holds(
    minutes: int, lines: int
) -> None:
    """An entry's text is cut after the last whole line its height holds (grid lines of
    .45rem, lines of 1rem, less its frame): a 30-minute entry (2.7rem) holds two, not the
    upper half of a third."""
    moment = datetime(2026, 3, 2, 9, tzinfo=UTC)
    entry = Entry(EntryKind.FREE, moment, moment, first_line=1, end_line=1 + minutes // 5)
    assert entry.text_lines == lines


@pytest.fixture
def closed_tuesday(app_settings: dict[str, Any], next_monday: date) -> dict[str, Any]:
    """The clinic is closed on next week's Tuesday (CLINIC_CLOSED_DAYS); asked for before the
    app is made."""
    app_settings["CLINIC_CLOSED_DAYS"] = (next_monday + timedelta(days=1)).isoformat()
    return app_settings


def test_a_closed_day_has_no_hours_and_says_why(
    closed_tuesday: dict[str, Any], client: FlaskClient, monday: Day
) -> None:
    """On a day the clinic is closed the weekly hours do not apply: the agenda shows no free
    time, and its heading says the clinic is closed rather than leaving an empty column."""
    tuesday = monday.day + timedelta(days=1)
    AuthActions(client).attempt("weber@example.com")
    week = agenda(client, date=monday.day.isoformat(), view="week")
    headings = columns(week)
    [closed] = [h for h in headings if "Closed (a closed day in the clinic's settings)" in h]
    assert f"{tuesday.day}" in closed and tuesday.strftime("%a") in closed
    day = agenda(client, date=tuesday.isoformat())
    assert not [text for _classes, text in entries(day) if "Free" in text]
    assert "Free" in " ".join(
        text for _classes, text in entries(agenda(client, date=monday.day.isoformat()))
    )


def test_appointments_on_a_day_closed_after_they_were_booked_are_pointed_out(
    app: Flask, client: FlaskClient, monday: Day
) -> None:
    """A day closed once booked (CLINIC_CLOSED_DAYS changed, or a new public holiday) keeps
    its appointments: their patients would come to a closed clinic. The admins' scheduling
    page and the coordinators' agenda count them; extra hours for a specialist open the day
    for the appointments inside them; a specialist's own agenda is not nagged."""
    app.config["CLINIC_CLOSED_DAYS"] = monday.day.isoformat()  # after the fixture's bookings
    warning = "booked on days the clinic is closed"
    AuthActions(client).attempt("admin@example.com")
    overview = client.get("/staff/admin/scheduling/").get_data(as_text=True)
    assert "Appointments are booked on days the clinic is closed" in overview
    # Anna and Hugo with Dr. Weber, Ben with Dr. Okafor (Carl's was cancelled).
    assert "3 appointments booked" in overview
    assert warning in agenda(client, date=monday.day.isoformat())

    with app.app_context():
        add_extra_hours(
            staff_user("okafor@example.com"),
            from_clinic_local(monday.day, time(13)),
            from_clinic_local(monday.day, time(16)),
            monday.west,
            "Opens for Ben",
            actor=None,
        )
        db.session.commit()
    assert "2 appointments booked" in client.get("/staff/admin/scheduling/").get_data(as_text=True)
    specialist = app.test_client()
    AuthActions(specialist).attempt("weber@example.com")
    assert warning not in agenda(specialist, date=monday.day.isoformat())


def test_a_switched_off_specialists_agenda_opens_while_they_have_appointments_to_come(
    app: Flask, client: FlaskClient, monday: Day
) -> None:
    """Switching a specialist off says "the agenda shows" their appointments to come, which
    staff must move: their own agenda opens for that, and stops once nothing is left."""
    with app.app_context():
        admin = staff_user("admin@example.com")
        set_staff_active(staff_user("okafor@example.com"), False, actor=admin)
    AuthActions(client).attempt("coord@example.com")
    page = agenda(client, date=monday.day.isoformat(), specialist=monday.okafor)
    assert "Ben West" in text(page)
    with app.app_context():
        everyone = db.session.scalars(select(ConsultationRequest)).all()
        ben = next(r for r in everyone if r.patient.full_name == "Ben West")
        workflow.cancel_request(ben, staff_user("coord@example.com"))
    response = client.get(
        "/staff/calendar",
        query_string={"date": monday.day.isoformat(), "specialist": monday.okafor},
    )
    assert response.status_code == 404
    # Anyone else who is not a specialist is not found either.
    with app.app_context():
        coordinator_id = staff_user("coord@example.com").id
    assert (
        client.get("/staff/calendar", query_string={"specialist": coordinator_id}).status_code
        == 404
    )


def test_hours_to_24_00_fill_the_agenda_to_midnight(
    app: Flask, client: FlaskClient, staff: Staff
) -> None:
    """Dr. Weber on call round the clock, 00:00-24:00: her day is free to 24:00, the grid's
    hours run to 23:00-24:00, and the clinic's default day (``CLINIC_WORKING_HOURS``) may end
    at 24:00 too."""
    app.config["CLINIC_WORKING_HOURS"] = "00:00-24:00"
    with app.app_context():
        make_hours(
            staff_user(staff.weber.email), make_location("Mitte", "A 1"), range(7), "00:00", "24:00"
        )
        day = next_weeks_monday(clinic_today())
    AuthActions(client).attempt("weber@example.com")
    page = agenda(client, date=day.isoformat())
    assert [text for _classes, text in entries(page)] == ["00:00-24:00 · Free · Mitte"]
    hours = re.findall(r'<div class="agenda-hour[^"]*">([^<]*)</div>', page)
    assert (hours[0], hours[-1], len(hours)) == ("00:00", "23:00", 24)


def test_the_buffer_of_an_appointment_ending_at_midnight_is_not_shown_free_the_next_day(
    app: Flask, client: FlaskClient, staff: Staff
) -> None:
    """Dr. Weber works 00:00-24:00 and sees Anna 23:45-24:00 on Monday: the clinic's 10-minute
    buffer after it takes Tuesday 00:00-00:10 (booking refuses 00:00), so Tuesday's agenda is
    free from 00:10, without Anna as one of Tuesday's appointments. Dr. Okafor, switched off
    with Ben at the same time, gets no column on Tuesday for it."""
    with app.app_context():
        weber, okafor = staff_user(staff.weber.email), staff_user(staff.okafor.email)
        mitte = make_location("Mitte", "A 1")
        kind = make_appointment_type("Short review", minutes=15)
        make_hours(weber, mitte, range(7), "00:00", "24:00")
        make_hours(okafor, mitte, range(7), "00:00", "24:00")
        monday = next_weeks_monday(clinic_today())
        confirm("Anna Late", weber, mitte, kind, monday, time(23, 45))
        confirm("Ben Late", okafor, mitte, kind, monday, time(23, 45))
        set_staff_active(okafor, False, actor=staff_user("admin@example.com"))
    tuesday = (monday + timedelta(days=1)).isoformat()

    AuthActions(client).attempt("weber@example.com")
    page = agenda(client, date=tuesday)
    assert [text for _classes, text in entries(page)] == ["00:10-24:00 · Free · Mitte"]
    assert "0 appointments ·" in text(page) and "Anna Late" not in page
    # Monday still shows Anna, to 24:00, as its one appointment.
    page = agenda(client, date=monday.isoformat())
    assert entry(page, "Anna Late")[1].startswith("23:45-24:00 ")
    assert "1 appointment ·" in text(page)

    AuthActions(client).logout()
    AuthActions(client).attempt("coord@example.com")
    page = agenda(client, date=tuesday)
    assert columns(page) == ["Dr. Weber"]
    assert [text for _classes, text in entries(page)] == ["00:10-24:00 · Free · Mitte"]
    assert "0 appointments ·" in text(page) and "Ben Late" not in page


def _slot_ends(kind: Any, specialist: Any, start: datetime, end: datetime) -> list[str]:
    """The clinic wall-clock ends ("09:50") of the slots booking offers starting in
    [start, end), as a patient would be offered them."""
    from booking.timeutil import to_clinic_tz

    return [
        f"{to_clinic_tz(slot.ends_at):%H:%M}"
        for slot in open_slots(kind, start, end, specialist_id=specialist.id)
    ]


def test_the_buffer_before_an_appointment_is_not_shown_free(
    app: Flask, client: FlaskClient, staff: Staff
) -> None:
    """Dr. Weber works 08:00-12:00 and sees Anna at 10:00, the clinic's buffer 10 minutes:
    booking ends no slot after 09:50 (``open_slots`` keeps the buffer before an appointment
    too), so the agenda's free time ends at 09:50, not at 10:00, and 09:50-10:00 is blank."""
    with app.app_context():
        weber = staff_user(staff.weber.email)
        mitte = make_location("Mitte", "A 1")
        kind = make_appointment_type("Spine evaluation", minutes=30)
        short = make_appointment_type("Short review", minutes=20)
        make_hours(weber, mitte, range(7), "08:00", "12:00")
        monday = next_weeks_monday(clinic_today())
        confirm("Anna Mitte", weber, mitte, kind, monday, time(10))
        # What booking offers before Anna: a 20-minute slot at 09:30 ends at 09:50, the
        # agenda's last free minute; the next one (09:45-10:05) is refused.
        morning = _slot_ends(
            short,
            weber,
            from_clinic_local(monday, time(9)),
            from_clinic_local(monday, time(10)),
        )
    assert morning == ["09:20", "09:35", "09:50"]

    AuthActions(client).attempt("weber@example.com")
    page = agenda(client, date=monday.isoformat())
    assert [text for _classes, text in entries(page)] == [
        "08:00-09:50 · Free · Mitte",
        "10:00-10:30 · Confirmed · Anna Mitte · Spine evaluation · Mitte",
        "10:40-12:00 · Free · Mitte",
    ]
    assert "1 appointment ·" in text(page)


def test_the_buffer_before_an_appointment_at_midnight_is_not_shown_free_the_day_before(
    app: Flask, client: FlaskClient, staff: Staff
) -> None:
    """Dr. Weber works 00:00-24:00 and sees Anna at 00:00 on Tuesday: the clinic's 10-minute
    buffer before it takes Monday 23:50-24:00 (booking ends no slot after 23:50), so Monday's
    agenda is free to 23:50, without Anna as one of Monday's appointments. Dr. Okafor,
    switched off with Ben at the same time, gets no column on Monday for it. The week shows
    both."""
    with app.app_context():
        weber, okafor = staff_user(staff.weber.email), staff_user(staff.okafor.email)
        mitte = make_location("Mitte", "A 1")
        kind = make_appointment_type("Short review", minutes=20)
        make_hours(weber, mitte, range(7), "00:00", "24:00")
        make_hours(okafor, mitte, range(7), "00:00", "24:00")
        monday = next_weeks_monday(clinic_today())
        tuesday = monday + timedelta(days=1)
        confirm("Anna Early", weber, mitte, kind, tuesday, time(0))
        confirm("Ben Early", okafor, mitte, kind, tuesday, time(0))
        set_staff_active(okafor, False, actor=staff_user("admin@example.com"))
        evening = _slot_ends(
            kind, weber, from_clinic_local(monday, time(23)), from_clinic_local(tuesday, time())
        )
    assert evening == ["23:20", "23:35", "23:50"]

    AuthActions(client).attempt("weber@example.com")
    page = agenda(client, date=monday.isoformat())
    assert [text for _classes, text in entries(page)] == ["00:00-23:50 · Free · Mitte"]
    assert "0 appointments ·" in text(page) and "Anna Early" not in page
    page = agenda(client, date=tuesday.isoformat())
    assert entry(page, "Anna Early")[1].startswith("00:00-00:20 ")
    assert "1 appointment ·" in text(page)
    week = [t for _c, t in entries(agenda(client, date=monday.isoformat(), view="week"))]
    assert week[0] == "00:00-23:50 · Free · Mitte" and week[2] == "00:30-24:00 · Free · Mitte"
    assert week[1].startswith("00:00-00:20 Anna Early ")

    AuthActions(client).logout()
    AuthActions(client).attempt("coord@example.com")
    page = agenda(client, date=monday.isoformat())
    assert columns(page) == ["Dr. Weber"]
    assert [text for _classes, text in entries(page)] == ["00:00-23:50 · Free · Mitte"]
    assert "0 appointments ·" in text(page) and "Ben Early" not in page


def test_a_short_entry_cut_to_one_line_gives_its_whole_text_as_its_title(
    app: Flask, client: FlaskClient, staff: Staff
) -> None:
    """A short entry (under 30 minutes) is one line, cut with an ellipsis in a week's narrow
    column: "10:00 Anna Short · Confirmed · Sh..." hid the place and the end. Its title
    gives the whole (time, patient, status, type, place); a long entry, shown whole on its
    lines, has none."""
    with app.app_context():
        weber = staff_user(staff.weber.email)
        west = make_location("Spine centre west", "A 1")
        short = make_appointment_type("Short review", minutes=20)
        long = make_appointment_type("Spine evaluation", minutes=60)
        make_hours(weber, west, range(7), "08:00", "12:00")
        monday = next_weeks_monday(clinic_today())
        confirm("Anna Short", weber, west, short, monday, time(10))
        confirm("Ben Long", weber, west, long, monday, time(8))
    AuthActions(client).attempt("weber@example.com")
    page = agenda(client, date=monday.isoformat(), view="week")
    titles = dict(
        (text(body), html_lib.unescape(title))
        for title, body in re.findall(
            r'<li class="agenda-entry [^"]*" title="([^"]*)">(.*?)</li>', page, re.S
        )
    )
    assert titles["10:00-10:20 Anna Short · Confirmed · Short review · Spine centre west"] == (
        "10:00\N{EN DASH}10:20 Anna Short · Confirmed · Short review · Spine centre west"
    )
    assert not [body for body in titles if "Ben Long" in body]
