"""A patient's own data-protection rights on their private link (withdraw contact consent,
download a copy of their data behind their date of birth, ask for erasure) and the admin's
queue of erasure requests with its one-month deadline."""

from __future__ import annotations

import io
import json
import re
import zipfile
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from booking.audit.models import AuditEvent
from booking.extensions import db
from booking.notifications.models import OutboxEmail
from booking.requests.models import ConsultationRequest, RequestStatus
from booking.rights.models import ErasureRequest, ErasureStatus
from booking.scheduling.models import WaitlistEntry
from booking.scheduling.services import SlotChoice
from booking.timeutil import clinic_today, from_clinic_local
from tests.factories import (
    make_appointment_type,
    make_hours,
    make_location,
    make_request,
    make_staff,
)
from tests.support import AuthActions, first_open_slot, open_manage_link, table_boxes

BERLIN = ZoneInfo("Europe/Berlin")
CSRF = re.compile(r'csrf_token" type="hidden" value="([^"]+)"')
BORN = "1970-05-17"  # the factory's date of birth


@pytest.fixture
def patient(app: Flask, client: FlaskClient) -> dict[str, Any]:
    """A request with a held time and a document; ``client`` has opened its private link."""
    with app.app_context():
        specialist = make_staff("specialist", "weber@example.com", full_name="Dr. Weber")
        location = make_location()
        appointment_type = make_appointment_type()
        make_hours(specialist, location, range(7), "09:00", "17:00")
        slot = first_open_slot(appointment_type)
        consultation = make_request(
            documents=1,
            medications="Pregabalin 75 mg",
            slot=SlotChoice(
                appointment_type.id, slot.specialist_id, slot.location_id, slot.starts_at
            ),
        )
        return {"reference": consultation.reference, "url": open_manage_link(client, consultation)}


def _token(client: FlaskClient, url: str) -> str:
    return CSRF.search(client.get(url).get_data(as_text=True)).group(1)


def _post(client: FlaskClient, url: str, action: str, **fields: str):
    prefix = {"consent": "consent", "data": "data", "erasure": "erase"}[action]
    data = {f"{prefix}-csrf_token": _token(client, url)}
    data.update({f"{prefix}-{name}": value for name, value in fields.items()})
    return client.post(f"{url}/{action}", data=data)


def _admin(app: Flask, auth: AuthActions) -> FlaskClient:
    """Another browser, signed in as an administrator."""
    with app.app_context():
        make_staff("admin", "admin@example.com")
    return auth.new_client("admin")


def _audit(app: Flask, action: str) -> list[AuditEvent]:
    with app.app_context():
        return list(db.session.scalars(select(AuditEvent).where(AuditEvent.action == action)))


def _emails(app: Flask, template: str) -> list[OutboxEmail]:
    with app.app_context():
        return list(db.session.scalars(select(OutboxEmail).where(OutboxEmail.template == template)))


def test_each_heading_of_your_data_stands_apart_from_the_one_before(
    client: FlaskClient, patient: dict
) -> None:
    """The sub-headings of "Your data" follow closed disclosures (a summary line, no margin
    below): each has a margin of its own, or "A copy of your data" sat against "I no longer
    want to be contacted" above it."""
    page = client.get(patient["url"]).get_data(as_text=True)
    section = page.split('id="your-data"', 1)[1].split("</section>", 1)[0]
    headings = re.findall(r'<h3 class="([^"]*)">([^<]+)</h3>', section)
    assert [name for _classes, name in headings] == [
        "Contact from the clinic",
        "A copy of your data",
        "Erasing your data",
    ]
    assert all("mt-3" in classes.split() for classes, _name in headings), headings


def test_withdrawing_contact_consent_keeps_the_request_and_stops_offers(
    app: Flask, client: FlaskClient, patient: dict
) -> None:
    url = patient["url"]
    assert _post(client, url, "consent").status_code == 422  # the box must be ticked
    with app.app_context():
        consultation = db.session.scalars(select(ConsultationRequest)).one()
        db.session.add(
            WaitlistEntry(
                request_id=consultation.id,
                appointment_type_id=consultation.appointment.appointment_type_id,
                active=True,
            )
        )
        db.session.commit()

    response = _post(client, url, "consent", confirm="y")
    assert response.status_code == 302
    page = client.get(url).get_data(as_text=True)
    assert "You withdrew your consent to be contacted" in page
    with app.app_context():
        consultation = db.session.scalars(select(ConsultationRequest)).one()
        assert consultation.contact_consent is False
        assert consultation.contact_consent_withdrawn_at is not None
        assert consultation.status == RequestStatus.REQUESTED  # the request stays
        assert db.session.scalars(select(WaitlistEntry.active)).one() is False
    [row] = _audit(app, "contact_consent_withdrawn")
    assert (row.actor_email, row.target_id) == ("patient", patient["reference"])
    [email] = _emails(app, "rights_update")
    assert "no longer contact you" in email.body_text
    assert "/manage/open/" in email.body_text
    assert "Pregabalin" not in email.body_text


