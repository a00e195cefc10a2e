"""Following up a patient who was never notified: the queue flags and counts the request, and
staff send the failed email again (to a corrected address), audited, through the outbox."""

from __future__ import annotations

import re
from datetime import time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, update
from werkzeug.test import TestResponse

from booking.audit.models import AuditEvent
from booking.extensions import db
from booking.messages import services as messages
from booking.notifications.models import OutboxEmail, OutboxStatus
from booking.notifications.services import copy_email
from booking.requests.models import ConsultationRequest
from booking.scheduling.models import Appointment
from booking.staff.models import StaffUser
from booking.timeutil import clinic_today, now_utc
from tests.factories import book_first_open_time, clinic_slot, make_request
from tests.smtp import SmtpServer
from tests.support import AuthActions, Clinic, csrf_token, send_each_waiting_email

REF_RE = re.compile(r'href="/staff/requests/(SC-[0-9A-Z]{4}-[0-9A-Z]{4})"')
UNNOTIFIED_COUNT = re.compile(r'id="unnotified-count">([^<]+)<')
TOKEN_RE = re.compile(r"https?://[^/\s]+/manage/open/([A-Za-z0-9_\-]+)")
REDACTED_LINK = re.compile(r"https?://[^/\s]+/manage/open/\[redacted\]")
CSRF_VALUE = re.compile(r'name="resend-csrf_token" type="hidden" value="([^"]+)"')
TYPO = "erika.mustermann@exmaple.com"
FIXED = "erika.mustermann@example.com"
BERLIN = ZoneInfo("Europe/Berlin")


@pytest.fixture
def app_settings(mail_settings: dict[str, Any]) -> dict[str, Any]:
    return mail_settings


def _deliver_all(app: Flask) -> None:
    with app.app_context():
        send_each_waiting_email()


@pytest.fixture
def failed(app: Flask, smtp: SmtpServer) -> dict[str, str]:
    """Two requests: one whose patient's receipt bounced (a mistyped address the server
    refuses for good), one whose patient got it."""
    smtp.collector.refuse_rcpt.add(TYPO)
    with app.app_context():
        bounced = make_request(email=TYPO, full_name="Erika Typo").reference
        fine = make_request(email="otto@example.com", full_name="Otto Fine").reference
    _deliver_all(app)
    with app.app_context():
        statuses = {e.recipient: e.status for e in db.session.scalars(select(OutboxEmail)).all()}
    assert statuses[TYPO] == OutboxStatus.FAILED
    assert statuses["otto@example.com"] == OutboxStatus.SENT
    return {"bounced": bounced, "fine": fine}


def _unnotified_count(client: FlaskClient, **args: Any) -> str:
    page = client.get("/staff/", query_string=args).get_data(as_text=True)
    return UNNOTIFIED_COUNT.search(page).group(1)


def _visit_began_two_days_ago(request_id: int) -> None:
    """Time passed: the request's visit began two days ago (staff have not marked it yet).
    Moved by a statement, as time passing changes nothing else of the request (its
    ``updated_at`` stays). Commits."""
    past = now_utc() - timedelta(days=2)
    db.session.execute(
        update(Appointment)
        .where(Appointment.request_id == request_id)
        .values(
            starts_at=past,
            ends_at=past + timedelta(minutes=45),
            updated_at=Appointment.updated_at,  # nobody changed it
        )
        .execution_options(synchronize_session=False)
    )
    db.session.commit()


