"""The request as steps, saved in a server-side draft at every step (issue #16).

Driven through the real pages with the test client: CSRF on, answers posted as a browser posts
them, documents uploaded into the draft; the stored request is read back from the database.
"""

from __future__ import annotations

import base64
import io
import re
import threading
import zlib
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from icalendar import Calendar
from sqlalchemy import func, select
from werkzeug.test import TestResponse

from booking.documents.models import Document
from booking.extensions import db
from booking.notifications.models import OutboxEmail
from booking.requests.drafts import DraftDocument, RequestDraft, purge_expired_drafts
from booking.requests.models import ConsultationRequest
from booking.scheduling.availability import open_slots, parse_slot_key
from booking.scheduling.models import AppointmentType
from booking.scheduling.services import SlotChoice
from booking.timeutil import now_utc
from tests.factories import make_request
from tests.support import (
    CSRF_RE,
    Clinic,
    answer_red_flags,
    copy_session_cookie,
    file_part,
    fill_every_step,
    open_step,
    outbox_emails,
    page_token,
    pdf_bytes,
    post_step,
    requests_stored,
    session_cookie,
    step_answers,
    stored_files,
    text,
    upload,
    valid_answers,
)


def test_the_whole_request_in_steps_is_stored_once_with_its_documents(
    app: Flask, client: FlaskClient
) -> None:
    fill_every_step(client, files=((pdf_bytes(), "mri.pdf"),))
    review = open_step(client, "review")
    assert "Step 7 of 7" in review
    assert "Erika Mustermann" in review and "mri.pdf" in review
    response = post_step(client, "review")
    assert response.status_code == 303 and response.location.endswith("/request/submitted")
    with app.app_context():
        consultation = db.session.scalars(select(ConsultationRequest)).one()
        assert consultation.patient.full_name == "Erika Mustermann"
        assert consultation.history.spine_region == "lower_back"
        assert consultation.history.odi_sections_answered == 9
        assert [d.original_name for d in consultation.documents] == ["mri.pdf"]
        draft = db.session.scalars(select(RequestDraft)).one()
        assert draft.request_id == consultation.id and draft.values() == {}
        assert db.session.scalar(select(func.count()).select_from(DraftDocument)) == 0

    # Back after sending, then Send again: the same request is shown, no second one stored.
    back = client.get("/request/steps/review")
    assert back.status_code == 303 and back.location.endswith("/request/submitted")
    assert requests_stored(app) == 1


def test_each_step_is_checked_when_the_patient_leaves_it(client: FlaskClient) -> None:
    answer_red_flags(client)
    post_step(client, "time")
    response = post_step(client, "about", step_answers("about", valid_answers(full_name="")))
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "Please enter your full name." in page
    assert "erika.mustermann@example.com" in page  # the other answers are kept on the page
    # ... and saved: a reload shows them.
    assert "erika.mustermann@example.com" in open_step(client, "about")
    # Back keeps everything too, without checking.
    back = post_step(client, "about", step_answers("about", valid_answers(full_name="")), "back")
    assert back.status_code == 303 and back.location.endswith("/request/steps/time")


def test_an_expired_form_keeps_the_posted_answers_and_saves_nothing(
    client: FlaskClient,
) -> None:
    answer_red_flags(client)
    post_step(client, "time")
    open_step(client, "about")
    data = {**step_answers("about"), "csrf_token": "expired", "nav": "next"}
    response = client.post("/request/steps/about", data=data)
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "press the button again" in page and "Erika Mustermann" in page
    assert "Erika Mustermann" not in open_step(client, "about")
    token = CSRF_RE.search(page).group(1)  # the page carries a fresh token that works
    again = client.post("/request/steps/about", data={**data, "csrf_token": token})
    assert again.status_code == 303


def test_a_file_sent_from_an_expired_page_is_named_to_choose_again(
    client: FlaskClient,
) -> None:
    """The files of an expired page's post are not kept (unchecked by the token): each is
    named to choose again; with scripts, the answer brings a token for "Try again"."""
    fill_every_step(client)
    response = upload(client, (pdf_bytes(), "mri.pdf"), token="expired")
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert (
        "<strong><bdi>mri.pdf</bdi></strong>: Not added: the page had expired. Please choose "
        "it again." in page
    )
    scripted = client.post(
        "/request/steps/documents",
        data={"csrf_token": "expired", "files": [file_part((pdf_bytes(), "mri.pdf"))]},
        content_type="multipart/form-data",
        headers={"Accept": "application/json"},
    )
    assert scripted.status_code == 400
    answer = scripted.get_json()
    assert answer["ok"] is False and answer["token"]
    again = client.post(
        "/request/steps/documents",
        data={"csrf_token": answer["token"], "files": [file_part((pdf_bytes(), "mri.pdf"))]},
        content_type="multipart/form-data",
        headers={"Accept": "application/json"},
    )
    assert again.status_code == 200 and again.get_json()["ok"] is True


def test_the_scripts_are_told_whether_a_refused_file_is_worth_sending_again(
    app: Flask, client: FlaskClient, tmp_path: Path
) -> None:
    """uploads.js offers "Try again" on a refused file's row only when the same file may go
    next time: not for a file that is not a document, nor for one already added (as not for
    one too large); yes for a scanner that is down, which may be back in a minute."""
    fill_every_step(client, files=((pdf_bytes(), "mri.pdf"),))

    def scripted(content: bytes, name: str) -> dict[str, Any]:
        response = client.post(
            "/request/steps/documents",
            data={
                "csrf_token": page_token(open_step(client, "documents")),
                "files": [file_part((content, name))],
            },
            content_type="multipart/form-data",
            headers={"Accept": "application/json"},
        )
        assert response.status_code in (422, 503)
        return response.get_json()

    assert scripted(b"just text", "notes.pdf")["retry"] is False
    assert scripted(pdf_bytes(), "mri-again.pdf")["retry"] is False  # already added
    app.config.update(CLAMAV_ENABLED=True, CLAMAV_ADDRESS=str(tmp_path / "nobody-listens.sock"))
    down = scripted(pdf_bytes("CT"), "ct.pdf")
    assert "try again later" in down["message"] and down["retry"] is True


def test_a_correction_does_not_drop_the_documents(client: FlaskClient) -> None:
    fill_every_step(client, files=((pdf_bytes(), "a.pdf"), (pdf_bytes("CT"), "b.pdf")))
    # Send without consent: the review asks for it, and the documents are still there.
    response = post_step(client, "review", {})
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "Please confirm that you have read the privacy notice." in page
    assert "a.pdf" in page and "b.pdf" in page


