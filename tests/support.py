"""Helpers shared by the tests: valid answers, real documents, sending a request through its
steps, CSRF tokens read from pages, signing staff in (``AuthActions``), counting SQL
statements, real processes."""

from __future__ import annotations

import html
import io
import logging
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from flask import Flask, has_app_context
from flask.testing import FlaskClient
from PIL import Image
from werkzeug.test import Cookie, TestResponse

import config
from booking.audit.models import AuditEvent
from booking.cli import demo_pdf
from booking.notifications.models import OutboxEmail, OutboxStatus
from booking.patients import steps
from booking.requests import triage
from booking.scheduling.availability import OpenSlot, open_slots
from booking.scheduling.models import AppointmentType
from booking.timeutil import clinic_today, now_utc


def image_bytes(kind: str, size: tuple[int, int] = (8, 8)) -> bytes:
    """A whole image of ``kind`` ("PNG", "JPEG") made by Pillow, the same bytes every run (a
    gradient), which the content check (type and structure) accepts."""
    out = io.BytesIO()
    Image.linear_gradient("L").resize(size).convert("RGB").save(out, kind)
    return out.getvalue()


# (The PNG was a hand-written 1x1 one whose image chunk had a wrong checksum: it passed when
# only the first bytes were checked.)
PNG_BYTES = image_bytes("PNG")
JPEG_BYTES = image_bytes("JPEG")
# The first bytes of a Windows executable: never acceptable, whatever its name.
EXE_BYTES = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + b"\x00" * 200

# Every staff account the tests make has this password unless a test says otherwise.
PASSWORD = "correct horse battery staple"
# A form's CSRF field, plain or with a form prefix ("slot-csrf_token"), either attribute order.
CSRF_RE = re.compile(r'csrf_token"[^>]*?\bvalue="([^"]+)"')
# The proof that a draft's page was shown (``views._page_proof``), in each of its forms.
PROOF_RE = re.compile(r'name="draft_page" value="([^"]+)"')


def csrf_token(client: FlaskClient, path: str, **get_options: Any) -> str:
    """Open ``path`` like a browser and read the CSRF token from its (first) form (answering
    the first step's questions "no" if the request's steps ask for them first)."""
    response = client.get(path, **get_options)
    if response.status_code == 302 and "/request/start?" in response.headers["Location"] + "?":
        answer_red_flags(client)
        response = client.get(path, **get_options)
    match = CSRF_RE.search(response.get_data(as_text=True))
    assert match, f"no CSRF token on {path} ({response.status_code})"
    return match.group(1)


def session_cookie(client: FlaskClient) -> Cookie:
    """The browser's session cookie, under the name its app's settings give it
    (``SESSION_COOKIE_NAME``: ``session`` here, ``__Host-session`` in production)."""
    cookie = client.get_cookie(client.application.config["SESSION_COOKIE_NAME"])
    assert cookie is not None, "the browser has no session cookie"
    return cookie


def copy_session_cookie(source: FlaskClient, target: FlaskClient) -> None:
    """Give ``target`` the session cookie of ``source`` (another tab of the same browser, or
    a copy of it taken from the browser)."""
    cookie = session_cookie(source)
    target.set_cookie(cookie.key, cookie.value)


# An action's code on the admin's audit page, under its label (one per row).
AUDIT_ACTION_CODE = re.compile(r'<code class="small text-body-secondary">([a-z_]+)</code>')


def shown_actions(page: str) -> list[str]:
    """The action codes of the rows an audit page lists, in order."""
    return AUDIT_ACTION_CODE.findall(page)


# The queue table's name (its caption, and its scrolling box's): the order it is in, as a
# coordinator reads it (``dashboard.queries._listed``: the level, then the call-back clock).
QUEUE_CAPTION = (
    "Requests, emergencies first, then urgent, then routine; within each, the longest waiting "
    "for a call-back first (counted from arrival, or from when staff raised its triage)"
)


def table_boxes(page: str) -> list[tuple[str | None, str]]:
    """Each box a table scrolls in (``.table-responsive``): its name as a region in the tab
    order, from the server (None when it is none: the name then comes only from
    scroll-regions.js), and its table's caption."""
    boxes = re.findall(
        r'<div class="table-responsive"([^>]*)>\s*<table[^>]*>\s*<caption[^>]*>(.*?)</caption>',
        page,
        re.S,
    )
    shown = []
    for attributes, caption in boxes:
        name = re.search(r'aria-label="([^"]*)"', attributes)
        in_order = 'tabindex="0"' in attributes and 'role="region"' in attributes
        shown.append(
            (html.unescape(name.group(1)) if name and in_order else None, html.unescape(caption))
        )
    return shown


def export_queue(client: FlaskClient, query: str | dict[str, Any] | None = None) -> TestResponse:
    """Export the queue as its page's button does: a post with the page's CSRF token, the
    filters in the address."""
    token = csrf_token(client, "/staff/", follow_redirects=True)
    return client.post("/staff/export.csv", query_string=query, data={"csrf_token": token})


