"""Writing emails to the outbox and delivering them.

An email is composed and written to the outbox inside the transaction of the change it
reports, so a change is never stored without its email nor an email queued for a change that
was rolled back. The worker then delivers each row at most once per successful attempt: a row
is claimed by an atomic status update, and its Message-ID is fixed when it is written.

Delivery guarantee: at least once, and once in practice. A worker that dies before the mail
server has accepted a message leaves its claim, which lapses after MAIL_CLAIM_TIMEOUT_SECONDS;
the email is then sent again, and the server never had the first attempt. The acceptance is
recorded the moment the server replies, before QUIT. What cannot be made atomic is the server's
reply and our database write: a worker killed in that instant (or a database lost then) sends
the email a second time, with the same Message-ID, which mail clients use to show it once.
"""

from __future__ import annotations

import logging
import math
import smtplib
import socket
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.charset import QP, Charset
from email.message import EmailMessage
from email.mime.base import MIMEBase
from email.mime.text import MIMEText
from email.policy import compat32
from email.utils import formataddr, make_msgid, parseaddr
from itertools import chain, repeat
from typing import TypeVar
from urllib.parse import urlsplit

from blinker import Namespace
from flask import Flask, current_app, render_template
from flask_babel import force_locale
from flask_mail import Message, sanitize_address
from sqlalchemy import ColumnElement, and_, case, delete, func, or_, select, update
from sqlalchemy.exc import InvalidRequestError, SQLAlchemyError
from sqlalchemy.orm import aliased
from sqlalchemy.orm.exc import ObjectDeletedError, StaleDataError

from booking.accesslog import redact_other_sites, redact_text
from booking.crypto import DecryptionError, KeyMissingError
from booking.extensions import db, mail
from booking.notifications.models import WAITING, OutboxEmail, OutboxStatus
from booking.timeutil import now_utc

log = logging.getLogger(__name__)

K = TypeVar("K")


class _Message(Message):
    """Flask-Mail's message with its text parts (plain and HTML) quoted-printable.

    Flask-Mail sends them as 8-bit text, each line as long as it was written: a staff
    message of up to 1,000 characters is one line of the HTML part, past the 998 bytes a
    line of SMTP may have, and the server refuses the whole email ("500 Line too long"),
    for good. Quoted-printable keeps every line under 78 characters, is plain ASCII (no
    8BITMIME, which Flask-Mail never declares, is needed) and decodes to the same text.
    Set on each part rather than by ``email.charset.add_charset``, which changes the
    process-wide default that Flask-Mail's import sets, for every message built anywhere.

    An email with a calendar file also has it as the last alternative of its body
    (``add_calendar``): text/calendar with its METHOD, where Outlook and Gmail look for an
    invitation to show with its buttons. The attachment stays, for the other mail apps.
    """

    calendar_method: str | None = None

    def add_calendar(self, ics: str, method: str) -> None:
        self.calendar_method = method
        self.alts["calendar"] = ics  # after "html": Flask-Mail keeps the order given

    def _mimetext(self, text: str | None, subtype: str = "plain") -> MIMEText:
        charset = Charset("utf-8")
        charset.body_encoding = QP
        part = MIMEText(text or "", _subtype=subtype, _charset=charset)
        if subtype == "calendar" and self.calendar_method:
            part.set_param("method", self.calendar_method)
        return part

    def _message(self) -> MIMEBase:
        msg = super()._message()
        # policy.SMTP refuses a folded value; compat32, under which Flask-Mail wrote the
        # others, stores it as written, and policy.SMTP sends lines this short unchanged.
        smtp, msg.policy = msg.policy, compat32
        for header, address in (("From", self.sender), ("Reply-To", self.reply_to)):
            if address:
                msg.replace_header(header, _address_header(header, address))
        msg.policy = smtp
        return msg


# The longest header line the email library sends as it is given (policy.SMTP's
# max_line_length): a longer one it refolds. RFC 2047 keeps a line with encoded-words to 76.
_HEADER_LINE = 78
_ENCODED_LINE = 76


def _address_header(header: str, address: str | tuple[str, str]) -> str:
    """``address`` (the sender or the Reply-To, as configured: CLINIC_NAME's default or set
    by hand) for its header, folded here in lines short enough that the email library sends
    them as they are.

    Flask-Mail encodes a name in lines of 76 characters without counting "From: ", so with a
    name of some 60 characters (fewer with accents) the first line is too long, and the
    library refolds the header. Its refolding (python/cpython#87720) writes the name again
    without its quotes or encoding: a comma in it split the sender into two or three
    addresses ("Klinik für X", "Y <no-reply@...>"), and a word cut between two
    encoded-words got a space ("Orthopä die"). Here an ASCII name stays readable, quoted if
    it has a comma, folded at its spaces; any other is RFC 2047 encoded-words (a comma in
    one is text, never a separator), broken between words, each line's ending with the
    space: mail apps ignore the folding between two encoded-words (RFC 2047, 6.2)."""
    name, addr = parseaddr(address) if isinstance(address, str) else address
    addr = sanitize_address(("", addr))  # as Flask-Mail writes it (an IDN in its ASCII form)
    prefix = f"{header}: "
    if name.isascii():
        first, *others = formataddr((name, addr)).split(" ")
        lines = [prefix + first]
        for word in others:
            if len(lines[-1]) + 1 + len(word) <= _HEADER_LINE:
                lines[-1] += " " + word
            else:
                lines.append(" " + word)  # folding whitespace: unfolded, the space again
        if all(len(line) <= _HEADER_LINE for line in lines):
            return "\n".join(lines).removeprefix(prefix)
    charset = Charset("utf-8")
    room = _ENCODED_LINE - len(prefix)
    lines = []
    chunk, *others = name.split(" ")
    for word in others:
        if len(charset.header_encode(f"{chunk} {word} ")) <= room:
            chunk += " " + word
            continue
        lines += charset.header_encode_lines(f"{chunk} ", chain([room], repeat(_ENCODED_LINE - 1)))
        room, chunk = _ENCODED_LINE - 1, word
    lines += charset.header_encode_lines(chunk, chain([room], repeat(_ENCODED_LINE - 1)))
    return "\n ".join([*lines, f"<{addr}>"])


