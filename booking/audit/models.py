"""The audit trail: who did what to which record, when and from where. Append-only."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, event
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


class AuditTrailIsAppendOnly(RuntimeError):  # noqa: N818 - names the rule it enforces
    pass


@event.listens_for(AuditEvent, "before_update")
@event.listens_for(AuditEvent, "before_delete")
def _refuse_changes(_mapper: Any, _connection: Any, target: AuditEvent) -> None:
    raise AuditTrailIsAppendOnly(f"audit event {target.id} cannot be changed or deleted")


@event.listens_for(Session, "do_orm_execute")
def _refuse_bulk_changes(state: ORMExecuteState) -> None:
    """Bulk ``update(AuditEvent)`` / ``delete(AuditEvent)`` bypass the mapper events above."""
    if (state.is_update or state.is_delete) and any(
        mapper.class_ is AuditEvent for mapper in state.all_mappers
    ):
        raise AuditTrailIsAppendOnly("audit events cannot be changed or deleted")
