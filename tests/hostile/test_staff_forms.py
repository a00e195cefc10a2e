"""Every staff form under hostile input: sign-in, the second factor, password reset, notes,
status changes (and forged transitions), accounts, locations and the scheduling admin."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import pyotp
import pytest
from flask import Flask
from flask.testing import FlaskClient
from itsdangerous import TimestampSigner
from sqlalchemy import select
from werkzeug.test import TestResponse

from booking.extensions import db
from booking.staff.auth import make_reset_token
from booking.staff.models import StaffUser
from booking.timeutil import clinic_today, to_clinic_tz
from tests.factories import PASSWORD, appointment_started
from tests.hostile.conftest import (
    MARKUP,
    Cases,
    assert_escaped,
    assert_refused,
    csv_rows,
    delivered_html,
    outbox,
    snapshot,
    visible_text,
)
from tests.smtp import SmtpServer
from tests.support import AuthActions, checked_radios, csrf_token, page_token

NEW_PASSWORD = "a brand new long passphrase"


def signed_in(client: FlaskClient) -> bool:
    return client.get("/staff/").status_code == 200


def assert_form_message(response: TestResponse, message: str, statuses=(200, 401, 422)) -> str:
    """The form again (a 4xx, or the sign-in pages' plain re-display) with the message."""
    assert response.status_code in statuses, response.status_code
    page = response.get_data(as_text=True)
    assert message in visible_text(page), f"{message!r} not shown"
    return page


# Sign-in ------------------------------------------------------------------------------------

LOGINS = {
    "markup-address": (MARKUP + "@example.com", PASSWORD, "do not match"),
    "sql-like": ("' OR '1'='1' --", "' OR '1'='1", "do not match"),
    "nul-in-address": ("coord\x00@example.com", "wrong password entirely", "invisible characters"),
    "fullwidth-address": ("\uff43\uff4f\uff4f\uff52\uff44@example.com", PASSWORD, "do not match"),
    "huge-password": ("coord@example.com", "p" * 10_000, "200 characters"),
}


@pytest.mark.parametrize(("email", "password", "message"), LOGINS.values(), ids=LOGINS.keys())
def test_hostile_sign_in_is_refused_with_a_message(
    app: Flask, clinic: Cases, email: str, password: str, message: str
) -> None:
    client = app.test_client()
    before = snapshot(app)
    token = csrf_token(client, "/staff/login")
    response = client.post(
        "/staff/login", data={"csrf_token": token, "email": email, "password": password}
    )
    page = assert_form_message(response, message)
    assert "<script>alert" not in page
    assert not signed_in(client)
    assert snapshot(app) == before


@pytest.mark.parametrize(
    "target",
    [
        "//evil.example/staff/",
        "https://evil.example/staff/",
        "/\\evil.example",
        "javascript:alert(1)",
        "/staff/..//evil.example",
    ],
    ids=["scheme-relative", "absolute", "backslash", "javascript", "dot-segments"],
)
def test_sign_in_never_leads_to_another_site(app: Flask, clinic: Cases, target: str) -> None:
    client = app.test_client()
    token = csrf_token(client, "/staff/login")
    response = client.post(
        "/staff/login",
        query_string={"next": target},
        data={"csrf_token": token, "email": clinic.coordinator.email, "password": PASSWORD},
    )
    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    assert (location.scheme, location.netloc) in {("", ""), ("http", "localhost")}
    assert not response.headers["Location"].startswith(("//", "/\\"))


@pytest.fixture
def two_factor_client(app: Flask, clinic: Cases) -> FlaskClient:
    """A coordinator with two-factor sign-in, past the password step."""
    with app.app_context():
        user = db.session.scalars(
            select(StaffUser).where(StaffUser.email == clinic.coordinator.email)
        ).one()
        user.totp_secret = pyotp.random_base32()
        user.totp_enabled = True
        db.session.commit()
    client = app.test_client()
    assert (
        AuthActions(client).attempt(clinic.coordinator.email).headers["Location"]
        == "/staff/login/code"
    )
    return client


CODES = {
    "arabic-indic-digits": ("\u0661\u0662\u0663\u0664\u0665\u0666", "That code is not right"),
    "fullwidth-digits": ("\uff11\uff12\uff13\uff14\uff15\uff16", "That code is not right"),
    "markup": ("<b>1</b>", "That code is not right"),
    "nul-between-digits": ("123\x00456", "invisible characters"),
    "too-long": ("1" * 21, "20 characters"),
    "sql-like": ("' OR 1=1--", "That code is not right"),
}


@pytest.mark.parametrize(("code", "message"), CODES.values(), ids=CODES.keys())
def test_a_hostile_second_factor_code_is_refused(
    app: Flask, two_factor_client: FlaskClient, code: str, message: str
) -> None:
    before = snapshot(app)
    token = csrf_token(two_factor_client, "/staff/login/code")
    response = two_factor_client.post("/staff/login/code", data={"csrf_token": token, "code": code})
    assert_form_message(response, message)
    assert not signed_in(two_factor_client)
    assert snapshot(app) == before


def test_enrolling_with_non_ascii_digits_is_refused(
    app: Flask, clinic: Cases, coordinator: FlaskClient
) -> None:
    before = snapshot(app)
    token = csrf_token(coordinator, "/staff/two-factor")
    response = coordinator.post(
        "/staff/two-factor", data={"csrf_token": token, "code": "\u0661" * 6}
    )
    assert_refused(response, 422, "That code is not right")
    assert snapshot(app) == before


# Password reset -----------------------------------------------------------------------------


def reset_link(app: Flask, email: str, age_seconds: int = 0) -> str:
    """A reset link as the email carries it, signed ``age_seconds`` ago."""
    real_clock = TimestampSigner.get_timestamp
    with app.app_context(), pytest.MonkeyPatch.context() as patch:
        patch.setattr(TimestampSigner, "get_timestamp", lambda s: real_clock(s) - age_seconds)
        user = db.session.scalars(select(StaffUser).where(StaffUser.email == email)).one()
        return f"/staff/password/reset/{make_reset_token(user)}"


def choose(client: FlaskClient, link: str, password: str, confirm: str | None = None):
    """Open the link (its token is traded for the session) and send the page's form."""
    client.get(link)
    token = csrf_token(client, "/staff/login")
    data = {"csrf_token": token, "password": password, "confirm": confirm or password}
    return client.post("/staff/password/reset", data=data)


def test_a_reset_link_works_once(app: Flask, clinic: Cases) -> None:
    client = app.test_client()
    link = reset_link(app, clinic.coordinator.email)
    assert choose(client, link, NEW_PASSWORD).status_code == 302
    before = snapshot(app)
    assert_refused(client.get(link), 400, "This link no longer works")
    assert_refused(choose(client, link, "yet another long passphrase"), 400)
    assert snapshot(app) == before
    AuthActions(client).login(email=clinic.coordinator.email, password=NEW_PASSWORD)


def test_an_expired_reset_link_is_refused(app: Flask, clinic: Cases) -> None:
    client = app.test_client()
    lifetime = app.config["PASSWORD_RESET_HOURS"] * 3600
    link = reset_link(app, clinic.coordinator.email, age_seconds=lifetime + 60)
    before = snapshot(app)
    assert_refused(client.get(link), 400, "This link no longer works")
    assert_refused(choose(client, link, NEW_PASSWORD), 400)
    assert snapshot(app) == before


def test_a_tampered_reset_link_is_refused(app: Flask, clinic: Cases) -> None:
    client = app.test_client()
    link = reset_link(app, clinic.coordinator.email)
    payload = link.rsplit("/", 1)[1].split(".")[0]
    # Another payload (another account) under the coordinator's signature.
    forged = link.replace(payload, payload[:-2] + ("AA" if payload[-2:] != "AA" else "BB"))
    before = snapshot(app)
    assert_refused(client.get(forged), 400, "This link no longer works")
    assert_refused(client.get(f"/staff/password/reset/{MARKUP.replace('/', '')}"), 400)
    assert snapshot(app) == before


@pytest.mark.parametrize(
    ("password", "confirm", "message"),
    [
        (NEW_PASSWORD, NEW_PASSWORD + "x", "The two passwords do not match."),
        ("short", "short", "Use at least 12 characters."),
        ("x" * 201, "x" * 201, "Use at least 12 characters."),
    ],
    ids=["mismatch", "too-short", "too-long"],
)
def test_a_bad_new_password_is_refused_with_a_message(
    app: Flask, clinic: Cases, password: str, confirm: str, message: str
) -> None:
    client = app.test_client()
    link = reset_link(app, clinic.coordinator.email)
    before = snapshot(app)
    assert_form_message(choose(client, link, password, confirm), message)
    assert snapshot(app) == before


@pytest.mark.parametrize(
    ("email", "message"),
    [
        (MARKUP, "If an account uses that address"),
        # Refused by the form, whoever has the address: the page says what to fix.
        ("coord@example.com\r\nBcc: all@example.com", "line breaks or invisible characters"),
        ("coord\x00x@example.com", "line breaks or invisible characters"),
    ],
    ids=["markup", "header-injection", "nul"],
)
def test_a_hostile_reset_request_sends_nothing(
    app: Flask, clinic: Cases, email: str, message: str
) -> None:
    client = app.test_client()
    before = snapshot(app)
    token = csrf_token(client, "/staff/password/forgot")
    response = client.post(
        "/staff/password/forgot", data={"csrf_token": token, "email": email}, follow_redirects=True
    )
    assert response.status_code == 200
    assert message in response.get_data(as_text=True)
    assert snapshot(app) == before  # no email written


# Notes --------------------------------------------------------------------------------------


def post_note(client: FlaskClient, reference: str, text: str) -> TestResponse:
    token = csrf_token(client, f"/staff/requests/{reference}")
    return client.post(
        f"/staff/requests/{reference}/notes", data={"note-csrf_token": token, "note-text": text}
    )


def test_markup_in_a_note_is_shown_escaped(
    app: Flask, coordinator: FlaskClient, clinic: Cases
) -> None:
    assert post_note(coordinator, clinic.waiting, MARKUP).status_code == 302
    page = coordinator.get(f"/staff/requests/{clinic.waiting}").get_data(as_text=True)
    assert_escaped(page, MARKUP)


def test_a_note_with_nul_bytes_is_refused(
    app: Flask, coordinator: FlaskClient, clinic: Cases
) -> None:
    before = snapshot(app)
    response = post_note(coordinator, clinic.waiting, "call\x00 back\x07 later")
    assert_refused(response, 422, "Please remove the invisible characters")
    assert snapshot(app) == before


@pytest.mark.parametrize(
    ("text", "message"),
    [("x" * 5001, "5000 characters"), (" \r\n\t ", "Please write the note.")],
    ids=["too-long", "blank"],
)
def test_a_bad_note_is_refused_with_a_message(
    app: Flask, coordinator: FlaskClient, clinic: Cases, text: str, message: str
) -> None:
    before = snapshot(app)
    assert_refused(post_note(coordinator, clinic.waiting, text), 422, message)
    assert snapshot(app) == before


# Status changes -----------------------------------------------------------------------------

PREFIX = {
    "confirm": "slot",
    "reschedule": "slot",
    "decline": "close",
    "cancel": "close",
    "complete": "complete",
}


def act(client: FlaskClient, reference: str, action: str, **fields: Any) -> TestResponse:
    token = csrf_token(client, f"/staff/requests/{reference}")
    prefix = PREFIX.get(action, "action")
    if action == "complete":
        fields = {"plan": "physiotherapy", **fields}  # completing records the plan decided
    if action == "decline":
        fields = {"message": "We do not treat this here.", **fields}  # a decline says why
    data = {f"{prefix}-csrf_token": token, **{f"{prefix}-{k}": v for k, v in fields.items()}}
    if action == "no_show":
        data["confirmed"] = "1"  # its confirmation page's button (asked first: test_workflow)
    return client.post(f"/staff/requests/{reference}/{action}", data=data)


def slot_fields(app: Flask, clinic: Cases, index: int = 3, **overrides: Any) -> dict:
    """An open time of Dr. Weber's as a coordinator types it (clinic day and time)."""
    from booking.scheduling.availability import parse_slot_key

    with app.app_context():
        _sid, _lid, starts_at = parse_slot_key(clinic.slot_keys[index])
        local = to_clinic_tz(starts_at)
    fields = {
        "specialist": clinic.weber.id,
        "location": clinic.location,
        "appointment_type": clinic.type,
        "day": local.date().isoformat(),
        "start": local.strftime("%H:%M"),
        "message": "",
    }
    fields.update(overrides)
    return fields


def test_markup_in_a_message_to_the_patient_is_escaped_in_the_email_and_on_the_page(
    mail_settings: dict[str, Any],
    app: Flask,
    coordinator: FlaskClient,
    clinic: Cases,
    smtp: SmtpServer,
) -> None:
    reference = clinic.waiting
    assert act(coordinator, reference, "decline", message=MARKUP).status_code == 302
    (html_part,) = delivered_html(app, smtp, "request_update")
    assert_escaped(html_part, MARKUP)
    assert_escaped(coordinator.get(f"/staff/requests/{reference}").get_data(as_text=True), MARKUP)


def test_markup_in_a_confirmation_message_is_escaped_in_the_email(
    app: Flask, coordinator: FlaskClient, clinic: Cases
) -> None:
    fields = slot_fields(app, clinic, message=MARKUP)
    assert act(coordinator, clinic.waiting, "confirm", **fields).status_code == 302
    (email,) = outbox(app, "request_update")
    assert_escaped(email.body_html, MARKUP)


def test_a_message_with_nul_bytes_is_refused_and_nothing_sent(
    app: Flask, coordinator: FlaskClient, clinic: Cases
) -> None:
    before = snapshot(app)
    response = act(coordinator, clinic.waiting, "decline", message="Sor\x00ry\x1b, no.")
    assert_refused(response, 422, "Please remove the invisible characters")
    assert snapshot(app) == before
    assert outbox(app, "request_update") == []


# (how the request is put in the state, the forged action, the message shown)
FORGED_TRANSITIONS = {
    "complete-a-declined-request": ("decline", "complete", "cannot be changed to completed"),
    "confirm-a-cancelled-request": ("cancel", "confirm", "cannot be changed to confirmed"),
    "no-show-a-requested-request": (None, "no_show", "cannot be changed to no-show"),
    "reschedule-a-requested-request": (None, "reschedule", "Only a confirmed appointment"),
    "confirm-a-confirmed-request": ("confirm", "confirm", "already confirmed"),
    "decline-a-completed-request": ("confirm+complete", "decline", "cannot be changed to declined"),
    "cancel-a-no-show": ("confirm+no_show", "cancel", "cannot be changed to cancelled"),
    "complete-a-cancelled-request": ("cancel", "complete", "cannot be changed to completed"),
}


@pytest.mark.parametrize(
    ("setup", "action", "message"), FORGED_TRANSITIONS.values(), ids=FORGED_TRANSITIONS.keys()
)
def test_a_forged_transition_is_refused_and_changes_nothing(
    app: Flask,
    coordinator: FlaskClient,
    clinic: Cases,
    setup: str | None,
    action: str,
    message: str,
) -> None:
    reference = clinic.waiting
    for step in (setup or "").split("+"):
        if step in ("complete", "no_show"):
            # A request is completed or marked no-show only after its appointment starts.
            with app.app_context():
                appointment_started(reference)
        if step:
            fields = slot_fields(app, clinic) if step == "confirm" else {}
            assert act(coordinator, reference, step, **fields).status_code == 302, step
    before = snapshot(app)
    fields = slot_fields(app, clinic, index=8) if action in ("confirm", "reschedule") else {}
    assert_refused(act(coordinator, reference, action, **fields), 409, message)
    assert snapshot(app) == before


@pytest.mark.parametrize(
    ("reference", "action"),
    [("SC-NONE-XIST", "confirm"), ("{waiting}", "delete"), ("{waiting}", "..%2Fconfirm")],
    ids=["no-such-request", "no-such-action", "encoded-traversal"],
)
def test_an_action_on_nothing_is_not_found(
    app: Flask, coordinator: FlaskClient, clinic: Cases, reference: str, action: str
) -> None:
    reference = reference.format(**clinic.placeholders)
    token = csrf_token(coordinator, f"/staff/requests/{clinic.waiting}")
    before = snapshot(app)
    response = coordinator.post(
        f"/staff/requests/{reference}/{action}",
        data={"action-csrf_token": token, "slot-csrf_token": token},
    )
    assert_refused(response, 404)
    assert snapshot(app) == before


@pytest.mark.parametrize("with_token", [True, False], ids=["with-token", "without-token"])
def test_a_post_to_an_action_nobody_has_is_not_found(
    app: Flask, coordinator: FlaskClient, clinic: Cases, with_token: bool
) -> None:
    """A made-up action under a record is not found, as any unknown address, with or
    without a form token: it does not fall to the status-change rule, whose form-token
    refusal (400) would say the address exists. Nothing changes."""
    token = csrf_token(coordinator, f"/staff/requests/{clinic.waiting}")
    data = {"action-csrf_token": token, "csrf_token": token} if with_token else {}
    before = snapshot(app)
    response = coordinator.post(f"/staff/requests/{clinic.waiting}/bogus", data=data)
    assert_refused(response, 404, "The page you asked for does not exist.")
    assert snapshot(app) == before


BAD_SLOTS = {
    "coordinator-as-specialist": ({"specialist": "{coordinator_id}"}, "Not a valid choice"),
    "huge-specialist-id": ({"specialist": str(2**70)}, "Not a valid choice"),
    "location-not-a-number": ({"location": "1 OR 1=1"}, "Invalid Choice"),
    "no-such-type": ({"appointment_type": "999999"}, "Not a valid choice"),
    "year-one": ({"day": "0001-01-01", "start": "00:00"}, "Please check the year of the date."),
    "year-9999": ({"day": "9999-12-31", "start": "23:45"}, "Please check the year of the date."),
    "impossible-time": ({"start": "25:61"}, "Please enter a time."),
    "markup-day": ({"day": MARKUP}, "Please enter a date."),
    "message-too-long": ({"message": "m" * 1001}, "1000 characters"),
}


@pytest.mark.parametrize(("overrides", "message"), BAD_SLOTS.values(), ids=BAD_SLOTS.keys())
def test_a_bad_appointment_time_is_refused_with_a_message(
    app: Flask,
    coordinator: FlaskClient,
    clinic: Cases,
    overrides: dict[str, str],
    message: str,
) -> None:
    fields = slot_fields(
        app, clinic, **{k: v.format(**clinic.placeholders) for k, v in overrides.items()}
    )
    before = snapshot(app)
    page = assert_refused(act(coordinator, clinic.waiting, "confirm", **fields), 422, message)
    assert "<script>alert" not in page
    assert snapshot(app) == before


def test_a_specialist_cannot_act_on_another_specialists_request(app: Flask, clinic: Cases) -> None:
    okafor = app.test_client()
    AuthActions(okafor).login(email=clinic.okafor.email)
    token = csrf_token(okafor, "/staff/queue")
    before = snapshot(app)
    for action in ("complete", "no_show"):
        response = okafor.post(
            f"/staff/requests/{clinic.booked}/{action}", data={"action-csrf_token": token}
        )
        assert_refused(response, 404)
    assert_refused(okafor.get(f"/staff/requests/{clinic.booked}"), 404)
    assert snapshot(app) == before


# Accounts -----------------------------------------------------------------------------------


def create_account(client: FlaskClient, **fields: str) -> TestResponse:
    data = {
        "csrf_token": csrf_token(client, "/staff/accounts"),
        "full_name": "Nora New",
        "email": "nora@example.com",
        "role": "coordinator",
        "password": "a long enough password",
        **fields,
    }
    return client.post("/staff/accounts", data=data)


def test_a_markup_staff_name_is_escaped_wherever_it_is_shown(
    app: Flask, admin: FlaskClient, clinic: Cases
) -> None:
    assert create_account(admin, full_name=MARKUP, role="specialist").status_code == 302
    assert_escaped(admin.get("/staff/accounts").get_data(as_text=True), MARKUP)
    assert_escaped(admin.get("/staff/").get_data(as_text=True), MARKUP)  # specialist filter


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"role": "superuser"}, "Not a valid choice"),
        ({"email": "COORD@EXAMPLE.COM"}, "already exists"),
        ({"email": "nora@example.com\r\nBcc: x@example.com"}, "valid email address"),
        ({"full_name": "n" * 201}, "200 characters"),
        ({"full_name": "\u200b\u200c"}, "Please enter a name."),
        ({"password": "short"}, "Use at least 12 characters."),
    ],
    ids=["unknown-role", "duplicate", "header-injection", "long-name", "invisible-name", "weak"],
)
def test_a_bad_account_is_refused_with_a_message(
    app: Flask, admin: FlaskClient, fields: dict[str, str], message: str
) -> None:
    before = snapshot(app)
    assert_refused(create_account(admin, **fields), 422, message)
    assert snapshot(app) == before