def test_no_rights_email_goes_to_a_patient_marked_deceased(app: Flask) -> None:
    """Nothing more goes to the address of a patient marked deceased (the family may read
    it): a change of their rights made since (a consent withdrawn, a download) is not
    emailed either."""
    from booking.outcomes.services import mark_deceased
    from booking.rights.emails import RightsEvent, rights_notice
    from booking.rights.services import withdraw_contact_consent

    with app.app_context():
        consultation = make_request()
        mark_deceased(consultation, make_staff("admin", "admin@example.com"))
        assert withdraw_contact_consent(consultation)
        assert rights_notice(consultation, RightsEvent.DATA_DOWNLOADED) is None
        db.session.commit()
    assert _emails(app, "rights_update") == []


def test_no_reminder_goes_to_a_patient_who_withdrew_consent(
    app: Flask, client: FlaskClient, patient: dict
) -> None:
    from booking.requests.reminders import send_due_reminders

    with app.app_context():
        consultation = db.session.scalars(select(ConsultationRequest)).one()
        consultation.status = RequestStatus.CONFIRMED
        db.session.commit()
    _post(client, patient["url"], "consent", confirm="y")
    with app.app_context():
        starts = db.session.scalars(select(ConsultationRequest)).one().appointment.starts_at
        assert send_due_reminders(now=starts - timedelta(hours=1)) == []
        # The same appointment of a patient who did not withdraw is reminded.
        consultation = db.session.scalars(select(ConsultationRequest)).one()
        consultation.contact_consent = True
        db.session.commit()
        assert len(send_due_reminders(now=starts - timedelta(hours=1))) == 1


def test_a_patient_downloads_their_own_data_with_their_date_of_birth(
    app: Flask, client: FlaskClient, patient: dict
) -> None:
    url = patient["url"]
    with app.app_context():
        # Someone else's request with the same address (a parent's, for a child): not theirs.
        other = make_request(full_name="Kind Mustermann", date_of_birth=date(2015, 3, 1))
        other_reference = other.reference

    wrong = _post(client, url, "data", date_of_birth="1971-05-17")
    assert wrong.status_code == 422
    page = wrong.get_data(as_text=True)
    assert "does not match the one in your request" in page
    # The page opens at the top; the message is far down: the top says where it is.
    top = page.index('class="alert alert-danger" role="alert"')
    assert top < page.index('id="time-heading"')
    link = '<a class="alert-link" href="#your-data">Your data</a>'
    assert f"see the message under {link}" in page[top : top + 400]
    [refused] = _audit(app, "patient_export_refused")
    assert refused.target_id == patient["reference"]
    assert "1971" not in json.dumps(refused.details)
    assert _audit(app, "patient_exported") == []

    response = _post(client, url, "data", date_of_birth=BORN)
    assert response.status_code == 200
    assert response.mimetype == "application/zip"
    assert "no-store" in response.headers["Cache-Control"]
    archive = zipfile.ZipFile(io.BytesIO(response.get_data()))
    data = json.loads(archive.read("patient.json"))
    assert [r["reference"] for r in data["requests"]] == [patient["reference"]]
    assert other_reference not in json.dumps(data)
    assert data["requests"][0]["medical_history"]["medications"] == "Pregabalin 75 mg"
    # How the outbox went about delivering an email is its bookkeeping, not the patient's data.
    emails = data["requests"][0]["emails"]
    assert emails
    internal = {"attempts", "unfinished_claims", "claimed_at", "next_attempt_at", "last_error"}
    assert all(not internal & email.keys() for email in emails)
    assert any(name.startswith("documents/") for name in archive.namelist())
    [exported] = _audit(app, "patient_exported")
    assert exported.actor_email == "patient"
    assert exported.details["references"] == [patient["reference"]]
    assert "A copy of your data" in _emails(app, "rights_update")[0].body_text


