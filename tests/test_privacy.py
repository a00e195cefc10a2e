"""Privacy operations: one patient's archive (data and exact document bytes), erasure on request
(rows and files gone, other patients untouched, nothing lost when it fails), retention of
closed requests, and the audit trail of each. Admins only; CSRF on every post."""

from __future__ import annotations

import io
import json
import logging
import re
import zipfile
from dataclasses import dataclass
from datetime import time, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, update

from booking.accesslog import RedactingFilter
from booking.audit.models import AuditEvent
from booking.crypto import text_digest
from booking.dashboard import services as workflow
from booking.documents.models import Document
from booking.documents.scanning import ScanStatus
from booking.documents.storage import get_storage
from booking.extensions import db
from booking.notifications.models import OutboxEmail, OutboxStatus
from booking.outcomes.models import RegistryCode
from booking.privacy import services as privacy
from booking.privacy.models import FilePurge
from booking.requests.calls import CallbackAttempt, CallOutcome
from booking.requests.escalation import escalate_overdue
from booking.requests.events import RequestEvent
from booking.requests.models import ConsultationRequest, MedicalHistory, Patient
from booking.requests.reminders import send_due_reminders
from booking.rights.models import ErasureRequest
from booking.scheduling.models import (
    Appointment,
    ReminderSent,
    WaitlistEntry,
)
from booking.staff.models import StaffUser
from booking.timeutil import clinic_today, now_utc
from tests.factories import (
    clinic_slot,
    make_request,
    make_staff,
)
from tests.smtp import SmtpServer
from tests.support import (
    AuthActions,
    Clinic,
    answer_red_flags,
    booking_warnings,
    csrf_token,
    page_token,
    pdf_bytes,
    shown_actions,
)

ERIKA = "Erika.M@Example.com"  # her second request is typed in lower case
NOTE = "Called back: prefers mornings, MRI from March reviewed."
CSRF_VALUE = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def _count(model: type, *where: Any) -> int:
    return db.session.scalar(select(func.count()).select_from(model).where(*where)) or 0


def _rows() -> dict[str, int]:
    """How many rows each table an erasure touches holds."""
    return {
        "requests": _count(ConsultationRequest),
        "patients": _count(Patient),
        "emails": _count(OutboxEmail),
        "documents": _count(Document),
        "events": _count(RequestEvent),
        "calls": _count(CallbackAttempt),
    }


@dataclass(frozen=True)
class Patients(Clinic):
    """Erika: one completed request (appointment, reminder, waiting-list entry, note, two
    documents) and one declined request under the same address in another case. Otto: an
    open request with a document, which nothing here may touch."""

    erika: list[str]
    other: str


@pytest.fixture
def clinic(app: Flask, clinic: Clinic) -> Patients:
    with app.app_context():
        coordinator = db.session.get(StaffUser, clinic.coordinator.id)
        # Five days ago: completed after the visit, as a request can only be.
        slot = clinic_slot(clinic, clinic_today() - timedelta(days=5), time(10))
        first = make_request(documents=2, email=ERIKA, full_name="Erika Mustermann")
        workflow.confirm_request(first, coordinator, slot)
        # On the waiting list too (as the patient was before the visit drew near: joining
        # within the notice period is refused, and this visit is past).
        db.session.add(
            WaitlistEntry(request_id=first.id, appointment_type_id=clinic.type, active=True)
        )
        appointment = db.session.get(ConsultationRequest, first.id).appointment
        # Confirmed a week before the visit, as it would have been: a reminder whose lead time
        # had passed at the confirmation is never sent (booking.requests.reminders).
        appointment.placed_at = appointment.starts_at - timedelta(days=7)
        db.session.commit()
        send_due_reminders(now=appointment.starts_at - timedelta(hours=47))
        # Delivered two days before the visit, as the worker would have (one still waiting
        # at the completion would be withdrawn: booking.requests.lifecycle).
        db.session.execute(update(OutboxEmail).values(status=OutboxStatus.SENT))
        db.session.commit()
        workflow.add_note(db.session.get(ConsultationRequest, first.id), coordinator, NOTE)
        workflow.complete_request(db.session.get(ConsultationRequest, first.id), coordinator)

        second = make_request(documents=1, email=ERIKA.lower(), full_name="Erika Mustermann")
        workflow.decline_request(second, coordinator, "Outside what we treat.")

        other = make_request(documents=1, email="otto@example.com", full_name="Otto Other")
        return Patients(
            **vars(clinic), erika=[first.reference, second.reference], other=other.reference
        )


@pytest.fixture
def admin_client(auth: AuthActions, clinic: Patients) -> FlaskClient:
    return auth.new_client("admin")


def stored_files(app: Flask, reference: str) -> dict[str, bytes]:
    """original name -> the stored plaintext, read through the storage interface."""
    with app.app_context():
        docs = db.session.scalars(
            select(Document)
            .join(ConsultationRequest)
            .where(ConsultationRequest.reference == reference)
        ).all()
        storage = get_storage()
        files = {}
        for doc in docs:
            with storage.open(doc.stored_name) as f:
                files[doc.original_name] = f.read()
        return files


def stored_names(app: Flask, references: list[str]) -> list[str]:
    with app.app_context():
        return list(
            db.session.scalars(
                select(Document.stored_name)
                .join(ConsultationRequest)
                .where(ConsultationRequest.reference.in_(references))
            )
        )


def token_from(client: FlaskClient, path: str) -> str:
    match = CSRF_VALUE.search(client.get(path).get_data(as_text=True))
    assert match, f"no CSRF token on {path}"
    return match.group(1)


def export(client: FlaskClient, reference: str) -> zipfile.ZipFile:
    token = token_from(client, f"/staff/admin/privacy/{reference}")
    response = client.post(f"/staff/admin/privacy/{reference}/export", data={"csrf_token": token})
    assert response.status_code == 200
    assert response.is_streamed  # written while it is sent, never to a temporary file
    assert response.mimetype == "application/zip"
    assert f'filename="patient-{reference}.zip"' in response.headers["Content-Disposition"]
    assert "no-store" in response.headers["Cache-Control"]
    return zipfile.ZipFile(io.BytesIO(response.get_data()))


