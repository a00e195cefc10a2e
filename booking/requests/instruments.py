"""The outcome instruments a patient answers with a request, and how each is scored.

Read this module to see every question the patient is asked about pain and disability and how
each answer becomes a score. Pure data and functions: no database, no requests.

* Which part of the spine is the main problem (``REGIONS``) decides what is asked
  (``REGION_INSTRUMENTS``, ``REGION_PAIN_AREAS``): the lower back gets the Oswestry Disability
  Index and back and leg pain; the neck the Neck Disability Index and neck and arm pain; both,
  all of them.
* Pain: 0-10 numeric rating scales (0 no pain, 10 the worst pain imaginable), "right now" and
  "at its worst in the last week", separately for each area.
* Both indexes have ten sections of six statements scored 0 to 5. ``score`` applies the rule
  their manuals give for skipped sections: the per cent is taken over the sections answered
  (points / (5 x answered) x 100). With more than ``MAX_UNANSWERED`` (2) sections skipped there
  is no score ("not scored: N sections unanswered"): one answered section would otherwise read
  as 0 or 100 %.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from flask_babel import lazy_gettext as _l
from flask_babel import lazy_pgettext as _p

MAX_PER_SECTION = 5
# A score needs at least 8 of the 10 sections answered (both instruments).
MAX_UNANSWERED = 2


@dataclass(frozen=True)
class Section:
    key: str
    title: Any  # lazy string
    statements: tuple[Any, ...]  # index = score, 0 to 5


@dataclass(frozen=True)
class Band:
    """A band of the per cent score: from ``lowest`` (inclusive) up to the next band's."""

    code: str
    label: Any
    lowest: float


@dataclass(frozen=True)
class Instrument:
    code: str  # "odi", "ndi": the prefix of its form fields and ``MedicalHistory`` columns
    name: Any
    source: str  # the published version the sections follow
    bands_source: str
    instructions: Any  # shown to the patient above the sections
    sections: tuple[Section, ...]
    bands: tuple[Band, ...]
    max_unanswered: int = MAX_UNANSWERED
    # The follow-up questionnaire's heading over the sections: a patient with back and neck
    # problems answers both, one after the other.
    heading: Any = None

    @property
    def section_keys(self) -> tuple[str, ...]:
        return tuple(section.key for section in self.sections)

    @property
    def max_points(self) -> int:
        return MAX_PER_SECTION * len(self.sections)

    @property
    def band_labels(self) -> dict[str, Any]:
        return {band.code: band.label for band in self.bands}

    def band(self, percent: float) -> str:
        """The band of a per cent score (already rounded to one decimal)."""
        if not 0 <= percent <= 100:
            raise InvalidAnswer(f"{self.code} percentage {percent} is outside 0-100")
        return [band for band in self.bands if percent >= band.lowest][-1].code


@dataclass(frozen=True)
class Score:
    """One instrument's answers and, when enough sections were answered, its score."""

    instrument: Instrument = field(repr=False)
    answers: dict[str, int]  # section key -> 0-5, answered sections only
    percent: float | None  # None: not scored
    band: str | None

    @property
    def sections_answered(self) -> int:
        return len(self.answers)

    @property
    def unanswered(self) -> int:
        return len(self.instrument.sections) - len(self.answers)

    @property
    def points(self) -> int:
        """The points given, out of 5 x the sections answered (50 when all are)."""
        return sum(self.answers.values())

    @property
    def possible_points(self) -> int:
        return MAX_PER_SECTION * len(self.answers)

    @property
    def scored(self) -> bool:
        return self.percent is not None


class InvalidAnswer(ValueError):  # noqa: N818 - reads better at the call sites
    pass


def score(instrument: Instrument, answers: Mapping[str, int | None]) -> Score:
    """Score ``answers`` (section key -> 0-5, or None for a skipped section): points /
    (5 x sections answered) x 100, skipped sections left out as both manuals say, but only
    when at most ``instrument.max_unanswered`` sections are unanswered; with more the answers
    are kept and there is no score.

    Unknown sections or scores outside 0-5 raise ``InvalidAnswer``. The per cent is rounded to
    one decimal before it is banded.
    """
    given: dict[str, int] = {}
    keys = instrument.section_keys
    for key, value in answers.items():
        if key not in keys:
            raise InvalidAnswer(f"unknown {instrument.code} section {key!r}")
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidAnswer(f"{instrument.code} score for {key!r} is not a whole number")
        if not 0 <= value <= MAX_PER_SECTION:
            raise InvalidAnswer(f"{instrument.code} score for {key!r} is outside 0-5")
        given[key] = value
    # In the instrument's order, whatever order they came in.
    given = {key: given[key] for key in keys if key in given}
    if len(keys) - len(given) > instrument.max_unanswered:
        return Score(instrument, given, percent=None, band=None)
    percent = round(sum(given.values()) / (MAX_PER_SECTION * len(given)) * 100, 1)
    return Score(instrument, given, percent=percent, band=instrument.band(percent))


