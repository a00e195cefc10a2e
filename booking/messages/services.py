"""A request's message thread: writing (staff or patient), reading, and what is unread.

Each writing function is one transaction: the message (its text encrypted), a patient's
attachment as a document of the request, the audit row and the other side's email, which says
only that a message waits. Reading a thread that holds messages is audited too, and marks the
other side's messages shown as read.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask_babel import gettext as _
from sqlalchemy import Select, select, update
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import joinedload, selectinload

from booking.audit.services import record
from booking.documents.models import Document
from booking.documents.storage import (
    DocumentUpload,
    failed_before_writing,
    refuse_held,
    saved_before_locking,
    stored_after_all,
)
from booking.extensions import db
from booking.messages import emails
from booking.messages.models import Message
from booking.notifications.services import enqueue_delivery, enqueue_still_to_go
from booking.requests import emails as request_emails
from booking.requests.files import named_by_rows, no_room_for
from booking.requests.lifecycle import PATIENT
from booking.requests.links import is_read_only
from booking.requests.models import ConsultationRequest
from booking.requests.queries import can_see, lock_request
from booking.staff.models import StaffUser
from booking.timeutil import now_utc

MESSAGE_SENT = "message_sent"
THREAD_READ = "message_thread_read"


class MessageRefused(ValueError):  # noqa: N818 - reads better at the call sites
    """A message that cannot be sent; the text is for whoever wrote it."""


@dataclass(frozen=True)
class Thread:
    """A request's messages, oldest first, and those of the other side not read yet."""

    messages: list[Message]
    unread_ids: frozenset[int]

    @property
    def unread(self) -> int:
        return len(self.unread_ids)


def load_thread(consultation: ConsultationRequest, *, for_staff: bool) -> Thread:
    """The thread as ``for_staff`` (else the patient) sees it: unread are the other side's
    messages nobody of this side has read. Two queries at most, however long."""
    messages = list(
        db.session.scalars(
            select(Message)
            .where(Message.request_id == consultation.id)
            .order_by(Message.created_at, Message.id)
            .options(
                joinedload(Message.author),
                joinedload(Message.read_by),
                selectinload(Message.documents),
            )
        )
    )
    unread = frozenset(m.id for m in messages if m.from_patient == for_staff and m.read_at is None)
    return Thread(messages, unread)


def unread_by_staff() -> Select:
    """The ids of requests holding a message from the patient that no member of staff has
    read yet: one that showed the record read the thread (``record_thread_read``)."""
    return select(Message.request_id).where(Message.from_patient, Message.read_at.is_(None))


def record_thread_read(
    consultation: ConsultationRequest, thread: Thread, reader: StaffUser | None
) -> None:
    """Audit that ``reader`` (None: the patient) was shown the thread, and mark the other
    side's messages shown as read (only those: one arriving meanwhile stays unread). An empty
    thread shows nothing, so nothing is recorded."""
    if not thread.messages:
        return
    if thread.unread_ids:
        db.session.execute(
            update(Message)
            .where(Message.id.in_(thread.unread_ids), Message.read_at.is_(None))
            .values(read_at=now_utc(), read_by_id=reader.id if reader is not None else None)
        )
    record(
        THREAD_READ,
        target_type="request",
        target_id=consultation.reference,
        actor=reader,
        actor_email=PATIENT if reader is None else None,
        details={"messages": len(thread.messages), "newly_read": len(thread.unread_ids)},
    )
    db.session.commit()


def send_staff_message(
    consultation: ConsultationRequest, author: StaffUser, body: str, *, key: str | None = None
) -> Message:
    """Staff who may see the request write to its patient, while it is open and the patient
    has an email address (otherwise they would never learn of it: phone them instead).

    ``key`` is the one-time key of the form it was written on (``Message.submission_key``,
    unique), looked for under the request's lock: a message already sent with it (the page
    sent twice: a double click, Back and send again) is that message, nothing stored, audited
    or emailed again."""
    if not can_see(author, consultation):
        raise MessageRefused(_("You may not write on this request."))
    consultation = lock_request(consultation)
    if key is not None and (sent := sent_with(consultation.id, key)) is not None:
        db.session.rollback()  # nothing to write: the lock is let go
        return sent
    if is_read_only(consultation):
        raise MessageRefused(
            _("This request is closed: the patient can no longer reply, so please call them.")
        )
    if not consultation.patient.email:
        raise MessageRefused(
            _(
                "The patient left no email address and would not learn of a message: please "
                "call them."
            )
        )
    if consultation.patient.deceased_at is not None:  # nothing more goes to the address
        raise MessageRefused(_("The patient is marked deceased: no message is sent to them."))
    try:
        message = _add(consultation, body, author=author, key=key)
        record(
            MESSAGE_SENT,
            target_type="request",
            target_id=consultation.reference,
            actor=author,
            details={"message_id": message.id, "from": "staff"},
        )
        email = emails.message_for_patient(consultation)
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    enqueue_delivery([email.id] if email is not None else [])
    return message