def _message_id() -> str:
    sender = current_app.config["MAIL_DEFAULT_SENDER"]
    domain = parseaddr(sender)[1].rpartition("@")[2] or "spineconsult.invalid"
    return make_msgid(domain=domain)


def queue_email(
    *,
    template: str,
    recipient: str,
    subject: str,
    locale: str,
    request_id: int | None = None,
    attachment: tuple[str, str, str] | None = None,
    **context: object,
) -> OutboxEmail:
    """Render ``email/<template>.txt`` and ``.html`` and add the email to the outbox.

    ``attachment`` is (file name, content type, text), e.g. an appointment's .ics file.

    Only adds to the session: the caller's transaction commits it with the change it reports.
    """
    context.setdefault("clinic_name", current_app.config["CLINIC_NAME"])
    context.setdefault("clinic_phone", current_app.config["CLINIC_PHONE"])
    context.setdefault("subject", str(subject))  # the HTML part's title
    with force_locale(locale):
        email = OutboxEmail(
            request_id=request_id,
            template=template,
            recipient=recipient,
            subject=str(subject),
            body_text=render_template(f"email/{template}.txt", **context),
            body_html=render_template(f"email/{template}.html", **context),
            message_id=_message_id(),
            status=OutboxStatus.PENDING,
            attempts=0,
            next_attempt_at=now_utc(),
        )
    if attachment is not None:
        email.attachment_name, email.attachment_type, email.attachment_body = attachment
    db.session.add(email)
    return email


def copy_email(email: OutboxEmail, *, recipient: str) -> OutboxEmail:
    """A new outbox row with ``email``'s content (subject, bodies, attachment) for
    ``recipient``: to send again an email that failed for good. It gets a Message-ID of its
    own (the first never arrived, and this one may go to another address) and is due now.
    Never for an email that was sent: its stored bodies no longer hold its links' tokens.

    Only adds to the session, as ``queue_email``.
    """
    if email.status == OutboxStatus.SENT:
        raise ValueError(f"outbox email {email.id} was sent: compose it anew, do not copy it")
    copy = OutboxEmail(
        request_id=email.request_id,
        template=email.template,
        recipient=recipient,
        subject=email.subject,
        body_text=email.body_text,
        body_html=email.body_html,
        message_id=_message_id(),
        status=OutboxStatus.PENDING,
        attempts=0,
        next_attempt_at=now_utc(),
        attachment_name=email.attachment_name,
        attachment_type=email.attachment_type,
        attachment_body=email.attachment_body,
        staff_message=email.staff_message,
        previous_starts_at=email.previous_starts_at,
        previous_mode=email.previous_mode,
    )
    db.session.add(copy)
    return copy


@dataclass(frozen=True)
class Delivery:
    """Where an outbox email went and how far it got, without its (encrypted) bodies."""

    recipient: str
    status: OutboxStatus
    withdrawn: bool


def deliveries(email_ids: Collection[int], templates: Collection[str]) -> dict[int, Delivery]:
    """By id, the emails of ``email_ids`` still in the outbox (one withdrawn, or of a
    patient whose data was erased, is deleted) written from one of ``templates``: one query,
    for a page that names many. The template guards against a reused id: SQLite gives the
    highest id again once its row is deleted, and an id kept in an audit row would then name
    another email, perhaps to a patient."""
    if not email_ids:
        return {}
    rows = db.session.execute(
        select(
            OutboxEmail.id, OutboxEmail.recipient, OutboxEmail.status, OutboxEmail.withdrawn_at
        ).where(OutboxEmail.id.in_(sorted(email_ids)), OutboxEmail.template.in_(sorted(templates)))
    )
    return {
        row.id: Delivery(row.recipient, row.status, row.withdrawn_at is not None) for row in rows
    }


@dataclass(frozen=True)
class MailDelay:
    """Emails not delivered in time, as staff are told of them: how many still wait though
    written before the cut-off, how many failed for good (and nobody sent again) since
    theirs, and when the oldest of them all was written. ``failed_among``: of the failed,
    how many are of each group of templates the caller named (where staff see each kind)."""

    waiting: int
    failed: int
    oldest_at: datetime | None
    failed_among: dict[str, int] = field(default_factory=dict)

    @property
    def count(self) -> int:
        return self.waiting + self.failed


