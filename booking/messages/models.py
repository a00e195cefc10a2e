"""A message of a request's thread, written by the patient or by a member of staff."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from booking.crypto import EncryptedText
from booking.documents.models import Document
from booking.extensions import db
from booking.timeutil import UTCDateTime, now_utc

if TYPE_CHECKING:
    from booking.staff.models import StaffUser

# The longest message a form takes, in characters.
MAX_MESSAGE_CHARS = 5000


class Message(db.Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(
        ForeignKey("consultation_request.id", ondelete="CASCADE")
    )
    # Who wrote it: the patient (through their private link), or the staff member named.
    from_patient: Mapped[bool]
    author_id: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id"))
    # Medical details, like a draft's answers: encrypted with the current key.
    body: Mapped[str] = mapped_column(EncryptedText)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)
    # When the other side first read it: the patient on their page, or staff on the record
    # (``read_by_id`` names who).
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    read_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id"))
    # The one-time key of the form that sent it (``SubmissionKeyField``), unique, so a page
    # sent twice stores one message, and a patient's send whose commit's answer was lost is
    # found. None for messages sent before keys.
    submission_key: Mapped[str | None] = mapped_column(String(64), unique=True, index=True)

    author: Mapped[StaffUser | None] = relationship(foreign_keys=[author_id])
    read_by: Mapped[StaffUser | None] = relationship(foreign_keys=[read_by_id])
    # A patient's attachment: a document of the request, linked to the message it came with.
    documents: Mapped[list[Document]] = relationship(order_by="Document.id", viewonly=True)

    __table_args__ = (
        CheckConstraint("from_patient OR author_id IS NOT NULL", name="staff_author_named"),
        Index("ix_message_thread", "request_id", "created_at"),
        # The queue's "unread message from the patient" (``services.unread_by_staff``): only
        # those rows, so its cost does not grow with every message the clinic ever had.
        Index(
            "ix_message_unread_from_patient",
            "request_id",
            postgresql_where=text("from_patient AND read_at IS NULL"),
            sqlite_where=text("from_patient = 1 AND read_at IS NULL"),
        ),
    )
