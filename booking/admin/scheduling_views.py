"""Admin pages for scheduling data: booking rules, appointment types, and each specialist's
weekly hours and exceptions. Pages with several forms post back to themselves; the pressed
button (each form's own ``submit``) says which form was sent."""

from __future__ import annotations

from datetime import date, time, timedelta

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import ngettext
from flask_login import current_user
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response

from booking.admin.forms import names_data, names_form
from booking.admin.scheduling_forms import (
    AppointmentTypeEditForm,
    AppointmentTypeForm,
    BookingRulesForm,
    ClinicClosureForm,
    ExtraHoursForm,
    TimeOffForm,
    WorkingHoursForm,
    field_errors,
)
from booking.extensions import db
from booking.forms import confirmation_page, confirmed
from booking.openinghours import clinic_closed_days
from booking.scheduling import admin_services as admin
from booking.scheduling import closures
from booking.scheduling.agenda import booked_on_closed_days
from booking.scheduling.availability import clinic_settings
from booking.scheduling.models import AppointmentType, ScheduleException
from booking.scheduling.services import active_locations, appointments_to_come
from booking.staff.auth import roles_required
from booking.staff.models import StaffRole, StaffUser
from booking.templating import isolated, message_of, naming
from booking.timeutil import (
    clinic_date,
    clinic_dt,
    clinic_today,
    clock_text,
    now_utc,
    to_clinic_tz,
)

bp = Blueprint("scheduling_admin", __name__, url_prefix="/staff/admin/scheduling")
# The closed days the overview lists: the coming year's.
CLOSED_AHEAD = timedelta(days=365)


def _refuse(form: FlaskForm, exc: admin.ScheduleError) -> None:
    """Show a refused change next to the field it is about (or above the form)."""
    field = form[exc.field] if exc.field and exc.field in form else None
    if field is not None:
        field.errors = [*field.errors, message_of(exc)]
    else:
        form.form_errors.append(message_of(exc))


# Overview: booking rules and appointment types ----------------------------------------------


@bp.route("/", methods=["GET", "POST"])
@roles_required(StaffRole.ADMIN)
def overview() -> Response | tuple[str, int]:
    rules_form = BookingRulesForm(prefix="rules", obj=clinic_settings())
    type_form = names_form(AppointmentTypeForm, prefix="type")
    if request.method == "POST":
        if rules_form.submit.data:
            if rules_form.validate():
                try:
                    admin.save_booking_rules(rules_form.rules(), current_user)
                except admin.ScheduleError as exc:
                    _refuse(rules_form, exc)
                else:
                    flash(_("Booking rules saved."), "success")
                    rules = rules_form.rules()
                    if rules.cancel_notice_hours > rules.min_notice_hours:
                        # Allowed (the clinic may want it), but patients should not be
                        # surprised by it: the admin is told what it means.
                        flash(
                            _(
                                "Note: patients can book a time from %(book)d hours ahead but "
                                "change or cancel it online only until %(change)d hours "
                                "before, so a time booked less than %(change)d hours ahead "
                                "can never be changed online.",
                                book=rules.min_notice_hours,
                                change=rules.cancel_notice_hours,
                            ),
                            "warning",
                        )
                    return redirect(url_for(".overview"))
        elif type_form.submit.data:
            if type_form.validate():
                try:
                    created = admin.create_appointment_type(
                        type_form.name.data,
                        type_form.duration_minutes.data,
                        current_user,
                        names=type_form.other_names(),
                        mode=type_form.visit_mode(),
                    )
                except admin.ScheduleError as exc:
                    _refuse(type_form, exc)
                else:
                    flash(
                        naming(
                            _("Appointment type %(name)s added."),
                            name=isolated(created.display_name),
                        ),
                        "success",
                    )
                    return redirect(url_for(".overview"))
        else:
            abort(400)
    failed = field_errors(rules_form) or field_errors(type_form)
    page = render_template(
        "admin/scheduling/overview.html",
        rules_form=rules_form,
        type_form=type_form,
        rules_saved=admin.booking_rules_saved(),
        types=admin.all_appointment_types(),
        specialists=admin.specialists_with_hours_count(),
        closed_days=(
            closed := sorted(clinic_closed_days(clinic_today(), clinic_today() + CLOSED_AHEAD))
        ),
        booked_closed=booked_on_closed_days(closed, now_utc()),
        holidays_region=current_app.config["CLINIC_HOLIDAYS"],
    )
    return page, 422 if failed else 200


