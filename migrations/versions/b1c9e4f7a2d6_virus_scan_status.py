"""Virus scan status of stored documents

Revision ID: b1c9e4f7a2d6
Revises: d274cbde436d
Create Date: 2026-12-05 03:10:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'b1c9e4f7a2d6'
down_revision = "d274cbde436d"
branch_labels = None
depends_on = None

TABLES = ("document", "draft_document")
VALUES = ("clean", "pending", "infected", "skipped")


def upgrade():
    for table in TABLES:
        # Files stored before scanning existed were never scanned: "skipped", as with
        # scanning off. The default only fills the existing rows; new ones always say.
        with op.batch_alter_table(table) as batch_op:
            batch_op.add_column(
                sa.Column(
                    "scan_status", sa.String(length=10), nullable=False, server_default="skipped"
                )
            )
            batch_op.create_check_constraint(
                "scan_status",
                "scan_status IN ({})".format(", ".join(f"'{v}'" for v in VALUES)),
            )
        with op.batch_alter_table(table) as batch_op:
            batch_op.alter_column("scan_status", server_default=None)


def downgrade():
    for table in TABLES:
        with op.batch_alter_table(table) as batch_op:
            batch_op.drop_constraint(op.f(f"ck_{table}_scan_status"), type_="check")
            batch_op.drop_column("scan_status")
