"""A patient changes their own email address on their private page: nothing changes until the
new mailbox opens a one-time link and presses the button on its page; then the change is
the one staff make (``rights.addresses.readdress``): every earlier private link ends, a new
one goes to the new address, and the old address is told, with no link."""

from __future__ import annotations

import io
import json
import logging
import re
import zipfile
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, update
from werkzeug.test import TestResponse

from booking.audit.models import AuditEvent
from booking.dashboard import services as workflow
from booking.extensions import db
from booking.manage import services as manage
from booking.notifications.models import OutboxEmail
from booking.notifications.services import deliver_outbox_email
from booking.outcomes import services as outcomes
from booking.privacy import services as privacy
from booking.requests.events import EventKind, RequestEvent
from booking.requests.models import ConsultationRequest
from booking.rights.addresses import CONFIRM_TEMPLATE, purge_expired_email_changes
from booking.rights.models import EmailChange
from booking.timeutil import clinic_dt, now_utc
from tests.factories import make_request, make_staff
from tests.smtp import SmtpServer
from tests.support import deliver_waiting_emails, page_token

OLD = "erika.mustermann@example.com"  # the factory's address
NEW = "erika.m@example.org"
LINK_RE = re.compile(r"https?://[^/\s]+(/manage/open/[A-Za-z0-9_\-]+)")
CONFIRM_RE = re.compile(r"https?://[^/\s]+(/manage/confirm-address/[A-Za-z0-9_\-]+)")


@pytest.fixture
def patient(app: Flask, client: FlaskClient) -> dict[str, object]:
    """A request whose receipt went out with a private link, opened in ``client``."""
    with app.app_context():
        consultation = make_request()
        deliver_waiting_emails(app)
        body = db.session.scalars(
            select(OutboxEmail.body_text).where(OutboxEmail.template == "request_received")
        ).one()
        link = LINK_RE.search(body).group(1)
        found = {"id": consultation.id, "reference": consultation.reference, "link": link}
    assert client.get(link).status_code == 303
    found["page"] = f"/manage/{found['reference']}"
    return found


def ask(client: FlaskClient, page: str, email: str, again: str | None = None) -> TestResponse:
    """The page's "Change my email address" form, as the browser sends it."""
    token = page_token(client.get(page).get_data(as_text=True))
    return client.post(
        f"{page}/email",
        data={
            "address-csrf_token": token,
            "address-email": email,
            "address-email_again": email if again is None else again,
        },
    )


def confirmation_link(app: Flask, recipient: str = NEW) -> str:
    with app.app_context():
        body = db.session.scalars(
            select(OutboxEmail.body_text)
            .where(OutboxEmail.template == CONFIRM_TEMPLATE, OutboxEmail.recipient == recipient)
            .order_by(OutboxEmail.id.desc())
        ).first()
    assert body is not None, "no confirmation email to " + recipient
    return CONFIRM_RE.search(body).group(1)


def press(browser: FlaskClient, link: str) -> TestResponse:
    """The button on the link's page (CSRF token from the page, as a browser sends it)."""
    token = page_token(browser.get(link).get_data(as_text=True))
    return browser.post(link, data={"csrf_token": token})


def state(app: Flask, request_id: int) -> dict[str, object]:
    with app.app_context():
        consultation = db.session.get(ConsultationRequest, request_id)
        result = {
            "email": consultation.patient.email,
            "outbox": db.session.scalar(select(func.count()).select_from(OutboxEmail)),
            "notes": db.session.scalar(
                select(func.count())
                .select_from(RequestEvent)
                .where(RequestEvent.kind == EventKind.NOTE)
            ),
            "pending": db.session.scalar(
                select(func.count()).select_from(EmailChange).where(EmailChange.used_at.is_(None))
            ),
        }
        db.session.remove()
        return result