def test_the_queue_flags_and_counts_a_patient_who_was_not_notified(
    auth: AuthActions, clinic: Clinic, failed: dict[str, str]
) -> None:
    auth.login("coordinator")
    client = auth.client
    assert _unnotified_count(client) == "1"
    listed = REF_RE.findall(
        client.get("/staff/", query_string={"status": "all", "unnotified": 1}).get_data(
            as_text=True
        )
    )
    assert listed == [failed["bounced"]]
    # Each such row says so; the others do not.
    rows = client.get("/staff/", query_string={"status": "all"}).get_data(as_text=True)
    rows = rows[rows.index("<tbody") : rows.index("</tbody>")].split("<tr")
    [flagged] = [row for row in rows if "Patient not notified" in row]
    assert failed["bounced"] in flagged
    assert any(failed["fine"] in row for row in rows)
    # The count follows the other filters: a search for the other patient finds none.
    assert _unnotified_count(client, status="all", q="Otto") == "0"
    # A bounced email to the clinic is not a patient left uninformed: only patient emails count.
    record = client.get(f"/staff/requests/{failed['bounced']}").get_data(as_text=True)
    assert "The patient was not notified" in record
    assert "We received your request" in record
    assert "The patient was not notified" not in client.get(
        f"/staff/requests/{failed['fine']}"
    ).get_data(as_text=True)


def test_staff_correct_the_address_and_resend(
    app: Flask, auth: AuthActions, clinic: Clinic, failed: dict[str, str], smtp: SmtpServer
) -> None:
    auth.login("coordinator")
    client = auth.client
    reference = failed["bounced"]
    page = client.get(f"/staff/requests/{reference}").get_data(as_text=True)
    token = CSRF_VALUE.search(page).group(1)

    # A mistyped correction is refused by the form and nothing is queued.
    response = client.post(
        f"/staff/requests/{reference}/resend-emails",
        data={"resend-csrf_token": token, "resend-email": "not an address"},
    )
    assert response.status_code == 422
    assert "Please enter a valid email address." in response.get_data(as_text=True)
    response = client.post(
        f"/staff/requests/{reference}/resend-emails",
        data={"resend-csrf_token": token, "resend-email": "josé@ejemplo.es"},
    )
    assert response.status_code == 422
    assert "cannot reach an address with accents" in response.get_data(as_text=True)

    response = client.post(
        f"/staff/requests/{reference}/resend-emails",
        data={"resend-csrf_token": token, "resend-email": FIXED},
    )
    assert response.status_code == 302
    with app.app_context():
        consultation = db.session.scalars(
            select(ConsultationRequest).where(ConsultationRequest.reference == reference)
        ).one()
        assert consultation.patient.email == FIXED
        rows = db.session.scalars(
            select(OutboxEmail)
            .where(OutboxEmail.request_id == consultation.id)
            .where(OutboxEmail.template == "request_received")
            .order_by(OutboxEmail.id)
        ).all()
        assert [(r.recipient, r.status) for r in rows] == [
            (TYPO, OutboxStatus.FAILED),
            (FIXED, OutboxStatus.PENDING),
        ]
        first, again = rows
        # The same email, with a private link of its own (the first's may have been ended).
        assert again.subject == first.subject
        assert TOKEN_RE.findall(again.body_text)
        assert TOKEN_RE.sub("", again.body_text) == REDACTED_LINK.sub("", first.body_text)
        # The failed one is kept for the record, its link's token gone as a sent one's is.
        assert not TOKEN_RE.findall(first.body_text) and not TOKEN_RE.findall(first.body_html)
        assert "/manage/open/[redacted]" in first.body_text
        assert again.message_id != first.message_id
        audit = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "patient_emails_resent")
        ).one()
        assert audit.target_id == reference
        # The address the emails went to is told of the change (it may be the patient's).
        notice = db.session.scalars(
            select(OutboxEmail).where(OutboxEmail.template == "address_changed")
        ).one()
        assert notice.recipient == TYPO
        assert audit.details == {
            "failed_email_ids": [first.id],
            "new_email_ids": [again.id],
            "notice_email_id": notice.id,
            "address_changed": True,
            "links_revoked": 1,  # the one the failed email held
        }
        assert FIXED not in str(audit.details)  # the trail outlives an erasure
    # On its way: no longer flagged.
    assert _unnotified_count(client) == "0"

    _deliver_all(app)
    received = smtp.collector.wait_for(3)
    assert [r.rcpt_tos for r in received][-1] == [FIXED]
    # The resent email's private link works; once sent, the outbox keeps no working copy of
    # it, nor of the failed one it replaced (a resend copies the newest failure only).
    [link_token] = TOKEN_RE.findall(received[-1].message.get_body(("plain",)).get_content())
    assert app.test_client().get(f"/manage/open/{link_token}").status_code == 303
    with app.app_context():
        first, again = (db.session.get(OutboxEmail, row.id) for row in rows)
        assert again.status == OutboxStatus.SENT
        assert link_token not in again.body_text and link_token not in again.body_html
        assert not TOKEN_RE.search(first.body_text) and not TOKEN_RE.search(first.body_html)
        # A delivered email is never copied: its bodies lost their tokens.
        with pytest.raises(ValueError, match="was sent"):
            copy_email(again, recipient=FIXED)
    page = client.get(f"/staff/requests/{reference}").get_data(as_text=True)
    assert "The patient was not notified" not in page

    # Nothing left to resend: a second post changes nothing.
    response = client.post(
        f"/staff/requests/{reference}/resend-emails",
        data={"resend-csrf_token": token, "resend-email": FIXED},
        follow_redirects=True,
    )
    assert "Every email to the patient went out or is on its way." in response.get_data(
        as_text=True
    )
    with app.app_context():
        # The five, and the notice to the old address of the change.
        assert len(db.session.scalars(select(OutboxEmail)).all()) == 6


