"""Emails leave through the outbox and reach a real SMTP server (aiosmtpd on 127.0.0.1)."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from email import message_from_bytes
from email.header import decode_header, make_header
from email.policy import compat32
from email.utils import parseaddr
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update

from booking.extensions import db
from booking.notifications.models import OutboxEmail, OutboxStatus
from booking.notifications.services import (
    deliver_outbox_email,
    register_delivery_check,
    requeue_stalled_emails,
)
from booking.requests.models import ConsultationRequest
from booking.timeutil import now_utc
from tests.smtp import SmtpServer, free_port
from tests.support import (
    JPEG_BYTES,
    AuthActions,
    Staff,
    pdf_bytes,
    post_request,
    section_at,
    start_worker,
    stop_worker,
    valid_answers,
)

# What the patient told us that must never travel by email.
MEDICAL_DETAILS = [
    "Herniated",
    "herniated",
    "Ibuprofen",
    "Penicillin",
    "Office work",
    "MRI in March",
    "Oswestry",
    "1970",
    "+4930901820",
    "mri-report.pdf",
    "Document 1",
]


@pytest.fixture
def smtp(smtp: SmtpServer) -> SmtpServer:
    """The shared mail server, down until a test starts it (its port stays its own)."""
    smtp.stop()
    return smtp


@pytest.fixture
def app_settings(mail_settings: dict[str, Any]) -> dict[str, Any]:
    return mail_settings


def _outbox(app: Flask) -> list[OutboxEmail]:
    with app.app_context():
        rows = db.session.scalars(select(OutboxEmail).order_by(OutboxEmail.id)).all()
        db.session.expunge_all()
        return rows


# A private link's token as an email carries it.
TOKEN_RE = re.compile(r"https?://[^/\s]+/manage/open/([A-Za-z0-9_\-]+)")


def _assert_no_medical_details(text: str) -> None:
    for detail in MEDICAL_DETAILS:
        assert detail not in text, f"{detail!r} must not be in an email"


REDIS_URL = os.environ.get("REDIS_URL", "")
QUEUES = ["sqlite"] + (["redis"] if REDIS_URL else [])


@pytest.fixture(params=QUEUES)
def worker_settings(
    request: pytest.FixtureRequest, app_settings: dict[str, Any], tmp_path: Path, smtp: SmtpServer
) -> dict:
    """The test app and a real worker process share a Huey queue: a SQLite file by default,
    Redis when ``REDIS_URL`` is set (each test with a queue name of its own)."""
    app_settings.update(
        HUEY_BACKEND=request.param,
        HUEY_NAME=f"test-{uuid.uuid4().hex}",
        HUEY_SQLITE_PATH=str(tmp_path / "huey.sqlite3"),
        REDIS_URL=REDIS_URL if request.param == "redis" else None,
    )
    smtp.start()
    return app_settings


@pytest.mark.slow
def test_worker_delivers_both_emails_of_a_request(
    worker_settings: dict[str, Any], app: Flask, client: FlaskClient, smtp: SmtpServer
) -> None:
    response = post_request(
        client, files=[(pdf_bytes(), "mri-report.pdf"), (JPEG_BYTES, "scan.jpg")]
    )
    assert response.status_code == 303
    with app.app_context():
        reference = db.session.scalars(select(ConsultationRequest.reference)).one()

    worker = start_worker(
        {
            "DATABASE_URL": worker_settings["SQLALCHEMY_DATABASE_URI"],
            "HUEY_SQLITE_PATH": worker_settings["HUEY_SQLITE_PATH"],
            "REDIS_URL": worker_settings["REDIS_URL"] or "",
            "HUEY_NAME": worker_settings["HUEY_NAME"],
            "MAIL_SERVER": "127.0.0.1",
            "MAIL_PORT": str(smtp.port),
            "UPLOAD_DIR": worker_settings["UPLOAD_DIR"],
            "STAFF_NOTIFICATION_EMAIL": worker_settings["STAFF_NOTIFICATION_EMAIL"],
        }
    )
    try:
        received = smtp.collector.wait_for(2, timeout=60)
    finally:
        output = stop_worker(worker)
    assert len(received) == 2, output

    by_rcpt = {r.rcpt_tos[0]: r.message for r in received}
    patient = by_rcpt["erika.mustermann@example.com"]
    staff = by_rcpt["coordinators@example.com"]
    assert patient["Subject"] == f"We received your request {reference}"
    assert staff["Subject"] == f"New request {reference}"
    for message in (patient, staff):
        text = message.get_body(preferencelist=("plain",)).get_content()
        html = message.get_body(preferencelist=("html",)).get_content()
        assert reference in text and reference in html
        _assert_no_medical_details(text)
        _assert_no_medical_details(html)
    staff_text = staff.get_body(preferencelist=("plain",)).get_content()
    assert f"/staff/requests/{reference}" in staff_text
    assert "Erika" not in staff_text

    rows = _outbox(app)
    assert [r.status for r in rows] == [OutboxStatus.SENT, OutboxStatus.SENT]
    assert {r.message_id for r in rows} == {m["Message-ID"] for m in (patient, staff)}
    # The patient got their private link; the worker kept no working copy of it.
    [token] = TOKEN_RE.findall(patient.get_body(preferencelist=("plain",)).get_content())
    for row in rows:
        assert token not in row.body_text and token not in row.body_html
    # The logs carry ids, not patients' details.
    assert "erika" not in output.lower()


def test_mail_server_down_retries_later_and_sends_exactly_once(
    app: Flask, client: FlaskClient, smtp: SmtpServer
) -> None:
    # The mail server is down: nothing listens on its port yet.
    post_request(client)
    ids = [row.id for row in _outbox(app)]

    with app.app_context():
        delays = [deliver_outbox_email(i) for i in ids]
    assert all(d is not None and d >= timedelta(seconds=30) for d in delays)
    rows = _outbox(app)
    assert all(r.status == OutboxStatus.PENDING and r.attempts == 1 for r in rows)
    assert all(r.last_error for r in rows)
    assert all(r.next_attempt_at > now_utc() for r in rows)

    with app.app_context():
        # Not yet due: a second attempt does nothing.
        assert [deliver_outbox_email(i) for i in ids] == [None, None]
        # The server comes back and the retry falls due.
        smtp.start()
        db.session.execute(update(OutboxEmail).values(next_attempt_at=now_utc()))
        db.session.commit()
        assert [deliver_outbox_email(i) for i in ids] == [None, None]
        # Delivering again (a duplicate task) sends nothing more.
        assert [deliver_outbox_email(i) for i in ids] == [None, None]

    received = smtp.collector.wait_for(2)
    assert len(received) == 2
    rows = _outbox(app)
    assert [r.status for r in rows] == [OutboxStatus.SENT] * 2
    assert [r.attempts for r in rows] == [2, 2]
    assert sorted(m.message["Message-ID"] for m in received) == sorted(r.message_id for r in rows)


def test_a_mail_server_away_for_hours_fails_no_email_until_it_has_waited_its_give_up_hours(
    app: Flask, client: FlaskClient, smtp: SmtpServer
) -> None:
    """The mail server down (nothing listens: refused) for longer than a fixed count of
    attempts lasted (12, about five hours): every email used to fail for good, each for staff
    to send again by hand. An email is given up by its age instead: tried again, an hour
    apart at most, until it has waited MAIL_GIVE_UP_HOURS, its last attempt made then, and
    failed for good only if that one fails too. Back in time, the server gets it."""
    post_request(client)
    patient_id, staff_id = (row.id for row in _outbox(app))
    give_up = timedelta(hours=app.config["MAIL_GIVE_UP_HOURS"])

    def attempt_at_age(email_id: int, age: timedelta, attempts: int) -> timedelta | None:
        """A failed attempt by an email written ``age`` ago, after ``attempts`` before it."""
        with app.app_context():
            db.session.execute(
                update(OutboxEmail)
                .where(OutboxEmail.id == email_id)
                .values(
                    created_at=now_utc() - age,
                    attempts=attempts,
                    next_attempt_at=now_utc(),
                    status=OutboxStatus.PENDING,
                )
            )
            db.session.commit()
            return deliver_outbox_email(email_id)

    # Down for six hours, 20 attempts made: still waiting, the next try within the hour.
    delay = attempt_at_age(patient_id, timedelta(hours=6), attempts=20)
    assert delay == timedelta(hours=1)
    patient = _outbox(app)[0]
    assert (patient.status, patient.attempts) == (OutboxStatus.PENDING, 21)
    assert patient.last_error == "ConnectionRefusedError"
    # Ten minutes before its time is up: the last attempt is made when it is up, not later.
    delay = attempt_at_age(patient_id, give_up - timedelta(minutes=10), attempts=70)
    assert delay is not None and timedelta(minutes=9) < delay <= timedelta(minutes=10)
    assert _outbox(app)[0].status == OutboxStatus.PENDING
    # That last attempt fails too: failed for good, for staff to see.
    assert attempt_at_age(patient_id, give_up, attempts=71) is None
    assert _outbox(app)[0].status == OutboxStatus.FAILED

    # The other email, 30 hours and 40 attempts in, goes once the server is back.
    assert attempt_at_age(staff_id, timedelta(hours=30), attempts=40) is not None
    smtp.start()
    assert attempt_at_age(staff_id, timedelta(hours=31), attempts=41) is None
    [received] = smtp.collector.wait_for(1)
    assert received.rcpt_tos == ["coordinators@example.com"]
    assert _outbox(app)[1].status == OutboxStatus.SENT


@pytest.mark.parametrize("is_set", [True, False])
def test_the_retired_mail_max_attempts_is_named_at_start_up_while_it_is_set(
    app_settings: dict[str, Any], caplog: pytest.LogCaptureFixture, is_set: bool
) -> None:
    """MAIL_MAX_ATTEMPTS is no longer read (MAIL_GIVE_UP_HOURS replaced it): a clinic that
    set it is told so, instead of believing its count still holds."""
    from booking import create_app
    from tests.support import booking_warnings

    with booking_warnings(caplog):
        started = create_app({**app_settings, "MAIL_MAX_ATTEMPTS_SET": is_set})
    with started.app_context():
        db.session.remove()
        db.engine.dispose()
    named = "MAIL_MAX_ATTEMPTS is no longer read" in caplog.text
    assert named == is_set
    if is_set:
        hours = started.config["MAIL_GIVE_UP_HOURS"]
        assert f"MAIL_GIVE_UP_HOURS (now {hours} hours)" in caplog.text


def _tokens(text: str) -> set[str]:
    return set(TOKEN_RE.findall(text))


def test_a_delivered_email_keeps_its_links_but_not_their_tokens(
    app: Flask, client: FlaskClient, smtp: SmtpServer
) -> None:
    """The patient's email carries a private link that works; once the mail server has it,
    the outbox's copy names the page without the token, so a copy of the database or a
    backup opens nothing. Until then (server down: a retry is due) the row keeps it whole."""
    post_request(client)
    with app.app_context():
        patient_id, staff_id = db.session.scalars(select(OutboxEmail.id).order_by(OutboxEmail.id))
        assert deliver_outbox_email(patient_id) is not None  # nothing listens yet
        waiting = db.session.get(OutboxEmail, patient_id)
        assert waiting.status == OutboxStatus.PENDING
        [token] = _tokens(waiting.body_text)
        assert _tokens(waiting.body_html) == {token}

        smtp.start()
        db.session.execute(update(OutboxEmail).values(next_attempt_at=now_utc()))
        db.session.commit()
        assert deliver_outbox_email(patient_id) is None
        assert deliver_outbox_email(staff_id) is None
    patient, _staff = (r.message for r in smtp.collector.wait_for(2))
    text = patient.get_body(preferencelist=("plain",)).get_content()
    html = patient.get_body(preferencelist=("html",)).get_content()
    assert _tokens(text) == _tokens(html) == {token}
    # The link as received opens the patient's page.
    opened = app.test_client().get(f"/manage/open/{token}")
    assert opened.status_code == 303
    assert "/manage/SC-" in opened.headers["Location"]

    sent, staff_row = _outbox(app)
    assert sent.status == OutboxStatus.SENT
    for body in (sent.body_text, sent.body_html):
        assert token not in body
        assert "/manage/open/[redacted]" in body
    # The rest of the email is as it went out.
    assert sent.body_text == text.replace(token, "[redacted]").replace("\r\n", "\n")
    # The clinic's email has no token: its link to the record is kept as it was.
    reference = sent.subject.rsplit(" ", 1)[-1]
    assert f"/staff/requests/{reference}" in staff_row.body_text
    assert "[redacted]" not in staff_row.body_text + staff_row.body_html


def test_a_refused_recipient_fails_for_good(
    app: Flask, client: FlaskClient, smtp: SmtpServer
) -> None:
    smtp.start()
    smtp.collector.refuse_rcpt.add("nobody@example.com")
    post_request(client, valid_answers(email="nobody@example.com"))
    with app.app_context():
        patient_email = db.session.scalars(
            select(OutboxEmail).where(OutboxEmail.recipient == "nobody@example.com")
        ).one()
        assert deliver_outbox_email(patient_email.id) is None
        db.session.refresh(patient_email)
        assert patient_email.status == OutboxStatus.FAILED
        assert patient_email.last_error == "SMTPRecipientsRefused"
        # Staff may send it again (to a corrected address): it keeps its working link.
        assert len(_tokens(patient_email.body_text)) == 1


def test_a_refusal_of_the_clinics_own_settings_is_retried_and_shown_on_the_queue(
    app: Flask, client: FlaskClient, smtp: SmtpServer, staff: Staff
) -> None:
    """A 5xx about the clinic's settings (the sender refused, the login refused) fails every
    email alike, the urgent alerts to staff included: retried until the settings are fixed,
    and an urgent alert that failed for good is shown on the queue."""
    smtp.start()
    smtp.collector.refuse_sender = True
    post_request(client, valid_answers(red_fever="yes"))  # urgent
    with app.app_context():
        alert = db.session.scalars(
            select(OutboxEmail).where(OutboxEmail.template == "new_request_staff")
        ).one()
        assert deliver_outbox_email(alert.id) is not None  # a retry is due later
        db.session.refresh(alert)
        assert (alert.status, alert.attempts) == (OutboxStatus.PENDING, 1)
        assert alert.last_error == "SMTPSenderRefused 553"
        reference = db.session.scalars(select(ConsultationRequest.reference)).one()

    auth = AuthActions(client)
    auth.login("coordinator")
    assert "could not be emailed" not in client.get("/staff/").get_data(as_text=True)
    with app.app_context():  # every retry failed, for MAIL_GIVE_UP_HOURS
        db.session.execute(
            update(OutboxEmail)
            .where(OutboxEmail.id == alert.id)
            .values(
                created_at=now_utc() - timedelta(hours=app.config["MAIL_GIVE_UP_HOURS"]),
                next_attempt_at=now_utc(),
            )
        )
        db.session.commit()
        assert deliver_outbox_email(alert.id) is None
        assert db.session.get(OutboxEmail, alert.id).status == OutboxStatus.FAILED
    page = client.get("/staff/").get_data(as_text=True)
    assert "Alerts about urgent requests could not be emailed" in page
    banner = section_at(page, "failed-alerts-heading")
    assert f"/staff/requests/{reference}" in banner
    # A region named by its heading, which screen readers list, not an alert read out whole
    # on every visit; its link says where it leads.
    [opening] = re.findall(r'<section[^>]*"failed-alerts-heading"[^>]*>', page)
    assert "role=" not in opening
    assert re.search(
        rf'<a [^>]*href="/staff/requests/{reference}"[^>]*>Open request {reference}<', banner
    )
    auth.logout()
    auth.login("specialist")  # sees their own requests only: not this banner
    assert "could not be emailed" not in client.get("/staff/").get_data(as_text=True)


def test_an_urgent_alert_still_waiting_after_its_minutes_is_shown_on_the_queue(
    app: Flask, client: FlaskClient, staff: Staff
) -> None:
    """No worker sends anything (stopped, or its queue down), or the mail server keeps
    refusing and the retries take hours to run out: the alert about an urgent request waits,
    never failed, and the queue said nothing while staff believed they would have heard.
    After ``ALERT_LATE_MINUTES`` it is shown as one that failed; once delivered, no more."""
    post_request(client, valid_answers(red_fever="yes"))  # urgent; no worker runs here
    post_request(client, valid_answers(email="routine@example.com"))  # routine
    with app.app_context():
        alerts = db.session.scalars(
            select(OutboxEmail)
            .where(OutboxEmail.template == "new_request_staff")
            .order_by(OutboxEmail.id)
        ).all()
        urgent_alert, routine_alert = (alert.id for alert in alerts)
        urgent, _routine = db.session.scalars(
            select(ConsultationRequest.reference).order_by(ConsultationRequest.id)
        ).all()

    def written_ago(minutes: int) -> None:
        with app.app_context():
            db.session.execute(
                update(OutboxEmail)
                .where(OutboxEmail.id.in_([urgent_alert, routine_alert]))
                .values(created_at=now_utc() - timedelta(minutes=minutes))
            )
            db.session.commit()

    auth = AuthActions(client)
    auth.login("coordinator")
    written_ago(app.config["ALERT_LATE_MINUTES"] - 1)
    assert "could not be emailed" not in client.get("/staff/").get_data(as_text=True)
    written_ago(app.config["ALERT_LATE_MINUTES"] + 1)
    page = client.get("/staff/").get_data(as_text=True)
    banner = section_at(page, "failed-alerts-heading")
    assert f"more than {app.config['ALERT_LATE_MINUTES']} minutes" in banner
    assert re.findall(r"Open request (SC-[A-Z0-9-]+)<", banner) == [urgent]
    with app.app_context():  # the worker is back and sent it
        db.session.get(OutboxEmail, urgent_alert).status = OutboxStatus.SENT
        db.session.commit()
    assert "could not be emailed" not in client.get("/staff/").get_data(as_text=True)


def test_a_relay_refusing_the_clinic_is_retried_not_failed(
    app: Flask, client: FlaskClient, smtp: SmtpServer
) -> None:
    """554 5.7.1 "Relay access denied" names every recipient, but it is the clinic's
    settings the relay refuses: retried, like a refused login, not failed at once."""
    smtp.start()
    smtp.collector.refuse_relay = True
    post_request(client)
    with app.app_context():
        first = db.session.scalars(select(OutboxEmail)).first()
        assert deliver_outbox_email(first.id) is not None
        db.session.refresh(first)
        assert (first.status, first.attempts) == (OutboxStatus.PENDING, 1)


@pytest.mark.parametrize(
    ("reply", "retried"),
    [
        # The clinic's side: its sending address fails SPF, or the relay does not take mail
        # from this machine. Fixed there, the same email goes through.
        ("554 5.7.1 Message rejected: SPF check failed", True),
        ("550 5.7.1 Relaying not permitted from this IP address", True),
        # This email's content: retrying sends the same refused message.
        ("554 5.6.0 Message content rejected", False),
    ],
)
def test_a_policy_refusal_at_the_end_of_data_is_retried_and_a_content_refusal_is_not(
    app: Flask, client: FlaskClient, smtp: SmtpServer, reply: str, retried: bool
) -> None:
    smtp.start()
    smtp.collector.refuse_data = reply
    post_request(client)
    with app.app_context():
        first = db.session.scalars(select(OutboxEmail).order_by(OutboxEmail.id)).first()
        delay = deliver_outbox_email(first.id)
        db.session.refresh(first)
        assert first.last_error == f"SMTPDataError {reply[:3]}"
        if retried:
            assert delay is not None
            assert (first.status, first.attempts) == (OutboxStatus.PENDING, 1)
        else:
            assert delay is None
            assert first.status == OutboxStatus.FAILED
    assert smtp.received == []


@pytest.fixture
def worker_with_another_key(app_settings: dict[str, Any], app: Flask) -> Iterator[Flask]:
    """A worker configured with another ENCRYPTION_KEY than the app that wrote the outbox
    (a key mistyped on one machine, or an old key dropped before `keys rotate` was run)."""
    from booking import create_app
    from booking.crypto import new_key

    worker = create_app({**app_settings, "ENCRYPTION_KEY": new_key()})
    yield worker
    with worker.app_context():
        db.session.remove()
        db.engine.dispose()


def test_an_email_the_worker_cannot_decrypt_fails_at_once_and_is_shown_to_staff(
    app: Flask,
    client: FlaskClient,
    smtp: SmtpServer,
    staff: Staff,
    worker_with_another_key: Flask,
) -> None:
    """No retry will read it: the row fails on its first attempt, naming the missing key by
    its id (a hash) and nothing of the content, and an urgent alert among such rows shows on
    the queue like any alert that failed for good."""
    from booking.crypto import key_ring

    smtp.start()
    post_request(client, valid_answers(red_fever="yes"))  # urgent
    with app.app_context():
        alert_id = db.session.scalars(
            select(OutboxEmail.id).where(OutboxEmail.template == "new_request_staff")
        ).one()
        reference = db.session.scalars(select(ConsultationRequest.reference)).one()
        key_id = key_ring().current.label
    with worker_with_another_key.app_context():
        assert deliver_outbox_email(alert_id) is None  # no retry is due
    [alert] = [row for row in _outbox(app) if row.id == alert_id]
    assert (alert.status, alert.attempts) == (OutboxStatus.FAILED, 1)
    assert alert.last_error == f"KeyMissingError key id {key_id}"
    assert smtp.received == []
    # The right key still reads it (staff may send it again).
    assert reference in alert.body_text

    AuthActions(client).login("coordinator")
    page = client.get("/staff/").get_data(as_text=True)
    assert "Alerts about urgent requests could not be emailed" in page
    banner = section_at(page, "failed-alerts-heading")
    assert f"/staff/requests/{reference}" in banner


def _reminder_waiting(app: Flask, name: str) -> tuple[int, int, int]:
    """A coordinator, a request whose emails went out, and a reminder the job wrote for it
    (its template is what counts), waiting in the outbox: their ids."""
    from tests.factories import make_request, make_staff

    with app.app_context():
        coordinator_id = make_staff("coordinator", "coord@example.com").id
        request_id = make_request().id
        db.session.execute(update(OutboxEmail).values(status=OutboxStatus.SENT))
        reminder = OutboxEmail(
            request_id=request_id,
            template="appointment_reminder",
            recipient="erika@example.com",
            subject="Reminder",
            body_text="Reminder",
            body_html="<p>Reminder</p>",
            message_id=f"<{name}@example.com>",
        )
        db.session.add(reminder)
        db.session.commit()
        return coordinator_id, request_id, reminder.id


def test_an_email_withdrawn_while_claimed_and_unreadable_is_deleted_not_failed(
    app: Flask, smtp: SmtpServer, worker_with_another_key: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker that cannot decrypt the reminder it has just claimed fails it for good, so
    staff see it. Staff had cancelled the visit in that instant, withdrawing the reminder:
    failed, it showed on the queue as an email the patient never got (and a resend would
    have sent a reminder of a cancelled visit). It is deleted, as a withdrawn email whose
    attempt fails any other way."""
    from booking.dashboard import services as workflow
    from booking.requests.queries import unnotified_request_ids
    from booking.staff.models import StaffUser

    smtp.start()
    coordinator_id, request_id, reminder_id = _reminder_waiting(app, "reminder-unread")

    read = db.session.get

    def cancelled_meanwhile(entity: Any, ident: Any, **kw: Any) -> Any:
        """Staff cancel between the worker's claim and its reading of the row."""
        if entity is OutboxEmail and ident == reminder_id:
            with app.app_context():
                workflow.cancel_request(
                    db.session.get(ConsultationRequest, request_id),
                    db.session.get(StaffUser, coordinator_id),
                )
        return read(entity, ident, **kw)

    with worker_with_another_key.app_context():
        monkeypatch.setattr(db.session, "get", cancelled_meanwhile)
        assert deliver_outbox_email(reminder_id) is None
        monkeypatch.undo()
    with app.app_context():
        assert db.session.get(OutboxEmail, reminder_id) is None
        assert request_id not in db.session.scalars(unnotified_request_ids()).all()
    assert smtp.received == []


