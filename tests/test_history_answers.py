"""Each history answer is declared once (``history.ANSWERS``): the model's columns, the form's
fields and the submission agree with that list."""

from __future__ import annotations

import pytest
from flask import Flask
from sqlalchemy import inspect

from booking.patients.forms import RequestForm
from booking.requests import history
from booking.requests.models import MedicalHistory

# Columns the service computes or that are not answers to a history question.
NOT_ANSWERS = {"request_id", "red_flags"}
NOT_ANSWERS |= {
    f"{code}_{column}"
    for code in ("odi", "ndi")
    for column in ("answers", "sections_answered", "percent", "band")
}
# The overall pain pair, asked until the region was: older requests keep it.
NOT_ANSWERS |= {"pain_now", "pain_worst"}


def test_every_history_column_is_a_declared_answer_and_back() -> None:
    columns = {column.key for column in inspect(MedicalHistory).column_attrs}
    assert columns - NOT_ANSWERS == history.ANSWER_NAMES


def test_every_answer_has_a_form_field_offering_its_choices(app: Flask) -> None:
    with app.test_request_context("/request", method="POST"):
        form = RequestForm(meta={"csrf": False})
        for answer in history.ANSWERS:
            field = form[answer.name]
            if answer.choices is not None:
                offered = {choice.value for choice in field.choices}
                assert offered == {code for code, _label in answer.choices}, answer.name


def test_examples_are_valid_answers_of_their_kind() -> None:
    for answer in history.ANSWERS:
        value = answer.example
        if answer.kind == history.MANY:
            assert set(value) <= {code for code, _label in answer.choices or []}, answer.name
        elif answer.kind == history.ONE:
            assert value in {code for code, _label in answer.choices or []}, answer.name
        elif answer.kind == history.SCORE:
            assert 0 <= value <= 10, answer.name
        elif answer.kind == history.YES_NO:
            assert isinstance(value, bool)
        else:
            assert value is None or isinstance(value, str)


def test_an_unknown_answer_is_refused() -> None:
    assert history.example_answers(back_pain_now=9)["back_pain_now"] == 9
    with pytest.raises(TypeError, match="pain_level"):
        history.example_answers(pain_level=9)
