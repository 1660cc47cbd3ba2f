"""Model-agnostic leakage check: holdout ROC-AUC ceiling and permutation-importance shares.

A feature computed after the event usually shows up two ways: the model is implausibly good, and
one input carries almost all of what the model knows. The second is measured here by permutation
importance (how much the holdout score falls when one column is shuffled), which works for any
model with ``predict_proba`` on the raw feature frame, not only for LightGBM's gain.

Nothing here raises for a measurement that cannot be made (single-class sample, a model that
fails to score, no feature that matters): the result says it did not run and why, and the gate
fails closed on it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

SCORINGS = ("roc_auc", "average_precision", "neg_log_loss", "neg_brier_score")
LEAK_HINT = "check that no feature is computed after the event"


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

    def top(self) -> tuple[str, float] | None:
        """The column with the largest share, or None when there are no shares."""
        if not self.shares:
            return None
        name = max(self.shares, key=lambda k: (self.shares[k], k))
        return name, self.shares[name]


@dataclass(frozen=True)
class LeakageFinding:
    """What the leakage checks found.

    ``suspected`` is True when a check that ran found leakage. ``checks_not_run`` lists checks
    that were wanted but could not be made, with the reason: the gate must fail closed on them.
    ``checks_disabled`` lists checks the project turned off on purpose; they do not fail the gate.
    """

    suspected: bool
    checks_run: list[str]
    checks_not_run: list[str]
    detail: str
    checks_disabled: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """No leakage suspected and every enabled check ran (fail closed)."""
        return not self.suspected and not self.checks_not_run


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
) -> Any:
    """``sklearn.inspection.permutation_importance`` with one ``predict_proba`` call.

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
    return run(_Replayed(answers), scorer)


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
        result = _stacked_permutation_importance(model, sample_x, sample_y, scorer, repeats, seed)
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
    )


def assess_leakage(
    auc: float,
    shares: ImportanceResult,
    *,
    auc_ceiling: float,
    max_feature_share: float | None,
) -> LeakageFinding:
    """Judge the two leakage signals; ``detail`` is the one sentence a reviewer reads.

    A non-finite ``auc`` or shares that did not run are listed in ``checks_not_run`` (the caller
    fails closed). ``max_feature_share=None`` disables the share check on purpose: a project whose
    legitimate dominant feature would otherwise be refused sets it so in ``project.yaml``.
    """
    run: list[str] = []
    not_run: list[str] = []
    disabled: list[str] = []
    findings: list[str] = []
    notes: list[str] = []

    auc_check = f"holdout ROC-AUC ceiling {auc_ceiling:g}"
    if auc is None or not math.isfinite(auc):
        not_run.append(f"{auc_check}: the holdout ROC-AUC is {auc}, not a number")
    else:
        run.append(auc_check)
        if auc > auc_ceiling:
            findings.append(f"holdout ROC-AUC {auc:.4f} is above the {auc_ceiling:g} ceiling")
        else:
            notes.append(f"ROC-AUC {auc:.4f} is within the {auc_ceiling:g} ceiling")

    top = shares.top() if shares.ran else None
    if max_feature_share is None:
        disabled.append("feature share limit: disabled by project.yaml")
        notes.append("the feature-share check is disabled by project.yaml (max_feature_share)")
    else:
        share_check = f"feature share limit {max_feature_share:.0%}"
        if top is None:
            reason = shares.reason or "no importance was measured"
            not_run.append(f"{share_check}: {reason}")
        else:
            run.append(share_check)
            name, share = top
            if share > max_feature_share:
                findings.append(
                    f"'{name}' carries {share:.0%} of the model's permutation importance "
                    f"(limit {max_feature_share:.0%})"
                )
            else:
                notes.append(
                    f"the top feature '{name}' carries {share:.0%} of the permutation "
                    f"importance (limit {max_feature_share:.0%})"
                )

    if findings:
        detail = "; ".join(findings) + f" - {LEAK_HINT}"
        if not_run:
            detail += f" (also not run: {'; '.join(not_run)})"
    elif not_run:
        detail = "leakage check could not run (" + "; ".join(not_run) + ")"
    else:
        detail = "; ".join(notes)
    if (findings or not_run) and disabled:
        detail += "; the feature-share check is disabled by project.yaml"
    return LeakageFinding(
        suspected=bool(findings),
        checks_run=run,
        checks_not_run=not_run,
        detail=detail + ".",
        checks_disabled=disabled,
    )
