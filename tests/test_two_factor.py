"""Two-factor sign-in: enrolment by QR code, codes at sign-in, recovery codes, replay."""

from __future__ import annotations

import re
import time
from typing import Any

import pyotp
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from booking.audit.models import AuditEvent
from booking.extensions import db
from booking.staff.models import StaffUser
from tests.factories import make_staff
from tests.support import PASSWORD, AuthActions, Staff, csrf_token, session_cookie

KEY_RE = re.compile(r'<code class="fs-5">([A-Z2-7]+)</code>')
RECOVERY_RE = re.compile(r"<li>([0-9a-f]{6}-[0-9a-f]{6})</li>")


@pytest.fixture
def app_settings(app_settings: dict[str, Any]) -> dict[str, Any]:
    app_settings["STAFF_2FA_REQUIRED_ROLES"] = ["admin"]
    return app_settings


@pytest.fixture
def admin(staff: Staff) -> str:
    return staff.admin.email


def enrol(client: FlaskClient) -> tuple[str, list[str]]:
    page = client.get("/staff/two-factor").get_data(as_text=True)
    assert 'src="data:image/svg+xml' in page  # the QR code, drawn here, no third party
    secret = KEY_RE.search(page).group(1)
    token = csrf_token(client, "/staff/two-factor")
    wrong = client.post("/staff/two-factor", data={"csrf_token": token, "code": "000000"})
    assert wrong.status_code == 422 and "not right" in wrong.get_data(as_text=True)
    done = client.post(
        "/staff/two-factor", data={"csrf_token": token, "code": pyotp.TOTP(secret).now()}
    )
    assert done.status_code == 200
    codes = RECOVERY_RE.findall(done.get_data(as_text=True))
    assert len(codes) == 10
    return secret, codes


def sign_out(client: FlaskClient) -> None:
    client.post("/staff/logout", data={"csrf_token": csrf_token(client, "/staff/two-factor")})


def code_step(client: FlaskClient, code: str):
    token = csrf_token(client, "/staff/login/code")
    return client.post("/staff/login/code", data={"csrf_token": token, "code": code})


def test_an_admin_must_enrol_before_using_the_dashboard(
    app: Flask, client: FlaskClient, admin: str
) -> None:
    AuthActions(client).attempt(admin)
    response = client.get("/staff/")
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/staff/two-factor")
    enrol(client)
    assert client.get("/staff/").status_code == 200
    with app.app_context():
        assert db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "two_factor_enabled")
        ).one()


def test_the_secret_being_enrolled_cannot_be_read_from_the_session_cookie(
    app: Flask, client: FlaskClient, admin: str
) -> None:
    """Flask's session cookie is signed, not encrypted: a cookie read during set-up (a
    shared computer, a copied browser profile) must not give away the second factor."""
    AuthActions(client).attempt(admin)
    page = client.get("/staff/two-factor").get_data(as_text=True)
    secret = KEY_RE.search(page).group(1)
    stored = app.session_interface.get_signing_serializer(app).loads(session_cookie(client).value)
    assert secret not in str(stored)
    # The same secret is shown again until it is enrolled (the page may be reloaded).
    again = client.get("/staff/two-factor").get_data(as_text=True)
    assert KEY_RE.search(again).group(1) == secret


def test_a_secret_shown_to_one_account_is_never_offered_to_the_next_on_the_browser(
    app: Flask, client: FlaskClient, admin: str
) -> None:
    """An enrolment left half done (the QR code scanned, then signed out) must not offer
    the same secret to whoever signs in next on that computer: the first person's phone
    would then make the second one's codes."""
    with app.app_context():
        make_staff("admin", "second.admin@example.com")
    AuthActions(client).attempt(admin)
    seen = KEY_RE.search(client.get("/staff/two-factor").get_data(as_text=True)).group(1)
    sign_out(client)
    AuthActions(client).attempt("second.admin@example.com")
    offered = KEY_RE.search(client.get("/staff/two-factor").get_data(as_text=True)).group(1)
    assert offered != seen


