"""The list of steps above every step's page: a step reached is a button of the page's form,
so what was typed on the page is saved (unchecked, as its Back button saves it) before the
step named goes up. A link lost it (issue #16: "Back and Next keep everything").

Driven through the real pages with the test client (CSRF on): each post is made from the
button the page shows, as a browser sends its form with it.
"""

from __future__ import annotations

import html
import io
import re
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

from booking.extensions import db
from booking.requests.drafts import RequestDraft
from booking.timeutil import now_utc
from tests.support import (
    answer_red_flags,
    fill_every_step,
    open_step,
    page_proof,
    page_token,
    pdf_bytes,
    post_step,
    step_answers,
    valid_answers,
)

# A step's button in the list of steps: the form it sends, and the step it names.
STEP_BUTTON_RE = re.compile(
    r'<button type="submit" form="([^"]+)" name="go_to" value="([^"]+)"[^>]*>(.*?)</button>', re.S
)


def step_buttons(page: str) -> dict[str, tuple[str, str]]:
    """The list of steps' buttons: {step: (the form's id, the button's name as read)}."""
    listed = page.partition('aria-label="Steps of your request"')[2].partition("</nav>")[0]
    return {
        code: (form, html.unescape(re.sub(r"<[^>]+>", "", label)))
        for form, code, label in STEP_BUTTON_RE.findall(listed)
    }


def go_to(
    client: FlaskClient,
    path: str,
    target: str,
    data: dict[str, Any],
    *,
    form: str = "step-form",
    offered: bool = True,
    **options: Any,
) -> TestResponse:
    """On the page at ``path``, type ``data`` and press step ``target``'s name in the list (no
    ``nav``: the button sends only its own name and value). ``offered``: the page shows that
    button (for the form ``form``), else the value is forged."""
    shown = open_step(client, path)
    assert (target in step_buttons(shown)) == offered, step_buttons(shown)
    if offered:
        assert step_buttons(shown)[target][0] == form
    payload = {**data, "csrf_token": page_token(shown), **page_proof(shown), "go_to": target}
    code = path.partition("?")[0]
    return client.post(f"/request/steps/{code}", data=payload, **options)


def saved(app: Flask) -> tuple[str, dict[str, list[str]]]:
    with app.app_context():
        draft = db.session.scalars(select(RequestDraft)).one()
        return draft.step, draft.values()


def test_the_list_offers_the_steps_reached_as_buttons_of_the_pages_form(
    client: FlaskClient,
) -> None:
    answer_red_flags(client)
    post_step(client, "time")
    post_step(client, "about")
    page = open_step(client, "about")
    assert step_buttons(page) == {
        "time": ("step-form", "1. Time (done)"),
        "symptoms": ("step-form", "3. Your symptoms (started)"),
    }
    assert '<span class="badge text-bg-primary" aria-current="step">2. About you</span>' in page
    assert '4. Pain and daily life<span class="visually-hidden"> (not yet)' in page
    assert 'href="/request/steps/time"' not in page  # no link that leaves the typing behind


def test_a_step_chosen_in_the_list_keeps_what_was_typed_unchecked(
    app: Flask, client: FlaskClient
) -> None:
    answer_red_flags(client)
    post_step(client, "time")
    post_step(client, "about")
    post_step(client, "symptoms")
    # Typed on "About you", one answer wrong (no email address): saved as Back saves it.
    typed = step_answers("about", valid_answers(full_name="Erika Musterfrau", email=""))
    response = go_to(client, "about", "time", typed)
    assert response.status_code == 303 and response.location == "/request/steps/time"
    reached, answers = saved(app)
    assert reached == "function"  # as far as before: nothing checked, nothing skipped
    assert answers["full_name"] == ["Erika Musterfrau"] and answers["email"] == [""]
    about = open_step(client, "about")
    assert 'value="Erika Musterfrau"' in about
    assert "Please enter" not in about  # unchecked until the patient leaves it by "Next"

    # Forward, to a step reached: the same.
    typed = step_answers("time", valid_answers(preferred_time_of_day="afternoon"))
    response = go_to(client, "time", "function", typed)
    assert response.status_code == 303 and response.location == "/request/steps/function"
    assert saved(app)[1]["preferred_time_of_day"] == ["afternoon"]


