"""outbox: how a visit took place before a move changed it, passed on when it is replaced

Revision ID: c3e7a9d1f5b8
Revises: a4c8e2f6b9d3
Create Date: 2026-12-08 00:20:00

A move's email that changes how the visit takes place (in person, video, phone) says so
first ("This visit is now in person at ..., not by video."); the row keeps the way it was so
that the email written again with a location's corrected address still says it, and a newer
move's email that withdraws it unsent says it instead (the patient was never told the way in
between). Existing rows have none: sent or rewritten without it, as before. A plain ADD
COLUMN and DROP COLUMN, as a4c8e2f6b9d3 (SQLite has both).
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "c3e7a9d1f5b8"
down_revision = "a4c8e2f6b9d3"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("outbox_email", sa.Column("previous_mode", sa.String(length=12), nullable=True))


def downgrade():
    op.drop_column("outbox_email", "previous_mode")
