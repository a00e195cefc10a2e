"""Two patients moving to the same free time at once, on PostgreSQL, through their own pages.

The race is made exact rather than left to chance: the first patient's move is held just after
it is written (not committed); the second patient's page then still sees the time free, and
its own write waits on the exclusion constraint until the first commits, and is refused. On
PostgreSQL a refused statement aborts the transaction it runs in, so the losing patient's page
can only be shown if the refusal stayed inside a savepoint.

PostgreSQL only: on SQLite, BEGIN IMMEDIATE serialises the two moves, so the second one sees
the time taken before it writes anything (tests/test_manage.py covers that).
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event, func, select, text
from sqlalchemy.orm import Session

from booking.audit.models import AuditEvent
from booking.extensions import db
from booking.notifications.models import OutboxEmail
from booking.requests.models import ConsultationRequest
from booking.scheduling.availability import OpenSlot, open_slots
from booking.scheduling.models import Appointment, AppointmentType
from booking.scheduling.services import SlotChoice
from booking.timeutil import now_utc, to_clinic_tz
from tests.factories import (
    make_request,
)
from tests.support import Clinic, open_manage_link, wait_until

# Only the PostgreSQL run of the database fixture (skipped without TEST_DATABASE_URL).
pytestmark = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)

CSRF = re.compile(r'csrf_token" type="hidden" value="([^"]+)"')
WINNER = "reschedule-winner"


@dataclass
class Patient:
    reference: str
    url: str
    starts_at: datetime
    csrf: str


def _spaced(slots: list[OpenSlot], count: int) -> list[OpenSlot]:
    """``count`` slots at least two hours apart (their blocks never touch)."""
    chosen: list[OpenSlot] = []
    for slot in slots:
        if not chosen or slot.starts_at >= chosen[-1].starts_at + timedelta(hours=2):
            chosen.append(slot)
        if len(chosen) == count:
            return chosen
    raise AssertionError("not enough open slots")


@pytest.fixture
def app_settings(app_settings: dict[str, Any]) -> dict[str, Any]:
    # A failing page is answered as a patient would see it (500), not raised into the test.
    return {**app_settings, "PROPAGATE_EXCEPTIONS": False}


@pytest.fixture
def race(app: Flask, clinic: Clinic) -> tuple[OpenSlot, list[tuple[FlaskClient, Patient]]]:
    """Two patients with a time each (the shared ``clinic``: one specialist), each with their
    private page open in a browser of their own, and a third, free time both will try to move
    to."""
    with app.app_context():
        appointment_type = db.session.get(AppointmentType, clinic.type)
        now = now_utc()
        first, second, target = _spaced(
            open_slots(appointment_type, now + timedelta(days=3), now + timedelta(days=14)), 3
        )
        linked = []
        for n, slot in enumerate((first, second)):
            consultation = make_request(
                email=f"patient{n}@example.com",
                slot=SlotChoice(
                    appointment_type.id, slot.specialist_id, slot.location_id, slot.starts_at
                ),
            )
            client = app.test_client()
            linked.append((client, consultation.reference, slot.starts_at))
            open_manage_link(client, consultation)
        target_day = to_clinic_tz(target.starts_at).date().isoformat()
        db.session.remove()
    patients = []
    # Outside the app context: each page request then has its own (and its own CSRF token).
    for client, reference, starts_at in linked:
        url = f"/manage/{reference}"
        # The picker shows one day at a time: the target's day.
        page = client.get(f"{url}/reschedule?day={target_day}").get_data(as_text=True)
        assert f'value="{target.key}"' in page  # both are offered the time
        patients.append((client, Patient(reference, url, starts_at, CSRF.findall(page)[0])))
    return target, patients


def _lock_waits() -> int:
    """Statements of this database waiting for another transaction's lock (a new transaction
    each time: PostgreSQL keeps one snapshot of its activity view per transaction)."""
    with db.engine.connect() as conn:
        return conn.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND query ILIKE 'UPDATE appointment%'"
            )
        )


def test_the_patient_who_loses_a_reschedule_race_is_told_the_time_was_taken(
    app: Flask, race: tuple[OpenSlot, list[tuple[FlaskClient, Patient]]]
) -> None:
    target, [(winner_client, winner), (loser_client, loser)] = race
    with app.app_context():
        emails_before = db.session.scalar(select(func.count()).select_from(OutboxEmail))

    written = threading.Event()
    go_on = threading.Event()

    def hold_the_winner(session: Session, _context: Any) -> None:
        # The winner's move is written, its transaction still open: wait for the loser.
        if threading.current_thread().name == WINNER and any(
            isinstance(obj, Appointment) for obj in session.dirty
        ):
            written.set()
            assert go_on.wait(timeout=30), "the losing patient's move never started waiting"

    responses: dict[str, Any] = {}
    errors: list[BaseException] = []

    def move(name: str, client: FlaskClient, patient: Patient) -> None:
        try:
            responses[name] = client.post(
                patient.url + "/reschedule", data={"csrf_token": patient.csrf, "slot": target.key}
            )
        except BaseException as exc:  # handed to the main thread
            errors.append(exc)
            written.set()

    event.listen(Session, "after_flush", hold_the_winner)
    try:
        first = threading.Thread(target=move, args=("winner", winner_client, winner), name=WINNER)
        first.start()
        assert written.wait(timeout=30), "the winning move was never written"
        second = threading.Thread(target=move, args=("loser", loser_client, loser))
        second.start()
        with app.app_context():
            # The loser saw the time free, and its write now waits for the winner's commit.
            wait_until(lambda: errors or _lock_waits() == 1, "the losing move to wait", 20)
        go_on.set()
        first.join(timeout=30)
        second.join(timeout=30)
    finally:
        go_on.set()
        event.remove(Session, "after_flush", hold_the_winner)
    assert not first.is_alive() and not second.is_alive()
    if errors:
        raise AssertionError("a patient's page failed") from errors[0]

    assert responses["winner"].status_code == 302
    assert responses["loser"].status_code == 409
    page = responses["loser"].get_data(as_text=True)
    assert "Sorry, that time was just taken. Please choose another." in page
    assert f'value="{target.key}"' not in page  # no longer offered

    with app.app_context():
        moved = {
            c.reference: c.appointment
            for c in db.session.scalars(select(ConsultationRequest)).all()
        }
        assert moved[winner.reference].starts_at == target.starts_at
        assert moved[winner.reference].sequence == 1
        # The loser's appointment is exactly as it was, and nothing of the attempt was kept.
        assert moved[loser.reference].starts_at == loser.starts_at
        assert moved[loser.reference].sequence == 0
        assert moved[loser.reference].active
        rescheduled = db.session.scalars(
            select(AuditEvent.target_id).where(AuditEvent.action == "patient_rescheduled")
        ).all()
        assert rescheduled == [winner.reference]
        # The winner's two emails (patient and clinic); none for the loser.
        emails = db.session.scalar(select(func.count()).select_from(OutboxEmail))
        assert emails == emails_before + 2
