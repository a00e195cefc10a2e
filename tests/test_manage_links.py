"""The patient's private link: random, kept only as a hash, revocable one by one, exchanged
for a cookie on first use, read-only once the request is closed, dead some days after it."""

from __future__ import annotations

import base64
import re
from datetime import datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from booking.audit.models import AuditEvent
from booking.dashboard import services as dashboard_services
from booking.extensions import db
from booking.notifications.models import OutboxEmail
from booking.requests import links as tokens
from booking.requests.events import EventKind, RequestEvent
from booking.requests.lifecycle import WorkflowError
from booking.requests.models import ConsultationRequest, ManageLink
from booking.scheduling.availability import open_slots
from booking.scheduling.services import SlotChoice
from booking.staff.models import StaffUser
from booking.timeutil import now_utc
from tests.factories import (
    make_appointment_type,
    make_hours,
    make_location,
    make_request,
    make_staff,
)
from tests.support import AuthActions, csrf_token, legacy_manage_token

LINK_RE = re.compile(r"https?://[^/\s]+(/manage/open/[A-Za-z0-9_\-]+)")
CSRF = re.compile(r'csrf_token" type="hidden" value="([^"]+)"')


@pytest.fixture
def booked(app: Flask) -> dict[str, Any]:
    """A request holding a time two days out; the link its confirmation email carries."""
    with app.app_context():
        specialist = make_staff("specialist", "weber@example.com", full_name="Dr. Weber")
        location = make_location()
        appointment_type = make_appointment_type()
        make_hours(specialist, location, range(7), "09:00", "17:00")
        start = now_utc() + timedelta(days=2)
        slot = open_slots(appointment_type, start, start + timedelta(days=14))[0]
        consultation = make_request(
            slot=SlotChoice(
                appointment_type.id, slot.specialist_id, slot.location_id, slot.starts_at
            )
        )
        body = db.session.scalars(
            select(OutboxEmail.body_text).where(OutboxEmail.template == "request_received")
        ).one()
        return {
            "id": consultation.id,
            "reference": consultation.reference,
            "link": LINK_RE.search(body).group(1),
            "page": f"/manage/{consultation.reference}",
            "ends_at": consultation.appointment.ends_at,
        }


def _load(reference: str) -> ConsultationRequest:
    return db.session.scalars(
        select(ConsultationRequest).where(ConsultationRequest.reference == reference)
    ).one()


def _set_clock(monkeypatch: pytest.MonkeyPatch, when: datetime) -> None:
    monkeypatch.setattr(tokens, "now_utc", lambda: when)


def test_a_token_is_256_random_bits_that_say_nothing_and_only_its_hash_is_stored(
    app: Flask, booked: dict[str, Any]
) -> None:
    token = booked["link"].rsplit("/", 1)[1]
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    assert len(raw) * 8 >= 128  # the issue's floor; it is 256
    assert len(raw) == tokens.TOKEN_BYTES
    # Nothing decodable: not the id, not the reference, no JSON, no signature parts.
    assert "." not in token
    assert booked["reference"].encode() not in raw and b'"r"' not in raw
    with app.app_context():
        others = {tokens.issue_link(_load(booked["reference"])) for _ in range(50)}
        db.session.commit()
        assert len(others) == 50 and token not in others
        rows = db.session.scalars(select(ManageLink.token_hash)).all()
        # Only SHA-256 digests are kept: no stored value opens anything.
        assert len(rows) == 51 and all(re.fullmatch(r"[0-9a-f]{64}", h) for h in rows)
        assert token not in rows


def test_opening_the_link_trades_the_token_for_a_cookie_on_the_requests_pages(
    app: Flask, client: FlaskClient, booked: dict[str, Any]
) -> None:
    response = client.get(booked["link"])
    assert response.status_code == 303
    assert response.headers["Location"] == booked["page"]  # no token in the address bar
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert "no-store" in response.headers["Cache-Control"]
    (cookie,) = [c for c in response.headers.getlist("Set-Cookie") if "manage_access" in c]
    assert f"Path={booked['page']}" in cookie
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert f"Max-Age={app.config['MANAGE_COOKIE_MINUTES'] * 60}" in cookie
    page = client.get(booked["page"])
    assert page.status_code == 200 and booked["reference"] in page.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalars(select(ManageLink.opened_at)).one() is not None


