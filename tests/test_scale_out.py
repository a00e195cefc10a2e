"""Scale-out: two gunicorn app servers and two Huey workers sharing one PostgreSQL database,
one Redis and one upload folder, as in docs/production.md.

Patients use both servers through real HTTP, as through a load balancer without sticky
sessions: each reads every step of the request from one server and sends it to the other (some
send the request twice, to both servers at once). Then: every request is stored once; every
outbox email reaches the mail server once (counted by Message-ID), even when each is enqueued
twice; and with the reminder job run by both workers at the same time, every appointment gets
one reminder.
Readiness is checked on the running servers, before and after the workers stop (ready,
the workers named as degraded).

Needs PostgreSQL (``TEST_DATABASE_URL``) and Redis (``REDIS_URL``); ``.ci/run`` sets both.
The test makes a database of its own, migrated with ``flask db upgrade``, and drops it after.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import pytest
from flask import Flask
from huey import RedisHuey
from sqlalchemy import func, select, update

from booking import create_app
from booking.crypto import new_key
from booking.documents.models import Document
from booking.documents.storage import get_storage
from booking.extensions import db
from booking.notifications.models import OutboxEmail, OutboxStatus
from booking.requests.models import ConsultationRequest
from booking.scheduling.availability import open_slots
from booking.scheduling.models import Appointment, ReminderSent
from booking.timeutil import now_utc
from tests.factories import (
    confirm_at,
    make_appointment_type,
    make_hours,
    make_location,
    make_staff,
)
from tests.smtp import SmtpServer, free_port
from tests.support import (
    CSRF_RE,
    REQUEST_STEPS,
    Service,
    fresh_postgres_database,
    pdf_bytes,
    red_flag_answers,
    running_clamd,
    start_service,
    step_answers,
    valid_answers,
    wait_until,
)

ROOT = Path(__file__).resolve().parent.parent
PG_URL = os.environ.get("TEST_DATABASE_URL", "")
REDIS_URL = os.environ.get("REDIS_URL", "")
REDIS_DB = 12  # this test's own Redis database; the other tests use REDIS_URL's
PUBLIC_HOST = "clinic.example.com"  # what the TLS proxy in front of both servers is called

PATIENTS = 16  # every fourth sends the request twice, to both servers at once
APPOINTMENTS = 6
REMINDER_RUNS = 4  # both workers, both threads each
HEARTBEAT_MAX_AGE = 8  # seconds: short, so stopped workers show within the test
REFERENCE_RE = r"SC-[0-9A-Z]{4}-[0-9A-Z]{4}"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (PG_URL.startswith("postgres") and REDIS_URL),
        reason="the scale-out test needs PostgreSQL and Redis: set TEST_DATABASE_URL to a "
        "postgresql:// URL and REDIS_URL (.ci/run sets both)",
    ),
]


# --- processes ----------------------------------------------------------------------------


@dataclass
class Processes:
    """Every process the test starts; all are stopped at the end, whatever happened."""

    folder: Path
    running: list[Service] = field(default_factory=list)

    def start(self, name: str, args: list[str], env: dict[str, str], stop_signal: int) -> Service:
        process = start_service(name, args, env, self.folder, stop_signal)
        self.running.append(process)
        return process

    def stop(self, process: Service, timeout: float = 20) -> None:
        process.stop(timeout)

    def stop_all(self) -> None:
        for process in reversed(self.running):
            process.stop()

    def diagnostics(self) -> str:
        return "\n".join(f"--- {p.name}:\n{p.output()[-3000:]}" for p in self.running)


# --- HTTP, as a browser behind the TLS proxy ----------------------------------------------


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: str

    def json(self) -> dict[str, Any]:
        return json.loads(self.body)


def fetch(
    port: int, method: str, path: str, headers: dict[str, str], body: bytes = b""
) -> Response:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(method, path, body=body or None, headers=headers)
        raw = connection.getresponse()
        cookies = raw.headers.get_all("Set-Cookie") or []
        answer = Response(raw.status, dict(raw.headers), raw.read().decode(errors="replace"))
        answer.headers["Set-Cookie"] = "\n".join(cookies)
        return answer
    finally:
        connection.close()


@dataclass
class Patient:
    """One patient's browser. The proxy terminates TLS, so every request arrives as HTTPS
    (``X-Forwarded-Proto``) for the public host name; the session cookie is ``Secure``, so the
    cookies are kept here by hand."""

    number: int
    cookies: dict[str, str] = field(default_factory=dict)

    def call(self, port: int, method: str, path: str, **kw: Any) -> Response:
        headers = {
            "X-Forwarded-Proto": "https",
            "X-Forwarded-Host": PUBLIC_HOST,
            "X-Forwarded-For": f"203.0.113.{self.number + 1}",
            **kw.pop("headers", {}),
        }
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        response = fetch(port, method, path, headers, **kw)
        for line in filter(None, response.headers["Set-Cookie"].split("\n")):
            cookie = SimpleCookie()
            cookie.load(line)
            for name, morsel in cookie.items():
                self.cookies[name] = morsel.value
        return response

    def token(self, port: int, path: str) -> str:
        """Open a page and read its CSRF token, as a browser does."""
        page = self.call(port, "GET", path)
        assert page.status == 200, (path, page.status, page.body[:500])
        return CSRF_RE.search(page.body).group(1)

    def post(
        self,
        port: int,
        path: str,
        fields: dict[str, Any],
        files: dict[str, tuple[str, bytes]] | None = None,
    ) -> Response:
        if files:
            body, boundary = multipart(fields, files)
            content_type = f"multipart/form-data; boundary={boundary}"
        else:
            body = urlencode(fields, doseq=True).encode()
            content_type = "application/x-www-form-urlencoded"
        headers = {
            "Content-Type": content_type,
            "Referer": f"https://{PUBLIC_HOST}{path}",  # CSRF checks it on HTTPS
        }
        return self.call(port, "POST", path, body=body, headers=headers)

    def fill_steps(self, here: int, there: int) -> str:
        """The questions about urgent symptoms (all "no"), then every step up to the review,
        each page read from ``here`` and sent to ``there`` (the draft is on neither), with a
        document; the review page's CSRF token."""
        sent = self.post(
            there,
            "/request/start",
            {"csrf_token": self.token(here, "/request/start"), **red_flag_answers()},
        )
        assert sent.status == 303, sent.body[:500]
        answers = valid_answers(email=f"patient{self.number}@example.com")
        for code in REQUEST_STEPS:
            step = f"/request/steps/{code}"
            shown = step  # a step shown in parts is posted part by part, as a browser does
            while True:
                part = parse_qs(urlsplit(shown).query).get("page", [])
                fields = {**step_answers(code, answers), "csrf_token": self.token(here, shown)}
                sent = self.post(there, step, {**fields, "nav": "next", **dict(page=part)})
                assert sent.status == 303, (code, sent.body[:1000])
                location = urlsplit(sent.headers["Location"])
                if location.path != step or "page=" not in location.query:
                    break
                shown = f"{location.path}?{location.query}"
        path = "/request/steps/documents"
        fields = {"csrf_token": self.token(here, path), "nav": "next"}
        report = ("mri-report.pdf", pdf_bytes(f"MRI {self.number}"))
        sent = self.post(there, path, fields, {"files": report})
        assert sent.status == 303, sent.body[:1000]
        return self.token(here, "/request/steps/review")

    def send_request(self, port: int, token: str) -> str:
        """Send the request from its review step; the reference the confirmation page shows."""
        fields = {**step_answers("review"), "csrf_token": token, "nav": "send"}
        response = self.post(port, "/request/steps/review", fields)
        assert response.status == 303, response.body[:1000]
        page = self.call(port, "GET", "/request/submitted")
        assert page.status == 200, page.body[:500]
        return re.search(REFERENCE_RE, page.body).group(0)


