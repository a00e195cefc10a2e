"""``clinic_dt`` formats with Babel itself, on the time already in the clinic's time zone: it
must read exactly as Babel's ``format_datetime`` converting to the clinic's zone itself, in
every language, format and time zone, in the reader's language as written where the clinic is
(``dates_locale``: English in Berlin is ``en_DE``, "4 March 1980"; in New York ``en_US``).
Its "short" (and "medium") and ``clinic_date``'s read one way only: the day, the month's name,
the year and the 24-hour time, never the locale's "12/5/26, 12:26 PM"."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from babel.dates import format_datetime, format_skeleton
from flask import Flask, render_template_string
from flask_babel import force_locale

from booking.templating import version_date
from booking.timeutil import STAMP, WHEN, clinic_date, clinic_dt, dates_locale

# Around both clock changes of the clinic's zone (Europe/Berlin: 29 March and 25 October 2026)
# and of New York's, midnight and the turn of the year, at every half hour.
STARTS = [
    datetime(2026, 3, 28, 22, tzinfo=UTC),
    datetime(2026, 10, 24, 22, tzinfo=UTC),
    datetime(2026, 3, 8, 4, tzinfo=UTC),
    datetime(2026, 12, 31, 20, tzinfo=UTC),
]
MOMENTS = [start + timedelta(minutes=30 * n) for start in STARTS for n in range(16)]
# Every format the templates ask for.
FORMATS = ["short", "medium", "when", "full", "long", WHEN, "yyyy-MM-dd"]
# The format names clinic_dt reads as one of its own patterns.
PATTERNS = {"when": WHEN, "long": WHEN, "full": WHEN, "short": STAMP, "medium": STAMP}


@pytest.fixture(params=["Europe/Berlin", "America/New_York"])
def app_settings(app_settings: dict[str, Any], request: pytest.FixtureRequest) -> dict[str, Any]:
    return {**app_settings, "CLINIC_TIMEZONE": request.param}


# The hour Berlin's clocks repeat on 25 October 2026 (02:00-03:00 CEST, then CET), in UTC: a
# time in it says its zone after Babel's text.
REPEATED = {
    "Europe/Berlin": (datetime(2026, 10, 25, 0, tzinfo=UTC), datetime(2026, 10, 25, 2, tzinfo=UTC))
}


@pytest.mark.parametrize("locale", ["en", "es"])
def test_clinic_dt_reads_as_babel_formats(app: Flask, locale: str) -> None:
    tz = app.config["CLINIC_TIMEZONE"]
    with app.test_request_context("/"), force_locale(locale):
        written = dates_locale()
        for fmt in FORMATS:
            expected = PATTERNS.get(fmt, fmt)
            for moment in MOMENTS:
                babel = format_datetime(moment, expected, tzinfo=ZoneInfo(tz), locale=written)
                start, end = REPEATED.get(tz, (moment, moment))
                if start <= moment < end and "H" in expected:
                    babel += " CEST" if moment < start + timedelta(hours=1) else " CET"
                assert clinic_dt(moment, fmt) == babel, (fmt, moment)


# Berlin's spring change: 01:59 CET is followed by 03:00 CEST; in autumn 02:00-03:00 happens
# twice. Each moment: (UTC, English, Spanish), as the clinic's wall clock reads.
BERLIN_SHORT = [
    (datetime(2026, 3, 29, 0, 30, tzinfo=UTC), "29 Mar 2026, 01:30", "29 mar 2026, 01:30"),
    (datetime(2026, 3, 29, 1, 0, tzinfo=UTC), "29 Mar 2026, 03:00", "29 mar 2026, 03:00"),
    # The hour that happens twice says which: summer time, then winter time.
    (
        datetime(2026, 10, 25, 0, 30, tzinfo=UTC),
        "25 Oct 2026, 02:30 CEST",
        "25 oct 2026, 02:30 CEST",
    ),
    (datetime(2026, 10, 25, 1, 30, tzinfo=UTC), "25 Oct 2026, 02:30 CET", "25 oct 2026, 02:30 CET"),
    (datetime(2026, 10, 25, 2, 0, tzinfo=UTC), "25 Oct 2026, 03:00", "25 oct 2026, 03:00"),
    # Day and month both 12 or less, the afternoon: "12/5/26, 12:26 PM" before.
    (datetime(2026, 12, 5, 11, 26, tzinfo=UTC), "5 Dec 2026, 12:26", "5 dic 2026, 12:26"),
    (datetime(2026, 5, 12, 14, 5, tzinfo=UTC), "12 May 2026, 16:05", "12 may 2026, 16:05"),
    # The last UTC hour of the year is already the next year in Berlin.
    (datetime(2026, 12, 31, 23, 30, tzinfo=UTC), "1 Jan 2027, 00:30", "1 ene 2027, 00:30"),
]


@pytest.mark.parametrize("app_settings", ["Europe/Berlin"], indirect=True)
@pytest.mark.parametrize(("locale", "column"), [("en", 1), ("es", 2)])
@pytest.mark.parametrize("fmt", ["short", "medium"])
def test_short_reads_day_month_name_year_and_24_hour_clinic_time(
    app: Flask, locale: str, column: int, fmt: str
) -> None:
    with app.test_request_context("/"), force_locale(locale):
        shown = [clinic_dt(row[0], fmt) for row in BERLIN_SHORT]
    assert shown == [row[column] for row in BERLIN_SHORT]


@pytest.mark.parametrize("app_settings", ["Europe/Madrid"], indirect=True)
def test_the_repeated_hour_says_its_zone_and_no_other_time_does(app: Flask) -> None:
    """Madrid, 25 October 2026: 02:30 CEST (00:30 UTC) and 02:30 CET (01:30 UTC) are two
    appointments an hour apart; 01:59 CEST and 03:00 CET are one time each."""
    first, second = (datetime(2026, 10, 25, h, 30, tzinfo=UTC) for h in (0, 1))
    before, after = (
        datetime(2026, 10, 24, 23, 59, tzinfo=UTC),
        datetime(2026, 10, 25, 2, tzinfo=UTC),
    )
    with app.test_request_context("/"):
        assert clinic_dt(first) == "Sun 25 Oct 2026, 02:30 CEST"
        assert clinic_dt(second) == "Sun 25 Oct 2026, 02:30 CET"
        assert [clinic_dt(m, "HH:mm") for m in (before, first, second, after)] == [
            "01:59",
            "02:30 CEST",
            "02:30 CET",
            "03:00",
        ]
        assert clinic_dt(second, zone=True) == "Sun 25 Oct 2026, 02:30 CET, Spain (Madrid) Time"
        assert clinic_dt(after) == "Sun 25 Oct 2026, 03:00"
        # A date alone is one day either way.
        assert clinic_dt(first, "yyyy-MM-dd") == clinic_dt(second, "yyyy-MM-dd") == "2026-10-25"
        # Through the template filter, as the pages use it.
        page = render_template_string(
            "{{ a|clinic_dt('short') }} / {{ b|clinic_dt('short') }}", a=first, b=second
        )
        assert page == "25 Oct 2026, 02:30 CEST / 25 Oct 2026, 02:30 CET"


@pytest.mark.parametrize("app_settings", ["Europe/Berlin"], indirect=True)
@pytest.mark.parametrize(
    ("locale", "day", "long"),
    [("en", "4 Mar 1980", "4 March 1980"), ("es", "4 mar 1980", "4 de marzo de 1980")],
)
def test_clinic_date_reads_day_month_name_year(
    app: Flask, locale: str, day: str, long: str
) -> None:
    born = date(1980, 3, 4)
    with app.test_request_context("/"), force_locale(locale):
        assert clinic_date(born) == clinic_date(born, "medium") == day
        assert clinic_date(born, "short") == day
        # "long" is a sentence's date, in the locale's own words: Babel's, as written in
        # Germany (English's own "March 4, 1980" is American).
        assert clinic_date(born, "long") == long
        # A UTC instant is dated by the clinic's day: 23:30 UTC on 31 March is 1 April here.
        late = datetime(2026, 3, 31, 23, 30, tzinfo=UTC)
        assert clinic_date(late) == ("1 Apr 2026" if locale == "en" else "1 abr 2026")


@pytest.mark.parametrize(
    ("asked", "due_day"),
    [
        # 10:00 clinic time on 31 January: February has no 31st, its last day ends the month.
        ("2027-01-31T10:00", date(2027, 2, 28)),
        ("2028-01-31T10:00", date(2028, 2, 29)),
        ("2027-03-15T10:00", date(2027, 4, 15)),  # across the spring clock change
        # 00:30 on 1 December at the clinic is still 30 November in UTC: the clinic's date.
        ("2026-12-01T00:30", date(2027, 1, 1)),
        ("2026-12-31T23:30", date(2027, 1, 31)),
    ],
)
def test_a_month_after_ends_with_the_same_date_next_month_at_the_clinic(
    app: Flask, asked: str, due_day: date
) -> None:
    """GDPR Art. 12(3) gives one month; EU Regulation 1182/71 says when it ends."""
    from booking.rights.models import ErasureRequest
    from booking.timeutil import to_clinic_tz

    with app.app_context():
        zone = to_clinic_tz(datetime.now(UTC)).tzinfo
        requested = datetime.fromisoformat(asked).replace(tzinfo=zone).astimezone(UTC)
        due = to_clinic_tz(ErasureRequest(requested_at=requested).due_at)
    assert (due.date(), due.hour, due.minute) == (due_day, 23, 59)


@pytest.mark.parametrize(
    ("app_settings", "locale", "full", "month_day"),
    [
        # English in Germany and Britain writes the day first, as every other date on the pages.
        ("Europe/Berlin", "en", "Tuesday, 4 March 1980", "4 Mar"),
        ("Europe/London", "en", "Tuesday, 4 March 1980", "4 Mar"),
        # A clinic in the United States keeps American English's order.
        ("America/New_York", "en", "Tuesday, March 4, 1980", "Mar 4"),
        # Spanish has no variant for Germany: Spanish as it is.
        ("Europe/Berlin", "es", "martes, 4 de marzo de 1980", "4 mar"),
        # A zone of no country.
        ("UTC", "en", "Tuesday, March 4, 1980", "Mar 4"),
    ],
    indirect=["app_settings"],
)
def test_dates_are_written_as_the_readers_language_is_where_the_clinic_is(
    app: Flask, locale: str, full: str, month_day: str
) -> None:
    born = date(1980, 3, 4)
    with app.test_request_context("/"), force_locale(locale):
        assert clinic_date(born, "full") == full
        # The insights chart's axis: a month and day.
        assert format_skeleton("MMMd", born, locale=dates_locale()) == month_day


@pytest.mark.parametrize(
    ("version", "read"),
    [
        ("2026-12-05", "5 Dec 2026"),
        ("2026-11", "Nov 2026"),
        ("2026-13-01", None),  # no such day: shown as written
        ("v2", None),
        ("", None),
        (None, None),
    ],
)
def test_a_texts_version_named_by_its_day_reads_as_a_date(
    app: Flask, version: str | None, read: str | None
) -> None:
    with app.test_request_context():
        assert version_date(version) == read
