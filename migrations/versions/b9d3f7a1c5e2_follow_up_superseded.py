"""Follow-up: a row superseded by a corrected procedure date, the time point asked again

Revision ID: b9d3f7a1c5e2
Revises: 30aaefa018b9
Create Date: 2026-12-06 22:00:00.000000

A time point sent too early for a postponed operation (or answered before it) is kept, marked
``superseded_at``, and invited again at its new time: the one-row-per-time-point rule holds
over the rows not superseded only (a partial unique index on both databases). SQLite cannot
drop a table's unique constraint in place: the batch copies the table.
"""

import sqlalchemy as sa
from alembic import op

import booking.timeutil

# revision identifiers, used by Alembic.
revision = "b9d3f7a1c5e2"
down_revision = "30aaefa018b9"
branch_labels = None
depends_on = None

LIVE = "superseded_at IS NULL"


def upgrade():
    with op.batch_alter_table("follow_up", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("superseded_at", booking.timeutil.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.drop_constraint("uq_follow_up_request_point", type_="unique")
    op.create_index(
        "uq_follow_up_live_point",
        "follow_up",
        ["request_id", "point"],
        unique=True,
        sqlite_where=sa.text(LIVE),
        postgresql_where=sa.text(LIVE),
    )


def downgrade():
    # The rule the superseded rows were kept beside allows one row per time point, and they
    # hold patients' answers: refused rather than deleting them unasked.
    held = op.get_bind().scalar(
        sa.text("SELECT count(*) FROM follow_up WHERE superseded_at IS NOT NULL")
    )
    if held:
        raise RuntimeError(
            f"{held} superseded follow-up row(s) hold patients' answers; the schema before this "
            "revision cannot keep them beside their time point's row. Export them first "
            "(follow_up WHERE superseded_at IS NOT NULL), delete them, then downgrade."
        )
    op.drop_index("uq_follow_up_live_point", table_name="follow_up")
    with op.batch_alter_table("follow_up", schema=None) as batch_op:
        batch_op.create_unique_constraint("uq_follow_up_request_point", ["request_id", "point"])
        batch_op.drop_column("superseded_at")
