"""The patient's pages: the request's steps, its confirmation and the privacy notice."""

from __future__ import annotations

import hmac
import json
import logging
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    g,
    jsonify,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import get_locale, ngettext
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_limiter import RequestLimit
from flask_wtf import FlaskForm
from flask_wtf.csrf import generate_csrf
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy.exc import InterfaceError, OperationalError
from werkzeug.wrappers import Response

from booking.documents.forms import FILE_NOT_ADDED
from booking.documents.storage import (
    DocumentRejected,
    DocumentUpload,
    ScannerDown,
    stored_after_all,
)
from booking.extensions import csrf, limiter
from booking.forms import (
    ADDRESS_IN_NAME_RE,
    has_visible_text,
    single_line_text,
    visible_or_empty,
)
from booking.notifications.services import enqueue_still_to_go
from booking.pagecache import cached_page
from booking.patients import steppages, steps
from booking.patients.forms import (
    CallbackForm,
    DraftDocumentsForm,
    FinishLaterForm,
    RedFlagForm,
    RequestForm,
    carried_red_flags,
    red_flag_fields,
)
from booking.patients.services import (
    CallbackSubmission,
    confirmation_link,
    request_callback,
    submit_request,
)
from booking.requests import drafts, emails, instruments, notice, triage
from booking.requests.models import ConsultationRequest
from booking.requests.queries import find_by_reference, find_by_token
from booking.scheduling.ical import appointment_ics, calendar_file_name
from booking.scheduling.services import (
    SlotTaken,
    SlotUnavailable,
    SlotView,
    active_appointment_types,
    describe_slots,
    picker,
    resolve_choice,
    scheduling_enabled,
)
from booking.scheduling.versions import availability_key
from booking.scheduling.visits import picked_from_home
from booking.security import (
    address_key,
    count_for_network_address,
    private_link_limit,
    seal_in_session,
    sealed_in_session,
    token_in_url,
    typed_address_key,
)
from booking.timeutil import now_utc
from booking.urlargs import date_arg, int_arg

log = logging.getLogger(__name__)

bp = Blueprint("patients", __name__)

SUBMITTED_KEY = "submitted_reference"
# A private link to the request's page, shown on the confirmation page (the email has its own);
# encrypted in the session (``_confirmation_link``).
MANAGE_LINK_KEY = "submitted_manage_link"
# A "finish later" link's token, opened but not taken over yet (sealed: ``resume_draft``).
RESUME_KEY = "resume_link"
# The first step's answers ({code: "yes" | "no"}), kept in the session for the emergency page;
# sealed (``_kept_red_flags``).
RED_FLAGS_KEY = "red_flag_answers"
CALLBACK_KEY = "callback_reference"


def _keep_red_flags(answers: dict[str, str]) -> None:
    """The first step's answers, kept in the session for the emergency page, encrypted: they
    are health data ("loss of bladder control: yes", "cancer in the past: yes"), and the
    session cookie is signed, not encrypted, and outlives the pages that hide a draft after a
    while (``_idle_hidden``): whoever reads the cookie on a shared computer reads nothing."""
    seal_in_session(RED_FLAGS_KEY, json.dumps(answers, separators=(",", ":")))


def _kept_red_flags() -> dict[str, str] | None:
    """The answers ``_keep_red_flags`` kept, if whole (``carried_red_flags``); else None. A
    browser part-way through the first step when the answers began to be sealed holds them
    in clear: read as they are (the next post seals them), so its emergency "yes" is kept."""
    if isinstance(kept := session.get(RED_FLAGS_KEY), dict):
        return carried_red_flags(kept)
    sealed = sealed_in_session(RED_FLAGS_KEY)
    try:
        return carried_red_flags(json.loads(sealed)) if sealed else None
    except ValueError:
        return None


def _chosen_slot(form: RequestForm) -> SlotView | None:
    """The picked time, for display, if it is still open."""
    choice = form.slot_choice()
    if choice is None:
        return None
    try:
        appointment_type, slot = resolve_choice(choice)
    except (SlotTaken, SlotUnavailable):
        return None
    return replace(
        describe_slots([slot], appointment_type.mode)[0],
        appointment_type=appointment_type.display_name,
    )


def _reading() -> bool:
    """A GET, or a HEAD: Flask answers a HEAD with the GET's view (the body left out), so it
    must be shown as a GET is, never taken for a post (it saved nothing, but answered the
    expired form's 400 with none of a GET's redirects)."""
    return request.method in ("GET", "HEAD")


# The reused pages declare no rate limit: spare them the limiter's work on every request.
REUSED_PAGES = frozenset({"patients.pick_time"})
# (The first step and the emergency page are not reused: their forms post, and are limited.)


@limiter.request_filter
def _reused_page() -> bool:
    # A step's page is not limited either (only sending is, ``_step_limit_exempt``): asking
    # the limiter to find that out cost a tenth of a kept step page.
    return request.endpoint in REUSED_PAGES or (request.endpoint == "patients.step" and _reading())


@bp.get("/request/time")
def pick_time() -> Response | bytes:
    """Step 1: pick an appointment type, a specialist (or the first available) and a time.
    The page the first step leads to: it tells a patient with urgent answers what to do,
    as the steps do (``_draft_advice``)."""
    pathway, advice = _draft_advice()
    key = availability_key()
    page = cached_page(None if key is None else (key, pathway), lambda: _render_pick_time(advice))
    if not page:  # no appointment type to book: the request goes on without a time
        return redirect(url_for("patients.step", code=steps.FIRST))
    return page


def _draft_advice() -> tuple[str | None, triage.Advice | None]:
    """The pathway and advice of this browser's unsent draft's answers to the first step, as
    its steps show them (``triage.advice_before_sending``); (None, None) when there is none,
    or when the draft is hidden (``_idle_hidden``): the next user must not read it."""
    if not session.get(DRAFT_KEY):
        return None, None
    draft = _open_draft(documents=False)
    if draft is None or draft.sent_at is not None:
        return None, None
    saved = draft.values()
    if _idle_hidden(draft, saved):
        return None, None
    codes = steps.red_flags_yes(saved)
    advice = triage.advice_before_sending(codes)
    return (triage.pathway(codes), advice) if advice is not None else (None, None)


def _render_pick_time(advice: triage.Advice | None = None) -> str:
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
        steps=steps.STEPS,
        number=steps.number("time"),
        types=types,
        appointment_type=appointment_type,
        specialists=shown.specialists,
        specialist=shown.specialist,
        locations=shown.locations,
        location=shown.location,
        remote=shown.remote,
        days=[(each, len(views)) for each, views in shown.days],
        day=day,
        times=times,
        start=shown.start,
        last_day=shown.end - timedelta(microseconds=1),  # the last clinic day shown
        earlier=shown.earlier,
        later=shown.end,
        advice=advice,
    )


# What the time picker shows (its filters and the day), carried back to it.
PICKER_ARGS = ("type", "specialist", "location", "from", "day")


def _step_args() -> dict[str, str]:
    """The picked time's arguments, carried through the first step and back."""
    return {key: request.args[key][:40] for key in ("type", "slot") if request.args.get(key)}


def _submit_limit() -> str:
    return current_app.config["SUBMIT_RATE_LIMIT"]


def _emergency_answered() -> bool:
    """A post answering an emergency question "yes" (``triage``): the first step's limit
    never refuses it, so the patient always reaches the emergency page and its call-back, as
    the limit would otherwise answer "please wait a minute" before the answers are read. The
    drafts such posts start are counted apart (``_may_start_emergency_draft``)."""
    yes = [flag.code for flag in triage.ASKED if request.form.get(f"red_{flag.code}") == "yes"]
    return triage.pathway(yes) == triage.EMERGENCY


# The drafts started by emergency answers, past the first step's limit: per network address.
EMERGENCY_DRAFT_SCOPE = "emergency-draft"


def _may_start_emergency_draft() -> bool:
    """Whether an emergency answer may start a draft, within ``SUBMIT_RATE_LIMIT`` for such
    drafts: past it, the emergency page is shown all the same (it reads the session's
    answers), with no draft stored, so a script cannot store drafts without end."""
    return count_for_network_address(EMERGENCY_DRAFT_SCOPE, _submit_limit())


