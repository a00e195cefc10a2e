"""The waitlist: patients who want an earlier time are offered freed slots, first come first
served.

When an appointment is cancelled, ``offer_freed_slot`` (called inside the cancelling
transaction) records a ``SlotOffer`` and emails every waitlisted patient of that appointment
type whose own time is later. Accepting claims the offer with one conditional UPDATE (only
one patient can win it) and moves the winner's appointment through the availability engine
and the database's no-double-booking guarantee; everyone else is told the time is gone.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy import select, update
from sqlalchemy.orm import joinedload

from booking.audit.services import record
from booking.dashboard.ical import appointment_ics
from booking.dashboard.services import compose_patient_update
from booking.extensions import db
from booking.manage.tokens import offer_url
from booking.notifications.models import OutboxEmail
from booking.notifications.services import enqueue_delivery, queue_email
from booking.patients.models import OPEN_STATUSES, ConsultationRequest
from booking.patients.services import lock_request
from booking.scheduling.availability import booking_limits, clinic_settings
from booking.scheduling.models import Appointment, SlotOffer, WaitlistEntry
from booking.scheduling.services import (
    SlotChoice,
    SlotTaken,
    SlotUnavailable,
    place_appointment,
    resolve_choice,
)
from booking.timeutil import now_utc


class OfferGone(Exception):  # noqa: N818 - the event the patient is told about
    """Someone else accepted the offer first, or the time is no longer open."""


class OfferUnavailable(OfferGone):
    """The offered time is no longer offered for booking (hours or limits changed)."""


def join_waitlist(consultation: ConsultationRequest) -> WaitlistEntry:
    appointment = consultation.appointment
    if consultation.status not in OPEN_STATUSES or appointment is None or not appointment.active:
        raise ValueError("only an open request with a time can wait for an earlier one")
    entry = db.session.scalar(
        select(WaitlistEntry).where(WaitlistEntry.request_id == consultation.id)
    )
    if entry is None:
        entry = WaitlistEntry(
            request_id=consultation.id, appointment_type_id=appointment.appointment_type_id
        )
        db.session.add(entry)
    entry.active = True
    record(
        "waitlist_joined",
        target_type="request",
        target_id=consultation.reference,
        actor_email="patient",
    )
    db.session.commit()
    return entry


def is_waiting(consultation: ConsultationRequest) -> bool:
    return (
        db.session.scalar(
            select(WaitlistEntry.id).where(
                WaitlistEntry.request_id == consultation.id, WaitlistEntry.active.is_(True)
            )
        )
        is not None
    )


def leave_waitlist(consultation: ConsultationRequest) -> None:
    db.session.execute(
        update(WaitlistEntry)
        .where(WaitlistEntry.request_id == consultation.id)
        .values(active=False)
    )
    record(
        "waitlist_left",
        target_type="request",
        target_id=consultation.reference,
        actor_email="patient",
    )
    db.session.commit()


@dataclass(frozen=True)
class FreedTime:
    appointment_type_id: int | None
    specialist_id: int
    location_id: int
    starts_at: datetime
    request_id: int

    @classmethod
    def of(cls, appointment: Appointment) -> FreedTime:
        """The time an appointment holds now (take it before moving or cancelling it)."""
        return cls(
            appointment.appointment_type_id,
            appointment.specialist_id,
            appointment.location_id,
            appointment.starts_at,
            appointment.request_id,
        )


def offer_freed_slot(appointment: FreedTime) -> list[OutboxEmail]:
    """Offer a just-freed time to the waitlist. Adds to the caller's transaction; the caller
    enqueues the returned emails after its commit."""
    if appointment.appointment_type_id is None:
        return []
    earliest, latest = booking_limits(clinic_settings())
    if not earliest <= appointment.starts_at < latest:
        return []
    waiting = db.session.scalars(
        select(ConsultationRequest)
        .join(WaitlistEntry, WaitlistEntry.request_id == ConsultationRequest.id)
        .join(ConsultationRequest.appointment)
        .where(
            WaitlistEntry.active.is_(True),
            WaitlistEntry.appointment_type_id == appointment.appointment_type_id,
            ConsultationRequest.status.in_(OPEN_STATUSES),
            ConsultationRequest.id != appointment.request_id,
            Appointment.active.is_(True),
            Appointment.starts_at > appointment.starts_at,
        )
        .options(joinedload(ConsultationRequest.patient))
        .order_by(WaitlistEntry.created_at)
    ).all()
    if not waiting:
        return []
    offer = SlotOffer(
        token=secrets.token_urlsafe(24),
        appointment_type_id=appointment.appointment_type_id,
        specialist_id=appointment.specialist_id,
        location_id=appointment.location_id,
        starts_at=appointment.starts_at,
        created_at=now_utc(),
    )
    db.session.add(offer)
    db.session.flush()
    emails = []
    for consultation in waiting:
        with force_locale(consultation.locale):
            subject = _("An earlier time is free (%(reference)s)", reference=consultation.reference)
        emails.append(
            queue_email(
                template="waitlist_offer",
                recipient=consultation.patient.email,
                subject=subject,
                locale=consultation.locale,
                request_id=consultation.id,
                consultation=consultation,
                patient_name=consultation.patient.full_name,
                offer=offer,
                appointment=appointment,
                accept_url=offer_url(consultation, offer.token),
            )
        )
    record(
        "slot_offered",
        target_type="offer",
        target_id=offer.id,
        details={"starts_at": offer.starts_at.isoformat(), "patients": len(waiting)},
    )
    return emails


def find_offer(token: str) -> SlotOffer | None:
    return db.session.scalar(select(SlotOffer).where(SlotOffer.token == token))


def accept_offer(offer: SlotOffer, consultation: ConsultationRequest) -> None:
    """Give the offered time to this patient, if nobody was faster. Raises OfferGone."""
    claimed = db.session.execute(
        update(SlotOffer)
        .where(SlotOffer.id == offer.id, SlotOffer.claimed_by_request_id.is_(None))
        .values(claimed_by_request_id=consultation.id, claimed_at=now_utc())
    ).rowcount
    if not claimed:
        db.session.rollback()
        raise OfferGone
    consultation = lock_request(consultation)
    appointment = consultation.appointment
    if consultation.status not in OPEN_STATUSES or appointment is None:
        db.session.rollback()
        raise OfferGone
    before = appointment.starts_at
    try:
        appointment_type, slot = resolve_choice(
            SlotChoice(
                offer.appointment_type_id, offer.specialist_id, offer.location_id, offer.starts_at
            ),
            ignore_appointment_id=appointment.id,
        )
        place_appointment(appointment, appointment_type, slot)
    except SlotTaken:
        db.session.rollback()
        raise OfferGone from None
    except SlotUnavailable:
        db.session.rollback()
        raise OfferUnavailable from None
    appointment.sequence += 1  # updates the invitation the patient's calendar holds
    consultation.assigned_specialist_id = slot.specialist_id
    db.session.execute(
        update(WaitlistEntry)
        .where(WaitlistEntry.request_id == consultation.id)
        .values(active=False)
    )
    record(
        "waitlist_offer_accepted",
        target_type="request",
        target_id=consultation.reference,
        actor_email="patient",
        details={
            "starts_at": {"before": before.isoformat(), "after": appointment.starts_at.isoformat()}
        },
    )
    email = compose_patient_update(
        consultation,
        "rescheduled",
        None,
        appointment_ics(appointment),
        "REQUEST",
    )
    db.session.commit()
    enqueue_delivery([email.id])


OFFER_LIFETIME = timedelta(days=2)
