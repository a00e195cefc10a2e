"""The clinic as deployed (tests/production/conftest.py: nginx with deploy/nginx/spineconsult.conf
and a certificate made for the run, gunicorn with the production settings, the worker, a real
SMTP server), used in Chromium through HTTPS by a patient, a coordinator and an administrator.

Every page the browser loads must keep referrers within the site and carry HSTS, and every
form it posts must be accepted (``visiting``): under ``Referrer-Policy: no-referrer`` Chromium
sends ``Origin: null`` with each form, which the app has to refuse, so no form would work.

Controls are found the way a screen-reader user finds them: fields by their label, choices by
their group's legend, buttons and links by their name.
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import ssl
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pyotp
import pytest
from babel.dates import format_date
from playwright.sync_api import Browser, expect
from sqlalchemy import func, select

from booking.audit.models import AuditEvent
from booking.cli import demo_pdf
from booking.extensions import db
from booking.requests import triage
from booking.requests.drafts import DraftDocument
from booking.timeutil import DAY
from config import ProductionConfig
from tests.e2e.conftest import CLINIC_EMAIL, IMAGING_REVIEW, text_of, wait_for_email
from tests.e2e.pages import (
    DATES_LOCALE,
    PATIENT_EMAIL,
    answer_followup_improved,
    documents_added,
    fill_about_you,
    fill_history,
    fill_steps_to_review,
    fill_symptoms,
    pick_first_time,
    rate_function,
    save_and_continue,
    send_from_review,
    shown_reference,
    sign_in,
    slot_time,
)
from tests.factories import (
    appointment_started,
    confirm_at,
    first_type_open_times,
    make_request,
    staff_user,
)
from tests.production.conftest import ADMIN, COORDINATOR, HOST, Deployment, Visitor, visiting
from tests.smtp import Received
from tests.support import EICAR, QUEUE_CAPTION, pdf_bytes

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@dataclass(frozen=True)
class Sent:
    reference: str
    chosen: str  # the time the patient took, as the pages spell it
    receipt: Received  # the patient's email


def send_request(
    patient: Visitor,
    document: Path | None = None,
    *,
    red_flag: str | None = None,
    heading: str = "Your request was sent",
) -> Sent:
    """A patient's whole request from the home page: the questions about urgent symptoms
    (all "No" but ``red_flag``), the earliest time, then the steps with their answers and
    ``document`` if given (uploaded as it is chosen, by the page's script); the page after
    sending opens with ``heading``; then the email the worker delivers."""
    page, deployment = patient.page, patient.deployment
    chosen = pick_first_time(page, deployment, IMAGING_REVIEW, red_flag)
    fill_steps_to_review(page, document=document)
    patient.check()  # every step as the browser got it: would it let the last one through?
    send_from_review(page, heading)

    expect(page).to_have_url(deployment("/request/submitted"))
    reference = shown_reference(page)
    receipt = wait_for_email(
        deployment.mail, f"We received your request {reference}", deployment.worker
    )
    return Sent(reference, chosen, receipt)


def staff_sign_in(staff: Visitor, email: str, **options: Any) -> None:
    """``tests.e2e``'s sign-in, once the sign-in page as the browser got it has been checked
    (would it let the form through?)."""
    staff.page.goto(staff.deployment("/staff/login"))
    staff.check()
    sign_in(staff.page, staff.deployment, email, **options)


def links_in(received: Received, prefix: str) -> list[str]:
    """The links in an email's text that start with ``prefix`` (an address on the proxy)."""
    pattern = re.compile(rf"^{re.escape(prefix)}\S*$", re.MULTILINE)
    return pattern.findall(text_of(received))


def test_patient_sends_a_request_with_a_pdf_and_a_coordinator_confirms_it_and_reads_the_pdf(
    deployment: Deployment, browser: Browser, pdf_file: Path
) -> None:
    with visiting(deployment, browser) as patient:
        page = patient.page
        sent = send_request(patient, pdf_file)
        expect(page).to_have_title(re.compile(r"^Request sent"))
        expect(page.get_by_text("We received 1 document.")).to_be_visible()
        expect(page.get_by_text("Please seek emergency care now")).to_have_count(0)

    # The email went through the worker to the SMTP server, with links to the public address.
    assert sent.receipt.rcpt_tos == [PATIENT_EMAIL]
    assert sent.chosen in text_of(sent.receipt)
    assert links_in(sent.receipt, deployment("/manage/")), text_of(sent.receipt)
    notice = wait_for_email(deployment.mail, f"New request {sent.reference}", deployment.worker)
    assert notice.rcpt_tos == [CLINIC_EMAIL]
    [record_link] = links_in(notice, deployment(f"/staff/requests/{sent.reference}"))

    with visiting(deployment, browser) as coordinator:
        page = coordinator.page
        staff_sign_in(coordinator, COORDINATOR)
        page.goto(record_link)
        expect(page.get_by_role("heading", level=1)).to_contain_text(sent.reference)

        # The held time is filled in: confirming takes one press.
        confirm = page.get_by_role("form", name="Confirm an appointment")
        confirm.get_by_role("button", name="Confirm and email the patient").click()
        expect(
            page.get_by_role("status").filter(
                has_text="Done: an email to the patient is on its way."
            )
        ).to_be_visible()
        expect(page.get_by_text("confirmed", exact=True)).to_be_visible()

        # The document, decrypted by the app and passed through the proxy, is the patient's.
        with page.expect_download() as download:
            page.get_by_role("link", name="Download mri-report.pdf").click()
        assert download.value.suggested_filename == "mri-report.pdf"
        assert Path(download.value.path()).read_bytes() == pdf_file.read_bytes()

    confirmed = wait_for_email(
        deployment.mail, f"Your appointment is confirmed ({sent.reference})", deployment.worker
    )
    assert confirmed.rcpt_tos == [PATIENT_EMAIL]
    assert sent.chosen in text_of(confirmed)


def test_patient_moves_the_time_then_cancels_by_the_emailed_link(
    deployment: Deployment, browser: Browser
) -> None:
    with visiting(deployment, browser) as patient:
        page = patient.page
        sent = send_request(patient)
        [link] = links_in(sent.receipt, deployment("/manage/"))

        # Whatever the link's form, it opens the patient's own page.
        page.goto(link)
        expect(page.get_by_role("heading", level=1)).to_have_text(f"Your request {sent.reference}")
        appointment = page.get_by_role("region", name="Your appointment")
        expect(appointment).to_contain_text(sent.chosen)

        appointment.get_by_role("link", name="Choose another time").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Choose another time")
        # The day's last time: the first may pass the minimum notice while the test runs.
        other = page.get_by_role("radio").last
        other.check()
        moved_to = slot_time(deployment, other)
        assert moved_to != sent.chosen
        page.get_by_role("button", name="Move my appointment to this time").click()
        expect(
            page.get_by_role("status").filter(
                has_text="Your new time is saved. We have sent you a confirmation."
            )
        ).to_be_visible()
        expect(appointment).to_contain_text(moved_to)

        page.get_by_text("I want to cancel", exact=True).click()
        page.get_by_role("button", name="Cancel my request").click()
        expect(
            page.get_by_role("status").filter(
                has_text="Your request is cancelled. We have sent you a confirmation."
            )
        ).to_be_visible()
        expect(page.get_by_text("Status: cancelled")).to_be_visible()

    changed = wait_for_email(
        deployment.mail, f"The time you hold has changed ({sent.reference})", deployment.worker
    )
    assert f"When: {moved_to}" in text_of(changed)
    cancelled = wait_for_email(
        deployment.mail, f"Your request {sent.reference} is cancelled", deployment.worker
    )
    assert cancelled.rcpt_tos == [PATIENT_EMAIL]


# Urgent on its own (suspected infection, booking/requests/triage.py): the patient is told to
# contact their doctor today and may still ask for the evaluation.
FEVER = str(triage.BY_CODE["fever"].question)
URGENT_ADVICE = "Please contact your doctor today"


def test_patient_with_an_urgent_symptom_is_advised_and_the_coordinator_sees_it_first(
    deployment: Deployment, browser: Browser
) -> None:
    """A fever with the pain: the page after sending opens with the advice, and so does the
    receipt; the clinic's urgent alert goes through the worker; a coordinator finds the
    request at the top of the queue, marked urgent, with the answer on its record."""
    with visiting(deployment, browser) as patient:
        page = patient.page
        sent = send_request(patient, red_flag=FEVER, heading=URGENT_ADVICE)
        expect(page).to_have_title(re.compile(r"^Request sent"))
        advice = page.get_by_role("alert").filter(has_text=URGENT_ADVICE)
        expect(advice).to_contain_text("You can still ask us for an evaluation")
        expect(advice).to_contain_text("marked it as urgent, so our team will look at it first")
        expect(page.get_by_role("heading", name="Your request was sent")).to_be_visible()
    assert URGENT_ADVICE in text_of(sent.receipt)

    alert = wait_for_email(
        deployment.mail, f"URGENT: new request {sent.reference} with red flags", deployment.worker
    )
    assert alert.rcpt_tos == [CLINIC_EMAIL]
    assert "URGENT: the patient was told to contact their doctor today." in text_of(alert)
    [record_link] = links_in(alert, deployment(f"/staff/requests/{sent.reference}"))

    with visiting(deployment, browser) as coordinator:
        page = coordinator.page
        staff_sign_in(coordinator, COORDINATOR)
        queue = page.get_by_role("table", name=QUEUE_CAPTION)
        first = queue.get_by_role("row").filter(has=page.get_by_role("rowheader")).first
        expect(first.get_by_role("rowheader")).to_have_text(sent.reference)
        expect(first.get_by_role("cell").first).to_have_text("URGENT")
        first.get_by_role("link", name=sent.reference, exact=True).click()
        expect(page).to_have_url(record_link)
        red_flags = page.get_by_role("region", name="Red flags reported")
        expect(red_flags.get_by_role("listitem")).to_have_text([f"{FEVER} urgent"])


FOLLOWED_UP = "frank.follow@example.com"


def seen_weeks_ago(deployment: Deployment, weeks: int) -> str:
    """A request confirmed by the coordinator whose visit was ``weeks`` weeks ago (staff book
    only times to come: the appointment is then moved back, as tests.factories does); the
    patient agreed to follow-up questionnaires. Its reference."""
    with deployment.app.app_context():
        consultation = make_request(
            full_name="Frank Follow",
            email=FOLLOWED_UP,
            followup_consent=True,
            spine_region="lower_back",
        )
        kind, slots = first_type_open_times(days_ahead=3)
        slot = slots[-1]
        confirm_at(
            consultation,
            staff_user(COORDINATOR),
            kind,
            slot.starts_at,
            slot.specialist_id,
            slot.location_id,
        )
        appointment_started(consultation.reference, ago=timedelta(weeks=weeks))
        reference = consultation.reference
        db.session.remove()
    return reference


def test_staff_complete_with_a_procedure_and_the_patient_answers_the_emailed_follow_up(
    deployment: Deployment, browser: Browser
) -> None:
    """A visit ten weeks ago, completed through the browser with an injection nine weeks ago,
    then corrected to eight: the six-week questionnaire is due (two weeks ago, counted from
    the corrected date), the worker runs the job that emails it, the patient answers it
    through the proxy, and the record shows the answer against the baseline."""
    reference = seen_weeks_ago(deployment, 10)
    today = datetime.now(deployment.tz).date()
    planned, done = today - timedelta(weeks=9), today - timedelta(weeks=8)

    with visiting(deployment, browser) as coordinator:
        page = coordinator.page
        staff_sign_in(coordinator, COORDINATOR)
        page.goto(deployment(f"/staff/requests/{reference}"))
        complete = page.get_by_role("form", name="Complete the request")
        complete.get_by_label("Plan decided").select_option(label="Injection")
        complete.get_by_label("Procedure date").fill(planned.isoformat())
        complete.get_by_role("button", name="Mark completed").click()
        expect(page.get_by_text("completed", exact=True)).to_be_visible()
        followup = page.get_by_role("region", name="Follow-up after the visit")
        expect(followup).to_contain_text(format_date(planned, DAY, locale=DATES_LOCALE))

        # The injection was a week later than planned.
        followup.locator("summary").filter(has_text="Correct the procedure date").click()
        correct = followup.get_by_role("form", name="Correct the procedure date")
        correct.get_by_label("Procedure date").fill(done.isoformat())
        # Saved at once: no questionnaire has gone yet, so none is superseded or closed (a
        # correction that would is asked first).
        correct.get_by_role("button", name="Save the procedure date").click()
        expect(
            page.get_by_role("status").filter(has_text="The procedure date is corrected")
        ).to_be_visible()
        expect(followup).to_contain_text(format_date(done, DAY, locale=DATES_LOCALE))
        coordinator.check()

        # The job the worker runs every 15 minutes, run now.
        ran = deployment.run_job("send_followups")
        assert ran == "send_followups: 1 follow-up invitation(s) and 0 reminder(s) queued.\n"
        invitation = wait_for_email(
            deployment.mail,
            "How are you doing? A short questionnaire from Test Spine Clinic",
            deployment.worker,
        )
        assert invitation.rcpt_tos == [FOLLOWED_UP]
        [link] = [
            link
            for link in links_in(invitation, deployment("/follow-up/open/"))
            if not link.endswith("/stop")
        ]

        with visiting(deployment, browser) as patient:
            answer = patient.page
            answer.goto(link)
            expect(answer).to_have_url(re.compile(r"/follow-up/\d+/questionnaire$"))
            expect(answer.get_by_role("heading", level=1)).to_have_text(
                "How are you doing? (6 weeks after your procedure)"
            )
            answer_followup_improved(answer)
            patient.check()
            answer.get_by_role("button", name="Send my answers").click()
            expect(answer.get_by_role("heading", level=1)).to_have_text("Thank you")

        page.reload()
        table = followup.locator("#progress-table")
        expect(table.get_by_role("columnheader").nth(2)).to_contain_text("answered")
        odi = table.get_by_role("row").filter(
            has=page.get_by_role("rowheader", name="Oswestry Disability Index")
        )
        expect(odi).to_contain_text("50")
        expect(odi).to_contain_text("improved")


def test_admin_enrols_two_factor_sign_in_then_signs_in_with_a_code(
    deployment: Deployment, browser: Browser
) -> None:
    with visiting(deployment, browser) as admin:
        page = admin.page
        # Production requires it of administrators: the first sign-in leads to enrolment.
        staff_sign_in(admin, ADMIN, landing="Set up two-factor sign-in")
        expect(
            page.get_by_role("img", name=re.compile(r"^QR code for your authenticator app"))
        ).to_be_visible()
        key = page.locator("code").inner_text().strip()
        page.get_by_label("Code", exact=True).fill(pyotp.TOTP(key).now())
        page.get_by_role("button", name="Turn on two-factor sign-in").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Two-factor sign-in is on")
        expect(page.locator("#recovery-codes").get_by_role("listitem")).to_have_count(10)
        page.get_by_role("link", name="Continue").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Triage queue")

        page.get_by_role("button", name="Sign out").click()
        staff_sign_in(admin, ADMIN, totp_secret=key)
        # Signed in through TLS the browser did not trust: the cookies are still Secure ones.
        cookies = page.context.cookies()
        assert cookies and all(cookie["secure"] for cookie in cookies), cookies
        # The session cookie under production's name (``__Host-``, which Chromium keeps only
        # as Secure, Path=/ and for this host alone): the sign-in above went through with it.
        name = ProductionConfig.SESSION_COOKIE_NAME
        assert name.startswith("__Host-")
        [session] = [cookie for cookie in cookies if cookie["name"] == name]
        assert session["path"] == "/" and not session["domain"].startswith("."), session


# --- the proxy itself, without a browser ---------------------------------------------------


def test_the_proxy_redirects_http_refuses_other_names_and_passes_request_ids_and_uploads(
    deployment: Deployment,
) -> None:
    # Plain HTTP only redirects, to the same path on the public HTTPS address.
    plain = http.client.HTTPConnection(HOST, deployment.http_port, timeout=30)
    try:
        plain.request("GET", "/request?type=1")
        answer = plain.getresponse()
        assert answer.status == 301
        assert answer.getheader("Location") == deployment("/request?type=1")
    finally:
        plain.close()

    tls = deployment.tls_context()  # trusts exactly the certificate made for this run
    secure = http.client.HTTPSConnection(HOST, deployment.https_port, timeout=30, context=tls)
    try:
        secure.request("GET", "/")
        answer = secure.getresponse()
        answer.read()
        assert answer.status == 200
        assert "max-age=" in (answer.getheader("Strict-Transport-Security") or "")
        request_id = answer.getheader("X-Request-ID") or ""
        # nginx's $request_id (32 hex digits), adopted by the app and echoed back.
        assert re.fullmatch(r"[0-9a-f]{32}", request_id), request_id

        # The probes' endpoints are not public.
        secure.request("GET", "/health/ready")
        answer = secure.getresponse()
        answer.read()
        assert answer.status == 404

        # A document over nginx's default limit (1 MB) reaches the app instead of being cut
        # off with 413: the app answers (this browser has no request started, so it is sent
        # to the first step).
        boundary = "spineconsult-test-boundary"
        body = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; '
            f'filename="scan.pdf"\r\nContent-Type: application/pdf\r\n\r\n'.encode()
            + demo_pdf("A large scan", size=3 * 1024 * 1024)
            + f"\r\n--{boundary}--\r\n".encode()
        )
        secure.request(
            "POST",
            "/request/steps/documents",
            body=body,
            headers={
                "Content-Type": f"multipart/form-data; boundary={boundary}",
                "Origin": deployment.url,
            },
        )
        answer = secure.getresponse()
        answer.read()
        assert answer.status == 302, answer.status
        assert answer.getheader("Location", "").endswith("/request/start")
        assert answer.getheader("Content-Security-Policy")
    finally:
        secure.close()

    # One request id in both logs: the proxy's and the app server's. The proxy's has no
    # paths, so none of the private links the journeys above opened.
    proxy_log = deployment.proxy_access_log.read_text()
    assert f"req={request_id}" in proxy_log
    assert "/manage" not in proxy_log and "/request" not in proxy_log
    assert f"req={request_id}" in deployment.service("gunicorn").output()

    # Another host name gets no answer at all.
    assert closed_without_answer(deployment, tls, b"attacker.example")
    assert not closed_without_answer(deployment, tls, f"{HOST}:{deployment.https_port}".encode())


