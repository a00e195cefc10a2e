"""Storing feedback on an information page and telling the clinic it arrived."""

from __future__ import annotations

from flask import current_app, url_for
from sqlalchemy import func

from booking.audit.services import record
from booking.extensions import db
from booking.feedback.models import MAX_COMMENT_CHARS, PageFeedback
from booking.notifications.services import queue_email
from booking.urlargs import public_url

# How many recent comments the admin page lists.
PAGE_SIZE = 100


def submit_feedback(*, page: str, useful: bool | None, comment: str, locale: str) -> PageFeedback:
    """Store a reader's feedback on ``page`` and, in the same transaction, an email to the
    clinic saying only that feedback arrived (no comment, no page text: the admin page shows
    them to signed-in admins). Empty feedback (neither an answer nor a comment) is refused."""
    comment = (comment or "").strip()[:MAX_COMMENT_CHARS]
    if useful is None and not comment:
        raise ValueError("empty feedback")
    feedback = PageFeedback(page=page, useful=useful, comment=comment or None, locale=locale)
    db.session.add(feedback)
    db.session.flush()
    record("page_feedback_received", target_type="page_feedback", target_id=feedback.id)
    queue_email(
        template="page_feedback_staff",
        recipient=current_app.config["STAFF_NOTIFICATION_EMAIL"],
        subject="Feedback on an information page",
        locale="en",
        feedback_url=public_url(url_for("admin.page_feedback")),
    )
    db.session.commit()
    return feedback


def recent_feedback() -> list[PageFeedback]:
    """The latest feedback, newest first."""
    query = db.select(PageFeedback).order_by(PageFeedback.created_at.desc(), PageFeedback.id.desc())
    return list(db.session.scalars(query.limit(PAGE_SIZE)))


def feedback_counts() -> dict[str, tuple[int, int]]:
    """Per page: (how many found it useful, how many did not)."""
    rows = db.session.execute(
        db.select(PageFeedback.page, PageFeedback.useful, func.count()).group_by(
            PageFeedback.page, PageFeedback.useful
        )
    )
    counts: dict[str, list[int]] = {}
    for page, useful, count in rows:
        if useful is not None:
            counts.setdefault(page, [0, 0])[0 if useful else 1] += count
    return {page: (yes, no) for page, (yes, no) in counts.items()}