def test_a_part_of_the_function_step_is_saved_before_the_step_chosen(
    app: Flask, client: FlaskClient
) -> None:
    fill_every_step(client)
    response = go_to(
        client,
        "function?page=3",
        "symptoms",
        {"page": "3", "odi_lifting": "5", "odi_walking": "4"},
    )
    assert response.status_code == 303 and response.location == "/request/steps/symptoms"
    answers = saved(app)[1]
    assert answers["odi_lifting"] == ["5"] and answers["odi_walking"] == ["4"]
    assert answers["back_pain_now"] == ["5"]  # the first part's answers are untouched


def test_what_a_listed_document_is_is_saved_before_the_step_chosen(
    app: Flask, client: FlaskClient
) -> None:
    fill_every_step(client, files=((pdf_bytes(), "mri.pdf"),))
    with app.app_context():
        [document] = db.session.scalars(select(RequestDraft)).one().documents
        box = f"description-{document.id}"
    response = go_to(
        client,
        "documents",
        "about",
        {box: "MRI of the lower back, 2026", "files": [(io.BytesIO(b""), "")]},
        form="upload-form",
        content_type="multipart/form-data",
    )
    assert response.status_code == 303 and response.location == "/request/steps/about"
    page = open_step(client, "documents")
    described = 'maxlength="200" value="MRI of the lower back, 2026"'
    assert f'name="{box}" form="upload-form" {described}' in page


def test_finish_later_on_the_documents_step_saves_what_a_listed_document_is(
    app: Flask, client: FlaskClient
) -> None:
    """The "Finish later" button is one of the documents' form, as on every other step (it was a
    link, which left what was typed next to a listed file behind)."""
    fill_every_step(client, files=((pdf_bytes(), "mri.pdf"),))
    with app.app_context():
        [document] = db.session.scalars(select(RequestDraft)).one().documents
        box = f"description-{document.id}"
    shown = open_step(client, "documents")
    assert '<button type="submit" form="upload-form" name="nav" value="later"' in shown
    payload = {
        box: "MRI of the lower back, 2026",
        "files": [(io.BytesIO(b""), "")],
        "nav": "later",
        "csrf_token": page_token(shown),
        **page_proof(shown),
    }
    response = client.post(
        "/request/steps/documents", data=payload, content_type="multipart/form-data"
    )
    assert response.status_code == 303 and response.location == "/request/later"
    with app.app_context():
        [document] = db.session.scalars(select(RequestDraft)).one().documents
        assert document.description == "MRI of the lower back, 2026"


def test_a_file_chosen_goes_up_before_the_step_chosen(app: Flask, client: FlaskClient) -> None:
    """Without scripts a file chosen goes up with any button of the documents' form, the
    list's too (as with Back), with what it is."""
    fill_every_step(client)
    data = {"files": [(io.BytesIO(pdf_bytes()), "ct.pdf")], "description": "CT report"}
    response = go_to(
        client, "documents", "history", data, form="upload-form", content_type="multipart/form-data"
    )
    assert response.status_code == 303 and response.location == "/request/steps/history"
    with app.app_context():
        [document] = db.session.scalars(select(RequestDraft)).one().documents
        assert (document.original_name, document.description) == ("ct.pdf", "CT report")


def test_the_reviews_consent_ticked_is_kept_by_a_step_chosen(
    app: Flask, client: FlaskClient
) -> None:
    fill_every_step(client)
    response = go_to(client, "review", "history", {"privacy_consent": "y"})
    assert response.status_code == 303 and response.location == "/request/steps/history"
    answers = saved(app)[1]
    assert answers["privacy_consent"] == ["y"] and not answers.get("contact_consent")
    assert re.search(r'<input[^>]*checked[^>]*id="privacy_consent"', open_step(client, "review"))
    # Nothing was sent on the way.
    with app.app_context():
        assert db.session.scalars(select(RequestDraft)).one().sent_at is None


@pytest.mark.parametrize(
    "target", ["review", "documents", "nowhere", "", "//evil.example/", "/request/steps/time"]
)
def test_a_step_not_reached_or_unknown_goes_nowhere_and_loses_nothing(
    app: Flask, client: FlaskClient, target: str
) -> None:
    """The list offers only the steps reached; any other value (a forged post) saves the page
    as typed and shows it again: never another page, never another site."""
    answer_red_flags(client)
    post_step(client, "time")
    typed = step_answers("about", valid_answers(full_name="Erika Musterfrau"))
    response = go_to(client, "about", target, typed, offered=False)
    assert response.status_code == 303 and response.location == "/request/steps/about"
    reached, answers = saved(app)
    assert reached == "about" and answers["full_name"] == ["Erika Musterfrau"]