def test_a_request_over_the_proxys_limit_gets_the_apps_own_page(deployment: Deployment) -> None:
    """Over client_max_body_size (210 MB) nginx refuses the request before the app sees it:
    the patient gets the app's page (translated, with the app's headers) or, for the upload
    script, its JSON message, not nginx's bare "413 Request Entity Too Large"."""

    def refused(accept: str, language: str) -> tuple[http.client.HTTPResponse, str]:
        secure = http.client.HTTPSConnection(
            HOST, deployment.https_port, timeout=30, context=deployment.tls_context()
        )
        # Only the headers: nginx answers as soon as it reads the announced length.
        secure.putrequest("POST", "/request/steps/documents")
        secure.putheader("Content-Type", "multipart/form-data; boundary=x")
        secure.putheader("Content-Length", str(250 * 1024 * 1024))
        secure.putheader("Accept", accept)
        secure.putheader("Accept-Language", language)
        secure.putheader("Origin", deployment.url)
        secure.endheaders()
        answer = secure.getresponse()
        body = answer.read().decode()
        secure.close()
        return answer, body

    page, body = refused("text/html", "es")
    assert page.status == 413
    assert "Sus documentos son demasiado grandes" in body, body[:500]
    assert "nginx" not in body
    assert page.getheader("Content-Security-Policy")
    assert re.fullmatch(r"[0-9a-f]{32}", page.getheader("X-Request-ID") or "")

    script, body = refused("application/json", "en")
    assert script.status == 413
    assert json.loads(body)["message"].startswith("Together, the files you attached are larger")


