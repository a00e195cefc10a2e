"""An administrator resets a colleague's two-factor sign-in (a lost phone with lost recovery
codes): the accounts page shows who has it, the reset removes it, signs the colleague out,
is audited and emailed, and their next sign-in asks them to enrol again."""

from __future__ import annotations

import re
import time
from typing import Any

import pyotp
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from booking.audit.models import AuditEvent
from booking.extensions import db
from booking.notifications.models import OutboxEmail
from booking.staff.models import RecoveryCode, StaffSession, StaffUser
from tests.support import AuthActions, Staff, csrf_token, section_at
from tests.test_staff_roles import alerts
from tests.test_two_factor import code_step, enrol


@pytest.fixture
def app_settings(app_settings: dict[str, Any]) -> dict[str, Any]:
    # Admins and coordinators must use it; specialists may.
    app_settings["STAFF_2FA_REQUIRED_ROLES"] = ["admin", "coordinator"]
    return app_settings


def shown(client: FlaskClient, user_id: int) -> dict[str, str]:
    """The reset form of ``user_id``'s row, as the accounts page shows it now."""
    page = client.get("/staff/accounts").get_data(as_text=True)
    form = re.search(
        rf'action="/staff/accounts/{user_id}/two-factor/reset">\s*'
        r'<input type="hidden" name="csrf_token" value="([^"]+)">\s*'
        r'<input type="hidden" name="shown" value="([^"]+)">',
        page,
    )
    assert form, f"no reset form for account {user_id}"
    return {"csrf_token": form.group(1), "shown": form.group(2)}


def reset(client: FlaskClient, user_id: int, form: dict[str, str] | None = None):
    return client.post(
        f"/staff/accounts/{user_id}/two-factor/reset",
        data={**(form or shown(client, user_id)), "confirmed": "1"},
        follow_redirects=True,
    )


def enrolled(app: Flask, email: str) -> str:
    """Sign ``email`` in on a browser of its own and enrol it; its secret."""
    browser = app.test_client()
    AuthActions(browser).attempt(email)
    secret, _codes = enrol(browser)
    return secret


def signed_in_admin(app: Flask, client: FlaskClient, staff: Staff) -> None:
    AuthActions(client).attempt(staff.admin.email)
    enrol(client)


def actions(app: Flask, action: str) -> list[AuditEvent]:
    with app.app_context():
        rows = db.session.scalars(select(AuditEvent).where(AuditEvent.action == action)).all()
        db.session.expunge_all()
        return list(rows)


def test_the_accounts_page_shows_who_has_two_factor_and_offers_a_reset_of_colleagues_only(
    app: Flask, client: FlaskClient, staff: Staff
) -> None:
    enrolled(app, staff.weber.email)
    signed_in_admin(app, client, staff)
    page = client.get("/staff/accounts").get_data(as_text=True)
    assert '<th scope="col">Two-factor sign-in</th>' in page
    rows = {
        account.id: page.split(f"staff-role-{account.id}")[0].rsplit("<tr>", 1)[-1]
        + page.split(f"staff-role-{account.id}", 1)[-1].split("</tr>", 1)[0]
        for account in (staff.weber, staff.okafor, staff.coordinator)
    }
    assert "set up" in rows[staff.weber.id] and "not set up" not in rows[staff.weber.id]
    assert "not set up: asked at the next sign-in" in rows[staff.coordinator.id]
    assert "not set up" in rows[staff.okafor.id]
    assert "asked at the next sign-in" not in rows[staff.okafor.id]  # not required for them
    assert f'action="/staff/accounts/{staff.weber.id}/two-factor/reset"' in page
    assert f'action="/staff/accounts/{staff.okafor.id}/two-factor/reset"' not in page
    assert f'action="/staff/accounts/{staff.admin.id}/two-factor/reset"' not in page
    assert 'Reset two-factor<span class="visually-hidden"> Dr. ' in page