def test_a_refused_file_is_named_and_the_others_are_kept(app: Flask, client: FlaskClient) -> None:
    answer_red_flags(client)
    response = upload(client, (pdf_bytes(), "good.pdf"), (b"MZ\x90\x00 not a pdf", "bad.pdf"))
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "bad.pdf" in page and "not a PDF, JPEG or PNG" in page
    documents = open_step(client, "documents")
    assert "good.pdf" in documents and "bad.pdf" not in documents
    with app.app_context():
        assert len(stored_files(Path(app.config["UPLOAD_DIR"]))) == 1


def test_the_same_file_chosen_twice_is_kept_once(app: Flask, client: FlaskClient) -> None:
    """Chosen again (under the same or another name), a file would be counted and sent
    twice: the second is refused with the reason, and its stored copy removed."""
    answer_red_flags(client)
    assert upload(client, (pdf_bytes(), "mri.pdf")).status_code == 303
    response = upload(client, (pdf_bytes(), "mri (1).pdf"), (pdf_bytes("CT"), "ct.pdf"))
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "mri (1).pdf</bdi></strong>: You have already added this file." in page
    documents = open_step(client, "documents")
    assert "mri.pdf" in documents and "ct.pdf" in documents and "mri (1).pdf" not in documents
    assert (
        "mri.pdf</bdi></strong> · 1 kB" in documents
    )  # sizes as the reader's language writes them
    with app.app_context():
        assert len(stored_files(Path(app.config["UPLOAD_DIR"]))) == 2


def test_a_file_can_be_removed(app: Flask, client: FlaskClient) -> None:
    answer_red_flags(client)
    upload(client, (pdf_bytes(), "wrong.pdf"))
    page = open_step(client, "documents")
    document_id = re.search(r'name="remove" value="(\d+)"', page).group(1)
    token = CSRF_RE.search(page).group(1)
    response = client.post(
        "/request/steps/documents", data={"csrf_token": token, "remove": document_id}
    )
    assert response.status_code == 303
    assert "wrong.pdf" not in open_step(client, "documents")
    with app.app_context():
        assert stored_files(Path(app.config["UPLOAD_DIR"])) == []


def test_finish_later_emails_a_link_that_opens_the_draft_elsewhere(
    app: Flask, client: FlaskClient
) -> None:
    answer_red_flags(client)
    post_step(client, "time")
    post_step(client, "about")
    page = client.get("/request/later").get_data(as_text=True)
    assert "erika.mustermann@example.com" in page
    token = CSRF_RE.search(page).group(1)
    sent = client.post(
        "/request/later", data={"csrf_token": token, "email": "erika.mustermann@example.com"}
    )
    assert sent.status_code == 200
    with app.app_context():
        email = db.session.scalars(
            select(OutboxEmail).where(OutboxEmail.template == "draft_resume")
        ).one()
        link = re.search(r"https?://[^\s]+/request/resume/[A-Za-z0-9_-]+", email.body_text)
        assert link and "Erika" not in email.body_text  # no answers in the email
        # Until when, to the minute, as every email writes a time ("Sat 12 Dec 2026, 17:45"),
        # in the clinic's zone, named: the patient may open the link elsewhere.
        until = r"works until \w+ \d+ \w+ \d{4}, \d\d:\d\d, Germany \(Berlin\) Time\."
        assert re.search(until, email.body_text) and re.search(until, email.body_html)
    path = link.group(0).split("://", 1)[1].split("/", 1)[1].join(["/", ""])
    # An email scanner or a link preview opens the link first: a look takes nothing over.
    scanner = app.test_client()
    looked = scanner.get(path, follow_redirects=True)
    assert looked.status_code == 200 and "Carry on with my request" in looked.get_data(True)
    assert client.get("/request/steps/about").status_code == 200  # still the patient's

    other = app.test_client()  # another device
    opened = other.get(path)
    assert opened.status_code == 303 and opened.location.endswith("/request/resume")
    assert opened.headers["Referrer-Policy"] == "no-referrer"  # the address holds the token
    page = other.get(opened.location).get_data(as_text=True)
    assert "Carry on with your request" in page and "Erika" not in page
    taken = other.post("/request/resume", data={"csrf_token": CSRF_RE.search(page).group(1)})
    assert taken.status_code == 303 and taken.location.endswith("/request/steps/symptoms")
    assert "Erika Mustermann" in open_step(other, "about")
    # The scanner's look does not take it over afterwards either: the link is used up.
    assert scanner.get("/request/resume").status_code == 404
    # The first browser's token ended; it starts again from the first step.
    assert client.get("/request/steps/about").location.endswith("/request/start")
    # The link works once: whoever opens it again (after the patient typed more answers on
    # the other device) gets neither the draft nor the patient's hold on it.
    again = app.test_client()
    reopened = again.get(path)
    assert reopened.status_code == 404
    assert reopened.headers["Referrer-Policy"] == "no-referrer"
    assert "Each link works once" in reopened.get_data(as_text=True)
    assert "Erika Mustermann" in open_step(other, "about")


def test_the_finish_later_email_is_in_the_language_the_patient_reads_now(
    app: Flask, client: FlaskClient
) -> None:
    """Begun in English, switched to Spanish: the email (and the request, when sent) follow
    the language the pages are read in, not the first page's."""
    answer_red_flags(client)
    post_step(client, "time")
    page = client.get("/request/later?lang=es").get_data(as_text=True)
    token = CSRF_RE.search(page).group(1)
    sent = client.post("/request/later", data={"csrf_token": token, "email": "e@example.com"})
    assert sent.status_code == 200
    with app.app_context():
        email = db.session.scalars(
            select(OutboxEmail).where(OutboxEmail.template == "draft_resume")
        ).one()
    assert email.subject == "Su solicitud sin terminar: continúe donde lo dejó"


@pytest.mark.parametrize(
    ("yes", "title"),
    [
        (["fever"], "Please contact your doctor today"),
        # Urgent only together (``triage.COMBINATIONS``): each alone is a risk to review.
        (["cancer_history", "night_pain"], "Please contact your doctor today"),
        ([], None),
    ],
)
def test_the_finish_later_email_repeats_the_drafts_advice(
    app: Flask, client: FlaskClient, yes: list[str], title: str | None
) -> None:
    """A patient told to contact their doctor today who leaves to finish later reads the
    advice again, first, and that the clinic knows nothing until the request is sent."""
    answer_red_flags(client, yes=yes)
    post_step(client, "time")
    token = CSRF_RE.search(client.get("/request/later").get_data(as_text=True)).group(1)
    sent = client.post("/request/later", data={"csrf_token": token, "email": "e@example.com"})
    assert sent.status_code == 200
    (email,) = outbox_emails(app, "draft_resume")
    nobody = "Nobody at the clinic knows about these answers until you send your request."
    for body in (email.body_text, email.body_html):
        if title is None:
            assert nobody not in body and "doctor today" not in body
        else:
            assert body.index(title) < body.index(nobody) < body.index("Hello,")
            assert "If you cannot reach them, call an out-of-hours service." in body
            # The words of before sending: the clinic calls once the request is sent.
            assert "once it is sent, we will call you back soon" in body
            assert "evaluation, and we will call you back soon" not in body
        assert body.count("go to the nearest emergency department now") == 1  # the footer's


