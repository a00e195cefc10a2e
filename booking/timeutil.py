"""Time: stored in UTC, shown in the clinic's time zone.

Every conversion between UTC and the clinic's local time happens here.
"""

from __future__ import annotations

import calendar
import functools
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from babel import Locale, UnknownLocaleError, dates
from babel.core import get_global
from babel.dates import get_timezone_location
from flask import current_app
from flask_babel import get_locale
from sqlalchemy import DateTime
from sqlalchemy.types import TypeDecorator


def now_utc() -> datetime:
    """The current time, aware, in UTC. Pass it as a column default (``default=now_utc``)."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """An aware UTC datetime on every database.

    SQLite hands back naive datetimes even for ``timezone=True`` columns while PostgreSQL hands
    back aware ones; this type makes both aware and refuses naive values on the way in.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given for a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def clinic_tz() -> ZoneInfo:
    return ZoneInfo(current_app.config["CLINIC_TIMEZONE"])


def to_clinic_tz(value: datetime) -> datetime:
    return value.astimezone(clinic_tz())


# "24:00" as the end of opening or working hours (ISO 8601): the midnight that ends the day.
# Python's time and a database's Time column have no 24:00, so it is kept as the day's last
# instant, which sorts and compares after every other time of the day (an end after any start,
# overlaps found as for any other end), and is read and shown as 24:00 (``read_clock``,
# ``clock_text``) and turned into the next midnight by ``wall_clock``.
END_OF_DAY = time.max


def read_clock(text: str, *, end: bool = False) -> time:
    """A 24-hour wall-clock time as typed ("8:00", "18:00", "07:30:00"); with ``end``, also
    "24:00", the end of the day (``END_OF_DAY``). Raises ValueError for anything else."""
    text = text.strip()
    if end and text in ("24:00", "24:00:00"):
        return END_OF_DAY
    hours, colon, rest = text.partition(":")
    if not colon or not hours.isdigit() or len(hours) > 2:
        raise ValueError(f"{text!r} is not a time of day")
    return time.fromisoformat(f"{int(hours):02d}:{rest}")


def clock_text(at: time) -> str:
    """A wall-clock time as the pages write one, "08:00"; the end of the day as "24:00"."""
    return "24:00" if at == END_OF_DAY else at.strftime("%H:%M")


def wall_clock(day: date, at: time, tz: ZoneInfo) -> datetime:
    """A wall-clock time in ``tz``, as an aware UTC datetime; ``END_OF_DAY`` (24:00) is the
    midnight after ``day``, so hours to 24:00 hold the last slot of the day, and on the day
    the clocks change they hold 23 or 25 real hours."""
    if at == END_OF_DAY:
        day, at = day + timedelta(days=1), time()
    return datetime.combine(day, at, tzinfo=tz).astimezone(UTC)


def from_clinic_local(day: date, at: time) -> datetime:
    """A wall-clock time at the clinic, as an aware UTC datetime (``wall_clock``)."""
    return wall_clock(day, at, clinic_tz())


def clinic_instant(day: date, at: time) -> datetime | None:
    """The UTC instant of a clinic wall-clock time, or None when that time does not exist
    (the hour skipped when the clocks go forward). A time that happens twice (clocks going
    back) is read as the first of the two (``clinic_instants`` gives both)."""
    instants = clinic_instants(day, at)
    return instants[0] if instants else None


def clinic_instants(day: date, at: time) -> tuple[datetime, ...]:
    """Every UTC instant a clinic wall-clock time names, earliest first: none in the hour
    skipped when the clocks go forward, two in the hour repeated when they go back, one
    otherwise."""
    tz = clinic_tz()
    found: list[datetime] = []
    for fold in (0, 1):
        instant = datetime.combine(day, at, tzinfo=tz).replace(fold=fold).astimezone(UTC)
        back = instant.astimezone(tz)
        if (back.date(), back.time()) == (day, at) and instant not in found:
            found.append(instant)
    return tuple(sorted(found))


def clinic_today() -> date:
    return now_utc().astimezone(clinic_tz()).date()


def add_months(day: date, months: int) -> date:
    """The same day of the month ``months`` later, or the month's last day (31 Jan + 1 m is
    28 or 29 Feb)."""
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def months_later(moment: datetime, months: int) -> datetime:
    """The end of a period of ``months`` that began at ``moment`` (EU Regulation 1182/71,
    art. 3: the last minute of the day with the same date ``months`` later in the clinic's
    calendar, or of that month's last day when it has no such date)."""
    day = add_months(to_clinic_tz(moment).date(), months)
    return from_clinic_local(day, time(23, 59))


