"""Patients, their consultation requests, the structured history that comes with each, and the
private links sent to them (only a hash of each link's token is kept).

The tables kept their names when these models moved here from ``patients`` and ``manage``:
no data migration was needed.
"""

from __future__ import annotations

import enum
import unicodedata
from datetime import date, datetime
from typing import TYPE_CHECKING

from sqlalchemy import (
    JSON,
    CheckConstraint,
    ColumnElement,
    ForeignKey,
    Index,
    SmallInteger,
    String,
    and_,
    event,
    false,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship, validates

from booking.crypto import EncryptedText
from booking.documents.models import kept
from booking.extensions import db, value_enum
from booking.requests import triage
from booking.requests.instruments import PAIN_AREAS, Instrument, PainArea, Score
from booking.timeutil import UTCDateTime, now_utc

if TYPE_CHECKING:
    from booking.documents.models import Document
    from booking.notifications.models import OutboxEmail
    from booking.requests.calls import CallbackAttempt
    from booking.requests.events import RequestEvent
    from booking.scheduling.models import Appointment
    from booking.staff.models import StaffUser


class RequestStatus(enum.StrEnum):
    REQUESTED = "requested"
    # Staff asked the patient for something missing (``booking.requests.asks``); the patient's
    # answer puts the request back to "requested", marked "information received".
    AWAITING_PATIENT = "awaiting_patient"
    CONFIRMED = "confirmed"
    COMPLETED = "completed"
    DECLINED = "declined"
    CANCELLED = "cancelled"
    NO_SHOW = "no_show"


OPEN_STATUSES = frozenset(
    {RequestStatus.REQUESTED, RequestStatus.AWAITING_PATIENT, RequestStatus.CONFIRMED}
)
# Not confirmed yet: a time the patient picked is held (tentatively) until staff confirm it.
UNCONFIRMED_STATUSES = frozenset({RequestStatus.REQUESTED, RequestStatus.AWAITING_PATIENT})


# A request's reference is SC- and 8 of these, as two groups of 4 ("SC-CVAW-Y4X9"). No 0/O,
# 1/I/L, 5/S, 8/B: a reference read out on the phone is not misheard.
REFERENCE_ALPHABET = "234679ACDEFGHJKMNPQRTUVWXYZ"


class TriageLevel(enum.StrEnum):
    """How soon staff must act (``booking.requests.triage`` decides it from the red flags)."""

    EMERGENCY = "emergency"  # the patient was told to seek emergency care; call back at once
    URGENT = "urgent"  # the patient was told to see their doctor today; call back today
    ROUTINE = "routine"


# The queue's order, most pressing first: stored beside the level (``priority``) because the
# levels' names do not sort that way, and the queue reads its pages from an index.
TRIAGE_PRIORITY = {TriageLevel.EMERGENCY: 2, TriageLevel.URGENT: 1, TriageLevel.ROUTINE: 0}
PRESSING_LEVELS = frozenset({TriageLevel.EMERGENCY, TriageLevel.URGENT})


def call_back_level(level: TriageLevel, withdrawn_red_flags: list[str] | None) -> TriageLevel:
    """The level whose call-back target a request of ``level`` is held to
    (``booking.requests.followup``): its own, but an urgent one whose patient changed an
    emergency answer (cauda equina, cord compression) from yes to no before sending is held
    to the emergency's, clock time: they read "go to emergency now" and may have changed it to
    get an appointment instead. For the medical lead to confirm."""
    if (
        level == TriageLevel.URGENT
        and triage.pathway(withdrawn_red_flags or ()) == triage.EMERGENCY
    ):
        return TriageLevel.EMERGENCY
    return level


class Patient(db.Model):
    """The person as they described themselves in one request (requests are not merged
    automatically: an anonymous form must not be able to attach itself to someone's record)."""

    id: Mapped[int] = mapped_column(primary_key=True)
    full_name: Mapped[str] = mapped_column(String(200))
    # The name as staff search it (``folded``: "García Núñez" is found by "garcia nunez"), set
    # with the name; never shown.
    search_name: Mapped[str] = mapped_column(String(200), default="", server_default="")
    # Unknown (None) only for an emergency call-back, where the patient left a name and phone.
    date_of_birth: Mapped[date | None]
    guardian_name: Mapped[str | None] = mapped_column(String(200))
    # The parent's or guardian's name as staff search it (``folded``, as ``search_name``): the
    # one who phones about the request may give theirs. Set with the name; "" without one.
    search_guardian: Mapped[str] = mapped_column(String(200), default="", server_default="")
    email: Mapped[str | None] = mapped_column(String(254), index=True)
    phone: Mapped[str] = mapped_column(String(32))  # E.164
    preferred_contact: Mapped[str] = mapped_column(String(10))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)
    # Staff marked the patient deceased (audited): no follow-up questionnaire is ever sent.
    deceased_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    requests: Mapped[list[ConsultationRequest]] = relationship(back_populates="patient")

    @property
    def writable_address(self) -> str | None:
        """The address emails to the patient go to: None when they left none (an emergency
        call-back: staff phone), or once staff marked them deceased: nothing more goes to the
        address, which the family may read."""
        return self.email if self.deceased_at is None else None

    @validates("full_name")
    def _fold_for_search(self, _key: str, name: str) -> str:
        self.search_name = folded(name)[:200]
        return name

    @validates("guardian_name")
    def _fold_guardian_for_search(self, _key: str, name: str | None) -> str | None:
        self.search_guardian = folded(name or "")[:200]
        return name