def multipart(fields: dict[str, Any], files: dict[str, tuple[str, bytes]]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts: list[bytes] = []
    for name, value in fields.items():
        for item in value if isinstance(value, list) else [value]:
            parts.append(
                f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
                f"{item}\r\n".encode()
            )
    for name, (filename, content) in files.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
            f'filename="{filename}"\r\nContent-Type: application/pdf\r\n\r\n'.encode()
            + content
            + b"\r\n"
        )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), boundary


def submit(patient: Patient, ports: list[int]) -> list[str]:
    """Go through the steps reading each page from one server and sending it to the other, then
    send the request; every fourth patient sends it twice, to both servers at the same moment
    (a double click across the balancer)."""
    here, there = ports[patient.number % 2], ports[(patient.number + 1) % 2]
    token = patient.fill_steps(here, there)
    if patient.number % 4:
        return [patient.send_request(there, token)]
    twin = Patient(patient.number, dict(patient.cookies))
    together = threading.Barrier(2)

    def send(who: Patient, port: int) -> str:
        together.wait(timeout=10)
        return who.send_request(port, token)

    with ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(send, patient, there), pool.submit(send, twin, here)]
        return [f.result() for f in futures]


# --- fixtures ------------------------------------------------------------------------------


@pytest.fixture
def scale_database() -> Iterator[str]:
    """A fresh PostgreSQL database of this test's own, dropped at the end."""
    with fresh_postgres_database(PG_URL, "scale") as url:
        yield url


