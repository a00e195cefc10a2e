"""Every email about a request, composed in one place: the patient's (in their language) and
the clinic's (in the clinic's language, ``BABEL_DEFAULT_LOCALE``, whatever the patient's).

Each function queues one email in the outbox, inside the caller's transaction, and returns it;
the caller hands its id to the worker after the commit. Each email is a ``.txt`` and ``.html``
template pair under ``templates/email/``. None carries medical details.
"""

from __future__ import annotations

import re
from datetime import datetime

from flask import current_app
from flask_babel import force_locale
from flask_babel import gettext as _
from flask_babel.speaklater import LazyString
from sqlalchemy import func, select

from booking.documents.models import Document
from booking.extensions import db
from booking.notifications.models import OutboxEmail, OutboxStatus
from booking.notifications.services import (
    copy_email,
    queue_email,
    redact_links,
    withdraw_emails,
    withdraw_pending,
)
from booking.requests import links, triage, withdrawals
from booking.requests.followup import Wait, clinic_hours, duration_label, on_call_address
from booking.requests.models import ConsultationRequest, Patient, TriageLevel
from booking.scheduling.ical import appointment_ics, calendar_file_name, with_attendee
from booking.scheduling.models import Appointment, SlotOffer, VisitMode
from booking.scheduling.visits import mode_of, visit_when
from booking.timeutil import now_utc


def staff_locale() -> str:
    """The language of every email to the clinic: the clinic's, never the patient's."""
    return str(current_app.config["BABEL_DEFAULT_LOCALE"])


def in_staff_language(text: LazyString) -> str:
    """``text`` (a lazy string, ``_l``) in the clinic's language: for what staff read, such as
    a timeline note written while a patient's page was in the patient's language."""
    with force_locale(staff_locale()):
        return str(text)


# The emails to the patient about their request, each telling them something they learn no
# other way: one that failed for good puts the request in the queue's "Patient not notified"
# tab and is sent again from the record (``unnotified``, ``resend``). Besides ``_to_patient``'s
# own: a message from the clinic waiting on their page (``messages``), a follow-up
# questionnaire (``outcomes``; its link works until the questionnaire closes) and the notices
# about their data rights, such as the answer to an erasure request (``rights``). Left out:
# the clinic's emails (``*_staff``), staff password resets, and a draft's "finish later" link,
# which belongs to no request yet.
# The clinic's alerts about an emergency or urgent request: the new request's notice, the
# call-back request, staff raising a request's level and the on-call escalation. One that
# failed for good is shown on the queue (``queries.failed_alert_references``): nobody may have
# heard of the request.
TRIAGE_RAISED_TEMPLATE = "triage_raised_staff"
# The clinic's notice of a new request: a routine one's that failed for good stays on the
# queue until someone opens the request (``queries.unseen_failed_request_notices``).
NEW_REQUEST_TEMPLATE = "new_request_staff"
CLINIC_ALERT_TEMPLATES = frozenset(
    {NEW_REQUEST_TEMPLATE, "callback_staff", TRIAGE_RAISED_TEMPLATE, "escalation_staff"}
)
# The clinic's notice of what a patient did through their private link (``clinic_notice``).
PATIENT_ACTION_TEMPLATE = "patient_action_staff"
# The on-call alert of an urgent request its patient cancelled unreached (``escalation``).
CANCELLED_ESCALATION_TEMPLATE = "escalation_staff_cancelled"
# Every on-call alert of an escalation: what its audit row's ``email_id`` may name.
ESCALATION_TEMPLATES = frozenset({"escalation_staff", CANCELLED_ESCALATION_TEMPLATE})
# A document the patient sent, deleted when its virus scan (run later) found malware in it.
DOCUMENT_REMOVED = "document_removed"
# The new address of the place of an appointment to come, after an admin corrected the
# location's (``relocation``): one that failed for good is a patient who may go to the old
# address, for staff to reach.
APPOINTMENT_ADDRESS = "appointment_address"
PATIENT_TEMPLATES = frozenset(
    {
        "request_received",
        "request_update",
        "manage_link",
        "waitlist_offer",
        "appointment_reminder",
        "message_waiting",
        "followup_invitation",
        "rights_update",
        DOCUMENT_REMOVED,
        APPOINTMENT_ADDRESS,
    }
)


# The patient's receipts for what they sent through their private link (``documents_received``,
# ``message_received``). Not in ``PATIENT_TEMPLATES``: the page told the patient it arrived,
# so a failed one is no request for staff to chase; but one waiting for an address staff
# correct follows the correction (``readdress_waiting``), as every patient email does.
DOCUMENTS_RECEIPT = "documents_received"
MESSAGE_RECEIPT = "message_received"
RECEIPT_TEMPLATES = frozenset({DOCUMENTS_RECEIPT, MESSAGE_RECEIPT})
# The notice to the address a request's emails no longer go to (``address_changed``): the
# one email written to an old address, and never readdressed (``readdress_waiting``): its
# news is for the old mailbox, whose holder may not have asked for the change. Not in
# ``PATIENT_TEMPLATES``: one that failed for good (a mistyped address, the usual reason to
# correct it, bounces) is nothing staff could tell the patient again, and sent again it
# would go to the new address, whose holder made or knows of the change.
ADDRESS_CHANGED = "address_changed"
# The link that confirms a new address the patient asked for on their private page
# (``booking.rights.addresses``), to that new address. Not in ``PATIENT_TEMPLATES``: one that
# failed is asked for again from the page, not chased by staff. Like the notice above, never
# readdressed: it is for the mailbox it asks to confirm, and holds no private link to renew.
EMAIL_CHANGE_CONFIRM = "email_change_confirm"
# Emails a new address of the patient's leaves where they were written (``readdress_waiting``).
NOT_READDRESSED = frozenset({ADDRESS_CHANGED, EMAIL_CHANGE_CONFIRM})
# Every email to the patient about a request: withdrawn when they are marked deceased, and
# dropped at delivery when they were marked since it was written (``deceased_at_delivery``).
TO_PATIENT_TEMPLATES = PATIENT_TEMPLATES | RECEIPT_TEMPLATES | NOT_READDRESSED


