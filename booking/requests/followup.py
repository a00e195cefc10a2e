"""Staff follow-through on emergency and urgent requests: how long each has waited for its
call-back against the clinic's targets.

An emergency request must be acknowledged (a call logged on the dashboard) within
``EMERGENCY_TARGET_MINUTES`` of clock time, at any hour: the patient was told to seek
emergency care now, and the on-call address is emailed once when the target passes
(``booking.requests.escalation``). An urgent one within ``URGENT_TARGET_WORKING_HOURS`` of the
clinic's working time (``CLINIC_WORKING_DAYS`` and ``CLINIC_WORKING_HOURS``, clinic time, less
the public holidays of ``CLINIC_HOLIDAYS``): a request sent on Friday evening is due on Monday
morning, not on Saturday night, and one sent on Christmas Eve after the days of Christmas.

The maths are pure functions of their arguments (no app, no database), tested on their own;
``targets()`` and ``clinic_hours()`` read the settings.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from flask import current_app
from flask_babel import gettext as _

from booking.openinghours import clinic_closed_days, working_hours_setting
from booking.requests.models import TriageLevel
from booking.timeutil import END_OF_DAY, clinic_tz, wall_clock

DAY = timedelta(days=1)
WEEK = timedelta(days=7)


@dataclass(frozen=True)
class ClinicHours:
    """The clinic's working days (0 = Monday) and daily opening, in its time zone."""

    days: frozenset[int]
    opens: time
    closes: time
    tz: ZoneInfo
    closed: frozenset[date] = frozenset()  # public holidays and other days the clinic is shut

    def __post_init__(self) -> None:
        if not self.days or not self.days <= set(range(7)):
            raise ValueError("the clinic needs working days from 0 (Monday) to 6 (Sunday)")
        if self.closes <= self.opens:
            raise ValueError("the clinic must close after it opens")

    def open_on(self, day: date) -> tuple[datetime, datetime] | None:
        """When the clinic opens and closes on ``day``, or None on a day off.

        In UTC: Python subtracts and adds two datetimes of one time zone by the clock face,
        blind to a clock change between them, so hours that span the night would count the
        23-hour March day as 24 (and a target added to its midnight would end an hour early).
        Between UTC times every sum and difference is real time."""
        if day.weekday() not in self.days or day in self.closed:
            return None
        # Closing at 24:00 is closing at the next midnight: open all day is open to its end.
        return wall_clock(day, self.opens, self.tz), wall_clock(day, self.closes, self.tz)

    def is_open(self, at: datetime) -> bool:
        """Whether ``at`` is within the clinic's working time."""
        span = self.open_on(at.astimezone(self.tz).date())
        return span is not None and span[0] <= at < span[1]

    @property
    def week(self) -> timedelta:
        """Working time in a whole week by the clock face: real time only for a week with no
        clock change in it (``working_time`` walks those that have one, day by day)."""
        return (_clock(self.closes) - _clock(self.opens)) * len(self.days)

    def same_offset(self, first: date, last: date) -> bool:
        """No clock change from the start of ``first`` to the end of ``last`` (clock changes
        are months apart: one that went and came back within a week does not happen)."""

        def offset(day: date) -> timedelta | None:
            return datetime.combine(day, time(), tzinfo=self.tz).utcoffset()

        return offset(first) == offset(last + DAY)


def _clock(at: time) -> timedelta:
    """A wall-clock time as the time since midnight by the clock face (24:00: a whole day)."""
    if at == END_OF_DAY:
        return DAY
    return datetime.combine(date.min, at) - datetime.min


@dataclass(frozen=True)
class Targets:
    emergency: timedelta  # clock time
    urgent: timedelta  # working time


@dataclass(frozen=True)
class Wait:
    """How long a request has waited for its call-back, against its target."""

    waited: timedelta
    target: timedelta
    due_at: datetime
    working_time: bool  # counted in the clinic's working hours (urgent), else clock time

    @property
    def overdue(self) -> bool:
        return self.waited >= self.target