def test_finish_later_saves_what_was_typed_on_the_page_first(client: FlaskClient) -> None:
    """ "Finish later" is a button of the step's form: the answers on the page (even half
    done) are saved before the email form opens, and the draft stays at this step."""
    answer_red_flags(client)
    post_step(client, "time")
    response = post_step(client, "about", {"full_name": "Erika Halbfertig"}, nav="later")
    assert response.status_code == 303 and response.location.endswith("/request/later")
    assert "Erika Halbfertig" in open_step(client, "about")
    page = client.get("/request/start").get_data(as_text=True)
    assert "saved at step 2: About you" in page


def test_switching_language_on_a_step_keeps_what_was_typed(client: FlaskClient) -> None:
    """On a step the language is a button of the step's form (a link would drop what was
    typed and not saved yet): the answers are saved and the same page comes back in the
    other language."""
    answer_red_flags(client)
    post_step(client, "time")
    page = open_step(client, "about")
    assert 'form="step-form" formaction="/request/steps/about?lang=es"' in page
    token = CSRF_RE.search(page).group(1)
    response = client.post(
        "/request/steps/about?lang=es",
        data={"csrf_token": token, "nav": "stay", "full_name": "Erika a medias"},
    )
    assert response.status_code == 303 and response.location.endswith("/request/steps/about")
    again = open_step(client, "about")
    assert '<html lang="es">' in again and "Sus datos" in again
    assert "Erika a medias" in again


def test_finish_later_sends_at_most_five_links_for_one_draft(
    app: Flask, client: FlaskClient
) -> None:
    """The form cannot be used to send the clinic's emails to address after address."""
    answer_red_flags(client)
    post_step(client, "time")

    def finish_later(number: int) -> TestResponse:
        token = CSRF_RE.search(client.get("/request/later").get_data(as_text=True)).group(1)
        return client.post(
            "/request/later", data={"csrf_token": token, "email": f"person{number}@example.com"}
        )

    assert [finish_later(n).status_code for n in range(5)] == [200] * 5
    refused = finish_later(5)
    assert refused.status_code == 422
    page = refused.get_data(as_text=True)
    assert "We have already sent the link for this request 5 times." in page
    assert "person5@example.com" in page  # the typed address is kept on the page
    with app.app_context():
        sent = db.session.scalars(
            select(OutboxEmail.recipient).where(OutboxEmail.template == "draft_resume")
        ).all()
    assert sorted(sent) == [f"person{n}@example.com" for n in range(5)]


class TestFinishLaterPerAddress:
    """The limit per draft is one first step away from a new draft: an address typed again
    and again, from draft after draft and network after network, is refused all the same."""

    @pytest.fixture
    def app_settings(self, app_settings: dict[str, Any]) -> dict[str, Any]:
        app_settings["RESUME_EMAIL_ADDRESS_RATE_LIMIT"] = "3 per hour"
        return app_settings

    @staticmethod
    def finish_later(app: Flask, network_address: str, email: str) -> TestResponse:
        client = app.test_client()  # a new browser: a new draft
        client.environ_base["REMOTE_ADDR"] = network_address
        answer_red_flags(client)
        token = CSRF_RE.search(client.get("/request/later").get_data(as_text=True)).group(1)
        return client.post("/request/later", data={"csrf_token": token, "email": email})

    def test_the_fourth_link_to_one_address_in_an_hour_is_refused_from_any_draft(
        self, app: Flask
    ) -> None:
        for n in range(3):
            assert self.finish_later(app, f"10.0.{n}.1", "someone@example.com").status_code == 200
        # Typed another way, it is the same address.
        refused = self.finish_later(app, "10.0.9.1", " Someone@Example.com")
        assert refused.status_code == 429
        page = " ".join(refused.get_data(as_text=True).split())
        assert "We have sent several links to this email address recently" in page
        assert "Traceback" not in page
        # Another address is not held up.
        assert self.finish_later(app, "10.0.9.1", "patient@example.com").status_code == 200
        with app.app_context():
            sent = db.session.scalars(
                select(OutboxEmail.recipient).where(OutboxEmail.template == "draft_resume")
            ).all()
        assert sorted(sent) == ["patient@example.com"] + ["someone@example.com"] * 3


def test_expired_drafts_are_purged_with_their_files(app: Flask, client: FlaskClient) -> None:
    answer_red_flags(client)
    upload(client, (pdf_bytes(), "mri.pdf"))
    upload_dir = Path(app.config["UPLOAD_DIR"])
    assert len(stored_files(upload_dir)) == 1
    with app.app_context():
        assert purge_expired_drafts() == 0
        assert purge_expired_drafts(now_utc() + timedelta(days=8)) == 1
        assert db.session.scalar(select(func.count()).select_from(RequestDraft)) == 0
    assert stored_files(upload_dir) == []
    assert client.get("/request/steps/about").location.endswith("/request/start")