def withdraw_to_deceased(patient: Patient) -> int:
    """Withdraw every email to ``patient`` about any of their requests not sent yet
    (``withdraw_pending``): marked deceased, nothing more goes to their address, which the
    family may read, whatever was written before. Flushes; the caller commits. How many."""
    request_ids = db.session.scalars(
        select(ConsultationRequest.id).where(ConsultationRequest.patient_id == patient.id)
    )
    return sum(
        withdraw_pending(request_id, TO_PATIENT_TEMPLATES, reason=withdrawals.DECEASED)
        for request_id in request_ids
    )


def deceased_at_delivery(email: OutboxEmail) -> str | None:
    """An email to the patient whose patient was marked deceased after it was written (a
    transaction that wrote it while staff marked them): dropped at delivery
    (``notifications.services.register_delivery_check``). The clinic's emails still go."""
    if email.request_id is None or email.template not in TO_PATIENT_TEMPLATES:
        return None
    deceased_at = db.session.scalar(
        select(Patient.deceased_at)
        .join(ConsultationRequest, ConsultationRequest.patient_id == Patient.id)
        .where(ConsultationRequest.id == email.request_id)
    )
    return "patient marked deceased" if deceased_at is not None else None


def unnotified(consultation: ConsultationRequest) -> list[OutboxEmail]:
    """The patient's emails that failed for good and were not followed by one of the same
    kind (a resend, or a newer email that says the same as it is now): what the patient was
    never told. A later one that failed too stands for them both, so a resend sends it alone
    (the earlier one, retired when it was first resent, has lost its link). One staff have
    dealt with (``settled_at``: a resend sent it again, replaced it by a new link, or left it
    out as no longer wanted) is no longer one to act on. Read from ``consultation.emails``,
    which the record page loads."""
    mine = [e for e in consultation.emails if e.template in PATIENT_TEMPLATES]
    return sorted(
        (
            e
            for e in mine
            if e.status == OutboxStatus.FAILED
            and e.settled_at is None
            and not any(later.template == e.template and later.id > e.id for later in mine)
        ),
        key=lambda e: e.id,
    )


def _has_calendar(email: OutboxEmail) -> bool:
    return (email.attachment_type or "").startswith("text/calendar")


def outdated_by_calendar(consultation: ConsultationRequest, email: OutboxEmail) -> bool:
    """``email`` holds a calendar file (a time, an invitation) and a later status email with
    one was written since (``request_update``, as ``withdraw_calendar_emails`` takes them):
    its time or invitation is no longer the request's. Later by the order the rows were
    written (their ids), never by their clocks: two servers' clocks may differ. Read from
    ``consultation.emails``."""
    return _has_calendar(email) and any(
        later.id > email.id and later.template == "request_update" and _has_calendar(later)
        for later in consultation.emails
    )


# A private link in an email's bodies (an offer's page after it keeps its own part).
PRIVATE_LINK_RE = re.compile(r"https?://[^\s\"'<>]*?/manage/open/[A-Za-z0-9_-]+")
# The offer an earlier-time offer's email is for: its link ends with the offer's token
# (``links.offer_url``), the one thing in the outbox row that names it.
OFFER_LINK_RE = re.compile(r"/manage/open/[A-Za-z0-9_-]+/offers/([A-Za-z0-9_-]+)")


def offer_token_in(email: OutboxEmail) -> str | None:
    """The token of the offer ``email`` (a ``waitlist_offer``) is for; None when its link
    is no longer whole (a retired email's, ``retire``)."""
    found = OFFER_LINK_RE.search(email.body_text or "")
    return found.group(1) if found else None


def resend(consultation: ConsultationRequest, failed: OutboxEmail) -> OutboxEmail:
    """The same email again, as a fresh outbox row, to the patient's address as it is now
    (staff may have corrected it), with a new private link in place of the one it held:
    that one may have been ended since ("Send a new link"). A calendar file sent to another
    address than the first names that one as its attendee (``ical.with_attendee``)."""
    copy = copy_email(failed, recipient=consultation.patient.email)
    if _has_calendar(copy) and copy.attachment_body and copy.recipient != failed.recipient:
        copy.attachment_body = with_attendee(copy.attachment_body, copy.recipient)
    if PRIVATE_LINK_RE.search(copy.body_text or ""):
        fresh = links.manage_url(consultation)
        copy.body_text = PRIVATE_LINK_RE.sub(fresh, copy.body_text)
        copy.body_html = PRIVATE_LINK_RE.sub(fresh, copy.body_html or "")
    return copy


