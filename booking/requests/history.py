"""The structured medical history: its questions' answers and choices, and red flags (the
outcome instruments, ODI and NDI, and the pain scales are in ``instruments.py``).

Pure functions and constants only, so the clinical rules are easy to read and to test.
``ANSWERS`` declares each history answer once: the submission carries them as one mapping,
``submit_request`` stores it into ``MedicalHistory`` as it is, the form reads each by its
kind, and the demo data and tests start from the examples. A test checks that the model's
columns, the form's fields and this list agree.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from flask_babel import lazy_gettext as _l

from booking.requests import instruments, triage
from booking.templating import choice_labels

PAIN_LOCATIONS = [
    ("lower_back", _l("Lower back")),
    ("neck", _l("Neck")),
    ("mid_back", _l("Mid back")),
    ("leg", _l("Leg")),
    ("arm", _l("Arm")),
]
PAIN_SIDES = [
    ("left", _l("Left")),
    ("right", _l("Right")),
    ("both", _l("Both sides")),
    ("centre", _l("Centre / not one side")),
]
PAIN_DURATIONS = [
    ("lt_6_weeks", _l("Less than 6 weeks")),
    ("6_weeks_3_months", _l("6 weeks to 3 months")),
    ("3_12_months", _l("3 to 12 months")),
    ("gt_1_year", _l("More than a year")),
]
DIAGNOSES = [
    ("herniated_disc", _l("Herniated (slipped) disc")),
    ("spinal_stenosis", _l("Spinal stenosis")),
    ("spondylolisthesis", _l("Spondylolisthesis")),
    ("degenerative_disc_disease", _l("Degenerative disc disease")),
    ("sciatica", _l("Sciatica")),
    ("scoliosis", _l("Scoliosis")),
    ("fracture", _l("Fracture")),
    ("not_sure", _l("Not sure / no diagnosis yet")),
    ("other", _l("Other")),
]
TREATMENTS = [
    ("physiotherapy", _l("Physiotherapy")),
    ("medication", _l("Pain medication")),
    ("injections", _l("Injections")),
    ("chiropractic", _l("Chiropractic")),
    ("spine_surgery", _l("Previous spine surgery")),
]
IMAGING = [
    ("mri", _l("MRI")),
    ("ct", _l("CT")),
    ("xray", _l("X-ray")),
]
SMOKING = [
    ("never", _l("Never smoked")),
    ("former", _l("Former smoker")),
    ("current", _l("Current smoker")),
]
WEEKDAYS = [
    ("0", _l("Monday")),
    ("1", _l("Tuesday")),
    ("2", _l("Wednesday")),
    ("3", _l("Thursday")),
    ("4", _l("Friday")),
    ("5", _l("Saturday")),
    ("6", _l("Sunday")),
]
TIME_OF_DAY = [
    ("any", _l("Any time")),
    ("morning", _l("Morning")),
    ("afternoon", _l("Afternoon")),
]
CONTACT_METHODS = [
    ("email", _l("Email")),
    ("phone", _l("Phone")),
]

# The red-flag questions, their pathways and advice are in ``triage.py``.
RED_FLAGS = [(flag.code, flag.question) for flag in triage.RED_FLAGS]
RED_FLAG_CODES = frozenset(code for code, _label in RED_FLAGS)

# The kinds of answer: several codes, one code, a 0-10 score (or none, when not asked), yes or
# no, free text.
MANY, ONE, SCORE, YES_NO, TEXT = "many", "one", "score", "yes_no", "text"


@dataclass(frozen=True)
class Answer:
    """One history answer as stored: the ``MedicalHistory`` column and the form field share its
    name; ``example`` is a typical answer, for the demo data and the tests."""

    name: str
    kind: str
    example: Any
    choices: list[tuple[str, Any]] | None = None


ANSWERS = (
    Answer("pain_locations", MANY, ["lower_back", "leg"], PAIN_LOCATIONS),
    Answer("pain_side", ONE, "left", PAIN_SIDES),
    Answer("pain_duration", ONE, "3_12_months", PAIN_DURATIONS),
    # Where the main problem is: it decides which pain scores and instruments are asked.
    Answer("spine_region", ONE, "lower_back", instruments.REGIONS),
    # 0-10 pain, right now and at its worst in the last week, per area. Only the areas of the
    # patient's region are asked and stored (``instruments.REGION_PAIN_AREAS``); the examples
    # give all four, so a test or the demo can pick any region.
    Answer("back_pain_now", SCORE, 5),
    Answer("back_pain_worst", SCORE, 8),
    Answer("leg_pain_now", SCORE, 4),
    Answer("leg_pain_worst", SCORE, 7),
    Answer("neck_pain_now", SCORE, 3),
    Answer("neck_pain_worst", SCORE, 6),
    Answer("arm_pain_now", SCORE, 2),
    Answer("arm_pain_worst", SCORE, 5),
    Answer("radiating_pain", YES_NO, True),
    Answer("numbness", YES_NO, True),
    Answer("weakness", YES_NO, False),
    Answer("diagnoses", MANY, ["herniated_disc"], DIAGNOSES),
    Answer("diagnosis_other", TEXT, None),
    Answer("treatments", MANY, ["physiotherapy"], TREATMENTS),
    Answer("surgery_details", TEXT, None),
    Answer("imaging", MANY, ["mri"], IMAGING),
    Answer("imaging_when", TEXT, "March 2026"),
    Answer("medications", TEXT, "Ibuprofen"),
    Answer("allergies", TEXT, None),
    Answer("blood_thinners", YES_NO, False),
    Answer("diabetes", YES_NO, False),
    Answer("smoking", ONE, "never", SMOKING),
    Answer("other_history", TEXT, None),
)
ANSWER_NAMES = frozenset(answer.name for answer in ANSWERS)


def example_answers(**overrides: Any) -> dict[str, Any]:
    """A complete, typical set of answers, with ``overrides`` (for the demo data and tests)."""
    unknown = set(overrides) - ANSWER_NAMES
    if unknown:
        raise TypeError(f"not history answers: {sorted(unknown)}")
    answers = {answer.name: copy.copy(answer.example) for answer in ANSWERS}
    return {**answers, **overrides}


# The Oswestry Disability Index, its scoring and bands live with the Neck Disability Index in
# ``instruments.py``; these names keep the ODI's callers short.
OdiSection = instruments.Section
OdiResult = instruments.Score
InvalidOdiAnswer = instruments.InvalidAnswer
ODI_SECTIONS = instruments.ODI.sections
ODI_SECTION_KEYS = instruments.ODI.section_keys
ODI_MAX_PER_SECTION = instruments.MAX_PER_SECTION
ODI_MAX_UNANSWERED = instruments.ODI.max_unanswered
ODI_BAND_LABELS = instruments.ODI.band_labels


def score_odi(answers: Mapping[str, int | None]) -> instruments.Score:
    """The ODI's score (``instruments.score``): at most two of ten sections unanswered."""
    return instruments.score(instruments.ODI, answers)


def odi_band(percent: float) -> str:
    return instruments.ODI.band(percent)


def triage_level(red_flags: set[str] | frozenset[str], withdrawn: Iterable[str] = ()) -> str:
    """The request's triage level from the pathway of its red flags (``triage.py``): a risk
    factor alone keeps the request routine, shown to staff "to review"; an emergency or
    urgent answer withdrawn before sending makes it urgent."""
    return triage.level(red_flags, withdrawn)


def diagnosis_labels(codes: list[str] | None) -> str:
    """The diagnoses' names, for a page or an export ("\u2013" when there are none)."""
    return choice_labels(DIAGNOSES, codes) or "\u2013"
