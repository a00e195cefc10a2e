"""outbox: the time a move's email gives as the one it was, passed on when it is replaced

Revision ID: a4c8e2f6b9d3
Revises: 5a81eee97025
Create Date: 2026-12-07 23:00:00

A move's email says the time it moved from ("Previous time"); the row keeps it so that the
email written again with a location's corrected address still says it, and a newer move's
email that withdraws it unsent gives it instead of a time the patient was never told.
Existing rows have none: written before, they are sent or rewritten without it, as before.
A plain ADD COLUMN and DROP COLUMN (SQLite has both): a batch copy of the table would
reflect the tables it refers to, whose expression indexes SQLite cannot reflect.
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "a4c8e2f6b9d3"
down_revision = "5a81eee97025"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column(
        "outbox_email", sa.Column("previous_starts_at", sa.DateTime(timezone=True), nullable=True)
    )


def downgrade():
    op.drop_column("outbox_email", "previous_starts_at")
