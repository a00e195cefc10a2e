"""The clinical rules: Oswestry Disability Index scoring and banding, red flags and triage."""

from __future__ import annotations

import pytest

from booking.requests import history, triage
from booking.requests.history import InvalidOdiAnswer, odi_band, score_odi, triage_level

ALL_SECTIONS = history.ODI_SECTION_KEYS


def answers(*scores: int | None) -> dict[str, int | None]:
    return dict(zip(ALL_SECTIONS, scores, strict=True))


def test_odi_has_the_ten_standard_sections_with_six_statements_each() -> None:
    assert ALL_SECTIONS == (
        "pain_intensity", "personal_care", "lifting", "walking", "sitting",
        "standing", "sleeping", "sex_life", "social_life", "travelling",
    )  # fmt: skip
    assert all(len(section.statements) == 6 for section in history.ODI_SECTIONS)


@pytest.mark.parametrize(
    ("scores", "percent", "band"),
    [
        # All ten answered: total / 50 x 100.
        ((0,) * 10, 0.0, "minimal"),
        ((1,) * 10, 20.0, "minimal"),  # 20 is the top of "minimal"
        ((2, 2, 2, 2, 2, 2, 2, 2, 2, 3), 42.0, "severe"),
        ((3,) * 10, 60.0, "severe"),
        ((4,) * 10, 80.0, "crippling"),
        ((5,) * 10, 100.0, "bed_bound"),
        ((2, 1, 3, 2, 3, 2, 1, 2, 2, 2), 40.0, "moderate"),
        # One section skipped: total / 45 x 100.
        ((2, 1, 3, 2, 3, 2, 1, None, 2, 2), 40.0, "moderate"),
        ((1, 1, 1, 1, 1, 1, 1, None, 1, 2), 22.2, "moderate"),  # 10 / 45 = 22.22%
        # Two skipped, the most a score allows: total / 40 x 100.
        ((5, 5, 5, 5, 5, 5, 5, 5, None, None), 100.0, "bed_bound"),
        ((0, 0, 0, 0, 0, 0, 0, 0, None, None), 0.0, "minimal"),
        ((3, 3, 3, 3, 3, 3, 2, None, 2, None), 55.0, "severe"),  # 22 / 40
    ],
)
def test_odi_score_and_band(scores: tuple, percent: float, band: str) -> None:
    result = score_odi(answers(*scores))
    assert result.percent == percent
    assert result.band == band
    assert result.sections_answered == sum(s is not None for s in scores)
    assert result.answers == {
        k: s for k, s in zip(ALL_SECTIONS, scores, strict=True) if s is not None
    }


def test_odi_with_nothing_answered_has_no_score() -> None:
    result = score_odi(answers(*(None,) * 10))
    assert (result.percent, result.band, result.sections_answered) == (None, None, 0)


@pytest.mark.parametrize(
    "scores",
    [
        (5, 5, 5, 5, 5, 4, 5, None, None, None),  # three skipped
        (3, 3, 3, 3, 3, None, None, None, None, None),
        (None, None, None, None, None, None, None, None, None, 5),  # one answered: not "100%"
    ],
)
def test_odi_with_more_than_two_sections_unanswered_is_not_scored(scores: tuple) -> None:
    result = score_odi(answers(*scores))
    assert (result.percent, result.band) == (None, None)
    answered = sum(s is not None for s in scores)
    assert result.sections_answered == answered and len(result.answers) == answered


@pytest.mark.parametrize(
    ("percent", "band"),
    [
        (0, "minimal"), (20, "minimal"), (20.1, "moderate"), (40, "moderate"),
        (40.1, "severe"), (60, "severe"), (60.1, "crippling"), (80, "crippling"),
        (80.1, "bed_bound"), (100, "bed_bound"),
    ],
)  # fmt: skip
def test_odi_band_edges(percent: float, band: str) -> None:
    assert odi_band(percent) == band


@pytest.mark.parametrize("bad", [6, -1, 2.5, "3", True])
def test_odi_refuses_scores_outside_0_to_5(bad: object) -> None:
    with pytest.raises(InvalidOdiAnswer):
        score_odi({"walking": bad})  # type: ignore[dict-item]


def test_odi_refuses_unknown_sections() -> None:
    with pytest.raises(InvalidOdiAnswer):
        score_odi({"jogging": 2})


@pytest.mark.parametrize("flag", triage.RED_FLAGS, ids=lambda flag: flag.code)
def test_each_red_flag_alone_sets_the_triage_level_of_its_pathway(flag: triage.RedFlag) -> None:
    # A risk factor alone (Finucane 2020) is reviewed by staff, not urgent.
    expected = {"emergency": "emergency", "urgent": "urgent", "review": "routine"}
    assert triage_level({flag.code}) == expected[flag.pathway]


def test_red_flags_cover_the_clinical_list() -> None:
    """Every warning sign the issue names is asked (GIRFT/BASS 2023, Finucane 2020)."""
    assert {flag.code for flag in triage.ASKED} == {
        "bladder_bowel",
        "urinary_retention",
        "saddle_numbness",
        "sexual_dysfunction",
        "both_legs",
        "clumsy_hands",
        "unsteady_walking",
        "progressive_weakness",
        "fever",
        "iv_drug_use",
        "weak_immunity",
        "recent_procedure",
        "cancer_history",
        "weight_loss",
        "night_pain",
        "serious_injury",
        "fragile_bones",
        "minor_fall_over_50",
    }
    # The question asked until 2026-12 is still read, not asked.
    assert not triage.BY_CODE["fever_weight_loss"].asked


def test_no_red_flag_is_routine_and_unknown_flags_are_refused() -> None:
    assert triage_level(set()) == "routine"
    with pytest.raises(ValueError, match="unknown red flag"):
        triage_level({"headache"})