def test_expired_drafts_are_purged_in_batches_each_committed_on_its_own(app: Flask) -> None:
    """After a long outage more drafts than a batch are due: each batch is its own
    transaction (no one huge one holding the write lock), and every draft goes with its
    file; a draft not yet expired keeps its own."""
    from sqlalchemy import event

    from booking.documents.storage import DocumentUpload
    from booking.requests.drafts import add_document, start_draft

    upload_dir = Path(app.config["UPLOAD_DIR"])
    with app.app_context():
        for n in range(6):
            draft, _token = start_draft("en", {}, "about")
            add_document(draft, DocumentUpload(io.BytesIO(pdf_bytes(f"Report {n}")), "mri.pdf"))
        draft.expires_at = now_utc() + timedelta(days=30)  # the last one: saved again lately
        db.session.commit()
        assert len(stored_files(upload_dir)) == 6
        commits: list[object] = []

        def committed(connection: object) -> None:
            commits.append(connection)

        event.listen(db.engine, "commit", committed)
        try:
            assert purge_expired_drafts(now_utc() + timedelta(days=8), batch_size=2) == 5
        finally:
            event.remove(db.engine, "commit", committed)
        assert len(commits) == 3  # 2 + 2 + 1 drafts
        assert db.session.scalars(select(RequestDraft.id)).all() == [draft.id]
        assert db.session.scalar(select(func.count()).select_from(DraftDocument)) == 1
    assert len(stored_files(upload_dir)) == 1


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_draft_being_sent_as_it_expires_keeps_its_files(app: Flask, client: FlaskClient) -> None:
    """The purge skips a draft another transaction holds (being sent, its documents passing
    to the request): on PostgreSQL the sending holds the draft's row FOR UPDATE, here by a
    second connection, and the purge must leave that draft and its file alone."""
    from sqlalchemy import text

    answer_red_flags(client)
    upload(client, (pdf_bytes(), "mri.pdf"))
    upload_dir = Path(app.config["UPLOAD_DIR"])
    with app.app_context():
        draft_id = db.session.scalars(select(RequestDraft.id)).one()
        connection = db.engine.connect()
        transaction = connection.begin()
        connection.execute(
            text("SELECT id FROM request_draft WHERE id = :id FOR UPDATE"), {"id": draft_id}
        )
        try:
            db.session.execute(text("SET LOCAL lock_timeout = '2s'"))  # fail, never hang
            assert purge_expired_drafts(now_utc() + timedelta(days=8)) == 0
        finally:
            transaction.rollback()
            connection.close()
        assert db.session.scalar(select(func.count()).select_from(DraftDocument)) == 1
        assert len(stored_files(upload_dir)) == 1
        assert purge_expired_drafts(now_utc() + timedelta(days=8)) == 1  # once released
    assert stored_files(upload_dir) == []


def test_the_worker_purges_expired_drafts_every_hour(app: Flask, client: FlaskClient) -> None:
    answer_red_flags(client)
    upload(client, (pdf_bytes(), "mri.pdf"))
    upload_dir = Path(app.config["UPLOAD_DIR"])
    task = app.extensions["spineconsult.purge_expired_drafts"]
    task.call_local()  # not expired yet: kept
    assert len(stored_files(upload_dir)) == 1
    app.config["DRAFT_DAYS"] = 0
    answer_red_flags(client)  # saved again now, expiring at once
    task.call_local()
    assert stored_files(upload_dir) == []
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(RequestDraft)) == 0


def test_a_draft_sent_twice_at_once_becomes_one_request(app: Flask) -> None:
    """Two sends racing (two tabs, a double click): one request, and both see it."""
    client = app.test_client()
    fill_every_step(client, files=((pdf_bytes(), "mri.pdf"),))
    page = open_step(client, "review")
    token = CSRF_RE.search(page).group(1)
    data = {**step_answers("review"), "csrf_token": token, "nav": "send"}
    results: list[int] = []

    def send() -> None:
        other = app.test_client()
        copy_session_cookie(client, other)
        results.append(other.post("/request/steps/review", data=data).status_code)

    threads = [threading.Thread(target=send) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [303, 303]
    assert requests_stored(app) == 1
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Document)) == 1


def first_open_time(app: Flask, clinic: Clinic) -> str:
    with app.app_context():
        appointment_type = db.session.get(AppointmentType, clinic.type)
        start = now_utc() + timedelta(days=2)
        return open_slots(appointment_type, start, start + timedelta(days=7))[0].key


def test_the_confirmation_shows_the_held_time_a_calendar_file_and_the_private_link(
    app: Flask, client: FlaskClient, clinic: Clinic
) -> None:
    slot = first_open_time(app, clinic)
    with app.app_context():  # named on every page and email that shows the time
        kind = db.session.get(AppointmentType, clinic.type).name
    answer_red_flags(client, query=f"?type={clinic.type}&slot={slot}")
    time_step = open_step(client, "time")
    assert "Your chosen time" in time_step
    assert f"<bdi>{kind}</bdi> · " in time_step
    response = post_step(
        client, "time", {**step_answers("time"), "appointment_type": str(clinic.type), "slot": slot}
    )
    assert response.status_code == 303
    for code in ("about", "symptoms", "function", "history"):
        assert post_step(client, code).status_code == 303
    post_step(client, "documents", {})
    review = open_step(client, "review")
    assert "Your chosen time" in review and f"<bdi>{kind}</bdi> · " in review
    assert "You have not chosen a time" not in review
    assert post_step(client, "review").status_code == 303

    page = client.get("/request/submitted").get_data(as_text=True)
    assert "Add to calendar" in page
    # Each name isolated (a right-to-left one would take the dots into its run).
    assert f"<bdi>{kind}</bdi> · <bdi>" in page
    calendar = client.get("/request/submitted/appointment.ics")
    assert calendar.status_code == 200 and calendar.mimetype == "text/calendar"
    assert "BEGIN:VEVENT" in calendar.get_data(as_text=True)
    # An event to import (PUBLISH), not an invitation to answer: no attendee, no RSVP.
    downloaded = Calendar.from_ical(calendar.get_data(as_text=True))
    assert str(downloaded["METHOD"]) == "PUBLISH"
    (event,) = downloaded.walk("VEVENT")
    assert "ATTENDEE" not in event and "RSVP" not in calendar.get_data(as_text=True)
    link = re.search(r'href="(/manage/open/[^"]+)"', page).group(1)
    opened = client.get(link)
    assert opened.status_code in (302, 303) and "/manage/SC-" in opened.location
    assert f"<bdi>{kind}</bdi> · " in client.get(opened.location).get_data(as_text=True)
    with app.app_context():
        consultation = db.session.scalars(select(ConsultationRequest)).one()
        assert consultation.appointment is not None and consultation.appointment.active
        received = db.session.scalars(
            select(OutboxEmail).where(OutboxEmail.template == "request_received")
        ).one()
        assert f", {kind}, " in received.body_text
        # The same event as the email's invitation: it updates that one, never a second.
        (invited,) = Calendar.from_ical(received.attachment_body).walk("VEVENT")
        assert (str(event["UID"]), int(event["SEQUENCE"])) == (
            str(invited["UID"]),
            int(invited["SEQUENCE"]),
        )


