"""Test fixtures: a real database for every test that needs one.

Every database test runs on SQLite; when ``TEST_DATABASE_URL`` is set (CI sets it) it runs on
PostgreSQL too, each pytest-xdist worker in its own schema so parallel runs never collide.

The shared fixtures, one definition each (a module that needs more builds on them):
``staff`` (an account of each role), ``clinic`` (the staff, a location, a 45-minute
appointment type and who works when: ``working_hours``), ``auth`` (signing staff in by role
through the real form), ``smtp`` (a real SMTP server), ``mail_settings`` and
``production_config`` (production's settings with proper keys, for ``create_app("production")``).
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

# What the suite itself takes from the environment, on purpose (README, "Two commands";
# .ci/run): TEST_DATABASE_URL, E2E_REQUIRE_BROWSER and, of the settings config.py reads,
# REDIS_URL (the tests that run on a Redis queue too, and the production suite's deployment).
SUITE_SETTINGS = frozenset({"REDIS_URL"})


def settings_read_from_environment() -> set[str]:
    """Every variable config.py reads: the name passed to each of its ``_env*`` helpers, so a
    new setting is covered without a list to keep. Flask's FLASK_DEBUG too: it sets DEBUG
    where no settings class names it (TestingConfig does not)."""
    tree = ast.parse((Path(__file__).resolve().parent.parent / "config.py").read_text())
    names = {
        node.args[0].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id.startswith("_env")
        and node.args
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
    }
    return names | {"FLASK_DEBUG"}


# config.py reads the environment once, when it is first imported (below, through booking),
# and every test app starts from TestingConfig: a setting exported in the developer's shell
# (CLINIC_TIMEZONE, CLINIC_HOLIDAYS, MAIL_SERVER, ...) would become every test app's, and the
# worker's, gunicorn's and make's that the tests start as processes with this environment.
# The suite is written for the defaults (a clinic in Berlin, mail to its own servers only),
# so the shell's settings go before anything imports config.
for _name in settings_read_from_environment() - SUITE_SETTINGS:
    os.environ.pop(_name, None)

import contextlib
import secrets
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from flask_sqlalchemy import SQLAlchemy
from jinja2 import BytecodeCache
from sqlalchemy.engine.default import DefaultDialect
from werkzeug.routing import Rule

from booking import create_app
from booking.extensions import db
from booking.health.checks import read_migrations
from tests.factories import make_appointment_type, make_hours, make_location, make_staff
from tests.smtp import SmtpServer
from tests.support import Account, AuthActions, Clinic, Staff

PG_URL = os.environ.get("TEST_DATABASE_URL", "")
BACKENDS = ["sqlite"] + (["postgresql"] if PG_URL else [])


def _pg_url(schema: str) -> str:
    url = sa.engine.make_url(PG_URL)
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    # public too: extensions such as btree_gist live there.
    return url.update_query_dict({"options": f"-csearch_path={schema},public"}).render_as_string(
        hide_password=False
    )


@pytest.fixture(scope="session")
def pg_schema(worker_id: str) -> Iterator[str]:
    """A PostgreSQL schema of this test worker's own, created empty and dropped at the end."""
    if not PG_URL:
        pytest.skip("TEST_DATABASE_URL is not set")
    # The pid too: two test runs on one machine (or one database) must not share a schema.
    schema = f"test_{worker_id}_{os.getpid()}"
    engine = sa.create_engine(_pg_url("public"))
    with engine.begin() as conn:
        # Once per database, serialised between parallel workers: the exclusion constraint
        # against double booking needs btree_gist.
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(424242)"))
        conn.execute(sa.text("CREATE EXTENSION IF NOT EXISTS btree_gist SCHEMA public"))
        conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    yield schema
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    engine.dispose()


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql":
        return _pg_url(request.getfixturevalue("pg_schema"))
    return f"sqlite:///{tmp_path / 'test.sqlite3'}"


@pytest.fixture
def app_settings(database_url: str, tmp_path: Path) -> dict[str, Any]:
    """Settings for a test app; a test may change them before it asks for ``app``."""
    return {
        "SQLALCHEMY_DATABASE_URI": database_url,
        "UPLOAD_DIR": str(tmp_path / "uploads"),
        "DEV_MAILDIR": str(tmp_path / "mail"),
        "STAFF_NOTIFICATION_EMAIL": "coordinators@example.com",
        "CLINIC_NAME": "Test Spine Clinic",
    }


