"""On the same seeded holdout, the gate's statistics on Spark (local[2]) give the verdict the
single-machine statistics give: the same rules, the same decisions, metrics within the stated
tolerances.

Tolerances (the histograms have 4,096 bins; decisions from bootstraps of different draws):

- counts, decision metrics (precision, recall, F1, false-positive and alert rates, cost per
  1,000), log loss and Brier: exact (1e-12 relative for the sums);
- ROC-AUC within 1e-4 overall, PR-AUC within 1e-3, ECE within 2e-3 (equal-count chunks cut at
  bin edges); per segment, ROC-AUC within the histogram's own error bound (half the share of
  positive-negative pairs sharing a bin), which is what a model with few distinct scores needs;
- the primary interval's estimate within 1e-4 (ROC-AUC) and each bound within 15% of the
  single-machine interval's width (different resamples of the same-size stratified subsample);
- every rule's pass/fail equal, and the verdict's.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pytest

from modelops.config.project import Project, load_project
from modelops.core.features import FeatureStep
from modelops.core.gate_rules import Findings, judge
from modelops.core.modeling import logistic_baseline, with_feature_step
from modelops.core.scorer import build_scorer
from modelops.core.stats import decide
from modelops.integrations.spark.gate import reduce_scored
from modelops.services.gate.judge import rule_settings
from modelops.services.gate.merged import merged_statistics
from modelops.services.gate.models import GateModel
from modelops.services.gate.statistics import run_statistics

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
FEATURES = ["channel", "amount", "ratio", "tenure"]
STEP = FeatureStep(categorical=("channel",), clip={"amount": (None, 50.0)})
ROWS = 60_000
EXACT = (
    "rows",
    "positives",
    "precision",
    "recall",
    "f1",
    "false_positive_rate",
    "alert_rate",
    "cost_per_1000",
)


def _rows(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    channel = rng.choice(np.array(["web", "branch", "phone"], dtype=object), n).astype(object)
    channel[rng.random(n) < 0.03] = None  # a missing segment value too
    amount = rng.lognormal(2.5, 1.0, n)
    ratio = rng.normal(0, 1, n)
    tenure = rng.integers(0, 120, n).astype(float)
    logit = -3.0 + 0.6 * (channel == "web") + 0.04 * np.minimum(amount, 50) + 1.1 * ratio
    start = pd.Timestamp("2025-12-01", tz="UTC")
    return pd.DataFrame(
        {
            "account_id": rng.integers(0, n // 3, n),
            "event_timestamp": start + pd.to_timedelta(rng.integers(0, 31 * 86_400e6, n), "us"),
            "channel": channel,
            "amount": amount,
            "ratio": ratio,
            "tenure": tenure,
            "label": (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64),
        }
    ).drop_duplicates(["account_id", "event_timestamp"], ignore_index=True)


def _model(role: str, version: str, features: list[str], train: pd.DataFrame) -> GateModel:
    pipeline = with_feature_step(
        STEP, features, logistic_baseline(STEP(train, features), train["label"])
    )
    scorer = build_scorer(pipeline)
    assert scorer.kind == "logistic", scorer.reason
    threshold = float(np.quantile(pipeline.predict_proba(train[features])[:, 1], 0.9))
    return GateModel(
        role=role,
        version=version,
        threshold=threshold,
        features=features,
        artifact_sha256=f"sha-{version}",
        model=pipeline,
        scorer=scorer,
    )


@pytest.fixture(scope="module")
def project() -> Project:
    fraud = load_project(ROOT / "projects", "fraud")
    spec = fraud.spec.model_copy(update={"segments": ["channel"], "primary_metric": "roc_auc"})
    return fraud.model_copy(update={"spec": spec})


@pytest.fixture(scope="module")
def case() -> dict[str, Any]:
    train = _rows(20_000, 1)
    holdout = _rows(ROWS, 2)
    models = {
        "candidate": _model("candidate", "3", FEATURES, train),  # every signal
        "production": _model("production", "2", ["channel", "amount", "tenure"], train),
        "weak": _model("candidate", "4", ["tenure", "channel"], train),  # lost its best signals
    }
    return {"holdout": holdout, "models": models}


def _findings(primary: tuple[bool, str], segments: Any) -> Findings:
    same = (True, "measured on rows, outside this comparison")
    return Findings(
        primary=primary,
        latency=same,
        leakage=same,
        servable=same,
        segments=(segments.passed, segments.detail) if segments is not None else None,
    )


@pytest.mark.parametrize(("cand", "passes"), [("candidate", True), ("weak", False)])
def test_spark_verdict_equals_the_single_machine_verdict(
    spark: SparkSession,
    tmp_path: Path,
    project: Project,
    case: dict[str, Any],
    cand: str,
    passes: bool,
) -> None:
    holdout, models = case["holdout"], case["models"]
    candidate, reference = models[cand], models["production"]
    path = tmp_path / "holdout.parquet"
    holdout.to_parquet(path, coerce_timestamps="us", allow_truncated_timestamps=False)
    frame = spark.read.parquet(str(path))
    stats = reduce_scored(
        frame,
        {m.role: m.scores for m in (candidate, reference)},
        {m.role: m.threshold for m in (candidate, reference)},
        label="label",
        id_columns=["account_id", "event_timestamp"],
        segments=project.spec.segments,
    )
    on_spark = merged_statistics(project, stats, candidate, reference)

    label = holdout["label"].to_numpy()
    scores = {m.role: m.scores(holdout) for m in (candidate, reference)}
    single = run_statistics(project, holdout, label, scores, candidate, reference, None)

    for ours, theirs in (
        (on_spark.candidate, single.candidate),
        (on_spark.reference, single.reference),
    ):
        m, t = ours.metrics, theirs.metrics
        for key in EXACT:
            assert m[key] == t[key], key
        assert m["log_loss"] == pytest.approx(t["log_loss"], rel=1e-12)
        assert m["brier"] == pytest.approx(t["brier"], rel=1e-12)
        assert abs(m["roc_auc"] - t["roc_auc"]) < 1e-4
        assert abs(m["pr_auc"] - t["pr_auc"]) < 1e-3
        assert abs(m["ece"] - t["ece"]) < 2e-3
        for value, seg in theirs.segments["channel"].items():
            key = value if value != "nan" else "(missing)"
            assert ours.segments["channel"][key]["rows"] == seg["rows"]
            # scores on few distinct values (the weak model) share bins: the bound says how much
            bound = stats.segments[f"channel={key}"].histograms[ours.role].roc_auc_error_bound()
            assert abs(ours.segments["channel"][key]["roc_auc"] - seg["roc_auc"]) <= bound

    a, b = on_spark.interval, single.interval
    assert abs(a.estimate - b.estimate) < 1e-4
    width = b.high - b.low
    assert abs(a.low - b.low) < 0.15 * width and abs(a.high - b.high) < 0.15 * width
    assert (a.rows_used, a.rows_total, a.subsampled) == (b.rows_used, b.rows_total, b.subsampled)

    p = project.spec.promotion
    settings = rule_settings(project)
    verdicts = []
    for stats_ in (on_spark, single):
        primary = decide(stats_.interval, p.decision, p.decision_margin)
        rules = judge(
            stats_.candidate,
            stats_.reference,
            settings,
            _findings((primary.passed, primary.detail), stats_.segments),
        )
        verdicts.append([(r.name, r.passed) for r in rules])
    assert verdicts[0] == verdicts[1]
    assert all(passed for _, passed in verdicts[0]) is passes
    assert on_spark.segments is not None and single.segments is not None
    assert set(on_spark.segments.compared) == set(single.segments.compared)
    assert set(on_spark.segments.failed) == set(single.segments.failed)


@pytest.mark.parametrize(("gate_value", "worse"), [(0.78, False), (0.83, True)])
def test_the_monitor_live_drop_on_spark_judges_as_on_rows(
    spark: SparkSession, tmp_path: Path, case: dict[str, Any], gate_value: float, worse: bool
) -> None:
    """The labelled predictions of a window (score logged, label joined), reduced on Spark:
    the live-drop judgement equals the one on rows."""
    from modelops.core.live_judgement import judge_drop, judge_drop_merged
    from modelops.core.metrics import CostModel
    from modelops.integrations.spark.gate import reduce_logged

    served = case["models"]["candidate"]
    logged = case["holdout"].assign(score=served.scores(case["holdout"]))
    logged.loc[logged.index[::97], "score"] = np.nan  # rows the service did not score
    path = tmp_path / "labelled.parquet"
    logged.to_parquet(path, coerce_timestamps="us", allow_truncated_timestamps=False)
    costs = CostModel(10.0, 1.0)
    stats = reduce_logged(
        spark.read.parquet(str(path)),
        served.threshold,
        label="label",
        id_columns=["account_id", "event_timestamp"],
    )
    on_spark = judge_drop_merged(
        "roc_auc", stats.overall, "live", gate_value, max_drop=0.02, costs=costs
    )
    kept = logged[logged["score"].notna()]
    on_rows = judge_drop(
        "roc_auc",
        kept["label"],
        kept["score"],
        gate_value,
        max_drop=0.02,
        threshold=served.threshold,
        costs=costs,
    )
    assert on_spark.rows == on_rows.rows == len(kept)
    assert abs(on_spark.live - on_rows.live) < 1e-4
    assert (on_spark.judged, on_spark.worse) == (on_rows.judged, on_rows.worse)
    assert on_spark.worse is worse
