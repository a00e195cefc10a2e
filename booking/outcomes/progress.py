"""Each patient's progress, for staff: the baseline (the intake answers) and every follow-up
time point side by side, each measure's change against the clinic's thresholds, and the
same numbers as a chart (the table is the chart's text alternative).

One query whatever the number of follow-ups: the plan, its time points and the clinic's
settings come in one statement (the settings by an outer join on their single row).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from flask_babel import gettext as _
from markupsafe import Markup
from sqlalchemy import Select, case, func, select
from sqlalchemy.orm import joinedload

from booking.extensions import db
from booking.notifications.models import OutboxEmail
from booking.outcomes import chart
from booking.outcomes import measures as m
from booking.outcomes.closing import closed_for_later, is_closed_while_followed
from booking.outcomes.emails import WORSE_TEMPLATE
from booking.outcomes.labels import (
    CHANGE_LABELS,
    GPE_CHOICES,
    GPE_WORSE,
    PLAN_GROUP_LABELS,
    PLAN_LABELS,
    SATISFACTION_CHOICES,
    point_label,
)
from booking.outcomes.models import PLAN_GROUP, FollowUp, OutcomeSettings, TreatmentPlan
from booking.outcomes.schedule import answered_before_start
from booking.outcomes.services import can_answer, default_settings
from booking.requests import instruments
from booking.requests.models import ConsultationRequest, MedicalHistory, may_be_contacted
from booking.requests.queries import opened_since_written
from booking.timeutil import clinic_tz, to_clinic_tz

# A baseline given longer than this before the treatment started is flagged on the record:
# the patient's state may have changed while they waited (docs/clinical-content.md).
BASELINE_OLD_DAYS = 90

# Where each default threshold comes from, named on the page.
SOURCES = {
    "odi": m.OSTELO_2008,
    "pain": m.OSTELO_2008,
    "ndi": m.CARREON_2010,
}


@dataclass(frozen=True)
class Measure:
    code: str  # "odi", "ndi", or a pain column ("back_pain_now")
    label: str
    kind: str  # "odi", "ndi" or "pain": which threshold applies
    scale_max: float  # 100 (per cent) or 10


@dataclass(frozen=True)
class Cell:
    value: float | None
    text: str  # as shown: "42.0" (per cent), "6" (pain); "" when not answered
    change: str | None  # "improved" / "unchanged" / "worse" against the baseline; None: no pair
    change_label: str


@dataclass(frozen=True)
class Row:
    measure: Measure
    baseline: float | None
    baseline_text: str
    cells: list[Cell]


@dataclass(frozen=True)
class Column:
    point: str
    label: str  # "6 weeks"
    due_at: datetime
    answered_at: datetime | None
    # "answered", "waiting" (sent, unanswered), "unanswered", "missed", "stopped", "closed"
    # (its link closed by the clinic for a later time point, ``closed_for_later``), or "left"
    # (the patient no longer followed up while its link was open: ``_column``)
    state: str
    # Answered before the treatment started (the procedure postponed since): shown, but no
    # result of the time point, and not counted in the clinic's results.
    before_start: bool = False
    # Superseded by a corrected procedure date (``FollowUp.superseded_at``): shown as it was,
    # but no result; its time point is asked again.
    superseded_at: datetime | None = None

    @property
    def charted(self) -> bool:
        """Answered, not superseded, and not before the treatment started: its change is
        judged and charted. One answered before the start is no result of its time point
        (the clinic's results leave it out): judged "improved" against the baseline and drawn
        as the time point's value, it would read as the treatment's effect."""
        return self.state == "answered" and self.superseded_at is None and not self.before_start


@dataclass(frozen=True)
class ThresholdNote:
    label: str
    text: str  # the clinic's threshold, in words
    default_text: str
    source: str
    is_default: bool


@dataclass(frozen=True)
class Progress:
    plan: TreatmentPlan
    plan_label: str
    plan_group_label: str
    columns: list[Column]
    rows: list[Row]
    answers: list[tuple[str, list[str]]]  # GPE and satisfaction: (question, one per column)
    thresholds: list[ThresholdNote]
    charts: list[tuple[str, Markup]]  # (id, svg)
    stopped_at: datetime | None
    baseline_at: datetime  # when the patient gave the baseline: the request's sending
    baseline_days: int  # days from the baseline to the start (procedure, else consultation)

    @property
    def baseline_is_old(self) -> bool:
        return self.baseline_days > BASELINE_OLD_DAYS


def thresholds(saved: OutcomeSettings) -> dict[str, m.Threshold]:
    """The clinic's threshold for each kind of measure. The NDI's published threshold is in
    points only (Carreon 2010); the ODI's and the pain scales' also as a share of the
    baseline (Ostelo 2008)."""
    return {
        "odi": m.Threshold(saved.odi_points, saved.relative_percent),
        "ndi": m.Threshold(saved.ndi_points, None),
        "pain": m.Threshold(saved.pain_points, saved.relative_percent),
    }


def measures_for(region: str | None) -> list[Measure]:
    """The measures a patient with this main problem was asked, in the page's order."""
    found = [
        Measure(instrument.code, str(instrument.name), instrument.code, 100.0)
        for instrument in instruments.instruments_for(region)
    ]
    for area in instruments.REGION_PAIN_AREAS[region or "lower_back"]:
        found.append(Measure(area.now_name, _("%(area)s now", area=area.name), "pain", 10))
        found.append(Measure(area.worst_name, _("%(area)s at worst", area=area.name), "pain", 10))
    return found


def _value(source: MedicalHistory | FollowUp, measure: Measure) -> float | None:
    name = f"{measure.code}_percent" if measure.kind in ("odi", "ndi") else measure.code
    value = getattr(source, name)
    return None if value is None else float(value)


def load_progress(consultation: ConsultationRequest, now: datetime) -> Progress | None:
    """The request's progress, or None when no plan was recorded (not completed, or an
    emergency call-back without a history)."""
    history = consultation.history
    if history is None:
        return None
    rows = db.session.execute(
        select(TreatmentPlan, FollowUp, OutcomeSettings, closed_for_later())
        .outerjoin(FollowUp, FollowUp.request_id == TreatmentPlan.request_id)
        .outerjoin(OutcomeSettings, OutcomeSettings.id == 1)
        .where(TreatmentPlan.request_id == consultation.id)
        .options(joinedload(TreatmentPlan.decided_by))
        .order_by(FollowUp.due_at)
    ).all()
    if not rows:
        return None
    plan = rows[0][0]
    saved = rows[0][2] or default_settings()
    follow_ups = [row[1] for row in rows if row[1] is not None]
    closed = [bool(row[3]) for row in rows if row[1] is not None]
    limits = thresholds(saved)
    columns = [
        _column(follow_up, plan, now, closed_early)
        for follow_up, closed_early in zip(follow_ups, closed, strict=True)
    ]
    table = []
    for measure in measures_for(history.spine_region):
        baseline = _value(history, measure)
        cells = []
        for follow_up, column in zip(follow_ups, columns, strict=True):
            value = _value(follow_up, measure) if follow_up.answered_at else None
            change = m.classify(baseline, value, limits[measure.kind]) if column.charted else None
            label = str(CHANGE_LABELS[change]) if change else ""
            cells.append(Cell(value, _shown(value, measure), change, label))
        table.append(Row(measure, baseline, _shown(baseline, measure), cells))
    gpe_words = dict(GPE_CHOICES)
    satisfaction_words = dict(SATISFACTION_CHOICES)
    answers = [
        (
            _("Global Perceived Effect"),
            [str(gpe_words[str(f.gpe)]) if f.gpe else "" for f in follow_ups],
        ),
        (
            _("Satisfaction with the care"),
            [
                str(satisfaction_words[str(f.satisfaction)]) if f.satisfaction else ""
                for f in follow_ups
            ],
        ),
    ]
    return Progress(
        plan=plan,
        plan_label=str(dict(PLAN_LABELS)[plan.plan.value]),
        plan_group_label=str(PLAN_GROUP_LABELS[PLAN_GROUP[plan.plan].value]),
        columns=columns,
        rows=table,
        answers=answers,
        thresholds=threshold_notes(saved),
        charts=_charts(table, columns),
        stopped_at=plan.followups_stopped_at,
        baseline_at=consultation.created_at,
        baseline_days=(
            (plan.procedure_date or plan.consulted_on)
            - to_clinic_tz(consultation.created_at).date()
        ).days,
    )


def _shown(value: float | None, measure: Measure) -> str:
    if value is None:
        return ""
    return f"{value:.1f}" if measure.kind in ("odi", "ndi") else f"{value:.0f}"


def _column(
    follow_up: FollowUp, plan: TreatmentPlan, now: datetime, closed_early: bool = False
) -> Column:
    """The time point's state, as the clinic's results count it (``response_counts``).
    ``closed_early``: its link was closed by the clinic for a later time point
    (``closed_for_later``), which the results count apart, neither open nor a non-response:
    so is it shown, not as "not answered". "left": the patient was marked deceased or
    withdrew their consent to be contacted while its link was open, which the results leave
    out ("no longer followed up"); one that had lapsed unanswered before that is "not
    answered", a non-response (``is_closed_while_followed``). Neither for one superseded by
    a corrected procedure date (said so beside it)."""
    if follow_up.answered_at is not None:
        state = "answered"
    elif follow_up.sent_at is None:
        state = "missed"
    elif follow_up.superseded_at is None and not is_closed_while_followed(follow_up):
        state = "left"  # marked deceased or withdrew while its link was open
    elif follow_up.plan.followups_stopped_at is not None:
        state = "stopped"  # the patient stopped the questionnaires: its link answers no more
    elif can_answer(follow_up, now):
        state = "waiting"
    elif closed_early and follow_up.superseded_at is None:
        state = "closed"
    else:
        state = "unanswered"
    return Column(
        follow_up.point,
        point_label(follow_up.point),
        follow_up.due_at,
        follow_up.answered_at,
        state,
        before_start=follow_up.answered_at is not None
        and answered_before_start(
            follow_up.answered_at, plan.consulted_on, plan.procedure_date, clinic_tz()
        ),
        superseded_at=follow_up.superseded_at,
    )


def _points(value: float) -> str:
    return f"{value:g}"


def threshold_notes(saved: OutcomeSettings) -> list[ThresholdNote]:
    """Each threshold in words, with the published default and its source."""
    relative = _points(saved.relative_percent)
    return [
        ThresholdNote(
            _("Oswestry Disability Index"),
            _(
                "%(points)s points, or a fall of %(percent)s %% of the baseline",
                points=_points(saved.odi_points),
                percent=relative,
            ),
            _(
                "%(points)s points, or a fall of %(percent)s %% of the baseline",
                points=_points(m.DEFAULT_ODI_POINTS),
                percent=_points(m.DEFAULT_RELATIVE_PERCENT),
            ),
            SOURCES["odi"],
            saved.odi_points == m.DEFAULT_ODI_POINTS
            and saved.relative_percent == m.DEFAULT_RELATIVE_PERCENT,
        ),
        ThresholdNote(
            _("Neck Disability Index"),
            _("%(points)s points", points=_points(saved.ndi_points)),
            _("%(points)s points", points=_points(m.DEFAULT_NDI_POINTS)),
            SOURCES["ndi"],
            saved.ndi_points == m.DEFAULT_NDI_POINTS,
        ),
        ThresholdNote(
            _("Pain scales (0-10)"),
            _(
                "%(points)s points, or a fall of %(percent)s %% of the baseline",
                points=_points(saved.pain_points),
                percent=relative,
            ),
            _(
                "%(points)s points, or a fall of %(percent)s %% of the baseline",
                points=_points(m.DEFAULT_PAIN_POINTS),
                percent=_points(m.DEFAULT_RELATIVE_PERCENT),
            ),
            SOURCES["pain"],
            saved.pain_points == m.DEFAULT_PAIN_POINTS
            and saved.relative_percent == m.DEFAULT_RELATIVE_PERCENT,
        ),
    ]


def _charts(table: list[Row], columns: list[Column]) -> list[tuple[str, Markup]]:
    """A chart of the disability indexes (0-100) and one of the pain scales right now (0-10),
    over the baseline and the answered time points (not those superseded by a corrected
    procedure date); none before the first answer."""
    answered = [i for i, column in enumerate(columns) if column.charted]
    if not answered:
        return []
    x_labels = [_("Baseline"), *(columns[i].label for i in answered)]
    drawn = []
    for chart_id, title, kinds, y_max, step in (
        ("progress-disability", _("Disability index (0-100 %)"), ("odi", "ndi"), 100, 20),
        ("progress-pain", _("Pain right now (0-10)"), ("pain",), 10, 2),
    ):
        lines = [
            chart.Series(row.measure.label, [row.baseline, *(row.cells[i].value for i in answered)])
            for row in table
            if row.measure.kind in kinds and not row.measure.code.endswith("_worst")
        ]
        if not lines:
            continue
        description = str(
            _(
                "Lower is better. From the baseline at the request to the last answered "
                "follow-up; the table gives every value."
            )
        )
        drawn.append(
            (
                chart_id,
                chart.line_chart(
                    lines,
                    x_labels,
                    chart_id=chart_id,
                    title=title,
                    description=description,
                    y_max=y_max,
                    y_step=step,
                ),
            )
        )
    return drawn


# ---- every patient's follow-ups, for the coordinators' list --------------------------------

WORSE, UNANSWERED, OPEN, ANSWERED = "worse", "unanswered", "open", "answered"
FOLLOW_UP_LISTS = (WORSE, UNANSWERED, OPEN, ANSWERED)
LIST_DAYS = 180  # sent in the last six months
LIST_ROWS = 300


@dataclass(frozen=True)
class FollowUpRow:
    reference: str
    point: str
    sent_at: datetime
    reminded_at: datetime | None
    expires_at: datetime | None
    answered_at: datetime | None
    stopped: bool
    gpe: int | None
    gpe_label: str  # "" when not answered
    # Superseded by a corrected procedure date: listed still (a "much worse" answer must reach
    # the clinic whatever its date), marked as not counted beside its time point asked again.
    superseded_at: datetime | None = None
    # Unanswered, its link closed by the clinic for a later time point (``closed_for_later``):
    # the patient was sent that one instead, and the results count it apart, not as a
    # non-response; marked so in the list of the never answered.
    closed_for_later: bool = False

    @property
    def worse(self) -> bool:
        """Answered "much worse" or "worse than ever" (the clinic was emailed)."""
        return self.gpe in GPE_WORSE


def follow_up_list(show: str, now: datetime) -> tuple[list[FollowUpRow], dict[str, int]]:
    """The follow-ups sent in the last ``LIST_DAYS`` that ``show`` asks for (newest first, at
    most ``LIST_ROWS``): answered "much worse" or "worse than ever", sent and never answered
    (the link expired, or the patient stopped the questionnaires), link still open, or
    answered; and how many there are of each. A patient since marked deceased, or who
    withdrew their consent to be contacted, is in no list of the unanswered (nobody should
    chase them, and their link answers no more: ``can_answer``), though the results' response
    rate still counts one that lapsed before that as a non-response
    (``closed_while_followed``). An answer superseded by a corrected procedure date stays in
    the lists of the answered, marked (``FollowUpRow.superseded_at``), beside its time point
    asked again."""
    stopped = TreatmentPlan.followups_stopped_at.is_not(None)
    # One superseded by a corrected procedure date is asked again: neither unanswered nor open.
    unanswered = (
        FollowUp.answered_at.is_(None) & FollowUp.superseded_at.is_(None) & may_be_contacted()
    )
    closed = (FollowUp.expires_at <= now) | stopped
    conditions = {
        WORSE: FollowUp.gpe.in_(sorted(GPE_WORSE)),
        UNANSWERED: unanswered & closed,
        OPEN: unanswered & ~closed,
        ANSWERED: FollowUp.answered_at.is_not(None),
    }
    since = now - timedelta(days=LIST_DAYS)

    def sent_since(stmt: Select) -> Select:
        return (
            stmt.join(TreatmentPlan, TreatmentPlan.request_id == FollowUp.request_id)
            .join(ConsultationRequest, ConsultationRequest.id == FollowUp.request_id)
            .where(FollowUp.sent_at.is_not(None), FollowUp.sent_at >= since)
        )

    # Every list's count in one pass.
    totals = db.session.execute(
        sent_since(
            select(*(func.count(case((c, 1))) for c in conditions.values())).select_from(FollowUp)
        )
    ).one()
    counts = dict(zip(conditions, totals, strict=True))
    base = sent_since(
        select(
            FollowUp,
            TreatmentPlan.followups_stopped_at,
            ConsultationRequest.reference,
            closed_for_later(),
        )
    )
    rows = db.session.execute(
        base.where(conditions[show])
        .order_by(FollowUp.sent_at.desc(), FollowUp.id.desc())
        .limit(LIST_ROWS)
    ).all()
    words = dict(GPE_CHOICES)
    found = [
        FollowUpRow(
            reference=reference,
            point=follow_up.point,
            sent_at=follow_up.sent_at,
            reminded_at=follow_up.reminded_at,
            expires_at=follow_up.expires_at,
            answered_at=follow_up.answered_at,
            stopped=stopped_at is not None,
            gpe=follow_up.gpe,
            gpe_label=str(words[str(follow_up.gpe)]) if follow_up.gpe else "",
            superseded_at=follow_up.superseded_at,
            closed_for_later=bool(closed_early)
            and follow_up.answered_at is None
            and stopped_at is None
            and follow_up.expires_at is not None
            and follow_up.expires_at <= now,
        )
        for follow_up, stopped_at, reference, closed_early in rows
    ]
    return found, counts


def unseen_failed_worse_notices(late_before: datetime) -> Select:
    """The references of the requests whose notice to the clinic that the patient answered a
    follow-up "much worse" or "worse than ever" (``emails.worse_notice``) failed for good (the
    mail server refused it, or every retry failed) or still waits to go though written before
    ``late_before`` (as an urgent alert, ``requests.queries.failed_alerts``), and whose record
    no staff member has opened since (``requests.queries.opened_since_written``): the record
    page shows the answer in its follow-up section. Oldest notice first. Read from the failed
    and waiting outbox rows (the ``status`` index), which are few."""
    return (
        select(ConsultationRequest.reference)
        .join(OutboxEmail, OutboxEmail.request_id == ConsultationRequest.id)
        .where(
            OutboxEmail.undelivered(late_before),
            OutboxEmail.template == WORSE_TEMPLATE,
            ~opened_since_written(),
        )
        .group_by(ConsultationRequest.reference)
        .order_by(func.min(OutboxEmail.created_at))
    )
