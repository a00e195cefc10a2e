"""Readiness checks: can this app server do its work right now?

What makes a server unable to serve is the database: it must answer, with the schema this
code was written for. The task queue's storage (Redis, or the SQLite file without it) and the
workers, whose heartbeat must be recent, are checked too, but by default they only make the
server "degraded": while they are down every request is still stored whole and its emails
wait in the outbox (the sweep hands them to the queue once it is back), and the queue is
shared by every app server, so failing readiness for it would take them all out of the load
balancer at once: the clinic's site dark because of its mail. ``HEALTH_QUEUE_REQUIRED`` makes
them fail readiness again, for a clinic that would rather stop taking requests.
The heartbeat lives in Huey's own key-value storage, next to the queue: it needs no table and
no migration, and a worker that can write it reaches the same queue the app servers write to.

Every check is one cheap round trip. Results name the check and say ``ok`` or what is wrong in
a word; exception messages (which may carry host names or user names) only go to the log.

The virus scanner (clamd) is reported too, but never makes a server unready: while it is down
uploads are refused or held (``CLAMAV_WHEN_DOWN``) and everything else works, and with one
clamd shared by every server, failing readiness would take the whole site down for it.
The database must also have the schema this code was written for: its ``alembic_version``
must be the migrations folder's head (read once per process, when the app is made). A
database never migrated, or one or more migrations behind (a release installed and started
before ``flask db upgrade``), is not ready: every page that reads a new table or column
would fail. A database *ahead* of the code (a revision the folder does not know) is the
rolling restart of a release: the migration ran, the old code keeps serving until its
server restarts (docs/production.md), so that counts as ready (``newer``).

So is the outbox: an email waiting longer than ``HEALTH_OUTBOX_MAX_AGE_SECONDS`` (the mail
server refusing or down, the workers too few or stuck) or one failed for good in the last
day. This app server can still take requests (their emails wait in the outbox), so taking
it out of the load balancer would help nobody. Monitoring should alert on ``"degraded"`` in
the body.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path

from alembic.script import ScriptDirectory
from flask import Flask, current_app
from huey import Huey
from huey.constants import EmptyData
from huey.storage import BaseStorage, RedisStorage
from sqlalchemy import func, select

from booking.documents.scanning import scanner_answers, scanning_enabled
from booking.extensions import db
from booking.notifications.models import WAITING, OutboxEmail, OutboxStatus
from booking.timeutil import now_utc

log = logging.getLogger(__name__)

HEARTBEAT_KEY = "spineconsult.worker_heartbeat"
DATABASE, QUEUE, HEARTBEAT, SCANNER = "database", "queue", "worker_heartbeat", "virus_scanner"
OUTBOX = "outbox"
SCHEMA = "schema"
MIGRATIONS_KEY = "spineconsult.migrations"  # app.extensions: the code's Migrations
# States that never fail readiness: "unknown" is not checked because what it depends on
# failed (and is named already); "newer" is a schema migrated past this code (see above).
PASSING = frozenset({"ok", "skipped", "unknown", "newer"})
# Reported, never failing readiness (see above).
ADVISORY = frozenset({SCANNER, OUTBOX})
# Reported, failing readiness only with HEALTH_QUEUE_REQUIRED (see above).
QUEUE_CHECKS = frozenset({QUEUE, HEARTBEAT})
# An execution option for a read that must never wait behind a writer: on SQLite, where
# every transaction otherwise begins IMMEDIATE (taking the write lock), its transaction
# begins DEFERRED (booking._configure_sqlite). The probe's outbox read uses it.
PROBE_READ = "spineconsult_probe_read"
# A failed email counts against the outbox this long after its last attempt.
FAILED_RECENTLY = timedelta(days=1)


@dataclass(frozen=True)
class Readiness:
    checks: dict[str, str]  # check name -> "ok" or a one-word reason
    heartbeat_age_seconds: int | None
    advisory: frozenset[str] = ADVISORY | QUEUE_CHECKS  # named, never failing

    @property
    def failing(self) -> list[str]:
        return [
            name
            for name, state in self.checks.items()
            if state not in PASSING and name not in self.advisory
        ]

    @property
    def degraded(self) -> list[str]:
        """Advisory checks that fail: the server works, part of it does not."""
        return sorted(
            name
            for name in self.advisory
            if self.checks.get(name, "ok") not in ("ok", "skipped", "unknown")
        )

    @property
    def ready(self) -> bool:
        return not self.failing


def record_heartbeat(huey: Huey, at: float | None = None) -> None:
    """Note that a worker is alive: the time as a UTC timestamp, nothing else.

    Written as plain text through the storage rather than ``huey.put``, which pickles: the app
    servers read it, and they should never unpickle what they find in Redis.
    """
    at = now_utc().timestamp() if at is None else at
    huey.storage.put_data(HEARTBEAT_KEY, repr(at).encode())


# Redis answers a read in milliseconds when it is well. One that vanished without a trace (a
# host down, a firewall dropping packets) or takes the connection and never answers would hold
# the probe as long as REDIS_URL's timeouts say (none by default: minutes, the system's
# connect timeout), past the load balancer's: the server marked unready after all, for a check
# that is only "degraded". So the probe reads on connections of its own, with this timeout.
READY_QUEUE_SECONDS = 0.5
PROBE_STORAGE_KEY = "spineconsult.probe_storage"  # app.extensions: (the queue's, the probe's)


def _probe_storage(huey: Huey) -> BaseStorage:
    """The queue's storage, or for Redis the same keys on a pool of the probe's own (the same
    address, password and TLS) whose connections wait ``READY_QUEUE_SECONDS`` at most. Made
    once per process."""
    storage = huey.storage
    if not isinstance(storage, RedisStorage):
        return storage  # a local file (SQLite) or memory: nothing to wait for over a network
    made = current_app.extensions.get(PROBE_STORAGE_KEY)
    if made is None or made[0] is not storage:
        pool = storage.pool
        settings = {
            **pool.connection_kwargs,
            "socket_connect_timeout": READY_QUEUE_SECONDS,
            "socket_timeout": READY_QUEUE_SECONDS,
        }
        probe_pool = type(pool)(connection_class=pool.connection_class, **settings)
        probe = RedisStorage(storage.name, connection_pool=probe_pool, clean_name=False)
        made = current_app.extensions[PROBE_STORAGE_KEY] = (storage, probe)
    return made[1]


def _read_heartbeat(huey: Huey) -> float | None:
    raw = _probe_storage(huey).peek_data(HEARTBEAT_KEY)
    if raw is EmptyData:
        return None
    try:
        at = float(bytes(raw) if isinstance(raw, memoryview) else raw)
    except (TypeError, ValueError):
        at = math.nan
    # Anything else is not ours: it counts as missing until a worker writes it again.
    return at if math.isfinite(at) else None


# clamd answers a PING in milliseconds when it is well. A clamd that takes the connection and
# never answers must not hold the probe past an orchestrator's timeout (Kubernetes: 1 s):
# every server would be marked unready over what only uploads need.
READY_PING_SECONDS = 0.5


@dataclass(frozen=True)
class Migrations:
    """What the code's migrations folder says: its head(s) and every revision it knows."""

    heads: frozenset[str]
    known: frozenset[str]


