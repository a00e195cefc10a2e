"""The scheduling admin pages, used as an admin would: booking rules, appointment types, weekly
hours and exceptions, each checked through the slots the patient's picker then offers.

Forms are posted like a browser (CSRF token read from the page, the pressed button's name).
Dates are relative to today because the picker offers times from now on.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from html.parser import HTMLParser
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import delete, func, select
from werkzeug.test import TestResponse

from booking.audit.models import AuditEvent
from booking.extensions import db
from booking.scheduling import admin_services
from booking.scheduling.admin_services import add_extra_hours, add_time_off
from booking.scheduling.models import (
    Appointment,
    AppointmentType,
    ClinicSettings,
    Location,
    ScheduleException,
    WorkingHours,
)
from booking.scheduling.services import SlotChoice
from booking.staff.models import StaffUser
from booking.timeutil import clinic_date
from tests.factories import (
    make_appointment_type,
    make_hours,
    make_location,
    make_request,
    staff_user,
)
from tests.support import (
    AuthActions,
    Staff,
    checked_radios,
    clock_change_ahead,
    csrf_token,
    field_error,
    first_open_slot,
    page_token,
    text,
)

BERLIN = ZoneInfo("Europe/Berlin")
OVERVIEW = "/staff/admin/scheduling/"
SLOT_RE = re.compile(r'name="slot" id="slot-(\d+)\.(\d+)\.(\d+)"')


# Helpers ------------------------------------------------------------------------------------


def schedule_path(specialist_id: int) -> str:
    return f"/staff/admin/scheduling/specialists/{specialist_id}"


def today() -> date:
    return datetime.now(BERLIN).date()


def target_day() -> date:
    """A day inside the picker's two weeks and beyond the default minimum notice."""
    return today() + timedelta(days=7)


def berlin(day: date, hhmm: str) -> datetime:
    """A Berlin wall-clock time as aware UTC (computed here, independently of the app)."""
    return datetime.combine(day, time.fromisoformat(hhmm), tzinfo=BERLIN).astimezone(UTC)


def submit(client: FlaskClient, path: str, prefix: str, **fields: Any) -> TestResponse:
    """Post one of the page's forms as a browser does: its ticked options, its fields, its
    token, its button."""
    page = client.get(path).get_data(as_text=True)
    data = {
        **checked_radios(page, f"{prefix}-"),
        f"{prefix}-csrf_token": page_token(page),
        f"{prefix}-submit": "pressed",
        **{f"{prefix}-{name}": value for name, value in fields.items()},
    }
    return client.post(path, data=data)


def press(client: FlaskClient, path: str, **fields: str) -> TestResponse:
    """A row's button (deactivate, delete) and, when it asks, its confirmation page's: the
    page's CSRF token and hidden fields."""
    token = csrf_token(client, OVERVIEW)
    return client.post(path, data={"csrf_token": token, "confirmed": "1", **fields})


def offered(client: FlaskClient, type_id: int, specialist_id: int, day: date) -> list[str]:
    """The clinic times (HH:MM) the patient's picker offers with that specialist on a day."""
    page = client.get(
        "/request/time",
        query_string={"type": type_id, "specialist": specialist_id, "day": day.isoformat()},
    )
    assert page.status_code == 200
    times = []
    for sid, _lid, epoch in SLOT_RE.findall(page.get_data(as_text=True)):
        local = datetime.fromtimestamp(int(epoch), tz=UTC).astimezone(BERLIN)
        if int(sid) == specialist_id and local.date() == day:
            times.append(local.strftime("%H:%M"))
    return sorted(times)


def starts(first: str, last: str) -> list[str]:
    """Every quarter hour from ``first`` to ``last`` inclusive."""
    at = datetime.combine(date(2000, 1, 1), time.fromisoformat(first))
    end = datetime.combine(date(2000, 1, 1), time.fromisoformat(last))
    out = []
    while at <= end:
        out.append(at.strftime("%H:%M"))
        at += timedelta(minutes=15)
    return out


def error_summary(page: str) -> str:
    match = re.search(r'id="error-summary".*?</ul>', page, re.S)
    assert match, "no error summary on the page"
    return text(match.group(0))


def input_value(page: str, field_id: str) -> str:
    match = re.search(rf'<input[^>]*id="{re.escape(field_id)}"[^>]*>', page)
    assert match, f"no input {field_id}"
    value = re.search(r'value="([^"]*)"', match.group(0))
    return html.unescape(value.group(1)) if value else ""


def audits(app: Flask, action: str) -> list[AuditEvent]:
    with app.app_context():
        rows = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
        ).all()
        db.session.expunge_all()
        return list(rows)


def count(app: Flask, model: type) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model)) or 0


def add_hours(clinic: Place, weekdays: list[int] | range = range(7)) -> None:
    """Dr. Weber's weekly hours, 08:00-18:00 at the main clinic (inside an app context)."""
    make_hours(
        db.session.get(StaffUser, clinic.weber.id),
        db.session.get(Location, clinic.location),
        weekdays=weekdays,
        start="08:00",
        end="18:00",
    )


def book(clinic: Place, type_id: int, starts_at: datetime) -> None:
    """A booked 45-minute appointment with Dr. Weber, blocked for 10 minutes after it (inside an
    app context)."""
    consultation = make_request()
    db.session.add(
        Appointment(
            request_id=consultation.id,
            specialist_id=clinic.weber.id,
            location_id=clinic.location,
            appointment_type_id=type_id,
            starts_at=starts_at,
            ends_at=starts_at + timedelta(minutes=45),
            blocked_until=starts_at + timedelta(minutes=55),
            uid=f"test-{starts_at.timestamp()}@example.com",
        )
    )
    db.session.commit()


@dataclass(frozen=True)
class Place(Staff):
    """The staff and one location: no appointment type and no hours yet."""

    location: int


@pytest.fixture
def clinic(app: Flask, staff: Staff) -> Place:
    with app.app_context():
        return Place(**vars(staff), location=make_location().id)


@pytest.fixture
def admin_client(auth: AuthActions, clinic: Place) -> FlaskClient:
    auth.login("admin")
    return auth.client


@pytest.fixture
def evaluation(app: Flask, clinic: Place) -> int:
    """A 45-minute appointment type."""
    with app.app_context():
        return make_appointment_type(minutes=45).id


# Access -------------------------------------------------------------------------------------


@pytest.mark.parametrize("role_email", ["coord@example.com", "weber@example.com"])
def test_only_admins_reach_the_pages(
    app: Flask, clinic: Place, evaluation: int, role_email: str
) -> None:
    with app.app_context():  # one row to try deleting
        add_hours(clinic, weekdays=[0])
        row_id = db.session.scalar(select(WorkingHours.id))
    client = app.test_client()
    # Signed out: sent to sign in.
    response = client.get(OVERVIEW)
    assert response.status_code == 302 and "/staff/login" in response.headers["Location"]

    AuthActions(client).login(email=role_email)
    token = csrf_token(client, "/staff/queue")
    weber_page = schedule_path(clinic.weber.id)
    assert client.get(OVERVIEW).status_code == 403
    assert client.get(weber_page).status_code == 403
    posts = [
        (OVERVIEW, {"rules-submit": "x", "rules-buffer_minutes": "0"}),
        (f"/staff/admin/scheduling/types/{evaluation}/active", {"active": "0"}),
        (weber_page, {"hours-submit": "x", "hours-weekday": "1"}),
        (f"{weber_page}/hours/{row_id}/delete", {}),
    ]
    for path, data in posts:
        assert client.post(path, data={"csrf_token": token, **data}).status_code == 403
    assert count(app, WorkingHours) == 1
    assert count(app, ClinicSettings) == 0
    assert not audits(app, "booking_rules_updated")

    # The nav shows the page to admins only.
    assert "/staff/admin/scheduling/" not in client.get("/staff/").get_data(as_text=True)


