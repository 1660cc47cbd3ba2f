"""The status page's time series: what each monitoring run of one (project, environment)
recorded, one point per run (its window), read from the typed summary
(:class:`~modelops.core.monitor_record.MonitorSummary`) and nothing else.

Per window:

- **cost per 1,000 decisions** and **ROC-AUC**, *estimated* (the run's confidence-based
  estimate over its look-back window, ``findings.estimated.window``, with its sampling band) and
  *realised* (the live metrics on the window's matured labels, ``findings.performance.metrics``;
  its band is the live-drop interval when the primary metric is the one plotted: that interval
  bounds ``live - gate``, so the band is ``gate + [low, high]``, mirrored for a metric where lower
  is better); the **gate-time value** of the serving version (``findings.performance.gate``, else
  the estimate's ``gate_cost_per_1000`` / ``gate_roc_auc``);
- the **drift share** (``findings.drift.share``) against the project's ``monitoring.drift_share``;
- each decided **action** (rollback, retrain, propose, alert) with its reason and what became of
  it (``outcomes``).

A run with no value for a series (no labels matured yet, no estimate) keeps its place with an
empty point, so every series has exactly one point per window. The newest run's estimated chunks
(``findings.estimated.chunks``) are a series of their own, one point per chunk.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from modelops.core.estimation.cbpe import ChunkEstimate
from modelops.core.metrics import direction
from modelops.core.monitor_record import MonitorSummary

COST = "cost_per_1000"
ROC_AUC = "roc_auc"
DRIFT = "drift_share"
CHUNKS = "chunks"


@dataclass(frozen=True)
class Point:
    """One window's value (None: nothing recorded) and its band (None: no band)."""

    value: float | None
    low: float | None = None
    high: float | None = None
    note: str = ""
    alarm: bool = False
    """The run judged this value worse than at the gate (the estimate's ``worse``, the live
    drop's ``judged and significant and material``): drawn ringed in red."""


@dataclass(frozen=True)
class Series:
    """``kind``: estimated, realised, drift (one point per window)."""

    name: str
    kind: str
    points: tuple[Point, ...]


@dataclass(frozen=True)
class Marker:
    """An action decided in window ``index``; ``text`` its kind, reason and outcome."""

    index: int
    kind: str
    text: str


@dataclass(frozen=True)
class Window:
    """One monitoring run: its label on the time axis, its page, its version."""

    label: str
    title: str
    run_id: str
    version: str
    page: str = ""


@dataclass(frozen=True)
class Chart:
    """One plot: ``key`` names it in the page (``data-chart``); ``gate`` holds one reference
    value per window (None where unknown), drawn as a stepped line."""

    key: str
    title: str
    unit: str
    windows: tuple[Window, ...]
    series: tuple[Series, ...]
    gate: tuple[float | None, ...] = ()
    gate_label: str = "gate-time value"
    markers: tuple[Marker, ...] = ()
    higher_is_better: bool | None = None


@dataclass(frozen=True)
class Panel:
    """The charts of one (project, environment)."""

    project: str
    environment: str
    charts: tuple[Chart, ...] = field(default_factory=tuple)


