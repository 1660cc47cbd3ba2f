"""The status page's plots: the series read from monitor summaries (one point per window, the
bands, the gate-time line, the actions) and the SVG written into the project page; the index's
short "why" with relative links.

``write_runs`` (seeded) writes the monitoring runs; tests/integration/test_status_page_browser.py
opens the same site in Chromium.
"""

from __future__ import annotations

import importlib.util
import json
import re
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modelops.config.settings import Settings
from modelops.core.monitor_record import MonitorSummary
from modelops.services import status_page
from modelops.services.status_page import plot, reasons, series

PROJECT = "credit_risk"
MALICIOUS = '<script>alert("pwned")</script>'
WINDOWS = 12
GATE = {
    "1": {"cost_per_1000": 310.0, "roc_auc": 0.74},
    "2": {"cost_per_1000": 290.0, "roc_auc": 0.77},
}
ROLLBACK_AT = 9
ALERT_AT = 3
MATURED = 8
"""Runs 0..7 have matured labels (realised metrics); the newest ones do not yet."""
ESTIMATED_FROM = 2
"""Runs 0 and 1 predate estimation: no estimate."""
CHECKED_AT = 7
DROPPED_AT = 7
CHUNKS = 7


# ----------------------------------------------------------------------------- state


def _performance(i: int, rng: np.random.Generator, version: str) -> dict[str, Any]:
    """Live metrics on matured labels; ROC-AUC (the primary metric) with its live-drop
    interval, judged worse at DROPPED_AT."""
    gate = GATE[version]
    live_roc = float(gate["roc_auc"] + rng.normal(-0.02, 0.01))
    if i == DROPPED_AT:  # v2 judged worse on its matured labels
        live_roc = gate["roc_auc"] - 0.08
    gain = live_roc - gate["roc_auc"]
    low, high = gain - rng.uniform(0.005, 0.03), gain + rng.uniform(0.005, 0.03)
    material = i == DROPPED_AT
    return {
        "version": version,
        "rows": 800 + i,
        "positives": 40 + i,
        "metrics": {"roc_auc": live_roc, "cost_per_1000": float(rng.normal(330, 15))},
        "gate": gate,
        "gate_source": "verdict",
        "drop": {
            "metric": "roc_auc",
            "live": live_roc,
            "gate": gate["roc_auc"],
            "rows": 800 + i,
            "positives": 40 + i,
            "interval": {"estimate": live_roc - gate["roc_auc"], "low": low, "high": high},
            "half_width": (high - low) / 2,
            "max_drop": 0.05,
            "judged": True,
            "significant": bool(high < 0),
            "material": material,
            "detail": "live minus gate-time",
        },
    }


