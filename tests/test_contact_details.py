"""Staff correct a patient's email address or phone number from the request's record (learnt
on a call): a new address ends every private link sent so far and gets a new one, the emails
still waiting go there instead of to the old one, and the audit trail names what changed,
never the address or number."""

from __future__ import annotations

import html
import re
import secrets

import pytest
from flask import Flask
from flask.testing import FlaskClient
from icalendar import Calendar
from sqlalchemy import func, select
from werkzeug.test import TestResponse

from booking.audit.models import AuditEvent
from booking.dashboard import services as workflow
from booking.extensions import db
from booking.notifications.models import OutboxEmail, OutboxStatus
from booking.outcomes import schedule
from booking.outcomes.services import send_due_followups
from booking.patients.services import CallbackSubmission, request_callback
from booking.requests.events import EventKind, RequestEvent
from booking.requests.lifecycle import WorkflowError
from booking.requests.models import ConsultationRequest
from booking.staff.models import StaffUser
from booking.timeutil import clinic_date
from tests.factories import confirmed_request, make_request
from tests.support import AuthActions, Clinic, deliver_waiting_emails, page_token
from tests.test_destructive_confirmation import asked, confirm
from tests.test_outcomes import BERLIN, _completed, _start

OLD = "erika.mustermann@example.com"  # the factory's address
NEW = "erika.m@example.org"
LINK_RE = re.compile(r"https?://[^/\s]+(/manage/open/[A-Za-z0-9_\-]+)")
FOLLOWUP_LINK_RE = re.compile(r"https?://[^/\s]+(/follow-up/open/[A-Za-z0-9_\-]+)")


def _hidden(page: str, name: str) -> str:
    found = re.search(rf'name="{name}" type="hidden" value="([^"]*)"', page)
    assert found, f"no {name} on the record"
    return found.group(1)


def _shown(page: str, name: str) -> str:
    found = re.search(rf'name="{name}"[^>]*? value="([^"]*)"', page)
    assert found, f"no {name} on the record"
    return html.unescape(found.group(1))


def correct(
    client: FlaskClient,
    reference: str,
    *,
    email: str | None = None,
    phone: str | None = None,
    page: str | None = None,
    confirmed: bool = True,
) -> TestResponse:
    """The record's contact form as a coordinator's browser sends it: the details shown,
    with what was typed over them. ``page``: an earlier showing of the record. By default
    from its confirmation page (``confirmed``; a new address is asked about first), which
    posts the form's fields as they were."""
    page = page or client.get(f"/staff/requests/{reference}").get_data(as_text=True)
    data = {
        "contact-csrf_token": page_token(page),
        "contact-seen": _hidden(page, "contact-seen"),
        "contact-shown": _hidden(page, "contact-shown"),
        "contact-email": _shown(page, "contact-email") if email is None else email,
        "contact-phone": _shown(page, "contact-phone") if phone is None else phone,
    }
    if confirmed:
        data["confirmed"] = "1"
    return client.post(f"/staff/requests/{reference}/contact", data=data)


def new_request(app: Flask) -> tuple[int, str, str]:
    """A request whose receipt went out (to the address the patient typed); its id, its
    reference and the private link the receipt held."""
    with app.app_context():
        consultation = make_request()
        deliver_waiting_emails(app)
        body = db.session.scalars(
            select(OutboxEmail.body_text).where(OutboxEmail.template == "request_received")
        ).one()
        return consultation.id, consultation.reference, LINK_RE.search(body).group(1)


def state(app: Flask, request_id: int) -> dict[str, object]:
    """What a correction may change."""
    with app.app_context():
        consultation = db.session.get(ConsultationRequest, request_id)
        result = {
            "email": consultation.patient.email,
            "phone": consultation.patient.phone,
            "outbox": db.session.scalar(select(func.count()).select_from(OutboxEmail)),
            "audit": db.session.scalars(
                select(AuditEvent.action).where(AuditEvent.action == "patient_contact_corrected")
            ).all(),
            "notes": db.session.scalars(
                select(RequestEvent.body).where(RequestEvent.kind == EventKind.NOTE)
            ).all(),
        }
        db.session.remove()
        return result


