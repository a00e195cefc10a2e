"""The audit trail: who did what to which record, when and from where. Append-only."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, event, insert
from sqlalchemy.orm import Mapped, ORMExecuteState, Session, mapped_column

from booking.extensions import db
from booking.timeutil import UTCDateTime, now_utc

# A staff member was refused a record, document or note (shown "not found"): written by
# ``services.record_refused_access``, filtered for on the admin's audit page.
ACCESS_REFUSED = "access_refused"
# A staff member opened a request's record page (``dashboard.views``): what it shows, the
# follow-up's answers among it, was put in front of them (``outcomes.progress``).
REQUEST_VIEWED = "request_viewed"


class AuditEvent(db.Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc, index=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id"), index=True)
    # The actor's email at the time (or the address typed at a failed login).
    actor_email: Mapped[str | None] = mapped_column(String(254))
    action: Mapped[str] = mapped_column(String(40), index=True)
    target_type: Mapped[str | None] = mapped_column(String(30))
    target_id: Mapped[str | None] = mapped_column(String(40))
    ip_address: Mapped[str | None] = mapped_column(String(45))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    __table_args__ = (Index("ix_audit_event_target", "target_type", "target_id"),)


class AuditReference(db.Model):
    """A request reference an audit row names (its target, or one listed in its details),
    so the admin's search and the DPO's query find a reference through an index rather than
    by reading every row's details. Written with its row, append-only like it."""

    # The primary key leads with the reference: the index a search by reference uses.
    reference: Mapped[str] = mapped_column(String(40), primary_key=True)
    audit_event_id: Mapped[int] = mapped_column(
        ForeignKey("audit_event.id", ondelete="CASCADE"), primary_key=True, index=True
    )


# A request's reference as written (``SC-7K4M-Q2XD``); the prefix and the column's length
# are the test, so a shorter reference in a hand-written row is found too.
REFERENCE_PREFIX = "SC-"
MAX_REFERENCE_CHARS = 40
# Targets that are requests, whatever their id looks like: a refused look-up kept what was
# typed in the URL (upper-cased) before it was stored as the reference it reads as, and the
# search finds such an older row by that text.
REQUEST_TARGETS = frozenset({"request", "patient"})


def named_references(target_type: str | None, target_id: str | None, details: Any) -> list[str]:
    """The request references an audit row names: its target when that is a request, and
    every string in its details (at any depth) that is a reference. Sorted, each once."""
    found = {value for value in _strings(details) if _is_reference(value)}
    if target_id and (target_type in REQUEST_TARGETS or _is_reference(target_id)):
        found.add(target_id)
    return sorted(value for value in found if len(value) <= MAX_REFERENCE_CHARS)


def _is_reference(value: str) -> bool:
    return value.startswith(REFERENCE_PREFIX) and not re.search(r"\s", value)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _strings(item)


@event.listens_for(AuditEvent, "after_insert")
def _link_references(_mapper: Any, connection: Any, target: AuditEvent) -> None:
    """Every row, however it was added, is linked to the references it names, on the
    connection that inserted it: in the same transaction."""
    references = named_references(target.target_type, target.target_id, target.details)
    if references:
        connection.execute(
            insert(AuditReference.__table__),
            [{"audit_event_id": target.id, "reference": ref} for ref in references],
        )


class AuditTrailIsAppendOnly(RuntimeError):  # noqa: N818 - names the rule it enforces
    pass


@event.listens_for(AuditEvent, "before_update")
@event.listens_for(AuditEvent, "before_delete")
@event.listens_for(AuditReference, "before_update")
@event.listens_for(AuditReference, "before_delete")
def _refuse_changes(_mapper: Any, _connection: Any, target: AuditEvent | AuditReference) -> None:
    raise AuditTrailIsAppendOnly(f"audit {target!r} cannot be changed or deleted")


@event.listens_for(Session, "do_orm_execute")
def _refuse_bulk_changes(state: ORMExecuteState) -> None:
    """Bulk ``update(AuditEvent)`` / ``delete(AuditEvent)`` bypass the mapper events above."""
    if (state.is_update or state.is_delete) and any(
        mapper.class_ in (AuditEvent, AuditReference) for mapper in state.all_mappers
    ):
        raise AuditTrailIsAppendOnly("audit events cannot be changed or deleted")