def test_admin_sees_the_nav_link_and_specialists(admin_client: FlaskClient, clinic: dict) -> None:
    page = admin_client.get("/staff/").get_data(as_text=True)
    assert 'href="/staff/admin/scheduling/"' in page
    overview = admin_client.get(OVERVIEW).get_data(as_text=True)
    assert f'href="{schedule_path(clinic.weber.id)}"' in overview
    assert "no weekly hours yet" in overview
    # Only specialists have a schedule page.
    assert admin_client.get(schedule_path(clinic.admin.id)).status_code == 404
    assert admin_client.get(schedule_path(99999)).status_code == 404


def test_the_overview_does_not_count_hours_at_a_closed_location_as_set_up(
    app: Flask, admin_client: FlaskClient, clinic: Place
) -> None:
    """A specialist whose weekly hours are all at a location since closed: the overview said
    "7 weekly hours rows", as if patients could book them, while the picker offers nothing."""
    with app.app_context():
        add_hours(clinic)
        other = make_location(name="Annex").id
        make_hours(
            db.session.get(StaffUser, clinic.okafor.id),
            db.session.get(Location, other),
            weekdays=[0, 1],
            start="08:00",
            end="12:00",
        )
        make_hours(
            db.session.get(StaffUser, clinic.okafor.id),
            db.session.get(Location, clinic.location),
            weekdays=[2],
            start="08:00",
            end="12:00",
        )

    def listed(specialist_id: int) -> str:
        page = admin_client.get(OVERVIEW).get_data(as_text=True)
        link = f'href="{schedule_path(specialist_id)}"'
        return text(page[page.index(link) : page.index("</li>", page.index(link))])

    assert listed(clinic.weber.id).endswith("7 weekly hours rows")
    press(admin_client, f"/staff/admin/locations/{clinic.location}/active", active="0")
    assert listed(clinic.weber.id).endswith(
        "7 weekly hours rows, all at closed locations: patients are offered no time"
    )
    assert listed(clinic.okafor.id).endswith(
        "2 weekly hours rows, and 1 at a closed location (not offered)"
    )


def test_patients_are_not_offered_a_specialist_whose_hours_are_all_at_a_closed_place(
    app: Flask, admin_client: FlaskClient, clinic: Place, evaluation: int
) -> None:
    """Closing a location: its specialist stayed in the picker's menu, and a patient choosing
    them was shown no time in any week."""
    with app.app_context():
        add_hours(clinic)
        annex = make_location(name="Annex").id
        make_hours(
            db.session.get(StaffUser, clinic.okafor.id),
            db.session.get(Location, annex),
            start="08:00",
            end="12:00",
        )

    def menu() -> list[str]:
        page = admin_client.get("/request/time", query_string={"type": evaluation})
        match = re.search(
            r'<select[^>]*id="specialist".*?</select>', page.get_data(as_text=True), re.S
        )
        assert match, "no specialist menu"
        return re.findall(r'<option dir="auto" value="(\d+)"', match.group(0))

    assert menu() == [str(clinic.okafor.id), str(clinic.weber.id)]
    press(admin_client, f"/staff/admin/locations/{clinic.location}/active", active="0")
    assert offered(admin_client, evaluation, clinic.weber.id, target_day()) == []
    assert menu() == [str(clinic.okafor.id)]
    press(admin_client, f"/staff/admin/locations/{clinic.location}/active", active="1")
    assert menu() == [str(clinic.okafor.id), str(clinic.weber.id)]


def test_a_specialist_working_extra_hours_only_can_be_chosen(
    app: Flask, admin_client: FlaskClient, clinic: Place, evaluation: int
) -> None:
    """A locum with extra hours and no weekly hours: their times were offered under "First
    available", but patients could not choose them in the specialist menu, and a link naming
    them showed everyone's times."""
    day = target_day()
    with app.app_context():
        add_hours(clinic)
    iso = day.isoformat()
    extra = {"start_day": iso, "end_day": iso, "start_time": "09:00", "end_time": "12:00"}
    path = schedule_path(clinic.okafor.id)
    assert (
        submit(admin_client, path, "extra", location=str(clinic.location), **extra).status_code
        == 302
    )

    page = admin_client.get(
        "/request/time", query_string={"type": evaluation, "specialist": clinic.okafor.id}
    ).get_data(as_text=True)
    menu = re.search(r'<select[^>]*id="specialist".*?</select>', page, re.S)
    assert menu, "no specialist menu"
    assert f'<option dir="auto" value="{clinic.okafor.id}" selected>' in menu.group(0)
    assert offered(admin_client, evaluation, clinic.okafor.id, day)[0] == "09:00"


# Booking rules ------------------------------------------------------------------------------


def test_saving_rules_creates_the_row_audits_and_changes_open_slots(
    app: Flask, admin_client: FlaskClient, clinic: Place, evaluation: int
) -> None:
    day = target_day()
    with app.app_context():
        add_hours(clinic, weekdays=[day.weekday()])
        # A booked appointment 10:00-10:45 (blocked until 10:55 with the default buffer).
        book(clinic, evaluation, berlin(day, "10:00"))

    # Before any save: the defaults, shown in the form, and no settings row.
    page = admin_client.get(OVERVIEW).get_data(as_text=True)
    assert "No rules saved yet" in page
    assert [
        input_value(page, f"rules-{name}")
        for name in ("buffer_minutes", "min_notice_hours", "horizon_days", "cancel_notice_hours")
    ] == ["10", "24", "60", "24"]
    assert count(app, ClinicSettings) == 0

    before = offered(admin_client, evaluation, clinic.weber.id, day)
    # 09:00-09:45 plus 10 minutes ends before 10:00; 11:00 starts after the block.
    assert "09:00" in before and "09:15" not in before and "11:00" in before

    response = submit(
        admin_client,
        OVERVIEW,
        "rules",
        buffer_minutes="30",
        min_notice_hours="24",
        horizon_days="60",
        cancel_notice_hours="48",
    )
    assert response.status_code == 302
    saved = admin_client.get(OVERVIEW).get_data(as_text=True)
    assert "Booking rules saved." in saved
    # Bookable from 24 hours ahead, changeable until 48 hours before: the admin is told.
    assert "a time booked less than 48 hours ahead can never be changed online" in saved
    with app.app_context():
        settings = db.session.get(ClinicSettings, 1)
        assert settings is not None
        assert (settings.buffer_minutes, settings.cancel_notice_hours) == (30, 48)
    (audit,) = audits(app, "booking_rules_updated")
    assert audit.actor_email == "admin@example.com"
    assert audit.target_type == "clinic_settings"
    # The first save: every rule as saved, changed or not.
    assert audit.details == {
        "buffer_minutes": {"before": 10, "after": 30},
        "min_notice_hours": {"before": 24, "after": 24},
        "horizon_days": {"before": 60, "after": 60},
        "cancel_notice_hours": {"before": 24, "after": 48},
    }

    after = offered(admin_client, evaluation, clinic.weber.id, day)
    # With 30 minutes kept free, 09:00 (ends 09:45) now runs into the 10:00 appointment, and
    # 11:00 starts 15 minutes after it ends, though it was booked with 10 minutes' buffer.
    assert "09:00" not in after and "08:45" in after
    assert "11:00" not in after and "11:15" in after

    # A shorter horizon takes the day out of reach altogether; the second save updates row 1.
    assert (
        submit(
            admin_client,
            OVERVIEW,
            "rules",
            buffer_minutes="30",
            min_notice_hours="24",
            horizon_days="2",
            cancel_notice_hours="48",
        ).status_code
        == 302
    )
    assert offered(admin_client, evaluation, clinic.weber.id, day) == []
    assert count(app, ClinicSettings) == 1
    assert audits(app, "booking_rules_updated")[-1].details == {
        "horizon_days": {"before": 60, "after": 2}
    }


