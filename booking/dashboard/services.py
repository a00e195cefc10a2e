"""Working a request: status changes, appointments, notes. Each function is one transaction.

Valid transitions (anything else is refused, whoever asks):

    requested -> confirmed | declined | cancelled
    confirmed -> confirmed (reschedule) | completed | cancelled | no_show

Every change is written to the request's timeline and the audit trail, and emails the patient
(confirmations and reschedules with an .ics invitation, cancellations with METHOD:CANCEL).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, time

from flask_babel import force_locale
from flask_babel import gettext as _

from booking.audit.services import changes, record
from booking.dashboard.ical import appointment_ics
from booking.dashboard.models import EventKind, RequestEvent
from booking.documents.models import Document
from booking.documents.storage import DocumentUnreadable, get_storage
from booking.extensions import db
from booking.manage.tokens import manage_url
from booking.notifications.models import OutboxEmail
from booking.notifications.services import enqueue_delivery, queue_email
from booking.patients.models import ConsultationRequest, RequestStatus
from booking.patients.services import lock_request
from booking.scheduling.availability import OpenSlot
from booking.scheduling.models import Appointment, AppointmentType, Location
from booking.scheduling.services import (
    SlotChoice,
    SlotTaken,
    SlotUnavailable,
    new_uid,
    place_appointment,
    resolve_choice,
)
from booking.staff.models import StaffRole, StaffUser
from booking.timeutil import from_clinic_local, now_utc, to_clinic_tz

log = logging.getLogger(__name__)
# The first word of the log line a damaged document writes, for the operators' alerting.
DOCUMENT_DAMAGED = "document_damaged"

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
    """A time as staff enter it: wall-clock date and time at the clinic."""

    appointment_type: AppointmentType
    specialist: StaffUser
    location: Location
    day: date
    start: time


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


def _open_slot(slot: Slot, appointment: Appointment | None) -> OpenSlot:
    """Check a staff-entered time through the availability engine (working hours, time off,
    other appointments and buffers; staff are not bound by the patients' notice and horizon).
    """
    starts_at = from_clinic_local(slot.day, slot.start)
    # A wall-clock time skipped by a daylight-saving change does not exist.
    if to_clinic_tz(starts_at).replace(tzinfo=None) != datetime.combine(slot.day, slot.start):
        raise WorkflowError(_("That time does not exist on that day because of a clock change."))
    if slot.specialist.role != StaffRole.SPECIALIST or not slot.specialist.active:
        raise WorkflowError(_("Please choose an active specialist."))
    if not slot.location.active:
        raise WorkflowError(_("Please choose an open location."))
    choice = SlotChoice(slot.appointment_type.id, slot.specialist.id, slot.location.id, starts_at)
    try:
        _type, open_slot = resolve_choice(
            choice,
            ignore_appointment_id=appointment.id if appointment is not None else None,
            enforce_limits=False,
        )
    except (SlotTaken, SlotUnavailable):  # the message names both
        raise WorkflowError(
            _(
                "%(name)s is not free at that time at %(place)s: outside their hours, on "
                "time off, or booked (including the buffer between appointments).",
                name=slot.specialist.full_name,
                place=slot.location.name,
            )
        ) from None
    return open_slot


def _place(appointment: Appointment, slot: Slot, open_slot: OpenSlot) -> None:
    try:
        place_appointment(appointment, slot.appointment_type, open_slot)
    except SlotTaken:
        raise WorkflowError(_("That time was just taken. Please choose another.")) from None


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
    freed: object | None = None,
) -> None:
    """Timeline, audit row and patient email for a change, then one commit. ``freed`` is a
    time this change gave up (a FreedTime): it is offered to the waitlist."""
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
    email = compose_patient_update(consultation, email_kind, message, ics, ics_method)
    offers = []
    if freed is not None:
        from booking.scheduling.waitlist import offer_freed_slot

        offers = offer_freed_slot(freed)
    db.session.commit()
    enqueue_delivery([email.id, *(o.id for o in offers)])


def compose_patient_update(
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
        manage_url=manage_url(consultation),
        message=message,
    )


def confirm_request(
    consultation: ConsultationRequest, actor: StaffUser, slot: Slot, message: str | None = None
) -> None:
    consultation = lock_request(consultation)
    _check(consultation, S.CONFIRMED, actor)
    if consultation.status != S.REQUESTED:
        raise WorkflowError(_("This request is already confirmed: reschedule it instead."))
    open_slot = _open_slot(slot, consultation.appointment)
    before_status = consultation.status
    before_appointment = _appointment_state(consultation.appointment)
    appointment = consultation.appointment
    if appointment is None:
        appointment = Appointment(request_id=consultation.id, uid=new_uid(), sequence=0)
        consultation.appointment = appointment
    else:
        # The patient's calendar holds the tentative invitation for the time they picked:
        # the confirmation updates that same event.
        appointment.sequence += 1
    _place(appointment, slot, open_slot)
    consultation.status = S.CONFIRMED
    consultation.assigned_specialist_id = open_slot.specialist_id
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
    consultation = lock_request(consultation)
    _check(consultation, S.CONFIRMED, actor)
    if consultation.status != S.CONFIRMED or consultation.appointment is None:
        raise WorkflowError(_("Only a confirmed appointment can be rescheduled."))
    appointment = consultation.appointment
    before = _appointment_state(appointment)
    open_slot = _open_slot(slot, appointment)
    if (
        appointment.specialist_id == open_slot.specialist_id
        and appointment.location_id == open_slot.location_id
        and (appointment.starts_at, appointment.ends_at) == (open_slot.starts_at, open_slot.ends_at)
    ):
        raise WorkflowError(_("That is the appointment's current time and place."))
    freed = _freed(appointment)
    _place(appointment, slot, open_slot)
    appointment.sequence += 1
    consultation.assigned_specialist_id = open_slot.specialist_id
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
        freed=freed,
    )


def _freed(appointment: Appointment) -> object:
    from booking.scheduling.waitlist import FreedTime

    return FreedTime.of(appointment)


def _close(
    consultation: ConsultationRequest,
    actor: StaffUser,
    target: RequestStatus,
    *,
    action: str,
    email_kind: str,
    message: str | None,
) -> None:
    consultation = lock_request(consultation)
    _check(consultation, target, actor)
    before_status = consultation.status
    appointment = consultation.appointment
    before_appointment = _appointment_state(appointment)
    ics = None
    ics_needed = False
    freed = None
    if target in (S.CANCELLED, S.DECLINED) and appointment is not None and appointment.active:
        freed = _freed(appointment)
        appointment.active = False  # frees the time
        # Every active appointment went out as an invitation (tentative or confirmed).
        appointment.sequence += 1
        ics_needed = True
        db.session.flush()
        if ics_needed:
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
        freed=freed,
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


def check_document_intact(
    consultation: ConsultationRequest, document: Document, actor: StaffUser
) -> None:
    """Read a stored document whole (every chunk and the upload's checksum) before any of it
    is sent: a document found damaged only while it streams would reach the browser cut off,
    under headers that already said all was well. Chunk by chunk, so a large scan is never
    held in memory.

    A damaged document is audited (committed now: the error page's request commits nothing)
    and logged at ERROR as ``document_damaged`` with its ids, for the operators' alerting;
    then ``DocumentUnreadable`` goes on to its error page.
    """
    try:
        get_storage().verify(document.stored_name, document.sha256)
    except DocumentUnreadable as exc:
        record(
            DOCUMENT_DAMAGED,
            target_type="request",
            target_id=consultation.reference,
            actor=actor,
            details={"document_id": document.id, "problem": str(exc)},
        )
        db.session.commit()
        # Ids only, as every log line: never the file's name or the patient's.
        log.error(
            "%s: document %s of request %s failed its integrity check (%s); restore it from "
            "the backup",
            DOCUMENT_DAMAGED,
            document.id,
            consultation.id,
            exc,
            extra={
                "event": DOCUMENT_DAMAGED,
                "document_id": document.id,
                "consultation_id": consultation.id,
            },
        )
        raise


def record_export(actor: StaffUser, filters: dict[str, object], rows: int) -> None:
    """Audit an export: its filters and size. A search term may be a patient's name, and the
    audit trail cannot be erased, so only the fact that one was used is kept."""
    kept = {key: value for key, value in filters.items() if key != "q"}
    if filters.get("q"):
        kept["search_used"] = True
    record("requests_exported", actor=actor, details={"filters": kept, "rows": rows})
    db.session.commit()
