"""The committed migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

import functools
import json
import os
import shutil
import sqlite3
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask_migrate import downgrade
from flask_migrate import upgrade as alembic_upgrade
from sqlalchemy.schema import CreateIndex

from booking import create_app
from booking.extensions import db, migration_compare_type
from tests.conftest import BACKENDS, PG_URL, _pg_url

MIGRATIONS = str(Path(__file__).resolve().parent.parent / "migrations")


@pytest.fixture(params=BACKENDS)
def empty_database(request: pytest.FixtureRequest, tmp_path: Path, worker_id: str) -> Iterator[str]:
    """An empty database of the test's own (a fresh schema on PostgreSQL)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'migrations.sqlite3'}"
        return
    assert PG_URL
    request.getfixturevalue("pg_schema")  # installs btree_gist once, serialised
    schema = f"migrations_{worker_id}_{os.getpid()}"
    engine = sa.create_engine(_pg_url("public"))
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    yield _pg_url(schema)
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    engine.dispose()


_MIGRATED: dict[str, Path] = {}


@pytest.fixture(scope="module", autouse=True)
def _migrated_copies(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Where ``upgrade`` keeps this module's SQLite databases migrated from empty."""
    _MIGRATED.clear()
    _MIGRATED[""] = tmp_path_factory.mktemp("migrated")
    yield
    _MIGRATED.clear()


@functools.cache
def _revisions_down_to_base(revision: str) -> tuple[str, ...]:
    """``revision`` and each revision before it, newest first (the chain has one head)."""
    script = ScriptDirectory(MIGRATIONS)
    return tuple(r.revision for r in script.iterate_revisions(revision, "base"))


def upgrade(directory: str = MIGRATIONS, revision: str = "head") -> None:
    """Flask-Migrate's upgrade of the app's database. On an empty SQLite database it starts
    from a copy of this module's database migrated from empty to the nearest revision at or
    before ``revision`` (when one was kept), runs the migrations from there, and keeps a copy
    of the result: each migration from empty runs about once per module instead of once per
    test, to the same schema and first rows. The first test here runs the whole chain itself
    (``alembic_upgrade``), and PostgreSQL runs every upgrade whole."""
    url = db.engine.url
    if (
        url.get_backend_name() != "sqlite"
        or not url.database
        or sa.inspect(db.engine).get_table_names()
    ):
        alembic_upgrade(directory=directory, revision=revision)
        return
    target = Path(url.database)
    chain = _revisions_down_to_base(revision)
    kept = next((r for r in chain if r in _MIGRATED), None)
    if kept is not None:
        db.engine.dispose()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{target}{suffix}").unlink(missing_ok=True)
        shutil.copyfile(_MIGRATED[kept], target)
        if kept == chain[0]:
            return
    alembic_upgrade(directory=directory, revision=revision)
    copy = _MIGRATED[""] / f"{chain[0]}.sqlite3"
    source, destination = sqlite3.connect(target), sqlite3.connect(copy)
    try:
        source.backup(destination)  # whole, whatever the write-ahead log still holds
    finally:
        source.close()
        destination.close()
    _MIGRATED[chain[0]] = copy


def _expression_indexes() -> list[sa.Index]:
    """The models' indexes on an expression other than a column (or its direction)."""
    return [
        index
        for table in db.metadata.tables.values()
        for index in table.indexes
        if any(not isinstance(e, sa.Column | sa.UnaryExpression) for e in index.expressions)
    ]


def _expression_index_differences(conn: sa.Connection) -> list[tuple[str, str, str | None]]:
    """The indexes on an expression (the queue's, on ``call_back_since``) that SQLite does
    not hold as the models write them: their CREATE INDEX compared as text."""
    found = dict(
        conn.execute(sa.text("SELECT name, sql FROM sqlite_master WHERE type = 'index'")).all()
    )
    differences = []
    for index in _expression_indexes():
        wanted = str(CreateIndex(index).compile(dialect=conn.dialect))
        stored = found.get(index.name)
        if " ".join((stored or "").split()) != " ".join(wanted.split()):
            differences.append((index.name, wanted, stored))
    return differences


def test_migrations_match_the_models_and_downgrade_cleanly(
    empty_database: str, tmp_path: Path
) -> None:
    app = create_app({"SQLALCHEMY_DATABASE_URI": empty_database, "UPLOAD_DIR": str(tmp_path)})
    with app.app_context():
        alembic_upgrade(directory=MIGRATIONS)
        with db.engine.connect() as conn, warnings.catch_warnings():
            if conn.dialect.name == "sqlite":
                # SQLite's indexes on an expression are not reflected, so not compared: they
                # are compared as written below.
                for index in _expression_indexes():
                    warnings.filterwarnings(
                        "ignore", rf".*expression-based index '?{index.name}'?(;|$)"
                    )
            context = MigrationContext.configure(
                conn, opts={"compare_type": migration_compare_type}
            )
            differences = compare_metadata(context, db.metadata)
            if conn.dialect.name == "sqlite":
                differences += _expression_index_differences(conn)
        assert differences == [], f"models and migrations differ: {differences}"
        # What the models cannot describe: the database's own no-double-booking guarantee.
        with db.engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                found = conn.scalar(
                    sa.text(
                        "SELECT count(*) FROM pg_constraint c JOIN pg_namespace n "
                        "ON n.oid = c.connamespace "
                        "WHERE c.conname = :name AND n.nspname = current_schema()"
                    ),
                    {"name": "ex_appointment_no_overlap"},
                )
                assert found == 1
            else:
                triggers = set(
                    conn.scalars(sa.text("SELECT name FROM sqlite_master WHERE type='trigger'"))
                )
                assert triggers == {
                    "appointment_no_overlap_insert",
                    "appointment_no_overlap_update",
                }

        downgrade(directory=MIGRATIONS, revision="base")
        with db.engine.connect() as conn:
            left = set(sa.inspect(conn).get_table_names()) - {"alembic_version"}
        assert left == set()

        alembic_upgrade(directory=MIGRATIONS)  # and up again: the downgrade left nothing in the way
        db.engine.dispose()


BEFORE_REGIONS = "b71f0c2d9e5a"  # before the triage, call-back and region migrations


def test_requests_made_before_the_region_keep_their_odi_and_pain(
    empty_database: str, tmp_path: Path
) -> None:
    """Migration c4e7a2f19d36 keeps each existing request's ODI answers and score and its one
    overall pain pair, and gives it no region and an empty NDI."""
    from datetime import UTC, datetime

    app = create_app({"SQLALCHEMY_DATABASE_URI": empty_database, "UPLOAD_DIR": str(tmp_path)})
    odi = {"pain_intensity": 2, "walking": 3, "sitting": 2, "standing": 2, "lifting": 3,
           "sleeping": 1, "travelling": 2, "social_life": 3, "personal_care": 2}  # fmt: skip
    with app.app_context():
        upgrade(directory=MIGRATIONS, revision=BEFORE_REGIONS)
        now = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)
        with db.engine.begin() as conn:
            tables = sa.MetaData()
            tables.reflect(conn, only=["patient", "consultation_request", "medical_history"])
            _old_patient(conn, tables, now)
            conn.execute(
                tables.tables["consultation_request"].insert(),
                {"id": 1, "reference": "SC-OLD2-2222", "patient_id": 1, "status": "requested",
                 "triage_level": "routine", "submission_token": "t" * 43, "locale": "en",
                 "preferred_days": [], "preferred_time_of_day": "any",
                 "privacy_notice_version": "2026-11", "consented_at": now,
                 "contact_consent": True, "created_at": now, "updated_at": now},
            )  # fmt: skip
            conn.execute(
                tables.tables["medical_history"].insert(),
                {"request_id": 1, "pain_locations": ["neck"], "pain_side": None,
                 "pain_duration": "3_12_months", "pain_now": 6, "pain_worst": 9,
                 "radiating_pain": False, "numbness": False, "weakness": False,
                 "diagnoses": [], "treatments": [], "imaging": [], "blood_thinners": False,
                 "diabetes": False, "smoking": "never", "odi_answers": odi,
                 "odi_sections_answered": 9, "odi_percent": 44.4, "odi_band": "severe",
                 "red_flags": []},
            )  # fmt: skip

        upgrade(directory=MIGRATIONS)

        from booking.requests.models import MedicalHistory

        history = db.session.get(MedicalHistory, 1)
        assert (history.odi_answers, history.odi_sections_answered) == (odi, 9)
        assert (history.odi_percent, history.odi_band) == (44.4, "severe")
        assert (history.pain_now, history.pain_worst) == (6, 9)
        assert history.spine_region is None
        assert (history.ndi_answers, history.ndi_sections_answered, history.ndi_percent) == (
            {},
            0,
            None,
        )
        assert history.back_pain_now is None and history.neck_pain_worst is None
        db.session.remove()
        # The database still checks every pain score, the new ones too.
        with pytest.raises(sa.exc.IntegrityError), db.engine.begin() as conn:
            conn.execute(sa.text("UPDATE medical_history SET neck_pain_now = 11"))
        with pytest.raises(sa.exc.IntegrityError), db.engine.begin() as conn:
            conn.execute(sa.text("UPDATE medical_history SET pain_now = 11"))


