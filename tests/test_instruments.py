"""The outcome instruments (``requests/instruments.py``): ODI and NDI scored with known answer
sets, their bands, and which instruments and pain scores each main problem asks."""

from __future__ import annotations

import pytest

from booking.requests import instruments
from booking.requests.instruments import NDI, ODI, InvalidAnswer, score

BOTH = (ODI, NDI)


def answers(instrument: instruments.Instrument, *values: int | None) -> dict[str, int | None]:
    return dict(zip(instrument.section_keys, values, strict=True))


def test_ndi_has_vernons_ten_sections_with_six_statements_each() -> None:
    assert NDI.section_keys == (
        "pain_intensity", "personal_care", "lifting", "reading", "headaches",
        "concentration", "work", "driving", "sleeping", "recreation",
    )  # fmt: skip
    assert all(len(section.statements) == 6 for section in NDI.sections)
    assert NDI.max_points == 50


@pytest.mark.parametrize("instrument", BOTH, ids=lambda i: i.code)
@pytest.mark.parametrize(
    ("values", "points", "possible", "percent"),
    [
        ((0,) * 10, 0, 50, 0.0),
        ((5,) * 10, 50, 50, 100.0),
        # Two missing, the most a score allows: over the 8 answered (40 points possible).
        ((3, 3, 3, 3, 3, 3, 3, 3, None, None), 24, 40, 60.0),
        ((1, None, 1, 1, 1, 1, None, 1, 1, 1), 8, 40, 20.0),
        # One missing: over 45.
        ((2, 2, 2, 2, 2, 2, 2, 2, 2, None), 18, 45, 40.0),
    ],
)
def test_known_answer_sets_are_scored_over_the_answered_sections(
    instrument: instruments.Instrument,
    values: tuple,
    points: int,
    possible: int,
    percent: float,
) -> None:
    result = score(instrument, answers(instrument, *values))
    assert (result.points, result.possible_points, result.percent) == (points, possible, percent)
    assert result.scored and result.unanswered == values.count(None)


@pytest.mark.parametrize("instrument", BOTH, ids=lambda i: i.code)
@pytest.mark.parametrize(
    "values",
    [
        (0, 0, 0, 0, 0, 0, 0, None, None, None),  # three missing
        (5, None, None, None, None, None, None, None, None, None),  # one answered: not "100%"
        (None,) * 10,
    ],
)
def test_more_than_two_missing_sections_are_not_scored(
    instrument: instruments.Instrument, values: tuple
) -> None:
    result = score(instrument, answers(instrument, *values))
    assert (result.percent, result.band, result.scored) == (None, None, False)
    assert result.unanswered == values.count(None)
    # The answers given are kept, for staff to read.
    assert result.answers == {
        key: value
        for key, value in zip(instrument.section_keys, values, strict=True)
        if value is not None
    }


@pytest.mark.parametrize(
    ("values", "band"),
    [
        # Vernon's points bands on a complete NDI: 0-4 none, 5-14 mild, 15-24 moderate, 25-34
        # severe, 35-50 complete.
        ((0, 0, 0, 0, 0, 0, 1, 1, 1, 1), "none"),  # 4 points, 8%
        ((0, 0, 0, 0, 0, 1, 1, 1, 1, 1), "mild"),  # 5 points, 10%
        ((1, 1, 1, 1, 2, 2, 2, 2, 1, 1), "mild"),  # 14 points, 28%
        ((1, 1, 1, 1, 2, 2, 2, 2, 2, 1), "moderate"),  # 15
        ((2, 2, 2, 2, 2, 3, 3, 3, 3, 2), "moderate"),  # 24
        ((2, 2, 2, 2, 3, 3, 3, 3, 3, 2), "severe"),  # 25
        ((3, 3, 3, 3, 4, 4, 4, 4, 3, 3), "severe"),  # 34
        ((3, 3, 3, 3, 4, 4, 4, 4, 4, 3), "complete"),  # 35
        ((5,) * 10, "complete"),
        # Pro-rated: 4 of 45 points is 8.9%, below mild's 10%.
        ((0, 0, 0, 0, 0, 1, 1, 1, 1, None), "none"),
    ],
)
def test_ndi_bands_follow_vernon(values: tuple, band: str) -> None:
    assert score(NDI, answers(NDI, *values)).band == band


@pytest.mark.parametrize(
    ("percent", "band"),
    [(0, "none"), (9.9, "none"), (10, "mild"), (29.9, "mild"), (30, "moderate"),
     (49.9, "moderate"), (50, "severe"), (69.9, "severe"), (70, "complete"), (100, "complete")],
)  # fmt: skip
def test_ndi_band_edges(percent: float, band: str) -> None:
    assert NDI.band(percent) == band


@pytest.mark.parametrize("bad", [6, -1, 2.5, "3", True])
def test_ndi_refuses_scores_outside_0_to_5(bad: object) -> None:
    with pytest.raises(InvalidAnswer):
        score(NDI, {"driving": bad})  # type: ignore[dict-item]


def test_an_odi_section_is_no_ndi_section() -> None:
    with pytest.raises(InvalidAnswer, match="travelling"):
        score(NDI, {"travelling": 2})


def test_each_region_asks_its_instruments_and_pain_areas() -> None:
    assert instruments.instruments_for("lower_back") == (ODI,)
    assert instruments.instruments_for("neck") == (NDI,)
    assert instruments.instruments_for("both") == (ODI, NDI)
    assert instruments.instruments_for(None) == (ODI,)  # requests from before the question
    areas = instruments.REGION_PAIN_AREAS
    assert [a.code for a in areas["lower_back"]] == ["back", "leg"]
    assert [a.code for a in areas["neck"]] == ["neck", "arm"]
    assert [a.code for a in areas["both"]] == ["back", "leg", "neck", "arm"]
    assert set(areas) == instruments.REGION_CODES == set(instruments.REGION_INSTRUMENTS)
