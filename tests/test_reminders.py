"""Reminders before confirmed appointments: due ones sent once, even with two workers."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select, update

from booking.audit.models import AuditEvent
from booking.dashboard import services as workflow
from booking.extensions import db
from booking.notifications.models import OutboxEmail, OutboxStatus
from booking.requests.models import ConsultationRequest
from booking.requests.reminders import send_due_reminders
from booking.scheduling.availability import open_slots
from booking.scheduling.models import Appointment, AppointmentType, ReminderSent
from booking.scheduling.services import SlotChoice
from booking.staff.models import StaffUser
from booking.timeutil import now_utc
from tests.factories import (
    confirm_at,
    make_appointment_type,
    make_hours,
    make_location,
    make_request,
    make_staff,
    staff_slot,
)
from tests.smtp import SmtpServer
from tests.support import AuthActions, section_at, sql_statements


def _confirm(after: timedelta) -> dict[str, Any]:
    """A new request confirmed now at the first free time from ``after`` ahead."""
    coordinator = db.session.scalars(
        select(StaffUser).where(StaffUser.email == "coord@example.com")
    ).one()
    appointment_type = db.session.scalars(select(AppointmentType)).one()
    start = now_utc() + after
    slot = open_slots(appointment_type, start, start + timedelta(days=2))[0]  # Dr. Weber's
    consultation = make_request()
    confirm_at(
        consultation,
        coordinator,
        appointment_type,
        slot.starts_at,
        slot.specialist_id,
        slot.location_id,
    )
    return {"request_id": consultation.id, "starts_at": slot.starts_at}


@pytest.fixture
def clinic(app: Flask) -> None:
    """A coordinator, Dr. Weber working 09:00-17:00 every day, one location and type."""
    with app.app_context():
        make_staff("coordinator", "coord@example.com")
        specialist = make_staff("specialist", "weber@example.com")
        make_hours(specialist, make_location(), range(7), "09:00", "17:00")
        make_appointment_type()


@pytest.fixture
def confirmed(app: Flask, clinic: None) -> dict[str, Any]:
    """A confirmed appointment about three days ahead."""
    with app.app_context():
        return _confirm(timedelta(days=3))


def reminders(app: Flask) -> list[OutboxEmail]:
    with app.app_context():
        rows = db.session.scalars(
            select(OutboxEmail)
            .where(OutboxEmail.template == "appointment_reminder")
            .order_by(OutboxEmail.id)  # as written: without it PostgreSQL may return any order
        ).all()
        db.session.expunge_all()
        return list(rows)


def run(app: Flask, at) -> list[int]:
    with app.app_context():
        return send_due_reminders(now=at)


def test_each_lead_time_is_sent_once(app: Flask, confirmed: dict[str, Any]) -> None:
    starts_at = confirmed["starts_at"]
    assert run(app, starts_at - timedelta(hours=72)) == []  # nothing due yet
    assert len(run(app, starts_at - timedelta(hours=47))) == 1  # the 48-hour reminder
    assert run(app, starts_at - timedelta(hours=40)) == []  # not again
    assert len(run(app, starts_at - timedelta(hours=1, minutes=50))) == 1  # the 2-hour one
    assert run(app, starts_at - timedelta(hours=1)) == []
    assert run(app, starts_at + timedelta(minutes=5)) == []  # past appointments: none
    emails = reminders(app)
    assert len(emails) == 2
    body = emails[0].body_text
    assert "Please bring:" in body and "MRI, CT or X-ray" in body and "/manage/" in body
    # Two hours before, the appointment can no longer be changed online: no link that
    # would refuse, but the way to change it.
    last = emails[1].body_text
    assert "/manage/" not in last
    assert "It can no longer be changed or cancelled online" in last
    assert "Appointment: New-patient spine evaluation\nWhen: " in body  # what kind of visit
    assert emails[0].recipient == "erika.mustermann@example.com"


def test_a_worker_that_was_down_sends_only_the_nearest_missed_reminder(
    app: Flask, confirmed: dict[str, Any]
) -> None:
    # Confirmed three days ahead; no worker ran through the 48- and the 2-hour moments.
    assert len(run(app, confirmed["starts_at"] - timedelta(hours=1))) == 1
    assert run(app, confirmed["starts_at"] - timedelta(minutes=30)) == []
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(ReminderSent)) == 2


def test_two_workers_at_once_send_one_reminder(app: Flask, confirmed: dict[str, Any]) -> None:
    at = confirmed["starts_at"] - timedelta(hours=47)
    barrier = threading.Barrier(2)
    results: list[list[int]] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            with app.app_context():
                barrier.wait()
                results.append(send_due_reminders(now=at))
                db.session.remove()
        except BaseException as exc:  # collected and re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors, errors
    assert sorted(len(r) for r in results) == [0, 1]
    assert len(reminders(app)) == 1


def test_no_reminder_once_the_patient_is_marked_deceased(
    app: Flask, confirmed: dict[str, Any]
) -> None:
    """Staff who learn that a patient died mark it on the record: the family is not sent a
    reminder (nor earlier-time offers or reminders to send documents) for the appointment
    that nobody has cancelled yet."""
    from booking.outcomes.services import mark_deceased

    with app.app_context():
        consultation = db.session.get(ConsultationRequest, confirmed["request_id"])
        coordinator = db.session.scalars(
            select(StaffUser).where(StaffUser.email == "coord@example.com")
        ).one()
        mark_deceased(consultation, coordinator)
    assert run(app, confirmed["starts_at"] - timedelta(hours=47)) == []
    assert reminders(app) == []


def test_no_reminder_for_an_appointment_cancelled_while_the_job_runs(
    app: Flask, confirmed: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The job reads the appointments due, then sends each in its own transaction: a patient
    who cancels in between (another process) must not be reminded of the cancelled visit."""
    from booking.manage.services import cancel
    from booking.requests import reminders as job

    real_fell_due = job._fell_due
    cancelled: list[bool] = []

    def cancel_first(appointment, lead, now):
        if not cancelled:
            cancelled.append(True)
            cancel(db.session.get(ConsultationRequest, confirmed["request_id"]), None)
        return real_fell_due(appointment, lead, now)

    monkeypatch.setattr(job, "_fell_due", cancel_first)
    assert run(app, confirmed["starts_at"] - timedelta(hours=47)) == []
    assert cancelled and reminders(app) == []


