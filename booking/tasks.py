"""The worker's task list: email delivery and every periodic job of the application, on Huey
(SQLite storage by default, Redis when ``REDIS_URL`` is set).

This is the composition layer: each job calls one feature's service, and no feature knows of
the queue's schedule. Huey has no app-factory hook, so ``init_task_queue`` builds the queue
for one app and registers the tasks on it; ``flask worker`` runs its consumer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from flask import Flask
from huey import Huey, MemoryHuey, RedisHuey, SqliteHuey, crontab

from booking.audit.services import reduce_old_addresses
from booking.extensions import db
from booking.feedback.services import announce_held_feedback, purge_old_feedback
from booking.health.checks import record_heartbeat
from booking.notifications import services
from booking.outcomes.results import SNAPSHOT_MINUTES, refresh_snapshots
from booking.outcomes.services import send_due_followup_reminders, send_due_followups
from booking.privacy.services import purge_expired
from booking.requests import asks
from booking.requests.drafts import purge_expired_drafts
from booking.requests.escalation import escalate_overdue
from booking.requests.files import reconcile_files, rescan_pending
from booking.requests.reminders import send_due_reminders
from booking.requests.waitlist import offer_next_waves
from booking.staff import services as staff_services
from booking.staff.auth import purge_old_sessions

log = logging.getLogger(__name__)


def _make_huey(app: Flask) -> Huey:
    backend, name = app.config["HUEY_BACKEND"], app.config["HUEY_NAME"]
    if backend == "redis":
        return RedisHuey(name, url=app.config["REDIS_URL"])
    if backend == "sqlite":
        path = Path(app.config["HUEY_SQLITE_PATH"])
        path.parent.mkdir(parents=True, exist_ok=True)
        return SqliteHuey(name, filename=str(path))
    if backend == "memory":
        # Tests: tasks wait in memory until a test runs them or a consumer picks them up.
        return MemoryHuey(name)
    raise RuntimeError(f"unknown HUEY_BACKEND {backend!r}")


def _each_on_its_own(job: str, *steps: Callable[[], object]) -> None:
    """Run every step of a job, each whatever became of the ones before it.

    The nightly retention is four unrelated deletions; run as one sequence, a first step that
    raises (one bad row, a database error) would stop the three after it, and as the bad row is
    still there the next night, they would never run again. So each step runs on its own:
    one that fails is logged with its traceback and its transaction rolled back (on
    PostgreSQL a failed statement leaves the session's transaction unusable), and the next
    step starts on a clean session. At the end the task raises (naming the steps that
    failed, from the first error), so Huey still records and logs the run as failed.

    One task rather than four periodic ones: the steps keep their one time in the night (the
    quiet hour they were given) and one line in the schedule, and a failure still names
    which step it was."""
    failed: list[tuple[str, BaseException]] = []
    for step in steps:
        try:
            step()
        except Exception as exc:
            db.session.rollback()
            log.exception("%s: %s failed; the other steps go on", job, step.__name__)
            failed.append((step.__name__, exc))
    if failed:
        names = ", ".join(name for name, _exc in failed)
        raise RuntimeError(f"{job}: {len(failed)} of {len(steps)} steps failed ({names})") from (
            failed[0][1]
        )


def init_task_queue(app: Flask) -> Huey:
    huey = _make_huey(app)

    @huey.task(name="deliver_email")
    def deliver_email(email_id: int) -> None:
        with app.app_context():
            delay = services.deliver_outbox_email(email_id)
        if delay is not None:
            deliver_email.schedule((email_id,), delay=int(delay.total_seconds()))

    # Retried: a database hiccup in the worker must not lose the reset link asked for.
    @huey.task(name="send_password_reset", retries=3, retry_delay=60)
    def send_password_reset(address: str) -> None:
        """A staff password reset asked for (``request_password_reset``): its email, if an
        account has the address, is written here, off the request, then delivered."""
        with app.app_context():
            email_id = staff_services.send_password_reset(address)
        if email_id is not None:
            deliver_email(email_id)

    @huey.periodic_task(crontab(minute="*"), name="requeue_stalled_emails")
    def requeue_stalled_emails() -> None:
        with app.app_context():
            ids = services.requeue_stalled_emails()
        for email_id in ids:
            deliver_email(email_id)

    @huey.periodic_task(crontab(minute="*/5"), name="send_reminders")
    def send_reminders() -> None:
        with app.app_context():
            send_due_reminders()

    @huey.periodic_task(crontab(minute="*"), name="offer_next_waves")
    def offer_waitlist_waves() -> None:
        """Every minute: the next wave of each waitlist offer nobody took within
        WAITLIST_WAVE_MINUTES of the last one."""
        with app.app_context():
            offer_next_waves()

    @huey.periodic_task(crontab(minute="23"), name="remind_information_requests")
    def remind_information_requests() -> None:
        """Every hour: one reminder of an unanswered request for information (ASK_REMINDER_DAYS)."""
        with app.app_context():
            asks.send_due_reminders()

    @huey.periodic_task(crontab(minute="*/15"), name="announce_held_feedback")
    def announce_page_feedback() -> None:
        """Feedback held back within the hour after an announcement is announced after it."""
        with app.app_context():
            services.enqueue_delivery(announce_held_feedback())

    @huey.periodic_task(crontab(minute="*/15"), name="send_followups")
    def send_followups() -> None:
        """Every 15 minutes: follow-up invitations due (09:00 clinic time), then reminders."""
        with app.app_context():
            send_due_followups()
            send_due_followup_reminders()

    @huey.periodic_task(crontab(minute=f"*/{SNAPSHOT_MINUTES}"), name="count_outcomes")
    def count_outcomes() -> None:
        """Every few minutes: the outcomes page's counts, kept for the page to read."""
        with app.app_context():
            refresh_snapshots()

    @huey.periodic_task(crontab(minute="*"), name="escalate_emergencies")
    def escalate_emergencies() -> None:
        """Every minute: an emergency's target is counted in minutes (an urgent request's,
        in working hours, is checked by the same run)."""
        with app.app_context():
            escalate_overdue()

    @huey.periodic_task(crontab(minute="17", hour="3"), name="purge_expired_requests")
    def purge_expired_requests() -> None:
        """Retention, once a day (03:17 UTC): closed requests past RETENTION_DAYS, the
        addresses in audit rows and staff sessions not seen for AUDIT_ADDRESS_DAYS, and the
        information pages' feedback past FEEDBACK_RETENTION_DAYS."""
        with app.app_context():
            _each_on_its_own(
                "nightly retention",
                purge_expired,
                reduce_old_addresses,
                purge_old_sessions,
                purge_old_feedback,
            )

    @huey.periodic_task(crontab(minute="41"), name="purge_expired_drafts")
    def purge_drafts() -> None:
        """Every hour: unfinished requests past DRAFT_DAYS, with their documents' files."""
        with app.app_context():
            purge_expired_drafts()

    @huey.periodic_task(crontab(minute="*/5"), name="rescan_held_documents")
    def rescan_held_documents() -> None:
        """Every 5 minutes: files held while the virus scanner was down (CLAMAV_WHEN_DOWN)."""
        with app.app_context():
            if app.config["CLAMAV_ENABLED"]:
                rescan_pending()

    @huey.periodic_task(crontab(minute="47", hour="3"), name="reconcile_files")
    def reconcile_upload_files() -> None:
        """Nightly (03:47 UTC): orphan upload files removed, rows without a file reported."""
        with app.app_context():
            reconcile_files()

    @huey.periodic_task(crontab(minute="*"), name="worker_heartbeat")
    def worker_heartbeat() -> None:
        # Run by a worker thread from the queue: a fresh heartbeat means the scheduler, the
        # queue and a worker all work.
        record_heartbeat(huey)

    @huey.on_startup(name="worker_heartbeat")
    def heartbeat_at_start() -> None:
        record_heartbeat(huey)

    app.extensions["huey"] = huey
    app.extensions["spineconsult.deliver_email"] = deliver_email
    app.extensions["spineconsult.send_password_reset"] = send_password_reset
    app.extensions["spineconsult.requeue_stalled_emails"] = requeue_stalled_emails
    app.extensions["spineconsult.send_reminders"] = send_reminders
    app.extensions["spineconsult.escalate_emergencies"] = escalate_emergencies
    app.extensions["spineconsult.offer_next_waves"] = offer_waitlist_waves
    app.extensions["spineconsult.send_followups"] = send_followups
    app.extensions["spineconsult.count_outcomes"] = count_outcomes
    app.extensions["spineconsult.remind_information_requests"] = remind_information_requests
    app.extensions["spineconsult.purge_expired_requests"] = purge_expired_requests
    app.extensions["spineconsult.purge_expired_drafts"] = purge_drafts
    app.extensions["spineconsult.worker_heartbeat"] = worker_heartbeat
    app.extensions["spineconsult.rescan_held_documents"] = rescan_held_documents
    app.extensions["spineconsult.reconcile_files"] = reconcile_upload_files
    return huey
