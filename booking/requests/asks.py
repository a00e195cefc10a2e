"""Asking the patient for what is missing: the clinic's checklist and each request for
information ("ask") staff send.

Staff tick items of the clinic's checklist (an MRI or CT report, a referral letter, ...) and/or
write a question. The request moves to "waiting for the patient" and the patient is emailed
that something is needed (only that: no details in the email), with their private link. On
the manage page they upload a file per item and/or answer; the request goes back to
"requested", marked "information received" until staff act on it. One reminder goes out
``ASK_REMINDER_DAYS`` after the ask, once, whatever runs the job.

The checklist's default items are here (``DEFAULT_ITEMS``, translated like every other text
a patient reads); admins switch items off and add the clinic's own on the settings page
(``ChecklistItem`` rows). Each workflow function (``ask_patient``, ``withdraw_ask``,
``answer_ask``, ``mark_reviewed``) is one transaction; the dashboard's record and the
patient's private page call them. A request confirmed, declined or cancelled while it waits
withdraws its ask (``close_open_asks``, from ``lifecycle.record_change``).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from flask import current_app
from flask_babel import force_locale, get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import JSON, ForeignKey, String, UniqueConstraint, func, select, update
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError
from sqlalchemy.orm import Mapped, mapped_column, relationship

from booking.audit.services import record
from booking.crypto import EncryptedText
from booking.documents.models import Document
from booking.documents.storage import (
    DocumentUpload,
    failed_before_writing,
    refuse_held,
    saved_before_locking,
    stored_after_all,
)
from booking.extensions import db
from booking.forms import has_visible_text
from booking.notifications.services import enqueue_delivery, enqueue_still_to_go, queue_each
from booking.requests import emails
from booking.requests.events import EventKind
from booking.requests.files import named_by_rows, no_room_for
from booking.requests.lifecycle import (
    add_event,
    check_may_work,
    check_transition,
    record_change,
    snapshot,
)
from booking.requests.models import ConsultationRequest, RequestStatus, may_be_contacted
from booking.requests.queries import lock_request
from booking.timeutil import UTCDateTime, now_utc

if TYPE_CHECKING:
    from flask_babel.speaklater import LazyString

    from booking.staff.models import StaffUser

log = logging.getLogger(__name__)

# The clinic's checklist until an admin changes it (issue #17): what a spine specialist
# most often needs before the consultation.
DEFAULT_ITEMS: dict[str, Any] = {
    "imaging_report": _l("MRI or CT report from the last 12 months"),
    "referral_letter": _l("Referral letter"),
    "operation_notes": _l("Notes of earlier operations"),
    "medication_list": _l("List of medicines"),
}
CODE_RE = re.compile(r"^[a-z][a-z0-9_]{1,39}$")
QUESTION_MAX = 1000
ANSWER_MAX = 5000


class ChecklistItem(db.Model):
    """The clinic's change to its checklist: a default item switched off (``active`` false,
    no label), or an item of its own, with its label in each language it was given."""

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    # {"en": "...", "es": "..."}: None for a default item (its label is translated in code).
    labels: Mapped[dict[str, str] | None] = mapped_column(JSON)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)

    name_keys: Mapped[list[ChecklistItemName]] = relationship(cascade="all, delete-orphan")


class ChecklistItemName(db.Model):
    """An item's label in one language as ``add_item`` compares labels (``name_key``: spaces
    collapsed, case folded), a row per language it was given in. Unique per language: two
    admins adding an item named alike at the same moment both get past ``add_item``'s check,
    and the database refuses the second. (An item named like an earlier one before this table
    was made has no row for that language: migration d6c32616abfa.)"""

    item_id: Mapped[int] = mapped_column(
        ForeignKey("checklist_item.id", ondelete="CASCADE"), primary_key=True
    )
    language: Mapped[str] = mapped_column(String(10), primary_key=True)
    # Case folding may lengthen a label (up to three letters for one): the form's 200, thrice.
    key: Mapped[str] = mapped_column(String(600))

    __table_args__ = (UniqueConstraint("language", "key"),)


class InformationRequest(db.Model):
    """One request for information: what staff asked, and what the patient answered."""

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(
        ForeignKey("consultation_request.id", ondelete="CASCADE"), index=True
    )
    asked_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id"))
    asked_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)
    # The checklist items asked, as they read when asked: [{"code", "labels"}].
    items: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    # Free text can hold medical details: encrypted at rest like documents.
    question: Mapped[str | None] = mapped_column(EncryptedText)
    answer: Mapped[str | None] = mapped_column(EncryptedText)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The one-time key of the form the answer was sent with (``SubmissionKeyField``), unique:
    # a page sent twice is answered once, and a send whose commit's answer was lost is found.
    # None while unanswered, and for answers sent before keys.
    answer_key: Mapped[str | None] = mapped_column(String(64), unique=True, index=True)
    withdrawn_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Set once, by a conditional update, in the transaction that queues the reminder.
    reminded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    asked_by: Mapped[StaffUser | None] = relationship()
    request: Mapped[ConsultationRequest] = relationship()

    @property
    def is_open(self) -> bool:
        return self.answered_at is None and self.withdrawn_at is None

    def item_labels(self, locale: str | None = None) -> list[str]:
        """The items asked, in ``locale`` (the current language when None)."""
        return [label_of(item["code"], item.get("labels"), locale) for item in self.items]


@dataclass(frozen=True)
class Item:
    """One checklist item as a page shows it."""

    code: str
    label: str
    active: bool = True
    default: bool = False


def label_of(code: str, labels: dict[str, str] | None, locale: str | None = None) -> str:
    """An item's label in ``locale``: a default item's translation, else the label the admin
    gave in that language, else in the clinic's."""
    if code in DEFAULT_ITEMS and not labels:
        if locale is None:
            return str(DEFAULT_ITEMS[code])
        with force_locale(locale):
            return str(DEFAULT_ITEMS[code])
    labels = labels or {}
    clinic = current_app.config["BABEL_DEFAULT_LOCALE"]
    if locale is None:  # the reader's language
        locale = str(get_locale() or clinic)
    return labels.get(locale) or labels.get(clinic) or next(iter(labels.values()), code)