def test_the_new_mailbox_confirms_and_the_change_is_the_one_staff_make(
    app: Flask, client: FlaskClient, patient: dict
) -> None:
    page = client.get(patient["page"]).get_data(as_text=True)
    assert "Change my email address" in page and OLD in page

    response = ask(client, patient["page"], NEW)
    assert response.status_code == 302
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    told = f"We sent a link to {NEW}. Your email address stays {OLD} until you open it."
    # Said once: the message of what was just done, not again as the page's notice.
    assert page.count(told) == 1 and 'id="flash"' in page.split(told)[0][-200:]
    assert "We have sent a link to" not in page
    # From then on, the page's own notice says it while the link waits.
    page = client.get(patient["page"]).get_data(as_text=True)
    assert page.count(told) == 1 and 'id="flash"' not in page
    with app.app_context():
        [email] = db.session.scalars(
            select(OutboxEmail).where(OutboxEmail.template == CONFIRM_TEMPLATE)
        ).all()
        assert email.recipient == NEW
        # A mistyped address is a stranger's mailbox: no name, no old address.
        assert "Erika" not in email.body_text and OLD not in email.body_text
        assert patient["reference"] in email.body_text
        [asked] = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "patient_email_change_asked")
        ).all()
        assert asked.actor_email == "patient"
        assert NEW not in str(asked.details) and OLD not in str(asked.details)
        # Only the token's hash is stored.
        link = CONFIRM_RE.search(email.body_text).group(1)
        assert db.session.scalars(select(EmailChange.token_hash)).one() not in link
    before = state(app, patient["id"])
    assert before["email"] == OLD

    # A mail scanner (another browser, no cookie) opens the link: a page, no change.
    scanner = app.test_client()
    opened = scanner.get(link)
    assert opened.status_code == 200
    text = opened.get_data(as_text=True)
    assert "Confirm my new email address" in text and NEW in text
    # Its form posts from this page: under no-referrer Chromium sends "Origin: null" with it,
    # refused as another site's. The site's policy sends the address to the site only.
    assert opened.headers["Referrer-Policy"] == "same-origin"
    assert state(app, patient["id"]) == before
    assert app.test_client().get(patient["link"]).status_code == 303  # old links still work

    # The new mailbox's owner presses the button, on another device.
    phone = app.test_client()
    token = page_token(phone.get(link).get_data(as_text=True))
    done = phone.post(link, data={"csrf_token": token})
    assert done.status_code == 303 and done.headers["Location"].endswith(link)
    shown = phone.get(link)
    assert shown.status_code == 200 and "Your email address is changed" in shown.get_data(
        as_text=True
    )

    after = state(app, patient["id"])
    assert after["email"] == NEW and after["pending"] == 0
    assert app.test_client().get(patient["link"]).status_code == 404  # every old link ended
    with app.app_context():
        [new_link] = db.session.scalars(
            select(OutboxEmail).where(OutboxEmail.template == "manage_link")
        ).all()
        assert new_link.recipient == NEW and "as you confirmed" in new_link.body_text
        fresh = LINK_RE.search(new_link.body_text).group(1)
        [notice] = db.session.scalars(
            select(OutboxEmail).where(OutboxEmail.template == "address_changed")
        ).all()
        assert notice.recipient == OLD
        assert "/manage/" not in notice.body_text and NEW not in notice.body_text
        [changed] = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "patient_email_changed")
        ).all()
        assert changed.actor_email == "patient" and changed.target_id == patient["reference"]
        assert NEW not in str(changed.details) and OLD not in str(changed.details)
        assert changed.details["links_revoked"] >= 1
        note = db.session.scalars(
            select(RequestEvent).where(RequestEvent.kind == EventKind.NOTE)
        ).one()
        assert note.actor_id is None and "The patient changed their email address" in note.body
    assert app.test_client().get(fresh).status_code == 303

    # A second press (a double click, the Back button) changes nothing more.
    written = state(app, patient["id"])["outbox"]
    again = phone.post(link, data={"csrf_token": token})
    assert again.status_code == 303
    assert state(app, patient["id"])["outbox"] == written


def test_the_confirmation_is_sent_with_the_origin_a_browser_gives_it(
    app: Flask, client: FlaskClient, patient: dict
) -> None:
    """Pressing "Confirm my new email address" in Chromium answered "This form has expired":
    the page said Referrer-Policy: no-referrer, under which the browser sends its form with
    "Origin: null", and the same-origin check refuses that. The page lets the browser name
    this site, and a post that does is taken."""
    asked = ask(client, patient["page"], NEW)
    assert asked.status_code in (302, 303), asked.get_data(as_text=True)[:500]
    link = confirmation_link(app)
    phone = app.test_client()
    opened = phone.get(link)
    assert opened.headers["Referrer-Policy"] != "no-referrer"
    token = page_token(opened.get_data(as_text=True))
    done = phone.post(link, data={"csrf_token": token}, headers={"Origin": "http://localhost"})
    assert done.status_code == 303
    assert state(app, patient["id"])["email"] == NEW


