"""The form that takes one document: its file is checked by content before anything else."""

from __future__ import annotations

from flask import current_app
from flask_babel import lazy_gettext as _l
from flask_wtf.file import FileField
from wtforms import StringField, ValidationError
from wtforms.validators import Length, Optional

from booking.documents.storage import DocumentRejected, check_upload
from booking.forms import SubForm, visible_or_empty


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
