"""security settings: the two-factor rule admins edit

Revision ID: d2ae0dad25ae
Revises: 7c1e4d2a9b3f
Create Date: 2026-11-27 07:06:16.294648

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'd2ae0dad25ae'
down_revision = '7c1e4d2a9b3f'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('security_settings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('two_factor_roles', sa.String(length=100), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_security_settings'))
    )


def downgrade():
    op.drop_table('security_settings')
