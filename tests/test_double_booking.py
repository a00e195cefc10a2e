"""No double booking, under real concurrency, on SQLite and (with TEST_DATABASE_URL) PostgreSQL.

Races start 20 threads together on a barrier; each has its own app context, so its own
session and connection. Anything a thread raises is collected and fails the test in the main
thread (an exception escaping a thread would only be a warning).
"""

from __future__ import annotations

import secrets
import threading
import time as clock
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from flask import Flask
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from booking.audit.models import AuditEvent
from booking.dashboard.services import Slot, confirm_request, reschedule_request
from booking.documents.models import Document
from booking.extensions import db
from booking.manage import services as manage_services
from booking.notifications.models import OutboxEmail
from booking.requests.drafts import DraftDocument
from booking.requests.events import RequestEvent
from booking.requests.lifecycle import WorkflowError
from booking.requests.models import ConsultationRequest, Patient, RequestStatus
from booking.scheduling.availability import open_slots
from booking.scheduling.models import (
    EXCLUSION_NAME,
    Appointment,
    AppointmentType,
    Location,
    is_overlap_error,
)
from booking.scheduling.services import SlotChoice
from booking.staff.models import StaffUser
from booking.timeutil import clinic_today, clinic_tz, now_utc, to_clinic_tz
from tests.factories import (
    make_request,
    staff_user,
)
from tests.support import (
    Clinic,
    fill_request,
    form_tokens,
    pdf_bytes,
    send_request,
    sql_statements,
    stored_files,
    valid_answers,
)

THREADS = 20
T = TypeVar("T")


