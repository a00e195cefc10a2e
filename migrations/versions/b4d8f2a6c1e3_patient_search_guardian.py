"""Parents' and guardians' names as staff search them: without accents or case

Revision ID: b4d8f2a6c1e3
Revises: a6c3e9f1b7d2
Create Date: 2026-12-07 07:30:00.000000

``patient.search_guardian``: the parent's or guardian's name (``guardian_name``) folded as
``search_name`` folds the patient's, so the queue's search finds a minor's request, or an
emergency call-back a guardian sent, by the name of the one who phones about it. Every
patient already stored gets it from their guardian's name ("" without one).
"""

import unicodedata

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "b4d8f2a6c1e3"
down_revision = "a6c3e9f1b7d2"
branch_labels = None
depends_on = None

patient = sa.table(
    "patient",
    sa.column("id", sa.Integer),
    sa.column("guardian_name", sa.String),
    sa.column("search_guardian", sa.String),
)


def _folded(text: str) -> str:
    # As booking.requests.models.folded at this revision (a migration keeps its own copy).
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()[:200]


def upgrade():
    # A plain ADD COLUMN, which SQLite does in place: a batch would rebuild the table from its
    # reflection for nothing (and on the request table would lose its expression indexes,
    # ``f2b9d4e7a1c3``).
    op.add_column(
        "patient",
        sa.Column("search_guardian", sa.String(length=200), server_default="", nullable=False),
    )
    connection = op.get_bind()
    # guardian_name is stored as typed (not encrypted), as full_name is.
    rows = connection.execute(
        sa.select(patient.c.id, patient.c.guardian_name).where(patient.c.guardian_name.is_not(None))
    ).all()
    for patient_id, name in rows:
        connection.execute(
            sa.update(patient)
            .where(patient.c.id == patient_id)
            .values(search_guardian=_folded(name))
        )


def downgrade():
    # A plain DROP COLUMN (SQLite 3.35 and later), as ``a6c3e9f1b7d2``'s downgrade.
    op.drop_column("patient", "search_guardian")