def test_an_admin_cannot_deactivate_themselves_by_a_forged_post(
    app: Flask, admin: FlaskClient, clinic: Cases
) -> None:
    before = snapshot(app)
    token = csrf_token(admin, "/staff/accounts")
    response = admin.post(
        f"/staff/accounts/{clinic.admin.id}/active",
        data={"csrf_token": token, "active": "0"},
        follow_redirects=True,
    )
    assert "You cannot deactivate your own account." in response.get_data(as_text=True)
    assert snapshot(app) == before


@pytest.mark.parametrize(
    ("path", "data"),
    [
        ("/staff/accounts", {"full_name": "Eve", "email": "eve@example.com", "role": "admin"}),
        ("/staff/accounts/{admin_id}/active", {"active": "0"}),
        ("/staff/admin/locations", {"name": "Evil", "address": "Nowhere"}),
        ("/staff/admin/scheduling/", {"type-submit": "1", "type-name": "Evil"}),
    ],
    ids=["create-admin", "deactivate-admin", "add-location", "add-type"],
)
def test_a_coordinator_cannot_use_admin_forms(
    app: Flask,
    coordinator: FlaskClient,
    clinic: Cases,
    path: str,
    data: dict[str, str],
) -> None:
    token = csrf_token(coordinator, "/staff/")
    before = snapshot(app)
    data = {"csrf_token": token, "type-csrf_token": token, "password": "x" * 20, **data}
    assert_refused(coordinator.post(path.format(**clinic.placeholders), data=data), 403)
    assert snapshot(app) == before


