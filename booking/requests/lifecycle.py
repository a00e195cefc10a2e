"""The request's life: its reference, its statuses and their transitions, and the one operation
that records a change.

Valid transitions (anything else is refused, whoever asks):

    requested -> awaiting_patient | confirmed | declined | cancelled
    awaiting_patient -> requested (answered or withdrawn) | confirmed | declined | cancelled
    confirmed -> confirmed (reschedule) | completed | cancelled | no_show

Completed and no-show say what happened at the appointment, so neither is possible before the
appointment starts (``opens_at``).

``record_change`` is how every change is written, whoever makes it (staff on the dashboard,
the patient through the private link, the waitlist): a timeline entry, an audit row with the
before and after of the status and the appointment, and the patient's email. It adds to the
caller's transaction; the caller commits and then hands the emails to the worker.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from datetime import datetime, timedelta
from typing import Any

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import lazy_pgettext as _p
from sqlalchemy import select

from booking.audit.services import changes, record
from booking.extensions import db
from booking.notifications.models import OutboxEmail
from booking.notifications.services import (
    withdraw_calendar_emails,
    withdraw_emails,
    withdraw_pending,
)
from booking.requests import emails, withdrawals
from booking.requests.events import EventKind, RequestEvent
from booking.requests.models import (
    OPEN_STATUSES,
    REFERENCE_ALPHABET,
    UNCONFIRMED_STATUSES,
    ConsultationRequest,
    RequestStatus,
)
from booking.requests.queries import can_see
from booking.scheduling.availability import clinic_settings
from booking.scheduling.models import Appointment, AppointmentType, VisitMode
from booking.scheduling.visits import mode_of
from booking.staff.models import StaffRole, StaffUser
from booking.timeutil import clinic_dt, now_utc

# The audit trail's actor for what the patient does through their private link.
PATIENT = "patient"

REFERENCE_ATTEMPTS = 5

S = RequestStatus
TRANSITIONS: dict[RequestStatus, frozenset[RequestStatus]] = {
    S.REQUESTED: frozenset({S.AWAITING_PATIENT, S.CONFIRMED, S.DECLINED, S.CANCELLED}),
    S.AWAITING_PATIENT: frozenset({S.REQUESTED, S.CONFIRMED, S.DECLINED, S.CANCELLED}),
    S.CONFIRMED: frozenset({S.CONFIRMED, S.COMPLETED, S.CANCELLED, S.NO_SHOW}),
    S.COMPLETED: frozenset(),
    S.DECLINED: frozenset(),
    S.CANCELLED: frozenset(),
    S.NO_SHOW: frozenset(),
}
# What a specialist may do with a request assigned to them; coordinators and admins do all.
# Besides marking the visit, they may ask the patient for information (the request waits for
# the patient) and withdraw the ask: it decides nothing, and they may write to the patient.
SPECIALIST_MAY = frozenset({S.COMPLETED, S.NO_SHOW, S.AWAITING_PATIENT, S.REQUESTED})
# What happened at the appointment: known only once it has started. Marking it earlier closed
# the request (the patient could no longer move or cancel it) and emailed them "thank you for
# your visit" or "we missed you" before the visit.
AFTER_START = frozenset({S.COMPLETED, S.NO_SHOW})


class WorkflowError(ValueError):
    """A refused change; the message is for the staff member."""


def new_reference() -> str:
    """A reference like ``SC-7K4M-Q2XD``: 8 random characters, about 38 bits."""
    chars = "".join(secrets.choice(REFERENCE_ALPHABET) for _ in range(8))
    return f"SC-{chars[:4]}-{chars[4:]}"


def unused_reference() -> str:
    for _attempt in range(REFERENCE_ATTEMPTS):
        reference = new_reference()
        taken = db.session.scalar(
            select(ConsultationRequest.id).where(ConsultationRequest.reference == reference)
        )
        if taken is None:
            return reference
    raise RuntimeError("could not find an unused reference")


# Each label is translated when it is shown (lazily), one per call: a page lists a status per
# row and per tab, and translating all seven for each was most of the queue's gettext time.
STATUS_LABELS = {
    S.REQUESTED: _l("requested"),
    S.AWAITING_PATIENT: _l("waiting for the patient"),
    S.CONFIRMED: _l("confirmed"),
    S.COMPLETED: _l("completed"),
    S.DECLINED: _l("declined"),
    S.CANCELLED: _l("cancelled"),
    S.NO_SHOW: _l("no-show"),
}
# The status as it reads after "a request that is" ("No further changes are possible for a
# request that is ..."): the staff's word, but for the one that is no adjective ("a request
# that is no-show").
STATUS_STATES = {**STATUS_LABELS, S.NO_SHOW: _l("marked as a no-show")}
# The status as the patient reads it on their page: a sentence, not the staff's word (an
# English "requested" reads as the code it is).
PATIENT_STATUS_LABELS = {
    S.REQUESTED: _l("Received: the clinic will confirm your appointment"),
    S.AWAITING_PATIENT: _l("Waiting for you: the clinic needs something from you"),
    S.CONFIRMED: _l("Appointment confirmed"),
    S.COMPLETED: _l("Visit completed"),
    S.DECLINED: _l("Not offered an appointment"),
    # A context of its own: "Cancelled" is also an upload's state, and in Spanish the two
    # agree with different nouns (la solicitud: cancelada; el envío: cancelado).
    S.CANCELLED: _p("request status", "Cancelled"),
    S.NO_SHOW: _l("Appointment missed"),
}


def status_label(status: RequestStatus | str) -> str:
    """The status as staff read it, in the reader's language."""
    return str(STATUS_LABELS[RequestStatus(status)])


