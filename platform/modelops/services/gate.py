"""``modelops validate``: a candidate against what holds an environment, on the same rows.

Both models score the same holdout rows, built point-in-time from the feature store for the
project's holdout window. The verdict (JSON) and a report (Markdown) are stored as artifacts of
the candidate's run, summarised in version tags and recorded in the ledger. Any error while
evaluating is an :class:`EvaluationError` (exit 2): the gate fails closed.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from modelops.config.project import Project, load_project
from modelops.config.settings import Settings
from modelops.core.errors import ModelopsError, RegistryError
from modelops.core.fingerprint import DatasetFingerprint
from modelops.core.gate_rules import Evaluation, Rule, RuleSettings, gain, in_words, judge
from modelops.core.metrics import (
    CostModel,
    classification_metrics,
    paired_bootstrap_interval,
    segment_metrics,
)
from modelops.core.modeling import feature_importance
from modelops.integrations import feast as feast_io
from modelops.integrations import mlflow as mlflow_io
from modelops.integrations.database import Ledger, LedgerEntry
from modelops.services.context import feature_repo, tracking
from modelops.services.identity import resolve_actor
from modelops.services.train import build_training_set, load_train_module

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

TAG = "modelops"
LATENCY_SAMPLE = 200
# Above this many holdout rows the bootstrap costs seconds and its interval is narrow anyway.
BOOTSTRAP_MAX_ROWS = 50_000
COMPARED_METRICS = (
    "roc_auc",
    "pr_auc",
    "log_loss",
    "brier",
    "ece",
    "precision",
    "recall",
    "f1",
    "false_positive_rate",
    "alert_rate",
    "cost_per_1000",
)


class EvaluationError(ModelopsError):
    """The gate could not evaluate; never a pass."""


class GateFailedError(ModelopsError):
    """The candidate failed at least one rule."""

    exit_code = 1


@dataclass(frozen=True)
class Verdict:
    id: str
    project: str
    model_name: str
    environment: str
    candidate: Evaluation
    reference: Evaluation
    rules: list[Rule]
    passed: bool
    decisions_differ: float
    holdout: DatasetFingerprint
    as_of: str
    created_at: str
    actor: str
    primary_delta_interval: tuple[float, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["deltas"] = {
            m: self.candidate.metrics[m] - self.reference.metrics[m]
            for m in COMPARED_METRICS
            if m in self.candidate.metrics and m in self.reference.metrics
        }
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, default=str, allow_nan=True)


def _latency(model: Any, rows: pd.DataFrame) -> tuple[float, float]:
    """Median and p95 milliseconds for one-row predictions, as a prediction service makes them."""
    import numpy as np

    sample = rows.head(LATENCY_SAMPLE)
    timings = []
    for i in range(len(sample)):
        one = sample.iloc[[i]]
        start = time.perf_counter()
        model.predict_proba(one)
        timings.append((time.perf_counter() - start) * 1000)
    if not timings:
        return float("nan"), float("nan")
    return float(np.median(timings)), float(np.percentile(timings, 95))


def evaluate_model(
    role: str,
    version: str,
    model: Any,
    inputs: pd.DataFrame,
    frame: pd.DataFrame,
    project: Project,
    threshold: float,
    size_bytes: int,
) -> tuple[Evaluation, Any]:
    """Scores, metrics at the model's own threshold, segments, latency, size, importance."""
    spec = project.spec
    costs = CostModel(spec.costs.false_negative, spec.costs.false_positive)
    scores = model.predict_proba(inputs)[:, 1]
    labels = frame[spec.label.column]
    scored = frame.assign(_score=scores)
    p50, p95 = _latency(model, inputs)
    evaluation = Evaluation(
        role=role,
        version=version,
        threshold=threshold,
        metrics=classification_metrics(labels, scores, threshold, costs),
        segments=segment_metrics(
            scored,
            spec.segments,
            spec.label.column,
            "_score",
            threshold,
            costs,
            min_rows=spec.promotion.min_segment_rows,
        ),
        latency_ms_p50=p50,
        latency_ms_p95=p95,
        size_bytes=size_bytes,
        features=list(inputs.columns),
        feature_share=feature_importance(model),
    )
    return evaluation, scores