def test_a_resend_tells_the_request_as_it_is_now(
    app: Flask, auth: AuthActions, clinic: Clinic, failed: dict[str, str], smtp: SmtpServer
) -> None:
    """The receipt bounced; since then staff sent a new link (ending the receipt's) and
    declined the request. Sent again as it was, it would say "we will contact you to offer
    an appointment" with a link that opens nothing: out of date, it is replaced by a new
    link to the patient's page, which shows the request as it is; the decline's own email,
    which bounced too, goes again with a link that works."""
    from booking.dashboard import services as workflow

    reference = failed["bounced"]
    with app.app_context():
        consultation = db.session.scalars(
            select(ConsultationRequest).where(ConsultationRequest.reference == reference)
        ).one()
        coordinator = db.session.get(StaffUser, clinic.coordinator.id)
        workflow.send_new_link(consultation, coordinator)
        workflow.decline_request(consultation, coordinator)
    _deliver_all(app)  # both bounce too
    auth.login("coordinator")
    client = auth.client
    response = _resend(client, reference, FIXED)
    assert response.status_code == 302
    with app.app_context():
        sent_again = db.session.scalars(
            select(OutboxEmail).where(OutboxEmail.recipient == FIXED).order_by(OutboxEmail.id)
        ).all()
    assert sorted(e.template for e in sent_again) == ["manage_link", "request_update"]
    for email in sent_again:  # (the decline's email holds no link)
        for link in TOKEN_RE.findall(email.body_text):
            assert app.test_client().get(f"/manage/open/{link}").status_code == 303
    [new_link] = [e for e in sent_again if e.template == "manage_link"]
    assert TOKEN_RE.findall(new_link.body_text)


def test_a_failed_email_a_resend_replaced_by_a_new_link_leaves_the_banner(
    app: Flask, auth: AuthActions, clinic: Clinic, failed: dict[str, str]
) -> None:
    """The receipt bounced, then staff declined the request (its email bounced too). The
    resend sends the decline again and replaces the receipt, out of date, by a new link;
    the receipt stayed on the banner and in the queue's count for good, its button sending
    one more new link at each press. Dealt with, it is off both."""
    from booking.dashboard import services as workflow

    reference = failed["bounced"]
    with app.app_context():
        workflow.decline_request(
            db.session.scalars(
                select(ConsultationRequest).where(ConsultationRequest.reference == reference)
            ).one(),
            db.session.get(StaffUser, clinic.coordinator.id),
        )
    _deliver_all(app)  # the decline's email bounces too
    auth.login("coordinator")
    client = auth.client
    assert _unnotified_count(client, status="all") == "1"
    response = _resend(client, reference, FIXED, follow_redirects=True)
    shown = " ".join(response.get_data(as_text=True).split())
    assert "2 emails are on their way to the patient again." in shown
    assert "1 older email was not sent again" in shown
    assert "The patient was not notified" not in shown
    assert _unnotified_count(client, status="all") == "0"


