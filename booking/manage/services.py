"""What a patient can do with their own request through the private link.

Each function is one transaction: the change, the timeline, the audit row (actor "patient"),
the patient's email and the clinic's notice are stored together
(``booking.requests.lifecycle.record_change``).
"""

from __future__ import annotations

from flask import current_app
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import lazy_ngettext
from sqlalchemy.exc import InterfaceError, OperationalError

from booking.audit.services import record
from booking.documents.models import Document
from booking.documents.storage import (
    DocumentUpload,
    refuse_held,
    saved_before_locking,
    stored_after_all,
)
from booking.extensions import db
from booking.notifications.services import enqueue_delivery, enqueue_still_to_go
from booking.requests import emails
from booking.requests.files import named_by_rows, no_room_for
from booking.requests.lifecycle import (
    PATIENT,
    appointment_passed,
    can_change,
    notice_deadline,
    record_change,
    snapshot,
)
from booking.requests.models import OPEN_STATUSES, ConsultationRequest, RequestStatus
from booking.requests.queries import lock_request
from booking.requests.waitlist import offer_freed_slot
from booking.scheduling.availability import clinic_settings
from booking.scheduling.ical import appointment_ics
from booking.scheduling.services import (
    FreedTime,
    SlotChoice,
    SlotTaken,
    place_appointment,
    resolve_choice,
)
from booking.templating import clinic_phone_after
from booking.timeutil import now_utc


class ManageError(ValueError):
    """A refused change; the message is for the patient."""


class NoRoom(ManageError):  # noqa: N818 - reads better at the call sites
    """The request cannot hold as many more documents as were sent; ``room``: how many it can
    (the form is offered while it is more than none)."""

    def __init__(self, message: str, room: int) -> None:
        super().__init__(message)
        self.room = room


def _require_changeable(consultation: ConsultationRequest) -> None:
    if consultation.status not in OPEN_STATUSES:
        raise ManageError(_("This request is closed and can no longer be changed online."))
    if not can_change(consultation):
        raise ManageError(
            _(
                "Your appointment is less than %(hours)d hours away, so it can no longer be "
                "changed online. Please call the clinic%(phone)s.",
                hours=clinic_settings().cancel_notice_hours,
                phone=clinic_phone_after(),
            )
        )


def _check_room(consultation: ConsultationRequest, uploads: list[DocumentUpload]) -> None:
    if consultation.status not in OPEN_STATUSES:
        raise ManageError(_("This request is closed and can no longer be changed online."))
    if (full := no_room_for(consultation, len(uploads))) is not None:
        room = current_app.config["MAX_DOCUMENTS"] - len(consultation.kept_documents)
        raise NoRoom(full, max(room, 0))


def add_documents(consultation: ConsultationRequest, uploads: list[DocumentUpload]) -> int:
    """Store more documents for an open request, all or none, each one not already there.

    The files are checked, scanned and stored before the request is locked (the scanner may
    take ``CLAMAV_TIMEOUT`` per file, and nothing else may change the request meanwhile
    otherwise); the status, the room left and the files kept are checked again under the
    lock, and the stored files are deleted if any of it refuses them. The database failing
    at the commit raises (``OperationalError``, ``InterfaceError``), the files deleted,
    unless the documents are found stored after all (the commit's answer was lost): that is
    the change made, its emails handed to the queue then."""
    request_id = consultation.id  # the session is rolled back (and expired) on a failure
    _check_room(consultation, uploads)  # a closed or full request costs no scan
    try:
        with saved_before_locking(uploads, named=named_by_rows) as stored:
            consultation = lock_request(consultation)
            _check_room(consultation, uploads)
            refuse_held(stored, uploads, consultation.documents)
            now = now_utc()
            for upload, file in zip(uploads, stored, strict=True):
                db.session.add(Document.of_upload(upload, file, now, request_id=consultation.id))
            db.session.flush()
            record(
                "patient_added_documents",
                target_type="request",
                target_id=consultation.reference,
                actor_email=PATIENT,
                details={"documents": len(uploads)},
            )
            email = emails.clinic_notice(
                consultation,
                _l("documents added"),
                lazy_ngettext(
                    "The patient added %(num)d document.",
                    "The patient added %(num)d documents.",
                    len(uploads),
                ),
            )
            receipt = emails.documents_received(consultation, now)
            db.session.commit()
    except (OperationalError, InterfaceError) as failure:
        if not stored_after_all(failure):
            raise
        enqueue_still_to_go(request_id)
        return len(uploads)
    enqueue_delivery([e.id for e in (email, receipt) if e is not None])
    return len(uploads)


