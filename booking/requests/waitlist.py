"""The waitlist: patients who want an earlier time are offered freed slots, the most urgent
first, a few at a time.

When an appointment is cancelled or moved, the caller passes the time it gave up to
``offer_freed_slot`` inside the same transaction: it records a ``SlotOffer`` and emails its
first wave: at most ``WAITLIST_WAVE_SIZE`` of the waitlisted patients of that appointment type
whose own time is later, emergency and urgent requests first (``priority``), then those who
have waited longest on the list. Each one emailed is recorded (``SlotOfferRecipient``): only
they may take the offer, so a forwarded link takes nothing. If nobody has taken it
``WAITLIST_WAVE_MINUTES`` later, the worker emails the next wave of those not emailed yet
(``offer_next_waves``), while the time is still free and the offer open for at least
``MIN_OFFER_WINDOW``, but not in ``WAITLIST_QUIET_HOURS`` (21:00-08:00 clinic time): a time
freed in the evening goes to its first wave at once, and down the list only from the morning,
so the most urgent patients are not outrun by later waves while they sleep. The worker claims
each wave with one conditional UPDATE, so two workers never send the same one. Accepting
claims the offer with one conditional UPDATE (only one patient can win it, and only while the
offer is younger than ``OFFER_LIFETIME``) and moves the winner's appointment through the
availability engine and the database's no-double-booking guarantee; everyone else emailed is
told the time is gone.
"""

from __future__ import annotations

import logging
import secrets
from datetime import datetime, time, timedelta

from flask import Flask, current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import Select, or_, select, update
from sqlalchemy.orm import joinedload

from booking.audit.services import record
from booking.extensions import db
from booking.notifications.models import OutboxEmail
from booking.notifications.services import enqueue_delivery, queue_each, withdraw_pending
from booking.openinghours import HOURS_RE
from booking.requests import emails, withdrawals
from booking.requests.lifecycle import (
    OFFER_TEMPLATES,
    PATIENT,
    can_change,
    record_change,
    snapshot,
)
from booking.requests.models import OPEN_STATUSES, ConsultationRequest, may_be_contacted
from booking.requests.queries import lock_request
from booking.scheduling.availability import booking_limits, clinic_settings
from booking.scheduling.ical import appointment_ics
from booking.scheduling.models import (
    Appointment,
    SlotOffer,
    SlotOfferRecipient,
    WaitlistEntry,
)
from booking.scheduling.services import (
    FreedTime,
    SlotChoice,
    SlotTaken,
    SlotUnavailable,
    place_appointment,
    resolve_choice,
)
from booking.timeutil import END_OF_DAY, now_utc, read_clock, to_clinic_tz

log = logging.getLogger(__name__)

# How long an offer can be accepted: after that the time may have been given to someone who
# called the clinic, and an old email should not move an appointment.
OFFER_LIFETIME = timedelta(days=2)
# The least time an offer is sent with: a freed time that would close sooner (it comes within
# the minimum notice in a few minutes) is not offered. An email read an hour later, or sent
# at 05:14 to close at 06:00, would only tell the patients about a time they could not take.
MIN_OFFER_WINDOW = timedelta(hours=2)


QUIET_HOURS_EXTENSION = "booking.waitlist_quiet_hours"


def read_quiet_hours(text: str | None) -> tuple[time, time] | None:
    """``WAITLIST_QUIET_HOURS``, "21:00-08:00" (clinic time; may cross midnight), as (from,
    to); None when empty. They may end at 24:00 ("21:00-24:00", ``END_OF_DAY``), not start
    there. Raises ValueError saying what is wrong."""
    text = (text or "").strip()
    if not text:
        return None
    match = HOURS_RE.fullmatch(text)
    parts = match.groups() if match else ("", "", "", "")
    first, last = ":".join(parts[:2]), ":".join(parts[2:])
    if first == "24:00":
        raise ValueError(
            f"WAITLIST_QUIET_HOURS may end at 24:00 but not start there (write 00:00), "
            f"not {text!r}."
        )
    try:
        start, end = read_clock(first), read_clock(last, end=True)
    except ValueError:
        raise ValueError(
            f"WAITLIST_QUIET_HOURS must be two 24-hour times such as 21:00-08:00 (the end may "
            f"be 24:00), or empty for none, not {text!r}."
        ) from None
    if start == end:
        raise ValueError("WAITLIST_QUIET_HOURS must start and end at different times.")
    return start, end