def test_sign_in_needs_the_code_and_a_code_works_once(
    app: Flask, client: FlaskClient, admin: str
) -> None:
    AuthActions(client).attempt(admin)
    secret, _codes = enrol(client)
    sign_out(client)

    response = AuthActions(client).attempt(admin)
    assert response.headers["Location"].endswith("/staff/login/code")
    assert client.get("/staff/").status_code == 302  # nothing before the code
    assert code_step(client, "123456").status_code == 401
    # The enrolment used this time step's code; a code is accepted once, so the next one
    # (one step of clock drift is allowed).
    code = pyotp.TOTP(secret).at(time.time() + 30)
    assert code_step(client, code).status_code == 302
    assert client.get("/staff/").status_code == 200
    sign_out(client)

    AuthActions(client).attempt(admin)
    assert code_step(client, code).status_code == 401  # the same code again: refused
    with app.app_context():
        failures = db.session.scalars(
            select(AuditEvent.details).where(AuditEvent.action == "login_failed")
        ).all()
        assert {"reason": "wrong second-factor code"} in failures


def test_replacing_the_second_factor_needs_the_password(
    app: Flask, client: FlaskClient, admin: str
) -> None:
    """A session left open (or taken) cannot swap the account's authenticator for its own."""
    AuthActions(client).attempt(admin)
    first, _codes = enrol(client)
    page = client.get("/staff/two-factor").get_data(as_text=True)
    assert 'name="password"' in page and "this replaces your authenticator app" in page
    new = KEY_RE.search(page).group(1)
    token = csrf_token(client, "/staff/two-factor")
    code = pyotp.TOTP(new).now()

    without = client.post("/staff/two-factor", data={"csrf_token": token, "code": code})
    assert without.status_code == 422 and "Please enter your password." in without.get_data(
        as_text=True
    )
    wrong = client.post(
        "/staff/two-factor", data={"csrf_token": token, "code": code, "password": "guess"}
    )
    assert wrong.status_code == 401 and "That password is not right." in wrong.get_data(
        as_text=True
    )
    with app.app_context():
        user = db.session.scalars(select(StaffUser).where(StaffUser.email == admin)).one()
        assert user.totp_secret == first  # unchanged

    done = client.post(
        "/staff/two-factor", data={"csrf_token": token, "code": code, "password": PASSWORD}
    )
    assert done.status_code == 200 and len(RECOVERY_RE.findall(done.get_data(as_text=True))) == 10
    with app.app_context():
        user = db.session.scalars(select(StaffUser).where(StaffUser.email == admin)).one()
        assert user.totp_secret == new


def test_a_recovery_code_signs_in_once(client: FlaskClient, admin: str) -> None:
    AuthActions(client).attempt(admin)
    _secret, codes = enrol(client)
    sign_out(client)
    AuthActions(client).attempt(admin)
    assert code_step(client, codes[0]).status_code == 302
    sign_out(client)
    AuthActions(client).attempt(admin)
    assert code_step(client, codes[0]).status_code == 401
    assert code_step(client, codes[1]).status_code == 302


def test_the_code_fields_ask_for_what_can_be_typed_there(client: FlaskClient, admin: str) -> None:
    """Setting up: a code from the app (no recovery codes exist yet), on a phone's number pad.
    Signing in: the app's code or a recovery code ("3fa9c1-07be42": letters and a dash), so
    not the number pad, where a phone has no letters."""
    AuthActions(client).attempt(admin)
    setup = client.get("/staff/two-factor").get_data(as_text=True)
    assert "The 6-digit code your authenticator app shows now." in setup
    assert "or a recovery code" not in setup
    assert re.search(r'<input[^>]*id="code"[^>]*inputmode="numeric"', setup)
    enrol(client)
    sign_out(client)
    AuthActions(client).attempt(admin)
    signing_in = client.get("/staff/login/code").get_data(as_text=True)
    assert "or a recovery code" in signing_in
    field = re.search(r'<input[^>]*id="code"[^>]*>', signing_in).group(0)
    assert "inputmode" not in field and 'autocapitalize="none"' in field


