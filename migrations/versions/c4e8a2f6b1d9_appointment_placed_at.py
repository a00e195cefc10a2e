"""appointment placed_at: when an appointment was last put on its time, so a reminder whose
lead time had already passed then (confirmed or moved inside it) is not sent

Revision ID: c4e8a2f6b1d9
Revises: a3d9f1c7e5b2
Create Date: 2026-12-05 12:20:00

A plain ADD COLUMN (no table copy on SQLite, which would drop the no-double-booking
triggers); existing appointments take their last change, the nearest known moment they were
confirmed or moved.
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "c4e8a2f6b1d9"
down_revision = "a3d9f1c7e5b2"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("appointment", sa.Column("placed_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE appointment SET placed_at = updated_at")


def downgrade():
    op.drop_column("appointment", "placed_at")