@pytest.mark.parametrize("documents", [0, 1])
def test_the_summary_mentions_the_documents_folder_only_when_there_is_one(
    app: Flask, client: FlaskClient, documents: int
) -> None:
    """A patient who sent no document read that "the documents are in the documents folder"
    of a ZIP that has none."""
    with app.app_context():
        consultation = make_request(documents=documents)
        url = open_manage_link(client, consultation)
    response = _post(client, url, "data", date_of_birth=BORN)
    archive = zipfile.ZipFile(io.BytesIO(response.get_data()))
    folder = any(name.startswith("documents/") for name in archive.namelist())
    summary = archive.read("summary.txt").decode()
    assert folder == bool(documents)
    assert ("documents folder" in summary) == folder
    assert "The same data, complete and machine-readable, is in patient.json" in summary


def test_the_readable_summary_lists_calls_as_text(
    app: Flask, client: FlaskClient, patient: dict
) -> None:
    """summary.txt is for a person: a call is "called at: ..., outcome: ...", not a
    Python dict printed as it is."""
    from booking.dashboard.services import log_callback
    from booking.requests.calls import CallOutcome

    with app.app_context():
        consultation = db.session.scalars(
            select(ConsultationRequest).where(ConsultationRequest.reference == patient["reference"])
        ).one()
        log_callback(consultation, make_staff("coordinator", "c@example.com"), CallOutcome.REACHED)
    response = _post(client, patient["url"], "data", date_of_birth=BORN)
    summary = zipfile.ZipFile(io.BytesIO(response.get_data())).read("summary.txt").decode()
    [calls] = [line for line in summary.splitlines() if line.startswith("Calls from the clinic")]
    assert "Outcome: Reached and advised" in calls and "Called: " in calls
    assert "{" not in calls and "'" not in calls


def test_the_summary_says_how_the_clinic_first_reached_the_patient(
    app: Flask, client: FlaskClient, patient: dict
) -> None:
    """A reaching call and a completed visit both set when the patient was first reached:
    the summary said "Reached by phone by the clinic" for both. It says how."""
    from booking.dashboard.services import log_callback
    from booking.requests.calls import CallOutcome

    def summary() -> str:
        response = _post(client, patient["url"], "data", date_of_birth=BORN)
        return zipfile.ZipFile(io.BytesIO(response.get_data())).read("summary.txt").decode()

    def line(text: str, label: str) -> str:
        [found] = [row for row in text.splitlines() if row.startswith(f"{label}: ")]
        return found

    text = summary()
    assert "by phone" not in text.lower()
    assert line(text, "How the clinic first reached you").endswith(": \u2013")

    with app.app_context():
        consultation = db.session.scalars(
            select(ConsultationRequest).where(ConsultationRequest.reference == patient["reference"])
        ).one()
        log_callback(consultation, make_staff("coordinator", "c@example.com"), CallOutcome.REACHED)
    text = summary()
    assert line(text, "First reached by the clinic") != "First reached by the clinic: \u2013"
    assert line(text, "How the clinic first reached you").endswith(": By phone")
    reached = line(text, "First reached by the clinic")

    # Staff then raised the triage level (new symptoms): the patient is to be reached again,
    # but the first reach stays what it was, and the urgency reads as raised, not as the
    # answers' own.
    from booking.dashboard.services import raise_triage
    from booking.requests.models import TriageLevel

    with app.app_context():
        consultation = db.session.scalars(
            select(ConsultationRequest).where(ConsultationRequest.reference == patient["reference"])
        ).one()
        raise_triage(
            consultation, make_staff("coordinator", "r@example.com"), TriageLevel.URGENT, "Numb."
        )
    text = summary()
    assert line(text, "First reached by the clinic") == reached
    assert line(text, "How the clinic first reached you").endswith(": By phone")
    assert line(text, "Urgency") == "Urgency: URGENT"
    assert line(text, "Urgency raised by the clinic") != "Urgency raised by the clinic: \u2013"
    with app.app_context():
        consultation = db.session.scalars(
            select(ConsultationRequest).where(ConsultationRequest.reference == patient["reference"])
        ).one()
        consultation.triage_raised_at = None
        consultation.triage_level = TriageLevel.ROUTINE
        consultation.priority = 0
        db.session.commit()

    # As completing the visit of a patient nobody reached by phone records it: reached at
    # the appointment's start, by its specialist, and no call.
    with app.app_context():
        consultation = db.session.scalars(
            select(ConsultationRequest).where(ConsultationRequest.reference == patient["reference"])
        ).one()
        for call in consultation.calls:
            db.session.delete(call)
        consultation.acknowledged_at = consultation.appointment.starts_at
        consultation.acknowledged_by_id = consultation.appointment.specialist_id
        db.session.commit()
    text = summary()
    assert "by phone" not in text.lower()
    assert line(text, "How the clinic first reached you").endswith(": At the visit")
    assert line(text, "Reached by") == "Reached by: Dr. Weber"


