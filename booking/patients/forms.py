"""The patient's request form. Forms check shape; ``services.submit_request`` enforces rules."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf.file import MultipleFileField
from wtforms import (
    BooleanField,
    DateField,
    EmailField,
    Field,
    HiddenField,
    RadioField,
    SelectChoice,
    StringField,
    TelField,
    TextAreaField,
    ValidationError,
)
from wtforms.validators import DataRequired, InputRequired, Optional

from booking.forms import (
    BaseForm,
    ChoiceField,
    EmailAddress,
    MultiCheckboxField,
    has_visible_text,
    name_only,
    options,
    too_long,
    valid_phone,
    visible_or_empty,
)
from booking.openinghours import open_weekdays
from booking.patients.services import RequestSubmission
from booking.requests import history, instruments, triage
from booking.requests.instrument_fields import PAIN_SCORES, pain_score_field, section_field
from booking.scheduling.availability import parse_slot_key
from booking.scheduling.services import SlotChoice
from booking.timeutil import clinic_today
from booking.urlargs import int_arg

ADULT_AGE = 18
# What ``secrets.token_urlsafe(32)`` makes; anything else posted as the token is replaced.
SUBMISSION_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{32,64}")
# How far ahead the earliest date a patient could come may be.
EARLIEST_DATE_AHEAD = timedelta(days=366)
YES_NO = options([("yes", _l("Yes")), ("no", _l("No"))])


def _yes_no(label: str) -> ChoiceField:
    return ChoiceField(
        label,
        choices=YES_NO,
        validators=[InputRequired(_l("Please answer yes or no."))],
        invalid_choice_message=_l("Please answer yes or no."),
    )


class AskedByRegion:
    """A field shown only when the patient's main problem asks it, and then required
    (checked in ``RequestForm.validate``): the page marks it required (aria-required), not
    "(optional)"."""

    field_flags = {"required": True}

    def __call__(self, form: object, field: object) -> None:
        pass


def _open_days() -> list[SelectChoice]:
    """The weekdays the clinic opens on (``CLINIC_OPENING_HOURS``), Saturday too where it does:
    the days a patient may say suit them (read when a form shows or checks them)."""
    open_days = open_weekdays()
    return options([(value, label) for value, label in history.WEEKDAYS if int(value) in open_days])


def _pain_score(label: str) -> ChoiceField:
    return pain_score_field(label, AskedByRegion())


def _section(instrument: instruments.Instrument, index: int) -> ChoiceField:
    return section_field(instrument, index)


def _odi_section(index: int) -> ChoiceField:
    return _section(instruments.ODI, index)


def _ndi_section(index: int) -> ChoiceField:
    return _section(instruments.NDI, index)


@dataclass(frozen=True)
class RegionPart:
    """The page's part for one main problem: its pain scores and its instrument."""

    id: str
    legend: Any
    note: Any
    heading: Any
    instrument: instruments.Instrument
    pain_fields: list[RadioField]
    section_fields: list[RadioField]


# Each part's wording; its pain areas and instrument follow from the region.
PART_TEXT = {
    "lower_back": (
        _l("Answer this part if your main problem is your lower back"),
        _l(
            "Also answer it if both your lower back and your neck are your main problem. "
            "Skip it if only your neck is."
        ),
        _l("How your back pain affects daily life"),
    ),
    "neck": (
        _l("Answer this part if your main problem is your neck"),
        _l(
            "Also answer it if both your lower back and your neck are your main problem. "
            "Skip it if only your lower back is."
        ),
        _l("How your neck pain affects daily life"),
    ),
}


def _age_on(born: date, today: date) -> int:
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


def new_submission_token() -> str:
    """The one-time token a new form carries, so a second send of it stores nothing twice."""
    return secrets.token_urlsafe(32)