def init_app(app: Flask) -> None:
    """Read ``WAITLIST_QUIET_HOURS`` once; a setting that cannot be read stops the start."""
    try:
        app.extensions[QUIET_HOURS_EXTENSION] = read_quiet_hours(
            app.config.get("WAITLIST_QUIET_HOURS")
        )
    except ValueError as exc:
        raise RuntimeError(str(exc)) from None


def in_quiet_hours(now: datetime) -> bool:
    """Whether ``now`` falls in the clinic's ``WAITLIST_QUIET_HOURS``."""
    quiet = current_app.extensions.get(QUIET_HOURS_EXTENSION)
    if quiet is None:
        return False
    start, end = quiet
    local = to_clinic_tz(now).time()
    if end == END_OF_DAY:
        return local >= start  # to midnight, the day's last instant included
    if start < end:
        return start <= local < end
    return local >= start or local < end  # across midnight


class OfferGone(Exception):  # noqa: N818 - the event the patient is told about
    """Someone else accepted the offer first, or the time is no longer open."""


class OfferExpired(OfferGone):
    """The offer has closed (``offer_open_until``)."""


class OfferUnavailable(OfferGone):
    """The offered time is no longer offered for booking (hours or limits changed)."""


class OfferAlreadyYours(OfferGone):
    """This patient took the offer a moment ago (a double click, a second tab): it is theirs,
    whatever this second attempt read before the first one was stored."""


class OfferLocked(OfferGone):
    """The patient's own appointment is within the change and cancel notice
    (``lifecycle.can_change``): taking the offer would move it, so they call the clinic."""


class NoContactConsent(ValueError):  # noqa: N818 - what the patient is told
    """The patient withdrew their consent to be contacted: no offer would reach them."""


class WaitlistLocked(ValueError):  # noqa: N818 - what the patient is told
    """The appointment is within the change and cancel notice: no offer could be taken
    (``offer_freed_slot`` skips it), so waiting for one would only mislead."""


def join_waitlist(consultation: ConsultationRequest) -> WaitlistEntry:
    appointment = consultation.appointment
    if consultation.status not in OPEN_STATUSES or appointment is None or not appointment.active:
        raise ValueError("only an open request with a time can wait for an earlier one")
    if not consultation.contact_consent:  # offer_freed_slot skips them (may_be_contacted)
        raise NoContactConsent("offers go only to patients who may be contacted")
    if not can_change(consultation):
        raise WaitlistLocked("within the change notice: offers could not be taken")
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
        actor_email=PATIENT,
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


def stop_waiting(
    consultation: ConsultationRequest, *, reason: str = withdrawals.OFFERS_ENDED
) -> int:
    """No more offers for this request, nor the offers' emails not sent yet (adds to the
    caller's transaction; ``reason``: why, for their trace on the timeline); returns how
    many emails were withdrawn."""
    db.session.execute(
        update(WaitlistEntry)
        .where(WaitlistEntry.request_id == consultation.id)
        .values(active=False)
    )
    return withdraw_pending(consultation.id, OFFER_TEMPLATES, reason=reason)


def leave_waitlist(consultation: ConsultationRequest) -> None:
    stop_waiting(consultation)
    record(
        "waitlist_left",
        target_type="request",
        target_id=consultation.reference,
        actor_email=PATIENT,
    )
    db.session.commit()


