"""Red flags to pathways (triage.py), and what the patient is told after sending a request:
emergency advice only for emergency flags, "contact your doctor today" for urgent ones, and
nothing alarming for a risk factor alone."""

from __future__ import annotations

import html
from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from booking.extensions import db
from booking.notifications.models import OutboxEmail
from booking.requests import triage
from booking.requests.triage import EMERGENCY, REVIEW, ROUTINE, URGENT, pathway
from booking.scheduling.availability import open_slots
from booking.scheduling.models import AppointmentType
from booking.scheduling.services import SlotChoice
from booking.timeutil import clinic_dt, now_utc
from tests.factories import make_request
from tests.support import AuthActions, Clinic, Staff

EMERGENCY_TITLE = "Please seek emergency care now"
URGENT_TITLE = "Please contact your doctor today"


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (set(), ROUTINE),
        ({"bladder_bowel"}, EMERGENCY),
        ({"saddle_numbness"}, EMERGENCY),
        ({"progressive_weakness"}, EMERGENCY),
        ({"fever_weight_loss"}, URGENT),
        ({"serious_injury"}, URGENT),
        ({"urinary_retention"}, EMERGENCY),
        ({"sexual_dysfunction"}, EMERGENCY),
        ({"both_legs"}, EMERGENCY),
        ({"clumsy_hands"}, EMERGENCY),
        ({"unsteady_walking"}, EMERGENCY),
        ({"fever"}, URGENT),
        ({"iv_drug_use"}, URGENT),
        ({"weak_immunity"}, URGENT),
        ({"recent_procedure"}, URGENT),
        ({"fragile_bones"}, URGENT),
        ({"minor_fall_over_50"}, URGENT),
        # Risk factors alone: reviewed, no alarm (Finucane 2020).
        ({"cancer_history"}, REVIEW),
        ({"night_pain"}, REVIEW),
        ({"weight_loss"}, REVIEW),
        # Weighed together: cancer history with a symptom, or two symptoms, is urgent.
        ({"cancer_history", "night_pain"}, URGENT),
        ({"cancer_history", "weight_loss"}, URGENT),
        ({"night_pain", "weight_loss"}, URGENT),
        ({"cancer_history", "fever_weight_loss"}, URGENT),
        # An emergency sign wins over everything.
        ({"cancer_history", "serious_injury", "saddle_numbness"}, EMERGENCY),
    ],
)
def test_flags_point_to_the_most_pressing_pathway(flags: set[str], expected: str) -> None:
    assert pathway(flags) == expected
    assert triage.is_urgent(flags) == (expected in (EMERGENCY, URGENT))


def test_every_flag_has_a_pathway_with_advice_or_a_staff_label() -> None:
    for flag in triage.RED_FLAGS:
        assert flag.pathway in (EMERGENCY, URGENT, REVIEW)
        assert flag.pathway in triage.PATHWAY_LABELS and flag.suspected
        assert flag.group in triage.GROUP_BY_CODE
    for combination in triage.COMBINATIONS:
        assert combination.codes <= set(triage.BY_CODE) and combination.reason
    # Every asked question is on the step, in a group.
    assert sum(len(flags) for _group, flags in triage.groups()) == len(triage.ASKED)
    assert set(triage.ADVICE) == set(triage.ADVICE_TITLE) == {EMERGENCY, URGENT}


def test_an_unknown_flag_is_refused() -> None:
    with pytest.raises(ValueError, match="headache"):
        pathway({"headache"})


def _submitted_page(app: Flask, client: FlaskClient, flags: set[str], locale: str = "en") -> str:
    with app.app_context():
        consultation = make_request(red_flags=flags, locale=locale)
        reference = consultation.reference
    with client.session_transaction() as session:
        session["submitted_reference"] = reference
    return client.get(f"/request/submitted?lang={locale}").get_data(as_text=True)


@pytest.mark.parametrize(
    ("flags", "emergency", "urgent"),
    [
        ({"saddle_numbness"}, True, False),
        ({"serious_injury"}, False, True),
        ({"cancer_history"}, False, False),
        (set(), False, False),
    ],
)
def test_the_confirmation_gives_the_advice_of_the_pathway(
    app: Flask, client: FlaskClient, flags: set[str], emergency: bool, urgent: bool
) -> None:
    page = _submitted_page(app, client, flags)
    assert "Your request was sent" in page
    assert (EMERGENCY_TITLE in page) == emergency
    assert (URGENT_TITLE in page) == urgent


def test_the_staff_record_labels_each_flag_with_its_pathway(
    app: Flask, client: FlaskClient, auth: AuthActions, staff: Staff
) -> None:
    with app.app_context():
        reference = make_request(red_flags={"cancer_history", "bladder_bowel"}).reference
    auth.login("coordinator")
    page = client.get(f"/staff/requests/{reference}").get_data(as_text=True)
    assert "Have you ever had cancer?" in page and "to review" in page
    assert "lost control of your bladder or bowels" in page and "emergency" in page


