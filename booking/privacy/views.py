"""Admin pages for privacy requests: find a patient, export everything, erase on request."""

from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_babel import ngettext
from flask_login import current_user
from werkzeug.wrappers import Response

from booking.privacy import services
from booking.privacy.export import stream_zip
from booking.privacy.forms import EraseForm, ExportForm, FindPatientForm
from booking.staff.auth import roles_required
from booking.staff.models import StaffRole

bp = Blueprint("privacy", __name__, url_prefix="/staff/admin/privacy")


@bp.route("", methods=["GET", "POST"])
@roles_required(StaffRole.ADMIN)
def find() -> Response | tuple[str, int]:
    # A post, not a query string: an email address must not end up in access logs.
    form = FindPatientForm()
    if form.validate_on_submit():
        reference = services.find_patient(form.query.data)
        if reference is not None:
            return redirect(url_for(".patient", reference=reference))
        form.query.errors = [*form.query.errors, _("No request has this email or reference.")]
    page = render_template("privacy/find.html", form=form, retention=services.retention_status())
    return page, 422 if form.errors else 200


def _summary(reference: str) -> services.PatientSummary:
    try:
        summary = services.patient_summary(reference, current_user)
    except services.NotAllowed:
        abort(403)
    if summary is None:
        abort(404)
    return summary


@bp.get("/<reference>")
@roles_required(StaffRole.ADMIN)
def patient(reference: str) -> str:
    return render_template(
        "privacy/patient.html",
        summary=_summary(reference),
        erase_form=EraseForm(),
    )


@bp.post("/<reference>/export")
@roles_required(StaffRole.ADMIN)
def export(reference: str) -> Response:
    if not ExportForm().validate_on_submit():
        abort(400)
    try:
        archive = services.export_patient(reference, current_user)
    except services.NotAllowed:
        abort(403)
    if archive is None:
        abort(404)
    response = Response(
        stream_zip(current_app._get_current_object(), archive),  # type: ignore[attr-defined]
        mimetype="application/zip",
    )
    response.headers["Content-Disposition"] = f'attachment; filename="{archive.filename}"'
    response.headers["Cache-Control"] = "no-store, private"
    return response


@bp.post("/<reference>/erase")
@roles_required(StaffRole.ADMIN)
def erase(reference: str) -> Response | tuple[str, int]:
    form = EraseForm()
    if form.validate_on_submit():
        try:
            result = services.erase_patient(reference, form.confirmation.data, current_user)
        except services.NotAllowed:
            abort(403)
        except services.PrivacyError as exc:
            form.confirmation.errors = [*form.confirmation.errors, str(exc)]
        else:
            flash(
                _(
                    "Erased: %(requests)s, %(documents)s and %(emails)s.",
                    requests=ngettext(
                        "%(num)d request", "%(num)d requests", result.counts.requests
                    ),
                    documents=ngettext(
                        "%(num)d document", "%(num)d documents", result.counts.documents
                    ),
                    emails=ngettext("%(num)d email", "%(num)d emails", result.counts.emails),
                ),
                "success",
            )
            if result.files_pending:
                flash(
                    ngettext(
                        "%(num)d stored file could not be removed yet. It is retried every "
                        "day; see the server log.",
                        "%(num)d stored files could not be removed yet. They are retried "
                        "every day; see the server log.",
                        result.files_pending,
                    ),
                    "warning",
                )
            return redirect(url_for(".find"))
    page = render_template(
        "privacy/patient.html",
        summary=_summary(reference),
        erase_form=form,
    )
    return page, 422