def test_an_appointment_erased_while_the_job_runs_does_not_stop_the_others(
    app: Flask, clinic: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The job reads the appointments due, ends the read, then sends each: one erased in
    between by another connection (an erasure, a retention run) is skipped, and the next
    patient is still reminded, in the same run."""
    from sqlalchemy import delete

    from booking.requests import reminders as job

    with app.app_context():
        first = _confirm(timedelta(days=3))
        second = _confirm(timedelta(days=3, hours=2))
        first_appointment = db.session.scalars(
            select(Appointment.id).where(Appointment.request_id == first["request_id"])
        ).one()
    real_fell_due = job._fell_due
    erased: list[bool] = []

    def erase_first(appointment, lead, now):
        if not erased:
            erased.append(True)
            with db.engine.begin() as other:  # another connection, as another process's
                other.execute(delete(Appointment).where(Appointment.id == first_appointment))
        return real_fell_due(appointment, lead, now)

    monkeypatch.setattr(job, "_fell_due", erase_first)
    assert len(run(app, second["starts_at"] - timedelta(hours=47))) == 1
    [email] = reminders(app)
    assert erased and email.request_id == second["request_id"]


def test_one_reminder_that_fails_does_not_hold_back_the_others(
    app: Flask, clinic: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two appointments due; composing the first one's reminder fails: the second patient
    is still reminded, and the first is tried again on the next run."""
    from booking.requests import emails as patient_emails

    with app.app_context():
        first = _confirm(timedelta(days=3))
        second = _confirm(timedelta(days=3, hours=2))
    real_reminder = patient_emails.reminder

    def failing_first(consultation, appointment, **options):
        if consultation.id == first["request_id"]:
            raise RuntimeError("cannot compose this one")
        return real_reminder(consultation, appointment, **options)

    monkeypatch.setattr(patient_emails, "reminder", failing_first)
    at = second["starts_at"] - timedelta(hours=47)
    assert len(run(app, at)) == 1
    monkeypatch.setattr(patient_emails, "reminder", real_reminder)
    assert len(run(app, at)) == 1  # the first, on the next run
    assert len(reminders(app)) == 2


def test_no_reminder_for_a_cancelled_appointment(app: Flask, confirmed: dict[str, Any]) -> None:
    with app.app_context():
        consultation = db.session.get(ConsultationRequest, confirmed["request_id"])
        coordinator = db.session.scalars(
            select(StaffUser).where(StaffUser.email == "coord@example.com")
        ).one()
        workflow.cancel_request(consultation, coordinator)
    assert run(app, confirmed["starts_at"] - timedelta(hours=1)) == []
    assert reminders(app) == []


def test_a_rescheduled_appointment_is_reminded_of_its_new_time(
    app: Flask, confirmed: dict[str, Any]
) -> None:
    assert len(run(app, confirmed["starts_at"] - timedelta(hours=47))) == 1
    with app.app_context():
        db.session.execute(update(OutboxEmail).values(status=OutboxStatus.SENT))
        db.session.commit()
    with app.app_context():
        consultation = db.session.get(ConsultationRequest, confirmed["request_id"])
        coordinator = db.session.scalars(
            select(StaffUser).where(StaffUser.email == "coord@example.com")
        ).one()
        appointment = db.session.scalars(select(Appointment)).one()
        appointment_type = db.session.scalars(select(AppointmentType)).one()
        # The first free time from a day later (not the same time a day later: across a
        # clock change or into a holiday that may be closed, and the test would fail by date).
        later = appointment.starts_at + timedelta(days=1)
        new_start = open_slots(appointment_type, later, later + timedelta(days=7))[0].starts_at
        workflow.reschedule_request(
            consultation,
            coordinator,
            staff_slot(
                appointment_type,
                new_start,
                appointment.specialist_id,
                appointment.location_id,
            ),
        )
    assert len(run(app, new_start - timedelta(hours=47))) == 1
    assert len(reminders(app)) == 2


def _coordinator() -> StaffUser:
    return db.session.scalars(select(StaffUser).where(StaffUser.email == "coord@example.com")).one()


def test_a_reminder_not_sent_yet_is_withdrawn_when_the_appointment_changes(
    app: Flask, clinic: None
) -> None:
    """The job queued the 48-hour reminder, but the mail server was slow (the email waits
    for its next attempt): the patient moved the time, and staff cancelled another request.
    Delivered after the change's own email, the reminder would send the patient to the old
    time, or to a visit that no longer takes place: it is withdrawn with the change, the
    audit row says so, and a reminder already sent stays on the record."""
    from booking.manage import services as manage

    with app.app_context():
        moved = _confirm(timedelta(days=3))
        cancelled = _confirm(timedelta(days=3, hours=2))
        kept = _confirm(timedelta(days=3, hours=4))
    assert len(run(app, kept["starts_at"] - timedelta(hours=47))) == 3
    with app.app_context():
        sent = db.session.scalars(
            select(OutboxEmail).where(OutboxEmail.request_id == kept["request_id"])
        ).all()
        for email in sent:
            email.status = OutboxStatus.SENT
        db.session.commit()

        consultation = db.session.get(ConsultationRequest, moved["request_id"])
        appointment_type = db.session.scalars(select(AppointmentType)).one()
        later = moved["starts_at"] + timedelta(days=1)
        slot = open_slots(appointment_type, later, later + timedelta(days=1))[0]
        manage.reschedule(
            consultation,
            SlotChoice(appointment_type.id, slot.specialist_id, slot.location_id, slot.starts_at),
        )
        workflow.cancel_request(
            db.session.get(ConsultationRequest, cancelled["request_id"]), _coordinator()
        )
        # A reminder already sent (the kept request's) is history: it stays. So does the
        # kept request's through a change of something else (its patient's consent stays).
        workflow.cancel_request(
            db.session.get(ConsultationRequest, kept["request_id"]), _coordinator()
        )

    left = {(e.request_id, e.status) for e in reminders(app)}
    assert left == {(kept["request_id"], OutboxStatus.SENT)}
    with app.app_context():
        # The changes' own emails are on their way.
        updates = db.session.scalars(
            select(OutboxEmail.request_id).where(OutboxEmail.template == "request_update")
        ).all()
        assert set(updates) == {moved["request_id"], cancelled["request_id"], kept["request_id"]}
        withdrawn = {
            event.target_id: (event.details or {}).get("emails_withdrawn")
            for event in db.session.scalars(
                select(AuditEvent).where(
                    AuditEvent.action.in_(["patient_rescheduled", "request_cancelled"])
                )
            )
        }
        reference = {r.id: r.reference for r in db.session.scalars(select(ConsultationRequest))}
        assert withdrawn[reference[moved["request_id"]]] == 1
        assert withdrawn[reference[cancelled["request_id"]]] == 1
        assert withdrawn[reference[kept["request_id"]]] is None


def test_withdrawing_consent_withdraws_the_reminder_not_sent_yet(
    app: Flask, confirmed: dict[str, Any]
) -> None:
    """The patient asks for no more reminders, offers or questionnaires: one already
    written and waiting for the mail server is not sent after all."""
    from booking.rights.services import withdraw_contact_consent

    assert len(run(app, confirmed["starts_at"] - timedelta(hours=47))) == 1
    with app.app_context():
        withdraw_contact_consent(db.session.get(ConsultationRequest, confirmed["request_id"]))
        event = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "contact_consent_withdrawn")
        ).one()
        assert event.details == {"emails_withdrawn": 1}
    assert reminders(app) == []


