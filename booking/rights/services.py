"""A patient's own data-protection rights, from their private link, and the admin's answer
to an erasure request.

Each function is one transaction: the change, its audit row (actor "patient" or the admin;
references only, never what was asked or answered) and the patient's email (through the
outbox: it says only what happened, with the link) are committed together.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import func, select

from booking.audit.services import record
from booking.extensions import db
from booking.notifications.services import enqueue_delivery, withdraw_pending
from booking.requests import withdrawals
from booking.requests.lifecycle import (
    FOLLOWUP_TEMPLATES,
    PATIENT,
    REMINDER_TEMPLATES,
)
from booking.requests.models import OPEN_STATUSES, ConsultationRequest, Patient
from booking.requests.queries import lock_request
from booking.requests.waitlist import stop_waiting
from booking.rights.archive import audit_details, gather, requests_of
from booking.rights.emails import RightsEvent, erasure_alert, rights_notice
from booking.rights.export import PatientArchive
from booking.rights.models import ErasureRequest, ErasureStatus
from booking.staff.models import StaffUser
from booking.templating import clinic_phone_after
from booking.timeutil import now_utc

EXPLANATION_MAX = 2000


class RightsError(ValueError):
    """A refused request; the message is for the person who asked."""


def _commit_and_send(email_ids: list[int]) -> None:
    db.session.commit()
    enqueue_delivery(email_ids)


def withdraw_contact_consent(consultation: ConsultationRequest) -> bool:
    """The patient no longer wants reminders, earlier-time offers or follow-ups: the request
    stays (its care goes on, and the clinic's answers still reach them), the waiting list is
    left. False when it was withdrawn already (nothing changes, nothing is sent)."""
    consultation = lock_request(consultation)
    if not consultation.contact_consent:
        db.session.rollback()
        return False
    consultation.contact_consent = False
    consultation.contact_consent_withdrawn_at = now_utc()
    # What was written before and not sent yet goes too: the patient said no more
    # (stop_waiting withdraws the offers' emails).
    withdrawn = withdraw_pending(
        consultation.id,
        REMINDER_TEMPLATES | FOLLOWUP_TEMPLATES,
        reason=withdrawals.CONSENT_WITHDRAWN,
    )
    withdrawn += stop_waiting(consultation, reason=withdrawals.CONSENT_WITHDRAWN)
    record(
        "contact_consent_withdrawn",
        target_type="request",
        target_id=consultation.reference,
        actor_email=PATIENT,
        details={"emails_withdrawn": withdrawn} if withdrawn else None,
    )
    email = rights_notice(consultation, RightsEvent.CONSENT_WITHDRAWN)
    db.session.flush()
    _commit_and_send([email.id] if email else [])
    return True


class WrongAnswer(RightsError):  # noqa: N818 - names what the patient got wrong
    """The date of birth typed does not match the request's."""


def export_own_data(consultation: ConsultationRequest, date_of_birth: date) -> PatientArchive:
    """The archive an admin would make, of this request only (the one whose private link
    was opened) and its own emails. Never the other requests sent with the same email
    address and date of birth: nobody checks an address before a request is sent, so anyone
    who knows both could send a request of their own and download another person's records
    through it. A patient with several requests downloads each from its own link; an admin's
    export (``booking.privacy``) gathers them all after checking who asks. The date of birth
    is a second factor the patient knows: a wrong one is refused (``WrongAnswer``) and
    audited; a right one is audited before the first byte is sent, and the patient is
    emailed."""
    patient = consultation.patient
    if patient.date_of_birth is None:
        raise RightsError(
            _(
                "We cannot check who you are online for this request. Please call the "
                "clinic%(phone)s.",
                phone=clinic_phone_after(),
            )
        )
    if date_of_birth != patient.date_of_birth:
        record(
            "patient_export_refused",
            target_type="request",
            target_id=consultation.reference,
            actor_email=PATIENT,
            details={"reason": "date_of_birth"},
        )
        db.session.commit()
        raise WrongAnswer(
            _("This date of birth does not match the one in your request. Please check it.")
        )
    email = (patient.email or "").lower()
    chosen = select(ConsultationRequest).where(ConsultationRequest.id == consultation.id)
    archive = gather(consultation.reference, email, chosen, others_emails=False)
    record(
        "patient_exported",
        target_type="request",
        target_id=consultation.reference,
        actor_email=PATIENT,
        details={**audit_details(archive), "by": "patient"},
    )
    notice = rights_notice(consultation, RightsEvent.DATA_DOWNLOADED)
    db.session.flush()
    _commit_and_send([notice.id] if notice else [])
    return archive


def open_erasure(consultation: ConsultationRequest) -> ErasureRequest | None:
    """The request's erasure request still waiting for an admin, if any."""
    return db.session.scalar(
        select(ErasureRequest).where(
            ErasureRequest.request_id == consultation.id,
            ErasureRequest.status == ErasureStatus.OPEN,
        )
    )


def request_erasure(consultation: ConsultationRequest) -> ErasureRequest:
    """Queue the patient's request to erase their data for an administrator, who must answer
    within one month (GDPR Art. 12(3)). Asking twice while one waits changes nothing."""
    consultation = lock_request(consultation)
    waiting = open_erasure(consultation)
    if waiting is not None:
        db.session.rollback()
        return waiting
    erasure = ErasureRequest(
        reference=consultation.reference, request_id=consultation.id, requested_at=now_utc()
    )
    db.session.add(erasure)
    record(
        "erasure_requested",
        target_type="request",
        target_id=consultation.reference,
        actor_email=PATIENT,
    )
    notice = rights_notice(consultation, RightsEvent.ERASURE_RECEIVED)
    alerts = erasure_alert(consultation, erasure)
    db.session.flush()
    _commit_and_send([e.id for e in (notice, *alerts) if e is not None])
    return erasure


# --- the admin's queue -----------------------------------------------------------------------


@dataclass(frozen=True)
class ErasureLine:
    """One waiting erasure request as the admin's queue shows it."""

    id: int
    reference: str
    requested_at: datetime
    due_at: datetime
    overdue: bool
    open_references: list[str]  # still open: they must be closed before an erasure
    kept_until: datetime | None  # when retention would delete the closed ones anyway


def _kept_until(requests: list[ConsultationRequest]) -> datetime | None:
    days = current_app.config.get("RETENTION_DAYS")
    if not days or not requests:
        return None
    return max(r.updated_at for r in requests) + timedelta(days=int(days))


def erasure_queue(now: datetime | None = None) -> list[ErasureLine]:
    """Waiting erasure requests, the oldest (most pressing) first, with what legal retention
    still applies to each patient's data."""
    now = now or now_utc()
    waiting = list(
        db.session.scalars(
            select(ErasureRequest)
            .where(ErasureRequest.status == ErasureStatus.OPEN)
            .order_by(ErasureRequest.requested_at, ErasureRequest.id)
        )
    )
    emails = dict(
        db.session.execute(
            select(ConsultationRequest.id, func.lower(Patient.email))
            .join(ConsultationRequest.patient)
            .where(ConsultationRequest.id.in_([e.request_id for e in waiting]))
        ).all()
    )
    lines = []
    for erasure in waiting:
        email = emails.get(erasure.request_id)
        requests = list(db.session.scalars(requests_of(email))) if email else []
        lines.append(
            ErasureLine(
                erasure.id,
                erasure.reference,
                erasure.requested_at,
                erasure.due_at,
                now > erasure.due_at,
                [r.reference for r in requests if r.status in OPEN_STATUSES],
                _kept_until(requests),
            )
        )
    db.session.rollback()
    return lines


def erasures_for(references: list[str]) -> list[ErasureRequest]:
    """The waiting erasure requests among these requests (the admin's patient page)."""
    return list(
        db.session.scalars(
            select(ErasureRequest)
            .where(
                ErasureRequest.reference.in_(references),
                ErasureRequest.status == ErasureStatus.OPEN,
            )
            .order_by(ErasureRequest.requested_at)
        )
    )


def erasure_reference(erasure_id: int) -> str | None:
    return db.session.scalar(
        select(ErasureRequest.reference).where(ErasureRequest.id == erasure_id)
    )


def close_erasure(erasure_id: int, explanation: str, actor: StaffUser) -> ErasureRequest:
    """Answer an erasure request without erasing (for instance: the law still requires the
    records to be kept): the explanation is kept, encrypted, and emailed to the patient. The
    audit row names the request, never the explanation. Only an administrator."""
    if actor is None or not actor.is_active or not actor.is_admin:
        raise RightsError(_("Only administrators may do this."))
    explanation = explanation.strip()
    if not explanation:
        raise RightsError(_("Please write the explanation the patient will receive."))
    erasure = db.session.scalar(
        select(ErasureRequest).where(ErasureRequest.id == erasure_id).with_for_update()
    )
    if erasure is None or erasure.status != ErasureStatus.OPEN:
        db.session.rollback()
        raise RightsError(_("This erasure request was already answered."))
    erasure.status = ErasureStatus.CLOSED
    erasure.closed_at = now_utc()
    erasure.closed_by_id = actor.id
    erasure.explanation = explanation[:EXPLANATION_MAX]
    record(
        "erasure_closed",
        target_type="request",
        target_id=erasure.reference,
        actor=actor,
        details={"erasure_request": erasure.id},
    )
    consultation = (
        db.session.get(ConsultationRequest, erasure.request_id) if erasure.request_id else None
    )
    notice = (
        rights_notice(consultation, RightsEvent.ERASURE_ANSWERED, erasure.explanation)
        if consultation is not None
        else None
    )
    db.session.flush()
    _commit_and_send([notice.id] if notice else [])
    return erasure
