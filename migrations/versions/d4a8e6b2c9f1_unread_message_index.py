"""The queue's unread messages from patients: a partial index

Revision ID: d4a8e6b2c9f1
Revises: c7e2a9f4d1b6
Create Date: 2026-12-07 01:35:00.000000

The queue marks, counts and lists requests with a message from the patient that no member of
staff has read (``booking.messages.services.unread_by_staff``) on every load; without an
index that read scans every message the clinic ever had. The index holds only those rows.
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "d4a8e6b2c9f1"
down_revision = "c7e2a9f4d1b6"
branch_labels = None
depends_on = None


def upgrade():
    op.create_index(
        "ix_message_unread_from_patient",
        "message",
        ["request_id"],
        unique=False,
        postgresql_where=sa.text("from_patient AND read_at IS NULL"),
        sqlite_where=sa.text("from_patient = 1 AND read_at IS NULL"),
    )


def downgrade():
    op.drop_index("ix_message_unread_from_patient", table_name="message")
