"""Forms of the scheduling admin pages. They check shape and read clinic wall-clock input;
``booking.scheduling.admin_services`` enforces the scheduling rules."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    DateField,
    HiddenField,
    IntegerField,
    SelectField,
    StringField,
    SubmitField,
    TimeField,
    ValidationError,
)
from wtforms.validators import InputRequired, Length, NumberRange, Optional, StopValidation
from wtforms.widgets import TextInput

from booking.admin.forms import MAIN_NAME, NamesForm
from booking.forms import (
    BaseForm,
    ChoiceField,
    RepeatedTimeField,
    clinic_time,
    has_visible_text,
    named_options,
    options,
)
from booking.scheduling.admin_services import (
    DURATION_RANGE,
    RULE_RANGES,
    WEEKDAY_NAMES,
    BookingRules,
    HoursInput,
)
from booking.scheduling.models import VisitMode
from booking.scheduling.visits import MODE_LABELS
from booking.timeutil import END_OF_DAY, clinic_date, clinic_today, clock_text, from_clinic_local

# A time input sends HH:MM, or HH:MM:SS when the browser adds seconds.
TIME_FORMATS = ["%H:%M", "%H:%M:%S"]
# Exceptions may start a while ago (leave already under way) but not in another era: the
# conversion to UTC needs a real date, and a typo like 0226 should be caught here.
EARLIEST_DAYS_BACK = 366
LATEST_DAYS_AHEAD = 3 * 366
TOO_LONG = _l("Please use at most %(max)d characters.")


class WholeNumberField(IntegerField):
    """An integer field that reports unreadable input once, not also as out of range; spaces
    alone are no input (``InputRequired``'s message alone), not an unreadable number."""

    def process_formdata(self, valuelist: list[Any]) -> None:
        if valuelist and isinstance(valuelist[0], str) and not valuelist[0].strip():
            self.raw_data = [""]
            self.data = None
            return
        super().process_formdata(valuelist)

    def pre_validate(self, form: Any) -> None:
        if self.process_errors and self.raw_data and self.raw_data[0].strip():
            raise StopValidation()


def _number(label: str, name: str, description: str) -> WholeNumberField:
    low, high = RULE_RANGES[name]
    return WholeNumberField(
        label,
        validators=[
            InputRequired(_l("Please enter a number.")),
            NumberRange(low, high, _l("Please enter a number from %(min)s to %(max)s.")),
        ],
        invalid_value_message=_l("Please enter a whole number, like 15."),
        description=description,
    )


def _time(label: str, description: str | None = None, *, required: bool = True) -> TimeField:
    return TimeField(
        label,
        format=TIME_FORMATS,
        validators=[InputRequired(_l("Please enter a time."))] if required else [Optional()],
        invalid_value_message=_l("Please enter a time as hours and minutes, like 09:30."),
        description=description,
    )


class EndTimeField(TimeField):
    """An end time that may be 24:00, the end of the day (``END_OF_DAY``): a clinic or
    on-call service open round the clock works 00:00-24:00. A text box, as a browser's time
    input has no 24:00 (it empties one)."""

    widget = TextInput()

    def process_formdata(self, valuelist: list[Any]) -> None:
        typed = valuelist[0].strip() if valuelist and isinstance(valuelist[0], str) else ""
        if typed in ("24:00", "24:00:00"):
            self.data = END_OF_DAY
            return
        super().process_formdata(valuelist)

    def _value(self) -> str:
        if self.raw_data:
            return " ".join(self.raw_data)
        return clock_text(self.data) if self.data is not None else ""


def _end_time(label: str, description: str, *, required: bool = True) -> EndTimeField:
    return EndTimeField(
        label,
        format=TIME_FORMATS,
        validators=[InputRequired(_l("Please enter a time."))] if required else [Optional()],
        invalid_value_message=_l("Please enter a time as hours and minutes, like 09:30."),
        description=description,
        render_kw={"autocomplete": "off", "spellcheck": "false"},
    )


def _date(label: str) -> DateField:
    return DateField(
        label,
        validators=[InputRequired(_l("Please enter a date."))],
        invalid_value_message=_l("Please enter a date as year, month and day."),
    )


def _location() -> SelectField:
    return SelectField(
        _l("Location"),
        coerce=int,
        validators=[InputRequired(_l("Please choose a location."))],
        invalid_value_message=_l("Please choose one of the locations shown."),
        invalid_choice_message=_l("Please choose one of the locations shown."),
    )


def field_errors(form: FlaskForm) -> bool:
    """Whether the form, or any of its fields, carries an error (for the response status)."""
    return bool(form.form_errors) or any(field.errors for field in form)


class BookingRulesForm(FlaskForm):
    buffer_minutes = _number(
        _l("Buffer between appointments (minutes)"),
        "buffer_minutes",
        _l(
            "Kept free before and after each appointment of a specialist (no other appointment "
            "starts or ends within it). A longer buffer applies to appointments already booked "
            "too; a shorter one only to those booked from now on."
        ),
    )
    min_notice_hours = _number(
        _l("Minimum notice (hours)"),
        "min_notice_hours",
        _l("Patients can pick a time at least this long from now."),
    )
    horizon_days = _number(
        _l("Booking horizon (days)"),
        "horizon_days",
        _l("Patients can pick a time up to this many days ahead."),
    )
    cancel_notice_hours = _number(
        _l("Cancellation notice (hours)"),
        "cancel_notice_hours",
        _l("Patients can cancel online until this long before the appointment."),
    )
    submit = SubmitField(_l("Save the rules"))

    def rules(self) -> BookingRules:
        return BookingRules(
            buffer_minutes=self.buffer_minutes.data,
            min_notice_hours=self.min_notice_hours.data,
            horizon_days=self.horizon_days.data,
            cancel_notice_hours=self.cancel_notice_hours.data,
        )


def _duration(description: str | None = None) -> WholeNumberField:
    return WholeNumberField(
        _l("Duration (minutes)"),
        validators=[
            InputRequired(_l("Please enter the duration in minutes.")),
            NumberRange(*DURATION_RANGE, _l("Please enter a number from %(min)s to %(max)s.")),
        ],
        invalid_value_message=_l("Please enter a whole number of minutes, like 45."),
        description=description,
    )


class _AppointmentTypeFields(NamesForm):
    """An appointment type's names (``names_form`` adds the other languages'), duration and
    how its visits take place."""

    name = StringField(
        MAIN_NAME,
        validators=[InputRequired(_l("Please enter a name.")), Length(max=120, message=TOO_LONG)],
        description=_l("What patients choose, e.g. New-patient spine evaluation."),
    )
    duration_minutes = _duration()
    mode = ChoiceField(
        _l("How the visit takes place"),
        choices=options([(mode.value, label) for mode, label in MODE_LABELS.items()]),
        default=VisitMode.IN_PERSON.value,
        validators=[InputRequired(_l("Please choose how the visit takes place."))],
        description=_l(
            "Patients booked for a video or phone visit are not sent to the location's "
            "address: their emails, pages and calendar files say how they take part."
        ),
    )

    def validate_name(self, field: StringField) -> None:
        if not has_visible_text(field.data):
            raise ValidationError(_("Please enter a name."))

    def visit_mode(self) -> VisitMode:
        return VisitMode(self.mode.data)


class AppointmentTypeEditForm(_AppointmentTypeFields):
    duration_minutes = _duration(
        _l(
            "An appointment already booked keeps its times; moved to another time, it takes "
            "the new duration."
        )
    )
    # The type as the page showed it (``admin_services.type_mark``): a post from a page
    # older than another admin's change does not undo it.
    shown = HiddenField()


class AppointmentTypeForm(_AppointmentTypeFields):
    submit = SubmitField(_l("Add the appointment type"))


class WorkingHoursForm(FlaskForm):
    weekday = SelectField(
        _l("Day of the week"),
        coerce=int,
        choices=options(list(enumerate(WEEKDAY_NAMES))),  # type: ignore[arg-type]
        validators=[InputRequired(_l("Please choose a day of the week."))],
        invalid_value_message=_l("Please choose one of the days shown."),
        invalid_choice_message=_l("Please choose one of the days shown."),
    )
    location = _location()
    start_time = _time(_l("Start time"))
    end_time = _end_time(_l("End time"), _l("24-hour, like 18:00; 24:00 to work until midnight."))
    submit = SubmitField(_l("Add the hours"))

    def set_locations(self, locations: list[Any]) -> None:
        self.location.choices = named_options([(loc.id, loc.display_name) for loc in locations])

    def hours(self) -> HoursInput:
        return HoursInput(
            weekday=self.weekday.data,
            location_id=self.location.data,
            start_time=self.start_time.data,
            end_time=self.end_time.data,
        )


class _PeriodForm(BaseForm):
    """A period given as clinic dates and times; ``starts_at`` / ``ends_at`` (UTC) are set
    once it validates."""

    start_day = _date(_l("From (date)"))
    start_time = _time(_l("From (time)"))
    start_which = RepeatedTimeField(_l("Which of the two start times?"))
    end_day = _date(_l("Until (date)"))
    # 24:00 ends the day "Until (date)" names: the next day's midnight.
    end_time = _end_time(_l("Until (time)"), _l("24-hour, like 18:00; 24:00 for midnight."))
    end_which = RepeatedTimeField(_l("Which of the two end times?"))
    reason = StringField(_l("Reason"), validators=[Optional(), Length(max=200, message=TOO_LONG)])

    starts_at: datetime | None = None
    ends_at: datetime | None = None

    def validate(self, extra_validators: Any = None) -> bool:
        valid = super().validate(extra_validators)
        first = clinic_today() - timedelta(days=EARLIEST_DAYS_BACK)
        last = clinic_today() + timedelta(days=LATEST_DAYS_AHEAD)
        for day_field in (self.start_day, self.end_day):
            if (
                day_field.data is not None
                and not day_field.errors
                and not first <= day_field.data <= last
            ):
                day_field.errors.append(
                    _(
                        "Please enter a date from %(first)s to %(last)s.",
                        first=clinic_date(first),
                        last=clinic_date(last),
                    )
                )
                valid = False
        if (
            self.start_day.data is not None
            and self.end_day.data is not None
            and not self.start_day.errors
            and not self.end_day.errors
            and self.end_day.data < self.start_day.data
        ):
            # Said at the date typed wrong: for whole days the time boxes are left empty, and
            # the service would name the end time, a box the admin never filled in.
            self.end_day.errors.append(_("The end must be after the start."))
            valid = False
        self.starts_at, self.ends_at = self._period()
        return valid and self.starts_at is not None and self.ends_at is not None

    def _period(self) -> tuple[datetime | None, datetime | None]:
        """The period's start and end (UTC), each None when it cannot be read."""
        return (
            self._instant(self.start_day, self.start_time, self.start_which),
            self._instant(self.end_day, self.end_time, self.end_which),
        )

    @staticmethod
    def _instant(
        day_field: DateField, time_field: TimeField, which: RepeatedTimeField
    ) -> datetime | None:
        if day_field.errors or time_field.errors or day_field.data is None:
            return None
        if time_field.data is None:
            return None
        try:
            return clinic_time(day_field.data, time_field.data, which)
        except ValidationError as error:
            # A repeated time with no choice made: the error is the choice's (its radios
            # offered), not the time's, which is right as typed.
            (which if which.choices else time_field).errors.append(str(error))
            return None


class TimeOffForm(_PeriodForm):
    """Time off from a time to a time, or whole days: with both times left empty it runs
    from the start of the first day to the end of the last (clinic time)."""

    start_time = _time(
        _l("From (time)"), _l("Leave both times empty for whole days."), required=False
    )
    end_time = _end_time(
        _l("Until (time)"), _l("24-hour, like 18:00; 24:00 for midnight."), required=False
    )
    submit = SubmitField(_l("Add the time off"))

    @property
    def whole_days(self) -> bool:
        return self.start_time.raw_data in (None, [], [""]) and self.end_time.raw_data in (
            None,
            [],
            [""],
        )

    def _period(self) -> tuple[datetime | None, datetime | None]:
        if not self.whole_days:
            for field in (self.start_time, self.end_time):
                if field.data is None and not field.errors:
                    field.errors.append(_("Please enter both times, or neither for whole days."))
            return super()._period()
        first, last = self.start_day.data, self.end_day.data
        if first is None or last is None or self.start_day.errors or self.end_day.errors:
            return None, None
        # Midnight to midnight, clinic time. In a zone whose clocks skip midnight itself, the
        # skipped midnight reads as the day's first hour (zoneinfo's fold=0), as it should.
        return from_clinic_local(first, time()), from_clinic_local(last + timedelta(days=1), time())


class ExtraHoursForm(_PeriodForm):
    location = _location()
    submit = SubmitField(_l("Add the extra hours"))

    def set_locations(self, locations: list[Any]) -> None:
        self.location.choices = named_options([(loc.id, loc.display_name) for loc in locations])


class ClinicClosureForm(BaseForm):
    """A day the whole clinic closes (``booking.scheduling.closures`` refuses a past day and
    one closed already)."""

    day = _date(_l("Day"))
    reason = StringField(
        _l("Reason"),
        validators=[
            InputRequired(_l("Please enter a reason.")),
            Length(max=200, message=TOO_LONG),
        ],
        description=_l("For staff, e.g. Team training. Patients are not told it."),
    )
    submit = SubmitField(_l("Close the clinic on this day"))

    def validate_day(self, field: DateField) -> None:
        last = clinic_today() + timedelta(days=LATEST_DAYS_AHEAD)
        if field.data is not None and field.data > last:
            raise ValidationError(_("Please enter a date until %(last)s.", last=clinic_date(last)))

    def validate_reason(self, field: StringField) -> None:
        if not has_visible_text(field.data):
            raise ValidationError(_("Please enter a reason."))