def test_a_corrected_address_gets_a_new_link_and_the_old_links_stop_working(
    app: Flask, client: FlaskClient, auth: AuthActions, clinic: Clinic
) -> None:
    request_id, reference, old_link = new_request(app)
    assert client.get(old_link).status_code == 303  # the patient's page opens, cookie set
    coordinator = auth.new_client("coordinator")
    with app.app_context():
        written_before = db.session.scalar(select(func.max(OutboxEmail.id)))

    response = correct(coordinator, reference, email=NEW)
    assert response.status_code == 302
    assert "a new private link is on its way to the new address" in coordinator.get(
        response.location
    ).get_data(as_text=True)

    with app.app_context():
        written = db.session.scalars(
            select(OutboxEmail).where(OutboxEmail.id > written_before).order_by(OutboxEmail.id)
        ).all()
        # One email, with a new private link, to the new address; the old one is only told
        # of the change (``test_the_old_address_is_told_of_the_change``).
        assert [(e.template, e.recipient) for e in written] == [
            ("manage_link", NEW),
            ("address_changed", OLD),
        ]
        new_link = LINK_RE.search(written[0].body_text).group(1)
        # The earlier emails may never have reached the patient: it says so and what the
        # link shows, not that the links in them stopped working.
        assert written[0].subject == f"Your request {reference}: your private link"
        assert "We have corrected your email address." in written[0].body_text
        assert "earlier emails no longer work" not in written[0].body_text
        assert "We have corrected your email address." in written[0].body_html
        consultation = db.session.get(ConsultationRequest, request_id)
        assert consultation.patient.email == NEW
        assert consultation.patient.phone == "+4930901820"
        (audit,) = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "patient_contact_corrected")
        ).all()
        assert audit.details == {
            "changed": ["email"],
            "links_revoked": 1,
            "new_email_ids": [written[0].id],
            "notice_email_id": written[1].id,
        }
        assert OLD not in str(audit.details) and NEW not in str(audit.details)
        assert audit.actor_email == clinic.coordinator.email
        notes = db.session.scalars(
            select(RequestEvent.body).where(RequestEvent.kind == EventKind.NOTE)
        ).all()
        assert notes == [
            "Corrected the patient's email address; every earlier private link stopped "
            "working, and the emails to the patient now go to the new address, with a new link."
            " An email telling the old address of the change, with no link, was written to the"
            " outbox."
        ]
    # The link in the old mailbox, and the page it opened, no longer open anything.
    assert client.get(f"/manage/{reference}").status_code == 403
    assert client.get(old_link).status_code == 404
    assert client.get(new_link).status_code == 303
    assert client.get(f"/manage/{reference}").status_code == 200
    # The audit page names the action.
    trail = auth.new_client("admin").get("/staff/admin/audit").get_data(as_text=True)
    assert "Patient&#39;s email or phone corrected" in trail


def test_a_new_address_is_asked_about_first_and_the_pages_button_makes_it(
    app: Flask, client: FlaskClient, auth: AuthActions, clinic: Clinic
) -> None:
    """It ends the patient's private links and emails new ones: the record's button answers
    with a page saying so, and changes nothing (no email, no note, no audit row, the old
    link still opens); its own button does it, with the address and number typed."""
    request_id, reference, old_link = new_request(app)
    coordinator = auth.new_client("coordinator")
    before = state(app, request_id)

    question, warnings, page = asked(
        correct(coordinator, reference, email=NEW, phone="030 1234567", confirmed=False)
    )

    assert question == "Change the email address of <bdi>Erika Mustermann</bdi>?"
    assert warnings == []
    assert [html.unescape(line) for line in re.findall(r"<li>(.*?)</li>", page)] == [
        "Every private link sent to the patient so far stops working.",
        "The patient is emailed a new private link at the new address, with any email still "
        "waiting to go.",
        "The old address is told of the change, with no link.",
    ]
    assert "Change the address and send a new link" in page
    assert f'href="/staff/requests/{reference}"' in page  # cancel
    assert state(app, request_id) == before
    assert client.get(old_link).status_code == 303

    assert confirm(coordinator, page).status_code == 302
    after = state(app, request_id)
    assert (after["email"], after["phone"]) == (NEW, "+49301234567")
    assert after["audit"] == ["patient_contact_corrected"]
    assert client.get(old_link).status_code == 404


