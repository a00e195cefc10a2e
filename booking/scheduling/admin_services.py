"""Admin operations on scheduling data: the clinic's booking rules, appointment types, weekly
working hours and schedule exceptions (time off, extra hours).

Each public operation is one use case: it enforces its rule (a refusal is a ``ScheduleError``
naming the form field it is about), writes an audit row with the before and after values, and
commits once. Times arrive here already converted to UTC (exceptions) or as the clinic's
wall-clock times of a weekly rule (working hours).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from booking.audit.models import AuditEvent
from booking.audit.services import changes, record
from booking.crypto import text_digest
from booking.extensions import db
from booking.scheduling.agenda import appointments_outside_working_time
from booking.scheduling.availability import clinic_settings
from booking.scheduling.models import (
    Appointment,
    AppointmentType,
    ClinicSettings,
    Location,
    ScheduleException,
    VisitMode,
    WorkingHours,
)
from booking.scheduling.services import (
    ProposedNames,
    appointments_to_come,
    name_problem,
    name_values,
)
from booking.scheduling.visits import MODE_LABELS
from booking.staff.models import StaffRole, StaffUser
from booking.templating import isolated, naming
from booking.timeutil import END_OF_DAY, clock_text, from_clinic_local, now_utc, to_clinic_tz

# The same limits as the database's check constraints on ClinicSettings and AppointmentType;
# the forms use them too, so a refusal comes with a message rather than an IntegrityError.
RULE_RANGES: dict[str, tuple[int, int]] = {
    "buffer_minutes": (0, 240),
    "min_notice_hours": (0, 720),
    "horizon_days": (1, 730),
    "cancel_notice_hours": (0, 720),
}
DURATION_RANGE = (5, 480)
MAX_EXTRA_HOURS = timedelta(hours=24)
WEEKDAY_NAMES = [
    _l("Monday"),
    _l("Tuesday"),
    _l("Wednesday"),
    _l("Thursday"),
    _l("Friday"),
    _l("Saturday"),
    _l("Sunday"),
]
TYPE_NAME_TAKEN = _l("An appointment type with this name already exists.")
TIME_OFF = "time_off"
EXTRA = "extra"


class ScheduleError(ValueError):
    """A change refused by a scheduling rule; ``field`` names the form field it concerns."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class AlreadyDeletedError(LookupError):
    """The weekly hours or exception to delete were deleted meanwhile (a second tab's delete
    sent at the same moment): nothing was written."""


def _hm(value: time) -> str:
    return clock_text(value)


# Reading ------------------------------------------------------------------------------------


def booking_rules_saved() -> bool:
    """Whether an admin has saved the rules yet (before that the defaults apply)."""
    return db.session.get(ClinicSettings, 1) is not None


def all_appointment_types() -> list[AppointmentType]:
    return list(
        db.session.scalars(
            select(AppointmentType).order_by(AppointmentType.active.desc(), AppointmentType.name)
        )
    )


def specialists_with_hours_count() -> list[tuple[StaffUser, int, int]]:
    """Active specialists with how many weekly-hours rows each has at open locations and at
    closed ones (one query): hours at a closed location offer patients nothing, so they do
    not count as the specialist's schedule being set up."""

    def count(location_open: bool) -> Any:
        return (
            select(func.count(WorkingHours.id))
            .join(Location, WorkingHours.location_id == Location.id)
            .where(
                WorkingHours.specialist_id == StaffUser.id,
                Location.active.is_(location_open),
            )
            .correlate(StaffUser)
            .scalar_subquery()
        )

    rows = db.session.execute(
        select(StaffUser, count(True), count(False))
        .where(StaffUser.role == StaffRole.SPECIALIST, StaffUser.active.is_(True))
        .order_by(StaffUser.full_name)
    ).all()
    return [(user, int(n or 0), int(closed or 0)) for user, n, closed in rows]


def find_specialist(user_id: int) -> StaffUser | None:
    """The staff account if it is a specialist's (active or not), else None."""
    user = db.session.get(StaffUser, user_id)
    return user if user is not None and user.role == StaffRole.SPECIALIST else None


def find_working_hours(hours_id: int) -> WorkingHours | None:
    return db.session.get(WorkingHours, hours_id)


def find_schedule_exception(exception_id: int) -> ScheduleException | None:
    return db.session.get(ScheduleException, exception_id)


