"""The staff calendar: day and week views of confirmed appointments, filtered."""

from __future__ import annotations

from datetime import time
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from booking.dashboard import services as workflow
from booking.timeutil import clinic_today
from tests.factories import (
    make_appointment_type,
    make_hours,
    make_location,
    make_request,
    staff_user,
)
from tests.support import AuthActions, Staff


@pytest.fixture
def week(app: Flask, staff: Staff) -> dict[str, Any]:
    """Two confirmed appointments next week with different specialists and places, one
    cancelled, one request still waiting."""
    from datetime import timedelta

    with app.app_context():
        coordinator = staff_user(staff.coordinator.email)
        weber = staff_user(staff.weber.email)
        okafor = staff_user(staff.okafor.email)
        mitte, west = make_location("Mitte", "A 1"), make_location("West", "B 2")
        kind = make_appointment_type(minutes=30)
        make_hours(weber, mitte, range(7))
        make_hours(okafor, west, range(7))
        monday = clinic_today() + timedelta(days=7 - clinic_today().weekday())
        plan = [
            ("Anna Mitte", weber, mitte, monday, time(9)),
            ("Ben West", okafor, west, monday + timedelta(days=2), time(14)),
            ("Carl Cancelled", weber, mitte, monday + timedelta(days=1), time(10)),
        ]
        for name, specialist, place, day, at in plan:
            consultation = make_request(full_name=name, email=f"{name.split()[0]}@example.com")
            workflow.confirm_request(
                consultation, coordinator, workflow.Slot(kind, specialist, place, day, at)
            )
            if name.startswith("Carl"):
                workflow.cancel_request(consultation, coordinator)
        make_request(full_name="Wanda Waiting", email="wanda@example.com")
        return {"monday": monday, "weber": weber.id, "west": west.id, "weber_email": weber.email}


def page(client: FlaskClient, **args: Any) -> str:
    response = client.get("/staff/calendar", query_string=args)
    assert response.status_code == 200
    return response.get_data(as_text=True)


def test_week_view_shows_confirmed_appointments_only(client: FlaskClient, week: dict) -> None:
    AuthActions(client).attempt("coord@example.com")
    html = page(client, date=week["monday"].isoformat())
    assert "Anna Mitte" in html and "Ben West" in html
    assert "Carl Cancelled" not in html and "Wanda Waiting" not in html
    assert "09:00" in html and "14:00" in html  # clinic time
    assert "2 appointments" in html


def test_day_view_and_filters(client: FlaskClient, week: dict) -> None:
    AuthActions(client).attempt("coord@example.com")
    monday = week["monday"].isoformat()
    day = page(client, view="day", date=monday)
    assert "Anna Mitte" in day and "Ben West" not in day
    by_specialist = page(client, date=monday, specialist=week["weber"])
    assert "Anna Mitte" in by_specialist and "Ben West" not in by_specialist
    by_place = page(client, date=monday, location=week["west"])
    assert "Ben West" in by_place and "Anna Mitte" not in by_place


def test_a_specialist_sees_only_their_own_calendar(client: FlaskClient, week: dict) -> None:
    AuthActions(client).attempt(week["weber_email"])
    html = page(client, date=week["monday"].isoformat(), specialist="999")
    assert "Anna Mitte" in html and "Ben West" not in html
