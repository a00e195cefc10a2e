"""A coordinator works the triage queue in a real browser while a real ``flask worker`` process
delivers the patient's confirmation, with its calendar invitation, to a real SMTP server.

Controls are found the way a screen-reader user finds them: fields by their label, buttons and
links by their name.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time as clock
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from icalendar import Calendar
from playwright.sync_api import Page, expect
from werkzeug.serving import make_server

from booking import create_app
from booking.extensions import db
from tests.e2e.conftest import PHONE, LiveServer
from tests.factories import (
    PASSWORD,
    make_appointment_type,
    make_hours,
    make_location,
    make_request,
    make_staff,
)
from tests.smtp import Received, SmtpServer

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
PHONE_WIDTH = PHONE["viewport"]["width"]
EMAIL_TIMEOUT_S = 60
SPECIALIST = "Dr. Lena Weber"
LOCATION = "Spine centre west"


@dataclass(frozen=True)
class Seeded:
    reference: str
    name: str
    email: str


@dataclass(frozen=True)
class Clinic:
    server: LiveServer
    database_url: str
    huey_path: str
    huey_name: str
    coordinator: str  # the coordinator's email address
    urgent: tuple[Seeded, ...]  # oldest first
    routine: tuple[Seeded, ...]  # oldest first


def _seed(hours_ago: float, name: str, *, urgent: bool) -> Seeded:
    email = f"{name.split()[0].lower()}@example.com"
    consultation = make_request(
        full_name=name, email=email, red_flags={"bladder_bowel"} if urgent else None
    )
    # Routine requests waited longest: only triage can put the urgent ones first.
    consultation.created_at = datetime.now(UTC) - timedelta(hours=hours_ago)
    db.session.commit()
    return Seeded(consultation.reference, name, email)


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer().start()
    yield server
    server.stop()


@pytest.fixture
def clinic(tmp_path: Path, smtp: SmtpServer) -> Iterator[Clinic]:
    """The app served over HTTP with a Huey queue in a SQLite file a worker process can share,
    seeded with staff, a location, two routine and two urgent requests."""
    database_url = f"sqlite:///{tmp_path / 'e2e.sqlite3'}"
    huey_path, huey_name = str(tmp_path / "huey.sqlite3"), f"e2e-{uuid.uuid4().hex}"
    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": database_url,
            "UPLOAD_DIR": str(tmp_path / "uploads"),
            "DEV_MAILDIR": str(tmp_path / "mail"),
            "STAFF_NOTIFICATION_EMAIL": "coordinators@example.com",
            "CLINIC_NAME": "Test Spine Clinic",
            "HUEY_BACKEND": "sqlite",
            "HUEY_SQLITE_PATH": huey_path,
            "HUEY_NAME": huey_name,
            "MAIL_PORT": smtp.port,
        }
    )
    with app.app_context():
        db.create_all()
        coordinator = make_staff("coordinator", "chris.coordinator@example.com").email
        weber = make_staff("specialist", "lena.weber@example.com", full_name=SPECIALIST)
        make_location("Main clinic")
        west = make_location(LOCATION, "Kantstr. 20, Berlin")
        make_appointment_type("New-patient spine evaluation", 45)
        make_appointment_type("Imaging review", 30)
        make_hours(weber, west, range(7), "08:00", "18:00")
        routine = (
            _seed(5, "Rita Routine", urgent=False),
            _seed(4, "Otto Ordinary", urgent=False),
        )
        urgent = (_seed(3, "Ulla Urgent", urgent=True), _seed(1, "Nora Newest", urgent=True))

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="e2e-server", daemon=True)
    thread.start()
    try:
        yield Clinic(
            server=LiveServer(app=app, url=f"http://127.0.0.1:{server.server_port}"),
            database_url=database_url,
            huey_path=huey_path,
            huey_name=huey_name,
            coordinator=coordinator,
            urgent=urgent,
            routine=routine,
        )
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


@pytest.fixture
def worker(clinic: Clinic, smtp: SmtpServer) -> Iterator[subprocess.Popen]:
    """A real ``flask worker`` on the clinic's queue, stopped with Ctrl-C (SIGINT) at the end;
    its log is printed so a failing test shows it."""
    env = {
        **os.environ,
        "SPINECONSULT_ENV": "development",
        "FLASK_APP": "wsgi",
        "DATABASE_URL": clinic.database_url,
        "HUEY_SQLITE_PATH": clinic.huey_path,
        "HUEY_NAME": clinic.huey_name,
        "REDIS_URL": "",
        "MAIL_SERVER": "127.0.0.1",
        "MAIL_PORT": str(smtp.port),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "flask", "worker", "--workers", "1"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        yield process
    finally:
        process.send_signal(signal.SIGINT)
        try:
            output = process.communicate(timeout=20)[0]
        except subprocess.TimeoutExpired:
            process.kill()
            output = process.communicate()[0]
        # pytest shows this output with a failing test.
        print(output.decode(errors="replace"))


def wait_for_email(smtp: SmtpServer, subject: str, worker: subprocess.Popen) -> Received:
    """The one message with ``subject`` (the seeded requests' own emails arrive too)."""
    deadline = clock.monotonic() + EMAIL_TIMEOUT_S
    while clock.monotonic() < deadline:
        with smtp.collector.lock:
            found = [r for r in smtp.received if r.message["Subject"] == subject]
        if found:
            [received] = found
            return received
        assert worker.poll() is None, f"the worker exited with {worker.returncode}"
        clock.sleep(0.1)
    raise AssertionError(f"no email {subject!r} within {EMAIL_TIMEOUT_S} s")


def sign_in(page: Page, clinic: Clinic) -> None:
    page.goto(clinic.server("/staff/"))
    expect(page).to_have_url(re.compile(r"/staff/login(\?|$)"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Staff sign-in")
    page.get_by_label("Email address", exact=True).fill(clinic.coordinator)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(clinic.server("/staff/"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Triage queue")


def page_width(page: Page) -> int:
    # Measured before the stylesheets arrive, an unstyled table overflows: wait for them.
    page.wait_for_load_state("load")
    return page.evaluate("document.documentElement.scrollWidth")


def appointment_day(clinic_tz: ZoneInfo) -> date:
    """Two weeks ahead at the clinic: always in the future, and no clock change at 10:30."""
    return datetime.now(clinic_tz).date() + timedelta(days=14)


def test_coordinator_confirms_the_newest_urgent_request_and_the_patient_gets_an_invitation(
    page: Page, clinic: Clinic, smtp: SmtpServer, worker: subprocess.Popen
) -> None:
    sign_in(page, clinic)

    # Urgent first, then the oldest waiting.
    in_order = [*clinic.urgent, *clinic.routine]
    queue = page.get_by_role("table", name="Requests, urgent first, then the oldest waiting")
    expect(queue.get_by_role("rowheader")).to_have_text([s.reference for s in in_order])
    rows = queue.get_by_role("row").filter(has=page.get_by_role("rowheader"))
    for row, seeded, triage in zip(
        rows.all(), in_order, ["URGENT"] * 2 + ["routine"] * 2, strict=True
    ):
        expect(row).to_contain_text(seeded.name)
        expect(row.get_by_role("cell").first).to_have_text(triage)

    newest = clinic.urgent[-1]
    queue.get_by_role("link", name=newest.reference, exact=True).click()

    expect(page).to_have_url(clinic.server(f"/staff/requests/{newest.reference}"))
    expect(page.get_by_role("heading", level=1)).to_have_text(f"{newest.reference} · {newest.name}")
    red_flags = page.get_by_role("region", name="Red flags reported")
    expect(red_flags).to_be_visible()
    expect(red_flags.get_by_role("listitem")).to_have_text(["New loss of bladder or bowel control"])

    clinic_tz = ZoneInfo(clinic.server.app.config["CLINIC_TIMEZONE"])
    day = appointment_day(clinic_tz)
    confirm = page.get_by_role("form", name="Confirm an appointment")
    confirm.get_by_label("Specialist", exact=True).select_option(label=SPECIALIST)
    confirm.get_by_label("Location", exact=True).select_option(label=LOCATION)
    confirm.get_by_label("Date", exact=True).fill(day.isoformat())
    confirm.get_by_label("Time", exact=True).fill("10:30")
    confirm.get_by_label("Appointment type", exact=True).select_option(
        label="Imaging review (30 min)"
    )
    confirm.get_by_role("button", name="Confirm and email the patient").click()

    expect(page).to_have_url(clinic.server(f"/staff/requests/{newest.reference}"))
    expect(
        page.get_by_role("status").filter(has_text="Done: the patient has been emailed.")
    ).to_be_visible()
    expect(page.get_by_text("confirmed", exact=True)).to_be_visible()
    next_step = page.get_by_role("region", name="Next step")
    expect(next_step).to_contain_text(f"30 minutes · {SPECIALIST} · {LOCATION}")

    received = wait_for_email(smtp, f"Your appointment is confirmed ({newest.reference})", worker)
    assert received.rcpt_tos == [newest.email]
    message = received.message
    assert message["To"] == newest.email
    [invitation] = [
        part for part in message.iter_attachments() if part.get_content_type() == "text/calendar"
    ]
    assert invitation.get_param("method") == "REQUEST"
    calendar = Calendar.from_ical(invitation.get_content())
    [event] = calendar.walk("VEVENT")
    starts_at = event.decoded("DTSTART")
    expected = datetime.combine(day, time(10, 30), tzinfo=clinic_tz).astimezone(UTC)
    assert starts_at == expected
    assert starts_at.utcoffset() == timedelta(0)
    assert event.decoded("DTEND") - starts_at == timedelta(minutes=30)
    assert newest.reference in str(event["SUMMARY"])


def test_queue_and_record_fit_a_phone_without_sideways_scrolling(
    phone_page: Page, clinic: Clinic
) -> None:
    page = phone_page
    sign_in(page, clinic)
    assert page_width(page) <= PHONE_WIDTH, "the queue scrolls sideways"

    newest = clinic.urgent[-1]
    page.get_by_role("link", name=newest.reference, exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(newest.reference)
    assert page_width(page) <= PHONE_WIDTH, "the record scrolls sideways"
