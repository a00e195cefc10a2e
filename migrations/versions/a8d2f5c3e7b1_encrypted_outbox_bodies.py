"""encrypted outbox bodies

An email's bodies and its attachment hold, until it is sent, its links whole: a patient's
private link, an earlier time's offer, a follow-up link, a video visit's link. A copy of the
database or a backup must open nothing, so they are now encrypted at rest with the app's
ENCRYPTION_KEY, as the free-text history is. Existing rows are encrypted here, a batch at a
time (an outbox holds every email ever sent); a downgrade decrypts them (it needs the key
that sealed them, in ENCRYPTION_KEY or ENCRYPTION_OLD_KEYS). The columns stay TEXT.

Revision ID: a8d2f5c3e7b1
Revises: c4f8a2e6d1b9
Create Date: 2026-12-05 21:10:00

"""

import sqlalchemy as sa
from alembic import op

from booking.crypto import decrypt_text, encrypt_text, is_encrypted_text, key_ring

revision = "a8d2f5c3e7b1"
down_revision = "c4f8a2e6d1b9"
branch_labels = None
depends_on = None

COLUMNS = ("body_text", "body_html", "attachment_body")
BATCH = 500


def _convert(change) -> None:
    """Rewrite each non-empty body of every email through ``change``, in batches by id."""
    bind = op.get_bind()
    ring = key_ring()  # the app's keys: migrations run inside the app (flask db upgrade)
    table = sa.table("outbox_email", sa.column("id"), *(sa.column(c) for c in COLUMNS))
    last = 0
    while True:
        rows = bind.execute(
            sa.select(table).where(table.c.id > last).order_by(table.c.id).limit(BATCH)
        ).all()
        if not rows:
            return
        for row in rows:
            values = {c: getattr(row, c) for c in COLUMNS}
            changed = {c: None if v is None else change(v, ring) for c, v in values.items()}
            if changed != values:
                bind.execute(table.update().where(table.c.id == row.id).values(**changed))
        last = rows[-1].id


def _seal(value, ring):
    return value if is_encrypted_text(value) else encrypt_text(value, ring)


def _open(value, ring):
    return decrypt_text(value, ring) if is_encrypted_text(value) else value


def upgrade():
    _convert(_seal)


def downgrade():
    _convert(_open)