def _check_patient_may_write(consultation: ConsultationRequest, attached: int) -> None:
    if is_read_only(consultation):
        raise MessageRefused(_("This request is closed and can no longer be changed online."))
    if (full := no_room_for(consultation, attached)) is not None:
        without = _("Please send your message without the file.")
        raise MessageRefused(f"{full} {without}")


def send_patient_message(
    consultation: ConsultationRequest,
    body: str,
    upload: DocumentUpload | None = None,
    *,
    key: str | None = None,
) -> Message:
    """The patient writes (through their private link) while the request is open, with at
    most one document, stored as the request's documents are and within their number; the
    clinic is emailed that a message waits. All or nothing: a refused or failed attachment
    (one the request already holds included: ``refuse_held``) leaves no message and no
    file. The attachment is checked, scanned and stored before the request is locked (the
    scanner may take ``CLAMAV_TIMEOUT``); the rules are checked again under the lock.

    ``key`` is the one-time key of the form it was written on (``Message.submission_key``,
    unique): a message already sent with it (the page sent twice: a double click, Back and
    send again) is that message, nothing stored again. The database failing raises
    (``OperationalError``, ``InterfaceError``; ``stored_after_all`` says whether it was found
    not stored, the attachment deleted, or no one could say; failing in the checks before
    anything is written, not stored), unless the message is found stored after all (the
    commit's answer was lost), by its key (else by its attachment): that is the message
    sent, its emails handed to the queue then."""
    uploads = [] if upload is None else [upload]
    request_id = consultation.id  # the session is rolled back (and expired) on a failure
    try:
        if key is not None and (sent := sent_with(request_id, key)) is not None:
            return sent
        _check_patient_may_write(consultation, len(uploads))  # a refused message costs no scan
    except (OperationalError, InterfaceError) as failure:
        failed_before_writing(failure)
        raise

    def found() -> bool:
        return key is not None and sent_with(request_id, key) is not None

    try:
        with saved_before_locking(
            uploads, named=named_by_rows, found=None if key is None else found
        ) as stored:
            consultation = lock_request(consultation)
            if key is not None and (sent := sent_with(request_id, key)) is not None:
                # Sent meanwhile by the same page (the first of a double click, committed
                # while this one's file was scanned): its attachment is deleted on the way out.
                raise _SentMeanwhile(sent)
            _check_patient_may_write(consultation, len(uploads))
            refuse_held(stored, uploads, consultation.documents)
            message = _add(consultation, body, author=None, key=key)
            for each, file in zip(uploads, stored, strict=True):
                db.session.add(
                    Document.of_upload(
                        each,
                        file,
                        message.created_at,
                        request_id=consultation.id,
                        message_id=message.id,
                    )
                )
                db.session.flush()
            record(
                MESSAGE_SENT,
                target_type="request",
                target_id=consultation.reference,
                actor_email=PATIENT,
                details={
                    "message_id": message.id,
                    "from": PATIENT,
                    "documents": len(stored),
                },
            )
            email = emails.message_for_clinic(consultation)
            receipt = request_emails.message_received(consultation, message.created_at, len(stored))
            db.session.commit()
    except _SentMeanwhile as meanwhile:
        return meanwhile.message
    except (OperationalError, InterfaceError) as failure:
        if not stored_after_all(failure):  # True only when found by its key, or its file
            raise
        enqueue_still_to_go(request_id)
        return db.session.scalars(
            select(Message).where(
                Message.request_id == request_id,
                Message.submission_key == key
                if key is not None
                else Message.id.in_(
                    select(Document.message_id).where(Document.stored_name == stored[0].stored_name)
                ),
            )
        ).one()
    enqueue_delivery([e.id for e in (email, receipt) if e is not None])
    return message


class _SentMeanwhile(Exception):  # noqa: N818 - reads better at the call sites
    """A patient's message whose key another send of the same page stored meanwhile."""

    def __init__(self, message: Message) -> None:
        super().__init__()
        self.message = message


def sent_with(request_id: int, key: str) -> Message | None:
    """The message of the request sent with the form's one-time ``key``, if any."""
    return db.session.scalars(
        select(Message).where(Message.request_id == request_id, Message.submission_key == key)
    ).one_or_none()


def _add(
    consultation: ConsultationRequest,
    body: str,
    *,
    author: StaffUser | None,
    key: str | None = None,
) -> Message:
    message = Message(
        request_id=consultation.id,
        from_patient=author is None,
        author_id=None if author is None else author.id,
        body=body.strip(),
        created_at=now_utc(),
        submission_key=key,
    )
    db.session.add(message)
    db.session.flush()
    return message
