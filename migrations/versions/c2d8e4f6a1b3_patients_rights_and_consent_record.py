"""patients' own rights and a fuller consent record

The consent record keeps the language the privacy notice was shown in and the SHA-256 of its
wording; a patient may withdraw their consent to be contacted (when is kept); a patient's
request to erase their data waits in ``erasure_request`` for an administrator (its
explanation, if any, is encrypted by the model).

Revision ID: c2d8e4f6a1b3
Revises: f3b9d5c1e7a4
Create Date: 2026-12-05 03:10:00

"""

import sqlalchemy as sa
from alembic import op

import booking.timeutil

revision = "c2d8e4f6a1b3"
down_revision = "f3b9d5c1e7a4"
branch_labels = None
depends_on = None

UTC = booking.timeutil.UTCDateTime(timezone=True)


def upgrade():
    op.create_table(
        "erasure_request",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("reference", sa.String(length=12), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=True),
        sa.Column("requested_at", UTC, nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "open",
                "erased",
                "closed",
                name="erasure_status",
                native_enum=False,
                create_constraint=True,
                length=10,
            ),
            nullable=False,
        ),
        sa.Column("closed_at", UTC, nullable=True),
        sa.Column("closed_by_id", sa.Integer(), nullable=True),
        sa.Column("explanation", sa.String(), nullable=True),  # encrypted by the model
        sa.ForeignKeyConstraint(
            ["closed_by_id"],
            ["staff_user.id"],
            name=op.f("fk_erasure_request_closed_by_id_staff_user"),
        ),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["consultation_request.id"],
            name=op.f("fk_erasure_request_request_id_consultation_request"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_erasure_request")),
    )
    op.create_index(
        "ix_erasure_request_open", "erasure_request", ["status", "requested_at"], unique=False
    )
    op.create_index(
        op.f("ix_erasure_request_request_id"), "erasure_request", ["request_id"], unique=False
    )
    with op.batch_alter_table("consultation_request", schema=None) as batch_op:
        batch_op.add_column(sa.Column("privacy_notice_language", sa.String(10), nullable=True))
        batch_op.add_column(sa.Column("privacy_notice_sha256", sa.String(64), nullable=True))
        batch_op.add_column(sa.Column("contact_consent_withdrawn_at", UTC, nullable=True))


def downgrade():
    with op.batch_alter_table("consultation_request", schema=None) as batch_op:
        batch_op.drop_column("contact_consent_withdrawn_at")
        batch_op.drop_column("privacy_notice_sha256")
        batch_op.drop_column("privacy_notice_language")
    op.drop_index(op.f("ix_erasure_request_request_id"), table_name="erasure_request")
    op.drop_index("ix_erasure_request_open", table_name="erasure_request")
    op.drop_table("erasure_request")
