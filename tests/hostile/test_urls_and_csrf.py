"""Hand-edited URLs and forged posts: query strings, ids of other people's (or nobody's)
records, and missing, replayed, tampered or expired CSRF tokens."""

from __future__ import annotations

import io
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from itsdangerous import TimestampSigner
from sqlalchemy import select

from booking.extensions import db
from booking.requests.models import ConsultationRequest
from tests.hostile.conftest import MARKUP, Cases, assert_refused, snapshot
from tests.support import (
    csrf_token,
    export_queue,
    fill_request,
    open_manage_link,
    pdf_bytes,
    step_answers,
    valid_answers,
)

HUGE = str(2**70)
BIG = str(2**40)  # fits SQLite's integers, not PostgreSQL's
EXPIRED_FORM = "This form has expired"


def assert_calm_page(response: Any) -> str:
    """A hostile query string is ignored: the page works and echoes nothing live."""
    assert response.status_code == 200, response.status_code
    page = response.get_data(as_text=True)
    assert "<script>alert" not in page and "<img src=x" not in page
    return page


# Query strings ------------------------------------------------------------------------------

QUEUE_QUERIES = {
    "markup-everywhere": {"status": MARKUP, "triage": MARKUP, "diagnosis": MARKUP, "q": MARKUP},
    "sql-like": {"q": "' OR 1=1 --", "diagnosis": "x' OR '1'='1", "status": "all"},
    "like-wildcards": {"q": "%_%\\", "status": "all"},
    "nul-and-controls": {"q": "a\x00b\x1b[2J", "triage": "\x00"},
    "huge-numbers": {"specialist": HUGE, "page": HUGE},
    "negative-numbers": {"specialist": "-1", "page": "-5"},
    "calendar-edges": {"from": "0001-01-01", "to": "9999-12-31"},
    "impossible-dates": {"from": "2026-02-30", "to": "2026-13-01"},
    "very-long-search": {"q": "\U0001f600" * 5000},
    "repeated-parameters": {"status": ["all", MARKUP, "requested"], "page": ["2", "x"]},
}


@pytest.mark.parametrize("query", QUEUE_QUERIES.values(), ids=QUEUE_QUERIES.keys())
def test_hostile_queue_filters_are_ignored(
    coordinator: FlaskClient, clinic: Cases, query: dict[str, Any]
) -> None:
    assert_calm_page(coordinator.get("/staff/", query_string=query))
    export = export_queue(coordinator, query)
    assert export.status_code == 200
    assert export.mimetype == "text/csv"


OTHER_QUERIES = {
    "calendar-year-one": ("/staff/calendar", {"date": "0001-01-01", "view": "day"}),
    "calendar-year-9999": ("/staff/calendar", {"date": "9999-12-31"}),
    "calendar-last-allowed-week": ("/staff/calendar", {"date": "2999-12-31", "view": "week"}),
    "calendar-markup": ("/staff/calendar", {"date": MARKUP, "view": MARKUP}),
    "calendar-huge-ids": ("/staff/calendar", {"specialist": HUGE, "location": BIG}),
    "insights-weeks": ("/staff/insights", {"weeks": HUGE}),
    "insights-markup": ("/staff/insights", {"weeks": MARKUP}),
    "audit-nul-action": ("/staff/admin/audit", {"action": "\x00login"}),
    "audit-markup": ("/staff/admin/audit", {"action": MARKUP, "actor": MARKUP, "target": MARKUP}),
    "audit-huge-page": ("/staff/admin/audit", {"page": HUGE, "from": "0001-01-01"}),
}


@pytest.mark.parametrize(("path", "query"), OTHER_QUERIES.values(), ids=OTHER_QUERIES.keys())
def test_hostile_query_strings_on_staff_pages_are_ignored(
    admin: FlaskClient, path: str, query: dict[str, str]
) -> None:
    assert_calm_page(admin.get(path, query_string=query))


# Query arguments named as the page's own (``reference``) or as ``url_for``'s (``endpoint``,
# ``_anchor``, ``_external``): the language switcher rebuilds the page's address from them.
CLASHING_QUERIES = {
    "public-page": ("/info/prepare", {"slug": "x", "endpoint": "x", "_anchor": "x"}),
    "home-page": ("/", {"_anchor": "x", "_external": "1"}),
    "manage-page": ("{waiting_link}", {"reference": "x", "endpoint": "x", "_scheme": "x"}),
}


@pytest.mark.parametrize(("path", "query"), CLASHING_QUERIES.values(), ids=CLASHING_QUERIES.keys())
def test_query_arguments_named_as_the_address_builders_are_ignored(
    client: FlaskClient, clinic: Cases, path: str, query: dict[str, str]
) -> None:
    url = path.format(**clinic.placeholders)
    page = assert_calm_page(client.get(url, query_string=query))
    # The switcher's link is this page's own address, in the other language, and no more.
    assert f'href="{url}?lang=es"' in page


