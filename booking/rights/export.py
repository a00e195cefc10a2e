"""The archive of everything held about one patient: a JSON file, a readable summary and every
document, streamed as a ZIP while it is written.

Nothing is written to disk: ``zipfile`` writes into a pipe that the response drains after each
chunk (an unseekable output makes ``zipfile`` use data descriptors), so memory stays at about
one chunk whatever the documents weigh. Document bytes are read only through the storage
interface (which may decrypt them).
"""

from __future__ import annotations

import enum
import hashlib
import json
import logging
import re
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any, BinaryIO
from urllib.parse import urlsplit

from flask import Flask, current_app, render_template
from flask_babel import force_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import inspect

from booking.accesslog import redact_other_sites, redact_text
from booking.crypto import KeyMissingError
from booking.documents.storage import ALLOWED_TYPES, CHUNK_SIZE, DocumentUnreadable, get_storage
from booking.notifications.models import OutboxStatus
from booking.outcomes.labels import GPE_CHOICES, PLAN_LABELS, SATISFACTION_CHOICES, point_label
from booking.requests import history, instruments
from booking.requests.calls import OUTCOME_LABELS, CallOutcome
from booking.requests.events import EventKind
from booking.requests.lifecycle import patient_status_label
from booking.requests.triage import LEVEL_LABELS
from booking.templating import choice_label, choice_labels, language_name
from booking.timeutil import clinic_date, clinic_dt, clinic_zone_name, now_utc

log = logging.getLogger(__name__)

FORMAT = "spineconsult-patient-export/1"
SAFE_NAME_RE = re.compile(r"[^A-Za-z0-9._-]+")

# Columns that are our plumbing, not what we hold about the person.
SKIP_REQUEST = {
    "id",
    "patient_id",
    "submission_token",
    "assigned_specialist_id",
    "acknowledged_by_id",
}
SKIP_APPOINTMENT = {
    "id",
    "request_id",
    "specialist_id",
    "location_id",
    "appointment_type_id",
    "blocked_until",
    "uid",
    "sequence",
    "join_link",  # a way into the video visit, not data about the patient (as links below)
}
SKIP_EMAIL = {
    "id",
    "request_id",
    "claimed_at",
    "next_attempt_at",
    "attempts",
    "unfinished_claims",
    "last_error",
    "withdrawn_at",
}
SKIP_EMAIL_CHANGE = {"id", "request_id", "token_hash"}
# In patient.json (all of the data), not in the summary people read: the names as staff search
# them (without accents or case), copies of the names it shows already; a call's link to its
# timeline entry (an internal number).
SUMMARY_SKIP = {"search_name", "search_guardian", "event_id"}

# Codes in the data and the lists that name them, for the readable summary.
LABELS: dict[str, list[tuple[str, Any]]] = {
    "pain_locations": history.PAIN_LOCATIONS,
    "pain_side": history.PAIN_SIDES,
    "pain_duration": history.PAIN_DURATIONS,
    "diagnoses": history.DIAGNOSES,
    "treatments": history.TREATMENTS,
    "imaging": history.IMAGING,
    "smoking": history.SMOKING,
    "red_flags": history.RED_FLAGS,
    "withdrawn_red_flags": history.RED_FLAGS,
    "preferred_days": history.WEEKDAYS,
    "preferred_time_of_day": history.TIME_OF_DAY,
    "preferred_contact": history.CONTACT_METHODS,
    "spine_region": instruments.REGION_NAMES,
    **{
        f"{instrument.code}_band": list(instrument.band_labels.items())
        for instrument in instruments.INSTRUMENTS
    },
    # The treatment plan and the follow-ups' answers (1-7 and 5-1 mean nothing alone).
    "plan": PLAN_LABELS,
    "gpe": GPE_CHOICES,
    "satisfaction": SATISFACTION_CHOICES,
}
# Each instrument's answers, shown as the statements the patient chose.
INSTRUMENT_ANSWERS = {f"{i.code}_answers": i for i in instruments.INSTRUMENTS}

