"""The committed migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

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
