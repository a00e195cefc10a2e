"""Files waiting to be removed from storage after the rows that named them were deleted."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from booking.extensions import db
from booking.timeutil import UTCDateTime, now_utc


class FilePurge(db.Model):
    """One stored file to remove. Written in the transaction that deletes its document row, so
    the deletion survives a crash or a storage error between the commit and the removal; the
    row goes once the file is gone (the daily retention run retries what is left)."""

    id: Mapped[int] = mapped_column(primary_key=True)
    stored_name: Mapped[str] = mapped_column(String(64), unique=True)  # random key, not personal
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(String(200))
