"""The monitor acting on estimated performance (``modelops.core.estimated_judgement`` and the
probation and retraining rules of ``modelops.core.monitoring``): hand-made estimates for the
rules, seeded worlds for the statistics (no I/O)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from modelops.core import estimated_judgement as ej
from modelops.core import monitoring as m
from modelops.core.errors import ModelopsError
from modelops.core.estimation.calibration import Calibration, calibrate, fit_calibration
from modelops.core.estimation.cbpe import (
    ChunkEstimate,
    Reference,
    estimate_chunk,
    reference_from_holdout,
)
from modelops.core.metrics import CostModel, classification_metrics

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
POLICY = m.Policy(primary_metric="pr_auc", probation_days=30, cooldown_hours=24)
COSTS = CostModel(false_negative=10.0, false_positive=1.0)
THRESHOLD = 0.12


def chunk(cost: float, half: float, rows: int = 5000) -> ChunkEstimate:
    return ChunkEstimate(
        start=NOW - timedelta(days=3),
        end=NOW,
        rows=rows,
        expected_positives=rows * 0.05,
        alert_rate=0.1,
        precision=0.3,
        recall=0.6,
        cost_per_1000=cost,
        cost_per_1000_low=cost - half,
        cost_per_1000_high=cost + half,
        roc_auc=0.8,
        roc_auc_low=0.78,
        roc_auc_high=0.82,
    )


def tenure(target: str | None = "1", moved_by: str = "promote", days: float = 3) -> m.Tenure:
    return m.Tenure(moved_by, NOW - timedelta(days=days), NOW - timedelta(days=days), NOW, target)


def estimated(
    cost: float,
    half: float = 5.0,
    gate: float | None = 100.0,
    previous: ej.PreviousEstimate | None = None,
    rows: int = 5000,
) -> ej.Estimated:
    window = chunk(cost, half, rows)
    judged, worse, detail = ej.judge_window(window, gate, min_rows=200)
    return ej.Estimated(
        version="2",
        calibration={"method": "isotonic"},
        threshold=THRESHOLD,
        gate_cost_per_1000=gate,
        gate_roc_auc=0.8,
        chunks=(window,),
        window=window,
        worse=worse,
        judged=judged,
        detail=detail,
        previous=previous,
    )


def findings(est: ej.Estimated | None, *, target: str | None = "1", **kw: object) -> m.Findings:
    return m.Findings(
        project="credit_risk",
        environment="production",
        version="2",
        quality=m.Quality(rows=5000, features={"x": m.FeatureQuality(0.0)}),
        tenure=tenure(target, **kw),  # type: ignore[arg-type]
        estimated=est,
    )


def decide(f: m.Findings, policy: m.Policy = POLICY) -> m.Decision:
    return m.decide_actions(f, m.History(), policy, now=NOW)


# ----------------------------------------------------------------------------- the window


def test_the_window_is_worse_only_when_its_band_excludes_the_gate_time_cost() -> None:
    # 120 +- 5: low end 115 > 100 -> worse; 103 +- 5: 98 .. 108 holds 100 -> not worse
    assert ej.judge_window(chunk(120, 5), 100.0, min_rows=200)[:2] == (True, True)
    judged, worse, detail = ej.judge_window(chunk(103, 5), 100.0, min_rows=200)
    assert (judged, worse) == (True, False) and "holds gate-time 100.0" in detail
    assert ej.judge_window(chunk(80, 5), 100.0, min_rows=200)[:2] == (True, False)
    # too few rows, or no gate-time cost: not judged, never worse
    assert ej.judge_window(chunk(500, 5, rows=150), 100.0, min_rows=200)[:2] == (False, False)
    assert ej.judge_window(chunk(500, 5), None, min_rows=200)[:2] == (False, False)


def test_the_previous_version_is_better_only_with_its_band_apart_and_below() -> None:
    current = chunk(120, 5)  # 115 .. 125
    assert ej.compare_estimates("1", "2", current, chunk(100, 5)).better  # 95 .. 105 < 115
    assert not ej.compare_estimates("1", "2", current, chunk(112, 5)).better  # 117 > 115
    same = ej.compare_estimates("1", "2", current, current, identical=True)
    assert same.identical and not same.better


# ----------------------------------------------------------------------------- the rule


def test_a_promoted_version_estimated_worse_is_rolled_back_before_any_label() -> None:
    previous = ej.compare_estimates("1", "2", chunk(120, 5), chunk(95, 5))
    decision = decide(findings(estimated(120, previous=previous)))
    assert decision.kinds == ["rollback"]
    action = decision.actions[0]
    assert action.target == "1"
    assert "before labels" in action.reason and "band excludes it" in action.reason
    evidence = action.evidence["estimated"]
    assert evidence["gate_cost_per_1000"] == 100.0 and evidence["cost_per_1000_low"] == 115.0
    assert evidence["previous_on_same_rows"]["better"] is True


def test_no_rollback_when_the_band_holds_the_gate_time_cost() -> None:
    previous = ej.compare_estimates("1", "2", chunk(103, 5), chunk(60, 5))
    decision = decide(findings(estimated(103, previous=previous)))
    assert decision.kinds == []
    assert any("holds gate-time" in n for n in decision.notes)


def test_a_previous_version_no_better_on_the_same_rows_makes_it_a_retraining() -> None:
    previous = ej.compare_estimates("1", "2", chunk(120, 5), chunk(118, 5))
    decision = decide(findings(estimated(120, previous=previous)))
    assert decision.kinds == ["retrain"]
    assert "rolling back would not help" in decision.actions[0].reason


def test_a_previous_version_not_estimated_is_an_alert_never_a_move() -> None:
    unknown = ej.previous_not_compared("1", "2", "v1 not estimated: no holdout rows")
    assert decide(findings(estimated(120, previous=unknown))).kinds == ["alert"]
    assert decide(findings(estimated(120))).kinds == ["alert"]  # never estimated at all
    assert decide(findings(estimated(120), target=None)).kinds == ["alert"]


def test_the_estimate_acts_only_on_probation_and_when_switched_on() -> None:
    previous = ej.compare_estimates("1", "2", chunk(120, 5), chunk(95, 5))
    est = estimated(120, previous=previous)
    assert decide(findings(est, days=45)).kinds == []  # after probation_days 30
    assert decide(findings(est, moved_by="rollback")).kinds == []  # a rollback: no probation
    off = m.Policy(primary_metric="pr_auc", probation_days=30, act_on_estimate=False)
    quiet = decide(findings(est), off)
    assert quiet.kinds == [] and any("act_in_probation is off" in n for n in quiet.notes)
    manual = m.Policy(primary_metric="pr_auc", probation_days=30, auto_rollback=False)
    assert decide(findings(est), manual).kinds == ["alert"]


# ----------------------------------------------------------------------------- seeded worlds


def _world(
    rng: np.random.Generator, n: int, *, shift: float = 0.0, concept: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Scores of a fixed model and labels drawn from P(y|x): ``shift`` moves the features
    (covariate shift, P(y|x) unchanged), ``concept`` changes P(y|x) itself."""
    x = rng.normal(shift, 1.0, size=(n, 2))
    true_logit = -3.0 + 1.2 * x[:, 0] + 0.8 * x[:, 1]
    if concept:
        true_logit = -3.0 + 0.2 * x[:, 0] + 0.8 * x[:, 1] + 0.9  # x0 stopped mattering
    y = (rng.random(n) < 1 / (1 + np.exp(-true_logit))).astype(np.int64)
    model_logit = 1.6 * (-3.0 + 1.2 * x[:, 0] + 0.8 * x[:, 1]) + 1.0  # over-confident
    return 1 / (1 + np.exp(-model_logit)), y


