"""A patient's request while they fill it in, step by step: saved on the server at every step.

A draft holds the answers given so far (the form's raw values by field name, as a browser
posts them, encrypted at rest like the documents) and the documents uploaded so far (checked
by content and stored encrypted as they are chosen). A reload, a lost connection, the browser's
Back button or an expired form loses nothing: the next page is built from the draft.

Who may open a draft: the browser that started it holds a random token in its session; the
database keeps only the token's SHA-256 (as for the patients' private links). "Finish later"
emails a private resume link whose token is kept the same way; opening it gives the browser a
new token and ends the old one.

A draft becomes a request exactly once: it carries the one-time submission token the request
is stored with (``ConsultationRequest.submission_token`` is unique), and the transaction that
stores the request also marks the draft as sent and hands its documents to the request. A
second send (Back after sending, two clicks, two tabs) finds the request stored by the first.

Drafts expire ``DRAFT_DAYS`` after their last change; ``purge_expired_drafts`` (the worker's
daily job) deletes them with their files. A sent draft keeps no answers, only the link to its
request, until it expires too.
"""

from __future__ import annotations

import functools
import json
import logging
import secrets
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from flask import current_app
from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy import ForeignKey, Select, String, bindparam, delete, select
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Mapped, mapped_column, relationship, selectinload

from booking.crypto import EncryptedText, text_digest
from booking.documents.models import StoredDocument, kept
from booking.documents.storage import (
    DocumentUpload,
    get_storage,
    refuse_kept,
    saved_before_locking,
    stored_after_all,
)
from booking.extensions import db
from booking.notifications.models import OutboxEmail
from booking.notifications.services import enqueue_delivery, queue_email
from booking.requests import triage
from booking.timeutil import UTCDateTime, now_utc
from booking.urlargs import public_url

if TYPE_CHECKING:
    from booking.requests.models import ConsultationRequest

log = logging.getLogger(__name__)

TOKEN_BYTES = 32
# Each answer is kept whole up to this many characters (the longest field takes 2,000): a
# longer one is refused on its step with a message, and what is saved is cut here.
MAX_ANSWER_CHARS = 5000
# Expired drafts deleted per transaction (``purge_expired_drafts``).
DRAFT_PURGE_BATCH = 100

Answers = dict[str, list[str]]


RESUME_EMAILS = 5  # "finish later" emails per draft


