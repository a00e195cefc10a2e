"""The audit trail's retention (old rows keep who did what, not the addresses) and the alert
on unusual access (many records read in an hour, a bulk export): once per account and hour."""

from __future__ import annotations

import secrets
from datetime import timedelta

import pytest
from flask import Flask
from sqlalchemy import select, text

from booking.audit.models import AuditEvent
from booking.audit.services import reduce_old_addresses
from booking.crypto import text_digest
from booking.extensions import db
from booking.notifications.models import OutboxEmail
from booking.staff.models import StaffSession
from booking.timeutil import now_utc
from tests.conftest import Staff
from tests.factories import make_request
from tests.smtp import SmtpServer
from tests.support import AuthActions, export_queue, run_queued_tasks


@pytest.fixture
def app_settings(app_settings: dict) -> dict:
    return {
        **app_settings,
        "AUDIT_ADDRESS_DAYS": 365,
        "ACCESS_ALERT_RECORDS_PER_HOUR": 3,
        "ACCESS_ALERT_EXPORT_ROWS": 2,
    }


def _row(when, **values) -> AuditEvent:
    event = AuditEvent(occurred_at=when, ip_address="203.0.113.7", details={}, **values)
    db.session.add(event)
    return event


def test_old_audit_rows_keep_who_did_what_but_not_the_addresses(app: Flask, staff: Staff) -> None:
    now = now_utc()
    old, recent = now - timedelta(days=400), now - timedelta(days=30)
    with app.app_context():
        coordinator = staff.coordinator
        staff_row = _row(
            old,
            actor_id=coordinator.id,
            actor_email=coordinator.email,
            action="request_viewed",
            target_type="request",
            target_id="SC-A",
        )
        typed = _row(old, actor_email="Mallory@Example.com", action="login_failed")
        patient = _row(old, actor_email="patient", action="waitlist_left")
        kept = _row(recent, actor_id=staff.admin.id, actor_email=staff.admin.email, action="login")
        db.session.commit()
        ids = staff_row.id, typed.id, patient.id, kept.id

        assert reduce_old_addresses(now) == 3
        rows = {
            row.id: (row.actor_email, row.ip_address)
            for row in db.session.execute(
                text("SELECT id, actor_email, ip_address FROM audit_event")
            )
        }
        assert rows[ids[0]] == (f"staff:{staff.coordinator.id}", None)
        assert rows[ids[1]] == (f"sha256:{text_digest('mallory@example.com')[:16]}", None)
        assert rows[ids[2]] == ("patient", None)
        assert rows[ids[3]] == (staff.admin.email, "203.0.113.7")  # not old enough yet
        dump = " ".join(str(value) for pair in rows.values() for value in pair)
        assert "mallory" not in dump.lower() and staff.coordinator.email not in dump
        # What happened, to what, and when is untouched.
        row = db.session.get(AuditEvent, ids[0])
        assert (row.action, row.target_id, row.actor_id) == (
            "request_viewed",
            "SC-A",
            staff.coordinator.id,
        )
        [note] = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "audit_addresses_reduced")
        ).all()
        assert note.details["rows"] == 3

        assert reduce_old_addresses(now) == 0  # nothing left to reduce


def test_staff_sessions_not_seen_for_the_address_days_are_deleted_by_the_nightly_job(
    app: Flask, staff: Staff
) -> None:
    now = now_utc()
    with app.app_context():
        for last_seen, ended in (
            (now - timedelta(days=400), now - timedelta(days=400)),  # signed out long ago
            (now - timedelta(days=366), None),  # left idle, never came back
            (now - timedelta(days=30), now - timedelta(days=30)),  # recent: kept
            (now, None),  # signed in now: kept
        ):
            db.session.add(
                StaffSession(
                    staff_id=staff.coordinator.id,
                    token_hash=secrets.token_hex(32),
                    created_at=last_seen,
                    last_seen_at=last_seen,
                    ended_at=ended,
                    address="203.0.113.7",
                )
            )
        db.session.commit()
    app.extensions["spineconsult.purge_expired_requests"].call_local()  # what the worker runs
    with app.app_context():
        left = db.session.scalars(select(StaffSession.last_seen_at)).all()
        assert sorted(left) == [now - timedelta(days=30), now]


