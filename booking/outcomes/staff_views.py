"""The clinic's outcome pages for staff: the results and every patient's follow-ups
(coordinators and admins), the registry export, and the settings (admins). Staff pages are
in English (the patient's follow-up pages are in ``views``)."""

from __future__ import annotations

from collections.abc import Iterator

from flask import (
    Blueprint,
    abort,
    flash,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user
from werkzeug.wrappers import Response

from booking.outcomes import progress, services
from booking.outcomes import results as results_service
from booking.outcomes.forms import OutcomeSettingsForm, RefreshForm, RegistryExportForm
from booking.outcomes.labels import point_label
from booking.outcomes.progress import threshold_notes
from booking.requests.lifecycle import WorkflowError
from booking.staff.auth import roles_required
from booking.staff.models import StaffRole
from booking.timeutil import clinic_today, now_utc

bp = Blueprint("outcomes_staff", __name__, url_prefix="/staff/outcomes")


@bp.route("/settings", methods=["GET", "POST"])
@roles_required(StaffRole.ADMIN)
def settings() -> Response | tuple[str, int]:
    """The follow-up schedule, the change thresholds and the public figures' switch."""
    current = services.settings()
    form = OutcomeSettingsForm()
    if request.method == "GET":
        form.schedule.data = ", ".join(current.schedule)
        form.odi_points.data = current.odi_points
        form.ndi_points.data = current.ndi_points
        form.pain_points.data = current.pain_points
        form.relative_percent.data = current.relative_percent
        form.public_figures.data = current.public_figures
    elif form.validate_on_submit():
        change = services.SettingsChange(
            schedule=form.schedule.parsed,
            odi_points=float(form.odi_points.data),
            ndi_points=float(form.ndi_points.data),
            pain_points=float(form.pain_points.data),
            relative_percent=float(form.relative_percent.data),
            public_figures=bool(form.public_figures.data),
        )
        try:
            services.save_settings(change, current_user)
        except WorkflowError as exc:
            form.form_errors.append(str(exc))
        else:
            flash(_("Outcome settings saved."), "success")
            return redirect(url_for(".settings"))
    page = render_template(
        "outcomes/staff/settings.html", form=form, notes=threshold_notes(current)
    )
    return page, 422 if form.errors or form.form_errors else 200


@bp.get("")
@roles_required(StaffRole.ADMIN, StaffRole.COORDINATOR)
def results() -> str:
    months = results_service.period_months(request.args.get("months"))
    found = results_service.clinic_results(months, request.args.get("point"))
    return render_template(
        "outcomes/staff/results.html",
        r=found,
        periods=results_service.PERIOD_MONTHS,
        min_group=results_service.MIN_GROUP,
        notes=threshold_notes(services.settings()),
        point_labels={point: point_label(point) for point in found.points},
        not_sent_reasons=results_service.not_sent_headings(),
        refresh_form=RefreshForm(),
        export_form=RegistryExportForm(),
        refresh_minutes=results_service.SNAPSHOT_MINUTES,
        max_age_minutes=int(results_service.SNAPSHOT_MAX_AGE.total_seconds() // 60),
    )


@bp.get("/follow-ups")
@roles_required(StaffRole.ADMIN, StaffRole.COORDINATOR)
def follow_ups() -> str:
    """Every patient's follow-ups of the last months: who answered "much worse", who never
    answered, whose link is still open, who answered."""
    show = request.args.get("show", progress.WORSE)
    if show not in progress.FOLLOW_UP_LISTS:
        show = progress.WORSE
    rows, counts = progress.follow_up_list(show, now_utc())
    return render_template(
        "outcomes/staff/follow_ups.html",
        show=show,
        rows=rows,
        counts=counts,
        days=progress.LIST_DAYS,
        limit=progress.LIST_ROWS,
        point_label=point_label,
    )


@bp.post("/refresh")
@roles_required(StaffRole.ADMIN, StaffRole.COORDINATOR)
def refresh() -> Response:
    """Count the period and time point afresh now, not at the worker's next round."""
    months = results_service.period_months(request.args.get("months"))
    point = request.args.get("point")
    if RefreshForm().validate_on_submit():
        found = results_service.clinic_results(months, point, fresh=True)
        point = found.point
        flash(_("The figures are up to date."), "success")
    return redirect(url_for(".results", months=months, point=point), code=303)


@bp.post("/registry.csv")
@roles_required(StaffRole.ADMIN, StaffRole.COORDINATOR)
def export_csv() -> Response:
    """The pseudonymised registry export of the period's answered follow-ups; audited. A
    post with the page's CSRF token: it writes, so another site's link (a GET, or a post
    without the token) must not make it."""
    if not RegistryExportForm().validate_on_submit():
        abort(400)
    months = results_service.period_months(request.args.get("months"))
    export_id = results_service.start_registry_export(months, current_user)
    # As the queue's export: the heading goes first without the request's context, then the
    # rows are read in it, kept for the stream; closing the body closes the rows' stream.
    head = results_service.registry_head().encode("utf-8")
    rows = stream_with_context(
        piece.encode("utf-8")
        for piece in results_service.registry_pieces(months, current_user, export_id)
    )

    def body() -> Iterator[bytes]:
        yield head
        yield from rows

    response = Response(body(), content_type="text/csv; charset=utf-8")
    stamp = clinic_today().isoformat()
    response.headers["Content-Disposition"] = (
        f'attachment; filename="outcomes-registry-{stamp}.csv"'
    )
    response.headers["Cache-Control"] = "no-store, private"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