def folded(text: str) -> str:
    """``text`` without accents and case, as a search compares it: staff type "Garcia" or
    "MUNOZ" for "García" or "Muñoz" (the letters' accents dropped, then case folded). The
    invisible format characters go too (Unicode category Cf: zero-width spaces and joiners,
    direction marks, soft hyphens): a name pasted with one, into the request or into the
    search, looks the same as one typed without, and is found by it."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(
        ch
        for ch in decomposed
        if not unicodedata.combining(ch) and unicodedata.category(ch) != "Cf"
    ).casefold()


class ConsultationRequest(db.Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    reference: Mapped[str] = mapped_column(String(12), unique=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id"), index=True)
    status: Mapped[RequestStatus] = mapped_column(
        value_enum(RequestStatus, "request_status"), default=RequestStatus.REQUESTED
    )
    triage_level: Mapped[TriageLevel] = mapped_column(value_enum(TriageLevel, "triage_level"))
    # Set from ``triage_level`` by the listener below; never written directly.
    priority: Mapped[int] = mapped_column(SmallInteger, default=0)
    # The red flags the patient answered "yes" (codes of ``booking.requests.triage``). On the
    # request, not its history: an emergency call-back request has flags and no history.
    red_flags: Mapped[list[str]] = mapped_column(JSON, default=list)
    # The emergency and urgent questions the patient answered "yes" and then changed to "no"
    # before sending: they make the request urgent (``triage.level``), and staff read them.
    withdrawn_red_flags: Mapped[list[str]] = mapped_column(JSON, default=list, server_default="[]")
    # The one-time token of the form that created this request: a second post of the same form
    # (refresh, double click) finds it instead of creating a twin.
    submission_token: Mapped[str] = mapped_column(String(64), unique=True)
    locale: Mapped[str] = mapped_column(String(10), default="en")

    preferred_days: Mapped[list[int]] = mapped_column(JSON, default=list)
    preferred_time_of_day: Mapped[str] = mapped_column(String(10), default="any")
    earliest_date: Mapped[date | None]

    # The consent record: the notice's version, the language it was shown in and the SHA-256
    # of its wording as shown (``booking.requests.notice``); language and hash are None on
    # requests sent before they were kept.
    privacy_notice_version: Mapped[str] = mapped_column(String(20))
    privacy_notice_language: Mapped[str | None] = mapped_column(String(10))
    privacy_notice_sha256: Mapped[str | None] = mapped_column(String(64))
    consented_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # False once the patient withdrew it (``contact_consent_withdrawn_at``): no reminders,
    # waitlist offers or follow-ups; what their care needs (the clinic's answers) still goes.
    contact_consent: Mapped[bool]
    # The separate, optional consent to follow-up questionnaires after the visit
    # (``booking.outcomes``), with the version of its wording and when it was given.
    followup_consent: Mapped[bool] = mapped_column(default=False, server_default=false())
    followup_consent_version: Mapped[str | None] = mapped_column(String(20))
    contact_consent_withdrawn_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    # The specialist who will see the patient (set when staff confirm); specialists see only
    # the requests assigned to them.
    assigned_specialist_id: Mapped[int | None] = mapped_column(
        ForeignKey("staff_user.id"), index=True
    )
    # When the request was first confirmed: the clinic's response time.
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # When it was last closed (cancelled, declined, completed, no-show); None while open. Set by
    # the listener below on every status change: the patient's link dies some days after it.
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Staff sent the patient a new private link at this time: every link sent before stops
    # working (the per-link rows are revoked too; this also ends links of the older, signed kind).
    manage_links_reset_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    # The first call-back staff logged that reached the patient (``booking.requests.calls``):
    # it stops the clock of an emergency or urgent request against its target, and its
    # escalation.
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    acknowledged_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id"))
    # When the on-call address was emailed about an emergency left unacknowledged past its
    # target: set once, by a conditional update, so it is emailed once whatever runs the job.
    escalated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # When staff last raised the triage level (``booking.dashboard.services.raise_triage``):
    # the call-back the patient is now owed is counted from it, not from the request's
    # arrival (``call_back_since``). None: never raised.
    triage_raised_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # When the patient answered staff's request for information (``booking.requests.asks``):
    # the queue marks the request "information received" until staff act on it.
    information_received_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc, onupdate=now_utc)

    patient: Mapped[Patient] = relationship(back_populates="requests")
    assigned_specialist: Mapped[StaffUser | None] = relationship(
        foreign_keys=[assigned_specialist_id]
    )
    acknowledged_by: Mapped[StaffUser | None] = relationship(foreign_keys=[acknowledged_by_id])
    appointment: Mapped[Appointment | None] = relationship(
        back_populates="request", cascade="all, delete-orphan"
    )
    events: Mapped[list[RequestEvent]] = relationship(
        cascade="all, delete-orphan", order_by="RequestEvent.occurred_at"
    )
    diagnosis_codes: Mapped[list[RequestDiagnosis]] = relationship(cascade="all, delete-orphan")
    # None only for an emergency call-back (name and phone, no form).
    history: Mapped[MedicalHistory | None] = relationship(
        back_populates="request", cascade="all, delete-orphan"
    )
    documents: Mapped[list[Document]] = relationship(
        back_populates="request", cascade="all, delete-orphan", order_by="Document.id"
    )
    emails: Mapped[list[OutboxEmail]] = relationship(
        back_populates="request", order_by="OutboxEmail.id"
    )
    calls: Mapped[list[CallbackAttempt]] = relationship(
        cascade="all, delete-orphan",
        order_by="[CallbackAttempt.called_at.desc(), CallbackAttempt.id.desc()]",
    )

    __table_args__ = (
        # The triage queue's order (urgent first, then the one whose call-back clock started
        # first, ``call_back_since``, then the id), column for column and direction for
        # direction, so both databases read a page of any tab from an index, in order, and
        # stop after it: a sort would read every row. The clock is an expression (the raise,
        # else the arrival) which both databases index and match to the same expression in a
        # query's ORDER BY and WHERE (``call_back_since_column``). Within a status:
        Index(
            "ix_consultation_request_queue",
            status,
            priority.desc(),
            func.coalesce(triage_raised_at, created_at),
            id,
        ),
        # and for the every-status tab:
        Index(
            "ix_consultation_request_queue_all",
            priority.desc(),
            func.coalesce(triage_raised_at, created_at),
            id,
        ),
        Index("ix_consultation_request_created_at", "created_at"),
    )

    @property
    def is_urgent(self) -> bool:
        """Emergency or urgent: first in the queue, alerted to staff, called back."""
        return self.triage_level in PRESSING_LEVELS

    @property
    def is_emergency(self) -> bool:
        return self.triage_level == TriageLevel.EMERGENCY

    @property
    def withdrew_emergency_answer(self) -> bool:
        """An emergency-symptom answer (``triage.EMERGENCY``) changed from yes to no before
        sending: said to staff whatever else makes the request urgent."""
        return triage.pathway(self.withdrawn_red_flags or ()) == triage.EMERGENCY

    @property
    def call_back_level(self) -> TriageLevel:
        """The level whose call-back target this request is held to (``call_back_level``)."""
        return call_back_level(self.triage_level, self.withdrawn_red_flags)

    @property
    def flag_combinations(self) -> list[triage.Combination]:
        """The combinations of the answers given (``triage.COMBINATIONS``), each with the
        reason it is more pressing than any of its answers alone: staff read it by the flags,
        each of which may say only "to review"."""
        return triage.combinations(self.red_flags or ())

    @property
    def triage_by_combination(self) -> bool:
        """Whether a combination of the answers, not one alone, sets the triage level
        (``triage.decided_by_combination``)."""
        return triage.decided_by_combination(self.red_flags or ())

    @property
    def call_back_since(self) -> datetime:
        """When the clock of the call-back the patient is owed started: when staff last
        raised the triage level (new symptoms), else when the request arrived. The waits
        against the targets and the escalation count from it (``call_back_since_column``)."""
        return self.triage_raised_at or self.created_at

    @property
    def unreached(self) -> bool:
        """Emergency or urgent, and no call logged has reached the patient
        (``acknowledged_at``): the call-back the patient was promised is still owed."""
        return self.is_urgent and self.acknowledged_at is None

    @property
    def urgent_for_withdrawn_answer(self) -> bool:
        """Urgent only because the patient changed an urgent-symptom answer from yes to no
        before sending (``withdrawn_red_flags``): no answer now says yes."""
        return self.is_urgent and triage.level(self.red_flags) == TriageLevel.ROUTINE

    @property
    def kept_documents(self) -> list[Document]:
        """Its documents but those the virus scan removed (``documents.models.kept``): what
        counts toward ``MAX_DOCUMENTS``."""
        return kept(self.documents)

    @property
    def is_open(self) -> bool:
        """Still under way (``OPEN_STATUSES``): the patient may add, change or write."""
        return self.status in OPEN_STATUSES

    @property
    def is_unconfirmed(self) -> bool:
        """Not confirmed yet (``UNCONFIRMED_STATUSES``): a time it has is only held."""
        return self.status in UNCONFIRMED_STATUSES


def call_back_since_column() -> ColumnElement[datetime]:
    """``ConsultationRequest.call_back_since`` in SQL. The queue's indexes hold the same
    expression (``ConsultationRequest.__table_args__``): the databases use an expression
    index only for the expression as written there, so the two change together."""
    return func.coalesce(ConsultationRequest.triage_raised_at, ConsultationRequest.created_at)


@event.listens_for(ConsultationRequest.triage_level, "set")
def _rank(target: ConsultationRequest, value: TriageLevel, _old: object, _init: object) -> None:
    target.priority = TRIAGE_PRIORITY[TriageLevel(value)]


@event.listens_for(ConsultationRequest.status, "set")
def _record_closing(
    target: ConsultationRequest, value: RequestStatus, old: object, _initiator: object
) -> None:
    """Every status change, wherever it is made, keeps ``closed_at`` true."""
    if value in OPEN_STATUSES:
        target.closed_at = None
    elif value != old or target.closed_at is None:
        target.closed_at = now_utc()


# Every 0-10 pain column, each checked by the database.
PAIN_COLUMNS = (
    *(name for area in PAIN_AREAS for name in (area.now_name, area.worst_name)),
    "pain_now",
    "pain_worst",
)


class MedicalHistory(db.Model):
    """What the patient told us about their spine, one row per request."""

    request_id: Mapped[int] = mapped_column(
        ForeignKey("consultation_request.id", ondelete="CASCADE"), primary_key=True
    )
    pain_locations: Mapped[list[str]] = mapped_column(JSON, default=list)
    pain_side: Mapped[str | None] = mapped_column(String(10))
    pain_duration: Mapped[str] = mapped_column(String(20))
    # lower_back, neck or both (``instruments.REGIONS``); None on requests made before it was
    # asked (they were given the ODI only and one overall pain pair).
    spine_region: Mapped[str | None] = mapped_column(String(12))
    # 0-10 pain per area, now and at its worst in the last week: only the patient's region's
    # areas are set (``instruments.REGION_PAIN_AREAS``).
    back_pain_now: Mapped[int | None]
    back_pain_worst: Mapped[int | None]
    leg_pain_now: Mapped[int | None]
    leg_pain_worst: Mapped[int | None]
    neck_pain_now: Mapped[int | None]
    neck_pain_worst: Mapped[int | None]
    arm_pain_now: Mapped[int | None]
    arm_pain_worst: Mapped[int | None]
    # One overall pain pair: asked until the region was, kept for those requests only.
    pain_now: Mapped[int | None]
    pain_worst: Mapped[int | None]
    radiating_pain: Mapped[bool]
    numbness: Mapped[bool]
    weakness: Mapped[bool]
    diagnoses: Mapped[list[str]] = mapped_column(JSON, default=list)
    # The patient's own words (names of diagnoses, operations, medicines, allergies, ...) are
    # encrypted at rest like documents (``flask keys rotate`` covers them); nothing filters on
    # them. The structured answers beside them stay plain for the queue, insights and exports.
    diagnosis_other: Mapped[str | None] = mapped_column(EncryptedText)
    treatments: Mapped[list[str]] = mapped_column(JSON, default=list)
    surgery_details: Mapped[str | None] = mapped_column(EncryptedText)
    imaging: Mapped[list[str]] = mapped_column(JSON, default=list)
    imaging_when: Mapped[str | None] = mapped_column(EncryptedText)
    medications: Mapped[str | None] = mapped_column(EncryptedText)
    allergies: Mapped[str | None] = mapped_column(EncryptedText)
    blood_thinners: Mapped[bool]
    diabetes: Mapped[bool]
    smoking: Mapped[str] = mapped_column(String(10))
    other_history: Mapped[str | None] = mapped_column(EncryptedText)

    odi_answers: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    odi_sections_answered: Mapped[int] = mapped_column(default=0)
    odi_percent: Mapped[float | None]
    odi_band: Mapped[str | None] = mapped_column(String(12))
    # The Neck Disability Index, the same way (empty unless the region asks it).
    ndi_answers: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    ndi_sections_answered: Mapped[int] = mapped_column(default=0)
    ndi_percent: Mapped[float | None]
    ndi_band: Mapped[str | None] = mapped_column(String(12))

    request: Mapped[ConsultationRequest] = relationship(back_populates="history")

    __table_args__ = (
        *(
            CheckConstraint(f"{column} BETWEEN 0 AND 10", name=f"{column}_range")
            for column in PAIN_COLUMNS
        ),
        *(
            constraint
            for code in ("odi", "ndi")
            for constraint in (
                CheckConstraint(
                    f"{code}_sections_answered BETWEEN 0 AND 10",
                    name=f"{code}_sections_answered_range",
                ),
                CheckConstraint(
                    f"{code}_percent IS NULL OR ({code}_percent >= 0 AND {code}_percent <= 100)",
                    name=f"{code}_percent_range",
                ),
            )
        ),
    )

    def pain(self, area: PainArea) -> tuple[int, int] | None:
        """The area's (now, worst) pair, if the patient rated it."""
        now, worst = getattr(self, area.now_name), getattr(self, area.worst_name)
        return None if now is None or worst is None else (now, worst)

    def outcome(self, instrument: Instrument) -> Score:
        """The instrument's stored answers and score."""
        code = instrument.code
        return Score(
            instrument,
            dict(getattr(self, f"{code}_answers") or {}),
            percent=getattr(self, f"{code}_percent"),
            band=getattr(self, f"{code}_band"),
        )


