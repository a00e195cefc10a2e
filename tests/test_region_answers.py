"""The main problem decides what is asked and kept, through the request's steps: a neck patient
answers the NDI and rates neck and arm pain, a lower-back patient the ODI with back and leg
pain, both gets both. Staff see each instrument's score, band and every section's answer."""

from __future__ import annotations

import re
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from booking.extensions import db
from booking.requests.instruments import NDI, ODI
from booking.requests.models import ConsultationRequest, MedicalHistory
from tests.factories import make_request
from tests.support import (
    AuthActions,
    Staff,
    answer_red_flags,
    open_step,
    post_request,
    post_step,
    step_answers,
    valid_answers,
)

NECK_PAIN = {
    "neck_pain_now": "4",
    "neck_pain_worst": "6",
    "arm_pain_now": "2",
    "arm_pain_worst": "3",
}
# Every NDI section answered 2 but recreation: 18 of 45 points, 40%, moderate.
NDI_ANSWERS = {f"ndi_{key}": "2" for key in NDI.section_keys[:-1]}
NO_ODI = {f"odi_{key}": "" for key in ODI.section_keys}
NO_BACK_PAIN = dict.fromkeys(("back_pain_now", "back_pain_worst", "leg_pain_now", "leg_pain_worst"))


def stored_history(app: Flask) -> MedicalHistory:
    with app.app_context():
        history = db.session.scalars(select(ConsultationRequest)).one().history
        db.session.expunge(history)
        return history


def post(client: FlaskClient, **overrides: Any) -> None:
    response = post_request(client, valid_answers(**overrides))
    assert response.status_code == 303, response.get_data(as_text=True)[:2000]


def function_step(client: FlaskClient, region: str) -> str:
    """The "Pain and daily life" step of a patient whose main problem is ``region``."""
    assert (
        post_step(
            client, "symptoms", step_answers("symptoms", valid_answers(spine_region=region))
        ).status_code
        == 303
    )
    # Every page of the step (the pain scales, then the instruments' sections a few at a time).
    first = open_step(client, "function")
    total = int(re.search(r"part 1 of (\d+)", first).group(1))
    return first + "".join(open_step(client, f"function?page={n}") for n in range(2, total + 1))


def test_the_main_problem_decides_the_parts_asked_under_their_headings(
    client: FlaskClient,
) -> None:
    answer_red_flags(client)  # asked first
    assert "Where is your main problem?" in open_step(client, "symptoms")
    page = function_step(client, "both")
    # The lower back's part comes first on every page (the pain scales, then each instrument).
    lower_back = page.index("How your back pain affects daily life")
    neck = page.index("How your neck pain affects daily life")
    assert lower_back < neck
    assert (
        lower_back < page.index("Oswestry Disability Index") < page.index("Neck Disability Index")
    )
    assert "I can drive my car without any neck pain" in page
    assert 'name="neck_pain_now"' in page and 'name="back_pain_now"' in page

    neck_only = function_step(client, "neck")
    assert "Neck Disability Index" in neck_only and 'name="neck_pain_now"' in neck_only
    assert "Oswestry Disability Index" not in neck_only and 'name="back_pain_now"' not in neck_only
    lower_back_only = function_step(client, "lower_back")
    assert "Oswestry Disability Index" in lower_back_only
    assert "Neck Disability Index" not in lower_back_only


def test_a_neck_patient_answers_the_ndi_and_no_odi(app: Flask, client: FlaskClient) -> None:
    # The step asks only the neck's part: the lower back's answers are not sent.
    post(
        client,
        spine_region="neck",
        pain_locations=["neck", "arm"],
        **NO_BACK_PAIN,
        **NO_ODI,
        **NECK_PAIN,
        **NDI_ANSWERS,
    )
    history = stored_history(app)
    assert history.spine_region == "neck"
    assert (history.ndi_sections_answered, history.ndi_percent, history.ndi_band) == (
        9,
        40.0,
        "moderate",
    )
    assert history.ndi_answers == dict.fromkeys(NDI.section_keys[:-1], 2)
    assert (history.odi_answers, history.odi_sections_answered, history.odi_percent) == (
        {},
        0,
        None,
    )
    assert (history.neck_pain_now, history.neck_pain_worst) == (4, 6)
    assert (history.arm_pain_now, history.arm_pain_worst) == (2, 3)
    assert history.back_pain_now is None and history.pain_now is None


def test_answers_of_the_part_not_asked_are_not_kept(app: Flask, client: FlaskClient) -> None:
    # A patient who answered the neck's part, then went back and made the lower back the main
    # problem: the draft still holds the neck's answers, but the request does not keep them.
    answer_red_flags(client)
    neck = valid_answers(spine_region="neck", **NECK_PAIN, **NDI_ANSWERS)
    function_step(client, "neck")
    assert post_step(client, "function", step_answers("function", neck)).status_code == 303
    post(client, **NECK_PAIN, **NDI_ANSWERS)
    history = stored_history(app)
    assert history.spine_region == "lower_back"
    assert history.odi_percent == 40.0  # 18 / 45, the ODI of valid_answers
    assert (history.back_pain_now, history.back_pain_worst) == (5, 8)
    assert (history.leg_pain_now, history.leg_pain_worst) == (4, 7)
    assert history.ndi_answers == {} and history.ndi_percent is None
    assert history.neck_pain_now is None and history.arm_pain_worst is None