@bp.route("/request/start", methods=["GET", "POST"])
@limiter.limit(_submit_limit, methods=["POST"], exempt_when=_emergency_answered)  # starts a draft
def red_flags() -> Response | tuple[str, int]:
    """The first step: the red-flag questions, before any other (``triage.py``). An
    emergency answer stops the flow; any other goes on to the time and the form."""
    form = RedFlagForm()
    problem = None
    try:
        draft = _open_draft()
    except (OperationalError, InterfaceError) as error:
        # The questions and the emergency page need no database (the session keeps the
        # answers): a patient with emergency symptoms is told what to do now whatever it
        # does. Nothing is shown of a draft not read (it may be hidden: ``_idle_hidden``).
        log.error("database failed while the first step read its draft: %s", type(error).__name__)
        draft, problem = None, str(FIRST_NOT_SAVED)
    # What the page shows of the draft, taken before a save that fails rolls back (and
    # expires) it: shown again then, the page reads nothing more from the database.
    shown = _first_step_draft(draft)
    if _reading():
        if draft is not None and _idle_hidden(draft):  # the page shows its answers and step
            return redirect(url_for("patients.draft_hidden"))
        saved = draft.values() if draft is not None and draft.sent_at is None else {}
        found = carried_red_flags(steps.red_flag_answers(saved))
        if problem is None:  # (this browser's answers, unless its draft could not be read)
            found = found or _kept_red_flags()
        for code, answer in (found or {}).items():
            form[f"red_{code}"].data = answer
        if problem is not None:
            # Blank questions would look like a fresh start: the page says the saved answers
            # are there but could not be read. (A post from it saves nothing while they
            # cannot be read; once they can, only this step's answers, as the patient ticks
            # them: no other step's answers are touched.)
            return _render_red_flags(form, shown, problem=str(FIRST_NOT_READ), status=503)
    elif _unshown_post(draft):  # saved, it would be use: the draft would show again
        return redirect(url_for("patients.draft_hidden"), code=303)
    elif form.validate_on_submit():
        answers = form.answers()
        # This browser's last answers to the step: past the limit of drafts emergency answers
        # start (``_may_start_emergency_draft``) no draft holds its emergency "yes", and the
        # patient back from the emergency page who changes it to "no" must not lose that.
        earlier = _kept_red_flags() or {}
        _keep_red_flags(answers)
        # Answered afresh: the emergency page offers a call-back again (``emergency``).
        session.pop(CALLBACK_KEY, None)
        # With scripts, an emergency "yes" shows its advice at once, and the patient may change
        # it to "no" before sending the step: the script names the questions ticked yes.
        ticked = {name.removeprefix("red_") for name in request.form.getlist("ticked_yes")}
        ticked |= {code for code, answer in earlier.items() if answer == "yes"}
        flags = [code for code, answer in answers.items() if answer == "yes"]
        emergency = triage.pathway(flags) == triage.EMERGENCY
        if problem is None:
            try:
                reached = _save_red_flags(draft, answers, ticked, emergency)
            except (OperationalError, InterfaceError) as error:
                # The database failed, or its answer to the commit was lost (a draft no
                # browser holds: pressing again starts another, the first expires unread).
                log.error(
                    "database failed while the first step was saved: %s", type(error).__name__
                )
                problem = str(FIRST_NOT_SAVED)
        if emergency:  # its advice first, saved or not: the session has the answers
            return redirect(url_for("patients.emergency"), code=303)
        if problem is not None:  # this step again, its answers ticked: press again
            return _render_red_flags(form, shown, problem=problem, status=503)
        args = _step_args()
        if reached != steps.FIRST and not args.get("slot"):  # a request under way goes on
            return redirect(url_for("patients.step", code=reached), code=303)
        if args.get("slot") or not scheduling_enabled():
            return redirect(url_for("patients.step", code=steps.FIRST, **args), code=303)
        return redirect(url_for("patients.pick_time", **args), code=303)
    return _render_red_flags(form, shown, status=422 if form.errors else 200)


def _first_step_draft(draft: drafts.RequestDraft | None) -> dict[str, object]:
    """What the first step's page shows of this browser's draft (``_render_red_flags``)."""
    unsent = draft is not None and draft.sent_at is None
    return {
        "under_way": _under_way(draft),
        "page_proof": _page_proof(draft) if draft is not None and unsent else None,
    }


def _render_red_flags(
    form: RedFlagForm,
    shown: dict[str, object],
    status: int,
    problem: str | None = None,
) -> tuple[str, int]:
    """The first step's page, with what it shows of the draft (``_first_step_draft``): no
    query of its own, so it is shown when the database is failing too (``problem`` then
    says so)."""
    emergency_fields = [f"red_{f.code}" for f in triage.ASKED if f.pathway == triage.EMERGENCY]
    page = render_template(
        "patients/red_flags.html",
        form=form,
        groups=triage.groups(),
        fields=red_flag_fields(form),
        emergency_fields=emergency_fields,
        # An emergency "yes" on the page as shown (a refused post, a draft's answers): its
        # advice is shown at once, scripts or not, and the page carries it (ticked_yes), so a
        # "no" sent after reading the advice is kept as a withdrawn answer.
        emergency_yes=any(form[name].data == "yes" for name in emergency_fields),
        ticked_yes=sorted(
            {name for name in request.form.getlist("ticked_yes") if name in emergency_fields}
            | {name for name in emergency_fields if form[name].data == "yes"}
        ),
        step_args=_step_args(),
        problem=problem,
        **shown,
    )
    return page, status


def _under_way(draft: drafts.RequestDraft | None) -> tuple[int, object] | None:
    """The step this browser's unsent request has reached, past the first (number, name)."""
    if draft is None or draft.sent_at is not None or draft.step == steps.FIRST:
        return None
    return steps.number(draft.step), steps.BY_CODE[draft.step].title


def _emergency_flags() -> list[str] | None:
    """The emergency answers this browser gave on the first step (kept in the session), or
    None when its answers are no emergency's."""
    answers = _kept_red_flags()
    flags = [code for code, answer in (answers or {}).items() if answer == "yes"]
    return flags if triage.pathway(flags) == triage.EMERGENCY else None


def _callback_limited(_limit: RequestLimit) -> Response | None:
    """The call-back's post past its limit (``limiter.limit``'s ``on_breach``): the patient
    has just said they have emergency symptoms, so the answer is the emergency page again,
    which says what to do now (the shared emergency wording, the clinic's phone), with what
    they typed and that no call-back was taken: never the bare "please wait a minute" page.
    None (that page, ``booking.errors``) for a browser whose answers are no emergency's."""
    if _emergency_flags() is None:
        return None
    page = render_template(
        "patients/emergency.html", form=CallbackForm(), prefilled=False, limited=True
    )
    return make_response(page, 429)


@bp.route("/request/emergency", methods=["GET", "POST"])
@limiter.limit(
    lambda: current_app.config["SUBMIT_RATE_LIMIT"], methods=["POST"], on_breach=_callback_limited
)
def emergency() -> Response | tuple[str, int]:
    """The stop: go to the emergency department or call the emergency number now. No routine
    booking is offered; the patient may leave a name and phone number for a call-back."""
    flags = _emergency_flags()
    if flags is None:
        return redirect(url_for("patients.red_flags"))
    if _reading() and session.get(CALLBACK_KEY):
        # Back from the call-back's confirmation: the form again, empty, read as if nothing
        # had been sent, and sent again it was a second emergency request. Its confirmation
        # instead, until the first step is answered again (``red_flags``).
        return redirect(url_for("patients.callback_requested"), code=303)
    form = CallbackForm()
    # Shown filled in, still to check and send: a post takes only what the page sends.
    contact = {} if form.is_submitted() else _draft_contact()
    for name, value in contact.items():
        form[name].data = value
    if form.validate_on_submit():
        name = form.full_name.data.strip()
        try:
            patient = _draft_patient_of_guardian(name)
            consultation = request_callback(
                CallbackSubmission(
                    submission_token=form.submission_token.data,
                    locale=str(get_locale() or "en"),
                    # The form asks for the name of whoever writes: a parent's or guardian's,
                    # as their draft named them, is stored as theirs, beside the patient's.
                    full_name=patient or name,
                    guardian_name=name if patient else None,
                    phone=form.phone.e164,
                    red_flags=set(flags),
                )
            )
        except (OperationalError, InterfaceError) as error:
            # Not the generic 503 page: this page again, its advice first, saying the clinic
            # may not know, with what was typed (its submission token too: sent again once
            # the database is back, a request stored before its answer was lost is not
            # stored twice).
            log.error("database failed while a call-back was requested: %s", type(error).__name__)
            page = render_template(
                "patients/emergency.html", form=form, prefilled=False, not_sent=True
            )
            return page, 503
        session[CALLBACK_KEY] = consultation.reference
        return redirect(url_for("patients.callback_requested"), code=303)
    page = render_template("patients/emergency.html", form=form, prefilled=bool(contact))
    return page, 422 if form.errors else 200


