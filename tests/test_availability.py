"""The availability engine: open slots = working hours - exceptions - active appointments.

Times are asserted in UTC, the way they are stored; the clinic's wall clock only decides which
UTC instants a day's hours cover (Europe/Berlin unless a test sets ``CLINIC_TIMEZONE``).
"""

from __future__ import annotations

import html
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask import Flask, current_app
from sqlalchemy import select

from booking.extensions import db
from booking.requests.models import ConsultationRequest, Patient, RequestStatus, TriageLevel
from booking.scheduling.availability import OpenSlot, open_slots, parse_slot_key
from booking.scheduling.models import (
    Appointment,
    AppointmentType,
    ClinicClosure,
    ClinicSettings,
    Location,
    ScheduleException,
)
from booking.staff.models import StaffUser
from booking.timeutil import from_clinic_local
from tests.factories import make_appointment_type, make_hours, make_location, staff_user
from tests.support import Clinic, answer_red_flags, sql_statements

MINUTES_15 = timedelta(minutes=15)
# A Wednesday in winter (Berlin is UTC+1) and one in summer (UTC+2), far from any clock change.
WINTER_DAY = date(2026, 12, 2)
SUMMER_DAY = date(2027, 7, 7)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def every_15_minutes(first: datetime, count: int) -> list[datetime]:
    return [first + MINUTES_15 * n for n in range(count)]


def starts(slots: list[OpenSlot]) -> list[datetime]:
    return [slot.starts_at for slot in slots]


def day_range(day: date, days: int = 1) -> tuple[datetime, datetime]:
    """The clinic-time days from ``day``'s midnight, as a UTC range."""
    return from_clinic_local(day, time()), from_clinic_local(day + timedelta(days=days), time())


@pytest.fixture
def clinic_timezone() -> str | None:
    """None keeps the default; tests parametrize it to run the engine in another zone."""
    return None


@pytest.fixture
def app_settings(app_settings: dict[str, Any], clinic_timezone: str | None) -> dict[str, Any]:
    if clinic_timezone is not None:
        app_settings["CLINIC_TIMEZONE"] = clinic_timezone
    return app_settings


@dataclass
class Schedule:
    specialist: StaffUser
    location: Location
    type45: AppointmentType

    def hours(self, days: list[date] | None = None, start: str = "09:00", end: str = "12:00"):
        weekdays = range(7) if days is None else sorted({d.weekday() for d in days})
        make_hours(self.specialist, self.location, weekdays, start=start, end=end)


@pytest.fixture
def working_hours() -> dict[str, tuple[str, str]]:
    return {}  # each test gives Dr. Weber the hours it needs (``Schedule.hours``)


@pytest.fixture
def clinic(app: Flask, clinic: Clinic) -> Iterator[Schedule]:
    """Dr. Weber, the location and the 45-minute type of ``clinic``, inside an app context."""
    with app.app_context():
        yield Schedule(
            specialist=db.session.get(StaffUser, clinic.weber.id),
            location=db.session.get(Location, clinic.location),
            type45=db.session.get(AppointmentType, clinic.type),
        )


def make_requests(count: int) -> list[int]:
    """Bare requests to hang appointments on (the engine never reads them), in one commit."""
    patient = Patient(
        full_name="History Patient",
        date_of_birth=date(1960, 1, 1),
        email="history@example.com",
        phone="+4930901820",
        preferred_contact="email",
    )
    now = datetime.now(UTC)
    requests = [
        ConsultationRequest(
            reference=f"SC-{secrets.token_hex(4).upper()}!",
            patient=patient,
            status=RequestStatus.CONFIRMED,
            triage_level=TriageLevel.ROUTINE,
            submission_token=secrets.token_urlsafe(32),
            privacy_notice_version="2026-11",
            consented_at=now,
            contact_consent=True,
        )
        for _ in range(count)
    ]
    db.session.add_all(requests)
    db.session.commit()
    return [r.id for r in requests]


def add_appointments(
    specialist_id: int,
    location_id: int,
    times: list[tuple[datetime, int]],
    *,
    buffer: int = 10,
    active: bool = True,
) -> list[int]:
    """Appointments as (start, minutes), blocking their end plus ``buffer`` like the services."""
    appointments = [
        Appointment(
            request_id=request_id,
            specialist_id=specialist_id,
            location_id=location_id,
            starts_at=starts_at,
            ends_at=starts_at + timedelta(minutes=minutes),
            blocked_until=starts_at + timedelta(minutes=minutes + buffer),
            active=active,
            uid=f"{secrets.token_hex(8)}@example.com",
        )
        for request_id, (starts_at, minutes) in zip(make_requests(len(times)), times, strict=True)
    ]
    db.session.add_all(appointments)
    db.session.commit()
    return [a.id for a in appointments]


