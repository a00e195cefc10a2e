"""The hour the clocks repeat when summer time ends, in Madrid on Sunday 25 October 2026: at
03:00 CEST (01:00 UTC) the clocks go back to 02:00 CET, so 02:00-03:00 happens twice. Staff
entering a time in it are asked which of the two they mean, and a time the clocks skip in
spring (02:00-03:00 on 28 March 2027) is refused on its field.

The clock is frozen before the change (``now_utc`` reads it), so the day stays ahead whenever
the tests run.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from datetime import time as time_
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from booking import timeutil
from booking.extensions import db
from booking.requests.models import ConsultationRequest, RequestStatus
from booking.scheduling.models import ScheduleException
from tests.factories import make_request
from tests.support import AuthActions, Clinic, field_error, page_token, text

FALL_BACK = date(2026, 10, 25)
SPRING_FORWARD = date(2027, 3, 28)
# 02:30 CEST and 02:30 CET, an hour apart.
FIRST = datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
SECOND = datetime(2026, 10, 25, 1, 30, tzinfo=UTC)
CHOICE_RE = re.compile(
    r'<input[^>]*name="([^"]+)"[^>]*type="radio" value="([^"]+)">\s*'
    r'<label class="form-check-label" for="[^"]+">([^<]*)</label>'
)
BEFORE = datetime(2026, 10, 20, 10, tzinfo=UTC)


class Clock:
    """The app's clock (``timeutil.now_utc``), frozen at ``now``."""

    def __init__(self, now: datetime) -> None:
        self.now = now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    frozen = Clock(BEFORE)

    class FrozenDatetime(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> datetime:  # type: ignore[override]
            return frozen.now.astimezone(tz)

    monkeypatch.setattr(timeutil, "datetime", FrozenDatetime)
    return frozen


@pytest.fixture
def app_settings(app_settings: dict[str, Any]) -> dict[str, Any]:
    return {**app_settings, "CLINIC_TIMEZONE": "Europe/Madrid"}


@pytest.fixture
def working_hours() -> dict[str, tuple[str, str]]:
    """Dr. Weber works through the night of the change."""
    return {"weber": ("00:00", "06:00")}


def choices(page: str, name: str) -> dict[str, str]:
    """A radio field's options: label -> value."""
    return {text(label): value for field, value, label in CHOICE_RE.findall(page) if field == name}


# Staff booking a time -----------------------------------------------------------------------


def _confirm(client: FlaskClient, record: str, clinic: Clinic, day: date, **extra: str) -> Any:
    page = client.get(record).get_data(as_text=True)
    data = {
        "slot-csrf_token": page_token(page),
        "slot-appointment_type": clinic.type,
        "slot-specialist": clinic.weber.id,
        "slot-location": clinic.location,
        "slot-day": day.isoformat(),
        "slot-start": "02:30",
        **extra,
    }
    return client.post(f"{record}/confirm", data=data)


@pytest.mark.parametrize(("which", "starts_at"), [(0, FIRST), (1, SECOND)])
def test_staff_booking_a_repeated_time_choose_which(
    app: Flask, client: FlaskClient, clinic: Clinic, clock: Clock, which: int, starts_at: datetime
) -> None:
    with app.app_context():
        reference = make_request(email="pat@example.com").reference
    AuthActions(client).login("coordinator")
    record = f"/staff/requests/{reference}"

    response = _confirm(client, record, clinic, FALL_BACK)
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    # The error is the choice's: its radios are marked, the summary links to it, and the
    # time, right as typed, is not marked wrong.
    assert field_error(page, "slot-start_which") == (
        "Error: 02:30 happens twice on 25 October 2026: the clocks go back an hour that "
        "night. Please choose which of the two you mean."
    )
    assert 'href="#slot-start_which"' in page and 'id="slot-start-error"' not in page
    assert re.search(r'<fieldset[^>]*id="slot-start_which"[^>]*aria-describedby="[^"]*error', page)
    offered = choices(page, "slot-start_which")
    assert list(offered) == [
        "02:30 (first, summer time, CEST)",
        "02:30 (second, winter time, CET)",
    ]
    with app.app_context():
        assert db.session.scalars(select(ConsultationRequest)).one().appointment is None

    response = _confirm(
        client, record, clinic, FALL_BACK, **{"slot-start_which": list(offered.values())[which]}
    )
    assert response.status_code == 302
    with app.app_context():
        consultation = db.session.scalars(select(ConsultationRequest)).one()
        assert consultation.status == RequestStatus.CONFIRMED
        assert consultation.appointment.starts_at == starts_at

    # Moving it shows the time it has, the right one of the two ticked.
    page = client.get(record).get_data(as_text=True)
    ticked = re.search(r'<input checked[^>]*name="slot-start_which"[^>]*value="([^"]+)"', page)
    assert ticked and ticked.group(1) == list(offered.values())[which]


def test_a_choice_made_for_another_time_is_asked_again(
    app: Flask, client: FlaskClient, clinic: Clinic, clock: Clock
) -> None:
    with app.app_context():
        reference = make_request(email="pat@example.com").reference
    AuthActions(client).login("coordinator")
    record = f"/staff/requests/{reference}"
    response = _confirm(
        client, record, clinic, FALL_BACK, **{"slot-start_which": "2026-10-25T02:15+01:00"}
    )
    assert response.status_code == 422
    assert "happens twice" in field_error(response.get_data(as_text=True), "slot-start_which")


def test_the_first_of_a_repeated_time_has_passed_the_second_not(
    app: Flask, client: FlaskClient, clinic: Clinic, clock: Clock
) -> None:
    """At 02:45 CEST the first 02:30 is gone; the second is 45 minutes ahead."""
    with app.app_context():
        reference = make_request(email="pat@example.com").reference
    clock.now = datetime(2026, 10, 25, 0, 45, tzinfo=UTC)
    AuthActions(client).login("coordinator")
    record = f"/staff/requests/{reference}"
    first, second = "2026-10-25T02:30+02:00", "2026-10-25T02:30+01:00"
    response = _confirm(client, record, clinic, FALL_BACK, **{"slot-start_which": first})
    assert response.status_code == 422
    assert field_error(response.get_data(as_text=True), "slot-start") == (
        "Error: That time has passed. Please choose a time to come."
    )
    response = _confirm(client, record, clinic, FALL_BACK, **{"slot-start_which": second})
    assert response.status_code == 302
    with app.app_context():
        assert db.session.scalars(select(ConsultationRequest)).one().appointment.starts_at == (
            SECOND
        )


def test_a_time_the_clocks_skip_is_refused_on_its_field(
    app: Flask, client: FlaskClient, clinic: Clinic, clock: Clock
) -> None:
    with app.app_context():
        reference = make_request(email="pat@example.com").reference
    AuthActions(client).login("coordinator")
    response = _confirm(client, f"/staff/requests/{reference}", clinic, SPRING_FORWARD)
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert field_error(page, "slot-start") == (
        "Error: 02:30 on 28 March 2027 does not exist in the clinic's time zone: the clocks "
        "go forward that night. Please enter a time before or after the skipped hour."
    )
    assert not choices(page, "slot-start_which")


# Time off and extra hours -------------------------------------------------------------------


def _period(client: FlaskClient, path: str, prefix: str, **fields: str) -> Any:
    page = client.get(path).get_data(as_text=True)
    iso = FALL_BACK.isoformat()
    data = {
        f"{prefix}-csrf_token": page_token(page),
        f"{prefix}-submit": "pressed",
        f"{prefix}-start_day": iso,
        f"{prefix}-start_time": "02:30",
        f"{prefix}-end_day": iso,
        f"{prefix}-end_time": "02:45",
        **{f"{prefix}-{name}": value for name, value in fields.items()},
    }
    return client.post(path, data=data)


@pytest.mark.parametrize("prefix", ["off", "extra"])
def test_a_period_in_the_repeated_hour_asks_which_of_each_time(
    app: Flask, client: FlaskClient, clinic: Clinic, clock: Clock, prefix: str
) -> None:
    AuthActions(client).login("admin")
    path = f"/staff/admin/scheduling/specialists/{clinic.weber.id}"
    place = {"location": str(clinic.location)} if prefix == "extra" else {}
    response = _period(client, path, prefix, **place)
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    for field, at in (("start", "02:30"), ("end", "02:45")):
        assert field_error(page, f"{prefix}-{field}_which") == (
            f"Error: {at} happens twice on 25 October 2026: the clocks go back an hour that "
            "night. Please choose which of the two you mean."
        )
        assert list(choices(page, f"{prefix}-{field}_which")) == [
            f"{at} (first, summer time, CEST)",
            f"{at} (second, winter time, CET)",
        ]
    with app.app_context():
        assert db.session.scalars(select(ScheduleException)).all() == []

    # From the first 02:30 to the second 02:45: an hour and a quarter.
    response = _period(
        client,
        path,
        prefix,
        **place,
        start_which="2026-10-25T02:30+02:00",
        end_which="2026-10-25T02:45+01:00",
    )
    assert response.status_code == 302
    with app.app_context():
        row = db.session.scalars(select(ScheduleException)).one()
        assert (row.starts_at, row.ends_at) == (FIRST, datetime(2026, 10, 25, 1, 45, tzinfo=UTC))


def test_a_period_outside_the_repeated_hour_asks_nothing(
    app: Flask, client: FlaskClient, clinic: Clinic, clock: Clock
) -> None:
    AuthActions(client).login("admin")
    path = f"/staff/admin/scheduling/specialists/{clinic.weber.id}"
    response = _period(client, path, "off", start_time="01:30", end_time="03:30")
    assert response.status_code == 302
    with app.app_context():
        row = db.session.scalars(select(ScheduleException)).one()
        assert (row.starts_at, row.ends_at) == (
            datetime(2026, 10, 24, 23, 30, tzinfo=UTC),
            datetime(2026, 10, 25, 2, 30, tzinfo=UTC),
        )


# The day agenda -----------------------------------------------------------------------------

ENTRY_RE = re.compile(r'<li class="agenda-entry ([^"]*)"[^>]*>(.*?)</li>', re.S)
HOUR_RE = re.compile(r'<div class="agenda-hour ag-from-(\d+) ag-to-\d+">([^<]*)</div>')


def test_the_day_agenda_shows_the_repeated_hour_twice(
    app: Flask, client: FlaskClient, clinic: Clinic, clock: Clock
) -> None:
    """Two 45-minute appointments at 02:30 CEST and 02:30 CET: each on its own rows, an hour
    apart, under the hours 02:00 CEST and 02:00 CET (they shared the rows of one 02:00)."""
    from booking.dashboard import services as workflow
    from booking.scheduling.models import AppointmentType, Location
    from booking.staff.models import StaffUser

    with app.app_context():
        coordinator = db.session.get(StaffUser, clinic.coordinator.id)
        weber = db.session.get(StaffUser, clinic.weber.id)
        location = db.session.get(Location, clinic.location)
        kind = db.session.get(AppointmentType, clinic.type)
        for name, fold in (("Ana First", 0), ("Bea Second", 1)):
            consultation = make_request(full_name=name, email=f"{name[:3].lower()}@example.com")
            slot = workflow.Slot(kind, weber, location, FALL_BACK, time_(2, 30), fold)
            workflow.confirm_request(consultation, coordinator, slot)
    AuthActions(client).login("coordinator")
    page = client.get("/staff/calendar", query_string={"date": FALL_BACK.isoformat()})
    assert page.status_code == 200
    body = page.get_data(as_text=True)
    hours = {label: int(line) for line, label in HOUR_RE.findall(body)}
    assert hours["02:00 CEST"] + 12 == hours["02:00 CET"] == hours["03:00"] - 12
    found = {
        text(inner).split(" · ")[0]: classes
        for classes, inner in ENTRY_RE.findall(body)
        if "First" in inner or "Second" in inner
    }
    first = next(c for t, c in found.items() if t.startswith("02:30 CEST\N{EN DASH}"))
    second = next(c for t, c in found.items() if t.startswith("02:30 CET\N{EN DASH}"))
    first_line = int(re.search(r"ag-from-(\d+)", first).group(1))  # type: ignore[union-attr]
    second_line = int(re.search(r"ag-from-(\d+)", second).group(1))  # type: ignore[union-attr]
    assert first_line == hours["02:00 CEST"] + 6 and second_line == first_line + 12
