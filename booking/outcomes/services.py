"""The follow-up's life: the plan recorded at completion, the invitations and their one
reminder (each sent once, whatever runs the job), the patient's answers and stop, and staff
marking a patient deceased.

Exactly once, as for appointment reminders (``booking.requests.reminders``): a ``FollowUp``
row, unique per request and time point (among the rows not superseded by a corrected
procedure date), is inserted in the same transaction as the invitation
email; a second worker doing the same work hits the unique key and sends nothing. The reminder
is claimed by a conditional update (``reminded_at IS NULL``) in the transaction of its email.
After the worker was down, each request gets the latest time point that is due and whose link
would still work; the earlier ones are recorded as missed, never sent late. A time point the
clinic adds to the schedule applies to each patient only after the latest one already
recorded for them: the questionnaires keep their order.

Who is invited: completed requests with a plan whose patient agreed to follow-up at intake,
has an email address, is not marked deceased and did not stop the invitations. An erased
patient's rows are gone, with these.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import ColumnElement, delete, exists, func, select, update
from sqlalchemy.exc import IntegrityError, NoResultFound
from sqlalchemy.orm import joinedload

from booking.audit.services import record
from booking.crypto import text_digest
from booking.extensions import db
from booking.notifications.models import OutboxEmail
from booking.notifications.services import enqueue_delivery, queue_each
from booking.outcomes import emails
from booking.outcomes import measures as m
from booking.outcomes.labels import GPE_WORSE
from booking.outcomes.models import (
    PAIN_COLUMNS,
    FollowUp,
    FollowUpLink,
    OutcomeSettings,
    Plan,
    TreatmentPlan,
)
from booking.outcomes.schedule import (
    DEFAULT_SCHEDULE,
    Point,
    due_at,
    due_day,
    parse_point,
    start_of,
)
from booking.requests import emails as request_emails
from booking.requests.lifecycle import WorkflowError, check_may_work
from booking.requests.models import ConsultationRequest, Patient, RequestStatus, may_be_contacted
from booking.requests.queries import lock_request
from booking.staff.models import StaffUser
from booking.timeutil import clinic_date, clinic_today, clinic_tz, now_utc, to_clinic_tz

log = logging.getLogger(__name__)


def settings() -> OutcomeSettings:
    """The clinic's outcome settings, or the published defaults before the first save."""
    saved = db.session.get(OutcomeSettings, 1)
    if saved is not None:
        return saved
    return default_settings()


def default_settings() -> OutcomeSettings:
    """The published defaults, not added to the session."""
    return OutcomeSettings(
        id=1,
        schedule=list(DEFAULT_SCHEDULE),
        odi_points=m.DEFAULT_ODI_POINTS,
        ndi_points=m.DEFAULT_NDI_POINTS,
        pain_points=m.DEFAULT_PAIN_POINTS,
        relative_percent=m.DEFAULT_RELATIVE_PERCENT,
        public_figures=False,
    )


@dataclass(frozen=True)
class SettingsChange:
    schedule: list[str]
    odi_points: float
    ndi_points: float
    pain_points: float
    relative_percent: float
    public_figures: bool


def save_settings(change: SettingsChange, actor: StaffUser) -> OutcomeSettings:
    """Only an administrator sets the schedule, the thresholds and the public figures."""
    if actor.role.value != "admin":
        raise WorkflowError(_("Only an administrator can change these settings."))
    saved = db.session.get(OutcomeSettings, 1)
    if saved is None:
        saved = settings()
        db.session.add(saved)
    # Every setting the change sets, the public figures' switch included: the trail must show
    # when the clinic began (or stopped) publishing its results.
    before = {name: getattr(saved, name) for name in vars(change)}
    for name, value in vars(change).items():
        setattr(saved, name, value)
    if before != vars(change):
        record(
            "outcome_settings_changed",
            target_type="outcome_settings",
            target_id=1,
            actor=actor,
            details={"before": before, "after": vars(change)},
        )
    db.session.commit()
    return saved


def consulted_on(consultation: ConsultationRequest) -> date:
    """The day of the consultation, clinic time: its appointment's, else today."""
    appointment = consultation.appointment
    if appointment is not None:
        return to_clinic_tz(appointment.starts_at).date()
    return clinic_today()


# The latest procedure date a plan takes: a mistyped year ("2062") would put the patient's
# follow-ups off by decades (or, past the calendar's end, stop the job that sends them).
MAX_PROCEDURE_WAIT = timedelta(days=3 * 365)