def erase(client: FlaskClient, reference: str, confirmation: str):
    token = token_from(client, f"/staff/admin/privacy/{reference}")
    return client.post(
        f"/staff/admin/privacy/{reference}/erase",
        data={"csrf_token": token, "confirmation": confirmation},
    )


def audit_rows(app: Flask, action: str) -> list[AuditEvent]:
    with app.app_context():
        rows = list(
            db.session.scalars(
                select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
            )
        )
        db.session.expunge_all()
        return rows


def assert_no_personal_data(event: AuditEvent) -> None:
    text = json.dumps(event.details).lower() + (event.target_id or "").lower()
    for personal in ("erika", "mustermann", "example.com", "mri", "ibuprofen", "mornings"):
        assert personal not in text, f"the audit row holds {personal!r}: {text}"


# --- finding a patient ---------------------------------------------------------------------


def test_an_admin_finds_a_patient_by_email_in_any_case_or_by_reference(
    admin_client: FlaskClient, clinic: Patients, app: Flask
) -> None:
    first, second = clinic.erika
    # A reference as staff type or read it out, as the queue's search takes it.
    typed = (second.lower(), second.replace("-", " ").lower(), second.removeprefix("SC-"))
    for query in ("ERIKA.m@example.COM", *typed):
        token = token_from(admin_client, "/staff/admin/privacy")
        response = admin_client.post(
            "/staff/admin/privacy", data={"csrf_token": token, "query": query}
        )
        assert response.status_code == 302
    page = admin_client.get(response.headers["Location"]).get_data(as_text=True)
    assert first in page and second in page
    assert clinic.other not in page
    token = token_from(admin_client, "/staff/admin/privacy")
    missing = admin_client.post(
        "/staff/admin/privacy", data={"csrf_token": token, "query": "nobody@example.com"}
    )
    assert missing.status_code == 422
    assert "No request has this email or reference." in missing.get_data(as_text=True)
    viewed = audit_rows(app, "privacy_patient_viewed")
    assert viewed and sorted(viewed[-1].details["references"]) == sorted(clinic.erika)
    assert_no_personal_data(viewed[-1])


def test_a_reference_typed_another_way_goes_to_the_patients_own_address(
    admin_client: FlaskClient, clinic: Patients, app: Flask
) -> None:
    """The patient's page, its reference typed as read out, is sent to the reference's own
    address, where the look is audited once; its forms posted to such an address work."""
    first, _second = clinic.erika
    typed = first.replace("-", " ").lower()
    response = admin_client.get(f"/staff/admin/privacy/{typed}")
    assert (response.status_code, response.headers["Location"]) == (
        302,
        f"/staff/admin/privacy/{first}",
    )
    assert audit_rows(app, "privacy_patient_viewed") == []
    assert admin_client.get(response.headers["Location"]).status_code == 200
    assert len(audit_rows(app, "privacy_patient_viewed")) == 1

    token = token_from(admin_client, f"/staff/admin/privacy/{first}")
    exported = admin_client.post(f"/staff/admin/privacy/{typed}/export", data={"csrf_token": token})
    assert exported.status_code == 200
    assert f'filename="patient-{first}.zip"' in exported.headers["Content-Disposition"]
    exported.close()


def test_a_look_up_that_finds_no_one_is_audited_as_refused(
    admin_client: FlaskClient, clinic: Patients, app: Flask
) -> None:
    """As the dashboard's refusals: a run of them is what probing for patients looks like.
    Kept as the reference it reads as (found so by the audit search), an address only as
    the start of its SHA-256."""
    token = token_from(admin_client, "/staff/admin/privacy")
    for query in ("sc nune xxtt", "Nobody@Example.com"):
        missing = admin_client.post(
            "/staff/admin/privacy", data={"csrf_token": token, "query": query}
        )
        assert missing.status_code == 422
    assert admin_client.get("/staff/admin/privacy/SC-NUNE-XXTT").status_code == 404
    exported = admin_client.post(
        "/staff/admin/privacy/SC-NUNE-XXTT/export", data={"csrf_token": token}
    )
    assert exported.status_code == 404

    typed, address, opened, export_asked = audit_rows(app, "access_refused")
    assert (typed.target_type, typed.target_id) == ("patient", "SC-NUNE-XXTT")
    assert typed.details == {
        "reason": "no_such_request",
        "method": "POST",
        "path": "/staff/admin/privacy",
        "endpoint": "privacy.find",
    }
    assert typed.actor_id == clinic.admin.id
    assert address.details["reason"] == "no_such_email"
    assert address.target_id == "sha256:" + text_digest("nobody@example.com")[:16]
    assert "nobody" not in json.dumps(address.details).lower() + address.target_id
    assert (opened.target_id, opened.details["endpoint"]) == ("SC-NUNE-XXTT", "privacy.patient")
    assert (export_asked.target_id, export_asked.details["endpoint"]) == (
        "SC-NUNE-XXTT",
        "privacy.export",
    )
    page = admin_client.get(
        "/staff/admin/audit", query_string={"target": "sc nune xxtt", "refused": "1"}
    ).get_data(as_text=True)
    assert shown_actions(page) == ["access_refused"] * 3


@pytest.mark.parametrize("query", ["Erika Mustermann", "+49 30 901820", "SC-NONE-XIST"])
def test_a_look_up_that_reads_as_no_reference_is_audited_unreadable(
    admin_client: FlaskClient, clinic: Patients, app: Flask, query: str
) -> None:
    """A name or phone number typed into the box (or anything else that is no reference's
    shape and letters) is kept only as the start of its SHA-256, as an address is: it may be
    a patient's, and the audit trail is read by every administrator."""
    token = token_from(admin_client, "/staff/admin/privacy")
    missing = admin_client.post("/staff/admin/privacy", data={"csrf_token": token, "query": query})
    assert missing.status_code == 422
    assert admin_client.get(f"/staff/admin/privacy/{query}").status_code == 404
    rows = audit_rows(app, "access_refused")
    digest = "sha256:" + text_digest(query.lower())[:16]
    assert [row.target_id for row in rows] == [digest, digest]
    kept = json.dumps([row.details for row in rows]).upper()
    assert query.upper() not in kept and query.split()[-1].upper() not in kept