@pytest.fixture
def redis_url() -> str:
    parts = urlsplit(REDIS_URL)
    return urlunsplit((parts.scheme, parts.netloc, f"/{REDIS_DB}", "", ""))


@dataclass
class Cluster:
    app: Flask  # this test's own view of the shared database and queue
    ports: list[int]
    env: dict[str, str]
    processes: Processes
    workers: list[Service] = field(default_factory=list)

    def start_workers(self) -> None:
        self.workers = [
            self.processes.start(
                f"worker-{n}",
                [sys.executable, "-m", "flask", "worker", "--workers", "2"],
                self.env,
                signal.SIGINT,  # Huey's graceful stop: finish the running tasks
            )
            for n in range(2)
        ]


@pytest.fixture
def clamd_socket(tmp_path: Path) -> Iterator[str]:
    """Production requires virus scanning: a real clamd (tests/support.py)."""
    folder = tmp_path / "clamd"
    folder.mkdir()
    with running_clamd(folder) as path:
        yield path


@pytest.fixture
def cluster(
    scale_database: str, redis_url: str, smtp: SmtpServer, tmp_path: Path, clamd_socket: str
) -> Iterator[Cluster]:
    database_url = scale_database
    queue_name = f"scale-{uuid.uuid4().hex[:12]}"
    uploads = tmp_path / "uploads"  # the shared volume every server and worker mounts
    env = {
        **os.environ,
        "SPINECONSULT_ENV": "production",
        "FLASK_APP": "wsgi",
        "SECRET_KEY": secrets.token_hex(32),  # the same on every server
        "ENCRYPTION_KEY": new_key(),  # likewise: every server and worker reads every document
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "HUEY_NAME": queue_name,
        "UPLOAD_DIR": str(uploads),
        "CLAMAV_ADDRESS": clamd_socket,
        "MAIL_SERVER": "127.0.0.1",
        "MAIL_PORT": str(smtp.port),
        "STAFF_NOTIFICATION_EMAIL": "coordinators@example.com",
        "PUBLIC_BASE_URL": f"https://{PUBLIC_HOST}",
        "TRUSTED_PROXIES": "1",  # the TLS proxy in front
        "FORCE_HTTPS": "true",
        "RATELIMIT_STORAGE_URI": redis_url,  # counts shared by both servers
        "SUBMIT_RATE_LIMIT": "1000 per minute",
        "HEALTH_HEARTBEAT_MAX_AGE_SECONDS": str(HEARTBEAT_MAX_AGE),
    }
    migrate = subprocess.run(
        [sys.executable, "-m", "flask", "db", "upgrade"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert migrate.returncode == 0, migrate.stderr.decode(errors="replace")[-3000:]

    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": database_url,
            "HUEY_BACKEND": "redis",
            "REDIS_URL": redis_url,
            "HUEY_NAME": queue_name,
            "UPLOAD_DIR": str(uploads),
            "ENCRYPTION_KEY": env["ENCRYPTION_KEY"],
            "MAIL_PORT": smtp.port,
        }
    )
    processes = Processes(tmp_path)
    try:
        ports = [free_port(), free_port()]
        for n, port in enumerate(ports):
            processes.start(
                f"gunicorn-{n}",
                [
                    sys.executable,
                    "-m",
                    "gunicorn",
                    "--bind",
                    f"127.0.0.1:{port}",
                    "--workers",
                    "1",
                    "--threads",
                    "4",
                    "--graceful-timeout",
                    "5",
                    # Two masters on one machine would share the default control socket.
                    "--no-control-socket",
                    "wsgi:app",
                ],
                env,
                signal.SIGTERM,
            )
        for port in ports:
            wait_until(lambda port=port: _live(port), f"gunicorn on {port}", 45)
        yield Cluster(app, ports, env, processes)
    except BaseException:
        print(processes.diagnostics())  # pytest shows it with the failure
        raise
    finally:
        processes.stop_all()
        queue = RedisHuey(queue_name, url=redis_url)
        queue.storage.flush_all()
        for huey in (queue, app.extensions["huey"]):
            huey.storage.conn.connection_pool.disconnect()
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