@dataclass(frozen=True)
class Account:
    """A staff account a test made, as plain values (usable outside an app context)."""

    id: int
    email: str
    full_name: str
    role: str


@dataclass(frozen=True)
class Staff:
    """An account of each role; Dr. Weber is the first specialist made."""

    admin: Account
    coordinator: Account
    weber: Account
    okafor: Account


@dataclass(frozen=True)
class Clinic(Staff):
    """The staff, one location and a 45-minute appointment type (ids)."""

    location: int
    type: int


class AuthActions:
    """Staff sign-in through the real form, the CSRF token read from the page as a browser
    does (the Flask tutorial's ``AuthActions``). ``client`` is the browser used unless a call
    names another."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client

    def account(self, role: str | None = None, email: str | None = None) -> Account:
        """The account with ``email``, else the first one made with ``role``."""
        from booking.extensions import db
        from booking.staff.models import StaffRole, StaffUser

        query = sa.select(StaffUser).order_by(StaffUser.id)
        if email is not None:
            query = query.where(StaffUser.email == email)
        elif role is not None:
            query = query.where(StaffUser.role == StaffRole(role))
        with self.client.application.app_context():
            user = db.session.scalars(query).first()
            assert user is not None, f"no staff account for {email or role}"
            account = Account(user.id, user.email, user.full_name, user.role.value)
            db.session.remove()
        return account

    def attempt(
        self, email: str, password: str = PASSWORD, *, client: FlaskClient | None = None
    ) -> TestResponse:
        """Fill in and send the sign-in form; the answer, whatever it is."""
        client = client or self.client
        token = csrf_token(client, "/staff/login")
        return client.post(
            "/staff/login", data={"email": email, "password": password, "csrf_token": token}
        )

    def login(
        self,
        role: str | None = "coordinator",
        *,
        email: str | None = None,
        password: str = PASSWORD,
        client: FlaskClient | None = None,
    ) -> Account:
        """Sign in as ``email``, else as the first account made with ``role``; fails unless
        the sign-in is accepted. Returns the account."""
        account = self.account(role, email)
        response = self.attempt(account.email, password, client=client)
        assert response.status_code == 302, f"signing in as {account.email} failed"
        return account

    def new_client(
        self, role: str | None = "coordinator", *, email: str | None = None, **environ: Any
    ) -> FlaskClient:
        """Another browser (``environ``: its remote address, headers), signed in."""
        client = self.client.application.test_client()
        client.environ_base.update(environ)
        self.login(role, email=email, client=client)
        return client

    def logout(self, *, client: FlaskClient | None = None) -> TestResponse:
        client = client or self.client
        return client.post("/staff/logout", data={"csrf_token": csrf_token(client, "/staff/queue")})


class Statements(list[str]):
    """SQL statements in the order they were sent; ``parameters[n]`` are the n-th's."""

    def __init__(self) -> None:
        super().__init__()
        self.parameters: list[Any] = []


@contextmanager
def sql_statements(app: Flask, selects_only: bool = False) -> Iterator[Statements]:
    """Every SQL statement ``app``'s engine sends while the block runs (with
    ``selects_only``, only the SELECTs: SQLite's BEGIN is no query). Tests bound their number
    (a lazy load in a loop shows as a count that grows with the data), not their order."""
    from booking.extensions import db

    statements = Statements()

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if not selects_only or statement.lstrip().upper().startswith("SELECT"):
            statements.append(statement)
            statements.parameters.append(parameters)

    with app.app_context():
        engine = db.engine  # the app's engine outlives the context the test client opens
    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)


def pdf_bytes(title: str = "MRI report") -> bytes:
    return demo_pdf(title)


def red_flag_answers(yes: Iterable[str] = ()) -> dict[str, str]:
    """Every question of the first step answered, "yes" for the codes in ``yes``."""
    chosen = set(yes)
    unknown = chosen - set(triage.BY_CODE)
    assert not unknown, f"not red flags: {unknown}"
    return {f"red_{flag.code}": "yes" if flag.code in chosen else "no" for flag in triage.ASKED}


def answer_red_flags(client: FlaskClient, yes: Iterable[str] = (), query: str = "") -> TestResponse:
    """Answer the first step of a request, as a patient does, before the other steps open."""
    token = csrf_token(client, "/request/start")
    return client.post(
        f"/request/start{query}", data={**red_flag_answers(yes), "csrf_token": token}
    )


