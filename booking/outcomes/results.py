"""The clinic's results: the response rate per time point, the share of patients improved
beyond the threshold by plan, diagnosis and specialist (each with its 95 % Wilson interval,
groups under ``MIN_GROUP`` suppressed), the public figure on the treatments page (computed by
the same code), and the pseudonymised registry export.

Who counts: requests completed with a plan whose treatment started (the procedure date, else
the consultation) in the period, and that answered the chosen time point. "Improved" is judged
on the disability index the patient's main problem was asked (the ODI for the lower back and
for both regions, the NDI for the neck), against the clinic's threshold; a patient without a
score at the baseline or at the time point is not counted ("not scored"). An answer given
before the treatment started (the procedure postponed after the patient answered) is no result
of its time point and is counted nowhere here (``schedule.answered_before_start``); nor is a
follow-up superseded by a corrected procedure date (``FollowUp.superseded_at``: sent too early
for the new date, or answered before it), in the results, the response rate or the export: its
time point is asked again, and that answer counts.

The response rate is of the questionnaires sent; the treatments that reached a time point
and were never sent it are counted beside it by reason (``reached_counts``: a patient marked
deceased before it was due is no loss to follow-up).

Counting reads every answered follow-up of the period, so it is done by the worker every few
minutes and kept as a snapshot of numbers (``snapshot``); the page reads the snapshot. Counting
takes a fixed number of queries whatever the number of patients: the answered time points with
their baseline, the diagnoses of the same requests, and the response counts grouped by time
point.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import secrets
from collections.abc import Generator, Iterable, Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import (
    Select,
    and_,
    case,
    delete,
    func,
    or_,
    select,
)
from sqlalchemy.exc import IntegrityError

from booking.audit.services import audited_when_done, record
from booking.extensions import db
from booking.outcomes import measures as m
from booking.outcomes.closing import closed_for_later, closed_while_followed
from booking.outcomes.labels import PLAN_GROUP_LABELS, PLAN_LABELS, point_label
from booking.outcomes.models import (
    PAIN_COLUMNS,
    PLAN_GROUP,
    FollowUp,
    OutcomeSettings,
    OutcomeSnapshot,
    Plan,
    PlanGroup,
    RegistryCode,
    TreatmentPlan,
)
from booking.outcomes.progress import thresholds
from booking.outcomes.schedule import answered_before_start, due_at, due_day, parse_point
from booking.outcomes.services import settings
from booking.requests import history as intake
from booking.requests import instruments
from booking.requests.models import (
    ConsultationRequest,
    MedicalHistory,
    Patient,
    RequestDiagnosis,
    RequestStatus,
    may_be_contacted,
)
from booking.spreadsheet import BOM, csv_pieces, delimiter, number
from booking.staff.models import StaffUser
from booking.timeutil import add_months, clinic_today, clinic_tz, now_utc, to_clinic_tz

MIN_GROUP = 10  # smaller groups are not shown
PUBLIC_MIN = 30  # the public sentence needs at least this many patients
PERIOD_MONTHS = (12, 24, 60)
DEFAULT_MONTHS = 12
PUBLIC_MONTHS = 12
PUBLIC_POINT = "3m"


def period_months(value: str | None) -> int:
    try:
        months = int(value or "")
    except ValueError:
        return DEFAULT_MONTHS
    return months if months in PERIOD_MONTHS else DEFAULT_MONTHS


@dataclass(frozen=True)
class PatientOutcome:
    """One request's answer at the time point, judged on its main disability index."""

    request_id: int
    plan: Plan
    specialist_id: int | None
    instrument: str  # "odi" / "ndi"
    change: str | None  # None: not scored
    diagnoses: tuple[str, ...]

    @property
    def improved(self) -> bool:
        return self.change == m.IMPROVED

    @property
    def worse(self) -> bool:
        return self.change == m.WORSE


@dataclass(frozen=True)
class GroupShare:
    key: str
    label: str
    share: m.Share | None  # None: suppressed (fewer than MIN_GROUP patients, or ``shields``)
    # Suppressed although big enough: shown, it and the totals would give away a smaller
    # suppressed group by subtraction (``Tally.shares``).
    shields: bool = False
    # The share worse beyond the threshold, of the same patients (suppressed with ``share``).
    worse: m.Share | None = None

    @property
    def suppressed(self) -> bool:
        return self.share is None


# Why a treatment that reached a time point was never sent its questionnaire, in the order
# each is decided (``reached_counts``): the first that holds is the reason.
DECEASED, DECLINED, UNREACHABLE, OTHER = "deceased", "declined", "unreachable", "other"
NOT_SENT_REASONS = (DECEASED, DECLINED, UNREACHABLE, OTHER)


def not_sent_headings() -> list[tuple[str, str]]:
    """The reasons in the results table's order, with their column headings."""
    return [
        (DECEASED, _("Deceased before it was due")),
        (DECLINED, _("Did not agree or stopped")),
        (UNREACHABLE, _("No email address or not to be contacted")),
        (OTHER, _("Other")),
    ]


