"""Days the whole clinic is closed, entered by an admin

Revision ID: c3f8a1e6d4b7
Revises: d6c32616abfa
Create Date: 2026-12-07 17:45:00.000000

Until now the clinic's closed days came only from the settings (``CLINIC_HOLIDAYS``,
``CLINIC_CLOSED_DAYS``): a one-off closure (a training day, a burst pipe) needed a redeploy.
A ``clinic_closure`` row closes one day, as those do. A new table: no rows to convert.
"""

import sqlalchemy as sa
from alembic import op

import booking.timeutil

# revision identifiers, used by Alembic.
revision = "c3f8a1e6d4b7"
down_revision = "d6c32616abfa"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "clinic_closure",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", booking.timeutil.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["staff_user.id"],
            name=op.f("fk_clinic_closure_created_by_id_staff_user"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_clinic_closure")),
        sa.UniqueConstraint("day", name=op.f("uq_clinic_closure_day")),
    )


def downgrade():
    op.drop_table("clinic_closure")