def set_rules(**rules: int) -> None:
    """Save the clinic's booking rules (the admin's settings row), defaults for the rest."""
    values = {
        "buffer_minutes": 10,
        "min_notice_hours": 24,
        "horizon_days": 60,
        "cancel_notice_hours": 24,
    }
    values.update(rules)
    db.session.add(ClinicSettings(id=1, **values))
    db.session.commit()


# --- working hours -------------------------------------------------------------------------


def test_hours_give_a_slot_every_15_minutes_that_fits(app: Flask, clinic: Schedule) -> None:
    assert app.config["CLINIC_TIMEZONE"] == "Europe/Berlin"
    clinic.hours([WINTER_DAY])

    slots = open_slots(clinic.type45, *day_range(WINTER_DAY), enforce_limits=False)

    # 09:00 ... 11:15 Berlin (UTC+1 in December): the 11:15 slot ends exactly at 12:00.
    assert starts(slots) == every_15_minutes(utc(2026, 12, 2, 8, 0), 10)
    assert all(s.ends_at - s.starts_at == timedelta(minutes=45) for s in slots)
    assert {(s.specialist_id, s.location_id) for s in slots} == {
        (clinic.specialist.id, clinic.location.id)
    }


def test_summer_hours_map_to_utc_plus_two(clinic: Schedule) -> None:
    clinic.hours([SUMMER_DAY])
    slots = open_slots(clinic.type45, *day_range(SUMMER_DAY), enforce_limits=False)
    assert starts(slots) == every_15_minutes(utc(2027, 7, 7, 7, 0), 10)


def test_the_asked_range_bounds_the_starts_only(clinic: Schedule) -> None:
    clinic.hours([WINTER_DAY])
    # From 10:00 to 10:31 Berlin: three starts; the last one ends after the range, which is fine.
    slots = open_slots(
        clinic.type45, utc(2026, 12, 2, 9, 0), utc(2026, 12, 2, 9, 31), enforce_limits=False
    )
    assert starts(slots) == every_15_minutes(utc(2026, 12, 2, 9, 0), 3)
    assert slots[-1].ends_at == utc(2026, 12, 2, 10, 15)


def test_a_type_longer_than_the_hours_has_no_slot(clinic: Schedule) -> None:
    clinic.hours([WINTER_DAY], start="09:00", end="09:30")
    assert open_slots(clinic.type45, *day_range(WINTER_DAY), enforce_limits=False) == []


# --- appointments and buffers --------------------------------------------------------------

TEN_O_CLOCK = utc(2026, 12, 2, 9, 0)  # 10:00 Berlin


def test_an_appointment_blocks_its_time_and_both_buffers(clinic: Schedule) -> None:
    clinic.hours([WINTER_DAY])
    add_appointments(clinic.specialist.id, clinic.location.id, [(TEN_O_CLOCK, 45)])

    slots = open_slots(clinic.type45, *day_range(WINTER_DAY), enforce_limits=False)

    # Blocked: [10:00, 10:55). 09:00 ends 09:45, plus its buffer 09:55: free. 09:15 ends 10:00,
    # plus its own buffer 10:10: overlaps. 10:45 starts inside the appointment's buffer. 11:00
    # starts after it.
    berlin = ZoneInfo("Europe/Berlin")
    assert [s.starts_at.astimezone(berlin).strftime("%H:%M") for s in slots] == [
        "09:00",
        "11:00",
        "11:15",
    ]


def test_a_buffer_raised_since_a_booking_holds_after_it_as_before_it(clinic: Schedule) -> None:
    """The appointment stored its 10-minute buffer (blocked until 10:55); the clinic now
    keeps 60 minutes between visits: nothing starts before 11:45, as nothing before 10:00
    may end later than 09:00."""
    clinic.hours([WINTER_DAY], start="08:00", end="13:00")
    add_appointments(clinic.specialist.id, clinic.location.id, [(TEN_O_CLOCK, 45)])
    set_rules(buffer_minutes=60)

    slots = open_slots(clinic.type45, *day_range(WINTER_DAY), enforce_limits=False)

    berlin = ZoneInfo("Europe/Berlin")
    times = [s.starts_at.astimezone(berlin).strftime("%H:%M") for s in slots]
    assert times[:2] == ["08:00", "08:15"]  # 08:15-09:00, then an hour before 10:00
    assert "08:30" not in times and "11:30" not in times
    assert "11:45" in times