def _check_procedure_date(procedure_date: date, consulted: date) -> None:
    if procedure_date < consulted:
        raise WorkflowError(
            _(
                "The procedure date cannot be before the consultation (%(day)s): follow-up "
                "questionnaires count from it.",
                day=clinic_date(consulted),
            )
        )
    if procedure_date > consulted + MAX_PROCEDURE_WAIT:
        raise WorkflowError(
            _(
                "The procedure date is more than %(years)d years after the consultation: "
                "please check the year. Follow-up questionnaires count from it.",
                years=MAX_PROCEDURE_WAIT.days // 365,
            )
        )


def record_plan(
    consultation: ConsultationRequest,
    plan: Plan,
    procedure_date: date | None,
    actor: StaffUser,
) -> TreatmentPlan:
    """The plan decided at completion; flushes only (the completion commits). A procedure
    date before the consultation is refused: follow-ups count from it, and the answers
    given at the request would then be a baseline taken after the procedure."""
    consulted = consulted_on(consultation)
    if procedure_date is not None:
        _check_procedure_date(procedure_date, consulted)
    row = db.session.get(TreatmentPlan, consultation.id)
    if row is None:
        row = TreatmentPlan(request_id=consultation.id, consulted_on=consulted)
        db.session.add(row)
    row.plan = plan
    row.procedure_date = procedure_date
    row.decided_at = now_utc()
    row.decided_by_id = actor.id
    record(
        "treatment_plan_recorded",
        target_type="request",
        target_id=consultation.reference,
        actor=actor,
        details={
            "plan": plan.value,
            "procedure_date": procedure_date.isoformat() if procedure_date else None,
        },
    )
    db.session.flush()
    return row


# The plans that are a procedure done on a day (an injection, an operation): a date can be
# added to theirs after completion. Any other plan given a date at completion may have it
# corrected too.
PROCEDURE_PLANS = frozenset({Plan.INJECTION, Plan.MINIMALLY_INVASIVE, Plan.OPEN_SURGERY})


def may_correct_procedure_date(plan: TreatmentPlan | None) -> bool:
    """Whether the record page offers to correct (or add) the plan's procedure date."""
    return plan is not None and (plan.procedure_date is not None or plan.plan in PROCEDURE_PLANS)


def procedure_key(plan: TreatmentPlan) -> str:
    """The procedure date as a page shows it ("" for none): the correction form carries it, so
    a correction made from a page showing another date (a colleague corrected it since) is
    refused instead of undoing theirs."""
    return plan.procedure_date.isoformat() if plan.procedure_date is not None else ""


@dataclass(frozen=True)
class ProcedureDateCorrected:
    """What ``correct_procedure_date`` did to the follow-ups: the time points recorded as
    missed under the old date that are now still to come (the sender invites them at their
    new time), the time points whose sent row was superseded (sent too early for the new
    date, or answered before it: asked again at their new time), the time points whose
    open, unanswered invitation was closed, and those whose row an earlier correction
    superseded that count again under this date (``restored``: a date typed by mistake and
    corrected back)."""

    rescheduled: list[str]
    superseded: list[str]
    closed: list[str]
    restored: list[str] = field(default_factory=list)
    # False for a correction not saved, to be confirmed first (``ask_first``).
    saved: bool = True

    @property
    def ends_any(self) -> bool:
        """Whether it supersedes or closes a questionnaire: what staff confirm first."""
        return bool(self.superseded or self.closed)


def correct_procedure_date(
    consultation: ConsultationRequest,
    procedure_date: date,
    actor: StaffUser,
    *,
    shown: str | None = None,
    ask_first: bool = False,
    now: datetime | None = None,
) -> ProcedureDateCorrected:
    """Correct (or add) the procedure date of a completed request's plan: the operation was
    postponed or brought forward. The rules of ``record_plan`` hold (not before the
    consultation, not more than ``MAX_PROCEDURE_WAIT`` after it). Refused for a plan that is
    no procedure and had no date, when the date is unchanged, or when it changed since the
    page showed it (``shown``: ``procedure_key``). Audited with the dates before and after.

    The follow-ups count from the new date. Those still to come are no rows (the sender
    works them out from the plan), so they move with it. A time point asked too early for
    the new date (``_asked_too_early``: sent before its new due time and not answered once
    that time had come; the operation postponed) is superseded (``FollowUp.superseded_at``):
    kept as it was, answers and all, but no longer its time point's row, its link closed if
    still open (answered now, it would be that time point's result taken weeks early); the
    sender asks the time point again at its new time (or records it missed when that time is
    past beyond its link's life), whenever the correction is made. Only when no later time
    point's row stays: the questionnaires keep their order, and one superseded behind a
    later one kept would never be asked again; it stays as what happened (an answer from
    before the treatment started is still no result: ``schedule.answered_before_start``).
    Any other time point sent is kept as it was; but its link, still open, is closed when a
    later time point is already due under the new date (the operation brought forward): the
    sender invites that one (``_points_due``), one questionnaire open at a time. A row an
    earlier correction superseded whose time point has no answer sent since is given back
    when it would not be superseded under this date (a date typed by mistake, corrected
    back). A time point recorded as missed that is now still to come is removed, so it is
    invited at its new time, unless a later time point's row stays; one that is past under
    the new date too stays missed, its due time counted from the new date.

    With ``ask_first`` (staff have not confirmed it), a correction that would supersede or
    close a questionnaire (``ends_any``) is rolled back, changing nothing, and returned
    ``saved`` False: what it would do, for staff to confirm. One that would do neither is
    saved at once: in the same transaction as its check, so nothing sent in between is
    superseded unasked."""
    done = _correct_procedure_date(consultation, procedure_date, actor, shown=shown, now=now)
    if ask_first and done.ends_any:
        db.session.rollback()
        return replace(done, saved=False)
    db.session.commit()
    return done


