"""The patients told when the place of their appointment changes: an admin corrected a
location's address (``scheduling.edit_location``, which announces it by ``location_moved``).
Every change the patient should know of emails them; a patient going to the old address is
a real harm."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select

from booking.extensions import db
from booking.notifications.models import OutboxEmail, OutboxStatus
from booking.notifications.services import withdraw_emails, withdraw_pending
from booking.requests import emails, reminders, withdrawals
from booking.requests.lifecycle import can_change
from booking.requests.models import OPEN_STATUSES, ConsultationRequest
from booking.requests.queries import lock_request
from booking.requests.waitlist import OFFER_LIFETIME, find_offer, offer_expired, offer_open_until
from booking.scheduling.ical import appointment_ics
from booking.scheduling.models import (
    Appointment,
    Location,
    SlotOffer,
    SlotOfferRecipient,
    VisitMode,
)
from booking.scheduling.services import AddressNotices
from booking.scheduling.visits import mode_of
from booking.timeutil import now_utc


def _going_there(appointment: Appointment | None, location: Location) -> bool:
    """An appointment the patient comes to ``location`` for, still to come: held or
    confirmed (active, its request open: requested, awaiting the patient or confirmed), in
    person (a video or phone visit's patient is not sent there)."""
    return (
        appointment is not None
        and appointment.location_id == location.id
        and appointment.active
        and appointment.starts_at > now_utc()
        and appointment.request.status in OPEN_STATUSES
        and mode_of(appointment.appointment_type) is VisitMode.IN_PERSON
    )


# The emails that give the patient their appointment's time and place with its calendar file:
# the receipt of the request (the time they hold) and the status emails of a time confirmed
# or moved (``lifecycle.change_email``).
TIME_TEMPLATES = ("request_received", "request_update")
REWRITTEN_KINDS = frozenset({"confirmed", "rescheduled"})  # in person: no join link
REMINDER_TEMPLATE = "appointment_reminder"
# An earlier-time offer (``waitlist``): a time at a place, which the patient who takes it goes
# to; written again with the offer's place as it now is.
OFFER_TEMPLATE = "waitlist_offer"


def gives_the_place(email: OutboxEmail) -> bool:
    """Whether ``email`` gives the place of the patient's appointment: a receipt or status
    email with its calendar file (``TIME_TEMPLATES``), or a reminder."""
    return email.template == REMINDER_TEMPLATE or (
        email.template in TIME_TEMPLATES
        and (email.attachment_type or "").startswith("text/calendar")
    )


def _offer_of(email: OutboxEmail) -> SlotOffer | None:
    """The offer an earlier-time offer's email is for, read from its link."""
    token = emails.offer_token_in(email)
    return find_offer(token) if token else None


def rewritable(consultation: ConsultationRequest, email: OutboxEmail) -> bool:
    """Whether ``write_again`` can write ``email`` again as things now are: one that gives
    the appointment's place (``gives_the_place``) while the request has one, a status email
    only of a time confirmed or moved whose kind its subject tells (``emails.update_kind``);
    or an earlier-time offer whose link names an offer."""
    if email.template == OFFER_TEMPLATE:
        return _offer_of(email) is not None
    if consultation.appointment is None or not gives_the_place(email):
        return False
    if email.template == "request_update":
        return emails.update_kind(consultation, email) in REWRITTEN_KINDS
    return True


def write_again(consultation: ConsultationRequest, email: OutboxEmail) -> OutboxEmail | None:
    """``email`` (``rewritable``) written anew as things now are: the appointment's place,
    and a calendar file with its SEQUENCE now; a status email keeps its kind and the message
    staff wrote in it; a new private link; an offer's email the same offer (its link, the
    time it closes) at its place as it now is. Leaves ``email`` as it is. None when nothing
    may go to the patient (``emails._to_patient``); ValueError for one not ``rewritable``."""
    offer = _offer_of(email) if email.template == OFFER_TEMPLATE else None
    if offer is not None:
        return emails.waitlist_offer(consultation, offer, offer_open_until(offer))
    appointment = consultation.appointment
    if appointment is None or not rewritable(consultation, email):
        raise ValueError(f"outbox email {email.id} is not one written again as things now are")
    if email.template == REMINDER_TEMPLATE:
        return emails.reminder(
            consultation, appointment, changeable=can_change(consultation, now_utc())
        )
    if email.template == "request_received":
        return emails.patient_receipt(consultation)
    return emails.patient_update(
        consultation,
        str(emails.update_kind(consultation, email)),  # rewritable: one of REWRITTEN_KINDS
        email.staff_message,
        appointment_ics(appointment),
        # A move's email still gives the time it moved from (None for any other kind).
        previous_starts_at=email.previous_starts_at,
        # And how the visit took place before a move that changed it.
        previous_mode=VisitMode(email.previous_mode) if email.previous_mode else None,
    )


def told_new_address_since(consultation: ConsultationRequest, email: OutboxEmail) -> bool:
    """Whether the patient was written the new address of their appointment's place after
    ``email`` (``emails.APPOINTMENT_ADDRESS``, by the order the rows were written, never by
    their clocks): ``email`` may give the old one. Read from ``consultation.emails``."""
    return any(
        later.template == emails.APPOINTMENT_ADDRESS and later.id > email.id
        for later in consultation.emails
    )


def _rewrite_waiting_times(consultation: ConsultationRequest) -> list[OutboxEmail]:
    """The patient's emails giving the appointment's place (``TIME_TEMPLATES``) not taken by
    a worker yet, written before the correction (a booking or confirmation committed while
    the admin saved: it read the old address): withdrawn and written again as the appointment
    now is (``write_again``). Written again rather than withdrawn: the address email says
    only when and where, and the patient would lose that the time is confirmed or held, with
    whom, the staff's message, what to bring and their private link. One a worker is sending
    already goes as it is (the address email follows it), as does a status email whose kind
    its subject does not tell. Oldest first. Flushes; the caller commits and enqueues the
    emails."""
    waiting = db.session.scalars(
        select(OutboxEmail)
        .where(
            OutboxEmail.request_id == consultation.id,
            OutboxEmail.template.in_(TIME_TEMPLATES),
            OutboxEmail.attachment_type.startswith("text/calendar"),
            OutboxEmail.status == OutboxStatus.PENDING,
            OutboxEmail.withdrawn_at.is_(None),
        )
        .order_by(OutboxEmail.id)
    ).all()
    return _write_each_again(waiting)


def _write_each_again(waiting: Sequence[OutboxEmail]) -> list[OutboxEmail]:
    """Each of ``waiting`` (not sent yet) that ``write_again`` can write as things now are:
    withdrawn and written again; one a worker has taken meanwhile goes as it is. Flushes."""
    written: list[OutboxEmail] = []
    for email in waiting:
        consultation = db.session.get_one(ConsultationRequest, email.request_id)
        if not rewritable(consultation, email):
            continue
        if not withdraw_emails([email.id], reason=withdrawals.REWRITTEN):
            continue  # taken by a worker meanwhile
        if (again := write_again(consultation, email)) is not None:
            written.append(again)
    return written


def _rewrite_waiting_offers(location: Location) -> list[OutboxEmail]:
    """The emails not sent yet of the earlier-time offers of an in-person time at
    ``location`` still open (not taken, not closed): written again with its new address
    (``write_again``: the same offer and link). The patient who takes it goes there, and
    is not among those told the new address (their own time is elsewhere, or later).

    Each request is locked first, unless another transaction holds it: then its email goes
    as it is. Never waited for: a patient taking this offer at this moment holds their
    request and waits for this location (``place_appointment`` reads it FOR SHARE), which
    the correction holds; waiting for them (or writing their email, whose foreign key waits
    for the request too) would deadlock. Taking it, they get the new address in their
    confirmation, written after the correction commits, and their offer email is withdrawn.
    One written again for an offer taken or closed since is not sent
    (``waitlist.closed_at_delivery``). Flushes."""
    now = now_utc()
    offers = [
        offer
        for offer in db.session.scalars(
            select(SlotOffer).where(
                SlotOffer.location_id == location.id,
                SlotOffer.claimed_by_request_id.is_(None),
                SlotOffer.created_at > now - OFFER_LIFETIME,
            )
        )
        if not offer_expired(offer, now) and mode_of(offer.appointment_type) is VisitMode.IN_PERSON
    ]
    if not offers:
        return []
    tokens = {offer.token for offer in offers}
    waiting = db.session.scalars(
        select(OutboxEmail)
        .where(
            OutboxEmail.template == OFFER_TEMPLATE,
            OutboxEmail.request_id.in_(
                select(SlotOfferRecipient.request_id).where(
                    SlotOfferRecipient.offer_id.in_([offer.id for offer in offers])
                )
            ),
            OutboxEmail.status == OutboxStatus.PENDING,
            OutboxEmail.withdrawn_at.is_(None),
        )
        .order_by(OutboxEmail.id)
    ).all()
    return _write_each_again(
        [
            email
            for email in waiting
            if emails.offer_token_in(email) in tokens and _lock_if_free(email.request_id)
        ]
    )


def _lock_if_free(request_id: int | None) -> bool:
    """Lock the request (PostgreSQL FOR UPDATE, as ``lock_request``) unless another
    transaction holds it: then False at once, never waiting (``_rewrite_waiting_offers``)."""
    return (
        db.session.scalars(
            select(ConsultationRequest.id)
            .where(ConsultationRequest.id == request_id)
            .with_for_update(skip_locked=True)
        ).one_or_none()
        is not None
    )


def _going_there_ids(location: Location) -> list[int]:
    """The requests with an appointment still to come at ``location`` (held or confirmed),
    by id: those ``tell_new_address`` looks at, locked in one order (no deadlock between
    two corrections)."""
    # The appointments locked by their request (``lock_going_there``, ``tell_new_address``)
    # are those a booking does not lock the location for (``scheduling.services.
    # place_appointment``): held or confirmed, to come. Keep the two in step: a booking of
    # one not found here would not be waited for.
    return list(
        db.session.scalars(
            select(Appointment.request_id)
            .join(ConsultationRequest, Appointment.request_id == ConsultationRequest.id)
            .where(
                Appointment.location_id == location.id,
                Appointment.active.is_(True),
                Appointment.starts_at > now_utc(),
                ConsultationRequest.status.in_(sorted(OPEN_STATUSES)),
            )
            .order_by(Appointment.request_id)
        )
    )


def lock_going_there(location: Location, **_details: object) -> None:
    """A ``location_moving`` listener: lock the requests ``tell_new_address`` will change,
    before the location's row is written (``scheduling.services.location_moving``). A
    change to one of their appointments under way is waited for here, while only the
    location's FOR NO KEY UPDATE lock is held, which its foreign-key check does not wait
    for."""
    for request_id in _going_there_ids(location):
        lock_request(db.session.get_one(ConsultationRequest, request_id))


def tell_new_address(location: Location, **_details: object) -> AddressNotices:
    """A ``location_moved`` listener: every patient with an in-person appointment still to
    come at the location (``_going_there``) is emailed its new address
    (``emails.appointment_address``), their calendar event updated: the same UID with a
    raised SEQUENCE, as a reschedule's. An earlier such email not sent yet (the admin's
    previous save) is withdrawn: the new one says all it said. A reminder waiting in the
    outbox is written again with the new address (``reminders.rewrite_waiting``), and so are
    a receipt or a confirmation (or move) waiting (``_rewrite_waiting_times``), and an
    earlier-time offer of a time there waiting, whoever it goes to
    (``_rewrite_waiting_offers``). Each request is locked first (``lock_going_there`` has
    locked them before the location's row was written) and looked at again (a patient may
    be moving their time at this moment). A patient marked deceased is not written to; one
    who left no email address is counted (``untold``) for staff to phone. A patient's
    emails are written in the order they are to read them (the caller enqueues them by id):
    the receipt or confirmation written again, then the new address, then the reminder.
    Flushes; the caller commits and enqueues."""
    candidates = _going_there_ids(location)
    told: list[OutboxEmail] = []
    rewritten: list[OutboxEmail] = []
    untold = 0
    for request_id in candidates:
        consultation = lock_request(db.session.get_one(ConsultationRequest, request_id))
        appointment = consultation.appointment
        if appointment is None or not _going_there(appointment, location):
            continue
        # The calendar event's place changes: a new sequence updates the event the patient's
        # calendar holds, as a reschedule does.
        appointment.sequence += 1
        db.session.flush()
        rewritten.extend(_rewrite_waiting_times(consultation))
        withdraw_pending(
            consultation.id, frozenset({emails.APPOINTMENT_ADDRESS}), reason=withdrawals.REPLACED
        )
        email = emails.appointment_address(consultation, appointment)
        if email is not None:
            told.append(email)
        elif consultation.patient.deceased_at is None:
            untold += 1  # no email address (an emergency call-back): staff phone them
        if (reminder := reminders.rewrite_waiting(consultation)) is not None:
            rewritten.append(reminder)
    rewritten.extend(_rewrite_waiting_offers(location))
    db.session.flush()
    return AddressNotices(told=told, rewritten=rewritten, untold=untold)
