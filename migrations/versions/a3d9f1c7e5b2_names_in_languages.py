"""names in languages: locations and appointment types get their names in the other languages
patients read (JSON by language code; the clinic's language stays in ``name``)

Revision ID: a3d9f1c7e5b2
Revises: f7c2a9d4e8b1
Create Date: 2026-12-05 12:00:00

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "a3d9f1c7e5b2"
down_revision = "f7c2a9d4e8b1"
branch_labels = None
depends_on = None

TABLES = ("location", "appointment_type")


def upgrade():
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            # Existing rows have no other names yet: they read the clinic's name everywhere.
            batch_op.add_column(sa.Column("names", sa.JSON(), server_default="{}", nullable=False))


def downgrade():
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("names")
