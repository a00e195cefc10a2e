"""How a type's visits take place cannot change under a booking in flight, on PostgreSQL.

The admin's change counts the type's appointments to come before it changes the mode
(``admin_services.edit_appointment_type``); a booking committed between the count and the
change would hold a confirmation in one mode and reminders in the other. Each side locks the
type's row: the booking FOR SHARE (``services.place_appointment``), the change FOR UPDATE. The
race is made exact: the other side's lock is held by a second connection, and the side under
test must wait for it (here, until a short lock time-out says it waited).

PostgreSQL only: SQLite's BEGIN IMMEDIATE already runs one writer at a time.
"""

from __future__ import annotations

import threading

import pytest
from flask import Flask
from sqlalchemy import select, text
from sqlalchemy.exc import OperationalError

from booking.dashboard import services as workflow
from booking.extensions import db
from booking.requests.models import ConsultationRequest
from booking.scheduling import admin_services as admin
from booking.scheduling.models import AppointmentType, Location, VisitMode
from booking.staff.models import StaffUser
from tests.factories import make_request, slot_two_days_ahead
from tests.support import Clinic

pytestmark = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)

LOCK = "SELECT id FROM appointment_type WHERE id = :id FOR {}"


def _held(type_id: int, mode: str):
    """A second connection holding the type's row ``mode`` until it is closed."""
    connection = db.engine.connect()
    transaction = connection.begin()
    connection.execute(text(LOCK.format(mode)), {"id": type_id})
    return connection, transaction


def test_a_change_of_mode_waits_for_a_booking_in_flight(app: Flask, clinic: Clinic) -> None:
    """A booking inserting its appointment holds the type FOR KEY SHARE (its foreign key)
    until it commits; the change of mode, which would not wait for that by itself (its UPDATE
    touches no key), waits to count it."""
    with app.app_context():
        connection, transaction = _held(clinic.type, "KEY SHARE")
        try:
            db.session.execute(text("SET LOCAL lock_timeout = '300ms'"))
            kind = db.session.get(AppointmentType, clinic.type)
            with pytest.raises(OperationalError, match="lock timeout"):
                admin.edit_appointment_type(kind, kind.name, {}, VisitMode.VIDEO, actor=None)
            db.session.rollback()
        finally:
            transaction.rollback()
            connection.close()
        assert db.session.get(AppointmentType, clinic.type).mode is VisitMode.IN_PERSON


def test_a_booking_made_while_the_mode_changes_tells_the_patient_the_new_mode(
    app: Flask, clinic: Clinic
) -> None:
    """The admin's change is written, not committed; a coordinator confirms a time of the
    type meanwhile. The confirmation waits for the change and is written in its mode: not an
    email sending a video patient to the address."""
    from booking.notifications.models import OutboxEmail

    with app.app_context():
        request_id, booking = make_request().id, slot_two_days_ahead(clinic)
        coordinator_id = clinic.coordinator.id
        db.session.commit()
        connection, transaction = _held(clinic.type, "UPDATE")
        connection.execute(
            text("UPDATE appointment_type SET mode = 'video' WHERE id = :id"), {"id": clinic.type}
        )
        errors: list[BaseException] = []

        def confirm() -> None:
            with app.app_context():
                try:
                    workflow.confirm_request(
                        db.session.get(ConsultationRequest, request_id),
                        db.session.get(StaffUser, coordinator_id),
                        workflow.Slot(
                            db.session.get(AppointmentType, clinic.type),
                            db.session.get(StaffUser, booking.specialist.id),
                            db.session.get(Location, booking.location.id),
                            booking.day,
                            booking.start,
                        ),
                    )
                except BaseException as exc:  # shown by the assertion below
                    errors.append(exc)
                finally:
                    db.session.remove()

        worker = threading.Thread(target=confirm)
        worker.start()
        worker.join(timeout=1.0)
        assert worker.is_alive()  # waiting for the change
        transaction.commit()
        connection.close()
        worker.join(timeout=30)
        assert not worker.is_alive() and errors == []
        (update,) = db.session.scalars(
            select(OutboxEmail).where(OutboxEmail.template == "request_update")
        ).all()
        assert "By video" in update.body_text and "Where: Main clinic" not in update.body_text
