"""The trace an email withdrawn unsent leaves on its request's timeline.

A change that outdates an email not sent yet withdraws it (``notifications.services``): its
outbox row is deleted, and the record's timeline, which listed it as waiting, would keep no
sign that the patient was never sent it. Each withdrawal is recorded in the audit trail, one
row per email (``EMAIL_WITHDRAWN``: which email, its template and subject, why), and the
timeline reads those rows (``traces``). No table of its own: the audit trail already is the
request's record of what was done, append-only, and found by its reference.

Rows written before this trace existed kept only how many emails a change withdrew
(``emails_withdrawn`` in the change's own row): they are shown as that count.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask_babel import lazy_gettext as _l
from flask_babel.speaklater import LazyString
from sqlalchemy import or_, select

from booking.audit.models import AuditEvent
from booking.audit.services import record
from booking.extensions import db
from booking.notifications.services import Withdrawn
from booking.requests.models import ConsultationRequest

EMAIL_WITHDRAWN = "email_withdrawn"
# The count a change's own audit row keeps of the emails it withdrew.
COUNT_KEY = "emails_withdrawn"

# Why an email was withdrawn: the word its withdrawal passes (``reason``), stored in the
# audit row; the label is what the timeline says.
REPLACED = "replaced"
OUTDATED = "outdated"
ASK_CLOSED = "ask_closed"
OFFERS_ENDED = "offers_ended"
CONSENT_WITHDRAWN = "consent_withdrawn"
DECEASED = "deceased"
READDRESSED = "readdressed"
REWRITTEN = "rewritten"
LINK_ENDED = "link_ended"
COMBINED = "combined"

REASON_LABELS: dict[str, LazyString] = {
    REPLACED: _l("replaced by the email of a later change"),
    OUTDATED: _l("outdated by a change of the request"),
    ASK_CLOSED: _l("the request for information ended with a change of the request"),
    OFFERS_ENDED: _l("the earlier-time offers ended"),
    CONSENT_WITHDRAWN: _l("the patient withdrew their consent to be contacted"),
    DECEASED: _l("the patient was marked deceased"),
    READDRESSED: _l("written again to the corrected address"),
    REWRITTEN: _l("written again as the appointment now is"),
    LINK_ENDED: _l("the link it held to confirm a new address ended"),
    COMBINED: _l("replaced by a receipt that counts the later documents too"),
}
# A withdrawal that named no reason, or one this version does not know.
UNKNOWN_REASON = _l("outdated by a later change")


def note_withdrawn(withdrawn: list[Withdrawn], *, reason: str | None = None, **_: Any) -> None:
    """An ``emails_withdrawn`` listener: one audit row for each email of a request withdrawn,
    in the withdrawing transaction (it goes or stays with the change). An email of no
    request (a staff member's) leaves none: no timeline shows it."""
    for email in withdrawn:
        if email.request_id is None:
            continue
        consultation = db.session.get(ConsultationRequest, email.request_id)
        if consultation is None:
            continue
        record(
            EMAIL_WITHDRAWN,
            target_type="request",
            target_id=consultation.reference,
            # The change's own row has whose address it was; this one follows from it.
            with_address=False,
            details={
                "email": email.id,
                "template": email.template,
                "subject": email.subject,
                **({"reason": reason} if reason else {}),
                **({"while_sending": True} if email.while_sending else {}),
            },
        )


@dataclass(frozen=True)
class Trace:
    """A line of the timeline for emails withdrawn: one email (``subject``), or an older
    change's count of them (``subject`` None, ``count``)."""

    at: datetime
    subject: str | None
    reason: str | None
    count: int = 1
    # Withdrawn while a worker was sending it: it went out if past stopping, and then the
    # timeline lists it as sent too.
    while_sending: bool = False


def traces(consultation: ConsultationRequest) -> list[Trace]:
    """The request's emails withdrawn unsent, oldest first: each from its own audit row;
    a change's count of them from before those rows were written (its row is older than
    the request's first ``EMAIL_WITHDRAWN``: a later change's count names emails that have
    rows of their own, written before its row in the same transaction)."""
    rows = db.session.scalars(
        select(AuditEvent)
        .where(
            AuditEvent.target_type == "request",
            AuditEvent.target_id == consultation.reference,
            or_(
                AuditEvent.action == EMAIL_WITHDRAWN,
                AuditEvent.details[COUNT_KEY].as_integer().is_not(None),
            ),
        )
        .order_by(AuditEvent.id)
    ).all()
    itemised = [row.id for row in rows if row.action == EMAIL_WITHDRAWN]
    first = min(itemised, default=None)
    found = []
    for row in rows:
        details = row.details or {}
        if row.action == EMAIL_WITHDRAWN:
            reason = details.get("reason")
            found.append(
                Trace(
                    row.occurred_at,
                    str(details.get("subject") or ""),
                    str(REASON_LABELS.get(reason, UNKNOWN_REASON)),
                    while_sending=bool(details.get("while_sending")),
                )
            )
        elif first is None or row.id < first:
            count = details.get(COUNT_KEY)
            if isinstance(count, int) and count > 0:
                found.append(Trace(row.occurred_at, None, None, count=count))
    return found
