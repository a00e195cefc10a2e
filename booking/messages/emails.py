"""The two emails of a thread: each says only that a message is waiting and where to read it,
never what it says (the patient's in their language, the clinic's in the staff's)."""

from __future__ import annotations

from flask import current_app
from flask_babel import force_locale
from flask_babel import gettext as _

from booking.notifications.models import OutboxEmail
from booking.notifications.services import queue_email
from booking.requests import links
from booking.requests.emails import staff_locale
from booking.requests.models import ConsultationRequest


def message_for_patient(consultation: ConsultationRequest) -> OutboxEmail | None:
    """A message from the clinic waits on the patient's private page (a new link to it).
    None when nothing may go to the patient (``Patient.writable_address``; the service
    refuses those cases first)."""
    if not consultation.patient.writable_address:
        return None
    with force_locale(consultation.locale):
        subject = _(
            "A message from the clinic about your request %(reference)s",
            reference=consultation.reference,
        )
    return queue_email(
        template="message_waiting",
        recipient=consultation.patient.email,
        subject=subject,
        locale=consultation.locale,
        request_id=consultation.id,
        consultation=consultation,
        patient_name=consultation.patient.full_name,
        # Opens the page at the thread (a redirect keeps the fragment), not at its top.
        manage_url=links.manage_url(consultation) + "#messages",
    )


def message_for_clinic(consultation: ConsultationRequest) -> OutboxEmail:
    """The patient wrote: to the clinic's notification address, as its other notices go. As
    every notice of what the patient did (``clinic_notice``), an emergency or urgent request
    whose patient nobody has reached yet (``ConsultationRequest.unreached``) says so first:
    the message may be about new or worse symptoms, and the call is still owed."""
    clinic = staff_locale()  # the clinic's language, whatever the patient's
    unreached = consultation.unreached
    with force_locale(clinic):
        if unreached:
            subject = _(
                "URGENT, patient not reached yet: message from the patient on %(reference)s",
                reference=consultation.reference,
            )
        else:
            subject = _(
                "Message from the patient on %(reference)s", reference=consultation.reference
            )
    return queue_email(
        template="message_waiting_staff",
        recipient=current_app.config["STAFF_NOTIFICATION_EMAIL"],
        subject=subject,
        locale=clinic,
        request_id=consultation.id,
        consultation=consultation,
        request_url=links.staff_request_url(consultation),
        unreached=unreached,
    )
