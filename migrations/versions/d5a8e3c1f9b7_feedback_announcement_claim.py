"""Page feedback: one row claimed for each announcement to the admins, so it goes once

Revision ID: d5a8e3c1f9b7
Revises: 8965cc2be971
Create Date: 2026-12-06 10:00:00.000000

"""

import sqlalchemy as sa
from alembic import op

import booking.timeutil

# revision identifiers, used by Alembic.
revision = "d5a8e3c1f9b7"
down_revision = "8965cc2be971"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "feedback_announcement",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("announced_at", booking.timeutil.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feedback_announcement")),
    )
    # The last announcement so far was read from the audit trail: it goes on from there.
    op.execute(
        "INSERT INTO feedback_announcement (id, announced_at) "
        "SELECT 1, max(occurred_at) FROM audit_event "
        "WHERE action = 'page_feedback_announced' HAVING max(occurred_at) IS NOT NULL"
    )


def downgrade():
    op.drop_table("feedback_announcement")