def deleted_kind(target_type: str, target_id: int, specialist_id: int) -> str | None:
    """What the specialist's weekly hours (``target_type`` "working_hours") or exception
    ("schedule_exception") ``target_id`` were, by the audit row of their deletion: "hours",
    ``TIME_OFF`` or ``EXTRA``; None when no such row of theirs was deleted. A delete sent
    again (a second tab, another admin) is then told so, not shown a missing page."""
    action = f"{target_type}_deleted"
    for details in db.session.scalars(
        select(AuditEvent.details).where(
            AuditEvent.action == action,
            AuditEvent.target_type == target_type,
            AuditEvent.target_id == str(target_id),
        )
    ):
        owner = (details or {}).get("specialist_id") or {}
        if isinstance(owner, dict) and owner.get("before") == specialist_id:
            kind = (details.get("kind") or {}).get("before")
            return "hours" if target_type == "working_hours" else kind
    return None


def weekly_hours(specialist_id: int) -> list[WorkingHours]:
    return list(
        db.session.scalars(
            select(WorkingHours)
            .options(selectinload(WorkingHours.location))
            .where(WorkingHours.specialist_id == specialist_id)
            .order_by(WorkingHours.weekday, WorkingHours.start_time)
        )
    )


def upcoming_exceptions(specialist_id: int, now: datetime | None = None) -> list[ScheduleException]:
    """Time off and extra hours that have not ended yet, earliest first."""
    return list(
        db.session.scalars(
            select(ScheduleException)
            .options(selectinload(ScheduleException.location))
            .where(
                ScheduleException.specialist_id == specialist_id,
                ScheduleException.ends_at > (now or now_utc()),
            )
            .order_by(ScheduleException.starts_at, ScheduleException.id)
        )
    )


# Booking rules ------------------------------------------------------------------------------


@dataclass(frozen=True)
class BookingRules:
    buffer_minutes: int
    min_notice_hours: int
    horizon_days: int
    cancel_notice_hours: int


def save_booking_rules(rules: BookingRules, actor: StaffUser | None) -> ClinicSettings:
    """Set the clinic's booking rules, each within its range. The single settings row (id 1)
    is created on the first save; until then ``clinic_settings()`` gives the defaults.
    Audited with the rules changed, before and after; the first save with every rule, changed
    or not (saving the defaults as they are is a decision too)."""
    after = asdict(rules)
    for name, value in after.items():
        low, high = RULE_RANGES[name]
        if not low <= value <= high:
            raise ScheduleError(
                _("Please enter a number from %(min)d to %(max)d.", min=low, max=high), name
            )
    if rules.min_notice_hours >= rules.horizon_days * 24:
        # The earliest bookable time would fall after the latest: patients would be offered
        # no time at all, at any type, place or specialist.
        raise ScheduleError(
            _(
                "Patients book at most %(days)d days ahead but at least %(hours)d hours ahead: "
                "no time would be left to offer. Allow booking further ahead, or ask for less "
                "notice.",
                days=rules.horizon_days,
                hours=rules.min_notice_hours,
            ),
            "horizon_days",
        )
    current = clinic_settings()
    before = {name: getattr(current, name) for name in RULE_RANGES}
    settings = db.session.get(ClinicSettings, 1)
    created = settings is None
    if settings is None:
        settings = ClinicSettings(id=1)
        db.session.add(settings)
    for name, value in after.items():
        setattr(settings, name, value)
    try:
        db.session.flush()
    except IntegrityError:
        # Another admin created the row at the same moment.
        db.session.rollback()
        raise ScheduleError(
            _("The rules were changed by someone else just now. Please check them and save again.")
        ) from None
    diff = changes(before, after)
    if created:
        # The first save fixes the rules in the clinic's own row, even when they are the
        # defaults unchanged: the trail says who set them, when, and each rule as saved.
        diff = {name: {"before": before[name], "after": value} for name, value in after.items()}
    if diff:
        record(
            "booking_rules_updated",
            target_type="clinic_settings",
            target_id=1,
            actor=actor,
            details=diff,
        )
    db.session.commit()
    return settings


# Appointment types --------------------------------------------------------------------------


