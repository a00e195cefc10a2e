"""A real ``flask worker`` process killed (SIGKILL) in the middle of sending an email.

Killed before the mail server accepted the message: nothing is lost, the claim lapses and a
new worker sends it, once. Killed after the server accepted it (the worker waiting on QUIT):
the acceptance was already recorded, so it is never sent again.
"""

from __future__ import annotations

import signal
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from booking.extensions import db
from booking.notifications.models import OutboxEmail, OutboxStatus
from booking.notifications.services import enqueue_delivery, requeue_stalled_emails
from tests import support
from tests.factories import make_request
from tests.smtp import SmtpServer
from tests.support import wait_until


@pytest.fixture
def app_settings(app_settings: dict[str, Any], tmp_path: Path, smtp: SmtpServer) -> dict[str, Any]:
    """The queue in a SQLite file, shared with the worker processes."""
    return {
        **app_settings,
        "HUEY_BACKEND": "sqlite",
        "HUEY_SQLITE_PATH": str(tmp_path / "huey.sqlite3"),
        "HUEY_NAME": f"kill-{uuid.uuid4().hex}",
        "MAIL_PORT": smtp.port,
    }


def start_worker(app: Flask) -> subprocess.Popen:
    return support.start_worker(
        {
            "DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
            "UPLOAD_DIR": app.config["UPLOAD_DIR"],
            "HUEY_SQLITE_PATH": app.config["HUEY_SQLITE_PATH"],
            "HUEY_NAME": app.config["HUEY_NAME"],
            "MAIL_SERVER": "127.0.0.1",
            "MAIL_PORT": str(app.config["MAIL_PORT"]),
        },
        output=subprocess.DEVNULL,
    )


def stop(process: subprocess.Popen) -> None:
    support.stop_worker(process)


def rows(app: Flask) -> list[tuple[str, str, int]]:
    with app.app_context():
        emails = db.session.scalars(select(OutboxEmail).order_by(OutboxEmail.id)).all()
        return [(e.message_id, e.status, e.attempts) for e in emails]


def released_and_resent(app: Flask) -> None:
    """What the worker's periodic sweep does once MAIL_CLAIM_TIMEOUT_SECONDS has passed."""
    app.config["MAIL_CLAIM_TIMEOUT_SECONDS"] = 0
    app.config["MAIL_REQUEUE_AFTER_SECONDS"] = 0
    with app.app_context():
        enqueue_delivery(requeue_stalled_emails())


@pytest.mark.slow
@pytest.mark.parametrize("killed", ["before_accepted", "after_accepted"])
def test_a_worker_killed_mid_send_loses_nothing_and_sends_nothing_twice(
    app: Flask, smtp: SmtpServer, killed: str
) -> None:
    smtp.collector.stall_at = "RCPT" if killed == "before_accepted" else "QUIT"
    with app.app_context():
        make_request()  # the patient's confirmation and the clinic's notice, queued
    emails = rows(app)
    assert len(emails) == 2

    first = start_worker(app)
    try:
        assert smtp.collector.stalled.wait(timeout=60), "the worker never reached the server"
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        stop(first)
    smtp.collector.release()

    first_message, status, attempts = rows(app)[0]
    if killed == "before_accepted":
        assert smtp.received == []
        assert (status, attempts) == (OutboxStatus.SENDING, 1)  # claimed by the dead worker
    else:
        assert [r.message["Message-ID"] for r in smtp.received] == [first_message]
        assert status == OutboxStatus.SENT  # recorded before QUIT

    second = start_worker(app)
    try:
        released_and_resent(app)
        wait_until(lambda: all(r[1] == OutboxStatus.SENT for r in rows(app)), "every email sent")
        released_and_resent(app)  # the sweep again: nothing left to send
        # Every task handed over, now or for later, has been taken; stopping as Ctrl-C does
        # lets the one in hand finish (Huey's graceful stop), so a second send would be seen.
        huey = app.extensions["huey"]
        wait_until(lambda: huey.pending_count() + huey.scheduled_count() == 0, "an idle queue")
    finally:
        stop(second)

    delivered = sorted(r.message["Message-ID"] for r in smtp.received)
    assert delivered == sorted(message_id for message_id, _, _ in rows(app))  # each once
    if killed == "before_accepted":
        assert rows(app)[0][2] == 2  # the lost attempt, then the one that worked