def _gate_and_basis(rng: np.random.Generator) -> tuple[float, Calibration, Reference, float]:
    """What the gate measured on the holdout, and the holdout calibration and reference."""
    scores, labels = _world(rng, 4000)
    gate = classification_metrics(labels, scores, THRESHOLD, COSTS)["cost_per_1000"]
    calibration = fit_calibration(scores, labels)
    q = calibrate(calibration, scores)
    se = ej.calibration_se(q, scores, threshold=THRESHOLD, costs=COSTS)
    return gate, calibration, reference_from_holdout(scores, labels), se


def test_healthy_traffic_over_40_seeds_rolls_nothing_back() -> None:
    """The same world as the holdout: the estimate is judged in every seed and never found
    worse, so no rollback (a false action) and no retraining on the check."""
    false_rollbacks = false_checks = judged = 0
    for seed in range(40):
        rng = np.random.default_rng(1000 + seed)
        gate, calibration, reference, se = _gate_and_basis(rng)
        scores, labels = _world(rng, 30 * 300)  # a month of 300 predictions a day
        window = estimate_chunk(
            scores, calibration=calibration, threshold=THRESHOLD, costs=COSTS, reference=reference
        )
        ok, worse, _ = ej.judge_window(window, gate, min_rows=200)
        judged += ok
        previous = ej.compare_estimates("1", "2", window, window)  # only read when worse
        decision = decide(findings(estimated_of(window, gate, worse, ok, previous)))
        false_rollbacks += "rollback" in decision.kinds
        check = ej.check_estimate(
            labels,
            calibrate(calibration, scores),
            scores,
            threshold=THRESHOLD,
            costs=COSTS,
            cohorts=30,
            reference_se=se,
        )
        false_checks += check.significant
    assert judged == 40
    assert false_rollbacks == 0
    assert false_checks <= 3  # two-sided 5 %: about 2 of 40 by chance, 3 allowed