def test_a_request_sent_with_someone_elses_address_and_birth_date_exports_only_itself(
    app: Flask, patient: dict
) -> None:
    """Nobody checks an email address before a request is sent: whoever knows a patient's
    address and date of birth can send a request with them and open its private link (the
    confirmation page shows it). Its download holds that request alone: not the patient's
    records, nor emails to the address that belong to no request (a "finish later" link),
    and no email in it carries a link that opens anything."""
    intruder = app.test_client()
    with app.app_context():
        own = db.session.scalars(
            select(ConsultationRequest).where(ConsultationRequest.reference == patient["reference"])
        ).one()
        address = own.patient.email
        db.session.add(
            OutboxEmail(
                template="draft_resume",
                recipient=address,
                subject="Finish your request",
                body_text="Go on here: https://clinic.example/request/resume/R3sumeT0ken",
                body_html='<a href="https://clinic.example/request/resume/R3sumeT0ken">Go on</a>',
                message_id="<resume@example.com>",
            )
        )
        db.session.commit()
        forged = make_request(full_name="Someone Else", email=address.upper())
        url = open_manage_link(intruder, forged)
        forged_reference = forged.reference

    response = _post(intruder, url, "data", date_of_birth=BORN)
    assert response.status_code == 200
    archive = zipfile.ZipFile(io.BytesIO(response.get_data()))
    data = json.loads(archive.read("patient.json"))
    assert [r["reference"] for r in data["requests"]] == [forged_reference]
    assert data["other_emails"] == []
    everything = json.dumps(data) + archive.read("summary.txt").decode()
    assert patient["reference"] not in everything and "Pregabalin" not in everything
    assert "R3sumeT0ken" not in everything
    assert not [name for name in archive.namelist() if patient["reference"] in name]
    bodies = [e["body_text"] + e["body_html"] for e in data["requests"][0]["emails"]]
    assert any("/manage/open/[redacted]" in body for body in bodies)
    assert not re.search(r"/manage/open/(?!\[redacted\])", "".join(bodies))


def test_guessing_the_date_of_birth_is_rate_limited(
    app: Flask, client: FlaskClient, patient: dict
) -> None:
    app.config["PATIENT_EXPORT_RATE_LIMIT"] = "2 per hour"
    statuses = [
        _post(client, patient["url"], "data", date_of_birth=f"19{n}0-01-01").status_code
        for n in range(3, 6)
    ]
    assert statuses == [422, 422, 429]
    assert len(_audit(app, "patient_export_refused")) == 2
    page = _post(client, patient["url"], "data", date_of_birth="1950-01-01")
    assert "please wait an hour, then open your private link again" in page.get_data(as_text=True)


def test_the_day_caps_the_guesses_at_the_date_of_birth_past_the_hours_limit(
    app: Flask, client: FlaskClient, patient: dict
) -> None:
    """Five tries an hour alone would let a year of dates (about 365) be tried in three
    days: by default a day's cap holds them too, and its page says to come back tomorrow,
    not in an hour."""
    from limits import parse_many

    from config import Config

    windows = [item.get_expiry() for item in parse_many(Config.PATIENT_EXPORT_RATE_LIMIT)]
    assert windows == [3600, 86400]
    app.config["PATIENT_EXPORT_RATE_LIMIT"] = "50 per hour; 3 per day"
    statuses = [
        _post(client, patient["url"], "data", date_of_birth=f"19{n}0-01-01").status_code
        for n in range(3, 7)
    ]
    assert statuses == [422, 422, 422, 429]
    text = " ".join(
        _post(client, patient["url"], "data", date_of_birth="1950-01-01")
        .get_data(as_text=True)
        .split()
    )
    assert "please open your private link again tomorrow" in text
    assert "please wait an hour" not in text