# Locations ----------------------------------------------------------------------------------


def add_location(client: FlaskClient, name: str, address: str = "Hauptstr. 1") -> TestResponse:
    token = csrf_token(client, "/staff/admin/locations")
    return client.post(
        "/staff/admin/locations", data={"csrf_token": token, "name": name, "address": address}
    )


def test_a_markup_location_is_escaped_on_the_pages_and_in_the_patient_email(
    app: Flask, admin: FlaskClient, coordinator: FlaskClient, clinic: Cases
) -> None:
    name, address = MARKUP, MARKUP.replace("xss", "addr")
    assert add_location(admin, name, address).status_code == 302
    assert_escaped(admin.get("/staff/admin/locations").get_data(as_text=True), name)
    with app.app_context():
        from booking.scheduling.models import Location

        location_id = db.session.scalars(select(Location.id).where(Location.name == name)).one()
    fields = slot_fields(app, clinic, location=location_id)
    # Dr. Weber has no hours there: the refusal names the place, escaped.
    page = assert_refused(act(coordinator, clinic.waiting, "confirm", **fields), 409)
    assert_escaped(page, name)


@pytest.mark.parametrize(
    ("name", "address", "message"),
    [
        ("Main clinic", "Elsewhere 2", "already exists"),
        ("L" * 121, "Somewhere 1", "120 characters"),
        (" ", "Somewhere 1", "Please enter a name."),
        ("\u200b\u2060", "Somewhere 1", "Please enter a name."),
        ("Annex", "A" * 301, "300 characters"),
    ],
    ids=["duplicate", "name-too-long", "blank-name", "invisible-name", "address-too-long"],
)
def test_a_bad_location_is_refused_with_a_message(
    app: Flask, admin: FlaskClient, name: str, address: str, message: str
) -> None:
    before = snapshot(app)
    assert_refused(add_location(admin, name, address), 422, message)
    assert snapshot(app) == before


