"""The forms' common ground: ``BaseForm`` (and ``SubForm`` for a form nested in another) with
the clean-text rules every text field follows, and the shared choice fields.

Forms check shape (types, lengths, required); the services enforce the rules.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time
from types import SimpleNamespace
from typing import Any, ClassVar

import phonenumbers
from babel import support
from email_validator import EmailNotValidError, validate_email
from flask import current_app, render_template, request
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from markupsafe import Markup
from werkzeug.datastructures import MultiDict
from wtforms import (
    BooleanField,
    DateTimeField,
    DecimalField,
    FloatField,
    Form,
    HiddenField,
    IntegerField,
    PasswordField,
    RadioField,
    SelectChoice,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.fields.core import Field, UnboundField
from wtforms.i18n import messages_path
from wtforms.utils import unset_value
from wtforms.validators import Length, Optional, ValidationError
from wtforms.widgets import CheckboxInput, ListWidget

from booking.timeutil import (
    END_OF_DAY,
    clinic_date,
    clinic_instants,
    from_clinic_local,
    to_clinic_tz,
)

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


def single_line_text(value: str) -> str:
    """A one-line answer posted outside a form's fields (a box per listed item), checked as
    every one-line field is: a ValueError with the field's message if it holds a refused
    character."""
    return _single_line_text(value)


def _multi_line_text(value: Any) -> Any:
    value = _as_text(value)
    if not value:
        return value
    # A browser sends each line break as CR LF but counts it as one character against the
    # box's maxlength: as one, so a text the box took is not refused as too long.
    value = value.replace("\r\n", "\n").replace("\r", "\n")
    return _refuse_if(value, MULTI_LINE_REFUSED_RE, MULTI_LINE_MESSAGE)


# A text longer than its field takes, said as a person would (WTForms' own: "Field cannot be
# longer than 2000 characters."); the answer stays in the box to shorten.
TOO_LONG = _l("Please shorten this to %(max)d characters or fewer (it has %(length)d).")


def too_long(most: int) -> Length:
    """A field's length limit with ``TOO_LONG`` as its message."""
    return Length(max=most, message=TOO_LONG)


# An address with letters outside ASCII before the @ (josé@ejemplo.es) needs SMTPUTF8, which
# the mail library never uses: no email would ever reach it. Accents after the @ are fine.
ACCENTED_LOCAL_PART = _l(
    "Our emails cannot reach an address with accents or other special letters before the @. "
    "Please enter an address without them."
)


class AccentedLocalPartError(EmailNotValidError):
    """An address with letters outside ASCII before the @ (``check_email_address``)."""


def check_email_address(address: str) -> None:
    """The one rule for an address the clinic sends email to, for the forms (``EmailAddress``)
    and the address settings checked at start-up alike, so the two cannot drift apart: the
    shape as ``email_validator`` reads it, with no DNS look-up (a form must not wait on one,
    and a clinic's domain may not resolve where the app starts), and nothing outside ASCII
    before the @, which needs SMTPUTF8, a thing the mail library never uses (accents after
    the @ are fine). Raises ``EmailNotValidError`` saying why (``AccentedLocalPartError`` for the
    letters)."""
    local = address.rpartition("@")[0]
    if local and not local.isascii():
        raise AccentedLocalPartError(
            "The part before the @ has letters outside ASCII, which emails cannot be sent to."
        )
    validate_email(address, check_deliverability=False, allow_smtputf8=False)


class EmailAddress:
    """A validator for every field whose address the clinic sends email to: the address must
    pass ``check_email_address``; refused, the field shows ``message``, or
    ``ACCENTED_LOCAL_PART`` for letters with accents before the @."""

    def __init__(self, message: Any) -> None:
        self.message = message

    def __call__(self, form: Form, field: Any) -> None:
        try:
            check_email_address(field.data or "")
        except AccentedLocalPartError as exc:
            raise ValidationError(str(ACCENTED_LOCAL_PART)) from exc
        except EmailNotValidError as exc:
            raise ValidationError(self.message) from exc

    def check(self, address: str | None) -> None:
        """The same checks on an address given without a form (``flask create-admin``):
        raises ``ValidationError`` with the message a form would show."""
        self(Form(), SimpleNamespace(data=address))


def stripped(value: Any) -> Any:
    """A filter for an email address: the spaces around it go. A browser trims an email box
    itself, but not every client does (a paste from a spreadsheet or a signature, a form
    filled by an assistive tool), and the address check would refuse the spaces."""
    return value.strip() if isinstance(value, str) else value


def has_visible_text(value: str | None) -> bool:
    """Whether a name shows anything: zero-width and other format characters alone do not."""
    return any(ch.isprintable() and not ch.isspace() for ch in value or "")