def test_a_lapsed_claim_past_its_give_up_time_fails_instead_of_going_round_again(
    app: Flask, client: FlaskClient, smtp: SmtpServer, staff: Staff
) -> None:
    """A row whose worker never finished (killed by it, or broken by it) is released while
    it is younger than MAIL_GIVE_UP_HOURS, however many attempts it had (a worker restarted
    during a long outage of the mail server), and failed once it is older, the rule of an
    attempt the server refused: never claimed and released for ever."""
    smtp.start()
    post_request(client)
    give_up = timedelta(hours=app.config["MAIL_GIVE_UP_HOURS"])
    lapsed = now_utc() - timedelta(seconds=app.config["MAIL_CLAIM_TIMEOUT_SECONDS"] + 1)
    with app.app_context():
        patient_id, staff_id = db.session.scalars(select(OutboxEmail.id).order_by(OutboxEmail.id))
        for email_id, written in (
            (patient_id, now_utc() - give_up - timedelta(minutes=1)),
            (staff_id, now_utc() - give_up + timedelta(minutes=10)),
        ):
            db.session.execute(
                update(OutboxEmail)
                .where(OutboxEmail.id == email_id)
                .values(
                    status=OutboxStatus.SENDING, claimed_at=lapsed, attempts=50, created_at=written
                )
            )
        db.session.commit()
        assert requeue_stalled_emails() == [staff_id]  # still within its time: released
        assert requeue_stalled_emails() == []  # the spent one is not handed out again
    patient, staff = _outbox(app)
    assert (patient.status, patient.last_error) == (OutboxStatus.FAILED, "ClaimLapsed")
    assert staff.status == OutboxStatus.PENDING
    with app.app_context():
        assert deliver_outbox_email(patient_id) is None  # a failed row is not claimed
    assert _outbox(app)[0].status == OutboxStatus.FAILED
    assert smtp.received == []
    # Staff read why on the record, among the emails the patient did not get.
    with app.app_context():
        reference = db.session.scalars(select(ConsultationRequest.reference)).one()
    AuthActions(client).login("coordinator")
    page = client.get(f"/staff/requests/{reference}").get_data(as_text=True)
    banner = " ".join(section_at(page, 'id="unnotified"').split())
    assert "(not sent: its sending never finished before the time allowed for it ran out)" in banner


