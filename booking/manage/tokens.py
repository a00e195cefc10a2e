"""The patient's private manage link: signed, expiring, and bound to one request.

The link is ``/manage/<reference>/<token>``; the token signs the request's id and reference
with the app's secret key, so it cannot be guessed, altered, or used with another reference.
Every email carries a fresh one, valid for ``MANAGE_LINK_DAYS``.
"""

from __future__ import annotations

from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import select

from booking.extensions import db
from booking.patients.models import ConsultationRequest

SALT = "patient-manage-link"


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=SALT)


def manage_token(consultation: ConsultationRequest) -> str:
    return _serializer().dumps({"r": consultation.id, "ref": consultation.reference})


def manage_url(consultation: ConsultationRequest) -> str:
    base = current_app.config["PUBLIC_BASE_URL"].rstrip("/")
    return f"{base}/manage/{consultation.reference}/{manage_token(consultation)}"


def request_for_token(reference: str, token: str) -> ConsultationRequest | None:
    """The request this link opens, or None (tampered, expired, or another request's)."""
    max_age = current_app.config["MANAGE_LINK_DAYS"] * 24 * 3600
    try:
        data = _serializer().loads(token, max_age=max_age)
    except (SignatureExpired, BadSignature):
        return None
    if not isinstance(data, dict) or data.get("ref") != reference:
        return None
    consultation = db.session.scalar(
        select(ConsultationRequest).where(ConsultationRequest.reference == reference)
    )
    if consultation is None or consultation.id != data.get("r"):
        return None
    return consultation
