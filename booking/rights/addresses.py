"""The patient's email address changed: by staff, as they learnt it
(``booking.dashboard.services.correct_contact``), or by the patient on their private page,
once the new mailbox has confirmed it (rectification, GDPR Art. 16).

Both go through ``readdress``, so a new address has the same effects whoever changed it:
every private link sent so far ends, the emails waiting for the old address go to the new
one with new links, one email with a new link goes there, and the old address is told of
the change with no link.

The patient's own change waits for proof that the new mailbox is theirs: an email to it
with a one-time link (``EmailChange``; the token is kept only as its SHA-256, as a private
link's is), which works for ``CONFIRM_HOURS``. Opening it shows a page with a button (mail
scanners open links; a GET changes nothing); pressing it makes the change. A second request
replaces the first, whose link stops working; any change of the address (staff's too) ends
a link still waiting.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy import delete, select

from booking.audit.services import record
from booking.crypto import text_digest
from booking.extensions import db
from booking.notifications.models import OutboxEmail
from booking.notifications.services import enqueue_delivery, queue_email, withdraw_pending
from booking.outcomes.services import readdress_followups
from booking.requests import emails, withdrawals
from booking.requests.events import EventKind
from booking.requests.lifecycle import PATIENT, add_event
from booking.requests.links import TOKEN_BYTES, links_work, revoke_all
from booking.requests.models import ConsultationRequest
from booking.requests.queries import lock_request
from booking.rights.models import EmailChange
from booking.templating import clinic_phone_after
from booking.timeutil import now_utc
from booking.urlargs import public_url

# How long the confirmation link works: long enough to find the email the next day.
CONFIRM_HOURS = 24
# The confirmation email's template (to the new address): one of the patient's emails, so
# it is withdrawn, or dropped at delivery, once the patient is marked deceased; withdrawn
# too when its link ends unused (``end_waiting_changes``).
CONFIRM_TEMPLATE = emails.EMAIL_CHANGE_CONFIRM


@dataclass(frozen=True)
class Readdressed:
    """What ``readdress`` did: how many private links stopped working, the emails written
    to the new address (the waiting ones again, the new link), the old address's notice,
    whether a new link went, and, when none went though the patient may be written to,
    ``page_closed``: the request's links have expired (``links.links_work``)."""

    links_revoked: int
    written: list[OutboxEmail]
    notice: OutboxEmail | None
    link_sent: bool
    page_closed: bool

    def consequences(self) -> str:
        """What followed, for the timeline (staff read it: in English, as its notes)."""
        if self.link_sent:
            text = (
                "every earlier private link stopped working, and the emails to the patient "
                "now go to the new address, with a new link."
            )
        elif self.page_closed:
            text = (
                "every earlier private link stopped working. No new link was sent: the "
                "request is closed and its page no longer opens."
            )
        else:
            text = (
                "every earlier private link stopped working. No email went: the patient is "
                "marked deceased."
            )
        if self.notice is not None:
            # Written now, delivered later or never: the note says what is true now, and the
            # timeline's delivery badge of the notice what became of it.
            text += (
                " An email telling the old address of the change, with no link, was written "
                "to the outbox."
            )
        return text


