"""The public information pages: home, the evaluation, conditions, treatments, preparing,
plus the sitemap, robots.txt and /favicon.ico. The texts live in templates/content/, editable
without code; who wrote and checked each page, when and against what, in ``reviews.py``. Each
page ends with a small "was this page useful / report a problem" form that reaches the clinic.
"""

from __future__ import annotations

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    url_for,
)
from flask_babel import get_locale
from flask_babel import gettext as _

from booking.content.forms import PageFeedbackForm
from booking.content.reviews import REVIEWS
from booking.extensions import limiter
from booking.feedback.services import submit_feedback
from booking.outcomes.results import public_figure
from booking.urlargs import public_url

bp = Blueprint("content", __name__)

PAGES = ("evaluation", "conditions", "treatments", "prepare")


def _start_url() -> str:
    """Where "Request an evaluation" leads: the questions about urgent symptoms, always first
    (then the time picker when the clinic offers times, then the form)."""
    return url_for("patients.red_flags")


def _render(slug: str, form: PageFeedbackForm | None = None) -> str:
    template = "content/home.html" if slug == "home" else f"content/{slug}.html"
    return render_template(
        template,
        start_url=_start_url(),
        slug=slug,
        review=REVIEWS[slug],
        author=current_app.config["CONTENT_AUTHOR"],
        reviewer=current_app.config["CONTENT_REVIEWER"],
        feedback_form=form or PageFeedbackForm(formdata=None),
        # The clinic's own results, when an admin switched them on (booking.outcomes.results).
        public_figure=public_figure() if slug == "treatments" else None,
    )


@bp.get("/")
def home() -> str:
    return _render("home")


@bp.get("/info/<slug>")
def page(slug: str) -> str:
    if slug not in PAGES:
        abort(404)
    return _render(slug)


@bp.post("/info/<slug>/feedback")
@limiter.limit(lambda: current_app.config["FEEDBACK_RATE_LIMIT"])
def feedback(slug: str) -> Response | tuple[str, int]:
    """A reader's "was this page useful / report a problem": stored for the clinic's admins."""
    if slug not in REVIEWS:
        abort(404)
    form = PageFeedbackForm()
    if form.validate_on_submit():
        useful = {"yes": True, "no": False}.get(form.useful.data or "")
        if useful is not None or (form.comment.data or "").strip():
            submit_feedback(
                page=slug,
                useful=useful,
                comment=form.comment.data or "",
                locale=str(get_locale() or "en"),
            )
            flash(_("Thank you. Your feedback was sent to the clinic."), "success")
            target = url_for("content.home") if slug == "home" else url_for(".page", slug=slug)
            return redirect(target + "#feedback-heading", 303)  # type: ignore[return-value]
        form.useful.errors = [_("Please answer the question or write a comment.")]
    return _render(slug, form), 400


def public_urls() -> list[str]:
    """Every public page (never staff, manage-link or confirmation pages)."""
    paths = [
        url_for("content.home"),
        *(url_for("content.page", slug=slug) for slug in PAGES),
        url_for("patients.red_flags"),
        url_for("patients.pick_time"),
        url_for("patients.privacy"),
    ]
    return [public_url(path) for path in paths]


@bp.get("/sitemap.xml")
def sitemap() -> Response:
    body = render_template("content/sitemap.xml", urls=public_urls())
    return Response(body, mimetype="application/xml")


@bp.get("/favicon.ico")
def favicon() -> Response:
    """Browsers and crawlers ask for /favicon.ico whatever the page links; base.html links
    the SVG, and this sends anyone asking the old way there instead of a 404 on each visit."""
    return redirect(url_for("static", filename="favicon.svg"), 301)


@bp.get("/robots.txt")
def robots() -> Response:
    body = (
        "User-agent: *\n"
        "Disallow: /staff/\n"
        "Disallow: /manage/\n"
        "Disallow: /request/submitted\n"
        "Disallow: /dev/\n"
        f"Sitemap: {public_url('/sitemap.xml')}\n"
    )
    return Response(body, mimetype="text/plain")
