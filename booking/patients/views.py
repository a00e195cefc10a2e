"""The patient's pages: the request form, its confirmation and the privacy notice."""

from __future__ import annotations

import logging
from datetime import timedelta

from flask import Blueprint, current_app, redirect, render_template, request, session, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from werkzeug.wrappers import Response

from booking.documents.storage import DocumentRejected
from booking.extensions import limiter
from booking.patients import history
from booking.patients.forms import RequestForm
from booking.patients.services import find_by_reference, submit_request
from booking.scheduling.availability import open_slots
from booking.scheduling.services import (
    SlotChoice,
    SlotTaken,
    SlotView,
    active_appointment_types,
    describe_slots,
    picker,
    resolve_choice,
    scheduling_enabled,
)
from booking.timeutil import now_utc

log = logging.getLogger(__name__)

bp = Blueprint("patients", __name__)

SUBMITTED_KEY = "submitted_reference"
SLOT_ALTERNATIVES = 8


def _render_form(
    form: RequestForm,
    status: int = 200,
    problem: str | None = None,
    slot_options: list[SlotView] | None = None,
) -> tuple[str, int]:
    """The form page; ``problem`` is a failure on our side, shown apart from the patient's
    corrections so it does not read as something they got wrong. ``slot_options`` replaces
    a picked time that was just taken with fresh ones to choose from."""
    page = render_template(
        "patients/request_form.html",
        form=form,
        history=history,
        problem=problem,
        chosen=None if slot_options is not None else _chosen_slot(form),
        slot_options=slot_options,
        scheduling=scheduling_enabled(),
    )
    return page, status


def _chosen_slot(form: RequestForm) -> SlotView | None:
    """The picked time, for display, if it is still open."""
    choice = form.slot_choice()
    if choice is None:
        return None
    try:
        _type, slot = resolve_choice(choice)
    except SlotTaken:
        return None
    return describe_slots([slot])[0]


def _fresh_slots(choice: SlotChoice | None) -> list[SlotView]:
    """Open times near a choice that was just taken: same specialist first, then anyone."""
    types = active_appointment_types()
    appointment_type = next(
        (t for t in types if choice and t.id == choice.appointment_type_id),
        types[0] if types else None,
    )
    if appointment_type is None:
        return []
    start = choice.starts_at - timedelta(days=1) if choice else now_utc()
    for specialist_id in ([choice.specialist_id] if choice else []) + [None]:
        slots = open_slots(
            appointment_type, start, start + timedelta(days=14), specialist_id=specialist_id
        )
        if slots:
            return describe_slots(slots[:SLOT_ALTERNATIVES])
    return []


@bp.get("/request/time")
def pick_time() -> Response | str:
    """Step 1: pick an appointment type, a specialist (or the first available) and a time."""
    types = active_appointment_types()
    if not types:
        return redirect(url_for("patients.request_form"))
    type_arg = request.args.get("type", "")
    appointment_type = next((t for t in types if str(t.id) == type_arg), types[0])
    shown = picker(request.args, appointment_type)
    return render_template(
        "patients/pick_time.html",
        types=types,
        appointment_type=appointment_type,
        specialists=shown.specialists,
        specialist=shown.specialist,
        days=shown.days,
        start=shown.start,
        last_day=shown.end - timedelta(days=1),
        earlier=shown.earlier,
        later=shown.end,
    )


@bp.get("/request")
def request_form() -> tuple[str, int]:
    form = RequestForm()
    form.appointment_type.data = request.args.get("type", "")[:10]
    form.slot.data = request.args.get("slot", "")[:40]
    return _render_form(form)


def _submit_limit() -> str:
    return current_app.config["SUBMIT_RATE_LIMIT"]


@bp.post("/request")
@limiter.limit(_submit_limit)
def submit() -> Response | tuple[str, int]:
    form = RequestForm()
    if not form.validate_on_submit():
        return _render_form(form, 422)
    try:
        consultation = submit_request(form.to_submission(str(get_locale() or "en")))
    except DocumentRejected as exc:
        form.form_errors.append(str(exc))
        return _render_form(form, 422)
    except SlotTaken:
        form.form_errors.append(
            _(
                "Sorry, that time was just taken by someone else. Please choose another "
                "time below; everything else you entered is kept."
            )
        )
        return _render_form(form, 409, slot_options=_fresh_slots(form.slot_choice()))
    except OSError:
        log.exception("document storage failed; the request was not stored")
        problem = _(
            "We could not store your documents just now, so your request was not sent. "
            "Please try again in a few minutes, or send it without documents and bring "
            "them to your appointment."
        )
        return _render_form(form, 503, problem)
    session[SUBMITTED_KEY] = consultation.reference
    return redirect(url_for("patients.submitted"), code=303)


@bp.get("/request/submitted")
def submitted() -> Response | str:
    reference = session.get(SUBMITTED_KEY)
    consultation = find_by_reference(reference) if reference else None
    if consultation is None:
        return redirect(url_for("patients.request_form"))
    return render_template("patients/request_submitted.html", consultation=consultation)


@bp.get("/privacy")
def privacy() -> str:
    return render_template("patients/privacy.html")
