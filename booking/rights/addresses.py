"""The patient's email address changed: by staff, as they learnt it
(``booking.dashboard.services.correct_contact``), or by the patient on their private page,
once the new mailbox has confirmed it (rectification, GDPR Art. 16).

Both go through ``readdress``, so a new address has the same effects whoever changed it:
every private link sent so far ends, the emails waiting for the old address go to the new
one with new links, one email with a new link goes there, and the old address is told of
the change with no link.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete

from booking.extensions import db
from booking.notifications.models import OutboxEmail
from booking.outcomes.services import readdress_followups
from booking.requests import emails
from booking.requests.links import links_work, revoke_all
from booking.requests.models import ConsultationRequest
from booking.rights.models import EmailChange


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
    have been used to ask for a stranger's address). How many. The caller commits."""
    return (
        db.session.execute(
            delete(EmailChange).where(
                EmailChange.request_id == consultation.id, EmailChange.used_at.is_(None)
            )
        ).rowcount
        or 0
    )
