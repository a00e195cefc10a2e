"""Command-line tools: ``flask worker``, ``flask seed-demo``, ``flask create-admin`` and
``flask privacy purge-expired``, ``flask files reconcile`` and ``flask files rescan``,
``flask jobs list`` and ``flask jobs run NAME``."""

from __future__ import annotations

import io
import secrets
from datetime import date

import click
from flask import Flask, current_app
from flask.cli import with_appcontext
from flask_babel import lazy_gettext as _l
from huey import Huey
from sqlalchemy import func, select

from booking.extensions import db

# Published in README: development demo data only (seed-demo refuses to run in production).
DEMO_PASSWORD = "spine-demo-2026"  # noqa: S105  # nosec B105
DEMO_STAFF = [
    ("admin@example.com", "Alex Admin", "admin"),
    ("coordinator@example.com", "Chris Coordinator", "coordinator"),
    ("dr.weber@example.com", "Dr. Lena Weber", "specialist"),
    ("dr.okafor@example.com", "Dr. Samuel Okafor", "specialist"),
]
# (name, its Spanish name, address): addresses are not translated.
DEMO_LOCATIONS = [
    ("Main clinic", "Clínica principal", "Friedrichstraße 100, 10117 Berlin"),
    ("Spine centre west", "Centro de columna oeste", "Kantstraße 20, 10623 Berlin"),
]


def register_commands(app: Flask) -> None:
    app.cli.add_command(worker)
    app.cli.add_command(seed_demo)
    app.cli.add_command(create_admin)
    from booking.keys import keys_cli

    app.cli.add_command(keys_cli)

    from booking.privacy.cli import privacy_cli

    app.cli.add_command(privacy_cli)
    app.cli.add_command(files_cli)
    app.cli.add_command(jobs_cli)


@click.group("files")
def files_cli() -> None:
    """Uploaded files: reconcile the folder with the database, scan held files again."""


@files_cli.command("reconcile")
@click.option("--dry-run", is_flag=True, help="Report only: remove nothing.")
@with_appcontext
def reconcile(dry_run: bool) -> None:
    """Remove upload files no row names (older than an hour) and report rows whose file is
    missing. Run it with --dry-run first."""
    from booking.requests.files import reconcile_files

    result = reconcile_files(dry_run=dry_run)
    verb = "would remove" if dry_run else "removed"
    click.echo(
        f"{len(result.orphan_files)} orphan file(s) with no row: {verb} "
        f"{len(result.orphan_files) if dry_run else result.removed}"
    )
    for name in result.orphan_files:
        click.echo(f"  orphan {name}")
    for name in result.unknown_files:
        click.echo(f"  not an upload's name, left alone: {name}")
    click.echo(f"{len(result.missing_files)} row(s) whose file is missing (restore from backup):")
    for table, row_id, name in result.missing_files:
        click.echo(f"  {table} {row_id}: {name}")
    if result.missing_files:
        raise SystemExit(1)


@files_cli.command("rescan")
@with_appcontext
def rescan() -> None:
    """Scan the files held as not yet scanned again (the worker does it every 5 minutes)."""
    from booking.requests.files import rescan_pending

    result = rescan_pending()
    click.echo(
        f"{result.clean} clean, {result.infected} infected (removed), "
        f"{result.still_pending} still waiting for the scanner"
    )


@click.group("jobs")
def jobs_cli() -> None:
    """The worker's periodic jobs: list them, run one now (to catch up after an outage, or
    to check a deployment)."""


@jobs_cli.command("list")
@with_appcontext
def list_jobs() -> None:
    """The periodic jobs: name, schedule (minute and hour, UTC, as in a crontab), what each
    does."""
    from booking.tasks import periodic_jobs

    for job in periodic_jobs(current_app).values():
        click.echo(f"{job.name:<28} {job.schedule:<10} {job.summary}")


@jobs_cli.command("run")
@click.argument("name")
@with_appcontext
def run_job(name: str) -> None:
    """Run the periodic job NAME now, in this process: the function the worker runs on
    schedule, with the same checks (safe while the worker runs it too). The email it writes
    is delivered by the worker."""
    from booking.tasks import periodic_jobs

    jobs = periodic_jobs(current_app)
    if name not in jobs:
        raise click.BadParameter(
            f"no periodic job {name!r}; the jobs are: {', '.join(jobs)}", param_hint="NAME"
        )
    done = jobs[name].task.call_local()
    click.echo(f"{name}: {done}.")


