"""Admin pages: clinic locations, the checklist of what a request should have, and the audit
trail."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import ngettext
from flask_login import current_user
from werkzeug.wrappers import Response

from booking.admin.forms import (
    ChecklistItemForm,
    LocationEditForm,
    LocationForm,
    NamesForm,
    names_data,
    names_form,
)
from booking.admin.trail import trail_names
from booking.audit.labels import action_label
from booking.audit.queries import AuditFilters, audit_page, known_actions
from booking.extensions import db
from booking.feedback.services import feedback_counts, page_name, recent_feedback
from booking.forms import confirmation_page, confirmed
from booking.requests import asks
from booking.requests.queries import typed_reference
from booking.scheduling import services as scheduling
from booking.scheduling.models import Location
from booking.staff.auth import roles_required
from booking.staff.models import StaffRole
from booking.templating import isolated, message_of, naming, unfilled
from booking.urlargs import date_arg, int_arg, text_arg

bp = Blueprint("admin", __name__, url_prefix="/staff/admin")


def _refuse(form: NamesForm, exc: scheduling.LocationError) -> None:
    """Show a refused change next to the field it is about (the name unless it says)."""
    field = form[exc.field] if exc.field and exc.field in form else form.name
    field.errors = [*field.errors, message_of(exc)]


@bp.route("/locations", methods=["GET", "POST"])
@roles_required(StaffRole.ADMIN)
def locations() -> Response | tuple[str, int]:
    form = names_form(LocationForm)
    if form.validate_on_submit():
        try:
            scheduling.create_location(
                form.name.data, form.address.data, current_user, names=form.other_names()
            )
        except scheduling.LocationError as exc:
            _refuse(form, exc)
        else:
            flash(_("Location added."), "success")
            return redirect(url_for(".locations"))
    page = render_template("admin/locations.html", form=form, locations=scheduling.all_locations())
    return page, 422 if form.errors else 200


@bp.route("/locations/<int:location_id>", methods=["GET", "POST"])
@roles_required(StaffRole.ADMIN)
def edit_location(location_id: int) -> Response | tuple[str, int]:
    """A location's names, in the clinic's language and the others patients read, and its
    address (``scheduling.edit_location``)."""
    location = db.get_or_404(Location, location_id)
    data = {
        **names_data(location),
        "address": location.address,
        "shown": scheduling.location_mark(location),
    }
    form = names_form(LocationEditForm, data=data)
    if form.validate_on_submit():
        try:
            edit = scheduling.edit_location(
                location,
                form.name.data,
                form.other_names(),
                form.address.data,
                current_user,
                shown=form.shown.data or "",
            )
        except scheduling.LocationError as exc:
            if exc.field == "shown":
                form.form_errors.append(message_of(exc))
                # The page now shows the location as it is: saved again, it goes through.
                form.shown.data = scheduling.location_mark(location)
            else:
                _refuse(form, exc)
        else:
            if not edit.changed:
                flash(
                    naming(
                        _("Nothing was changed for %(name)s."), name=isolated(location.display_name)
                    ),
                    "info",
                )
            else:
                flash(naming(_("%(name)s saved."), name=isolated(location.display_name)), "success")
                _flash_address_notices(edit)
            return redirect(url_for(".locations"))
    page = render_template("admin/location_edit.html", form=form, location=location)
    return page, 422 if form.errors or form.form_errors else 200


def _flash_address_notices(edit: scheduling.LocationEdit) -> None:
    """What became of the patients going to a location whose address changed."""
    if "address" not in edit.changed:
        return
    if not edit.readdressed:
        flash(
            _(
                "The address changed in spacing or capitals only: patients read the same "
                "place, so none was emailed."
            ),
            "info",
        )
        return
    if edit.emailed:
        flash(
            ngettext(
                "%(num)d patient with an appointment to come will be emailed the new address, "
                "with their calendar event updated.",
                "%(num)d patients with appointments to come will be emailed the new address, "
                "with their calendar events updated.",
                edit.emailed,
            ),
            "success",
        )
    if edit.untold:
        flash(
            ngettext(
                "%(num)d patient with an appointment to come at this location left no email "
                "address: please phone them with the new address.",
                "%(num)d patients with appointments to come at this location left no email "
                "address: please phone them with the new address.",
                edit.untold,
            ),
            "warning",
        )


@bp.post("/locations/<int:location_id>/active")
@roles_required(StaffRole.ADMIN)
def set_location_active(location_id: int) -> Response | str:
    location = db.get_or_404(Location, location_id)
    active = request.form.get("active") == "1"
    if not active and location.active and not confirmed():
        return _confirm_closing(location)
    scheduling.set_location_active(location, active, current_user)
    flash(_("Location updated."), "success")
    # Closing stops new bookings there at once; the appointments already made stay, and
    # their patients would still be reminded to come: staff move or cancel them.
    if not active and (waiting := scheduling.appointments_to_come(location_id=location.id)):
        flash(
            naming(
                ngettext(
                    "%(num)d appointment to come is still at %(name)s, and its patient is still "
                    "expected there: move it to another place or cancel it (the calendar, "
                    "filtered by this location, shows it).",
                    "%(num)d appointments to come are still at %(name)s, and their patients are "
                    "still expected there: move them to another place or cancel them (the "
                    "calendar, filtered by this location, shows them).",
                    waiting,
                    **unfilled("name"),
                ),
                name=isolated(location.display_name),
            ),
            "warning",
        )
    return redirect(url_for(".locations"))


def _confirm_closing(location: Location) -> str:
    warnings = []
    if not [other for other in scheduling.active_locations() if other.id != location.id]:
        warnings.append(
            _(
                "This is the last open location: once it is closed, patients cannot book any "
                "appointment until a location is open again."
            )
        )
    if waiting := scheduling.appointments_to_come(location_id=location.id):
        warnings.append(
            naming(
                ngettext(
                    "%(num)d appointment to come is at %(name)s: it stays there, and its patient "
                    "is still expected there, until it is moved or cancelled.",
                    "%(num)d appointments to come are at %(name)s: they stay there, and their "
                    "patients are still expected there, until they are moved or cancelled.",
                    waiting,
                    **unfilled("name"),
                ),
                name=isolated(location.display_name),
            )
        )
    return confirmation_page(
        title=naming(_("Close %(name)s?"), name=isolated(location.display_name)),
        button=_("Close the location"),
        cancel_url=url_for(".locations"),
        consequences=[
            _("Patients can no longer book times there, from now on."),
            _("Reopening it offers its times again."),
        ],
        warnings=warnings,
    )


@bp.route("/checklist", methods=["GET", "POST"])
@roles_required(StaffRole.ADMIN)
def checklist() -> Response | tuple[str, int]:
    """What staff can ask a patient to send (``booking.requests.asks``)."""
    form = names_form(ChecklistItemForm)
    if form.validate_on_submit():
        try:
            clinic = current_app.config["BABEL_DEFAULT_LOCALE"]
            # The clinic's name, then one per other language patients read (never the
            # clinic's: a Spanish clinic's form has a name in English, not in Spanish twice).
            labels = {clinic: form.label.data, **form.other_names()}
            asks.add_item(labels, current_user)
        except asks.AskError as exc:
            # The name the refusal is about: a Spanish name like another item's is refused at
            # the Spanish name, not at the clinic's (which may be new).
            field = form.label
            if isinstance(exc, asks.ItemNameTakenError) and exc.language != clinic:
                field = form[f"label_{exc.language}"]
            field.errors = [*field.errors, str(exc)]
        else:
            flash(_("Item added."), "success")
            return redirect(url_for(".checklist"))
    page = render_template(
        "admin/checklist.html", form=form, items=asks.checklist(include_inactive=True)
    )
    return page, 422 if form.errors else 200


@bp.post("/checklist/<code>/active")
@roles_required(StaffRole.ADMIN)
def set_checklist_item_active(code: str) -> Response:
    try:
        asks.set_item_active(code, request.form.get("active") == "1", current_user)
    except asks.AskError as exc:
        flash(str(exc), "danger")
    else:
        flash(_("Checklist updated."), "success")
    return redirect(url_for(".checklist"))


def _date(name: str) -> date | None:
    return date_arg(request.args.get(name))


@bp.get("/feedback")
@roles_required(StaffRole.ADMIN)
def page_feedback() -> str:
    """Readers' feedback on the information pages, newest first, with each page's counts."""
    return render_template(
        "admin/page_feedback.html",
        feedback=recent_feedback(),
        counts=feedback_counts(),
        page_name=page_name,
    )


@bp.get("/audit")
@roles_required(StaffRole.ADMIN)
def audit() -> str:
    page_arg = request.args.get("page", "1")
    target = text_arg(request.args.get("target"), 40)
    filters = AuditFilters(
        action=text_arg(request.args.get("action"), 64),
        actor=text_arg(request.args.get("actor"), 254),
        target=target,
        # Typed as the queue's search takes it: "sc 7k4m q2xd", "7K4MQ2XD".
        reference=typed_reference(target) if target else None,
        date_from=_date("from"),
        date_to=_date("to"),
        refused_only=request.args.get("refused") == "1",
        page=int_arg(page_arg, maximum=1_000_000) or 1,
    )
    events, total, pages, page = audit_page(filters)
    # A date that cannot be read is said, not silently left out of the filter.
    unread = [
        label
        for name, label in (("from", _("From")), ("to", _("To")))
        if (request.args.get(name) or "").strip() and _date(name) is None
    ]
    backwards = bool(filters.date_from and filters.date_to and filters.date_from > filters.date_to)
    codes = known_actions()
    labels = {code: action_label(code) for code in {*codes, *(e.action for e in events)}}
    return render_template(
        "admin/audit.html",
        events=events,
        total=total,
        pages=pages,
        filters=replace(filters, page=page),
        # The menu reads in words (the code after each, as the DPO's queries name it).
        actions=sorted(
            (
                (code, labels[code] if labels[code] == code else f"{labels[code]} ({code})")
                for code in codes
            ),
            key=lambda choice: choice[1].casefold(),
        ),
        action_labels=labels,
        names=trail_names(events),
        unread_dates=unread,
        backwards=backwards,
    )