def run_together(count: int, work: Callable[[int, Callable[[], None]], T]) -> list[T]:
    """Run ``work(n, start)`` in ``count`` threads; each calls ``start()`` when it is ready and
    they all go on together. Returns the results in order; re-raises a thread's exception."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count
    errors: list[BaseException] = []

    def start() -> None:
        barrier.wait(timeout=30)

    def run(n: int) -> None:
        try:
            results[n] = work(n, start)
        except BaseException as exc:  # handed to the main thread below
            errors.append(exc)
            barrier.abort()  # nobody waits for a thread that will never arrive

    threads = [threading.Thread(target=run, args=(n,), name=f"racer-{n}") for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a racing thread hung"
    if errors:
        real = [e for e in errors if not isinstance(e, threading.BrokenBarrierError)]
        raise AssertionError(f"{len(errors)} of {count} threads raised") from (real or errors)[0]
    return results


@dataclass
class Ids:
    specialist_id: int
    location_id: int
    type_id: int


@pytest.fixture
def clinic(clinic: Clinic) -> Ids:
    """Dr. Weber working 08:00-18:00 every day at one location; a 45-minute type."""
    return Ids(clinic.weber.id, clinic.location, clinic.type)


@pytest.fixture
def app_settings(app_settings: dict[str, Any]) -> dict[str, Any]:
    """No rate limits: these tests race twenty threads through one app, and the limiter's
    in-process storage (``limits`` 5.8, memory://) can start its expiry timer twice from two
    threads ("threads can only be started once": seen failing every thread of a race once
    in about ten runs under load). A server's sync workers run one request at a time, and
    several workers share Redis."""
    return {**app_settings, "RATELIMIT_ENABLED": False}


def _exclusion_constraints() -> int:
    return db.session.scalar(
        text(
            "SELECT count(*) FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace "
            "WHERE c.conname = :name AND n.nspname = current_schema()"
        ),
        {"name": EXCLUSION_NAME},
    )


@pytest.fixture(autouse=True)
def _guarantee_in_place(app: Flask) -> Iterator[None]:
    """On PostgreSQL, check the exclusion constraint exists before and after each test.

    It depends on btree_gist's operator classes, and CREATE EXTENSION puts those in the
    schema that happened to run it first. When that schema is another test run's (or xdist
    worker's), dropping it at its end drops the constraint here too (DROP SCHEMA ... CASCADE),
    and a race test would then report double bookings that are the test setup's fault.
    """

    def check(when: str) -> None:
        with app.app_context():
            if db.engine.dialect.name != "postgresql":
                return
            if _exclusion_constraints() != 1:
                pytest.fail(
                    f"{EXCLUSION_NAME} is missing {when} the test: the btree_gist extension it "
                    "depends on was dropped with another test schema (see tests/conftest.py)"
                )

    check("before")
    yield
    check("after")


def count(model: type) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


# --- patients racing for one slot through the request's steps ------------------------------


def test_twenty_patients_posting_the_same_slot_book_it_once(
    app: Flask, clinic: Ids, upload_dir: Path
) -> None:
    with app.app_context():
        appointment_type = db.session.get(AppointmentType, clinic.type_id)
        now = now_utc()
        # A slot a few days out, comfortably inside the notice and horizon during the race.
        slot = next(
            s
            for s in open_slots(appointment_type, now, now + timedelta(days=14))
            if s.starts_at > now + timedelta(days=3)
        )
    path = f"/request?type={clinic.type_id}&slot={slot.key}"

    def patient(n: int, start: Callable[[], None]) -> tuple[int, str]:
        client = app.test_client()
        tokens = form_tokens(client, path)  # the picked time, carried into the steps
        answers = valid_answers(
            full_name=f"Patient Number {n}",
            email=f"patient{n}@example.com",
            appointment_type=str(clinic.type_id),
            slot=slot.key,
        )
        files = [(pdf_bytes(f"MRI {n}"), f"mri-{n}.pdf")]
        assert fill_request(client, answers, files, tokens) is None  # up to the review
        start()
        response = send_request(client, answers, tokens)
        return response.status_code, response.get_data(as_text=True)

    results = run_together(THREADS, patient)

    statuses = sorted(status for status, _page in results)
    assert statuses == [303] + [409] * (THREADS - 1)
    for status, page in results:
        if status == 409:
            assert "that time was just taken" in page
    with app.app_context():
        (consultation,) = db.session.scalars(select(ConsultationRequest)).all()
        appointment = consultation.appointment
        assert appointment is not None and appointment.active
        assert (appointment.specialist_id, appointment.location_id) == (
            clinic.specialist_id,
            clinic.location_id,
        )
        assert (appointment.starts_at, appointment.ends_at) == (slot.starts_at, slot.ends_at)
        assert consultation.assigned_specialist_id == clinic.specialist_id
        # The losers stored nothing: no patient, request, document or email; their files stay
        # in their drafts, to send with another time.
        assert count(Appointment) == 1
        assert count(Patient) == 1
        assert count(Document) == 1
        assert count(OutboxEmail) == 2
        assert count(DraftDocument) == THREADS - 1
        winner = consultation.patient.email.removeprefix("patient").removesuffix("@example.com")
        assert consultation.patient.full_name == f"Patient Number {winner}"
        assert [d.original_name for d in consultation.documents] == [f"mri-{winner}.pdf"]
    assert len(stored_files(upload_dir)) == THREADS


# --- the database's own guarantee ---------------------------------------------------------


@pytest.fixture
def requests(app: Flask, clinic: Ids) -> Iterator[list[int]]:
    """Six waiting requests (an appointment belongs to one request), inside an app context."""
    with app.app_context():
        ids = [make_request(email=f"p{n}@example.com").id for n in range(6)]
        # End the session's transaction: on SQLite it would hold the write lock (BEGIN
        # IMMEDIATE) and the test's own sessions would wait for it.
        db.session.close()
        yield ids


def appointment(
    request_id: int,
    clinic: Ids,
    starts_at: datetime,
    *,
    minutes: int = 45,
    buffer: int = 10,
    active: bool = True,
    specialist_id: int | None = None,
) -> Appointment:
    return Appointment(
        request_id=request_id,
        specialist_id=specialist_id or clinic.specialist_id,
        location_id=clinic.location_id,
        starts_at=starts_at,
        ends_at=starts_at + timedelta(minutes=minutes),
        blocked_until=starts_at + timedelta(minutes=minutes + buffer),
        active=active,
        uid=f"{secrets.token_hex(8)}@example.com",
    )


TEN = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)  # 10:00 Berlin


def test_the_database_refuses_an_overlap_made_while_the_first_is_uncommitted(
    app: Flask, clinic: Ids, requests: list[int]
) -> None:
    """Bypassing every Python check: two sessions insert overlapping appointments; the second
    waits for the first transaction, then is refused when it commits."""
    outcome: list[BaseException | None] = []
    engine = db.engine  # the thread has no app context
    with Session(engine) as first:
        first.add(appointment(requests[0], clinic, TEN))
        first.flush()  # written, not committed

        def second_session() -> None:
            try:
                with Session(engine) as second:
                    # 10:30, inside the first's 10:00-10:55 block.
                    second.add(appointment(requests[1], clinic, TEN + timedelta(minutes=30)))
                    second.commit()
                outcome.append(None)
            except BaseException as exc:  # checked in the main thread
                outcome.append(exc)

        thread = threading.Thread(target=second_session)
        thread.start()
        clock.sleep(0.5)
        # It cannot finish before the first commits: SQLite holds it at BEGIN IMMEDIATE,
        # PostgreSQL at the exclusion constraint, waiting for the first transaction.
        assert thread.is_alive() and not outcome, outcome
        first.commit()
        thread.join(timeout=20)
    assert not thread.is_alive()
    (error,) = outcome
    assert isinstance(error, IntegrityError), error
    assert is_overlap_error(error)
    assert count(Appointment) == 1


def test_the_database_allows_what_does_not_overlap(
    app: Flask, clinic: Ids, requests: list[int]
) -> None:
    other = staff_user("okafor@example.com").id
    db.session.close()
    with Session(db.engine) as session:
        booked = appointment(requests[0], clinic, TEN)  # blocks 10:00-10:55
        session.add(booked)
        session.commit()

    with Session(db.engine) as session:
        session.add(appointment(requests[1], clinic, TEN + timedelta(minutes=30)))
        with pytest.raises(IntegrityError) as refused:
            session.commit()
        assert is_overlap_error(refused.value)

    with Session(db.engine) as session:
        cancelled = appointment(requests[1], clinic, TEN + timedelta(minutes=15), active=False)
        touching = appointment(requests[2], clinic, TEN + timedelta(minutes=55))  # at blocked_until
        elsewhere = appointment(requests[3], clinic, TEN, specialist_id=other)
        session.add_all([cancelled, touching, elsewhere])
        session.commit()
        ids = {"cancelled": cancelled.id, "touching": touching.id}

    # The same check guards updates: moving into the block, or reactivating a cancelled one.
    for name, change in (
        ("touching", {"starts_at": TEN + timedelta(minutes=50)}),
        ("cancelled", {"active": True}),
    ):
        with Session(db.engine) as session:
            row = session.get(Appointment, ids[name])
            for field, value in change.items():
                setattr(row, field, value)
            if "starts_at" in change:
                row.ends_at = row.starts_at + timedelta(minutes=45)
                row.blocked_until = row.ends_at + timedelta(minutes=10)
            with pytest.raises(IntegrityError) as refused:
                session.commit()
            assert is_overlap_error(refused.value), name

    with Session(db.engine) as session:
        # Another constraint's refusal is not mistaken for a taken slot.
        session.add(appointment(requests[4], clinic, TEN + timedelta(hours=3)))
        session.add(appointment(requests[4], clinic, TEN + timedelta(hours=5)))
        with pytest.raises(IntegrityError) as other_error:
            session.commit()
        assert not is_overlap_error(other_error.value)

    active = db.session.scalars(select(Appointment).where(Appointment.active.is_(True))).all()
    assert sorted((a.specialist_id, a.starts_at) for a in active) == sorted(
        [
            (clinic.specialist_id, TEN),
            (clinic.specialist_id, TEN + timedelta(minutes=55)),
            (other, TEN),
        ]
    )


# --- staff racing to move twenty appointments onto one slot -------------------------------


def test_twenty_staff_reschedules_onto_one_slot_move_exactly_one(app: Flask, clinic: Ids) -> None:
    target_start = time(15, 0)
    with app.app_context():
        first_day = clinic_today() + timedelta(days=3)
        coordinator = staff_user("coord@example.com")
        specialist = db.session.get(StaffUser, clinic.specialist_id)
        location = db.session.get(Location, clinic.location_id)
        appointment_type = db.session.get(AppointmentType, clinic.type_id)
        request_ids = []
        for n in range(THREADS):
            consultation = make_request(email=f"p{n}@example.com")
            # Each confirmed at 10:00 on a day of its own.
            confirm_request(
                consultation,
                coordinator,
                Slot(
                    appointment_type, specialist, location, first_day + timedelta(days=n), time(10)
                ),
            )
            request_ids.append(consultation.id)
        coordinator_id = coordinator.id
        before = {
            a.request_id: (a.starts_at, a.sequence)
            for a in db.session.scalars(select(Appointment)).all()
        }

    def staff_member(n: int, start: Callable[[], None]) -> str:
        start()
        with app.app_context():
            slot = Slot(
                db.session.get(AppointmentType, clinic.type_id),
                db.session.get(StaffUser, clinic.specialist_id),
                db.session.get(Location, clinic.location_id),
                first_day,
                target_start,
            )
            consultation = db.session.get(ConsultationRequest, request_ids[n])
            actor = db.session.get(StaffUser, coordinator_id)
            try:
                reschedule_request(consultation, actor, slot)
            except WorkflowError as exc:
                db.session.rollback()
                return f"refused: {exc}"
            return "moved"

    outcomes = run_together(THREADS, staff_member)

    assert outcomes.count("moved") == 1, outcomes
    assert all(o.startswith("refused: ") for o in outcomes if o != "moved")
    winner = request_ids[outcomes.index("moved")]
    with app.app_context():
        target = db.session.scalars(
            select(Appointment).where(Appointment.request_id == winner)
        ).one()
        assert to_clinic_tz(target.starts_at).replace(tzinfo=None) == datetime.combine(
            first_day, target_start
        )
        assert target.sequence == 1
        # Everyone else is exactly as before: time, sequence, status, no event, no email.
        for row in db.session.scalars(select(Appointment).where(Appointment.request_id != winner)):
            assert (row.starts_at, row.sequence) == before[row.request_id]
            assert row.active
        statuses = set(db.session.scalars(select(ConsultationRequest.status)))
        assert statuses == {RequestStatus.CONFIRMED}
        assert count(RequestEvent) == THREADS + 1
        assert (
            db.session.scalar(
                select(func.count())
                .select_from(AuditEvent)
                .where(AuditEvent.action == "request_rescheduled")
            )
            == 1
        )
        # Receipts (patient and clinic), the others' confirmations and the move: the winner's
        # confirmation, still unsent, was withdrawn by the move (its time is outdated; the
        # move's email gives the new one).
        assert count(OutboxEmail) == 2 * THREADS + (THREADS - 1) + 1


@pytest.mark.parametrize("mover", ["staff", "patient"])
def test_a_move_writes_the_appointments_row_once_inside_its_savepoint(
    app: Flask, clinic: Ids, mover: str
) -> None:
    """The move is the last write of the appointment's row before the commit, made inside
    the savepoint where a refused or deadlocked placement is read as "that time was just
    taken". PostgreSQL checks the no-overlap constraint again on every UPDATE of the row:
    the invitation's sequence, once set after the move, waited for a racer moving another
    appointment onto the same time while the racer waited for it, and the deadlock PostgreSQL
    broke was an error instead of a refusal (seen once in the twenty-staff race above)."""
    with app.app_context():
        day = clinic_today() + timedelta(days=3)
        specialist = db.session.get(StaffUser, clinic.specialist_id)
        location = db.session.get(Location, clinic.location_id)
        appointment_type = db.session.get(AppointmentType, clinic.type_id)
        coordinator = staff_user("coord@example.com")
        consultation = make_request()
        confirm_request(
            consultation, coordinator, Slot(appointment_type, specialist, location, day, time(10))
        )
        request_id, coordinator_id = consultation.id, coordinator.id
        db.session.close()
    with app.app_context(), sql_statements(app) as statements:
        consultation = db.session.get(ConsultationRequest, request_id)
        if mover == "staff":
            reschedule_request(
                consultation,
                db.session.get(StaffUser, coordinator_id),
                Slot(
                    db.session.get(AppointmentType, clinic.type_id),
                    db.session.get(StaffUser, clinic.specialist_id),
                    db.session.get(Location, clinic.location_id),
                    day,
                    time(15),
                ),
            )
        else:  # on the private page
            starts_at = datetime.combine(day, time(15), tzinfo=clinic_tz())
            choice = SlotChoice(clinic.type_id, clinic.specialist_id, clinic.location_id, starts_at)
            manage_services.reschedule(consultation, choice)
    words = [" ".join(s.split()).upper() for s in statements]
    updates = [n for n, s in enumerate(words) if s.startswith("UPDATE APPOINTMENT ")]
    assert len(updates) == 1, [words[n] for n in updates]
    opened = max(n for n, s in enumerate(words) if s.startswith("SAVEPOINT"))
    released = min(n for n, s in enumerate(words) if s.startswith("RELEASE SAVEPOINT"))
    assert opened < updates[0] < released
    with app.app_context():
        moved = db.session.scalars(select(Appointment)).one()
        assert moved.sequence == 1  # the confirmation's 0, then the move's
        assert to_clinic_tz(moved.starts_at).hour == 15