def test_a_reset_removes_the_second_factor_signs_the_colleague_out_and_tells_them(
    app: Flask, client: FlaskClient, staff: Staff
) -> None:
    secret = enrolled(app, staff.coordinator.email)
    # The coordinator signed in (with a code) on another browser.
    colleague = app.test_client()
    AuthActions(colleague).attempt(staff.coordinator.email)
    assert code_step(colleague, pyotp.TOTP(secret).at(time.time() + 30)).status_code == 302
    assert colleague.get("/staff/").status_code == 200
    signed_in_admin(app, client, staff)

    page = reset(client, staff.coordinator.id)

    assert "The two-factor sign-in of <bdi>Cora Coord</bdi> was reset." in alerts(page)
    assert "an email telling them is on its way" in alerts(page)  # not yet sent, only written
    assert "they will set it up again at their next sign-in" in alerts(page)
    with app.app_context():
        user = db.session.get(StaffUser, staff.coordinator.id)
        assert user.totp_secret is None and not user.totp_enabled
        assert not db.session.scalars(
            select(RecoveryCode).where(RecoveryCode.staff_id == user.id)
        ).all()
        reasons = db.session.scalars(
            select(StaffSession.end_reason).where(StaffSession.staff_id == user.id)
        ).all()
        email = db.session.scalars(
            select(OutboxEmail).where(OutboxEmail.template == "staff_two_factor_reset")
        ).one()
        assert email.recipient == staff.coordinator.email
        assert "Cora Coord" in email.body_text and staff.admin.full_name in email.body_text
        assert "set up two-factor sign-in again with your authenticator app" in email.body_text
        assert secret not in email.body_text + email.body_html
    assert "two_factor_reset" in reasons and None not in reasons
    [row] = actions(app, "two_factor_reset")
    assert (row.actor_id, row.target_type, row.target_id) == (
        staff.admin.id,
        "staff",
        str(staff.coordinator.id),
    )
    assert secret not in str(row.details)
    # The open session is over; the next sign-in needs no code and asks for a new enrolment.
    response = colleague.get("/staff/")
    assert response.status_code == 302 and "/staff/login" in response.headers["Location"]
    response = AuthActions(colleague).attempt(staff.coordinator.email)
    assert not response.headers["Location"].endswith("/staff/login/code")
    response = colleague.get("/staff/")
    assert response.status_code == 302 and response.headers["Location"].endswith(
        "/staff/two-factor"
    )
    enrol(colleague)
    assert colleague.get("/staff/").status_code == 200


def test_a_sign_in_waiting_for_its_code_ends_with_the_reset(
    app: Flask, client: FlaskClient, staff: Staff
) -> None:
    secret = enrolled(app, staff.weber.email)
    waiting = app.test_client()
    response = AuthActions(waiting).attempt(staff.weber.email)
    assert response.headers["Location"].endswith("/staff/login/code")
    token = csrf_token(waiting, "/staff/login/code")  # the code page, open before the reset
    signed_in_admin(app, client, staff)
    page = reset(client, staff.weber.id)
    # A specialist's role does not require it: the message says so, and so does the email.
    assert "can sign in with their password alone" in alerts(page)
    code = pyotp.TOTP(secret).at(time.time() + 30)
    response = waiting.post("/staff/login/code", data={"csrf_token": token, "code": code})
    assert response.status_code == 302 and response.headers["Location"].endswith("/staff/login")
    assert waiting.get("/staff/").status_code == 302
    with app.app_context():
        email = db.session.scalars(select(OutboxEmail)).one()
        assert "beside your name at the top of the dashboard" in email.body_text