# Each field's name in the summary, in the patient's language (patient.json keeps the keys).
# A column added later without a label here reads as its key ("new_column" -> "New column").
FIELD_LABELS = {
    # The request
    "reference": _l("Reference"),
    "status": _l("Status"),
    "triage_level": _l("Urgency"),
    "triage_raised_at": _l("Urgency raised by the clinic"),
    "priority": _l("Priority"),
    "red_flags": _l("Warning signs reported"),
    "withdrawn_red_flags": _l("Warning signs first reported, then changed to no"),
    "locale": _l("Language"),
    "preferred_days": _l("Preferred days"),
    "preferred_time_of_day": _l("Preferred time of day"),
    "earliest_date": _l("Earliest date"),
    "privacy_notice_version": _l("Privacy notice version"),
    "privacy_notice_language": _l("Privacy notice language"),
    "privacy_notice_sha256": _l("Privacy notice fingerprint (SHA-256)"),
    "consented_at": _l("Consent given"),
    "contact_consent": _l("Consent to be contacted"),
    "followup_consent": _l("Consent to follow-up questionnaires"),
    "followup_consent_version": _l("Follow-up consent version"),
    "contact_consent_withdrawn_at": _l("Consent to be contacted withdrawn"),
    "confirmed_at": _l("Confirmed"),
    "closed_at": _l("Closed"),
    "manage_links_reset_at": _l("Private links renewed"),
    "acknowledged_at": _l("First reached by the clinic"),
    "acknowledged_how": _l("How the clinic first reached you"),
    "acknowledged_by": _l("Reached by"),
    "escalated_at": _l("Escalated"),
    "information_received_at": _l("Information received"),
    "assigned_specialist": _l("Specialist"),
    "calls": _l("Calls from the clinic"),
    "called_at": _l("Called"),
    "outcome": _l("Outcome"),
    "logged_at": _l("Noted"),
    "by": _l("By"),
    "created_at": _l("Created"),
    "updated_at": _l("Last changed"),
    # The patient
    "full_name": _l("Full name"),
    "date_of_birth": _l("Date of birth"),
    "guardian_name": _l("Parent or guardian"),
    "email": _l("Email"),
    # A new address asked for on the private page (confirmed: its link was used)
    "new_email": _l("New email address"),
    "used_at": _l("Confirmed"),
    "phone": _l("Phone"),
    "preferred_contact": _l("Preferred contact"),
    "deceased_at": _l("Recorded as deceased"),
    # The history
    "pain_locations": _l("Where the pain is"),
    "pain_side": _l("Side"),
    "pain_duration": _l("How long"),
    "spine_region": _l("Main problem"),
    "back_pain_now": _l("Back pain now (0-10)"),
    "back_pain_worst": _l("Back pain at its worst (0-10)"),
    "leg_pain_now": _l("Leg pain now (0-10)"),
    "leg_pain_worst": _l("Leg pain at its worst (0-10)"),
    "neck_pain_now": _l("Neck pain now (0-10)"),
    "neck_pain_worst": _l("Neck pain at its worst (0-10)"),
    "arm_pain_now": _l("Arm pain now (0-10)"),
    "arm_pain_worst": _l("Arm pain at its worst (0-10)"),
    "pain_now": _l("Pain now (0-10)"),
    "pain_worst": _l("Pain at its worst (0-10)"),
    "radiating_pain": _l("Pain spreading into the leg or arm"),
    "numbness": _l("Numbness or tingling"),
    "weakness": _l("Weakness"),
    "diagnoses": _l("Diagnoses"),
    "diagnosis_other": _l("Other diagnosis"),
    "treatments": _l("Treatment so far"),
    "surgery_details": _l("Previous operations"),
    "imaging": _l("Scans"),
    "imaging_when": _l("When the scans were done"),
    "medications": _l("Medicines"),
    "allergies": _l("Allergies"),
    "blood_thinners": _l("Blood thinners"),
    "diabetes": _l("Diabetes"),
    "smoking": _l("Smoking"),
    "other_history": _l("Other health information"),
    "odi_answers": _l("Oswestry Disability Index, answers"),
    "odi_sections_answered": _l("Oswestry Disability Index, sections answered"),
    "odi_percent": _l("Oswestry Disability Index, score (%)"),
    "odi_band": _l("Oswestry Disability Index, level"),
    "ndi_answers": _l("Neck Disability Index, answers"),
    "ndi_sections_answered": _l("Neck Disability Index, sections answered"),
    "ndi_percent": _l("Neck Disability Index, score (%)"),
    "ndi_band": _l("Neck Disability Index, level"),
    # The appointment and the waiting list
    "starts_at": _l("Starts"),
    "ends_at": _l("Ends"),
    "active": _l("Current"),
    "placed_at": _l("Time set"),
    "specialist": _l("Specialist"),
    "location": _l("Location"),
    "location_address": _l("Address"),
    "appointment_type": _l("Appointment type"),
    # The treatment plan and the follow-ups
    "plan": _l("Plan"),
    "registry_code": _l("Your code in the clinic's registry exports"),
    "procedure_date": _l("Procedure date"),
    "consulted_on": _l("Consultation date"),
    "decided_at": _l("Decided"),
    "decided_by": _l("Decided by"),
    "followups_stopped_at": _l("Follow-up questionnaires stopped"),
    "point": _l("Time point"),
    "due_at": _l("Due"),
    "sent_at": _l("Sent"),
    "expires_at": _l("Link open until"),
    "reminded_at": _l("Reminder sent"),
    "answered_at": _l("Answered"),
    # A questionnaire sent too early for a corrected treatment date: sent again later.
    "superseded_at": _l("Replaced (the treatment date changed)"),
    "gpe": _l("Change since the treatment"),
    "satisfaction": _l("Satisfaction with the treatment"),
}
# Codes shown as the patient reads them elsewhere.
VALUE_LABELS: dict[str, Callable[[str], str]] = {
    "status": patient_status_label,
    "triage_level": lambda code: str(LEVEL_LABELS.get(code, code)),
    "locale": language_name,
    "privacy_notice_language": language_name,
    "point": point_label,
    "outcome": lambda code: str(OUTCOME_LABELS[CallOutcome(code)]),
    "acknowledged_how": lambda code: str(REACHED_HOW_LABELS[code]),
}
# How the clinic first reached the patient (``acknowledged_how``): by a call that reached
# them, or at the visit (completing the visit of a patient nobody had reached by phone
# counts as reaching them, by the specialist who saw them).
REACHED_HOW_LABELS = {
    "phone": _l("By phone"),
    "visit": _l("At the visit"),
}
# The columns that hold a day, not a moment (every stored moment is a UTC column whose name
# ends in "_at"): the summary shows both as the pages do, not as the JSON's ISO 8601.
DATE_FIELDS = {"date_of_birth", "earliest_date", "procedure_date", "consulted_on"}
# A timeline entry's kind, named as the clinic's record of the request names it (a status
# change is shown as the change itself).
EVENT_LABELS = {
    EventKind.NOTE: _l("Note"),
    EventKind.CALL: _l("Call-back"),
    EventKind.ESCALATION: _l("Escalated"),
}
# An email's delivery as the patient needs to know it: sent, not yet, or never. A worker's
# claim ("sending") is a moment of the same wait as "pending".
EMAIL_STATUS_LABELS = {
    OutboxStatus.PENDING: _l("Waiting to be sent"),
    OutboxStatus.SENDING: _l("Waiting to be sent"),
    OutboxStatus.SENT: _l("Sent"),
    OutboxStatus.FAILED: _l("Could not be sent"),
}