def _waiting_for(
    appointment_type_id: int, starts_at: datetime, *, or_joined: bool = False
) -> Select:
    """The requests on the waiting list for an earlier time of this type than they hold: the
    ones an offer of ``starts_at`` is for (``_next_in_line`` and ``offered_to``). The type
    is the one their appointment has now (staff may have changed it since they joined), or,
    with ``or_joined``, the one it had when they joined (an offer sent before the change is
    still theirs to look at: ``accept_offer`` refuses to take it)."""
    same_type = Appointment.appointment_type_id == appointment_type_id
    if or_joined:
        same_type = or_(same_type, WaitlistEntry.appointment_type_id == appointment_type_id)
    return (
        select(ConsultationRequest)
        .join(WaitlistEntry, WaitlistEntry.request_id == ConsultationRequest.id)
        .join(ConsultationRequest.appointment)
        .where(
            WaitlistEntry.active.is_(True),
            same_type,
            Appointment.active.is_(True),
            Appointment.starts_at > starts_at,
        )
    )


def offer_freed_slot(appointment: FreedTime) -> list[OutboxEmail]:
    """Offer a just-freed time to the waitlist: its first wave (``_next_in_line``). Adds to
    the caller's transaction; the caller enqueues the returned emails after its commit.
    Nothing is offered (no offer, no email) when the offer would be open less than
    ``MIN_OFFER_WINDOW``, or nobody is waiting for it."""
    if appointment.appointment_type_id is None:
        return []
    now = now_utc()
    earliest, latest = booking_limits(clinic_settings())
    if not earliest <= appointment.starts_at < latest:
        return []
    if _closes_at(now, appointment.starts_at) - now < MIN_OFFER_WINDOW:
        return []
    offer = SlotOffer(
        token=secrets.token_urlsafe(24),
        appointment_type_id=appointment.appointment_type_id,
        specialist_id=appointment.specialist_id,
        location_id=appointment.location_id,
        starts_at=appointment.starts_at,
        created_at=now,
        wave=1,
        wave_sent_at=now,
        freed_by_request_id=appointment.request_id,
    )
    # Only a time a patient could take now: an appointment moved by less than its length (or
    # given another length at the same start) still holds it, and a time off or a change of
    # hours may have closed it. Accepting checks the same (``accept_offer``).
    if not _free(offer):
        return []
    waiting = _next_in_line(offer, now)
    if not waiting:
        return []
    db.session.add(offer)
    db.session.flush()
    return _send_wave(offer, waiting, now)


def _free(offer: SlotOffer) -> bool:
    try:
        resolve_choice(offered_choice(offer))
    except (SlotTaken, SlotUnavailable):
        return False
    return True


def _wave_size() -> int:
    return max(1, current_app.config["WAITLIST_WAVE_SIZE"])


def _next_in_line(offer: SlotOffer, now: datetime) -> list[ConsultationRequest]:
    """The next wave: at most ``WAITLIST_WAVE_SIZE`` requests waiting for an earlier time of
    the offer's type, not emailed it yet, emergency and urgent ones first, then by how long
    they have waited on the list. Only patients who may still move their appointment online
    (the change and cancel notice): the offer page would refuse the others."""
    changeable_from = now + timedelta(hours=clinic_settings().cancel_notice_hours)
    waiting = _waiting_for(offer.appointment_type_id, offer.starts_at).where(
        ConsultationRequest.status.in_(OPEN_STATUSES),
        may_be_contacted(),
        Appointment.starts_at > changeable_from,
    )
    if offer.freed_by_request_id is not None:
        waiting = waiting.where(ConsultationRequest.id != offer.freed_by_request_id)
    if offer.id is not None:
        emailed = select(SlotOfferRecipient.request_id).where(
            SlotOfferRecipient.offer_id == offer.id
        )
        waiting = waiting.where(ConsultationRequest.id.not_in(emailed))
    return list(
        db.session.scalars(
            waiting.options(joinedload(ConsultationRequest.patient))
            .order_by(
                ConsultationRequest.priority.desc(),
                WaitlistEntry.created_at,
                ConsultationRequest.id,
            )
            .limit(_wave_size())
        )
    )


def _send_wave(
    offer: SlotOffer, waiting: list[ConsultationRequest], now: datetime
) -> list[OutboxEmail]:
    """Email the offer's current wave to ``waiting`` and record them as its recipients."""
    db.session.add_all(
        SlotOfferRecipient(offer_id=offer.id, request_id=consultation.id, offered_at=now)
        for consultation in waiting
    )
    open_until = offer_open_until(offer)
    offers = [
        email
        for consultation in waiting
        if (email := emails.waitlist_offer(consultation, offer, open_until)) is not None
    ]
    record(
        "slot_offered",
        target_type="offer",
        target_id=offer.id,
        details={
            "starts_at": offer.starts_at.isoformat(),
            "wave": offer.wave,
            "patients": len(waiting),
        },
    )
    return offers


