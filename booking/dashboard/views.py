"""The staff dashboard: triage queue, request records, status changes, notes, documents."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any, NoReturn

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    g,
    get_flashed_messages,
    redirect,
    render_template,
    request,
    send_file,
    stream_with_context,
    url_for,
)
from flask.blueprints import BlueprintSetupState
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext
from flask_login import current_user
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from booking.audit.models import REQUEST_VIEWED
from booking.audit.services import record_refused_access
from booking.dashboard import queries, services, summary
from booking.dashboard.export import csv_head
from booking.dashboard.forms import (
    DATE_FIELD_LABELS,
    ActionForm,
    AskForm,
    CallbackForm,
    CloseForm,
    CompleteForm,
    ContactForm,
    DeceasedForm,
    JoinLinkForm,
    NewLinkForm,
    NoteForm,
    ProcedureDateForm,
    RaiseTriageForm,
    ResendForm,
    ReviewedForm,
    SlotForm,
    StatusForm,
    queue_filters,
)
from booking.documents.models import Document
from booking.documents.scanning import ScanStatus
from booking.documents.storage import get_storage
from booking.extensions import csrf, db, talisman
from booking.forms import confirmation_page, confirmed
from booking.messages import services as messages
from booking.messages.forms import StaffMessageForm
from booking.notifications.services import CLAIM_LAPSED, KILLED_WORKER
from booking.outcomes import services as outcomes
from booking.outcomes.models import Plan
from booking.outcomes.progress import load_progress
from booking.requests import (
    asks,
    emails,
    followup,
    history,
    instruments,
    reminders,
    waitlist,
    withdrawals,
)
from booking.requests.calls import CallbackAttempt, CallOutcome
from booking.requests.lifecycle import WorkflowError, state_key
from booking.requests.links import active_links, links_work
from booking.requests.models import (
    OPEN_STATUSES,
    ConsultationRequest,
    Patient,
    RequestStatus,
    TriageLevel,
)
from booking.requests.queries import can_see, typed_reference
from booking.scheduling.models import AppointmentType, Location
from booking.scheduling.services import active_appointment_types, active_locations
from booking.spreadsheet import delimiter
from booking.staff.auth import roles_required
from booking.staff.models import StaffRole, StaffUser
from booking.staff.services import active_specialists, list_staff
from booking.templating import (
    choice_label,
    isolated,
    language_name,
    message_of,
    naming,
    phone_number,
)
from booking.timeutil import clinic_date, clinic_today, now_utc
from booking.urlargs import redirect_if_written_otherwise

bp = Blueprint("dashboard", __name__, url_prefix="/staff")


@bp.record_once
def _check_settings(state: BlueprintSetupState) -> None:
    """A mistyped export setting stops the start, not the first export."""
    delimiter(state.app.config["EXPORT_CSV_DELIMITER"])


def _mail_banner() -> queries.MailBanner | None:
    """The banner of emails not delivered in time, for coordinators and admins (who can act
    on it: check the worker, send a patient's email again); read once per page, and only
    by a page that shows it (staff_base.html), not by every template rendered (emails)."""
    if "mail_banner" not in g:
        g.mail_banner = (
            queries.mail_banner()
            if current_user.is_authenticated and current_user.works_every_request
            else None
        )
    return g.mail_banner


@bp.app_context_processor
def _staff_frame() -> dict[str, Any]:
    return {"mail_banner": _mail_banner}


@bp.get("/")
@roles_required()
def home() -> Response | str:
    """The staff home: a specialist's is their agenda for today, everyone else's the queue."""
    if current_user.role == StaffRole.SPECIALIST:
        return redirect(url_for("calendar.view"))
    return queue()


@bp.get("/queue")
@roles_required()
def queue() -> str:
    filters = queue_filters(request.args)
    if not current_user.works_every_request:
        # A specialist's queue holds only their own requests: no choice of specialist.
        filters.specialist_id = None
    page = queries.queue_page(current_user, filters)
    return render_template(
        "dashboard/queue.html",
        page=page,
        waits=_waits([*page.items, *page.unreached]),
        filters=filters,
        statuses=list(RequestStatus),
        diagnoses=history.DIAGNOSES,
        date_fields=DATE_FIELD_LABELS,
        specialists=[s for s in list_staff() if s.role == "specialist"]
        if current_user.works_every_request
        else [],
    )


def _waits(requests: list[ConsultationRequest]) -> dict[int, followup.Wait]:
    """How long each open emergency or urgent request has waited for its call-back (until
    it was acknowledged), against the target it is held to (``call_back_level``, as the
    escalation): counted here, with one query whatever the page holds (the days an admin
    closed the clinic, which ``followup.clinic_hours`` reads with the settings' days)."""
    now, targets, hours = now_utc(), followup.targets(), followup.clinic_hours()
    waits = {}
    for r in requests:
        if r.is_urgent and (r.status in OPEN_STATUSES or r.acknowledged_at is not None):
            end = r.acknowledged_at or now
            wait = followup.wait_of(r.call_back_level, r.call_back_since, end, targets, hours)
            if wait is not None:
                waits[r.id] = wait
    return waits


def _load_visible(reference: str) -> ConsultationRequest:
    """The request, or 404 when it does not exist or the user may not see it (a specialist
    guessing another's reference learns nothing)."""
    consultation = _find_visible(reference)
    # Typed another way (as the refusal reads it): a GET goes to the page's one address.
    redirect_if_written_otherwise("reference", consultation.reference)
    return consultation


def _find_visible(reference: str) -> ConsultationRequest:
    """``_load_visible`` for a view that sends the user elsewhere anyway: no detour through
    its own address when the reference is typed another way."""
    consultation = queries.load_record(reference)
    if consultation is None:
        _refuse(reference, "no_such_request")
    if not can_see(current_user, consultation):
        _refuse(reference, "not_assigned")
    return consultation


def _refuse(reference: str, reason: str) -> NoReturn:
    """404, audited. Every refusal is kept, of any role: a request, or a document or note of
    one, that exists but is not the user's ("not_assigned", "document_of_another_request"),
    and also ids that do not exist ("no_such_request", "no_such_document"), because a run of
    those from one account or address is what probing for patients' records looks like.
    The page is the same "not found" in every case, so the user learns nothing from it."""
    # The rest of what the URL asked for: the document's id, or the status change.
    asked = {k: v for k, v in (request.view_args or {}).items() if k != "reference"}
    record_refused_access(
        reason,
        # As the privacy pages and the audit search read a reference ("sc 7k4m q2xd" is
        # SC-7K4M-Q2XD): stored so, the search finds the row however the reference is typed
        # there. What the URL held stays in the row's path.
        target_type="request",
        target_id=typed_reference(reference),
        actor=current_user,
        details=asked,
    )
    abort(404)


def _slot_form(consultation: ConsultationRequest) -> SlotForm:
    form = SlotForm()
    form.set_choices(active_specialists(), active_locations(), active_appointment_types())
    if request.method == "GET" and consultation.appointment is not None:
        form.show_appointment(consultation.appointment)
    return form


# The virus scan's verdict on each document, as the record shows it.
SCAN_LABELS = {
    ScanStatus.CLEAN.value: _l("Virus scan: nothing found"),
    ScanStatus.PENDING.value: _l(
        "Not yet scanned for viruses (the scanner was unavailable): it opens once a scan passes"
    ),
    ScanStatus.INFECTED.value: _l("Removed: the virus scan found malware in it"),
    ScanStatus.SKIPPED.value: _l("Not scanned for viruses (scanning was off at upload)"),
}

# Why an email the patient was never given was not sent at all, by its reason (an expiry
# check's, or the outbox's), as the record's "not notified" list says it.
NOT_SENT_LABELS = {
    # The patient was not reminded at all (``reminders.begun_at_delivery``).
    reminders.APPOINTMENT_BEGUN: _l("(not sent: it could not go out before the appointment began)"),
    # Taken, closed or no longer theirs meanwhile (``waitlist.closed_at_delivery``).
    waitlist.OFFER_CLOSED: _l("(not sent: the offer was no longer open when it could go out)"),
    # Its worker never finished sending it, time after time (``requeue_stalled_emails``): sent
    # again as it is, it would most likely stop the worker again.
    KILLED_WORKER: _l(
        "(not sent: the mail worker stopped each time it tried to send it; "
        "ask the administrator before sending it again)"
    ),
    # Its sending never finished until MAIL_GIVE_UP_HOURS had passed (workers stopped or
    # restarted while it was sent): sent again, it is sent as it is now.
    CLAIM_LAPSED: _l(
        "(not sent: its sending never finished before the time allowed for it ran out)"
    ),
}


def _render_record(
    consultation: ConsultationRequest, status: int = 200, **forms: object
) -> tuple[str, int]:
    """The record page, and the audit of its showing: a page after a refused action (a form
    with an error, a change made meanwhile) shows the whole record too, so it is a read like
    the record's own, and the patient's messages it shows are read."""
    if "thread" not in forms:
        forms["thread"] = messages.load_thread(consultation, for_staff=True)
    thread = forms["thread"]
    # Render first: the audit commit would expire everything the page loaded eagerly.
    page = _record_page(consultation, status, **forms)
    messages.record_thread_read(consultation, thread, current_user)
    services.record_view(consultation, current_user, REQUEST_VIEWED)
    return page


def _record_page(consultation: ConsultationRequest, status: int = 200, **forms: object):
    forms.setdefault("slot_form", _slot_form(consultation))
    forms.setdefault("close_form", CloseForm(unreached=consultation.unreached))
    forms.setdefault("action_form", StatusForm(prefix="action", unreached=consultation.unreached))
    forms.setdefault("complete_form", CompleteForm())
    forms.setdefault("note_form", NoteForm(prefix="note"))
    forms.setdefault("call_form", CallbackForm())
    unnotified = emails.unnotified(consultation)
    if "resend_form" not in forms:
        forms["resend_form"] = ResendForm(prefix="resend", email=consultation.patient.email)
    items = asks.checklist()
    forms.setdefault("ask_form", AskForm(prefix="ask", items=items))
    forms.setdefault("message_form", StaffMessageForm(prefix="msg"))
    # The mark as it is now, whatever was posted: a page refused as stale offers the new one.
    received = consultation.information_received_at
    forms.setdefault(
        "reviewed_form",
        ReviewedForm(
            formdata=None, prefix="reviewed", received=received.isoformat() if received else ""
        ),
    )
    forms.setdefault("deceased_form", DeceasedForm(prefix="deceased"))
    now = now_utc()
    progress = load_progress(consultation, now)
    plan = progress.plan if progress is not None else None
    if (
        plan is not None
        and consultation.status == RequestStatus.COMPLETED
        and outcomes.may_correct_procedure_date(plan)
    ):
        forms.setdefault("procedure_form", ProcedureDateForm())
        # The date this page shows (a form posted back keeps the one it was shown with).
        if not forms["procedure_form"].shown.data:
            forms["procedure_form"].shown.data = outcomes.procedure_key(plan)
    else:
        forms["procedure_form"] = None
    patient = consultation.patient
    if current_user.works_every_request:
        forms.setdefault("contact_form", _stored_contact(patient))
        # The details this page shows (a form posted back keeps the ones it was shown with).
        if not forms["contact_form"].shown.data:
            forms["contact_form"].shown.data = services.contact_key(patient)
    else:
        forms["contact_form"] = None
    # Staff write in the clinic's language; the patient reads in theirs, which may differ.
    language = language_name(consultation.locale)
    for name in ("slot_form", "close_form"):
        forms[name].message.description = _(
            "Sent in the email, which the patient reads in %(language)s. No medical details: "
            "email is not secure.",
            language=language,
        )
    forms["message_form"].body.description = _(
        "The patient reads in %(language)s. They are emailed that a message is waiting, "
        "never its text, and read it on their private page.",
        language=language,
    )
    # A confirmed video visit still to come can be given (or given a new) link to join it.
    if services.may_set_join_link(consultation):
        forms.setdefault("join_form", JoinLinkForm(prefix="join"))
    else:
        forms["join_form"] = None
    # An open request below the emergency level may be raised (never lowered: no form).
    levels = services.higher_levels(consultation)
    if levels:
        forms.setdefault("raise_form", RaiseTriageForm(levels=levels))
        # The level this page shows (a form posted back keeps the one it was shown with).
        if not forms["raise_form"].shown.data:
            forms["raise_form"].shown.data = consultation.triage_level.value
    else:
        forms["raise_form"] = None
    # The status and appointment forms carry the state this page shows (a form posted back
    # with errors keeps the one it was shown with).
    seen = state_key(consultation)
    for name in (
        "slot_form",
        "close_form",
        "action_form",
        "complete_form",
        "join_form",
        "contact_form",
        "raise_form",
    ):
        if forms[name] is not None and not forms[name].seen.data:
            forms[name].seen.data = seen
    allowed = services.allowed_actions(consultation, current_user, now)
    # A confirmed request can only be cancelled: its closing box names that one action, and
    # says when its message is required (a decline's reason).
    forms["close_form"].offer(decline="decline" in allowed, cancel="cancel" in allowed)
    h = consultation.history
    asked = asks.asks_of(consultation)
    writable = bool(patient.writable_address)
    past = frozenset(e.id for e in unnotified if not services.still_wanted(consultation, e))
    return render_template(
        "dashboard/record.html",
        consultation=consultation,
        wait=_waits([consultation]).get(consultation.id),
        calls=_calls(consultation),
        history=history,
        # (An emergency call-back has no history: the page says so instead.)
        region_label=choice_label(instruments.REGION_NAMES, h.spine_region)
        if h is not None and h.spine_region
        else _("Not asked (older request)"),
        pain_rows=[]
        if h is None
        else [(area.name, *pain) for area in instruments.PAIN_AREAS if (pain := h.pain(area))],
        # The instruments the patient was asked, each with its answers and score.
        outcomes=[]
        if h is None
        else [h.outcome(i) for i in instruments.instruments_for(h.spine_region)],
        # An emergency call-back: the name its form took is whom to ask for when calling.
        ask_for=_ask_for(patient) if h is None else None,
        # An emergency call-back left only a phone number: nothing on the page may promise
        # an email (asks and messages are refused without one; staff call instead).
        can_email=bool(consultation.patient.email),
        allowed=allowed,
        actions_open_at=services.actions_open_at(consultation, current_user, now),
        timeline=_timeline(consultation, forms["thread"]),
        manage_links=active_links(consultation),
        # A link to the request's page would open it (a closed request's, for a while):
        # "Send a new link" emails one only then.
        page_opens=links_work(consultation),
        unnotified=unnotified,
        # Of those, the ones a resend leaves out (``still_wanted``): what they were about is
        # past. When they are all such, the banner's button only takes them off the list.
        unnotified_past=past,
        # Of those, the ones never sent at all, with why: too late to go (an expiry check's
        # reason, ``notifications.services.register_expiry_check``), or stopping its worker.
        unnotified_not_sent={
            e.id: NOT_SENT_LABELS[e.last_error]
            for e in unnotified
            if e.last_error in NOT_SENT_LABELS
        },
        nothing_to_resend=len(past) == len(unnotified),
        # Nothing is sent again to a patient marked deceased (or with no address).
        can_resend=writable,
        # Whether closing the request (a decline, a cancellation, a no-show) emails the
        # patient, and whether the message box shows: not to one marked deceased, nor to
        # one with no address (``writable_address``).
        patient_emailed=writable,
        asks=asked,
        checklist=asks.checklist_rows(consultation, asked, items),
        unasked_documents=asks.unasked_documents(consultation),
        scan_labels=SCAN_LABELS,
        progress=progress,
        # Shown for a refused post (a stale page, a change made meanwhile), or after one
        # that redirected here with its reason flashed: the title says "Error" first even
        # when no form holds the reason (the flashed message says it).
        refused=status >= 400
        or any(category == "danger" for category, _text in get_flashed_messages(True)),
        **forms,
    ), status


def _ask_for(patient: Patient) -> str:
    """Whom the clinic asks for when it calls an emergency call-back's number: whoever
    wrote the form, a parent or guardian for the patient (``request_callback``) or else
    the patient."""
    if patient.guardian_name:
        return naming(
            _("%(name)s (parent or guardian of %(patient)s)"),
            name=isolated(patient.guardian_name),
            patient=isolated(patient.full_name),
        )
    return patient.full_name


def _calls(consultation: ConsultationRequest) -> list[CallbackAttempt]:
    """The calls logged, the latest first (loaded with the timeline: ``load_record``)."""
    calls = [event.call for event in consultation.events if event.call is not None]
    return sorted(calls, key=lambda call: (call.called_at, call.id), reverse=True)


def _timeline(consultation: ConsultationRequest, thread: messages.Thread) -> list[dict]:
    """Status changes, notes, messages and emails, newest first; and the emails withdrawn
    unsent, which left the outbox (``withdrawals.traces``)."""
    items = [
        {"at": consultation.created_at, "kind": "created", "item": consultation},
        *({"at": e.occurred_at, "kind": e.kind.value, "item": e} for e in consultation.events),
        *({"at": m.created_at, "kind": "message", "item": m} for m in thread.messages),
        *({"at": m.created_at, "kind": "email", "item": m} for m in consultation.emails),
        *({"at": t.at, "kind": "withdrawn", "item": t} for t in withdrawals.traces(consultation)),
    ]
    return sorted(items, key=lambda entry: entry["at"], reverse=True)


@bp.get("/requests/<reference>")
@roles_required()
def record(reference: str) -> tuple[str, int]:
    return _render_record(_load_visible(reference))


@bp.get("/requests/<reference>/summary")
@roles_required()
def summary_page(reference: str) -> str:
    """The one-page intake summary for the consultation (its print stylesheet leaves out
    everything but the summary)."""
    consultation = _load_visible(reference)
    page = render_template("dashboard/summary.html", s=summary.intake_summary(consultation))
    services.record_view(consultation, current_user, "request_summary_viewed")
    return page


@bp.get("/requests/<reference>/summary.pdf")
@roles_required()
def summary_pdf(reference: str) -> Response:
    """The intake summary as a PDF, made here from the same template; audited like a
    document download."""
    from booking.pdf import render_pdf  # WeasyPrint takes half a second to import

    consultation = _load_visible(reference)
    html = render_template(
        "dashboard/summary.html", s=summary.intake_summary(consultation), printing=True
    )
    body = render_pdf(html)
    filename = summary.summary_filename(consultation, clinic_today())
    services.record_view(consultation, current_user, "request_summary_downloaded")
    response = Response(body, mimetype="application/pdf")
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.headers["Cache-Control"] = "no-store, private"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@bp.get("/requests/<reference>/documents/<int:document_id>")
@talisman(content_security_policy=None)  # this view sets its own, by the document's type
@roles_required()
def document(reference: str, document_id: int) -> Response:
    consultation = _load_visible(reference)
    doc = db.session.get(Document, document_id)
    if doc is None or doc.request_id != consultation.id:
        _refuse(reference, "no_such_document" if doc is None else "document_of_another_request")
    if not doc.servable:  # held for the virus scan, or removed as infected
        abort(404)
    download = request.args.get("download") == "1"
    storage = get_storage()
    if not storage.exists(doc.stored_name):
        abort(404)
    # Before the response starts: a damaged or undecryptable document is a clear error page
    # (and an alert), not a truncated download.
    services.check_document_intact(consultation, doc, current_user)
    services.record_view(
        consultation,
        current_user,
        "document_downloaded" if download else "document_viewed",
        document_id=doc.id,
    )
    response = send_file(
        storage.open(doc.stored_name, doc.sha256),
        mimetype=doc.content_type,  # the type detected from the bytes, never the name
        as_attachment=download,
        download_name=doc.download_name,  # ends in the detected type's extension
        max_age=0,
        conditional=False,
        etag=False,
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "no-store, private"
    # An opened document may load nothing else. Images are also sandboxed; a PDF is not,
    # because browsers refuse to show a PDF in a sandboxed document.
    policy = "default-src 'none'; img-src 'self'; frame-ancestors 'self'"
    if doc.content_type != "application/pdf":
        policy = "sandbox; " + policy
    response.headers["Content-Security-Policy"] = policy
    return response


@bp.post("/requests/<reference>/notes")
@roles_required()
def add_note(reference: str) -> Response | tuple[str, int]:
    consultation = _load_visible(reference)
    form = NoteForm(prefix="note")
    if not form.validate_on_submit():
        return _render_record(consultation, 422, note_form=form)
    try:
        services.add_note(consultation, current_user, form.text.data)
    except WorkflowError as exc:
        flash(message_of(exc), "danger")
        return redirect(url_for(".record", reference=consultation.reference))
    flash(_("Note added."), "success")
    return redirect(url_for(".record", reference=consultation.reference) + "#timeline")


@bp.post("/requests/<reference>/messages")
@roles_required()
def send_message(reference: str) -> Response | tuple[str, int]:
    """Write to the patient, who is emailed that a message waits on their private page."""
    consultation = _load_visible(reference)
    form = StaffMessageForm(prefix="msg")
    if not form.validate_on_submit():
        return _render_record(consultation, 422, message_form=form)
    try:
        messages.send_staff_message(
            consultation, current_user, form.body.data, key=form.submission_key.data
        )
    except messages.MessageRefused as exc:
        consultation = _load_visible(reference)
        form.form_errors.append(message_of(exc))
        return _render_record(consultation, 409, message_form=form)
    flash(_("Message sent: an email telling the patient it is waiting is on its way."), "success")
    return redirect(url_for(".record", reference=consultation.reference) + "#messages")


@bp.post("/requests/<reference>/calls")
@roles_required()
def log_call(reference: str) -> Response | tuple[str, int]:
    consultation = _load_visible(reference)
    form = CallbackForm()
    if not form.validate_on_submit():
        return _render_record(consultation, 422, call_form=form)
    try:
        services.log_callback(
            consultation,
            current_user,
            CallOutcome(form.outcome.data),
            form.called_at(),
            form.note.data,
        )
    except WorkflowError as exc:
        db.session.rollback()
        consultation = _load_visible(reference)
        form.at.errors = [*form.at.errors, message_of(exc)]
        return _render_record(consultation, 422, call_form=form)
    flash(_("Call logged."), "success")
    return redirect(url_for(".record", reference=consultation.reference) + "#calls")


@bp.post("/requests/<reference>/triage")
@roles_required()
def raise_triage(reference: str) -> Response | tuple[str, int]:
    """Raise the request's triage level (new symptoms): only above its own, with a reason."""
    consultation = _load_visible(reference)
    # The choices the page offered: those above the level it showed. A level changed since
    # is refused by the service as a stale page, not as a choice this page never offered.
    try:
        shown = TriageLevel(request.form.get("raise-shown", ""))
    except ValueError:
        shown = consultation.triage_level
    form = RaiseTriageForm(levels=services.levels_above(shown))
    if not form.validate_on_submit():
        return _render_record(consultation, 422, raise_form=form)
    try:
        services.raise_triage(
            consultation,
            current_user,
            TriageLevel(form.level.data),
            form.reason.data,
            seen=form.seen.data or None,
            shown=form.shown.data or None,
        )
    except WorkflowError as exc:
        db.session.rollback()
        consultation = _load_visible(reference)
        flash(message_of(exc), "danger")
        # Offered again for the request as it is now, with the reason as typed.
        levels = services.higher_levels(consultation)
        fresh = RaiseTriageForm(formdata=None, levels=levels, reason=form.reason.data)
        return _render_record(consultation, 409, raise_form=fresh if levels else None)
    flash(
        _(
            "Triage level raised: the clinic's inbox is alerted, and the call-back target "
            "counts from now."
        ),
        "success",
    )
    return redirect(url_for(".record", reference=reference) + "#calls")


@bp.post("/requests/<reference>/ask")
@roles_required()
def ask_patient(reference: str) -> Response | tuple[str, int]:
    """Ask the patient for what is missing: the request waits for their answer."""
    consultation = _load_visible(reference)
    form = AskForm(prefix="ask")
    if not form.validate_on_submit():
        return _render_record(consultation, 422, ask_form=form)
    try:
        asks.ask_patient(consultation, current_user, form.items.data or [], form.question.data)
    except (asks.AskError, WorkflowError) as exc:
        db.session.rollback()
        consultation = _load_visible(reference)
        flash(message_of(exc), "danger")  # shown even where the page no longer offers the form
        return _render_record(consultation, 409, ask_form=form)
    flash(_("The patient is asked by email. The request waits for their answer."), "success")
    return redirect(url_for(".record", reference=reference) + "#asks")


@bp.post("/requests/<reference>/ask/withdraw")
@roles_required()
def withdraw_ask(reference: str) -> Response | str:
    """Stop waiting for the patient (``asks.withdraw_ask``): asked about first, as it emails
    the patient at once and cannot be taken back (asking again is another email)."""
    consultation = _load_visible(reference)
    if not ActionForm(prefix="withdraw").validate_on_submit():
        abort(400)
    if not confirmed():
        return confirmation_page(
            title=_("Stop waiting for the patient of %(reference)s?", reference=reference),
            button=_("Stop waiting and email the patient"),
            cancel_url=url_for(".record", reference=reference) + "#asks",
            consequences=[
                _(
                    "The patient is emailed that they need not send anything more, and their "
                    "private page no longer asks for it."
                ),
                _("The request goes back to the queue as waiting for the clinic."),
            ],
        )
    try:
        asks.withdraw_ask(consultation, current_user)
    except (asks.AskError, WorkflowError) as exc:
        db.session.rollback()
        flash(message_of(exc), "danger")
    else:
        flash(_("The request no longer waits for the patient."), "success")
    return redirect(url_for(".record", reference=reference) + "#asks")


@bp.post("/requests/<reference>/ask/reviewed")
@roles_required()
def information_reviewed(reference: str) -> Response | tuple[str, int]:
    """Staff looked at what the patient sent: the queue's "information received" mark ends."""
    consultation = _load_visible(reference)
    form = ReviewedForm(prefix="reviewed")
    if not form.validate_on_submit():
        abort(400)
    try:
        asks.mark_reviewed(consultation, current_user, form.received_at())
    except (asks.AskError, WorkflowError) as exc:
        db.session.rollback()
        consultation = _load_visible(reference)
        flash(message_of(exc), "danger")
        return _render_record(consultation, 409)
    flash(_("Marked as reviewed."), "success")
    return redirect(url_for(".record", reference=reference) + "#asks")


@bp.post("/requests/<reference>/join-link")
@roles_required()
def set_join_link(reference: str) -> Response | tuple[str, int]:
    """Give a confirmed video visit the link that joins it; the patient is emailed it."""
    consultation = _load_visible(reference)
    form = JoinLinkForm(prefix="join")
    if not form.validate_on_submit():
        return _render_record(consultation, 422, join_form=form)
    try:
        services.set_join_link(
            consultation, current_user, form.link.data, seen=form.seen.data or None
        )
    except WorkflowError as exc:
        db.session.rollback()
        consultation = _load_visible(reference)
        form.seen.data = None
        flash(message_of(exc), "danger")
        return _render_record(consultation, 409, join_form=form)
    if consultation.patient.writable_address:
        flash(_("Saved: an email with the link is on its way to the patient."), "success")
    else:
        flash(_("Saved. No email was sent: please give the patient the link."), "success")
    return redirect(url_for(".record", reference=reference) + "#actions-heading")


@bp.post("/requests/<reference>/new-link")
@roles_required(StaffRole.ADMIN, StaffRole.COORDINATOR)
def send_new_link(reference: str) -> Response:
    """End every private link the patient was sent and email a new one (a link forwarded by
    mistake, a shared mailbox, a lost phone)."""
    consultation = _load_visible(reference)
    form = NewLinkForm(prefix="link")
    if not form.validate_on_submit():
        abort(400)
    if not form.confirmed:
        flash(
            _(
                'No new link was sent. Press "Send a new link" again, read what it does, then '
                "confirm in the box it opens."
            ),
            "warning",
        )
        return redirect(url_for(".record", reference=reference) + "#new-link")
    try:
        revoked, link_sent = services.send_new_link(consultation, current_user)
    except WorkflowError as exc:
        db.session.rollback()
        flash(message_of(exc), "danger")
        return redirect(url_for(".record", reference=reference))
    if not link_sent:
        flash(
            ngettext(
                "%(num)d earlier link stopped working, and each follow-up questionnaire still "
                "open is on its way to the patient again. No link to the request's page was "
                "sent: it is closed and its page no longer opens.",
                "%(num)d earlier links stopped working, and each follow-up questionnaire still "
                "open is on its way to the patient again. No link to the request's page was "
                "sent: it is closed and its page no longer opens.",
                revoked,
            ),
            "success",
        )
        return redirect(url_for(".record", reference=reference))
    flash(
        ngettext(
            "A new private link is on its way to the patient; %(num)d earlier link stopped "
            "working.",
            "A new private link is on its way to the patient; %(num)d earlier links stopped "
            "working.",
            revoked,
        ),
        "success",
    )
    return redirect(url_for(".record", reference=reference))


def _confirm_new_address(consultation: ConsultationRequest) -> str:
    """What a new address does (``services.correct_contact``), said before it is done."""
    patient = consultation.patient
    consequences = [_("Every private link sent to the patient so far stops working.")]
    if patient.deceased_at is not None:
        consequences.append(_("No email goes: the patient is marked deceased."))
    elif not links_work(consultation):
        consequences.append(
            _("No new link is sent: the request is closed and its page no longer opens.")
        )
    else:
        consequences.append(
            _(
                "The patient is emailed a new private link at the new address, with any "
                "email still waiting to go."
            )
        )
    if patient.email and patient.deceased_at is None:
        consequences.append(_("The old address is told of the change, with no link."))
    return confirmation_page(
        title=naming(_("Change the email address of %(name)s?"), name=isolated(patient.full_name)),
        button=_("Change the address and send a new link")
        if patient.deceased_at is None and links_work(consultation)
        else _("Change the address"),
        cancel_url=url_for(".record", reference=consultation.reference),
        consequences=consequences,
    )


def _stored_contact(patient: Patient) -> ContactForm:
    """The contact form showing the patient's details as stored (the number as the page
    writes it), whatever was posted."""
    return ContactForm(
        formdata=None,
        email=patient.email,
        phone=phone_number(patient.phone),
        email_required=bool(patient.email),
    )


@bp.post("/requests/<reference>/contact")
@roles_required(StaffRole.ADMIN, StaffRole.COORDINATOR)
def correct_contact(reference: str) -> Response | tuple[str, int] | str:
    """Correct the patient's email address or phone number (learnt on a call); a new
    address gets a new private link, and the earlier links stop working."""
    consultation = _load_visible(reference)
    form = ContactForm(email_required=bool(consultation.patient.email))
    if not form.validate_on_submit():
        return _render_record(consultation, 422, contact_form=form)
    # A new address ends the patient's private links and sends new ones: asked first. A new
    # number alone, or the same address, changes nothing the patient holds.
    if services.changes_email(consultation.patient, form.email.data) and not confirmed():
        return _confirm_new_address(consultation)
    try:
        corrected = services.correct_contact(
            consultation,
            current_user,
            form.email.data,
            form.phone.e164,
            seen=form.seen.data or None,
            shown=form.shown.data or None,
        )
    except WorkflowError as exc:
        db.session.rollback()
        consultation = _load_visible(reference)
        # Shown again as stored now, not as typed: sent again, the page's copy would undo a
        # colleague's correction (or bring back the address they replaced); the message says
        # nothing was saved.
        stored = _stored_contact(consultation.patient)
        stored.form_errors.append(message_of(exc))
        return _render_record(consultation, 409, contact_form=stored)
    if "email" not in corrected.changed:
        flash(_("The patient's phone number is corrected."), "success")
    elif corrected.emailed:
        flash(
            ngettext(
                "Corrected: a new private link is on its way to the new address; %(num)d "
                "earlier link stopped working.",
                "Corrected: a new private link is on its way to the new address; %(num)d "
                "earlier links stopped working.",
                corrected.links_revoked,
            ),
            "success",
        )
    elif corrected.page_closed:
        flash(
            ngettext(
                "Corrected: %(num)d earlier link stopped working. No new link was sent: the "
                "request is closed and its page no longer opens.",
                "Corrected: %(num)d earlier links stopped working. No new link was sent: the "
                "request is closed and its page no longer opens.",
                corrected.links_revoked,
            ),
            "success",
        )
    else:
        flash(
            _("Corrected. No email was sent: the patient is marked deceased."),
            "success",
        )
    return redirect(url_for(".record", reference=reference) + "#patient-heading")


@bp.post("/requests/<reference>/resend-emails")
@roles_required(StaffRole.ADMIN, StaffRole.COORDINATOR)
def resend_emails(reference: str) -> Response | tuple[str, int]:
    """Send the patient's failed emails again, after the address was checked or corrected."""
    consultation = _load_visible(reference)
    form = ResendForm(prefix="resend")
    if not form.validate_on_submit():
        return _render_record(consultation, 422, resend_form=form)
    try:
        resent = services.resend_patient_emails(consultation, current_user, form.email.data)
    except WorkflowError as exc:
        db.session.rollback()
        flash(message_of(exc), "danger")
        return redirect(url_for(".record", reference=reference))
    if resent.email_ids:
        flash(
            ngettext(
                "%(num)d email is on its way to the patient again.",
                "%(num)d emails are on their way to the patient again.",
                len(resent.email_ids),
            ),
            "success",
        )
    else:  # none was still wanted: they are off the list, and nothing went
        flash(_("No email was sent: none of these was still to be sent."), "info")
    if resent.outdated:
        flash(
            ngettext(
                "%(num)d older email was not sent again: the request has changed since. The "
                "patient gets a new link to their page instead, which shows it as it is now.",
                "%(num)d older emails were not sent again: the request has changed since. The "
                "patient gets a new link to their page instead, which shows it as it is now.",
                resent.outdated,
            ),
            "info",
        )
    if resent.left_out:
        flash(
            ngettext(
                "%(num)d reminder, offer or follow-up invitation was not sent again: what it "
                "was about is past, or the patient may no longer be contacted.",
                "%(num)d reminders, offers or follow-up invitations were not sent again: what "
                "they were about is past, or the patient may no longer be contacted.",
                resent.left_out,
            ),
            "info",
        )
    return redirect(url_for(".record", reference=reference) + "#timeline")


@bp.post("/requests/<reference>/procedure-date")
@roles_required()
def correct_procedure_date(reference: str) -> Response | tuple[str, int] | str:
    """Correct (or add) the procedure date of a completed request's plan: the follow-ups
    still to come count from the new date."""
    consultation = _load_visible(reference)
    form = ProcedureDateForm()
    if not form.validate_on_submit():
        return _render_record(consultation, 422, procedure_form=form)
    try:
        # Asked first when it would supersede or close a questionnaire, saying so (refused at
        # once, as it would be); saved at once when it would do neither.
        corrected = outcomes.correct_procedure_date(
            consultation,
            form.procedure_date.data,
            current_user,
            shown=form.shown.data,
            ask_first=not confirmed(),
        )
    except WorkflowError as exc:
        db.session.rollback()
        consultation = _load_visible(reference)
        # Offered again (when it still is) with the date as stored now, the typed one kept;
        # the reason is flashed: a plan with no date to correct is offered no form to hold it.
        form.shown.data = None
        flash(message_of(exc), "danger")
        return _render_record(consultation, 409, procedure_form=form)
    if not corrected.saved:
        return _confirm_procedure_date(reference, form.procedure_date.data, corrected)
    message = _("The procedure date is corrected: follow-ups not yet sent count from it.")
    if corrected.superseded:
        message += " " + ngettext(
            "%(num)d questionnaire sent too early for the new date, or answered before it, is "
            "kept but not counted: its time point is asked again when it comes.",
            "%(num)d questionnaires sent too early for the new date, or answered before it, "
            "are kept but not counted: their time points are asked again when they come.",
            len(corrected.superseded),
        )
    if corrected.restored:
        message += " " + ngettext(
            "%(num)d questionnaire an earlier correction had set aside counts again.",
            "%(num)d questionnaires an earlier correction had set aside count again.",
            len(corrected.restored),
        )
    if corrected.closed:
        message += " " + ngettext(
            "%(num)d questionnaire sent but not answered was closed.",
            "%(num)d questionnaires sent but not answered were closed.",
            len(corrected.closed),
        )
    flash(message, "success")
    return redirect(url_for(".record", reference=reference) + "#followup")


def _confirm_procedure_date(
    reference: str, procedure_date: date, preview: outcomes.ProcedureDateCorrected
) -> str:
    """The correction asked about first: what it would do to the questionnaires already sent
    (``outcomes.correct_procedure_date`` with ``ask_first``), the superseded and closed ones
    it is asked for."""
    warnings = []
    if preview.superseded:
        warnings.append(
            ngettext(
                "%(num)d questionnaire sent too early for the new date, or answered before it, "
                "will no longer be counted (it is kept, answers and all): its time point is "
                "asked again when it comes.",
                "%(num)d questionnaires sent too early for the new date, or answered before "
                "it, will no longer be counted (they are kept, answers and all): their time "
                "points are asked again when they come.",
                len(preview.superseded),
            )
        )
    if preview.closed:
        warnings.append(
            ngettext(
                "%(num)d questionnaire sent but not answered will be closed: its link stops "
                "working.",
                "%(num)d questionnaires sent but not answered will be closed: their links "
                "stop working.",
                len(preview.closed),
            )
        )
    consequences = [_("Follow-up questionnaires not yet sent count from the new date.")]
    if preview.restored:
        consequences.append(
            ngettext(
                "%(num)d questionnaire an earlier correction had set aside will count again.",
                "%(num)d questionnaires an earlier correction had set aside will count again.",
                len(preview.restored),
            )
        )
    return confirmation_page(
        title=_(
            "Change the procedure date of %(reference)s to %(day)s?",
            reference=reference,
            day=clinic_date(procedure_date, "long"),
        ),
        button=_("Change the procedure date"),
        cancel_url=url_for(".record", reference=reference) + "#followup",
        consequences=consequences,
        warnings=warnings,
    )


@bp.post("/requests/<reference>/deceased")
@roles_required(StaffRole.ADMIN, StaffRole.COORDINATOR)
def mark_deceased(reference: str) -> Response | tuple[str, int]:
    """The patient died: no follow-up questionnaire is sent again. The ticked box is the
    confirmation step."""
    consultation = _load_visible(reference)
    form = DeceasedForm(prefix="deceased")
    if not form.validate_on_submit():
        return _render_record(consultation, 422, deceased_form=form)
    try:
        outcomes.mark_deceased(consultation, current_user)
    except WorkflowError as exc:
        db.session.rollback()
        flash(message_of(exc), "danger")
    else:
        flash(
            _(
                "Marked deceased: no further follow-up questionnaire, reminder or offer of an "
                "earlier time will be sent. Cancel any appointment still booked."
            ),
            "success",
        )
    return redirect(url_for(".record", reference=reference) + "#followup")


# Only the actions that exist match: a post to any other address under the record falls
# through to ``return_to_record``, not found (404) as every unknown address, instead of
# being refused for its form token by this rule's sake.
@bp.post(f"/requests/<reference>/<any({', '.join(services.ACTIONS)}):action>")
@roles_required()
def change_status(reference: str, action: str) -> Response | tuple[str, int] | str:
    consultation = _load_visible(reference)
    forms: dict[str, object] = {}
    # A change that takes the request out of waiting for the patient (confirmed, declined,
    # cancelled) ends the ask too, and withdraws its email if it has not gone out yet
    # (``lifecycle.record_change``): staff are told, who may have asked a moment ago.
    asking = consultation.status == RequestStatus.AWAITING_PATIENT
    try:
        if action in ("confirm", "reschedule"):
            form = _slot_form(consultation)
            forms["slot_form"] = form
            if not form.validate_on_submit():
                return _render_record(consultation, 422, **forms)
            slot = services.Slot(
                appointment_type=_appointment_type(form.appointment_type.data),
                specialist=_staff(form.specialist.data),
                location=_location(form.location.data),
                day=form.day.data,
                start=form.start.data,
                fold=form.fold,
            )
            operation = (
                services.confirm_request if action == "confirm" else services.reschedule_request
            )
            operation(
                consultation,
                current_user,
                slot,
                form.message.data or None,
                seen=form.seen.data or None,
            )
        elif action in ("decline", "cancel"):
            form = CloseForm(
                unreached=consultation.unreached,
                # A decline emailed to the patient gives the reason (``CloseForm``).
                declining=action == "decline" and bool(consultation.patient.writable_address),
            )
            forms["close_form"] = form
            if not form.validate_on_submit():
                return _render_record(consultation, 422, **forms)
            operation = services.decline_request if action == "decline" else services.cancel_request
            operation(
                consultation,
                current_user,
                form.message.data or None,
                seen=form.seen.data or None,
                close_unreached=form.close_unreached,
            )
        elif action == "complete":
            form = CompleteForm()
            forms["complete_form"] = form
            if not form.validate_on_submit():
                return _render_record(consultation, 422, **forms)
            services.complete_request(
                consultation,
                current_user,
                Plan(form.plan.data),
                form.procedure_date.data,
                seen=form.seen.data or None,
            )
        else:
            form = StatusForm(prefix="action", unreached=consultation.unreached)
            forms["action_form"] = form
            if not form.validate_on_submit():
                # Only the box can be left unticked: any other error is a forged or stale post.
                if set(form.errors) != {"unreached"}:
                    abort(400)
                return _render_record(consultation, 422, **forms)
            if not confirmed():
                services.check_no_show(consultation, current_user, seen=form.seen.data or None)
                return _confirm_no_show(consultation, form.close_unreached)
            services.mark_no_show(
                consultation,
                current_user,
                seen=form.seen.data or None,
                close_unreached=form.close_unreached,
            )
    except WorkflowError as exc:
        db.session.rollback()
        consultation = _load_visible(reference)
        for form in forms.values():  # shown again with the request as it is now
            form.seen.data = None
        flash(message_of(exc), "danger")
        return _render_record(consultation, 409, **forms)
    if consultation.patient.deceased_at is not None:
        flash(_("Done. No email was sent: the patient is marked deceased."), "success")
    elif consultation.patient.email:
        flash(_("Done: an email to the patient is on its way."), "success")
    else:
        flash(
            _("Done. The patient left no email address: please call them to tell them."), "success"
        )
    if asking and consultation.status != RequestStatus.AWAITING_PATIENT:
        flash(
            _(
                "The patient is no longer asked for the information requested: their page "
                "stops asking and no reminder goes. The email asking for it was withdrawn if "
                "it had not gone out yet. If you still need it, send the patient a message or "
                "call them."
            ),
            "info",
        )
    return redirect(url_for(".record", reference=consultation.reference))


# Where on the record each action's form is (``return_to_record``); an action not listed
# goes back to the top of the record.
ACTION_SECTIONS = {
    "dashboard.change_status": "actions-heading",
    "dashboard.set_join_link": "actions-heading",
    "dashboard.raise_triage": "raise",
    "dashboard.add_note": "note",
    "dashboard.send_message": "messages",
    "dashboard.log_call": "calls",
    "dashboard.ask_patient": "asks",
    "dashboard.withdraw_ask": "asks",
    "dashboard.information_reviewed": "asks",
    "dashboard.send_new_link": "new-link",
    "dashboard.correct_contact": "patient-heading",
    "dashboard.resend_emails": "unnotified",
    "dashboard.correct_procedure_date": "followup",
    "dashboard.mark_deceased": "followup",
}


# Posts too, though it takes none: a post to an address under the record that no action
# has would otherwise be refused as a wrong method (405) for this rule's sake, not found
# (404) as before. It changes nothing, so no form token is asked of it.
@csrf.exempt
@bp.route("/requests/<reference>/<path:action>", methods=["GET", "POST"])
@roles_required()
def return_to_record(reference: str, action: str) -> Response:
    """A GET of one of the record's actions (each only posted to): back to the record, at
    the action's form, doing nothing. A form refused with an error is shown again at the
    address it was posted to, so reloading that page, or opening the address again from the
    history, asks for it; the 405 page it got was a dead end. Any other address under the
    record is not found, as before; so is a request the user may not see."""
    if request.method == "POST":  # no action here (an action's own rule is matched first)
        abort(404)
    endpoint = _record_action()
    if endpoint is None:
        abort(404)
    consultation = _find_visible(reference)
    section = ACTION_SECTIONS.get(endpoint)
    target = url_for(".record", reference=consultation.reference)
    return redirect(target + (f"#{section}" if section else ""), 303)


def _record_action() -> str | None:
    """The endpoint a post to this address would reach, when it is one of this blueprint's
    actions on a request (``change_status`` matches only the actions that exist), else
    None."""
    adapter = current_app.url_map.bind_to_environ(request.environ)
    try:
        endpoint, args = adapter.match(method="POST")
    except HTTPException:  # not found, or no post there either
        return None
    if endpoint == request.endpoint or not endpoint.startswith(f"{bp.name}."):
        return None
    if "reference" not in args:
        return None
    return endpoint


def _confirm_no_show(consultation: ConsultationRequest, close_unreached: bool) -> str:
    """The no-show asked about first: it closes the request for good and emails the patient.
    The form's fields (the page's state, the ticked box) go through the page unchanged."""
    emailed = consultation.patient.writable_address is not None
    consequences = [_("The request is closed for good: this cannot be undone.")]
    if emailed:
        consequences.append(_("The patient is emailed that they missed the appointment."))
    warnings = []
    if close_unreached:
        warnings.append(
            _(
                "Nobody has reached this patient about their urgent symptoms: the call-back "
                "target and the escalation to the on-call address stop."
            )
        )
    return confirmation_page(
        title=_("Mark %(reference)s as no-show?", reference=consultation.reference),
        button=_("Mark as no-show and email the patient") if emailed else _("Mark as no-show"),
        cancel_url=url_for(".record", reference=consultation.reference),
        consequences=consequences,
        warnings=warnings,
    )


def _staff(user_id: int) -> StaffUser:
    user = db.session.get(StaffUser, user_id)
    if user is None:
        raise WorkflowError(_("Please choose an active specialist."))
    return user


def _appointment_type(type_id: int) -> AppointmentType:
    appointment_type = db.session.get(AppointmentType, type_id)
    if appointment_type is None or not appointment_type.active:
        raise WorkflowError(_("Please choose the type of appointment."))
    return appointment_type


def _location(location_id: int) -> Location:
    location = db.session.get(Location, location_id)
    if location is None:
        raise WorkflowError(_("Please choose an open location."))
    return location


@bp.post("/export.csv")
@roles_required(StaffRole.ADMIN, StaffRole.COORDINATOR)
def export_csv() -> Response:
    """The queue's filtered list as CSV, every row of it, sent as it is read (a long list
    starts downloading at once and is never held whole). Audited before the first byte, and
    again when the file ends, with the references of the rows it held. A post with the page's
    CSRF token (the filters in its address): a link on another site, followed by a signed-in
    browser, must not drop every patient's details into its downloads and audit the export
    in that staff member's name."""
    if not ActionForm().validate_on_submit():
        abort(400)
    filters = queue_filters(request.args)
    count = queries.export_count(current_user, filters)
    export_id = services.record_export(current_user, filters.as_query_args(page=None), count)
    separator = delimiter(current_app.config["EXPORT_CSV_DELIMITER"])
    # The rows are read inside the request's context, kept for the stream; the heading goes
    # first without it, so nothing holds the context until the rows are asked for.
    head = csv_head(separator).encode("utf-8")
    rows = stream_with_context(
        piece.encode("utf-8")
        for piece in services.export_pieces(
            current_user, export_id, queries.export_rows(current_user, filters), separator
        )
    )

    def body() -> Iterator[bytes]:
        yield head
        yield from rows  # closing the body (a download cancelled) closes the rows' stream

    response = Response(body(), content_type="text/csv; charset=utf-8")
    stamp = clinic_today().isoformat()
    response.headers["Content-Disposition"] = f'attachment; filename="requests-{stamp}.csv"'
    response.headers["Cache-Control"] = "no-store, private"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