# The call-back form's fields the "About you" step asks too.
CALLBACK_FROM_DRAFT = ("full_name", "phone")
# The "About you" answer naming the parent or guardian who fills the request in for the patient.
GUARDIAN_FROM_DRAFT = "guardian_name"


def _draft_contact() -> dict[str, str]:
    """The name and phone number this browser's own unsent draft holds, for the call-back
    form: a patient who gave them before answering an emergency question (back to the first
    step from a later one) need not type them again, in a hurry. A draft a parent or guardian
    fills in for the patient (it names them) gives their name, not the patient's: the form
    asks for the name of whoever writes, whom the clinic asks for when it calls back. The
    phone number stays the draft's one, the request's contact number (the draft holds no
    other). Never a hidden draft's (``_idle_hidden``): the emergency page opens from the
    session's answers alone, and the next user of a shared computer must not find the
    patient's name and number on it. Nothing when the database fails to read it: the page
    says what to do now all the same."""
    try:
        draft = _open_draft(documents=False)
        if draft is None or draft.sent_at is not None:
            return {}
        saved = draft.values()
        if _idle_hidden(draft, saved):  # (may read the draft's documents)
            return {}
    except (OperationalError, InterfaceError) as error:
        log.error(
            "database failed while the emergency page read its draft: %s", type(error).__name__
        )
        return {}
    found = {name: (saved.get(name) or [""])[0] for name in CALLBACK_FROM_DRAFT}
    guardian = (saved.get(GUARDIAN_FROM_DRAFT) or [""])[0]
    if isinstance(guardian, str) and visible_or_empty(guardian):
        found["full_name"] = guardian
    return {name: value for name, value in found.items() if isinstance(value, str) and value}


def _draft_patient_of_guardian(name: str) -> str | None:
    """The patient's name in this browser's own unsent draft when ``name``, sent from the
    call-back form, is the parent or guardian the draft names (``_draft_contact`` filled it
    in so): the clinic then knows whom the call is about, and whom to ask for. None
    otherwise (no such draft, a hidden one, another name typed, or a patient's name the
    form's checks would refuse)."""
    draft = _open_draft(documents=False)
    if draft is None or draft.sent_at is not None:
        return None
    saved = draft.values()
    if _idle_hidden(draft, saved):
        return None
    guardian, patient = ((saved.get(key) or [""])[0] for key in (GUARDIAN_FROM_DRAFT, "full_name"))
    if not (isinstance(guardian, str) and isinstance(patient, str)):
        return None
    if guardian.strip() != name or not has_visible_text(guardian):
        return None
    try:
        patient = single_line_text(patient).strip()
    except ValueError:
        return None
    if not has_visible_text(patient) or len(patient) > 200 or ADDRESS_IN_NAME_RE.search(patient):
        return None
    return patient


@bp.get("/request/emergency/call-back")
def callback_requested() -> Response | str | tuple[str, int]:
    try:
        consultation = _sent_request(CALLBACK_KEY)
    except (OperationalError, InterfaceError) as error:
        # The session names the call-back only once it is stored, and the database is read
        # only then: it was received. Not the bare 503 page: its advice first, and that the
        # call-back was received, without its details (nor whether they may still be shown).
        log.error("database failed while a call-back was confirmed: %s", type(error).__name__)
        return render_template("patients/callback_requested.html", consultation=None), 503
    if consultation is None:
        if session.get(CALLBACK_KEY):
            return _confirmation_gone(callback=True)
        return redirect(url_for("patients.emergency"))
    return render_template("patients/callback_requested.html", consultation=consultation)


@bp.get("/request")
def request_form() -> Response:
    """The one-page form's old address (bookmarks, older emails): the request starts with its
    first step, with the picked time's arguments."""
    return redirect(url_for("patients.red_flags", **_step_args()))


def _still_shown(sent_at: datetime) -> bool:
    """Whether this browser may still show a sent request's confirmation (its time, the
    patient's email address, the private link): for ``CONFIRMATION_PAGE_MINUTES`` after
    sending. Then only the link in the email opens it, so the next user of a shared computer
    or a phone that restores its tabs does not find the patient's request."""
    shown_for = timedelta(minutes=current_app.config["CONFIRMATION_PAGE_MINUTES"])
    return now_utc() - sent_at < shown_for


def _confirmation_gone(callback: bool = False) -> Response:
    """The confirmation's time is over: the browser forgets the request and says where it is
    (a call-back request left no email address: the clinic calls)."""
    for key in (SUBMITTED_KEY, MANAGE_LINK_KEY, CALLBACK_KEY, RED_FLAGS_KEY):
        session.pop(key, None)
    if callback:
        message = _(
            "Your call-back request was received. For your privacy, its confirmation is shown "
            "here only for a short time."
        )
    else:
        message = _(
            "Your request was sent. For your privacy, its confirmation is shown here only "
            "for a short time: the link in our email opens your request."
        )
    flash(message, "info")
    return redirect(url_for("content.home"), code=303)


def _sent_request(key: str) -> ConsultationRequest | None:
    """The request this browser just sent (``key``: the request or the call-back), while its
    confirmation may be shown."""
    reference = session.get(key)
    consultation = find_by_reference(reference) if reference else None
    if consultation is None or not _still_shown(consultation.created_at):
        return None
    return consultation


@bp.get("/request/submitted")
def submitted() -> Response | str | tuple[str, int]:
    try:
        consultation = _sent_request(SUBMITTED_KEY)
    except (OperationalError, InterfaceError) as error:
        # The session names the request only once it is stored, and the database is read
        # only then: it was sent. Not the bare 503 page, which reads as "try again": that it
        # was sent, without its details (nor whether they may still be shown).
        log.error("database failed while a request was confirmed: %s", type(error).__name__)
        return render_template("patients/request_sent_unreadable.html"), 503
    if consultation is None:
        if session.get(SUBMITTED_KEY):
            return _confirmation_gone()
        return redirect(url_for("patients.red_flags"))
    return render_template(
        "patients/request_submitted.html",
        consultation=consultation,
        advice=triage.advice(consultation.red_flags, consultation.withdrawn_red_flags),
        manage_token=_confirmation_link(),
        emailed=emails.receipt_written(consultation),
    )


def _confirmation_link() -> str | None:
    """The private link's token this browser was given with its confirmation. The session
    cookie is signed, not encrypted, so the token is kept in it encrypted: a cookie read
    once the confirmation is gone (a shared computer) gives nothing away."""
    return sealed_in_session(MANAGE_LINK_KEY)


