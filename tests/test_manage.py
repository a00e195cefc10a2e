"""The patient's private manage link: access, documents, reschedule, cancel, notice period."""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from datetime import time, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError, OperationalError

from booking.audit.models import AuditEvent
from booking.documents.models import Document
from booking.extensions import db
from booking.notifications.models import OutboxEmail, OutboxStatus
from booking.outcomes.models import Plan
from booking.requests.events import RequestEvent
from booking.requests.models import ConsultationRequest, RequestStatus, TriageLevel
from booking.scheduling.admin_services import set_appointment_type_active
from booking.scheduling.models import AppointmentType, ClinicSettings
from booking.scheduling.services import SlotChoice, SlotUnavailable, resolve_choice
from booking.timeutil import clinic_dt, clinic_today
from tests.factories import (
    confirm_at,
    make_appointment_type,
    make_hours,
    make_location,
    make_request,
    make_staff,
)
from tests.support import (
    EXE_BYTES,
    AuthActions,
    field_error,
    first_open_slot,
    open_manage_link,
    pdf_bytes,
    stored_files,
)

CSRF = re.compile(r'csrf_token" type="hidden" value="([^"]+)"')
SLOT = re.compile(r'name="slot" id="slot-([0-9.]+)"')


@pytest.fixture
def booked(app: Flask, client: FlaskClient) -> dict[str, Any]:
    """A request holding the first open slot; ``client`` has opened its private link."""
    with app.app_context():
        specialist = make_staff("specialist", "weber@example.com", full_name="Dr. Weber")
        location = make_location()
        appointment_type = make_appointment_type()
        make_hours(specialist, location, range(7), "09:00", "17:00")
        slot = first_open_slot(appointment_type)
        consultation = make_request(
            slot=SlotChoice(
                appointment_type.id, slot.specialist_id, slot.location_id, slot.starts_at
            )
        )
        return {
            "reference": consultation.reference,
            "url": open_manage_link(client, consultation),
            "starts_at": slot.starts_at,
        }


def _request(app: Flask, reference: str) -> ConsultationRequest:
    with app.app_context():
        consultation = db.session.scalars(
            select(ConsultationRequest).where(ConsultationRequest.reference == reference)
        ).one()
        _ = consultation.appointment, consultation.documents
        db.session.expunge_all()
        return consultation


def test_the_link_shows_the_request_privately(client: FlaskClient, booked: dict) -> None:
    response = client.get(booked["url"])
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert booked["reference"] in page
    assert "Dr. Weber" in page
    # The page's forms must carry an Origin: same-origin, not no-referrer (tests/production).
    assert response.headers["Referrer-Policy"] == "same-origin"
    assert "no-store" in response.headers["Cache-Control"]
    assert 'content="noindex, nofollow"' in page


def test_the_cancel_reason_says_optional_once(client: FlaskClient, booked: dict) -> None:
    """The label says "(optional)": its hint no longer starts with "Optional." as well."""
    page = client.get(booked["url"]).get_data(as_text=True)
    assert "It helps us, but please do not write medical details." in page
    assert "Optional. It helps us" not in page


def test_the_reschedule_picker_shows_one_day_at_a_time(client: FlaskClient, booked: dict) -> None:
    page = client.get(booked["url"] + "/reschedule").get_data(as_text=True)
    assert page.count("slot-day") == 1  # one day's times, not two weeks of them
    days = re.findall(r'href="(/manage/[^"]+/reschedule\?[^"]*day=(\d{4}-\d\d-\d\d)[^"]*)"', page)
    assert len(days) > 1
    later_day_url, later_day = days[-1]
    later = client.get(later_day_url.replace("&amp;", "&")).get_data(as_text=True)
    assert later.count("slot-day") == 1
    assert re.search(rf'aria-current="date"[^>]*>|day={later_day}[^"]*" aria-current', later)
    assert set(SLOT.findall(later)).isdisjoint(SLOT.findall(page))


def test_a_day_of_the_reschedule_picker_opens_at_the_days(
    client: FlaskClient, booked: dict
) -> None:
    """A day chosen opened the page at its top: on a phone the patient scrolled (or tabbed)
    past the warning, the filters and the days again to reach its times. It opens at the
    days, with the times under them, as the request's own picker does."""
    page = client.get(booked["url"] + "/reschedule").get_data(as_text=True)
    days = re.findall(r'href="(/manage/[^"]+/reschedule\?[^"]*day=[^"]*)"', page)
    assert days and all(url.endswith("#days-heading") for url in days)
    assert 'id="days-heading"' in page