def checklist(*, include_inactive: bool = False) -> list[Item]:
    """The clinic's checklist: the default items (unless switched off), then its own."""
    rows = {row.code: row for row in db.session.scalars(select(ChecklistItem))}
    items = []
    for code in DEFAULT_ITEMS:
        row = rows.pop(code, None)
        active = row is None or row.active
        if active or include_inactive:
            items.append(Item(code, label_of(code, None), active, default=True))
    for row in sorted(rows.values(), key=lambda r: r.id):
        if row.active or include_inactive:
            items.append(Item(row.code, label_of(row.code, row.labels), row.active))
    return items


def snapshot_items(codes: list[str]) -> list[dict[str, Any]]:
    """The asked items as stored on the ask: a later change of the checklist does not change
    what the patient was asked."""
    rows = {row.code: row for row in db.session.scalars(select(ChecklistItem))}
    return [{"code": code, "labels": rows[code].labels if code in rows else None} for code in codes]


def open_ask(consultation: ConsultationRequest) -> InformationRequest | None:
    return db.session.scalar(
        select(InformationRequest)
        .where(
            InformationRequest.request_id == consultation.id,
            InformationRequest.answered_at.is_(None),
            InformationRequest.withdrawn_at.is_(None),
        )
        .order_by(InformationRequest.id.desc())
        .limit(1)
    )


def close_open_asks(consultation: ConsultationRequest) -> None:
    """The request stopped waiting for the patient some other way (confirmed, declined or
    cancelled): its open ask is withdrawn."""
    db.session.execute(
        update(InformationRequest)
        .where(
            InformationRequest.request_id == consultation.id,
            InformationRequest.answered_at.is_(None),
            InformationRequest.withdrawn_at.is_(None),
        )
        .values(withdrawn_at=now_utc())
        .execution_options(synchronize_session="fetch")
    )


def asks_of(consultation: ConsultationRequest) -> list[InformationRequest]:
    """Every ask of the request, the latest first."""
    return list(
        db.session.scalars(
            select(InformationRequest)
            .where(InformationRequest.request_id == consultation.id)
            .order_by(InformationRequest.id.desc())
        )
    )


