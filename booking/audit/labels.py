"""What each audit action is called on the admin's audit page. The code stays what is stored
and what the DPO's SQL queries use (``docs/data-protection.md``); the label is what people
read. Every action the code base records has one (``tests/test_audit_labels.py``)."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_babel.speaklater import LazyString

ACTION_LABELS: dict[str, LazyString] = {
    # Signing in and accounts
    "login": _l("Signed in"),
    "login_password_ok": _l("Password accepted, two-step code asked"),
    "login_failed": _l("Sign-in failed"),
    "logout": _l("Signed out"),
    "password_check_failed": _l("Wrong password to confirm a change"),
    "password_reset_requested": _l("Password reset asked for"),
    # Written with the email, to the outbox: the worker may still drop it (its link over
    # before it could go) or fail to send it, which the outbox row tells.
    "password_reset_sent": _l("Password reset link written to the outbox"),
    "password_changed": _l("Password changed"),
    "two_factor_enabled": _l("Two-factor sign-in switched on"),
    "two_factor_policy_updated": _l("Two-factor sign-in rules changed"),
    "two_factor_reset": _l("Two-factor sign-in reset by an administrator"),
    "staff_created": _l("Staff account created"),
    "staff_activated": _l("Staff account reactivated"),
    "staff_deactivated": _l("Staff account deactivated"),
    "staff_role_changed": _l("Staff role changed"),
    "staff_details_corrected": _l("Staff name or email corrected"),
    "address_notice_settled": _l("Unsent notice of a changed staff address dealt with"),
    "two_factor_notice_settled": _l("Unsent notice of a staff two-factor reset dealt with"),
    # Looks at records, refusals and alerts
    "request_viewed": _l("Record opened"),
    "request_summary_viewed": _l("Request summary opened"),
    "request_summary_downloaded": _l("Request summary downloaded"),
    "document_viewed": _l("Document opened"),
    "document_downloaded": _l("Document downloaded"),
    "document_damaged": _l("Damaged document found"),
    "message_thread_read": _l("Messages read"),
    "privacy_patient_viewed": _l("Patient's data opened (privacy)"),
    "access_refused": _l("Access refused"),
    "access_alert": _l("Unusual access alert"),
    # Requests
    "request_submitted": _l("Request sent by patient"),
    "request_confirmed": _l("Appointment confirmed"),
    "request_rescheduled": _l("Appointment moved by staff"),
    "request_declined": _l("Request declined"),
    "request_cancelled": _l("Request cancelled by staff"),
    "request_completed": _l("Visit completed"),
    "request_no_show": _l("Marked as no-show"),
    "request_escalated": _l("Waiting request escalated"),
    "patient_rescheduled": _l("Appointment moved by patient"),
    "patient_cancelled": _l("Request cancelled by patient"),
    "patient_added_documents": _l("Documents added by patient"),
    "information_asked": _l("Information asked of patient"),
    "information_ask_withdrawn": _l("Information request withdrawn"),
    "information_received": _l("Information received from patient"),
    "information_reviewed": _l("Information from patient reviewed"),
    "note_added": _l("Note added"),
    # One row for each email a change withdrew unsent (``booking.requests.withdrawals``).
    "email_withdrawn": _l("Email to the patient withdrawn unsent"),
    "triage_raised": _l("Triage level raised by staff"),
    "callback_logged": _l("Call to patient logged"),
    "message_sent": _l("Message sent"),
    "join_link_set": _l("Video visit link set"),
    # Both recorded as their emails are written to the outbox (and a closed request's page
    # gets no new link at all): the label says what the row knows, as password_reset_sent's.
    "manage_link_reissued": _l("Patient's private links ended and reissued"),
    "patient_emails_resent": _l("Failed emails to patient written to the outbox again"),
    "patient_contact_corrected": _l("Patient's email or phone corrected"),
    "upload_refused_infected": _l("Infected upload refused"),
    "upload_removed_infected": _l("Infected upload removed"),
    # Waiting list
    "waitlist_joined": _l("Joined waiting list"),
    "waitlist_left": _l("Left waiting list"),
    "slot_offered": _l("Freed time offered to waiting list"),
    "waitlist_offer_accepted": _l("Waiting list offer accepted"),
    # Exports
    "requests_exported": _l("Request list export started"),
    "requests_export_ended": _l("Request list export ended"),
    "outcomes_exported": _l("Registry export started"),
    "outcomes_export_ended": _l("Registry export ended"),
    # Patients' rights and data protection
    "patient_exported": _l("Patient's data exported"),
    "patient_export_refused": _l("Patient's data export refused"),
    "contact_consent_withdrawn": _l("Consent to contact withdrawn"),
    "patient_email_change_asked": _l("New email address asked for by patient (unconfirmed)"),
    "patient_email_changed": _l("Email address changed by patient (confirmed)"),
    "erasure_requested": _l("Erasure asked for"),
    "erasure_closed": _l("Erasure request answered without erasing"),
    "patient_erased": _l("Patient's data erased"),
    "retention_purged": _l("Old records deleted (retention)"),
    "audit_addresses_reduced": _l("Old audit addresses reduced"),
    # Outcomes after the visit
    "treatment_plan_recorded": _l("Treatment plan recorded"),
    "treatment_plan_corrected": _l("Procedure date corrected"),
    "followups_stopped": _l("Follow-ups stopped"),
    "patient_marked_deceased": _l("Patient marked as deceased"),
    "outcome_settings_changed": _l("Follow-up settings changed"),
    # Clinic settings and schedules
    "location_created": _l("Location added"),
    "location_updated": _l("Location changed"),
    "appointment_type_created": _l("Appointment type added"),
    "appointment_type_updated": _l("Appointment type changed"),
    "booking_rules_updated": _l("Booking rules changed"),
    "working_hours_added": _l("Working hours added"),
    "working_hours_deleted": _l("Working hours deleted"),
    "schedule_exception_added": _l("Time off or extra hours added"),
    "schedule_exception_deleted": _l("Time off or extra hours deleted"),
    "clinic_closure_added": _l("Clinic closed on a day"),
    "clinic_closure_removed": _l("Clinic's closed day removed"),
    "checklist_item_added": _l("Checklist item added"),
    "checklist_item_switched_on": _l("Checklist item switched on"),
    "checklist_item_switched_off": _l("Checklist item switched off"),
    # Information pages' feedback
    "page_feedback_received": _l("Page feedback received"),
    "page_feedback_announced": _l("Page feedback announced to admins"),
    "page_feedback_purged": _l("Old page feedback deleted"),
}


def action_label(code: str) -> str:
    """The action's label, or its code when it has none (a row of an action no longer
    written)."""
    label = ACTION_LABELS.get(code)
    return str(label) if label is not None else code