def status_state(status: RequestStatus | str) -> str:
    """The status as staff read it after "a request that is" (``STATUS_STATES``)."""
    return str(STATUS_STATES[RequestStatus(status)])


def patient_status_label(status: RequestStatus | str) -> str:
    """The status as the patient reads it on their page (``PATIENT_STATUS_LABELS``)."""
    return str(PATIENT_STATUS_LABELS[RequestStatus(status)])


def role_may(user: StaffUser, target: RequestStatus) -> bool:
    """Whether the user's role allows moving a request to ``target`` at all."""
    return user.works_every_request or (
        user.role == StaffRole.SPECIALIST and target in SPECIALIST_MAY
    )


def check_may_work(consultation: ConsultationRequest, actor: StaffUser) -> None:
    """Staff work only the requests they may see (``queries.can_see``)."""
    if not can_see(actor, consultation):
        raise WorkflowError(_("This request is not assigned to you."))


def opens_at(consultation: ConsultationRequest, target: RequestStatus) -> datetime | None:
    """The earliest time the request may move to ``target``: the start of its appointment
    for completed and no-show (``AFTER_START``); None when no time holds the change back.
    Only a confirmed request may be completed or marked no-show, and confirming places its
    appointment (an emergency call-back too); one without an active appointment would have no
    start to wait for, so the status rules alone decide."""
    appointment: Appointment | None = consultation.appointment
    if target not in AFTER_START or appointment is None or not appointment.active:
        return None
    return appointment.starts_at


# The patient's own changes through the private link (``booking.manage``), and taking an
# earlier time offered from the waitlist (``waitlist.accept_offer``), stop at the change and
# cancel notice before the appointment: after it the patient calls the clinic.


def notice_deadline(consultation: ConsultationRequest) -> datetime | None:
    """Until when the patient may still change or cancel the appointment online; None for a
    request without an active appointment, or closed (completed, no-show, declined,
    cancelled: a completed one keeps its appointment, but nothing can be changed any more)."""
    if consultation.status not in OPEN_STATUSES:
        return None
    appointment = consultation.appointment
    if appointment is None or not appointment.active:
        return None
    return appointment.starts_at - timedelta(hours=clinic_settings().cancel_notice_hours)


def appointment_passed(consultation: ConsultationRequest) -> bool:
    """Whether an open request's appointment has started (the clinic has not marked the
    visit yet): the page then says so instead of calling it soon."""
    appointment = consultation.appointment
    return (
        consultation.status in OPEN_STATUSES
        and appointment is not None
        and appointment.active
        and appointment.starts_at <= now_utc()
    )


def can_change(consultation: ConsultationRequest, now: datetime | None = None) -> bool:
    """Whether the patient may still change or cancel online (``notice_deadline``)."""
    if consultation.status not in OPEN_STATUSES:
        return False
    deadline = notice_deadline(consultation)
    return deadline is None or (now or now_utc()) < deadline


