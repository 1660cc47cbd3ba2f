"""The gate's statistics runner takes metrics, the primary interval and the segment decisions
from merged statistics when given them (the cluster profile), and measures the rest on rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from modelops.config.project import Project, load_project
from modelops.core.features import FeatureStep
from modelops.core.modeling import logistic_baseline, with_feature_step
from modelops.core.scorer import build_scorer
from modelops.core.stats.mergeable import HoldoutStats, row_hashes
from modelops.services.gate.merged import merged_statistics
from modelops.services.gate.models import GateModel
from modelops.services.gate.statistics import run_statistics

ROOT = Path(__file__).resolve().parents[2]
STEP = FeatureStep(categorical=("channel",), clip={})


def _rows(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    channel = rng.choice(np.array(["web", "branch"], dtype=object), n)
    ratio = rng.normal(0, 1, n)
    logit = -2.0 + 0.5 * (channel == "web") + 1.2 * ratio
    return pd.DataFrame(
        {
            "account_id": np.arange(n),
            "event_timestamp": pd.Timestamp("2025-12-01", tz="UTC")
            + pd.to_timedelta(np.arange(n), "s"),
            "channel": channel,
            "ratio": ratio,
            "label": (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64),
        }
    )


def _model(role: str, features: list[str], train: pd.DataFrame) -> GateModel:
    pipeline = with_feature_step(
        STEP, features, logistic_baseline(STEP(train, features), train["label"])
    )
    return GateModel(
        role=role,
        version=role,
        threshold=0.2,
        features=features,
        artifact_sha256=role,
        model=pipeline,
        scorer=build_scorer(pipeline),
    )


@pytest.fixture(scope="module")
def project() -> Project:
    fraud = load_project(ROOT / "projects", "fraud")
    spec = fraud.spec.model_copy(update={"segments": ["channel"], "primary_metric": "roc_auc"})
    return fraud.model_copy(update={"spec": spec})


def test_run_statistics_uses_the_merged_statistics_and_measures_importance(
    project: Project,
) -> None:
    train, holdout = _rows(5_000, 1), _rows(8_000, 2)
    candidate = _model("candidate", ["channel", "ratio"], train)
    reference = _model("production", ["channel"], train)
    scores = {m.role: m.scores(holdout) for m in (candidate, reference)}
    stats = HoldoutStats.of(
        holdout["label"],
        scores,
        {m.role: m.threshold for m in (candidate, reference)},
        row_hashes(holdout, ["account_id", "event_timestamp"]),
        {"channel": holdout["channel"].to_numpy(dtype=object)},
    )
    merged = merged_statistics(project, stats, candidate, reference)
    label = holdout["label"].to_numpy()
    got = run_statistics(project, holdout, label, scores, candidate, reference, None, merged)
    assert got.interval is merged.interval and got.interval.method == "Poisson BCa"
    assert got.segments is merged.segments and got.candidate is merged.candidate
    assert set(got.importance.shares) == {"channel", "ratio"}
    assert got.importance.shares["ratio"] > got.importance.shares["channel"]
    rows = run_statistics(project, holdout, label, scores, candidate, reference, None)
    assert rows.interval.method == "BCa"
    assert abs(rows.interval.estimate - got.interval.estimate) < 1e-4
    assert set(merged.candidate.segments["channel"]) == {"web", "branch"}
    with pytest.raises(ValueError, match="not of"):
        merged_statistics(project, stats, candidate, _model("shadow", ["ratio"], train))