def estimated_of(
    window: ChunkEstimate, gate: float, worse: bool, judged: bool, previous: ej.PreviousEstimate
) -> ej.Estimated:
    return ej.Estimated(
        "2", {}, THRESHOLD, gate, None, (window,), window, worse, judged, "", previous
    )


def test_concept_drift_the_estimate_misses_and_the_check_reports_it() -> None:
    """P(y|x) changed: the estimate (from scores alone) stays near the gate-time cost while the
    realised cost moves; on the matured predictions the gap's interval excludes 0 in every
    seed, and the run retrains with "the estimate no longer holds"."""
    for seed in range(10):
        rng = np.random.default_rng(2000 + seed)
        gate, calibration, reference, se = _gate_and_basis(rng)
        scores, labels = _world(rng, 6000, concept=True)
        q = calibrate(calibration, scores)
        window = estimate_chunk(
            scores, calibration=calibration, threshold=THRESHOLD, costs=COSTS, reference=reference
        )
        realised = classification_metrics(labels, scores, THRESHOLD, COSTS)["cost_per_1000"]
        assert not window.cost_per_1000_low <= realised <= window.cost_per_1000_high  # it misses
        assert abs(window.cost_per_1000 - gate) < abs(realised - gate)  # stays near the gate
        check = ej.check_estimate(
            labels, q, scores, threshold=THRESHOLD, costs=COSTS, cohorts=20, reference_se=se
        )
        assert check.significant, check.detail
        assert check.realised_cost_per_1000 == pytest.approx(realised)
        assert "the estimate no longer holds" in check.detail
    f = m.Findings(
        project="credit_risk",
        environment="production",
        version="2",
        quality=m.Quality(rows=5000, features={"x": m.FeatureQuality(0.0)}),
        tenure=tenure(days=90),
        estimate_check=check,
    )
    decision = decide(f)
    assert decision.kinds == ["retrain"]
    assert decision.actions[0].reason.startswith("concept drift: realised cost")
    assert decision.actions[0].evidence["estimate_check"]["significant"] is True


