"""judge: every rule on the scored holdout, and the verdict that records them.

The statistics (:mod:`.statistics`) decide the primary metric, the segments and the training
sibling; latency (:mod:`.latency`) is timed after them with nothing else running; leakage
(:mod:`.leakage`) measures each feature's relation with the label and reads the permutation
importance measured beside the bootstraps. The findings go to the pure rules of
:mod:`modelops.core.gate_rules`, and the verdict carries the evidence of each.
"""

from __future__ import annotations

import dataclasses
import math
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from modelops.config.project import Project
from modelops.core.gate_rules import (
    Evaluation,
    Findings,
    Rule,
    RuleSettings,
    judge,
    placeholder_costs_warning,
)
from modelops.core.latency import LatencyComparison
from modelops.core.leakage_rules import (
    FeatureEvidence,
    LeakageFinding,
    ModelEvidence,
    assess_leakage,
)
from modelops.core.stats import decide
from modelops.core.verdict import Verdict, inputs_key
from modelops.services.datasets import TrainingSet
from modelops.services.gate.latency import latency_finding, measure_latency
from modelops.services.gate.leakage import feature_evidence, model_evidence
from modelops.services.gate.merged import MergedStatistics
from modelops.services.gate.models import GateModel
from modelops.services.gate.statistics import Statistics, run_statistics, sibling_finding

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd


def rule_settings(project: Project) -> RuleSettings:
    p = project.spec.promotion
    return RuleSettings(
        primary_metric=project.spec.primary_metric,
        decision=p.decision,
        margin=p.decision_margin,
        max_drop=p.max_drop,
        max_ece_increase=p.max_ece_increase,
        floors={str(k): float(v) for k, v in p.floors.items()},
        event_name=project.spec.label.event_name,
        currency=project.spec.decision_costs.currency,
    )


def judge_holdout(
    project: Project,
    frame: pd.DataFrame,
    scores: dict[str, np.ndarray],
    models: tuple[GateModel, GateModel, GateModel | None],
    data: TrainingSet,
    as_of: datetime,
    actor: str,
    inputs: dict[str, Any],
    candidate_tags: dict[str, str],
    merged: MergedStatistics | None = None,
) -> Verdict:
    """Every rule on the scored holdout: metrics, intervals, segments, leakage, latency.
    ``models``: (candidate, reference, sibling); ``candidate_tags``: what its training recorded
    (validation ROC-AUCs, training category rates: leakage evidence); ``merged``: the
    statistics computed on Spark under the cluster profile (:mod:`.merged`)."""
    candidate, reference, sibling = models
    p = project.spec.promotion
    label = frame[project.spec.label.column].to_numpy()
    stats = run_statistics(project, frame, label, scores, candidate, reference, sibling, merged)
    latency = measure_latency(frame, candidate, reference)
    c_eval = dataclasses.replace(
        stats.candidate, latency_ms_p50=latency.candidate_p50, latency_ms_p95=latency.candidate_p95
    )
    r_eval = dataclasses.replace(
        stats.reference, latency_ms_p50=latency.reference_p50, latency_ms_p95=latency.reference_p95
    )
    evidence = feature_evidence(
        frame,
        label,
        candidate.features,
        project.spec.features.categorical,
        candidate_tags,
        stats.importance,
    )
    model = model_evidence(
        c_eval.metrics.get("roc_auc", math.nan), p.leakage_auc_ceiling, candidate_tags
    )
    leakage = assess_leakage(model, evidence, acknowledged=p.dominant_features)
    c_eval = dataclasses.replace(c_eval, feature_share=stats.importance.shares)
    findings = _findings(project, candidate, reference, stats, latency, leakage)
    rules = judge(c_eval, r_eval, rule_settings(project), findings)
    differ = float(
        (
            (scores["candidate"] >= candidate.threshold)
            != (scores[reference.role] >= reference.threshold)
        ).mean()
    )
    verdict = _verdict(
        project,
        (c_eval, r_eval),
        rules,
        differ=differ,
        evidence=_evidence(project, stats, latency, (leakage, model, evidence), data),
        data=data,
        as_of=as_of,
        actor=actor,
        inputs=inputs,
    )
    return _with_costs(verdict, project, candidate)