def create_appointment_type(
    name: str,
    duration_minutes: int,
    actor: StaffUser | None,
    names: Mapping[str, str | None] | None = None,
    mode: VisitMode = VisitMode.IN_PERSON,
) -> AppointmentType:
    """Add a bookable appointment type. Its name reads apart from every other type's in each
    language (whatever the case), so patients never see two choices that read the same."""
    proposed = ProposedNames.typed(name, names)
    _check_type_names(proposed, None)
    low, high = DURATION_RANGE
    if not low <= duration_minutes <= high:
        raise ScheduleError(
            _("Please enter a number of minutes from %(min)d to %(max)d.", min=low, max=high),
            "duration_minutes",
        )
    appointment_type = AppointmentType(
        name=proposed.name,
        names=proposed.names,
        duration_minutes=duration_minutes,
        active=True,
        mode=mode,
    )
    db.session.add(appointment_type)
    _flush_type_names()
    record(
        "appointment_type_created",
        target_type="appointment_type",
        target_id=appointment_type.id,
        actor=actor,
        details=changes({}, _type_values(appointment_type)),
    )
    db.session.commit()
    return appointment_type


def type_mark(appointment_type: AppointmentType) -> str:
    """A short mark of a type's names, duration and way of taking place as its edit page
    shows them, for the page's form to send back (``edit_appointment_type``)."""
    shown = {**_type_values(appointment_type), "active": None}  # not on the page
    return text_digest(json.dumps(shown, sort_keys=True))[:16]


def edit_appointment_type(
    appointment_type: AppointmentType,
    name: str,
    names: Mapping[str, str | None],
    mode: VisitMode,
    actor: StaffUser | None,
    *,
    duration_minutes: int | None = None,
    shown: str | None = None,
) -> list[str]:
    """Change a type's names (the clinic's and the other languages'), how its visits take
    place and its duration (None: as it is). Appointments of it, booked or to come, read the
    new names in every later email and page. The same naming rule as
    ``create_appointment_type``. How visits take place does not change while appointments of
    the type are to come. A new duration applies to the times offered from now on: an
    appointment already booked keeps its start and end (its patient was told them) until it
    is moved. Returns the fields changed (none: nothing written), audited with their values
    before and after.

    ``shown`` is ``type_mark`` of the type as the admin's page showed it: when another admin
    changed it since, nothing is written and the admin is asked to check."""
    proposed = ProposedNames.typed(name, names)
    # Locked (PostgreSQL FOR UPDATE) before the count: a booking of the type in flight holds
    # it (``services.place_appointment``), so it is counted once committed, and none starts
    # until this change is. Another admin's save of the type waits too, then finds the mark
    # changed.
    db.session.get(
        AppointmentType, appointment_type.id, with_for_update=True, populate_existing=True
    )
    if shown is not None and shown != type_mark(appointment_type):
        raise ScheduleError(
            naming(
                _(
                    "Another administrator changed this appointment type since the page was "
                    "shown: it is now %(name)s, %(minutes)d minutes (%(mode)s). Check the form "
                    "below, then save again."
                ),
                name=isolated(appointment_type.name),
                minutes=appointment_type.duration_minutes,
                mode=MODE_LABELS[appointment_type.mode],
            ),
            "shown",
        )
    _check_type_names(proposed, appointment_type)
    if duration_minutes is None:
        duration_minutes = appointment_type.duration_minutes
    low, high = DURATION_RANGE
    if not low <= duration_minutes <= high:
        raise ScheduleError(
            _("Please enter a number of minutes from %(min)d to %(max)d.", min=low, max=high),
            "duration_minutes",
        )
    before = _type_values(appointment_type)
    after = {
        **name_values(proposed),
        "duration_minutes": duration_minutes,
        "active": appointment_type.active,
        "mode": mode.value,
    }
    diff = changes(before, after)
    if not diff:
        return []
    if mode is not appointment_type.mode and (
        booked := appointments_to_come(appointment_type_id=appointment_type.id)
    ):
        # Their patients were told where to go (or how to take part) and hold a calendar
        # file that says so: the next reminder must not say otherwise without a word.
        raise ScheduleError(
            ngettext(
                "%(num)d appointment to come is booked as this type stands: how it takes place "
                "cannot change under it. Add a new type for the other way, or move or cancel "
                "that appointment first.",
                "%(num)d appointments to come are booked as this type stands: how they take "
                "place cannot change under them. Add a new type for the other way, or move or "
                "cancel those appointments first.",
                booked,
            ),
            "mode",
        )
    appointment_type.name, appointment_type.names = proposed.name, proposed.names
    appointment_type.mode = mode
    appointment_type.duration_minutes = duration_minutes
    _flush_type_names()
    record(
        "appointment_type_updated",
        target_type="appointment_type",
        target_id=appointment_type.id,
        actor=actor,
        details=diff,
    )
    db.session.commit()
    return sorted(diff)


