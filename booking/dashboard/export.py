"""CSV export of the queue's current filtered list, for a spreadsheet.

Written as people read it: a UTF-8 byte-order mark first (without it Excel reads the file as
the system's legacy code page and "Lucía" comes out garbled), headings and values in words
("Confirmed", "Lower back", "Severe disability") rather than the database's codes, and times
as the clinic's wall-clock time ("2026-12-03 10:00"), which spreadsheets read as dates, under
headings that name its zone ("Received (Europe/Madrid)").
"""

from __future__ import annotations

import csv
import io
import unicodedata
from collections.abc import Iterable, Iterator
from datetime import datetime

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from booking.requests import history, instruments, triage
from booking.requests.lifecycle import status_label
from booking.requests.models import ConsultationRequest, MedicalHistory
from booking.scheduling.visits import MODE_LABELS, visit_is_remote
from booking.spreadsheet import BOM, csv_pieces, number
from booking.templating import choice_label, choice_labels
from booking.timeutil import clinic_dt, clinic_tz, to_clinic_tz

# A formula's first character (OWASP's CSV injection list); a cell starting with a tab, line
# break or NUL is risky whatever follows.
FORMULA_CHARS = frozenset("=+-@")
RISKY_STARTS = ("\t", "\r", "\n", "\0")
# Rows in each piece of the streamed file.
ROWS_PER_PIECE = 200

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


def _headings() -> dict[str, object]:
    # Times are the clinic's wall-clock time: the headings name its zone, as Insights does.
    zone = clinic_tz().key
    fixed = {
        "reference": _l("Reference"),
        "status": _l("Status"),
        "triage": _l("Triage"),
        "received": _l("Received (%(zone)s)", zone=zone),
        "patient": _l("Patient"),
        "date_of_birth": _l("Date of birth"),
        "email": _l("Email"),
        "phone": _l("Phone"),
        "diagnoses": _l("Diagnoses"),
        "spine_region": _l("Main problem"),
        "overall_pain_now": _l("Overall pain now (0-10, older requests)"),
        "overall_pain_worst": _l("Overall pain at worst (0-10, older requests)"),
        "red_flags": _l("Red flags"),
        "specialist": _l("Specialist"),
        "appointment": _l("Appointment (%(zone)s)", zone=zone),
        "location": _l("Location"),
    }
    for area in instruments.PAIN_AREAS:
        fixed[area.now_name] = _l("%(area)s now (0-10)", area=area.name)
        fixed[area.worst_name] = _l("%(area)s at worst (0-10)", area=area.name)
    for instrument in instruments.INSTRUMENTS:
        code = instrument.code.upper()
        fixed[f"{instrument.code}_sections_answered"] = _l("%(i)s sections answered", i=code)
        fixed[f"{instrument.code}_points"] = _l("%(i)s points", i=code)
        fixed[f"{instrument.code}_percent"] = _l("%(i)s %%", i=code)
        fixed[f"{instrument.code}_band"] = _l("%(i)s band", i=code)
    return fixed


def headings() -> list[str]:
    """The heading row, in ``COLUMNS``' order."""
    names = _headings()
    return [str(names[column]) for column in COLUMNS]


def _local(value: datetime) -> str:
    # The time as the pages show it: in the hour the clocks repeat, with the zone's
    # abbreviation ("02:30 CEST", "02:30 CET"), else two times an hour apart read the same.
    return f"{to_clinic_tz(value):%Y-%m-%d} {clinic_dt(value, 'HH:mm')}"


def neutralise(value: object) -> str:
    """A cell a spreadsheet will show as text: one whose first character that is not a space
    or separator (Unicode Z*) nor a control or format character (Cc, Cf) is = + - @ could be
    run as a formula, since spreadsheets skip such characters (a vertical tab, an ideographic
    space, a left-to-right mark) before looking; so could one starting with a tab, line break
    or NUL. Either gets a leading apostrophe (OWASP's advice)."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(RISKY_STARTS) or _formula_first(text) else text


def _formula_first(text: str) -> bool:
    for char in text:
        category = unicodedata.category(char)
        if category[0] != "Z" and category not in ("Cc", "Cf"):
            return char in FORMULA_CHARS
    return False


def _triage(r: ConsultationRequest) -> str:
    """The level, and when staff raised it (new symptoms): the answers' own level is not
    what the cell shows then."""
    level = str(triage.LEVEL_LABELS[r.triage_level]).capitalize()
    if r.triage_raised_at is None:
        return level
    return _("%(level)s (raised by staff %(when)s)", level=level, when=_local(r.triage_raised_at))


def _row(r: ConsultationRequest) -> list[object]:
    appointment = r.appointment if r.appointment and r.appointment.active else None
    return [
        r.reference,
        status_label(r.status).capitalize(),
        _triage(r),
        _local(r.created_at),
        r.patient.full_name,
        r.patient.date_of_birth.isoformat() if r.patient.date_of_birth else "",
        r.patient.email,
        r.patient.phone,
        # An emergency call-back has no history: its cells are empty.
        choice_labels(history.DIAGNOSES, r.history.diagnoses) if r.history else "",
        choice_label(instruments.REGION_NAMES, r.history.spine_region) if r.history else "",
        *_pain(r.history),
        *_instrument_scores(r.history),
        "; ".join(
            str(triage.BY_CODE[code].question) if code in triage.BY_CODE else code
            for code in sorted(r.red_flags)
        ),
        r.assigned_specialist.full_name if r.assigned_specialist else "",
        _local(appointment.starts_at) if appointment else "",
        # A visit by video or phone: how it takes place, as the record says, not a building.
        ""
        if appointment is None
        else str(MODE_LABELS[appointment.appointment_type.mode])
        if visit_is_remote(appointment)
        else appointment.location.display_name,
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
            band = instrument.band_labels.get(outcome.band, outcome.band)
            cells += [outcome.sections_answered, outcome.points, outcome.percent, str(band)]
    return cells


def csv_head(separator: str = ",") -> str:
    """The file's first piece: the byte-order mark and the heading row."""
    out = io.StringIO()
    out.write(BOM)
    csv.writer(out, delimiter=separator).writerow(headings())
    return out.getvalue()


def csv_rows(
    rows: Iterable[ConsultationRequest],
    separator: str = ",",
    rows_per_piece: int | None = None,
    sent: list[str] | None = None,
) -> Iterator[str]:
    """The rows' lines in pieces of ``rows_per_piece`` (``ROWS_PER_PIECE``), each sent as
    soon as its rows are read, so a long list is never held whole (encode each as UTF-8).

    ``sent``, when given, gets the references of a piece's rows as the piece is handed on:
    what was generated, for the audit, even when the download stops at that piece."""
    return csv_pieces(
        rows,
        lambda r: [
            neutralise(number(cell, separator) if isinstance(cell, float) else cell)
            for cell in _row(r)
        ],
        separator=separator,
        rows_per_piece=rows_per_piece or ROWS_PER_PIECE,
        handed_on=None if sent is None else lambda piece: sent.extend(r.reference for r in piece),
    )
