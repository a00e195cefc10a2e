"""A request's timeline: status changes, staff notes, call-backs and escalations, in order."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from booking.crypto import EncryptedText
from booking.extensions import db, value_enum
from booking.timeutil import UTCDateTime, now_utc

if TYPE_CHECKING:
    from booking.requests.calls import CallbackAttempt
    from booking.staff.models import StaffUser


class EventKind(enum.StrEnum):
    STATUS = "status"  # a status change, including a reschedule (confirmed -> confirmed)
    NOTE = "note"  # an internal note, never shown to the patient
    CALL = "call"  # a call-back staff logged (its ``CallbackAttempt``); the body is its note
    ESCALATION = "escalation"  # the on-call address was emailed: no acknowledgement in time


class RequestEvent(db.Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(
        ForeignKey("consultation_request.id", ondelete="CASCADE")
    )
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id"))
    kind: Mapped[EventKind] = mapped_column(value_enum(EventKind, "event_kind", 10))
    from_status: Mapped[str | None] = mapped_column(String(20))
    to_status: Mapped[str | None] = mapped_column(String(20))
    # A note or a reason in staff's or the patient's words: encrypted at rest.
    body: Mapped[str | None] = mapped_column(EncryptedText)

    actor: Mapped[StaffUser | None] = relationship()
    # The call this entry records (kind CALL): loaded with the timeline, no query of its own.
    call: Mapped[CallbackAttempt | None] = relationship(back_populates="event")

    __table_args__ = (Index("ix_request_event_timeline", "request_id", "occurred_at"),)