def test_a_change_that_outdates_no_kind_of_email_sends_no_statement(
    app: Flask, confirmed: dict[str, Any]
) -> None:
    """Most changes (a note, a triage acknowledgement) outdate no waiting email: withdrawing
    none costs no DELETE or UPDATE of the outbox in the change's transaction."""
    from booking.notifications.services import withdraw_pending

    with app.app_context(), sql_statements(app) as statements:
        assert withdraw_pending(confirmed["request_id"], frozenset()) == 0
    assert list(statements) == []


def test_no_reminder_for_a_lead_time_already_past_when_confirmed(app: Flask, clinic: None) -> None:
    with app.app_context():
        # Inside the 48-hour lead time: the confirmation email has just given the time.
        confirmed = _confirm(timedelta(hours=26))
    assert confirmed["starts_at"] - timedelta(hours=48) < now_utc()
    assert run(app, now_utc() + timedelta(minutes=2)) == []
    assert len(run(app, confirmed["starts_at"] - timedelta(hours=1, minutes=50))) == 1  # 2-hour
    assert run(app, confirmed["starts_at"] - timedelta(hours=1)) == []
    assert len(reminders(app)) == 1


def test_no_reminder_for_a_lead_time_already_past_when_moved(
    app: Flask, confirmed: dict[str, Any]
) -> None:
    with app.app_context():
        consultation = db.session.get(ConsultationRequest, confirmed["request_id"])
        appointment = consultation.appointment
        start = now_utc() + timedelta(hours=26)
        slot = open_slots(appointment.appointment_type, start, start + timedelta(days=1))[0]
        workflow.reschedule_request(
            consultation,
            db.session.scalars(
                select(StaffUser).where(StaffUser.email == "coord@example.com")
            ).one(),
            staff_slot(
                appointment.appointment_type,
                slot.starts_at,
                appointment.specialist_id,
                appointment.location_id,
            ),
        )
    assert run(app, now_utc() + timedelta(minutes=2)) == []
    assert len(run(app, slot.starts_at - timedelta(hours=1, minutes=50))) == 1
    assert len(reminders(app)) == 1


