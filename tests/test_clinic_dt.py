"""``clinic_dt`` formats with Babel itself, on the time already in the clinic's time zone: it
must read exactly as Flask-Babel's ``format_datetime`` (which converts to
``BABEL_DEFAULT_TIMEZONE``, the clinic's) in every language, format and time zone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask_babel import force_locale, format_datetime

from booking.timeutil import WHEN, clinic_dt

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


@pytest.fixture(params=["Europe/Berlin", "America/New_York"])
def app_settings(app_settings: dict[str, Any], request: pytest.FixtureRequest) -> dict[str, Any]:
    return {**app_settings, "CLINIC_TIMEZONE": request.param}


@pytest.mark.parametrize("locale", ["en", "es"])
def test_clinic_dt_reads_as_flask_babel_formats(app: Flask, locale: str) -> None:
    with app.test_request_context("/"), force_locale(locale):
        for fmt in FORMATS:
            expected = WHEN if fmt in ("when", "long", "full") else fmt
            for moment in MOMENTS:
                assert clinic_dt(moment, fmt) == format_datetime(moment, expected), (fmt, moment)