def test_the_privacy_pages_use_no_inline_script_or_style(
    admin_client: FlaskClient, clinic: Patients
) -> None:
    for path in ("/staff/admin/privacy", f"/staff/admin/privacy/{clinic.erika[0]}"):
        response = admin_client.get(path)
        html = response.get_data(as_text=True)
        assert response.status_code == 200
        assert "<script>" not in html and "<script type" not in html, path
        assert " style=" not in html and "javascript:" not in html, path
    assert 'href="/staff/admin/privacy"' in html  # the admin's menu links here


# --- export ----------------------------------------------------------------------------------


def test_the_archive_holds_every_record_and_the_exact_document_bytes(
    admin_client: FlaskClient, clinic: Patients, app: Flask
) -> None:
    first, second = clinic.erika
    archive = export(admin_client, second)
    names = set(archive.namelist())
    data = json.loads(archive.read("patient.json"))
    summary = archive.read("summary.txt").decode()

    assert data["email"] == ERIKA.lower()
    requests = {r["reference"]: r for r in data["requests"]}
    assert set(requests) == {first, second}  # both cases of the address; never Otto's
    assert clinic.other not in json.dumps(data) and clinic.other not in summary
    done, declined = requests[first], requests[second]
    assert done["status"] == "completed" and declined["status"] == "declined"
    assert done["patient"]["full_name"] == "Erika Mustermann"
    assert done["patient"]["date_of_birth"] == "1970-05-17"
    assert done["medical_history"]["medications"] == "Ibuprofen"
    assert done["medical_history"]["back_pain_worst"] == 8
    assert done["appointment"]["specialist"] == "Dr. Weber"
    assert done["waitlist"] is not None
    assert NOTE in [e["body"] for e in done["timeline"]]
    assert [e["to_status"] for e in done["timeline"] if e["kind"] == "status"] == [
        "confirmed",
        "completed",
    ]
    assert "Outside what we treat." in [e["body"] for e in declined["timeline"]]
    subjects = [e["template"] for e in done["emails"]]
    assert "request_received" in subjects and "appointment_reminder" in subjects
    assert all(e["recipient"] for e in done["emails"])

    # Every document, byte for byte, where the JSON says it is.
    for reference, request in requests.items():
        on_disk = stored_files(app, reference)
        assert len(request["documents"]) == len(on_disk) > 0
        for entry in request["documents"]:
            assert entry["file"] in names
            assert entry["sha256_matches"] is True
            content = archive.read(entry["file"])
            assert content == on_disk[entry["original_name"]]
            number = int(entry["original_name"].split("-")[1].split(".")[0])
            assert content == pdf_bytes(f"Report {number}")
    assert archive.testzip() is None

    # The readable summary says the same in words.
    assert "Erika Mustermann" in summary and NOTE in summary
    assert "Herniated (slipped) disc" in summary
    assert first in summary and second in summary

    exported = audit_rows(app, "patient_exported")
    assert len(exported) == 1
    assert exported[0].actor_email == clinic.admin.email
    assert sorted(exported[0].details["references"]) == sorted([first, second])
    assert exported[0].details["documents"] == 3
    assert_no_personal_data(exported[0])


def test_a_missing_file_is_marked_in_the_archive_not_an_error(
    admin_client: FlaskClient, clinic: Patients, app: Flask, upload_dir: Path
) -> None:
    second = clinic.erika[1]
    (name,) = stored_names(app, [second])
    (upload_dir / name).unlink()
    data = json.loads(export(admin_client, second).read("patient.json"))
    entry = next(r for r in data["requests"] if r["reference"] == second)["documents"][0]
    assert entry["file"] is None and entry["file_missing"] is True


def test_a_damaged_file_is_marked_in_the_archive_which_stays_whole(
    admin_client: FlaskClient, clinic: Patients, app: Flask, upload_dir: Path
) -> None:
    """A stored file altered on disk fails its check while it is read: found half-way, it
    ended the download with a broken ZIP (after the export was audited). Each file is checked
    before it goes in; a damaged one is marked and left out."""
    second = clinic.erika[1]
    (name,) = stored_names(app, [second])
    damaged = bytearray((upload_dir / name).read_bytes())
    damaged[-20] ^= 0xFF  # one flipped byte in the last chunk: found only at the end
    (upload_dir / name).write_bytes(bytes(damaged))
    archive = export(admin_client, second)  # a whole ZIP: it opens and lists its parts
    data = json.loads(archive.read("patient.json"))
    entry = next(r for r in data["requests"] if r["reference"] == second)["documents"][0]
    assert entry["file"] is None and entry["file_unreadable"] is True
    assert not [n for n in archive.namelist() if n.startswith(f"documents/{second}/")]


@pytest.mark.parametrize(
    ("status", "said"),
    [
        (ScanStatus.PENDING, "(file not included: waiting for its virus scan)"),
        (ScanStatus.INFECTED, "(file removed: a virus was found)"),
    ],
)
def test_a_file_not_yet_scanned_or_found_infected_is_left_out_of_the_archive(
    admin_client: FlaskClient, clinic: Patients, app: Flask, status: ScanStatus, said: str
) -> None:
    """Staff never open a held file; an archive an admin downloads carries none either."""
    second = clinic.erika[1]
    with app.app_context():
        db.session.execute(
            update(Document)
            .where(Document.stored_name.in_(stored_names(app, [second])))
            .values(scan_status=status)
        )
        db.session.commit()
    archive = export(admin_client, second)
    data = json.loads(archive.read("patient.json"))
    entry = next(r for r in data["requests"] if r["reference"] == second)["documents"][0]
    assert entry["file"] is None and entry["file_withheld"] == status.value
    assert not [n for n in archive.namelist() if n.startswith(f"documents/{second}/")]
    assert said in archive.read("summary.txt").decode()


# --- access ----------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["coordinator", "specialist"])
def test_other_staff_get_403_and_change_nothing(
    app: Flask, clinic: Patients, role: str, upload_dir: Path
) -> None:
    client = app.test_client()
    AuthActions(client).login(role)
    token = csrf_token(client, "/staff/queue")
    reference = clinic.erika[0]
    base = f"/staff/admin/privacy/{reference}"
    assert client.get("/staff/admin/privacy").status_code == 403
    assert client.get(base).status_code == 403
    assert client.post(f"{base}/export", data={"csrf_token": token}).status_code == 403
    response = client.post(f"{base}/erase", data={"csrf_token": token, "confirmation": reference})
    assert response.status_code == 403
    with app.app_context():
        assert _count(ConsultationRequest) == 3
    assert not audit_rows(app, "patient_exported") and not audit_rows(app, "patient_erased")
    assert len(list(upload_dir.iterdir())) == 4


