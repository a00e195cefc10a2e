"""The outbox: every email is a row written with the change it reports, then delivered."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import ColumnElement, ForeignKey, Index, String, and_, or_
from sqlalchemy.orm import Mapped, mapped_column, relationship

from booking.crypto import EncryptedLongText
from booking.extensions import db, value_enum
from booking.timeutil import UTCDateTime, now_utc

if TYPE_CHECKING:
    from booking.requests.models import ConsultationRequest


class OutboxStatus(enum.StrEnum):
    PENDING = "pending"  # waiting for (another) attempt
    SENDING = "sending"  # claimed by a worker
    SENT = "sent"  # the mail server accepted it
    FAILED = "failed"  # refused, still failing after MAIL_GIVE_UP_HOURS, or killing its worker


# Not yet delivered or given up on: waiting for an attempt, or in one.
WAITING = (OutboxStatus.PENDING, OutboxStatus.SENDING)


class OutboxEmail(db.Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int | None] = mapped_column(
        ForeignKey("consultation_request.id", ondelete="SET NULL"), index=True
    )
    template: Mapped[str] = mapped_column(String(50))
    recipient: Mapped[str] = mapped_column(String(254))
    subject: Mapped[str] = mapped_column(String(255))
    # The bodies and the attachment are encrypted at rest (``booking.crypto``): until an email
    # is sent they hold its links whole (a private link, an offer, a video visit's link),
    # and a copy of the database or a backup must open nothing. Sent, their tokens are
    # removed too, and a video visit's link whole (``notifications.services.redact_links``).
    body_text: Mapped[str] = mapped_column(EncryptedLongText)
    body_html: Mapped[str] = mapped_column(EncryptedLongText)
    # Fixed when the row is written, so a retried delivery is recognisably the same message.
    message_id: Mapped[str] = mapped_column(String(255), unique=True)
    status: Mapped[OutboxStatus] = mapped_column(
        value_enum(OutboxStatus, "outbox_status", length=10),
        default=OutboxStatus.PENDING,
    )
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Claims in a row that did not end (the current one included): added to by each claim,
    # back to 0 when an attempt ends (sent, or refused and retried). One that keeps its
    # worker from ever finishing (kills it, hangs it, breaks it) is failed once this reaches
    # MAIL_MAX_LAPSED_CLAIMS (``services.requeue_stalled_emails``).
    unfinished_claims: Mapped[int] = mapped_column(default=0, server_default="0")
    # Withdrawn by a change of its request while a worker had it claimed
    # (``services.withdraw_pending``): deleted unsent if the worker has not handed it to the
    # mail server yet; if that attempt fails, deleted, not retried.
    withdrawn_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # A failed email staff have dealt with: sent again, replaced by another, or found no
    # longer wanted (what it was about is past). It stays for the record, but is no longer
    # one to chase: the banners and counts of emails that failed leave it out.
    settled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(String(500))
    # One optional attachment, such as an appointment's iCalendar file.
    attachment_name: Mapped[str | None] = mapped_column(String(100))
    attachment_type: Mapped[str | None] = mapped_column(String(100))
    attachment_body: Mapped[str | None] = mapped_column(EncryptedLongText)
    # The message staff wrote to the patient in it, also in its bodies: kept (encrypted)
    # until it is sent, so that an email withdrawn as outdated passes it on to the email
    # that replaces it (``services.withdraw_calendar_emails``).
    staff_message: Mapped[str | None] = mapped_column(EncryptedLongText)
    # The time an email about a move gives as the one it was ("Previous time"), also in its
    # bodies: kept so that the email written again (a corrected address) still gives it,
    # and a newer move's email that replaces it unsent gives it instead of a time the
    # patient was never told (``requests.emails.previous_time_told``).
    previous_starts_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # How the visit took place before the move of an email that changed it (a visit mode's
    # value: the outbox knows no feature), kept as ``previous_starts_at`` is and for the
    # same readers (``requests.emails.previous_mode_told``).
    previous_mode: Mapped[str | None] = mapped_column(String(12))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)

    request: Mapped[ConsultationRequest | None] = relationship(back_populates="emails")

    __table_args__ = (Index("ix_outbox_email_due", "status", "next_attempt_at"),)

    @classmethod
    def still_to_go(cls) -> ColumnElement[bool]:
        """Emails that may still reach their reader: waiting, and not withdrawn."""
        return and_(cls.status.in_(WAITING), cls.withdrawn_at.is_(None))

    @classmethod
    def undelivered(cls, late_before: datetime) -> ColumnElement[bool]:
        """Emails that did not reach their reader in time: failed for good, or still waiting
        though written before ``late_before`` (the queue's banners of clinic alerts)."""
        return or_(
            cls.status == OutboxStatus.FAILED,
            and_(cls.still_to_go(), cls.created_at < late_before),
        )