def test_an_expired_link_changes_nothing(app: Flask, client: FlaskClient, patient: dict) -> None:
    assert ask(client, patient["page"], NEW).status_code == 302
    client.get(patient["page"])  # the page the patient was sent back to, with its message
    link = confirmation_link(app)
    browser = app.test_client()
    token = page_token(browser.get(link).get_data(as_text=True))
    with app.app_context():
        db.session.execute(update(EmailChange).values(expires_at=now_utc() - timedelta(minutes=1)))
        db.session.commit()
    before = state(app, patient["id"])
    refused = browser.post(link, data={"csrf_token": token})
    assert refused.status_code == 410
    assert "This link has expired" in refused.get_data(as_text=True)
    assert browser.get(link).status_code == 410
    assert state(app, patient["id"]) == before and before["email"] == OLD
    # The page no longer says a link is on its way.
    assert "We sent a link to" not in client.get(patient["page"]).get_data(as_text=True)


def test_a_second_request_replaces_the_first(
    app: Flask, client: FlaskClient, patient: dict
) -> None:
    assert ask(client, patient["page"], "first@example.org").status_code == 302
    first = confirmation_link(app, "first@example.org")
    browser = app.test_client()
    token = page_token(browser.get(first).get_data(as_text=True))
    assert ask(client, patient["page"], NEW).status_code == 302
    second = confirmation_link(app)

    refused = browser.post(first, data={"csrf_token": token})
    assert refused.status_code == 404
    assert "This link no longer works" in refused.get_data(as_text=True)
    assert state(app, patient["id"])["email"] == OLD
    assert press(app.test_client(), second).status_code == 303
    assert state(app, patient["id"])["email"] == NEW


@pytest.mark.parametrize("typed", [OLD, OLD.upper(), f"  {OLD} "])
def test_the_same_address_is_refused(
    app: Flask, client: FlaskClient, patient: dict, typed: str
) -> None:
    before = state(app, patient["id"])
    response = ask(client, patient["page"], typed)
    assert response.status_code == 422
    text = response.get_data(as_text=True)
    assert "That is your email address already" in text
    assert 'id="address-email-error"' in text  # on the field
    assert state(app, patient["id"]) == before
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(EmailChange)) == 0


@pytest.mark.parametrize(
    ("typed", "again", "message", "field"),
    [
        ("not-an-address", None, "Please enter a valid email address", "address-email"),
        (NEW, "erika.m@example.com", "The two addresses are not the same", "address-email_again"),
        ("", None, "Please enter your new email address.", "address-email"),
    ],
)
def test_an_invalid_address_is_refused_on_its_field(
    app: Flask,
    client: FlaskClient,
    patient: dict,
    typed: str,
    again: str | None,
    message: str,
    field: str,
) -> None:
    before = state(app, patient["id"])
    response = ask(client, patient["page"], typed, again)
    assert response.status_code == 422
    text = response.get_data(as_text=True)
    error = re.search(rf'id="{field}-error"[^>]*>(.*?)</div>', text, re.S)
    assert error and message in error.group(1)
    assert "<details open>" in text  # the form is shown open, with what was typed
    assert state(app, patient["id"]) == before
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(EmailChange)) == 0


def test_both_posts_need_the_pages_csrf_token(
    app: Flask, client: FlaskClient, patient: dict
) -> None:
    refused = client.post(
        f"{patient['page']}/email",
        data={"address-email": NEW, "address-email_again": NEW},
    )
    assert refused.status_code == 400
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(EmailChange)) == 0
    assert ask(client, patient["page"], NEW).status_code == 302
    link = confirmation_link(app)
    assert app.test_client().post(link, data={}).status_code == 400
    assert state(app, patient["id"])["email"] == OLD


def test_a_staff_correction_ends_a_link_still_waiting(
    app: Flask, client: FlaskClient, patient: dict
) -> None:
    """Any change of the address goes through the same core: a confirmation asked for
    under the old address no longer applies."""
    assert ask(client, patient["page"], NEW).status_code == 302
    link = confirmation_link(app)
    with app.app_context():
        coordinator = make_staff("coordinator", "coordinator@example.com")
        consultation = db.session.get(ConsultationRequest, patient["id"])
        workflow.correct_contact(
            consultation, coordinator, "staff.typed@example.org", consultation.patient.phone
        )
    assert app.test_client().get(link).status_code == 404
    assert state(app, patient["id"])["email"] == "staff.typed@example.org"