@bp.get("/request/submitted/appointment.ics")
def submitted_calendar() -> Response:
    """The held time as a calendar file, from the confirmation page ("Add to calendar")."""
    consultation = _sent_request(SUBMITTED_KEY)
    appointment = consultation.appointment if consultation is not None else None
    if appointment is None or not appointment.active:
        abort(404)
    name = calendar_file_name(consultation.locale)  # as the emails' attachment is named
    return Response(
        appointment_ics(appointment, publish=True),  # an event to import, not an invitation
        mimetype="text/calendar",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


# The stepped request (``steps``), saved in a draft at every step (``booking.requests.drafts``).
# The browser's token for its draft, in the session.
DRAFT_KEY = "request_draft"
# When this browser last took its draft over from a "finish later" link (seconds since the
# epoch): that counts as use, as a save does (``_idle_hidden``).
DRAFT_SEEN_KEY = "request_draft_seen"


def _open_draft(documents: bool = True) -> drafts.RequestDraft | None:
    return drafts.find_draft(session.get(DRAFT_KEY), documents)


def _forget_draft() -> None:
    session.pop(DRAFT_KEY, None)
    session.pop(DRAFT_SEEN_KEY, None)


def _idle_hidden(draft: drafts.RequestDraft, saved: drafts.Answers | None = None) -> bool:
    """Whether this browser hides its unsent draft: it names the patient (``steps.identifies``)
    and nothing was saved to it, nor was it taken over from a "finish later" link here, for
    ``DRAFT_BROWSER_IDLE_MINUTES``. The session cookie lasts as long as the browser (and
    browsers that restore their tabs keep it): a shared computer's next user must not find a
    patient's name, contact details and health answers. Pages that show the draft send the
    browser to ``draft_hidden`` instead. A page that was on screen is still saved when sent
    after that time (a patient may type one page for over an hour), which counts as use; so
    a post is taken only with the page's proof (``_page_proof``, which pages carry only while
    the draft is shown, never the hidden page): the hidden page's form token alone works on
    every form of the session, and would save any step (blanks over the answers) to open the
    draft again. A post without it saves nothing and goes to ``draft_hidden``
    (``_unshown_post``), as does one whose form had expired. What it does not stop: a page
    still open in a tab (or shown again from the browser's history) is the draft on screen,
    and may be read and sent. From the draft as loaded and the session: no query, but for
    the documents of a draft whose answers name nobody on a page that did not load them."""
    minutes = current_app.config["DRAFT_BROWSER_IDLE_MINUTES"]
    if minutes <= 0 or draft.sent_at is not None:
        return False
    used = draft.updated_at
    seen = session.get(DRAFT_SEEN_KEY)
    if isinstance(seen, int):
        used = max(used, datetime.fromtimestamp(seen, UTC))
    if now_utc() - used < timedelta(minutes=minutes):
        return False
    return steps.identifies(draft.values() if saved is None else saved, lambda: draft.documents)


# The hidden field that proves a post comes from a page shown while its draft was
# (``_idle_hidden``).
PAGE_PROOF_FIELD = "draft_page"


def _proof_signer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt="draft-page")


def _page_proof(draft: drafts.RequestDraft) -> str:
    """The value a page of the draft, shown in this browser, carries in its forms: signed,
    for this draft (its browser token's digest, which the pages do not show otherwise). One
    per request, so a kept page (``steppages``) and a full render carry the same one."""
    proofs = g.setdefault("draft_page_proofs", {})
    if draft.token_hash not in proofs:
        proofs[draft.token_hash] = _proof_signer().dumps(draft.token_hash)
    return proofs[draft.token_hash]


def _shown_page(draft: drafts.RequestDraft) -> bool:
    """Whether the post carries a proof of a page of this draft (``_page_proof``) made
    within the draft's lifetime."""
    value = request.form.get(PAGE_PROOF_FIELD, "")
    max_age = current_app.config["DRAFT_DAYS"] * 24 * 3600
    try:
        bound = _proof_signer().loads(value, max_age=max_age)
    except BadSignature:  # (an expired one too)
        return False
    return isinstance(bound, str) and hmac.compare_digest(bound, draft.token_hash)


def _unshown_post(draft: drafts.RequestDraft | None, saved: drafts.Answers | None = None) -> bool:
    """A post to a page of this browser's unsent draft while the draft is hidden, from no page
    shown while it was not (``_idle_hidden``): nothing of it may be saved or done."""
    return (
        draft is not None
        and draft.sent_at is None
        and _idle_hidden(draft, saved)
        and not _shown_page(draft)
    )


def _save_red_flags(
    draft: drafts.RequestDraft | None,
    answers: dict[str, str],
    ticked: set[str],
    emergency: bool = False,
) -> str:
    """The first step starts the draft (or updates the browser's ``draft``, unsent), with the
    picked time; returns the step the draft has reached. ``ticked``: the questions ticked
    "yes" on the page before it was sent (with scripts). ``emergency``: the answers stop the
    request (its post was not limited, ``_emergency_answered``): a new draft only within
    ``_may_start_emergency_draft``."""
    saved: drafts.Answers = {f"red_{code}": [answer] for code, answer in answers.items()}
    args = _step_args()
    if args.get("slot"):
        saved |= {"appointment_type": [args.get("type", "")], "slot": [args["slot"]]}
    unsent = draft is not None and draft.sent_at is None
    before = draft.values() if draft is not None and unsent else {}
    # A "yes" changed to "no" (after the emergency page's "Change your answers", or on the
    # page after its advice showed) is kept: it makes the request urgent (``triage.level``).
    said_yes = {c for c, answer in steps.red_flag_answers(before).items() if answer == "yes"}
    withdrawn = {code for code in said_yes | ticked if answers.get(code) == "no"}
    withdrawn |= set(drafts.withdrawn_red_flags(before))
    if withdrawn:
        saved[drafts.WITHDRAWN_RED_FLAGS] = sorted(withdrawn)
    if draft is None or not unsent:
        if emergency and not _may_start_emergency_draft():
            return steps.FIRST  # the emergency page needs no draft: the session has the answers
        draft, token = drafts.start_draft(str(get_locale() or "en"), saved, steps.FIRST)
        _forget_draft()
        session[DRAFT_KEY] = token
    else:
        drafts.save_answers(draft, saved)
    return draft.step


def _step_limit_exempt() -> bool:
    """Sending (the last step) is limited, like every other form that stores a request."""
    return not (request.method == "POST" and request.view_args == {"code": "review"})


def _upload_limit_exempt() -> bool:
    """Posts to the documents step (files, one at a time with scripts) have their own limit."""
    return not (request.method == "POST" and request.view_args == {"code": "documents"})


