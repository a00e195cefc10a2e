"""An administrator corrects a colleague's name and email address (a typo): the same
account, so the schedule and history stay on it; a new address signs them out and ends the
reset links sent to the old one; refusals are shown at their fields."""

from __future__ import annotations

import re
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from werkzeug.test import TestResponse

from booking.audit.models import AuditEvent
from booking.extensions import db
from booking.scheduling.models import Appointment, WorkingHours
from booking.staff.auth import make_reset_token
from booking.staff.models import StaffSession, StaffUser
from tests.factories import book_first_open_time
from tests.support import (
    PASSWORD,
    AuthActions,
    Clinic,
    Staff,
    csrf_token,
    outbox_emails,
    section_at,
)
from tests.test_staff_roles import alerts

SHOWN = re.compile(r'<input id="shown" name="shown" type="hidden" value="([0-9a-f]*)">')


def shown(client: FlaskClient, user_id: int) -> dict[str, str]:
    """The hidden values of ``user_id``'s page as it is shown now."""
    path = f"/staff/accounts/{user_id}/edit"
    page = client.get(path).get_data(as_text=True)
    mark = SHOWN.search(page)
    assert mark, "no mark of what the page shows"
    return {"csrf_token": csrf_token(client, path), "shown": mark.group(1)}


def correct(
    client: FlaskClient,
    user_id: int,
    full_name: str,
    email: str,
    page: dict[str, str] | None = None,
) -> TestResponse:
    return client.post(
        f"/staff/accounts/{user_id}/edit",
        data={**(page or shown(client, user_id)), "full_name": full_name, "email": email},
    )


def account(app: Flask, user_id: int) -> tuple[str, str]:
    with app.app_context():
        user = db.session.get(StaffUser, user_id)
        return user.full_name, user.email


def corrections(app: Flask) -> list[tuple[int | None, str | None, dict]]:
    with app.app_context():
        rows = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "staff_details_corrected")
        )
        return [(row.actor_id, row.target_id, row.details) for row in rows]


def field_error(page: str, field: str) -> str:
    match = re.search(
        rf'<div id="{field}-error" class="invalid-feedback d-block">(.*?)</div>', page, re.S
    )
    return re.sub(r"<[^>]+>", "", match.group(1)) if match else ""


def test_a_corrected_name_keeps_the_colleague_signed_in(
    app: Flask, client: FlaskClient, staff: Staff
) -> None:
    colleague = app.test_client()
    AuthActions(colleague).login(email=staff.coordinator.email)
    AuthActions(client).login(email=staff.admin.email)
    accounts = client.get("/staff/accounts").get_data(as_text=True)
    assert f'href="/staff/accounts/{staff.coordinator.id}/edit"' in accounts
    assert f'href="/staff/accounts/{staff.admin.id}/edit"' not in accounts  # not one's own

    response = correct(client, staff.coordinator.id, "  Cora Coordinator ", staff.coordinator.email)

    assert response.status_code == 302
    assert "The account of <bdi>Cora Coordinator</bdi> was corrected." in alerts(
        client.get("/staff/accounts")
    )
    assert account(app, staff.coordinator.id) == ("Cora Coordinator", staff.coordinator.email)
    assert corrections(app) == [
        (staff.admin.id, str(staff.coordinator.id), {"changed": ["full_name"]})
    ]
    assert colleague.get("/staff/").status_code == 200  # the same address: still signed in


