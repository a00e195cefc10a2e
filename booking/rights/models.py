"""A patient's request to erase their data, queued for an administrator; a patient's change
of their own email address, waiting for the new mailbox to confirm it."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from booking.crypto import EncryptedText
from booking.extensions import db, value_enum
from booking.timeutil import UTCDateTime, months_later, now_utc

# GDPR Art. 12(3): an answer without undue delay, at the latest one month after the request.
ANSWER_WITHIN_MONTHS = 1


class ErasureStatus(enum.StrEnum):
    OPEN = "open"
    ERASED = "erased"  # the admin erased the patient (booking.privacy.services.erase_patient)
    CLOSED = "closed"  # the admin explained why not (yet), and the patient was emailed


class ErasureRequest(db.Model):
    """Kept after an erasure as the record that it was answered: it holds the reference and
    dates, never who the patient was (the request it points to is gone by then)."""

    id: Mapped[int] = mapped_column(primary_key=True)
    reference: Mapped[str] = mapped_column(String(12))
    # None once the request itself was erased.
    request_id: Mapped[int | None] = mapped_column(
        ForeignKey("consultation_request.id", ondelete="SET NULL"), index=True
    )
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)
    status: Mapped[ErasureStatus] = mapped_column(
        value_enum(ErasureStatus, "erasure_status", 10), default=ErasureStatus.OPEN
    )
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id"))
    # The admin's explanation, as emailed to the patient: encrypted, it may name their care.
    explanation: Mapped[str | None] = mapped_column(EncryptedText)

    __table_args__ = (Index("ix_erasure_request_open", "status", "requested_at"),)

    @property
    def due_at(self) -> datetime:
        """One month after the request: the end of the same date next month, clinic time (or
        of that month's last day: a request of 31 January is due on 28 February)."""
        return months_later(self.requested_at, ANSWER_WITHIN_MONTHS)


class EmailChange(db.Model):
    """A new email address the patient asked for on their private page, not theirs until its
    confirmation link is opened from the new mailbox (``booking.rights.addresses``). The
    link's token is kept only as its SHA-256, as a private link's is (``ManageLink``). One
    unused row per request: a second request deletes the first, whose link then fails. Used
    or not, a row goes once it has expired (``purge_expired_email_changes``), and with its
    request (erasure, retention)."""

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(
        ForeignKey("consultation_request.id", ondelete="CASCADE"), index=True
    )
    # Stored as ``Patient.email`` is (in the clear: the outbox must write to it).
    new_email: Mapped[str] = mapped_column(String(254))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
