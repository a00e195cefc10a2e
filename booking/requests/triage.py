"""Red flags: every question, the pathway each points to, and what the patient is told.

This is the file the clinic's medical lead reads and signs off. It follows:

- NICE NG59, *Low back pain and sciatica in over 16s: assessment and management* (2016,
  updated 2020): exclude alternative diagnoses and serious pathology (cancer, infection,
  trauma, inflammatory disease, cauda equina) before treating back pain as non-specific.
- GIRFT and the British Association of Spine Surgeons, *National suspected cauda equina
  syndrome (CES) pathway* (England, 2023): new bladder, bowel or sexual dysfunction, or
  numbness in the saddle area, with back pain or sciatica, needs the same-day emergency
  department, not an appointment.
- Finucane LM et al., *International framework for red flags for potential serious spinal
  pathologies*, JOSPT 2020;50(7):350-372: red flags are weighed together; most single flags
  (a history of cancer, for example) are risk factors with high false-positive rates and,
  alone, call for review and watchful follow-up, not for an emergency.

Pathways, from the most to the least pressing:

- ``EMERGENCY``: suspected cauda equina syndrome or rapidly progressing nerve damage. The
  patient is told to call the emergency number or go to the emergency department now; the
  request is urgent for staff.
- ``URGENT``: suspected infection, cancer or fracture. The patient is told to contact their
  doctor today; the request is urgent for staff.
- ``REVIEW``: a risk factor alone. Recorded and shown to staff as "to review"; no emergency
  advice, and the request keeps its routine place in the queue.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from flask_babel import lazy_gettext as _l
from flask_babel.speaklater import LazyString

EMERGENCY, URGENT, REVIEW, ROUTINE = "emergency", "urgent", "review", "routine"
# The most pressing first.
PATHWAYS = (EMERGENCY, URGENT, REVIEW, ROUTINE)


@dataclass(frozen=True)
class RedFlag:
    code: str
    question: LazyString  # as the patient reads it on the form
    pathway: str
    suspected: str  # what it may point to, for staff and the medical lead (English)


RED_FLAGS = (
    RedFlag(
        "bladder_bowel",
        _l("New loss of bladder or bowel control"),
        EMERGENCY,
        "cauda equina syndrome (GIRFT/BASS CES pathway 2023)",
    ),
    RedFlag(
        "saddle_numbness",
        _l("Numbness in the groin or saddle area"),
        EMERGENCY,
        "cauda equina syndrome (GIRFT/BASS CES pathway 2023)",
    ),
    RedFlag(
        "progressive_weakness",
        _l("Rapidly worsening weakness in the legs"),
        EMERGENCY,
        "progressive nerve or cord compression (NICE NG59)",
    ),
    RedFlag(
        "fever_weight_loss",
        _l("Fever or unexplained weight loss together with back pain"),
        URGENT,
        "spinal infection or cancer (Finucane 2020)",
    ),
    RedFlag(
        "serious_injury",
        _l("A recent serious injury, such as a fall or car accident"),
        URGENT,
        "fracture (Finucane 2020)",
    ),
    RedFlag(
        "cancer_history",
        _l("A history of cancer"),
        REVIEW,
        "risk factor for spinal metastasis; alone it has a high false-positive rate, so it is "
        "reviewed, and it is urgent only together with a symptom (Finucane 2020)",
    ),
)
BY_CODE = {flag.code: flag for flag in RED_FLAGS}

# What the patient is told after sending a request, by pathway (none for REVIEW or ROUTINE).
ADVICE_TITLE = {
    EMERGENCY: _l("Please seek emergency care now"),
    URGENT: _l("Please contact your doctor today"),
}
ADVICE = {
    EMERGENCY: _l(
        "You told us about symptoms that can be a sign of a serious problem with the nerves "
        "of your spine. Do not wait for an appointment."
    ),
    URGENT: _l(
        "You told us about something that your own doctor (GP) should check today, for "
        "example a fever or weight loss you cannot explain, or a recent serious injury. If "
        "you cannot reach them, call an out-of-hours service."
    ),
}
# What staff see next to each answered flag.
PATHWAY_LABELS = {
    EMERGENCY: _l("emergency"),
    URGENT: _l("urgent"),
    REVIEW: _l("to review"),
}


def pathway(codes: Iterable[str]) -> str:
    """The most pressing pathway among the flags answered "yes" (``ROUTINE`` for none).

    Unknown codes raise ValueError: a flag nobody wrote advice for must not pass silently.
    """
    found = {ROUTINE}
    for code in codes:
        flag = BY_CODE.get(code)
        if flag is None:
            raise ValueError(f"unknown red flag: {code!r}")
        found.add(flag.pathway)
    return next(p for p in PATHWAYS if p in found)


@dataclass(frozen=True)
class Advice:
    """What a patient with these flags is told first, on the page and in the receipt."""

    title: LazyString
    text: LazyString
    emergency: bool


def advice(codes: Iterable[str]) -> Advice | None:
    """The advice of the most pressing pathway among ``codes``; None when there is none."""
    found = pathway(codes)
    if found not in ADVICE:
        return None
    return Advice(ADVICE_TITLE[found], ADVICE[found], emergency=found == EMERGENCY)


def is_urgent(codes: Iterable[str]) -> bool:
    """Whether the request goes to the top of the staff's queue and alerts them."""
    return pathway(codes) in (EMERGENCY, URGENT)
