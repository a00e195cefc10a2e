"""A request is acknowledged only by a call that reached the patient

Revision ID: e9b4c2d7f5a1
Revises: d2f6a8c4e1b3
Create Date: 2026-12-06 00:10:00.000000

"""

from alembic import op


# revision identifiers, used by Alembic.
revision = "e9b4c2d7f5a1"
down_revision = "d2f6a8c4e1b3"
branch_labels = None
depends_on = None


def upgrade():
    # Until now the first call logged acknowledged the request, whatever came of it. Each
    # acknowledged request is now acknowledged by its first call that reached the patient,
    # or not at all: an open urgent request whose calls found no answer shows "not reached"
    # again, and escalates (booking.requests.escalation).
    op.execute(
        "UPDATE consultation_request SET "
        "acknowledged_at = (SELECT MIN(c.called_at) FROM callback_attempt c "
        "WHERE c.request_id = consultation_request.id AND c.outcome = 'reached'), "
        "acknowledged_by_id = (SELECT c.caller_id FROM callback_attempt c "
        "WHERE c.request_id = consultation_request.id AND c.outcome = 'reached' "
        "ORDER BY c.called_at, c.id LIMIT 1) "
        "WHERE acknowledged_at IS NOT NULL"
    )


def downgrade():
    # The old rule's acknowledgement (the first call, any outcome) is not restored: a
    # request acknowledged by a call that reached the patient stays so, which both rules
    # agree on.
    pass
