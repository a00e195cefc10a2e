"""The patient's private page for one request: status, documents, reschedule, cancel."""

from __future__ import annotations

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    g,
    get_flashed_messages,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext
from flask_wtf import FlaskForm
from sqlalchemy.exc import InterfaceError, OperationalError
from werkzeug.wrappers import Response

from booking.documents.forms import FILE_NOT_ADDED
from booking.documents.storage import (
    DocumentRejected,
    ScannerDown,
    refused_upload,
    stored_after_all,
)
from booking.errors import NOT_CONFIRMED
from booking.extensions import db, limiter
from booking.manage import services
from booking.manage.forms import (
    AddDocumentsForm,
    AnswerForm,
    CancelForm,
    ChangeEmailForm,
    DownloadDataForm,
    EraseDataForm,
    RescheduleForm,
    WithdrawConsentForm,
)
from booking.messages import services as messages
from booking.messages.forms import PatientMessageForm
from booking.requests import asks, triage
from booking.requests.links import (
    exchange_legacy,
    is_read_only,
    link_expires_at,
    link_for_token,
    mark_opened,
    request_for_tokens,
)
from booking.requests.models import ConsultationRequest, ManageLink
from booking.requests.queries import reads_as_reference
from booking.requests.waitlist import (
    NoContactConsent,
    OfferAlreadyYours,
    OfferExpired,
    OfferGone,
    OfferLocked,
    OfferUnavailable,
    WaitlistLocked,
    accept_offer,
    find_offer,
    is_waiting,
    join_waitlist,
    leave_waitlist,
    offer_expired,
    offer_open_until,
    offered_to,
    still_bookable,
    taken_by,
)
from booking.rights import addresses
from booking.rights import services as rights
from booking.rights.export import stream_zip
from booking.rights.models import EmailChange
from booking.scheduling.availability import clinic_settings
from booking.scheduling.services import SlotChoice, SlotTaken, SlotUnavailable, picker
from booking.security import (
    address_key,
    cookie_values,
    keep_request_language,
    not_indexed,
    private_link_limit,
    set_link_cookie,
    token_in_url,
)
from booking.templating import clinic_phone_after
from booking.timeutil import clinic_dt
from booking.urlargs import date_arg, redirect_if_written_otherwise

bp = Blueprint("manage", __name__, url_prefix="/manage")

# The cookie a private link is exchanged for; scoped to one request's pages.
COOKIE = "manage_access"


_limit = private_link_limit
bp.after_request(not_indexed)


@bp.after_request
def _renew_cookie(response: Response) -> Response:
    """The page stays open ``MANAGE_COOKIE_MINUTES`` from the patient's last page, not from
    when the link was opened: adding scans or choosing a time can take a while."""
    kept = g.pop("manage_cookie", None)
    if kept is not None and response.status_code < 400:
        set_link_cookie(response, COOKIE, *kept)
    return response


def _enter(link: ManageLink, token: str, offer_token: str | None) -> Response:
    """Trade the link's token for a cookie on the request's own pages, and go there (to the
    offered time, for an offer's link)."""
    mark_opened(link)
    keep_request_language(link.request.locale)
    reference = link.request.reference
    page = url_for("manage.view", reference=reference)
    response = redirect(
        url_for("manage.offer", reference=reference, offer_token=offer_token)
        if offer_token
        else page,
        303,
    )
    return set_link_cookie(response, COOKIE, token, page)


def _gone() -> tuple[str, int]:
    return render_template("manage/link_gone.html"), 404


@bp.get("/open/<token>")
@bp.get("/open/<token>/offers/<offer_token>")
@limiter.limit(_limit)
@token_in_url
def open_link(token: str, offer_token: str | None = None):
    link = link_for_token(token)
    if link is None:
        return _gone()
    return _enter(link, token, offer_token)


@bp.get("/<reference>/<signed:token>")
@bp.get("/<reference>/<signed:token>/offers/<offer_token>")
@limiter.limit(_limit)
@token_in_url
def open_legacy(reference: str, token: str, offer_token: str | None = None):
    """A link of the older, signed kind: honoured until it expires (booking.requests.links)."""
    exchanged = exchange_legacy(reference, token)
    if exchanged is None:
        return _gone()
    link, new_token = exchanged
    return _enter(link, new_token, offer_token)


