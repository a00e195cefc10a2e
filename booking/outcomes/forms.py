"""The follow-up questionnaire (the same instrument and pain scales as at intake, then the
Global Perceived Effect and satisfaction), the stop form, and the staff settings form."""

from __future__ import annotations

from functools import cache
from typing import Any

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from wtforms import BooleanField, DecimalField, RadioField, StringField, ValidationError
from wtforms.validators import DataRequired, InputRequired, NumberRange, StopValidation

from booking.forms import BaseForm, ChoiceField, options
from booking.outcomes.labels import GPE_CHOICES, SATISFACTION_CHOICES
from booking.outcomes.schedule import BadPoint, parse_schedule
from booking.outcomes.services import FollowUpAnswers
from booking.requests import instruments
from booking.requests.instrument_fields import PAIN_SCORES, pain_score_field, section_field

PAIN_LABELS = {
    "back": (_l("Back pain right now"), _l("Back pain at its worst in the last week")),
    "leg": (_l("Leg pain right now"), _l("Leg pain at its worst in the last week")),
    "neck": (_l("Neck pain right now"), _l("Neck pain at its worst in the last week")),
    "arm": (_l("Arm pain right now"), _l("Arm pain at its worst in the last week")),
}


class _Questionnaire(BaseForm):
    gpe = ChoiceField(
        _l("Compared with before your visit, how are your symptoms now?"),
        choices=options(GPE_CHOICES),
        validators=[InputRequired(_l("Please choose how your symptoms are now."))],
        invalid_choice_message=_l("Please choose how your symptoms are now."),
    )
    satisfaction = ChoiceField(
        _l("How satisfied are you with the care you received from the clinic?"),
        choices=options(SATISFACTION_CHOICES),
        validators=[InputRequired(_l("Please choose how satisfied you are."))],
        invalid_choice_message=_l("Please choose how satisfied you are."),
    )

    # Set on each subclass by ``questionnaire_form``.
    areas: tuple[instruments.PainArea, ...] = ()
    asked: tuple[instruments.Instrument, ...] = ()

    def pain_fields(self) -> list[RadioField]:
        return [
            getattr(self, name) for area in self.areas for name in (area.now_name, area.worst_name)
        ]

    def section_fields(self, instrument: instruments.Instrument) -> list[RadioField]:
        return [getattr(self, f"{instrument.code}_{key}") for key in instrument.section_keys]

    def validate(self, extra_validators: Any = None) -> bool:
        valid = super().validate(extra_validators)
        for area in self.areas:
            now, worst = getattr(self, area.now_name), getattr(self, area.worst_name)
            scored = now.data in PAIN_SCORES and worst.data in PAIN_SCORES
            if scored and int(worst.data) < int(now.data):
                worst.errors = [
                    *worst.errors,
                    _("Your worst pain cannot be lower than your pain right now."),
                ]
                valid = False
        return valid

    def unscorable(self) -> list[instruments.Instrument]:
        """The instruments whose sections are too often skipped to give a score."""
        return [
            instrument
            for instrument in self.asked
            if sum(field.data in (None, "") for field in self.section_fields(instrument))
            > instrument.max_unanswered
        ]

    def answers(self) -> FollowUpAnswers:
        scores = {}
        for instrument in (instruments.ODI, instruments.NDI):
            given = (
                {
                    key: int(field.data) if field.data not in (None, "") else None
                    for key, field in zip(
                        instrument.section_keys, self.section_fields(instrument), strict=True
                    )
                }
                if instrument in self.asked
                else {}
            )
            scores[instrument.code] = (
                instruments.score(instrument, given) if instrument in self.asked else None
            )
        odi, ndi = scores["odi"], scores["ndi"]
        return FollowUpAnswers(
            odi_answers=odi.answers if odi else {},
            odi_percent=odi.percent if odi else None,
            ndi_answers=ndi.answers if ndi else {},
            ndi_percent=ndi.percent if ndi else None,
            pain={field.name: int(field.data) for field in self.pain_fields()},
            gpe=int(self.gpe.data),
            satisfaction=int(self.satisfaction.data),
        )


@cache
def questionnaire_form(region: str | None) -> type[_Questionnaire]:
    """The questionnaire for a patient whose main problem was ``region`` at intake (None: an
    older request, which was asked the ODI and back and leg pain)."""
    asked = instruments.instruments_for(region)
    areas = instruments.REGION_PAIN_AREAS[region or "lower_back"]
    fields: dict[str, Any] = {"asked": asked, "areas": areas}
    for area in areas:
        now_label, worst_label = PAIN_LABELS[area.code]
        # Required (so not marked "(optional)"), unlike at intake where the region decides.
        fields[area.now_name] = pain_score_field(
            now_label, InputRequired(_l("Please rate this pain right now from 0 to 10."))
        )
        fields[area.worst_name] = pain_score_field(
            worst_label, InputRequired(_l("Please rate this pain at its worst from 0 to 10."))
        )
    for instrument in asked:
        for index, key in enumerate(instrument.section_keys):
            fields[f"{instrument.code}_{key}"] = section_field(instrument, index)
    return type(f"Questionnaire_{region or 'older'}", (_Questionnaire,), fields)


class StopForm(BaseForm):
    """Stopping further questionnaires: a button, so a mail scanner following links stops
    nothing."""


class RefreshForm(BaseForm):
    """Count the outcomes afresh now: the CSRF token only."""


class RegistryExportForm(BaseForm):
    """The registry export: the CSRF token only. The export writes (each new patient's
    registry code, an audit event), so it is a deliberate post, never a link another site
    could have a signed-in browser follow (as the privacy export)."""


def _finite(_form: object, field: DecimalField) -> None:
    """A number, not "NaN", "Infinity" or "sNaN": Python reads them as decimals, and a
    signalling NaN stops the range check with an error instead of a message."""
    if field.data is not None and not field.data.is_finite():
        raise StopValidation(_("Please enter a number."))


class OutcomeSettingsForm(BaseForm):
    schedule = StringField(
        _l("Follow-up time points"),
        validators=[DataRequired(_l("Please enter at least one time point."))],
        description=_l(
            'Weeks ("6w") or months ("3m") after the consultation, or after the procedure date '
            'when there is one, separated by commas. Default: "6w, 3m, 12m".'
        ),
    )
    odi_points = DecimalField(
        _l("ODI: change in points (0-100)"),
        places=1,
        validators=[InputRequired(), _finite, NumberRange(min=0.5, max=50)],
    )
    ndi_points = DecimalField(
        _l("NDI: change in points (0-100)"),
        places=1,
        validators=[InputRequired(), _finite, NumberRange(min=0.5, max=50)],
    )
    pain_points = DecimalField(
        _l("Pain: change in points (0-10)"),
        places=1,
        validators=[InputRequired(), _finite, NumberRange(min=0.5, max=10)],
    )
    relative_percent = DecimalField(
        _l("Or a fall of this per cent of the baseline (ODI and pain; for improvement only)"),
        places=0,
        validators=[InputRequired(), _finite, NumberRange(min=5, max=100)],
    )
    public_figures = BooleanField(
        _l("Show the results of groups of 30 or more patients on the public treatments page")
    )

    def validate_schedule(self, field: StringField) -> None:
        try:
            field.parsed = parse_schedule(field.data or "")
        except BadPoint as exc:
            raise ValidationError(
                _('"%(point)s" is not a time point such as "6w" or "3m".', point=str(exc))
            ) from exc
