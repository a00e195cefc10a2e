"""Two-factor sign-in for staff: TOTP codes (RFC 6238, any authenticator app) and one-time
recovery codes. Enrolment shows a QR code; every step is audited."""

from __future__ import annotations

import secrets
import time

import pyotp
import segno
from flask import current_app
from sqlalchemy import select

from booking.audit.services import record
from booking.extensions import db
from booking.staff.auth import hash_password, verify_password_hash
from booking.staff.models import RecoveryCode, StaffUser
from booking.timeutil import now_utc

RECOVERY_CODES = 10


def new_secret() -> str:
    return pyotp.random_base32()


def provisioning_qr(user: StaffUser, secret: str) -> str:
    """The enrolment QR code as an SVG data URI (no network, no third party)."""
    uri = pyotp.TOTP(secret).provisioning_uri(
        name=user.email, issuer_name=current_app.config["CLINIC_NAME"]
    )
    return segno.make(uri, error="m").svg_data_uri(scale=5, border=2)


def _matching_step(secret: str, code: str, after: int) -> int | None:
    """The time step whose code this is (now, or one step either side for clock drift), if
    it is newer than ``after``: a code is accepted once."""
    # ASCII digits only: str.isdigit() also takes other scripts' digits, which compare_digest
    # refuses with a TypeError.
    code = "".join(ch for ch in code if ch in "0123456789")
    if len(code) != 6:
        return None
    totp = pyotp.TOTP(secret)
    now_step = int(time.time()) // totp.interval
    for step in (now_step - 1, now_step, now_step + 1):
        if step > after and secrets.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def enable(user: StaffUser, secret: str, code: str) -> list[str] | None:
    """Turn two-factor sign-in on if ``code`` proves the app is set up; return the recovery
    codes to show once (only their hashes are kept)."""
    step = _matching_step(secret, code, after=0)
    if step is None:
        return None
    user.totp_secret = secret
    user.totp_enabled = True
    user.totp_last_step = step
    db.session.execute(RecoveryCode.__table__.delete().where(RecoveryCode.staff_id == user.id))
    codes = [f"{secrets.token_hex(3)}-{secrets.token_hex(3)}" for _ in range(RECOVERY_CODES)]
    for code_text in codes:
        db.session.add(RecoveryCode(staff_id=user.id, code_hash=hash_password(code_text)))
    record("two_factor_enabled", target_type="staff", target_id=user.id, actor=user)
    db.session.commit()
    return codes


def verify(user: StaffUser, code: str) -> bool:
    """Check a sign-in code (or a recovery code, used up by this). Audited either way.

    The account's row is locked first (PostgreSQL; SQLite's BEGIN IMMEDIATE serialises
    writers): two posts of one code at once would otherwise both read the step last used
    before either wrote it, and both sign in with a code meant to work once."""
    db.session.refresh(user, with_for_update=True)
    ok = False
    how = "totp"
    if user.totp_secret:
        step = _matching_step(user.totp_secret, code, after=user.totp_last_step)
        if step is not None:
            user.totp_last_step = step
            ok = True
    if not ok:
        how = "recovery_code"
        cleaned = code.strip().lower()
        for recovery in db.session.scalars(
            select(RecoveryCode).where(
                RecoveryCode.staff_id == user.id, RecoveryCode.used_at.is_(None)
            )
        ):
            if verify_password_hash(recovery.code_hash, cleaned):
                recovery.used_at = now_utc()
                ok = True
                break
    if ok:
        user.last_login_at = now_utc()
        record(
            "login",
            target_type="staff",
            target_id=user.id,
            actor=user,
            details={"second_factor": how},
        )
    else:
        record(
            "login_failed",
            target_type="staff",
            target_id=user.id,
            actor=user,
            details={"reason": "wrong second-factor code"},
        )
    db.session.commit()
    return ok
