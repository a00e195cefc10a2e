"""Two admins naming two locations (or two appointment types) alike but for case at the same
moment: "Annex" and "annex".

Each admin's check finds the name free (it read the others just before the other's save
committed), so both were written: the unique name compares case, and patients were offered two
places that read the same. The database now refuses the second whatever the case (a unique
index on ``lower(name)``), and the admin reads the check's own refusal at the name, not a
server error. Here the check reads the others as they were a moment before the other admin's
row: on SQLite one writer runs at a time (BEGIN IMMEDIATE), so the moment cannot be made with
two sessions there; ``test_location_race_postgres.py`` makes it so on PostgreSQL.
"""

from __future__ import annotations

from types import ModuleType

import pytest
from flask import Flask
from sqlalchemy import select

from booking.extensions import db
from booking.scheduling import admin_services, services
from booking.scheduling.models import AppointmentType, Location
from tests.factories import make_appointment_type, make_location
from tests.support import AuthActions, Staff, checked_radios, field_error, form_values, page_token


def _check_reads_before_the_other_admins(
    monkeypatch: pytest.MonkeyPatch, module: ModuleType, reader: str, name: str
) -> None:
    """The naming check of ``module`` reads the others without the row called ``name``: as
    they were just before the other admin's save committed it."""
    read = getattr(module, reader)
    monkeypatch.setattr(module, reader, lambda: [row for row in read() if row.name != name])


@pytest.mark.parametrize("renaming", [False, True])
def test_a_location_named_like_another_but_for_case_meanwhile_is_refused_at_the_name(
    app: Flask, auth: AuthActions, staff: Staff, monkeypatch: pytest.MonkeyPatch, renaming: bool
) -> None:
    with app.app_context():
        main = make_location(name="Main clinic").id
        make_location(name="Annex", address="Hauptstr. 9, Potsdam")  # the other admin's
    _check_reads_before_the_other_admins(monkeypatch, services, "all_locations", "Annex")
    auth.login("admin")
    path = f"/staff/admin/locations/{main}" if renaming else "/staff/admin/locations"
    page = auth.client.get(path).get_data(as_text=True)
    response = auth.client.post(
        path, data={**form_values(page), "name": "annex", "address": "Hauptstr. 9, Potsdam"}
    )
    assert response.status_code == 422
    said = field_error(response.get_data(as_text=True), "name")
    assert said == "Error: A location with this name already exists."
    with app.app_context():
        assert sorted(db.session.scalars(select(Location.name))) == ["Annex", "Main clinic"]


@pytest.mark.parametrize("renaming", [False, True])
def test_an_appointment_type_named_like_another_but_for_case_meanwhile_is_refused_at_the_name(
    app: Flask, auth: AuthActions, staff: Staff, monkeypatch: pytest.MonkeyPatch, renaming: bool
) -> None:
    with app.app_context():
        evaluation = make_appointment_type(name="Spine evaluation").id
        make_appointment_type(name="Follow-up visit", minutes=20)  # the other admin's
    _check_reads_before_the_other_admins(
        monkeypatch, admin_services, "all_appointment_types", "Follow-up visit"
    )
    auth.login("admin")
    if renaming:
        path, field = f"/staff/admin/scheduling/types/{evaluation}", "name"
    else:
        path, field = "/staff/admin/scheduling/", "type-name"
    page = auth.client.get(path).get_data(as_text=True)
    if renaming:
        data = {**form_values(page), **checked_radios(page)}
    else:  # the overview's form for a new type, not its booking rules'
        data = {
            **checked_radios(page, "type-"),
            "type-csrf_token": page_token(page),
            "type-duration_minutes": "30",
            "type-submit": "pressed",
        }
    data[field] = "FOLLOW-UP VISIT"
    response = auth.client.post(path, data=data)
    assert response.status_code == 422
    said = field_error(response.get_data(as_text=True), field)
    assert said == "Error: An appointment type with this name already exists."
    with app.app_context():
        names = sorted(db.session.scalars(select(AppointmentType.name)))
    assert names == ["Follow-up visit", "Spine evaluation"]
