"""Two admins creating the same staff account at the same moment, on PostgreSQL.

Each looks the address up, finds no account, and inserts one: the second insert hits the
unique address. It was a server error (500) for the second admin; it is now the same refusal
as for an address already taken. The interleaving is made exact: the other admin's account is
committed, from its own session, just after this admin's look-up. PostgreSQL only: on SQLite,
BEGIN IMMEDIATE serialises the whole of each change, so the look-up sees the other account.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from booking.extensions import db
from booking.staff import services
from booking.staff.models import StaffRole, StaffUser
from tests.support import PASSWORD, AuthActions, Staff

pytestmark = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)

CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def _other_admin_creates_meanwhile(
    app: Flask, monkeypatch: pytest.MonkeyPatch, email: str, full_name: str
) -> list[bool]:
    """Another admin creates an account with ``email`` just after this admin's look-up of
    the address (once, from its own session, committed); the list says it did."""
    look_up = services.find_staff_by_email
    created: list[bool] = []

    def other_admin_creates_it_meanwhile(address: str) -> Any:
        found = look_up(address)
        if not created:
            created.append(True)
            with app.app_context():
                services.create_staff(
                    email=email,
                    full_name=full_name,
                    role=StaffRole.COORDINATOR,
                    password=PASSWORD,
                    actor=None,
                )
        return found

    monkeypatch.setattr(services, "find_staff_by_email", other_admin_creates_it_meanwhile)
    return created


def test_an_account_another_admin_created_meanwhile_is_refused_not_a_server_error(
    app: Flask, auth: AuthActions, staff: Staff, monkeypatch: pytest.MonkeyPatch
) -> None:
    auth.login("admin")
    client = auth.client
    token = CSRF.findall(client.get("/staff/accounts").get_data(as_text=True))[0]

    created = _other_admin_creates_meanwhile(
        app, monkeypatch, "new.colleague@example.com", "New Colleague"
    )
    response = client.post(
        "/staff/accounts",
        data={
            "csrf_token": token,
            "full_name": "New Colleague",
            "email": "New.Colleague@example.com",
            "role": StaffRole.COORDINATOR.value,
            "password": PASSWORD,
        },
    )
    assert created
    assert response.status_code == 422
    assert "An account with this email address already exists." in response.get_data(as_text=True)
    with app.app_context():
        assert (
            db.session.scalar(
                select(func.count())
                .select_from(StaffUser)
                .where(StaffUser.email == "new.colleague@example.com")
            )
            == 1
        )


def test_an_address_another_admin_gave_meanwhile_is_refused_at_the_field_not_a_server_error(
    app: Flask, auth: AuthActions, staff: Staff, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same race for a corrected address: the other admin creates an account with it
    just after this admin's look-up."""
    auth.login("admin")
    client = auth.client
    path = f"/staff/accounts/{staff.weber.id}/edit"
    page = client.get(path).get_data(as_text=True)
    token = CSRF.findall(page)[0]
    shown = re.search(r'name="shown" type="hidden" value="([0-9a-f]+)"', page).group(1)

    created = _other_admin_creates_meanwhile(
        app, monkeypatch, "anna.weber@example.com", "Anna Weber"
    )
    response = client.post(
        path,
        data={
            "csrf_token": token,
            "shown": shown,
            "full_name": "Dr. Weber",
            "email": "Anna.Weber@example.com",
        },
    )
    assert created
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert re.search(
        r'id="email-error"[^>]*>.*Another account already uses this email address\.', page
    )
    with app.app_context():
        assert db.session.get(StaffUser, staff.weber.id).email == "weber@example.com"