def _summary(i: int, rng: np.random.Generator, environment: str = "production") -> dict[str, Any]:
    """Run ``i`` of a seeded history: v1, then v2 from run 6 on, rolled back at ROLLBACK_AT;
    realised metrics only where labels matured; awkward values: no drift measured in run 4,
    a non-finite share (null) in run 5, a dry run in run 10."""
    as_of = datetime(2026, 3, 1, tzinfo=UTC) + timedelta(days=i)
    version = "2" if 6 <= i <= ROLLBACK_AT else "1"
    run_id = f"{as_of:%Y-%m-%dT%H-%M-%SZ}-{environment}"
    performance = _performance(i, rng, version) if i < MATURED else None
    drift: dict[str, Any] | None = None
    if i != 4:
        share = None if i == 5 else float(rng.uniform(0, 0.6))
        drift = {"method": "wasserstein", "share": share, "drifted": ["balance_min"], "scores": {}}
    actions: list[dict[str, Any]] = []
    if i == ALERT_AT:
        actions.append({"kind": "alert", "reason": "missing values in balance_min", "evidence": {}})
    if i == ROLLBACK_AT:
        actions.append({"kind": "rollback", "reason": MALICIOUS, "target": "1", "evidence": {}})
    outcomes = [
        {"kind": a["kind"], "done": True, "detail": f"{a['kind']} recorded"} for a in actions
    ]
    stamp = as_of.isoformat()
    estimated = _estimated(i, rng, version, as_of) if i >= ESTIMATED_FROM else None
    check = None
    if i == CHECKED_AT:
        check = {
            "cohorts": 3,
            "rows": 700,
            "positives": 35,
            "estimated_cost_per_1000": 300.0,
            "realised_cost_per_1000": 380.0,
            "gap": 80.0,
            "interval": {"estimate": 80.0, "low": 40.0, "high": 120.0},
            "significant": True,
            "detail": "the estimate no longer holds",
        }
    summary = {
        "run_id": run_id,
        "project": PROJECT,
        "environment": environment,
        "version": version,
        "started_at": stamp,
        "as_of": stamp,
        "window": {"start": (as_of - timedelta(days=7)).isoformat(), "end": stamp},
        "dry_run": i == 10,
        "action": ", ".join(a["kind"] for a in actions) or "none",
        "headline": "ok",
        "findings": {
            "project": PROJECT,
            "environment": environment,
            "version": version,
            "quality": {"rows": 1000},
            "tenure": {"moved_by": "promote", "moved_at": None, "first_seen": None, "as_of": stamp},
            "drift": drift,
            "performance": performance,
            "estimated": estimated,
            "estimate_check": check,
        },
        "decision": {"actions": actions, "headline": "ok", "dry_run": i == 10},
        "reference": {},
        "reports": {
            "drift_html": None,
            "drift_json": None,
            "performance_html": None,
            "sample": {"rows_used": 0, "reference_rows_used": 0},
        },
        "notes": [],
        "outcomes": outcomes if i != 10 else [],
        "timings": {},
    }
    return MonitorSummary.model_validate(summary).dump()  # exactly what a reader accepts


def _chunk(
    rng: np.random.Generator, start: datetime | None, days: int, rows: int
) -> dict[str, Any]:
    cost = float(rng.normal(320, 20))
    half = float(rng.uniform(10, 40))
    roc = float(rng.normal(0.75, 0.01))
    return {
        "start": start.isoformat() if start else None,
        "end": (start + timedelta(days=days)).isoformat() if start else None,
        "rows": rows,
        "expected_positives": rows * 0.05,
        "alert_rate": 0.1,
        "precision": 0.3,
        "recall": 0.6,
        "cost_per_1000": cost,
        "cost_per_1000_low": cost - half,
        "cost_per_1000_high": cost + half,
        "roc_auc": roc,
        "roc_auc_low": roc - 0.02,
        "roc_auc_high": roc + 0.02,
    }


def _estimated(i: int, rng: np.random.Generator, version: str, as_of: datetime) -> dict[str, Any]:
    """The run's CBPE record: CHUNKS daily chunks and the whole window."""
    start = as_of - timedelta(days=CHUNKS)
    chunks = [_chunk(rng, start + timedelta(days=d), 1, 150) for d in range(CHUNKS)]
    return {
        "version": version,
        "calibration": {"method": "isotonic", "ece_raw": 0.04, "ece_calibrated": 0.01},
        "threshold": 0.3,
        "gate_cost_per_1000": GATE[version]["cost_per_1000"],
        "gate_roc_auc": GATE[version]["roc_auc"],
        "chunks": chunks,
        "window": _chunk(rng, start, CHUNKS, 150 * CHUNKS),
        "worse": i == ROLLBACK_AT,
        "judged": True,
        "detail": "estimated cost against the gate-time cost",
    }