class RequestDraft(db.Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    # SHA-256 of the browser's token, hex; a copy of the database opens no draft.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # SHA-256 of the "finish later" link's token, while one was sent.
    resume_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    # "Finish later" emails sent for this draft: at most RESUME_EMAILS, so the form cannot be
    # used to send the clinic's emails to address after address.
    resume_emails: Mapped[int] = mapped_column(default=0, server_default="0")
    # The request is stored with this token: a draft is sent once (see the module's docstring).
    submission_token: Mapped[str] = mapped_column(String(64), unique=True)
    locale: Mapped[str] = mapped_column(String(10))
    # JSON {field name: [values]}: what the patient's browser posted, step by step.
    answers: Mapped[str] = mapped_column(EncryptedText)
    # The furthest step reached (``booking.patients.steps``), where a resumed draft opens.
    step: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    request_id: Mapped[int | None] = mapped_column(
        ForeignKey("consultation_request.id", ondelete="SET NULL"), unique=True
    )

    documents: Mapped[list[DraftDocument]] = relationship(
        back_populates="draft",
        cascade="all, delete-orphan",
        order_by="DraftDocument.id",
        passive_deletes=True,
    )
    request: Mapped[ConsultationRequest | None] = relationship()

    @property
    def kept_documents(self) -> list[DraftDocument]:
        """Its documents but those the virus scan removed (``documents.models.kept``): what
        counts toward ``MAX_DOCUMENTS``."""
        return kept(self.documents)

    def values(self) -> Answers:
        """The answers saved so far, by field name."""
        loaded = json.loads(self.answers or "{}")
        return loaded if isinstance(loaded, dict) else {}


class DraftDocument(StoredDocument, db.Model):
    """A document uploaded into a draft: checked and stored, waiting for the request."""

    id: Mapped[int] = mapped_column(primary_key=True)
    draft_id: Mapped[int] = mapped_column(
        ForeignKey("request_draft.id", ondelete="CASCADE"), index=True
    )

    draft: Mapped[RequestDraft] = relationship(back_populates="documents")


class DraftFull(ValueError):  # noqa: N818 - reads better at the call sites
    """The draft already holds as many documents as one request may have."""


class DraftSent(ValueError):  # noqa: N818 - reads better at the call sites
    """The draft was sent (in another tab) while this change was on its way."""


def lock_draft(draft: RequestDraft, documents: bool = True) -> RequestDraft:
    """Re-read a draft (with its documents) and lock its row for the rest of this transaction
    (PostgreSQL; SQLite's BEGIN IMMEDIATE already serialises writers): a change is merged
    into what another tab saved since, and a draft sent meanwhile is seen as sent. Sending
    locks it too, so a file is either in the request or refused, never left on a sent draft."""
    query = select(RequestDraft).where(RequestDraft.id == draft.id)
    if documents:
        query = query.options(selectinload(RequestDraft.documents))
    return db.session.scalars(
        query.with_for_update().execution_options(populate_existing=True)
    ).one()


def _expiry(now: datetime) -> datetime:
    return now + timedelta(days=current_app.config["DRAFT_DAYS"])


# The urgent-symptom flags the patient answered "yes" and later changed to "no", kept in the
# draft (not a "red_" answer: the first step's answers are those) so the clinic is told when
# the request is sent (``booking.patients.services``).
WITHDRAWN_RED_FLAGS = "withdrawn_red_flags"


def withdrawn_red_flags(answers: Answers) -> list[str]:
    return [code for code in answers.get(WITHDRAWN_RED_FLAGS, []) if code]


def _clean(answers: Answers) -> Answers:
    return {
        str(name)[:64]: [str(value)[:MAX_ANSWER_CHARS] for value in values][:20]
        for name, values in answers.items()
    }


def start_draft(locale: str, answers: Answers, step: str) -> tuple[RequestDraft, str]:
    """A new draft with its first answers; returns it and the token for the browser. If the
    database fails (or its answer to the commit is lost), the transaction is rolled back
    before the error is raised, as ``save_answers`` does: the caller may show the page again.
    A draft whose commit was made is then one no browser holds, and expires unread."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    now = now_utc()
    draft = RequestDraft(
        token_hash=text_digest(token),
        submission_token=secrets.token_urlsafe(TOKEN_BYTES),
        locale=locale[:10],
        answers=json.dumps(_clean(answers)),
        step=step,
        created_at=now,
        updated_at=now,
        expires_at=_expiry(now),
    )
    try:
        db.session.add(draft)
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    return draft, token


def find_draft(token: object, documents: bool = True) -> RequestDraft | None:
    """The draft a browser's token opens, unless it expired (a sent one included); with its
    documents, or (``documents=False``, for a page that does not show them) in one query."""
    if not isinstance(token, str) or not token or len(token) > 100:
        return None
    try:
        draft = db.session.scalar(_by_token(documents), {"token_hash": text_digest(token)})
    except BaseException:  # (the database failed: the session is ready for its next use)
        db.session.rollback()
        raise
    if draft is None or draft.expires_at <= now_utc():
        return None
    return draft


@functools.cache
def _by_token(documents: bool) -> Select[tuple[RequestDraft]]:
    """``find_draft``'s statement, built once: SQLAlchemy works out a new statement's cache
    key on every execution, a tenth of a step page's time (issue #16's speed)."""
    query = select(RequestDraft).where(RequestDraft.token_hash == bindparam("token_hash"))
    return query.options(selectinload(RequestDraft.documents)) if documents else query


def save_answers(
    draft: RequestDraft,
    answers: Answers,
    step: str | None = None,
    *,
    rank: Callable[[str], int] | None = None,
) -> None:
    """Replace the named answers (the fields of one step) and note the furthest step reached.
    A sent draft is not changed. With ``rank`` (the steps' order), the step noted only moves
    forward: the caller worked it out from the draft as it read it, and another tab may have
    gone further since (a step not reached does not open, so going back would shut the
    patient out of the page that tab shows).

    If the database fails (or its answer to the commit is lost), the transaction is rolled
    back before the error is raised: nothing is half stored, and the caller may show the
    page again with what was typed. Saving the same answers again is harmless."""
    try:
        draft = lock_draft(draft, documents=False)  # another tab's answers saved since are kept
        if draft.sent_at is not None:
            db.session.rollback()
            return
        merged = draft.values() | _clean(answers)
        now = now_utc()
        draft.answers = json.dumps(merged)
        if step is not None and (rank is None or rank(step) >= rank(draft.step)):
            draft.step = step
        draft.updated_at = now
        draft.expires_at = _expiry(now)
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise


def add_document(draft: RequestDraft, upload: DocumentUpload) -> DraftDocument:
    """Check and store one upload in the draft. Raises ``DocumentRejected`` (a message for the
    patient), ``DraftFull``, ``DraftSent``, or ``OSError`` when storage fails; nothing is kept
    then. The database failing raises too (``OperationalError``, ``InterfaceError``;
    ``stored_after_all`` says whether the file was deleted), unless the document is found
    stored after all (the commit's answer was lost): it is then the one returned."""
    if len(draft.kept_documents) >= current_app.config["MAX_DOCUMENTS"]:
        raise DraftFull
    # (Imported here: ``files`` reads this module's DraftDocument as it is imported.)
    from booking.requests.files import named_by_rows

    try:
        # No transaction held open while the file goes in and is scanned.
        with saved_before_locking([upload], named=named_by_rows) as [stored]:
            now = now_utc()
            # Checked again, locked, once the file is in: another tab may have sent the
            # request or added files meanwhile.
            draft = lock_draft(draft)
            if draft.sent_at is not None:
                raise DraftSent
            if len(draft.kept_documents) >= current_app.config["MAX_DOCUMENTS"]:
                raise DraftFull
            refuse_kept([stored], draft.documents)
            described = replace(upload, description=_description(upload.description))
            document = DraftDocument.of_upload(described, stored, now)
            draft.documents.append(document)
            draft.updated_at = now
            draft.expires_at = _expiry(now)
            db.session.commit()
    except (OperationalError, InterfaceError) as failure:
        found = (
            db.session.scalars(
                select(DraftDocument).where(DraftDocument.stored_name == stored.stored_name)
            ).first()
            if stored_after_all(failure)
            else None
        )
        if found is None:  # not stored, or no one can say (or the draft sent since)
            raise
        return found
    return document


MAX_DESCRIPTION_CHARS = 200


def _description(text: str | None) -> str | None:
    return (text or "").strip()[:MAX_DESCRIPTION_CHARS] or None


def describe_documents(draft: RequestDraft, descriptions: dict[int, str]) -> None:
    """Set what each listed document is (by id; an empty text clears it): with scripts a
    file goes up the moment it is chosen, so what it is can only be said, or corrected,
    once it is in the list. Documents not in this unsent draft are left alone. If the
    database fails, the transaction is rolled back before the error is raised."""
    if all(
        _description(descriptions[document.id]) == document.description
        for document in draft.documents
        if document.id in descriptions
    ):
        return  # nothing typed differs from what the page showed: no lock, no write
    try:
        draft = lock_draft(draft)
        changed = False
        if draft.sent_at is None:
            for document in draft.documents:
                if document.id in descriptions:
                    text = _description(descriptions[document.id])
                    if text != document.description:
                        document.description = text
                        changed = True
        if not changed:
            db.session.rollback()
            return
        draft.updated_at = now_utc()
        draft.expires_at = _expiry(draft.updated_at)
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise


def remove_document(draft: RequestDraft, document_id: int) -> bool:
    """Take one document out of an unsent draft and delete its file; False if not there.

    The draft is locked and read again first: sent from another tab since this page read it,
    its documents now belong to the request, and their files must stay. The file is deleted
    only once the row's removal is committed. If the database fails (or its answer to the
    commit is lost: the file is then left for the reconciliation), the transaction is rolled
    back before the error is raised."""
    try:
        draft = lock_draft(draft)
        document = next((d for d in draft.documents if d.id == document_id), None)
        if document is None or draft.sent_at is not None:
            db.session.rollback()
            return False
        name = document.stored_name
        draft.documents.remove(document)
        draft.updated_at = now_utc()
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    _remove_files([name])
    return True


def mark_sent(draft: RequestDraft, consultation: ConsultationRequest) -> None:
    """Inside the transaction that stores ``consultation``: the draft is sent, its documents
    now belong to the request (their files stay), and its answers are no longer kept."""
    draft.sent_at = now_utc()
    draft.request = consultation
    draft.answers = "{}"
    draft.resume_token_hash = None
    draft.documents.clear()


class TooManyResumeEmails(ValueError):  # noqa: N818 - reads better at the call site
    """The draft's "finish later" emails are used up."""


def send_resume_link(
    draft: RequestDraft,
    email: str,
    resume_path: str,
    locale: str,
    *,
    red_flags: Iterable[str],
) -> None:
    """Email a private link to carry on with the draft later (``resume_path`` with a new
    token's placeholder ``{token}``), in ``locale``: the language the patient reads now
    (they may have switched since they began). A new link ends the previous one. At most
    ``RESUME_EMAILS`` per draft (raises TooManyResumeEmails, nothing sent).

    ``red_flags``, the draft's first-step answers of "yes": an emergency or urgent patient
    reads the advice the form showed them again, first, and that nobody at the clinic knows
    until they send the request (they may never come back to it)."""
    if draft.resume_emails >= RESUME_EMAILS:
        raise TooManyResumeEmails(draft.id)
    draft.locale = locale[:10]
    draft.resume_emails += 1
    token = secrets.token_urlsafe(TOKEN_BYTES)
    draft.resume_token_hash = text_digest(token)
    with force_locale(draft.locale):
        subject = _("Your unfinished request: carry on where you left off")
    queued: OutboxEmail = queue_email(
        template="draft_resume",
        recipient=email,
        subject=subject,
        locale=draft.locale,
        resume_url=public_url(resume_path.format(token=token)),
        expires_at=draft.expires_at,
        advice=triage.advice_before_sending(red_flags),  # nothing is sent yet
    )
    db.session.flush()
    email_id = queued.id
    db.session.commit()
    enqueue_delivery([email_id])


def resume_link_draft(token: object) -> RequestDraft | None:
    """The draft a "finish later" link would open, while it still works; opening it is
    ``open_resume_link``'s (a look, as an email scanner's, ends nothing)."""
    if not isinstance(token, str) or not token or len(token) > 100:
        return None
    draft = db.session.scalar(
        select(RequestDraft).where(RequestDraft.resume_token_hash == text_digest(token))
    )
    if draft is None or draft.expires_at <= now_utc():
        return None
    return draft


def open_resume_link(token: object) -> tuple[RequestDraft, str] | None:
    """The draft a "finish later" link opens, with a new browser token (the old one ends).
    The link works once: opened again (by whoever was given it, after the patient has typed
    their answers) it would take the draft back with everything in it."""
    draft = resume_link_draft(token)
    if draft is None:
        return None
    browser_token = secrets.token_urlsafe(TOKEN_BYTES)
    draft.token_hash = text_digest(browser_token)
    draft.resume_token_hash = None
    db.session.commit()
    return draft, browser_token


def purge_expired_drafts(now: datetime | None = None, batch_size: int = DRAFT_PURGE_BATCH) -> int:
    """Delete drafts past their expiry with their documents' files; returns how many.

    In batches of ``batch_size``, each its own transaction (as the requests' retention does):
    after a long outage thousands may be due, and one transaction for all would hold the
    write lock (SQLite's whole database) for as long as they take, and lose all its work to
    one error near the end. The drafts of a batch are locked first (PostgreSQL; SQLite's
    BEGIN IMMEDIATE runs one writer at a time), skipping any another transaction holds: a
    draft being sent at that moment gives its documents to the request (``mark_sent``), and
    their files must not be removed from under it; a draft being saved has its expiry
    renewed. The files removed are those of the rows each batch deleted (RETURNING), after
    that batch commits."""
    cutoff = now or now_utc()
    purged = files = 0
    while True:
        try:
            ids = list(
                db.session.scalars(
                    select(RequestDraft.id)
                    .where(RequestDraft.expires_at <= cutoff)
                    .order_by(RequestDraft.id)
                    .limit(batch_size)
                    .with_for_update(skip_locked=True)
                )
            )
            if not ids:
                db.session.rollback()
                break
            names = list(
                db.session.scalars(
                    delete(DraftDocument)
                    .where(DraftDocument.draft_id.in_(ids))
                    .returning(DraftDocument.stored_name)
                )
            )
            db.session.execute(delete(RequestDraft).where(RequestDraft.id.in_(ids)))
            db.session.commit()
        except BaseException:
            db.session.rollback()
            raise
        _remove_files(names)
        purged += len(ids)
        files += len(names)
    if purged:
        log.info("purged %d expired request drafts (%d files)", purged, files)
    return purged


def _remove_files(names: list[str]) -> None:
    storage = get_storage()
    for name in names:
        try:
            storage.delete(name)
        except OSError:
            log.exception("could not remove a draft's file %s", name)
