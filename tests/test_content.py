"""Public information pages, the language switcher, Spanish, and search-engine basics."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from booking.extensions import db
from booking.notifications.models import OutboxEmail
from tests.factories import make_appointment_type, make_hours, make_location, make_staff
from tests.support import answer_red_flags, form_tokens, post_request, valid_answers

ROOT = Path(__file__).resolve().parent.parent
CATALOGUE = ROOT / "booking" / "translations" / "es" / "LC_MESSAGES" / "messages.po"
PUBLIC_PAGES = [
    "/",
    "/info/evaluation",
    "/info/conditions",
    "/info/treatments",
    "/info/prepare",
    "/request/start",
    "/request/time",
    "/privacy",
]
# Files only staff read: their strings may stay in English.
STAFF_ONLY = (
    "booking/staff/", "booking/accounts/", "booking/admin/", "booking/calendar/",
    "booking/insights/",
    "booking/audit/", "booking/templates/staff", "booking/templates/dashboard/",
    "booking/templates/admin/", "booking/templates/calendar/", "booking/templates/insights/",
    "booking/templates/email/_staff", "booking/templates/email/new_request_staff",
    "booking/templates/email/patient_action_staff",
    "booking/templates/email/callback_staff", "booking/templates/email/escalation_staff",
    "booking/templates/email/triage_raised_staff",
    "booking/templates/email/staff_password_reset", "booking/templates/dev/", "booking/cli.py",
    "booking/templates/email/staff_two_factor_reset", "booking/templates/email/staff_email_changed",
    "booking/dashboard/forms.py", "booking/dashboard/views.py", "booking/dashboard/export.py",
    "booking/dashboard/queries.py", "booking/dashboard/summary.py", "booking/privacy/",
    "booking/templates/privacy/_", "booking/templates/privacy/erasures",
    "booking/templates/privacy/find", "booking/templates/privacy/patient",
    "booking/templates/messages/_staff_thread", "booking/templates/messages/_timeline_entry",
    "booking/templates/email/message_waiting_staff", "booking/templates/email/followup_worse_staff",
    "booking/feedback/", "booking/templates/email/page_feedback_staff",
    "booking/outcomes/staff_views.py", "booking/outcomes/progress.py", "booking/outcomes/chart.py",
    "booking/outcomes/results.py", "booking/templates/outcomes/staff/",
    "booking/scheduling/closures.py", "booking/requests/withdrawals.py",
)  # fmt: skip
EMERGENCY = {"en": "Is it an emergency?", "es": "¿Es una urgencia?"}


@pytest.fixture
def app_settings(app_settings: dict[str, Any]) -> dict[str, Any]:
    app_settings.update(
        CLINIC_ADDRESS="Friedrichstraße 100, 10117 Berlin",
        CLINIC_PHONE="+49 30 1234567",
        CLINIC_OPENING_HOURS="Mon-Fri 8:00-17:00|Sat closed",
    )
    return app_settings


@pytest.mark.parametrize("path", PUBLIC_PAGES)
@pytest.mark.parametrize("lang", ["en", "es"])
def test_every_public_page_renders_in_both_languages_with_the_emergency_notice(
    client: FlaskClient, path: str, lang: str
) -> None:
    response = client.get(path, query_string={"lang": lang}, follow_redirects=True)
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert f'<html lang="{lang}">' in page
    assert EMERGENCY[lang] in page
    assert re.search(r'<meta name="description" content="[^"]{20,}">', page)
    assert re.search(r"<title>[^<]+</title>", page)


def spaced(page: str) -> str:
    """``page`` with CLDR's thin and narrow no-break spaces as plain ones."""
    return page.replace("\u2009", " ").replace("\u202f", " ")


def test_the_home_page_shows_the_clinic_and_leads_to_the_form(client: FlaskClient) -> None:
    page = spaced(client.get("/").get_data(as_text=True))
    for text in ("Friedrichstraße 100", "+49 30 1234567"):
        assert text in page
    # The opening hours as English readers write them (CLDR's range dash, 24-hour times).
    assert "<li>Mon \u2013 Fri 08:00 \u2013 17:00</li><li>Sat closed</li>" in page
    # The questions about urgent symptoms first; with no times offered, then the steps.
    assert 'href="/request/start"' in page
    assert answer_red_flags(client).headers["Location"] == "/request/steps/time"


def test_the_spanish_home_page_shows_the_opening_hours_in_spanish(
    app: Flask, client: FlaskClient
) -> None:
    page = spaced(client.get("/?lang=es").get_data(as_text=True))
    assert '<html lang="es">' in page
    assert "<li>lun \u2013 vie 8:00\u201317:00</li><li>sáb cerrado</li>" in page
    assert "Mon" not in page and "Sat" not in page


