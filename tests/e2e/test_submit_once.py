"""A form sent twice by a double click is stored once (booking/static/js/submit-once.js).

A note cannot be deleted, so a double click on "Save the note" left two for good; a double
click on "Confirm and email the patient" answered the second click with "This request
changed while you had it open", the page the browser shows last."""

from __future__ import annotations

import time
from typing import Any

import pytest
from flask import Flask
from playwright.sync_api import Page, expect
from sqlalchemy import func, select

from booking.extensions import db
from booking.requests.events import EventKind, RequestEvent
from tests.e2e.conftest import LiveServer
from tests.e2e.pages import sign_in
from tests.factories import make_request, make_staff

pytestmark = pytest.mark.e2e


def slow_posts(app: Flask, seconds: float, monkeypatch: pytest.MonkeyPatch) -> None:
    """Posts answered ``seconds`` late, as on a slow line or a busy server: a second click
    comes while the first post is being handled (a quick double click is merged by the
    browser before the first post leaves)."""
    handle = app.wsgi_app

    def slowly(environ: dict[str, Any], start_response: Any) -> Any:
        if environ["REQUEST_METHOD"] == "POST":
            time.sleep(seconds)
        return handle(environ, start_response)

    monkeypatch.setattr(app, "wsgi_app", slowly)


def test_a_second_click_on_save_the_note_stores_one_note(
    page: Page, live_server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    with live_server.app.app_context():
        make_staff("coordinator", "chris@example.com")
        reference = make_request(full_name="Nora Note", email="nora@example.com").reference
    sign_in(page, live_server, "chris@example.com")
    page.goto(live_server(f"/staff/requests/{reference}"))
    page.get_by_label("Internal note").fill("Called the GP: the MRI report follows.")
    slow_posts(live_server.app, 1.0, monkeypatch)
    # The second click 300 ms after the first, while its post is at the server (the page
    # stays until the answer comes: Playwright's own click would wait for the next page).
    page.evaluate(
        """() => {
            const save = [...document.querySelectorAll("button")].find(
                (button) => button.textContent.trim() === "Save the note");
            save.click();
            window.setTimeout(() => save.click(), 300);
        }"""
    )
    expect(page.get_by_text("Note added.")).to_be_visible()
    page.reload()  # whatever a second post might still have stored by now
    expect(page.get_by_text("Called the GP: the MRI report follows.")).to_have_count(1)
    with live_server.app.app_context():
        notes = db.session.scalar(
            select(func.count())
            .select_from(RequestEvent)
            .where(RequestEvent.kind == EventKind.NOTE)
        )
    assert notes == 1
