"""leakage: the evidence the leakage rules judge, measured on the holdout rows.

Per feature (:func:`feature_evidence`): its ROC-AUC alone and the share of (class-balanced) rows
whose value decides the label, on a stratified sample of at most :data:`UNIVARIATE_SAMPLE`
holdout rows; a categorical feature is scored by each category's label rate on the *training*
rows (recorded with the version, :data:`~modelops.core.tags.CATEGORY_COUNTS`), so a holdout row
never scores itself. The model's ROC-AUC without each feature comes from the permutation
importance measured beside the bootstraps (a column shuffled on held-out rows, no retrain).
Per model (:func:`model_evidence`): the holdout ROC-AUC with the validation ROC-AUC of the
candidate and of its baseline, recorded as tags at training. The rules are
:mod:`modelops.core.leakage_rules`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from modelops.core import tags
from modelops.core.leakage import ImportanceResult, categorical_features, stratified_sample
from modelops.core.leakage_rules import DECIDED_RATE, FeatureEvidence, ModelEvidence

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

UNIVARIATE_SAMPLE = 200_000
MAX_BINS = 20
MIN_BIN_ROWS = 100
PSEUDO = 0.5  # rows of each class added to every bin: a small bin is never pure by chance


def _sorted_auc(ordered: np.ndarray, labels: np.ndarray) -> float:
    """ROC-AUC of the already sorted ``ordered`` values for their 0/1 ``labels`` (ties count
    half), by mid-ranks: one sort serves the AUC, the distinct values and the bin edges."""
    import numpy as np

    positives = int(labels.sum())
    negatives = len(labels) - positives
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ends = np.r_[starts[1:], len(ordered)]
    mid_ranks = (starts + 1 + ends) / 2.0  # ranks start + 1 .. end share their mean
    group_positives = np.add.reduceat(labels, starts)
    rank_sum = float((mid_ranks * group_positives).sum())
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


def _balanced_rates(pos: np.ndarray, neg: np.ndarray, p: float, n: float) -> np.ndarray:
    """Each bin's label rate with both classes weighted to the same size (pseudo-counted)."""
    tpr, fpr = (pos + PSEUDO) / (p + 2 * PSEUDO), (neg + PSEUDO) / (n + 2 * PSEUDO)
    return tpr / (tpr + fpr)


def _decided_share(pos: np.ndarray, neg: np.ndarray, decided: np.ndarray) -> float:
    """The class-balanced share of rows in the ``decided`` bins."""
    p, n = float(pos.sum()), float(neg.sum())
    return float(0.5 * (pos[decided].sum() / p + neg[decided].sum() / n))


def _extreme(rates: np.ndarray) -> np.ndarray:
    return (rates >= DECIDED_RATE) | (rates <= 1.0 - DECIDED_RATE)


def _balanced_edges(ordered: np.ndarray, labels: np.ndarray, bins: int) -> np.ndarray:
    """Inner bin edges of the sorted ``ordered`` values at equal steps of the class-balanced
    mass (each class weighs one half): a rare class gets as many bins as the common one, and a
    value holding most rows (zero, say) does not swallow the others."""
    import numpy as np

    positives = max(int(labels.sum()), 1)
    negatives = max(len(labels) - int(labels.sum()), 1)
    mass = np.cumsum(np.where(labels == 1, 0.5 / positives, 0.5 / negatives))
    steps = np.linspace(0, mass[-1], bins + 1)[1:-1]
    picked = np.minimum(np.searchsorted(mass, steps), len(ordered) - 1)
    return np.unique(ordered[picked])