def plain(value: Any) -> Any:
    """A column's value as JSON: enums by value, times in ISO 8601 (UTC for stored times)."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    return value


def columns(row: object | None, skip: Iterable[str] = ("id",)) -> dict[str, Any] | None:
    """Every column of a row (so a column added later is exported too), minus ``skip``."""
    if row is None:
        return None
    skipped = set(skip)
    return {
        attr.key: plain(getattr(row, attr.key))
        for attr in inspect(row).mapper.column_attrs
        if attr.key not in skipped
    }


def email_entry(email: Any) -> dict[str, Any] | None:
    """An email as the archive keeps it: every column, its links' secret parts redacted (an
    archive is a file that travels: a private, resume or follow-up link in it must open
    nothing). Links to other sites are redacted whole: the only ones emails carry are video
    visits' links to join, and an old one (replaced, or of a visit since moved) may still
    open a specialist's room."""
    entry = columns(email, skip=SKIP_EMAIL)
    if entry is not None:
        own = urlsplit(current_app.config["PUBLIC_BASE_URL"]).netloc
        for key in ("body_text", "body_html", "attachment_body"):
            if entry.get(key):
                text = entry[key]
                if key == "attachment_body":  # a calendar file folds long lines
                    text = text.replace("\r\n ", "")
                entry[key] = redact_other_sites(redact_text(text), own)
    return entry


