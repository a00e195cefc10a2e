"""No patient data in the application's logs, for a request's whole life."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from booking.extensions import db
from booking.notifications.models import OutboxEmail
from booking.notifications.services import deliver_outbox_email
from booking.requests.models import ConsultationRequest
from tests.factories import make_location, make_staff
from tests.support import (
    ROOT,
    AuthActions,
    files_environment,
    pdf_bytes,
    post_request,
    valid_answers,
)

SECRETS = [
    "Erika", "Mustermann", "erika.mustermann", "901820", "1970-05-17", "Ibuprofen",
    "Penicillin", "Office work", "herniated", "Herniated", "MRI in March", "mri-report",
]  # fmt: skip


def test_a_full_request_leaves_no_patient_data_in_the_logs(
    app: Flask, client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    response = post_request(client, valid_answers(), files=[(pdf_bytes(), "mri-report.pdf")])
    assert response.status_code == 303
    assert re.fullmatch(r"[0-9a-f]{16}", response.headers["X-Request-ID"])
    with app.app_context():
        make_staff("coordinator", "coord@example.com")
        make_location()
        reference = db.session.scalars(select(ConsultationRequest.reference)).one()
        ids = list(db.session.scalars(select(OutboxEmail.id)))
        for email_id in ids:  # the mail server is down in tests: a logged failure
            deliver_outbox_email(email_id)
    AuthActions(client).attempt("coord@example.com")
    client.get(f"/staff/requests/{reference}")
    client.get("/staff/?q=Mustermann")
    text = caplog.text
    assert "outbox email" in text  # the logs do say what happened
    for secret in SECRETS:
        assert secret not in text, f"{secret!r} appeared in the logs"


WORKER_LOGS = """
import logging

from booking import create_app
from booking.logging import init_worker_logging

app = create_app()  # development settings, not the tests': the web app's own log handler
init_worker_logging()  # what `flask worker` does before it starts Huey's consumer
line = "Unhandled exception in task: GET /manage/open/Tok3n-of-the-patient failed"
logging.getLogger("huey").error(line)  # the worker's own lines: Huey's, SQLAlchemy's
logging.getLogger("booking.tasks").error(line)  # the app's, through the web app's handler
"""


def _run_python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a Python process of its own (its logging as a server's, not pytest's),
    from the project's folder with ``env``; it must succeed. Its output is in ``.stderr``."""
    run = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    return run


def test_the_workers_log_redacts_tokens_as_the_web_apps_does(tmp_path: Path) -> None:
    """``flask worker`` logs through the root handler (Huey's errors and their tracebacks):
    a private link's token an error quotes is redacted there as in the web app's log."""
    env = files_environment(tmp_path, "worker.sqlite3")
    run = _run_python(WORKER_LOGS, env)
    lines = [line for line in run.stderr.splitlines() if "Unhandled exception in task" in line]
    assert len(lines) == 2, run.stderr
    for line in lines:
        assert "GET /manage/open/[redacted] failed" in line
    assert "Tok3n" not in run.stderr


# An app server as gunicorn runs it: the app's own logging set up, no root handler. Its
# rate-limit storage (Redis) unreachable: nothing listens on the port.
LIMITER_LOGS = """
import sys

from booking import create_app
from booking.extensions import limiter

app = create_app()  # development settings, not the tests': the web app's own log handler


@limiter.limit("5 per minute", key_func=lambda: "who@example.com")
def limited() -> str:
    return "ok"


app.add_url_rule("/limited", view_func=limited)
client = app.test_client()
answers = [client.get("/limited").status_code for _ in range(7)]
print(answers, file=sys.stderr)
"""


def test_rate_limits_counted_in_memory_while_redis_is_down_is_logged(tmp_path: Path) -> None:
    """Flask-Limiter's warning that its storage is unreachable (limits counted in each
    process's memory meanwhile) reaches the app server's log, as the app's own lines; its
    lines naming a limit's key (an email address typed) do not."""
    from tests.smtp import free_port

    env = files_environment(
        tmp_path, "limits.sqlite3", RATELIMIT_STORAGE_URI=f"redis://127.0.0.1:{free_port()}/0"
    )
    run = _run_python(LIMITER_LOGS, env)
    assert "[200, 200, 200, 200, 200, 429, 429]" in run.stderr  # limits hold, in memory
    [line] = [line for line in run.stderr.splitlines() if "falling back" in line]
    assert " WARNING flask-limiter [" in line
    assert "Rate limit storage unreachable - falling back to in-memory storage" in line
    assert "who@example.com" not in run.stderr