def mail_delay(
    late_before: datetime,
    failed_since: datetime,
    failed_among: Mapping[str, Collection[str]] | None = None,
) -> MailDelay:
    """The emails still waiting to go (not withdrawn) though written before ``late_before``,
    and those that failed for good after ``failed_since`` that staff have not dealt with
    (``settled_at``), also counted by the groups of templates ``failed_among`` names. One
    statement over the undelivered rows (pending, sending, failed: the ``status`` index),
    which are few; nothing is decrypted."""
    late = and_(OutboxEmail.still_to_go(), OutboxEmail.created_at < late_before)
    failed = and_(
        OutboxEmail.status == OutboxStatus.FAILED,
        OutboxEmail.settled_at.is_(None),
        OutboxEmail.claimed_at > failed_since,  # its last attempt
    )
    groups = dict(failed_among or {})
    waiting, failed_count, oldest, *among = db.session.execute(
        select(
            func.count(case((late, 1))),
            func.count(case((failed, 1))),
            func.min(OutboxEmail.created_at),
            *(
                func.count(case((and_(failed, OutboxEmail.template.in_(sorted(templates))), 1)))
                for templates in groups.values()
            ),
        ).where(OutboxEmail.status.in_([*WAITING, OutboxStatus.FAILED]), or_(late, failed))
    ).one()
    return MailDelay(
        waiting or 0,
        failed_count or 0,
        oldest,
        {name: count or 0 for name, count in zip(groups, among, strict=True)},
    )


@dataclass(frozen=True)
class Withdrawn:
    """An email ``_withdraw`` withdrew: deleted unsent, or (``while_sending``) marked while a
    worker was sending it, which goes out only if already past stopping."""

    id: int
    request_id: int | None
    template: str
    subject: str
    while_sending: bool


# Sent by ``_withdraw`` in the withdrawing transaction, for the emails it withdrew:
# ``emails_withdrawn.send(withdrawn, reason=...)`` (a list of ``Withdrawn``; ``reason``: the
# caller's word for why, or None). A row deleted leaves the request's timeline, which showed
# it as waiting: the requests layer, above this one, keeps a trace of it there
# (``booking.requests.withdrawals``, connected by ``booking.requests.init_app``). The outbox
# stores and sends what it is given, and knows no request.
emails_withdrawn = Namespace().signal("emails-withdrawn")


def withdraw_pending(
    request_id: int, templates: frozenset[str], *, reason: str | None = None
) -> int:
    """Withdraw the request's emails of these kinds not sent yet: written for a state of the
    request that a change in this transaction ends (a reminder of a time just moved or
    cancelled, delivered after the cancellation's email, would send the patient to a visit
    that is not there). One no worker has taken is deleted (a delivery task for it finds
    nothing to claim); one a worker has claimed is marked: the worker deletes it unsent if
    the mark is there at its last check before the mail server, and one already being
    handed to the server is past stopping, but if this attempt fails (the slow mail server
    that kept it waiting) it is deleted instead of tried again (``deliver_outbox_email``,
    ``requeue_stalled_emails``). ``reason``: why, for the trace each leaves
    (``emails_withdrawn``).
    Flushes; the caller commits. Returns how many were withdrawn."""
    if not templates:  # a change that outdates no kind of email: no statement to run
        return 0
    return _withdraw(
        OutboxEmail.request_id == request_id, OutboxEmail.template.in_(templates), reason=reason
    )


def withdraw_emails(email_ids: list[int], *, reason: str | None = None) -> int:
    """Withdraw these emails, as ``withdraw_pending`` does (deleted if no worker has taken
    them, marked if one is sending them): for a caller that chose them one by one. Flushes;
    the caller commits. Returns how many were withdrawn."""
    if not email_ids:
        return 0
    return _withdraw(OutboxEmail.id.in_(email_ids), reason=reason)


# What a withdrawal tells of each email it withdrew (``Withdrawn``), read as it is withdrawn.
_WITHDRAWN_COLUMNS = (
    OutboxEmail.id,
    OutboxEmail.request_id,
    OutboxEmail.template,
    OutboxEmail.subject,
)


def _withdraw(*mine: ColumnElement[bool], reason: str | None = None) -> int:
    """Delete the emails ``mine`` selects that no worker has taken, and mark those a worker
    is sending (``withdrawn_at``; not tried again if this attempt fails), by conditional
    statements: a worker may claim one meanwhile. Each statement returns the rows it
    withdrew, announced (``emails_withdrawn``) with ``reason``. How many were withdrawn."""
    deleted = db.session.execute(
        delete(OutboxEmail)
        .where(*mine, OutboxEmail.status == OutboxStatus.PENDING)
        .returning(*_WITHDRAWN_COLUMNS)
        .execution_options(synchronize_session="fetch")
    ).all()
    marked = db.session.execute(
        update(OutboxEmail)
        .where(
            *mine, OutboxEmail.status == OutboxStatus.SENDING, OutboxEmail.withdrawn_at.is_(None)
        )
        .values(withdrawn_at=now_utc())
        .returning(*_WITHDRAWN_COLUMNS)
        .execution_options(synchronize_session="fetch")
    ).all()
    withdrawn = sorted(
        [Withdrawn(*row, while_sending=False) for row in deleted]
        + [Withdrawn(*row, while_sending=True) for row in marked],
        key=lambda email: email.id,
    )
    if withdrawn:
        emails_withdrawn.send(withdrawn, reason=reason)
    return len(withdrawn)