TRIAGE_REVISION = "c4f1a7e9d2b0"


def _old_request(conn: sa.Connection, number: int, level: str, flags: str) -> None:
    """A request as stored before the emergency level: its flags in its history."""
    conn.execute(
        sa.text(
            "INSERT INTO patient (id, full_name, date_of_birth, email, phone, "
            "preferred_contact, created_at) VALUES (:n, 'P', '1970-01-01', 'p@example.com', "
            "'+4930901820', 'email', '2026-11-01 09:00:00')"
        ),
        {"n": number},
    )
    conn.execute(
        sa.text(
            "INSERT INTO consultation_request (id, reference, patient_id, status, triage_level, "
            "submission_token, locale, preferred_days, preferred_time_of_day, "
            "privacy_notice_version, consented_at, contact_consent, created_at, updated_at) "
            "VALUES (:n, :ref, :n, 'requested', :level, :token, 'en', '[]', 'any', '2026-11', "
            "'2026-11-01 09:00:00', true, '2026-11-01 09:00:00', '2026-11-01 09:00:00')"
        ),
        {"n": number, "ref": f"SC-OLD{number}", "level": level, "token": f"old-{number}"},
    )
    conn.execute(
        sa.text(
            "INSERT INTO medical_history (request_id, pain_locations, pain_duration, pain_now, "
            "pain_worst, radiating_pain, numbness, weakness, diagnoses, treatments, imaging, "
            "blood_thinners, diabetes, smoking, odi_answers, odi_sections_answered, red_flags) "
            "VALUES (:n, '[\"lower_back\"]', 'lt_6_weeks', 3, 5, false, false, false, '[]', "
            "'[]', '[]', false, false, 'never', '{}', 0, :flags)"
        ),
        {"n": number, "flags": flags},
    )


def test_the_triage_migration_keeps_every_flag_and_puts_urgent_first(
    empty_database: str, tmp_path: Path
) -> None:
    app = create_app({"SQLALCHEMY_DATABASE_URI": empty_database, "UPLOAD_DIR": str(tmp_path)})
    with app.app_context():
        upgrade(directory=MIGRATIONS, revision="b71f0c2d9e5a")
        with db.engine.begin() as conn:
            _old_request(conn, 1, "urgent", '["bladder_bowel", "cancer_history"]')
            _old_request(conn, 2, "routine", "[]")
        upgrade(directory=MIGRATIONS, revision=TRIAGE_REVISION)
        with db.engine.begin() as conn:
            rows = conn.execute(
                sa.text("SELECT id, priority, red_flags FROM consultation_request ORDER BY id")
            ).all()
            assert [(r.id, r.priority) for r in rows] == [(1, 1), (2, 0)]
            flags = [
                json.loads(r.red_flags) if isinstance(r.red_flags, str) else r.red_flags
                for r in rows
            ]
            assert flags == [["bladder_bowel", "cancer_history"], []]
            # The new level is allowed, and a call-back needs no email or date of birth.
            conn.execute(
                sa.text("UPDATE patient SET email = NULL, date_of_birth = NULL WHERE id = 2")
            )
            conn.execute(
                sa.text("UPDATE consultation_request SET triage_level = 'emergency' WHERE id = 1")
            )
            with pytest.raises(sa.exc.IntegrityError), conn.begin_nested():
                conn.execute(
                    sa.text("UPDATE consultation_request SET triage_level = 'soon' WHERE id = 1")
                )
        # Down again: refused while a call-back without the older schema's details is kept
        # (nothing is deleted), then the flags go back to the history.
        with pytest.raises(SystemExit):  # Flask-Migrate logs the RuntimeError and exits
            downgrade(directory=MIGRATIONS, revision="b71f0c2d9e5a")
        with db.engine.begin() as conn:
            conn.execute(
                sa.text(
                    "UPDATE patient SET email = 'p@example.com', date_of_birth = '1970-01-01' "
                    "WHERE id = 2"
                )
            )
        downgrade(directory=MIGRATIONS, revision="b71f0c2d9e5a")
        with db.engine.connect() as conn:
            kept = conn.execute(
                sa.text("SELECT request_id, red_flags FROM medical_history ORDER BY request_id")
            ).all()
            level = list(
                conn.scalars(sa.text("SELECT triage_level FROM consultation_request ORDER BY id"))
            )
        assert [r.request_id for r in kept] == [1, 2] and level == ["urgent", "routine"]
        back = kept[0].red_flags
        assert (json.loads(back) if isinstance(back, str) else back) == [
            "bladder_bowel",
            "cancer_history",
        ]
        db.engine.dispose()