def test_other_roles_may_sign_in_without_a_second_factor(app: Flask, client: FlaskClient) -> None:
    with app.app_context():
        coordinator = make_staff("coordinator", "coord@example.com").email
    AuthActions(client).attempt(coordinator)
    assert client.get("/staff/").status_code == 200


class TestClinicRequiresItForAll:
    @pytest.fixture
    def app_settings(self, app_settings: dict[str, Any]) -> dict[str, Any]:
        app_settings["STAFF_2FA_REQUIRED_ROLES"] = ["all"]
        return app_settings

    def test_every_role_must_enrol(self, app: Flask, client: FlaskClient) -> None:
        with app.app_context():
            coordinator = make_staff("coordinator", "coord@example.com").email
        AuthActions(client).attempt(coordinator)
        assert client.get("/staff/").headers["Location"].endswith("/staff/two-factor")


def test_an_admin_can_require_two_factor_for_other_roles(app: Flask, client: FlaskClient) -> None:
    with app.app_context():
        make_staff("admin", "admin@example.com")
        make_staff("coordinator", "coord@example.com")
        make_staff("specialist", "spec@example.com")
    secret, _codes = enrol_signed_in_admin(client)
    page = client.get("/staff/accounts").get_data(as_text=True)
    assert "Always required by this server" in page and "Administrator" in page
    assert 'value="admin"' not in page.split('id="two-factor"')[1].split("</form>")[0]

    token = csrf_token(client, "/staff/accounts")
    forged = client.post("/staff/accounts/two-factor", data={"roles": ["coordinator"]})
    assert forged.status_code == 400  # no CSRF token, nothing saved
    bad = client.post("/staff/accounts/two-factor", data={"csrf_token": token, "roles": ["root"]})
    assert bad.status_code == 422 and "Please choose from the options shown" in bad.get_data(True)
    saved = client.post(
        "/staff/accounts/two-factor", data={"csrf_token": token, "roles": ["coordinator"]}
    )
    assert saved.status_code == 302
    with app.app_context():
        event = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "two_factor_policy_updated")
        ).one()
        assert event.details["two_factor_roles"]["after"] == "admin, coordinator"
        assert event.actor_email == "admin@example.com"

    # A coordinator must now enrol before using the dashboard; a specialist need not.
    coordinator = FlaskClient(app, app.response_class, use_cookies=True)
    AuthActions(coordinator).attempt("coord@example.com")
    assert coordinator.get("/staff/").headers["Location"].endswith("/staff/two-factor")
    specialist = FlaskClient(app, app.response_class, use_cookies=True)
    AuthActions(specialist).attempt("spec@example.com")
    assert specialist.get("/staff/queue").status_code == 200

    # Unticking every role leaves only the server's own rule (admins).
    client.post("/staff/accounts/two-factor", data={"csrf_token": token})
    assert coordinator.get("/staff/").status_code == 200
    assert pyotp.TOTP(secret).now()  # the admin's own enrolment is untouched


def test_an_account_refused_leaves_the_two_factor_rule_shown_as_saved(
    app: Flask, client: FlaskClient
) -> None:
    """A new account refused (a name left empty) sent the page back with every box of the
    two-factor rule unticked, as if nothing were required: pressing "Save the rule" there
    would have dropped the rule without a word."""
    with app.app_context():
        make_staff("admin", "admin@example.com")
    enrol_signed_in_admin(client)
    token = csrf_token(client, "/staff/accounts")
    saved = client.post(
        "/staff/accounts/two-factor", data={"csrf_token": token, "roles": ["coordinator"]}
    )
    assert saved.status_code == 302

    def ticked(page: str) -> list[str]:
        rule = page.split('id="two-factor"')[1].split("</form>")[0]
        return re.findall(r'<input checked [^>]*value="(\w+)"', rule)

    assert ticked(client.get("/staff/accounts").get_data(as_text=True)) == ["coordinator"]
    refused = client.post(
        "/staff/accounts",
        data={
            "csrf_token": token,
            "full_name": "",
            "email": "new@example.com",
            "role": "coordinator",
            "password": PASSWORD,
        },
    )
    assert refused.status_code == 422
    assert ticked(refused.get_data(as_text=True)) == ["coordinator"]


