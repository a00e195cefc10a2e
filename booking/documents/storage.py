"""Where document bytes live. Every file passes through here.

Files are stored under random names in ``UPLOAD_DIR`` (outside any static folder), checked by
their content, and encrypted at rest with AES-256-GCM (``booking.crypto``), in chunks so a large
scan is never held whole in memory.

File format: a header (``MAGIC``, the 4-byte id of the key, a 7-byte random nonce prefix),
then the document in 64 KiB chunks, each sealed with the nonce ``prefix || counter || last``
and the header as associated data (the STREAM construction: a chunk cannot be reordered,
dropped or moved to another file, and a truncated file fails at its end). The SHA-256 of the
plain bytes, kept in the database, is checked again whenever a document is read in full.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
import secrets
import struct
import warnings
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import BinaryIO, Protocol

import filetype
from cryptography.exceptions import InvalidTag
from flask import current_app
from flask_babel import gettext as _
from PIL import Image
from sqlalchemy.exc import InterfaceError, OperationalError

from booking.crypto import KEY_ID_BYTES, KeyRing, key_ring
from booking.documents import scanning
from booking.documents.scanning import Infected, ScannerUnavailable, ScanStatus
from booking.extensions import db

log = logging.getLogger(__name__)

CHUNK_SIZE = 64 * 1024
# The magic-byte signatures we accept, by the MIME type ``filetype`` reports for them.
ALLOWED_TYPES = {
    "application/pdf": "pdf",
    "image/jpeg": "jpg",
    "image/png": "png",
}
# The extensions a file name may already end in for each accepted type.
NAME_EXTENSIONS = {
    "application/pdf": {"pdf"},
    "image/jpeg": {"jpg", "jpeg", "jpe", "jfif"},
    "image/png": {"png"},
}
# Pillow's name for each image type, to open a file only as the type it was sniffed as.
IMAGE_FORMATS = {"image/jpeg": "JPEG", "image/png": "PNG"}
SNIFF_BYTES = 8192
# Every revision of a PDF ends with the end-of-file marker (PDF 1.7, 7.5.5): a file without
# one was cut short, or only starts like a PDF. Bytes after the last marker are no part of the
# document; an object header among them is an update that was cut short.
PDF_START = b"%PDF-"
PDF_END = b"%%EOF"
PDF_OBJECT = re.compile(rb"\d+\s+\d+\s+obj\b")
# How far a marker or object header read at the start of one chunk may reach into the next.
PDF_OVERLAP = 64
MAGIC = b"SCDOC\x01\x00\x00"
NONCE_PREFIX_BYTES = 7
HEADER_BYTES = len(MAGIC) + KEY_ID_BYTES + NONCE_PREFIX_BYTES
TAG_BYTES = 16
# ``reencrypt`` writes its copy next to the file under this suffix before replacing it.
ROTATING_SUFFIX = "rotating"


class DocumentRejected(ValueError):  # noqa: N818 - reads better at the call sites
    """The upload is not a document we accept; the message is for the patient."""


class DocumentInfected(DocumentRejected):
    """The virus scanner found malware in the upload; nothing of it was stored."""


class ScannerDown(DocumentRejected):
    """The virus scanner is unavailable and ``CLAMAV_WHEN_DOWN`` says to refuse uploads."""


class DocumentUnreadable(RuntimeError):  # noqa: N818 - reads better at the call sites
    """A stored document fails its integrity check: altered, truncated or damaged on disk."""


@dataclass(frozen=True)
class DocumentUpload:
    """A file as a form received it, before it is checked and stored."""

    stream: BinaryIO
    filename: str
    description: str | None = None


def safe_display_name(filename: str) -> str:
    """The file's name as the patient's computer called it, for display only: no path parts,
    no control characters, at most 255 characters."""
    name = filename.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable()).strip()
    return (name or _("document"))[:255]


def saved_name(name: str, content_type: str) -> str:
    """The name a downloaded copy is saved under: the patient's, ending in the extension of
    the type found in the bytes. The content is checked, the name is not: a PDF called
    ``report.bat`` is saved as ``report.bat.pdf``, so the computer opens it as a PDF."""
    stem, dot, extension = name.rpartition(".")
    if dot and stem and extension.lower() in NAME_EXTENSIONS[content_type]:
        return name
    return f"{name}.{ALLOWED_TYPES[content_type]}"


@dataclass(frozen=True)
class StoredFile:
    stored_name: str
    content_type: str
    size_bytes: int
    sha256: str
    scan_status: ScanStatus = ScanStatus.SKIPPED


def sniff(head: bytes) -> str | None:
    """The MIME type of an accepted document recognised from its first bytes, else None."""
    kind = filetype.guess(head)
    if kind is None or kind.mime not in ALLOWED_TYPES:
        return None
    return kind.mime


def check_upload(stream: BinaryIO, max_bytes: int) -> str:
    """Check an upload's size and content without consuming it; return its detected type.

    The one check of a file every way in (the forms, and ``DocumentStorage.save`` before the
    scanner sees it), so a patient meets the same rules and words on every page. Raises
    ``DocumentRejected`` with a message for the patient.
    """
    start = stream.tell()
    stream.seek(0, os.SEEK_END)
    size = stream.tell() - start
    stream.seek(start)
    if size == 0:
        raise DocumentRejected(_("This file is empty."))
    if size > max_bytes:
        raise DocumentRejected(
            _("This file is larger than %(mb)d MB.", mb=max_bytes // (1024 * 1024))
        )
    head = stream.read(SNIFF_BYTES)
    stream.seek(start)
    mime = sniff(head)
    if mime is None:
        raise _refuse_unknown_type()
    try:
        whole = _whole(stream, mime, head)
    finally:
        stream.seek(start)
    if not whole:
        raise DocumentRejected(
            _(
                "This file seems damaged or incomplete, so it cannot be opened. Please save "
                "or scan it again and send the new copy."
            )
        )
    return mime


def _whole(stream: BinaryIO, mime: str, head: bytes) -> bool:
    """Whether the file is built as its type says, beyond the first bytes ``sniff`` reads:
    three bytes ``ff d8 ff`` pass for a JPEG there, and ``%PDF`` for a PDF. Staff's viewer
    would show them broken (or not at all), and the patient would think them sent."""
    if mime == "application/pdf":
        # The header at byte 0 (not after a byte-order mark, which browsers read as text),
        # and an end marker after the last object.
        return head.startswith(PDF_START) and _pdf_ends(stream)
    try:
        with warnings.catch_warnings():
            # A large image is what patients photograph; the size limit already bounds it.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(stream, formats=[IMAGE_FORMATS[mime]]) as image:
                if mime == "image/png":
                    image.verify()  # every chunk's checksum, up to the end chunk
                else:
                    # A JPEG's verify checks nothing: decode it, at an eighth of its size (the
                    # whole file is still read, so one cut short fails), to bound the memory.
                    image.draft(image.mode, (1, 1))
                    image.load()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return False
    return True


def _pdf_ends(stream: BinaryIO) -> bool:
    """Whether the PDF's last revision ends with its end-of-file marker, whatever follows it.

    Scanners, portals and mail gateways leave bytes after the marker (NUL padding, newlines,
    a gateway's appended block), sometimes far more than the 1024 bytes the specification
    asks readers to look in. The viewers staff use skip them (pypdf, even strict, searches
    the whole file back for the marker; pdf.js, PDFium, Poppler and MuPDF rebuild their
    index), so the document opens whole. A download cut short has no marker after its last
    object, which is what this refuses. Read back from the end a chunk at a time, so a large
    scan is never held whole."""
    position = stream.seek(0, os.SEEK_END)
    later = b""  # the first bytes of the chunk read before, which follows this one
    object_after = False
    while position > 0:
        start = max(position - CHUNK_SIZE, 0)
        stream.seek(start)
        window = stream.read(position - start) + later
        end = window.rfind(PDF_END)
        if end >= 0:
            return not object_after and not PDF_OBJECT.search(window, end + len(PDF_END))
        object_after = object_after or PDF_OBJECT.search(window) is not None
        later = window[:PDF_OVERLAP]
        position = start
    return False


def _nonce(prefix: bytes, counter: int, last: bool) -> bytes:
    return prefix + struct.pack(">IB", counter, 1 if last else 0)


class _EncryptingWriter:
    """Seals plain bytes into fixed-size chunks; ``finish`` seals the last one as the last."""

    def __init__(self, out: BinaryIO, ring: KeyRing) -> None:
        self._out = out
        self._key = ring.current
        self._prefix = secrets.token_bytes(NONCE_PREFIX_BYTES)
        self._header = MAGIC + self._key.id + self._prefix
        self._buffer = bytearray()
        self._counter = 0
        out.write(self._header)

    def _seal(self, chunk: bytes, last: bool) -> None:
        nonce = _nonce(self._prefix, self._counter, last)
        self._out.write(self._key.aead.encrypt(nonce, chunk, self._header))
        self._counter += 1

    def write(self, data: bytes) -> None:
        self._buffer += data
        # Keep at least one byte back so the final chunk is always sealed as the last one.
        while len(self._buffer) > CHUNK_SIZE:
            self._seal(bytes(self._buffer[:CHUNK_SIZE]), last=False)
            del self._buffer[:CHUNK_SIZE]

    def finish(self) -> None:
        self._seal(bytes(self._buffer), last=True)
        self._buffer.clear()


class _DecryptingReader(io.RawIOBase):
    """Reads a stored document as plain bytes, authenticating every chunk.

    With ``sha256`` the digest of the whole document is checked when the end is reached.
    """

    def __init__(self, raw: BinaryIO, ring: KeyRing, sha256: str | None) -> None:
        super().__init__()
        self._raw = raw
        header = raw.read(HEADER_BYTES)
        if len(header) != HEADER_BYTES or not header.startswith(MAGIC):
            raw.close()
            raise DocumentUnreadable("not an encrypted document")
        key_id = header[len(MAGIC) : len(MAGIC) + KEY_ID_BYTES]
        try:
            self._key = ring.get(key_id)
        except Exception:
            raw.close()
            raise
        self._header = header
        self._prefix = header[len(MAGIC) + KEY_ID_BYTES :]
        self._counter = 0
        self._next = raw.read(CHUNK_SIZE + TAG_BYTES)
        self._plain = b""
        self._done = False
        self._expected = sha256
        self._digest = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def _open_next_chunk(self) -> None:
        sealed, self._next = self._next, self._raw.read(CHUNK_SIZE + TAG_BYTES)
        last = not self._next
        try:
            plain = self._key.aead.decrypt(
                _nonce(self._prefix, self._counter, last), sealed, self._header
            )
        except InvalidTag:
            raise DocumentUnreadable(
                f"chunk {self._counter} does not authenticate (altered or truncated)"
            ) from None
        self._counter += 1
        self._digest.update(plain)
        self._plain = plain
        if last:
            self._done = True
            if self._expected and self._digest.hexdigest() != self._expected:
                raise DocumentUnreadable("checksum does not match the one stored at upload")

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._plain and not self._done:
            self._open_next_chunk()
        n = min(len(buffer), len(self._plain))
        buffer[:n] = self._plain[:n]
        self._plain = self._plain[n:]
        return n

    def close(self) -> None:
        self._raw.close()
        super().close()


def _refuse_unknown_type() -> DocumentRejected:
    return DocumentRejected(
        _("This file is not a PDF, JPEG or PNG document. Please send a PDF or a photo.")
    )


# The attribute a failure carries to say which upload it is about (``refused_upload``).
_UPLOAD_INDEX = "upload_index"


def _about_upload(failure: BaseException, index: int) -> BaseException:
    setattr(failure, _UPLOAD_INDEX, index)
    return failure


def refused_upload(failure: BaseException) -> int | None:
    """Which of the uploads given to ``saved_uploads`` a failure is about (its place in them):
    the one refused (``DocumentRejected``, a duplicate by ``refuse_duplicates`` included) or
    that our storage failed to write (``OSError``). None for a failure about no one file (the
    database, a check of the request): a page sending several files at once can say beside
    each whether it was the problem or is only to be chosen again."""
    return getattr(failure, _UPLOAD_INDEX, None)


def refuse_duplicates(
    stored: Sequence[StoredFile],
    kept: Iterable[str],
    names: Sequence[str] | None = None,
    removed: Collection[str] = frozenset(),
) -> None:
    """Refuse a file already kept (``kept``: their SHA-256) or sent twice in one go: it would be
    counted twice against the limit and shown twice to staff. One rule for the draft and the
    private link. ``names`` (the uploads' file names, in ``stored``'s order) puts the refused
    file's name in the message, for a page that does not show it beside the message: several
    files may be sent at once. ``removed``: the SHA-256 of files the virus scan removed, which
    the same bytes sent again are refused as, with what to send instead."""
    seen = set(kept)
    for index, file in enumerate(stored):
        if file.sha256 in removed:
            # The same bytes again (the scanner may be down now: it would be held, then
            # removed again): what to send instead, not "you have already added it".
            again = _("This is the same file our virus check found a problem in.")
            if names is not None:
                again = _(
                    "“%(name)s” is the same file our virus check found a problem in.",
                    name=safe_display_name(names[index]),
                )
            raise _about_upload(
                DocumentRejected(
                    f"{again} "
                    + _(
                        "Please add a new copy: a new scan or photo of the paper document is "
                        "safest."
                    )
                ),
                index,
            )
        if file.sha256 in seen:
            if names is None:
                raise _about_upload(DocumentRejected(_("You have already added this file.")), index)
            raise _about_upload(
                DocumentRejected(
                    _(
                        "“%(name)s” is the same file as one you have already added.",
                        name=safe_display_name(names[index]),
                    )
                ),
                index,
            )
        seen.add(file.sha256)


class _Kept(Protocol):
    sha256: str

    @property
    def removed(self) -> bool: ...


def refuse_kept(
    stored: Sequence[StoredFile], held: Iterable[_Kept], names: Sequence[str] | None = None
) -> None:
    """``refuse_duplicates`` against documents (``held``), those the virus scan removed apart."""
    documents = list(held)
    refuse_duplicates(
        stored,
        (document.sha256 for document in documents if not document.removed),
        names,
        removed={document.sha256 for document in documents if document.removed},
    )


def refuse_held(
    stored: Sequence[StoredFile], uploads: Sequence[DocumentUpload], held: Iterable[_Kept]
) -> None:
    """``refuse_duplicates`` for files sent to a request (``held``: its documents), naming the
    refused file: the page that says so shows its file field empty again."""
    refuse_kept(stored, held, [upload.filename for upload in uploads])


class DocumentStorage:
    def __init__(
        self,
        root: str | os.PathLike[str],
        keys: KeyRing,
        *,
        scan: bool = False,
        hold_when_scanner_down: bool = False,
    ) -> None:
        self.root = Path(root)
        self.keys = keys
        self.scan_uploads = scan
        self.hold_when_scanner_down = hold_when_scanner_down

    def _scan(self, stream: BinaryIO) -> ScanStatus:
        """Scan the upload from where it stands, and rewind it: before anything is written.

        An infected file is refused (``DocumentInfected``, after the ``upload_infected``
        signal that audits it). A scanner that is down or silent refuses the file
        (``ScannerDown``) or, by ``CLAMAV_WHEN_DOWN = hold``, lets it be stored as not yet
        scanned for the worker to scan again.
        """
        if not self.scan_uploads:
            return ScanStatus.SKIPPED
        start = stream.tell()
        try:
            scanning.scan(stream)
        except Infected as infected:
            scanning.upload_infected.send(
                current_app._get_current_object(),  # type: ignore[attr-defined]
                signature=infected.signature,
                stored_name=None,
            )
            raise DocumentInfected(
                _(
                    "This file contains a virus or other malware, so we did not accept it. "
                    "Nothing of it was saved. Please check your device, or bring the "
                    "document to your appointment."
                )
            ) from None
        except ScannerUnavailable:
            if not self.hold_when_scanner_down:
                raise ScannerDown(
                    _(
                        "We cannot check files for viruses at the moment, so this file was "
                        "not saved. Please try again later."
                    )
                ) from None
            return ScanStatus.PENDING
        finally:
            stream.seek(start)
        return ScanStatus.CLEAN

    def _path(self, stored_name: str) -> Path:
        # Stored names are ours (hex), but refuse anything that could leave the folder.
        if not stored_name.isalnum():
            raise ValueError("invalid stored name")
        return self.root / stored_name

    def save(self, stream: BinaryIO, max_bytes: int) -> StoredFile:
        """Check an upload (size, type, structure: ``check_upload``), scan it, and encrypt it
        under a new random name.

        The checks come before the scan, on every path: a file we would refuse anyway is not
        sent to the scanner, where one too long for clamd's StreamMaxLength would be refused
        as if the scanner were down. With scanning on, the upload is scanned for malware
        before anything is written (``_scan``); the result says whether it was. Nothing is
        left behind when it fails: the partial file is removed before the error propagates (a
        full disk, a file that grows past the limit while it streams).
        """
        mime = check_upload(stream, max_bytes)
        scan_status = self._scan(stream)
        self.root.mkdir(parents=True, exist_ok=True)
        stored_name = secrets.token_hex(16)
        path = self._path(stored_name)
        digest = hashlib.sha256()
        size = 0
        try:
            with open(path, "xb") as out:
                writer = _EncryptingWriter(out, self.keys)
                while chunk := stream.read(CHUNK_SIZE):
                    size += len(chunk)
                    if size > max_bytes:
                        raise DocumentRejected(
                            _(
                                "This file is larger than %(mb)d MB.",
                                mb=max_bytes // (1024 * 1024),
                            )
                        )
                    digest.update(chunk)
                    writer.write(chunk)
                if size == 0:
                    raise DocumentRejected(_("This file is empty."))
                writer.finish()
                out.flush()
                os.fsync(out.fileno())
            self._sync_folder()
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return StoredFile(stored_name, mime, size, digest.hexdigest(), scan_status)

    def _sync_folder(self) -> None:
        """Make the folder's entry for a new or replaced file durable too: the file's own
        fsync does not cover its name, and after a power cut a committed row could name a
        file the folder never kept (POSIX; a no-op where folders cannot be opened)."""
        try:
            folder = os.open(self.root, os.O_RDONLY)
        except OSError:  # e.g. Windows
            return
        try:
            os.fsync(folder)
        finally:
            os.close(folder)

    def open(self, stored_name: str, sha256: str | None = None) -> BinaryIO:
        """The document's plain bytes as a file object, decrypted chunk by chunk.

        Raises ``KeyMissingError`` when the file's key is not configured and
        ``DocumentUnreadable`` (possibly while reading) when it fails authentication or, given
        ``sha256``, its checksum.
        """
        raw = open(self._path(stored_name), "rb")  # noqa: SIM115 - closed by the reader
        return io.BufferedReader(_DecryptingReader(raw, self.keys, sha256), CHUNK_SIZE)  # type: ignore[return-value]

    def iter_chunks(self, stored_name: str, sha256: str | None = None) -> Iterator[bytes]:
        with self.open(stored_name, sha256) as plain:
            while chunk := plain.read(CHUNK_SIZE):
                yield chunk

    def verify(self, stored_name: str, sha256: str) -> None:
        """Read the whole document once, checking every chunk and the stored checksum."""
        for _chunk in self.iter_chunks(stored_name, sha256):
            pass

    def key_label(self, stored_name: str) -> str:
        """The id of the key a stored document is encrypted with."""
        with open(self._path(stored_name), "rb") as raw:
            header = raw.read(HEADER_BYTES)
        if not header.startswith(MAGIC):
            raise DocumentUnreadable("not an encrypted document")
        return header[len(MAGIC) : len(MAGIC) + KEY_ID_BYTES].hex()

    def reencrypt(self, stored_name: str, sha256: str) -> None:
        """Rewrite a document under the current key, replacing the file only when the new copy
        is complete and its checksum verified (a crash midway leaves the old file intact)."""
        target = self._path(stored_name)
        temp = target.with_name(stored_name + ROTATING_SUFFIX)
        # A rotation killed midway left its copy behind; it is never the document (that is
        # replaced only by a verified copy), so it is written over rather than blocking every
        # later rotation of this file.
        temp.unlink(missing_ok=True)
        try:
            with open(temp, "xb") as out:
                writer = _EncryptingWriter(out, self.keys)
                for chunk in self.iter_chunks(stored_name, sha256):
                    writer.write(chunk)
                writer.finish()
                out.flush()
                os.fsync(out.fileno())
            self.verify(temp.name, sha256)
            os.replace(temp, target)
            self._sync_folder()
        finally:
            temp.unlink(missing_ok=True)

    def delete(self, stored_name: str) -> None:
        self._path(stored_name).unlink(missing_ok=True)

    def exists(self, stored_name: str) -> bool:
        return self._path(stored_name).is_file()


def get_storage() -> DocumentStorage:
    return DocumentStorage(
        current_app.config["UPLOAD_DIR"],
        key_ring(),
        scan=scanning.scanning_enabled(),
        hold_when_scanner_down=current_app.config["CLAMAV_WHEN_DOWN"] == "hold",
    )


# The attribute a database failure carries to say whether the change was stored after all.
_STORED_AFTER_ALL = "stored_after_all"


def stored_after_all(failure: BaseException) -> bool | None:
    """Whether the change a database failure in ``saved_uploads`` interrupted was stored after
    all (its commit's answer lost), as its ``found`` or ``named`` said: True, stored (the
    files kept, named by their rows); False, not stored (the files deleted, as for any
    failure); None, no one could say (the files kept for the reconciliation)."""
    return getattr(failure, _STORED_AFTER_ALL, None)


def failed_before_writing(failure: BaseException) -> None:
    """Mark a database failure met before a change wrote anything (the reads that check it
    may be made, before its files are saved): not stored, as ``stored_after_all`` says."""
    setattr(failure, _STORED_AFTER_ALL, False)


def _stored_after_failure(
    named: Callable[[list[str]], bool] | None,
    found: Callable[[], bool] | None,
    stored: list[StoredFile],
) -> bool | None:
    """Whether the change is stored once the database failed, if ``found`` (its key looked
    for) or else ``named`` (rows naming ``stored``) can say."""
    if found is None and named is not None and stored:
        found = partial(named, [file.stored_name for file in stored])
    if found is None:
        return None
    try:
        return found()
    except (OperationalError, InterfaceError) as error:  # still failing: it cannot say
        log.error("database failed while a change was looked for: %s", type(error).__name__)
        return None
    finally:
        db.session.rollback()  # end the read: the caller's session is as after any failure


@contextmanager
def saved_uploads(
    uploads: Sequence[DocumentUpload],
    *,
    named: Callable[[list[str]], bool] | None = None,
    found: Callable[[], bool] | None = None,
) -> Iterator[list[StoredFile]]:
    """Save each upload (checked, scanned and encrypted) and hand the stored files to the
    block, which adds their rows and commits. All or nothing: if a file is refused or the
    block fails, the session is rolled back and every file saved so far is deleted, and the
    first error is raised (``refused_upload`` says which upload it is about, if one). A file
    that cannot be deleted then is logged and left for the nightly reconciliation
    (``booking.requests.files.reconcile_files``); the others are still deleted.

    The database failing may have committed the change all the same (``may_have_committed``):
    ``named`` (given the stored names, whether rows name any) is asked then, or ``found``
    (whether the change is stored, looked for by a key it carries), which can say with no
    file too. The files are deleted only when it says no; the failure raised says what it
    said (``stored_after_all``)."""
    storage = get_storage()
    max_bytes = current_app.config["MAX_DOCUMENT_MB"] * 1024 * 1024
    stored: list[StoredFile] = []
    try:
        for index, upload in enumerate(uploads):
            try:
                stored.append(storage.save(upload.stream, max_bytes))
            except (DocumentRejected, OSError) as failure:
                _about_upload(failure, index)
                raise
        yield stored
    except BaseException as failure:
        db.session.rollback()
        if may_have_committed(failure):
            kept = _stored_after_failure(named, found, stored)
            setattr(failure, _STORED_AFTER_ALL, kept)
            if kept is not False:
                if stored and kept is None:
                    log.error(
                        "the database failed during a change with %d new files; they are kept "
                        "for the reconciliation, which removes those no row names",
                        len(stored),
                    )
                raise
        for file in stored:
            try:
                storage.delete(file.stored_name)
            except OSError:
                log.exception("could not delete a stored file after a failed change")
        raise


def may_have_committed(failure: BaseException) -> bool:
    """Whether a change that raised ``failure`` may be stored after all: the database
    connection failed (``OperationalError``, ``InterfaceError``), which can happen after the
    server committed and before its answer came (a restart, a cut network, a failover). Its
    new files must then stay: deleted, a committed row would name a file that is gone for
    good (never in any backup). Kept, the nightly reconciliation removes them an hour on if
    no row names them (``booking.requests.files.reconcile_files``)."""
    return isinstance(failure, OperationalError | InterfaceError)


@contextmanager
def saved_before_locking(
    uploads: Sequence[DocumentUpload],
    *,
    named: Callable[[list[str]], bool] | None = None,
    found: Callable[[], bool] | None = None,
) -> Iterator[list[StoredFile]]:
    """``saved_uploads`` for a change to something other people may change too: the session's
    transaction is ended first, so no row lock (and on SQLite no write lock) is held while
    the files are checked, scanned (up to ``CLAMAV_TIMEOUT`` each) and encrypted. The block
    then locks what it changes, checks again what may have changed meanwhile (the status, the
    room left, the files already kept) and commits; if it raises, the saved files are
    deleted, as by ``saved_uploads``. Nothing read before may be relied on in the block."""
    db.session.rollback()
    with saved_uploads(uploads, named=named, found=found) as stored:
        yield stored
