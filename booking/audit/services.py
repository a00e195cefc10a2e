"""Writing the audit trail. ``record`` only adds to the session: the caller's transaction
commits the audit row together with the change (or view) it records."""

from __future__ import annotations

from typing import Any

from flask import has_request_context, request
from flask_login import current_user

from booking.audit.models import AuditEvent
from booking.extensions import db
from booking.timeutil import now_utc


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
) -> AuditEvent:
    if actor is None and has_request_context() and current_user.is_authenticated:
        actor = current_user
    event = AuditEvent(
        occurred_at=now_utc(),
        actor_id=getattr(actor, "id", None),
        actor_email=actor_email or getattr(actor, "email", None),
        action=action,
        target_type=target_type,
        target_id=None if target_id is None else str(target_id),
        ip_address=client_address(),
        details=details or {},
    )
    db.session.add(event)
    return event


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
