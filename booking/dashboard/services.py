"""Working a request: status changes, appointments, notes. Each function is one transaction.

Valid transitions (anything else is refused, whoever asks):

    requested -> confirmed | declined | cancelled
    confirmed -> confirmed (reschedule) | completed | cancelled | no_show

Every change is written to the request's timeline and the audit trail, and emails the patient
(confirmations and reschedules with an .ics invitation, cancellations with METHOD:CANCEL).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from email.utils import parseaddr

from flask import current_app
from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy import select

from booking.audit.services import changes, record
from booking.dashboard.ical import appointment_ics
from booking.dashboard.models import EventKind, RequestEvent
from booking.extensions import db
from booking.notifications.models import OutboxEmail
from booking.notifications.services import enqueue_delivery, queue_email
from booking.patients.models import ConsultationRequest, RequestStatus
from booking.scheduling.models import Appointment, Location
from booking.staff.models import StaffRole, StaffUser
from booking.timeutil import from_clinic_local, now_utc, to_clinic_tz

S = RequestStatus
TRANSITIONS: dict[RequestStatus, frozenset[RequestStatus]] = {
    S.REQUESTED: frozenset({S.CONFIRMED, S.DECLINED, S.CANCELLED}),
    S.CONFIRMED: frozenset({S.CONFIRMED, S.COMPLETED, S.CANCELLED, S.NO_SHOW}),
    S.COMPLETED: frozenset(),
    S.DECLINED: frozenset(),
    S.CANCELLED: frozenset(),
    S.NO_SHOW: frozenset(),
}
# What a specialist may do with a request assigned to them; coordinators and admins do all.
SPECIALIST_MAY = frozenset({S.COMPLETED, S.NO_SHOW})

ACTIONS = {
    "confirm": S.CONFIRMED,
    "reschedule": S.CONFIRMED,
    "decline": S.DECLINED,
    "cancel": S.CANCELLED,
    "complete": S.COMPLETED,
    "no_show": S.NO_SHOW,
}


class WorkflowError(ValueError):
    """A refused change; the message is for the staff member."""


@dataclass(frozen=True)
class Slot:
    specialist: StaffUser
    location: Location
    day: date
    start: time
    duration_minutes: int


def allowed_actions(consultation: ConsultationRequest, user: StaffUser) -> list[str]:
    """The actions this user may take now (the page offers these; the rest are refused)."""
    allowed = []
    for action, target in ACTIONS.items():
        if action == "confirm" and consultation.status != S.REQUESTED:
            continue
        if action == "reschedule" and consultation.status != S.CONFIRMED:
            continue
        if target in TRANSITIONS[consultation.status] and _role_may(user, target):
            allowed.append(action)
    return allowed


def _role_may(user: StaffUser, target: RequestStatus) -> bool:
    return user.works_every_request or (
        user.role == StaffRole.SPECIALIST and target in SPECIALIST_MAY
    )


def _lock(consultation: ConsultationRequest) -> ConsultationRequest:
    """Re-read the request and lock its row for this transaction (PostgreSQL; SQLite's
    BEGIN IMMEDIATE already serialises writers), so two staff cannot both change it."""
    locked = db.session.scalars(
        select(ConsultationRequest)
        .where(ConsultationRequest.id == consultation.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()
    return locked


def _check(consultation: ConsultationRequest, target: RequestStatus, actor: StaffUser) -> None:
    if actor.role == StaffRole.SPECIALIST and consultation.assigned_specialist_id != actor.id:
        raise WorkflowError(_("This request is not assigned to you."))
    if target not in TRANSITIONS[consultation.status]:
        raise WorkflowError(
            _(
                "A request that is %(current)s cannot be changed to %(target)s.",
                current=status_label(consultation.status),
                target=status_label(target),
            )
        )
    if not _role_may(actor, target):
        raise WorkflowError(_("Your role does not allow this change."))


def status_label(status: RequestStatus | str) -> str:
    labels = {
        S.REQUESTED: _("requested"),
        S.CONFIRMED: _("confirmed"),
        S.COMPLETED: _("completed"),
        S.DECLINED: _("declined"),
        S.CANCELLED: _("cancelled"),
        S.NO_SHOW: _("no-show"),
    }
    return labels[RequestStatus(status)]


def _slot_times(slot: Slot) -> tuple[datetime, datetime]:
    if not 5 <= slot.duration_minutes <= 480:
        raise WorkflowError(_("The duration must be between 5 and 480 minutes."))
    starts_at = from_clinic_local(slot.day, slot.start)
    # A wall-clock time skipped by a daylight-saving change does not exist.
    if to_clinic_tz(starts_at).replace(tzinfo=None) != datetime.combine(slot.day, slot.start):
        raise WorkflowError(_("That time does not exist on that day because of a clock change."))
    if slot.specialist.role != StaffRole.SPECIALIST or not slot.specialist.active:
        raise WorkflowError(_("Please choose an active specialist."))
    if not slot.location.active:
        raise WorkflowError(_("Please choose an open location."))
    return starts_at, starts_at + timedelta(minutes=slot.duration_minutes)


def _check_free(
    specialist: StaffUser, starts_at: datetime, ends_at: datetime, ignore: Appointment | None
) -> None:
    clash = db.session.scalar(
        select(Appointment.id).where(
            Appointment.specialist_id == specialist.id,
            Appointment.active.is_(True),
            Appointment.starts_at < ends_at,
            Appointment.ends_at > starts_at,
            Appointment.id != (ignore.id if ignore else -1),
        )
    )
    if clash is not None:
        raise WorkflowError(
            _("%(name)s already has an appointment at that time.", name=specialist.full_name)
        )


def _appointment_state(appointment: Appointment | None) -> dict[str, object]:
    if appointment is None:
        return {}
    return {
        "specialist": appointment.specialist_id,
        "location": appointment.location_id,
        "starts_at": appointment.starts_at,
        "ends_at": appointment.ends_at,
        "active": appointment.active,
        "sequence": appointment.sequence,
    }


def _new_uid() -> str:
    domain = parseaddr(current_app.config["MAIL_DEFAULT_SENDER"])[1].rpartition("@")[2]
    return f"{uuid.uuid4()}@{domain or 'spineconsult.invalid'}"


def _finish(
    consultation: ConsultationRequest,
    actor: StaffUser,
    *,
    action: str,
    before_status: RequestStatus,
    before_appointment: dict[str, object],
    note: str | None,
    email_kind: str,
    message: str | None = None,
    ics: str | None = None,
    ics_method: str = "REQUEST",
) -> None:
    """Timeline, audit row and patient email for a change, then one commit."""
    consultation.updated_at = now_utc()
    db.session.add(
        RequestEvent(
            request_id=consultation.id,
            occurred_at=now_utc(),
            actor_id=actor.id,
            kind=EventKind.STATUS,
            from_status=before_status.value,
            to_status=consultation.status.value,
            body=note,
        )
    )
    db.session.flush()
    record(
        action,
        target_type="request",
        target_id=consultation.reference,
        actor=actor,
        details=changes(
            {"status": before_status.value, **before_appointment},
            {"status": consultation.status.value, **_appointment_state(consultation.appointment)},
        ),
    )
    email = _queue_patient_update(consultation, email_kind, message, ics, ics_method)
    db.session.commit()
    enqueue_delivery([email.id])


def _queue_patient_update(
    consultation: ConsultationRequest,
    kind: str,
    message: str | None,
    ics: str | None,
    ics_method: str,
) -> OutboxEmail:
    with force_locale(consultation.locale):
        subjects = {
            "confirmed": _(
                "Your appointment is confirmed (%(reference)s)", reference=consultation.reference
            ),
            "rescheduled": _(
                "Your appointment has changed (%(reference)s)", reference=consultation.reference
            ),
            "declined": _("About your request %(reference)s", reference=consultation.reference),
            "cancelled": _(
                "Your request %(reference)s is cancelled", reference=consultation.reference
            ),
            "completed": _(
                "Thank you for your visit (%(reference)s)", reference=consultation.reference
            ),
            "no_show": _("We missed you today (%(reference)s)", reference=consultation.reference),
        }
        subject = subjects[kind]
    attachment = None
    if ics is not None:
        attachment = (
            "appointment.ics",
            f"text/calendar; method={ics_method}; charset=UTF-8",
            ics,
        )
    return queue_email(
        template="request_update",
        recipient=consultation.patient.email,
        subject=subject,
        locale=consultation.locale,
        request_id=consultation.id,
        attachment=attachment,
        kind=kind,
        consultation=consultation,
        appointment=consultation.appointment,
        patient_name=consultation.patient.full_name,
        message=message,
    )


def confirm_request(
    consultation: ConsultationRequest, actor: StaffUser, slot: Slot, message: str | None = None
) -> None:
    consultation = _lock(consultation)
    _check(consultation, S.CONFIRMED, actor)
    if consultation.status != S.REQUESTED:
        raise WorkflowError(_("This request is already confirmed: reschedule it instead."))
    starts_at, ends_at = _slot_times(slot)
    _check_free(slot.specialist, starts_at, ends_at, consultation.appointment)
    before_status, before_appointment = consultation.status, _appointment_state(None)
    appointment = consultation.appointment
    if appointment is None:
        appointment = Appointment(uid=_new_uid(), sequence=0)
        consultation.appointment = appointment
    else:  # an earlier appointment of this request: keep its UID, raise its sequence
        appointment.sequence += 1
    appointment.specialist = slot.specialist
    appointment.location = slot.location
    appointment.starts_at, appointment.ends_at = starts_at, ends_at
    appointment.active = True
    consultation.status = S.CONFIRMED
    consultation.assigned_specialist = slot.specialist
    consultation.confirmed_at = consultation.confirmed_at or now_utc()
    db.session.flush()
    _finish(
        consultation,
        actor,
        action="request_confirmed",
        before_status=before_status,
        before_appointment=before_appointment,
        note=message,
        email_kind="confirmed",
        message=message,
        ics=appointment_ics(appointment),
    )


def reschedule_request(
    consultation: ConsultationRequest, actor: StaffUser, slot: Slot, message: str | None = None
) -> None:
    consultation = _lock(consultation)
    _check(consultation, S.CONFIRMED, actor)
    if consultation.status != S.CONFIRMED or consultation.appointment is None:
        raise WorkflowError(_("Only a confirmed appointment can be rescheduled."))
    appointment = consultation.appointment
    before = _appointment_state(appointment)
    starts_at, ends_at = _slot_times(slot)
    if (
        appointment.specialist_id == slot.specialist.id
        and appointment.location_id == slot.location.id
        and (appointment.starts_at, appointment.ends_at) == (starts_at, ends_at)
    ):
        raise WorkflowError(_("That is the appointment's current time and place."))
    _check_free(slot.specialist, starts_at, ends_at, appointment)
    appointment.specialist = slot.specialist
    appointment.location = slot.location
    appointment.starts_at, appointment.ends_at = starts_at, ends_at
    appointment.sequence += 1
    consultation.assigned_specialist = slot.specialist
    db.session.flush()
    _finish(
        consultation,
        actor,
        action="request_rescheduled",
        before_status=S.CONFIRMED,
        before_appointment=before,
        note=message,
        email_kind="rescheduled",
        message=message,
        ics=appointment_ics(appointment),
    )


def _close(
    consultation: ConsultationRequest,
    actor: StaffUser,
    target: RequestStatus,
    *,
    action: str,
    email_kind: str,
    message: str | None,
) -> None:
    consultation = _lock(consultation)
    _check(consultation, target, actor)
    before_status = consultation.status
    appointment = consultation.appointment
    before_appointment = _appointment_state(appointment)
    ics = None
    if target in (S.CANCELLED, S.DECLINED) and appointment is not None and appointment.active:
        appointment.active = False
        appointment.sequence += 1
        db.session.flush()
        ics = appointment_ics(appointment, cancel=True)
    consultation.status = target
    db.session.flush()
    _finish(
        consultation,
        actor,
        action=action,
        before_status=before_status,
        before_appointment=before_appointment,
        note=message,
        email_kind=email_kind,
        message=message,
        ics=ics,
        ics_method="CANCEL",
    )


def decline_request(
    consultation: ConsultationRequest, actor: StaffUser, message: str | None = None
) -> None:
    _close(
        consultation,
        actor,
        S.DECLINED,
        action="request_declined",
        email_kind="declined",
        message=message,
    )


def cancel_request(
    consultation: ConsultationRequest, actor: StaffUser, message: str | None = None
) -> None:
    _close(
        consultation,
        actor,
        S.CANCELLED,
        action="request_cancelled",
        email_kind="cancelled",
        message=message,
    )


def complete_request(consultation: ConsultationRequest, actor: StaffUser) -> None:
    _close(
        consultation,
        actor,
        S.COMPLETED,
        action="request_completed",
        email_kind="completed",
        message=None,
    )


def mark_no_show(consultation: ConsultationRequest, actor: StaffUser) -> None:
    _close(
        consultation, actor, S.NO_SHOW, action="request_no_show", email_kind="no_show", message=None
    )


def add_note(consultation: ConsultationRequest, actor: StaffUser, text: str) -> RequestEvent:
    """An internal note on the timeline; never shown or sent to the patient."""
    if actor.role == StaffRole.SPECIALIST and consultation.assigned_specialist_id != actor.id:
        raise WorkflowError(_("This request is not assigned to you."))
    note = RequestEvent(
        request_id=consultation.id,
        occurred_at=now_utc(),
        actor_id=actor.id,
        kind=EventKind.NOTE,
        body=text.strip(),
    )
    db.session.add(note)
    db.session.flush()
    record(
        "note_added",
        target_type="request",
        target_id=consultation.reference,
        actor=actor,
        details={"note_id": note.id},
    )
    db.session.commit()
    return note


def record_view(
    consultation: ConsultationRequest, actor: StaffUser, what: str, **details: object
) -> None:
    """Audit a look at medical data (a record, a document view or download)."""
    record(
        what,
        target_type="request",
        target_id=consultation.reference,
        actor=actor,
        details=dict(details),
    )
    db.session.commit()


def record_export(actor: StaffUser, filters: dict[str, object], rows: int) -> None:
    record("requests_exported", actor=actor, details={"filters": filters, "rows": rows})
    db.session.commit()
