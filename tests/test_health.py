"""Health endpoints: liveness needs only the process; readiness needs the database with this
code's schema, and names whatever fails. The task queue's storage and a recent worker
heartbeat are named under "degraded" (the server still stores every request, its emails wait
in the outbox), and fail readiness only with ``HEALTH_QUEUE_REQUIRED``."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory
from flask import Flask
from flask.testing import FlaskClient

from booking import create_app
from booking.extensions import db
from booking.health.checks import HEARTBEAT_KEY, record_heartbeat
from booking.timeutil import now_utc
from tests.conftest import MIGRATIONS
from tests.smtp import free_port
from tests.support import running_clamd, start_worker, stop_worker, wait_until

MAX_AGE = 300


def _beat(app: Flask, seconds_ago: float) -> None:
    record_heartbeat(app.extensions["huey"], at=now_utc().timestamp() - seconds_ago)


def _ready(client: FlaskClient) -> tuple[int, dict[str, Any]]:
    response = client.get("/health/ready")
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["Cache-Control"] == "no-store, private"
    assert "Set-Cookie" not in response.headers
    return response.status_code, response.get_json()


@pytest.fixture
def app_settings(app_settings: dict[str, Any]) -> dict[str, Any]:
    app_settings["HEALTH_HEARTBEAT_MAX_AGE_SECONDS"] = MAX_AGE
    return app_settings


@pytest.fixture
def make_app() -> Iterator[Callable[[dict[str, Any]], Flask]]:
    """Apps with settings of a test's own; their connections are closed at the end."""
    made: list[Flask] = []

    def make(settings: dict[str, Any]) -> Flask:
        made.append(create_app(settings))
        return made[-1]

    yield make
    for app in made:
        with app.app_context():
            db.engine.dispose()


def test_ready_after_the_heartbeat_task_runs(app: Flask, client: FlaskClient) -> None:
    app.config["HEALTH_QUEUE_REQUIRED"] = True
    status, body = _ready(client)
    assert status == 503  # no worker has ever run
    assert body["failing"] == ["worker_heartbeat"]
    assert body["checks"]["worker_heartbeat"] == "missing"

    app.extensions["spineconsult.worker_heartbeat"].call_local()  # what the worker runs
    status, body = _ready(client)
    assert status == 200
    assert body == {
        "status": "ready",
        "checks": {
            "database": "ok",
            "schema": "ok",
            "queue": "ok",
            "worker_heartbeat": "ok",
            "virus_scanner": "skipped",
            "outbox": "ok",
        },
        "heartbeat_age_seconds": body["heartbeat_age_seconds"],
    }
    assert 0 <= body["heartbeat_age_seconds"] <= MAX_AGE


def test_no_worker_is_degraded_not_down(app: Flask, client: FlaskClient) -> None:
    """Every worker stopped: requests are still stored and their emails wait in the outbox,
    so the server stays ready and names the workers for monitoring."""
    status, body = _ready(client)
    assert (status, body["status"]) == (200, "ready")  # no worker has ever run
    assert body["degraded"] == ["worker_heartbeat"]
    assert body["checks"]["worker_heartbeat"] == "missing"
    assert "failing" not in body
    _beat(app, MAX_AGE + 60)
    status, body = _ready(client)
    assert (status, body["degraded"]) == (200, ["worker_heartbeat"])
    assert body["checks"]["worker_heartbeat"] == "stale"
    _beat(app, 0)
    status, body = _ready(client)
    assert status == 200 and "degraded" not in body


def test_stale_heartbeat_is_503_naming_it_when_the_queue_is_required(
    app: Flask, client: FlaskClient
) -> None:
    app.config["HEALTH_QUEUE_REQUIRED"] = True
    _beat(app, MAX_AGE - 60)
    assert _ready(client)[0] == 200
    _beat(app, MAX_AGE + 60)
    status, body = _ready(client)
    assert status == 503
    assert body["status"] == "unavailable"
    assert body["failing"] == ["worker_heartbeat"]
    assert body["checks"] == {
        "database": "ok",
        "schema": "ok",
        "queue": "ok",
        "worker_heartbeat": "stale",
        "virus_scanner": "skipped",
        "outbox": "ok",
    }
    assert body["heartbeat_age_seconds"] > MAX_AGE
    # A worker comes back: ready again.
    _beat(app, 0)
    assert _ready(client)[0] == 200