def offer_next_waves(now: datetime | None = None) -> list[int]:
    """Email the next wave of every offer nobody has taken ``WAITLIST_WAVE_MINUTES`` after its
    last wave, each offer in its own transaction; returns the outbox ids queued. A wave goes
    out only while the offered time is still free and the offer stays open at least
    ``MIN_OFFER_WINDOW`` more, and only to patients not emailed it yet; none in
    ``WAITLIST_QUIET_HOURS`` (the waves then due go out when they end). Safe to run in
    several workers at once: each wave is claimed first (``_claim_wave``)."""
    now = now or now_utc()
    if in_quiet_hours(now):
        return []
    since = now - timedelta(minutes=current_app.config["WAITLIST_WAVE_MINUTES"])
    due = list(
        db.session.scalars(
            select(SlotOffer.id)
            .where(
                SlotOffer.claimed_by_request_id.is_(None),
                SlotOffer.wave_sent_at <= since,
                SlotOffer.created_at > now - OFFER_LIFETIME,
            )
            .order_by(SlotOffer.starts_at)
        )
    )
    db.session.commit()  # end the read; each wave is its own transaction
    # One offer's failure holds back no other offer's wave, and undoes its own claim: the
    # next run tries that offer again.
    return queue_each(
        due, lambda offer_id: _next_wave(offer_id, since, now), "next wave of offer %s", log
    )


def _next_wave(offer_id: int, since: datetime, now: datetime) -> list[int]:
    offer = db.session.get(SlotOffer, offer_id)
    if offer is None:
        return []
    wave, lifetime_end = offer.wave, offer.created_at + OFFER_LIFETIME
    if not _claim_wave(offer, since, now):
        db.session.rollback()
        return []
    if offer_open_until(offer) - now < MIN_OFFER_WINDOW or not _free(offer):
        # Taken (the clinic booked it), closed, or closing too soon: for good. Looked at no
        # more (not again every minute for the rest of its two days).
        db.session.rollback()
        _look_again_at(offer_id, wave, lifetime_end)
        return []
    waiting = _next_in_line(offer, now)
    if not waiting:
        # Nobody new: a patient who joins the list later may be, at the next interval.
        db.session.rollback()
        _look_again_at(offer_id, wave, now)
        return []
    offers = _send_wave(offer, waiting, now)
    # The rows get their ids when they are written: read before that, the last email's was
    # None, and it waited for the sweep of lost tasks while the others of its wave went out.
    db.session.flush()
    sent = [email.id for email in offers]
    db.session.commit()
    return sent


