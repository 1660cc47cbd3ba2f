"""The run's headline numbers as Prometheus gauges, written as a textfile for node_exporter's
textfile collector (``prometheus_client`` renders the exposition format and replaces the file
atomically) and, where ``pushgateway_url`` is set, pushed to a Prometheus Pushgateway: a
CronJob's pod has no node_exporter beside it, and is gone before any scrape.

The push replaces the group ``job="modelops_monitor", project, environment`` (HTTP PUT), so a
version's series leave the gateway when another version is monitored; the gauges keep their
own ``project``, ``environment`` and ``version`` labels, the ones the PrometheusRule reads.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from modelops.core import monitoring as policy_core

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

_BASE = ("project", "environment", "version")
PUSH_JOB = "modelops_monitor"
"""The Pushgateway job the monitor's runs are grouped under."""
PUSH_TIMEOUT_SECONDS = 10.0


class _Gauges:
    """Gauges of one registry, each made on its first value (a series without any value is not
    exported at all); every series carries the run's project, environment and version."""

    def __init__(self, project: str, environment: str, version: str) -> None:
        from prometheus_client import CollectorRegistry, Gauge

        self._gauge = Gauge
        self.registry = CollectorRegistry()
        self._base = {"project": project, "environment": environment, "version": version}
        self._made: dict[str, Gauge] = {}

    def add(self, name: str, help_: str, value: float | None, **extra: str) -> None:
        if value is None or not math.isfinite(float(value)):
            return
        gauge = self._made.get(name)
        if gauge is None:
            gauge = self._gauge(name, help_, labelnames=(*_BASE, *extra), registry=self.registry)
            self._made[name] = gauge
        gauge.labels(**self._base, **extra).set(float(value))


def registry(
    project: str,
    environment: str,
    version: str,
    findings: policy_core.Findings,
    decision: policy_core.Decision,
    primary_metric: str,
    at: datetime,
) -> CollectorRegistry:
    """A registry holding the run's headline numbers."""
    gauges = _Gauges(project, environment, version)
    add = gauges.add
    add("modelops_monitor_last_run_timestamp_seconds", "End of the last run.", at.timestamp())
    add("modelops_monitor_rows", "Predictions in the window.", findings.quality.rows)
    add(
        "modelops_monitor_data_quality_ok",
        "1 when no data-quality rule failed.",
        float(not decision.retraining_blocked),
    )
    add(
        "modelops_monitor_in_probation",
        "1 while the version is on probation.",
        float(decision.in_probation),
    )
    add("modelops_monitor_drift_streak", "Consecutive drifting windows.", decision.drift_streak)
    _drift(gauges, findings)
    for name, q in findings.quality.features.items():
        add(
            "modelops_monitor_missing_share",
            "Share of predictions missing the feature.",
            q.missing_share,
            feature=name,
        )
    _performance(gauges, findings, primary_metric)
    for kind in policy_core.ACTION_KINDS:
        add(
            "modelops_monitor_action",
            "1 when the last run took this action.",
            float(kind in decision.kinds),
            action=kind,
        )
    return gauges.registry


def _drift(gauges: _Gauges, findings: policy_core.Findings) -> None:
    drift = findings.drift
    if drift is None:
        return
    gauges.add("modelops_monitor_drift_share", "Share of drifted features.", drift.share)
    gauges.add(
        "modelops_monitor_prediction_drift",
        "Drift score of the model's score.",
        drift.prediction_score,
    )
    for name, score in drift.scores.items():
        gauges.add(
            "modelops_monitor_feature_drift", "Drift score per feature.", score, feature=name
        )
        gauges.add(
            "modelops_monitor_feature_drifted",
            "1 when the feature counts as drifted (test, effect size, not exempt).",
            float(name in drift.drifted),
            feature=name,
        )
    for name, feature in drift.features.items():
        gauges.add(
            "modelops_monitor_feature_drift_effect",
            "Drift effect size per feature (normed Wasserstein or Jensen-Shannon distance).",
            feature.effect,
            feature=name,
        )
        gauges.add(
            "modelops_monitor_feature_drift_exempt",
            "1 when monitoring.drift_exempt exempts the feature.",
            float(feature.exempt is not None),
            feature=name,
        )


def _performance(gauges: _Gauges, findings: policy_core.Findings, primary_metric: str) -> None:
    perf = findings.performance
    if perf is None:
        return
    gauges.add("modelops_monitor_labelled_rows", "Labelled predictions judged.", perf.rows)
    for metric in dict.fromkeys((primary_metric, "roc_auc", "cost_per_1000", "recall")):
        gauges.add(
            "modelops_monitor_live_metric",
            "Live metric on labelled predictions.",
            perf.metrics.get(metric),
            metric=metric,
        )
        gauges.add(
            "modelops_monitor_gate_metric",
            "The metric when the version was gated.",
            (perf.gate or {}).get(metric),
            metric=metric,
        )


def prometheus_text(
    project: str,
    environment: str,
    version: str,
    findings: policy_core.Findings,
    decision: policy_core.Decision,
    primary_metric: str,
    at: datetime,
) -> str:
    """The run's headline numbers in the Prometheus text exposition format."""
    from prometheus_client import generate_latest

    found = registry(project, environment, version, findings, decision, primary_metric, at)
    return generate_latest(found).decode()


def write_textfile(
    directory: Path,
    project: str,
    environment: str,
    version: str,
    findings: policy_core.Findings,
    decision: policy_core.Decision,
    primary_metric: str,
) -> Path:
    """``<directory>/modelops_monitor_<project>_<environment>.prom`` (node_exporter's textfile
    collector reads ``*.prom``), replaced atomically."""
    from prometheus_client import write_to_textfile

    path = directory / f"modelops_monitor_{project}_{environment}.prom"
    directory.mkdir(parents=True, exist_ok=True)
    found = registry(
        project, environment, version, findings, decision, primary_metric, datetime.now(UTC)
    )
    write_to_textfile(str(path), found)
    return path


def push(
    url: str,
    project: str,
    environment: str,
    version: str,
    findings: policy_core.Findings,
    decision: policy_core.Decision,
    primary_metric: str,
) -> str | None:
    """Push the run's gauges to the Pushgateway at ``url`` (replacing the group of ``project``
    and ``environment``). Returns None when pushed, else one line saying why not (the caller
    reports it: the run's work is done either way)."""
    from prometheus_client import push_to_gateway

    found = registry(
        project, environment, version, findings, decision, primary_metric, datetime.now(UTC)
    )
    try:
        push_to_gateway(
            url,
            job=PUSH_JOB,
            registry=found,
            grouping_key={"project": project, "environment": environment},
            timeout=PUSH_TIMEOUT_SECONDS,
        )
    except OSError as error:  # URLError and HTTPError are OSErrors
        return f"pushing the monitor's metrics to {url} failed: {error}"
    return None