@cache
def read_migrations(directory: str) -> Migrations:
    """The migrations folder's heads and revisions, parsed once per process (every migration
    file is imported to read them)."""
    script = ScriptDirectory(directory)
    return Migrations(
        heads=frozenset(script.get_heads()),
        known=frozenset(revision.revision for revision in script.walk_revisions()),
    )


def migrations_directory(app: Flask) -> str:
    """The folder ``flask db`` uses (Flask-Migrate's ``directory``), relative to the project
    rather than to wherever the process was started."""
    directory = Path(app.extensions["migrate"].directory)
    if not directory.is_absolute():
        directory = Path(app.root_path).parent / directory
    return str(directory)


def pin_migrations(app: Flask) -> None:
    """Read the code's migrations when the app is made, not at the first probe: the files on
    disk may by then belong to a release installed but not yet started."""
    app.extensions[MIGRATIONS_KEY] = read_migrations(migrations_directory(app))


def check_readiness(now: float | None = None) -> Readiness:
    """Check the database and its schema, the queue storage, the worker heartbeat, the
    virus scanner and the outbox, each once."""
    now = now_utc().timestamp() if now is None else now
    advisory = ADVISORY if current_app.config["HEALTH_QUEUE_REQUIRED"] else ADVISORY | QUEUE_CHECKS
    database, schema = _check_database()
    checks = {
        DATABASE: database,
        SCHEMA: schema,
        SCANNER: ("ok" if scanner_answers(READY_PING_SECONDS) else "unavailable")
        if scanning_enabled()
        else "skipped",
        OUTBOX: _check_outbox(now) if schema in ("ok", "newer") else "unknown",
    }
    max_age = current_app.config["HEALTH_HEARTBEAT_MAX_AGE_SECONDS"]
    huey: Huey = current_app.extensions["huey"]
    try:
        # Reading the heartbeat is the queue check too: one round trip to the storage.
        beat = _read_heartbeat(huey)
    except Exception as exc:  # any storage error means the queue is unusable
        log.warning("readiness: task queue storage unavailable (%s)", type(exc).__name__)
        checks[QUEUE] = "unavailable"
        checks[HEARTBEAT] = "unknown" if max_age else "skipped"
        return Readiness(checks, None, advisory)
    checks[QUEUE] = "ok"
    # A worker's clock a little ahead of ours is not a problem: its age counts as zero.
    age = None if beat is None else max(0, int(now - beat))
    if not max_age:
        checks[HEARTBEAT] = "skipped"
    elif age is None:
        checks[HEARTBEAT] = "missing"
    else:
        checks[HEARTBEAT] = "ok" if age <= max_age else "stale"
    return Readiness(checks, age, advisory)