def _with_costs(verdict: Verdict, project: Project, candidate: GateModel) -> Verdict:
    """The costs the verdict rests on, in its evidence, and a warning when they (or the costs
    that chose the candidate's threshold) were placeholders."""
    costs = project.spec.decision_costs
    judged = project.spec.placeholder_costs
    verdict.evidence["costs"] = {
        "false_negative": costs.false_negative,
        "false_positive": costs.false_positive,
        "currency": costs.currency,
        "placeholder": judged or candidate.placeholder_costs,
        "judged_with_placeholder": judged,
        "trained_with_placeholder": candidate.placeholder_costs,
    }
    warning = placeholder_costs_warning(judged, candidate.placeholder_costs)
    return dataclasses.replace(verdict, warnings=[warning] if warning else [])


def _findings(
    project: Project,
    candidate: GateModel,
    reference: GateModel,
    stats: Statistics,
    latency: LatencyComparison,
    leakage: LeakageFinding,
) -> Findings:
    """The rules' inputs, each as (passed, one-sentence reason)."""
    spec = project.spec
    p = spec.promotion
    decision = decide(stats.interval, p.decision, p.decision_margin)
    segments = stats.segments
    return Findings(
        primary=(decision.passed, decision.detail),
        latency=latency_finding(latency, reference, p),
        leakage=(not leakage.suspected and not leakage.checks_not_run, leakage.detail),
        servable=(True, f"all {len(candidate.features)} inputs come from '{spec.feature_service}'"),
        segments=(segments.passed, segments.detail) if segments is not None else None,
        sibling=sibling_finding(stats),
    )


def _verdict(
    project: Project,
    evaluations: tuple[Evaluation, Evaluation],
    rules: list[Rule],
    *,
    differ: float,
    evidence: dict[str, Any],
    data: TrainingSet,
    as_of: datetime,
    actor: str,
    inputs: dict[str, Any],
) -> Verdict:
    """The verdict of ``rules`` on (candidate, reference) ``evaluations``, keyed by ``inputs``;
    ``differ``: the share of holdout rows the two models decide differently."""
    spec = project.spec
    c_eval, r_eval = evaluations
    return Verdict(
        id=uuid.uuid4().hex[:16],
        project=spec.name,
        model_name=spec.registered_model,
        environment=str(inputs["environment"]),
        candidate=c_eval,
        reference=r_eval,
        rules=rules,
        passed=all(r.passed for r in rules),
        decisions_differ=differ,
        holdout=data.fingerprints["holdout"],
        as_of=as_of.isoformat(),
        created_at=datetime.now(UTC).isoformat(),
        actor=actor,
        inputs_key=inputs_key(inputs),
        inputs=inputs,
        evidence=evidence,
    )


def _evidence(
    project: Project,
    stats: Statistics,
    latency: LatencyComparison,
    leaks: tuple[LeakageFinding, ModelEvidence, list[FeatureEvidence]],
    data: TrainingSet,
) -> dict[str, Any]:
    """What each rule was decided on, as the verdict records it."""
    p = project.spec.promotion
    holdout = data.joins["holdout"]
    leakage, model, features = leaks
    return {
        "primary_interval": stats.interval.to_dict(),
        "sibling_interval": stats.sibling_interval.to_dict() if stats.sibling_interval else None,
        "segments": stats.segments.to_dict() if stats.segments is not None else None,
        "latency": latency.to_dict(),
        "leakage": {
            "checks_run": leakage.checks_run,
            "checks_not_run": leakage.checks_not_run,
            "flagged": leakage.flagged,
            "acknowledged": leakage.acknowledged,
            "model": dataclasses.asdict(model),
            "features": [dataclasses.asdict(e) for e in features],
            "importance": dataclasses.asdict(stats.importance),
        },
        "data_checks": {
            "holdout_missing_share": holdout.missing_share,
            "rows_without_features": holdout.rows_without_features,
            "availability": [dataclasses.asdict(a) for a in data.availability],
        },
        "decision": {"rule": p.decision, "margin": p.decision_margin},
        "max_age_days": p.verdict_max_age_days,
    }