def valid_answers(**overrides: Any) -> dict[str, Any]:
    """Every required answer of the request, all steps together, as a browser posts them
    (``step_answers`` splits them by step)."""
    data: dict[str, Any] = {
        "full_name": "Erika Mustermann",
        "date_of_birth": date(1970, 5, 17).isoformat(),
        "email": "erika.mustermann@example.com",
        "phone": "+49 30 901820",
        "preferred_contact": "email",
        "pain_locations": ["lower_back", "leg"],
        "spine_region": "lower_back",
        "pain_side": "left",
        "pain_duration": "3_12_months",
        "back_pain_now": "5",
        "back_pain_worst": "8",
        "leg_pain_now": "4",
        "leg_pain_worst": "7",
        "radiating_pain": "yes",
        "numbness": "yes",
        "weakness": "no",
        "diagnoses": ["herniated_disc"],
        "treatments": ["physiotherapy", "medication"],
        "imaging": ["mri"],
        "imaging_when": "MRI in March 2026",
        "medications": "Ibuprofen 400 mg",
        "allergies": "Penicillin",
        "blood_thinners": "no",
        "diabetes": "no",
        "smoking": "never",
        "other_history": "Office work, sitting most of the day.",
        **red_flag_answers(),
        "odi_pain_intensity": "2",
        "odi_personal_care": "1",
        "odi_lifting": "3",
        "odi_walking": "2",
        "odi_sitting": "3",
        "odi_standing": "2",
        "odi_sleeping": "1",
        "odi_sex_life": "",
        "odi_social_life": "2",
        "odi_travelling": "2",
        "preferred_days": ["0", "2"],
        "preferred_time_of_day": "morning",
        "earliest_date": "",
        "privacy_consent": "y",
        "contact_consent": "y",
    }
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}


def as_lists(answers: dict[str, Any]) -> dict[str, list[Any]]:
    """Answers as the draft keeps them: a list of values per field."""
    return {k: v if isinstance(v, list) else [v] for k, v in answers.items()}


def step_answers(code: str, answers: dict[str, Any] | None = None) -> dict[str, Any]:
    """The fields step ``code`` posts, from ``answers`` (default: the valid answers)."""
    every = valid_answers() if answers is None else answers
    return {name: every[name] for name in steps.fields_of(code, as_lists(every)) if name in every}


def open_step(client: FlaskClient, code: str) -> str:
    """A step's page, which must open (reached first, ``reach``, if the draft is not that
    far: the test is about the page, not the way to it)."""
    reach(client, code.partition("?")[0])
    response = client.get(f"/request/steps/{code}")
    assert response.status_code == 200, (code, response.status_code, response.location)
    return response.get_data(as_text=True)


CHECKED_RADIO_RE = re.compile(
    r'<input[^>]*\bchecked\b[^>]*\bname="([^"]+)"[^>]*type="radio" value="([^"]*)"'
)


def checked_radios(page: str, prefix: str = "") -> dict[str, str]:
    """The options a page's radio buttons have ticked when it opens (a browser sends them with
    the form), of the fields whose names start with ``prefix``."""
    ticked = CHECKED_RADIO_RE.findall(page)
    return {name: value for name, value in ticked if name.startswith(prefix)}


def patient_email_values(consultation: Any) -> dict[str, Any]:
    """Something for every name any patient email reads (each email is written with its own
    few: ``queue_email``'s callers)."""
    at = datetime(2026, 1, 14, 9, 0, tzinfo=UTC)
    link = "https://clinic.example/manage/open/token"
    return {
        "patient_name": "Erika Mustermann",
        "consultation": consultation,
        "appointment": consultation.appointment,
        "offer": consultation.appointment,
        "manage_url": link,
        "resume_url": link,
        "questionnaire_url": link,
        "stop_url": link,
        "accept_url": link,
        "expires_at": at,
        "open_until": at,
        "received_at": at,
        "count": 1,
        "documents": 1,
        "references": consultation.reference,
        "kind": "confirmed",
        "event": "data_downloaded",
        "explanation": "",
        "reminder": False,
        "corrected": False,
        "changed_at": at,
        "advice": None,
        "clinic_name": "Spine Clinic",
        "clinic_phone": "+49 30 1234567",
        "subject": "Subject",
    }


def outbox_emails(app: Flask, template: str) -> list[Any]:
    """The outbox's emails written with ``template``, oldest first (detached, to read after)."""
    from booking.extensions import db
    from booking.notifications.models import OutboxEmail

    with app.app_context():
        rows = db.session.scalars(
            sa.select(OutboxEmail).where(OutboxEmail.template == template).order_by(OutboxEmail.id)
        ).all()
        db.session.expunge_all()
        return list(rows)


def calendar_location(ics: str) -> str:
    """The LOCATION of a calendar file's one event, as a calendar app reads it."""
    from icalendar import Calendar

    (event,) = Calendar.from_ical(ics).walk("VEVENT")
    return str(event["LOCATION"])


def page_token(page: str) -> str:
    match = CSRF_RE.search(page)
    assert match, "no CSRF token on the page"
    return match.group(1)


INPUT_RE = re.compile(r"<input\b[^>]*>")


def form_values(page: str) -> dict[str, str]:
    """What a browser sends of the page's text and hidden boxes as they stand (their values,
    entities decoded; a box with no value, ""), by name. Radios and checkboxes are left out:
    ``checked_radios`` reads those."""
    values = {}
    for tag in INPUT_RE.findall(page):
        kind = re.search(r'\btype="([^"]*)"', tag)
        name = re.search(r'\bname="([^"]*)"', tag)
        if name is None or (kind is not None and kind.group(1) in ("radio", "checkbox")):
            continue
        value = re.search(r'\bvalue="([^"]*)"', tag)
        values[name.group(1)] = html.unescape(value.group(1)) if value else ""
    return values


