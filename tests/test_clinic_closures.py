"""Days an admin closes the whole clinic in the app (``booking.scheduling.closures``): read
with the settings' closed days, so patients are offered no time on them (extra hours an admin
enters still open them), and offered times again once the day is reopened."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from html import unescape
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from booking.audit.models import AuditEvent
from booking.extensions import db
from booking.openinghours import clinic_closed_days, clinic_closures
from booking.scheduling.admin_services import ScheduleError, add_extra_hours
from booking.scheduling.agenda import working_time
from booking.scheduling.availability import open_slots
from booking.scheduling.closures import close_clinic, reopen_clinic
from booking.scheduling.models import AppointmentType, ClinicClosure
from booking.staff.models import StaffUser
from booking.timeutil import clinic_date, clinic_today, from_clinic_local
from tests.support import AuthActions, Clinic, page_token, sql_statements
from tests.test_destructive_confirmation import asked, confirm, press


@pytest.fixture
def ctx(app: Flask) -> Iterator[None]:
    with app.app_context():
        yield


def day_ahead(days: int = 10) -> date:
    return clinic_today() + timedelta(days=days)


def offered(clinic: Clinic, day: date) -> int:
    """How many times of the clinic's type patients could pick on ``day`` (notice and
    horizon aside)."""
    appointment_type = db.session.get(AppointmentType, clinic.type)
    start = from_clinic_local(day, time())
    end = from_clinic_local(day + timedelta(days=1), time())
    return len(open_slots(appointment_type, start, end, enforce_limits=False))


def admin(clinic: Clinic) -> StaffUser:
    user = db.session.get(StaffUser, clinic.admin.id)
    assert user is not None
    return user


def test_no_time_is_offered_on_a_day_closed_in_the_app_and_again_once_reopened(
    ctx: None, clinic: Clinic
) -> None:
    day = day_ahead()
    before = offered(clinic, day)
    assert before > 0

    added = close_clinic(day, "Team training", admin(clinic))

    assert offered(clinic, day) == 0
    # The days around it are offered as before.
    assert offered(clinic, day - timedelta(days=1)) == before
    assert offered(clinic, day + timedelta(days=1)) == before
    # Staff's agenda draws no working time on it either.
    windows, _off = working_time(
        from_clinic_local(day, time()), from_clinic_local(day + timedelta(days=1), time()), None
    )
    assert windows == []

    reopen_clinic(added.closure, admin(clinic))

    assert offered(clinic, day) == before


def test_extra_hours_an_admin_enters_still_open_a_closed_day(ctx: None, clinic: Clinic) -> None:
    """As on a public holiday: the clinic closes, a specialist may still be booked in the
    extra hours entered for them."""
    day = day_ahead()
    close_clinic(day, "Burst pipe", admin(clinic))
    weber = db.session.get(StaffUser, clinic.weber.id)
    add_extra_hours(
        weber,
        from_clinic_local(day, time(10)),
        from_clinic_local(day, time(12)),
        clinic.location,
        None,
        admin(clinic),
    )
    # 10:00 to 11:15, every 15 minutes: 45-minute visits in two hours.
    assert offered(clinic, day) == 6


def test_closed_days_read_the_apps_days_with_the_settings_in_one_query(
    app_settings: dict[str, Any], app: Flask, clinic: Clinic
) -> None:
    with app.app_context():
        first, last = day_ahead(1), day_ahead(365)
        app.config["CLINIC_CLOSED_DAYS"] = day_ahead(3).isoformat()
        for n in (5, 40, 200):
            close_clinic(day_ahead(n), f"Training {n}", admin(clinic))
        db.session.add(ClinicClosure(day=day_ahead(400), reason="Later"))  # outside the range
        db.session.commit()

        with sql_statements(app, selects_only=True) as statements:
            closed = clinic_closed_days(first, last)
        assert closed == {day_ahead(n) for n in (3, 5, 40, 200)}
        assert len(statements) == 1

        # With why (staff's agenda): the same one query; the settings give no reason.
        with sql_statements(app, selects_only=True) as statements:
            closures = clinic_closures(first, last)
        assert closures == {day_ahead(3): ""} | {
            day_ahead(n): f"Training {n}" for n in (5, 40, 200)
        }
        assert len(statements) == 1


@pytest.mark.parametrize(
    ("days", "reason", "field", "message"),
    [
        (-1, "Training", "day", "This day is already past. Please enter today or a later day."),
        (7, "Training", "day", "The clinic is already closed on "),
        (3, "Training", "day", "is already closed on"),
        (9, "   ", "reason", "Please enter a reason."),
    ],
    ids=["past", "closed-in-the-app", "closed-by-the-settings", "no-reason"],
)
def test_a_closure_that_cannot_be_is_refused_and_writes_nothing(
    app: Flask, clinic: Clinic, days: int, reason: str, field: str, message: str
) -> None:
    with app.app_context():
        app.config["CLINIC_CLOSED_DAYS"] = day_ahead(3).isoformat()
        close_clinic(day_ahead(7), "Training", admin(clinic))
        rows = db.session.scalar(select(db.func.count(AuditEvent.id)))

        with pytest.raises(ScheduleError) as refused:
            close_clinic(day_ahead(days), reason, admin(clinic))

        assert refused.value.field == field
        assert message in str(refused.value)
        if days == 3:
            assert "by the settings (a public holiday or CLINIC_CLOSED_DAYS)" in str(refused.value)
        db.session.rollback()
        assert db.session.scalars(select(ClinicClosure.day)).all() == [day_ahead(7)]
        assert db.session.scalar(select(db.func.count(AuditEvent.id))) == rows


def test_today_may_be_closed(ctx: None, clinic: Clinic) -> None:
    """A burst pipe in the morning: the rest of today is closed too."""
    assert close_clinic(clinic_today(), "Burst pipe", admin(clinic)).closure.day == clinic_today()


def test_closing_and_reopening_are_audited_with_the_day_not_the_reason(
    ctx: None, clinic: Clinic
) -> None:
    day = day_ahead()
    closure = close_clinic(day, "Dr. Weber's family matter", admin(clinic)).closure
    closure_id = closure.id
    assert closure.created_by_id == clinic.admin.id and closure.created_at is not None
    reopen_clinic(closure, admin(clinic))

    rows = db.session.scalars(
        select(AuditEvent).where(AuditEvent.target_type == "clinic_closure").order_by(AuditEvent.id)
    ).all()
    assert [(r.action, r.target_id, r.actor_id) for r in rows] == [
        ("clinic_closure_added", str(closure_id), clinic.admin.id),
        ("clinic_closure_removed", str(closure_id), clinic.admin.id),
    ]
    assert rows[0].details == {"day": {"before": None, "after": day.isoformat()}}
    assert rows[1].details == {"day": {"before": day.isoformat(), "after": None}}


# The admin's page ---------------------------------------------------------------------------

PAGE = "/staff/admin/scheduling/closed-days"
BERLIN = ZoneInfo("Europe/Berlin")  # the testing settings' clinic time zone
PICKER_SLOT_RE = re.compile(r'name="slot" id="slot-(\d+)\.(\d+)\.(\d+)"')


def picker_times(patient: FlaskClient, clinic: Clinic, day: date) -> int:
    """How many times the patient's picker offers on ``day`` (asked for that day, it shows
    the next one with times when it has none)."""
    page = patient.get("/request/time", query_string={"type": clinic.type, "day": day.isoformat()})
    assert page.status_code == 200
    return sum(
        datetime.fromtimestamp(int(epoch), tz=UTC).astimezone(BERLIN).date() == day
        for _sid, _lid, epoch in PICKER_SLOT_RE.findall(page.get_data(as_text=True))
    )


def post_closure(client: FlaskClient, day: date | str, reason: str = "Team training") -> Any:
    """The page's form, filled in and sent as a browser does (not yet confirmed)."""
    token = page_token(client.get(PAGE).get_data(as_text=True))
    value = day.isoformat() if isinstance(day, date) else day
    return client.post(PAGE, data={"csrf_token": token, "day": value, "reason": reason})