@dataclass(frozen=True)
class AnsweredAsk:
    """An ask the patient answered, as their private page shows it afterwards: what the
    clinic asked, when, and what the patient sent (their answer and the files' names)."""

    asked_at: datetime
    answered_at: datetime
    items: list[str]
    question: str | None
    answer: str | None
    files: list[Document]


def answered_asks(consultation: ConsultationRequest) -> list[AnsweredAsk]:
    """The request's answered asks, the latest first, each with the documents sent with it:
    those filed for an item (``checklist_item``) at the moment of its answer (``answer_ask``
    stores both with one time)."""
    answered = [ask for ask in asks_of(consultation) if ask.answered_at is not None]
    if not answered:
        return []
    sent = [doc for doc in consultation.documents if doc.checklist_item is not None]
    return [
        AnsweredAsk(
            asked_at=ask.asked_at,
            answered_at=ask.answered_at,
            items=ask.item_labels(),
            question=ask.question,
            answer=ask.answer,
            files=[doc for doc in sent if doc.uploaded_at == ask.answered_at],
        )
        for ask in answered
        if ask.answered_at is not None
    ]


@dataclass(frozen=True)
class ChecklistRow:
    """One checklist item on the record: whether a document for it is present (not removed
    by the virus scan), and when it was last asked for."""

    code: str
    label: str
    documents: list[Document]
    asked_at: datetime | None
    waiting: bool


def checklist_rows(
    consultation: ConsultationRequest, asks: list[InformationRequest], current: list[Item]
) -> list[ChecklistRow]:
    """The clinic's checklist (``current``: ``checklist()``) for this request, with the items
    asked that left it since."""
    items = {item.code: item.label for item in current}
    for ask in reversed(asks):
        for entry in ask.items:
            items.setdefault(entry["code"], label_of(entry["code"], entry.get("labels")))
    rows = []
    for code, label in items.items():
        asked = [ask for ask in asks if any(e["code"] == code for e in ask.items)]
        rows.append(
            ChecklistRow(
                code=code,
                label=label,
                # A file the virus scan removed is not present: the clinic may ask again.
                documents=[d for d in consultation.kept_documents if d.checklist_item == code],
                asked_at=asked[0].asked_at if asked else None,
                waiting=bool(asked) and asked[0].is_open,
            )
        )
    return rows


@dataclass(frozen=True)
class UnaskedDocuments:
    """The request's documents sent for no checklist item (those the virus scan removed left
    out): any may be an item the clinic would ask for."""

    with_request: int  # sent with the request itself
    added_later: int  # added since by the patient: on their private page, with a message

    @property
    def total(self) -> int:
        return self.with_request + self.added_later


def unasked_documents(consultation: ConsultationRequest) -> UnaskedDocuments:
    """How many of the request's kept documents carry no checklist item, those sent with the
    request (stored by its submission: uploaded by then) apart from those the patient added
    later (through their private link, or attached to a message)."""
    unasked = [d for d in consultation.kept_documents if d.checklist_item is None]
    with_request = sum(
        d.message_id is None and d.uploaded_at <= consultation.created_at for d in unasked
    )
    return UnaskedDocuments(with_request, len(unasked) - with_request)


def send_due_reminders(now: datetime | None = None) -> list[int]:
    """Remind each patient once of an ask still open ``ASK_REMINDER_DAYS`` after it; return
    the outbox ids queued. The ask is marked reminded by a conditional update in the same
    transaction as the email, so two workers (or a run after the worker was down) send one."""
    days = current_app.config["ASK_REMINDER_DAYS"]
    if not days:
        return []
    now = now or now_utc()
    due = db.session.scalars(
        select(InformationRequest.id)
        .where(
            InformationRequest.answered_at.is_(None),
            InformationRequest.withdrawn_at.is_(None),
            InformationRequest.reminded_at.is_(None),
            InformationRequest.asked_at <= now - timedelta(days=days),
            # Not to a patient who withdrew their consent to be contacted (booking.rights), nor
            # to one marked deceased.
            InformationRequest.request.has(may_be_contacted()),
        )
        .order_by(InformationRequest.id)
    ).all()
    db.session.commit()
    queued = queue_each(due, lambda ask_id: _remind(ask_id, now), "reminder of ask %s", log)
    if queued:
        log.info("queued %d reminder(s) of requests for information", len(queued))
    return queued