def test_the_page_stays_open_for_its_minutes_from_the_last_page(
    app: Flask, client: FlaskClient, booked: dict[str, Any]
) -> None:
    """Each page of the request renews the cookie (adding scans or choosing a time takes a
    while); a page refused for want of it renews nothing."""
    client.get(booked["link"])
    minutes = app.config["MANAGE_COOKIE_MINUTES"]
    for path in (booked["page"], booked["page"] + "/reschedule"):
        response = client.get(path)
        assert response.status_code == 200, path
        (cookie,) = [c for c in response.headers.getlist("Set-Cookie") if "manage_access" in c]
        assert f"Max-Age={minutes * 60}" in cookie and f"Path={booked['page']}" in cookie
    stranger = app.test_client().get(booked["page"])
    assert stranger.status_code == 403
    assert not [c for c in stranger.headers.getlist("Set-Cookie") if "manage_access" in c]


def test_a_cookie_of_the_same_name_planted_before_the_patients_does_not_close_the_page(
    app: Flask, client: FlaskClient, booked: dict[str, Any]
) -> None:
    """A sibling site on the same domain can set ``manage_access`` for the page's path, and
    the browser then sends both, the planted one first: the page tries every value and opens
    with the patient's, renews that one (not the stranger's), and nothing planted is a 500."""
    opened = client.get(booked["link"])
    (set_cookie,) = [c for c in opened.headers.getlist("Set-Cookie") if "manage_access" in c]
    token = set_cookie.split(";", 1)[0].split("=", 1)[1]
    with app.app_context():
        other = make_request(email="other@example.com")
        others_token = tokens.issue_link(other)
        revoked = tokens.issue_link(_load(booked["reference"]))
        db.session.flush()
        tokens.revoke(tokens.link_for_token(revoked))
        db.session.commit()
    planted = {
        "guessed": "A" * 43,
        "revoked": revoked,
        "another request's": others_token,
        "long": "x" * 5000,
        "not ascii": "\xe9\xe9",
        "empty": "",
    }
    browser = app.test_client(use_cookies=False)
    for what, junk in planted.items():
        for path in (booked["page"], booked["page"] + "/reschedule"):
            sent = f"manage_access={junk}; manage_access={token}"
            page = browser.get(path, headers={"Cookie": sent})
            assert page.status_code == 200, (what, path)
            assert booked["reference"] in page.get_data(as_text=True)
            (renewed,) = [c for c in page.headers.getlist("Set-Cookie") if "manage_access" in c]
            assert renewed.startswith(f"manage_access={token};"), what
        # The planted value alone opens nothing, and is a plain refusal.
        alone = browser.get(booked["page"], headers={"Cookie": f"manage_access={junk}"})
        assert alone.status_code == 403, what


def test_over_https_the_cookie_is_secure(app: Flask, booked: dict[str, Any]) -> None:
    client = app.test_client()
    response = client.get(booked["link"], base_url="https://clinic.example.com")
    (cookie,) = [c for c in response.headers.getlist("Set-Cookie") if "manage_access" in c]
    assert "Secure" in cookie


def test_without_the_cookie_the_page_asks_for_the_link(
    app: Flask, client: FlaskClient, booked: dict[str, Any]
) -> None:
    response = client.get(booked["page"])
    assert response.status_code == 403
    assert "Please open your private link again" in response.get_data(as_text=True)