def test_the_review_says_when_no_time_is_held_and_links_to_the_picker(
    app: Flask, client: FlaskClient, clinic: Clinic
) -> None:
    """A patient who picked a time but left before saving it (or never picked one) is told
    on the review, before sending, that they hold no time: on the kept page too."""
    fill_every_step(client)
    for _view in range(2):  # the first view renders the page; the second fills it in
        review = open_step(client, "review")
        assert "You have not chosen a time: we will contact you to offer an appointment." in review
        assert 'href="/request/time"' in review
        assert "Your chosen time" not in review
    # A time picked and then taken by someone else: said too.
    slot = first_open_time(app, clinic)
    post_step(
        client, "time", {**step_answers("time"), "appointment_type": str(clinic.type), "slot": slot}
    )
    assert "Your chosen time" in open_step(client, "review")
    with app.app_context():
        specialist_id, location_id, starts_at = parse_slot_key(slot)
        make_request(slot=SlotChoice(clinic.type, specialist_id, location_id, starts_at))
    review = open_step(client, "review")
    assert "The time you picked is no longer available." in review
    assert "You have not chosen a time" in review


def review_region_names(review: str) -> dict[str, str]:
    """Each region of the review (its ``aria-labelledby``) with the text of the heading that
    names it; every id of the page is used once (a browser takes the first of an id)."""
    ids = re.findall(r'\bid="([^"]+)"', review)
    assert len(ids) == len(set(ids)), (
        f"ids used twice: {sorted({i for i in ids if ids.count(i) > 1})}"
    )
    names = {}
    for labelled_by in re.findall(r'<section[^>]*aria-labelledby="([^"]+)"', review):
        match = re.search(rf'<h2[^>]*\bid="{re.escape(labelled_by)}"[^>]*>(.*?)</h2>', review, re.S)
        assert match, f"no heading {labelled_by}"
        names[labelled_by] = text(match.group(1))
    return names


def test_the_review_names_the_chosen_time_and_the_time_step_apart(
    app: Flask, client: FlaskClient, clinic: Clinic
) -> None:
    """The box of the time chosen (or of none held) and the time step's folded answers are
    two regions, each named by its own heading: with one id for both headings, a screen
    reader announced the step's answers as "Your chosen time" (or "Appointment time")."""
    fill_every_step(client)
    names = review_region_names(open_step(client, "review"))
    assert names["review-chosen-time"] == "Appointment time"
    assert names["review-time"] == "Time"
    slot = first_open_time(app, clinic)
    post_step(
        client, "time", {**step_answers("time"), "appointment_type": str(clinic.type), "slot": slot}
    )
    names = review_region_names(open_step(client, "review"))
    assert names["review-chosen-time"] == "Your chosen time"
    assert names["review-time"] == "Time"


def test_once_at_the_review_a_step_saved_goes_back_to_it(client: FlaskClient) -> None:
    """A step opened again after reaching the review (from the list of steps, or the time
    picked again after the first was taken) goes back to the review when saved, not through
    every step again (ten pages and more); before the review, it goes on to the next."""
    answer_red_flags(client)
    assert post_step(client, "time").location.endswith("/request/steps/about")
    fill_every_step(client)
    assert "Check and send" in open_step(client, "review")
    for code in ("time", "about", "history"):
        response = post_step(client, code)
        assert response.status_code == 303
        assert response.location.endswith("/request/steps/review"), (code, response.location)


def test_an_earliest_date_years_ahead_is_a_message_on_its_field(
    app: Flask, client: FlaskClient
) -> None:
    from datetime import timedelta

    from booking.timeutil import clinic_today

    with app.app_context():
        soon = (clinic_today() + timedelta(days=30)).isoformat()
    answer_red_flags(client)
    wrong = post_step(client, "time", {**step_answers("time"), "earliest_date": "2099-01-01"})
    assert wrong.status_code == 422
    assert "Please give a date within the next year." in wrong.get_data(as_text=True)
    assert (
        post_step(client, "time", {**step_answers("time"), "earliest_date": soon}).status_code
        == 303
    )


def test_no_calendar_file_without_a_held_time(client: FlaskClient) -> None:
    fill_every_step(client)
    post_step(client, "review")
    assert "Add to calendar" not in client.get("/request/submitted").get_data(as_text=True)
    assert client.get("/request/submitted/appointment.ics").status_code == 404


def test_too_much_text_is_a_message_on_its_field_with_the_answers_kept(
    client: FlaskClient,
) -> None:
    answer_red_flags(client)
    long_text = "x" * 1_000_000
    data = {**step_answers("history"), "other_history": long_text}
    response = post_step(client, "history", data)
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "Anything else we should know about your health?" in page
    assert "2000" in page  # the field's own limit, on the field
    assert "Ibuprofen 400 mg" in page  # the other answers are kept
    assert "Ibuprofen 400 mg" in open_step(client, "history?page=2")  # saved, on its part


def test_another_main_problem_chosen_from_the_review_leads_to_its_questions(
    client: FlaskClient,
) -> None:
    """A lower back patient at the review changes their main problem to the neck: the save
    goes on to the neck's pain scales and questionnaire, not back to a review whose send
    would only then say they are missing."""
    fill_every_step(client)
    symptoms = {**step_answers("symptoms"), "spine_region": "neck"}
    changed = post_step(client, "symptoms", symptoms)
    assert changed.status_code == 303 and changed.location.endswith("/request/steps/function")
    # Any other change from the review goes back to it, as before.
    again = post_step(client, "symptoms", symptoms)
    assert again.location.endswith("/request/steps/review")


def test_line_breaks_count_as_the_box_counts_them(client: FlaskClient) -> None:
    """A browser counts a line break as one character against the box's maxlength but sends
    it as two (CR LF): a text the box took is not refused as too long, and is kept with
    plain line breaks."""
    answer_red_flags(client)
    typed = "Back: " + "abcd\r\n" * 330  # 1,986 as the box counts, 2,316 as sent
    response = post_step(client, "history", {**step_answers("history"), "other_history": typed})
    assert response.status_code == 303, response.get_data(as_text=True)[:300]
    page = open_step(client, "history?page=2")
    assert "abcd\r\n" not in page and "abcd\nabcd" in page


def test_a_post_far_too_large_says_it_is_the_text(client: FlaskClient) -> None:
    answer_red_flags(client)
    page = open_step(client, "history")
    token = CSRF_RE.search(page).group(1)
    data = {**step_answers("history"), "other_history": "x" * 3_000_000, "csrf_token": token}
    response = client.post("/request/steps/history", data=data)
    assert response.status_code == 413
    assert "Your answers are too long" in response.get_data(as_text=True)


def test_too_many_sends_say_the_answers_are_saved(app: Flask, client: FlaskClient) -> None:
    app.config["SUBMIT_RATE_LIMIT"] = "1 per hour"
    fill_every_step(client)
    assert post_step(client, "review", {}).status_code == 422  # the first send: no consent
    response = post_step(client, "review")
    assert response.status_code == 429
    assert "Your answers and documents are saved" in response.get_data(as_text=True)
    assert "Erika Mustermann" in open_step(client, "about")  # and they are


