"""An administrator changes a staff member's role: audited, signed out, the new role's rules
at the next sign-in."""

from __future__ import annotations

import re

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from werkzeug.test import TestResponse

from booking.audit.models import AuditEvent
from booking.extensions import db
from booking.staff.models import StaffRole, StaffSession, StaffUser
from booking.staff.services import set_two_factor_roles
from tests.factories import book_first_open_time, make_staff
from tests.support import AuthActions, Clinic, Staff, csrf_token
from tests.test_destructive_confirmation import asked, confirm, press

ALERT = re.compile(r'<div class="alert[^"]*"[^>]*>(.*?)</div>', re.S)


def set_role(client: FlaskClient, user_id: int, role: str) -> TestResponse:
    """The row's "Change role", then its confirmation page's button (asked first: below)."""
    token = csrf_token(client, "/staff/accounts")
    return client.post(
        f"/staff/accounts/{user_id}/role",
        data={"csrf_token": token, "role": role, "confirmed": "1"},
        follow_redirects=True,
    )


def alerts(response: TestResponse) -> str:
    return " ".join(" ".join(m.split()) for m in ALERT.findall(response.get_data(as_text=True)))


def role_of(app: Flask, user_id: int) -> StaffRole:
    with app.app_context():
        return db.session.get(StaffUser, user_id).role  # type: ignore[union-attr]


def role_changes(app: Flask) -> list[tuple[int | None, str, dict]]:
    with app.app_context():
        rows = db.session.scalars(
            select(AuditEvent)
            .where(AuditEvent.action == "staff_role_changed")
            .order_by(AuditEvent.id)
        )
        return [(row.actor_id, row.target_id, row.details) for row in rows]


def test_an_admin_promotes_a_coordinator_who_is_signed_out_and_comes_back_as_admin(
    app: Flask, client: FlaskClient, staff: Staff
) -> None:
    coordinator = app.test_client()
    AuthActions(coordinator).login(email=staff.coordinator.email)
    assert coordinator.get("/staff/accounts").status_code == 403
    AuthActions(client).login(email=staff.admin.email)

    page = set_role(client, staff.coordinator.id, "admin")

    assert "<bdi>Cora Coord</bdi> now has the role Administrator." in alerts(page)
    assert role_of(app, staff.coordinator.id) == StaffRole.ADMIN
    assert role_changes(app) == [
        (
            staff.admin.id,
            str(staff.coordinator.id),
            {"role": {"before": "coordinator", "after": "admin"}},
        )
    ]
    # The open session ended with the change; the next sign-in has the new role.
    response = coordinator.get("/staff/accounts")
    assert response.status_code == 302 and "/staff/login" in response.headers["Location"]
    with app.app_context():
        reasons = db.session.scalars(
            select(StaffSession.end_reason).where(StaffSession.staff_id == staff.coordinator.id)
        ).all()
    assert reasons == ["role_changed"]
    AuthActions(coordinator).login(email=staff.coordinator.email)
    assert coordinator.get("/staff/accounts").status_code == 200


def test_a_demoted_admin_loses_the_admin_pages(
    app: Flask, client: FlaskClient, staff: Staff
) -> None:
    with app.app_context():
        other = make_staff("admin", "second@example.com", full_name="Sam Second").id
    AuthActions(client).login(email=staff.admin.email)
    assert "<bdi>Sam Second</bdi> now has the role Coordinator." in alerts(
        set_role(client, other, "coordinator")
    )
    demoted = app.test_client()
    AuthActions(demoted).login(email="second@example.com")
    assert demoted.get("/staff/accounts").status_code == 403
    assert demoted.get("/staff/").status_code == 200


def test_the_accounts_table_names_each_role_and_offers_no_change_of_ones_own(
    client: FlaskClient, staff: Staff
) -> None:
    AuthActions(client).login(email=staff.admin.email)
    page = client.get("/staff/accounts").get_data(as_text=True)
    assert f'action="/staff/accounts/{staff.coordinator.id}/role"' in page
    assert f'action="/staff/accounts/{staff.admin.id}/role"' not in page
    assert f'for="staff-role-{staff.coordinator.id}">Role of Cora Coord</label>' in page
    assert '<option value="coordinator" selected>Coordinator</option>' in page
    assert "<td>coordinator</td>" not in page  # the role's name, not its stored value


def test_an_admin_cannot_change_their_own_role_and_nonsense_changes_nothing(
    app: Flask, client: FlaskClient, staff: Staff
) -> None:
    AuthActions(client).login(email=staff.admin.email)
    assert "You cannot change your own role." in alerts(
        set_role(client, staff.admin.id, "coordinator")
    )
    assert "Please choose a role." in alerts(set_role(client, staff.coordinator.id, "owner"))
    page = set_role(client, staff.coordinator.id, "coordinator")
    assert "<bdi>Cora Coord</bdi> already has the role Coordinator." in alerts(page)
    assert role_of(app, staff.admin.id) == StaffRole.ADMIN
    assert role_of(app, staff.coordinator.id) == StaffRole.COORDINATOR
    assert role_changes(app) == []
    assert client.get("/staff/accounts").status_code == 200  # still signed in, still admin


