"""Permutation importance for any model: the score with each column shuffled (drop-column).

How much the holdout score falls when one column is shuffled works for any model with
``predict_proba`` on the raw feature frame, not only for LightGBM's gain. The gate records it as
leakage evidence (the model's ROC-AUC without each feature); the rules that judge the evidence
are in :mod:`modelops.core.leakage_rules`.

Nothing here raises for a measurement that cannot be made (single-class sample, a model that
fails to score, no feature that matters): the result says it did not run and why, and the gate
fails closed on it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

SCORINGS = ("roc_auc", "average_precision", "neg_log_loss", "neg_brier_score")


@dataclass(frozen=True)
class ImportanceResult:
    """Permutation importance of every input column on a holdout sample.

    ``shares`` are each column's mean importance clipped at 0 over the sum of positive
    importances (they sum to 1 when ``ran``); ``raw_mean``/``raw_std`` are the score drops over
    the repeats, in the units of ``method``'s scoring. ``ran`` is False, with ``reason``, when the
    shares could not be computed.
    """

    shares: dict[str, float]
    raw_mean: dict[str, float]
    raw_std: dict[str, float]
    rows_used: int
    method: str
    ran: bool
    reason: str = ""
    score: float = math.nan  # the sample's score with nothing shuffled

    def top(self) -> tuple[str, float] | None:
        """The column with the largest share, or None when there are no shares."""
        if not self.shares:
            return None
        name = max(self.shares, key=lambda k: (self.shares[k], k))
        return name, self.shares[name]


class _Scorable:
    """The minimal estimator interface ``permutation_importance`` validates (it wants ``fit``)."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def fit(self, x: Any, y: Any = None) -> _Scorable:  # pragma: no cover - never called
        raise NotImplementedError("a fitted model is only scored, never refitted")

    def predict_proba(self, x: Any) -> Any:
        return self.model.predict_proba(x)


def _scorer(scoring: str) -> Callable[[Any, Any, Any], float]:
    """``scorer(estimator, X, y)`` for a binary classifier's positive-class probability."""
    from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

    def positive(estimator: Any, x: Any) -> np.ndarray:
        import numpy as np

        proba = np.asarray(estimator.predict_proba(x), dtype=np.float64)
        scores = proba[:, 1] if proba.ndim == 2 else proba
        if not np.all(np.isfinite(scores)):
            raise ValueError("the model returned non-finite probabilities")
        return scores

    metrics: dict[str, Callable[[Any, Any], float]] = {
        "roc_auc": lambda y, p: float(roc_auc_score(y, p)),
        "average_precision": lambda y, p: float(average_precision_score(y, p)),
        "neg_log_loss": lambda y, p: -float(log_loss(y, p, labels=[0, 1])),
        "neg_brier_score": lambda y, p: -float(brier_score_loss(y, p)),
    }
    if scoring not in metrics:
        raise ValueError(f"unknown scoring {scoring!r}; use one of {', '.join(SCORINGS)}")
    metric = metrics[scoring]
    return lambda estimator, x, y: metric(y, positive(estimator, x))


class _Replayed:
    """Answers ``predict_proba`` with the next of the ``answers`` given, in call order."""

    def __init__(self, answers: list[Any]) -> None:
        self.answers = iter(answers)

    def fit(self, x: Any, y: Any = None) -> _Replayed:  # pragma: no cover - never called
        raise NotImplementedError("a fitted model is only scored, never refitted")

    def predict_proba(self, x: Any) -> Any:
        answer = next(self.answers)
        if len(answer) != len(x):  # pragma: no cover - the calls are replayed in order
            raise RuntimeError("permutation importance asked for other rows than recorded")
        return answer


