"""Real-browser fixtures shared by every browser test (one copy, used by all); what a user
does on the pages is in ``tests/e2e/pages.py``.

* The browser: pytest-playwright pointed at Debian's ``/usr/bin/chromium`` (Playwright cannot
  download its own here). Without it every browser test is skipped with the command that
  installs it (``make browser`` does so when it runs as root).
* The clinic: the real app served over HTTP in a thread, on a free port, with its own SQLite
  file, upload folder, Huey queue file (so a real ``flask worker`` process can share it) and a
  real SMTP server (``tests/smtp.py``). Each test gets its own, so tests stay independent and
  can run in parallel under pytest-xdist; a module may share one (``serving``) where its tests
  only read.
"""

from __future__ import annotations

import os
import re
import subprocess
import threading
import time as clock
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from playwright.sync_api import Browser, BrowserContext, Page, expect
from pytest_playwright.pytest_playwright import CreateContextCallback
from werkzeug.serving import BaseWSGIServer, make_server

from booking import create_app
from booking.extensions import db
from tests.factories import make_appointment_type, make_hours, make_location, make_staff
from tests.smtp import Received, SmtpServer
from tests.support import pdf_bytes, start_worker, stop_worker

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
NO_CHROMIUM = (
    "Debian's chromium is not installed at /usr/bin/chromium, and Playwright cannot download "
    "its own browser here: run `make browser` as root (apt-get install -y chromium)"
)
# Every wait (actions, navigations, expect) may take this long: pages answer in milliseconds,
# but a busy 2-core machine running the suite in parallel can stall a browser for seconds.
# Set once here; tests give no shorter timeouts of their own.
TIMEOUT_MS = 30_000
PHONE = {
    "viewport": {"width": 390, "height": 844},
    "is_mobile": True,
    "has_touch": True,
    "device_scale_factor": 3,
}
PHONE_WIDTH = PHONE["viewport"]["width"]
PHONE_HEIGHT = PHONE["viewport"]["height"]
EMAIL_TIMEOUT_S = 60
CLINIC_EMAIL = "coordinators@example.com"
SPECIALIST = "Dr. Lena Weber"
LOCATION = "Spine centre west"
ADDRESS = "Kantstr. 20, Berlin"
EVALUATION = "New-patient spine evaluation (45 minutes)"
IMAGING_REVIEW = "Imaging review (30 minutes)"
MANAGE_LINK_RE = re.compile(r"^http://127\.0\.0\.1:\d+/manage/\S+$", re.MULTILINE)


expect.set_options(timeout=TIMEOUT_MS)


# --- the browser -----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    """pytest-playwright's launch options (--headed, --slowmo...) plus Debian's chromium."""
    if not CHROMIUM.exists():
        # CI (.ci/run) installs the browser and sets this: there a missing one is a failure.
        if os.environ.get("E2E_REQUIRE_BROWSER") == "1":
            pytest.fail(NO_CHROMIUM, pytrace=False)
        pytest.skip(NO_CHROMIUM)
    return {
        **browser_type_launch_args,
        "executable_path": str(CHROMIUM),
        "args": CHROMIUM_ARGS,
    }


# The app answers in the browser's language, and date fields take the keys in its order:
# English (United States), whatever the machine's locale.
LOCALE = "en-US"


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict[str, Any]) -> dict[str, Any]:
    return {**browser_context_args, "locale": LOCALE}


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


@contextmanager
def browser_page(browser: Browser, **context_options: Any) -> Iterator[Page]:
    """A page in a fresh browser context, for fixtures wider than one test."""
    context = browser.new_context(**{"locale": LOCALE, **context_options})
    context.set_default_timeout(TIMEOUT_MS)
    try:
        yield context.new_page()
    finally:
        context.close()


# --- the clinic: app, server, mail server, worker --------------------------------------------


@dataclass(frozen=True)
class LiveServer:
    app: Flask
    url: str
    database_url: str
    huey_path: str
    huey_name: str

    def __call__(self, path: str) -> str:
        return self.url + path

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.app.config["CLINIC_TIMEZONE"])


def build_app(directory: Path, mail_port: int, **settings: Any) -> Flask:
    """A test app whose database, uploads and task queue are files in ``directory``, so a
    ``flask worker`` process can share them, sending its email to ``mail_port``."""
    directory.mkdir(parents=True, exist_ok=True)
    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{directory / 'e2e.sqlite3'}",
            "UPLOAD_DIR": str(directory / "uploads"),
            "DEV_MAILDIR": str(directory / "mail"),
            "STAFF_NOTIFICATION_EMAIL": CLINIC_EMAIL,
            "CLINIC_NAME": "Test Spine Clinic",
            "HUEY_BACKEND": "sqlite",
            "HUEY_SQLITE_PATH": str(directory / "huey.sqlite3"),
            "HUEY_NAME": f"e2e-{uuid.uuid4().hex}",
            "MAIL_PORT": mail_port,
            **settings,
        }
    )
    with app.app_context():
        db.create_all()
    return app