def archive_name(reference: str, number: int, doc: Any) -> str:
    """``documents/SC-XXXX-XXXX/01-mri-report.pdf``: never a path from the patient's name."""
    stem = doc.original_name.rsplit(".", 1)[0]
    stem = SAFE_NAME_RE.sub("-", stem).strip("-.")[:60] or "document"
    extension = ALLOWED_TYPES.get(doc.content_type, "bin")
    return f"documents/{reference}/{number:02d}-{stem}.{extension}"


@dataclass
class ArchiveDocument:
    path: str  # inside the archive
    stored_name: str
    sha256: str
    entry: dict[str, Any]  # this document's entry in the JSON, completed while streaming


@dataclass
class PatientArchive:
    """What the archive holds, gathered from the database before the first byte is sent."""

    reference: str
    data: dict[str, Any]
    documents: list[ArchiveDocument] = field(default_factory=list)
    # summary.txt's language: the patient's (their latest request's), whoever downloads it.
    locale: str = "en"

    @property
    def filename(self) -> str:
        return f"patient-{self.reference}.zip"


def build_archive(
    reference: str,
    email: str | None,
    requests: list[Any],
    other_emails: list[Any],
    waitlist: dict,
    asked: dict[int, list[Any]] | None = None,
    threads: dict[int, list[Any]] | None = None,
    plans: dict[int, Any] | None = None,
    registry_codes: dict[int, str] | None = None,
    email_changes: dict[int, list[Any]] | None = None,
) -> PatientArchive:
    """The archive's data for a patient's requests (loaded with everything they show), with
    each request's requests for information (``asked``), messages (``threads``) and
    treatment plan with its follow-up questionnaires (``plans``) by id, and the code each
    patient record carries in registry exports (``registry_codes``, by patient id), and the
    new email addresses asked for on the private page (``email_changes``: the one waiting
    for its confirmation link, and one confirmed whose row is not purged yet)."""
    asked, threads, plans = asked or {}, threads or {}, plans or {}
    email_changes = email_changes or {}
    registry_codes = registry_codes or {}
    documents: list[ArchiveDocument] = []
    exported = []
    for consultation in requests:
        doc_entries = []
        for number, doc in enumerate(consultation.documents, start=1):
            entry = {
                "file": archive_name(consultation.reference, number, doc),
                **columns(doc, skip={"id", "request_id", "stored_name"}),
            }
            doc_entries.append(entry)
            if not doc.servable:
                # Held until the virus scan can run (or removed as infected): its bytes go to
                # nobody, in an archive as on the staff's pages; the entry says why.
                entry["file"] = None
                entry["file_withheld"] = doc.scan_status.value
                continue
            documents.append(ArchiveDocument(entry["file"], doc.stored_name, doc.sha256, entry))
        appointment = consultation.appointment
        entry_waitlist = waitlist.get(consultation.id)
        exported.append(
            {
                **columns(consultation, skip=SKIP_REQUEST),
                "assigned_specialist": (
                    consultation.assigned_specialist.full_name
                    if consultation.assigned_specialist
                    else None
                ),
                "patient": columns(consultation.patient),
                "medical_history": columns(consultation.history, skip={"request_id"}),
                "appointment": None
                if appointment is None
                else {
                    **columns(appointment, skip=SKIP_APPOINTMENT),
                    "specialist": appointment.specialist.full_name,
                    # Names as the patient read them (like the asked items below).
                    "location": appointment.location.name_in(consultation.locale),
                    "location_address": appointment.location.address,
                    "appointment_type": (
                        appointment.appointment_type.name_in(consultation.locale)
                        if appointment.appointment_type
                        else None
                    ),
                },
                "waitlist": None
                if entry_waitlist is None
                else {
                    "appointment_type": entry_waitlist[1].name_in(consultation.locale),
                    **columns(entry_waitlist[0], skip={"id", "request_id", "appointment_type_id"}),
                },
                "timeline": [
                    {
                        **columns(event, skip={"id", "request_id", "actor_id"}),
                        "by": event.actor.full_name if event.actor else None,
                    }
                    for event in consultation.events
                ],
                # The first reach, which a raise of the triage level since does not undo.
                **_first_reach_fields(consultation),
                "acknowledged_by": (
                    consultation.acknowledged_by.full_name if consultation.acknowledged_by else None
                ),
                "calls": [
                    {
                        **columns(call, skip={"id", "request_id", "caller_id"}),
                        "by": call.caller.full_name,
                    }
                    for call in consultation.calls
                ],
                "documents": doc_entries,
                "emails": [email_entry(e) for e in consultation.emails],
                "information_requests": [
                    {
                        # Its form's one-time key: plumbing, as the request's submission_token.
                        **columns(
                            ask, skip={"id", "request_id", "asked_by_id", "items", "answer_key"}
                        ),
                        "items": ask.item_labels(consultation.locale),
                    }
                    for ask in asked.get(consultation.id, [])
                ],
                "messages": [
                    {
                        # Its form's one-time key: plumbing, as the request's submission_token.
                        **columns(
                            m,
                            skip={"id", "request_id", "author_id", "read_by_id", "submission_key"},
                        ),
                        "by": "patient" if m.from_patient else "clinic",
                    }
                    for m in threads.get(consultation.id, [])
                ],
                "treatment_plan": _plan_entry(
                    plans.get(consultation.id), registry_codes.get(consultation.patient_id)
                ),
                # The address, when it was asked for and until when its link works; never
                # the link's token (kept only as a hash, which would open nothing, but is
                # plumbing, not the patient's data).
                "email_changes": [
                    columns(change, skip=SKIP_EMAIL_CHANGE)
                    for change in email_changes.get(consultation.id, [])
                ],
            }
        )
    data = {
        "format": FORMAT,
        "exported_at": now_utc().isoformat(),
        "email": email,
        "requests": exported,
        "other_emails": [email_entry(e) for e in other_emails],
    }
    locale = requests[-1].locale if requests else "en"
    return PatientArchive(reference, data, documents, locale or "en")


