"""The patient's request form. Forms check shape; ``services.submit_request`` enforces rules."""

from __future__ import annotations

import secrets
from datetime import date

import phonenumbers
from flask import current_app, request
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import (
    SelectChoice,
    BooleanField,
    DateField,
    EmailField,
    FieldList,
    Form,
    FormField,
    HiddenField,
    RadioField,
    SelectMultipleField,
    StringField,
    TelField,
    TextAreaField,
    ValidationError,
)
from wtforms.validators import DataRequired, Email, InputRequired, Length, Optional
from wtforms.widgets import CheckboxInput, ListWidget

from booking.documents.storage import DocumentRejected, check_upload
from booking.patients import history
from booking.patients.services import DocumentUpload, RequestSubmission
from booking.timeutil import clinic_today

ADULT_AGE = 18


def options(pairs: list[tuple[str, object]]) -> list[SelectChoice]:
    """WTForms choices from (value, label) pairs."""
    return [SelectChoice(value, label) for value, label in pairs]  # type: ignore[arg-type]


YES_NO = options([("yes", _l("Yes")), ("no", _l("No"))])
PAIN_SCALE = options([(str(n), str(n)) for n in range(11)])


class MultiCheckboxField(SelectMultipleField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


def _yes_no(label: str) -> RadioField:
    return RadioField(
        label, choices=YES_NO, validators=[InputRequired(_l("Please answer yes or no."))]
    )


def _age_on(born: date, today: date) -> int:
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


class DocumentForm(Form):
    file = FileField(_l("File"))
    description = StringField(
        _l("What is it? (optional)"),
        validators=[Optional(), Length(max=200)],
        description=_l("For example: MRI report, lumbar spine, March 2026"),
    )

    def validate_file(self, field: FileField) -> None:
        upload = field.data
        if not upload or not upload.filename:
            return
        limit = current_app.config["MAX_DOCUMENT_MB"] * 1024 * 1024
        try:
            check_upload(upload.stream, limit)
        except DocumentRejected as exc:
            raise ValidationError(str(exc)) from None


class RequestForm(FlaskForm):
    submission_token = HiddenField()

    # About you
    full_name = StringField(
        _l("Full name"),
        validators=[DataRequired(_l("Please enter your full name.")), Length(max=200)],
        render_kw={"autocomplete": "name"},
    )
    date_of_birth = DateField(
        _l("Date of birth"),
        validators=[DataRequired(_l("Please enter your date of birth as day, month and year."))],
        render_kw={"autocomplete": "bday"},
    )
    guardian_name = StringField(
        _l("Parent or guardian's full name"),
        validators=[Optional(), Length(max=200)],
        description=_l("Required if the patient is under 18."),
    )
    email = EmailField(
        _l("Email address"),
        validators=[
            DataRequired(_l("Please enter your email address.")),
            Email(_l("Please enter a valid email address, like name@example.com."),
                  check_deliverability=False),
            Length(max=254),
        ],
        render_kw={"autocomplete": "email"},
    )
    phone = TelField(
        _l("Phone number"),
        validators=[DataRequired(_l("Please enter a phone number.")), Length(max=40)],
        description=_l("Include the country code if it is not a local number, e.g. +49 30 1234567."),
        render_kw={"autocomplete": "tel"},
    )
    preferred_contact = RadioField(
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
    pain_side = RadioField(_l("Which side?"), choices=options(history.PAIN_SIDES), validators=[Optional()])
    pain_duration = RadioField(
        _l("How long have you had this pain?"),
        choices=options(history.PAIN_DURATIONS),
        validators=[InputRequired(_l("Please tell us how long you have had this pain."))],
    )
    pain_now = RadioField(
        _l("Pain right now"),
        choices=PAIN_SCALE,
        validators=[InputRequired(_l("Please rate your pain right now from 0 to 10."))],
        description=_l("0 means no pain, 10 the worst pain imaginable."),
    )
    pain_worst = RadioField(
        _l("Pain at its worst in the last week"),
        choices=PAIN_SCALE,
        validators=[InputRequired(_l("Please rate your worst pain from 0 to 10."))],
        description=_l("0 means no pain, 10 the worst pain imaginable."),
    )
    radiating_pain = _yes_no(_l("Does the pain spread into your arm or leg?"))
    numbness = _yes_no(_l("Do you have numbness or tingling?"))
    weakness = _yes_no(_l("Do you have weakness in an arm or leg?"))
    diagnoses = MultiCheckboxField(
        _l("Has a doctor told you what it is?"), choices=options(history.DIAGNOSES), validators=[Optional()]
    )
    diagnosis_other = StringField(
        _l("Other diagnosis"), validators=[Optional(), Length(max=200)]
    )
    treatments = MultiCheckboxField(
        _l("Treatment you have already had"), choices=options(history.TREATMENTS), validators=[Optional()]
    )
    surgery_details = TextAreaField(
        _l("About your previous spine surgery"),
        validators=[Optional(), Length(max=1000)],
        description=_l("What was done, and when."),
    )
    imaging = MultiCheckboxField(
        _l("Scans you have already had"), choices=options(history.IMAGING), validators=[Optional()]
    )
    imaging_when = StringField(
        _l("When were the scans done?"),
        validators=[Optional(), Length(max=200)],
        description=_l("For example: MRI in March 2026."),
    )
    medications = TextAreaField(
        _l("Medicines you take now"), validators=[Optional(), Length(max=1000)]
    )
    allergies = TextAreaField(_l("Allergies"), validators=[Optional(), Length(max=500)])
    blood_thinners = _yes_no(_l("Do you take blood thinners (anticoagulants)?"))
    diabetes = _yes_no(_l("Do you have diabetes?"))
    smoking = RadioField(
        _l("Do you smoke?"),
        choices=options(history.SMOKING),
        validators=[InputRequired(_l("Please tell us whether you smoke."))],
    )
    other_history = TextAreaField(
        _l("Anything else we should know about your health?"),
        validators=[Optional(), Length(max=2000)],
        description=_l("At most 2000 characters."),
    )

    # Red flags: each asked explicitly, so an unanswered question is never read as "no".
    red_bladder_bowel = _yes_no(history.RED_FLAGS[0][1])
    red_saddle_numbness = _yes_no(history.RED_FLAGS[1][1])
    red_progressive_weakness = _yes_no(history.RED_FLAGS[2][1])
    red_fever_weight_loss = _yes_no(history.RED_FLAGS[3][1])
    red_cancer_history = _yes_no(history.RED_FLAGS[4][1])
    red_serious_injury = _yes_no(history.RED_FLAGS[5][1])

    # Oswestry Disability Index: every section optional (a section may be skipped).
    odi_pain_intensity = RadioField(history.ODI_SECTIONS[0].title, validators=[Optional()])
    odi_personal_care = RadioField(history.ODI_SECTIONS[1].title, validators=[Optional()])
    odi_lifting = RadioField(history.ODI_SECTIONS[2].title, validators=[Optional()])
    odi_walking = RadioField(history.ODI_SECTIONS[3].title, validators=[Optional()])
    odi_sitting = RadioField(history.ODI_SECTIONS[4].title, validators=[Optional()])
    odi_standing = RadioField(history.ODI_SECTIONS[5].title, validators=[Optional()])
    odi_sleeping = RadioField(history.ODI_SECTIONS[6].title, validators=[Optional()])
    odi_sex_life = RadioField(history.ODI_SECTIONS[7].title, validators=[Optional()])
    odi_social_life = RadioField(history.ODI_SECTIONS[8].title, validators=[Optional()])
    odi_travelling = RadioField(history.ODI_SECTIONS[9].title, validators=[Optional()])

    documents = FieldList(FormField(DocumentForm), min_entries=1)

    # Preferred time
    preferred_days = MultiCheckboxField(
        _l("Days that suit you"), choices=options(history.WEEKDAYS), validators=[Optional()]
    )
    preferred_time_of_day = RadioField(
        _l("Time of day"), choices=options(history.TIME_OF_DAY), default="any", validators=[Optional()]
    )
    earliest_date = DateField(
        _l("Earliest date you could come"),
        validators=[Optional()],
        description=_l("Leave empty if any date is fine."),
    )

    # Consent
    privacy_consent = BooleanField(
        _l("I have read the privacy notice and agree that the clinic stores and uses my "
           "information to assess my request."),
        validators=[DataRequired(_l("Please confirm that you have read the privacy notice."))],
    )
    contact_consent = BooleanField(
        _l("I agree to be contacted about my request by email or phone."),
        validators=[DataRequired(_l("Please agree to be contacted, or we cannot reply."))],
    )

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        for section, field in zip(history.ODI_SECTIONS, self.odi_fields(), strict=True):
            field.choices = options([(str(i), text) for i, text in enumerate(section.statements)])
        while len(self.documents) < current_app.config["MAX_DOCUMENTS"]:
            self.documents.append_entry()
        if not self.submission_token.data:
            self.submission_token.data = secrets.token_urlsafe(32)
        # The earliest-date picker should not offer the past.
        self.earliest_date.render_kw = {"min": clinic_today().isoformat()}
        self.date_of_birth.render_kw = {**(self.date_of_birth.render_kw or {}),
                                        "max": clinic_today().isoformat()}

    def odi_fields(self) -> list[RadioField]:
        return [getattr(self, f"odi_{key}") for key in history.ODI_SECTION_KEYS]

    def red_flag_fields(self) -> list[RadioField]:
        return [getattr(self, f"red_{code}") for code, _label in history.RED_FLAGS]

    def validate_date_of_birth(self, field: DateField) -> None:
        today = clinic_today()
        if field.data >= today:
            raise ValidationError(_("Your date of birth must be in the past."))
        if field.data.year < 1900:
            raise ValidationError(_("Please check the year of your date of birth."))

    def validate_phone(self, field: TelField) -> None:
        region = current_app.config["DEFAULT_PHONE_REGION"]
        try:
            number = phonenumbers.parse(field.data, region)
        except phonenumbers.NumberParseException:
            number = None
        if number is None or not phonenumbers.is_valid_number(number):
            raise ValidationError(
                _("Please enter a valid phone number, including the country code if it is "
                  "not a local number.")
            )
        field.e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)

    def validate_pain_worst(self, field: RadioField) -> None:
        if self.pain_now.data and field.data and int(field.data) < int(self.pain_now.data):
            raise ValidationError(
                _("Your worst pain cannot be lower than your pain right now.")
            )

    def validate_earliest_date(self, field: DateField) -> None:
        if field.data and field.data < clinic_today():
            raise ValidationError(_("The earliest date cannot be in the past."))

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
        valid &= self._require_if(
            self.surgery_details,
            "spine_surgery" in (self.treatments.data or []),
            _("Please tell us about your previous spine surgery."),
        )
        # Count every file part posted, not only the rows the form offered, so an eleventh
        # file is refused rather than silently dropped.
        posted = [f for _key, f in request.files.items(multi=True) if f and f.filename]
        limit = current_app.config["MAX_DOCUMENTS"]
        if len(posted) > limit:
            self.form_errors.append(
                _("You can send at most %(n)d documents with one request.", n=limit)
            )
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

    def has_uploads(self) -> bool:
        return any(entry.form.file.data and entry.form.file.data.filename for entry in self.documents)

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
            pain_locations=list(self.pain_locations.data),
            pain_side=self.pain_side.data or None,
            pain_duration=self.pain_duration.data,
            pain_now=int(self.pain_now.data),
            pain_worst=int(self.pain_worst.data),
            radiating_pain=yes(self.radiating_pain),
            numbness=yes(self.numbness),
            weakness=yes(self.weakness),
            diagnoses=list(self.diagnoses.data or []),
            diagnosis_other=text(self.diagnosis_other),
            treatments=list(self.treatments.data or []),
            surgery_details=text(self.surgery_details),
            imaging=list(self.imaging.data or []),
            imaging_when=text(self.imaging_when),
            medications=text(self.medications),
            allergies=text(self.allergies),
            blood_thinners=yes(self.blood_thinners),
            diabetes=yes(self.diabetes),
            smoking=self.smoking.data,
            other_history=text(self.other_history),
            odi_answers={
                key: int(field.data) if field.data else None
                for key, field in zip(history.ODI_SECTION_KEYS, self.odi_fields(), strict=True)
            },
            red_flags={
                code for (code, _label), field in zip(
                    history.RED_FLAGS, self.red_flag_fields(), strict=True
                ) if yes(field)
            },
            documents=[
                DocumentUpload(
                    stream=entry.form.file.data.stream,
                    filename=entry.form.file.data.filename,
                    description=text(entry.form.description),
                )
                for entry in self.documents
                if entry.form.file.data and entry.form.file.data.filename
            ],
            preferred_days=sorted(int(day) for day in self.preferred_days.data or []),
            preferred_time_of_day=self.preferred_time_of_day.data or "any",
            earliest_date=self.earliest_date.data,
            contact_consent=bool(self.contact_consent.data),
        )