@dataclass(frozen=True)
class PointResponse:
    point: str
    label: str
    sent: int
    still_open: int  # sent, not answered, the link not yet expired
    # Sent, not answered, and the patient marked deceased or withdrew their consent to be
    # contacted while its link was open: no longer followed up, neither open nor a
    # non-response (one that lapsed before that is a non-response: ``closed_while_followed``).
    left_out: int
    # Answered of the closed (sent less still open, left out and closed for a later time
    # point); None: none closed.
    share: m.Share | None
    # The period's treatments whose time point has come (or that were sent it), and of them
    # those never sent it (``reached_counts``): reached = not sent + sent. None: not counted
    # (a snapshot made before they were).
    reached: int | None = None
    not_sent: int | None = None
    # The not sent by reason (``NOT_SENT_REASONS``: reason -> count, adding up to
    # ``not_sent``); None: not counted (a snapshot made before they were).
    not_sent_by_reason: dict[str, int] | None = None
    # Sent, not answered, and its link closed early by the clinic for a later time point
    # (``closed_for_later``): neither open nor a non-response.
    closed_for_later: int = 0


@dataclass(frozen=True)
class Results:
    months: int
    since: date
    point: str
    point_label: str
    points: list[str]
    computed_at: datetime  # when the counts were made (``snapshot``)
    responses: list[PointResponse]
    scored: int
    not_scored: int
    overall: GroupShare
    by_plan_group: list[GroupShare]
    by_plan: list[GroupShare]
    by_diagnosis: list[GroupShare]
    by_specialist: list[GroupShare]
    # The day the period's earliest treatments reach the time point, when that is today or
    # later (12 months in the last 12 months): there can be no answers at it yet.
    reached_on: date | None = None


def since_for(months: int, today: date | None = None) -> date:
    return add_months(today or clinic_today(), -months)


def _start():
    return func.coalesce(TreatmentPlan.procedure_date, TreatmentPlan.consulted_on)


def _cohort(since: date):
    """The plans counted: completed requests whose treatment started on or after ``since``."""
    return (
        select(TreatmentPlan.request_id)
        .join(ConsultationRequest, ConsultationRequest.id == TreatmentPlan.request_id)
        .where(ConsultationRequest.status == RequestStatus.COMPLETED, _start() >= since)
    )


def main_instrument(region: str | None) -> instruments.Instrument:
    """The disability index "improved" is judged on: the first the region was asked."""
    return instruments.instruments_for(region)[0]


def _counted(answered_at: datetime, consulted_on: date, procedure_date: date | None) -> bool:
    """An answer is a result of its time point only when given once the treatment started."""
    return not answered_before_start(answered_at, consulted_on, procedure_date, clinic_tz())


def patient_outcomes(point: str, since: date, saved: OutcomeSettings) -> list[PatientOutcome]:
    """Every answer at ``point`` of the plans started since ``since`` (two queries), but one
    given before the treatment started (``_counted``)."""
    limits = thresholds(saved)
    rows = db.session.execute(
        select(
            FollowUp.answered_at,
            TreatmentPlan.consulted_on,
            TreatmentPlan.procedure_date,
            TreatmentPlan.request_id,
            TreatmentPlan.plan,
            ConsultationRequest.assigned_specialist_id,
            MedicalHistory.spine_region,
            MedicalHistory.odi_percent,
            MedicalHistory.ndi_percent,
            FollowUp.odi_percent,
            FollowUp.ndi_percent,
        )
        .join(FollowUp, FollowUp.request_id == TreatmentPlan.request_id)
        .join(ConsultationRequest, ConsultationRequest.id == TreatmentPlan.request_id)
        .join(MedicalHistory, MedicalHistory.request_id == TreatmentPlan.request_id)
        .where(
            ConsultationRequest.status == RequestStatus.COMPLETED,
            _start() >= since,
            FollowUp.point == point,
            FollowUp.answered_at.is_not(None),
            FollowUp.superseded_at.is_(None),
        )
    ).all()
    diagnoses: dict[int, list[str]] = {}
    if rows:
        answered = (
            select(FollowUp.request_id)
            .where(
                FollowUp.point == point,
                FollowUp.answered_at.is_not(None),
                FollowUp.superseded_at.is_(None),
                FollowUp.request_id.in_(_cohort(since)),
            )
            .scalar_subquery()
        )
        for request_id, code in db.session.execute(
            select(RequestDiagnosis.request_id, RequestDiagnosis.code).where(
                RequestDiagnosis.request_id.in_(answered)
            )
        ):
            diagnoses.setdefault(request_id, []).append(code)
    found = []
    for answered_at, consulted_on, procedure_date, *row in rows:
        if not _counted(answered_at, consulted_on, procedure_date):
            continue
        request_id, plan, specialist_id, region, odi0, ndi0, odi1, ndi1 = row
        instrument = main_instrument(region).code
        baseline, value = (odi0, odi1) if instrument == "odi" else (ndi0, ndi1)
        found.append(
            PatientOutcome(
                request_id=request_id,
                plan=Plan(plan),
                specialist_id=specialist_id,
                instrument=instrument,
                change=m.classify(baseline, value, limits[instrument]),
                diagnoses=tuple(sorted(diagnoses.get(request_id, []))),
            )
        )
    return found