def _remind(ask_id: int, now: datetime) -> int | None:
    """Claim one ask's reminder and write its email, in one transaction; the outbox id, or
    None when another worker took it."""
    # Checked again as it is claimed: answered, withdrawn or no longer to be contacted
    # since the job's read, it gets no reminder.
    claimed = db.session.execute(
        update(InformationRequest)
        .where(
            InformationRequest.id == ask_id,
            InformationRequest.reminded_at.is_(None),
            InformationRequest.answered_at.is_(None),
            InformationRequest.withdrawn_at.is_(None),
            InformationRequest.request.has(may_be_contacted()),
        )
        .values(reminded_at=now)
    ).rowcount
    if not claimed:  # another worker took it
        db.session.rollback()
        return None
    ask = db.session.get(InformationRequest, ask_id)
    email = emails.information_reminder(ask.request) if ask is not None else None
    db.session.commit()
    return email.id if email is not None else None


class AskError(ValueError):
    """A refused ask or answer; the message is for the person who tried."""


class ItemNameTakenError(AskError):
    """A new checklist item named like another in ``language``: the name in that language is
    the one to change (the form shows the refusal at it)."""

    def __init__(self, message: str, language: str) -> None:
        super().__init__(message)
        self.language = language


class AskChanged(AskError):  # noqa: N818 - the event the patient is told about
    """The patient answered an ask the clinic has replaced since their page showed it."""


def ask_patient(
    consultation: ConsultationRequest, actor: StaffUser, codes: list[str], question: str | None
) -> InformationRequest:
    """Ask the patient for the checklist items ``codes`` and/or ``question``: the request
    waits for the patient, who is emailed (only that something is needed) with their link.
    One transaction."""
    consultation = lock_request(consultation)
    check_may_work(consultation, actor)
    question = (question or "").strip() or None
    known = {item.code for item in checklist()}
    codes = [code for code in dict.fromkeys(codes) if code in known]
    if not codes and not question:
        raise AskError(_("Please tick what the patient should send, or write a question."))
    if consultation.status != RequestStatus.REQUESTED:
        raise AskError(
            _("Only a request that is not confirmed yet can wait for the patient's answer.")
        )
    check_transition(consultation, RequestStatus.AWAITING_PATIENT, actor)
    if not consultation.patient.email:
        raise AskError(_("The patient left no email address: please call them instead."))
    if consultation.patient.deceased_at is not None:  # nothing more goes to the address
        raise AskError(_("The patient is marked deceased: nothing is sent to them."))
    before = snapshot(consultation)
    ask = InformationRequest(
        request_id=consultation.id,
        asked_by_id=actor.id,
        asked_at=now_utc(),
        items=snapshot_items(codes),
        question=question,
    )
    db.session.add(ask)
    consultation.status = RequestStatus.AWAITING_PATIENT
    consultation.information_received_at = None
    email = record_change(
        consultation,
        action="information_asked",
        actor=actor,
        before=before,
        note=_("Asked the patient for: %(items)s", items=_items_text(ask, question)),
        email_kind="information_needed",
        audit_extra={"items": codes, "question": bool(question)},
    )
    db.session.commit()
    enqueue_delivery([email.id] if email is not None else [])
    return ask


def _items_text(ask: InformationRequest, question: str | None) -> str:
    clinic = current_app.config["BABEL_DEFAULT_LOCALE"]
    parts = ask.item_labels(clinic)
    if question:
        parts.append(_("a question"))
    return ", ".join(parts)


def withdraw_ask(consultation: ConsultationRequest, actor: StaffUser) -> None:
    """Stop waiting for the patient (staff no longer need it): back to "requested". The
    patient, who was emailed the ask (and perhaps a reminder), is emailed that nothing more
    is needed; their page no longer asks."""
    consultation = lock_request(consultation)
    check_may_work(consultation, actor)
    ask = open_ask(consultation)
    if ask is None or consultation.status != RequestStatus.AWAITING_PATIENT:
        raise AskError(_("This request is not waiting for the patient."))
    check_transition(consultation, RequestStatus.REQUESTED, actor)
    before = snapshot(consultation)
    ask.withdrawn_at = now_utc()
    consultation.status = RequestStatus.REQUESTED
    email = record_change(
        consultation,
        action="information_ask_withdrawn",
        actor=actor,
        before=before,
        note=_("The request for information was withdrawn."),
        email_kind="information_withdrawn",
    )
    db.session.commit()
    enqueue_delivery([email.id] if email is not None else [])


