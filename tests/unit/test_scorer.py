"""The pandas-free serving scorer gives exactly the registered pipeline's probabilities."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from modelops.config.settings import Settings
from modelops.core.errors import DataError
from modelops.core.features import FeatureStep
from modelops.core.modeling import lightgbm_pipeline, logistic_baseline, with_feature_step
from modelops.core.scorer import (
    PIPELINE,
    Scorer,
    ScorerMismatchError,
    build_scorer,
    verify_scorer,
)

FEATURES = ["sector", "channel", "amount", "ratio", "count", "tenure"]
STEP = FeatureStep(
    categorical=("sector", "channel"), clip={"amount": (None, 50.0), "ratio": (-1.0, 1.0)}
)
TOLERANCE = 1e-9
THRESHOLD = 0.3


def _frame(rows: int, seed: int, *, serving: bool = False) -> pd.DataFrame:
    """Synthetic feature-service rows; ``serving`` adds an unseen and missing categories."""
    rng = np.random.default_rng(seed)
    sectors = np.array(["retail", "energy", "tech", "farming", "transport"], dtype=object)
    sector = rng.choice(sectors, rows).astype(object)
    channel = rng.choice(np.array(["web", "branch", "phone"], dtype=object), rows).astype(object)
    channel[rng.random(rows) < 0.05] = None  # missing in training too: becomes "unknown"
    amount = rng.lognormal(2.5, 1.2, rows)  # a long tail past the clip at 50
    amount[rng.random(rows) < 0.08] = np.nan
    ratio = rng.normal(0, 0.8, rows)
    ratio[rng.random(rows) < 0.1] = np.nan
    count = rng.poisson(4, rows)
    tenure = rng.integers(0, 120, rows).astype(float)
    if serving:
        sector[::7] = "space-mining"  # never seen in training
        sector[3::11] = None  # missing category at scoring time
        sector[5::13] = np.nan
        channel[1::9] = "carrier-pigeon"
        channel[6::23] = np.nan
        amount[2::17] = 1e6  # far past the clip
        ratio[4::19] = -7.0
    logit = (
        -1.5
        + 0.8 * (sector == "tech")
        - 0.6 * (sector == "farming")
        + 0.5 * (channel == "web")
        + 0.03 * np.nan_to_num(np.minimum(amount, 50.0), nan=10.0)
        + 1.2 * np.nan_to_num(np.clip(ratio, -1, 1))
        - 0.01 * tenure
        + 0.1 * count
    )
    label = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    return pd.DataFrame(
        {
            "sector": sector,
            "channel": channel,
            "amount": amount,
            "ratio": ratio,
            "count": count,
            "tenure": tenure,
            "label": label,
        }
    )


@pytest.fixture(scope="module")
def data() -> dict[str, pd.DataFrame]:
    return {
        "train": _frame(3000, 1),
        "valid": _frame(1000, 2),
        "score": _frame(1500, 3, serving=True),
    }


def _fit(
    data: dict[str, pd.DataFrame],
    build_features: Callable[[pd.DataFrame, list[str]], pd.DataFrame] = STEP,
) -> dict[str, Any]:
    train, valid = data["train"], data["valid"]
    x_train, x_valid = build_features(train, FEATURES), build_features(valid, FEATURES)
    params = {"n_estimators": 80, "n_jobs": 1, "num_leaves": 7, "min_child_samples": 20}
    models = {
        "lightgbm": lightgbm_pipeline(
            x_train, train["label"], x_valid, valid["label"], params, early_stopping_rounds=20
        ),
        "logistic": logistic_baseline(x_train, train["label"]),
    }
    return {k: with_feature_step(build_features, FEATURES, m) for k, m in models.items()}


@pytest.fixture(scope="module")
def models(data: dict[str, pd.DataFrame]) -> dict[str, Any]:
    return _fit(data)


def _python_row(frame: pd.DataFrame, i: int) -> dict[str, Any]:
    """A row as the feature service hands it over: Python str/float/int/None."""
    row: dict[str, Any] = {}
    for name in FEATURES:
        value = frame[name].iloc[i]
        if value is None or (isinstance(value, float) and np.isnan(value)):
            row[name] = None if name in STEP.categorical else float("nan")
        elif isinstance(value, np.generic):
            row[name] = value.item()
        else:
            row[name] = value
    return row


@pytest.mark.parametrize("kind", ["lightgbm", "logistic"])
def test_scores_equal_predict_proba_on_every_row(
    kind: str, models: dict[str, Any], data: dict[str, pd.DataFrame]
) -> None:
    model, frame = models[kind], data["score"]
    scorer = build_scorer(model)
    assert scorer.kind == kind and scorer.reason is None
    assert scorer.feature_names == tuple(FEATURES)

    expected = model.predict_proba(frame[FEATURES])[:, 1]
    batch = scorer.score_columns({c: frame[c].to_numpy() for c in FEATURES})
    rows = scorer.score_rows([_python_row(frame, i) for i in range(len(frame))])
    one_by_one = np.array([scorer.score_one(_python_row(frame, i)) for i in range(len(frame))])
    for got in (batch, rows, one_by_one):
        assert got.shape == expected.shape
        assert np.max(np.abs(got - expected)) <= TOLERANCE
        assert ((got >= THRESHOLD) == (expected >= THRESHOLD)).all()
    np.testing.assert_allclose(rows, batch, rtol=0, atol=TOLERANCE)

    check = verify_scorer(scorer, model, frame, FEATURES, TOLERANCE, threshold=THRESHOLD)
    assert check.passed and check.flips == 0 and check.rows == len(frame), check.detail
    assert check.require() is check


def test_the_edge_rows_are_really_exercised(data: dict[str, pd.DataFrame]) -> None:
    """The scoring frame holds every case the scorer must map as the pipeline does."""
    frame, train = data["score"], data["train"]
    assert "space-mining" in set(frame["sector"]) and "space-mining" not in set(train["sector"])
    assert frame["sector"].isna().any() and frame["channel"].isna().any()
    assert frame["amount"].isna().any() and (frame["amount"] > 50).any()
    assert (frame["ratio"] < -1).any()


def test_raw_categories_and_a_feature_empty_in_training_match_too(
    data: dict[str, pd.DataFrame],
) -> None:
    """Undeclared string columns reach the encoders with None and NaN (None is a category to
    scikit-learn, NaN is missing); a column empty in training is dropped by the imputer."""
    step = FeatureStep(categorical=("sector",), clip={})
    emptied = {k: v.assign(tenure=np.nan) if k != "score" else v for k, v in data.items()}
    frame = data["score"]
    assert frame["channel"].map(lambda v: v is None).any() and frame["channel"].isna().sum() > 0
    for kind, model in _fit(emptied, step).items():
        scorer = build_scorer(model)
        assert scorer.kind == kind, scorer.reason
        check = verify_scorer(scorer, model, frame, threshold=THRESHOLD)
        assert check.passed, check.detail
        with pytest.raises(DataError, match="'tenure'"):  # unused by the model, still an input
            scorer.score_one({k: v for k, v in _python_row(frame, 0).items() if k != "tenure"})
        for value in (None, float("nan"), "carrier-pigeon"):
            row = {**_python_row(frame, 0), "channel": value}
            one = pd.DataFrame([row]).astype({"channel": object})
            one["channel"] = pd.Series([value], dtype=object)  # NaN stays in a string column
            expected = model.predict_proba(one)
            assert scorer.score_one(row) == pytest.approx(expected[0, 1], abs=TOLERANCE)


def test_score_one_takes_python_scalars(models: dict[str, Any]) -> None:
    row = {
        "sector": "tech",
        "channel": None,  # missing category → "unknown"
        "amount": 1e9,  # clipped to 50
        "ratio": None,  # missing number
        "count": 3,
        "tenure": 12,
    }
    frame = pd.DataFrame([row]).astype({"ratio": float})
    for kind, model in models.items():
        scorer = build_scorer(model)
        score = scorer.score_one(row)
        assert isinstance(score, float)
        assert score == pytest.approx(model.predict_proba(frame)[0, 1], abs=TOLERANCE), kind
        assert score == pytest.approx(scorer.score_one({**row, "amount": 50.0}), abs=0), kind
        unseen = {**row, "sector": "space-mining", "ratio": float("nan")}
        expected = model.predict_proba(pd.DataFrame([unseen]))[0, 1]
        assert scorer.score_one(unseen) == pytest.approx(expected, abs=TOLERANCE), kind


@pytest.mark.parametrize("kind", ["lightgbm", "logistic"])
def test_a_missing_feature_is_named(kind: str, models: dict[str, Any]) -> None:
    scorer = build_scorer(models[kind])
    row = {"sector": "tech", "channel": "web", "amount": 3.0, "count": 1, "tenure": 5.0}
    with pytest.raises(DataError, match="'ratio'"):
        scorer.score_one(row)
    with pytest.raises(DataError, match="'ratio' is missing in row 1"):
        scorer.score_rows([{**row, "ratio": 0.1}, row])
    with pytest.raises(DataError, match="'ratio'"):
        scorer.score_columns({k: [v] for k, v in row.items()})
    with pytest.raises(DataError, match=r"'amount'.*not a number"):
        scorer.score_one({**row, "ratio": 0.1, "amount": "lots"})


SCORE_IN_A_FRESH_PROCESS = """
import json, pickle, sys
from modelops.core.features import FeatureStep
from modelops.core.scorer import build_scorer, verify_scorer
with open(sys.argv[1], "rb") as f:
    model, frame = pickle.load(f)
