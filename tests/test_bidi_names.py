"""A patient's name in a right-to-left script (Arabic, Hebrew) sits inside lines of other text
on the staff pages: the record's heading beside the reference, the queue's row (a card on a
phone, after its label), the agenda's entry between times and types, the intake summary's
heading. Without isolation the bidirectional algorithm lets the name and its neighbours
(punctuation, digits, the reference) reorder one another; each is in a ``<bdi>``."""

from __future__ import annotations

import re
from datetime import time, timedelta

from flask import Flask
from flask.testing import FlaskClient

from booking.dashboard import services as workflow
from booking.extensions import db
from booking.staff.models import StaffUser
from booking.timeutil import clinic_today
from tests.factories import clinic_slot, make_request
from tests.support import AuthActions, Clinic

NAME = "محمد عبدالله"
ISOLATED = f"<bdi>{NAME}</bdi>"


def _confirmed(app: Flask, clinic: Clinic) -> tuple[str, str]:
    """A request of the Arabic-named patient confirmed for 10:00 a week ahead (any day: the
    clinic's hours are every day); returns its reference and the day."""
    with app.app_context():
        day = clinic_today() + timedelta(days=7)
        consultation = make_request(full_name=NAME, email="mohammed@example.com")
        coordinator = db.session.get(StaffUser, clinic.coordinator.id)
        workflow.confirm_request(
            consultation,
            coordinator,
            clinic_slot(clinic, day, time(10)),
        )
        return consultation.reference, day.isoformat()


def test_a_right_to_left_name_is_isolated_from_the_text_around_it(
    app: Flask, client: FlaskClient, clinic: Clinic
) -> None:
    reference, day = _confirmed(app, clinic)
    AuthActions(client).attempt(clinic.coordinator.email)

    record = client.get(f"/staff/requests/{reference}").get_data(as_text=True)
    heading = re.search(r"<h1[^>]*>(.*?)</h1>", record, re.S)[1]
    assert heading == f'<span class="font-monospace">{reference}</span> · {ISOLATED}'
    assert f"No follow-up questionnaire or reminder is sent to {ISOLATED} after this." in record

    queue = client.get("/staff/", query_string={"status": "confirmed"}).get_data(as_text=True)
    row = queue[queue.index(reference) :]
    row = row[: row.index("</tr>")]
    assert f'data-label="Patient">{ISOLATED}</td>' in row

    agenda = client.get("/staff/calendar", query_string={"date": day}).get_data(as_text=True)
    assert f'<bdi><a href="/staff/requests/{reference}">{NAME}</a></bdi>' in agenda

    summary = client.get(f"/staff/requests/{reference}/summary").get_data(as_text=True)
    heading = re.search(r'<h1 id="summary-heading"[^>]*>(.*?)</h1>', summary, re.S)[1]
    assert heading == f'{ISOLATED} <span class="font-monospace">{reference}</span>'
