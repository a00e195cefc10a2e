"""Outbox: the staff message an email carries, passed on if the email is withdrawn

Revision ID: 8965cc2be971
Revises: b3e7d1f9a5c2
Create Date: 2026-12-06 08:00:00.000000

"""

import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision = "8965cc2be971"
down_revision = "b3e7d1f9a5c2"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("outbox_email") as batch_op:
        batch_op.add_column(sa.Column("staff_message", sa.Text(), nullable=True))


def downgrade():
    with op.batch_alter_table("outbox_email") as batch_op:
        batch_op.drop_column("staff_message")
