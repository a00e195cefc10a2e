"""Patients' names as staff search them: without accents or case

Revision ID: c4e8a2f6b9d1
Revises: e9b4c2d7f5a1
Create Date: 2026-12-06 02:00:00.000000

"""

import unicodedata

import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision = "c4e8a2f6b9d1"
down_revision = "e9b4c2d7f5a1"
branch_labels = None
depends_on = None

patient = sa.table(
    "patient",
    sa.column("id", sa.Integer),
    sa.column("full_name", sa.String),
    sa.column("search_name", sa.String),
)


def _folded(text: str) -> str:
    # As booking.requests.models.folded at this revision (a migration keeps its own copy).
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()[:200]


def upgrade():
    with op.batch_alter_table("patient") as batch_op:
        batch_op.add_column(
            sa.Column("search_name", sa.String(length=200), server_default="", nullable=False)
        )
    connection = op.get_bind()
    rows = connection.execute(sa.select(patient.c.id, patient.c.full_name)).all()
    for patient_id, name in rows:
        connection.execute(
            sa.update(patient)
            .where(patient.c.id == patient_id)
            .values(search_name=_folded(name or ""))
        )


def downgrade():
    with op.batch_alter_table("patient") as batch_op:
        batch_op.drop_column("search_name")