BEFORE_ENCRYPTED_HISTORY = "a8f3c6e2d4b1"


def _old_patient(conn: sa.Connection, tables: sa.MetaData, now) -> None:
    """Patient 1 as a row of an older schema (reflected in ``tables``)."""
    from datetime import date

    conn.execute(
        tables.tables["patient"].insert(),
        {"id": 1, "full_name": "Old Patient", "date_of_birth": date(1960, 1, 2),
         "email": "old@example.com", "phone": "+4930901820",
         "preferred_contact": "email", "created_at": now},
    )  # fmt: skip


def _old_patient_and_request(conn: sa.Connection, tables: sa.MetaData, reference: str, now) -> None:
    """Patient 1 and their request 1 as rows of an older schema (reflected in ``tables``)."""
    _old_patient(conn, tables, now)
    conn.execute(
        tables.tables["consultation_request"].insert(),
        {"id": 1, "reference": reference, "patient_id": 1, "status": "requested",
         "triage_level": "routine", "priority": 0, "red_flags": [],
         "submission_token": "t" * 43, "locale": "en", "preferred_days": [],
         "preferred_time_of_day": "any", "privacy_notice_version": "2026-11",
         "consented_at": now, "contact_consent": True, "created_at": now, "updated_at": now},
    )  # fmt: skip


def test_free_text_history_written_before_encryption_is_encrypted_and_back(
    empty_database: str, tmp_path: Path
) -> None:
    """Migration f3b9d5c1e7a4 seals the existing free text (history and timeline notes) with
    the app's key; its downgrade opens it again."""
    app = create_app({"SQLALCHEMY_DATABASE_URI": empty_database, "UPLOAD_DIR": str(tmp_path)})
    from datetime import UTC, datetime

    stored_history = sa.text(
        "SELECT medications, allergies, other_history, surgery_details, diagnosis_other "
        "FROM medical_history"
    )
    with app.app_context():
        upgrade(directory=MIGRATIONS, revision=BEFORE_ENCRYPTED_HISTORY)
        now = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)
        with db.engine.begin() as conn:
            tables = sa.MetaData()
            tables.reflect(conn, only=["patient", "consultation_request", "medical_history"])
            _old_patient_and_request(conn, tables, "SC-OLD3-3333", now)
            conn.execute(
                tables.tables["medical_history"].insert(),
                {"request_id": 1, "pain_locations": ["neck"], "pain_duration": "3_12_months",
                 "radiating_pain": False, "numbness": False, "weakness": False,
                 "diagnoses": [], "treatments": [], "imaging": [], "blood_thinners": False,
                 "diabetes": False, "smoking": "never", "odi_answers": {},
                 "odi_sections_answered": 0, "ndi_answers": {}, "ndi_sections_answered": 0,
                 "medications": "Tramadol", "allergies": "Latex", "other_history": None,
                 "surgery_details": "Fusion L5-S1", "diagnosis_other": "Scoliosis",
                 "imaging_when": "May 2025"},
            )  # fmt: skip
            conn.execute(
                sa.text(
                    "INSERT INTO request_event (request_id, occurred_at, kind, body) "
                    "VALUES (1, '2026-11-01 10:00:00', 'note', 'Called, no answer')"
                )
            )

        upgrade(directory=MIGRATIONS)
        with db.engine.connect() as conn:
            stored = conn.execute(stored_history).one()
            note = conn.scalar(sa.text("SELECT body FROM request_event"))
        assert stored[2] is None
        for value in [*stored[:2], *stored[3:], note]:
            assert value.startswith("v1:")
        assert "Tramadol" not in "".join(v for v in stored if v)

        from booking.requests.events import RequestEvent
        from booking.requests.models import MedicalHistory

        history = db.session.get(MedicalHistory, 1)
        assert (history.medications, history.allergies, history.imaging_when) == (
            "Tramadol",
            "Latex",
            "May 2025",
        )
        assert db.session.scalars(sa.select(RequestEvent.body)).one() == "Called, no answer"
        db.session.remove()

        downgrade(directory=MIGRATIONS, revision=BEFORE_ENCRYPTED_HISTORY)
        with db.engine.connect() as conn:
            stored = conn.execute(stored_history).one()
            note = conn.scalar(sa.text("SELECT body FROM request_event"))
        assert tuple(stored) == ("Tramadol", "Latex", None, "Fusion L5-S1", "Scoliosis")
        assert note == "Called, no answer"
        db.engine.dispose()


BEFORE_ENCRYPTED_DOCUMENT_NAMES = "c4e8a2f6b1d9"


def test_document_names_written_before_encryption_are_encrypted_and_back(
    empty_database: str, tmp_path: Path
) -> None:
    """Migration b7e2d4a9c6f1 seals the names and descriptions of the documents already
    stored (a request's and a draft's) with the app's key; its downgrade opens them again."""
    from datetime import UTC, datetime, timedelta

    app = create_app({"SQLALCHEMY_DATABASE_URI": empty_database, "UPLOAD_DIR": str(tmp_path)})
    names = sa.text(
        "SELECT original_name, description FROM document UNION ALL "
        "SELECT original_name, description FROM draft_document"
    )
    now = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
    file = {"content_type": "application/pdf", "size_bytes": 10, "sha256": "0" * 64,
            "uploaded_at": now, "scan_status": "clean"}  # fmt: skip
    with app.app_context():
        upgrade(directory=MIGRATIONS, revision=BEFORE_ENCRYPTED_DOCUMENT_NAMES)
        with db.engine.begin() as conn:
            tables = sa.MetaData()
            tables.reflect(
                conn,
                only=["patient", "consultation_request", "document", "request_draft",
                      "draft_document"],
            )  # fmt: skip
            _old_patient_and_request(conn, tables, "SC-OLD4-4444", now)
            conn.execute(
                tables.tables["document"].insert(),
                {"id": 1, "request_id": 1, "original_name": "MRI L4-5 herniation.pdf",
                 "description": "Befund Dr. Weber", "stored_name": "a" * 32, **file},
            )  # fmt: skip
            conn.execute(
                tables.tables["request_draft"].insert(),
                {"id": 1, "token_hash": "d" * 64, "submission_token": "s" * 43, "answers": "{}",
                 "locale": "en", "step": "documents",
                 "created_at": now, "updated_at": now, "expires_at": now + timedelta(days=7)},
            )  # fmt: skip
            conn.execute(
                tables.tables["draft_document"].insert(),
                {"id": 1, "draft_id": 1, "original_name": "CT lumbar.pdf", "description": None,
                 "stored_name": "b" * 32, **file},
            )  # fmt: skip

        upgrade(directory=MIGRATIONS)
        with db.engine.connect() as conn:
            stored = [tuple(row) for row in conn.execute(names)]
        assert [name[:3] for name, _ in stored] == ["v1:", "v1:"]
        assert stored[0][1].startswith("v1:") and stored[1][1] is None
        assert "herniation" not in repr(stored) and "Weber" not in repr(stored)

        from booking.documents.models import Document
        from booking.requests.drafts import DraftDocument

        document = db.session.get(Document, 1)
        assert (document.original_name, document.description) == (
            "MRI L4-5 herniation.pdf",
            "Befund Dr. Weber",
        )
        assert db.session.get(DraftDocument, 1).original_name == "CT lumbar.pdf"
        db.session.remove()

        downgrade(directory=MIGRATIONS, revision=BEFORE_ENCRYPTED_DOCUMENT_NAMES)
        with db.engine.connect() as conn:
            stored = [tuple(row) for row in conn.execute(names)]
        assert stored == [("MRI L4-5 herniation.pdf", "Befund Dr. Weber"), ("CT lumbar.pdf", None)]
        db.engine.dispose()