def test_strangers_posts_do_not_use_up_the_patients_downloads(
    app: Flask, client: FlaskClient, patient: dict
) -> None:
    """The reference is in emails' subjects and read out on the phone: posts without the
    request's cookie are refused and not counted, so nobody can block the patient's copy."""
    app.config["PATIENT_EXPORT_RATE_LIMIT"] = "2 per hour"
    stranger = app.test_client()
    token = CSRF.search(stranger.get("/staff/login").get_data(as_text=True)).group(1)
    for _n in range(3):
        refused = stranger.post(
            f"{patient['url']}/data",
            data={"data-csrf_token": token, "data-date_of_birth": "1980-01-01"},
        )
        assert refused.status_code == 403
    assert _post(client, patient["url"], "data", date_of_birth="1930-01-01").status_code == 422


def test_an_erasure_request_reaches_the_admins_queue_with_its_deadline(
    app: Flask, client: FlaskClient, patient: dict, auth: AuthActions
) -> None:
    url = patient["url"]
    assert _post(client, url, "erasure", confirm="y").status_code == 302
    assert _post(client, url, "erasure", confirm="y").status_code == 302  # asked twice: one
    page = client.get(url).get_data(as_text=True)
    assert "You asked us to erase your data" in page
    # The held time stays booked until cancelled: the page and the receipt say so.
    still_open = "Your request is still open, so your appointment stays booked until it is"
    assert still_open in page
    with app.app_context():
        [erasure] = db.session.scalars(select(ErasureRequest)).all()
        due = erasure.due_at
    # One month: the same date next month, to the end of that day (clinic time).
    asked_on = erasure.requested_at.astimezone(BERLIN).date()
    due_on = due.astimezone(BERLIN).date()
    assert (due_on.month - asked_on.month) % 12 == 1 and due_on.day <= asked_on.day
    assert len(_audit(app, "erasure_requested")) == 1
    receipt = _emails(app, "rights_update")[0]
    assert "within one month" in receipt.body_text
    assert still_open in receipt.body_text and still_open in receipt.body_html
    # The clinic hears of it, with the deadline (no administrator yet: its usual address).
    [alert] = _emails(app, "erasure_staff")
    assert alert.recipient == app.config["STAFF_NOTIFICATION_EMAIL"]
    assert patient["reference"] in alert.subject
    assert "/staff/admin/privacy/erasures" in alert.body_text
    assert f"by {due.astimezone(BERLIN):%-d %b %Y}." in alert.body_text
    assert "@" not in alert.body_text.replace(alert.recipient, "")  # no patient details

    admin = _admin(app, auth)
    queue = admin.get("/staff/admin/privacy/erasures")
    assert queue.status_code == 200
    text = queue.get_data(as_text=True)
    assert patient["reference"] in text
    assert "Still open" in text  # the request must be closed before an erasure
    assert str(due.year) in text
    # It scrolls in a box a keyboard reaches without scripts too.
    assert table_boxes(text) == [("Waiting erasure requests, the oldest first",) * 2]


def test_an_erasure_request_is_sent_to_each_active_administrator(
    app: Flask, client: FlaskClient, patient: dict
) -> None:
    with app.app_context():
        make_staff("admin", "admin@example.com")
        make_staff("admin", "second.admin@example.com")
        make_staff("admin", "former.admin@example.com").active = False
        db.session.commit()
        make_staff("coordinator", "coord@example.com")
    assert _post(client, patient["url"], "erasure", confirm="y").status_code == 302
    alerts = _emails(app, "erasure_staff")
    assert sorted(e.recipient for e in alerts) == ["admin@example.com", "second.admin@example.com"]


def _answer_erasure(
    app: Flask, client: FlaskClient, patient: dict, auth: AuthActions, explanation: str
) -> tuple[int, Any]:
    """The patient asks to be erased; an admin answers with ``explanation`` (the form of
    that one erasure request). Returns the request's id and the admin's response."""
    _post(client, patient["url"], "erasure", confirm="y")
    with app.app_context():
        erasure_id = db.session.scalars(select(ErasureRequest.id)).one()
    admin = _admin(app, auth)
    page = f"/staff/admin/privacy/{patient['reference']}"
    token = CSRF.search(admin.get(page).get_data(as_text=True)).group(1)
    response = admin.post(
        f"/staff/admin/privacy/erasures/{erasure_id}/close",
        data={
            f"close-{erasure_id}-csrf_token": token,
            f"close-{erasure_id}-explanation": explanation,
        },
    )
    return erasure_id, response


