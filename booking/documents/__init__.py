"""Documents: uploads checked by content, stored encrypted under random keys, read back whole
and checked before any of it is sent."""

from __future__ import annotations

from flask import Flask
from flask_babel import gettext as _

from booking.documents.storage import DocumentUnreadable
from booking.errors import error_page


def init_app(app: Flask) -> None:
    """Answer a damaged document with its own page."""

    @app.errorhandler(DocumentUnreadable)
    def document_unreadable(_error: DocumentUnreadable) -> tuple[str, int]:
        # 409 Conflict: the stored file conflicts with the checksum recorded at upload. Not a
        # 500, which means a fault in our code, and not a 503, which invites a retry: this
        # stays so until the file is restored. The one who met it audited and logged it with
        # the document's ids (``dashboard.services.check_document_intact``).
        return error_page(
            409,
            _("This document is damaged"),
            _(
                "The stored file no longer matches what was uploaded, so it is not shown. "
                "Ask the administrator to restore it from the backup."
            ),
        )
