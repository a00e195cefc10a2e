"""Secure messages between staff and the patient, one thread per request (issue #17, item 4):
staff write, the patient reads on the private page and replies with a document, each side is
emailed only that a message waits; access, encryption, CSRF, all-or-nothing attachments."""

from __future__ import annotations

import html
import io
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from booking.audit.models import ACCESS_REFUSED, AuditEvent
from booking.documents.models import Document
from booking.documents.storage import DocumentRejected, DocumentUpload
from booking.extensions import db
from booking.messages import services as messages
from booking.messages.models import Message
from booking.notifications.models import OutboxEmail
from booking.requests import triage
from booking.requests.models import ConsultationRequest
from tests.factories import make_assigned_requests, make_request, staff_user
from tests.support import (
    AuthActions,
    Clinic,
    csrf_token,
    field_error,
    open_manage_link,
    pdf_bytes,
    stored_files,
)

QUESTION = "Could you send the MRI report of your lumbar spine from March? Zebra-42"
REPLY = "Here is the referral letter; the MRI follows next week. Walrus-17"
LINK_RE = re.compile(r"https?://[^/\s]+(/manage/open/\S+)")
MSG_CSRF_RE = re.compile(r'name="msg-csrf_token"[^>]*value="([^"]+)"')
SUBMISSION_KEY_RE = re.compile(r'name="msg-submission_key"[^>]*value="([^"]+)"')


@pytest.fixture
def working_hours() -> dict[str, tuple[str, str]]:
    return {"weber": ("08:00", "18:00"), "okafor": ("08:00", "18:00")}


@pytest.fixture
def cases(app: Flask, clinic: Clinic) -> dict[str, dict[str, Any]]:
    """Two confirmed requests: "own" is Dr. Weber's (Anna), "other" Dr. Okafor's (Otto)."""
    with app.app_context():
        own, other = make_assigned_requests(clinic)
    return {"own": own, "other": other}


def _consultation(reference: str) -> ConsultationRequest:
    return db.session.scalars(
        sa.select(ConsultationRequest).where(ConsultationRequest.reference == reference)
    ).one()


def _patient(app: Flask, reference: str) -> tuple[FlaskClient, str]:
    """The patient's browser, its private link opened; and the address of their page."""
    browser = app.test_client()
    with app.app_context():
        return browser, open_manage_link(browser, _consultation(reference))


def _staff_writes(client: FlaskClient, reference: str, body: str = QUESTION, **kw: Any):
    record = f"/staff/requests/{reference}"
    token = csrf_token(client, record)
    return client.post(f"{record}/messages", data={"msg-csrf_token": token, "msg-body": body}, **kw)


def _patient_writes(
    browser: FlaskClient,
    page: str,
    body: str = REPLY,
    file: tuple[bytes, str] | None = None,
    then: Callable[[], None] | None = None,
    *,
    shown: str | None = None,
):
    """Write from the page as it is shown, or from ``shown``, a page shown before (sent
    again: a double click, Back and send again); ``then``, if given, is called in between.
    Its hidden fields go with it, as a browser sends them."""
    if shown is None:
        shown = browser.get(page).get_data(as_text=True)
    if then is not None:
        then()
    [token] = MSG_CSRF_RE.findall(shown)
    data: dict[str, Any] = {"msg-csrf_token": token, "msg-body": body}
    if key := SUBMISSION_KEY_RE.search(shown):
        data["msg-submission_key"] = key.group(1)
    if file is not None:
        data["msg-document-file"] = (io.BytesIO(file[0]), file[1])
        data["msg-document-description"] = "Referral letter"
    return browser.post(f"{page}/messages", data=data, content_type="multipart/form-data")


def _messages(app: Flask) -> list[Message]:
    with app.app_context():
        rows = list(db.session.scalars(sa.select(Message).order_by(Message.id)))
        db.session.expunge_all()
        return rows


def _emails(app: Flask, template: str) -> list[OutboxEmail]:
    with app.app_context():
        rows = list(
            db.session.scalars(
                sa.select(OutboxEmail)
                .where(OutboxEmail.template == template)
                .order_by(OutboxEmail.id)
            )
        )
        db.session.expunge_all()
        return rows


def _audit(app: Flask, action: str) -> list[AuditEvent]:
    with app.app_context():
        rows = list(
            db.session.scalars(
                sa.select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
            )
        )
        db.session.expunge_all()
        return rows