def test_the_first_save_of_the_default_rules_is_audited_and_a_later_unchanged_one_is_not(
    app: Flask, admin_client: FlaskClient
) -> None:
    defaults = {
        "buffer_minutes": "10",
        "min_notice_hours": "24",
        "horizon_days": "60",
        "cancel_notice_hours": "24",
    }
    assert submit(admin_client, OVERVIEW, "rules", **defaults).status_code == 302
    assert count(app, ClinicSettings) == 1
    assert "No rules saved yet" not in admin_client.get(OVERVIEW).get_data(as_text=True)
    (audit,) = audits(app, "booking_rules_updated")
    assert audit.actor_email == "admin@example.com"
    assert audit.details == {
        name: {"before": int(value), "after": int(value)} for name, value in defaults.items()
    }

    # Saved again as they are, nothing changed: nothing to audit.
    assert submit(admin_client, OVERVIEW, "rules", **defaults).status_code == 302
    assert len(audits(app, "booking_rules_updated")) == 1


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("buffer_minutes", "241", "Please enter a number from 0 to 240."),
        ("buffer_minutes", "-1", "Please enter a number from 0 to 240."),
        ("horizon_days", "0", "Please enter a number from 1 to 730."),
        ("min_notice_hours", "ten", "Please enter a whole number, like 15."),
        ("min_notice_hours", "1.5", "Please enter a whole number, like 15."),
        ("cancel_notice_hours", "", "Please enter a number."),
        ("cancel_notice_hours", "9" * 40, "Please enter a number from 0 to 720."),
    ],
)
def test_bad_rules_are_refused_next_to_the_field_and_kept(
    app: Flask, admin_client: FlaskClient, field: str, value: str, message: str
) -> None:
    values = {
        "buffer_minutes": "15",
        "min_notice_hours": "12",
        "horizon_days": "30",
        "cancel_notice_hours": "24",
    }
    values[field] = value
    response = submit(admin_client, OVERVIEW, "rules", **values)
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert field_error(page, f"rules-{field}") == f"Error: {message}"
    assert message in error_summary(page)
    assert input_value(page, f"rules-{field}") == value
    assert input_value(page, "rules-buffer_minutes") == values["buffer_minutes"]
    assert count(app, ClinicSettings) == 0
    assert not audits(app, "booking_rules_updated")


def test_rules_that_would_leave_no_time_to_book_are_refused(
    app: Flask, admin_client: FlaskClient
) -> None:
    """Booking at most 1 day ahead but at least 30 days ahead: each rule is within its range,
    together they offer patients nothing at all."""
    values = {"buffer_minutes": "10", "min_notice_hours": "720", "horizon_days": "1",
              "cancel_notice_hours": "24"}  # fmt: skip
    response = submit(admin_client, OVERVIEW, "rules", **values)
    assert response.status_code == 422
    message = field_error(response.get_data(as_text=True), "rules-horizon_days")
    assert "no time would be left to offer" in message
    assert count(app, ClinicSettings) == 0 and not audits(app, "booking_rules_updated")
    # A day ahead with 23 hours' notice still leaves an hour.
    values["min_notice_hours"] = "23"
    assert submit(admin_client, OVERVIEW, "rules", **values).status_code == 302


# Appointment types --------------------------------------------------------------------------


def test_admin_adds_deactivates_and_reactivates_a_type(
    app: Flask, admin_client: FlaskClient, clinic: Place
) -> None:
    with app.app_context():
        add_hours(clinic)
    # No type yet: the patient goes straight to the request form.
    assert admin_client.get("/request/time").status_code == 302

    response = submit(
        admin_client, OVERVIEW, "type", name="  Follow-up   visit ", duration_minutes="30"
    )
    assert response.status_code == 302
    page = admin_client.get(OVERVIEW).get_data(as_text=True)
    assert "Appointment type <bdi>Follow-up visit</bdi> added." in page
    assert "30 minutes" in page
    with app.app_context():
        (created,) = db.session.scalars(select(AppointmentType)).all()
        assert (created.name, created.duration_minutes, created.active) == (
            "Follow-up visit",
            30,
            True,
        )
        type_id = created.id
    picker = admin_client.get("/request/time")
    assert picker.status_code == 200 and "Follow-up visit" in picker.get_data(as_text=True)
    assert offered(admin_client, type_id, clinic.weber.id, target_day())
    (audit,) = audits(app, "appointment_type_created")
    assert audit.target_id == str(type_id)
    assert audit.details == {
        "active": {"before": None, "after": True},
        "duration_minutes": {"before": None, "after": 30},
        "mode": {"before": None, "after": "in_person"},
        "name": {"before": None, "after": "Follow-up visit"},
    }

    # The same name in other letters is refused, and what was typed stays.
    response = submit(admin_client, OVERVIEW, "type", name="FOLLOW-UP VISIT", duration_minutes="20")
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "already exists" in field_error(page, "type-name")
    assert input_value(page, "type-name") == "FOLLOW-UP VISIT"
    assert input_value(page, "type-duration_minutes") == "20"
    assert count(app, AppointmentType) == 1

    toggle = f"/staff/admin/scheduling/types/{type_id}/active"
    assert press(admin_client, toggle, active="0").status_code == 302
    stopped = admin_client.get(OVERVIEW).get_data(as_text=True)
    assert "can no longer book" in stopped
    assert "still to come" not in stopped  # none booked: nothing to warn of
    assert admin_client.get("/request/time").status_code == 302
    assert press(admin_client, toggle, active="1").status_code == 302
    assert admin_client.get("/request/time").status_code == 200
    assert [a.details for a in audits(app, "appointment_type_updated")] == [
        {"active": {"before": True, "after": False}},
        {"active": {"before": False, "after": True}},
    ]
    assert press(admin_client, "/staff/admin/scheduling/types/9999/active").status_code == 404


@pytest.mark.parametrize(
    ("form", "field_id", "fields", "message"),
    [
        (
            "type",
            "type-duration_minutes",
            {"name": "Visit"},
            "Please enter the duration in minutes.",
        ),
        (
            "rules",
            "rules-cancel_notice_hours",
            {"buffer_minutes": "15", "min_notice_hours": "12", "horizon_days": "30"},
            "Please enter a number.",
        ),
    ],
)
def test_a_number_of_only_spaces_is_said_once_as_missing(
    admin_client: FlaskClient, form: str, field_id: str, fields: dict, message: str
) -> None:
    """Spaces alone read as an empty box: one message, not "a whole number" and "a number
    from ... to ..." on top."""
    name = field_id.split("-", 1)[1]
    response = submit(admin_client, OVERVIEW, form, **fields, **{name: "   "})
    assert response.status_code == 422
    assert field_error(response.get_data(as_text=True), field_id) == f"Error: {message}"


@pytest.mark.parametrize(
    ("fields", "field_id", "message"),
    [
        ({"name": "", "duration_minutes": "30"}, "type-name", "Please enter a name."),
        ({"name": "   ", "duration_minutes": "30"}, "type-name", "Please enter a name."),
        ({"name": "x" * 121, "duration_minutes": "30"}, "type-name", "at most 120 characters"),
        ({"name": "Visit", "duration_minutes": "4"}, "type-duration_minutes", "from 5 to 480"),
        ({"name": "Visit", "duration_minutes": "481"}, "type-duration_minutes", "from 5 to 480"),
        ({"name": "Visit", "duration_minutes": "half an hour"}, "type-duration_minutes", "45"),
        ({"name": "Visit"}, "type-duration_minutes", "Please enter the duration in minutes."),
    ],
)
def test_bad_types_are_refused(
    app: Flask, admin_client: FlaskClient, fields: dict, field_id: str, message: str
) -> None:
    response = submit(admin_client, OVERVIEW, "type", **fields)
    assert response.status_code == 422
    assert message in field_error(response.get_data(as_text=True), field_id)
    assert count(app, AppointmentType) == 0


def test_control_characters_in_a_name_are_refused(app: Flask, admin_client: FlaskClient) -> None:
    response = submit(admin_client, OVERVIEW, "type", name="Vis\x00it\x07", duration_minutes="30")
    assert response.status_code == 422
    message = "Please remove the line breaks or invisible characters."
    assert message in field_error(response.get_data(as_text=True), "type-name")
    assert count(app, AppointmentType) == 0


# Weekly working hours -----------------------------------------------------------------------


