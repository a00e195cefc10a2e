"""Staff sign-in: passwords, the audit of every attempt, rate limits, idle sessions, password
reset links, account management by admins and the ``create-admin`` command."""

from __future__ import annotations

import html
import re
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from argon2 import PasswordHasher, extract_parameters
from flask import Flask
from flask.testing import FlaskClient
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from sqlalchemy import delete, func, select, update
from werkzeug.test import TestResponse

from booking import create_app
from booking.audit.models import AuditEvent, AuditTrailIsAppendOnly
from booking.audit.services import record
from booking.extensions import db
from booking.notifications.models import OutboxEmail
from booking.requests.events import EventKind, RequestEvent
from booking.scheduling.models import Location
from booking.staff import auth
from booking.staff.models import StaffRole, StaffSession, StaffUser
from booking.staff.services import set_staff_active
from booking.timeutil import now_utc
from config import Config, DevelopmentConfig, ProductionConfig, TestingConfig
from tests.factories import PASSWORD, book_first_open_time, make_request, make_staff
from tests.support import AuthActions, Clinic, Staff, copy_session_cookie, csrf_token

NEW_PASSWORD = "a brand new passphrase 2026"
RESET_LINK = re.compile(r"(https?://[^/\s\"<>]+)/staff/password/reset/([A-Za-z0-9_.\-]+)")
ALERT = re.compile(r'<div class="alert[^"]*"[^>]*>(.*?)</div>', re.S)
CSRF_VALUE = re.compile(r'(name="csrf_token"[^>]*value=")[^"]+(")')
SAME_WORDS = "That email address and password do not match."
RESET_SENT = "If an account uses that address, we have sent it a link"
QUOTE_CODE = re.compile(r"please quote this code: [0-9a-f]+")


def audit(app: Flask, action: str) -> list[AuditEvent]:
    with app.app_context():
        rows = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
        ).all()
        db.session.expunge_all()
        return list(rows)


def account(app: Flask, email: str) -> StaffUser | None:
    with app.app_context():
        user = db.session.scalar(select(StaffUser).where(StaffUser.email == email))
        db.session.expunge_all()
        return user


def reset_emails(app: Flask) -> list[OutboxEmail]:
    with app.app_context():
        rows = db.session.scalars(
            select(OutboxEmail)
            .where(OutboxEmail.template == "staff_password_reset")
            .order_by(OutboxEmail.id)
        ).all()
        db.session.expunge_all()
        return list(rows)


def signed_in(client: FlaskClient) -> bool:
    response = client.get("/staff/")
    if response.status_code == 200:
        return True
    assert response.status_code == 302, response.status_code
    assert urlsplit(response.headers["Location"]).path == "/staff/login"
    return False


def alerts(response: TestResponse) -> list[str]:
    return [" ".join(m.split()) for m in ALERT.findall(response.get_data(as_text=True))]


def logout(client: FlaskClient) -> TestResponse:
    return client.post("/staff/logout", data={"csrf_token": csrf_token(client, "/staff/queue")})


def forgot(client: FlaskClient, email: str, *, worker: bool = True) -> TestResponse:
    """Ask for a reset link for ``email``; then, unless ``worker`` is False, let the worker
    take the request (it writes the email, if any, to the outbox)."""
    token = csrf_token(client, "/staff/password/forgot")
    response = client.post(
        "/staff/password/forgot",
        data={"email": email, "csrf_token": token},
        follow_redirects=True,
    )
    if worker:
        worker_takes_reset_requests(client.application)
    return response


def worker_takes_reset_requests(app: Flask) -> int:
    """Run the queued reset requests as the worker does; the delivery tasks they queue stay
    queued (no mail server here: the outbox row is what the tests read). How many ran."""
    huey = app.extensions["huey"]
    ran, others = 0, []
    while (task := huey.dequeue()) is not None:
        if task.name == "send_password_reset":
            huey.execute(task)
            ran += 1
        else:
            others.append(task)
    for task in others:
        huey.enqueue(task)
    return ran


def reset_path(email: OutboxEmail) -> str:
    match = RESET_LINK.search(email.body_text)
    assert match, "no reset link in the email"
    return f"/staff/password/reset/{match.group(2)}"


def choose_password(
    client: FlaskClient, path: str, password: str = NEW_PASSWORD, confirm: str | None = None
) -> TestResponse:
    """Open the reset link (its token is traded for the session) and send the new password
    from the page it leads to."""
    opened = client.get(path)
    form_path = opened.location if opened.status_code == 303 else path
    token = csrf_token(client, form_path)
    return client.post(
        form_path,
        data={
            "password": password,
            "confirm": password if confirm is None else confirm,
            "csrf_token": token,
        },
    )


# Signing in and out ---------------------------------------------------------------------------


COST_SETTINGS = (
    "PASSWORD_HASH_TIME_COST",
    "PASSWORD_HASH_MEMORY_COST",
    "PASSWORD_HASH_PARALLELISM",
)


def hash_cost(config: Any) -> tuple[int, int, int]:
    return tuple(
        config[name] if isinstance(config, dict) else getattr(config, name)
        for name in COST_SETTINGS
    )


def test_only_the_tests_hash_passwords_cheaply() -> None:
    recommended = PasswordHasher()  # argon2-cffi's own (RFC 9106 low-memory) parameters
    full = (recommended.time_cost, recommended.memory_cost, recommended.parallelism)
    for config in (Config, DevelopmentConfig, ProductionConfig):
        assert hash_cost(config) == full, config.__name__
    assert hash_cost(TestingConfig) == (1, 8, 1)


def test_hashes_follow_the_apps_cost_and_cheaper_ones_are_upgraded_at_sign_in(
    app: Flask, app_settings: dict[str, Any]
) -> None:
    with app.app_context():
        user_id = make_staff("coordinator", "cheap@example.com").id
        cheap_hash = db.session.get(StaffUser, user_id).password_hash
    cheap = extract_parameters(cheap_hash)
    assert (cheap.time_cost, cheap.memory_cost, cheap.parallelism) == hash_cost(TestingConfig)

    full_cost = {name: getattr(ProductionConfig, name) for name in COST_SETTINGS}
    full_app = create_app({**app_settings, **full_cost})
    try:
        with full_app.app_context():
            user = db.session.get(StaffUser, user_id)
            # A hash made at a lower cost still verifies (its parameters travel with it).
            assert auth.verify_password(user, PASSWORD)
            assert not auth.verify_password(user, "not the password at all")
            assert auth.needs_rehash(user)
            db.session.remove()
        AuthActions(full_app.test_client()).login(email="cheap@example.com")
        with full_app.app_context():
            upgraded = extract_parameters(db.session.get(StaffUser, user_id).password_hash)
            db.session.remove()
        assert (upgraded.time_cost, upgraded.memory_cost, upgraded.parallelism) == hash_cost(
            full_cost
        )
    finally:
        with full_app.app_context():
            db.engine.dispose()


def test_signing_in_goes_to_the_queue_and_is_audited(
    app: Flask, client: FlaskClient, staff: Staff
) -> None:
    assert not signed_in(client)
    response = AuthActions(client).attempt(staff.coordinator.email)
    assert response.status_code == 302
    assert response.headers["Location"] == "/staff/"
    assert signed_in(client)

    (row,) = audit(app, "login")
    assert row.actor_id == staff.coordinator.id
    assert row.actor_email == staff.coordinator.email
    assert row.target_type == "staff" and row.target_id == str(staff.coordinator.id)
    assert row.ip_address == "127.0.0.1"
    assert audit(app, "login_failed") == []
    user = account(app, staff.coordinator.email)
    assert user is not None and user.last_login_at is not None