def _first_reach_fields(consultation: Any) -> dict[str, Any]:
    at, how = _first_reached(consultation)
    return {"acknowledged_at": plain(at), "acknowledged_how": how}


def _first_reached(consultation: Any) -> tuple[datetime | None, str | None]:
    """When and how the patient was first reached: by the earliest call that reached them
    (``"phone"``), else by completing the visit (``"visit"``: ``acknowledged_at`` with no
    call before it), else not yet (None, None). Staff raising the triage level clears
    ``acknowledged_at`` (the patient is to be reached again about new symptoms): the first
    reach stays what it was."""
    calls = sorted(c.called_at for c in consultation.calls if c.outcome == CallOutcome.REACHED)
    acknowledged = consultation.acknowledged_at
    if calls and (acknowledged is None or calls[0] <= acknowledged):
        return calls[0], "phone"
    return (acknowledged, "visit") if acknowledged is not None else (None, None)


def _plan_entry(plan: Any, registry_code: str | None) -> dict[str, Any] | None:
    """The plan decided at the visit, and each follow-up time point: when it was sent and
    answered, and the answers; the record's code in registry exports, if it has one."""
    if plan is None:
        return None
    return {
        **columns(plan, skip={"request_id", "decided_by_id"}),
        "decided_by": plan.decided_by.full_name if plan.decided_by else None,
        "registry_code": registry_code,
        "follow_ups": [
            columns(follow_up, skip={"id", "request_id"}) for follow_up in plan.follow_ups
        ],
    }


def readable_time(value: str | None) -> str:
    """A moment as patient.json holds it (ISO 8601, UTC) as the pages show it: the clinic's
    time in the reader's language ("Mon 7 Dec 2026, 09:00"; the summary names the zone once,
    at its top). A value that is not such a moment is shown as it is."""
    if not value:
        return "\u2013"
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    return clinic_dt(moment, "when") if moment.tzinfo is not None else value