def test_worker_clock_slightly_ahead_counts_as_fresh(app: Flask, client: FlaskClient) -> None:
    _beat(app, -5)
    status, body = _ready(client)
    assert status == 200 and body["heartbeat_age_seconds"] == 0


@pytest.mark.parametrize("junk", [b"", b"not a time", b"nan", b"inf", b"\x80\x04K\x01."])
def test_a_heartbeat_that_is_not_a_time_counts_as_missing(
    app: Flask, client: FlaskClient, junk: bytes
) -> None:
    app.extensions["huey"].storage.put_data(HEARTBEAT_KEY, junk)
    status, body = _ready(client)
    assert (status, body["degraded"]) == (200, ["worker_heartbeat"])
    assert body["checks"]["worker_heartbeat"] == "missing"


def test_heartbeat_check_can_be_turned_off(app: Flask, client: FlaskClient) -> None:
    app.config["HEALTH_QUEUE_REQUIRED"] = True
    app.config["HEALTH_HEARTBEAT_MAX_AGE_SECONDS"] = 0
    status, body = _ready(client)
    assert status == 200
    assert body["checks"]["worker_heartbeat"] == "skipped"


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("sqlite:///{tmp}/missing-folder/db.sqlite3", id="sqlite"),
        # Nothing listens on port 1: refused at once, as when the server is down.
        pytest.param("postgresql+psycopg://postgres:secret@127.0.0.1:1/clinic", id="postgresql"),
    ],
)
def test_database_down_is_503_naming_the_database(
    make_app: Callable[[dict[str, Any]], Flask], tmp_path: Path, url: str
) -> None:
    app = make_app(
        {
            "SQLALCHEMY_DATABASE_URI": url.format(tmp=tmp_path),
            "UPLOAD_DIR": str(tmp_path / "uploads"),
        }
    )
    _beat(app, 0)
    client = app.test_client()
    status, body = _ready(client)
    assert status == 503
    assert body["failing"] == ["database"]
    assert body["checks"] == {
        "database": "unavailable",
        "schema": "unknown",
        "queue": "ok",
        "worker_heartbeat": "ok",
        "virus_scanner": "skipped",
        "outbox": "unknown",  # not read: the database is named already
    }
    text = client.get("/health/ready").get_data(as_text=True)
    for secret in ("sqlite", "postgres", "secret", "127.0.0.1", "missing-folder", "Error"):
        assert secret not in text
    # Liveness never asks the database: the process is up.
    assert client.get("/health/live").status_code == 200


def _set_schema_version(app: Flask, *versions: str) -> None:
    with app.app_context(), db.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM alembic_version"))
        for version in versions:
            conn.execute(sa.text("INSERT INTO alembic_version VALUES (:v)"), {"v": version})


def test_a_database_a_migration_behind_is_503_naming_the_schema(
    app: Flask, client: FlaskClient
) -> None:
    """A release started before ``flask db upgrade``: its pages would fail on what the last
    migration adds, so it takes no traffic."""
    _beat(app, 0)
    assert _ready(client)[1]["checks"]["schema"] == "ok"
    script = ScriptDirectory(str(MIGRATIONS))
    (head,) = script.get_heads()
    previous = script.get_revision(head).down_revision
    assert isinstance(previous, str)
    _set_schema_version(app, previous)
    status, body = _ready(client)
    assert status == 503
    assert body["failing"] == ["schema"]
    assert body["checks"]["schema"] == "outdated"
    assert body["checks"]["outbox"] == "unknown"  # its table may not be what the code reads
    assert previous not in json.dumps(body)  # revisions go to the log only
    # Migrated: ready again, without a restart.
    _set_schema_version(app, head)
    assert _ready(client)[0] == 200


