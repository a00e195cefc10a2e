"""Audit: link each row to the request references it names, for an indexed search

Revision ID: 30aaefa018b9
Revises: d5a8e3c1f9b7
Create Date: 2026-12-06 10:00:00.000000

The admin's search by reference and the DPO's query read every row's details as text
(``CAST(details AS TEXT) LIKE '%"SC-..."%'``). ``audit_reference`` holds each reference a row
names (its target, or one in its details), written with the row; this fills it for the rows
already there. The rule is copied from ``booking.audit.models.named_references`` as it was
when this was written, so the migration keeps its meaning whatever the app's code becomes.
"""

import re

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "30aaefa018b9"
down_revision = "d5a8e3c1f9b7"
branch_labels = None
depends_on = None

BATCH = 1000
REQUEST_TARGETS = {"request", "patient"}


def _is_reference(value):
    return value.startswith("SC-") and not re.search(r"\s", value)


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _strings(item)


def _named(target_type, target_id, details):
    found = {value for value in _strings(details) if _is_reference(value)}
    if target_id and (target_type in REQUEST_TARGETS or _is_reference(target_id)):
        found.add(target_id)
    return sorted(value for value in found if len(value) <= 40)


def upgrade():
    links = op.create_table(
        "audit_reference",
        sa.Column("reference", sa.String(length=40), nullable=False),
        sa.Column("audit_event_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["audit_event_id"],
            ["audit_event.id"],
            name=op.f("fk_audit_reference_audit_event_id_audit_event"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("reference", "audit_event_id", name=op.f("pk_audit_reference")),
    )
    op.create_index(
        op.f("ix_audit_reference_audit_event_id"), "audit_reference", ["audit_event_id"]
    )

    events = sa.table(
        "audit_event",
        sa.column("id", sa.Integer()),
        sa.column("target_type", sa.String()),
        sa.column("target_id", sa.String()),
        sa.column("details", sa.JSON()),
    )
    conn = op.get_bind()
    last = 0
    while True:
        rows = conn.execute(
            sa.select(events.c.id, events.c.target_type, events.c.target_id, events.c.details)
            .where(events.c.id > last)
            .order_by(events.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            break
        found = [
            {"audit_event_id": row.id, "reference": reference}
            for row in rows
            for reference in _named(row.target_type, row.target_id, row.details)
        ]
        if found:
            conn.execute(links.insert(), found)
        last = rows[-1].id


def downgrade():
    op.drop_index(op.f("ix_audit_reference_audit_event_id"), table_name="audit_reference")
    op.drop_table("audit_reference")
