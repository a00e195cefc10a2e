"""The specialists' working time between two instants, for the staff agenda: when they work
(weekly hours and extra hours, at open locations) and their time off.

Two queries whatever the period or the number of specialists. Weekly hours are clinic
wall-clock rules, turned into UTC one day at a time (``from_clinic_local``), so a day with a
clock change has exactly the hours the clinic works that day, as in the availability engine.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from sqlalchemy import select

from booking.extensions import db
from booking.openinghours import clinic_closed_days
from booking.scheduling.availability import subtract_periods
from booking.scheduling.models import Appointment, Location, ScheduleException, WorkingHours
from booking.timeutil import from_clinic_local, to_clinic_tz


@dataclass(frozen=True, order=True)
class WorkWindow:
    """A stretch of time a specialist works at one location (UTC)."""

    starts_at: datetime
    ends_at: datetime
    specialist_id: int
    location_id: int


@dataclass(frozen=True, order=True)
class TimeOff:
    starts_at: datetime
    ends_at: datetime
    specialist_id: int
    reason: str | None


def working_time(
    start: datetime,
    end: datetime,
    specialist_ids: Collection[int] | None,
    location_id: int | None = None,
) -> tuple[list[WorkWindow], list[TimeOff]]:
    """The work windows (clipped to [start, end)) and the time off overlapping [start, end)
    of ``specialist_ids`` (None: every specialist). ``location_id`` keeps the windows at that
    location; time off is the specialist's wherever they would have worked."""
    hours_stmt = (
        select(
            WorkingHours.specialist_id,
            WorkingHours.location_id,
            WorkingHours.weekday,
            WorkingHours.start_time,
            WorkingHours.end_time,
        )
        .join(Location, WorkingHours.location_id == Location.id)
        .where(Location.active.is_(True))
    )
    exceptions_stmt = (
        select(
            ScheduleException.kind,
            ScheduleException.specialist_id,
            ScheduleException.location_id,
            ScheduleException.starts_at,
            ScheduleException.ends_at,
            ScheduleException.reason,
        )
        .outerjoin(Location, ScheduleException.location_id == Location.id)
        .where(
            # Extra hours count only at an open location; time off always counts.
            (ScheduleException.kind == "time_off") | Location.active.is_(True),
            ScheduleException.starts_at < end,
            ScheduleException.ends_at > start,
        )
    )
    if specialist_ids is not None:
        ids = sorted(set(specialist_ids))
        hours_stmt = hours_stmt.where(WorkingHours.specialist_id.in_(ids))
        exceptions_stmt = exceptions_stmt.where(ScheduleException.specialist_id.in_(ids))
    if location_id is not None:
        hours_stmt = hours_stmt.where(WorkingHours.location_id == location_id)

    windows: list[WorkWindow] = []
    time_off: list[TimeOff] = []
    extra: dict[int, list[tuple[int, datetime, datetime]]] = defaultdict(list)
    for kind, sid, lid, e_start, e_end, reason in db.session.execute(exceptions_stmt):
        if kind == "time_off":
            time_off.append(TimeOff(e_start, e_end, sid, reason))
        elif lid is not None:
            extra[sid].append((lid, e_start, e_end))
            if location_id in (None, lid):
                windows.append(WorkWindow(max(e_start, start), min(e_end, end), sid, lid))

    rules = db.session.execute(hours_stmt).all()
    day, last_day = to_clinic_tz(start).date(), to_clinic_tz(end - timedelta(microseconds=1)).date()
    closed = clinic_closed_days(day, last_day)  # public holidays: extra hours still count
    while day <= last_day:
        for sid, lid, weekday, h_start, h_end in rules:
            if weekday != day.weekday() or day in closed:
                continue
            # As the availability engine: extra hours elsewhere replace these.
            elsewhere = [(a, b) for other, a, b in extra[sid] if other != lid]
            for w_start, w_end in subtract_periods(
                max(from_clinic_local(day, h_start), start),
                min(from_clinic_local(day, h_end), end),
                elsewhere,
            ):
                windows.append(WorkWindow(w_start, w_end, sid, lid))
        day += timedelta(days=1)
    return sorted(windows), sorted(time_off)


@dataclass(frozen=True)
class Booked:
    specialist_id: int
    location_id: int
    starts_at: datetime
    ends_at: datetime


def _booked(start: datetime, end: datetime | None = None, specialist_id: int | None = None):
    """Held or confirmed appointments starting from ``start`` (until ``end``)."""
    stmt = select(
        Appointment.specialist_id,
        Appointment.location_id,
        Appointment.starts_at,
        Appointment.ends_at,
    ).where(Appointment.active.is_(True), Appointment.starts_at >= start)
    if end is not None:
        stmt = stmt.where(Appointment.starts_at < end)
    if specialist_id is not None:
        stmt = stmt.where(Appointment.specialist_id == specialist_id)
    return [Booked(*row) for row in db.session.execute(stmt)]


def outside_working_time(booked: list[Booked]) -> list[Booked]:
    """The appointments of ``booked`` not inside their specialist's working time (weekly
    and extra hours at an open location, as the agenda shows it, at the appointment's place):
    hours deleted or a day closed after they were booked left them there, and their patients
    would come when nobody works."""
    if not booked:
        return []
    start = min(b.starts_at for b in booked)
    end = max(b.ends_at for b in booked)
    windows, _time_off = working_time(start, end, {b.specialist_id for b in booked})
    stretches: dict[tuple[int, int], list[tuple[datetime, datetime]]] = defaultdict(list)
    for window in windows:  # in order: windows that touch are one stretch of work
        place = stretches[(window.specialist_id, window.location_id)]
        if place and place[-1][1] >= window.starts_at:
            place[-1] = (place[-1][0], max(place[-1][1], window.ends_at))
        else:
            place.append((window.starts_at, window.ends_at))
    return [
        b
        for b in booked
        if not any(
            a <= b.starts_at and b.ends_at <= z
            for a, z in stretches[(b.specialist_id, b.location_id)]
        )
    ]


def appointments_outside_working_time(specialist_id: int, now: datetime) -> int:
    """How many of the specialist's appointments still to come lie outside their working
    time (``outside_working_time``): said after their hours are deleted."""
    return len(outside_working_time(_booked(now, specialist_id=specialist_id)))


def booked_on_closed_days(days: Iterable[date], now: datetime) -> dict[date, int]:
    """How many appointments still to come start on each of ``days`` (days the clinic is
    closed) outside working time: a day closed after it was booked keeps its appointments,
    and only extra hours entered for their specialist open it."""
    closed = sorted(set(days))
    if not closed:
        return {}
    start = max(from_clinic_local(closed[0], time()), now)
    end = from_clinic_local(closed[-1] + timedelta(days=1), time())
    by_day: dict[date, list[Booked]] = defaultdict(list)
    for b in _booked(start, end):
        by_day[to_clinic_tz(b.starts_at).date()].append(b)
    # Day by day: closed days may lie months apart, and only those with bookings are read.
    counts = {day: len(outside_working_time(by_day[day])) for day in closed if by_day.get(day)}
    return {day: n for day, n in counts.items() if n}