def _flush_type_names() -> None:
    """Write a type's names: a twin another admin saved meanwhile hits the unique name."""
    try:
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        raise ScheduleError(str(TYPE_NAME_TAKEN), "name") from None


def _check_type_names(proposed: ProposedNames, appointment_type: AppointmentType | None) -> None:
    problem = name_problem(
        proposed,
        [t for t in all_appointment_types() if t is not appointment_type],
        TYPE_NAME_TAKEN,
        _l("Another appointment type is already called %(name)s in %(language)s."),
    )
    if problem is not None:
        raise ScheduleError(*problem)


def set_appointment_type_active(
    appointment_type: AppointmentType, active: bool, actor: StaffUser | None
) -> None:
    """Offer a type to patients again, or stop offering it (booked appointments keep it)."""
    if appointment_type.active == active:
        return
    before = _type_values(appointment_type)
    appointment_type.active = active
    record(
        "appointment_type_updated",
        target_type="appointment_type",
        target_id=appointment_type.id,
        actor=actor,
        details=changes(before, _type_values(appointment_type)),
    )
    db.session.commit()


def _type_values(appointment_type: AppointmentType) -> dict[str, Any]:
    return {
        **name_values(appointment_type),
        "duration_minutes": appointment_type.duration_minutes,
        "active": appointment_type.active,
        "mode": appointment_type.mode.value,
    }


# Weekly working hours -----------------------------------------------------------------------


@dataclass(frozen=True)
class HoursInput:
    weekday: int  # 0 = Monday
    location_id: int
    start_time: time  # clinic wall-clock time
    end_time: time


def add_working_hours(
    specialist: StaffUser, hours: HoursInput, actor: StaffUser | None
) -> WorkingHours:
    """Add weekly hours for a specialist: they end after they start, are at an open location,
    and do not overlap the specialist's other hours on that weekday (one place at a time)."""
    _require_specialist(specialist)
    if not 0 <= hours.weekday <= 6:
        raise ScheduleError(_("Please choose a day of the week."), "weekday")
    if hours.end_time <= hours.start_time:
        raise ScheduleError(_("The end time must be after the start time."), "end_time")
    _require_open_location(hours.location_id)
    _lock_schedule(specialist)
    clash = db.session.scalars(
        select(WorkingHours)
        .options(selectinload(WorkingHours.location))
        .where(
            WorkingHours.specialist_id == specialist.id,
            WorkingHours.weekday == hours.weekday,
            WorkingHours.start_time < hours.end_time,
            WorkingHours.end_time > hours.start_time,
        )
        .order_by(WorkingHours.start_time)
    ).first()
    if clash is not None:
        raise ScheduleError(
            naming(
                _(
                    "These hours overlap %(name)s's hours on %(day)s from %(start)s to %(end)s "
                    "at %(location)s. Choose other times, or delete those hours first."
                ),
                name=isolated(specialist.full_name),
                day=WEEKDAY_NAMES[clash.weekday],
                start=_hm(clash.start_time),
                end=_hm(clash.end_time),
                location=isolated(clash.location.display_name),
            ),
            "start_time",
        )
    row = WorkingHours(
        specialist_id=specialist.id,
        location_id=hours.location_id,
        weekday=hours.weekday,
        start_time=hours.start_time,
        end_time=hours.end_time,
    )
    db.session.add(row)
    db.session.flush()
    record(
        "working_hours_added",
        target_type="working_hours",
        target_id=row.id,
        actor=actor,
        details=changes({}, _hours_values(row)),
    )
    db.session.commit()
    return row


def delete_working_hours(row: WorkingHours, actor: StaffUser | None) -> int:
    """Remove weekly hours. Appointments already booked in them stay as they are: returns
    how many of the specialist's appointments to come are now outside their working time,
    for staff to move or cancel. ``AlreadyDeletedError`` when another delete of them came first."""
    _lock_for_deletion(WorkingHours, row.id)
    before = _hours_values(row)
    row_id, specialist_id = row.id, row.specialist_id
    db.session.delete(row)
    record(
        "working_hours_deleted",
        target_type="working_hours",
        target_id=row_id,
        actor=actor,
        details=changes(before, {}),
    )
    db.session.commit()
    return appointments_outside_working_time(specialist_id, now_utc())