def test_a_corrected_address_signs_them_out_ends_old_reset_links_and_keeps_their_schedule(
    app: Flask, client: FlaskClient, clinic: Clinic
) -> None:
    with app.app_context():
        book_first_open_time(clinic)
        old_link = make_reset_token(db.session.get(StaffUser, clinic.weber.id))
        hours = db.session.scalar(
            select(func.count()).where(WorkingHours.specialist_id == clinic.weber.id)
        )
    weber = app.test_client()
    AuthActions(weber).login(email=clinic.weber.email)
    AuthActions(client).login(email=clinic.admin.email)
    form = client.get(f"/staff/accounts/{clinic.weber.id}/edit").get_data(as_text=True)
    assert 'value="weber@example.com"' in form and 'value="Dr. Weber"' in form

    response = correct(client, clinic.weber.id, "Dr. Weber", "Anna.Weber@Example.com")

    assert response.status_code == 302
    shown = alerts(client.get("/staff/accounts"))
    assert (
        "They were signed out, and sign in with <bdi>anna.weber@example.com</bdi> from now on."
    ) in shown
    assert account(app, clinic.weber.id) == ("Dr. Weber", "anna.weber@example.com")
    notices = [email.id for email in outbox_emails(app, "staff_email_changed")]
    assert corrections(app) == [
        (clinic.admin.id, str(clinic.weber.id), {"changed": ["email"], "notice_email_ids": notices})
    ]
    with app.app_context():
        reasons = db.session.scalars(
            select(StaffSession.end_reason).where(StaffSession.staff_id == clinic.weber.id)
        ).all()
        # The same account: the weekly hours and the appointment to come are still his.
        assert (
            db.session.scalar(
                select(func.count()).where(WorkingHours.specialist_id == clinic.weber.id)
            )
            == hours
            > 0
        )
        assert db.session.scalars(select(Appointment.specialist_id)).all() == [clinic.weber.id]
    assert reasons == ["email_changed"]
    response = weber.get("/staff/")
    assert response.status_code == 302 and "/staff/login" in response.headers["Location"]
    # A reset link sent to the old address no longer opens.
    assert client.get(f"/staff/password/reset/{old_link}").status_code == 400
    # The old address signs nobody in; the new one does, into the same account.
    assert AuthActions(weber).attempt("weber@example.com").status_code == 401
    assert AuthActions(weber).login(email="anna.weber@example.com").id == clinic.weber.id


def test_refusals_are_shown_at_their_fields_and_change_nothing(
    app: Flask, client: FlaskClient, staff: Staff
) -> None:
    AuthActions(client).login(email=staff.admin.email)
    before = account(app, staff.weber.id)

    taken = correct(client, staff.weber.id, "Dr. Weber", "OKAFOR@example.com")
    assert taken.status_code == 422
    page = taken.get_data(as_text=True)
    assert field_error(page, "email") == "Error: Another account already uses this email address."
    assert "<title>Error: Correct the account of Dr. Weber" in page
    assert 'href="#email"' in page  # the summary leads to the field

    blank = correct(client, staff.weber.id, "   ", "weber@example.com")
    assert blank.status_code == 422
    assert field_error(blank.get_data(as_text=True), "full_name") == "Error: Please enter a name."

    invalid = correct(client, staff.weber.id, "Dr. Weber", "weber@")
    assert invalid.status_code == 422
    assert "valid email address" in field_error(invalid.get_data(as_text=True), "email")

    own = correct(client, staff.admin.id, "Someone Else", "someone@example.com")
    assert own.status_code == 422
    assert "You cannot change your own account here." in own.get_data(as_text=True)

    unchanged = correct(client, staff.weber.id, "Dr. Weber", "Weber@example.com")
    assert unchanged.status_code == 302
    assert "Nothing was changed for <bdi>Dr. Weber</bdi>." in alerts(client.get("/staff/accounts"))

    assert account(app, staff.weber.id) == before
    assert account(app, staff.admin.id)[1] == staff.admin.email
    assert corrections(app) == []


def test_a_page_shown_before_another_admins_correction_does_not_undo_it(
    app: Flask, client: FlaskClient, staff: Staff
) -> None:
    AuthActions(client).login(email=staff.admin.email)
    other_admin = app.test_client()
    AuthActions(other_admin).login(email=staff.admin.email)
    older = shown(client, staff.weber.id)  # this tab, opened first
    assert (
        correct(other_admin, staff.weber.id, "Dr. Lena Weber", "weber@example.com").status_code
        == 302
    )

    stale = correct(client, staff.weber.id, "Dr. Weber", "weber@example.com", older)

    assert stale.status_code == 422
    page = stale.get_data(as_text=True)
    assert (
        "Another administrator changed this account since the page was shown: it is now "
        "<bdi>Dr. Lena Weber</bdi>, <bdi>weber@example.com</bdi>." in page
    )
    assert account(app, staff.weber.id) == ("Dr. Lena Weber", "weber@example.com")
    # The page now carries the account as it is: sent again, after checking, it is saved.
    again = {"csrf_token": older["csrf_token"], "shown": SHOWN.search(page).group(1)}
    assert again["shown"] != older["shown"]
    saved = correct(client, staff.weber.id, "Dr. Anna Weber", "weber@example.com", again)
    assert saved.status_code == 302
    assert account(app, staff.weber.id) == ("Dr. Anna Weber", "weber@example.com")
    assert len(corrections(app)) == 2


