"""A follow-up time point's name in the reader's language, singular or plural as it counts
("1 month", not "1 months"): a clinic's schedule may hold "1m" or "1w"."""

from __future__ import annotations

import pytest
from flask import Flask
from flask_babel import force_locale

from booking.outcomes.labels import point_label


@pytest.mark.parametrize(
    ("locale", "code", "label"),
    [
        ("en", "1w", "1 week"),
        ("en", "6w", "6 weeks"),
        ("en", "1m", "1 month"),
        ("en", "12m", "12 months"),
        ("es", "1w", "1 semana"),
        ("es", "6w", "6 semanas"),
        ("es", "1m", "1 mes"),
        ("es", "12m", "12 meses"),
    ],
)
def test_a_time_point_reads_singular_or_plural_in_each_language(
    app: Flask, locale: str, code: str, label: str
) -> None:
    with app.test_request_context("/"), force_locale(locale):
        assert point_label(code) == label
