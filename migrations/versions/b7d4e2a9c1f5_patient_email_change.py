"""a patient's own change of email address, waiting for the new mailbox's confirmation

email_change: the new address, the SHA-256 of its confirmation link's token, when the link
expires and when it was used (booking.rights.addresses).

Revision ID: b7d4e2a9c1f5
Revises: c3f8a1e6d4b7
Create Date: 2026-12-07 20:20:00

"""

import sqlalchemy as sa
from alembic import op

import booking.timeutil

# revision identifiers, used by Alembic.
revision = "b7d4e2a9c1f5"
down_revision = "c3f8a1e6d4b7"
branch_labels = None
depends_on = None

UTC = booking.timeutil.UTCDateTime(timezone=True)


def upgrade():
    op.create_table(
        "email_change",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("new_email", sa.String(length=254), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("expires_at", UTC, nullable=False),
        sa.Column("used_at", UTC, nullable=True),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["consultation_request.id"],
            name=op.f("fk_email_change_request_id_consultation_request"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_email_change")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_email_change_token_hash")),
    )
    with op.batch_alter_table("email_change", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_email_change_request_id"), ["request_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_email_change_expires_at"), ["expires_at"], unique=False)


def downgrade():
    with op.batch_alter_table("email_change", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_email_change_expires_at"))
        batch_op.drop_index(batch_op.f("ix_email_change_request_id"))

    op.drop_table("email_change")