MORE_DATES = re.compile(r'href="([^"]+)">(Earlier|Later) dates</a>')


def test_the_reschedule_pickers_other_dates_open_at_the_days(
    client: FlaskClient, booked: dict
) -> None:
    """ "Earlier dates" and "Later dates" opened the page at its top: the patient scrolled
    past the warning and the filters again. They open where the days are (the start of the
    times, also where no day has an open time)."""
    page = client.get(booked["url"] + "/reschedule").get_data(as_text=True)
    [(later, _)] = MORE_DATES.findall(page)
    assert later.endswith("#picker-times")
    page = client.get(later.replace("&amp;", "&").partition("#")[0]).get_data(as_text=True)
    links = dict((word, url) for url, word in MORE_DATES.findall(page))
    assert set(links) == {"Earlier", "Later"}
    assert all(url.endswith("#picker-times") for url in links.values())
    times = page[page.index('<div id="picker-times"') :]
    assert times.index('id="days-heading"') < times.index("slot-day")  # the days come first


def _move_to_the_last_time_shown(client: FlaskClient, booked: dict) -> Any:
    """Pick the time picker's last time of the first day shown: late in the afternoon, that
    day may hold only one or two (keys[2] failed from about 15:30 clinic time)."""
    page = client.get(booked["url"] + "/reschedule").get_data(as_text=True)
    keys = SLOT.findall(page)
    assert keys
    return client.post(
        booked["url"] + "/reschedule",
        data={"csrf_token": CSRF.search(page).group(1), "slot": keys[-1]},
    )


def test_patient_reschedules_to_another_open_slot(
    app: Flask, client: FlaskClient, booked: dict
) -> None:
    assert _move_to_the_last_time_shown(client, booked).status_code == 302
    consultation = _request(app, booked["reference"])
    assert consultation.appointment.starts_at != booked["starts_at"]
    with app.app_context():
        subjects = list(db.session.scalars(select(OutboxEmail.subject).order_by(OutboxEmail.id)))
        # A held time, moved: still not confirmed, and the email does not sound final.
        assert f"The time you hold has changed ({booked['reference']})" in subjects
        moved = db.session.scalars(
            select(OutboxEmail).where(OutboxEmail.template == "request_update")
        ).one()
        assert "It is not confirmed yet: we will confirm it by email" in moved.body_text
        assert "adds the time you hold to your calendar, marked as not confirmed" in (
            moved.body_text
        )
        # The old time beside the new one, as the email writes times (clinic time).
        new_when = clinic_dt(consultation.appointment.starts_at, "when")
        old_when = clinic_dt(booked["starts_at"], "when")
        assert f"When: {new_when}\n" in moved.body_text
        assert f"Previous time, no longer kept: {old_when}\n" in moved.body_text
        assert new_when in moved.body_html and f"<s>{old_when}</s>" in moved.body_html
        assert f"Patient update on {booked['reference']}: rescheduled" in subjects
        assert (
            db.session.scalars(select(AuditEvent).where(AuditEvent.action == "patient_rescheduled"))
            .one()
            .details["starts_at"]["before"]
            == booked["starts_at"].isoformat()
        )


def test_a_patient_booked_on_a_type_no_longer_offered_can_still_move_it(
    app: Flask, client: FlaskClient, booked: dict
) -> None:
    """An admin stops offering the appointment type: new patients cannot pick it, but one
    already booked keeps it, and the times their page offers can be taken (every one was
    refused as "not available for booking")."""
    appointment = _request(app, booked["reference"]).appointment
    with app.app_context():
        kind = db.session.get(AppointmentType, appointment.appointment_type_id)
        set_appointment_type_active(kind, False, actor=None)
        kind_id = kind.id
    assert _move_to_the_last_time_shown(client, booked).status_code == 302
    assert _request(app, booked["reference"]).appointment.starts_at != booked["starts_at"]
    # Nobody else may book the type: the time just given up is not for a new request.
    freed = SlotChoice(
        kind_id, appointment.specialist_id, appointment.location_id, booked["starts_at"]
    )
    with app.app_context(), pytest.raises(SlotUnavailable):
        resolve_choice(freed)


