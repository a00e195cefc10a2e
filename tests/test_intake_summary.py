"""The intake summary for the consultation: one staff page per request and the same page as a
PDF made on the server. What it shows, who may open it, the audit of each look, its print
stylesheet, and a PDF renderer that fetches nothing from the network."""

from __future__ import annotations

import io
import re
import secrets
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from pypdf import PdfReader
from sqlalchemy import select
from werkzeug.http import parse_options_header

from booking.audit.models import ACCESS_REFUSED, AuditEvent
from booking.dashboard import services as workflow
from booking.extensions import db
from booking.patients.services import CallbackSubmission, request_callback
from booking.requests import triage
from booking.requests.models import ConsultationRequest
from booking.scheduling.models import AppointmentType
from tests.factories import (
    book_first_open_time,
    confirm_at,
    make_request,
    make_staff,
    staff_user,
)
from tests.support import AuthActions, Clinic, Staff, pdf_bytes

STAFF_IP = "203.0.113.9"
NOTE = "Discussed on the phone: MRI CD to be brought to the appointment."
# The red flags of the request below: an urgent one (fever) and a risk factor alone.
FEVER = "Do you have a fever, or feel generally unwell, along with the pain?"
CANCER = "Have you ever had cancer?"


@pytest.fixture
def staff_client(auth: AuthActions, staff: Staff) -> FlaskClient:
    """A browser signed in as the coordinator, calling from a known address."""
    return auth.new_client("coordinator", REMOTE_ADDR=STAFF_IP)


@pytest.fixture
def reference(app: Flask, staff: Staff) -> str:
    """A request with red flags, the ODI scored (50%, "severe disability"), two documents and
    a staff note."""
    with app.app_context():
        consultation = make_request(
            documents=2,
            red_flags={"fever", "cancer_history"},
            full_name="Erika Mustermann",
            medications="Ibuprofen 400 mg",
            treatments=["physiotherapy", "injections"],
            imaging=["mri", "xray"],
            imaging_when="March 2026",
        )
        workflow.add_note(consultation, staff_user(staff.coordinator.email), NOTE)
        return consultation.reference


def summary_url(reference: str, pdf: bool = False) -> str:
    return f"/staff/requests/{reference}/summary" + (".pdf" if pdf else "")


def text_of(html: str) -> str:
    """The page's words, without markup, whitespace folded."""
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def summary_part(html: str) -> str:
    """The summary itself: the <article>, without the staff menu around it."""
    start, end = html.index("<article"), html.index("</article>")
    return html[start:end]


def audit_rows(app: Flask, *actions: str) -> list[AuditEvent]:
    with app.app_context():
        rows = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action.in_(actions)).order_by(AuditEvent.id)
        ).all()
        db.session.expunge_all()
        return list(rows)


def pdf_text(body: bytes) -> str:
    reader = PdfReader(io.BytesIO(body))
    return " ".join(" ".join(page.extract_text() or "" for page in reader.pages).split())


# --- the page -------------------------------------------------------------------------------


