"""Whether the clinic closed a sent follow-up's link early for a later time point, and
whether it closed while the patient was still followed up: the rules in SQL, shared by the
clinic's results (``results.response_counts``) and the staff pages of each patient's
follow-ups (``progress``), so that both say the same of the same link."""

from __future__ import annotations

from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import ColumnElement, Interval, and_, func, literal, or_, select
from sqlalchemy.orm import aliased

from booking.extensions import db
from booking.outcomes.models import FollowUp, TreatmentPlan
from booking.requests.models import ConsultationRequest, Patient

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


def closed_while_followed() -> ColumnElement[bool]:
    """Whether a sent follow-up (``FollowUp`` in the enclosing query) closed while its patient
    was still followed up: its link expired, or the patient stopped the questionnaires, before
    (or as) they were marked deceased or withdrew their consent to be contacted, or neither
    happened. A time point counts by its status when it closed, as registries count follow-up
    (docs/clinical-content.md): one that lapsed unanswered is a non-response even when the
    death or withdrawal was marked weeks later; only one still open then leaves the response
    rate. A withdrawal without its date (consent never given) is taken to predate the link.
    ``is_closed_while_followed`` is the rule in Python; the two must agree. Never NULL (an
    EXISTS), so its negation is safe."""
    request = aliased(ConsultationRequest)
    patient = aliased(Patient)
    plan = aliased(TreatmentPlan)

    def closed_by(moment: ColumnElement[datetime]) -> ColumnElement[bool]:
        return or_(FollowUp.expires_at <= moment, plan.followups_stopped_at <= moment)

    return (
        select(request.id)
        .join(patient, patient.id == request.patient_id)
        .join(plan, plan.request_id == request.id)
        .where(
            request.id == FollowUp.request_id,
            or_(patient.deceased_at.is_(None), closed_by(patient.deceased_at)),
            or_(
                request.contact_consent.is_(True),
                and_(
                    request.contact_consent_withdrawn_at.is_not(None),
                    closed_by(request.contact_consent_withdrawn_at),
                ),
            ),
        )
        .exists()
    )


def is_closed_while_followed(follow_up: FollowUp) -> bool:
    """``closed_while_followed`` of one follow-up, read from its loaded plan and request."""
    stopped_at = follow_up.plan.followups_stopped_at
    consultation = follow_up.plan.request

    def closed_by(moment: datetime | None) -> bool:
        return moment is not None and (
            (follow_up.expires_at is not None and follow_up.expires_at <= moment)
            or (stopped_at is not None and stopped_at <= moment)
        )

    deceased_at = consultation.patient.deceased_at
    return (deceased_at is None or closed_by(deceased_at)) and (
        consultation.contact_consent or closed_by(consultation.contact_consent_withdrawn_at)
    )