def hidden_value(page: str, name: str) -> str:
    """The value of the page's hidden field ``name``, as a browser sends it."""
    match = re.search(rf'<input[^>]*name="{re.escape(name)}"[^>]*value="([^"]*)"', page)
    assert match, f"no field {name} on the page"
    return match.group(1)


def page_proof(page: str) -> dict[str, str]:
    """The page's proof that it was shown while its draft was, as its forms send it (none
    when the page has none)."""
    match = PROOF_RE.search(page)
    return {"draft_page": match.group(1)} if match else {}


def reach(client: FlaskClient, code: str) -> None:
    """Note the browser's unsent draft as having reached step ``code`` (unless it went
    further), as though the patient had come this far: a step not reached does not open
    (``patients.views.step``). For tests of one step, not of the way to it; nothing else of
    the draft changes (not its last use, which hides it after a while)."""
    from booking.patients.views import DRAFT_KEY

    with client.session_transaction() as session:
        token = session.get(DRAFT_KEY)
    reach_draft(client.application, token, code)


def reach_draft(app: Flask, token: object, code: str) -> None:
    """``reach`` for the draft of the browser token ``token`` (a browser's session holds it)."""
    from booking.extensions import db
    from booking.requests.drafts import RequestDraft, find_draft

    with app.app_context():
        draft = find_draft(token, documents=False)
        if draft is None or draft.sent_at is not None:
            return
        if steps.number(draft.step) < steps.number(code):
            db.session.execute(
                sa.update(RequestDraft).where(RequestDraft.id == draft.id).values(step=code)
            )
            db.session.commit()


def post_step(
    client: FlaskClient, code: str, data: dict[str, Any] | None = None, nav: str = "next"
) -> TestResponse:
    """Open step ``code`` and post ``data`` (default: its valid answers) with ``nav``. A step
    shown in pages ("function", "history") has each page opened and posted in turn, as a
    patient fills them (each page takes its own fields of ``data``); the response that leaves
    the step (or that refuses a page) is returned."""
    data = step_answers(code) if data is None else data
    path = f"/request/steps/{code}"
    while True:
        shown = open_step(client, path.removeprefix("/request/steps/"))
        page = parse_qs(urlsplit(path).query).get("page", [None])[0]
        payload = {**data, "csrf_token": page_token(shown), **page_proof(shown), "nav": nav}
        payload |= {"page": page} if page else {}
        response = client.post(f"/request/steps/{code}", data=payload)
        location = response.headers.get("Location", "")
        if response.status_code != 303 or not location.startswith(f"/request/steps/{code}?"):
            return response
        path = location


FileLike = tuple[Any, ...]


def section_at(page: str, marker: str) -> str:
    """The part of ``page`` from ``marker`` (an id or heading id in the section) to the end of
    its ``<section>``: a banner or list checked on its own."""
    start = page.index(marker)
    return page[start : page.index("</section>", start)]


def file_part(file: FileLike) -> FileLike:
    """(content, filename[, content type]) with the content as a stream the client sends."""
    content, *rest = file
    return (io.BytesIO(content) if isinstance(content, bytes) else content, *rest)


def upload(
    client: FlaskClient,
    *files: FileLike,
    nav: str = "upload",
    description: str | None = None,
    token: str | None = None,
) -> TestResponse:
    """Send ``files`` ((content, filename) each) together into the documents step, as its form
    does without scripts (with scripts each file goes on its own)."""
    proof: dict[str, str] = {}
    if token is None:
        shown = open_step(client, "documents")
        token, proof = page_token(shown), page_proof(shown)
    data: dict[str, Any] = {"csrf_token": token, "nav": nav, **proof}
    data["files"] = [file_part(file) for file in files]
    if description is not None:
        data["description"] = description
    return client.post("/request/steps/documents", data=data, content_type="multipart/form-data")


REQUEST_STEPS = ("time", "about", "symptoms", "function", "history")


def fill_every_step(client: FlaskClient, files: tuple[FileLike, ...] = ()) -> None:
    """Answer the first step and every step up to the review, as a patient does."""
    assert answer_red_flags(client).status_code == 303
    for code in REQUEST_STEPS:
        response = post_step(client, code)
        assert response.status_code == 303, (code, response.get_data(as_text=True)[:3000])
    if files:
        assert upload(client, *files).status_code == 303
    assert post_step(client, "documents", {}).status_code == 303


