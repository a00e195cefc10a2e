"""Bar charts as inline SVG, drawn on the server: no JavaScript, no third-party files.

Pure functions from numbers to markup. Every piece of text is escaped here, so the result is
safe to mark as such. Styling uses SVG presentation attributes (``fill=``, ``font-size=``) and
never ``style=``, so the charts keep working under a strict Content Security Policy. Each
chart is one image to assistive technology (``role="img"`` named by its ``<title>``); the page
shows the same numbers in a table for screen readers.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

# Contrast against the white page (WCAG 2.1): bars need 3:1 (non-text), text 4.5:1.
BAR_FILL = "#0a58ca"  # 6.4:1
URGENT_FILL = "#b02a37"  # 6.5:1
TEXT_FILL = "#212529"  # 15.4:1
MUTED_TEXT_FILL = "#495057"  # 8.2:1, tick labels
AXIS_STROKE = "#6c757d"  # 4.7:1
GRID_STROKE = "#dee2e6"  # decorative only: every value is printed or in the table
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif"

COLUMN_CHART_WIDTH = 720
_ID_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")


@dataclass(frozen=True)
class Bar:
    label: str  # in full: the bar's tooltip and the table's row heading
    value: int
    axis_label: str | None = None  # shorter text under a column; None: no label
    fill: str = BAR_FILL


def column_chart(
    bars: Sequence[Bar], *, chart_id: str, title: str, description: str = ""
) -> Markup:
    """Vertical bars over time, one per item, left to right, with a value axis."""
    height, top, bottom, left, right = 260, 24, 44, 44, 12
    plot_w, plot_h = COLUMN_CHART_WIDTH - left - right, height - top - bottom
    ticks = _ticks(max((bar.value for bar in bars), default=0))
    y_max = ticks[-1]
    baseline = top + plot_h
    slot = plot_w / max(len(bars), 1)
    bar_w = slot * 0.7
    # Label every n-th column so labels never overlap (about 13 fit on the axis).
    label_every = max(1, math.ceil(len(bars) / 13))
    show_values = len(bars) <= 26

    parts: list[str] = [_open(chart_id, title, description, COLUMN_CHART_WIDTH, height)]
    for tick in ticks:
        y = baseline - plot_h * tick / y_max
        parts.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{COLUMN_CHART_WIDTH - right}" y2="{y:.1f}" '
            f'stroke="{GRID_STROKE}" stroke-width="1"/>'
            f'<text x="{left - 6}" y="{y:.1f}" text-anchor="end" dominant-baseline="central" '
            f'fill="{MUTED_TEXT_FILL}">{tick}</text>'
        )
    for index, bar in enumerate(bars):
        x = left + slot * index + (slot - bar_w) / 2
        h = plot_h * bar.value / y_max
        centre = x + bar_w / 2
        parts.append(
            f'<rect x="{x:.1f}" y="{baseline - h:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
            f'fill="{_colour(bar.fill)}"><title>{escape(bar.label)}: {bar.value}</title></rect>'
        )
        if show_values and bar.value:
            parts.append(
                f'<text x="{centre:.1f}" y="{baseline - h - 5:.1f}" text-anchor="middle" '
                f'fill="{TEXT_FILL}">{bar.value}</text>'
            )
        if bar.axis_label and index % label_every == 0:
            parts.append(
                f'<text x="{centre:.1f}" y="{baseline + 18}" text-anchor="middle" '
                f'fill="{MUTED_TEXT_FILL}">{escape(bar.axis_label)}</text>'
            )
    parts.append(
        f'<line x1="{left}" y1="{baseline}" x2="{COLUMN_CHART_WIDTH - right}" y2="{baseline}" '
        f'stroke="{AXIS_STROKE}" stroke-width="1"/>'
    )
    parts.append("</svg>")
    # Safe: every value above is escaped or numeric.
    return Markup("".join(parts))  # noqa: S704  # nosec B704


def bar_chart(bars: Sequence[Bar], *, chart_id: str, title: str, description: str = "") -> Markup:
    """Horizontal bars, one per row, each labelled above its bar with the value at the bar's
    end.

    Drawn without a viewBox, so it is as wide as its box at any screen size and its text
    never shrinks: the bars are lengths in per cent of that width. It was a fixed drawing
    wider than a phone, whose bars and numbers sat beyond the screen's edge until scrolled.
    """
    label_h, bar_h, gap, pad = 18, 18, 10, 4
    row_h = label_h + bar_h + gap
    area = 85  # per cent of the width; the rest holds the value at the longest bar's end
    height = pad * 2 + row_h * max(len(bars), 1) - gap
    top_value = max((bar.value for bar in bars), default=0) or 1

    parts: list[str] = [_open(chart_id, title, description, None, height, "insights-bars")]
    for index, bar in enumerate(bars):
        y = pad + row_h * index
        w = area * bar.value / top_value
        centre = y + label_h + bar_h / 2
        parts.append(
            f'<text x="0" y="{y + label_h - 5}" fill="{TEXT_FILL}">'
            f"{escape(_fit(bar.label, 40))}</text>"
            f'<rect x="0" y="{y + label_h}" width="{w:.1f}%" height="{bar_h}" '
            f'fill="{_colour(bar.fill)}"><title>{escape(bar.label)}: {bar.value}</title></rect>'
            f'<text x="{w:.1f}%" dx="6" y="{centre:.1f}" dominant-baseline="central" '
            f'fill="{TEXT_FILL}" font-weight="600">{bar.value}</text>'
        )
    parts.append("</svg>")
    # Safe: every value above is escaped or numeric.
    return Markup("".join(parts))  # noqa: S704  # nosec B704


def _open(
    chart_id: str,
    title: str,
    description: str,
    width: int | None,
    height: int,
    css_class: str = "insights-chart",
) -> str:
    """The chart's ``<svg>`` and its name. With a ``width``, a drawing scaled to its box
    (``viewBox``); without one, as wide as its box and ``height`` pixels tall."""
    if not _ID_RE.match(chart_id):
        raise ValueError(f"not a usable element id: {chart_id!r}")
    labelled = f"{chart_id}-title"
    desc = ""
    described = ""
    if description:
        desc = f'<desc id="{chart_id}-desc">{escape(description)}</desc>'
        described = f' aria-describedby="{chart_id}-desc"'
    size = (
        f'viewBox="0 0 {width} {height}" width="100%" preserveAspectRatio="xMinYMin meet"'
        if width
        else f'width="100%" height="{height}"'
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" id="{chart_id}" class="{css_class}" '
        f'role="img" aria-labelledby="{labelled}"{described} {size} '
        f'font-family="{FONT}" font-size="13">'
        f'<title id="{labelled}">{escape(title)}</title>{desc}'
    )


def _ticks(top_value: int) -> list[int]:
    """Whole-number gridlines from 0 to at least ``top_value``: at most five steps of 1, 2 or
    5 times a power of ten."""
    if top_value <= 0:
        return [0, 1]
    magnitude = 1
    while True:
        for factor in (1, 2, 5):
            step = factor * magnitude
            if math.ceil(top_value / step) <= 5:
                return list(range(0, step * math.ceil(top_value / step) + 1, step))
        magnitude *= 10


def _fit(label: str, limit: int) -> str:
    """Shorten a label that would run off the chart; the tooltip and table keep it whole."""
    return label if len(label) <= limit else label[: limit - 1].rstrip() + "…"


_COLOUR_RE = re.compile(r"^#[0-9a-fA-F]{6}$")


def _colour(value: str) -> str:
    if not _COLOUR_RE.match(value):
        raise ValueError(f"not a #rrggbb colour: {value!r}")
    return value