def finite(value: Any) -> float | None:
    """``value`` as a float when it is a finite number, else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def panels(
    runs: list[tuple[MonitorSummary, str]], drift_limits: dict[str, float | None] | None = None
) -> list[Panel]:
    """One panel per (project, environment) of ``runs`` (``(summary, run page)``), its windows
    ordered by data time (``as_of``, then ``started_at``); ``drift_limits`` per project."""
    grouped: dict[tuple[str, str], list[tuple[MonitorSummary, str]]] = {}
    for summary, page in runs:
        grouped.setdefault((summary.project, summary.environment), []).append((summary, page))
    out = []
    for (project, environment), members in sorted(grouped.items()):
        members.sort(key=lambda m: (_moment(m[0].as_of), _moment(m[0].started_at), m[0].run_id))
        limit = (drift_limits or {}).get(project)
        out.append(Panel(project, environment, charts(members, limit)))
    return out


def _moment(text: str) -> datetime:
    """An ISO time as an aware UTC datetime (naive: taken as UTC); unreadable: the earliest."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def charts(runs: list[tuple[MonitorSummary, str]], drift_limit: float | None) -> tuple[Chart, ...]:
    """The charts of one (project, environment), ``runs`` oldest first."""
    summaries = [s for s, _ in runs]
    ends = [_moment(s.as_of).astimezone(UTC) for s in summaries]
    same_day = len({e.date() for e in ends}) < len(ends)  # the time tells such runs apart
    windows = tuple(
        Window(
            label=f"{end:%m-%d %H:%M}" if same_day else f"{end:%Y-%m-%d}",
            title=f"run {s.run_id}: window {s.window.start[:16]} .. {s.window.end[:16]}, "
            f"v{s.version}" + (" (dry run)" if s.dry_run else ""),
            run_id=s.run_id,
            version=s.version,
            page=page,
        )
        for (s, page), end in zip(runs, ends, strict=True)
    )
    markers = tuple(m for i, s in enumerate(summaries) for m in actions(i, s))
    out = [
        performance_chart(COST, "Cost per 1,000 decisions", "cost", summaries, windows, markers),
        performance_chart(ROC_AUC, "ROC-AUC", "", summaries, windows, markers),
        Chart(
            key=DRIFT,
            title="Drift share (features drifting)",
            unit="share",
            windows=windows,
            series=(Series("drift share", "drift", tuple(drift_point(s) for s in summaries)),),
            gate=tuple(drift_limit for _ in summaries) if drift_limit is not None else (),
            gate_label="monitoring.drift_share (a window drifts at or above it)",
            markers=markers,
            higher_is_better=False,
        ),
    ]
    chunk_chart = newest_chunks(runs)
    if chunk_chart is not None:
        out.append(chunk_chart)
    return tuple(out)


def performance_chart(
    metric: str,
    title: str,
    unit: str,
    summaries: list[MonitorSummary],
    windows: tuple[Window, ...],
    markers: tuple[Marker, ...],
) -> Chart:
    """Estimated and realised ``metric`` per window, with the gate-time value."""
    return Chart(
        key=metric,
        title=title,
        unit=unit,
        windows=windows,
        series=(
            Series("estimated", "estimated", tuple(estimated_point(s, metric) for s in summaries)),
            Series("realised", "realised", tuple(realised_point(s, metric) for s in summaries)),
        ),
        gate=tuple(gate_value(s, metric) for s in summaries),
        markers=markers,
        higher_is_better=direction(metric) > 0,
    )


def _estimate_point(estimate: ChunkEstimate, metric: str) -> Point:
    """A chunk estimate's ``metric`` (``cost_per_1000`` / ``roc_auc``) and its band."""
    value = finite(getattr(estimate, metric))
    low = finite(getattr(estimate, f"{metric}_low"))
    high = finite(getattr(estimate, f"{metric}_high"))
    if value is None:
        return Point(None, note=f"{metric} not estimable ({estimate.rows} predictions)")
    return Point(value, low, high, f"{estimate.rows} predictions; {estimate.label}")


def estimated_point(summary: MonitorSummary, metric: str) -> Point:
    """The estimate over the run's whole window (``findings.estimated.window``); for cost, what
    the run concluded and, once labels matured, the check of the estimate against them."""
    estimated = summary.findings.estimated
    if estimated is None:
        return Point(None, note="not estimated in this run")
    point = _estimate_point(estimated.window, metric)
    if metric != COST or point.value is None:
        return point
    notes = [point.note, estimated.detail]
    check = summary.findings.estimate_check
    if check is not None:
        notes.append(
            f"on {check.rows} matured predictions: realised {check.realised_cost_per_1000:,.4g}"
            f" vs estimated {check.estimated_cost_per_1000:,.4g}"
            + (" (significant gap: the estimate no longer holds)" if check.significant else "")
        )
    return Point(
        point.value, point.low, point.high, "; ".join(n for n in notes if n), estimated.worse
    )