BEFORE_ENCRYPTED_OUTBOX = "c4f8a2e6d1b9"


def test_outbox_bodies_written_before_encryption_are_encrypted_and_back(
    empty_database: str, tmp_path: Path
) -> None:
    """Migration a8d2f5c3e7b1 seals every email's bodies and attachment already in the outbox
    (a pending one holds its private link whole) with the app's key; its downgrade opens them
    again."""
    from datetime import UTC, datetime

    app = create_app({"SQLALCHEMY_DATABASE_URI": empty_database, "UPLOAD_DIR": str(tmp_path)})
    bodies = sa.text("SELECT body_text, body_html, attachment_body FROM outbox_email ORDER BY id")
    now = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
    link = "https://clinic.example/manage/open/Zx8sQ2token"
    with app.app_context():
        upgrade(directory=MIGRATIONS, revision=BEFORE_ENCRYPTED_OUTBOX)
        with db.engine.begin() as conn:
            tables = sa.MetaData()
            tables.reflect(conn, only=["outbox_email"])
            conn.execute(
                tables.tables["outbox_email"].insert(),
                [
                    {"id": n, "template": "request_received", "recipient": "erika@example.com",
                     "subject": "We received your request", "body_text": f"Open {link} {n}",
                     "body_html": f'<a href="{link}">{n}</a>', "message_id": f"<{n}@x>",
                     "status": "pending", "attempts": 0, "next_attempt_at": now,
                     "attachment_body": "BEGIN:VCALENDAR" if n == 1 else None,
                     "created_at": now}
                    for n in (1, 2)
                ],
            )  # fmt: skip

        upgrade(directory=MIGRATIONS)
        with db.engine.connect() as conn:
            stored = [tuple(row) for row in conn.execute(bodies)]
        assert all(value.startswith("v1:") for row in stored for value in row if value)
        assert stored[1][2] is None
        assert "Zx8sQ2token" not in repr(stored) and "VCALENDAR" not in repr(stored)

        from booking.notifications.models import OutboxEmail

        email = db.session.get(OutboxEmail, 1)
        assert email.body_text == f"Open {link} 1"
        assert email.attachment_body == "BEGIN:VCALENDAR"
        db.session.remove()

        downgrade(directory=MIGRATIONS, revision=BEFORE_ENCRYPTED_OUTBOX)
        with db.engine.connect() as conn:
            stored = [tuple(row) for row in conn.execute(bodies)]
        assert stored == [
            (f"Open {link} 1", f'<a href="{link}">1</a>', "BEGIN:VCALENDAR"),
            (f"Open {link} 2", f'<a href="{link}">2</a>', None),
        ]
        db.engine.dispose()


BEFORE_ENCRYPTED_TOTP = "53adce2655ba"  # two-factor sign-in, its secrets in clear


def test_two_factor_secrets_enrolled_before_encryption_are_encrypted_and_back(
    empty_database: str, tmp_path: Path
) -> None:
    """Migration 9d4e1b7c3a52 seals the TOTP secrets enrolled before 7c1e4d2a9b3f (left in
    clear until then) with the app's key; its downgrade opens every secret again, so the
    way down past 7c1e4d2a9b3f (which narrows the column to a plain secret's 64
    characters) works with secrets enrolled since, too."""
    from datetime import UTC, datetime

    import pyotp

    from booking.staff.models import StaffUser
    from tests.factories import make_staff

    app = create_app({"SQLALCHEMY_DATABASE_URI": empty_database, "UPLOAD_DIR": str(tmp_path)})
    secrets_stored = sa.text("SELECT totp_secret FROM staff_user ORDER BY id")
    enrolled_then, enrolled_since = pyotp.random_base32(), pyotp.random_base32()
    with app.app_context():
        upgrade(directory=MIGRATIONS, revision=BEFORE_ENCRYPTED_TOTP)
        with db.engine.begin() as conn:
            tables = sa.MetaData()
            tables.reflect(conn, only=["staff_user"])
            conn.execute(
                tables.tables["staff_user"].insert(),
                {"email": "admin@example.com", "full_name": "Ada Admin",
                 "role": "admin", "password_hash": "x", "active": True,
                 "session_token": "s" * 43, "created_at": datetime(2026, 11, 2, tzinfo=UTC),
                 "totp_secret": enrolled_then, "totp_enabled": True, "totp_last_step": 0},
            )  # fmt: skip

        upgrade(directory=MIGRATIONS)
        with db.engine.connect() as conn:
            (stored,) = conn.scalars(secrets_stored).all()
        assert stored.startswith("v1:") and enrolled_then not in stored
        assert db.session.scalars(sa.select(StaffUser.totp_secret)).one() == enrolled_then
        since = make_staff("admin", "second.admin@example.com")
        since.totp_secret = enrolled_since  # as twofactor.enable writes it: sealed
        db.session.commit()
        db.session.remove()

        downgrade(directory=MIGRATIONS, revision=BEFORE_ENCRYPTED_TOTP)
        with db.engine.connect() as conn:
            assert conn.scalars(secrets_stored).all() == [enrolled_then, enrolled_since]
        db.engine.dispose()


