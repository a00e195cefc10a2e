"""Checklist: an item's name unique in each language, case and spacing aside

Revision ID: d6c32616abfa
Revises: 2e2133079270
Create Date: 2026-12-07 18:00:00.000000

``booking.requests.asks.add_item`` refuses an item named like another in some language (spaces
collapsed, case folded), but two admins adding one at the same moment both got past it: in the
clinic's language the code made from the name usually collided (a server error), in another
language nothing stopped the second. ``checklist_item_name`` holds each item's label per
language as the check compares it, unique per language; it is filled here from the items'
``labels``.

Items already named alike in a language (the race above, before this) are kept as they are:
nothing is renamed or deleted (patients read these labels; asks and documents point at the
codes). The first of them holds the name in ``checklist_item_name``, which refuses any new item
named so as well; the later ones get no row for that language, and each is logged, so that an
admin can switch the extra one off on the checklist page (there is no renaming an item).
The downgrade drops the table: the labels themselves were never changed.
"""

import json
import logging

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "d6c32616abfa"
down_revision = "2e2133079270"
branch_labels = None
depends_on = None

log = logging.getLogger("alembic.runtime.migration")


def _key(label: str) -> str:
    # As booking.requests.asks.name_key at this revision (a migration keeps its own copy).
    return " ".join(label.split()).casefold()


def upgrade():
    table = op.create_table(
        "checklist_item_name",
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("language", sa.String(length=10), nullable=False),
        sa.Column("key", sa.String(length=600), nullable=False),
        sa.ForeignKeyConstraint(
            ["item_id"],
            ["checklist_item.id"],
            name=op.f("fk_checklist_item_name_item_id_checklist_item"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("item_id", "language", name=op.f("pk_checklist_item_name")),
        sa.UniqueConstraint("language", "key", name=op.f("uq_checklist_item_name_language")),
    )
    first: dict[tuple[str, str], str] = {}  # (language, key): the code of the item holding it
    rows = []
    for item_id, code, labels in op.get_bind().execute(
        sa.text("SELECT id, code, labels FROM checklist_item ORDER BY id")
    ):
        if isinstance(labels, str):  # SQLite hands JSON over as text
            labels = json.loads(labels)
        for language, label in sorted((labels or {}).items()):
            if not (label and label.strip()):
                continue
            key = _key(label)
            if (language, key) in first:
                log.warning(
                    "Checklist items %s and %s have one name in %s (%r): both kept; switch "
                    "the one not wanted off on the checklist page.",
                    first[language, key],
                    code,
                    language,
                    label,
                )
                continue
            first[language, key] = code
            rows.append({"item_id": item_id, "language": language, "key": key})
    if rows:
        op.bulk_insert(table, rows)


def downgrade():
    op.drop_table("checklist_item_name")