@bp.route("/request/steps/<code>", methods=["GET", "POST"])
@csrf.exempt  # each step's form checks its token, so an expired one keeps the posted answers
@limiter.limit(_submit_limit, exempt_when=_step_limit_exempt)
@limiter.limit(lambda: current_app.config["UPLOAD_RATE_LIMIT"], exempt_when=_upload_limit_exempt)
def step(code: str) -> Response | tuple[str, int]:
    """One step of the request: show it with the draft's answers; on a post, save them, check
    the step and go on (or back), and at the last step send the request."""
    if code not in steps.BY_CODE:
        abort(404)
    if code != "documents":  # text only: far above any answer's limit, far below the files'
        request.max_content_length = current_app.config["MAX_FORM_MEMORY_SIZE"]
    if request.method == "POST":
        # Read the whole post before any answer: a reply sent while the proxy is still
        # sending the body (a redirect for a browser without a draft) closes the connection
        # under it, and nginx answers 502 instead of the redirect.
        request.form.keys()  # (reading it is the point)
    # The documents only where they are shown or sent (one query fewer on the other steps).
    draft = _open_draft(documents=code in ("documents", "review"))
    if draft is None:  # no draft in this browser: the request starts with the first step
        return redirect(url_for("patients.red_flags", **_step_args()))
    if draft.sent_at is not None:  # Back after sending: the request, not a second one
        return _show_sent(draft)
    saved = draft.values()
    if triage.pathway(steps.red_flags_yes(saved)) == triage.EMERGENCY:
        return redirect(url_for("patients.emergency"))
    if _reading() and _idle_hidden(draft, saved):
        return redirect(url_for("patients.draft_hidden"))
    if request.method == "POST" and _unshown_post(draft, saved):
        # Saved, it would be use, and open the draft again (the hidden page's form token
        # works here too): nothing is saved, and nothing of the draft is shown.
        if _wants_json():  # an upload with scripts: uploads.js shows the message on its row
            message = _(
                "For your privacy, this unfinished request is now hidden in this browser. "
                "Please reload the page."
            )
            return jsonify(ok=False, message=message), 403
        return redirect(url_for("patients.draft_hidden"), code=303)
    if _reached_step(code, draft.step) is None:
        # A step the draft has not reached, opened by its address (typed, a bookmark, a page
        # of an earlier draft): the step reached, as the list of steps offers no other.
        # Taken, a post would mark the steps between as done (saved from the documents step,
        # the draft was at the review, and every step saved went back to it).
        return redirect(url_for("patients.step", code=draft.step), code=303)
    if code == "function" and steps.region_of(saved) is None:
        return redirect(url_for("patients.step", code="symptoms"))
    if code == "documents":
        return _documents_step(draft, saved)
    if _reading():
        if code == "time" and request.args.get("picked") and not request.args.get("slot"):
            # "Continue with this time" with no time ticked: back to the same times.
            message = _("Please choose one of the times, or continue without choosing a time.")
            flash(message, "danger")
            back = {k: request.args[k][:20] for k in PICKER_ARGS if request.args.get(k)}
            return redirect(url_for("patients.pick_time", **back), code=303)
        answers = dict(saved)
        if code == "time" and request.args.get("slot") is not None:  # from the time picker
            answers |= {
                "appointment_type": [request.args.get("type", "")[:10]],
                "slot": [request.args.get("slot", "")[:40]],
            }
        page = steps.page_arg(code, saved, request.args.get("page", 1))
        kept = steppages.filled_page(
            code,
            draft,
            answers,
            page,
            _page_proof(draft),
            lambda form, summaries: _render_step(code, draft, form, page=page, summaries=summaries)[
                0
            ],
            live=(
                lambda: render_template(
                    "patients/_review_documents.html",
                    draft=draft,
                    from_home=picked_from_home(answers),
                )
            )
            if code == "review"
            else None,
        )
        if kept is not None:
            return kept, 200
        return _render_step(code, draft, steps.bind_form(draft, answers), page=page)

    page = steps.page_arg(code, saved, request.form.get("page", 1))
    posted = steps.posted_answers(code, saved, request.form, page)
    answers = saved | posted
    form = steps.bind_form(draft, answers, csrf_token=request.form.get("csrf_token", ""))
    valid = form.validate()
    if "csrf_token" in form and form.csrf_token.errors:  # expired: shown again, not saved
        if _idle_hidden(draft, saved):  # nothing saved, so no use: it would show the draft
            return redirect(url_for("patients.draft_hidden"), code=303)
        steps.clear_other_errors(form, code, answers, page)
        return _render_step(code, draft, form, status=400, expired=True, page=page)
    # Saved whatever the checks say (nothing typed is lost), with the furthest step reached.
    # A step's name in the list of steps (``GO_TO_FIELD``) sends no ``nav``: saved as Back saves.
    nav = request.form.get("nav", "go" if GO_TO_FIELD in request.form else "next")
    wrong = bool(steps.step_errors(form, code, answers, page))
    # Once the patient has reached the review, a step saved goes back to it (its "Change"
    # links, the time picked again after a clash, a step opened from the list of steps):
    # not through every step again.
    back_to_review = request.form.get("then") == "review" or draft.step == "review"
    more = page < steps.pages_of(code, answers)  # (coming from the review too: every page)
    following = "review" if back_to_review else steps.next_code(code)
    if back_to_review and steps.region_of(answers) != steps.region_of(saved):
        # Another main problem asks another questionnaire and other pain scales: on to them,
        # not back to a review whose send would only then say they are missing.
        following = steps.next_code(code)
    going = following if nav == "next" and not (wrong or more or following is None) else code
    reached = max(draft.step, going, key=steps.number)
    try:
        drafts.save_answers(draft, posted, reached, rank=steps.number)
    except (OperationalError, InterfaceError) as error:
        # The database failed, or its answer to the commit was lost: this page again with
        # what was typed on it (the bare 503 page lost it, and Back shows the draft as
        # stored). Sent again, the same answers are merged in again. A database down for
        # good fails the page's own reads too: the 503 page, as every other form's.
        log.error("database failed while a step's answers were saved: %s", type(error).__name__)
        steps.clear_other_errors(form, code, answers, page)
        return _render_step(code, draft, form, status=503, problem=str(NOT_SAVED), page=page)
    if nav == "go":
        target = _reached_step(request.form.get(GO_TO_FIELD, ""), reached)
        if target is not None:
            return redirect(url_for("patients.step", code=target), code=303)
        nav = "stay"  # a step not offered: this page again, nothing lost
    if nav == "later":  # "Finish later": this page's answers are saved first
        return redirect(url_for("patients.finish_later"), code=303)
    if nav == "stay":  # the language switch (``?lang=``): saved, then this page again
        then = "review" if request.form.get("then") == "review" else None
        return redirect(
            url_for("patients.step", code=code, page=page if page > 1 else None, then=then),
            code=303,
        )
    if nav == "back":
        if page > 1:
            return redirect(url_for("patients.step", code=code, page=page - 1), code=303)
        previous = steps.previous_code(code)
        if previous:
            return _last_page(previous, answers)
    if code == "review":
        return _send(draft, form, answers, valid)
    if wrong:
        steps.clear_other_errors(form, code, answers, page)
        return _render_step(code, draft, form, status=422, page=page)
    if more:
        then = "review" if back_to_review else None
        return redirect(url_for("patients.step", code=code, page=page + 1, then=then), code=303)
    return redirect(url_for("patients.step", code=following), code=303)


# A step's post the database failed to store, or to confirm it stored (its answer to the
# commit lost): the page again, with what was typed.
NOT_SAVED = _l(
    "Our system had a problem, so your answers on this page may not be saved yet. They are "
    "still filled in below: please press the button again in a few minutes. Answers you "
    "saved on earlier steps are kept."
)
# The first step's post the database failed to store (or to read its draft for): the page
# again, its answers ticked (an emergency answer goes to the emergency page all the same).
FIRST_NOT_SAVED = _l(
    "Our system had a problem, so your answers may not be saved yet. They are still ticked "
    "below: please press the button again in a few minutes. If your symptoms are severe, do "
    "not wait: call the clinic or seek emergency care."
)
# The review's Send the database failed to store (or to confirm it stored, when the request
# cannot be found either): the review again, to send again (never a second request).
NOT_SENT = _l(
    "Our system had a problem, so your request may not be sent yet. Your answers are saved: "
    "please press “Send my request” again in a few minutes. It will not be sent twice."
)
# The documents step's Remove the database failed to store (or to confirm it stored).
NOT_REMOVED = _l(
    "Our system had a problem, so we cannot confirm that the file was removed. If it is "
    "still in the list, please press its “Remove” button again in a few minutes."
)
# The documents step's "Save and continue" the database failed to store.
NOT_ON = _l(
    "Our system had a problem, so we could not go on to the next step. The documents listed "
    "below are kept: please press “Save and continue” again in a few minutes."
)
# The first step opened while the database failed to read this browser's draft: its
# questions are shown blank (nothing of a draft not read is shown: it may be hidden).
FIRST_NOT_READ = _l(
    "Our system had a problem, so we cannot show the answers you saved just now. Nothing you "
    "saved is lost: please reload this page in a few minutes. If your symptoms are severe, "
    "do not wait: call the clinic or seek emergency care."
)

# A file kept for the virus scan the scanner was down for (``CLAMAV_WHEN_DOWN = hold``): as
# the list of documents says it (``_step_documents_added.html``), not "Accepted".
RECEIVED_BEING_CHECKED = _l("Received - being checked")

# The list of steps' buttons (``_steps_nav.html``): each sends the page's form, so what was
# typed on it is saved before the step named goes up, as its Back button saves (unchecked).
GO_TO_FIELD = "go_to"


def _reached_step(value: str, reached: str) -> str | None:
    """The step a list-of-steps button names (or a step's address), if the draft has reached
    it (the list offers no other); None for any other value, which goes nowhere."""
    if value not in steps.BY_CODE or steps.number(value) > steps.number(reached):
        return None
    return value


def _last_page(code: str, answers: drafts.Answers) -> Response:
    """Back into step ``code``: its last page, where the patient left it."""
    last = steps.pages_of(code, answers)
    return redirect(url_for("patients.step", code=code, page=last if last > 1 else None), code=303)


def _show_sent(draft: drafts.RequestDraft) -> Response:
    """A sent draft's step or resume link: its confirmation while it may be shown; then the
    browser lets the draft go (a new request starts afresh)."""
    if draft.sent_at is not None and not _still_shown(draft.sent_at):
        _forget_draft()
        return _confirmation_gone()
    if draft.request is not None:
        session[SUBMITTED_KEY] = draft.request.reference
    return redirect(url_for("patients.submitted"), code=303)


