"""Taking a patient's request: the one place that stores a request and everything with it.

``submit_request`` owns its transaction. Either the patient, the request, the history, every
document (row and file) and both emails are stored, or nothing is: files written before a
failure are deleted, and the database work is rolled back.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field
from datetime import date
from typing import BinaryIO

from flask import current_app
from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy import select, true
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.attributes import set_committed_value

from booking.dashboard.ical import appointment_ics
from booking.documents.models import Document
from booking.documents.storage import StoredFile, get_storage
from booking.extensions import db
from booking.manage.tokens import manage_url
from booking.notifications.services import enqueue_delivery, queue_email
from booking.patients import history
from booking.patients.models import (
    ConsultationRequest,
    MedicalHistory,
    Patient,
    RequestDiagnosis,
    RequestStatus,
    TriageLevel,
)
from booking.scheduling.availability import OpenSlot
from booking.scheduling.models import Appointment, AppointmentType, Location
from booking.scheduling.services import (
    SlotChoice,
    SlotTaken,
    new_uid,
    place_appointment,
    resolve_choice,
)
from booking.staff.models import StaffUser
from booking.timeutil import now_utc

log = logging.getLogger(__name__)

# No 0/O, 1/I/L, 5/S, 8/B: a reference read out on the phone is not misheard.
REFERENCE_ALPHABET = "234679ACDEFGHJKMNPQRTUVWXYZ"
REFERENCE_ATTEMPTS = 5


@dataclass(frozen=True)
class DocumentUpload:
    stream: BinaryIO
    filename: str
    description: str | None = None


@dataclass
class RequestSubmission:
    """Everything a patient's form gives, already checked for shape by the form."""

    submission_token: str
    locale: str
    full_name: str
    date_of_birth: date
    guardian_name: str | None
    email: str
    phone: str
    preferred_contact: str
    pain_locations: list[str]
    pain_side: str | None
    pain_duration: str
    pain_now: int
    pain_worst: int
    radiating_pain: bool
    numbness: bool
    weakness: bool
    diagnoses: list[str]
    diagnosis_other: str | None
    treatments: list[str]
    surgery_details: str | None
    imaging: list[str]
    imaging_when: str | None
    medications: str | None
    allergies: str | None
    blood_thinners: bool
    diabetes: bool
    smoking: str
    other_history: str | None
    odi_answers: dict[str, int | None]
    red_flags: set[str]
    documents: list[DocumentUpload] = field(default_factory=list)
    preferred_days: list[int] = field(default_factory=list)
    preferred_time_of_day: str = "any"
    earliest_date: date | None = None
    contact_consent: bool = True
    slot: SlotChoice | None = None  # the time the patient picked, if any


def new_reference() -> str:
    """A reference like ``SC-7K4M-Q2XD``: 8 random characters, about 38 bits."""
    chars = "".join(secrets.choice(REFERENCE_ALPHABET) for _ in range(8))
    return f"SC-{chars[:4]}-{chars[4:]}"


def _unused_reference() -> str:
    for _attempt in range(REFERENCE_ATTEMPTS):
        reference = new_reference()
        taken = db.session.scalar(
            select(ConsultationRequest.id).where(ConsultationRequest.reference == reference)
        )
        if taken is None:
            return reference
    raise RuntimeError("could not find an unused reference")


def find_by_token(token: str) -> ConsultationRequest | None:
    return db.session.scalar(
        select(ConsultationRequest).where(ConsultationRequest.submission_token == token)
    )