def test_a_taken_or_made_up_slot_is_refused_with_fresh_times(
    app: Flask, client: FlaskClient, booked: dict
) -> None:
    page = client.get(booked["url"] + "/reschedule").get_data(as_text=True)
    token = CSRF.search(page).group(1)
    for slot in ("1.1.1000000000", "garbage", ""):
        response = client.post(
            booked["url"] + "/reschedule", data={"csrf_token": token, "slot": slot}
        )
        assert response.status_code == 409
        assert SLOT.search(response.get_data(as_text=True))
    assert _request(app, booked["reference"]).appointment.starts_at == booked["starts_at"]


def test_patient_adds_documents_checked_by_content(
    app: Flask, client: FlaskClient, booked: dict
) -> None:
    page = client.get(booked["url"]).get_data(as_text=True)
    token = CSRF.search(page).group(1)

    def post(content: bytes, name: str):
        return client.post(
            booked["url"] + "/documents",
            data={
                "docs-csrf_token": token,
                "docs-documents-0-file": (io.BytesIO(content), name),
                "docs-documents-0-description": "MRI report",
            },
            content_type="multipart/form-data",
        )

    assert post(EXE_BYTES, "report.pdf").status_code == 422
    assert post(pdf_bytes(), "mri.pdf").status_code == 302
    consultation = _request(app, booked["reference"])
    assert [d.original_name for d in consultation.documents] == ["mri.pdf"]
    # Full, the page offers no upload it would refuse, and says so.
    app.config["MAX_DOCUMENTS"] = 1
    page = client.get(booked["url"]).get_data(as_text=True)
    assert "Your request holds as many documents as it can (1)." in page
    assert "/documents" not in page.split('id="docs-heading"')[1].split("</section>")[0]


def test_files_sent_with_a_refused_one_are_said_not_added(
    app: Flask, client: FlaskClient, booked: dict
) -> None:
    """The files go all or none: with one refused, the good ones chosen with it are not added
    either, and the page sent back holds no file (a browser keeps none). Each says so on its
    field, or the patient would take the letter beside its description for added."""
    page = client.get(booked["url"]).get_data(as_text=True)
    response = client.post(
        booked["url"] + "/documents",
        data={
            "docs-csrf_token": CSRF.search(page).group(1),
            "docs-documents-0-file": (io.BytesIO(pdf_bytes()), "referral.pdf"),
            "docs-documents-0-description": "Referral letter",
            "docs-documents-1-file": (io.BytesIO(EXE_BYTES), "report.pdf"),
        },
        content_type="multipart/form-data",
    )
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert field_error(page, "docs-documents-0-file") == (
        "Error: "
        "Not added yet, as something else on this form needs correcting. "
        "Please choose this file again."
    )
    assert "not a PDF, JPEG or PNG" in field_error(page, "docs-documents-1-file")
    assert 'value="Referral letter"' in page  # what was typed stays
    assert "docs-documents-2-file-error" not in page  # no file chosen there: nothing to say
    assert _request(app, booked["reference"]).documents == []


NOT_ADDED_YET = (
    "Error: Not added yet, as something else on this form needs correcting. "
    "Please choose this file again."
)
NOT_ADDED_WITH_OURS = (
    "Error: Not added yet: we could not store another file on this form just now, and the "
    "files are added together. Please choose this file again."
)


def _add_documents(client: FlaskClient, booked: dict, *files: tuple[bytes, str, str]) -> Any:
    """Post ``files`` (content, name, description) from the page's "Add documents" form."""
    page = client.get(booked["url"]).get_data(as_text=True)
    data: dict[str, Any] = {"docs-csrf_token": CSRF.search(page).group(1)}
    for index, (content, name, description) in enumerate(files):
        data[f"docs-documents-{index}-file"] = (io.BytesIO(content), name)
        data[f"docs-documents-{index}-description"] = description
    return client.post(booked["url"] + "/documents", data=data, content_type="multipart/form-data")


