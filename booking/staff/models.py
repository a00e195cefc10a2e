"""Staff accounts: who may sign in to the dashboard, and with which role."""

from __future__ import annotations

import enum
import secrets
from datetime import datetime

from flask import current_app, g, has_app_context
from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from booking.crypto import EncryptedText
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
    # Two-factor sign-in (TOTP, RFC 6238). The last accepted time step stops a code being
    # used twice.
    # Encrypted at rest with the clinic's key (booking.crypto); loaded (and decrypted) only
    # when a code is checked, not with every page's user.
    totp_secret: Mapped[str | None] = mapped_column(EncryptedText(255), deferred=True)
    totp_enabled: Mapped[bool] = mapped_column(default=False)
    totp_last_step: Mapped[int] = mapped_column(default=0)

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
    def needs_second_factor(self) -> bool:
        """Whether this account must sign in with a code: by role, or by clinic setting."""
        required = two_factor_required_roles()
        return self.role.value in required

    @property
    def is_admin(self) -> bool:
        return self.role == StaffRole.ADMIN

    @property
    def works_every_request(self) -> bool:
        return self.role in (StaffRole.ADMIN, StaffRole.COORDINATOR)


class StaffSession(db.Model):
    """One signed-in browser. The session cookie holds a random id whose SHA-256 is kept
    here, so the server decides when a session ends: signing out, the idle and absolute
    limits, a password change and a deactivation end it, and a copied cookie is refused
    afterwards (booking.staff.auth)."""

    id: Mapped[int] = mapped_column(primary_key=True)
    staff_id: Mapped[int] = mapped_column(
        ForeignKey("staff_user.id", ondelete="CASCADE"), index=True
    )
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # signed_out, idle, expired, password_changed, deactivated, role_changed, two_factor_reset,
    # email_changed
    end_reason: Mapped[str | None] = mapped_column(String(20))
    address: Mapped[str | None] = mapped_column(String(45))


class RecoveryCode(db.Model):
    """A one-time code for signing in without the authenticator app; stored hashed."""

    id: Mapped[int] = mapped_column(primary_key=True)
    staff_id: Mapped[int] = mapped_column(
        ForeignKey("staff_user.id", ondelete="CASCADE"), index=True
    )
    code_hash: Mapped[str] = mapped_column(String(255))
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class SecuritySettings(db.Model):
    """The clinic's sign-in rules, one row (id 1), edited by admins."""

    id: Mapped[int] = mapped_column(primary_key=True)
    # Roles that must use two-factor sign-in besides those STAFF_2FA_REQUIRED_ROLES always
    # requires (comma separated role values).
    two_factor_roles: Mapped[str] = mapped_column(String(100), default="")


def configured_two_factor_roles() -> set[str]:
    """The roles the deployment always requires two-factor sign-in for (not editable here)."""
    configured = current_app.config["STAFF_2FA_REQUIRED_ROLES"]
    if "all" in configured:
        return {role.value for role in StaffRole}
    return {role.value for role in StaffRole if role.value in configured}


def two_factor_required_roles() -> set[str]:
    """Every role that must use two-factor sign-in: the deployment's floor plus what the
    clinic's admins chose. Read once per request."""
    cached = g.get("two_factor_roles") if has_app_context() else None
    if cached is not None:
        return cached
    settings = db.session.get(SecuritySettings, 1)
    chosen = {r for r in (settings.two_factor_roles.split(",") if settings else []) if r}
    roles = configured_two_factor_roles() | chosen
    if has_app_context():
        g.two_factor_roles = roles
    return roles
