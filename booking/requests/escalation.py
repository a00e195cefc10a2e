"""Escalation: an open emergency request that nobody acknowledged within its target is emailed
to the on-call address once, and the escalation is put on its timeline and in the audit.

Once, whatever runs the job: each request is claimed by a conditional update (``escalated_at``
set where it is still empty and the request still unacknowledged and open) in the same
transaction as the email; a second worker doing the same work at the same moment updates no
row and sends nothing. A worker that was down catches up on its next run: the job looks for
every emergency past its target, not for those that passed it since the last run.

Only emergencies escalate: an urgent request's target counts working hours, and its queue
row shows it overdue to the staff on duty.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import joinedload

from booking.audit.services import record
from booking.extensions import db
from booking.notifications.services import enqueue_delivery
from booking.requests import emails, followup
from booking.requests.events import EventKind
from booking.requests.lifecycle import add_event
from booking.requests.models import (
    OPEN_STATUSES,
    TRIAGE_PRIORITY,
    ConsultationRequest,
    TriageLevel,
)
from booking.timeutil import now_utc

log = logging.getLogger(__name__)

# The audit trail's actor for the escalation job.
ESCALATION_ACTOR = "system:escalation"


def _unescalated(now: datetime, target_cutoff: datetime) -> list:
    return [
        ConsultationRequest.priority == TRIAGE_PRIORITY[TriageLevel.EMERGENCY],
        ConsultationRequest.status.in_(OPEN_STATUSES),
        ConsultationRequest.acknowledged_at.is_(None),
        ConsultationRequest.escalated_at.is_(None),
        ConsultationRequest.created_at <= target_cutoff,
    ]


def escalate_overdue(now: datetime | None = None) -> list[int]:
    """Escalate every open emergency request unacknowledged past its target; return the
    outbox ids queued (one per request escalated by this run)."""
    now = now or now_utc()
    target = followup.targets().emergency
    conditions = _unescalated(now, now - target)
    ids = list(
        db.session.scalars(
            select(ConsultationRequest.id)
            .where(*conditions)
            .order_by(ConsultationRequest.created_at)
        )
    )
    db.session.commit()  # end the read; each escalation is its own transaction
    queued = []
    for request_id in ids:
        email_id = _escalate_one(request_id, now, conditions)
        if email_id is not None:
            queued.append(email_id)
    enqueue_delivery(queued)
    return queued


def _escalate_one(request_id: int, now: datetime, conditions: list) -> int | None:
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
        target = followup.targets().emergency
        waited = int((now - consultation.created_at).total_seconds() // 60)
        target_minutes = int(target.total_seconds() // 60)
        recipient = followup.on_call_address()
        email = emails.escalation(consultation, recipient, waited, target_minutes)
        add_event(consultation, kind=EventKind.ESCALATION, actor=None, body=None)
        db.session.flush()
        record(
            "request_escalated",
            target_type="request",
            target_id=consultation.reference,
            actor_email=ESCALATION_ACTOR,
            details={
                "waited_minutes": waited,
                "target_minutes": target_minutes,
                "email_id": email.id,
            },
        )
        email_id = email.id
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    log.warning("emergency request %s escalated to the on-call address", request_id)
    return email_id
