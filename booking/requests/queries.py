"""Finding requests: by reference or one-time token, locked for a change, and only those a
staff member may see.

The visibility rule lives here once: a specialist sees only the requests assigned to them;
coordinators and admins see every request.
"""

from __future__ import annotations

import functools
from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import ColumnElement, Select, and_, func, or_, select, true
from sqlalchemy.orm import aliased, contains_eager, joinedload

from booking.audit.models import REQUEST_VIEWED, AuditEvent
from booking.audit.services import DIGEST_PREFIX
from booking.crypto import text_digest
from booking.extensions import db
from booking.notifications.models import OutboxEmail, OutboxStatus
from booking.requests.emails import (
    CANCELLED_ESCALATION_TEMPLATE,
    CLINIC_ALERT_TEMPLATES,
    NEW_REQUEST_TEMPLATE,
    PATIENT_ACTION_TEMPLATE,
    PATIENT_TEMPLATES,
)
from booking.requests.models import (
    OPEN_STATUSES,
    PRESSING_LEVELS,
    REFERENCE_ALPHABET,
    ConsultationRequest,
    RequestStatus,
)
from booking.scheduling.availability import MAX_BLOCK
from booking.scheduling.models import Appointment
from booking.staff.models import StaffRole, StaffUser
from booking.timeutil import now_utc

# An active appointment of a request in these statuses takes the specialist's time (declined
# and cancelled requests free it). A request waiting for the patient's answer still holds its
# time: booking treats it as taken, so the agenda must not show it free.
AGENDA_STATUSES = (
    RequestStatus.REQUESTED,
    RequestStatus.AWAITING_PATIENT,
    RequestStatus.CONFIRMED,
    RequestStatus.COMPLETED,
    RequestStatus.NO_SHOW,
)


def typed_reference(text: str) -> str:
    """A reference as staff may type or read it out: "sc cvaw y4x9", "CVAWY4X9" and
    "SC-CVAW-Y4X9" are all SC-CVAW-Y4X9 (anything else is returned upper-cased)."""
    characters = "".join(ch for ch in text.upper() if ch.isalnum())
    if len(characters) == 10 and characters.startswith("SC"):
        characters = characters[2:]
    if len(characters) == 8:
        return f"SC-{characters[:4]}-{characters[4:]}"
    return text.strip().upper()


def reads_as_reference(text: str) -> str | None:
    """The reference ``text`` reads as (``typed_reference``), if it has a reference's shape and
    letters; None for anything else (a name, a phone number typed into a reference's box)."""
    reference = typed_reference(text)
    letters = reference[3:7] + reference[8:]
    shaped = len(reference) == 12 and reference.startswith("SC-") and reference[7] == "-"
    return reference if shaped and all(ch in REFERENCE_ALPHABET for ch in letters) else None


def looked_up_as(text: str) -> str:
    """What a refused look-up of ``text`` is audited as: the reference it reads as, else the
    start of its SHA-256 ("sha256:..."), comparable between rows but not readable: it may be
    a patient's name, phone number or address typed where a reference goes."""
    return reads_as_reference(text) or f"{DIGEST_PREFIX}{text_digest(text.strip().lower())[:16]}"


def find_by_reference(reference: str) -> ConsultationRequest | None:
    return db.session.scalar(
        select(ConsultationRequest).where(ConsultationRequest.reference == reference)
    )


def find_by_token(token: str) -> ConsultationRequest | None:
    """The request a form's one-time submission token stored, if any."""
    return db.session.scalar(
        select(ConsultationRequest).where(ConsultationRequest.submission_token == token)
    )


