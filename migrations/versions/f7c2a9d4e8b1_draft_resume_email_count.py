"""draft resume emails: how many "finish later" emails a draft has sent (at most five)

Revision ID: f7c2a9d4e8b1
Revises: e5a1d7c3b9f2
Create Date: 2026-12-05 07:00:00

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "f7c2a9d4e8b1"
down_revision = "e5a1d7c3b9f2"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("request_draft", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("resume_emails", sa.Integer(), server_default="0", nullable=False)
        )


def downgrade():
    with op.batch_alter_table("request_draft", schema=None) as batch_op:
        batch_op.drop_column("resume_emails")
