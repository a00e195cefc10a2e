"""The queue orders each triage level by its call-back clock

Revision ID: f2b9d4e7a1c3
Revises: d4a8e6b2c9f1
Create Date: 2026-12-07 03:00:00.000000

Within a level the queue listed requests by arrival; a request whose level staff raised is owed
its call-back from the raise (``ConsultationRequest.call_back_since``: the raise, else the
arrival), so the queue now orders by that. Its two indexes are rebuilt on the same expression,
so both databases still read a page of any tab from an index, in order.

SQLite does not reflect indexes on an expression: a later ``batch_alter_table`` of this table
(which rebuilds it from what it reflects) must drop these two and create them again around it,
as ``e8a4c2b7f1d3`` does.
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "f2b9d4e7a1c3"
down_revision = "d4a8e6b2c9f1"
branch_labels = None
depends_on = None

TABLE = "consultation_request"


def _queue_indexes(clock):
    op.drop_index("ix_consultation_request_queue_all", table_name=TABLE)
    op.drop_index("ix_consultation_request_queue", table_name=TABLE)
    op.create_index(
        "ix_consultation_request_queue",
        TABLE,
        ["status", sa.text("priority DESC"), clock, "id"],
    )
    op.create_index(
        "ix_consultation_request_queue_all", TABLE, [sa.text("priority DESC"), clock, "id"]
    )


def upgrade():
    _queue_indexes(sa.text("coalesce(triage_raised_at, created_at)"))


def downgrade():
    _queue_indexes("created_at")
