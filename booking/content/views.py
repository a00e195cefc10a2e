"""The public information pages: home, the evaluation, conditions, treatments, preparing,
plus the sitemap and robots.txt. The texts live in templates/content/, editable without code.
"""

from __future__ import annotations

from flask import Blueprint, Response, abort, render_template, url_for

from booking.urlargs import public_url

bp = Blueprint("content", __name__)

PAGES = ("evaluation", "conditions", "treatments", "prepare")


def _start_url() -> str:
    """Where "Request an evaluation" leads: the questions about urgent symptoms, always first
    (then the time picker when the clinic offers times, then the form)."""
    return url_for("patients.red_flags")


@bp.get("/")
def home() -> str:
    return render_template("content/home.html", start_url=_start_url())


@bp.get("/info/<slug>")
def page(slug: str) -> str:
    if slug not in PAGES:
        abort(404)
    return render_template(f"content/{slug}.html", start_url=_start_url())


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