def _comparable(response: TestResponse, typed_email: str) -> str:
    """The page without what legitimately differs: the typed address and the CSRF token."""
    page = response.get_data(as_text=True).replace(typed_email, "EMAIL")
    return CSRF_VALUE.sub(r"\1TOKEN\2", page)


def test_a_wrong_password_and_an_unknown_address_look_the_same(
    app: Flask, client: FlaskClient, staff: Staff
) -> None:
    wrong_password = AuthActions(client).attempt(staff.coordinator.email, "not the password at all")
    unknown = AuthActions(client).attempt("nobody@example.com", PASSWORD)

    assert wrong_password.status_code == unknown.status_code == 401
    assert SAME_WORDS in wrong_password.get_data(as_text=True)
    assert _comparable(wrong_password, staff.coordinator.email) == _comparable(
        unknown, "nobody@example.com"
    )
    assert not signed_in(client)

    first, second = audit(app, "login_failed")
    assert first.details == {"reason": "wrong password"}
    assert first.target_id == str(staff.coordinator.id)
    assert first.actor_email == staff.coordinator.email
    assert second.details == {"reason": "unknown account"}
    assert second.target_id is None
    assert second.actor_email == "nobody@example.com"
    assert first.ip_address == second.ip_address == "127.0.0.1"
    # A failed attempt is never attributed to the account as its actor.
    assert first.actor_id is None and second.actor_id is None
    assert audit(app, "login") == []


def test_a_password_typed_into_the_email_box_is_not_kept(
    app: Flask, client: FlaskClient, staff: Staff
) -> None:
    """The audit trail keeps an address typed for no account, but never text that is no
    address: a password typed in the wrong box would be readable by every admin for years."""
    AuthActions(client).attempt("Correct-Horse-Battery-Staple-2026", PASSWORD)
    AuthActions(client).attempt("nobody@example.com", PASSWORD)
    password, address = audit(app, "login_failed")
    assert (password.actor_email, address.actor_email) == (
        "(not an email address)",
        "nobody@example.com",
    )
    assert password.details == {"reason": "unknown account"}


def test_an_inactive_account_cannot_sign_in(app: Flask, client: FlaskClient, staff: Staff) -> None:
    with app.app_context():
        admin = db.session.get(StaffUser, staff.admin.id)
        user = db.session.get(StaffUser, staff.coordinator.id)
        set_staff_active(user, False, actor=admin)

    response = AuthActions(client).attempt(staff.coordinator.email)  # the right password
    assert response.status_code == 401
    assert SAME_WORDS in response.get_data(as_text=True)
    assert not signed_in(client)
    (row,) = audit(app, "login_failed")
    assert row.details == {"reason": "inactive account"}
    assert audit(app, "login") == []


def test_signing_out_ends_the_session_and_is_audited(
    app: Flask, client: FlaskClient, staff: Staff
) -> None:
    AuthActions(client).attempt(staff.coordinator.email)
    # Without the form's token nothing happens: a third-party page cannot sign staff out.
    assert client.post("/staff/logout").status_code == 400
    assert signed_in(client)
    assert audit(app, "logout") == []

    response = logout(client)
    assert response.status_code == 302
    assert urlsplit(response.headers["Location"]).path == "/staff/login"
    assert "You are signed out." in alerts(client.get(response.headers["Location"]))
    assert not signed_in(client)
    (row,) = audit(app, "logout")
    assert row.actor_id == staff.coordinator.id
    assert row.ip_address == "127.0.0.1"


@pytest.mark.parametrize(
    ("target", "lands_on"),
    [
        ("/staff/calendar?view=day", "/staff/calendar?view=day"),
        ("/staff/insights", "/staff/insights"),
        ("https://evil.example/", "/staff/"),
        ("https://evil.example/staff/", "/staff/"),
        ("//evil.example/staff/", "/staff/"),
        ("/\\evil.example/staff/", "/staff/"),
        ("javascript:alert(1)", "/staff/"),
        ("/request", "/staff/"),  # on this site, but not a staff page
    ],
)
def test_next_only_leads_to_staff_pages_on_this_site(
    client: FlaskClient, staff: Staff, target: str, lands_on: str
) -> None:
    path = f"/staff/login?next={quote(target, safe='')}"
    token = csrf_token(client, path)
    response = client.post(
        path, data={"email": staff.coordinator.email, "password": PASSWORD, "csrf_token": token}
    )
    assert response.status_code == 302
    assert response.headers["Location"] == lands_on


class TestRateLimit:
    @pytest.fixture
    def app_settings(self, app_settings: dict[str, Any]) -> dict[str, Any]:
        app_settings["LOGIN_RATE_LIMIT"] = "3 per minute"
        return app_settings

    def test_the_fourth_sign_in_attempt_in_a_minute_is_refused(
        self, app: Flask, client: FlaskClient, staff: Staff
    ) -> None:
        for _ in range(3):
            assert (
                AuthActions(client).attempt(staff.coordinator.email, "guessing again").status_code
                == 401
            )
        # Even the right password waits: the limit is on attempts, not on failures.
        response = AuthActions(client).attempt(staff.coordinator.email)
        assert response.status_code == 429
        page = response.get_data(as_text=True)
        assert "Too many attempts" in page
        assert "Please wait a minute and try again." in page
        assert "Traceback" not in page
        # In the staff frame, with a way back to signing in; not the patients' banner and form.
        assert 'href="/staff/login">Back to staff sign-in</a>' in page
        assert "emergency-notice" not in page and "Go to the request form" not in page
        assert not signed_in(client)
        assert audit(app, "login") == []
        assert len(audit(app, "login_failed")) == 3
        # Looking at the page is not an attempt.
        assert client.get("/staff/login").status_code == 200

    def test_reset_emails_are_limited_too(
        self, app: Flask, client: FlaskClient, staff: Staff
    ) -> None:
        for _ in range(3):
            assert forgot(client, staff.coordinator.email).status_code == 200
        token = csrf_token(client, "/staff/password/forgot")
        response = client.post(
            "/staff/password/forgot", data={"email": staff.coordinator.email, "csrf_token": token}
        )
        assert response.status_code == 429
        assert "Too many attempts" in response.get_data(as_text=True)
        assert len(reset_emails(app)) == 3


# Idle sessions --------------------------------------------------------------------------------


class Clock:
    """The sign-in code's clock, moved by hand (sessions are timed on the server)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.now = now_utc()
        monkeypatch.setattr(auth, "now_utc", lambda: self.now)

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    return Clock(monkeypatch)


def test_stay_signed_in_keeps_a_session_whose_page_is_open_for_long(
    app: Flask, client: FlaskClient, staff: Staff, clock: Clock
) -> None:
    """A coordinator types a long message on one page: nothing reaches the server while
    they type. The warning's "Stay signed in" (static/js/idle-warning.js) counts as activity
    and leaves the page as it is (204); the session's overall limit still holds, and the
    button needs the form's token like any post."""
    idle = app.config["STAFF_IDLE_MINUTES"]
    AuthActions(client).attempt(staff.coordinator.email)
    page = client.get("/staff/calendar").get_data(as_text=True)
    assert 'id="idle-warning"' in page and "Stay signed in" in page
    assert f'data-idle-seconds="{idle * 60}"' in page
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)

    assert client.post("/staff/session/keep-alive").status_code == 400  # no token
    clock.advance(minutes=idle - 2)
    kept = client.post("/staff/session/keep-alive", data={"csrf_token": token})
    assert kept.status_code == 204 and kept.get_data() == b""
    clock.advance(minutes=idle - 2)  # 2 x idle - 4 minutes since the page: still signed in
    assert client.get("/staff/calendar").status_code == 200

    clock.advance(minutes=idle + 1)  # too late: the sign-in page, as for any post
    late = client.post("/staff/session/keep-alive", data={"csrf_token": token})
    assert late.status_code == 302 and urlsplit(late.headers["Location"]).path == "/staff/login"
    assert not signed_in(client)

    # Signed out, no warning is shown (nor any session kept alive).
    assert 'id="idle-warning"' not in client.get("/staff/login").get_data(as_text=True)


