"""Red flags to pathways (triage.py), and what the patient is told after sending a request:
emergency advice only for emergency flags, "contact your doctor today" for urgent ones, and
nothing alarming for a risk factor alone."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient

from booking.requests import triage
from booking.requests.triage import EMERGENCY, REVIEW, ROUTINE, URGENT, pathway
from tests.factories import make_request
from tests.support import AuthActions, Staff

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
        ({"cancer_history"}, REVIEW),
        # Weighed together: a symptom with the risk factor is urgent, an emergency sign wins.
        ({"cancer_history", "fever_weight_loss"}, URGENT),
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
    assert "A history of cancer" in page and "to review" in page
    assert "New loss of bladder or bowel control" in page and "emergency" in page
