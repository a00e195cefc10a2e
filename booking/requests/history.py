"""The structured medical history: its questions' answers and choices, the Oswestry Disability
Index and red flags.

Pure functions and constants only, so the clinical rules are easy to read and to test.
``ANSWERS`` declares each history answer once: the submission carries them as one mapping,
``submit_request`` stores it into ``MedicalHistory`` as it is, the form reads each by its
kind, and the demo data and tests start from the examples. A test checks that the model's
columns, the form's fields and this list agree.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flask_babel import lazy_gettext as _l

from booking.requests import triage
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

# The kinds of answer: several codes, one code, a 0-10 score, yes or no, free text.
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
    Answer("pain_now", SCORE, 5),
    Answer("pain_worst", SCORE, 8),
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


@dataclass(frozen=True)
class OdiSection:
    key: str
    title: str
    statements: tuple[str, ...]  # index = score, 0 to 5


# The Oswestry Disability Index, version 2.1a: ten sections, six statements each scored 0-5.
ODI_SECTIONS: tuple[OdiSection, ...] = (
    OdiSection(
        "pain_intensity",
        _l("Pain intensity"),
        (
            _l("I have no pain at the moment"),
            _l("The pain is very mild at the moment"),
            _l("The pain is moderate at the moment"),
            _l("The pain is fairly severe at the moment"),
            _l("The pain is very severe at the moment"),
            _l("The pain is the worst imaginable at the moment"),
        ),
    ),
    OdiSection(
        "personal_care",
        _l("Personal care (washing, dressing, etc.)"),
        (
            _l("I can look after myself normally without causing extra pain"),
            _l("I can look after myself normally but it causes extra pain"),
            _l("It is painful to look after myself and I am slow and careful"),
            _l("I need some help but manage most of my personal care"),
            _l("I need help every day in most aspects of self-care"),
            _l("I do not get dressed, I wash with difficulty and stay in bed"),
        ),
    ),
    OdiSection(
        "lifting",
        _l("Lifting"),
        (
            _l("I can lift heavy weights without extra pain"),
            _l("I can lift heavy weights but it gives extra pain"),
            _l(
                "Pain prevents me from lifting heavy weights off the floor, but I can manage "
                "if they are conveniently placed, for example on a table"
            ),
            _l(
                "Pain prevents me from lifting heavy weights, but I can manage light to medium "
                "weights if they are conveniently positioned"
            ),
            _l("I can lift very light weights"),
            _l("I cannot lift or carry anything at all"),
        ),
    ),
    OdiSection(
        "walking",
        _l("Walking"),
        (
            _l("Pain does not prevent me walking any distance"),
            _l("Pain prevents me from walking more than 1 mile (1.6 km)"),
            _l("Pain prevents me from walking more than half a mile (800 m)"),
            _l("Pain prevents me from walking more than 100 yards (100 m)"),
            _l("I can only walk using a stick or crutches"),
            _l("I am in bed most of the time"),
        ),
    ),
    OdiSection(
        "sitting",
        _l("Sitting"),
        (
            _l("I can sit in any chair as long as I like"),
            _l("I can only sit in my favourite chair as long as I like"),
            _l("Pain prevents me sitting more than one hour"),
            _l("Pain prevents me from sitting more than 30 minutes"),
            _l("Pain prevents me from sitting more than 10 minutes"),
            _l("Pain prevents me from sitting at all"),
        ),
    ),
    OdiSection(
        "standing",
        _l("Standing"),
        (
            _l("I can stand as long as I want without extra pain"),
            _l("I can stand as long as I want but it gives me extra pain"),
            _l("Pain prevents me from standing for more than 1 hour"),
            _l("Pain prevents me from standing for more than 30 minutes"),
            _l("Pain prevents me from standing for more than 10 minutes"),
            _l("Pain prevents me from standing at all"),
        ),
    ),
    OdiSection(
        "sleeping",
        _l("Sleeping"),
        (
            _l("My sleep is never disturbed by pain"),
            _l("My sleep is occasionally disturbed by pain"),
            _l("Because of pain I have less than 6 hours sleep"),
            _l("Because of pain I have less than 4 hours sleep"),
            _l("Because of pain I have less than 2 hours sleep"),
            _l("Pain prevents me from sleeping at all"),
        ),
    ),
    OdiSection(
        "sex_life",
        _l("Sex life (if applicable)"),
        (
            _l("My sex life is normal and causes no extra pain"),
            _l("My sex life is normal but causes some extra pain"),
            _l("My sex life is nearly normal but is very painful"),
            _l("My sex life is severely restricted by pain"),
            _l("My sex life is nearly absent because of pain"),
            _l("Pain prevents any sex life at all"),
        ),
    ),
    OdiSection(
        "social_life",
        _l("Social life"),
        (
            _l("My social life is normal and gives me no extra pain"),
            _l("My social life is normal but increases the degree of pain"),
            _l(
                "Pain has no significant effect on my social life apart from limiting my more "
                "energetic interests, such as sport"
            ),
            _l("Pain has restricted my social life and I do not go out as often"),
            _l("Pain has restricted my social life to my home"),
            _l("I have no social life because of pain"),
        ),
    ),
    OdiSection(
        "travelling",
        _l("Travelling"),
        (
            _l("I can travel anywhere without pain"),
            _l("I can travel anywhere but it gives me extra pain"),
            _l("Pain is bad but I manage journeys over two hours"),
            _l("Pain restricts me to journeys of less than one hour"),
            _l("Pain restricts me to short necessary journeys under 30 minutes"),
            _l("Pain prevents me from travelling except to receive treatment"),
        ),
    ),
)
ODI_SECTION_KEYS = tuple(section.key for section in ODI_SECTIONS)
ODI_MAX_PER_SECTION = 5
# A score needs at least 8 of the 10 sections answered.
ODI_MAX_UNANSWERED = 2

# Upper bound of each band, inclusive, on the 0-100 percentage.
ODI_BANDS = (
    (20, "minimal", _l("Minimal disability")),
    (40, "moderate", _l("Moderate disability")),
    (60, "severe", _l("Severe disability")),
    (80, "crippling", _l("Crippling back pain")),
    (100, "bed_bound", _l("Bed-bound or exaggerating symptoms")),
)
ODI_BAND_LABELS = {code: label for _limit, code, label in ODI_BANDS}


@dataclass(frozen=True)
class OdiResult:
    answers: dict[str, int]
    sections_answered: int
    percent: float | None
    band: str | None


class InvalidOdiAnswer(ValueError):  # noqa: N818 - reads better at the call sites
    pass


def score_odi(answers: Mapping[str, int | None]) -> OdiResult:
    """Score the ODI (version 2.1a; Fairbank and Pynsent, Spine 2000;25:2940-52): total /
    (5 x sections answered) x 100, skipped sections left out, as the instrument's manual says,
    but only when at most ``ODI_MAX_UNANSWERED`` of the 10 sections are unanswered. With more
    missing the percentage says too little (one answered section would read "100%,
    bed-bound"), so there is no score: the answers are kept and staff see "not scored".

    Unknown sections or scores outside 0-5 raise ``InvalidOdiAnswer``. The percentage is
    rounded to one decimal before it is banded, with each band's upper bound inclusive (20.0 is
    minimal, 20.1 moderate).
    """
    given: dict[str, int] = {}
    for key, score in answers.items():
        if key not in ODI_SECTION_KEYS:
            raise InvalidOdiAnswer(f"unknown ODI section {key!r}")
        if score is None:
            continue
        if isinstance(score, bool) or not isinstance(score, int):
            raise InvalidOdiAnswer(f"ODI score for {key!r} is not a whole number")
        if not 0 <= score <= ODI_MAX_PER_SECTION:
            raise InvalidOdiAnswer(f"ODI score for {key!r} is outside 0-5")
        given[key] = score
    if len(ODI_SECTION_KEYS) - len(given) > ODI_MAX_UNANSWERED:
        return OdiResult(answers=given, sections_answered=len(given), percent=None, band=None)
    percent = round(sum(given.values()) / (ODI_MAX_PER_SECTION * len(given)) * 100, 1)
    return OdiResult(
        answers=given, sections_answered=len(given), percent=percent, band=odi_band(percent)
    )


def odi_band(percent: float) -> str:
    for limit, code, _label in ODI_BANDS:
        if percent <= limit:
            return code
    raise InvalidOdiAnswer(f"ODI percentage {percent} is above 100")


def triage_level(red_flags: set[str] | frozenset[str]) -> str:
    """The request's triage level from the pathway of its red flags (``triage.py``): a risk
    factor alone keeps the request routine, shown to staff "to review"."""
    return triage.level(red_flags)


def diagnosis_labels(codes: list[str] | None) -> str:
    """The diagnoses' names, for a page or an export ("\u2013" when there are none)."""
    return choice_labels(DIAGNOSES, codes) or "\u2013"
