"""The availability engine: open slots = working hours - exceptions - active appointments.

Everything is computed in UTC from the clinic's wall-clock rules, so a day with a clock change
has exactly the hours the clinic works that day. The queries are range queries on indexed
columns over the asked period only, so the cost follows the slots asked for, not the size of
the clinic's history.
"""

from __future__ import annotations

import functools
import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

from sqlalchemy import Select, bindparam, select

from booking.extensions import db
from booking.openinghours import clinic_closed_days
from booking.scheduling.models import (
    Appointment,
    AppointmentType,
    ClinicSettings,
    Location,
    ScheduleException,
    WorkingHours,
)
from booking.staff.models import StaffRole, StaffUser
from booking.timeutil import clinic_today, from_clinic_local, now_utc, to_clinic_tz
from booking.urlargs import date_arg

STEP = timedelta(minutes=15)
# Longest possible block (8 h appointment + 4 h buffer): how far back an appointment can start
# and still reach into the asked period. Keeps the appointment query a bounded range.
MAX_BLOCK = timedelta(hours=12)


@dataclass(frozen=True, order=True)
class OpenSlot:
    starts_at: datetime
    ends_at: datetime
    specialist_id: int
    location_id: int

    @property
    def key(self) -> str:
        """A compact, URL-safe identity: specialist.location.epoch-seconds."""
        return f"{self.specialist_id}.{self.location_id}.{int(self.starts_at.timestamp())}"


SLOT_KEY_RE = re.compile(r"([0-9]{1,9})\.([0-9]{1,9})\.([0-9]{1,11})", re.ASCII)


def parse_slot_key(key: str) -> tuple[int, int, datetime] | None:
    """The (specialist id, location id, start) a slot key names, or None for anything else."""
    match = SLOT_KEY_RE.fullmatch(key or "")
    if match is None:
        return None
    try:
        starts_at = datetime.fromtimestamp(int(match.group(3)), tz=UTC)
    except (ValueError, OverflowError, OSError):
        return None
    return int(match.group(1)), int(match.group(2)), starts_at


def clinic_settings() -> ClinicSettings:
    """The booking rules (defaults until an admin saves them)."""
    settings = db.session.get(ClinicSettings, 1)
    return (
        settings
        if settings is not None
        else ClinicSettings(
            id=1, buffer_minutes=10, min_notice_hours=24, horizon_days=60, cancel_notice_hours=24
        )
    )


def booking_limits(
    settings: ClinicSettings, now: datetime | None = None
) -> tuple[datetime, datetime]:
    """(earliest, latest) start a patient may book: minimum notice and booking horizon."""
    now = now or now_utc()
    earliest = now + timedelta(hours=settings.min_notice_hours)
    last_day = to_clinic_tz(now).date() + timedelta(days=settings.horizon_days)
    latest = from_clinic_local(last_day + timedelta(days=1), time())
    return earliest, latest


def _overlaps(a_start: datetime, a_end: datetime, b_start: datetime, b_end: datetime) -> bool:
    return a_start < b_end and b_start < a_end


@functools.cache
def _statements(by_specialist: bool, by_location: bool, ignoring: bool) -> tuple[Select, ...]:
    """The three queries of ``open_slots`` (working hours, exceptions, busy times) for one
    combination of its filters, built once: the values are bound parameters. Building a
    statement and its cache key each call cost more than running it (the slot re-check of a
    submission, the picker's week).

    The rows are plain columns, not ORM objects: the engine reads them once and keeps none."""
    specialists = select(StaffUser.id).where(
        StaffUser.role == StaffRole.SPECIALIST, StaffUser.active.is_(True)
    )
    if by_specialist:
        specialists = specialists.where(StaffUser.id == bindparam("specialist_id"))
    hours = (
        select(
            WorkingHours.specialist_id,
            WorkingHours.location_id,
            WorkingHours.weekday,
            WorkingHours.start_time,
            WorkingHours.end_time,
        )
        .join(Location, WorkingHours.location_id == Location.id)
        .where(WorkingHours.specialist_id.in_(specialists), Location.active.is_(True))
    )
    if by_location:
        hours = hours.where(WorkingHours.location_id == bindparam("location_id"))
    exceptions = (
        select(
            ScheduleException.kind,
            ScheduleException.specialist_id,
            ScheduleException.location_id,
            ScheduleException.starts_at,
            ScheduleException.ends_at,
        )
        .outerjoin(Location, ScheduleException.location_id == Location.id)
        .where(
            # Extra hours count only at an open location; time off always counts.
            (ScheduleException.kind == "time_off") | Location.active.is_(True),
            ScheduleException.specialist_id.in_(specialists),
            ScheduleException.starts_at < bindparam("exceptions_end"),
            ScheduleException.ends_at > bindparam("start"),
        )
    )
    busy = select(
        Appointment.specialist_id,
        Appointment.starts_at,
        Appointment.ends_at,
        Appointment.blocked_until,
    ).where(
        Appointment.specialist_id.in_(specialists),
        Appointment.active.is_(True),
        Appointment.starts_at < bindparam("busy_end"),
        Appointment.starts_at > bindparam("busy_from"),
        # Those ending less than the buffer before ``start`` too: a grown buffer reaches it.
        Appointment.blocked_until > bindparam("blocked_after"),
    )
    if ignoring:
        busy = busy.where(Appointment.id != bindparam("ignore_id"))
    return hours, exceptions, busy