step = model.steps[0][1].func
scorer = build_scorer(model)
check = verify_scorer(scorer, model, frame, threshold=0.3)
print(json.dumps({"copy": type(step) is not FeatureStep, "name": type(step).__name__,
                  "kind": scorer.kind, "reason": scorer.reason, "passed": check.passed,
                  "detail": check.detail}))
"""


def test_the_artifact_as_unpickled_by_value_is_still_scored_natively(
    models: dict[str, Any], data: dict[str, pd.DataFrame], tmp_path: Path
) -> None:
    """Registered artifacts carry FeatureStep by value: unpickled in another process, it is a
    copy of the class, recognised by its code."""
    import cloudpickle

    from modelops.core import features

    cloudpickle.register_pickle_by_value(features)
    try:
        blob = cloudpickle.dumps((models["lightgbm"], data["score"]))
    finally:
        cloudpickle.unregister_pickle_by_value(features)
    (tmp_path / "artifact.pkl").write_bytes(blob)
    done = subprocess.run(
        [sys.executable, "-c", SCORE_IN_A_FRESH_PROCESS, str(tmp_path / "artifact.pkl")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["copy"] and seen["name"] == "FeatureStep"
    assert seen["kind"] == "lightgbm", seen["reason"]
    assert seen["passed"], seen["detail"]


def test_a_feature_step_with_other_code_falls_back(models: dict[str, Any]) -> None:
    """A FeatureStep whose code is not the one the scorer mirrors is scored by its pipeline."""

    def changed(self: Any, frame: pd.DataFrame, feature_names: list[str]) -> pd.DataFrame:
        return frame[feature_names].fillna(0)

    impostor = type(
        "FeatureStep",
        (),
        {"__module__": FeatureStep.__module__, "__call__": changed, "categorical": (), "clip": {}},
    )
    scorer = build_scorer(with_feature_step(impostor(), FEATURES, models["logistic"][-1]))
    assert scorer.kind == PIPELINE and "not the code this scorer mirrors" in str(scorer.reason)


def _custom_build_features(frame: pd.DataFrame, feature_names: list[str]) -> pd.DataFrame:
    x = frame[feature_names].copy()
    for column in ("sector", "channel"):
        x[column] = x[column].fillna("none").astype(str).str.upper()
    x["amount"] = np.log1p(x["amount"])
    return x


def test_custom_build_features_falls_back_to_the_pipeline_and_still_matches(
    data: dict[str, pd.DataFrame],
) -> None:
    for kind, model in _fit(data, _custom_build_features).items():
        scorer = build_scorer(model)
        assert scorer.kind == PIPELINE, kind
        assert scorer.reason and "_custom_build_features" in scorer.reason
        check = verify_scorer(scorer, model, data["score"], threshold=THRESHOLD, single_rows=20)
        assert check.passed, check.detail
        row = _python_row(data["score"], 0)
        expected = model.predict_proba(data["score"][FEATURES].head(1))[0, 1]
        assert scorer.score_one(row) == pytest.approx(expected, abs=TOLERANCE)
        with pytest.raises(DataError, match="'tenure'"):
            scorer.score_one({k: v for k, v in row.items() if k != "tenure"})


def test_verify_scorer_reports_a_mismatch(
    models: dict[str, Any], data: dict[str, pd.DataFrame]
) -> None:
    class Shifted(Scorer):
        kind, feature_names, reason = "shifted", tuple(FEATURES), None

        def score_one(self, row: Any) -> float:
            return float(self.score_columns({k: [v] for k, v in row.items()})[0])

        def score_columns(self, columns: Any) -> np.ndarray:
            return inner.score_columns(columns) + 0.01

    inner = build_scorer(models["logistic"])
    check = verify_scorer(Shifted(), models["logistic"], data["score"], threshold=THRESHOLD)
    assert not check.passed and check.flips > 0
    assert check.max_abs_diff == pytest.approx(0.01, abs=1e-9)
    with pytest.raises(ScorerMismatchError, match="does NOT match"):
        check.require()


# --- both bundled projects, every registered version, the whole holdout -----------------------


def test_bundled_projects_holdouts_score_identically(
    workspace: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    """credit_risk and fraud, candidate and baseline: the scorer reproduces the registered
    artifact on every holdout row, with no decision flipped at the version's threshold."""
    from modelops.core import tags
    from modelops.integrations import mlflow as mlflow_io
    from modelops.services import data as data_service
    from modelops.services import features as features_service
    from modelops.services import train as train_service
    from modelops.services.context import project as project_for
    from modelops.services.context import tracking
    from modelops.services.datasets import build_training_set

    rows = {"credit_risk": 6_000, "fraud": 20_000}
    for name, count in rows.items():
        data_service.generate(workspace, [name], rows=count, seed=3)
    features_service.apply(workspace)
    results = [train_service.train(workspace, name) for name in rows]
    lines = []
    with mlflow_io.session(tracking(workspace)) as client:
        for result in results:
            project = project_for(workspace, result.project)
            holdout = None
            for trained in (result.candidate, result.baseline):
                mv = client.get_model_version(result.model_name, trained.version)
                model, _ = mlflow_io.load_verified_model(
                    f"models:/{result.model_name}/{trained.version}",
                    mv.tags[tags.ARTIFACT_SHA256],
                    f"{result.project} v{trained.version}",
                )
                features = mv.tags[tags.FEATURES].split(",")
                if holdout is None:  # the gate's rows: point-in-time, same checks as training
                    holdout = build_training_set(
                        workspace,
                        project,
                        datetime.now(UTC),
                        windows=("holdout",),
                        trained_missing=json.loads(mv.tags[tags.MISSING_SHARE_TRAIN]),
                    ).frames["holdout"]
                scorer = build_scorer(model, features)
                assert scorer.kind in ("lightgbm", "logistic"), scorer.reason
                check = verify_scorer(
                    scorer, model, holdout, features, threshold=float(mv.tags[tags.THRESHOLD])
                )
                lines.append(
                    f"{result.project} v{trained.version} ({trained.role}): {check.detail}"
                )
                assert check.passed, check.detail
                assert check.rows == len(holdout) > 100
    with capsys.disabled():
        print("\n" + "\n".join(lines))