@bp.post("/types/<int:type_id>/active")
@roles_required(StaffRole.ADMIN)
def set_type_active(type_id: int) -> Response | str:
    # CSRFProtect has already checked this post's token.
    appointment_type = db.get_or_404(AppointmentType, type_id)
    active = request.form.get("active") == "1"
    if not active and appointment_type.active and not confirmed():
        return _confirm_switching_off(appointment_type)
    admin.set_appointment_type_active(appointment_type, active, current_user)
    if active:
        flash(
            naming(
                _("Patients can book %(name)s again."), name=isolated(appointment_type.display_name)
            ),
            "success",
        )
    else:
        flash(
            naming(
                _("Patients can no longer book %(name)s."),
                name=isolated(appointment_type.display_name),
            ),
            "success",
        )
        if booked := appointments_to_come(appointment_type_id=appointment_type.id):
            flash(
                ngettext(
                    "%(num)d appointment of this type is still to come: it keeps its type, "
                    "and its patient can still move it to another time of it.",
                    "%(num)d appointments of this type are still to come: they keep their "
                    "type, and their patients can still move them to other times of it.",
                    booked,
                ),
                "warning",
            )
    return redirect(url_for(".overview"))


def _confirm_switching_off(appointment_type: AppointmentType) -> str:
    warnings = []
    others = [
        other
        for other in admin.all_appointment_types()
        if other.active and other.id != appointment_type.id
    ]
    if not others:
        warnings.append(
            _(
                "This is the last appointment type patients can book: once it is deactivated, "
                "patients cannot book any appointment until a type is bookable again."
            )
        )
    if booked := appointments_to_come(appointment_type_id=appointment_type.id):
        warnings.append(
            ngettext(
                "%(num)d appointment of this type is still to come: it keeps its type.",
                "%(num)d appointments of this type are still to come: they keep their type.",
                booked,
            )
        )
    return confirmation_page(
        title=naming(_("Deactivate %(name)s?"), name=isolated(appointment_type.display_name)),
        button=_("Deactivate the appointment type"),
        cancel_url=url_for(".overview"),
        consequences=[
            _("Patients can no longer book it, from now on."),
            _("Reactivating it offers it again."),
        ],
        warnings=warnings,
    )


@bp.route("/types/<int:type_id>", methods=["GET", "POST"])
@roles_required(StaffRole.ADMIN)
def edit_type(type_id: int) -> Response | tuple[str, int]:
    """An appointment type's names, in the clinic's language and the others patients read,
    its duration and how its visits take place (``admin.edit_appointment_type``)."""
    appointment_type = db.get_or_404(AppointmentType, type_id)
    data = {
        **names_data(appointment_type),
        "duration_minutes": appointment_type.duration_minutes,
        "mode": appointment_type.mode.value,
        "shown": admin.type_mark(appointment_type),
    }
    form = names_form(AppointmentTypeEditForm, data=data)
    if form.validate_on_submit():
        try:
            changed = admin.edit_appointment_type(
                appointment_type,
                form.name.data,
                form.other_names(),
                form.visit_mode(),
                current_user,
                duration_minutes=form.duration_minutes.data,
                shown=form.shown.data or "",
            )
        except admin.ScheduleError as exc:
            if exc.field == "shown":
                form.form_errors.append(message_of(exc))
                # The page now knows the type as it is: saved again, it goes through.
                form.shown.data = admin.type_mark(appointment_type)
            else:
                _refuse(form, exc)
        else:
            if not changed:
                flash(
                    naming(
                        _("Nothing was changed for %(name)s."),
                        name=isolated(appointment_type.display_name),
                    ),
                    "info",
                )
            else:
                flash(_("Appointment type saved."), "success")
            if "duration_minutes" in changed and (
                booked := appointments_to_come(appointment_type_id=appointment_type.id)
            ):
                flash(
                    ngettext(
                        "%(num)d appointment of this type is still to come: it keeps its "
                        "time and its length. Only times booked from now on take %(minutes)d "
                        "minutes.",
                        "%(num)d appointments of this type are still to come: they keep their "
                        "times and their length. Only times booked from now on take "
                        "%(minutes)d minutes.",
                        booked,
                        minutes=appointment_type.duration_minutes,
                    ),
                    "warning",
                )
            return redirect(url_for(".overview"))
    page = render_template(
        "admin/scheduling/type_edit.html", form=form, appointment_type=appointment_type
    )
    return page, 422 if field_errors(form) else 200


