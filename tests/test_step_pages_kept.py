"""A step page kept with markers and filled in for each patient (``booking.patients.steppages``)
comes out exactly as the full render would print it: every step and page, every main problem,
both languages, answers full of characters HTML must escape, answers no choice offers, no
answers at all (a choice's default), and the way back to the review.

Both pages come from the real view through the test client; only the page cache is switched
off for the full render. The one difference allowed is the CSRF token's value (and the time
in the proof that the page was shown): it is signed with the second it was made in, so two
views a second apart carry different tokens (each valid, as the journeys posting them show).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from booking.extensions import db
from booking.patients import steppages, steps
from booking.requests import drafts
from booking.requests.drafts import RequestDraft
from tests.support import (
    CSRF_RE,
    answer_red_flags,
    as_lists,
    page_proof,
    page_token,
    pdf_bytes,
    reach,
    upload,
    valid_answers,
)

# Everything HTML escapes, a tab (shown as a space) and a typographic apostrophe; then a
# refused control character and a marker's look-alike (shown as typed: nothing is cleaned
# when the text is refused).
TRICKY = 'O\'Neil <b>"bold"</b> & co\tx \u2019s'
CONTROL = "bell\x07 & <ring> \x00v full_name\x00 \x00t\x00"


def tricky_answers(region: str) -> drafts.Answers:
    answers = as_lists(valid_answers(spine_region=region))
    for name in (
        "full_name",
        "guardian_name",
        "email",
        "phone",
        "diagnosis_other",
        "imaging_when",
        "appointment_type",
    ):
        answers[name] = [TRICKY]
    for name in ("surgery_details", "medications", "allergies", "other_history"):
        answers[name] = [f"{TRICKY}\nsecond line\r\n& third"]
    answers["guardian_name"] = [CONTROL]
    answers["date_of_birth"] = ['1970-02-30"><script>']  # not a date: shown as typed
    answers["earliest_date"] = ["2026-12-24"]
    answers["pain_side"] = ["<not offered>"]  # a value no option has: nothing ticked
    answers["pain_locations"] = ["lower_back", "neck", "leg", "arm"]
    answers["preferred_days"] = ["0", "4", "6"]
    answers["ndi_lifting"] = ["5"]
    answers["back_pain_now"] = ["0"]
    answers["slot"] = [""]
    return answers


def pages_to_compare(answers: drafts.Answers) -> Iterator[str]:
    for code in sorted(steppages.FILLED):
        if code == "function" and steps.region_of(answers) is None:
            continue
        for page in range(1, steps.pages_of(code, answers) + 1):
            yield f"/request/steps/{code}?page={page}"
        yield f"/request/steps/{code}?then=review"


def set_answers(app: Flask, answers: drafts.Answers, reached: str) -> None:
    with app.app_context():
        draft = db.session.scalars(select(RequestDraft)).one()
        draft.answers = "{}"
        drafts.save_answers(draft, answers, reached)
        db.session.commit()


def without_token(page: str) -> str:
    """The page with its CSRF token's value and its proof's time and signature left out
    (what the proof is bound to, this draft, stays to compare)."""
    token = page_token(page)
    page = page.replace(token, "TOKEN")
    proof = page_proof(page)["draft_page"]
    return page.replace(proof, proof.partition(".")[0] + ".TIME.SIGNATURE")


def compare(
    app: Flask, client: FlaskClient, path: str, headers: dict[str, str], new: bool = True
) -> str:
    """The page at ``path`` kept (``new``: made by these views, else reused) and in full."""
    app.config["PAGE_CACHE_SECONDS"] = 60
    before = len(app.extensions.get(steppages.EXTENSION, ()))
    kept = [client.get(path, headers=headers) for _ in range(2)]  # made, then reused
    made = len(app.extensions[steppages.EXTENSION]) - before
    assert made == (1 if new else 0), f"{path} was not kept"
    app.config["PAGE_CACHE_SECONDS"] = 0
    full = client.get(path, headers=headers)
    app.config["PAGE_CACHE_SECONDS"] = 60
    assert [each.status_code for each in kept] == [200, 200] and full.status_code == 200, path
    expected = without_token(full.get_data(as_text=True))
    for each in kept:
        assert without_token(each.get_data(as_text=True)) == expected, path
    return expected


@pytest.mark.parametrize("language", ["en", "es"])
@pytest.mark.parametrize("region", sorted(steps.instruments.REGION_CODES))
def test_kept_step_pages_match_the_full_render(
    app: Flask, client: FlaskClient, region: str, language: str
) -> None:
    headers = {"Accept-Language": language}
    answer_red_flags(client, yes=["fever"] if region == "neck" else ())
    answers = tricky_answers(region)
    set_answers(app, answers, "review")
    seen = []
    for path in pages_to_compare(answers):
        seen.append(compare(app, client, path, headers))
    # The answers are on the pages, escaped once.
    shown = "\n".join(seen)
    assert "O&#39;Neil &lt;b&gt;&#34;bold&#34;&lt;/b&gt; &amp; co x" in shown
    assert 'value="bell\x07 &amp; &lt;ring&gt; \x00v full_name\x00 \x00t\x00"' in shown
    assert "1970-02-30&#34;&gt;&lt;script&gt;" in shown
    assert re.search(r'<input checked class="form-check-input" id="pain_locations-\d"', shown)
    # The review prints them as text, and ticks the consent given.
    assert '<dd class="col-sm-7">O&#39;Neil &lt;b&gt;&#34;bold&#34;' in shown
    assert '<input aria-required="true" checked class="form-check-input" id="privacy_consent"' in (
        shown
    )


def test_kept_pages_without_answers_and_with_few_steps_reached(
    app: Flask, client: FlaskClient
) -> None:
    """No answer yet: a choice's default is ticked (the contact method, the time of day), and
    the list of steps shows how far the patient got (a step further does not open)."""
    answer_red_flags(client)
    for reached in ("time", "symptoms", "history"):
        set_answers(app, {}, reached)
        for code in ("time", "about", "symptoms", "history")[: steps.number(reached)]:
            page = compare(app, client, f"/request/steps/{code}", {})
            if code == "about":
                assert '<input checked class="form-check-input" id="preferred_contact-' in page
            if code == "time":
                assert '<input checked class="form-check-input" id="preferred_time_of_day-' in page


def test_a_kept_page_is_filled_for_each_patient(app: Flask) -> None:
    """Two patients on the same step see their own answers and tokens, not each other's."""
    first, second = app.test_client(), app.test_client()
    pages = []
    for client, name in ((first, "Ann <First>"), (second, "Bob & Second")):
        answer_red_flags(client)
        reach(client, "about")
        page = client.get("/request/steps/about").get_data(as_text=True)
        token = CSRF_RE.search(page).group(1)
        response = client.post(
            "/request/steps/about",
            data={**as_lists({"full_name": name}), "csrf_token": token, "nav": "back"},
        )
        assert response.status_code == 303
        pages.append(client.get("/request/steps/about").get_data(as_text=True))
    assert 'value="Ann &lt;First&gt;"' in pages[0] and "Bob" not in pages[0]
    assert 'value="Bob &amp; Second"' in pages[1] and "Ann" not in pages[1]
    assert page_token(pages[0]) != page_token(pages[1])


