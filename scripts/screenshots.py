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
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from flask import Flask  # noqa: E402
from playwright.sync_api import Browser, Page, expect, sync_playwright  # noqa: E402
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
# The answers a patient gives in the confirmation shot: field name -> value (radio buttons and
# checkboxes by value, text fields by text).
ANSWERS = {
    "full_name": "Julia Hoffmann",
    "date_of_birth": "1981-09-23",
    "email": "julia.hoffmann@example.com",
    "phone": "+49 30 1234567",
}
CHOICES = {
    "preferred_contact": ["email"],
    "pain_locations": ["lower_back", "leg"],
    "pain_duration": ["3_12_months"],
    "spine_region": ["lower_back"],
    "back_pain_now": ["4"],
    "back_pain_worst": ["7"],
    "leg_pain_now": ["3"],
    "leg_pain_worst": ["6"],
    "radiating_pain": ["yes"],
    "numbness": ["no"],
    "weakness": ["no"],
    "blood_thinners": ["no"],
    "diabetes": ["no"],
    "smoking": ["never"],
}


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


def patient_shots(browser: Browser, url: str, out: Path) -> None:
    page = browser.new_context(**DESKTOP).new_page()
    page.goto(f"{url}/request/start")
    shoot(page, out, "urgent-symptoms")
    for flag in page.locator("input[type=radio][name^=red_][value=no]").all():
        flag.check()
    page.get_by_role("button", name="Continue").click()
    expect(page).to_have_url(f"{url}/request/time")
    shoot(page, out, "time-picker")

    page.locator("input[name=slot]").first.check()
    page.get_by_role("button", name="Continue with this time").click()
    expect(page.locator("#chosen-slot")).to_be_attached()
    shoot(page, out, "patient-form")

    for name, value in ANSWERS.items():
        page.locator(f"[name={name}]").fill(value)
    for name, values in CHOICES.items():
        for value in values:
            page.locator(f"input[name={name}][value='{value}']").check()
    page.locator("input[name=privacy_consent]").check()
    page.locator("input[name=contact_consent]").check()
    page.get_by_role("button", name="Send my request").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Your request was sent")
    shoot(page, out, "confirmation")
    page.context.close()

    phone = browser.new_context(**PHONE).new_page()
    phone.goto(f"{url}/request")
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
        reference, day, held = demo_facts(app)
        with serving(app) as url, sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                patient_shots(browser, url, args.out)
                staff_shots(browser, url, args.out, reference, day, held)
            finally:
                browser.close()
        with app.app_context():
            from booking.extensions import db

            db.engine.dispose()


if __name__ == "__main__":
    main()