def _email_address(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """The address as the staff forms accept it (``booking.forms.EmailAddress``): one they
    refuse, such as letters with accents before the @, would never receive the clinic's
    emails (the password reset among them)."""
    from wtforms.validators import ValidationError

    from booking.forms import EmailAddress

    address = value.strip()
    try:
        EmailAddress(_l("Please enter a valid email address.")).check(address)
    except ValidationError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from None
    return address


@click.command("create-admin")
@click.option(
    "--email", prompt=True, callback=_email_address, help="The administrator's email address."
)
@click.option("--name", prompt="Full name", help="The administrator's full name.")
@click.password_option(help="At least 12 characters.")
@with_appcontext
def create_admin(email: str, name: str, password: str) -> None:
    """Create an administrator account (the first one, or another)."""
    from booking.staff.auth import MIN_PASSWORD_LENGTH
    from booking.staff.models import StaffRole
    from booking.staff.services import StaffAccountError, create_staff

    if len(password) < MIN_PASSWORD_LENGTH:
        raise click.ClickException(f"The password needs at least {MIN_PASSWORD_LENGTH} characters.")
    try:
        user = create_staff(
            email=email, full_name=name, role=StaffRole.ADMIN, password=password, actor=None
        )
    except StaffAccountError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"Administrator {user.email} created.")


@click.command("worker")
@with_appcontext
@click.option("--workers", default=2, show_default=True, help="Worker threads.")
@click.option(
    "--periodic/--no-periodic",
    default=True,
    show_default=True,
    help="Also schedule the periodic jobs (sweep, reminders, heartbeat). They are safe to "
    "run in every worker; --no-periodic saves their work on extra workers.",
)
@click.option(
    "--scheduler-interval",
    type=click.Choice(["1", "2", "3", "4", "5", "6", "10", "12", "15", "20", "30", "60"]),
    default="10",
    show_default=True,
    help="Seconds between the scheduler's reads of the tasks due later (an email's next "
    "attempt): each may start this late. While the queue's storage is down, each read logs "
    "an error: Huey's default of 1 second logs one every second.",
)
def worker(workers: int, periodic: bool, scheduler_interval: str) -> None:
    """Run the background worker (email delivery and the periodic outbox sweep)."""
    from booking.logging import init_worker_logging

    # Ids and outcomes only: the services never log addresses or medical details, and what
    # an error quotes is redacted as on the web.
    init_worker_logging()
    huey = current_app.extensions["huey"]
    consumer = huey.create_consumer(
        workers=workers,
        worker_type="thread",
        periodic=periodic,
        scheduler_interval=int(scheduler_interval),
        **_polling(huey),
    )
    consumer.run()


def _polling(huey: Huey) -> dict[str, float]:
    """How each worker thread waits between reads of the queue that found nothing or failed.

    A queue that blocks (Redis: each read waits up to a second for a task) needs no polling:
    the delay only follows a failed read, while Redis is down, and Huey's default (0.1 s,
    growing by 15% to 10 s) logs an error with its traceback about twice a second per thread
    in the first 15 seconds and every 10 s after. From 1 s, doubling to a minute: seven
    errors per thread in the first two minutes, then one a minute. Nothing waits on it: the
    emails are in the outbox, and the sweep hands them over again once Redis is back.
    The SQLite queue is polled: keep Huey's defaults, so an email is picked up within
    seconds of being written."""
    if huey.storage.blocking:
        return {"initial_delay": 1.0, "backoff": 2.0, "max_delay": 60.0}
    return {}


def demo_pdf(title: str, size: int = 0) -> bytes:
    """A small valid one-page PDF, so demo data and tests have a real document to store;
    with ``size``, its content stream is padded with comment lines to about that many bytes."""
    text = f"BT /F1 18 Tf 72 720 Td ({title}) Tj ET".encode()
    if size:
        padding = b"% " + b"x" * 76 + b"\n"
        text += b"\n" + padding * max(0, (size - 600) // len(padding))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(text) + text + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(
        b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    )
    return out.getvalue()


# (name, its Spanish name, minutes, how the visit takes place)
DEMO_TYPES = [
    ("New-patient spine evaluation", "Primera consulta de columna", 45, "in_person"),
    ("Imaging review", "Revisión de pruebas de imagen", 30, "in_person"),
    ("Video consultation", "Videoconsulta", 20, "video"),
]


def _seed_schedule(locations: list) -> None:
    """Appointment types and weekly hours for the demo specialists."""
    from datetime import time

    from booking.scheduling.admin_services import create_appointment_type
    from booking.scheduling.models import VisitMode, WorkingHours
    from booking.staff.models import StaffRole, StaffUser

    for name, spanish, minutes, mode in DEMO_TYPES:
        create_appointment_type(
            name, minutes, actor=None, names={"es": spanish}, mode=VisitMode(mode)
        )
    specialists = db.session.scalars(
        select(StaffUser).where(StaffUser.role == StaffRole.SPECIALIST).order_by(StaffUser.id)
    ).all()
    for index, specialist in enumerate(specialists):
        for weekday in range(5):  # Monday to Friday
            location = locations[(weekday + index) % len(locations)]
            db.session.add(
                WorkingHours(
                    specialist_id=specialist.id,
                    location_id=location.id,
                    weekday=weekday,
                    start_time=time(8, 30),
                    end_time=time(12, 30),
                )
            )
            db.session.add(
                WorkingHours(
                    specialist_id=specialist.id,
                    location_id=location.id,
                    weekday=weekday,
                    start_time=time(13, 30),
                    end_time=time(17, 0),
                )
            )
    db.session.commit()
    click.echo("Added demo appointment types and working hours.")