def test_a_file_the_service_refuses_is_named_and_the_others_are_chosen_again(
    app: Flask, client: FlaskClient, booked: dict, upload_dir: Path
) -> None:
    """One file the request already holds refuses them all (all or none): its own field says
    why, naming it, and the good one beside it says it was not added, its description kept,
    rather than one message above the form and no telling which to choose again."""
    assert _add_documents(client, booked, (pdf_bytes("MRI"), "mri.pdf", "")).status_code == 302
    response = _add_documents(
        client,
        booked,
        (pdf_bytes("CT"), "ct.pdf", "CT scan, May"),
        (pdf_bytes("MRI"), "mri-again.pdf", "MRI report"),
    )
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert field_error(page, "docs-documents-0-file") == NOT_ADDED_YET
    assert field_error(page, "docs-documents-1-file") == (
        "Error: “mri-again.pdf” is the same file as one you have already added."
    )
    assert 'value="CT scan, May"' in page and 'value="MRI report"' in page
    assert [d.original_name for d in _request(app, booked["reference"]).documents] == ["mri.pdf"]
    assert len(stored_files(upload_dir)) == 1  # the CT's copy, stored first, was deleted


def test_a_scanner_that_is_down_is_said_beside_the_file_and_the_others_are_chosen_again(
    app: Flask, client: FlaskClient, booked: dict, upload_dir: Path, tmp_path: Path
) -> None:
    app.config.update(CLAMAV_ENABLED=True, CLAMAV_ADDRESS=str(tmp_path / "nobody-listens.sock"))
    response = _add_documents(
        client,
        booked,
        (pdf_bytes("CT"), "ct.pdf", "CT scan"),
        (pdf_bytes("MRI"), "mri.pdf", "MRI report"),
    )
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert field_error(page, "docs-documents-0-file") == (
        "Error: We cannot check files for viruses at the moment, so this file was not saved. "
        "Please try again later."
    )
    assert field_error(page, "docs-documents-1-file") == NOT_ADDED_WITH_OURS
    assert 'value="CT scan"' in page and 'value="MRI report"' in page
    assert _request(app, booked["reference"]).documents == []
    assert stored_files(upload_dir) == []


def test_a_storage_failure_is_said_beside_the_file_and_the_others_are_chosen_again(
    app: Flask, client: FlaskClient, booked: dict, tmp_path: Path
) -> None:
    """Our storage fails (here its folder cannot be made: a file stands where it should be)."""
    blocked = tmp_path / "uploads-blocked"
    blocked.write_bytes(b"")
    app.config["UPLOAD_DIR"] = str(blocked)
    response = _add_documents(
        client,
        booked,
        (pdf_bytes("CT"), "ct.pdf", "CT scan"),
        (pdf_bytes("MRI"), "mri.pdf", "MRI report"),
    )
    assert response.status_code == 503
    page = response.get_data(as_text=True)
    assert field_error(page, "docs-documents-0-file") == (
        "Error: We could not store this file just now. Please try again."
    )
    assert field_error(page, "docs-documents-1-file") == NOT_ADDED_WITH_OURS
    assert 'value="CT scan"' in page and 'value="MRI report"' in page
    assert _request(app, booked["reference"]).documents == []


def test_documents_the_database_failed_to_store_are_said_not_added_and_nothing_is_kept(
    app: Flask,
    client: FlaskClient,
    booked: dict,
    upload_dir: Path,
    failing_commit: Callable[[], None],
) -> None:
    """The commit fails (the database restarting): the page again with a message, each file
    to choose again and the descriptions kept, rather than the bare 503 page; no file is
    left in the upload folder and no row; sent again, the documents are added."""
    page = client.get(booked["url"]).get_data(as_text=True)
    data = {
        "docs-csrf_token": CSRF.search(page).group(1),
        "docs-documents-0-description": "CT scan",
        "docs-documents-1-description": "MRI report",
    }

    def post() -> Any:
        files = {
            "docs-documents-0-file": (io.BytesIO(pdf_bytes("CT")), "ct.pdf"),
            "docs-documents-1-file": (io.BytesIO(pdf_bytes("MRI")), "mri.pdf"),
        }
        return client.post(
            booked["url"] + "/documents",
            data={**data, **files},
            content_type="multipart/form-data",
        )

    failing_commit()
    response = post()
    assert response.status_code == 503
    page = response.get_data(as_text=True)
    summary = page.split('id="error-summary"')[1].split("</div>")[0]
    assert (
        "Our system had a problem, so your documents were not added. Please choose them again "
        "in a few minutes."
    ) in summary
    for index in (0, 1):
        assert field_error(page, f"docs-documents-{index}-file") == (
            "Error: Not added: our system had a problem. Please choose it again in a few minutes."
        )
    assert 'value="CT scan"' in page and 'value="MRI report"' in page
    assert stored_files(upload_dir) == []
    with app.app_context():
        assert db.session.scalars(select(Document)).all() == []
        assert (
            db.session.scalar(
                select(func.count(AuditEvent.id)).where(
                    AuditEvent.action == "patient_added_documents"
                )
            )
            == 0
        )

    assert post().status_code == 302  # sent again
    names = [d.original_name for d in _request(app, booked["reference"]).documents]
    assert sorted(names) == ["ct.pdf", "mri.pdf"]
    assert len(stored_files(upload_dir)) == 2