def readable_date(value: str) -> str:
    """A day as patient.json holds it ("1970-05-17") as the pages show it ("17 May 1970")."""
    try:
        return clinic_date(date.fromisoformat(value))
    except ValueError:
        return value


def _code_label(labels: dict[Any, Any], code: str | None) -> str:
    """A stored code by its label; a code from before a change of the list as it is."""
    label = labels.get(code)
    return str(label) if label is not None else code or ""


def _status(code: str | None) -> str:
    try:
        return patient_status_label(code) if code else ""
    except ValueError:  # a status from before a change of the list
        return code or ""


def _label(key: str, value: Any) -> str:
    if value is None or value == "" or value == []:
        return "\u2013"
    if isinstance(value, bool):
        return _("yes") if value else _("no")
    if isinstance(value, str) and key.endswith("_at"):
        return readable_time(value)
    if isinstance(value, str) and key in DATE_FIELDS:
        return readable_date(value)
    if key in VALUE_LABELS and isinstance(value, str):
        try:
            return VALUE_LABELS[key](value)
        except (KeyError, ValueError):  # a code from before a change of the list
            return value
    if key in LABELS:
        pairs = LABELS[key]
        if isinstance(value, list):
            return choice_labels(pairs, [str(v) for v in value])
        return choice_label(pairs, str(value))
    if key in INSTRUMENT_ANSWERS and isinstance(value, dict):
        lines = []
        for section in INSTRUMENT_ANSWERS[key].sections:
            answer = value.get(section.key)
            if isinstance(answer, int) and 0 <= answer < len(section.statements):
                lines.append(f"{section.title}: {section.statements[answer]} ({answer})")
        return "; ".join(lines) or "\u2013"
    if isinstance(value, list):
        # A list of records (the calls): one per line-part, each "field: value", not a
        # Python dict printed as it is.
        return "; ".join(_label(key, v) if isinstance(v, dict) else str(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(
            f"{field_label(k)}: {_label(k, v)}" for k, v in value.items() if k not in SUMMARY_SKIP
        )
    return str(value)


def field_label(key: str) -> str:
    """A field's name in the reader's language (``FIELD_LABELS``), or its key made readable."""
    label = FIELD_LABELS.get(key)
    return str(label) if label is not None else key.replace("_", " ").capitalize()


def _fields(values: dict[str, Any] | None) -> list[tuple[str, str]]:
    if not values:
        return []
    return [
        (field_label(key), _label(key, value))
        for key, value in values.items()
        if key not in SUMMARY_SKIP
    ]


def _timeline_entry(event: dict[str, Any]) -> dict[str, Any]:
    if event["kind"] == EventKind.STATUS:
        before, after = event.get("from_status"), event.get("to_status")
        if before and before == after:
            what = _("Rescheduled")
        else:
            what = f"{_status(before)} -> {_status(after)}".strip()
    else:
        what = _code_label(EVENT_LABELS, event["kind"])
    return {
        "at": readable_time(event.get("occurred_at")),
        "what": what,
        "by": event.get("by"),
        "body": event.get("body"),
    }


def _ask_entry(ask: dict[str, Any]) -> dict[str, Any]:
    """A request for information with its times as people read them (an unanswered one
    keeps no answer time)."""
    answered = ask.get("answered_at")
    return {
        **ask,
        "asked_at": readable_time(ask.get("asked_at")),
        "answered_at": readable_time(answered) if answered else None,
    }


def summary_emails(emails: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Emails as the summary lists them: when, to whom, the subject and whether it went."""
    return [
        {
            "at": readable_time(email.get("created_at")),
            "recipient": email.get("recipient"),
            "subject": email.get("subject"),
            "status": _code_label(EMAIL_STATUS_LABELS, email.get("status")),
        }
        for email in emails
    ]


def summary_sections(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The JSON's content as headed lists of (label, text), for the readable summary: times
    in the clinic's zone and codes by their labels, in the reader's language (the JSON keeps
    ISO 8601 in UTC and the codes, for programs)."""
    nested = {
        "patient",
        "medical_history",
        "appointment",
        "waitlist",
        "timeline",
        "documents",
        "emails",
        "information_requests",
        "messages",
        "treatment_plan",
        "email_changes",
    }
    sections = []
    for request in data["requests"]:
        sections.append(
            {
                "reference": request["reference"],
                "request": _fields({k: v for k, v in request.items() if k not in nested}),
                "patient": _fields(request["patient"]),
                "history": _fields(request["medical_history"]),
                "appointment": _fields(request["appointment"]),
                "waitlist": _fields(request["waitlist"]),
                "timeline": [_timeline_entry(event) for event in request["timeline"]],
                "documents": request["documents"],
                "emails": summary_emails(request["emails"]),
                "information_requests": [
                    _ask_entry(ask) for ask in request.get("information_requests", [])
                ],
                "messages": [
                    {
                        "at": readable_time(message.get("created_at")),
                        "by": _("You") if message["by"] == "patient" else _("The clinic"),
                        "body": message.get("body"),
                    }
                    for message in request.get("messages", [])
                ],
                "treatment_plan": _fields(
                    {
                        k: v
                        for k, v in (request.get("treatment_plan") or {}).items()
                        if k != "follow_ups"
                    }
                ),
                "follow_ups": [
                    _fields(follow_up)
                    for follow_up in (request.get("treatment_plan") or {}).get("follow_ups", [])
                ],
                "email_changes": [_fields(change) for change in request.get("email_changes", [])],
            }
        )
    return sections


class _Pipe:
    """A write-only file for ``zipfile``: holds what was written until the response takes it."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        out = b"".join(self._parts)
        self._parts.clear()
        return out


def _chunks(app: Flask, source: BinaryIO) -> Iterator[bytes]:
    """A stored file's plaintext in chunks. The response is sent after the request's context
    is gone, so each storage call gets an app context of its own (never held across a yield)."""
    while True:
        with app.app_context():
            chunk = source.read(CHUNK_SIZE)
        if not chunk:
            return
        yield chunk


def stream_zip(app: Flask, archive: PatientArchive) -> Iterator[bytes]:
    """The ZIP, chunk by chunk: documents first, so the JSON written last can say which files
    were missing, could not be read or did not match their recorded SHA-256. Each file is
    checked whole before it goes in: one found damaged (or sealed with a key no longer
    configured) half-way would end the download with a broken archive."""
    pipe = _Pipe()
    with zipfile.ZipFile(pipe, mode="w", compression=zipfile.ZIP_DEFLATED) as zf:
        for doc in archive.documents:
            try:
                with app.app_context():
                    get_storage().verify(doc.stored_name, doc.sha256)
                    source = get_storage().open(doc.stored_name)
            except (OSError, DocumentUnreadable, KeyMissingError) as exc:
                # Ids only in the log; the JSON says the file was missing or unreadable.
                log.warning(
                    "export: stored file %s could not be read: %s",
                    doc.stored_name,
                    type(exc).__name__,
                )
                doc.entry["file"] = None
                if isinstance(exc, FileNotFoundError):
                    doc.entry["file_missing"] = True
                else:
                    doc.entry["file_unreadable"] = True
                continue
            digest = hashlib.sha256()
            with source, zf.open(doc.path, mode="w") as target:
                for chunk in _chunks(app, source):
                    digest.update(chunk)
                    target.write(chunk)
                    yield pipe.take()
            doc.entry["sha256_matches"] = digest.hexdigest() == doc.sha256
            yield pipe.take()
        zf.writestr("patient.json", json.dumps(archive.data, ensure_ascii=False, indent=2))
        with app.app_context(), force_locale(archive.locale):
            summary = render_template(
                "privacy/export_summary.txt",
                data=archive.data,
                exported_at=readable_time(archive.data["exported_at"]),
                zone=clinic_zone_name(),
                sections=summary_sections(archive.data),
                other_emails=summary_emails(archive.data["other_emails"]),
                # The folder exists only when a file went in (a missing one is named in the JSON).
                with_documents=any(doc.entry["file"] for doc in archive.documents),
            )
        zf.writestr("summary.txt", summary)
    yield pipe.take()
