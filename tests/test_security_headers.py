"""Security headers on every response (Flask-Talisman), and HTTPS in production."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from booking import create_app
from tests.factories import make_request, make_staff
from tests.support import (
    AuthActions,
    answer_red_flags,
    booking_warnings,
    csrf_token,
    open_step,
    post_step,
    session_cookie,
)

SITE = "https://clinic.example.com"
PAGES = ["/", "/request/start", "/privacy", "/staff/login", "/no-such-page"]


@pytest.mark.parametrize("path", PAGES)
def test_every_page_sends_the_security_headers(client: FlaskClient, path: str) -> None:
    assert_security_headers(client.get(path).headers)


def assert_security_headers(headers: Any) -> None:
    csp = dict(
        [*part.strip().split(" ", 1), ""][:2]
        for part in headers["Content-Security-Policy"].split(";")
    )
    assert csp["default-src"] == "'self'"
    assert csp["script-src"] == "'self'"  # no inline script, no third party
    assert csp["frame-ancestors"] == "'none'"
    assert "unsafe-inline" not in headers["Content-Security-Policy"]
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["X-Content-Type-Options"] == "nosniff"
    # Same-origin: another site gets no referrer at all; this site gets it, and every form
    # post then carries an Origin (under no-referrer Chromium sends "Origin: null").
    assert headers["Referrer-Policy"] == "same-origin"


def test_pages_use_no_inline_script_or_style(app: Flask, client: FlaskClient) -> None:
    with app.app_context():
        make_staff("admin", "admin@example.com")
    pages = ["/", "/request/start", "/info/treatments"]
    AuthActions(client).attempt("admin@example.com")
    pages += ["/staff/", "/staff/calendar", "/staff/insights", "/staff/admin/audit"]
    for path in pages:
        html = client.get(path).get_data(as_text=True)
        assert "<script>" not in html and "<script type" not in html, path
        assert " style=" not in html, path
        assert "javascript:" not in html, path


def test_the_page_of_text_not_saved_after_signing_out_sends_them_too(
    app: Flask, client: FlaskClient
) -> None:
    """A note posted after signing out (in another tab) is answered, 401, by a page of its
    own (``staff.auth.unsaved_text_page``) that shows the text back: the same headers, and
    no inline script or style."""
    with app.app_context():
        make_staff("coordinator", "chris@example.com")
        reference = make_request().reference
    AuthActions(client).attempt("chris@example.com")
    record = f"/staff/requests/{reference}"
    token = csrf_token(client, record)
    client.post("/staff/logout", data={"csrf_token": csrf_token(client, "/staff/queue")})
    response = client.post(
        f"{record}/notes",
        data={"note-csrf_token": token, "note-text": "Called the GP."},
        headers={"Referer": f"http://localhost{record}"},
    )
    assert response.status_code == 401
    html = response.get_data(as_text=True)
    assert "Signed out: what you wrote was not saved" in html
    assert_security_headers(response.headers)
    assert "<script>" not in html and "<script type" not in html
    assert " style=" not in html and "javascript:" not in html


def test_session_cookie_is_httponly_and_samesite(app: Flask, client: FlaskClient) -> None:
    with app.app_context():
        make_staff("admin", "admin@example.com")
    response = AuthActions(client).attempt("admin@example.com")
    assert "HttpOnly" in session_set_cookie(app, response)
    assert "SameSite=Lax" in session_set_cookie(app, response)


def session_set_cookie(app: Flask, response: TestResponse) -> str:
    """The response's Set-Cookie header for the session cookie (named by the settings)."""
    name = app.config["SESSION_COOKIE_NAME"]
    (cookie,) = [c for c in response.headers.getlist("Set-Cookie") if c.startswith(f"{name}=")]
    return cookie


@pytest.fixture
def production(production_config: type) -> Flask:
    return create_app("production")


def test_production_warns_at_start_up_while_the_privacy_notice_lacks_its_contacts(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, production: Flask
) -> None:
    import config

    monkeypatch.setattr(config.ProductionConfig, "PRIVACY_CONTACT_EMAIL", "")
    with booking_warnings(caplog):
        create_app("production")
    assert "privacy notice is incomplete: set PRIVACY_CONTACT_EMAIL" in caplog.text
    caplog.clear()
    monkeypatch.setattr(config.ProductionConfig, "PRIVACY_CONTACT_EMAIL", "privacy@clinic.example")
    monkeypatch.setattr(config.ProductionConfig, "SUPERVISORY_AUTHORITY", "The authority")
    with booking_warnings(caplog):
        create_app("production")
    assert "privacy notice is incomplete" not in caplog.text