def check_transition(
    consultation: ConsultationRequest, target: RequestStatus, actor: StaffUser
) -> None:
    """Refuse (``WorkflowError``) a change the request's status or the actor's role forbids,
    or one made before its time (``opens_at``)."""
    check_may_work(consultation, actor)
    if target not in TRANSITIONS[consultation.status]:
        raise WorkflowError(
            _(
                "A request that is %(current)s cannot be changed to %(target)s.",
                current=status_state(consultation.status),
                target=status_label(target),
            )
        )
    if not role_may(actor, target):
        raise WorkflowError(_("Your role does not allow this change."))
    start = opens_at(consultation, target)
    if start is not None and now_utc() < start:
        raise WorkflowError(
            _(
                "The appointment starts on %(when)s: the request can be marked %(target)s only "
                "from then.",
                target=status_label(target),
                when=clinic_dt(start),
            )
        )


def snapshot(consultation: ConsultationRequest) -> dict[str, object]:
    """The status and the appointment as they are now: take one before a change, for the
    audit row's before and after."""
    state: dict[str, object] = {"status": consultation.status.value}
    appointment: Appointment | None = consultation.appointment
    if appointment is not None:
        state.update(
            # How the visit takes place (in person, video, phone) and its length: a change of
            # type alone is a change the audit and the pending reminders must see.
            appointment_type=appointment.appointment_type_id,
            specialist=appointment.specialist_id,
            location=appointment.location_id,
            starts_at=appointment.starts_at,
            ends_at=appointment.ends_at,
            active=appointment.active,
            sequence=appointment.sequence,
        )
    return state


