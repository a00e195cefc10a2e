"""Privacy operations: export everything held about one patient, erase one patient, and purge
closed requests once the retention period has passed.

A *patient* here is every consultation request whose patient gave the same email address
(compared case-insensitively): requests are not merged when they arrive, so this is where
they are brought together. Admins find one by email or by any of its request references. A
patient who left no email address (an emergency call-back: a name and a phone number) is
that one request: it is found by its reference, and exported and erased alone.

Erasure and retention delete rows in one transaction per patient (or batch) and remove the
stored files only after it commits: the names to remove are written to ``file_purge`` in that
same transaction, so a failed commit leaves every row and file in place, and a file that
cannot be removed (or a process that dies after the commit) is retried by the daily run.
Every operation writes an audit event holding references and counts, never personal data.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import Select, delete, exists, func, or_, select, update
from sqlalchemy.orm import joinedload, selectinload
from sqlalchemy.sql import Executable

from booking.audit.services import record, record_refused_access
from booking.documents.models import Document
from booking.documents.storage import get_storage
from booking.extensions import db
from booking.messages.models import Message
from booking.notifications.models import OutboxEmail
from booking.notifications.services import enqueue_delivery
from booking.outcomes.models import FollowUp, TreatmentPlan
from booking.outcomes.results import existing_registry_codes
from booking.outcomes.services import followups_to_come
from booking.privacy.models import FilePurge
from booking.requests.calls import CallbackAttempt
from booking.requests.events import RequestEvent
from booking.requests.models import (
    OPEN_STATUSES,
    ConsultationRequest,
    ManageLink,
    MedicalHistory,
    Patient,
    RequestDiagnosis,
    RequestStatus,
)
from booking.requests.queries import looked_up_as, typed_reference
from booking.rights import emails as rights_emails
from booking.rights.archive import audit_details, emails_about, requests_of
from booking.rights.archive import gather as archive_of
from booking.rights.export import PatientArchive
from booking.rights.models import EmailChange, ErasureRequest, ErasureStatus
from booking.scheduling.models import (
    Appointment,
    ReminderSent,
    SlotOffer,
    SlotOfferRecipient,
    WaitlistEntry,
)
from booking.staff.models import StaffUser
from booking.timeutil import now_utc

log = logging.getLogger(__name__)

CLOSED_STATUSES = frozenset(set(RequestStatus) - OPEN_STATUSES)
RETENTION_BATCH = 100
FILE_RETRY_BATCH = 500
RETENTION_ACTOR = "system:retention"


class PrivacyError(Exception):
    """An operation refused for a reason the admin is told."""


class NotAllowed(PrivacyError):  # noqa: N818 - names the rule
    """Only administrators may export or erase a patient."""


@dataclass(frozen=True)
class RequestLine:
    reference: str
    status: RequestStatus
    created_at: datetime
    updated_at: datetime
    full_name: str
    documents: int


@dataclass
class PatientSummary:
    """What the privacy page shows about one patient before an export or erasure."""

    reference: str
    email: str | None  # None: a call-back request, which is shown alone
    requests: list[RequestLine]
    open_references: list[str]
    emails: int

    @property
    def documents(self) -> int:
        return sum(line.documents for line in self.requests)


@dataclass
class PurgeCounts:
    """Rows deleted (or, for a dry run, due), by kind."""

    requests: int = 0
    patients: int = 0
    documents: int = 0
    events: int = 0
    appointments: int = 0
    reminders: int = 0
    waitlist_entries: int = 0
    slot_offers: int = 0
    emails: int = 0
    calls: int = 0

    def add(self, other: PurgeCounts) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@dataclass
class ErasureResult:
    references: list[str]
    counts: PurgeCounts
    files_pending: int  # files not removed yet (retried daily)
    # The patient was emailed that their data is erased (False: they left no address).
    patient_emailed: bool = False
    # The codes their records carried in registry exports: each registry must be asked.
    registry_codes: list[str] = field(default_factory=list)
    # Not emailed because staff marked them deceased (not for want of an address).
    patient_deceased: bool = False


@dataclass
class RetentionResult:
    enabled: bool
    dry_run: bool = False
    cutoff: datetime | None = None
    references: list[str] = field(default_factory=list)
    counts: PurgeCounts = field(default_factory=PurgeCounts)
    files_removed: int = 0
    files_pending: int = 0


def _require_admin(actor: StaffUser | None) -> None:
    # The views already require the admin role; this holds for any other caller too.
    if actor is None or not actor.is_active or not actor.is_admin:
        raise NotAllowed(_("Only administrators may do this."))


def _refused(reason: str, target_id: str, actor: StaffUser) -> None:
    """A look-up that found no one, audited and committed as the dashboard's refusals are
    (``access_refused``): a run of them from one account is what probing for patients looks
    like."""
    record_refused_access(reason, target_type="patient", target_id=target_id, actor=actor)


def find_patient(query: str, actor: StaffUser) -> str | None:
    """The reference to show for an email address or a request reference (the newest request
    of that patient when found by email), or None, audited as a refused look-up: by the
    reference it reads as, or else by the start of its SHA-256 (comparable between rows, as
    old sign-in addresses are kept; not readable: ``looked_up_as``)."""
    text = query.strip()
    if "@" in text:
        found = db.session.scalar(
            select(ConsultationRequest.reference)
            .join(ConsultationRequest.patient)
            .where(func.lower(Patient.email) == text.lower())
            .order_by(ConsultationRequest.created_at.desc(), ConsultationRequest.id.desc())
            .limit(1)
        )
        if found is None:
            _refused("no_such_email", looked_up_as(text), actor)
        return found
    reference = typed_reference(text)
    found = db.session.scalar(
        select(ConsultationRequest.reference).where(ConsultationRequest.reference == reference)
    )
    if found is None:
        _refused("no_such_request", looked_up_as(text), actor)
    return found


@dataclass(frozen=True)
class _PatientOf:
    """Whose data a reference opens: ``email`` (lower case) and every request made with it,
    or, for a patient who left no address (an emergency call-back), that one request."""

    email: str | None
    requests: Select


def _patient_of(reference: str) -> _PatientOf | None:
    row = db.session.execute(
        select(ConsultationRequest.id, func.lower(Patient.email))
        .join(ConsultationRequest.patient)
        .where(ConsultationRequest.reference == typed_reference(reference))
    ).one_or_none()
    if row is None:
        return None
    request_id, email = row
    if email:
        return _PatientOf(email, requests_of(email))
    # No address to bring requests together by: a name or a phone number may be shared
    # (a family's landline), so grouping by them would hand out someone else's data.
    return _PatientOf(None, select(ConsultationRequest).where(ConsultationRequest.id == request_id))


def patient_summary(reference: str, actor: StaffUser) -> PatientSummary | None:
    """One patient's requests, for the admin to check before exporting or erasing. Showing
    names and addresses is a look at personal data, so it is audited; so is a reference that
    opens no one (a refused look-up)."""
    _require_admin(actor)
    patient = _patient_of(reference)
    if patient is None:
        _refused("no_such_request", looked_up_as(reference), actor)
        return None
    email = patient.email
    requests = list(
        db.session.scalars(
            patient.requests.options(
                joinedload(ConsultationRequest.patient),
                selectinload(ConsultationRequest.documents),
            )
        )
    )
    ids = [r.id for r in requests]
    emails = db.session.scalar(
        select(func.count()).select_from(OutboxEmail).where(emails_about(ids, email))
    )
    summary = PatientSummary(
        reference=typed_reference(reference),
        email=email,
        requests=[
            RequestLine(
                r.reference,
                r.status,
                r.created_at,
                r.updated_at,
                r.patient.full_name,
                len(r.documents),
            )
            for r in requests
        ],
        open_references=[r.reference for r in requests if r.status in OPEN_STATUSES],
        emails=emails or 0,
    )
    record(
        "privacy_patient_viewed",
        target_type="patient",
        target_id=summary.reference,
        actor=actor,
        details={"references": [r.reference for r in requests]},
    )
    db.session.commit()
    return summary


def export_patient(reference: str, actor: StaffUser) -> PatientArchive | None:
    """Everything held about the patient of ``reference``, gathered for one archive.

    The audit event (who, which references, how many documents and emails; no content) is
    committed before the first byte is sent, so every export is on record. None if unknown,
    audited as a refused look-up.
    """
    _require_admin(actor)
    patient = _patient_of(reference)
    if patient is None:
        _refused("no_such_request", looked_up_as(reference), actor)
        return None
    archive = archive_of(typed_reference(reference), patient.email, patient.requests)
    record(
        "patient_exported",
        target_type="patient",
        target_id=archive.reference,
        actor=actor,
        details=audit_details(archive),
    )
    db.session.commit()
    return archive


def _delete_requests(
    request_ids: list[int], email: str | None = None, closed_by_id: int | None = None
) -> PurgeCounts:
    """Delete the requests and every row about them (and, given the patient's address, every
    email to it); queue their stored files for removal. Flushes only: the caller commits.

    Explicit deletes rather than relying on ON DELETE CASCADE: outbox emails are only
    unlinked by the database (SET NULL), and the counts go into the audit event.
    """
    ids = list(request_ids)
    counts = PurgeCounts()
    appointment_ids = list(
        db.session.scalars(select(Appointment.id).where(Appointment.request_id.in_(ids)))
    )
    patient_ids = list(
        db.session.scalars(
            select(ConsultationRequest.patient_id).where(ConsultationRequest.id.in_(ids))
        )
    )

    def run(statement: Executable) -> int:
        result = db.session.execute(statement, execution_options={"synchronize_session": False})
        return result.rowcount or 0

    counts.emails = run(delete(OutboxEmail).where(emails_about(ids, email)))
    counts.reminders = run(
        delete(ReminderSent).where(ReminderSent.appointment_id.in_(appointment_ids))
    )
    counts.appointments = run(delete(Appointment).where(Appointment.request_id.in_(ids)))
    counts.waitlist_entries = run(delete(WaitlistEntry).where(WaitlistEntry.request_id.in_(ids)))
    run(delete(SlotOfferRecipient).where(SlotOfferRecipient.request_id.in_(ids)))
    # A claimed offer only records who took a freed time; unlinking it would reopen it.
    counts.slot_offers = run(delete(SlotOffer).where(SlotOffer.claimed_by_request_id.in_(ids)))
    counts.calls = run(delete(CallbackAttempt).where(CallbackAttempt.request_id.in_(ids)))
    counts.events = run(delete(RequestEvent).where(RequestEvent.request_id.in_(ids)))
    # An erasure request is kept as the record that it was answered: by this deletion.
    run(
        update(ErasureRequest)
        .where(ErasureRequest.request_id.in_(ids), ErasureRequest.status == ErasureStatus.OPEN)
        .values(status=ErasureStatus.ERASED, closed_at=now_utc(), closed_by_id=closed_by_id)
    )
    run(update(ErasureRequest).where(ErasureRequest.request_id.in_(ids)).values(request_id=None))
    run(delete(ManageLink).where(ManageLink.request_id.in_(ids)))
    # A new address the patient asked for and had not confirmed (or had, lately).
    run(delete(EmailChange).where(EmailChange.request_id.in_(ids)))
    # The files of the rows deleted, read as they are deleted: a document added meanwhile (the
    # patient's page does not wait for this transaction) is deleted with its file queued too.
    stored_names = list(
        db.session.scalars(
            delete(Document).where(Document.request_id.in_(ids)).returning(Document.stored_name),
            execution_options={"synchronize_session": False},
        )
    )
    counts.documents = len(stored_names)
    run(delete(RequestDiagnosis).where(RequestDiagnosis.request_id.in_(ids)))
    run(delete(MedicalHistory).where(MedicalHistory.request_id.in_(ids)))
    counts.requests = run(delete(ConsultationRequest).where(ConsultationRequest.id.in_(ids)))
    counts.patients = run(
        delete(Patient).where(
            Patient.id.in_(patient_ids),
            ~exists().where(ConsultationRequest.patient_id == Patient.id),
        )
    )
    for name in stored_names:
        db.session.add(FilePurge(stored_name=name, created_at=now_utc()))
    db.session.flush()
    return counts


def erase_patient(reference: str, confirmation: str, actor: StaffUser) -> ErasureResult:
    """Delete every row about the patient of ``reference`` in one transaction, then remove
    their files.

    Rules: only an administrator; ``confirmation`` must be the reference or the patient's
    email address; no request may still be open (decline, cancel or complete it first, so the
    time is freed, the waiting list offered it and the patient told). The audit event keeps the
    references and counts only. A file that cannot be removed is logged and retried daily.
    """
    _require_admin(actor)
    reference = typed_reference(reference)
    typed = confirmation.strip()
    try:
        patient = _patient_of(reference)
        if patient is None:
            raise PrivacyError(_("No request has this reference."))
        email = patient.email
        if email is None and typed.upper() != reference:
            raise PrivacyError(_("To confirm, type the request reference."))
        if typed.upper() != reference and typed.lower() != email:
            raise PrivacyError(
                _("To confirm, type the request reference or the patient's email address.")
            )
        # Lock the rows (PostgreSQL; SQLite's BEGIN IMMEDIATE serialises writers): a change
        # or an upload in progress finishes first, or waits and then finds nothing.
        requests = list(
            db.session.scalars(
                patient.requests.with_for_update(of=ConsultationRequest).execution_options(
                    populate_existing=True
                )
            )
        )
        open_references = [r.reference for r in requests if r.status in OPEN_STATUSES]
        if open_references:
            raise PrivacyError(
                _(
                    "Still open: %(references)s. Decline, cancel or complete it first.",
                    references=", ".join(open_references),
                )
            )
        references = [r.reference for r in requests]
        locale = max(requests, key=lambda r: r.created_at).locale
        # A record with a registry code was in a registry export: the clinic must ask each
        # registry it sent one to to delete that code's rows (GDPR Art. 19), so the codes
        # are kept in the audit row (a random code, which nothing links to a person after).
        registry_codes = sorted(existing_registry_codes({r.patient_id for r in requests}).values())
        # Marked deceased on any of their requests, nothing goes to the address
        # (``Patient.writable_address``): the family may read it.
        deceased = any(r.patient.deceased_at is not None for r in requests)
        writable = None if deceased else email
        counts = _delete_requests([r.id for r in requests], email=email, closed_by_id=actor.id)
        # The patient is told, in the same transaction (after the deletion, which takes every
        # email to their address): the one email about them the outbox forgets once sent.
        confirmation = (
            rights_emails.erasure_done(writable, locale, references) if writable else None
        )
        record(
            "patient_erased",
            target_type="patient",
            target_id=reference,
            actor=actor,
            details={
                "references": references,
                **counts.as_dict(),
                "patient_emailed": confirmation is not None,
                "registry_codes": registry_codes,
            },
        )
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    # The references go to the log as well as to the audit trail: the log is kept outside the
    # database, so after a restore from a backup older than this erasure it is what tells the
    # operators which erasures to apply again (docs/data-protection.md). A reference is a
    # random code that nothing links to a person once the erasure is done.
    log.info(
        "patient erased: %s requests, %s documents (references: %s)",
        counts.requests,
        counts.documents,
        ", ".join(references),
    )
    if confirmation is not None:
        enqueue_delivery([confirmation.id])
    _removed, pending = remove_queued_files()
    return ErasureResult(
        references,
        counts,
        pending,
        patient_emailed=confirmation is not None,
        registry_codes=registry_codes,
        patient_deceased=deceased,
    )


def remove_queued_files(limit: int = FILE_RETRY_BATCH) -> tuple[int, int]:
    """Remove the stored files queued in ``file_purge``; return (removed, still pending).

    Safe to repeat: removing a file that is already gone succeeds. Never raises for a file:
    an error is logged (stored name only) and counted on its row for the next run.
    """
    queued = list(
        db.session.scalars(select(FilePurge.stored_name).order_by(FilePurge.id).limit(limit))
    )
    db.session.rollback()  # no transaction held open while touching storage
    storage = get_storage()
    removed: list[str] = []
    failed: dict[str, str] = {}
    for name in queued:
        try:
            storage.delete(name)
        except Exception as exc:
            failed[name] = f"{type(exc).__name__}: {exc}"[:200]
            log.warning("could not remove stored file %s: %s", name, type(exc).__name__)
        else:
            removed.append(name)
    try:
        if removed:
            db.session.execute(
                delete(FilePurge).where(FilePurge.stored_name.in_(removed)),
                execution_options={"synchronize_session": False},
            )
        for name, error in failed.items():
            db.session.execute(
                update(FilePurge)
                .where(FilePurge.stored_name == name)
                .values(attempts=FilePurge.attempts + 1, last_error=error),
                execution_options={"synchronize_session": False},
            )
        db.session.commit()
    except Exception:
        # The files are gone or will be retried either way; never fail the caller here.
        db.session.rollback()
        log.exception("could not update the file removal queue")
    pending = db.session.scalar(select(func.count()).select_from(FilePurge)) or 0
    db.session.rollback()
    return len(removed), pending


def retention_cutoff(now: datetime | None = None) -> datetime | None:
    """Closed requests whose last change is before this are due; None when retention is off."""
    days = current_app.config.get("RETENTION_DAYS")
    if not days:
        return None
    return (now or now_utc()) - timedelta(days=int(days))


@dataclass(frozen=True)
class RetentionStatus:
    days: int | None  # None: retention is off
    files_pending: int


def retention_status() -> RetentionStatus:
    """The retention setting and how many removed records' files still wait to be deleted."""
    pending = db.session.scalar(select(func.count()).select_from(FilePurge)) or 0
    db.session.rollback()
    return RetentionStatus(current_app.config.get("RETENTION_DAYS") or None, pending)