def test_the_documents_and_review_are_kept_with_each_patients_files(
    app: Flask, client: FlaskClient
) -> None:
    """The list of files is rendered on every view (here and on the review); the rest of
    the page is kept."""
    answer_red_flags(client)
    set_answers(app, {}, "documents")
    for language in ("en", "es"):
        page = compare(app, client, "/request/steps/documents", {"Accept-Language": language})
        assert 'id="no-documents"' in page
    response = upload(client, (pdf_bytes(), "scan <1> & 'b'.pdf"), description=TRICKY)
    assert response.status_code == 303
    page = compare(app, client, "/request/steps/documents", {}, new=False)
    assert "scan &lt;1&gt; &amp;" in page and "O&#39;Neil &lt;b&gt;" in page
    assert 'name="remove"' in page and 'id="no-documents"' not in page
    reach(client, "review")
    review = compare(app, client, "/request/steps/review", {})
    assert "<li><bdi>scan &lt;1&gt; &amp;" in review and "No documents." not in review


def _review_counts(page: str) -> dict[str, tuple[str, int, int]]:
    """Each folded step on the review: its link's words, its answers and those given."""
    counts = {}
    for found in re.finditer(
        r'id="review-([a-z_]+)">[^<]*</h2> <span class="review-count">([^<]*)<(.*?)</dl>',
        page,
        re.S,
    ):
        shown = found[3].count("<dd ")
        blank = found[3].count('<dd class="col-sm-7"><span class="text-body-secondary">No answer')
        counts[found[1]] = (found[2], shown, shown - blank)
    return counts


def test_the_reviews_links_count_the_answers_given_not_the_questions(
    app: Flask, client: FlaskClient
) -> None:
    """Each step's link on the review says how many answers the patient gave, not how many
    questions the step has ("See your 12 answers" for one answer and eleven left blank), on
    the kept page as in full, for each patient filling the same kept page; a step left
    blank says so."""
    answer_red_flags(client)
    answers = as_lists(valid_answers(spine_region="lower_back"))
    history = steps.fields_of("history", answers)
    set_answers(app, {**answers, **{name: [""] for name in history}}, "review")
    counts = _review_counts(compare(app, client, "/request/steps/review", {}))
    assert counts["history"][0] == "You left these questions blank"
    assert counts["history"][1] > 1 and counts["history"][2] == 0
    for words, shown, given in counts.values():
        assert given == 0 or words == f"See your {given} answers", (words, shown, given)
    assert counts["symptoms"][2] == counts["symptoms"][1] > 1  # all answered

    # Another patient's answers on the same kept page: their own counts.
    symptoms = steps.fields_of("symptoms", answers)
    blank = {name: [""] for name in symptoms if name != "spine_region"}  # the page is kept by it
    set_answers(app, {**answers, **blank}, "review")
    counts = _review_counts(compare(app, client, "/request/steps/review", {}, new=False))
    assert counts["symptoms"][:1] + counts["symptoms"][2:] == ("See your answer", 1)
    assert counts["history"][0] == f"See your {counts['history'][2]} answers"
    spanish = compare(app, client, "/request/steps/review", {"Accept-Language": "es"})
    assert "Ver su respuesta" in spanish
