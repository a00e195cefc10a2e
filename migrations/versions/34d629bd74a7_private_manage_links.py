"""private manage links stored as hashes; when a request closed

Patients' links become random tokens kept as SHA-256 rows (manage_link), revocable one by
one. consultation_request.closed_at (when the request was last closed) sets how long its
links work; it is filled here from the last status change of each closed request.
manage_links_reset_at ends every link sent before staff sent a new one.

Revision ID: 34d629bd74a7
Revises: 5e8a1c0b7d42
Create Date: 2026-12-04 16:20:58

"""

import sqlalchemy as sa
from alembic import op

import booking.timeutil

# revision identifiers, used by Alembic.
revision = "34d629bd74a7"
down_revision = "5e8a1c0b7d42"
branch_labels = None
depends_on = None

UTC = booking.timeutil.UTCDateTime(timezone=True)


def upgrade():
    op.create_table(
        "manage_link",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("opened_at", UTC, nullable=True),
        sa.Column("revoked_at", UTC, nullable=True),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["consultation_request.id"],
            name=op.f("fk_manage_link_request_id_consultation_request"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_manage_link")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_manage_link_token_hash")),
    )
    with op.batch_alter_table("manage_link", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_manage_link_request_id"), ["request_id"], unique=False)

    with op.batch_alter_table("consultation_request", schema=None) as batch_op:
        batch_op.add_column(sa.Column("closed_at", UTC, nullable=True))
        batch_op.add_column(sa.Column("manage_links_reset_at", UTC, nullable=True))

    # Closed requests: the time of their last status change, else their last update.
    op.execute(
        """
        UPDATE consultation_request SET closed_at = COALESCE(
            (SELECT MAX(e.occurred_at) FROM request_event e
              WHERE e.request_id = consultation_request.id
                AND e.to_status = consultation_request.status),
            updated_at)
        WHERE status NOT IN ('requested', 'confirmed')
        """
    )


def downgrade():
    with op.batch_alter_table("consultation_request", schema=None) as batch_op:
        batch_op.drop_column("manage_links_reset_at")
        batch_op.drop_column("closed_at")

    with op.batch_alter_table("manage_link", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_manage_link_request_id"))

    op.drop_table("manage_link")
