"""The address of a record's action (a form only posted to) opened with a GET: a form refused
with an error is shown again at the address it was posted to, so reloading that page, or
opening it again from the history, asks for it. The staff member goes back to the record, at
the action's form, and nothing is done; any other address under the record, and a request
they may not see, are still not found."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from booking.audit.models import AuditEvent
from booking.dashboard import services as workflow
from booking.dashboard.views import ACTION_SECTIONS
from booking.extensions import db
from booking.notifications.models import OutboxEmail
from booking.requests.events import RequestEvent
from booking.requests.models import ConsultationRequest
from booking.scheduling.models import Appointment
from tests.factories import make_assigned_requests
from tests.support import AuthActions, Clinic, csrf_token, hidden_value


@pytest.fixture
def working_hours() -> dict[str, tuple[str, str]]:
    return {"weber": ("08:00", "18:00"), "okafor": ("08:00", "18:00")}


@pytest.fixture
def requests(app: Flask, clinic: Clinic) -> tuple[dict[str, Any], dict[str, Any]]:
    """Two confirmed requests: "own" Dr. Weber's, "other" Dr. Okafor's."""
    with app.app_context():
        return make_assigned_requests(clinic)


def state(app: Flask) -> dict[str, Any]:
    """What an action could change."""
    with app.app_context():

        def count(model: type) -> int:
            return db.session.scalar(select(func.count()).select_from(model)) or 0

        snapshot = {
            "events": count(RequestEvent),
            "outbox": count(OutboxEmail),
            "audit": count(AuditEvent),
            "requests": db.session.execute(
                select(ConsultationRequest.reference, ConsultationRequest.status)
            ).all(),
            "appointments": db.session.execute(select(Appointment.id, Appointment.starts_at)).all(),
        }
        db.session.remove()
        return snapshot


def action_paths(app: Flask, reference: str) -> list[tuple[str, str]]:
    """Every action on a request this blueprint has (each status change), as (endpoint, path)."""
    paths = []
    adapter = app.url_map.bind("localhost")
    for rule in app.url_map.iter_rules():
        if (
            not rule.endpoint.startswith("dashboard.")
            or rule.endpoint == "dashboard.return_to_record"  # itself: no action
            or "reference" not in rule.arguments
            or "POST" not in (rule.methods or ())
        ):
            continue
        actions = sorted(workflow.ACTIONS) if "action" in rule.arguments else [None]
        for action in actions:
            values = {"reference": reference, **({"action": action} if action else {})}
            paths.append((rule.endpoint, adapter.build(rule.endpoint, values)))
    return paths


def test_reloading_a_refused_reschedule_goes_back_to_the_record(
    app: Flask, client: FlaskClient, requests: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    own, _other = requests
    AuthActions(client).login("coordinator")
    record = f"/staff/requests/{own['reference']}"
    page = client.get(record).get_data(as_text=True)
    refused = client.post(
        f"{record}/reschedule",
        data={
            "slot-csrf_token": csrf_token(client, record),
            "slot-seen": hidden_value(page, "slot-seen"),
        },
    )
    assert refused.status_code == 422  # shown again at the reschedule's address
    before = state(app)

    again = client.get(f"{record}/reschedule")

    assert again.status_code == 303
    assert again.headers["Location"] == f"{record}#actions-heading"
    # Nothing was done, nor audited: the record's own showing is what audits a look at it.
    assert state(app) == before
    assert client.get(again.headers["Location"]).status_code == 200


def test_every_action_of_the_record_opened_with_a_get_goes_back_to_its_form(
    app: Flask, client: FlaskClient, requests: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    own, _other = requests
    AuthActions(client).login("admin")
    record = f"/staff/requests/{own['reference']}"
    paths = action_paths(app, own["reference"])
    assert len(paths) >= 19  # 13 actions and 6 status changes: the walk found them
    before = state(app)
    for endpoint, path in paths:
        response = client.get(path)
        assert response.status_code == 303, path
        assert response.headers["Location"] == f"{record}#{ACTION_SECTIONS[endpoint]}", path
        head = client.head(path)
        assert head.status_code == 303, path
    assert state(app) == before


def test_the_anchors_are_on_the_record(
    client: FlaskClient, requests: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    """The sections of a confirmed request's record each action goes back to (the others
    show only for some requests: the follow-up, emails not delivered, a raise)."""
    own, _other = requests
    AuthActions(client).login("admin")
    page = client.get(f"/staff/requests/{own['reference']}").get_data(as_text=True)
    shown = set(ACTION_SECTIONS.values()) - {"followup", "unnotified"}
    for section in shown:
        assert f'id="{section}"' in page, section


def test_a_reference_typed_another_way_goes_straight_to_the_record(
    client: FlaskClient, requests: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    own, _other = requests
    AuthActions(client).login("coordinator")
    response = client.get(f"/staff/requests/{own['reference'].lower()}/ask/withdraw")
    assert response.status_code == 303
    assert response.headers["Location"] == f"/staff/requests/{own['reference']}#asks"


@pytest.mark.parametrize(
    "rest",
    ["bogus", "ask/bogus", "documents/x", "notes/more", "reschedule/"],
)
def test_an_address_under_the_record_that_is_no_action_is_still_not_found(
    app: Flask, client: FlaskClient, requests: tuple[dict[str, Any], dict[str, Any]], rest: str
) -> None:
    own, _other = requests
    AuthActions(client).login("coordinator")
    before = state(app)
    response = client.get(f"/staff/requests/{own['reference']}/{rest}")
    assert response.status_code == 404
    assert "Page not found" in response.get_data(as_text=True)
    if "/" in rest:  # one word is a status change's address: its post asks for the token
        # Posted to (with no form token, as a stray post): not found, not a wrong method.
        posted = client.post(f"/staff/requests/{own['reference']}/{rest}")
        assert posted.status_code == 404
        assert "Page not found" in posted.get_data(as_text=True)
    assert state(app) == before


def test_an_unknown_or_unseen_request_is_not_found(
    app: Flask, client: FlaskClient, requests: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    _own, other = requests
    AuthActions(client).login("specialist")  # Dr. Weber: the other is Dr. Okafor's
    for reference in ("SC-0000-0000", other["reference"]):
        response = client.get(f"/staff/requests/{reference}/reschedule")
        assert response.status_code == 404
        assert other["patient"] not in response.get_data(as_text=True)


def test_a_visitor_not_signed_in_is_sent_to_sign_in(
    client: FlaskClient, requests: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    own, _other = requests
    response = client.get(f"/staff/requests/{own['reference']}/reschedule")
    assert response.status_code in (302, 303)
    assert response.headers["Location"].startswith("/staff/login")
