"""Taking a patient's request: the one place that stores a request and everything with it.

``submit_request`` owns its transaction. Either the patient, the request, the history, every
document (row and file) and both emails are stored, or nothing is: files written before a
failure are deleted, and the database work is rolled back.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from flask import current_app
from sqlalchemy import select, true
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.attributes import set_committed_value

from booking.audit.services import record
from booking.documents.models import Document
from booking.documents.storage import DocumentUpload, saved_uploads
from booking.extensions import db
from booking.notifications.services import enqueue_delivery, enqueue_still_to_go
from booking.requests import emails, history, instruments, links, notice, triage
from booking.requests.drafts import RequestDraft, lock_draft, mark_sent, withdrawn_red_flags
from booking.requests.emails import in_staff_language
from booking.requests.events import EventKind
from booking.requests.lifecycle import PATIENT, add_event, unused_reference
from booking.requests.models import (
    ConsultationRequest,
    MedicalHistory,
    Patient,
    RequestDiagnosis,
    RequestStatus,
    TriageLevel,
)
from booking.requests.queries import find_by_token
from booking.scheduling.availability import OpenSlot
from booking.scheduling.models import Appointment, AppointmentType, Location
from booking.scheduling.services import (
    SlotChoice,
    SlotTaken,
    new_uid,
    place_appointment,
    resolve_choice,
)
from booking.security import count_for_address
from booking.staff.models import StaffUser
from booking.timeutil import now_utc

log = logging.getLogger(__name__)


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
    # The history answers by name (``history.ANSWERS``), stored as they are.
    answers: dict[str, Any]
    # Each instrument's answers by section (None: skipped). Only the instruments the region
    # asks are stored (``instruments.instruments_for``).
    odi_answers: dict[str, int | None]
    red_flags: set[str]
    ndi_answers: dict[str, int | None] = field(default_factory=dict)
    documents: list[DocumentUpload] = field(default_factory=list)
    preferred_days: list[int] = field(default_factory=list)
    preferred_time_of_day: str = "any"
    earliest_date: date | None = None
    contact_consent: bool = True
    # The separate, optional consent to questionnaires after the visit (``booking.outcomes``).
    followup_consent: bool = False
    slot: SlotChoice | None = None  # the time the patient picked, if any
    # The draft the answers come from (the stepped form): its documents are already stored,
    # and it is marked as sent in the same transaction.
    draft: RequestDraft | None = None


def _found_again(consultation: ConsultationRequest) -> ConsultationRequest:
    """A request sent again and found stored by its one-time token. If the first send's
    commit answer was lost (the patient saw "may not be sent" and pressed again), its emails
    were never handed to the queue: the clinic's alert of an urgent or emergency request
    would wait minutes for the sweep. They go now (twice is harmless)."""
    enqueue_still_to_go(consultation.id)
    return consultation


def submit_request(sub: RequestSubmission) -> ConsultationRequest:
    """Store a new request with its history, documents and emails, all or nothing.

    A second submission with the same one-time token (a refresh, a double click) returns the
    request the first one stored. Raises ``DocumentRejected`` for a file refused while it is
    being stored, ``OSError`` when storage fails, and ``SlotTaken`` when the picked time is no
    longer open; in every case nothing is kept.
    """
    existing = find_by_token(sub.submission_token)
    if existing is not None:
        return _found_again(existing)

    unknown_answers = set(sub.answers) ^ history.ANSWER_NAMES
    if unknown_answers:
        raise ValueError(f"history answers missing or unknown: {sorted(unknown_answers)}")
    answers, outcomes = _region_answers(sub)
    unknown_flags = set(sub.red_flags) - history.RED_FLAG_CODES
    if unknown_flags:
        raise ValueError(f"unknown red flags: {sorted(unknown_flags)}")

    try:
        # The picked time is checked before any file is written, so a taken one costs none.
        # The database still has the last word when the appointment is flushed (SlotTaken).
        held = _check_time(sub.slot) if sub.slot is not None else None
        # The draft's documents as they are now, locked: a file another tab is adding goes
        # into this request, or is refused once it is sent (``drafts.add_document``).
        draft = lock_draft(sub.draft) if sub.draft is not None else None
        withdrawn = _withdrawn_red_flags(draft, sub.red_flags)
        level = TriageLevel(history.triage_level(sub.red_flags, withdrawn))
        # All or nothing: the files are deleted again if anything after them fails.
        with saved_uploads(sub.documents) as stored:
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
                reference=unused_reference(),
                patient=patient,
                status=RequestStatus.REQUESTED,
                triage_level=level,
                red_flags=sorted(sub.red_flags),
                withdrawn_red_flags=withdrawn,
                submission_token=sub.submission_token,
                locale=sub.locale,
                preferred_days=sorted(set(sub.preferred_days)),
                preferred_time_of_day=sub.preferred_time_of_day,
                earliest_date=sub.earliest_date,
                **_notice_accepted(sub.locale, now),
                contact_consent=sub.contact_consent,
                followup_consent=sub.followup_consent,
                followup_consent_version=current_app.config["FOLLOWUP_CONSENT_VERSION"]
                if sub.followup_consent
                else None,
                created_at=now,
                updated_at=now,
            )
            consultation.history = MedicalHistory(**answers, **outcomes)
            consultation.diagnosis_codes = [
                RequestDiagnosis(code=code) for code in sorted(set(sub.answers["diagnoses"]))
            ]
            consultation.documents = [
                Document.of_upload(upload, file, now)
                for upload, file in zip(sub.documents, stored, strict=True)
            ] + [
                Document(**document.stored_facts())
                for document in (draft.documents if draft is not None else [])
            ]
            if draft is not None:
                mark_sent(draft, consultation)
            db.session.add(consultation)
            # One flush stores the request with everything it holds (and the request's id,
            # for the outbox rows and the manage link); holding the time is part of it.
            if held is not None:
                _hold_slot(consultation, held)
            else:
                db.session.flush()
            _note_withdrawn_red_flags(consultation)
            receipt = _may_confirm(consultation)
            queued = emails.request_received(consultation, receipt=receipt)
            _record_submission(consultation)
            db.session.flush()
            # Read before the commit expires them: reading them after it costs a query each.
            reference, email_ids = consultation.reference, [email.id for email in queued]
            log_args = (consultation.id, consultation.triage_level)
            db.session.commit()
    except IntegrityError:
        # Two posts of one form raced: the other one won; show the patient its request.
        existing = find_by_token(sub.submission_token)
        if existing is not None:
            return existing
        raise
    except BaseException:
        db.session.rollback()  # (the time's check reads before any file is saved)
        raise

    # The commit expired the request; its reference, which the caller shows next, and its id,
    # which the confirmation page's private link names, are known.
    set_committed_value(consultation, "reference", reference)
    set_committed_value(consultation, "id", log_args[0])
    log.info("request %s stored (triage %s)", *log_args)
    enqueue_delivery(email_ids)
    return consultation


def _notice_accepted(locale: str, now: datetime) -> dict[str, Any]:
    """What a new request records of the privacy notice the patient accepted: its version,
    the language it was read in, the fingerprint of that text, and when."""
    return {
        "privacy_notice_version": current_app.config["PRIVACY_NOTICE_VERSION"],
        "privacy_notice_language": locale,
        "privacy_notice_sha256": notice.fingerprint(locale),
        "consented_at": now,
    }


def _region_answers(sub: RequestSubmission) -> tuple[dict[str, Any], dict[str, Any]]:
    """The history answers and instrument columns to store, by the patient's main problem:
    the pain scores and instruments of that region, each scored (``instruments.score``).
    Answers the region does not ask (a page without scripts shows every part) are not kept.
    A missing pain score of the region, or an unknown region, raises ``ValueError``: the form
    requires them."""
    region = sub.answers["spine_region"]
    if region not in instruments.REGION_CODES:
        raise ValueError(f"unknown spine region {region!r}")
    answers = dict(sub.answers)
    asked_areas = instruments.REGION_PAIN_AREAS[region]
    for area in instruments.PAIN_AREAS:
        for name in (area.now_name, area.worst_name):
            if area not in asked_areas:
                answers[name] = None
            elif not isinstance(answers[name], int):
                raise ValueError(f"{name} is required for the region {region!r}")
    given = {"odi": sub.odi_answers, "ndi": sub.ndi_answers}
    asked = instruments.instruments_for(region)
    outcomes: dict[str, Any] = {}
    for instrument in instruments.INSTRUMENTS:
        answered = given[instrument.code] if instrument in asked else {}
        result = instruments.score(instrument, answered)
        outcomes |= {
            f"{instrument.code}_answers": result.answers,
            f"{instrument.code}_sections_answered": result.sections_answered,
            f"{instrument.code}_percent": result.percent,
            f"{instrument.code}_band": result.band,
        }
    return answers, outcomes


def confirmation_link(consultation: ConsultationRequest) -> str:
    """A private link to the request's own page for the confirmation page (the email carries
    its own): the token, to be kept in the patient's session only."""
    token = links.issue_link(consultation)
    db.session.commit()
    return token