def test_an_idle_session_is_signed_out(
    app: Flask, client: FlaskClient, staff: Staff, clock: Clock
) -> None:
    idle = app.config["STAFF_IDLE_MINUTES"]
    AuthActions(client).attempt(staff.coordinator.email)
    assert signed_in(client)

    clock.advance(minutes=idle - 1)  # still within the limit
    assert client.get("/staff/calendar").status_code == 200
    clock.advance(minutes=idle - 1)  # idle counts from the last page, not the sign-in
    assert client.get("/staff/calendar").status_code == 200

    clock.advance(minutes=idle + 1)
    response = client.get("/staff/calendar?view=day")
    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    assert location.path == "/staff/login"
    assert parse_qs(location.query)["next"] == ["/staff/calendar?view=day"]
    page = client.get(response.headers["Location"])
    assert "You were signed out after a period of inactivity." in alerts(page)
    assert not signed_in(client)


def test_a_note_sent_after_the_idle_sign_out_is_shown_back_to_copy(
    app: Flask, client: FlaskClient, staff: Staff, clock: Clock
) -> None:
    """Without scripts no warning comes before the idle sign-out: a note written meanwhile
    reaches a signed-out server. It is not saved (a post is not replayed after signing in),
    but shown back on the page that says so, to copy, with a link to sign in and return to
    the record; only to the browser whose form it was (its token checked), and only text a
    person wrote. Signed out in another tab since, the same."""
    AuthActions(client).attempt(staff.coordinator.email)
    with app.app_context():
        reference = make_request().reference
    record = f"/staff/requests/{reference}"
    token = csrf_token(client, record)
    note = "Spoke to her GP: the MRI report <follows> by fax.\nCall back on Monday."
    clock.advance(minutes=app.config["STAFF_IDLE_MINUTES"] + 1)

    def post(**data: str) -> TestResponse:
        return client.post(
            f"{record}/notes",
            data={"note-csrf_token": token, **data},  # the form's names
            headers={"Referer": f"http://localhost{record}"},
        )

    response = post(**{"note-text": note})
    assert response.status_code == 401
    page = response.get_data(as_text=True)
    assert "Signed out: what you wrote was not saved" in page
    assert "You were signed out after a period of inactivity." in page
    shown = re.search(r"<textarea[^>]*readonly>\n(.*?)</textarea>", page, re.S)
    assert shown is not None and html.unescape(shown.group(1)) == note
    assert f'href="/staff/login?next={record}"' in page
    assert not signed_in(client)
    with app.app_context():
        notes = select(func.count()).where(RequestEvent.kind == EventKind.NOTE)
        assert db.session.scalar(notes) == 0

    # Signed out already (another tab): still shown back. Nothing written: the sign-in page.
    assert post(**{"note-text": note}).status_code == 401
    assert post(**{"note-text": "  "}).status_code == 302
    # Not this browser's form: no text of another site's on a page of ours.
    forged = client.post(f"{record}/notes", data={"note-csrf_token": "x", "note-text": "Call 0900"})
    assert forged.status_code in (302, 400) and "Call 0900" not in forged.get_data(as_text=True)


def test_every_answer_typed_on_one_line_is_shown_back_too(
    app: Flask, client: FlaskClient, staff: Staff
) -> None:
    """The page showed only what was written in multi-line boxes: a location's name and
    address (or a date, a time, a reason) typed before being signed out in another tab were
    lost. Every typed answer is shown, under its field's label, escaped; nothing the form did
    not have a person type (its token, a hidden value, a page's proof, a password). The main
    name is labelled as the form showed it ("Name in English" beside "Name in Spanish"), not
    by its class's bare "Name"."""
    AuthActions(client).attempt(staff.admin.email)
    token = csrf_token(client, "/staff/admin/locations")
    form = client.get("/staff/admin/locations").get_data(as_text=True)
    assert re.search(r'<label [^>]*for="name">Name in English</label>', form)
    logout(client)
    address = 'Friedrichstr. 1 <b>"Hof"</b> & Aufgang B'
    response = client.post(
        "/staff/admin/locations",
        data={
            "csrf_token": token,
            "name": "East site",
            "name_es": "Sede este",
            "address": address,
            "draft_page": "proof-of-a-page",
            "password": "not-to-show",
            "slot": "3.1.1796713200",
        },
        headers={"Referer": "http://localhost/staff/admin/locations"},
    )
    assert response.status_code == 401
    page = response.get_data(as_text=True)
    shown = re.findall(
        r'<label [^>]*for="(unsaved-\d+)">([^<]*)</label>\s*<input [^>]*id="\1" value="([^"]*)"',
        page,
    )
    assert [(html.unescape(label), html.unescape(value)) for _id, label, value in shown] == [
        ("Name in English", "East site"),
        ("Name in Spanish", "Sede este"),
        ("Address", address),
    ]
    assert "<b>" not in page.split("</h1>", 1)[1]
    for hidden in (token, "proof-of-a-page", "not-to-show", "3.1.1796713200"):
        assert hidden not in page
    with app.app_context():
        assert not db.session.scalars(select(Location)).all()


def test_fields_posted_with_a_forms_prefix_are_shown_under_that_forms_labels(
    app: Flask, client: FlaskClient, staff: Staff
) -> None:
    """The fields "email" and "phone" are declared by several forms under different labels; the
    record's contact form posts them as "contact-email" and "contact-phone", so the page
    signed out in another tab labels them as that form does, not "What you wrote (1 of 2)"."""
    with app.app_context():
        reference = make_request().reference
    AuthActions(client).attempt(staff.coordinator.email)
    token = csrf_token(client, f"/staff/requests/{reference}")
    logout(client)
    response = client.post(
        f"/staff/requests/{reference}/contact",
        data={
            "csrf_token": token,
            "contact-shown": "fingerprint",
            "contact-email": "new@example.com",
            "contact-phone": "+49 30 1234567",
        },
        headers={"Referer": f"http://localhost/staff/requests/{reference}"},
    )
    assert response.status_code == 401
    shown = re.findall(
        r'<label [^>]*for="(unsaved-\d+)">([^<]*)</label>\s*<input [^>]*id="\1" value="([^"]*)"',
        response.get_data(as_text=True),
    )
    assert [(html.unescape(label), html.unescape(value)) for _id, label, value in shown] == [
        ("Email address", "new@example.com"),
        ("Phone number", "+49 30 1234567"),
    ]


def test_a_cookie_copied_before_signing_out_is_refused_after_it(
    app: Flask, client: FlaskClient, staff: Staff
) -> None:
    AuthActions(client).attempt(staff.coordinator.email)
    thief = app.test_client()
    copy_session_cookie(client, thief)
    assert signed_in(thief), "the copy works while the session lasts"
    logout(client)
    assert not signed_in(thief)
    assert not signed_in(client)
    with app.app_context():
        (ended,) = db.session.scalars(select(StaffSession)).all()
        assert ended.ended_at is not None and ended.end_reason == "signed_out"


def test_signing_out_ends_only_this_browsers_session(
    app: Flask, client: FlaskClient, staff: Staff
) -> None:
    other_browser = app.test_client()
    AuthActions(client).attempt(staff.coordinator.email)
    AuthActions(other_browser).attempt(staff.coordinator.email)
    logout(client)
    assert signed_in(other_browser)