def test_a_round_trip_between_staff_and_the_patient(
    app: Flask, client: FlaskClient, auth: AuthActions, cases: dict, upload_dir
) -> None:
    reference = cases["own"]["reference"]
    coordinator = auth.login("coordinator")

    # Staff write: the patient is emailed that a message waits, with their link, not the text.
    assert _staff_writes(client, reference).status_code == 302
    [sent] = _messages(app)
    assert not sent.from_patient and sent.author_id == coordinator.id
    [email] = _emails(app, "message_waiting")
    assert email.recipient == "anna@example.com"
    assert reference in email.subject
    for part in (email.subject, email.body_text, email.body_html):
        assert "Zebra-42" not in part and "MRI report" not in part
    [link] = LINK_RE.findall(email.body_text)
    assert link.endswith("#messages")  # the page opens at the thread
    [written] = [a for a in _audit(app, "message_sent") if a.actor_id == coordinator.id]
    assert written.target_id == reference and written.details["message_id"] == sent.id

    # The patient opens the link from the email and reads the message on the private page.
    browser = app.test_client()
    opened = browser.get(link)
    assert opened.status_code == 303
    page = browser.get(opened.headers["Location"])
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert QUESTION in text and "Messages with the clinic" in text
    # Above the box: messages are not read at once, so new or worse symptoms wait for no
    # reply, and which ones need emergency care, in the shared wording (triage.py).
    advice = text[text.index('id="message-urgent-advice"') :]
    advice = re.sub(r"<[^>]+>", "", advice[advice.index(">") + 1 : advice.index("</p>")])
    assert advice == (
        "We read messages during the clinic's opening hours, not at once. If you have new "
        "symptoms, or your symptoms are getting worse, do not wait for a reply. "
        f"{triage.EMERGENCY_SIGNS} Call 112 or go to the nearest emergency department now."
    )
    assert text.index('id="message-urgent-advice"') < text.index('name="msg-body"')
    [read] = _audit(app, "message_thread_read")
    assert read.actor_email == "patient" and read.actor_id is None
    assert read.target_id == reference and read.details["newly_read"] == 1
    assert _messages(app)[0].read_at is not None

    # The patient replies with a PDF: the clinic's email says only that a message waits.
    files_before = len(stored_files(upload_dir))
    manage_page = opened.headers["Location"]
    response = _patient_writes(browser, manage_page, file=(pdf_bytes("Referral"), "referral.pdf"))
    assert response.status_code == 302
    assert len(stored_files(upload_dir)) == files_before + 1
    reply = _messages(app)[1]
    assert reply.from_patient and reply.author_id is None and reply.read_at is None
    [notice] = _emails(app, "message_waiting_staff")
    assert notice.recipient == app.config["STAFF_NOTIFICATION_EMAIL"]
    assert f"/staff/requests/{reference}" in notice.body_text
    for part in (notice.subject, notice.body_text, notice.body_html):
        assert "Walrus-17" not in part and "referral" not in part.lower()
    patient_sent = [a for a in _audit(app, "message_sent") if a.actor_email == "patient"]
    assert [a.details["documents"] for a in patient_sent] == [1]

    # Staff see the reply unread, and the attachment as a document of the request.
    with app.app_context():
        document = db.session.scalars(
            sa.select(Document).where(Document.message_id == reply.id)
        ).one()
        assert document.request.reference == reference
        assert document.original_name == "referral.pdf"
        assert document.content_type == "application/pdf"
    record = client.get(f"/staff/requests/{reference}").get_data(as_text=True)
    assert REPLY in record and "1 unread" in record
    documents_section = record.split('id="documents-heading"')[1].split("</section>")[0]
    assert "referral.pdf" in documents_section
    assert "Message from the patient" in record  # on the timeline
    viewed = client.get(f"/staff/requests/{reference}/documents/{document.id}")
    assert viewed.status_code == 200 and viewed.mimetype == "application/pdf"
    assert viewed.data == pdf_bytes("Referral")

    # Opening the record read the thread: marked read by the coordinator, and audited.
    reply = _messages(app)[1]
    assert reply.read_at is not None and reply.read_by_id == coordinator.id
    staff_reads = [a for a in _audit(app, "message_thread_read") if a.actor_id == coordinator.id]
    assert [a.details["newly_read"] for a in staff_reads] == [1]
    assert "unread" not in client.get(f"/staff/requests/{reference}").get_data(as_text=True)
    staff_reads = [a for a in _audit(app, "message_thread_read") if a.actor_id == coordinator.id]
    assert [a.details["newly_read"] for a in staff_reads] == [1, 0]  # every read is audited