def test_a_location_name_with_nul_bytes_is_refused(app: Flask, admin: FlaskClient) -> None:
    before = snapshot(app)
    response = add_location(admin, "An\x00nex\x07", "Ring\x00str. 5")
    assert_refused(response, 422, "Please remove the line breaks or invisible characters.")
    assert snapshot(app) == before


# Scheduling admin ---------------------------------------------------------------------------

OVERVIEW = "/staff/admin/scheduling/"


def submit(client: FlaskClient, path: str, prefix: str, **fields: str) -> TestResponse:
    """One of the page's forms as a browser sends it (its ticked options included)."""
    page = client.get(path).get_data(as_text=True)
    data = {
        **checked_radios(page, f"{prefix}-"),
        f"{prefix}-csrf_token": page_token(page),
        f"{prefix}-submit": "pressed",
        **{f"{prefix}-{name}": value for name, value in fields.items()},
    }
    return client.post(path, data=data)


def test_a_markup_appointment_type_is_escaped_for_staff_and_patients(
    app: Flask, admin: FlaskClient, client: FlaskClient
) -> None:
    response = submit(admin, OVERVIEW, "type", name=MARKUP, duration_minutes="30")
    assert response.status_code == 302
    assert_escaped(admin.get(OVERVIEW).get_data(as_text=True), MARKUP)
    assert_escaped(client.get("/request/time").get_data(as_text=True), MARKUP)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"duration_minutes": "forty"}, "Please enter a whole number of minutes"),
        ({"duration_minutes": "-5"}, "Please enter a number from 5 to 480."),
        ({"duration_minutes": "99999999999999999999"}, "Please enter a number from 5 to 480."),
        ({"duration_minutes": "1e3"}, "Please enter a whole number of minutes"),
        ({"name": " \t "}, "Please enter a name."),
        ({"name": "\u200b\u200d\ufeff"}, "Please enter a name."),
        ({"name": "T" * 121}, "120 characters"),
        ({"mode": "<b>teleport</b>"}, "Please choose one of the options shown."),
    ],
    ids=[
        "words",
        "negative",
        "huge",
        "exponent",
        "blank-name",
        "invisible-name",
        "too-long",
        "unknown-mode",
    ],
)
def test_a_bad_appointment_type_is_refused_with_a_message(
    app: Flask, admin: FlaskClient, fields: dict[str, str], message: str
) -> None:
    before = snapshot(app)
    values = {"name": "Follow-up", "duration_minutes": "30", **fields}
    assert_refused(submit(admin, OVERVIEW, "type", **values), 422, message)
    assert snapshot(app) == before


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("-1", "Please enter a number from 0 to 240."),
        ("99999999999999999999", "Please enter a number from 0 to 240."),
        ("ten", "Please enter a whole number, like 15."),
        (MARKUP, "Please enter a whole number, like 15."),
    ],
    ids=["negative", "huge", "words", "markup"],
)
def test_bad_booking_rules_are_refused_with_a_message(
    app: Flask, admin: FlaskClient, value: str, message: str
) -> None:
    before = snapshot(app)
    rules = {
        "buffer_minutes": value,
        "min_notice_hours": "24",
        "horizon_days": "60",
        "cancel_notice_hours": "24",
    }
    page = assert_refused(submit(admin, OVERVIEW, "rules", **rules), 422, message)
    assert "<script>alert" not in page
    assert snapshot(app) == before