def test_the_old_address_is_told_of_the_change(
    app: Flask, client: FlaskClient, auth: AuthActions, clinic: Clinic
) -> None:
    """Whoever called the clinic with a "corrected" address may not be the patient (anyone
    holding a private link could ask): the address the emails went to hears that they no
    longer do, when, and whom to call, with nothing a stranger's mailbox may read (no name,
    no new address, no medical detail) and no link to open."""
    app.config["CLINIC_PHONE"] = "+49 30 1234 5678"
    request_id, reference, _old_link = new_request(app)
    assert correct(auth.new_client("coordinator"), reference, email=NEW).status_code == 302

    (notice,) = [e for e in outbox_of(app, request_id) if e.template == "address_changed"]
    assert notice.recipient == OLD
    assert notice.status == OutboxStatus.PENDING
    assert notice.subject == f"The email address for your request {reference} was changed"
    with app.test_request_context():
        day = clinic_date(notice.created_at, "long")
    for body in (notice.body_text, html.unescape(notice.body_html)):
        assert f"The email address for request {reference} was changed on {day}." in body
        call = "If you did not ask for this change, please call the clinic: +49 30 1234 5678."
        assert call in body.replace("<strong>", "").replace("</strong>", "")
        assert NEW not in body and "Erika" not in body and "Mustermann" not in body
        assert "/manage/" not in body and "/follow-up/" not in body and "http" not in body
    # On its way at once, as the new link's email.
    deliver_waiting_emails(app)
    (sent,) = [e for e in outbox_of(app, request_id) if e.template == "address_changed"]
    assert sent.status == OutboxStatus.SENT


def test_a_notice_to_an_old_address_stays_with_it(
    app: Flask, auth: AuthActions, clinic: Clinic
) -> None:
    """An address changed away and back, then away again, before the mail server took
    anything: the notices waiting for it are for it, never readdressed to the address the
    request's emails go to now (``readdress_waiting``), whose holder made the change."""
    third = "someone.else@example.net"
    request_id, reference, _link = new_request(app)
    coordinator = auth.new_client("coordinator")
    for address in (NEW, OLD, third):
        assert correct(coordinator, reference, email=address).status_code == 302
    _send_a_new_link(coordinator, reference)

    notices = [e for e in outbox_of(app, request_id) if e.template == "address_changed"]
    assert [(e.recipient, e.status) for e in notices] == [
        (OLD, OutboxStatus.PENDING),
        (NEW, OutboxStatus.PENDING),
        (OLD, OutboxStatus.PENDING),
    ]


def test_emails_still_waiting_go_to_the_new_address_instead(
    app: Flask, client: FlaskClient, auth: AuthActions, clinic: Clinic
) -> None:
    # Its receipt and confirmation not sent yet (the mistyped address's server is slow).
    request_id = confirmed_request(app, clinic)
    waiting = outbox_of(app, request_id)
    assert [(e.template, e.recipient) for e in waiting if e.recipient == OLD] == [
        ("request_received", OLD),
        ("request_update", OLD),
    ]
    old_links = [LINK_RE.search(e.body_text).group(1) for e in waiting if e.recipient == OLD]
    with app.app_context():
        reference = db.session.get(ConsultationRequest, request_id).reference
    coordinator = auth.new_client("coordinator")
    assert correct(coordinator, reference, email=NEW).status_code == 302

    patients = [e for e in outbox_of(app, request_id) if e.recipient in (OLD, NEW)]
    # Those written to the old address are withdrawn; copies go to the new one, in the
    # same order, each with a new link of its own, and after them the new link's email.
    # The old address gets only the notice of the change.
    assert [(e.template, e.recipient, e.status) for e in patients] == [
        ("request_received", NEW, OutboxStatus.PENDING),
        ("request_update", NEW, OutboxStatus.PENDING),
        ("manage_link", NEW, OutboxStatus.PENDING),
        ("address_changed", OLD, OutboxStatus.PENDING),
    ]
    received, confirmed, _link_email, _notice = patients
    assert [received.subject, confirmed.subject] == [
        e.subject for e in waiting if e.recipient == OLD
    ]
    # The invitation names its new recipient, by whom calendar apps match it.
    (event,) = Calendar.from_ical(confirmed.attachment_body).walk("VEVENT")
    assert str(event["ATTENDEE"]) == f"mailto:{NEW}"
    assert event["ATTENDEE"].params["PARTSTAT"] == "ACCEPTED"
    assert OLD not in confirmed.attachment_body
    new_links = [LINK_RE.search(e.body_text).group(1) for e in (received, confirmed)]
    for link in old_links:
        assert client.get(link).status_code == 404
    for link in new_links:
        assert client.get(link).status_code == 303


def _invited_at_six_weeks(app: Flask) -> tuple[int, str]:
    """A completed request whose 6-week questionnaire is due: its invitation is written (not
    delivered yet). The request's id and reference."""
    with app.app_context():
        consultation = _completed()
        request_id, reference = consultation.id, consultation.reference
        send_due_followups(now=schedule.due_at(_start(request_id), "6w", BERLIN))
    return request_id, reference


def _invitations(app: Flask, request_id: int) -> list[OutboxEmail]:
    return [e for e in outbox_of(app, request_id) if e.template == "followup_invitation"]