# A web or email address in a name. The clinic's emails greet the patient by the name typed,
# and anyone may type someone else's email address: a "name" such as "Erika. Your scan needs
# review: sign in at https://..." would put the writer's link into a stranger's inbox, in the
# clinic's email. No person's name holds one (an email address typed into the name box by
# mistake gets the same message, which helps).
ADDRESS_IN_NAME_RE = re.compile(r"://|www\.|@", re.IGNORECASE)
NAME_ONLY = _l("Please enter a name only, without a web or email address.")


def name_only(_form: object, field: Field) -> None:
    """A validator for a patient's (or guardian's) name: no web or email address in it
    (``ADDRESS_IN_NAME_RE``)."""
    if isinstance(field.data, str) and ADDRESS_IN_NAME_RE.search(field.data):
        raise ValidationError(NAME_ONLY)


def visible_or_empty(value: Any) -> Any:
    """A filter for an answer other than a name (one-line, or the multi-line one asked for
    when another answer needs it: the previous surgery): one of white space, zero-width and
    other format characters alone shows nothing, so it is no answer (the field's own
    required-or-optional rule then speaks), as a name of nothing visible is no name
    (``has_visible_text``). Such characters inside visible text stay, as in a name: a joiner
    is part of an emoji or of a word in some scripts."""
    if not isinstance(value, str) or has_visible_text(value):
        return value
    return ""


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


def named_options(pairs: list[tuple[str, object]]) -> list[SelectChoice]:
    """``options`` whose labels are names someone typed (a specialist's, a location's, an
    appointment type's): each option is ``dir="auto"``. An option holds text only, so the name
    cannot be in a ``<bdi>``; without it a right-to-left name takes its direction from the
    page and reads wrongly with the digits or parentheses beside it."""
    return [
        SelectChoice(value, label, render_kw={"dir": "auto"})  # type: ignore[arg-type]
        for value, label in pairs
    ]


class BaseForm(FlaskForm):
    """Every page's form: CSRF-protected (Flask-WTF), with the clean-text rules."""

    # The prefix a form always has where it is used ("contact": its fields are posted as
    # "contact-email"): every instance gets it, and ``typed_answers`` labels a posted field
    # by the form with that prefix. Empty: none, or one the view gives.
    prefix: ClassVar[str] = ""

    class Meta(CleanTextMeta):
        pass

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("prefix", self.prefix)
        super().__init__(*args, **kwargs)


class SubForm(Form):
    """A form nested in another (``FormField``, ``FieldList``): the clean-text rules, and the
    CSRF token of the form it sits in."""

    class Meta(CleanTextMeta):
        pass


# A one-time key as ``SubmissionKeyField`` makes them (``secrets.token_urlsafe(32)``): anything
# else posted did not come from us, and must not reach a 64-character column.
SUBMISSION_KEY_RE = re.compile(r"[A-Za-z0-9_-]{32,64}")


class SubmissionKeyField(HiddenField):
    """A form's one-time key: made when the form is first shown, then posted back with it and
    kept through every page that shows it again. The row its send stores keeps it (unique),
    so a second send of one page (a double click, Back and send again) stores nothing twice,
    and a send whose commit's answer was lost can be looked for by it."""

    def process(self, formdata: Any, data: Any = unset_value, extra_filters: Any = None) -> None:
        super().process(formdata, data, extra_filters)
        if not isinstance(self.data, str) or not SUBMISSION_KEY_RE.fullmatch(self.data):
            self.data = secrets.token_urlsafe(32)


def _subclasses(cls: type) -> Iterator[type]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


# What a person types: text boxes of every kind, dates, times and numbers. Not a choice, a
# box, a hidden value, a password or a file.
TYPED_FIELDS = (StringField, DateTimeField, IntegerField, DecimalField, FloatField)
UNTYPED_FIELDS = (HiddenField, PasswordField)


@dataclass(frozen=True)
class TypedField:
    """A field where a person types, as every form declaring its name declares it."""

    labels: tuple[Any, ...]  # each form's label (lazy strings)
    multi_line: bool


def _typed(field: UnboundField) -> bool:
    kind = field.field_class
    # A one-time code is worthless a minute later, and a secret while it lasts.
    one_time = (field.kwargs.get("render_kw") or {}).get("autocomplete") == "one-time-code"
    return issubclass(kind, TYPED_FIELDS) and not issubclass(kind, UNTYPED_FIELDS) and not one_time