def _stacked_permutation_importance(
    model: Any, x: pd.DataFrame, y: Any, scorer: Any, repeats: int, seed: int
) -> tuple[Any, float]:
    """``sklearn.inspection.permutation_importance`` with one ``predict_proba`` call, and the
    score of the unshuffled rows.

    scikit-learn scores the model once unshuffled and once per column and repeat (66 calls
    for 13 columns and 5 repeats), each on a few thousand rows where a pipeline's fixed cost
    per call dominates. It runs twice here with the same seed, so with the same shuffles:
    first recording the frames it would score (and scoring nothing), then, after the model
    scored all of them stacked in one call, handing each call its rows' probabilities. A
    model whose rows score independently of each other (every model the platform registers)
    gives exactly the importances of the direct call.
    """
    import numpy as np
    import pandas as pd
    from sklearn.inspection import permutation_importance

    frames: list[pd.DataFrame] = []

    def record(estimator: Any, rows: Any, labels: Any) -> float:
        frames.append(rows.copy())
        return 0.0

    def run(estimator: Any, scoring: Any) -> Any:
        return permutation_importance(
            estimator, x, y, scoring=scoring, n_repeats=repeats, random_state=seed
        )

    run(_Scorable(model), record)
    stacked = model.predict_proba(pd.concat(frames, ignore_index=True))
    frames.clear()
    answers = np.split(np.asarray(stacked), np.arange(1, len(stacked) // len(x)) * len(x))
    unshuffled = float(scorer(_Replayed([answers[0]]), x, y))  # scikit-learn scores it first
    return run(_Replayed(answers), scorer), unshuffled


def stratified_sample(y: Any, size: int, seed: int) -> np.ndarray:
    """Sorted positions of at most ``size`` rows keeping each class's share, deterministic in seed.

    Every class present keeps at least one row, so a rare positive class is never sampled away.
    """
    import numpy as np

    labels = np.asarray(y)
    n = len(labels)
    if n <= size:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    quotas = np.maximum(1, np.floor(counts * size / n).astype(np.int64))
    # hand out the rows lost to rounding to the classes with the largest remainders
    remainders = counts * size / n - np.floor(counts * size / n)
    for i in np.argsort(-remainders, kind="stable"):
        if quotas.sum() >= size:
            break
        if quotas[i] < counts[i]:
            quotas[i] += 1
    chosen = [
        rng.choice(np.flatnonzero(labels == value), size=int(quota), replace=False)
        for value, quota in zip(classes, quotas, strict=True)
    ]
    return np.sort(np.concatenate(chosen))


def permutation_shares(
    model: Any,
    x: pd.DataFrame,
    y: Any,
    *,
    sample: int = 5000,
    repeats: int = 5,
    seed: int = 0,
    scoring: str = "roc_auc",
) -> ImportanceResult:
    """Permutation importance of each column of ``x`` for any model with ``predict_proba``.

    Scores a deterministic stratified sample of at most ``sample`` rows, shuffling one column at
    a time ``repeats`` times (``sklearn.inspection.permutation_importance``, seeded; every shuffled
    copy scored in one call, see :func:`_stacked_permutation_importance`). The same
    model, rows and seed always give the same shares. Never raises for data or model trouble:
    ``ran`` is False with a reason instead. An unknown ``scoring`` is a programming error and
    raises ``ValueError``.
    """
    import numpy as np

    scorer = _scorer(scoring)
    method = f"permutation importance ({scoring}, {repeats} repeats, seed {seed})"
    columns = [str(c) for c in x.columns]

    def not_run(reason: str, rows: int = 0, **raw: dict[str, float]) -> ImportanceResult:
        return ImportanceResult(
            shares={},
            raw_mean=raw.get("mean", {}),
            raw_std=raw.get("std", {}),
            rows_used=rows,
            method=method,
            ran=False,
            reason=reason,
        )

    labels = np.asarray(y)
    if len(labels) != len(x):
        return not_run(f"{len(x)} feature rows but {len(labels)} labels")
    if not columns:
        return not_run("there are no feature columns")
    positions = stratified_sample(labels, max(int(sample), 1), seed)
    sample_y = labels[positions]
    rows = len(positions)
    present = np.unique(sample_y)
    if len(present) < 2:
        return not_run(f"the {rows} sampled rows hold a single class", rows)
    if len(present) > 2:
        return not_run(f"the label has {len(present)} classes; only binary labels are scored", rows)
    sample_x = x.iloc[positions].reset_index(drop=True)

    try:
        result, score = _stacked_permutation_importance(
            model, sample_x, sample_y, scorer, repeats, seed
        )
    except Exception as error:  # the gate reports any model failure as "could not run"
        return not_run(
            f"the model failed to score the sample: {type(error).__name__}: {error}", rows
        )

    means = [float(v) for v in result.importances_mean]
    stds = [float(v) for v in result.importances_std]
    raw_mean = dict(zip(columns, means, strict=True))
    raw_std = dict(zip(columns, stds, strict=True))
    if not all(math.isfinite(v) for v in means):
        return not_run("permutation importance is not finite", rows, mean=raw_mean, std=raw_std)
    positive = {c: max(v, 0.0) for c, v in raw_mean.items()}
    total = sum(positive.values())
    if total <= 0.0:
        return not_run(
            f"shuffling no column lowers the model's {scoring}", rows, mean=raw_mean, std=raw_std
        )
    return ImportanceResult(
        shares={c: v / total for c, v in positive.items()},
        raw_mean=raw_mean,
        raw_std=raw_std,
        rows_used=rows,
        method=method,
        ran=True,
        score=score,
    )


def categorical_features(frame: pd.DataFrame, features: list[str], declared: Any) -> list[str]:
    """The features the leakage evidence treats as categories: those ``features.categorical``
    declares, and any other whose column is neither numeric nor boolean."""
    import pandas as pd

    chosen = []
    for name in features:
        column = frame[name] if name in frame.columns else None
        numeric = column is not None and (
            pd.api.types.is_bool_dtype(column) or pd.api.types.is_numeric_dtype(column)
        )
        if name in set(declared) or (column is not None and not numeric):
            chosen.append(name)
    return chosen


def category_counts(
    frame: pd.DataFrame, features: list[str], label: Any
) -> dict[str, dict[str, tuple[int, int]]]:
    """Per categorical feature, each category's (positives, negatives) among ``frame``'s rows."""
    import numpy as np
    import pandas as pd

    y = np.asarray(label).astype(np.int64)
    counts: dict[str, dict[str, tuple[int, int]]] = {}
    for name in features:
        keys = frame[name].astype("string").fillna("unknown").to_numpy(dtype=object)
        codes, values = pd.factorize(keys)
        positives = np.bincount(codes, weights=y, minlength=len(values)).astype(np.int64)
        totals = np.bincount(codes, minlength=len(values))
        counts[name] = {
            str(v): (int(p), int(t - p)) for v, p, t in zip(values, positives, totals, strict=True)
        }
    return counts