def test_a_specialist_given_another_role_warns_of_their_appointments_to_come(
    app: Flask, client: FlaskClient, clinic: Clinic
) -> None:
    with app.app_context():
        book_first_open_time(clinic)
    AuthActions(client).login(email=clinic.admin.email)
    shown = alerts(set_role(client, clinic.weber.id, "coordinator"))
    assert (
        "<bdi>Dr. Weber</bdi> still has 1 appointment to come: move it to another specialist"
        in shown
    )
    shown = alerts(set_role(client, clinic.okafor.id, "coordinator"))
    assert "<bdi>Dr. Okafor</bdi> now has the role Coordinator." in shown and "to come" not in shown


def test_a_change_of_role_is_asked_about_first_and_the_pages_button_makes_it(
    app: Flask, client: FlaskClient, clinic: Clinic
) -> None:
    """It signs the person out everywhere at once: the row's button answers with a page
    saying so (and that a specialist's appointments stay theirs) and changes nothing."""
    with app.app_context():
        book_first_open_time(clinic)
        # Coordinators must use two-factor sign-in (the admins' choice); Dr. Weber has none.
        set_two_factor_roles({"coordinator"}, actor=db.session.get(StaffUser, clinic.admin.id))
    specialist = app.test_client()
    AuthActions(specialist).login(email=clinic.weber.email)
    AuthActions(client).login(email=clinic.admin.email)
    with app.app_context():
        audit_rows = db.session.scalar(select(func.count()).select_from(AuditEvent))

    question, warnings, page = asked(
        press(client, f"/staff/accounts/{clinic.weber.id}/role", role="coordinator")
    )

    assert question == "Change the role of <bdi>Dr. Weber</bdi> to Coordinator?"
    assert "They are signed out everywhere at once" in page
    assert "Their next sign-in asks them to set up two-factor sign-in" in page
    assert warnings == [
        "<bdi>Dr. Weber</bdi> still has 1 appointment to come: it stays booked with them, and "
        "is to be moved to another specialist or cancelled."
    ]
    assert 'href="/staff/accounts"' in page  # cancel
    assert role_of(app, clinic.weber.id) == StaffRole.SPECIALIST
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(AuditEvent)) == audit_rows
    assert specialist.get("/staff/calendar").status_code == 200  # still signed in

    assert confirm(client, page).status_code == 302
    assert role_of(app, clinic.weber.id) == StaffRole.COORDINATOR
    assert [change[2] for change in role_changes(app)] == [
        {"role": {"before": "specialist", "after": "coordinator"}}
    ]
    signed_out = specialist.get("/staff/calendar")
    assert signed_out.status_code == 302 and "/staff/login" in signed_out.headers["Location"]
    # The role they have already, or one's own (refused): not asked.
    same = press(client, f"/staff/accounts/{clinic.weber.id}/role", role="coordinator")
    own = press(client, f"/staff/accounts/{clinic.admin.id}/role", role="coordinator")
    assert same.status_code == own.status_code == 302


def test_the_admins_menu_groups_their_pages_to_fit_one_row(auth: AuthActions, staff: Staff) -> None:
    """The admin's menu had eleven links and wrapped to two rows at 1280 px. Their own pages
    but the often used Scheduling are grouped in a <details> (it opens without scripts and
    by keyboard); every page is still a link in the menu, the one open marked as current."""
    auth.login("admin")
    page = auth.client.get("/staff/admin/audit").get_data(as_text=True)
    menu = page.split('id="staff-nav"', 1)[1].split("</ul>\n      <form", 1)[0]
    top = re.findall(r'<a class="nav-link[^"]*"[^>]*>([^<]+)</a>', menu)
    assert top == ["Queue", "Agenda", "Insights", "Outcomes", "Scheduling"]
    group = re.search(r"<details[^>]*>\s*<summary[^>]*>(.*?)</summary>(.*?)</details>", menu, re.S)
    # Its whole label, and the shorter one shown at 992-1399 px (hidden from screen readers).
    assert group is not None
    assert '<span class="nav-label-long">Administration</span>' in group.group(1)
    assert '<span class="nav-label-short" aria-hidden="true">Admin</span>' in group.group(1)
    assert re.findall(r">([^<]+)</a>", group.group(2)) == [
        "Staff accounts",
        "Locations",
        "Checklist",
        "Page feedback",
        "Audit trail",
        "Privacy",
    ]
    assert re.search(r'href="/staff/admin/audit" aria-current="page">Audit trail<', menu)
    # A coordinator has none of them: no empty group.
    coordinator = auth.new_client("coordinator").get("/staff/").get_data(as_text=True)
    assert "<details" not in coordinator.split('id="staff-nav"', 1)[1].split("</nav>", 1)[0]