def test_production_redirects_to_https_and_sends_hsts(production: Flask) -> None:
    client = production.test_client()
    plain = client.get("/privacy", base_url="http://clinic.example.com")
    assert plain.status_code in (301, 302)
    assert plain.headers["Location"].startswith("https://clinic.example.com/privacy")
    secure = client.get("/privacy", base_url="https://clinic.example.com")
    assert secure.status_code == 200
    assert "max-age=31536000" in secure.headers["Strict-Transport-Security"]
    # Behind the proxy: it says the client used https.
    proxied = client.get(
        "/privacy",
        base_url="http://clinic.example.com",
        headers={"X-Forwarded-Proto": "https"},
    )
    assert proxied.status_code == 200


def test_production_session_cookies_are_secure(production: Flask) -> None:
    assert production.config["SESSION_COOKIE_SECURE"] is True
    assert production.config["SESSION_COOKIE_HTTPONLY"] is True


def test_production_session_cookie_is_one_only_this_site_can_set(production: Flask) -> None:
    """``__Host-``: a browser keeps the cookie only as it is sent here (Secure, Path=/, no
    Domain), and no other site of the domain can set one of that name."""
    response = production.test_client().get("/privacy?lang=es", base_url=SITE)
    cookie = session_set_cookie(production, response)
    attributes = [part.strip() for part in cookie.split(";")]
    assert attributes[0].startswith("__Host-session=")
    assert "Secure" in attributes and "Path=/" in attributes
    assert not any(part.lower().startswith("domain") for part in attributes)
    assert "HttpOnly" in attributes and "SameSite=Lax" in attributes


