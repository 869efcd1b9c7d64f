"""Charts of the console's usage page, drawn on the server as SVG (no
script, nothing inline that the page's CSP refuses: colours come from the
stylesheet by class). Each chart is plain geometry for the template."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["Chart", "bar_chart", "line_chart"]

WIDTH = 720
HEIGHT = 220
LEFT = 48
RIGHT = 8
TOP = 10
BOTTOM = 24


@dataclass(frozen=True, slots=True)
class Rect:
    x: float
    y: float
    width: float
    height: float
    css: str
    title: str


@dataclass(frozen=True, slots=True)
class Line:
    points: str
    css: str


@dataclass
class Chart:
    width: int = WIDTH
    height: int = HEIGHT
    rects: list[Rect] = field(default_factory=list)
    lines: list[Line] = field(default_factory=list)
    y_ticks: list[tuple[float, str]] = field(default_factory=list)
    x_ticks: list[tuple[float, str]] = field(default_factory=list)
    left: int = LEFT
    right: int = WIDTH - RIGHT
    top: int = TOP
    bottom: int = HEIGHT - BOTTOM


def _nice_ceiling(value: float) -> float:
    """1, 2 or 5 times a power of ten, at least ``value`` (1 for nothing)."""
    if value <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if value <= step * power:
            return step * power
    return 10 * power


def _number(value: float) -> str:
    return f"{value:g}" if value < 10_000 else f"{value / 1000:g}k"


def _axes(chart: Chart, minutes: Sequence[int], top_value: float) -> None:
    span = chart.bottom - chart.top
    chart.y_ticks = [(chart.bottom - span * f, _number(top_value * f)) for f in (0, 0.5, 1)]
    count = len(minutes)
    if not count:
        return
    step = max(1, math.ceil(count / 6))
    slot = (chart.right - chart.left) / count
    chart.x_ticks = [
        (chart.left + slot * (i + 0.5), time.strftime("%H:%M", time.gmtime(minutes[i])))
        for i in range(0, count, step)
    ]


def bar_chart(minutes: Sequence[int], stacks: Sequence[tuple[str, str, Sequence[int]]]) -> Chart:
    """One bar per minute, ``stacks`` (css class, label, value per minute)
    piled bottom up."""
    chart = Chart()
    totals = [sum(values[i] for _, _, values in stacks) for i in range(len(minutes))]
    top_value = _nice_ceiling(max(totals, default=0))
    _axes(chart, minutes, top_value)
    if not minutes:
        return chart
    slot = (chart.right - chart.left) / len(minutes)
    gap = min(2.0, slot * 0.2)
    scale = (chart.bottom - chart.top) / top_value
    for i, minute in enumerate(minutes):
        y = float(chart.bottom)
        clock = time.strftime("%H:%M", time.gmtime(minute))
        for css, label, values in stacks:
            if values[i]:
                height = values[i] * scale
                y -= height
                title = f"{clock} {label}: {values[i]}"
                chart.rects.append(
                    Rect(chart.left + slot * i + gap / 2, y, slot - gap, height, css, title)
                )
    return chart


def line_chart(
    minutes: Sequence[int], series: Sequence[tuple[str, Sequence[float | None]]]
) -> Chart:
    """One polyline per series (css class, value per minute; None: no point,
    the line breaks)."""
    chart = Chart()
    values = [v for _, points in series for v in points if v is not None]
    top_value = _nice_ceiling(max(values, default=0))
    _axes(chart, minutes, top_value)
    if not minutes:
        return chart
    slot = (chart.right - chart.left) / len(minutes)
    scale = (chart.bottom - chart.top) / top_value
    for css, points in series:
        run: list[tuple[float, float]] = []
        for i, value in enumerate([*points, None]):
            if value is not None:
                run.append((chart.left + slot * (i + 0.5), chart.bottom - value * scale))
                continue
            if len(run) == 1:  # a lone minute: a short dash, or nothing would show
                x, y = run[0]
                run = [(x - 3, y), (x + 3, y)]
            if run:
                chart.lines.append(Line(" ".join(f"{x:.1f},{y:.1f}" for x, y in run), css))
            run = []
    return chart
