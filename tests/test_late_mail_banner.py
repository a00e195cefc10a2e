"""Emails not delivered in time, told to staff on every staff page: with the worker stopped or
its queue down, a patient's confirmation or reschedule waits silently in the outbox
(``MAIL_LATE_MINUTES``; only the clinic's urgent alerts had a banner of their own)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from booking.extensions import db
from booking.notifications.models import OutboxEmail, OutboxStatus
from booking.timeutil import now_utc
from tests.factories import make_request
from tests.support import AuthActions, Staff


def _banner(client: FlaskClient, path: str = "/staff/") -> str | None:
    response = client.get(path)
    assert response.status_code == 200, path
    page = response.get_data(as_text=True)
    if 'id="late-mail"' not in page:
        return None
    return page.split('id="late-mail"')[1].split("</section>")[0]


def _emails(app: Flask, **values: Any) -> None:
    """Every outbox row changed as ``values`` say (their age, their status)."""
    with app.app_context():
        db.session.execute(sa.update(OutboxEmail).values(**values))
        db.session.commit()


@pytest.fixture
def two_emails(app: Flask, staff: Staff) -> None:
    """A request just sent: the patient's confirmation and the clinic's alert, pending."""
    with app.app_context():
        make_request()
        assert db.session.scalar(sa.select(sa.func.count()).select_from(OutboxEmail)) == 2


@pytest.mark.usefixtures("two_emails")
def test_emails_waiting_too_long_show_on_every_staff_page_for_coordinators(
    app: Flask, client: FlaskClient, auth: AuthActions
) -> None:
    auth.login("coordinator")
    minutes = app.config["MAIL_LATE_MINUTES"]
    assert _banner(client) is None  # written just now: not late

    _emails(app, created_at=now_utc() - timedelta(minutes=minutes, seconds=30))
    banner = _banner(client)
    assert banner is not None
    assert f"2 emails have waited more than {minutes} minutes to go out." in banner
    assert f"The oldest was written {minutes} min ago." in banner
    assert "background worker" in banner
    assert "failed for good" not in banner
    # Not the queue only: wherever the coordinator works.
    assert _banner(client, "/staff/calendar") == banner

    # One goes out, the other one was withdrawn by a later change: nothing is waiting.
    with app.app_context():
        first, second = db.session.scalars(sa.select(OutboxEmail).order_by(OutboxEmail.id))
        first.status = OutboxStatus.SENT
        second.withdrawn_at = now_utc()
        db.session.commit()
    assert _banner(client) is None


@pytest.mark.usefixtures("two_emails")
def test_an_email_failed_for_good_shows_until_staff_send_it_again(
    app: Flask, client: FlaskClient, auth: AuthActions
) -> None:
    auth.login("coordinator")
    with app.app_context():
        first = db.session.scalars(sa.select(OutboxEmail).order_by(OutboxEmail.id)).first()
        assert first is not None
        first.status = OutboxStatus.FAILED
        first.claimed_at = now_utc() - timedelta(hours=2)
        first.created_at = now_utc() - timedelta(hours=3)
        db.session.commit()
        failed_id = first.id
    banner = _banner(client)
    assert banner is not None
    assert "1 email failed for good in the last day." in banner
    assert "waited more than" not in banner  # the other one is fresh
    assert "The oldest was written 3 h 00 min ago." in banner
    assert "/staff/queue?status=all&amp;unnotified=1" in banner  # where to send it again

    def change(**values: Any) -> None:
        with app.app_context():
            db.session.execute(
                sa.update(OutboxEmail).where(OutboxEmail.id == failed_id).values(**values)
            )
            db.session.commit()

    change(settled_at=now_utc())  # sent again (or found no longer wanted)
    assert _banner(client) is None
    # Failed more than a day ago: the "Patient not notified" list keeps it, not the banner.
    change(settled_at=None, claimed_at=now_utc() - timedelta(hours=25))
    assert _banner(client) is None


@pytest.mark.usefixtures("two_emails")
def test_specialists_are_not_shown_it_and_zero_turns_it_off(
    app: Flask, client: FlaskClient, auth: AuthActions
) -> None:
    _emails(app, created_at=now_utc() - timedelta(days=1))
    auth.login("specialist")
    assert _banner(client, "/staff/calendar") is None
    auth.logout()
    auth.login("coordinator")
    assert _banner(client) is not None
    app.config["MAIL_LATE_MINUTES"] = 0
    assert _banner(client) is None


def _fail(app: Flask, template: str, error: str = "550 mailbox unavailable") -> None:
    """The outbox's emails of ``template`` not sent failed for good an hour ago."""
    with app.app_context():
        db.session.execute(
            sa.update(OutboxEmail)
            .where(OutboxEmail.template == template, OutboxEmail.status != OutboxStatus.SENT)
            .values(
                status=OutboxStatus.FAILED,
                claimed_at=now_utc() - timedelta(hours=1),
                last_error=error,
            )
        )
        db.session.commit()