def withdraw_calendar_emails(request_id: int, *, reason: str | None = None) -> list[str]:
    """Withdraw the request's status emails (``request_update``) not sent yet that carry a
    calendar file, as ``withdraw_pending`` does: for a change that queues a newer one. Their
    time is outdated, and one retried after the newer email went out would leave the
    patient's latest email showing the old time (or an invitation arriving after its
    cancellation). What they said besides is in the newer email, which states the request
    as it is now, except the message staff wrote in them: returned (oldest first) for the
    newer email to carry when it is about the same visit (the caller decides: a
    cancellation does not carry a message about the visit it cancels). That of an email a
    worker is sending at this moment is returned too: sent, the patient reads it twice,
    rather than never if that attempt fails.
    Returns nothing for a change that queues no calendar file: call it only for one that does.

    Other emails with a calendar file (the receipt of a request, with its private link) are
    kept: their invitation has a lower SEQUENCE, which calendar apps ignore once they hold
    the newer one. Flushes; the caller commits."""
    mine = (
        OutboxEmail.request_id == request_id,
        OutboxEmail.template == "request_update",
        OutboxEmail.attachment_type.startswith("text/calendar"),
    )
    messages = list(
        db.session.scalars(
            select(OutboxEmail.staff_message)
            .where(*mine, OutboxEmail.still_to_go())
            .order_by(OutboxEmail.id)
        )
    )
    _withdraw(*mine, reason=reason)
    return [message for message in messages if message]


def enqueue_delivery(email_ids: list[int]) -> None:
    """Hand committed outbox rows to the task queue.

    Best effort: if the queue is unreachable the rows stay pending and the periodic sweep
    (``requeue_stalled_emails``) hands them over later, so nothing is lost. After the first
    failure the others are left to the sweep too: a queue that takes the connection and never
    answers costs each attempt its whole timeout (``socket_timeout`` in REDIS_URL), and the
    patient or staff member waits for every email of the change (a waiting list's wave:
    seven) before seeing the page.
    """
    task = current_app.extensions["spineconsult.deliver_email"]
    for position, email_id in enumerate(email_ids):
        try:
            task(email_id)
        except Exception:  # the queue's own failure must not fail the patient's request
            left = ", ".join(str(each) for each in email_ids[position:])
            log.exception("could not enqueue outbox email(s) %s; the sweep will retry", left)
            return


def enqueue_still_to_go(request_id: int) -> None:
    """Hand a request's emails still to go to the task queue again (``enqueue_delivery``).

    For a change found stored when it is sent again: its first commit was made, then the
    database's answer was lost, so its emails were never handed to the queue and would wait
    for the sweep (``MAIL_REQUEUE_AFTER_SECONDS``, minutes: an urgent request's alert to the
    clinic among them). Handing a row over twice is harmless: one claim succeeds."""
    enqueue_delivery(
        list(
            db.session.scalars(
                select(OutboxEmail.id)
                .where(OutboxEmail.request_id == request_id, OutboxEmail.still_to_go())
                .order_by(OutboxEmail.id)
            )
        )
    )


def queue_each(
    items: Iterable[K],
    write: Callable[[K], int | list[int] | None],
    label: str,
    job_log: logging.Logger,
) -> list[int]:
    """A job's emails, one item at a time: ``write(item)`` writes the item's email to the
    outbox in a transaction of its own and commits it, returning its id (None when nothing
    is sent; a list when the item is one email to several patients, such as a waitlist
    offer's wave); then every id is handed to the queue (``enqueue_delivery``) and returned.

    An item whose write fails is rolled back and logged to the job's own ``job_log``,
    ``label`` naming it (``"reminder of ask %s"``, given the item), and the others go on:
    one patient's failure must not hold back every later patient's. A claim the write made
    goes with it, so the next run tries that item again."""
    queued = []
    for item in items:
        try:
            email_id = write(item)
        except Exception:
            db.session.rollback()
            job_log.exception("%s failed; the others go on", label % (item,))
            continue
        if isinstance(email_id, list):
            queued += email_id
        elif email_id is not None:
            queued.append(email_id)
    enqueue_delivery(queued)
    return queued


def retry_delay(attempts: int) -> timedelta:
    """Exponential back-off: base, 2 x base, 4 x base ... capped at one hour."""
    base = current_app.config["MAIL_RETRY_BASE_SECONDS"]
    return timedelta(seconds=min(base * 2 ** max(attempts - 1, 0), 3600))


def give_up_at(email: OutboxEmail) -> datetime:
    """When an email that keeps failing for a reason that may pass (the mail server down,
    a refusal of the clinic's settings, a worker that never finished) fails for good: once
    it has waited ``MAIL_GIVE_UP_HOURS`` since it was written. By its age, not by how many
    attempts it had: a mail server away for hours delays every email, and each then
    went to staff to be sent again by hand once a fixed count of attempts ran out."""
    return email.created_at + timedelta(hours=current_app.config["MAIL_GIVE_UP_HOURS"])


def _next_retry(email: OutboxEmail, now: datetime) -> timedelta | None:
    """The wait before ``email``'s next attempt after one that failed for a reason that may
    pass (``retry_delay``), never past its ``give_up_at``, so the last attempt is made then;
    None once that moment has come. Whole seconds, as the queue schedules them."""
    left = give_up_at(email) - now
    if left <= timedelta(0):
        return None
    return min(retry_delay(email.attempts), timedelta(seconds=math.ceil(left.total_seconds())))


