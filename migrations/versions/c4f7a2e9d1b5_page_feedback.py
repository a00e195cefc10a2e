"""page feedback: readers' "was this page useful / report a problem" on the information pages

Revision ID: c4f7a2e9d1b5
Revises: b1c9e4f7a2d6
Create Date: 2026-12-10 10:00:00

"""

import sqlalchemy as sa
from alembic import op

import booking.timeutil

# revision identifiers, used by Alembic.
revision = "c4f7a2e9d1b5"
down_revision = "b1c9e4f7a2d6"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "page_feedback",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("page", sa.String(length=40), nullable=False),
        sa.Column("useful", sa.Boolean(), nullable=True),
        sa.Column("comment", sa.String(), nullable=True),  # encrypted by the model
        sa.Column("locale", sa.String(length=8), nullable=False),
        sa.Column("created_at", booking.timeutil.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_page_feedback")),
    )
    with op.batch_alter_table("page_feedback", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_page_feedback_created_at"), ["created_at"])
        batch_op.create_index(batch_op.f("ix_page_feedback_page"), ["page"])


def downgrade():
    with op.batch_alter_table("page_feedback", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_page_feedback_page"))
        batch_op.drop_index(batch_op.f("ix_page_feedback_created_at"))
    op.drop_table("page_feedback")