def test_production_reads_no_session_cookie_planted_by_another_site_of_the_domain(
    app: Flask, production_config: type, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sibling site (anything.clinic-domain) can set a cookie named ``session`` for the
    whole domain, holding a session the site gave its planter: their draft, which would
    then show the planter's answers to the patient and collect the patient's into a draft
    the planter can open. Production does not read a cookie of that name."""
    monkeypatch.setattr(production_config, "HUEY_BACKEND", "memory")
    production = create_app("production")
    planter, patient = production.test_client(), production.test_client()
    for browser in (planter, patient):
        # Through the TLS proxy, as a browser sends forms (booking.security.check_same_origin).
        browser.environ_base |= {
            "HTTP_X_FORWARDED_PROTO": "https",
            "HTTP_SEC_FETCH_SITE": "same-origin",
        }
    assert answer_red_flags(planter).status_code == 303
    assert post_step(planter, "about").status_code == 303
    assert "Mustermann" in open_step(planter, "about")  # the planter's own draft

    patient.set_cookie("session", session_cookie(planter).value)
    page = patient.get("/request/steps/about", follow_redirects=True).get_data(as_text=True)
    assert "Mustermann" not in page


class TestSubmissionRateLimit:
    @pytest.fixture
    def app_settings(self, app_settings: dict[str, Any]) -> dict[str, Any]:
        app_settings["SUBMIT_RATE_LIMIT"] = "2 per minute"
        return app_settings

    def test_too_many_submissions_get_the_friendly_429_page(self, client: FlaskClient) -> None:
        from tests.support import post_request

        assert post_request(client).status_code == 303
        assert post_request(client).status_code == 303
        response = post_request(client)
        assert response.status_code == 429
        assert "Too many attempts" in response.get_data(as_text=True)


class TestDraftAndUploadRateLimits:
    """Starting a request and adding files are limited per address too: without limits one
    script could fill the disk with drafts of ten 20 MB files each."""

    @pytest.fixture
    def app_settings(self, app_settings: dict[str, Any]) -> dict[str, Any]:
        app_settings["SUBMIT_RATE_LIMIT"] = "3 per minute"
        app_settings["UPLOAD_RATE_LIMIT"] = "2 per minute"
        return app_settings

    def test_starting_requests_is_limited(self, app: Flask) -> None:
        from tests.support import answer_red_flags

        for _ in range(3):  # each a new browser: a new draft
            assert answer_red_flags(app.test_client()).status_code == 303
        response = answer_red_flags(app.test_client())
        assert response.status_code == 429
        assert "Too many attempts" in response.get_data(as_text=True)

    def test_uploads_are_limited_and_the_script_gets_the_message(
        self, app: Flask, client: FlaskClient
    ) -> None:
        from sqlalchemy import select

        from booking.extensions import db
        from booking.requests.drafts import DraftDocument
        from tests.support import answer_red_flags, open_step, page_token, pdf_bytes, upload

        assert answer_red_flags(client).status_code == 303
        token = page_token(open_step(client, "documents"))
        for n in range(2):
            scan = (pdf_bytes(f"Scan {n}"), f"scan-{n}.pdf")
            assert upload(client, scan, token=token).status_code == 303
        refused = upload(client, (pdf_bytes(), "scan-2.pdf"), token=token)
        assert refused.status_code == 429
        assert "the documents already added are saved" in refused.get_data(as_text=True)
        # The upload script asks for JSON: it shows the message next to the file.
        scripted = client.post(
            "/request/steps/documents",
            data={"csrf_token": token, "files": [(io.BytesIO(pdf_bytes()), "scan-3.pdf")]},
            content_type="multipart/form-data",
            headers={"Accept": "application/json"},
        )
        assert scripted.status_code == 429
        assert scripted.get_json()["ok"] is False
        assert "the documents already added are saved" in scripted.get_json()["message"]
        with app.app_context():
            names = sorted(db.session.scalars(select(DraftDocument.original_name)))
        assert names == ["scan-0.pdf", "scan-1.pdf"]
        # The other steps are not counted against it.
        assert "csrf_token" in open_step(client, "history")


class TestSameOriginPosts:
    """Over HTTPS a form post must show it came from this site (Origin, Sec-Fetch-Site or a
    Referer); the CSRF token is checked as well, whatever the headers say."""

    SITE = "https://clinic.example.com"

    @pytest.fixture
    def secure(self, app: Flask, production: Flask) -> Iterator[FlaskClient]:
        # ``app`` makes the tables and empties them afterwards (PostgreSQL keeps its schema).
        from booking.extensions import db

        with production.app_context():
            make_staff("coordinator", "coordinator@example.com")
        yield production.test_client()
        with production.app_context():
            db.session.remove()
            db.engine.dispose()

    def _login(self, client: FlaskClient, **headers: str):
        from tests.factories import PASSWORD

        token = csrf_token(client, "/staff/login", base_url=self.SITE)
        return client.post(
            "/staff/login",
            base_url=self.SITE,
            data={"email": "coordinator@example.com", "password": PASSWORD, "csrf_token": token},
            headers=headers,
        )

    @pytest.mark.parametrize(
        "headers",
        [
            {"Origin": "https://clinic.example.com"},
            {"Sec-Fetch-Site": "same-origin"},
            {"Referer": "https://clinic.example.com/staff/login"},
            {"Origin": "https://clinic.example.com", "Referer": "https://elsewhere.example/"},
        ],
    )
    def test_a_post_from_this_site_is_accepted(
        self, secure: FlaskClient, headers: dict[str, str]
    ) -> None:
        response = self._login(secure, **headers)
        assert response.status_code == 302, response.get_data(as_text=True)

    @pytest.mark.parametrize(
        "headers",
        [
            {},  # nothing shows where it came from
            {"Origin": "null"},  # what Chromium sends under Referrer-Policy: no-referrer
            {"Origin": "https://evil.example"},
            {"Origin": "http://clinic.example.com"},  # a downgraded page
            {"Sec-Fetch-Site": "cross-site"},
            {"Sec-Fetch-Site": "same-site"},  # a sibling subdomain is another application
            {"Referer": "https://evil.example/staff/login"},
        ],
    )
    def test_a_post_from_elsewhere_is_refused_with_the_friendly_page(
        self, secure: FlaskClient, headers: dict[str, str]
    ) -> None:
        response = self._login(secure, **headers, **{"X-Request-ID": "a1b2c3d4e5f60718"})
        assert response.status_code == 400
        assert "This form has expired" in response.get_data(as_text=True)
        # The refusal keeps the proxy's request id, so both logs can be matched.
        assert response.headers["X-Request-ID"] == "a1b2c3d4e5f60718"

    def test_the_token_is_still_checked_when_the_origin_is_right(self, secure: FlaskClient) -> None:
        response = secure.post(
            "/staff/login",
            base_url=self.SITE,
            data={"email": "coordinator@example.com", "password": "x", "csrf_token": "forged"},
            headers={"Origin": self.SITE},
        )
        assert response.status_code == 400

    def test_a_foreign_origin_is_refused_over_plain_http_too(self, client: FlaskClient) -> None:

        token = csrf_token(client, "/staff/login")
        response = client.post(
            "/staff/login",
            data={"email": "a@example.com", "password": "x", "csrf_token": token},
            headers={"Origin": "https://evil.example"},
        )
        assert response.status_code == 400