def realised_point(summary: MonitorSummary, metric: str) -> Point:
    """The live ``metric`` on the window's matured labels; the band from the live-drop interval
    when ``metric`` is the one it judges."""
    performance = summary.findings.performance
    if performance is None:
        return Point(None, note="no matured labels in this window")
    value = finite(performance.metrics.get(metric))
    if value is None:
        return Point(None, note=f"no realised {metric} ({performance.rows} labelled rows)")
    note = f"{performance.rows} labelled predictions, {performance.positives} positives"
    drop = performance.drop
    if drop is None or drop.metric != metric:
        return Point(value, note=note)
    gate = finite(drop.gate)
    low = finite(drop.interval.get("low"))
    high = finite(drop.interval.get("high"))
    if gate is None or low is None or high is None:
        return Point(value, note=note)
    worse = drop.judged and drop.significant and drop.material
    if direction(metric) >= 0:  # the interval bounds live - gate
        return Point(value, gate + low, gate + high, note, worse)
    return Point(value, gate - high, gate - low, note, worse)  # it bounds gate - live


def gate_value(summary: MonitorSummary, metric: str) -> float | None:
    """The serving version's gate-time ``metric``: the gate's record, else the estimate's."""
    performance = summary.findings.performance
    if performance is not None and performance.gate:
        value = finite(performance.gate.get(metric))
        if value is not None:
            return value
    estimated = summary.findings.estimated
    if estimated is None:
        return None
    return finite(getattr(estimated, f"gate_{metric}"))


def drift_point(summary: MonitorSummary) -> Point:
    drift = summary.findings.drift
    if drift is None:
        return Point(None, note="drift not measured")
    share = finite(drift.share)
    if share is None:
        return Point(None, note="drift share not computable")
    counted = ", ".join(drift.drifted[:8]) or "none"
    return Point(share, note=f"drifting: {counted}")


def actions(index: int, summary: MonitorSummary) -> list[Marker]:
    """The run's decided actions, each with its reason and what became of it."""
    done: dict[str, Any] = {o.kind: o for o in summary.outcomes}
    markers = []
    for action in summary.decision.actions:
        outcome = done.get(action.kind)
        if summary.dry_run:
            what = "dry run: not acted on"
        elif outcome is None:
            what = "no outcome recorded"
        else:
            what = ("done: " if outcome.done else "not done: ") + outcome.detail
        target = f" to v{action.target}" if action.target and action.kind == "rollback" else ""
        text = f"{action.kind}{target}: {action.reason} ({what})"
        markers.append(Marker(index, action.kind, text))
    return markers


def newest_chunks(runs: list[tuple[MonitorSummary, str]]) -> Chart | None:
    """Estimated cost per 1,000 per chunk of the newest run that estimated chunks."""
    for summary, page in reversed(runs):
        estimated = summary.findings.estimated
        if estimated is None or not estimated.chunks:
            continue
        chunks = estimated.chunks
        windows = tuple(
            Window(
                label=_chunk_label(c.start),
                title=f"chunk {_chunk_label(c.start)} .. {_chunk_label(c.end)}: {c.rows} rows",
                run_id=summary.run_id,
                version=summary.version,
                page=page,
            )
            for c in chunks
        )
        gate = finite(estimated.gate_cost_per_1000)
        return Chart(
            key=CHUNKS,
            title=f"Estimated cost per 1,000 per chunk, run {summary.run_id} (v{summary.version})",
            unit="cost",
            windows=windows,
            series=(
                Series("estimated", "estimated", tuple(_estimate_point(c, COST) for c in chunks)),
            ),
            gate=tuple(gate for _ in chunks) if gate is not None else (),
            higher_is_better=False,
        )
    return None


def _chunk_label(value: Any) -> str:
    if value is None:
        return "-"
    text = value.isoformat() if hasattr(value, "isoformat") else str(value)
    return text[:16].replace("T00:00", "").replace("T", " ")