def test_documents_the_database_cannot_say_it_stored_keep_their_files_and_say_so(
    app: Flask,
    client: FlaskClient,
    booked: dict,
    upload_dir: Path,
    failing_commit: Callable[[], None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The commit fails and the database cannot be asked whether it was stored after all
    (still failing): the files stay for the reconciliation, and the page says it cannot
    confirm, rather than "not added"."""

    def still_failing(_names: list[str]) -> bool:
        raise OperationalError("select", {}, Exception("the database system is shutting down"))

    monkeypatch.setattr("booking.manage.services.named_by_rows", still_failing)
    page = client.get(booked["url"]).get_data(as_text=True)
    failing_commit()
    response = client.post(
        booked["url"] + "/documents",
        data={
            "docs-csrf_token": CSRF.search(page).group(1),
            "docs-documents-0-file": (io.BytesIO(pdf_bytes("CT")), "ct.pdf"),
        },
        content_type="multipart/form-data",
    )
    assert response.status_code == 503
    assert "we cannot confirm that your documents were added" in response.get_data(as_text=True)
    assert len(stored_files(upload_dir)) == 1
    assert _request(app, booked["reference"]).documents == []


def test_more_files_than_the_request_has_room_for_keep_the_form_and_what_was_typed(
    app: Flask, client: FlaskClient, booked: dict, upload_dir: Path
) -> None:
    """Room for one more, two chosen: the limit is said on the form (it was a message above
    a blank form, every description typed gone), each file chosen again."""
    app.config["MAX_DOCUMENTS"] = 2
    assert _add_documents(client, booked, (pdf_bytes("MRI"), "mri.pdf", "")).status_code == 302
    response = _add_documents(
        client,
        booked,
        (pdf_bytes("CT"), "ct.pdf", "CT scan"),
        (pdf_bytes("X-ray"), "xray.pdf", "X-ray"),
    )
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    summary = page.split('id="error-summary"')[1].split("</div>")[0]
    assert "A request can hold at most 2 documents; you have 1 already." in summary
    assert field_error(page, "docs-documents-0-file") == NOT_ADDED_YET
    assert field_error(page, "docs-documents-1-file") == NOT_ADDED_YET
    assert 'value="CT scan"' in page and 'value="X-ray"' in page
    assert [d.original_name for d in _request(app, booked["reference"]).documents] == ["mri.pdf"]
    assert len(stored_files(upload_dir)) == 1

    # Full (a page opened before another window filled it): no form to say it on, but above.
    page = client.get(booked["url"]).get_data(as_text=True)
    app.config["MAX_DOCUMENTS"] = 1
    response = client.post(
        booked["url"] + "/documents",
        data={
            "docs-csrf_token": CSRF.search(page).group(1),
            "docs-documents-0-file": (io.BytesIO(pdf_bytes("CT")), "ct.pdf"),
        },
        content_type="multipart/form-data",
    )
    assert response.status_code == 409
    assert "A request can hold at most 1 document; you have 1 already." in response.get_data(
        as_text=True
    )


def _cancel(client: FlaskClient, booked: dict, reason: str) -> None:
    """The patient cancels from their page, giving ``reason``."""
    page = client.get(booked["url"]).get_data(as_text=True)
    response = client.post(
        booked["url"] + "/cancel",
        data={"cancel-csrf_token": CSRF.search(page).group(1), "cancel-reason": reason},
    )
    assert response.status_code == 302


def test_patient_cancels_and_the_time_is_free_again(
    app: Flask, client: FlaskClient, booked: dict
) -> None:
    _cancel(client, booked, "My back pain got much better.")
    consultation = _request(app, booked["reference"])
    assert consultation.status == RequestStatus.CANCELLED
    assert consultation.appointment.active is False
    with app.app_context():
        staff = db.session.scalars(
            select(OutboxEmail).where(OutboxEmail.template == "patient_action_staff")
        ).one()
        # What the patient wrote may be medical: it stays on the timeline, not in email.
        assert "back pain" not in staff.body_text
        # The freed time can be booked by someone else.
        make_request(
            email="next@example.com",
            slot=SlotChoice(
                consultation.appointment.appointment_type_id,
                consultation.appointment.specialist_id,
                consultation.appointment.location_id,
                booked["starts_at"],
            ),
        )
    # A closed request offers no changes.
    page = client.get(booked["url"]).get_data(as_text=True)
    assert "Cancel my request" not in page
    # It shows the time the request had, struck and said to be cancelled, not "No appointment".
    with app.app_context():
        cancelled_when = clinic_dt(booked["starts_at"], "when")
    assert f"<s>{cancelled_when}</s>" in page
    assert "Cancelled: this time is no longer kept for you." in page
    assert "No appointment." not in page
    # Its time picker (the Back button, the history) leads to the request's page, which
    # says how it stands, not to the cancelled time shown as the current one.
    back = client.get(booked["url"] + "/reschedule")
    assert back.status_code == 302 and back.headers["Location"] == booked["url"]


def test_an_urgent_patient_who_cancels_before_being_reached_is_flagged_to_the_clinic(
    app: Flask, client: FlaskClient, booked: dict
) -> None:
    """An urgent request cancelled before anyone reached the patient: they may have gone
    elsewhere, or may still need the call, and the clinic's notice says so first."""
    with app.app_context():
        db.session.execute(
            update(ConsultationRequest)
            .where(ConsultationRequest.reference == booked["reference"])
            .values(triage_level=TriageLevel.URGENT, priority=1, red_flags=["fever"])
        )
        db.session.commit()
    # Until the clinic reaches them, the private page repeats the advice they were given.
    page = client.get(booked["url"]).get_data(as_text=True)
    assert "Please contact your doctor today" in page
    _cancel(client, booked, "I went to my GP.")
    assert "Please contact your doctor today" not in client.get(booked["url"]).get_data(
        as_text=True
    )
    with app.app_context():
        staff = db.session.scalars(
            select(OutboxEmail).where(OutboxEmail.template == "patient_action_staff")
        ).one()
    assert staff.subject.startswith("URGENT, patient not reached yet: update on ")
    assert "nobody has reached the patient yet: please call them" in staff.body_text
    # That notice undelivered: the queue names the request, closed though it is.
    with app.app_context():
        make_staff("coordinator", "coord@example.com")
        db.session.execute(
            update(OutboxEmail).where(OutboxEmail.id == staff.id).values(status=OutboxStatus.FAILED)
        )
        db.session.commit()
    coordinator = app.test_client()
    AuthActions(coordinator).login("coordinator")
    queue = coordinator.get("/staff/").get_data(as_text=True)
    assert "Alerts about urgent requests could not be emailed" in queue
    banner = queue[queue.index('id="failed-alerts-heading"') :].split("</section>")[0]
    assert f"/staff/requests/{booked['reference']}" in banner


def test_a_spanish_speaking_patients_cancellation_reads_in_english_on_the_staff_timeline(
    app: Flask, client: FlaskClient, booked: dict
) -> None:
    """The patient's page is in Spanish; the timeline is the staff's, in the clinic's
    language, with what the patient wrote as they wrote it."""
    spanish = client.get(booked["url"] + "?lang=es").get_data(as_text=True)
    assert 'lang="es"' in spanish  # the switcher's choice stays for the cancel form too
    _cancel(client, booked, "Ya estoy mejor.")
    with app.app_context():
        notes = db.session.scalars(
            select(RequestEvent.body)
            .join(ConsultationRequest)
            .where(
                ConsultationRequest.reference == booked["reference"],
                RequestEvent.body.is_not(None),
            )
        ).all()
    assert notes == ["Cancelled by the patient. Ya estoy mejor."]


def test_changes_stop_inside_the_notice_period(
    app: Flask, client: FlaskClient, booked: dict
) -> None:
    with app.app_context():
        db.session.add(
            ClinicSettings(
                id=1,
                buffer_minutes=10,
                min_notice_hours=24,
                horizon_days=60,
                cancel_notice_hours=24 * 30,
            )
        )
        db.session.commit()
    page = client.get(booked["url"]).get_data(as_text=True)
    assert "no longer possible online" in page
    response = client.post(
        booked["url"] + "/cancel", data={"cancel-csrf_token": CSRF.search(page).group(1)}
    )
    assert response.status_code == 409
    # Refused: the reason is a message above the page, and the title says so first.
    assert "<title>Error: " in response.get_data(as_text=True)
    assert _request(app, booked["reference"]).status == RequestStatus.REQUESTED
    assert "<title>Error: " not in client.get(booked["url"]).get_data(as_text=True)


def test_every_patient_email_carries_a_working_link(
    app: Flask, client: FlaskClient, booked: dict
) -> None:
    with app.app_context():
        body = db.session.scalars(
            select(OutboxEmail.body_text).where(OutboxEmail.template == "request_received")
        ).one()
    link = re.search(r"https?://[^/\s]+(/manage/open/\S+)", body).group(1)
    opened = client.get(link)
    assert opened.status_code == 303
    assert opened.headers["Location"] == booked["url"]
    assert client.get(opened.headers["Location"]).status_code == 200


def test_database_refuses_a_second_active_appointment_row(app: Flask, booked: dict) -> None:
    """Sanity check that the fixture's hold went through the database guarantee."""
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Document)) == 0
        consultation = db.session.scalars(select(ConsultationRequest)).one()
        from booking.scheduling.models import Appointment

        twin = Appointment(
            request_id=make_request(email="twin@example.com").id,
            specialist_id=consultation.appointment.specialist_id,
            location_id=consultation.appointment.location_id,
            starts_at=consultation.appointment.starts_at,
            ends_at=consultation.appointment.ends_at,
            blocked_until=consultation.appointment.blocked_until,
            uid="twin@example.com",
            active=True,
        )
        db.session.add(twin)
        with pytest.raises(IntegrityError):
            db.session.commit()
        db.session.rollback()


