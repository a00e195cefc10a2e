"""A reader's "was this page useful / report a problem" reaches the clinic: stored, listed for
admins only, and announced to the admins, at most hourly, by an email that carries no
feedback."""

from __future__ import annotations

import html
import re
import threading
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import delete, func, select, update

from booking.audit.models import AuditEvent
from booking.audit.services import record
from booking.content.reviews import REVIEWS
from booking.extensions import db
from booking.feedback.models import PageFeedback
from booking.notifications.models import OutboxEmail
from booking.timeutil import now_utc
from tests.smtp import SmtpServer
from tests.support import AuthActions, Staff, csrf_token, run_queued_tasks


def _send(client: FlaskClient, path: str, **fields: str) -> Any:
    """Post the feedback form of the page at ``path``, as a reader would."""
    action = "/info/home/feedback" if path == "/" else f"{path}/feedback"
    return client.post(action, data={"csrf_token": csrf_token(client, path), **fields})


def test_feedback_is_stored_and_staff_are_told_only_that_it_arrived(
    app: Flask, client: FlaskClient
) -> None:
    client.get("/?lang=es")
    response = _send(client, "/info/treatments", useful="no", comment="Falta la fusión lumbar.")
    assert response.status_code == 303
    assert response.headers["Location"].startswith("/info/treatments")
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Gracias. Su opinión se ha enviado a la clínica." in page
    with app.app_context():
        feedback = db.session.scalars(select(PageFeedback)).one()
        assert (feedback.page, feedback.useful, feedback.locale) == ("treatments", False, "es")
        assert feedback.comment == "Falta la fusión lumbar."
        # Encrypted at rest, like a message.
        raw = db.session.execute(db.text("SELECT comment FROM page_feedback")).scalar_one()
        assert "fusión" not in raw
        email = db.session.scalars(select(OutboxEmail)).one()
    assert email.recipient == "coordinators@example.com"  # no admin account: the clinic's
    assert "/staff/admin/feedback" in email.body_text
    assert "fusión" not in email.body_text + email.body_html + email.subject


def test_the_clinics_email_about_feedback_is_queued_when_it_is_stored(
    mail_settings: dict[str, Any], app: Flask, client: FlaskClient, smtp: SmtpServer
) -> None:
    """The email is handed to the task queue after the commit, as every other email is:
    the worker's first task delivers it (the sweep would find it only minutes later)."""
    assert _send(client, "/info/prepare", useful="yes").status_code == 303
    assert run_queued_tasks(app) == 1
    [received] = smtp.collector.wait_for(1)
    assert received.rcpt_tos == ["coordinators@example.com"]
    assert received.message["Subject"] == "Feedback on an information page"


def _feedback_emails(app: Flask) -> list[OutboxEmail]:
    with app.app_context():
        rows = db.session.scalars(
            select(OutboxEmail)
            .where(OutboxEmail.template == "page_feedback_staff")
            .order_by(OutboxEmail.id)
        ).all()
        db.session.expunge_all()
        return list(rows)