def test_a_failed_statement_is_logged_without_its_values(
    app: Flask, confirmed: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    """The database refuses the reminder's outbox row (the connection dropped): the job logs
    the error with its traceback, which names the statement but none of its values (the
    patient's address, the subject with the appointment's time)."""
    from sqlalchemy import event

    with app.app_context():
        patient_email = db.session.get(ConsultationRequest, confirmed["request_id"]).patient.email
        engine = db.engine
        dbapi_error = engine.dialect.loaded_dbapi.OperationalError

        def drop_the_connection(cursor, statement, parameters, context) -> None:
            if statement.startswith("INSERT INTO outbox_email"):
                raise dbapi_error("server closed the connection unexpectedly")

        event.listen(engine, "do_execute", drop_the_connection)
        try:
            assert send_due_reminders(confirmed["starts_at"] - timedelta(hours=47)) == []
        finally:
            event.remove(engine, "do_execute", drop_the_connection)
    [record] = [r for r in caplog.records if r.exc_info]
    logged = caplog.text
    assert "INSERT INTO outbox_email" in logged  # the failure is there, with its statement
    assert "SQL parameters hidden" in logged
    assert patient_email and patient_email not in logged
    assert "Reminder:" not in logged
    assert record.name == "booking.requests.reminders"


def test_a_reminder_withdrawn_while_its_worker_died_is_not_sent_again(
    app: Flask, confirmed: dict[str, Any]
) -> None:
    """A worker claimed the reminder and died; staff cancelled meanwhile (the reminder is
    marked, not deleted: it was being sent). The sweep that releases lapsed claims deletes it
    instead of putting it back in the queue."""
    from booking.notifications.services import requeue_stalled_emails

    assert len(run(app, confirmed["starts_at"] - timedelta(hours=47))) == 1
    lapsed = now_utc() - timedelta(seconds=app.config["MAIL_CLAIM_TIMEOUT_SECONDS"] + 1)
    with app.app_context():
        db.session.execute(
            update(OutboxEmail)
            .where(OutboxEmail.template == "appointment_reminder")
            .values(status=OutboxStatus.SENDING, claimed_at=lapsed, attempts=1)
        )
        db.session.commit()
        workflow.cancel_request(
            db.session.get(ConsultationRequest, confirmed["request_id"]), _coordinator()
        )
        [event] = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "request_cancelled")
        ).all()
        assert event.details["emails_withdrawn"] == 1
        db.session.rollback()  # end the read
    assert len(reminders(app)) == 1  # being sent: only marked
    with app.app_context():
        requeue_stalled_emails()
    assert reminders(app) == []