def test_an_empty_answer_to_an_erasure_request_is_pointed_out(
    app: Flask, client: FlaskClient, patient: dict, auth: AuthActions
) -> None:
    """Each erasure's answer has fields of its own (a patient may have asked twice, from two
    requests); one sent empty comes back with a summary and an "Error:" title."""
    erasure_id, response = _answer_erasure(app, client, patient, auth, "")
    assert response.status_code == 422
    text = response.get_data(as_text=True)
    assert "<title>Error: " in text and 'id="error-summary"' in text
    assert f'id="close-{erasure_id}-explanation"' in text
    assert f'close-{erasure_id}-explanation-error" aria-invalid="true"' in text


def test_an_admin_closes_an_erasure_request_with_an_explanation(
    app: Flask, client: FlaskClient, patient: dict, auth: AuthActions
) -> None:
    erasure_id, response = _answer_erasure(
        app, client, patient, auth, "Records must be kept 10 years."
    )
    assert response.status_code == 302
    with app.app_context():
        erasure = db.session.get(ErasureRequest, erasure_id)
        assert erasure.status == ErasureStatus.CLOSED
        assert erasure.explanation == "Records must be kept 10 years."
        raw = db.session.execute(
            select(ErasureRequest.__table__.c.explanation.cast(db.String))
        ).scalar_one()
    [row] = _audit(app, "erasure_closed")
    assert "10 years" not in json.dumps(row.details)
    answer = [e for e in _emails(app, "rights_update") if "has answered" in e.body_text]
    assert answer and "Records must be kept 10 years." in answer[0].body_text
    # The clinic's answer is not something the patient did: no "if this was not you".
    assert "If this was not you" not in answer[0].body_text
    received = [e for e in _emails(app, "rights_update") if "We have received" in e.body_text]
    assert "If this was not you, please call us." in received[0].body_text
    assert raw.startswith("v1:") and "10 years" not in raw  # encrypted at rest


def test_erasing_the_patient_answers_their_erasure_request(
    app: Flask, client: FlaskClient, patient: dict
) -> None:
    from booking.privacy.services import erase_patient

    _post(client, patient["url"], "erasure", confirm="y")
    with app.app_context():
        consultation = db.session.scalars(select(ConsultationRequest)).one()
        consultation.status = RequestStatus.CANCELLED
        db.session.commit()
        admin = make_staff("admin", "boss@example.com")
        erase_patient(patient["reference"], patient["reference"], admin)
        erasure = db.session.scalars(select(ErasureRequest)).one()
        assert (erasure.status, erasure.request_id) == (ErasureStatus.ERASED, None)
        assert erasure.reference == patient["reference"]
        assert erasure.closed_by_id == admin.id


def test_a_spanish_patients_copy_of_their_data_reads_in_spanish(
    app: Flask, client: FlaskClient
) -> None:
    """summary.txt is for the patient: in their language, whoever downloads it (it was
    rendered outside any request, so in the clinic's)."""
    with app.app_context():
        consultation = make_request(locale="es", smoking="never")
        reference = consultation.reference
        make_staff("admin", "privacy.admin@example.com")
    admin = AuthActions(client).new_client(email="privacy.admin@example.com")
    page = admin.get(f"/staff/admin/privacy/{reference}").get_data(as_text=True)
    token = re.search(r'csrf_token"[^>]*value="([^"]+)"', page).group(1)
    response = admin.post(f"/staff/admin/privacy/{reference}/export", data={"csrf_token": token})
    assert response.status_code == 200
    summary = zipfile.ZipFile(io.BytesIO(response.get_data())).read("summary.txt").decode()
    assert "todo lo que guardamos sobre un paciente" in summary
    assert "Antecedentes de salud" in summary and "everything we hold" not in summary
    # Each field by its name in Spanish, each code as the patient read it.
    assert "Referencia: " + reference in summary and "Estado: " in summary
    assert "Tabaco: " in summary and "Smoking" not in summary


ISO_MOMENT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d")


