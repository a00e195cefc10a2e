"""Outbox: when an email being sent was withdrawn by a change of its request

Revision ID: d5a1c7e3b9f2
Revises: c4e8a2f6b9d1
Create Date: 2026-12-06 05:30:00.000000

"""

import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision = "d5a1c7e3b9f2"
down_revision = "c4e8a2f6b9d1"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("outbox_email") as batch_op:
        batch_op.add_column(sa.Column("withdrawn_at", sa.DateTime(timezone=True), nullable=True))


def downgrade():
    with op.batch_alter_table("outbox_email") as batch_op:
        batch_op.drop_column("withdrawn_at")
