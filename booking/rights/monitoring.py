"""Unusual access to patients' records: one staff account reading more records in an hour
than ``ACCESS_ALERT_RECORDS_PER_HOUR``, or exporting more than ``ACCESS_ALERT_EXPORT_ROWS``
requests at once. The admins are emailed (through the outbox, in the transaction of the read
that crossed the line) and the alert is audited: once per account and hour.

It listens to every audit row as it is recorded (``booking.audit.services.audit_recorded``),
so every read that is audited counts, wherever it is made.
"""

from __future__ import annotations

from datetime import timedelta

from flask import Flask, current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select

from booking.audit.models import AuditEvent
from booking.audit.services import audit_recorded, record
from booking.extensions import db
from booking.rights.emails import email_admins
from booking.timeutil import now_utc
from booking.urlargs import public_url

# Audit actions that open one patient's record (or part of it).
READS = frozenset(
    {
        "request_viewed",
        "request_summary_viewed",
        "document_viewed",
        "document_downloaded",
        "privacy_patient_viewed",
        "patient_exported",
    }
)
# Exports of many records at once: the queue's CSV, and the registry export of follow-ups.
BULK_EXPORTS = frozenset({"requests_exported", "outcomes_exported"})
ALERT = "access_alert"
HOUR = timedelta(hours=1)


def _alerted_within_the_hour(actor_id: int, now) -> bool:
    return (
        db.session.scalar(
            select(AuditEvent.id)
            .where(
                AuditEvent.action == ALERT,
                AuditEvent.target_type == "staff",
                AuditEvent.target_id == str(actor_id),
                AuditEvent.occurred_at > now - HOUR,
            )
            .limit(1)
        )
        is not None
    )


def records_read_in_the_hour(actor_id: int, now) -> int:
    """Distinct records this account opened in the last hour."""
    return (
        db.session.scalar(
            select(func.count(func.distinct(AuditEvent.target_id))).where(
                AuditEvent.actor_id == actor_id,
                AuditEvent.action.in_(sorted(READS)),
                AuditEvent.occurred_at > now - HOUR,
            )
        )
        or 0
    )


def _alert(event: AuditEvent, reason: str, count: int) -> None:
    record(
        ALERT,
        target_type="staff",
        target_id=event.actor_id,
        actor_email="system:access-monitor",
        details={"reason": reason, "count": count, "account": event.actor_email},
        with_address=False,
    )
    # Administrators only: the clinic's shared inbox may be read by the account itself.
    email_admins(
        "access_alert",
        _l("Unusual access by %(account)s", account=event.actor_email),
        account=event.actor_email,
        reason=reason,
        count=count,
        audit_url=public_url("/staff/admin/audit"),
    )


def _on_audit(event: AuditEvent, **_extra: object) -> None:
    if event.actor_id is None or event.action not in READS | BULK_EXPORTS:
        return
    config = current_app.config
    now = event.occurred_at or now_utc()
    if event.action in BULK_EXPORTS:
        rows = int((event.details or {}).get("rows") or 0)
        limit = config.get("ACCESS_ALERT_EXPORT_ROWS") or 0
        if limit and rows > limit and not _alerted_within_the_hour(event.actor_id, now):
            _alert(event, "bulk_export", rows)
        return
    limit = config.get("ACCESS_ALERT_RECORDS_PER_HOUR") or 0
    if not limit:
        return
    # One query per read: the count flushes the row being added, so it counts itself.
    count = records_read_in_the_hour(event.actor_id, now)
    if count > limit and not _alerted_within_the_hour(event.actor_id, now):
        _alert(event, "records_per_hour", count)


def init_app(app: Flask) -> None:
    """Listen to the audit trail (once per process: the signal is global, the listener reads
    the settings of the app it runs in)."""
    audit_recorded.connect(_on_audit)