def readdress(
    consultation: ConsultationRequest, new_email: str, now: datetime, *, by_patient: bool = False
) -> Readdressed:
    """Give the patient of ``consultation`` (locked by the caller) the address ``new_email``
    with every effect a new address has: the old address may be somebody else's mailbox,
    whose links would go on opening the patient's page, so every private link and
    follow-up link sent so far ends; the emails waiting for delivery to it go to the new
    address instead, each with a new link (``emails.readdress_waiting``); one email with a
    new private link tells the patient where their request is (none when the patient is
    marked deceased, as every email to them, nor when the request's page no longer opens);
    the old address is told of the change with no link (``emails.address_changed``):
    whoever asked may not have been the patient. A confirmation link still waiting
    (``EmailChange``) stops working: it was asked for under the old address. Flushes; the
    caller commits, and hands ``written`` and ``notice`` to the worker.

    ``by_patient``: the patient changed it themselves, and the new link's email says so."""
    patient = consultation.patient
    old_email = patient.email or ""
    patient.email = new_email
    # Before the new emails are written: their links must not end with the old ones.
    revoked = revoke_all(consultation)
    written = emails.readdress_waiting(consultation, old_email) if old_email else []
    # The follow-up questionnaires' links too; one still open is sent to the new address.
    written += readdress_followups(consultation, written)
    # A link to a page that no longer opens (a request closed past its links' time, as one
    # whose follow-up questionnaires still go out) would only puzzle the patient.
    page_closed = patient.writable_address is not None and not links_work(consultation)
    link_sent = False
    if not page_closed and (
        link_email := emails.new_link(consultation, corrected=True, by_patient=by_patient)
    ):
        written.append(link_email)
        link_sent = True
    notice = emails.address_changed(consultation, old_email, now)
    end_waiting_changes(consultation)
    db.session.flush()
    return Readdressed(revoked, written, notice, link_sent, page_closed)


def end_waiting_changes(consultation: ConsultationRequest) -> int:
    """The confirmation links of new addresses asked for and not confirmed stop working:
    the address changed meanwhile, or staff ended every private link (one forwarded may
    have been used to ask for a stranger's address). Their confirmation emails not sent yet
    are withdrawn (``withdraw_pending``), as the patient's other outdated emails are: one
    delivered now would hold a link that answers "gone". How many. Flushes; the caller
    commits."""
    ended = (
        db.session.execute(
            delete(EmailChange).where(
                EmailChange.request_id == consultation.id, EmailChange.used_at.is_(None)
            )
        ).rowcount
        or 0
    )
    withdraw_pending(consultation.id, frozenset({CONFIRM_TEMPLATE}), reason=withdrawals.LINK_ENDED)
    return ended


# --- the patient's own change, confirmed from the new mailbox ---------------------------------


class EmailChangeError(ValueError):
    """A change not made; the message is for the patient."""


def _same_address(one: str | None, other: str | None) -> bool:
    # Mail systems treat an address's case as one mailbox: "Ana@X.es" is no new address.
    return (one or "").strip().casefold() == (other or "").strip().casefold()


def pending_change(consultation: ConsultationRequest) -> EmailChange | None:
    """The change the patient asked for whose link still works, if any (for their page)."""
    return db.session.scalar(
        select(EmailChange).where(
            EmailChange.request_id == consultation.id,
            EmailChange.used_at.is_(None),
            EmailChange.expires_at > now_utc(),
        )
    )


def confirm_url(token: str) -> str:
    return public_url(f"/manage/confirm-address/{token}")


def request_email_change(consultation: ConsultationRequest, new_email: str) -> EmailChange:
    """The patient asks for ``new_email`` (a shape the form has checked) on their private
    page: nothing changes yet. An email with a one-time link goes to the new address; the
    address changes only when that link is used (``confirm_email_change``), within
    ``CONFIRM_HOURS``. A change asked for before and not confirmed is replaced: its link
    stops working. Refused for the address the patient has already, and for a patient
    nothing may be sent to (``Patient.writable_address``). Audited without the address."""
    consultation = lock_request(consultation)
    patient = consultation.patient
    db.session.refresh(patient)  # a colleague may have corrected it since the page loaded
    new_email = new_email.strip()
    if patient.writable_address is None:
        db.session.rollback()
        raise EmailChangeError(
            _(
                "Your email address cannot be changed online. Please call the clinic%(phone)s.",
                phone=clinic_phone_after(),
            )
        )
    if _same_address(patient.email, new_email):
        db.session.rollback()
        raise EmailChangeError(_("That is your email address already. Please enter the new one."))
    replaced = end_waiting_changes(consultation)
    token = secrets.token_urlsafe(TOKEN_BYTES)
    now = now_utc()
    change = EmailChange(
        request_id=consultation.id,
        new_email=new_email,
        token_hash=text_digest(token),
        created_at=now,
        expires_at=now + timedelta(hours=CONFIRM_HOURS),
    )
    db.session.add(change)
    email = _confirmation_email(consultation, new_email, token)
    record(
        "patient_email_change_asked",
        target_type="request",
        target_id=consultation.reference,
        actor_email=PATIENT,
        details={"replaced": bool(replaced)},
    )
    db.session.commit()
    enqueue_delivery([email.id])
    return change


