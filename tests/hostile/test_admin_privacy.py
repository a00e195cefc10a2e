"""Hostile input on the admins' privacy pages (find, export, erase) and the two-factor rule."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from booking.extensions import db
from booking.staff.models import SecuritySettings
from tests.hostile.conftest import MARKUP, Cases, assert_escaped, assert_refused, snapshot
from tests.support import csrf_token

FIND = "/staff/admin/privacy"

QUERIES = {
    "markup": (MARKUP, "No request has this email or reference."),
    "sql-like": ("' OR '1'='1' --", "No request has this email or reference."),
    "nul": ("nobody\x00@example.com", "Please remove the line breaks or invisible characters."),
    "zero-width": ("\u200b\u200b", None),
    "huge": ("x" * 5000, None),
}


@pytest.mark.parametrize(("query", "message"), QUERIES.values(), ids=QUERIES.keys())
def test_a_hostile_patient_search_is_refused_with_a_message(
    app: Flask, admin: FlaskClient, query: str, message: str | None
) -> None:
    before = snapshot(app)
    response = admin.post(FIND, data={"csrf_token": csrf_token(admin, FIND), "query": query})
    page = assert_refused(response, 422, message)
    if query == MARKUP:
        assert_escaped(page, query)
    assert snapshot(app) == before


@pytest.mark.parametrize(
    "reference", ["SC-0000-NONE", "../../etc/passwd", "%00", "x" * 300, "<script>"]
)
def test_privacy_pages_of_no_one_are_not_found(
    app: Flask, admin: FlaskClient, reference: str
) -> None:
    before = snapshot(app)
    token = csrf_token(admin, FIND)
    assert_refused(admin.get(f"{FIND}/{reference}"), 404)
    assert_refused(admin.post(f"{FIND}/{reference}/export", data={"csrf_token": token}), 404)
    erase = admin.post(
        f"{FIND}/{reference}/erase", data={"csrf_token": token, "confirmation": reference}
    )
    assert_refused(erase, 404)
    assert snapshot(app) == before


@pytest.mark.parametrize(
    "confirmation", ["", "wrong", "waiting@example.com\x00", MARKUP, "\u200bwaiting@example.com"]
)
def test_an_erasure_with_the_wrong_confirmation_erases_nothing(
    app: Flask, admin: FlaskClient, clinic: Cases, confirmation: str
) -> None:
    before = snapshot(app)
    url = f"{FIND}/{clinic.waiting}"
    response = admin.post(
        f"{url}/erase", data={"csrf_token": csrf_token(admin, url), "confirmation": confirmation}
    )
    assert response.status_code in (302, 400, 409, 422)
    assert snapshot(app) == before


def test_privacy_posts_without_csrf_or_by_a_coordinator_change_nothing(
    app: Flask, admin: FlaskClient, coordinator: FlaskClient, clinic: Cases
) -> None:
    before = snapshot(app)
    url = f"{FIND}/{clinic.waiting}"
    assert_refused(admin.post(f"{url}/erase", data={"confirmation": clinic.waiting}), 400)
    assert_refused(admin.post(f"{url}/export"), 400)
    token = csrf_token(coordinator, "/staff/")
    erase = coordinator.post(
        f"{url}/erase", data={"csrf_token": token, "confirmation": clinic.waiting}
    )
    assert_refused(erase, 403)
    assert snapshot(app) == before


TWO_FACTOR_ROLES = {
    "unknown-role": (["root"], 422),
    "markup": ([MARKUP], 422),
    "nul": (["coordinator\x00"], 422),
}


@pytest.mark.parametrize(
    ("roles", "status"), TWO_FACTOR_ROLES.values(), ids=TWO_FACTOR_ROLES.keys()
)
def test_a_forged_two_factor_rule_is_refused(
    app: Flask, admin: FlaskClient, roles: list[str], status: int
) -> None:
    before = snapshot(app)
    token = csrf_token(admin, "/staff/accounts")
    response = admin.post("/staff/accounts/two-factor", data={"csrf_token": token, "roles": roles})
    assert_refused(response, status, "Please choose from the options shown.")
    assert snapshot(app) == before
    with app.app_context():
        assert db.session.scalars(select(SecuritySettings)).all() == []