def _lock_for_deletion(model: type[WorkingHours] | type[ScheduleException], row_id: int) -> None:
    """Lock the row (PostgreSQL FOR UPDATE), read again: a delete of it committed since it was
    read (a second tab's, at the same moment) is waited for, then found (``AlreadyDeletedError``),
    rather than deleted and audited a second time."""
    if db.session.get(model, row_id, with_for_update=True, populate_existing=True) is None:
        raise AlreadyDeletedError


def _hours_values(row: WorkingHours) -> dict[str, Any]:
    return {
        "specialist_id": row.specialist_id,
        "location_id": row.location_id,
        "weekday": row.weekday,
        "start_time": row.start_time,
        # Kept as the last instant of the day; the audit says what the admin typed.
        "end_time": "24:00:00" if row.end_time == END_OF_DAY else row.end_time,
    }


# Exceptions: time off and extra hours -------------------------------------------------------


@dataclass(frozen=True)
class TimeOffAdded:
    exception: ScheduleException
    appointments_inside: int  # active appointments the time off covers: staff must move them


def add_time_off(
    specialist: StaffUser,
    starts_at: datetime,
    ends_at: datetime,
    reason: str | None,
    actor: StaffUser | None,
) -> TimeOffAdded:
    """Block a period (UTC) of a specialist's time: no slot is offered in it. Appointments
    already booked in it are not touched; the number of those still to come is returned so
    staff can move them."""
    _require_specialist(specialist)
    _check_period(starts_at, ends_at)
    exception = _add_exception(specialist, TIME_OFF, starts_at, ends_at, None, reason, actor)
    inside = db.session.scalar(
        select(func.count(Appointment.id)).where(
            Appointment.specialist_id == specialist.id,
            Appointment.active.is_(True),
            # Time off may start in the past (leave already under way): the appointments
            # before now took place (or were missed), and none of them can be moved.
            Appointment.starts_at >= now_utc(),
            Appointment.starts_at < ends_at,
            Appointment.ends_at > starts_at,
        )
    )
    db.session.commit()
    return TimeOffAdded(exception, int(inside or 0))


@dataclass(frozen=True)
class ExtraHoursAdded:
    exception: ScheduleException
    # Active appointments of the specialist at another place in these hours: the hours replace
    # the weekly hours there, but a booked patient still expects them there; staff must move
    # them (or the hours).
    appointments_elsewhere: int


def add_extra_hours(
    specialist: StaffUser,
    starts_at: datetime,
    ends_at: datetime,
    location_id: int,
    reason: str | None,
    actor: StaffUser | None,
) -> ExtraHoursAdded:
    """One-off hours (UTC) at an open location, at most a day long and not overlapping the
    specialist's other extra hours (one place at a time). Appointments already booked at
    another place in them are counted, not changed."""
    _require_specialist(specialist)
    _check_period(starts_at, ends_at)
    if ends_at > _a_day_after(starts_at):
        # Said at the end date when it is later than the day after the start (a date typed
        # wrong, whatever the times), else at the end time.
        late_day = _end_day(ends_at) > to_clinic_tz(starts_at).date() + timedelta(days=1)
        raise ScheduleError(
            _("Extra hours can last at most 24 hours. Add one entry per day."),
            "end_day" if late_day else "end_time",
        )
    _require_open_location(location_id)
    _lock_schedule(specialist)
    clash = db.session.scalar(
        select(ScheduleException.id).where(
            ScheduleException.specialist_id == specialist.id,
            ScheduleException.kind == EXTRA,
            ScheduleException.starts_at < ends_at,
            ScheduleException.ends_at > starts_at,
        )
    )
    if clash is not None:
        raise ScheduleError(
            naming(
                _("These hours overlap other extra hours of %(name)s."),
                name=isolated(specialist.full_name),
            ),
            "start_time",
        )
    exception = _add_exception(specialist, EXTRA, starts_at, ends_at, location_id, reason, actor)
    elsewhere = db.session.scalar(
        select(func.count(Appointment.id)).where(
            Appointment.specialist_id == specialist.id,
            Appointment.active.is_(True),
            Appointment.location_id != location_id,
            Appointment.starts_at >= now_utc(),  # as for time off: only those still to come
            Appointment.starts_at < ends_at,
            Appointment.ends_at > starts_at,
        )
    )
    db.session.commit()
    return ExtraHoursAdded(exception, int(elsewhere or 0))


