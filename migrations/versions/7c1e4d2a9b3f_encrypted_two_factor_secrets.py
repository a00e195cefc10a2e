"""encrypted two-factor secrets: room for the ciphertext

Revision ID: 7c1e4d2a9b3f
Revises: 53adce2655ba
Create Date: 2026-11-27 07:20:00.000000

Secrets stored before this revision stay readable as plain text; `flask keys rotate`
encrypts them.
"""

import sqlalchemy as sa
from alembic import op

revision = "7c1e4d2a9b3f"
down_revision = "53adce2655ba"
branch_labels = None
depends_on = None


def _resize(old: int, new: int) -> None:
    # SQLite does not enforce VARCHAR lengths, and rebuilding staff_user there (batch mode)
    # would cascade-delete the rows that reference it: change the type where it matters.
    if op.get_bind().dialect.name == "sqlite":
        return
    op.alter_column(
        "staff_user",
        "totp_secret",
        existing_type=sa.String(length=old),
        type_=sa.String(length=new),
        existing_nullable=True,
    )


def upgrade():
    _resize(64, 255)


def downgrade():
    _resize(255, 64)
