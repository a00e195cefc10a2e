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

- ``EMERGENCY``: suspected cauda equina syndrome, spinal cord compression in the neck, or
  rapidly progressing weakness. The request flow stops: the patient is told to go to the
  emergency department or call the emergency number now, and may leave a name and phone
  number for a call-back (an EMERGENCY request, alerted to staff at once). No routine
  booking is offered.
- ``URGENT``: suspected infection, cancer (flags weighed together, see ``COMBINATIONS``) or
  fracture. The patient is told to contact their doctor today and may still request the
  evaluation; the request is urgent, with a call-back due within the clinic's target.
- ``REVIEW``: a risk factor alone (a history of cancer with no current symptom, for
  example). Recorded and shown to staff as "to review"; no advice to the patient, and the
  request keeps its routine place in the queue.

The questions are asked first, on their own step, before any other question (see
``booking.patients.views.red_flags``); each must be answered, so an unanswered question is
never read as "no".

An answer withdrawn before sending: a patient who answered "yes" to an emergency or urgent
question, and then changed it to "no" (after reading the advice, or going back from the
emergency page), may have misclicked, or may have changed it to get an appointment instead of
the emergency department. Their request is ``URGENT`` whatever the answers now say (a
call-back today to check), the patient is told so (``WITHDRAWN_ADVICE``), and staff read which
answers changed. An emergency answer changed to no holds it to the emergency's call-back
target instead, clock time, and out of hours its alert goes to the on-call address at once
(``call_back_level`` in ``booking.requests.models``). For the medical lead to confirm.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from flask import current_app
from flask_babel import get_locale
from flask_babel import lazy_gettext as _l
from flask_babel.speaklater import LazyString

EMERGENCY, URGENT, REVIEW, ROUTINE = "emergency", "urgent", "review", "routine"
# The most pressing first.
PATHWAYS = (EMERGENCY, URGENT, REVIEW, ROUTINE)


@dataclass(frozen=True)
class Group:
    """Questions shown together, by what they may point to."""

    code: str
    heading: LazyString  # as the patient reads it
    suspected: str  # for staff and the medical lead (English)


GROUPS = (
    Group(
        "cauda_equina",
        _l("Bladder, bowel, sex and numbness"),
        "cauda equina syndrome (GIRFT/BASS national suspected CES pathway, 2023)",
    ),
    Group(
        "nerves",
        _l("Arms, legs and walking"),
        "spinal cord compression (neck) or rapidly progressing nerve damage (NICE NG59)",
    ),
    Group(
        "infection",
        _l("Infection"),
        "spinal infection (Finucane 2020)",
    ),
    Group(
        "cancer",
        _l("Cancer"),
        "spinal metastasis (Finucane 2020); each item alone has a high false-positive rate",
    ),
    Group(
        "fracture",
        _l("Bones and injuries"),
        "fracture (Finucane 2020; NICE NG59)",
    ),
)
GROUP_BY_CODE = {group.code: group for group in GROUPS}


@dataclass(frozen=True)
class RedFlag:
    code: str
    question: LazyString  # as the patient reads it: plain words, a reading age of about 11
    group: str  # a ``Group`` code
    pathway: str  # the pathway of this flag on its own (see ``COMBINATIONS`` for together)
    asked: bool = True  # False: no longer asked, kept to read requests stored with it

    @property
    def suspected(self) -> str:
        return GROUP_BY_CODE[self.group].suspected