def _due(cutoff: datetime, now: datetime) -> Select:
    """Closed requests untouched since ``cutoff``: no status change, note, document,
    appointment time, message, treatment plan or follow-up questionnaire (sent, reminded,
    answered, or its link working) after it, and none whose follow-ups are still to come at
    ``now`` (a short retention must not cut the 12-month questionnaire off)."""
    request = ConsultationRequest
    to_come = followups_to_come(now)
    still_followed = [] if to_come is None else [~to_come]
    return select(request.id).where(
        *still_followed,
        request.status.in_(sorted(CLOSED_STATUSES)),
        request.updated_at < cutoff,
        ~exists().where(RequestEvent.request_id == request.id, RequestEvent.occurred_at >= cutoff),
        ~exists().where(Document.request_id == request.id, Document.uploaded_at >= cutoff),
        ~exists().where(Appointment.request_id == request.id, Appointment.ends_at >= cutoff),
        ~exists().where(Message.request_id == request.id, Message.created_at >= cutoff),
        ~exists().where(TreatmentPlan.request_id == request.id, TreatmentPlan.decided_at >= cutoff),
        ~exists().where(
            FollowUp.request_id == request.id,
            or_(
                FollowUp.sent_at >= cutoff,
                FollowUp.reminded_at >= cutoff,
                FollowUp.answered_at >= cutoff,
                FollowUp.expires_at >= cutoff,  # a link still working, or lately
            ),
        ),
    )


