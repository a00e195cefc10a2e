"""The clinic's opening hours (``CLINIC_OPENING_HOURS``): read once when the app starts, shown
in the reader's language; and the days it is closed (``CLINIC_HOLIDAYS``,
``CLINIC_CLOSED_DAYS``, and the days an admin closes in the app, which ``booking.scheduling``
adds: ``add_closed_days_source``), which the call-back targets, the availability engine and
the agenda all read.

The setting is lines separated by "|", each the days then the hours::

    Mon-Fri 8:00-18:00|Sat 9:00-13:00|Sun closed
    Mon-Thu, Sat 8:00-12:00, 13:00-17:00|Fri 8:00-12:00|Sun closed

Days are English three-letter abbreviations (any case), alone, as a range ("Mon-Fri") or
listed with commas; hours are 24-hour H:MM ranges, listed with commas, or "closed"; a range
may end at 24:00, midnight ("00:00-24:00": open all day). Pages show them with the reader's
day names, time format and range and list punctuation, from Babel (CLDR): "Mon - Fri 08:00 -
18:00" in English, "lun - vie 8:00-18:00" in Spanish (with CLDR's en dashes and thin spaces).
A setting that cannot be read stops the app at start with what is wrong, rather than putting
half of it on the home page.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, time, timedelta
from types import MappingProxyType

import holidays
from babel import Locale
from babel.dates import format_interval, format_time
from babel.lists import format_list
from flask import Flask, current_app
from flask_babel import force_locale, get_locale, pgettext

from booking.timeutil import END_OF_DAY, read_clock

EXTENSION = "booking.opening_hours"
# app.extensions: the functions giving more closed days than the settings' (``(first, last)``
# -> the days from ``first`` to ``last`` they close, each with its reason for staff),
# registered by a higher layer.
CLOSED_DAY_SOURCES = "booking.closed_day_sources"
DAY_CODES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # 0 = Monday, as Babel counts
EXAMPLE = "Mon-Fri 8:00-18:00|Sat 9:00-13:00|Sun closed"
# A range's dash: "-", or the en dash a word processor makes of it.
_DASH = r"\s*[-\u2013]\s*"
_LINE_RE = re.compile(
    r"(?P<days>[A-Za-z]{3}(?:(?:\s*,\s*|" + _DASH + r")[A-Za-z]{3})*):?\s+(?P<hours>.+)"
)
_DAYS_RE = re.compile(r"(?P<first>[A-Za-z]{3})(?:" + _DASH + r"(?P<last>[A-Za-z]{3}))?")
# A range of 24-hour times, "8:00-18:00" (also read for the waiting list's quiet hours).
HOURS_RE = re.compile(r"(\d{1,2}):(\d{2})" + _DASH + r"(\d{1,2}):(\d{2})")


@dataclass(frozen=True)
class OpeningLine:
    """One line: its days as (first, last) weekday pairs (0 = Monday; one day is (d, d)) and
    its hours as (opens, closes) clinic wall-clock pairs, none when closed."""

    days: tuple[tuple[int, int], ...]
    hours: tuple[tuple[time, time], ...]


class OpeningHoursError(ValueError):
    """A setting that cannot be read; the message says which line and why."""


def _day(code: str, line: str) -> int:
    try:
        return DAY_CODES.index(code.lower())
    except ValueError:
        raise OpeningHoursError(
            f'"{line}": "{code}" is not a day (Mon, Tue, Wed, Thu, Fri, Sat, Sun)'
        ) from None


def _time(hours: str, minutes: str, line: str, *, end: bool = False) -> time:
    if end and (int(hours), int(minutes)) == (24, 0):
        return END_OF_DAY  # open to midnight: "00:00-24:00" is open all day
    if int(hours) > 23 or int(minutes) > 59:
        raise OpeningHoursError(f'"{line}": {hours}:{minutes} is not a time of day')
    return time(int(hours), int(minutes))


def _line(line: str) -> OpeningLine:
    match = _LINE_RE.fullmatch(line)
    if match is None:
        raise OpeningHoursError(f'"{line}": expected days, then hours (e.g. "Mon-Fri 8:00-18:00")')
    days = tuple(
        (_day(item["first"], line), _day(item["last"] or item["first"], line))
        for item in _DAYS_RE.finditer(match["days"])
    )
    text = match["hours"].strip()
    if text.lower() == "closed":
        return OpeningLine(days, ())
    hours = []
    for part in text.split(","):
        found = HOURS_RE.fullmatch(part.strip())
        if found is None:
            raise OpeningHoursError(
                f'"{line}": "{part.strip()}" is not hours as H:MM-H:MM (24-hour), or "closed"'
            )
        opens = _time(*found.groups()[:2], line)
        closes = _time(*found.groups()[2:], line, end=True)
        if closes <= opens:
            raise OpeningHoursError(f'"{line}": {part.strip()} ends before it starts')
        hours.append((opens, closes))
    return OpeningLine(days, tuple(hours))


def parse_opening_hours(setting: str | None) -> tuple[OpeningLine, ...]:
    """The setting's lines (blank ones left out); an OpeningHoursError names the first line
    that cannot be read."""
    lines = (line.strip() for line in (setting or "").split("|"))
    return tuple(_line(line) for line in lines if line)


@functools.lru_cache(maxsize=64)
def _describe(line: OpeningLine, locale: Locale, closed: str) -> str:
    names = locale.days["stand-alone"]["abbreviated"]
    between = locale.interval_formats[None]  # "{0} - {1}": CLDR's range of two values
    days = format_list(
        [names[a] if a == b else between.format(names[a], names[b]) for a, b in line.days],
        locale=locale,
    )
    if not line.hours:
        return f"{days} {closed}"
    hours = format_list(
        [_interval(opens, closes, locale) for opens, closes in line.hours], locale=locale
    )
    return f"{days} {hours}"


def _interval(opens: time, closes: time, locale: Locale) -> str:
    """ "08:00 - 18:00" in ``locale``: "Hm", 24-hour, as every time the app shows
    (``timeutil.WHEN``). CLDR has no 24:00, so an end at midnight is the range to 23:59 with
    its end written as CLDR's hour 1-24 ("k") writes midnight."""
    if closes != END_OF_DAY:
        return format_interval(opens, closes, "Hm", locale=locale)
    pattern = locale.datetime_skeletons["Hm"].pattern
    before, last, after = format_interval(opens, time(23, 59), "Hm", locale=locale).rpartition(
        format_time(time(23, 59), pattern, locale=locale)
    )
    midnight = format_time(time(), pattern.replace("H", "k"), locale=locale)
    return f"{before}{midnight}{after}" if last else f"{before}{after}"