def test_the_summary_shows_the_intake(staff_client: FlaskClient, reference: str) -> None:
    response = staff_client.get(summary_url(reference))
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    text = text_of(summary_part(html))

    # Who: name, date of birth and age, contact, language.
    assert "Erika Mustermann" in text and reference in text
    assert "17 May 1970 (age " in text
    assert "+49 30 901820" in text and "erika.mustermann@example.com" in text
    assert "Language English (en)" in text
    # Red flags, each with its pathway, and the triage result.
    assert f"{FEVER} urgent" in text
    assert f"{CANCER} to review" in text
    assert "Triage: URGENT" in text
    # Pain scores of the region (lower back: back and leg) and the ODI with its answers.
    assert "Back pain (0-10) now 5, at worst 8" in text
    assert "Leg pain (0-10) now 4, at worst 7" in text
    assert "Neck pain" not in text  # not the patient's region
    assert "Oswestry Disability Index" in text
    assert "Score 50.0% · Severe limitation" in text
    assert "20 of 40 points; 8 of 10 sections answered" in text
    assert text.count("skipped") == 2  # the two sections left unanswered
    # History, treatment so far, imaging.
    assert "Ibuprofen 400 mg" in text
    assert "Treatment so far Physiotherapy, Injections" in text
    assert "Imaging MRI, X-ray (March 2026)" in text
    # Documents: names and kinds, never their content or a way to open them here.
    assert "report-0.pdf" in text and "report-1.pdf" in text
    assert text.count("PDF, 1 kB") == 2
    assert "/documents/" not in summary_part(html)
    assert pdf_bytes("Report 0").decode("latin-1") not in html
    # Staff notes, with who wrote them.
    assert NOTE in text and "Cora Coord" in text
    # Printing leaves out the menu, forms and buttons (the print stylesheet hides them) and
    # there is nothing to send: the summary holds no form.
    assert "<form" not in summary_part(html)


def test_the_summary_links_its_print_stylesheet_and_pdf(
    staff_client: FlaskClient, reference: str
) -> None:
    html = staff_client.get(summary_url(reference)).get_data(as_text=True)
    links = re.findall(r"<link [^>]*>", html)
    assert '<link rel="stylesheet" href="/static/css/print.css" media="print">' in links
    assert f'href="{summary_url(reference, pdf=True)}"' in html

    with staff_client.get("/static/css/print.css") as css:
        assert css.status_code == 200
        assert css.mimetype == "text/css"
        stylesheet = css.get_data(as_text=True)
    assert re.search(r"@page\s*{[^}]*size:\s*A4", stylesheet)
    assert "body > header" in stylesheet and "form" in stylesheet  # no menu, no forms


def test_the_record_links_to_its_summary(staff_client: FlaskClient, reference: str) -> None:
    html = staff_client.get(f"/staff/requests/{reference}").get_data(as_text=True)
    assert f'href="{summary_url(reference)}"' in html


def test_an_emergency_call_back_has_a_summary_too(app: Flask, staff_client: FlaskClient) -> None:
    """Name, phone and flags only: no history, instrument or documents to show."""
    with app.app_context():
        reference = request_callback(
            CallbackSubmission(
                submission_token=secrets.token_urlsafe(32),
                locale="es",
                full_name="Pablo Llamada",
                phone="+4930901821",
                red_flags={"bladder_bowel"},
            )
        ).reference

    text = text_of(summary_part(staff_client.get(summary_url(reference)).get_data(as_text=True)))
    assert "Pablo Llamada" in text and "Triage: EMERGENCY" in text
    assert "Emergency call-back" in text and "Language Español (es)" in text
    assert "Oswestry" not in text and "No documents." in text
    response = staff_client.get(summary_url(reference, pdf=True))
    assert response.status_code == 200
    assert "Pablo Llamada" in pdf_text(response.get_data())


# --- the PDF --------------------------------------------------------------------------------


def test_the_pdf_is_the_summary(staff_client: FlaskClient, reference: str) -> None:
    with staff_client.get(summary_url(reference, pdf=True)) as response:
        assert response.status_code == 200
        body = response.get_data()
        headers = response.headers
    assert headers["Content-Type"] == "application/pdf"
    assert body.startswith(b"%PDF-")
    kind, params = parse_options_header(headers["Content-Disposition"])
    assert kind == "attachment"
    assert re.fullmatch(rf"intake-summary-{reference}-\d{{4}}-\d\d-\d\d\.pdf", params["filename"])
    assert "Mustermann" not in params["filename"]  # a downloads folder shows it
    assert headers["Cache-Control"] == "no-store, private"
    assert headers["X-Content-Type-Options"] == "nosniff"

    reader = PdfReader(io.BytesIO(body))
    assert 1 <= len(reader.pages) <= 2  # a typical request prints on one or two pages
    box = reader.pages[0].mediabox
    assert (round(float(box.width)), round(float(box.height))) == (595, 842)  # A4 in points
    text = pdf_text(body)
    assert "Erika Mustermann" in text
    assert FEVER in text
    assert "Score 50.0% · Severe limitation" in text
    assert "report-1.pdf" in text and NOTE in text
    # The page's menu, buttons and links are not in the PDF.
    assert "Sign out" not in text and "Download PDF" not in text and "Queue" not in text


