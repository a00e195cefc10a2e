"""request messages: a secure thread between staff and the patient, per request

One new table; documents get a nullable message_id (the message a patient's attachment came
with). A message's text is stored encrypted (as a draft's answers are).

Revision ID: a8f3c6e2d4b1
Revises: e8a4c2b7f1d3
Create Date: 2026-12-12 00:00:00

"""

import sqlalchemy as sa
from alembic import op

import booking.timeutil

# revision identifiers, used by Alembic.
revision = "a8f3c6e2d4b1"
down_revision = "e8a4c2b7f1d3"
branch_labels = None
depends_on = None

UTC = booking.timeutil.UTCDateTime(timezone=True)


def upgrade():
    op.create_table(
        "message",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("from_patient", sa.Boolean(), nullable=False),
        sa.Column("author_id", sa.Integer(), nullable=True),
        sa.Column("body", sa.String(), nullable=False),  # encrypted by the model
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("read_at", UTC, nullable=True),
        sa.Column("read_by_id", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "from_patient OR author_id IS NOT NULL", name=op.f("ck_message_staff_author_named")
        ),
        sa.ForeignKeyConstraint(
            ["author_id"], ["staff_user.id"], name=op.f("fk_message_author_id_staff_user")
        ),
        sa.ForeignKeyConstraint(
            ["read_by_id"], ["staff_user.id"], name=op.f("fk_message_read_by_id_staff_user")
        ),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["consultation_request.id"],
            name=op.f("fk_message_request_id_consultation_request"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_message")),
    )
    op.create_index("ix_message_thread", "message", ["request_id", "created_at"], unique=False)
    with op.batch_alter_table("document", schema=None) as batch_op:
        batch_op.add_column(sa.Column("message_id", sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f("ix_document_message_id"), ["message_id"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_document_message_id_message"),
            "message",
            ["message_id"],
            ["id"],
            ondelete="SET NULL",
        )


def downgrade():
    with op.batch_alter_table("document", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_document_message_id_message"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_document_message_id"))
        batch_op.drop_column("message_id")
    op.drop_index("ix_message_thread", table_name="message")
    op.drop_table("message")
