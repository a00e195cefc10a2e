"""Admin pages for privacy requests: find a patient, export everything, erase on request."""

from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_babel import ngettext
from flask_login import current_user
from werkzeug.wrappers import Response

from booking.privacy import services
from booking.privacy.forms import CloseErasureForm, EraseForm, ExportForm, FindPatientForm
from booking.requests.queries import find_by_reference, typed_reference
from booking.rights import services as rights
from booking.rights.export import stream_zip
from booking.staff.auth import roles_required
from booking.staff.models import StaffRole
from booking.urlargs import redirect_if_written_otherwise

bp = Blueprint("privacy", __name__, url_prefix="/staff/admin/privacy")


@bp.route("", methods=["GET", "POST"])
@roles_required(StaffRole.ADMIN)
def find() -> Response | tuple[str, int]:
    # A post, not a query string: an email address must not end up in access logs.
    form = FindPatientForm()
    if form.validate_on_submit():
        reference = services.find_patient(form.query.data, current_user)
        if reference is not None:
            return redirect(url_for(".patient", reference=reference))
        form.query.errors = [*form.query.errors, _("No request has this email or reference.")]
    page = render_template(
        "privacy/find.html",
        form=form,
        retention=services.retention_status(),
        erasures=rights.erasure_queue(),
    )
    return page, 422 if form.errors else 200


def _summary(reference: str) -> services.PatientSummary:
    # Typed another way ("sc 7k4m q2xd"): a GET goes to the page's one address first, so the
    # look (audited) is recorded once, there. Only a request's: anything else is not found.
    canonical = typed_reference(reference)
    if canonical != reference and find_by_reference(canonical) is not None:
        redirect_if_written_otherwise("reference", canonical)
    try:
        summary = services.patient_summary(reference, current_user)
    except services.NotAllowed:
        abort(403)
    if summary is None:
        abort(404)
    return summary


def _close_form(erasure_id: int) -> CloseErasureForm:
    """The answer to one erasure request: a prefix of its own, so two on one page keep
    their fields, labels and errors apart."""
    return CloseErasureForm(prefix=f"close-{erasure_id}")


def _patient_page(
    reference: str,
    erase_form: EraseForm | None = None,
    answered: tuple[int, CloseErasureForm] | None = None,
) -> str:
    summary = _summary(reference)
    erase_form = erase_form or EraseForm()
    if summary.email is None:
        # A call-back request has no address to type: only its reference confirms.
        erase_form.confirmation.label.text = _("Type the request reference to confirm")
    erasures = rights.erasures_for([line.reference for line in summary.requests])
    close_forms = {erasure.id: _close_form(erasure.id) for erasure in erasures}
    if answered is not None:  # the answer posted (its erasure's id, the form with its errors)
        close_forms[answered[0]] = answered[1]
    return render_template(
        "privacy/patient.html",
        summary=summary,
        erase_form=erase_form,
        # A request still open cannot be erased (``erase_patient`` refuses): no form to fill
        # in for nothing, only why and what to do first.
        erasable=not summary.open_references,
        erasures=erasures,
        close_forms=close_forms,
        retention=services.retention_status(),
    )


@bp.get("/<reference>")
@roles_required(StaffRole.ADMIN)
def patient(reference: str) -> str:
    return _patient_page(reference)


@bp.get("/erasures")
@roles_required(StaffRole.ADMIN)
def erasures() -> str:
    """Patients' requests to erase their data, the oldest first, each with its deadline."""
    return render_template("privacy/erasures.html", erasures=rights.erasure_queue())


@bp.post("/erasures/<int:erasure_id>/close")
@roles_required(StaffRole.ADMIN)
def close_erasure(erasure_id: int) -> Response | tuple[str, int]:
    form = _close_form(erasure_id)
    if form.validate_on_submit():
        try:
            erasure = rights.close_erasure(erasure_id, form.explanation.data, current_user)
        except rights.RightsError as exc:
            flash(str(exc), "danger")
            return redirect(url_for(".erasures"))
        flash(_("Answered: the patient is emailed your explanation."), "success")
        return redirect(url_for(".patient", reference=erasure.reference))
    reference = rights.erasure_reference(erasure_id)
    if reference is None:
        abort(404)
    return _patient_page(reference, answered=(erasure_id, form)), 422


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
            if result.patient_emailed:
                flash(
                    _(
                        "An email telling the patient that their data is erased is on its way "
                        "(if it cannot be delivered, the server log says so, and it is not "
                        "kept)."
                    ),
                    "info",
                )
            elif result.patient_deceased:
                flash(_("No email was sent: the patient is marked deceased."), "info")
            else:
                flash(
                    _(
                        "The patient left no email address: please tell them by phone or "
                        "letter that their data is erased."
                    ),
                    "warning",
                )
            if result.registry_codes:
                flash(
                    _(
                        "This patient was in registry exports under %(codes)s: ask each "
                        "registry you sent an export to to delete that code's rows.",
                        codes=", ".join(result.registry_codes),
                    ),
                    "warning",
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
    return _patient_page(reference, erase_form=form), 422