def _post_note(client: FlaskClient, app: Flask, token: str) -> TestResponse:
    with app.app_context():
        reference = make_request().reference
    record = f"/staff/requests/{reference}"
    return client.post(
        f"{record}/notes",
        data={"note-csrf_token": token, "note-text": "Sent from another site."},
        headers={"Referer": f"http://localhost{record}"},
    )


def notes(app: Flask) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).where(RequestEvent.kind == EventKind.NOTE))


def test_a_cookie_planted_before_signing_in_is_worth_nothing_after_it(
    app: Flask, client: FlaskClient, staff: Staff
) -> None:
    """Session fixation: a session cookie of someone else's making (set by a neighbouring
    site of the domain, or left on a shared computer) is renewed at the sign-in, CSRF token
    and all, so its maker cannot send forms as the person who signed in."""
    planter = app.test_client()
    known_token = csrf_token(planter, "/staff/login")
    copy_session_cookie(planter, client)

    AuthActions(client).attempt(staff.coordinator.email)
    assert signed_in(client)
    assert _post_note(client, app, known_token).status_code == 400
    assert notes(app) == 0
    own = csrf_token(client, "/staff/queue")
    assert own != known_token
    assert _post_note(client, app, own).status_code == 302
    assert notes(app) == 1


def test_a_form_from_before_signing_out_is_not_sent_after_signing_in_again(
    app: Flask, client: FlaskClient, staff: Staff
) -> None:
    """A post belongs to the session it was written in (``auth.unsaved_text_page``): its
    token stops working at the next sign-in, on this browser too."""
    AuthActions(client).attempt(staff.coordinator.email)
    old_token = csrf_token(client, "/staff/queue")
    logout(client)
    AuthActions(client).attempt(staff.coordinator.email)
    assert _post_note(client, app, old_token).status_code == 400
    assert notes(app) == 0


def test_a_session_ends_at_its_absolute_lifetime_however_busy(
    app: Flask, client: FlaskClient, staff: Staff, clock: Clock
) -> None:
    hours = app.config["STAFF_SESSION_HOURS"]
    assert hours == 12  # the documented default
    AuthActions(client).attempt(staff.coordinator.email)
    copy = app.test_client()
    copy_session_cookie(client, copy)
    # Busy all day: a page every 20 minutes never lets it go idle ...
    for _ in range(hours * 3 - 1):
        clock.advance(minutes=20)
        assert client.get("/staff/calendar").status_code == 200
    clock.advance(minutes=19)
    assert client.get("/staff/calendar").status_code == 200
    # ... yet twelve hours after signing in it ends, for the copy too.
    clock.advance(minutes=2)
    response = client.get("/staff/calendar")
    assert response.status_code == 302
    page = client.get(response.headers["Location"])
    assert "Your session reached its time limit. Please sign in again." in alerts(page)
    assert not signed_in(client)
    assert not signed_in(copy)
    AuthActions(client).login(email=staff.coordinator.email)
    assert signed_in(client)


def test_a_password_change_or_deactivation_ends_every_session(app: Flask, staff: Staff) -> None:
    browsers = [app.test_client() for _ in range(2)]
    for browser in browsers:
        AuthActions(browser).attempt(staff.coordinator.email)
    with app.app_context():
        from booking.staff.services import set_password

        set_password(db.session.get(StaffUser, staff.coordinator.id), NEW_PASSWORD)
        reasons = set(db.session.scalars(select(StaffSession.end_reason)))
    assert reasons == {"password_changed"}
    assert not any(signed_in(b) for b in browsers)
    AuthActions(browsers[0]).attempt(staff.coordinator.email, NEW_PASSWORD)
    with app.app_context():
        admin = db.session.get(StaffUser, staff.admin.id)
        set_staff_active(db.session.get(StaffUser, staff.coordinator.id), False, actor=admin)
        last = db.session.scalars(select(StaffSession).order_by(StaffSession.id.desc())).first()
        assert last.end_reason == "deactivated"
    assert not signed_in(browsers[0])


def test_signing_in_again_after_a_long_break_is_not_an_idle_session(
    app: Flask, client: FlaskClient, staff: Staff, clock: Clock
) -> None:
    def two_hours_pass() -> None:
        # The browser keeps its session cookie meanwhile (whatever the app left in it).
        clock.advance(hours=2)

    # After signing out ...
    AuthActions(client).attempt(staff.coordinator.email)
    assert signed_in(client)
    logout(client)
    two_hours_pass()
    AuthActions(client).login(email=staff.coordinator.email)
    assert signed_in(client), "a fresh sign-in after signing out was ended as idle"

    # ... and after being signed out by a password change made elsewhere.
    forgot(app.test_client(), staff.coordinator.email)
    assert choose_password(app.test_client(), reset_path(reset_emails(app)[0])).status_code == 302
    assert not signed_in(client)
    two_hours_pass()
    AuthActions(client).login(email=staff.coordinator.email, password=NEW_PASSWORD)
    assert signed_in(client), "a fresh sign-in after a password change was ended as idle"


# Password reset -------------------------------------------------------------------------------


def test_password_reset_from_request_to_new_password(
    app: Flask, client: FlaskClient, staff: Staff
) -> None:
    page = forgot(client, "  COORD@example.com ")  # typed as people type
    assert any(RESET_SENT in alert for alert in alerts(page))
    (email,) = reset_emails(app)
    assert email.recipient == staff.coordinator.email
    assert email.request_id is None
    match = RESET_LINK.search(email.body_text)
    assert match and match.group(1) == app.config["PUBLIC_BASE_URL"].rstrip("/")
    assert match.group(0) in email.body_html
    path = reset_path(email)
    (requested,) = audit(app, "password_reset_requested")
    assert requested.actor_email == staff.coordinator.email  # as typed, tidied
    (sent,) = audit(app, "password_reset_sent")
    assert sent.target_id == str(staff.coordinator.id)

    opened = client.get(path)
    # The token leaves the address: the page that asks for the password has none.
    assert opened.status_code == 303 and opened.location == "/staff/password/reset"
    assert opened.headers["Referrer-Policy"] == "no-referrer"
    form = client.get(opened.location)
    assert form.status_code == 200
    assert "Choose a new password" in form.get_data(as_text=True)
    # The form's own rules: long enough, typed twice the same.
    assert "Use at least 12 characters." in choose_password(client, path, "short").get_data(
        as_text=True
    )
    mismatch = choose_password(client, path, NEW_PASSWORD, NEW_PASSWORD + "!")
    assert "The two passwords do not match." in mismatch.get_data(as_text=True)

    response = choose_password(client, path)
    assert response.status_code == 302
    assert urlsplit(response.headers["Location"]).path == "/staff/login"
    (changed,) = audit(app, "password_changed")
    assert changed.target_id == str(staff.coordinator.id)

    assert AuthActions(client).attempt(staff.coordinator.email, PASSWORD).status_code == 401
    AuthActions(client).login(email=staff.coordinator.email, password=NEW_PASSWORD)
    assert signed_in(client)
    logout(client)

    # The link worked once.
    again = client.get(path)
    assert again.status_code == 400
    assert "This link no longer works" in again.get_data(as_text=True)
    token = csrf_token(client, "/staff/login")
    reused = client.post(
        "/staff/password/reset",
        data={
            "password": "yet another passphrase",
            "confirm": "yet another passphrase",
            "csrf_token": token,
        },
    )
    assert reused.status_code == 400
    AuthActions(client).login(email=staff.coordinator.email, password=NEW_PASSWORD)