def test_without_a_buffer_appointments_may_touch(clinic: Schedule) -> None:
    set_rules(buffer_minutes=0)
    clinic.hours([WINTER_DAY])
    add_appointments(clinic.specialist.id, clinic.location.id, [(TEN_O_CLOCK, 45)], buffer=0)

    slots = open_slots(clinic.type45, *day_range(WINTER_DAY), enforce_limits=False)

    # 09:15-10:00 ends as the appointment starts; 10:45 starts as it ends.
    assert starts(slots) == [
        utc(2026, 12, 2, 8, 0),
        utc(2026, 12, 2, 8, 15),
        utc(2026, 12, 2, 9, 45),
        utc(2026, 12, 2, 10, 0),
        utc(2026, 12, 2, 10, 15),
    ]


def test_a_cancelled_appointment_blocks_nothing(clinic: Schedule) -> None:
    clinic.hours([WINTER_DAY])
    add_appointments(clinic.specialist.id, clinic.location.id, [(TEN_O_CLOCK, 45)], active=False)
    slots = open_slots(clinic.type45, *day_range(WINTER_DAY), enforce_limits=False)
    assert starts(slots) == every_15_minutes(utc(2026, 12, 2, 8, 0), 10)


def test_another_specialists_appointment_blocks_nothing(clinic: Schedule) -> None:
    clinic.hours([WINTER_DAY])
    other = staff_user("okafor@example.com")
    add_appointments(other.id, clinic.location.id, [(TEN_O_CLOCK, 45)])
    slots = open_slots(clinic.type45, *day_range(WINTER_DAY), enforce_limits=False)
    assert starts(slots) == every_15_minutes(utc(2026, 12, 2, 8, 0), 10)


def test_ignoring_the_moved_appointment_frees_its_own_time(clinic: Schedule) -> None:
    clinic.hours([WINTER_DAY])
    moved, _other = add_appointments(
        clinic.specialist.id,
        clinic.location.id,
        [(TEN_O_CLOCK, 45), (utc(2026, 12, 2, 10, 45), 15)],  # 11:45-12:00 Berlin
    )

    slots = open_slots(
        clinic.type45, *day_range(WINTER_DAY), ignore_appointment_id=moved, enforce_limits=False
    )

    # The moved appointment's own time is free again; the other appointment still blocks
    # 11:45-12:10, so 11:00 (ending 11:45, +10 buffer) is the last start.
    assert starts(slots) == every_15_minutes(utc(2026, 12, 2, 8, 0), 8)
    assert starts(slots)[-1] == utc(2026, 12, 2, 9, 45)  # 10:45 Berlin


# --- exceptions ----------------------------------------------------------------------------


def add_exception(clinic: Schedule, kind: str, start: datetime, end: datetime, **kw: Any) -> None:
    db.session.add(
        ScheduleException(
            specialist_id=kw.get("specialist_id", clinic.specialist.id),
            kind=kind,
            location_id=kw.get("location_id"),
            starts_at=start,
            ends_at=end,
            reason="test",
        )
    )
    db.session.commit()


def test_time_off_removes_the_slots_it_overlaps(clinic: Schedule) -> None:
    clinic.hours([WINTER_DAY])
    # 10:00-11:00 Berlin off: 09:15-10:00 still fits (time off needs no buffer), 11:00 too.
    add_exception(clinic, "time_off", TEN_O_CLOCK, utc(2026, 12, 2, 10, 0))

    slots = open_slots(clinic.type45, *day_range(WINTER_DAY), enforce_limits=False)

    assert starts(slots) == [
        utc(2026, 12, 2, 8, 0),
        utc(2026, 12, 2, 8, 15),
        utc(2026, 12, 2, 10, 0),
        utc(2026, 12, 2, 10, 15),
    ]


def test_a_whole_day_off_leaves_nothing(clinic: Schedule) -> None:
    clinic.hours()
    add_exception(clinic, "time_off", *day_range(WINTER_DAY))
    slots = open_slots(
        clinic.type45, *day_range(WINTER_DAY - timedelta(days=1), 3), enforce_limits=False
    )
    assert {s.starts_at.date() for s in slots} == {date(2026, 12, 1), date(2026, 12, 3)}