def test_the_pdf_says_why_answers_together_made_the_request_urgent(
    app: Flask, staff_client: FlaskClient
) -> None:
    (combination,) = triage.COMBINATIONS
    with app.app_context():
        reference = make_request(red_flags={"cancer_history", "night_pain"}).reference
    with staff_client.get(summary_url(reference, pdf=True)) as response:
        text = pdf_text(response.get_data())
    assert f"Together, these answers make the request urgent: {combination.reason}" in text


# --- who may open it, and the audit trail ---------------------------------------------------


def test_each_view_and_download_is_audited(
    app: Flask, staff_client: FlaskClient, staff: Staff, reference: str
) -> None:
    assert staff_client.get(summary_url(reference)).status_code == 200
    # Typed another way, the address sends to the reference's own: one download, audited there.
    typed = staff_client.get(summary_url(reference.lower(), pdf=True))
    assert (typed.status_code, typed.headers["Location"]) == (302, summary_url(reference, True))
    assert staff_client.get(typed.headers["Location"]).status_code == 200

    rows = audit_rows(app, "request_summary_viewed", "request_summary_downloaded")
    assert [row.action for row in rows] == ["request_summary_viewed", "request_summary_downloaded"]
    for row in rows:
        assert (row.target_type, row.target_id) == ("request", reference)
        assert row.actor_id == staff.coordinator.id
        assert row.actor_email == staff.coordinator.email
        assert row.ip_address == STAFF_IP
        assert row.details == {}  # no medical detail in the audit trail
    # The summary is not counted as an opening of the record, nor the record as a summary.
    assert audit_rows(app, "request_viewed") == []


@pytest.mark.parametrize("pdf", [False, True], ids=["page", "pdf"])
def test_anonymous_visitors_are_sent_to_sign_in(
    app: Flask, client: FlaskClient, reference: str, pdf: bool
) -> None:
    response = client.get(summary_url(reference, pdf))
    assert response.status_code == 302
    assert "/staff/login" in response.headers["Location"]
    assert b"Mustermann" not in response.get_data()
    assert audit_rows(app, "request_summary_viewed", "request_summary_downloaded") == []


@pytest.mark.parametrize("pdf", [False, True], ids=["page", "pdf"])
def test_a_specialist_not_assigned_finds_nothing(
    app: Flask, auth: AuthActions, reference: str, pdf: bool
) -> None:
    """As for the record: another specialist's request does not exist for them, and the
    refusal is audited."""
    with app.app_context():
        specialist = make_staff("specialist", "spec@example.com")
        specialist_id = specialist.id
    browser = auth.new_client(email="spec@example.com")

    response = browser.get(summary_url(reference, pdf))
    assert response.status_code == 404
    assert b"Mustermann" not in response.get_data()
    assert b"%PDF" not in response.get_data()
    assert audit_rows(app, "request_summary_viewed", "request_summary_downloaded") == []
    (refused,) = audit_rows(app, ACCESS_REFUSED)
    assert (refused.actor_id, refused.target_id) == (specialist_id, reference)
    assert refused.details["reason"] == "not_assigned"
    assert browser.get(summary_url("SC-ZZZZ-ZZZZ", pdf)).status_code == 404


# --- the PDF renderer fetches nothing -------------------------------------------------------