HOURS = {
    "weekday-seven": ({"weekday": "7"}, "Please choose one of the days shown."),
    "weekday-words": ({"weekday": "monday"}, "Please choose one of the days shown."),
    "unknown-location": ({"location": "99999"}, "Please choose one of the locations shown."),
    "huge-location": ({"location": str(2**70)}, "Please choose one of the locations shown."),
    "impossible-time": ({"start_time": "25:00"}, "like 09:30"),
    "end-before-start": (
        {"start_time": "17:00", "end_time": "09:00"},
        "The end time must be after the start time.",
    ),
}


@pytest.mark.parametrize(("fields", "message"), HOURS.values(), ids=HOURS.keys())
def test_bad_working_hours_are_refused_with_a_message(
    app: Flask, admin: FlaskClient, clinic: Cases, fields: dict[str, str], message: str
) -> None:
    path = f"/staff/admin/scheduling/specialists/{clinic.okafor.id}"
    values = {
        "weekday": "0",
        "location": str(clinic.location),
        "start_time": "09:00",
        "end_time": "12:00",
        **fields,
    }
    before = snapshot(app)
    assert_refused(submit(admin, path, "hours", **values), 422, message)
    assert snapshot(app) == before


def _day(offset: int) -> str:
    return (clinic_today() + timedelta(days=offset)).isoformat()