def _confirmation_email(
    consultation: ConsultationRequest, new_email: str, token: str
) -> OutboxEmail:
    """To the new address: the reference and the link, never the patient's name, their old
    address or a medical detail: a mistyped address is a stranger's mailbox."""
    with force_locale(consultation.locale):
        subject = _(
            "Confirm your new email address (request %(reference)s)",
            reference=consultation.reference,
        )
    return queue_email(
        template=CONFIRM_TEMPLATE,
        recipient=new_email,
        subject=subject,
        locale=consultation.locale,
        request_id=consultation.id,
        consultation=consultation,
        confirm_url=confirm_url(token),
        hours=CONFIRM_HOURS,
    )


def change_for_token(token: str) -> EmailChange | None:
    """The change whose confirmation link has this token (used, expired or not), or None:
    unknown, or replaced by a newer request (its row is gone)."""
    if not token or len(token) > 100:
        return None
    return db.session.scalar(
        select(EmailChange).where(EmailChange.token_hash == text_digest(token))
    )


def link_state(change: EmailChange | None) -> str:
    """How a confirmation link stands: "gone" (unknown, replaced, or the patient may no
    longer be written to), "closed" (the request's page no longer opens, as its private
    links do not: ``links.links_work``), "used", "expired" or "open"."""
    if change is None:
        return "gone"
    consultation = db.session.get(ConsultationRequest, change.request_id)
    if consultation is None:
        return "gone"
    if not links_work(consultation):
        return "closed"
    if change.used_at is not None:
        return "used"
    if change.expires_at <= now_utc():
        return "expired"
    if consultation.patient.writable_address is None:  # marked deceased since
        return "gone"
    return "open"


def confirm_email_change(token: str) -> str:
    """The new mailbox confirmed it (the button on the link's page): the patient's address
    becomes the new one, through ``readdress`` as staff's correction does. The link is
    checked again under the request's lock; returns "changed" when the change was made now,
    else why nothing changed (``link_state``). The timeline and the audit
    say the patient changed it (the audit without either address)."""
    change = change_for_token(token)
    if change is None:
        return "gone"
    consultation = lock_request(db.session.get_one(ConsultationRequest, change.request_id))
    db.session.refresh(consultation.patient)
    change = change_for_token(token)  # read again under the lock: a second click, a replacement
    state = link_state(change)
    if state != "open" or change is None:
        db.session.rollback()
        return state
    now = now_utc()
    change.used_at = now
    done = readdress(consultation, change.new_email, now, by_patient=True)
    consultation.updated_at = now
    add_event(
        consultation,
        kind=EventKind.NOTE,
        actor=None,
        body="The patient changed their email address on their private page, confirmed from "
        f"the new address; {done.consequences()}",
    )
    db.session.flush()
    ids = [row.id for row in done.written]
    record(
        "patient_email_changed",
        target_type="request",
        target_id=consultation.reference,
        actor_email=PATIENT,
        details={
            "links_revoked": done.links_revoked,
            "new_email_ids": ids,
            **({"notice_email_id": done.notice.id} if done.notice is not None else {}),
        },
    )
    db.session.commit()
    enqueue_delivery([*ids, *([done.notice.id] if done.notice is not None else [])])
    return "changed"


def purge_expired_email_changes(now: datetime | None = None) -> int:
    """Delete every change whose link has expired, used or not: its address is either the
    patient's now or one they never confirmed. How many."""
    deleted = db.session.execute(
        delete(EmailChange).where(EmailChange.expires_at <= (now or now_utc()))
    ).rowcount
    db.session.commit()
    return deleted or 0
