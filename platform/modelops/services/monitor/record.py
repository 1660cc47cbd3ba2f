"""The record of a run: ``summary.json`` built through
:class:`~modelops.core.monitor_record.MonitorSummary` (its JSON Schema is
``docs/schemas/monitor-summary.schema.json``), and an MLflow run of the ``modelops-monitoring``
experiment with the headline numbers and every file of the run's folder."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from modelops.config.settings import Settings
from modelops.core import monitoring as policy_core
from modelops.core.monitor_record import MonitorSummary
from modelops.integrations import evidently as evidently_io
from modelops.integrations import mlflow as mlflow_io
from modelops.services.monitor.common import (
    MONITORING_EXPERIMENT,
    RUN_TAG,
    Outcome,
    _clean,
    _write_atomically,
)
from modelops.services.monitor.reference import Reference

log = logging.getLogger(__name__)


def _write_json(path: Path, body: dict[str, Any]) -> None:
    text = json.dumps(_clean(body), indent=2, sort_keys=False, allow_nan=False)
    _write_atomically(path, lambda p: p.write_text(text))


def summary(
    run_id: str,
    started_at: datetime,
    as_of: datetime,
    window: tuple[datetime, datetime],
    project: str,
    environment: str,
    version: str,
    findings: policy_core.Findings,
    decision: policy_core.Decision,
    reference: Reference,
    drift_result: evidently_io.DriftResult | None,
    performance_html: Path | None,
    notes: list[str],
    dry_run: bool,
    timings: dict[str, float],
) -> MonitorSummary:
    """The run's summary before it acts: no outcomes yet."""
    return MonitorSummary.model_validate(
        {
            "run_id": run_id,
            "project": project,
            "environment": environment,
            "version": version,
            "started_at": started_at.isoformat(),
            "as_of": as_of.isoformat(),
            "window": {"start": window[0].isoformat(), "end": window[1].isoformat()},
            "dry_run": dry_run,
            "action": ", ".join(decision.kinds) or "none",
            "headline": decision.headline(),
            "findings": policy_core.findings_dict(findings),
            "decision": _clean(decision.to_dict()),
            "reference": {
                k: _clean(reference.profile.get(k))
                for k in ("version", "windows", "as_of", "rows", "sampled_rows", "fingerprints")
            },
            "reports": {
                "drift_html": "report.html" if drift_result else None,
                "drift_json": "evidently.json" if drift_result else None,
                "performance_html": performance_html.name if performance_html else None,
                "sample": {
                    "rows_used": drift_result.current_rows if drift_result else 0,
                    "reference_rows_used": drift_result.reference_rows if drift_result else 0,
                },
            },
            "notes": notes,
            "outcomes": [],
            "timings": timings,
        }
    )


def finished(
    base: MonitorSummary,
    outcomes: list[Outcome],
    timings: dict[str, float],
    seconds: float,
    mlflow_run_id: str | None,
) -> MonitorSummary:
    """``base`` with what the run did: its outcomes, the first pending promotion among them,
    its timings and duration, and its MLflow run."""
    body = base.dump()
    body.update(
        outcomes=[_clean(dataclasses.asdict(o)) for o in outcomes],
        pending_promotion=next(
            (o.details["pending_promotion"] for o in outcomes if "pending_promotion" in o.details),
            None,
        ),
        timings=timings,
        seconds=seconds,
        mlflow_run_id=mlflow_run_id,
    )
    return MonitorSummary.model_validate(_clean(body))


def write_summary(path: Path, record: MonitorSummary) -> None:
    """``summary.json``: the keys the monitor set (a first write lacks ``pending_promotion``,
    ``seconds`` and ``mlflow_run_id``, known only once the run has acted)."""
    _write_json(path, record.dump())


def log_mlflow(
    client: Any,
    settings: Settings,
    run_id: str,
    project: str,
    environment: str,
    version: str,
    window: tuple[datetime, datetime],
    findings: policy_core.Findings,
    decision: policy_core.Decision,
    run_dir: Path,
) -> str | None:
    """An MLflow run of the monitoring experiment with the headline numbers and every file of
    the run's folder; None (and a warning) when MLflow refuses: the files are on disk."""
    try:
        experiment = mlflow_io.ensure_experiment(
            client, MONITORING_EXPERIMENT, settings.artifact_root
        )
        created = client.create_run(
            experiment,
            run_name=f"{project}-{environment}-{run_id}",
            tags={
                f"{RUN_TAG}.project": project,
                f"{RUN_TAG}.environment": environment,
                f"{RUN_TAG}.version": version,
                f"{RUN_TAG}.run_id": run_id,
                f"{RUN_TAG}.window_start": window[0].isoformat(),
                f"{RUN_TAG}.window_end": window[1].isoformat(),
                f"{RUN_TAG}.action": ", ".join(decision.kinds) or "none",
                f"{RUN_TAG}.headline": decision.headline()[:5000],
            },
        )
        mlflow_id = created.info.run_id
        from mlflow.entities import Metric

        stamp = int(time.time() * 1000)
        numbers = _headline_numbers(findings, decision)
        client.log_batch(
            mlflow_id,
            metrics=[
                Metric(key, value, stamp, 0)
                for key, value in numbers.items()
                if value is not None and math.isfinite(value)
            ],
        )
        for path in sorted(run_dir.iterdir()):
            if path.is_file():
                client.log_artifact(mlflow_id, str(path))
        client.set_terminated(mlflow_id)
        return str(mlflow_id)
    except Exception as exc:
        log.warning("monitoring run %s not logged to MLflow: %s", run_id, exc)
        return None


def _headline_numbers(
    findings: policy_core.Findings, decision: policy_core.Decision
) -> dict[str, float | None]:
    numbers: dict[str, float | None] = {
        "rows": float(findings.quality.rows),
        "drift_streak": float(decision.drift_streak),
        "in_probation": float(decision.in_probation),
        "data_quality_ok": float(not decision.retraining_blocked),
    }
    if findings.drift is not None:
        numbers["drift_share"] = findings.drift.share
        numbers["drifted_features"] = float(len(findings.drift.drifted))
        numbers["prediction_drift"] = findings.drift.prediction_score
        for name, score in findings.drift.scores.items():
            numbers[f"drift.{name}"] = score
        for name, feature in findings.drift.features.items():
            numbers[f"drift_effect.{name}"] = feature.effect
    for name, q in findings.quality.features.items():
        numbers[f"missing.{name}"] = q.missing_share
    perf = findings.performance
    if perf is not None:
        numbers["labelled_rows"] = float(perf.rows)
        for metric, value in perf.metrics.items():
            numbers[f"live.{metric}"] = value
        for metric, value in (perf.gate or {}).items():
            numbers[f"gate.{metric}"] = value
    return numbers
