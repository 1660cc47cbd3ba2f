"""Gate rules on constructed evaluations: each rule can fail, errors never pass."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from modelops.core.gate_rules import Evaluation, RuleSettings, judge

RULES = RuleSettings(
    primary_metric="pr_auc",
    min_improvement=0.0,
    max_drop=0.01,
    max_segment_drop=0.05,
    min_segment_rows=100,
    min_segment_positives=30,
    max_ece_increase=0.02,
    max_latency_ms=50.0,
    max_latency_ratio=3.0,
    leakage_auc_ceiling=0.99,
    max_feature_share=0.6,
    floors={"roc_auc": 0.6},
    event_name="defaults",
    currency="EUR",
)


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
    servable: tuple[bool, str] = (True, "ok"),
) -> list[str]:
    rules = judge(candidate, reference or _evaluation(), RULES, servable)
    return [r.name for r in rules if not r.passed]


def test_better_candidate_passes_every_rule() -> None:
    better = _evaluation("candidate", pr_auc=0.34, roc_auc=0.82, cost_per_1000=4500.0)
    assert _failed(better) == []


def test_primary_metric_must_improve() -> None:
    assert _failed(_evaluation("candidate", pr_auc=0.29)) == ["pr_auc improves by at least 0"]


def test_business_cost_must_not_rise() -> None:
    worse = _evaluation("candidate", pr_auc=0.35, cost_per_1000=5001.0)
    assert _failed(worse) == ["business cost does not rise"]


def test_a_segment_losing_too_much_fails_even_when_overall_is_better() -> None:
    candidate = replace(
        _evaluation("candidate", pr_auc=0.34, cost_per_1000=4000.0),
        segments={
            "sector": {"retail": _metrics(pr_auc=0.40), "hospitality": _metrics(pr_auc=0.20)}
        },
    )
    rules = judge(candidate, _evaluation(), RULES, (True, "ok"))
    failed = [r for r in rules if not r.passed]
    assert [r.name for r in failed] == ["no segment loses more than 0.05 pr_auc"]
    assert "sector=hospitality" in failed[0].detail


def test_small_segments_are_not_judged() -> None:
    tiny = _metrics(pr_auc=0.0, rows=20.0)
    candidate = replace(
        _evaluation("candidate", pr_auc=0.34), segments={"sector": {"retail": tiny}}
    )
    assert _failed(candidate) == []


def test_segments_with_few_positives_are_not_judged() -> None:
    few_defaults = _metrics(pr_auc=0.0, rows=5000.0, positives=12.0)
    candidate = replace(
        _evaluation("candidate", pr_auc=0.34), segments={"sector": {"retail": few_defaults}}
    )
    assert _failed(candidate) == []
    enough = _metrics(pr_auc=0.0, rows=5000.0, positives=30.0)
    candidate = replace(candidate, segments={"sector": {"retail": enough}})
    assert _failed(candidate) == ["no segment loses more than 0.05 pr_auc"]


def test_suspected_leakage_by_auc_or_by_one_dominant_feature() -> None:
    leaky_auc = _evaluation("candidate", pr_auc=0.9, roc_auc=0.995)
    assert "no suspected leakage" in _failed(leaky_auc)
    dominant = replace(_evaluation("candidate", pr_auc=0.5), feature_share={"a": 0.9, "b": 0.1})
    rules = judge(dominant, _evaluation(), RULES, (True, "ok"))
    leakage = next(r for r in rules if r.name == "no suspected leakage")
    assert not leakage.passed and "'a' carries 90%" in leakage.detail


def test_calibration_latency_floor_and_servability() -> None:
    assert _failed(_evaluation("candidate", pr_auc=0.31, ece=0.05)) == [
        "calibration error rises by at most 0.02"
    ]
    slow = replace(_evaluation("candidate", pr_auc=0.31), latency_ms_p50=7.0)
    assert _failed(slow) == ["prediction latency within bounds"]
    weak = _evaluation("candidate", pr_auc=0.31, roc_auc=0.59)
    assert "roc_auc >= 0.6 (floor)" in _failed(weak, _evaluation(roc_auc=0.595))
    assert _failed(_evaluation("candidate", pr_auc=0.31), servable=(False, "x")) == [
        "inputs servable by the feature service"
    ]


@pytest.mark.parametrize("metric", ["pr_auc", "roc_auc", "cost_per_1000", "ece"])
def test_missing_or_nan_metrics_fail_closed(metric: str) -> None:
    broken = _evaluation("candidate", **{"pr_auc": 0.35, metric: math.nan})
    assert _failed(broken), f"NaN {metric} must not pass"