def form_tokens(client: FlaskClient, path: str = "/request/start") -> dict[str, str]:
    """Start a request as a patient does: open ``path`` (the first step, or an old ``/request``
    link, which leads there with the picked time's ``type`` and ``slot``), answer its questions
    "no" and open the first step after it. Returns the CSRF token of that step's page, for
    ``post_request(..., tokens=...)`` to carry on with this browser's draft."""
    response = client.get(path)
    if response.status_code in (301, 302):
        path = response.location
    query = path.partition("?")[2]
    started = answer_red_flags(client, query=f"?{query}" if query else "")
    assert started.status_code == 303, started.status_code
    page = client.get("/request/steps/time" + (f"?{query}" if query else ""))
    assert page.status_code == 200, page.status_code
    return {"csrf_token": page_token(page.get_data(as_text=True))}


def _document_rows(
    answers: dict[str, Any], files: list[tuple[bytes, str]] | None
) -> list[tuple[list[FileLike], str | None]]:
    """The files to send, each with its description: ``files`` as (content, filename) (described
    "Document n"), and the answers ``documents-<n>-file`` (and ``-description``), if a test gives
    them (a list for several files in one row)."""
    rows: list[tuple[list[FileLike], str | None]] = [
        ([file], f"Document {index}") for index, file in enumerate(files or [], start=1)
    ]
    numbered = sorted(
        (int(match.group(1)), key)
        for key in answers
        if (match := re.fullmatch(r"documents-(\d+)-file", key))
    )
    for index, key in numbered:
        parts = answers[key] if isinstance(answers[key], list) else [answers[key]]
        rows.append((parts, answers.get(f"documents-{index}-description")))
    return rows


def post_request(
    client: FlaskClient,
    answers: dict[str, Any] | None = None,
    files: list[tuple[bytes, str]] | None = None,
    tokens: dict[str, str] | None = None,
    follow_redirects: bool = False,
) -> TestResponse:
    """Send a request through its steps as a patient does: the first step's questions (the
    ``red_*`` answers), each step's answers (the draft keeps them), the ``files`` uploaded one
    by one into the documents step, then the review's consent and Send.

    Returns the response that ends it: the send's (a 303 to /request/submitted, or 409, 422,
    503), or that of the first step that refused the answers (422 with its messages, 400,
    413), or the first step's redirect to the emergency page. ``tokens`` (from ``form_tokens``)
    carry on with the request this browser already started, posting their CSRF token at every
    step (none if they have none)."""
    data = dict(valid_answers() if answers is None else answers)
    refused = fill_request(client, data, files, tokens)
    if refused is not None:
        return refused
    return send_request(client, data, tokens, follow_redirects)


def fill_request(
    client: FlaskClient,
    answers: dict[str, Any],
    files: list[tuple[bytes, str]] | None = None,
    tokens: dict[str, str] | None = None,
) -> TestResponse | None:
    """Every step of ``post_request`` but the send: None when the review is reached, else the
    response of the step that stopped."""
    if tokens is None:
        flags = {key: value for key, value in answers.items() if key.startswith("red_")}
        token = csrf_token(client, "/request/start")
        response = client.post("/request/start", data={**flags, "csrf_token": token})
        location = response.headers.get("Location", "")
        if response.status_code != 303 or "/request/emergency" in location:
            return response

    def went_on(response: TestResponse) -> bool:
        return response.status_code == 303 and "/request/steps/" in response.location

    asked = as_lists(answers)
    for code in REQUEST_STEPS:
        given = step_answers(code, answers)
        pages = steps.pages(code, asked) if code in steps.PAGED else []
        for number, names in enumerate(pages or [tuple(given)], start=1):
            mine = {name: value for name, value in given.items() if name in names}
            if pages:
                mine["page"] = str(number)
            response = _post_step_as_shown(
                client, code, mine, tokens, page=number if pages else None
            )
            if not went_on(response):
                return response
    for parts, description in _document_rows(answers, files):
        payload: dict[str, Any] = {"nav": "upload", "files": [file_part(p) for p in parts]}
        if description is not None:
            payload["description"] = description
        response = _post_step_as_shown(
            client, "documents", payload, tokens, content_type="multipart/form-data"
        )
        if not went_on(response):
            return response
    response = _post_step_as_shown(client, "documents", {"nav": "next"}, tokens)
    return None if went_on(response) else response


def send_request(
    client: FlaskClient,
    answers: dict[str, Any] | None = None,
    tokens: dict[str, str] | None = None,
    follow_redirects: bool = False,
) -> TestResponse:
    """The review step's Send, with the consent of ``answers`` (default: the valid answers)."""
    data = {**step_answers("review", answers), "nav": "send"}
    return _post_step_as_shown(client, "review", data, tokens, follow_redirects=follow_redirects)


def _post_step_as_shown(
    client: FlaskClient,
    code: str,
    payload: dict[str, Any],
    tokens: dict[str, str] | None,
    page: int | None = None,
    **options: Any,
) -> TestResponse:
    """Open step ``code`` and post ``payload`` ("next" unless it says) with the page's CSRF
    token, or with that of ``tokens`` (none if they have none); a step that does not open
    (the request was sent, or never started) answers instead."""
    shown = client.get(f"/request/steps/{code}", query_string={"page": page} if page else {})
    if shown.status_code != 200:
        return shown
    token = page_token(shown.get_data(as_text=True)) if tokens is None else tokens.get("csrf_token")
    payload = {"nav": "next", **payload}
    if token is not None:
        payload["csrf_token"] = token
    return client.post(f"/request/steps/{code}", data=payload, **options)


