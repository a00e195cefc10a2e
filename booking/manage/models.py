"""One row per private link sent to a patient: only the token's hash is kept."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from booking.extensions import db
from booking.timeutil import UTCDateTime, now_utc

if TYPE_CHECKING:
    from booking.patients.models import ConsultationRequest


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
