"""A location's address corrected while a patient books there, on PostgreSQL.

The correction (``services.edit_location``) emails the new address to every patient going to
the location, found by one query in its transaction. A booking not committed by then was not
found; it read the location before the correction committed, so its confirmation gave the old
address: the patient had only the old one. Each side now locks the location's row, the
correction FOR NO KEY UPDATE (not FOR UPDATE, which would block the foreign-key check of every
appointment written there), a booking bringing an appointment there FOR SHARE
(``services.place_appointment``, re-reading it): the booking waits and reads the new address,
or is waited for and told with the others (its receipt or confirmation, written with the old
address and not sent yet, written again). An appointment already to come there is not locked
by its location but by its request, which both sides lock (the correction after the location):
the booking holding its request must not wait for the location, or the two deadlock.

The interleavings are made exact: one side is held, inside its transaction, at the moment the
race needs, while the other runs up to its wait (seen in ``pg_stat_activity``).

PostgreSQL only: on SQLite, BEGIN IMMEDIATE runs one writer at a time, so the correction and
a booking never overlap.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select, text

from booking.dashboard import services as workflow
from booking.extensions import db
from booking.requests.models import ConsultationRequest, RequestStatus
from booking.scheduling import services
from booking.scheduling.models import AppointmentType, Location
from booking.scheduling.services import SlotChoice
from booking.staff.models import StaffUser
from tests.factories import book_first_open_time, make_request, staff_slot
from tests.support import Clinic, calendar_location, first_open_slot, outbox_emails, wait_until

pytestmark = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)

OLD_ADDRESS = "Friedrichstr. 1, Berlin"  # the clinic fixture's
NEW_ADDRESS = "Chausseestr. 12, 10115 Berlin"
ADMIN = "admin-correcting-the-address"
HELD = "booking-held"


def _lock_waits() -> int:
    """Statements of this database waiting for another transaction's lock (a new transaction
    each time: PostgreSQL keeps one snapshot of its activity view per transaction)."""
    with db.engine.connect() as conn:
        return conn.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock'"
            )
        )


class Race:
    """Threads, each in its own app context (its own session and connection), whose
    failures are handed to the test; and a gate one of them is held at."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.reached = threading.Event()
        self.go_on = threading.Event()
        self.errors: list[BaseException] = []
        self.threads: list[threading.Thread] = []

    def hold(self) -> None:
        """Called by the held side at the moment the race needs: wait for the other."""
        self.reached.set()
        assert self.go_on.wait(timeout=30), "the other side never started waiting"

    def start(self, name: str, work: Callable[[], object]) -> None:
        def run() -> None:
            with self.app.app_context():
                try:
                    work()
                except BaseException as exc:  # shown by ``finish``
                    self.errors.append(exc)
                    self.reached.set()
                finally:
                    db.session.remove()

        thread = threading.Thread(target=run, name=name)
        self.threads.append(thread)
        thread.start()

    def finish(self) -> None:
        self.go_on.set()
        for thread in self.threads:
            thread.join(timeout=30)
        assert not any(thread.is_alive() for thread in self.threads)
        if self.errors:
            raise AssertionError(f"{len(self.errors)} side(s) failed") from self.errors[0]


@pytest.fixture
def race(app: Flask) -> Iterator[Race]:
    race = Race(app)
    yield race
    race.go_on.set()  # never leave a thread held or running, whatever the test did
    for thread in race.threads:
        thread.join(timeout=30)


def correct_the_address(clinic: Clinic, name: str | None = None) -> None:
    """The admin's save of the new address, and of a new ``name`` if given (inside an app
    context)."""
    location = db.session.get(Location, clinic.location)
    services.edit_location(
        location,
        name or location.name,
        location.names,
        NEW_ADDRESS,
        actor=None,
        shown=services.location_mark(location),
    )