def test_the_services_refuse_anyone_but_an_admin(app: Flask, clinic: Patients) -> None:
    """The views check the role; the operations check it again for any other caller."""
    reference = clinic.erika[0]
    with app.app_context():
        coordinator = db.session.scalar(
            select(StaffUser).where(StaffUser.email == clinic.coordinator.email)
        )
        with pytest.raises(privacy.NotAllowed):
            privacy.erase_patient(reference, reference, coordinator)
        with pytest.raises(privacy.NotAllowed):
            privacy.export_patient(reference, coordinator)
        assert _count(ConsultationRequest) == 3


def test_anonymous_visitors_are_sent_to_sign_in(app: Flask, clinic: Patients) -> None:
    client = app.test_client()
    response = client.get(f"/staff/admin/privacy/{clinic.erika[0]}")
    assert response.status_code == 302 and "/staff/login" in response.headers["Location"]


def test_posts_without_a_csrf_token_are_refused(
    admin_client: FlaskClient, clinic: Patients, app: Flask
) -> None:
    reference = clinic.erika[0]
    base = f"/staff/admin/privacy/{reference}"
    assert admin_client.post(f"{base}/export").status_code == 400
    assert admin_client.post(f"{base}/erase", data={"confirmation": reference}).status_code == 400
    assert (
        admin_client.post(
            f"{base}/erase", data={"confirmation": reference, "csrf_token": "forged"}
        ).status_code
        == 400
    )
    with app.app_context():
        assert _count(ConsultationRequest) == 3
    assert not audit_rows(app, "patient_exported") and not audit_rows(app, "patient_erased")


# --- erasure ---------------------------------------------------------------------------------


def test_erasure_removes_every_row_and_file_and_leaves_other_patients(
    admin_client: FlaskClient, clinic: Patients, app: Flask, upload_dir: Path
) -> None:
    first, second = clinic.erika
    erika_files = stored_names(app, clinic.erika)
    otto_files = stored_files(app, clinic.other)
    with app.app_context():
        audit_before = _count(AuditEvent)
        erika_ids = list(
            db.session.scalars(
                select(ConsultationRequest.id).where(
                    ConsultationRequest.reference.in_(clinic.erika)
                )
            )
        )
        assert _count(ReminderSent) == 1 and _count(WaitlistEntry) == 1
        # Her first record was in a registry export.
        first_patient = db.session.scalars(
            select(ConsultationRequest.patient_id).where(ConsultationRequest.reference == first)
        ).one()
        db.session.add(RegistryCode(patient_id=first_patient, code="A1B2C3D4E5F6"))
        db.session.commit()

    # The address typed in another case confirms it.
    response = erase(admin_client, first, "erika.m@EXAMPLE.com")
    assert response.status_code == 302
    page = admin_client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Erased: 2 requests, 3 documents and " in page
    assert "An email telling the patient that their data is erased is on its way" in page
    assert "registry exports under A1B2C3D4E5F6: ask each registry" in page

    with app.app_context():
        assert _count(ConsultationRequest, ConsultationRequest.id.in_(erika_ids)) == 0
        assert _count(Patient, func.lower(Patient.email) == ERIKA.lower()) == 0
        assert _count(MedicalHistory, MedicalHistory.request_id.in_(erika_ids)) == 0
        assert _count(RequestEvent, RequestEvent.request_id.in_(erika_ids)) == 0
        assert _count(Document, Document.request_id.in_(erika_ids)) == 0
        assert _count(Appointment) == 0 and _count(ReminderSent) == 0
        assert _count(WaitlistEntry) == 0
        # Of every email to her, only the confirmation that her data is erased: no name, no
        # link, tied to no request.
        [confirmation] = db.session.scalars(
            select(OutboxEmail).where(func.lower(OutboxEmail.recipient) == ERIKA.lower())
        ).all()
        assert confirmation.template == "erasure_done" and confirmation.request_id is None
        assert confirmation.subject == "Your personal data at the clinic has been erased"
        assert "your requests " in confirmation.body_text and first in confirmation.body_text
        assert "Erika" not in confirmation.body_text + confirmation.body_html
        assert "http" not in confirmation.body_text
        assert _count(OutboxEmail, OutboxEmail.request_id.is_(None)) == 1
        assert _count(FilePurge) == 0
        # Otto is untouched, and so is every earlier audit row.
        assert _count(ConsultationRequest) == 1
        assert _count(OutboxEmail, OutboxEmail.recipient == "otto@example.com") == 1
        assert _count(AuditEvent) > audit_before
    for name in erika_files:
        assert not (upload_dir / name).exists()
    assert stored_files(app, clinic.other) == otto_files

    (event,) = audit_rows(app, "patient_erased")
    assert event.actor_email == clinic.admin.email
    assert sorted(event.details["references"]) == sorted(clinic.erika)
    assert event.details["requests"] == 2 and event.details["documents"] == 3
    assert event.details["patients"] == 2 and event.details["reminders"] == 1
    assert event.details["patient_emailed"] is True
    assert event.details["registry_codes"] == ["A1B2C3D4E5F6"]
    with app.app_context():
        assert _count(RegistryCode) == 0
    assert_no_personal_data(event)
    assert admin_client.get(f"/staff/admin/privacy/{first}").status_code == 404
    assert admin_client.get(f"/staff/requests/{second}").status_code == 404


def _logged(caplog: pytest.LogCaptureFixture, prefix: str) -> list[str]:
    """The app's log lines starting with ``prefix``, as its handler writes them (through
    the filter that redacts secrets). A record reaches ``caplog`` once or twice (see
    ``booking_warnings``): each counts once."""
    lines = []
    for record in {id(record): record for record in caplog.records}.values():
        if record.name.startswith("booking") and record.getMessage().startswith(prefix):
            RedactingFilter().filter(record)
            lines.append(record.getMessage())
    return lines


