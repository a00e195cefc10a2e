"""Staff account operations: sign-in, password reset, creating and deactivating accounts,
resetting a colleague's two-factor sign-in."""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from email_validator import EmailNotValidError, validate_email
from flask import current_app, g
from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from booking.audit.models import AuditEvent
from booking.audit.services import changes, record
from booking.crypto import text_digest
from booking.extensions import db
from booking.notifications.models import OutboxEmail, OutboxStatus
from booking.notifications.services import enqueue_delivery, queue_email
from booking.staff.auth import (
    end_all_sessions,
    find_staff_by_email,
    hash_password,
    make_reset_token,
    needs_rehash,
    reset_token_expired,
    reset_token_expires_at,
    reset_token_holder,
    verify_password,
)
from booking.staff.models import (
    RecoveryCode,
    SecuritySettings,
    StaffRole,
    StaffUser,
    new_session_token,
    two_factor_required_roles,
)
from booking.templating import isolated, naming
from booking.timeutil import now_utc
from booking.urlargs import public_url

log = logging.getLogger(__name__)


class StaffAccountError(ValueError):
    """A refused account operation; the message is for the admin, shown at ``field`` when
    it names one."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class ResetNotQueuedError(RuntimeError):
    """The task queue refused a password reset (Redis down): nothing will send it, so the
    person is told to ask again later. Whatever address was typed: no account is told apart."""


def authenticate(email: str, password: str) -> StaffUser | None:
    """The active account for these credentials, else None. Either way it is audited."""
    user = find_staff_by_email(email)
    # Always verify (against a dummy hash when there is no account): same work either way.
    password_ok = verify_password(user, password)
    ok = user is not None and password_ok and user.active
    if ok and user is not None:
        user.last_login_at = now_utc()
        if needs_rehash(user):
            user.password_hash = hash_password(password)
        if user.totp_enabled:  # the sign-in completes, and is audited, after the code
            record("login_password_ok", target_type="staff", target_id=user.id, actor=user)
        else:
            record("login", target_type="staff", target_id=user.id, actor=user)
    else:
        reason = (
            "unknown account"
            if user is None
            else ("inactive account" if not user.active else "wrong password")
        )
        record(
            "login_failed",
            target_type="staff",
            target_id=user.id if user else None,
            actor_email=user.email if user else typed_address(email),
            details={"reason": reason},
        )
    db.session.commit()
    return user if ok else None


def record_refused_password(user: StaffUser, asked_for: str) -> None:
    """Audit a wrong password typed by a signed-in account to confirm a sensitive change
    (``asked_for``): a session used by someone else shows as guessing there."""
    record(
        "password_check_failed",
        target_type="staff",
        target_id=user.id,
        actor=user,
        details={"for": asked_for},
    )
    db.session.commit()


NOT_AN_ADDRESS = "(not an email address)"


def typed_address(typed: str) -> str:
    """What the audit trail keeps of an address typed for no account: the address, so admins
    see who is being tried, but never text that is no address. A password typed into the
    email box would be kept in plain text for as long as the audit trail, readable by every
    admin."""
    address = typed.strip().lower()[:254]
    try:
        validate_email(address, check_deliverability=False)
    except EmailNotValidError:
        return NOT_AN_ADDRESS
    return address


def log_out(user: StaffUser) -> None:
    record("logout", target_type="staff", target_id=user.id, actor=user)
    db.session.commit()


# Who the audit trail names for a reset email the worker wrote: not the account, whose owner
# may not be the one who asked (the request's own row keeps what was typed, and from where).
RESET_ACTOR = "system:password-reset"


def request_password_reset(email: str) -> None:
    """Ask for a reset link for the address typed: the worker emails one if an active account
    has it (``send_password_reset``). The request itself does the same work whatever was
    typed, one audit row and one task, without looking the account up: neither the answer
    (the page tells everyone the same) nor its time tells who has an account here. Raises
    ResetNotQueuedError when the task queue cannot take it."""
    address = typed_address(email)
    record("password_reset_requested", actor_email=address)
    db.session.commit()
    try:
        current_app.extensions["spineconsult.send_password_reset"](address)
    except Exception as exc:  # the queue's own failure: say so, never a bare error page
        log.exception("could not hand a password reset to the task queue")
        raise ResetNotQueuedError from exc


RESET_TEMPLATE = "staff_password_reset"
# The token of a reset email's link (``send_password_reset``), as itsdangerous writes it.
RESET_LINK_RE = re.compile(r"/staff/password/reset/([A-Za-z0-9_.-]+)")
# What ``last_error`` says of a reset email not sent because its link had expired.
RESET_LINK_EXPIRED = "ResetLinkExpired"


def expired_at_delivery(email: OutboxEmail) -> str | None:
    """A password reset whose link has expired (``reset_token_expired``) by the time its
    email could go (the mail server away, the queue down: it is retried for
    MAIL_GIVE_UP_HOURS, far longer than PASSWORD_RESET_HOURS). Sent then, it would offer a
    link that only says it no longer works. Not sent, and failed (``RESET_LINK_EXPIRED``):
    it counts among the emails that failed on the staff pages' banner, and the staff member,
    who never got a link, asks for another (``notifications.services.
    register_expiry_check``)."""
    if email.template != RESET_TEMPLATE:
        return None
    found = RESET_LINK_RE.search(email.body_text or "")
    return RESET_LINK_EXPIRED if found and reset_token_expired(found.group(1)) else None


def dead_at_delivery(email: OutboxEmail) -> str | None:
    """A password reset whose link is over by the time its email could go, for a reason
    other than its age (``reset_token_holder``, as the reset page asks): the password was
    changed since (by a later link, or an admin), the account deactivated, or its address
    changed, so that the email, written to the old address, would no longer go to the
    account's (``recipient``). Sent then, it would be a link that only says it no longer
    works, to somebody who needs none: the password was set, the account closed, or the
    old mailbox is no longer the account's. Dropped unsent, not failed
    (``notifications.services.register_delivery_check``): nothing the staff member needs is
    lost (with the new address, they ask for a link there), so no failed email counts on
    the staff pages' banner for it. One that has only expired is ``expired_at_delivery``'s."""
    if email.template != RESET_TEMPLATE:
        return None
    found = RESET_LINK_RE.search(email.body_text or "")
    if found is None:
        return None
    holder = reset_token_holder(found.group(1))
    if holder is None or holder.email != email.recipient:
        return "reset link over: password, account or address changed since"
    return None


def send_password_reset(address: str) -> int | None:
    """The worker's half of ``request_password_reset``: write a one-time reset link for the
    active account with ``address`` to the outbox (audited as sent), and return the email's
    id for delivery; None, and nothing written, when no active account has it."""
    user = find_staff_by_email(address)
    if user is None or not user.active:
        return None
    token = make_reset_token(user)
    link = public_url(f"/staff/password/reset/{token}")
    clinic_locale = current_app.config["BABEL_DEFAULT_LOCALE"]  # staff read the clinic's
    with force_locale(clinic_locale):
        subject = _("Reset your %(clinic)s password", clinic=current_app.config["CLINIC_NAME"])
    email_row = queue_email(
        template=RESET_TEMPLATE,
        recipient=user.email,
        subject=subject,
        locale=clinic_locale,
        user=user,
        link=link,
        # Until when, not for how long: the email may go hours after it was written (the
        # mail server away), and the link's clock started with its token.
        expires_at=reset_token_expires_at(token),
    )
    record(
        "password_reset_sent",
        target_type="staff",
        target_id=user.id,
        actor_email=RESET_ACTOR,
        with_address=False,
    )
    db.session.flush()
    email_id = email_row.id
    db.session.commit()
    return email_id


def set_password(user: StaffUser, password: str, *, actor: StaffUser | None = None) -> None:
    """Set a new password and sign the account out of every other session."""
    user.password_hash = hash_password(password)
    user.session_token = new_session_token()
    end_all_sessions(user, "password_changed")
    record("password_changed", target_type="staff", target_id=user.id, actor=actor or user)
    db.session.commit()


def create_staff(
    *, email: str, full_name: str, role: StaffRole, password: str, actor: StaffUser | None
) -> StaffUser:
    email = email.strip().lower()
    if find_staff_by_email(email) is not None:
        raise StaffAccountError(_("An account with this email address already exists."))
    user = StaffUser(
        email=email,
        full_name=full_name.strip(),
        role=role,
        password_hash=hash_password(password),
        active=True,
    )
    db.session.add(user)
    try:
        db.session.flush()
    except IntegrityError:
        # Another admin created the account a moment ago (two tabs, two admins): the unique
        # address refuses the twin, said like the one found above, not as a server error.
        db.session.rollback()
        raise StaffAccountError(_("An account with this email address already exists.")) from None
    record(
        "staff_created",
        target_type="staff",
        target_id=user.id,
        actor=actor,
        details={"email": email, "role": str(role), "full_name": user.full_name},
    )
    db.session.commit()
    return user


def set_staff_active(user: StaffUser, active: bool, *, actor: StaffUser) -> None:
    if user.id == actor.id and not active:
        raise StaffAccountError(_("You cannot deactivate your own account."))
    if user.active == active:
        return
    user.active = active
    user.session_token = new_session_token()  # signs a deactivated account out at once
    if not active:
        end_all_sessions(user, "deactivated")
    record(
        "staff_activated" if active else "staff_deactivated",
        target_type="staff",
        target_id=user.id,
        actor=actor,
        details={"active": {"before": not active, "after": active}},
    )
    db.session.commit()


def set_staff_role(user: StaffUser, role: StaffRole, *, actor: StaffUser) -> bool:
    """Give ``user`` another role; False when it already was theirs. Audited.

    The account is signed out everywhere, so its next sign-in follows the new role's rules
    (two-factor sign-in, what it may see). An admin cannot change their own role, so an
    active administrator always remains.
    """
    if user.id == actor.id:
        raise StaffAccountError(_("You cannot change your own role."))
    if user.role == role:
        return False
    before = user.role
    user.role = role
    user.session_token = new_session_token()
    end_all_sessions(user, "role_changed")
    record(
        "staff_role_changed",
        target_type="staff",
        target_id=user.id,
        actor=actor,
        details={"role": {"before": str(before), "after": str(role)}},
    )
    db.session.commit()
    return True


def details_mark(user: StaffUser) -> str:
    """A short mark of ``user``'s name and address as a page shows them, for its form to
    send back (``correct_staff_details``)."""
    return text_digest(f"{user.full_name}\n{user.email}")[:16]


def two_factor_mark(user: StaffUser) -> str:
    """A short mark of ``user``'s two-factor sign-in as a page shows it, for its form to send
    back (``reset_two_factor``): it changes with every code used and every new enrolment (a
    new secret), even one that lands on the same time step as before. Keyed with the app's
    secret, so the page holds nothing derived from the TOTP secret alone."""
    state = f"{user.totp_secret or ''}\n{user.totp_last_step}".encode()
    key = str(current_app.secret_key).encode()
    return hmac.new(key, state, hashlib.sha256).hexdigest()[:16]


def correct_staff_details(
    user: StaffUser, *, full_name: str, email: str, shown: str, actor: StaffUser
) -> list[str]:
    """Correct a colleague's name and email address (a typo): the same account, so their
    schedule, appointments and history stay theirs. Returns the fields changed (none: nothing
    written). The address is kept lower-case and must be no other account's. A changed
    address signs them out everywhere (also a sign-in waiting for its code) and ends the
    password reset links sent to the old one (``make_reset_token``), and is emailed to the old
    address and the new one (``_queue_email_changed``). Audited with the names
    of the fields changed, not their values, as the patient contact correction is: the row
    names the account, and staff addresses in the audit trail are reduced after
    AUDIT_ADDRESS_DAYS, which values kept in its details would escape.

    ``shown`` is ``details_mark`` of the account as the admin's page showed it: when another
    admin corrected it since, nothing is written and the admin is asked to check."""
    if user.id == actor.id:
        raise StaffAccountError(_("You cannot change your own account here."))
    if shown != details_mark(user):
        raise StaffAccountError(
            naming(
                _(
                    "Another administrator changed this account since the page was shown: it "
                    "is now %(name)s, %(email)s. Check the name and address below, then save "
                    "again."
                ),
                name=isolated(user.full_name),
                email=isolated(user.email),
            ),
            field="shown",
        )
    return _change_details(user, full_name=full_name, email=email, actor=actor)


def change_own_details(
    user: StaffUser, *, full_name: str, email: str, password: str, shown: str
) -> list[str]:
    """A signed-in staff member corrects their own name and email address (a lone admin's
    typo has nobody else to correct it), as ``correct_staff_details`` does for an admin:
    the same rules, audit row and emails. A new address also needs their current password,
    typed again: a session left open (or taken) must not move the account's address, and
    with it its password reset links, elsewhere. A wrong password is audited
    (``record_refused_password``) and changes nothing.

    ``shown`` is ``details_mark`` of the account as the page showed it: when it was changed
    since (by an admin, or on another page), nothing is written."""
    if shown != details_mark(user):
        raise StaffAccountError(
            naming(
                _(
                    "Your account was changed since the page was shown: it is now %(name)s, "
                    "%(email)s. Check the name and address below, then save again."
                ),
                name=isolated(user.full_name),
                email=isolated(user.email),
            ),
            field="shown",
        )
    if email.strip().lower() != user.email:
        if not password:
            raise StaffAccountError(
                _("Please enter your current password to change your email address."),
                field="password",
            )
        if not verify_password(user, password):
            record_refused_password(user, "email address change")
            raise StaffAccountError(_("That password is not right."), field="password")
    return _change_details(user, full_name=full_name, email=email, actor=user)


def _change_details(user: StaffUser, *, full_name: str, email: str, actor: StaffUser) -> list[str]:
    email = email.strip().lower()
    full_name = full_name.strip()
    changed = [
        name
        for name, before, after in (
            ("full_name", user.full_name, full_name),
            ("email", user.email, email),
        )
        if before != after
    ]
    if not changed:
        return []
    taken = _("Another account already uses this email address.")
    if "email" in changed:
        other = find_staff_by_email(email)
        if other is not None and other.id != user.id:
            raise StaffAccountError(taken, field="email")
    old_email = user.email
    user.full_name = full_name
    user.email = email
    try:
        db.session.flush()
    except IntegrityError:
        # Another admin gave that address to an account a moment ago: refused at the field,
        # like the one found above, not as a server error.
        db.session.rollback()
        raise StaffAccountError(taken, field="email") from None
    email_ids: list[int] = []
    if "email" in changed:
        user.session_token = new_session_token()
        end_all_sessions(user, "email_changed")
        email_ids = _queue_email_changed(user, old=old_email, actor=actor)
    record(
        "staff_details_corrected",
        target_type="staff",
        target_id=user.id,
        actor=actor,
        # The notices' ids (to the old address, then the new): the accounts page names the
        # account of one that could not be sent (``unsent_account_notices``).
        details={"changed": changed, **({"notice_email_ids": email_ids} if email_ids else {})},
    )
    db.session.commit()
    enqueue_delivery(email_ids)
    return changed


EMAIL_CHANGED_TEMPLATE = "staff_email_changed"
TWO_FACTOR_RESET_TEMPLATE = "staff_two_factor_reset"
# The emails to a staff member about their own account: no patient's, so a failed one is
# not on the queue's "Patient not notified" list. The notices (of a changed address, of a
# two-factor reset) are on the admins' accounts page (``unsent_account_notices``); a reset
# link is asked for again.
NOTICE_TEMPLATES = frozenset({EMAIL_CHANGED_TEMPLATE, TWO_FACTOR_RESET_TEMPLATE})
ACCOUNT_TEMPLATES = frozenset({RESET_TEMPLATE, *NOTICE_TEMPLATES})
# The audit rows that name the notices written with them (``notice_email_ids``), and the
# one that records an admin dealing with a failed notice, by the notice's template.
_NOTICE_ACTIONS = ("staff_details_corrected", "two_factor_reset")


@dataclass(frozen=True)
class UnsentNotice:
    """A notice about a staff account that failed for good, as the accounts page lists it
    (``unsent_account_notices``): of a changed sign-in address, or of a two-factor reset."""

    email_id: int
    recipient: str
    written_at: datetime
    two_factor_reset: bool  # a notice of a two-factor reset; else of a changed address
    # The account it is about, and whether a changed address's notice went to its old
    # address; None when its audit row does not name it (one written before the rows named
    # notices), and ``to_old_address`` always for a two-factor reset's.
    account: StaffUser | None
    to_old_address: bool | None


def unsent_account_notices() -> list[UnsentNotice]:
    """The notices about a staff account (``NOTICE_TEMPLATES``) that failed for good and
    that no admin has dealt with (``settled_at``), oldest first. A changed address's to the
    old address is how its owner learns of an account taken over by moving its address; the
    one to the new address failing may mean a mistyped address, where reset links now go. A
    two-factor reset's is how its owner learns of a reset they did not ask for. None is sent
    again, no request's record shows them, and the staff pages' banner counts a failed email
    for a day only, without saying which: the admins' accounts page lists them until one of
    them deals with it (``settle_account_notice``). One query when there are none."""
    failed = list(
        db.session.scalars(
            select(OutboxEmail)
            .where(
                OutboxEmail.template.in_(sorted(NOTICE_TEMPLATES)),
                OutboxEmail.status == OutboxStatus.FAILED,
                OutboxEmail.settled_at.is_(None),
            )
            .order_by(OutboxEmail.id)
        )
    )
    if not failed:
        return []
    accounts = _notice_accounts(failed[0].created_at)
    notices = []
    for email in failed:
        user_id, to_old = accounts.get(email.id) or _unnamed_notice_account(email)
        two_factor = email.template == TWO_FACTOR_RESET_TEMPLATE
        notices.append(
            UnsentNotice(
                email_id=email.id,
                recipient=email.recipient,
                written_at=email.created_at,
                two_factor_reset=two_factor,
                account=db.session.get(StaffUser, user_id) if user_id is not None else None,
                to_old_address=None if two_factor else to_old,
            )
        )
    return notices


def _notice_accounts(since: datetime) -> dict[int, tuple[int, bool]]:
    """By notice id, the account it is about and whether it went to the first address its
    audit row names (a changed address's old one): read from the audit rows written with
    notices written ``since`` on (in the same transaction: a minute's margin for nothing but
    safety)."""
    found: dict[int, tuple[int, bool]] = {}
    for event in db.session.scalars(
        select(AuditEvent).where(
            AuditEvent.action.in_(_NOTICE_ACTIONS),
            AuditEvent.occurred_at >= since - timedelta(minutes=1),
        )
    ):
        if not (event.target_id or "").isdigit():
            continue
        for position, email_id in enumerate((event.details or {}).get("notice_email_ids", [])):
            found[email_id] = (int(event.target_id or 0), position == 0)
    return found


def _unnamed_notice_account(email: OutboxEmail) -> tuple[int | None, bool | None]:
    """The account of a two-factor reset's notice that no audit row names: one written
    before the reset's audit row named its notice. That row was written in the same
    transaction as the notice, its target the account, so the account is the target of the
    one such row (a reset's naming no notice) written within a minute of it; of several (two
    resets that close together), the one whose account still has the notice's address.
    (None, None) when no row, or no single one, answers: the page says the account is
    unknown. A changed address's notices cannot be told apart so (both addresses' were
    written together, and the account's address has changed since): unknown too."""
    if email.template != TWO_FACTOR_RESET_TEMPLATE:
        return None, None
    margin = timedelta(minutes=1)
    candidates = {
        int(event.target_id or 0)
        for event in db.session.scalars(
            select(AuditEvent).where(
                AuditEvent.action == "two_factor_reset",
                AuditEvent.occurred_at.between(
                    email.created_at - margin, email.created_at + margin
                ),
            )
        )
        if (event.target_id or "").isdigit() and "notice_email_ids" not in (event.details or {})
    }
    if len(candidates) > 1:
        candidates = set(
            db.session.scalars(
                select(StaffUser.id).where(
                    StaffUser.id.in_(sorted(candidates)), StaffUser.email == email.recipient
                )
            )
        )
    return (candidates.pop(), True) if len(candidates) == 1 else (None, None)


def settle_account_notice(email_id: int | None, *, actor: StaffUser) -> bool:
    """Take a failed notice about a staff account off the accounts page: an admin has dealt
    with it (told its owner another way, or found the old address was a mistyped one nobody
    reads). Audited, on the account; it also leaves the banner's count of failed emails.
    False, and nothing written, when it is no such notice or another admin dealt with it
    first."""
    email = db.session.get(OutboxEmail, email_id) if email_id is not None else None
    if email is None or email.template not in NOTICE_TEMPLATES:
        return False
    settled = db.session.execute(
        update(OutboxEmail)
        .where(
            OutboxEmail.id == email.id,
            OutboxEmail.status == OutboxStatus.FAILED,
            OutboxEmail.settled_at.is_(None),
        )
        .values(settled_at=now_utc())
    ).rowcount
    if settled:
        account = _notice_accounts(email.created_at).get(email.id)
        if account is None:
            user_id, _to_old = _unnamed_notice_account(email)
            account = None if user_id is None else (user_id, True)
        record(
            "two_factor_notice_settled"
            if email.template == TWO_FACTOR_RESET_TEMPLATE
            else "address_notice_settled",
            target_type="staff",  # the account, unless a notice from before rows named it
            target_id=account[0] if account else None,
            actor=actor,
            details={"notice_email_id": email.id},
        )
    db.session.commit()
    return bool(settled)


def _queue_email_changed(user: StaffUser, *, old: str, actor: StaffUser) -> list[int]:
    """Write to the outbox, in the caller's transaction, the notice of a changed sign-in
    address: to the old address, whose owner may not have asked for it (an account taken over
    starts by moving its address, so that password reset links go to the taker), and to the
    new one. It says what changed, by whom, when, and whom to tell if it was not expected:
    the clinic's other active administrators by name, and its phone. The ids (the old
    address's, then the new one's), for delivery after the commit."""
    clinic_locale = current_app.config["BABEL_DEFAULT_LOCALE"]  # staff read the clinic's
    with force_locale(clinic_locale):
        subject = _(
            "The email address of your %(clinic)s staff account was changed",
            clinic=current_app.config["CLINIC_NAME"],
        )
    admins = list(
        db.session.scalars(
            select(StaffUser.full_name)
            .where(
                StaffUser.role == StaffRole.ADMIN,
                StaffUser.active.is_(True),
                StaffUser.id != user.id,
            )
            .order_by(StaffUser.full_name)
        )
    )
    rows = [
        queue_email(
            template=EMAIL_CHANGED_TEMPLATE,
            recipient=recipient,
            subject=subject,
            locale=clinic_locale,
            user=user,
            old_email=old,
            new_email=user.email,
            actor_name=actor.full_name,
            by_themselves=actor.id == user.id,
            changed_at=now_utc(),
            admins=admins,
            to_old_address=recipient == old,
        )
        for recipient in (old, user.email)
    ]
    db.session.flush()
    return [row.id for row in rows]


class TwoFactorChangedError(StaffAccountError):
    """The colleague's two-factor sign-in is not as the admin's page showed it: they used a
    code or set it up again since. Nothing was reset."""


def reset_two_factor(user: StaffUser, *, actor: StaffUser, shown: str) -> bool:
    """Remove ``user``'s two-factor sign-in (a lost phone with lost recovery codes): the
    secret and every recovery code go, every session of theirs ends (and a sign-in waiting
    for its code), and their next sign-in asks them to enrol again when their role requires
    it. Audited (who, whom; never the secret) and emailed to them in the same transaction,
    so a reset they did not expect is noticed. An admin replaces their own from the
    two-factor page, with their password, not here. False when there was nothing to reset
    (already reset from another page, or never set up): nothing changes then.

    ``shown`` is ``two_factor_mark`` of the account as the admin's page showed it: an older
    page's post (the colleague signed in with a code, or enrolled a new phone, since) is
    refused with TwoFactorChangedError rather than undoing what they just did. A deactivated
    account's is not reset (StaffAccountError): reactivated first, if it is to be used."""
    if user.id == actor.id:
        raise StaffAccountError(
            _("You cannot reset your own two-factor sign-in here: set it up again instead.")
        )
    # The row locked (PostgreSQL) like a sign-in code's check: a code being checked now is
    # judged before the reset, or refused after it, never half of each.
    db.session.refresh(user, with_for_update=True)
    if not user.active:
        # Nobody signs in with it: a reset would only email an address that may no longer be
        # theirs (someone who left) that their account was changed.
        db.session.rollback()
        raise StaffAccountError(
            naming(
                _(
                    "The account of %(name)s is deactivated: nothing was reset. If they are to "
                    "sign in again, reactivate the account first, then reset their two-factor "
                    "sign-in."
                ),
                name=isolated(user.full_name),
            )
        )
    if not user.totp_enabled and user.totp_secret is None:
        db.session.rollback()
        return False
    if not hmac.compare_digest(shown.encode(), two_factor_mark(user).encode()):
        db.session.rollback()
        raise TwoFactorChangedError(
            naming(
                _(
                    "%(name)s used or set up two-factor sign-in since the page was shown: "
                    "nothing was reset. Check that it is still needed, then reset it again."
                ),
                name=isolated(user.full_name),
            )
        )
    user.totp_secret = None
    user.totp_enabled = False
    user.totp_last_step = 0
    codes = db.session.execute(delete(RecoveryCode).where(RecoveryCode.staff_id == user.id))
    user.session_token = new_session_token()  # also ends a sign-in waiting for its code
    end_all_sessions(user, "two_factor_reset")
    clinic_locale = current_app.config["BABEL_DEFAULT_LOCALE"]  # staff read the clinic's
    with force_locale(clinic_locale):
        subject = _(
            "Your %(clinic)s two-factor sign-in was reset", clinic=current_app.config["CLINIC_NAME"]
        )
    email_row = queue_email(
        template=TWO_FACTOR_RESET_TEMPLATE,
        recipient=user.email,
        subject=subject,
        locale=clinic_locale,
        user=user,
        admin_name=actor.full_name,
        enrol_required=user.needs_second_factor,
        link=public_url("/staff/login"),
    )
    db.session.flush()
    email_id = email_row.id
    record(
        "two_factor_reset",
        target_type="staff",
        target_id=user.id,
        actor=actor,
        # The notice's id: the accounts page names the account of one that could not be
        # sent (``unsent_account_notices``).
        details={"recovery_codes_removed": codes.rowcount, "notice_email_ids": [email_id]},
    )
    db.session.commit()
    enqueue_delivery([email_id])
    return True


def list_staff() -> list[StaffUser]:
    return list(db.session.scalars(select(StaffUser).order_by(StaffUser.full_name)))


def active_specialists() -> list[StaffUser]:
    return list(
        db.session.scalars(
            select(StaffUser)
            .where(StaffUser.role == StaffRole.SPECIALIST, StaffUser.active.is_(True))
            .order_by(StaffUser.full_name)
        )
    )


def active_admin_emails() -> list[str]:
    """Where alerts for administrators go (unusual access, erasure requests)."""
    return list(
        db.session.scalars(
            select(StaffUser.email).where(
                StaffUser.role == StaffRole.ADMIN, StaffUser.active.is_(True)
            )
        )
    )


def set_two_factor_roles(roles: set[str], *, actor: StaffUser) -> set[str]:
    """Require two-factor sign-in for ``roles`` (on top of the deployment's own floor).

    Accounts of a newly required role are asked to enrol at their next page. Audited.
    """
    valid = {role.value for role in StaffRole}
    chosen = sorted(roles & valid)
    before = sorted(two_factor_required_roles())
    settings = db.session.get(SecuritySettings, 1)
    if settings is None:
        settings = SecuritySettings(id=1)
        db.session.add(settings)
    settings.two_factor_roles = ",".join(chosen)
    db.session.flush()
    g.pop("two_factor_roles", None)
    after = sorted(two_factor_required_roles())
    diff = changes({"two_factor_roles": ", ".join(before)}, {"two_factor_roles": ", ".join(after)})
    if diff:
        record("two_factor_policy_updated", target_type="clinic", details=diff, actor=actor)
    db.session.commit()
    return set(after)