def requests_stored(app: Flask) -> int:
    """How many requests the database holds."""
    from booking.extensions import db
    from booking.requests.models import ConsultationRequest

    with app.app_context():
        return db.session.scalar(sa.select(sa.func.count()).select_from(ConsultationRequest)) or 0


def stored_files(upload_dir: Path) -> list[Path]:
    return sorted(p for p in upload_dir.rglob("*") if p.is_file()) if upload_dir.exists() else []


ROOT = Path(__file__).resolve().parent.parent


def files_environment(
    tmp_path: Path, database: str = "app.sqlite3", **settings: str
) -> dict[str, str]:
    """This process's environment for an app process of its own (gunicorn, a worker, a
    script): development settings unless ``settings`` say otherwise, its database, queue
    and uploads as files in ``tmp_path``, no Redis."""
    return {
        **os.environ,
        "SPINECONSULT_ENV": "development",
        "DATABASE_URL": f"sqlite:///{tmp_path / database}",
        "HUEY_SQLITE_PATH": str(tmp_path / "huey.sqlite3"),
        "UPLOAD_DIR": str(tmp_path / "uploads"),
        "REDIS_URL": "",
        **settings,
    }


def start_worker(
    env: dict[str, str], *args: str, output: int = subprocess.PIPE
) -> subprocess.Popen[bytes]:
    """A real ``flask worker`` (one thread) run from the project folder with development
    settings (and the testing key) and ``env`` on top (the test's database, queue, uploads,
    mail server); its output is piped for ``stop_worker`` unless ``output`` says otherwise."""
    return subprocess.Popen(
        [sys.executable, "-m", "flask", "worker", "--workers", "1", *args],
        cwd=ROOT,
        env={
            **os.environ,
            "SPINECONSULT_ENV": "development",
            "FLASK_APP": "wsgi",
            "REDIS_URL": "",
            # The test apps' key (testing settings): the worker opens what they sealed, such
            # as the outbox's bodies.
            "ENCRYPTION_KEY": config.TESTING_ENCRYPTION_KEY,
            **env,
        },
        stdout=output,
        stderr=subprocess.STDOUT,
    )


def stop_worker(worker: subprocess.Popen[bytes]) -> str:
    """Stop a worker as Ctrl-C does (killed if it has not stopped after 20 s); its output."""
    if worker.poll() is None:
        worker.send_signal(signal.SIGINT)
    try:
        output = worker.communicate(timeout=20)[0]
    except subprocess.TimeoutExpired:
        worker.kill()
        output = worker.communicate()[0]
    return (output or b"").decode(errors="replace")


def wait_until(condition: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    """Poll ``condition`` until it returns something true, and return that (real processes
    give no other sign); fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


@dataclass
class Service:
    """A real process a test started (gunicorn, a worker, nginx), its output in a log file
    read when something fails. It runs in its own process group, so gunicorn's workers stop
    with it."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    stop_signal: int

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self, timeout: float = 20) -> None:
        """Stop it with its own signal; killed with its whole group after ``timeout``."""
        if self.popen.poll() is None:
            self.popen.send_signal(self.stop_signal)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait()


def start_service(
    name: str, args: list[str], env: dict[str, str], folder: Path, stop_signal: int
) -> Service:
    """Run ``args`` from the project folder with exactly ``env``, output to
    ``folder/<name>.log``."""
    log = folder / f"{name}.log"
    with log.open("wb") as out:
        popen = subprocess.Popen(
            args,
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Service(name, popen, log, stop_signal)


@contextmanager
def fresh_postgres_database(server_url: str, prefix: str) -> Iterator[str]:
    """A new, empty database on the PostgreSQL server of ``server_url`` (psycopg 3), for a
    test that runs real processes and migrations on it; dropped afterwards."""
    import sqlalchemy as sa

    url = sa.engine.make_url(server_url)
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def open_manage_link(client: FlaskClient, consultation: Any) -> str:
    """Open a new private link to ``consultation`` as the patient's browser does (the token is
    traded for a cookie on the request's pages); returns the address of its page."""
    from booking.extensions import db
    from booking.requests.links import issue_link

    token = issue_link(consultation)
    reference = consultation.reference
    db.session.commit()
    response = client.get(f"/manage/open/{token}")
    assert response.status_code == 303, response.status_code
    assert response.headers["Location"].endswith(f"/manage/{reference}")
    return f"/manage/{reference}"


def legacy_manage_token(consultation: Any) -> str:
    """A link of the older, signed kind, as emails sent before 2026-12 carry."""
    from flask import current_app
    from itsdangerous import URLSafeTimedSerializer

    from booking.requests.links import LEGACY_SALT

    serializer = URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=LEGACY_SALT)
    return serializer.dumps({"r": consultation.id, "ref": consultation.reference})