def _correct_procedure_date(
    consultation: ConsultationRequest,
    procedure_date: date,
    actor: StaffUser,
    *,
    shown: str | None,
    now: datetime | None,
) -> ProcedureDateCorrected:
    """``correct_procedure_date`` up to its commit (flushed, audited)."""
    now = now or now_utc()
    consultation = lock_request(consultation)
    check_may_work(consultation, actor)
    plan = db.session.get(TreatmentPlan, consultation.id, populate_existing=True)
    if (
        plan is None
        or consultation.status != RequestStatus.COMPLETED
        or not may_correct_procedure_date(plan)
    ):
        raise WorkflowError(_("This request's plan has no procedure date to correct."))
    if shown is not None and shown != procedure_key(plan):
        raise WorkflowError(
            _(
                "The procedure date was changed while you had this page open. Nothing was "
                "saved: check it as it is now, then try again."
            )
        )
    if procedure_date == plan.procedure_date:
        raise WorkflowError(_("That is the procedure date already: nothing changed."))
    _check_procedure_date(procedure_date, plan.consulted_on)
    before = plan.procedure_date
    plan.procedure_date = procedure_date
    start, tz = start_of(plan.consulted_on, procedure_date), clinic_tz()
    # Locked, after the request (the order every change takes): a patient's answer is no
    # change of the request and takes no request lock, so read unlocked it could commit
    # between this read and the decision, and be reported "closed, not answered".
    rows = list(
        db.session.scalars(
            select(FollowUp)
            .where(FollowUp.request_id == plan.request_id)
            .order_by(FollowUp.id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    )
    live = {f.point: f for f in rows if f.superseded_at is None}
    # Each time point's latest superseded row: a correction undone (a date typed by mistake)
    # gives it back.
    gone = {
        f.point: f
        for f in sorted(
            (f for f in rows if f.superseded_at is not None),
            key=lambda f: (f.superseded_at, f.id),
        )
    }
    done = ProcedureDateCorrected([], [], [], [])
    # From the last time point back: once a later one's row stays, the earlier ones stay too
    # (what happened, in order; the sender never goes back before a time point recorded),
    # so a time point is superseded only when it will be asked again.
    kept_later = False
    for point in sorted(live.keys() | gone.keys(), key=parse_point, reverse=True):
        new_due = due_at(start, point, tz)
        follow_up, old = live.get(point), gone.get(point)
        if (
            old is not None
            and (follow_up is None or follow_up.sent_at is None)
            and (kept_later or not _asked_too_early(old, new_due))
        ):
            if follow_up is not None:  # only recorded missed since: the answer sent stands
                db.session.delete(follow_up)
                db.session.flush()  # one live row per time point, before the one given back
            old.superseded_at = None
            done.restored.append(point)
            kept_later = True
        elif follow_up is None:
            continue  # stays superseded: asked again at its new time
        elif follow_up.sent_at is None:
            if new_due <= now:
                follow_up.due_at = new_due  # missed under the new date too
                kept_later = True
            elif kept_later:
                kept_later = True  # a later time point was asked: the order holds
            else:
                db.session.delete(follow_up)  # never sent, no link, no answers
                done.rescheduled.append(point)
        elif not kept_later and _asked_too_early(follow_up, new_due):
            if _link_open(follow_up, now):
                follow_up.expires_at = now
                done.closed.append(point)
            follow_up.superseded_at = now
            done.superseded.append(point)
        else:
            kept_later = True
            if _link_open(follow_up, now) and any(
                due_at(start, later.code, tz) <= now for later in _after(point)
            ):
                # Brought forward: the next time point is due already, and the sender
                # invites it now; one questionnaire open at a time, none answered after the
                # next is due.
                follow_up.expires_at = now
                done.closed.append(point)
    for points in (done.rescheduled, done.superseded, done.closed, done.restored):
        points.sort(key=parse_point)  # in the schedule's order, as read
    record(
        "treatment_plan_corrected",
        target_type="request",
        target_id=consultation.reference,
        actor=actor,
        details={
            "procedure_date": {
                "before": before.isoformat() if before else None,
                "after": procedure_date.isoformat(),
            },
            "follow_ups_rescheduled": done.rescheduled,
            "follow_ups_superseded": done.superseded,
            "invitations_closed": done.closed,
            **({"follow_ups_restored": done.restored} if done.restored else {}),
        },
    )
    db.session.flush()
    return done


def _asked_too_early(follow_up: FollowUp, new_due: datetime) -> bool:
    """Whether a time point's row, under a corrected procedure date due at ``new_due``, was
    asked too early: sent before that time and not answered once it had come (any answer
    given before the new date is one: it came after its invitation, and a time point is due
    a week or more after the start). One answered once the new due time had come (the date
    moved by days) is that time point's answer, taken at its time."""
    return (
        follow_up.sent_at is not None
        and follow_up.sent_at < new_due
        and (follow_up.answered_at is None or follow_up.answered_at < new_due)
    )


def _link_open(follow_up: FollowUp, now: datetime) -> bool:
    """Unanswered, and its link (if one was sent) still works at ``now``."""
    return (
        follow_up.answered_at is None
        and follow_up.expires_at is not None
        and follow_up.expires_at > now
    )


def _lock_request(request_id: int) -> bool:
    """Lock the request's row for the rest of this transaction (``lock_request``); False when
    it was erased since it was read.

    Taken before any follow-up row is written: staff correcting the procedure date hold this
    lock and then update the request's follow-ups, so a path that held a follow-up row first
    and then waited for the request (an email written to the outbox takes a share of the
    request's row through its foreign key) would deadlock with them on PostgreSQL, and one of
    the two be aborted. Every path takes the request, then its follow-ups."""
    consultation = db.session.get(ConsultationRequest, request_id)
    if consultation is None:
        return False
    try:
        lock_request(consultation)
    except NoResultFound:  # erased after this session loaded it
        return False
    return True


def _after(point: str) -> list[Point]:
    """The clinic's time points after ``point``, in order."""
    return sorted(p for p in map(parse_point, settings().schedule) if p > parse_point(point))


def _still_eligible(request_id: int) -> bool:
    """Asked again just before an email is written (each is its own transaction, after the
    job's read): a patient who answered, stopped the invitations, withdrew consent or was
    marked deceased meanwhile is not sent it."""
    return (
        db.session.scalar(
            select(TreatmentPlan.request_id)
            .join(TreatmentPlan.request)
            .join(ConsultationRequest.patient)
            .where(TreatmentPlan.request_id == request_id, *eligible())
        )
        is not None
    )


def eligible() -> tuple[ColumnElement[bool], ...]:
    """The conditions every invitation and reminder is sent under (the request, its plan and
    its patient in the query)."""
    return (
        ConsultationRequest.status == RequestStatus.COMPLETED,
        ConsultationRequest.followup_consent.is_(True),
        # Consent to be contacted (withdrawn on the private page: "no reminders, earlier
        # times or follow-ups"), and not marked deceased: the rule the other jobs keep too.
        may_be_contacted(),
        TreatmentPlan.followups_stopped_at.is_(None),
        Patient.email.is_not(None),
    )


def oldest_followed_start(now: datetime) -> date | None:
    """The earliest treatment start (``schedule.start_of``) whose last time point's
    invitation may still be sent, or its link still be open, at ``now``; None when the
    clinic follows up nothing."""
    points = list(settings().schedule)
    if not points:
        return None
    link_days = timedelta(days=current_app.config["FOLLOWUP_LINK_DAYS"])
    today = to_clinic_tz(now).date()
    longest = max((due_day(today, p) - today for p in points), default=timedelta())
    # Months counted forward from today may be up to 3 days shorter than the same months
    # counted back from a start (31 October + 3 m is 31 January, 92 days; 5 February - 3 m
    # is 5 November, 92; from 5 February, 3 m is 89): the slack covers it, and a day more.
    return today - longest - link_days - timedelta(days=4)


def plan_start() -> ColumnElement[date]:
    """``schedule.start_of`` in SQL: the procedure date, else the consultation's."""
    return func.coalesce(TreatmentPlan.procedure_date, TreatmentPlan.consulted_on)


def followups_to_come(now: datetime) -> ColumnElement[bool] | None:
    """Whether a request (``ConsultationRequest`` in the enclosing query) may still be sent
    a follow-up invitation, or have one's link open, at ``now``: what the sender would invite
    (``eligible``), started recently enough. None when the clinic follows up nothing. The
    retention job keeps such a request (``booking.privacy``)."""
    oldest = oldest_followed_start(now)
    if oldest is None:
        return None
    return exists().where(
        TreatmentPlan.request_id == ConsultationRequest.id,
        Patient.id == ConsultationRequest.patient_id,
        plan_start() >= oldest,
        *eligible(),
    )


def send_due_followups(now: datetime | None = None) -> list[int]:
    """Queue every follow-up invitation that is due; return the outbox ids queued.

    One read lists the plans with a time point due (``followups_due``); each is then decided
    again and invited in its own transaction, under its request's lock (``invite_due``)."""
    now = now or now_utc()
    return queue_each(
        followups_due(now),
        lambda request_id: invite_due(request_id, now),
        "follow-up of request %s",
        log,
    )


def followups_due(now: datetime) -> list[int]:
    """The requests with a follow-up time point due at ``now`` as one read finds them, in id
    order: the sender's candidates, each decided again under its request's lock
    (``invite_due``). A plan whose procedure date staff correct after this read so that a
    time point falls due is invited by the next run."""
    oldest_start = oldest_followed_start(now)
    if oldest_start is None:
        return []
    points, tz = list(settings().schedule), clinic_tz()
    # Only plans whose last time point's link could still be open are read.
    plans = db.session.execute(
        select(TreatmentPlan.request_id, TreatmentPlan.consulted_on, TreatmentPlan.procedure_date)
        .join(TreatmentPlan.request)
        .join(ConsultationRequest.patient)
        .where(*eligible(), plan_start() >= oldest_start)
        .order_by(TreatmentPlan.request_id)
    ).all()
    recorded: dict[int, set[str]] = {}
    for request_id, point in db.session.execute(
        select(FollowUp.request_id, FollowUp.point).where(
            FollowUp.request_id.in_([plan.request_id for plan in plans]),
            FollowUp.superseded_at.is_(None),
        )
    ):
        recorded.setdefault(request_id, set()).add(point)
    db.session.commit()  # end the read; each request is its own transaction
    due = []
    for request_id, consulted, procedure in plans:
        try:
            start = start_of(consulted, procedure)
            if _points_due(start, points, recorded.get(request_id, set()), now, tz)[0]:
                due.append(request_id)
        except Exception:  # one plan's failure must not hold back every other patient's
            log.exception("follow-up of request %s failed; the others go on", request_id)
    return due


def _points_due(
    start: date, points: list[str], recorded: set[str], now: datetime, tz: ZoneInfo
) -> tuple[list[tuple[str, datetime]], datetime | None]:
    """The time points of a plan starting on ``start`` due at ``now`` and not ``recorded``
    (time point: due time), and the next time point's due time, if any.

    The plan's latest time point recorded, in the schedule's order: the schedule goes on
    from it. A time point the clinic added since (10 weeks, to a patient already asked at 3
    months) falls before it and is not invited: a "10 weeks" questionnaire answered after 3
    months would count as the 10-week result, with two links open at once. Nor is it
    recorded as missed: it was no part of this patient's schedule when its day came. The
    order is the time points', not their stored due times: those count from the date the
    plan had then, and a procedure date brought forward since puts the next time point's
    new due time before the last one's old one."""
    after = max((parse_point(point) for point in recorded), default=None)
    times = [(point, due_at(start, point, tz)) for point in points]
    due = [
        (point, at)
        for point, at in times
        if at <= now and point not in recorded and (after is None or parse_point(point) > after)
    ]
    return due, min((at for _, at in times if at > now), default=None)


def invite_due(request_id: int, now: datetime) -> int | None:
    """Invite one request's patient to the time points due at ``now`` (``_invite``), in one
    transaction; the outbox id, or None when nothing is to be sent.

    Decided under the request's lock, from the plan and its follow-ups as they are then:
    staff correcting the procedure date (``correct_procedure_date``, under the same lock)
    after the job's read move the time points, remove ones recorded missed and close open
    invitations, and an invitation going by the date the read found would undo that. A
    patient who stopped the invitations, withdrew consent or was marked deceased since the
    read is not invited."""
    if not _lock_request(request_id):
        db.session.rollback()
        return None
    plan = db.session.scalars(
        select(TreatmentPlan)
        .join(TreatmentPlan.request)
        .join(ConsultationRequest.patient)
        .where(TreatmentPlan.request_id == request_id, *eligible())
        .execution_options(populate_existing=True)
    ).one_or_none()
    if plan is None:
        db.session.rollback()
        return None
    recorded = set(
        db.session.scalars(
            select(FollowUp.point).where(
                FollowUp.request_id == request_id, FollowUp.superseded_at.is_(None)
            )
        )
    )
    due, next_at = _points_due(
        start_of(plan.consulted_on, plan.procedure_date),
        list(settings().schedule),
        recorded,
        now,
        clinic_tz(),
    )
    if not due:
        db.session.rollback()
        return None
    link_days = timedelta(days=current_app.config["FOLLOWUP_LINK_DAYS"])
    return _invite(plan, due, now, link_days, next_at)


def _invite(
    plan: TreatmentPlan,
    due: list[tuple[str, datetime]],
    now: datetime,
    link_days: timedelta,
    next_at: datetime | None,
) -> int | None:
    """Record the time points due, and invite to the latest of them (the others passed
    unsent). Its link works ``link_days``, but never past the next time point's due time: a
    late invitation (a worker down for weeks) must not have "6 weeks" answered after 3
    months, nor leave two questionnaires open at once."""
    latest_point, latest_at = max(due, key=lambda item: item[1])
    expires_at = now + link_days if next_at is None else min(now + link_days, next_at)
    send = now < latest_at + link_days
    email = None
    try:
        if send:
            # A time point the clinic added between two others can fall due while the
            # earlier one's link still works: it closes, one questionnaire open at a time.
            db.session.execute(
                update(FollowUp)
                .where(
                    FollowUp.request_id == plan.request_id,
                    FollowUp.answered_at.is_(None),
                    FollowUp.expires_at > now,
                )
                .values(expires_at=now)
            )
        for point, at in due:
            sending = send and point == latest_point
            follow_up = FollowUp(
                request_id=plan.request_id,
                point=point,
                due_at=at,
                sent_at=now if sending else None,
                expires_at=expires_at if sending else None,
            )
            db.session.add(follow_up)
            db.session.flush()
            if sending:
                email = emails.invitation(plan.request, follow_up)
        db.session.commit()
    except IntegrityError:
        db.session.rollback()  # another worker sent this time point first
        return None
    if email is None:
        return None
    log.info("follow-up %s invitation queued for request %s", latest_point, plan.request_id)
    return email.id


def send_due_followup_reminders(now: datetime | None = None) -> list[int]:
    """The one reminder of an invitation still unanswered ``FOLLOWUP_REMINDER_DAYS`` after it,
    while its link works; return the outbox ids queued."""
    now = now or now_utc()
    days = current_app.config["FOLLOWUP_REMINDER_DAYS"]
    if days <= 0:
        return []
    invitations = {
        follow_up_id: (request_id, expires_at)
        for follow_up_id, request_id, expires_at in db.session.execute(
            select(FollowUp.id, FollowUp.request_id, FollowUp.expires_at)
            .join(FollowUp.plan)
            .join(TreatmentPlan.request)
            .join(ConsultationRequest.patient)
            .where(
                *eligible(),
                FollowUp.sent_at <= now - timedelta(days=days),
                FollowUp.answered_at.is_(None),
                FollowUp.reminded_at.is_(None),
                FollowUp.expires_at > now,
            )
            .order_by(FollowUp.id)
        )
    }
    db.session.commit()
    return queue_each(
        invitations,
        lambda follow_up_id: _remind(follow_up_id, *invitations[follow_up_id], now),
        "follow-up reminder %s",
        log,
    )


def _remind(follow_up_id: int, request_id: int, expires_at: datetime, now: datetime) -> int | None:
    """Claim one follow-up's reminder and write its email, in one transaction; the outbox
    id, or None when another worker reminded it, it was answered, its link was closed or
    the patient is no longer invited.

    ``expires_at`` is the link's end as the job read it. A link is only ever closed early
    (a corrected procedure date, a later time point sent), at the moment it happens: after
    the job's ``now`` when it happens while the job runs, so ``expires_at > now`` would not
    see it, and the link changed since the read is what tells.

    Under the request's lock, taken before the claim (``_lock_request``)."""
    if not _lock_request(request_id):
        db.session.rollback()
        return None
    claimed = db.session.execute(
        update(FollowUp)
        .where(
            FollowUp.id == follow_up_id,
            FollowUp.reminded_at.is_(None),
            FollowUp.answered_at.is_(None),  # answered since the read: no reminder
            FollowUp.expires_at == expires_at,  # closed since the read: no reminder
        )
        .values(reminded_at=now)
    ).rowcount
    if claimed != 1:
        db.session.rollback()  # another worker reminded it, it was answered or closed
        return None
    follow_up = db.session.get_one(FollowUp, follow_up_id)  # claimed in this transaction
    if not _still_eligible(follow_up.request_id):
        db.session.rollback()
        return None
    email = emails.invitation(follow_up.plan.request, follow_up, reminder=True)
    db.session.commit()
    return email.id if email is not None else None


# ---- the patient's side -------------------------------------------------------------------


def link_for_token(token: str) -> FollowUpLink | None:
    """The follow-up link with this token, or None. Whether its questionnaire can still be
    answered is ``can_answer``'s question; stopping works from any link ever sent."""
    if not token or len(token) > 100:
        return None
    return db.session.scalar(
        select(FollowUpLink)
        .where(FollowUpLink.token_hash == text_digest(token))
        .options(
            joinedload(FollowUpLink.follow_up)
            .joinedload(FollowUp.plan)
            .joinedload(TreatmentPlan.request)
            .joinedload(ConsultationRequest.patient)
        )
    )


def link_among(tokens: Sequence[str], follow_up_id: int) -> tuple[FollowUpLink, str] | None:
    """The first of ``tokens`` (the values of the page's cookie) that is a link to the
    questionnaire ``follow_up_id``, with that token; None when none is. The browser may send
    several cookies of that name (one planted by a sibling site,
    ``booking.security.cookie_values``): a stranger's before the patient's must not close
    the page to them. One query for all of them."""
    digests = {text_digest(token): token for token in tokens if token and len(token) <= 100}
    if not digests:
        return None
    links = db.session.scalars(
        select(FollowUpLink)
        .where(
            FollowUpLink.token_hash.in_(list(digests)),
            FollowUpLink.follow_up_id == follow_up_id,
        )
        .options(
            joinedload(FollowUpLink.follow_up)
            .joinedload(FollowUp.plan)
            .joinedload(TreatmentPlan.request)
            .joinedload(ConsultationRequest.patient)
        )
    )
    found = {link.token_hash: link for link in links}
    for digest, token in digests.items():
        if digest in found:
            return found[digest], token
    return None


def can_answer(follow_up: FollowUp, now: datetime | None = None) -> bool:
    """Not answered, not superseded (``correct_procedure_date``), its link not expired, and
    the patient still followed up (``_still_followed``)."""
    return (
        follow_up.superseded_at is None
        and _link_open(follow_up, now or now_utc())
        and _still_followed(follow_up)
    )


def _still_followed(follow_up: FollowUp) -> bool:
    """Questionnaires not stopped, and the patient may still be contacted: not marked
    deceased (nobody else answers for them, nor alerts the clinic that they are worse),
    consent to be contacted not withdrawn. (``eligible`` is the rule in SQL.)"""
    consultation = follow_up.plan.request
    return (
        follow_up.plan.followups_stopped_at is None
        and consultation.contact_consent
        and consultation.patient.deceased_at is None
    )


def replaced_by_later(follow_up: FollowUp) -> bool:
    """Closed early for a later time point sent since: a live, unanswered follow-up whose link
    ended before its invitation's normal end (``FOLLOWUP_LINK_DAYS`` after it went), closed
    as the procedure date was brought forward (``correct_procedure_date``) or as a time point
    the clinic added fell due (``_invite``), and a later time point of the same request sent
    (live). Its patient was sent that one at once: the newest email is the one to use. Not
    for a patient no longer followed up (``_still_followed``), whose newer link answers no
    more either."""
    if (
        follow_up.answered_at is not None
        or follow_up.superseded_at is not None
        or follow_up.sent_at is None
        or follow_up.expires_at is None
    ):
        return False
    link_days = timedelta(days=current_app.config["FOLLOWUP_LINK_DAYS"])
    if follow_up.expires_at >= follow_up.sent_at + link_days or not _still_followed(follow_up):
        return False
    later = select(FollowUp.id).where(
        FollowUp.request_id == follow_up.request_id,
        FollowUp.id != follow_up.id,
        FollowUp.superseded_at.is_(None),
        FollowUp.sent_at > follow_up.sent_at,
    )
    return bool(db.session.scalar(select(later.exists())))


def mark_opened(link: FollowUpLink) -> None:
    link.opened_at = now_utc()
    db.session.commit()


def readdress_followups(
    consultation: ConsultationRequest, written: list[OutboxEmail]
) -> list[OutboxEmail]:
    """Staff changed the patient's email address (``correct_contact``, or failed emails sent
    again to another address): the old one may be somebody else's mailbox, so every
    follow-up link sent so far stops working, as the manage links do (``revoke_all``); a
    questionnaire link there would go on answering for the patient, or stopping their
    follow-ups. Kept: the links in ``written``, the copies just made for the new address of
    invitations that never reached the old one. Each questionnaire still open that is left
    without a link is sent again to the new address (none when nothing may go to the
    patient). Flushes; the caller commits. The invitations written."""
    kept = {
        text_digest(token)
        for email in written
        if email.template == emails.INVITATION_TEMPLATE and (token := emails.token_in(email))
    }
    follow_ups = list(
        db.session.scalars(select(FollowUp).where(FollowUp.request_id == consultation.id))
    )
    if not follow_ups:
        return []
    ids = [follow_up.id for follow_up in follow_ups]
    db.session.execute(
        delete(FollowUpLink).where(
            FollowUpLink.follow_up_id.in_(ids), FollowUpLink.token_hash.not_in(kept)
        )
    )
    linked = set(
        db.session.scalars(
            select(FollowUpLink.follow_up_id).where(FollowUpLink.follow_up_id.in_(ids))
        )
    )
    now = now_utc()
    invited = [
        emails.invitation(consultation, follow_up)
        for follow_up in follow_ups
        if follow_up.sent_at is not None
        and follow_up.id not in linked
        and can_answer(follow_up, now)
    ]
    return [email for email in invited if email is not None]


@dataclass(frozen=True)
class FollowUpAnswers:
    odi_answers: dict[str, int]
    odi_percent: float | None
    ndi_answers: dict[str, int]
    ndi_percent: float | None
    pain: dict[str, int]  # column name (PAIN_COLUMNS) -> 0-10
    gpe: int
    satisfaction: int


class AlreadyAnswered(Exception):  # noqa: N818
    pass


def answer_followup(follow_up: FollowUp, answers: FollowUpAnswers) -> None:
    """Store the patient's answers once: a second post (a double tap, another tab) finds the
    time point answered and changes nothing. A patient who says they are much worse
    (``GPE_WORSE``) is brought to the clinic's attention by an email, in the same
    transaction."""
    if not can_answer(follow_up):
        raise AlreadyAnswered
    # The request's lock before the follow-up's row (``_lock_request``): the notice of a
    # patient much worse is written to the outbox after the answers.
    if not _lock_request(follow_up.request_id):
        db.session.rollback()
        raise AlreadyAnswered
    values = {
        "answered_at": now_utc(),
        "odi_answers": answers.odi_answers,
        "odi_percent": answers.odi_percent,
        "ndi_answers": answers.ndi_answers,
        "ndi_percent": answers.ndi_percent,
        "gpe": answers.gpe,
        "satisfaction": answers.satisfaction,
        **{name: answers.pain.get(name) for name in PAIN_COLUMNS},
    }
    claimed = db.session.execute(
        update(FollowUp)
        .where(
            FollowUp.id == follow_up.id,
            FollowUp.answered_at.is_(None),
            FollowUp.superseded_at.is_(None),
            # Checked again as it is stored: stopped, or the patient marked deceased or their
            # consent withdrawn, since the page was read.
            FollowUp.expires_at > values["answered_at"],
            FollowUp.request_id.in_(
                select(TreatmentPlan.request_id)
                .join(ConsultationRequest, ConsultationRequest.id == TreatmentPlan.request_id)
                .where(TreatmentPlan.followups_stopped_at.is_(None), may_be_contacted())
            ),
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    ).rowcount
    if claimed != 1:
        db.session.rollback()
        raise AlreadyAnswered
    db.session.refresh(follow_up)
    alert = None
    if answers.gpe in GPE_WORSE:
        alert = emails.worse_notice(follow_up.plan.request, follow_up)
    db.session.commit()
    if alert is not None:
        enqueue_delivery([alert.id])


def stop_followups(follow_up: FollowUp) -> None:
    """No further invitation or reminder for this request; kept, not undone by another stop."""
    plan = follow_up.plan
    if plan.followups_stopped_at is None:
        plan.followups_stopped_at = now_utc()
        record(
            "followups_stopped",
            target_type="request",
            target_id=plan.request.reference,
            actor=None,
            details={"point": follow_up.point},
        )
    db.session.commit()


# ---- staff ---------------------------------------------------------------------------------


def mark_deceased(consultation: ConsultationRequest, actor: StaffUser) -> None:
    """Record that the patient died: no follow-up is ever sent to them again, nor reminders,
    earlier-time offers or reminders to send something (``requests.models.may_be_contacted``).
    Only a coordinator or an administrator may; audited."""
    if not actor.works_every_request:
        raise WorkflowError(
            _("Only a coordinator or an administrator can mark a patient deceased.")
        )
    check_may_work(consultation, actor)
    # Under the request's lock: a change writing an email to the patient finishes first,
    # and its email is withdrawn below (one written by a change of another of their
    # requests meanwhile is dropped when it is sent: ``emails.deceased_at_delivery``).
    consultation = lock_request(consultation)
    patient = db.session.get_one(Patient, consultation.patient_id)
    if patient.deceased_at is not None:
        raise WorkflowError(_("This patient is already marked deceased."))
    patient.deceased_at = now_utc()
    # Nothing written to them before and not sent yet goes either (the page promises it).
    withdrawn = request_emails.withdraw_to_deceased(patient)
    record(
        "patient_marked_deceased",
        target_type="request",
        target_id=consultation.reference,
        actor=actor,
        details={"emails_withdrawn": withdrawn} if withdrawn else None,
    )
    db.session.commit()