EXCEPTIONS = {
    "year-one": ({"start_day": "0001-01-01"}, "Please enter a date from"),
    "year-9999": ({"end_day": "9999-12-31"}, "Please enter a date from"),
    "end-before-start": (
        {"start_day": "+3", "end_day": "+2"},
        "The end must be after the start.",
    ),
    "garbage-time": ({"start_time": "9:99"}, "like 09:30"),
    "reason-too-long": ({"reason": "r" * 201}, "200 characters"),
}


@pytest.mark.parametrize(("fields", "message"), EXCEPTIONS.values(), ids=EXCEPTIONS.keys())
def test_bad_time_off_is_refused_with_a_message(
    app: Flask, admin: FlaskClient, clinic: Cases, fields: dict[str, str], message: str
) -> None:
    path = f"/staff/admin/scheduling/specialists/{clinic.weber.id}"
    with app.app_context():
        values = {
            "start_day": _day(2),
            "start_time": "09:00",
            "end_day": _day(2),
            "end_time": "12:00",
            "reason": "",
        }
        for name, value in fields.items():
            values[name] = _day(int(value)) if re.fullmatch(r"\+\d+", value) else value
    before = snapshot(app)
    assert_refused(submit(admin, path, "off", **values), 422, message)
    assert snapshot(app) == before


