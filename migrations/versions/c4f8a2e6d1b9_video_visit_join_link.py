"""A video visit's join link, set by staff and sent to the patient

Revision ID: c4f8a2e6d1b9
Revises: e5a1c7d3f9b2
Create Date: 2026-12-05 21:00:00.000000

"""

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "c4f8a2e6d1b9"
down_revision = "e5a1c7d3f9b2"
branch_labels = None
depends_on = None


def upgrade():
    # Encrypted by the model (booking.crypto.EncryptedText): stored as text.
    with op.batch_alter_table("appointment") as batch_op:
        batch_op.add_column(sa.Column("join_link", sa.String(length=1000), nullable=True))


def downgrade():
    with op.batch_alter_table("appointment") as batch_op:
        batch_op.drop_column("join_link")