def test_the_check_by_hand_on_four_rows() -> None:
    # threshold 0.5: rows 1, 2 flagged (cost of an error c_fp = 1), rows 3, 4 not (c_fn = 10)
    # q = 0.8, 0.6, 0.1, 0.3 -> expected cost = 0.2*1 + 0.4*1 + 0.1*10 + 0.3*10 = 4.6
    # labels 1, 0, 1, 0 -> realised cost = 0 + 1 + 10 + 0 = 11
    # variance = 0.16*1 + 0.24*1 + 0.09*100 + 0.21*100 = 30.4; se per 1,000 = 1000*sqrt(30.4)/4
    check = ej.check_estimate(
        [1, 0, 1, 0],
        [0.8, 0.6, 0.1, 0.3],
        [0.9, 0.7, 0.2, 0.4],
        threshold=0.5,
        costs=COSTS,
        cohorts=1,
    )
    assert check.estimated_cost_per_1000 == pytest.approx(1150.0)
    assert check.realised_cost_per_1000 == pytest.approx(2750.0)
    assert check.gap == pytest.approx(1600.0)
    se = 1000 * np.sqrt(30.4) / 4
    assert check.interval["se"] == pytest.approx(se)
    assert check.interval["low"] == pytest.approx(1600.0 - 1.96 * se)
    assert not check.significant  # four rows say little: 1600 - 1.96 * 1378 < 0
    with pytest.raises(ValueError, match="no matured predictions"):
        ej.check_estimate([], [], [], threshold=0.5, costs=COSTS, cohorts=0)


def test_the_estimation_settings_are_strict_with_documented_defaults() -> None:
    from pydantic import ValidationError

    from modelops.config.monitoring import Monitoring

    defaults = Monitoring().estimation
    assert (defaults.enabled, defaults.chunk, defaults.z) == (True, "1D", 1.96)
    assert (defaults.min_rows_per_chunk, defaults.act_in_probation) == (200, True)
    assert Monitoring.model_validate({"estimation": {"chunk": "6h"}}).estimation.chunk == "6h"
    for bad in ({"chunk": "1 day"}, {"chunk": "0D"}, {"z": 0}, {"window": 3}):
        with pytest.raises(ValidationError):
            Monitoring.model_validate({"estimation": bad})


def test_the_paired_gain_by_hand_counts_only_rows_decided_differently() -> None:
    # threshold 0.5: current flags rows 1 and 3, previous flags row 1 only; q 0.7, 0.1, 0.3
    # current expected cost: 0.3*1 + 0.1*10 + 0.7*1 = 2.0; previous: 0.3 + 1.0 + 0.3*10 = 4.3
    # gain (current - previous) per 1,000 = 1000 * (2.0 - 4.3) / 3 = -766.7: previous is worse
    # only row 3 differs: b = -1 - 10 = -11, variance 121 * 0.3 * 0.7 = 25.41
    q = [0.7, 0.1, 0.3]
    interval = ej.paired_cost_gain(
        ([0.9, 0.2, 0.6], q, 0.5), ([0.8, 0.3, 0.4], q, 0.5), COSTS, calibration_se=(30, 40)
    )
    assert interval["estimate"] == pytest.approx(-2300 / 3)
    assert interval["se_rows"] == pytest.approx(1000 * np.sqrt(25.41) / 3)
    assert interval["se"] == pytest.approx(np.sqrt(interval["se_rows"] ** 2 + 30**2 + 40**2))
    assert interval["rows_decided_differently"] == 1
    current, previous = chunk(2000 / 3, 5, rows=3), chunk(4300 / 3, 5, rows=3)
    assert not ej.compare_estimates("1", "2", current, previous, interval=interval).better
    # the same rows, the versions swapped: the gain is positive but 766.7 - 1.96 * 1681 < 0
    swapped = ej.paired_cost_gain(([0.8, 0.3, 0.4], q, 0.5), ([0.9, 0.2, 0.6], q, 0.5), COSTS)
    assert swapped["estimate"] == pytest.approx(2300 / 3) and swapped["low"] < 0
    # many such rows: the interval narrows as 1/sqrt(rows) and the previous version is better
    many = ej.paired_cost_gain(
        ([0.8, 0.3, 0.4] * 400, q * 400, 0.5), ([0.9, 0.2, 0.6] * 400, q * 400, 0.5), COSTS
    )
    assert many["low"] > 0
    assert ej.compare_estimates("1", "2", previous, current, interval=many).better
    with pytest.raises(ValueError, match="same, non-empty rows"):
        ej.paired_cost_gain(([0.1], [0.1], 0.5), ([0.1, 0.2], [0.1, 0.2], 0.5), COSTS)