def _link(email: OutboxEmail) -> str:
    """The questionnaire link in an invitation."""
    return FOLLOWUP_LINK_RE.search(email.body_text).group(1)


def _send_a_new_link(client: FlaskClient, reference: str) -> None:
    """The record's "Send a new link" opened, and the button in its box pressed."""
    page = client.get(f"/staff/requests/{reference}").get_data(as_text=True)
    response = client.post(
        f"/staff/requests/{reference}/new-link",
        data={"link-csrf_token": page_token(page), "link-confirm": _hidden(page, "link-confirm")},
    )
    assert response.status_code == 302


def test_a_new_link_is_sent_only_once_confirmed(
    app: Flask, client: FlaskClient, auth: AuthActions, clinic: Clinic
) -> None:
    """Ending every link the patient holds is one press too easy to make by mistake: the
    record's "Send a new link" opens a box (``<details>``, no JavaScript needed) saying what
    it does, and only the button in it sends. A post without that confirmation (a record page
    from before the box, still open in a tab) ends nothing and says so."""
    request_id, reference, link = new_request(app)
    coordinator = auth.new_client("coordinator")
    page = coordinator.get(f"/staff/requests/{reference}").get_data(as_text=True)
    box = page[page.index('<details id="new-link">') :]
    box = box[: box.index("</details>")]
    summary = box[: box.index("</summary>")]
    assert "Send a new link (the earlier ones stop working)" in summary
    assert "<form" not in summary and "<form" in box  # the sending button is inside the box
    assert f"A new link is emailed to {OLD}." in html.unescape(box)
    assert "End the earlier links and send a new one" in box

    before = state(app, request_id)
    unconfirmed = coordinator.post(
        f"/staff/requests/{reference}/new-link", data={"link-csrf_token": page_token(page)}
    )
    assert unconfirmed.status_code == 302
    assert unconfirmed.location.endswith("#new-link")
    assert 'No new link was sent. Press "Send a new link" again' in html.unescape(
        coordinator.get(unconfirmed.location).get_data(as_text=True)
    )
    assert state(app, request_id) == before
    assert client.get(link).status_code == 303  # the patient's link still works

    _send_a_new_link(coordinator, reference)
    assert state(app, request_id)["outbox"] == before["outbox"] + 1
    assert app.test_client().get(link).status_code == 404


@pytest.mark.parametrize("how", ["corrected address", "new link"])
def test_the_follow_up_links_sent_stop_working_too(
    app: Flask, client: FlaskClient, auth: AuthActions, how: str
) -> None:
    """A questionnaire's link is a private link as well: from the old mailbox (an address
    staff corrected, or one the record's "Send a new link" is for: a link forwarded by
    mistake, a shared mailbox) it would go on answering for the patient, or stopping their
    follow-ups. It stops with the others, and one still open is sent again with a new link,
    to the address as it is now."""
    request_id, reference = _invited_at_six_weeks(app)
    deliver_waiting_emails(app)  # the invitation reached the mailbox
    (sent,) = _invitations(app, request_id)
    old_link = _link(sent)
    coordinator = auth.new_client("coordinator")
    if how == "corrected address":
        assert correct(coordinator, reference, email=NEW).status_code == 302
    else:
        _send_a_new_link(coordinator, reference)

    stranger = app.test_client()
    assert stranger.get(old_link).status_code == 404
    assert stranger.get(f"{old_link}/stop").status_code == 404
    invitations = _invitations(app, request_id)
    assert [(e.recipient, e.status) for e in invitations] == [
        (OLD, OutboxStatus.SENT),
        (NEW if how == "corrected address" else OLD, OutboxStatus.PENDING),
    ]
    assert client.get(_link(invitations[-1])).status_code == 303


