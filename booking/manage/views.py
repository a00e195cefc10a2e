"""The patient's private page for one request: status, documents, reschedule, cancel."""

from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response

from booking.documents.storage import DocumentRejected
from booking.extensions import limiter
from booking.manage import services
from booking.manage.forms import AddDocumentsForm, CancelForm, RescheduleForm
from booking.manage.tokens import request_for_token
from booking.patients.models import ConsultationRequest
from booking.scheduling.availability import parse_slot_key
from booking.scheduling.services import (
    SlotChoice,
    SlotTaken,
    picker,
)
from booking.scheduling.waitlist import (
    OfferGone,
    accept_offer,
    find_offer,
    is_waiting,
    join_waitlist,
    leave_waitlist,
)

bp = Blueprint("manage", __name__, url_prefix="/manage")


def _limit() -> str:
    return current_app.config["MANAGE_RATE_LIMIT"]


@bp.after_request
def _private(response: Response) -> Response:
    # The URL carries the patient's token: never leak it to another site, never cache.
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store, private"
    response.headers["X-Robots-Tag"] = "noindex, nofollow"
    return response


def _load(reference: str, token: str) -> ConsultationRequest:
    consultation = request_for_token(reference, token)
    if consultation is None:
        abort(404)
    return consultation


def _here(reference: str, token: str) -> str:
    return url_for("manage.view", reference=reference, token=token)


def _render(consultation: ConsultationRequest, token: str, status: int = 200, **forms: object):
    forms.setdefault("documents_form", AddDocumentsForm(prefix="docs"))
    forms.setdefault("cancel_form", CancelForm(prefix="cancel"))
    return render_template(
        "manage/manage.html",
        consultation=consultation,
        token=token,
        waiting=is_waiting(consultation),
        can_change=services.can_change(consultation),
        deadline=services.notice_deadline(consultation),
        **forms,
    ), status


@bp.get("/<reference>/<token>")
@limiter.limit(_limit)
def view(reference: str, token: str):
    return _render(_load(reference, token), token)


@bp.post("/<reference>/<token>/documents")
@limiter.limit(_limit)
def add_documents(reference: str, token: str):
    consultation = _load(reference, token)
    form = AddDocumentsForm(prefix="docs")
    if not form.validate_on_submit():
        return _render(consultation, token, 422, documents_form=form)
    try:
        count = services.add_documents(consultation, form.uploads())
    except services.ManageError as exc:
        # Shown above the page: a closed request's page has no documents form to show it in.
        flash(str(exc), "danger")
        return _render(consultation, token, 409)
    except DocumentRejected as exc:
        form.form_errors.append(str(exc))
        return _render(consultation, token, 422, documents_form=form)
    except OSError:
        form.form_errors.append(
            _("We could not store your documents just now. Please try again later.")
        )
        return _render(consultation, token, 503, documents_form=form)
    flash(_("Thank you: %(n)d document(s) added.", n=count), "success")
    return redirect(_here(reference, token))


@bp.post("/<reference>/<token>/cancel")
@limiter.limit(_limit)
def cancel(reference: str, token: str):
    consultation = _load(reference, token)
    form = CancelForm(prefix="cancel")
    if not form.validate_on_submit():
        return _render(consultation, token, 422, cancel_form=form)
    try:
        services.cancel(consultation, (form.reason.data or "").strip() or None)
    except services.ManageError as exc:
        flash(str(exc), "danger")
        return _render(consultation, token, 409)
    flash(_("Your request is cancelled. We have sent you a confirmation."), "success")
    return redirect(_here(reference, token))


@bp.route("/<reference>/<token>/reschedule", methods=["GET", "POST"])
@limiter.limit(_limit)
def reschedule(reference: str, token: str):
    consultation = _load(reference, token)
    appointment = consultation.appointment
    if appointment is None or appointment.appointment_type is None:
        abort(404)
    form = RescheduleForm()
    problem = None
    if request.method == "POST":
        parsed = parse_slot_key(request.form.get("slot", ""))
        if not form.validate_on_submit() or parsed is None:
            problem = _("Please choose one of the times.")
        else:
            specialist_id, location_id, starts_at = parsed
            choice = SlotChoice(
                appointment.appointment_type_id, specialist_id, location_id, starts_at
            )
            try:
                services.reschedule(consultation, choice)
            except SlotTaken:
                problem = _("Sorry, that time was just taken. Please choose another.")
            except services.ManageError as exc:
                problem = str(exc)
            else:
                flash(_("Your new time is saved. We have sent you a confirmation."), "success")
                return redirect(_here(reference, token))
    shown = picker(request.args, appointment.appointment_type, moving=appointment)
    page = render_template(
        "manage/reschedule.html",
        consultation=consultation,
        token=token,
        form=form,
        problem=problem,
        can_change=services.can_change(consultation),
        specialists=shown.specialists,
        specialist=shown.specialist,
        days=shown.days,
        start=shown.start,
        later=shown.end,
        earlier=shown.earlier,
    )
    return page, (409 if problem else 200)


@bp.post("/<reference>/<token>/waitlist")
@limiter.limit(_limit)
def waitlist(reference: str, token: str) -> Response:
    consultation = _load(reference, token)
    if not FlaskForm().validate_on_submit():
        abort(400)
    if request.form.get("join") == "1":
        try:
            join_waitlist(consultation)
        except ValueError:
            flash(_("Only a request with a time can wait for an earlier one."), "danger")
        else:
            flash(_("We will email you if an earlier time becomes free."), "success")
    else:
        leave_waitlist(consultation)
        flash(_("You will no longer be told about earlier times."), "success")
    return redirect(_here(reference, token))


@bp.route("/<reference>/<token>/offers/<offer_token>", methods=["GET", "POST"])
@limiter.limit(_limit)
def offer(reference: str, token: str, offer_token: str):
    consultation = _load(reference, token)
    slot_offer = find_offer(offer_token)
    if slot_offer is None:
        abort(404)
    gone = slot_offer.claimed_by_request_id is not None
    if request.method == "POST":
        if not FlaskForm().validate_on_submit():
            abort(400)
        try:
            accept_offer(slot_offer, consultation)
        except OfferGone:
            gone = True
        else:
            flash(_("The earlier time is yours. We have sent you a confirmation."), "success")
            return redirect(_here(reference, token))
    page = render_template(
        "manage/offer.html",
        consultation=consultation,
        token=token,
        offer=slot_offer,
        gone=gone or slot_offer.claimed_by_request_id not in (None, consultation.id),
    )
    return page, (409 if gone and request.method == "POST" else 200)