def lock_request(consultation: ConsultationRequest) -> ConsultationRequest:
    """Re-read a request and lock its row for the rest of this transaction (PostgreSQL;
    SQLite's BEGIN IMMEDIATE already serialises writers), so two changes cannot interleave.

    Its appointment is re-read with it: every change to an appointment is made under its
    request's lock, so what was read before the lock (a page loads the request first) may be
    a time a colleague or the patient has moved since, and a change built on it would undo
    theirs, repeat a calendar sequence and free the wrong time."""
    return db.session.scalars(
        select(ConsultationRequest)
        .where(ConsultationRequest.id == consultation.id)
        .options(joinedload(ConsultationRequest.appointment))
        .with_for_update(of=ConsultationRequest)
        .execution_options(populate_existing=True)
    ).one()


@functools.cache
def unnotified_request_ids() -> Select:
    """The ids of requests whose patient was not told something: an email to them failed for
    good, staff have not dealt with it (``settled_at``) and no later one of the same kind
    went out or is on its way (``emails.unnotified``, in SQL). Read from the failed outbox
    rows (the ``status`` index), which are few.

    Built once: it has no parameters, a statement never changes, and building its aliased
    outbox again for every queue view cost more CPU than running it."""
    later = aliased(OutboxEmail)
    return select(OutboxEmail.request_id).where(
        OutboxEmail.status == OutboxStatus.FAILED,
        OutboxEmail.settled_at.is_(None),
        OutboxEmail.template.in_(sorted(PATIENT_TEMPLATES)),
        OutboxEmail.request_id.is_not(None),
        ~select(later.id)
        .where(
            later.request_id == OutboxEmail.request_id,
            later.template == OutboxEmail.template,
            later.id > OutboxEmail.id,
            later.status != OutboxStatus.FAILED,
        )
        .exists(),
    )


def alerts_late_before() -> datetime:
    """When a clinic alert still waiting to go was written, at the latest, to count as late
    (``failed_alerts``): ``ALERT_LATE_MINUTES`` ago."""
    return now_utc() - timedelta(minutes=current_app.config["ALERT_LATE_MINUTES"])


def failed_alerts(late_before: datetime) -> Select:
    """The references of the emergency and urgent requests whose patient nobody reached and
    whose alert to the clinic failed for good (the mail server refused it, or every retry
    failed), or still waits to go though written before ``late_before`` (``ALERT_LATE_MINUTES``
    ago): the retries take days to run out, and with the workers or their queue down an
    email is never tried at all, while the clinic believes it would have heard. An alert of
    ``emails.CLINIC_ALERT_TEMPLATES`` counts while the request is open;
    the notice of what the patient changed (``patient_action_staff``, "URGENT, patient not
    reached yet") and the on-call alert of a request its patient cancelled unreached
    (``escalation_staff_cancelled``) whatever its status: that patient still needs the call. Read
    from the failed and waiting outbox rows (the ``status`` index), which are few."""

    def failed(*templates: str) -> Select:
        return select(OutboxEmail.request_id).where(
            OutboxEmail.undelivered(late_before), OutboxEmail.template.in_(templates)
        )

    return (
        select(ConsultationRequest.reference)
        .where(
            or_(
                and_(
                    ConsultationRequest.id.in_(failed(*sorted(CLINIC_ALERT_TEMPLATES))),
                    ConsultationRequest.status.in_(sorted(OPEN_STATUSES)),
                ),
                ConsultationRequest.id.in_(
                    failed(PATIENT_ACTION_TEMPLATE, CANCELLED_ESCALATION_TEMPLATE)
                ),
            ),
            ConsultationRequest.triage_level.in_(sorted(PRESSING_LEVELS)),
            ConsultationRequest.acknowledged_at.is_(None),
        )
        .order_by(ConsultationRequest.created_at)
    )


def opened_since_written() -> ColumnElement[bool]:
    """Whether a staff member has opened the record of an outbox email's request since the
    email was written (correlated to ``OutboxEmail`` and ``ConsultationRequest``): each
    opening is audited (``REQUEST_VIEWED``), so one after an email to the clinic was written
    means someone has looked at what it was about."""
    return (
        select(AuditEvent.id)
        .where(
            AuditEvent.target_type == "request",
            AuditEvent.target_id == ConsultationRequest.reference,
            AuditEvent.action == REQUEST_VIEWED,
            AuditEvent.occurred_at >= OutboxEmail.created_at,
        )
        .exists()
    )