def test_the_first_step_again_goes_on_where_the_request_was(client: FlaskClient) -> None:
    """A patient who comes back through the home page finds their request under way."""
    answer_red_flags(client)
    post_step(client, "time")
    post_step(client, "about")
    page = client.get("/request/start").get_data(as_text=True)
    assert "You have a request under way, saved at step 3: Your symptoms." in page
    response = answer_red_flags(client)
    assert response.location.endswith("/request/steps/symptoms")
    assert "Erika Mustermann" in open_step(client, "about")


def test_a_description_with_invisible_characters_is_a_message_on_its_field(
    app: Flask, client: FlaskClient
) -> None:
    """Not the expired-page notice: the description is the one answer the documents step
    checks, and it stays to send again with the file."""
    answer_red_flags(client)
    token = CSRF_RE.search(open_step(client, "documents")).group(1)
    data = {
        "csrf_token": token,
        "nav": "upload",
        "description": "MRI \u202etroper",
        "files": [(io.BytesIO(pdf_bytes()), "mri.pdf")],
    }
    response = client.post(
        "/request/steps/documents", data=data, content_type="multipart/form-data"
    )
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "Please remove the line breaks or invisible characters." in page
    assert 'href="#description"' in page and "press the button again" not in page
    assert 'value="MRI \u202etroper"' in page
    with app.app_context():
        assert stored_files(Path(app.config["UPLOAD_DIR"])) == []
    # With scripts, the same message comes back for the page to show.
    data["files"] = [(io.BytesIO(pdf_bytes()), "mri.pdf")]
    scripted = client.post(
        "/request/steps/documents",
        data=data,
        content_type="multipart/form-data",
        headers={"Accept": "application/json"},
    )
    assert scripted.status_code == 422
    assert scripted.get_json() == {
        "ok": False,
        "message": "Please remove the line breaks or invisible characters.",
    }


def _sent_minutes_ago(app: Flask, minutes: int) -> str:
    """Move the one request (and its draft) ``minutes`` into the past; its reference."""
    with app.app_context():
        consultation = db.session.scalars(select(ConsultationRequest)).one()
        consultation.created_at = now_utc() - timedelta(minutes=minutes)
        for draft in db.session.scalars(select(RequestDraft)):
            draft.sent_at = consultation.created_at
        db.session.commit()
        return consultation.reference


def test_the_confirmation_is_shown_for_a_while_then_only_through_the_email(
    app: Flask, client: FlaskClient
) -> None:
    """A shared computer's next user (or a phone restoring its tabs) must not find the
    patient's request, email address or private link in the browser."""
    fill_every_step(client)
    post_step(client, "review")
    reference = _sent_minutes_ago(app, 29)
    page = client.get("/request/submitted").get_data(as_text=True)
    assert reference in page and "/manage/open/" in page
    # The session cookie is signed, not encrypted: anyone with the browser can read it. The
    # link's token is in it only encrypted, so the cookie left after the confirmation's time
    # (before the browser comes back and forgets it) does not open the request.
    token = re.search(r'href="/manage/open/([^"]+)"', page).group(1)
    cookie = session_cookie(client).value
    payload = cookie.lstrip(".").split(".")[0]
    raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    readable = zlib.decompress(raw) if cookie.startswith(".") else raw
    assert reference.encode() in readable  # what the cookie shows in the clear
    assert token.encode() not in readable
    assert reference in client.get("/request/steps/about", follow_redirects=True).get_data(
        as_text=True
    )  # Back after sending: the request, not a second one

    _sent_minutes_ago(app, 31)
    response = client.get("/request/submitted", follow_redirects=True)
    page = response.get_data(as_text=True)
    assert response.request.path == "/"
    assert "the link in our email opens your request" in page
    assert reference not in page and "/manage/open/" not in page
    for path in ("/request/submitted", "/request/steps/review", "/request/steps/about"):
        shown = client.get(path, follow_redirects=True).get_data(as_text=True)
        assert reference not in shown and "Erika" not in shown, path
    assert client.get("/request/submitted/appointment.ics").status_code == 404
    with client.session_transaction() as session:
        assert not set(session) & {"submitted_reference", "submitted_manage_link", "request_draft"}


def test_a_sent_drafts_steps_after_a_while_start_a_new_request(
    app: Flask, client: FlaskClient
) -> None:
    fill_every_step(client)
    post_step(client, "review")
    reference = _sent_minutes_ago(app, 31)
    response = client.get("/request/steps/about", follow_redirects=True)
    assert "the link in our email opens your request" in response.get_data(as_text=True)
    assert reference not in response.get_data(as_text=True)
    # The browser has let the sent draft go: the steps begin again with the first.
    started = client.get("/request/steps/about")
    assert started.status_code in (302, 303) and "/request/start" in started.location


# --- two tabs at once (PostgreSQL; SQLite lets one writer in at a time) ----------------------


def _other_tab(app: Flask, client: FlaskClient) -> FlaskClient:
    """Another tab of the same browser: the same session cookie."""
    other = app.test_client()
    copy_session_cookie(client, other)
    return other