def test_failed_emails_sent_again_to_another_address_end_the_follow_up_links_too(
    app: Flask, client: FlaskClient, auth: AuthActions
) -> None:
    """The other way staff correct the address: sending the failed emails again to it."""
    request_id, reference = _invited_at_six_weeks(app)
    deliver_waiting_emails(app)
    emails = outbox_of(app, request_id)
    (sent,) = [e for e in emails if e.template == "followup_invitation"]
    old_link = _link(sent)
    with app.app_context():  # the email saying the request was completed bounced
        bounced = [e for e in emails if e.template == "request_update"][-1].id
        db.session.get(OutboxEmail, bounced).status = OutboxStatus.FAILED
        db.session.commit()
    coordinator = auth.new_client("coordinator")
    page = coordinator.get(f"/staff/requests/{reference}").get_data(as_text=True)
    response = coordinator.post(
        f"/staff/requests/{reference}/resend-emails",
        data={"resend-csrf_token": page_token(page), "resend-email": NEW},
    )
    assert response.status_code == 302
    with app.app_context():  # true when written, whatever becomes of the notice
        notes = db.session.scalars(
            select(RequestEvent.body).where(
                RequestEvent.request_id == request_id, RequestEvent.kind == EventKind.NOTE
            )
        ).all()
    assert notes[-1] == (
        "The patient's failed emails were written to the outbox again, to a corrected address; "
        "every earlier link stopped working. An email telling the old address of the change, "
        "with no link, was written to the outbox."
    )

    assert app.test_client().get(old_link).status_code == 404
    invitations = _invitations(app, request_id)
    assert [e.recipient for e in invitations] == [OLD, NEW]
    new_link = _link(invitations[-1])
    assert client.get(new_link).status_code == 303


def test_a_new_link_keeps_the_link_of_an_invitation_not_sent_yet(
    app: Flask, client: FlaskClient, auth: AuthActions
) -> None:
    """Never sent, its link was in no mailbox: it goes with the same link, which works."""
    request_id, reference = _invited_at_six_weeks(app)
    (waiting,) = _invitations(app, request_id)
    _send_a_new_link(auth.new_client("coordinator"), reference)

    to_go = [e for e in _invitations(app, request_id) if e.status == OutboxStatus.PENDING]
    assert [_link(e) for e in to_go] == [_link(waiting)]
    assert client.get(_link(waiting)).status_code == 303


def test_a_new_link_writes_the_emails_still_waiting_again_with_links_that_work(
    app: Flask, client: FlaskClient, auth: AuthActions, clinic: Clinic
) -> None:
    """The receipt and the confirmation were still waiting (the patient's mail server is
    slow) when staff sent a new link: they held links that had just ended, and would have
    reached the patient opening nothing. They go as written, with new links, before the new
    link's own email."""
    request_id = confirmed_request(app, clinic)
    with app.app_context():
        reference = db.session.get(ConsultationRequest, request_id).reference
    _send_a_new_link(auth.new_client("coordinator"), reference)

    to_go = [
        e
        for e in outbox_of(app, request_id)
        if e.recipient == OLD and e.status == OutboxStatus.PENDING
    ]
    assert [e.template for e in to_go] == ["request_received", "request_update", "manage_link"]
    for email in to_go:
        assert client.get(LINK_RE.search(email.body_text).group(1)).status_code == 303
    with app.app_context():
        audit = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "manage_link_reissued")
        ).one()
    assert audit.details["emails_rewritten"] == 2


def test_a_waiting_invitation_goes_to_the_new_address_with_its_link(
    app: Flask, client: FlaskClient, auth: AuthActions
) -> None:
    """Never sent to the old address, its link is no secret there: the copy keeps it."""
    request_id, reference = _invited_at_six_weeks(app)
    (waiting,) = _invitations(app, request_id)
    link = _link(waiting)
    coordinator = auth.new_client("coordinator")
    assert correct(coordinator, reference, email=NEW).status_code == 302

    (copy,) = _invitations(app, request_id)
    assert copy.recipient == NEW
    assert _link(copy) == link
    assert client.get(link).status_code == 303


def test_a_new_phone_number_alone_sends_nothing(
    app: Flask, client: FlaskClient, auth: AuthActions, clinic: Clinic
) -> None:
    request_id, reference, link = new_request(app)
    before = state(app, request_id)
    coordinator = auth.new_client("admin")
    # Not asked about: a number alone ends no link and sends nothing; nor is the same
    # address typed again.
    response = correct(coordinator, reference, email=OLD, phone="030 1234567", confirmed=False)
    assert response.status_code == 302
    after = state(app, request_id)
    assert after["phone"] == "+49301234567"  # in E.164, as the patient's form stores it
    assert after["email"] == OLD
    assert after["outbox"] == before["outbox"]
    assert after["notes"] == ["Corrected the patient's phone number."]
    with app.app_context():
        (audit,) = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "patient_contact_corrected")
        ).all()
        assert audit.details == {"changed": ["phone"], "links_revoked": 0, "new_email_ids": []}
        assert "1234567" not in str(audit.details)
    assert client.get(link).status_code == 303  # the patient's links go on working


