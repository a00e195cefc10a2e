"""A patient who reads Spanish meets no English: every page they can reach (with and without
errors), the error pages, the files they download and every email written to them read in
Spanish, whoever's action writes them.

``test_content.test_every_patient_string_has_a_spanish_translation`` sees only what is wrapped
in ``_()``; this reads what is rendered, so it also catches text never wrapped (in a template or
in Python), WTForms' own messages, Babel's output, the attributes a screen reader speaks
(``aria-label``, ``title``, ``alt``...), the texts scripts put on screen (``data-*``) and pages
or emails whose locale falls back to English. The check looks for common English function words;
text marked as English (``lang="en"``: the language switcher, the English sources) is skipped.
"""

from __future__ import annotations

import io
import re
import zipfile
from datetime import timedelta
from html.parser import HTMLParser
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.http import parse_options_header

from booking.extensions import db
from booking.notifications.models import OutboxEmail
from booking.scheduling.models import AppointmentType, Location
from booking.timeutil import now_utc
from tests.factories import make_request, slot_two_days_ahead, staff_user
from tests.support import (
    EXE_BYTES,
    Clinic,
    answer_red_flags,
    csrf_token,
    first_open_slot,
    open_manage_link,
    open_step,
    page_proof,
    page_token,
    pdf_bytes,
    post_step,
    send_request,
    step_answers,
    valid_answers,
)

# Common English words that are no Spanish words (not "no", "a", "me", "he", "ha", "error").
# fmt: off
ENGLISH = frozenset({
    "the", "your", "you", "and", "with", "please", "this", "that", "these", "those", "is",
    "are", "was", "were", "not", "field", "required", "valid", "invalid", "choice", "choose",
    "select", "enter", "must", "should", "of", "to", "for", "be", "an", "or", "at", "on", "in",
    "it", "its", "we", "our", "us", "has", "have", "will", "can", "could", "if", "from", "by",
    "than", "more", "less", "too", "many", "minute", "minutes", "hour", "hours", "day", "days",
    "week", "weeks", "month", "months", "ago", "today", "tomorrow", "page", "request", "back",
    "next", "send", "file", "phone", "which", "what", "when", "where", "who", "how", "been",
    "any", "all", "here", "there", "try", "again", "wait", "found", "expired", "form",
    "characters", "long", "short", "least", "most", "between", "yes",
    # Words of buttons, menus and labels (an aria-label is often one or two of them).
    "close", "menu", "remove", "delete", "upload", "download", "search", "language", "site",
    "step", "steps", "home", "skip", "main", "content", "privacy", "notice", "optional",
    "loading", "show", "hide", "cancel", "submit", "continue", "save", "edit", "change",
    "previous", "done", "none", "both", "left", "right", "pain", "details", "reference",
    "appointment", "questionnaire", "document", "documents", "thank", "thanks", "sent",
    "received", "new", "see", "open", "link", "address", "number", "name", "birth", "email",
})
# fmt: on
URL_RE = re.compile(r"https?://\S+|/[\w.-]+(?:/[\w.-]+)+")
TEXT_ATTRIBUTES = ("aria-label", "aria-description", "title", "placeholder", "alt")
VOID = frozenset(
    ("area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track")
)
# Answers a Spanish-speaking patient types: what they write is theirs, in their words.
SPANISH_ANSWERS = {
    "full_name": "Ana López García",
    "imaging_when": "Resonancia en marzo de 2026",
    "medications": "Ibuprofeno 400 mg",
    "allergies": "Penicilina",
    "other_history": "Trabajo de oficina, sentada casi todo el día.",
}


