"""A patient picks a time, sends the request, and later moves the time, adds a document and
cancels through the private link in their email, in a real browser. A real ``flask worker``
process delivers every email to a real SMTP server.

Controls are found the way a screen-reader user finds them: fields by their label, choices by
their group's legend, buttons and links by their name. The phone journey uses the keyboard
only, the way a switch or keyboard user moves through the pages.
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
from babel.dates import format_date, format_datetime
from playwright.sync_api import Locator, Page, expect
from werkzeug.serving import make_server

from booking import create_app
from booking.extensions import db
from tests.e2e.conftest import PHONE, LiveServer
from tests.factories import make_appointment_type, make_hours, make_location, make_staff
from tests.smtp import Received, SmtpServer
from tests.support import pdf_bytes

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
PHONE_WIDTH = PHONE["viewport"]["width"]
EMAIL_TIMEOUT_S = 60
CLINIC_EMAIL = "coordinators@example.com"
PATIENT_EMAIL = "erika.mustermann@example.com"
SPECIALIST = "Dr. Lena Weber"
LOCATION = "Spine centre west"
ADDRESS = "Kantstr. 20, Berlin"
EVALUATION = "New-patient spine evaluation (45 minutes)"
IMAGING_REVIEW = "Imaging review (30 minutes)"
REFERENCE_RE = re.compile(r"^SC-[2-9A-Z]{4}-[2-9A-Z]{4}$")
MANAGE_LINK_RE = re.compile(r"^http://127\.0\.0\.1:\d+/manage/\S+$", re.MULTILINE)
RED_FLAGS = [
    "New loss of bladder or bowel control",
    "Numbness in the groin or saddle area",
    "Rapidly worsening weakness in the legs",
    "Fever or unexplained weight loss together with back pain",
    "A history of cancer",
    "A recent serious injury, such as a fall or car accident",
]
# Enough for the longest walk through the request form (about a hundred tab stops).
MAX_TABS = 250


@dataclass(frozen=True)
class Clinic:
    server: LiveServer
    database_url: str
    huey_path: str
    huey_name: str
    tz: ZoneInfo


# --- the clinic, its worker and its mail server (as in test_staff_journey.py) ---------------


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer().start()
    yield server
    server.stop()


@pytest.fixture
def clinic(tmp_path: Path, smtp: SmtpServer) -> Iterator[Clinic]:
    """The app served over HTTP with a Huey queue in a SQLite file a worker process can share,
    seeded with one specialist's weekly hours at one location and two appointment types."""
    database_url = f"sqlite:///{tmp_path / 'e2e.sqlite3'}"
    huey_path, huey_name = str(tmp_path / "huey.sqlite3"), f"e2e-{uuid.uuid4().hex}"
    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": database_url,
            "UPLOAD_DIR": str(tmp_path / "uploads"),
            "DEV_MAILDIR": str(tmp_path / "mail"),
            "STAFF_NOTIFICATION_EMAIL": CLINIC_EMAIL,
            "CLINIC_NAME": "Test Spine Clinic",
            "HUEY_BACKEND": "sqlite",
            "HUEY_SQLITE_PATH": huey_path,
            "HUEY_NAME": huey_name,
            "MAIL_PORT": smtp.port,
        }
    )
    with app.app_context():
        db.create_all()
        weber = make_staff("specialist", "lena.weber@example.com", full_name=SPECIALIST)
        west = make_location(LOCATION, ADDRESS)
        make_appointment_type("New-patient spine evaluation", 45)
        make_appointment_type("Imaging review", 30)
        # Mornings only: every day offers times, and the pages stay short.
        make_hours(weber, west, range(7), "09:00", "13:00")

    server = make_server("127.0.0.1", 0, app, threaded=True)
    url = f"http://127.0.0.1:{server.server_port}"
    # The links in the emails must lead back to this server: the patient follows them.
    app.config["PUBLIC_BASE_URL"] = url
    thread = threading.Thread(target=server.serve_forever, name="e2e-server", daemon=True)
    thread.start()
    try:
        yield Clinic(
            server=LiveServer(app=app, url=url),
            database_url=database_url,
            huey_path=huey_path,
            huey_name=huey_name,
            tz=ZoneInfo(app.config["CLINIC_TIMEZONE"]),
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
    """The one message with ``subject``."""
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


def text_of(received: Received) -> str:
    """The plain-text body, its SMTP line endings (CRLF) read as plain lines."""
    body = received.message.get_body(preferencelist=("plain",)).get_content()
    return "\n".join(body.splitlines())


def manage_link(received: Received) -> str:
    """The private link in the patient's email."""
    [link] = MANAGE_LINK_RE.findall(text_of(received))
    return link


# --- what the patient reads ------------------------------------------------------------------


def clinic_day(clinic: Clinic, days_ahead: int) -> date:
    """A day at the clinic after the minimum notice and inside the picker's two weeks."""
    return datetime.now(clinic.tz).date() + timedelta(days=days_ahead)


def day_legend(day: date) -> str:
    """A day as the picker names its group of times, e.g. "Friday, June 5, 2026"."""
    return format_date(day, "full", locale="en")


def slot_label(hh_mm: str) -> str:
    return f"{hh_mm} · {SPECIALIST} · {LOCATION}"


def full_time(clinic: Clinic, day: date, hh_mm: str) -> str:
    """A time as the pages and emails spell it out in full."""
    starts_at = datetime.combine(day, time.fromisoformat(hh_mm), tzinfo=clinic.tz)
    return format_datetime(starts_at.astimezone(UTC), "full", tzinfo=clinic.tz, locale="en")


def page_width(page: Page) -> int:
    # Measured before the stylesheets arrive, an unstyled page can overflow: wait for them.
    page.wait_for_load_state("load")
    return page.evaluate("document.documentElement.scrollWidth")


def shown_reference(page: Page) -> str:
    reference = page.get_by_text(REFERENCE_RE)
    expect(reference).to_be_visible()
    return reference.inner_text().strip()


# --- the request form, by label (as in test_request_journey.py) ------------------------------


def group(page: Page, legend: str) -> Locator:
    """The fieldset whose legend is exactly ``legend``, with or without "(optional)"."""
    name = re.compile(rf"^{re.escape(legend)}(?: \(optional\))?$")
    return page.get_by_role("group", name=name)


def choose(page: Page, legend: str, *options: str) -> None:
    """Tick the radio button or checkboxes labelled ``options`` in the group ``legend``."""
    for option in options:
        group(page, legend).get_by_label(option, exact=True).check()


def fill_required_answers(page: Page) -> None:
    page.get_by_label("Full name", exact=True).fill("Erika Mustermann")
    page.get_by_label("Date of birth", exact=True).fill("1970-05-17")
    page.get_by_label("Email address", exact=True).fill(PATIENT_EMAIL)
    page.get_by_label("Phone number", exact=True).fill("+49 30 901820")
    choose(page, "How should we contact you?", "Email")
    choose(page, "Where does it hurt?", "Lower back", "Leg")
    choose(page, "How long have you had this pain?", "3 to 12 months")
    choose(page, "Pain right now", "5")
    choose(page, "Pain at its worst in the last week", "8")
    choose(page, "Does the pain spread into your arm or leg?", "Yes")
    choose(page, "Do you have numbness or tingling?", "Yes")
    choose(page, "Do you have weakness in an arm or leg?", "No")
    choose(page, "Do you take blood thinners (anticoagulants)?", "No")
    choose(page, "Do you have diabetes?", "No")
    choose(page, "Do you smoke?", "Never smoked")
    for question in RED_FLAGS:
        choose(page, question, "No")
    page.get_by_role("checkbox", name="I have read the privacy notice").check()
    page.get_by_role("checkbox", name="I agree to be contacted about my request").check()


# --- the keyboard ----------------------------------------------------------------------------


def has_focus(target: Locator) -> bool:
    """Whether the focus is on ``target`` or inside it (a group of radio buttons)."""
    return target.evaluate("el => el.contains(document.activeElement)")


def tab_to(page: Page, target: Locator, what: str) -> None:
    """Press Tab, as a keyboard user does, until the focus is on or in ``target``."""
    for _ in range(MAX_TABS):
        if has_focus(target):
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"Tab never reached {what}")