REVIEWED_NOTE = _l("Marked the information the patient sent as reviewed.")


def mark_reviewed(
    consultation: ConsultationRequest, actor: StaffUser, seen_received_at: datetime | None
) -> None:
    """Staff looked at what the patient sent: the "information received" mark ends, on the
    timeline and in the audit. ``seen_received_at`` is the mark the page showed: an answer
    that arrived since (the patient answered again) is refused (``AskError``), so a page
    opened earlier never clears the mark of an answer nobody has looked at. Already cleared
    (a colleague reviewed it), nothing changes."""
    consultation = lock_request(consultation)
    check_may_work(consultation, actor)
    received_at = consultation.information_received_at
    if received_at is None:
        db.session.commit()
        return
    if received_at != seen_received_at:
        raise AskError(
            _(
                "The patient sent more information after you opened this page. Nothing was "
                "marked: look at what they sent, then mark it as reviewed."
            )
        )
    consultation.information_received_at = None
    add_event(
        consultation,
        kind=EventKind.NOTE,
        actor=actor,
        body=emails.in_staff_language(REVIEWED_NOTE),
    )
    record(
        "information_reviewed",
        target_type="request",
        target_id=consultation.reference,
        actor=actor,
        details={"received_at": received_at.isoformat()},
    )
    db.session.commit()


def _open_ask_with_room(
    consultation: ConsultationRequest, ask_id: int | None, adding: int
) -> InformationRequest:
    """The ask the patient answers (``ask_id``, the one their page showed), if the request
    still waits for it and has room for the files; else ``AskError``: ``AskChanged`` when
    another ask is open now (staff withdrew the one shown and asked something else), whose
    items the files would be filed under and whose question the answer would answer."""
    ask = open_ask(consultation)
    if ask is None or consultation.status != RequestStatus.AWAITING_PATIENT:
        raise AskError(_("We are not waiting for anything from you at the moment."))
    if ask.id != ask_id and not (ask_id is None and _only_ask(consultation)):
        raise AskChanged(
            _(
                "The clinic has changed what it is asking you for since you opened this page. "
                "Please read it again below, and send your answer and any files again."
            )
        )
    if (full := no_room_for(consultation, adding)) is not None:
        raise AskError(full)
    return ask


def _only_ask(consultation: ConsultationRequest) -> bool:
    """Whether the request has had one ask only: a page that names no ask (shown before the
    form carried one) can then show no other than the one open now (an earlier one, answered
    or withdrawn, it could)."""
    asked = db.session.scalar(
        select(func.count())
        .select_from(InformationRequest)
        .where(InformationRequest.request_id == consultation.id)
    )
    return asked == 1


