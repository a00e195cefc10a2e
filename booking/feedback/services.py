"""Storing feedback on an information page and telling the admins, at most hourly, that it
arrived."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from flask import current_app
from flask_babel import force_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError

from booking.audit.services import record
from booking.extensions import db
from booking.feedback.models import MAX_COMMENT_CHARS, FeedbackAnnouncement, PageFeedback
from booking.notifications.services import enqueue_delivery, queue_email
from booking.staff.services import active_admin_emails
from booking.timeutil import now_utc
from booking.urlargs import public_url

# How many recent comments the admin page lists.
PAGE_SIZE = 100
RETENTION_ACTOR = "system:retention"

# The information pages by their slug (``booking.content.reviews.REVIEWS``), as the site's
# menu names them: what the audit trail calls the page a piece of feedback was about.
PAGE_NAMES = {
    "home": _l("Home page"),
    "evaluation": _l("The evaluation"),
    "conditions": _l("Conditions"),
    "treatments": _l("Treatments"),
    "prepare": _l("Prepare and FAQ"),
}


def page_name(slug: str) -> str:
    """An information page's name ("Treatments"), or its slug when it has none (a page
    since removed)."""
    name = PAGE_NAMES.get(slug)
    return str(name) if name is not None else slug


def feedback_pages(ids: Iterable[int]) -> dict[int, str]:
    """By id, the slug of the page each piece of feedback still stored is about: one query.
    Feedback deleted after its keeping time is not in it."""
    wanted = set(ids)
    if not wanted:
        return {}
    rows = db.session.execute(
        select(PageFeedback.id, PageFeedback.page).where(PageFeedback.id.in_(wanted))
    )
    return {feedback_id: page for feedback_id, page in rows}


def submit_feedback(*, page: str, useful: bool | None, comment: str, locale: str) -> PageFeedback:
    """Store a reader's feedback on ``page``; empty feedback (neither an answer nor a comment)
    is refused. The admins are told it arrived (``_announce``) at most once an hour."""
    comment = (comment or "").strip()[:MAX_COMMENT_CHARS]
    if useful is None and not comment:
        raise ValueError("empty feedback")
    now = now_utc()
    feedback = PageFeedback(
        page=page, useful=useful, comment=comment or None, locale=locale, created_at=now
    )
    db.session.add(feedback)
    db.session.flush()
    # The page's slug is kept with the row (never the comment): the audit trail still names
    # the page once the feedback itself is deleted after its keeping time.
    record(
        "page_feedback_received",
        target_type="page_feedback",
        target_id=feedback.id,
        details={"page": page},
    )
    email_ids: list[int] = []
    claimed, last = _claim_announcement(now)
    if claimed:
        # The feedback since the last email, this one included (the first ever: this one).
        email_ids = _announce(1 if last is None else _count_since(last) or 1)
    db.session.commit()
    enqueue_delivery(email_ids)  # now, not at the sweep's next pass minutes later
    return feedback


# Feedback is anonymous, limited only per network address: an email for each would let a
# few addresses bury the clinic's inboxes. The first feedback after a quiet period is
# announced; the next ones are stored (the admin page lists them) and counted in the next
# announcement.
ANNOUNCED = "page_feedback_announced"
ANNOUNCE_EVERY = timedelta(hours=1)
FEEDBACK_PAGE = "/staff/admin/feedback"  # the admins' page (admin.page_feedback)


def _claim_announcement(now: datetime) -> tuple[bool, datetime | None]:
    """Claim the announcement due at ``now``, for one transaction only: (True, when the
    previous one was made, None if never) to the one that claims it; (False, None) when
    one was made within ``ANNOUNCE_EVERY``, or another transaction claimed it first.

    Reading the last announcement and then writing one let two readers posting at the same
    moment (PostgreSQL: neither sees the other's uncommitted row) both email the admins.
    The claim is a conditional update of the one ``FeedbackAnnouncement`` row: a second
    transaction's update waits for the first's commit, then finds the row no longer due
    and changes nothing (SQLite's BEGIN IMMEDIATE serialises the two anyway). The first
    announcement ever inserts the row; a concurrent twin fails on its primary key."""
    row = FeedbackAnnouncement.ROW
    last = db.session.scalar(
        select(FeedbackAnnouncement.announced_at).where(FeedbackAnnouncement.id == row)
    )
    if last is None:
        try:
            with db.session.begin_nested():
                db.session.add(FeedbackAnnouncement(id=row, announced_at=now))
        except IntegrityError:
            return False, None
        return True, None
    if last > now - ANNOUNCE_EVERY:
        return False, None
    claimed = db.session.execute(
        update(FeedbackAnnouncement)
        .where(
            FeedbackAnnouncement.id == row,
            FeedbackAnnouncement.announced_at <= now - ANNOUNCE_EVERY,
        )
        .values(announced_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    return (True, last) if claimed else (False, None)


def _count_since(moment: datetime) -> int:
    return (
        db.session.scalar(
            select(func.count()).select_from(PageFeedback).where(PageFeedback.created_at > moment)
        )
        or 0
    )


def _announce(count: int) -> list[int]:
    """Email the admins (none active: the clinic's notification address) that ``count``
    pieces of feedback arrived since the last such email; in the caller's transaction,
    audited. Only that feedback arrived: no comment, no page (the admin page shows them to
    signed-in admins). The emails' ids. The callers keep to ``ANNOUNCE_EVERY``."""
    record(ANNOUNCED, target_type="page_feedback", details={"count": count}, with_address=False)
    staff_locale = str(current_app.config["BABEL_DEFAULT_LOCALE"])  # as every staff email
    with force_locale(staff_locale):
        subject = _("Feedback on an information page")
    emails = [
        queue_email(
            template="page_feedback_staff",
            recipient=address,
            subject=subject,
            locale=staff_locale,
            count=count,
            # A path, not url_for: the periodic job runs outside any request.
            feedback_url=public_url(FEEDBACK_PAGE),
        )
        for address in active_admin_emails() or [current_app.config["STAFF_NOTIFICATION_EMAIL"]]
    ]
    db.session.flush()
    return [email.id for email in emails]


def announce_held_feedback(now: datetime | None = None) -> list[int]:
    """The periodic job's half of ``_announce``: feedback that arrived within the hour after
    an announcement waits for the next feedback to be counted; if none comes, it would never
    be announced. Once the hour is over, it is. Commits; returns the emails' ids."""
    now = now or now_utc()
    # Claimed as a reader's feedback claims it: the two never both announce.
    claimed, last = _claim_announcement(now)
    # Never announced: nothing stored yet (the first is announced at once). Nothing held:
    # no email, and the claim is given back.
    held = _count_since(last) if claimed and last is not None else 0
    if not held:
        db.session.rollback()
        return []
    email_ids = _announce(held)
    db.session.commit()
    return email_ids


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


def purge_old_feedback(now: datetime | None = None) -> int:
    """Delete feedback older than ``FEEDBACK_RETENTION_DAYS`` (0: kept), for the nightly
    retention job. A comment may hold whatever a reader typed, so it is not kept for ever;
    the counts of older "useful" answers go with it. Audited with the cutoff and how many
    rows went, nothing of their content. Returns the rows deleted; a second run finds none."""
    days = current_app.config.get("FEEDBACK_RETENTION_DAYS")
    if not days:
        return 0
    cutoff = (now or now_utc()) - timedelta(days=int(days))
    purged = (
        db.session.execute(
            delete(PageFeedback).where(PageFeedback.created_at < cutoff),
            execution_options={"synchronize_session": False},
        ).rowcount
        or 0
    )
    if purged:
        record(
            "page_feedback_purged",
            target_type="page_feedback",
            actor_email=RETENTION_ACTOR,
            details={"cutoff": cutoff.isoformat(), "rows": purged},
            with_address=False,
        )
    db.session.commit()
    return purged
