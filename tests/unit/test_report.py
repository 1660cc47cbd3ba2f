"""The gate report's marks follow each metric's business direction; verdicts round-trip."""

from __future__ import annotations

import math

import pytest

from modelops.core.fingerprint import DatasetFingerprint
from modelops.core.gate_rules import Evaluation, Rule
from modelops.core.verdict import Verdict, inputs_key, judgement_key, reused_elsewhere
from modelops.services.report import mark


@pytest.mark.parametrize(
    ("metric", "delta", "expected"),
    [
        ("false_positive_rate", +0.02, "✗"),  # more false alarms is worse
        ("false_positive_rate", -0.02, "✓"),
        ("log_loss", -0.10, "✓"),  # lower log loss is better
        ("log_loss", +0.10, "✗"),
        ("cost_per_1000", +5.0, "✗"),
        ("pr_auc", +0.01, "✓"),
        ("recall", -0.01, "✗"),
        ("alert_rate", +0.05, ""),  # no direction on its own
        ("roc_auc", 0.0, ""),
    ],
)
def test_marks_follow_the_business_direction(metric: str, delta: float, expected: str) -> None:
    assert mark(metric, delta) == expected


def _evaluation(role: str, pr_auc: float) -> Evaluation:
    return Evaluation(
        role=role,
        version="3",
        threshold=0.123456789012,
        metrics={"pr_auc": pr_auc, "roc_auc": math.nan},
        segments={"sector": {"retail": {"pr_auc": pr_auc, "rows": 120.0}}},
        latency_ms_p50=1.5,
        latency_ms_p95=2.5,
        size_bytes=10,
        features=["a"],
        feature_share={"a": 1.0},
    )


def test_a_verdict_survives_the_ledger_round_trip_with_full_precision() -> None:
    inputs = {"candidate": ["3", "abc"], "reference": ["prevalence", "-", "p=0.1"]}
    verdict = Verdict(
        id="v1",
        project="p",
        model_name="p",
        environment="dev",
        candidate=_evaluation("candidate", 0.41),
        reference=_evaluation("prevalence", 0.1),
        rules=[Rule("r", True, "why")],
        passed=True,
        decisions_differ=0.25,
        holdout=DatasetFingerprint(10, "a", "b", "c" * 64),
        as_of="2026-01-01T00:00:00+00:00",
        created_at="2026-01-01T00:00:00+00:00",
        actor="me",
        inputs_key=inputs_key(inputs),
        inputs=inputs,
        evidence={"latency": {"candidate_ms": [1.0, 2.0]}},
    )
    restored = Verdict.from_dict(verdict.to_dict())
    assert restored.candidate.threshold == 0.123456789012
    assert math.isnan(restored.candidate.metrics["roc_auc"])  # NaN stored as null, read back
    assert restored.to_dict() == verdict.to_dict()
    assert restored.deltas()["pr_auc"] == pytest.approx(0.31)


def test_inputs_key_changes_with_any_input_and_not_with_key_order() -> None:
    a = {"candidate": ["3", "abc"], "holdout_sha256": "h"}
    assert inputs_key(a) == inputs_key(dict(reversed(list(a.items()))))
    assert inputs_key(a) != inputs_key({**a, "holdout_sha256": "g"})


def _inputs(environment: str, reference: list[str], **changes: object) -> dict[str, object]:
    base: dict[str, object] = {
        "environment": environment,
        "candidate": ["4", "c" * 64],
        "reference": reference,
        "sibling": None,
        "holdout_sha256": "h" * 64,
        "project_yaml_sha256": "y" * 64,
        "feature_digest": "f" * 64,
        "allow_feature_change": False,
    }
    return {**base, **changes}


def test_the_judgement_key_ignores_where_it_is_recorded_and_nothing_else() -> None:
    dev = _inputs("dev", ["dev", "3", "a" * 64])
    staging = _inputs("staging", ["staging", "3", "a" * 64])
    assert inputs_key(dev) != inputs_key(staging)  # each environment keys its own verdict
    assert judgement_key(dev) == judgement_key(staging) is not None
    for change in (
        {"reference": ["staging", "2", "a" * 64]},  # another reference version
        {"reference": ["staging", "3", "b" * 64]},  # the same number, another artifact
        {"candidate": ["4", "d" * 64]},
        {"holdout_sha256": "g" * 64},
        {"project_yaml_sha256": "z" * 64},
        {"feature_digest": "e" * 64},
        {"allow_feature_change": True},
        {"sibling": ["5", "s" * 64]},
        {"extra": "anything new"},
    ):
        changed = {**_inputs("staging", ["staging", "3", "a" * 64]), **change}
        assert judgement_key(changed) != judgement_key(dev), change
    assert judgement_key({k: v for k, v in dev.items() if k != "environment"}) is None
    assert judgement_key({**dev, "reference": ["3", "a" * 64]}) is None


def test_a_verdict_reused_elsewhere_names_its_origin_and_keeps_its_age() -> None:
    dev_inputs = _inputs("dev", ["dev", "3", "a" * 64])
    measured = Verdict(
        id="v1",
        project="p",
        model_name="p",
        environment="dev",
        candidate=_evaluation("candidate", 0.41),
        reference=_evaluation("dev", 0.3),
        rules=[Rule("r", True, "why")],
        passed=True,
        decisions_differ=0.25,
        holdout=DatasetFingerprint(10, "a", "b", "c" * 64),
        as_of="2026-01-01T00:00:00+00:00",
        created_at="2026-01-01T00:00:00+00:00",
        actor="ann",
        inputs_key=inputs_key(dev_inputs),
        inputs=dev_inputs,
    )
    staging_inputs = _inputs("staging", ["staging", "3", "a" * 64])
    reused = reused_elsewhere(
        measured,
        environment="staging",
        inputs=staging_inputs,
        new_id="v2",
        actor="bob",
        source_seq=17,
    )
    assert (reused.id, reused.environment, reused.actor) == ("v2", "staging", "bob")
    assert reused.reference.role == "staging" and reused.reference.version == "3"
    assert reused.inputs_key == inputs_key(staging_inputs)
    assert reused.created_at == measured.created_at  # expires with the measurement
    assert reused.evidence["reused_from"] == {
        "verdict_id": "v1",
        "environment": "dev",
        "seq": 17,
        "actor": "ann",
    }
    assert reused.rules == measured.rules and reused.candidate == measured.candidate
    other = _inputs("staging", ["staging", "2", "a" * 64])
    with pytest.raises(ValueError, match="judged other inputs"):
        reused_elsewhere(
            measured, environment="staging", inputs=other, new_id="v3", actor="b", source_seq=1
        )