# How a date and time reads to people: "Mon 7 Dec 2026, 10:00" ("lun 7 dic 2026, 10:00"): the
# day, 24-hour clinic time, no seconds. Babel's "long" and "full" add seconds and the zone's long
# name ("10:00:00 AM Central European Standard Time"); every time shown is the clinic's, so
# those names print as this too.
WHEN = "EEE d MMM y, HH:mm"
# The compact form for table columns, timelines and "by Anna, <when>": "7 Dec 2026, 10:00"
# ("7 dic 2026, 10:00"). Babel's "short" and "medium" are the locale's own orders, which in
# English are American: "12/7/26, 10:00 AM" reads as 12 July in Berlin, and "Dec 7, 2026,
# 10:00:00 AM" puts the month first and the time on a 12-hour clock. In a medical record a date
# must read one way only, so both print as this: the day, the month by its (translated) name,
# the whole year and the 24-hour time.
STAMP = "d MMM y, HH:mm"
# A date alone (a date of birth, a due date) the same way: "4 Mar 1980" ("4 mar 1980").
DAY = "d MMM y"
_READABLE = {"when": WHEN, "long": WHEN, "full": WHEN, "short": STAMP, "medium": STAMP}
# "long" and "full" dates spell the month out ("4 de marzo de 1980", "4 March 1980") and read
# as sentences in the order of the reader's language where the clinic is (``dates_locale``).
_READABLE_DAY = {"short": DAY, "medium": DAY}


@functools.cache
def _dates_locale(language: str, zone: str) -> Locale:
    reader = Locale.parse(language)
    territory = get_global("zone_territories").get(zone)
    if reader.territory or not territory:
        return reader
    try:
        return Locale.parse(f"{reader.language}_{territory}")
    except (UnknownLocaleError, ValueError):
        return reader


def dates_locale() -> Locale:
    """The locale a date spelt out or a month and day ("4 March 1980", "4 Mar") is written in:
    the reader's language as written where the clinic is (its time zone's country). Plain
    English is CLDR's American English, "March 4, 1980", which a clinic in Berlin or London
    reads as the odd one out beside every "4 Mar 1980" on its pages; English in Germany
    (``en_DE``) and Britain write the day first, and a clinic in New York keeps "March 4".
    A language CLDR has no variant of for the country (Spanish in Germany) stays as it is."""
    return _dates_locale(str(get_locale() or "en"), current_app.config["CLINIC_TIMEZONE"])


def clinic_zone_name() -> str:
    """The clinic's time zone as the reader's language names it ("Germany (Berlin) Time",
    "hora de Alemania (Berlín)"), not its identifier ("Europe/Berlin")."""
    return get_timezone_location(clinic_tz(), locale=get_locale() or "en")


def clinic_dt(value: datetime | None, fmt: str = "when", *, zone: bool = False) -> str:
    """Template filter: a UTC datetime in the clinic's time zone, written as ``dates_locale``.
    ``fmt`` is a Babel format name or pattern; "when" (and "long", "full") is ``WHEN``, "short"
    (and "medium") is ``STAMP``. ``zone`` names the zone after the time ("Mon 7 Dec 2026,
    10:00, Germany (Berlin) Time"), for a time the patient must act by or be at where no
    sentence on the page says whose time it is: someone in another zone (a visit by video or
    phone, a link opened abroad) would otherwise read it as their own. A comma, not
    brackets: the zone's name has its own. A time in the hour the clocks repeat always ends
    with the zone's abbreviation ("02:30 CEST", "02:30 CET"), with or without ``zone``."""
    if value is None:
        return ""
    if zone:
        return f"{clinic_dt(value, fmt)}, {clinic_zone_name()}"
    fmt = _READABLE.get(fmt, fmt)
    local = to_clinic_tz(value)
    if fmt == "HH:mm":
        # The same in every locale (24-hour, Latin digits) and asked for once per slot on the
        # time pickers: a strftime is about a hundred times cheaper than Babel's formatter.
        text = local.strftime("%H:%M")
    else:
        # Babel itself, given the clinic's time: Flask-Babel's format_datetime (the same text,
        # as BABEL_DEFAULT_TIMEZONE is the clinic's) reads its settings and converts the time
        # zone again for each value, half the cost of a date on pages that list one per row.
        text = dates.format_datetime(local, fmt, locale=dates_locale())
    # In the hour the clocks' going back repeats, 02:30 is two times an hour apart: the zone's
    # abbreviation ("02:30 CEST", "02:30 CET") tells two appointments or two events apart.
    if repeated(local) and any(letter in fmt for letter in "HhKk"):
        return f"{text} {local.tzname()}"
    return text


def repeated(local: datetime) -> bool:
    """Whether a clinic time (``to_clinic_tz``) is in the hour the clocks' going back repeats:
    the same wall-clock time, read as the other of the two, has another UTC offset."""
    return local.replace(fold=1 - local.fold).utcoffset() != local.utcoffset()


def clinic_date(value: date | None, fmt: str = "medium") -> str:
    """Template filter: a date (or a UTC datetime's clinic day) in the reader's language as
    written where the clinic is (``dates_locale``). "medium" (the default) and "short" are
    ``DAY``; other names and patterns are Babel's."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        value = to_clinic_tz(value).date()
    return dates.format_date(value, _READABLE_DAY.get(fmt, fmt), locale=dates_locale())
