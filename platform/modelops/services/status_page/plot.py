"""Where a chart's marks go: the geometry of one server-side SVG plot.

:func:`layout` turns a :class:`~.series.Chart` into coordinates (a y scale with round ticks, one
x position per window, paths for the lines and bands, the stepped gate-time line, the action
markers); ``templates/chart.svg.j2`` draws them. Nothing here writes markup, so every text that
comes from data is escaped by the template.

Why SVG drawn on the server and not a JavaScript library (plotly): the site's pages carry no
script and forbid one (``Content-Security-Policy: default-src 'none'``), since they show text
from data; a chart of a few dozen windows is a few kilobytes of SVG, against 3.5 MB of
``plotly.min.js``; it prints, opens from ``file://``, from a CI artifact or an e-mail, and needs
no network. Hover text is SVG's ``<title>`` (the browser's own tooltip); each point links to its
run's page.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from modelops.services.status_page.series import Chart, Point

WIDTH = 760
HEIGHT = 230
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 14, 40
MAX_LABELS = 8
"""Most window labels written under the x axis (every window keeps its hover text)."""


@dataclass(frozen=True)
class Mark:
    """One point of a series: its position (None: no value), value text and hover text."""

    x: float
    y: float | None
    value: float | None
    text: str
    href: str
    alarm: bool = False


@dataclass(frozen=True)
class Line:
    name: str
    kind: str
    path: str
    band: str
    marks: tuple[Mark, ...]


@dataclass(frozen=True)
class Tick:
    y: float
    text: str


@dataclass(frozen=True)
class Label:
    x: float
    text: str


@dataclass(frozen=True)
class Flag:
    """An action marker at the top of the plot area."""

    x: float
    kind: str
    text: str
    href: str


@dataclass(frozen=True)
class Layout:
    chart: Chart
    width: int
    height: int
    plot_left: int
    plot_right: int
    plot_top: int
    plot_bottom: int
    lines: tuple[Line, ...]
    ticks: tuple[Tick, ...]
    labels: tuple[Label, ...]
    gate_path: str
    gate_values: str
    gate_last: float | None
    flags: tuple[Flag, ...]
    empty: bool


def fmt(value: float | None) -> str:
    """A value as the page shows it (4 significant digits)."""
    if value is None:
        return "-"
    return f"{value:,.4g}" if abs(value) < 1e4 else f"{value:,.0f}"


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering ``[low, high]`` (1, 2, 2.5, 5 times a power of ten)."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return []
    if high <= low:
        pad = abs(low) * 0.05 or 0.5
        low, high = low - pad, high + pad
    raw = (high - low) / max(count - 1, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    first = math.floor(low / step) * step
    ticks = [round(first, 12)]
    while ticks[-1] < high - step * 1e-9 or len(ticks) < 2:
        ticks.append(round(first + step * len(ticks), 12))
    return ticks


def _values(chart: Chart) -> list[float]:
    found: list[float] = [g for g in chart.gate if g is not None]
    for series in chart.series:
        for p in series.points:
            found += [v for v in (p.value, p.low, p.high) if v is not None]
    return found


def _path(points: list[tuple[float, float] | None]) -> str:
    """An SVG path through ``points``, broken where a point is None."""
    parts: list[str] = []
    pen_down = False
    for point in points:
        if point is None:
            pen_down = False
            continue
        parts.append(f"{'L' if pen_down else 'M'}{point[0]:.1f},{point[1]:.1f}")
        pen_down = True
    return " ".join(parts)


def _band(xs: list[float], points: tuple[Point, ...], y: Scale) -> str:
    """Closed shapes from each run of consecutive points that have a band."""
    shapes: list[str] = []
    run: list[tuple[float, float, float]] = []
    for x, p in [*zip(xs, points, strict=True), (0.0, Point(None))]:
        if p.low is not None and p.high is not None:
            run.append((x, y(p.low), y(p.high)))
            continue
        if run:
            if len(run) == 1:  # one window: a thin bar
                x0, lo, hi = run[0]
                run = [(x0 - 3, lo, hi), (x0 + 3, lo, hi)]
            upper = _path([(a, h) for a, _, h in run])
            lower = " ".join(f"L{a:.1f},{lo:.1f}" for a, lo, _ in reversed(run))
            shapes.append(f"{upper} {lower} Z")
        run = []
    return " ".join(shapes)


class Scale:
    """Value to pixel (y grows downwards)."""

    def __init__(self, low: float, high: float, top: float, bottom: float) -> None:
        self.low, self.high, self.top, self.bottom = low, high, top, bottom

    def __call__(self, value: float) -> float:
        span = self.high - self.low or 1.0
        return self.bottom - (value - self.low) / span * (self.bottom - self.top)


def layout(chart: Chart, width: int = WIDTH, height: int = HEIGHT) -> Layout:
    """The chart's coordinates in a ``width`` x ``height`` view box."""
    left, right, top, bottom = LEFT, width - RIGHT, TOP, height - BOTTOM
    n = len(chart.windows)
    step = (right - left) / max(n, 1)
    xs = [left + step * (i + 0.5) for i in range(n)]
    values = _values(chart)
    ticks_at = nice_ticks(min(values), max(values)) if values else []
    y = Scale(ticks_at[0], ticks_at[-1], top, bottom) if ticks_at else Scale(0, 1, top, bottom)
    lines = []
    for series in chart.series:
        marks = tuple(
            Mark(
                x=x,
                y=None if p.value is None else y(p.value),
                value=p.value,
                text=_hover(chart, i, series.name, p),
                href=chart.windows[i].page,
                alarm=p.alarm,
            )
            for i, (x, p) in enumerate(zip(xs, series.points, strict=True))
        )
        path = _path([None if m.y is None else (m.x, m.y) for m in marks])
        lines.append(Line(series.name, series.kind, path, _band(xs, series.points, y), marks))
    gate_path = _gate_path(xs, step, chart.gate, y)
    known = [g for g in chart.gate if g is not None]
    every = max(1, math.ceil(n / MAX_LABELS))
    labels = tuple(
        Label(x, w.label) for i, (x, w) in enumerate(zip(xs, chart.windows, strict=True))
        if (n - 1 - i) % every == 0  # counted from the newest window, which is always labelled
    )  # fmt: skip
    flags = tuple(
        Flag(xs[m.index], m.kind, m.text, chart.windows[m.index].page) for m in chart.markers
    )
    return Layout(
        chart=chart,
        width=width,
        height=height,
        plot_left=left,
        plot_right=right,
        plot_top=top,
        plot_bottom=bottom,
        lines=tuple(lines),
        ticks=tuple(Tick(y(t), fmt(t)) for t in ticks_at),
        labels=labels,
        gate_path=gate_path,
        gate_values=" ".join("" if g is None else repr(g) for g in chart.gate),
        gate_last=known[-1] if known else None,
        flags=flags,
        empty=not values,
    )


def _gate_path(xs: list[float], step: float, gate: tuple[float | None, ...], y: Scale) -> str:
    """The gate-time value as a step per window (a new version brings a new level)."""
    points: list[tuple[float, float] | None] = []
    for x, value in zip(xs, gate, strict=False):
        if value is None:
            points.append(None)
            continue
        points += [(x - step / 2, y(value)), (x + step / 2, y(value))]
    return _path(points)


def _hover(chart: Chart, index: int, name: str, point: Point) -> str:
    window = chart.windows[index]
    if point.value is None:
        shown = "no value"
    elif point.low is not None and point.high is not None:
        shown = f"{fmt(point.value)} (band {fmt(point.low)} .. {fmt(point.high)})"
    else:
        shown = fmt(point.value)
    gate = chart.gate[index] if index < len(chart.gate) else None
    against = f"; {chart.gate_label} {fmt(gate)}" if gate is not None else ""
    note = f"; {point.note}" if point.note else ""
    if point.alarm:
        note += "; judged worse than at the gate"
    return f"{name} {chart.title}: {shown}{against}{note}\n{window.title}"
