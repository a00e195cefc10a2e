"""Dashboard forms: the queue's filters, appointment slots, status changes, notes, locations."""

from __future__ import annotations

import unicodedata
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from werkzeug.datastructures import MultiDict
from werkzeug.urls import iri_to_uri
from wtforms import (
    BooleanField,
    DateField,
    EmailField,
    HiddenField,
    SelectField,
    TelField,
    TextAreaField,
    TimeField,
    URLField,
    ValidationError,
)
from wtforms.validators import DataRequired, InputRequired, Length, Optional

from booking.dashboard.queries import (
    DATE_FIELDS,
    DATES_APPOINTMENT,
    DATES_RECEIVED,
    QueueFilters,
)
from booking.forms import (
    BaseForm,
    ChoiceField,
    ConfirmBox,
    EmailAddress,
    MultiCheckboxField,
    RepeatedTimeField,
    clinic_time,
    named_options,
    options,
    stripped,
    too_long,
    valid_phone,
)
from booking.outcomes.labels import PLAN_LABELS
from booking.requests import asks, history
from booking.requests.calls import OUTCOME_LABELS, CallOutcome
from booking.requests.models import RequestStatus, TriageLevel, folded
from booking.templating import isolated, naming
from booking.timeutil import (
    clinic_instant,
    clinic_instants,
    from_clinic_local,
    now_utc,
    to_clinic_tz,
)
from booking.urlargs import FIRST_YEAR, LAST_YEAR, date_arg, int_arg, text_arg

MAX_SEARCH = 100
MAX_JOIN_LINK = 500
MAX_RAISE_REASON = 1000


# The queue's choice of which date its From and To apply to, as its select offers it.
DATE_FIELD_LABELS = [
    (DATES_RECEIVED, _l("Date received")),
    (DATES_APPOINTMENT, _l("Appointment date")),
]


def queue_filters(args: MultiDict) -> QueueFilters:
    """The queue's filters from the URL. Values the page did not offer are ignored."""
    status = args.get("status", RequestStatus.REQUESTED.value)
    if status == "all" or status not in {s.value for s in RequestStatus}:
        status = None if status == "all" else RequestStatus.REQUESTED.value
    triage = args.get("triage")
    diagnosis = args.get("diagnosis")
    dates = args.get("dates")
    search = text_arg(args.get("q"), MAX_SEARCH)
    if search is not None and not _visible(folded(search)):
        # Accents on no letter fold away (``folded``): compared as the empty text, they matched
        # every patient under "search results"; marks that show nothing in the box matched
        # none. Either is no search at all.
        search = None
    return QueueFilters(
        status=status,
        triage=triage if triage in {t.value for t in TriageLevel} else None,
        diagnosis=diagnosis if diagnosis in {code for code, _ in history.DIAGNOSES} else None,
        specialist_id=int_arg(args.get("specialist")),
        date_from=date_arg(args.get("from")),
        date_to=date_arg(args.get("to")),
        dates=dates if dates in DATE_FIELDS else DATES_RECEIVED,
        search=search,
        unnotified=args.get("unnotified") == "1",
        unread=args.get("unread") == "1",
        page=int_arg(args.get("page"), maximum=100_000) or 1,
    )


def _visible(text: str) -> str:
    """``text`` without white space and the invisible formatting marks (zero-width spaces,
    direction marks, soft hyphens) a copied name may carry."""
    return "".join(ch for ch in text if not ch.isspace() and unicodedata.category(ch) != "Cf")


def _chosen_id(value: object) -> int | None:
    """A select's id, or None for its "Choose" option."""
    return None if value in ("", None) else int(value)  # type: ignore[call-overload]


class SeenState:
    """A status or appointment form's fingerprint of the request as the page showed it
    (``lifecycle.state_key``): the change is refused if the request changed since."""

    seen = HiddenField()