def test_weekly_hours_make_the_picker_offer_that_specialist(
    app: Flask, admin_client: FlaskClient, clinic: Place, evaluation: int
) -> None:
    day = target_day()
    path = schedule_path(clinic.weber.id)
    picker = admin_client.get(f"/request/time?type={evaluation}").get_data(as_text=True)
    assert "Dr. Weber" not in picker  # no hours, not offered

    response = submit(
        admin_client,
        path,
        "hours",
        weekday=str(day.weekday()),
        location=str(clinic.location),
        start_time="09:00",
        end_time="12:00",
    )
    assert response.status_code == 302 and response.headers["Location"].endswith(path)
    page = admin_client.get(path).get_data(as_text=True)
    assert "Working hours added." in page and "09:00" in page and "12:00" in page
    assert "Dr. Weber" in admin_client.get("/request/time").get_data(as_text=True)
    # A 45-minute appointment: the last start is 11:15.
    assert offered(admin_client, evaluation, clinic.weber.id, day) == starts("09:00", "11:15")

    # More hours the same day (another block, "HH:MM:SS" as some browsers send) add slots.
    assert (
        submit(
            admin_client,
            path,
            "hours",
            weekday=str(day.weekday()),
            location=str(clinic.location),
            start_time="14:00:00",
            end_time="16:00",
        ).status_code
        == 302
    )
    assert offered(admin_client, evaluation, clinic.weber.id, day) == starts(
        "09:00", "11:15"
    ) + starts("14:00", "15:15")

    with app.app_context():
        rows = db.session.scalars(select(WorkingHours).order_by(WorkingHours.start_time)).all()
        assert [(r.weekday, r.start_time, r.end_time) for r in rows] == [
            (day.weekday(), time(9), time(12)),
            (day.weekday(), time(14), time(16)),
        ]
        morning_id, afternoon_id = rows[0].id, rows[1].id

    # Deleting the morning takes its slots away.
    response = press(admin_client, f"{path}/hours/{morning_id}/delete")
    assert response.status_code == 302
    assert offered(admin_client, evaluation, clinic.weber.id, day) == starts("14:00", "15:15")

    added = audits(app, "working_hours_added")
    assert [a.target_id for a in added] == [str(morning_id), str(afternoon_id)]
    assert added[0].details == {
        "end_time": {"before": None, "after": "12:00:00"},
        "location_id": {"before": None, "after": clinic.location},
        "specialist_id": {"before": None, "after": clinic.weber.id},
        "start_time": {"before": None, "after": "09:00:00"},
        "weekday": {"before": None, "after": day.weekday()},
    }
    (deleted,) = audits(app, "working_hours_deleted")
    assert deleted.target_id == str(morning_id)
    assert deleted.details["start_time"] == {"before": "09:00:00", "after": None}
    assert deleted.details["weekday"] == {"before": day.weekday(), "after": None}


def test_hours_to_24_00_run_to_midnight_and_read_back_as_24_00(
    app: Flask, admin_client: FlaskClient, clinic: Place, evaluation: int
) -> None:
    """A specialist on call round the clock works 00:00-24:00: 24:00 (ISO 8601) is the end
    of the day, accepted as an end only. The picker offers times up to the last that ends at
    midnight, and the page, the form and the audit say 24:00 back."""
    day = target_day()
    path = schedule_path(clinic.weber.id)
    hours = {"weekday": str(day.weekday()), "location": str(clinic.location)}
    response = submit(admin_client, path, "hours", **hours, start_time="00:00", end_time="24:00")
    assert response.status_code == 302
    page = admin_client.get(path).get_data(as_text=True)
    assert "<td>00:00</td><td>24:00</td>" in page
    times = offered(admin_client, evaluation, clinic.weber.id, day)
    assert (times[0], times[-1]) == ("00:00", "23:15")  # 45 minutes: 23:15-24:00
    (added,) = audits(app, "working_hours_added")
    assert added.details["end_time"] == {"before": None, "after": "24:00:00"}

    # Typed again (it overlaps), the form keeps 24:00 and the message says it.
    response = submit(admin_client, path, "hours", **hours, start_time="20:00", end_time="24:00")
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert input_value(page, "hours-end_time") == "24:00"
    assert "from 00:00 to 24:00" in field_error(page, "hours-start_time")

    # 24:00 starts no hours; nor is 24:30 a time.
    for start, end in (("24:00", "24:00"), ("22:00", "24:30")):
        response = submit(admin_client, path, "hours", **hours, start_time=start, end_time=end)
        assert response.status_code == 422
        problem = "hours-start_time" if start == "24:00" else "hours-end_time"
        assert "Please enter a time as hours and minutes" in field_error(
            response.get_data(as_text=True), problem
        )
    assert count(app, WorkingHours) == 1


def test_overlapping_hours_are_refused_with_a_message(
    app: Flask, admin_client: FlaskClient, clinic: Place
) -> None:
    path = schedule_path(clinic.weber.id)
    hours = {"weekday": "0", "location": str(clinic.location)}
    assert submit(admin_client, path, "hours", **hours, start_time="09:00", end_time="12:00")
    assert count(app, WorkingHours) == 1
    with app.app_context():
        other = make_location("Potsdam practice", "Am Kanal 3, Potsdam").id

    for start, end, location in [
        ("11:00", "13:00", clinic.location),  # overlaps the end
        ("08:00", "18:00", clinic.location),  # covers it
        ("10:00", "11:00", other),  # inside it, at another location
    ]:
        response = submit(
            admin_client,
            path,
            "hours",
            weekday="0",
            location=str(location),
            start_time=start,
            end_time=end,
        )
        assert response.status_code == 422
        page = response.get_data(as_text=True)
        message = field_error(page, "hours-start_time")
        assert "These hours overlap Dr. Weber 's hours on Monday from 09:00 to 12:00" in message
        # The names are isolated (a right-to-left one would take the text beside it).
        assert (
            "These hours overlap <bdi>Dr. Weber</bdi>&#39;s hours on Monday from 09:00 to 12:00 "
            "at <bdi>Main clinic</bdi>."
        ) in page
        assert "overlap" in error_summary(page)
        # What was typed is kept.
        assert input_value(page, "hours-start_time") == start
        assert input_value(page, "hours-end_time") == end
        assert f'<option dir="auto" selected value="{location}">' in page
    assert count(app, WorkingHours) == 1
    assert not audits(app, "working_hours_added")[1:]

    # Touching is not overlapping; another weekday is free.
    for weekday, start, end in [("0", "12:00", "14:00"), ("1", "09:00", "12:00")]:
        response = submit(
            admin_client,
            path,
            "hours",
            weekday=weekday,
            location=str(clinic.location),
            start_time=start,
            end_time=end,
        )
        assert response.status_code == 302
    assert count(app, WorkingHours) == 3


@pytest.mark.parametrize(("start", "end"), [("12:00", "09:00"), ("10:00", "10:00")])
def test_hours_ending_before_they_start_are_refused(
    app: Flask, admin_client: FlaskClient, clinic: Place, start: str, end: str
) -> None:
    response = submit(
        admin_client,
        schedule_path(clinic.weber.id),
        "hours",
        weekday="2",
        location=str(clinic.location),
        start_time=start,
        end_time=end,
    )
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert field_error(page, "hours-end_time") == (
        "Error: The end time must be after the start time."
    )
    assert count(app, WorkingHours) == 0


# Exceptions ---------------------------------------------------------------------------------


