"""Staff accounts: sign-in, roles, password resets, two-factor sign-in."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Register the outbox's checks that no password reset goes once its link is over: for
    its account (``services.dead_at_delivery``: dropped), or by its age
    (``services.expired_at_delivery``: failed)."""
    from booking.notifications.services import register_delivery_check, register_expiry_check
    from booking.staff.services import dead_at_delivery, expired_at_delivery

    register_delivery_check(app, dead_at_delivery)
    register_expiry_check(app, expired_at_delivery)