def test_an_erasure_is_logged_with_its_references(
    admin_client: FlaskClient, clinic: Patients, caplog: pytest.LogCaptureFixture
) -> None:
    """The log, kept outside the database, names what was erased: after a restore from an
    older backup it is the list of erasures to apply again (docs/data-protection.md)."""
    first, second = clinic.erika
    with booking_warnings(caplog, logging.INFO):
        assert erase(admin_client, first, first).status_code == 302
    (line,) = _logged(caplog, "patient erased:")
    assert first in line and second in line
    assert "erika" not in line.lower() and clinic.other not in line


def _erase_and_deliver_the_confirmation(
    admin_client: FlaskClient, clinic: Patients, app: Flask
) -> None:
    """Erase Erika, and let the worker deliver (or fail) the confirmation to her: the outbox
    keeps no row for her address, whatever the mail server answered."""
    from booking.notifications.services import deliver_outbox_email

    assert erase(admin_client, clinic.erika[0], clinic.erika[0]).status_code == 302
    with app.app_context():
        confirmation_id = db.session.scalars(
            select(OutboxEmail.id).where(OutboxEmail.template == "erasure_done")
        ).one()
        assert deliver_outbox_email(confirmation_id) is None
        assert db.session.get(OutboxEmail, confirmation_id) is None
        assert _count(OutboxEmail, func.lower(OutboxEmail.recipient) == ERIKA.lower()) == 0


def test_the_erasure_confirmation_is_forgotten_once_sent(
    smtp: SmtpServer,
    mail_settings: dict[str, Any],
    admin_client: FlaskClient,
    clinic: Patients,
    app: Flask,
) -> None:
    """The clinic keeps no address of a patient it erased: the confirmation's outbox row is
    deleted once the mail server accepted it."""
    _erase_and_deliver_the_confirmation(admin_client, clinic, app)
    [received] = smtp.collector.wait_for(1)
    assert [a.lower() for a in received.rcpt_tos] == [ERIKA.lower()]
    assert received.message["Subject"] == "Your personal data at the clinic has been erased"


def test_an_erasure_confirmation_that_cannot_be_delivered_is_not_kept_either(
    smtp: SmtpServer,
    mail_settings: dict[str, Any],
    admin_client: FlaskClient,
    clinic: Patients,
    app: Flask,
) -> None:
    smtp.collector.refuse_rcpt.add(ERIKA.lower())  # 550: the mailbox is gone
    smtp.collector.refuse_rcpt.add(ERIKA)
    _erase_and_deliver_the_confirmation(admin_client, clinic, app)


def test_erasure_needs_the_reference_or_address_typed(
    admin_client: FlaskClient, clinic: Patients, app: Flask
) -> None:
    first = clinic.erika[0]
    for typed in ("yes", clinic.other, "otto@example.com", ""):
        response = erase(admin_client, first, typed)
        assert response.status_code == 422, typed
    assert "type the request reference" in response.get_data(as_text=True).lower()
    with app.app_context():
        assert _count(ConsultationRequest) == 3
    assert not audit_rows(app, "patient_erased")


def test_a_patient_marked_deceased_is_not_emailed_the_erasure(
    admin_client: FlaskClient, clinic: Patients, app: Flask
) -> None:
    """Marked deceased on one of her requests, nothing goes to her address (the family may
    read it): not the erasure's confirmation either, and the admin is told why."""
    first = clinic.erika[0]
    with app.app_context():
        db.session.execute(
            update(Patient)
            .where(
                Patient.id.in_(
                    select(ConsultationRequest.patient_id).where(
                        ConsultationRequest.reference == clinic.erika[1]
                    )
                )
            )
            .values(deceased_at=now_utc())
        )
        db.session.commit()
    response = erase(admin_client, first, first)
    assert response.status_code == 302
    page = admin_client.get(response.headers["Location"]).get_data(as_text=True)
    assert "No email was sent: the patient is marked deceased." in page
    assert "An email telling the patient" not in page and "left no email address" not in page
    with app.app_context():
        assert _count(OutboxEmail, func.lower(OutboxEmail.recipient) == ERIKA.lower()) == 0
    (event,) = audit_rows(app, "patient_erased")
    assert event.details["patient_emailed"] is False


def test_a_patient_with_an_open_request_is_not_erased(
    admin_client: FlaskClient, clinic: Patients, app: Flask, upload_dir: Path
) -> None:
    other = clinic.other
    response = erase(admin_client, other, other)
    assert response.status_code == 422
    assert f"Still open: {other}" in response.get_data(as_text=True)
    with app.app_context():
        assert _count(ConsultationRequest, ConsultationRequest.reference == other) == 1
    assert all((upload_dir / n).exists() for n in stored_names(app, [other]))


def test_a_patient_with_an_open_request_is_offered_no_erase_form(
    admin_client: FlaskClient, clinic: Patients, app: Flask
) -> None:
    """Only the reason and what to do first: a form offered beside it would only be refused
    (the service still refuses a post from a page shown before the request was opened)."""
    other = clinic.other
    with app.app_context():  # the patient asked for erasure on their private page
        request_id = db.session.scalar(
            select(ConsultationRequest.id).where(ConsultationRequest.reference == other)
        )
        db.session.add(ErasureRequest(reference=other, request_id=request_id))
        db.session.commit()
    erase_url = f'action="/staff/admin/privacy/{other}/erase"'
    page = admin_client.get(f"/staff/admin/privacy/{other}").get_data(as_text=True)
    assert erase_url not in page and "Erase this patient" not in page
    assert f"Still open: {other}. Decline, cancel or complete it on the request" in page
    assert "Close every open request to erase the patient below, or answer" in page
    assert "Erase the patient below" not in page
    # Erika's requests are closed: hers is offered.
    closed = admin_client.get(f"/staff/admin/privacy/{clinic.erika[0]}").get_data(as_text=True)
    assert f'action="/staff/admin/privacy/{clinic.erika[0]}/erase"' in closed
    assert "Still open" not in closed

    refused = erase(admin_client, other, other)  # from a page shown before
    page = refused.get_data(as_text=True)
    assert refused.status_code == 422 and erase_url not in page
    assert '<p class="alert alert-danger" id="erase-blocked" role="alert">Still open' in page
    assert "<title>Error: " in page


