"""An unsent request left in a browser is hidden there after a while without use
(``DRAFT_BROWSER_IDLE_MINUTES``): a shared computer's next user (a library, a family PC, a
clinic's kiosk) must not find the patient's name, contact details and health answers. The
patient gets the link to carry on by email, to the address the request holds; nothing is lost.

Driven through the real pages with the test client (CSRF on); time moves on by setting the
draft's last save back in the database.
"""

from __future__ import annotations

import io
import re
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

from booking.extensions import db
from booking.requests.drafts import RequestDraft
from booking.timeutil import now_utc
from tests.support import (
    answer_red_flags,
    fill_every_step,
    headings,
    open_step,
    outbox_emails,
    page_proof,
    page_token,
    pdf_bytes,
    post_step,
    red_flag_answers,
    step_answers,
    upload,
)

HIDDEN = "For your privacy, an unfinished request in this browser is hidden after an hour"
# Every page that shows the draft's answers or files.
DRAFT_PAGES = (
    *(f"/request/steps/{code}" for code in ("time", "about", "symptoms", "function")),
    "/request/steps/history",
    "/request/steps/documents",
    "/request/steps/review",
    "/request/later",
    "/request/start",
)


def _unused_for(app: Flask, minutes: int) -> None:
    """Nothing saved to the browser's draft for ``minutes``."""
    with app.app_context():
        draft = db.session.scalars(select(RequestDraft)).one()
        draft.updated_at = now_utc() - timedelta(minutes=minutes)
        db.session.commit()


def _hidden_page(client: FlaskClient, path: str) -> str:
    response = client.get(path)
    assert response.status_code == 302, (path, response.status_code)
    assert response.location == "/request/hidden", path
    page = client.get(response.location)
    assert page.status_code == 200
    return page.get_data(as_text=True)


def _press(client: FlaskClient, button: str) -> TestResponse:
    """Press one of the hidden draft's buttons, as a browser sends its form."""
    page = client.get("/request/hidden").get_data(as_text=True)
    assert f'action="/request/hidden/{button}"' in page
    return client.post(f"/request/hidden/{button}", data={"csrf_token": page_token(page)})


def _resume_path(app: Flask) -> str:
    (email,) = outbox_emails(app, "draft_resume")
    link = re.search(r"https?://[^\s/]+(/request/resume/[A-Za-z0-9_-]+)", email.body_text)
    assert link
    return link.group(1)


def test_a_draft_naming_the_patient_is_hidden_after_an_hour_without_use(
    app: Flask, client: FlaskClient
) -> None:
    fill_every_step(client, files=((pdf_bytes(), "mri.pdf"),))
    _unused_for(app, 59)
    assert "Erika Mustermann" in open_step(client, "about")  # (opening a page is no save)
    _unused_for(app, 61)
    for path in DRAFT_PAGES:
        page = _hidden_page(client, path)
        for private in ("Erika", "erika.mustermann", "1970", "901820", "mri.pdf", "Ibuprofen"):
            assert private not in page, (path, private)
    assert HIDDEN in page
    assert "e\u2022\u2022\u2022@example.com" in page  # the address, for its owner to know
    assert [h for h in headings(page) if h[0] == 1] == [(1, "An unfinished request is hidden")]
    assert "Is it an emergency?" in page  # every patient page's advice
    assert len(re.findall(r'<form method="post"', page)) == 2
    assert len(re.findall(r'name="csrf_token" value="[^"]+"', page)) == 2
    assert client.get("/request/hidden").headers["Cache-Control"] == "no-store, private"