def test_time_off_removes_its_slots_and_deleting_it_brings_them_back(
    app: Flask, admin_client: FlaskClient, clinic: Place, evaluation: int
) -> None:
    day = target_day()
    path = schedule_path(clinic.weber.id)
    with app.app_context():
        add_hours(clinic)
    assert "10:00" in offered(admin_client, evaluation, clinic.weber.id, day)

    iso = day.isoformat()
    response = submit(
        admin_client,
        path,
        "off",
        start_day=iso,
        start_time="10:00",
        end_day=iso,
        end_time="12:00",
        reason="Conference",
    )
    assert response.status_code == 302
    page = admin_client.get(path).get_data(as_text=True)
    assert "Time off added." in page and "Conference" in page
    with app.app_context():
        (row,) = db.session.scalars(select(ScheduleException)).all()
        # Entered in clinic time, stored in UTC.
        assert (row.kind, row.starts_at, row.ends_at) == (
            "time_off",
            berlin(day, "10:00"),
            berlin(day, "12:00"),
        )
        exception_id = row.id

    slots = offered(admin_client, evaluation, clinic.weber.id, day)
    # 09:15-10:00 still fits; nothing from 09:30 (runs into 10:00) until 12:00.
    assert "09:15" in slots and "12:00" in slots
    assert not set(starts("09:30", "11:45")) & set(slots)

    (added,) = audits(app, "schedule_exception_added")
    assert added.details["kind"] == {"before": None, "after": "time_off"}
    assert added.details["starts_at"] == {
        "before": None,
        "after": berlin(day, "10:00").isoformat(),
    }
    # Whether a reason was given, never its text (the trail cannot be edited).
    assert added.details["reason_given"] == {"before": None, "after": True}
    assert "Conference" not in str(added.details)

    assert press(admin_client, f"{path}/exceptions/{exception_id}/delete").status_code == 302
    assert "10:00" in offered(admin_client, evaluation, clinic.weber.id, day)
    (deleted,) = audits(app, "schedule_exception_deleted")
    assert deleted.details["kind"] == {"before": "time_off", "after": None}
    assert count(app, ScheduleException) == 0


def test_whole_day_time_off_blocks_that_days_slots_only(
    app: Flask, admin_client: FlaskClient, clinic: Place, evaluation: int
) -> None:
    """With both times left empty, time off runs from midnight to midnight (clinic time) of
    each day given: every slot of the day goes, the next day's stay."""
    day = target_day()
    path = schedule_path(clinic.weber.id)
    with app.app_context():
        add_hours(clinic)
    assert offered(admin_client, evaluation, clinic.weber.id, day)
    page = admin_client.get(path).get_data(as_text=True)
    assert "Leave both times empty for whole days." in page

    iso = day.isoformat()
    response = submit(
        admin_client,
        path,
        "off",
        start_day=iso,
        start_time="",
        end_day=iso,
        end_time="",
        reason="Holiday",
    )
    assert response.status_code == 302
    page = admin_client.get(path).get_data(as_text=True)
    assert "Time off added." in page
    # Listed as the day it is, not as "until the next day, 00:00".
    with app.test_request_context():
        shown = clinic_date(day, "EEE d MMM y")
    assert f"<td>{shown}</td><td>{shown} (the whole day)</td>" in page
    # Its Delete button names what it deletes, not "00:00" of an unnamed row.
    assert f'Delete<span class="visually-hidden">: time off, {shown}</span>' in page
    with app.app_context():
        row = db.session.scalars(select(ScheduleException)).one()
        assert (row.starts_at, row.ends_at) == (
            berlin(day, "00:00"),
            berlin(day + timedelta(days=1), "00:00"),
        )
    assert offered(admin_client, evaluation, clinic.weber.id, day) == []
    next_day = offered(admin_client, evaluation, clinic.weber.id, day + timedelta(days=1))
    assert next_day[0] == "08:00"


def test_time_off_needs_both_times_or_neither(
    app: Flask, admin_client: FlaskClient, clinic: Place
) -> None:
    iso = target_day().isoformat()
    path = schedule_path(clinic.weber.id)
    response = submit(
        admin_client, path, "off", start_day=iso, start_time="10:00", end_day=iso, end_time=""
    )
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert field_error(page, "off-end_time") == (
        "Error: Please enter both times, or neither for whole days."
    )
    assert count(app, ScheduleException) == 0
    # Whole days still need their dates.
    response = submit(
        admin_client, path, "off", start_day=iso, start_time="", end_day="", end_time=""
    )
    assert response.status_code == 422
    assert count(app, ScheduleException) == 0


@pytest.mark.parametrize(("prefix", "times"), [("off", ("", "")), ("extra", ("09:00", "12:00"))])
def test_a_last_day_before_the_first_is_said_at_that_date(
    app: Flask, admin_client: FlaskClient, clinic: Place, prefix: str, times: tuple[str, str]
) -> None:
    """Whole days of time off (both times left empty) ending the day before they start: the
    error was shown at "Until (time)", a box the admin never filled in, and not at the date
    typed wrong."""
    day = target_day()
    fields = {
        "start_day": day.isoformat(),
        "start_time": times[0],
        "end_day": (day - timedelta(days=2)).isoformat(),
        "end_time": times[1],
    }
    if prefix == "extra":
        fields["location"] = str(clinic.location)
    response = submit(admin_client, schedule_path(clinic.weber.id), prefix, **fields)
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert field_error(page, f"{prefix}-end_day") == "Error: The end must be after the start."
    assert f'id="{prefix}-end_time-error"' not in page
    assert count(app, ScheduleException) == 0


def test_time_off_over_a_booked_appointment_warns(
    app: Flask, admin_client: FlaskClient, clinic: Place, evaluation: int
) -> None:
    day = target_day()
    with app.app_context():
        book(clinic, evaluation, berlin(day, "10:00"))
    path = schedule_path(clinic.weber.id)
    iso = day.isoformat()
    response = submit(
        admin_client, path, "off", start_day=iso, start_time="00:00", end_day=iso, end_time="23:45"
    )
    assert response.status_code == 302
    page = admin_client.get(path).get_data(as_text=True)
    assert "1 booked appointment falls in it" in page


def test_time_off_under_way_counts_only_the_appointments_still_to_come(
    app: Flask, admin_client: FlaskClient, clinic: Place, evaluation: int
) -> None:
    """Sick leave entered the day after it began: yesterday's appointment, over, was counted
    among those "not changed: please move or cancel", which nobody can do."""
    yesterday, tomorrow = today() - timedelta(days=1), today() + timedelta(days=1)
    with app.app_context():
        book(clinic, evaluation, berlin(yesterday, "10:00"))
    path = schedule_path(clinic.weber.id)
    whole_days = {"start_time": "", "end_time": "", "end_day": tomorrow.isoformat()}
    response = submit(admin_client, path, "off", start_day=yesterday.isoformat(), **whole_days)
    assert response.status_code == 302
    page = admin_client.get(path).get_data(as_text=True)
    assert "Time off added." in page and "falls in it" not in page
    with app.app_context():
        db.session.execute(delete(ScheduleException))
        db.session.commit()
        book(clinic, evaluation, berlin(tomorrow, "10:00"))
    response = submit(admin_client, path, "off", start_day=yesterday.isoformat(), **whole_days)
    assert response.status_code == 302
    assert "1 booked appointment falls in it" in admin_client.get(path).get_data(as_text=True)


def test_extra_hours_under_way_count_only_the_appointments_still_to_come(
    app: Flask, clinic: Place, evaluation: int
) -> None:
    """The same for extra hours entered after they began: an appointment elsewhere earlier
    in them is over, not one to move."""
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    with app.app_context():
        book(clinic, evaluation, now - timedelta(hours=10))
        branch = make_location("Branch", "Hauptstr. 9, Potsdam").id
        weber = db.session.get(StaffUser, clinic.weber.id)
        added = add_extra_hours(
            weber, now - timedelta(hours=20), now + timedelta(hours=2), branch, None, None
        )
        assert added.appointments_elsewhere == 0
        db.session.execute(delete(ScheduleException))
        db.session.commit()
        book(clinic, evaluation, now + timedelta(minutes=30))
        added = add_extra_hours(
            weber, now - timedelta(hours=20), now + timedelta(hours=2), branch, None, None
        )
        assert added.appointments_elsewhere == 1