def _live(port: int) -> bool:
    try:
        return fetch(port, "GET", "/health/live", {}).status == 200
    except OSError:
        return False


def ready(port: int) -> Response:
    """The load balancer's probe: plain HTTP straight to the app server, no proxy headers."""
    return fetch(port, "GET", "/health/ready", {})


# --- helpers on the shared database --------------------------------------------------------


def outbox(app: Flask) -> list[OutboxEmail]:
    with app.app_context():
        rows = list(db.session.scalars(select(OutboxEmail).order_by(OutboxEmail.id)))
        db.session.expunge_all()
        db.session.remove()
        return rows


def all_sent(app: Flask, count: int) -> bool:
    """At least ``count`` emails, all sent (the exact counts are checked at the end)."""
    rows = outbox(app)
    return len(rows) >= count and all(r.status == OutboxStatus.SENT for r in rows)


def confirm_appointments(app: Flask, references: list[str]) -> list[int]:
    """Staff confirm ``references`` into open times within the next two days (between the
    48-hour and the 2-hour reminder), dated back three days so the 48-hour reminders fall
    due at once, as after the worker was down (one whose lead time had already passed at the
    confirmation is never sent); return the appointment ids."""
    with app.app_context():
        coordinator = make_staff("coordinator", "coord@example.com")
        specialist = make_staff("specialist", "weber@example.com")
        location = make_location()
        appointment_type = make_appointment_type(minutes=30)
        make_hours(specialist, location, range(7), "00:00", "23:45")
        start = now_utc() + timedelta(hours=4)
        for reference in references:
            consultation = db.session.scalars(
                select(ConsultationRequest).where(ConsultationRequest.reference == reference)
            ).one()
            slot = open_slots(appointment_type, start, start + timedelta(hours=40))[0]
            confirm_at(
                consultation,
                coordinator,
                appointment_type,
                slot.starts_at,
                specialist.id,
                location.id,
            )
        db.session.execute(update(Appointment).values(placed_at=now_utc() - timedelta(days=3)))
        db.session.commit()
        ids = list(db.session.scalars(select(Appointment.id).order_by(Appointment.id)))
        db.session.remove()
        return ids


# --- the test ------------------------------------------------------------------------------


def test_two_servers_and_two_workers_store_send_and_remind_exactly_once(
    cluster: Cluster, smtp: SmtpServer
) -> None:
    try:
        _run(cluster, smtp)
    except BaseException:
        print(cluster.processes.diagnostics())  # pytest shows it with the failure
        raise