def lock_request(consultation: ConsultationRequest) -> ConsultationRequest:
    """Re-read a request and lock its row for the rest of this transaction (PostgreSQL;
    SQLite's BEGIN IMMEDIATE already serialises writers), so two changes cannot interleave."""
    return db.session.scalars(
        select(ConsultationRequest)
        .where(ConsultationRequest.id == consultation.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()


def find_by_reference(reference: str) -> ConsultationRequest | None:
    return db.session.scalar(
        select(ConsultationRequest).where(ConsultationRequest.reference == reference)
    )


def submit_request(sub: RequestSubmission) -> ConsultationRequest:
    """Store a new request with its history, documents and emails, all or nothing.

    A second submission with the same one-time token (a refresh, a double click) returns the
    request the first one stored. Raises ``DocumentRejected`` for a file refused while it is
    being stored, ``OSError`` when storage fails, and ``SlotTaken`` when the picked time is no
    longer open; in every case nothing is kept.
    """
    existing = find_by_token(sub.submission_token)
    if existing is not None:
        return existing

    odi = history.score_odi(sub.odi_answers)
    unknown_flags = set(sub.red_flags) - history.RED_FLAG_CODES
    if unknown_flags:
        raise ValueError(f"unknown red flags: {sorted(unknown_flags)}")
    triage = TriageLevel(history.triage_level(sub.red_flags))

    storage = get_storage()
    max_bytes = current_app.config["MAX_DOCUMENT_MB"] * 1024 * 1024
    stored: list[StoredFile] = []
    try:
        # The picked time is checked before any file is written, so a taken one costs none.
        # The database still has the last word when the appointment is flushed (SlotTaken).
        held = _check_time(sub.slot) if sub.slot is not None else None
        for upload in sub.documents:
            stored.append(storage.save(upload.stream, max_bytes))

        patient = Patient(
            full_name=sub.full_name,
            date_of_birth=sub.date_of_birth,
            guardian_name=sub.guardian_name,
            email=sub.email,
            phone=sub.phone,
            preferred_contact=sub.preferred_contact,
        )
        now = now_utc()
        consultation = ConsultationRequest(
            reference=_unused_reference(),
            patient=patient,
            status=RequestStatus.REQUESTED,
            triage_level=triage,
            submission_token=sub.submission_token,
            locale=sub.locale,
            preferred_days=sorted(set(sub.preferred_days)),
            preferred_time_of_day=sub.preferred_time_of_day,
            earliest_date=sub.earliest_date,
            privacy_notice_version=current_app.config["PRIVACY_NOTICE_VERSION"],
            consented_at=now,
            contact_consent=sub.contact_consent,
            created_at=now,
            updated_at=now,
        )
        consultation.history = MedicalHistory(
            pain_locations=sub.pain_locations,
            pain_side=sub.pain_side,
            pain_duration=sub.pain_duration,
            pain_now=sub.pain_now,
            pain_worst=sub.pain_worst,
            radiating_pain=sub.radiating_pain,
            numbness=sub.numbness,
            weakness=sub.weakness,
            diagnoses=sub.diagnoses,
            diagnosis_other=sub.diagnosis_other,
            treatments=sub.treatments,
            surgery_details=sub.surgery_details,
            imaging=sub.imaging,
            imaging_when=sub.imaging_when,
            medications=sub.medications,
            allergies=sub.allergies,
            blood_thinners=sub.blood_thinners,
            diabetes=sub.diabetes,
            smoking=sub.smoking,
            other_history=sub.other_history,
            odi_answers=odi.answers,
            odi_sections_answered=odi.sections_answered,
            odi_percent=odi.percent,
            odi_band=odi.band,
            red_flags=sorted(sub.red_flags),
        )
        consultation.diagnosis_codes = [
            RequestDiagnosis(code=code) for code in sorted(set(sub.diagnoses))
        ]
        consultation.documents = [
            Document(
                original_name=safe_display_name(upload.filename),
                stored_name=file.stored_name,
                content_type=file.content_type,
                size_bytes=file.size_bytes,
                sha256=file.sha256,
                description=upload.description,
                uploaded_at=now,
            )
            for upload, file in zip(sub.documents, stored, strict=True)
        ]
        db.session.add(consultation)
        # One flush stores the request with everything it holds (and the request's id, for the
        # outbox rows and the manage link); holding the time is part of it.
        if held is not None:
            _hold_slot(consultation, held)
        else:
            db.session.flush()
        emails = _queue_request_emails(consultation)
        db.session.flush()
        # Read before the commit expires them: reading them after it costs a query each.
        reference, email_ids = consultation.reference, [email.id for email in emails]
        log_args = (consultation.id, consultation.triage_level)
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        _delete_files(stored)
        # Two posts of one form raced: the other one won; show the patient its request.
        existing = find_by_token(sub.submission_token)
        if existing is not None:
            return existing
        raise
    except BaseException:
        db.session.rollback()
        _delete_files(stored)
        raise

    # The commit expired the request; its reference, which the caller shows next, is known.
    set_committed_value(consultation, "reference", reference)
    log.info("request %s stored (triage %s)", *log_args)
    enqueue_delivery(email_ids)
    return consultation


@dataclass(frozen=True)
class _HeldTime:
    appointment_type: AppointmentType
    slot: OpenSlot
    specialist: StaffUser
    location: Location


def _check_time(choice: SlotChoice) -> _HeldTime:
    """The picked time if it is still open (else ``SlotTaken``), with the specialist and the
    place the emails name, loaded together rather than by a lazy load each."""
    appointment_type, slot = resolve_choice(choice)
    row = db.session.execute(
        select(StaffUser, Location)
        .join(Location, true())  # two rows by id: one joined statement, not a cartesian FROM
        .where(StaffUser.id == slot.specialist_id, Location.id == slot.location_id)
    ).first()
    if row is None:  # both are in the open slot's hours; gone only if deleted just now
        raise SlotTaken
    return _HeldTime(appointment_type, slot, *row)


def _hold_slot(consultation: ConsultationRequest, held: _HeldTime) -> None:
    """Hold the picked time for this request; the database refuses it if it was just taken.

    The appointment is attached while the request is still pending, so the flush that
    ``place_appointment`` does stores both at once (no separate update of the request)."""
    appointment = Appointment(
        uid=new_uid(), sequence=0, specialist=held.specialist, location=held.location
    )
    consultation.appointment = appointment
    consultation.assigned_specialist_id = held.slot.specialist_id
    place_appointment(appointment, held.appointment_type, held.slot)


def _delete_files(stored: list[StoredFile]) -> None:
    storage = get_storage()
    for file in stored:
        try:
            storage.delete(file.stored_name)
        except OSError:
            log.exception("could not remove stored file after a failed request")


def safe_display_name(filename: str) -> str:
    """The file's name as the patient's computer called it, for display only: no path parts,
    no control characters, at most 255 characters."""
    name = filename.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable()).strip()
    return (name or _("document"))[:255]


def _queue_request_emails(consultation: ConsultationRequest) -> list:
    """The patient's receipt and the clinic's notice. Neither carries medical details."""
    config = current_app.config
    base_url = config["PUBLIC_BASE_URL"].rstrip("/")
    with force_locale(consultation.locale):
        patient_subject = _(
            "We received your request %(reference)s", reference=consultation.reference
        )
    attachment = None
    if consultation.appointment is not None:
        attachment = (
            "appointment.ics",
            "text/calendar; method=REQUEST; charset=UTF-8",
            appointment_ics(consultation.appointment),
        )
    patient_email = queue_email(
        template="request_received",
        attachment=attachment,
        recipient=consultation.patient.email,
        subject=patient_subject,
        locale=consultation.locale,
        request_id=consultation.id,
        consultation=consultation,
        patient_name=consultation.patient.full_name,
        appointment=consultation.appointment,
        manage_url=manage_url(consultation),
    )
    # Staff read English until the dashboard offers a choice.
    with force_locale("en"):
        if consultation.is_urgent:
            staff_subject = _(
                "URGENT: new request %(reference)s with red flags",
                reference=consultation.reference,
            )
        else:
            staff_subject = _("New request %(reference)s", reference=consultation.reference)
    staff_email = queue_email(
        template="new_request_staff",
        recipient=config["STAFF_NOTIFICATION_EMAIL"],
        subject=staff_subject,
        locale="en",
        request_id=consultation.id,
        consultation=consultation,
        request_url=f"{base_url}/staff/requests/{consultation.reference}",
    )
    return [patient_email, staff_email]