def test_a_specialist_has_no_contact_form_and_is_refused(
    app: Flask, auth: AuthActions, clinic: Clinic
) -> None:
    request_id, reference, _link = new_request(app)
    coordinator_page = (
        auth.new_client("coordinator").get(f"/staff/requests/{reference}").get_data(as_text=True)
    )
    specialist = auth.new_client("specialist")
    with app.app_context():
        # Assigned to the specialist, so the record is theirs to open.
        consultation = db.session.get(ConsultationRequest, request_id)
        consultation.assigned_specialist_id = clinic.weber.id
        db.session.commit()
    page = specialist.get(f"/staff/requests/{reference}").get_data(as_text=True)
    assert "contact-email" not in page and "Contact details" not in page
    before = state(app, request_id)
    response = specialist.post(
        f"/staff/requests/{reference}/contact",
        data={
            "contact-csrf_token": page_token(page),
            "contact-seen": _hidden(coordinator_page, "contact-seen"),
            "contact-shown": _hidden(coordinator_page, "contact-shown"),
            "contact-email": NEW,
            "contact-phone": "+4930901820",
        },
    )
    assert response.status_code == 403
    assert state(app, request_id) == before


def test_an_invalid_address_or_number_is_said_on_its_field_and_kept_to_correct(
    app: Flask, auth: AuthActions, clinic: Clinic
) -> None:
    request_id, reference, _link = new_request(app)
    before = state(app, request_id)
    coordinator = auth.new_client("coordinator")
    for email, phone, message in (
        ("erika.example.org", "+4930901820", "Please enter a valid email address"),
        ("erika@example.org", "12", "Please enter a valid phone number"),
        ("josé@example.org", "+4930901820", "cannot reach an address with accents"),
        ("erika@example.org", "", "Please enter a phone number."),
        # A patient with an address keeps one: it is corrected here, never removed.
        ("", "+4930901820", "Please enter the patient's email address."),
    ):
        response = correct(coordinator, reference, email=email, phone=phone)
        assert response.status_code == 422, (email, phone)
        page = response.get_data(as_text=True)
        assert message in html.unescape(page)
        assert _shown(page, "contact-email") == email  # as typed, to correct
        assert _shown(page, "contact-phone") == phone
        assert '<details class="mt-2" open>' in page
    assert state(app, request_id) == before


def test_a_page_shown_before_a_change_is_refused(
    app: Flask, auth: AuthActions, clinic: Clinic
) -> None:
    request_id, reference, _link = new_request(app)
    coordinator = auth.new_client("coordinator")
    page = coordinator.get(f"/staff/requests/{reference}").get_data(as_text=True)

    # A colleague corrects the number meanwhile: the stale page would put the old one back.
    colleague = auth.new_client("admin")
    assert correct(colleague, reference, phone="+49301234567").status_code == 302
    before = state(app, request_id)
    refused = correct(coordinator, reference, email=NEW, page=page)
    assert refused.status_code == 409
    text = html.unescape(refused.get_data(as_text=True))
    assert "was changed while you had this page open. Nothing was saved" in text
    # Shown again as stored now: the colleague's number, not the page's old one.
    assert _shown(text, "contact-phone") == "+49 30 1234567"
    assert _shown(text, "contact-email") == OLD
    assert state(app, request_id) == before

    # The request's status changed meanwhile: refused as every record form is.
    page = coordinator.get(f"/staff/requests/{reference}").get_data(as_text=True)
    with app.app_context():
        admin = db.session.get(StaffUser, clinic.admin.id)
        workflow.decline_request(db.session.get(ConsultationRequest, request_id), admin)
    before = state(app, request_id)
    refused = correct(coordinator, reference, email=NEW, page=page)
    assert refused.status_code == 409
    assert "This request changed while you had it open" in html.unescape(
        refused.get_data(as_text=True)
    )
    assert state(app, request_id) == before


def test_saving_the_refused_page_again_keeps_a_colleagues_new_address(
    app: Flask, auth: AuthActions, clinic: Clinic
) -> None:
    """A colleague corrected the address while this page showed the old one; the number
    typed here is refused ("check them as they are now, then try again"). Saved again as the
    refused page shows them, the colleague's address stays: the page must not send back the
    address just replaced (its links would go to a stranger's mailbox again)."""
    request_id, reference, _link = new_request(app)
    coordinator = auth.new_client("coordinator")
    page = coordinator.get(f"/staff/requests/{reference}").get_data(as_text=True)
    colleague = auth.new_client("admin")
    assert correct(colleague, reference, email=NEW).status_code == 302

    refused = correct(coordinator, reference, phone="+49301234567", page=page)
    assert refused.status_code == 409
    again = correct(
        coordinator,
        reference,
        phone="+49301234567",
        page=html.unescape(refused.get_data(as_text=True)),
    )
    assert again.status_code == 302
    assert state(app, request_id)["email"] == NEW
    assert state(app, request_id)["phone"] == "+49301234567"