def test_extra_hours_add_a_window_at_their_location(clinic: Schedule) -> None:
    clinic.hours([WINTER_DAY])  # Wednesdays only, at the main clinic
    north = make_location("North clinic", "Nordstr. 2, Berlin")
    thursday = WINTER_DAY + timedelta(days=1)
    # Thursday 14:00-15:30 Berlin at North, with 15:00-15:30 of it off again.
    add_exception(
        clinic, "extra", utc(2026, 12, 3, 13, 0), utc(2026, 12, 3, 14, 30), location_id=north.id
    )

    slots = open_slots(clinic.type45, *day_range(thursday), enforce_limits=False)
    assert starts(slots) == every_15_minutes(utc(2026, 12, 3, 13, 0), 4)  # 14:00 ... 14:45
    assert {s.location_id for s in slots} == {north.id}

    assert (
        open_slots(
            clinic.type45,
            *day_range(thursday),
            location_id=clinic.location.id,
            enforce_limits=False,
        )
        == []
    )
    add_exception(clinic, "time_off", utc(2026, 12, 3, 14, 0), utc(2026, 12, 3, 14, 30))
    slots = open_slots(clinic.type45, *day_range(thursday), enforce_limits=False)
    # 14:15-15:00 ends as the time off starts; 14:30 and 14:45 overlap it.
    assert starts(slots) == [utc(2026, 12, 3, 13, 0), utc(2026, 12, 3, 13, 15)]


def test_extra_hours_elsewhere_replace_the_weekly_hours_they_overlap(clinic: Schedule) -> None:
    """Dr. Weber works Wednesdays 09:00-12:00 at the main clinic; this Wednesday 09:00-10:30
    at North instead: one place at a time, so the main clinic offers only what is left."""
    clinic.hours([WINTER_DAY])
    north = make_location("North clinic", "Nordstr. 2, Berlin")
    add_exception(
        clinic, "extra", utc(2026, 12, 2, 8, 0), utc(2026, 12, 2, 9, 30), location_id=north.id
    )

    slots = open_slots(clinic.type45, *day_range(WINTER_DAY), enforce_limits=False)

    at = {location: [] for location in (clinic.location.id, north.id)}
    for slot in slots:
        at[slot.location_id].append(slot.starts_at)
    assert at[north.id] == every_15_minutes(utc(2026, 12, 2, 8, 0), 4)  # 09:00 ... 09:45
    assert at[clinic.location.id] == every_15_minutes(utc(2026, 12, 2, 9, 30), 4)  # 10:30-11:15
    # Asked for the main clinic alone, the same: North's hours still count against it.
    main_only = open_slots(
        clinic.type45,
        *day_range(WINTER_DAY),
        location_id=clinic.location.id,
        enforce_limits=False,
    )
    assert starts(main_only) == at[clinic.location.id]


def test_the_staff_agenda_draws_the_same_places_as_the_patients_are_offered(
    clinic: Schedule,
) -> None:
    from booking.scheduling.agenda import working_time

    clinic.hours([WINTER_DAY])
    north = make_location("North clinic", "Nordstr. 2, Berlin")
    add_exception(
        clinic, "extra", utc(2026, 12, 2, 8, 0), utc(2026, 12, 2, 9, 30), location_id=north.id
    )
    windows, _time_off = working_time(*day_range(WINTER_DAY), [clinic.specialist.id])
    assert [(w.starts_at, w.ends_at, w.location_id) for w in windows] == [
        (utc(2026, 12, 2, 8, 0), utc(2026, 12, 2, 9, 30), north.id),
        (utc(2026, 12, 2, 9, 30), utc(2026, 12, 2, 11, 0), clinic.location.id),
    ]


def test_extra_hours_at_a_closed_location_give_no_slots(clinic: Schedule) -> None:
    north = make_location("North clinic", "Nordstr. 2, Berlin")
    add_exception(
        clinic, "extra", utc(2026, 12, 3, 13, 0), utc(2026, 12, 3, 14, 30), location_id=north.id
    )
    north.active = False
    db.session.commit()
    assert open_slots(clinic.type45, *day_range(date(2026, 12, 3)), enforce_limits=False) == []


# --- minimum notice and horizon ------------------------------------------------------------

NOW = utc(2026, 12, 1, 8, 0)  # Tuesday 09:00 Berlin


# --- public holidays and closed days -------------------------------------------------------

CHRISTMAS = date(2026, 12, 25)  # a Friday; Berlin's public holiday, as everywhere in Germany
WOMENS_DAY = date(2027, 3, 8)  # a Monday; a public holiday in Berlin only


