"""The patient's private link under attack: forged, expired and borrowed links, forged times,
changes to a closed request, and markup in what the patient writes."""

from __future__ import annotations

import io
from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from sqlalchemy import select

from booking.extensions import db
from booking.requests.links import LEGACY_SALT, issue_link, link_for_token, revoke
from booking.requests.models import ConsultationRequest
from tests.hostile.conftest import MARKUP, Cases, assert_escaped, assert_refused, snapshot
from tests.support import csrf_token, legacy_manage_token, open_manage_link, pdf_bytes


def _load(reference: str) -> ConsultationRequest:
    return db.session.scalars(
        select(ConsultationRequest).where(ConsultationRequest.reference == reference)
    ).one()


def _tampered(token: str) -> str:
    payload, stamp, signature = token.split(".")
    middle = len(signature) // 2
    flipped = "A" if signature[middle] != "A" else "B"
    return f"{payload}.{stamp}.{signature[:middle]}{flipped}{signature[middle + 1 :]}"


def _expired_legacy(app: Flask, reference: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A real link of the older, signed kind, signed just longer ago than those live."""
    lifetime = app.config["MANAGE_LINK_DAYS"] * 24 * 3600
    real_clock = TimestampSigner.get_timestamp
    with monkeypatch.context() as patch:
        patch.setattr(TimestampSigner, "get_timestamp", lambda s: real_clock(s) - lifetime - 60)
        return legacy_manage_token(_load(reference))


def _revoked(reference: str) -> str:
    consultation = _load(reference)
    token = issue_link(consultation)
    db.session.flush()
    revoke(link_for_token(token))
    db.session.commit()
    return f"/manage/open/{token}"


def _one_character_changed(reference: str) -> str:
    token = issue_link(_load(reference))
    db.session.commit()
    flipped = "A" if token[5] != "A" else "B"
    return f"/manage/open/{token[:5]}{flipped}{token[6:]}"


BadLink = Callable[[Flask, Cases, pytest.MonkeyPatch], str]
BAD_LINKS: dict[str, BadLink] = {
    "one-character-changed": lambda app, c, mp: _one_character_changed(c.booked),
    "revoked": lambda app, c, mp: _revoked(c.booked),
    "guessed": lambda app, c, mp: "/manage/open/" + "A" * 43,
    "garbage": lambda app, c, mp: "/manage/open/" + "x" * 2000,
    "sql-like": lambda app, c, mp: "/manage/open/' OR 1=1--",
    "legacy-tampered-signature": lambda app, c, mp: (
        f"/manage/{c.booked}/{_tampered(legacy_manage_token(_load(c.booked)))}"
    ),
    "legacy-token-for-another-reference": lambda app, c, mp: (
        f"/manage/{c.waiting}/{legacy_manage_token(_load(c.booked))}"
    ),
    "legacy-forged-with-another-key": lambda app, c, mp: (
        f"/manage/{c.booked}/"
        + URLSafeTimedSerializer("guessed-secret", salt=LEGACY_SALT).dumps(
            {"r": 1, "ref": c.booked}
        )
    ),
    "legacy-expired": lambda app, c, mp: f"/manage/{c.booked}/{_expired_legacy(app, c.booked, mp)}",
    "legacy-sql-like-reference": lambda app, c, mp: (
        f"/manage/SC-' OR 1=1--/{legacy_manage_token(_load(c.booked))}"
    ),
}


@pytest.mark.parametrize("make_link", BAD_LINKS.values(), ids=BAD_LINKS.keys())
def test_a_bad_link_opens_nothing_and_changes_nothing(
    app: Flask,
    clinic: Cases,
    monkeypatch: pytest.MonkeyPatch,
    make_link: BadLink,
) -> None:
    with app.app_context():
        link = make_link(app, clinic, monkeypatch)
    stranger = app.test_client()  # has opened no link
    token = csrf_token(stranger, "/request/start")  # a real session's token: only the link is bad
    before = snapshot(app)
    response = stranger.get(link)
    assert_refused(response, 404, "This link no longer works")
    assert not any("manage_access" in c for c in response.headers.getlist("Set-Cookie"))
    assert response.headers["Referrer-Policy"] == "no-referrer"
    page = clinic.booked_link
    assert_refused(stranger.get(page), 403, "open your private link again")
    assert_refused(stranger.get(f"{page}/reschedule"), 403)
    assert_refused(stranger.post(f"{page}/cancel", data={"cancel-csrf_token": token}), 403)
    assert_refused(stranger.post(f"{page}/waitlist", data={"csrf_token": token, "join": "1"}), 403)
    assert snapshot(app) == before


def test_one_requests_cookie_opens_no_other_request(
    app: Flask, client: FlaskClient, clinic: Cases
) -> None:
    """The cookie is scoped to its request's pages, and checked against the reference: sent by
    hand to another request's page it opens nothing."""
    other = app.test_client()
    with app.app_context():
        open_manage_link(other, _load(clinic.waiting))
    cookie = other.get_cookie("manage_access", path=clinic.waiting_link)
    assert cookie is not None
    stranger = app.test_client()
    stranger.set_cookie("manage_access", cookie.value, path=clinic.booked_link)
    assert_refused(stranger.get(clinic.booked_link), 403)


def test_markup_in_a_cancellation_reason_is_shown_escaped_to_staff(
    app: Flask, client: FlaskClient, coordinator: FlaskClient, clinic: Cases
) -> None:
    link = clinic.booked_link
    data = {"cancel-csrf_token": csrf_token(client, link), "cancel-reason": MARKUP}
    assert client.post(f"{link}/cancel", data=data).status_code == 302
    page = coordinator.get(f"/staff/requests/{clinic.booked}").get_data(as_text=True)
    assert_escaped(page, MARKUP)


def test_a_too_long_cancellation_reason_is_refused_and_cancels_nothing(
    app: Flask, client: FlaskClient, clinic: Cases
) -> None:
    link = clinic.booked_link
    before = snapshot(app)
    data = {"cancel-csrf_token": csrf_token(client, link), "cancel-reason": "\U0001f4a9" * 501}
    assert_refused(client.post(f"{link}/cancel", data=data), 422, "500 characters")
    assert snapshot(app) == before


FORGED_SLOTS = {
    "empty": "",
    "not-a-key": "tomorrow at ten",
    "markup": MARKUP,
    "the-epoch": "{weber}.{location}.0",
    "huge-numbers": "999999999.999999999.99999999999",
    "specialist-without-hours": "{okafor}.{location}.{start}",
    "another-location": "{weber}.999.{start}",
    "current-time-again": "{current}",
}


@pytest.mark.parametrize("slot", FORGED_SLOTS.values(), ids=FORGED_SLOTS.keys())
def test_a_forged_time_on_the_reschedule_page_moves_nothing(
    app: Flask, client: FlaskClient, clinic: Cases, slot: str
) -> None:
    link = clinic.booked_link
    start = clinic.slot_keys[0].rsplit(".", 1)[1]
    with app.app_context():
        current = _load(clinic.booked).appointment
        stamp = int(current.starts_at.timestamp())
        current_key = f"{current.specialist_id}.{current.location_id}.{stamp}"
    key = slot.format(start=start, current=current_key, **clinic.placeholders)
    before = snapshot(app)
    data = {"csrf_token": csrf_token(client, f"{link}/reschedule"), "slot": key}
    page = assert_refused(client.post(f"{link}/reschedule", data=data), 409)
    assert (
        "Please choose one of the times." in page
        or "that time is not available for booking" in page
    )
    assert "<script>alert" not in page
    assert snapshot(app) == before


def _cancel(client: FlaskClient, link: str) -> None:
    data = {"cancel-csrf_token": csrf_token(client, link)}
    assert client.post(f"{link}/cancel", data=data).status_code == 302


CLOSED_REQUEST_CHANGES = {
    "reschedule": lambda c, link, key, token: c.post(
        f"{link}/reschedule", data={"csrf_token": token, "slot": key}
    ),
    "cancel-again": lambda c, link, key, token: c.post(
        f"{link}/cancel", data={"cancel-csrf_token": token}
    ),
    "add-documents": lambda c, link, key, token: c.post(
        f"{link}/documents",
        data={
            "docs-csrf_token": token,
            "docs-documents-0-file": (io.BytesIO(pdf_bytes()), "late.pdf"),
        },
        content_type="multipart/form-data",
    ),
}
CLOSED_MESSAGES = {
    "reschedule": "This request is closed",
    "cancel-again": "This request is closed",
    "add-documents": "This request is closed",
}


@pytest.mark.parametrize("change", CLOSED_REQUEST_CHANGES, ids=CLOSED_REQUEST_CHANGES)
def test_a_cancelled_request_cannot_be_changed_through_its_link(
    app: Flask, client: FlaskClient, clinic: Cases, change: str
) -> None:
    link = clinic.booked_link
    token = csrf_token(client, link)  # the session's token; a closed request's page has no forms
    _cancel(client, link)
    before = snapshot(app)
    response = CLOSED_REQUEST_CHANGES[change](client, link, clinic.slot_keys[5], token)
    assert_refused(response, (409, 422), CLOSED_MESSAGES[change])
    assert snapshot(app) == before


def test_waiting_for_an_earlier_time_without_a_time_is_refused_with_a_message(
    app: Flask, client: FlaskClient, clinic: Cases
) -> None:
    link = clinic.waiting_link  # no appointment time: the page offers no waitlist form
    before = snapshot(app)
    token = csrf_token(client, link)
    response = client.post(
        f"{link}/waitlist", data={"csrf_token": token, "join": "1"}, follow_redirects=True
    )
    assert response.status_code == 200
    assert "Only a request with a time can wait for an earlier one." in response.get_data(
        as_text=True
    )
    assert snapshot(app) == before


@pytest.mark.parametrize(
    "offer",
    ["no-such-offer", MARKUP.replace("/", ""), "' OR 1=1 --", "of%00fer"],
    ids=["unknown", "markup", "sql", "nul-byte"],
)
def test_an_unknown_offer_is_not_found(
    app: Flask, client: FlaskClient, clinic: Cases, offer: str
) -> None:
    link = clinic.booked_link
    token = csrf_token(client, link)
    before = snapshot(app)
    assert_refused(client.get(f"{link}/offers/{offer}"), 404)
    assert_refused(client.post(f"{link}/offers/{offer}", data={"csrf_token": token}), 404)
    assert snapshot(app) == before