def key_fill(page: Page, label: str, value: str) -> None:
    field = page.get_by_label(label, exact=True)
    tab_to(page, field, label)
    field.fill(value)


def key_choose(page: Page, legend: str, *options: str) -> None:
    """Choose ``options`` in the group ``legend`` from the keyboard: Tab to a checkbox and
    press Space; Tab into a radio group, move with the arrow keys, confirm with Space."""
    fieldset = group(page, legend)
    for option in options:
        target = fieldset.get_by_label(option, exact=True)
        if target.get_attribute("type") == "radio":
            tab_to(page, fieldset, legend)
            for _ in range(fieldset.get_by_role("radio").count()):
                if has_focus(target):
                    break
                page.keyboard.press("ArrowDown")
            assert has_focus(target), f"the arrow keys cannot reach {legend}: {option}"
            page.keyboard.press("Space")
            expect(target).to_be_checked()
        else:
            key_tick(page, target, f"{legend}: {option}")


def key_tick(page: Page, checkbox: Locator, what: str) -> None:
    tab_to(page, checkbox, what)
    page.keyboard.press("Space")
    expect(checkbox).to_be_checked()


def key_press_button(page: Page, name: str) -> None:
    button = page.get_by_role("button", name=name)
    tab_to(page, button, name)
    page.keyboard.press("Enter")


