"""A patient's change on each measure against the clinic's thresholds, and the 95 % interval
of a share: pure functions (no app, no database).

Every measure here is better when lower (disability per cent, pain 0-10). A change counts as
"improved" when the score fell by at least the threshold in points, or (where the measure
has one) by at least the relative threshold in per cent of the baseline; "worse" when it rose
by at least the threshold in points; otherwise "unchanged". The relative threshold is one for
improvement only (Ostelo 2008 proposes none for getting worse): on a low baseline it would
call a change within measurement error, such as ODI 4 to 6 % or pain 2 to 3, "worse".
Published defaults:

* ODI and pain scales: 10 points (ODI, 0-100) and 2 points (pain, 0-10), or 30 % of the
  baseline: Ostelo RW et al., "Interpreting change scores for pain and functional status in
  low back pain", Spine 2008;33(1):90-94.
* NDI: 7.5 points (0-100): Carreon LY et al., "Neck Disability Index, short form-36 physical
  component summary, and pain scales for neck and arm pain: the minimum clinically important
  difference and substantial clinical benefit after cervical spine fusion", Spine J
  2010;10(6):469-474.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

IMPROVED, UNCHANGED, WORSE = "improved", "unchanged", "worse"

OSTELO_2008 = (
    "Ostelo RW et al. Interpreting change scores for pain and functional status in low back "
    "pain. Spine 2008;33(1):90-94."
)
CARREON_2010 = (
    "Carreon LY et al. Neck Disability Index, short form-36 physical component summary, and "
    "pain scales for neck and arm pain: the minimum clinically important difference and "
    "substantial clinical benefit after cervical spine fusion. Spine J 2010;10(6):469-474."
)

DEFAULT_ODI_POINTS = 10.0
DEFAULT_PAIN_POINTS = 2.0
DEFAULT_RELATIVE_PERCENT = 30.0
DEFAULT_NDI_POINTS = 7.5


@dataclass(frozen=True)
class Threshold:
    points: float
    relative_percent: float | None  # None: points only (the NDI)


def classify(baseline: float | None, value: float | None, threshold: Threshold) -> str | None:
    """ "improved", "unchanged" or "worse" (lower is better); None without both numbers."""
    if baseline is None or value is None:
        return None
    change = baseline - value  # positive: better
    size = abs(change)
    enough = size >= threshold.points - 1e-9
    if change < 0:
        return WORSE if enough else UNCHANGED  # points only: see the module's note
    if not enough and threshold.relative_percent is not None and baseline > 0:
        enough = size / baseline * 100 >= threshold.relative_percent - 1e-9
    if not enough or change == 0:
        return UNCHANGED
    return IMPROVED


@dataclass(frozen=True)
class Share:
    """``count`` of ``total`` with the 95 % Wilson score interval, in per cent."""

    count: int
    total: int
    percent: float
    low: float
    high: float


Z95 = 1.959963984540054


def wilson(count: int, total: int, z: float = Z95) -> Share:
    """The Wilson score interval (Wilson 1927; Newcombe, Stat Med 1998, method 3): good for
    small groups and shares near 0 or 100 %, where the simple interval fails."""
    if total <= 0 or not 0 <= count <= total:
        raise ValueError("need 0 <= count <= total and total > 0")
    p = count / total
    denominator = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denominator
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denominator
    return Share(
        count, total, 100 * p, 100 * max(0.0, centre - half), 100 * min(1.0, centre + half)
    )
