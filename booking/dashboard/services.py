"""Working a request from the dashboard: status changes, appointments, notes, a new private
link, and the audit of what staff look at. Each function is one transaction.

The transitions and who may make them are the request's own rules
(``booking.requests.lifecycle``); every change goes through ``record_change`` (timeline, audit
row, the patient's email: confirmations and reschedules with an .ics invitation,
cancellations with METHOD:CANCEL), and a time it gives up is offered to the waitlist.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select

from booking.audit.services import audited_when_done, changes, record
from booking.dashboard.export import csv_rows
from booking.documents.models import Document
from booking.documents.storage import DocumentUnreadable, get_storage
from booking.extensions import db
from booking.notifications.models import OutboxEmail
from booking.notifications.services import enqueue_delivery
from booking.openinghours import clinic_closed_days
from booking.outcomes.emails import token_in as followup_token_in
from booking.outcomes.models import Plan
from booking.outcomes.services import (
    can_answer,
    link_for_token,
    readdress_followups,
    record_plan,
)
from booking.requests import emails, relocation, reminders
from booking.requests.calls import CallbackAttempt, CallOutcome
from booking.requests.events import EventKind, RequestEvent
from booking.requests.lifecycle import (
    ADDRESS_TEMPLATES,
    FOLLOWUP_TEMPLATES,
    OFFER_TEMPLATES,
    REMINDER_TEMPLATES,
    TRANSITIONS,
    WorkflowError,
    add_event,
    change_email,
    check_may_work,
    check_transition,
    check_unchanged,
    opens_at,
    record_change,
    role_may,
    snapshot,
)
from booking.requests.links import links_work, revoke_all
from booking.requests.models import (
    TRIAGE_PRIORITY,
    UNCONFIRMED_STATUSES,
    ConsultationRequest,
    Patient,
    RequestStatus,
    TriageLevel,
    may_be_contacted,
)
from booking.requests.queries import lock_request
from booking.requests.waitlist import find_offer, offer_freed_slot, offer_open_to
from booking.rights.addresses import end_waiting_changes, readdress
from booking.scheduling.availability import OpenSlot
from booking.scheduling.ical import appointment_ics
from booking.scheduling.models import (
    Appointment,
    AppointmentType,
    Location,
    ScheduleException,
    VisitMode,
)
from booking.scheduling.services import (
    FreedTime,
    SlotChoice,
    SlotTaken,
    SlotUnavailable,
    new_uid,
    place_appointment,
    resolve_choice,
)
from booking.staff.models import StaffRole, StaffUser
from booking.templating import isolated, naming
from booking.timeutil import clinic_date, clinic_instants, now_utc

log = logging.getLogger(__name__)
# The first word of the log line a damaged document writes, for the operators' alerting.
DOCUMENT_DAMAGED = "document_damaged"

S = RequestStatus
ACTIONS = {
    "confirm": S.CONFIRMED,
    "reschedule": S.CONFIRMED,
    "decline": S.DECLINED,
    "cancel": S.CANCELLED,
    "complete": S.COMPLETED,
    "no_show": S.NO_SHOW,
}


@dataclass(frozen=True)
class Slot:
    """A time as staff enter it: wall-clock date and time at the clinic."""

    appointment_type: AppointmentType
    specialist: StaffUser
    location: Location
    day: date
    start: time
    # 1 for the second of a time the clocks' going back repeats (02:30 CET after 02:30 CEST),
    # as ``datetime.fold``; the form asks staff which they mean.
    fold: int = 0


def _permitted(consultation: ConsultationRequest, user: StaffUser) -> list[str]:
    """The actions the request's status and the user's role allow, whatever the time."""
    permitted = []
    for action, target in ACTIONS.items():
        if action == "confirm" and consultation.status not in UNCONFIRMED_STATUSES:
            continue
        if action == "reschedule" and consultation.status != S.CONFIRMED:
            continue
        if target in TRANSITIONS[consultation.status] and role_may(user, target):
            permitted.append(action)
    return permitted


def allowed_actions(
    consultation: ConsultationRequest, user: StaffUser, now: datetime | None = None
) -> list[str]:
    """The actions this user may take now (the page offers these; the rest are refused)."""
    now = now or now_utc()
    return [
        action
        for action in _permitted(consultation, user)
        if (opens := opens_at(consultation, ACTIONS[action])) is None or now >= opens
    ]


def actions_open_at(
    consultation: ConsultationRequest, user: StaffUser, now: datetime | None = None
) -> datetime | None:
    """When the actions the status and the user's role allow, but not yet, become possible
    (completing and marking no-show: when the appointment starts, ``lifecycle.opens_at``);
    None when none waits. The record page says when instead of offering them."""
    now = now or now_utc()
    waiting = [
        opens
        for action in _permitted(consultation, user)
        if (opens := opens_at(consultation, ACTIONS[action])) is not None and now < opens
    ]
    return min(waiting, default=None)


def _open_slot(slot: Slot, appointment: Appointment | None) -> OpenSlot:
    """Check a staff-entered time through the availability engine (working hours, time off,
    other appointments and buffers; staff are not bound by the patients' notice and horizon).
    """
    instants = clinic_instants(slot.day, slot.start)
    starts_at = instants[min(slot.fold, len(instants) - 1)] if instants else None
    # A wall-clock time skipped by a daylight-saving change does not exist.
    if starts_at is None:
        raise WorkflowError(_("That time does not exist on that day because of a clock change."))
    if slot.specialist.role != StaffRole.SPECIALIST or not slot.specialist.active:
        raise WorkflowError(_("Please choose an active specialist."))
    if not slot.location.active:
        raise WorkflowError(_("Please choose an open location."))
    choice = SlotChoice(slot.appointment_type.id, slot.specialist.id, slot.location.id, starts_at)
    try:
        _type, open_slot = resolve_choice(
            choice,
            ignore_appointment_id=appointment.id if appointment is not None else None,
            enforce_limits=False,
        )
    except (SlotTaken, SlotUnavailable):  # the message names both
        if _closed_without_extra_hours(slot, starts_at):
            raise WorkflowError(
                naming(
                    _(
                        "The clinic is closed on %(day)s (a public holiday or a closed day), so "
                        "no weekly hours apply. To book that day, an administrator can add extra "
                        "hours for %(name)s (Scheduling, the specialist's page, \"Add extra "
                        'hours").'
                    ),
                    day=clinic_date(slot.day, "long"),
                    name=isolated(slot.specialist.full_name),
                )
            ) from None
        raise WorkflowError(
            naming(
                _(
                    "%(name)s is not free at that time at %(place)s: outside their hours, on "
                    "time off, or booked (including the buffer between appointments)."
                ),
                name=isolated(slot.specialist.full_name),
                place=isolated(slot.location.display_name),
            )
        ) from None
    return open_slot


def _closed_without_extra_hours(slot: Slot, starts_at: datetime) -> bool:
    """The clinic is closed on the slot's day (``CLINIC_HOLIDAYS``, ``CLINIC_CLOSED_DAYS``,
    or closed by an admin in the app) and no extra hours of the specialist cover its time:
    only extra hours open such a day (``booking.scheduling.availability``), so that is what
    staff need to be told, not that the specialist is busy."""
    if slot.day not in clinic_closed_days(slot.day, slot.day):
        return False
    ends_at = starts_at + timedelta(minutes=slot.appointment_type.duration_minutes)
    covering = db.session.scalar(
        select(func.count())
        .select_from(ScheduleException)
        .where(
            ScheduleException.specialist_id == slot.specialist.id,
            ScheduleException.kind == "extra",
            ScheduleException.starts_at <= starts_at,
            ScheduleException.ends_at >= ends_at,
        )
    )
    return not covering


def _place(
    appointment: Appointment, slot: Slot, open_slot: OpenSlot, *, new_sequence: bool = False
) -> None:
    try:
        place_appointment(appointment, slot.appointment_type, open_slot, new_sequence=new_sequence)
    except SlotTaken:
        raise WorkflowError(_("That time was just taken. Please choose another.")) from None


def _finish(
    consultation: ConsultationRequest,
    actor: StaffUser,
    *,
    action: str,
    before: dict[str, object],
    message: str | None,
    email_kind: str,
    ics: str | None = None,
    ics_method: str = "REQUEST",
    freed: FreedTime | None = None,
    audit_extra: dict[str, object] | None = None,
) -> None:
    """Record the change (timeline, audit, the patient's email), offer a time it gave up to
    the waitlist, then one commit; the emails go to the worker after it."""
    email = record_change(
        consultation,
        action=action,
        actor=actor,
        before=before,
        note=message,
        email_kind=email_kind,
        message=message,
        ics=ics,
        ics_method=ics_method,
        audit_extra=audit_extra,
    )
    offers = offer_freed_slot(freed) if freed is not None else []
    db.session.commit()
    enqueue_delivery([e.id for e in (email, *offers) if e is not None])


def _lock(
    consultation: ConsultationRequest, actor: StaffUser, seen: str | None
) -> ConsultationRequest:
    """The request locked for a change, refused if the actor may not work it or if it
    changed since the actor's page showed it (``seen``: ``lifecycle.check_unchanged``)."""
    consultation = lock_request(consultation)
    check_may_work(consultation, actor)
    check_unchanged(consultation, seen, actor)
    return consultation


def confirm_request(
    consultation: ConsultationRequest,
    actor: StaffUser,
    slot: Slot,
    message: str | None = None,
    *,
    seen: str | None = None,
) -> None:
    """Confirm an unconfirmed request at a free time; a held time it moves away from is
    offered to the waitlist."""
    consultation = _lock(consultation, actor, seen)
    check_transition(consultation, S.CONFIRMED, actor)
    if consultation.status not in UNCONFIRMED_STATUSES:
        raise WorkflowError(_("This request is already confirmed: reschedule it instead."))
    open_slot = _open_slot(slot, consultation.appointment)
    before = snapshot(consultation)
    appointment = consultation.appointment
    freed = None
    if appointment is None:
        appointment = Appointment(request_id=consultation.id, uid=new_uid(), sequence=0)
        consultation.appointment = appointment
    else:
        # The patient's calendar holds the tentative invitation for the time they picked:
        # the confirmation updates that same event.
        appointment.sequence += 1
        # Confirmed at another time, the held one is given up: offered to the waitlist as a
        # reschedule offers it. The same start with the same specialist and place frees none.
        if appointment.active and (
            appointment.specialist_id,
            appointment.location_id,
            appointment.starts_at,
        ) != (open_slot.specialist_id, open_slot.location_id, open_slot.starts_at):
            freed = FreedTime.of(appointment)
    _place(appointment, slot, open_slot)
    consultation.status = S.CONFIRMED
    consultation.assigned_specialist_id = open_slot.specialist_id
    consultation.confirmed_at = consultation.confirmed_at or now_utc()
    db.session.flush()
    _finish(
        consultation,
        actor,
        action="request_confirmed",
        before=before,
        email_kind="confirmed",
        message=message,
        ics=appointment_ics(appointment),
        freed=freed,
    )


def reschedule_request(
    consultation: ConsultationRequest,
    actor: StaffUser,
    slot: Slot,
    message: str | None = None,
    *,
    seen: str | None = None,
) -> None:
    consultation = _lock(consultation, actor, seen)
    check_transition(consultation, S.CONFIRMED, actor)
    if consultation.status != S.CONFIRMED or consultation.appointment is None:
        raise WorkflowError(_("Only a confirmed appointment can be rescheduled."))
    appointment = consultation.appointment
    before = snapshot(consultation)
    open_slot = _open_slot(slot, appointment)
    # A change of type alone (in person to video, at the same time and place) is a change:
    # the patient is told how they now take part.
    if (
        appointment.appointment_type_id == slot.appointment_type.id
        and appointment.specialist_id == open_slot.specialist_id
        and appointment.location_id == open_slot.location_id
        and (appointment.starts_at, appointment.ends_at) == (open_slot.starts_at, open_slot.ends_at)
    ):
        raise WorkflowError(_("That is the appointment's current type, time and place."))
    freed = FreedTime.of(appointment)
    _place(appointment, slot, open_slot, new_sequence=True)
    consultation.assigned_specialist_id = open_slot.specialist_id
    db.session.flush()
    _finish(
        consultation,
        actor,
        action="request_rescheduled",
        before=before,
        email_kind="rescheduled",
        message=message,
        ics=appointment_ics(appointment),
        freed=freed,
    )


# The refusal to close an emergency or urgent request whose patient nobody reached, and the
# close form's check of its confirmation box: one wording.
UNREACHED_REFUSAL = _l(
    "Nobody has reached this patient about their urgent symptoms: no call that reached them "
    "is logged. Call them first, or tick the box to close the request anyway."
)
UNREACHED_NOTE = _l(
    "Closed without reaching the patient about their urgent symptoms: no call that reached "
    "them was logged."
)
UNREACHED_NO_SHOW_NOTE = _l(
    "Marked as no-show without reaching the patient about their urgent symptoms: no call "
    "that reached them was logged."
)
# The closes that end the call-back target and the escalation of a patient nobody reached.
UNREACHED_CLOSES = frozenset({S.CANCELLED, S.DECLINED, S.NO_SHOW})


def _close(
    consultation: ConsultationRequest,
    actor: StaffUser,
    target: RequestStatus,
    *,
    action: str,
    email_kind: str,
    message: str | None,
    plan: tuple[Plan, date | None] | None = None,
    seen: str | None = None,
    close_unreached: bool = False,
) -> None:
    consultation = _lock(consultation, actor, seen)
    check_transition(consultation, target, actor)
    # Declining, cancelling or marking no-show ends the call-back clock and the escalation
    # to the on-call address (``booking.requests.escalation`` looks at open requests only),
    # and a patient who left only a phone number is told nothing: never by a slip, only when
    # staff say so. A missed visit of a patient nobody reached is when the clinic must keep
    # calling them, not a reason to stop.
    unreached = target in UNREACHED_CLOSES and consultation.unreached
    if unreached and not close_unreached:
        raise WorkflowError(str(UNREACHED_REFUSAL))
    before = snapshot(consultation)
    audit_extra: dict[str, object] = {"unreached": True} if unreached else {}
    if target == S.COMPLETED and consultation.unreached:
        # Completed: the patient was seen, so reached (at the appointment's start at the
        # latest), by the specialist who saw them. That stops the call-back clock and takes
        # the request off the queue's banner of failed alerts of patients nobody reached.
        _reached_at_visit(consultation, actor)
        audit_extra["acknowledged"] = True
    appointment = consultation.appointment
    ics = None
    freed = None
    if target in (S.CANCELLED, S.DECLINED) and appointment is not None and appointment.active:
        freed = FreedTime.of(appointment)
        appointment.active = False  # frees the time
        # Every active appointment went out as an invitation (tentative or confirmed): the
        # patient's calendar gets its cancellation.
        appointment.sequence += 1
        db.session.flush()
        ics = appointment_ics(appointment, cancel=True)
    consultation.status = target
    db.session.flush()
    if plan is not None:
        record_plan(consultation, *plan, actor)
    if unreached:
        note = UNREACHED_NO_SHOW_NOTE if target == S.NO_SHOW else UNREACHED_NOTE
        add_event(
            consultation, kind=EventKind.NOTE, actor=actor, body=emails.in_staff_language(note)
        )
    _finish(
        consultation,
        actor,
        action=action,
        before=before,
        email_kind=email_kind,
        message=message,
        ics=ics,
        ics_method="CANCEL",
        freed=freed,
        audit_extra=audit_extra or None,
    )


def _reached_at_visit(consultation: ConsultationRequest, actor: StaffUser) -> None:
    now = now_utc()
    appointment = consultation.appointment
    if appointment is not None and appointment.active:
        consultation.acknowledged_at = min(appointment.starts_at, now)
        consultation.acknowledged_by_id = appointment.specialist_id
    else:
        consultation.acknowledged_at = now
        consultation.acknowledged_by_id = actor.id


def decline_request(
    consultation: ConsultationRequest,
    actor: StaffUser,
    message: str | None = None,
    *,
    seen: str | None = None,
    close_unreached: bool = False,
) -> None:
    """Decline the request. An emergency or urgent one whose patient nobody reached is
    refused unless ``close_unreached`` (staff ticked the box saying so): the audit row says
    ``unreached`` and the timeline notes it."""
    _close(
        consultation,
        actor,
        S.DECLINED,
        action="request_declined",
        email_kind="declined",
        message=message,
        seen=seen,
        close_unreached=close_unreached,
    )


def cancel_request(
    consultation: ConsultationRequest,
    actor: StaffUser,
    message: str | None = None,
    *,
    seen: str | None = None,
    close_unreached: bool = False,
) -> None:
    """Cancel the request. An emergency or urgent one whose patient nobody reached is
    refused unless ``close_unreached`` (staff ticked the box saying so): the audit row says
    ``unreached`` and the timeline notes it."""
    _close(
        consultation,
        actor,
        S.CANCELLED,
        action="request_cancelled",
        email_kind="cancelled",
        message=message,
        seen=seen,
        close_unreached=close_unreached,
    )


def complete_request(
    consultation: ConsultationRequest,
    actor: StaffUser,
    plan: Plan | None = None,
    procedure_date: date | None = None,
    *,
    seen: str | None = None,
) -> None:
    """Complete the request; with a ``plan`` (the record page always gives one) the decision
    is recorded in the same transaction: the follow-up schedule counts from it
    (``booking.outcomes``). The patient was seen: an emergency or urgent request nobody had
    reached by phone counts as reached at the visit (the audit row says ``acknowledged``)."""
    _close(
        consultation,
        actor,
        S.COMPLETED,
        action="request_completed",
        email_kind="completed",
        message=None,
        plan=(plan, procedure_date) if plan is not None else None,
        seen=seen,
    )


def mark_no_show(
    consultation: ConsultationRequest,
    actor: StaffUser,
    *,
    seen: str | None = None,
    close_unreached: bool = False,
) -> None:
    """Mark the appointment missed. An emergency or urgent request whose patient nobody
    reached is refused unless ``close_unreached`` (staff ticked the box saying so): it ends
    the call-back target and the escalation, so the audit row says ``unreached`` and the
    timeline notes it."""
    _close(
        consultation,
        actor,
        S.NO_SHOW,
        action="request_no_show",
        email_kind="no_show",
        message=None,
        seen=seen,
        close_unreached=close_unreached,
    )


def check_no_show(
    consultation: ConsultationRequest, actor: StaffUser, *, seen: str | None = None
) -> None:
    """Refuse (``WorkflowError``), changing nothing, a no-show ``mark_no_show`` would refuse
    (a stale page, a request not confirmed, an appointment not yet begun): the record's
    button asks to confirm only one that can be made."""
    check_may_work(consultation, actor)
    check_unchanged(consultation, seen, actor)
    check_transition(consultation, S.NO_SHOW, actor)


def add_note(consultation: ConsultationRequest, actor: StaffUser, text: str) -> RequestEvent:
    """An internal note on the timeline: never shown on the patient's pages or emailed, but
    part of the copy of their data a patient may ask for (``booking.rights.export``: the
    right of access covers what the clinic writes about them)."""
    check_may_work(consultation, actor)
    note = add_event(consultation, kind=EventKind.NOTE, actor=actor, body=text.strip())
    db.session.flush()
    record(
        "note_added",
        target_type="request",
        target_id=consultation.reference,
        actor=actor,
        details={"note_id": note.id},
    )
    db.session.commit()
    return note


# A call's time as staff enter it may run ahead of the server's clock by this much (a clock a
# little fast); anything later is a typing mistake.
CALL_CLOCK_SLACK = timedelta(minutes=5)


def log_callback(
    consultation: ConsultationRequest,
    actor: StaffUser,
    outcome: CallOutcome,
    called_at: datetime | None = None,
    note: str | None = None,
) -> CallbackAttempt:
    """Log a call to the patient: the call (who, when, what came of it), its timeline entry
    holding the note, and an audit row without the note (it may be medical). The earliest call
    that reached the patient (by when it was made, not logged) acknowledges the request, which
    stops its clock against the call-back target and its escalation (no answer or a wrong
    number does not). The call's time defaults to now; it may not be in the future nor before
    the request arrived."""
    consultation = lock_request(consultation)
    check_may_work(consultation, actor)
    now = now_utc()
    called_at = called_at or now
    if called_at > now + CALL_CLOCK_SLACK:
        raise WorkflowError(_("The time of the call is in the future."))
    if called_at < consultation.created_at:
        raise WorkflowError(_("The time of the call is before the request arrived."))
    event = add_event(consultation, kind=EventKind.CALL, actor=actor, body=note or None)
    db.session.flush()
    call = CallbackAttempt(
        request_id=consultation.id,
        caller_id=actor.id,
        called_at=called_at,
        outcome=outcome,
        event_id=event.id,
        logged_at=now,
    )
    db.session.add(call)
    # The earliest call that reached the patient acknowledges the request, whatever order
    # the calls are logged in: a call made earlier but logged later moves the acknowledgement
    # (and who made it) back to it, so the wait shown against the target is the real one.
    # A call made before staff raised the level (``raise_triage``) reached the patient about
    # the symptoms before the new ones: it does not acknowledge the call now owed.
    acknowledges = (
        outcome == CallOutcome.REACHED
        and (consultation.triage_raised_at is None or called_at >= consultation.triage_raised_at)
        and (consultation.acknowledged_at is None or called_at < consultation.acknowledged_at)
    )
    if acknowledges:
        consultation.acknowledged_at = called_at
        consultation.acknowledged_by_id = actor.id
    consultation.updated_at = now
    db.session.flush()
    record(
        "callback_logged",
        target_type="request",
        target_id=consultation.reference,
        actor=actor,
        details={
            "call_id": call.id,
            "outcome": outcome.value,
            "called_at": called_at.isoformat(),
            "acknowledged": acknowledges,
        },
    )
    db.session.commit()
    return call


def higher_levels(consultation: ConsultationRequest) -> list[TriageLevel]:
    """The triage levels staff may raise an open request to: only those above its own
    (routine to urgent or emergency, urgent to emergency). Lowering is not offered: a level
    the patient's answers or a colleague set is not undone from the record page."""
    return levels_above(consultation.triage_level) if consultation.is_open else []


def levels_above(level: TriageLevel) -> list[TriageLevel]:
    """The triage levels more pressing than ``level``, the less pressing first."""
    return sorted(
        (other for other in TriageLevel if TRIAGE_PRIORITY[other] > TRIAGE_PRIORITY[level]),
        key=TRIAGE_PRIORITY.__getitem__,
    )


def raise_triage(
    consultation: ConsultationRequest,
    actor: StaffUser,
    level: TriageLevel,
    reason: str,
    *,
    seen: str | None = None,
    shown: str | None = None,
    now: datetime | None = None,
) -> list[int]:
    """Raise an open request's triage level (``higher_levels``) for new symptoms the patient
    reported after sending (a message, a call), with staff's reason. Refused to staff who may
    not work the request, from a page that showed another status or appointment (``seen``)
    or another level (``shown``), and without a reason.

    The request takes the level's place in the queue (its ``priority``) and is owed a call
    about the new symptoms: a call that reached the patient before no longer acknowledges it
    (``acknowledged_at`` cleared; a call logged later that was made before the raise does
    not acknowledge it either, ``log_callback``), and its call-back clock starts at the raise
    (``triage_raised_at``): its wait against the target and its escalation count from now,
    and an escalation of the earlier clock no longer stands in for this one. The clinic's
    inbox is alerted in this transaction (``emails.triage_raised``; copied to the on-call
    address out of hours when held to the emergency's target); the patient is not emailed.

    The reason goes on the timeline (encrypted, like a note); the audit row keeps the levels
    and the note's id, never the reason: it may be medical, and the audit trail cannot be
    erased with the patient. Returns the alerts' outbox ids."""
    consultation = _lock(consultation, actor, seen)
    if shown is not None and shown != consultation.triage_level.value:
        raise WorkflowError(
            _(
                "The triage level was changed while you had this page open. Nothing was "
                "saved: check it as it is now, then try again."
            )
        )
    if not consultation.is_open:
        raise WorkflowError(_("Only an open request's triage level can be raised."))
    if level not in higher_levels(consultation):
        raise WorkflowError(_("The triage level can only be raised above the request's own."))
    reason = reason.strip()
    if not reason:
        raise WorkflowError(_("Please write why the triage level is raised."))
    now = now or now_utc()
    previous = consultation.triage_level
    consultation.triage_level = level  # its queue priority follows (the model's listener)
    consultation.triage_raised_at = now
    consultation.acknowledged_at = None
    consultation.acknowledged_by_id = None
    consultation.escalated_at = None
    consultation.updated_at = now
    note = add_event(
        consultation,
        kind=EventKind.NOTE,
        actor=actor,
        body=f"Raised the triage level from {previous.value} to {level.value}. Reason: {reason}",
    )
    alerts = emails.triage_raised(consultation, previous, actor.full_name)
    db.session.flush()  # the note's and the alerts' ids, for the audit row
    ids = [alert.id for alert in alerts]
    record(
        "triage_raised",
        target_type="request",
        target_id=consultation.reference,
        actor=actor,
        details={
            **changes({"triage_level": previous.value}, {"triage_level": level.value}),
            "note_id": note.id,
            "email_ids": ids,
        },
    )
    db.session.commit()
    enqueue_delivery(ids)
    return ids


def record_view(
    consultation: ConsultationRequest, actor: StaffUser, what: str, **details: object
) -> None:
    """Audit a look at medical data (a record, a document view or download)."""
    record(
        what,
        target_type="request",
        target_id=consultation.reference,
        actor=actor,
        details=dict(details),
    )
    db.session.commit()


def check_document_intact(
    consultation: ConsultationRequest, document: Document, actor: StaffUser
) -> None:
    """Read a stored document whole (every chunk and the upload's checksum) before any of it
    is sent: a document found damaged only while it streams would reach the browser cut off,
    under headers that already said all was well. Chunk by chunk, so a large scan is never
    held in memory.

    A damaged document is audited (committed now: the error page's request commits nothing)
    and logged at ERROR as ``document_damaged`` with its ids, for the operators' alerting;
    then ``DocumentUnreadable`` goes on to its error page.
    """
    try:
        get_storage().verify(document.stored_name, document.sha256)
    except DocumentUnreadable as exc:
        record(
            DOCUMENT_DAMAGED,
            target_type="request",
            target_id=consultation.reference,
            actor=actor,
            details={"document_id": document.id, "problem": str(exc)},
        )
        db.session.commit()
        # Ids only, as every log line: never the file's name or the patient's.
        log.error(
            "%s: document %s of request %s failed its integrity check (%s); restore it from "
            "the backup",
            DOCUMENT_DAMAGED,
            document.id,
            consultation.id,
            exc,
            extra={
                "event": DOCUMENT_DAMAGED,
                "document_id": document.id,
                "consultation_id": consultation.id,
            },
        )
        raise


def record_export(actor: StaffUser, filters: dict[str, object], rows: int) -> int:
    """Audit an export as it starts, before the first byte: who asked, with which filters, and
    how many rows the list held when asked (``rows``, counted apart from the rows then read:
    the access monitor's measure). A search term may be a patient's name, and the audit trail
    cannot be erased, so only the fact that one was used is kept. Returns the row's id, which
    the row written when the file ends (``export_pieces``) names."""
    kept = {key: value for key, value in filters.items() if key != "q"}
    if filters.get("q"):
        kept["search_used"] = True
    event = record("requests_exported", actor=actor, details={"filters": kept, "rows": rows})
    db.session.flush()
    export_id = event.id
    db.session.commit()
    return export_id


def export_pieces(
    actor: StaffUser,
    export_id: int,
    rows: Iterator[ConsultationRequest],
    separator: str = ",",
) -> Iterator[str]:
    """The export's rows as CSV pieces, and once the file ends an audit row
    (``requests_export_ended``) naming the references of every row generated, so that a
    search of the trail for one patient's reference finds the exports that held it.

    It is written when the last row has gone (``complete``: yes) or when the download stops
    early: cancelled, or the connection lost, the server closes the stream (``complete``: no).
    Either way it lists the rows handed to the server, which a browser that stopped may not
    all have received: the trail says what left the app, not what reached the disk. A
    download stopped before its first row leaves only the starting row (``record_export``).
    """
    sent: list[str] = []

    def close_rows() -> None:
        close = getattr(rows, "close", None)
        if close is not None:
            close()

    return audited_when_done(
        csv_rows(rows, separator, sent=sent),
        "requests_export_ended",
        actor=actor,
        details=lambda complete: {
            "export": export_id,
            "complete": complete,
            "rows": len(sent),
            "references": sent,
        },
        close=close_rows,
    )


def may_set_join_link(consultation: ConsultationRequest, now: datetime | None = None) -> bool:
    """Whether the request's appointment is a confirmed video visit still to come: the only
    kind that can be given a link to join it."""
    appointment = consultation.appointment
    return (
        consultation.status == S.CONFIRMED
        and appointment is not None
        and appointment.active
        and appointment.ends_at > (now or now_utc())
        and appointment.appointment_type is not None
        and appointment.appointment_type.mode == VisitMode.VIDEO
    )


def set_join_link(
    consultation: ConsultationRequest, actor: StaffUser, link: str, *, seen: str | None = None
) -> None:
    """Give a confirmed video visit, still to come, the link that joins it: the patient is
    emailed it with the calendar event updated (its place becomes the link), an email that
    withdraws the calendar emails not sent yet as any change of the appointment's does
    (``lifecycle.change_email``). Audited without the link (the audit trail outlives the
    appointment; the link may hold a passcode)."""
    consultation = _lock(consultation, actor, seen)
    appointment = consultation.appointment
    if appointment is None or not may_set_join_link(consultation):
        raise WorkflowError(
            _("Only a confirmed video visit still to come can be given a link to join it.")
        )
    if appointment.join_link == link:
        raise WorkflowError(_("The patient already has that link."))
    replaced = appointment.join_link is not None
    appointment.join_link = link
    appointment.sequence += 1
    consultation.updated_at = now_utc()
    db.session.flush()
    # As every change of the appointment's calendar event: the confirmation (or an earlier
    # link's email) not sent yet is withdrawn, so a retry never lands after this email
    # saying "the clinic will send you how to join", or with a replaced link.
    email = change_email(consultation, "join_link", ics=appointment_ics(appointment))
    # A reminder still waiting would arrive without the link, or with the replaced one.
    reminder = reminders.rewrite_waiting(consultation)
    # The notes say what is true when written: the email is in the outbox, delivered later
    # or never (the timeline's delivery badge of the email says which).
    if email is None:  # no address (an emergency call-back), or the patient marked deceased
        body = "Saved a link to join the video visit; no email went: tell the patient by phone."
    elif replaced:
        body = (
            "Saved a new link to join the video visit; the earlier one is no longer shown. "
            "An email giving the patient the new link was written to the outbox."
        )
    else:
        body = (
            "Saved a link to join the video visit. An email giving the patient the link was "
            "written to the outbox."
        )
    add_event(consultation, kind=EventKind.NOTE, actor=actor, body=body)
    record(
        "join_link_set",
        target_type="request",
        target_id=consultation.reference,
        actor=actor,
        details={"replaced": replaced, "sequence": appointment.sequence, "emailed": bool(email)},
    )
    db.session.commit()
    enqueue_delivery([sent.id for sent in (email, reminder) if sent is not None])


def send_new_link(consultation: ConsultationRequest, actor: StaffUser) -> tuple[int, bool]:
    """End every private link sent so far and email the patient a new one (a link forwarded
    by mistake, a shared mailbox); the questionnaires' links too, each still open sent again.
    The emails waiting to go are written again with new links. Returns how many links to the
    patient's page stopped working, and whether a new one was emailed: not once a closed
    request's page no longer opens (``links.links_work``; a completed request whose
    questionnaires still go out), where it would only puzzle the patient. Refused to staff
    who may not work the request (``check_may_work``), as every change of a request is."""
    consultation = lock_request(consultation)
    check_may_work(consultation, actor)
    if not consultation.patient.email:
        raise WorkflowError(_("The patient left no email address: there is no link to send."))
    if consultation.patient.deceased_at is not None:  # nothing more goes to the address
        raise WorkflowError(_("The patient is marked deceased: nothing is sent to them."))
    page_opens = links_work(consultation)
    revoked = revoke_all(consultation)
    # A new address asked for through a link that may have been forwarded waits no more.
    end_waiting_changes(consultation)
    # The emails not sent yet held links that just ended: they go with new ones. The
    # questionnaires' links were in the same mailbox: they end too, and each questionnaire
    # still open is sent again (as when staff correct the address, ``correct_contact``).
    written = emails.readdress_waiting(consultation, consultation.patient.email)
    written += readdress_followups(consultation, written)
    add_event(
        consultation,
        kind=EventKind.NOTE,
        actor=actor,
        body="Every earlier private link stopped working. An email giving the patient a new "
        "private link was written to the outbox."
        if page_opens
        else "Every earlier private link stopped working. No new link was sent: the request "
        "is closed and its page no longer opens.",
    )
    record(
        "manage_link_reissued",
        target_type="request",
        target_id=consultation.reference,
        actor=actor,
        details={"links_revoked": revoked, "emails_rewritten": len(written)},
    )
    email = emails.new_link(consultation) if page_opens else None
    db.session.commit()
    enqueue_delivery([sent.id for sent in (*written, email) if sent is not None])
    return revoked, email is not None


def contact_key(patient: Patient) -> str:
    """A short fingerprint of the patient's email address and phone number as a page shows
    them: the contact form carries it, so a correction made from a page that showed others
    (a colleague corrected them since) is refused instead of putting the old ones back."""
    text = json.dumps([patient.email or "", patient.phone])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def changes_email(patient: Patient, email: str | None) -> bool:
    """Whether ``correct_contact`` with this address would change the patient's, ending
    their private links and emailing new ones (a phone number alone sends nothing)."""
    return (email or "").strip() != (patient.email or "")


@dataclass(frozen=True)
class ContactCorrected:
    """What ``correct_contact`` did: the fields it changed ("email", "phone"), how many
    private links stopped working, and whether an email with a new link went; when none
    went, ``page_closed``: the request's links have expired (``links.links_work``), not
    that the patient is marked deceased."""

    changed: list[str]
    links_revoked: int
    emailed: bool
    page_closed: bool = False


def correct_contact(
    consultation: ConsultationRequest,
    actor: StaffUser,
    email: str | None,
    phone: str,
    *,
    seen: str | None = None,
    shown: str | None = None,
) -> ContactCorrected:
    """Correct the patient's email address and phone number (``phone`` in E.164), as staff
    learnt them (a call: the address was mistyped, the number changed). Refused when nothing
    changed, when the address would be removed (a patient with one is written to there),
    when the request changed since the page showed it (``seen``) or its contact details did
    (``shown``, ``contact_key``).

    A new address ends every private link sent so far, as "Send a new link" does: the old
    address may be somebody else's mailbox, whose links would go on opening the patient's
    page. The emails waiting for delivery to it go to the new address instead, each with a
    new link (``emails.readdress_waiting``), and one email with a new private link tells the
    patient where their request is (none when the patient is marked deceased, as every
    email to them). The old address is told of the change (``emails.address_changed``): the
    caller may not have been the patient. A new number alone sends nothing. Audited with the
    names of the fields changed, never their values: the audit trail outlives an erasure."""
    consultation = _lock(consultation, actor, seen)
    patient = consultation.patient
    # Read again under the request's lock, which every correction holds: the page's copy may
    # be older than a colleague's correction.
    db.session.refresh(patient)
    if shown is not None and shown != contact_key(patient):
        raise WorkflowError(
            _(
                "The patient's email address or phone number was changed while you had this "
                "page open. Nothing was saved: check them as they are now, then try again."
            )
        )
    old_email = patient.email or ""
    email = (email or "").strip()
    if old_email and not email:
        raise WorkflowError(
            _("The email address cannot be removed here: enter the corrected address.")
        )
    changed = [
        name
        for name, before, after in (("email", old_email, email), ("phone", patient.phone, phone))
        if before != after
    ]
    if not changed:
        raise WorkflowError(
            _("Those are the patient's email address and phone number already: nothing changed.")
        )
    patient.phone = phone
    now = now_utc()
    done = readdress(consultation, email, now) if "email" in changed else None
    consultation.updated_at = now
    what = {
        ("email",): "the patient's email address",
        ("phone",): "the patient's phone number",
    }.get(tuple(changed), "the patient's email address and phone number")
    body = f"Corrected {what}." if done is None else f"Corrected {what}; {done.consequences()}"
    written = done.written if done is not None else []
    notice = done.notice if done is not None else None
    add_event(consultation, kind=EventKind.NOTE, actor=actor, body=body)
    db.session.flush()
    ids = [row.id for row in written]
    record(
        "patient_contact_corrected",
        target_type="request",
        target_id=consultation.reference,
        actor=actor,
        details={
            "changed": changed,
            "links_revoked": done.links_revoked if done is not None else 0,
            "new_email_ids": ids,
            **({"notice_email_id": notice.id} if notice is not None else {}),
        },
    )
    db.session.commit()
    enqueue_delivery([*ids, *([notice.id] if notice is not None else [])])
    if done is None:
        return ContactCorrected(changed, 0, False)
    return ContactCorrected(changed, done.links_revoked, done.link_sent, done.page_closed)


@dataclass(frozen=True)
class Resent:
    """What ``resend_patient_emails`` did: the new rows' ids, how many failed emails were
    outdated (not sent again: a new link to the patient's page went instead), and how many
    were left out (``still_wanted``: a reminder, an offer or an invitation of what is past,
    or to a patient who may no longer be contacted)."""

    email_ids: list[int]
    outdated: int
    left_out: int = 0


# The failed emails that went unasked (``may_be_contacted``) and each about one thing to
# come: sent again only while the patient may be contacted and it is still to come.
UNASKED_TEMPLATES = REMINDER_TEMPLATES | OFFER_TEMPLATES | FOLLOWUP_TEMPLATES


def still_wanted(consultation: ConsultationRequest, failed: OutboxEmail) -> bool:
    """Whether a failed email may be sent again as it is: any but a reminder, an
    earlier-time offer or a follow-up invitation; those only while the patient may still
    be contacted (``may_be_contacted``) and what they are about is still to come: the
    appointment (active, not begun; the request's one appointment, as the outbox row names
    none), the offer (read from the token in its link: still open to this request and its
    time still free, ``waitlist.offer_open_to``, as its email's delivery asks) or the
    questionnaire (from its link: still open to an answer). One whose link cannot be read
    (no longer whole) is left out. The email giving the appointment's new address only
    while that appointment is still to come (it goes whatever the patient's contact
    consent: they are expected there)."""
    if failed.template in ADDRESS_TEMPLATES:
        appointment = consultation.appointment
        return appointment is not None and appointment.active and appointment.starts_at > now_utc()
    if failed.template not in UNASKED_TEMPLATES:
        return True
    contactable = db.session.scalar(
        select(ConsultationRequest.id).where(
            ConsultationRequest.id == consultation.id, may_be_contacted()
        )
    )
    if contactable is None:
        return False
    now = now_utc()
    if failed.template in REMINDER_TEMPLATES:
        appointment = consultation.appointment
        return appointment is not None and appointment.active and appointment.starts_at > now
    if failed.template in OFFER_TEMPLATES:
        token = emails.offer_token_in(failed)
        offer = find_offer(token) if token else None
        return offer is not None and offer_open_to(offer, consultation, now)
    token = followup_token_in(failed)
    link = link_for_token(token) if token else None
    return link is not None and can_answer(link.follow_up, now)


def resend_patient_emails(
    consultation: ConsultationRequest, actor: StaffUser, address: str
) -> Resent:
    """Send again every email the patient was never given (``emails.unnotified``): each as a
    fresh outbox row in this transaction (with a new private link), to ``address``, which
    becomes the patient's address when staff corrected it; those written before the
    request's last change of status or time, or holding a time or invitation a later
    calendar email replaced (``emails.outdated_by_calendar``), are never sent again: one
    email with a new link to the patient's page goes instead. One giving the appointment's
    place written before an admin corrected the location's address is written again as the
    appointment now is (``relocation.write_again``), never copied with the old address, and
    an earlier-time offer with its place as it now is. A corrected address ends every
    private link sent so far, as "Send a new link" does: the wrong address may be somebody
    else's mailbox, which took the emails before the one that failed, and their links would
    go on opening the patient's page; the emails sent again carry new ones.
    Refused when nothing may go to the patient (``Patient.writable_address``: marked
    deceased, no address); a reminder, an offer or an invitation no longer wanted
    (``still_wanted``) is left out. Every failed email looked at is settled (``settled_at``:
    sent again, replaced by the new link, or left out), so none stays on the record's banner
    or the queue's count for good; when none was still wanted, nothing is sent and the
    address is not taken (nothing goes to it), but they are settled all the same: there was
    nothing left for staff to do about them.
    A corrected address is told of the change at the old one (``emails.address_changed``).
    Audited with the ids, whether the address changed and how many links ended (never the
    address: the audit trail outlives an erasure)."""
    consultation = lock_request(consultation)
    check_may_work(consultation, actor)
    if not consultation.patient.writable_address:
        raise WorkflowError(
            _(
                "No email can be sent to this patient: they are marked deceased or left no "
                "email address."
            )
        )
    failed = emails.unnotified(consultation)
    if not failed:
        raise WorkflowError(_("Every email to the patient went out or is on its way."))
    # A reminder, an offer or an invitation no longer wanted is not sent again (nor
    # replaced by a new link: it told of nothing the patient's page shows).
    wanted = [e for e in failed if still_wanted(consultation, e)]
    address = address.strip()
    changed = bool(wanted) and address != (consultation.patient.email or "")
    revoked = 0
    notice = None
    if changed:
        old_address = consultation.patient.email or ""
        consultation.patient.email = address
        # Before the copies are made: their new links must not be ended with the old ones.
        revoked = revoke_all(consultation)
        # As ``correct_contact``: the old address hears of the change (it may be the
        # patient's, and the one who gave staff the new one somebody else).
        notice = emails.address_changed(consultation, old_address, now_utc())
    # An email written before the request's last change of status, time or link no longer
    # says where it stands ("we will confirm" after a decline, a tentative time since confirmed):
    # the patient gets a new link to their page instead, which shows it. The others again.
    last_change = db.session.scalar(
        select(func.max(RequestEvent.occurred_at)).where(
            RequestEvent.request_id == consultation.id, RequestEvent.kind == EventKind.STATUS
        )
    )
    status_change = last_change
    # A change to the appointment alone (a video visit's link given or replaced) dates the
    # emails before it too: a copy would hand over a replaced link.
    if consultation.appointment is not None:
        altered = consultation.appointment.updated_at
        last_change = altered if last_change is None else max(last_change, altered)
    # One giving the appointment's place written before an admin corrected its address (the
    # correction changed the appointment: its calendar event's sequence): a copy would give
    # the old address, and a new link alone would lose what it said (held or confirmed, the
    # staff's message, the calendar file). Written again as the appointment now is instead,
    # while the request's status is still the one it told (``relocation.write_again``); one
    # whose kind cannot be read is out of date (a new link instead), never copied.
    relocated = {
        e.id
        for e in wanted
        if relocation.gives_the_place(e) and relocation.told_new_address_since(consultation, e)
    }
    # An earlier-time offer is written again too (the same offer and link): its place may
    # have a new address since, and nothing tells which offer email gave the old one.
    rewritten = {
        e.id
        for e in wanted
        if (e.id in relocated or e.template in OFFER_TEMPLATES)
        and relocation.rewritable(consultation, e)
    }

    def still_stands(email: OutboxEmail) -> bool:
        if emails.outdated_by_calendar(consultation, email) or (
            email.id in relocated and email.id not in rewritten
        ):
            return False
        # One written again as things now are hands over nothing the appointment's own
        # change replaced: only a change of status dates it.
        since = status_change if email.id in rewritten else last_change
        return since is None or email.created_at >= since

    current = [e for e in wanted if still_stands(e)]
    left_out = [email.id for email in failed if email not in wanted]
    # Never None: the patient is writable (checked above).
    copies = [
        again
        for email in current
        if (
            again := relocation.write_again(consultation, email)
            if email.id in rewritten
            else emails.resend(consultation, email)
        )
        is not None
    ]
    if changed:  # the follow-up questionnaires' links too (``correct_contact``)
        copies += readdress_followups(consultation, copies)
    settled = now_utc()
    for email in failed:
        emails.retire(email)
        email.settled_at = settled
    if len(current) < len(wanted) and (link_email := emails.new_link(consultation)) is not None:
        copies.append(link_email)
    if not wanted:
        note = "None of the patient's failed emails was still to be sent: none was sent again."
    elif changed:
        note = (
            "The patient's failed emails were written to the outbox again, to a corrected "
            "address; every earlier link stopped working. An email telling the old address of "
            "the change, with no link, was written to the outbox."
        )
    else:
        note = "The patient's failed emails were written to the outbox again."
    add_event(consultation, kind=EventKind.NOTE, actor=actor, body=note)
    db.session.flush()
    record(
        "patient_emails_resent",
        target_type="request",
        target_id=consultation.reference,
        actor=actor,
        details={
            "failed_email_ids": [email.id for email in failed],
            **({"left_out_email_ids": left_out} if left_out else {}),
            "new_email_ids": [copy.id for copy in copies],
            **({"notice_email_id": notice.id} if notice is not None else {}),
            "address_changed": changed,
            "links_revoked": revoked,
        },
    )
    db.session.commit()
    ids = [copy.id for copy in copies]
    enqueue_delivery([*ids, *([notice.id] if notice is not None else [])])
    return Resent(ids, len(wanted) - len(current), len(left_out))