class SharedTemplateBytecode(BytecodeCache):
    """Compiled templates kept for the whole run: each of the suite's many short-lived apps
    would otherwise compile every page again (the source's checksum still guards each entry)."""

    def __init__(self) -> None:
        self.compiled: dict[str, bytes] = {}

    def load_bytecode(self, bucket: Any) -> None:
        if bucket.key in self.compiled:
            bucket.bytecode_from_string(self.compiled[bucket.key])

    def dump_bytecode(self, bucket: Any) -> None:
        self.compiled[bucket.key] = bucket.bytecode_to_string()


TEMPLATE_BYTECODE = SharedTemplateBytecode()


def _compile_each_url_builder_once() -> None:
    """Werkzeug compiles two URL builders for each route of each app, through Python's ast
    and compile: about 60 of the 75 ms ``create_app`` takes, and the suite makes an app per
    test (about 3 minutes of a CI run). A builder's code depends only on its rule's parts,
    the defaults it folds in and whether it appends unknown arguments, so the suite compiles
    one per distinct key and every app's rule binds it to itself, as Werkzeug does with the
    one it compiles (``Rule.compile``)."""
    compile_builder = Rule._compile_builder
    compiled: dict[tuple[Any, ...], Any] = {}

    def remembered(self: Rule, append_unknown: bool = True) -> Any:
        defaults = tuple(sorted((k, repr(v)) for k, v in (self.defaults or {}).items()))
        key = (self.rule, tuple(self._trace), defaults, append_unknown)
        if key not in compiled:
            compiled[key] = compile_builder(self, append_unknown)
        return compiled[key]

    Rule._compile_builder = remembered  # type: ignore[method-assign]


_compile_each_url_builder_once()


def _compile_each_statement_once() -> None:
    """SQLAlchemy compiles each statement once per engine and keeps it in the engine's cache,
    under a key that holds the engine's dialect; the suite makes an engine per test (an app
    per test), so every test compiled each of its statements again: about a third of a
    database test's time. A deployed process keeps one engine, so its statements compile once.
    Here every engine of one kind (the same driver, server and options, the file of a SQLite
    database aside) executes through the dialect and statement cache of the first of its kind
    that connected (the dialect read its server then), as one long-lived engine would. Each
    engine keeps its own pool and connections: the database itself is never shared."""
    make_engine = SQLAlchemy._make_engine
    shared: dict[tuple[str, str], tuple[Any, Any]] = {}

    def sharing(self: SQLAlchemy, bind_key: str | None, options: dict[str, Any], app: Flask) -> Any:
        engine = make_engine(self, bind_key, options, app)
        url = engine.url
        kind = (
            url.drivername if url.get_backend_name() == "sqlite" else url.render_as_string(False),
            repr(sorted((name, repr(value)) for name, value in options.items() if name != "url")),
        )
        if kind in shared:
            engine.dialect, engine._compiled_cache = shared[kind]
        else:

            @sa.event.listens_for(engine, "first_connect")
            def _first_of_its_kind(*_: Any) -> None:
                shared.setdefault(kind, (engine.dialect, engine._compiled_cache))

        return engine

    SQLAlchemy._make_engine = sharing  # type: ignore[method-assign]


_compile_each_statement_once()


@sa.event.listens_for(sa.engine.Engine, "connect")
def _no_waiting_for_the_disk(dbapi_connection: Any, _record: Any) -> None:
    """A test database's commits do not wait for the disk: SQLite's ``synchronous=OFF`` and
    PostgreSQL's ``synchronous_commit=off`` (this session's own, no server setting). Each
    commit otherwise waits for an fsync (about 6 ms of a SQLite commit here: a tenth of a
    file's time); what they give up is a commit surviving the machine's power loss, which no
    test can see. Locking, isolation, WAL and every constraint behave as deployed."""
    if isinstance(dbapi_connection, sqlite3.Connection):
        dbapi_connection.execute("PRAGMA synchronous=OFF")
    elif isinstance(dbapi_connection, psycopg.Connection):
        with dbapi_connection.cursor() as cursor:
            cursor.execute("SET synchronous_commit = off")
        dbapi_connection.commit()


MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def stamp_head(app: Flask) -> None:
    """Mark the test database as migrated to the code's head, as ``flask db upgrade`` would
    have: its tables come from ``db.create_all``, which ``tests/test_migrations.py`` checks
    builds the same schema. Readiness reports a database without it as not migrated."""
    (head,) = read_migrations(str(MIGRATIONS)).heads
    with app.app_context(), db.engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE IF NOT EXISTS alembic_version "
            "(version_num VARCHAR(32) NOT NULL PRIMARY KEY)"
        )
        conn.exec_driver_sql("DELETE FROM alembic_version")
        conn.execute(sa.text("INSERT INTO alembic_version VALUES (:head)"), {"head": head})