def readdress_waiting(consultation: ConsultationRequest, old: str) -> list[OutboxEmail]:
    """The patient's emails not sent yet that were written to ``old``, an address staff
    have just corrected: each withdrawn (one a worker is sending at this moment is past
    stopping, but is never tried again) and, unless nothing more may go to the patient
    (``_to_patient``), written again to the address as it is now (``resend``: a new private
    link in place of the one it held, which the correction ended). What they say is still
    the request's (a change that outdates an email withdraws it), so the patient is told it
    at the right address rather than never. Oldest first, so the order they were written
    in, which later changes compare by, is kept. Never the notice of an earlier change
    (``address_changed``) nor a new address's confirmation link (``NOT_READDRESSED``): each
    is for the address it was written to.
    Flushes; the caller commits."""
    waiting = list(
        db.session.scalars(
            select(OutboxEmail)
            .where(
                OutboxEmail.request_id == consultation.id,
                OutboxEmail.template.in_(sorted(TO_PATIENT_TEMPLATES - NOT_READDRESSED)),
                OutboxEmail.recipient == old,
                OutboxEmail.still_to_go(),
            )
            .order_by(OutboxEmail.id)
        )
    )
    writable = bool(consultation.patient.writable_address)
    copies = [resend(consultation, email) for email in waiting] if writable else []
    withdraw_emails([email.id for email in waiting], reason=withdrawals.READDRESSED)
    return copies


def retire(failed: OutboxEmail) -> None:
    """A failed email replaced by a resend (or by a new link to the patient's page): its
    links' secrets go, as a sent email's do; what it said stays for the record."""
    redact_links(failed)


def _to_patient(
    consultation: ConsultationRequest,
    template: str,
    subject: str,
    *,
    attachment: tuple[str, str, str] | None = None,
    **context: object,
) -> OutboxEmail | None:
    """None when nothing may go to the patient (``Patient.writable_address``)."""
    if not consultation.patient.writable_address:
        return None
    return queue_email(
        template=template,
        recipient=consultation.patient.email,
        subject=subject,
        locale=consultation.locale,
        request_id=consultation.id,
        attachment=attachment,
        consultation=consultation,
        patient_name=consultation.patient.full_name,
        **context,
    )


def _to_clinic(
    consultation: ConsultationRequest,
    template: str,
    subject: str,
    *,
    recipient: str | None = None,
    **context: object,
) -> OutboxEmail:
    """An email to the clinic (``recipient``, default the staff notification address): the
    reference and the dashboard link, no patient details."""
    return queue_email(
        template=template,
        recipient=recipient or current_app.config["STAFF_NOTIFICATION_EMAIL"],
        subject=subject,
        locale=staff_locale(),
        request_id=consultation.id,
        consultation=consultation,
        request_url=links.staff_request_url(consultation),
        **context,
    )


def _calendar(ics: str, method: str, locale: str) -> tuple[str, str, str]:
    """An .ics attachment: an invitation (REQUEST) or its withdrawal (CANCEL), named in the
    patient's language (``locale``)."""
    name = calendar_file_name(locale)
    return (name, f"text/calendar; method={method}; charset=UTF-8", ics)


def request_received(
    consultation: ConsultationRequest, *, receipt: bool = True
) -> list[OutboxEmail]:
    """The patient's receipt (with the held time's invitation; none when ``receipt`` is
    false: held back) and the clinic's notice, flagged in its subject when the request is
    urgent; one held to the emergency's target (``call_back_level``) is copied to the on-call
    address out of hours (``_copied_out_of_hours``)."""
    receipt_email = patient_receipt(consultation) if receipt else None
    with force_locale(staff_locale()):
        if consultation.urgent_for_withdrawn_answer and consultation.withdrew_emergency_answer:
            # Checked first: the patient was told to seek emergency care now, and the
            # request is held to the emergency's target (``call_back_level``).
            staff_subject = _(
                "URGENT: new request %(reference)s, an emergency-symptom answer was changed "
                "to no: call the patient now",
                reference=consultation.reference,
            )
        elif consultation.urgent_for_withdrawn_answer:
            staff_subject = _(
                "URGENT: new request %(reference)s, an urgent-symptom answer was changed",
                reference=consultation.reference,
            )
        elif consultation.is_emergency:
            staff_subject = _(
                "EMERGENCY: new request %(reference)s, call the patient back now",
                reference=consultation.reference,
            )
        elif consultation.is_urgent and consultation.withdrew_emergency_answer:
            # Urgent for another answer, but an emergency one (cauda equina) was ticked and
            # taken back: said before anything else about the request.
            staff_subject = _(
                "URGENT: new request %(reference)s with red flags, an emergency-symptom "
                "answer was changed to no",
                reference=consultation.reference,
            )
        elif consultation.is_urgent:
            staff_subject = _(
                "URGENT: new request %(reference)s with red flags",
                reference=consultation.reference,
            )
        else:
            staff_subject = _("New request %(reference)s", reference=consultation.reference)
    # The documents the clinic is told it received: those kept, never one the virus scan
    # removed while the request was a draft; those still held for their scan (the scanner
    # was down) said apart, as staff cannot open them yet.
    kept = consultation.kept_documents
    notice = _to_clinic(
        consultation,
        NEW_REQUEST_TEMPLATE,
        staff_subject,
        documents=len(kept),
        documents_held=sum(1 for document in kept if document.awaiting_scan),
    )
    # Held to the emergency's target (an emergency answer changed to no): the on-call
    # clinician hears of it out of hours at once, as of an emergency call-back.
    notices = (
        _copied_out_of_hours(notice, consultation)
        if consultation.call_back_level == TriageLevel.EMERGENCY
        else [notice]
    )
    return [email for email in (receipt_email, *notices) if email is not None]