def working_time(start: datetime, end: datetime, hours: ClinicHours) -> timedelta:
    """The clinic's working time between two aware datetimes (zero if ``end`` is earlier)."""
    if end <= start:
        return timedelta()
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    first = start.astimezone(hours.tz).date()
    last = end.astimezone(hours.tz).date()
    total = timedelta()
    # Whole weeks between the first and the last day count the same every week, unless the
    # clock changes in one: only the days at either end, and the weeks with a clock change,
    # are walked, however long the wait.
    weeks = max(0, (last - first).days - 1) // 7
    walked = [first, *_days(first + DAY + WEEK * weeks, last)]
    for week in range(weeks):
        week_first = first + DAY + WEEK * week  # seven days from any weekday
        week_last = week_first + WEEK - DAY
        if not hours.same_offset(week_first, week_last):
            walked += _days(week_first, week_last)
            continue
        total += hours.week
        for day in hours.closed:  # the working days this week counted that were closed
            if week_first <= day <= week_last and day.weekday() in hours.days:
                total -= hours.week / len(hours.days)
    for day in walked:
        opening = hours.open_on(day)
        if opening is not None:
            opens, closes = max(opening[0], start), min(opening[1], end)
            if closes > opens:
                total += closes - opens
    return total


def _days(start: date, last: date) -> list[date]:
    return [start + DAY * n for n in range((last - start).days + 1)]


def add_working_time(start: datetime, amount: timedelta, hours: ClinicHours) -> datetime:
    """The moment ``amount`` of working time has passed since ``start`` (aware, UTC).
    Added in UTC (``open_on``): four hours from midnight on the day the clocks go forward
    end four real hours later, not three."""
    start = start.astimezone(UTC)
    day = start.astimezone(hours.tz).date()
    remaining = amount
    while True:
        opening = hours.open_on(day)
        if opening is not None:
            opens = max(opening[0], start)
            if opening[1] > opens:
                if opens + remaining <= opening[1]:
                    return opens + remaining
                remaining -= opening[1] - opens
        day += DAY


def wait_of(
    level: TriageLevel,
    created_at: datetime,
    now: datetime,
    targets: Targets,
    hours: ClinicHours,
) -> Wait | None:
    """The wait of a request of ``level`` received at ``created_at``; None for routine ones
    (no call-back target)."""
    if level == TriageLevel.EMERGENCY:
        waited = max(now - created_at, timedelta())
        return Wait(waited, targets.emergency, created_at + targets.emergency, False)
    if level == TriageLevel.URGENT:
        return Wait(
            working_time(created_at, now, hours),
            targets.urgent,
            add_working_time(created_at, targets.urgent, hours),
            True,
        )
    return None


def targets() -> Targets:
    config = current_app.config
    return Targets(
        emergency=timedelta(minutes=config["EMERGENCY_TARGET_MINUTES"]),
        urgent=timedelta(hours=config["URGENT_TARGET_WORKING_HOURS"]),
    )


def clinic_hours() -> ClinicHours:
    """The clinic's working hours from ``CLINIC_WORKING_DAYS`` and ``CLINIC_WORKING_HOURS``
    ("08:00-18:00"), closed on the days ``clinic_closed_days`` gives (the public holidays of
    ``CLINIC_HOLIDAYS``, the dates of ``CLINIC_CLOSED_DAYS`` and the days an admin closed in
    the app: one query) from last year to next, as patients are offered no time on them."""
    config = current_app.config
    opens, closes = working_hours_setting(config["CLINIC_WORKING_HOURS"])
    year = datetime.now(UTC).year
    closed = clinic_closed_days(date(year - 1, 1, 1), date(year + 1, 12, 31))
    return ClinicHours(frozenset(config["CLINIC_WORKING_DAYS"]), opens, closes, clinic_tz(), closed)


def on_call_address() -> str:
    config = current_app.config
    return config["ON_CALL_EMAIL"] or config["STAFF_NOTIFICATION_EMAIL"]


def duration_label(value: timedelta) -> str:
    """A wait as staff read it: "42 min", "2 h 05 min"."""
    minutes = int(value.total_seconds() // 60)
    hours, minutes = divmod(minutes, 60)
    if not hours:
        return _("%(minutes)d min", minutes=minutes)
    return _("%(hours)d h %(minutes)02d min", hours=hours, minutes=minutes)


def wait_label(wait: Wait, *, reached: bool = False) -> str:
    """ "waiting 42 min, target 30 min" (urgent requests: in working hours); once a call
    reached the patient (``reached``: the wait ends at that call), "reached after 42 min,
    target 30 min", not "waiting", which would read as if they still were."""
    waited, target = duration_label(wait.waited), duration_label(wait.target)
    if reached and wait.working_time:
        return _(
            "reached after %(waited)s of working time, target %(target)s",
            waited=waited,
            target=target,
        )
    if reached:
        return _("reached after %(waited)s, target %(target)s", waited=waited, target=target)
    if wait.working_time:
        return _(
            "waiting %(waited)s of working time, target %(target)s", waited=waited, target=target
        )
    return _("waiting %(waited)s, target %(target)s", waited=waited, target=target)