def test_a_new_private_link_from_staff_ends_a_link_still_waiting(
    app: Flask, client: FlaskClient, patient: dict
) -> None:
    """Staff end every private link when one was forwarded: a new address asked for
    through it (a stranger's, perhaps) can no longer be confirmed."""
    assert ask(client, patient["page"], NEW).status_code == 302
    link = confirmation_link(app)
    with app.app_context():
        coordinator = make_staff("coordinator", "coordinator@example.com")
        workflow.send_new_link(db.session.get(ConsultationRequest, patient["id"]), coordinator)
    assert app.test_client().get(link).status_code == 404
    assert state(app, patient["id"])["email"] == OLD


@pytest.mark.parametrize("claimed", [False, True], ids=["waiting", "claimed"])
@pytest.mark.parametrize("action", ["correct", "new link"])
def test_the_confirmation_waiting_when_staff_end_its_link_is_never_delivered(
    mail_settings: dict,
    smtp: SmtpServer,
    app: Flask,
    client: FlaskClient,
    patient: dict,
    action: str,
    claimed: bool,
) -> None:
    """Its link stopped working with staff's change: the email is withdrawn as the patient's
    outdated emails are (``withdraw_pending``: deleted unsent when no worker had it; marked
    when one had claimed it, and then deleted at the worker's last check before the mail
    server), so the worker never delivers a link that only answers "gone"."""
    assert ask(client, patient["page"], NEW).status_code == 302
    with app.app_context():
        [email_id] = db.session.scalars(
            select(OutboxEmail.id).where(OutboxEmail.template == CONFIRM_TEMPLATE)
        ).all()
        if claimed:  # a worker took it at that moment
            db.session.execute(
                update(OutboxEmail).where(OutboxEmail.id == email_id).values(status="sending")
            )
            db.session.commit()
        coordinator = make_staff("coordinator", "coordinator@example.com")
        consultation = db.session.get_one(ConsultationRequest, patient["id"])
        if action == "correct":
            workflow.correct_contact(
                consultation, coordinator, "staff.typed@example.org", consultation.patient.phone
            )
        else:
            workflow.send_new_link(consultation, coordinator)
        # By its template: SQLite gives a deleted row's id to the next email written.
        confirmations = db.session.scalars(
            select(OutboxEmail).where(OutboxEmail.template == CONFIRM_TEMPLATE)
        ).all()
        assert [bool(each.withdrawn_at) for each in confirmations] == ([True] if claimed else [])
        if claimed:
            # As its worker finds it at its last check before the mail server (the claim
            # made again: the test has no worker halfway through a delivery).
            db.session.execute(
                update(OutboxEmail).where(OutboxEmail.id == email_id).values(status="pending")
            )
            db.session.commit()
        waiting = db.session.scalars(
            select(OutboxEmail.id).where(OutboxEmail.status == "pending").order_by(OutboxEmail.id)
        ).all()
        for each in waiting:
            deliver_outbox_email(each)
        assert not db.session.scalars(  # not sent, not kept
            select(OutboxEmail.id).where(OutboxEmail.template == CONFIRM_TEMPLATE)
        ).all()
    recipients = {to for received in smtp.received for to in received.rcpt_tos}
    assert recipients and NEW not in recipients


def test_a_closed_request_whose_page_opens_still_changes_the_address(
    app: Flask, client: FlaskClient, patient: dict
) -> None:
    """The page's other changes are refused once the request is closed; the address is the
    patient's data (follow-up questionnaires may still go to it), as the rights below it."""
    with app.app_context():
        manage.cancel(db.session.get(ConsultationRequest, patient["id"]), None)
    assert "Change my email address" in client.get(patient["page"]).get_data(as_text=True)
    assert ask(client, patient["page"], NEW).status_code == 302
    assert press(app.test_client(), confirmation_link(app)).status_code == 303
    assert state(app, patient["id"])["email"] == NEW
    with app.app_context():
        [email] = db.session.scalars(
            select(OutboxEmail).where(OutboxEmail.template == "manage_link")
        ).all()
        assert email.recipient == NEW and "Open your private page" in email.body_html


