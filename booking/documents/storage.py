"""Where document bytes live. Every file passes through here.

Files are stored under random names in ``UPLOAD_DIR`` (outside any static folder), written in
chunks so a large scan is never held whole in memory, and checked by their content.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import filetype
from flask import current_app
from flask_babel import gettext as _

CHUNK_SIZE = 64 * 1024
# The magic-byte signatures we accept, by the MIME type ``filetype`` reports for them.
ALLOWED_TYPES = {
    "application/pdf": "pdf",
    "image/jpeg": "jpg",
    "image/png": "png",
}
SNIFF_BYTES = 8192


class DocumentRejected(ValueError):  # noqa: N818 - reads better at the call sites
    """The upload is not a document we accept; the message is for the patient."""


@dataclass(frozen=True)
class StoredFile:
    stored_name: str
    content_type: str
    size_bytes: int
    sha256: str


def sniff(head: bytes) -> str | None:
    """The MIME type of an accepted document recognised from its first bytes, else None."""
    kind = filetype.guess(head)
    if kind is None or kind.mime not in ALLOWED_TYPES:
        return None
    return kind.mime


def check_upload(stream: BinaryIO, max_bytes: int) -> str:
    """Check an upload's size and content without consuming it; return its detected type.

    Raises ``DocumentRejected`` with a message for the patient.
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
        raise DocumentRejected(
            _("This file is not a PDF, JPEG or PNG document. Please send a PDF or a photo.")
        )
    return mime


class DocumentStorage:
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def _path(self, stored_name: str) -> Path:
        # Stored names are ours (hex), but refuse anything that could leave the folder.
        if not stored_name.isalnum():
            raise ValueError("invalid stored name")
        return self.root / stored_name

    def save(self, stream: BinaryIO, max_bytes: int) -> StoredFile:
        """Write an upload under a new random name, checking type and size as it streams.

        Nothing is left behind when it fails: the partial file is removed before the error
        propagates (a full disk, a file that grows past the limit, a type we do not accept).
        """
        self.root.mkdir(parents=True, exist_ok=True)
        stored_name = secrets.token_hex(16)
        path = self._path(stored_name)
        digest = hashlib.sha256()
        size = 0
        mime: str | None = None
        try:
            with open(path, "xb") as out:
                while chunk := stream.read(CHUNK_SIZE):
                    if mime is None:
                        mime = sniff(chunk[:SNIFF_BYTES])
                        if mime is None:
                            raise DocumentRejected(
                                _("This file is not a PDF, JPEG or PNG document.")
                            )
                    size += len(chunk)
                    if size > max_bytes:
                        raise DocumentRejected(
                            _(
                                "This file is larger than %(mb)d MB.",
                                mb=max_bytes // (1024 * 1024),
                            )
                        )
                    digest.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            if size == 0 or mime is None:
                raise DocumentRejected(_("This file is empty."))
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return StoredFile(stored_name, mime, size, digest.hexdigest())

    def open(self, stored_name: str) -> BinaryIO:
        return open(self._path(stored_name), "rb")

    def delete(self, stored_name: str) -> None:
        self._path(stored_name).unlink(missing_ok=True)

    def exists(self, stored_name: str) -> bool:
        return self._path(stored_name).is_file()


def get_storage() -> DocumentStorage:
    return DocumentStorage(current_app.config["UPLOAD_DIR"])