@pytest.mark.parametrize(
    ("setting", "english", "spanish"),
    [
        (
            "Mon-Fri 8:00-18:00|Sat 9:00-13:00|Sun closed",
            ["Mon \u2013 Fri 08:00 \u2013 18:00", "Sat 09:00 \u2013 13:00", "Sun closed"],
            ["lun \u2013 vie 8:00\u201318:00", "sáb 9:00\u201313:00", "dom {closed}"],
        ),
        # Days listed with commas, several hours, any case, a colon, a typographer's dash.
        (
            " mon-WED, Fri: 8:00-12:00, 13:30\u201317:00 | | Sat, sun closed ",
            [
                "Mon \u2013 Wed and Fri 08:00 \u2013 12:00 and 13:30 \u2013 17:00",
                "Sat and Sun closed",
            ],
            ["lun \u2013 mié y vie 8:00\u201312:00 y 13:30\u201317:00", "sáb y dom {closed}"],
        ),
        # Open round the clock, or into the night: an end at 24:00 (ISO 8601), midnight.
        (
            "Mon-Sun 00:00-24:00|Sat 18:00-24:00",
            ["Mon \u2013 Sun 00:00 \u2013 24:00", "Sat 18:00 \u2013 24:00"],
            ["lun \u2013 dom 0:00\u201324:00", "sáb 18:00\u201324:00"],
        ),
        ("", [], []),
    ],
)
def test_the_opening_hours_setting_reads_in_each_language(
    setting: str, english: list[str], spanish: list[str]
) -> None:
    from booking import create_app
    from booking.openinghours import opening_hours_text

    app = create_app({"SQLALCHEMY_DATABASE_URI": "sqlite://", "CLINIC_OPENING_HOURS": setting})
    with app.test_request_context():
        assert [spaced(line) for line in opening_hours_text("en")] == english
        assert [spaced(line) for line in opening_hours_text("es")] == [
            line.format(closed="cerrado") for line in spanish
        ]


@pytest.mark.parametrize(
    ("setting", "reason"),
    [
        ("Mon-Fri 8-18", '"Mon-Fri 8-18": "8-18" is not hours as H:MM-H:MM (24-hour), or "closed"'),
        ("Mon-Fri 8:00-18:00|Sat 9:00-1300", '"Sat 9:00-1300": "9:00-1300" is not hours'),
        ("Mon-Fry 8:00-18:00", '"Fry" is not a day'),
        ("Montag 8:00-18:00", '"Montag 8:00-18:00": expected days, then hours'),
        ("Mon-Fri", '"Mon-Fri": expected days, then hours'),
        ("Mon 18:00-8:00", "18:00-8:00 ends before it starts"),
        ("Mon 24:00-8:00", "24:00 is not a time of day"),  # an end, never a start
        ("Mon 8:00-24:30", "24:30 is not a time of day"),
        ("Mon 8:00-18:00 (lunch 12-13)", '"8:00-18:00 (lunch 12-13)" is not hours'),
    ],
)
def test_an_opening_hours_setting_that_cannot_be_read_stops_the_app(
    setting: str, reason: str
) -> None:
    from booking import create_app

    with pytest.raises(RuntimeError) as refused:
        create_app({"SQLALCHEMY_DATABASE_URI": "sqlite://", "CLINIC_OPENING_HOURS": setting})
    message = str(refused.value)
    assert message.startswith("CLINIC_OPENING_HOURS cannot be read: ")
    assert reason in message
    assert "Mon-Fri 8:00-18:00|Sat 9:00-13:00|Sun closed" in message  # what to write instead


def test_the_home_page_leads_to_the_time_picker_when_times_are_offered(
    app: Flask, client: FlaskClient
) -> None:
    with app.app_context():
        make_appointment_type()
        make_hours(make_staff("specialist", "w@example.com"), make_location())
    assert 'href="/request/start"' in client.get("/").get_data(as_text=True)
    assert answer_red_flags(client).headers["Location"] == "/request/time"


def test_the_language_choice_is_kept_and_the_browser_preference_is_the_default(
    client: FlaskClient,
) -> None:
    spanish_browser = {"Accept-Language": "es-ES,es;q=0.9"}
    assert '<html lang="es">' in client.get("/", headers=spanish_browser).get_data(as_text=True)
    client.get("/info/conditions?lang=en", headers=spanish_browser)
    # The choice wins over the browser's preference on the following pages.
    page = client.get("/info/treatments", headers=spanish_browser).get_data(as_text=True)
    assert '<html lang="en">' in page
    client.get("/?lang=es")
    page = client.get("/privacy").get_data(as_text=True)
    assert '<html lang="es">' in page and "Aviso de privacidad" in page
    # Unknown languages are ignored; staff pages stay in English.
    assert '<html lang="es">' in client.get("/?lang=xx").get_data(as_text=True)
    assert '<html lang="en">' in client.get("/staff/login").get_data(as_text=True)


def test_the_switcher_links_every_language(client: FlaskClient) -> None:
    page = client.get("/info/prepare").get_data(as_text=True)
    assert 'href="/info/prepare?lang=es" lang="es" hreflang="es"' in page
    assert 'href="/info/prepare?lang=en" lang="en" hreflang="en"' in page


