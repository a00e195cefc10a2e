"""The patient's pages: the request form, its confirmation and the privacy notice."""

from __future__ import annotations

import logging
import re
import secrets
from dataclasses import dataclass
from datetime import date, timedelta

from flask import Blueprint, current_app, redirect, render_template, request, session, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_wtf.csrf import generate_csrf
from markupsafe import Markup, escape
from werkzeug.wrappers import Response

from booking.documents.storage import DocumentRejected
from booking.extensions import limiter
from booking.pagecache import cached_page, fill
from booking.patients.forms import (
    CallbackForm,
    RedFlagForm,
    RequestForm,
    RequestStartForm,
    carried_red_flags,
    new_submission_token,
    red_flag_fields,
)
from booking.patients.services import CallbackSubmission, request_callback, submit_request
from booking.requests import history, triage
from booking.requests.queries import find_by_reference
from booking.scheduling.availability import open_slots
from booking.scheduling.services import (
    SlotChoice,
    SlotTaken,
    SlotUnavailable,
    SlotView,
    active_appointment_types,
    describe_slots,
    picker,
    resolve_choice,
    scheduling_enabled,
)
from booking.scheduling.versions import availability_key, current_version
from booking.timeutil import clinic_today, now_utc
from booking.urlargs import date_arg, int_arg

log = logging.getLogger(__name__)

bp = Blueprint("patients", __name__)

SUBMITTED_KEY = "submitted_reference"
# The first step's answers ({code: "yes" | "no"}), carried to the request form in the session.
RED_FLAGS_KEY = "red_flag_answers"
CALLBACK_KEY = "callback_reference"
SLOT_ALTERNATIVES = 8


def _render_form(
    form: RequestStartForm,
    status: int = 200,
    problem: str | None = None,
    slot_options: list[SlotView] | None = None,
    red_flag_inputs: Markup | None = None,
) -> tuple[str, int]:
    """The form page; ``problem`` is a failure on our side, shown apart from the patient's
    corrections so it does not read as something they got wrong. ``slot_options`` replaces
    a picked time that was just taken with fresh ones to choose from.

    A new form (a ``RequestStartForm``) reuses the questions' markup rendered once for this
    language and day; a form with the patient's answers and errors renders them in full."""
    page = render_template(
        "patients/request_form.html",
        form=form,
        history=history,
        problem=problem,
        chosen=None if slot_options is not None else _chosen_slot(form),
        slot_options=slot_options,
        scheduling=scheduling_enabled(),
        sections=None if isinstance(form, RequestForm) else _blank_sections(),
        red_flag_inputs=red_flag_inputs if red_flag_inputs is not None else _posted_flags(form),
        advice=_form_advice(form),
    )
    return page, status


def _flag_inputs(answers: dict[str, str]) -> Markup:
    """The first step's answers as the request form's hidden inputs (codes and "yes"/"no"
    only, checked by ``carried_red_flags``)."""
    field = Markup('<input type="hidden" name="red_{}" value="{}">')
    return Markup("").join(field.format(code, answer) for code, answer in answers.items())


def _posted_flags(form: RequestStartForm) -> Markup:
    """A posted form's red-flag answers, carried again when it is shown for correction."""
    if not isinstance(form, RequestForm):
        return Markup("")
    answers = {field.name[4:]: field.data for field in form.red_flag_fields()}
    return _flag_inputs(carried_red_flags(answers) or {})


def _form_advice(form: RequestStartForm) -> triage.Advice | None:
    """The advice of the first step's answers, shown again on top of the request form."""
    if isinstance(form, RequestForm):
        answers = {field.name[4:]: field.data for field in form.red_flag_fields()}
    else:
        answers = carried_red_flags(session.get(RED_FLAGS_KEY)) or {}
    return triage.advice(code for code, answer in answers.items() if answer == "yes")


@dataclass(frozen=True)
class BlankSections:
    """The questions of a new form, as markup: the same for every patient of one language."""

    answers: Markup
    preferences: Markup
    consent: Markup


SECTIONS_CACHE = "patients.request_form_sections"


def _blank_sections() -> BlankSections:
    """The questions' markup for the current language and day, rendered once and reused.

    Rendering the form's 60 fields takes most of the page's time and gives the same markup for
    every new form: it depends only on the language, the settings (document limits) and the
    day (the date pickers' min/max). Each app keeps its own cache, keyed by language and day;
    a new day starts a new cache. When templates reload (development) nothing is cached, so an
    edited template shows at once.
    """
    key = (str(get_locale() or "en"), clinic_today())
    if current_app.jinja_env.auto_reload:
        return _render_sections()
    cache: dict[tuple[str, date], BlankSections] = current_app.extensions.setdefault(
        SECTIONS_CACHE, {}
    )
    sections = cache.get(key)
    if sections is None:
        if any(day != key[1] for _lang, day in cache):
            cache.clear()
        sections = cache[key] = _render_sections()
    return sections