def test_a_database_never_migrated_is_503_naming_the_schema(
    make_app: Callable[[dict[str, Any]], Flask], tmp_path: Path
) -> None:
    """A database with no tables at all answers ``SELECT 1`` like any other."""
    app = make_app(
        {
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'empty.sqlite3'}",
            "UPLOAD_DIR": str(tmp_path / "uploads"),
        }
    )
    _beat(app, 0)
    status, body = _ready(app.test_client())
    assert status == 503
    assert body["failing"] == ["schema"]
    assert body["checks"]["database"] == "ok" and body["checks"]["schema"] == "missing"


def test_no_schema_version_on_the_test_database_is_missing(app: Flask, client: FlaskClient) -> None:
    _beat(app, 0)
    _set_schema_version(app)
    status, body = _ready(client)
    assert status == 503 and body["checks"]["schema"] == "missing"
    with app.app_context(), db.engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE alembic_version"))
    status, body = _ready(client)
    assert status == 503 and body["checks"]["schema"] == "missing"
    assert body["checks"]["database"] == "ok"  # the failed read did not spoil the connection


def test_a_database_migrated_past_this_code_stays_ready(app: Flask, client: FlaskClient) -> None:
    """A rolling restart: the new release migrated the database, and this server, still on
    the old code, keeps serving until its turn (docs/production.md)."""
    _beat(app, 0)
    _set_schema_version(app, "f00dfeedbeef")  # a revision this code does not know
    status, body = _ready(client)
    assert status == 200 and body["checks"]["schema"] == "newer"