@pytest.fixture
def listener() -> Iterator[dict[str, Any]]:
    """A TCP port on this machine that counts the connections made to it."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.2)
    seen: dict[str, Any] = {"connections": 0, "port": server.getsockname()[1]}
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                connection, _address = server.accept()
            except TimeoutError:
                continue
            seen["connections"] += 1
            connection.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield seen
    stop.set()
    thread.join()
    server.close()


def test_the_pdf_renderer_fetches_nothing_but_the_apps_stylesheets(
    app: Flask, listener: dict[str, Any]
) -> None:
    from booking.pdf import OwnStylesheets, render_pdf

    outside = f"http://127.0.0.1:{listener['port']}"
    html = (
        f'<html><head><link rel="stylesheet" href="{outside}/site.css">'
        '<link rel="stylesheet" href="/static/css/print.css"></head>'
        f'<body><p>Erika</p><img src="{outside}/pixel.png" alt="">'
        f'<img src="file:///etc/passwd" alt=""></body></html>'
    )
    with app.test_request_context("/staff/requests/X/summary.pdf"):
        body = render_pdf(html)
    assert "Erika" in pdf_text(body)
    assert listener["connections"] == 0

    fetcher = OwnStylesheets("http://localhost/", "/static", app.static_folder or "")
    assert fetcher.local_path("http://localhost/static/css/print.css") is not None
    for url in (
        "http://localhost/static/css/../../../config.py",
        "http://localhost/static/css/%2e%2e/%2e%2e/config.py",
        "http://localhost/static/js/picker.js",
        "http://localhost/staff/requests/X/summary",
        "http://localhost.evil.example/static/css/print.css",
        "https://localhost/static/css/print.css",
        "file:///work/static/css/print.css",
        "data:text/css,body{}",
    ):
        assert fetcher.local_path(url) is None, url


def test_a_time_only_held_is_not_called_the_appointment(
    app: Flask, auth: AuthActions, clinic: Clinic
) -> None:
    """The patient picked a time; nobody confirmed it yet. The record's next step and the
    summary handed to the specialist said "Appointment" as for a confirmed visit, while the
    agenda says "Held, not confirmed": they say it is held until it is confirmed."""
    with app.app_context():
        consultation = book_first_open_time(clinic)
        reference = consultation.reference
        appointment = consultation.appointment
        assert appointment is not None
        held = (appointment.starts_at, appointment.specialist_id, appointment.location_id)
    client = auth.new_client("coordinator", REMOTE_ADDR=STAFF_IP)
    record = text_of(client.get(f"/staff/requests/{reference}").get_data(as_text=True))
    summary = text_of(summary_part(client.get(summary_url(reference)).get_data(as_text=True)))
    assert "Time held, not confirmed:" in record and "Appointment:" not in record
    assert "Time held, not confirmed" in summary and " Appointment " not in summary

    with app.app_context():
        consultation = db.session.scalars(
            select(ConsultationRequest).where(ConsultationRequest.reference == reference)
        ).one()
        confirm_at(
            consultation,
            staff_user(clinic.coordinator.email),
            db.session.get(AppointmentType, clinic.type),
            *held,
        )
    record = text_of(client.get(f"/staff/requests/{reference}").get_data(as_text=True))
    summary = text_of(summary_part(client.get(summary_url(reference)).get_data(as_text=True)))
    assert "Appointment:" in record and "Time held" not in record
    assert " Appointment " in summary and "Time held" not in summary


def test_the_records_way_back_is_named_as_the_menu_names_it(
    app: Flask, auth: AuthActions, clinic: Clinic
) -> None:
    """A specialist's menu and list say "My requests" (their own, not the triage queue): the
    record's link back to that list said "Queue", a page they have no menu item for."""
    with app.app_context():
        reference = book_first_open_time(clinic).reference  # with Dr. Weber
    record = f"/staff/requests/{reference}"
    page = auth.new_client("specialist", email=clinic.weber.email).get(record)
    assert page.status_code == 200
    assert '<a href="/staff/queue">← My requests</a>' in page.get_data(as_text=True)
    page = auth.new_client("coordinator").get(record).get_data(as_text=True)
    assert '<a href="/staff/queue">← Queue</a>' in page
