"""The message forms: the staff's on the record, the patient's (with one optional document,
checked by content as every upload is) on the private page."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from wtforms import FormField, TextAreaField
from wtforms.validators import DataRequired

from booking.documents.forms import DocumentForm, ask_to_choose_again
from booking.documents.storage import DocumentUpload
from booking.forms import BaseForm, SubmissionKeyField, too_long
from booking.messages.models import MAX_MESSAGE_CHARS


class StaffMessageForm(BaseForm):
    # Sent twice (a double click, Back and send again), the page stores one message.
    submission_key = SubmissionKeyField()
    body = TextAreaField(
        _l("Message to the patient"),
        validators=[DataRequired(_l("Please write the message.")), too_long(MAX_MESSAGE_CHARS)],
        description=_l(
            "The patient is emailed that a message is waiting, never its text, and reads it "
            "on their private page."
        ),
    )


class PatientMessageForm(BaseForm):
    # Sent twice (a double click, Back and send again), the page stores one message.
    submission_key = SubmissionKeyField()
    body = TextAreaField(
        _l("Your message"),
        validators=[
            DataRequired(_l("Please write your message.")),
            too_long(MAX_MESSAGE_CHARS),
        ],
    )
    document = FormField(DocumentForm, label=_l("Attach a document"))

    def validate(self, extra_validators: object = None) -> bool:
        valid = super().validate(extra_validators)
        if not valid:  # the message unwritten: the file chosen with it was not sent either
            ask_to_choose_again([self.document.form])
        return valid

    def refuse_upload(self, index: int | None, message: str, *, reason: str | None = None) -> None:
        """As the private page's other forms with files do (``manage.forms._FilesForm``): the
        service refused the message for its file (``index`` 0: ``message`` beside it) or for
        none (above the form); a file chosen and not itself refused says why it was not sent
        (``reason``, by default ``NOT_ADDED_YET``), to be chosen again."""
        entry = self.document.form
        if index == 0:
            entry.file.errors = [*entry.file.errors, message]
        else:
            self.form_errors.append(message)
        ask_to_choose_again([entry], reason)

    def upload(self) -> DocumentUpload | None:
        """The attached file, once validated; None when none was chosen."""
        entry = self.document.form
        data = entry.file.data
        if not data or not data.filename:
            return None
        return DocumentUpload(
            stream=data.stream,
            filename=data.filename,
            description=(entry.description.data or "").strip() or None,
        )