def test_a_markup_time_off_reason_is_shown_escaped(
    app: Flask, admin: FlaskClient, clinic: Cases
) -> None:
    path = f"/staff/admin/scheduling/specialists/{clinic.weber.id}"
    with app.app_context():
        day = _day(3)
    response = submit(
        admin,
        path,
        "off",
        start_day=day,
        start_time="09:00",
        end_day=day,
        end_time="10:00",
        reason=MARKUP,
    )
    assert response.status_code == 302
    assert_escaped(admin.get(path).get_data(as_text=True), MARKUP)


EXTRA_HOURS = {
    "unknown-location": ({"location": "424242"}, "Please choose one of the locations shown."),
    "location-not-a-number": ({"location": MARKUP}, "Please choose one of the locations shown."),
    "longer-than-a-day": ({"end_day": "+4"}, "Extra hours can last at most 24 hours."),
    "clock-change-gap": (
        {"start_day": "2027-03-28", "start_time": "02:30", "end_day": "2027-03-28"},
        "does not exist in the clinic's time zone",
    ),
}


@pytest.mark.parametrize(("fields", "message"), EXTRA_HOURS.values(), ids=EXTRA_HOURS.keys())
def test_bad_extra_hours_are_refused_with_a_message(
    app: Flask, admin: FlaskClient, clinic: Cases, fields: dict[str, str], message: str
) -> None:
    path = f"/staff/admin/scheduling/specialists/{clinic.okafor.id}"
    with app.app_context():
        values = {
            "location": str(clinic.location),
            "start_day": _day(2),
            "start_time": "09:00",
            "end_day": _day(2),
            "end_time": "12:00",
            "reason": "",
        }
        for name, value in fields.items():
            values[name] = _day(int(value)) if re.fullmatch(r"\+\d+", value) else value
    before = snapshot(app)
    assert_refused(submit(admin, path, "extra", **values), 422, message)
    assert snapshot(app) == before


