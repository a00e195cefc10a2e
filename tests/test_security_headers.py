"""Security headers on every response (Flask-Talisman), and HTTPS in production."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from booking import create_app
from booking.crypto import new_key
from tests.factories import login, make_staff

PAGES = ["/", "/request", "/privacy", "/staff/login", "/no-such-page"]


@pytest.mark.parametrize("path", PAGES)
def test_every_page_sends_the_security_headers(client: FlaskClient, path: str) -> None:
    response = client.get(path)
    headers = response.headers
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
    assert headers["Referrer-Policy"] == "no-referrer"


def test_pages_use_no_inline_script_or_style(app: Flask, client: FlaskClient) -> None:
    with app.app_context():
        make_staff("admin", "admin@example.com")
    pages = ["/", "/request", "/info/treatments"]
    login(client, "admin@example.com")
    pages += ["/staff/", "/staff/calendar", "/staff/insights", "/staff/admin/audit"]
    for path in pages:
        html = client.get(path).get_data(as_text=True)
        assert "<script>" not in html and "<script type" not in html, path
        assert " style=" not in html, path
        assert "javascript:" not in html, path


def test_session_cookie_is_httponly_and_samesite(app: Flask, client: FlaskClient) -> None:
    with app.app_context():
        make_staff("admin", "admin@example.com")
    response = login(client, "admin@example.com")
    (cookie,) = [c for c in response.headers.getlist("Set-Cookie") if c.startswith("session=")]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


@pytest.fixture
def production(monkeypatch: pytest.MonkeyPatch, app_settings: dict[str, Any]) -> Flask:
    import config

    monkeypatch.setattr(config.ProductionConfig, "SECRET_KEY", "x" * 64)
    monkeypatch.setattr(config.ProductionConfig, "ENCRYPTION_KEY", new_key())
    monkeypatch.setattr(
        config.ProductionConfig, "SQLALCHEMY_DATABASE_URI", app_settings["SQLALCHEMY_DATABASE_URI"]
    )
    return create_app("production")


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
