"""Staff accounts: sign-in, roles, password resets, two-factor sign-in."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Register the outbox's check that no password reset goes once its link has expired
    (``services.expired_at_delivery``)."""
    from booking.notifications.services import register_expiry_check
    from booking.staff.services import expired_at_delivery

    register_expiry_check(app, expired_at_delivery)
