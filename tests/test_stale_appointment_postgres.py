"""A change that read the appointment before taking its request's lock, on PostgreSQL.

A page loads the request (and its appointment) first and the service locks the request after:
a coordinator who moves the appointment in between commits a newer time. The patient's move
must then start from that newer time, as if it came a moment later: the calendar sequence
keeps rising (a calendar keeps the highest), the audit row's "before" is the coordinator's time
and the notice rule is checked against it. It used the appointment as first read, and undid
the coordinator's move with a calendar update of the same sequence as theirs.

The interleaving is made exact: the coordinator's move is committed, from its own session,
just before the patient's service asks for the lock. PostgreSQL only: on SQLite, BEGIN
IMMEDIATE serialises the whole of each change.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from flask import Flask
from sqlalchemy import select

from booking.audit.models import AuditEvent
from booking.dashboard import services as workflow
from booking.extensions import db
from booking.manage import services as manage
from booking.notifications.models import OutboxEmail
from booking.requests.models import ConsultationRequest
from booking.scheduling.availability import open_slots
from booking.scheduling.models import Appointment, AppointmentType
from booking.scheduling.services import SlotChoice
from booking.staff.models import StaffUser
from booking.timeutil import now_utc, to_clinic_tz
from tests.factories import confirm_at, make_request, staff_slot
from tests.support import Clinic, deliver_waiting_emails, open_manage_link

pytestmark = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)

CSRF = re.compile(r'csrf_token" type="hidden" value="([^"]+)"')


def test_a_patients_move_starts_from_the_time_the_clinic_moved_it_to(
    app: Flask, clinic: Clinic, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = app.test_client()
    with app.app_context():
        kind = db.session.get(AppointmentType, clinic.type)
        now = now_utc()
        slots = open_slots(kind, now + timedelta(days=3), now + timedelta(days=10))
        first, by_staff, by_patient = slots[0], slots[12], slots[24]
        consultation = make_request(
            slot=SlotChoice(kind.id, first.specialist_id, first.location_id, first.starts_at)
        )
        coordinator = db.session.get(StaffUser, clinic.coordinator.id)
        confirm_at(
            consultation, coordinator, kind, first.starts_at, first.specialist_id, clinic.location
        )
        deliver_waiting_emails(app)
        url = open_manage_link(client, consultation)
        request_id = consultation.id
        day = to_clinic_tz(by_patient.starts_at).date().isoformat()
        db.session.remove()
    token = CSRF.findall(client.get(f"{url}/reschedule?day={day}").get_data(as_text=True))[0]

    locked = manage.lock_request
    moved: list[bool] = []

    def coordinator_moves_it_first(consultation: ConsultationRequest) -> ConsultationRequest:
        if not moved:  # once: from its own session, committed before the patient's lock
            moved.append(True)
            with app.app_context():
                workflow.reschedule_request(
                    db.session.get(ConsultationRequest, request_id),
                    db.session.get(StaffUser, clinic.coordinator.id),
                    staff_slot(
                        db.session.get(AppointmentType, clinic.type),
                        by_staff.starts_at,
                        by_staff.specialist_id,
                        clinic.location,
                    ),
                )
                deliver_waiting_emails(app)
                db.session.remove()
        return locked(consultation)

    monkeypatch.setattr(manage, "lock_request", coordinator_moves_it_first)
    response = client.post(f"{url}/reschedule", data={"csrf_token": token, "slot": by_patient.key})
    assert response.status_code == 302 and moved

    with app.app_context():
        appointment = db.session.scalars(select(Appointment)).one()
        assert (appointment.starts_at, appointment.sequence) == (by_patient.starts_at, 3)
        # Held, confirmed, moved by the clinic, moved by the patient: each a step higher.
        updates = [
            (int(re.search(r"SEQUENCE:(\d+)", e.attachment_body).group(1)), e.template)
            for e in db.session.scalars(
                select(OutboxEmail)
                .where(OutboxEmail.attachment_body.is_not(None))
                .order_by(OutboxEmail.id)
            )
        ]
        assert [sequence for sequence, _template in updates] == [0, 1, 2, 3]
        audit = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "patient_rescheduled")
        ).one()
        assert audit.details["starts_at"]["before"] == by_staff.starts_at.isoformat()
        assert audit.details["sequence"] == {"before": 2, "after": 3}
