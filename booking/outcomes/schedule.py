"""When each follow-up time point falls due: pure functions of dates (no app, no database).

A time point is written "<n>w" (weeks) or "<n>m" (calendar months), counted from the procedure
date when there is one, else from the day of the consultation. The invitation goes out at
``SEND_AT`` clinic time on that day, so it arrives in the morning whatever the season: the
clinic-local day and hour are converted to UTC with the time zone's rules of that day (a
clock change between the visit and the follow-up moves the UTC time, not the local one).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from booking.timeutil import add_months

POINT_RE = re.compile(r"^([1-9][0-9]?)([wm])$")
DEFAULT_SCHEDULE = ("6w", "3m", "12m")
SEND_AT = time(9, 0)
# The longest time point allowed: registries follow patients for up to 10 years, but a
# questionnaire link must not outlive the clinic's records by much.
MAX_DAYS = 5 * 366


class BadPoint(ValueError):  # noqa: N818 - reads better at the call sites
    pass


@dataclass(frozen=True, order=True)
class Point:
    days_hint: int  # for ordering: roughly how many days after the start
    code: str

    @property
    def amount(self) -> int:
        return int(self.code[:-1])

    @property
    def unit(self) -> str:
        return self.code[-1]


def parse_point(code: str) -> Point:
    match = POINT_RE.fullmatch(code.strip().lower())
    if match is None:
        raise BadPoint(code)
    amount, unit = int(match[1]), match[2]
    days = amount * 7 if unit == "w" else round(amount * 30.44)
    if days > MAX_DAYS:
        raise BadPoint(code)
    return Point(days, f"{amount}{unit}")


def parse_schedule(text: str) -> list[str]:
    """ "6w, 3m, 12m" -> ["6w", "3m", "12m"], in time order, without repeats."""
    points = {parse_point(part) for part in text.split(",") if part.strip()}
    if not points:
        raise BadPoint(text)
    return [point.code for point in sorted(points)]


def due_day(start: date, code: str) -> date:
    point = parse_point(code)
    if point.unit == "w":
        return start + timedelta(weeks=point.amount)
    return add_months(start, point.amount)


def due_at(start: date, code: str, tz: ZoneInfo) -> datetime:
    """The UTC moment the invitation for ``code`` is due: ``SEND_AT`` clinic time that day."""
    return datetime.combine(due_day(start, code), SEND_AT, tzinfo=tz).astimezone(UTC)


def start_of(consulted_on: date, procedure_date: date | None) -> date:
    """The schedule counts from the procedure, when there is one."""
    return procedure_date if procedure_date is not None else consulted_on


def answered_before_start(
    answered_at: datetime, consulted_on: date, procedure_date: date | None, tz: ZoneInfo
) -> bool:
    """An answer given before the day the schedule counts from (``start_of``, in clinic time)
    is no result of that time point: the "6 weeks" questionnaire answered, then the operation
    postponed by staff correcting the procedure date, was answered before the operation.
    The one rule the results, the registry export and the record page all go by."""
    return answered_at.astimezone(tz).date() < start_of(consulted_on, procedure_date)
