"""asking the patient for what is missing: the clinic's checklist, requests for information

- ``consultation_request.status`` gains ``awaiting_patient`` (staff asked the patient for
  something; the answer puts the request back to ``requested``), and the request gains
  ``information_received_at`` (the queue's "information received" mark).
- ``document.checklist_item``: the checklist item a patient sent a file for.
- ``checklist_item``: the clinic's changes to its checklist (defaults live in code).
- ``information_request``: each ask, its items, question and answer (both encrypted by the
  model), and when it was answered, withdrawn or reminded.

Revision ID: e8a4c2b7f1d3
Revises: d7b3e5a1c9f2
Create Date: 2026-12-05 02:30:00

"""

import sqlalchemy as sa
from alembic import op

import booking.timeutil

# revision identifiers, used by Alembic.
revision = "e8a4c2b7f1d3"
down_revision = "d7b3e5a1c9f2"
branch_labels = None
depends_on = None

UTC = booking.timeutil.UTCDateTime(timezone=True)
TABLE = "consultation_request"
STATUS_CHECK = "ck_consultation_request_request_status"
OLD = ("requested", "confirmed", "completed", "declined", "cancelled", "no_show")
NEW = ("requested", "awaiting_patient", *OLD[1:])


def _status_check(values):
    # SQLite rebuilds the table for a changed CHECK; its expression indexes are rebuilt around it.
    op.drop_index("ix_consultation_request_queue_all", table_name=TABLE)
    op.drop_index("ix_consultation_request_queue", table_name=TABLE)
    with op.batch_alter_table(TABLE) as batch_op:
        batch_op.drop_constraint(op.f(STATUS_CHECK), type_="check")
        batch_op.create_check_constraint(
            "request_status", "status IN ({})".format(", ".join(f"'{v}'" for v in values))
        )
    op.create_index(
        "ix_consultation_request_queue",
        TABLE,
        ["status", sa.text("priority DESC"), "created_at", "id"],
    )
    op.create_index(
        "ix_consultation_request_queue_all", TABLE, [sa.text("priority DESC"), "created_at", "id"]
    )


def upgrade():
    _status_check(NEW)
    op.add_column(TABLE, sa.Column("information_received_at", UTC, nullable=True))
    op.add_column("document", sa.Column("checklist_item", sa.String(length=40), nullable=True))
    op.create_table(
        "checklist_item",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_checklist_item")),
        sa.UniqueConstraint("code", name=op.f("uq_checklist_item_code")),
    )
    op.create_table(
        "information_request",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("asked_by_id", sa.Integer(), nullable=True),
        sa.Column("asked_at", UTC, nullable=False),
        sa.Column("items", sa.JSON(), nullable=False),
        sa.Column("question", sa.String(), nullable=True),  # encrypted by the model
        sa.Column("answer", sa.String(), nullable=True),  # encrypted by the model
        sa.Column("answered_at", UTC, nullable=True),
        sa.Column("withdrawn_at", UTC, nullable=True),
        sa.Column("reminded_at", UTC, nullable=True),
        sa.ForeignKeyConstraint(
            ["asked_by_id"],
            ["staff_user.id"],
            name=op.f("fk_information_request_asked_by_id_staff_user"),
        ),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["consultation_request.id"],
            name=op.f("fk_information_request_request_id_consultation_request"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_information_request")),
    )
    op.create_index(
        op.f("ix_information_request_request_id"),
        "information_request",
        ["request_id"],
        unique=False,
    )


def downgrade():
    # A request waiting for the patient is still waiting for the clinic in the older schema.
    op.execute(f"UPDATE {TABLE} SET status = 'requested' WHERE status = 'awaiting_patient'")
    op.drop_index(op.f("ix_information_request_request_id"), table_name="information_request")
    op.drop_table("information_request")
    op.drop_table("checklist_item")
    with op.batch_alter_table("document") as batch_op:
        batch_op.drop_column("checklist_item")
    with op.batch_alter_table(TABLE) as batch_op:
        batch_op.drop_column("information_received_at")
    _status_check(OLD)