def open_slots(
    appointment_type: AppointmentType,
    start: datetime,
    end: datetime,
    *,
    specialist_id: int | None = None,
    location_id: int | None = None,
    ignore_appointment_id: int | None = None,
    enforce_limits: bool = True,
    ignore_bookings: bool = False,
    now: datetime | None = None,
) -> list[OpenSlot]:
    """Open slots for ``appointment_type`` starting in [start, end), earliest first.

    ``enforce_limits`` applies the minimum notice and horizon (patients); staff moving an
    appointment pass False. ``ignore_appointment_id`` frees the time of the appointment being
    moved, so it can move to an overlapping time. ``ignore_bookings`` leaves every appointment
    out: the times offered for booking at all, taken or not.
    """
    settings = clinic_settings()
    if enforce_limits:
        earliest, latest = booking_limits(settings, now)
        start, end = max(start, earliest), min(end, latest)
    if start >= end:
        return []
    duration = timedelta(minutes=appointment_type.duration_minutes)
    buffer = timedelta(minutes=settings.buffer_minutes)

    hours_stmt, exceptions_stmt, busy_stmt = _statements(
        specialist_id is not None, location_id is not None, ignore_appointment_id is not None
    )
    params = {
        "specialist_id": specialist_id,
        "location_id": location_id,
        "ignore_id": ignore_appointment_id,
        "start": start,
        "exceptions_end": end + duration,
        "busy_end": end + duration + buffer,
        "busy_from": start - MAX_BLOCK,
        "blocked_after": start - buffer,
    }
    hours = db.session.execute(hours_stmt, params).all()
    exceptions = db.session.execute(exceptions_stmt, params).all()
    busy: dict[int, list[tuple[datetime, datetime]]] = defaultdict(list)
    for sid, b_start, b_ends, b_blocked in (
        () if ignore_bookings else db.session.execute(busy_stmt, params)
    ):
        # The buffer after a booking is the one in force now, if it grew since the booking
        # stored its own (``blocked_until``), as the buffer before it always is.
        busy[sid].append((b_start, max(b_blocked, b_ends + buffer)))
    time_off: dict[int, list[tuple[datetime, datetime]]] = defaultdict(list)
    windows: list[tuple[int, int, datetime, datetime]] = []
    extra: dict[int, list[tuple[int, datetime, datetime]]] = defaultdict(list)
    for kind, sid, lid, e_start, e_end in exceptions:
        if kind == "time_off":
            time_off[sid].append((e_start, e_end))
        elif lid is not None:
            extra[sid].append((lid, e_start, e_end))
            if location_id in (None, lid):
                windows.append((sid, lid, e_start, e_end))

    day = to_clinic_tz(start).date()
    last_day = to_clinic_tz(end).date()
    by_weekday: dict[int, list[tuple[int, int, time, time]]] = defaultdict(list)
    for sid, lid, weekday, h_start, h_end in hours:
        by_weekday[weekday].append((sid, lid, h_start, h_end))
    closed = clinic_closed_days(day, last_day)  # public holidays: extra hours still count
    while day <= last_day:
        for sid, lid, h_start, h_end in () if day in closed else by_weekday[day.weekday()]:
            # Extra hours at another place replace the weekly hours they overlap: one place
            # at a time (an admin moving a day's work elsewhere adds them there).
            elsewhere = [(a, b) for other, a, b in extra[sid] if other != lid]
            for w_start, w_end in subtract_periods(
                from_clinic_local(day, h_start), from_clinic_local(day, h_end), elsewhere
            ):
                windows.append((sid, lid, w_start, w_end))
        day += timedelta(days=1)

    slots: set[OpenSlot] = set()
    for sid, lid, w_start, w_end in windows:
        candidate = w_start
        while candidate + duration <= w_end:
            slot_end = candidate + duration
            if (
                start <= candidate < end
                and not any(_overlaps(candidate, slot_end, a, b) for a, b in time_off[sid])
                and not any(_overlaps(candidate, slot_end + buffer, a, b) for a, b in busy[sid])
            ):
                slots.add(OpenSlot(candidate, slot_end, sid, lid))
            candidate += STEP
    return sorted(slots)


def subtract_periods(
    start: datetime, end: datetime, cuts: list[tuple[datetime, datetime]]
) -> list[tuple[datetime, datetime]]:
    """[start, end) less every cut: what is left, in order (also the staff agenda's)."""
    pieces = [(start, end)]
    for cut_start, cut_end in cuts:
        pieces = [
            part
            for a, b in pieces
            for part in ((a, min(b, cut_start)), (max(a, cut_end), b))
            if part[0] < part[1]
        ]
    return pieces


def find_open_slot(
    appointment_type: AppointmentType,
    specialist_id: int,
    location_id: int,
    starts_at: datetime,
    *,
    ignore_appointment_id: int | None = None,
    enforce_limits: bool = True,
    ignore_bookings: bool = False,
) -> OpenSlot | None:
    """The open slot starting exactly at ``starts_at`` for that specialist and place, if any."""
    for slot in open_slots(
        appointment_type,
        starts_at,
        starts_at + timedelta(seconds=1),
        specialist_id=specialist_id,
        location_id=location_id,
        ignore_appointment_id=ignore_appointment_id,
        enforce_limits=enforce_limits,
        ignore_bookings=ignore_bookings,
    ):
        if slot.starts_at == starts_at:
            return slot
    return None


def week_start(day_text: str | None) -> datetime:
    """Midnight (clinic time) starting the asked day, or today (a hand-edited URL's year 1 or
    9999 counts as absent, like every URL date)."""
    return from_clinic_local(date_arg(day_text) or clinic_today(), time())
