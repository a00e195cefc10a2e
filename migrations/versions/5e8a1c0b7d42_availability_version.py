"""availability version: a counter raised by every change to what patients can book

Pages listing open times are reused until it moves (booking.scheduling.versions).

Revision ID: 5e8a1c0b7d42
Revises: 99e208c40485
Create Date: 2026-11-27 09:50:00

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "5e8a1c0b7d42"
down_revision = "99e208c40485"
branch_labels = None
depends_on = None


def upgrade():
    table = op.create_table(
        "availability_version",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_availability_version")),
    )
    op.bulk_insert(table, [{"id": 1, "version": 0}])


def downgrade():
    op.drop_table("availability_version")
