"""The follow-up pages: the patient's questionnaire and stop page (from the private link in
the email), and, for staff, the clinic's outcomes, its settings and the registry export.

The link's token is traded for a cookie and the browser redirected, as for the manage link
(``booking.manage.views``): the token leaves the address bar, the history and any Referer at
once. The cookie holds for one questionnaire's pages only (``/follow-up/<id>/``): a patient
with two questionnaires open in two tabs (the 6-week one sent late, the 3-month one just
arrived) sends each tab's answers to its own questionnaire, never the other's.
"""

from __future__ import annotations

from flask import (
    Blueprint,
    abort,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy.exc import InterfaceError, OperationalError
from werkzeug.wrappers import Response

from booking.extensions import db, limiter
from booking.outcomes import services
from booking.outcomes.forms import StopForm, questionnaire_form
from booking.outcomes.labels import GPE_WORSE, point_label
from booking.outcomes.models import FollowUp
from booking.security import (
    cookie_values,
    keep_request_language,
    not_indexed,
    private_link_limit,
    set_link_cookie,
    token_in_url,
)

bp = Blueprint("outcomes", __name__)

COOKIE = "followup_access"
PATIENT_PATH = "/follow-up"
# The questionnaire's cookie lasts as long as its form's token (``WTF_CSRF_TIME_LIMIT``): a
# patient who takes a break before sending does not lose their answers. Renewed on every page.
COOKIE_MINUTES = 3 * 60


_limit = private_link_limit
bp.after_request(not_indexed)


def _gone(follow_up: FollowUp | None = None) -> tuple[str, int]:
    """The page of a questionnaire that can no longer be answered. One closed because staff
    corrected the treatment date (``FollowUp.superseded_at``) says so: the patient did
    nothing wrong, and the questionnaire comes again when it still applies. One closed early
    because a later one was sent (``services.replaced_by_later``: the date brought forward)
    points to the newest email."""
    date_changed = (
        follow_up is not None
        and follow_up.superseded_at is not None
        and follow_up.answered_at is None
    )
    replaced = follow_up is not None and services.replaced_by_later(follow_up)
    return render_template(
        "outcomes/link_gone.html", date_changed=date_changed, replaced=replaced
    ), 404


@bp.get(f"{PATIENT_PATH}/open/<token>")
@bp.get(f"{PATIENT_PATH}/open/<token>/stop")
@limiter.limit(_limit)
@token_in_url
def open_link(token: str) -> Response | tuple[str, int]:
    link = services.link_for_token(token)
    if link is None:
        return _gone()
    services.mark_opened(link)
    keep_request_language(link.follow_up.plan.request.locale)
    stop = request.path.endswith("/stop")
    fid = link.follow_up.id
    response = redirect(url_for(".stop" if stop else ".questionnaire", fid=fid), 303)
    return _keep_cookie(response, token, fid)


def _keep_cookie(response: Response, token: str, fid: int) -> Response:
    return set_link_cookie(response, COOKIE, token, f"{PATIENT_PATH}/{fid}/", COOKIE_MINUTES)


def _opened(fid: int) -> tuple[FollowUp, str]:
    """The questionnaire ``fid`` the browser's cookie opens (404 for any other), and the
    token that opens it: of every value sent under the cookie's name, not only the first
    (``booking.security.cookie_values``)."""
    opened = services.link_among(cookie_values(COOKIE), fid)
    if opened is None:
        abort(make_response(*_gone()))
    link, token = opened
    return link.follow_up, token


def _follow_up(fid: int) -> FollowUp:
    return _opened(fid)[0]


def _region(follow_up: FollowUp) -> str | None:
    history = follow_up.plan.request.history
    return history.spine_region if history is not None else None


ANSWERS_NOT_CONFIRMED = _l(
    "Our system had a problem, so we cannot confirm that your answers were saved. They are "
    "still below: please send them again in a few minutes."
)


@bp.route(f"{PATIENT_PATH}/<int:fid>/questionnaire", methods=["GET", "POST"])
@limiter.limit(_limit)
def questionnaire(fid: int) -> Response | str | tuple[str, int]:
    follow_up, token = _opened(fid)
    if follow_up.answered_at is not None:
        return _thanks(follow_up, already=True)
    if not services.can_answer(follow_up):
        return _gone(follow_up)
    region = _region(follow_up)
    form = questionnaire_form(region)()
    valid = form.validate_on_submit()
    # Too many sections skipped to count: said once; sent as it is if the patient sends again
    # (the page then carries "send_anyway").
    unscored = form.unscorable() if valid and request.form.get("send_anyway") != "1" else []
    failed = False
    if valid and not unscored:
        try:
            services.answer_followup(follow_up, form.answers())
        except (OperationalError, InterfaceError):
            # The database failed, or its answer was lost after it committed: the answers
            # are shown again (the bare 503 page lost them), and sending again is safe.
            db.session.rollback()
            follow_up = _follow_up(fid)
            form.form_errors.append(str(ANSWERS_NOT_CONFIRMED))
            failed = True
        except services.AlreadyAnswered:
            db.session.rollback()
            follow_up = _follow_up(fid)
            if follow_up.answered_at is None:  # closed meanwhile (stopped, expired)
                return _gone(follow_up)
            return _thanks(follow_up, already=True)
        else:
            return redirect(url_for(".thanks", fid=fid), 303)
    posted = request.method == "POST" and not unscored
    status = 503 if failed else 422 if posted else 200
    parts = [(instrument, form.section_fields(instrument)) for instrument in form.asked]
    page = render_template(
        "outcomes/questionnaire.html",
        form=form,
        point=point_label(follow_up.point),
        after_procedure=follow_up.plan.procedure_date is not None,
        unscored=unscored,
        parts=parts,
        pain_fields=form.pain_fields(),
        # In the page's order, for the error summary.
        fields=[
            *form.pain_fields(),
            *(field for _instrument, fields in parts for field in fields),
            form.gpe,
            form.satisfaction,
        ],
    )
    return _keep_cookie(make_response(page, status), token, fid)


def _thanks(follow_up: FollowUp | None, *, already: bool) -> str:
    # A patient who said they are much worse reads what to do now (the clinic was told),
    # whenever they come back to the page.
    worse = follow_up is not None and follow_up.gpe in GPE_WORSE
    return render_template("outcomes/thanks.html", already=already, worse=worse)


@bp.get(f"{PATIENT_PATH}/<int:fid>/thanks")
def thanks(fid: int) -> str | tuple[str, int]:
    """After sending: only for a questionnaire answered (another address is no page)."""
    follow_up = _follow_up(fid)
    if follow_up.answered_at is None:
        return _gone(follow_up)
    return _thanks(follow_up, already=False)


@bp.route(f"{PATIENT_PATH}/<int:fid>/stop", methods=["GET", "POST"])
@limiter.limit(_limit)
def stop(fid: int) -> Response | str:
    follow_up = _follow_up(fid)
    form = StopForm()
    stopped = follow_up.plan.followups_stopped_at is not None
    if not stopped and form.validate_on_submit():
        services.stop_followups(follow_up)
        flash(_("Done: you will receive no more questionnaires from us."), "success")
        return redirect(url_for(".stop", fid=fid), 303)
    # "The one open now closes" only while there is one: not once it is answered or expired.
    open_now = not stopped and services.can_answer(follow_up)
    return render_template("outcomes/stop.html", form=form, stopped=stopped, open_now=open_now)
