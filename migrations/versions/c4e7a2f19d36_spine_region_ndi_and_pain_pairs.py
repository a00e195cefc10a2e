"""main problem (spine region), the Neck Disability Index and pain by area

medical_history gains spine_region, 0-10 pain now/at worst for back, leg, neck and arm, and the
NDI's answers and score. The one overall pain pair becomes nullable: new requests rate pain by
area instead, and existing requests keep theirs, as they keep their ODI answers and scores
(nothing here rewrites them).

Existing requests get no spine_region: the patient never answered that question, and a value
guessed from the places that hurt would be shown to staff as the patient's answer. They were
asked the ODI only, which is what the record page shows for a request without a region.

Revision ID: c4e7a2f19d36
Revises: b6dc7c31b6e1
Create Date: 2026-12-04 20:30:00

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "c4e7a2f19d36"
down_revision = "b6dc7c31b6e1"
branch_labels = None
depends_on = None

PAIN_COLUMNS = [
    f"{area}_pain_{when}" for area in ("back", "leg", "neck", "arm") for when in ("now", "worst")
]


def upgrade():
    # Added with server defaults so existing rows get an empty NDI; the defaults are dropped
    # below (the model sets them), as for the ODI's columns.
    with op.batch_alter_table("medical_history", schema=None) as batch_op:
        batch_op.add_column(sa.Column("spine_region", sa.String(length=12), nullable=True))
        for column in PAIN_COLUMNS:
            batch_op.add_column(sa.Column(column, sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("ndi_answers", sa.JSON(), nullable=False, server_default=sa.text("'{}'"))
        )
        batch_op.add_column(
            sa.Column(
                "ndi_sections_answered", sa.Integer(), nullable=False, server_default=sa.text("0")
            )
        )
        batch_op.add_column(sa.Column("ndi_percent", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("ndi_band", sa.String(length=12), nullable=True))

    with op.batch_alter_table("medical_history", schema=None) as batch_op:
        batch_op.alter_column("ndi_answers", server_default=None)
        batch_op.alter_column("ndi_sections_answered", server_default=None)
        batch_op.alter_column("pain_now", existing_type=sa.Integer(), nullable=True)
        batch_op.alter_column("pain_worst", existing_type=sa.Integer(), nullable=True)
        for column in PAIN_COLUMNS:
            batch_op.create_check_constraint(
                f"{column}_range", sa.text(f"{column} BETWEEN 0 AND 10")
            )
        batch_op.create_check_constraint(
            "ndi_sections_answered_range", sa.text("ndi_sections_answered BETWEEN 0 AND 10")
        )
        batch_op.create_check_constraint(
            "ndi_percent_range",
            sa.text("ndi_percent IS NULL OR (ndi_percent >= 0 AND ndi_percent <= 100)"),
        )


def downgrade():
    # Requests made since keep a pain pair: the back's, else the neck's.
    op.execute(
        """
        UPDATE medical_history SET
            pain_now = COALESCE(back_pain_now, neck_pain_now, 0),
            pain_worst = COALESCE(back_pain_worst, neck_pain_worst, 0)
        WHERE pain_now IS NULL OR pain_worst IS NULL
        """
    )
    with op.batch_alter_table("medical_history", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_medical_history_ndi_percent_range"), type_="check")
        batch_op.drop_constraint(
            op.f("ck_medical_history_ndi_sections_answered_range"), type_="check"
        )
        for column in PAIN_COLUMNS:
            batch_op.drop_constraint(op.f(f"ck_medical_history_{column}_range"), type_="check")
        batch_op.alter_column("pain_worst", existing_type=sa.Integer(), nullable=False)
        batch_op.alter_column("pain_now", existing_type=sa.Integer(), nullable=False)
        batch_op.drop_column("ndi_band")
        batch_op.drop_column("ndi_percent")
        batch_op.drop_column("ndi_sections_answered")
        batch_op.drop_column("ndi_answers")
        for column in reversed(PAIN_COLUMNS):
            batch_op.drop_column(column)
        batch_op.drop_column("spine_region")
