"""Figures for the clinic manager: how many requests came in, what for, and how they went.

Every figure covers the requests *created* in the chosen period: weeks from Monday in the
clinic's time zone, ending today (the current week so far, never days still to come). The page
costs six queries whatever the number of weeks or requests: one for the counts, one grouping
by week, one grouping by diagnosis, the (created, confirmed) pairs for the median, which is
taken in Python because SQLite has no median and PostgreSQL's ``percentile_cont`` would be a
second code path, and, for the same reason, each request's main problem and instrument
scores; and the answers of the requests staff raised since, whose urgency at arrival their
answers give (``triage.level``).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from flask_babel import format_decimal, ngettext
from sqlalchemy import and_, case, func

from booking.extensions import db
from booking.requests import history, instruments, triage
from booking.requests.models import (
    PRESSING_LEVELS,
    ConsultationRequest,
    MedicalHistory,
    RequestDiagnosis,
    RequestStatus,
    TriageLevel,
)
from booking.timeutil import clinic_tz, from_clinic_local, now_utc

PERIOD_WEEKS = (4, 12, 26, 52)
DEFAULT_WEEKS = 12


def period_weeks(value: str | None) -> int:
    """The period asked for in the URL; anything but an offered choice gets the default."""
    try:
        weeks = int(value or "")
    except ValueError:
        return DEFAULT_WEEKS
    return weeks if weeks in PERIOD_WEEKS else DEFAULT_WEEKS


@dataclass(frozen=True)
class WeekCount:
    monday: date  # the clinic's calendar
    count: int


@dataclass(frozen=True)
class CodeCount:
    code: str
    count: int


@dataclass(frozen=True)
class InstrumentSummary:
    """One instrument over the period's requests that were asked it."""

    instrument: instruments.Instrument
    asked: int
    scored: int  # the rest had more than two sections unanswered
    median_percent: float | None
    by_band: list[CodeCount]  # in the instrument's band order, every band


@dataclass(frozen=True)
class Insights:
    weeks: int
    first_day: date  # the first Monday, clinic time
    last_day: date  # today, clinic time: the last week so far
    total: int
    per_week: list[WeekCount]
    by_diagnosis: list[CodeCount]  # most named first; a request may name several
    urgent: int
    routine: int
    confirmed: int  # confirmed at some point, whatever the status is now
    median_to_confirm: timedelta | None
    completed: int
    no_show: int
    # The main problem (``instruments.REGIONS`` order, then "" for requests made before it was
    # asked), and each instrument's scores.
    by_region: list[CodeCount]
    outcomes: list[InstrumentSummary]

    @property
    def confirmed_share(self) -> float | None:
        return self.confirmed / self.total if self.total else None

    @property
    def attended_or_missed(self) -> int:
        return self.completed + self.no_show

    @property
    def no_show_rate(self) -> float | None:
        return self.no_show / self.attended_or_missed if self.attended_or_missed else None


def week_starts(weeks: int, now: datetime) -> list[date]:
    """The Mondays (clinic calendar) of the last ``weeks`` weeks, oldest first, ending with
    the week that holds ``now``."""
    today = now.astimezone(clinic_tz()).date()
    this_monday = today - timedelta(days=today.weekday())
    return [this_monday - timedelta(weeks=weeks - 1 - i) for i in range(weeks)]


def clinic_insights(weeks: int, *, now: datetime | None = None) -> Insights:
    """The figures for the requests created in the last ``weeks`` clinic weeks, the current
    one up to the end of today (the clinic's day holding ``now``): the period ends today,
    not on a Sunday still to come, so the page never names a date nobody could yet ask on."""
    now = now or now_utc()
    today = now.astimezone(clinic_tz()).date()
    mondays = week_starts(weeks, now)
    # Each week's bounds are converted separately: a week holding a daylight-saving change is
    # 167 or 169 hours long, so adding 7 days in UTC would drift by an hour.
    bounds = [from_clinic_local(day, time.min) for day in mondays]
    bounds.append(from_clinic_local(today + timedelta(days=1), time.min))
    created = ConsultationRequest.created_at
    in_period = and_(created >= bounds[0], created < bounds[-1])

    # Urgency at arrival (the online triage): a request staff raised since counts by its
    # answers, not by the level it was raised to.
    as_sent = ConsultationRequest.triage_raised_at.is_(None)
    counts = db.session.execute(
        db.select(
            func.count(),
            func.count(ConsultationRequest.confirmed_at),
            _count_where(as_sent & ConsultationRequest.triage_level.in_(PRESSING_LEVELS)),
            _count_where(as_sent & (ConsultationRequest.triage_level == TriageLevel.ROUTINE)),
            _count_where(ConsultationRequest.status == RequestStatus.COMPLETED),
            _count_where(ConsultationRequest.status == RequestStatus.NO_SHOW),
        ).where(in_period)
    ).one()
    total, confirmed, urgent, routine, completed, no_show = counts
    for flags, withdrawn in db.session.execute(
        db.select(ConsultationRequest.red_flags, ConsultationRequest.withdrawn_red_flags).where(
            in_period, ~as_sent
        )
    ):
        if triage.level(flags or (), withdrawn or ()) == TriageLevel.ROUTINE:
            routine += 1
        else:
            urgent += 1

    return Insights(
        weeks=weeks,
        first_day=mondays[0],
        last_day=today,
        total=total,
        per_week=_per_week(mondays, bounds, in_period),
        by_diagnosis=_by_diagnosis(in_period),
        urgent=urgent,
        routine=routine,
        confirmed=confirmed,
        median_to_confirm=_median_to_confirm(in_period),
        completed=completed,
        no_show=no_show,
        **_regions_and_outcomes(in_period),
    )