@dataclass(frozen=True)
class CallbackSubmission:
    """An emergency patient's name and phone number, with the flags they answered "yes"."""

    submission_token: str
    locale: str
    full_name: str  # the patient's
    phone: str  # E.164
    red_flags: set[str]
    # Who wrote, when a parent or guardian did for the patient: the one to ask for.
    guardian_name: str | None = None


def request_callback(sub: CallbackSubmission) -> ConsultationRequest:
    """Store an EMERGENCY request for a call-back and alert the clinic, in one transaction.

    The patient was told to seek emergency care now; they left only a name and a phone
    number, so the request has no history, no email address and no documents. A second post
    of the same form returns the request the first one stored."""
    existing = find_by_token(sub.submission_token)
    if existing is not None:
        return _found_again(existing)
    if history.triage_level(sub.red_flags) != TriageLevel.EMERGENCY:
        raise ValueError("a call-back request needs an emergency red flag")
    now = now_utc()
    consultation = ConsultationRequest(
        reference=unused_reference(),
        patient=Patient(
            full_name=sub.full_name,
            guardian_name=sub.guardian_name,
            phone=sub.phone,
            preferred_contact="phone",
            created_at=now,
        ),
        status=RequestStatus.REQUESTED,
        triage_level=TriageLevel.EMERGENCY,
        red_flags=sorted(sub.red_flags),
        submission_token=sub.submission_token,
        locale=sub.locale,
        **_notice_accepted(sub.locale, now),
        contact_consent=True,  # they asked to be called
        created_at=now,
        updated_at=now,
    )
    try:
        db.session.add(consultation)
        db.session.flush()
        alerts = emails.callback_requested(consultation)
        _record_submission(consultation)
        db.session.flush()
        reference, email_ids = consultation.reference, [alert.id for alert in alerts]
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        existing = find_by_token(sub.submission_token)
        if existing is not None:
            return existing
        raise
    except BaseException:
        db.session.rollback()
        raise
    set_committed_value(consultation, "reference", reference)
    log.warning("emergency call-back request %s stored", reference)
    enqueue_delivery(email_ids)
    return consultation


