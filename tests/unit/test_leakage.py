"""Permutation-importance leakage check: finds a copied label in any model, spares honest ones."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest
from gate_models import NoisyScores

from modelops.core.leakage import (
    permutation_shares,
    stratified_sample,
)
from modelops.core.modeling import lightgbm_pipeline, logistic_baseline

ROWS = 3000
INFORMATIVE = ("income", "tenure", "utilisation")


def _frame(seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = pd.DataFrame(
        {
            "income": rng.normal(size=ROWS),
            "tenure": rng.normal(size=ROWS),
            "utilisation": rng.normal(size=ROWS),
            "noise_a": rng.normal(size=ROWS),
            "noise_b": rng.normal(size=ROWS),
            "region": rng.choice(["north", "south", "east"], ROWS),
        }
    )
    logit = 1.4 * x["income"] + 1.2 * x["tenure"] - 1.3 * x["utilisation"] - 0.5
    y = (rng.random(ROWS) < 1 / (1 + np.exp(-logit))).astype(int)
    return x, y


def _with_leak(x: pd.DataFrame, y: np.ndarray) -> pd.DataFrame:
    """The label copied into a feature, like a table backfilled after the event."""
    leaky = x.copy()
    noise = np.random.default_rng(1).integers(0, 3, len(y))
    leaky["overdraft_days"] = np.where(y == 1, 25 + noise, noise)
    return leaky


Fit = Callable[[pd.DataFrame, np.ndarray], Any]


def _fit_logistic(x: pd.DataFrame, y: np.ndarray) -> Any:
    return logistic_baseline(x.iloc[:2000], y[:2000])


def _fit_lightgbm(x: pd.DataFrame, y: np.ndarray) -> Any:
    return lightgbm_pipeline(
        x.iloc[:1600], y[:1600], x.iloc[1600:2000], y[1600:2000], {"n_estimators": 80}
    )


MODELS = pytest.mark.parametrize("fit", [_fit_logistic, _fit_lightgbm], ids=["logistic", "lgbm"])


def _holdout(x: pd.DataFrame, y: np.ndarray) -> tuple[pd.DataFrame, np.ndarray]:
    return x.iloc[2000:], y[2000:]


@MODELS
def test_a_label_copied_into_a_feature_takes_almost_all_the_share(fit: Fit) -> None:
    x, y = _frame()
    leaky = _with_leak(x, y)
    model = fit(leaky, y)
    hx, hy = _holdout(leaky, y)

    result = permutation_shares(model, hx, hy, repeats=3)

    assert result.ran, result.reason
    assert result.rows_used == len(hy)
    assert result.top() == ("overdraft_days", result.shares["overdraft_days"])
    assert result.shares["overdraft_days"] > 0.9
    assert math.isclose(sum(result.shares.values()), 1.0)


@MODELS
def test_several_informative_features_share_the_importance(fit: Fit) -> None:
    x, y = _frame()
    model = fit(x, y)
    hx, hy = _holdout(x, y)

    result = permutation_shares(model, hx, hy, repeats=3)

    assert result.ran, result.reason
    for name in INFORMATIVE:
        assert 0.15 < result.shares[name] < 0.6, result.shares
    assert result.shares["noise_a"] < 0.05 and result.shares["noise_b"] < 0.05
    assert all(share >= 0 for share in result.shares.values())
    assert result.raw_mean["income"] > 0.02  # ROC-AUC falls when income is shuffled


def test_the_unshuffled_score_of_the_sample_is_kept_for_the_drop_column_comparison() -> None:
    from sklearn.metrics import roc_auc_score

    x, y = _frame()
    model = _fit_logistic(x, y)
    hx, hy = _holdout(x, y)
    result = permutation_shares(model, hx, hy, repeats=2)
    assert result.ran and result.rows_used == len(hy)
    assert math.isclose(result.score, roc_auc_score(hy, model.predict_proba(hx)[:, 1]))


def test_any_object_with_predict_proba_is_scored() -> None:
    x, y = _frame()
    wrapped = NoisyScores(_fit_logistic(x, y), noise=0.2)  # not an sklearn estimator
    hx, hy = _holdout(x, y)
    result = permutation_shares(wrapped, hx, hy, repeats=2)
    assert result.ran, result.reason
    assert max(result.shares, key=result.shares.__getitem__) in INFORMATIVE


def test_same_seed_gives_the_same_shares_and_another_seed_other_shuffles() -> None:
    x, y = _frame()
    model = _fit_logistic(x, y)
    hx, hy = _holdout(x, y)
    first = permutation_shares(model, hx, hy, sample=600, repeats=2, seed=3)
    again = permutation_shares(model, hx, hy, sample=600, repeats=2, seed=3)
    other = permutation_shares(model, hx, hy, sample=600, repeats=2, seed=4)
    assert first == again
    assert first.raw_mean != other.raw_mean


def test_the_sample_is_stratified_bounded_and_keeps_a_rare_class() -> None:
    y = np.r_[np.zeros(9_990, dtype=int), np.ones(10, dtype=int)]
    positions = stratified_sample(y, 500, seed=0)
    assert len(positions) == 500
    assert len(set(positions.tolist())) == 500
    assert y[positions].sum() == 1  # 10 / 10,000 of 500 rounds to 0, but the class is kept
    assert np.array_equal(positions, stratified_sample(y, 500, seed=0))
    assert not np.array_equal(positions, stratified_sample(y, 500, seed=1))

    balanced = np.r_[np.zeros(3000, dtype=int), np.ones(1000, dtype=int)]
    assert balanced[stratified_sample(balanced, 400, seed=0)].sum() == 100
    assert len(stratified_sample(balanced, 10_000, seed=0)) == 4000


def test_rows_used_is_capped_by_sample() -> None:
    x, y = _frame()
    model = _fit_logistic(x, y)
    result = permutation_shares(model, x, y, sample=700, repeats=1)
    assert result.ran and result.rows_used == 700
    assert "roc_auc" in result.method


def test_a_single_class_sample_does_not_run() -> None:
    x, y = _frame()
    model = _fit_logistic(x, y)
    result = permutation_shares(model, x.iloc[:200], np.zeros(200, dtype=int))
    assert not result.ran
    assert "single class" in result.reason
    assert result.shares == {}


class _Crashes:
    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        raise RuntimeError("native scoring library crashed")


class _Constant:
    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        return np.tile([0.7, 0.3], (len(frame), 1))


class _NotANumber:
    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        return np.full((len(frame), 2), np.nan)


@pytest.mark.parametrize(
    ("model", "reason"),
    [
        (_Crashes(), "native scoring library crashed"),
        (_NotANumber(), "non-finite"),
        (_Constant(), "shuffling no column"),
    ],
)
def test_a_model_that_cannot_be_measured_does_not_run(model: Any, reason: str) -> None:
    x, y = _frame()
    result = permutation_shares(model, x, y, sample=300, repeats=1)
    assert not result.ran
    assert reason in result.reason
    assert result.shares == {}


def test_unknown_scoring_is_a_programming_error() -> None:
    x, y = _frame()
    with pytest.raises(ValueError, match="unknown scoring"):
        permutation_shares(_Constant(), x, y, scoring="accuracy")


@MODELS
@pytest.mark.parametrize("scoring", ["roc_auc", "neg_log_loss"])
def test_stacked_scoring_gives_scikit_learns_permutation_importance(fit: Fit, scoring: str) -> None:
    # The shuffles come from sklearn's permutation_importance, the probabilities from one call
    # of the model on all shuffled copies: the importances are the direct call's.
    from sklearn.inspection import permutation_importance

    from modelops.core import leakage

    x, y = _frame(seed=3)
    model = fit(x, y)
    hx, hy = _holdout(x, y)
    calls = 0
    scorer = leakage._scorer(scoring)

    class Counting(leakage._Scorable):
        def predict_proba(self, rows: Any) -> Any:
            nonlocal calls
            calls += 1
            return super().predict_proba(rows)

    want = permutation_importance(
        leakage._Scorable(model), hx, hy, scoring=scorer, n_repeats=4, random_state=5
    )
    got, _ = leakage._stacked_permutation_importance(Counting(model), hx, hy, scorer, 4, 5)
    assert calls == 1
    assert np.array_equal(got.importances, want.importances)
    assert np.array_equal(got.importances_mean, want.importances_mean)
    assert np.array_equal(got.importances_std, want.importances_std)


def test_a_model_failing_on_the_stacked_rows_is_reported_as_not_run() -> None:
    x, y = _frame()

    class Broken:
        def predict_proba(self, rows: Any) -> Any:
            raise RuntimeError("no scoring today")

    result = permutation_shares(Broken(), x, y, sample=500)
    assert not result.ran and "RuntimeError: no scoring today" in result.reason