class _ShownText(HTMLParser):
    """What a page shows and says: its text (not scripts or styles), the attributes read out
    or shown, and the ``data-*`` texts its scripts show; none of an element marked English."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.open: list[tuple[str, bool]] = []  # (tag, hidden from the check)

    def _skipping(self) -> bool:
        return any(skip for _tag, skip in self.open)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        skip = values.get("lang") == "en" or tag in ("script", "style")
        if not (skip or self._skipping()):
            for name, value in values.items():
                if name in TEXT_ATTRIBUTES or (name.startswith("data-") and " " in value):
                    self.parts.append(value)
            if tag == "input" and values.get("type") in ("submit", "button"):
                self.parts.append(values.get("value", ""))
            if tag == "meta" and values.get("name") == "description":
                self.parts.append(values.get("content", ""))
        if tag not in VOID:
            self.open.append((tag, skip))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self.open.pop()

    def handle_endtag(self, tag: str) -> None:
        for index in range(len(self.open) - 1, -1, -1):
            if self.open[index][0] == tag:
                del self.open[index:]
                return

    def handle_data(self, data: str) -> None:
        if not self._skipping() and data.strip():
            self.parts.append(" ".join(data.split()))


def english_in_text(text: str) -> list[str]:
    """The lines of ``text`` holding English words, each with the words found."""
    found = []
    for line in URL_RE.sub(" ", text).splitlines():
        words = sorted({w for w in re.findall(r"\w+", line) if w.lower() in ENGLISH})
        if words:
            found.append(f"{words}: {line.strip()[:200]}")
    return found


def english_in_page(page: str) -> list[str]:
    parser = _ShownText()
    parser.feed(page)
    return english_in_text("\n".join(parser.parts))


class Reader:
    """Reads what a Spanish-speaking patient is shown; ``english`` collects what is not
    Spanish, by where it was met."""

    def __init__(self) -> None:
        self.english: dict[str, list[str]] = {}

    def page(self, where: str, response: Any, status: int | None = None) -> str:
        assert response.status_code not in (301, 302, 303, 307), (where, response.location)
        if status is not None:
            assert response.status_code == status, (where, response.status_code)
        text = response.get_data(as_text=True)
        if response.mimetype == "text/html":
            assert '<html lang="es">' in text, where
            self._note(where, english_in_page(text))
        else:
            self._note(where, english_in_text(text))
        return text

    def text(self, where: str, text: str, html: bool = False) -> None:
        self._note(where, english_in_page(text) if html else english_in_text(text))

    def emails(self, app: Flask, *expected: str) -> None:
        """Every email written to a patient (not the clinic's), all its parts; among them one
        of each ``expected`` template at least."""
        staff_address = app.config["STAFF_NOTIFICATION_EMAIL"]
        read = set()
        with app.app_context():
            for email in db.session.scalars(select(OutboxEmail).order_by(OutboxEmail.id)):
                if email.template.endswith("_staff") or email.recipient == staff_address:
                    continue
                read.add(email.template)
                where = f"email {email.template} #{email.id}"
                self.text(f"{where} subject", email.subject)
                self.text(f"{where} text", email.body_text)
                self.text(f"{where} html", email.body_html or "", html=True)
                if email.attachment_body:
                    # Its name too: mail apps show it under the email.
                    self.text(f"{where} attachment's name", email.attachment_name or "")
                    self.text(f"{where} {email.attachment_name}", _calendar_text(email))
        assert set(expected) <= read, f"not written: {set(expected) - read}"

    def _note(self, where: str, found: list[str]) -> None:
        if found:
            self.english[where] = found

    def assert_spanish(self) -> None:
        assert not self.english, "English shown to a Spanish reader:\n" + "\n".join(
            f"{where}:\n  " + "\n  ".join(lines) for where, lines in self.english.items()
        )


def _calendar_text(email: OutboxEmail) -> str:
    """The calendar file's texts a calendar app shows (not its keywords: METHOD:REQUEST)."""
    shown = ("SUMMARY", "DESCRIPTION", "LOCATION", "COMMENT")
    return "\n".join(
        line.partition(":")[2]
        for line in (email.attachment_body or "").replace("\r\n ", "").splitlines()
        if line.split(":")[0].split(";")[0] in shown
    )


@pytest.fixture
def clinic(app: Flask, clinic: Clinic) -> Clinic:
    """``clinic`` with its location and appointment type named in Spanish too, as a clinic
    serving Spanish-speaking patients names them (a name given only in English is shown as
    it is: the clinic's word, not the app's)."""
    with app.app_context():
        db.session.get(Location, clinic.location).names = {"es": "Clínica principal"}
        db.session.get(AppointmentType, clinic.type).names = {"es": "Primera consulta"}
        db.session.commit()
    return clinic


def _spanish_client(app: Flask) -> FlaskClient:
    client = app.test_client()
    client.get("/?lang=es")
    return client


def _post(client: FlaskClient, path: str, page: str, **data: Any) -> Any:
    return client.post(path, data={"csrf_token": page_token(page), **page_proof(page), **data})


# Values no step accepts, to see each step's messages.
BAD = {
    "time": {"earliest_date": "31.02.2020", "preferred_days": ["9"], "slot": "garbage"},
    "about": {
        "full_name": "x" * 300,
        "date_of_birth": "2099-01-01",
        "email": "not-an-email",
        "phone": "abc",
        "preferred_contact": "pigeon",
    },
    "symptoms": {"pain_locations": ["nowhere"], "pain_side": "x", "radiating_pain": "x"},
    "function": {"back_pain_now": "11", "back_pain_worst": "2", "odi_walking": "9"},
    "history": {"diagnoses": ["x"], "treatments": ["x"], "blood_thinners": "x"},
}


def test_the_public_and_error_pages_read_in_spanish(app: Flask) -> None:
    client = _spanish_client(app)
    reader = Reader()
    for path in (
        "/",
        "/info/evaluation",
        "/info/conditions",
        "/info/treatments",
        "/info/prepare",
        "/privacy",
        "/request/start",
    ):
        reader.page(path, client.get(path), 200)
    start = client.get("/request/start").get_data(as_text=True)
    reader.page("first step, unanswered", _post(client, "/request/start", start), 422)
    info = client.get("/info/evaluation").get_data(as_text=True)
    feedback = _post(client, "/info/evaluation/feedback", info, helpful="maybe")
    reader.page("page feedback, refused", feedback)
    reader.page("404", client.get("/no-such-page"), 404)
    reader.page("400, expired form", client.post("/request/start", data={}), 400)
    limit, app.config["MAX_CONTENT_LENGTH"] = app.config["MAX_CONTENT_LENGTH"], 10_000
    reader.page("413", client.post("/request/start", data={"x": "y" * 10_001}), 413)
    app.config["MAX_CONTENT_LENGTH"] = limit
    reader.page("resume link gone", client.get("/request/resume/not-a-token"), 404)
    reader.page("private link gone", client.get("/manage/open/not-a-token"), 404)
    reader.page("private page, no link", client.get("/manage/SC-AAAA-AAAA"), 403)
    reader.page("follow-up link gone", client.get("/follow-up/open/not-a-token"), 404)

    # The emergency answers: the stop, the call-back form and its result.
    answer_red_flags(client, yes=["saddle_numbness"])
    emergency = reader.page("emergency", client.get("/request/emergency"), 200)
    reader.page("call-back, empty", _post(client, "/request/emergency", emergency), 422)
    bad = _post(client, "/request/emergency", emergency, full_name="x" * 300, phone="abc")
    reader.page("call-back, refused", bad, 422)
    sent = _post(
        client, "/request/emergency", emergency, full_name="Ana López", phone="+34 612 345 678"
    )
    assert sent.status_code == 303, sent.status_code
    reader.page("call-back received", client.get(sent.location), 200)

    # Rate-limited: the friendly 429 pages.
    app.config["MANAGE_RATE_LIMIT"] = "1 per minute"
    app.config["SUBMIT_RATE_LIMIT"] = "1 per minute"
    for _ in range(2):
        limited = client.get("/follow-up/open/not-a-token")
    reader.page("429, private link", limited, 429)
    limited_client = _spanish_client(app)
    for _ in range(2):
        limited = limited_client.post(
            "/request/start", data={"csrf_token": csrf_token(limited_client, "/request/start")}
        )
    reader.page("429, first step", limited, 429)
    # (Answered again: after a call-back, the emergency page shows it, not the form.)
    answer_red_flags(client, yes=["saddle_numbness"])
    emergency = client.get("/request/emergency").get_data(as_text=True)
    for _ in range(2):
        limited = _post(client, "/request/emergency", emergency)
    reader.page("429, call-back", limited, 429)
    reader.emails(app)  # a call-back request leaves no address: nothing to the patient
    reader.assert_spanish()


def test_the_request_its_confirmation_and_its_emails_read_in_spanish(
    app: Flask, clinic: Clinic
) -> None:
    client = _spanish_client(app)
    reader = Reader()
    reader.page("time picker", client.get("/request/time"), 200)
    with app.app_context():
        slot = first_open_slot(db.session.get(AppointmentType, clinic.type))
    answers = valid_answers(appointment_type=str(clinic.type), slot=slot.key, **SPANISH_ANSWERS)
    started = answer_red_flags(client, query=f"?type={clinic.type}&slot={slot.key}")
    assert started.status_code == 303
    for code in ("time", "about", "symptoms", "function", "history"):
        page = reader.page(f"step {code}", client.get(f"/request/steps/{code}"), 200)
        path = f"/request/steps/{code}"
        empty = _post(client, path, page, nav="next")
        if empty.status_code == 303:  # a step whose every answer is optional
            empty = client.get(empty.location)
        reader.page(f"step {code}, unanswered", empty)
        reader.page(f"step {code}, refused", _post(client, path, page, nav="next", **BAD[code]))
        assert post_step(client, code, step_answers(code, answers)).status_code == 303, code
    page = open_step(client, "documents")
    reader.text("documents", page, html=True)
    refused = client.post(
        "/request/steps/documents",
        data={"csrf_token": page_token(page), **page_proof(page), "nav": "upload",
              "files": [(io.BytesIO(EXE_BYTES), "informe.pdf")]},
        content_type="multipart/form-data",
    )  # fmt: skip
    reader.page("documents, refused", refused, 422)
    for accept in ("text/html", "application/json"):
        page = open_step(client, "documents")
        client.post(
            "/request/steps/documents",
            data={"csrf_token": page_token(page), **page_proof(page), "nav": "upload",
                  "files": [(io.BytesIO(pdf_bytes()), "informe.pdf")]},
            content_type="multipart/form-data",
            headers={"Accept": accept},
        )  # fmt: skip
    reader.page("documents, added", client.get("/request/steps/documents"), 200)
    assert post_step(client, "documents", {}).status_code == 303
    review = reader.page("review", client.get("/request/steps/review"), 200)
    reader.page("review, no consent", _post(client, "/request/steps/review", review, nav="send"))

    later = reader.page("finish later", client.get("/request/later"), 200)
    reader.page("finish later, refused", _post(client, "/request/later", later, email="x"), 422)
    sent = _post(client, "/request/later", later, email="ana.lopez@example.com")
    reader.page("finish later, sent", sent, 200)
    with app.app_context():
        body = db.session.scalars(
            select(OutboxEmail.body_text).where(OutboxEmail.template == "draft_resume")
        ).one()
    link = re.search(r"/request/resume/[\w-]+", body)
    assert link
    elsewhere = _spanish_client(app)
    assert elsewhere.get(link.group(0)).status_code == 303
    reader.page("resume", elsewhere.get("/request/resume"), 200)

    assert send_request(client, answers).status_code == 303
    reader.page("confirmation", client.get("/request/submitted"), 200)
    calendar = client.get("/request/submitted/appointment.ics")
    assert calendar.status_code == 200
    _disposition, options = parse_options_header(calendar.headers["Content-Disposition"])
    reader.text("confirmation's calendar file's name", options["filename"])
    ics = OutboxEmail(attachment_body=calendar.get_data(as_text=True))
    reader.text("confirmation's calendar file", _calendar_text(ics))
    reader.emails(app, "draft_resume", "request_received")
    reader.assert_spanish()


def test_an_unfinished_request_hidden_after_an_hour_reads_in_spanish(app: Flask) -> None:
    from booking.requests.drafts import RequestDraft

    client = _spanish_client(app)
    reader = Reader()
    assert answer_red_flags(client).status_code == 303
    assert post_step(client, "about", step_answers("about", valid_answers())).status_code == 303
    with app.app_context():
        draft = db.session.scalars(select(RequestDraft)).one()
        draft.updated_at = now_utc() - timedelta(minutes=61)
        db.session.commit()
    assert client.get("/request/steps/about").location == "/request/hidden"
    hidden = reader.page("draft hidden", client.get("/request/hidden"), 200)
    reader.page("draft hidden, emailed", _post(client, "/request/hidden/email", hidden), 200)
    reader.emails(app, "draft_resume")
    reader.assert_spanish()


def test_the_private_page_its_forms_and_its_emails_read_in_spanish(
    app: Flask, clinic: Clinic
) -> None:
    from booking.dashboard.services import cancel_request, confirm_request
    from booking.messages.services import send_staff_message
    from booking.requests.reminders import send_due_reminders

    client = _spanish_client(app)
    reader = Reader()
    with app.app_context():
        coordinator = staff_user(clinic.coordinator.email)
        consultation = make_request(locale="es", documents=1)
        confirm_request(consultation, coordinator, slot_two_days_ahead(clinic))
        send_staff_message(consultation, coordinator, "Hola, ¿puede traer su resonancia?")
        url = open_manage_link(client, consultation)
        other = make_request(locale="es", email="otra@example.com")
        confirm_request(other, coordinator, slot_two_days_ahead(clinic))
        cancel_request(other, coordinator, "La especialista no puede venir.")
        # The worker's reminders, written outside any request.
        starts_at = consultation.appointment.starts_at
        for lead in (47, 1):
            assert send_due_reminders(now=starts_at - timedelta(hours=lead))
    # Read now: the reschedule below withdraws the reminders not sent yet.
    reader.emails(app, "appointment_reminder", "message_waiting", "request_update")
    page = reader.page("private page", client.get(url), 200)
    token = dict(re.findall(r'name="(\w+)-csrf_token"[^>]*value="([^"]+)"', page))

    def post(action: str, prefix: str, **data: Any) -> Any:
        fields = {f"{prefix}-{name}": value for name, value in data.items()}
        return client.post(
            f"{url}/{action}",
            data={f"{prefix}-csrf_token": token[prefix], **fields},
            content_type="multipart/form-data",
        )

    reader.page("documents, none", post("documents", "docs"), 422)
    bad_file = {"documents-0-file": (io.BytesIO(EXE_BYTES), "x.pdf")}
    reader.page("documents, refused", post("documents", "docs", **bad_file), 422)
    good_file = {
        "documents-0-file": (io.BytesIO(pdf_bytes()), "informe.pdf"),
        "documents-0-description": "Informe de la resonancia",
    }
    added = post("documents", "docs", **good_file)
    assert added.status_code == 302, added.status_code
    reader.page("documents, added", client.get(added.location), 200)
    reader.page("message, empty", post("messages", "msg"), 422)
    sent = post("messages", "msg", body="¿Tengo que traer las radiografías?")
    assert sent.status_code == 302, sent.status_code
    reader.page("message sent", client.get(sent.location), 200)
    reader.page("cancel, too long", post("cancel", "cancel", reason="x" * 5000), 422)
    reader.page("data copy, no birth date", post("data", "data"), 422)
    reader.page("data copy, wrong", post("data", "data", date_of_birth="1971-01-01"), 422)
    reader.page("erasure, unconfirmed", post("erasure", "erase"), 422)
    reader.page("consent, unconfirmed", post("consent", "consent"), 422)
    archive = post("data", "data", date_of_birth="1970-05-17")
    assert archive.mimetype == "application/zip", archive.status_code
    files = zipfile.ZipFile(io.BytesIO(archive.get_data()))
    summary = files.read("summary.txt").decode()
    # The archive's file and folder names ("documents/...", "patient.json") are names, for
    # programs as much as people, the same in every language.
    for name in sorted({part for path in files.namelist() for part in path.split("/")}):
        summary = re.sub(rf"(?<![\w.-]){re.escape(name)}(?![\w-])", " ", summary)
    # It lists the emails about the request as they were sent: the clinic's own notices went
    # in the staff's language, and their subjects are quoted as they were.
    to_clinic = f" {app.config['STAFF_NOTIFICATION_EMAIL']}: "
    shown = "\n".join(line for line in summary.splitlines() if to_clinic not in line)
    reader.text("data copy's summary.txt", shown)

    reschedule = reader.page("reschedule", client.get(f"{url}/reschedule"), 200)
    refused = _post(client, f"{url}/reschedule", reschedule, slot="garbage")
    reader.page("reschedule, refused", refused, 409)
    times = re.findall(r'name="slot" id="slot-([^"]+)"', reschedule)
    moved = _post(client, f"{url}/reschedule", reschedule, slot=times[-1])
    assert moved.status_code in (302, 303), moved.status_code
    reader.page("rescheduled", client.get(moved.location), 200)
    assert post("cancel", "cancel").status_code == 302
    reader.page("cancelled", client.get(url), 200)
    reader.emails(app, "request_update", "documents_received", "message_received", "rights_update")
    reader.assert_spanish()


def test_the_follow_up_questionnaire_reads_in_spanish(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    from booking.outcomes import schedule
    from booking.outcomes.services import send_due_followup_reminders, send_due_followups
    from tests import test_outcomes
    from tests.test_outcomes import BERLIN, _answers, _completed, _link, _page, _start

    # The request's clinic named in Spanish too, as ``clinic`` is above.
    spanish = {"make_location": "Clínica principal", "make_appointment_type": "Primera consulta"}
    for factory, name in spanish.items():
        made = getattr(test_outcomes, factory)
        monkeypatch.setattr(test_outcomes, factory, lambda m=made, n=name: m(names={"es": n}))
    client = _spanish_client(app)
    reader = Reader()
    with app.app_context():
        consultation = _completed(spine_region="lower_back", locale="es")
        due = schedule.due_at(_start(consultation.id), "6w", BERLIN)
        send_due_followups(now=due)
        assert send_due_followup_reminders(now=due + timedelta(days=8))  # the worker's
    assert client.get(_link(app)).status_code == 303
    page = reader.page("questionnaire", client.get(_page(client)), 200)
    token = page_token(page)
    reader.page("questionnaire, empty", client.post(_page(client), data={"csrf_token": token}))
    bad = _answers(token, back_pain_worst="1", gpe="99")
    reader.page("questionnaire, refused", client.post(_page(client), data=bad), 422)
    skipped = ("odi_walking", "odi_sitting", "odi_standing")  # too few to score: a warning
    few = {k: v for k, v in _answers(token).items() if k not in skipped}
    reader.page("questionnaire, too few answers", client.post(_page(client), data=few), 200)
    done = client.post(_page(client), data=_answers(token))
    assert done.status_code == 303
    reader.page("thanks", client.get(done.location), 200)
    reader.page("already answered", client.post(_page(client), data=_answers(token)))
    stop = _spanish_client(app).get(_link(app, stop=True), follow_redirects=True)
    reader.page("stop the questionnaires", stop, 200)
    reader.emails(app, "followup_invitation")
    reader.assert_spanish()


def test_an_earlier_time_offered_from_the_waiting_list_reads_in_spanish(
    app: Flask, clinic: Clinic
) -> None:
    from booking.manage.services import cancel
    from booking.requests.waitlist import join_waitlist
    from booking.scheduling.availability import open_slots
    from booking.scheduling.services import SlotChoice

    reader = Reader()
    with app.app_context():
        kind = db.session.get(AppointmentType, clinic.type)
        start = now_utc() + timedelta(days=2)
        slots = open_slots(kind, start, start + timedelta(days=5))
        later = next(s for s in slots if s.starts_at >= slots[0].starts_at + timedelta(days=1))
        booked = [
            make_request(
                locale="es",
                email=f"paciente{n}@example.com",
                slot=SlotChoice(kind.id, slot.specialist_id, slot.location_id, slot.starts_at),
            )
            for n, slot in enumerate((slots[0], later))
        ]
        join_waitlist(booked[1])
        db.session.commit()
        cancel(booked[0], None)
        body = db.session.scalars(
            select(OutboxEmail.body_text).where(OutboxEmail.template == "waitlist_offer")
        ).one()
    link = re.search(r"https?://[^/\s]+(/manage/\S+)", body)
    assert link
    client = _spanish_client(app)
    opened = client.get(link.group(1))
    assert opened.status_code == 303, opened.status_code
    offer = reader.page("earlier time offered", client.get(opened.location), 200)
    reader.emails(app, "waitlist_offer")  # (withdrawn once the time is taken)
    taken = _post(client, opened.location, offer)
    assert taken.status_code == 302, taken.status_code
    reader.page("earlier time taken", client.get(taken.location), 200)
    reader.emails(app, "request_update")
    reader.assert_spanish()


@pytest.mark.parametrize(
    ("text", "english"),
    [
        ("<p>Elija una de las opciones.</p>", False),
        ('<p><a lang="en" href="https://nice.org.uk">Low back pain and sciatica</a></p>', False),
        ("<p>Not a valid choice.</p>", True),
        ('<button aria-label="Remove this file">x</button>', True),
        ('<div data-wait="Please wait for your files"></div>', True),
        ("<title>Página no encontrada</title><p>This field is required.</p>", True),
    ],
)
def test_the_check_tells_english_from_spanish(text: str, english: bool) -> None:
    assert bool(english_in_page(text)) is english