def delete_schedule_exception(exception: ScheduleException, actor: StaffUser | None) -> int:
    """Remove time off (its slots open again) or extra hours (their slots go; appointments
    booked in them stay). Returns how many of the specialist's appointments to come are
    outside their working time now, as ``delete_working_hours``: none for time off, whose
    removal takes nothing from it. ``AlreadyDeletedError`` when another delete of it came first."""
    _lock_for_deletion(ScheduleException, exception.id)
    before = _exception_values(exception)
    exception_id, specialist_id = exception.id, exception.specialist_id
    extra = exception.kind == EXTRA
    db.session.delete(exception)
    record(
        "schedule_exception_deleted",
        target_type="schedule_exception",
        target_id=exception_id,
        actor=actor,
        details=changes(before, {}),
    )
    db.session.commit()
    return appointments_outside_working_time(specialist_id, now_utc()) if extra else 0


def _add_exception(
    specialist: StaffUser,
    kind: str,
    starts_at: datetime,
    ends_at: datetime,
    location_id: int | None,
    reason: str | None,
    actor: StaffUser | None,
) -> ScheduleException:
    """Add and audit an exception; flushes, the caller commits."""
    exception = ScheduleException(
        specialist_id=specialist.id,
        kind=kind,
        location_id=location_id,
        starts_at=starts_at,
        ends_at=ends_at,
        reason=(reason or "").strip() or None,
    )
    db.session.add(exception)
    db.session.flush()
    record(
        "schedule_exception_added",
        target_type="schedule_exception",
        target_id=exception.id,
        actor=actor,
        details=changes({}, _exception_values(exception)),
    )
    return exception


def _exception_values(exception: ScheduleException) -> dict[str, Any]:
    return {
        "specialist_id": exception.specialist_id,
        "kind": exception.kind,
        "location_id": exception.location_id,
        "starts_at": exception.starts_at,
        "ends_at": exception.ends_at,
        # Whether a reason was given, not its text: "hospital treatment" about a colleague
        # would stay in the audit trail, which cannot be edited, after the entry is deleted.
        "reason_given": bool(exception.reason),
    }


def _a_day_after(starts_at: datetime) -> datetime:
    """The latest end of extra hours from ``starts_at``: the same clinic time the next day, so
    00:00-24:00 is one day also when it has 25 hours (the clocks going back), and never less
    than ``MAX_EXTRA_HOURS``."""
    local = to_clinic_tz(starts_at)
    next_day = from_clinic_local(local.date() + timedelta(days=1), local.time())
    return max(starts_at + MAX_EXTRA_HOURS, next_day)


def _end_day(ends_at: datetime) -> date:
    """The clinic day the admin gave as the period's end: an end at midnight was typed as
    that day's 24:00 (its form's end date names the day before)."""
    return to_clinic_tz(ends_at - timedelta(microseconds=1)).date()


def _check_period(starts_at: datetime, ends_at: datetime) -> None:
    """A period ends after it starts, and not in the past. Each refusal is said at the field
    at fault: the end date when it names a day already gone, else the end time."""
    if ends_at <= starts_at:
        raise ScheduleError(_("The end must be after the start."), "end_time")
    now = now_utc()
    if ends_at <= now:
        past_day = _end_day(ends_at) < to_clinic_tz(now).date()
        raise ScheduleError(
            _("This period is already over. Please enter a future end."),
            "end_day" if past_day else "end_time",
        )


# Shared checks ------------------------------------------------------------------------------


def _require_specialist(user: StaffUser) -> None:
    if user.role != StaffRole.SPECIALIST:
        raise ScheduleError(_("Only specialists have a schedule."))


def _require_open_location(location_id: int) -> None:
    location = db.session.get(Location, location_id)
    if location is None or not location.active:
        raise ScheduleError(_("Please choose one of the open locations."), "location")


def _lock_schedule(specialist: StaffUser) -> None:
    """Serialise schedule changes of one specialist, so two admins adding overlapping hours at
    the same moment cannot both pass the overlap check (PostgreSQL row lock; SQLite already
    runs one writer at a time)."""
    db.session.execute(
        select(StaffUser.id).where(StaffUser.id == specialist.id).with_for_update()
    ).one()
