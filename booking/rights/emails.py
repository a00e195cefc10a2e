"""The patient's emails about their own rights: each says only what happened, with a new
private link, in the patient's language (an erasure request's answer carries the admin's
explanation, written to be emailed)."""

from __future__ import annotations

import enum

from flask import current_app
from flask_babel import force_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel.speaklater import LazyString

from booking.notifications.models import OutboxEmail
from booking.notifications.services import queue_email
from booking.requests import links
from booking.requests.emails import staff_locale
from booking.requests.models import ConsultationRequest
from booking.rights.models import ErasureRequest
from booking.staff.services import active_admin_emails
from booking.urlargs import public_url

# The template of the erasure's confirmation (``erasure_done``).
ERASURE_DONE = "erasure_done"


class RightsEvent(enum.StrEnum):
    CONSENT_WITHDRAWN = "consent_withdrawn"
    DATA_DOWNLOADED = "data_downloaded"
    ERASURE_RECEIVED = "erasure_received"
    ERASURE_ANSWERED = "erasure_answered"


def rights_notice(
    consultation: ConsultationRequest, event: RightsEvent, explanation: str | None = None
) -> OutboxEmail | None:
    """One email to the patient that ``event`` happened; None when nothing may go to them
    (``Patient.writable_address``: no address, or marked deceased)."""
    recipient = consultation.patient.writable_address
    if not recipient:
        return None
    with force_locale(consultation.locale):
        subject = _(
            "Your personal data at the clinic (request %(reference)s)",
            reference=consultation.reference,
        )
    return queue_email(
        template="rights_update",
        recipient=recipient,
        subject=subject,
        locale=consultation.locale,
        request_id=consultation.id,
        consultation=consultation,
        patient_name=consultation.patient.full_name,
        event=event.value,
        explanation=explanation,
        manage_url=links.manage_url(consultation),
    )


def erasure_done(recipient: str, locale: str, references: list[str]) -> OutboxEmail:
    """The patient's confirmation that their data was erased, as the law asks (GDPR Art.
    12(3)), in their language: no name and no link (nothing is left to open). It belongs to
    no request (they are gone), and the outbox deletes it once sent (``FORGET_WHEN_SENT``):
    the clinic keeps no address of a patient it erased."""
    with force_locale(locale):
        subject = _("Your personal data at the clinic has been erased")
    return queue_email(
        template=ERASURE_DONE,
        recipient=recipient,
        subject=subject,
        locale=locale,
        references=", ".join(references),
        count=len(references),
    )


def email_admins(
    template: str, subject: LazyString, *, fallback: str | None = None, **context: object
) -> list[OutboxEmail]:
    """One email per active administrator (with none, one to ``fallback`` if given), written
    in the clinic's language like every email to staff."""
    locale = staff_locale()
    with force_locale(locale):
        text = str(subject)
    return [
        queue_email(template=template, recipient=address, subject=text, locale=locale, **context)
        for address in active_admin_emails() or ([fallback] if fallback else [])
    ]


def erasure_alert(consultation: ConsultationRequest, erasure: ErasureRequest) -> list[OutboxEmail]:
    """Tell the administrators (or, with none, the clinic's notification address) that a
    patient asked to erase their data and by when the answer is due: the reference, the
    deadline and the queue's address, no patient details."""
    return email_admins(
        "erasure_staff",
        _l("Erasure request on %(reference)s", reference=consultation.reference),
        fallback=current_app.config["STAFF_NOTIFICATION_EMAIL"],
        request_id=consultation.id,
        reference=consultation.reference,
        due_at=erasure.due_at,
        queue_url=public_url("/staff/admin/privacy/erasures"),
    )
