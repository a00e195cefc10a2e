"""Urgent-symptom answers the patient withdrew before sending, kept on the request

Revision ID: b7e3d9a1c5f2
Revises: a8d2f5c3e7b1
Create Date: 2026-12-05 23:10:00.000000

"""

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "b7e3d9a1c5f2"
down_revision = "a8d2f5c3e7b1"
branch_labels = None
depends_on = None


def upgrade():
    # Requests sent before keep an empty list: their withdrawn answers are on their timeline.
    with op.batch_alter_table("consultation_request") as batch_op:
        batch_op.add_column(
            sa.Column("withdrawn_red_flags", sa.JSON(), nullable=False, server_default="[]")
        )


def downgrade():
    with op.batch_alter_table("consultation_request") as batch_op:
        batch_op.drop_column("withdrawn_red_flags")