class SlotForm(SeenState, BaseForm):
    prefix = "slot"

    specialist = SelectField(
        _l("Specialist"),
        coerce=_chosen_id,
        validators=[InputRequired(_l("Please choose a specialist."))],
    )
    location = SelectField(
        _l("Location"),
        coerce=_chosen_id,
        validators=[InputRequired(_l("Please choose a location."))],
    )
    day = DateField(_l("Date"), validators=[DataRequired(_l("Please enter a date."))])
    start = TimeField(
        _l("Time"),
        validators=[DataRequired(_l("Please enter a time."))],
        description=_l("Clinic time."),
    )
    start_which = RepeatedTimeField(_l("Which of the two times?"))
    appointment_type = SelectField(
        _l("Appointment type"),
        coerce=_chosen_id,
        validators=[InputRequired(_l("Please choose the type of appointment."))],
    )
    message = TextAreaField(
        _l("Message sent with the appointment"),
        validators=[Optional(), Length(max=1000)],
        description=_l("Sent in the email. No medical details: email is not secure."),
    )

    starts_at: datetime | None = None  # the time chosen, in UTC, once the form validates

    def validate_day(self, field: DateField) -> None:
        # A date at the calendar's edge (year 1 or 9999) overflows when converted to UTC.
        if not FIRST_YEAR <= field.data.year <= LAST_YEAR:
            raise ValidationError(_("Please check the year of the date."))

    def validate_start(self, field: TimeField) -> None:
        # The patient is emailed the time: a time that has passed would tell them of an
        # appointment they can no longer come to. (The services take any time; it is staff
        # entering one here that must look ahead.)
        day = self.day.data
        if day is None or self.day.errors or field.data is None:
            return
        self.starts_at = clinic_time(day, field.data, self.start_which)
        if self.starts_at < now_utc():
            raise ValidationError(_("That time has passed. Please choose a time to come."))

    def validate(self, extra_validators: Any = None) -> bool:
        valid = super().validate(extra_validators)
        if self.start_which.choices and self.starts_at is None and self.start.errors:
            # The time entered is one the clocks repeat, and which of the two is not chosen:
            # the error belongs to the choice (the summary links to it, its radios are marked
            # invalid), not to the time, which is right as typed.
            self.start_which.errors = list(self.start.errors)
            self.start.errors = []
        return valid

    @property
    def fold(self) -> int:
        """1 for the second of a time the clocks' going back repeats, as chosen, else 0
        (``services.Slot.fold``). Once the form validates."""
        return clinic_instants(self.day.data, self.start.data).index(self.starts_at)

    def set_choices(self, specialists: list[Any], locations: list[Any], types: list[Any]) -> None:
        """The active specialists, locations and types, after a "Choose" option: nothing is
        chosen for the coordinator that they did not choose or the appointment has."""
        choose = [("", _("Choose…"))]
        self.specialist.choices = options(choose) + named_options(
            [(s.id, s.full_name) for s in specialists]
        )
        self.location.choices = options(choose) + named_options(
            [(loc.id, loc.display_name) for loc in locations]
        )
        self.appointment_type.choices = options(choose) + named_options(
            [(t.id, f"{t.display_name} ({t.duration_minutes} min)") for t in types]
        )

    def show_appointment(self, appointment: Any) -> None:
        """Fill in an appointment's time, specialist, place and type, to confirm or move it.
        One no longer offered (a specialist deactivated, a location closed) is left to choose,
        with a note saying why, rather than shown as another."""
        local = to_clinic_tz(appointment.starts_at)
        self.day.data, self.start.data = local.date(), local.time()
        instants = clinic_instants(local.date(), local.time())
        if len(instants) > 1:
            self.start_which.offer(instants, chosen=appointment.starts_at)
        for field, value, gone in (
            (self.specialist, appointment.specialist_id, _SPECIALIST_GONE),
            (self.location, appointment.location_id, _LOCATION_GONE),
            (self.appointment_type, appointment.appointment_type_id, _TYPE_GONE),
        ):
            if value is None:  # none recorded (an appointment type deleted): choose one
                continue
            if any(choice.value == value for choice in field.choices):
                field.data = value
            else:
                # Isolated: a right-to-left name took the comma after it into its run.
                field.description = naming(str(gone[1]), name=isolated(gone[0](appointment)))