def test_a_changed_address_is_emailed_to_the_old_address_and_the_new(
    app: Flask, client: FlaskClient, staff: Staff
) -> None:
    """An account taken over starts by moving its address (reset links then go to the taker):
    the old address is told what changed, by whom and when, and whom to tell, in the same
    transaction as the change."""
    AuthActions(client).login(email=staff.admin.email)
    with app.app_context():
        db.session.get(StaffUser, staff.weber.id).full_name = "د. ويبر"
        db.session.commit()

    assert correct(client, staff.weber.id, "د. ويبر", "anna.weber@example.com").status_code == 302

    emails = outbox_emails(app, "staff_email_changed")
    assert [email.recipient for email in emails] == ["weber@example.com", "anna.weber@example.com"]
    for email in emails:
        assert email.subject.startswith("The email address of your ")
        text = email.body_text
        assert "Hello د. ويبر," in text
        assert re.search(
            r"Ada Admin, an administrator of .+, changed the email address of your "
            r"staff account on \w+ \d+ \w+ \d{4}, \d\d:\d\d, Germany \(Berlin\) Time\.",
            text,
        )
        assert "Old address: weber@example.com" in text
        assert "New address: anna.weber@example.com" in text
        assert "If you did not make or expect this change" in text
        assert "Tell one of the clinic's administrators at once: Ada Admin." in text
        assert "<p>Hello <bdi>د. ويبر</bdi>,</p>" in email.body_html
        assert "<bdi>Ada Admin</bdi>, an administrator of" in email.body_html
    assert "This address gets no more of them." in emails[0].body_text
    assert "This address gets no more of them." not in emails[1].body_text
    # A name alone changed: nobody is emailed.
    assert (
        correct(client, staff.okafor.id, "Dr. Ngozi Okafor", staff.okafor.email).status_code == 302
    )
    assert len(outbox_emails(app, "staff_email_changed")) == 2


def test_a_changed_address_notice_that_could_not_be_sent_is_listed_for_the_admins(
    mail_settings: dict[str, Any], app: Flask, client: FlaskClient, staff: Staff, smtp: Any
) -> None:
    """The old address refuses the notice for good (its mailbox is gone, or a taker made
    sure of it). It is about no request, so no record shows it, and the staff pages' banner
    counts a failed email for a day without saying which: the admins' accounts page lists
    it, with its account, until an admin has dealt with it (audited on the account)."""
    from booking.notifications.models import OutboxStatus
    from booking.notifications.services import deliver_outbox_email

    AuthActions(client).login(email=staff.admin.email)
    assert correct(client, staff.weber.id, "Dr. Weber", "anna.weber@example.com").status_code == 302
    old, new = outbox_emails(app, "staff_email_changed")
    assert 'id="unsent-notices"' not in client.get("/staff/accounts").get_data(as_text=True)
    smtp.collector.refuse_rcpt.add("weber@example.com")  # 550: the mailbox is gone
    with app.app_context():
        for notice in (old, new):
            assert deliver_outbox_email(notice.id) is None
    assert [e.status for e in outbox_emails(app, "staff_email_changed")] == [
        OutboxStatus.FAILED,
        OutboxStatus.SENT,
    ]

    page = client.get("/staff/accounts").get_data(as_text=True)
    listed = section_at(page, 'id="unsent-notices"')
    assert "To weber@example.com, the old address of <bdi>Dr. Weber</bdi>, written " in listed
    assert "anna.weber@example.com" not in listed  # the new address got its notice
    settle = {"csrf_token": csrf_token(client, "/staff/accounts"), "email_id": str(old.id)}
    response = client.post("/staff/accounts/notices", data=settle)
    assert response.status_code == 302
    assert "The notice was taken off the list." in alerts(client.get("/staff/accounts"))
    assert 'id="unsent-notices"' not in client.get("/staff/accounts").get_data(as_text=True)
    with app.app_context():
        [settled] = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "address_notice_settled")
        ).all()
        assert (settled.actor_id, settled.target_type, settled.target_id) == (
            staff.admin.id,
            "staff",
            str(staff.weber.id),
        )
    # Dealt with already (by another admin's click): nothing more is written.
    client.post("/staff/accounts/notices", data=settle)
    with app.app_context():
        assert (
            db.session.scalar(
                select(func.count()).where(AuditEvent.action == "address_notice_settled")
            )
            == 1
        )