@pytest.fixture
def refuse_patient_deletes(app: Flask):
    """A database that fails the erasure's last delete, after every other row went."""
    with app.app_context(), db.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(
                sa.text(
                    "CREATE FUNCTION refuse_delete() RETURNS trigger LANGUAGE plpgsql AS "
                    "$$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$"
                )
            )
            conn.execute(
                sa.text(
                    "CREATE TRIGGER refuse_patient_delete BEFORE DELETE ON patient "
                    "FOR EACH ROW EXECUTE FUNCTION refuse_delete()"
                )
            )
        else:
            conn.execute(
                sa.text(
                    "CREATE TRIGGER refuse_patient_delete BEFORE DELETE ON patient "
                    "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
                )
            )
    yield
    with app.app_context(), db.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("DROP TRIGGER refuse_patient_delete ON patient"))
            conn.execute(sa.text("DROP FUNCTION refuse_delete()"))
        else:
            conn.execute(sa.text("DROP TRIGGER refuse_patient_delete"))


ALL_PATIENT_MODELS = (
    ConsultationRequest,
    Patient,
    MedicalHistory,
    RequestEvent,
    Document,
    Appointment,
    ReminderSent,
    WaitlistEntry,
    OutboxEmail,
    AuditEvent,
)


def test_a_failure_mid_erasure_leaves_every_row_and_file(
    app: Flask, clinic: Patients, upload_dir: Path, refuse_patient_deletes: None
) -> None:
    first = clinic.erika[0]
    files = {ref: stored_files(app, ref) for ref in clinic.erika}
    with app.app_context():
        before = {model.__name__: _count(model) for model in ALL_PATIENT_MODELS}
        admin = db.session.scalar(select(StaffUser).where(StaffUser.email == clinic.admin.email))
        with pytest.raises(sa.exc.DatabaseError, match="refused by the test"):
            privacy.erase_patient(first, first, admin)
        assert {model.__name__: _count(model) for model in ALL_PATIENT_MODELS} == before
        assert _count(FilePurge) == 0
    assert {ref: stored_files(app, ref) for ref in clinic.erika} == files
    assert not audit_rows(app, "patient_erased")


def test_a_file_that_cannot_be_removed_is_reported_and_retried(
    admin_client: FlaskClient, clinic: Patients, app: Flask, upload_dir: Path
) -> None:
    second = clinic.erika[1]
    (name,) = stored_names(app, [second])
    # A directory where the file was: the storage cannot unlink it, as on a read-only mount.
    (upload_dir / name).unlink()
    (upload_dir / name).mkdir()
    first = clinic.erika[0]
    response = erase(admin_client, second, second)
    assert response.status_code == 302
    page = admin_client.get(response.headers["Location"]).get_data(as_text=True)
    assert "could not be removed yet" in page
    with app.app_context():
        assert _count(ConsultationRequest, ConsultationRequest.reference.in_([first, second])) == 0
        (queued,) = db.session.scalars(select(FilePurge)).all()
        assert queued.stored_name == name and queued.attempts == 1
        assert "IsADirectoryError" in (queued.last_error or "")
    assert "waiting to be removed" in admin_client.get("/staff/admin/privacy").get_data(
        as_text=True
    )

    # Once storage works again, the nightly run removes it.
    (upload_dir / name).rmdir()
    (upload_dir / name).write_bytes(b"left behind")
    with app.app_context():
        result = privacy.purge_expired()
        assert result.files_removed == 1 and result.files_pending == 0
        assert _count(FilePurge) == 0
    assert not (upload_dir / name).exists()


# --- call-back requests: a patient who left no email address ---------------------------------

CALLER = "Juana Notinmail"
CALLER_PHONE = "030 901821"  # stored as +4930901821
CALL_NOTE = "Called back: numbness since Tuesday, sent to the emergency department."
SUBMISSION = re.compile(r'name="submission_token"[^>]*value="([^"]+)"')


def leave_callback(app: Flask, full_name: str, phone: str) -> str:
    """A patient answers an emergency red flag and leaves a name and a phone number, through
    the public pages; returns the reference stored."""
    client = app.test_client()
    answer_red_flags(client, yes={"saddle_numbness"})
    page = client.get("/request/emergency").get_data(as_text=True)
    match = SUBMISSION.search(page)
    assert match, "no submission token on the emergency page"
    response = client.post(
        "/request/emergency",
        data={
            "csrf_token": page_token(page),
            "submission_token": match.group(1),
            "full_name": full_name,
            "phone": phone,
        },
    )
    assert response.status_code == 303
    with app.app_context():
        return db.session.scalars(
            select(ConsultationRequest.reference).order_by(ConsultationRequest.id.desc())
        ).first()


@dataclass(frozen=True)
class Callbacks:
    """Two call-back requests from the same name and phone number (a family's landline, or
    the same person twice: nothing tells): ``called`` was called, noted, escalated to the
    on-call address and declined; ``other`` is still open. Each left no email address."""

    called: str
    other: str


@pytest.fixture
def callbacks(app: Flask, clinic: Patients) -> Callbacks:
    called = leave_callback(app, CALLER, CALLER_PHONE)
    other = leave_callback(app, CALLER, CALLER_PHONE)
    with app.app_context():
        app.config["ON_CALL_EMAIL"] = "on-call@example.com"
        assert escalate_overdue(now=now_utc() + timedelta(hours=2))  # one email each
        coordinator = db.session.get(StaffUser, clinic.coordinator.id)
        consultation = db.session.scalar(
            select(ConsultationRequest).where(ConsultationRequest.reference == called)
        )
        workflow.log_callback(consultation, coordinator, CallOutcome.REACHED, note=CALL_NOTE)
        workflow.add_note(consultation, coordinator, CALL_NOTE)
        workflow.decline_request(consultation, coordinator, "Sent to the emergency department.")
    return Callbacks(called, other)


def _find(client: FlaskClient, query: str) -> str:
    token = token_from(client, "/staff/admin/privacy")
    response = client.post("/staff/admin/privacy", data={"csrf_token": token, "query": query})
    assert response.status_code == 302, query
    return response.headers["Location"]


