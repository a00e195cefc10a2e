"""Days the whole clinic is closed, entered by an admin (``ClinicClosure``: a training day, a
burst pipe), without a redeploy.

``closure_reasons`` is read with the settings' closed days by
``booking.openinghours.clinic_closed_days`` (``booking.scheduling.init_app`` registers it), so
the availability engine, the agenda and the admin's pages treat both alike: weekly hours do
not apply, extra hours entered for a specialist still do. A row added or removed raises the
availability version (``booking.scheduling.versions``), so no kept page offers a time on it.

Each operation is one use case: it enforces its rule (a ``ScheduleError`` naming the form
field), writes an audit row and commits once. Closing a day keeps the appointments already
booked on it (``appointments_on`` lists them, for staff to move).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from booking.audit.models import AuditEvent
from booking.audit.services import changes, record
from booking.extensions import db
from booking.openinghours import settings_closed_days, settings_closures
from booking.scheduling.admin_services import AlreadyDeletedError, ScheduleError
from booking.scheduling.models import Appointment, ClinicClosure
from booking.staff.models import StaffUser
from booking.timeutil import clinic_date, clinic_today, from_clinic_local, now_utc

ADDED = "clinic_closure_added"
REMOVED = "clinic_closure_removed"
TARGET = "clinic_closure"


def closure_reasons(first: date, last: date) -> dict[date, str]:
    """The days from ``first`` to ``last`` an admin closed, each with its reason (staff's
    agenda says it): one query on the unique index of the day, whatever the range (the
    availability engine asks on every open-times page)."""
    rows = db.session.execute(
        select(ClinicClosure.day, ClinicClosure.reason).where(
            ClinicClosure.day >= first, ClinicClosure.day <= last
        )
    )
    return {day: reason for day, reason in rows}


def upcoming_closures(today: date) -> list[ClinicClosure]:
    """The days closed in the app from ``today`` on, earliest first, with who closed them."""
    return list(
        db.session.scalars(
            select(ClinicClosure)
            .options(selectinload(ClinicClosure.created_by))
            .where(ClinicClosure.day >= today)
            .order_by(ClinicClosure.day)
        )
    )


@dataclass(frozen=True)
class ClosedDay:
    day: date
    closure: ClinicClosure | None  # None: closed by the settings, which the app cannot change
    holiday: str = ""  # the public holiday's name, when the settings close it for one


def upcoming_closed_days(today: date, ahead: timedelta) -> list[ClosedDay]:
    """The days the clinic is closed, in order: the settings' (public holidays of
    ``CLINIC_HOLIDAYS``, dates of ``CLINIC_CLOSED_DAYS``) from ``today`` for ``ahead``, and
    every day closed in the app from ``today`` on (its row: it may be removed)."""
    rows = {
        day: ClosedDay(day, None, holiday)
        for day, holiday in settings_closures(today, today + ahead).items()
    }
    rows.update((c.day, ClosedDay(c.day, c)) for c in upcoming_closures(today))
    return [rows[day] for day in sorted(rows)]


def find_closure(closure_id: int) -> ClinicClosure | None:
    return db.session.get(ClinicClosure, closure_id)


def removed_before(closure_id: int) -> bool:
    """Whether closed day ``closure_id`` existed and was removed (its audit row says so): a
    removal sent again (a second tab, another admin) is told so, not shown a missing page."""
    found = db.session.scalar(
        select(func.count(AuditEvent.id)).where(
            AuditEvent.action == REMOVED,
            AuditEvent.target_type == TARGET,
            AuditEvent.target_id == str(closure_id),
        )
    )
    return bool(found)


def appointments_on(day: date, now: datetime) -> list[Appointment]:
    """The held or confirmed appointments still to come on the clinic day ``day``, in time
    order, with their request and specialist (the page names both)."""
    start = max(from_clinic_local(day, time()), now)
    end = from_clinic_local(day + timedelta(days=1), time())
    return list(
        db.session.scalars(
            select(Appointment)
            .options(selectinload(Appointment.request), selectinload(Appointment.specialist))
            .where(
                Appointment.active.is_(True),
                Appointment.starts_at >= start,
                Appointment.starts_at < end,
            )
            .order_by(Appointment.starts_at, Appointment.id)
        )
    )


@dataclass(frozen=True)
class ClosureAdded:
    closure: ClinicClosure
    appointments_kept: int  # still to come on the day, not changed: staff must move them


def check_closure(day: date, reason: str) -> None:
    """Refuse (``ScheduleError``) closing the clinic on ``day`` for ``reason``: a past day, a
    day the settings or the app close already, or no reason. Read only: what the admin is
    asked to confirm can be done (``close_clinic`` checks again when it is)."""
    if day < clinic_today():
        raise ScheduleError(
            _("This day is already past. Please enter today or a later day."), "day"
        )
    if not (reason or "").strip():
        raise ScheduleError(_("Please enter a reason."), "reason")
    if settings_closed_days(day, day):
        raise ScheduleError(
            _(
                "The clinic is already closed on %(day)s by the settings (a public holiday or "
                "CLINIC_CLOSED_DAYS).",
                day=clinic_date(day, "full"),
            ),
            "day",
        )
    if db.session.scalar(select(ClinicClosure.id).where(ClinicClosure.day == day)) is not None:
        raise ScheduleError(_already_closed(day), "day")


def _already_closed(day: date) -> str:
    return _("The clinic is already closed on %(day)s.", day=clinic_date(day, "full"))


def close_clinic(day: date, reason: str, actor: StaffUser | None) -> ClosureAdded:
    """Close the whole clinic on ``day`` for ``reason`` (for staff), as ``check_closure``
    allows. Appointments already booked on it are not touched: how many are still to come is
    returned, for staff to move them."""
    reason = (reason or "").strip()
    check_closure(day, reason)
    closure = ClinicClosure(day=day, reason=reason, created_by_id=getattr(actor, "id", None))
    db.session.add(closure)
    try:
        db.session.flush()  # another admin closing the same day meanwhile: the unique day
    except IntegrityError:
        db.session.rollback()
        raise ScheduleError(_already_closed(day), "day") from None
    record(
        ADDED,
        target_type=TARGET,
        target_id=closure.id,
        actor=actor,
        details=changes({}, _values(closure)),
    )
    kept = len(appointments_on(day, now_utc()))
    db.session.commit()
    return ClosureAdded(closure, kept)


def reopen_clinic(closure: ClinicClosure, actor: StaffUser | None) -> None:
    """Remove a day closed in the app: weekly hours apply on it again. A past day stays as it
    was (the agenda of those days keeps showing why nobody worked). ``AlreadyDeletedError``
    when another removal of it came first (the row is locked and read again)."""
    if closure.day < clinic_today():
        raise ScheduleError(_("This day is already past: it stays as it was."))
    if (
        db.session.get(ClinicClosure, closure.id, with_for_update=True, populate_existing=True)
        is None
    ):
        raise AlreadyDeletedError
    before = _values(closure)
    closure_id = closure.id
    db.session.delete(closure)
    record(
        REMOVED,
        target_type=TARGET,
        target_id=closure_id,
        actor=actor,
        details=changes(before, {}),
    )
    db.session.commit()


def _values(closure: ClinicClosure) -> dict[str, Any]:
    # The day, not the reason's text, as for a specialist's time off: the audit trail cannot
    # be edited, and a reason may name a colleague's circumstances.
    return {"day": closure.day}
