"""A step shown in parts, so each fits about two screens of a phone (issue #16): the health and
treatment step asks what is wrong and what was tried, then medicines and general health; the
pain and daily life step, the pain scales then the instrument's sections two at a time.

Driven through the real pages with the test client (CSRF on, each part opened and posted as a
browser does); what the draft keeps is read back from the database.
"""

from __future__ import annotations

import re
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

from booking.extensions import db
from booking.patients import steps
from booking.requests.drafts import RequestDraft
from booking.requests.instruments import NDI, ODI
from tests.support import (
    answer_red_flags,
    as_lists,
    fill_every_step,
    open_step,
    page_token,
    post_step,
    requests_stored,
    step_answers,
    valid_answers,
)

HISTORY = step_answers("history")
# The answers a browser posts that are no question of the step.
NOT_ANSWERS = {"csrf_token", "draft_page", "page", "then"}


def asked_on(page: str) -> set[str]:
    """The names of the questions a step's page asks."""
    names = set(re.findall(r'<(?:input|textarea|select)\b[^>]*\bname="([^"]+)"', page))
    return names - NOT_ANSWERS


def post_part(
    client: FlaskClient,
    code: str,
    page: int,
    data: dict[str, Any],
    nav: str = "next",
    then: str | None = None,
) -> TestResponse:
    """Open part ``page`` of step ``code`` (from the review with ``then``) and post ``data``
    with the page's token and its hidden fields, as the browser sends them."""
    query = f"?page={page}" + (f"&then={then}" if then else "")
    shown = open_step(client, f"{code}{query}")
    payload = {**data, "csrf_token": page_token(shown), "page": str(page), "nav": nav}
    if then:
        assert f'name="then" value="{then}"' in shown  # the page carries it on
        payload["then"] = then
    return client.post(f"/request/steps/{code}", data=payload)


def saved(app: Flask) -> tuple[str, dict[str, list[str]]]:
    """The draft's furthest step and its answers."""
    with app.app_context():
        draft = db.session.scalars(select(RequestDraft)).one()
        return draft.step, draft.values()


def test_the_history_step_is_two_parts_that_ask_each_of_its_questions_once() -> None:
    answers = as_lists(valid_answers())
    parts = steps.pages("history", answers)
    assert parts == [steps.HISTORY_TREATMENT, steps.HISTORY_HEALTH]
    asked = [name for part in parts for name in part]
    assert len(asked) == len(set(asked)) == 12
    assert steps.fields_of("history", answers) == tuple(asked)
    assert steps.fields_of("history", answers, 2) == steps.HISTORY_HEALTH
    assert steps.fields_of("history", answers, 3) == ()
    assert steps.pages_of("history", answers) == 2
    # A part from the address or the form stays within the step's parts.
    shown = [steps.page_arg("history", answers, value) for value in ("2", "9", "0", "two", None)]
    assert shown == [2, 2, 1, 1, 1]
    # A step not shown in parts is one page of all its questions.
    assert steps.pages("about", answers) == [steps.BY_CODE["about"].fields]
    assert steps.pages_of("about", answers) == 1
    assert steps.page_arg("about", answers, "2") == 1


def test_the_function_step_is_parts_of_at_most_four_pain_scales_or_two_sections() -> None:
    odi = [f"odi_{key}" for key in ODI.section_keys]
    ndi = [f"ndi_{key}" for key in NDI.section_keys]
    back = ("back_pain_now", "back_pain_worst", "leg_pain_now", "leg_pain_worst")
    neck = ("neck_pain_now", "neck_pain_worst", "arm_pain_now", "arm_pain_worst")
    pairs = [tuple(names[i : i + 2]) for names in (odi, ndi) for i in range(0, 10, 2)]
    assert steps.pages("function", {"spine_region": ["lower_back"]}) == [back, *pairs[:5]]
    assert steps.pages("function", {"spine_region": ["neck"]}) == [neck, *pairs[5:]]
    # Both: eight pain scales were one part too tall for a phone; they are two.
    assert steps.pages("function", {"spine_region": ["both"]}) == [back, neck, *pairs]
    # Without a main problem the step asks nothing (the view sends the patient back).
    assert steps.pages("function", {}) == [] and steps.pages_of("function", {}) == 1
    assert steps.even_pages(list("abcdefghij"), 4) == [
        ("a", "b", "c", "d"),
        ("e", "f", "g"),
        ("h", "i", "j"),
    ]