# What the slot form says of an appointment's specialist, place or type no longer offered:
# how to name it, and the note.
_SPECIALIST_GONE = (
    lambda appointment: appointment.specialist.full_name,
    _l("%(name)s, the appointment's specialist, is no longer active: please choose another."),
)
_LOCATION_GONE = (
    lambda appointment: appointment.location.display_name,
    _l("%(name)s, the appointment's location, is closed: please choose another."),
)
_TYPE_GONE = (
    lambda appointment: appointment.appointment_type.display_name,
    _l("%(name)s, the appointment's type, is no longer offered: please choose another."),
)


class UnreachedBox:
    """For an emergency or urgent request whose patient nobody reached (``unreached``), a
    box saying so, to be ticked: declining, cancelling or marking no-show ends the call-back
    target and the escalation (``services._close`` refuses it unticked). Other requests'
    forms have no such field, so a posted one is ignored."""

    unreached = ConfirmBox(
        _l(
            "The patient has not been reached about their urgent symptoms: close the request anyway"
        ),
        summary=_l("Tick the box to confirm that nobody has reached the patient."),
        # The service's refusal, in the same words.
        validators=[
            DataRequired(
                _l(
                    "Nobody has reached this patient about their urgent symptoms: no call "
                    "that reached them is logged. Call them first, or tick the box to close "
                    "the request anyway."
                )
            )
        ],
        description=_l(
            "Closing it stops the call-back target and the escalation to the on-call address. "
            "A patient without an email address is told nothing unless someone calls them."
        ),
    )

    def __init__(self, *args: object, unreached: bool = False, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        if not unreached:
            del self.unreached

    @property
    def close_unreached(self) -> bool:
        """Staff ticked the box (only offered, so only true, for an unreached request)."""
        return self.unreached is not None and bool(self.unreached.data)


MAX_CLOSE_MESSAGE = 1000
DECLINE_REASON_MISSING = _l(
    "Please give the reason for declining: the email tells the patient why the clinic cannot "
    "see them, and what they can do instead."
)


class CloseForm(UnreachedBox, SeenState, BaseForm):
    """Declining or cancelling, with the box of an unreached request (``UnreachedBox``).

    A decline emailed to the patient (``declining``) must say why: its email only says the
    clinic cannot see them, and a patient turned away without a reason does not know what to
    do next. A cancellation's message stays optional: most are the patient's own (asked by
    phone), who knows why; the clinic cancelling a visit says so in the box's help."""

    prefix = "close"

    message = TextAreaField(
        _l("Message sent with the decline or cancellation"),
        validators=[Optional(), Length(max=MAX_CLOSE_MESSAGE)],
        description=_l("Sent in the email. No medical details: email is not secure."),
    )

    def __init__(self, *args: object, declining: bool = False, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        if declining:
            self.message.validators = [
                DataRequired(DECLINE_REASON_MISSING),
                Length(max=MAX_CLOSE_MESSAGE),
            ]
            self.message.flags.required = True

    def offer(self, *, decline: bool, cancel: bool) -> None:
        """Label the message for the actions the page offers with it, and ask for a decline's
        reason before the help the page gave it: required outright when declining is the only
        action; beside a cancellation, for the decline only (neither "(optional)" nor
        required: its help says)."""
        if not decline:
            self.message.label.text = _("Message sent with the cancellation")
            return
        if not cancel:
            self.message.label.text = _("Message sent with the decline")
        self.message.flags.required = not cancel
        self.message.flags.conditional = cancel
        reason = (
            _(
                "Required to decline: say why the clinic cannot see the patient, and what they "
                "can do instead."
            )
            if cancel
            else _("Say why the clinic cannot see the patient, and what they can do instead.")
        )
        self.message.description = f"{reason} {self.message.description}"


class CompleteForm(SeenState, BaseForm):
    """Completing a request records the plan decided (``booking.outcomes``)."""

    prefix = "complete"

    plan = SelectField(
        _l("Plan decided"),
        choices=options([("", _l("Choose the plan")), *PLAN_LABELS]),
        validators=[DataRequired(_l("Please choose the plan decided."))],
    )
    procedure_date = DateField(
        _l("Procedure date"),
        validators=[Optional()],
        description=_l("If a procedure is planned: follow-ups count from it."),
    )


class ProcedureDateForm(BaseForm):
    """Correcting (or adding) the procedure date after completion: the operation was
    postponed or brought forward. ``shown`` is the date the page showed
    (``outcomes.services.procedure_key``)."""

    prefix = "procedure"

    shown = HiddenField()
    procedure_date = DateField(
        _l("New procedure date"),
        validators=[DataRequired(_l("Please enter the procedure date."))],
        description=_l(
            "Follow-up questionnaires not yet sent count from it; those already sent are kept."
        ),
    )


class DeceasedForm(BaseForm):
    """Marking the patient deceased: the box is the confirmation step (it cannot be undone
    from the page, and it ends every follow-up invitation)."""

    confirm = BooleanField(
        _l("I have checked that this patient has died"),
        validators=[DataRequired(_l("Please tick the box to confirm."))],
    )


class ActionForm(FlaskForm):
    """An action with nothing to fill in: the CSRF token only."""


class NewLinkForm(ActionForm):
    """ "Send a new link", confirmed: it ends every link the patient holds, so the record's
    first click only opens a box saying so, whose button sends ``confirm``. A post without
    it (a record page from before the box, still open in a tab) does nothing."""

    confirm = HiddenField()

    @property
    def confirmed(self) -> bool:
        return self.confirm.data == "yes"


class ReviewedForm(FlaskForm):
    """ "Mark as reviewed": the "information received" mark the page showed (``received``),
    so a mark set since (the patient answered again) is not cleared unseen."""

    received = HiddenField()

    def received_at(self) -> datetime | None:
        """The mark the page showed; None when it carried none (or not a time)."""
        try:
            return datetime.fromisoformat(self.received.data or "")
        except ValueError:
            return None


class StatusForm(UnreachedBox, SeenState, FlaskForm):
    """Marking no-show: the token, the state seen and, for an emergency or urgent request
    whose patient nobody reached, the box saying so (``UnreachedBox``): a missed visit of
    that patient is when the clinic must keep calling, so it is never closed by a slip."""


class ResendForm(BaseForm):
    """Send the patient's failed emails again, to the address as shown or as corrected."""

    email = EmailField(
        _l("Patient's email address"),
        validators=[
            DataRequired(_l("Please enter the patient's email address.")),
            EmailAddress(_l("Please enter a valid email address.")),
            Length(max=254),
        ],
        description=_l("Correct it if it was mistyped: the patient's record changes too."),
    )


class ContactForm(SeenState, BaseForm):
    """The patient's email address and phone number, corrected as staff learnt them (on a
    call), checked as the patient's own form checks them; ``shown`` is the fingerprint of
    the ones the page showed (``services.contact_key``)."""

    prefix = "contact"

    shown = HiddenField()
    email = EmailField(
        _l("Email address"),
        validators=[
            # A patient who left none (an emergency call-back) may be given one, or not.
            Optional(),
            EmailAddress(_l("Please enter a valid email address, like name@example.com.")),
            too_long(254),
        ],
        filters=[stripped],
        description=_l(
            "A new address ends every private link sent so far: the patient is emailed a "
            "new one there, with any email still waiting to go. The old address is told of "
            "the change, with no link."
        ),
    )
    phone = TelField(
        _l("Phone number"),
        validators=[DataRequired(_l("Please enter a phone number.")), too_long(40)],
        description=_l("Include the country code if it is not a local number."),
    )

    def __init__(self, *args: Any, email_required: bool = False, **kwargs: Any) -> None:
        """``email_required``: the patient has an address, which is corrected here, never
        removed (``services.correct_contact`` refuses that too)."""
        super().__init__(*args, **kwargs)
        if email_required:
            self.email.validators = [
                DataRequired(_l("Please enter the patient's email address.")),
                *self.email.validators[1:],
            ]
            self.email.flags.required = True

    def validate_phone(self, field: TelField) -> None:
        field.e164 = valid_phone(field.data)


class JoinLinkForm(SeenState, BaseForm):
    """A video visit's link to join it, copied from the clinic's video service."""

    link = URLField(
        _l("Link to join the video visit"),
        validators=[
            DataRequired(_l("Please enter the link.")),
            Length(max=MAX_JOIN_LINK, message=_l("Please enter a link of at most 500 characters.")),
        ],
        description=_l(
            "From the clinic's video service, starting with https://. The patient is emailed "
            "it now, with an updated calendar file, and it is in their reminders and on their "
            "private page."
        ),
    )

    def validate_link(self, field: URLField) -> None:
        """A whole https address: the patient opens it from an email, so nothing that would
        open anything else (another scheme, a name and password in it, spaces)."""
        value = (field.data or "").strip()
        try:
            parts = urlsplit(value)
        except ValueError:  # e.g. an unclosed "[" where an IPv6 address would be
            parts = urlsplit("")
        if (
            parts.scheme != "https"
            or not parts.hostname
            or "." not in parts.hostname
            or parts.username is not None
            or any(c.isspace() for c in value)
        ):
            raise ValidationError(_("Please enter the whole link, starting with https://."))
        # As sent in emails and calendar files: ASCII (a host in IDNA, the rest
        # percent-encoded), whose length is what is stored.
        try:
            value = iri_to_uri(value)
        except (ValueError, UnicodeError):
            raise ValidationError(
                _("Please enter the whole link, starting with https://.")
            ) from None
        if len(value) > MAX_JOIN_LINK:
            raise ValidationError(_("Please enter a link of at most 500 characters."))
        field.data = value


RAISE_LABELS = {
    TriageLevel.URGENT: _l("Urgent: call the patient back today"),
    TriageLevel.EMERGENCY: _l("Emergency: call the patient back at once"),
}


class RaiseTriageForm(SeenState, BaseForm):
    """Raising the request's triage level (``services.raise_triage``): only the levels above
    its own are offered (``levels``), with staff's reason; ``shown`` is the level the page
    showed, so a raise made meanwhile by a colleague is not made again unseen."""

    prefix = "raise"

    shown = HiddenField()
    level = ChoiceField(
        _l("New triage level"),
        validators=[InputRequired(_l("Please choose the new triage level."))],
    )
    reason = TextAreaField(
        _l("Why (the new symptoms, and how the patient told you)"),
        validators=[
            DataRequired(_l("Please write why the triage level is raised.")),
            too_long(MAX_RAISE_REASON),
        ],
        description=_l(
            "On the timeline, like a note: not shown or sent to the patient, never in the "
            "alert email; a copy of their data they ask for includes it. The clinic's inbox "
            "is alerted, and the call-back target counts from now."
        ),
    )

    def __init__(self, *args: Any, levels: list[TriageLevel] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.level.choices = options([(level.value, RAISE_LABELS[level]) for level in levels or []])


class NoteForm(BaseForm):
    text = TextAreaField(
        _l("Internal note"),
        validators=[DataRequired(_l("Please write the note.")), Length(max=5000)],
        description=_l(
            "Not shown or sent to the patient; a copy of their data they ask for (their right "
            "of access) includes it. Write what you would be content for them to read."
        ),
    )


class CallbackForm(BaseForm):
    """A call to the patient: what came of it, when (empty: now) and an optional note."""

    prefix = "call"

    outcome = ChoiceField(
        _l("What came of the call"),
        choices=options([(o.value, OUTCOME_LABELS[o]) for o in CallOutcome]),
        validators=[InputRequired(_l("Please choose what came of the call."))],
    )
    day = DateField(_l("Date of the call"), validators=[Optional()])
    at = TimeField(
        _l("Time of the call"),
        validators=[Optional()],
        description=_l("Clinic time. Leave the date and time empty for a call just made."),
    )
    note = TextAreaField(
        _l("Note on the call"),
        validators=[Optional(), Length(max=2000)],
        description=_l(
            "Not shown or sent to the patient; a copy of their data they ask for (their right "
            "of access) includes it. Write what you would be content for them to read."
        ),
    )

    def validate(self, extra_validators: object = None) -> bool:
        valid = super().validate(extra_validators)
        # "Other (see the note)" with no note logged a call that pointed at nothing: the
        # timeline said only "Other", and nobody could tell what came of it. (Here, not in a
        # validate_note: the note's Optional() stops its chain when it is empty.)
        if self.outcome.data == CallOutcome.OTHER.value and not (self.note.data or "").strip():
            self.note.errors = [
                *self.note.errors,
                _("Please say in the note what came of the call."),
            ]
            return False
        return valid

    def validate_day(self, field: DateField) -> None:
        if field.data is not None and not FIRST_YEAR <= field.data.year <= LAST_YEAR:
            raise ValidationError(_("Please check the year of the date."))
        # (A date with the time left empty: the time's own check never runs, Optional stops
        # it, and the call was logged silently as made now.)
        time_left_empty = not (self.at.raw_data and self.at.raw_data[0])
        if field.data is not None and time_left_empty:
            raise ValidationError(_("Please enter both the date and the time, or neither."))

    def validate_at(self, field: TimeField) -> None:
        if (self.day.data is None) != (field.data is None):
            raise ValidationError(_("Please enter both the date and the time, or neither."))
        # The hour the clocks skip in spring: read as an hour later, it was stored silently as
        # another time than the one entered.
        if (
            field.data is not None
            and not self.day.errors
            and clinic_instant(self.day.data, field.data) is None
        ):
            raise ValidationError(
                _("That time does not exist on that day because of a clock change.")
            )

    def called_at(self) -> datetime | None:
        """The call's time in UTC; None when left empty (now). A time the clocks' going back
        repeats (01:30 twice) is the later of the two unless that is still to come: it was
        read as the first, so a call made the second time round, after a request that arrived
        then, was refused as before the request, or stored an hour early (a response time an
        hour better than it was). The later is the cautious reading of a response time."""
        if self.day.data is None or self.at.data is None:
            return None
        instants = clinic_instants(self.day.data, self.at.data)
        past = [instant for instant in instants if instant <= now_utc() + timedelta(minutes=5)]
        return max(past) if past else from_clinic_local(self.day.data, self.at.data)


class AskForm(BaseForm):
    """Ask the patient for what is missing (``booking.requests.asks``)."""

    items = MultiCheckboxField(_l("What the patient should send"), validators=[Optional()])
    question = TextAreaField(
        _l("A question for the patient"),
        validators=[Optional(), Length(max=asks.QUESTION_MAX)],
        description=_l(
            "The patient reads it on their private page; the email only says that something is "
            "needed."
        ),
    )

    def __init__(
        self, *args: object, items: list[asks.Item] | None = None, **kwargs: object
    ) -> None:
        super().__init__(*args, **kwargs)
        items = asks.checklist() if items is None else items
        self.items.choices = [(item.code, item.label) for item in items]

    def validate(self, extra_validators: object = None) -> bool:
        valid = super().validate(extra_validators)
        if valid and not self.items.data and not (self.question.data or "").strip():
            self.items.errors = [
                _("Please tick what the patient should send, or write a question.")
            ]
            return False
        return valid