# Days the whole clinic is closed ------------------------------------------------------------


@bp.route("/closed-days", methods=["GET", "POST"])
@roles_required(StaffRole.ADMIN)
def closed_days() -> Response | tuple[str, int]:
    """The days the clinic is closed: the settings' (shown, not changed here) and those closed
    in the app, which an admin adds (asked to confirm, with the appointments booked on the
    day listed) and removes."""
    form = ClinicClosureForm()
    if form.validate_on_submit():
        day, reason = form.day.data, form.reason.data
        try:
            if not confirmed():
                closures.check_closure(day, reason)
                return _confirm_closing(day)
            added = closures.close_clinic(day, reason, current_user)
        except admin.ScheduleError as exc:
            _refuse(form, exc)
        else:
            flash(
                _(
                    "The clinic is closed on %(day)s: patients are offered no time on it.",
                    day=clinic_date(day, "full"),
                ),
                "success",
            )
            if added.appointments_kept:
                flash(
                    ngettext(
                        "%(num)d appointment booked on that day was not changed: please move "
                        "it to another day, or enter extra hours for its specialist.",
                        "%(num)d appointments booked on that day were not changed: please move "
                        "them to other days, or enter extra hours for their specialists.",
                        added.appointments_kept,
                    ),
                    "warning",
                )
            return redirect(url_for(".closed_days"))
    days = closures.upcoming_closed_days(clinic_today(), CLOSED_AHEAD)
    page = render_template(
        "admin/scheduling/closed_days.html",
        form=form,
        days=days,
        booked_closed=booked_on_closed_days([row.day for row in days], now_utc()),
        holidays_region=current_app.config["CLINIC_HOLIDAYS"],
    )
    return page, 422 if field_errors(form) else 200


def _confirm_closing(day: date) -> str:
    booked = closures.appointments_on(day, now_utc())
    warnings = []
    if booked:
        warnings.append(
            ngettext(
                "%(num)d appointment is booked on this day. Closing the clinic does not cancel "
                "it: it stays booked, and its patient would come to a closed clinic. Move it "
                "to another day, or enter extra hours for its specialist.",
                "%(num)d appointments are booked on this day. Closing the clinic does not "
                "cancel them: they stay booked, and their patients would come to a closed "
                "clinic. Move them to other days, or enter extra hours for their specialists.",
                len(booked),
            )
        )
    return confirmation_page(
        title=_("Close the clinic on %(day)s?", day=clinic_date(day, "full")),
        button=_("Close the clinic on this day"),
        cancel_url=url_for(".closed_days"),
        consequences=[
            _("Weekly hours do not apply on that day: patients are offered no time on it."),
            _("Extra hours entered for a specialist on that day still apply."),
            _("Appointments already booked on it stay as they are."),
        ],
        warnings=warnings,
        listed=[
            (
                naming(
                    _("%(reference)s at %(time)s with %(name)s"),
                    reference=appointment.request.reference,
                    time=clinic_dt(appointment.starts_at, "HH:mm"),
                    name=isolated(appointment.specialist.full_name),
                ),
                url_for("dashboard.record", reference=appointment.request.reference),
            )
            for appointment in booked
        ],
    )


@bp.post("/closed-days/<int:closure_id>/delete")
@roles_required(StaffRole.ADMIN)
def delete_closure(closure_id: int) -> Response | str:
    closure = closures.find_closure(closure_id)
    if closure is None:
        return _closure_already_removed(closure_id)
    day = clinic_date(closure.day, "full")
    if not confirmed():
        return confirmation_page(
            title=_("Open the clinic again on %(day)s?", day=day),
            button=_("Remove the closed day"),
            cancel_url=url_for(".closed_days"),
            consequences=[
                _("Weekly hours apply on that day again: patients may be offered times on it."),
                _("Extra hours and time off entered for that day stay as they are."),
            ],
        )
    try:
        closures.reopen_clinic(closure, current_user)
    except admin.AlreadyDeletedError:
        return _closure_already_removed(closure_id)
    except admin.ScheduleError as exc:
        flash(message_of(exc), "danger")
    else:
        flash(_("The clinic is open again on %(day)s.", day=day), "success")
    return redirect(url_for(".closed_days"))


