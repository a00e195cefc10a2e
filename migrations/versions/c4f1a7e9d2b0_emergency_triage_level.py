"""emergency triage level; red flags on the request; patient details of a call-back

- ``triage_level`` gains ``emergency`` (the patient was told to seek emergency care and left a
  phone number for a call-back). The queue orders by a new ``priority`` column (emergency 2,
  urgent 1, routine 0) instead of the level's name, which does not sort that way; its two
  indexes are rebuilt on it.
- The red flags move from ``medical_history`` to ``consultation_request``: an emergency
  call-back has flags but no history. Existing answers are copied, none is lost.
- ``patient.email`` and ``patient.date_of_birth`` may be empty, for the same call-back.

Revision ID: c4f1a7e9d2b0
Revises: b71f0c2d9e5a
Create Date: 2026-12-04 20:30:00

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "c4f1a7e9d2b0"
down_revision = "b71f0c2d9e5a"
branch_labels = None
depends_on = None

TABLE = "consultation_request"
LEVEL_CHECK = "ck_consultation_request_triage_level"


def upgrade():
    op.drop_index("ix_consultation_request_queue_all", table_name=TABLE)
    op.drop_index("ix_consultation_request_queue", table_name=TABLE)
    with op.batch_alter_table(TABLE) as batch_op:
        batch_op.drop_constraint(op.f(LEVEL_CHECK), type_="check")
        batch_op.create_check_constraint(
            "triage_level", "triage_level IN ('emergency', 'urgent', 'routine')"
        )
        batch_op.add_column(
            sa.Column("priority", sa.SmallInteger(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column("red_flags", sa.JSON(), nullable=False, server_default="[]")
        )
    op.execute(f"UPDATE {TABLE} SET priority = 1 WHERE triage_level = 'urgent'")
    op.execute(
        f"UPDATE {TABLE} SET red_flags = (SELECT h.red_flags FROM medical_history h "
        f"WHERE h.request_id = {TABLE}.id) "
        f"WHERE EXISTS (SELECT 1 FROM medical_history h WHERE h.request_id = {TABLE}.id)"
    )
    op.create_index(
        "ix_consultation_request_queue",
        TABLE,
        ["status", sa.text("priority DESC"), "created_at", "id"],
    )
    op.create_index(
        "ix_consultation_request_queue_all", TABLE, [sa.text("priority DESC"), "created_at", "id"]
    )
    with op.batch_alter_table("medical_history") as batch_op:
        batch_op.drop_column("red_flags")
    with op.batch_alter_table("patient") as batch_op:
        batch_op.alter_column("email", existing_type=sa.String(254), nullable=True)
        batch_op.alter_column("date_of_birth", existing_type=sa.Date(), nullable=True)


def downgrade():
    # A call-back has no email address or date of birth, which the older schema requires:
    # refuse rather than delete a patient's request.
    callbacks = op.get_bind().scalar(
        sa.text("SELECT count(*) FROM patient WHERE email IS NULL OR date_of_birth IS NULL")
    )
    if callbacks:
        raise RuntimeError(
            f"{callbacks} emergency call-back request(s) have no email address or date of "
            "birth and cannot be kept by the older schema; close and erase them first."
        )
    with op.batch_alter_table("patient") as batch_op:
        batch_op.alter_column("date_of_birth", existing_type=sa.Date(), nullable=False)
        batch_op.alter_column("email", existing_type=sa.String(254), nullable=False)
    with op.batch_alter_table("medical_history") as batch_op:
        batch_op.add_column(
            sa.Column("red_flags", sa.JSON(), nullable=False, server_default="[]")
        )
    op.execute(
        f"UPDATE medical_history SET red_flags = (SELECT r.red_flags FROM {TABLE} r "
        "WHERE r.id = medical_history.request_id)"
    )
    op.drop_index("ix_consultation_request_queue_all", table_name=TABLE)
    op.drop_index("ix_consultation_request_queue", table_name=TABLE)
    op.execute(f"UPDATE {TABLE} SET triage_level = 'urgent' WHERE triage_level = 'emergency'")
    with op.batch_alter_table(TABLE) as batch_op:
        batch_op.drop_column("red_flags")
        batch_op.drop_column("priority")
        batch_op.drop_constraint(op.f(LEVEL_CHECK), type_="check")
        batch_op.create_check_constraint("triage_level", "triage_level IN ('urgent', 'routine')")
    op.create_index(
        "ix_consultation_request_queue",
        TABLE,
        ["status", sa.text("triage_level DESC"), "created_at", "id"],
    )
    op.create_index(
        "ix_consultation_request_queue_all",
        TABLE,
        [sa.text("triage_level DESC"), "created_at", "id"],
    )
