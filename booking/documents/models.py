"""Documents a patient sent with a request; the bytes live in storage, the facts here."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Self, TypeVar

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from booking.crypto import EncryptedText
from booking.documents.scanning import SERVABLE, ScanStatus
from booking.documents.storage import DocumentUpload, StoredFile, safe_display_name, saved_name
from booking.extensions import db, value_enum
from booking.timeutil import UTCDateTime, now_utc

if TYPE_CHECKING:
    from booking.requests.models import ConsultationRequest


class StoredDocument:
    """The columns of a stored file and what the patient said of it, shared by a request's
    documents and a draft's (``booking.requests.drafts.DraftDocument``)."""

    # The patient's own words (a file name, what it is): encrypted at rest, as free text is.
    original_name: Mapped[str] = mapped_column(EncryptedText)  # shown, never a path
    stored_name: Mapped[str] = mapped_column(String(64), unique=True)  # random storage key
    content_type: Mapped[str] = mapped_column(String(50))  # detected from the bytes
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    description: Mapped[str | None] = mapped_column(EncryptedText)
    uploaded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)
    # The virus scan's verdict (``booking.documents.scanning``): no default, so a new kind of
    # upload cannot forget it and be shown unscanned.
    scan_status: Mapped[ScanStatus] = mapped_column(value_enum(ScanStatus, "scan_status", 10))

    @property
    def download_name(self) -> str:
        """The name a downloaded copy gets (``storage.saved_name``)."""
        return saved_name(self.original_name, self.content_type)

    @property
    def servable(self) -> bool:
        """Whether staff may open it: not held for a scan, not removed as infected."""
        return self.scan_status in SERVABLE

    @property
    def awaiting_scan(self) -> bool:
        """Whether it is held for the virus scan (the scanner was down when it came): received,
        but not yet known to be kept. The patient is told so, not that it was accepted."""
        return self.scan_status == ScanStatus.PENDING

    @property
    def removed(self) -> bool:
        """Whether the virus scan, run later (the scanner was down when it came), found
        malware in it: its file was deleted unopened, the row kept to say so."""
        return self.scan_status == ScanStatus.INFECTED

    __table_args__ = (CheckConstraint("size_bytes > 0", name="size_positive"),)

    def stored_facts(self) -> dict[str, object]:
        """These columns' values, to make another row for the same stored file."""
        return {name: getattr(self, name) for name in STORED_FACTS}

    @classmethod
    def of_upload(
        cls, upload: DocumentUpload, file: StoredFile, uploaded_at: datetime, **columns: object
    ) -> Self:
        """The row for ``upload`` once storage kept it as ``file`` (checked, scanned,
        encrypted), with the row's own ``columns`` (its request or draft, ...)."""
        return cls(
            original_name=safe_display_name(upload.filename),
            stored_name=file.stored_name,
            content_type=file.content_type,
            size_bytes=file.size_bytes,
            sha256=file.sha256,
            scan_status=file.scan_status,
            description=upload.description,
            uploaded_at=uploaded_at,
            **columns,
        )


_Row = TypeVar("_Row", bound=StoredDocument)


def kept(documents: Iterable[_Row]) -> list[_Row]:
    """The documents that hold a file: not those removed by the virus scan. Only these count
    toward ``MAX_DOCUMENTS``: a removed file's row stays (to say so), and the patient at the
    limit must still be able to send its clean copy."""
    return [document for document in documents if not document.removed]


STORED_FACTS = (
    "original_name",
    "stored_name",
    "content_type",
    "size_bytes",
    "sha256",
    "description",
    "uploaded_at",
    "scan_status",
)


class Document(StoredDocument, db.Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(
        ForeignKey("consultation_request.id", ondelete="CASCADE"), index=True
    )
    # The item of the clinic's checklist the patient sent it for, when staff asked for it
    # (``booking.requests.asks``).
    checklist_item: Mapped[str | None] = mapped_column(String(40))
    # The message it was attached to (``booking.messages``); None for the request's own.
    message_id: Mapped[int | None] = mapped_column(
        ForeignKey("message.id", ondelete="SET NULL"), index=True
    )

    request: Mapped[ConsultationRequest] = relationship(back_populates="documents")