def _demo_slots() -> list:
    """Two open times for the first demo requests to hold (the third has none)."""
    from datetime import timedelta

    from booking.scheduling.availability import open_slots
    from booking.scheduling.services import SlotChoice, active_appointment_types
    from booking.timeutil import now_utc

    appointment_type = active_appointment_types()[0]
    start = now_utc()
    slots = open_slots(appointment_type, start, start + timedelta(days=21))
    return [
        SlotChoice(appointment_type.id, s.specialist_id, s.location_id, s.starts_at)
        for s in (slots[:1] + slots[12:13])
    ]


@click.command("seed-demo")
@with_appcontext
def seed_demo() -> None:
    """Add demo staff, locations and requests (development only, into an empty database)."""
    from booking.documents.storage import DocumentUpload
    from booking.patients.services import RequestSubmission, submit_request
    from booking.requests import history
    from booking.requests.models import ConsultationRequest
    from booking.scheduling.services import create_location
    from booking.staff.models import StaffRole, StaffUser
    from booking.staff.services import create_staff

    if not current_app.config["DEMO_DATA_ALLOWED"]:
        raise click.ClickException(
            "seed-demo creates accounts with published passwords: development only."
        )
    if db.session.scalar(select(func.count()).select_from(ConsultationRequest)):
        click.echo("The database already holds requests; no demo data added.")
        return
    if db.session.scalar(select(func.count()).select_from(StaffUser)):
        # Every request erased or purged, the accounts kept: adding them again would fail.
        click.echo(
            "The database already holds staff accounts; no demo data added "
            "(`make clean-dev` starts again from nothing)."
        )
        return
    for email, name, role in DEMO_STAFF:
        create_staff(
            email=email, full_name=name, role=StaffRole(role), password=DEMO_PASSWORD, actor=None
        )
        click.echo(f"Added demo {role} {email} (password: {DEMO_PASSWORD}).")
    locations = [
        create_location(name, address, actor=None, names={"es": spanish})
        for name, spanish, address in DEMO_LOCATIONS
    ]
    _seed_schedule(locations)
    demos = [
        (
            "Maria Schneider",
            date(1968, 3, 14),
            "maria.schneider@example.com",
            "+49 30 901820",
            ["herniated_disc", "sciatica"],
            set(),
            "lower_back",
            6,
            8,
        ),
        (
            "Thomas Becker",
            date(1952, 11, 2),
            "thomas.becker@example.com",
            "+49 89 2180",
            ["spinal_stenosis"],
            {"cancer_history", "night_pain"},  # together: urgent (triage.COMBINATIONS)
            "both",
            5,
            9,
        ),
        (
            "Ana López",
            date(1979, 7, 30),
            "ana.lopez@example.com",
            "+34 912 345 678",
            ["degenerative_disc_disease"],
            set(),
            "neck",
            3,
            6,
        ),
    ]
    held = _demo_slots()
    for number, demo in enumerate(demos):
        name, born, email, phone, diagnoses, flags, region, now, worst = demo
        consultation = submit_request(
            RequestSubmission(
                submission_token=secrets.token_urlsafe(32),
                locale="en",
                full_name=name,
                date_of_birth=born,
                guardian_name=None,
                email=email,
                phone=phone.replace(" ", ""),
                preferred_contact="email",
                answers=history.example_answers(
                    spine_region=region,
                    pain_locations=["neck", "arm"] if region == "neck" else ["lower_back", "leg"],
                    back_pain_now=now,
                    back_pain_worst=worst,
                    neck_pain_now=now,
                    neck_pain_worst=worst,
                    weakness=bool(flags),
                    diagnoses=diagnoses,
                    treatments=["physiotherapy", "medication"],
                    imaging_when="2026",
                    medications="Ibuprofen 400 mg as needed",
                ),
                odi_answers={
                    "pain_intensity": 3,
                    "personal_care": 1,
                    "lifting": 4,
                    "walking": 2,
                    "sitting": 3,
                    "standing": 3,
                    "sleeping": 2,
                    "sex_life": None,
                    "social_life": 2,
                    "travelling": 2,
                },
                # Kept for the patients whose main problem is (or includes) the neck.
                ndi_answers={
                    "pain_intensity": 3,
                    "personal_care": 1,
                    "lifting": 2,
                    "reading": 3,
                    "headaches": 2,
                    "concentration": 1,
                    "work": 2,
                    "driving": 3,
                    "sleeping": 2,
                    "recreation": None,
                },
                red_flags=flags,
                documents=[
                    DocumentUpload(
                        io.BytesIO(demo_pdf("MRI report (demo)")),
                        "mri-report.pdf",
                        "MRI report, lumbar spine",
                    )
                ],
                preferred_days=[0, 2, 4],
                preferred_time_of_day="morning",
                slot=held[number] if number < len(held) else None,
            )
        )
        click.echo(f"Added demo request {consultation.reference} ({name}).")