def test_a_link_to_a_request_whose_page_is_gone_answers_as_its_private_links(
    app: Flask, client: FlaskClient, patient: dict
) -> None:
    """A closed request's page changes the address while it opens (follow-ups may still go
    there); once its links have expired, the confirmation link says what a private link says."""
    assert ask(client, patient["page"], NEW).status_code == 302
    link = confirmation_link(app)
    with app.app_context():
        manage.cancel(db.session.get(ConsultationRequest, patient["id"]), None)
        db.session.execute(
            update(ConsultationRequest).values(closed_at=now_utc() - timedelta(days=400))
        )
        db.session.commit()
    gone = app.test_client().get(link)
    assert gone.status_code == 404
    assert "Your private link may have been replaced" in gone.get_data(as_text=True)
    assert state(app, patient["id"])["email"] == OLD


def test_the_patients_copy_of_their_data_holds_the_address_waiting_for_its_link(
    app: Flask, client: FlaskClient, patient: dict
) -> None:
    """A new address asked for and not confirmed yet is data the clinic holds about the
    patient: their copy of it (patient.json and the readable summary) lists it, when it was
    asked for and until when its link works, as it lists the other rows; never the link's
    token or its hash."""
    assert ask(client, patient["page"], NEW).status_code == 302
    token = confirmation_link(app).rsplit("/", 1)[1]
    with app.app_context():
        change = db.session.scalars(select(EmailChange)).one()
        asked_at, expires_at, token_hash = change.created_at, change.expires_at, change.token_hash
    page_csrf = page_token(client.get(patient["page"]).get_data(as_text=True))
    response = client.post(
        f"{patient['page']}/data",
        data={"data-csrf_token": page_csrf, "data-date_of_birth": "1970-05-17"},
    )
    assert response.status_code == 200 and response.mimetype == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(response.get_data()))
    data = json.loads(archive.read("patient.json"))
    [request] = data["requests"]
    assert request["email_changes"] == [
        {
            "new_email": NEW,
            "created_at": asked_at.isoformat(),
            "expires_at": expires_at.isoformat(),
            "used_at": None,
        }
    ]
    assert data["email"] == OLD  # the address stays the old one until confirmed
    summary = archive.read("summary.txt").decode()
    section = summary.split("-- New email addresses asked for --\n", 1)[1].split("\n--", 1)[0]
    with app.test_request_context():
        assert f"New email address: {NEW}" in section
        assert f"Link open until: {clinic_dt(expires_at, 'when')}" in section
        assert f"Created: {clinic_dt(asked_at, 'when')}" in section
    everything = json.dumps(data) + summary
    assert token not in everything and token_hash not in everything


def test_the_confirmation_is_never_sent_once_the_patient_is_marked_deceased(
    app: Flask, client: FlaskClient, patient: dict, caplog: pytest.LogCaptureFixture
) -> None:
    """The confirmation email to the new address is one of the patient's emails: marked
    deceased while it waits, it is withdrawn with the others, and one a concurrent change
    left waiting (marked after it was written, the withdrawal missed it) is dropped by the
    worker before it is sent, as every email to the patient is, not re-addressed."""
    assert ask(client, patient["page"], NEW).status_code == 302
    with app.app_context():
        [email_id] = db.session.scalars(
            select(OutboxEmail.id).where(OutboxEmail.template == CONFIRM_TEMPLATE)
        ).all()
        # As a concurrent transaction would leave it: marked, the email still waiting.
        db.session.get_one(ConsultationRequest, patient["id"]).patient.deceased_at = now_utc()
        db.session.commit()
        with caplog.at_level(logging.INFO, logger="booking.notifications.services"):
            assert deliver_outbox_email(email_id) is None
        assert db.session.get(OutboxEmail, email_id) is None  # dropped, not sent or moved
        assert not db.session.scalars(
            select(OutboxEmail.id).where(OutboxEmail.recipient == NEW)
        ).all()
    assert f"({CONFIRM_TEMPLATE}) withdrawn at delivery: patient marked deceased" in caplog.text

    # Marked by staff while a second one waits: withdrawn with the patient's other emails.
    with app.app_context():
        db.session.get_one(ConsultationRequest, patient["id"]).patient.deceased_at = None
        db.session.commit()
    assert ask(client, patient["page"], NEW).status_code == 302
    with app.app_context():
        coordinator = make_staff("coordinator", "coordinator@example.com")
        outcomes.mark_deceased(db.session.get_one(ConsultationRequest, patient["id"]), coordinator)
        # Deleted unsent (no worker had taken it), as the patient's other waiting emails.
        assert not db.session.scalars(
            select(OutboxEmail.recipient).where(OutboxEmail.template == CONFIRM_TEMPLATE)
        ).all()
        assert db.session.scalars(
            select(AuditEvent.details).where(AuditEvent.action == "patient_marked_deceased")
        ).one() == {"emails_withdrawn": 1}