def test_failed_emails_to_staff_point_where_they_are_seen_not_to_the_patients_list(
    app: Flask, client: FlaskClient, auth: AuthActions, staff: Staff
) -> None:
    """A password reset whose link expired before it could go (``ResetLinkExpired``) and a
    notice of a changed sign-in address that the old address refused are counted on the
    banner, but no patient's "not notified" list has them: the banner says they were to
    staff, and where the notice is listed (the accounts page, which only admins may open)."""
    from booking.staff.models import StaffUser
    from booking.staff.services import correct_staff_details, details_mark, send_password_reset

    with app.app_context():
        admin = db.session.get(StaffUser, staff.admin.id)
        weber = db.session.get(StaffUser, staff.weber.id)
        assert admin is not None and weber is not None
        send_password_reset(staff.coordinator.email)
        correct_staff_details(
            weber,
            full_name=weber.full_name,
            email="weber.new@example.com",
            shown=details_mark(weber),
            actor=admin,
        )
        # The new address took its notice; the old one refuses it.
        db.session.execute(
            sa.update(OutboxEmail)
            .where(OutboxEmail.recipient == "weber.new@example.com")
            .values(status=OutboxStatus.SENT)
        )
        db.session.commit()
    _fail(app, "staff_password_reset", "ResetLinkExpired")
    _fail(app, "staff_email_changed")

    auth.login("coordinator")
    banner = _banner(client)
    assert banner is not None
    text = " ".join(banner.split())
    assert "2 emails failed for good in the last day." in text
    assert "2 of the emails that failed were to staff members about their own accounts" in text
    assert "unnotified=1" not in banner  # no patient's list has them
    # A coordinator may not open the accounts page: told who can, not linked there.
    assert "/staff/accounts" not in banner
    assert "An administrator sees the notices of a changed sign-in address" in text
    assert "A password reset link that could not be sent is not sent again" in text
    assert client.get("/staff/accounts").status_code == 403
    auth.logout()

    auth.login("admin")
    banner = _banner(client)
    assert banner is not None
    assert 'href="/staff/accounts#unsent-notices"' in banner
    assert "An administrator sees" not in banner
    accounts = client.get("/staff/accounts").get_data(as_text=True)
    assert 'id="unsent-notices"' in accounts
    assert staff.weber.email in accounts.split('id="unsent-notices"')[1].split("</section>")[0]

    # A patient's email failing too: the patients' list is the place for that one.
    with app.app_context():
        make_request()
    _fail(app, "request_received")
    banner = _banner(client)
    assert banner is not None
    text = " ".join(banner.split())
    assert "3 emails failed for good in the last day." in text
    assert "/staff/queue?status=all&amp;unnotified=1" in banner
    assert "2 of the emails that failed were to staff members" in text


@pytest.mark.usefixtures("two_emails")
def test_a_failed_clinic_alert_does_not_point_to_the_patients_list(
    app: Flask, client: FlaskClient, auth: AuthActions
) -> None:
    """The clinic's own notice of a new request failed for good, the patient's confirmation
    went out: the "Patient not notified" list is empty, so the banner does not send staff
    there; it says what the failed email was and where it shows."""
    _fail(app, "new_request_staff")
    with app.app_context():
        db.session.execute(
            sa.update(OutboxEmail)
            .where(OutboxEmail.template == "request_received")
            .values(status=OutboxStatus.SENT)
        )
        db.session.commit()

    auth.login("coordinator")
    banner = _banner(client)
    assert banner is not None
    text = " ".join(banner.split())
    assert "1 email failed for good in the last day." in text
    assert "unnotified=1" not in banner
    assert "1 of the emails that failed is not sent again from the list of patients" in text
    assert "an alert or notice to the clinic" in text
    queue = client.get("/staff/queue?status=all&unnotified=1").get_data(as_text=True)
    assert "No requests match." in queue  # where the link would have led

    # The patient's confirmation failing too: the list is the place for that one.
    with app.app_context():
        db.session.execute(
            sa.update(OutboxEmail)
            .where(OutboxEmail.template == "request_received")
            .values(status=OutboxStatus.PENDING)
        )
        db.session.commit()
    _fail(app, "request_received")
    banner = _banner(client)
    assert banner is not None
    text = " ".join(banner.split())
    assert "2 emails failed for good in the last day." in text
    assert "/staff/queue?status=all&amp;unnotified=1" in banner
    assert "1 of the emails that failed is not sent again" in text


def test_a_routine_requests_failed_notice_stays_on_the_queue_until_someone_opens_it(
    mail_settings: dict[str, Any],
    app: Flask,
    client: FlaskClient,
    auth: AuthActions,
    smtp: Any,
    staff: Staff,
) -> None:
    """The clinic's notice of a new routine request is refused for good by the mail server.
    The banner of late emails counts it for a day only, and nothing sends it again: the
    queue names the request until a member of staff has opened it, as it names an urgent
    request whose alert failed. Another request, whose notice went out, is not named."""
    from booking.notifications.services import deliver_outbox_email

    def new_request_notice() -> tuple[str, int]:
        with app.app_context():
            consultation = make_request()
            notice = db.session.scalars(
                sa.select(OutboxEmail).where(
                    OutboxEmail.request_id == consultation.id,
                    OutboxEmail.template == "new_request_staff",
                )
            ).one()
            assert deliver_outbox_email(notice.id) is None  # sent, or refused for good
            return consultation.reference, notice.id

    heard_of, _sent = new_request_notice()
    smtp.collector.refuse_rcpt.add(app.config["STAFF_NOTIFICATION_EMAIL"])  # 550
    unheard_of, failed = new_request_notice()
    with app.app_context():
        assert db.session.get(OutboxEmail, failed).status == OutboxStatus.FAILED
    _emails(app, claimed_at=now_utc() - timedelta(days=2))  # the banner's day is past

    auth.login("coordinator")
    assert _banner(client) is None
    page = client.get("/staff/").get_data(as_text=True)
    assert 'id="failed-notices"' in page
    listed = " ".join(page.split('id="failed-notices"')[1].split("</section>")[0].split())
    assert "Notices of new requests could not be emailed" in listed
    assert f'href="/staff/requests/{unheard_of}">Open request {unheard_of}</a>' in listed
    assert heard_of not in listed

    assert client.get(f"/staff/requests/{unheard_of}").status_code == 200
    assert 'id="failed-notices"' not in client.get("/staff/").get_data(as_text=True)
