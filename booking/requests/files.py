"""Stored files and the rows that name them: the room a request has for more documents, the
virus scan's retry and the reconciliation.

Both kinds of row hold an uploaded file: a request's documents (``Document``) and an unsent
draft's (``DraftDocument``). The worker runs both jobs (``booking.tasks``); the reconciliation
is also ``flask files reconcile``.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field
from datetime import timedelta

from flask import current_app
from flask_babel import ngettext
from sqlalchemy import select

from booking.audit.services import record
from booking.crypto import KeyMissingError
from booking.documents import scanning
from booking.documents.models import Document
from booking.documents.scanning import Infected, ScannerUnavailable, ScanStatus
from booking.documents.storage import ROTATING_SUFFIX, DocumentUnreadable, get_storage
from booking.extensions import db
from booking.notifications.services import enqueue_delivery
from booking.requests import emails
from booking.requests.drafts import DraftDocument
from booking.requests.models import ConsultationRequest

log = logging.getLogger(__name__)

ROW_KINDS = (Document, DraftDocument)
# The names ``DocumentStorage.save`` gives, and the copy ``DocumentStorage.reencrypt`` writes
# beside one (left behind when a rotation is killed); anything else in the folder is not ours
# to remove.
STORED_NAME_RE = re.compile(rf"[0-9a-f]{{32}}(?:{ROTATING_SUFFIX})?")
# A file is written before its row is committed: younger files may be an upload in progress.
ORPHAN_MIN_AGE = timedelta(hours=1)


def no_room_for(consultation: ConsultationRequest, adding: int) -> str | None:
    """Why ``adding`` more documents cannot be added to the request (its limit is
    ``MAX_DOCUMENTS``, however they come: the private page, an answer, a message), or None.
    A file the virus scan removed does not count: its clean copy must find room."""
    limit = current_app.config["MAX_DOCUMENTS"]
    have = len(consultation.kept_documents)
    if have + adding <= limit:
        return None
    return ngettext(
        "A request can hold at most %(num)d document; you have %(have)d already.",
        "A request can hold at most %(num)d documents; you have %(have)d already.",
        limit,
        have=have,
    )


@dataclass
class RescanResult:
    clean: int = 0
    infected: int = 0
    still_pending: int = 0
    unreadable: list[int] = field(default_factory=list)  # rows whose file cannot be read


def rescan_pending() -> RescanResult:
    """Scan again every file held as not yet scanned (the scanner was down at upload).

    A clean one becomes visible to staff; an infected one is deleted, its row kept as
    ``infected`` (staff see a file was removed) and audited. While the scanner is still
    down, the rest stay held for the next run. A file that cannot be read (missing, damaged,
    its key not configured) stays held and is logged as an error: it does not stop the others
    from being scanned (it did: the job died on it every run, in id order).
    """
    result = RescanResult()
    storage = get_storage()
    for kind in ROW_KINDS:
        rows = db.session.scalars(
            select(kind).where(kind.scan_status == ScanStatus.PENDING).order_by(kind.id)
        ).all()
        for row in rows:
            try:
                with storage.open(row.stored_name, row.sha256) as plain:
                    scanning.scan(plain)
            except ScannerUnavailable:
                result.still_pending += 1
                continue
            except (OSError, DocumentUnreadable, KeyMissingError) as exc:
                db.session.rollback()
                log.error(
                    "held document %s cannot be read for its scan: %s", row.id, type(exc).__name__
                )
                result.unreadable.append(row.id)
                continue
            except Infected as infected:
                row.scan_status = ScanStatus.INFECTED
                record(
                    "upload_removed_infected",
                    target_type="request" if isinstance(row, Document) else "draft",
                    target_id=row.request.reference if isinstance(row, Document) else row.draft_id,
                    details={"document_id": row.id, "signature": infected.signature[:100]},
                )
                # The patient of an open request is told, to send a clean copy (a draft's
                # documents step shows it instead, while they are still filling it in).
                told = None
                if isinstance(row, Document) and row.request.is_open:
                    told = emails.document_removed(row.request, row.uploaded_at)
                db.session.commit()
                enqueue_delivery([told.id] if told is not None else [])
                try:
                    storage.delete(row.stored_name)
                except OSError:
                    # Left for the reconciliation, which removes an infected row's file as
                    # it does an orphan's; the other held files are scanned meanwhile.
                    log.exception("held document %s was infected: removing it failed", row.id)
                else:
                    log.warning("held document %s was infected: file removed", row.stored_name)
                result.infected += 1
                continue
            row.scan_status = ScanStatus.CLEAN
            db.session.commit()
            result.clean += 1
    if result.clean or result.infected or result.still_pending or result.unreadable:
        log.info(
            "rescanned held documents: %d clean, %d infected, %d still pending, %d unreadable",
            result.clean,
            result.infected,
            result.still_pending,
            len(result.unreadable),
        )
    return result


@dataclass
class Reconciliation:
    """What the reconciliation found: orphan files (removed unless a dry run), files it does
    not recognise (left alone), and rows whose file is missing (reported only)."""

    orphan_files: list[str] = field(default_factory=list)
    unknown_files: list[str] = field(default_factory=list)
    missing_files: list[tuple[str, int, str]] = field(default_factory=list)  # table, id, name
    removed: int = 0


def reconcile_files(*, dry_run: bool = False) -> Reconciliation:
    """Find upload files no row names (older than an hour: removed unless ``dry_run``) and
    rows whose file is gone (reported: their document is lost, restore it from the backup).

    A worker killed while writing an upload leaves a partial file with no row, and a key
    rotation killed midway its unfinished copy (``<name>rotating``, an hour old: no rotation
    still writes it); an infected file removed by the scan's retry keeps its row on purpose
    and is not reported.
    """
    storage = get_storage()
    result = Reconciliation()
    named: set[str] = set()
    for kind in ROW_KINDS:
        rows = db.session.execute(
            select(kind.id, kind.stored_name, kind.scan_status).order_by(kind.id)
        ).all()
        for row_id, stored_name, status in rows:
            if status == ScanStatus.INFECTED:
                continue  # its file is to go: one whose removal failed is an orphan here
            named.add(stored_name)
            if not storage.exists(stored_name):
                result.missing_files.append((kind.__tablename__, row_id, stored_name))
    db.session.rollback()  # end the read before the files are looked at
    if not storage.root.is_dir():
        return result
    cutoff = time.time() - ORPHAN_MIN_AGE.total_seconds()
    for path in sorted(storage.root.iterdir()):
        if not path.is_file() or path.name in named:
            continue
        if not STORED_NAME_RE.fullmatch(path.name):
            result.unknown_files.append(path.name)
            continue
        if path.stat().st_mtime > cutoff:
            continue
        result.orphan_files.append(path.name)
    if not dry_run:
        for name in result.orphan_files:
            # Asked again at the last moment: an upload's row may have been committed since.
            if _named_by_a_row(name):
                continue
            try:
                storage.delete(name)
            except OSError:  # one file that cannot go must not keep the others
                log.exception("file reconciliation could not remove %s", name)
                continue
            result.removed += 1
    log.info(
        "file reconciliation: %d orphan files (%d removed), %d rows without their file",
        len(result.orphan_files),
        result.removed,
        len(result.missing_files),
    )
    for table, row_id, name in result.missing_files:
        log.error("%s %d names the file %s, which is missing", table, row_id, name)
    return result


def named_by_rows(stored_names: list[str]) -> bool:
    """Whether a row names any of these files: a change whose commit's answer was lost, found
    stored after all (``saved_uploads``' ``named``)."""
    return any(
        db.session.scalar(select(kind.id).where(kind.stored_name.in_(stored_names)).limit(1))
        is not None
        for kind in ROW_KINDS
    )


def _named_by_a_row(stored_name: str) -> bool:
    """Whether a row still wants this file (an infected one's row does not)."""
    found = any(
        db.session.scalar(
            select(kind.id).where(
                kind.stored_name == stored_name, kind.scan_status != ScanStatus.INFECTED
            )
        )
        is not None
        for kind in ROW_KINDS
    )
    db.session.rollback()
    return found