@pytest.fixture(scope="session")
def sqlite_schema(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty SQLite database with the whole schema, made once per test process by the app
    itself (its tables, triggers and first rows): each SQLite test starts from a copy of the
    file instead of creating the tables again."""
    path = tmp_path_factory.mktemp("schema") / "schema.sqlite3"
    app = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{path}"})
    with app.app_context():
        db.create_all()
    stamp_head(app)
    with app.app_context():
        db.engine.dispose()
    return path


def _from_schema_copy(url: str, request: pytest.FixtureRequest) -> bool:
    """Copy the empty schema to a new SQLite test database's file; False when ``url`` names
    another database (PostgreSQL, or a file that exists already)."""
    if not url.startswith("sqlite:///"):
        return False
    target = Path(url.removeprefix("sqlite:///"))
    if target.exists():
        return False
    shutil.copyfile(request.getfixturevalue("sqlite_schema"), target)
    return True


# Between PostgreSQL tests, every table is emptied and the ids start again at 1: faster than
# dropping the tables, and than TRUNCATE (about 130 ms for the schema's tables, when these
# DELETEs of a test's few rows take a few ms), in one round trip. Children before parents.
# The availability version's one row stays (any value will do for a new app).
PG_EMPTY_TABLES = "; ".join(
    [
        f'DELETE FROM "{table.name}"'  # noqa: S608 (the app's own table names)
        for table in reversed(db.metadata.sorted_tables)
        if table.name != "availability_version"
    ]
    + [
        "SELECT setval(c.oid, 1, false) FROM pg_class c "
        "WHERE c.relkind = 'S' AND c.relnamespace = to_regnamespace(current_schema())"
    ]
)


@pytest.fixture
def app(app_settings: dict[str, Any], request: pytest.FixtureRequest) -> Iterator[Flask]:
    copied = _from_schema_copy(app_settings["SQLALCHEMY_DATABASE_URI"], request)
    app = create_app(app_settings)
    app.jinja_env.bytecode_cache = TEMPLATE_BYTECODE
    if not copied:
        with app.app_context():
            db.create_all()
        stamp_head(app)
    yield app
    with app.app_context():
        db.session.remove()
        if db.engine.dialect.name == "postgresql":
            with db.engine.begin() as conn:
                conn.exec_driver_sql(PG_EMPTY_TABLES)
        db.engine.dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def upload_dir(app: Flask) -> Path:
    return Path(app.config["UPLOAD_DIR"])


@pytest.fixture
def auth(client: FlaskClient) -> AuthActions:
    """Sign staff in (``auth.login(role="coordinator")``, ``auth.login(email=...)``) and out
    on ``client``, or in another browser (``auth.new_client("admin")``)."""
    return AuthActions(client)


def _account(user: Any) -> Account:
    return Account(user.id, user.email, user.full_name, user.role.value)


@pytest.fixture
def staff(app: Flask) -> Staff:
    with app.app_context():
        return Staff(
            admin=_account(make_staff("admin", "admin@example.com", full_name="Ada Admin")),
            coordinator=_account(
                make_staff("coordinator", "coord@example.com", full_name="Cora Coord")
            ),
            weber=_account(make_staff("specialist", "weber@example.com", full_name="Dr. Weber")),
            okafor=_account(make_staff("specialist", "okafor@example.com", full_name="Dr. Okafor")),
        )


@pytest.fixture
def working_hours() -> dict[str, tuple[str, str]]:
    """Who of ``staff`` works at ``clinic``'s location, every day from/to (clinic time); a
    module overrides this fixture for other hours ({} for none)."""
    return {"weber": ("08:00", "18:00")}


@pytest.fixture
def clinic(app: Flask, staff: Staff, working_hours: dict[str, tuple[str, str]]) -> Clinic:
    from booking.staff.models import StaffUser

    with app.app_context():
        location = make_location()
        appointment_type = make_appointment_type(minutes=45)
        for name, (start, end) in working_hours.items():
            specialist = db.session.get(StaffUser, getattr(staff, name).id)
            make_hours(specialist, location, range(7), start, end)
        return Clinic(**vars(staff), location=location.id, type=appointment_type.id)


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    """A real SMTP server on a free local port, keeping what it receives."""
    server = SmtpServer().start()
    yield server
    server.collector.release()  # a test that stalled it must not hang its shutdown
    server.stop()


@pytest.fixture
def mail_settings(app_settings: dict[str, Any], smtp: SmtpServer) -> dict[str, Any]:
    """Ask for this before ``app`` to send the app's mail to the real test SMTP server."""
    app_settings["MAIL_PORT"] = smtp.port
    return app_settings


@pytest.fixture
def production_config(
    monkeypatch: pytest.MonkeyPatch, app_settings: dict[str, Any], tmp_path: Path
) -> type:
    """Production's settings class with keys of its own (as a clinic makes them), the test's
    database and the test's folder for its files; a test changes more with
    ``monkeypatch.setattr`` before ``create_app``."""
    import config
    from booking.crypto import new_key

    # config.py puts the queue's SQLite file (REDIS_URL unset), the uploads and the mail
    # folder in the project's instance/, which `make run` uses: the test's own folder instead.
    monkeypatch.setattr(config.ProductionConfig, "HUEY_SQLITE_PATH", str(tmp_path / "huey.sqlite3"))
    monkeypatch.setattr(config.ProductionConfig, "UPLOAD_DIR", app_settings["UPLOAD_DIR"])
    monkeypatch.setattr(config.ProductionConfig, "DEV_MAILDIR", app_settings["DEV_MAILDIR"])

    monkeypatch.setattr(config.ProductionConfig, "SECRET_KEY", secrets.token_hex(32))
    monkeypatch.setattr(config.ProductionConfig, "ENCRYPTION_KEY", new_key())
    url = app_settings["SQLALCHEMY_DATABASE_URI"]
    monkeypatch.setattr(config.ProductionConfig, "SQLALCHEMY_DATABASE_URI", url)
    # The suite's own SQLite database, when it runs without PostgreSQL: allowed, as a
    # single-machine install would allow it.
    monkeypatch.setattr(
        config.ProductionConfig, "ALLOW_SQLITE_IN_PRODUCTION", url.startswith("sqlite")
    )
    # The addresses a clinic sets (production has no default for the alerts' address).
    monkeypatch.setattr(
        config.ProductionConfig,
        "STAFF_NOTIFICATION_EMAIL",
        app_settings["STAFF_NOTIFICATION_EMAIL"],
    )
    sender = "Test Spine Clinic <no-reply@clinic.example>"
    monkeypatch.setattr(config.ProductionConfig, "MAIL_DEFAULT_SENDER", sender)
    return config.ProductionConfig


@pytest.fixture(scope="session")
def worker_id(request: pytest.FixtureRequest) -> str:
    """The pytest-xdist worker name (``gw0``...), or ``main`` without xdist."""
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


@pytest.fixture(autouse=True)
def _reset_rate_limits() -> Iterator[None]:
    """Flask-Limiter's memory storage outlives an app: start every test with fresh counts.
    So does its one limiter object's note that an app's storage was down (``init_app`` does
    not clear it), which would make the next app count in memory although its Redis answers."""
    from booking.extensions import limiter

    yield
    limiter._storage_dead = False
    # Nothing to reset when no app initialised the limiter.
    with contextlib.suppress(Exception):
        limiter.reset()


@pytest.fixture(scope="session", autouse=True)
def _compiled_translations() -> None:
    """Compile the translation catalogues (as ``make install`` does) so Spanish pages are
    tested even when pytest runs on its own."""
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    root = Path(__file__).resolve().parent.parent / "booking" / "translations"
    for po_path in root.glob("*/LC_MESSAGES/messages.po"):
        mo_path = po_path.with_suffix(".mo")
        if mo_path.exists() and mo_path.stat().st_mtime >= po_path.stat().st_mtime:
            continue
        with po_path.open("rb") as po_file:
            catalog = read_po(po_file)
        tmp = mo_path.with_suffix(f".{os.getpid()}.tmp")
        with tmp.open("wb") as mo_file:
            write_mo(mo_file, catalog)
        tmp.replace(mo_path)  # atomic: parallel workers never read half a file


@pytest.fixture
def failing_commit(monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """Once called, the next commit fails before it is made (the database restarting)."""
    real_commit = DefaultDialect.do_commit
    left = {"n": 0}

    def fail_once(self: DefaultDialect, connection: Any) -> None:
        if left["n"]:
            left["n"] -= 1
            gone = sqlite3.OperationalError if self.name == "sqlite" else psycopg.OperationalError
            raise gone("the database system is shutting down")
        real_commit(self, connection)

    monkeypatch.setattr(DefaultDialect, "do_commit", fail_once)
    return lambda: left.update(n=1)


@pytest.fixture
def lost_commit_answer(monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """Once called, the next commit is made, then its answer is lost: the driver's own error
    for a connection gone, as each database's driver raises it."""
    real_commit = DefaultDialect.do_commit
    left = {"n": 0}

    def commit_then_lose_the_answer(self: DefaultDialect, connection: Any) -> None:
        real_commit(self, connection)
        if left["n"]:
            left["n"] -= 1
            gone = sqlite3.OperationalError if self.name == "sqlite" else psycopg.OperationalError
            raise gone("server closed the connection unexpectedly")

    monkeypatch.setattr(DefaultDialect, "do_commit", commit_then_lose_the_answer)
    return lambda: left.update(n=1)