RED_FLAGS = (
    # Emergency now: suspected cauda equina syndrome (GIRFT/BASS 2023). "New" means since this
    # back or leg problem began: long-standing, explained symptoms are for the consultation.
    RedFlag(
        "bladder_bowel",
        _l("Since this problem started, have you lost control of your bladder or bowels?"),
        "cauda_equina",
        EMERGENCY,
    ),
    RedFlag(
        "urinary_retention",
        _l("Is it newly hard to pass urine, or can you no longer feel when your bladder is full?"),
        "cauda_equina",
        EMERGENCY,
    ),
    RedFlag(
        "saddle_numbness",
        _l(
            "Is there new numbness between your legs, around your bottom or your genitals "
            "(where you would sit on a saddle)?"
        ),
        "cauda_equina",
        EMERGENCY,
    ),
    RedFlag(
        "sexual_dysfunction",
        _l("Have you newly lost feeling in your genitals, or the ability to have sex?"),
        "cauda_equina",
        EMERGENCY,
    ),
    RedFlag(
        "both_legs",
        _l("Do you have new pain, numbness or weakness in both legs?"),
        "cauda_equina",
        EMERGENCY,
    ),
    # Emergency now: spinal cord compression in the neck, or nerve damage getting worse.
    RedFlag(
        "clumsy_hands",
        _l("Are your hands newly clumsy, for example dropping things or struggling with buttons?"),
        "nerves",
        EMERGENCY,
    ),
    RedFlag(
        "unsteady_walking",
        _l("Are you newly unsteady when you walk, as if your legs do not do what you want?"),
        "nerves",
        EMERGENCY,
    ),
    RedFlag(
        "progressive_weakness",
        _l("Is weakness in your legs or arms getting worse quickly?"),
        "nerves",
        EMERGENCY,
    ),
    # Urgent, today or the next working day: suspected infection.
    RedFlag(
        "fever",
        _l("Do you have a fever, or feel generally unwell, along with the pain?"),
        "infection",
        URGENT,
    ),
    RedFlag(
        "iv_drug_use",
        _l("Do you inject drugs, or have you done so recently?"),
        "infection",
        URGENT,
    ),
    RedFlag(
        "weak_immunity",
        _l(
            "Is your body less able to fight infection, for example because of HIV, "
            "chemotherapy or medicines after a transplant?"
        ),
        "infection",
        URGENT,
    ),
    RedFlag(
        "recent_procedure",
        _l(
            "In the last 3 months, have you had an operation or injection in your spine, or "
            "an infection anywhere in your body?"
        ),
        "infection",
        URGENT,
    ),
    # Suspected cancer: weighed together (``COMBINATIONS``); each alone is to review.
    RedFlag(
        "cancer_history",
        _l("Have you ever had cancer?"),
        "cancer",
        REVIEW,
    ),
    RedFlag(
        "weight_loss",
        _l("Have you lost weight recently without trying?"),
        "cancer",
        REVIEW,
    ),
    RedFlag(
        "night_pain",
        _l("Is the pain bad at night or when you rest, so that lying still does not ease it?"),
        "cancer",
        REVIEW,
    ),
    # Urgent: suspected fracture.
    RedFlag(
        "serious_injury",
        _l("Did the pain start after a serious injury, such as a car accident or a bad fall?"),
        "fracture",
        URGENT,
    ),
    RedFlag(
        "fragile_bones",
        _l(
            "Do you have weak bones (osteoporosis) or take steroid tablets for a long time, "
            "and did the pain start suddenly?"
        ),
        "fracture",
        URGENT,
    ),
    RedFlag(
        "minor_fall_over_50",
        _l("Are you 50 or older, and did the pain start after a small fall or a lift?"),
        "fracture",
        URGENT,
    ),
    # Asked until 2026-12 as one question; requests stored with it keep their meaning.
    RedFlag(
        "fever_weight_loss",
        _l("Fever or unexplained weight loss together with back pain"),
        "infection",
        URGENT,
        asked=False,
    ),
)
BY_CODE = {flag.code: flag for flag in RED_FLAGS}
# The questions on the form, in order, by group.
ASKED = tuple(flag for flag in RED_FLAGS if flag.asked)


@dataclass(frozen=True)
class Combination:
    """Flags weighed together (Finucane 2020): ``at_least`` of ``codes`` lead to ``pathway``."""

    codes: frozenset[str]
    at_least: int
    pathway: str
    reason: str  # for staff and the medical lead (English)


COMBINATIONS = (
    Combination(
        frozenset({"cancer_history", "weight_loss", "night_pain"}),
        2,
        URGENT,
        "a history of cancer with weight loss or night pain, or both symptoms together: "
        "suspected spinal metastasis (Finucane 2020; NICE NG59)",
    ),
)


