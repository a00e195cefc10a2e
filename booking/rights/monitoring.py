"""Unusual access to patients' records: one staff account reading more records in an hour
than ``ACCESS_ALERT_RECORDS_PER_HOUR``, or exporting more than ``ACCESS_ALERT_EXPORT_ROWS``
requests at once. The admins are emailed (through the outbox, in the transaction of the read
that crossed the line) and the alert is audited: once per account and hour.

It listens to every audit row as it is recorded (``booking.audit.services.audit_recorded``),
so every read that is audited counts, wherever it is made. The alert's emails are handed to
the task queue once that read's transaction commits (``_enqueue_alerts``): the commit is
the caller's, in whichever feature made the read.
"""

from __future__ import annotations

from datetime import timedelta

from flask import Flask, current_app, has_app_context
from flask_babel import lazy_gettext as _l
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session, SessionTransaction

from booking.audit.models import AuditEvent
from booking.audit.services import audit_recorded, record
from booking.extensions import db
from booking.notifications.services import enqueue_delivery
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
# The session's note of the alert emails its transaction wrote, enqueued after its commit.
ALERT_EMAILS = "spineconsult.access_alert_emails"


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
    emails = email_admins(
        "access_alert",
        _l("Unusual access by %(account)s", account=event.actor_email),
        account=event.actor_email,
        reason=reason,
        count=count,
        audit_url=public_url("/staff/admin/audit"),
    )
    db.session.flush()
    db.session.info.setdefault(ALERT_EMAILS, []).extend(email.id for email in emails)


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


def _enqueue_alerts(session: Session) -> None:
    """After the commit of a read that raised an alert: its emails to the task queue now,
    as every service does after its commit, not at the sweep's next pass minutes later."""
    if session.get_nested_transaction() is not None:
        return  # a savepoint was released; the transaction goes on
    email_ids = session.info.pop(ALERT_EMAILS, None)
    if email_ids and has_app_context():
        enqueue_delivery(email_ids)


def _forget_alerts(session: Session, transaction: SessionTransaction) -> None:
    # Rolled back (or committed, enqueued already): the transaction's notes end with it.
    if transaction.parent is None:
        session.info.pop(ALERT_EMAILS, None)


def init_app(app: Flask) -> None:
    """Listen to the audit trail, and to the commits that store its alerts (once per
    process: the signal and the session events are global, the listeners read the settings
    of the app they run in)."""
    audit_recorded.connect(_on_audit)
    if not event.contains(Session, "after_commit", _enqueue_alerts):
        event.listen(Session, "after_commit", _enqueue_alerts)
        event.listen(Session, "after_transaction_end", _forget_alerts)