def field_error(page: str, name: str) -> str:
    """The error shown at the field ``name``, as read aloud (its "Error:" prefix included)."""
    match = re.search(rf'id="{name}-error"[^>]*>(.*?)</div>', page, re.S)
    assert match, f"no error shown at {name}"
    return unescape(re.sub(r"<[^>]+>", "", match.group(1))).strip()


def test_an_admin_closes_a_day_and_opens_it_again_each_confirmed_first(
    app: Flask, auth: AuthActions, clinic: Clinic
) -> None:
    auth.login("admin")
    patient = app.test_client()
    with app.app_context():
        day = day_ahead()
        day_text = clinic_date(day, "full")
    before = picker_times(patient, clinic, day)
    assert before > 0

    question, warnings, page = asked(post_closure(auth.client, day))
    assert question == f"Close the clinic on {day_text}?"
    assert warnings == []  # nothing booked on it
    assert 'id="confirm-listed"' not in page
    with app.app_context():
        assert db.session.scalar(select(db.func.count(ClinicClosure.id))) == 0
    assert picker_times(patient, clinic, day) == before

    done = confirm(auth.client, page)
    assert done.status_code == 302 and done.headers["Location"] == PAGE
    shown = auth.client.get(PAGE).get_data(as_text=True)
    assert f"The clinic is closed on {day_text}: patients are offered no time on it." in shown
    listed = shown[shown.index('id="closed-days"') :].split("</table>")[0]
    assert day_text in listed and "Team training" in listed and "Ada Admin" in listed
    assert picker_times(patient, clinic, day) == 0  # the kept picker page is not reused

    with app.app_context():
        closure_id = db.session.scalars(select(ClinicClosure.id)).one()
    remove = f"{PAGE}/{closure_id}/delete"
    question, warnings, page = asked(press(auth.client, remove))
    assert question == f"Open the clinic again on {day_text}?"
    assert picker_times(patient, clinic, day) == 0
    assert confirm(auth.client, page).headers["Location"] == PAGE
    assert f"The clinic is open again on {day_text}." in auth.client.get(PAGE).get_data(
        as_text=True
    )
    assert picker_times(patient, clinic, day) == before

    # The same button again (a second tab): told so, nothing written; an unknown day: 404.
    again = press(auth.client, remove, confirmed="1")
    assert again.status_code == 302
    assert "This closed day was already removed" in auth.client.get(PAGE).get_data(as_text=True)
    assert press(auth.client, f"{PAGE}/9999/delete", confirmed="1").status_code == 404
    with app.app_context():
        actions = db.session.scalars(
            select(AuditEvent.action).where(AuditEvent.target_type == "clinic_closure")
        ).all()
    assert actions == ["clinic_closure_added", "clinic_closure_removed"]


