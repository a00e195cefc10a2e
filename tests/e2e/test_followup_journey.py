"""A follow-up after the visit in a real browser (issue #19): a Spanish-speaking patient
answers the 6-week questionnaire on a phone from the invitation's link, and the staff
record shows the change against the baseline, in its table and its chart."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from playwright.sync_api import BrowserContext, Page, expect
from sqlalchemy import select

from booking.extensions import db
from booking.notifications.models import OutboxEmail
from booking.outcomes import schedule
from booking.outcomes.services import send_due_followups
from booking.requests.models import ConsultationRequest
from tests.e2e.accessibility import assert_accessible, ax_controls, invalid_controls
from tests.e2e.conftest import PHONE, PHONE_WIDTH, TIMEOUT_MS, LiveServer
from tests.e2e.pages import FOLLOWUP_PAIN, answer_followup_improved, page_width, sign_in
from tests.factories import make_staff
from tests.support import PASSWORD
from tests.test_outcomes import _completed, _start

pytestmark = pytest.mark.e2e

COORDINATOR = "cora@example.com"
# The questionnaire's link (the email also has the same link + "/stop").
LINK = re.compile(r"(https?://\S+/follow-up/open/[A-Za-z0-9_-]+)(?!\S)")


def _six_week_link(server: LiveServer, consultation: ConsultationRequest) -> str:
    """The link of the six-week questionnaire's invitation, sent for ``consultation``."""
    send_due_followups(now=schedule.due_at(_start(consultation.id), "6w", server.tz))
    [invitation] = db.session.scalars(
        select(OutboxEmail).where(OutboxEmail.template == "followup_invitation")
    ).all()
    [link] = LINK.findall(invitation.body_text)
    return link


def test_a_patient_answers_on_a_phone_in_spanish_and_staff_see_the_change(
    page: Page, new_context: Callable[..., BrowserContext], live_server: LiveServer
) -> None:
    with live_server.app.app_context():
        make_staff("coordinator", COORDINATOR, full_name="Cora Coord", password=PASSWORD)
        consultation = _completed(locale="es", spine_region="lower_back")
        reference = consultation.reference
        link = _six_week_link(live_server, consultation)

    phone = new_context(**PHONE)
    phone.set_default_timeout(TIMEOUT_MS)
    patient = phone.new_page()
    patient.goto(link)
    expect(patient).to_have_url(re.compile(r"/follow-up/\d+/questionnaire"))
    patient.goto(patient.url + "?lang=es")  # the header's language switcher
    expect(patient.get_by_role("heading", level=1)).to_contain_text("¿Cómo se encuentra?")
    assert page_width(patient) <= PHONE_WIDTH
    assert_accessible(patient, "the follow-up questionnaire on a phone")

    answer_followup_improved(patient)
    patient.get_by_role("button", name="Enviar mis respuestas").click()
    expect(patient.get_by_role("heading", level=1)).to_have_text("Gracias")
    phone.close()

    # Staff see the change against the baseline: in the table, and drawn in the chart.
    sign_in(page, live_server, COORDINATOR)
    page.goto(live_server(f"/staff/requests/{reference}"))
    followup = page.get_by_role("region", name="Follow-up after the visit")
    table = followup.locator("#progress-table")
    odi = table.get_by_role("row").filter(
        has=page.get_by_role("rowheader", name="Oswestry Disability Index")
    )
    expect(odi).to_contain_text("50")
    expect(odi).to_contain_text("improved")
    back = table.get_by_role("row").filter(has_text="Back pain now")
    expect(back.first).to_contain_text("improved")
    expect(followup.locator("svg").first).to_be_visible()
    assert_accessible(page, "the record with a follow-up")
    # On a phone the charts scroll in their boxes, which a keyboard reaches.
    page.set_viewport_size({"width": PHONE_WIDTH, "height": 844})
    page.reload()
    assert_accessible(page, "the record with a follow-up on a phone")


def test_answers_too_few_to_count_are_announced_and_take_the_focus(
    page: Page, live_server: LiveServer
) -> None:
    """Shown again with status 200, the warning's role="alert" is on the page when it loads,
    which screen readers do not announce: the title says so first and the warning takes the
    focus, as a form's error summary does."""
    with live_server.app.app_context():
        consultation = _completed(spine_region="lower_back")
        link = _six_week_link(live_server, consultation)

    page.goto(link)
    expect(page).to_have_url(re.compile(r"/follow-up/\d+/questionnaire"))
    for name, value in FOLLOWUP_PAIN.items():
        page.locator(f"input[name={name}][value='{value}']").check()
    # Three sections of ten left out: a score needs eight.
    for section in ("pain_intensity", "personal_care", "lifting", "sleeping"):
        page.locator(f"input[name=odi_{section}][value='1']").check()
    page.locator("input[name=gpe][value='2']").check()
    page.locator("input[name=satisfaction][value='5']").check()
    page.get_by_role("button", name="Send my answers").click()

    warning = page.get_by_role("alert").filter(has_text="Some answers cannot be counted yet")
    expect(warning).to_be_visible()
    expect(warning).to_be_focused()
    expect(page).to_have_title(re.compile(r"^Please check: How are you doing\?"))


def test_the_questions_are_required_but_not_invalid_until_sent(
    page: Page, live_server: LiveServer
) -> None:
    """Every question of the questionnaire is required: a screen reader says so, and says
    "invalid" only of the questions left unanswered once the answers are sent, not of every
    question the moment the page opens."""
    with live_server.app.app_context():
        consultation = _completed(spine_region="lower_back")
        link = _six_week_link(live_server, consultation)

    page.goto(link)
    expect(page).to_have_url(re.compile(r"/follow-up/\d+/questionnaire"))
    assert not invalid_controls(page)
    groups = [c for c in ax_controls(page) if c["role"] == "radiogroup"]
    back_pain = page.get_by_role("radiogroup", name="Back pain right now")
    expect(back_pain).to_be_visible()
    assert any(c["name"] == "Back pain right now" and c["required"] for c in groups), groups

    page.locator("input[name=back_pain_now][value='1']").check()
    page.get_by_role("button", name="Send my answers").click()
    expect(page).to_have_title(re.compile(r"^Error: "))
    for radio in back_pain.get_by_role("radio").all():
        expect(radio).not_to_have_attribute("aria-invalid", "true")
    worst = page.get_by_role("radiogroup", name=re.compile(r"^Back pain at its worst"))
    for radio in worst.get_by_role("radio").all():
        expect(radio).to_have_attribute("aria-invalid", "true")
    assert any(name.startswith("radio") for name in invalid_controls(page))