def test_acknowledgements_are_kept_only_where_a_call_reached_the_patient(
    empty_database: str, tmp_path: Path
) -> None:
    """Migration e9b4c2d7f5a1: under the old rule the first call acknowledged a request,
    whatever came of it. A request whose calls found no answer is unacknowledged again (it
    shows "not reached" and escalates); one reached later is acknowledged by that call."""
    from datetime import timedelta

    from booking.dashboard.services import log_callback
    from booking.requests.calls import CallOutcome
    from booking.requests.models import ConsultationRequest
    from tests.factories import make_request, make_staff

    app = create_app({"SQLALCHEMY_DATABASE_URI": empty_database, "UPLOAD_DIR": str(tmp_path)})
    with app.app_context():
        # Made with today's models (at the head), then taken back to the revision before.
        upgrade(directory=MIGRATIONS)
        first, second = make_staff("coordinator"), make_staff("coordinator", "other@example.com")
        unreached = make_request(red_flags={"bladder_bowel"})
        reached = make_request(red_flags={"bladder_bowel"})
        ids = {}
        for consultation in (unreached, reached):
            ids[consultation.reference] = consultation.id
            consultation.created_at -= timedelta(hours=3)
            db.session.commit()
            call = log_callback(
                consultation,
                first,
                CallOutcome.NO_ANSWER,
                called_at=consultation.created_at + timedelta(minutes=30),
            )
            # What the old rule stored: the first call, whatever its outcome.
            db.session.execute(
                sa.update(ConsultationRequest)
                .where(ConsultationRequest.id == consultation.id)
                .values(acknowledged_at=call.called_at, acknowledged_by_id=first.id)
            )
            db.session.commit()
        later = log_callback(
            db.session.get(ConsultationRequest, reached.id),
            second,
            CallOutcome.REACHED,
            called_at=call.called_at + timedelta(minutes=20),
        )
        reached_at, second_id = later.called_at, second.id
        unreached_id, reached_id = ids[unreached.reference], ids[reached.reference]
        db.session.remove()
        downgrade(directory=MIGRATIONS, revision="d2f6a8c4e1b3")

        upgrade(directory=MIGRATIONS)

        gone = db.session.get(ConsultationRequest, unreached_id)
        assert (gone.acknowledged_at, gone.acknowledged_by_id) == (None, None)
        kept = db.session.get(ConsultationRequest, reached_id)
        assert (kept.acknowledged_at, kept.acknowledged_by_id) == (reached_at, second_id)
        db.session.remove()


def test_patients_named_before_the_search_name_are_found_without_accents(
    empty_database: str, tmp_path: Path
) -> None:
    """Migration c4e8a2f6b9d1: every patient already stored gets the folded name the queue's
    search compares (staff type "Garcia" for "García")."""
    app = create_app({"SQLALCHEMY_DATABASE_URI": empty_database, "UPLOAD_DIR": str(tmp_path)})
    with app.app_context():
        upgrade(directory=MIGRATIONS, revision="e9b4c2d7f5a1")
        with db.engine.begin() as conn:
            for name in ("José García Núñez", "ØYVIND STRAßE", "Erika Mustermann"):
                conn.execute(
                    sa.text(
                        "INSERT INTO patient (full_name, phone, preferred_contact, created_at) "
                        "VALUES (:name, '+4930901820', 'email', CURRENT_TIMESTAMP)"
                    ),
                    {"name": name},
                )
        upgrade(directory=MIGRATIONS)
        with db.engine.connect() as conn:
            folded = conn.scalars(sa.text("SELECT search_name FROM patient ORDER BY id")).all()
        assert folded == ["jose garcia nunez", "øyvind strasse", "erika mustermann"]


def test_offers_open_before_the_waves_stay_with_the_patients_they_were_sent_to(
    empty_database: str, tmp_path: Path
) -> None:
    """Migration b3e7d1f9a5c2: an offer still open was emailed to everyone then waiting for
    an earlier time of its type; ``offered_to`` now asks for a recipient row, so each of them
    gets one (and keeps the right to take it), not only the first wave's."""
    from datetime import timedelta

    from booking.manage.services import cancel
    from booking.requests.models import ConsultationRequest
    from booking.requests.waitlist import join_waitlist, offered_to
    from booking.scheduling.availability import open_slots
    from booking.scheduling.models import SlotOffer, SlotOfferRecipient
    from booking.scheduling.services import SlotChoice
    from booking.timeutil import now_utc
    from tests.factories import (
        make_appointment_type,
        make_hours,
        make_location,
        make_request,
        make_staff,
    )

    app = create_app({"SQLALCHEMY_DATABASE_URI": empty_database, "UPLOAD_DIR": str(tmp_path)})
    with app.app_context():
        # Made with today's models (at the head), then taken back to the revision before.
        upgrade(directory=MIGRATIONS)
        location, specialist = make_location(), make_staff("specialist")
        make_hours(specialist, location, range(7), "09:00", "17:00")
        appointment_type = make_appointment_type("Long evaluation", minutes=60)
        start = now_utc() + timedelta(days=2)
        slots = open_slots(appointment_type, start, start + timedelta(days=5))
        later = [s for s in slots if s.starts_at >= slots[0].starts_at + timedelta(days=1)]

        def book(slot, email: str) -> ConsultationRequest:
            choice = SlotChoice(
                appointment_type.id, slot.specialist_id, slot.location_id, slot.starts_at
            )
            return make_request(email=email, slot=choice)

        first = book(slots[0], "first@example.com")
        waiting = [book(later[i * 8], f"waiting{i}@example.com") for i in range(3)]
        for consultation in waiting:
            join_waitlist(consultation)
        app.config["WAITLIST_WAVE_SIZE"] = 1
        cancel(first, None)
        offer_id = db.session.scalars(sa.select(SlotOffer.id)).one()
        waiting_ids = sorted(w.id for w in waiting)
        db.session.remove()
        downgrade(directory=MIGRATIONS, revision="d5a1c7e3b9f2")

        upgrade(directory=MIGRATIONS)

        recipients = db.session.scalars(
            sa.select(SlotOfferRecipient.request_id).where(SlotOfferRecipient.offer_id == offer_id)
        ).all()
        assert sorted(recipients) == waiting_ids
        offer = db.session.get(SlotOffer, offer_id)
        assert offer.wave == 1 and offer.wave_sent_at == offer.created_at
        assert all(offered_to(offer, db.session.get(ConsultationRequest, i)) for i in waiting_ids)
        db.session.remove()


def test_the_feedback_announcement_goes_on_from_the_last_one_audited(
    empty_database: str, tmp_path: Path
) -> None:
    """Migration d5a8e3c1f9b7 starts the claimed announcement row from the audit trail's
    latest page_feedback_announced: the hourly rhythm and the next email's count go on."""
    from datetime import UTC, datetime

    from booking.feedback.models import FeedbackAnnouncement

    app = create_app({"SQLALCHEMY_DATABASE_URI": empty_database, "UPLOAD_DIR": str(tmp_path)})
    with app.app_context():
        upgrade(directory=MIGRATIONS, revision="8965cc2be971")
        with db.engine.begin() as conn:
            tables = sa.MetaData()
            tables.reflect(conn, only=["audit_event"])
            for hour in (9, 11):
                conn.execute(
                    tables.tables["audit_event"].insert(),
                    {
                        "action": "page_feedback_announced",
                        "target_type": "page_feedback",
                        "details": {"count": 1},
                        "occurred_at": datetime(2026, 12, 1, hour, 30, tzinfo=UTC),
                    },
                )
        upgrade(directory=MIGRATIONS)
        row = db.session.get(FeedbackAnnouncement, FeedbackAnnouncement.ROW)
        assert row is not None
        assert row.announced_at == datetime(2026, 12, 1, 11, 30, tzinfo=UTC)
        db.session.remove()
        db.engine.dispose()


BEFORE_AUDIT_REFERENCES = "d5a8e3c1f9b7"


