"""No page with patient data is kept by a browser or a proxy: every route of the URL map,
asked as staff and as a patient, answers ``Cache-Control: no-store, private``; only static
files may be cached."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.routing import Rule

from booking.security import STATIC_ENDPOINTS
from tests.factories import make_request, make_staff
from tests.support import AuthActions, open_manage_link, post_request, valid_answers


@pytest.fixture
def record(app: Flask) -> dict[str, Any]:
    """A real request with a document, so record pages and downloads answer 200."""
    with app.app_context():
        make_staff("admin", "admin@example.com")
        consultation = make_request(documents=1)
        return {
            "reference": consultation.reference,
            "document_id": consultation.documents[0].id,
            "consultation_id": consultation.id,
        }


def _values(rule: Rule, record: dict[str, Any]) -> dict[str, Any]:
    """Arguments for every placeholder of ``rule``: the real request's where they fit."""
    values: dict[str, Any] = {}
    for name in rule.arguments:
        if name == "reference":
            values[name] = record["reference"]
        elif name == "document_id":
            values[name] = record["document_id"]
        elif name == "filename":
            values[name] = "site.css"
        elif name == "token":
            values[name] = "x.y.z" if "signed" in rule.rule else "unknown-token"
        elif name == "action":
            values[name] = "confirm"
        elif rule._converters[name].regex.startswith(r"\d"):
            values[name] = 1
        else:
            values[name] = "x"
    return values


def _routes(app: Flask) -> list[Rule]:
    return [r for r in app.url_map.iter_rules() if r.endpoint not in STATIC_ENDPOINTS]


def _check(response: Any, where: str) -> None:
    assert response.headers.get("Cache-Control") == "no-store, private", (
        f"{where} answered {response.status_code} with "
        f"Cache-Control {response.headers.get('Cache-Control')!r}"
    )


def test_every_route_answers_no_store_to_staff_and_to_patients(
    app: Flask, record: dict[str, Any]
) -> None:
    staff = app.test_client()
    AuthActions(staff).attempt("admin@example.com")
    patient = app.test_client()
    with app.app_context():
        from booking.extensions import db
        from booking.requests.models import ConsultationRequest

        open_manage_link(patient, db.session.get(ConsultationRequest, record["consultation_id"]))
    rules = _routes(app)
    assert len(rules) > 45  # the walk really covers the application
    seen = set()
    with app.test_request_context():
        for rule in rules:
            path = app.url_map.bind("localhost").build(
                rule.endpoint, _values(rule, record), append_unknown=False
            )
            for client in (staff, patient):
                for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                    response = client.open(path, method=method, data={})
                    _check(response, f"{method} {path} ({rule.endpoint})")
                    seen.add((rule.endpoint, response.status_code))
    # The pages that hold patient data were really shown, not just refused.
    shown = {endpoint for endpoint, status in seen if status == 200}
    for endpoint in ("dashboard.queue", "dashboard.record", "dashboard.document", "manage.view"):
        assert endpoint in shown, endpoint


def test_the_submitted_page_and_a_step_shown_again_with_answers_are_not_stored(
    client: FlaskClient,
) -> None:
    response = post_request(client)
    assert response.status_code == 303
    _check(client.get(response.headers["Location"]), "the submitted page")
    again = post_request(client, valid_answers(full_name="Erika", phone=""))  # one missing
    assert again.status_code == 422
    assert 'value="Erika"' in again.get_data(as_text=True)  # what the patient typed
    _check(again, "a step shown again")


def test_static_files_may_be_cached(client: FlaskClient) -> None:
    response = client.get("/static/css/app.css")
    assert response.status_code == 200
    assert "no-store" not in response.headers.get("Cache-Control", "")
    response.close()
