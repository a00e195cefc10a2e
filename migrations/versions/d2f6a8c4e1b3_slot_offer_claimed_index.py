"""An index on the request that claimed a freed time's offer

Revision ID: d2f6a8c4e1b3
Revises: b7e3d9a1c5f2
Create Date: 2026-12-05 23:50:00.000000

"""

from alembic import op


# revision identifiers, used by Alembic.
revision = "d2f6a8c4e1b3"
down_revision = "b7e3d9a1c5f2"
branch_labels = None
depends_on = None


def upgrade():
    # Erasure and retention delete a request's claimed offers, and the foreign key's ON
    # DELETE SET NULL reads them too: without it each deleted request scanned the table.
    op.create_index(
        "ix_slot_offer_claimed_by_request_id", "slot_offer", ["claimed_by_request_id"]
    )


def downgrade():
    op.drop_index("ix_slot_offer_claimed_by_request_id", table_name="slot_offer")