def opening_hours_text(locale: Locale | str | None = None) -> list[str]:
    """The opening hours as lines in ``locale`` (default: the reader's language)."""
    lines: tuple[OpeningLine, ...] = current_app.extensions[EXTENSION]
    if not lines:
        return []
    if locale is None:
        locale = get_locale() or current_app.config["BABEL_DEFAULT_LOCALE"]
    locale = Locale.parse(locale)
    with force_locale(str(locale)):
        closed = pgettext("opening hours", "closed")
    return [_describe(line, locale, closed) for line in lines]


def working_hours_setting(text: str) -> tuple[time, time]:
    """``CLINIC_WORKING_HOURS``, "08:00-18:00" (clinic time), as (opens, closes); it may end
    at 24:00 (``END_OF_DAY``): "00:00-24:00" is all day. Raises ValueError."""
    start, dash, end = text.partition("-")
    if not dash:
        raise ValueError(f"{text!r} is not hours as HH:MM-HH:MM")
    return read_clock(start), read_clock(end, end=True)


def open_weekdays() -> frozenset[int]:
    """The weekdays (0 = Monday) the clinic opens on by ``CLINIC_OPENING_HOURS``: the days a
    patient may say suit them. Monday to Friday when the setting says nothing."""
    lines: tuple[OpeningLine, ...] = current_app.extensions[EXTENSION]
    days = {
        day
        for line in lines
        if line.hours
        for first, last in line.days
        for day in range(first, last + 1)
    }
    return frozenset(days) if lines else frozenset(range(5))


# ---- days the clinic is closed ---------------------------------------------------------------


# The language the holidays' names are given in where the ``holidays`` package has it: staff
# read them (the agenda), and the staff pages are in English.
HOLIDAY_NAMES_LANGUAGE = "en_US"


@functools.cache
def holiday_names(region: str, year: int) -> Mapping[date, str]:
    """Public holidays of ``region`` ("DE-BE": a country's ISO code and, after a dash, a
    subdivision's; "" for none) in the years around ``year``, from the ``holidays`` package,
    each with its name: in English where the package has English names, else in the
    country's own language ("A; B" for two on one day). NotImplementedError for a region the
    package does not know."""
    if not region:
        return MappingProxyType({})
    country, _dash, subdivision = region.partition("-")
    years = range(year - 1, year + 2)
    calendar = holidays.country_holidays(country, subdiv=subdivision or None, years=years)
    if (
        HOLIDAY_NAMES_LANGUAGE in calendar.supported_languages
        and calendar.default_language != HOLIDAY_NAMES_LANGUAGE
    ):
        calendar = holidays.country_holidays(
            country, subdiv=subdivision or None, years=years, language=HOLIDAY_NAMES_LANGUAGE
        )
    return MappingProxyType(dict(calendar.items()))


@functools.cache
def closed_days(region: str, extra: str, year: int) -> frozenset[date]:
    """Public holidays of ``region`` in the years around ``year`` (``holiday_names``), and
    the ISO dates listed in ``extra`` (comma-separated)."""
    found = {date.fromisoformat(part.strip()) for part in extra.split(",") if part.strip()}
    found.update(holiday_names(region, year))
    return frozenset(found)


