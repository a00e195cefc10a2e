"""Locations and appointment types: one name whatever the case

Revision ID: 2e2133079270
Revises: d5a1c7e3f9b2
Create Date: 2026-12-07 17:45:00.000000

The admin pages refuse a name like another's in all but case ("Annex" beside "annex"), but two
admins saving at the same moment both got past that check: the unique name compares case. A
unique index on ``lower(name)`` now refuses the second on both databases (PostgreSQL lowers
every letter; SQLite only A to Z, but it runs one writer at a time, so its admins never race).
The unique name itself stays: dropping it would copy the tables on SQLite for nothing.

Rows already named alike but for case are not renamed (patients read these names in their
emails and calendar files, and which one to call what is the clinic's choice) nor merged
(appointments point at each): the upgrade is refused, naming them. Rename all but one of each
pair on the admin pages, with the release still running, then upgrade again.
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "2e2133079270"
down_revision = "d5a1c7e3f9b2"
branch_labels = None
depends_on = None

# table, the index, where an admin renames one
TABLES = (
    ("location", "uq_location_name_lower", "Admin > Locations"),
    ("appointment_type", "uq_appointment_type_name_lower", "Admin > Scheduling"),
)


def _twins(table: str) -> list[str]:
    """The rows of ``table`` named like another but for case, as "id 3 'annex'"."""
    rows = op.get_bind().execute(
        sa.text(
            f"SELECT id, name FROM {table} WHERE lower(name) IN "
            f"(SELECT lower(name) FROM {table} GROUP BY lower(name) HAVING count(*) > 1) "
            "ORDER BY lower(name), id"
        )
    ).all()
    return [f"id {row.id} {row.name!r}" for row in rows]


def upgrade():
    found = [
        f"{table} {', '.join(twins)} (rename at {page})"
        for table, _index, page in TABLES
        if (twins := _twins(table))
    ]
    if found:
        raise RuntimeError(
            f"Names that differ only in case cannot both be kept: {'; '.join(found)}. Rename "
            "all but one of each, then run the upgrade again (this revision changed nothing)."
        )
    for table, index, _page in TABLES:
        op.create_index(index, table, [sa.text("lower(name)")], unique=True)


def downgrade():
    for table, index, _page in TABLES:
        op.drop_index(index, table_name=table)
