"""Real-browser fixtures: the app served over HTTP in a thread, and Debian's chromium.

Playwright cannot download its own browser here, so pytest-playwright is pointed at
``/usr/bin/chromium``; without it every browser test is skipped with the command to install it.
Each test gets a fresh app on its own free port with its own SQLite file and upload folder,
so tests stay independent and can run in parallel under pytest-xdist.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from playwright.sync_api import BrowserContext, Page, expect
from pytest_playwright.pytest_playwright import CreateContextCallback
from werkzeug.serving import BaseWSGIServer, make_server

from booking import create_app
from booking.extensions import db
from tests.support import pdf_bytes

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# Everything here answers within milliseconds: fail in seconds, not after Playwright's 30 s.
TIMEOUT_MS = 10_000
PHONE = {
    "viewport": {"width": 390, "height": 844},
    "is_mobile": True,
    "has_touch": True,
    "device_scale_factor": 3,
}

expect.set_options(timeout=TIMEOUT_MS)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    """pytest-playwright's launch options (--headed, --slowmo...) plus Debian's chromium."""
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed: apt-get install -y chromium")
    return {
        **browser_type_launch_args,
        "executable_path": str(CHROMIUM),
        "args": CHROMIUM_ARGS,
    }


@pytest.fixture
def context(new_context: CreateContextCallback) -> BrowserContext:
    context = new_context()
    context.set_default_timeout(TIMEOUT_MS)
    return context


@pytest.fixture
def phone_page(new_context: CreateContextCallback) -> Page:
    """A page in a phone-sized browser (390 x 844 CSS pixels, touch)."""
    context = new_context(**PHONE)
    context.set_default_timeout(TIMEOUT_MS)
    return context.new_page()


@dataclass(frozen=True)
class LiveServer:
    app: Flask
    url: str

    def __call__(self, path: str) -> str:
        return self.url + path


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[LiveServer]:
    """The real app on 127.0.0.1 on a free port (port 0: the OS picks one)."""
    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'e2e.sqlite3'}",
            "UPLOAD_DIR": str(tmp_path / "uploads"),
            "DEV_MAILDIR": str(tmp_path / "mail"),
            "STAFF_NOTIFICATION_EMAIL": "coordinators@example.com",
            "CLINIC_NAME": "Test Spine Clinic",
        }
    )
    with app.app_context():
        db.create_all()
    server: BaseWSGIServer = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="e2e-server", daemon=True)
    thread.start()
    try:
        yield LiveServer(app=app, url=f"http://127.0.0.1:{server.server_port}")
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


@pytest.fixture
def pdf_file(tmp_path: Path) -> Path:
    """A real PDF on disk, as a patient would pick it in the file dialog."""
    path = tmp_path / "mri-report.pdf"
    path.write_bytes(pdf_bytes("MRI lumbar spine"))
    return path