def test_a_file_added_while_another_tab_sends_is_refused_not_lost(
    app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file still going up (scanned, encrypted) when the request is sent from another tab
    used to be accepted into the sent draft, and never reach the request: the purge later
    deleted it. Now it goes into the request, or (sent first) is refused with the reason and
    its stored copy removed."""
    from booking.requests import drafts

    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        pytest.skip("SQLite lets one writer in at a time: the two cannot interleave")
    fill_every_step(client, files=((pdf_bytes("first"), "first.pdf"),))
    review_token = CSRF_RE.search(open_step(client, "review")).group(1)
    documents_token = CSRF_RE.search(open_step(client, "documents")).group(1)
    sent: list[int] = []
    real_storage = drafts.get_storage

    class SendWhileSaving:
        """The storage, but the other tab sends while this file goes in."""

        def __init__(self) -> None:
            self.inner = real_storage()

        def save(self, stream, max_bytes):
            def send() -> None:
                data = {**step_answers("review"), "csrf_token": review_token, "nav": "send"}
                sent.append(_other_tab(app, client).post("/request/steps/review", data=data))

            tab = threading.Thread(target=send)
            tab.start()
            tab.join()
            return self.inner.save(stream, max_bytes)

        def __getattr__(self, name: str):
            return getattr(self.inner, name)

    # The storage the draft's file goes in through (``saved_before_locking``).
    monkeypatch.setattr("booking.documents.storage.get_storage", SendWhileSaving)
    response = client.post(
        "/request/steps/documents",
        data={"csrf_token": documents_token, "files": [(io.BytesIO(pdf_bytes("2")), "second.pdf")]},
        headers={"Accept": "application/json"},
        content_type="multipart/form-data",
    )
    assert [r.status_code for r in sent] == [303]
    assert response.status_code == 422
    assert "Your request was sent (from another window)" in response.get_json()["message"]
    with app.app_context():
        consultation = db.session.scalars(select(ConsultationRequest)).one()
        assert [d.original_name for d in consultation.documents] == ["first.pdf"]
        assert db.session.scalar(select(func.count()).select_from(DraftDocument)) == 0
        assert len(stored_files(Path(app.config["UPLOAD_DIR"]))) == 1  # the refused copy went


def test_two_tabs_saving_steps_keep_both_tabs_answers(
    app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tab A saves the symptoms while tab B saves a new name: each save merges into the
    answers as stored at that moment (the draft's row locked), not as its page read them."""
    from booking.requests import drafts

    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        pytest.skip("SQLite lets one writer in at a time: the two cannot interleave")
    fill_every_step(client)
    about_token = CSRF_RE.search(open_step(client, "about")).group(1)
    symptoms_token = CSRF_RE.search(open_step(client, "symptoms")).group(1)
    real_save = drafts.save_answers
    tab_b: list[TestResponse] = []
    started: list[bool] = []

    def save_after_tab_b(draft, answers, step=None, **options):
        if not started:  # tab A's save: tab B saves first, after A read the draft
            started.append(True)
            data = {**step_answers("about"), "full_name": "Erika Neuname", "nav": "next"}
            data["csrf_token"] = about_token
            other = threading.Thread(
                target=lambda: tab_b.append(
                    _other_tab(app, client).post("/request/steps/about", data=data)
                )
            )
            other.start()
            other.join()
        return real_save(draft, answers, step, **options)

    monkeypatch.setattr(drafts, "save_answers", save_after_tab_b)
    data = {**step_answers("symptoms"), "pain_duration": "gt_1_year"}
    data |= {"csrf_token": symptoms_token, "nav": "next"}
    assert client.post("/request/steps/symptoms", data=data).status_code == 303
    assert [r.status_code for r in tab_b] == [303]
    with app.app_context():
        saved = db.session.scalars(select(RequestDraft)).one().values()
    assert (saved["full_name"], saved["pain_duration"]) == (["Erika Neuname"], ["gt_1_year"])


WEEKDAY = {
    name: number
    for number, name in enumerate(
        ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
    )
}


@pytest.mark.parametrize(
    ("opening_hours", "offered"),
    [
        ("", ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"]),
        (
            "Mon-Fri 8:00-18:00|Sat 9:00-13:00|Sun closed",
            ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"],
        ),
        ("Tue, Thu 8:00-12:00|Sat-Sun 10:00-14:00", ["Tuesday", "Thursday", "Saturday", "Sunday"]),
        # Open round the clock: to 24:00, midnight, every day.
        (
            "Mon-Sun 00:00-24:00",
            ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"],
        ),
    ],
)
def test_the_days_that_suit_the_patient_are_the_days_the_clinic_opens(
    app_settings: dict, request: pytest.FixtureRequest, opening_hours: str, offered: list[str]
) -> None:
    """A clinic open on Saturdays lets the patient say Saturday suits them; one that never
    opens on a day does not offer it."""
    app_settings["CLINIC_OPENING_HOURS"] = opening_hours
    app: Flask = request.getfixturevalue("app")
    client = app.test_client()
    answer_red_flags(client)
    page = open_step(client, "time")
    days = re.findall(
        r'<label class="form-check-label" for="preferred_days-\d+">(\w+)</label>', page
    )
    assert days == offered
    wanted = str(WEEKDAY[offered[-1]])
    response = post_step(client, "time", {**step_answers("time"), "preferred_days": [wanted]})
    assert response.status_code == 303
    with app.app_context():
        assert db.session.scalars(select(RequestDraft)).one().values()["preferred_days"] == [wanted]


LISTED_DESCRIPTION_RE = re.compile(r'name="(description-\d+)"[^>]*value="([^"]*)"')


def test_what_a_file_is_can_be_said_after_it_went_up(app: Flask, client: FlaskClient) -> None:
    """With scripts a file goes up the moment it is chosen, before the patient says what it
    is: each listed file has its own box, and every button of the page saves what was typed
    there (here Remove, then Save and continue), so nothing typed is dropped."""
    answer_red_flags(client)
    for content, name in ((pdf_bytes(), "mri.pdf"), (pdf_bytes("CT"), "ct.pdf")):
        token = page_token(open_step(client, "documents"))
        scripted = client.post(
            "/request/steps/documents",
            data={"csrf_token": token, "files": [file_part((content, name))]},
            content_type="multipart/form-data",
            headers={"Accept": "application/json"},
        )
        assert scripted.status_code == 200 and scripted.get_json()["ok"] is True
    page = open_step(client, "documents")
    (mri, mri_text), (ct, ct_text) = LISTED_DESCRIPTION_RE.findall(page)
    assert (mri_text, ct_text) == ("", "")
    assert f'<label class="form-label mt-2 mb-1" for="{mri}">What is it?' in page
    typed = {mri: " MRI report, lumbar spine ", ct: "CT scan"}
    remove_ct = {**typed, "remove": ct.removeprefix("description-")}
    response = client.post(
        "/request/steps/documents",
        data={"csrf_token": page_token(page), "nav": "upload", **remove_ct},
    )
    assert response.status_code == 303
    page = open_step(client, "documents")
    assert LISTED_DESCRIPTION_RE.findall(page) == [(mri, "MRI report, lumbar spine")]
    changed = {mri: "MRI report, lumbar spine, March 2026"}
    assert post_step(client, "documents", changed).location.endswith("/request/steps/review")
    assert "<bdi>mri.pdf</bdi> · <bdi>MRI report, lumbar spine, March 2026</bdi>" in open_step(
        client, "review"
    )
    with app.app_context():
        [document] = db.session.scalars(select(DraftDocument)).all()
        assert document.description == "MRI report, lumbar spine, March 2026"


def test_what_a_file_is_with_no_file_chosen_stays_with_a_message(
    app: Flask, client: FlaskClient
) -> None:
    """Without scripts, what the files are goes up with them: typed, but no file chosen, it
    is not dropped on the way to the next step; its field says what to do, and keeps it."""
    answer_red_flags(client)
    response = post_step(client, "documents", {"description": "MRI report"})
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "Please choose the file this describes, or empty this box." in page
    assert 'href="#description"' in page and 'value="MRI report"' in page
    with app.app_context():
        assert db.session.scalar(select(RequestDraft.step)) != "review"


def test_what_a_file_is_with_an_invisible_character_is_refused_on_its_box(
    app: Flask, client: FlaskClient
) -> None:
    """A listed file's box is checked as every one-line answer is: a control or text-direction
    character pasted in gets the box's message, the text stays in it, and nothing of the post
    is done (no file removed, no description saved); never a 500 (PostgreSQL refuses NUL)."""
    answer_red_flags(client)
    assert upload(client, (pdf_bytes(), "mri.pdf")).status_code == 303
    page = open_step(client, "documents")
    [(box, _text)] = LISTED_DESCRIPTION_RE.findall(page)
    for bad in ("MRI\x00report", "MRI \u202ereport"):
        response = client.post(
            "/request/steps/documents",
            data={"csrf_token": page_token(page), "nav": "next", box: bad},
        )
        assert response.status_code == 422
        shown = response.get_data(as_text=True)
        assert "<title>Error: " in shown
        assert (
            "<strong><bdi>mri.pdf</bdi></strong>: Please remove the line breaks or invisible "
            "characters." in shown
        )
        assert f'aria-describedby="{box}-error"' in shown
    with app.app_context():
        [document] = db.session.scalars(select(DraftDocument)).all()
        assert document.description is None
        assert db.session.scalar(select(RequestDraft.step)) != "review"  # not moved on


def test_what_a_file_is_of_nothing_visible_clears_its_box(app: Flask, client: FlaskClient) -> None:
    """Zero-width and other format characters alone show nothing: no description, as an empty
    box (the names' rule, ``visible_or_empty``), never a blank one shown to the staff."""
    answer_red_flags(client)
    assert upload(client, (pdf_bytes(), "mri.pdf"), description="MRI report").status_code == 303
    page = open_step(client, "documents")
    [(box, text)] = LISTED_DESCRIPTION_RE.findall(page)
    assert text == "MRI report"
    assert post_step(client, "documents", {box: " \u200b\u2060\ufeff"}).status_code == 303
    with app.app_context():
        [document] = db.session.scalars(select(DraftDocument)).all()
        assert document.description is None


def test_what_is_typed_on_an_expired_documents_page_is_shown_again_unsaved(
    app: Flask, client: FlaskClient
) -> None:
    """As on the other steps, an expired page's post saves nothing, and what was typed is
    filled in again to send with a fresh token: next to a listed file, and for the files to
    choose."""
    answer_red_flags(client)
    assert upload(client, (pdf_bytes(), "mri.pdf")).status_code == 303
    [(box, _text)] = LISTED_DESCRIPTION_RE.findall(open_step(client, "documents"))
    response = client.post(
        "/request/steps/documents",
        data={
            "csrf_token": "expired",
            "nav": "next",
            box: "MRI report, lumbar spine",
            "description": "CT of the neck",
        },
    )
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert LISTED_DESCRIPTION_RE.findall(page) == [(box, "MRI report, lumbar spine")]
    assert 'value="CT of the neck"' in page
    with app.app_context():
        [document] = db.session.scalars(select(DraftDocument)).all()
        assert document.description is None  # shown, not saved: the token was not checked
    response = client.post(
        "/request/steps/documents",
        data={"csrf_token": page_token(page), "nav": "next", box: "MRI report, lumbar spine"},
    )
    assert response.status_code == 303
    with app.app_context():
        assert db.session.scalars(select(DraftDocument.description)).one() == (
            "MRI report, lumbar spine"
        )


def test_the_pain_scales_of_the_patients_problem_are_marked_required(
    client: FlaskClient,
) -> None:
    """Shown only for the areas of the patient's main problem, and then required: a screen
    reader hears "required" (not "invalid" before any answer), and no "(optional)" shows."""
    answer_red_flags(client)
    for code in ("time", "about", "symptoms"):
        assert post_step(client, code).status_code == 303
    page = open_step(client, "function")
    pain = re.findall(
        r'<fieldset class="mb-3 pain-scale"[^>]*>\s*<legend[^>]*>([^<]+)(.*?)</legend>', page
    )
    fieldsets = re.findall(r'<fieldset class="mb-3 pain-scale"[^>]*>', page)
    assert pain and len(fieldsets) == len(pain)
    assert all('aria-required="true"' in tag for tag in fieldsets), fieldsets
    assert all("optional" not in rest for _label, rest in pain), pain


def test_a_box_another_answer_requires_is_not_marked_optional(client: FlaskClient) -> None:
    """The guardian's name (for a patient under 18), the other diagnosis (with "Other" ticked)
    and the previous surgery (with it ticked) are required by another answer: their labels
    said "(optional)", then the page refused them empty. Each now says when it is needed."""
    answer_red_flags(client)
    pages = {"about": open_step(client, "about")}
    for code in ("time", "about", "symptoms", "function"):
        assert post_step(client, code).status_code == 303
    pages["history"] = open_step(client, "history")
    needed = {
        ("about", "guardian_name"): "Required if the patient is under 18.",
        ("history", "diagnosis_other"): "Required if you ticked “Other”.",
        ("history", "surgery_details"): (
            "What was done, and when. Required if you ticked “Previous spine surgery”."
        ),
    }
    for (code, field_id), help_text in needed.items():
        label = re.search(rf'<label[^>]*for="{field_id}"[^>]*>(.*?)</label>', pages[code], re.S)
        assert label and "optional" not in label.group(1), (field_id, label)
        help_block = re.search(rf'<div id="{field_id}-help"[^>]*>(.*?)</div>', pages[code], re.S)
        assert help_block and text(help_block.group(1)) == help_text, field_id


def test_a_head_request_to_a_step_is_answered_as_its_get(app: Flask, client: FlaskClient) -> None:
    """Flask answers a HEAD with the GET's view: a step took it for a post (its form's token
    missing, the expired page's 400). Now the same status and headers as the GET, no body,
    and nothing of the draft changed."""
    answer_red_flags(client)
    assert post_step(client, "time").status_code == 303

    def draft_state() -> tuple[Any, ...]:
        with app.app_context():
            draft = db.session.scalars(select(RequestDraft)).one()
            return draft.step, draft.values(), draft.updated_at

    before = draft_state()
    for code in ("time", "about", "documents", "review"):
        shown = client.get(f"/request/steps/{code}")
        head = client.head(f"/request/steps/{code}")
        assert (head.status_code, head.data) == (shown.status_code, b""), code
        for name in ("Content-Type", "Content-Length", "Cache-Control"):
            assert head.headers.get(name) == shown.headers.get(name), (code, name)
    assert draft_state() == before