class RedFlagForm(BaseForm):
    """The first step: the red-flag questions (``booking.requests.triage``), each answered
    yes or no, so an unanswered question is never read as "no". Its fields (``red_<code>``)
    are added below, one per asked question."""

    def answers(self) -> dict[str, str]:
        """Every question's answer by code, "yes" or "no", as the next steps carry them."""
        return {flag.code: self[f"red_{flag.code}"].data for flag in triage.ASKED}


def red_flag_fields(form: BaseForm) -> list[RadioField]:
    return [form[f"red_{flag.code}"] for flag in triage.ASKED]


def red_flags_answered(form: BaseForm) -> set[str]:
    """The codes of the flags answered "yes"."""
    return {flag.code for flag in triage.ASKED if form[f"red_{flag.code}"].data == "yes"}


def carried_red_flags(answers: object) -> dict[str, str] | None:
    """Answers to the first step kept between steps, if complete and well formed."""
    if not isinstance(answers, dict):
        return None
    codes = [flag.code for flag in triage.ASKED]
    if set(answers) != set(codes) or not all(answers[c] in ("yes", "no") for c in codes):
        return None
    return {code: answers[code] for code in codes}


def _email_field() -> EmailField:
    """The patient's email address, checked for shape (delivery is the outbox's concern)."""
    return EmailField(
        _l("Email address"),
        validators=[
            DataRequired(_l("Please enter your email address.")),
            EmailAddress(_l("Please enter a valid email address, like name@example.com.")),
            too_long(254),
        ],
        render_kw={"autocomplete": "email"},
    )


class DraftDocumentsForm(BaseForm):
    """The documents step: files go into the draft as soon as they are sent (each checked by
    content when it is stored, ``booking.requests.drafts.add_document``)."""

    files = MultipleFileField(_l("Choose one or more files"), validators=[Optional()])
    description = StringField(
        _l("What is it?"),
        validators=[Optional(), too_long(200)],
        filters=[visible_or_empty],
        description=_l("For example: MRI report, lumbar spine, March 2026"),
    )


class FinishLaterForm(BaseForm):
    """Where to send the private link to an unfinished request."""

    email = _email_field()


class CallbackForm(BaseForm):
    """An emergency patient's name and phone number, so the clinic calls them back."""

    submission_token = HiddenField()
    full_name = StringField(
        _l("Your name"),
        validators=[DataRequired(_l("Please enter your name.")), too_long(200), name_only],
        render_kw={"autocomplete": "name"},
    )
    # A number without its country code is read as the clinic's country's: the patient is
    # told so here as on the request form, or a visitor's mobile is called at a wrong number.
    phone = TelField(
        _l("Your phone number"),
        validators=[DataRequired(_l("Please enter a phone number.")), too_long(40)],
        description=_l(
            "Include the country code if it is not a local number, e.g. +49 30 1234567."
        ),
        render_kw={"autocomplete": "tel"},
    )

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        token = self.submission_token.data
        if not isinstance(token, str) or not SUBMISSION_TOKEN_RE.fullmatch(token):
            self.submission_token.data = new_submission_token()

    def validate_full_name(self, field: StringField) -> None:
        if not has_visible_text(field.data):
            raise ValidationError(_("Please enter your name."))

    def validate_phone(self, field: TelField) -> None:
        field.e164 = valid_phone(field.data)