def enrol_signed_in_admin(client: FlaskClient) -> tuple[str, list[str]]:
    AuthActions(client).attempt("admin@example.com")
    return enrol(client)


class TestPerAccountCodeThrottling:
    @pytest.fixture
    def app_settings(self, app_settings: dict[str, Any]) -> dict[str, Any]:
        app_settings["TWO_FACTOR_ACCOUNT_RATE_LIMIT"] = "2 per 15 minutes"
        return app_settings

    def test_wrong_codes_from_many_browsers_count_against_the_account(
        self, app: Flask, client: FlaskClient, admin: str
    ) -> None:
        AuthActions(client).attempt(admin)
        secret, _codes = enrol(client)
        sign_out(client)
        for n in range(2):
            guesser = app.test_client()
            guesser.environ_base["REMOTE_ADDR"] = f"198.51.100.{n + 1}"
            AuthActions(guesser).attempt(admin)
            assert code_step(guesser, "000000").status_code == 401
        third = app.test_client()
        third.environ_base["REMOTE_ADDR"] = "198.51.100.50"
        AuthActions(third).attempt(admin)
        code = pyotp.TOTP(secret).at(time.time() + 30)
        assert code_step(third, code).status_code == 429


def test_a_wrong_password_to_replace_the_authenticator_is_audited(
    app: Flask, client: FlaskClient, admin: str
) -> None:
    """A session used by someone else shows in the audit trail as guessing the password
    (from another address, the session would not be accepted at all: strong protection)."""
    AuthActions(client).attempt(admin)
    enrol(client)
    page = client.get("/staff/two-factor").get_data(as_text=True)
    code = pyotp.TOTP(KEY_RE.search(page).group(1)).now()
    token = csrf_token(client, "/staff/two-factor")
    for n in range(2):
        guess = {"csrf_token": token, "code": code, "password": f"guess {n}"}
        assert client.post("/staff/two-factor", data=guess).status_code == 401
    with app.app_context():
        refused = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "password_check_failed")
        ).all()
        assert [row.details for row in refused] == [{"for": "two-factor replacement"}] * 2
        assert {row.actor_email for row in refused} == {admin}


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_one_code_posted_twice_at_once_signs_in_once(
    app: Flask, client: FlaskClient, admin: str
) -> None:
    """A code works once even when it comes twice at the same moment (a double click, or
    a code read over someone's shoulder): here the first sign-in has used the code but not
    yet committed when the second checks it."""
    import threading

    from sqlalchemy import text

    from booking.staff import twofactor

    AuthActions(client).attempt(admin)
    secret, _codes = enrol(client)
    code = pyotp.TOTP(secret).at(time.time() + 30)  # the enrolment used this step's
    with app.app_context():
        user_id = db.session.scalar(select(StaffUser.id).where(StaffUser.email == admin))
        step = int(time.time() + 30) // 30
        first = db.engine.connect()
        transaction = first.begin()
        first.execute(
            text("UPDATE staff_user SET totp_last_step = :step WHERE id = :id"),
            {"step": step, "id": user_id},
        )
    results: list[bool] = []

    def second_sign_in() -> None:
        with app.app_context():
            results.append(twofactor.verify(db.session.get(StaffUser, user_id), code))

    worker = threading.Thread(target=second_sign_in)
    worker.start()
    try:
        # Until the second check waits for the first sign-in's row.
        with app.app_context():
            for _ in range(200):
                waiting = db.session.scalar(
                    text(
                        "SELECT count(*) FROM pg_stat_activity"
                        " WHERE wait_event_type = 'Lock' AND datname = current_database()"
                    )
                )
                db.session.rollback()
                if waiting or not worker.is_alive():
                    break
                time.sleep(0.05)
    finally:
        transaction.commit()
        first.close()
        worker.join(timeout=30)
    assert results == [False]