def answer_ask(
    consultation: ConsultationRequest,
    ask_id: int | None,
    files: list[tuple[str, DocumentUpload]],
    answer: str | None,
    *,
    key: str | None = None,
) -> int:
    """The patient's answer to the ask ``ask_id`` (the one their page showed) from their
    private page: a file per item asked (``(code, upload)`` pairs) and/or text. All or
    nothing: the files, the answer, the request back to "requested" marked "information
    received", the timeline, the audit row, the patient's receipt and the clinic's notice in
    one transaction; a refused file (one the request
    already holds, or the same file twice, included: ``refuse_held``) stores nothing.
    The files are checked, scanned and stored before the request is locked (the scanner may
    take ``CLAMAV_TIMEOUT`` per file); the ask, the room left and the files kept are checked
    again under the lock.

    ``key`` is the one-time key of the form it was written on (``answer_key``, unique): an
    answer already sent with it (the page sent twice: a double click, Back and send again)
    is that answer, nothing stored again. The database failing raises (``OperationalError``,
    ``InterfaceError``; ``stored_after_all`` says whether it was found not stored, the files
    deleted, or no one could say; failing in the checks before anything is written, not
    stored), unless the answer is found stored after all (the commit's answer was lost), by
    its key (else by its files): that is the answer sent, its emails handed to the queue
    then."""
    answer = (answer or "").strip() or None
    if not files and not answer:
        raise AskError(_("Please choose a file or write your answer."))
    request_id = consultation.id  # the session is rolled back (and expired) on a failure
    try:
        if key is not None and answered_with(request_id, key):
            return len(files)
        _open_ask_with_room(consultation, ask_id, len(files))  # a refused answer costs no scan
    except (OperationalError, InterfaceError) as failure:
        failed_before_writing(failure)
        raise
    uploads = [upload for _code, upload in files]

    def found() -> bool:
        return key is not None and answered_with(request_id, key)

    try:
        with saved_before_locking(
            uploads, named=named_by_rows, found=None if key is None else found
        ) as stored:
            consultation = lock_request(consultation)
            if key is not None and answered_with(request_id, key):
                # Answered meanwhile by the same page (the first of a double click, committed
                # while this one's files were scanned): its files are deleted on the way out.
                raise _AnsweredMeanwhile
            ask = _open_ask_with_room(consultation, ask_id, len(files))
            refuse_held(stored, uploads, consultation.documents)
            now = now_utc()
            for (code, upload), file in zip(files, stored, strict=True):
                db.session.add(
                    Document.of_upload(
                        upload, file, now, request_id=consultation.id, checklist_item=code
                    )
                )
            before = snapshot(consultation)
            ask.answer = answer
            ask.answered_at = now
            ask.answer_key = key
            consultation.status = RequestStatus.REQUESTED
            consultation.information_received_at = now
            receipt = record_change(
                consultation,
                action="information_received",
                actor=None,
                before=before,
                note=emails.in_staff_language(
                    _l("The patient answered the request for information.")
                ),
                email_kind="information_received",
                audit_extra={
                    "documents": len(files),
                    "items": [code for code, _upload in files],
                    "answered": bool(answer),
                },
            )
            notice = emails.clinic_notice(
                consultation, _l("information received"), _received_detail(ask, files, answer)
            )
            db.session.commit()
    except _AnsweredMeanwhile:
        return len(files)
    except (OperationalError, InterfaceError) as failure:
        if not stored_after_all(failure):
            raise
        enqueue_still_to_go(request_id)
        return len(files)
    enqueue_delivery([e.id for e in (receipt, notice) if e is not None])
    return len(files)


class _AnsweredMeanwhile(Exception):  # noqa: N818 - reads better at the call site
    """An answer whose key another send of the same page stored meanwhile."""


def answered_with(request_id: int, key: str) -> bool:
    """Whether an ask of the request was answered with the form's one-time ``key``."""
    return (
        db.session.scalar(
            select(InformationRequest.id).where(
                InformationRequest.request_id == request_id,
                InformationRequest.answer_key == key,
            )
        )
        is not None
    )


def _received_detail(
    ask: InformationRequest, files: list[tuple[str, DocumentUpload]], answer: str | None
) -> LazyString:
    """What the clinic's notice says the patient sent: "what the clinic asked for" only when
    each item asked came with its file; else how many did, so nobody takes the request as
    complete before reading the record (the patient may have written that they have none)."""
    asked = {item["code"] for item in ask.items}
    sent = asked & {code for code, _upload in files}
    if sent == asked:
        return _l("The patient sent what the clinic asked for.")
    # "sent: 1 of 2", never "1 of the 1 items": right for any count, with no plural forms.
    if answer:
        return _l(
            "Items asked for that the patient sent: %(sent)d of %(asked)d. They also wrote "
            "an answer: read it on the record.",
            sent=len(sent),
            asked=len(asked),
        )
    return _l(
        "Items asked for that the patient sent: %(sent)d of %(asked)d.",
        sent=len(sent),
        asked=len(asked),
    )