def test_extra_hours_add_slots_on_a_day_without_weekly_hours(
    app: Flask, admin_client: FlaskClient, clinic: Place, evaluation: int
) -> None:
    day = target_day()
    path = schedule_path(clinic.weber.id)
    iso = day.isoformat()
    extra = {"location": str(clinic.location), "start_day": iso, "end_day": iso}
    response = submit(admin_client, path, "extra", **extra, start_time="16:00", end_time="18:00")
    assert response.status_code == 302
    assert offered(admin_client, evaluation, clinic.weber.id, day) == starts("16:00", "17:15")
    with app.app_context():
        row = db.session.scalars(select(ScheduleException)).one()
        assert (row.kind, row.location_id) == ("extra", clinic.location)

    # Overlapping extra hours, and longer than a day, are refused.
    response = submit(admin_client, path, "extra", **extra, start_time="17:00", end_time="19:00")
    assert response.status_code == 422
    assert "overlap other extra hours" in field_error(
        response.get_data(as_text=True), "extra-start_time"
    )
    # Said at the field at fault: an end date two days on is wrong whatever the times...
    long = {**extra, "end_day": (day + timedelta(days=2)).isoformat()}
    response = submit(admin_client, path, "extra", **long, start_time="19:00", end_time="19:00")
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "at most 24 hours" in field_error(page, "extra-end_day")
    assert 'id="extra-end_time-error"' not in page
    # ... while the next day's is right, and its time a quarter of an hour too late.
    long = {**extra, "end_day": (day + timedelta(days=1)).isoformat()}
    response = submit(admin_client, path, "extra", **long, start_time="19:00", end_time="19:15")
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "at most 24 hours" in field_error(page, "extra-end_time")
    assert 'id="extra-end_day-error"' not in page
    # A location the page did not offer.
    response = submit(
        admin_client,
        path,
        "extra",
        **{**extra, "location": "9999"},
        start_time="08:00",
        end_time="09:00",
    )
    assert response.status_code == 422
    assert "locations shown" in field_error(response.get_data(as_text=True), "extra-location")
    assert count(app, ScheduleException) == 1


def test_extra_hours_over_an_appointment_at_another_place_warn(
    app: Flask, admin_client: FlaskClient, clinic: Place, evaluation: int
) -> None:
    """The extra hours replace Dr. Weber's weekly hours at the main clinic, but the patient
    booked there at 10:00 still holds its address: the admin is told to move them."""
    day = target_day()
    with app.app_context():
        book(clinic, evaluation, berlin(day, "10:00"))
        branch = make_location("Branch", "Hauptstr. 9, Potsdam").id
    path = schedule_path(clinic.weber.id)
    iso = day.isoformat()
    extra = {"start_day": iso, "end_day": iso, "start_time": "09:00", "end_time": "12:00"}
    response = submit(admin_client, path, "extra", location=str(branch), **extra)
    assert response.status_code == 302
    page = admin_client.get(path).get_data(as_text=True)
    assert "1 appointment booked at another place falls in them" in page
    # Hours at the appointment's own place take nobody away from it.
    with app.app_context():
        db.session.execute(delete(ScheduleException))
        db.session.commit()
    response = submit(admin_client, path, "extra", location=str(clinic.location), **extra)
    assert response.status_code == 302
    page = admin_client.get(path).get_data(as_text=True)
    assert "Extra hours added." in page and "falls in them" not in page


def test_extra_hours_at_a_location_since_closed_are_marked_closed(
    app: Flask, admin_client: FlaskClient, clinic: Place, evaluation: int
) -> None:
    """Extra hours at a location closed after they were entered offer no time, as weekly
    hours there do; the weekly hours were marked "closed" on the schedule, the extra hours
    were listed as if patients could book them."""
    day = target_day()
    path = schedule_path(clinic.weber.id)
    with app.app_context():
        add_hours(clinic, weekdays=[day.weekday()])
        branch = make_location("Branch", "Hauptstr. 9, Potsdam").id
    iso = day.isoformat()
    extra = {"start_day": iso, "end_day": iso, "start_time": "19:00", "end_time": "21:00"}
    assert submit(admin_client, path, "extra", location=str(branch), **extra).status_code == 302
    assert "19:00" in offered(admin_client, evaluation, clinic.weber.id, day)
    press(admin_client, f"/staff/admin/locations/{branch}/active", active="0")
    assert "19:00" not in offered(admin_client, evaluation, clinic.weber.id, day)

    page = admin_client.get(path).get_data(as_text=True)
    table = page[page.index('id="exceptions-heading"') : page.index('id="new-time-off"')]
    (row,) = re.findall(r"<tr><td>Extra hours</td>.*?</tr>", table, re.S)
    assert "Branch closed" in text(row)


@pytest.mark.parametrize("prefix", ["off", "extra"])
def test_a_time_skipped_by_the_clock_change_is_refused(
    app: Flask, admin_client: FlaskClient, clinic: Place, prefix: str
) -> None:
    day = clock_change_ahead(3, today())
    path = schedule_path(clinic.weber.id)
    fields = {"start_day": day.isoformat(), "end_day": day.isoformat(), "reason": "Night shift"}
    if prefix == "extra":
        fields["location"] = str(clinic.location)
    response = submit(admin_client, path, prefix, **fields, start_time="02:30", end_time="04:00")
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    message = field_error(page, f"{prefix}-start_time")
    assert "02:30 on" in message and "does not exist in the clinic's time zone" in message
    assert "clocks go forward" in error_summary(page)
    assert input_value(page, f"{prefix}-start_time") == "02:30"
    assert input_value(page, f"{prefix}-reason") == "Night shift"
    assert count(app, ScheduleException) == 0

    # 01:30 (still winter time) to 03:30 (summer time) is one real hour.
    response = submit(admin_client, path, prefix, **fields, start_time="01:30", end_time="03:30")
    assert response.status_code == 302
    with app.app_context():
        row = db.session.scalars(select(ScheduleException)).one()
        assert row.starts_at == datetime.combine(day, time(0, 30), tzinfo=UTC)
        assert row.ends_at - row.starts_at == timedelta(hours=1)


def test_a_period_already_over_is_refused(
    app: Flask, admin_client: FlaskClient, clinic: Place
) -> None:
    yesterday = (today() - timedelta(days=1)).isoformat()
    response = submit(
        admin_client,
        schedule_path(clinic.weber.id),
        "off",
        start_day=yesterday,
        start_time="08:00",
        end_day=yesterday,
        end_time="10:00",
    )
    assert response.status_code == 422
    assert "already over" in field_error(response.get_data(as_text=True), "off-end_day")
    assert count(app, ScheduleException) == 0


