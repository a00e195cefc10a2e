"""Take the screenshots README.md shows, from the app as it is now: ``make screenshots``.

Starts the app on a throwaway SQLite database (migrated like a real one) with the demo data
of ``flask seed-demo``, drives Debian's chromium with Playwright as a patient and as the demo
coordinator, and writes viewport-sized PNGs (1280 px wide, one 390 px phone shot) into
docs/screenshots/. Nothing is sent: no worker runs, so the emails stay in the outbox.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from flask import Flask  # noqa: E402
from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright  # noqa: E402
from sqlalchemy import select  # noqa: E402
from werkzeug.serving import make_server  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"]
# English pages and dates whatever the machine's locale (the app follows the browser's).
DESKTOP = {"viewport": {"width": 1280, "height": 860}, "locale": "en-US"}
PHONE = {
    "viewport": {"width": 390, "height": 844},
    "device_scale_factor": 2,
    "is_mobile": True,
    "has_touch": True,
    "locale": "en-US",
}
COORDINATOR = "coordinator@example.com"
# The answers a patient gives on the way to the confirmation shot, step by step, found as the
# browser tests find them (tests/e2e/pages.py): text fields by their label, radio buttons and
# checkboxes by their group's legend and their own label.
ABOUT_YOU = {
    "Full name": "Julia Hoffmann",
    "Date of birth": "1981-09-23",
    "Email address": "julia.hoffmann@example.com",
    "Phone number": "+49 30 1234567",
}
CONTACT = {"How should we contact you?": ["Email"]}
SYMPTOMS = {
    "Where does it hurt?": ["Lower back", "Leg"],
    "Where is your main problem?": ["My lower back (the pain may spread into a leg)"],
    "Which side?": ["Left"],
    "How long have you had this pain?": ["3 to 12 months"],
    "Does the pain spread into your arm or leg?": ["Yes"],
    "Do you have numbness or tingling?": ["No"],
    "Do you have weakness in an arm or leg?": ["No"],
}
PAIN = {
    "Back pain right now": ["4"],
    "Back pain at its worst in the last week": ["7"],
    "Leg pain right now": ["3"],
    "Leg pain at its worst in the last week": ["6"],
}
GENERAL_HEALTH = {
    "Do you take blood thinners (anticoagulants)?": ["No"],
    "Do you have diabetes?": ["No"],
    "Do you smoke?": ["Never smoked"],
}
# The steps after the questions about urgent symptoms, by their names in the list of steps.
STEPS = [
    "Time",
    "About you",
    "Your symptoms",
    "Pain and daily life",
    "Health and treatment",
    "Documents",
    "Check and send",
]


def demo_app(directory: Path) -> Flask:
    """The app on a migrated SQLite file in ``directory``, holding the demo data."""
    from flask_migrate import upgrade

    from booking import create_app

    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{directory / 'demo.sqlite3'}",
            "UPLOAD_DIR": str(directory / "uploads"),
            "DEV_MAILDIR": str(directory / "mail"),
            "HUEY_BACKEND": "memory",
            "CLINIC_NAME": "SpineConsult Clinic",
            "CLINIC_PHONE": "+49 30 555 0100",
            "CLINIC_ADDRESS": "Friedrichstraße 100, 10117 Berlin",
            "CLINIC_OPENING_HOURS": "Mon-Fri 8:00-17:00|Sat, Sun closed",
        }
    )
    with app.app_context():
        upgrade(directory=str(ROOT / "migrations"))
    result = app.test_cli_runner().invoke(args=["seed-demo"])
    if result.exit_code != 0:
        raise SystemExit(f"seed-demo failed:\n{result.output}")
    return app


@contextmanager
def serving(app: Flask) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    url = f"http://127.0.0.1:{server.server_port}"
    app.config["PUBLIC_BASE_URL"] = url
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield url
    finally:
        server.shutdown()
        thread.join(timeout=10)


def demo_facts(app: Flask) -> tuple[str, str, list[str]]:
    """The urgent demo request's reference, the first day with an appointment, and the
    references of the requests holding a time."""
    from booking.requests.models import ConsultationRequest, TriageLevel
    from booking.scheduling.models import Appointment
    from booking.timeutil import to_clinic_tz

    with app.app_context():
        from booking.extensions import db

        urgent = db.session.scalar(
            select(ConsultationRequest).where(
                ConsultationRequest.triage_level == TriageLevel.URGENT
            )
        )
        first = db.session.scalar(select(Appointment).order_by(Appointment.starts_at))
        held = db.session.scalars(select(Appointment).order_by(Appointment.starts_at)).all()
        return (
            urgent.reference,
            to_clinic_tz(first.starts_at).date().isoformat(),
            [appointment.request.reference for appointment in held],
        )


def shoot(page: Page, out: Path, name: str) -> None:
    page.wait_for_load_state("load")
    path = out / f"{name}.png"
    page.screenshot(path=path)
    shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    print(f"{shown}  {path.stat().st_size // 1024} KB")


def group(page: Page, legend: str) -> Locator:
    """The fieldset whose legend is ``legend`` (with or without "(optional)")."""
    name = re.compile(rf"^{re.escape(legend)}(?: \(optional\))?$")
    return page.get_by_role("group", name=name).or_(page.get_by_role("radiogroup", name=name))


def answer(page: Page, texts: dict[str, str], choices: dict[str, list[str]]) -> None:
    for label, value in texts.items():
        page.get_by_label(label, exact=True).fill(value)
    for legend, options in choices.items():
        for option in options:
            group(page, legend).get_by_label(option, exact=True).check()


def expect_step(page: Page, name: str) -> None:
    """The page is the step called ``name`` (any of its parts)."""
    heading = f"Step {STEPS.index(name) + 1} of {len(STEPS)}: {name}"
    expect(page.get_by_role("heading", level=1)).to_have_text(re.compile(rf"^{re.escape(heading)}"))


def save_and_continue(page: Page, then: str) -> None:
    """Press "Save and continue" until the step ``then`` shows (past a step's other parts)."""
    for _ in range(20):
        with page.expect_navigation():  # (the page's form is posted, the next page loads)
            page.get_by_role("button", name="Save and continue").click()
        if (
            page.get_by_role("heading", level=1)
            .inner_text()
            .startswith(f"Step {STEPS.index(then) + 1} of")
        ):
            break
    expect_step(page, then)


def answer_red_flags(page: Page) -> None:
    """The first page: "No" to every question about urgent symptoms, then Continue."""
    from booking.requests import triage

    for flag in triage.ASKED:
        group(page, str(flag.question)).get_by_label("No", exact=True).check()
    page.get_by_role("button", name="Continue").click()


def patient_shots(browser: Browser, url: str, out: Path) -> None:
    """The patient's shots, from the first question to the confirmation; then the form on a
    phone."""
    page = browser.new_context(**DESKTOP).new_page()
    page.goto(f"{url}/request/start")
    expect(page.get_by_role("heading", level=1)).to_have_text("Request a spine evaluation")
    shoot(page, out, "urgent-symptoms")
    answer_red_flags(page)
    expect(page).to_have_url(re.compile(r"/request/time"))
    shoot(page, out, "time-picker")

    times = page.get_by_role("form", name=re.compile(r"^Open times from "))
    slots = times.get_by_role("radio")
    # The second time when there are two: the first may pass the minimum notice meanwhile.
    (slots.nth(1) if slots.count() > 1 else slots.first).check()
    times.get_by_role("button", name="Continue with this time").click()
    expect_step(page, "Time")
    expect(page.locator("#chosen-slot")).to_be_visible()
    save_and_continue(page, "About you")
    answer(page, ABOUT_YOU, CONTACT)
    page.evaluate("() => { document.activeElement.blur(); window.scrollTo(0, 0); }")
    shoot(page, out, "patient-form")

    save_and_continue(page, "Your symptoms")
    answer(page, {}, SYMPTOMS)
    save_and_continue(page, "Pain and daily life")
    answer(page, {}, PAIN)
    save_and_continue(page, "Health and treatment")
    save_and_continue(page, "Health and treatment")  # its second part asks what is required
    answer(page, {}, GENERAL_HEALTH)
    save_and_continue(page, "Documents")
    save_and_continue(page, "Check and send")
    page.get_by_role("checkbox", name="I have read the privacy notice").check()
    page.get_by_role("checkbox", name="I agree to be contacted about my request").check()
    page.get_by_role("button", name="Send my request").click()
    expect(page).to_have_url(re.compile(r"/request/submitted$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Your request was sent")
    shoot(page, out, "confirmation")
    page.context.close()

    phone = browser.new_context(**PHONE).new_page()
    phone.goto(f"{url}/request/start")
    answer_red_flags(phone)
    phone.get_by_role("link", name="Continue without choosing a time").click()
    expect_step(phone, "Time")
    save_and_continue(phone, "About you")
    shoot(phone, out, "patient-form-phone")
    phone.context.close()


def staff_shots(
    browser: Browser, url: str, out: Path, reference: str, day: str, held_references: list[str]
) -> None:
    from booking.cli import DEMO_PASSWORD

    page = browser.new_context(**DESKTOP).new_page()
    page.goto(f"{url}/staff/login")
    page.get_by_label("Email address", exact=True).fill(COORDINATOR)
    page.get_by_label("Password", exact=True).fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Triage queue")
    shoot(page, out, "dashboard-queue")

    page.goto(f"{url}/staff/requests/{reference}")
    shoot(page, out, "request-record")

    # Confirm the requests that hold a time, so the calendar has appointments to show.
    for held in held_references:
        page.goto(f"{url}/staff/requests/{held}")
        confirm = page.get_by_role("form", name="Confirm an appointment")
        confirm.get_by_role("button", name="Confirm and email the patient").click()
        expect(page.get_by_role("status").first).to_be_visible()

    page.goto(f"{url}/staff/calendar?date={day}")
    shoot(page, out, "calendar")

    page.goto(f"{url}/staff/insights")
    shoot(page, out, "insights")
    page.context.close()


def take(browser: Browser, app: Flask, url: str, out: Path) -> None:
    """Every shot, in ``out``, from ``app`` (holding the demo data) served at ``url``.
    tests/e2e/test_request_steps_journey.py runs this against the browser tests' server, so
    a page that changes under the script fails a test, not the next ``make screenshots``."""
    reference, day, held = demo_facts(app)
    patient_shots(browser, url, out)
    staff_shots(browser, url, out, reference, day, held)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    args = parser.parse_args()
    if not CHROMIUM.exists():
        raise SystemExit(
            "Debian's chromium is needed at /usr/bin/chromium (Playwright cannot download its "
            "own here): run `make browser` as root, or apt-get install -y chromium."
        )
    args.out.mkdir(parents=True, exist_ok=True)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per shot, not per hit
    os.environ.setdefault("SECRET_KEY", "screenshots-only-" + os.urandom(8).hex())
    with tempfile.TemporaryDirectory(prefix="spineconsult-shots-") as tmp:
        app = demo_app(Path(tmp))
        with serving(app) as url, sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                take(browser, app, url, args.out)
            finally:
                browser.close()
        with app.app_context():
            from booking.extensions import db

            db.engine.dispose()


if __name__ == "__main__":
    main()