# --- Redis ----------------------------------------------------------------------------


@dataclass
class RedisServer:
    """A ``running_redis`` server: its process and port."""

    process: subprocess.Popen[bytes]
    port: int

    def stop(self) -> None:
        """Stop it (as a Redis machine going away): connections to it are refused after."""
        if self.process.poll() is None:
            self.process.terminate()
        self.process.wait(timeout=10)


@contextmanager
def running_redis(folder: Path, *settings: str) -> Iterator[RedisServer]:
    """A real redis-server of the test's own on a free port of 127.0.0.1, nothing kept on
    disk, with ``settings`` (e.g. ACL users) added to its command line: a Redis the test may
    stop (the shared one on 6379 is everyone's). Skipped without redis-server, failed under
    .ci/run, which installs it."""
    import shutil
    import socket

    import pytest

    from tests.smtp import free_port

    server = shutil.which("redis-server")
    if server is None:
        if os.environ.get("REDIS_URL"):  # .ci/run: Redis is installed there
            pytest.fail("redis-server is not on the PATH", pytrace=False)
        pytest.skip("redis-server is not installed")
    port = free_port()
    command = [server, "--bind", "127.0.0.1", "--port", str(port), "--dir", str(folder)]
    command += ["--save", "", "--appendonly", "no", *settings]
    redis = RedisServer(subprocess.Popen(command, stdout=subprocess.DEVNULL), port)
    try:

        def listening() -> bool:
            assert redis.process.poll() is None, "redis-server stopped"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
            except OSError:
                return False
            return True

        wait_until(listening, "redis-server to listen", timeout=10)
        yield redis
    finally:
        redis.stop()


# --- ClamAV ---------------------------------------------------------------------------

EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
NO_CLAMD = (
    "clamd is not installed (Debian's clamav-daemon): run `make browser` as root "
    "(apt-get install -y clamav-daemon)"
)


def find_clamd() -> str | None:
    """clamd's path (in /usr/sbin, which is not on every user's PATH), or None; under CI
    (``E2E_REQUIRE_BROWSER=1``, set by .ci/run, which installs it) a missing one fails."""
    import shutil

    found = shutil.which("clamd") or (
        "/usr/sbin/clamd" if os.access("/usr/sbin/clamd", os.X_OK) else None
    )
    if found is None and os.environ.get("E2E_REQUIRE_BROWSER") == "1":
        import pytest

        pytest.fail(NO_CLAMD, pytrace=False)
    return found


@contextmanager
def running_clamd(folder: Path) -> Iterator[str]:
    """A real clamd on a unix socket in ``folder``, with a signature database made here that
    detects the EICAR test string anywhere in a file (freshclam cannot reach its mirror
    here, and the real databases take a minute to load). Yields the socket's path."""
    import pytest

    clamd = find_clamd()
    if clamd is None:
        pytest.skip(NO_CLAMD)
    database = folder / "clamdb"
    database.mkdir()
    (database / "spineconsult-test.ndb").write_text(f"SpineConsult.Test.EICAR:0:*:{EICAR.hex()}\n")
    sock = folder / "clamd.sock"
    config = folder / "clamd.conf"
    config.write_text(
        f"LocalSocket {sock}\nDatabaseDirectory {database}\nForeground yes\n"
        f"LogFile {folder / 'clamd.log'}\nPidFile {folder / 'clamd.pid'}\n"
        f"TemporaryDirectory {folder}\n"
    )
    service = start_service(
        "clamd", [clamd, "-c", str(config)], dict(os.environ), folder, signal.SIGTERM
    )
    try:

        def ready() -> bool:
            assert service.popen.poll() is None, service.output()
            return sock.exists()

        wait_until(ready, "clamd to listen", timeout=60)
        yield str(sock)
    finally:
        service.stop()


def first_open_slot(appointment_type: AppointmentType, days: int = 14) -> OpenSlot:
    """The first open time of the next ``days`` that is still open ten minutes from now: the
    very first may pass the minimum notice while a slow test runs, and be refused when it is
    booked."""
    start = now_utc()
    later = start + timedelta(minutes=10)
    return open_slots(appointment_type, start, start + timedelta(days=days), now=later)[0]


def _clinic_today() -> date:
    """Today in the clinic's zone, not the machine's: the app's inside an app context, else
    the testing configuration's (a module constant such as ``test_workflow.DAY`` is read
    before any app exists). ``date.today()`` is the machine's day, which around midnight
    is not the clinic's: near New Year or a clock change the helpers named another day than
    the one the clinic's pages count from."""
    if has_app_context():
        return clinic_today()
    return now_utc().astimezone(ZoneInfo(config.TestingConfig.CLINIC_TIMEZONE)).date()


def winter_day(month_day: int = 14) -> date:
    """A day of next January: always ahead (staff cannot book a time that has passed), and
    always in the clinic's winter time, so that 10:00 there is 09:00 UTC."""
    return date(_clinic_today().year + 1, 1, month_day)