def test_a_period_ending_earlier_today_is_refused_at_its_end_time(
    app: Flask, admin_client: FlaskClient, clinic: Place, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Today is the right end date: the time, already past, is what to correct."""
    day = today()
    monkeypatch.setattr(admin_services, "now_utc", lambda: berlin(day, "12:00"))
    response = submit(
        admin_client,
        schedule_path(clinic.weber.id),
        "extra",
        location=str(clinic.location),
        start_day=day.isoformat(),
        start_time="08:00",
        end_day=day.isoformat(),
        end_time="10:00",
    )
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "already over" in field_error(page, "extra-end_time")
    assert 'id="extra-end_day-error"' not in page
    assert count(app, ScheduleException) == 0


def test_time_off_and_extra_hours_may_end_at_24_00(
    app: Flask, admin_client: FlaskClient, clinic: Place, evaluation: int
) -> None:
    """An admin giving time off "until midnight" types 24:00 (as weekly hours may end), not
    the next day's 00:00: stored as the midnight ending the day, and typed back as 24:00 when
    the form comes back. Extra hours to 24:00 offer the last time that ends at midnight."""
    day = target_day()
    iso = day.isoformat()
    path = schedule_path(clinic.weber.id)
    with app.app_context():
        add_hours(clinic)
    period = {"start_day": iso, "end_day": iso}
    response = submit(admin_client, path, "off", **period, start_time="14:00", end_time="24:00")
    assert response.status_code == 302
    with app.app_context():
        (row,) = db.session.scalars(select(ScheduleException)).all()
        assert (row.starts_at, row.ends_at) == (
            berlin(day, "14:00"),
            berlin(day + timedelta(days=1), "00:00"),
        )
    slots = offered(admin_client, evaluation, clinic.weber.id, day)
    assert slots[-1] == "13:15"  # 13:15-14:00; nothing after

    extra = {**period, "location": str(clinic.location)}
    next_day = (day + timedelta(days=1)).isoformat()
    with app.app_context():
        db.session.execute(delete(ScheduleException))
        db.session.commit()
    response = submit(admin_client, path, "extra", **extra, start_time="20:00", end_time="24:00")
    assert response.status_code == 302
    assert offered(admin_client, evaluation, clinic.weber.id, day)[-1] == "23:15"
    # Overlapping them, the form keeps the 24:00 typed.
    response = submit(admin_client, path, "extra", **extra, start_time="21:00", end_time="24:00")
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "overlap other extra hours" in field_error(page, "extra-start_time")
    assert input_value(page, "extra-end_time") == "24:00"
    # The next day's 00:00 is the same end.
    response = submit(
        admin_client,
        path,
        "extra",
        **{**extra, "end_day": next_day},
        start_time="21:00",
        end_time="00:00",
    )
    assert "overlap other extra hours" in field_error(
        response.get_data(as_text=True), "extra-start_time"
    )
    assert count(app, ScheduleException) == 1


@pytest.mark.parametrize("prefix", ["off", "extra"])
@pytest.mark.parametrize(
    ("start", "end", "field"),
    [
        ("22:00", "24:30", "end_time"),
        ("22:00", "25:00", "end_time"),
        ("24:00", "24:00", "start_time"),
    ],
)
def test_24_00_ends_a_period_only(
    app: Flask,
    admin_client: FlaskClient,
    clinic: Place,
    prefix: str,
    start: str,
    end: str,
    field: str,
) -> None:
    """24:30 and 25:00 are no times; 24:00 ends a period but starts none."""
    iso = target_day().isoformat()
    fields = {"start_day": iso, "end_day": iso, "start_time": start, "end_time": end}
    if prefix == "extra":
        fields["location"] = str(clinic.location)
    response = submit(admin_client, schedule_path(clinic.weber.id), prefix, **fields)
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert field_error(page, f"{prefix}-{field}") == (
        "Error: Please enter a time as hours and minutes, like 09:30."
    )
    assert input_value(page, f"{prefix}-{field}") == (start if field == "start_time" else end)
    assert count(app, ScheduleException) == 0


@pytest.mark.parametrize(("month", "hours"), [(3, 23), (10, 25)])
def test_a_day_to_24_00_holds_its_real_hours_when_the_clocks_change(
    app: Flask, admin_client: FlaskClient, clinic: Place, month: int, hours: int
) -> None:
    """00:00-24:00 on the night the clocks go forward is 23 real hours, on the night they go
    back 25: extra hours of that whole day are one day (not refused as over 24 hours), and
    time off ends at the midnight that ends it, asking nothing about a repeated hour."""
    day = clock_change_ahead(month, today())
    iso = day.isoformat()
    path = schedule_path(clinic.weber.id)
    whole = {"start_day": iso, "end_day": iso, "start_time": "00:00", "end_time": "24:00"}
    response = submit(admin_client, path, "extra", location=str(clinic.location), **whole)
    assert response.status_code == 302, field_error(
        response.get_data(as_text=True), "extra-end_time"
    )
    response = submit(admin_client, path, "off", **{**whole, "start_time": "20:00"})
    assert response.status_code == 302
    with app.app_context():
        extra, off = db.session.scalars(
            select(ScheduleException).order_by(ScheduleException.id)
        ).all()
        midnight = berlin(day + timedelta(days=1), "00:00")
        assert (extra.starts_at, extra.ends_at) == (berlin(day, "00:00"), midnight)
        assert extra.ends_at - extra.starts_at == timedelta(hours=hours)
        assert (off.starts_at, off.ends_at) == (berlin(day, "20:00"), midnight)
    # Still no more than a day: a quarter of an hour more is refused (the 23-hour day's extra
    # hours may still last 24 real hours, to 01:00, as they always could).
    with app.app_context():
        db.session.execute(delete(ScheduleException))
        db.session.commit()
    response = submit(
        admin_client,
        path,
        "extra",
        location=str(clinic.location),
        **{
            **whole,
            "end_day": (day + timedelta(days=1)).isoformat(),
            "end_time": "01:15" if month == 3 else "00:15",
        },
    )
    assert "at most 24 hours" in field_error(response.get_data(as_text=True), "extra-end_time")


# Bad input ----------------------------------------------------------------------------------


GOOD_OFF = {"start_time": "08:00", "end_time": "10:00", "reason": ""}


@pytest.mark.parametrize(
    ("prefix", "fields", "field_id", "message"),
    [
        ("hours", {"weekday": "7"}, "hours-weekday", "days shown"),
        ("hours", {"weekday": "Monday"}, "hours-weekday", "days shown"),
        ("hours", {"weekday": ""}, "hours-weekday", "Please choose a day"),
        ("hours", {"location": "abc"}, "hours-location", "locations shown"),
        ("hours", {"location": "9999"}, "hours-location", "locations shown"),
        ("hours", {"start_time": "25:00"}, "hours-start_time", "like 09:30"),
        ("hours", {"start_time": "nine"}, "hours-start_time", "like 09:30"),
        ("hours", {"end_time": ""}, "hours-end_time", "Please enter a time."),
        ("off", {"start_day": "2027-02-30"}, "off-start_day", "year, month and day"),
        ("off", {"start_day": "0001-01-01"}, "off-start_day", "Please enter a date from"),
        ("off", {"end_day": "9999-12-31"}, "off-end_day", "Please enter a date from"),
        ("off", {"end_day": ""}, "off-end_day", "Please enter a date."),
        ("off", {"start_time": "10:00", "end_time": "08:00"}, "off-end_time", "after the start"),
        ("off", {"reason": "x" * 201}, "off-reason", "at most 200 characters"),
        ("extra", {"location": ""}, "extra-location", "Please choose a location."),
    ],
)
def test_bad_schedule_input_is_refused_not_crashed(
    app: Flask,
    admin_client: FlaskClient,
    clinic: Place,
    prefix: str,
    fields: dict[str, str],
    field_id: str,
    message: str,
) -> None:
    day = target_day().isoformat()
    base = {
        "hours": {
            "weekday": "0",
            "location": str(clinic.location),
            "start_time": "09:00",
            "end_time": "12:00",
        },
        "off": {"start_day": day, "end_day": day, **GOOD_OFF},
        "extra": {
            "start_day": day,
            "end_day": day,
            "location": str(clinic.location),
            **GOOD_OFF,
        },
    }[prefix]
    response = submit(admin_client, schedule_path(clinic.weber.id), prefix, **{**base, **fields})
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert message in field_error(page, field_id)
    assert count(app, WorkingHours) == 0
    assert count(app, ScheduleException) == 0


def test_odd_posts_get_a_clear_status(app: Flask, admin_client: FlaskClient, clinic: Place) -> None:
    path = schedule_path(clinic.weber.id)
    token = csrf_token(admin_client, path)
    # No button pressed: nothing to do.
    assert admin_client.post(path, data={"csrf_token": token}).status_code == 400
    assert admin_client.post(OVERVIEW, data={"csrf_token": token}).status_code == 400
    # No token: refused before anything is read.
    response = admin_client.post(path, data={"hours-submit": "x", "hours-weekday": "1"})
    assert response.status_code == 400
    assert "This form has expired" in response.get_data(as_text=True)
    # Rows of another specialist, or none.
    with app.app_context():
        other = staff_user("okafor@example.com")
        make_hours(other, db.session.get(Location, clinic.location), weekdays=[0])
        row_id = db.session.scalar(select(WorkingHours.id))
    assert press(admin_client, f"{path}/hours/{row_id}/delete").status_code == 404
    assert press(admin_client, f"{path}/hours/9999/delete").status_code == 404
    assert press(admin_client, f"{path}/exceptions/9999/delete").status_code == 404
    assert count(app, WorkingHours) == 1


@pytest.fixture
def berlin_holidays(app_settings: dict[str, Any]) -> dict[str, Any]:
    app_settings["CLINIC_HOLIDAYS"] = "DE-BE"
    app_settings["CLINIC_CLOSED_DAYS"] = ""
    return app_settings


@pytest.mark.parametrize(
    ("today", "listed_days"),
    [
        (date(2026, 12, 6), [date(2026, 12, 25), date(2027, 3, 8)]),
        # A holiday itself is listed on its day, and the coming year ends the day before its
        # next one when a 29 February comes between (366 days on).
        (date(2027, 3, 8), [date(2027, 3, 8), date(2027, 12, 25)]),
        (date(2027, 12, 25), [date(2027, 12, 25), date(2028, 3, 8)]),
    ],
)
def test_the_overview_lists_the_days_the_clinic_is_closed(
    berlin_holidays: dict[str, Any],
    app: Flask,
    admin_client: FlaskClient,
    monkeypatch: pytest.MonkeyPatch,
    today: date,
    listed_days: list[date],
) -> None:
    """Public holidays take away a day's weekly hours: the admin sees which days. The
    overview's day is set: the coming year's holidays depend on it."""
    from booking.admin import scheduling_views
    from booking.timeutil import clinic_date

    monkeypatch.setattr(scheduling_views, "clinic_today", lambda: today)
    monkeypatch.setattr(scheduling_views, "now_utc", lambda: berlin(today, "12:00"))
    page = admin_client.get(OVERVIEW).get_data(as_text=True)
    listed = page[page.index('id="closed-days"') :].split("</ul>")[0]
    with app.test_request_context():
        # Christmas and Women's Day (Berlin's own holiday), within the coming year.
        for day in listed_days:
            assert f"<li>{clinic_date(day, 'full')}</li>" in listed
        assert f"<li>{clinic_date(today + timedelta(days=366), 'full')}</li>" not in listed
    assert "Public holidays of DE-BE" in page


def test_without_holidays_set_the_overview_says_how_to_set_them(
    admin_client: FlaskClient,
) -> None:
    page = admin_client.get(OVERVIEW).get_data(as_text=True)
    assert "None in the coming year: set CLINIC_HOLIDAYS" in page
    assert "CLINIC_HOLIDAYS is not set" in page and "Public holidays of" not in page


def test_stopping_a_type_with_appointments_to_come_says_how_many_keep_it(
    app: Flask, admin_client: FlaskClient, clinic: Place, evaluation: int
) -> None:
    with app.app_context():
        weber = staff_user(clinic.weber.email)
        make_hours(weber, db.session.get(Location, clinic.location), range(7), "09:00", "17:00")
        kind = db.session.get(AppointmentType, evaluation)
        slot = first_open_slot(kind)
        make_request(slot=SlotChoice(kind.id, slot.specialist_id, slot.location_id, slot.starts_at))
    press(admin_client, f"/staff/admin/scheduling/types/{evaluation}/active", active="0")
    page = admin_client.get(OVERVIEW).get_data(as_text=True)
    assert "1 appointment of this type is still to come: it keeps its type" in page


def test_deleting_hours_that_hold_a_booking_says_it_is_now_outside_them(
    app: Flask, admin_client: FlaskClient, clinic: Place, evaluation: int
) -> None:
    """The booking stays (the patient was told its time), but nobody would work then: the
    admin is told to move or cancel it, as when adding time off over it. Extra hours that
    cover it keep it inside the specialist's working time."""
    with app.app_context():
        weber = staff_user(clinic.weber.email)
        make_hours(weber, db.session.get(Location, clinic.location), range(7), "09:00", "17:00")
        kind = db.session.get(AppointmentType, evaluation)
        slot = first_open_slot(kind)
        make_request(slot=SlotChoice(kind.id, slot.specialist_id, slot.location_id, slot.starts_at))
        rows = db.session.scalars(select(WorkingHours.id).order_by(WorkingHours.id)).all()
        extra = add_extra_hours(
            weber,
            slot.starts_at - timedelta(hours=1),
            slot.ends_at + timedelta(hours=1),
            clinic.location,
            None,
            actor=None,
        ).exception.id
    path = schedule_path(clinic.weber.id)
    warning = "1 booked appointment of this specialist is outside their working hours now"
    # Every weekday's row goes; the extra hours still cover the booking.
    for row in rows:
        assert press(admin_client, f"{path}/hours/{row}/delete").status_code == 302
    assert warning not in admin_client.get(path).get_data(as_text=True)
    assert press(admin_client, f"{path}/exceptions/{extra}/delete").status_code == 302
    assert warning in admin_client.get(path).get_data(as_text=True)


def test_deleting_what_another_tab_deleted_already_says_so_on_the_schedule_page(
    app: Flask, admin_client: FlaskClient, clinic: Place
) -> None:
    """Two tabs show the same schedule; the first deletes a row, the second then presses the
    same row's button (and confirms): it is told the row was already deleted, and nothing
    more is written. Another specialist's deleted row, or one that never was, is still no
    page (404)."""
    day = target_day()
    with app.app_context():
        add_hours(clinic, weekdays=[0])
        hours_id = db.session.scalar(select(WorkingHours.id))
        weber = staff_user(clinic.weber.email)
        time_off = add_time_off(
            weber, berlin(day, "10:00"), berlin(day, "12:00"), None, actor=None
        ).exception.id
        extra = add_extra_hours(
            weber, berlin(day, "19:00"), berlin(day, "21:00"), clinic.location, None, actor=None
        ).exception.id
    path = schedule_path(clinic.weber.id)
    rows = {
        f"{path}/hours/{hours_id}/delete": "These working hours were already deleted",
        f"{path}/exceptions/{time_off}/delete": "This time off was already deleted",
        f"{path}/exceptions/{extra}/delete": "These extra hours were already deleted",
    }
    for row_path, message in rows.items():
        assert press(admin_client, row_path).status_code == 302  # the first tab
        for confirmed in ("1", ""):  # the second, from its list or its confirmation page
            token = csrf_token(admin_client, path)
            response = admin_client.post(
                row_path, data={"csrf_token": token, "confirmed": confirmed}
            )
            assert response.status_code == 302
            assert response.headers["Location"] == path
            page = text(admin_client.get(path).get_data(as_text=True))
            assert (
                f"{message}, perhaps in another tab or by another administrator: nothing was "
                "changed."
            ) in page
    assert len(audits(app, "working_hours_deleted")) == 1
    assert len(audits(app, "schedule_exception_deleted")) == 2

    # Not Dr. Okafor's: the row deleted was Dr. Weber's.
    other = schedule_path(clinic.okafor.id)
    assert press(admin_client, f"{other}/hours/{hours_id}/delete").status_code == 404
    assert press(admin_client, f"{other}/exceptions/{extra}/delete").status_code == 404


class _TableCells(HTMLParser):
    """The classes of each table cell of a page (``td``, ``th``), in order."""

    def __init__(self) -> None:
        super().__init__()
        self.cells: list[list[str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in {"td", "th"}:
            self.cells.append((dict(attrs).get("class") or "").split())


@pytest.mark.parametrize("path", [OVERVIEW, "/staff/admin/locations"])
def test_the_lists_action_buttons_stay_inside_their_table_cell(
    app: Flask, admin_client: FlaskClient, clinic: Place, path: str
) -> None:
    """A cell given a display class of its own (Bootstrap's ``d-flex``) stops being a table
    cell: the Edit and Deactivate (or Close) buttons of the appointment types' and the
    locations' lists stood outside their rows, the row lines broken under them. The buttons
    are laid out by a box inside the cell."""
    with app.app_context():
        make_appointment_type()
    page = admin_client.get(path).get_data(as_text=True)
    assert ">Edit<" in page
    parser = _TableCells()
    parser.feed(page)
    assert parser.cells
    displays = [c for cell in parser.cells for c in cell if re.fullmatch(r"d-(\w+-)?\w+", c)]
    assert displays == []