# Ids of records that are not there, or not yours ----------------------------------------------

RECORD_PATHS = {
    "no-such-request": "/staff/requests/SC-NONE-XIST",
    "nul-in-reference": "/staff/requests/SC-AAAA%00BBBB",
    "very-long-reference": "/staff/requests/" + "A" * 5000,
    "sql-like-reference": "/staff/requests/' OR 1=1 --",
    "another-requests-document": "/staff/requests/{booked}/documents/{waiting_document}",
    "no-such-document": "/staff/requests/{waiting}/documents/999999",
    "document-id-too-big-for-sqlite": "/staff/requests/{waiting}/documents/" + HUGE,
    "document-id-too-big-for-postgresql": "/staff/requests/{waiting}/documents/" + BIG,
    "negative-document-id": "/staff/requests/{waiting}/documents/-1",
    "specialist-id-too-big": "/staff/admin/scheduling/specialists/" + HUGE,
    "coordinator-as-specialist": "/staff/admin/scheduling/specialists/{coordinator_id}",
}


@pytest.mark.parametrize("path", RECORD_PATHS.values(), ids=RECORD_PATHS.keys())
def test_a_record_that_is_not_there_is_a_plain_404(
    app: Flask, admin: FlaskClient, clinic: Cases, path: str
) -> None:
    before = snapshot(app)
    assert_refused(admin.get(path.format(**clinic.placeholders)), 404, "Page not found")
    assert snapshot(app) == before


ID_POSTS = {
    "account-id-too-big": ("/staff/accounts/{huge}/active", {"active": "0"}),
    "location-id-too-big": ("/staff/admin/locations/{huge}/active", {"active": "0"}),
    "type-id-too-big": ("/staff/admin/scheduling/types/{big}/active", {"active": "0"}),
    "hours-id-too-big": ("/staff/admin/scheduling/specialists/{weber}/hours/{huge}/delete", {}),
    "exception-id-too-big": (
        "/staff/admin/scheduling/specialists/{weber}/exceptions/{big}/delete",
        {},
    ),
    "hours-of-another-specialist": (
        "/staff/admin/scheduling/specialists/{okafor}/hours/1/delete",
        {},
    ),
    "no-such-account": ("/staff/accounts/999999/active", {"active": "1"}),
}


@pytest.mark.parametrize(("path", "data"), ID_POSTS.values(), ids=ID_POSTS.keys())
def test_a_post_about_a_record_that_is_not_there_is_a_404_and_changes_nothing(
    app: Flask, admin: FlaskClient, clinic: Cases, path: str, data: dict[str, str]
) -> None:
    token = csrf_token(admin, "/staff/accounts")
    before = snapshot(app)
    url = path.format(huge=HUGE, big=BIG, **clinic.placeholders)
    assert_refused(admin.post(url, data={"csrf_token": token, **data}), 404)
    assert snapshot(app) == before


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/staff/export.csv"),
        ("get", "/staff/logout"),
        ("get", "{booked_link}/cancel"),
        ("put", "/request"),
        ("delete", "/staff/requests/{waiting}"),
    ],
    ids=["get-export", "get-logout", "get-cancel", "put-request", "delete-record"],
)
def test_a_method_a_page_does_not_take_is_a_405(
    app: Flask, coordinator: FlaskClient, clinic: Cases, method: str, path: str
) -> None:
    before = snapshot(app)
    response = getattr(coordinator, method)(path.format(**clinic.placeholders))
    assert_refused(response, 405, "That action is not possible here")
    assert snapshot(app) == before


# CSRF ---------------------------------------------------------------------------------------


def _request_form(client: FlaskClient, clinic: Cases, token: str | None) -> Any:
    """Every step of a request up to the review, then its Send with ``token``."""
    assert fill_request(client, valid_answers()) is None
    data: dict[str, Any] = {**step_answers("review"), "nav": "send"}
    if token is not None:
        data["csrf_token"] = token
    return client.post("/request/steps/review", data=data)


# The request's steps say so in their own words, and keep the answers posted.
_request_form.expired = "your last answers were not saved yet"  # type: ignore[attr-defined]


def expired_message(send: Any) -> str:
    return getattr(send, "expired", EXPIRED_FORM)


def _prefixed(path: str, prefix: str, **fields: str):
    def send(client: FlaskClient, clinic: Cases, token: str | None) -> Any:
        data = {f"{prefix}{name}": value for name, value in fields.items()}
        if token is not None:
            data[f"{prefix}csrf_token"] = token
        return client.post(path.format(**clinic.placeholders), data=data)

    return send