def test_a_held_time_is_a_tentative_invitation_that_staff_confirmation_updates(
    app: Flask, booked: dict
) -> None:
    from icalendar import Calendar

    def event(template_subject: str) -> Any:
        with app.app_context():
            email = db.session.scalars(
                select(OutboxEmail)
                .where(OutboxEmail.subject.startswith(template_subject))
                .order_by(OutboxEmail.id.desc())
            ).first()
            (vevent,) = Calendar.from_ical(email.attachment_body).walk("VEVENT")
            return vevent

    received = event("We received your request")
    assert str(received["STATUS"]) == "TENTATIVE"
    assert received["ATTENDEE"].params["PARTSTAT"] == "TENTATIVE"  # held, not yet confirmed
    assert int(received["SEQUENCE"]) == 0
    with app.app_context():
        coordinator = make_staff("coordinator", "coord@example.com")
        consultation = db.session.scalars(select(ConsultationRequest)).one()
        appointment = consultation.appointment
        confirm_at(
            consultation,
            coordinator,
            appointment.appointment_type,
            appointment.starts_at,
            appointment.specialist_id,
            appointment.location_id,
        )
    confirmed = event("Your appointment is confirmed")
    assert str(confirmed["UID"]) == str(received["UID"])
    assert int(confirmed["SEQUENCE"]) == 1
    assert str(confirmed["STATUS"]) == "CONFIRMED"


