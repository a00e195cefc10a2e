"""messages and answers: the one-time key of the form that sent them

Revision ID: b8d2f4a6c1e9
Revises: c3e7a9d1f5b8
Create Date: 2026-12-08 04:40:00

A patient's message and answer to the clinic's questions keep the one-time key of the form
they were sent with, unique: a page sent twice (a double click, Back and send again) stores
one, and a send whose commit's answer was lost is looked for by it, file or no file. Existing
rows have none (NULL, which a unique index allows any number of, on SQLite and PostgreSQL).
A plain ADD COLUMN and CREATE UNIQUE INDEX, as c3e7a9d1f5b8 (SQLite has both); the index is
dropped before its column, which SQLite's DROP COLUMN requires.
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "b8d2f4a6c1e9"
down_revision = "c3e7a9d1f5b8"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("message", sa.Column("submission_key", sa.String(length=64), nullable=True))
    op.create_index(op.f("ix_message_submission_key"), "message", ["submission_key"], unique=True)
    op.add_column(
        "information_request", sa.Column("answer_key", sa.String(length=64), nullable=True)
    )
    op.create_index(
        op.f("ix_information_request_answer_key"),
        "information_request",
        ["answer_key"],
        unique=True,
    )


def downgrade():
    op.drop_index(op.f("ix_information_request_answer_key"), table_name="information_request")
    op.drop_column("information_request", "answer_key")
    op.drop_index(op.f("ix_message_submission_key"), table_name="message")
    op.drop_column("message", "submission_key")
