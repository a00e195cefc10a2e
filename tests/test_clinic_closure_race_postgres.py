"""Two admins closing the clinic on the same day at the same instant, on PostgreSQL.

Each is asked to confirm, and both confirm at once: each checks that the day is not closed
yet, finds it open, and adds its closed day. A day is closed once (``ClinicClosure``'s unique
day): the second write waits for the first and fails on commit of it. The second admin is
told at the day, as the page's own check tells an admin who comes later, that the clinic is
already closed on it, not shown a server error. The interleaving is made exact: each admin's
check, the real one, is held until the other's is made too, then both write together.
PostgreSQL only: on SQLite, BEGIN IMMEDIATE serialises the whole of each change.
"""

from __future__ import annotations

import threading
from datetime import date, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from werkzeug.test import TestResponse

from booking.audit.models import AuditEvent
from booking.extensions import db
from booking.scheduling import closures
from booking.scheduling.models import ClinicClosure
from booking.timeutil import clinic_date, clinic_today
from tests.factories import make_staff
from tests.support import AuthActions, Clinic, field_error, page_token
from tests.test_destructive_confirmation import asked, confirm

pytestmark = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)

PAGE = "/staff/admin/scheduling/closed-days"
REASONS = ("Team training", "Burst pipe")  # the two admins'


@pytest.fixture
def app_settings(app_settings: dict[str, Any]) -> dict[str, Any]:
    """No rate limits: the limiter's in-process storage can start its expiry timer twice from
    two threads of one app (tests/test_double_booking.py says more)."""
    return {**app_settings, "RATELIMIT_ENABLED": False}


def asked_to_confirm(client: FlaskClient, day: date, reason: str) -> str:
    """The page's form sent for ``day``: the confirmation page, its button not yet pressed."""
    token = page_token(client.get(PAGE).get_data(as_text=True))
    return asked(
        client.post(PAGE, data={"csrf_token": token, "day": day.isoformat(), "reason": reason})
    )[2]


def checks_held_until_both_made(monkeypatch: pytest.MonkeyPatch) -> threading.Barrier:
    """Hold each admin's check (``close_clinic`` checks again when confirmed) until the
    other's is made: both find the day open before either writes."""
    both = threading.Barrier(len(REASONS))
    check = closures.check_closure

    def check_then_wait_for_the_other(day: date, reason: str) -> None:
        check(day, reason)
        both.wait(timeout=30)

    monkeypatch.setattr(closures, "check_closure", check_then_wait_for_the_other)
    return both


def test_two_admins_closing_one_day_at_once_close_it_once_and_the_second_is_told(
    app: Flask, clinic: Clinic, monkeypatch: pytest.MonkeyPatch
) -> None:
    with app.app_context():
        day = clinic_today() + timedelta(days=10)
        day_text = clinic_date(day, "full")
        other = make_staff("admin", "bea.admin@example.com", full_name="Bea Admin").email
    admins: list[tuple[FlaskClient, str]] = []
    for email, reason in zip((clinic.admin.email, other), REASONS, strict=True):
        client = app.test_client()
        AuthActions(client).login(email=email)
        admins.append((client, asked_to_confirm(client, day, reason)))
    both = checks_held_until_both_made(monkeypatch)

    answers: list[TestResponse | None] = [None] * len(admins)
    errors: list[BaseException] = []

    def press_confirm(n: int) -> None:
        try:
            answers[n] = confirm(*admins[n])
        except BaseException as exc:  # a server error raises here (TESTING): failed below
            errors.append(exc)
            both.abort()  # the other admin does not wait for this one

    threads = [threading.Thread(target=press_confirm, args=(n,)) for n in range(len(admins))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "an admin's request hung"
    if errors:
        raise AssertionError(f"{len(errors)} of the admins' requests failed") from errors[0]

    statuses = [answer.status_code for answer in answers if answer is not None]
    assert sorted(statuses) == [302, 422], statuses
    closed_by = statuses.index(302)
    refused = answers[1 - closed_by]
    assert refused is not None
    assert field_error(refused.get_data(as_text=True), "day") == (
        f"Error: The clinic is already closed on {day_text}."
    )
    with app.app_context():
        kept = db.session.execute(select(ClinicClosure.day, ClinicClosure.reason)).all()
        added = db.session.scalar(
            select(func.count(AuditEvent.id)).where(AuditEvent.action == "clinic_closure_added")
        )
    assert [tuple(row) for row in kept] == [(day, REASONS[closed_by])]
    assert added == 1