def _count_where(condition: Any) -> Any:
    return func.count(case((condition, 1)))


def _per_week(mondays: list[date], bounds: list[datetime], in_period: Any) -> list[WeekCount]:
    # The week number is worked out in SQL from the UTC bounds, which works the same on SQLite
    # (no time zones) and PostgreSQL. It is grouped in an outer query: PostgreSQL would not
    # match a GROUP BY expression to the same expression in the SELECT list when each carries
    # its own bound parameters.
    created = ConsultationRequest.created_at
    week = case(
        *((created < bounds[i + 1], i) for i in range(len(mondays) - 1)),
        else_=len(mondays) - 1,
    ).label("week")
    rows = db.select(week).where(in_period).subquery()
    grouped = db.select(rows.c.week, func.count()).group_by(rows.c.week)
    # .all(): dict() would take a Result for a mapping, as it has .keys().
    counted = dict(db.session.execute(grouped).tuples().all())
    return [WeekCount(monday, counted.get(i, 0)) for i, monday in enumerate(mondays)]


def _by_diagnosis(in_period: Any) -> list[CodeCount]:
    rows = db.session.execute(
        db.select(RequestDiagnosis.code, func.count())
        .join(ConsultationRequest, ConsultationRequest.id == RequestDiagnosis.request_id)
        .where(in_period)
        .group_by(RequestDiagnosis.code)
    ).tuples()
    order = {code: i for i, (code, _label) in enumerate(history.DIAGNOSES)}
    counted = [CodeCount(code, count) for code, count in rows]
    # Most named first; ties in the form's order, codes the form no longer offers last.
    return sorted(counted, key=lambda c: (-c.count, order.get(c.code, len(order)), c.code))


def _median_to_confirm(in_period: Any) -> timedelta | None:
    pairs = db.session.execute(
        db.select(ConsultationRequest.created_at, ConsultationRequest.confirmed_at).where(
            in_period, ConsultationRequest.confirmed_at.is_not(None)
        )
    ).tuples()
    seconds = [(confirmed - created).total_seconds() for created, confirmed in pairs]
    return timedelta(seconds=statistics.median(seconds)) if seconds else None


# The main problem's row of an emergency call-back: no health questions were asked.
CALL_BACK = "call_back"


def _regions_and_outcomes(in_period: Any) -> dict[str, Any]:
    rows = db.session.execute(
        db.select(
            MedicalHistory.request_id,
            MedicalHistory.spine_region,
            MedicalHistory.odi_percent,
            MedicalHistory.ndi_percent,
        )
        .select_from(ConsultationRequest)
        .outerjoin(MedicalHistory, ConsultationRequest.id == MedicalHistory.request_id)
        .where(in_period)
    ).tuples()
    regions: dict[str, int] = {}
    percents: dict[str, list[float | None]] = {i.code: [] for i in instruments.INSTRUMENTS}
    for history_of, region, odi, ndi in rows:
        if history_of is None:  # an emergency call-back: counted, with nothing to score
            regions[CALL_BACK] = regions.get(CALL_BACK, 0) + 1
            continue
        regions[region or ""] = regions.get(region or "", 0) + 1
        given = {"odi": odi, "ndi": ndi}
        for instrument in instruments.instruments_for(region):
            percents[instrument.code].append(given[instrument.code])
    order = [code for code, _label in instruments.REGIONS] + ["", CALL_BACK]
    return {
        "by_region": [CodeCount(code, regions[code]) for code in order if code in regions],
        "outcomes": [_summary(i, percents[i.code]) for i in instruments.INSTRUMENTS],
    }


def _summary(instrument: instruments.Instrument, percents: list[float | None]) -> InstrumentSummary:
    scored = [percent for percent in percents if percent is not None]
    bands = [instrument.band(percent) for percent in scored]
    return InstrumentSummary(
        instrument=instrument,
        asked=len(percents),
        scored=len(scored),
        median_percent=statistics.median(scored) if scored else None,
        by_band=[CodeCount(band.code, bands.count(band.code)) for band in instrument.bands],
    )


def format_duration(value: timedelta) -> str:
    """A response time as people say it: minutes under an hour, hours under two days, else
    days, to one decimal place."""
    seconds = max(value.total_seconds(), 0)
    if seconds < 3600:
        minutes = round(seconds / 60)
        return ngettext("%(num)s minute", "%(num)s minutes", minutes)
    if seconds < 48 * 3600:
        return _decimal_units(seconds / 3600, "hour")
    return _decimal_units(seconds / 86400, "day")


def _decimal_units(amount: float, unit: str) -> str:
    amount = round(amount, 1)
    # Plural rules are defined on whole numbers; a fraction reads as the plural ("1.5 days").
    num = int(amount) if amount.is_integer() else 2
    value = format_decimal(amount, format="#,##0.#")
    if unit == "hour":
        return ngettext("%(value)s hour", "%(value)s hours", num, value=value)
    return ngettext("%(value)s day", "%(value)s days", num, value=value)