def test_a_message_from_an_urgent_patient_nobody_has_reached_says_so_first(app: Flask) -> None:
    """As every notice of what the patient did (``clinic_notice``, one rule: ``unreached``):
    the message may be about new or worse symptoms, and the call is still owed. Once a call
    has reached the patient, the notice is the usual one."""
    with app.app_context():
        consultation = make_request(red_flags={"fever"})
        assert consultation.is_urgent and consultation.unreached
        reference = consultation.reference
    browser, page = _patient(app, reference)
    assert _patient_writes(browser, page).status_code in (302, 303)
    [flagged] = _emails(app, "message_waiting_staff")
    assert flagged.subject == (
        f"URGENT, patient not reached yet: message from the patient on {reference}"
    )
    for part in (flagged.body_text, flagged.body_html):
        assert "nobody has reached the patient yet: please call them" in part
        assert "Walrus-17" not in part

    with app.app_context():
        db.session.execute(
            sa.update(ConsultationRequest)
            .where(ConsultationRequest.reference == reference)
            .values(acknowledged_at=datetime(2026, 11, 2, 9, 30, tzinfo=UTC))
        )
        db.session.commit()
    assert _patient_writes(browser, page).status_code in (302, 303)
    usual = _emails(app, "message_waiting_staff")[-1]
    assert usual.subject == f"Message from the patient on {reference}"
    assert "nobody has reached" not in usual.body_text + usual.body_html


def test_the_patients_email_and_page_are_in_their_language(
    app: Flask, client: FlaskClient, auth: AuthActions, clinic: Clinic
) -> None:
    with app.app_context():
        consultation = make_request(locale="es", email="lucia@example.com")
        reference = consultation.reference
    auth.login("coordinator")
    assert _staff_writes(client, reference).status_code == 302
    [email] = _emails(app, "message_waiting")
    assert email.subject.startswith("Un mensaje de la clínica")
    assert "Zebra-42" not in email.body_text
    with app.app_context():
        # 12:29 in Berlin on 5 December: "5/12/26, 12:29" in Babel's short Spanish form.
        db.session.execute(
            sa.update(Message).values(created_at=datetime(2026, 12, 5, 11, 29, tzinfo=UTC))
        )
        db.session.commit()
    browser, page = _patient(app, reference)
    text = browser.get(page, headers={"Accept-Language": "es"}).get_data(as_text=True)
    assert "Mensajes con la clínica" in text and QUESTION in text
    assert "· 5 dic 2026, 12:29" in text and "5/12/26" not in text


def test_the_text_is_encrypted_in_the_database(
    app: Flask, client: FlaskClient, auth: AuthActions, cases: dict
) -> None:
    auth.login("coordinator")
    assert _staff_writes(client, cases["own"]["reference"]).status_code == 302
    with app.app_context():
        raw = db.session.execute(sa.text("SELECT body FROM message")).scalar_one()
    assert "Zebra-42" not in raw and "MRI" not in raw
    assert raw.startswith("v1:")
    assert _messages(app)[0].body == QUESTION  # and the model reads it back


def test_a_cookie_for_another_request_opens_nothing(app: Flask, cases: dict) -> None:
    own, other = cases["own"]["reference"], cases["other"]["reference"]
    browser, _page = _patient(app, other)  # Otto's link
    assert browser.get(f"/manage/{own}").status_code == 403
    response = browser.post(
        f"/manage/{own}/messages",
        data={"msg-csrf_token": csrf_token(browser, f"/manage/{other}"), "msg-body": REPLY},
    )
    assert response.status_code == 403
    assert _messages(app) == []


def test_anonymous_visitors_can_neither_write_nor_read(
    app: Flask, client: FlaskClient, auth: AuthActions, cases: dict
) -> None:
    reference = cases["own"]["reference"]
    auth.login("coordinator")
    assert _staff_writes(client, reference).status_code == 302
    stranger = app.test_client()
    token = csrf_token(stranger, "/staff/login")
    staff_post = stranger.post(
        f"/staff/requests/{reference}/messages",
        data={"msg-csrf_token": token, "msg-body": "hello"},
    )
    # Not sent: what was written is shown back to copy, with the way to sign in.
    assert staff_post.status_code == 401 and 'href="/staff/login' in staff_post.get_data(
        as_text=True
    )
    assert "Zebra-42" not in stranger.get(f"/staff/requests/{reference}").get_data(as_text=True)
    patient_post = stranger.post(
        f"/manage/{reference}/messages", data={"msg-csrf_token": token, "msg-body": "hello"}
    )
    assert patient_post.status_code == 403
    page = stranger.get(f"/manage/{reference}")
    assert page.status_code == 403 and "Zebra-42" not in page.get_data(as_text=True)
    assert len(_messages(app)) == 1