def test_nothing_changed_is_said_and_nothing_is_done(
    app: Flask, auth: AuthActions, clinic: Clinic
) -> None:
    request_id, reference, _link = new_request(app)
    before = state(app, request_id)
    coordinator = auth.new_client("coordinator")
    # The same number written another way is the same number.
    refused = correct(coordinator, reference, phone="030 901820")
    assert refused.status_code == 409
    assert "nothing changed" in html.unescape(refused.get_data(as_text=True))
    assert state(app, request_id) == before


def test_a_patient_who_left_no_address_can_be_given_one(
    app: Flask, client: FlaskClient, auth: AuthActions, clinic: Clinic
) -> None:
    """An emergency call-back leaves a name and a number only: the form takes a new number
    with no address, and an address learnt on the call gets the patient a private link."""
    with app.app_context():
        consultation = request_callback(
            CallbackSubmission(
                submission_token=secrets.token_urlsafe(32),
                locale="es",
                full_name="Juana Notinmail",
                phone="+4930901821",
                red_flags={"saddle_numbness"},
            )
        )
        request_id, reference = consultation.id, consultation.reference
    coordinator = auth.new_client("coordinator")
    assert correct(coordinator, reference, phone="+4930901822").status_code == 302
    assert state(app, request_id)["email"] is None
    assert correct(coordinator, reference, email=NEW).status_code == 302
    (email,) = [e for e in outbox_of(app, request_id) if e.recipient == NEW]
    assert email.template == "manage_link"
    # There was no address to tell of the change.
    assert not [e for e in outbox_of(app, request_id) if e.template == "address_changed"]
    assert email.subject == f"Su solicitud {reference}: su enlace privado"
    assert client.get(LINK_RE.search(email.body_text).group(1)).status_code == 303
    assert client.get(f"/manage/{reference}").status_code == 200


def test_an_address_is_never_removed(app: Flask, clinic: Clinic) -> None:
    request_id, _reference, _link = new_request(app)
    before = state(app, request_id)
    with app.app_context():
        coordinator = db.session.get(StaffUser, clinic.coordinator.id)
        consultation = db.session.get(ConsultationRequest, request_id)
        with pytest.raises(WorkflowError, match="cannot be removed"):
            workflow.correct_contact(consultation, coordinator, " ", "+4930901820")
        db.session.rollback()
    assert state(app, request_id) == before


def outbox_of(app: Flask, request_id: int) -> list[OutboxEmail]:
    with app.app_context():
        rows = db.session.scalars(
            select(OutboxEmail).where(OutboxEmail.request_id == request_id).order_by(OutboxEmail.id)
        ).all()
        db.session.expunge_all()
        return list(rows)


def test_a_patient_marked_deceased_is_sent_nothing(
    app: Flask, client: FlaskClient, auth: AuthActions, clinic: Clinic
) -> None:
    """As every email to them: nothing goes to the new address (the family may read it), and
    the links in the old mailbox stop working all the same."""
    from booking.outcomes.services import mark_deceased

    request_id, reference, link = new_request(app)
    with app.app_context():
        admin = db.session.get(StaffUser, clinic.admin.id)
        mark_deceased(db.session.get(ConsultationRequest, request_id), admin)
    before = state(app, request_id)
    coordinator = auth.new_client("coordinator")
    _question, _warnings, asking = asked(
        correct(coordinator, reference, email=NEW, confirmed=False)
    )
    assert "No email goes: the patient is marked deceased." in asking
    assert "told of the change" not in asking and "new private link" not in asking
    response = confirm(coordinator, asking)
    assert response.status_code == 302
    assert "No email was sent: the patient is marked deceased" in coordinator.get(
        response.location
    ).get_data(as_text=True)
    after = state(app, request_id)
    assert after["email"] == NEW and after["outbox"] == before["outbox"]
    assert any(n.endswith("No email went: the patient is marked deceased.") for n in after["notes"])
    assert client.get(link).status_code == 404


def test_a_closed_requests_new_link_offers_its_private_page_not_changes(
    app: Flask, auth: AuthActions
) -> None:
    """A completed request's page shows what happened and the patient's data rights; it
    changes nothing. The new link a corrected address brings says so, not "add documents,
    change the time or cancel"."""
    request_id, reference = _invited_at_six_weeks(app)
    deliver_waiting_emails(app)
    assert correct(auth.new_client("coordinator"), reference, email=NEW).status_code == 302

    (link_email,) = [e for e in outbox_of(app, request_id) if e.template == "manage_link"]
    assert "Your private page (a private link: do not share it):" in link_email.body_text
    assert "Open your private page" in link_email.body_html
    for body in (link_email.body_text, link_email.body_html):
        assert "add documents, change the time or cancel" not in body