def test_a_failed_email_with_nothing_left_to_send_is_taken_off_the_banner(
    app: Flask, auth: AuthActions, clinic: Clinic
) -> None:
    """A reminder of a visit already begun failed: nothing can be sent again. The banner
    said "Send it again", the resend refused ("none of these emails is still to be
    sent") and the banner and the queue's count stayed for good. The banner now says so of
    the email, and its button takes it off the list: nothing is sent."""
    from booking.requests import emails

    with app.app_context():
        consultation = book_first_open_time(clinic)
        reference, request_id = consultation.reference, consultation.id
        assert emails.reminder(consultation, consultation.appointment) is not None
        db.session.commit()
        db.session.execute(
            update(OutboxEmail)
            .where(OutboxEmail.template != "appointment_reminder")
            .values(status=OutboxStatus.SENT)
        )
        db.session.execute(
            update(OutboxEmail)
            .where(OutboxEmail.template == "appointment_reminder")
            .values(status=OutboxStatus.FAILED)
        )
        _visit_began_two_days_ago(request_id)
        before = db.session.scalar(select(func.count(OutboxEmail.id)))
    auth.login("coordinator")
    client = auth.client
    assert _unnotified_count(client, status="all") == "1"
    page = " ".join(client.get(f"/staff/requests/{reference}").get_data(as_text=True).split())
    assert "The patient was not notified" in page
    assert "(not sent again: what it was about is past" in page
    assert "There is nothing to send again." in page and "Send it again" not in page
    response = client.post(
        f"/staff/requests/{reference}/resend-emails",
        data={
            "resend-csrf_token": CSRF_VALUE.search(page).group(1),
            "resend-email": "other@example.com",
        },
        follow_redirects=True,
    )
    shown = " ".join(response.get_data(as_text=True).split())
    assert "No email was sent: none of these was still to be sent." in shown
    assert "1 reminder, offer or follow-up invitation was not sent again" in shown
    assert "The patient was not notified" not in shown
    assert _unnotified_count(client, status="all") == "0"
    with app.app_context():
        assert db.session.scalar(select(func.count(OutboxEmail.id))) == before
        patient_email = db.session.get(ConsultationRequest, request_id).patient.email
    assert patient_email == FIXED  # nothing went to the address typed: it is not taken


def test_a_specialist_may_not_resend(
    auth: AuthActions, clinic: Clinic, failed: dict[str, str]
) -> None:
    auth.login("specialist")
    token = csrf_token(auth.client, "/staff/queue")
    response = auth.client.post(
        f"/staff/requests/{failed['bounced']}/resend-emails",
        data={"resend-csrf_token": token, "resend-email": FIXED},
    )
    assert response.status_code == 403


def _message_waiting_refused(
    app: Flask, clinic: Clinic, failed: dict[str, str], smtp: SmtpServer
) -> str:
    """The reference of the request whose receipt arrived, after a message from the clinic
    whose email its patient's mailbox refused (and still refuses: the test lifts it)."""
    reference = failed["fine"]
    smtp.collector.refuse_rcpt.add("otto@example.com")
    with app.app_context():
        consultation = db.session.scalars(
            select(ConsultationRequest).where(ConsultationRequest.reference == reference)
        ).one()
        coordinator = db.session.get(StaffUser, clinic.coordinator.id)
        messages.send_staff_message(consultation, coordinator, "Please bring your MRI.")
    _deliver_all(app)
    return reference


