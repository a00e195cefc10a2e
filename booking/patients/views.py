"""The patient's pages: the request form, its confirmation and the privacy notice."""

from __future__ import annotations

import logging

from flask import Blueprint, redirect, render_template, session, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from werkzeug.wrappers import Response

from booking.documents.storage import DocumentRejected
from booking.patients import history
from booking.patients.forms import RequestForm
from booking.patients.services import find_by_reference, submit_request

log = logging.getLogger(__name__)

bp = Blueprint("patients", __name__)

SUBMITTED_KEY = "submitted_reference"


def _render_form(
    form: RequestForm, status: int = 200, problem: str | None = None
) -> tuple[str, int]:
    """The form page; ``problem`` is a failure on our side, shown apart from the patient's
    corrections so it does not read as something they got wrong."""
    page = render_template(
        "patients/request_form.html", form=form, history=history, problem=problem
    )
    return page, status


@bp.get("/")
@bp.get("/request")
def request_form() -> tuple[str, int]:
    return _render_form(RequestForm())


@bp.post("/request")
def submit() -> Response | tuple[str, int]:
    form = RequestForm()
    if not form.validate_on_submit():
        return _render_form(form, 422)
    try:
        consultation = submit_request(form.to_submission(str(get_locale() or "en")))
    except DocumentRejected as exc:
        form.form_errors.append(str(exc))
        return _render_form(form, 422)
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