@contextmanager
def serving(app: Flask) -> Iterator[LiveServer]:
    """``app`` on 127.0.0.1 on a free port (port 0: the OS picks one), until the block ends."""
    server: BaseWSGIServer = make_server("127.0.0.1", 0, app, threaded=True)
    url = f"http://127.0.0.1:{server.server_port}"
    # The links in the emails must lead back to this server: the patient follows them.
    app.config["PUBLIC_BASE_URL"] = url
    thread = threading.Thread(target=server.serve_forever, name="e2e-server", daemon=True)
    thread.start()
    try:
        yield LiveServer(
            app=app,
            url=url,
            database_url=app.config["SQLALCHEMY_DATABASE_URI"],
            huey_path=app.config["HUEY_SQLITE_PATH"],
            huey_name=app.config["HUEY_NAME"],
        )
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


@pytest.fixture
def live_server(tmp_path: Path, smtp: SmtpServer) -> Iterator[LiveServer]:
    """The real app served over HTTP for one test, its email going to ``smtp``."""
    with serving(build_app(tmp_path / "clinic", smtp.port)) as server:
        yield server


@contextmanager
def running_worker(server: LiveServer, mail_port: int) -> Iterator[subprocess.Popen]:
    """A real ``flask worker`` process on the server's queue, stopped with Ctrl-C (SIGINT) at
    the end; its log is printed so a failing test shows it."""
    process = start_worker(
        {
            "DATABASE_URL": server.database_url,
            "HUEY_SQLITE_PATH": server.huey_path,
            "HUEY_NAME": server.huey_name,
            "MAIL_SERVER": "127.0.0.1",
            "MAIL_PORT": str(mail_port),
            "PUBLIC_BASE_URL": server.url,
        }
    )
    try:
        yield process
    finally:
        output = stop_worker(process)
        # pytest shows this output with a failing test.
        print(output)


@pytest.fixture
def worker(live_server: LiveServer, smtp: SmtpServer) -> Iterator[subprocess.Popen]:
    with running_worker(live_server, smtp.port) as process:
        yield process


def wait_for_email(
    smtp: SmtpServer, subject: str, worker: subprocess.Popen | None = None
) -> Received:
    """The one message with ``subject`` that reached the SMTP server."""
    deadline = clock.monotonic() + EMAIL_TIMEOUT_S
    while clock.monotonic() < deadline:
        with smtp.collector.lock:
            found = [r for r in smtp.received if r.message["Subject"] == subject]
        if found:
            [received] = found
            return received
        if worker is not None:
            assert worker.poll() is None, f"the worker exited with {worker.returncode}"
        clock.sleep(0.1)
    raise AssertionError(f"no email {subject!r} within {EMAIL_TIMEOUT_S} s")


def text_of(received: Received) -> str:
    """The plain-text body, its SMTP line endings (CRLF) read as plain lines."""
    body = received.message.get_body(preferencelist=("plain",)).get_content()
    return "\n".join(body.splitlines())


def manage_link(received: Received) -> str:
    """The private link in the patient's email."""
    [link] = MANAGE_LINK_RE.findall(text_of(received))
    return link


@pytest.fixture
def pdf_file(tmp_path: Path) -> Path:
    """A real PDF on disk, as a patient would pick it in the file dialog."""
    path = tmp_path / "mri-report.pdf"
    path.write_bytes(pdf_bytes("MRI lumbar spine"))
    return path


@dataclass(frozen=True)
class Schedule:
    specialist_id: int
    location_id: int


def seed_schedule(
    server: LiveServer, hours: tuple[str, str] | None = ("09:00", "13:00")
) -> Schedule:
    """One specialist at one location and two appointment types; with ``hours``, the
    specialist works them every day (mornings: every day offers times, the pages stay short)."""
    with server.app.app_context():
        weber = make_staff("specialist", "lena.weber@example.com", full_name=SPECIALIST)
        west = make_location(LOCATION, ADDRESS)
        make_appointment_type("New-patient spine evaluation", 45)
        make_appointment_type("Imaging review", 30)
        if hours:
            make_hours(weber, west, range(7), *hours)
        return Schedule(weber.id, west.id)