def test_no_reset_of_ones_own_and_a_post_from_an_older_page_resets_nothing_twice(
    app: Flask, client: FlaskClient, staff: Staff
) -> None:
    enrolled(app, staff.weber.email)
    signed_in_admin(app, client, staff)
    form = shown(client, staff.weber.id)  # the page, shown before either post

    own = reset(client, staff.admin.id, {"csrf_token": form["csrf_token"], "shown": "0"})
    assert "You cannot reset your own two-factor sign-in here" in alerts(own)
    with app.app_context():
        assert db.session.get(StaffUser, staff.admin.id).totp_enabled

    assert "was reset" in alerts(reset(client, staff.weber.id, form))
    again = reset(client, staff.weber.id, form)
    assert "<bdi>Dr. Weber</bdi> has no two-factor sign-in set up: nothing was reset." in alerts(
        again
    )
    assert len(actions(app, "two_factor_reset")) == 1
    with app.app_context():
        assert len(db.session.scalars(select(OutboxEmail)).all()) == 1

    # Without the page's token the post is refused, and nothing changes.
    enrolled(app, staff.okafor.email)
    refused = client.post(
        f"/staff/accounts/{staff.okafor.id}/two-factor/reset", data={"shown": "0"}
    )
    assert refused.status_code == 400
    with app.app_context():
        assert db.session.get(StaffUser, staff.okafor.id).totp_enabled


def test_a_page_shown_before_the_colleague_used_or_set_up_a_code_resets_nothing(
    app: Flask, client: FlaskClient, staff: Staff
) -> None:
    """The admin's page is older than what the colleague did since: signing in with their
    code (the phone is not lost after all), or enrolling a new phone after another admin's
    reset. The older page's post must not undo it."""
    secret = enrolled(app, staff.weber.email)
    signed_in_admin(app, client, staff)
    form = shown(client, staff.weber.id)
    weber = app.test_client()
    AuthActions(weber).attempt(staff.weber.email)
    assert code_step(weber, pyotp.TOTP(secret).at(time.time() + 30)).status_code == 302

    stale = reset(client, staff.weber.id, form)

    assert "<bdi>Dr. Weber</bdi> used or set up two-factor sign-in since the page was shown" in (
        alerts(stale)
    )
    with app.app_context():
        assert db.session.get(StaffUser, staff.weber.id).totp_enabled
    assert actions(app, "two_factor_reset") == []
    assert weber.get("/staff/calendar").status_code == 200  # still signed in

    # Reset from the page as it is now; the colleague enrols a new phone; the older page's
    # post leaves the new one alone.
    form = shown(client, staff.weber.id)
    assert "was reset" in alerts(reset(client, staff.weber.id, form))
    AuthActions(weber).attempt(staff.weber.email)
    enrol(weber)
    stale = reset(client, staff.weber.id, form)
    assert "nothing was reset" in alerts(stale)
    with app.app_context():
        assert db.session.get(StaffUser, staff.weber.id).totp_enabled
    assert len(actions(app, "two_factor_reset")) == 1


def test_a_new_phone_enrolled_on_the_time_step_the_older_page_showed_is_left_alone(
    app: Flask, client: FlaskClient, staff: Staff
) -> None:
    """A reset and the colleague's new phone within one 30-second code step: their new
    enrolment's last code step is the one the older page showed. Its post must still not
    undo the new phone (it did, one CI run in many, when a test crossed a step boundary)."""
    enrolled(app, staff.weber.email)
    signed_in_admin(app, client, staff)
    stale_form = shown(client, staff.weber.id)
    with app.app_context():
        shown_step = db.session.get(StaffUser, staff.weber.id).totp_last_step
    assert "was reset" in alerts(reset(client, staff.weber.id, shown(client, staff.weber.id)))
    weber = app.test_client()
    AuthActions(weber).attempt(staff.weber.email)
    enrol(weber)
    with app.app_context():  # the new phone's code was of the same time step
        db.session.get(StaffUser, staff.weber.id).totp_last_step = shown_step
        db.session.commit()

    stale = reset(client, staff.weber.id, stale_form)

    assert "nothing was reset" in alerts(stale)
    with app.app_context():
        assert db.session.get(StaffUser, staff.weber.id).totp_enabled
    assert len(actions(app, "two_factor_reset")) == 1
    assert weber.get("/staff/calendar").status_code == 200  # still signed in