def test_audit_rows_written_before_the_links_are_found_by_reference(
    empty_database: str, tmp_path: Path
) -> None:
    """Migration 30aaefa018b9 links the audit rows already written to the references they
    name (a request target, an export's list), so the search by reference finds them."""
    from datetime import UTC, datetime

    from booking.audit.queries import AuditFilters, audit_page

    app = create_app({"SQLALCHEMY_DATABASE_URI": empty_database, "UPLOAD_DIR": str(tmp_path)})
    now = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
    rows = [
        ("request_viewed", "request", "SC-AAAA-1111", {}),
        ("requests_export_ended", None, None, {"export": 1, "references": ["SC-AAAA-1111",
                                                                           "SC-BBBB-2222"]}),
        ("patient_erased", "patient", "SC-BBBB-2222", {"references": ["SC-BBBB-2222"]}),
        ("staff_changed", "staff", "3", {"role": {"before": "specialist", "after": "admin"}}),
        ("login", None, None, {}),
    ]  # fmt: skip
    with app.app_context():
        upgrade(directory=MIGRATIONS, revision=BEFORE_AUDIT_REFERENCES)
        with db.engine.begin() as conn:
            tables = sa.MetaData()
            tables.reflect(conn, only=["audit_event"])
            conn.execute(
                tables.tables["audit_event"].insert(),
                [
                    {"id": n, "occurred_at": now, "action": action, "target_type": kind,
                     "target_id": target, "details": details}
                    for n, (action, kind, target, details) in enumerate(rows, start=1)
                ],
            )  # fmt: skip

        upgrade(directory=MIGRATIONS)
        with db.engine.connect() as conn:
            links = sorted(
                tuple(row)
                for row in conn.execute(
                    sa.text("SELECT audit_event_id, reference FROM audit_reference")
                )
            )
        assert links == [
            (1, "SC-AAAA-1111"),
            (2, "SC-AAAA-1111"),
            (2, "SC-BBBB-2222"),
            (3, "SC-BBBB-2222"),
        ]
        found, total, _pages, _page = audit_page(AuditFilters(target="sc-aaaa-1111"))
        assert sorted(e.id for e in found) == [1, 2] and total == 2
        db.session.remove()

        downgrade(directory=MIGRATIONS, revision=BEFORE_AUDIT_REFERENCES)
        with db.engine.connect() as conn:
            assert not sa.inspect(conn).has_table("audit_reference")
        db.engine.dispose()


BEFORE_SUPERSEDED = "30aaefa018b9"