@pytest.mark.parametrize("outcome", ["confirmed", "completed", "no_show"])
def test_a_closed_visit_offers_no_change_or_cancel_deadline(
    app: Flask, client: FlaskClient, outcome: str
) -> None:
    """A completed or missed appointment keeps its time on the page, but the page says
    nothing can be changed and never "You can change or cancel online until ..."; one past
    but not marked yet says its time has passed, not that it is soon."""
    from booking.dashboard import services as workflow

    with app.app_context():
        coordinator = make_staff("coordinator", "coord@example.com")
        specialist = make_staff("specialist", "weber@example.com", full_name="Dr. Weber")
        location = make_location()
        appointment_type = make_appointment_type()
        make_hours(specialist, location, range(7), "09:00", "17:00")
        consultation = make_request()
        workflow.confirm_request(
            consultation,
            coordinator,
            workflow.Slot(
                appointment_type,
                specialist,
                location,
                clinic_today() - timedelta(days=1),
                time(10),
            ),
        )
        if outcome == "completed":
            workflow.complete_request(consultation, coordinator, Plan.ADVICE)
        elif outcome == "no_show":
            workflow.mark_no_show(consultation, coordinator)
        url = open_manage_link(client, consultation)

    page = client.get(url).get_data(as_text=True)
    assert "Dr. Weber" in page  # the appointment is still shown
    if outcome == "confirmed":  # yesterday's, not marked by the clinic yet: not "soon"
        assert "The time of your appointment has passed" in page
        assert "no longer possible online" not in page and "change or cancel" not in page
        return
    assert "has passed" not in page
    assert "nothing can be changed here any more" in page
    assert "You can change or cancel online until" not in page
    assert "no longer possible online" not in page
    assert "Choose another time" not in page and "Cancel my request" not in page