def typed_fields() -> dict[str, TypedField]:
    """The fields where a person types, by name, over every form, and by the name they are
    posted with ("contact-email") over the forms declaring that prefix (``BaseForm.prefix``):
    a name some form declares as anything else (a choice, a hidden value, a password) is left
    out. Not cached: forms are also made as they are first asked for
    (``admin.forms.names_form``), and it is read only for the rare post of a signed-out
    page."""
    declared: dict[str, list[UnboundField]] = {}
    for form in (*_subclasses(BaseForm), *_subclasses(SubForm)):
        prefix = getattr(form, "prefix", "")
        for name, field in vars(form).items():
            if isinstance(field, UnboundField):
                declared.setdefault(name, []).append(field)
                if prefix:
                    declared.setdefault(f"{prefix}-{name}", []).append(field)
    return {
        name: TypedField(
            labels=tuple(
                field.args[0] if field.args else field.kwargs.get("label") for field in fields
            ),
            multi_line=any(issubclass(field.field_class, TextAreaField) for field in fields),
        )
        for name, fields in declared.items()
        if all(_typed(field) for field in fields)
    }


@dataclass(frozen=True)
class TypedAnswer:
    label: str | None  # the field's label, when every form naming the field agrees on it
    text: str
    multi_line: bool


def typed_answers(data: MultiDict[str, str]) -> list[TypedAnswer]:
    """What was typed in a post (``data``, the request's form), in the order sent: every text,
    date, time or number field's answer, labelled; one posted with a form's declared prefix
    ("contact-email") by that form's field, any other (a nested form's "document-note") by
    its own name. Empty ones, choices, hidden values (the form's token, a page's proof),
    passwords and files are left out."""
    fields = typed_fields()
    answers = []
    for key, value in data.items(multi=True):
        field = fields.get(key) or fields.get(key.rsplit("-", 1)[-1])
        if field is None or not value.strip():
            continue
        labels = {str(label) for label in field.labels if label is not None}
        label = labels.pop() if len(labels) == 1 else None
        answers.append(TypedAnswer(label, value, field.multi_line))
    return answers


# A value the form did not offer (an old page, a tampered post) gets a request the patient can
# act on, not WTForms' "Not a valid choice". Compared with None, not by truth: the truth of a
# lazy string translates it, for every choice field of every form.
CHOOSE_SHOWN = _l("Please choose one of the options shown.")
CHOOSE_FROM_SHOWN = _l("Please choose from the options shown.")


class _RefusesSpaces:
    """A choice field refusing a value of nothing but spaces: no browser sends one (a
    tampered post). ``Optional()`` reads it as no answer and clears the field's "not one of
    the choices" error, so it would be stored, or read as a number (a 500)."""

    raw_data: list | None
    errors: Any
    invalid_choice_message: str

    def post_validate(self, form: Any, validation_stopped: bool) -> None:
        spaces = any(
            isinstance(value, str) and value and not value.strip() for value in self.raw_data or ()
        )
        if spaces and not self.errors:
            raise ValidationError(self.invalid_choice_message)


class ChoiceField(_RefusesSpaces, RadioField):
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


class MultiCheckboxField(_RefusesSpaces, SelectMultipleField):
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


class ConfirmBox(BooleanField):
    """A box ticked to confirm a statement, its label the whole statement. Left unticked,
    the error summary's link says ``summary`` ("Tick the box to ..."), not the statement
    followed by its message: a summary lists what to fix in a few words."""

    def __init__(
        self,
        label: str | None = None,
        validators: list | None = None,
        *,
        summary: str,
        **kwargs: object,
    ) -> None:
        super().__init__(label, validators, **kwargs)
        self.summary = summary