def patient_receipt(consultation: ConsultationRequest) -> OutboxEmail | None:
    """The patient's receipt of their request (``request_received`` writes it with the
    clinic's notice): the time they hold, with its invitation, and the private link. None as
    ``_to_patient``."""
    with force_locale(consultation.locale):
        subject = _("We received your request %(reference)s", reference=consultation.reference)
    appointment = consultation.appointment
    return _to_patient(
        consultation,
        "request_received",
        subject,
        attachment=(
            _calendar(appointment_ics(appointment), "REQUEST", consultation.locale)
            if appointment is not None
            else None
        ),
        appointment=appointment,
        manage_url=links.manage_url(consultation),
        # An emergency or urgent patient reads the page's advice again, first (triage.py).
        advice=triage.advice(consultation.red_flags, consultation.withdrawn_red_flags),
    )


def receipt_written(consultation: ConsultationRequest) -> bool:
    """Whether the patient's receipt of the request was written to the outbox (not held back
    by the limit per address, ``submit_request``): what its confirmation page may say."""
    return (
        db.session.scalar(
            select(OutboxEmail.id)
            .where(
                OutboxEmail.request_id == consultation.id,
                OutboxEmail.template == "request_received",
            )
            .limit(1)
        )
        is not None
    )


def _copied_out_of_hours(
    alert: OutboxEmail, consultation: ConsultationRequest, at: datetime | None = None
) -> list[OutboxEmail]:
    """``alert`` and, when what it is about happened out of the clinic's working time (``at``,
    default when ``consultation`` arrived), a copy to the on-call address (``ON_CALL_EMAIL``)
    at once, not only when the escalation's target has passed: nobody may read the clinic's
    inbox before the morning."""
    on_call = on_call_address()
    if on_call == alert.recipient or clinic_hours().is_open(at or consultation.created_at):
        return [alert]
    return [alert, copy_email(alert, recipient=on_call)]


def callback_requested(consultation: ConsultationRequest) -> list[OutboxEmail]:
    """The clinic's alert for an emergency patient who asked to be called back, copied to
    the on-call address out of hours (``_copied_out_of_hours``)."""
    with force_locale(staff_locale()):
        subject = _(
            "EMERGENCY: call back now, request %(reference)s", reference=consultation.reference
        )
    return _copied_out_of_hours(_to_clinic(consultation, "callback_staff", subject), consultation)


def triage_raised(
    consultation: ConsultationRequest, previous: TriageLevel, actor_name: str
) -> list[OutboxEmail]:
    """The clinic's alert that staff (``actor_name``) raised the request's triage level from
    ``previous`` (new symptoms the patient reported): the call-back it is now owed counts from
    the raise (``triage_raised_at``). One held to the emergency's target is copied to the
    on-call address when raised out of hours (``_copied_out_of_hours``). Never the staff's
    reason: it may be medical, and email is not secure. The patient is not emailed."""
    with force_locale(staff_locale()):
        if consultation.is_emergency:
            subject = _(
                "EMERGENCY: request %(reference)s raised to emergency, call the patient back now",
                reference=consultation.reference,
            )
        else:
            subject = _(
                "URGENT: request %(reference)s raised to urgent, call the patient back today",
                reference=consultation.reference,
            )
    alert = _to_clinic(
        consultation,
        TRIAGE_RAISED_TEMPLATE,
        subject,
        previous=previous,
        raised_by=actor_name,
    )
    if consultation.call_back_level == TriageLevel.EMERGENCY:
        return _copied_out_of_hours(alert, consultation, consultation.triage_raised_at)
    return [alert]


