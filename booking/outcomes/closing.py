"""Whether the clinic closed a sent follow-up's link early for a later time point: the rule
in SQL, shared by the clinic's results (``results.response_counts``: neither open nor a
non-response) and the staff pages of each patient's follow-ups (``progress``), so that both
say the same of the same link."""

from __future__ import annotations

from datetime import timedelta

from flask import current_app
from sqlalchemy import ColumnElement, Interval, and_, func, literal, select
from sqlalchemy.orm import aliased

from booking.extensions import db
from booking.outcomes.models import FollowUp

# A link closed this close to its normal end is taken to have lived it (SQLite's day numbers
# are floating point: an exact end may read a hair short).
LINK_END_SLACK = timedelta(minutes=1)


def closed_for_later() -> ColumnElement[bool]:
    """Whether a sent follow-up's link (``FollowUp`` in the enclosing query) was closed by the
    clinic for a later time point: it ended before its invitation's normal end
    (``FOLLOWUP_LINK_DAYS`` after it went), and a later time point of the same request (a
    row recorded after it: sent, recorded missed, or since superseded by another correction
    of the date) fell due while it was still open.
    Both ways the clinic closes a link do that: the procedure date brought forward
    (``correct_procedure_date``: the next time point is due already under the new date),
    and a time point added to the schedule falling due (``_invite``). A link that lived its
    life is not: nor one that ended at the next time point's due time (an invitation's link
    never outlives it, ``_invite``), nor one expired before the date was brought forward.
    The row's answer, stop and contact are the caller's to check."""
    later = aliased(FollowUp)
    life = timedelta(days=current_app.config["FOLLOWUP_LINK_DAYS"]) - LINK_END_SLACK
    if db.session.get_bind().dialect.name == "sqlite":  # no date arithmetic: day numbers
        early = func.julianday(FollowUp.expires_at) < func.julianday(FollowUp.sent_at) + (
            life / timedelta(days=1)
        )
    else:
        early = FollowUp.expires_at < FollowUp.sent_at + literal(life, Interval())
    return and_(
        early,
        select(later.id)
        .where(
            later.request_id == FollowUp.request_id,
            # Rows are recorded in the schedule's order: a later id is a later time point.
            later.id > FollowUp.id,
            later.due_at < FollowUp.expires_at,
        )
        .exists(),
    )