class RequestDiagnosis(db.Model):
    """One diagnosis the patient named, as its own row so the queue can filter on it with an
    index (the history keeps the same list for display). Written with the request."""

    request_id: Mapped[int] = mapped_column(
        ForeignKey("consultation_request.id", ondelete="CASCADE"), primary_key=True
    )
    code: Mapped[str] = mapped_column(String(40), primary_key=True, index=True)


# One row per private link sent to a patient.
class ManageLink(db.Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(
        ForeignKey("consultation_request.id", ondelete="CASCADE"), index=True
    )
    # SHA-256 of the token, hex: the token has 256 random bits, so a fast hash is enough, and
    # a copy of the database (or a backup) opens no request.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)
    # Last time the link was opened (exchanged for the page's cookie).
    opened_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    request: Mapped[ConsultationRequest] = relationship()


def may_be_contacted() -> ColumnElement[bool]:
    """The requests whose patient may be sent what they did not ask for at that moment
    (reminders, earlier-time offers, reminders of a request for information): they have not
    withdrawn their consent to be contacted (``booking.rights``), and staff have not marked
    them deceased (``booking.outcomes``: a family should not get them either)."""
    return and_(
        ConsultationRequest.contact_consent.is_(True),
        ConsultationRequest.patient.has(Patient.deceased_at.is_(None)),
    )