def _load(reference: str, *, closed_too: bool = False) -> ConsultationRequest:
    """The request whose page this is, from the cookie its link left; a closed request's
    page refuses every change here, in one place (each service checks again under its lock),
    except the patient's data-protection rights (``closed_too``), which outlive the request."""
    # A reference typed by hand ("sc-7k4m-q2xd", "SC 7K4M Q2XD", "SC7K4MQ2XD"), read as
    # everywhere else (``reads_as_reference``): a GET goes to the page's own address, where
    # the browser sends the link's cookie (its path is that address). From the text alone,
    # with no look-up, so the answer says nothing of any request; the cookie still decides.
    written = reads_as_reference(reference)
    if written is not None:
        redirect_if_written_otherwise("reference", written)
    opened = request_for_tokens(reference, cookie_values(COOKIE))
    if opened is None:
        abort(make_response(render_template("manage/link_needed.html"), 403))
    consultation, token = opened
    g.manage_cookie = (token, url_for("manage.view", reference=consultation.reference))
    if request.method == "POST" and is_read_only(consultation) and not closed_too:
        flash(_("This request is closed and can no longer be changed online."), "danger")
        abort(make_response(*_render(consultation, 409)))
    return consultation


def _here(reference: str) -> str:
    return url_for("manage.view", reference=reference)


# Where each form's messages are on the (long) page, with its heading: a page shown again
# with a message says at the top where it is, since the page opens at the top (a wrong date
# of birth under "Your data" was about 3,000 px down on a phone, and looked like nothing).
# The third value: whether the form has an error summary of its own, which already alerts
# screen readers (the notice at the top then does not alert a second time).
PROBLEM_AT = {
    "answer_form": ("ask", _l("The clinic needs something from you"), True),
    "documents_form": ("add-docs-heading", _l("Add documents"), True),
    "cancel_form": ("cancel-heading", _l("Cancel your request"), False),
    "message_form": ("messages", _l("Messages with the clinic"), True),
    "consent_form": ("your-data", _l("Your data"), False),
    "download_form": ("your-data", _l("Your data"), False),
    "erase_form": ("your-data", _l("Your data"), False),
    "address_form": ("your-address", _l("Your email address"), False),
}


def _problem_at(forms: dict[str, object]) -> tuple[str, object, bool] | None:
    for name, form in forms.items():
        if name in PROBLEM_AT and form is not None and getattr(form, "errors", None):
            return PROBLEM_AT[name]
    return None


def _render(consultation: ConsultationRequest, status: int = 200, **forms: object):
    problem = _problem_at(forms)  # only the forms just posted have messages
    forms.setdefault("documents_form", AddDocumentsForm(prefix="docs"))
    forms.setdefault("cancel_form", CancelForm(prefix="cancel"))
    ask = asks.open_ask(consultation)
    forms.setdefault("answer_form", AnswerForm(ask, prefix="answer") if ask else None)
    forms.setdefault("message_form", PatientMessageForm(prefix="msg"))
    forms.setdefault("consent_form", WithdrawConsentForm(prefix="consent"))
    forms.setdefault("download_form", DownloadDataForm(prefix="data"))
    forms.setdefault("erase_form", EraseDataForm(prefix="erase"))
    forms.setdefault("address_form", ChangeEmailForm(prefix="address"))
    if "thread" not in forms:
        forms["thread"] = messages.load_thread(consultation, for_staff=False)
    return render_template(
        "manage/manage.html",
        consultation=consultation,
        # A change refused (409: the request closed, the time gone): its reason is a message
        # above the page, not on a form; the title says so first all the same.
        refused=status >= 400,
        waiting=is_waiting(consultation),
        can_change=services.can_change(consultation),
        deadline=services.notice_deadline(consultation),
        appointment_passed=services.appointment_passed(consultation),
        read_only=is_read_only(consultation),
        link_expires=link_expires_at(consultation),
        ask=ask,
        # What the patient sent when the clinic asked, once the ask is answered: the form
        # above goes, and this keeps it in view (read only).
        answered_asks=asks.answered_asks(consultation),
        erasure=rights.open_erasure(consultation),
        # The address the emails go to, and a new one waiting for its confirmation link.
        address=consultation.patient.writable_address,
        pending_notice=_pending_notice(consultation),
        # Until the clinic has reached them, an urgent patient reads their advice again here.
        advice=triage.advice(consultation.red_flags, consultation.withdrawn_red_flags)
        if consultation.is_open and consultation.acknowledged_at is None
        else None,
        problem=problem,
        **forms,
    ), status


