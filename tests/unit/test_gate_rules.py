"""Gate rules on constructed evaluations: each rule can fail, errors never pass."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from modelops.core.gate_rules import Evaluation, Findings, RuleSettings, judge

RULES = RuleSettings(
    primary_metric="pr_auc",
    decision="non_inferiority",
    margin=0.01,
    max_drop=0.01,
    max_ece_increase=0.02,
    floors={"roc_auc": 0.6},
    event_name="defaults",
    currency="EUR",
)
OK = (True, "ok")
ALL_PASS = Findings(primary=OK, latency=OK, leakage=OK, servable=OK, segments=OK)


def _metrics(**overrides: float) -> dict[str, float]:
    base = {
        "rows": 1000.0,
        "positives": 100.0,
        "roc_auc": 0.80,
        "pr_auc": 0.30,
        "log_loss": 0.25,
        "brier": 0.07,
        "ece": 0.02,
        "precision": 0.3,
        "recall": 0.6,
        "f1": 0.4,
        "false_positive_rate": 0.1,
        "alert_rate": 0.12,
        "cost_per_1000": 5000.0,
    }
    return {**base, **overrides}


def _evaluation(role: str = "production", **metric_overrides: float) -> Evaluation:
    return Evaluation(
        role=role,
        version="1",
        threshold=0.2,
        metrics=_metrics(**metric_overrides),
        segments={"sector": {"retail": _metrics(), "hospitality": _metrics()}},
        latency_ms_p50=2.0,
        latency_ms_p95=3.0,
        size_bytes=10_000,
        features=["a", "b"],
        feature_share={"a": 0.4, "b": 0.6},
    )


def _failed(
    candidate: Evaluation,
    reference: Evaluation | None = None,
    findings: Findings = ALL_PASS,
) -> list[str]:
    rules = judge(candidate, reference or _evaluation(), RULES, findings)
    return [r.name for r in rules if not r.passed]


def test_a_candidate_with_every_finding_passing_passes_every_rule() -> None:
    better = _evaluation("candidate", pr_auc=0.34, roc_auc=0.82, cost_per_1000=4500.0)
    assert _failed(better) == []


@pytest.mark.parametrize(
    ("finding", "rule"),
    [
        ("primary", "pr_auc non-inferior to the reference (margin 0.01)"),
        ("latency", "prediction latency within bounds"),
        ("leakage", "no suspected leakage"),
        ("servable", "inputs servable by the feature service"),
        ("segments", "no segment significantly worse"),
        ("sibling", "preferred over its training sibling"),
    ],
)
def test_each_statistical_finding_fails_exactly_its_own_rule(finding: str, rule: str) -> None:
    findings = replace(ALL_PASS, **{finding: (False, f"{finding} said no")})
    rules = judge(_evaluation("candidate", pr_auc=0.31), _evaluation(), RULES, findings)
    failed = [r for r in rules if not r.passed]
    assert [r.name for r in failed] == [rule]
    assert failed[0].detail == f"{finding} said no"


def test_superiority_is_named_in_the_rule() -> None:
    rules = judge(
        _evaluation("candidate"), _evaluation(), replace(RULES, decision="superiority"), ALL_PASS
    )
    assert rules[0].name == "pr_auc superior to the reference (margin 0.01)"


def test_no_segment_rule_when_the_project_names_no_segments() -> None:
    rules = judge(_evaluation("candidate"), _evaluation(), RULES, replace(ALL_PASS, segments=None))
    assert not [r for r in rules if "segment" in r.name]


def test_business_cost_must_not_rise() -> None:
    worse = _evaluation("candidate", pr_auc=0.35, cost_per_1000=5001.0)
    assert _failed(worse) == ["business cost does not rise"]


def test_other_ranking_metrics_may_drop_only_by_max_drop_with_their_own_direction() -> None:
    assert _failed(_evaluation("candidate", roc_auc=0.789)) == ["roc_auc drops no more than 0.01"]
    assert _failed(_evaluation("candidate", roc_auc=0.791)) == []
    # log loss is lower-is-better: a rise is a drop in quality
    assert _failed(_evaluation("candidate", log_loss=0.261)) == ["log_loss drops no more than 0.01"]
    assert _failed(_evaluation("candidate", log_loss=0.20)) == []


def test_calibration_and_floor() -> None:
    assert _failed(_evaluation("candidate", pr_auc=0.31, ece=0.05)) == [
        "calibration error rises by at most 0.02"
    ]
    weak = _evaluation("candidate", pr_auc=0.31, roc_auc=0.59)
    assert _failed(weak, _evaluation(roc_auc=0.595)) == ["roc_auc >= 0.6 (floor)"]


@pytest.mark.parametrize(
    ("metric", "rule"),
    [
        ("roc_auc", "roc_auc drops no more than 0.01"),
        ("cost_per_1000", "business cost does not rise"),
        ("ece", "calibration error rises by at most 0.02"),
    ],
)
def test_missing_or_nan_metrics_fail_closed(metric: str, rule: str) -> None:
    broken = _evaluation("candidate", **{metric: math.nan})
    assert rule in _failed(broken), f"NaN {metric} must not pass"
