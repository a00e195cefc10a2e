"""The worker's task list: email delivery and every periodic job of the application, on Huey
(SQLite storage by default, Redis when ``REDIS_URL`` is set).

This is the composition layer: each job calls one feature's service, and no feature knows of
the queue's schedule. Huey has no app-factory hook, so ``init_task_queue`` builds the queue
for one app and registers the tasks on it; ``flask worker`` runs its consumer, and
``flask jobs run NAME`` one periodic job now (``periodic_jobs``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Flask
from huey import Huey, MemoryHuey, RedisHuey, SqliteHuey, crontab
from huey.api import TaskWrapper
from redis import ConnectionPool

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
from booking.rights.addresses import purge_expired_email_changes
from booking.staff import services as staff_services
from booking.staff.auth import purge_old_sessions

log = logging.getLogger(__name__)


# Seconds a connection to the queue's Redis may take to open, and a reply to come, unless
# REDIS_URL says otherwise (socket_connect_timeout, socket_timeout). redis-py waits for ever
# by default: with a Redis host gone without a trace (not refusing: a machine down, a
# firewall dropping packets), every page that hands an email to the queue, a patient's
# request among them, hung until gunicorn killed it, though the request was stored. More
# than the second a worker's read of the queue blocks for (Huey's read_timeout).
REDIS_TIMEOUT_SECONDS = 5


def _make_huey(app: Flask) -> Huey:
    backend, name = app.config["HUEY_BACKEND"], app.config["HUEY_NAME"]
    if backend == "redis":
        # The URL's own timeouts win over these (redis-py's rule for from_url).
        pool = ConnectionPool.from_url(
            app.config["REDIS_URL"],
            socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
            socket_timeout=REDIS_TIMEOUT_SECONDS,
        )
        return RedisHuey(name, connection_pool=pool)
    if backend == "sqlite":
        path = Path(app.config["HUEY_SQLITE_PATH"])
        path.parent.mkdir(parents=True, exist_ok=True)
        return SqliteHuey(name, filename=str(path))
    if backend == "memory":
        # Tests: tasks wait in memory until a test runs them or a consumer picks them up.
        return MemoryHuey(name)
    raise RuntimeError(f"unknown HUEY_BACKEND {backend!r}")


@dataclass(frozen=True)
class PeriodicJob:
    """A periodic job as ``flask jobs`` shows and runs it: ``task.call_local()`` runs the
    very function the worker runs on ``schedule`` (minute and hour, as in a crontab), in the
    calling process, and returns a line saying what it did."""

    name: str
    schedule: str
    task: TaskWrapper

    @property
    def summary(self) -> str:
        return " ".join((self.task.__doc__ or "").split("\n\n")[0].split())


def periodic_jobs(app: Flask) -> dict[str, PeriodicJob]:
    """The app's periodic jobs by name (the names in the worker's log), as defined here."""
    return app.extensions["spineconsult.periodic_jobs"]


def _each_on_its_own(job: str, *steps: Callable[[], Any]) -> list[Any]:
    """Run every step of a job, each whatever became of the ones before it.

    The nightly retention is several unrelated deletions; run as one sequence, a first step
    that raises (one bad row, a database error) would stop the ones after it, and as the bad
    row is still there the next night, they would never run again. So each step runs on its own:
    one that fails is logged with its traceback and its transaction rolled back (on
    PostgreSQL a failed statement leaves the session's transaction unusable), and the next
    step starts on a clean session. At the end the task raises (naming the steps that
    failed, from the first error), so Huey still records and logs the run as failed; when
    none failed, it returns what each step returned.

    One task rather than one periodic task each: the steps keep their one time in the night (the
    quiet hour they were given) and one line in the schedule, and a failure still names
    which step it was."""
    failed: list[tuple[str, BaseException]] = []
    results = []
    for step in steps:
        try:
            results.append(step())
        except Exception as exc:
            db.session.rollback()
            log.exception("%s: %s failed; the other steps go on", job, step.__name__)
            failed.append((step.__name__, exc))
    if failed:
        names = ", ".join(name for name, _exc in failed)
        raise RuntimeError(f"{job}: {len(failed)} of {len(steps)} steps failed ({names})") from (
            failed[0][1]
        )
    return results


def init_task_queue(app: Flask) -> Huey:
    huey = _make_huey(app)
    jobs: dict[str, PeriodicJob] = {}

    def periodic(
        name: str, minute: str, hour: str = "*"
    ) -> Callable[[Callable[[], str]], TaskWrapper]:
        """A periodic task, listed for ``flask jobs`` too: each returns a line saying what it
        did (Huey keeps no result of a periodic task; the command prints it)."""

        def register(func: Callable[[], str]) -> TaskWrapper:
            task = huey.periodic_task(crontab(minute=minute, hour=hour), name=name)(func)
            jobs[name] = PeriodicJob(name, f"{minute} {hour}", task)
            return task

        return register

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

    @periodic("requeue_stalled_emails", minute="*")
    def requeue_stalled_emails() -> str:
        """Every minute: outbox emails whose delivery task was lost handed to the queue again."""
        with app.app_context():
            ids = services.requeue_stalled_emails()
        for email_id in ids:
            deliver_email(email_id)
        return f"{len(ids)} stalled email(s) handed to the queue again"

    @periodic("send_reminders", minute="*/5")
    def send_reminders() -> str:
        """Every 5 minutes: the reminders of confirmed appointments that fell due."""
        with app.app_context():
            queued = send_due_reminders()
        return f"{len(queued)} appointment reminder(s) queued"

    @periodic("offer_next_waves", minute="*")
    def offer_waitlist_waves() -> str:
        """Every minute: the next wave of each waitlist offer nobody took within
        WAITLIST_WAVE_MINUTES of the last one."""
        with app.app_context():
            queued = offer_next_waves()
        return f"{len(queued)} waitlist offer email(s) queued"

    @periodic("remind_information_requests", minute="23")
    def remind_information_requests() -> str:
        """Every hour: one reminder of an unanswered request for information (ASK_REMINDER_DAYS)."""
        with app.app_context():
            queued = asks.send_due_reminders()
        return f"{len(queued)} reminder(s) of requests for information queued"

    @periodic("announce_held_feedback", minute="*/15")
    def announce_page_feedback() -> str:
        """Every 15 minutes: feedback held back within the hour after an announcement is
        announced after it."""
        with app.app_context():
            queued = announce_held_feedback()
            services.enqueue_delivery(queued)
        return f"{len(queued)} feedback announcement(s) queued"

    @periodic("send_followups", minute="*/15")
    def send_followups() -> str:
        """Every 15 minutes: follow-up invitations due (09:00 clinic time), then reminders."""
        with app.app_context():
            invitations = send_due_followups()
            reminders = send_due_followup_reminders()
        return f"{len(invitations)} follow-up invitation(s) and {len(reminders)} reminder(s) queued"

    @periodic("count_outcomes", minute=f"*/{SNAPSHOT_MINUTES}")
    def count_outcomes() -> str:
        """Every few minutes: the outcomes page's counts, kept for the page to read."""
        with app.app_context():
            counted = refresh_snapshots()
        return f"{counted} outcome count(s) refreshed"

    @periodic("escalate_emergencies", minute="*")
    def escalate_emergencies() -> str:
        """Every minute: an emergency's target is counted in minutes (an urgent request's,
        in working hours, is checked by the same run)."""
        with app.app_context():
            queued = escalate_overdue()
        return f"{len(queued)} escalation email(s) queued"

    @periodic("purge_expired_requests", minute="17", hour="3")
    def purge_expired_requests() -> str:
        """Retention, once a day (03:17 UTC): closed requests past RETENTION_DAYS, the
        addresses in audit rows and staff sessions not seen for AUDIT_ADDRESS_DAYS, the
        information pages' feedback past FEEDBACK_RETENTION_DAYS, and the new email
        addresses patients asked for whose confirmation link has expired."""
        with app.app_context():
            retention, addresses, sessions, feedback, changes = _each_on_its_own(
                "nightly retention",
                purge_expired,
                reduce_old_addresses,
                purge_old_sessions,
                purge_old_feedback,
                purge_expired_email_changes,
            )
        purged = (
            f"{retention.counts.requests} closed request(s) purged"
            if retention.enabled
            else "retention off (RETENTION_DAYS is 0)"
        )
        return (
            f"{purged}, {addresses} audit row(s) reduced, {sessions} staff session(s), "
            f"{feedback} feedback row(s) and {changes} expired email change(s) deleted"
        )

    @periodic("purge_expired_drafts", minute="41")
    def purge_drafts() -> str:
        """Every hour: unfinished requests past DRAFT_DAYS, with their documents' files."""
        with app.app_context():
            purged = purge_expired_drafts()
        return f"{purged} expired draft(s) deleted"

    @periodic("rescan_held_documents", minute="*/5")
    def rescan_held_documents() -> str:
        """Every 5 minutes: files held while the virus scanner was down (CLAMAV_WHEN_DOWN)."""
        if not app.config["CLAMAV_ENABLED"]:
            return "the virus scanner is off (CLAMAV_ENABLED): nothing to scan"
        with app.app_context():
            result = rescan_pending()
        return (
            f"{result.clean} clean, {result.infected} infected (removed), "
            f"{result.still_pending} still waiting for the scanner"
        )

    @periodic("reconcile_files", minute="47", hour="3")
    def reconcile_upload_files() -> str:
        """Nightly (03:47 UTC): orphan upload files removed, rows without a file reported."""
        with app.app_context():
            result = reconcile_files()
        return (
            f"{result.removed} orphan file(s) removed, {len(result.missing_files)} row(s) "
            "whose file is missing (flask files reconcile --dry-run lists them)"
        )

    # Not one of ``flask jobs``: run from a shell it would record a heartbeat with no worker
    # running, and the health check would report a dead worker alive.
    @huey.periodic_task(crontab(minute="*"), name="worker_heartbeat")
    def worker_heartbeat() -> None:
        # Run by a worker thread from the queue: a fresh heartbeat means the scheduler, the
        # queue and a worker all work.
        record_heartbeat(huey)

    @huey.on_startup(name="worker_heartbeat")
    def heartbeat_at_start() -> None:
        record_heartbeat(huey)

    app.extensions["huey"] = huey
    app.extensions["spineconsult.periodic_jobs"] = jobs
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