def test_the_downgrade_before_superseded_follow_ups_refuses_to_delete_answers(
    empty_database: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """Migration b9d3f7a1c5e2's downgrade cannot keep a superseded row beside its time point's
    row, and such a row holds the patient's answers: it refuses, and deletes nothing."""
    from datetime import timedelta

    from booking.outcomes import schedule
    from booking.outcomes.models import FollowUp, Plan
    from booking.outcomes.services import correct_procedure_date, send_due_followups
    from booking.timeutil import clinic_today, clinic_tz
    from tests.factories import make_staff, staff_user
    from tests.test_outcomes import _completed

    app = create_app({"SQLALCHEMY_DATABASE_URI": empty_database, "UPLOAD_DIR": str(tmp_path)})
    with app.app_context():
        upgrade(directory=MIGRATIONS)
        start = clinic_today() + timedelta(days=5)
        consultation = _completed(plan=Plan.OPEN_SURGERY, procedure=start)
        assert len(send_due_followups(now=schedule.due_at(start, "6w", clinic_tz()))) == 1
        correct_procedure_date(
            consultation,
            start + timedelta(days=30),
            staff_user(make_staff("coordinator").email),
            now=schedule.due_at(start, "6w", clinic_tz()) + timedelta(days=1),
        )
        assert db.session.scalars(sa.select(FollowUp.superseded_at)).one() is not None
        db.session.remove()
        with pytest.raises(SystemExit):  # Flask-Migrate's exit, the error logged
            downgrade(directory=MIGRATIONS, revision=BEFORE_SUPERSEDED)
        logged = capfd.readouterr().err  # alembic's own logging setup writes to stderr
        assert "1 superseded follow-up row(s) hold patients' answers" in logged
        with db.engine.connect() as conn:
            assert conn.scalar(sa.text("SELECT count(*) FROM follow_up")) == 1
        with db.engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM follow_up WHERE superseded_at IS NOT NULL"))
        downgrade(directory=MIGRATIONS, revision=BEFORE_SUPERSEDED)
        db.engine.dispose()


BEFORE_TRIAGE_RAISED = "b9d3f7a1c5e2"


def test_the_raise_of_a_triage_level_comes_and_goes_with_its_column(
    empty_database: str, tmp_path: Path
) -> None:
    """Migration c7e2a9f4d1b6: the moment staff raised a request's level. Requests stored
    before it were never raised (empty); taken back, the column goes and the requests stay,
    at the level they were raised to."""
    from datetime import UTC, datetime

    from booking.dashboard.services import raise_triage
    from booking.requests.models import ConsultationRequest, TriageLevel
    from tests.factories import make_request, make_staff

    app = create_app({"SQLALCHEMY_DATABASE_URI": empty_database, "UPLOAD_DIR": str(tmp_path)})
    with app.app_context():
        upgrade(directory=MIGRATIONS)
        coordinator = make_staff("coordinator")
        raised = make_request()
        raised_id, kept_id = raised.id, make_request().id
        at = datetime(2026, 11, 16, 8, tzinfo=UTC)
        raise_triage(raised, coordinator, TriageLevel.URGENT, "New symptoms", now=at)
        assert db.session.get(ConsultationRequest, raised_id).triage_raised_at == at
        db.session.remove()

        downgrade(directory=MIGRATIONS, revision=BEFORE_TRIAGE_RAISED)
        with db.engine.connect() as conn:
            columns = {c["name"] for c in sa.inspect(conn).get_columns("consultation_request")}
            rows = conn.execute(
                sa.text("SELECT id, triage_level, priority FROM consultation_request ORDER BY id")
            ).all()
        assert "triage_raised_at" not in columns
        assert [tuple(row) for row in rows] == [(raised_id, "urgent", 1), (kept_id, "routine", 0)]

        upgrade(directory=MIGRATIONS)
        with db.engine.connect() as conn:
            stored = conn.execute(
                sa.text("SELECT id, triage_raised_at FROM consultation_request ORDER BY id")
            ).all()
        assert [tuple(row) for row in stored] == [(raised_id, None), (kept_id, None)]
        db.engine.dispose()


BEFORE_SETTLED = "9d4e1b7c3a52"  # before outbox_email.settled_at


def test_failed_emails_a_resend_dealt_with_before_are_settled_at_its_time(
    empty_database: str, tmp_path: Path
) -> None:
    """Migration a6c3e9f1b7d2: a failed email staff have dealt with is settled. The failed
    emails a resend looked at before it (its audit row lists them) are settled at that
    resend's time, so they leave the banner and the queue's count too; a failed email no
    resend looked at stays to chase, and the emails a resend wrote are not settled."""
    from booking.dashboard.services import resend_patient_emails
    from booking.notifications.models import OutboxEmail, OutboxStatus
    from booking.requests.emails import unnotified
    from tests.factories import make_request, make_staff

    app = create_app({"SQLALCHEMY_DATABASE_URI": empty_database, "UPLOAD_DIR": str(tmp_path)})
    with app.app_context():
        upgrade(directory=MIGRATIONS)
        coordinator = make_staff("coordinator")
        resent_for = make_request()
        make_request(email="otto@example.com", full_name="Otto Other")
        db.session.execute(sa.update(OutboxEmail).values(status=OutboxStatus.FAILED))
        db.session.commit()
        failed = list(db.session.scalars(sa.select(OutboxEmail.id)))
        # The patient's receipt (the clinic's notice of the request is no resend's).
        looked_at = {email.id for email in unnotified(resent_for)}
        assert len(looked_at) == 1
        resent = resend_patient_emails(resent_for, coordinator, "erika@example.com")
        # To another address: the old one is told of the change, by an email of its own.
        notice = db.session.scalars(
            sa.select(OutboxEmail.id).where(OutboxEmail.template == "address_changed")
        ).one()
        db.session.remove()

        downgrade(directory=MIGRATIONS, revision=BEFORE_SETTLED)
        with db.engine.connect() as conn:
            columns = {c["name"] for c in sa.inspect(conn).get_columns("outbox_email")}
        assert "settled_at" not in columns

        upgrade(directory=MIGRATIONS)
        with db.engine.connect() as conn:
            [resent_at] = conn.scalars(
                sa.text(
                    "SELECT occurred_at FROM audit_event WHERE action = 'patient_emails_resent'"
                )
            ).all()
            settled = dict(conn.execute(sa.text("SELECT id, settled_at FROM outbox_email")).all())
        assert resent.email_ids and not set(resent.email_ids) & set(failed)
        assert settled == {
            **{i: resent_at if i in looked_at else None for i in failed},
            **dict.fromkeys([*resent.email_ids, notice]),
        }
        db.engine.dispose()


BEFORE_SEARCH_GUARDIAN = "a6c3e9f1b7d2"  # before patient.search_guardian


def test_guardians_named_before_their_search_column_are_found_without_accents(
    empty_database: str, tmp_path: Path
) -> None:
    """Migration b4d8f2a6c1e3: every patient already stored gets their parent's or guardian's
    name folded as the queue's search compares it ("" without one), and the queue finds
    their request by it; the downgrade drops the column."""
    from booking.dashboard.queries import QueueFilters, queue_page
    from tests.factories import make_request, make_staff

    app = create_app({"SQLALCHEMY_DATABASE_URI": empty_database, "UPLOAD_DIR": str(tmp_path)})
    with app.app_context():
        upgrade(directory=MIGRATIONS, revision=BEFORE_SEARCH_GUARDIAN)
        with db.engine.begin() as conn:
            for name, guardian in (
                ("Lena García", "José García Núñez"),
                ("Erika Mustermann", None),
                ("Ole Straße", "ØYVIND STRAßE"),
            ):
                conn.execute(
                    sa.text(
                        "INSERT INTO patient (full_name, search_name, guardian_name, phone, "
                        "preferred_contact, created_at) VALUES (:name, '', :guardian, "
                        "'+4930901820', 'email', CURRENT_TIMESTAMP)"
                    ),
                    {"name": name, "guardian": guardian},
                )
        upgrade(directory=MIGRATIONS)
        with db.engine.connect() as conn:
            folded = conn.scalars(sa.text("SELECT search_guardian FROM patient ORDER BY id")).all()
        assert folded == ["jose garcia nunez", "", "øyvind strasse"]

        # A request of the guardian's child stored before: the queue's search finds it by
        # the guardian's name, typed without accents.
        consultation = make_request()
        consultation.patient_id = 1
        db.session.commit()
        found = queue_page(
            make_staff("coordinator"), QueueFilters(status=None, search="jose garcia")
        )
        assert [c.reference for c in found.items] == [consultation.reference]
        db.session.remove()

        downgrade(directory=MIGRATIONS, revision=BEFORE_SEARCH_GUARDIAN)
        with db.engine.connect() as conn:
            columns = {c["name"] for c in sa.inspect(conn).get_columns("patient")}
        assert "search_guardian" not in columns
        db.engine.dispose()


BEFORE_FORMAT_FOLD = "b4d8f2a6c1e3"  # before names were searched without format characters


def test_names_stored_with_invisible_characters_are_found_without_them(
    empty_database: str, tmp_path: Path
) -> None:
    """Migration d5a1c7e3f9b2: the patients already stored get their name and their
    guardian's folded again without the invisible format characters (a zero-width space
    pasted in), so the queue's search finds them by the name typed without; the downgrade
    folds them as before."""
    app = create_app({"SQLALCHEMY_DATABASE_URI": empty_database, "UPLOAD_DIR": str(tmp_path)})
    with app.app_context():
        upgrade(directory=MIGRATIONS, revision=BEFORE_FORMAT_FOLD)
        with db.engine.begin() as conn:
            for name, folded, guardian, guardian_folded in (
                ("Mar\u200bía López", "mar\u200bia lopez", "Jo\u00adsé", "jo\u00adse"),
                ("Erika Mustermann", "erika mustermann", None, ""),
            ):
                conn.execute(
                    sa.text(
                        "INSERT INTO patient (full_name, search_name, guardian_name, "
                        "search_guardian, phone, preferred_contact, created_at) VALUES (:name, "
                        ":folded, :guardian, :guardian_folded, '+4930901820', 'email', "
                        "CURRENT_TIMESTAMP)"
                    ),
                    {
                        "name": name,
                        "folded": folded,
                        "guardian": guardian,
                        "guardian_folded": guardian_folded,
                    },
                )
        upgrade(directory=MIGRATIONS)
        query = sa.text("SELECT search_name, search_guardian FROM patient ORDER BY id")
        with db.engine.connect() as conn:
            assert [tuple(row) for row in conn.execute(query)] == [
                ("maria lopez", "jose"),
                ("erika mustermann", ""),
            ]
        downgrade(directory=MIGRATIONS, revision=BEFORE_FORMAT_FOLD)
        with db.engine.connect() as conn:
            assert [tuple(row) for row in conn.execute(query)] == [
                ("mar\u200bia lopez", "jo\u00adse"),
                ("erika mustermann", ""),
            ]
        db.engine.dispose()


BEFORE_NAMES_WHATEVER_THE_CASE = "d5a1c7e3f9b2"


def test_names_alike_but_for_case_stop_the_upgrade_naming_them_and_lose_nothing(
    empty_database: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """Migration 2e2133079270 makes a location's and an appointment type's name unique
    whatever the case. Rows already named alike but for case are neither renamed nor merged:
    the upgrade is refused, naming them, and goes through once an admin renamed one."""
    app = create_app({"SQLALCHEMY_DATABASE_URI": empty_database, "UPLOAD_DIR": str(tmp_path)})
    with app.app_context():
        upgrade(directory=MIGRATIONS, revision=BEFORE_NAMES_WHATEVER_THE_CASE)
        with db.engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO location (name, names, address, active) VALUES "
                    "('Annex', '{}', 'Hauptstr. 9', true), ('Main', '{}', 'Am Markt 1', true), "
                    "('annex', '{}', 'Hauptstr. 9', true)"
                )
            )
            conn.execute(
                sa.text(
                    "INSERT INTO appointment_type (name, names, duration_minutes, active, mode) "
                    "VALUES ('Follow-up', '{}', 20, true, 'in_person'), "
                    "('FOLLOW-UP', '{}', 30, true, 'video')"
                )
            )
        with pytest.raises(SystemExit):  # Flask-Migrate's exit, the error logged
            upgrade(directory=MIGRATIONS)
        logged = " ".join(capfd.readouterr().err.split())
        assert (
            "Names that differ only in case cannot both be kept: location id 1 'Annex', id 3 "
            "'annex' (rename at Admin > Locations); appointment_type id 1 'Follow-up', id 2 "
            "'FOLLOW-UP' (rename at Admin > Scheduling)." in logged
        )
        with db.engine.begin() as conn:
            assert conn.scalar(sa.text("SELECT count(*) FROM location")) == 3
            conn.execute(sa.text("UPDATE location SET name = 'Annex West' WHERE id = 3"))
            conn.execute(
                sa.text("UPDATE appointment_type SET name = 'Video follow-up' WHERE id = 2")
            )
        upgrade(directory=MIGRATIONS)
        taken = sa.text(
            "INSERT INTO location (name, names, address, active) "
            "VALUES ('ANNEX WEST', '{}', 'x', true)"
        )
        with pytest.raises(sa.exc.IntegrityError), db.engine.begin() as conn:
            conn.execute(taken)
        with pytest.raises(sa.exc.IntegrityError), db.engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO appointment_type (name, names, duration_minutes, active, mode) "
                    "VALUES ('follow-up', '{}', 20, true, 'in_person')"
                )
            )
        downgrade(directory=MIGRATIONS, revision=BEFORE_NAMES_WHATEVER_THE_CASE)
        with db.engine.begin() as conn:
            conn.execute(taken)  # as before: capitals told the names apart
            assert conn.scalar(sa.text("SELECT count(*) FROM location")) == 4
        db.engine.dispose()


