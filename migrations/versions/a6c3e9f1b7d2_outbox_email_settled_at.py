"""A failed email staff have dealt with: when they did

Revision ID: a6c3e9f1b7d2
Revises: 9d4e1b7c3a52
Create Date: 2026-12-07 06:30:00.000000

``outbox_email.settled_at``: staff sent the patient's failed emails again, and each failed
email that resend looked at (sent again, replaced by a new link to the patient's page, or
left out as no longer wanted) is settled, so the record's banner and the queue's count of
patients not notified leave it out. Before, one not sent again stayed on both for good.

The failed emails of a resend made before this migration are settled at that resend's
time, as its audit row lists them (``patient_emails_resent``, ``failed_email_ids``).
"""

import json

import sqlalchemy as sa
from alembic import op

import booking.timeutil

# revision identifiers, used by Alembic.
revision = "a6c3e9f1b7d2"
down_revision = "9d4e1b7c3a52"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column(
        "outbox_email",
        sa.Column("settled_at", booking.timeutil.UTCDateTime(timezone=True), nullable=True),
    )
    conn = op.get_bind()
    resends = conn.execute(
        sa.text(
            "SELECT occurred_at, details FROM audit_event "
            "WHERE action = 'patient_emails_resent' ORDER BY id"
        )
    ).all()
    for occurred_at, details in resends:
        if isinstance(details, str):
            details = json.loads(details)
        ids = [i for i in (details or {}).get("failed_email_ids", []) if isinstance(i, int)]
        if not ids:
            continue
        conn.execute(
            sa.text(
                "UPDATE outbox_email SET settled_at = :at "
                "WHERE id IN :ids AND status = 'failed' AND settled_at IS NULL"
            ).bindparams(sa.bindparam("ids", expanding=True)),
            {"at": occurred_at, "ids": ids},
        )


def downgrade():
    # The failed emails a resend settled count again as the patient not notified. A plain
    # DROP COLUMN (SQLite 3.35 and later have it): a batch would rebuild the table from its
    # reflection, which on SQLite takes in the request table's expression indexes, which it
    # cannot reflect (``f2b9d4e7a1c3``).
    op.drop_column("outbox_email", "settled_at")
