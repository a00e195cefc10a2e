"""The words for the plans, the answers to the follow-up's own questions and the change
categories, shared by the staff pages, the patient's questionnaire and the exports."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_babel import ngettext

from booking.outcomes.models import Plan, PlanGroup

PLAN_LABELS = [
    (Plan.ADVICE.value, _l("Advice and exercise")),
    (Plan.PHYSIOTHERAPY.value, _l("Physiotherapy")),
    (Plan.MEDICATION.value, _l("Medication")),
    (Plan.INJECTION.value, _l("Injection")),
    (
        Plan.MINIMALLY_INVASIVE.value,
        _l(
            "Minimally invasive surgery (microdiscectomy, endoscopic decompression, "
            "minimally invasive fusion)"
        ),
    ),
    (Plan.OPEN_SURGERY.value, _l("Open surgery")),
    (Plan.REFERRAL.value, _l("Referral elsewhere")),
    (Plan.OTHER.value, _l("Other")),
]
PLAN_GROUP_LABELS = {
    PlanGroup.MINIMALLY_INVASIVE.value: _l("Minimally invasive surgery"),
    PlanGroup.OPEN_SURGERY.value: _l("Open surgery"),
    PlanGroup.NON_SURGICAL.value: _l("Non-surgical care"),
    PlanGroup.OTHER.value: _l("Referral or other"),
}

# The Global Perceived Effect, 7 points (Kamper SJ et al., J Man Manip Ther 2009).
GPE_CHOICES = [
    ("1", _l("Completely recovered")),
    ("2", _l("Much improved")),
    ("3", _l("Slightly improved")),
    ("4", _l("No change")),
    ("5", _l("Slightly worse")),
    ("6", _l("Much worse")),
    ("7", _l("Worse than ever")),
]
# "Completely recovered" and "much improved": the registries' usual "recovered" share.
GPE_GOOD = frozenset({1, 2})
# "Much worse" and "worse than ever": the clinic is told at once (the patient's own judgement
# of a clinically important worsening, the mirror of GPE_GOOD); "slightly worse" is not.
GPE_WORSE = frozenset({6, 7})
SATISFACTION_CHOICES = [
    ("5", _l("Very satisfied")),
    ("4", _l("Satisfied")),
    ("3", _l("Neither satisfied nor dissatisfied")),
    ("2", _l("Dissatisfied")),
    ("1", _l("Very dissatisfied")),
]
CHANGE_LABELS = {
    "improved": _l("improved"),
    "unchanged": _l("unchanged"),
    "worse": _l("worse"),
}


def point_label(code: str) -> str:
    """ "6w" -> "6 weeks", "12m" -> "12 months", "1m" -> "1 month" (a clinic's schedule may
    have one), each in the reader's language and its plural rules."""
    number = int(code[:-1])
    if code[-1] == "w":
        return ngettext("%(num)s week", "%(num)s weeks", number)
    return ngettext("%(num)s month", "%(num)s months", number)
