"""Appointment reminders: sent once per appointment time and lead time, whatever runs them.

A lead time counts only if it passed after the appointment got its time (``placed_at``:
confirmed or last moved): one that had already passed then is never sent, since the
confirmation or move email has just told the patient the time (confirmed 30 hours ahead, the
patient gets the 2-hour reminder, not a "48 hours" one two minutes after "confirmed"). Of the
lead times that fell due since, the reminder for the shortest is sent, once: a worker that was
down through both the 48- and the 2-hour moment sends one email, not two.

A ``ReminderSent`` row, unique per appointment, lead time and start time, is inserted in the
same transaction as the email; a second worker doing the same work hits the unique key and
sends nothing. A rescheduled appointment has a new start time, so it is reminded again.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import Row, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload

from booking.extensions import db
from booking.notifications.models import OutboxEmail, OutboxStatus
from booking.notifications.services import queue_each, withdraw_emails
from booking.requests import emails, withdrawals
from booking.requests.lifecycle import ADDRESS_TEMPLATES, REMINDER_TEMPLATES, can_change
from booking.requests.models import ConsultationRequest, RequestStatus, may_be_contacted
from booking.requests.queries import lock_request
from booking.scheduling.models import Appointment, ReminderSent
from booking.timeutil import now_utc

log = logging.getLogger(__name__)


def send_due_reminders(now: datetime | None = None) -> list[int]:
    """Queue every reminder that is due; return the outbox ids queued."""
    now = now or now_utc()
    leads = sorted(set(current_app.config["REMINDER_LEAD_HOURS"]))
    if not leads:
        return []
    # Plain values, not loaded Appointments: after the commit below a loaded object would be
    # read again on first touch, and one erased meanwhile (another connection) would raise
    # ObjectDeletedError outside any row's try and stop everyone's reminders. Each row's
    # appointment is read afresh, in its own transaction, by ``_send_one``.
    appointments = db.session.execute(
        select(Appointment.id, Appointment.starts_at, Appointment.placed_at)
        .join(Appointment.request)
        .where(
            Appointment.active.is_(True),
            ConsultationRequest.status == RequestStatus.CONFIRMED,
            may_be_contacted(),  # not withdrawn (booking.rights), not deceased
            Appointment.starts_at > now,
            Appointment.starts_at <= now + timedelta(hours=leads[-1]),
        )
        .order_by(Appointment.starts_at)
    ).all()
    already = {
        (a, lead, s)
        for a, lead, s in db.session.execute(
            select(
                ReminderSent.appointment_id, ReminderSent.lead_hours, ReminderSent.starts_at
            ).where(ReminderSent.appointment_id.in_([a.id for a in appointments]))
        )
    }
    db.session.commit()  # end the read; each reminder is its own transaction
    todo: dict[int, tuple[datetime, list[int]]] = {}
    for appointment in appointments:
        due = [lead for lead in leads if _fell_due(appointment, lead, now)]
        if not due or (appointment.id, due[0], appointment.starts_at) in already:
            continue
        # Mark every due lead time as done (a worker that missed two sends one email, not
        # two); the shortest is the one the email is for.
        new = [lead for lead in due if (appointment.id, lead, appointment.starts_at) not in already]
        todo[appointment.id] = (appointment.starts_at, new)
    return queue_each(
        todo, lambda aid: _send_one(aid, *todo[aid], now), "reminder for appointment %s", log
    )


# What ``last_error`` says of a reminder not sent because its appointment had begun.
APPOINTMENT_BEGUN = "AppointmentBegun"


def begun_at_delivery(email: OutboxEmail) -> str | None:
    """A reminder whose appointment has begun by the time it could go (the mail server away
    for hours: it is retried for days, ``MAIL_GIVE_UP_HOURS``): sent then, it would remind
    the patient of a visit under way or over. Not sent, and failed (``APPOINTMENT_BEGUN``):
    the record shows staff the patient was not reminded, as past, nothing to send again
    (``notifications.services.register_expiry_check``). The same for the email giving the
    appointment's new address (``relocation``): the visit has begun, the patient went where
    they went, and the record shows staff it was never told. A move or a cancellation has
    withdrawn either already (``withdraw_pending``); this is the time passing."""
    if email.request_id is None or email.template not in REMINDER_TEMPLATES | ADDRESS_TEMPLATES:
        return None
    starts_at = db.session.scalar(
        select(Appointment.starts_at).where(
            Appointment.request_id == email.request_id, Appointment.active.is_(True)
        )
    )
    return APPOINTMENT_BEGUN if starts_at is not None and starts_at <= now_utc() else None


def _fell_due(
    appointment: Row[tuple[int, datetime, datetime | None]], lead: int, now: datetime
) -> bool:
    """The lead time's moment has come, and came after the appointment got its time (missed
    while no worker ran: still sent; already past when confirmed or moved: never)."""
    moment = appointment.starts_at - timedelta(hours=lead)
    placed = appointment.placed_at
    return moment <= now and (placed is None or placed < moment)


def _still_due(appointment_id: int, starts_at: datetime) -> Appointment | None:
    """With the request locked: the appointment, if it still exists, is still confirmed,
    active, at the time the reminder is for, and its patient may be contacted. A cancellation
    (or a move, a decline, an erasure) committed since the job read the appointments is seen,
    and no reminder goes out for it."""
    consultation = db.session.scalar(
        select(ConsultationRequest)
        .join(ConsultationRequest.appointment)
        .where(Appointment.id == appointment_id)
    )
    if consultation is None:  # erased since the read
        return None
    lock_request(consultation)
    return db.session.scalar(
        select(Appointment)
        .join(Appointment.request)
        .where(
            Appointment.id == appointment_id,
            Appointment.active.is_(True),
            Appointment.starts_at == starts_at,
            ConsultationRequest.status == RequestStatus.CONFIRMED,
            may_be_contacted(),
        )
        .options(
            joinedload(Appointment.request).joinedload(ConsultationRequest.patient),
            joinedload(Appointment.specialist),
            joinedload(Appointment.location),
        )
    )


def _send_one(
    appointment_id: int, starts_at: datetime, due: list[int], now: datetime
) -> int | None:
    appointment = _still_due(appointment_id, starts_at)
    if appointment is None:
        db.session.rollback()
        return None
    consultation = appointment.request
    try:
        for lead in due:
            db.session.add(
                ReminderSent(
                    appointment_id=appointment.id,
                    lead_hours=lead,
                    starts_at=appointment.starts_at,
                    sent_at=now_utc(),
                )
            )
        db.session.flush()
        email = emails.reminder(consultation, appointment, changeable=can_change(consultation, now))
        db.session.commit()
    except IntegrityError:
        # Another worker sent this reminder first.
        db.session.rollback()
        return None
    log.info("reminder queued for appointment %s (%sh)", appointment.id, due[0])
    return email.id if email is not None else None


def rewrite_waiting(consultation: ConsultationRequest) -> OutboxEmail | None:
    """A reminder not taken by a worker yet says what the appointment was when it was
    written: a video visit's link given or replaced since is not in it (it would say the
    clinic will send the link, or give the old room). It is withdrawn and written again as
    the appointment is now; its ``ReminderSent`` rows stay (the same reminder). One a worker
    is sending already goes as it is. Flushes; the caller commits and enqueues the email."""
    waiting = db.session.scalars(
        select(OutboxEmail.id).where(
            OutboxEmail.request_id == consultation.id,
            OutboxEmail.template == "appointment_reminder",
            OutboxEmail.status == OutboxStatus.PENDING,
            OutboxEmail.withdrawn_at.is_(None),
        )
    ).all()
    appointment = consultation.appointment
    if (
        not waiting
        or appointment is None
        or not withdraw_emails(list(waiting), reason=withdrawals.REWRITTEN)
    ):
        return None
    return emails.reminder(
        consultation, appointment, changeable=can_change(consultation, now_utc())
    )