@pytest.fixture
def closed(app_settings: dict[str, Any]) -> dict[str, Any]:
    app_settings["CLINIC_HOLIDAYS"] = "DE-BE"
    app_settings["CLINIC_CLOSED_DAYS"] = "2026-12-31"
    return app_settings


def test_no_time_is_offered_on_a_public_holiday_or_a_closed_day(
    closed: dict[str, Any], clinic: Schedule
) -> None:
    """Weekly hours do not apply on the public holidays of CLINIC_HOLIDAYS or the dates of
    CLINIC_CLOSED_DAYS (the call-back targets already counted them as closed while patients
    could book them); the working days around them are offered as usual."""
    clinic.hours()  # every day, 09:00-12:00
    for day in (CHRISTMAS, WOMENS_DAY, date(2026, 12, 31)):
        assert open_slots(clinic.type45, *day_range(day), enforce_limits=False) == [], day
    for day in (CHRISTMAS - timedelta(days=1), date(2026, 12, 30), WOMENS_DAY + timedelta(days=1)):
        assert len(open_slots(clinic.type45, *day_range(day), enforce_limits=False)) == 10, day
    # A week across Christmas: the days other than the 25th and 26th (both holidays).
    week = open_slots(
        clinic.type45, *day_range(CHRISTMAS - timedelta(days=3), 7), enforce_limits=False
    )
    days = {s.starts_at.astimezone(ZoneInfo("Europe/Berlin")).date() for s in week}
    assert sorted(d.day for d in days) == [22, 23, 24, 27, 28]


def test_extra_hours_open_a_public_holiday(closed: dict[str, Any], clinic: Schedule) -> None:
    clinic.hours()
    # Christmas Day 10:00-11:00 Berlin (09:00-10:00 UTC), entered by an admin.
    add_exception(
        clinic,
        "extra",
        utc(2026, 12, 25, 9, 0),
        utc(2026, 12, 25, 10, 0),
        location_id=clinic.location.id,
    )
    slots = open_slots(clinic.type45, *day_range(CHRISTMAS), enforce_limits=False)
    assert starts(slots) == every_15_minutes(utc(2026, 12, 25, 9, 0), 2)  # 10:00, 10:15


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("CLINIC_HOLIDAYS", "DE-XX", "is not a region the holidays package knows"),
        ("CLINIC_HOLIDAYS", "XX", "is not a region the holidays package knows"),
        ("CLINIC_CLOSED_DAYS", "2026-12-24, 24.12.2026", "CLINIC_CLOSED_DAYS cannot be read"),
    ],
)
def test_a_closed_days_setting_that_cannot_be_read_stops_the_app_at_start(
    app_settings: dict[str, Any], setting: str, value: str, message: str
) -> None:
    """Not on the first booking or the first minute of the escalation job."""
    from booking import create_app

    with pytest.raises(RuntimeError, match=message):
        create_app({**app_settings, setting: value})


def test_default_rules_are_24_hours_notice_and_60_days(clinic: Schedule) -> None:
    clinic.hours()
    slots = open_slots(clinic.type45, NOW - timedelta(days=1), NOW + timedelta(days=90), now=NOW)
    # Exactly 24 h ahead is allowed; the last day is 60 clinic days after today.
    assert slots[0].starts_at == NOW + timedelta(hours=24)
    assert slots[-1].starts_at == utc(2027, 1, 30, 10, 15)  # 11:15 Berlin
    assert len(slots) == 60 * 10


def test_saved_rules_set_notice_and_horizon(clinic: Schedule) -> None:
    set_rules(min_notice_hours=25, horizon_days=3)
    clinic.hours()

    slots = open_slots(clinic.type45, NOW - timedelta(days=1), NOW + timedelta(days=30), now=NOW)

    # Earliest 2 Dec 10:00 Berlin (09:00 UTC); latest day 4 Dec (today + 3).
    assert slots[0].starts_at == utc(2026, 12, 2, 9, 0)
    assert slots[-1].starts_at == utc(2026, 12, 4, 10, 15)
    assert len(slots) == 6 + 10 + 10


def test_staff_are_not_bound_by_notice_or_horizon(clinic: Schedule) -> None:
    set_rules(min_notice_hours=25, horizon_days=3)
    clinic.hours()

    slots = open_slots(
        clinic.type45,
        NOW - timedelta(days=1),
        NOW + timedelta(days=30),
        now=NOW,
        enforce_limits=False,
    )

    # From 30 Nov 09:00 Berlin (the range's start, in the past) to 30 Dec: 31 whole days.
    assert slots[0].starts_at == NOW - timedelta(days=1)
    assert slots[-1].starts_at == utc(2026, 12, 30, 10, 15)
    assert len(slots) == 31 * 10