def test_a_booking_made_while_the_address_is_corrected_gives_the_patient_the_new_address(
    app: Flask, clinic: Clinic, race: Race, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The correction is written and its patients emailed, not committed; a patient books a
    time at the location meanwhile (their page read the old address). The booking waits for
    the correction, and its receipt and calendar file give the new address."""
    record = services.record

    def held_before_the_commit(action: str, **details: Any) -> Any:
        if threading.current_thread().name == ADMIN:
            race.hold()  # the correction's audit row: its last write before the commit
        return record(action, **details)

    monkeypatch.setattr(services, "record", held_before_the_commit)
    with app.app_context():
        slot = first_open_slot(db.session.get(AppointmentType, clinic.type))
        choice = SlotChoice(clinic.type, slot.specialist_id, slot.location_id, slot.starts_at)
    race.start(ADMIN, lambda: correct_the_address(clinic))
    assert race.reached.wait(timeout=30)
    race.start("patient", lambda: make_request(email="late@example.com", slot=choice))
    with app.app_context():
        wait_until(lambda: race.errors or _lock_waits() == 1, "the booking to wait", 20)
    race.finish()

    (receipt,) = outbox_emails(app, "request_received")
    assert receipt.recipient == "late@example.com"
    for body in (receipt.body_text, receipt.body_html):
        assert NEW_ADDRESS in body and OLD_ADDRESS not in body
    assert calendar_location(receipt.attachment_body).endswith(f", {NEW_ADDRESS}")


def test_a_correction_made_while_a_patient_books_waits_and_tells_them_the_new_address(
    app: Flask, clinic: Clinic, race: Race, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A patient's booking has placed its appointment at the location, not committed (its
    receipt will give the address it read: the old one). The correction saved meanwhile
    waits for it, then finds the appointment and emails the patient the new address."""
    from booking.patients import services as submission

    place = submission.place_appointment

    def held_once_placed(*args: Any, **kwargs: Any) -> Any:
        placed = place(*args, **kwargs)
        if threading.current_thread().name == HELD:
            race.hold()
        return placed

    monkeypatch.setattr(submission, "place_appointment", held_once_placed)
    with app.app_context():
        slot = first_open_slot(db.session.get(AppointmentType, clinic.type))
        choice = SlotChoice(clinic.type, slot.specialist_id, slot.location_id, slot.starts_at)
    race.start(HELD, lambda: make_request(email="booking@example.com", slot=choice))
    assert race.reached.wait(timeout=30)
    race.start(ADMIN, lambda: correct_the_address(clinic))
    with app.app_context():
        wait_until(lambda: race.errors or _lock_waits() == 1, "the correction to wait", 20)
    race.finish()

    (told,) = outbox_emails(app, "appointment_address")
    assert told.recipient == "booking@example.com"
    assert NEW_ADDRESS in told.body_text and OLD_ADDRESS not in told.body_text
    # Its receipt, committed with the old address and not sent yet, is written again.
    (receipt,) = outbox_emails(app, "request_received")
    assert NEW_ADDRESS in receipt.body_text and OLD_ADDRESS not in receipt.body_text


@pytest.mark.parametrize("renamed", [False, True], ids=["address", "name and address"])
def test_a_confirmation_under_way_and_a_correction_both_finish_and_the_patient_is_told(
    app: Flask, clinic: Clinic, race: Race, monkeypatch: pytest.MonkeyPatch, renamed: bool
) -> None:
    """A coordinator confirms the time a patient holds at the location: the request is
    locked. The correction, started meanwhile, locks the location and waits for that request.
    The confirmation must not then wait for the location (a deadlock: PostgreSQL would fail
    one of them); it commits, and the correction tells the patient the new address. Also
    when the admin renames the location in the same save: writing its unique name locks its
    row against the confirmation's foreign-key check, so the requests are locked first."""
    place = workflow.place_appointment

    def held_under_the_request_lock(*args: Any, **kwargs: Any) -> Any:
        if threading.current_thread().name == HELD:
            race.hold()
        return place(*args, **kwargs)

    monkeypatch.setattr(workflow, "place_appointment", held_under_the_request_lock)
    with app.app_context():
        consultation = book_first_open_time(clinic)
        request_id, held = consultation.id, consultation.appointment
        slot = (held.starts_at, held.specialist_id, held.location_id)

    def confirm() -> None:
        workflow.confirm_request(
            db.session.get(ConsultationRequest, request_id),
            db.session.get(StaffUser, clinic.coordinator.id),
            staff_slot(db.session.get(AppointmentType, clinic.type), *slot),
        )

    race.start(HELD, confirm)
    assert race.reached.wait(timeout=30)
    race.start(ADMIN, lambda: correct_the_address(clinic, "Spine centre" if renamed else None))
    with app.app_context():
        wait_until(lambda: race.errors or _lock_waits() == 1, "the correction to wait", 20)
    race.finish()

    (told,) = outbox_emails(app, "appointment_address")
    assert told.request_id == request_id
    assert NEW_ADDRESS in told.body_text
    if renamed:
        assert "Spine centre" in told.body_text
    # The confirmation, committed first with the old address, is written again.
    (confirmation,) = outbox_emails(app, "request_update")
    assert "Your appointment is confirmed." in confirmation.body_text
    assert NEW_ADDRESS in confirmation.body_text and OLD_ADDRESS not in confirmation.body_text
    with app.app_context():
        confirmed = db.session.get(ConsultationRequest, request_id)
        assert confirmed.status == RequestStatus.CONFIRMED
        assert db.session.scalar(select(Location.address)) == NEW_ADDRESS


def test_a_patient_taking_an_offer_there_as_the_address_is_corrected_is_not_deadlocked(
    app: Flask, clinic: Clinic, race: Race, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A patient whose time is at another location takes an earlier time offered at this
    one: their request is locked, and the move waits for this location. The correction,
    holding the location, writes waiting offer emails again with the new address; it must
    not wait for that patient's request (nor write their email, whose foreign key waits for
    it), or the two deadlock. It leaves that email as it is; the patient's confirmation of
    the move gives the new address."""
    from booking.manage import services as manage
    from booking.requests import waitlist
    from booking.scheduling.availability import open_slots
    from booking.scheduling.models import SlotOffer
    from booking.timeutil import now_utc
    from tests.factories import make_hours, make_location

    with app.app_context():
        kind = db.session.get(AppointmentType, clinic.type)
        elsewhere = make_location("Branch", "Ackerstr. 3, Berlin")
        make_hours(db.session.get(StaffUser, clinic.okafor.id), elsewhere)
        start = now_utc() + timedelta(days=2)
        slots = open_slots(kind, start, start + timedelta(days=7))
        here = next(s for s in slots if s.location_id == clinic.location)
        there = next(
            s
            for s in slots
            if s.location_id == elsewhere.id and s.starts_at >= here.starts_at + timedelta(days=1)
        )
        first = make_request(
            email="first@example.com",
            slot=SlotChoice(kind.id, here.specialist_id, clinic.location, here.starts_at),
        )
        waiting = make_request(
            email="waiting@example.com",
            slot=SlotChoice(kind.id, there.specialist_id, elsewhere.id, there.starts_at),
        )
        waitlist.join_waitlist(waiting)
        waiting_id = waiting.id
        manage.cancel(first, None)  # its time is offered to the waiting patient
        offer_id = db.session.scalars(select(SlotOffer.id)).one()
    (offered,) = outbox_emails(app, "waitlist_offer")
    assert offered.request_id == waiting_id and OLD_ADDRESS in offered.body_text

    place = waitlist.place_appointment

    def held_under_the_request_lock(*args: Any, **kwargs: Any) -> Any:
        if threading.current_thread().name == HELD:
            race.hold()
        return place(*args, **kwargs)

    monkeypatch.setattr(waitlist, "place_appointment", held_under_the_request_lock)
    race.start(
        HELD,
        lambda: waitlist.accept_offer(
            db.session.get(SlotOffer, offer_id), db.session.get(ConsultationRequest, waiting_id)
        ),
    )
    assert race.reached.wait(timeout=30)
    race.start(ADMIN, lambda: correct_the_address(clinic))
    admin = race.threads[-1]
    with app.app_context():
        wait_until(
            lambda: race.errors or not admin.is_alive() or _lock_waits() == 1,
            "the correction to finish or wait",
            20,
        )
    race.finish()

    with app.app_context():
        moved = db.session.get(ConsultationRequest, waiting_id).appointment
        assert (moved.location_id, moved.starts_at) == (clinic.location, here.starts_at)
        assert (
            db.session.scalar(select(Location.address).where(Location.id == clinic.location))
            == NEW_ADDRESS
        )
    assert outbox_emails(app, "waitlist_offer") == []  # withdrawn as the offer was taken
    (confirmation,) = [
        e for e in outbox_emails(app, "request_update") if e.request_id == waiting_id
    ]
    assert "has changed" in confirmation.subject
    assert NEW_ADDRESS in confirmation.body_text and OLD_ADDRESS not in confirmation.body_text
