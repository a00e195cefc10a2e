"""One reader's feedback on one information page."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from booking.crypto import EncryptedText
from booking.extensions import db
from booking.timeutil import UTCDateTime, now_utc

# The longest comment the form takes, in characters.
MAX_COMMENT_CHARS = 2000


class PageFeedback(db.Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    # The page's slug (``booking.content.reviews.REVIEWS``), as it was when the reader wrote.
    page: Mapped[str] = mapped_column(String(40), index=True)
    # "Was this page useful?": yes, no, or not answered (a problem report alone).
    useful: Mapped[bool | None]
    # Readers are asked to leave out personal details, but some will not: encrypted like a
    # message, and never put in an email or the audit trail.
    comment: Mapped[str | None] = mapped_column(EncryptedText)
    locale: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc, index=True)


class FeedbackAnnouncement(db.Model):
    """When the admins were last told that feedback arrived: one row (``ROW``), claimed by a
    conditional update (``services._claim_announcement``), so that two readers writing at
    the same moment after a quiet hour send the admins one email, not two. The audit trail
    keeps every announcement too; it cannot be claimed (rows are only ever added)."""

    ROW = 1

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    announced_at: Mapped[datetime] = mapped_column(UTCDateTime)
