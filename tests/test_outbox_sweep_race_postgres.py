"""Two worker processes sweeping the outbox at the same instant, on PostgreSQL.

Every worker runs the minute's sweep (``requeue_stalled_emails``), and two may run it at
once. Each releases the claims that lapsed (a worker died), fails the email that killed its
worker MAIL_MAX_LAPSED_CLAIMS times in a row, and, from an email's second lapse in a row,
releases one such email alone while no other released one is still to be tried: a worker
process killed by one email takes its other claims down with it, and emails released
together would be killed together again until both failed. Two sweeps at once must do
what one would: release each row once, fail the killer once, and release one email alone,
not one each. The interleaving is made exact: each sweep's release of an email alone is
held until the other's reaches it too, then one runs and commits before the other. Without
that, the second (its own check for an email on trial made before the first's commit) took
the next email: both released together.
PostgreSQL only: on SQLite, BEGIN IMMEDIATE serialises the whole of each sweep.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import event, select

from booking.extensions import db
from booking.notifications.models import OutboxEmail, OutboxStatus
from booking.notifications.services import KILLED_WORKER, requeue_stalled_emails
from booking.timeutil import now_utc

pytestmark = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)

SWEEPS = 2


def _claimed_by_dead_workers(app: Flask, *unfinished_claims: int) -> list[int]:
    """Emails whose claims lapsed (their workers died), each after ``unfinished_claims``
    claims in a row that never finished; their ids."""
    lapsed_at = now_utc() - timedelta(seconds=app.config["MAIL_CLAIM_TIMEOUT_SECONDS"] + 1)
    with app.app_context():
        rows = [
            OutboxEmail(
                template="request_update",
                recipient=f"patient{n}@example.com",
                subject="Your request",
                body_text="text",
                body_html="<p>text</p>",
                message_id=f"<sweep-{n}@example.com>",
                status=OutboxStatus.SENDING,
                attempts=claims,
                unfinished_claims=claims,
                claimed_at=lapsed_at,
                next_attempt_at=lapsed_at,
            )
            for n, claims in enumerate(unfinished_claims)
        ]
        db.session.add_all(rows)
        db.session.commit()
        return [row.id for row in rows]


def _sweeps_meet(app: Flask, at: Callable[[str], bool], *, one_after_the_other: bool) -> None:
    """Hold each sweep before the statement ``at`` picks until the other sweep reaches its
    own; then both go on at once, or (``one_after_the_other``) one runs and commits its
    sweep before the other goes on (``_sweep_threads`` says when a sweep is done). A sweep
    kept from reaching it (waiting for the other's lock) is not waited for long: the one
    that did goes on alone."""
    both = threading.Barrier(SWEEPS)
    first_done = app.extensions["sweep_race.first_done"] = threading.Event()

    def hold(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if not at(statement):
            return
        try:
            order = both.wait(timeout=5)
        except threading.BrokenBarrierError:
            return
        if one_after_the_other and order != 0:
            assert first_done.wait(timeout=30), "the first sweep never finished"

    with app.app_context():
        event.listen(db.engine, "before_cursor_execute", hold)


def _sweeps_at_once(app: Flask) -> list[list[int]]:
    """Two sweeps run in threads of their own, each in its own session and connection: the
    ids each handed back to the queue."""
    first_done: threading.Event = app.extensions["sweep_race.first_done"]
    handed_out: list[list[int]] = []
    errors: list[BaseException] = []

    def sweep() -> None:
        try:
            with app.app_context():
                handed_out.append(requeue_stalled_emails())
        except BaseException as exc:  # failed below
            errors.append(exc)
        finally:
            first_done.set()

    threads = [threading.Thread(target=sweep) for _ in range(SWEEPS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a sweep hung"
    if errors:
        raise AssertionError(f"{len(errors)} of the sweeps failed") from errors[0]
    return handed_out


def _outbox(app: Flask) -> dict[int, tuple[OutboxStatus, int, str | None]]:
    with app.app_context():
        return {
            row.id: (row.status, row.unfinished_claims, row.last_error)
            for row in db.session.scalars(select(OutboxEmail))
        }


def test_two_sweeps_at_once_release_each_email_once_and_one_alone(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    # Two emails claimed together and killed together twice.
    first, second = _claimed_by_dead_workers(app, 2, 2)
    _sweeps_meet(app, lambda sql: "min(outbox_email.id)" in sql, one_after_the_other=True)
    caplog.set_level(logging.INFO, logger="booking.notifications.services")
    released = _sweeps_at_once(app)

    handed_out = sorted(email_id for ids in released for email_id in ids)
    assert handed_out == [first], released  # one email alone, by one sweep
    assert _outbox(app) == {
        first: (OutboxStatus.PENDING, 2, None),
        second: (OutboxStatus.SENDING, 2, None),  # waits for the first's attempt to end
    }
    logged = [r.getMessage() for r in caplog.records]
    assert sum(f"outbox email {first} released alone" in line for line in logged) == 1
    assert not any(f"outbox email {second} released alone" in line for line in logged)


def test_two_sweeps_at_once_release_each_lapsed_claim_once_and_fail_the_killer_once(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    """Both sweeps start together: each email whose claim lapsed a first time is handed back
    to the queue by one of them, and the email that killed its worker
    MAIL_MAX_LAPSED_CLAIMS times is failed, and logged, once."""
    limit = app.config["MAIL_MAX_LAPSED_CLAIMS"]
    killer, *restarted = _claimed_by_dead_workers(app, limit, 1, 1, 1)
    _sweeps_meet(
        app, lambda sql: sql.startswith("DELETE FROM outbox_email"), one_after_the_other=False
    )
    caplog.set_level(logging.INFO, logger="booking.notifications.services")
    released = _sweeps_at_once(app)

    assert sorted(email_id for ids in released for email_id in ids) == restarted, released
    assert _outbox(app) == {
        killer: (OutboxStatus.FAILED, limit, KILLED_WORKER),
        **{email_id: (OutboxStatus.PENDING, 1, None) for email_id in restarted},
    }
    logged = [r.getMessage() for r in caplog.records]
    assert logged.count(f"outbox email {killer} failed for good: {KILLED_WORKER}") == 1
    assert not any("released alone" in line for line in logged)  # each is on trial
