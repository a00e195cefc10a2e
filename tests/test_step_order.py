"""A step the patient's draft has not reached does not open by its address: the browser goes
to the step reached, as the list of steps offers no other. Before, the documents step opened
early, and its "Save and continue" noted the draft as at the review, the steps between
unanswered (and each of them saved then went back to the review); the review opened early
with nothing to check."""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy import update as sa_update

from booking.extensions import db
from booking.patients import steps
from booking.requests.drafts import RequestDraft
from booking.timeutil import now_utc
from tests.support import (
    answer_red_flags,
    fill_every_step,
    open_step,
    page_proof,
    page_token,
    post_step,
    requests_stored,
    step_answers,
)

LATER = ("symptoms", "function", "history", "documents", "review")


def _draft(app: Flask) -> RequestDraft:
    with app.app_context():
        draft = db.session.scalars(select(RequestDraft)).one()
        db.session.expunge(draft)
        return draft


def _at_about(client: FlaskClient) -> dict[str, str]:
    """A patient who answered the time and typed a name on "About you" (saved, unchecked, as
    Back saves it); the about page's token and proof, as its forms send them."""
    answer_red_flags(client)
    assert post_step(client, "time").location.endswith("/request/steps/about")
    typed = {**step_answers("about"), "email": ""}
    assert post_step(client, "about", typed, "stay").status_code == 303
    shown = client.get("/request/steps/about").get_data(as_text=True)
    return {"csrf_token": page_token(shown), **page_proof(shown)}


@pytest.mark.parametrize("code", LATER)
def test_a_step_not_reached_goes_to_the_step_reached(
    app: Flask, client: FlaskClient, code: str
) -> None:
    _at_about(client)
    response = client.get(f"/request/steps/{code}")
    assert response.status_code == 303
    assert response.location == "/request/steps/about"
    assert _draft(app).step == "about"
    # The steps reached open.
    for reached in ("time", "about"):
        assert client.get(f"/request/steps/{reached}").status_code == 200


@pytest.mark.parametrize("code", LATER)
def test_a_post_to_a_step_not_reached_marks_no_step_and_keeps_what_was_saved(
    app: Flask, client: FlaskClient, code: str
) -> None:
    form = _at_about(client)
    before = _draft(app)
    data = {**step_answers(code), **form, "nav": "next"}
    response = client.post(f"/request/steps/{code}", data=data)
    assert response.status_code == 303
    assert response.location == "/request/steps/about"
    after = _draft(app)
    assert after.step == "about"  # not the review: the steps between are not answered
    assert after.values() == before.values()
    assert after.values()["full_name"] == ["Erika Mustermann"]
    assert requests_stored(app) == 0
    # Saved from its own page, the step reached goes on as before.
    assert post_step(client, "about").location.endswith("/request/steps/symptoms")


def test_save_and_continue_on_the_documents_step_opened_early_does_not_reach_the_review(
    app: Flask, client: FlaskClient
) -> None:
    form = _at_about(client)
    response = client.post("/request/steps/documents", data={**form, "nav": "next"})
    assert response.location == "/request/steps/about"
    assert client.get("/request/steps/review").location == "/request/steps/about"
    # "About you" saved goes on to the symptoms, not back to a review never reached.
    assert post_step(client, "about").location.endswith("/request/steps/symptoms")


def test_every_step_opens_once_reached(app: Flask, client: FlaskClient) -> None:
    fill_every_step(client)
    for step in steps.STEPS:
        assert "Step " in open_step(client, step.code)
    assert _draft(app).step == "review"


def test_without_a_draft_or_with_a_hidden_one_a_later_step_leads_as_every_step_does(
    app: Flask, client: FlaskClient
) -> None:
    fresh = app.test_client()
    response = fresh.get("/request/steps/review")
    assert response.status_code == 302 and response.location == "/request/start"
    _at_about(client)
    with app.app_context():
        draft = db.session.scalars(select(RequestDraft)).one()
        draft.updated_at = now_utc() - timedelta(minutes=61)  # names the patient, unused
        db.session.commit()
    for code in ("about", "review"):
        response = client.get(f"/request/steps/{code}")
        assert response.location == "/request/hidden", code  # not even the step reached


def test_a_step_worked_out_from_a_stale_read_never_takes_the_draft_back(
    app: Flask, client: FlaskClient
) -> None:
    """Two tabs: one read the draft at "symptoms" and saves "About you" while the other has
    just gone on to the documents. The step the first one worked out ("symptoms") is older
    than the draft's: noted, it would send the second tab's documents page, now not reached,
    to "symptoms" on its next post (a file described there lost)."""
    from booking.requests import drafts

    answer_red_flags(client)
    post_step(client, "time")
    post_step(client, "about")
    with app.app_context():
        draft = db.session.scalars(select(RequestDraft)).one()
        assert draft.step == "symptoms"  # as the first tab read it
        db.session.execute(
            sa_update(RequestDraft).where(RequestDraft.id == draft.id).values(step="documents")
        )  # the other tab, meanwhile
        db.session.commit()
        drafts.save_answers(
            draft, {"full_name": ["Erika Musterfrau"]}, "symptoms", rank=steps.number
        )
        saved = db.session.scalars(select(RequestDraft)).one()
        assert saved.step == "documents"
        assert saved.values()["full_name"] == ["Erika Musterfrau"]
    assert client.get("/request/steps/documents").status_code == 200
