"""Every page whose address holds a token (a patient's private link, a follow-up link, a
"finish later" link, a staff password-reset link) is rate limited per network address, as
``MANAGE_RATE_LIMIT`` says: tries at tokens are slow, and refused with the friendly page."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask

TOKEN_PAGES = [
    "/manage/open/{token}",
    "/follow-up/open/{token}",
    "/request/resume/{token}",
    "/staff/password/reset/{token}",
]


@pytest.fixture
def app_settings(app_settings: dict[str, Any]) -> dict[str, Any]:
    app_settings["MANAGE_RATE_LIMIT"] = "3 per minute"
    return app_settings


@pytest.mark.parametrize("page", TOKEN_PAGES)
def test_the_fourth_token_tried_in_a_minute_gets_the_friendly_429_page(
    app: Flask, page: str
) -> None:
    client = app.test_client()
    for n in range(3):
        tried = client.get(page.format(token=f"not-a-token-{n}"))
        assert tried.status_code in (400, 404), tried.status_code
    refused = client.get(page.format(token="not-a-token-3"))
    assert refused.status_code == 429
    text = refused.get_data(as_text=True)
    assert "Too many attempts" in text and "Please wait a minute and try again." in text
    assert "Traceback" not in text
    if page.startswith("/staff/"):  # in the staff frame, with the way back to signing in
        assert 'href="/staff/login">Back to staff sign-in</a>' in text
    # The refused address holds a token too: it is not passed on to other sites.
    assert refused.headers["Referrer-Policy"] == "no-referrer"
    # Another network address is not held up.
    other = app.test_client()
    other.environ_base["REMOTE_ADDR"] = "10.2.0.1"
    assert other.get(page.format(token="not-a-token-4")).status_code in (400, 404)
