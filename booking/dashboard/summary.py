"""A request's one-page intake summary for the consultation: what the patient told us, the
red flags and triage, the region's pain scores and instrument, the documents (their names,
never their content) and staff's notes. One function gathers it; the staff page and its PDF
both show what it returns, so paper and screen never disagree.

It reads only what ``queries.load_record`` loaded (no query of its own) and changes nothing:
the views audit each look.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from flask_babel import gettext as _

from booking.documents.models import Document
from booking.requests import history, instruments, triage
from booking.requests.events import EventKind
from booking.requests.instruments import Score
from booking.requests.models import ConsultationRequest, MedicalHistory, Patient
from booking.scheduling.models import Appointment
from booking.templating import LANGUAGE_NAMES, age, choice_label, choice_labels
from booking.timeutil import now_utc

# What staff call each type a document may have (the type detected from its bytes).
DOCUMENT_KINDS = {
    "application/pdf": "PDF",
    "image/jpeg": "JPEG image",
    "image/png": "PNG image",
}


def _not_available(document: Document) -> str | None:
    if document.removed:
        return _("removed: the virus scan found malware in it")
    if document.awaiting_scan:
        return _("not yet scanned for viruses: it opens once a scan passes")
    return None


@dataclass(frozen=True)
class RedFlagLine:
    label: str  # the question the patient answered "yes"
    pathway: str  # ``triage`` pathway of the flag alone: emergency, urgent or review
    pathway_label: str


@dataclass(frozen=True)
class CombinationLine:
    """Answers more pressing together than alone (``triage.COMBINATIONS``)."""

    pathway_label: str  # what they make the request: urgent
    reason: str  # why, for staff (English)


@dataclass(frozen=True)
class PainLine:
    area: str
    now: int
    worst: int


@dataclass(frozen=True)
class DocumentLine:
    name: str  # as the patient's computer called it
    kind: str
    description: str | None  # what the patient said it is
    uploaded_at: datetime
    size_bytes: int
    # Why the clinic does not have it to open (None when it does): held for its virus scan,
    # or removed by it. Listed plainly, it would be looked for at the consultation.
    not_available: str | None = None


@dataclass(frozen=True)
class NoteLine:
    at: datetime
    author: str | None
    heading: str  # "Note", or the call-back and its outcome
    body: str


@dataclass(frozen=True)
class IntakeSummary:
    consultation: ConsultationRequest
    patient: Patient
    age: int | None
    language: str
    contact: str  # how the patient prefers to be contacted
    triage_label: str
    red_flags: list[RedFlagLine]
    # Why answers each only to review alone made the request urgent together.
    combinations: list[CombinationLine]
    # Answered "yes", then changed to "no" before sending (``withdrawn_red_flags``).
    withdrawn_red_flags: list[RedFlagLine]
    history: MedicalHistory | None  # None: an emergency call-back (name and phone only)
    region_label: str
    pain: list[PainLine]
    outcomes: list[Score]  # the instruments the region asked, each with answers and score
    where: str
    duration: str
    diagnoses: str
    treatments: str
    imaging: str
    smoking: str
    appointment: Appointment | None  # an active one only
    documents: list[DocumentLine]
    notes: list[NoteLine]
    prepared_at: datetime


def intake_summary(consultation: ConsultationRequest) -> IntakeSummary:
    """Everything the intake summary shows, from a request loaded by ``load_record``.

    Red flags keep the patient's order; an instrument is shown for every instrument the
    patient's region asks (``instruments.instruments_for``), scored or "not scored" as
    stored; notes are staff notes and call-backs with a note, oldest first, as a clinician
    reads a history.
    """
    patient = consultation.patient
    h = consultation.history
    appointment = consultation.appointment
    return IntakeSummary(
        consultation=consultation,
        patient=patient,
        age=age(patient.date_of_birth) if patient.date_of_birth else None,
        language=_language(consultation.locale),
        contact=choice_label(history.CONTACT_METHODS, patient.preferred_contact),
        triage_label=str(triage.LEVEL_LABELS[consultation.triage_level]),
        red_flags=[_red_flag(code) for code in consultation.red_flags],
        combinations=[
            CombinationLine(str(triage.PATHWAY_LABELS[c.pathway]), c.reason)
            for c in consultation.flag_combinations
        ],
        withdrawn_red_flags=[_red_flag(code) for code in consultation.withdrawn_red_flags],
        history=h,
        region_label=_region(h),
        pain=_pain(h),
        outcomes=[] if h is None else [h.outcome(i) for i in instruments_asked(h)],
        where=_where(h),
        duration="" if h is None else choice_label(history.PAIN_DURATIONS, h.pain_duration),
        diagnoses=_diagnoses(h),
        treatments="" if h is None else choice_labels(history.TREATMENTS, h.treatments),
        imaging="" if h is None else choice_labels(history.IMAGING, h.imaging),
        smoking="" if h is None else choice_label(history.SMOKING, h.smoking),
        appointment=appointment if appointment is not None and appointment.active else None,
        documents=[
            DocumentLine(
                name=doc.original_name,
                kind=DOCUMENT_KINDS.get(doc.content_type, doc.content_type),
                description=doc.description,
                uploaded_at=doc.uploaded_at,
                size_bytes=doc.size_bytes,
                not_available=_not_available(doc),
            )
            for doc in consultation.documents
        ],
        notes=_notes(consultation),
        prepared_at=now_utc(),
    )


def instruments_asked(h: MedicalHistory) -> tuple[instruments.Instrument, ...]:
    return instruments.instruments_for(h.spine_region)


def _language(code: str) -> str:
    name = LANGUAGE_NAMES.get(code)
    return f"{name} ({code})" if name else code


def _red_flag(code: str) -> RedFlagLine:
    flag = triage.BY_CODE.get(code)
    label = choice_label(history.RED_FLAGS, code)
    if flag is None:  # a code no longer known: shown as stored rather than dropped
        return RedFlagLine(label, triage.REVIEW, str(triage.PATHWAY_LABELS[triage.REVIEW]))
    return RedFlagLine(label, flag.pathway, str(triage.PATHWAY_LABELS[flag.pathway]))


def _region(h: MedicalHistory | None) -> str:
    if h is None:
        return ""
    if not h.spine_region:
        return _("Not asked (older request)")
    return choice_label(instruments.REGION_NAMES, h.spine_region)


def _pain(h: MedicalHistory | None) -> list[PainLine]:
    if h is None:
        return []
    lines = [
        PainLine(str(area.name), *pain)
        for area in instruments.PAIN_AREAS
        if (pain := h.pain(area)) is not None
    ]
    if h.pain_now is not None and h.pain_worst is not None:  # one pair, older requests
        lines.append(PainLine(_("Overall pain (older request)"), h.pain_now, h.pain_worst))
    return lines


def _where(h: MedicalHistory | None) -> str:
    if h is None:
        return ""
    where = choice_labels(history.PAIN_LOCATIONS, h.pain_locations)
    if h.pain_side:
        where += f" ({choice_label(history.PAIN_SIDES, h.pain_side)})"
    return where


def _diagnoses(h: MedicalHistory | None) -> str:
    if h is None:
        return ""
    named = choice_labels(history.DIAGNOSES, h.diagnoses)
    if h.diagnosis_other:
        named = f"{named}: {h.diagnosis_other}" if named else h.diagnosis_other
    return named


def _notes(consultation: ConsultationRequest) -> list[NoteLine]:
    notes = []
    for event in consultation.events:  # in time order (the relationship's order)
        if event.kind == EventKind.NOTE and event.body:
            heading = _("Note")
        elif event.kind == EventKind.CALL and (event.body or event.call is not None):
            heading = _("Call-back")
            if event.call is not None:
                heading += f": {event.call.outcome_label}"
        else:
            continue
        author = event.actor.full_name if event.actor is not None else None
        notes.append(NoteLine(event.occurred_at, author, heading, event.body or ""))
    return notes


def summary_filename(consultation: ConsultationRequest, day: date) -> str:
    """The PDF's file name: the reference and the day, never the patient's name (a
    downloads folder or a mail attachment list shows it)."""
    return f"intake-summary-{consultation.reference}-{day.isoformat()}.pdf"
