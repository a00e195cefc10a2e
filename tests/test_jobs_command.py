"""``flask jobs``: the worker's periodic jobs listed, and one run now from a shell."""

from __future__ import annotations

from datetime import timedelta

from flask import Flask
from sqlalchemy import select

from booking.extensions import db
from booking.notifications.models import OutboxEmail
from booking.requests import asks
from tests.factories import make_request, make_staff

QUESTION = "Did the pain start after a fall?"


def test_the_list_names_each_periodic_job_with_its_schedule(app: Flask) -> None:
    result = app.test_cli_runner().invoke(args=["jobs", "list"])
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line for line in result.output.splitlines()}
    assert "Every minute: the next wave of each waitlist offer" in lines["offer_next_waves"]
    assert "17 3" in lines["purge_expired_requests"]
    assert {"send_reminders", "send_followups", "escalate_emergencies"} <= lines.keys()
    # Run from a shell, the heartbeat would report a worker alive that is not.
    assert "worker_heartbeat" not in lines


def test_running_a_job_does_its_work_now(app: Flask) -> None:
    """An ask unanswered past ASK_REMINDER_DAYS: the hourly job, run by hand, reminds the
    patient at once, and says so; run again, it finds nothing more to do."""
    with app.app_context():
        coordinator = make_staff("coordinator", "cora@example.com")
        consultation = make_request(email="waiting@example.com")
        ask = asks.ask_patient(consultation, coordinator, [], QUESTION)
        ask.asked_at -= timedelta(days=app.config["ASK_REMINDER_DAYS"] + 1)
        db.session.commit()
        ask_id, reference = ask.id, consultation.reference
    runner = app.test_cli_runner()
    result = runner.invoke(args=["jobs", "run", "remind_information_requests"])
    assert result.exit_code == 0, result.output
    assert result.output == (
        "remind_information_requests: 1 reminder(s) of requests for information queued.\n"
    )
    with app.app_context():
        assert db.session.get(asks.InformationRequest, ask_id).reminded_at is not None
        [email] = db.session.scalars(
            select(OutboxEmail).where(OutboxEmail.subject.startswith("Reminder:"))
        ).all()
        assert email.recipient == "waiting@example.com"
        assert email.subject == f"Reminder: we still need something from you ({reference})"
    again = runner.invoke(args=["jobs", "run", "remind_information_requests"])
    assert again.exit_code == 0 and "0 reminder(s)" in again.output


def test_an_unknown_job_fails_and_names_the_jobs(app: Flask) -> None:
    result = app.test_cli_runner().invoke(args=["jobs", "run", "send_reminder"])
    assert result.exit_code != 0
    assert "no periodic job 'send_reminder'" in result.output
    assert "send_reminders" in result.output and "offer_next_waves" in result.output
    assert "worker_heartbeat" not in result.output