def test_each_part_asks_its_own_questions_and_saves_only_them(
    app: Flask, client: FlaskClient
) -> None:
    answer_red_flags(client)
    first = open_step(client, "history")
    assert "Step 5 of 7: Health and treatment" in first and "(part 1 of 2)" in first
    assert asked_on(first) == set(steps.HISTORY_TREATMENT)
    assert 'name="page" value="1"' in first

    # Every answer of the step posted on the first part: only the first part's are taken.
    response = post_part(client, "history", 1, HISTORY)
    assert response.status_code == 303
    assert response.location == "/request/steps/history?page=2"
    reached, answers = saved(app)
    assert reached == "history"  # the step is not done yet
    assert answers["diagnoses"] == ["herniated_disc"]
    assert not set(steps.HISTORY_HEALTH) & set(answers)

    second = open_step(client, "history?page=2")
    assert "(part 2 of 2)" in second
    assert asked_on(second) == set(steps.HISTORY_HEALTH)
    response = post_part(client, "history", 2, HISTORY)
    assert response.status_code == 303 and response.location == "/request/steps/documents"
    reached, answers = saved(app)
    assert reached == "documents"
    assert answers["smoking"] == ["never"] and answers["diagnoses"] == ["herniated_disc"]

    # Posting the first part again leaves the second part's answers as they were.
    changed = {**HISTORY, "diagnosis_other": "Scoliosis", "smoking": "current"}
    assert post_part(client, "history", 1, changed).status_code == 303
    _reached, answers = saved(app)
    assert answers["diagnosis_other"] == ["Scoliosis"] and answers["smoking"] == ["never"]
    # An address past the last part shows the last.
    assert "(part 2 of 2)" in open_step(client, "history?page=7")


def test_back_goes_part_by_part_and_keeps_what_was_typed(app: Flask, client: FlaskClient) -> None:
    answer_red_flags(client)
    assert post_step(client, "symptoms").status_code == 303  # the main problem: the lower back
    function_parts = steps.pages_of("function", as_lists(valid_answers()))
    assert function_parts > 1

    # Back from the documents: the history step's last part.
    back = post_part(client, "documents", 1, {}, nav="back")
    assert back.status_code == 303 and back.location == "/request/steps/history?page=2"
    # Back from the second part: the first, with what was typed on the second saved.
    back = post_part(client, "history", 2, {"medications": "Ibuprofen 400 mg"}, nav="back")
    assert back.status_code == 303 and back.location == "/request/steps/history?page=1"
    assert "Ibuprofen 400 mg" in open_step(client, "history?page=2")
    # Back from the first part: the last part of the step before.
    back = post_part(client, "history", 1, {"surgery_details": "Discectomy 2019"}, nav="back")
    assert back.status_code == 303
    assert back.location == f"/request/steps/function?page={function_parts}"
    _reached, answers = saved(app)
    assert answers["surgery_details"] == ["Discectomy 2019"]


def test_a_missing_answer_is_shown_on_its_part_with_the_others_kept(
    app: Flask, client: FlaskClient
) -> None:
    answer_red_flags(client)
    assert post_part(client, "history", 1, HISTORY).status_code == 303
    without = {name: value for name, value in HISTORY.items() if name != "smoking"}
    response = post_part(client, "history", 2, without)
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "Error: Step 5 of 7: Health and treatment (part 2 of 2)" in page
    assert "Please tell us whether you smoke." in page
    assert 'href="#smoking"' in page  # the summary leads to the question, on this part
    assert "Ibuprofen 400 mg" in page
    assert asked_on(page) == set(steps.HISTORY_HEALTH)
    reached, answers = saved(app)
    assert reached == "history" and answers["medications"] == ["Ibuprofen 400 mg"]


def test_a_change_from_the_review_goes_through_both_parts_back_to_the_review(
    client: FlaskClient,
) -> None:
    fill_every_step(client)
    review = open_step(client, "review")
    button = '<button type="submit" form="step-form" name="go_to" value="history"'
    assert button in review and "?then=review" not in review

    response = post_part(
        client, "history", 1, {**HISTORY, "diagnoses": ["spinal_stenosis"]}, then="review"
    )
    assert response.status_code == 303
    assert response.location == "/request/steps/history?page=2&then=review"
    response = post_part(client, "history", 2, HISTORY, then="review")
    assert response.status_code == 303 and response.location == "/request/steps/review"
    assert "Spinal stenosis" in open_step(client, "review")


def test_a_send_that_finds_a_missing_answer_opens_the_part_that_asks_it(
    app: Flask, client: FlaskClient
) -> None:
    fill_every_step(client)
    without = {name: value for name, value in HISTORY.items() if name != "diabetes"}
    assert post_part(client, "history", 2, without).status_code == 422  # saved as given
    assert saved(app)[0] == "review"

    response = post_step(client, "review", nav="send")
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "Health and treatment (part 2 of 2)" in page
    assert "Before we can send your request, please check this step." in page
    assert 'href="#diabetes"' in page and 'name="page" value="2"' in page
    assert requests_stored(app) == 0

    assert post_part(client, "history", 2, HISTORY, then="review").status_code == 303
    assert post_step(client, "review", nav="send").status_code == 303
    assert requests_stored(app) == 1