def _address_notice(change: EmailChange, old: str | None) -> str:
    """What the page says of a new address waiting for its confirmation link."""
    return _(
        "We sent a link to %(new)s. Your email address stays %(old)s until you open it. The "
        "link works until %(when)s.",
        new=change.new_email,
        old=old,
        when=clinic_dt(change.expires_at, "when", zone=True),
    )


def _pending_notice(consultation: ConsultationRequest) -> str | None:
    """The notice of the new address waiting for its link, unless the message just flashed
    says it: right after the patient asked, the page opens there with that message (moved
    under the section's heading and focused), and the same words twice read as two things."""
    change = addresses.pending_change(consultation)
    if change is None:
        return None
    notice = _address_notice(change, consultation.patient.writable_address)
    return None if notice in get_flashed_messages() else notice


@bp.get("/<reference>")
@limiter.limit(_limit)
def view(reference: str):
    consultation = _load(reference)
    thread = messages.load_thread(consultation, for_staff=False)
    page = _render(consultation, thread=thread)
    # The page shows the thread: the clinic's messages on it are read (and that is audited).
    messages.record_thread_read(consultation, thread, None)
    return page


# "Add documents" the database failed to store: nothing was kept, the files to choose again.
DOCUMENTS_NOT_ADDED = _l(
    "Our system had a problem, so your documents were not added. Please choose them again in "
    "a few minutes."
)
# ... or failed to confirm it stored them (its answer to the commit lost, and no way to ask).
DOCUMENTS_NOT_CONFIRMED = _l(
    "Our system had a problem, so we cannot confirm that your documents were added. Please "
    "check your list of documents in a few minutes, and add them again if they are not there."
)
# The answer to the clinic's questions the database failed to store: nothing kept, the files to
# choose again (what was typed is still on the form). When it cannot say: ``NOT_CONFIRMED``.
ANSWER_NOT_SENT = _l(
    "Our system had a problem, so what you sent was not received. Please choose your files "
    "again and send it all in a few minutes."
)
# ... and one with no file (found not stored by the form's one-time key).
ANSWER_NOT_SENT_NO_FILE = _l(
    "Our system had a problem, so your answer was not received. It is still below: please "
    "send it again in a few minutes."
)
# A message with a file the database failed to store: nothing kept, the file to choose again.
MESSAGE_NOT_SENT = _l(
    "Our system had a problem, so your message was not sent. It is still below: please choose "
    "your file again and send it in a few minutes."
)
# ... and one with no file (found not stored by the form's one-time key).
MESSAGE_NOT_SENT_NO_FILE = _l(
    "Our system had a problem, so your message was not sent. It is still below: please send it "
    "again in a few minutes."
)


def _refuse_files(form: AddDocumentsForm | AnswerForm, failure: DocumentRejected | OSError) -> int:
    """A form's files the service refused (it stores all or none): the message beside the
    file it is about, each other one chosen again (``refuse_upload``). The status to answer
    with: 422 for a file refused, 503 for our storage failing."""
    index = refused_upload(failure)
    if isinstance(failure, DocumentRejected):
        form.refuse_upload(index, str(failure), ours=isinstance(failure, ScannerDown))
        return 422
    form.refuse_upload(
        index,
        _("We could not store your documents just now. Please try again later.")
        if index is None
        else _("We could not store this file just now. Please try again."),
        ours=True,
    )
    return 503


def _not_stored(
    form: AddDocumentsForm | AnswerForm | PatientMessageForm,
    failure: OperationalError | InterfaceError,
    not_added: str,
    not_confirmed: str,
) -> int:
    """A form's change the database failed to store (the service stores it and its files
    all or none, and found it not stored after all, or could not say: ``stored_after_all``).
    Not stored, any files were deleted: ``not_added`` above the form, each file chosen again
    (``FILE_NOT_ADDED``); else they are kept and the change may be there: ``not_confirmed``.
    What was typed stays. The status to answer with: 503."""
    db.session.rollback()
    if stored_after_all(failure) is False:
        form.refuse_upload(None, not_added, reason=str(FILE_NOT_ADDED))
    else:
        form.form_errors.append(not_confirmed)
    return 503


