"""What a patient can do with their own request through the private link.

Each function is one transaction: the change, the timeline, the audit row (actor "patient"),
the patient's email and the clinic's notice are stored together.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from flask import current_app
from flask_babel import force_locale
from flask_babel import gettext as _

from booking.audit.services import changes, record
from booking.dashboard.ical import appointment_ics
from booking.dashboard.models import EventKind, RequestEvent
from booking.dashboard.services import compose_patient_update
from booking.documents.models import Document
from booking.documents.storage import StoredFile, get_storage
from booking.extensions import db
from booking.manage.tokens import manage_url, revoke_all
from booking.notifications.models import OutboxEmail
from booking.notifications.services import enqueue_delivery, queue_email
from booking.patients.models import OPEN_STATUSES, ConsultationRequest, RequestStatus
from booking.patients.services import DocumentUpload, lock_request, safe_display_name
from booking.scheduling.availability import clinic_settings
from booking.scheduling.services import SlotChoice, SlotTaken, place_appointment, resolve_choice
from booking.scheduling.waitlist import FreedTime, offer_freed_slot
from booking.timeutil import now_utc

PATIENT = "patient"


class ManageError(ValueError):
    """A refused change; the message is for the patient."""


def notice_deadline(consultation: ConsultationRequest) -> datetime | None:
    """Until when the patient may still change or cancel the appointment online."""
    appointment = consultation.appointment
    if appointment is None or not appointment.active:
        return None
    return appointment.starts_at - timedelta(hours=clinic_settings().cancel_notice_hours)


def can_change(consultation: ConsultationRequest, now: datetime | None = None) -> bool:
    if consultation.status not in OPEN_STATUSES:
        return False
    deadline = notice_deadline(consultation)
    return deadline is None or (now or now_utc()) < deadline


def _require_changeable(consultation: ConsultationRequest) -> None:
    if consultation.status not in OPEN_STATUSES:
        raise ManageError(_("This request is closed and can no longer be changed online."))
    if not can_change(consultation):
        raise ManageError(
            _(
                "Your appointment is less than %(hours)d hours away, so it can no longer be "
                "changed online. Please call the clinic.",
                hours=clinic_settings().cancel_notice_hours,
            )
        )


def _notify_clinic(consultation: ConsultationRequest, what: str, detail: str) -> OutboxEmail:
    base_url = current_app.config["PUBLIC_BASE_URL"].rstrip("/")
    return queue_email(
        template="patient_action_staff",
        recipient=current_app.config["STAFF_NOTIFICATION_EMAIL"],
        subject=_(
            "Patient update on %(reference)s: %(what)s", reference=consultation.reference, what=what
        ),
        locale="en",
        request_id=consultation.id,
        consultation=consultation,
        what=what,
        detail=detail,
        request_url=f"{base_url}/staff/requests/{consultation.reference}",
    )


def _event(consultation: ConsultationRequest, before: RequestStatus, body: str) -> None:
    db.session.add(
        RequestEvent(
            request_id=consultation.id,
            occurred_at=now_utc(),
            actor_id=None,
            kind=EventKind.STATUS,
            from_status=before.value,
            to_status=consultation.status.value,
            body=body,
        )
    )


def add_documents(consultation: ConsultationRequest, uploads: list[DocumentUpload]) -> int:
    """Store more documents for an open request, all or none."""
    consultation = lock_request(consultation)
    if consultation.status not in OPEN_STATUSES:
        raise ManageError(_("This request is closed and can no longer be changed online."))
    limit = current_app.config["MAX_DOCUMENTS"]
    if len(consultation.documents) + len(uploads) > limit:
        raise ManageError(
            _(
                "A request can hold at most %(n)d documents; you have %(have)d already.",
                n=limit,
                have=len(consultation.documents),
            )
        )
    storage = get_storage()
    max_bytes = current_app.config["MAX_DOCUMENT_MB"] * 1024 * 1024
    stored: list[StoredFile] = []
    try:
        for upload in uploads:
            stored.append(storage.save(upload.stream, max_bytes))
        now = now_utc()
        for upload, file in zip(uploads, stored, strict=True):
            db.session.add(
                Document(
                    request_id=consultation.id,
                    original_name=safe_display_name(upload.filename),
                    stored_name=file.stored_name,
                    content_type=file.content_type,
                    size_bytes=file.size_bytes,
                    sha256=file.sha256,
                    description=upload.description,
                    uploaded_at=now,
                )
            )
        db.session.flush()
        record(
            "patient_added_documents",
            target_type="request",
            target_id=consultation.reference,
            actor_email=PATIENT,
            details={"documents": len(uploads)},
        )
        email = _notify_clinic(
            consultation,
            _("documents added"),
            _("The patient added %(n)d document(s).", n=len(uploads)),
        )
        db.session.commit()
    except BaseException:
        db.session.rollback()
        for file in stored:
            storage.delete(file.stored_name)
        raise
    enqueue_delivery([email.id])
    return len(uploads)


def reschedule(consultation: ConsultationRequest, choice: SlotChoice) -> None:
    """Move the request's time to another open slot (raises SlotTaken when it is not open)."""
    consultation = lock_request(consultation)
    _require_changeable(consultation)
    appointment = consultation.appointment
    if appointment is None:
        raise ManageError(_("This request has no appointment time to change."))
    before = {
        "starts_at": appointment.starts_at,
        "specialist": appointment.specialist_id,
        "location": appointment.location_id,
        "sequence": appointment.sequence,
    }
    if (choice.specialist_id, choice.location_id, choice.starts_at) == (
        appointment.specialist_id,
        appointment.location_id,
        appointment.starts_at,
    ):
        # Not offered on the page: "moving" to the same time would only send needless emails.
        raise ManageError(_("Please choose one of the times."))
    appointment_type, slot = resolve_choice(choice, ignore_appointment_id=appointment.id)
    freed = FreedTime.of(appointment)
    place_appointment(appointment, appointment_type, slot)
    appointment.sequence += 1  # the patient's calendar holds the earlier invitation
    consultation.assigned_specialist_id = slot.specialist_id
    consultation.updated_at = now_utc()
    db.session.flush()
    _event(consultation, consultation.status, _("Rescheduled by the patient."))
    after = {
        "starts_at": appointment.starts_at,
        "specialist": appointment.specialist_id,
        "location": appointment.location_id,
        "sequence": appointment.sequence,
    }
    record(
        "patient_rescheduled",
        target_type="request",
        target_id=consultation.reference,
        actor_email=PATIENT,
        details=changes(before, after),
    )
    emails = [
        compose_patient_update(
            consultation,
            "rescheduled",
            None,
            appointment_ics(appointment),
            "REQUEST",
        ),
        _notify_clinic(consultation, _("rescheduled"), _("The patient chose a new time.")),
        *offer_freed_slot(freed),
    ]
    db.session.commit()
    enqueue_delivery([e.id for e in emails])


