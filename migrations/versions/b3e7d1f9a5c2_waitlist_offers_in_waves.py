"""Waitlist offers in waves: who each offer was emailed to, and which wave it is at

Revision ID: b3e7d1f9a5c2
Revises: d5a1c7e3b9f2
Create Date: 2026-12-14 09:00:00.000000

"""

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic import op

import booking.timeutil

# revision identifiers, used by Alembic.
revision = "b3e7d1f9a5c2"
down_revision = "d5a1c7e3b9f2"
branch_labels = None
depends_on = None

# booking.requests.waitlist.OFFER_LIFETIME when this was written: older offers can no longer
# be taken, so they need no recipients.
OFFER_LIFETIME = timedelta(days=2)


def upgrade():
    with op.batch_alter_table("slot_offer", schema=None) as batch_op:
        batch_op.add_column(sa.Column("wave", sa.Integer(), nullable=False, server_default="1"))
        batch_op.add_column(
            sa.Column("wave_sent_at", booking.timeutil.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("freed_by_request_id", sa.Integer(), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_slot_offer_freed_by_request_id"), ["freed_by_request_id"]
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_slot_offer_freed_by_request_id_consultation_request"),
            "consultation_request",
            ["freed_by_request_id"],
            ["id"],
            ondelete="SET NULL",
        )
    op.execute("UPDATE slot_offer SET wave_sent_at = created_at")
    with op.batch_alter_table("slot_offer", schema=None) as batch_op:
        batch_op.alter_column("wave", server_default=None)
        batch_op.alter_column(
            "wave_sent_at",
            existing_type=booking.timeutil.UTCDateTime(timezone=True),
            nullable=False,
        )

    op.create_table(
        "slot_offer_recipient",
        sa.Column("offer_id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("offered_at", booking.timeutil.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["offer_id"],
            ["slot_offer.id"],
            name=op.f("fk_slot_offer_recipient_offer_id_slot_offer"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["consultation_request.id"],
            name=op.f("fk_slot_offer_recipient_request_id_consultation_request"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("offer_id", "request_id", name=op.f("pk_slot_offer_recipient")),
    )
    with op.batch_alter_table("slot_offer_recipient", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_slot_offer_recipient_request_id"), ["request_id"])

    # The offers still open were emailed, all at once, to every request then waiting for an
    # earlier time of their type: those keep the right to take them (``offered_to`` now asks
    # for a recipient row).
    utc = booking.timeutil.UTCDateTime(timezone=True)
    offer = sa.table(
        "slot_offer",
        sa.column("id", sa.Integer),
        sa.column("appointment_type_id", sa.Integer),
        sa.column("starts_at", utc),
        sa.column("created_at", utc),
        sa.column("claimed_by_request_id", sa.Integer),
    )
    entry = sa.table(
        "waitlist_entry",
        sa.column("request_id", sa.Integer),
        sa.column("appointment_type_id", sa.Integer),
        sa.column("active", sa.Boolean),
    )
    appointment = sa.table(
        "appointment",
        sa.column("request_id", sa.Integer),
        sa.column("appointment_type_id", sa.Integer),
        sa.column("starts_at", utc),
        sa.column("active", sa.Boolean),
    )
    recipient = sa.table(
        "slot_offer_recipient",
        sa.column("offer_id", sa.Integer),
        sa.column("request_id", sa.Integer),
        sa.column("offered_at", utc),
    )
    cutoff = sa.bindparam("cutoff", datetime.now(UTC) - OFFER_LIFETIME, type_=utc)
    waiting = (
        sa.select(offer.c.id, entry.c.request_id, offer.c.created_at)
        .distinct()
        .where(
            offer.c.claimed_by_request_id.is_(None),
            offer.c.created_at > cutoff,
            entry.c.active.is_(True),
            appointment.c.request_id == entry.c.request_id,
            appointment.c.active.is_(True),
            sa.or_(
                appointment.c.appointment_type_id == offer.c.appointment_type_id,
                entry.c.appointment_type_id == offer.c.appointment_type_id,
            ),
            appointment.c.starts_at > offer.c.starts_at,
        )
    )
    op.execute(
        recipient.insert().from_select(["offer_id", "request_id", "offered_at"], waiting)
    )


def downgrade():
    with op.batch_alter_table("slot_offer_recipient", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_slot_offer_recipient_request_id"))
    op.drop_table("slot_offer_recipient")
    with op.batch_alter_table("slot_offer", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_slot_offer_freed_by_request_id_consultation_request"),
            type_="foreignkey",
        )
        batch_op.drop_index(batch_op.f("ix_slot_offer_freed_by_request_id"))
        batch_op.drop_column("freed_by_request_id")
        batch_op.drop_column("wave_sent_at")
        batch_op.drop_column("wave")