def test_a_reminder_that_could_not_go_before_its_appointment_is_not_sent_and_shown_to_staff(
    mail_settings: dict[str, Any],
    app: Flask,
    confirmed: dict[str, Any],
    smtp: SmtpServer,
    auth: AuthActions,
) -> None:
    """The 2-hour reminder is written, but the mail server is away (it is retried for days,
    MAIL_GIVE_UP_HOURS) until the appointment has begun. Sent then, it would remind the
    patient of a visit under way or over: it is not sent, and it is failed with its reason,
    so the record shows staff the patient was not reminded, as past (nothing to send
    again). Before the appointment it still goes, late."""
    from booking.dashboard.services import still_wanted
    from booking.notifications.services import deliver_outbox_email
    from booking.requests.emails import unnotified

    smtp.stop()
    starts_at = confirmed["starts_at"]
    [reminder_id] = run(app, starts_at - timedelta(hours=1, minutes=50))
    with app.app_context():
        assert deliver_outbox_email(reminder_id) is not None  # refused: tried again later

    def attempt_with_the_appointment_in(ahead: timedelta) -> None:
        """The next attempt, the mail server back, the appointment ``ahead`` of now (time
        passing, as the appointment is moved to it by no change of the request)."""
        with app.app_context():
            start = now_utc() + ahead
            db.session.execute(
                update(Appointment)
                .where(Appointment.request_id == confirmed["request_id"])
                .values(starts_at=start, ends_at=start + timedelta(minutes=45))
            )
            db.session.execute(
                update(OutboxEmail)
                .where(OutboxEmail.id == reminder_id)
                .values(next_attempt_at=now_utc())
            )
            db.session.commit()
            assert deliver_outbox_email(reminder_id) is None

    smtp.start()
    attempt_with_the_appointment_in(-timedelta(minutes=5))
    [reminder] = reminders(app)
    assert (reminder.status, reminder.last_error) == (OutboxStatus.FAILED, "AppointmentBegun")
    assert smtp.received == []
    with app.app_context():
        consultation = db.session.get(ConsultationRequest, confirmed["request_id"])
        assert [e.id for e in unnotified(consultation)] == [reminder_id]
        assert not still_wanted(consultation, db.session.get(OutboxEmail, reminder_id))
        reference = consultation.reference
    auth.login("coordinator")
    page = auth.client.get(f"/staff/requests/{reference}").get_data(as_text=True)
    banner = section_at(page, 'id="unnotified"')
    assert "Reminder" in banner
    assert "(not sent: it could not go out before the appointment began)" in banner
    with app.app_context():
        # Had the appointment still been ahead, the reminder would have gone, however late.
        db.session.execute(
            update(OutboxEmail)
            .where(OutboxEmail.id == reminder_id)
            .values(status=OutboxStatus.PENDING, last_error=None)
        )
        db.session.commit()
    attempt_with_the_appointment_in(timedelta(minutes=20))
    assert reminders(app)[0].status == OutboxStatus.SENT
    [received] = smtp.collector.wait_for(1)
    assert received.rcpt_tos == ["erika.mustermann@example.com"]