def reschedule(consultation: ConsultationRequest, choice: SlotChoice) -> None:
    """Move the request's time to another open slot (raises SlotTaken when it is not open)."""
    consultation = lock_request(consultation)
    _require_changeable(consultation)
    appointment = consultation.appointment
    if appointment is None:
        raise ManageError(_("This request has no appointment time to change."))
    if (choice.specialist_id, choice.location_id, choice.starts_at) == (
        appointment.specialist_id,
        appointment.location_id,
        appointment.starts_at,
    ):
        # Not offered on the page: "moving" to the same time would only send needless emails.
        raise ManageError(_("Please choose one of the times."))
    appointment_type, slot = resolve_choice(choice, ignore_appointment_id=appointment.id)
    before = snapshot(consultation)
    freed = FreedTime.of(appointment)
    had_join_link = appointment.join_link is not None
    # The patient's calendar holds the earlier invitation: a new sequence updates it.
    place_appointment(appointment, appointment_type, slot, new_sequence=True)
    consultation.assigned_specialist_id = slot.specialist_id
    update = record_change(
        consultation,
        action="patient_rescheduled",
        actor=None,
        before=before,
        note=emails.in_staff_language(_l("Rescheduled by the patient.")),
        email_kind="rescheduled",
        ics=appointment_ics(appointment),
    )
    notice = emails.clinic_notice(
        consultation,
        _l("rescheduled"),
        _l(
            "The patient chose a new time. It is a video visit: its link was for the old "
            "time, so please send one for the new time from the request."
        )
        if had_join_link and appointment.join_link is None
        else _l("The patient chose a new time."),
    )
    offers = offer_freed_slot(freed)
    db.session.commit()
    enqueue_delivery([e.id for e in (update, notice, *offers) if e is not None])


def cancel(consultation: ConsultationRequest, reason: str | None) -> None:
    """Cancel the request (and free its time) within the notice period."""
    consultation = lock_request(consultation)
    _require_changeable(consultation)
    before = snapshot(consultation)
    appointment = consultation.appointment
    ics = None
    freed = None
    if appointment is not None and appointment.active:
        freed = FreedTime.of(appointment)
        appointment.active = False
        appointment.sequence += 1
        db.session.flush()
        ics = appointment_ics(appointment, cancel=True)
    consultation.status = RequestStatus.CANCELLED
    update = record_change(
        consultation,
        action="patient_cancelled",
        actor=None,
        before=before,
        # The reason itself stays on the timeline (erased with the patient): the audit trail
        # is append-only, and patients may write medical details into it.
        note=emails.in_staff_language(_l("Cancelled by the patient."))
        + (f" {reason}" if reason else ""),
        email_kind="cancelled",
        ics=ics,
        ics_method="CANCEL",
        audit_extra={"reason_given": bool(reason)},
    )
    notice = emails.clinic_notice(
        consultation, _l("cancelled"), _l("The patient cancelled the request.")
    )
    offers = offer_freed_slot(freed) if freed is not None else []
    db.session.commit()
    enqueue_delivery([e.id for e in (update, notice, *offers) if e is not None])


__all__ = [
    "ManageError",
    "NoRoom",
    "SlotTaken",
    "add_documents",
    "appointment_passed",
    "can_change",
    "cancel",
    "notice_deadline",
    "reschedule",
]