def test_no_link_is_sent_to_a_closed_page_that_no_longer_opens(
    app: Flask, client: FlaskClient, auth: AuthActions
) -> None:
    """A request completed long ago (its links' time after the closing is over) whose
    follow-up questionnaires still go out: a corrected address gets the questionnaire
    still open, not a "private link" to a page that would only say the link no longer
    works. Staff are told why no new link went."""
    request_id, reference = _invited_at_six_weeks(app)
    deliver_waiting_emails(app)
    app.config["MANAGE_LINK_DAYS_AFTER_CLOSE"] = 0  # the request's page no longer opens
    with app.app_context():
        before = db.session.scalar(select(func.max(OutboxEmail.id)))
    coordinator = auth.new_client("coordinator")
    _question, _warnings, asking = asked(
        correct(coordinator, reference, email=NEW, confirmed=False)
    )
    assert "No new link is sent: the request is closed and its page no longer opens." in asking
    response = confirm(coordinator, asking)
    assert response.status_code == 302
    assert "No new link was sent: the request is closed and its page no longer opens." in (
        html.unescape(coordinator.get(response.location).get_data(as_text=True))
    )

    written = [e for e in outbox_of(app, request_id) if e.id > before]
    assert [(e.template, e.recipient) for e in written] == [
        ("followup_invitation", NEW),
        ("address_changed", OLD),
    ]
    assert client.get(_link(written[0])).status_code == 303
    notes = state(app, request_id)["notes"]
    assert any("No new link was sent: the request is closed" in n for n in notes)


def test_a_new_link_for_a_closed_page_that_no_longer_opens_ends_links_but_sends_none(
    app: Flask, client: FlaskClient, auth: AuthActions
) -> None:
    """The record's "Send a new link" on a request completed long ago, whose questionnaire link was
    forwarded: the questionnaire's link ends and the one still open is sent again, but no
    "private link" goes to a page that would only say the link no longer works. The box
    says so before, the message after."""
    request_id, reference = _invited_at_six_weeks(app)
    deliver_waiting_emails(app)
    (forwarded,) = _invitations(app, request_id)
    app.config["MANAGE_LINK_DAYS_AFTER_CLOSE"] = 0  # the request's page no longer opens
    with app.app_context():
        before = db.session.scalar(select(func.max(OutboxEmail.id)))
    coordinator = auth.new_client("coordinator")
    record = coordinator.get(f"/staff/requests/{reference}").get_data(as_text=True)
    assert "The request is closed and its page no longer opens, so no link to it is sent." in (
        html.unescape(record)
    )

    _send_a_new_link(coordinator, reference)

    written = [e for e in outbox_of(app, request_id) if e.id > before]
    assert [e.template for e in written] == ["followup_invitation"]
    assert client.get(_link(forwarded)).status_code == 404
    assert client.get(_link(written[0])).status_code == 303
    shown = html.unescape(coordinator.get(f"/staff/requests/{reference}").get_data(as_text=True))
    assert "No link to the request's page was sent: it is closed and its page no longer" in shown
    # The questionnaire's email is only in the outbox yet: not said to be sent.
    assert "each follow-up questionnaire still open is on its way to the patient again" in shown
    notes = state(app, request_id)["notes"]
    assert any("No new link was sent: the request is closed" in n for n in notes)


def test_a_change_locked_after_a_correction_writes_to_the_corrected_address(
    app: Flask, clinic: Clinic
) -> None:
    """A colleague's change read the request (and its patient) before a correction of the
    address was committed, then waited for the request's lock (``lock_request``): what it
    writes once it has the lock goes to the corrected address, not the one it read first.
    The lock's re-read (``populate_existing``) reaches the patient loaded after it too."""
    from sqlalchemy import update

    from booking.requests.models import Patient
    from booking.requests.queries import lock_request

    request_id, _reference, _link = new_request(app)
    with app.app_context():
        consultation = db.session.get(ConsultationRequest, request_id)
        assert consultation.patient.email == OLD  # read before the correction
        # The correction, committed meanwhile (written past this session's copy).
        db.session.execute(
            update(Patient).where(Patient.id == consultation.patient_id).values(email=NEW),
            execution_options={"synchronize_session": False},
        )
        assert consultation.patient.email == OLD
        assert lock_request(consultation).patient.email == NEW