def test_a_reference_typed_another_way_goes_to_the_requests_page_where_the_cookie_decides(
    app: Flask, client: FlaskClient, booked: dict[str, Any]
) -> None:
    """A patient who types the page's address by hand ("sc-7k4m-q2xd", without the hyphens,
    with spaces) is sent to the page's own address, where their browser sends the link's
    cookie (its path is that address): read as staff's look-ups read a reference. The
    redirect is made from the text alone: any reference, of a request or of none, is sent on
    alike, and without the cookie the page still asks for the link."""
    client.get(booked["link"])
    reference, page = booked["reference"], booked["page"]
    letters = reference.removeprefix("SC-").replace("-", "")
    for typed in (
        reference.lower(),
        letters,
        f"sc {letters[:4]} {letters[4:]}",
        f"SC{letters.lower()}",
    ):
        response = client.get(f"/manage/{typed}")
        assert response.status_code == 302, typed
        assert response.headers["Location"] == page, typed
        shown = client.get(f"/manage/{typed}", follow_redirects=True)
        assert shown.status_code == 200 and reference in shown.get_data(as_text=True), typed
    later = client.get(f"/manage/{reference.lower()}/reschedule", query_string={"day": "x"})
    assert later.headers["Location"] == f"{page}/reschedule?day=x"

    stranger = app.test_client()
    response = stranger.get(f"/manage/{reference.lower()}", follow_redirects=True)
    assert response.status_code == 403
    assert "Please open your private link again" in response.get_data(as_text=True)
    nobody = stranger.get("/manage/sc-2222-3333")
    assert nobody.status_code == 302 and nobody.headers["Location"] == "/manage/SC-2222-3333"
    assert stranger.get("/manage/SC-2222-3333").status_code == 403
    # A form posted to an address written otherwise is not sent on: the browser sends the
    # cookie only to the page's own address, so it is refused as before, and changes nothing.
    token = CSRF.search(client.get(page).get_data(as_text=True)).group(1)
    with app.app_context():
        status = _load(reference).status
    posted = client.post(f"/manage/{reference.lower()}/cancel", data={"csrf_token": token})
    assert posted.status_code == 403
    with app.app_context():
        assert _load(reference).status == status


def test_each_link_is_revoked_on_its_own(
    app: Flask, client: FlaskClient, booked: dict[str, Any]
) -> None:
    with app.app_context():
        consultation = _load(booked["reference"])
        second = tokens.issue_link(consultation)
        db.session.commit()
        tokens.revoke(tokens.link_for_token(booked["link"].rsplit("/", 1)[1]))
        db.session.commit()
    assert client.get(booked["link"]).status_code == 404
    # The cookie a revoked link left stops working too: it is the token, checked each time.
    assert client.get(booked["page"]).status_code == 403
    assert client.get(f"/manage/open/{second}").status_code == 303
    assert client.get(booked["page"]).status_code == 200


def test_staff_send_a_new_link_and_every_earlier_one_stops_working(
    app: Flask, client: FlaskClient, booked: dict[str, Any]
) -> None:
    with app.app_context():
        coordinator_id = make_staff("coordinator", "cora@example.com").id
        consultation = _load(booked["reference"])
        legacy = legacy_manage_token(consultation)
    assert client.get(booked["link"]).status_code == 303  # an open page, cookie set
    with app.app_context():
        coordinator = db.session.get(StaffUser, coordinator_id)
        sent = dashboard_services.send_new_link(_load(booked["reference"]), coordinator)
        assert sent == (1, True)
        email = db.session.scalars(
            select(OutboxEmail).where(OutboxEmail.template == "manage_link")
        ).one()
        audit = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "manage_link_reissued")
        ).one()
        assert audit.actor_email == "cora@example.com"
    assert client.get(booked["page"]).status_code == 403
    assert client.get(booked["link"]).status_code == 404
    assert client.get(f"/manage/{booked['reference']}/{legacy}").status_code == 404
    new_link = LINK_RE.search(email.body_text).group(1)
    assert "no longer work" in email.body_text
    assert client.get(new_link).status_code == 303
    assert client.get(booked["page"]).status_code == 200