def phone_e164(text: str, *, valid: bool = True) -> str | None:
    """A phone number as people write it (in the clinic's country, ``DEFAULT_PHONE_REGION``,
    without its code) in E.164; None when it is no valid number (``valid``), or not even a
    possible one (``valid=False``: a search, which may hold part of a number)."""
    try:
        number = phonenumbers.parse(text, current_app.config["DEFAULT_PHONE_REGION"])
    except phonenumbers.NumberParseException:
        return None
    check = phonenumbers.is_valid_number if valid else phonenumbers.is_possible_number
    if not check(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def valid_phone(text: str) -> str:
    """A phone number typed into a form, in E.164 (``phone_e164``), or a ValidationError
    saying how to write it: for every field whose number the clinic calls."""
    number = phone_e164(text)
    if number is None:
        raise ValidationError(
            _(
                "Please enter a valid phone number, including the country code if it is "
                "not a local number."
            )
        )
    return number


# A clinic date and time staff enter ------------------------------------------------------------


class RepeatedTimeField(RadioField):
    """Which of the two times a clinic wall-clock time names in the hour the clocks' going
    back repeats (02:30 CEST, then 02:30 CET an hour later). It offers nothing, and the page
    shows nothing, until ``clinic_time`` finds the time entered in that hour; each choice's
    value is the time with its UTC offset ("2026-10-25T02:30+02:00"), so a choice made for
    another date or time than the one now entered matches neither and is asked again."""

    def __init__(self, label: str | None = None, **kwargs: Any) -> None:
        super().__init__(label, validators=[Optional()], choices=[], **kwargs)
        # Shown only when it must be answered: not marked "(optional)".
        self.flags.conditional = True

    def pre_validate(self, form: Any) -> None:
        # ``clinic_time`` reads the choice against the date and time entered.
        pass

    def offer(self, instants: tuple[datetime, ...], chosen: datetime | None = None) -> None:
        """Offer the two times, labelled by the order and the zone (``occurrence_label``);
        ``chosen`` (an appointment's own time, shown to move it) is ticked."""
        self.choices = [(_occurrence_value(i), occurrence_label(i, instants)) for i in instants]
        if chosen is not None:
            self.data = _occurrence_value(chosen)


def _occurrence_value(instant: datetime) -> str:
    return to_clinic_tz(instant).isoformat(timespec="minutes")


def occurrence_label(instant: datetime, instants: tuple[datetime, ...]) -> str:
    """A repeated time as staff choose it: "02:30 (first, summer time, CEST)", "02:30
    (second, winter time, CET)"; a repeat that is no change to or from summer time (a zone
    changing its standard offset) names the order and the zone only."""
    local = to_clinic_tz(instant)
    values = {"time": local.strftime("%H:%M"), "zone": local.tzname()}
    first, second = (to_clinic_tz(i) for i in instants)
    seasons = bool(first.dst()) and not second.dst()
    if instant == instants[0]:
        if seasons:
            return _("%(time)s (first, summer time, %(zone)s)", **values)
        return _("%(time)s (first, %(zone)s)", **values)
    if seasons:
        return _("%(time)s (second, winter time, %(zone)s)", **values)
    return _("%(time)s (second, %(zone)s)", **values)


def clinic_time(day: date, at: time, which: RepeatedTimeField) -> datetime:
    """The UTC instant of a clinic date and time staff entered, or a ValidationError for the
    time's field. A time the clocks skip does not exist; a time they repeat names two
    instants, and the form asks which (``which`` then offers both) rather than pick one: an
    appointment or a working window an hour off is booked and emailed without anyone
    noticing.

    An end of 24:00 (``END_OF_DAY``) is the instant ``day`` ends, the next day's first
    midnight (``from_clinic_local``): never skipped nor repeated, however the clocks change."""
    if at == END_OF_DAY:
        return from_clinic_local(day, at)
    instants = clinic_instants(day, at)
    values = {"time": at.strftime("%H:%M"), "day": clinic_date(day, "long")}
    if not instants:
        raise ValidationError(
            _(
                "%(time)s on %(day)s does not exist in the clinic's time zone: the clocks "
                "go forward that night. Please enter a time before or after the skipped "
                "hour.",
                **values,
            )
        )
    if len(instants) == 1:
        return instants[0]
    which.offer(instants)
    for instant in instants:
        if which.data == _occurrence_value(instant):
            return instant
    raise ValidationError(
        _(
            "%(time)s happens twice on %(day)s: the clocks go back an hour that night. "
            "Please choose which of the two you mean.",
            **values,
        )
    )


# A destructive staff action (close, deactivate, delete, reset) is asked about first: its
# button's post, without CONFIRMED, changes nothing and answers with a page saying what will
# happen, whose own button sends the same post again with CONFIRMED. No JavaScript: the page
# is a plain form, and its post carries the page's CSRF token like any other.
CONFIRMED = "confirmed"


def confirmed() -> bool:
    """Whether this post comes from the confirmation page (``confirmation_page``)."""
    return request.form.get(CONFIRMED) == "1"


def confirmation_page(
    *,
    title: str,
    button: str,
    cancel_url: str,
    consequences: list[str] | tuple[str, ...] = (),
    warnings: list[str] | tuple[str, ...] = (),
    listed: list[tuple[str, str]] | tuple[tuple[str, str], ...] = (),
) -> str:
    """The page asking to confirm this post's action (``title``: the question; ``button``:
    the action's words). Its form posts the same fields again to the same address, with
    CONFIRMED; ``warnings`` are what must not be missed (patients left with nothing to book,
    appointments still to come), ``listed`` what they are about, as (text, link) pairs under
    them (the appointments to move, each linked to its record). A ``title`` in markup (a name
    isolated in it) is the browser tab's title without its tags."""
    fields = [
        (name, value)
        for name, value in request.form.items(multi=True)
        if name not in (CONFIRMED, current_app.config.get("WTF_CSRF_FIELD_NAME", "csrf_token"))
    ]
    return render_template(
        "staff/confirm.html",
        title=title,
        tab_title=title.striptags() if isinstance(title, Markup) else title,
        button=button,
        cancel_url=cancel_url,
        consequences=consequences,
        warnings=warnings,
        listed=listed,
        fields=fields,
        confirmed_name=CONFIRMED,
    )