# --- Oswestry Disability Index ----------------------------------------------------------------


# Spanish (booking/translations/es): the ODI follows Florez Garcia MT et al., "Adaptacion
# transcultural a la poblacion espanola de la escala de incapacidad por dolor lumbar de
# Oswestry", Rehabilitacion (Madr) 1995;29:138-45, item by item, with its title and its
# distances (1 km / 500 m / 250 m). Deviations, and why: Florez adapted ODI version 1.0, whose
# section 1 asks about painkillers and section 7 about sleeping pills; this app asks version
# 2.1a (pain now, hours of sleep), the version its bands and scores follow, so those two
# sections keep 2.1a's meaning in Florez's words; walking item 5 leaves out 1.0's "y tengo
# que ir a rastras al bano", which 2.1a dropped. The official Spanish 2.1a comes with a licence
# from Mapi Research Trust (ePROVIDE): a clinic that holds one should use its text.
# The NDI's sections 1-3 follow Kovacs FM et al., BMC Musculoskelet Disord 2008;9:42; its
# sections 4-10 still read as translated before (after Andrade Ortega 2010) until the medical
# lead has checked them against Kovacs's published version (docs/clinical-content.md).
# ODI and NDI sections 1-3 share their English word for word (the NDI took them from the ODI),
# but each instrument follows its own validated Spanish version: those statements carry the
# instrument as their translation context.
_ODI_SECTIONS = (
    Section(
        "pain_intensity",
        _l("Pain intensity"),
        (
            _p("odi", "I have no pain at the moment"),
            _p("odi", "The pain is very mild at the moment"),
            _p("odi", "The pain is moderate at the moment"),
            _p("odi", "The pain is fairly severe at the moment"),
            _p("odi", "The pain is very severe at the moment"),
            _p("odi", "The pain is the worst imaginable at the moment"),
        ),
    ),
    Section(
        "personal_care",
        _l("Personal care (washing, dressing, etc.)"),
        (
            _p("odi", "I can look after myself normally without causing extra pain"),
            _p("odi", "I can look after myself normally but it causes extra pain"),
            _p("odi", "It is painful to look after myself and I am slow and careful"),
            _p("odi", "I need some help but manage most of my personal care"),
            _p("odi", "I need help every day in most aspects of self-care"),
            _p("odi", "I do not get dressed, I wash with difficulty and stay in bed"),
        ),
    ),
    Section(
        "lifting",
        _l("Lifting"),
        (
            _p("odi", "I can lift heavy weights without extra pain"),
            _p("odi", "I can lift heavy weights but it gives extra pain"),
            _p(
                "odi",
                "Pain prevents me from lifting heavy weights off the floor, but I can manage "
                "if they are conveniently placed, for example on a table",
            ),
            _p(
                "odi",
                "Pain prevents me from lifting heavy weights, but I can manage light to medium "
                "weights if they are conveniently positioned",
            ),
            _p("odi", "I can lift very light weights"),
            _p("odi", "I cannot lift or carry anything at all"),
        ),
    ),
    Section(
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
    Section(
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
    Section(
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
    Section(
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
    Section(
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
    Section(
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
    Section(
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

ODI = Instrument(
    code="odi",
    name=_l("Oswestry Disability Index"),
    heading=_l("Daily life: your lower back"),
    source="ODI version 2.1a; Fairbank JC, Pynsent PB. Spine 2000;25:2940-52",
    bands_source="Fairbank and Pynsent 2000: 0-20 %, 21-40 %, 41-60 %, 61-80 %, 81-100 %",
    instructions=_l(
        "This is the Oswestry Disability Index, a standard questionnaire. In each section, "
        "choose the one statement that best describes you today. You may skip a section that "
        "does not apply to you."
    ),
    sections=_ODI_SECTIONS,
    # The manual's bands are whole per cents (0-20, 21-40, ...); a one-decimal score above a
    # band's top (20.1) is in the next band.
    # The labels are neutral words for how much daily life is limited. The manual's own names
    # for the top two bands ("crippling back pain", "bed-bound or exaggerating symptoms") judge
    # the patient, who reads them in their own data export: only the labels changed, the
    # stored codes ("crippling", "bed_bound") and the cut-offs are the manual's.
    bands=(
        Band("minimal", _l("Minimal limitation"), 0),
        Band("moderate", _l("Moderate limitation"), 20.1),
        Band("severe", _l("Severe limitation"), 40.1),
        Band("crippling", _l("Very severe limitation"), 60.1),
        Band("bed_bound", _l("Extreme limitation"), 80.1),
    ),
)


# --- Neck Disability Index --------------------------------------------------------------------

# Vernon H, Mior S. The Neck Disability Index: a study of reliability and validity. J
# Manipulative Physiol Ther 1991;14:409-15. Sections 1-3 share the ODI's wording, which the
# NDI took from it. Spanish: see the note above the ODI's sections.
_NDI_SECTIONS = (
    Section(
        "pain_intensity",
        _l("Pain intensity"),
        (
            _p("ndi", "I have no pain at the moment"),
            _p("ndi", "The pain is very mild at the moment"),
            _p("ndi", "The pain is moderate at the moment"),
            _p("ndi", "The pain is fairly severe at the moment"),
            _p("ndi", "The pain is very severe at the moment"),
            _p("ndi", "The pain is the worst imaginable at the moment"),
        ),
    ),
    Section(
        "personal_care",
        _l("Personal care (washing, dressing, etc.)"),
        (
            _p("ndi", "I can look after myself normally without causing extra pain"),
            _p("ndi", "I can look after myself normally but it causes extra pain"),
            _p("ndi", "It is painful to look after myself and I am slow and careful"),
            _p("ndi", "I need some help but manage most of my personal care"),
            _p("ndi", "I need help every day in most aspects of self-care"),
            _p("ndi", "I do not get dressed, I wash with difficulty and stay in bed"),
        ),
    ),
    Section(
        "lifting",
        _l("Lifting"),
        (
            _p("ndi", "I can lift heavy weights without extra pain"),
            _p("ndi", "I can lift heavy weights but it gives extra pain"),
            _p(
                "ndi",
                "Pain prevents me from lifting heavy weights off the floor, but I can manage "
                "if they are conveniently placed, for example on a table",
            ),
            _p(
                "ndi",
                "Pain prevents me from lifting heavy weights, but I can manage light to medium "
                "weights if they are conveniently positioned",
            ),
            _p("ndi", "I can lift very light weights"),
            _p("ndi", "I cannot lift or carry anything at all"),
        ),
    ),
    Section(
        "reading",
        _l("Reading"),
        (
            _l("I can read as much as I want to with no pain in my neck"),
            _l("I can read as much as I want to with slight pain in my neck"),
            _l("I can read as much as I want to with moderate pain in my neck"),
            _l("I cannot read as much as I want because of moderate pain in my neck"),
            _l("I can hardly read at all because of severe pain in my neck"),
            _l("I cannot read at all"),
        ),
    ),
    Section(
        "headaches",
        _l("Headaches"),
        (
            _l("I have no headaches at all"),
            _l("I have slight headaches which come infrequently"),
            _l("I have moderate headaches which come infrequently"),
            _l("I have moderate headaches which come frequently"),
            _l("I have severe headaches which come frequently"),
            _l("I have headaches almost all the time"),
        ),
    ),
    Section(
        "concentration",
        _l("Concentration"),
        (
            _l("I can concentrate fully when I want to with no difficulty"),
            _l("I can concentrate fully when I want to with slight difficulty"),
            _l("I have a fair degree of difficulty in concentrating when I want to"),
            _l("I have a lot of difficulty in concentrating when I want to"),
            _l("I have a great deal of difficulty in concentrating when I want to"),
            _l("I cannot concentrate at all"),
        ),
    ),
    Section(
        "work",
        _l("Work"),
        (
            _l("I can do as much work as I want to"),
            _l("I can only do my usual work, but no more"),
            _l("I can do most of my usual work, but no more"),
            _l("I cannot do my usual work"),
            _l("I can hardly do any work at all"),
            _l("I cannot do any work at all"),
        ),
    ),
    Section(
        "driving",
        _l("Driving"),
        (
            _l("I can drive my car without any neck pain"),
            _l("I can drive my car as long as I want with slight pain in my neck"),
            _l("I can drive my car as long as I want with moderate pain in my neck"),
            _l("I cannot drive my car as long as I want because of moderate pain in my neck"),
            _l("I can hardly drive at all because of severe pain in my neck"),
            _l("I cannot drive my car at all"),
        ),
    ),
    Section(
        "sleeping",
        _l("Sleeping"),
        (
            _l("I have no trouble sleeping"),
            _l("My sleep is slightly disturbed (less than 1 hour sleepless)"),
            _l("My sleep is mildly disturbed (1 to 2 hours sleepless)"),
            _l("My sleep is moderately disturbed (2 to 3 hours sleepless)"),
            _l("My sleep is greatly disturbed (3 to 5 hours sleepless)"),
            _l("My sleep is completely disturbed (5 to 7 hours sleepless)"),
        ),
    ),
    Section(
        "recreation",
        _l("Recreation"),
        (
            _l("I am able to do all my recreation activities with no neck pain at all"),
            _l("I am able to do all my recreation activities, with some pain in my neck"),
            _l(
                "I am able to do most, but not all, of my usual recreation activities "
                "because of pain in my neck"
            ),
            _l(
                "I am able to do only a few of my usual recreation activities because of pain "
                "in my neck"
            ),
            _l("I can hardly do any recreation activities because of pain in my neck"),
            _l("I cannot do any recreation activities at all"),
        ),
    ),
)

NDI = Instrument(
    code="ndi",
    name=_l("Neck Disability Index"),
    heading=_l("Daily life: your neck"),
    source="NDI; Vernon H, Mior S. J Manipulative Physiol Ther 1991;14:409-15",
    bands_source=(
        "Vernon H. J Manipulative Physiol Ther 2008;31:491-502: 0-4 points none, 5-14 mild, "
        "15-24 moderate, 25-34 severe, 35-50 complete; as per cents of 50: 0-8 %, 10-28 %, "
        "30-48 %, 50-68 %, 70-100 %"
    ),
    instructions=_l(
        "This is the Neck Disability Index, a standard questionnaire about how your neck pain "
        "affects your daily life. In each section, choose the one statement that best "
        "describes you today. You may skip a section that does not apply to you."
    ),
    sections=_NDI_SECTIONS,
    # Vernon's bands are points out of 50; the per cent equivalents are used so that a score
    # over 8 or 9 answered sections is banded the same way. A pro-rated per cent between two
    # bands (9 %, say: 4 of 45 points) belongs to the lower one: each band runs up to the next
    # band's lowest per cent.
    # Neutral labels, as for the ODI (the stored codes stay Vernon's).
    bands=(
        Band("none", _l("No limitation"), 0),
        Band("mild", _l("Mild limitation"), 10),
        Band("moderate", _l("Moderate limitation"), 30),
        Band("severe", _l("Severe limitation"), 50),
        Band("complete", _l("Extreme limitation"), 70),
    ),
)

INSTRUMENTS: tuple[Instrument, ...] = (ODI, NDI)
BY_CODE = {instrument.code: instrument for instrument in INSTRUMENTS}


# --- Where the main problem is, and what that asks ---------------------------------------------

REGIONS = [
    ("lower_back", _l("My lower back (the pain may spread into a leg)")),
    ("neck", _l("My neck (the pain may spread into an arm)")),
    ("both", _l("Both my lower back and my neck")),
]
REGION_CODES = frozenset(code for code, _label in REGIONS)
# The same, short, for staff and exports.
REGION_NAMES = [
    ("lower_back", _l("Lower back")),
    ("neck", _l("Neck")),
    ("both", _l("Lower back and neck")),
]
REGION_INSTRUMENTS: dict[str, tuple[Instrument, ...]] = {
    "lower_back": (ODI,),
    "neck": (NDI,),
    "both": (ODI, NDI),
}
# Requests made before the region was asked were given the ODI only.
OLDER_REQUEST_INSTRUMENTS = (ODI,)


def instruments_for(region: str | None) -> tuple[Instrument, ...]:
    """The instruments a patient with this main problem is asked (``None``: an older request,
    made before the question existed)."""
    return REGION_INSTRUMENTS[region] if region is not None else OLDER_REQUEST_INSTRUMENTS


@dataclass(frozen=True)
class PainArea:
    """A 0-10 pain rating pair: right now and at its worst in the last week."""

    code: str  # "back": the columns back_pain_now and back_pain_worst
    name: Any  # "Back pain", for staff

    @property
    def now_name(self) -> str:
        return f"{self.code}_pain_now"

    @property
    def worst_name(self) -> str:
        return f"{self.code}_pain_worst"


BACK = PainArea("back", _l("Back pain"))
LEG = PainArea("leg", _l("Leg pain"))
NECK = PainArea("neck", _l("Neck pain"))
ARM = PainArea("arm", _l("Arm pain"))
PAIN_AREAS = (BACK, LEG, NECK, ARM)
REGION_PAIN_AREAS: dict[str, tuple[PainArea, ...]] = {
    "lower_back": (BACK, LEG),
    "neck": (NECK, ARM),
    "both": (BACK, LEG, NECK, ARM),
}
PAIN_MIN, PAIN_MAX = 0, 10
