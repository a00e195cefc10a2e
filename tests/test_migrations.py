"""The committed migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade

from booking import create_app
from booking.extensions import db
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


def _compare_type(context, _inspected, _column, inspected_type, metadata_type) -> bool | None:
    """Alembic's own type comparison, except VARCHAR lengths on SQLite, which ignores them
    (migrations resize columns only where the database enforces the size)."""
    metadata_type = getattr(metadata_type, "impl_instance", metadata_type)  # TypeDecorators
    both_strings = isinstance(inspected_type, sa.String) and isinstance(metadata_type, sa.String)
    if context.dialect.name == "sqlite" and both_strings:
        return False
    return None


def test_migrations_match_the_models_and_downgrade_cleanly(
    empty_database: str, tmp_path: Path
) -> None:
    app = create_app({"SQLALCHEMY_DATABASE_URI": empty_database, "UPLOAD_DIR": str(tmp_path)})
    with app.app_context():
        upgrade(directory=MIGRATIONS)
        with db.engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": _compare_type})
            differences = compare_metadata(context, db.metadata)
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

        upgrade(directory=MIGRATIONS)  # and up again: the downgrade left nothing in the way
        db.engine.dispose()


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