def test_a_range_entirely_too_soon_or_too_late_is_empty(clinic: Schedule) -> None:
    clinic.hours()
    assert open_slots(clinic.type45, NOW, NOW + timedelta(hours=23), now=NOW) == []
    late = NOW + timedelta(days=61)
    assert open_slots(clinic.type45, late, late + timedelta(days=7), now=NOW) == []


# --- clock changes -------------------------------------------------------------------------

# (zone, change day, hours 01:00-04:00 that day as a UTC range)
NIGHT_HOURS = [
    # Berlin spring: 02:00 CET jumps to 03:00 CEST. 01:00 CET = 00:00Z, 04:00 CEST = 02:00Z.
    pytest.param("Europe/Berlin", date(2027, 3, 28), utc(2027, 3, 28, 0), 2, id="berlin-spring"),
    # Berlin autumn: 03:00 CEST falls back to 02:00 CET. 01:00 CEST = 23:00Z the day before,
    # 04:00 CET = 03:00Z: four real hours.
    pytest.param("Europe/Berlin", date(2026, 10, 25), utc(2026, 10, 24, 23), 4, id="berlin-autumn"),
    # New York spring: 02:00 EST jumps to 03:00 EDT. 01:00 EST = 06:00Z, 04:00 EDT = 08:00Z.
    pytest.param("America/New_York", date(2027, 3, 14), utc(2027, 3, 14, 6), 2, id="ny-spring"),
    # New York autumn: 02:00 EDT falls back to 01:00 EST, so 01:00 happens twice; the hours
    # open at the first one (01:00 EDT = 05:00Z) and close at 04:00 EST = 09:00Z.
    pytest.param("America/New_York", date(2026, 11, 1), utc(2026, 11, 1, 5), 4, id="ny-autumn"),
]


@pytest.mark.parametrize(("clinic_timezone", "day", "first", "real_hours"), NIGHT_HOURS)
def test_hours_across_a_clock_change_give_the_real_elapsed_time(
    app: Flask, clinic: Schedule, clinic_timezone: str, day: date, first: datetime, real_hours: int
) -> None:
    assert app.config["CLINIC_TIMEZONE"] == clinic_timezone
    clinic.hours([day], start="01:00", end="04:00")
    quarter = make_appointment_type("Short review", minutes=15)

    slots = open_slots(quarter, *day_range(day), enforce_limits=False)

    # 15-minute slots tile the window: one per real quarter hour, none doubled or missing.
    assert starts(slots) == every_15_minutes(first, real_hours * 4)
    assert slots[-1].ends_at == first + timedelta(hours=real_hours)
    local = [s.starts_at.astimezone(ZoneInfo(clinic_timezone)).strftime("%H:%M") for s in slots]
    if real_hours == 2:  # the skipped hour has no slots
        assert local[3:5] == ["01:45", "03:00"]
    else:  # the repeated hour has its slots twice, at different instants
        repeated = "02:15" if clinic_timezone == "Europe/Berlin" else "01:15"
        assert local.count(repeated) == 2


# (zone, day, its real hours from midnight to midnight)
ALL_DAY = [
    pytest.param("Europe/Berlin", WINTER_DAY, 24, id="berlin-winter"),
    pytest.param("Europe/Berlin", date(2027, 3, 28), 23, id="berlin-spring"),
    pytest.param("Europe/Berlin", date(2026, 10, 25), 25, id="berlin-autumn"),
    pytest.param("America/New_York", date(2026, 11, 1), 25, id="ny-autumn"),
]


@pytest.mark.parametrize(("clinic_timezone", "day", "real_hours"), ALL_DAY)
def test_hours_to_24_00_offer_times_up_to_midnight(
    clinic: Schedule, clinic_timezone: str, day: date, real_hours: int
) -> None:
    """Hours "00:00-24:00" (a clinic open round the clock): 24:00 is the midnight that ends
    the day, so the last 15-minute slot starts at 23:45 and ends at 24:00, and on the day the
    clocks change the day holds its real 23 or 25 hours of slots."""
    clinic.hours([day], start="00:00", end="24:00")
    quarter = make_appointment_type("Short review", minutes=15)
    midnight, next_midnight = day_range(day)

    slots = open_slots(quarter, midnight, next_midnight, enforce_limits=False)

    assert starts(slots) == every_15_minutes(midnight, real_hours * 4)
    assert slots[-1].ends_at == next_midnight
    assert slots[-1].starts_at.astimezone(ZoneInfo(clinic_timezone)).strftime("%H:%M") == "23:45"
    last45 = open_slots(clinic.type45, midnight, next_midnight, enforce_limits=False)[-1]
    assert (last45.starts_at, last45.ends_at) == (
        next_midnight - timedelta(minutes=45),
        next_midnight,
    )