def test_the_link_is_emailed_to_the_drafts_address_and_opens_every_answer(
    app: Flask, client: FlaskClient
) -> None:
    fill_every_step(client, files=((pdf_bytes(), "mri.pdf"),))
    _unused_for(app, 90)
    sent = _press(client, "email")
    assert sent.status_code == 200
    page = sent.get_data(as_text=True)
    assert "We have emailed you a link" in page and "Carry on now" not in page
    assert "Erika" not in page
    (email,) = outbox_emails(app, "draft_resume")
    assert email.recipient == "erika.mustermann@example.com"
    # The draft is still hidden here: the link opens it.
    assert client.get("/request/steps/review").location == "/request/hidden"
    opened = client.get(_resume_path(app))
    assert opened.status_code == 303
    resume_page = client.get(opened.location).get_data(as_text=True)
    taken = client.post("/request/resume", data={"csrf_token": page_token(resume_page)})
    assert taken.status_code == 303 and taken.location == "/request/steps/review"
    # Taken over here is use (nothing was saved since): every answer and file is back.
    review = open_step(client, "review")
    for answer in ("Erika Mustermann", "erika.mustermann@example.com", "Ibuprofen 400 mg"):
        assert answer in review
    assert "mri.pdf" in review
    assert "Erika Mustermann" in open_step(client, "about")


def test_start_a_new_request_forgets_the_draft_in_this_browser_only(
    app: Flask, client: FlaskClient
) -> None:
    answer_red_flags(client, yes=["fever"])
    post_step(client, "time")
    post_step(client, "about")
    _unused_for(app, 61)
    forgot = _press(client, "forget")
    assert forgot.status_code == 303 and forgot.location == "/request/start"
    start = client.get("/request/start")
    assert start.status_code == 200
    page = start.get_data(as_text=True)
    assert "This browser has forgotten the unfinished request." in page
    assert "You have a request under way" not in page
    assert 'value="yes" checked' not in page  # not even the first step's answers
    assert client.get("/request/steps/about").location.startswith("/request/start")
    with client.session_transaction() as session:
        assert not {"request_draft", "red_flag_answers"} & set(session)
    with app.app_context():  # the draft stays, for a link already emailed, until it expires
        draft = db.session.scalars(select(RequestDraft)).one()
        assert draft.values()["full_name"] == ["Erika Mustermann"]
    # The next request is a new draft.
    assert answer_red_flags(client).status_code == 303
    with app.app_context():
        assert len(db.session.scalars(select(RequestDraft)).all()) == 2


def test_a_draft_that_names_nobody_is_not_hidden(app: Flask, client: FlaskClient) -> None:
    """Only the first step's answers and the time: nothing names the patient, and hiding it
    would lose it (there is no address to send the link to)."""
    answer_red_flags(client, yes=["fever"])
    post_step(client, "time")
    _unused_for(app, 600)
    assert "Step 2 of 7" in open_step(client, "about")
    start = client.get("/request/start")
    assert start.status_code == 200
    assert "saved at step 2: About you" in start.get_data(as_text=True)
    assert client.get("/request/hidden").location == "/request/steps/about"


@pytest.mark.parametrize("token", ["expired", None], ids=["expired-token", "no-token"])
@pytest.mark.parametrize("code", ["review", "about", "documents"])
def test_a_page_whose_form_expired_after_the_hour_shows_nothing_of_the_draft(
    app: Flask, client: FlaskClient, code: str, token: str | None
) -> None:
    """An expired form saves nothing, so it is no use of the draft: the page that says so
    showed every answer (the review) or the files, to anyone posting a stale token."""
    fill_every_step(client, files=((pdf_bytes(), "mri.pdf"),))
    _unused_for(app, 61)
    data = {"nav": "next", **({"csrf_token": token} if token else {})}
    if code == "review":
        data |= {"privacy_consent": "y"}
    sent = client.post(f"/request/steps/{code}", data=data)
    assert sent.status_code == 303 and sent.location == "/request/hidden"
    page = sent.get_data(as_text=True) + _hidden_page(client, f"/request/steps/{code}")
    for private in ("Erika", "erika.mustermann", "1970", "901820", "mri.pdf", "Ibuprofen"):
        assert private not in page, private
    assert outbox_emails(app, "request_received") == []