def state_key(consultation: ConsultationRequest) -> str:
    """A short fingerprint of the status and the appointment (``snapshot``): a staff form
    carries the one it was shown with, so a change made since (the patient moved or cancelled,
    a colleague acted) is refused instead of undone (``check_unchanged``)."""
    text = json.dumps(snapshot(consultation), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# A page sent again this soon after its sender's own change of the request is read as the
# same press of a button arriving twice (a double click, a reload that posts again).
OWN_CHANGE_WINDOW = timedelta(minutes=2)


def check_unchanged(
    consultation: ConsultationRequest, seen: str | None, actor: StaffUser | None = None
) -> None:
    """Refuse (``WorkflowError``) a change made from a page showing an older state of the
    request; ``seen`` is the page's ``state_key`` (None: no page, nothing to compare). When
    the change since was the ``actor``'s own, a moment ago, the refusal says so: their page
    was sent twice, and the first time did it (not "a colleague changed it: nothing was
    done", which reads as if their change failed)."""
    if seen is None or seen == state_key(consultation):
        return
    if actor is not None and _changed_by_just_now(consultation, actor):
        raise WorkflowError(
            _(
                "You changed this request a moment ago: if the button was pressed twice, the "
                "change was made once. Nothing more was done: check it as it is now."
            )
        )
    raise WorkflowError(
        _(
            "This request changed while you had it open (the patient or a colleague changed "
            "its appointment or status). Nothing was done: check it as it is now, then try "
            "again."
        )
    )


def _changed_by_just_now(consultation: ConsultationRequest, actor: StaffUser) -> bool:
    """Whether the request's latest change of status or appointment (a timeline STATUS
    entry) was ``actor``'s, within ``OWN_CHANGE_WINDOW``."""
    latest = db.session.execute(
        select(RequestEvent.actor_id, RequestEvent.occurred_at)
        .where(RequestEvent.request_id == consultation.id, RequestEvent.kind == EventKind.STATUS)
        .order_by(RequestEvent.occurred_at.desc(), RequestEvent.id.desc())
        .limit(1)
    ).first()
    return (
        latest is not None
        and latest.actor_id == actor.id
        and latest.occurred_at >= now_utc() - OWN_CHANGE_WINDOW
    )


def add_event(
    consultation: ConsultationRequest,
    *,
    kind: EventKind,
    actor: StaffUser | None,
    body: str | None,
    from_status: str | None = None,
) -> RequestEvent:
    """One entry on the request's timeline (``actor`` None: the patient)."""
    event = RequestEvent(
        request_id=consultation.id,
        occurred_at=now_utc(),
        actor_id=actor.id if actor is not None else None,
        kind=kind,
        from_status=from_status,
        to_status=consultation.status.value if kind == EventKind.STATUS else None,
        body=body,
    )
    db.session.add(event)
    return event


# The emails not sent yet that a change of the request's status or appointment makes wrong:
# a reminder is of one time at one place, an offer of an earlier time is for an open request.
REMINDER_TEMPLATES = frozenset({"appointment_reminder"})
OFFER_TEMPLATES = frozenset({"waitlist_offer"})
FOLLOWUP_TEMPLATES = frozenset({"followup_invitation"})
# A location's new address is told of one time at one place too (``relocation``): delivered
# after the time moved or was cancelled, it would say the old time "has not changed", with a
# calendar file of a place the event no longer has. Not a reminder: the patient's consent to
# be contacted does not hold it back (``rights``), it is news of their appointment.
ADDRESS_TEMPLATES = frozenset({emails.APPOINTMENT_ADDRESS})
_APPOINTMENT_KEYS = (
    "status",
    "appointment_type",
    "specialist",
    "location",
    "starts_at",
    "ends_at",
    "active",
)


def _outdated_by(
    before: dict[str, object], after: dict[str, object], consultation: ConsultationRequest
) -> frozenset[str]:
    """Which of the request's waiting emails (``withdraw_pending``) a change from ``before``
    to ``after`` (``snapshot``) outdates."""
    outdated: frozenset[str] = frozenset()
    if _appointment_changed(before, after):
        outdated |= REMINDER_TEMPLATES | ADDRESS_TEMPLATES
    if consultation.status not in OPEN_STATUSES or not after.get("active"):
        outdated |= OFFER_TEMPLATES
    return outdated


# The statuses of a request not confirmed yet: between them (staff ask the patient for
# information, the patient answers, staff stop asking) the time held is the same, at the
# same place, and its emails still hold.
_UNCONFIRMED = frozenset(status.value for status in UNCONFIRMED_STATUSES)


def _appointment_changed(before: dict[str, object], after: dict[str, object]) -> bool:
    """Whether a change from ``before`` to ``after`` (``snapshot``) changes what the request's
    reminders and address emails say: its appointment, or its status (a time confirmed,
    cancelled, attended), not a move between the unconfirmed statuses."""
    if any(before.get(key) != after.get(key) for key in _APPOINTMENT_KEYS if key != "status"):
        return True
    statuses = {before.get("status"), after.get("status")}
    return len(statuses) > 1 and not statuses <= _UNCONFIRMED


# The emails that replace a withdrawn calendar email for the same appointment (confirmed at,
# or moved to, its time now, or given its video link): a message staff wrote for that visit
# ("bring your MRI") still holds there. A cancellation or a decline ends the visit: the
# message would speak of one that no longer takes place. It stays on the request's timeline
# (the note of its change).
CARRIES_STAFF_MESSAGE = frozenset({"confirmed", "rescheduled", "join_link"})


def record_change(
    consultation: ConsultationRequest,
    *,
    action: str,
    actor: StaffUser | None,
    before: dict[str, object],
    note: str | None,
    email_kind: str | None,
    message: str | None = None,
    ics: str | None = None,
    ics_method: str = "REQUEST",
    audit_extra: dict[str, Any] | None = None,
) -> OutboxEmail | None:
    """Record a change already made to ``consultation`` (``before`` is its ``snapshot`` from
    before the change): the timeline entry, the audit row (``actor`` None: the patient) and
    the patient's email, which is returned (None when the patient left no address: an
    emergency call-back; or ``email_kind`` None: a change the patient need not be told of).
    A change staff make ends the "information received" mark (``booking.requests.asks``):
    they have acted on it. Flushes; the caller commits.

    ``note`` goes on the timeline only: the audit trail is append-only and cannot be erased
    with the patient, and a note may hold medical details.

    A change whose email carries a calendar file (``ics``) withdraws the request's status
    emails with a calendar file not sent yet (``withdraw_calendar_emails``): never is a time
    or an invitation that has changed since delivered (a first email retried after a second
    went out, the latest email in the patient's inbox showing the old time, an invitation
    arriving after its cancellation). The new email says the request's current state; a
    message staff wrote in a withdrawn email is carried into it, before this one's, when it
    is for the same visit (``CARRIES_STAFF_MESSAGE``), never into a cancellation or decline.
    """
    consultation.updated_at = now_utc()
    if actor is not None:
        consultation.information_received_at = None
    if before["status"] == S.AWAITING_PATIENT.value and consultation.status != S.AWAITING_PATIENT:
        # Confirmed, declined or cancelled while waiting: the question is no longer asked
        # (the patient's page stops asking, no reminder goes). An answer or a withdrawal has
        # closed it already. (asks builds on this module, hence the import here.)
        from booking.requests.asks import close_open_asks

        close_open_asks(consultation)
    asked = 0
    if before["status"] == S.AWAITING_PATIENT.value and consultation.status not in (
        S.AWAITING_PATIENT,
        S.REQUESTED,
    ):
        # Nor is it asked by email: the ask's email and its reminder not sent yet go too
        # (the email of the confirmation, decline or cancellation says where it stands).
        # Not when the ask itself ended (back to "requested": answered, or withdrawn by
        # staff), whose own email answers it.
        asked = withdraw_emails(
            emails.waiting_ask_emails(consultation), reason=withdrawals.ASK_CLOSED
        )
    db.session.flush()
    add_event(
        consultation,
        kind=EventKind.STATUS,
        actor=actor,
        body=note,
        from_status=str(before["status"]),
    )
    db.session.flush()
    after = snapshot(consultation)
    withdrawn = asked + withdraw_pending(
        consultation.id, _outdated_by(before, after, consultation), reason=withdrawals.OUTDATED
    )
    record(
        action,
        target_type="request",
        target_id=consultation.reference,
        actor=actor,
        actor_email=PATIENT if actor is None else None,
        details={
            **changes(before, after),
            **({"emails_withdrawn": withdrawn} if withdrawn else {}),
            **(audit_extra or {}),
        },
    )
    if email_kind is None:
        return None
    moved_from = before.get("starts_at")
    return change_email(
        consultation,
        email_kind,
        message,
        ics,
        ics_method,
        # A move says the time it was as well as the time it is: the patient recognises the
        # email as being about their appointment. Not for a change of type alone, whose time
        # is the same.
        previous_starts_at=moved_from
        if email_kind == "rescheduled" and moved_from != after.get("starts_at")
        else None,
        # And how it took place: a move that changes it says so first (``patient_update``).
        previous_mode=_mode_before(before) if email_kind == "rescheduled" else None,
    )


def _mode_before(before: dict[str, object]) -> VisitMode | None:
    """How the appointment of a ``snapshot`` took place; None when it had none."""
    if "appointment_type" not in before:
        return None
    type_id = before["appointment_type"]
    return mode_of(db.session.get(AppointmentType, type_id) if type_id is not None else None)


def change_email(
    consultation: ConsultationRequest,
    email_kind: str,
    message: str | None = None,
    ics: str | None = None,
    ics_method: str = "REQUEST",
    *,
    previous_starts_at: datetime | None = None,
    previous_mode: VisitMode | None = None,
) -> OutboxEmail | None:
    """The patient's email about a change of the request or its appointment
    (``emails.patient_update``; ``previous_starts_at``: the time a move moved it from,
    ``previous_mode``: how the visit took place before it),
    written as every such change writes it: one that carries a
    calendar file withdraws the request's status emails with a calendar file not sent yet
    (``withdraw_calendar_emails``) and, for the same visit (``CARRIES_STAFF_MESSAGE``),
    carries the message staff wrote in them. ``record_change`` writes a change's email with
    it; so does a change that is no change of status (a video visit's link). None when the
    patient left no address or is not to be written to. A move's previous time is the one the
    patient was last told (``emails.previous_time_told``); a move of one whose confirmation is
    still waiting is told as that confirmation, at the time it has now
    (``emails.confirmation_untold``). Flushes; the caller commits."""
    if ics is not None:
        # The calendar email the withdrawal below replaces, read (and locked) before it, for
        # a move and for what a move's email says it was.
        waiting = (
            emails.waiting_calendar_email(consultation)
            if email_kind == "rescheduled"
            or previous_starts_at is not None
            or previous_mode is not None
            else None
        )
        if email_kind == "rescheduled" and emails.confirmation_untold(consultation, waiting):
            # Moved before the confirmation went: withdrawn below, it never reaches the
            # patient, who was told neither that the appointment is confirmed nor its time
            # or way of taking place. "Your appointment has changed", with a "previous" time
            # and way they never heard of, would puzzle them (and the email of a move after
            # this one would take that time as told): they are sent the confirmation, as
            # the appointment now is.
            email_kind, previous_starts_at, previous_mode = "confirmed", None, None
        if previous_starts_at is not None:
            previous_starts_at = emails.previous_time_told(
                consultation, waiting, previous_starts_at
            )
        if previous_mode is not None:
            previous_mode = emails.previous_mode_told(waiting, previous_mode)
        carried = withdraw_calendar_emails(consultation.id, reason=withdrawals.REPLACED)
        if email_kind in CARRIES_STAFF_MESSAGE:
            message = "\n\n".join([*carried, *([message] if message else [])]) or None
    return emails.patient_update(
        consultation,
        email_kind,
        message,
        ics,
        ics_method,
        previous_starts_at=previous_starts_at,
        previous_mode=previous_mode,
    )
