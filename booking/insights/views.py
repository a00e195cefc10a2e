"""The clinic manager's insights page: requests per week, by diagnosis and triage, outcomes."""

from __future__ import annotations

from dataclasses import dataclass

from babel.dates import format_skeleton
from flask import Blueprint, current_app, render_template, request, url_for
from flask_babel import format_percent, ngettext
from flask_babel import gettext as _
from markupsafe import Markup

from booking.insights import charts, services
from booking.requests import history, instruments
from booking.staff.auth import roles_required
from booking.staff.models import StaffRole
from booking.timeutil import clinic_date, dates_locale

bp = Blueprint("insights", __name__, url_prefix="/staff")


@dataclass(frozen=True)
class PeriodOption:
    label: str
    url: str
    current: bool


@dataclass(frozen=True)
class Figure:
    label: str
    value: str
    detail: str


@dataclass(frozen=True)
class Chart:
    id: str
    heading: str
    svg: Markup | None  # None: nothing to draw, the page shows empty_message
    bars: list[charts.Bar]  # the same numbers, for the table
    row_heading: str
    value_heading: str
    note: str = ""
    empty_message: str = ""
    # A drawing of fixed proportions, at least 36rem wide (.insights-chart): on a phone its
    # box scrolls sideways. The horizontal bar charts (.insights-bars) take their box's width
    # and never scroll: their box is no stop in the tab order.
    wide: bool = False
    # Time runs left to right: where the chart is wider than the screen (a phone), its box
    # opens at the newest end, not at the oldest weeks (often empty) with this week hidden.
    newest_last: bool = False


@bp.get("/insights")
@roles_required(StaffRole.ADMIN, StaffRole.COORDINATOR)
def view() -> str:
    weeks = services.period_weeks(request.args.get("weeks"))
    insights = services.clinic_insights(weeks)
    return render_template(
        "insights/insights.html",
        insights=insights,
        periods=_period_options(weeks),
        period_text=_(
            "Requests made from %(first)s to today, %(last)s (weeks start on Monday, %(zone)s "
            "time).",
            first=clinic_date(insights.first_day),
            last=clinic_date(insights.last_day),
            zone=current_app.config["CLINIC_TIMEZONE"],
        ),
        figures=_figures(insights),
        charts=_charts(insights) if insights.total else None,
        outcomes=_outcomes(insights),
    )


def _period_options(weeks: int) -> list[PeriodOption]:
    return [
        PeriodOption(
            label=ngettext("Last %(num)s week", "Last %(num)s weeks", choice),
            url=url_for("insights.view", weeks=choice),
            current=choice == weeks,
        )
        for choice in services.PERIOD_WEEKS
    ]


def _figures(insights: services.Insights) -> list[Figure]:
    none = "\N{EN DASH}"  # the detail line says why there is no figure
    share = insights.confirmed_share
    rate = insights.no_show_rate
    median = insights.median_to_confirm
    return [
        Figure(
            _("Requests"),
            str(insights.total),
            _(
                "%(urgent)s emergency or urgent, %(routine)s routine",
                urgent=insights.urgent,
                routine=insights.routine,
            ),
        ),
        Figure(
            _("Share confirmed"),
            format_percent(share) if share is not None else none,
            _(
                "%(confirmed)s of %(total)s requests were confirmed at some point.",
                confirmed=insights.confirmed,
                total=insights.total,
            ),
        ),
        Figure(
            _("Median time to confirmation"),
            services.format_duration(median) if median is not None else none,
            _("From the request to its first confirmation.")
            if median is not None
            else _("No request in this period has been confirmed."),
        ),
        Figure(
            _("No-show rate"),
            format_percent(rate) if rate is not None else none,
            _(
                "%(no_show)s of %(seen)s appointments that were due were missed.",
                no_show=insights.no_show,
                seen=insights.attended_or_missed,
            )
            if rate is not None
            else _("No appointment from this period has been completed or missed yet."),
        ),
    ]


def _bar_chart(
    chart_id: str,
    heading: str,
    bars: list[charts.Bar],
    *,
    row_heading: str,
    note: str = "",
    empty_message: str = "",
) -> Chart:
    """A horizontal bar chart of requests, titled by its heading. With an ``empty_message``
    no bars draw no chart (the page says so instead)."""
    drawn = bars or not empty_message
    return Chart(
        id=chart_id,
        heading=heading,
        svg=charts.bar_chart(bars, chart_id=chart_id, title=heading) if drawn else None,
        bars=bars,
        row_heading=row_heading,
        value_heading=_("Requests"),
        note=note,
        empty_message=empty_message,
    )


def _charts(insights: services.Insights) -> dict[str, Chart]:
    locale = dates_locale()
    weekly = [
        charts.Bar(
            label=_("Week of %(day)s", day=clinic_date(week.monday)),
            value=week.count,
            axis_label=format_skeleton("MMMd", week.monday, locale=locale),
        )
        for week in insights.per_week
    ]
    labels = {code: str(label) for code, label in history.DIAGNOSES}
    # A code the form no longer offers is shown as stored (escaped like every label).
    diagnoses = [
        charts.Bar(label=labels.get(item.code, item.code), value=item.count)
        for item in insights.by_diagnosis
    ]
    region_names = {code: str(label) for code, label in instruments.REGION_NAMES}
    region_names[services.CALL_BACK] = _("No health questions (emergency call-back)")
    regions = [
        charts.Bar(
            label=region_names.get(item.code, item.code) or _("Not asked (older requests)"),
            value=item.count,
        )
        for item in insights.by_region
    ]
    triage = [
        charts.Bar(label=_("Emergency or urgent"), value=insights.urgent, fill=charts.URGENT_FILL),
        charts.Bar(label=_("Routine"), value=insights.routine),
    ]
    return {
        "weekly": Chart(
            id="chart-weekly",
            heading=_("Requests per week"),
            svg=charts.column_chart(weekly, chart_id="chart-weekly", title=_("Requests per week")),
            bars=weekly,
            row_heading=_("Week"),
            value_heading=_("Requests"),
            wide=True,
            newest_last=True,
        ),
        "diagnosis": _bar_chart(
            "chart-diagnosis",
            _("Requests by diagnosis"),
            diagnoses,
            row_heading=_("Diagnosis"),
            note=_("As the patients named them; a request may name several diagnoses."),
            empty_message=_("No request in this period named a diagnosis."),
        ),
        "triage": _bar_chart(
            "chart-triage",
            _("Requests by triage level"),
            triage,
            row_heading=_("Triage level"),
            note=_("Urgent: the patient reported at least one warning sign."),
        ),
        "region": _bar_chart(
            "chart-region",
            _("Requests by main problem"),
            regions,
            row_heading=_("Main problem"),
            note=_(
                "The lower back is asked the Oswestry Disability Index, the neck the Neck "
                "Disability Index, both of them both."
            ),
        ),
    }


@dataclass(frozen=True)
class OutcomeRow:
    name: str
    asked: int
    scored: int
    median: str
    bands: list[tuple[str, int]]


def _outcomes(insights: services.Insights) -> list[OutcomeRow]:
    rows = []
    for summary in insights.outcomes:
        labels = summary.instrument.band_labels
        median = summary.median_percent
        rows.append(
            OutcomeRow(
                name=str(summary.instrument.name),
                asked=summary.asked,
                scored=summary.scored,
                median=format_percent(median / 100, "#,##0.#%")
                if median is not None
                else "\N{EN DASH}",
                bands=[(str(labels[band.code]), band.count) for band in summary.by_band],
            )
        )
    return rows