def test_a_call_back_request_is_found_by_its_reference_and_shown_alone(
    admin_client: FlaskClient, clinic: Patients, callbacks: Callbacks, app: Flask
) -> None:
    location = _find(admin_client, callbacks.called.lower())
    assert location == f"/staff/admin/privacy/{callbacks.called}"
    response = admin_client.get(location)
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "the patient left a name and a phone number but no email address" in page
    assert callbacks.called in page and CALLER in page
    # Not brought together with the other request of the same name and number.
    assert callbacks.other not in page
    assert "Held in all: 1 request, 0 documents, 2 emails." in page
    assert "Type the request reference to confirm" in page
    viewed = audit_rows(app, "privacy_patient_viewed")
    assert viewed[-1].details["references"] == [callbacks.called]


def test_a_call_back_request_is_exported_alone(
    admin_client: FlaskClient, clinic: Patients, callbacks: Callbacks, app: Flask
) -> None:
    archive = export(admin_client, callbacks.called)
    data = json.loads(archive.read("patient.json"))
    summary = archive.read("summary.txt").decode()
    assert data["email"] is None and data["other_emails"] == []
    (request,) = data["requests"]
    assert request["reference"] == callbacks.called
    assert request["triage_level"] == "emergency"
    assert request["red_flags"] == ["saddle_numbness"]
    assert request["patient"]["full_name"] == CALLER
    assert request["patient"]["phone"] == "+4930901821"
    assert request["patient"]["email"] is None
    assert [call["outcome"] for call in request["calls"]] == ["reached"]
    assert CALL_NOTE in [e["body"] for e in request["timeline"]]
    # The clinic's alert and the on-call escalation name the request: they are its emails.
    assert sorted(e["template"] for e in request["emails"]) == [
        "callback_staff",
        "escalation_staff",
    ]
    assert request["documents"] == [] and archive.namelist() == ["patient.json", "summary.txt"]
    assert CALLER in summary and CALL_NOTE in summary and "+4930901821" in summary
    for elsewhere in (callbacks.other, *clinic.erika, clinic.other):
        assert elsewhere not in json.dumps(data) and elsewhere not in summary
    (exported,) = audit_rows(app, "patient_exported")
    assert exported.details == {"references": [callbacks.called], "documents": 0, "emails": 2}


def test_erasing_a_call_back_request_leaves_nothing_of_it(
    admin_client: FlaskClient, clinic: Patients, callbacks: Callbacks, app: Flask
) -> None:
    with app.app_context():
        request_id = db.session.scalar(
            select(ConsultationRequest.id).where(ConsultationRequest.reference == callbacks.called)
        )
        about_it = OutboxEmail.subject.contains(callbacks.called) | OutboxEmail.body_text.contains(
            callbacks.called
        )
        assert _count(OutboxEmail, about_it) == 2
        assert _count(CallbackAttempt, CallbackAttempt.request_id == request_id) == 1
        its_events = _count(RequestEvent, RequestEvent.request_id == request_id)
        assert its_events >= 3  # the escalation, the note, the decline
        before = _rows()
        audit_before = set(db.session.scalars(select(AuditEvent.id)))
    otto_files = stored_files(app, clinic.other)
    erika_files = {ref: stored_files(app, ref) for ref in clinic.erika}

    # Nothing but the reference confirms: the name and the number are not the patient's key.
    for typed in (CALLER, "+4930901821", callbacks.other):
        refused = erase(admin_client, callbacks.called, typed)
        assert refused.status_code == 422, typed
        assert "To confirm, type the request reference." in refused.get_data(as_text=True)
    response = erase(admin_client, callbacks.called, callbacks.called.lower())
    assert response.status_code == 302
    page = admin_client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Erased: 1 request, 0 documents and 2 emails." in page

    with app.app_context():
        assert _count(ConsultationRequest, ConsultationRequest.id == request_id) == 0
        assert _count(OutboxEmail, OutboxEmail.request_id == request_id) == 0
        assert _count(OutboxEmail, about_it) == 0
        assert _count(CallbackAttempt, CallbackAttempt.request_id == request_id) == 0
        assert _count(RequestEvent, RequestEvent.request_id == request_id) == 0
        assert _count(RequestEvent, RequestEvent.body == CALL_NOTE) == 0
        assert _count(MedicalHistory, MedicalHistory.request_id == request_id) == 0
        # The other request of the same name and number, and every other patient, stay.
        other = db.session.scalar(
            select(ConsultationRequest).where(ConsultationRequest.reference == callbacks.other)
        )
        assert other is not None and other.patient.full_name == CALLER
        assert other.patient.phone == "+4930901821"
        assert _count(OutboxEmail, OutboxEmail.request_id == other.id) == 2
        after = _rows()
        assert after == {
            "requests": before["requests"] - 1,
            "patients": before["patients"] - 1,
            "emails": before["emails"] - 2,
            "documents": before["documents"],
            "events": before["events"] - its_events,
            "calls": before["calls"] - 1,
        }
        # The audit trail keeps its rows about the request: references, no personal data.
        assert audit_before <= set(db.session.scalars(select(AuditEvent.id)))
        submitted = db.session.scalars(
            select(AuditEvent).where(AuditEvent.target_id == callbacks.called)
        ).all()
        assert "request_submitted" in {event.action for event in submitted}
        for event in submitted:
            text = json.dumps(event.details)
            assert "Juana" not in text and "901821" not in text and "numbness" not in text
    assert stored_files(app, clinic.other) == otto_files
    assert {ref: stored_files(app, ref) for ref in clinic.erika} == erika_files

    (event,) = audit_rows(app, "patient_erased")
    assert event.target_id == callbacks.called
    assert event.details["references"] == [callbacks.called]
    assert event.details["requests"] == 1 and event.details["patients"] == 1
    assert event.details["emails"] == 2 and event.details["calls"] == 1
    assert admin_client.get(f"/staff/admin/privacy/{callbacks.called}").status_code == 404
    assert admin_client.get(f"/staff/admin/privacy/{callbacks.other}").status_code == 200


def test_an_open_call_back_request_is_not_erased(
    admin_client: FlaskClient, callbacks: Callbacks, app: Flask
) -> None:
    response = erase(admin_client, callbacks.other, callbacks.other)
    assert response.status_code == 422
    assert f"Still open: {callbacks.other}" in response.get_data(as_text=True)
    with app.app_context():
        assert _count(ConsultationRequest, ConsultationRequest.reference == callbacks.other) == 1
    assert not audit_rows(app, "patient_erased")