def _numeric(name: str, column: pd.Series, y: np.ndarray) -> FeatureEvidence:
    """Oriented ROC-AUC alone; decided rows over quantile bins (missing values: one bin)."""
    import numpy as np

    values = column.to_numpy(dtype="float64", na_value=np.nan)
    missing = ~np.isfinite(values)
    if missing.all():
        return FeatureEvidence(name, "numeric", math.nan, "", math.nan, len(y), reason="no value")
    low = np.nanmin(np.where(missing, np.nan, values))
    filled = np.where(missing, low - 1.0, values)  # missing: below every value, one rank
    order = np.argsort(filled, kind="stable")
    ordered, labels = filled[order], y[order]
    auc = _sorted_auc(ordered, labels)
    direction = "higher values, more positives" if auc >= 0.5 else "lower values, more positives"
    bins = int(min(MAX_BINS, max(4, len(y) // MIN_BIN_ROWS)))
    first_present = int(missing.sum())  # missing values sort first, below every value
    present, present_y = ordered[first_present:], labels[first_present:]
    distinct = present[np.r_[True, present[1:] != present[:-1]]]
    if len(distinct) <= bins:
        codes = np.searchsorted(distinct, filled)
    else:
        codes = np.searchsorted(_balanced_edges(present, present_y, bins), filled, side="right")
    codes = np.where(missing, codes.max() + 1, codes)
    pos = np.bincount(codes, weights=y).astype(np.float64)
    neg = np.bincount(codes).astype(np.float64) - pos
    rates = _balanced_rates(pos, neg, pos.sum(), neg.sum())
    return FeatureEvidence(
        name,
        "numeric",
        max(auc, 1.0 - auc),
        direction,
        _decided_share(pos, neg, _extreme(rates)),
        len(y),
    )


def _categorical(
    name: str, column: pd.Series, y: np.ndarray, trained: Mapping[str, tuple[int, int]]
) -> FeatureEvidence:
    """ROC-AUC of each row's training category rate; decided rows: categories whose training
    rate and holdout rate are both extreme, on the same side."""
    import numpy as np
    import pandas as pd

    keys = column.astype("string").fillna("unknown").to_numpy(dtype=object)
    codes, values = pd.factorize(keys)
    # a category the tag had no room for has the pooled rate; one never seen in training, 0.5
    pooled = trained.get(tags.OTHER_CATEGORIES, (0, 0))
    t_pos = np.array([trained.get(str(v), pooled)[0] for v in values], dtype=np.float64)
    t_neg = np.array([trained.get(str(v), pooled)[1] for v in values], dtype=np.float64)
    all_pos = float(sum(p for p, _ in trained.values()))
    all_neg = float(sum(n for _, n in trained.values()))
    if not all_pos or not all_neg:
        return FeatureEvidence(
            name,
            "categorical",
            math.nan,
            "",
            math.nan,
            len(y),
            reason="the training rows recorded for it hold a single class",
        )
    t_rates = _balanced_rates(t_pos, t_neg, all_pos, all_neg)  # unseen: 0.5
    rated = t_rates[codes]
    order = np.argsort(rated, kind="stable")
    auc = _sorted_auc(rated[order], y[order])
    pos = np.bincount(codes, weights=y, minlength=len(values)).astype(np.float64)
    neg = np.bincount(codes, minlength=len(values)).astype(np.float64) - pos
    h_rates = _balanced_rates(pos, neg, pos.sum(), neg.sum())
    high = (t_rates >= DECIDED_RATE) & (h_rates >= DECIDED_RATE)
    low = (t_rates <= 1 - DECIDED_RATE) & (h_rates <= 1 - DECIDED_RATE)
    return FeatureEvidence(
        name,
        "categorical",
        auc,
        "categories scored by their training label rate",
        _decided_share(pos, neg, high | low),
        len(y),
    )


def feature_evidence(
    frame: pd.DataFrame,
    label: np.ndarray,
    features: list[str],
    declared_categorical: tuple[str, ...],
    candidate_tags: Mapping[str, str],
    importance: ImportanceResult,
    seed: int = 0,
) -> list[FeatureEvidence]:
    """The univariate evidence of every candidate input, with the model's ROC-AUC without it."""
    import numpy as np

    y = np.asarray(label).astype(np.int64)
    rows = stratified_sample(y, UNIVARIATE_SAMPLE, seed)
    sample, y = frame.iloc[rows], y[rows]
    categorical = set(categorical_features(sample, features, declared_categorical))
    recorded = candidate_tags.get(tags.CATEGORY_COUNTS)
    counts = tags.parse_category_counts(recorded) if recorded else {}
    single = len(np.unique(y)) < 2
    evidence = []
    for name in features:
        if single:
            found = _not_measured(name, len(y), "the holdout holds a single class")
        elif name not in frame.columns:
            found = _not_measured(name, len(y), "the holdout has no such column")
        elif name in categorical and name not in counts:
            found = _not_measured(
                name,
                len(y),
                "its training category rates were not recorded with the version "
                f"('{tags.CATEGORY_COUNTS}'); train it again",
            )
        elif name in categorical:
            found = _categorical(name, sample[name], y, counts[name])
        else:
            found = _numeric(name, sample[name], y)
        evidence.append(_with_drop_column(found, importance))
    return evidence


def _not_measured(name: str, rows: int, reason: str) -> FeatureEvidence:
    return FeatureEvidence(name, "", math.nan, "", math.nan, rows, reason=reason)


def _with_drop_column(found: FeatureEvidence, importance: ImportanceResult) -> FeatureEvidence:
    """``found`` with the model's ROC-AUC on the permutation sample, as is and shuffled."""
    import dataclasses

    drop = importance.raw_mean.get(found.feature)
    if not importance.ran or drop is None or not math.isfinite(importance.score):
        return found
    return dataclasses.replace(
        found, auc_with=importance.score, auc_without=importance.score - drop
    )


def model_evidence(
    holdout_auc: float, ceiling: float, candidate_tags: Mapping[str, Any]
) -> ModelEvidence:
    """The holdout ROC-AUC and the training-time validation ROC-AUCs it is compared with."""
    missing = [
        key
        for key in (tags.validation_metric("roc_auc"), tags.BASELINE_VALIDATION_ROC_AUC)
        if key not in candidate_tags
    ]

    def read(key: str) -> float:
        try:
            return float(candidate_tags[key])
        except (KeyError, TypeError, ValueError):
            return math.nan

    return ModelEvidence(
        holdout_auc=holdout_auc,
        ceiling=ceiling,
        validation_auc=read(tags.validation_metric("roc_auc")),
        baseline_auc=read(tags.BASELINE_VALIDATION_ROC_AUC),
        missing=(
            f"the version has no {' or '.join(repr(k) for k in missing)} tag; train it again"
            if missing
            else ""
        ),
    )