def test_queue_storage_down_is_degraded_not_down(
    app: Flask, make_app: Callable[[dict[str, Any]], Flask], app_settings: dict[str, Any]
) -> None:
    """Redis down: requests are still stored (their emails wait in the outbox for the sweep),
    and every app server shares the one Redis. Failing readiness would take them all out of
    the load balancer: the server stays ready and names the queue for monitoring."""
    # Nothing listens there: refused at once, as when Redis is down.
    app_settings.update(HUEY_BACKEND="redis", REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    client = make_app(app_settings).test_client()
    status, body = _ready(client)
    assert (status, body["status"]) == (200, "ready")
    assert body["degraded"] == ["queue"]
    assert "failing" not in body
    assert body["checks"] == {
        "database": "ok",
        "schema": "ok",
        "queue": "unavailable",
        "worker_heartbeat": "unknown",  # not read: the queue is named already
        "virus_scanner": "skipped",
        "outbox": "ok",
    }
    assert "redis" not in client.get("/health/ready").get_data(as_text=True)


def test_a_redis_that_never_answers_does_not_hold_the_probe(
    app: Flask, make_app: Callable[[dict[str, Any]], Flask], app_settings: dict[str, Any]
) -> None:
    """A Redis host gone without a trace, or one that takes the connection and never answers:
    the probe must answer well before a load balancer's timeout (here: REDIS_URL's own
    5 seconds, as docs/production.md advises), or the server is marked unready after all."""
    import socket
    import time

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # connections complete in the backlog; nothing is ever read or said
        port = silent.getsockname()[1]
        app_settings.update(
            HUEY_BACKEND="redis",
            REDIS_URL=f"redis://127.0.0.1:{port}/0?socket_connect_timeout=5&socket_timeout=5",
        )
        client = make_app(app_settings).test_client()
        started = time.monotonic()
        status, body = _ready(client)
        assert time.monotonic() - started < 2
    assert (status, body["checks"]["queue"], body["degraded"]) == (200, "unavailable", ["queue"])


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs Redis (REDIS_URL)")
def test_the_probe_reads_the_heartbeat_a_worker_wrote_to_redis(
    app: Flask, make_app: Callable[[dict[str, Any]], Flask], app_settings: dict[str, Any]
) -> None:
    """The probe reads Redis on connections of its own: the same key the workers write."""
    app_settings.update(
        HUEY_BACKEND="redis", REDIS_URL=os.environ["REDIS_URL"], HUEY_NAME=f"test-{uuid.uuid4()}"
    )
    app = make_app(app_settings)
    client = app.test_client()
    assert _ready(client)[1]["checks"]["worker_heartbeat"] == "missing"
    _beat(app, 0)
    status, body = _ready(client)
    assert (status, body["checks"]["queue"], body["checks"]["worker_heartbeat"]) == (
        200,
        "ok",
        "ok",
    )
    app.extensions["huey"].storage.pop_data(HEARTBEAT_KEY)


def test_queue_storage_down_is_503_naming_the_queue_when_required(
    app: Flask, make_app: Callable[[dict[str, Any]], Flask], app_settings: dict[str, Any]
) -> None:
    app_settings.update(
        HUEY_BACKEND="redis",
        REDIS_URL=f"redis://127.0.0.1:{free_port()}/0",
        HEALTH_QUEUE_REQUIRED=True,
    )
    client = make_app(app_settings).test_client()
    status, body = _ready(client)
    assert status == 503
    assert body["failing"] == ["queue"]
    assert body["checks"] == {
        "database": "ok",
        "schema": "ok",
        "queue": "unavailable",
        "worker_heartbeat": "unknown",
        "virus_scanner": "skipped",
        "outbox": "ok",
    }
    assert "redis" not in client.get("/health/ready").get_data(as_text=True)


def test_plain_http_probe_works_when_https_is_forced(
    app: Flask,  # makes the database (migrated) the test's own app reads
    make_app: Callable[[dict[str, Any]], Flask],
    app_settings: dict[str, Any],
) -> None:
    app_settings.update(FORCE_HTTPS=True, TRUSTED_PROXIES=1)
    app = make_app(app_settings)
    client = app.test_client()
    _beat(app, 0)
    assert client.get("/").status_code == 302  # the premise: pages go to https
    assert client.get("/health/live").status_code == 200
    assert client.get("/health/ready").status_code == 200


@pytest.fixture
def application_limit(app_settings: dict[str, Any]) -> Iterator[str]:
    """An application-wide limit. Flask-Limiter keeps it on its one (global) object for every
    later app in the process, so it is taken off again afterwards."""
    from booking.extensions import limiter

    app_settings["RATELIMIT_APPLICATION"] = "3 per minute"
    yield app_settings["RATELIMIT_APPLICATION"]
    limiter.limit_manager.set_application_limits([])


def test_health_endpoints_are_not_rate_limited(
    app: Flask,  # makes the database (migrated) the test's own app reads
    make_app: Callable[[dict[str, Any]], Flask],
    app_settings: dict[str, Any],
    application_limit: str,
) -> None:
    app = make_app(app_settings)
    client = app.test_client()
    _beat(app, 0)
    assert [client.get("/privacy").status_code for _ in range(4)][-1] == 429  # the premise
    assert {client.get("/health/live").status_code for _ in range(10)} == {200}
    assert {client.get("/health/ready").status_code for _ in range(10)} == {200}


@pytest.mark.slow
def test_a_starting_worker_writes_a_heartbeat(
    app: Flask,  # makes the database (migrated) the test's own app reads
    make_app: Callable[[dict[str, Any]], Flask],
    app_settings: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A real ``flask worker`` process on the SQLite queue: ready soon after it starts, 503
    again once its heartbeat grows old. Its periodic jobs are off, so only the heartbeat
    written at start-up can make it ready."""
    app_settings.update(
        HUEY_BACKEND="sqlite",
        HUEY_NAME=f"test-{uuid.uuid4().hex}",
        HUEY_SQLITE_PATH=str(tmp_path / "huey.sqlite3"),
        HEALTH_QUEUE_REQUIRED=True,
    )
    app = make_app(app_settings)
    client = app.test_client()
    assert _ready(client)[0] == 503
    worker = start_worker(
        {
            "DATABASE_URL": app_settings["SQLALCHEMY_DATABASE_URI"],
            "HUEY_SQLITE_PATH": app_settings["HUEY_SQLITE_PATH"],
            "HUEY_NAME": app_settings["HUEY_NAME"],
            "UPLOAD_DIR": app_settings["UPLOAD_DIR"],
        },
        "--no-periodic",
    )
    try:
        wait_until(lambda: _ready(client)[0] == 200, "the worker's first heartbeat")
    finally:
        print(stop_worker(worker))  # pytest shows the worker's output when this fails
    # The worker is gone; with a short threshold its last heartbeat soon counts as stale: move
    # the readiness check's clock on rather than wait.
    app.config["HEALTH_HEARTBEAT_MAX_AGE_SECONDS"] = 1
    later = now_utc() + timedelta(seconds=5)
    monkeypatch.setattr("booking.health.checks.now_utc", lambda: later)
    status, body = _ready(client)
    assert status == 503 and body["failing"] == ["worker_heartbeat"]


def test_a_silent_virus_scanner_is_reported_without_failing_readiness(
    app: Flask,  # makes the database (migrated) the test's own app reads
    make_app: Callable[[dict[str, Any]], Flask],
    app_settings: dict[str, Any],
    tmp_path: Path,
) -> None:
    """Uploads need clamd; nothing else does, and one clamd may serve every server: its
    absence is named under "degraded" for monitoring, and the server stays ready."""
    app_settings.update(CLAMAV_ENABLED=True, CLAMAV_ADDRESS=str(tmp_path / "no-clamd.ctl"))
    app = make_app(app_settings)
    _beat(app, 0)
    client = app.test_client()
    status, body = _ready(client)
    assert status == 200 and body["status"] == "ready"
    assert body["checks"]["virus_scanner"] == "unavailable"
    assert body["degraded"] == ["virus_scanner"]
    assert "no-clamd" not in client.get("/health/ready").get_data(as_text=True)

    (tmp_path / "clamd").mkdir()
    with running_clamd(tmp_path / "clamd") as socket_path:
        app.config["CLAMAV_ADDRESS"] = socket_path
        status, body = _ready(client)
    assert status == 200 and body["checks"]["virus_scanner"] == "ok"
    assert "degraded" not in body


def test_an_outbox_backlog_or_a_recent_failure_is_degraded_not_down(
    app: Flask, client: FlaskClient
) -> None:
    """Emails waiting too long (the mail server down or refusing the clinic, workers stuck)
    or one failed for good in the last day: the server stays ready, since it can still
    take requests whose emails wait in the outbox, and the outbox is named as degraded."""
    from sqlalchemy import update

    from booking.notifications.models import OutboxEmail, OutboxStatus
    from tests.factories import make_request

    _beat(app, 0)
    max_age = app.config["HEALTH_OUTBOX_MAX_AGE_SECONDS"]
    with app.app_context():
        make_request()  # two emails, pending and fresh
    status, body = _ready(client)
    assert (status, body["checks"]["outbox"]) == (200, "ok")
    assert "degraded" not in body

    def change(**values: Any) -> None:
        with app.app_context():
            db.session.execute(update(OutboxEmail).values(**values))
            db.session.commit()

    change(created_at=now_utc() - timedelta(seconds=max_age + 60))
    status, body = _ready(client)
    assert (status, body["status"], body["degraded"]) == (200, "ready", ["outbox"])
    assert body["checks"]["outbox"] == "backlog"

    change(status=OutboxStatus.FAILED, claimed_at=now_utc() - timedelta(hours=23))
    status, body = _ready(client)
    assert (status, body["checks"]["outbox"], body["degraded"]) == (200, "failed", ["outbox"])

    change(claimed_at=now_utc() - timedelta(hours=25))  # failed, but not in the last day
    status, body = _ready(client)
    assert (status, body["checks"]["outbox"]) == (200, "ok")

    app.config["HEALTH_OUTBOX_MAX_AGE_SECONDS"] = 0
    change(status=OutboxStatus.PENDING)
    assert _ready(client)[1]["checks"]["outbox"] == "skipped"


def test_the_outbox_check_never_waits_behind_a_writer(app: Flask, client: FlaskClient) -> None:
    """On SQLite every transaction takes the write lock at its start; the probe's read of
    the outbox must not queue behind a long write (the probe has seconds at most)."""
    import time

    _beat(app, 0)
    with app.app_context():
        if db.engine.dialect.name != "sqlite":
            pytest.skip("the write lock taken at BEGIN is SQLite's")
        writer = db.engine.raw_connection()
    try:
        writer.execute("BEGIN IMMEDIATE")  # another process in the middle of a write
        started = time.monotonic()
        status, body = _ready(client)
        assert time.monotonic() - started < 2
        assert (status, body["checks"]["outbox"]) == (200, "ok")
    finally:
        writer.rollback()
        writer.close()
