"""Day and week views of confirmed appointments, per specialist and location."""

from __future__ import annotations

from datetime import date, time, timedelta

from flask import Blueprint, render_template, request
from flask_login import current_user

from booking.requests.queries import appointments_between
from booking.scheduling.services import all_locations
from booking.staff.auth import roles_required
from booking.staff.models import StaffRole
from booking.staff.services import list_staff
from booking.timeutil import clinic_today, from_clinic_local, to_clinic_tz
from booking.urlargs import date_arg, int_arg

bp = Blueprint("calendar", __name__, url_prefix="/staff")


def _int_arg(name: str) -> int | None:
    return int_arg(request.args.get(name))


@bp.get("/calendar")
@roles_required()
def view() -> str:
    mode = "day" if request.args.get("view") == "day" else "week"
    anchor = date_arg(request.args.get("date")) or clinic_today()
    first = anchor if mode == "day" else anchor - timedelta(days=anchor.weekday())
    days = [first + timedelta(days=n) for n in range(1 if mode == "day" else 7)]
    step = timedelta(days=1 if mode == "day" else 7)

    specialist_id = _int_arg("specialist")
    if current_user.role == StaffRole.SPECIALIST:
        specialist_id = current_user.id
    location_id = _int_arg("location")
    appointments = appointments_between(
        from_clinic_local(days[0], time()),
        from_clinic_local(days[-1] + timedelta(days=1), time()),
        user=current_user,
        specialist_id=specialist_id,
        location_id=location_id,
    )
    by_day: dict[date, list] = {day: [] for day in days}
    for appointment in appointments:
        by_day.setdefault(to_clinic_tz(appointment.starts_at).date(), []).append(appointment)

    return render_template(
        "calendar/calendar.html",
        mode=mode,
        days=days,
        by_day=by_day,
        anchor=anchor,
        previous=(first - step).isoformat(),
        following=(first + step).isoformat(),
        today=clinic_today(),
        specialist_id=specialist_id,
        location_id=location_id,
        specialists=[s for s in list_staff() if s.role == StaffRole.SPECIALIST],
        locations=all_locations(),
        total=len(appointments),
    )