def test_the_reschedule_picker_and_the_deadline_name_the_clinics_zone(
    client: FlaskClient, booked: dict
) -> None:
    """The times to move to are the clinic's, and the page says so in the reader's language
    as the first picker does; the request's page names the zone after the time until which
    it may be changed online (a patient of a video visit may be in another)."""
    english = client.get(booked["url"] + "/reschedule?lang=en").get_data(as_text=True)
    assert "slot-day" in english  # the times the sentence is about
    assert "All times are in the clinic's time zone, Germany (Berlin) Time." in english
    spanish = client.get(booked["url"] + "/reschedule?lang=es").get_data(as_text=True)
    assert (
        "Todas las horas son de la zona horaria de la clínica, hora de Alemania (Berlín)."
        in spanish
    )
    assert "Europe/Berlin" not in spanish
    page = client.get(booked["url"] + "?lang=en").get_data(as_text=True)
    deadline = (
        r"change or cancel online until \w{3} \d+ \w{3} \d{4}, \d\d:\d\d, Germany \(Berlin\) Time\."
    )
    assert re.search(deadline, page)


def _documents_section(page: str) -> str:
    start = page.index('aria-labelledby="docs-heading"')
    return page[start : page.index("</section>", start)]


def test_a_closed_requests_documents_are_none_not_none_yet(
    app: Flask, client: FlaskClient, booked: dict
) -> None:
    """An open request with no documents has none "yet" (the patient may add some); once
    closed nothing more can be added, and "None yet." would promise otherwise."""
    from booking.dashboard import services as workflow

    assert "<p>None yet.</p>" in _documents_section(
        client.get(booked["url"]).get_data(as_text=True)
    )
    with app.app_context():
        coordinator = make_staff("coordinator", "coord@example.com")
        consultation = db.session.scalars(
            select(ConsultationRequest).where(ConsultationRequest.reference == booked["reference"])
        ).one()
        workflow.decline_request(consultation, coordinator)

    section = _documents_section(client.get(booked["url"]).get_data(as_text=True))
    assert "<p>None.</p>" in section and "yet" not in section


def test_a_declined_request_shows_the_time_it_had_as_cancelled(
    app: Flask, client: FlaskClient, booked: dict
) -> None:
    """Staff decline a request holding a time: its page (which shows what happened) gives
    that time struck and cancelled, not "No appointment"."""
    from booking.dashboard import services as workflow

    with app.app_context():
        coordinator = make_staff("coordinator", "coord@example.com")
        consultation = db.session.scalars(
            select(ConsultationRequest).where(ConsultationRequest.reference == booked["reference"])
        ).one()
        workflow.decline_request(consultation, coordinator)
        cancelled_when = clinic_dt(booked["starts_at"], "when")

    page = client.get(booked["url"]).get_data(as_text=True)
    assert "nothing can be changed here any more" in page
    assert f"<s>{cancelled_when}</s>" in page
    assert "Cancelled: this time is no longer kept for you." in page
    assert "No appointment." not in page
