"""CSV export of the queue's current filtered list."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable

from booking.requests import history
from booking.requests.models import ConsultationRequest
from booking.templating import choice_labels
from booking.timeutil import to_clinic_tz

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

COLUMNS = [
    "reference", "status", "triage", "received", "patient", "date_of_birth", "email", "phone",
    "diagnoses", "odi_percent", "odi_band", "red_flags", "specialist", "appointment", "location",
]  # fmt: skip


def neutralise(value: object) -> str:
    """A cell a spreadsheet will show as text: one starting with = + - @ (or a tab or carriage
    return) could be run as a formula, so it gets a leading apostrophe (OWASP's advice)."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def _row(r: ConsultationRequest) -> list[object]:
    appointment = r.appointment if r.appointment and r.appointment.active else None
    return [
        r.reference,
        r.status.value,
        r.triage_level.value,
        to_clinic_tz(r.created_at).isoformat(timespec="minutes"),
        r.patient.full_name,
        r.patient.date_of_birth.isoformat() if r.patient.date_of_birth else "",
        r.patient.email,
        r.patient.phone,
        # An emergency call-back has no history.
        choice_labels(history.DIAGNOSES, r.history.diagnoses) if r.history else "",
        "" if r.history is None or r.history.odi_percent is None else r.history.odi_percent,
        r.history.odi_band or "" if r.history else "",
        ", ".join(r.red_flags),
        r.assigned_specialist.full_name if r.assigned_specialist else "",
        to_clinic_tz(appointment.starts_at).isoformat(timespec="minutes") if appointment else "",
        appointment.location.name if appointment else "",
    ]


def requests_csv(rows: Iterable[ConsultationRequest]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    for r in rows:
        writer.writerow([neutralise(cell) for cell in _row(r)])
    return out.getvalue()