def _send(
    draft: drafts.RequestDraft, form: RequestForm, answers: drafts.Answers, valid: bool
) -> Response | tuple[str, int]:
    """The last step: the whole request is checked again and stored once."""
    if any(field.errors for field in form.red_flag_fields()):
        return redirect(url_for("patients.red_flags"), code=303)
    if not valid:
        wrong = steps.first_step_with_errors(form, answers) or "review"
        page = steps.first_page_with_errors(form, wrong, answers)
        steps.clear_other_errors(form, wrong, answers, page)
        return _render_step(
            wrong, draft, form, status=422, before_sending=wrong != "review", page=page
        )
    # In the language the patient sends in: their emails follow it.
    submission = replace(form.to_submission(str(get_locale() or draft.locale)), draft=draft)
    try:
        consultation = submit_request(submission)
    except (SlotTaken, SlotUnavailable) as exc:
        form.slot.errors = [
            _("Sorry, that time was just taken by someone else. Please choose another time.")
            if isinstance(exc, SlotTaken)
            else _("Sorry, that time is not available for booking. Please choose another time.")
        ]
        return _render_step("time", draft, form, status=409, before_sending=True)
    except OSError:
        log.exception("the request could not be stored; the draft is kept")
        problem = _(
            "We could not send your request just now. Your answers are saved: please try "
            "again in a few minutes."
        )
        return _render_step("review", draft, form, status=503, problem=problem)
    except (OperationalError, InterfaceError) as error:
        # The database failed (nothing stored: the transaction was rolled back), or its
        # answer to the commit was lost (stored all the same, the draft marked sent with it).
        # Not the bare 503 page: the request stored is the confirmation, as it would have
        # been; else the review again, its answers kept (saved before sending), to press
        # again. Pressed again, a request stored meanwhile shows as sent (``_show_sent``):
        # the draft is sent once, so there is never a second one.
        log.error("database failed while a request was sent: %s", type(error).__name__)
        stored = _stored_after_all(submission.submission_token)
        if stored is None:
            return _render_step("review", draft, form, status=503, problem=str(NOT_SENT))
        consultation = stored
    session[SUBMITTED_KEY] = consultation.reference
    session.pop(RED_FLAGS_KEY, None)
    try:
        seal_in_session(MANAGE_LINK_KEY, confirmation_link(consultation))
    except (OperationalError, InterfaceError) as error:
        # The request is stored: its confirmation shows, without the button to its private
        # page (our email carries the link).
        log.error("database failed while a confirmation's link was made: %s", type(error).__name__)
    return redirect(url_for("patients.submitted"), code=303)


def _stored_after_all(submission_token: str) -> ConsultationRequest | None:
    """The request a send whose commit's answer was lost stored all the same, if any (None
    too when the database cannot say, still failing: the page says it may not be sent)."""
    try:
        stored = find_by_token(submission_token)
    except (OperationalError, InterfaceError) as error:
        log.error("database failed while a lost send was looked for: %s", type(error).__name__)
        return None
    if stored is not None:  # its emails were never handed to the queue: they go now
        enqueue_still_to_go(stored.id)
    return stored


def _render_step(
    code: str,
    draft: drafts.RequestDraft,
    form: RequestForm,
    *,
    status: int = 200,
    expired: bool = False,
    before_sending: bool = False,
    problem: str | None = None,
    upload_messages: list[tuple[str, str]] | None = None,
    upload_form: DraftDocumentsForm | None = None,
    page: int = 1,
    summaries: list[tuple[steps.Step, list[steps.Answer], str]] | None = None,
    described: dict[int, str] | None = None,
    description_errors: dict[int, str] | None = None,
) -> tuple[str, int]:
    answers = draft.values()
    region = steps.region_of(answers)
    shown = steps.fields_of(code, answers, page)
    chosen = _chosen_slot(form) if code in ("time", "review") else None
    markup = render_template(
        "patients/step.html",
        code=code,
        number=steps.number(code),
        page=page,
        pages=steps.pages_of(code, answers),
        shown=set(shown),
        steps=steps.STEPS,
        reached=steps.number(draft.step),
        previous=steps.previous_code(code),
        form=form,
        draft=draft,
        page_proof=_page_proof(draft),
        expired=expired,
        before_sending=before_sending,
        problem=problem,
        fields=[form[name] for name in shown],
        parts=[
            part
            for part in form.region_parts()
            if part.instrument in instruments.REGION_INSTRUMENTS.get(region or "", ())
        ],
        chosen=chosen,
        # The time step's page tells itself from the picker's (both are step 1).
        subtitle=(
            _("Your time, and when else you could come") if chosen else _("When you could come")
        )
        if code == "time"
        else None,
        scheduling=scheduling_enabled(),
        summaries=(
            summaries
            if summaries is not None
            else [
                (each, shown, steps.count_text(shown))
                for each in steps.STEPS[:-1]
                for shown in [steps.summary(form, each.code, answers)]
            ]
            if code == "review"
            else []
        ),
        advice=triage.advice_before_sending(steps.red_flags_yes(answers)),
        # The first step's answers, on the review: they decide how soon the clinic calls.
        # (Only "yes" answers vary for a kept page: ``steppages`` keys on them.)
        red_flag_rows=[
            (flag.question, answered == "yes")
            for flag in triage.ASKED
            if (answered := steps.red_flag_answers(answers).get(flag.code)) is not None
        ]
        if code == "review"
        else [],
        upload_form=(
            (upload_form or DraftDocumentsForm(formdata=None)) if code == "documents" else None
        ),
        upload_messages=upload_messages or [],
        described=described or {},
        description_errors=description_errors or {},
        from_home=code in ("documents", "review") and picked_from_home(answers),
    )
    return markup, status


def _documents_again(
    draft: drafts.RequestDraft,
    form: RequestForm,
    upload_form: DraftDocumentsForm,
    status: int,
    not_added: str,
    described: dict[int, str],
    **shown: object,
) -> tuple[str, int]:
    """The documents step again, nothing of its post saved: what was typed next to the
    listed files (``described``) and for the new one, and each file chosen named with
    ``not_added`` (a browser never fills a file box in again)."""
    chosen = [f.filename for f in request.files.getlist("files") if f and f.filename]
    typed_again = DraftDocumentsForm(formdata=None)
    typed_again.description.data = upload_form.description.data
    return _render_step(
        "documents",
        draft,
        form,
        status=status,
        upload_messages=[(name, not_added) for name in chosen],
        upload_form=typed_again,
        described=described,
        **shown,
    )


def _listed_descriptions(draft: drafts.RequestDraft) -> tuple[dict[int, str], dict[int, str]]:
    """What the patient typed next to each document of the list (the fields posted), as
    every one-line answer is checked: (the texts, the messages of the boxes refused)."""
    typed: dict[int, str] = {}
    refused: dict[int, str] = {}
    for document in draft.documents:
        text = request.form.get(f"description-{document.id}")
        if text is None:
            continue
        try:
            typed[document.id] = visible_or_empty(single_line_text(text))
        except ValueError as exc:
            typed[document.id] = text
            refused[document.id] = str(exc)
    return typed, refused


def _wants_json() -> bool:
    return request.accept_mimetypes.best == "application/json"