def own_page(client: FlaskClient) -> dict[str, str]:
    page = client.get("/staff/account").get_data(as_text=True)
    return {"csrf_token": csrf_token(client, "/staff/account"), "shown": SHOWN.search(page)[1]}


def change_own(client: FlaskClient, full_name: str, email: str, password: str = "") -> TestResponse:
    return client.post(
        "/staff/account",
        data={**own_page(client), "full_name": full_name, "email": email, "password": password},
    )


def test_a_lone_admin_corrects_their_own_name_and_with_their_password_their_address(
    app: Flask, client: FlaskClient, staff: Staff
) -> None:
    AuthActions(client).login(email=staff.admin.email)
    assert 'href="/staff/account"' in client.get("/staff/accounts").get_data(as_text=True)

    named = change_own(client, "Ada Admín", staff.admin.email)
    assert named.status_code == 302 and named.headers["Location"].endswith("/staff/account")
    assert "Your name was changed." in alerts(client.get("/staff/account"))
    assert account(app, staff.admin.id) == ("Ada Admín", staff.admin.email)
    assert client.get("/staff/").status_code == 200  # the same address: still signed in

    # A new address needs the password, typed again: none, or a wrong one, changes nothing.
    unsure = change_own(client, "Ada Admín", "ada@example.com")
    assert unsure.status_code == 401
    assert "Please enter your current password" in field_error(
        unsure.get_data(as_text=True), "password"
    )
    wrong = change_own(client, "Ada Admín", "ada@example.com", "not the password")
    assert wrong.status_code == 401
    assert field_error(wrong.get_data(as_text=True), "password") == (
        "Error: That password is not right."
    )
    assert account(app, staff.admin.id) == ("Ada Admín", staff.admin.email)
    assert outbox_emails(app, "staff_email_changed") == []
    with app.app_context():
        refused = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "password_check_failed")
        ).one()
        assert refused.details == {"for": "email address change"}

    moved = change_own(client, "Ada Admín", "Ada@Example.com", PASSWORD)
    assert moved.status_code == 302 and moved.headers["Location"].endswith("/staff/login")
    shown = alerts(client.get("/staff/login"))
    assert "please sign in with <bdi>ada@example.com</bdi>." in shown
    # The notices are only in the outbox yet: the page does not say they arrived.
    assert "An email about it is on its way to both addresses." in shown
    assert account(app, staff.admin.id) == ("Ada Admín", "ada@example.com")
    emails = outbox_emails(app, "staff_email_changed")
    assert corrections(app) == [
        (staff.admin.id, str(staff.admin.id), {"changed": ["full_name"]}),
        (
            staff.admin.id,
            str(staff.admin.id),
            {"changed": ["email"], "notice_email_ids": [email.id for email in emails]},
        ),
    ]
    assert [email.recipient for email in emails] == [staff.admin.email, "ada@example.com"]
    assert "from your own account, signed in with its password" in emails[0].body_text
    # The lone admin has no colleague to name.
    assert "Tell the clinic's management at once." in emails[0].body_text
    assert client.get("/staff/").status_code == 302  # signed out
    assert AuthActions(client).login(email="ada@example.com").id == staff.admin.id


def test_a_specialist_corrects_their_name_and_a_stale_page_changes_nothing(
    app: Flask, client: FlaskClient, staff: Staff
) -> None:
    AuthActions(client).login(email=staff.weber.email)
    older = own_page(client)
    assert change_own(client, "Dr. Lena Weber", staff.weber.email).status_code == 302

    stale = client.post(
        "/staff/account",
        data={**older, "full_name": "Dr. Weber", "email": staff.weber.email, "password": ""},
    )

    assert stale.status_code == 422
    assert "Your account was changed since the page was shown" in stale.get_data(as_text=True)
    assert account(app, staff.weber.id) == ("Dr. Lena Weber", staff.weber.email)
