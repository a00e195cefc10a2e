"""Staff may raise a request's triage level: when they last did

Revision ID: c7e2a9f4d1b6
Revises: b9d3f7a1c5e2
Create Date: 2026-12-07 01:20:00.000000

``consultation_request.triage_raised_at``: the call-back the patient is owed after staff
raised the level (new symptoms) is counted from it, not from the request's arrival. Every
request stored before was never raised: the column starts empty.
"""

import sqlalchemy as sa
from alembic import op

import booking.timeutil

# revision identifiers, used by Alembic.
revision = "c7e2a9f4d1b6"
down_revision = "b9d3f7a1c5e2"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("consultation_request", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "triage_raised_at", booking.timeutil.UTCDateTime(timezone=True), nullable=True
            )
        )


def downgrade():
    # The raised level and its priority stay; only the moment its call-back clock started
    # goes: a raised request not yet reached then counts from its arrival again.
    with op.batch_alter_table("consultation_request", schema=None) as batch_op:
        batch_op.drop_column("triage_raised_at")
