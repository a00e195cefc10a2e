"""How an appointment type's visits take place: in person, by video or by phone

Revision ID: e5a1c7d3f9b2
Revises: b7e2d4a9c6f1
Create Date: 2026-12-05 19:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "e5a1c7d3f9b2"
down_revision = "b7e2d4a9c6f1"
branch_labels = None
depends_on = None

VALUES = ("in_person", "video", "phone")


def upgrade():
    # Every type so far was booked as a visit to its location: "in_person". The default only
    # fills the existing rows; new ones always say.
    with op.batch_alter_table("appointment_type") as batch_op:
        batch_op.add_column(
            sa.Column("mode", sa.String(length=12), nullable=False, server_default="in_person")
        )
        batch_op.create_check_constraint(
            "mode", "mode IN ({})".format(", ".join(f"'{v}'" for v in VALUES))
        )
    with op.batch_alter_table("appointment_type") as batch_op:
        batch_op.alter_column("mode", server_default=None)


def downgrade():
    with op.batch_alter_table("appointment_type") as batch_op:
        batch_op.drop_constraint(op.f("ck_appointment_type_mode"), type_="check")
        batch_op.drop_column("mode")
