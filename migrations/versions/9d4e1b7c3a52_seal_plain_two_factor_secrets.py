"""Two-factor secrets still stored in clear are encrypted

Revision 7c1e4d2a9b3f began encrypting each staff member's TOTP secret, but left the ones
enrolled before it in clear until someone ran `flask keys rotate`: whoever reads the database
(a backup, a copied dump) could make those accounts' sign-in codes. They are encrypted here
with the app's ENCRYPTION_KEY, as the later migrations of free text, document names and
emails do. A downgrade opens every secret again (it needs the key that sealed it, in
ENCRYPTION_KEY or ENCRYPTION_OLD_KEYS): the code before 7c1e4d2a9b3f reads only plain ones,
and 7c1e4d2a9b3f's own downgrade narrows the column to the 64 characters of a plain secret.

Revision ID: 9d4e1b7c3a52
Revises: f2b9d4e7a1c3
Create Date: 2026-12-07 06:30:00.000000
"""

import sqlalchemy as sa
from alembic import op

from booking.crypto import decrypt_text, encrypt_text, is_encrypted_text, key_ring

revision = "9d4e1b7c3a52"
down_revision = "f2b9d4e7a1c3"
branch_labels = None
depends_on = None


def _convert(change) -> None:
    """Rewrite each stored secret through ``change``, row by row (a clinic has few staff)."""
    bind = op.get_bind()
    ring = key_ring()  # the app's keys: migrations run inside the app (flask db upgrade)
    staff = sa.table("staff_user", sa.column("id"), sa.column("totp_secret"))
    rows = bind.execute(sa.select(staff).where(staff.c.totp_secret.is_not(None))).all()
    for row in rows:
        changed = change(row.totp_secret, ring)
        if changed != row.totp_secret:
            bind.execute(staff.update().where(staff.c.id == row.id).values(totp_secret=changed))


def _seal(value, ring):
    return value if is_encrypted_text(value) else encrypt_text(value, ring)


def _open(value, ring):
    return decrypt_text(value, ring) if is_encrypted_text(value) else value


def upgrade():
    _convert(_seal)


def downgrade():
    _convert(_open)
