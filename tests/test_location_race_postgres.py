"""Two admins naming two locations alike at the same moment, on PostgreSQL.

Each checks the name against the others, finds it free, and writes it: the second write hits
the unique name (whatever its capitals: "annex" beside "Annex"). It was a server error (500)
for the second admin; it is now the refusal the check gives, at the name. The interleaving is
made exact: the other admin's location is committed, from its own session, just after this
admin's check read the locations. PostgreSQL only: on SQLite, BEGIN IMMEDIATE serialises the
whole of each change.
"""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from booking.extensions import db
from booking.scheduling import services
from booking.scheduling.models import Location
from tests.factories import make_location
from tests.support import AuthActions, Staff, field_error, form_values

pytestmark = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)

TAKEN = "Error: A location with this name already exists."


def _other_admin_adds(app: Flask, monkeypatch: pytest.MonkeyPatch, name: str) -> list[bool]:
    """Make the other admin add a location called ``name`` just after this admin's check."""
    read = services.all_locations
    added: list[bool] = []

    def other_admin_adds_it_meanwhile() -> Any:
        found = read()
        if not added:  # once: from its own session, committed after this admin's check
            added.append(True)
            with app.app_context():
                make_location(name=name, address="Hauptstr. 9, Potsdam")
        return found

    monkeypatch.setattr(services, "all_locations", other_admin_adds_it_meanwhile)
    return added


@pytest.mark.parametrize("renaming", [False, True])
@pytest.mark.parametrize("typed", ["Annex", "annex"])  # the same name, or in other capitals
def test_a_name_another_admin_gave_meanwhile_is_refused_at_the_name_not_a_server_error(
    app: Flask,
    auth: AuthActions,
    staff: Staff,
    monkeypatch: pytest.MonkeyPatch,
    renaming: bool,
    typed: str,
) -> None:
    with app.app_context():
        main = make_location(name="Main clinic").id
    auth.login("admin")
    client = auth.client
    path = f"/staff/admin/locations/{main}" if renaming else "/staff/admin/locations"
    page = client.get(path).get_data(as_text=True)
    added = _other_admin_adds(app, monkeypatch, "Annex")
    response = client.post(
        path,
        data={**form_values(page), "name": typed, "address": "Hauptstr. 9, Potsdam"},
    )
    assert added
    assert response.status_code == 422
    assert field_error(response.get_data(as_text=True), "name") == TAKEN
    with app.app_context():
        names = sorted(db.session.scalars(select(Location.name)))
    assert names == ["Annex", "Main clinic"]