def test_the_page_shows_the_settings_days_as_such_without_a_button(
    app_settings: dict[str, Any], app: Flask, auth: AuthActions, clinic: Clinic
) -> None:
    with app.app_context():
        settings_day, app_day = day_ahead(3), day_ahead(5)
        app.config["CLINIC_CLOSED_DAYS"] = settings_day.isoformat()
        close_clinic(app_day, "Burst pipe", admin(clinic))
        settings_text, app_text = clinic_date(settings_day, "full"), clinic_date(app_day, "full")
    auth.login("admin")
    page = auth.client.get(PAGE).get_data(as_text=True)
    rows = re.findall(r"<tr><td>(.*?)</tr>", page, re.S)
    assert [settings_text in rows[0], app_text in rows[1]] == [True, True]
    assert "A day of CLINIC_CLOSED_DAYS" in rows[0] and "<button" not in rows[0]
    assert "Burst pipe" in rows[1] and "/delete" in rows[1]
    # The overview lists both and leads here.
    overview = auth.client.get("/staff/admin/scheduling/").get_data(as_text=True)
    assert settings_text in overview and app_text in overview
    assert f'href="{PAGE}"' in overview


@pytest.mark.parametrize(
    ("days", "reason", "field", "message"),
    [
        (
            -1,
            "Team training",
            "day",
            "This day is already past. Please enter today or a later day.",
        ),
        (7, "Team training", "day", "The clinic is already closed on "),
        (3, "Team training", "day", "by the settings (a public holiday or CLINIC_CLOSED_DAYS)."),
        (9, " ", "reason", "Please enter a reason."),
        (9, "x" * 201, "reason", "Please use at most 200 characters."),
        (5000, "Team training", "day", "Please enter a date until "),
    ],
    ids=["past", "closed-in-the-app", "closed-by-the-settings", "no-reason", "long", "far"],
)
def test_the_page_says_why_a_day_cannot_be_closed(
    app: Flask,
    auth: AuthActions,
    clinic: Clinic,
    days: int,
    reason: str,
    field: str,
    message: str,
) -> None:
    with app.app_context():
        app.config["CLINIC_CLOSED_DAYS"] = day_ahead(3).isoformat()
        close_clinic(day_ahead(7), "Training", admin(clinic))
        day = day_ahead(days)
    auth.login("admin")

    response = post_closure(auth.client, day, reason)

    assert response.status_code == 422  # refused at once, not asked to confirm
    assert message in field_error(response.get_data(as_text=True), field)
    with app.app_context():
        assert db.session.scalars(select(ClinicClosure.day)).all() == [day_ahead(7)]


def test_a_past_closed_day_stays_as_it_was(app: Flask, auth: AuthActions, clinic: Clinic) -> None:
    """The agenda of a past day keeps saying why nobody worked."""
    with app.app_context():
        db.session.add(ClinicClosure(day=day_ahead(-2), reason="Team training"))
        db.session.commit()
        closure_id = db.session.scalars(select(ClinicClosure.id)).one()
    auth.login("admin")

    response = press(auth.client, f"{PAGE}/{closure_id}/delete", confirmed="1")

    assert response.status_code == 302
    assert "This day is already past" in auth.client.get(PAGE).get_data(as_text=True)
    with app.app_context():
        assert db.session.get(ClinicClosure, closure_id) is not None