class WorkerKilled(BaseException):
    """The worker process dying in the middle of a delivery (SIGKILL, out of memory)."""


@pytest.fixture
def kill_worker(app: Flask) -> set[int]:
    """The ids of emails whose worker dies once it has claimed them and read them: a
    delivery check (the outbox's own hook) that stops the delivery there."""
    doomed: set[int] = set()

    def die(email: OutboxEmail) -> None:
        if email.id in doomed:
            raise WorkerKilled
        return None

    register_delivery_check(app, die)
    return doomed


def _claims_lapse(app: Flask, *email_ids: int) -> None:
    """MAIL_CLAIM_TIMEOUT_SECONDS pass over the claims of ``email_ids`` by workers that died."""
    with app.app_context():
        db.session.execute(
            update(OutboxEmail)
            .where(OutboxEmail.id.in_(email_ids), OutboxEmail.status == OutboxStatus.SENDING)
            .values(
                claimed_at=now_utc()
                - timedelta(seconds=app.config["MAIL_CLAIM_TIMEOUT_SECONDS"] + 1)
            )
        )
        db.session.commit()


def _attempt(app: Flask, email_id: int) -> None:
    """One worker's attempt at ``email_id``, which may kill (or break) the worker."""
    with app.app_context(), contextlib.suppress(WorkerKilled, ValueError):
        deliver_outbox_email(email_id)