def _render_sections() -> BlankSections:
    module = current_app.jinja_env.get_template("patients/_request_sections.html").module
    form = RequestForm(formdata=None)
    config = current_app.config
    return BlankSections(
        answers=module.answers(form, config["MAX_DOCUMENTS"], config["MAX_DOCUMENT_MB"]),
        preferences=module.preferences(form),
        consent=module.consent(form),
    )


def _chosen_slot(form: RequestStartForm) -> SlotView | None:
    """The picked time, for display, if it is still open."""
    choice = form.slot_choice()
    if choice is None:
        return None
    try:
        _type, slot = resolve_choice(choice)
    except (SlotTaken, SlotUnavailable):
        return None
    return describe_slots([slot])[0]


def _fresh_slots(form: RequestStartForm, choice: SlotChoice | None = None) -> list[SlotView]:
    """Open times to choose from instead of the picked one: near a ``choice`` that was just
    taken (same specialist first, then anyone), else the earliest. Of the form's type while it
    is offered, else of the first; the form then names that type, so a time chosen from these
    is booked as shown."""
    types = active_appointment_types()
    type_id = int_arg(str(form.appointment_type.data or ""))
    appointment_type = next(
        (t for t in types if t.id == type_id),
        types[0] if types else None,
    )
    if appointment_type is None:
        return []
    form.appointment_type.data = str(appointment_type.id)
    start = choice.starts_at - timedelta(days=1) if choice else now_utc()
    for specialist_id in ([choice.specialist_id] if choice else []) + [None]:
        slots = open_slots(
            appointment_type, start, start + timedelta(days=14), specialist_id=specialist_id
        )
        if slots:
            return describe_slots(slots[:SLOT_ALTERNATIVES])
    return []


# The reused pages declare no rate limit: spare them the limiter's work on every request.
REUSED_PAGES = frozenset({"patients.request_form", "patients.pick_time"})
# (The first step and the emergency page are not reused: their forms post, and are limited.)


@limiter.request_filter
def _reused_page() -> bool:
    return request.endpoint in REUSED_PAGES


@bp.get("/request/time")
def pick_time() -> Response | bytes:
    """Step 1: pick an appointment type, a specialist (or the first available) and a time."""
    page = cached_page(availability_key(), _render_pick_time)
    if not page:  # no appointment type to book
        return redirect(url_for("patients.request_form"))
    return page


def _render_pick_time() -> str:
    """The picker page, or "" when no appointment type is offered."""
    types = active_appointment_types()
    if not types:
        return ""
    type_arg = request.args.get("type", "")
    appointment_type = next((t for t in types if str(t.id) == type_arg), types[0])

    shown = picker(request.args, appointment_type, one_per_place=True)
    # One day's times at a time (?day=, else the first day with times): two weeks of
    # times on one page were hundreds of radio buttons to scroll through on a phone.
    wanted = date_arg(request.args.get("day"))
    day, times = next(
        (entry for entry in shown.days if entry[0] == wanted),
        shown.days[0] if shown.days else (None, []),
    )
    return render_template(
        "patients/pick_time.html",
        types=types,
        appointment_type=appointment_type,
        specialists=shown.specialists,
        specialist=shown.specialist,
        days=[(each, len(views)) for each, views in shown.days],
        day=day,
        times=times,
        start=shown.start,
        last_day=shown.end - timedelta(days=1),
        earlier=shown.earlier,
        later=shown.end,
    )


INDENTATION = re.compile(r"\n[ \t]+")

# Written into a reused form page where each visitor's own tokens go (see booking.pagecache).
# Random per process: the page repeats the URL's arguments (language links), and a placeholder
# a visitor could type there would put their tokens into a link.
CSRF_PLACEHOLDER = f"csrf-{secrets.token_hex(16)}"
SUBMISSION_PLACEHOLDER = f"submission-{secrets.token_hex(16)}"
RED_FLAGS_PLACEHOLDER = f"red-flags-{secrets.token_hex(16)}"


def _step_args() -> dict[str, str]:
    """The picked time's arguments, carried through the first step and back."""
    return {key: request.args[key][:40] for key in ("type", "slot") if request.args.get(key)}


@bp.route("/request/start", methods=["GET", "POST"])
def red_flags() -> Response | tuple[str, int]:
    """The first step: the red-flag questions, before any other (``triage.py``). An
    emergency answer stops the flow; any other goes on to the time and the form."""
    form = RedFlagForm()
    if request.method == "GET":
        for code, answer in (carried_red_flags(session.get(RED_FLAGS_KEY)) or {}).items():
            form[f"red_{code}"].data = answer
    elif form.validate_on_submit():
        answers = form.answers()
        session[RED_FLAGS_KEY] = answers
        flags = [code for code, answer in answers.items() if answer == "yes"]
        if triage.pathway(flags) == triage.EMERGENCY:
            return redirect(url_for("patients.emergency"), code=303)
        args = _step_args()
        if args.get("slot") or not scheduling_enabled():
            return redirect(url_for("patients.request_form", **args), code=303)
        return redirect(url_for("patients.pick_time", **args), code=303)
    status = 422 if form.errors else 200
    page = render_template(
        "patients/red_flags.html",
        form=form,
        groups=triage.groups(),
        fields=red_flag_fields(form),
        emergency_fields=[f"red_{f.code}" for f in triage.ASKED if f.pathway == triage.EMERGENCY],
        step_args=_step_args(),
    )
    return page, status


