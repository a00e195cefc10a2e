"""The plan decided at completion, each follow-up time point sent, the links in its emails,
the clinic's outcome settings, and the pseudonymous registry code of a patient."""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    SmallInteger,
    String,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from booking.extensions import db, value_enum
from booking.requests.instruments import PAIN_AREAS
from booking.timeutil import UTCDateTime, now_utc

if TYPE_CHECKING:
    from booking.requests.models import ConsultationRequest
    from booking.staff.models import StaffUser


class Plan(enum.StrEnum):
    ADVICE = "advice"  # advice and exercise
    PHYSIOTHERAPY = "physiotherapy"
    MEDICATION = "medication"
    INJECTION = "injection"
    # microdiscectomy, endoscopic decompression, minimally invasive fusion
    MINIMALLY_INVASIVE = "minimally_invasive"
    OPEN_SURGERY = "open_surgery"
    REFERRAL = "referral"  # referred elsewhere
    OTHER = "other"


class PlanGroup(enum.StrEnum):
    """The groups the clinic's results compare."""

    MINIMALLY_INVASIVE = "minimally_invasive"
    OPEN_SURGERY = "open_surgery"
    NON_SURGICAL = "non_surgical"
    OTHER = "other"


PLAN_GROUP = {
    Plan.ADVICE: PlanGroup.NON_SURGICAL,
    Plan.PHYSIOTHERAPY: PlanGroup.NON_SURGICAL,
    Plan.MEDICATION: PlanGroup.NON_SURGICAL,
    Plan.INJECTION: PlanGroup.NON_SURGICAL,
    Plan.MINIMALLY_INVASIVE: PlanGroup.MINIMALLY_INVASIVE,
    Plan.OPEN_SURGERY: PlanGroup.OPEN_SURGERY,
    Plan.REFERRAL: PlanGroup.OTHER,
    Plan.OTHER: PlanGroup.OTHER,
}


class TreatmentPlan(db.Model):
    """What staff decided when they completed the request; the intake answers are the
    baseline. One row per request, written with the completion."""

    request_id: Mapped[int] = mapped_column(
        ForeignKey("consultation_request.id", ondelete="CASCADE"), primary_key=True
    )
    plan: Mapped[Plan] = mapped_column(value_enum(Plan, "treatment_plan_kind", length=30))
    procedure_date: Mapped[date | None]
    # The day of the consultation (clinic time): the schedule counts from it when there is no
    # procedure date.
    consulted_on: Mapped[date]
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)
    decided_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("staff_user.id", ondelete="SET NULL")
    )
    # The patient stopped further invitations (from a link in one of them).
    followups_stopped_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    request: Mapped[ConsultationRequest] = relationship()
    decided_by: Mapped[StaffUser | None] = relationship()
    follow_ups: Mapped[list[FollowUp]] = relationship(
        back_populates="plan", order_by="FollowUp.due_at", viewonly=True
    )


# Every 0-10 pain column a follow-up can hold, the intake's names.
PAIN_COLUMNS = tuple(name for area in PAIN_AREAS for name in (area.now_name, area.worst_name))