@bp.post("/<reference>/documents")
@limiter.limit(_limit)
def add_documents(reference: str):
    consultation = _load(reference)
    form = AddDocumentsForm(prefix="docs")
    if not form.validate_on_submit():
        return _render(consultation, 422, documents_form=form)
    try:
        count = services.add_documents(consultation, form.uploads())
    except services.NoRoom as exc:
        if exc.room:  # fewer files fit: the form again, with what was typed
            form.refuse_upload(None, str(exc))
            return _render(consultation, 422, documents_form=form)
        flash(str(exc), "danger")  # full: the page offers no form to show it in
        return _render(consultation, 409)
    except services.ManageError as exc:
        # Shown above the page: a closed request's page has no documents form to show it in.
        flash(str(exc), "danger")
        return _render(consultation, 409)
    except (DocumentRejected, OSError) as exc:
        return _render(consultation, _refuse_files(form, exc), documents_form=form)
    except (OperationalError, InterfaceError) as exc:  # the database: the form again, to retry
        status = _not_stored(form, exc, str(DOCUMENTS_NOT_ADDED), str(DOCUMENTS_NOT_CONFIRMED))
        return _render(consultation, status, documents_form=form)
    flash(
        ngettext(
            "Thank you: %(num)d document added.", "Thank you: %(num)d documents added.", count
        ),
        "success",
    )
    return redirect(_here(reference))


@bp.post("/<reference>/answer")
@limiter.limit(_limit)
def answer(reference: str):
    """The patient sends what the clinic asked for (files and/or an answer)."""
    consultation = _load(reference)
    ask = asks.open_ask(consultation)
    if ask is None:
        if asks.answered_with(consultation.id, request.form.get("answer-submission_key", "")):
            # This page was sent already (a double click, Back and send again): received.
            flash(_("Thank you: the clinic has received what you sent."), "success")
        else:
            flash(_("We are not waiting for anything from you at the moment."), "info")
        return redirect(_here(reference))
    form = AnswerForm(ask, prefix="answer")
    if not form.validate_on_submit():
        return _render(consultation, 422, answer_form=form)
    try:
        asks.answer_ask(
            consultation,
            form.answered_ask,
            form.uploads(),
            form.answer.data,
            key=form.submission_key.data,
        )
    except asks.AskChanged as exc:
        # The page shown again with the ask open now (its items and question), what was
        # typed kept; files must be chosen again for the items asked now.
        if (now_open := asks.open_ask(consultation)) is None:  # withdrawn this instant
            return redirect(_here(reference))
        form = AnswerForm(now_open, prefix="answer")
        form.form_errors.append(str(exc))
        return _render(consultation, 409, answer_form=form)
    except asks.AskError as exc:  # about no one file: above the form, each file chosen again
        form.refuse_upload(None, str(exc))
        return _render(consultation, 422, answer_form=form)
    except (DocumentRejected, OSError) as exc:
        return _render(consultation, _refuse_files(form, exc), answer_form=form)
    except (OperationalError, InterfaceError) as exc:  # the database: what was typed stays here
        not_sent = ANSWER_NOT_SENT if form.uploads() else ANSWER_NOT_SENT_NO_FILE
        status = _not_stored(form, exc, str(not_sent), str(NOT_CONFIRMED))
        return _render(consultation, status, answer_form=form)
    flash(_("Thank you: the clinic has received what you sent."), "success")
    return redirect(_here(reference))


@bp.post("/<reference>/cancel")
@limiter.limit(_limit)
def cancel(reference: str):
    consultation = _load(reference)
    form = CancelForm(prefix="cancel")
    if not form.validate_on_submit():
        return _render(consultation, 422, cancel_form=form)
    try:
        services.cancel(consultation, (form.reason.data or "").strip() or None)
    except services.ManageError as exc:
        flash(str(exc), "danger")
        return _render(consultation, 409)
    flash(_("Your request is cancelled. We have sent you a confirmation."), "success")
    return redirect(_here(reference))