def test_checklist_names_are_filled_in_and_items_named_alike_are_kept_and_logged(
    empty_database: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """Migration d6c32616abfa fills in each item's names per language as the check compares
    them. Items already named alike in a language are kept as they are, logged: the first
    holds the name, which refuses a new item named so; the downgrade changes no label."""
    from datetime import UTC, datetime

    app = create_app({"SQLALCHEMY_DATABASE_URI": empty_database, "UPLOAD_DIR": str(tmp_path)})
    labels = [
        {"en": "Bone scan", "es": "Gammagrafía ósea"},
        {"en": "Spine X-ray", "es": "Radiografía"},
        {"en": "Whole-spine X-ray", "es": "radiografía "},  # the race, before the migration
        None,  # a default item switched off
    ]
    with app.app_context():
        upgrade(directory=MIGRATIONS, revision="2e2133079270")
        with db.engine.begin() as conn:
            tables = sa.MetaData()
            tables.reflect(conn, only=["checklist_item"])
            conn.execute(
                tables.tables["checklist_item"].insert(),
                [
                    {"code": code, "labels": item_labels, "active": True,
                     "created_at": datetime(2026, 12, 1, 9, tzinfo=UTC)}
                    for code, item_labels in zip(
                        ["bone_scan", "spine_x_ray", "whole_spine_x_ray", "referral_letter"],
                        labels,
                        strict=True,
                    )
                ],
            )  # fmt: skip
        upgrade(directory=MIGRATIONS)
        logged = capfd.readouterr().err
        assert (
            "Checklist items spine_x_ray and whole_spine_x_ray have one name in es "
            "('radiografía '): both kept" in logged
        )
        with db.engine.begin() as conn:
            names = conn.execute(
                sa.text(
                    "SELECT item_id, language, key FROM checklist_item_name "
                    "ORDER BY item_id, language"
                )
            ).all()
            assert [tuple(row) for row in names] == [
                (1, "en", "bone scan"),
                (1, "es", "gammagrafía ósea"),
                (2, "en", "spine x-ray"),
                (2, "es", "radiografía"),
                (3, "en", "whole-spine x-ray"),
            ]
        with pytest.raises(sa.exc.IntegrityError), db.engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO checklist_item_name VALUES (3, 'es', 'radiografía')"))
        downgrade(directory=MIGRATIONS, revision="2e2133079270")
        with db.engine.connect() as conn:
            assert "checklist_item_name" not in sa.inspect(conn).get_table_names()
            stored = conn.scalars(sa.text("SELECT labels FROM checklist_item ORDER BY id"))
            assert [json.loads(s) if isinstance(s, str) else s for s in stored] == labels


BEFORE_CLOSURES = "d6c32616abfa"  # before clinic_closure


def test_days_closed_in_the_app_come_and_go_with_their_table(
    empty_database: str, tmp_path: Path
) -> None:
    """Migration c3f8a1e6d4b7: the days an admin closes the clinic. Taken back, the table
    goes (the settings' closed days are untouched: they are not rows); upgraded again, a day
    can be closed, once."""
    from datetime import date

    from booking.scheduling.models import ClinicClosure

    app = create_app({"SQLALCHEMY_DATABASE_URI": empty_database, "UPLOAD_DIR": str(tmp_path)})
    with app.app_context():
        upgrade(directory=MIGRATIONS)
        db.session.add(ClinicClosure(day=date(2027, 3, 1), reason="Team training"))
        db.session.commit()
        db.session.remove()

        downgrade(directory=MIGRATIONS, revision=BEFORE_CLOSURES)
        with db.engine.connect() as conn:
            assert "clinic_closure" not in sa.inspect(conn).get_table_names()

        upgrade(directory=MIGRATIONS)
        db.session.add(ClinicClosure(day=date(2027, 3, 1), reason="Burst pipe"))
        db.session.commit()
        db.session.add(ClinicClosure(day=date(2027, 3, 1), reason="Twice"))
        with pytest.raises(sa.exc.IntegrityError):
            db.session.commit()  # one row a day
        db.session.rollback()
        assert db.session.scalars(sa.select(ClinicClosure.reason)).all() == ["Burst pipe"]
        db.session.remove()
        db.engine.dispose()