def escalation(consultation: ConsultationRequest, recipient: str, wait: Wait) -> OutboxEmail:
    """The on-call alert: an emergency or urgent request whose patient nobody reached within
    its target (clock time for an emergency and for an urgent one whose patient changed an
    emergency answer to no, the clinic's working time for any other urgent one)."""
    waited_minutes = int(wait.waited.total_seconds() // 60)
    with force_locale(staff_locale()):
        if consultation.is_emergency:
            subject = _(
                "ESCALATION: emergency request %(reference)s, patient not reached after "
                "%(minutes)d minutes",
                reference=consultation.reference,
                minutes=waited_minutes,
            )
        elif consultation.withdrew_emergency_answer:
            subject = _(
                "ESCALATION: urgent request %(reference)s, an emergency-symptom answer was "
                "changed to no, patient not reached after %(minutes)d minutes",
                reference=consultation.reference,
                minutes=waited_minutes,
            )
        else:
            subject = _(
                "ESCALATION: urgent request %(reference)s, patient not reached within %(target)s "
                "of working time",
                reference=consultation.reference,
                target=duration_label(wait.target),
            )
        return _to_clinic(
            consultation,
            "escalation_staff",
            subject,
            recipient=recipient,
            waited_minutes=waited_minutes,
            target_minutes=int(wait.target.total_seconds() // 60),
            waited=duration_label(wait.waited),
            target=duration_label(wait.target),
        )


def cancelled_escalation(
    consultation: ConsultationRequest, recipient: str, wait: Wait
) -> OutboxEmail:
    """The on-call alert for an emergency or urgent request the patient cancelled before
    anyone reached them, once its target has passed (``booking.requests.escalation``)."""
    with force_locale(staff_locale()):
        if consultation.is_emergency:
            subject = _(
                "ESCALATION: emergency request %(reference)s cancelled by the patient, who was "
                "never reached",
                reference=consultation.reference,
            )
        else:
            subject = _(
                "ESCALATION: urgent request %(reference)s cancelled by the patient, who was "
                "never reached",
                reference=consultation.reference,
            )
        return _to_clinic(
            consultation,
            CANCELLED_ESCALATION_TEMPLATE,
            subject,
            recipient=recipient,
            target=duration_label(wait.target),
        )


# The status emails that carry the private link (request_update.txt says what it is for).
# "completed" too: the page of a completed request still opens (``links.link_expires_at``)
# and shows what happened: the visit, documents, messages, the answers sent, and the
# patient's rights (a copy of their data, erasure).
LINKED_UPDATES = frozenset(
    {
        "confirmed",
        "rescheduled",
        "join_link",
        "completed",
        "information_needed",
        "information_reminder",
    }
)


def _update_subjects(consultation: ConsultationRequest) -> dict[str, str]:
    """The subject of each kind of ``patient_update``, in the current language."""
    reference = consultation.reference
    return {
        "confirmed": _("Your appointment is confirmed (%(reference)s)", reference=reference),
        "rescheduled": _("Your appointment has changed (%(reference)s)", reference=reference),
        "join_link": _("How to join your video appointment (%(reference)s)", reference=reference),
        "declined": _("About your request %(reference)s", reference=reference),
        "cancelled": _("Your request %(reference)s is cancelled", reference=reference),
        "completed": _("Thank you for your visit (%(reference)s)", reference=reference),
        "no_show": _("We missed you at your appointment (%(reference)s)", reference=reference),
        "information_needed": _("We need something from you (%(reference)s)", reference=reference),
        "information_reminder": _(
            "Reminder: we still need something from you (%(reference)s)", reference=reference
        ),
        "information_received": _(
            "Thank you: we received your information (%(reference)s)", reference=reference
        ),
        "information_withdrawn": _(
            "You need not send us anything more (%(reference)s)", reference=reference
        ),
    }


# The request for information's emails (``asks``): the ask's and its one reminder.
ASK_KINDS = ("information_needed", "information_reminder")


def waiting_ask_emails(consultation: ConsultationRequest) -> list[int]:
    """The request's emails asking the patient for information (``ASK_KINDS``) not sent
    yet. The outbox row keeps no kind: among the status emails (``request_update``) they
    are the ones with an ask's subject, which names the kind in the request's language and
    its reference (composed by the same ``_update_subjects``)."""
    with force_locale(consultation.locale):
        subjects = _update_subjects(consultation)
    return list(
        db.session.scalars(
            select(OutboxEmail.id).where(
                OutboxEmail.request_id == consultation.id,
                OutboxEmail.template == "request_update",
                OutboxEmail.subject.in_([subjects[kind] for kind in ASK_KINDS]),
                OutboxEmail.still_to_go(),
            )
        )
    )


def _held_time_changed(consultation: ConsultationRequest) -> str:
    """The subject of a move of a time not confirmed yet (in the current language)."""
    return _("The time you hold has changed (%(reference)s)", reference=consultation.reference)


def _mode_changed_subjects(consultation: ConsultationRequest, held: bool) -> dict[VisitMode, str]:
    """The subject of a move that changed how the visit takes place, by the mode it takes
    place in now (in the current language): said in the subject too, as under the email's
    opening line (``visits.mode_change``), so a patient who only glances at their inbox does
    not stay home for a visit now in person, nor travel for one now by video. ``held``: a
    move of a time not confirmed yet (``_held_time_changed``)."""
    reference = consultation.reference
    if held:
        return {
            VisitMode.IN_PERSON: _(
                "The time you hold has changed: now in person (%(reference)s)",
                reference=reference,
            ),
            VisitMode.VIDEO: _(
                "The time you hold has changed: now by video (%(reference)s)",
                reference=reference,
            ),
            VisitMode.PHONE: _(
                "The time you hold has changed: now by phone (%(reference)s)",
                reference=reference,
            ),
        }
    return {
        VisitMode.IN_PERSON: _(
            "Your appointment has changed: now in person (%(reference)s)", reference=reference
        ),
        VisitMode.VIDEO: _(
            "Your appointment has changed: now by video (%(reference)s)", reference=reference
        ),
        VisitMode.PHONE: _(
            "Your appointment has changed: now by phone (%(reference)s)", reference=reference
        ),
    }


def update_kind(consultation: ConsultationRequest, email: OutboxEmail) -> str | None:
    """The kind of one of the request's status emails (``patient_update``), read from its
    subject as ``waiting_ask_emails`` reads it (the outbox row keeps no kind); None when no
    kind's subject matches (one written in another language than the request's now)."""
    with force_locale(consultation.locale):
        moves = [
            _held_time_changed(consultation),
            *_mode_changed_subjects(consultation, held=True).values(),
            *_mode_changed_subjects(consultation, held=False).values(),
        ]
        if email.subject in moves:
            return "rescheduled"
        subjects = _update_subjects(consultation)
    return next((kind for kind, subject in subjects.items() if subject == email.subject), None)


def waiting_calendar_email(consultation: ConsultationRequest) -> OutboxEmail | None:
    """The request's oldest calendar email still waiting, not taken by a worker (None when
    there is none): the email a newer one withdraws (``withdraw_calendar_emails``), so what it
    gives as the time or the way it was is the last the patient was told, and a confirmation
    waiting was never told at all. Locks its row (PostgreSQL), so no worker takes it before
    the withdrawal. Read once, before the withdrawal, by the move's email
    (``lifecycle.change_email``) for ``confirmation_untold``, ``previous_time_told`` and
    ``previous_mode_told``."""
    return db.session.scalar(
        select(OutboxEmail)
        .where(
            OutboxEmail.request_id == consultation.id,
            OutboxEmail.template == "request_update",
            OutboxEmail.attachment_type.startswith("text/calendar"),
            OutboxEmail.status == OutboxStatus.PENDING,
            OutboxEmail.withdrawn_at.is_(None),
        )
        .order_by(OutboxEmail.id)
        .limit(1)
        .with_for_update()
    )


def confirmation_untold(consultation: ConsultationRequest, waiting: OutboxEmail | None) -> bool:
    """Whether the calendar email still waiting (``waiting_calendar_email``) is the request's
    confirmation: a newer calendar email withdraws it, and the patient was never told the
    appointment is confirmed, nor its time or how it takes place."""
    return waiting is not None and update_kind(consultation, waiting) == "confirmed"


def previous_time_told(
    consultation: ConsultationRequest, waiting: OutboxEmail | None, moved_from: datetime
) -> datetime | None:
    """The time a move's email gives as the one it was: ``moved_from``, unless the email of
    an earlier move is still waiting (``waiting_calendar_email``), not taken by a worker. The
    new email withdraws it (``withdraw_calendar_emails``), so the patient never learns
    ``moved_from``: the time that email gave as the one it was is the last they were told,
    and is given instead (None when the appointment is back at it: nothing moved for them).
    One a worker has taken may arrive, so its time stands."""
    told = waiting.previous_starts_at if waiting is not None else None
    if told is None:
        return moved_from
    appointment = consultation.appointment
    return None if appointment is not None and told == appointment.starts_at else told


def previous_mode_told(waiting: OutboxEmail | None, mode_before: VisitMode) -> VisitMode:
    """How a move's email says the visit took place before it: ``mode_before``, unless the
    email of an earlier move that changed it is still waiting (``waiting_calendar_email``):
    the new email withdraws it, as ``previous_time_told`` reads, and the way that email gave
    as the one it was is the last the patient was told."""
    told = waiting.previous_mode if waiting is not None else None
    return VisitMode(told) if told is not None else mode_before


def patient_update(
    consultation: ConsultationRequest,
    kind: str,
    message: str | None = None,
    ics: str | None = None,
    ics_method: str = "REQUEST",
    *,
    previous_starts_at: datetime | None = None,
    previous_mode: VisitMode | None = None,
) -> OutboxEmail | None:
    """A change the patient should know of: ``kind`` is confirmed, rescheduled, declined,
    cancelled, completed, no_show, join_link (a video visit's link, given by staff) or one of
    the request for information's (needed, reminder, received); ``ics`` the calendar update
    that goes with it; ``previous_starts_at`` the time a move (rescheduled) moved it from,
    shown beside the new one; ``previous_mode`` how the visit took place before the move: when
    it is not how it does now, the email says so first (``visits.mode_change``) and its
    subject names how it does now (``_mode_changed_subjects``)."""
    appointment = consultation.appointment
    mode_changed_from = (
        previous_mode
        if kind == "rescheduled"
        and appointment is not None
        and previous_mode is not None
        and previous_mode is not mode_of(appointment.appointment_type)
        else None
    )
    with force_locale(consultation.locale):
        subject = _update_subjects(consultation)[kind]
        if kind == "rescheduled" and consultation.is_unconfirmed:
            # The patient moved a time they hold: still not confirmed, as the email says.
            subject = _held_time_changed(consultation)
        if mode_changed_from is not None and appointment is not None:
            subject = _mode_changed_subjects(consultation, held=consultation.is_unconfirmed)[
                mode_of(appointment.appointment_type)
            ]
        if kind == "no_show" and appointment is not None:
            # Named by its date, never "today": staff may mark it on a later day.
            subject = _(
                "We missed you at your appointment on %(when)s (%(reference)s)",
                when=visit_when(appointment),
                reference=consultation.reference,
            )
    email = _to_patient(
        consultation,
        "request_update",
        subject,
        attachment=_calendar(ics, ics_method, consultation.locale) if ics is not None else None,
        kind=kind,
        appointment=appointment,
        # A cancelled appointment already begun (staff closing the request late) is not one
        # that "no longer takes place".
        to_come=appointment is not None and appointment.starts_at > now_utc(),
        # A new private link only in the emails that show one: each is a live way in.
        manage_url=links.manage_url(consultation) if kind in LINKED_UPDATES else None,
        # Until when the link of a closed request's email opens its page.
        link_expires=links.link_expires_at(consultation) if kind == "completed" else None,
        message=message,
        previous_starts_at=previous_starts_at if kind == "rescheduled" else None,
        previous_mode=mode_changed_from,
    )
    if email is not None:
        email.staff_message = message or None  # passed on if the email is withdrawn
        # Kept for the email written again (``relocation.write_again``) and for a newer
        # move's that replaces it unsent (``lifecycle.change_email``).
        email.previous_starts_at = previous_starts_at if kind == "rescheduled" else None
        email.previous_mode = mode_changed_from.value if mode_changed_from is not None else None
    return email


def clinic_notice(
    consultation: ConsultationRequest, what: LazyString, detail: LazyString
) -> OutboxEmail:
    """Tell the clinic what the patient did through their private link. ``what`` and
    ``detail`` are lazy strings (``_l``), so they read in the staff's language, not the
    patient's. An emergency or urgent request whose patient nobody has reached yet says so
    first (a patient who cancels it may have gone elsewhere, or may still need the call): the
    rule is ``ConsultationRequest.unreached``, which the patient's messages follow too
    (``booking.messages.emails``)."""
    unreached = consultation.unreached
    with force_locale(staff_locale()):
        what, detail = str(what), str(detail)
        if unreached:
            subject = _(
                "URGENT, patient not reached yet: update on %(reference)s: %(what)s",
                reference=consultation.reference,
                what=what,
            )
        else:
            subject = _(
                "Patient update on %(reference)s: %(what)s",
                reference=consultation.reference,
                what=what,
            )
    return _to_clinic(
        consultation,
        PATIENT_ACTION_TEMPLATE,
        subject,
        what=what,
        detail=detail,
        unreached=unreached,
    )


def documents_received(consultation: ConsultationRequest, added_at: datetime) -> OutboxEmail | None:
    """The patient's receipt for the documents they added on their private page at
    ``added_at`` (the documents' ``uploaded_at``, flushed): how many, when and the private
    link, never a file's name or description. None as ``_to_patient``.

    Uploads come one file per request, so receipts are coalesced: while an earlier receipt
    for this request is still waiting in the outbox (pending, or being sent), it is withdrawn
    (``withdraw_emails``) and the new one counts its documents too. A receipt's
    ``created_at`` is the ``uploaded_at`` of the first documents it counts, which a
    replacement keeps: its documents are those added on the private page (neither the
    request's own, nor a message's or an answer's) from the first one of that moment on, by
    id, never by comparing clocks (two servers' may differ). A waiting receipt whose moment
    names no document (one readdressed after staff corrected the address) is left to go,
    and the new one counts the new documents only. One being sent when withdrawn may still
    arrive: its count was true then, and the new one's is true now."""
    own = (
        Document.request_id == consultation.id,
        Document.message_id.is_(None),
        Document.checklist_item.is_(None),
    )
    waiting = db.session.scalar(
        select(OutboxEmail)
        .where(
            OutboxEmail.request_id == consultation.id,
            OutboxEmail.template == DOCUMENTS_RECEIPT,
            OutboxEmail.still_to_go(),
        )
        .order_by(OutboxEmail.id.desc())
        .limit(1)
    )
    first = None
    if waiting is not None:
        first = db.session.scalar(
            select(func.min(Document.id)).where(*own, Document.uploaded_at == waiting.created_at)
        )
    if first is None:
        waiting = None
        first = db.session.scalar(
            select(func.min(Document.id)).where(*own, Document.uploaded_at == added_at)
        )
    count = db.session.scalar(select(func.count(Document.id)).where(*own, Document.id >= first))
    with force_locale(consultation.locale):
        subject = _("We received your documents (%(reference)s)", reference=consultation.reference)
    email = _to_patient(
        consultation,
        DOCUMENTS_RECEIPT,
        subject,
        count=count,
        received_at=added_at,
        manage_url=links.manage_url(consultation),
    )
    if email is not None:
        email.created_at = waiting.created_at if waiting is not None else added_at
        if waiting is not None:
            withdraw_emails([waiting.id], reason=withdrawals.COMBINED)
    return email


def message_received(
    consultation: ConsultationRequest, sent_at: datetime, documents: int
) -> OutboxEmail | None:
    """The patient's receipt for the message they sent from their private page at
    ``sent_at``, with ``documents`` attached: that it arrived and when, never its text or a
    file's name, and the private link to the thread. None as ``_to_patient``. One a message:
    a patient writes one at a time."""
    with force_locale(consultation.locale):
        subject = _("We received your message (%(reference)s)", reference=consultation.reference)
    return _to_patient(
        consultation,
        MESSAGE_RECEIPT,
        subject,
        received_at=sent_at,
        documents=documents,
        # Opens the page at the thread, as the clinic's message's email does.
        manage_url=links.manage_url(consultation) + "#messages",
    )


def document_removed(
    consultation: ConsultationRequest, uploaded_at: datetime
) -> OutboxEmail | None:
    """A document the patient added at ``uploaded_at`` was held for its virus scan (the
    scanner was down when it came) and the scan found malware in it: its file was deleted
    unopened. Told, the patient can send a clean copy; untold, they would think the clinic
    has it. When they added it and the private link, never the file's name (an email holds
    no medical details). None as ``_to_patient``."""
    with force_locale(consultation.locale):
        subject = _(
            "A document you sent could not be kept (%(reference)s)",
            reference=consultation.reference,
        )
    return _to_patient(
        consultation,
        DOCUMENT_REMOVED,
        subject,
        received_at=uploaded_at,
        manage_url=links.manage_url(consultation),
    )


def new_link(
    consultation: ConsultationRequest, *, corrected: bool = False, by_patient: bool = False
) -> OutboxEmail | None:
    """A new private link, after staff ended every earlier one. ``corrected``: staff
    corrected the patient's address, so the earlier emails may never have reached them:
    the email says so and what the link shows, not that earlier links stopped working
    (``by_patient``: the patient changed it themselves, confirmed from this mailbox, and
    the email says that instead). A closed request's page changes nothing
    (``links.is_read_only``): its link is offered as the patient's private page, not as
    one to add documents, change the time or cancel."""
    with force_locale(consultation.locale):
        subject = (
            _("Your request %(reference)s: your private link", reference=consultation.reference)
            if corrected
            else _("Your new private link (%(reference)s)", reference=consultation.reference)
        )
    return _to_patient(
        consultation,
        "manage_link",
        subject,
        manage_url=links.manage_url(consultation),
        corrected=corrected,
        by_patient=by_patient,
        closed=links.is_read_only(consultation),
    )


def address_changed(
    consultation: ConsultationRequest, old: str, changed_at: datetime
) -> OutboxEmail | None:
    """Tell ``old``, the address the request's emails went to until ``changed_at``, that
    they now go to another: whoever changed it (staff, told on a call by somebody who may
    not be the patient) cannot take the request's emails away from its patient unheard. The
    reference, the date and whom to call; never the new address, the patient's name, a
    medical detail or a private link (every earlier one has just ended): the old mailbox may
    be a stranger's. None when nothing may go to the patient (``Patient.writable_address``:
    marked deceased)."""
    if not consultation.patient.writable_address or not old:
        return None
    with force_locale(consultation.locale):
        subject = _(
            "The email address for your request %(reference)s was changed",
            reference=consultation.reference,
        )
    return queue_email(
        template=ADDRESS_CHANGED,
        recipient=old,
        subject=subject,
        locale=consultation.locale,
        request_id=consultation.id,
        consultation=consultation,
        changed_at=changed_at,
    )


def appointment_address(
    consultation: ConsultationRequest, appointment: Appointment
) -> OutboxEmail | None:
    """The place of the patient's in-person appointment to come has a new address (an admin
    corrected the location's): when it is (unchanged, in the clinic's time), where now, the
    reference and how to reach the clinic, with the calendar event updated (the same UID, the
    raised SEQUENCE the caller gave it). No private link: the email asks nothing of the
    patient, and each link is a live way in. None as ``_to_patient``."""
    with force_locale(consultation.locale):
        subject = _(
            "New address for your appointment on %(when)s (%(reference)s)",
            when=visit_when(appointment),
            reference=consultation.reference,
        )
    return _to_patient(
        consultation,
        APPOINTMENT_ADDRESS,
        subject,
        attachment=_calendar(appointment_ics(appointment), "REQUEST", consultation.locale),
        appointment=appointment,
    )


def waitlist_offer(
    consultation: ConsultationRequest, offer: SlotOffer, open_until: datetime
) -> OutboxEmail | None:
    """An earlier time is free: the link opens the patient's page at the offer, which stays
    open until ``open_until``."""
    with force_locale(consultation.locale):
        subject = _("An earlier time is free (%(reference)s)", reference=consultation.reference)
    return _to_patient(
        consultation,
        "waitlist_offer",
        subject,
        offer=offer,
        open_until=open_until,
        accept_url=links.offer_url(consultation, offer.token),
    )


def reminder(
    consultation: ConsultationRequest, appointment: Appointment, changeable: bool = True
) -> OutboxEmail | None:
    """A reminder of the appointment; ``changeable``: the patient may still change or cancel
    it online (``lifecycle.can_change``), else the email says to call (a 2-hour reminder is
    well inside the notice)."""
    with force_locale(consultation.locale):
        subject = _(
            "Reminder: your appointment on %(when)s (%(reference)s)",
            # A visit from home names the clinic's time zone: the patient may be elsewhere.
            when=visit_when(appointment),
            reference=consultation.reference,
        )
    return _to_patient(
        consultation,
        "appointment_reminder",
        subject,
        appointment=appointment,
        manage_url=links.manage_url(consultation) if changeable else None,
    )


def information_reminder(consultation: ConsultationRequest) -> OutboxEmail | None:
    """The one reminder of a request for information still unanswered
    (``booking.requests.asks``): like the first email, it says only that something is needed."""
    return patient_update(consultation, "information_reminder")