AGENDA_HEADING_RE = re.compile(r'<h3 class="agenda-head" id="col-[^"]+">(.*?)</h3>', re.S)
CLOSED_NOTE_RE = re.compile(r'<small class="d-block">((?:Public holiday|Closed).*?)</small>')


def test_the_agenda_says_why_an_admin_closed_the_day(
    app: Flask, auth: AuthActions, clinic: Clinic
) -> None:
    """Staff's agenda heads a day closed in the app with the reason the admin gave: free
    text, escaped and isolated (``<bdi>``: it may be right-to-left, beside the date). A day
    the settings close says so as before: they name no reason. Neither reads as a public
    holiday ("Closed: ...", not "Clinic closed: ..." as a holiday read too)."""
    with app.app_context():
        holiday, training, arabic, open_day = (day_ahead(n) for n in (9, 10, 11, 12))
        app.config["CLINIC_CLOSED_DAYS"] = holiday.isoformat()
        close_clinic(training, "Team training <b>", admin(clinic))
        close_clinic(arabic, "تدريب الفريق", admin(clinic))
    auth.login("coordinator")

    def closed_note(day: date, **args: Any) -> set[str]:
        page = auth.client.get("/staff/calendar", query_string={"date": day.isoformat(), **args})
        return {
            match.group(1)
            for heading in AGENDA_HEADING_RE.findall(page.get_data(as_text=True))
            if (match := re.search(CLOSED_NOTE_RE, heading))
        }

    # Side by side: every specialist's column on the day.
    assert closed_note(holiday) == {"Closed (a closed day in the clinic's settings)"}
    assert closed_note(training) == {"Closed: <bdi>Team training &lt;b&gt;</bdi>"}
    assert closed_note(arabic) == {"Closed: <bdi>تدريب الفريق</bdi>"}
    assert closed_note(open_day) == set()
    # A specialist's week: each day its own reason.
    week = closed_note(training, view="week", specialist=clinic.weber.id)
    assert "Closed: <bdi>Team training &lt;b&gt;</bdi>" in week


def test_the_agenda_names_the_public_holiday_it_is_closed_for(
    app: Flask, auth: AuthActions, clinic: Clinic
) -> None:
    """A public holiday of ``CLINIC_HOLIDAYS`` heads the agenda with its name, in English
    (the staff pages' language) though the country's own is German, as a day closed in the
    app heads it with the admin's reason; a date of ``CLINIC_CLOSED_DAYS`` has no name. A
    holiday reads as one ("Public holiday: ..."), not as a day an admin closed (both read
    "Clinic closed: ...")."""
    with app.app_context():
        today = clinic_today()
        app.config["CLINIC_HOLIDAYS"] = "DE-BE"
        christmas = date(today.year + (today >= date(today.year, 12, 25)), 12, 25)
        settings_day = christmas - timedelta(days=2)  # no holiday in Berlin
        app.config["CLINIC_CLOSED_DAYS"] = settings_day.isoformat()
    auth.login("coordinator")

    def closed_note(day: date) -> set[str]:
        page = auth.client.get("/staff/calendar", query_string={"date": day.isoformat()})
        return {
            match.group(1)
            for heading in AGENDA_HEADING_RE.findall(page.get_data(as_text=True))
            if (match := re.search(CLOSED_NOTE_RE, heading))
        }

    assert closed_note(christmas) == {"Public holiday: <bdi>Christmas Day</bdi>"}
    assert closed_note(christmas + timedelta(days=1)) == {
        "Public holiday: <bdi>Second Day of Christmas</bdi>"
    }
    assert closed_note(settings_day) == {"Closed (a closed day in the clinic's settings)"}


def test_the_closed_days_page_names_each_public_holiday(
    app: Flask, auth: AuthActions, clinic: Clinic
) -> None:
    """The admin's list of closed days gives a public holiday's name, isolated (``<bdi>``);
    a date of ``CLINIC_CLOSED_DAYS`` is said to be one."""
    with app.app_context():
        today = clinic_today()
        app.config["CLINIC_HOLIDAYS"] = "DE-BE"
        christmas = date(today.year + (today > date(today.year, 12, 25)), 12, 25)
        settings_day = christmas - timedelta(days=2)
        if settings_day < today:
            settings_day = christmas + timedelta(days=2)
        app.config["CLINIC_CLOSED_DAYS"] = settings_day.isoformat()
        christmas_text, settings_text = (clinic_date(d, "full") for d in (christmas, settings_day))
    auth.login("admin")
    page = auth.client.get(PAGE).get_data(as_text=True)
    rows = {row.split("</td>")[0]: row for row in re.findall(r"<tr><td>(.*?)</tr>", page, re.S)}
    assert "A public holiday of DE-BE: <bdi>Christmas Day</bdi>" in rows[christmas_text]
    assert "A day of CLINIC_CLOSED_DAYS" in rows[settings_text]
