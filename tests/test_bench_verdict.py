"""The bench's verdict on a page's ``x baseline`` target is read from the CPU ratio.

On a busy machine the hello-world baseline slows as much as the page or more, and a first run
one session read the question steps as "met" by throughput (0.31-0.41 x) while their CPU cost
(0.17-0.21 x) had not moved: the verdict column said "met" wrongly."""

from __future__ import annotations

from bench.run import verdict


def test_a_page_under_its_target_by_cpu_is_not_met_though_throughput_says_met() -> None:
    text = verdict(0.3, cpu_ratio=0.19, ratio=0.35)
    assert text.startswith(">= 0.3 NOT met by CPU")
    assert "machine busy?" in text


def test_a_page_over_its_target_by_cpu_is_met_whatever_throughput_says() -> None:
    assert verdict(0.3, cpu_ratio=0.42, ratio=0.25).startswith(">= 0.3 met by CPU")
    assert verdict(0.3, cpu_ratio=0.42, ratio=0.40) == ">= 0.3 met by CPU"


def test_an_unmeasured_throughput_adds_nothing() -> None:
    assert verdict(0.5, cpu_ratio=0.2, ratio=float("nan")) == ">= 0.5 NOT met by CPU"