def key_fill_required_answers(page: Page) -> None:
    """The same answers as ``fill_required_answers``, in page order, from the keyboard."""
    key_fill(page, "Full name", "Erika Mustermann")
    key_fill(page, "Date of birth", "1970-05-17")
    key_fill(page, "Email address", PATIENT_EMAIL)
    key_fill(page, "Phone number", "+49 30 901820")
    key_choose(page, "How should we contact you?", "Email")
    key_choose(page, "Where does it hurt?", "Lower back", "Leg")
    key_choose(page, "How long have you had this pain?", "3 to 12 months")
    key_choose(page, "Pain right now", "5")
    key_choose(page, "Pain at its worst in the last week", "8")
    key_choose(page, "Does the pain spread into your arm or leg?", "Yes")
    key_choose(page, "Do you have numbness or tingling?", "Yes")
    key_choose(page, "Do you have weakness in an arm or leg?", "No")
    key_choose(page, "Do you take blood thinners (anticoagulants)?", "No")
    key_choose(page, "Do you have diabetes?", "No")
    key_choose(page, "Do you smoke?", "Never smoked")
    for question in RED_FLAGS:
        key_choose(page, question, "No")
    for consent in ("I have read the privacy notice", "I agree to be contacted about my request"):
        key_tick(page, page.get_by_role("checkbox", name=consent), consent)


# --- the journeys ----------------------------------------------------------------------------