def test_an_email_that_breaks_its_worker_each_time_fails_after_its_max_lapsed_claims(
    app: Flask, client: FlaskClient, smtp: SmtpServer, staff: Staff
) -> None:
    """An email its worker cannot even build (here a calendar file's type no header can
    hold) stops the worker at every claim, which lapses: released while its claims lapsed
    fewer than MAIL_MAX_LAPSED_CLAIMS times in a row, then failed for good where staff see
    it, hours before MAIL_GIVE_UP_HOURS, instead of stopping a worker every
    MAIL_CLAIM_TIMEOUT_SECONDS for three days."""
    smtp.start()
    post_request(client)
    with app.app_context():
        patient_id, _staff_id = db.session.scalars(select(OutboxEmail.id).order_by(OutboxEmail.id))
        email = db.session.get(OutboxEmail, patient_id)
        email.attachment_name, email.attachment_body = "visit.ics", "BEGIN:VCALENDAR"
        email.attachment_type = "text/calendar\nmethod=REQUEST"
        db.session.commit()
        reference = db.session.scalars(select(ConsultationRequest.reference)).one()
    assert app.config["MAIL_MAX_LAPSED_CLAIMS"] == 3
    for lapses in (1, 2):
        _attempt(app, patient_id)
        _claims_lapse(app, patient_id)
        with app.app_context():
            assert requeue_stalled_emails() == [patient_id], f"released after {lapses} lapse(s)"
        assert _outbox(app)[0].status == OutboxStatus.PENDING
    _attempt(app, patient_id)
    _claims_lapse(app, patient_id)
    with app.app_context():
        assert requeue_stalled_emails() == []
    patient = _outbox(app)[0]
    assert (patient.status, patient.last_error, patient.attempts) == (
        OutboxStatus.FAILED,
        "KilledWorker",
        3,
    )
    assert smtp.received == []
    auth = AuthActions(client)
    auth.login("coordinator")
    page = client.get(f"/staff/requests/{reference}").get_data(as_text=True)
    banner = section_at(page, 'id="unnotified"')
    assert "(not sent: the mail worker stopped each time it tried to send it; " in banner


def test_an_attempt_that_ends_between_lapsed_claims_starts_their_count_again(
    app: Flask, client: FlaskClient, smtp: SmtpServer, kill_worker: set[int]
) -> None:
    """A worker restarted during an outage of the mail server, twice while it was sending
    one email, then an attempt that the outage fails and retries: the count starts again,
    so two more restarts fail nothing. Only claims lapsed in a row count."""
    post_request(client)  # the mail server is down
    patient_id = _outbox(app)[0].id
    kill_worker.add(patient_id)

    def lapse() -> list[int]:
        _attempt(app, patient_id)
        _claims_lapse(app, patient_id)
        with app.app_context():
            return requeue_stalled_emails()

    assert [lapse(), lapse()] == [[patient_id], [patient_id]]
    kill_worker.clear()
    with app.app_context():  # the worker lives through this attempt: the outage refuses it
        assert deliver_outbox_email(patient_id) is not None
        db.session.execute(
            update(OutboxEmail)
            .where(OutboxEmail.id == patient_id)
            .values(next_attempt_at=now_utc())
        )
        db.session.commit()
    assert _outbox(app)[0].unfinished_claims == 0
    kill_worker.add(patient_id)
    assert [lapse(), lapse()] == [[patient_id], [patient_id]]
    patient = _outbox(app)[0]
    assert (patient.status, patient.attempts) == (OutboxStatus.PENDING, 5)
    kill_worker.clear()
    smtp.start()
    with app.app_context():
        assert deliver_outbox_email(patient_id) is None
    assert _outbox(app)[0].status == OutboxStatus.SENT
    assert [r.rcpt_tos for r in smtp.collector.wait_for(1)] == [["erika.mustermann@example.com"]]


def test_an_email_killed_with_the_email_at_fault_is_retried_alone_and_not_failed_with_it(
    app: Flask, client: FlaskClient, smtp: SmtpServer, kill_worker: set[int]
) -> None:
    """A worker process killed by one email takes the claims of its other threads with it.
    Released together, the two would be killed together every time and both fail: from its
    second lapse in a row an email is released alone, one at a time, while no other email
    released after a lapse is still to be tried; so the innocent one is sent, and only the
    one at fault fails."""
    smtp.start()
    post_request(client)
    innocent, at_fault = (row.id for row in _outbox(app))

    def killed_together() -> None:
        """Both claimed by one worker process, which the email at fault kills."""
        kill_worker.add(innocent)
        _attempt(app, innocent)
        _attempt(app, at_fault)
        kill_worker.discard(innocent)
        _claims_lapse(app, innocent, at_fault)

    kill_worker.add(at_fault)
    killed_together()
    with app.app_context():
        assert requeue_stalled_emails() == [innocent, at_fault]  # a first lapse: a restart
    killed_together()
    with app.app_context():
        assert requeue_stalled_emails() == [innocent]  # alone
        assert requeue_stalled_emails() == []  # the other waits while this one is to be tried
    _attempt(app, innocent)
    assert _outbox(app)[0].status == OutboxStatus.SENT
    with app.app_context():
        assert requeue_stalled_emails() == [at_fault]
    _attempt(app, at_fault)
    _claims_lapse(app, at_fault)
    with app.app_context():
        assert requeue_stalled_emails() == []
    sent, failed = _outbox(app)
    assert (sent.status, sent.unfinished_claims) == (OutboxStatus.SENT, 0)
    assert (failed.status, failed.last_error) == (OutboxStatus.FAILED, "KilledWorker")
    assert [r.rcpt_tos for r in smtp.collector.wait_for(1)] == [["erika.mustermann@example.com"]]