# (zone, change day, 09:00 the day before in UTC, 09:00 on the change day in UTC)
MORNINGS = [
    pytest.param("Europe/Berlin", date(2027, 3, 28), 8, 7, id="berlin-spring"),
    pytest.param("Europe/Berlin", date(2026, 10, 25), 7, 8, id="berlin-autumn"),
    pytest.param("America/New_York", date(2027, 3, 14), 14, 13, id="ny-spring"),
    pytest.param("America/New_York", date(2026, 11, 1), 13, 14, id="ny-autumn"),
]


@pytest.mark.parametrize(("clinic_timezone", "day", "before_hour", "after_hour"), MORNINGS)
def test_normal_hours_follow_the_offset_change(
    clinic: Schedule, clinic_timezone: str, day: date, before_hour: int, after_hour: int
) -> None:
    clinic.hours()
    eve = day - timedelta(days=1)

    slots = open_slots(clinic.type45, *day_range(eve, 2), enforce_limits=False)

    at = datetime.combine
    assert starts(slots) == every_15_minutes(at(eve, time(before_hour), UTC), 10) + (
        every_15_minutes(at(day, time(after_hour), UTC), 10)
    )


# --- which specialists and places ----------------------------------------------------------


@pytest.fixture
def two_practices(clinic: Schedule) -> dict[str, int]:
    """Dr. Weber at the main clinic and Dr. Okafor at North, both 09:00-12:00."""
    okafor = staff_user("okafor@example.com")
    north = make_location("North clinic", "Nordstr. 2, Berlin")
    clinic.hours([WINTER_DAY])
    make_hours(okafor, north, [WINTER_DAY.weekday()], start="09:00", end="12:00")
    # A coordinator's hours (set up by mistake) never make slots: only specialists are booked.
    coordinator = staff_user("coord@example.com")
    make_hours(coordinator, clinic.location, [WINTER_DAY.weekday()], start="13:00", end="17:00")
    return {
        "weber": clinic.specialist.id,
        "okafor": okafor.id,
        "main": clinic.location.id,
        "north": north.id,
    }


def who_where(slots: list[OpenSlot]) -> set[tuple[int, int]]:
    return {(s.specialist_id, s.location_id) for s in slots}


def test_filters_by_specialist_and_location(
    clinic: Schedule, two_practices: dict[str, int]
) -> None:
    ids = two_practices
    window = day_range(WINTER_DAY)

    def slots(**kw: Any) -> list[OpenSlot]:
        return open_slots(clinic.type45, *window, enforce_limits=False, **kw)

    everyone = slots()
    assert len(everyone) == 20
    assert who_where(everyone) == {(ids["weber"], ids["main"]), (ids["okafor"], ids["north"])}
    assert who_where(slots(specialist_id=ids["okafor"])) == {(ids["okafor"], ids["north"])}
    assert len(slots(specialist_id=ids["okafor"])) == 10
    assert who_where(slots(location_id=ids["main"])) == {(ids["weber"], ids["main"])}
    assert slots(specialist_id=ids["weber"], location_id=ids["north"]) == []


def test_inactive_specialist_or_closed_location_has_no_slots(
    clinic: Schedule, two_practices: dict[str, int]
) -> None:
    ids = two_practices
    window = day_range(WINTER_DAY)
    db.session.get(StaffUser, ids["okafor"]).active = False
    db.session.commit()
    assert who_where(open_slots(clinic.type45, *window, enforce_limits=False)) == {
        (ids["weber"], ids["main"])
    }
    assert (
        open_slots(clinic.type45, *window, specialist_id=ids["okafor"], enforce_limits=False) == []
    )

    db.session.get(Location, ids["main"]).active = False
    db.session.commit()
    assert open_slots(clinic.type45, *window, enforce_limits=False) == []


# --- cost ----------------------------------------------------------------------------------