@pytest.mark.parametrize(
    ("flags", "together"),
    [
        ({"cancer_history", "night_pain"}, True),  # each "to review" alone
        ({"cancer_history", "weight_loss", "fever"}, True),  # urgent anyway, and this too
        ({"cancer_history"}, False),
    ],
)
def test_staff_read_why_answers_together_made_the_request_urgent(
    app: Flask,
    client: FlaskClient,
    auth: AuthActions,
    staff: Staff,
    flags: set[str],
    together: bool,
) -> None:
    """Each answer of a combination (``triage.COMBINATIONS``) may say only "to review": the
    record and the intake summary say why the request is urgent; the clinic's email says a
    combination decided it, and leaves the reason (a patient detail) to the record."""
    (combination,) = triage.COMBINATIONS
    with app.app_context():
        consultation = make_request(red_flags=flags)
        reference = consultation.reference
        assert consultation.is_urgent == together
        notice = db.session.scalars(
            select(OutboxEmail).where(OutboxEmail.template == "new_request_staff")
        ).one()
    auth.login("coordinator")
    for path in (f"/staff/requests/{reference}", f"/staff/requests/{reference}/summary"):
        page = client.get(path).get_data(as_text=True)
        assert (combination.reason in page) == together, path
        assert ("Together, these answers make the request urgent:" in page) == together, path
    # The email says a combination decided it only where no answer alone would have: a
    # fever is urgent alone, so it does not with one.
    decided = together and "fever" not in flags
    for body in (notice.body_text, html.unescape(notice.body_html)):
        assert ("A combination of the patient's answers, not one alone" in body) == decided
        assert "metastasis" not in body and "cancer" not in body


def test_the_queue_marks_a_routine_request_with_a_risk_factor_to_review(
    app: Flask, client: FlaskClient, auth: AuthActions, staff: Staff
) -> None:
    """A risk factor alone keeps a request routine, but the queue row says it holds one."""
    with app.app_context():
        flagged = make_request(red_flags={"cancer_history"}).reference
        plain = make_request().reference
    auth.login("coordinator")
    page = client.get("/staff/").get_data(as_text=True)

    def row(reference: str) -> str:
        start = page.index(reference)
        return page[page.rindex("<tr", 0, start) : page.index("</tr>", start)]

    assert "risk factor to review" in row(flagged)
    assert "risk factor to review" not in row(plain)


@pytest.mark.parametrize(
    ("flags", "first_line"),
    [
        ({"bladder_bowel"}, "*** Please seek emergency care now ***"),
        ({"fever_weight_loss"}, "*** Please contact your doctor today ***"),
        ({"cancer_history"}, None),
        (set(), None),
    ],
)
def test_the_patients_receipt_repeats_the_advice_first_without_naming_the_flags(
    app: Flask, flags: set[str], first_line: str | None
) -> None:
    with app.app_context():
        consultation = make_request(red_flags=flags)
        receipt = db.session.scalars(
            select(OutboxEmail).where(
                OutboxEmail.request_id == consultation.id,
                OutboxEmail.template == "request_received",
            )
        ).one()
    lines = receipt.body_text.lstrip().splitlines()
    if first_line is None:
        assert lines[0].startswith("Dear ")
        assert "Please seek emergency care now" not in receipt.body_text
        assert "Please contact your doctor today" not in receipt.body_text
    else:
        assert lines[0] == first_line
        assert first_line.strip("* ") in receipt.body_html
        assert receipt.body_html.index(first_line.strip("* ")) < receipt.body_html.index("Dear ")
    for flag in triage.RED_FLAGS:  # the flags themselves stay inside the dashboard
        assert str(flag.question) not in receipt.body_text


def test_the_confirmation_shows_the_time_the_patient_holds(
    app: Flask, client: FlaskClient, clinic: Clinic
) -> None:
    with app.app_context():
        appointment_type = db.session.get(AppointmentType, clinic.type)
        start = now_utc() + timedelta(days=3)
        slot = open_slots(appointment_type, start, start + timedelta(days=7))[0]
        consultation = make_request(
            slot=SlotChoice(
                appointment_type.id, slot.specialist_id, slot.location_id, slot.starts_at
            )
        )
        reference = consultation.reference
        when = clinic_dt(slot.starts_at, "full")
    with client.session_transaction() as session:
        session["submitted_reference"] = reference
    page = client.get("/request/submitted").get_data(as_text=True)
    assert "which we hold for you until we confirm it" in page
    assert html.escape(when) in page or when in page
    assert "We confirm the time you hold" in page
    assert "We contact you to offer an appointment" not in page


def test_an_answer_withdrawn_from_an_urgent_combination_keeps_the_request_urgent() -> None:
    """A history of cancer with night pain is urgent only together (``COMBINATIONS``): the
    patient who read "contact your doctor today" and then took back the night pain kept the
    cancer history, which alone is only a risk factor. The request was routine, nothing
    alerted; it is urgent, as any withdrawn urgent answer makes it."""
    assert triage.level({"cancer_history"}, {"night_pain"}) == URGENT
    assert triage.level(set(), {"night_pain", "weight_loss"}) == URGENT
    assert triage.level({"cancer_history"}) == ROUTINE  # nothing withdrawn
    assert triage.level(set(), {"night_pain"}) == ROUTINE  # alone, never urgent
    assert triage.advice({"cancer_history"}, {"night_pain"}) == triage.WITHDRAWN_ADVICE
