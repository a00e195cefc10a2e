"""Where and when a confirmed request is seen: clinic locations and appointments."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import CheckConstraint, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from booking.extensions import db
from booking.timeutil import UTCDateTime, now_utc

if TYPE_CHECKING:
    from booking.patients.models import ConsultationRequest
    from booking.staff.models import StaffUser


class Location(db.Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    address: Mapped[str] = mapped_column(String(300))
    active: Mapped[bool] = mapped_column(default=True)


class Appointment(db.Model):
    """A request's appointment. Rescheduling changes this row and raises ``sequence``, so the
    patient's calendar updates the same event (same ``uid``)."""

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(
        ForeignKey("consultation_request.id", ondelete="CASCADE"), unique=True
    )
    specialist_id: Mapped[int] = mapped_column(ForeignKey("staff_user.id"))
    location_id: Mapped[int] = mapped_column(ForeignKey("location.id"))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    active: Mapped[bool] = mapped_column(default=True)  # False once cancelled
    uid: Mapped[str] = mapped_column(String(120), unique=True)
    sequence: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc, onupdate=now_utc)

    request: Mapped[ConsultationRequest] = relationship(back_populates="appointment")
    specialist: Mapped[StaffUser] = relationship()
    location: Mapped[Location] = relationship()

    __table_args__ = (
        CheckConstraint("ends_at > starts_at", name="ends_after_start"),
        # The calendar: one specialist's appointments in a time range.
        Index("ix_appointment_specialist_time", "specialist_id", "starts_at"),
        Index("ix_appointment_time", "starts_at"),
    )

    @property
    def duration_minutes(self) -> int:
        return int((self.ends_at - self.starts_at).total_seconds() // 60)