def rule_settings(project: Project) -> RuleSettings:
    p = project.spec.promotion
    return RuleSettings(
        primary_metric=project.spec.primary_metric,
        min_improvement=p.min_improvement,
        max_drop=p.max_drop,
        max_segment_drop=p.max_segment_drop,
        min_segment_rows=p.min_segment_rows,
        min_segment_positives=p.min_segment_positives,
        max_ece_increase=p.max_ece_increase,
        max_latency_ms=p.max_latency_ms,
        max_latency_ratio=p.max_latency_ratio,
        leakage_auc_ceiling=p.leakage_auc_ceiling,
        max_feature_share=p.max_feature_share,
        floors={str(k): float(v) for k, v in p.floors.items()},
        event_name=project.spec.label.event_name,
        currency=project.spec.costs.currency,
    )


def _reference(
    client: Any, ledger: Ledger, project: Project, environment: str, candidate_tags: dict[str, str]
) -> tuple[str, str]:
    """(role, version) of what the candidate must beat: the holder, else its baseline."""
    name = project.spec.registered_model
    holder = ledger.holder(project.spec.name, environment)
    aliases = mlflow_io.aliases(client, name)
    if holder.version is not None:
        if aliases.get(environment) != holder.version:
            raise EvaluationError(
                f"{name}: the ledger says v{holder.version} holds {environment} but the MLflow "
                f"alias '{environment}' points to {aliases.get(environment) or 'nothing'}; "
                "fix the alias before gating"
            )
        return environment, holder.version
    baseline = candidate_tags.get(f"{TAG}.baseline_version")
    if not baseline:
        raise EvaluationError(
            f"nothing holds {environment} and the candidate has no "
            f"'{TAG}.baseline_version' tag to compare with"
        )
    return "baseline", baseline


