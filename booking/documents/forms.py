"""The form that takes one document: its file is checked by content before anything else."""

from __future__ import annotations

from collections.abc import Iterable

from flask import current_app
from flask_babel import lazy_gettext as _l
from flask_wtf.file import FileField
from wtforms import StringField, ValidationError
from wtforms.validators import Length, Optional

from booking.documents.storage import DocumentRejected, check_upload
from booking.forms import SubForm, visible_or_empty

NOT_ADDED_YET = _l(
    "Not added yet, as something else on this form needs correcting. Please choose this file again."
)
# A file chosen, not kept because the database failed (the request form's documents step,
# the private page's forms).
FILE_NOT_ADDED = _l("Not added: our system had a problem. Please choose it again in a few minutes.")


class DocumentForm(SubForm):
    file = FileField(_l("File"))
    description = StringField(
        _l("What is it?"),
        validators=[Optional(), Length(max=200)],
        filters=[visible_or_empty],
        description=_l("For example: MRI report, lumbar spine, March 2026"),
    )

    def validate_file(self, field: FileField) -> None:
        upload = field.data
        if not upload or not upload.filename:
            return
        limit = current_app.config["MAX_DOCUMENT_MB"] * 1024 * 1024
        try:
            check_upload(upload.stream, limit)
        except DocumentRejected as exc:
            raise ValidationError(str(exc)) from None


def ask_to_choose_again(documents: Iterable[DocumentForm], reason: str | None = None) -> None:
    """A form sent back with a message keeps what was typed, but no browser keeps a file
    chosen, and nothing of the form was stored: each file chosen that was not itself refused
    says so on its field (``reason``, by default ``NOT_ADDED_YET``), or the patient would
    believe it added."""
    for document in documents:
        upload = document.file.data
        if upload and upload.filename and not document.file.errors:
            document.file.errors = [*document.file.errors, reason or str(NOT_ADDED_YET)]