def test_a_nightly_step_that_fails_does_not_stop_the_others(
    app: Flask, staff: Staff, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The requests' retention, first of the night, fails on a database error (on PostgreSQL
    it leaves the session's transaction aborted): the addresses are still reduced, the old
    sessions and feedback still deleted, and the task still fails, naming the step."""
    import booking.tasks
    from booking.feedback.models import PageFeedback

    old = now_utc() - timedelta(days=400)
    with app.app_context():
        _row(old, actor_email="Mallory@Example.com", action="login_failed")
        db.session.add(
            StaffSession(
                staff_id=staff.coordinator.id,
                token_hash=secrets.token_hex(32),
                created_at=old,
                last_seen_at=old,
                ended_at=old,
                address="203.0.113.7",
            )
        )
        db.session.add(PageFeedback(page="sciatica", useful=True, locale="en", created_at=old))
        db.session.commit()

    def purge_expired() -> None:
        db.session.execute(text("SELECT no_such_column FROM consultation_request"))

    monkeypatch.setattr(booking.tasks, "purge_expired", purge_expired)
    with pytest.raises(RuntimeError, match=r"1 of 5 steps failed \(purge_expired\)"):
        app.extensions["spineconsult.purge_expired_requests"].call_local()
    assert "purge_expired failed" in caplog.text and "no_such_column" in caplog.text
    with app.app_context():
        assert db.session.scalars(select(StaffSession)).all() == []
        assert db.session.scalars(select(PageFeedback)).all() == []
        addresses = db.session.scalars(
            select(AuditEvent.ip_address).where(AuditEvent.action == "login_failed")
        ).all()
        assert addresses == [None]


def _alerts(app: Flask) -> tuple[list[AuditEvent], list[OutboxEmail]]:
    with app.app_context():
        return (
            list(db.session.scalars(select(AuditEvent).where(AuditEvent.action == "access_alert"))),
            list(
                db.session.scalars(
                    select(OutboxEmail).where(OutboxEmail.template == "access_alert")
                )
            ),
        )


def test_one_account_reading_many_records_alerts_the_admins_once_an_hour(
    app: Flask, staff: Staff, auth: AuthActions
) -> None:
    with app.app_context():
        references = [make_request(email=f"p{n}@example.com").reference for n in range(5)]
    client = auth.new_client("coordinator")
    for reference in references[:3]:
        assert client.get(f"/staff/requests/{reference}").status_code == 200
    client.get(f"/staff/requests/{references[0]}")  # the same record again is not another
    assert _alerts(app) == ([], [])

    client.get(f"/staff/requests/{references[3]}")  # the fourth record in the hour
    [alert], emails = _alerts(app)
    assert alert.target_id == str(staff.coordinator.id)
    assert alert.details == {
        "reason": "records_per_hour",
        "count": 4,
        "account": staff.coordinator.email,
    }
    assert [e.recipient for e in emails] == [staff.admin.email]
    assert "opened 4 patients' records within an hour" in emails[0].body_text
    assert "Erika" not in emails[0].body_text

    client.get(f"/staff/requests/{references[4]}")  # still within the hour: no second alert
    assert len(_alerts(app)[0]) == 1


def test_the_alert_goes_to_the_queue_when_the_read_commits_not_at_the_next_sweep(
    mail_settings: dict, app: Flask, smtp: SmtpServer, staff: Staff, auth: AuthActions
) -> None:
    """The alert is written inside the audit of the read that crossed the line; once that
    read's transaction commits, its email is on the task queue, and the worker's first
    task delivers it (the sweep would find it only minutes later)."""
    with app.app_context():
        references = [make_request(email=f"p{n}@example.com").reference for n in range(4)]
    run_queued_tasks(app)  # the requests' own emails, if they were queued
    already = len(smtp.received)
    client = auth.new_client("coordinator")
    for reference in references:
        assert client.get(f"/staff/requests/{reference}").status_code == 200
    assert run_queued_tasks(app) == 1
    received = smtp.collector.wait_for(already + 1)[already:]
    assert [r.rcpt_tos for r in received] == [[staff.admin.email]]
    assert received[0].message["Subject"] == f"Unusual access by {staff.coordinator.email}"


def test_a_bulk_export_alerts_the_admins(app: Flask, staff: Staff, auth: AuthActions) -> None:
    with app.app_context():
        for n in range(3):
            make_request(email=f"p{n}@example.com")
    client = auth.new_client("coordinator")
    assert export_queue(client, "status=all").status_code == 200
    [alert], [email] = _alerts(app)
    assert alert.details["reason"] == "bulk_export"
    assert alert.details["count"] == 3
    assert "exported 3 requests at once" in email.body_text


def test_a_large_registry_export_alerts_the_admins_too(app: Flask, staff: Staff) -> None:
    """The registry export of follow-ups leaves the clinic like the queue's CSV: watched
    the same way (its audit row counts its rows)."""
    from booking.audit.services import record
    from booking.staff.models import StaffUser

    with app.app_context():
        coordinator = db.session.scalars(
            select(StaffUser).where(StaffUser.role == "coordinator")
        ).first()
        record(
            "outcomes_exported",
            target_type="outcomes",
            actor=coordinator,
            details={"months": 12, "rows": 3},
        )
        db.session.commit()
    [alert], [email] = _alerts(app)
    assert alert.details["reason"] == "bulk_export" and alert.details["count"] == 3
    assert "exported 3 requests at once" in email.body_text
