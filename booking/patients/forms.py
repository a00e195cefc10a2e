"""The patient's request form. Forms check shape; ``services.submit_request`` enforces rules."""

from __future__ import annotations

import re
import secrets
from datetime import date
from typing import Any

import phonenumbers
from babel import support
from flask import current_app, request
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import (
    BooleanField,
    DateField,
    EmailField,
    FieldList,
    Form,
    FormField,
    HiddenField,
    PasswordField,
    RadioField,
    SelectChoice,
    SelectMultipleField,
    StringField,
    TelField,
    TextAreaField,
    ValidationError,
)
from wtforms.i18n import messages_path
from wtforms.validators import DataRequired, Email, InputRequired, Length, Optional
from wtforms.widgets import CheckboxInput, ListWidget

from booking.documents.storage import DocumentRejected, check_upload
from booking.patients import history
from booking.patients.services import DocumentUpload, RequestSubmission
from booking.scheduling.availability import parse_slot_key
from booking.scheduling.services import SlotChoice
from booking.timeutil import clinic_today
from booking.urlargs import int_arg

ADULT_AGE = 18
# What ``secrets.token_urlsafe(32)`` makes; anything else posted as the token is replaced.
SUBMISSION_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{32,64}")
# Characters a text answer may not carry. Nobody types them, but a paste or a forged post can:
# PostgreSQL refuses NUL in text, a line break in a name or address makes the lines of an email
# that quotes it look like headers, and the embedding, override and isolate characters
# (U+202A-U+202E, U+2066-U+2069) make text display as something other than what is stored
# ("Trojan Source"). The marks U+200E, U+200F and U+061C stay: right-to-left text copied from
# other applications carries them, and they only set the direction of the neutral characters
# beside them, never reverse a run of text.
_C0_C1_AND_DEL = r"\x00-\x1f\x7f-\x9f"
_BIDI_CONTROLS = r"\u202a-\u202e\u2066-\u2069"
# Single-line fields: every control character, and the Unicode line and paragraph separators
# (line breaks to mail clients and to ``str.splitlines``).
SINGLE_LINE_REFUSED_RE = re.compile(rf"[{_C0_C1_AND_DEL}{_BIDI_CONTROLS}\u2028\u2029]")
# Multi-line fields keep tab, line feed and carriage return (a browser sends CR LF between
# lines) and the line and paragraph separators.
MULTI_LINE_REFUSED_RE = re.compile(rf"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f{_BIDI_CONTROLS}]")
SINGLE_LINE_MESSAGE = _l("Please remove the line breaks or invisible characters.")
MULTI_LINE_MESSAGE = _l(
    "Please remove the invisible characters: typing the text again instead of pasting it "
    "usually helps."
)


# WTForms' built-in messages per language (read-only once loaded, so safe to share).
_WTFORMS_TRANSLATIONS: dict[str, support.Translations] = {}


def _as_text(value: Any) -> Any:
    if value is None or isinstance(value, str):
        return value
    # A file posted under a text field's name (Flask-WTF merges files into the form data):
    # treat it as no answer rather than fail on it.
    return ""


def _refuse_if(value: str, refused: re.Pattern[str], message: Any) -> str:
    """``value``, or a ValueError with ``message`` (WTForms shows a filter's ValueError on the
    field) when it holds a refused character. An answer of white space alone (line breaks,
    say) is an empty answer: the field's own required-or-optional rule then speaks, and
    nothing of it is kept."""
    if refused.search(value) is None:
        return value
    if not value.strip():
        return ""
    raise ValueError(message)


def _single_line_text(value: Any) -> Any:
    value = _as_text(value)
    if not value:
        return value
    # A tab cannot be typed into a one-line box (the key moves to the next field), so it comes
    # from a paste, typically of a spreadsheet cell or a copied address where it parts words:
    # it shows as a space and cannot start a new line, so it becomes one rather than an error.
    return _refuse_if(value.replace("\t", " "), SINGLE_LINE_REFUSED_RE, SINGLE_LINE_MESSAGE)


def _multi_line_text(value: Any) -> Any:
    value = _as_text(value)
    if not value:
        return value
    return _refuse_if(value, MULTI_LINE_REFUSED_RE, MULTI_LINE_MESSAGE)


def has_visible_text(value: str | None) -> bool:
    """Whether a name shows anything: zero-width and other format characters alone do not."""
    return any(ch.isprintable() and not ch.isspace() for ch in value or "")