def _run(cluster: Cluster, smtp: SmtpServer) -> None:
    app, ports = cluster.app, cluster.ports

    # No worker has run yet: the servers are ready (they store requests, whose emails wait),
    # and name the workers as degraded.
    for port in ports:
        answer = ready(port)
        assert answer.status == 200 and answer.json()["degraded"] == ["worker_heartbeat"]
    cluster.start_workers()
    # Both servers see the database, the queue and the workers' start-up heartbeat.
    for port in ports:
        answer = wait_until(
            lambda port=port: (r := ready(port)).status == 200 and "degraded" not in r.json() and r,
            f"all well on {port}",
            45,
        )
        assert answer.json()["checks"] == {
            "database": "ok",
            "schema": "ok",
            "queue": "ok",
            "worker_heartbeat": "ok",
            "virus_scanner": "ok",
            "outbox": "ok",
        }

    # Patients, four at a time, through both servers.
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda n: submit(Patient(n), ports), range(PATIENTS)))
    for references in answers:
        assert len(set(references)) == 1  # a second post shows the first request
    references = [r[0] for r in answers]
    assert len(set(references)) == PATIENTS

    with app.app_context():
        stored = list(db.session.scalars(select(ConsultationRequest.reference)))
        assert sorted(stored) == sorted(references)  # each stored exactly once
        documents = list(db.session.scalars(select(Document)))
        assert len(documents) == PATIENTS
        storage = get_storage()  # the shared volume: every document is there, whole
        for document in documents:
            with storage.open(document.stored_name, document.sha256) as stream:
                assert hashlib.sha256(stream.read()).hexdigest() == document.sha256
        # Every email task handed over a second time (what a lost task's re-sweep does).
        deliver = app.extensions["spineconsult.deliver_email"]
        for email_id in db.session.scalars(select(OutboxEmail.id)):
            deliver(email_id)
        db.session.remove()

    emails = 2 * PATIENTS
    wait_until(lambda: all_sent(app, emails), f"{emails} emails sent", 40)

    # Staff confirm some appointments; their reminders fall due at once.
    appointment_ids = confirm_appointments(app, references[:APPOINTMENTS])
    assert len(appointment_ids) == APPOINTMENTS
    emails += APPOINTMENTS
    wait_until(lambda: all_sent(app, emails), "the confirmations sent", 30)

    # The reminder job, enqueued once per worker thread: both workers run it at the same time.
    send_reminders = app.extensions["spineconsult.send_reminders"]
    for _ in range(REMINDER_RUNS):
        send_reminders()

    def reminder_runs() -> list[int]:
        return [
            sum(".send_reminders: " in line and " executed in " in line for line in lines)
            for lines in (w.output().splitlines() for w in cluster.workers)
        ]

    wait_until(lambda: sum(reminder_runs()) >= REMINDER_RUNS, "the reminder runs", 30)
    emails += APPOINTMENTS
    wait_until(lambda: all_sent(app, emails), "the reminders sent", 30)

    # The workers stop; the servers stay ready and, once the heartbeat is old, name the workers
    # as degraded (the database and the queue are fine).
    for worker in cluster.workers:
        cluster.processes.stop(worker)
    assert all(runs >= 1 for runs in reminder_runs()), reminder_runs()  # the premise
    for port in ports:
        answer = wait_until(
            lambda port=port: "degraded" in (r := ready(port)).json() and r,
            f"degraded on {port}",
            HEARTBEAT_MAX_AGE + 15,
        )
        body = answer.json()
        assert answer.status == 200 and body["degraded"] == ["worker_heartbeat"]
        assert body["checks"] == {
            "database": "ok",
            "schema": "ok",
            "queue": "ok",
            "worker_heartbeat": "stale",
            "virus_scanner": "ok",
            "outbox": "ok",
        }
        assert fetch(port, "GET", "/health/live", {}).status == 200

    # Nothing more can arrive now: every email reached the mail server exactly once.
    rows = outbox(app)
    assert len(rows) == emails
    received = Counter(r.message["Message-ID"] for r in smtp.received)
    assert received == Counter({row.message_id: 1 for row in rows})
    reminders = [r for r in smtp.received if r.message["Subject"].startswith("Reminder:")]
    assert len(reminders) == APPOINTMENTS
    assert len({r.rcpt_tos[0] for r in reminders}) == APPOINTMENTS
    with app.app_context():
        reminded = db.session.scalars(select(ReminderSent.appointment_id)).all()
        assert sorted(reminded) == appointment_ids  # one 48-hour reminder per appointment
        assert db.session.scalar(select(func.count()).select_from(ConsultationRequest)) == (
            PATIENTS
        )
        db.session.remove()