def _documents_step(
    draft: drafts.RequestDraft, saved: drafts.Answers
) -> Response | tuple[str, int]:
    """Upload files into the draft (each on its own with scripts, together without), remove
    one, or move on. A refused file is named with the reason; the others are kept."""
    if _reading():
        kept = steppages.filled_page(
            "documents",
            draft,
            saved,
            1,
            _page_proof(draft),
            lambda form, _summaries: _render_step("documents", draft, form)[0],
            live=lambda: render_template(
                "patients/_step_documents_added.html",
                draft=draft,
                upload_form=DraftDocumentsForm(formdata=None),
            ),
        )
        if kept is not None:
            return kept, 200
    form = steps.bind_form(draft, saved)
    if _reading():
        return _render_step("documents", draft, form)
    upload_form = DraftDocumentsForm()
    valid = upload_form.validate()
    if not valid and "csrf_token" in upload_form and upload_form.csrf_token.errors:
        if _wants_json():
            # With a fresh token, so "Try again" works (uploads.js takes it).
            message = _("This page had expired. Please try again.")
            return jsonify(ok=False, message=message, token=generate_csrf()), 400
        if _idle_hidden(draft, saved):  # nothing saved, so no use: it would list the files
            return redirect(url_for("patients.draft_hidden"), code=303)
        # The answers are kept, but not the files chosen: each is named, to choose again.
        # What was typed is shown again unsaved, as the other steps do, to send with a
        # fresh token.
        again = _("Not added: the page had expired. Please choose it again.")
        described = _listed_descriptions(draft)[0]
        return _documents_again(draft, form, upload_form, 400, again, described, expired=True)
    # What each listed file is, as typed next to it: saved by every button of the page; a
    # box refused (an invisible character pasted in) keeps its text, with its message, and
    # nothing of the post is done.
    typed, refused = _listed_descriptions(draft)
    if refused:
        names = {document.id: document.original_name for document in draft.documents}
        return _render_step(
            "documents",
            draft,
            form,
            status=422,
            upload_messages=[(names[doc_id], message) for doc_id, message in refused.items()],
            described=typed,
            description_errors=refused,
        )
    try:
        drafts.describe_documents(draft, typed)
    except (OperationalError, InterfaceError) as error:
        # Nothing of the post is done (no file added, none removed): the page again with
        # what was typed, each file chosen named to choose again.
        log.error("database failed while documents were described: %s", type(error).__name__)
        if _wants_json():
            return jsonify(ok=False, message=str(FILE_NOT_ADDED)), 503
        not_added = str(FILE_NOT_ADDED)
        return _documents_again(
            draft, form, upload_form, 503, not_added, typed, problem=str(NOT_SAVED)
        )
    if not valid:
        # The description (the one answer here): its message on the field, no file added.
        if _wants_json():
            errors = [error for field in upload_form for error in field.errors]
            return jsonify(ok=False, message=errors[0]), 422
        return _render_step("documents", draft, form, status=422, upload_form=upload_form)
    messages: list[tuple[str, str]] = []
    uploads = [upload for upload in upload_form.files.data or [] if upload and upload.filename]
    if not uploads and (upload_form.description.data or "").strip():
        # Said what a file is, but chose none: kept on its field with a message, never
        # dropped (the files already added have their own boxes).
        upload_form.description.errors = [
            _("Please choose the file this describes, or empty this box.")
        ]
        return _render_step("documents", draft, form, status=422, upload_form=upload_form)
    remove = int_arg(request.form.get("remove", ""))
    if remove is not None:
        try:
            drafts.remove_document(draft, remove)
        except (OperationalError, InterfaceError) as error:
            # Not the bare 503 page: the step again, listing what the database holds (a
            # removal whose answer was lost is gone from it), with what was typed; pressed
            # again, a file already removed is simply not there.
            log.error(
                "database failed while a draft's document was removed: %s", type(error).__name__
            )
            not_added = str(FILE_NOT_ADDED)
            return _documents_again(
                draft, form, upload_form, 503, not_added, typed, problem=str(NOT_REMOVED)
            )
        return redirect(url_for("patients.step", code="documents"), code=303)
    our_fault = 0  # files refused for our storage or database, not for what they are
    # Files the same upload would meet the same refusal with (what they are, the request
    # full or sent): uploads.js offers no "Try again" for them, as for a file too large.
    lasting = 0
    database_failed = False
    awaiting_scan = False  # a file kept for a later virus scan: received, not yet accepted
    for upload in uploads:
        name = upload.filename
        if database_failed:  # the next ones are not tried: chosen again, they are
            messages.append((name, str(FILE_NOT_ADDED)))
            our_fault += 1
            continue
        try:
            added = drafts.add_document(
                draft,
                DocumentUpload(upload.stream, name, upload_form.description.data or None),
            )
            awaiting_scan = awaiting_scan or added.awaiting_scan
        except DocumentRejected as exc:
            messages.append((name, str(exc)))
            if not isinstance(exc, ScannerDown):  # the scanner may be back in a minute
                lasting += 1
        except drafts.DraftFull:
            lasting += 1
            limit = current_app.config["MAX_DOCUMENTS"]
            too_many = ngettext(
                "You can send at most %(num)d document with one request.",
                "You can send at most %(num)d documents with one request.",
                limit,
            )
            messages.append((name, too_many))
        except drafts.DraftSent:
            lasting += 1
            sent = _(
                "Your request was sent (from another window) before this file was added. "
                "Please add it on your request's page: the link is in our email."
            )
            messages.append((name, sent))
        except OSError:
            log.exception("a draft's document could not be stored")
            messages.append((name, _("We could not store this file just now. Please try again.")))
            our_fault += 1
        except (OperationalError, InterfaceError) as error:
            log.error(
                "database failed while a draft's document was added: %s", type(error).__name__
            )
            if stored_after_all(error) is False:  # not stored, its file deleted: choose again
                messages.append((name, str(FILE_NOT_ADDED)))
            else:
                # Its row may be stored all the same (the commit's answer lost, and no one
                # could say): the page lists it then, and the same file chosen again is
                # refused as already added.
                not_confirmed = _(
                    "Our system had a problem, so we cannot confirm that this file was "
                    "added. If it is not in the list, please add it again in a few minutes."
                )
                messages.append((name, not_confirmed))
            our_fault += 1
            database_failed = True
    # Every file refused by our storage (a full disk) or database, none for what it is: 503,
    # so the monitoring and the upload script tell "our fault, try later" from "your file".
    status = 503 if our_fault and our_fault == len(messages) else 422
    if _wants_json():
        if messages:
            return jsonify(ok=False, message=messages[0][1], retry=lasting < len(messages)), status
        if awaiting_scan:  # uploads.js shows it on the file's row instead of "Accepted"
            # ``held``: the page's summary then names this mark too (``data-kept-held``).
            return jsonify(ok=True, message=str(RECEIVED_BEING_CHECKED), held=True), 200
        return jsonify(ok=True), 200
    if messages:
        # The description stays to send again with the files, unless some were added with it.
        kept = upload_form if len(messages) == len(uploads) else None
        return _render_step(
            "documents", draft, form, status=status, upload_messages=messages, upload_form=kept
        )
    if GO_TO_FIELD in request.form:  # the list of steps: saved (above) as Back saves
        target = _reached_step(request.form[GO_TO_FIELD], draft.step) or "documents"
        return redirect(url_for("patients.step", code=target), code=303)
    nav = request.form.get("nav", "upload")
    if nav == "later":  # "Finish later": what was typed and chosen here is saved first
        return redirect(url_for("patients.finish_later"), code=303)
    if nav == "next":
        if steps.number(draft.step) < steps.number("review"):
            try:
                drafts.save_answers(draft, {}, "review", rank=steps.number)
            except (OperationalError, InterfaceError) as error:
                # The review not yet reached: the step again (its files and what is typed
                # next to them are stored above), to press again.
                log.error(
                    "database failed while the documents step went on: %s", type(error).__name__
                )
                return _render_step("documents", draft, form, status=503, problem=str(NOT_ON))
        return redirect(url_for("patients.step", code="review"), code=303)
    if nav == "back":
        return _last_page("history", saved)
    return redirect(url_for("patients.step", code="documents"), code=303)


# "Finish later" emails per address typed, whatever the draft or network address: the limit
# of RESUME_EMAILS is per draft, and a new draft is one first step away.
def _resume_address_limit() -> str:
    return current_app.config["RESUME_EMAIL_ADDRESS_RATE_LIMIT"]


# The limit's counts are shared by "Finish later" and the hidden draft's "Email me the link".
RESUME_ADDRESS_SCOPE = "resume-email-address"


def _resume_address_key() -> str:
    return typed_address_key(RESUME_ADDRESS_SCOPE)


def _resume_sent(response: Response) -> bool:
    return response.status_code == 200  # the "sent" page (a refusal is a 422 or a redirect)


def _too_many_resume_emails() -> str:
    return _(
        "We have sent several links to this email address recently. Your answers are saved "
        "in this browser: carry on now, or wait an hour and ask for the link again."
    )


