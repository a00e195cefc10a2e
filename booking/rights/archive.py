"""Gathering everything held about a patient for the archive (``booking.rights.export``):
used by the admin's export and by the patient's own download from their private link."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import ColumnElement, Select, func, or_, select
from sqlalchemy.orm import joinedload, selectinload

from booking.extensions import db
from booking.messages.models import Message
from booking.notifications.models import OutboxEmail
from booking.outcomes.models import TreatmentPlan
from booking.outcomes.results import existing_registry_codes
from booking.requests.asks import InformationRequest
from booking.requests.calls import CallbackAttempt
from booking.requests.events import RequestEvent
from booking.requests.models import ConsultationRequest, Patient
from booking.rights.export import PatientArchive, build_archive
from booking.rights.models import EmailChange
from booking.scheduling.models import Appointment, AppointmentType, WaitlistEntry


def requests_of(email: str) -> Select:
    """Every request whose patient gave ``email`` (lower case), oldest first."""
    return (
        select(ConsultationRequest)
        .join(ConsultationRequest.patient)
        .where(func.lower(Patient.email) == email)
        .order_by(ConsultationRequest.created_at, ConsultationRequest.id)
    )


def emails_about(request_ids: Iterable[int], email: str | None) -> ColumnElement[bool]:
    """Outbox emails about the patient: those of their requests and, given their address,
    every email sent to it. What the summary counts is what an erasure deletes."""
    about = OutboxEmail.request_id.in_(list(request_ids))
    if email:
        about = or_(about, func.lower(OutboxEmail.recipient) == email)
    return about


def other_emails(email: str, request_ids: Iterable[int]) -> Select:
    """Emails to this address that no longer belong to one of its requests."""
    return select(OutboxEmail).where(
        func.lower(OutboxEmail.recipient) == email,
        or_(OutboxEmail.request_id.is_(None), OutboxEmail.request_id.not_in(list(request_ids))),
    )


def gather(
    reference: str, email: str | None, chosen: Select, *, others_emails: bool = True
) -> PatientArchive:
    """The archive of the requests ``chosen`` selects (a ``requests_of`` select, perhaps
    narrowed), with their emails and every other email to ``email`` (without
    ``others_emails``, none beyond the requests' own: those of the address's other requests
    or of no request, such as a "finish later" link, may be someone else's). Without an
    address (a call-back request), only the emails of the requests chosen. Reads only: the
    caller audits and commits."""
    requests = list(
        db.session.scalars(
            chosen.options(
                joinedload(ConsultationRequest.patient),
                joinedload(ConsultationRequest.history),
                joinedload(ConsultationRequest.assigned_specialist),
                joinedload(ConsultationRequest.appointment).options(
                    joinedload(Appointment.specialist),
                    joinedload(Appointment.location),
                    joinedload(Appointment.appointment_type),
                ),
                joinedload(ConsultationRequest.acknowledged_by),
                selectinload(ConsultationRequest.events).joinedload(RequestEvent.actor),
                selectinload(ConsultationRequest.calls).joinedload(CallbackAttempt.caller),
                selectinload(ConsultationRequest.documents),
                selectinload(ConsultationRequest.emails),
            )
        ).unique()
    )
    ids = [r.id for r in requests]
    mailed = (
        list(db.session.scalars(other_emails(email, ids).order_by(OutboxEmail.id)))
        if others_emails and email
        else []
    )
    waitlist = {
        entry.request_id: (entry, appointment_type)
        for entry, appointment_type in db.session.execute(
            select(WaitlistEntry, AppointmentType)
            .join(AppointmentType, AppointmentType.id == WaitlistEntry.appointment_type_id)
            .where(WaitlistEntry.request_id.in_(ids))
        ).all()
    }
    asked: dict[int, list[InformationRequest]] = {}
    for ask in db.session.scalars(
        select(InformationRequest)
        .where(InformationRequest.request_id.in_(ids))
        .order_by(InformationRequest.id)
    ):
        asked.setdefault(ask.request_id, []).append(ask)
    threads: dict[int, list[Message]] = {}
    for message in db.session.scalars(
        select(Message).where(Message.request_id.in_(ids)).order_by(Message.id)
    ):
        threads.setdefault(message.request_id, []).append(message)
    # The plan decided at the visit and the patient's answers after it (the right of access
    # covers them as it covers the intake's answers).
    plans = {
        plan.request_id: plan
        for plan in db.session.scalars(
            select(TreatmentPlan)
            .where(TreatmentPlan.request_id.in_(ids))
            .options(joinedload(TreatmentPlan.decided_by), selectinload(TreatmentPlan.follow_ups))
        )
    }
    # The code their record carries in registry exports, if one was made: the patient may
    # ask the registry to delete what it holds under it.
    codes = existing_registry_codes({r.patient_id for r in requests})
    # A new address asked for on the private page, waiting for its link (or confirmed, until
    # the row is purged): the address is the patient's data before it is confirmed.
    changes: dict[int, list[EmailChange]] = {}
    for change in db.session.scalars(
        select(EmailChange).where(EmailChange.request_id.in_(ids)).order_by(EmailChange.id)
    ):
        changes.setdefault(change.request_id, []).append(change)
    return build_archive(
        reference, email, requests, mailed, waitlist, asked, threads, plans, codes, changes
    )


def audit_details(archive: PatientArchive) -> dict[str, object]:
    """What an export's audit row keeps: references and counts, no content."""
    requests = archive.data["requests"]
    return {
        "references": [r["reference"] for r in requests],
        "documents": len(archive.documents),
        "emails": sum(len(r["emails"]) for r in requests) + len(archive.data["other_emails"]),
    }