def test_a_specialist_not_assigned_is_refused(
    app: Flask, client: FlaskClient, auth: AuthActions, cases: dict
) -> None:
    reference = cases["own"]["reference"]  # Dr. Weber's
    auth.login(email="okafor@example.com")
    token = csrf_token(client, "/staff/queue")
    response = client.post(
        f"/staff/requests/{reference}/messages",
        data={"msg-csrf_token": token, "msg-body": QUESTION},
    )
    assert response.status_code == 404
    assert _messages(app) == []
    assert _emails(app, "message_waiting") == []
    [refused] = _audit(app, ACCESS_REFUSED)
    assert refused.details["reason"] == "not_assigned" and refused.target_id == reference
    # The assigned specialist may write.
    client.post("/staff/logout", data={"csrf_token": csrf_token(client, "/staff/queue")})
    auth.login(email="weber@example.com")
    assert _staff_writes(client, reference).status_code == 302
    # The service refuses as well, whoever calls it.
    with app.app_context(), pytest.raises(messages.MessageRefused):
        messages.send_staff_message(_consultation(reference), staff_user("okafor@example.com"), "x")


def test_a_file_that_is_not_a_document_leaves_no_message_and_no_file(
    app: Flask, cases: dict, upload_dir
) -> None:
    reference = cases["own"]["reference"]
    browser, page = _patient(app, reference)
    files_before = stored_files(upload_dir)
    fake = b"Just some text pretending to be a PDF.\n" * 50
    response = _patient_writes(browser, page, file=(fake, "referral.pdf"))
    assert response.status_code == 422
    assert "not a PDF, JPEG or PNG" in response.get_data(as_text=True)
    assert REPLY in response.get_data(as_text=True)  # what was written is kept on the page
    # The service checks the bytes too (a form bypassed): nothing stored, nothing half-kept.
    with app.app_context(), pytest.raises(DocumentRejected):
        messages.send_patient_message(
            _consultation(reference), REPLY, DocumentUpload(io.BytesIO(fake), "x.pdf")
        )
    assert _messages(app) == []
    assert stored_files(upload_dir) == files_before
    assert _emails(app, "message_waiting_staff") == []
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Document)) == 2


def test_a_message_with_a_file_the_database_failed_to_store_is_said_not_sent_nothing_kept(
    app: Flask, cases: dict, upload_dir, failing_commit: Callable[[], None]
) -> None:
    """The commit fails (the database restarting): the page again saying the message was not
    sent, its file to choose again and its text kept, rather than "we cannot confirm" with
    the file left for the clean-up; sent again, it is sent once."""
    reference = cases["own"]["reference"]
    browser, page = _patient(app, reference)
    files_before = stored_files(upload_dir)
    letter = (pdf_bytes("Letter"), "letter.pdf")
    response = _patient_writes(browser, page, file=letter, then=failing_commit)
    assert response.status_code == 503
    shown = response.get_data(as_text=True)
    summary = shown.split('id="error-summary"')[1].split("</div>")[0]
    assert (
        "Our system had a problem, so your message was not sent. It is still below: please "
        "choose your file again and send it in a few minutes."
    ) in summary
    assert field_error(shown, "msg-document-file") == (
        "Error: Not added: our system had a problem. Please choose it again in a few minutes."
    )
    assert REPLY in html.unescape(shown)
    assert _messages(app) == []
    assert stored_files(upload_dir) == files_before
    assert _emails(app, "message_waiting_staff") == []

    assert _patient_writes(browser, page, file=letter).status_code == 302  # sent again
    [message] = _messages(app)
    assert message.body == REPLY
    assert len(stored_files(upload_dir)) == len(files_before) + 1


def test_a_message_with_a_file_stored_whose_commit_answer_was_lost_is_sent(
    app: Flask, cases: dict, upload_dir, lost_commit_answer: Callable[[], None]
) -> None:
    """The commit is made, then its answer lost: found stored after all (a row names its
    file), the patient is thanked as they would have been, and the clinic's email and the
    receipt are handed to the queue rather than left minutes for the sweep."""
    reference = cases["own"]["reference"]
    browser, page = _patient(app, reference)
    huey = app.extensions["huey"]
    huey.flush()
    letter = (pdf_bytes("Letter"), "letter.pdf")
    response = _patient_writes(browser, page, file=letter, then=lost_commit_answer)
    assert response.status_code == 302
    assert huey.pending_count() >= 2  # the clinic's email and the patient's receipt
    assert "Thank you: your message is sent to the clinic." in browser.get(page).get_data(
        as_text=True
    )
    [message] = _messages(app)
    assert message.body == REPLY

    # The service gives the message found (the session's own was rolled back).
    lost_commit_answer()
    with app.app_context():
        upload = DocumentUpload(io.BytesIO(pdf_bytes("Scan")), "scan.pdf")
        sent = messages.send_patient_message(_consultation(reference), "And the scan.", upload)
        assert sent.body == "And the scan."
        assert [d.original_name for d in sent.documents] == ["scan.pdf"]