def test_sweep_finds_emails_whose_task_was_lost(
    app: Flask, client: FlaskClient, smtp: SmtpServer
) -> None:
    smtp.start()
    post_request(client)
    with app.app_context():
        patient_id, staff_id = db.session.scalars(select(OutboxEmail.id).order_by(OutboxEmail.id))
        # Fresh rows are not swept: their task is still expected to run.
        assert requeue_stalled_emails() == []
        # A worker claimed the staff email and died; the patient email's task was lost.
        long_ago = now_utc() - timedelta(hours=1)
        db.session.execute(
            update(OutboxEmail).where(OutboxEmail.id == patient_id).values(next_attempt_at=long_ago)
        )
        db.session.execute(
            update(OutboxEmail)
            .where(OutboxEmail.id == staff_id)
            .values(status=OutboxStatus.SENDING, claimed_at=long_ago, next_attempt_at=long_ago)
        )
        db.session.commit()
        # The stalled claim is released and handed back at once, with the lost task's row.
        assert requeue_stalled_emails() == [patient_id, staff_id]
        staff = db.session.get(OutboxEmail, staff_id)
        assert staff.status == OutboxStatus.PENDING
        for email_id in (patient_id, staff_id):
            deliver_outbox_email(email_id)
    assert len(smtp.collector.wait_for(2)) == 2


@contextlib.contextmanager
def _app_with_queue(app_settings: dict[str, Any], redis_url: str) -> Iterator[Flask]:
    """An app of its own whose task queue is the Redis at ``redis_url``, its tables made."""
    app_settings.update(HUEY_BACKEND="redis", REDIS_URL=redis_url)
    from booking import create_app

    app = create_app(app_settings)
    with app.app_context():
        db.create_all()
    try:
        yield app
    finally:
        with app.app_context():
            db.session.remove()
            if db.engine.dialect.name == "postgresql":
                db.drop_all()
            db.engine.dispose()


