"""Reading the audit trail for admins."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, time, timedelta

from sqlalchemy import Select, func, select

from booking.audit.models import ACCESS_REFUSED, AuditEvent, AuditReference
from booking.extensions import db
from booking.timeutil import from_clinic_local

PER_PAGE = 50


@dataclass
class AuditFilters:
    action: str | None = None
    actor: str | None = None
    target: str | None = None
    # The target read as a request reference however it was typed ("sc 7k4m q2xd"), by the
    # caller that knows the references' form (``requests.queries.typed_reference``): searched
    # beside the target as typed, which a refused look-up may have kept in another form.
    reference: str | None = None
    date_from: date | None = None
    date_to: date | None = None
    refused_only: bool = False  # only the refused looks at records (``ACCESS_REFUSED``)
    page: int = 1


def audit_page(f: AuditFilters) -> tuple[list[AuditEvent], int, int, int]:
    """(events newest first, total, pages, the page shown: ``f.page`` within 1 to pages)."""
    stmt = audit_events(f)
    total = db.session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    pages = max(1, math.ceil(total / PER_PAGE))
    page = min(max(1, f.page), pages)
    events = db.session.scalars(
        stmt.order_by(AuditEvent.occurred_at.desc(), AuditEvent.id.desc())
        .limit(PER_PAGE)
        .offset((page - 1) * PER_PAGE)
    ).all()
    return list(events), total, pages, page


def audit_events(f: AuditFilters) -> Select[tuple[AuditEvent]]:
    """The events the filters ask for, unordered (``f.page`` aside)."""
    stmt = select(AuditEvent)
    if f.action:
        stmt = stmt.where(AuditEvent.action == f.action)
    if f.refused_only:
        stmt = stmt.where(AuditEvent.action == ACCESS_REFUSED)
    if f.actor:
        # "_" and "%" in an address are themselves, not wildcards.
        actor = f.actor.strip().lower()
        stmt = stmt.where(func.lower(AuditEvent.actor_email).contains(actor, autoescape=True))
    targets = sorted({text for text in ((f.target or "").strip().upper(), f.reference) if text})
    if targets:
        # The rows naming the reference: those about that request (its target) and those about
        # many at once (an export, an erasure), which list it in their details. Both are
        # linked to it as they are written (``AuditReference``): an index lookup, not a read
        # of every row's details.
        stmt = stmt.where(
            AuditEvent.id.in_(
                select(AuditReference.audit_event_id).where(AuditReference.reference.in_(targets))
            )
        )
    if f.date_from:
        stmt = stmt.where(AuditEvent.occurred_at >= from_clinic_local(f.date_from, time()))
    if f.date_to:
        stmt = stmt.where(
            AuditEvent.occurred_at < from_clinic_local(f.date_to + timedelta(days=1), time())
        )
    return stmt


def known_actions() -> list[str]:
    return list(
        db.session.scalars(select(AuditEvent.action).distinct().order_by(AuditEvent.action))
    )