def test_a_reminder_too_late_to_send_and_withdrawn_meanwhile_is_deleted_not_failed(
    mail_settings: dict[str, Any],
    app: Flask,
    confirmed: dict[str, Any],
    smtp: SmtpServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The worker claims a reminder whose appointment has begun; in that instant the
    patient withdraws their consent to reminders, which withdraws the reminder (marked: it
    is being sent). It is deleted, as a withdrawn email whose attempt fails any other way:
    failed, it would show on the record as a reminder the patient should have had."""
    from booking.notifications.services import deliver_outbox_email
    from booking.requests.emails import unnotified
    from booking.rights.services import withdraw_contact_consent

    [reminder_id] = run(app, confirmed["starts_at"] - timedelta(hours=1, minutes=50))
    with app.app_context():
        start = now_utc() - timedelta(minutes=5)
        db.session.execute(
            update(Appointment)
            .where(Appointment.request_id == confirmed["request_id"])
            .values(starts_at=start, ends_at=start + timedelta(minutes=45))
        )
        db.session.commit()

    read = db.session.get

    def withdrawn_meanwhile(entity: Any, ident: Any, **kw: Any) -> Any:
        """The patient withdraws consent between the worker's claim and its reading."""
        if entity is OutboxEmail and ident == reminder_id:
            with app.app_context():
                withdraw_contact_consent(
                    db.session.get(ConsultationRequest, confirmed["request_id"])
                )
        return read(entity, ident, **kw)

    with app.app_context():
        monkeypatch.setattr(db.session, "get", withdrawn_meanwhile)
        assert deliver_outbox_email(reminder_id) is None
        monkeypatch.undo()
        assert db.session.get(OutboxEmail, reminder_id) is None
        assert unnotified(db.session.get(ConsultationRequest, confirmed["request_id"])) == []
    assert smtp.received == []