def _resend(
    client: FlaskClient, reference: str, email: str = "otto@example.com", **options: Any
) -> TestResponse:
    """Staff press "Resend" on the record of ``reference``, with the address ``email``."""
    page = client.get(f"/staff/requests/{reference}").get_data(as_text=True)
    return client.post(
        f"/staff/requests/{reference}/resend-emails",
        data={"resend-csrf_token": CSRF_VALUE.search(page).group(1), "resend-email": email},
        **options,
    )


def _message_waiting_rows() -> list[OutboxEmail]:
    return list(
        db.session.scalars(
            select(OutboxEmail)
            .where(OutboxEmail.template == "message_waiting")
            .order_by(OutboxEmail.id)
        )
    )


def test_a_failed_message_waiting_email_flags_the_request_and_is_sent_again(
    app: Flask, auth: AuthActions, clinic: Clinic, failed: dict[str, str], smtp: SmtpServer
) -> None:
    """The patient whose receipt arrived never learns of a message written to them after
    their mailbox started refusing mail: staff see it and send that email again."""
    reference = _message_waiting_refused(app, clinic, failed, smtp)

    auth.login("coordinator")
    client = auth.client
    assert _unnotified_count(client) == "2"
    listed = REF_RE.findall(
        client.get("/staff/", query_string={"status": "all", "unnotified": 1}).get_data(
            as_text=True
        )
    )
    assert sorted(listed) == sorted([failed["bounced"], reference])
    page = client.get(f"/staff/requests/{reference}").get_data(as_text=True)
    assert "The patient was not notified" in page
    assert f"A message from the clinic about your request {reference}" in page

    smtp.collector.refuse_rcpt.discard("otto@example.com")
    assert _resend(client, reference).status_code == 302
    with app.app_context():
        rows = _message_waiting_rows()
        assert [r.status for r in rows] == [OutboxStatus.FAILED, OutboxStatus.PENDING]
        # The same email, its private link a new one; the failed one's token is gone (with
        # the rest of its link: the page's #messages).
        again = TOKEN_RE.sub("", rows[1].body_text).replace("#messages", "")
        assert again == REDACTED_LINK.sub("", rows[0].body_text)
    assert _unnotified_count(client) == "1"


def test_a_corrected_address_ends_the_links_the_wrong_one_was_sent(
    app: Flask, auth: AuthActions, clinic: Clinic, failed: dict[str, str], smtp: SmtpServer
) -> None:
    """The address took the receipt, then refused the clinic's message: it was somebody
    else's mailbox, and staff correct it. The link in that mailbox's receipt no longer opens
    the patient's page; the email sent again to the patient carries one that does."""
    reference = _message_waiting_refused(app, clinic, failed, smtp)
    [receipt] = [r for r in smtp.collector.received if r.rcpt_tos == ["otto@example.com"]]
    [old] = TOKEN_RE.findall(receipt.message.get_body(("plain",)).get_content())
    assert app.test_client().get(f"/manage/open/{old}").status_code == 303

    auth.login("coordinator")
    assert _resend(auth.client, reference, email="otto.fine@example.org").status_code == 302
    assert app.test_client().get(f"/manage/open/{old}").status_code == 404
    with app.app_context():
        again = _message_waiting_rows()[-1]
        assert again.recipient == "otto.fine@example.org"
        [new] = TOKEN_RE.findall(again.body_text)
    assert app.test_client().get(f"/manage/open/{new}").status_code == 303


def test_a_resend_to_the_same_address_keeps_the_links_it_was_sent(
    app: Flask, auth: AuthActions, clinic: Clinic, failed: dict[str, str], smtp: SmtpServer
) -> None:
    """The mailbox was the patient's, full for a while: the links it has keep working."""
    reference = _message_waiting_refused(app, clinic, failed, smtp)
    [receipt] = [r for r in smtp.collector.received if r.rcpt_tos == ["otto@example.com"]]
    [old] = TOKEN_RE.findall(receipt.message.get_body(("plain",)).get_content())
    auth.login("coordinator")
    assert _resend(auth.client, reference).status_code == 302
    assert app.test_client().get(f"/manage/open/{old}").status_code == 303