class CleanTextMeta:
    """Form ``Meta`` mixin: every visible text field refuses control and text-direction
    characters with a message on the field (a multi-line one keeps its line breaks and tabs),
    and WTForms' own messages come from a catalogue loaded once per language and process
    (Flask-WTF would read the catalogue file again for every form)."""

    def get_translations(self, form: Any) -> Any:
        if not current_app.config.get("WTF_I18N_ENABLED", True):
            return super().get_translations(form)  # type: ignore[misc]
        locale = str(get_locale() or "en")
        translations = _WTFORMS_TRANSLATIONS.get(locale)
        if translations is None:
            translations = _WTFORMS_TRANSLATIONS[locale] = support.Translations.load(
                messages_path(), [locale], domain="wtforms"
            )
        return translations

    def bind_field(self, form: Any, unbound_field: Any, options: dict[str, Any]) -> Any:
        field_class = unbound_field.field_class
        # Passwords are kept exactly as typed; hidden fields carry our own tokens and keys,
        # each read by a strict parser.
        if issubclass(field_class, StringField) and not issubclass(
            field_class, (HiddenField, PasswordField)
        ):
            multi_line = issubclass(field_class, TextAreaField)
            check = _multi_line_text if multi_line else _single_line_text
            # First, so the check sees what was sent, before any field's own filters.
            filters = (check, *unbound_field.kwargs.get("filters", ()))
            options = {**options, "filters": filters}
        return super().bind_field(form, unbound_field, options)  # type: ignore[misc]


def options(pairs: list[tuple[str, object]]) -> list[SelectChoice]:
    """WTForms choices from (value, label) pairs."""
    return [SelectChoice(value, label) for value, label in pairs]  # type: ignore[arg-type]


YES_NO = options([("yes", _l("Yes")), ("no", _l("No"))])
PAIN_SCALE = options([(str(n), str(n)) for n in range(11)])
PAIN_SCORES = frozenset(choice.value for choice in PAIN_SCALE)


# A value the form did not offer (an old page, a tampered post) gets a request the patient can
# act on, not WTForms' "Not a valid choice". Compared with None, not by truth: the truth of a
# lazy string translates it, for every choice field of every form.
CHOOSE_SHOWN = _l("Please choose one of the options shown.")
CHOOSE_FROM_SHOWN = _l("Please choose from the options shown.")


class ChoiceField(RadioField):
    def __init__(
        self,
        label: str | None = None,
        validators: list | None = None,
        invalid_choice_message: str | None = None,
        **kwargs: object,
    ) -> None:
        super().__init__(
            label,
            validators,
            invalid_choice_message=(
                CHOOSE_SHOWN if invalid_choice_message is None else invalid_choice_message
            ),
            **kwargs,
        )


