"""call-backs: staff's calls logged per request, acknowledgement and escalation (#15)

- ``callback_attempt``: one row per call to a patient (who, when, what came of it); its note
  is on the timeline entry it points to.
- ``consultation_request`` gains ``acknowledged_at`` / ``acknowledged_by_id`` (the first call
  logged: it stops the clock against the call-back target) and ``escalated_at`` (the on-call
  address was emailed, once).
- ``request_event.kind`` gains ``call`` and ``escalation``.

Revision ID: b6dc7c31b6e1
Revises: c4f1a7e9d2b0
Create Date: 2026-12-04 20:34:47

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "b6dc7c31b6e1"
down_revision = "c4f1a7e9d2b0"
branch_labels = None
depends_on = None

KIND_CHECK = "ck_request_event_event_kind"


def upgrade():
    op.create_table(
        "callback_attempt",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("caller_id", sa.Integer(), nullable=False),
        sa.Column("called_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "outcome",
            sa.Enum(
                "reached",
                "no_answer",
                "wrong_number",
                "other",
                name="call_outcome",
                native_enum=False,
                create_constraint=True,
                length=20,
            ),
            nullable=False,
        ),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("logged_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["caller_id"], ["staff_user.id"], name=op.f("fk_callback_attempt_caller_id_staff_user")
        ),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["request_event.id"],
            name=op.f("fk_callback_attempt_event_id_request_event"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["consultation_request.id"],
            name=op.f("fk_callback_attempt_request_id_consultation_request"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_callback_attempt")),
        sa.UniqueConstraint("event_id", name=op.f("uq_callback_attempt_event_id")),
    )
    op.create_index("ix_callback_attempt_request", "callback_attempt", ["request_id", "called_at"])
    with op.batch_alter_table("consultation_request") as batch_op:
        batch_op.add_column(sa.Column("acknowledged_at", sa.DateTime(timezone=True)))
        batch_op.add_column(sa.Column("acknowledged_by_id", sa.Integer()))
        batch_op.add_column(sa.Column("escalated_at", sa.DateTime(timezone=True)))
        batch_op.create_foreign_key(
            op.f("fk_consultation_request_acknowledged_by_id_staff_user"),
            "staff_user",
            ["acknowledged_by_id"],
            ["id"],
        )
    with op.batch_alter_table("request_event") as batch_op:
        batch_op.drop_constraint(op.f(KIND_CHECK), type_="check")
        batch_op.create_check_constraint(
            "event_kind", "kind IN ('status', 'note', 'call', 'escalation')"
        )


def downgrade():
    # The older schema has no call-backs: their timeline entries go with them.
    op.drop_index("ix_callback_attempt_request", table_name="callback_attempt")
    op.drop_table("callback_attempt")
    op.execute("DELETE FROM request_event WHERE kind IN ('call', 'escalation')")
    with op.batch_alter_table("request_event") as batch_op:
        batch_op.drop_constraint(op.f(KIND_CHECK), type_="check")
        batch_op.create_check_constraint("event_kind", "kind IN ('status', 'note')")
    with op.batch_alter_table("consultation_request") as batch_op:
        batch_op.drop_constraint(
            op.f("fk_consultation_request_acknowledged_by_id_staff_user"), type_="foreignkey"
        )
        batch_op.drop_column("escalated_at")
        batch_op.drop_column("acknowledged_by_id")
        batch_op.drop_column("acknowledged_at")