def test_patient_picks_a_time_then_moves_it_adds_a_document_and_cancels_by_the_emailed_link(
    page: Page, clinic: Clinic, smtp: SmtpServer, worker: subprocess.Popen, tmp_path: Path
) -> None:
    held_day, new_day = clinic_day(clinic, 3), clinic_day(clinic, 4)
    held_time, new_time = full_time(clinic, held_day, "10:00"), full_time(clinic, new_day, "11:30")

    # The home page leads to step 1, the time picker.
    page.goto(clinic.server("/"))
    page.get_by_role("link", name="Request an evaluation").first.click()
    expect(page).to_have_url(clinic.server("/request/time"))
    expect(page).to_have_title(re.compile(r"^Choose a time"))
    choose(page, "Type of appointment", IMAGING_REVIEW)
    page.get_by_role("button", name="Show the times").click()
    expect(group(page, "Type of appointment").get_by_label(IMAGING_REVIEW)).to_be_checked()
    times = page.get_by_role("form", name=re.compile(r"^Open times from "))
    times.get_by_role("group", name=day_legend(held_day), exact=True).get_by_label(
        slot_label("10:00"), exact=True
    ).check()
    times.get_by_role("button", name="Continue with this time").click()

    # Step 2: the form, showing the chosen time.
    expect(page.get_by_role("heading", level=1)).to_have_text("Request a spine evaluation")
    expect(page.get_by_text("Your chosen time", exact=True)).to_be_visible()
    expect(page.get_by_text(held_time, exact=True)).to_be_visible()
    expect(page.get_by_text(f"{SPECIALIST} · {LOCATION}, {ADDRESS}")).to_be_visible()
    fill_required_answers(page)
    page.get_by_role("button", name="Send my request").click()

    expect(page).to_have_url(clinic.server("/request/submitted"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Your request was sent")
    reference = shown_reference(page)

    # The receipt holds the chosen time and the private link.
    received = wait_for_email(smtp, f"We received your request {reference}", worker)
    assert received.rcpt_tos == [PATIENT_EMAIL]
    assert f"{held_time}, {SPECIALIST}, {LOCATION}, {ADDRESS}" in text_of(received)
    link = manage_link(received)
    assert link.startswith(clinic.server(f"/manage/{reference}/"))

    page.goto(link)
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Your request {reference}")
    expect(page.get_by_text("Status: requested")).to_be_visible()
    appointment = page.get_by_role("region", name="Your appointment")
    expect(appointment).to_contain_text(held_time)
    expect(appointment).to_contain_text(f"30 minutes · {SPECIALIST} · {LOCATION}, {ADDRESS}")

    # Move the time.
    appointment.get_by_role("link", name="Choose another time").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Choose another time")
    expect(page.get_by_text(f"Now: {held_time}, {SPECIALIST}, {LOCATION}")).to_be_visible()
    held_day_times = page.get_by_role("group", name=day_legend(held_day), exact=True)
    # The patient's own time is not offered as "another" time.
    expect(held_day_times.get_by_label(slot_label("10:00"), exact=True)).to_have_count(0)
    page.get_by_role("group", name=day_legend(new_day), exact=True).get_by_label(
        slot_label("11:30"), exact=True
    ).check()
    page.get_by_role("button", name="Move my appointment to this time").click()

    expect(page).to_have_url(link)
    expect(
        page.get_by_role("status").filter(
            has_text="Your new time is saved. We have sent you a confirmation."
        )
    ).to_be_visible()
    expect(appointment).to_contain_text(new_time)
    expect(appointment).not_to_contain_text(held_time)

    # Add a document.
    pdf = tmp_path / "mri-report.pdf"
    pdf.write_bytes(pdf_bytes("MRI lumbar spine"))
    add_documents = page.get_by_role("form", name="Add documents")
    first = add_documents.get_by_role("group", name="Document 1")
    first.get_by_label("File", exact=True).set_input_files(pdf)
    first.get_by_label("What is it?").fill("MRI report, lumbar spine")
    add_documents.get_by_role("button", name="Send the documents").click()

    expect(page).to_have_url(link)
    expect(
        page.get_by_role("status").filter(has_text="Thank you: 1 document(s) added.")
    ).to_be_visible()
    documents = page.get_by_role("region", name="Your documents")
    expect(documents.get_by_role("listitem")).to_have_count(1)
    expect(documents.get_by_role("listitem")).to_contain_text(
        "mri-report.pdf · MRI report, lumbar spine"
    )

    # Cancel.
    page.get_by_text("I want to cancel", exact=True).click()
    page.get_by_role("button", name="Cancel my request").click()

    expect(page).to_have_url(link)
    expect(
        page.get_by_role("status").filter(
            has_text="Your request is cancelled. We have sent you a confirmation."
        )
    ).to_be_visible()
    expect(page.get_by_text("Status: cancelled")).to_be_visible()
    expect(page.get_by_role("button", name="Cancel my request")).to_have_count(0)
    expect(page.get_by_role("link", name="Choose another time")).to_have_count(0)

    # The patient is told of each change; the clinic of each thing the patient did.
    changed = wait_for_email(smtp, f"Your appointment has changed ({reference})", worker)
    assert changed.rcpt_tos == [PATIENT_EMAIL]
    assert f"When: {new_time}" in text_of(changed)
    cancelled = wait_for_email(smtp, f"Your request {reference} is cancelled", worker)
    assert cancelled.rcpt_tos == [PATIENT_EMAIL]
    for what in ("rescheduled", "documents added", "cancelled"):
        notice = wait_for_email(smtp, f"Patient update on {reference}: {what}", worker)
        assert notice.rcpt_tos == [CLINIC_EMAIL]
        assert clinic.server(f"/staff/requests/{reference}") in text_of(notice)


def test_patient_on_a_phone_picks_a_time_and_sends_the_request_with_the_keyboard_only(
    phone_page: Page, clinic: Clinic, smtp: SmtpServer, worker: subprocess.Popen
) -> None:
    page = phone_page
    page.goto(clinic.server("/request/time"))
    assert page_width(page) <= PHONE_WIDTH, "the time picker scrolls sideways"

    # The appointment type: into the group, down to the second type, then show its times.
    key_choose(page, "Type of appointment", IMAGING_REVIEW)
    key_press_button(page, "Show the times")
    expect(page).to_have_url(re.compile(r"/request/time\?type="))
    expect(group(page, "Type of appointment").get_by_label(IMAGING_REVIEW)).to_be_checked()
    assert page_width(page) <= PHONE_WIDTH, "the time picker scrolls sideways"

    # Tab enters the times on the earliest one; Space takes it.
    times = page.get_by_role("form", name=re.compile(r"^Open times from "))
    earliest = times.get_by_role("radio").first
    tab_to(page, earliest, "the earliest time")
    page.keyboard.press("Space")
    expect(earliest).to_be_checked()
    expect(times.get_by_role("radio").and_(page.locator(":checked"))).to_have_count(1)
    _, _, epoch = earliest.get_attribute("value").split(".")
    starts_at = datetime.fromtimestamp(int(epoch), tz=UTC)
    chosen = format_datetime(starts_at, "full", tzinfo=clinic.tz, locale="en")
    key_press_button(page, "Continue with this time")

    expect(page.get_by_role("heading", level=1)).to_have_text("Request a spine evaluation")
    expect(page.get_by_text("Your chosen time", exact=True)).to_be_visible()
    expect(page.get_by_text(chosen, exact=True)).to_be_visible()
    key_fill_required_answers(page)
    key_press_button(page, "Send my request")

    expect(page).to_have_url(clinic.server("/request/submitted"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Your request was sent")
    reference = shown_reference(page)

    received = wait_for_email(smtp, f"We received your request {reference}", worker)
    page.goto(manage_link(received))
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Your request {reference}")
    expect(page.get_by_role("region", name="Your appointment")).to_contain_text(chosen)
    assert page_width(page) <= PHONE_WIDTH, "the manage page scrolls sideways"