def closed_without_answer(deployment: Deployment, tls: ssl.SSLContext, host: bytes) -> bool:
    """Whether the proxy closes the connection on a request for ``host`` without a byte of
    HTTP (nginx's ``return 444``)."""
    with (
        socket.create_connection((HOST, deployment.https_port), timeout=30) as raw,
        tls.wrap_socket(raw, server_hostname=HOST) as stream,
    ):
        stream.sendall(
            b"GET /robots.txt HTTP/1.1\r\nHost: " + host + b"\r\nConnection: close\r\n\r\n"
        )
        try:
            return stream.recv(1) == b""
        except (ConnectionResetError, ssl.SSLEOFError):
            return True


def test_a_file_carrying_a_virus_is_refused_through_the_real_form_with_nothing_kept(
    deployment: Deployment, browser: Browser, tmp_path: Path
) -> None:
    """Production requires scanning: the EICAR test string inside a real PDF, chosen on the
    documents step through the proxy, is refused by the real clamd with a plain message, and
    no document row nor audit of a stored file is left."""
    infected = tmp_path / "scan.pdf"
    infected.write_bytes(pdf_bytes().replace(b"%%EOF", b"%" + EICAR + b"\n%%EOF"))
    with visiting(deployment, browser) as patient:
        page = patient.page
        pick_first_time(page, deployment, IMAGING_REVIEW)
        save_and_continue(page, "about")
        fill_about_you(page)
        save_and_continue(page, "symptoms")
        fill_symptoms(page)
        save_and_continue(page, "function")
        rate_function(page)
        save_and_continue(page, "history")
        fill_history(page)
        save_and_continue(page, "documents")
        page.wait_for_load_state("load")
        page.get_by_label("Choose one or more files").set_input_files(infected)
        add = page.get_by_role("button", name="Add these files")
        if add.is_visible():
            add.click()
        expect(page.get_by_text("This file contains a virus or other malware")).to_be_visible()
        expect(documents_added(page)).to_have_count(0)

    with deployment.app.app_context():
        assert db.session.scalar(select(func.count()).select_from(DraftDocument)) == 0
        [event] = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "upload_refused_infected")
        ).all()
        assert event.details["signature"].startswith("SpineConsult.Test.EICAR")