@bp.route("/request/later", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["SUBMIT_RATE_LIMIT"], methods=["POST"])
@limiter.shared_limit(
    _resume_address_limit,
    RESUME_ADDRESS_SCOPE,
    key_func=_resume_address_key,
    methods=["POST"],
    deduct_when=_resume_sent,
    error_message=_too_many_resume_emails,
)
def finish_later() -> Response | tuple[str, int]:
    """Email a private link to carry on with the draft later (or on another device)."""
    draft = _open_draft()
    if draft is None or draft.sent_at is not None:
        return redirect(url_for("patients.red_flags"))
    if _reading() and _idle_hidden(draft):  # it shows the draft's email address
        return redirect(url_for("patients.draft_hidden"))
    if request.method == "POST" and _unshown_post(draft):  # the link to any address typed
        return redirect(url_for("patients.draft_hidden"), code=303)
    form = FinishLaterForm()
    if _reading():
        form.email.data = (draft.values().get("email") or [""])[0]
    elif form.validate_on_submit():
        try:
            drafts.send_resume_link(
                draft,
                form.email.data.strip(),
                "/request/resume/{token}",
                str(get_locale() or "en"),
                red_flags=steps.red_flags_yes(draft.values()),
            )
        except drafts.TooManyResumeEmails:
            form.email.errors = [
                _(
                    "We have already sent the link for this request %(n)d times. Please use "
                    "the newest email, or carry on now.",
                    n=drafts.RESUME_EMAILS,
                )
            ]
        else:
            page = render_template("patients/finish_later_sent.html", draft=draft)
            return page, 200
    page = render_template(
        "patients/finish_later.html", form=form, draft=draft, page_proof=_page_proof(draft)
    )
    return page, 422 if form.errors else 200


@bp.get("/request/resume/<token>")
@limiter.limit(private_link_limit)  # as every private link's: a guessed token is slow to find
@token_in_url
def resume_link(token: str) -> Response | tuple[str, int]:
    """A "finish later" link, opened: its token goes into this browser's session (sealed)
    and the address loses it; the page asks before this browser takes the draft over. A
    look ends nothing: email scanners and link previews open links before the patient, and
    the link works once."""
    if drafts.resume_link_draft(token) is None:
        return render_template("patients/resume_expired.html"), 404
    seal_in_session(RESUME_KEY, token)
    return redirect(url_for("patients.resume_draft"), code=303)


@bp.route("/request/resume", methods=["GET", "POST"])
def resume_draft() -> Response | tuple[str, int]:
    """Carry on with the draft of the link opened in this browser (``resume_link``): the
    button takes it over, on the step it reached; the link then works no more."""
    token = sealed_in_session(RESUME_KEY)
    draft = drafts.resume_link_draft(token)
    if draft is None:
        session.pop(RESUME_KEY, None)
        return render_template("patients/resume_expired.html"), 404
    form = FlaskForm()
    if _reading() or not form.validate_on_submit():
        return render_template("patients/resume.html", draft=draft, form=form), 200
    opened = drafts.open_resume_link(token)
    session.pop(RESUME_KEY, None)
    if opened is None:  # taken over meanwhile, from another tab
        return render_template("patients/resume_expired.html"), 404
    draft, browser_token = opened
    session[DRAFT_KEY] = browser_token
    session[DRAFT_SEEN_KEY] = int(now_utc().timestamp())  # in use here now
    if draft.sent_at is not None:
        return _show_sent(draft)
    return redirect(url_for("patients.step", code=draft.step), code=303)


# --- a draft hidden after a while without use (``_idle_hidden``) ------------------------------


def _draft_address(draft: drafts.RequestDraft) -> str | None:
    """The email address the draft's "About you" step holds, if it is one a link can go to."""
    typed = (draft.values().get("email") or [""])[0].strip()
    form = FinishLaterForm(formdata=None, data={"email": typed}, meta={"csrf": False})
    return typed if form.validate() else None


def _masked(address: str) -> str:
    """An address as the hidden draft's page shows it ("e•••@example.com"): enough for its
    owner to know it, not enough for the next user of the computer to write to them."""
    local, _at, domain = address.rpartition("@")
    return f"{local[:1]}\u2022\u2022\u2022@{domain}"


def _hidden_draft() -> drafts.RequestDraft | None:
    """The browser's draft, once a request (the address limit's key reads it first)."""
    if "hidden_draft" not in g:
        g.hidden_draft = _open_draft(documents=False)
    return g.hidden_draft


def _hidden_address_key() -> str:
    draft = _hidden_draft()
    return address_key(RESUME_ADDRESS_SCOPE, (draft and _draft_address(draft)) or "")


def _too_many_hidden_links() -> str:
    return _(
        "We have sent several links to this email address recently. Please use the newest "
        "email, or wait an hour and ask for the link again."
    )


def _render_hidden(
    draft: drafts.RequestDraft, *, problem: str | None = None, status: int = 200
) -> tuple[str, int]:
    minutes = current_app.config["DRAFT_BROWSER_IDLE_MINUTES"]
    if minutes == 60:
        why = _(
            "For your privacy, an unfinished request in this browser is hidden after an hour "
            "without use."
        )
    else:
        why = ngettext(
            "For your privacy, an unfinished request in this browser is hidden after "
            "%(num)d minute without use.",
            "For your privacy, an unfinished request in this browser is hidden after "
            "%(num)d minutes without use.",
            minutes,
        )
    address = _draft_address(draft)
    page = render_template(
        "patients/draft_hidden.html",
        why=why,
        address=_masked(address) if address else None,
        problem=problem,
    )
    return page, status


@bp.get("/request/hidden")
def draft_hidden() -> Response | tuple[str, int]:
    """What the pages of a draft hidden in this browser show instead (``_idle_hidden``): the
    link to carry on emailed to the draft's own address, or a new request."""
    draft = _open_draft(documents=False)
    if draft is None or draft.sent_at is not None:
        return redirect(url_for("patients.red_flags"))
    if not _idle_hidden(draft):
        return redirect(url_for("patients.step", code=draft.step))
    return _render_hidden(draft)


@bp.post("/request/hidden/email")
@limiter.limit(lambda: current_app.config["SUBMIT_RATE_LIMIT"])
@limiter.shared_limit(
    _resume_address_limit,
    RESUME_ADDRESS_SCOPE,
    key_func=_hidden_address_key,
    deduct_when=_resume_sent,
    error_message=_too_many_hidden_links,
)
def email_hidden_draft() -> Response | tuple[str, int]:
    """Email the "finish later" link of the hidden draft to the address it holds (never one
    typed here: whoever is at the computer reaches only the patient's own inbox). The draft
    stays hidden in this browser; the link opens it."""
    draft = _hidden_draft()
    if draft is None or draft.sent_at is not None:
        return redirect(url_for("patients.red_flags"), code=303)
    if not _idle_hidden(draft):
        return redirect(url_for("patients.step", code=draft.step), code=303)
    address = _draft_address(draft)
    if address is None:  # the page offered no button
        return _render_hidden(draft, status=422)
    try:
        drafts.send_resume_link(
            draft,
            address,
            "/request/resume/{token}",
            str(get_locale() or "en"),
            red_flags=steps.red_flags_yes(draft.values()),
        )
    except drafts.TooManyResumeEmails:
        problem = _(
            "We have already sent the link for this request %(n)d times. Please use the "
            "newest email.",
            n=drafts.RESUME_EMAILS,
        )
        return _render_hidden(draft, problem=problem, status=422)
    return render_template("patients/finish_later_sent.html", draft=draft, hidden=True), 200


@bp.post("/request/hidden/forget")
def forget_hidden_draft() -> Response:
    """This browser lets its draft go (and the first step's answers kept for the emergency
    page): a new request starts. The draft itself stays until it expires, for any link
    already emailed. (The form's token is checked as every post's.)"""
    _forget_draft()
    session.pop(RED_FLAGS_KEY, None)
    # The next person at a shared computer sees it was let go.
    flash(_("This browser has forgotten the unfinished request."), "info")
    return redirect(url_for("patients.red_flags"), code=303)


@bp.get("/privacy")
def privacy() -> str:
    return render_template(
        "patients/privacy.html", fingerprint=notice.fingerprint(str(get_locale() or "en"))
    )