@pytest.mark.parametrize(
    ("overrides", "status", "message"),
    [
        ({"start": "07:00"}, 409, "is not free at that time"),
        ({"day": "0001-01-01"}, 422, "Please check the year of the date."),
        ({"specialist": "{okafor}"}, 409, "is not free at that time"),
        ({"message": MARKUP * 20}, 422, "1000 characters"),
    ],
    ids=["outside-hours", "year-one", "specialist-without-hours", "message-too-long"],
)
def test_a_bad_reschedule_is_refused_and_keeps_the_appointment(
    app: Flask,
    coordinator: FlaskClient,
    clinic: Cases,
    overrides: dict[str, str],
    status: int,
    message: str,
) -> None:
    reference = clinic.waiting
    assert act(coordinator, reference, "confirm", **slot_fields(app, clinic)).status_code == 302
    fields = slot_fields(
        app, clinic, index=8, **{k: v.format(**clinic.placeholders) for k, v in overrides.items()}
    )
    before = snapshot(app)
    page = assert_refused(act(coordinator, reference, "reschedule", **fields), status, message)
    assert "<script>alert" not in page
    assert snapshot(app) == before


STAFF_AND_PLACE_NAMES = {
    "formulas": ('=HYPERLINK("http://evil.example")', "@SUM(A1:A9)"),
    "markup": (MARKUP, MARKUP.replace("xss", "place")),
    "formula-and-markup": ("+" + MARKUP, "-" + MARKUP),
}


@pytest.mark.parametrize(
    ("specialist", "place"), STAFF_AND_PLACE_NAMES.values(), ids=STAFF_AND_PLACE_NAMES.keys()
)
def test_staff_and_location_names_are_safe_in_the_email_pages_and_csv(
    app: Flask, admin: FlaskClient, clinic: Cases, specialist: str, place: str
) -> None:
    assert create_account(admin, full_name=specialist, role="specialist").status_code == 302
    assert add_location(admin, place).status_code == 302
    with app.app_context():
        from booking.scheduling.models import Location

        user_id = db.session.scalars(
            select(StaffUser.id).where(StaffUser.full_name == specialist)
        ).one()
        location_id = db.session.scalars(select(Location.id).where(Location.name == place)).one()
    path = f"/staff/admin/scheduling/specialists/{user_id}"
    for weekday in range(7):
        hours = {
            "weekday": str(weekday),
            "location": str(location_id),
            "start_time": "08:00",
            "end_time": "18:00",
        }
        assert submit(admin, path, "hours", **hours).status_code == 302
    assert_escaped(admin.get(path).get_data(as_text=True), specialist)
    fields = slot_fields(app, clinic, specialist=user_id, location=location_id)
    assert act(admin, clinic.waiting, "confirm", **fields).status_code == 302
    (email,) = outbox(app, "request_update")
    assert_escaped(email.body_html, specialist)
    assert_escaped(email.body_html, place)
    assert_escaped(admin.get("/staff/calendar").get_data(as_text=True), specialist)
    (row,) = [r for r in csv_rows(admin) if r["reference"] == clinic.waiting]
    formula = ("=", "+", "-", "@")
    assert row["specialist"] == ("'" if specialist.startswith(formula) else "") + specialist
    assert row["location"] == ("'" if place.startswith(formula) else "") + place