def add_item(labels: dict[str, str], actor: StaffUser) -> ChecklistItem:
    """An item of the clinic's own, labelled in each language given (the clinic's first). Its
    name in each language reads apart from every other item's there (case and spacing aside),
    the default items' too; an item another admin adds at the same moment is refused alike
    (the database holds each name unique in its language: ``ChecklistItemName``). Refused by
    the database three times over (admins adding items that keep taking its code), it is
    refused with nothing stored: the admin tries again."""
    # Spaces collapsed, and a name of nothing visible (a zero-width space) is no name: each
    # would show as a blank or twice-listed item to staff and patients.
    labels = {
        lang: " ".join(text.split())
        for lang, text in labels.items()
        if text and has_visible_text(text)
    }
    clinic = current_app.config["BABEL_DEFAULT_LOCALE"]
    if not labels.get(clinic):
        raise AskError(_("Please enter the item's name."))
    for attempt in range(3):
        items = _stored_items()
        for lang in sorted(labels, key=lambda code: code != clinic):  # the clinic's name first
            if name_key(labels[lang]) in _names_in(lang, items):
                raise ItemNameTakenError(
                    _("The checklist already has an item with this name."), lang
                )
        item = ChecklistItem(
            code=valid_code(labels[clinic], items),
            labels=labels,
            active=True,
            name_keys=[ChecklistItemName(language=k, key=name_key(v)) for k, v in labels.items()],
        )
        db.session.add(item)
        try:
            db.session.flush()
            break
        except IntegrityError:
            # Another admin's item was committed after ``items`` were read: its name in some
            # language, or the code made from it, is this one's. Read again: a name taken is
            # refused as above, a code taken is passed over.
            db.session.rollback()
            if attempt == 2:
                raise AskError(
                    _(
                        "Another admin changed the checklist at the same moment: nothing was "
                        "saved. Please try again."
                    )
                ) from None
    record(
        "checklist_item_added",
        target_type="checklist_item",
        target_id=item.code,
        actor=actor,
        details={"labels": labels},
    )
    db.session.commit()
    return item


def name_key(label: str) -> str:
    """A label as items' labels are compared: spaces collapsed, case folded."""
    return " ".join(label.split()).casefold()


def _stored_items() -> list[ChecklistItem]:
    """The checklist's rows: the items of the clinic's own, and the default ones switched off."""
    return list(db.session.scalars(select(ChecklistItem)))


def _names_in(locale: str, items: list[ChecklistItem]) -> set[str]:
    """Every item's name in ``locale`` (switched-off ones too) as ``name_key``: a default
    item's translation, an item of the clinic's own by the name given in that language."""
    names = {name_key(label_of(code, None, locale)) for code in DEFAULT_ITEMS}
    names |= {name_key(row.labels[locale]) for row in items if (row.labels or {}).get(locale)}
    return names


def set_item_active(code: str, active: bool, actor: StaffUser) -> None:
    """Switch an item of the checklist off or on (a default item gets its row then)."""
    row = db.session.scalar(select(ChecklistItem).where(ChecklistItem.code == code))
    if row is None:
        if code not in DEFAULT_ITEMS:
            raise AskError(_("There is no such item."))
        row = ChecklistItem(code=code, labels=None, active=not active)
        db.session.add(row)
    if row.active == active:  # pressed twice (two tabs): nothing changes, nothing to audit
        db.session.rollback()
        return
    row.active = active
    db.session.flush()
    record(
        "checklist_item_switched_on" if active else "checklist_item_switched_off",
        target_type="checklist_item",
        target_id=code,
        actor=actor,
        details={"active": {"before": not active, "after": active}},
    )
    db.session.commit()


def valid_code(label: str, items: list[ChecklistItem]) -> str:
    """A code for a new item of the clinic's own, from its label, taken by none of ``items``
    (the stored ones) nor of the default items."""
    base = re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")[:30] or "item"
    if not base[0].isalpha():
        base = f"item_{base}"[:30]
    taken = {row.code for row in items} | set(DEFAULT_ITEMS)
    code, n = base, 2
    while code in taken:
        code, n = f"{base}_{n}", n + 1
    return code


__all__ = [
    "ANSWER_MAX",
    "DEFAULT_ITEMS",
    "QUESTION_MAX",
    "ChecklistItem",
    "ChecklistItemName",
    "InformationRequest",
]