@bp.route("/<reference>/reschedule", methods=["GET", "POST"])
@limiter.limit(_limit)
def reschedule(reference: str):
    consultation = _load(reference)
    appointment = consultation.appointment
    if appointment is None or appointment.appointment_type is None:
        abort(404)
    if is_read_only(consultation) or not appointment.active:
        # Closed, or its time given up (the Back button, the history): the request's page
        # says how it stands; this one would show the old time as the current one.
        return redirect(_here(reference))
    form = RescheduleForm()
    problem = None
    if request.method == "POST":
        if not form.validate_on_submit():
            problem = _("Please choose one of the times.")
        else:
            specialist_id, location_id, starts_at = form.slot_key()
            choice = SlotChoice(
                appointment.appointment_type_id, specialist_id, location_id, starts_at
            )
            try:
                services.reschedule(consultation, choice)
            except SlotTaken:
                problem = _("Sorry, that time was just taken. Please choose another.")
            except SlotUnavailable:
                problem = _("Sorry, that time is not available for booking. Please choose another.")
            except services.ManageError as exc:
                problem = str(exc)
            else:
                flash(_("Your new time is saved. We have sent you a confirmation."), "success")
                return redirect(_here(reference))
    shown = picker(request.args, appointment.appointment_type, moving=appointment)
    # One day's times at a time, as on the request's picker (?day=, else the first day).
    wanted = date_arg(request.args.get("day"))
    day, times = next(
        (entry for entry in shown.days if entry[0] == wanted),
        shown.days[0] if shown.days else (None, []),
    )
    page = render_template(
        "manage/reschedule.html",
        consultation=consultation,
        form=form,
        problem=problem,
        can_change=services.can_change(consultation),
        specialists=shown.specialists,
        specialist=shown.specialist,
        locations=shown.locations,
        location=shown.location,
        remote=shown.remote,
        days=[(each, len(views)) for each, views in shown.days],
        day=day,
        times=times,
        start=shown.start,
        later=shown.end,
        earlier=shown.earlier,
    )
    return page, (409 if problem else 200)


@bp.post("/<reference>/waitlist")
@limiter.limit(_limit)
def waitlist(reference: str) -> Response:
    consultation = _load(reference)
    if not FlaskForm().validate_on_submit():
        abort(400)
    if request.form.get("join") == "1":
        try:
            join_waitlist(consultation)
        except NoContactConsent:
            flash(
                _(
                    "Earlier times are offered by email, and you withdrew your consent to be "
                    "contacted. Please call the clinic to ask for an earlier time%(phone)s.",
                    phone=clinic_phone_after(),
                ),
                "danger",
            )
        except WaitlistLocked:  # the notice began while the page was open
            flash(
                _(
                    "Your appointment is less than %(hours)d hours away, so it can no longer be "
                    "changed online. Please call the clinic%(phone)s.",
                    hours=clinic_settings().cancel_notice_hours,
                    phone=clinic_phone_after(),
                ),
                "danger",
            )
        except ValueError:
            flash(_("Only a request with a time can wait for an earlier one."), "danger")
        else:
            flash(_("We will email you if an earlier time becomes free."), "success")
    else:
        leave_waitlist(consultation)
        flash(_("You will no longer be told about earlier times."), "success")
    return redirect(_here(reference))


@bp.route("/<reference>/offers/<offer_token>", methods=["GET", "POST"])
@limiter.limit(_limit)
def offer(reference: str, offer_token: str):
    consultation = _load(reference)
    slot_offer = find_offer(offer_token)
    if slot_offer is None:
        abort(404)
    # Back on the page after taking it (the back button, the email's link again, another
    # tab a moment ago): theirs.
    offered = offered_to(slot_offer, consultation)
    taken = slot_offer.claimed_by_request_id == consultation.id or (
        not offered and taken_by(slot_offer, consultation)
    )
    # Not (or no longer) for this request: its appointment moved to an earlier time or to
    # another kind of visit since the email, it left the waiting list or it was closed. Only
    # the request's own patient reaches this page (the private link's session), so it says so
    # instead of "page not found".
    changed = not taken and not offered
    gone = slot_offer.claimed_by_request_id is not None and not taken and not changed
    expired = not gone and not taken and not changed and offer_expired(slot_offer)
    # Taking the offer moves the appointment: not within the change and cancel notice.
    locked = (
        not gone
        and not taken
        and not changed
        and not expired
        and not services.can_change(consultation)
    )
    unavailable = False
    if request.method == "GET" and not (gone or taken or changed or expired or locked):
        # Taken meanwhile by a booking that was no offer (a patient who called, a colleague):
        # said before the patient presses the button, not after.
        why = still_bookable(slot_offer, consultation)
        gone, unavailable = why == "taken", why == "unavailable"
    if request.method == "POST" and not locked and not taken and not changed:
        if not FlaskForm().validate_on_submit():
            abort(400)
        try:
            accept_offer(slot_offer, consultation)
        except OfferAlreadyYours:  # a double click: the first one took it
            flash(_("The earlier time is yours. We have sent you a confirmation."), "success")
            return redirect(_here(reference))
        except OfferLocked:  # the notice began while the page was open
            locked = True
        except OfferUnavailable:
            unavailable = True
        except OfferExpired:
            expired = True
        except OfferGone:
            gone = True
        else:
            flash(_("The earlier time is yours. We have sent you a confirmation."), "success")
            return redirect(_here(reference))
    page = render_template(
        "manage/offer.html",
        consultation=consultation,
        offer=slot_offer,
        gone=gone,
        taken=taken,
        unavailable=unavailable,
        expired=expired,
        locked=locked,
        changed=changed,
        notice_hours=clinic_settings().cancel_notice_hours,
        open_until=offer_open_until(slot_offer),
    )
    refused = gone or unavailable or expired or locked or changed
    return page, (409 if refused and request.method == "POST" else 200)