def test_a_resend_that_failed_too_is_sent_once_more_not_twice(
    app: Flask, auth: AuthActions, clinic: Clinic, failed: dict[str, str], smtp: SmtpServer
) -> None:
    """The resent copy fails as well (the address still refuses): the next resend sends one
    email, the latest, with a working link; not also the first again, whose link was taken
    out when it was first resent."""
    reference = _message_waiting_refused(app, clinic, failed, smtp)
    auth.login("coordinator")
    client = auth.client

    assert _resend(client, reference).status_code == 302
    _deliver_all(app)  # refused again
    smtp.collector.refuse_rcpt.discard("otto@example.com")
    assert _resend(client, reference).status_code == 302
    with app.app_context():
        rows = _message_waiting_rows()
        assert [r.status for r in rows] == [
            OutboxStatus.FAILED,
            OutboxStatus.FAILED,
            OutboxStatus.PENDING,
        ]
        assert TOKEN_RE.search(rows[2].body_text), "the email sent again has a working link"
        assert not REDACTED_LINK.search(rows[2].body_text)
    assert _unnotified_count(client) == "1"  # the bounced request's; this one's is on its way


@pytest.mark.parametrize("clock", ["agreed", "ahead"])
def test_a_resend_never_sends_a_time_a_later_change_replaced(
    app: Flask,
    auth: AuthActions,
    clinic: Clinic,
    failed: dict[str, str],
    smtp: SmtpServer,
    clock: str,
) -> None:
    """The confirmation bounced (a mistyped address), then staff moved the appointment (its
    email bounced too). Sent again as it was, the confirmation would give the patient the
    old time, before the new one: only the move's email goes again; the confirmation (with
    the receipt) is replaced by a new link to the patient's page, and staff are told so.
    Also when the clocks of the servers that wrote them differ: a later calendar email
    outdates an earlier one by the order they were written, not by their times."""
    from booking.dashboard import services as workflow
    from tests.factories import slot_two_days_ahead

    reference = failed["bounced"]
    with app.app_context():
        consultation = db.session.scalars(
            select(ConsultationRequest).where(ConsultationRequest.reference == reference)
        ).one()
        request_id = consultation.id
        coordinator = db.session.get(StaffUser, clinic.coordinator.id)
        workflow.confirm_request(consultation, coordinator, slot_two_days_ahead(clinic))
        old_time = db.session.get(ConsultationRequest, request_id).appointment.starts_at
    _deliver_all(app)
    with app.app_context():
        workflow.reschedule_request(  # the first time still open: not the booked one
            db.session.get(ConsultationRequest, request_id),
            db.session.get(StaffUser, clinic.coordinator.id),
            slot_two_days_ahead(clinic),
        )
        new_time = db.session.get(ConsultationRequest, request_id).appointment.starts_at
    assert new_time != old_time
    if clock == "ahead":
        # The confirmation was written by a server whose clock runs a few seconds ahead.
        with app.app_context():
            confirmation = db.session.scalars(
                select(OutboxEmail).where(
                    OutboxEmail.request_id == request_id,
                    OutboxEmail.template == "request_update",
                    OutboxEmail.status == OutboxStatus.FAILED,
                )
            ).one()
            confirmation.created_at = now_utc() + timedelta(seconds=5)
            db.session.commit()
    _deliver_all(app)
    with app.app_context():
        assert [
            e.status
            for e in db.session.scalars(
                select(OutboxEmail).where(OutboxEmail.request_id == request_id)
            )
            if e.recipient == TYPO
        ] == [OutboxStatus.FAILED] * 3

    auth.login("coordinator")
    client = auth.client
    response = _resend(client, reference, FIXED, follow_redirects=True)
    shown = " ".join(response.get_data(as_text=True).split())
    assert "2 emails are on their way to the patient again." in shown
    # The confirmation is not even listed: the move's email, of its kind and later, stands
    # for it (``unnotified``); the receipt, with the first invitation, is outdated.
    assert (
        "1 older email was not sent again: the request has changed since. The patient "
        "gets a new link to their page instead, which shows it as it is now." in shown
    )
    _deliver_all(app)
    received = [r.message for r in smtp.collector.wait_for(5) if r.rcpt_tos == [FIXED]]
    assert [m["Subject"] for m in received] == [
        f"Your appointment has changed ({reference})",
        f"Your new private link ({reference})",
    ]
    ics = _calendar_part(received[0])
    assert f"DTSTART:{new_time:%Y%m%dT%H%M%SZ}" in ics
    assert f"{old_time:%Y%m%dT%H%M%SZ}" not in ics


