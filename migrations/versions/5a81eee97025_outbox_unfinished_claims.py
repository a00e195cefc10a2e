"""outbox: count the claims in a row a worker never finished, to fail an email that kills its worker

Revision ID: 5a81eee97025
Revises: b7d4e2a9c1f5
Create Date: 2026-12-07 20:40:00

An email whose worker dies each time (killed, hung, broken by it) used to be released and
claimed again until MAIL_GIVE_UP_HOURS, 72 hours of killed workers. ``unfinished_claims``
counts such claims in a row; MAIL_MAX_LAPSED_CLAIMS of them fail it. Existing rows start at
0: a claim lapsed before the upgrade is not known as one. A plain ADD COLUMN and DROP
COLUMN (SQLite has both): a batch copy of the table would reflect the tables it refers to,
whose expression indexes SQLite cannot reflect.
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "5a81eee97025"
down_revision = "b7d4e2a9c1f5"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column(
        "outbox_email",
        sa.Column("unfinished_claims", sa.Integer(), server_default="0", nullable=False),
    )


def downgrade():
    op.drop_column("outbox_email", "unfinished_claims")
