"""Documents a patient sent with a request; the bytes live in storage, the facts here."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from booking.extensions import db
from booking.timeutil import UTCDateTime, now_utc

if TYPE_CHECKING:
    from booking.requests.models import ConsultationRequest


class Document(db.Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(
        ForeignKey("consultation_request.id", ondelete="CASCADE"), index=True
    )
    original_name: Mapped[str] = mapped_column(String(255))  # shown to staff, never a path
    stored_name: Mapped[str] = mapped_column(String(64), unique=True)  # random storage key
    content_type: Mapped[str] = mapped_column(String(50))  # detected from the bytes
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    description: Mapped[str | None] = mapped_column(String(200))
    uploaded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)

    request: Mapped[ConsultationRequest] = relationship(back_populates="documents")

    __table_args__ = (CheckConstraint("size_bytes > 0", name="size_positive"),)