def _check_outbox(now: float) -> str:
    """``backlog``: an email has waited (pending, or claimed and not finished) longer than
    ``HEALTH_OUTBOX_MAX_AGE_SECONDS`` since it was written; ``failed``: one failed for good
    within the last day (the mail server refused it, its retries ran out, it could not be
    decrypted); else ``ok``. One round trip, through the ``status`` index; no content read."""
    max_age = current_app.config["HEALTH_OUTBOX_MAX_AGE_SECONDS"]
    if not max_age:
        return "skipped"
    at = datetime.fromtimestamp(now, UTC)
    waiting = (
        select(func.min(OutboxEmail.created_at))
        .where(OutboxEmail.status.in_(WAITING))
        .scalar_subquery()
    )
    failed = (
        select(OutboxEmail.id)
        .where(
            OutboxEmail.status == OutboxStatus.FAILED,
            OutboxEmail.claimed_at > at - FAILED_RECENTLY,
        )
        .limit(1)
        .scalar_subquery()
    )
    try:
        with db.engine.execution_options(**{PROBE_READ: True}).connect() as connection:
            oldest, failed_id = connection.execute(select(waiting, failed)).one()
    except Exception as exc:  # reported as unknown: the database check names an outage
        log.warning("readiness: outbox unreadable (%s)", type(exc).__name__)
        return "unknown"
    if oldest is not None and oldest < at - timedelta(seconds=max_age):
        return "backlog"
    return "failed" if failed_id is not None else "ok"


def _check_database() -> tuple[str, str]:
    """The database's state and its schema's: (``ok`` or ``unavailable``, one of ``ok``,
    ``newer``, ``outdated``, ``missing`` or ``unknown``). One round trip when all is well:
    reading ``alembic_version`` proves the database answers too."""
    # A raw pooled connection: an ORM transaction would take SQLite's write lock (every
    # transaction begins IMMEDIATE), and a probe must never wait behind a writer.
    try:
        connection = db.engine.raw_connection()
        try:
            cursor = connection.cursor()
            try:
                cursor.execute("SELECT version_num FROM alembic_version")
                versions: set[str] | None = {row[0] for row in cursor.fetchall()}
            except Exception:  # no such table: never migrated (or not this app's database)
                versions = None
                connection.rollback()  # PostgreSQL refuses the next statement otherwise
                cursor = connection.cursor()
                cursor.execute("SELECT 1")
                cursor.fetchone()
            cursor.close()
        finally:
            connection.close()
    except Exception as exc:  # the driver's errors differ by database; all mean "down"
        log.warning("readiness: database unavailable (%s)", type(exc).__name__)
        return "unavailable", "unknown"
    return "ok", _schema_state(versions)


def _schema_state(versions: set[str] | None) -> str:
    migrations: Migrations = current_app.extensions[MIGRATIONS_KEY]
    if not versions:
        log.warning("readiness: the database has no schema version (run flask db upgrade)")
        return "missing"
    if versions == migrations.heads:
        return "ok"
    if not versions <= migrations.known:
        return "newer"
    log.warning(
        "readiness: the database's schema is %s, this code's is %s (run flask db upgrade)",
        ", ".join(sorted(versions)),
        ", ".join(sorted(migrations.heads)),
    )
    return "outdated"