# --- retention -------------------------------------------------------------------------------


def backdate(app: Flask, reference: str, days: int) -> None:
    """Make a request look untouched for ``days``: its changes, timeline and documents."""
    then = now_utc() - timedelta(days=days)
    with app.app_context():
        request_id = db.session.scalar(
            select(ConsultationRequest.id).where(ConsultationRequest.reference == reference)
        )
        db.session.execute(
            update(ConsultationRequest)
            .where(ConsultationRequest.id == request_id)
            .values(created_at=then, updated_at=then)
        )
        db.session.execute(
            update(RequestEvent)
            .where(RequestEvent.request_id == request_id)
            .values(occurred_at=then)
        )
        db.session.execute(
            update(Document).where(Document.request_id == request_id).values(uploaded_at=then)
        )
        db.session.commit()


@pytest.fixture
def retention_clinic(app_settings: dict[str, Any], app: Flask) -> dict[str, Any]:
    """RETENTION_DAYS=30. Due: two old declined requests. Kept: a recently declined one, an
    old one still open, and an old declined one with a note added last week."""
    app.config["RETENTION_DAYS"] = 30
    with app.app_context():
        coordinator = make_staff("coordinator", "coord@example.com")
        coordinator_id = coordinator.id

        def declined(email: str, documents: int = 1) -> str:
            consultation = make_request(documents=documents, email=email)
            workflow.decline_request(consultation, coordinator, "Not for us.")
            return consultation.reference

        refs = {
            "due_a": declined("old.a@example.com"),
            "due_b": declined("old.b@example.com", documents=2),
            "recent": declined("recent@example.com"),
            "open": make_request(documents=1, email="open@example.com").reference,
            "noted": declined("noted@example.com"),
        }
    for key in ("due_a", "due_b", "open", "noted"):
        backdate(app, refs[key], 40)
    with app.app_context():
        noted = db.session.scalar(
            select(ConsultationRequest).where(ConsultationRequest.reference == refs["noted"])
        )
        coordinator = db.session.get(StaffUser, coordinator_id)
        workflow.add_note(noted, coordinator, "Patient called about the decision.")
    return refs


def snapshot(app: Flask, upload_dir: Path) -> dict[str, Any]:
    with app.app_context():
        state = {
            "requests": sorted(db.session.scalars(select(ConsultationRequest.reference))),
            "documents": _count(Document),
            "emails": _count(OutboxEmail),
            "events": _count(RequestEvent),
            "audit": _count(AuditEvent),
            "files": sorted(p.name for p in upload_dir.iterdir()),
        }
        db.session.remove()
        return state


def test_a_dry_run_counts_what_is_due_and_changes_nothing(
    app: Flask, retention_clinic: dict[str, str], upload_dir: Path
) -> None:
    before = snapshot(app, upload_dir)
    runner = app.test_cli_runner()
    result = runner.invoke(args=["privacy", "purge-expired", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "Due" in result.output and "2 requests, 3 documents" in result.output
    assert retention_clinic["due_a"] in result.output and retention_clinic["due_b"] in result.output
    assert retention_clinic["recent"] not in result.output
    assert snapshot(app, upload_dir) == before


def test_retention_purges_only_closed_requests_past_the_period(
    app: Flask, retention_clinic: dict[str, str], upload_dir: Path
) -> None:
    due = [retention_clinic["due_a"], retention_clinic["due_b"]]
    due_files = stored_names(app, due)
    kept = sorted(v for k, v in retention_clinic.items() if not k.startswith("due"))
    kept_files = {ref: stored_files(app, ref) for ref in kept}

    with app.app_context():
        result = privacy.purge_expired(batch_size=1)
        assert result.counts.requests == 2 and result.counts.documents == 3
        assert result.files_removed == 3 and result.files_pending == 0
        assert sorted(db.session.scalars(select(ConsultationRequest.reference))) == kept
        assert _count(FilePurge) == 0
        assert _count(Patient) == len(kept)
    assert not any((upload_dir / name).exists() for name in due_files)
    assert {ref: stored_files(app, ref) for ref in kept} == kept_files

    # One audit row per batch, references and counts only.
    events = audit_rows(app, "retention_purged")
    assert [e.details["references"] for e in events] == [[due[0]], [due[1]]]
    assert [e.details["documents"] for e in events] == [1, 2]
    assert all(e.actor_email == privacy.RETENTION_ACTOR for e in events)
    for event in events:
        assert_no_personal_data(event)

    # Idempotent: the next run finds nothing and writes nothing.
    before = snapshot(app, upload_dir)
    with app.app_context():
        again = privacy.purge_expired()
    assert again.counts.requests == 0
    assert snapshot(app, upload_dir) == before


def test_a_retention_purge_is_logged_with_its_references(
    app: Flask, retention_clinic: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    """One line per batch, naming its references (as an erasure's line does)."""
    with booking_warnings(caplog, logging.INFO), app.app_context():
        privacy.purge_expired(batch_size=1)
    lines = _logged(caplog, "retention: purged")
    assert len(lines) == 2
    assert retention_clinic["due_a"] in lines[0] and retention_clinic["due_b"] in lines[1]
    assert not any(retention_clinic["recent"] in line for line in lines)


def test_the_daily_task_runs_the_retention(
    app: Flask, retention_clinic: dict[str, str], upload_dir: Path
) -> None:
    task = app.extensions["spineconsult.purge_expired_requests"]
    task.call_local()
    with app.app_context():
        remaining = set(db.session.scalars(select(ConsultationRequest.reference)))
    assert retention_clinic["due_a"] not in remaining
    assert retention_clinic["recent"] in remaining


def test_retention_off_purges_nothing(
    app: Flask, retention_clinic: dict[str, str], upload_dir: Path
) -> None:
    app.config["RETENTION_DAYS"] = 0
    before = snapshot(app, upload_dir)
    result = app.test_cli_runner().invoke(args=["privacy", "purge-expired"])
    assert result.exit_code == 0 and "Retention is off" in result.output
    assert snapshot(app, upload_dir) == before