@pytest.mark.parametrize(
    ("locale", "starts", "zone", "labels"),
    [
        (
            "en",
            "Starts: ",
            "Germany (Berlin) Time",
            [
                " -> Appointment confirmed (",
                " Call-back (",
                " Note (",
                " The clinic: ",
                " You: ",
                "(Waiting to be sent)",
            ],
        ),
        (
            "es",
            "Empieza: ",
            "hora de Alemania (Berlín)",
            [" -> Cita confirmada (", " Llamada de vuelta (", " La clínica: ", " Usted: "],
        ),
    ],
)
def test_the_readable_summary_shows_clinic_times_and_no_codes(
    app: Flask, client: FlaskClient, locale: str, starts: str, zone: str, labels: list[str]
) -> None:
    """summary.txt is for a person: each time as the pages show it, the clinic's in the
    patient's language (09:00 clinic time, not the UTC stored), its zone
    named once at the top; each kind and status by its label ("call", "pending" are codes).
    patient.json keeps ISO 8601 in UTC and the codes, for programs.

    The visit is a week ahead ("Starts: Thu 14 Jan 2027, 09:00" in English, "Empieza: jue
    14 ene 2027, 09:00" in Spanish), not on a fixed day: a patient books only within the
    booking horizon, and a day fixed in January was out of it most of the year."""
    from babel.dates import format_date

    from booking.dashboard.services import Slot, add_note, confirm_request, log_callback
    from booking.messages.services import send_patient_message, send_staff_message
    from booking.requests.calls import CallOutcome

    with app.app_context():
        specialist = make_staff("specialist", "weber@example.com", full_name="Dr. Weber")
        location = make_location()
        appointment_type = make_appointment_type()
        make_hours(specialist, location, range(7), "09:00", "17:00")
        day = clinic_today() + timedelta(days=7)
        at = from_clinic_local(day, time(9, 0))
        consultation = make_request(
            locale=locale,
            documents=1,
            slot=SlotChoice(appointment_type.id, specialist.id, location.id, at),
        )
        coordinator = make_staff("coordinator", "c@example.com")
        slot = Slot(appointment_type, specialist, location, day, time(9, 0))
        confirm_request(consultation, coordinator, slot)
        log_callback(consultation, coordinator, CallOutcome.REACHED)
        add_note(consultation, coordinator, "Spoke about the scan.")
        send_staff_message(consultation, coordinator, "Please bring the scan.")
        send_patient_message(consultation, "I will.")
        url = open_manage_link(client, consultation)
    response = _post(client, url, "data", date_of_birth=BORN)
    archive = zipfile.ZipFile(io.BytesIO(response.get_data()))
    summary = archive.read("summary.txt").decode()
    assert f"{starts}{format_date(day, 'EEE d MMM y', locale=locale)}, 09:00\n" in summary
    header, requests = summary.split("====", 1)
    assert zone in header and zone not in requests  # named once, at the top
    assert not ISO_MOMENT.search(summary), ISO_MOMENT.search(summary)
    parts = summary.split("\n-- ")  # each part begins with its heading's line
    # After the request, the patient, the history, the appointment and the waiting list.
    timeline, messages = parts[5].splitlines()[1:], parts[8].splitlines()[1:]
    emails = parts[-1].splitlines()[1:]
    assert (len(timeline), len(messages)) == (3, 2) and emails  # confirmed, a call, a note
    shown = "\n".join(timeline + messages + emails)
    assert not re.search(r"\d\d:\d\d (call|note|status|clinic|patient)\b", shown), shown
    assert "(pending)" not in shown and "(sending)" not in shown
    for label in labels:
        assert label in shown, label
    # The names as staff search them are in patient.json, not in what a person reads.
    assert "Search name" not in summary and "search_name" not in summary
    assert "Search guardian" not in summary and "search_guardian" not in summary
    # A call's internal link to its timeline entry is no field for a person ("Event id").
    assert "Event id" not in summary and "event_id" not in summary
    # A document by its name and size as the pages give it, not its type's code in bytes.
    assert ": report-0.pdf (1 kB)\n" in summary, summary
    assert "application/pdf" not in summary and " bytes" not in summary
    data = json.loads(archive.read("patient.json"))
    request = data["requests"][0]
    assert request["appointment"]["starts_at"] == at.isoformat()
    assert {e["kind"] for e in request["timeline"]} >= {"call", "note"}
    assert datetime.fromisoformat(request["created_at"]).utcoffset() == timedelta(0)