def _withdrawn_red_flags(draft: RequestDraft | None, red_flags: set[str]) -> list[str]:
    """The urgent-symptom questions the patient answered "yes" in the draft and then changed
    to "no" before sending (``drafts.WITHDRAWN_RED_FLAGS``), known codes only."""
    if draft is None:
        return []
    found = withdrawn_red_flags(draft.values())
    return sorted({code for code in found if code in triage.BY_CODE} - red_flags)


# Request confirmations per email address, whatever the network address (``count_for_address``).
CONFIRMATION_ADDRESS_SCOPE = "request-confirmation-address"


def _may_confirm(consultation: ConsultationRequest) -> bool:
    """Whether the patient's confirmation email goes: anyone can type someone else's address
    into request after request, from many network addresses, and make the clinic email that
    inbox; past ``REQUEST_CONFIRMATION_ADDRESS_RATE_LIMIT`` for the address only the email is
    held back. The request itself is always stored, the clinic is told of it, the patient's
    confirmation page shows it all, and its timeline says the email was held back."""
    address = consultation.patient.writable_address
    if not address:
        return True  # no receipt goes anyway: nothing to count
    limits = current_app.config["REQUEST_CONFIRMATION_ADDRESS_RATE_LIMIT"]
    if count_for_address(CONFIRMATION_ADDRESS_SCOPE, address, limits):
        return True
    add_event(
        consultation,
        kind=EventKind.NOTE,
        actor=None,
        body=(
            "The confirmation email to the patient was held back: many requests were sent "
            "with this email address recently (REQUEST_CONFIRMATION_ADDRESS_RATE_LIMIT). "
            "The patient saw the reference and private link on screen; check the address "
            "is theirs before writing to it."
        ),
    )
    log.warning(
        "request %s: confirmation email held back (limit per email address)", consultation.id
    )
    return False


def _note_withdrawn_red_flags(consultation: ConsultationRequest) -> None:
    """On the timeline, the urgent-symptom questions the patient answered "yes" and then
    changed to "no" before sending: an emergency or urgent one makes the request urgent
    (``triage.level``), and the clinic should know the patient once said yes."""
    codes = consultation.withdrawn_red_flags
    if not codes:
        return
    questions = "; ".join(in_staff_language(triage.BY_CODE[code].question) for code in codes)
    add_event(
        consultation,
        kind=EventKind.NOTE,
        actor=None,
        body=(
            "Before sending, the patient changed these red-flag answers from yes to no: "
            f"{questions}. Please check with them."
        ),
    )


def _record_submission(consultation: ConsultationRequest) -> None:
    """The audit row of a submission: the reference and what the patient consented to (the
    notice's version and language), no personal data, not even the network address."""
    record(
        "request_submitted",
        target_type="request",
        target_id=consultation.reference,
        actor_email=PATIENT,
        details={
            "notice_version": consultation.privacy_notice_version,
            "language": consultation.privacy_notice_language,
        },
        with_address=False,
    )


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