def reset_request_seen_from_the_request(app: Flask, client: FlaskClient, email: str) -> Any:
    """What asking for a reset for ``email`` shows and leaves behind before the worker takes
    it: the page, the rows it wrote (without their ids and times) and the tasks it queued."""
    with app.app_context():
        last_row = db.session.scalar(select(func.max(AuditEvent.id))) or 0
    page = forgot(client, email, worker=False)
    with app.app_context():
        rows = [
            (e.action, e.actor_id, e.target_type, e.target_id, e.ip_address, e.details)
            for e in db.session.scalars(select(AuditEvent).where(AuditEvent.id > last_row))
        ]
        outbox = db.session.scalar(select(func.count()).select_from(OutboxEmail))
    tasks = [task.name for task in app.extensions["huey"].pending()]
    return page.status_code, alerts(page), rows, outbox, tasks


def test_known_unknown_and_inactive_addresses_look_the_same_from_the_request(
    app: Flask, client: FlaskClient, staff: Staff
) -> None:
    """The request does the same work whatever was typed (one audit row, one task for the
    worker), so neither its answer nor its time tells who has an account: only the worker
    looks the account up and writes its email."""
    known = reset_request_seen_from_the_request(app, client, staff.coordinator.email)
    status, shown, rows, outbox, tasks = known
    assert status == 200 and any(RESET_SENT in alert for alert in shown)
    assert rows == [("password_reset_requested", None, None, None, "127.0.0.1", {})]
    assert outbox == 0 and tasks == ["send_password_reset"]
    assert worker_takes_reset_requests(app) == 1
    assert [e.recipient for e in reset_emails(app)] == [staff.coordinator.email]

    assert reset_request_seen_from_the_request(app, client, "nobody@example.com") == (
        status,
        shown,
        rows,
        1,
        ["deliver_email", "send_password_reset"],
    )
    with app.app_context():
        admin = db.session.get(StaffUser, staff.admin.id)
        set_staff_active(db.session.get(StaffUser, staff.coordinator.id), False, actor=admin)
    assert reset_request_seen_from_the_request(app, client, staff.coordinator.email) == (
        status,
        shown,
        rows,
        1,
        ["deliver_email", "send_password_reset", "send_password_reset"],
    )
    # The worker writes no email for either.
    assert worker_takes_reset_requests(app) == 2
    assert [e.recipient for e in reset_emails(app)] == [staff.coordinator.email]
    assert [row.actor_email for row in audit(app, "password_reset_requested")] == [
        staff.coordinator.email,
        "nobody@example.com",
        staff.coordinator.email,
    ]
    assert [row.target_id for row in audit(app, "password_reset_sent")] == [
        str(staff.coordinator.id)
    ]


class TestResetsPerAccount:
    @pytest.fixture
    def app_settings(self, app_settings: dict[str, Any]) -> dict[str, Any]:
        app_settings["PASSWORD_RESET_ACCOUNT_RATE_LIMIT"] = "3 per hour"
        return app_settings

    @staticmethod
    def ask_from(app: Flask, network_address: str, email: str) -> TestResponse:
        client = app.test_client()
        client.environ_base["REMOTE_ADDR"] = network_address
        token = csrf_token(client, "/staff/password/forgot")
        response = client.post("/staff/password/forgot", data={"email": email, "csrf_token": token})
        worker_takes_reset_requests(app)
        return response

    def test_the_fourth_reset_for_one_address_in_an_hour_is_refused_from_anywhere(
        self, app: Flask, staff: Staff
    ) -> None:
        refusals = []
        for email in (staff.coordinator.email, "nobody@example.com"):
            for n in range(3):
                assert self.ask_from(app, f"10.0.{n}.1", email).status_code == 302
            refused = self.ask_from(app, "10.0.9.1", email)
            assert refused.status_code == 429
            # Each page has its own code to quote (the request's id); the rest is the same.
            refusals.append(QUOTE_CODE.sub("", refused.get_data(as_text=True)))
        # The same words for an account's address and for any other.
        assert refusals[0] == refusals[1]
        assert "Several links to choose a new password were asked for this address" in (
            " ".join(refusals[0].split())
        )
        assert "Traceback" not in refusals[0]
        assert [e.recipient for e in reset_emails(app)] == [staff.coordinator.email] * 3
        # Typed another way, it is the same address; another account is not held up.
        assert self.ask_from(app, "10.0.8.1", " COORD@Example.com").status_code == 429
        assert self.ask_from(app, "10.0.9.1", staff.weber.email).status_code == 302
        assert len(reset_emails(app)) == 4

    def test_a_reset_the_task_queue_refused_does_not_count(
        self, app: Flask, staff: Staff, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Asked while the task queue was down (the page said to try again): no email was
        sent, so it does not count towards the address's limit, or the person who tried
        again as told would be refused once the queue is back."""

        def queue_down(address: str) -> None:
            raise ConnectionError("the task queue does not answer")

        with monkeypatch.context() as patch:
            patch.setitem(app.extensions, "spineconsult.send_password_reset", queue_down)
            for n in range(4):
                assert self.ask_from(app, f"10.0.{n}.1", staff.coordinator.email).status_code == 503
        for n in range(3):
            assert self.ask_from(app, f"10.0.{n}.2", staff.coordinator.email).status_code == 302
        assert self.ask_from(app, "10.0.9.2", staff.coordinator.email).status_code == 429
        assert [e.recipient for e in reset_emails(app)] == [staff.coordinator.email] * 3


def test_forged_tampered_and_expired_reset_links_are_refused(
    app: Flask, client: FlaskClient, staff: Staff, monkeypatch: pytest.MonkeyPatch
) -> None:
    forgot(client, staff.coordinator.email)
    path = reset_path(reset_emails(app)[0])
    token = path.rsplit("/", 1)[1]
    payload, stamp, signature = token.split(".")

    def refused(candidate: str) -> bool:
        response = client.get(f"/staff/password/reset/{candidate}")
        return response.status_code == 400 and "no longer works" in response.get_data(as_text=True)

    middle = len(signature) // 2
    flipped = "A" if signature[middle] != "A" else "B"
    tampered = f"{payload}.{stamp}.{signature[:middle]}{flipped}{signature[middle + 1 :]}"
    assert refused(tampered)
    with app.app_context():
        user = db.session.get(StaffUser, staff.coordinator.id)
        claims = {"id": user.id, "pw": user.password_hash[-16:]}
    forged = URLSafeTimedSerializer("not-the-secret", salt="staff-password-reset").dumps(claims)
    assert refused(forged)
    assert refused("not-a-token")

    # The real link works until PASSWORD_RESET_HOURS have passed, then never again.
    lifetime = app.config["PASSWORD_RESET_HOURS"] * 3600
    real_clock = TimestampSigner.get_timestamp

    def later(seconds: int) -> None:
        monkeypatch.setattr(
            TimestampSigner, "get_timestamp", lambda self: real_clock(self) + seconds
        )

    later(lifetime - 60)
    assert client.get(path).status_code == 303  # traded for the session
    later(lifetime + 60)
    assert refused(token)
    # The page opened before: its form is refused too.
    token_field = csrf_token(client, "/staff/login")
    response = client.post(
        "/staff/password/reset",
        data={"password": NEW_PASSWORD, "confirm": NEW_PASSWORD, "csrf_token": token_field},
    )
    assert response.status_code == 400
    assert audit(app, "password_changed") == []


def test_a_reset_email_says_until_when_its_link_works(
    app: Flask, client: FlaskClient, staff: Staff, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The email may go hours after it was written (the mail server away), so it does not
    say for how long the link works, which would be untrue by then, but until when: the
    time signed into its link plus PASSWORD_RESET_HOURS, in the clinic's time, named (its
    reader may be away, in another zone)."""
    from datetime import UTC, datetime

    from booking.timeutil import clinic_dt

    signed = datetime(2026, 12, 7, 8, 30, 20, tzinfo=UTC)  # 09:30 in Berlin
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: int(signed.timestamp()))
    forgot(client, staff.coordinator.email)
    [email] = reset_emails(app)
    with app.app_context():
        until = clinic_dt(
            signed + timedelta(hours=app.config["PASSWORD_RESET_HOURS"]), "when", zone=True
        )
    assert until.endswith("11:30, Germany (Berlin) Time")
    for body in (email.body_text, html.unescape(email.body_html)):
        assert f"(the link works once, until {until}):" in " ".join(body.split())
        assert "hours" not in body