def test_within_the_hour_a_page_whose_form_expired_is_shown_again(
    app: Flask, client: FlaskClient
) -> None:
    fill_every_step(client)
    _unused_for(app, 59)
    sent = client.post("/request/steps/review", data={"csrf_token": "expired", "nav": "next"})
    assert sent.status_code == 400
    assert "Erika Mustermann" in sent.get_data(as_text=True)


def test_a_draft_holding_only_documents_is_hidden_after_an_hour(
    app: Flask, client: FlaskClient
) -> None:
    """A file names the patient (its name, a report's header) as surely as the form does."""
    answer_red_flags(client)
    assert upload(client, (pdf_bytes(), "MRI Erika Mustermann.pdf")).status_code == 303
    _unused_for(app, 59)
    assert "MRI Erika Mustermann.pdf" in open_step(client, "documents")
    _unused_for(app, 61)
    for path in DRAFT_PAGES:
        page = _hidden_page(client, path)
        assert "Erika" not in page, path
    # No address to send the link to: only a new request is offered.
    assert "no email address" in page and "/request/hidden/email" not in page


def test_a_page_sent_after_the_hour_is_saved_and_goes_on(app: Flask, client: FlaskClient) -> None:
    answer_red_flags(client)
    post_step(client, "time")
    post_step(client, "about")
    shown = open_step(client, "symptoms")  # the page left on screen
    _unused_for(app, 120)
    data = {**step_answers("symptoms"), "csrf_token": page_token(shown), **page_proof(shown)}
    sent = client.post("/request/steps/symptoms", data=data)
    assert sent.status_code == 303 and sent.location == "/request/steps/function"
    assert client.get(sent.location).status_code == 200  # just saved: shown
    with app.app_context():
        draft = db.session.scalars(select(RequestDraft)).one()
        assert draft.values()["spine_region"] == ["lower_back"]


def _saved(app: Flask) -> tuple[Any, ...]:
    """The browser's draft as stored: its answers, step, last save and files."""
    with app.app_context():
        draft = db.session.scalars(select(RequestDraft)).one()
        files = [(document.original_name, document.description) for document in draft.documents]
        return draft.values(), draft.step, draft.updated_at, files


def _open_page(client: FlaskClient, path: str) -> str:
    response = client.get(path)
    assert response.status_code == 200, path
    return response.get_data(as_text=True)


def _hidden_token(client: FlaskClient) -> str:
    """The form token of the hidden draft's page: all that the next user of the computer has
    (the page carries no proof of a page of the draft)."""
    page = client.get("/request/hidden").get_data(as_text=True)
    assert "draft_page" not in page
    return page_token(page)


@pytest.mark.parametrize("nav", ["next", "stay", "later", "back"])
@pytest.mark.parametrize("code", ["time", "about", "symptoms", "review"])
def test_the_hidden_pages_token_saves_nothing_on_any_step(
    app: Flask, client: FlaskClient, code: str, nav: str
) -> None:
    """Form tokens belong to the session, not to a form: the hidden page's works on every
    step. A page sent after the hour is saved (``test_a_page_sent_after_the_hour_...``), and
    saving is use: without the proof of a page shown, such a post would open the draft again
    (the review shows every answer), its blanks over the saved answers, or send it."""
    fill_every_step(client, files=((pdf_bytes(), "mri.pdf"),))
    assert page_proof(open_step(client, code))  # every page of the draft carries one
    _unused_for(app, 61)
    before = _saved(app)
    data = {"csrf_token": _hidden_token(client), "nav": nav, "privacy_consent": "y"}
    sent = client.post(f"/request/steps/{code}", data=data)
    assert sent.status_code == 303 and sent.location == "/request/hidden"
    assert _saved(app) == before  # nothing saved (no blanks), and no use
    page = _hidden_page(client, f"/request/steps/{code}") + _hidden_page(client, "/request/later")
    for private in ("Erika", "erika.mustermann", "1970", "901820", "mri.pdf", "Ibuprofen"):
        assert private not in page, private
    assert outbox_emails(app, "request_received") == []


