"""encrypted free-text history and timeline notes

The patient's own words in the medical history (other diagnosis, operations, when imaged,
medicines, allergies, other history) and the bodies of timeline entries are encrypted at rest
with the app's ENCRYPTION_KEY, as documents and messages are. Existing rows are encrypted here;
a downgrade decrypts them (it needs the key that sealed them, in ENCRYPTION_KEY or
ENCRYPTION_OLD_KEYS). The columns become unbounded VARCHAR: a ciphertext is longer than its text.

Revision ID: f3b9d5c1e7a4
Revises: c4f7a2e9d1b5
Create Date: 2026-12-05 03:00:00

"""

import sqlalchemy as sa
from alembic import op

from booking.crypto import decrypt_text, encrypt_text, is_encrypted_text, key_ring

revision = "f3b9d5c1e7a4"
down_revision = "c4f7a2e9d1b5"
branch_labels = None
depends_on = None

# table -> key column, {column: its type before this revision}
FIELDS = {
    "medical_history": (
        "request_id",
        {
            "diagnosis_other": sa.String(length=200),
            "surgery_details": sa.Text(),
            "imaging_when": sa.String(length=200),
            "medications": sa.Text(),
            "allergies": sa.Text(),
            "other_history": sa.Text(),
        },
    ),
    "request_event": ("id", {"body": sa.Text()}),
}


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
                existing_nullable=True,
            )


def _convert(change) -> None:
    """Rewrite each non-empty value of every field through ``change``, row by row."""
    bind = op.get_bind()
    ring = key_ring()  # the app's keys: migrations run inside the app (flask db upgrade)
    for table_name, (key, columns) in FIELDS.items():
        table = sa.table(table_name, sa.column(key), *(sa.column(c) for c in columns))
        rows = bind.execute(
            sa.select(table).where(sa.or_(*(table.c[c].is_not(None) for c in columns)))
        ).all()
        for row in rows:
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
