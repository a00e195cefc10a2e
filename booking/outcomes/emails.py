"""The follow-up emails to the patient, in the patient's language: an invitation to one time
point's questionnaire, and its one reminder. Each carries a private link of its own (only its
hash is kept) and the link that stops further invitations. No medical details."""

from __future__ import annotations

import re
import secrets

from flask import current_app
from flask_babel import force_locale
from flask_babel import gettext as _

from booking.crypto import text_digest
from booking.extensions import db
from booking.notifications.models import OutboxEmail
from booking.notifications.services import queue_email
from booking.outcomes.labels import GPE_CHOICES, point_label
from booking.outcomes.models import FollowUp, FollowUpLink
from booking.requests.emails import staff_locale
from booking.requests.links import staff_request_url
from booking.requests.models import ConsultationRequest
from booking.templating import choice_label
from booking.urlargs import public_url

TOKEN_BYTES = 32
# The clinic's notice of a patient who answered "much worse" or "worse than ever".
WORSE_TEMPLATE = "followup_worse_staff"
# The invitation to a questionnaire, and its reminder.
INVITATION_TEMPLATE = "followup_invitation"


def worse_notice(consultation: ConsultationRequest, follow_up: FollowUp) -> OutboxEmail:
    """The clinic's alert that a patient answered a follow-up saying they are much worse:
    the reference, the time point and the answer, with the dashboard link; no name."""
    with force_locale(staff_locale()):
        subject = _(
            "Follow-up to look at: a patient reports being worse (%(reference)s)",
            reference=consultation.reference,
        )
        point = point_label(follow_up.point)
        answer = choice_label(GPE_CHOICES, str(follow_up.gpe))
    return queue_email(
        template=WORSE_TEMPLATE,
        recipient=current_app.config["STAFF_NOTIFICATION_EMAIL"],
        subject=subject,
        locale=staff_locale(),
        request_id=consultation.id,
        consultation=consultation,
        point=point,
        answer=answer,
        request_url=staff_request_url(consultation),
    )


def issue_link(follow_up: FollowUp) -> str:
    """A new link's token for ``follow_up``; its row is committed with the email."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    db.session.add(FollowUpLink(follow_up_id=follow_up.id, token_hash=text_digest(token)))
    return token


# A follow-up link in an invitation's bodies (``invitation``): the only thing in the outbox
# row that names its follow-up.
LINK_RE = re.compile(r"/follow-up/open/([A-Za-z0-9_-]+)")


def token_in(email: OutboxEmail) -> str | None:
    """The follow-up link's token in ``email`` (a ``followup_invitation``); None when the
    link is no longer whole (redacted once it was retired)."""
    found = LINK_RE.search(email.body_text or "")
    return found.group(1) if found else None


def invitation(
    consultation: ConsultationRequest, follow_up: FollowUp, *, reminder: bool = False
) -> OutboxEmail | None:
    """None when the patient left no email address, or is marked deceased
    (``Patient.writable_address``)."""
    address = consultation.patient.writable_address
    if not address:
        return None
    token = issue_link(follow_up)
    clinic = current_app.config["CLINIC_NAME"]
    with force_locale(consultation.locale):
        subject = (
            _("Reminder: how are you doing? A short questionnaire from %(clinic)s", clinic=clinic)
            if reminder
            else _("How are you doing? A short questionnaire from %(clinic)s", clinic=clinic)
        )
    return queue_email(
        template=INVITATION_TEMPLATE,
        recipient=address,
        subject=subject,
        locale=consultation.locale,
        request_id=consultation.id,
        patient_name=consultation.patient.full_name,
        reminder=reminder,
        expires_at=follow_up.expires_at,
        questionnaire_url=public_url(f"/follow-up/open/{token}"),
        stop_url=public_url(f"/follow-up/open/{token}/stop"),
    )