def _is_permanent(exc: Exception) -> bool:
    """A 5xx reply about this email (its recipient refused, its content rejected) will not
    change by retrying. A 5xx about the clinic's own settings (the login, the sender's
    address, STARTTLS required, a relay refusing to relay: a recipient refused, or the
    message refused at the end of DATA, with a 5.7 security or policy status such as an SPF
    failure or "relaying not permitted from this address") will, once they are fixed: it
    fails every email alike, the urgent alerts to staff included, so those are retried until
    ``MAIL_GIVE_UP_HOURS`` (``give_up_at``).

    An address that cannot be written in ASCII (letters such as é before the @: the forms
    refuse them, an older row may hold one) would need SMTPUTF8, which Flask-Mail never
    asks for: smtplib raises ``UnicodeEncodeError`` before the server hears of it, the same
    at every attempt."""
    if isinstance(exc, UnicodeEncodeError):
        return True
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return all(
            500 <= code < 600 and not _policy_refusal(message)
            for code, message in exc.recipients.values()
        )
    return (
        isinstance(exc, smtplib.SMTPDataError)
        and 500 <= exc.smtp_code < 600
        and not _policy_refusal(exc.smtp_error)
    )


def _policy_refusal(message: bytes | str) -> bool:
    """A reply whose enhanced status is 5.7.x (RFC 3463: security or policy, e.g. "Relay
    access denied", "Authentication required")."""
    text = message.decode("utf-8", "replace") if isinstance(message, bytes) else message
    return text.lstrip().startswith("5.7.")


# What ``last_error`` says of a server that accepted the connection and then never answered
# within MAIL_TIMEOUT (a hung server, a firewall dropping packets): not a refusal.
SMTP_TIMEOUT = "SMTPTimeout"


# What ``last_error`` says of a row whose last attempt's worker never finished (killed, or
# failed outside the SMTP exchange) once it is past its ``give_up_at``:
# ``requeue_stalled_emails``.
CLAIM_LAPSED = "ClaimLapsed"

# What ``last_error`` says of a row whose worker never finished MAIL_MAX_LAPSED_CLAIMS claims
# of it in a row (killed, hung or broken each time, by the email itself: one it cannot read
# or build), whatever its age: ``requeue_stalled_emails``.
KILLED_WORKER = "KilledWorker"


