"""Days an admin closes the whole clinic in the app (``booking.scheduling.closures``): read
with the settings' closed days, so patients are offered no time on them (extra hours an admin
enters still open them), and offered times again once the day is reopened."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, time, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from booking.audit.models import AuditEvent
from booking.extensions import db
from booking.openinghours import clinic_closed_days
from booking.scheduling.admin_services import ScheduleError, add_extra_hours
from booking.scheduling.agenda import working_time
from booking.scheduling.availability import open_slots
from booking.scheduling.closures import close_clinic, reopen_clinic
from booking.scheduling.models import AppointmentType, ClinicClosure
from booking.staff.models import StaffUser
from booking.timeutil import clinic_today, from_clinic_local
from tests.support import Clinic, sql_statements


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
            close_clinic(day_ahead(n), "Training", admin(clinic))
        db.session.add(ClinicClosure(day=day_ahead(400), reason="Later"))  # outside the range
        db.session.commit()

        with sql_statements(app, selects_only=True) as statements:
            closed = clinic_closed_days(first, last)

        assert closed == {day_ahead(n) for n in (3, 5, 40, 200)}
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
