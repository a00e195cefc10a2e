"""The whole request with the keyboard alone and JavaScript off (issue #16 asks for both: a
patient who cannot use a mouse, in a browser that runs no script): from the home page through
the questions about urgent symptoms, the time picker, every step and every part of a step,
a document and the send, to the confirmation; then the request as stored.

Only ``page.keyboard`` acts on the pages: Tab and Shift+Tab, the arrow keys in a group of
radio buttons, Space, Enter and typing; no click, no ``check()``. The file dialog belongs to
the operating system: Space on the file field opens it and Playwright answers it (see
``key_attach``); the button that sends the file is pressed with Enter.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, expect
from sqlalchemy import select

from booking.extensions import db
from booking.requests.models import ConsultationRequest
from tests.e2e.conftest import IMAGING_REVIEW, SPECIALIST, TIMEOUT_MS, LiveServer, seed_schedule
from tests.e2e.pages import (
    DESCRIPTION,
    PATIENT_EMAIL,
    expect_sent,
    group,
    key_answer_red_flags,
    key_choose,
    key_press_button,
    key_take_earliest_time,
    key_walk_steps,
    tab_to,
)

pytestmark = pytest.mark.e2e


def test_a_patient_sends_a_request_with_the_keyboard_alone_and_javascript_off(
    new_context: Callable[..., BrowserContext], live_server: LiveServer, pdf_file: Path
) -> None:
    seed_schedule(live_server)
    context = new_context(java_script_enabled=False)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.goto(live_server("/"))
    request_link = page.get_by_role("link", name="Request an evaluation").first
    tab_to(page, request_link, "the link to the request")
    page.keyboard.press("Enter")
    expect(page).to_have_url(live_server("/request/start"))
    key_answer_red_flags(page)
    expect(page).to_have_url(live_server("/request/time"))

    # Without the picker's script a type's times come with "Show the times" (which the script
    # hides).
    expect(page.get_by_role("button", name="Show the times")).to_be_visible()
    key_choose(page, "Type of appointment", IMAGING_REVIEW)
    key_press_button(page, "Show the times")
    expect(page).to_have_url(re.compile(r"/request/time\?type="))
    expect(group(page, "Type of appointment").get_by_label(IMAGING_REVIEW)).to_be_checked()
    key_take_earliest_time(page, live_server)

    # Every step and part, the document sent with "Add these files", consent, Send.
    key_walk_steps(page, document=pdf_file)
    reference = expect_sent(page, live_server)

    with live_server.app.app_context():
        [consultation] = db.session.scalars(select(ConsultationRequest)).all()
        patient, history = consultation.patient, consultation.history
        assert consultation.reference == reference
        assert (patient.full_name, patient.email) == ("Erika Mustermann", PATIENT_EMAIL)
        assert patient.date_of_birth.isoformat() == "1970-05-17"
        assert (patient.phone, patient.preferred_contact) == ("+4930901820", "email")
        assert consultation.appointment is not None
        assert consultation.appointment.specialist.full_name == SPECIALIST
        assert consultation.appointment.appointment_type.name == "Imaging review"
        assert sorted(history.pain_locations) == ["leg", "lower_back"]
        assert (history.spine_region, history.pain_duration) == ("lower_back", "3_12_months")
        assert (history.radiating_pain, history.numbness, history.weakness) == (True, True, False)
        assert (history.back_pain_now, history.back_pain_worst) == (5, 8)
        assert (history.leg_pain_now, history.leg_pain_worst) == (4, 7)
        assert history.imaging_when == "MRI in March 2026"
        assert (history.blood_thinners, history.diabetes, history.smoking) == (
            False,
            False,
            "never",
        )
        assert consultation.contact_consent is True
        assert [(d.original_name, d.description) for d in consultation.documents] == [
            ("mri-report.pdf", DESCRIPTION)
        ]