def _patient_messages() -> set[tuple[str, str | None]]:
    keywords = {
        "_": None,
        "_l": None,
        "gettext": None,
        "lazy_gettext": None,
        "ngettext": (1, 2),
        "_p": ((1, "c"), 2),
        "pgettext": ((1, "c"), 2),
        "lazy_pgettext": ((1, "c"), 2),
    }
    method_map = [
        ("booking/**.py", "python"),
        ("booking/templates/**.html", "jinja2"),
        ("booking/templates/**.txt", "jinja2"),
    ]
    messages = set()
    for filename, _line, message, _comments, context in extract_from_dir(
        str(ROOT), method_map=method_map, keywords=keywords
    ):
        if not filename.startswith(STAFF_ONLY):
            messages.add((message[0] if isinstance(message, tuple) else message, context))
    return messages


def test_every_patient_string_has_a_spanish_translation() -> None:
    with CATALOGUE.open("rb") as po_file:
        catalogue = read_po(po_file)
    missing = []
    for msgid, context in sorted(_patient_messages(), key=lambda m: (m[0], m[1] or "")):
        entry = catalogue.get(msgid, context=context)
        translated = (
            entry is not None
            and not entry.fuzzy
            and (all(entry.string) if isinstance(entry.string, tuple) else bool(entry.string))
        )
        if not translated:
            missing.append(msgid)
    assert not missing, (
        f"{len(missing)} patient string(s) lack a Spanish translation (run `make messages`, "
        f"then translate booking/translations/es/LC_MESSAGES/messages.po): {missing[:10]}"
    )


def test_a_request_in_spanish_gets_spanish_emails_and_the_clinic_an_english_one(
    app: Flask, client: FlaskClient
) -> None:
    client.get("/?lang=es")
    tokens = form_tokens(client)
    response = post_request(client, valid_answers(), tokens=tokens)
    assert response.status_code == 303
    confirmation = client.get(response.headers["Location"]).get_data(as_text=True)
    assert '<html lang="es">' in confirmation
    with app.app_context():
        patient, staff = db.session.scalars(select(OutboxEmail).order_by(OutboxEmail.id)).all()
        from booking.requests.models import ConsultationRequest

        assert db.session.scalars(select(ConsultationRequest.locale)).one() == "es"
    assert patient.subject.startswith("Hemos recibido")
    assert "Estimad" in patient.body_text or "Hola" in patient.body_text
    assert staff.subject.startswith("New request")


def test_sitemap_lists_public_pages_only_and_private_pages_are_noindex(
    app: Flask, client: FlaskClient
) -> None:
    sitemap = client.get("/sitemap.xml")
    assert sitemap.mimetype == "application/xml"
    urls = re.findall(r"<loc>([^<]+)</loc>", sitemap.get_data(as_text=True))
    base = app.config["PUBLIC_BASE_URL"].rstrip("/")
    assert {u.removeprefix(base) for u in urls} == set(PUBLIC_PAGES)
    robots = client.get("/robots.txt").get_data(as_text=True)
    assert "Disallow: /staff/" in robots and "Disallow: /manage/" in robots
    assert f"Sitemap: {base}/sitemap.xml" in robots
    for path in ("/staff/login", "/staff/password/forgot"):
        assert 'name="robots" content="noindex' in client.get(path).get_data(as_text=True)
    response = post_request(client)
    confirmation = client.get(response.headers["Location"]).get_data(as_text=True)
    assert 'name="robots" content="noindex' in confirmation
    for path in PUBLIC_PAGES:
        page = client.get(path).get_data(as_text=True)
        assert 'name="robots" content="noindex' not in page, path


def test_an_unknown_information_page_is_not_found(client: FlaskClient) -> None:
    assert client.get("/info/../staff").status_code == 404
    assert client.get("/info/secrets").status_code == 404


def test_the_favicon_is_linked_on_every_page_and_answers_at_favicon_ico(
    client: FlaskClient,
) -> None:
    icon_link = '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">'
    for path in ("/", "/request/start", "/staff/login", "/no-such-page"):
        response = client.get(path)
        assert icon_link in response.get_data(as_text=True), path
        # The page may load it: images from this site.
        policy = dict(
            [*part.strip().split(" ", 1), ""][:2]
            for part in response.headers["Content-Security-Policy"].split(";")
        )
        assert "'self'" in policy["img-src"].split(), path

    # Asked for the old way (every browser does, for a page without the link), not a 404.
    response = client.get("/favicon.ico")
    assert response.status_code == 301
    assert response.headers["Location"] == "/static/favicon.svg"
    with client.get(response.headers["Location"]) as icon:
        assert icon.status_code == 200
        assert icon.mimetype == "image/svg+xml"
        assert icon.get_data().startswith(b"<svg ")


def test_a_spanish_reader_is_told_the_sources_are_in_english(client: FlaskClient) -> None:
    """The sources are English-language guidance: a Spanish reader following a link is told
    beforehand that it opens a page in English; an English reader is told nothing."""
    spanish = client.get("/info/treatments?lang=es").get_data(as_text=True)
    source = re.search(
        r'<li><a href="https://www\.nice\.org\.uk/[^"]*"[^>]*>[^<]*</a>([^<]*)</li>', spanish
    )
    assert source is not None and source.group(1) == " (en inglés)", source
    english = client.get("/info/treatments?lang=en").get_data(as_text=True)
    assert "(in English)" not in english and "(en inglés)" not in english
