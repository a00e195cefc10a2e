"""A new request form reuses its questions' markup, rendered once per language and day.

The reused markup must be exactly what the form renders in full (labels, help, ids,
aria-describedby), in the patient's own language, and must never carry one patient's answers
to another.
"""

from __future__ import annotations

import re

import pytest
from flask import Flask, render_template
from flask.testing import FlaskClient
from markupsafe import Markup

from booking.patients.forms import RequestForm
from booking.requests import history
from tests.support import TOKEN_RE, answer_red_flags, post_request, red_flag_answers, valid_answers

SPANISH = {"Accept-Language": "es"}


@pytest.fixture
def client(client: FlaskClient) -> FlaskClient:
    """A patient who answered the first step's questions: the form opens."""
    answer_red_flags(client)
    return client


def normalised(page: str) -> str:
    """The page with its per-request tokens replaced and whitespace collapsed."""
    for name, pattern in TOKEN_RE.items():
        page = pattern.sub(f'name="{name}" type="hidden" value="TOKEN"', page)
    return " ".join(page.split())


def full_render(app: Flask, headers: dict[str, str]) -> str:
    """The form page rendered the long way: every field from a blank ``RequestForm``."""
    with app.test_request_context("/request", headers=headers):
        form = RequestForm(formdata=None)
        return render_template(
            "patients/request_form.html",
            form=form,
            history=history,
            problem=None,
            chosen=None,
            slot_options=None,
            scheduling=False,
            sections=None,
            # The first step's answers ("no" to each), as the page carries them.
            red_flag_inputs=Markup("").join(
                Markup('<input type="hidden" name="{}" value="{}">').format(name, answer)
                for name, answer in red_flag_answers().items()
            ),
            advice=None,
        )


@pytest.mark.parametrize("headers", [{}, SPANISH], ids=["en", "es"])
def test_new_form_is_the_same_markup_as_a_full_render(
    app: Flask, client: FlaskClient, headers: dict[str, str]
) -> None:
    client.get("/request", headers=headers)  # fills the cache
    cached = client.get("/request", headers=headers).get_data(as_text=True)
    assert normalised(cached) == normalised(full_render(app, headers))


def test_each_language_gets_its_own_markup(client: FlaskClient) -> None:
    english = client.get("/request").get_data(as_text=True)
    spanish = client.get("/request", headers=SPANISH).get_data(as_text=True)
    english_again = client.get("/request").get_data(as_text=True)

    assert ">Full name" in english and "¿Dónde le duele?" not in english
    assert ">Nombre y apellidos" in spanish and ">Full name" not in spanish
    assert "¿Dónde le duele?" in spanish
    assert normalised(english_again) == normalised(english)


def test_each_form_has_its_own_tokens(client: FlaskClient) -> None:
    first = client.get("/request").get_data(as_text=True)
    second = client.get("/request").get_data(as_text=True)
    token = TOKEN_RE["submission_token"]
    assert token.search(first).group(1) != token.search(second).group(1)


def test_answers_shown_again_after_an_error_do_not_reach_the_next_new_form(
    client: FlaskClient,
) -> None:
    client.get("/request")
    answers = valid_answers(full_name="Zelda Quinterova", email="not an email")
    corrected = post_request(client, answers).get_data(as_text=True)
    assert 'value="Zelda Quinterova"' in corrected  # the patient's own values come back
    assert re.search(r'id="email-error"', corrected)

    fresh = client.get("/request").get_data(as_text=True)
    assert "Zelda Quinterova" not in fresh
    assert 'id="email-error"' not in fresh
    assert 'id="error-summary"' not in fresh


def test_templates_that_reload_are_not_cached(app: Flask, client: FlaskClient) -> None:
    """In development an edited template shows at once."""
    app.jinja_env.auto_reload = True
    client.get("/request")
    assert "patients.request_form_sections" not in app.extensions
