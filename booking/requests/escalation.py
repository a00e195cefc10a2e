"""Escalation: an open emergency or urgent request whose patient nobody reached within its target
is emailed to the on-call address once, and the escalation is put on its timeline and in the
audit. So is one the patient cancelled through their private link before anyone reached them:
they may have found help elsewhere, or may still need the call, and the clinic's only other
trace was one notice to the staff address. One staff declined or cancelled is not: they
confirmed that they closed it unreached (``booking.dashboard.services``).

An emergency's target is clock time, at any hour (the patient was told to seek emergency care
now); an urgent one's is the clinic's working time (``booking.requests.followup``), so an
urgent request sent on Friday evening escalates on Monday, while the clinic is open, if
nobody has called the patient by then. An urgent request whose patient changed an emergency
answer to no before sending is held to the emergency's target (``call_back_level``): clock
time, so one sent on Friday evening escalates that evening. A request whose level staff
raised (new symptoms, ``booking.dashboard.services.raise_triage``) is counted from the raise
(``call_back_since``): a routine request of ten days ago raised to urgent now escalates on its
target from now, neither at once nor never (the catch-up counts from the raise too).

Once, whatever runs the job: each request is claimed by a conditional update (``escalated_at``
set where it is still empty and the request still unacknowledged and open) in the same
transaction as the email; a second worker doing the same work at the same moment updates no
row and sends nothing. A worker that was down catches up on its next run: the job looks for
every request past its target, not for those that passed it since the last run (an urgent
one up to ``URGENT_CATCH_UP`` after it fell due, whichever target it is held to).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import and_, exists, or_, select, update
from sqlalchemy.orm import joinedload

from booking.audit.services import record
from booking.extensions import db
from booking.notifications.services import queue_each
from booking.requests import emails, followup
from booking.requests.events import EventKind, RequestEvent
from booking.requests.lifecycle import add_event
from booking.requests.models import (
    OPEN_STATUSES,
    TRIAGE_PRIORITY,
    ConsultationRequest,
    RequestStatus,
    TriageLevel,
    call_back_level,
    call_back_since_column,
)
from booking.timeutil import now_utc

log = logging.getLogger(__name__)

# The audit trail's actor for the escalation job.
ESCALATION_ACTOR = "system:escalation"
# An urgent request escalates up to a week after it fell due (a worker down over a long
# weekend still catches up), not later: when urgent requests first escalated, the ones long
# overdue would otherwise all have been emailed at once. Their queue rows show them overdue.
URGENT_CATCH_UP = timedelta(days=7)


def _cancelled_by_patient() -> object:
    """The patient cancelled the request (``booking.manage.services.cancel``): its
    cancellation on the timeline has no staff member (``add_event``'s actor None is the
    patient), where staff's carries who did it."""
    return exists().where(
        RequestEvent.request_id == ConsultationRequest.id,
        RequestEvent.kind == EventKind.STATUS,
        RequestEvent.to_status == RequestStatus.CANCELLED.value,
        RequestEvent.actor_id.is_(None),
    )


def _unescalated(level: TriageLevel, received_by: datetime) -> list:
    return [
        ConsultationRequest.priority == TRIAGE_PRIORITY[level],
        or_(
            ConsultationRequest.status.in_(OPEN_STATUSES),
            and_(
                ConsultationRequest.status == RequestStatus.CANCELLED,
                _cancelled_by_patient(),
            ),
        ),
        ConsultationRequest.acknowledged_at.is_(None),
        ConsultationRequest.escalated_at.is_(None),
        call_back_since_column() <= received_by,
    ]


def escalate_overdue(now: datetime | None = None) -> list[int]:
    """Escalate every open emergency and urgent request unacknowledged past its target;
    return the outbox ids queued (one per request escalated by this run)."""
    now = now or now_utc()
    targets, hours = followup.targets(), followup.clinic_hours()
    due: dict[int, tuple[followup.Wait, list]] = {}
    for level, target in (
        (TriageLevel.EMERGENCY, targets.emergency),
        # An urgent one may be held to the emergency's target (``call_back_level``).
        (TriageLevel.URGENT, min(targets.urgent, targets.emergency)),
    ):
        # Working time never runs faster than the clock: a request received (or raised) less
        # than its target ago cannot be overdue, whatever its level.
        conditions = _unescalated(level, now - target)
        since = call_back_since_column()
        rows = db.session.execute(
            select(
                ConsultationRequest.id,
                since,
                ConsultationRequest.status,
                ConsultationRequest.withdrawn_red_flags,
            )
            .where(*conditions)
            .order_by(since)
        ).all()
        for request_id, started, status, withdrawn in rows:
            clock = call_back_level(level, withdrawn)
            wait = followup.wait_of(clock, started, now, targets, hours)
            if wait is None or not wait.overdue:
                continue
            # A cancelled one only within the catch-up too, emergencies included: cancelled
            # requests of long ago (before this rule, or a worker down for weeks) are history,
            # not a flood of alarms for the on-call clinician. An urgent one held to the
            # emergency's target keeps the urgent catch-up, from its earlier due moment: the
            # unreached ones of long ago were not all to be emailed when that rule came in.
            late = now - wait.due_at > URGENT_CATCH_UP
            if late and (level == TriageLevel.URGENT or status == RequestStatus.CANCELLED):
                continue
            due[request_id] = (wait, conditions)
    db.session.commit()  # end the read; each escalation is its own transaction
    return queue_each(
        due,
        lambda request_id: _escalate_one(request_id, now, *due[request_id]),
        "escalating request %s",
        log,
    )


def _escalate_one(
    request_id: int, now: datetime, wait: followup.Wait, conditions: list
) -> int | None:
    try:
        claimed = db.session.execute(
            update(ConsultationRequest)
            .where(ConsultationRequest.id == request_id, *conditions)
            .values(escalated_at=now),
            execution_options={"synchronize_session": False},
        )
        if claimed.rowcount != 1:
            # Another worker escalated it, or staff acknowledged it (or closed it) just now.
            db.session.rollback()
            return None
        consultation = db.session.scalars(
            select(ConsultationRequest)
            .where(ConsultationRequest.id == request_id)
            .options(joinedload(ConsultationRequest.patient))
            .execution_options(populate_existing=True)
        ).one()
        waited = int(wait.waited.total_seconds() // 60)
        target_minutes = int(wait.target.total_seconds() // 60)
        recipient = followup.on_call_address()
        cancelled = consultation.status == RequestStatus.CANCELLED
        if cancelled:
            email = emails.cancelled_escalation(consultation, recipient, wait)
        else:
            email = emails.escalation(consultation, recipient, wait)
        add_event(consultation, kind=EventKind.ESCALATION, actor=None, body=None)
        db.session.flush()
        record(
            "request_escalated",
            target_type="request",
            target_id=consultation.reference,
            actor_email=ESCALATION_ACTOR,
            details={
                "level": consultation.triage_level.value,
                "waited_minutes": waited,
                "target_minutes": target_minutes,
                "working_time": wait.working_time,
                "email_id": email.id,
                **({"cancelled_by_patient": True} if cancelled else {}),
            },
        )
        email_id = email.id
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    log.warning(
        "%s request %s escalated to the on-call address",
        consultation.triage_level.value,
        request_id,
    )
    return email_id
