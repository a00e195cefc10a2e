"""Writing the audit trail. ``record`` only adds to the session: the caller's transaction
commits the audit row together with the change (or view) it records. A refusal changes
nothing, so ``record_refused_access`` commits its row itself."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from blinker import Namespace
from flask import current_app, has_request_context, request
from flask_login import current_user

from booking.audit.models import ACCESS_REFUSED, AuditEvent
from booking.crypto import text_digest
from booking.extensions import db
from booking.timeutil import now_utc

# Sent with every audit row as it is added (inside the caller's transaction): the access
# monitor (``booking.rights.monitoring``) listens, and may add its alert to the same transaction.
audit_recorded = Namespace().signal("audit-recorded")


def client_address() -> str | None:
    """The caller's address as the WSGI server saw it (put ProxyFix in front behind a proxy)."""
    return request.remote_addr if has_request_context() else None


def record(
    action: str,
    *,
    target_type: str | None = None,
    target_id: object = None,
    details: dict[str, Any] | None = None,
    actor: Any = None,
    actor_email: str | None = None,
    with_address: bool = True,
) -> AuditEvent:
    """Add an audit row to the session. ``with_address=False`` leaves the caller's network
    address out, for a row that must hold no personal data (a patient's submission)."""
    if actor is None and has_request_context() and current_user.is_authenticated:
        actor = current_user
    event = AuditEvent(
        occurred_at=now_utc(),
        actor_id=getattr(actor, "id", None),
        actor_email=actor_email or getattr(actor, "email", None),
        action=action,
        target_type=target_type,
        target_id=None if target_id is None else str(target_id),
        ip_address=client_address() if with_address else None,
        details=details or {},
    )
    db.session.add(event)
    audit_recorded.send(event)
    return event


@dataclass(frozen=True)
class _Actor:
    id: int | None
    email: str | None


def audited_when_done(
    pieces: Iterator[str],
    action: str,
    *,
    actor: Any,
    details: Callable[[bool], dict[str, Any]],
    close: Callable[[], None] | None = None,
) -> Iterator[str]:
    """``pieces`` handed on as they come (a streamed download), then an audit row ``action``
    with ``details(complete)``, committed: when the last piece has gone (``complete``: yes)
    or when the stream stops early, cancelled or the connection lost, and the server closes
    it (``complete``: no). What ``details`` counts is what was handed to the server, which a
    browser that stopped may not all have received: the trail says what left the app.

    ``close`` ends what the pieces read from (a server-side cursor on PostgreSQL) before
    the row's commit; anything the read left in the session is dropped: a download changes
    nothing but the trail. The actor is read now, in the caller's session: the stream runs
    in a session of its own, where the account the view loaded is no longer attached."""
    who = _Actor(id=getattr(actor, "id", None), email=getattr(actor, "email", None))
    return _audited_when_done(pieces, action, who, details, close)


def _audited_when_done(
    pieces: Iterator[str],
    action: str,
    actor: _Actor,
    details: Callable[[bool], dict[str, Any]],
    close: Callable[[], None] | None,
) -> Iterator[str]:
    complete = False
    try:
        yield from pieces
        complete = True
    finally:
        close_pieces = getattr(pieces, "close", None)
        if close_pieces is not None:
            close_pieces()
        if close is not None:
            close()
        db.session.rollback()
        record(action, actor=actor, details=details(complete))
        db.session.commit()


# Room for a path or an id as asked for, whatever a hand-edited URL holds; the target column
# takes 40 characters.
MAX_ASKED_CHARS = 300
MAX_TARGET_ID_CHARS = 40


# A target kept as the start of its SHA-256 rather than as typed.
DIGEST_PREFIX = "sha256:"


def record_refused_access(
    reason: str,
    *,
    target_type: str,
    target_id: str,
    actor: Any,
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """Audit a request for a record the user was refused (answered "not found"), and commit.

    Call it before the error is raised, with nothing else pending in the session: the error
    page's request commits nothing, and the session is rolled back when it ends. The row
    keeps who asked, when, from where, why it was refused and what was asked for (the target
    and the method and path of the request). Both come from the URL, so they are kept
    printable (a bidi override would make the admin's page show another reference) and short.
    """
    asked: dict[str, Any] = {"reason": reason}
    if has_request_context():
        # A target kept as a digest (``DIGEST_PREFIX``: what was typed may be a patient's
        # name) keeps its route's pattern, not the path that holds it.
        digested = target_id.startswith(DIGEST_PREFIX) and request.url_rule is not None
        path = request.url_rule.rule if digested and request.url_rule else request.path
        asked.update(
            method=request.method,
            path=printable(path, MAX_ASKED_CHARS),
            endpoint=request.endpoint,
        )
    event = record(
        ACCESS_REFUSED,
        target_type=target_type,
        target_id=printable(target_id, MAX_TARGET_ID_CHARS),
        actor=actor,
        details={**asked, **(details or {})},
    )
    db.session.commit()
    return event


def printable(text: str, limit: int) -> str:
    """``text`` with every non-printable character (controls, bidi and other format
    characters) written as an escape such as ``\\u202e``, cut to ``limit`` characters."""
    shown = "".join(ch if ch.isprintable() else f"\\u{ord(ch):04x}" for ch in text)
    return shown[:limit]


def changes(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """Before and after values of what changed, JSON-ready, for an audit row's details."""
    return {
        key: {"before": _plain(before.get(key)), "after": _plain(after.get(key))}
        for key in sorted(set(before) | set(after))
        if before.get(key) != after.get(key)
    }


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


REDUCER = "system:audit-retention"


def reduce_old_addresses(now: datetime | None = None, batch_size: int = 500) -> int:
    """Reduce the addresses in audit rows older than ``AUDIT_ADDRESS_DAYS``: a staff member's
    email becomes their id (``staff:<id>``), an address typed at a failed sign-in (or a reset
    request) the start of its SHA-256 (still comparable between rows, no longer readable), and
    the network address is dropped. Who did what and when stays. Returns the rows reduced;
    a second run finds none.

    The one change ever made to audit rows, so it goes through the table, not the model
    (whose listeners refuse any change), and it writes its own audit row.
    """
    days = current_app.config.get("AUDIT_ADDRESS_DAYS")
    if not days:
        return 0
    cutoff = (now or now_utc()) - timedelta(days=int(days))
    table = AuditEvent.__table__
    reduced = 0
    while True:
        rows = db.session.execute(
            table.select()
            .with_only_columns(table.c.id, table.c.actor_id, table.c.actor_email)
            .where(
                table.c.occurred_at < cutoff,
                (table.c.ip_address.is_not(None)) | (table.c.actor_email.contains("@")),
            )
            .order_by(table.c.id)
            .limit(batch_size)
        ).all()
        if not rows:
            break
        for row in rows:
            email = row.actor_email
            if email and "@" in email:
                email = (
                    f"staff:{row.actor_id}"
                    if row.actor_id is not None
                    else f"{DIGEST_PREFIX}{text_digest(email.lower())[:16]}"
                )
            db.session.execute(
                table.update()
                .where(table.c.id == row.id)
                .values(actor_email=email, ip_address=None)
            )
        reduced += len(rows)
        db.session.commit()
    if reduced:
        record(
            "audit_addresses_reduced",
            target_type="audit",
            actor_email=REDUCER,
            details={"cutoff": cutoff.isoformat(), "rows": reduced},
            with_address=False,
        )
        db.session.commit()
    return reduced