def test_a_deactivated_accounts_two_factor_is_not_reset_nor_are_they_emailed(
    app: Flask, client: FlaskClient, staff: Staff
) -> None:
    enrolled(app, staff.weber.email)
    signed_in_admin(app, client, staff)
    form = shown(client, staff.weber.id)  # the page, shown before the account was deactivated
    with app.app_context():
        db.session.get(StaffUser, staff.weber.id).active = False
        db.session.commit()
    page = client.get("/staff/accounts").get_data(as_text=True)
    assert f'action="/staff/accounts/{staff.weber.id}/two-factor/reset"' not in page

    refused = reset(client, staff.weber.id, form)

    assert (
        "The account of <bdi>Dr. Weber</bdi> is deactivated: nothing was reset. If they are to "
        "sign in again, reactivate the account first" in alerts(refused)
    )
    with app.app_context():
        user = db.session.get(StaffUser, staff.weber.id)
        assert user.totp_enabled and user.totp_secret is not None
        assert db.session.scalars(select(OutboxEmail)).all() == []
    assert actions(app, "two_factor_reset") == []


def test_a_reset_is_confirmed_first(app: Flask, client: FlaskClient, staff: Staff) -> None:
    enrolled(app, staff.weber.email)
    signed_in_admin(app, client, staff)
    form = shown(client, staff.weber.id)

    page = client.post(f"/staff/accounts/{staff.weber.id}/two-factor/reset", data=form)

    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "Reset the two-factor sign-in of Dr. Weber?" in text
    assert f'<input type="hidden" name="shown" value="{form["shown"]}">' in text
    assert '<input type="hidden" name="confirmed" value="1">' in text
    with app.app_context():
        assert db.session.get(StaffUser, staff.weber.id).totp_enabled
    assert actions(app, "two_factor_reset") == []


def test_a_reset_notice_that_could_not_be_sent_is_listed_for_the_admins(
    mail_settings: dict[str, Any], app: Flask, client: FlaskClient, staff: Staff, smtp: Any
) -> None:
    """The colleague's address refuses the notice of the reset for good. It is the only way
    they learn of a reset they did not ask for, and nobody sends it again: the admins'
    accounts page lists it, with its account, until an admin has dealt with it (audited on
    the account), and the staff pages' banner points there, not to asking for a new link."""
    from booking.notifications.models import OutboxStatus
    from booking.notifications.services import deliver_outbox_email

    enrolled(app, staff.weber.email)
    signed_in_admin(app, client, staff)
    smtp.collector.refuse_rcpt.add(staff.weber.email)  # 550: the mailbox is gone
    assert "was reset" in alerts(reset(client, staff.weber.id))
    with app.app_context():
        notice = db.session.scalars(
            select(OutboxEmail).where(OutboxEmail.template == "staff_two_factor_reset")
        ).one()
        assert deliver_outbox_email(notice.id) is None
        assert db.session.get(OutboxEmail, notice.id).status == OutboxStatus.FAILED
        notice_id = notice.id

    page = client.get("/staff/accounts").get_data(as_text=True)
    listed = " ".join(section_at(page, 'id="unsent-notices"').split())
    assert "Notices about staff accounts that could not be sent" in listed
    assert (
        f"Two-factor reset: to {staff.weber.email}, the address of <bdi>Dr. Weber</bdi>, written "
        in listed
    )
    assert "were not told that an administrator reset their two-factor sign-in" in listed
    assert "sign-in address changed" not in listed  # no changed address's notice is listed
    banner = " ".join(section_at(page, 'id="late-mail"').split())
    assert "1 of the emails that failed was to a staff member about their own account" in banner
    assert 'href="/staff/accounts#unsent-notices"' in banner
    assert "or of a two-factor reset that could not be sent" in banner
    assert "password reset link" not in banner  # no reset link failed: nobody asks again

    settle = {"csrf_token": csrf_token(client, "/staff/accounts"), "email_id": str(notice_id)}
    assert client.post("/staff/accounts/notices", data=settle).status_code == 302
    page = client.get("/staff/accounts")
    assert "The notice was taken off the list." in alerts(page)
    assert 'id="unsent-notices"' not in page.get_data(as_text=True)
    assert 'id="late-mail"' not in page.get_data(as_text=True)  # nor counted on the banner
    [settled] = actions(app, "two_factor_notice_settled")
    assert (settled.actor_id, settled.target_type, settled.target_id) == (
        staff.admin.id,
        "staff",
        str(staff.weber.id),
    )
    assert actions(app, "address_notice_settled") == []


