"""encrypted document names and descriptions

What a patient calls a document and says of it ("MRI L4-5 herniation", "Befund Dr. Weber")
is their own words about their health, like the free-text history: it is now encrypted at
rest with the app's ENCRYPTION_KEY, in a request's documents and in a draft's. Existing
rows are encrypted here; a downgrade decrypts them (it needs the key that sealed them, in
ENCRYPTION_KEY or ENCRYPTION_OLD_KEYS). The columns become unbounded VARCHAR: a ciphertext
is longer than its text.

Revision ID: b7e2d4a9c6f1
Revises: c4e8a2f6b1d9
Create Date: 2026-12-05 17:20:00

"""

import sqlalchemy as sa
from alembic import op

from booking.crypto import decrypt_text, encrypt_text, is_encrypted_text, key_ring

revision = "b7e2d4a9c6f1"
down_revision = "c4e8a2f6b1d9"
branch_labels = None
depends_on = None

# table -> key column, {column: its type before this revision}
COLUMNS = {"original_name": sa.String(length=255), "description": sa.String(length=200)}
FIELDS = {"document": ("id", COLUMNS), "draft_document": ("id", COLUMNS)}


def _retype(to_plain: bool) -> None:
    # SQLite does not enforce VARCHAR lengths, and a batch rebuild of these tables would
    # cascade to the rows that reference them: change the type where the database checks it.
    if op.get_bind().dialect.name == "sqlite":
        return
    for table, (_key, columns) in FIELDS.items():
        for name, old in columns.items():
            op.alter_column(
                table,
                name,
                existing_type=sa.String() if to_plain else old,
                type_=old if to_plain else sa.String(),
                existing_nullable=name == "description",
            )


def _convert(change) -> None:
    """Rewrite each non-empty value of every field through ``change``, row by row."""
    bind = op.get_bind()
    ring = key_ring()  # the app's keys: migrations run inside the app (flask db upgrade)
    for table_name, (key, columns) in FIELDS.items():
        table = sa.table(table_name, sa.column(key), *(sa.column(c) for c in columns))
        for row in bind.execute(sa.select(table)).all():
            values = {c: getattr(row, c) for c in columns}
            changed = {c: None if v is None else change(v, ring) for c, v in values.items()}
            if changed != values:
                bind.execute(
                    table.update().where(table.c[key] == getattr(row, key)).values(**changed)
                )


def _seal(value, ring):
    return value if is_encrypted_text(value) else encrypt_text(value, ring)


def _open(value, ring):
    return decrypt_text(value, ring) if is_encrypted_text(value) else value


def upgrade():
    _retype(to_plain=False)
    _convert(_seal)


def downgrade():
    _convert(_open)
    _retype(to_plain=True)