def write_runs(settings: Settings, seed: int = 19, windows: int = WINDOWS) -> list[dict[str, Any]]:
    """``windows`` monitoring runs of production (and two of staging), written where the monitor
    writes them; the production summaries, oldest first."""
    rng = np.random.default_rng(seed)
    root = status_page.monitoring_dir(settings) / PROJECT
    written = []
    for environment, count in (("production", windows), ("staging", 2)):
        for i in range(count):
            summary = _summary(i, rng, environment)
            folder = root / summary["run_id"]
            folder.mkdir(parents=True)
            (folder / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
            if environment == "production":
                written.append(summary)
    return written


def _site_tests() -> Any:
    """tests/unit/test_status_page.py (its state and its link crawler)."""
    path = Path(__file__).with_name("test_status_page.py")
    spec = importlib.util.spec_from_file_location("status_page_site_tests", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _typed(summaries: list[dict[str, Any]]) -> list[tuple[MonitorSummary, str]]:
    return [(MonitorSummary.model_validate(s), f"run/{s['run_id']}.html") for s in summaries]


# ----------------------------------------------------------------------------- the series


def test_every_series_has_one_point_per_window_in_time_order(workspace: Settings) -> None:
    summaries = write_runs(workspace)
    shuffled = summaries[::-1]  # the page orders by data time, not by reading order
    (panel,) = series.panels(_typed(shuffled), {PROJECT: 0.3})
    assert (panel.project, panel.environment) == (PROJECT, "production")
    by_key = {c.key: c for c in panel.charts}
    assert set(by_key) >= {"cost_per_1000", "roc_auc", "drift_share"}
    for chart in by_key.values():
        if chart.key == series.CHUNKS:
            continue
        assert [w.run_id for w in chart.windows] == [s["run_id"] for s in summaries]
        assert all(len(s.points) == WINDOWS for s in chart.series)

    realised = next(s for s in by_key["roc_auc"].series if s.kind == "realised")
    values = [p.value for p in realised.points]
    assert values[:MATURED] == [
        s["findings"]["performance"]["metrics"]["roc_auc"] for s in summaries[:MATURED]
    ]
    assert values[MATURED:] == [None] * (WINDOWS - MATURED)
    assert [i for i, p in enumerate(realised.points) if p.alarm] == [DROPPED_AT]
    assert "no matured labels" in realised.points[-1].note
    # the band is gate + the live-drop interval of live - gate
    first = summaries[0]["findings"]["performance"]
    assert realised.points[0].low == pytest.approx(
        first["gate"]["roc_auc"] + first["drop"]["interval"]["low"]
    )
    assert realised.points[0].high == pytest.approx(
        first["gate"]["roc_auc"] + first["drop"]["interval"]["high"]
    )
    assert realised.points[0].low <= realised.points[0].value <= realised.points[0].high  # type: ignore[operator]
    # cost is not the judged metric: a point without a band
    cost = next(s for s in by_key["cost_per_1000"].series if s.kind == "realised")
    assert cost.points[0].value is not None and cost.points[0].low is None

    # the gate-time line follows the serving version (v2 from run 6 to the rollback); without
    # matured labels it comes from the estimate's record
    gate = by_key["cost_per_1000"].gate
    assert gate == tuple(GATE[s["version"]]["cost_per_1000"] for s in summaries)
    assert len(set(gate)) == 2

    estimated = next(s for s in by_key["cost_per_1000"].series if s.kind == "estimated")
    window = [
        s["findings"]["estimated"] and s["findings"]["estimated"]["window"] for s in summaries
    ]
    assert [p.value for p in estimated.points] == [w and w["cost_per_1000"] for w in window]
    assert [p.low for p in estimated.points] == [w and w["cost_per_1000_low"] for w in window]
    assert [p.high for p in estimated.points] == [w and w["cost_per_1000_high"] for w in window]
    assert estimated.points[0].value is None and "not estimated" in estimated.points[0].note
    assert "significant gap: the estimate no longer holds" in estimated.points[CHECKED_AT].note
    assert "expected performance if P(y|x) is unchanged" in estimated.points[2].note
    assert [i for i, p in enumerate(estimated.points) if p.alarm] == [ROLLBACK_AT]  # "worse"
    roc_estimated = next(s for s in by_key["roc_auc"].series if s.kind == "estimated")
    assert roc_estimated.points[-1].value == window[-1]["roc_auc"]

    chunks = by_key[series.CHUNKS]  # the newest run's chunks, one point each
    newest = summaries[-1]["findings"]["estimated"]["chunks"]
    assert len(chunks.windows) == CHUNKS and summaries[-1]["run_id"] in chunks.title
    assert [p.value for p in chunks.series[0].points] == [c["cost_per_1000"] for c in newest]
    assert chunks.gate == (GATE[summaries[-1]["version"]]["cost_per_1000"],) * CHUNKS

    drift = by_key["drift_share"]
    shares = [p.value for p in drift.series[0].points]
    assert shares[4] is None and shares[5] is None and shares[0] is not None
    assert drift.gate == (0.3,) * WINDOWS

    markers = {(m.index, m.kind) for m in by_key["roc_auc"].markers}
    assert markers == {(ALERT_AT, "alert"), (ROLLBACK_AT, "rollback")}
    rollback = next(m for m in by_key["roc_auc"].markers if m.kind == "rollback")
    assert rollback.text == f"rollback to v1: {MALICIOUS} (done: rollback recorded)"


def test_a_lower_is_better_band_is_mirrored_and_bad_numbers_are_no_points() -> None:
    summary = MonitorSummary.model_validate(_summary(0, np.random.default_rng(1)))
    performance = summary.findings.performance
    assert performance is not None and performance.drop is not None
    performance.drop.metric = "cost_per_1000"  # pretend cost were the judged metric
    performance.drop.gate = 300.0
    performance.drop.interval = {"estimate": -20.0, "low": -35.0, "high": -5.0}  # gate - live
    point = series.realised_point(summary, "cost_per_1000")
    assert (point.low, point.high) == (305.0, 335.0)  # live = gate - (gate - live)
    assert series.finite(float("nan")) is None and series.finite(True) is None
    assert series.finite(3) == 3.0
    assert series.estimated_point(summary, "cost_per_1000").value is None  # not estimated


def test_the_layout_puts_each_value_where_the_axis_says() -> None:
    assert plot.nice_ticks(0.0, 1.0) == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert plot.nice_ticks(301.0, 349.0)[0] <= 301.0 and plot.nice_ticks(301.0, 349.0)[-1] >= 349.0
    flat = plot.nice_ticks(5.0, 5.0)
    assert flat[0] < 5.0 < flat[-1]
    window = series.Window("d", "t", "r", "1", "p.html")
    chart = series.Chart(
        key="k",
        title="t",
        unit="",
        windows=(window,) * 4,
        series=(
            series.Series("s", "realised", tuple(series.Point(v) for v in (0.0, None, 0.5, 1.0))),
        ),
        gate=(0.25, 0.25, None, 0.75),
    )
    layout = plot.layout(chart)
    (line,) = layout.lines
    ys = [m.y for m in line.marks]
    assert ys[1] is None
    assert ys[0] == pytest.approx(layout.plot_bottom) and ys[3] == pytest.approx(layout.plot_top)
    assert ys[2] == pytest.approx((layout.plot_top + layout.plot_bottom) / 2)
    assert line.path.count("M") == 2  # broken at the missing window
    assert layout.gate_path.count("M") == 2 and layout.gate_last == 0.75
    xs = [m.x for m in line.marks]
    assert xs == sorted(xs) and layout.plot_left < xs[0] and xs[-1] < layout.plot_right


# ----------------------------------------------------------------------------- the page


class _Svg(HTMLParser):
    """Each chart's series (points and their values), gate line and action markers."""

    def __init__(self) -> None:
        super().__init__()
        self.charts: dict[str, dict[str, Any]] = {}
        self._chart: dict[str, Any] | None = None
        self._series: str | None = None
        self._title: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        classes = a.get("class", "").split()
        if tag == "svg" and "data-chart" in a:
            self._chart = {"windows": int(a["data-windows"]), "series": {}, "actions": []}
            self.charts.setdefault(a["data-chart"], self._chart)
        elif self._chart is None:
            return
        elif "series" in classes:
            self._series = a["data-series"]
            self._chart["series"][self._series] = {"declared": int(a["data-points"]), "values": []}
        elif "point" in classes and self._series:
            self._chart["series"][self._series]["values"].append(a["data-value"])
        elif "gate" in classes:
            self._chart["gate"] = a["data-values"].split(" ")
        elif "action" in classes:
            self._chart["actions"].append(a["data-kind"])
        if tag == "title":
            self._title = []

    def handle_data(self, data: str) -> None:
        if self._title is not None:
            self._title.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "title" and self._title is not None and self._chart is not None:
            self._chart.setdefault("titles", []).append("".join(self._title))
            self._title = None
        if tag == "svg":
            self._chart, self._series = None, None


def charts_of(html: str) -> dict[str, dict[str, Any]]:
    parser = _Svg()
    parser.feed(html)
    return parser.charts


def test_the_project_page_plots_every_window_without_a_script(
    workspace: Settings, tmp_path: Path
) -> None:
    summaries = write_runs(workspace)
    site = status_page.build(workspace, tmp_path / "site")
    html = (site.out / f"projects/{PROJECT}.html").read_text(encoding="utf-8")
    assert "<script" not in html.lower() and MALICIOUS not in html
    assert "&lt;script&gt;alert(" in html  # the rollback's reason, escaped, in its hover text
    sections = re.findall(r'<section class="panel" id="plots-(\w+)">', html)
    assert sections == ["production", "staging"]
    production = charts_of(html.split('id="plots-production"')[1].split("</section>")[0])
    assert set(production) >= {"cost_per_1000", "roc_auc", "drift_share"}
    roc = production["roc_auc"]
    assert roc["windows"] == WINDOWS
    for name, drawn in roc["series"].items():
        assert drawn["declared"] == len(drawn["values"]) == WINDOWS, name
    realised = [float(v) if v else None for v in roc["series"]["realised"]["values"]]
    performances = [s["findings"]["performance"] for s in summaries]
    assert realised == [p["metrics"]["roc_auc"] if p else None for p in performances]
    assert [float(v) for v in roc["gate"][:MATURED]] == [
        GATE[s["version"]]["roc_auc"] for s in summaries[:MATURED]
    ]
    assert sorted(roc["actions"]) == ["alert", "rollback"]
    assert html.count('class="point alarm"') == 2  # the estimate and the live drop, ringed
    assert sorted(production["drift_share"]["actions"]) == ["alert", "rollback"]

    # each point links to its run's page in the site
    reached, broken = _site_tests().crawl(site.out)
    assert broken == {}  # every point's and marker's link, and the front page's plots links
    index = (site.out / "index.html").read_text(encoding="utf-8")
    plots = re.findall(r'<a class="plots" href="([^"]+)">', index)
    assert plots == [f"projects/{PROJECT}.html#plots-{e}" for e in ("staging", "production")]
    assert f"monitoring/{PROJECT}/{summaries[0]['run_id']}/index.html" in reached


def test_no_run_no_plot(workspace: Settings, tmp_path: Path) -> None:
    site = status_page.build(workspace, tmp_path / "site")
    html = (site.out / f"projects/{PROJECT}.html").read_text(encoding="utf-8")
    assert "No monitoring run to plot yet." in html and "<svg" not in html


# ----------------------------------------------------------------------------- why


def test_a_reason_is_short_and_names_no_absolute_path() -> None:
    recorded = (
        "monitor run 2026-03-10T00-00-00Z: roc_auc live 0.61 below gate 0.74 (interval -0.2 .. "
        "-0.09); report /srv/state/monitoring/credit_risk/2026-03-10T00-00-00Z/report.html"
    )
    assert (
        reasons.short_reason(recorded)
        == "roc_auc live 0.61 below gate 0.74 (interval -0.2 .. -0.09)"
    )
    assert reasons.short_reason("see /home/ana/x/evidence.json, then C:\\runs\\a\\r.html") == (
        "see …/evidence.json, then …/r.html"
    )
    assert reasons.short_reason("ratio 3/4 and https://x.example/a/b stay") == (
        "ratio 3/4 and https://x.example/a/b stay"
    )
    long = "word " * 100
    short = reasons.short_reason(long)
    assert len(short) <= reasons.LIMIT and short.endswith("…") and " wor…" not in short
    assert reasons.short_reason(None) == ""


def test_the_index_why_is_short_with_relative_links(
    workspace: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from modelops.integrations.database import Ledger, LedgerEntry

    state = _site_tests()
    state.populate(workspace, monkeypatch)
    state.stub_registry(workspace, monkeypatch)
    run = status_page.monitoring_dir(workspace) / PROJECT / state.RUN_OK
    ledger = Ledger(workspace.platform_database_url)
    ledger.transition(  # v1 -> v2 by hand, then the monitor's rollback as act.py records it
        LedgerEntry("promote", PROJECT, "production", "bo", "again", "1", "2", "../../escape<i>"),
        expected=ledger.holder(PROJECT, "production"),
    )
    reason = (
        f"monitor run {state.RUN_OK}: roc_auc live 0.61 below its gate-time 0.74; "
        f"report {run / 'report.html'}"
    )
    links = {"run_id": state.RUN_OK, "as_of": "2026-01-05T10:00:00+00:00", "evidence": {}}
    links |= {"report_html": str(run / "report.html"), "summary_json": str(run / "summary.json")}
    ledger.transition(
        LedgerEntry("rollback", PROJECT, "production", "modelops-monitor", reason, "2", "1",
                    details=links),
        expected=ledger.holder(PROJECT, "production"),
    )  # fmt: skip
    ledger.close()
    site = status_page.build(workspace, tmp_path / "site")
    index = (site.out / "index.html").read_text(encoding="utf-8")
    cells = re.findall(r'<td class="reason why" title="([^"]*)">(.*?)</td>', index, re.S)
    production = next(c for t, c in cells if "live 0.61" in t)
    text = re.sub(r"<[^>]+>", "", production)
    assert " ".join(text.split()) == (
        "roc_auc live 0.61 below its gate-time 0.74 run · report · evidence"
    )
    hrefs = re.findall(r'href="([^"]+)"', production)
    folder = f"monitoring/{PROJECT}/{state.RUN_OK}"
    assert hrefs == [f"{folder}/index.html", f"{folder}/report.html", hrefs[-1]]
    assert re.fullmatch(r"actions/\d+\.html", hrefs[-1])
    assert all((site.out / h).is_file() for h in hrefs)
    visible = re.sub(r'title="[^"]*"', "", index)  # the full reason stays as hover text only
    assert str(workspace.resolved_state_dir) not in visible and "/report.html;" not in visible
    assert str(run) not in re.sub(r"<[^>]+>", "", visible)
    staging = next(c for t, c in cells if t == "first model")
    assert 'href="gates/' in staging  # a promotion's why links to its gate report


def test_windows_are_ordered_by_their_instant_and_same_day_runs_show_the_time() -> None:
    rng = np.random.default_rng(3)
    late = _summary(0, rng) | {"run_id": "late", "as_of": "2026-03-01T23:00:00-05:00"}
    early = _summary(1, rng) | {"run_id": "early", "as_of": "2026-03-02T02:00:00+00:00"}
    (panel,) = series.panels(_typed([late, early]), {})
    chart = panel.charts[0]
    # 23:00 at -05:00 is 04:00 UTC on the 2nd, after 02:00 UTC; the text sorts the other way
    assert [w.run_id for w in chart.windows] == ["early", "late"]
    assert [w.label for w in chart.windows] == ["03-02 02:00", "03-02 04:00"]  # UTC
    assert all(len(s.points) == 2 for s in chart.series)


def test_the_plots_read_what_the_monitor_writes(workspace: Settings, tmp_path: Path) -> None:
    """A real CBPE estimate (core.estimation on seeded scores) in findings, through the
    monitor's own ``record.summary``: the page plots the window and its chunks as recorded."""
    import pandas as pd

    from modelops.core import monitoring as policy
    from modelops.core.estimated_judgement import Estimated, judge_window
    from modelops.core.estimation import (
        estimate_chunk,
        estimate_chunks,
        fit_calibration,
        reference_from_holdout,
    )
    from modelops.core.metrics import CostModel
    from modelops.services.monitor import Reference, record

    rng = np.random.default_rng(11)
    holdout = rng.uniform(0, 1, 4000)
    labels = (rng.uniform(0, 1, 4000) < holdout**2).astype(int)  # miscalibrated scores
    calibration = fit_calibration(holdout, labels)
    reference = reference_from_holdout(holdout, labels)
    costs = CostModel(false_negative=500.0, false_positive=20.0)
    end = datetime(2026, 3, 8, tzinfo=UTC)
    start = end - timedelta(days=5)
    stamps = pd.Timestamp(start) + pd.to_timedelta(np.sort(rng.uniform(0, 5, 3000)), unit="D")
    scores = rng.uniform(0, 1, 3000)
    common = {"calibration": calibration, "threshold": 0.4, "costs": costs, "reference": reference}
    chunks = estimate_chunks(scores, stamps, period="1D", **common)  # type: ignore[arg-type]
    window = estimate_chunk(scores, start=start, end=end, **common)  # type: ignore[arg-type]
    judged, worse, detail = judge_window(window, 150.0, min_rows=100)
    estimated = Estimated(
        version="1",
        calibration=calibration.model_dump(include={"method", "ece_raw", "ece_calibrated"}),
        threshold=0.4,
        gate_cost_per_1000=150.0,
        gate_roc_auc=0.8,
        chunks=tuple(chunks),
        window=window,
        worse=worse,
        judged=judged,
        detail=detail,
    )
    tenure = policy.Tenure("promote", end, end, end, None)
    findings = policy.Findings(
        PROJECT, "production", "1", policy.Quality(rows=3000), tenure, estimated=estimated
    )
    profile = {"version": "1", "rows": 4000, "sampled_rows": 4000}
    written = record.summary(
        "2026-03-08T00-00-00Z", end, end, (end - timedelta(days=5), end), PROJECT,
        "production", "1", findings, policy.Decision(actions=(), dry_run=False),
        Reference(frame=pd.DataFrame(), profile=profile, path=Path("r.parquet")),
        None, None, [], False, {},
    )  # fmt: skip
    folder = status_page.monitoring_dir(workspace) / PROJECT / "2026-03-08T00-00-00Z"
    folder.mkdir(parents=True)
    (folder / "summary.json").write_text(json.dumps(written.dump()), encoding="utf-8")

    site = status_page.build(workspace, tmp_path / "site")
    drawn = charts_of((site.out / f"projects/{PROJECT}.html").read_text(encoding="utf-8"))
    cost = drawn["cost_per_1000"]["series"]
    assert [float(v) for v in cost["estimated"]["values"]] == [window.cost_per_1000]
    assert cost["realised"]["values"] == [""]  # no labels yet: an empty place, not a zero
    assert [float(v) for v in drawn["cost_per_1000"]["gate"]] == [150.0]
    assert [float(v) for v in drawn["roc_auc"]["series"]["estimated"]["values"]] == [window.roc_auc]
    per_chunk = drawn["chunks"]["series"]["estimated"]["values"]
    assert len(chunks) == 5 and [float(v) for v in per_chunk] == [c.cost_per_1000 for c in chunks]
