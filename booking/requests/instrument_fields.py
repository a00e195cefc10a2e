"""The form fields of the outcome instruments (``instruments``): a 0-10 pain scale and one
ODI or NDI section. Shared by the request form (``booking.patients``) and the follow-up
questionnaire (``booking.outcomes``), so both ask exactly the same questions the same way."""

from __future__ import annotations

from typing import Any

from flask_babel import lazy_gettext as _l
from wtforms.validators import Optional

from booking.forms import ChoiceField, options
from booking.requests import instruments

PAIN_SCALE = options([(str(n), str(n)) for n in range(11)])
PAIN_SCORES = frozenset(choice.value for choice in PAIN_SCALE)


def pain_score_field(label: str, *validators: Any) -> ChoiceField:
    """A 0-10 rating; ``validators`` come before ``Optional`` (its caller decides when it is
    required)."""
    return ChoiceField(
        label,
        choices=PAIN_SCALE,
        validators=[*validators, Optional()],
        invalid_choice_message=_l("Please choose a number from 0 to 10."),
        description=_l("0 means no pain, 10 the worst pain imaginable."),
    )


# The last choice of every section: both instruments' instructions say a section that does
# not apply may be skipped (the score is then taken over the sections answered), but a radio
# button once ticked cannot be unticked, so a patient who ticked one by mistake (on a phone,
# the usual way) could not skip the section any more. Its value is empty: stored as skipped.
SKIP_SECTION = _l("Skip this section: it does not apply to me")


def section_field(instrument: instruments.Instrument, index: int) -> ChoiceField:
    """One section of ``instrument``: six statements scored 0 to 5, skippable (``SKIP_SECTION``
    as its last choice, or no choice at all)."""
    section = instrument.sections[index]
    return ChoiceField(
        section.title,
        # Lazy statements, translated when shown: one list serves every form.
        choices=options(
            [(str(i), text) for i, text in enumerate(section.statements)] + [("", SKIP_SECTION)]
        ),
        validators=[Optional()],
        invalid_choice_message=_l("Please choose one of the statements."),
    )
