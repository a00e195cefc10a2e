"""Staff accounts: who may sign in to the dashboard, and with which role."""

from __future__ import annotations

import enum
import secrets
from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from booking.extensions import db, value_enum
from booking.timeutil import UTCDateTime, now_utc


class StaffRole(enum.StrEnum):
    ADMIN = "admin"  # manages staff accounts and clinic settings; works every request
    COORDINATOR = "coordinator"  # works every request
    SPECIALIST = "specialist"  # sees the requests assigned to them


def new_session_token() -> str:
    return secrets.token_urlsafe(32)


class StaffUser(db.Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)  # stored lower-case
    full_name: Mapped[str] = mapped_column(String(200))
    role: Mapped[StaffRole] = mapped_column(value_enum(StaffRole, "staff_role"))
    password_hash: Mapped[str] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(default=True)
    # What the session cookie holds instead of the id: changing it (password change,
    # deactivation) signs the account out everywhere.
    session_token: Mapped[str] = mapped_column(String(64), unique=True, default=new_session_token)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    # Flask-Login's interface.
    @property
    def is_active(self) -> bool:
        return self.active

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def is_anonymous(self) -> bool:
        return False

    def get_id(self) -> str:
        return self.session_token

    @property
    def is_admin(self) -> bool:
        return self.role == StaffRole.ADMIN

    @property
    def works_every_request(self) -> bool:
        return self.role in (StaffRole.ADMIN, StaffRole.COORDINATOR)