def _look_again_at(offer_id: int, wave: int, at: datetime) -> None:
    """No wave now: the offer is due again ``WAITLIST_WAVE_MINUTES`` after ``at`` (its
    ``wave_sent_at``, which the job reads as "last looked at"); at its lifetime's end, never.
    Only while it is still this wave, untaken (another worker may have moved it on)."""
    db.session.execute(
        update(SlotOffer)
        .where(
            SlotOffer.id == offer_id,
            SlotOffer.wave == wave,
            SlotOffer.claimed_by_request_id.is_(None),
        )
        .values(wave_sent_at=at)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()


def _claim_wave(offer: SlotOffer, since: datetime, now: datetime) -> bool:
    """Move the offer on to its next wave, if it is still the one this worker read, nobody has
    taken the offer, and the last wave is old enough: one conditional UPDATE, so of two
    workers (or runs) one sends the wave and the other, waiting on the row, finds it moved on."""
    claimed = db.session.execute(
        update(SlotOffer)
        .where(
            SlotOffer.id == offer.id,
            SlotOffer.wave == offer.wave,
            SlotOffer.claimed_by_request_id.is_(None),
            SlotOffer.wave_sent_at <= since,
        )
        .values(wave=SlotOffer.wave + 1, wave_sent_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    if not claimed:
        return False
    db.session.refresh(offer)
    return True


def find_offer(token: str) -> SlotOffer | None:
    return db.session.scalar(select(SlotOffer).where(SlotOffer.token == token))


def offer_open_until(offer: SlotOffer) -> datetime:
    """When an offer closes: at the end of its lifetime, or when the time comes within the
    clinic's minimum notice (no patient may book it after that), whichever is first. The
    email gives this time; the offer page and accepting keep to it. An offer that would be
    open less than ``MIN_OFFER_WINDOW`` is never made (``offer_freed_slot``)."""
    return _closes_at(offer.created_at, offer.starts_at)


def _closes_at(created_at: datetime, starts_at: datetime) -> datetime:
    notice = timedelta(hours=clinic_settings().min_notice_hours)
    return min(created_at + OFFER_LIFETIME, starts_at - notice)


def offer_expired(offer: SlotOffer, now: datetime | None = None) -> bool:
    return offer_open_until(offer) <= (now or now_utc())


def offered_to(offer: SlotOffer, consultation: ConsultationRequest) -> bool:
    """Whether ``consultation`` is one the offer was for: emailed it (a recipient of one of
    its waves) and still on the waiting list for the offer's appointment type, with a later
    time. The token alone, forwarded to or read by someone else, even another patient on the
    list, takes nothing."""
    emailed = select(SlotOfferRecipient.request_id).where(
        SlotOfferRecipient.offer_id == offer.id,
        SlotOfferRecipient.request_id == consultation.id,
    )
    waiting = _waiting_for(offer.appointment_type_id, offer.starts_at, or_joined=True).where(
        ConsultationRequest.id == consultation.id, emailed.exists()
    )
    return db.session.scalar(select(waiting.exists())) is True


# What ``last_error`` says of an offer's email not sent because the offer could no longer be
# taken by the time it could go.
OFFER_CLOSED = "OfferClosed"


def closed_at_delivery(email: OutboxEmail) -> str | None:
    """An earlier-time offer whose offer can no longer be taken by the time its email could
    go (the mail server away for hours, the queue down): taken by another patient, closed
    (``offer_open_until``), its time booked or closed by the clinic, or no longer for this
    request (``offered_to``). Sent then, it would send the patient to an offer that is gone.
    Not sent, and failed (``OFFER_CLOSED``): the record shows staff the patient was never
    told of it, as past, nothing to send again (``notifications.services.
    register_expiry_check``). Leaving the list or a cancellation has withdrawn it already
    (``withdraw_pending``); this is the offer ending while the email waited."""
    if email.request_id is None or email.template not in OFFER_TEMPLATES:
        return None
    token = emails.offer_token_in(email)
    if token is None:  # its link is no longer whole: nothing here to judge it by
        return None
    offer = find_offer(token)
    consultation = db.session.get(ConsultationRequest, email.request_id)
    if offer is None or consultation is None or not offer_open_to(offer, consultation):
        return OFFER_CLOSED
    return None


def offer_open_to(
    offer: SlotOffer, consultation: ConsultationRequest, now: datetime | None = None
) -> bool:
    """Whether ``consultation`` could still take the offer, as an email about it would tell
    the patient: not taken, not closed (``offer_open_until``), still for this request
    (``offered_to``) and its time still free (not booked or closed by the clinic since).
    Accepting asks the same again under the request's lock (``accept_offer``)."""
    return (
        offer.claimed_by_request_id is None
        and not offer_expired(offer, now)
        and offered_to(offer, consultation)
        and _free(offer)
    )


def offered_choice(offer: SlotOffer) -> SlotChoice:
    """The time an offer is for, as a booking would choose it."""
    return SlotChoice(
        offer.appointment_type_id, offer.specialist_id, offer.location_id, offer.starts_at
    )


def still_bookable(offer: SlotOffer, consultation: ConsultationRequest) -> str | None:
    """Why the offered time can no longer be taken, read before showing its button: "taken"
    (another appointment holds it now: a patient who called the clinic, a colleague's
    booking), "unavailable" (time off, changed hours), or None when it can. Accepting checks
    the same under the request's lock (``accept_offer``)."""
    appointment = consultation.appointment
    try:
        resolve_choice(
            offered_choice(offer), ignore_appointment_id=appointment.id if appointment else None
        )
    except SlotTaken:
        return "taken"
    except SlotUnavailable:
        return "unavailable"
    return None


def taken_by(offer: SlotOffer, consultation: ConsultationRequest) -> bool:
    """Whether this request took the offer, read afresh: a page that read it before this
    patient's other click or tab took it would say it is gone."""
    db.session.refresh(offer)
    return offer.claimed_by_request_id == consultation.id


def _gone(offer: SlotOffer, consultation: ConsultationRequest) -> OfferGone:
    """Why the offer cannot be taken, read afresh (the transaction rolled back): this same
    patient may have taken it a moment ago, from another click or tab."""
    db.session.rollback()
    db.session.refresh(offer)
    if offer.claimed_by_request_id == consultation.id:
        return OfferAlreadyYours()
    return OfferGone()


def accept_offer(offer: SlotOffer, consultation: ConsultationRequest) -> None:
    """Give the offered time to this patient, if the offer was for them (``offered_to``),
    nobody was faster, the offer has not expired and their own appointment may still be
    changed online. Raises OfferGone (or one of its kinds)."""
    if not offered_to(offer, consultation):
        raise _gone(offer, consultation)
    now = now_utc()
    if offer.claimed_by_request_id is None and offer_expired(offer, now):
        db.session.rollback()
        raise OfferExpired
    claimed = db.session.execute(
        update(SlotOffer)
        .where(
            SlotOffer.id == offer.id,
            SlotOffer.claimed_by_request_id.is_(None),
            SlotOffer.created_at > now - OFFER_LIFETIME,
        )
        .values(claimed_by_request_id=consultation.id, claimed_at=now)
    ).rowcount
    if not claimed:
        gone = _gone(offer, consultation)
        expired = offer.claimed_by_request_id is None and offer_expired(offer, now)
        raise OfferExpired if type(gone) is OfferGone and expired else gone
    consultation = lock_request(consultation)
    appointment = consultation.appointment
    # Asked again under the lock: staff may have given an earlier time (or the patient left
    # the list in another tab) since the first ask, and the offer would undo it.
    if (
        consultation.status not in OPEN_STATUSES
        or appointment is None
        or not offered_to(offer, consultation)
    ):
        db.session.rollback()
        raise OfferGone
    if not can_change(consultation, now):
        db.session.rollback()
        raise OfferLocked
    if appointment.appointment_type_id != offer.appointment_type_id:
        # Staff changed the kind of appointment since the offer was made: taking it would
        # quietly turn it back.
        db.session.rollback()
        raise OfferUnavailable
    before = snapshot(consultation)
    freed = FreedTime.of(appointment)  # the later time given up: offered on, as any move does
    had_join_link = appointment.join_link is not None
    try:
        appointment_type, slot = resolve_choice(
            offered_choice(offer),
            ignore_appointment_id=appointment.id,
        )
        # A new sequence updates the invitation the patient's calendar holds.
        place_appointment(appointment, appointment_type, slot, new_sequence=True)
    except SlotTaken:
        db.session.rollback()
        raise OfferGone from None
    except SlotUnavailable:
        db.session.rollback()
        raise OfferUnavailable from None
    consultation.assigned_specialist_id = slot.specialist_id
    stop_waiting(consultation)
    email = record_change(
        consultation,
        action="waitlist_offer_accepted",
        actor=None,
        before=before,
        note="Took an earlier time offered from the waitlist.",
        email_kind="rescheduled",
        ics=appointment_ics(appointment),
    )
    notice = emails.clinic_notice(
        consultation,
        _l("rescheduled"),
        _l(
            "The patient took an earlier time from the waitlist. It is a video visit: its link "
            "was for the old time, so please send one for the new time from the request."
        )
        if had_join_link and appointment.join_link is None
        else _l("The patient took an earlier time from the waitlist."),
    )
    offers = offer_freed_slot(freed)
    db.session.commit()
    enqueue_delivery([e.id for e in (email, notice, *offers) if e is not None])