class FollowUp(db.Model):
    """One time point of one request's follow-up: inserted, unique per request and time point
    among the rows not superseded, in the same transaction as its invitation email, so it is
    sent once whatever runs the job. A time point missed while the worker was down past its
    link's life is inserted unsent (``sent_at`` None): it is never sent late.

    Superseded (``superseded_at``) by staff correcting the procedure date: sent too early for
    the new date, or answered before the new start. Kept, answers and all (the record shows
    it, marked), but no result, no part of the response rate, and no longer the time point's
    row: the sender invites the time point again at its new time."""

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(
        ForeignKey("treatment_plan.request_id", ondelete="CASCADE"), index=True
    )
    point: Mapped[str] = mapped_column(String(8))  # "6w", "3m", "12m"
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reminded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    superseded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    # The answers, as at intake (``booking.requests.instruments``).
    odi_answers: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    odi_percent: Mapped[float | None] = mapped_column(Float)
    ndi_answers: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    ndi_percent: Mapped[float | None] = mapped_column(Float)
    back_pain_now: Mapped[int | None] = mapped_column(SmallInteger)
    back_pain_worst: Mapped[int | None] = mapped_column(SmallInteger)
    leg_pain_now: Mapped[int | None] = mapped_column(SmallInteger)
    leg_pain_worst: Mapped[int | None] = mapped_column(SmallInteger)
    neck_pain_now: Mapped[int | None] = mapped_column(SmallInteger)
    neck_pain_worst: Mapped[int | None] = mapped_column(SmallInteger)
    arm_pain_now: Mapped[int | None] = mapped_column(SmallInteger)
    arm_pain_worst: Mapped[int | None] = mapped_column(SmallInteger)
    # Global Perceived Effect: 1 completely recovered ... 7 worse than ever.
    gpe: Mapped[int | None] = mapped_column(SmallInteger)
    # Satisfaction with the care: 1 very dissatisfied ... 5 very satisfied.
    satisfaction: Mapped[int | None] = mapped_column(SmallInteger)

    plan: Mapped[TreatmentPlan] = relationship(back_populates="follow_ups")

    __table_args__ = (
        # One live row per time point; superseded ones are history beside it.
        Index(
            "uq_follow_up_live_point",
            "request_id",
            "point",
            unique=True,
            sqlite_where=text("superseded_at IS NULL"),
            postgresql_where=text("superseded_at IS NULL"),
        ),
        Index("ix_follow_up_due", "answered_at", "reminded_at", "sent_at"),
        CheckConstraint("gpe IS NULL OR gpe BETWEEN 1 AND 7", name="gpe_range"),
        CheckConstraint(
            "satisfaction IS NULL OR satisfaction BETWEEN 1 AND 5", name="satisfaction_range"
        ),
        *(
            CheckConstraint(
                f"{column} IS NULL OR {column} BETWEEN 0 AND 10", name=f"{column}_range"
            )
            for column in PAIN_COLUMNS
        ),
    )


class FollowUpLink(db.Model):
    """A link sent in a follow-up email (the invitation, the reminder): only the SHA-256 of
    its random token is kept, as for the manage links (``booking.requests.links``)."""

    id: Mapped[int] = mapped_column(primary_key=True)
    follow_up_id: Mapped[int] = mapped_column(
        ForeignKey("follow_up.id", ondelete="CASCADE"), index=True
    )
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)
    opened_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    follow_up: Mapped[FollowUp] = relationship()


class OutcomeSettings(db.Model):
    """The clinic's follow-up schedule and change thresholds: one row (id 1), created on the
    first save; until then ``settings()`` gives the published defaults."""

    id: Mapped[int] = mapped_column(primary_key=True)
    schedule: Mapped[list[str]] = mapped_column(JSON)
    odi_points: Mapped[float] = mapped_column(Float)
    ndi_points: Mapped[float] = mapped_column(Float)
    pain_points: Mapped[float] = mapped_column(Float)
    # A change of at least this per cent of the baseline also counts (ODI and pain).
    relative_percent: Mapped[float] = mapped_column(Float)
    # The sentence on the public treatments page (shown only for groups of 30 or more).
    public_figures: Mapped[bool] = mapped_column(default=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc, onupdate=now_utc)


class RegistryCode(db.Model):
    """A patient record's random code for registry exports, made once and kept: the same
    record has the same code in every export, and nothing in it leads back to them. Each
    request has a patient record of its own: a second request's patient has another code
    (docs/clinical-content.md)."""

    patient_id: Mapped[int] = mapped_column(
        ForeignKey("patient.id", ondelete="CASCADE"), primary_key=True
    )
    code: Mapped[str] = mapped_column(String(16), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)


class OutcomeSnapshot(db.Model):
    """The counts behind the outcomes page for one period, time point, start day and set of
    thresholds (``key``): computed by the worker every few minutes, so the page and the public
    sentence read a few numbers instead of every follow-up (``booking.outcomes.snapshots``).
    Counts only: no patient is in it."""

    key: Mapped[str] = mapped_column(String(120), primary_key=True)
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)
    tally: Mapped[dict[str, Any]] = mapped_column(JSON)