def test_the_basis_is_fitted_on_the_references_holdout_rows_only_and_cached(
    tmp_path: Path,
) -> None:
    """The monitor's reference holds training and holdout rows with the version's scores; the
    calibration sees only the holdout rows (the training rows here carry labels that would
    pull it far off), and is cached beside the reference, refitted when the threshold or the
    reference changes."""
    from types import SimpleNamespace

    import pandas as pd

    from modelops.services.monitor import estimated
    from modelops.services.monitor.common import SCORE
    from modelops.services.monitor.reference import Reference as MonitorReference

    rng = np.random.default_rng(3)
    scores, labels = _world(rng, 3000)
    frame = pd.DataFrame(
        {
            SCORE: np.r_[scores, scores],
            "defaulted": np.r_[1 - labels, labels],  # training rows: labels flipped
            "_window": ["train"] * 3000 + ["holdout"] * 3000,
        }
    )
    parquet = tmp_path / "v2-abc-100000.parquet"
    parquet.write_bytes(b"not read")
    ref = MonitorReference(frame, {"sha256": "abc"}, parquet)
    project = SimpleNamespace(
        spec=SimpleNamespace(
            label=SimpleNamespace(column="defaulted"),
            decision_costs=SimpleNamespace(false_negative=10.0, false_positive=1.0),
        )
    )
    lineage = SimpleNamespace(version="2", threshold=THRESHOLD)
    found = estimated.basis(project, lineage, ref)  # type: ignore[arg-type]
    assert found.calibration.rows == 3000 and found.calibration.positives == int(labels.sum())
    holdout_only = fit_calibration(scores, labels)
    assert found.calibration.y == holdout_only.y
    cache = tmp_path / "v2-abc-100000.estimation.json"
    body = json.loads(cache.read_text())
    assert body["sha256"] == "abc" and body["threshold"] == THRESHOLD
    body["cost_se"] = 123.0  # a cached value is used as it is...
    cache.write_text(json.dumps(body))
    assert estimated.basis(project, lineage, ref).cost_se == 123.0  # type: ignore[arg-type]
    moved = SimpleNamespace(version="2", threshold=0.3)  # ...until the threshold changes
    assert estimated.basis(project, moved, ref).cost_se != 123.0  # type: ignore[arg-type]
    only_train = MonitorReference(frame[frame["_window"] == "train"], {"sha256": "d"}, parquet)
    with pytest.raises(ModelopsError, match="nothing to calibrate on"):
        estimated.basis(project, lineage, only_train)  # type: ignore[arg-type]


def test_a_realised_cost_below_the_estimate_is_noted_not_acted_on() -> None:
    """The check is two-sided, the action is not: a model doing better than its estimate says
    (realised cost significantly below) is noted, never retrained (the healthy-seeds benchmark
    once retrained on exactly this: realised 240 against estimated 447.5)."""
    better = ej.EstimateCheck(
        cohorts=10,
        rows=11_900,
        positives=60,
        estimated_cost_per_1000=447.5,
        realised_cost_per_1000=240.0,
        gap=-207.5,
        interval={"estimate": -207.5, "low": -390.3, "high": -24.6},
        significant=True,
        detail="realised cost 240.0 per 1,000 against estimated 447.5: the estimate no longer "
        "holds",
    )
    worse = ej.EstimateCheck(**{**better.__dict__, "realised_cost_per_1000": 655.0, "gap": 207.5})

    def findings(check: ej.EstimateCheck) -> m.Findings:
        return m.Findings(
            project="fraud",
            environment="production",
            version="2",
            quality=m.Quality(rows=12_000, features={"x": m.FeatureQuality(0.0)}),
            tenure=tenure(days=90),
            estimate_check=check,
        )

    noted = decide(findings(better))
    assert noted.kinds == []
    assert any("does better than estimated: no action" in n for n in noted.notes)
    assert decide(findings(worse)).kinds == ["retrain"]
