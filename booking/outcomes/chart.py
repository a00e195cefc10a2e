"""A patient's scores over time as an inline SVG line chart, drawn on the server (as the
insights page's charts, ``booking.insights.charts``, which a feature below the blueprints may
not import): no JavaScript, no style attributes (strict CSP), every text escaped.

The chart is one image to assistive technology (``role="img"`` named by its ``<title>`` and
described by its ``<desc>``); the table beside it holds the same numbers and is its text
alternative. Lines differ by dash pattern and marker shape as well as colour, so they can be
told apart without colour.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

# Contrast against the white page (WCAG 2.1): lines and markers need 3:1, text 4.5:1.
SERIES_STYLES = (
    ("#0a58ca", ""),  # blue, solid (6.4:1)
    ("#b02a37", "6 4"),  # red, dashed (6.5:1)
    ("#146c43", "2 3"),  # green, dotted (6.3:1)
    ("#6f42c1", "8 3 2 3"),  # purple, dash-dot (6.9:1)
)
MARKERS = ("circle", "square", "triangle", "diamond")
TEXT_FILL = "#212529"
MUTED_TEXT_FILL = "#495057"
AXIS_STROKE = "#6c757d"
GRID_STROKE = "#dee2e6"
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif"
WIDTH = 640
_ID_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")


@dataclass(frozen=True)
class Series:
    label: str
    values: Sequence[float | None]  # one per x label; None: not answered (a gap)


def line_chart(
    series: Sequence[Series],
    x_labels: Sequence[str],
    *,
    chart_id: str,
    title: str,
    description: str,
    y_max: float,
    y_step: float,
) -> Markup:
    """Lines over categories (baseline, then each time point), on a fixed 0..``y_max``
    scale (the measure's own range, so a small change does not look large)."""
    if not _ID_RE.match(chart_id):
        raise ValueError(f"not a usable element id: {chart_id!r}")
    if len(series) > len(SERIES_STYLES):
        raise ValueError("too many lines to tell apart")
    legend_rows = len(series)
    top, bottom, left, right = 16, 40 + 20 * legend_rows, 44, 16
    height = 240 + 20 * legend_rows
    plot_w, plot_h = WIDTH - left - right, height - top - bottom
    base = top + plot_h
    slot = plot_w / max(len(x_labels), 1)

    def x_at(index: int) -> float:
        return left + slot * index + slot / 2

    def y_at(value: float) -> float:
        return base - plot_h * min(max(value, 0.0), y_max) / y_max

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" id="{chart_id}" class="insights-chart" '
        f'role="img" aria-labelledby="{chart_id}-title" aria-describedby="{chart_id}-desc" '
        f'viewBox="0 0 {WIDTH} {height}" width="100%" preserveAspectRatio="xMinYMin meet" '
        f'font-family="{FONT}" font-size="13">'
        f'<title id="{chart_id}-title">{escape(title)}</title>'
        f'<desc id="{chart_id}-desc">{escape(description)}</desc>'
    ]
    tick = 0.0
    while tick <= y_max + 1e-9:
        y = y_at(tick)
        parts.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{WIDTH - right}" y2="{y:.1f}" '
            f'stroke="{GRID_STROKE}" stroke-width="1"/>'
            f'<text x="{left - 6}" y="{y:.1f}" text-anchor="end" dominant-baseline="central" '
            f'fill="{MUTED_TEXT_FILL}">{_number(tick)}</text>'
        )
        tick += y_step
    parts.append(
        f'<line x1="{left}" y1="{base}" x2="{WIDTH - right}" y2="{base}" '
        f'stroke="{AXIS_STROKE}" stroke-width="1"/>'
    )
    for index, label in enumerate(x_labels):
        parts.append(
            f'<text x="{x_at(index):.1f}" y="{base + 18}" text-anchor="middle" '
            f'fill="{MUTED_TEXT_FILL}">{escape(label)}</text>'
        )
    for number, line in enumerate(series):
        colour, dash = SERIES_STYLES[number]
        dashed = f' stroke-dasharray="{dash}"' if dash else ""
        # A gap (an unanswered time point) breaks the line rather than bridging it.
        runs: list[list[tuple[float, float]]] = [[]]
        for index, value in enumerate(line.values):
            if value is None:
                runs.append([])
            else:
                runs[-1].append((x_at(index), y_at(value)))
        for run in runs:
            if len(run) > 1:
                points = " ".join(f"{x:.1f},{y:.1f}" for x, y in run)
                parts.append(
                    f'<polyline points="{points}" fill="none" stroke="{colour}" '
                    f'stroke-width="2.5"{dashed}/>'
                )
        for index, value in enumerate(line.values):
            if value is not None:
                tooltip = f"{line.label}, {x_labels[index]}: {_number(value)}"
                parts.append(_marker(MARKERS[number], x_at(index), y_at(value), colour, tooltip))
        legend_y = base + 40 + 20 * number
        parts.append(
            f'<line x1="{left}" y1="{legend_y}" x2="{left + 32}" y2="{legend_y}" '
            f'stroke="{colour}" stroke-width="2.5"{dashed}/>'
            + _marker(MARKERS[number], left + 16, legend_y, colour)
            + f'<text x="{left + 42}" y="{legend_y}" dominant-baseline="central" '
            f'fill="{TEXT_FILL}">{escape(line.label)}</text>'
        )
    parts.append("</svg>")
    # Safe: every value above is escaped or numeric.
    return Markup("".join(parts))  # noqa: S704  # nosec B704


def _marker(shape: str, x: float, y: float, colour: str, tooltip: str = "") -> str:
    r = 5
    if shape == "circle":
        tag, geometry = "circle", f'cx="{x:.1f}" cy="{y:.1f}" r="{r}"'
    elif shape == "square":
        tag = "rect"
        geometry = f'x="{x - r:.1f}" y="{y - r:.1f}" width="{2 * r}" height="{2 * r}"'
    else:
        corners = (
            [(x, y - r - 1), (x + r + 1, y + r), (x - r - 1, y + r)]
            if shape == "triangle"
            else [(x, y - r - 1), (x + r + 1, y), (x, y + r + 1), (x - r - 1, y)]
        )
        tag = "polygon"
        geometry = 'points="' + " ".join(f"{cx:.1f},{cy:.1f}" for cx, cy in corners) + '"'
    if not tooltip:
        return f'<{tag} {geometry} fill="{colour}"/>'
    return f'<{tag} {geometry} fill="{colour}"><title>{escape(tooltip)}</title></{tag}>'


def _number(value: float) -> str:
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"