def _closure_already_removed(closure_id: int) -> Response:
    """A removal of a closed day no longer there: removed before (a second tab, another
    admin), the admin is told so; never there, 404."""
    if not closures.removed_before(closure_id):
        abort(404)
    flash(
        _(
            "This closed day was already removed, perhaps in another tab or by another "
            "administrator: nothing was changed."
        ),
        "info",
    )
    return redirect(url_for(".closed_days"))


# A specialist's schedule --------------------------------------------------------------------


def _specialist_or_404(user_id: int) -> StaffUser:
    specialist = admin.find_specialist(user_id)
    if specialist is None:
        abort(404)
    return specialist


@bp.route("/specialists/<int:user_id>", methods=["GET", "POST"])
@roles_required(StaffRole.ADMIN)
def specialist(user_id: int) -> Response | tuple[str, int]:
    specialist = _specialist_or_404(user_id)
    locations = active_locations()
    hours_form = WorkingHoursForm(prefix="hours")
    off_form = TimeOffForm(prefix="off")
    extra_form = ExtraHoursForm(prefix="extra")
    hours_form.set_locations(locations)
    extra_form.set_locations(locations)
    if request.method == "POST":
        done = None
        if hours_form.submit.data:
            done = _add_hours(specialist, hours_form)
        elif off_form.submit.data:
            done = _add_time_off(specialist, off_form)
        elif extra_form.submit.data:
            done = _add_extra_hours(specialist, extra_form)
        else:
            abort(400)
        if done is not None:
            flash(*done)
            return redirect(url_for(".specialist", user_id=specialist.id))
    failed = any(field_errors(form) for form in (hours_form, off_form, extra_form))
    exceptions = admin.upcoming_exceptions(specialist.id)
    page = render_template(
        "admin/scheduling/specialist.html",
        specialist=specialist,
        hours=admin.weekly_hours(specialist.id),
        exceptions=exceptions,
        whole_days={e.id: days for e in exceptions if (days := _whole_days(e)) is not None},
        weekdays=admin.WEEKDAY_NAMES,
        locations=locations,
        hours_form=hours_form,
        off_form=off_form,
        extra_form=extra_form,
    )
    return page, 422 if failed else 200


def _whole_days(exception: ScheduleException) -> tuple[date, date] | None:
    """(first day, last day) of time off that runs from a midnight to a midnight (clinic
    time): shown as days, not as "until the next day, 00:00"."""
    start, end = to_clinic_tz(exception.starts_at), to_clinic_tz(exception.ends_at)
    if (start.time(), end.time()) != (time(0), time(0)) or end.date() <= start.date():
        return None
    return start.date(), end.date() - timedelta(days=1)


def _add_hours(specialist: StaffUser, form: WorkingHoursForm) -> tuple[str, str] | None:
    if not form.validate():
        return None
    try:
        admin.add_working_hours(specialist, form.hours(), current_user)
    except admin.ScheduleError as exc:
        _refuse(form, exc)
        return None
    return _("Working hours added."), "success"


def _add_time_off(specialist: StaffUser, form: TimeOffForm) -> tuple[str, str] | None:
    if not form.validate() or form.starts_at is None or form.ends_at is None:
        return None
    try:
        added = admin.add_time_off(
            specialist, form.starts_at, form.ends_at, form.reason.data, current_user
        )
    except admin.ScheduleError as exc:
        _refuse(form, exc)
        return None
    if added.appointments_inside:
        return (
            ngettext(
                "Time off added. %(num)d booked appointment falls in it and was not changed: "
                "please move or cancel it.",
                "Time off added. %(num)d booked appointments fall in it and were not changed: "
                "please move or cancel them.",
                added.appointments_inside,
            ),
            "warning",
        )
    return _("Time off added."), "success"


def _add_extra_hours(specialist: StaffUser, form: ExtraHoursForm) -> tuple[str, str] | None:
    if not form.validate() or form.starts_at is None or form.ends_at is None:
        return None
    try:
        added = admin.add_extra_hours(
            specialist,
            form.starts_at,
            form.ends_at,
            form.location.data,
            form.reason.data,
            current_user,
        )
    except admin.ScheduleError as exc:
        _refuse(form, exc)
        return None
    if added.appointments_elsewhere:
        return (
            ngettext(
                "Extra hours added. They replace the weekly hours at other places, but %(num)d "
                "appointment booked at another place falls in them and was not changed: please "
                "move it, or its patient will go to the other place.",
                "Extra hours added. They replace the weekly hours at other places, but %(num)d "
                "appointments booked at another place fall in them and were not changed: "
                "please move them, or their patients will go to the other place.",
                added.appointments_elsewhere,
            ),
            "warning",
        )
    return _("Extra hours added."), "success"