def _summary(response: Any) -> str:
    return response.get_data(as_text=True).split('id="error-summary"')[1].split("</div>")[0]


def test_a_message_without_a_file_the_database_failed_to_store_is_said_not_sent(
    app: Flask, cases: dict, failing_commit: Callable[[], None]
) -> None:
    """No file to look for: the form's one-time key says the message was not stored, so the
    page says so (its text kept, to send again), not "we cannot confirm"; sent again from
    the page shown, it is sent once."""
    reference = cases["own"]["reference"]
    browser, page = _patient(app, reference)
    response = _patient_writes(browser, page, then=failing_commit)
    assert response.status_code == 503
    assert (
        "Our system had a problem, so your message was not sent. It is still below: please "
        "send it again in a few minutes."
    ) in _summary(response)
    shown = response.get_data(as_text=True)
    assert REPLY in html.unescape(shown)
    assert _messages(app) == []
    assert _emails(app, "message_waiting_staff") == []

    assert _patient_writes(browser, page, shown=shown).status_code == 302  # sent again
    assert [m.body for m in _messages(app)] == [REPLY]


def test_a_message_without_a_file_stored_whose_commit_answer_was_lost_is_sent_once(
    app: Flask, cases: dict, lost_commit_answer: Callable[[], None]
) -> None:
    """The commit is made, then its answer lost: found by the form's one-time key, the
    patient is thanked and the emails handed to the queue; the same page sent again (Back,
    send) stores no second message."""
    reference = cases["own"]["reference"]
    browser, page = _patient(app, reference)
    huey = app.extensions["huey"]
    huey.flush()
    shown = browser.get(page).get_data(as_text=True)
    response = _patient_writes(browser, page, then=lost_commit_answer, shown=shown)
    assert response.status_code == 302
    assert huey.pending_count() >= 2  # the clinic's email and the patient's receipt
    assert "Thank you: your message is sent to the clinic." in browser.get(page).get_data(
        as_text=True
    )
    assert _patient_writes(browser, page, shown=shown).status_code == 302
    assert [m.body for m in _messages(app)] == [REPLY]
    assert len(_emails(app, "message_waiting_staff")) == 1


@pytest.mark.parametrize("with_file", [False, True], ids=["no-file", "file"])
def test_a_page_sent_twice_stores_one_message(
    app: Flask, cases: dict, upload_dir, with_file: bool
) -> None:
    """A double click (or Back and send again) posts the same page twice: its one-time key
    makes it one message, one file, one email, and the second is thanked as the first."""
    reference = cases["own"]["reference"]
    browser, page = _patient(app, reference)
    files_before = stored_files(upload_dir)
    shown = browser.get(page).get_data(as_text=True)
    letter = (pdf_bytes("Letter"), "letter.pdf") if with_file else None
    for _twice in range(2):
        assert _patient_writes(browser, page, file=letter, shown=shown).status_code == 302
    [message] = _messages(app)
    assert message.body == REPLY and message.submission_key
    assert len(_emails(app, "message_waiting_staff")) == 1
    assert len(stored_files(upload_dir)) == len(files_before) + with_file
    # Written again on a page shown anew, it is a new message.
    assert _patient_writes(browser, page, body="And one more thing.").status_code == 302
    assert len(_messages(app)) == 2