def _calendar_part(message: Any) -> str:
    [part] = [
        p for p in message.walk() if p.get_content_type() == "text/calendar" and p.get_filename()
    ]
    content = part.get_content()
    return content.decode() if isinstance(content, bytes) else content


# ---- what is never sent again ----------------------------------------------------------------


def _fail_every_email() -> None:
    """Every email so far failed for good (a full mailbox, say)."""
    db.session.execute(update(OutboxEmail).values(status=OutboxStatus.FAILED))
    db.session.commit()


def _resent_templates(resent: Any) -> list[str]:
    return sorted(
        db.session.scalars(select(OutboxEmail.template).where(OutboxEmail.id.in_(resent.email_ids)))
    )


def test_nothing_is_sent_again_to_a_patient_marked_deceased(
    app: Flask, auth: AuthActions, clinic: Clinic, failed: dict[str, str]
) -> None:
    """The banner still says what the patient was never told, but offers no button: the
    address may be read by the family. A post from a page shown before is refused."""
    from booking.outcomes.services import mark_deceased

    auth.login("coordinator")
    client = auth.client
    reference = failed["bounced"]
    shown = client.get(f"/staff/requests/{reference}").get_data(as_text=True)
    with app.app_context():
        mark_deceased(
            db.session.scalars(
                select(ConsultationRequest).where(ConsultationRequest.reference == reference)
            ).one(),
            db.session.get(StaffUser, clinic.coordinator.id),
        )
        before = db.session.scalar(select(func.count(OutboxEmail.id)))
    page = client.get(f"/staff/requests/{reference}").get_data(as_text=True)
    assert "The patient was not notified" in page
    assert "resend-csrf_token" not in page
    assert "Nothing is sent again: the patient is marked deceased" in page
    response = client.post(
        f"/staff/requests/{reference}/resend-emails",
        data={"resend-csrf_token": CSRF_VALUE.search(shown).group(1), "resend-email": FIXED},
        follow_redirects=True,
    )
    assert "No email can be sent to this patient: they are marked deceased" in response.get_data(
        as_text=True
    )
    with app.app_context():
        assert db.session.scalar(select(func.count(OutboxEmail.id))) == before


@pytest.mark.parametrize("case", ["to come", "consent withdrawn", "visit past"])
def test_a_failed_reminder_is_sent_again_only_of_a_visit_to_come(
    app: Flask, clinic: Clinic, case: str
) -> None:
    """A reminder is sent again while the patient may be contacted and the visit is still
    to come; after "no more reminders", or of a visit already begun, it is left out (the
    receipt still goes again)."""
    from booking.dashboard.services import resend_patient_emails
    from booking.requests import emails
    from booking.rights.services import withdraw_contact_consent

    with app.app_context():
        consultation = book_first_open_time(clinic)
        assert emails.reminder(consultation, consultation.appointment) is not None
        db.session.commit()
        _fail_every_email()
        if case == "consent withdrawn":
            assert withdraw_contact_consent(consultation)
        if case == "visit past":
            _visit_began_two_days_ago(consultation.id)
        resent = resend_patient_emails(
            consultation, db.session.get(StaffUser, clinic.coordinator.id), FIXED
        )
        templates = _resent_templates(resent)
    assert "request_received" in templates
    assert ("appointment_reminder" in templates) is (case == "to come")
    assert resent.left_out == (0 if case == "to come" else 1)