@pytest.mark.parametrize("scripts", [False, True], ids=["form", "script"])
def test_the_hidden_pages_token_adds_and_removes_no_document(
    app: Flask, client: FlaskClient, scripts: bool
) -> None:
    fill_every_step(client, files=((pdf_bytes(), "mri.pdf"),))
    assert page_proof(open_step(client, "documents"))
    _unused_for(app, 61)
    before = _saved(app)
    with app.app_context():
        (document_id,) = db.session.scalars(select(RequestDraft)).one().documents
        document_id = document_id.id
    token = _hidden_token(client)
    headers = {"Accept": "application/json"} if scripts else {}
    added = client.post(
        "/request/steps/documents",
        data={"csrf_token": token, "files": [(io.BytesIO(pdf_bytes()), "other.pdf")]},
        content_type="multipart/form-data",
        headers=headers,
    )
    if scripts:  # uploads.js shows the message on the file's row
        assert added.status_code == 403 and added.json is not None
        assert added.json["ok"] is False and "Please reload the page" in added.json["message"]
        assert "mri" not in added.get_data(as_text=True)
    else:
        assert added.status_code == 303 and added.location == "/request/hidden"
    data = {"csrf_token": token, "remove": str(document_id), f"description-{document_id}": ""}
    removed = client.post("/request/steps/documents", data=data, headers=headers)
    assert removed.status_code == (403 if scripts else 303)
    assert _saved(app) == before
    assert client.get("/request/steps/documents").location == "/request/hidden"


def test_the_hidden_pages_token_neither_answers_the_first_step_nor_emails_the_link(
    app: Flask, client: FlaskClient
) -> None:
    """The first step saves into the draft too, and "Finish later" emails its link to the
    address typed: the hidden draft's link goes only to its own address."""
    fill_every_step(client)
    shown = {path: _open_page(client, path) for path in ("/request/later", "/request/start")}
    _unused_for(app, 61)
    before = _saved(app)
    token = _hidden_token(client)
    first = client.post("/request/start", data={**red_flag_answers(), "csrf_token": token})
    assert first.status_code == 303 and first.location == "/request/hidden"
    later = client.post("/request/later", data={"csrf_token": token, "email": "x@example.org"})
    assert later.status_code == 303 and later.location == "/request/hidden"
    assert _saved(app) == before
    assert outbox_emails(app, "draft_resume") == []
    assert client.get("/request/steps/review").location == "/request/hidden"
    # The pages shown before the hour carry the proof: sent now, they are taken.
    data = {"csrf_token": token, "email": "erika.mustermann@example.com"}
    later = client.post("/request/later", data=data | page_proof(shown["/request/later"]))
    assert later.status_code == 200
    assert len(outbox_emails(app, "draft_resume")) == 1
    data = {**red_flag_answers(), "csrf_token": token, **page_proof(shown["/request/start"])}
    first = client.post("/request/start", data=data)
    assert first.status_code == 303 and first.location == "/request/steps/review"


def test_a_proof_from_another_drafts_page_is_refused(app: Flask, client: FlaskClient) -> None:
    """The proof is this draft's: one from a draft of another browser (the same kept page,
    filled in for each) opens nothing here, and works in its own browser."""
    other = app.test_client()
    for browser in (client, other):
        answer_red_flags(browser)
        post_step(browser, "time")
        post_step(browser, "about")
    mine, theirs = open_step(client, "symptoms"), open_step(other, "symptoms")
    assert page_proof(mine) != page_proof(theirs)
    with app.app_context():
        for draft in db.session.scalars(select(RequestDraft)):
            draft.updated_at = now_utc() - timedelta(minutes=61)
        db.session.commit()
    answers = step_answers("symptoms")
    refused = client.post(
        "/request/steps/symptoms",
        data={**answers, "csrf_token": page_token(mine), **page_proof(theirs)},
    )
    assert refused.status_code == 303 and refused.location == "/request/hidden"
    sent = other.post(
        "/request/steps/symptoms",
        data={**answers, "csrf_token": page_token(theirs), **page_proof(theirs)},
    )
    assert sent.status_code == 303 and sent.location == "/request/steps/function"
    assert client.get("/request/steps/symptoms").location == "/request/hidden"