def test_a_reset_email_names_the_clinics_zone_in_the_clinics_language(
    app: Flask, client: FlaskClient, staff: Staff
) -> None:
    """Staff read their emails in the clinic's language: the zone's name too."""
    app.config["BABEL_DEFAULT_LOCALE"] = "es"
    forgot(client, staff.coordinator.email)
    [email] = reset_emails(app)
    for body in (email.body_text, html.unescape(email.body_html)):
        assert re.search(r"\d\d:\d\d, hora de Alemania \(Berlín\)", body)
        assert "Germany" not in body


def test_a_reset_email_whose_link_expired_before_it_could_go_is_not_sent(
    mail_settings: dict[str, Any],
    app: Flask,
    client: FlaskClient,
    staff: Staff,
    smtp: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Reset emails wait (the mail server away: they are retried for MAIL_GIVE_UP_HOURS,
    far longer than the link works). One that can go while its link still works is sent,
    however late; one that could go only once PASSWORD_RESET_HOURS had passed is not sent,
    and is failed with its reason: its link would only have said it no longer works."""
    from booking.notifications.models import OutboxStatus
    from booking.notifications.services import deliver_outbox_email

    forgot(client, staff.coordinator.email)
    forgot(client, staff.coordinator.email)
    early, late = (email.id for email in reset_emails(app))
    lifetime = app.config["PASSWORD_RESET_HOURS"] * 3600
    real_clock = TimestampSigner.get_timestamp
    with app.app_context():
        for seconds, email_id in ((lifetime - 60, early), (lifetime + 60, late)):
            monkeypatch.setattr(
                TimestampSigner, "get_timestamp", lambda self, s=seconds: real_clock(self) + s
            )
            assert deliver_outbox_email(email_id) is None
    sent, failed = reset_emails(app)
    assert (sent.status, failed.status) == (OutboxStatus.SENT, OutboxStatus.FAILED)
    assert failed.last_error == "ResetLinkExpired"
    [received] = smtp.collector.wait_for(1)
    assert received.message["Message-ID"] == sent.message_id
    assert len(smtp.received) == 1


@pytest.mark.parametrize("change", ["password changed", "deactivated", "address corrected"])
def test_a_reset_email_whose_link_is_over_for_its_account_is_dropped_unsent(
    mail_settings: dict[str, Any],
    app: Flask,
    client: FlaskClient,
    staff: Staff,
    smtp: Any,
    change: str,
) -> None:
    """Two reset emails wait (the mail server away). The first goes; then, before the
    second can, the link in it is over for its account, as the reset page would find it:
    the password was changed (with the first link), the account deactivated, or an admin
    corrected its address (the email would go to the old one). The second is not sent, and
    is dropped rather than failed: nobody needs it, so no failed email alarms staff."""
    from booking.notifications.models import OutboxStatus
    from booking.notifications.services import deliver_outbox_email, mail_delay
    from booking.staff.services import correct_staff_details, details_mark

    forgot(client, staff.coordinator.email)
    forgot(client, staff.coordinator.email)
    first, second = reset_emails(app)
    with app.app_context():
        assert deliver_outbox_email(first.id) is None
    if change == "password changed":
        assert choose_password(client, reset_path(first)).status_code == 302
    with app.app_context():
        admin = db.session.get(StaffUser, staff.admin.id)
        coordinator = db.session.get(StaffUser, staff.coordinator.id)
        if change == "deactivated":
            set_staff_active(coordinator, False, actor=admin)
        elif change == "address corrected":
            correct_staff_details(
                coordinator,
                full_name=coordinator.full_name,
                email="coordinator.new@example.com",
                shown=details_mark(coordinator),
                actor=admin,
            )
        assert deliver_outbox_email(second.id) is None
        assert mail_delay(now_utc(), now_utc() - timedelta(days=1)).failed == 0
    [sent] = reset_emails(app)
    assert (sent.id, sent.status) == (first.id, OutboxStatus.SENT)
    [received] = smtp.collector.wait_for(1)
    assert received.message["Message-ID"] == first.message_id
    assert len(smtp.received) == 1


def test_a_reset_link_stops_working_when_the_account_is_deactivated(
    app: Flask, client: FlaskClient, staff: Staff
) -> None:
    forgot(client, staff.coordinator.email)
    path = reset_path(reset_emails(app)[0])
    assert client.get(path, follow_redirects=True).status_code == 200
    with app.app_context():
        admin = db.session.get(StaffUser, staff.admin.id)
        set_staff_active(db.session.get(StaffUser, staff.coordinator.id), False, actor=admin)
    assert client.get("/staff/password/reset").status_code == 400  # the page opened before
    assert client.get(path).status_code == 400


def test_a_new_password_signs_out_every_other_session(app: Flask, staff: Staff) -> None:
    office, laptop, anonymous = app.test_client(), app.test_client(), app.test_client()
    for browser in (office, laptop):
        AuthActions(browser).attempt(staff.coordinator.email)
        assert signed_in(browser)

    forgot(anonymous, staff.coordinator.email)
    assert choose_password(anonymous, reset_path(reset_emails(app)[0])).status_code == 302

    assert not signed_in(office)
    assert not signed_in(laptop)
    AuthActions(laptop).login(email=staff.coordinator.email, password=NEW_PASSWORD)
    assert signed_in(laptop)


# Accounts (admins) ----------------------------------------------------------------------------


def create_account(client: FlaskClient, **fields: str) -> TestResponse:
    data = {
        "full_name": "Nora New",
        "email": "nora@example.com",
        "role": "coordinator",
        "password": "nora's long passphrase",
        **fields,
    }
    data["csrf_token"] = csrf_token(client, "/staff/accounts")
    return client.post("/staff/accounts", data=data)


def set_active(client: FlaskClient, user_id: int, active: bool) -> TestResponse:
    token = csrf_token(client, "/staff/accounts")
    return client.post(
        f"/staff/accounts/{user_id}/active",
        data={"csrf_token": token, "active": "1" if active else "0", "confirmed": "1"},
        follow_redirects=True,
    )


def test_an_admin_creates_a_coordinator_who_can_sign_in(
    app: Flask, client: FlaskClient, staff: Staff
) -> None:
    AuthActions(client).attempt(staff.admin.email)
    response = create_account(client)
    assert response.status_code == 302
    assert urlsplit(response.headers["Location"]).path == "/staff/accounts"
    assert "Account created for <bdi>Nora New</bdi>." in alerts(client.get("/staff/accounts"))

    nora = account(app, "nora@example.com")
    assert nora is not None and nora.role == StaffRole.COORDINATOR and nora.active
    assert nora.password_hash != "nora's long passphrase"
    (created,) = [row for row in audit(app, "staff_created") if row.target_id == str(nora.id)]
    assert created.actor_id == staff.admin.id
    assert created.target_id == str(nora.id)
    assert created.details["role"] == "coordinator"

    browser = app.test_client()
    AuthActions(browser).login(email="nora@example.com", password="nora's long passphrase")
    assert signed_in(browser)
    assert client.get("/staff/insights").status_code == 200  # a coordinator's page
    assert browser.get("/staff/accounts").status_code == 403  # not an admin's


def test_an_address_typed_with_spaces_around_it_is_taken_without_them(
    app: Flask, client: FlaskClient, staff: Staff
) -> None:
    """A browser trims an email box itself, not every client does: the spaces go."""
    AuthActions(client).attempt(staff.admin.email)
    assert create_account(client, email="  Nora@Example.com \t").status_code == 302
    nora = account(app, "nora@example.com")
    assert nora is not None
    page = client.get(f"/staff/accounts/{nora.id}/edit").get_data(as_text=True)
    mark = re.search(r'name="shown" type="hidden" value="([0-9a-f]*)"', page)[1]
    corrected = client.post(
        f"/staff/accounts/{nora.id}/edit",
        data={
            "csrf_token": csrf_token(client, f"/staff/accounts/{nora.id}/edit"),
            "shown": mark,
            "full_name": "Nora New",
            "email": " nora.new@example.com ",
        },
    )
    assert corrected.status_code == 302
    assert account(app, "nora.new@example.com") is not None


def test_creating_an_account_twice_says_why_and_creates_nothing(
    app: Flask, client: FlaskClient, staff: Staff
) -> None:
    AuthActions(client).attempt(staff.admin.email)
    assert create_account(client).status_code == 302
    duplicate = create_account(client, email="NORA@Example.com", full_name="Nora Again")
    assert duplicate.status_code == 422
    assert "An account with this email address already exists." in duplicate.get_data(as_text=True)
    short = create_account(client, email="other@example.com", password="too short")
    assert short.status_code == 422
    assert "Use at least 12 characters." in short.get_data(as_text=True)
    # No email could reach it (the mail library has no SMTPUTF8): refused, with the reason.
    accented = create_account(client, email="núria@example.com")
    assert accented.status_code == 422
    assert "cannot reach an address with accents" in accented.get_data(as_text=True)
    with app.app_context():
        emails = db.session.scalars(select(StaffUser.email).order_by(StaffUser.email)).all()
    assert emails == [
        "admin@example.com",
        "coord@example.com",
        "nora@example.com",
        "okafor@example.com",
        "weber@example.com",
    ]
    assert len(audit(app, "staff_created")) == 5  # the staff fixture's four and Nora


def test_an_admin_deactivates_and_reactivates_an_account(
    app: Flask, client: FlaskClient, staff: Staff
) -> None:
    coordinator = app.test_client()
    AuthActions(coordinator).attempt(staff.coordinator.email)
    assert signed_in(coordinator)
    AuthActions(client).attempt(staff.admin.email)

    page = set_active(client, staff.coordinator.id, False)
    assert "<bdi>Cora Coord</bdi> can no longer sign in." in alerts(page)
    assert not account(app, staff.coordinator.email).active  # type: ignore[union-attr]
    assert not signed_in(coordinator), "a deactivated account must be signed out at once"
    assert AuthActions(coordinator).attempt(staff.coordinator.email).status_code == 401
    (off,) = audit(app, "staff_deactivated")
    assert off.actor_id == staff.admin.id
    assert off.target_id == str(staff.coordinator.id)
    assert off.details == {"active": {"before": True, "after": False}}

    page = set_active(client, staff.coordinator.id, True)
    assert "<bdi>Cora Coord</bdi> can sign in again." in alerts(page)
    (on,) = audit(app, "staff_activated")
    assert on.actor_id == staff.admin.id
    assert on.details == {"active": {"before": False, "after": True}}
    AuthActions(coordinator).login(email=staff.coordinator.email)
    assert signed_in(coordinator)


def test_deactivating_a_specialist_warns_of_their_appointments_to_come(
    app: Flask, client: FlaskClient, clinic: Clinic
) -> None:
    """The appointments stay with the specialist who leaves: the admin is told to move them."""
    with app.app_context():
        book_first_open_time(clinic)
    AuthActions(client).attempt(clinic.admin.email)
    shown = " ".join(alerts(set_active(client, clinic.weber.id, False)))
    assert (
        "<bdi>Dr. Weber</bdi> still has 1 appointment to come: move it to another specialist"
        in shown
    )
    shown = " ".join(alerts(set_active(client, clinic.okafor.id, False)))
    assert "<bdi>Dr. Okafor</bdi> can no longer sign in." in shown and "to come" not in shown


def test_closing_a_location_warns_of_the_appointments_still_there(
    app: Flask, client: FlaskClient, clinic: Clinic
) -> None:
    """Closing stops new bookings at once; the patients already booked there are still
    expected (and reminded): the admin is told to move them."""
    from booking.scheduling.models import Location

    with app.app_context():
        location_id = book_first_open_time(clinic).appointment.location_id
        name = db.session.get(Location, location_id).display_name
        empty = Location(name="Annex", address="C 3", active=True)
        db.session.add(empty)
        db.session.commit()
        annex = empty.id
    AuthActions(client).attempt(clinic.admin.email)

    def close(location_id: int) -> str:
        token = csrf_token(client, "/staff/admin/locations")
        response = client.post(
            f"/staff/admin/locations/{location_id}/active",
            data={"csrf_token": token, "active": "0", "confirmed": "1"},
            follow_redirects=True,
        )
        return " ".join(alerts(response))

    shown = close(location_id)
    assert f"1 appointment to come is still at <bdi>{name}</bdi>" in shown
    assert "move it to another place or cancel it" in shown
    shown = close(annex)
    assert "Location updated." in shown and "to come" not in shown


def test_an_admin_cannot_deactivate_themselves(
    app: Flask, client: FlaskClient, staff: Staff
) -> None:
    AuthActions(client).attempt(staff.admin.email)
    page = set_active(client, staff.admin.id, False)
    assert "You cannot deactivate your own account." in alerts(page)
    assert account(app, staff.admin.email).active  # type: ignore[union-attr]
    assert signed_in(client)
    assert audit(app, "staff_deactivated") == []


# The create-admin command ---------------------------------------------------------------------


def test_create_admin_command(app: Flask, client: FlaskClient) -> None:
    runner = app.test_cli_runner()
    args = ["create-admin", "--email", "Boss@Example.com", "--name", "Bea Boss"]

    result = runner.invoke(args=[*args, "--password", "too short"])
    assert result.exit_code != 0
    assert "at least 12 characters" in result.output
    assert account(app, "boss@example.com") is None

    result = runner.invoke(args=[*args, "--password", "the boss's passphrase"])
    assert result.exit_code == 0, result.output
    assert "Administrator boss@example.com created." in result.output
    boss = account(app, "boss@example.com")
    assert boss is not None and boss.role == StaffRole.ADMIN and boss.active

    AuthActions(client).login(email="boss@example.com", password="the boss's passphrase")
    assert client.get("/staff/accounts").status_code == 200


@pytest.mark.parametrize(
    ("address", "said"),
    [
        ("josé@example.com", "accents or other special letters before the @"),
        ("boss.example.com", "Please enter a valid email address."),
    ],
)
def test_create_admin_refuses_an_address_the_forms_refuse(
    app: Flask, address: str, said: str
) -> None:
    """The command checks the address as the staff forms do: an account made with an
    accent before the @ would never get the clinic's emails (a password reset included)."""
    result = app.test_cli_runner().invoke(
        args=[
            "create-admin",
            "--email",
            address,
            "--name",
            "Bea Boss",
            "--password",
            "the boss's passphrase",
        ]
    )
    assert result.exit_code == 2, result.output  # click's usage error, not a traceback
    assert "Invalid value for '--email'" in result.output and said in result.output
    assert account(app, address.lower()) is None


# The audit trail ------------------------------------------------------------------------------


@pytest.fixture
def audit_row(app: Flask) -> int:
    with app.app_context():
        row = record("test_event", target_type="staff", target_id=1, details={"n": 1})
        db.session.commit()
        return row.id


def _stored(app: Flask, row_id: int) -> tuple[str, dict[str, Any]] | None:
    with app.app_context():
        row = db.session.get(AuditEvent, row_id)
        return None if row is None else (row.action, row.details)


def test_audit_rows_cannot_be_edited_or_deleted(app: Flask, audit_row: int) -> None:
    with app.app_context():
        row = db.session.get(AuditEvent, audit_row)
        row.action = "rewritten"
        with pytest.raises(AuditTrailIsAppendOnly):
            db.session.commit()
        db.session.rollback()

        row = db.session.get(AuditEvent, audit_row)
        db.session.delete(row)
        with pytest.raises(AuditTrailIsAppendOnly):
            db.session.commit()
        db.session.rollback()
    assert _stored(app, audit_row) == ("test_event", {"n": 1})


@pytest.mark.parametrize("statement", ["update", "delete"])
def test_audit_rows_cannot_be_changed_in_bulk(app: Flask, audit_row: int, statement: str) -> None:
    with app.app_context():
        stmt = (
            update(AuditEvent).values(action="rewritten")
            if statement == "update"
            else delete(AuditEvent)
        )
        try:
            with pytest.raises(AuditTrailIsAppendOnly):
                db.session.execute(stmt)
        finally:
            db.session.rollback()
        count = db.session.scalar(select(func.count()).select_from(AuditEvent))
    assert count and _stored(app, audit_row) == ("test_event", {"n": 1})


def test_create_admin_refuses_an_address_in_use_with_a_message(app: Flask, staff: Staff) -> None:
    result = app.test_cli_runner().invoke(
        args=[
            "create-admin",
            "--email",
            staff.coordinator.email.upper(),
            "--name",
            "Someone Else",
            "--password",
            "another long passphrase",
        ]
    )
    assert result.exit_code == 1
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "An account with this email address already exists." in result.output
    assert account(app, staff.coordinator.email).role == StaffRole.COORDINATOR  # type: ignore[union-attr]


class TestPerAccountThrottling:
    """Guessing one account's password from many addresses is slowed by the account's own
    count of failures; other accounts, and the right password after the window, still work."""

    @pytest.fixture
    def app_settings(self, app_settings: dict[str, Any]) -> dict[str, Any]:
        app_settings["LOGIN_ACCOUNT_RATE_LIMIT"] = "3 per 15 minutes"
        return app_settings

    @staticmethod
    def _from(app: Flask, address: str) -> FlaskClient:
        client = app.test_client()
        client.environ_base["REMOTE_ADDR"] = address
        return client

    def test_failures_from_many_addresses_count_against_the_account(
        self, app: Flask, staff: Staff
    ) -> None:
        for n in range(3):
            guesser = self._from(app, f"198.51.100.{n + 1}")
            assert (
                AuthActions(guesser).attempt(staff.coordinator.email, "guessing again").status_code
                == 401
            )
        fourth = self._from(app, "198.51.100.99")
        response = AuthActions(fourth).attempt(staff.coordinator.email, "guessing again")
        assert response.status_code == 429
        assert "Too many attempts" in response.get_data(as_text=True)
        # The account's owner waits too (that is the point), but another account does not.
        owner = AuthActions(self._from(app, "203.0.113.5"))
        assert owner.attempt(staff.coordinator.email).status_code == 429
        AuthActions(self._from(app, "203.0.113.5")).login(email=staff.admin.email)

    def test_others_guessing_do_not_keep_out_a_browser_that_signed_in_before(
        self, app: Flask, staff: Staff
    ) -> None:
        """Anyone who knows a coordinator's address could use up its count, from address
        after address, every fifteen minutes, and keep the coordinator out of the triage
        queue. The browser the coordinator signed in with before keeps a cookie naming the
        account: its attempts count for it alone. The password is still needed."""
        desk = self._from(app, "203.0.113.5")
        AuthActions(desk).login(email=staff.coordinator.email)
        logout(desk)
        for n in range(4):  # the account's count used up, then refused
            AuthActions(self._from(app, f"198.51.100.{n + 1}")).attempt(
                staff.coordinator.email, "guessing again"
            )
        assert (
            AuthActions(self._from(app, "198.51.100.9"))
            .attempt(staff.coordinator.email)
            .status_code
            == 429
        )
        # The desk's browser: a typo, then the right password.
        assert AuthActions(desk).attempt(staff.coordinator.email, "typo").status_code == 401
        AuthActions(desk).login(email=staff.coordinator.email)
        assert signed_in(desk)
        logout(desk)
        # Its own count still holds (three failures), and the cookie is for that account only.
        for _ in range(2):
            AuthActions(desk).attempt(staff.coordinator.email, "typo")
        assert AuthActions(desk).attempt(staff.coordinator.email).status_code == 429
        for n in range(3):
            AuthActions(self._from(app, f"198.51.100.{20 + n}")).attempt(
                staff.admin.email, "guessing again"
            )
        assert AuthActions(desk).attempt(staff.admin.email).status_code == 429

    def test_a_cookie_of_the_same_name_planted_first_does_not_undo_the_browsers_own(
        self, app: Flask, staff: Staff
    ) -> None:
        """A sibling site on the same domain can set ``staff_device`` for the sign-in page
        too, and the browser then sends the planted one first (a junk value, or one it took
        from its own sign-in to another account): every value is read, and the browser's
        own still counts its attempts apart from the guessers'."""
        elsewhere = self._from(app, "203.0.113.8")
        AuthActions(elsewhere).login(email=staff.admin.email)
        admins = elsewhere.get_cookie("staff_device", path="/staff/login")
        assert admins is not None
        desk = self._from(app, "203.0.113.5")
        desk.set_cookie("staff_device", "planted", path="/")
        desk.set_cookie("staff_device", admins.value, path="/staff")
        AuthActions(desk).login(email=staff.coordinator.email)
        logout(desk)
        for n in range(4):  # the account's count used up, then refused
            AuthActions(self._from(app, f"198.51.100.{n + 1}")).attempt(
                staff.coordinator.email, "guessing again"
            )
        assert AuthActions(desk).attempt(staff.coordinator.email, "typo").status_code == 401
        AuthActions(desk).login(email=staff.coordinator.email)
        assert signed_in(desk)

    def test_successful_sign_ins_do_not_count(self, app: Flask, staff: Staff) -> None:
        for _ in range(5):
            client = self._from(app, "203.0.113.7")
            AuthActions(client).login(email=staff.coordinator.email)
            logout(client)


def test_a_reset_asked_while_the_task_queue_is_down_says_to_try_again(
    app_settings: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    """The reset link is written by the worker: with the queue down (a Redis that does not
    answer) nothing would ever send it. The page says so and to try again, the same for an
    account and for an unknown address, instead of a bare error page or a promise of an
    email that never comes."""
    from tests.smtp import free_port

    app_settings.update(HUEY_BACKEND="redis", REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    app = create_app(app_settings)
    with app.app_context():
        db.create_all()
        make_staff("coordinator", "coord@example.com")
    try:
        pages = []
        for address in ("coord@example.com", "nobody@example.com"):
            client = app.test_client()
            token = csrf_token(client, "/staff/password/forgot")
            response = client.post(
                "/staff/password/forgot", data={"email": address, "csrf_token": token}
            )
            assert response.status_code == 503
            page = response.get_data(as_text=True)
            assert "We could not send a link just now" in page
            assert "<title>Error: Reset your password" in page  # said first on arrival
            assert "we have sent it a link" not in page
            pages.append(re.sub(r'value="[^"]*"', "", page))
        assert pages[0] == pages[1]
        assert "could not hand a password reset to the task queue" in caplog.text
    finally:
        with app.app_context():
            db.session.remove()
            if db.engine.dialect.name == "postgresql":
                db.drop_all()
            db.engine.dispose()