def test_a_failed_offer_is_not_sent_again_once_taken(app: Flask, clinic: Clinic) -> None:
    """The offer the email was for (read from its link) was taken by another patient since:
    it is left out, and nothing else was left to send: nothing is sent, and the failed
    offer no longer counts as the patient not notified (it was refused, and stayed so)."""
    from booking.dashboard.services import resend_patient_emails
    from booking.requests import emails
    from booking.scheduling.models import SlotOffer, SlotOfferRecipient

    with app.app_context():
        consultation = make_request()
        other = make_request(email="otto@example.com", full_name="Otto Other")
        starts_at = now_utc() + timedelta(days=10)
        offer = SlotOffer(
            token="offer-token-for-the-test",
            appointment_type_id=clinic.type,
            specialist_id=clinic.weber.id,
            location_id=clinic.location,
            starts_at=starts_at,
        )
        db.session.add(offer)
        db.session.flush()
        db.session.add(SlotOfferRecipient(offer_id=offer.id, request_id=consultation.id))
        email = emails.waitlist_offer(consultation, offer, starts_at - timedelta(days=1))
        assert emails.offer_token_in(email) == "offer-token-for-the-test"
        # Only the offer failed: the receipt went out.
        db.session.execute(
            update(OutboxEmail)
            .where(OutboxEmail.template == "request_received")
            .values(status=OutboxStatus.SENT)
        )
        email.status = OutboxStatus.FAILED
        offer.claimed_by_request_id, offer.claimed_at = other.id, now_utc()
        db.session.commit()
        coordinator = db.session.get(StaffUser, clinic.coordinator.id)
        resent = resend_patient_emails(consultation, coordinator, "other@example.com")
        assert (resent.email_ids, resent.left_out) == ([], 1)
        # Nothing went, nor was the address taken; the offer is off the list all the same.
        consultation = db.session.get(ConsultationRequest, consultation.id)
        assert consultation.patient.email == FIXED
        assert emails.unnotified(consultation) == []
        assert db.session.get(OutboxEmail, email.id).settled_at is not None


@pytest.mark.parametrize("closed", [False, True])
def test_a_failed_follow_up_invitation_is_sent_again_only_while_it_can_be_answered(
    app: Flask, clinic: Clinic, closed: bool
) -> None:
    """The questionnaire the invitation's link opens (read from the link) closed since: the
    invitation is left out. Still open, it goes again, its link as it was."""
    from booking.dashboard import services as workflow
    from booking.outcomes import schedule
    from booking.outcomes.models import FollowUp, Plan, TreatmentPlan
    from booking.outcomes.services import send_due_followups

    with app.app_context():
        coordinator = db.session.get(StaffUser, clinic.coordinator.id)
        consultation = make_request(followup_consent=True)
        workflow.confirm_request(
            consultation,
            coordinator,
            clinic_slot(clinic, clinic_today() - timedelta(days=1), time(10)),
        )
        workflow.complete_request(consultation, coordinator, Plan.PHYSIOTHERAPY, None)
        plan = db.session.get(TreatmentPlan, consultation.id)
        start = schedule.start_of(plan.consulted_on, plan.procedure_date)
        # Sent at its due time, whose link is still open now.
        sent = max(schedule.due_at(start, "6w", BERLIN), now_utc() - timedelta(days=1))
        assert send_due_followups(now=sent)
        _fail_every_email()
        if closed:
            db.session.scalars(select(FollowUp)).one().expires_at = now_utc() - timedelta(minutes=1)
            db.session.commit()
        resent = workflow.resend_patient_emails(consultation, coordinator, FIXED)
        templates = _resent_templates(resent)
    assert ("followup_invitation" in templates) is not closed
    assert resent.left_out == (1 if closed else 0)