class MultiCheckboxField(SelectMultipleField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()

    def __init__(
        self,
        label: str | None = None,
        validators: list | None = None,
        invalid_choice_message: str | None = None,
        **kwargs: object,
    ) -> None:
        super().__init__(
            label,
            validators,
            invalid_choice_message=(
                CHOOSE_FROM_SHOWN if invalid_choice_message is None else invalid_choice_message
            ),
            **kwargs,
        )


def _yes_no(label: str) -> ChoiceField:
    return ChoiceField(
        label,
        choices=YES_NO,
        validators=[InputRequired(_l("Please answer yes or no."))],
        invalid_choice_message=_l("Please answer yes or no."),
    )


def _pain_score(label: str, required_message: str) -> ChoiceField:
    return ChoiceField(
        label,
        choices=PAIN_SCALE,
        validators=[InputRequired(required_message)],
        invalid_choice_message=_l("Please choose a number from 0 to 10."),
        description=_l("0 means no pain, 10 the worst pain imaginable."),
    )


def _odi_section(index: int) -> ChoiceField:
    section = history.ODI_SECTIONS[index]
    return ChoiceField(
        section.title,
        # Lazy statements, translated when shown: one list serves every form.
        choices=options([(str(i), text) for i, text in enumerate(section.statements)]),
        validators=[Optional()],
        invalid_choice_message=_l("Please choose one of the statements."),
    )


def _age_on(born: date, today: date) -> int:
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


class DocumentForm(Form):
    class Meta(CleanTextMeta):
        pass

    file = FileField(_l("File"))
    description = StringField(
        _l("What is it?"),
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


def new_submission_token() -> str:
    """The one-time token a new form carries, so a second send of it stores nothing twice."""
    return secrets.token_urlsafe(32)


class DocumentRows(FieldList):
    """The request's document rows. Reading and checking a post uses only the rows it sent
    (``entries``, at least one); the empty rows up to ``MAX_DOCUMENTS`` are added the first
    time the rows are listed, which only a page showing the form does. A post that succeeds
    ends in a redirect and never builds the nine rows nobody filled in."""

    def _fill_up(self) -> None:
        limit = current_app.config["MAX_DOCUMENTS"]
        while len(self.entries) < limit:
            self.append_entry()
            _label_row(self.entries[-1], len(self.entries))

    def __iter__(self) -> Any:
        self._fill_up()
        return super().__iter__()

    def __len__(self) -> int:
        self._fill_up()
        return super().__len__()

    def __getitem__(self, index: int) -> Any:
        self._fill_up()
        return super().__getitem__(index)


def _label_row(entry: FormField, number: int) -> None:
    # Names the row in the error summary ("Document 2 file: ..."); the page shows "File"
    # inside the row's "Document 2" fieldset. Lazy: translated only if shown.
    entry.form.file.label.text = _l("Document %(n)d file", n=number)


class RequestStartForm(FlaskForm):
    """What differs between two new request forms: the CSRF and one-time submission tokens and
    the time picked on the previous step. A new form's page needs only this; its questions are
    the same for everyone and rendered once (see ``patients.views``)."""

    class Meta(CleanTextMeta):
        pass

    submission_token = HiddenField()
    # The time picked on the previous step (see booking.scheduling.availability.OpenSlot.key).
    appointment_type = HiddenField()
    slot = HiddenField(_l("Appointment time"))

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        token = self.submission_token.data
        if not isinstance(token, str) or not SUBMISSION_TOKEN_RE.fullmatch(token):
            # None on a new form; anything else did not come from us and must not reach the
            # database's 64-character column.
            self.submission_token.data = new_submission_token()

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


class RequestForm(RequestStartForm):
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
            Email(
                _l("Please enter a valid email address, like name@example.com."),
                check_deliverability=False,
            ),
            Length(max=254),
        ],
        render_kw={"autocomplete": "email"},
    )
    phone = TelField(
        _l("Phone number"),
        validators=[DataRequired(_l("Please enter a phone number.")), Length(max=40)],
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
    pain_side = ChoiceField(
        _l("Which side?"), choices=options(history.PAIN_SIDES), validators=[Optional()]
    )
    pain_duration = ChoiceField(
        _l("How long have you had this pain?"),
        choices=options(history.PAIN_DURATIONS),
        validators=[InputRequired(_l("Please tell us how long you have had this pain."))],
    )
    pain_now = _pain_score(
        _l("Pain right now"), _l("Please rate your pain right now from 0 to 10.")
    )
    pain_worst = _pain_score(
        _l("Pain at its worst in the last week"), _l("Please rate your worst pain from 0 to 10.")
    )
    radiating_pain = _yes_no(_l("Does the pain spread into your arm or leg?"))
    numbness = _yes_no(_l("Do you have numbness or tingling?"))
    weakness = _yes_no(_l("Do you have weakness in an arm or leg?"))
    diagnoses = MultiCheckboxField(
        _l("Has a doctor told you what it is?"),
        choices=options(history.DIAGNOSES),
        validators=[Optional()],
    )
    diagnosis_other = StringField(_l("Other diagnosis"), validators=[Optional(), Length(max=200)])
    treatments = MultiCheckboxField(
        _l("Treatment you have already had"),
        choices=options(history.TREATMENTS),
        validators=[Optional()],
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
    smoking = ChoiceField(
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

    documents = DocumentRows(FormField(DocumentForm), min_entries=1)

    # Preferred time
    preferred_days = MultiCheckboxField(
        _l("Days that suit you"), choices=options(history.WEEKDAYS), validators=[Optional()]
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

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        for number, entry in enumerate(self.documents.entries, start=1):
            _label_row(entry, number)
        # The earliest-date picker should not offer the past.
        today = clinic_today().isoformat()
        self.earliest_date.render_kw = {"min": today}
        self.date_of_birth.render_kw = {**(self.date_of_birth.render_kw or {}), "max": today}

    def odi_fields(self) -> list[RadioField]:
        return [getattr(self, f"odi_{key}") for key in history.ODI_SECTION_KEYS]

    def red_flag_fields(self) -> list[RadioField]:
        return [getattr(self, f"red_{code}") for code, _label in history.RED_FLAGS]

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
        region = current_app.config["DEFAULT_PHONE_REGION"]
        try:
            number = phonenumbers.parse(field.data, region)
        except phonenumbers.NumberParseException:
            number = None
        if number is None or not phonenumbers.is_valid_number(number):
            raise ValidationError(
                _(
                    "Please enter a valid phone number, including the country code if it is "
                    "not a local number."
                )
            )
        field.e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)

    def validate_pain_worst(self, field: RadioField) -> None:
        # Only two scores from the scale compare; a refused score has its own message.
        now, worst = self.pain_now.data, field.data
        if now not in PAIN_SCORES or worst not in PAIN_SCORES:
            return
        if int(worst) < int(now):
            raise ValidationError(_("Your worst pain cannot be lower than your pain right now."))

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
        return any(
            entry.form.file.data and entry.form.file.data.filename
            for entry in self.documents.entries
        )

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
                code
                for (code, _label), field in zip(
                    history.RED_FLAGS, self.red_flag_fields(), strict=True
                )
                if yes(field)
            },
            documents=[
                DocumentUpload(
                    stream=entry.form.file.data.stream,
                    filename=entry.form.file.data.filename,
                    description=text(entry.form.description),
                )
                for entry in self.documents.entries
                if entry.form.file.data and entry.form.file.data.filename
            ],
            preferred_days=sorted(int(day) for day in self.preferred_days.data or []),
            preferred_time_of_day=self.preferred_time_of_day.data or "any",
            earliest_date=self.earliest_date.data,
            contact_consent=bool(self.contact_consent.data),
            slot=self.slot_choice(),
        )
