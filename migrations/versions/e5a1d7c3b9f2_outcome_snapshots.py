"""outcome snapshots: the outcomes page's counts, computed by the worker and kept a while

Revision ID: e5a1d7c3b9f2
Revises: c2d8e4f6a1b3
Create Date: 2026-12-05 06:00:00

"""

import sqlalchemy as sa
from alembic import op

import booking.timeutil

# revision identifiers, used by Alembic.
revision = "e5a1d7c3b9f2"
down_revision = "c2d8e4f6a1b3"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "outcome_snapshot",
        sa.Column("key", sa.String(length=120), nullable=False),
        sa.Column("computed_at", booking.timeutil.UTCDateTime(timezone=True), nullable=False),
        sa.Column("tally", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_outcome_snapshot")),
    )


def downgrade():
    op.drop_table("outcome_snapshot")