def test_a_draft_without_a_usable_address_offers_only_a_new_request(
    app: Flask, client: FlaskClient
) -> None:
    answer_red_flags(client)
    post_step(client, "time")
    post_step(client, "about", {"full_name": "Erika Mustermann", "email": "not an address"})
    _unused_for(app, 61)
    page = _hidden_page(client, "/request/steps/about")
    assert "no email address" in page and "/request/hidden/email" not in page
    assert "Erika" not in page and "not an address" not in page
    refused = client.post("/request/hidden/email", data={"csrf_token": page_token(page)})
    assert refused.status_code == 422
    assert outbox_emails(app, "draft_resume") == []


class TestAddressLimit:
    """The hidden draft's button counts against the same limit per address as "Finish
    later": the clinic's emails cannot be sent to an inbox again and again either way."""

    @pytest.fixture
    def app_settings(self, app_settings: dict[str, Any]) -> dict[str, Any]:
        app_settings["RESUME_EMAIL_ADDRESS_RATE_LIMIT"] = "2 per hour"
        return app_settings

    def test_links_asked_for_by_finish_later_count(self, app: Flask, client: FlaskClient) -> None:
        answer_red_flags(client)
        post_step(client, "time")
        post_step(client, "about")
        for _n in range(2):
            page = client.get("/request/later").get_data(as_text=True)
            data = {"csrf_token": page_token(page), "email": "erika.mustermann@example.com"}
            assert client.post("/request/later", data=data).status_code == 200
        _unused_for(app, 61)
        refused = _press(client, "email")
        assert refused.status_code == 429
        page = refused.get_data(as_text=True)
        assert "Please use the newest email, or wait an hour" in page
        assert len(outbox_emails(app, "draft_resume")) == 2


class TestOtherTimes:
    @pytest.fixture
    def app_settings(self, app_settings: dict[str, Any]) -> dict[str, Any]:
        app_settings["DRAFT_BROWSER_IDLE_MINUTES"] = 20
        return app_settings

    def test_the_page_says_the_time_set(self, app: Flask, client: FlaskClient) -> None:
        answer_red_flags(client)
        post_step(client, "time")
        post_step(client, "about")
        _unused_for(app, 21)
        page = _hidden_page(client, "/request/steps/symptoms")
        assert "is hidden after 20 minutes without use." in page


class TestTurnedOff:
    @pytest.fixture
    def app_settings(self, app_settings: dict[str, Any]) -> dict[str, Any]:
        app_settings["DRAFT_BROWSER_IDLE_MINUTES"] = 0
        return app_settings

    def test_a_draft_is_never_hidden(self, app: Flask, client: FlaskClient) -> None:
        fill_every_step(client)
        _unused_for(app, 6 * 24 * 60)
        assert "Erika Mustermann" in open_step(client, "review")
        assert client.get("/request/hidden").location == "/request/steps/review"


def test_a_head_request_to_a_hidden_drafts_page_is_sent_where_its_get_is(
    app: Flask, client: FlaskClient
) -> None:
    """A HEAD is answered by the GET's view: taken for a post, it got the expired form's
    answer (a 303, or the form page) instead of the GET's way to the hidden page."""
    answer_red_flags(client)
    assert post_step(client, "time").status_code == 303
    assert post_step(client, "about").status_code == 303
    _unused_for(app, 61)
    for path in DRAFT_PAGES:
        shown, head = client.get(path), client.head(path)
        assert (head.status_code, head.location) == (302, "/request/hidden"), path
        assert (shown.status_code, shown.location) == (302, "/request/hidden"), path