def test_a_staff_page_sent_twice_sends_one_message(
    app: Flask, client: FlaskClient, auth: AuthActions, cases: dict
) -> None:
    """Staff's form carries a one-time key too: the same page sent twice (a double click,
    Back and send again) stores, audits and emails one message, and the second send lands
    on the record as the first did."""
    reference = cases["own"]["reference"]
    auth.login("coordinator")
    record = f"/staff/requests/{reference}"
    shown = client.get(record).get_data(as_text=True)
    [token] = MSG_CSRF_RE.findall(shown)
    [key] = SUBMISSION_KEY_RE.findall(shown)
    data = {"msg-csrf_token": token, "msg-submission_key": key, "msg-body": QUESTION}
    landed = []
    for _twice in range(2):
        response = client.post(f"{record}/messages", data=data)
        assert response.status_code == 302
        landed.append(response.headers["Location"])
        page = client.get(response.headers["Location"]).get_data(as_text=True)
        assert "Message sent: an email telling the patient it is waiting" in page
    assert landed[0] == landed[1] and landed[0].endswith(f"{record}#messages")
    [message] = _messages(app)
    assert message.body == QUESTION and message.submission_key == key
    assert len(_emails(app, "message_waiting")) == 1
    assert len([a for a in _audit(app, "message_sent") if a.actor_email != "patient"]) == 1
    # Written again on the record shown anew, it is a new message.
    assert _staff_writes(client, reference, body="One more thing.").status_code == 302
    assert len(_messages(app)) == 2 and len(_emails(app, "message_waiting")) == 2