def unseen_failed_request_notices() -> Select:
    """The references of the open routine requests whose notice to the clinic
    (``new_request_staff``) failed for good, that no staff member has dealt with
    (``settled_at``), and whose record nobody has opened since it was written: the clinic
    may never have heard of them. Oldest first. The staff pages' banner counts a failed
    email for a day only; these stay on the queue until someone opens the request (an
    emergency or urgent request's alert is ``failed_alerts``'). Read from the failed outbox
    rows (the ``status`` index), which are few."""
    return (
        select(ConsultationRequest.reference)
        .join(OutboxEmail, OutboxEmail.request_id == ConsultationRequest.id)
        .where(
            OutboxEmail.status == OutboxStatus.FAILED,
            OutboxEmail.settled_at.is_(None),
            OutboxEmail.template == NEW_REQUEST_TEMPLATE,
            ConsultationRequest.status.in_(sorted(OPEN_STATUSES)),
            ConsultationRequest.triage_level.not_in(sorted(PRESSING_LEVELS)),
            ~opened_since_written(),
        )
        .group_by(ConsultationRequest.reference)
        .order_by(func.min(OutboxEmail.created_at))
    )


def visible_to(user: StaffUser) -> Any:
    """The condition limiting requests to those ``user`` may see."""
    if user.role == StaffRole.SPECIALIST:
        return ConsultationRequest.assigned_specialist_id == user.id
    return true()


def can_see(user: StaffUser, consultation: ConsultationRequest) -> bool:
    return user.role != StaffRole.SPECIALIST or consultation.assigned_specialist_id == user.id


def agenda_appointments(
    start: datetime,
    end: datetime,
    *,
    specialist_ids: Collection[int] | None = None,
    location_id: int | None = None,
    buffer: timedelta = timedelta(0),
) -> list[Appointment]:
    """Every active appointment of ``specialist_ids`` (None: everyone's) that takes time in
    [start, end): the times patients hold (the request not yet confirmed) as well as the
    confirmed ones, and those already completed or missed. One query, with the request,
    patient, type, location and specialist joined in.

    Also those that end before ``start`` but whose buffer reaches past it (the one they
    stored, ``blocked_until``, or ``buffer``, the clinic's now), and those that start at or
    after ``end`` but less than ``buffer`` after it (no slot may end within the buffer before
    an appointment): the specialist is not free then either (as ``availability.open_slots``
    reads it). The caller tells them apart by ``ends_at <= start`` or ``starts_at >= end``.

    Not limited to what the user may see: the agenda must never show a taken time as free, so
    the caller shows the patient only where ``can_see`` allows it."""
    stmt = (
        select(Appointment)
        .join(Appointment.request)
        .where(
            Appointment.active.is_(True),
            # A bounded index range: no appointment blocks more than MAX_BLOCK.
            Appointment.starts_at > start - MAX_BLOCK,
            Appointment.starts_at < end + buffer,
            # blocked_until >= ends_at, so this also holds whenever ends_at + buffer > start.
            Appointment.blocked_until > start - buffer,
            ConsultationRequest.status.in_(AGENDA_STATUSES),
        )
        .options(
            contains_eager(Appointment.request).joinedload(ConsultationRequest.patient),
            joinedload(Appointment.specialist),
            joinedload(Appointment.location),
            joinedload(Appointment.appointment_type),
        )
        .order_by(Appointment.starts_at, Appointment.id)
    )
    if specialist_ids is not None:
        stmt = stmt.where(Appointment.specialist_id.in_(sorted(set(specialist_ids))))
    if location_id:
        stmt = stmt.where(Appointment.location_id == location_id)
    return list(db.session.scalars(stmt).unique())