def purge_expired(
    *, now: datetime | None = None, dry_run: bool = False, batch_size: int = RETENTION_BATCH
) -> RetentionResult:
    """Delete closed requests (declined, cancelled, completed, no-show) whose last change is
    older than ``RETENTION_DAYS``, like an erasure, in batches of one transaction each, each
    audited. Idempotent: a second run finds nothing. A dry run only counts what is due.
    Files queued by earlier runs or erasures and not yet removed are retried too."""
    now = now or now_utc()
    cutoff = retention_cutoff(now)
    if cutoff is None:
        return RetentionResult(enabled=False, dry_run=dry_run)
    result = RetentionResult(enabled=True, dry_run=dry_run, cutoff=cutoff)
    if dry_run:
        due = _due(cutoff, now).subquery()
        result.references = list(
            db.session.scalars(
                select(ConsultationRequest.reference)
                .where(ConsultationRequest.id.in_(select(due.c.id)))
                .order_by(ConsultationRequest.id)
            )
        )
        result.counts.requests = len(result.references)
        result.counts.documents = (
            db.session.scalar(
                select(func.count())
                .select_from(Document)
                .where(Document.request_id.in_(select(due.c.id)))
            )
            or 0
        )
        result.counts.emails = (
            db.session.scalar(
                select(func.count())
                .select_from(OutboxEmail)
                .where(OutboxEmail.request_id.in_(select(due.c.id)))
            )
            or 0
        )
        result.files_pending = db.session.scalar(select(func.count()).select_from(FilePurge)) or 0
        db.session.rollback()
        return result
    while True:
        try:
            ids = list(
                db.session.scalars(
                    _due(cutoff, now)
                    .order_by(ConsultationRequest.id)
                    .limit(batch_size)
                    .with_for_update(skip_locked=True)
                )
            )
            if not ids:
                db.session.rollback()
                break
            references = list(
                db.session.scalars(
                    select(ConsultationRequest.reference)
                    .where(ConsultationRequest.id.in_(ids))
                    .order_by(ConsultationRequest.id)
                )
            )
            counts = _delete_requests(ids)
            record(
                "retention_purged",
                target_type="retention",
                actor_email=RETENTION_ACTOR,
                details={
                    "cutoff": cutoff.isoformat(),
                    "references": references,
                    **counts.as_dict(),
                },
            )
            db.session.commit()
        except BaseException:
            db.session.rollback()
            raise
        result.references += references
        result.counts.add(counts)
        # References logged for the same reason as an erasure's (see erase_patient).
        log.info(
            "retention: purged %s requests (references: %s)",
            counts.requests,
            ", ".join(references),
        )
        removed, result.files_pending = remove_queued_files()
        result.files_removed += removed
    removed, result.files_pending = remove_queued_files()
    result.files_removed += removed
    return result