def validate(
    settings: Settings,
    project_name: str,
    version: str,
    *,
    against: str = "production",
    as_of: datetime | None = None,
    actor: str | None = None,
) -> Verdict:
    """Gate ``version`` against the holder of ``against`` and record the verdict.

    Returns the verdict whether it passed or not; raises :class:`EvaluationError` when it
    could not be reached.
    """
    if against not in settings.environments:
        raise EvaluationError(
            f"--against {against}: unknown environment (configured: "
            f"{', '.join(settings.environments)})"
        )
    project = load_project(settings.resolved_projects_dir, project_name)
    ledger = Ledger(settings.platform_database_url)
    who = resolve_actor(actor, settings.root) or "unknown"
    try:
        verdict = _validate(settings, project, str(version), against, as_of, who, ledger)
    except ModelopsError as exc:
        if isinstance(exc, RegistryError | EvaluationError):
            raise
        raise EvaluationError(str(exc)) from exc
    except Exception as exc:
        raise EvaluationError(
            f"evaluation of {project.spec.registered_model} v{version} failed: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    return verdict


def _validate(
    settings: Settings,
    project: Project,
    version: str,
    against: str,
    as_of: datetime | None,
    actor: str,
    ledger: Ledger,
) -> Verdict:
    spec = project.spec
    name = spec.registered_model
    module = load_train_module(project)
    as_of = as_of or datetime.now(UTC)
    with mlflow_io.session(tracking(settings)) as client:
        candidate_version = mlflow_io.get_version(client, name, version)
        candidate_tags = dict(candidate_version.tags)
        ref_role, ref_version_number = _reference(client, ledger, project, against, candidate_tags)
        if ref_version_number == version:
            raise EvaluationError(f"{name} v{version} already holds {against}")
        ref_version = mlflow_io.get_version(client, name, ref_version_number)

        data = build_training_set(
            settings,
            project,
            as_of,
            windows=("holdout",),
            join_cache=settings.resolved_state_dir / "holdout-joins",
        )
        frame = data.frames["holdout"]
        store = feast_io.open_store(feature_repo(settings))
        service = feast_io.feature_service(store, spec.feature_service)
        served = set(feast_io.service_features(service))

        evaluations: dict[str, Evaluation] = {}
        scores: dict[str, Any] = {}
        servable = (True, "")
        for role, mv in (("candidate", candidate_version), (ref_role, ref_version)):
            uri = f"models:/{name}/{mv.version}"
            features = mlflow_io.input_names(uri) or mv.tags.get(f"{TAG}.features", "").split(",")
            missing = [f for f in features if f not in served]
            if role == "candidate":
                servable = (
                    (not missing, f"all {len(features)} inputs come from '{spec.feature_service}'")
                    if not missing
                    else (
                        False,
                        f"inputs {missing} are not in feature service '{spec.feature_service}'",
                    )
                )
                if missing:
                    features = [f for f in features if f in frame.columns]
            elif missing:
                raise EvaluationError(
                    f"{role} v{mv.version} needs {missing}, no longer served by "
                    f"'{spec.feature_service}'"
                )
            threshold_tag = mv.tags.get(f"{TAG}.threshold")
            if threshold_tag is None:
                raise EvaluationError(f"{name} v{mv.version} has no '{TAG}.threshold' tag")
            model = mlflow_io.load_model(uri)
            inputs = module.build_features(frame, features)
            log.info("scoring %s v%s on %d holdout rows", role, mv.version, len(frame))
            evaluations[role], scores[role] = evaluate_model(
                role,
                str(mv.version),
                model,
                inputs,
                frame,
                project,
                float(threshold_tag),
                mlflow_io.model_size_bytes(uri),
            )

        candidate, reference = evaluations["candidate"], evaluations[ref_role]
        if candidate.metrics["rows"] == 0 or reference.metrics["rows"] == 0:
            raise EvaluationError("the holdout window holds no rows")
        differ = float(
            (
                (scores["candidate"] >= candidate.threshold)
                != (scores[ref_role] >= reference.threshold)
            ).mean()
        )
        rules = judge(candidate, reference, rule_settings(project), servable)
        interval = (
            paired_bootstrap_interval(
                spec.primary_metric, frame[spec.label.column], scores["candidate"], scores[ref_role]
            )
            if len(frame) <= BOOTSTRAP_MAX_ROWS
            else None
        )
        verdict = Verdict(
            id=uuid.uuid4().hex[:16],
            project=spec.name,
            model_name=name,
            environment=against,
            candidate=candidate,
            reference=reference,
            rules=rules,
            passed=all(r.passed for r in rules),
            decisions_differ=differ,
            holdout=data.fingerprints["holdout"],
            as_of=as_of.isoformat(),
            created_at=datetime.now(UTC).isoformat(),
            actor=actor,
            primary_delta_interval=interval,
        )
        if not candidate_version.run_id:
            raise EvaluationError(f"{name} v{version} has no training run to attach the verdict to")
        _record(client, ledger, verdict, candidate_version.run_id, project)
    return verdict


def _record(client: Any, ledger: Ledger, verdict: Verdict, run_id: str, project: Project) -> None:
    mlflow_io.log_run_artifacts(
        client,
        run_id,
        f"gate/{verdict.id}",
        {"verdict.json": verdict.to_json(), "report.md": to_markdown(verdict, project)},
    )
    prefix = f"{TAG}.gate.{verdict.environment}"
    mlflow_io.set_version_tags(
        client,
        verdict.model_name,
        verdict.candidate.version,
        {
            f"{prefix}.verdict": "pass" if verdict.passed else "fail",
            f"{prefix}.verdict_id": verdict.id,
            f"{prefix}.against": f"{verdict.reference.role}:{verdict.reference.version}",
            f"{prefix}.at": verdict.created_at,
        },
    )
    ledger.append(
        LedgerEntry(
            action="validate",
            project=verdict.project,
            environment=verdict.environment,
            actor=verdict.actor,
            reason="passed every rule"
            if verdict.passed
            else "failed: " + "; ".join(r.name for r in verdict.rules if not r.passed),
            from_version=verdict.reference.version
            if verdict.reference.role != "baseline"
            else None,
            to_version=verdict.candidate.version,
            verdict_id=verdict.id,
            details={
                "passed": verdict.passed,
                "reference_role": verdict.reference.role,
                "reference_version": verdict.reference.version,
                "holdout_sha256": verdict.holdout.sha256,
                "holdout_rows": verdict.holdout.rows,
                "failed_rules": [r.name for r in verdict.rules if not r.passed],
            },
        )
    )


def _fmt(metric: str, value: float) -> str:
    if metric == "cost_per_1000":
        return f"{value:,.0f}"
    if metric in ("precision", "recall", "false_positive_rate", "alert_rate"):
        return f"{value:.1%}"
    return f"{value:.4f}"


def _noise_sentence(verdict: Verdict, metric: str, ref_name: str) -> str:
    """How the primary-metric difference compares with the holdout's sampling noise."""
    delta = verdict.candidate.metrics[metric] - verdict.reference.metrics[metric]
    interval = verdict.primary_delta_interval
    if interval is None:
        why = (
            f"the holdout has more than {BOOTSTRAP_MAX_ROWS:,} rows"
            if verdict.holdout.rows > BOOTSTRAP_MAX_ROWS
            else "the metric needs a threshold or the resamples lacked a class"
        )
        return f"{metric} {delta:+.4f} vs {ref_name}; no bootstrap interval ({why})."
    low, high = interval
    noise = "within sampling noise" if low <= 0 <= high else "larger than sampling noise"
    return (
        f"{metric} {delta:+.4f} vs {ref_name} (95% interval {low:+.4f} to {high:+.4f}, paired "
        f"bootstrap over the holdout rows): the difference is {noise}."
    )


def to_markdown(verdict: Verdict, project: Project) -> str:
    """The report a reviewer reads: headline, side-by-side table, every rule with its reason."""
    c, r = verdict.candidate, verdict.reference
    event = project.spec.label.event_name
    ref_name = f"{r.role} v{r.version}"
    status = "PASSED" if verdict.passed else "FAILED"
    lines = [
        f"## {verdict.model_name} v{c.version} vs {ref_name} ({verdict.environment}): {status}",
        "",
        f"Candidate {in_words(c, event)}, vs {r.metrics['recall']:.0%} at "
        f"{r.metrics['false_positive_rate']:.1%} for {ref_name}. Business cost "
        f"{c.metrics['cost_per_1000']:,.0f} vs {r.metrics['cost_per_1000']:,.0f} "
        f"{project.spec.costs.currency} per 1,000 decisions. The two models decide differently "
        f"on {verdict.decisions_differ:.1%} of the rows.",
        "",
        _noise_sentence(verdict, project.spec.primary_metric, ref_name),
        "",
        f"Holdout: {verdict.holdout.rows:,} rows, {verdict.holdout.start} .. {verdict.holdout.end}"
        f", sha256 `{verdict.holdout.sha256[:16]}`. Verdict `{verdict.id}`.",
        "",
        f"| metric | candidate v{c.version} | {ref_name} | delta |",
        "|---|---|---|---|",
    ]
    for metric in COMPARED_METRICS:
        if metric in c.metrics and metric in r.metrics:
            delta = c.metrics[metric] - r.metrics[metric]
            better = gain(metric, c.metrics[metric], r.metrics[metric]) >= 0
            lines.append(
                f"| {metric} | {_fmt(metric, c.metrics[metric])} | "
                f"{_fmt(metric, r.metrics[metric])} | {delta:+.4g} {'✓' if better else '✗'} |"
            )
    lines += [
        f"| threshold | {c.threshold:.4f} | {r.threshold:.4f} | |",
        f"| latency p50 / p95 (ms) | {c.latency_ms_p50:.2f} / {c.latency_ms_p95:.2f} | "
        f"{r.latency_ms_p50:.2f} / {r.latency_ms_p95:.2f} | |",
        f"| model size (KiB) | {c.size_bytes / 1024:,.0f} | {r.size_bytes / 1024:,.0f} | |",
        "",
        "| rule | result | why |",
        "|---|---|---|",
    ]
    lines += [
        f"| {rule.name} | {'pass' if rule.passed else '**FAIL**'} | {rule.detail} |"
        for rule in verdict.rules
    ]
    segments = [
        (column, value, seg, r.segments.get(column, {}).get(value))
        for column, values in c.segments.items()
        for value, seg in values.items()
    ]
    primary = project.spec.primary_metric
    if segments:
        lines += [
            "",
            f"| segment | rows | {primary} candidate | {primary} {ref_name} | recall |",
            "|---|---|---|---|---|",
        ]
        for column, value, seg, ref in segments:
            ref_value = _fmt(primary, ref[primary]) if ref else "-"
            lines.append(
                f"| {column}={value} | {int(seg['rows']):,} | "
                f"{_fmt(primary, seg[primary])} | {ref_value} | {seg['recall']:.0%} |"
            )
    return "\n".join(lines) + "\n"