def _documents(client: FlaskClient, clinic: Cases, token: str | None) -> Any:
    data: dict[str, Any] = {"docs-documents-0-file": (io.BytesIO(pdf_bytes()), "late.pdf")}
    if token is not None:
        data["docs-csrf_token"] = token
    return client.post(
        f"{clinic.booked_link}/documents", data=data, content_type="multipart/form-data"
    )


# (who sends it: patient or coordinator, how)
FORMS = {
    "patient-request": ("patient", _request_form),
    "patient-cancel": ("patient", _prefixed("{booked_link}/cancel", "cancel-", reason="x")),
    "patient-documents": ("patient", _documents),
    "patient-waitlist": ("patient", _prefixed("{booked_link}/waitlist", "", join="1")),
    "patient-reschedule": ("patient", _prefixed("{booked_link}/reschedule", "", slot="1.1.1")),
    "staff-note": ("staff", _prefixed("/staff/requests/{waiting}/notes", "note-", text="n")),
    "staff-decline": ("staff", _prefixed("/staff/requests/{waiting}/decline", "close-")),
    "staff-no-show": ("staff", _prefixed("/staff/requests/{booked}/no_show", "action-")),
    "staff-logout": ("staff", _prefixed("/staff/logout", "")),
    "staff-password-forgot": (
        "staff",
        _prefixed("/staff/password/forgot", "", email="coord@example.com"),
    ),
}


@pytest.fixture
def sender(app: Flask, clinic: Cases, coordinator: FlaskClient):
    """The client a form's owner uses, and a page of theirs that carries the session's token."""

    def pick(who: str) -> tuple[FlaskClient, str]:
        if who == "staff":
            return coordinator, f"/staff/requests/{clinic.waiting}"
        patient = app.test_client()
        with app.app_context():
            booked = db.session.scalars(
                select(ConsultationRequest).where(ConsultationRequest.reference == clinic.booked)
            ).one()
            return patient, open_manage_link(patient, booked)

    return pick


def _still_signed_in(client: FlaskClient, who: str) -> None:
    if who == "staff":
        assert client.get("/staff/").status_code == 200


@pytest.mark.parametrize(("who", "send"), FORMS.values(), ids=FORMS.keys())
def test_a_post_without_a_csrf_token_is_refused(
    app: Flask, clinic: Cases, sender, who: str, send
) -> None:
    client, page = sender(who)
    client.get(page)  # a session, as a visitor of the page has
    before = snapshot(app)
    assert_refused(send(client, clinic, None), 400, expired_message(send))
    assert snapshot(app) == before
    _still_signed_in(client, who)


@pytest.mark.parametrize(
    ("who", "send"),
    [FORMS["patient-request"], FORMS["patient-cancel"], FORMS["staff-decline"]],
    ids=["patient-request", "patient-cancel", "staff-decline"],
)
def test_a_token_replayed_from_another_session_is_refused(
    app: Flask, clinic: Cases, sender, who: str, send
) -> None:
    client, page = sender(who)
    client.get(page)
    # A real, valid token - of somebody else's session (an attacker's own visit).
    attacker = app.test_client()
    stolen = csrf_token(attacker, "/staff/login")
    before = snapshot(app)
    assert_refused(send(client, clinic, stolen), 400, expired_message(send))
    assert snapshot(app) == before


@pytest.mark.parametrize(
    ("who", "send"),
    [FORMS["patient-request"], FORMS["staff-note"]],
    ids=["patient-request", "staff-note"],
)
def test_a_tampered_csrf_token_is_refused(
    app: Flask, clinic: Cases, sender, who: str, send
) -> None:
    client, page = sender(who)
    token = csrf_token(client, page)
    head, signature = token.rsplit(".", 1)
    tampered = f"{head}.{'A' if signature[0] != 'A' else 'B'}{signature[1:]}"
    before = snapshot(app)
    assert_refused(send(client, clinic, tampered), 400, expired_message(send))
    assert snapshot(app) == before


@pytest.mark.parametrize(
    ("who", "send"),
    [FORMS["patient-request"], FORMS["patient-cancel"], FORMS["staff-decline"]],
    ids=["patient-request", "patient-cancel", "staff-decline"],
)
def test_an_expired_csrf_token_is_refused(
    app: Flask,
    clinic: Cases,
    sender,
    monkeypatch: pytest.MonkeyPatch,
    who: str,
    send,
) -> None:
    client, page = sender(who)
    token = csrf_token(client, page)
    before = snapshot(app)
    # Post it just after the token's lifetime: the signer's clock runs ahead, nothing sleeps.
    lifetime = app.config["WTF_CSRF_TIME_LIMIT"]
    real_clock = TimestampSigner.get_timestamp
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda s: real_clock(s) + lifetime + 60)
    assert_refused(send(client, clinic, token), 400, expired_message(send))
    monkeypatch.undo()
    assert snapshot(app) == before