@bp.route("/request/emergency", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["SUBMIT_RATE_LIMIT"], methods=["POST"])
def emergency() -> Response | tuple[str, int]:
    """The stop: go to the emergency department or call the emergency number now. No routine
    booking is offered; the patient may leave a name and phone number for a call-back."""
    answers = carried_red_flags(session.get(RED_FLAGS_KEY))
    flags = [code for code, answer in (answers or {}).items() if answer == "yes"]
    if triage.pathway(flags) != triage.EMERGENCY:
        return redirect(url_for("patients.red_flags"))
    form = CallbackForm()
    if form.validate_on_submit():
        consultation = request_callback(
            CallbackSubmission(
                submission_token=form.submission_token.data,
                locale=str(get_locale() or "en"),
                full_name=form.full_name.data.strip(),
                phone=form.phone.e164,
                red_flags=set(flags),
            )
        )
        session[CALLBACK_KEY] = consultation.reference
        return redirect(url_for("patients.callback_requested"), code=303)
    page = render_template("patients/emergency.html", form=form)
    return page, 422 if form.errors else 200


@bp.get("/request/emergency/call-back")
def callback_requested() -> Response | str:
    reference = session.get(CALLBACK_KEY)
    consultation = find_by_reference(reference) if reference else None
    if consultation is None:
        return redirect(url_for("patients.emergency"))
    return render_template("patients/callback_requested.html", consultation=consultation)


@bp.get("/request")
def request_form() -> Response | tuple[str | bytes, int]:
    answers = carried_red_flags(session.get(RED_FLAGS_KEY))
    if answers is None:  # the red-flag questions come first
        return redirect(url_for("patients.red_flags", **_step_args()))
    flags = [code for code, answer in answers.items() if answer == "yes"]
    found = triage.pathway(flags)
    if found == triage.EMERGENCY:
        return redirect(url_for("patients.emergency"))
    if request.args.get("slot"):  # the picked time is checked against the open times
        form = RequestStartForm()
        form.appointment_type.data = request.args.get("type", "")[:10]
        form.slot.data = request.args.get("slot", "")[:40]
        return _render_form(form, red_flag_inputs=_flag_inputs(answers))

    def render() -> str:
        form = RequestStartForm()
        form.appointment_type.data = request.args.get("type", "")[:10]
        form.csrf_token.current_token = CSRF_PLACEHOLDER
        form.submission_token.data = SUBMISSION_PLACEHOLDER
        # Its indentation is a tenth of the page: left out (no <pre>, and every textarea of a
        # new form is empty, so no text changes).
        page = _render_form(form, red_flag_inputs=escape(RED_FLAGS_PLACEHOLDER))[0]
        return INDENTATION.sub("\n", page)

    version = current_version()  # the page links to the time picker only when it has times
    # The page shows the first step's advice on top: one page per pathway.
    key = None if version is None else (version, clinic_today(), found)
    page = cached_page(key, render)
    tokens = {
        CSRF_PLACEHOLDER: generate_csrf(),
        SUBMISSION_PLACEHOLDER: new_submission_token(),
        RED_FLAGS_PLACEHOLDER: str(_flag_inputs(answers)),
    }
    return fill(page, tokens), 200


def _submit_limit() -> str:
    return current_app.config["SUBMIT_RATE_LIMIT"]


@bp.post("/request")
@limiter.limit(_submit_limit)
def submit() -> Response | tuple[str, int]:
    form = RequestForm()
    if not form.validate_on_submit():
        # A time that could not be read is asked for again, with open times to choose from.
        slot_options = _fresh_slots(form) if form.slot.errors else None
        return _render_form(form, 422, slot_options=slot_options)
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
        return _render_form(form, 409, slot_options=_fresh_slots(form, form.slot_choice()))
    except SlotUnavailable:
        form.form_errors.append(
            _(
                "Sorry, that time is not available for booking. Please choose another time "
                "below; everything else you entered is kept."
            )
        )
        return _render_form(form, 409, slot_options=_fresh_slots(form))
    except OSError:
        log.exception("document storage failed; the request was not stored")
        problem = _(
            "We could not store your documents just now, so your request was not sent. "
            "Please try again in a few minutes, or send it without documents and bring "
            "them to your appointment."
        )
        return _render_form(form, 503, problem)
    session[SUBMITTED_KEY] = consultation.reference
    session.pop(RED_FLAGS_KEY, None)  # a next request starts with the questions again
    return redirect(url_for("patients.submitted"), code=303)


@bp.get("/request/submitted")
def submitted() -> Response | str:
    reference = session.get(SUBMITTED_KEY)
    consultation = find_by_reference(reference) if reference else None
    if consultation is None:
        return redirect(url_for("patients.request_form"))
    return render_template(
        "patients/request_submitted.html",
        consultation=consultation,
        advice=triage.advice(consultation.red_flags),
    )


@bp.get("/privacy")
def privacy() -> str:
    return render_template("patients/privacy.html")