def test_the_admins_are_told_of_feedback_at_most_once_an_hour(
    app: Flask, staff: Staff, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The form is anonymous and limited only per network address: a few addresses must not
    bury the clinic's alert inbox (urgent and emergency requests) in feedback emails. The
    first feedback after a quiet hour is announced, to the admins who read it; the next
    ones are stored, listed for admins and counted in the next email."""
    start = now_utc()
    clock = {"now": start}
    for module in ("booking.feedback.services", "booking.audit.services"):
        monkeypatch.setattr(f"{module}.now_utc", lambda: clock["now"])

    def send_at(minutes: int, comment: str) -> None:
        clock["now"] = start + timedelta(minutes=minutes)
        reader = app.test_client()  # each from another network address
        reader.environ_base["REMOTE_ADDR"] = f"10.1.{minutes}.1"
        assert _send(reader, "/info/prepare", comment=comment).status_code == 303

    send_at(0, "first")
    (first,) = _feedback_emails(app)
    assert first.recipient == staff.admin.email  # not the alert inbox
    assert "A reader left feedback on one of the information pages." in first.body_text
    for minutes in (1, 2, 30, 59):
        send_at(minutes, f"later {minutes}")
    # One email in the hour, however many readers.
    assert [e.id for e in _feedback_emails(app)] == [first.id]
    assert [task.name for task in app.extensions["huey"].pending()] == ["deliver_email"]

    send_at(61, "after the hour")
    _first, second = _feedback_emails(app)
    assert second.recipient == staff.admin.email
    body = " ".join(second.body_text.split())
    assert "Readers left 5 pieces of feedback on the information pages since the last" in body
    assert "after the hour" not in body + second.body_html  # counted, never quoted
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(PageFeedback)) == 6
        counts = [
            event.details["count"]
            for event in db.session.scalars(
                select(AuditEvent)
                .where(AuditEvent.action == "page_feedback_announced")
                .order_by(AuditEvent.id)
            )
        ]
    assert counts == [1, 5]


def test_feedback_held_in_the_hour_is_announced_after_it_even_if_none_follows(
    app: Flask, staff: Staff, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Feedback at 10:00 is announced; feedback at 10:10 and 10:20 waits to be counted in the
    next email. If no reader writes after 11:00, the periodic job announces it: it is not
    left unannounced for ever. Nothing held: no email."""
    from booking.feedback.services import announce_held_feedback

    start = now_utc()
    clock = {"now": start}
    for module in ("booking.feedback.services", "booking.audit.services"):
        monkeypatch.setattr(f"{module}.now_utc", lambda: clock["now"])
    for minutes in (0, 10, 20):
        clock["now"] = start + timedelta(minutes=minutes)
        reader = app.test_client()
        reader.environ_base["REMOTE_ADDR"] = f"10.2.{minutes}.1"
        assert _send(reader, "/info/prepare", comment=f"at {minutes}").status_code == 303
    assert len(_feedback_emails(app)) == 1
    with app.app_context():
        assert announce_held_feedback(start + timedelta(minutes=59)) == []  # within the hour
        (email_id,) = announce_held_feedback(start + timedelta(minutes=61))
        # Announced: nothing is held any more.
        assert announce_held_feedback(start + timedelta(minutes=130)) == []
    _first, second = _feedback_emails(app)
    assert second.id == email_id and second.recipient == staff.admin.email
    assert "Readers left 2 pieces of feedback" in " ".join(second.body_text.split())


@pytest.mark.parametrize("before", ["never announced", "announced over an hour ago"])
def test_two_readers_writing_at_once_after_a_quiet_hour_announce_it_once(
    app: Flask, staff: Staff, monkeypatch: pytest.MonkeyPatch, before: str
) -> None:
    """Two readers send feedback at the same moment after a quiet hour: each transaction
    had written its feedback, neither committed, when it looked for the last announcement,
    so both found none within the hour and the admins got the email twice. Exactly one
    goes; both pieces of feedback are stored."""
    from booking.feedback import services

    start = now_utc()
    clock = {"now": start - timedelta(hours=2)}
    for module in ("booking.feedback.services", "booking.audit.services"):
        monkeypatch.setattr(f"{module}.now_utc", lambda: clock["now"])
    if before == "announced over an hour ago":
        early = app.test_client()
        early.environ_base["REMOTE_ADDR"] = "10.3.0.1"
        assert _send(early, "/info/prepare", comment="early").status_code == 303
    announced_before = len(_feedback_emails(app))
    clock["now"] = start

    # PostgreSQL: both wait here, their feedback written and not committed, then each
    # claims the announcement with the other in flight. SQLite's BEGIN IMMEDIATE makes the
    # second wait for the first's commit at its first statement: they cannot meet here.
    with app.app_context():
        together = 2 if db.engine.dialect.name == "postgresql" else 1
    both_written = threading.Barrier(together)
    real_record = services.record

    def record(action: str, **kwargs: Any) -> Any:
        event = real_record(action, **kwargs)
        if action == "page_feedback_received":
            both_written.wait(timeout=10)
        return event

    monkeypatch.setattr(services, "record", record)
    readers = []
    for n in range(2):
        reader = app.test_client()
        reader.environ_base["REMOTE_ADDR"] = f"10.3.1.{n}"
        readers.append((reader, csrf_token(reader, "/info/prepare")))
    answers: list[int] = []

    def send(reader: FlaskClient, token: str) -> None:
        response = reader.post(
            "/info/prepare/feedback", data={"csrf_token": token, "comment": "at once"}
        )
        answers.append(response.status_code)

    threads = [threading.Thread(target=send, args=reader) for reader in readers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert answers == [303, 303]
    assert len(_feedback_emails(app)) == announced_before + 1
    with app.app_context():
        assert (
            db.session.scalar(
                select(func.count())
                .select_from(PageFeedback)
                .where(PageFeedback.comment.is_not(None), PageFeedback.created_at == start)
            )
            == 2
        )
        announcements = db.session.scalar(
            select(func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.action == "page_feedback_announced", AuditEvent.occurred_at >= start)
        )
    assert announcements == 1


def test_empty_feedback_is_refused_with_a_message(app: Flask, client: FlaskClient) -> None:
    response = _send(client, "/info/conditions", comment="   ")
    assert response.status_code == 400
    assert "Please answer the question or write a comment." in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalars(select(PageFeedback)).all() == []


def test_feedback_without_the_forms_token_is_refused(app: Flask, client: FlaskClient) -> None:
    assert client.post("/info/prepare/feedback", data={"useful": "yes"}).status_code == 400
    assert client.post("/info/nowhere/feedback", data={"useful": "yes"}).status_code in (400, 404)
    with app.app_context():
        assert db.session.scalars(select(PageFeedback)).all() == []


@pytest.fixture
def app_settings(app_settings: dict[str, Any]) -> dict[str, Any]:
    app_settings.update(
        FEEDBACK_RATE_LIMIT="2 per minute",
        CONTENT_AUTHOR="Ana Writer, patient information editor",
        CONTENT_REVIEWER="Dr Bo Spine, consultant spine surgeon",
    )
    return app_settings


def test_feedback_is_rate_limited(client: FlaskClient) -> None:
    statuses = [_send(client, "/info/evaluation", useful="yes").status_code for _ in range(3)]
    assert statuses == [303, 303, 429]


def test_only_admins_read_the_feedback(
    app: Flask, client: FlaskClient, auth: AuthActions, staff: Staff
) -> None:
    _send(client, "/info/prepare", useful="yes", comment="Clear, thank you")
    auth.login("coordinator")
    assert client.get("/staff/admin/feedback").status_code == 403
    auth.logout()
    auth.login("admin")
    page = client.get("/staff/admin/feedback").get_data(as_text=True)
    # Each page by its name in the site's menu, not its code.
    assert "Clear, thank you" in page and "Prepare and FAQ" in page
    assert ">prepare<" not in page


def test_every_information_page_names_its_authors_sources_and_review_dates(
    client: FlaskClient,
) -> None:
    for path in ("/", "/info/evaluation", "/info/conditions", "/info/treatments", "/info/prepare"):
        page = client.get(path).get_data(as_text=True)
        for text in (
            "Written by",
            "Ana Writer, patient information editor",
            "Checked by a doctor",
            "Dr Bo Spine, consultant spine surgeon",
            "Last reviewed",
            "5 December 2026",
            "Next review due",
            "https://www.nice.org.uk/guidance/ng59",
        ):
            assert text in page, (path, text)
        assert 'name="csrf_token"' in page and "Was this page useful?" in page


def test_review_dates_are_real_and_the_next_is_within_a_year() -> None:
    """A page cannot claim a review that has not happened yet (the date is when its text was
    last checked), and is due again within a year of it."""
    # Today at the clinic (its default zone): from 22:00 UTC Berlin's date is already the next.
    today = datetime.now(ZoneInfo("Europe/Berlin")).date()
    for page, review in REVIEWS.items():
        assert review.last_reviewed <= today, page
        assert review.last_reviewed < review.next_review, page
        assert review.next_review - review.last_reviewed <= timedelta(days=366), page


OLD_COMMENT = "I am Anna Beispiel, my sciatica is worse: the page did not help."
RECENT_COMMENT = "The map link is broken."


def _old_and_recent_feedback(app: Flask, client: FlaskClient) -> None:
    """Two readers' feedback through the pages' form: one sent 366 days ago, one today."""
    assert _send(client, "/info/conditions", useful="no", comment=OLD_COMMENT).status_code == 303
    assert _send(client, "/info/prepare", comment=RECENT_COMMENT).status_code == 303
    with app.app_context():
        db.session.execute(
            update(PageFeedback)
            .where(PageFeedback.page == "conditions")
            .values(created_at=now_utc() - timedelta(days=366))
        )
        db.session.commit()


def _comments(app: Flask) -> list[str | None]:
    with app.app_context():
        return list(db.session.scalars(select(PageFeedback.comment).order_by(PageFeedback.id)))


def _purges(app: Flask) -> list[dict[str, Any]]:
    with app.app_context():
        return [
            dict(event.details)
            for event in db.session.scalars(
                select(AuditEvent).where(AuditEvent.action == "page_feedback_purged")
            )
        ]


def test_the_nightly_retention_job_deletes_feedback_past_its_period(
    app: Flask, client: FlaskClient
) -> None:
    _old_and_recent_feedback(app, client)
    assert app.config["FEEDBACK_RETENTION_DAYS"] == 365  # the default
    nightly = app.extensions["spineconsult.purge_expired_requests"]
    nightly.call_local()
    assert _comments(app) == [RECENT_COMMENT]
    # Audited as a count, with nothing of what the reader wrote.
    [details] = _purges(app)
    assert details["rows"] == 1 and "cutoff" in details
    assert "Anna" not in str(details) and "sciatica" not in str(details)

    nightly.call_local()  # nothing more is due: no second row
    assert _comments(app) == [RECENT_COMMENT]
    assert len(_purges(app)) == 1


def test_feedback_is_kept_when_its_retention_is_off(app: Flask, client: FlaskClient) -> None:
    app.config["FEEDBACK_RETENTION_DAYS"] = 0
    _old_and_recent_feedback(app, client)
    app.extensions["spineconsult.purge_expired_requests"].call_local()
    assert _comments(app) == [OLD_COMMENT, RECENT_COMMENT]
    assert _purges(app) == []


def test_the_audit_trail_names_the_page_each_feedback_was_about(
    app: Flask, client: FlaskClient, auth: AuthActions, staff: Staff
) -> None:
    """Not "Page feedback 12": the page, as the site's menu names it. A row written since
    keeps the page (its slug, never the comment), so the name outlives the feedback; a row
    written before names it while the feedback is stored, and once that is deleted, its id
    is all there is."""
    for n, slug in enumerate(("treatments", "evaluation")):
        reader = app.test_client()  # each from another network address (the rate limit)
        reader.environ_base["REMOTE_ADDR"] = f"10.4.{n}.1"
        assert _send(reader, f"/info/{slug}", useful="yes").status_code == 303
    with app.app_context():
        ids = dict(db.session.execute(select(PageFeedback.page, PageFeedback.id)).all())
        for slug in ("conditions", "prepare"):  # audited as rows were before they kept the page
            feedback = PageFeedback(page=slug, useful=True, locale="en")
            db.session.add(feedback)
            db.session.flush()
            ids[slug] = feedback.id
            record("page_feedback_received", target_type="page_feedback", target_id=feedback.id)
        db.session.execute(
            delete(PageFeedback).where(PageFeedback.page.in_(("prepare", "evaluation")))
        )
        db.session.commit()
    auth.login("admin")
    page = client.get("/staff/admin/audit", query_string={"action": "page_feedback_received"})
    text = page.get_data(as_text=True)
    cells = re.findall(r'<td data-label="Record">(.*?)</td>', text, re.S)
    assert [html.unescape(cell) for cell in cells] == [
        f"Page feedback {ids['prepare']}",  # an older row, its feedback deleted
        f"Feedback on “Conditions” ({ids['conditions']})",  # an older row: looked up
        f"Feedback on “The evaluation” ({ids['evaluation']})",  # deleted since: still named
        f"Feedback on “Treatments” ({ids['treatments']})",
    ]
    assert "page: <bdi>Treatments</bdi>" in text  # the row's details name it too