def when(day: date, at: str) -> str:
    """How the emails write a day and time: "Thu 14 Jan 2027, 10:00"."""
    return f"{day:%a} {day.day} {day:%b} {day.year}, {at}"


def clock_change_ahead(month: int = 3, after: date | None = None) -> date:
    """The next last Sunday of ``month`` after ``after`` (today): in March the night Europe's
    clocks skip from 02:00 to 03:00, in October the night they repeat the hour."""
    after = after or _clinic_today()
    for year in (after.year, after.year + 1):
        last = date(year, month + 1, 1) - timedelta(days=1)
        sunday = last - timedelta(days=(last.weekday() - 6) % 7)
        if sunday > after:
            return sunday
    raise AssertionError("unreachable")


@contextmanager
def booking_warnings(caplog: Any, level: int = logging.WARNING) -> Iterator[None]:
    """``caplog`` sees the app's warnings (or its lines from ``level`` up), however the test
    is ordered: the first app not in testing mode gives the "booking" logger a handler of its
    own and stops it passing records up to the root logger, where ``caplog`` listens."""
    logger = logging.getLogger("booking")
    logger.addHandler(caplog.handler)
    try:
        with caplog.at_level(level), caplog.at_level(level, logger="booking"):
            yield
    finally:
        logger.removeHandler(caplog.handler)


def run_queued_tasks(app: Any) -> int:
    """Run every task waiting in the test app's in-memory queue, as a worker would take
    them (the sweep is not among them: it is periodic); how many ran."""
    huey = app.extensions["huey"]
    ran = 0
    while (task := huey.dequeue()) is not None:
        huey.execute(task)
        ran += 1
    return ran


def text(fragment: str) -> str:
    """Visible text of an HTML fragment, entities decoded, whitespace collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())


def field_error(page: str, field_id: str) -> str:
    """The error shown next to a field (the block its aria-describedby points to)."""
    match = re.search(rf'<div id="{re.escape(field_id)}-error"[^>]*>(.*?)</div>', page, re.S)
    assert match, f"no error is shown next to {field_id}"
    return text(match.group(1))


HEADING_RE = re.compile(r"<h([1-6])\b[^>]*>(.*?)</h\1>", re.S)


def headings(page: str) -> list[tuple[int, str]]:
    """The page's outline: each heading's level and text, in page order."""
    return [(int(level), text(inner)) for level, inner in HEADING_RE.findall(page)]


def send_each_waiting_email() -> None:
    """The worker's delivery of every email waiting, in the order they were written
    (``deliver_outbox_email``, through the app's SMTP settings): its sends, refusals and
    delivery checks are what the test reads. Inside an app context."""
    from booking.extensions import db
    from booking.notifications.services import deliver_outbox_email

    for email_id in db.session.scalars(
        sa.select(OutboxEmail.id)
        .where(OutboxEmail.status == OutboxStatus.PENDING)
        .order_by(OutboxEmail.id)
    ).all():
        deliver_outbox_email(email_id)


def deliver_waiting_emails(app: Flask) -> None:
    """The worker delivered the emails waiting: a calendar email still waiting at a
    request's next change is withdrawn by it (``lifecycle.change_email``), so a test that
    reads each step's email lets them go out between the steps."""
    from booking.extensions import db

    with app.app_context():
        db.session.execute(
            sa.update(OutboxEmail)
            .where(OutboxEmail.status == OutboxStatus.PENDING)
            .values(status=OutboxStatus.SENT)
        )
        db.session.commit()


def audited_actions(app: Flask, target_id: str) -> list[str]:
    """The actions audited about ``target_id`` (a request's reference), oldest first."""
    from booking.extensions import db

    with app.app_context():
        return list(
            db.session.scalars(
                sa.select(AuditEvent.action)
                .where(AuditEvent.target_id == target_id)
                .order_by(AuditEvent.id)
            )
        )


def request_row_is_free(app: Flask, request_id: int) -> bool:
    """Whether another connection could take the lock a change of the request takes now,
    without waiting for it."""
    from booking.requests.models import ConsultationRequest

    return row_is_free(app, ConsultationRequest.id, request_id)


def row_is_free(app: Flask, key: Any, value: int) -> bool:
    """Whether another connection could lock the row whose ``key`` (a primary key column) is
    ``value`` now, without waiting (on SQLite: whether it could write at all)."""
    from booking.extensions import db

    url = sa.make_url(app.config["SQLALCHEMY_DATABASE_URI"])
    if url.get_backend_name() == "sqlite":
        probe = sqlite3.connect(url.database, timeout=0, isolation_level=None)
        try:
            probe.execute("BEGIN IMMEDIATE")
            probe.execute("ROLLBACK")
            return True
        except sqlite3.OperationalError:
            return False
        finally:
            probe.close()
    with db.engine.connect() as conn:
        try:
            conn.execute(sa.select(key).where(key == value).with_for_update(nowait=True))
            return True
        except sa.exc.OperationalError:
            return False
        finally:
            conn.rollback()