@bp.post("/<reference>/messages")
@limiter.limit(_limit)
def send_message(reference: str):
    """The patient writes to the clinic (a reply, or a document it asked for)."""
    consultation = _load(reference)
    form = PatientMessageForm(prefix="msg")
    if not form.validate_on_submit():
        return _render(consultation, 422, message_form=form)
    try:
        messages.send_patient_message(
            consultation, form.body.data, form.upload(), key=form.submission_key.data
        )
    except messages.MessageRefused as exc:
        form.form_errors.append(str(exc))
        return _render(consultation, 409, message_form=form)
    except DocumentRejected as exc:
        form.document.form.file.errors = [*form.document.form.file.errors, str(exc)]
        return _render(consultation, 422, message_form=form)
    except OSError:
        form.form_errors.append(
            _("We could not store your document just now. Please try again later.")
        )
        return _render(consultation, 503, message_form=form)
    except (OperationalError, InterfaceError) as exc:  # the database: the message stays here
        not_sent = MESSAGE_NOT_SENT if form.upload() is not None else MESSAGE_NOT_SENT_NO_FILE
        status = _not_stored(form, exc, str(not_sent), str(NOT_CONFIRMED))
        return _render(consultation, status, message_form=form)
    flash(_("Thank you: your message is sent to the clinic."), "success")
    return redirect(_here(reference) + "#messages")


# --- the patient's own data-protection rights ------------------------------------------------


def _export_limit() -> str:
    return current_app.config["PATIENT_EXPORT_RATE_LIMIT"]


def _export_key() -> str:
    # Per request, whatever the address: the date of birth cannot be guessed from many.
    return "patient-export:" + str((request.view_args or {}).get("reference", ""))


def _counted_export(response: Response) -> bool:
    """Counted: a copy sent, or a wrong date of birth. Not a post without the request's
    cookie (403): the reference is no secret (it is in emails' subjects), and anyone's
    posts would use up the patient's own downloads."""
    return response.status_code in (200, 422)


@bp.post("/<reference>/consent")
@limiter.limit(_limit)
def withdraw_consent(reference: str):
    consultation = _load(reference, closed_too=True)
    form = WithdrawConsentForm(prefix="consent")
    if not form.validate_on_submit():
        return _render(consultation, 422, consent_form=form)
    rights.withdraw_contact_consent(consultation)
    flash(_("We will no longer contact you for reminders, earlier times or follow-ups."), "success")
    return redirect(_here(reference) + "#your-data")


@bp.post("/<reference>/data")
@limiter.limit(_limit)
@limiter.limit(_export_limit, key_func=_export_key, deduct_when=_counted_export)
def download_data(reference: str):
    """A copy of the patient's own data, as the ZIP archive an admin would make."""
    consultation = _load(reference, closed_too=True)
    form = DownloadDataForm(prefix="data")
    if not form.validate_on_submit():
        return _render(consultation, 422, download_form=form)
    try:
        archive = rights.export_own_data(consultation, form.date_of_birth.data)
    except rights.RightsError as exc:
        form.date_of_birth.errors = [*form.date_of_birth.errors, str(exc)]
        return _render(consultation, 422, download_form=form)
    response = Response(
        stream_zip(current_app._get_current_object(), archive),  # type: ignore[attr-defined]
        mimetype="application/zip",
    )
    response.headers["Content-Disposition"] = f'attachment; filename="{archive.filename}"'
    response.headers["Cache-Control"] = "no-store, private"
    return response


