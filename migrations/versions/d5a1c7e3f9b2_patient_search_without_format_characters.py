"""Patients' names as staff search them: without invisible format characters

Revision ID: d5a1c7e3f9b2
Revises: b4d8f2a6c1e3
Create Date: 2026-12-07 12:05:00.000000

``booking.requests.models.folded`` now also drops the invisible format characters (Unicode
category Cf: zero-width spaces and joiners, direction marks, soft hyphens), so that a name
pasted with one is found by the name typed without. The patients already stored get
``search_name`` and ``search_guardian`` folded again (only those whose fold changes are
written). Data only: no column changes.
"""

import unicodedata

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "d5a1c7e3f9b2"
down_revision = "b4d8f2a6c1e3"
branch_labels = None
depends_on = None

patient = sa.table(
    "patient",
    sa.column("id", sa.Integer),
    sa.column("full_name", sa.String),
    sa.column("search_name", sa.String),
    sa.column("guardian_name", sa.String),
    sa.column("search_guardian", sa.String),
)


def _folded(text: str, *, without_format: bool) -> str:
    # As booking.requests.models.folded at this revision (without_format) and at the one
    # before (a migration keeps its own copy).
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(
        ch
        for ch in decomposed
        if not unicodedata.combining(ch)
        and not (without_format and unicodedata.category(ch) == "Cf")
    ).casefold()[:200]


def _fold_again(*, without_format: bool) -> None:
    connection = op.get_bind()
    # Names are stored as typed (not encrypted).
    rows = connection.execute(
        sa.select(
            patient.c.id,
            patient.c.full_name,
            patient.c.search_name,
            patient.c.guardian_name,
            patient.c.search_guardian,
        )
    ).all()
    for patient_id, name, search_name, guardian, search_guardian in rows:
        values = {}
        if (name_fold := _folded(name or "", without_format=without_format)) != search_name:
            values["search_name"] = name_fold
        guardian_fold = _folded(guardian or "", without_format=without_format)
        if guardian_fold != search_guardian:
            values["search_guardian"] = guardian_fold
        if values:
            connection.execute(sa.update(patient).where(patient.c.id == patient_id).values(values))


def upgrade():
    _fold_again(without_format=True)


def downgrade():
    _fold_again(without_format=False)