@pytest.mark.parametrize("history", [10, 300])
def test_queries_follow_the_asked_week_not_the_history(clinic: Schedule, history: int) -> None:
    clinic.hours()
    week = day_range(WINTER_DAY, 7)
    # One appointment a day at 10:00 Berlin for ``history`` days before the asked week, and
    # two inside it.
    past = [(TEN_O_CLOCK - timedelta(days=n), 45) for n in range(1, history + 1)]
    add_appointments(clinic.specialist.id, clinic.location.id, [*past, (TEN_O_CLOCK, 45)])
    add_appointments(
        clinic.specialist.id, clinic.location.id, [(TEN_O_CLOCK + timedelta(days=3), 45)]
    )
    # And a day closed by an admin for each of those days, none inside the asked week.
    db.session.add_all(
        ClinicClosure(day=WINTER_DAY - timedelta(days=n), reason="Training")
        for n in range(1, history + 1)
    )
    db.session.commit()
    type_id = clinic.type45.id
    db.session.remove()  # a fresh session, as a request would have
    appointment_type = db.session.get(AppointmentType, type_id)
    assert appointment_type is not None and appointment_type.duration_minutes == 45

    found: list[OpenSlot] = []
    with sql_statements(current_app) as statements:
        found.extend(open_slots(appointment_type, *week, enforce_limits=False))

    assert len(found) == 7 * 10 - 2 * 7  # each appointment takes 7 of the day's 10 starts
    # Settings, working hours, exceptions, appointments, the days closed in the app: five
    # range queries, whatever the size of the history.
    assert len(statements) == 5, statements
    assert db.session.scalar(select(db.func.count(Appointment.id))) == history + 2


# --- slot keys -----------------------------------------------------------------------------


def test_a_slot_key_round_trips() -> None:
    slot = OpenSlot(utc(2026, 12, 2, 9, 15), utc(2026, 12, 2, 10, 0), 12, 3)
    assert slot.key == f"12.3.{int(slot.starts_at.timestamp())}"
    assert parse_slot_key(slot.key) == (12, 3, slot.starts_at)


@pytest.mark.parametrize(
    "key",
    [
        "",
        "abc",
        "1.2",
        "1.2.3.4",
        "1..1796184000",
        "-1.2.1796184000",
        "1.2.-1796184000",
        "1.2.1796184000.5",
        "1.2.17961840000000",  # 14 digits
        " 1.2.1796184000",
        "1.2.0x10",
        "1.2.999999999999",
        "1.2.\u00b2",
        "99999999999999999999.1.1796184000",
    ],
)
def test_garbage_slot_keys_are_refused(key: str) -> None:
    assert parse_slot_key(key) is None


def test_parse_slot_key_takes_none() -> None:
    assert parse_slot_key(None) is None  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "key",
    [
        pytest.param("1.1.999999999999", id="year-out-of-range"),
        pytest.param("1.1.\u00b2", id="superscript-digit"),
        pytest.param("99999999999999999999.1.{soon}", id="oversized-id"),
    ],
)
def test_the_time_step_ignores_a_crafted_slot_key(app: Flask, clinic: Schedule, key: str) -> None:
    clinic.hours()
    soon = int((datetime.now(UTC) + timedelta(days=5)).timestamp())
    path = f"/request/steps/time?type={clinic.type45.id}&slot={key.format(soon=soon)}"
    client = app.test_client()
    answer_red_flags(client)
    assert client.get(path).status_code == 200


@pytest.mark.parametrize("day", ["0001-01-01", "9999-12-31", "2026-02-30", "²"])
def test_the_pickers_ignore_an_impossible_start_date(
    app: Flask, clinic: Schedule, day: str
) -> None:
    clinic.hours()
    client = app.test_client()
    assert client.get("/request/time", query_string={"from": day}).status_code == 200


MORE_DATES = re.compile(r'href="([^"]+)">(Earlier|Later) dates</a>')


def test_the_pickers_earlier_and_later_dates_open_at_the_days(app: Flask, clinic: Schedule) -> None:
    """ "Earlier dates" and "Later dates" opened the picker at the top of the page: the
    patient scrolled past the filters again to reach the days. They open at the dates'
    heading, above the days, as a day chosen does."""
    clinic.hours()
    client = app.test_client()
    page = client.get("/request/time").get_data(as_text=True)
    [(later, _)] = MORE_DATES.findall(page)
    assert later.endswith("#times-heading") and 'id="times-heading"' in page
    page = client.get(html.unescape(later).partition("#")[0]).get_data(as_text=True)
    links = dict((word, url) for url, word in MORE_DATES.findall(page))
    assert set(links) == {"Earlier", "Later"}
    assert all(url.endswith("#times-heading") for url in links.values())
    assert 'id="times-heading"' in page