def cancel(consultation: ConsultationRequest, reason: str | None) -> None:
    """Cancel the request (and free its time) within the notice period."""
    consultation = lock_request(consultation)
    _require_changeable(consultation)
    before = consultation.status
    appointment = consultation.appointment
    ics = None
    offers: list[OutboxEmail] = []
    if appointment is not None and appointment.active:
        freed = FreedTime.of(appointment)
        appointment.active = False
        appointment.sequence += 1
        db.session.flush()
        ics = appointment_ics(appointment, cancel=True)
        db.session.flush()
        offers = offer_freed_slot(freed)
    consultation.status = RequestStatus.CANCELLED
    consultation.updated_at = now_utc()
    db.session.flush()
    _event(consultation, before, _("Cancelled by the patient.") + (f" {reason}" if reason else ""))
    record(
        "patient_cancelled",
        target_type="request",
        target_id=consultation.reference,
        actor_email=PATIENT,
        # The reason itself stays on the timeline (erased with the patient): the audit trail
        # is append-only, and patients may write medical details into it.
        details={
            "status": {"before": before.value, "after": "cancelled"},
            "reason_given": bool(reason),
        },
    )
    emails = [
        compose_patient_update(consultation, "cancelled", None, ics, "CANCEL"),
        # The reason stays on the timeline: patients may write medical details into it.
        _notify_clinic(consultation, _("cancelled"), _("The patient cancelled the request.")),
        *offers,
    ]
    db.session.commit()
    enqueue_delivery([e.id for e in emails])


def send_new_link(consultation: ConsultationRequest, actor: object) -> int:
    """Staff: end every private link sent so far and email the patient a new one (a link
    forwarded by mistake, a shared mailbox). Returns how many links stopped working."""
    consultation = lock_request(consultation)
    revoked = revoke_all(consultation)
    db.session.add(
        RequestEvent(
            request_id=consultation.id,
            occurred_at=now_utc(),
            actor_id=getattr(actor, "id", None),
            kind=EventKind.NOTE,
            body="Sent the patient a new private link; every earlier link stopped working.",
        )
    )
    record(
        "manage_link_reissued",
        target_type="request",
        target_id=consultation.reference,
        actor=actor,
        details={"links_revoked": revoked},
    )
    with force_locale(consultation.locale):
        subject = _("Your new private link (%(reference)s)", reference=consultation.reference)
    email = queue_email(
        template="manage_link",
        recipient=consultation.patient.email,
        subject=subject,
        locale=consultation.locale,
        request_id=consultation.id,
        consultation=consultation,
        patient_name=consultation.patient.full_name,
        manage_url=manage_url(consultation),
    )
    db.session.commit()
    enqueue_delivery([email.id])
    return revoked


__all__ = [
    "ManageError",
    "SlotTaken",
    "add_documents",
    "can_change",
    "cancel",
    "reschedule",
    "send_new_link",
]