def test_request_is_stored_even_when_the_queue_is_down(
    app_settings: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    # A Redis queue on a port where nothing listens.
    with _app_with_queue(app_settings, f"redis://127.0.0.1:{free_port()}/0") as app:
        response = post_request(app.test_client())
        assert response.status_code == 303
        rows = _outbox(app)
        assert [r.status for r in rows] == [OutboxStatus.PENDING] * 2
        assert "the sweep will retry" in caplog.text


@pytest.fixture
def silent_queue() -> Iterator[tuple[str, list[socket.socket]]]:
    """A Redis that takes each connection and never answers (a hung server, a machine gone
    behind a firewall that drops packets): its URL, with a one-second timeout, and the
    connections it took."""
    server = socket.create_server(("127.0.0.1", 0))
    taken: list[socket.socket] = []

    def take() -> None:
        with contextlib.suppress(OSError):  # closed at the end of the test
            while True:
                taken.append(server.accept()[0])

    threading.Thread(target=take, daemon=True).start()
    port = server.getsockname()[1]
    try:
        yield f"redis://127.0.0.1:{port}/0?socket_connect_timeout=1&socket_timeout=1", taken
    finally:
        server.close()
        for connection in taken:
            connection.close()


def test_a_queue_that_never_answers_is_waited_for_once_per_change(
    app_settings: dict[str, Any],
    silent_queue: tuple[str, list[socket.socket]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Every attempt at a silent queue waits for its whole timeout: the request's two emails
    are left to the sweep after the first one timed out, not tried (and waited for) each."""
    url, taken = silent_queue
    with _app_with_queue(app_settings, url) as app:
        response = post_request(app.test_client())
        assert response.status_code == 303
        rows = _outbox(app)
        assert [r.status for r in rows] == [OutboxStatus.PENDING] * 2
        assert len(taken) == 1
        ids = ", ".join(str(row.id) for row in rows)
        assert f"could not enqueue outbox email(s) {ids}; the sweep will retry" in caplog.text


def test_a_queue_that_never_answers_is_not_waited_for_for_ever_without_timeouts_in_its_url(
    app_settings: dict[str, Any],
    silent_queue: tuple[str, list[socket.socket]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """REDIS_URL without timeouts of its own (README's example): redis-py would wait for
    ever for the silent Redis, and the patient's page with it, though the request was
    stored. The queue's connections have a timeout of their own (REDIS_TIMEOUT_SECONDS)."""
    from booking.tasks import REDIS_TIMEOUT_SECONDS

    url = silent_queue[0].partition("?")[0]
    with _app_with_queue(app_settings, url) as app:
        answer: dict[str, int] = {}
        sending = threading.Thread(
            target=lambda: answer.update(status=post_request(app.test_client()).status_code),
            daemon=True,
        )
        sending.start()
        sending.join(REDIS_TIMEOUT_SECONDS + 10)
        assert not sending.is_alive(), "the request's page waited for the queue for ever"
        assert answer == {"status": 303}
        assert [r.status for r in _outbox(app)] == [OutboxStatus.PENDING] * 2
        assert "the sweep will retry" in caplog.text


def _deliver_in_background(app: Flask, email_id: int) -> tuple[threading.Thread, dict[str, Any]]:
    """A worker delivering ``email_id`` in a thread of its own (the test acts meanwhile):
    the thread, and where it leaves the delay returned or the error raised."""
    outcome: dict[str, Any] = {}

    def worker() -> None:
        with app.app_context():
            try:
                outcome["delay"] = deliver_outbox_email(email_id)
            except Exception as exc:
                outcome["error"] = exc
            finally:
                db.session.remove()

    thread = threading.Thread(target=worker)
    thread.start()
    return thread, outcome


def test_an_email_erased_while_it_is_being_sent_ends_quietly(app: Flask, smtp: SmtpServer) -> None:
    """An admin erases a patient while the worker is handing their email to the server: the
    worker finds its row gone and stops without an error (nothing left to record)."""
    from tests.factories import make_request

    smtp.collector.stall_at = "DATA"
    smtp.start()
    with app.app_context():
        make_request()
        email_id = db.session.scalars(select(OutboxEmail.id).order_by(OutboxEmail.id)).first()
    thread, outcome = _deliver_in_background(app, email_id)
    assert smtp.collector.stalled.wait(timeout=30)
    with app.app_context():
        db.session.execute(OutboxEmail.__table__.delete().where(OutboxEmail.id == email_id))
        db.session.commit()
    smtp.collector.release()
    thread.join(timeout=30)
    assert outcome == {"delay": None}


def test_an_email_released_from_a_dead_worker_is_due_at_once(
    app: Flask, client: FlaskClient, smtp: SmtpServer
) -> None:
    """A claim that timed out was the wait: the released email goes out on that sweep, not a
    second grace period (MAIL_REQUEUE_AFTER_SECONDS) later."""
    smtp.start()
    post_request(client)
    assert app.config["MAIL_REQUEUE_AFTER_SECONDS"] > 0
    with app.app_context():
        patient_id, _staff = db.session.scalars(select(OutboxEmail.id).order_by(OutboxEmail.id))
        # A worker claimed the patient's email just after it was written, then died.
        claimed_at = now_utc() - timedelta(seconds=app.config["MAIL_CLAIM_TIMEOUT_SECONDS"] + 1)
        db.session.execute(
            update(OutboxEmail)
            .where(OutboxEmail.id == patient_id)
            .values(status=OutboxStatus.SENDING, claimed_at=claimed_at, attempts=1)
        )
        db.session.commit()
        # The staff email's task is still expected to run: not swept.
        assert requeue_stalled_emails() == [patient_id]
        released = db.session.get(OutboxEmail, patient_id)
        assert released.status == OutboxStatus.PENDING
        assert released.next_attempt_at <= now_utc()
        assert deliver_outbox_email(patient_id) is None
        db.session.refresh(released)
        assert released.status == OutboxStatus.SENT
        assert released.attempts == 2
    assert [r.rcpt_tos for r in smtp.collector.wait_for(1)] == [["erika.mustermann@example.com"]]


@pytest.fixture
def silent_mail_server(app_settings: dict[str, Any]) -> Iterator[int]:
    """A server on 127.0.0.1 that accepts connections (the kernel completes them) and never
    says a word, as a hung mail server or a proxy in front of a dead one does; the app talks
    to it with a one-second time-out."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    app_settings.update(MAIL_PORT=listener.getsockname()[1], MAIL_TIMEOUT=1)
    default_timeout = socket.getdefaulttimeout()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()
        socket.setdefaulttimeout(default_timeout)  # the delivery sets the process default


def test_a_mail_server_that_never_answers_is_recorded_as_a_time_out(
    silent_mail_server: int, app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    from tests.factories import make_request

    with app.app_context():
        make_request()
        email_id = db.session.scalars(select(OutboxEmail.id).order_by(OutboxEmail.id)).first()
        started = time.monotonic()
        delay = deliver_outbox_email(email_id)
        assert time.monotonic() - started < 10
        email = db.session.get(OutboxEmail, email_id)
        assert delay is not None  # a time-out is worth retrying
        assert email.status == OutboxStatus.PENDING
        assert email.last_error == "SMTPTimeout"
    assert f"outbox email {email_id} attempt 1 failed (SMTPTimeout)" in caplog.text
    assert "Disconnected" not in caplog.text


def test_a_reminder_withdrawn_while_it_is_being_sent_is_not_tried_again(
    app: Flask, smtp: SmtpServer
) -> None:
    """The mail server is slow: the worker is handing it a message (a reminder) when staff
    cancel the request. That attempt is past stopping, but the server then answers "try
    later": the reminder of the cancelled visit was put back in the queue and delivered
    after the cancellation's email. It is now deleted, and the cancellation's email goes."""
    from booking.dashboard import services as workflow
    from booking.staff.models import StaffUser

    smtp.collector.stall_at = "DATA"
    smtp.collector.refuse_data = "451 4.3.0 Please try again later"
    smtp.start()
    coordinator_id, request_id, reminder_id = _reminder_waiting(app, "reminder")
    thread, outcome = _deliver_in_background(app, reminder_id)
    assert smtp.collector.stalled.wait(timeout=30)
    with app.app_context():
        workflow.cancel_request(
            db.session.get(ConsultationRequest, request_id),
            db.session.get(StaffUser, coordinator_id),
        )
    smtp.collector.release()
    thread.join(timeout=30)
    assert outcome == {"delay": None}
    with app.app_context():
        left = db.session.scalars(select(OutboxEmail.template)).all()
        assert "appointment_reminder" not in left and "request_update" in left


@pytest.mark.parametrize("moment", ["after the claim", "during the checks"])
def test_a_reminder_withdrawn_after_its_claim_is_not_sent(
    app: Flask, smtp: SmtpServer, moment: str
) -> None:
    """The worker claims a reminder (pending -> sending, committed); then staff cancel the
    visit, which, the reminder being claimed, can only mark it withdrawn: before the worker
    reads the row, or (PostgreSQL, whose reads take no lock) while it runs the checks on it.
    The reminder is deleted unsent, and the cancellation's email still goes. It was sent:
    only an attempt that failed looked at the mark."""
    from sqlalchemy import event

    from booking.dashboard import services as workflow
    from booking.notifications.services import register_delivery_check
    from booking.staff.models import StaffUser

    if moment == "during the checks" and app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        pytest.skip("on SQLite the worker's read holds the write lock: a cancellation waits")
    smtp.start()
    coordinator_id, request_id, reminder_id = _reminder_waiting(app, "reminder-claimed")

    def cancel(*_args: Any) -> None:
        """Staff cancel, in a session of their own, the reminder claimed."""
        with app.app_context():
            assert db.session.get(OutboxEmail, reminder_id).status == OutboxStatus.SENDING
            workflow.cancel_request(
                db.session.get(ConsultationRequest, request_id),
                db.session.get(StaffUser, coordinator_id),
            )
            assert db.session.get(OutboxEmail, reminder_id).withdrawn_at is not None

    with app.app_context():
        if moment == "after the claim":
            # The worker's own session: its first commit is the claim's.
            event.listen(db.session(), "after_commit", cancel, once=True)
        else:
            register_delivery_check(app, lambda e: cancel() if e.id == reminder_id else None)
        assert deliver_outbox_email(reminder_id) is None
        assert db.session.get(OutboxEmail, reminder_id) is None
    assert smtp.received == []
    _deliver_all(app)  # the cancellation's email
    [received] = smtp.collector.wait_for(1)
    assert "Reminder" not in received.message["Subject"]


def _deliver_all(app: Flask) -> None:
    """Deliver every outbox row that is due, once."""
    with app.app_context():
        for email_id in db.session.scalars(select(OutboxEmail.id).order_by(OutboxEmail.id)):
            deliver_outbox_email(email_id)


def test_a_long_staff_message_in_spanish_arrives_whole_in_lines_a_server_takes(
    app: Flask, clinic: Any, smtp: SmtpServer
) -> None:
    """The message staff send with a confirmation (up to 1,000 characters) is one line of
    the HTML part. Sent as 8-bit, that line passed SMTP's 998-byte limit and the server
    refused the email ("500 Line too long") for good. Quoted-printable keeps every line
    short, needs no 8BITMIME, and decodes to the same text."""
    from booking.dashboard.services import confirm_request
    from booking.staff.models import StaffUser
    from tests.factories import make_request, slot_two_days_ahead

    smtp.start()
    sentence = "Señora Núñez, traiga la resonancia magnética y el informe de su médico. "
    message = (sentence * 20)[:1000].strip()
    with app.app_context():
        consultation = make_request(locale="es")
        db.session.execute(update(OutboxEmail).values(status=OutboxStatus.SENT))
        db.session.commit()
        coordinator = db.session.get(StaffUser, clinic.coordinator.id)
        confirm_request(consultation, coordinator, slot_two_days_ahead(clinic), message)
    _deliver_all(app)
    [received] = smtp.collector.wait_for(1)
    [row] = [r for r in _outbox(app) if r.template == "request_update"]
    assert row.status == OutboxStatus.SENT
    assert all(len(line) <= 998 for line in received.raw.splitlines())
    assert received.raw.isascii()  # 7-bit: nothing that needs the server's 8BITMIME
    text = received.message.get_body(preferencelist=("plain",)).get_content()
    html = received.message.get_body(preferencelist=("html",)).get_content()
    assert message in text and message in html


def _calendar_part(message: Any) -> str:
    """The calendar file attached to ``message``."""
    [part] = [
        p for p in message.walk() if p.get_content_type() == "text/calendar" and p.get_filename()
    ]
    content = part.get_content()
    return content.decode() if isinstance(content, bytes) else content


def _confirmation_retrying(app: Flask, clinic: Any, smtp: SmtpServer) -> tuple[int, str]:
    """A request confirmed with a message ("bring your X-rays"), its confirmation's first
    attempt answered "try later": the request's id and the confirmation's Message-ID."""
    from booking.dashboard.services import confirm_request
    from booking.staff.models import StaffUser
    from tests.factories import make_request, slot_two_days_ahead

    smtp.start()
    with app.app_context():
        consultation = make_request()
        request_id = consultation.id
        db.session.execute(update(OutboxEmail).values(status=OutboxStatus.SENT))
        db.session.commit()
        coordinator = db.session.get(StaffUser, clinic.coordinator.id)
        confirm_request(
            consultation, coordinator, slot_two_days_ahead(clinic), "Please bring your X-rays."
        )
        first_id, first = db.session.execute(
            select(OutboxEmail.id, OutboxEmail.message_id).where(
                OutboxEmail.status == OutboxStatus.PENDING
            )
        ).one()
    smtp.collector.refuse_data = "451 4.3.0 Please try again later"
    with app.app_context():
        assert deliver_outbox_email(first_id) is not None  # retried later
    smtp.collector.refuse_data = None
    return request_id, first


def test_an_email_with_an_outdated_time_is_never_delivered_after_a_newer_one(
    app: Flask, clinic: Any, smtp: SmtpServer
) -> None:
    """Confirmed, then quickly rescheduled: the confirmation's first attempt is answered
    "try later" and its retry would come after the reschedule's email, the patient's latest
    email and invitation showing the old time. The reschedule withdraws it; the message
    staff wrote in it goes in the reschedule's email instead."""
    from booking.dashboard.services import reschedule_request
    from booking.staff.models import StaffUser
    from tests.factories import slot_two_days_ahead

    request_id, first = _confirmation_retrying(app, clinic, smtp)
    with app.app_context():
        reschedule_request(
            db.session.get(ConsultationRequest, request_id),
            db.session.get(StaffUser, clinic.coordinator.id),
            slot_two_days_ahead(clinic),
        )
        consultation = db.session.get(ConsultationRequest, request_id)
        new_time = consultation.appointment.starts_at
        # Withdrawn (an id SQLite may give the new row: the Message-ID tells them apart).
        assert first not in db.session.scalars(select(OutboxEmail.message_id)).all()
        db.session.execute(update(OutboxEmail).values(next_attempt_at=now_utc()))
        db.session.commit()
    _deliver_all(app)
    [received] = smtp.collector.wait_for(1)
    time.sleep(0.2)  # nothing else arrives
    assert len(smtp.received) == 1
    assert received.message["Message-ID"] != first
    ics = _calendar_part(received.message)
    assert "SEQUENCE:1" in ics and "METHOD:REQUEST" in ics  # the confirmation had 0
    assert f"DTSTART:{new_time:%Y%m%dT%H%M%SZ}" in ics
    text = received.message.get_body(preferencelist=("plain",)).get_content()
    # The patient was never told of the confirmation: the move's email is the confirmation,
    # at the new time (test_untold_confirmation).
    assert "Your appointment is confirmed." in text
    assert "Please bring your X-rays." in text


def test_a_confirmation_still_retrying_never_arrives_after_the_video_link(
    app: Flask, clinic: Any, smtp: SmtpServer
) -> None:
    """A video visit is confirmed ("bring your X-rays"), the confirmation's first attempt is
    answered "try later", and staff then give the visit its link. The confirmation's retry
    went out after the link's email: the patient's latest email said "the clinic will send
    you how to join", with the calendar event before the link. The link's email withdraws it,
    as every change of the appointment's calendar event does, and carries its message."""
    from booking.dashboard.services import set_join_link
    from booking.scheduling.models import VisitMode
    from booking.staff.models import StaffUser
    from tests.factories import set_visit_mode

    link = "https://meet.example.org/spine-4821?pwd=Xy7"
    set_visit_mode(app, clinic, VisitMode.VIDEO)
    request_id, first = _confirmation_retrying(app, clinic, smtp)
    with app.app_context():
        set_join_link(
            db.session.get(ConsultationRequest, request_id),
            db.session.get(StaffUser, clinic.coordinator.id),
            link,
        )
        assert first not in db.session.scalars(select(OutboxEmail.message_id)).all()
        db.session.execute(update(OutboxEmail).values(next_attempt_at=now_utc()))
        db.session.commit()
    _deliver_all(app)
    [received] = smtp.collector.wait_for(1)
    time.sleep(0.2)  # nothing else arrives
    assert len(smtp.received) == 1
    assert received.message["Subject"].startswith("How to join your video appointment")
    assert "SEQUENCE:1" in _calendar_part(received.message)
    text = received.message.get_body(preferencelist=("plain",)).get_content()
    assert f"Join the video visit: {link}" in text
    assert "Please bring your X-rays." in text


def _video_visit_confirmed(app: Flask, clinic: Any) -> int:
    """A confirmed video visit whose emails so far went out: its request's id."""
    from booking.scheduling.models import VisitMode
    from tests.factories import confirmed_request, set_visit_mode

    set_visit_mode(app, clinic, VisitMode.VIDEO)
    request_id = confirmed_request(app, clinic)
    with app.app_context():
        db.session.execute(update(OutboxEmail).values(status=OutboxStatus.SENT))
        db.session.commit()
    return request_id


def _link_given(app: Flask, clinic: Any, request_id: int, link: str) -> int:
    """The coordinator gives the visit ``link``: the id of the email telling the patient,
    the only one waiting."""
    from booking.dashboard.services import set_join_link
    from booking.staff.models import StaffUser

    with app.app_context():
        set_join_link(
            db.session.get(ConsultationRequest, request_id),
            db.session.get(StaffUser, clinic.coordinator.id),
            link,
        )
        return db.session.scalars(
            select(OutboxEmail.id).where(OutboxEmail.status == OutboxStatus.PENDING)
        ).one()


def test_a_delivered_email_keeps_no_video_visits_link(
    app: Flask, clinic: Any, smtp: SmtpServer
) -> None:
    """The patient gets the link that joins their video visit (it may hold a passcode);
    once the mail server has it, the outbox's copy keeps it nowhere, neither in its bodies
    nor in its calendar file, as the tokens of the clinic's own links. The rest stays."""
    from icalendar import Calendar

    link = "https://meet.example.org/spine-4821-with-a-rather-long-room-name?pwd=Xy7&lang=en"
    request_id = _video_visit_confirmed(app, clinic)
    email_id = _link_given(app, clinic, request_id, link)
    smtp.start()
    with app.app_context():
        assert deliver_outbox_email(email_id) is None
    [received] = smtp.collector.wait_for(1)
    assert link in received.message.get_body(preferencelist=("plain",)).get_content()
    assert "pwd=Xy7" in _calendar_part(received.message).replace("\r\n ", "")

    [sent] = [row for row in _outbox(app) if row.id == email_id]
    assert sent.status == OutboxStatus.SENT
    stored = sent.body_text + sent.body_html + (sent.attachment_body or "")
    assert "meet.example.org" not in stored and "Xy7" not in stored
    assert "Join the video visit: [redacted]" in sent.body_text
    assert "/manage/open/[redacted]" in sent.body_text  # the clinic's own link keeps its page
    (event,) = Calendar.from_ical(sent.attachment_body).walk("VEVENT")
    assert (str(event["LOCATION"]), str(event["URL"])) == ("[redacted]", "[redacted]")
    assert int(event["SEQUENCE"]) == 1  # what the patient's calendar holds, for the record


@pytest.mark.parametrize("by", ["staff", "patient"])
def test_a_staff_message_about_the_visit_is_not_carried_into_its_cancellation(
    app: Flask, clinic: Any, smtp: SmtpServer, by: str
) -> None:
    """Confirmed with a message ("bring your X-rays"), then cancelled before the
    confirmation went out: the cancellation withdraws it, but its message was about a visit
    that no longer takes place, so it is not carried into the cancellation's email. It
    stays on the request's timeline, where staff wrote it."""
    from booking.dashboard.services import cancel_request, confirm_request
    from booking.manage.services import cancel
    from booking.requests.events import RequestEvent
    from booking.staff.models import StaffUser
    from tests.factories import make_request, slot_two_days_ahead

    smtp.start()
    with app.app_context():
        consultation = make_request()
        request_id, patient = consultation.id, consultation.patient.email
        db.session.execute(update(OutboxEmail).values(status=OutboxStatus.SENT))
        db.session.commit()
        coordinator = db.session.get(StaffUser, clinic.coordinator.id)
        confirm_request(
            consultation, coordinator, slot_two_days_ahead(clinic), "Please bring your X-rays."
        )
        consultation = db.session.get(ConsultationRequest, request_id)
        if by == "staff":
            cancel_request(consultation, db.session.get(StaffUser, clinic.coordinator.id))
        else:
            cancel(consultation, None)
        # The confirmation was withdrawn: only the cancellation goes to the patient.
        [email] = db.session.scalars(
            select(OutboxEmail).where(
                OutboxEmail.recipient == patient, OutboxEmail.status == OutboxStatus.PENDING
            )
        ).all()
        assert email.staff_message is None
        timeline = db.session.scalars(
            select(RequestEvent.body).where(RequestEvent.request_id == request_id)
        ).all()
        assert "Please bring your X-rays." in timeline
    _deliver_all(app)
    received = smtp.collector.wait_for(2 if by == "patient" else 1)  # and the clinic's notice
    [to_patient] = [r.message for r in received if r.rcpt_tos == [patient]]
    text = to_patient.get_body(preferencelist=("plain",)).get_content()
    html = to_patient.get_body(preferencelist=("html",)).get_content()
    assert "is cancelled" in to_patient["Subject"]
    assert "METHOD:CANCEL" in _calendar_part(to_patient)
    assert "X-rays" not in text and "X-rays" not in html
    assert "A message from the clinic" not in text


def test_an_address_with_accents_before_the_at_fails_at_once_not_for_hours(
    app: Flask, smtp: SmtpServer
) -> None:
    """josé@ejemplo.es needs SMTPUTF8, which the mail library never uses: every attempt
    raises the same UnicodeEncodeError before the server hears of it. Failed at once (staff
    see it and can correct the address), not retried for hours. Accents after the @ are
    fine: the domain goes out in its ASCII form."""
    from tests.factories import make_request

    smtp.start()
    with app.app_context():
        make_request()
        db.session.execute(update(OutboxEmail).values(status=OutboxStatus.SENT))
        for recipient in ("josé@ejemplo.es", "jose@müller.example"):
            db.session.add(
                OutboxEmail(
                    template="request_update",
                    recipient=recipient,
                    subject="Update",
                    body_text="Update",
                    body_html="<p>Update</p>",
                    message_id=f"<{uuid.uuid4().hex}@example.com>",
                )
            )
        db.session.commit()
    _deliver_all(app)
    rows = {row.recipient: row for row in _outbox(app)}
    accented, idna = rows["josé@ejemplo.es"], rows["jose@müller.example"]
    assert (accented.status, accented.attempts) == (OutboxStatus.FAILED, 1)
    assert accented.last_error == "UnicodeEncodeError"
    assert idna.status == OutboxStatus.SENT
    [received] = smtp.collector.wait_for(1)
    assert received.rcpt_tos == ["jose@xn--mller-kva.example"]


def test_every_email_says_it_is_automatic_and_replies_go_to_the_reply_to_address(
    app: Flask, smtp: SmtpServer
) -> None:
    """Auto-Submitted (RFC 3834) keeps out-of-office replies away; ``MAIL_REPLY_TO``, when
    set, is where a patient's reply goes instead of the no-reply sender."""
    from tests.factories import make_request

    smtp.start()
    with app.app_context():
        make_request()
        first, second = db.session.scalars(select(OutboxEmail.id).order_by(OutboxEmail.id))
        deliver_outbox_email(first)
    app.config["MAIL_REPLY_TO"] = "Front desk <frontdesk@example.com>"
    with app.app_context():
        deliver_outbox_email(second)
    without, with_reply_to = [r.message for r in smtp.collector.wait_for(2)]
    assert without["Auto-Submitted"] == with_reply_to["Auto-Submitted"] == "auto-generated"
    assert without["Reply-To"] is None
    assert with_reply_to["Reply-To"] == "Front desk <frontdesk@example.com>"


def test_without_a_sender_set_emails_come_from_the_name_they_are_signed_with(
    app_settings: dict[str, Any], request: pytest.FixtureRequest, smtp: SmtpServer
) -> None:
    """A clinic that sets CLINIC_NAME (the emails' signature) but not MAIL_DEFAULT_SENDER gets
    its name as the From's, at the example address (production warns of it): not another
    clinic's name. A name with an accent, quotes and a comma arrives as one name, as written;
    a sender the clinic set is used as it is."""
    from booking import create_app
    from tests.factories import make_request

    # Short enough for one line of From; longer names: the test after this one.
    name = 'Clínica "Norte", Berlin'
    app_settings["CLINIC_NAME"] = name
    app: Flask = request.getfixturevalue("app")
    smtp.start()
    with app.app_context():
        make_request()
        first = db.session.scalars(select(OutboxEmail.id).order_by(OutboxEmail.id)).first()
        assert first is not None
        deliver_outbox_email(first)
    [received] = smtp.collector.wait_for(1)
    [sender] = received.message["From"].addresses
    assert (sender.display_name, sender.addr_spec) == (name, "no-reply@example.com")
    assert received.mail_from == "no-reply@example.com"
    assert name in received.message.get_body(preferencelist=("plain",)).get_content()

    chosen = "Front desk <frontdesk@clinic.example>"
    assert (
        create_app({**app_settings, "MAIL_DEFAULT_SENDER": chosen}).config["MAIL_DEFAULT_SENDER"]
        == chosen
    )


@pytest.mark.parametrize(
    "name",
    [
        "Klinik für Wirbelsäulenchirurgie, Orthopädie und Schmerztherapie, Standort Mitte",
        "Klinik fuer Wirbelsaeulenchirurgie, Orthopaedie und Schmerztherapie, Standort Mitte",
        "Zentrum für Wirbelsäulenchirurgie und Orthopädie und Schmerztherapie Standort Mitte",
        "Regional Centre for Spinal Surgery Orthopaedics and Pain Therapy Whitechapel",
        "Ορθοπεδική Κλινική Σπονδυλικής Στήλης, Αθήνα",
    ],
)
def test_a_long_sender_name_arrives_as_one_address_with_its_whole_name(
    app_settings: dict[str, Any], request: pytest.FixtureRequest, smtp: SmtpServer, name: str
) -> None:
    """A From or Reply-To longer than a line (78 characters) was refolded by the email
    library, which lost the encoding or the quotes of the name (python/cpython#87720): a
    comma in it split the sender in two or three ("Klinik für ...", "Orthopädie ..." and
    the address), and a long name without one came with spaces in its words ("Orthopä
    die"). Whether the name is the CLINIC_NAME (the default sender) or in a sender or
    Reply-To the clinic set by hand, each arrives as one address with its whole name."""
    from tests.factories import make_request

    app_settings["CLINIC_NAME"] = name
    app: Flask = request.getfixturevalue("app")
    smtp.start()
    with app.app_context():
        make_request()
        first, second = db.session.scalars(select(OutboxEmail.id).order_by(OutboxEmail.id))
        deliver_outbox_email(first)
    app.config["MAIL_DEFAULT_SENDER"] = f'"{name}" <praxis@klinik.example>'
    app.config["MAIL_REPLY_TO"] = f'"{name}" <empfang@klinik.example>'
    with app.app_context():
        deliver_outbox_email(second)
    by_default, by_hand = smtp.collector.wait_for(2)

    def one_address(received: Any, header: str) -> tuple[str, str]:
        """The header's one address as the email library reads it, and its name as RFC 2047
        has it read: the library before Python 3.14 keeps the folding between two
        encoded-words (python/cpython#128110), which mail apps ignore, so the name's words
        are compared there, and the whole name as mail apps decode it."""
        [address] = received.message[header].addresses
        assert address.display_name.split() == name.split()
        raw = message_from_bytes(received.raw, policy=compat32)[header]
        encoded, addr_spec = parseaddr(re.sub(r"\r?\n(?=[ \t])", "", raw))
        assert addr_spec == address.addr_spec
        return str(make_header(decode_header(encoded))), address.addr_spec

    assert one_address(by_default, "From") == (name, "no-reply@example.com")
    assert by_default.message["Reply-To"] is None
    assert one_address(by_hand, "From") == (name, "praxis@klinik.example")
    assert one_address(by_hand, "Reply-To") == (name, "empfang@klinik.example")
    for received in (by_default, by_hand):
        [to] = received.message["To"].addresses
        assert (to.display_name, to.addr_spec) == ("", received.rcpt_tos[0])
        assert received.mail_from == received.message["From"].addresses[0].addr_spec


def test_an_invitation_is_also_the_last_alternative_of_the_body(
    app: Flask, clinic: Any, smtp: SmtpServer
) -> None:
    """Outlook and Gmail show an invitation (with its buttons) when the calendar is a part
    of the multipart/alternative body, text/calendar with its METHOD; other mail apps take
    the attachment, which stays. Both are the same file."""
    from tests.factories import confirmed_request

    smtp.start()
    request_id = confirmed_request(app, clinic)
    with app.app_context():
        email_id = db.session.scalars(
            select(OutboxEmail.id).where(
                OutboxEmail.request_id == request_id, OutboxEmail.template == "request_update"
            )
        ).one()
        deliver_outbox_email(email_id)
    [received] = smtp.collector.wait_for(1)
    message = received.message
    assert message.get_content_type() == "multipart/mixed"
    alternative, attachment = message.get_payload()
    assert alternative.get_content_type() == "multipart/alternative"
    kinds = [part.get_content_type() for part in alternative.get_payload()]
    assert kinds == ["text/plain", "text/html", "text/calendar"]
    calendar = alternative.get_payload()[2]
    assert (calendar.get_param("method"), calendar.get_content_charset()) == ("REQUEST", "utf-8")
    assert attachment.get_content_type() == "text/calendar"
    assert attachment.get_filename() == "appointment.ics"
    assert attachment.get_param("method") == "REQUEST"
    inline = calendar.get_content().replace("\r\n", "\n")
    attached = attachment.get_content()
    attached = (attached.decode() if isinstance(attached, bytes) else attached).replace(
        "\r\n", "\n"
    )
    assert inline == attached and "METHOD:REQUEST" in inline


def test_a_failed_email_said_again_and_delivered_keeps_no_link_secret(
    app: Flask, clinic: Any, smtp: SmtpServer
) -> None:
    """A video visit's link email failed for good; staff set a new link and its email went
    out. The failed one no longer counts as the patient not told and nothing resends
    it, so it keeps no link's secret (the room's link with its passcode, the private link's
    token), as a sent email keeps none; what it said stays."""
    link = "https://meet.example.org/spine-4821?pwd=Xy7"
    new_link = "https://meet.example.org/spine-4822?pwd=Zq9"
    request_id = _video_visit_confirmed(app, clinic)
    first_id = _link_given(app, clinic, request_id, link)
    with app.app_context():
        first = db.session.get(OutboxEmail, first_id)
        first.status, first.last_error = OutboxStatus.FAILED, "550 mailbox unavailable"
        assert "pwd=Xy7" in first.body_text and _tokens(first.body_text)
        db.session.commit()
    # The clinic opened a new room: the patient must get that one.
    again = _link_given(app, clinic, request_id, new_link)
    smtp.start()
    with app.app_context():
        assert deliver_outbox_email(again) is None
    [received] = smtp.collector.wait_for(1)
    assert new_link in received.message.get_body(preferencelist=("plain",)).get_content()

    [failed] = [row for row in _outbox(app) if row.id == first_id]
    assert failed.status == OutboxStatus.FAILED
    stored = failed.body_text + failed.body_html + (failed.attachment_body or "")
    assert "meet.example.org" not in stored and "Xy7" not in stored
    assert not _tokens(failed.body_text + failed.body_html)
    assert "Join the video visit: [redacted]" in failed.body_text