def test_a_patient_with_both_answers_both(app: Flask, client: FlaskClient) -> None:
    post(client, spine_region="both", **NECK_PAIN, **NDI_ANSWERS)
    history = stored_history(app)
    assert (history.odi_percent, history.ndi_percent) == (40.0, 40.0)
    assert (history.back_pain_now, history.neck_pain_now) == (5, 4)


def test_the_other_regions_pain_is_not_required_nor_compared(
    app: Flask, client: FlaskClient
) -> None:
    # A neck patient's empty back scores are fine; a lower-back patient's neck "worst below
    # now" is not their question, so it stops nothing.
    post(client, spine_region="neck", **NO_BACK_PAIN, **NECK_PAIN)
    post(client, neck_pain_now="8", neck_pain_worst="2")


def test_the_ndi_of_one_answered_section_is_not_scored(
    app: Flask, client: FlaskClient, auth: AuthActions, staff: Staff
) -> None:
    with app.app_context():
        reference = make_request(spine_region="neck", ndi_answers={"driving": 5}).reference
    auth.login("coordinator")
    page = client.get(f"/staff/requests/{reference}").get_data(as_text=True)
    assert "Neck Disability Index" in page and "Oswestry Disability Index" not in page
    assert "Not scored: 9 sections unanswered" in page
    assert "100.0%" not in page and "Extreme limitation" not in page
    assert "I cannot drive my car at all" in page  # the answer is still shown


def test_staff_see_both_instruments_with_scores_bands_and_pain_pairs(
    app: Flask, client: FlaskClient, auth: AuthActions, staff: Staff
) -> None:
    with app.app_context():
        reference = make_request(
            spine_region="both", ndi_answers=dict.fromkeys(NDI.section_keys, 1)
        ).reference
    auth.login("coordinator")
    page = client.get(f"/staff/requests/{reference}").get_data(as_text=True)
    assert "Lower back and neck" in page
    # The factory's ODI: 20 of 40 points, 50%, severe; the NDI: 10 of 50, 20%, mild.
    assert "50.0%" in page and "Severe limitation" in page and "20 of 40 points" in page
    assert "20.0%" in page and "Mild limitation" in page and "10 of 50 points" in page
    for area, now, worst in (("Back", 5, 8), ("Leg", 4, 7), ("Neck", 3, 6), ("Arm", 2, 5)):
        assert f'{area} pain (0-10)</dt><dd class="col-sm-8">now {now}, at worst {worst}' in page
    assert "Overall pain" not in page


def test_an_older_request_shows_its_odi_and_overall_pain(
    app: Flask, client: FlaskClient, auth: AuthActions, staff: Staff
) -> None:
    with app.app_context():
        consultation = make_request()
        # As the migration leaves a request made before the region was asked.
        history = consultation.history
        history.spine_region = None
        history.back_pain_now = history.back_pain_worst = None
        history.leg_pain_now = history.leg_pain_worst = None
        history.pain_now, history.pain_worst = 6, 9
        db.session.commit()
        reference = consultation.reference
    auth.login("coordinator")
    page = client.get(f"/staff/requests/{reference}").get_data(as_text=True)
    assert "Not asked (older request)" in page
    assert "Overall pain (0-10, older requests)" in page and "now 6, at worst 9" in page
    assert "Oswestry Disability Index" in page and "50.0%" in page
    assert "Neck Disability Index" not in page


def test_insights_count_requests_by_main_problem_and_summarise_each_instrument(
    app: Flask, client: FlaskClient, auth: AuthActions, staff: Staff
) -> None:
    with app.app_context():
        make_request()  # lower back: the factory's ODI, 50 %
        make_request(spine_region="neck", ndi_answers=dict.fromkeys(NDI.section_keys, 1))
        make_request(spine_region="neck", ndi_answers={"driving": 4})  # not scored
    auth.login("admin")
    page = client.get("/staff/insights").get_data(as_text=True)
    assert "Requests by main problem" in page
    assert '<th scope="row">Lower back</th><td>1</td>' in page
    assert '<th scope="row">Neck</th><td>2</td>' in page
    # Asked, scored, median.
    assert '<th scope="row">Neck Disability Index</th><td>2</td><td>1</td><td>20%</td>' in page
    assert '<th scope="row">Oswestry Disability Index</th><td>1</td><td>1</td><td>50%</td>' in page


def test_the_patients_privacy_export_reads_the_ndi_answers(app: Flask) -> None:
    from booking.rights.export import _label

    with app.test_request_context():
        text = _label("ndi_answers", {"driving": 5, "headaches": 0})
        assert "Headaches: I have no headaches at all (0)" in text
        assert "Driving: I cannot drive my car at all (5)" in text
        assert _label("ndi_band", "mild") == "Mild limitation"
        assert _label("spine_region", "both") == "Lower back and neck"
