"""CSV export of the queue's current filtered list."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable

from booking.requests import history, instruments
from booking.requests.models import ConsultationRequest, MedicalHistory
from booking.templating import choice_labels
from booking.timeutil import to_clinic_tz

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

# Pain: 0-10 now and at worst per area (only the main problem's areas are set), then the one
# overall pair older requests hold. Each instrument: sections answered, and when scored, its
# points (of 5 x sections answered), per cent and band.
PAIN_COLUMNS = [
    name for area in instruments.PAIN_AREAS for name in (area.now_name, area.worst_name)
] + ["overall_pain_now", "overall_pain_worst"]
INSTRUMENT_COLUMNS = [
    f"{instrument.code}_{column}"
    for instrument in instruments.INSTRUMENTS
    for column in ("sections_answered", "points", "percent", "band")
]
COLUMNS = [
    "reference", "status", "triage", "received", "patient", "date_of_birth", "email", "phone",
    "diagnoses", "spine_region", *PAIN_COLUMNS, *INSTRUMENT_COLUMNS,
    "red_flags", "specialist", "appointment", "location",
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
        # An emergency call-back has no history: its cells are empty.
        choice_labels(history.DIAGNOSES, r.history.diagnoses) if r.history else "",
        (r.history.spine_region or "") if r.history else "",
        *_pain(r.history),
        *_instrument_scores(r.history),
        ", ".join(r.red_flags),
        r.assigned_specialist.full_name if r.assigned_specialist else "",
        to_clinic_tz(appointment.starts_at).isoformat(timespec="minutes") if appointment else "",
        appointment.location.name if appointment else "",
    ]


def _pain(h: MedicalHistory | None) -> list[object]:
    if h is None:
        return [""] * (2 * len(instruments.PAIN_AREAS) + 2)
    values = [
        getattr(h, name)
        for area in instruments.PAIN_AREAS
        for name in (area.now_name, area.worst_name)
    ]
    return ["" if value is None else value for value in [*values, h.pain_now, h.pain_worst]]


def _instrument_scores(h: MedicalHistory | None) -> list[object]:
    if h is None:
        return [""] * (4 * len(instruments.INSTRUMENTS))
    cells: list[object] = []
    for instrument in instruments.INSTRUMENTS:
        outcome = h.outcome(instrument)
        if not outcome.scored:
            cells += [outcome.sections_answered, "", "", ""]
        else:
            cells += [outcome.sections_answered, outcome.points, outcome.percent, outcome.band]
    return cells


def requests_csv(rows: Iterable[ConsultationRequest]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    for r in rows:
        writer.writerow([neutralise(cell) for cell in _row(r)])
    return out.getvalue()