@bp.post("/<reference>/erasure")
@limiter.limit(_limit)
def request_erasure(reference: str):
    consultation = _load(reference, closed_too=True)
    form = EraseDataForm(prefix="erase")
    if not form.validate_on_submit():
        return _render(consultation, 422, erase_form=form)
    rights.request_erasure(consultation)
    flash(
        _("We have received your request to erase your data. We will answer within one month."),
        "success",
    )
    return redirect(_here(reference) + "#your-data")


# Confirmation links emailed per request, and per new address typed: a private link (one
# forwarded, or read over a shoulder) cannot make the clinic email address after address,
# nor anyone flood one inbox from request after request. Counted only when a link went.
def _email_change_limit() -> str:
    return current_app.config["EMAIL_CHANGE_RATE_LIMIT"]


def _email_change_sent(response: Response) -> bool:
    return response.status_code in (302, 303)  # the page again (a refusal is a 422)


def _too_many_email_changes() -> str:
    return _(
        "We have sent several confirmation links recently. Please use the one in your "
        "inbox, or wait an hour and ask again."
    )


@bp.post("/<reference>/email")
@limiter.limit(_limit)
@limiter.limit(
    _email_change_limit,
    key_func=lambda: "email-change:" + (request.view_args or {}).get("reference", ""),
    deduct_when=_email_change_sent,
    error_message=_too_many_email_changes,
)
@limiter.limit(
    _email_change_limit,
    key_func=lambda: address_key("email-change-to", request.form.get("address-email") or ""),
    deduct_when=_email_change_sent,
    error_message=_too_many_email_changes,
)
def change_email(reference: str):
    """The patient asks for a new email address: a confirmation link goes to it, and the
    address changes only when it is opened (``confirm_address``). A closed request's page
    offers it too, while it opens: follow-up questionnaires may still go to the address."""
    consultation = _load(reference, closed_too=True)
    form = ChangeEmailForm(prefix="address")
    if not form.validate_on_submit():
        return _render(consultation, 422, address_form=form)
    old = consultation.patient.email
    try:
        change = addresses.request_email_change(consultation, form.email.data)
    except addresses.EmailChangeError as exc:
        form.email.errors = [*form.email.errors, str(exc)]
        return _render(consultation, 422, address_form=form)
    flash(_address_notice(change, old), "success")
    return redirect(_here(reference) + "#your-address")


# What the confirmation link's page answers for each state (``addresses.link_state``).
_CONFIRM_STATUS = {"open": 200, "used": 200, "expired": 410, "gone": 404}


# Not ``token_in_url``: its page posts a form to itself, and under that ``no-referrer``
# Chromium sends the post with "Origin: null", which ``check_same_origin`` refuses (the
# change could never be confirmed in a browser). The site's ``same-origin`` policy sends the
# address to this site only, which has it already (the access log keeps no referrer).
@bp.route("/confirm-address/<token>", methods=["GET", "POST"])
@limiter.limit(_limit)
def confirm_address(token: str):
    """The link in the email to the new address: a GET shows what pressing the button will
    do and changes nothing (mail scanners open links); the POST makes the change. It needs
    no private-link cookie: the link itself proves the mailbox, and may be opened on
    another device."""
    if request.method == "POST":
        if not FlaskForm().validate_on_submit():
            abort(400)
        # Changed now, or a second click: the page of a used link says it is done.
        if addresses.confirm_email_change(token) in ("changed", "used"):
            return redirect(url_for("manage.confirm_address", token=token), 303)
    change = addresses.change_for_token(token)
    state = addresses.link_state(change)
    if change is None or state == "closed":  # as a private link to a page that is gone
        return _gone() if state == "closed" else _confirm_page("gone")
    consultation = db.get_or_404(ConsultationRequest, change.request_id)
    keep_request_language(consultation.locale)
    return _confirm_page(state, change, consultation.reference)


def _confirm_page(
    state: str, change: object = None, reference: str | None = None
) -> tuple[str, int]:
    page = render_template(
        "manage/confirm_address.html", state=state, change=change, reference=reference
    )
    return page, _CONFIRM_STATUS[state]