def test_a_message_sent_meanwhile_by_the_same_page_is_not_stored_twice(
    app: Flask, cases: dict, upload_dir, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The service itself, for the send that finds the first one committed only once it
    holds the lock (its file scanned meanwhile): the first message, this one's file
    deleted."""
    reference = cases["own"]["reference"]
    key = "k" * 43
    with app.app_context():
        first = messages.send_patient_message(_consultation(reference), REPLY, key=key)
        files_before = stored_files(upload_dir)
        consultation = _consultation(reference)
        # The first send found only under the lock: not by the check before it.
        real = messages.sent_with
        calls = {"n": 0}

        def late(request_id: int, key: str) -> Message | None:
            calls["n"] += 1
            return None if calls["n"] == 1 else real(request_id, key)

        monkeypatch.setattr(messages, "sent_with", late)
        upload = DocumentUpload(io.BytesIO(pdf_bytes("Letter")), "letter.pdf")
        again = messages.send_patient_message(consultation, REPLY, upload, key=key)
        assert again.id == first.id and calls["n"] == 2
    assert len(_messages(app)) == 1
    assert stored_files(upload_dir) == files_before


@pytest.mark.parametrize("with_file", [False, True], ids=["no-file", "file"])
def test_a_message_whose_checks_the_database_failed_is_said_not_sent(
    app: Flask, cases: dict, upload_dir, monkeypatch: pytest.MonkeyPatch, with_file: bool
) -> None:
    """The database fails in the checks before anything is written (a file saved, a row
    added): nothing can be stored, so the page says the message was not sent, rather than
    "we cannot confirm"."""
    reference = cases["own"]["reference"]
    browser, page = _patient(app, reference)
    files_before = stored_files(upload_dir)

    def down(*_args: object) -> None:
        raise sa.exc.OperationalError(
            "select", {}, Exception("the database system is shutting down")
        )

    letter = (pdf_bytes("Letter"), "letter.pdf") if with_file else None
    response = _patient_writes(
        browser,
        page,
        file=letter,
        then=lambda: monkeypatch.setattr("booking.messages.services.no_room_for", down),
    )
    assert response.status_code == 503
    assert (
        "please choose your file again and send it in a few minutes."
        if with_file
        else "please send it again in a few minutes."
    ) in _summary(response)
    assert _messages(app) == []
    assert stored_files(upload_dir) == files_before


def test_a_file_attached_to_an_unwritten_message_is_said_not_added(app: Flask, cases: dict) -> None:
    """The message box left empty: the page comes back with its message, and without the
    file (a browser keeps none), which says so on its field to be chosen again."""
    reference = cases["own"]["reference"]
    browser, page = _patient(app, reference)
    response = _patient_writes(browser, page, body="", file=(pdf_bytes("Letter"), "letter.pdf"))
    assert response.status_code == 422
    page_sent_back = response.get_data(as_text=True)
    assert field_error(page_sent_back, "msg-body") == "Error: Please write your message."
    assert field_error(page_sent_back, "msg-document-file") == (
        "Error: "
        "Not added yet, as something else on this form needs correcting. "
        "Please choose this file again."
    )
    assert _messages(app) == []


def test_a_file_the_request_already_holds_leaves_no_message_and_no_file(
    app: Flask, cases: dict, upload_dir
) -> None:
    """The report sent with the request, attached again (under another name): refused with the
    words of the page's "add documents", what was written stays on the page, nothing is kept."""
    reference = cases["own"]["reference"]  # holds "report-0.pdf"
    browser, page = _patient(app, reference)
    files_before = stored_files(upload_dir)
    response = _patient_writes(browser, page, file=(pdf_bytes("Report 0"), "referral.pdf"))
    assert response.status_code == 422
    text = html.unescape(response.get_data(as_text=True))
    assert "“referral.pdf” is the same file as one you have already added." in text
    assert REPLY in text
    assert _messages(app) == []
    assert stored_files(upload_dir) == files_before
    assert _emails(app, "message_waiting_staff") == []
    # Another file goes, with the message.
    assert _patient_writes(browser, page, file=(pdf_bytes(), "referral.pdf")).status_code == 302
    assert [m.body for m in _messages(app)] == [REPLY]


def test_the_forms_need_their_csrf_token(
    app: Flask, client: FlaskClient, auth: AuthActions, cases: dict
) -> None:
    reference = cases["own"]["reference"]
    auth.login("coordinator")
    client.get(f"/staff/requests/{reference}")
    staff = client.post(f"/staff/requests/{reference}/messages", data={"msg-body": QUESTION})
    assert staff.status_code == 400
    browser, page = _patient(app, reference)
    browser.get(page)
    patient = browser.post(f"{page}/messages", data={"msg-body": REPLY})
    assert patient.status_code == 400
    assert "This form has expired" in patient.get_data(as_text=True)
    assert _messages(app) == []


def test_a_closed_request_takes_no_new_messages(
    app: Flask, client: FlaskClient, auth: AuthActions, cases: dict, clinic: Clinic
) -> None:
    reference = cases["own"]["reference"]
    coordinator = auth.login("coordinator")
    assert _staff_writes(client, reference).status_code == 302
    browser, page = _patient(app, reference)
    token = csrf_token(browser, page)
    from booking.dashboard.services import cancel_request

    with app.app_context():
        cancel_request(_consultation(reference), staff_user(coordinator.email))

    response = browser.post(f"{page}/messages", data={"msg-csrf_token": token, "msg-body": REPLY})
    assert response.status_code == 409
    text = response.get_data(as_text=True)
    assert "This request is closed and can no longer be changed online." in text
    # The thread stays readable; its form is gone.
    shown = browser.get(page).get_data(as_text=True)
    assert QUESTION in shown and "you can read the messages here, but not send new ones" in shown
    assert 'name="msg-body"' not in shown
    # Staff cannot write into a thread the patient can no longer answer.
    refused = _staff_writes(client, reference, body="One more thing")
    assert refused.status_code == 409
    assert "the patient can no longer reply" in refused.get_data(as_text=True)
    assert len(_messages(app)) == 1


def test_a_closed_request_without_messages_promises_none(
    app: Flask, auth: AuthActions, cases: dict
) -> None:
    """A request closed before anyone wrote: its page said the clinic's message "will appear
    here and we will email you", above "you can read the messages here, but not send new
    ones", though the clinic can no longer write either."""
    from booking.dashboard.services import cancel_request

    reference = cases["own"]["reference"]
    coordinator = auth.login("coordinator")
    browser, page = _patient(app, reference)
    assert "If the clinic needs something from you" in browser.get(page).get_data(as_text=True)
    with app.app_context():
        cancel_request(_consultation(reference), staff_user(coordinator.email))
    shown = browser.get(page).get_data(as_text=True)
    thread = shown.split('id="messages"', 1)[1].split("</section>", 1)[0]
    assert "<p>No messages yet.</p>" in thread
    assert "If the clinic needs something from you" not in thread
    assert "you can read the messages here, but not send new ones" in thread


def test_no_message_is_written_to_a_patient_marked_deceased(
    app: Flask, client: FlaskClient, auth: AuthActions, cases: dict
) -> None:
    """Nothing more goes to the address (the family may read it), so no message waits
    unannounced either: staff are told, nothing is stored."""
    reference = cases["own"]["reference"]
    auth.login("coordinator")
    with app.app_context():
        consultation = _consultation(reference)
        consultation.patient.deceased_at = datetime.now(UTC)
        db.session.commit()
    refused = _staff_writes(client, reference)
    assert refused.status_code == 409
    assert "The patient is marked deceased: no message is sent to them." in refused.get_data(
        as_text=True
    )
    assert _messages(app) == [] and _emails(app, "message_waiting") == []


DECEASED_NO_BOX = (
    "No message can be written: the patient is marked deceased, and nothing more is sent to "
    "their address."
)


def test_the_record_offers_no_message_box_for_a_patient_marked_deceased(
    app: Flask, client: FlaskClient, auth: AuthActions, cases: dict
) -> None:
    """The box to write in was still shown, and what staff wrote was refused only once
    sent: the record says instead why there is none. A post from a page shown before is
    refused, its reason shown where the box was."""
    reference = cases["own"]["reference"]
    auth.login("coordinator")
    record = f"/staff/requests/{reference}"
    token = csrf_token(client, record)
    assert 'name="msg-body"' in client.get(record).get_data(as_text=True)
    with app.app_context():
        _consultation(reference).patient.deceased_at = datetime.now(UTC)
        db.session.commit()
    page = html.unescape(client.get(record).get_data(as_text=True))
    assert 'name="msg-body"' not in page and DECEASED_NO_BOX in page
    refused = client.post(
        f"{record}/messages", data={"msg-csrf_token": token, "msg-body": QUESTION}
    )
    assert refused.status_code == 409
    shown = html.unescape(refused.get_data(as_text=True))
    summary = shown[shown.index('id="error-summary"') :]
    assert summary.index("The patient is marked deceased: no message is sent to them.") < (
        summary.index("</div>")
    )
    assert 'name="msg-body"' not in shown and DECEASED_NO_BOX in shown
    assert _messages(app) == []


def test_the_message_email_itself_goes_to_no_patient_marked_deceased(app: Flask) -> None:
    """Behind the service's refusal, the email is not written either (as every other email
    to the patient): a later caller that forgets the check still sends nothing."""
    from booking.messages.emails import message_for_patient

    with app.app_context():
        consultation = make_request()
        assert consultation.patient.email
        consultation.patient.deceased_at = datetime.now(UTC)
        assert message_for_patient(consultation) is None
        db.session.commit()
    assert _emails(app, "message_waiting") == []


def test_staff_write_to_a_patient_the_request_waits_for(
    app: Flask, client: FlaskClient, auth: AuthActions, clinic: Clinic
) -> None:
    """Waiting for the patient's answer is an open request: the record offers the message
    form (it said "the request is closed"), and the message is sent."""
    from booking.requests.asks import ask_patient

    coordinator = auth.login("coordinator")
    with app.app_context():
        consultation = make_request()
        ask_patient(consultation, staff_user(coordinator.email), [], "Which leg hurts more?")
        reference = consultation.reference
        assert consultation.status.value == "awaiting_patient"
    record = client.get(f"/staff/requests/{reference}").get_data(as_text=True)
    assert 'name="msg-body"' in record and "the patient can no longer reply" not in record
    assert _staff_writes(client, reference).status_code == 302
    assert len(_messages(app)) == 1


def test_erasing_the_patient_erases_the_thread(
    app: Flask, client: FlaskClient, auth: AuthActions, cases: dict
) -> None:
    reference = cases["own"]["reference"]
    auth.login("coordinator")
    assert _staff_writes(client, reference).status_code == 302
    browser, page = _patient(app, reference)
    assert _patient_writes(browser, page, file=(pdf_bytes(), "letter.pdf")).status_code == 302
    from booking.dashboard.services import cancel_request
    from booking.privacy.services import erase_patient

    with app.app_context():
        cancel_request(_consultation(reference), staff_user("coord@example.com"))
        erase_patient(reference, reference, staff_user("admin@example.com"))
    assert _messages(app) == []
    with app.app_context():
        attached = sa.select(sa.func.count()).select_from(Document)
        assert db.session.scalar(attached.where(Document.message_id.is_not(None))) == 0


def test_a_request_with_no_room_for_more_documents_refuses_the_file_and_keeps_nothing(
    app_settings: dict[str, Any], app: Flask, cases: dict, upload_dir
) -> None:
    """The request already holds its one document and the limit is one (set below before the
    app is made): the message with a file is refused with a message saying what to do, and
    neither the message nor the file is kept."""
    assert app_settings["MAX_DOCUMENTS"] == 1
    reference = cases["own"]["reference"]
    browser, page = _patient(app, reference)
    files_before = stored_files(upload_dir)
    response = _patient_writes(browser, page, file=(pdf_bytes(), "referral.pdf"))
    text = response.get_data(as_text=True)
    assert response.status_code == 409
    assert "A request can hold at most 1 document; you have 1 already." in text
    assert "Please send your message without the file." in text
    assert _messages(app) == []
    assert stored_files(upload_dir) == files_before
    # Without the file the message goes.
    assert _patient_writes(browser, page).status_code in (302, 303)
    assert [m.body for m in _messages(app)] == [REPLY]


@pytest.fixture
def app_settings(app_settings: dict[str, Any], request: pytest.FixtureRequest) -> dict[str, Any]:
    if request.node.name.startswith("test_a_request_with_no_room_for_more_documents"):
        app_settings["MAX_DOCUMENTS"] = 1
    return app_settings