class RequestForm(BaseForm):
    """The whole request, every step's questions: each step checks its own fields on it, and
    the last checks them all (``booking.patients.steps``)."""

    # The draft's one-time token, so a second send of it stores nothing twice.
    submission_token = HiddenField()
    # The time picked on the previous step (see booking.scheduling.availability.OpenSlot.key).
    appointment_type = HiddenField()
    slot = HiddenField(_l("Appointment time"))

    # About you
    full_name = StringField(
        _l("Full name"),
        validators=[DataRequired(_l("Please enter your full name.")), too_long(200), name_only],
        render_kw={"autocomplete": "name"},
    )
    date_of_birth = DateField(
        _l("Date of birth"),
        validators=[DataRequired(_l("Please enter your date of birth as day, month and year."))],
        render_kw={"autocomplete": "bday"},
    )
    guardian_name = StringField(
        _l("Parent or guardian's full name"),
        validators=[Optional(), too_long(200), name_only],
        filters=[visible_or_empty],
        description=_l("Required if the patient is under 18."),
    )
    email = _email_field()
    phone = TelField(
        _l("Phone number"),
        validators=[DataRequired(_l("Please enter a phone number.")), too_long(40)],
        description=_l(
            "Include the country code if it is not a local number, e.g. +49 30 1234567."
        ),
        render_kw={"autocomplete": "tel"},
    )
    preferred_contact = ChoiceField(
        _l("How should we contact you?"),
        choices=options(history.CONTACT_METHODS),
        default="email",
        validators=[InputRequired(_l("Please choose how we should contact you."))],
    )

    # Your symptoms
    pain_locations = MultiCheckboxField(
        _l("Where does it hurt?"),
        choices=options(history.PAIN_LOCATIONS),
        validators=[DataRequired(_l("Please tick at least one place where it hurts."))],
    )
    spine_region = ChoiceField(
        _l("Where is your main problem?"),
        choices=options(instruments.REGIONS),
        validators=[InputRequired(_l("Please tell us where your main problem is."))],
        description=_l("This tells us which questions below to ask you."),
    )
    pain_side = ChoiceField(
        _l("Which side?"), choices=options(history.PAIN_SIDES), validators=[Optional()]
    )
    pain_duration = ChoiceField(
        _l("How long have you had this pain?"),
        choices=options(history.PAIN_DURATIONS),
        validators=[InputRequired(_l("Please tell us how long you have had this pain."))],
    )
    radiating_pain = _yes_no(_l("Does the pain spread into your arm or leg?"))
    numbness = _yes_no(_l("Do you have numbness or tingling?"))
    weakness = _yes_no(_l("Do you have weakness in an arm or leg?"))
    diagnoses = MultiCheckboxField(
        _l("Has a doctor told you what it is?"),
        choices=options(history.DIAGNOSES),
        validators=[Optional()],
    )
    diagnosis_other = StringField(
        _l("Other diagnosis"),
        validators=[Optional(), too_long(200)],
        filters=[visible_or_empty],
        description=_l("Required if you ticked “Other”."),
    )
    treatments = MultiCheckboxField(
        _l("Treatment you have already had"),
        choices=options(history.TREATMENTS),
        validators=[Optional()],
    )
    surgery_details = TextAreaField(
        _l("About your previous spine surgery"),
        validators=[Optional(), too_long(1000)],
        filters=[visible_or_empty],
        description=_l("What was done, and when. Required if you ticked “Previous spine surgery”."),
    )
    imaging = MultiCheckboxField(
        _l("Scans you have already had"), choices=options(history.IMAGING), validators=[Optional()]
    )
    imaging_when = StringField(
        _l("When were the scans done?"),
        validators=[Optional(), too_long(200)],
        filters=[visible_or_empty],
        description=_l("For example: MRI in March 2026."),
    )
    medications = TextAreaField(
        _l("Medicines you take now"), validators=[Optional(), too_long(1000)]
    )
    allergies = TextAreaField(_l("Allergies"), validators=[Optional(), too_long(500)])
    blood_thinners = _yes_no(_l("Do you take blood thinners (anticoagulants)?"))
    diabetes = _yes_no(_l("Do you have diabetes?"))
    smoking = ChoiceField(
        _l("Do you smoke?"),
        choices=options(history.SMOKING),
        validators=[InputRequired(_l("Please tell us whether you smoke."))],
    )
    other_history = TextAreaField(
        _l("Anything else we should know about your health?"),
        validators=[Optional(), too_long(2000)],
        description=_l("At most 2000 characters."),
    )

    # Pain on 0-10 scales, by area: back and leg for the lower back, neck and arm for the neck.
    back_pain_now = _pain_score(_l("Back pain right now"))
    back_pain_worst = _pain_score(_l("Back pain at its worst in the last week"))
    leg_pain_now = _pain_score(_l("Leg pain right now"))
    leg_pain_worst = _pain_score(_l("Leg pain at its worst in the last week"))
    neck_pain_now = _pain_score(_l("Neck pain right now"))
    neck_pain_worst = _pain_score(_l("Neck pain at its worst in the last week"))
    arm_pain_now = _pain_score(_l("Arm pain right now"))
    arm_pain_worst = _pain_score(_l("Arm pain at its worst in the last week"))

    # Oswestry Disability Index (lower back): every section optional (a section may be skipped).
    odi_pain_intensity = _odi_section(0)
    odi_personal_care = _odi_section(1)
    odi_lifting = _odi_section(2)
    odi_walking = _odi_section(3)
    odi_sitting = _odi_section(4)
    odi_standing = _odi_section(5)
    odi_sleeping = _odi_section(6)
    odi_sex_life = _odi_section(7)
    odi_social_life = _odi_section(8)
    odi_travelling = _odi_section(9)

    # Neck Disability Index (neck), the same way.
    ndi_pain_intensity = _ndi_section(0)
    ndi_personal_care = _ndi_section(1)
    ndi_lifting = _ndi_section(2)
    ndi_reading = _ndi_section(3)
    ndi_headaches = _ndi_section(4)
    ndi_concentration = _ndi_section(5)
    ndi_work = _ndi_section(6)
    ndi_driving = _ndi_section(7)
    ndi_sleeping = _ndi_section(8)
    ndi_recreation = _ndi_section(9)

    # Preferred time
    preferred_days = MultiCheckboxField(
        _l("Days that suit you"), choices=_open_days, validators=[Optional()]
    )
    preferred_time_of_day = ChoiceField(
        _l("Time of day"),
        choices=options(history.TIME_OF_DAY),
        default="any",
        validators=[Optional()],
    )
    earliest_date = DateField(
        _l("Earliest date you could come"),
        validators=[Optional()],
        description=_l("Leave empty if any date is fine."),
    )

    # Consent
    privacy_consent = BooleanField(
        _l(
            "I have read the privacy notice and agree that the clinic stores and uses my "
            "information to assess my request."
        ),
        validators=[DataRequired(_l("Please confirm that you have read the privacy notice."))],
    )
    contact_consent = BooleanField(
        _l("I agree to be contacted about my request by email or phone."),
        validators=[DataRequired(_l("Please agree to be contacted, or we cannot reply."))],
    )
    followup_consent = BooleanField(
        _l(
            "After my visit, the clinic may email me short questionnaires about how I am "
            "doing, also used, without my name, to measure its results. I can stop them from "
            "any of those emails."
        ),
        description=_l("Optional: saying no changes nothing about your request or your care."),
    )

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        token = self.submission_token.data
        if not isinstance(token, str) or not SUBMISSION_TOKEN_RE.fullmatch(token):
            # None on a new form; anything else did not come from us and must not reach the
            # database's 64-character column.
            self.submission_token.data = new_submission_token()
        # The earliest-date picker offers neither the past nor more than a year ahead.
        today = clinic_today().isoformat()
        latest = (clinic_today() + EARLIEST_DATE_AHEAD).isoformat()
        self.earliest_date.render_kw = {"min": today, "max": latest}
        self.date_of_birth.render_kw = {**(self.date_of_birth.render_kw or {}), "max": today}
        # Required by another answer (``validate``), as their help says: not "(optional)",
        # which the page then contradicted with "Please tell us...".
        for field in (self.guardian_name, self.diagnosis_other, self.surgery_details):
            field.flags.conditional = True

    def slot_choice(self) -> SlotChoice | None:
        """The picked slot, if the page carried a well-formed one."""
        parsed = parse_slot_key(self.slot.data or "")
        type_id = int_arg(str(self.appointment_type.data or ""))
        if parsed is None or type_id is None:
            return None
        specialist_id, location_id, starts_at = parsed
        return SlotChoice(type_id, specialist_id, location_id, starts_at)

    def validate_slot(self, field: HiddenField) -> None:
        # Empty means no time picked (the request asks for an offer). Anything else must name
        # a time, or the request would be stored without the time the patient thinks it has.
        if field.data and self.slot_choice() is None:
            raise ValidationError(_("Please choose one of the times."))

    def section_fields(self, instrument: instruments.Instrument) -> list[RadioField]:
        return [getattr(self, f"{instrument.code}_{key}") for key in instrument.section_keys]

    def odi_fields(self) -> list[RadioField]:
        return self.section_fields(instruments.ODI)

    def ndi_fields(self) -> list[RadioField]:
        return self.section_fields(instruments.NDI)

    def pain_fields(self, area: instruments.PainArea) -> list[RadioField]:
        """The area's two pain scores: right now, at its worst."""
        return [self[area.now_name], self[area.worst_name]]

    def region_parts(self) -> list[RegionPart]:
        """The lower back's part and the neck's, in page order."""
        parts = []
        for region, (legend, note, heading) in PART_TEXT.items():
            (instrument,) = instruments.REGION_INSTRUMENTS[region]
            parts.append(
                RegionPart(
                    id=f"part-{region.replace('_', '-')}",
                    legend=legend,
                    note=note,
                    heading=heading,
                    instrument=instrument,
                    pain_fields=[
                        field
                        for area in instruments.REGION_PAIN_AREAS[region]
                        for field in self.pain_fields(area)
                    ],
                    section_fields=self.section_fields(instrument),
                )
            )
        return parts

    def region_part_fields(self) -> list[RadioField]:
        """Every field of both parts, in page order (for the error summary)."""
        return [
            field
            for part in self.region_parts()
            for field in (*part.pain_fields, *part.section_fields)
        ]

    def red_flag_fields(self) -> list[RadioField]:
        return red_flag_fields(self)

    def validate_full_name(self, field: StringField) -> None:
        if not has_visible_text(field.data):
            raise ValidationError(_("Please enter your full name."))

    def validate_date_of_birth(self, field: DateField) -> None:
        today = clinic_today()
        if field.data >= today:
            raise ValidationError(_("Your date of birth must be in the past."))
        if field.data.year < 1900:
            raise ValidationError(_("Please check the year of your date of birth."))

    def validate_phone(self, field: TelField) -> None:
        field.e164 = valid_phone(field.data)

    def validate_earliest_date(self, field: DateField) -> None:
        if field.data and field.data < clinic_today():
            raise ValidationError(_("The earliest date cannot be in the past."))
        if field.data and field.data > clinic_today() + EARLIEST_DATE_AHEAD:
            # A request is for an evaluation soon: a date years ahead is a typing mistake.
            raise ValidationError(_("Please give a date within the next year."))

    def validate(self, extra_validators: object = None) -> bool:
        valid = super().validate(extra_validators)
        # Checks across fields. Optional() stops a field's own validators when it is empty,
        # so "required only if" rules live here.
        valid &= self._require_if(
            self.guardian_name,
            self._is_minor(),
            _("The patient is under 18: please give a parent or guardian's name."),
        )
        valid &= self._require_if(
            self.diagnosis_other,
            "other" in (self.diagnoses.data or []),
            _("Please tell us the other diagnosis."),
        )
        valid &= self._refuse_if(
            self.diagnoses,
            # "Not sure" says no doctor has named it: beside a named diagnosis, one of the two
            # answers is wrong, and only the patient knows which.
            "not_sure" in (self.diagnoses.data or []) and len(set(self.diagnoses.data)) > 1,
            _(
                "You ticked “Not sure / no diagnosis yet” and a diagnosis: please untick "
                "one of them."
            ),
        )
        valid &= self._require_if(
            self.surgery_details,
            "spine_surgery" in (self.treatments.data or []),
            _("Please tell us about your previous spine surgery."),
        )
        valid &= self._check_pain_scores()
        return valid

    def _check_pain_scores(self) -> bool:
        """The pain scores of the region's areas are required, and at its worst an area's pain
        is not lower than right now. The other areas' scores are not asked (the page without
        scripts shows them all) and are ignored: ``submit_request`` does not store them."""
        region = self.spine_region.data
        if region not in instruments.REGION_CODES:
            return True  # the region's own message says what is missing
        valid = True
        for area in instruments.REGION_PAIN_AREAS[region]:
            now, worst = self.pain_fields(area)
            for field, message in (
                (now, _("Please rate this pain right now from 0 to 10.")),
                (worst, _("Please rate this pain at its worst from 0 to 10.")),
            ):
                if not field.errors and field.data not in PAIN_SCORES:
                    field.errors = [*field.errors, message]
                    valid = False
            # Only two scores from the scale compare; a refused score has its own message.
            scored = now.data in PAIN_SCORES and worst.data in PAIN_SCORES
            if scored and int(worst.data) < int(now.data):
                worst.errors = [
                    *worst.errors,
                    _("Your worst pain cannot be lower than your pain right now."),
                ]
                valid = False
        return valid

    def _is_minor(self) -> bool:
        born, today = self.date_of_birth.data, clinic_today()
        return bool(born and not self.date_of_birth.errors and _age_on(born, today) < ADULT_AGE)

    @staticmethod
    def _require_if(field: StringField, condition: bool, message: str) -> bool:
        if condition and not (field.data or "").strip():
            field.errors = [*field.errors, message]
            return False
        return True

    @staticmethod
    def _refuse_if(field: Field, condition: bool, message: str) -> bool:
        if condition:
            field.errors = [*field.errors, message]
            return False
        return True

    def _answer(self, answer: history.Answer) -> Any:
        """One history answer, read from its field by the answer's kind."""
        data = self[answer.name].data
        if answer.kind == history.MANY:
            return list(data or [])
        if answer.kind == history.SCORE:
            return int(data) if data in PAIN_SCORES else None  # None: an area not asked
        if answer.kind == history.YES_NO:
            return data == "yes"
        if answer.kind == history.TEXT:
            return (data or "").strip() or None
        return data or None

    def _section_answers(self, instrument: instruments.Instrument) -> dict[str, int | None]:
        return {
            key: int(field.data) if field.data else None
            for key, field in zip(
                instrument.section_keys, self.section_fields(instrument), strict=True
            )
        }

    def to_submission(self, locale: str) -> RequestSubmission:
        """The validated answers as plain data for ``submit_request``."""

        def yes(field: RadioField) -> bool:
            return field.data == "yes"

        def text(field: StringField) -> str | None:
            value = (field.data or "").strip()
            return value or None

        return RequestSubmission(
            submission_token=self.submission_token.data,
            locale=locale,
            full_name=self.full_name.data.strip(),
            date_of_birth=self.date_of_birth.data,
            guardian_name=text(self.guardian_name),
            email=self.email.data.strip(),
            phone=self.phone.e164,
            preferred_contact=self.preferred_contact.data,
            answers={answer.name: self._answer(answer) for answer in history.ANSWERS},
            odi_answers=self._section_answers(instruments.ODI),
            ndi_answers=self._section_answers(instruments.NDI),
            red_flags=red_flags_answered(self),
            preferred_days=sorted(int(day) for day in self.preferred_days.data or []),
            preferred_time_of_day=self.preferred_time_of_day.data or "any",
            earliest_date=self.earliest_date.data,
            contact_consent=bool(self.contact_consent.data),
            followup_consent=bool(self.followup_consent.data),
            slot=self.slot_choice(),
        )


# Each red-flag question is a field of the first step, and travels with the request form as a
# hidden answer (the step's answers, so the request stores what the patient said there).
for _flag in triage.ASKED:
    setattr(RedFlagForm, f"red_{_flag.code}", _yes_no(_flag.question))
    setattr(RequestForm, f"red_{_flag.code}", _yes_no(_flag.question))
del _flag