def groups() -> list[tuple[Group, list[RedFlag]]]:
    """The asked questions by group, in the order of ``GROUPS``: what the form shows."""
    return [(group, [f for f in ASKED if f.group == group.code]) for group in GROUPS]


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
        "You told us about something that your own doctor (GP) should check today. If you "
        "cannot reach them, call an out-of-hours service. You can still ask us for an "
        "evaluation, and we will call you back soon."
    ),
}
# What the steps tell a patient with urgent answers before the request is sent: the clinic
# knows of them only once it is sent, so a patient who leaves half-way must not read "we will
# call you back" as if it did. (Emergency answers stop the steps: their page says what to do.)
ADVICE_BEFORE_SENDING = {
    URGENT: _l(
        "You told us about something that your own doctor (GP) should check today. If you "
        "cannot reach them, call an out-of-hours service. You can still ask us for an "
        "evaluation. Send your request today: once it is sent, we will call you back soon."
    ),
}
# The request's triage level as staff read it (``TriageLevel`` values).
LEVEL_LABELS = {
    EMERGENCY: _l("EMERGENCY"),
    URGENT: _l("URGENT"),
    ROUTINE: _l("routine"),
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
    given = set(codes)
    found = {ROUTINE}
    for code in given:
        flag = BY_CODE.get(code)
        if flag is None:
            raise ValueError(f"unknown red flag: {code!r}")
        found.add(flag.pathway)
    found.update(combination.pathway for combination in combinations(given))
    return next(p for p in PATHWAYS if p in found)


def decided_by_combination(codes: Iterable[str]) -> bool:
    """Whether a combination (``COMBINATIONS``), not any answer alone, makes the flags'
    pathway what it is: a fever with a cancer history and weight loss is urgent for the
    fever alone, and staff must not read that the combination decided it."""
    given = set(codes)
    alone = next(p for p in PATHWAYS if p in {ROUTINE} | {BY_CODE[c].pathway for c in given})
    return pathway(given) != alone


def combinations(codes: Iterable[str]) -> list[Combination]:
    """The ``COMBINATIONS`` the flags answered "yes" meet: why answers each only to review
    alone make a request urgent together (staff read the ``reason``)."""
    given = set(codes)
    return [c for c in COMBINATIONS if len(c.codes & given) >= c.at_least]


@dataclass(frozen=True)
class Advice:
    """What a patient with these flags is told first, on the page and in the receipt."""

    title: LazyString
    text: LazyString
    emergency: bool


# What a patient is told whose request is urgent only because they withdrew an answer.
WITHDRAWN_ADVICE = Advice(
    _l("We will call you to check your answers"),
    _l(
        "Before sending, you changed an answer about urgent symptoms from yes to no. Our team "
        "will call you back soon to check. If you do have any of those symptoms, please do "
        "not wait for our call."
    ),
    emergency=False,
)


def advice(codes: Iterable[str], withdrawn: Iterable[str] = ()) -> Advice | None:
    """The advice of the most pressing pathway among ``codes`` (or, when only ``withdrawn``
    answers make the request urgent, ``WITHDRAWN_ADVICE``); None when there is none."""
    found = pathway(codes)
    if found not in ADVICE:
        return WITHDRAWN_ADVICE if level(codes, withdrawn) == URGENT else None
    return Advice(ADVICE_TITLE[found], ADVICE[found], emergency=found == EMERGENCY)


def advice_before_sending(codes: Iterable[str]) -> Advice | None:
    """The advice the steps show for the answers so far, before the request is sent: that of
    ``advice``, in the words of ``ADVICE_BEFORE_SENDING`` where they differ (the clinic does
    not know of the answers yet)."""
    given = tuple(codes)
    found = advice(given)
    text = ADVICE_BEFORE_SENDING.get(pathway(given))
    return found if found is None or text is None else replace(found, text=text)


def level(codes: Iterable[str], withdrawn: Iterable[str] = ()) -> str:
    """The request's triage level (a ``TriageLevel`` value): emergency and urgent pathways
    make it so; a risk factor alone (``REVIEW``) keeps it routine. An emergency or urgent
    answer the patient changed from yes to no (``withdrawn``) makes it at least urgent."""
    found = pathway(codes)
    if found in (EMERGENCY, URGENT):
        return found
    # With the answers kept: a withdrawn answer may have been urgent only together with one
    # still ticked (a cancer history with night pain: ``COMBINATIONS``), and the patient read
    # the urgent advice while both were.
    both = {*codes, *withdrawn}
    return URGENT if withdrawn and pathway(both) in (EMERGENCY, URGENT) else ROUTINE


def is_urgent(codes: Iterable[str]) -> bool:
    """Whether the request goes to the top of the staff's queue and alerts them."""
    return pathway(codes) in (EMERGENCY, URGENT)


# --- The emergency wording every page and email shares ------------------------------------------
# One wording, read by the medical lead here: the banner on every patient page, the
# information pages, the red-flag advice and every patient email use these sentences (through
# ``emergency_context``), with the number of the reader's language or the clinic's region.
EMERGENCY_SIGNS = _l(
    "New problems controlling your bladder or bowels need emergency care. So does new "
    "numbness between your legs or around your bottom, or leg weakness that is quickly "
    "getting worse."
)
EMERGENCY_CALL = _l("Call %(number)s or go to the nearest emergency department now.")
OUT_OF_HOURS_CALL = _l(
    "For other worries when the clinic is closed, call the out-of-hours service on %(number)s."
)
OUT_OF_HOURS_GENERAL = _l(
    "For other worries when the clinic is closed, call your family doctor or the "
    "out-of-hours service."
)


def emergency_number(locale: str | None = None) -> str:
    """The emergency number for readers of ``locale`` (default: the current one):
    ``EMERGENCY_NUMBERS`` by language, else the clinic's region's ``EMERGENCY_NUMBER``."""
    language = (locale or str(get_locale() or "en")).split("_")[0]
    by_language = current_app.config.get("EMERGENCY_NUMBERS") or {}
    return by_language.get(language) or current_app.config["EMERGENCY_NUMBER"]


def emergency_context() -> dict[str, str]:
    """The shared wording, in the current language (a page's, or an email's forced one)."""
    number = emergency_number()
    out_of_hours = current_app.config.get("OUT_OF_HOURS_NUMBER") or ""
    return {
        "emergency_number": number,
        "emergency_signs": str(EMERGENCY_SIGNS),
        "emergency_call": str(EMERGENCY_CALL) % {"number": number},
        "out_of_hours_number": out_of_hours,
        "out_of_hours_advice": (
            str(OUT_OF_HOURS_CALL) % {"number": out_of_hours}
            if out_of_hours
            else str(OUT_OF_HOURS_GENERAL)
        ),
    }