def test_a_new_link_is_refused_to_a_specialist_not_assigned_to_the_request(
    app: Flask, client: FlaskClient, booked: dict[str, Any]
) -> None:
    """The page offers the button to managers only; the service refuses on its own too, as
    every change of a request does, so no other caller can end a patient's links."""
    with app.app_context():
        other_id = make_staff("specialist", "other@example.com").id
        consultation = _load(booked["reference"])
        assert consultation.assigned_specialist_id not in (None, other_id)
    with app.app_context():
        other = db.session.get(StaffUser, other_id)
        with pytest.raises(WorkflowError, match="not assigned to you"):
            dashboard_services.send_new_link(_load(booked["reference"]), other)
        db.session.rollback()
        assert (
            db.session.scalars(
                select(OutboxEmail).where(OutboxEmail.template == "manage_link")
            ).all()
            == []
        )
        assert (
            db.session.scalars(
                select(AuditEvent).where(AuditEvent.action == "manage_link_reissued")
            ).all()
            == []
        )
    # The link the patient has goes on working.
    assert client.get(booked["link"]).status_code == 303
    assert client.get(booked["page"]).status_code == 200


def test_a_cancelled_request_is_read_only_then_its_links_die(
    app: Flask, client: FlaskClient, booked: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    client.get(booked["link"])
    page = client.get(booked["page"]).get_data(as_text=True)
    response = client.post(
        f"{booked['page']}/cancel", data={"cancel-csrf_token": CSRF.search(page).group(1)}
    )
    assert response.status_code == 302
    page = client.get(booked["page"])
    text = page.get_data(as_text=True)
    assert page.status_code == 200 and "nothing can be changed here" in text
    assert "Cancel my request" not in text and "Send the documents" not in text
    token = CSRF.search(client.get("/request/start").get_data(as_text=True)).group(1)
    refused = client.post(f"{booked['page']}/waitlist", data={"csrf_token": token, "join": "1"})
    assert refused.status_code == 409
    assert "This request is closed" in refused.get_data(as_text=True)
    with app.app_context():
        closed_at = _load(booked["reference"]).closed_at
    assert closed_at is not None
    days = app.config["MANAGE_LINK_DAYS_AFTER_CLOSE"]
    _set_clock(monkeypatch, closed_at + timedelta(days=days) - timedelta(minutes=1))
    assert client.get(booked["page"]).status_code == 200
    assert client.get(booked["link"]).status_code == 303
    _set_clock(monkeypatch, closed_at + timedelta(days=days, minutes=1))
    assert client.get(booked["page"]).status_code == 403
    gone = client.get(booked["link"])
    assert gone.status_code == 404
    assert "This link no longer works" in gone.get_data(as_text=True)


def test_an_open_requests_link_dies_days_after_the_appointment(
    app: Flask, client: FlaskClient, booked: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    days = app.config["MANAGE_LINK_DAYS_AFTER_APPOINTMENT"]
    _set_clock(monkeypatch, booked["ends_at"] + timedelta(days=days) - timedelta(minutes=1))
    assert client.get(booked["link"]).status_code == 303
    _set_clock(monkeypatch, booked["ends_at"] + timedelta(days=days, minutes=1))
    assert client.get(booked["link"]).status_code == 404
    assert client.get(booked["page"]).status_code == 403


def test_a_link_of_the_older_signed_kind_still_opens_the_request_once_exchanged(
    app: Flask, client: FlaskClient, booked: dict[str, Any]
) -> None:
    with app.app_context():
        legacy = legacy_manage_token(_load(booked["reference"]))
    response = client.get(f"/manage/{booked['reference']}/{legacy}")
    assert response.status_code == 303
    assert response.headers["Location"] == booked["page"]
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert client.get(booked["page"]).status_code == 200
    with app.app_context():
        # It was traded for a link of the new kind, which can be revoked like any other.
        assert len(db.session.scalars(select(ManageLink)).all()) == 2


def test_erasing_the_patient_removes_their_links(
    app: Flask, booked: dict[str, Any], client: FlaskClient
) -> None:
    from booking.privacy.services import _delete_requests

    with app.app_context():
        _delete_requests([booked["id"]])
        db.session.commit()
        assert db.session.scalars(select(ManageLink)).all() == []
    assert client.get(booked["link"]).status_code == 404


def test_a_coordinator_sends_a_new_link_from_the_record(
    app: Flask, client: FlaskClient, booked: dict[str, Any]
) -> None:
    with app.app_context():
        make_staff("coordinator", "cora@example.com")
    assert client.get(booked["link"]).status_code == 303
    staff = app.test_client()
    AuthActions(staff).attempt("cora@example.com")
    record = staff.get(f"/staff/requests/{booked['reference']}").get_data(as_text=True)
    assert "1 working" in record and "last opened" in record
    token = re.search(r'name="link-csrf_token" value="([^"]+)"', record).group(1)
    confirm = re.search(r'name="link-confirm" type="hidden" value="([^"]+)"', record).group(1)
    response = staff.post(
        f"/staff/requests/{booked['reference']}/new-link",
        data={"link-csrf_token": token, "link-confirm": confirm},
        follow_redirects=True,
    )
    assert response.status_code == 200
    assert "1 earlier link stopped working" in response.get_data(as_text=True)
    assert client.get(booked["page"]).status_code == 403
    with app.app_context():
        assert db.session.scalars(
            select(OutboxEmail).where(OutboxEmail.template == "manage_link")
        ).one()
        # True when written: the new link's email is only in the outbox yet.
        assert db.session.scalars(
            select(RequestEvent.body).where(RequestEvent.kind == EventKind.NOTE)
        ).all() == [
            "Every earlier private link stopped working. An email giving the patient a new "
            "private link was written to the outbox."
        ]


def test_a_specialist_may_not_send_a_new_link(app: Flask, booked: dict[str, Any]) -> None:
    staff = app.test_client()
    AuthActions(staff).attempt("weber@example.com")
    token = csrf_token(staff, "/staff/queue")
    response = staff.post(
        f"/staff/requests/{booked['reference']}/new-link",
        data={"link-csrf_token": token, "link-confirm": "yes"},
    )
    assert response.status_code == 403


def test_the_link_opens_the_pages_in_the_requests_language_until_the_patient_switches(
    app: Flask, client: FlaskClient
) -> None:
    """A Spanish request's link, opened in a browser that prefers English, shows Spanish (the
    language of the request and its emails); the switcher still changes it, and a browser
    where the patient had already chosen a language keeps it."""
    with app.app_context():
        spanish = make_request(locale="es")
        reference = spanish.reference
        link = tokens.issue_link(spanish)
        page = f"/manage/{reference}"
        db.session.commit()
    english_browser = {"Accept-Language": "en-GB,en;q=0.9"}
    assert client.get(f"/manage/open/{link}", headers=english_browser).status_code == 303
    assert '<html lang="es">' in client.get(page, headers=english_browser).get_data(as_text=True)
    switched = client.get(f"{page}?lang=en", headers=english_browser).get_data(as_text=True)
    assert '<html lang="en">' in switched

    chosen = app.test_client()
    chosen.get("/?lang=en")
    with app.app_context():
        link = tokens.issue_link(_load(reference))
        db.session.commit()
    assert chosen.get(f"/manage/open/{link}").status_code == 303
    assert '<html lang="en">' in chosen.get(page).get_data(as_text=True)


def test_only_the_status_emails_that_show_a_link_issue_one(
    app: Flask, booked: dict[str, Any]
) -> None:
    """Each link is a live way into the request: an email that shows none (a decline, a
    cancellation) leaves none behind."""
    with app.app_context():
        coordinator = make_staff("coordinator", "coord@example.com")
        consultation = _load(booked["reference"])
        before = len(db.session.scalars(select(ManageLink)).all())
        dashboard_services.decline_request(consultation, coordinator, "Not for us.")
        assert len(db.session.scalars(select(ManageLink)).all()) == before
        [declined] = db.session.scalars(
            select(OutboxEmail).where(OutboxEmail.template == "request_update")
        ).all()
        assert "/manage/open/" not in declined.body_text + declined.body_html