@bp.post("/specialists/<int:user_id>/hours/<int:hours_id>/delete")
@roles_required(StaffRole.ADMIN)
def delete_hours(user_id: int, hours_id: int) -> Response | str:
    row = admin.find_working_hours(hours_id)
    if row is None:
        return _already_deleted("working_hours", hours_id, user_id)
    if row.specialist_id != user_id:
        abort(404)
    if not confirmed():
        return confirmation_page(
            title=naming(
                _(
                    "Delete the working hours of %(name)s on %(day)s from %(start)s to %(end)s "
                    "at %(place)s?"
                ),
                name=isolated(row.specialist.full_name),
                day=admin.WEEKDAY_NAMES[row.weekday],
                start=clock_text(row.start_time),
                end=clock_text(row.end_time),
                place=isolated(row.location.display_name),
            ),
            button=_("Delete the working hours"),
            cancel_url=url_for(".specialist", user_id=user_id),
            consequences=[
                _("Patients are no longer offered these times, from now on."),
                _("Appointments already booked in them stay as they are."),
            ],
        )
    try:
        outside = admin.delete_working_hours(row, current_user)
    except admin.AlreadyDeletedError:
        return _already_deleted("working_hours", hours_id, user_id)
    flash(_("Working hours deleted."), "success")
    _warn_outside(outside)
    return redirect(url_for(".specialist", user_id=user_id))


def _already_deleted(target_type: str, target_id: int, user_id: int) -> Response:
    """A delete of hours or an exception that is no longer there: deleted before (a second
    tab, another admin), the admin is told so on the specialist's page; never there, 404."""
    specialist = _specialist_or_404(user_id)
    kind = admin.deleted_kind(target_type, target_id, specialist.id)
    if kind is None:
        abort(404)
    if kind == admin.TIME_OFF:
        message = _(
            "This time off was already deleted, perhaps in another tab or by another "
            "administrator: nothing was changed."
        )
    elif kind == admin.EXTRA:
        message = _(
            "These extra hours were already deleted, perhaps in another tab or by another "
            "administrator: nothing was changed."
        )
    else:
        message = _(
            "These working hours were already deleted, perhaps in another tab or by another "
            "administrator: nothing was changed."
        )
    flash(message, "info")
    return redirect(url_for(".specialist", user_id=specialist.id))


def _warn_outside(outside: int) -> None:
    if outside:
        flash(
            ngettext(
                "%(num)d booked appointment of this specialist is outside their working hours "
                "now and was not changed: please move or cancel it.",
                "%(num)d booked appointments of this specialist are outside their working "
                "hours now and were not changed: please move or cancel them.",
                outside,
            ),
            "warning",
        )


@bp.post("/specialists/<int:user_id>/exceptions/<int:exception_id>/delete")
@roles_required(StaffRole.ADMIN)
def delete_exception(user_id: int, exception_id: int) -> Response | str:
    exception = admin.find_schedule_exception(exception_id)
    if exception is None:
        return _already_deleted("schedule_exception", exception_id, user_id)
    if exception.specialist_id != user_id:
        abort(404)
    time_off = exception.kind == admin.TIME_OFF
    if not confirmed():
        question = (
            _("Delete the time off of %(name)s from %(start)s to %(end)s?")
            if time_off
            else _("Delete the extra hours of %(name)s from %(start)s to %(end)s?")
        )
        return confirmation_page(
            title=naming(
                question,
                name=isolated(exception.specialist.full_name),
                start=clinic_dt(exception.starts_at, "EEE d MMM y, HH:mm"),
                end=clinic_dt(exception.ends_at, "EEE d MMM y, HH:mm"),
            ),
            button=_("Delete the time off") if time_off else _("Delete the extra hours"),
            cancel_url=url_for(".specialist", user_id=user_id),
            consequences=[
                _("Patients may be offered times in it again, from now on.")
                if time_off
                else _("Patients are no longer offered these times, from now on."),
                _("Appointments already booked stay as they are."),
            ],
        )
    try:
        outside = admin.delete_schedule_exception(exception, current_user)
    except admin.AlreadyDeletedError:
        return _already_deleted("schedule_exception", exception_id, user_id)
    flash(_("Time off deleted.") if time_off else _("Extra hours deleted."), "success")
    _warn_outside(outside)
    return redirect(url_for(".specialist", user_id=user_id))