def test_a_step_not_reached_from_the_documents_goes_nowhere(
    app: Flask, client: FlaskClient
) -> None:
    answer_red_flags(client)
    for code in ("time", "about", "symptoms", "function", "history"):
        post_step(client, code)
    assert saved(app)[0] == "documents"
    response = go_to(
        client,
        "documents",
        "review",
        {"files": [(io.BytesIO(b""), "")]},
        offered=False,
        content_type="multipart/form-data",
    )
    assert response.status_code == 303 and response.location == "/request/steps/documents"


def test_an_expired_page_is_shown_again_with_what_was_typed(
    app: Flask, client: FlaskClient
) -> None:
    """As Back: the page comes back with the answers and a fresh token, nothing saved."""
    answer_red_flags(client)
    post_step(client, "time")
    post_step(client, "about")
    shown = open_step(client, "about")
    typed = step_answers("about", valid_answers(full_name="Erika Musterfrau"))
    data = {**typed, "csrf_token": "expired", **page_proof(shown), "go_to": "time"}
    response = client.post("/request/steps/about", data=data)
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "press the button again" in page and 'value="Erika Musterfrau"' in page
    assert step_buttons(page)["time"][0] == "step-form"  # to press again
    assert saved(app)[1]["full_name"] == ["Erika Mustermann"]


def test_a_hidden_drafts_step_chosen_without_the_pages_proof_saves_nothing(
    app: Flask, client: FlaskClient
) -> None:
    """As Back: after the hour without use, only a page shown before it is taken."""
    fill_every_step(client)
    with app.app_context():
        draft = db.session.scalars(select(RequestDraft)).one()
        draft.updated_at = now_utc() - timedelta(minutes=61)
        db.session.commit()
    before = saved(app)
    token = page_token(client.get("/request/hidden").get_data(as_text=True))
    data = {"csrf_token": token, "go_to": "time", "full_name": ""}
    response = client.post("/request/steps/about", data=data)
    assert response.status_code == 303 and response.location == "/request/hidden"
    assert saved(app) == before


def test_a_page_read_over_the_hour_keeps_what_was_typed_when_a_step_is_chosen(
    app: Flask, client: FlaskClient
) -> None:
    """A patient who read a page for more than the hour (the draft is hidden from anyone
    else by then) and then pressed a step's name: the page was shown to them before the
    hour, its proof says so, and what they typed is saved as Back would save it."""
    answer_red_flags(client)
    post_step(client, "time")
    post_step(client, "about")
    shown = open_step(client, "about")
    with app.app_context():
        draft = db.session.scalars(select(RequestDraft)).one()
        draft.updated_at = now_utc() - timedelta(minutes=120)
        db.session.commit()
    typed = step_answers("about", valid_answers(full_name="Erika Musterfrau"))
    data = {**typed, "csrf_token": page_token(shown), **page_proof(shown), "go_to": "time"}
    response = client.post("/request/steps/about", data=data)
    assert response.status_code == 303 and response.location == "/request/steps/time"
    assert client.get(response.location).status_code == 200  # just saved: shown
    assert saved(app)[1]["full_name"] == ["Erika Musterfrau"]


def test_a_change_from_the_review_keeps_the_consent_boxes_ticked(
    app: Flask, client: FlaskClient
) -> None:
    """The review's "Change" was a link: the consent boxes ticked on the review were lost on
    the way to the step and back. It is a button of the review's form, as the list of steps:
    the boxes are saved first, and the step saved comes back to the review."""
    fill_every_step(client)
    review = open_step(client, "review")
    section = review[review.index('id="review-symptoms"') :]
    assert '<button type="submit" form="step-form" name="go_to" value="symptoms"' in section
    assert 'href="/request/steps/symptoms' not in review
    ticked = {"privacy_consent": "y", "contact_consent": "y"}
    payload = {**ticked, "csrf_token": page_token(review), **page_proof(review)}
    response = client.post("/request/steps/review", data={**payload, "go_to": "symptoms"})
    assert response.status_code == 303 and response.location == "/request/steps/symptoms"
    assert saved(app)[1]["privacy_consent"] == ["y"]
    symptoms = open_step(client, "symptoms")
    response = client.post(
        "/request/steps/symptoms",
        data={
            **step_answers("symptoms", valid_answers()),
            "csrf_token": page_token(symptoms),
            **page_proof(symptoms),
            "nav": "next",
        },
    )
    assert response.status_code == 303 and response.location == "/request/steps/review"
    review = open_step(client, "review")
    for name in ticked:
        [box] = re.findall(rf'<input[^>]*name="{name}"[^>]*>', review)
        assert "checked" in box, box
