"""The consultation request as a domain: its models and timeline, its life (statuses,
transitions, the operation that records a change), how requests are found and who may see
them, every email and address sent about one, the waitlist and the reminders.

The blueprints (the patient's form, the private manage page, the staff dashboard) call into
this package; it imports none of them.
"""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Register the request's own template helpers: its status, diagnosis and red-flag
    labels, the call-backs' waits and outcomes; and the outbox's check that no email goes
    to a patient marked deceased after it was written, and that no reminder goes once its
    appointment has begun, nor an earlier-time offer once its offer has closed; and the
    patients' emails when the place of their appointment gets a new address
    (``relocation``); and the timeline's trace of an email withdrawn unsent
    (``withdrawals``)."""
    from booking.notifications.services import (
        emails_withdrawn,
        register_delivery_check,
        register_expiry_check,
    )
    from booking.requests import followup, triage
    from booking.requests.calls import OUTCOME_LABELS
    from booking.requests.emails import deceased_at_delivery
    from booking.requests.history import diagnosis_labels
    from booking.requests.lifecycle import patient_status_label, status_label, status_state
    from booking.requests.relocation import lock_going_there, tell_new_address
    from booking.requests.reminders import begun_at_delivery
    from booking.requests.waitlist import closed_at_delivery
    from booking.requests.withdrawals import note_withdrawn
    from booking.scheduling.services import location_moved, location_moving

    app.add_template_global(status_label)
    app.add_template_global(status_state)
    app.add_template_global(patient_status_label)
    app.add_template_global(diagnosis_labels)
    app.add_template_global(triage.BY_CODE, "red_flags_by_code")
    app.add_template_global(triage.PATHWAY_LABELS, "red_flag_pathways")
    app.add_template_global(triage.LEVEL_LABELS, "triage_labels")
    # The emergency number and wording by the reader's language, on pages and in emails.
    app.context_processor(triage.emergency_context)
    app.add_template_global(followup.wait_label)
    app.add_template_global(OUTCOME_LABELS, "call_outcome_labels")
    register_delivery_check(app, deceased_at_delivery)
    register_expiry_check(app, begun_at_delivery)
    register_expiry_check(app, closed_at_delivery)
    location_moved.connect(tell_new_address)  # once: blinker ignores a second connect
    location_moving.connect(lock_going_there)
    emails_withdrawn.connect(note_withdrawn)
