"""Key operations for the data encrypted at rest: ``flask keys new | rotate | check``.

Rotation: set the new key as ENCRYPTION_KEY and the old one in ENCRYPTION_OLD_KEYS, run
``flask keys rotate`` (safe to interrupt and run again: each document is replaced only when
its new copy is complete and verified), then ``flask keys check``, then drop the old key.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import click
from flask.cli import AppGroup
from sqlalchemy import select, text
from sqlalchemy.orm.attributes import flag_modified

from booking.crypto import KeyMissingError, key_label_of_text, key_ring, new_key
from booking.documents.models import Document
from booking.documents.storage import DocumentUnreadable, get_storage
from booking.extensions import db
from booking.requests.drafts import DraftDocument, RequestDraft
from booking.staff.models import StaffUser

log = logging.getLogger(__name__)

keys_cli = AppGroup("keys", help="Encryption keys for documents and two-factor secrets.")


@dataclass
class KeyReport:
    rotated: int = 0
    current: int = 0
    missing_file: list[int] = field(default_factory=list)
    missing_key: dict[str, int] = field(default_factory=dict)
    unreadable: list[int] = field(default_factory=list)
    secrets_rotated: int = 0
    drafts_rotated: int = 0

    @property
    def ok(self) -> bool:
        return not (self.missing_file or self.missing_key or self.unreadable)


def _documents() -> list[Document | DraftDocument]:
    """Every stored file: the requests' documents, then those of unsent drafts."""
    return [
        *db.session.scalars(select(Document).order_by(Document.id)),
        *db.session.scalars(select(DraftDocument).order_by(DraftDocument.id)),
    ]


def _note_failure(report: KeyReport, doc: Document | DraftDocument, exc: Exception) -> None:
    if isinstance(exc, KeyMissingError):
        report.missing_key[exc.key_id] = report.missing_key.get(exc.key_id, 0) + 1
    elif isinstance(exc, FileNotFoundError):
        report.missing_file.append(doc.id)
    else:
        report.unreadable.append(doc.id)
    log.error("document %s cannot be read: %s", doc.id, type(exc).__name__)


def rotate() -> KeyReport:
    """Re-encrypt every document (a draft's too), two-factor secret and draft's answers not
    yet under the current key."""
    report = KeyReport()
    storage = get_storage()
    current = key_ring().current.label
    for doc in _documents():
        try:
            if storage.key_label(doc.stored_name) == current:
                report.current += 1
                continue
            storage.reencrypt(doc.stored_name, doc.sha256)
            report.rotated += 1
        except (KeyMissingError, DocumentUnreadable, FileNotFoundError) as exc:
            _note_failure(report, doc, exc)
    raw = {
        row.id: row.totp_secret
        for row in db.session.execute(
            text("SELECT id, totp_secret FROM staff_user WHERE totp_secret IS NOT NULL")
        )
    }
    for user in db.session.scalars(select(StaffUser).where(StaffUser.id.in_(raw))):
        if key_label_of_text(raw[user.id]) != current:
            if user.totp_secret is None:  # loads (and decrypts) the deferred column
                continue
            flag_modified(user, "totp_secret")  # written again, so sealed with the current key
            report.secrets_rotated += 1
    drafts = {
        row.id: row.answers
        for row in db.session.execute(text("SELECT id, answers FROM request_draft"))
    }
    for draft in db.session.scalars(select(RequestDraft).where(RequestDraft.id.in_(drafts))):
        if key_label_of_text(drafts[draft.id]) != current:
            flag_modified(draft, "answers")  # the unsent answers, sealed with the current key
            report.drafts_rotated += 1
    db.session.commit()
    return report


def check() -> KeyReport:
    """Read every document in full, verifying each chunk and its stored checksum."""
    report = KeyReport()
    storage = get_storage()
    for doc in _documents():
        try:
            storage.verify(doc.stored_name, doc.sha256)
            report.current += 1
        except (KeyMissingError, DocumentUnreadable, FileNotFoundError) as exc:
            _note_failure(report, doc, exc)
    return report


def _echo_problems(report: KeyReport) -> None:
    for key_id, count in report.missing_key.items():
        click.echo(f"  {count} document(s) need key id {key_id}, which is not configured.")
    if report.missing_file:
        click.echo(f"  Files missing for document ids: {report.missing_file}")
    if report.unreadable:
        click.echo(f"  Failing their integrity check, document ids: {report.unreadable}")


@keys_cli.command("new")
def new_command() -> None:
    """Print a new random key for ENCRYPTION_KEY."""
    click.echo(new_key())


@keys_cli.command("rotate")
def rotate_command() -> None:
    """Re-encrypt everything under ENCRYPTION_KEY (old keys in ENCRYPTION_OLD_KEYS)."""
    report = rotate()
    click.echo(
        f"Documents re-encrypted: {report.rotated}; already under the current key: "
        f"{report.current}; two-factor secrets re-encrypted: {report.secrets_rotated}; "
        f"unfinished requests' answers re-encrypted: {report.drafts_rotated}."
    )
    if not report.ok:
        _echo_problems(report)
        raise click.ClickException("Some documents could not be re-encrypted (listed above).")


@keys_cli.command("check")
def check_command() -> None:
    """Verify that every document can be decrypted and matches its checksum."""
    report = check()
    click.echo(f"Documents verified: {report.current}.")
    if not report.ok:
        _echo_problems(report)
        raise click.ClickException("Some documents cannot be read (listed above).")