def settings_closed_days(first: date, last: date) -> frozenset[date]:
    """The days from ``first`` to ``last`` the settings close: the public holidays of
    ``CLINIC_HOLIDAYS`` and the dates of ``CLINIC_CLOSED_DAYS`` (no database read)."""
    config = current_app.config
    found: set[date] = set()
    for year in range(first.year, last.year + 1):
        found |= closed_days(config["CLINIC_HOLIDAYS"], config["CLINIC_CLOSED_DAYS"], year)
    return frozenset(day for day in found if first <= day <= last)


def settings_closures(first: date, last: date) -> dict[date, str]:
    """``settings_closed_days`` with each public holiday's name (``holiday_names``); "" for a
    date of ``CLINIC_CLOSED_DAYS`` that is none."""
    region = current_app.config["CLINIC_HOLIDAYS"]
    return {
        day: holiday_names(region, day.year).get(day, "")
        for day in settings_closed_days(first, last)
    }


def public_holidays(first: date, last: date) -> dict[date, str]:
    """The public holidays of ``CLINIC_HOLIDAYS`` from ``first`` to ``last``, by name
    (``holiday_names``): what ``settings_closures`` names, without the unnamed dates of
    ``CLINIC_CLOSED_DAYS``."""
    return {day: name for day, name in settings_closures(first, last).items() if name}


def add_closed_days_source(app: Flask, source: Callable[[date, date], Mapping[date, str]]) -> None:
    """Have ``clinic_closed_days`` also close the days ``source(first, last)`` gives, each
    with its reason (the days an admin closed in the app, kept by ``booking.scheduling``).
    One call per range asked: a source reads them all at once, never day by day."""
    app.extensions.setdefault(CLOSED_DAY_SOURCES, []).append(source)


def clinic_closures(first: date, last: date) -> dict[date, str]:
    """``clinic_closed_days`` with why, for staff: each day's reason from its source (an
    admin's, "Team training"), a public holiday's name ("Christmas Day",
    ``holiday_names``), or "" for a date of ``CLINIC_CLOSED_DAYS``, which gives none. The
    same reads: one per source."""
    found = settings_closures(first, last)
    for source in current_app.extensions.get(CLOSED_DAY_SOURCES, ()):
        found.update((day, why) for day, why in source(first, last).items() if first <= day <= last)
    return found


def clinic_closed_days(first: date, last: date) -> frozenset[date]:
    """The days from ``first`` to ``last`` on which the clinic is closed: the settings' days
    (``settings_closed_days``) and those of every source added (``add_closed_days_source``:
    the days an admin closed in the app). Weekly working hours do not apply on them
    (patients are offered no time); extra hours an admin enters still do."""
    return frozenset(clinic_closures(first, last))


def clinic_opens_on(day: date) -> bool:
    """Whether ``day`` is one of the clinic's open weekdays (``open_weekdays``) and not a day
    it is closed (``clinic_closed_days``)."""
    return day.weekday() in open_weekdays() and not clinic_closed_days(day, day)


def next_open_day(after: date, within: int = 366) -> date | None:
    """The first day after ``after`` on which the clinic opens (``clinic_opens_on``), looking
    ``within`` days ahead; None when it opens on none of them."""
    weekdays = open_weekdays()
    last = after + timedelta(days=within)
    closed = clinic_closed_days(after + timedelta(days=1), last)
    day = after + timedelta(days=1)
    while day <= last:
        if day.weekday() in weekdays and day not in closed:
            return day
        day += timedelta(days=1)
    return None


def init_app(app: Flask) -> None:
    """Read ``CLINIC_OPENING_HOURS``, ``CLINIC_HOLIDAYS`` and ``CLINIC_CLOSED_DAYS`` (a
    RuntimeError says what is wrong with one) and offer the opening hours to every template
    as ``clinic_opening_hours``."""
    try:
        app.extensions[EXTENSION] = parse_opening_hours(app.config["CLINIC_OPENING_HOURS"])
    except OpeningHoursError as exc:
        raise RuntimeError(
            f"CLINIC_OPENING_HOURS cannot be read: {exc}. Write lines separated by '|', each "
            "English three-letter days (alone, as a range like Mon-Fri, or listed with commas) "
            f"then 24-hour H:MM-H:MM hours (24:00 ends at midnight) or 'closed', e.g. "
            f"'{EXAMPLE}'."
        ) from None
    try:
        closed_days(app.config["CLINIC_HOLIDAYS"], app.config["CLINIC_CLOSED_DAYS"], 2000)
    except NotImplementedError:
        raise RuntimeError(
            f"CLINIC_HOLIDAYS {app.config['CLINIC_HOLIDAYS']!r} is not a region the holidays "
            "package knows: give a country's ISO code and, after a dash, a subdivision's "
            "(e.g. DE-BE for Berlin), or leave it empty."
        ) from None
    except ValueError as exc:
        raise RuntimeError(
            f"CLINIC_CLOSED_DAYS cannot be read ({exc}): give ISO dates separated by commas, "
            "e.g. 2026-12-24,2026-12-31."
        ) from None

    @app.context_processor
    def _opening_hours() -> dict[str, list[str]]:
        return {"clinic_opening_hours": opening_hours_text()}
