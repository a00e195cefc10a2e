"""Key operations for the data encrypted at rest: ``flask keys new | rotate | check``.

Rotation: set the new key as ENCRYPTION_KEY and the old one in ENCRYPTION_OLD_KEYS, run
``flask keys rotate`` (safe to interrupt and run again: each document is replaced only when
its new copy is complete and verified), then ``flask keys check``, then drop the old key.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field

import click
from flask.cli import AppGroup
from sqlalchemy import Column, Row, String, Table, or_, select, type_coerce, update
from sqlalchemy.orm import load_only

from booking.crypto import (
    DecryptionError,
    EncryptedText,
    KeyMissingError,
    decrypt_text,
    is_encrypted_text,
    key_label_of_text,
    key_ring,
    new_key,
)
from booking.documents.models import Document
from booking.documents.storage import DocumentUnreadable, get_storage
from booking.extensions import db
from booking.requests.drafts import DraftDocument

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
    fields_rotated: int = 0  # rows of other encrypted columns: history, notes, messages, emails
    # ``check``: encrypted column values read, those needing a key not configured (by key id)
    # or failing to decrypt ("table.column #id"), and what is still under another key than
    # the current one (by key id; "plain" for text stored before its column was encrypted).
    fields_checked: int = 0
    fields_missing_key: dict[str, int] = field(default_factory=dict)
    fields_unreadable: list[str] = field(default_factory=list)
    older: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not (
            self.missing_file
            or self.missing_key
            or self.unreadable
            or self.fields_missing_key
            or self.fields_unreadable
            or self.older
        )


def _documents() -> list[Document | DraftDocument]:
    """Every stored file: the requests' documents, then those of unsent drafts. Only what
    finds and checks the file is loaded: the name and description are encrypted too, and a
    missing key must be reported per document, not stop the whole check."""
    return [
        *db.session.scalars(
            select(Document)
            .options(load_only(Document.id, Document.stored_name, Document.sha256))
            .order_by(Document.id)
        ),
        *db.session.scalars(
            select(DraftDocument)
            .options(load_only(DraftDocument.id, DraftDocument.stored_name, DraftDocument.sha256))
            .order_by(DraftDocument.id)
        ),
    ]


def _note_failure(report: KeyReport, doc: Document | DraftDocument, exc: Exception) -> None:
    if isinstance(exc, KeyMissingError):
        report.missing_key[exc.key_id] = report.missing_key.get(exc.key_id, 0) + 1
    elif isinstance(exc, FileNotFoundError):
        report.missing_file.append(doc.id)
    else:
        report.unreadable.append(doc.id)
    log.error("document %s cannot be read: %s", doc.id, type(exc).__name__)


def encrypted_columns() -> dict[Table, list[Column]]:
    """Every column of the models stored with ``EncryptedText``, by table: found from the
    models, so a new encrypted column is rotated without being listed here."""
    found: dict[Table, list[Column]] = {}
    for table in db.metadata.sorted_tables:
        for column in table.columns:
            if isinstance(column.type, EncryptedText):
                found.setdefault(table, []).append(column)
    return found


ROWS_AT_ONCE = 500


def _stored_rows() -> Iterator[tuple[Table, Column, list[Column], Row]]:
    """Every row with an encrypted value, table by table: the table, its key column, its
    encrypted columns and the row (its key as ``key``, each value as stored: the columns' own
    type would decrypt it on reading)."""
    for table, columns in encrypted_columns().items():
        [key] = table.primary_key.columns
        stored = [type_coerce(column, String).label(column.name) for column in columns]
        query = (
            select(key.label("key"), *stored)
            .where(or_(*(c.is_not(None) for c in columns)))
            .order_by(key)
            .limit(ROWS_AT_ONCE)
        )
        # A batch at a time, by key: the outbox holds every email ever sent, each with its
        # bodies, too many to hold in memory at once.
        last = None
        while True:
            rows = db.session.execute(query if last is None else query.where(key > last)).all()
            for row in rows:
                yield table, key, columns, row
            if len(rows) < ROWS_AT_ONCE:
                break
            last = rows[-1].key


def rotate_fields(current: str) -> dict[str, int]:
    """Seal again, with the current key, every encrypted column value made with another key
    (or stored plain, before its column was encrypted). Rows per table; the caller commits."""
    rotated: dict[str, int] = {}
    for table, key, columns, row in _stored_rows():
        values = {column.name: getattr(row, column.name) for column in columns}
        if all(v is None or key_label_of_text(v) == current for v in values.values()):
            continue
        plain = {
            name: v if v is None or not is_encrypted_text(v) else decrypt_text(v)
            for name, v in values.items()
        }
        # Written through the columns' type: each value is sealed with the current key;
        # only where the stored text is still what was read (a patient saving their
        # draft meanwhile wrote it under the current key: their answers are kept).
        unchanged = [
            type_coerce(c, String).is_(None)
            if values[c.name] is None
            else type_coerce(c, String) == values[c.name]
            for c in columns
        ]
        # Sealed again, not changed: a table's "last changed" stays (retention and the
        # resend of failed emails read it).
        kept = {"updated_at": table.c.updated_at} if "updated_at" in table.c else {}
        written = db.session.execute(
            update(table).where(key == row.key, *unchanged).values(**plain, **kept)
        ).rowcount
        if written:
            rotated[table.name] = rotated.get(table.name, 0) + 1
    return rotated


def rotate() -> KeyReport:
    """Re-encrypt every document (a draft's too) and every encrypted column (two-factor
    secrets, drafts' answers, free-text history, notes, messages, emails) not yet under the current
    key."""
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
    for table, count in rotate_fields(current).items():
        if table == "staff_user":
            report.secrets_rotated += count
        elif table == "request_draft":
            report.drafts_rotated += count
        else:
            report.fields_rotated += count
    db.session.commit()
    return report


def check() -> KeyReport:
    """Read every document in full, verifying each chunk and its stored checksum, and decrypt
    every encrypted column value (two-factor secrets, drafts, history, notes, messages, emails);
    note what is still under another key than the current one: an old key may be removed
    only when nothing is."""
    report = KeyReport()
    storage = get_storage()
    current = key_ring().current.label
    for doc in _documents():
        try:
            storage.verify(doc.stored_name, doc.sha256)
            report.current += 1
            label = storage.key_label(doc.stored_name)
            if label != current:
                report.older[label] = report.older.get(label, 0) + 1
        except (KeyMissingError, DocumentUnreadable, FileNotFoundError) as exc:
            _note_failure(report, doc, exc)
    _check_fields(report, current)
    return report


def _check_fields(report: KeyReport, current: str) -> None:
    for table, _key, columns, row in _stored_rows():
        for column in columns:
            value = getattr(row, column.name)
            if value is None:
                continue
            if not is_encrypted_text(value):  # stored before its column was encrypted
                report.older["plain"] = report.older.get("plain", 0) + 1
                continue
            try:
                decrypt_text(value)
            except KeyMissingError as exc:
                missing = report.fields_missing_key
                missing[exc.key_id] = missing.get(exc.key_id, 0) + 1
                continue
            except DecryptionError:
                where = f"{table.name}.{column.name} #{row.key}"
                report.fields_unreadable.append(where)
                log.error("%s cannot be decrypted", where)
                continue
            report.fields_checked += 1
            label = key_label_of_text(value)
            if label != current:
                report.older[label] = report.older.get(label, 0) + 1


def _echo_problems(report: KeyReport) -> None:
    for key_id, count in report.missing_key.items():
        click.echo(f"  {count} document(s) need key id {key_id}, which is not configured.")
    if report.missing_file:
        click.echo(f"  Files missing for document ids: {report.missing_file}")
    if report.unreadable:
        click.echo(f"  Failing their integrity check, document ids: {report.unreadable}")
    for key_id, count in report.fields_missing_key.items():
        click.echo(f"  {count} encrypted value(s) need key id {key_id}, which is not configured.")
    if report.fields_unreadable:
        click.echo(f"  Encrypted values that do not decrypt: {report.fields_unreadable}")
    for key_id, count in report.older.items():
        what = "stored before encryption" if key_id == "plain" else f"under key id {key_id}"
        click.echo(
            f"  {count} document(s) or value(s) are still {what}, not the current key: run "
            "`flask --app wsgi keys rotate` again before removing an old key."
        )


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
        f"unfinished requests' answers re-encrypted: {report.drafts_rotated}; other encrypted "
        f"records (history, notes, messages, emails) re-encrypted: {report.fields_rotated}."
    )
    if not report.ok:
        _echo_problems(report)
        raise click.ClickException("Some documents could not be re-encrypted (listed above).")


@keys_cli.command("check")
def check_command() -> None:
    """Verify that every document and encrypted value decrypts, each document matches its
    checksum, and nothing is left under an older key."""
    report = check()
    click.echo(
        f"Documents verified: {report.current}; encrypted values verified: {report.fields_checked}."
    )
    if not report.ok:
        _echo_problems(report)
        raise click.ClickException(
            "Not everything is readable under the current key (listed above)."
        )
