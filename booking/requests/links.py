"""Every address sent out about a request, built here once, and the patient's private manage
links behind them.

The private links: random, stored only as a hash, revocable one by one.

Every patient email carries a link of its own, ``/manage/open/<token>``: 32 random bytes from
``secrets`` (256 bits), URL-safe. The database keeps only the token's SHA-256 in a
:class:`ManageLink` row, so neither the token nor a copy of the database reveals or opens
anything: the token encodes no id and no reference. Each row can be revoked on its own;
staff's "send a new link" revokes every earlier one.

Opening a link exchanges the token for a cookie scoped to ``/manage/<reference>`` and redirects
there (``booking.manage.views``), so the token does not stay in the address bar, the history
or a Referer.

How long a link works (:func:`link_expires_at`): while the request is open, until
``MANAGE_LINK_DAYS_AFTER_APPOINTMENT`` days after its appointment ends; once the request is
closed (cancelled, declined, completed, no-show) the page is read-only, and the link dies
``MANAGE_LINK_DAYS_AFTER_CLOSE`` days after the closing.

Links sent before this scheme (``/manage/<reference>/<signed token>``) keep working under the
same rules until their own expiry (``MANAGE_LINK_DAYS`` after they were sent), or until staff
send a new link: opening one issues a new link row and continues as above.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta

from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import select, update

from booking.crypto import text_digest
from booking.extensions import db
from booking.requests.models import OPEN_STATUSES, ConsultationRequest, ManageLink
from booking.timeutil import now_utc
from booking.urlargs import public_url

TOKEN_BYTES = 32
LEGACY_SALT = "patient-manage-link"


def _new_link(consultation: ConsultationRequest) -> tuple[ManageLink, str]:
    token = secrets.token_urlsafe(TOKEN_BYTES)
    link = ManageLink(request_id=consultation.id, token_hash=text_digest(token))
    db.session.add(link)
    return link, token


def issue_link(consultation: ConsultationRequest) -> str:
    """A new link's token for ``consultation`` (its row is added to the session, to be
    committed with the email that carries it)."""
    return _new_link(consultation)[1]


def manage_url(consultation: ConsultationRequest) -> str:
    """The absolute address of a new private link, for an email."""
    return public_url(f"/manage/open/{issue_link(consultation)}")


def offer_url(consultation: ConsultationRequest, offer_token: str) -> str:
    """A new private link that opens straight at an earlier time offered to the patient."""
    return public_url(f"/manage/open/{issue_link(consultation)}/offers/{offer_token}")


def staff_request_url(consultation: ConsultationRequest) -> str:
    """The request's record on the dashboard, for the clinic's emails (staff sign in)."""
    return public_url(f"/staff/requests/{consultation.reference}")


def link_expires_at(consultation: ConsultationRequest) -> datetime | None:
    """When the request's links stop working; None while nothing has ended yet."""
    config = current_app.config
    if consultation.status not in OPEN_STATUSES:
        closed = consultation.closed_at or consultation.updated_at
        return closed + timedelta(days=config["MANAGE_LINK_DAYS_AFTER_CLOSE"])
    appointment = consultation.appointment
    if appointment is not None and appointment.active:
        return appointment.ends_at + timedelta(days=config["MANAGE_LINK_DAYS_AFTER_APPOINTMENT"])
    return None


def is_read_only(consultation: ConsultationRequest) -> bool:
    """A closed request's page shows what happened; nothing can be changed from it."""
    return consultation.status not in OPEN_STATUSES


def _alive(consultation: ConsultationRequest, now: datetime) -> bool:
    expires = link_expires_at(consultation)
    return expires is None or now < expires


def links_work(consultation: ConsultationRequest) -> bool:
    """Whether a link to the request's page would open it now (``link_expires_at``): a
    closed request's page shows what happened, and the patient's data-protection rights,
    until its links expire."""
    return _alive(consultation, now_utc())


def link_for_token(token: str) -> ManageLink | None:
    """The working link with this token, or None (unknown, revoked, or its request ended)."""
    if not token or len(token) > 100:
        return None
    link = db.session.scalar(select(ManageLink).where(ManageLink.token_hash == text_digest(token)))
    if link is None or link.revoked_at is not None:
        return None
    return link if _alive(link.request, now_utc()) else None


def request_for_tokens(
    reference: str, tokens: Sequence[str]
) -> tuple[ConsultationRequest, str] | None:
    """The request a page's cookies open, with the token that opens it, or None: the first
    of ``tokens`` whose link works and belongs to this reference.

    Several, because the browser may send more than one cookie of the page's name (one
    planted by a sibling site, ``booking.security.cookie_values``): a stranger's value
    before the patient's must not close the page to them. One query for all of them.
    """
    digests = {text_digest(token): token for token in tokens if token and len(token) <= 100}
    if not digests:
        return None
    links = db.session.scalars(
        select(ManageLink).where(
            ManageLink.token_hash.in_(list(digests)), ManageLink.revoked_at.is_(None)
        )
    )
    found = {link.token_hash: link for link in links}
    now = now_utc()
    for digest, token in digests.items():
        link = found.get(digest)
        if link is not None and link.request.reference == reference and _alive(link.request, now):
            return link.request, token
    return None


def mark_opened(link: ManageLink) -> None:
    link.opened_at = now_utc()
    db.session.commit()


def revoke(link: ManageLink) -> None:
    """This one link stops working at once; the request's other links are untouched."""
    if link.revoked_at is None:
        link.revoked_at = now_utc()


def revoke_all(consultation: ConsultationRequest) -> int:
    """Every link sent so far stops working (older signed links too); returns how many rows."""
    now = now_utc()
    consultation.manage_links_reset_at = now
    result = db.session.execute(
        update(ManageLink)
        .where(ManageLink.request_id == consultation.id, ManageLink.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return result.rowcount or 0  # type: ignore[attr-defined]


def active_links(consultation: ConsultationRequest) -> list[ManageLink]:
    return list(
        db.session.scalars(
            select(ManageLink)
            .where(ManageLink.request_id == consultation.id, ManageLink.revoked_at.is_(None))
            .order_by(ManageLink.created_at.desc())
        )
    )


def exchange_legacy(reference: str, token: str) -> tuple[ManageLink, str] | None:
    """A new link (and its token) for a link of the older, signed kind that still works, or
    None. The new row is committed when it is opened (:func:`mark_opened`).

    Those tokens signed ``{"r": id, "ref": reference}`` with the secret key; they are honoured
    until ``MANAGE_LINK_DAYS`` after they were sent, unless staff have since sent a new link,
    and only while the request's links work at all.
    """
    serializer = URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=LEGACY_SALT)
    max_age = current_app.config["MANAGE_LINK_DAYS"] * 24 * 3600
    try:
        data, signed_at = serializer.loads(token, max_age=max_age, return_timestamp=True)
    except (SignatureExpired, BadSignature):
        return None
    if not isinstance(data, dict) or data.get("ref") != reference:
        return None
    consultation = db.session.scalar(
        select(ConsultationRequest).where(ConsultationRequest.reference == reference)
    )
    if consultation is None or consultation.id != data.get("r"):
        return None
    reset = consultation.manage_links_reset_at
    if reset is not None and signed_at <= reset:
        return None
    if not _alive(consultation, now_utc()):
        return None
    return _new_link(consultation)