def test_erasure_and_expiry_delete_the_waiting_changes(
    app: Flask, client: FlaskClient, patient: dict
) -> None:
    assert ask(client, patient["page"], NEW).status_code == 302
    with app.app_context():
        other = make_request(email="other@example.com")
        db.session.add(
            EmailChange(
                request_id=other.id,
                new_email="other.new@example.com",
                token_hash="0" * 64,
                expires_at=now_utc() - timedelta(hours=1),
            )
        )
        db.session.commit()
        assert purge_expired_email_changes() == 1  # the expired one only
        assert db.session.scalars(select(EmailChange.request_id)).all() == [patient["id"]]
        db.session.execute(update(EmailChange).values(expires_at=now_utc() - timedelta(hours=1)))
        db.session.commit()
    # The nightly retention runs it.
    app.extensions["spineconsult.purge_expired_requests"].call_local()
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(EmailChange)) == 0
    # Erased with the request's data, waiting or not.
    assert ask(client, patient["page"], NEW).status_code == 302
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(EmailChange)) == 1
        manage.cancel(db.session.get(ConsultationRequest, patient["id"]), None)
        admin = make_staff("admin", "admin@example.com")
        privacy.erase_patient(patient["reference"], patient["reference"], admin)
        assert db.session.scalar(select(func.count()).select_from(EmailChange)) == 0


class TestLimits:
    @pytest.fixture
    def app_settings(self, app_settings: dict[str, Any]) -> dict[str, Any]:
        app_settings["EMAIL_CHANGE_RATE_LIMIT"] = "2 per hour"
        return app_settings

    def test_a_private_page_sends_few_confirmation_links_whatever_the_address(
        self, app: Flask, client: FlaskClient, patient: dict[str, object]
    ) -> None:
        page = str(patient["page"])
        # A refusal on the form sends nothing and is not counted.
        assert ask(client, page, NEW, again="other@example.org").status_code == 422
        for n in range(2):
            assert ask(client, page, f"new{n}@example.org").status_code == 302
            # Delivered: one still waiting when the next is asked for is withdrawn.
            deliver_waiting_emails(app)
        refused = ask(client, page, "new9@example.org")
        assert refused.status_code == 429
        text = " ".join(refused.get_data(as_text=True).split())
        assert "We have sent several confirmation links recently" in text
        with app.app_context():
            sent = db.session.scalars(
                select(OutboxEmail.recipient).where(OutboxEmail.template == CONFIRM_TEMPLATE)
            ).all()
            assert sorted(sent) == ["new0@example.org", "new1@example.org"]

    def test_one_new_address_gets_few_links_from_any_request(
        self, app: Flask, client: FlaskClient, patient: dict[str, object]
    ) -> None:
        page = str(patient["page"])
        assert ask(client, page, NEW).status_code == 302
        assert ask(client, page, "someone@example.org").status_code == 302
        # Another request's page, on another network address: the same inbox is spared.
        other = app.test_client()
        other.environ_base["REMOTE_ADDR"] = "10.0.7.1"
        with app.app_context():
            second = make_request(email="second.patient@example.com")
            deliver_waiting_emails(app)
            body = db.session.scalars(
                select(OutboxEmail.body_text).where(
                    OutboxEmail.template == "request_received",
                    OutboxEmail.recipient == "second.patient@example.com",
                )
            ).one()
            reference = second.reference
        assert other.get(LINK_RE.search(body).group(1)).status_code == 303
        assert ask(other, f"/manage/{reference}", " Erika.M@Example.org").status_code == 302
        assert ask(other, f"/manage/{reference}", NEW).status_code == 429
