"""A patient picks a time and sends a consultation request with a document in a real browser,
through the request's steps: on a desktop and with the keyboard alone; a patient with an
emergency answer is stopped (on a phone, with and without scripts), and one taken back is
kept over a reload or Back; the one-page form still shows its errors. Every control is found
the way a screen-reader user finds it: text fields by their label, choices by their group's
legend, buttons by their name. The steps themselves (phone, no scripts, reload, Back, finish
later) are in ``test_request_steps_journey.py``."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from babel.dates import format_datetime
from playwright.sync_api import Page, expect
from sqlalchemy import select

from booking.extensions import db
from booking.requests.models import ConsultationRequest, TriageLevel
from booking.timeutil import WHEN
from tests.e2e.conftest import (
    IMAGING_REVIEW,
    LOCATION,
    PHONE,
    PHONE_WIDTH,
    SPECIALIST,
    TIMEOUT_MS,
    LiveServer,
    seed_schedule,
)
from tests.e2e.pages import (
    DATES_LOCALE,
    NECK,
    SADDLE_NUMBNESS,
    TIMES_UPDATED,
    answer_red_flags,
    choose,
    expect_sent,
    expect_step,
    fill_about_you,
    fill_history,
    fill_steps_to_review,
    fill_symptoms,
    give_consent,
    group,
    key_answer_red_flags,
    key_choose,
    key_take_earliest_time,
    key_walk_steps,
    next_part,
    page_width,
    parts_of_step,
    pick_first_time,
    rate_pain,
    save_and_continue,
    send_from_review,
    shown_reference,
    tab_to,
    walk_steps,
)

pytestmark = pytest.mark.e2e


@dataclass(frozen=True)
class Stored:
    reference: str
    triage_level: TriageLevel
    starts_at: datetime | None
    specialist: str | None
    appointment_type: str | None
    documents: list[tuple[str, str, int, str | None]]


def stored_requests(live_server: LiveServer) -> list[Stored]:
    with live_server.app.app_context():
        return [
            Stored(
                reference=r.reference,
                triage_level=r.triage_level,
                starts_at=r.appointment.starts_at if r.appointment else None,
                specialist=r.appointment.specialist.full_name if r.appointment else None,
                appointment_type=(
                    r.appointment.appointment_type.name
                    if r.appointment and r.appointment.appointment_type
                    else None
                ),
                documents=[
                    (d.original_name, d.content_type, d.size_bytes, d.description)
                    for d in r.documents
                ],
            )
            for r in db.session.scalars(select(ConsultationRequest))
        ]


def shown_as(live_server: LiveServer, starts_at: datetime) -> str:
    return format_datetime(starts_at, WHEN, tzinfo=live_server.tz, locale=DATES_LOCALE)


def assert_stored_with_slot_and_document(
    live_server: LiveServer, reference: str, chosen: str, pdf: Path, triage: TriageLevel
) -> None:
    [stored] = stored_requests(live_server)
    assert stored.reference == reference
    assert stored.triage_level == triage
    assert stored.starts_at is not None
    assert shown_as(live_server, stored.starts_at) == chosen
    assert stored.specialist == SPECIALIST
    assert stored.appointment_type == "Imaging review"
    assert stored.documents == [
        ("mri-report.pdf", "application/pdf", pdf.stat().st_size, "MRI report, lumbar spine")
    ]


@pytest.fixture
def clinic(live_server: LiveServer) -> LiveServer:
    seed_schedule(live_server)
    return live_server


def test_patient_picks_a_time_and_sends_a_request_with_a_document(
    page: Page, clinic: LiveServer, pdf_file: Path
) -> None:
    chosen = pick_first_time(page, clinic, IMAGING_REVIEW)
    expect(page.get_by_text(f"{SPECIALIST} · {LOCATION}")).to_be_visible()

    walk_steps(page, document=pdf_file)

    expect(page).to_have_url(clinic("/request/submitted"))
    expect(page).to_have_title(re.compile(r"^Request sent"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Your request was sent")
    expect(page.get_by_text("Please seek emergency care now")).to_have_count(0)
    expect(page.get_by_text("We received 1 document.")).to_be_visible()
    reference = shown_reference(page)
    assert_stored_with_slot_and_document(clinic, reference, chosen, pdf_file, TriageLevel.ROUTINE)


def test_patient_on_a_phone_with_an_emergency_answer_is_stopped_and_can_ask_for_a_call_back(
    phone_page: Page, clinic: LiveServer
) -> None:
    """With JavaScript: the advice shows the moment "Yes" is ticked, before any other
    question; Continue leads to the stop page, not to a booking."""
    page = phone_page
    page.goto(clinic("/"))
    page.get_by_role("link", name="Request an evaluation").first.click()
    expect(page).to_have_url(clinic("/request/start"))
    advice = page.get_by_role("alert").filter(has_text="Please get emergency care now")
    expect(advice).to_be_hidden()
    choose(page, SADDLE_NUMBNESS, "Yes")
    expect(advice).to_be_visible()
    expect(advice).to_contain_text("Call 112 or go to the nearest emergency department now.")
    expect(advice.get_by_role("link", name="Call 112")).to_have_attribute("href", "tel:112")
    choose(page, SADDLE_NUMBNESS, "No")  # a slip of the finger takes it back
    expect(advice).to_be_hidden()
    answer_red_flags(page, yes=SADDLE_NUMBNESS)

    _stopped_and_called_back(page, clinic)


def test_an_emergency_yes_taken_back_on_the_page_is_kept_for_the_clinic(
    page: Page, clinic: LiveServer
) -> None:
    """The advice shows as "Yes" is ticked; a patient who then ticks "No" and goes on is
    not stopped, but the draft keeps the withdrawn answer, which makes the request urgent."""
    from booking.requests import drafts

    page.goto(clinic("/request/start"))
    choose(page, SADDLE_NUMBNESS, "Yes")
    expect(page.get_by_text("Please get emergency care now")).to_be_visible()
    answer_red_flags(page)  # every answer "No", then Continue
    expect(page).not_to_have_url(clinic("/request/emergency"))
    expect(page).not_to_have_url(clinic("/request/start"))
    with clinic.app.app_context():
        [draft] = db.session.scalars(select(drafts.RequestDraft)).all()
        assert drafts.withdrawn_red_flags(draft.values()) == ["saddle_numbness"]


def _reload(page: Page, _server: LiveServer) -> None:
    page.reload()


def _away_and_back(page: Page, server: LiveServer) -> None:
    page.goto(server("/"))
    page.go_back()


@pytest.mark.parametrize(
    ("taken_back", "come_back"),
    [(True, _reload), (True, _away_and_back), (False, _away_and_back)],
    ids=["yes then no, reload", "yes then no, away and back", "yes, away and back, then no"],
)
def test_an_emergency_yes_taken_back_is_kept_over_a_reload_or_back(
    page: Page,
    live_server: LiveServer,
    taken_back: bool,
    come_back: Callable[[Page, LiveServer], None],
) -> None:
    """A cauda equina symptom ticked "Yes" (its advice read), then "No", the page reloaded
    or left and opened again with Back: the request is still urgent, with the withdrawn
    answer. A "Yes" the browser ticks again on Back shows its advice again."""
    page.goto(live_server("/request/start"))
    page.wait_for_load_state("load")  # the script (deferred) listens
    advice = page.get_by_role("alert").filter(has_text="Please get emergency care now")
    choose(page, SADDLE_NUMBNESS, "Yes")
    expect(advice).to_be_visible()
    if taken_back:
        choose(page, SADDLE_NUMBNESS, "No")
    come_back(page, live_server)
    page.wait_for_load_state("load")
    if not taken_back:  # Chromium ticks the answers again on Back (not on a reload)
        expect(group(page, SADDLE_NUMBNESS).get_by_label("Yes", exact=True)).to_be_checked()
        expect(advice).to_be_visible()
    answer_red_flags(page)  # every answer "No", then Continue
    fill_steps_to_review(page)
    give_consent(page)
    page.get_by_role("button", name="Send my request").click()
    expect(page).to_have_url(live_server("/request/submitted"))
    heading = page.get_by_role("heading", level=1)
    expect(heading).to_have_text("We will call you to check your answers")

    with live_server.app.app_context():
        [consultation] = db.session.scalars(select(ConsultationRequest)).all()
        assert consultation.withdrawn_red_flags == ["saddle_numbness"]
        assert consultation.triage_level == TriageLevel.URGENT


def test_without_javascript_an_emergency_answer_stops_on_the_next_page(
    new_context: Any, clinic: LiveServer
) -> None:
    context = new_context(java_script_enabled=False, **PHONE)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.goto(clinic("/request/start"))
    answer_red_flags(page, yes=SADDLE_NUMBNESS, send=False)
    # Without the script nothing shows on the page itself ...
    expect(page.get_by_text("Please get emergency care now")).to_be_hidden()
    page.get_by_role("button", name="Continue").click()
    # ... and the server answers with the same instruction, first.
    _stopped_and_called_back(page, clinic)


def _stopped_and_called_back(page: Page, server: LiveServer) -> None:
    expect(page).to_have_url(server("/request/emergency"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Please get emergency care now")
    expect(page.get_by_role("link", name="Call 112")).to_be_visible()
    expect(page.get_by_role("button", name="Send my request")).to_have_count(0)
    expect(page.get_by_text("Choose a time")).to_have_count(0)
    assert page_width(page) <= PHONE_WIDTH, "the stop page scrolls sideways"

    page.get_by_label("Your name").fill("Jonas Weber")
    page.get_by_label("Your phone number").fill("030 901820")
    page.get_by_role("button", name="Ask the clinic to call me back").click()
    expect(page).to_have_url(server("/request/emergency/call-back"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Please get emergency care now")
    expect(page.get_by_text("will call you on +49 30 901820")).to_be_visible()
    reference = shown_reference(page)
    with server.app.app_context():
        consultation = db.session.scalars(
            select(ConsultationRequest).where(ConsultationRequest.reference == reference)
        ).one()
        assert consultation.triage_level == TriageLevel.EMERGENCY
        assert consultation.red_flags == ["saddle_numbness"]
        assert consultation.history is None


def test_patient_sends_a_request_with_a_time_and_a_document_with_the_keyboard_alone(
    page: Page, clinic: LiveServer, pdf_file: Path
) -> None:
    """Tab, the arrow keys, Space and Enter only: no click, no tap from start to end."""
    page.goto(clinic("/"))
    request_link = page.get_by_role("link", name="Request an evaluation").first
    tab_to(page, request_link, "the link to the request")
    page.keyboard.press("Enter")
    expect(page).to_have_url(clinic("/request/start"))
    key_answer_red_flags(page)
    expect(page).to_have_url(clinic("/request/time"))

    # The appointment type: into the group, down to the second type; its times follow.
    key_choose(page, "Type of appointment", IMAGING_REVIEW)
    expect(page.locator("#picker-status")).to_have_text(TIMES_UPDATED)
    expect(page).to_have_url(re.compile(r"/request/time\?type="))
    expect(group(page, "Type of appointment").get_by_label(IMAGING_REVIEW)).to_be_checked()

    # Tab enters the times on the earliest one; Space takes it.
    chosen = key_take_earliest_time(page, clinic)
    key_walk_steps(page, document=pdf_file)
    reference = expect_sent(page, clinic)
    assert_stored_with_slot_and_document(clinic, reference, chosen, pdf_file, TriageLevel.ROUTINE)


def test_a_step_with_errors_is_shown_again_with_a_summary_and_the_answers_kept(
    page: Page, live_server: LiveServer
) -> None:
    """The about-you step refuses a missing name and a malformed email address: a summary
    that links to each field, each message tied to its field, the other answers kept."""
    page.goto(live_server("/request/start"))
    answer_red_flags(page)  # without times to pick, the steps follow
    expect_step(page, "time")
    save_and_continue(page, "about")
    fill_about_you(page, name="", email="erika.mustermann@")
    page.get_by_role("button", name="Save and continue").click()

    expect(page).to_have_title(re.compile(r"^Error: Step 2 of 7: About you"))
    summary = page.get_by_role("alert").filter(
        has=page.get_by_role("heading", name="Please correct the following")
    )
    expect(summary).to_be_visible()
    expect(summary).to_be_focused()  # errors.js: a keyboard or screen reader starts there
    name_link = summary.get_by_role("link", name="Full name: Please enter your full name.")
    email_link = summary.get_by_role(
        "link", name="Email address: Please enter a valid email address, like name@example.com."
    )
    expect(summary.get_by_role("link")).to_have_count(2)
    expect(name_link).to_have_attribute("href", "#full_name")
    expect(email_link).to_have_attribute("href", "#email")

    # Each message is tied to its field, so a screen reader reads it with the field.
    full_name = page.get_by_label("Full name", exact=True)
    email = page.get_by_label("Email address", exact=True)
    expect(full_name).to_have_attribute("aria-invalid", "true")
    expect(full_name).to_have_accessible_description("Error: Please enter your full name.")
    expect(email).to_have_attribute("aria-invalid", "true")
    expect(email).to_have_accessible_description(
        "Error: Please enter a valid email address, like name@example.com."
    )

    # Nothing the patient typed or chose is lost.
    expect(full_name).to_have_value("")
    expect(email).to_have_value("erika.mustermann@")
    expect(page.get_by_label("Date of birth", exact=True)).to_have_value("1970-05-17")
    expect(page.get_by_label("Phone number", exact=True)).to_have_value("+49 30 901820")
    expect(
        group(page, "How should we contact you?").get_by_label("Email", exact=True)
    ).to_be_checked()

    # The summary's link takes the patient to the field to correct.
    email_link.click()
    expect(email).to_be_focused()

    # ... and saved as typed: a reload shows them again (without the messages).
    page.reload()
    expect(page.get_by_label("Email address", exact=True)).to_have_value("erika.mustermann@")
    expect(page.get_by_label("Phone number", exact=True)).to_have_value("+49 30 901820")
    assert stored_requests(live_server) == []


def test_a_neck_patient_answers_the_ndi(page: Page, clinic: LiveServer) -> None:
    """The pain and daily life step asks the neck's questions only, of a neck patient."""
    pick_first_time(page, clinic, IMAGING_REVIEW)
    save_and_continue(page, "about")
    fill_about_you(page)
    save_and_continue(page, "symptoms")
    fill_symptoms(page, NECK)
    save_and_continue(page, "function")
    neck_part = page.get_by_role("region", name="How your neck pain affects daily life")
    expect(neck_part).to_be_visible()
    expect(page.get_by_role("region", name="How your back pain affects daily life")).to_have_count(
        0
    )
    expect(group(page, "Back pain right now")).to_have_count(0)
    parts = parts_of_step(page)
    rate_pain(page, NECK)
    # The NDI's sections, a few a part: each answered on the part that asks it.
    sections = {
        "Pain intensity": "The pain is moderate at the moment",
        "Lifting": "I can lift heavy weights but it gives extra pain",
        "Reading": "I can read as much as I want to with slight pain in my neck",
        "Headaches": "I have moderate headaches which come infrequently",
        "Concentration": "I can concentrate fully when I want to with no difficulty",
        "Work": "I can only do my usual work, but no more",
        "Driving": "I cannot drive my car as long as I want because of moderate pain in my neck",
        "Sleeping": "My sleep is mildly disturbed (1 to 2 hours sleepless)",
        "Recreation": "I am able to do all my recreation activities, with some pain in my neck",
    }
    answered = []
    for number in range(2, parts + 1):
        next_part(page, number, parts)
        for section, statement in sections.items():
            if group(page, section).count():
                choose(page, section, statement)
                answered.append(section)
    assert answered == list(sections)
    save_and_continue(page, "history")
    fill_history(page)
    save_and_continue(page, "documents")
    save_and_continue(page, "review")
    send_from_review(page)

    expect(page.get_by_role("heading", level=1)).to_have_text("Your request was sent")
    with clinic.app.app_context():
        history = db.session.scalars(select(ConsultationRequest)).one().history
        assert history.spine_region == "neck"
        # Personal care skipped: 1 + 2 + 3 + 0 + 1 + 1 + 2 + 1 + 2 = 13 of 45 points.
        assert history.ndi_sections_answered == 9
        assert history.ndi_percent == 28.9
        assert history.ndi_band == "mild"
        assert (history.neck_pain_now, history.arm_pain_worst) == (4, 3)
        assert history.odi_answers == {} and history.back_pain_now is None