def _timed_out(exc: BaseException) -> bool:
    """True when the server did not answer in time. smtplib reports a reply that never came
    as ``SMTPServerDisconnected`` raised while handling the socket's ``TimeoutError``, so the
    cause is looked for along the exception's chain too."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, TimeoutError):  # socket.timeout is TimeoutError since 3.10
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _describe(exc: Exception) -> str:
    # Only the kind of error and the SMTP code: server messages can echo addresses.
    if _timed_out(exc):
        return SMTP_TIMEOUT
    code = getattr(exc, "smtp_code", None)
    return f"{type(exc).__name__}" + (f" {code}" if code else "")


# The checks a feature registers (``register_delivery_check``), read at every delivery.
DELIVERY_CHECKS = "spineconsult.delivery_checks"


def register_delivery_check(app: Flask, check: Callable[[OutboxEmail], str | None]) -> None:
    """Have ``check`` read every email just before it is sent: a reason it returns (for the
    log) drops the email, which was right when written but must not go now (a change that
    withdraws such emails can commit while another transaction writes one). The outbox
    knows no feature, so a feature that knows why registers its check here."""
    app.extensions.setdefault(DELIVERY_CHECKS, []).append(check)


def _held_back(email: OutboxEmail) -> str | None:
    for check in current_app.extensions.get(DELIVERY_CHECKS, ()):
        if (reason := check(email)) is not None:
            return reason
    return None


# The checks of emails that can be too late to send (``register_expiry_check``).
EXPIRY_CHECKS = "spineconsult.expiry_checks"


def register_expiry_check(app: Flask, check: Callable[[OutboxEmail], str | None]) -> None:
    """Have ``check`` read every email just before it is sent: a reason it returns (a short
    code, kept as the email's ``last_error``) fails the email for good, unsent. It was right
    to send and was wanted, but could not go in time (the mail server away for hours, the
    queue down) and what it is about is past: a reminder of an appointment that has begun.
    Unlike an email a delivery check holds back (deleted), it stays where staff see the
    emails a patient was never given, to decide whether to call. The outbox knows no
    feature, so a feature that knows when its emails are past registers its check here."""
    app.extensions.setdefault(EXPIRY_CHECKS, []).append(check)


def _too_late(email: OutboxEmail) -> str | None:
    for check in current_app.extensions.get(EXPIRY_CHECKS, ()):
        if (reason := check(email)) is not None:
            return reason
    return None


def _fail_for_good(email: OutboxEmail) -> None:
    """Give ``email`` up (its ``last_error`` set), in the caller's transaction: failed, where
    staff see it, or deleted if it is one of ``FORGET_WHEN_SENT``."""
    log.error("outbox email %s failed for good: %s", email.id, email.last_error)
    if email.template in FORGET_WHEN_SENT:
        # Not kept either: it holds the address of a patient the clinic erased.
        log.error("outbox email %s (%s) deleted undelivered", email.id, email.template)
        db.session.delete(email)
    else:
        email.status = OutboxStatus.FAILED


def deliver_outbox_email(email_id: int) -> timedelta | None:
    """Try to deliver one outbox row; return the delay before the next attempt, if any.

    The row is claimed with a conditional update (pending and due -> sending), so two workers
    given the same id never both send it. A row that is not pending or not yet due is left alone.
    """
    now = now_utc()
    claimed = db.session.execute(
        update(OutboxEmail)
        .where(
            OutboxEmail.id == email_id,
            OutboxEmail.status == OutboxStatus.PENDING,
            OutboxEmail.next_attempt_at <= now,
        )
        .values(
            status=OutboxStatus.SENDING,
            claimed_at=now,
            attempts=OutboxEmail.attempts + 1,
            unfinished_claims=OutboxEmail.unfinished_claims + 1,
        )
    ).rowcount
    db.session.commit()
    if not claimed:
        return None

    try:
        email = db.session.get(OutboxEmail, email_id)
    except (KeyMissingError, DecryptionError) as exc:
        # Its bodies cannot be read here (a worker with another ENCRYPTION_KEY, an old key
        # dropped before `keys rotate` reached this row): no retry reads them either. Failed
        # now, so staff see it where failed emails show, instead of a row that bounces
        # between sending and pending for ever.
        db.session.rollback()
        _fail_unread(email_id, _describe_unreadable(exc))
        return None
    if email is None:  # deleted between the claim and now (an erased patient)
        return None
    if (reason := _held_back(email)) is not None:
        # Withdrawn as a change of its request would have withdrawn it: claimed by this
        # worker, it is deleted here rather than left for its claim to lapse.
        log.info("outbox email %s (%s) withdrawn at delivery: %s", email.id, email.template, reason)
        db.session.delete(email)
        db.session.commit()
        return None
    if (reason := _too_late(email)) is not None:
        if email.withdrawn_at is not None:
            # A change of its request withdrew it since the claim (the visit cancelled or
            # closed): not one the patient should have had, so none to show staff.
            log.info("outbox email %s was withdrawn while being sent: not retried", email.id)
            db.session.delete(email)
        else:
            email.last_error = reason
            _fail_for_good(email)
        db.session.commit()
        return None
    message = _Message(
        subject=email.subject,
        recipients=[email.recipient],
        body=email.body_text,
        html=email.body_html,
        sender=current_app.config["MAIL_DEFAULT_SENDER"],
        reply_to=current_app.config.get("MAIL_REPLY_TO") or None,
        # RFC 3834: sent by a program, so auto-responders (out of office) do not answer it.
        extra_headers={"Auto-Submitted": "auto-generated"},
    )
    message.msgId = email.message_id
    if email.attachment_body is not None:
        message.attach(
            filename=email.attachment_name,
            content_type=email.attachment_type,
            data=email.attachment_body.encode(),
        )
        kind = EmailMessage()
        kind["Content-Type"] = email.attachment_type or ""
        method = kind.get_param("method")
        if kind.get_content_type() == "text/calendar" and isinstance(method, str):
            message.add_calendar(email.attachment_body, method.upper())
    if _withdrawn_since_claim(email_id):
        log.info("outbox email %s was withdrawn after it was claimed: not sent", email_id)
        db.session.commit()
        return None
    # End the read transaction before talking to the server: no database lock (SQLite) or
    # idle transaction (PostgreSQL) is held for as long as a slow mail server takes.
    db.session.commit()
    # Flask-Mail opens its SMTP connection without a timeout; a mail server that accepts and
    # then never answers would hang the worker. The worker process sends nothing else.
    socket.setdefaulttimeout(current_app.config["MAIL_TIMEOUT"])
    sent = False
    try:
        with mail.connect() as connection:
            connection.send(message)
            # The server has accepted it (250 after DATA). Record that at once, before the
            # polite QUIT, so a worker killed from here on never sends it again.
            _mark_sent(email)
            sent = True
    except (StaleDataError, ObjectDeletedError):
        db.session.rollback()  # the row was erased (with its patient) while it was sent
        log.info("outbox email %s was erased while being sent", email_id)
        return None
    except SQLAlchemyError:
        # Accepted but not recorded (the database went away): the claim lapses and the email
        # is sent again later. The one duplicate possible; see README, "Delivery guarantee".
        db.session.rollback()
        raise
    except Exception as exc:
        if sent:  # accepted and recorded (or forgotten); only QUIT failed
            return None
        try:
            db.session.refresh(email)  # a change of its request may have withdrawn it meanwhile
        except InvalidRequestError:  # erased (with its patient) meanwhile
            db.session.rollback()
            return None
        if email.withdrawn_at is not None:
            log.info("outbox email %s was withdrawn while being sent: not retried", email.id)
            db.session.delete(email)
            db.session.commit()
            return None
        email.last_error = _describe(exc)
        email.unfinished_claims = 0  # this attempt ended: the worker got past the email
        delay = None if _is_permanent(exc) else _next_retry(email, now_utc())
        if delay is None:
            _fail_for_good(email)
        else:
            email.status = OutboxStatus.PENDING
            email.next_attempt_at = now_utc() + delay
            log.warning(
                "outbox email %s attempt %s failed (%s); retry in %ss",
                email.id,
                email.attempts,
                email.last_error,
                int(delay.total_seconds()),
            )
        db.session.commit()
        return delay
    return None


def _withdrawn_since_claim(email_id: int) -> bool:
    """The last word before the mail server: delete the claimed row if a change of its
    request has withdrawn it since the claim (``withdraw_pending`` can only mark a row being
    sent), and say so. By a conditional statement rather than the row as first read: on
    PostgreSQL it sees a withdrawal committed while the checks above ran too (and waits for
    one being committed), and on SQLite this transaction has held the write lock since the
    read. A withdrawal committed after this is past stopping, as the docstring of
    ``withdraw_pending`` says: only a failed attempt then looks at its mark."""
    return bool(
        db.session.execute(
            delete(OutboxEmail)
            .where(OutboxEmail.id == email_id, OutboxEmail.withdrawn_at.is_not(None))
            .execution_options(synchronize_session="fetch")
        ).rowcount
    )


def _describe_unreadable(exc: Exception) -> str:
    """What ``last_error`` says of a row that cannot be decrypted: the kind of error and,
    for a missing key, its id (a hash of the key, never the key); nothing of the content."""
    if isinstance(exc, KeyMissingError):
        return f"KeyMissingError key id {exc.key_id}"
    return type(exc).__name__


def _fail_unread(email_id: int, reason: str) -> None:
    """Fail a row for good without loading it (loading decrypts its bodies): by statements
    on its columns, as the claim does. An email of ``FORGET_WHEN_SENT`` is deleted instead,
    as when it fails any other way; so is one a change of its request withdrew while it was
    claimed (``withdraw_pending``): failed, it would show staff an email to chase (the
    queue's banners, a resend) that the patient must not get."""
    mine = OutboxEmail.id == email_id
    withdrawn = db.session.execute(
        delete(OutboxEmail).where(mine, OutboxEmail.withdrawn_at.is_not(None))
    ).rowcount
    if withdrawn:
        log.info("outbox email %s was withdrawn while being sent: not retried", email_id)
        db.session.commit()
        return
    template = db.session.scalar(select(OutboxEmail.template).where(mine))
    if template in FORGET_WHEN_SENT:
        db.session.execute(delete(OutboxEmail).where(mine))
        log.error("outbox email %s (%s) deleted undelivered: %s", email_id, template, reason)
    elif template is not None:
        # Only while still not withdrawn: one withdrawn since the statement above stays
        # claimed, and ``requeue_stalled_emails`` deletes it once its claim lapses.
        db.session.execute(
            update(OutboxEmail)
            .where(mine, OutboxEmail.withdrawn_at.is_(None))
            .values(status=OutboxStatus.FAILED, last_error=reason)
        )
        log.error("outbox email %s failed for good: %s", email_id, reason)
    db.session.commit()


# Emails deleted once the server accepted them (or once they failed for good), instead of
# kept: the confirmation of an erasure (``booking.rights.emails.erasure_done``), whose patient
# the clinic must forget.
FORGET_WHEN_SENT = frozenset({"erasure_done"})


def redact_links(email: OutboxEmail) -> None:
    """Keep of ``email`` everything but what its links open: the tokens of the clinic's own
    links (a patient's private link, an offer, a resume or follow-up link, a password
    reset), and links to other sites whole (a video visit's link to join, which may hold a
    passcode), in its bodies and in its calendar file (the event's place and URL). Those
    work as keys, and the design is that a copy of the database or of a backup opens
    nothing: for an email delivered, or replaced by a resend. Only changes the row."""
    own = urlsplit(current_app.config["PUBLIC_BASE_URL"]).netloc
    email.body_text = redact_other_sites(redact_text(email.body_text), own)
    email.body_html = redact_other_sites(redact_text(email.body_html or ""), own)
    if email.attachment_body is not None and (email.attachment_type or "").startswith(
        "text/calendar"
    ):
        # Unfolded first: a calendar file folds long lines, a link across two of them.
        email.attachment_body = redact_other_sites(email.attachment_body.replace("\r\n ", ""), own)


def _mark_sent(email: OutboxEmail) -> None:
    """Record the server's acceptance, and keep of the email everything but what its links
    open (``redact_links``). In the same commit: an email not recorded as sent is sent
    again, links whole. Nothing sends a delivered email's bodies again (a resend copies
    only emails that failed for good). An email of ``FORGET_WHEN_SENT`` is deleted."""
    if email.template in FORGET_WHEN_SENT:
        db.session.delete(email)
        db.session.commit()
        log.info("outbox email %s sent and deleted", email.id)
        return
    email.status = OutboxStatus.SENT
    email.sent_at = now_utc()
    email.unfinished_claims = 0
    email.last_error = None
    email.staff_message = None  # delivered: nothing to pass on
    redact_links(email)
    db.session.commit()
    log.info("outbox email %s sent", email.id)
    _retire_superseded(email)


def _retire_superseded(sent: OutboxEmail) -> None:
    """The earlier emails of ``sent``'s kind to its request that failed for good: ``sent``
    said it again, so they no longer count as the patient not told
    (``requests.queries.unnotified_request_ids``) and nothing resends them; kept whole,
    they would hold their links' secrets (a private link's token, a video visit's link)
    for as long as the request is kept. Their secrets go as a sent email's do
    (``redact_links``). Separately committed: an old row that cannot be read (another
    key) leaves the delivery recorded and is only logged."""
    if sent.request_id is None:
        return
    try:
        for failed in db.session.scalars(
            select(OutboxEmail).where(
                OutboxEmail.request_id == sent.request_id,
                OutboxEmail.template == sent.template,
                OutboxEmail.status == OutboxStatus.FAILED,
                OutboxEmail.id < sent.id,
            )
        ):
            redact_links(failed)
        db.session.commit()
    except (DecryptionError, KeyMissingError, SQLAlchemyError):
        db.session.rollback()
        log.warning("outbox email %s sent; its earlier failed copies kept as they were", sent.id)


def requeue_stalled_emails() -> list[int]:
    """Find outbox rows whose delivery task was lost; return the ids to enqueue again.

    A row claimed by a worker that died is released after ``MAIL_CLAIM_TIMEOUT_SECONDS`` and
    returned at once: its claim timing out was the wait, and no task is coming for it. A
    pending row still waiting ``MAIL_REQUEUE_AFTER_SECONDS`` after it fell due has lost its task
    (queue down, worker restarted). Enqueuing a row twice is harmless: only one claim succeeds.

    A row that kills or breaks its worker each time (one it cannot even read or build) is
    failed where staff see it (``KILLED_WORKER``; deleted for ``FORGET_WHEN_SENT``) once
    ``MAIL_MAX_LAPSED_CLAIMS`` claims of it in a row lapsed, rather than killing workers
    until ``MAIL_GIVE_UP_HOURS``. Only claims in a row count (``unfinished_claims``): any
    attempt that ends, sent or refused by the mail server and retried, starts the count
    again. So a worker restarted during a long outage of the mail server fails no email
    sooner than the outage itself would: the email's next attempt ends with the outage's
    error, and it would take that many restarts, each while this one email was being sent.
    A row whose claim lapsed before is not handed out with others either: a worker process
    killed by one email takes the claims of its other threads down with it, and those
    emails, released together with it, would be killed with it again and again. From its
    second lapse in a row a row waits, and one such row at a time is released, while no
    other released row is still waiting for its attempt or in it; the others' attempts
    end (and their counts restart) and only the email at fault reaches the limit.

    A lapsed claim whose row is past its ``give_up_at`` (``MAIL_GIVE_UP_HOURS`` since it
    was written) is failed instead of released (``CLAIM_LAPSED``), by the same rule as an
    attempt the mail server refused: never claimed and released for ever.
    """
    now = now_utc()
    claim_timeout = timedelta(seconds=current_app.config["MAIL_CLAIM_TIMEOUT_SECONDS"])
    lapsed = (
        OutboxEmail.status == OutboxStatus.SENDING,
        OutboxEmail.claimed_at < now - claim_timeout,
    )
    give_up = timedelta(hours=current_app.config["MAIL_GIVE_UP_HOURS"])
    spent = OutboxEmail.created_at <= now - give_up  # as ``give_up_at``, in SQL
    killer = OutboxEmail.unfinished_claims >= current_app.config["MAIL_MAX_LAPSED_CLAIMS"]
    forgotten = OutboxEmail.template.in_(sorted(FORGET_WHEN_SENT))
    # Withdrawn while being sent by a worker that then died: not sent again.
    withdrawn = list(
        db.session.scalars(
            delete(OutboxEmail)
            .where(*lapsed, OutboxEmail.withdrawn_at.is_not(None))
            .returning(OutboxEmail.id)
        )
    )
    for email_id in sorted(withdrawn):
        log.info("outbox email %s was withdrawn while being sent: not retried", email_id)
    # The email is the likelier cause than its age: said first.
    reason = case((killer, KILLED_WORKER), else_=CLAIM_LAPSED)
    gone = db.session.execute(
        delete(OutboxEmail)
        .where(*lapsed, or_(spent, killer), forgotten)
        .returning(OutboxEmail.id, reason)
    ).all()
    failed = db.session.execute(
        update(OutboxEmail)
        .where(*lapsed, or_(spent, killer))
        .values(status=OutboxStatus.FAILED, last_error=reason)
        .returning(OutboxEmail.id, OutboxEmail.last_error)
    ).all()
    for email_id, why in sorted(gone):
        log.error("outbox email %s deleted undelivered: %s", email_id, why)
    for email_id, why in sorted(failed):
        log.error("outbox email %s failed for good: %s", email_id, why)
    release = {"status": OutboxStatus.PENDING, "next_attempt_at": now}
    released = set(
        db.session.scalars(
            update(OutboxEmail)
            .where(*lapsed, OutboxEmail.unfinished_claims <= 1)
            .values(**release)
            .returning(OutboxEmail.id)
        )
    )
    # Released after a lapse and not yet through an attempt that ended: waiting for it, or in it.
    other = aliased(OutboxEmail)
    on_trial = or_(
        and_(other.status == OutboxStatus.PENDING, other.unfinished_claims >= 1),
        and_(
            other.status == OutboxStatus.SENDING,
            other.claimed_at >= now - claim_timeout,
            other.unfinished_claims >= 2,
        ),
    )
    # Checked in the statement that releases, not in one before it: another worker's sweep
    # at the same time may commit its own release in between (on PostgreSQL each statement
    # reads afresh), and each would release an email, together again. In one statement both
    # sweeps choose the same first lapsed row; the second waits for the first's lock on it,
    # finds it released, and releases none.
    alone = db.session.execute(
        update(OutboxEmail)
        .where(
            *lapsed,
            OutboxEmail.id == select(func.min(OutboxEmail.id)).where(*lapsed).scalar_subquery(),
            ~select(other.id).where(on_trial).exists(),
        )
        .values(**release)
        .returning(OutboxEmail.id, OutboxEmail.unfinished_claims)
    ).first()
    if alone is not None:
        log.warning("outbox email %s released alone: its last %s claims never finished", *alone)
        released.add(alone[0])
    grace = timedelta(seconds=current_app.config["MAIL_REQUEUE_AFTER_SECONDS"])
    lost = db.session.scalars(
        select(OutboxEmail.id)
        .where(
            OutboxEmail.status == OutboxStatus.PENDING,
            OutboxEmail.next_attempt_at <= now - grace,
        )
        .order_by(OutboxEmail.id)
        .limit(500)
    )
    ids = sorted(released.union(lost))
    db.session.commit()
    return ids