def test_reset_notices_written_before_their_audit_row_named_them_are_listed_with_their_account(
    app: Flask, client: FlaskClient, staff: Staff
) -> None:
    """Rows shaped as those written before a reset's audit row named its notice: the audit
    row (its target the account, no ``notice_email_ids``) and the notice, failed, written in
    the same transaction. The account is read from that row; two resets within the minute
    are told apart by the account's address; a notice no row answers for (its audit row
    gone), or an old changed address's, says its account is unknown rather than nothing."""
    from datetime import timedelta

    from booking.notifications.models import OutboxStatus
    from booking.timeutil import now_utc

    at = now_utc() - timedelta(days=3)

    def old_reset(account_id: int | None, recipient: str, written: Any, template: str) -> int:
        if account_id is not None:
            db.session.add(
                AuditEvent(
                    occurred_at=written,
                    actor_id=staff.admin.id,
                    action="two_factor_reset",
                    target_type="staff",
                    target_id=str(account_id),
                    details={"recovery_codes_removed": 10},
                )
            )
        email = OutboxEmail(
            template=template,
            recipient=recipient,
            subject="Your two-factor sign-in was reset",
            body_text="reset",
            body_html="<p>reset</p>",
            message_id=f"<{template}-{recipient}-{written.timestamp()}@example.com>",
            status=OutboxStatus.FAILED,
            attempts=1,
            created_at=written,
            next_attempt_at=written,
            claimed_at=written,
        )
        db.session.add(email)
        db.session.flush()
        return email.id

    with app.app_context():
        alone = old_reset(staff.weber.id, staff.weber.email, at, "staff_two_factor_reset")
        # Two resets in the same minute, a day later: each notice to its account's address.
        later = at + timedelta(days=1)
        old_reset(staff.okafor.id, staff.okafor.email, later, "staff_two_factor_reset")
        old_reset(
            staff.coordinator.id,
            staff.coordinator.email,
            later + timedelta(seconds=20),
            "staff_two_factor_reset",
        )
        # Its audit row is gone (kept no longer): nothing tells whose account it was.
        old_reset(None, "gone@example.com", at + timedelta(days=2), "staff_two_factor_reset")
        old_reset(None, "old@example.com", at + timedelta(days=2), "staff_email_changed")
        db.session.commit()

    signed_in_admin(app, client, staff)
    listed = " ".join(
        section_at(
            client.get("/staff/accounts").get_data(as_text=True), 'id="unsent-notices"'
        ).split()
    )
    for email, name in (
        (staff.weber.email, "Dr. Weber"),
        (staff.okafor.email, "Dr. Okafor"),
        (staff.coordinator.email, "Cora Coord"),
    ):
        assert f"Two-factor reset: to {email}, the address of <bdi>{name}</bdi>, written " in listed
    unknown = "account unknown (written before notices named their account), written "
    assert f"Two-factor reset: to gone@example.com, {unknown}" in listed
    assert f"To old@example.com, {unknown}" in listed

    settle = {"csrf_token": csrf_token(client, "/staff/accounts"), "email_id": str(alone)}
    assert client.post("/staff/accounts/notices", data=settle).status_code == 302
    [settled] = actions(app, "two_factor_notice_settled")
    assert (settled.target_type, settled.target_id) == ("staff", str(staff.weber.id))
