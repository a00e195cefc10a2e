"""The agenda: day and week time grids of appointments (held and confirmed), free time,
breaks and time off, per specialist and location. A specialist sees their own; coordinators
and admins switch between specialists or see them all side by side."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from flask import Blueprint, abort, render_template, request
from flask_login import current_user

from booking.audit.services import record_refused_access
from booking.calendar.agenda import Agenda, build_agenda
from booking.extensions import db
from booking.openinghours import (
    clinic_closures,
    clinic_opens_on,
    next_open_day,
    public_holidays,
)
from booking.scheduling.agenda import booked_on_closed_days
from booking.scheduling.services import all_locations, appointments_to_come
from booking.staff.auth import roles_required
from booking.staff.models import StaffRole, StaffUser
from booking.staff.services import active_specialists
from booking.timeutil import clinic_today, now_utc
from booking.urlargs import date_arg, int_arg

bp = Blueprint("calendar", __name__, url_prefix="/staff")


@dataclass(frozen=True)
class ClosedNote:
    """Why the clinic is closed on a day, as the agenda's heading says it: a public holiday
    by its name, a day an admin closed by their reason (staff plan around them differently:
    a holiday comes back every year, a closed day may be reopened); neither for a date of
    ``CLINIC_CLOSED_DAYS``, which names none."""

    holiday: str = ""
    reason: str = ""


def closed_notes(first: date, last: date) -> dict[date, ClosedNote]:
    holidays = public_holidays(first, last)
    return {
        day: ClosedNote(holiday=why) if holidays.get(day) == why else ClosedNote(reason=why)
        for day, why in clinic_closures(first, last).items()
    }


@bp.get("/calendar")
@roles_required()
def view() -> str:
    mode = "week" if request.args.get("view") == "week" else "day"
    today = clinic_today()
    asked = int_arg(request.args.get("specialist"))
    location_id = int_arg(request.args.get("location"))

    if current_user.role == StaffRole.SPECIALIST:
        if asked not in (None, current_user.id):
            # Another specialist's day is not theirs to read (their patients' names).
            record_refused_access(
                "not_own_agenda",
                target_type="agenda",
                target_id=str(asked),
                actor=current_user,
            )
            abort(403)
        specialists, chosen = [current_user], [current_user]
    else:
        specialists = active_specialists()
        chosen = [s for s in specialists if s.id == asked] if asked else specialists
        if asked and not chosen:
            # A specialist switched off with appointments still to come: staff must see
            # them to move them (the accounts page says "the agenda shows them").
            former = db.session.get(StaffUser, asked)
            if former is None or former.role != StaffRole.SPECIALIST:
                abort(404)
            if not appointments_to_come(former.id):
                abort(404)
            chosen = [former]
            specialists = [*specialists, former]  # the choice shows whose agenda it is
    locations = all_locations()
    everyone = current_user.works_every_request and not asked

    def agenda_of(days: list[date]) -> Agenda:
        return build_agenda(
            current_user,
            days,
            chosen,
            everyone=everyone,
            location_id=location_id,
            locations=locations,
        )

    anchor = date_arg(request.args.get("date"))
    closed_today = None
    if anchor is None:
        anchor = today
        # Opened without a date on a day the clinic is closed and nobody works (a Sunday): the
        # next day it opens is what staff come to prepare; the page says so and links today.
        if not clinic_opens_on(today) and agenda_of([today]).idle:
            anchor = next_open_day(today) or today
            closed_today = today if anchor != today else None
    first = anchor if mode == "day" else anchor - timedelta(days=anchor.weekday())
    days = [first + timedelta(days=n) for n in range(1 if mode == "day" else 7)]
    step = timedelta(days=1 if mode == "day" else 7)
    agenda = agenda_of(days)
    return render_template(
        "calendar/calendar.html",
        mode=mode,
        days=days,
        agenda=agenda,
        anchor=anchor,
        previous=(first - step).isoformat(),
        following=(first + step).isoformat(),
        today=today,
        closed_today=closed_today,
        specialist_id=asked if current_user.works_every_request else None,
        location_id=location_id,
        specialists=specialists,
        locations=locations,
        # Weekly hours do not apply on these (extra hours still do): the heading says why,
        # with the reason an admin gave for a day closed in the app, or the holiday's name.
        closed_days=(closed := closed_notes(days[0], days[-1])),
        booked_closed=sum(booked_on_closed_days(closed, now_utc()).values()),
    )
