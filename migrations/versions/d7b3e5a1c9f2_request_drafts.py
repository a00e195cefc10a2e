"""request drafts: a patient's answers and documents saved at every step of the form

Two new tables, nothing existing changes. A draft's answers are stored encrypted (as the
two-factor secrets are); its documents' files are stored like a request's documents and
handed to the request when the draft is sent.

Revision ID: d7b3e5a1c9f2
Revises: c4e7a2f19d36
Create Date: 2026-12-05 00:00:00

"""

import sqlalchemy as sa
from alembic import op

import booking.timeutil

# revision identifiers, used by Alembic.
revision = "d7b3e5a1c9f2"
down_revision = "c4e7a2f19d36"
branch_labels = None
depends_on = None

UTC = booking.timeutil.UTCDateTime(timezone=True)


def upgrade():
    op.create_table(
        "request_draft",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("resume_token_hash", sa.String(length=64), nullable=True),
        sa.Column("submission_token", sa.String(length=64), nullable=False),
        sa.Column("locale", sa.String(length=10), nullable=False),
        sa.Column("answers", sa.String(), nullable=False),  # encrypted by the model
        sa.Column("step", sa.String(length=20), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
        sa.Column("expires_at", UTC, nullable=False),
        sa.Column("sent_at", UTC, nullable=True),
        sa.Column("request_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["consultation_request.id"],
            name=op.f("fk_request_draft_request_id_consultation_request"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_request_draft")),
        sa.UniqueConstraint("request_id", name=op.f("uq_request_draft_request_id")),
        sa.UniqueConstraint("resume_token_hash", name=op.f("uq_request_draft_resume_token_hash")),
        sa.UniqueConstraint("submission_token", name=op.f("uq_request_draft_submission_token")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_request_draft_token_hash")),
    )
    op.create_index(
        op.f("ix_request_draft_expires_at"), "request_draft", ["expires_at"], unique=False
    )
    op.create_table(
        "draft_document",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("draft_id", sa.Integer(), nullable=False),
        sa.Column("original_name", sa.String(length=255), nullable=False),
        sa.Column("stored_name", sa.String(length=64), nullable=False),
        sa.Column("content_type", sa.String(length=50), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("description", sa.String(length=200), nullable=True),
        sa.Column("uploaded_at", UTC, nullable=False),
        sa.CheckConstraint("size_bytes > 0", name=op.f("ck_draft_document_size_positive")),
        sa.ForeignKeyConstraint(
            ["draft_id"],
            ["request_draft.id"],
            name=op.f("fk_draft_document_draft_id_request_draft"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_draft_document")),
        sa.UniqueConstraint("stored_name", name=op.f("uq_draft_document_stored_name")),
    )
    op.create_index(
        op.f("ix_draft_document_draft_id"), "draft_document", ["draft_id"], unique=False
    )


def downgrade():
    op.drop_index(op.f("ix_draft_document_draft_id"), table_name="draft_document")
    op.drop_table("draft_document")
    op.drop_index(op.f("ix_request_draft_expires_at"), table_name="request_draft")
    op.drop_table("request_draft")