# The groups the page shows, in its order; each outcome falls in one or more of each.
OVERALL, BY_PLAN_GROUP, BY_PLAN, BY_DIAGNOSIS, BY_SPECIALIST = (
    "overall", "plan_group", "plan", "diagnosis", "specialist",
)  # fmt: skip


def _groups_of(outcome: PatientOutcome) -> dict[str, Iterable[str]]:
    return {
        OVERALL: ["all"],
        BY_PLAN_GROUP: [PLAN_GROUP[outcome.plan].value],
        BY_PLAN: [outcome.plan.value],
        BY_DIAGNOSIS: outcome.diagnoses or ["none"],  # a patient may name several
        BY_SPECIALIST: [str(outcome.specialist_id) if outcome.specialist_id else "none"],
    }


@dataclass
class Tally:
    """The counts behind the outcomes page for one period and time point: per group of each
    dimension ``[improved, scored, worse]``, per time point ``[sent, still open, answered,
    left out, closed for a later time point]``.
    Numbers only (no patient, no label), so a snapshot can keep them and any language can
    show them."""

    scored: int = 0
    not_scored: int = 0
    groups: dict[str, dict[str, list[int]]] = field(default_factory=dict)
    responses: dict[str, list[int]] = field(default_factory=dict)
    # Per time point ``[reached, not sent, *not sent by reason]``: the period's treatments
    # whose time point has come, how many of them were never sent it, and why
    # (``reached_counts``, ``NOT_SENT_REASONS``).
    reached: dict[str, list[int]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Tally:
        return cls(
            scored=data["scored"],
            not_scored=data["not_scored"],
            groups=data["groups"],
            responses=data["responses"],
            reached=data.get("reached", {}),
        )

    def shares(
        self,
        dimension: str,
        labels: dict[str, str],
        order: list[str] | None = None,
        *,
        alone: bool = False,
    ) -> list[GroupShare]:
        """The share improved, and the share worse, in each group of ``dimension`` (biggest
        first unless ``order``); groups under ``MIN_GROUP`` are suppressed, never shown as
        zero.

        Secondary suppression: the total row and the groups shown would give the suppressed
        groups' numbers by subtraction (17 scored overall, 12 shown in one group: the other
        5, and how many improved). So while the suppressed groups hold fewer than
        ``MIN_GROUP`` patients together, the smallest group shown is suppressed too. A group
        shown ``alone`` (the public figure), without the total or the others, hides nothing
        for their sake."""
        counts = self.groups.get(dimension, {})
        small = {key for key in counts if counts[key][1] < MIN_GROUP}
        shielding: set[str] = set()
        while not alone and small and sum(counts[k][1] for k in small | shielding) < MIN_GROUP:
            shown = [key for key in counts if key not in small | shielding]
            if not shown:
                break
            shielding.add(min(shown, key=lambda key: (counts[key][1], key)))
        ordered = order or sorted(counts, key=lambda key: (-counts[key][1], labels.get(key, key)))
        return [
            GroupShare(key, labels.get(key, key), None, shields=True)
            if key in shielding
            else GroupShare(
                key,
                labels.get(key, key),
                _share(counts[key][0], counts[key][1]),
                worse=_share(counts[key][2], counts[key][1]),
            )
            for key in ordered
            if key in counts
        ]

    def within(
        self,
        dimension: str,
        labels: dict[str, str],
        order: list[str],
        parents: list[GroupShare],
        parent_of: dict[str, str],
    ) -> list[GroupShare]:
        """``shares`` for a dimension whose groups each sit in one group of another shown on
        the same page (a plan in its plan group), so that no table gives away what another
        hides: a group whose parent is not shown is not shown either (with its siblings it
        would add up to the parent), and within each parent shown, the subtraction rule of
        ``shares`` holds against the parent's total as it does against the overall one."""
        base = {group.key: group for group in self.shares(dimension, labels, order)}
        counts = self.groups.get(dimension, {})
        hidden_parents = {parent.key for parent in parents if parent.share is None}
        shielding = {
            key
            for key, group in base.items()
            if group.share is not None and parent_of.get(key) in hidden_parents
        }
        siblings: dict[str, list[str]] = {}
        for key in base:
            if parent_of.get(key) not in hidden_parents:
                siblings.setdefault(parent_of.get(key, key), []).append(key)
        for keys in siblings.values():
            hidden = {key for key in keys if base[key].share is None}
            while hidden and sum(counts[key][1] for key in hidden) < MIN_GROUP:
                shown = [key for key in keys if key not in hidden]
                if not shown:
                    break
                smallest = min(shown, key=lambda key: (counts[key][1], key))
                shielding.add(smallest)
                hidden.add(smallest)
        return [
            replace(group, share=None, worse=None, shields=True) if key in shielding else group
            for key, group in base.items()
        ]


# The counts of a period that are the same for each of its time points: the response counts
# and the treatments that reached each time point, by the period's start day (``Periods``).
PeriodCounts = tuple[dict[str, list[int]], dict[str, list[int]]]
Periods = dict[date, PeriodCounts]


def period_counts(since: date, saved: OutcomeSettings) -> PeriodCounts:
    """The response counts and the reached counts of every time point of the period (one
    statement each): every time point's tally holds them all."""
    responses = response_counts(since)
    points = [*saved.schedule, *(p for p in responses if p not in saved.schedule)]
    return responses, reached_counts(since, points)


def count(point: str, since: date, saved: OutcomeSettings, periods: Periods | None = None) -> Tally:
    """Count every answer at ``point`` of the plans started since ``since`` (a fixed number of
    queries; the time grows with the clinic's follow-ups: ``snapshot`` keeps the result).
    The period's own counts are taken from ``periods`` when counted there already, and kept
    there when not, so that counting every time point of a period counts them once."""
    known = periods if periods is not None else {}
    if since not in known:
        known[since] = period_counts(since, saved)
    responses, reached = known[since]
    tally = Tally(responses=responses, reached=reached)
    for outcome in patient_outcomes(point, since, saved):
        if outcome.change is None:  # no score at the baseline or at the time point
            tally.not_scored += 1
            continue
        tally.scored += 1
        for dimension, keys in _groups_of(outcome).items():
            for key in keys:
                counts = tally.groups.setdefault(dimension, {}).setdefault(key, [0, 0, 0])
                counts[0] += outcome.improved
                counts[1] += 1
                counts[2] += outcome.worse
    return tally


def _share(improved: int, total: int) -> m.Share | None:
    return m.wilson(improved, total) if total >= MIN_GROUP else None


def response_counts(since: date, now: datetime | None = None) -> dict[str, list[int]]:
    """``[sent, still open, answered, left out, closed for a later one]`` per time point:
    every invitation sent, and of them those whose link is still open, those answered, those
    left out and those the clinic closed for a later time point. The response rate is
    answered of the invitations closed (answered, or their link expired, or the patient
    stopped the questionnaires): one still open is not yet a non-response. An unanswered
    invitation to a patient marked deceased, or who withdrew their consent to be contacted,
    while its link was still open is left out of the rate (counted apart, never as still
    open): their link answers no more (``can_answer``), and they are no longer followed up,
    as a study leaves out of its follow-up rate those who died or withdrew. One that had
    closed unanswered before that (its link expired, or the questionnaires stopped) counts
    by its status when it closed (``closed_while_followed``): a non-response, or closed for
    a later time point. One the clinic closed early for a later time point
    (``closed_for_later``: the procedure date brought forward, or a time point added to the
    schedule) is left out of the rate too: the patient did not let it lapse, the clinic
    closed it for the later one. Both stay in "sent", so that the period's
    treatments that reached the time point are those not sent it and those sent it
    (``reached_counts``). A time point missed while the worker was down was never sent and
    is not counted here, nor is one superseded by a corrected procedure date: its time point
    is sent again. One statement for every time point."""
    now = now or now_utc()
    unanswered = FollowUp.answered_at.is_(None)
    stopped = select(TreatmentPlan.request_id).where(
        TreatmentPlan.followups_stopped_at.is_not(None)
    )
    # Counted by its status when it closed: lapsed (or stopped) unanswered before the patient
    # was marked deceased or withdrew, it was a non-response then and stays one.
    followed = closed_while_followed()
    left_out = and_(unanswered, ~may_be_contacted(), ~followed)
    still_open = and_(
        unanswered,
        FollowUp.expires_at > now,
        FollowUp.request_id.not_in(stopped),
        may_be_contacted(),
    )
    replaced = and_(
        unanswered,
        FollowUp.expires_at <= now,
        FollowUp.request_id.not_in(stopped),
        followed,
        closed_for_later(),
    )
    return {
        point: [sent, pending, answered, gone, closed]
        for point, sent, pending, answered, gone, closed in db.session.execute(
            select(
                FollowUp.point,
                func.count(),
                func.count(case((still_open, 1))),
                func.count(FollowUp.answered_at),
                func.count(case((left_out, 1))),
                func.count(case((replaced, 1))),
            )
            .join(ConsultationRequest, ConsultationRequest.id == FollowUp.request_id)
            .where(
                FollowUp.sent_at.is_not(None),
                FollowUp.superseded_at.is_(None),
                FollowUp.request_id.in_(_cohort(since)),
            )
            .group_by(FollowUp.point)
        ).tuples()
    }


def reached_counts(
    since: date, points: Iterable[str], now: datetime | None = None
) -> dict[str, list[int]]:
    """``[reached, not sent, deceased, declined, unreachable, other]`` per time point: the
    plans counted (``_cohort``) whose time point was due by ``now``, how many of them have no
    invitation sent for it, and those by reason (``NOT_SENT_REASONS``, the first that holds):

    - deceased: the patient was marked deceased (``Patient.deceased_at``) before the time
      point was due. A death is no loss to follow-up: it leaves the patients who could be
      followed up at that time point;
    - declined: the patient did not agree to the questionnaires at intake, or stopped them;
    - unreachable: no email address, or they withdrew their consent to be contacted;
    - other: none of these (it passed while the invitations could not be sent: the worker
      down past its link's life, the time point added to the schedule after a later one was
      asked, or the patient marked deceased only after it was due).

    The reasons are the patient's as they are now, but the death, which is dated against the
    time point. Without them the response rate reads as the share of the treated patients
    followed up, which it is not: it is of those sent the questionnaire. One statement for
    every time point, grouped by the day the treatment started and the day the patient was
    marked deceased (one group per deceased patient), whatever the number of patients and
    time points.

    A plan sent the time point's invitation counts as reached whatever its dates say (one
    sent early and not superseded), so that each row adds up: reached = not sent + sent
    (``response_counts``'s "sent": the live invitations, one per plan and time point), and
    not sent = deceased + declined + unreachable + other."""
    points = list(dict.fromkeys(points))
    if not points:
        return {}
    now = now or now_utc()
    tz = clinic_tz()

    def sent(point: str):
        return (
            select(FollowUp.id)
            .where(
                FollowUp.request_id == TreatmentPlan.request_id,
                FollowUp.point == point,
                FollowUp.sent_at.is_not(None),
                FollowUp.superseded_at.is_(None),
            )
            .exists()
        )

    declined = or_(
        ConsultationRequest.followup_consent.is_(False),
        TreatmentPlan.followups_stopped_at.is_not(None),
    )
    unreachable = and_(
        ~declined, or_(Patient.email.is_(None), ConsultationRequest.contact_consent.is_(False))
    )
    other = and_(~declined, ~unreachable)
    found = {point: [0] * (2 + len(NOT_SENT_REASONS)) for point in points}
    for start, deceased_at, plans, *unsent in db.session.execute(
        select(
            _start(),
            Patient.deceased_at,
            func.count(),
            *(
                func.count(case((and_(~sent(p), why), 1)))
                for p in points
                for why in (declined, unreachable, other)
            ),
        )
        .join(ConsultationRequest, ConsultationRequest.id == TreatmentPlan.request_id)
        .join(Patient, Patient.id == ConsultationRequest.patient_id)
        .where(ConsultationRequest.status == RequestStatus.COMPLETED, _start() >= since)
        .group_by(_start(), Patient.deceased_at)
    ).tuples():
        for n, point in enumerate(points):
            why = dict(zip((DECLINED, UNREACHABLE, OTHER), unsent[3 * n : 3 * n + 3], strict=True))
            not_sent = sum(why.values())
            due = due_at(start, point, tz)
            counts = found[point]
            if due > now:
                counts[0] += plans - not_sent
                continue
            counts[0] += plans
            counts[1] += not_sent
            if deceased_at is not None and deceased_at < due:
                why = {DECEASED: not_sent}
            for reason, number_of in why.items():
                counts[2 + NOT_SENT_REASONS.index(reason)] += number_of
    return found


def point_responses(
    counted: dict[str, list[int]],
    points: list[str],
    reached: dict[str, list[int]] | None = None,
) -> list[PointResponse]:
    """The schedule's time points, then any other a former schedule sent."""
    shown = points + sorted(
        (p for p in counted if p not in points), key=lambda p: parse_point(p).days_hint
    )
    found = []
    for point in shown:
        sent, still_open, answered, left_out, *later = counted.get(point, (0, 0, 0, 0, 0))
        replaced = later[0] if later else 0  # a list of four: counted before it was
        closed = sent - still_open - left_out - replaced
        came, not_sent, *why = (reached or {}).get(point, (None, None))
        found.append(
            PointResponse(
                point,
                point_label(point),
                sent,
                still_open,
                left_out,
                m.wilson(answered, closed) if closed else None,
                came,
                not_sent,
                dict(zip(NOT_SENT_REASONS, why, strict=True)) if why else None,
                replaced,
            )
        )
    return found


# ---- snapshots ------------------------------------------------------------------------------
# Counting reads every answered follow-up of the period: its time grows with the clinic's
# history. The worker counts every period and time point every ``SNAPSHOT_MINUTES`` and keeps
# the numbers; the outcomes page and the public sentence read them, and count afresh only
# when there is no snapshot younger than ``SNAPSHOT_MAX_AGE`` (the worker is down, new
# thresholds, a new day) or staff ask for it. docs/benchmarks.md has the figures.

SNAPSHOT_MINUTES = 10
SNAPSHOT_MAX_AGE = timedelta(minutes=15)
SNAPSHOT_KEEP = timedelta(days=1)  # older snapshots (a former day or setting) are deleted
TALLY_VERSION = 9  # part of the key: a change to what is counted starts afresh


def snapshot_key(months: int, point: str, since: date, saved: OutcomeSettings) -> str:
    """The snapshot's key: the period, time point and start day, and the thresholds."""
    limits = [saved.odi_points, saved.ndi_points, saved.pain_points, saved.relative_percent]
    digest = hashlib.sha256(json.dumps(limits).encode()).hexdigest()[:16]
    return f"v{TALLY_VERSION}|{months}|{point}|{since.isoformat()}|{digest}"


def snapshot(
    months: int,
    point: str,
    saved: OutcomeSettings,
    *,
    fresh: bool = False,
    periods: Periods | None = None,
) -> tuple[Tally, datetime]:
    """The counts for the period and time point and when they were counted: the kept ones if
    younger than ``SNAPSHOT_MAX_AGE`` (unless ``fresh``), else counted now and kept (the
    period's own counts shared through ``periods``: ``count``)."""
    since = since_for(months)
    key = snapshot_key(months, point, since, saved)
    kept = db.session.get(OutcomeSnapshot, key)
    if kept is not None and not fresh and kept.computed_at >= now_utc() - SNAPSHOT_MAX_AGE:
        return Tally.from_json(kept.tally), kept.computed_at
    tally = count(point, since, saved, periods)
    now = now_utc()
    if kept is not None:
        kept.tally, kept.computed_at = tally.to_json(), now
    else:
        try:
            with db.session.begin_nested():
                db.session.add(OutcomeSnapshot(key=key, computed_at=now, tally=tally.to_json()))
        except IntegrityError:
            pass  # another worker kept the same counts a moment ago
    db.session.commit()
    return tally, now


def refresh_snapshots() -> int:
    """The worker's job: count every period and time point afresh, and delete snapshots of
    former days and settings. Returns how many were counted. The counts that depend on the
    period alone (the response and reached counts) are made once per period, not once per
    time point."""
    saved = settings()
    counted = 0
    periods: Periods = {}
    for months in PERIOD_MONTHS:
        for point in saved.schedule:
            snapshot(months, point, saved, fresh=True, periods=periods)
            counted += 1
    db.session.execute(
        delete(OutcomeSnapshot).where(OutcomeSnapshot.computed_at < now_utc() - SNAPSHOT_KEEP)
    )
    db.session.commit()
    return counted


# ---- the page and the public sentence -------------------------------------------------------


def clinic_results(months: int, point: str | None = None, *, fresh: bool = False) -> Results:
    """The outcomes page's figures for the period and time point (the snapshot's counts)."""
    saved = settings()
    points = list(saved.schedule)
    asked = point
    if point not in points:
        point = PUBLIC_POINT if PUBLIC_POINT in points else points[0]
    periods: Periods = {}  # a second time point below counts the period's counts once
    tally, computed_at = snapshot(months, point, saved, fresh=fresh, periods=periods)
    # A time point taken out of the schedule keeps the answers given at it: its results are
    # offered after the schedule's (every tally counts the responses at every point).
    points += [p for p in sorted(tally.responses, key=parse_point) if p not in points]
    if asked in points and asked != point:
        point = asked
        tally, computed_at = snapshot(months, point, saved, fresh=fresh, periods=periods)
    specialist_ids = [int(key) for key in tally.groups.get(BY_SPECIALIST, {}) if key != "none"]
    names = (
        dict(
            db.session.execute(
                select(StaffUser.id, StaffUser.full_name).where(StaffUser.id.in_(specialist_ids))
            )
            .tuples()
            .all()
        )
        if specialist_ids
        else {}
    )
    specialist_labels = {str(key): name for key, name in names.items()}
    specialist_labels["none"] = _("No specialist assigned")
    diagnosis_labels = {code: str(label) for code, label in intake.DIAGNOSES}
    diagnosis_labels["none"] = _("No diagnosis named")
    overall = tally.shares(OVERALL, {"all": _("All requests")})
    by_plan_group = tally.shares(
        BY_PLAN_GROUP,
        {key: str(label) for key, label in PLAN_GROUP_LABELS.items()},
        [group.value for group in PlanGroup],
    )
    since = since_for(months)
    # Said on the page rather than counted otherwise: the period is the treatments' start,
    # the same for every time point and the response rate; "No patient answered" alone
    # reads as a failure of the follow-ups.
    reached = due_day(since, point)
    return Results(
        months=months,
        since=since,
        point=point,
        point_label=point_label(point),
        points=points,
        computed_at=computed_at,
        responses=point_responses(tally.responses, points, tally.reached),
        scored=tally.scored,
        not_scored=tally.not_scored,
        overall=overall[0] if overall else GroupShare("all", _("All requests"), None),
        by_plan_group=by_plan_group,
        by_plan=tally.within(
            BY_PLAN,
            {key: str(label) for key, label in PLAN_LABELS},
            [plan.value for plan in Plan],
            by_plan_group,
            {plan.value: PLAN_GROUP[plan].value for plan in Plan},
        ),
        by_diagnosis=tally.shares(BY_DIAGNOSIS, diagnosis_labels),
        by_specialist=tally.shares(BY_SPECIALIST, specialist_labels),
        reached_on=reached if reached >= clinic_today() else None,
    )


@dataclass(frozen=True)
class PublicFigure:
    """The public sentence's numbers, rounded: ``at_least`` patients (the count down to a
    multiple of ``PUBLIC_COUNT_STEP``) and ``percent`` to the nearest ``PUBLIC_PERCENT_STEP``
    within ``PUBLIC_PERCENT_RANGE``. (It narrows what a recount gives away; a cohort frozen per
    quarter would close it.)
    Exact, they gave one patient away: the figure is counted again every few minutes, and
    "70 % of 30" followed by "68 % of 31" says the 31st patient did not improve, to anyone
    who knows a neighbour had surgery here three months ago."""

    at_least: int
    percent: int
    point_label: str


PUBLIC_COUNT_STEP = 10
PUBLIC_PERCENT_STEP = 10
# Never "about 100 %" (nor 0 %): an absolute claim about treatment results on a public page
# (medicines advertising law is strict about those), and at the ends one patient decides it.
PUBLIC_PERCENT_RANGE = (10, 90)


def rounded_figure(total: int, percent: float, point: str) -> PublicFigure:
    step = PUBLIC_PERCENT_STEP
    low, high = PUBLIC_PERCENT_RANGE
    return PublicFigure(
        at_least=total // PUBLIC_COUNT_STEP * PUBLIC_COUNT_STEP,
        percent=min(high, max(low, int(step * round(percent / step)))),
        point_label=point_label(point),
    )


def public_figure() -> PublicFigure | None:
    """The treatments page's sentence: minimally invasive surgery in the last 12 months at 3
    months (or the schedule's first time point), only when an admin switched it on and at
    least ``PUBLIC_MIN`` patients were scored; the same counts as the outcomes page."""
    saved = settings()
    if not saved.public_figures or not saved.schedule:
        return None
    points = list(saved.schedule)
    point = PUBLIC_POINT if PUBLIC_POINT in points else points[0]
    tally, _computed_at = snapshot(PUBLIC_MONTHS, point, saved)
    group = PlanGroup.MINIMALLY_INVASIVE.value
    shares = tally.shares(BY_PLAN_GROUP, {}, [group], alone=True)
    if not shares or shares[0].share is None or shares[0].share.total < PUBLIC_MIN:
        return None
    share = shares[0].share
    return rounded_figure(share.total, share.percent, point)


# ---- the registry export ------------------------------------------------------------------

# Rows read from the database at a time, and rows in each piece of the streamed file.
REGISTRY_BATCH = 500
ROWS_PER_PIECE = 200

REGISTRY_COLUMNS = [
    "registry_code", "time_point", "plan", "plan_group", "spine_region", "diagnoses",
    "age_at_start", "baseline_month", "start_month", "answered_month",
    "odi_baseline", "odi", "odi_change", "ndi_baseline", "ndi", "ndi_change",
    *(f"{name}_baseline" for name in PAIN_COLUMNS), *PAIN_COLUMNS,
    "gpe", "satisfaction",
]  # fmt: skip


def _new_code() -> str:
    return secrets.token_hex(6).upper()  # 48 random bits: no pattern, no order


def existing_registry_codes(patient_ids: set[int]) -> dict[int, str]:
    """The registry codes already made for these patients, by patient id (reads only)."""
    if not patient_ids:
        return {}
    return dict(
        db.session.execute(
            select(RegistryCode.patient_id, RegistryCode.code).where(
                RegistryCode.patient_id.in_(patient_ids)
            )
        )
        .tuples()
        .all()
    )


def registry_codes(patient_ids: set[int]) -> dict[int, str]:
    """Each patient's registry code, made the first time and kept (flushes only)."""
    codes = existing_registry_codes(patient_ids)
    for patient_id in sorted(patient_ids - codes.keys()):
        code = _new_code()
        db.session.add(RegistryCode(patient_id=patient_id, code=code))
        codes[patient_id] = code
    db.session.flush()
    return codes


def _age(born: date | None, on: date) -> int | None:
    if born is None:
        return None
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


def start_registry_export(months: int, actor: StaffUser) -> int:
    """Start the registry export of the period's answered follow-ups, before its first byte:
    make the registry code of every patient record it lists (a random code, stored once, the
    same in every export) and audit the start (``outcomes_exported``: the months, and the
    rows listed now, which the access monitor counts). Commits, and returns the audit row's
    id, which the row written when the file ends (``registry_pieces``) names. A concurrent
    export making the same patient's code first is retried once.

    A patient record is made per request (patients have no account), so a code stands for a
    request, not a person: someone who sent two requests (the neck after the back) has two
    codes, and the rows and the audited count are of requests."""
    since = since_for(months)
    for attempt in (1, 2):
        try:
            patient_ids = [
                patient_id
                for patient_id, answered_at, consulted_on, procedure_date in db.session.execute(
                    _answered(
                        since,
                        Patient.id,
                        FollowUp.answered_at,
                        TreatmentPlan.consulted_on,
                        TreatmentPlan.procedure_date,
                    )
                )
                if _counted(answered_at, consulted_on, procedure_date)
            ]
            registry_codes(set(patient_ids))
            event = record(
                "outcomes_exported",
                target_type="outcomes",
                actor=actor,
                details={"months": months, "rows": len(patient_ids)},
            )
            db.session.flush()
            export_id = event.id
            db.session.commit()
            return export_id
        except IntegrityError:
            db.session.rollback()
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def registry_head() -> str:
    """The file's first piece: the byte-order mark (as the queue's export: Excel reads UTF-8)
    and the heading row, with the clinic's separator (with "," a spreadsheet in German or
    Spanish puts every row in one cell)."""
    out = io.StringIO()
    out.write(BOM)
    csv.writer(out, delimiter=_separator(), lineterminator="\r\n").writerow(REGISTRY_COLUMNS)
    return out.getvalue()


def registry_pieces(months: int, actor: StaffUser, export_id: int) -> Iterator[str]:
    """The registry export's rows as CSV pieces, read ``EXPORT_BATCH`` at a time and sent as
    they are read, so a long file is never held whole; then, once the file ends (or the
    download stops), an audit row ``outcomes_export_ended`` (``export``: the starting row's
    id; ``complete``; ``rows``: the rows handed on). Codes and numbers only: no name,
    contact, date of birth or free text. The months (``baseline_month``, ``answered_month``)
    are the clinic's (``CLINIC_TIMEZONE``): a request sent at 00:30 on 1 March in Madrid is
    in ``YYYY-03``, though UTC still says February.

    Only the rows whose code ``start_registry_export`` made are listed: the stream writes
    nothing, so a follow-up answered in between waits for the next export."""
    sent = [0]

    def handed_on(piece: list[list[object]]) -> None:
        sent[0] += len(piece)

    separator = _separator()
    rows = _registry_rows(months, separator)
    return audited_when_done(
        csv_pieces(
            rows,
            lambda cells: cells,
            separator=separator,
            rows_per_piece=ROWS_PER_PIECE,
            handed_on=handed_on,
        ),
        "outcomes_export_ended",
        actor=actor,
        details=lambda complete: {"export": export_id, "complete": complete, "rows": sent[0]},
        close=rows.close,
    )


def _separator() -> str:
    return delimiter(current_app.config["EXPORT_CSV_DELIMITER"])


def _answered(since: date, *columns: Any) -> Select[Any]:
    """The period's answered follow-ups of completed requests, one row each; the callers
    leave out those answered before the treatment started (``_counted``)."""
    return (
        select(*columns)
        .select_from(TreatmentPlan)
        .join(FollowUp, FollowUp.request_id == TreatmentPlan.request_id)
        .join(ConsultationRequest, ConsultationRequest.id == TreatmentPlan.request_id)
        .join(MedicalHistory, MedicalHistory.request_id == TreatmentPlan.request_id)
        .join(Patient, Patient.id == ConsultationRequest.patient_id)
        .where(
            ConsultationRequest.status == RequestStatus.COMPLETED,
            _start() >= since,
            FollowUp.answered_at.is_not(None),
            FollowUp.superseded_at.is_(None),
        )
    )


def _registry_rows(months: int, separator: str) -> Generator[list[object], None, None]:
    saved = settings()
    limits = thresholds(saved)
    since = since_for(months)
    diagnoses: dict[int, list[str]] = {}
    for request_id, code in db.session.execute(
        select(RequestDiagnosis.request_id, RequestDiagnosis.code).where(
            RequestDiagnosis.request_id.in_(_cohort(since))
        )
    ):
        diagnoses.setdefault(request_id, []).append(code)
    rows = db.session.execute(
        _answered(
            since,
            TreatmentPlan,
            FollowUp,
            MedicalHistory,
            Patient.date_of_birth,
            ConsultationRequest.created_at,
            RegistryCode.code,
        )
        .join(RegistryCode, RegistryCode.patient_id == Patient.id)
        .order_by(TreatmentPlan.request_id, FollowUp.due_at)
        .execution_options(yield_per=REGISTRY_BATCH)
    )
    for plan, follow_up, baseline, born, sent_at, code in rows:
        if not _counted(follow_up.answered_at, plan.consulted_on, plan.procedure_date):
            continue
        start = plan.procedure_date or plan.consulted_on
        changes = {
            name: m.classify(
                getattr(baseline, f"{name}_percent"),
                getattr(follow_up, f"{name}_percent"),
                limits[name],
            )
            for name in ("odi", "ndi")
        }
        yield [
            code,
            follow_up.point,
            plan.plan.value,
            PLAN_GROUP[plan.plan].value,
            baseline.spine_region or "",
            ";".join(sorted(diagnoses.get(plan.request_id, []))),
            number(_age(born, start), separator),
            to_clinic_tz(sent_at).strftime("%Y-%m"),  # the baseline: the request's answers
            start.strftime("%Y-%m"),
            to_clinic_tz(follow_up.answered_at).strftime("%Y-%m"),
            number(baseline.odi_percent, separator),
            number(follow_up.odi_percent, separator),
            changes["odi"] or "",
            number(baseline.ndi_percent, separator),
            number(follow_up.ndi_percent, separator),
            changes["ndi"] or "",
            *(number(getattr(baseline, name), separator) for name in PAIN_COLUMNS),
            *(number(getattr(follow_up, name), separator) for name in PAIN_COLUMNS),
            number(follow_up.gpe, separator),
            number(follow_up.satisfaction, separator),
        ]
