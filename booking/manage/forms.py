"""Forms on the patient's private manage page."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from wtforms import (
    BooleanField,
    DateField,
    EmailField,
    FieldList,
    FormField,
    HiddenField,
    TextAreaField,
    ValidationError,
)
from wtforms.validators import DataRequired, Optional

from booking.documents.forms import DocumentForm, ask_to_choose_again
from booking.documents.storage import DocumentUpload
from booking.forms import BaseForm, EmailAddress, SubmissionKeyField, stripped, too_long
from booking.requests import asks
from booking.scheduling.availability import parse_slot_key

# Beside each file chosen with one our storage or virus scanner failed on: nothing of the
# patient's to correct, but the files go in together, so none of them was kept.
NOT_ADDED_WITH_OURS = _l(
    "Not added yet: we could not store another file on this form just now, and the files are "
    "added together. Please choose this file again."
)


class _FilesForm(BaseForm):
    """A form whose chosen files the service stores all or none (``saved_uploads``): when it
    refuses them for one, the page says so beside that one and asks for each other again."""

    def _file_entries(self) -> Sequence[FormField]:
        raise NotImplementedError

    def _chosen(self) -> list[DocumentForm]:
        return [
            entry.form
            for entry in self._file_entries()
            if entry.form.file.data and entry.form.file.data.filename
        ]

    def refuse_upload(
        self, index: int | None, message: str, *, ours: bool = False, reason: str | None = None
    ) -> None:
        """The service refused the files (all or none) for one of them: ``message`` beside
        that file (``index`` among the files chosen, as ``uploads()`` gives them), or above
        the form when it is about none; every other file chosen says it was not added either,
        and why (``ours``: our storage or virus scanner failed, nothing for the patient to
        correct; ``reason``: another why)."""
        chosen = self._chosen()
        if index is not None and 0 <= index < len(chosen):
            chosen[index].file.errors = [*chosen[index].file.errors, message]
        else:
            self.form_errors.append(message)
        ask_to_choose_again(chosen, reason or (str(NOT_ADDED_WITH_OURS) if ours else None))


class AddDocumentsForm(_FilesForm):
    documents = FieldList(FormField(DocumentForm), min_entries=3, max_entries=10)

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        for number, entry in enumerate(self.documents, start=1):
            entry.form.file.label.text = _("Document %(n)d file", n=number)

    def validate(self, extra_validators: object = None) -> bool:
        valid = super().validate(extra_validators)
        if not valid:
            ask_to_choose_again(entry.form for entry in self.documents)
        elif not self.uploads():
            self.form_errors.append(_("Please choose at least one file."))
            return False
        return valid

    def _file_entries(self) -> Sequence[FormField]:
        return self.documents.entries

    def uploads(self) -> list[DocumentUpload]:
        return [
            DocumentUpload(
                stream=document.file.data.stream,
                filename=document.file.data.filename,
                description=(document.description.data or "").strip() or None,
            )
            for document in self._chosen()
        ]


class CancelForm(BaseForm):
    reason = TextAreaField(
        _l("Why are you cancelling?"),
        validators=[Optional(), too_long(500)],
        description=_l("It helps us, but please do not write medical details."),
    )


class RescheduleForm(BaseForm):
    slot = HiddenField()  # radio buttons named "slot" on the page

    def validate_slot(self, field: HiddenField) -> None:
        if parse_slot_key(field.data or "") is None:
            raise ValidationError(_("Please choose one of the times."))

    def slot_key(self) -> tuple[int, int, datetime]:
        """The (specialist id, location id, start) of the chosen time, once validated."""
        parsed = parse_slot_key(self.slot.data or "")
        if parsed is None:  # validate_slot refuses it first; never reached after validation
            raise ValueError("slot_key() called on a form that did not validate")
        return parsed


class AnswerForm(_FilesForm):
    """The patient's answer to staff's request for information: a file per item asked
    (each checked by content like every document) and/or text."""

    files = FieldList(FormField(DocumentForm), min_entries=0, max_entries=20)
    # The ask the page shows: an answer is refused if the clinic has replaced it since.
    ask_id = HiddenField()
    # Sent twice (a double click, Back and send again), the page answers once.
    submission_key = SubmissionKeyField()
    answer = TextAreaField(
        _l("Your answer"),
        validators=[Optional(), too_long(asks.ANSWER_MAX)],
        description=_l(
            "Answer the clinic's question here, or tell us if you do not have something."
        ),
    )

    def __init__(self, ask: asks.InformationRequest, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        # The ask this answer was written to (the page's), then always the one shown now: a
        # page shown again after a refusal carries the ask it shows.
        posted = self.ask_id.data or ""
        self.answered_ask = int(posted) if posted.isdigit() else None
        self.ask_id.data = str(ask.id)
        self.labels = ask.item_labels()
        self.codes = [item["code"] for item in ask.items]
        while len(self.files) < len(self.codes):
            self.files.append_entry()
        for entry, label in zip(self.files, self.labels, strict=False):
            entry.form.file.label.text = label

    def validate(self, extra_validators: object = None) -> bool:
        valid = super().validate(extra_validators)
        if not valid:
            ask_to_choose_again(entry.form for entry in self.files)
        elif not self.uploads() and not (self.answer.data or "").strip():
            self.form_errors.append(_("Please choose a file or write your answer."))
            return False
        return valid

    def _file_entries(self) -> Sequence[FormField]:
        return self.files.entries[: len(self.codes)]  # as many as ``uploads()`` pairs

    def uploads(self) -> list[tuple[str, DocumentUpload]]:
        """(checklist item, file) for every file chosen, in the order ``refuse_upload``
        counts them."""
        return [
            (
                code,
                DocumentUpload(
                    stream=entry.form.file.data.stream,
                    filename=entry.form.file.data.filename,
                    description=(entry.form.description.data or "").strip() or None,
                ),
            )
            for code, entry in zip(self.codes, self.files, strict=False)
            if entry.form.file.data and entry.form.file.data.filename
        ]


class WithdrawConsentForm(BaseForm):
    confirm = BooleanField(
        _l("I no longer want reminders, offers of earlier times or follow-ups"),
        validators=[DataRequired(_l("Please tick the box to confirm."))],
    )


class DownloadDataForm(BaseForm):
    """The date of birth is a second factor: the link alone (a forwarded email) is not
    enough to take a copy of everything."""

    date_of_birth = DateField(
        _l("Your date of birth"),
        validators=[DataRequired(_l("Please enter your date of birth as day, month and year."))],
        description=_l("As you gave it in your request. We ask for it to protect your data."),
        render_kw={"autocomplete": "bday"},
    )


class EraseDataForm(BaseForm):
    confirm = BooleanField(
        _l("I ask the clinic to erase my data"),
        validators=[DataRequired(_l("Please tick the box to confirm."))],
    )


class ChangeEmailForm(BaseForm):
    """A new email address, typed twice, checked as the request form checks the first one
    (``EmailAddress``); whether it is new, and the change itself, are the service's
    (``booking.rights.addresses.request_email_change``)."""

    email = EmailField(
        _l("Your new email address"),
        validators=[
            DataRequired(_l("Please enter your new email address.")),
            EmailAddress(_l("Please enter a valid email address, like name@example.com.")),
            too_long(254),
        ],
        filters=[stripped],
        render_kw={"autocomplete": "email"},
    )
    email_again = EmailField(
        _l("The new email address again"),
        validators=[DataRequired(_l("Please enter the new email address again.")), too_long(254)],
        filters=[stripped],
        render_kw={"autocomplete": "email"},
    )

    def validate_email_again(self, field: EmailField) -> None:
        if self.email.data and (field.data or "").casefold() != self.email.data.casefold():
            raise ValidationError(_("The two addresses are not the same. Please check them."))
