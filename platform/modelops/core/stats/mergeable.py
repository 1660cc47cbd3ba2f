"""Statistics that merge across partitions: what the gate and the monitor keep on Spark.

A holdout too large for one machine is scored partition by partition; each partition reduces its
rows to a few fixed-size aggregates, the aggregates of two partitions merge into the aggregates
of their union (``a.merge(b)``, associative and commutative), and the driver holds only those:

* :class:`ScoreHistogram` - one model on a set of rows: positives and negatives per score bin
  (``DEFAULT_BINS`` = 4,096 equal bins of [0, 1]), the scores' sum per bin, the exact confusion
  counts at the model's threshold (counted beside the histogram, so decision metrics, cost,
  alert rate, recall and precision are exact whatever the threshold), and the log-loss and
  Brier sums. ROC-AUC and PR-AUC come from the bins as tie groups (the definitions of
  :func:`modelops.core.metrics.classification_metrics`): within a bin, a positive and a negative
  count one half, so the error is bounded by the share of positive-negative pairs sharing a bin
  (under 1e-4 at 4,096 bins on continuous scores; see the unit tests). ECE is the equal-count
  ECE of the bins (the chunks cut at bin edges), an approximation.
* :class:`RowSample` - per class, the ``k`` rows with the smallest row hash (a bottom-k sketch):
  a uniform sample without replacement, stratified by label, the same whatever the partitioning.
* :class:`HoldoutStats` - both together, overall and per segment, for several models.

The intervals come from a Poisson bootstrap of the sample (:func:`poisson_weights`: each row's
weight in replicate ``r`` is a Poisson(1) draw from a counter-based generator keyed by a hash of
the row id and ``r``, so the replicates do not depend on partitioning or row order), evaluated
with the gate's own kernels (:mod:`.kernels`) and bounded by the gate's BCa (:mod:`.bca`, its
acceleration from the same linear-time jackknife), percentile where BCa is undefined; as in
:func:`~modelops.core.stats.interval.paired_interval`, the sample's interval is re-centred on
the gain over every row (here from the histograms) and rescaled by sqrt(sample rows / rows)
(m-out-of-n). The single-machine gate draws multinomial resamples with scipy from its own
stratified subsample: on the same rows the two paths estimate the same interval up to bootstrap
noise, so decisions agree except when a bound lies within that noise of the margin.

Pure functions, no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from modelops.core.metrics import (
    DIRECTION,
    CostModel,
    _average_precision_from_groups,
    _roc_auc_from_groups,
)
from modelops.core.stats.bca import bca_bounds
from modelops.core.stats.decide import DecisionKind, bound_for
from modelops.core.stats.interval import DEFAULT_MAX_ROWS, Interval, PairedBootstrap
from modelops.core.stats.kernels import Fixed, Gain, Kernel
from modelops.core.stats.segments import SEGMENT_RESAMPLES, SegmentReport, _holm_compared

if TYPE_CHECKING:
    import numpy as np

DEFAULT_BINS = 4096
ECE_CHUNKS = 10
REPLICATES = 2000
_MIN_FINITE_SHARE = 0.9
_MASK64 = (1 << 64) - 1
_BATCH_CELLS = 1 << 21  # replicates x sample rows weighed at once


def splitmix64(x: Any) -> np.ndarray:
    """SplitMix64's finaliser on uint64 values (wrapping arithmetic): a stateless mixer."""
    import numpy as np

    z = np.asarray(x, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return np.asarray(z ^ (z >> np.uint64(31)))


def _poisson1_cdf() -> np.ndarray:
    import numpy as np

    k = np.arange(20)
    pmf = np.exp(-1.0) / np.cumprod(np.r_[1.0, np.arange(1, 20)])
    return np.cumsum(pmf[: len(k)])


def poisson_weights(row_hash: Any, replicates: int, seed: int = 0, first: int = 0) -> np.ndarray:
    """Poisson(1) weights, shape (replicates, rows), uint8: row ``i``'s weight in replicate
    ``r`` is the inverse Poisson CDF of a uniform from ``splitmix64(row_hash[i] ^
    splitmix64(seed * 2**32 + r))``, a counter-based generator keyed by the row's hash and the
    replicate number (replicates ``first`` to ``first + replicates - 1``). A row's weights depend
    on nothing else: not on which partition it sits in nor on the other rows."""
    import numpy as np

    h = np.asarray(row_hash, dtype=np.uint64)
    counters = np.arange(first, first + replicates, dtype=np.uint64)
    keys = splitmix64(np.uint64((seed << 32) & _MASK64) + counters)
    mixed = splitmix64(h[None, :] ^ keys[:, None])
    uniforms = (mixed >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))
    return np.searchsorted(_poisson1_cdf(), uniforms, side="right").astype(np.uint8)


def row_hashes(frame: Any, columns: list[str] | tuple[str, ...]) -> np.ndarray:
    """A uint64 hash of each row's ``columns`` (the row id: entity keys and event time), the
    same for the same values whichever process reads them: timestamps count as UTC
    microseconds, so Spark's naive timestamps and pandas' tz-aware ones hash alike, whatever
    their unit; other values by pandas' fixed-key hash."""
    import pandas as pd

    if not columns:
        raise ValueError("a row hash needs at least one id column")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"row id columns {missing} are not in the rows")
    ids = {}
    for column in columns:
        values = frame[column]
        if pd.api.types.is_datetime64_any_dtype(values):
            stamps = values.dt.tz_convert("UTC") if values.dt.tz is not None else values
            values = stamps.dt.tz_localize(None).astype("datetime64[us]").astype("int64")
        ids[column] = values.to_numpy()
    hashed = pd.util.hash_pandas_object(pd.DataFrame(ids), index=False)
    return splitmix64(hashed.to_numpy(dtype="uint64"))


def bin_index(scores: Any, bins: int) -> np.ndarray:
    """The bin of each score in ``bins`` equal bins of [0, 1] (1.0 in the last)."""
    import numpy as np

    s = np.asarray(scores, dtype=np.float64)
    return np.minimum((s * bins).astype(np.int64), bins - 1)


@dataclass
class ScoreHistogram:
    """One model's scores on a set of rows, reduced to what merges (see the module)."""

    threshold: float
    bins: int
    positives: np.ndarray
    negatives: np.ndarray
    score_sum: np.ndarray
    flagged_positives: int = 0
    flagged_negatives: int = 0
    log_loss_sum: float = 0.0
    brier_sum: float = 0.0

    @classmethod
    def of(
        cls, labels: Any, scores: Any, threshold: float, bins: int = DEFAULT_BINS
    ) -> ScoreHistogram:
        """The histogram of these rows. Raises ValueError for labels other than 0/1 or scores
        outside [0, 1] (as the single-machine metrics do)."""
        import numpy as np

        y = np.asarray(labels, dtype=np.int64)
        return cls.grouped(y, scores, threshold, np.zeros(len(y), dtype=np.intp), 1, bins)[0]

    @classmethod
    def grouped(
        cls,
        labels: Any,
        scores: Any,
        threshold: float,
        groups: Any,
        count: int,
        bins: int = DEFAULT_BINS,
    ) -> list[ScoreHistogram]:
        """The histograms of ``count`` groups of rows at once (``groups``: each row's group in
        ``[0, count)``): one pass over the rows whatever the number of groups."""
        import numpy as np

        y = np.asarray(labels, dtype=np.int64)
        s = np.asarray(scores, dtype=np.float64)
        g = np.asarray(groups, dtype=np.intp)
        if y.shape != s.shape or y.ndim != 1 or g.shape != y.shape:
            raise ValueError(f"labels {y.shape} and scores {s.shape} must be 1-d of equal length")
        if len(y) and not ((y == 0) | (y == 1)).all():
            raise ValueError("labels must be 0 or 1")
        if len(s) and not (np.isfinite(s).all() and s.min() >= 0 and s.max() <= 1):
            raise ValueError("scores must be finite probabilities in [0, 1]")
        cell = g * bins + bin_index(s, bins)
        pos = y == 1
        flagged = s >= threshold
        clipped = np.clip(s, 1e-15, 1 - 1e-15)

        def per_cell(weights: Any = None) -> np.ndarray:
            return np.bincount(cell, weights=weights, minlength=count * bins).reshape(count, bins)

        def per_group(weights: Any) -> np.ndarray:
            return np.bincount(g, weights=weights, minlength=count)

        positives = per_cell(pos).astype(np.int64)
        negatives = per_cell().astype(np.int64) - positives
        score_sum = per_cell(s)
        flagged_pos = per_group(flagged & pos).astype(np.int64)
        flagged_neg = per_group(flagged & ~pos).astype(np.int64)
        log_loss = per_group(-np.log(np.where(pos, clipped, 1 - clipped)))
        brier = per_group(np.square(s - y))
        return [
            cls(
                threshold=float(threshold),
                bins=bins,
                positives=positives[i],
                negatives=negatives[i],
                score_sum=score_sum[i],
                flagged_positives=int(flagged_pos[i]),
                flagged_negatives=int(flagged_neg[i]),
                log_loss_sum=float(log_loss[i]),
                brier_sum=float(brier[i]),
            )
            for i in range(count)
        ]

    def merge(self, other: ScoreHistogram) -> ScoreHistogram:
        """The histogram of the union of both row sets."""
        if (self.bins, self.threshold) != (other.bins, other.threshold):
            raise ValueError(
                f"cannot merge histograms of {self.bins} bins at threshold {self.threshold} "
                f"with {other.bins} bins at {other.threshold}"
            )
        return ScoreHistogram(
            self.threshold,
            self.bins,
            self.positives + other.positives,
            self.negatives + other.negatives,
            self.score_sum + other.score_sum,
            self.flagged_positives + other.flagged_positives,
            self.flagged_negatives + other.flagged_negatives,
            self.log_loss_sum + other.log_loss_sum,
            self.brier_sum + other.brier_sum,
        )

    @property
    def rows(self) -> int:
        return int(self.positives.sum() + self.negatives.sum())

    def roc_auc_error_bound(self) -> float:
        """The most the bins' ROC-AUC can differ from the exact one: a positive and a negative
        in the same bin count one half, exactly they count 0, 1/2 or 1, so the error is at most
        half the share of positive-negative pairs that share a bin. NaN without both classes."""
        pos, neg = self.positives.astype("float64"), self.negatives.astype("float64")
        pairs = float(pos.sum() * neg.sum())
        return float((pos * neg).sum() / (2 * pairs)) if pairs else math.nan

    def ece(self) -> float:
        """Equal-count ECE over ``ECE_CHUNKS`` chunks whose cuts fall on bin edges (each chunk
        ends at the first bin where the running count reaches its equal share)."""
        import numpy as np

        n = self.rows
        if n == 0:
            return math.nan
        counts = self.positives + self.negatives
        running = np.cumsum(counts)
        chunks = min(ECE_CHUNKS, n)
        cuts = np.searchsorted(running, np.arange(1, chunks + 1) * n / chunks, side="left")
        ends = np.unique(np.minimum(cuts, self.bins - 1))
        starts = np.r_[0, ends[:-1] + 1]
        gaps = np.add.reduceat(self.score_sum, starts) - np.add.reduceat(self.positives, starts)
        return float(np.abs(gaps).sum() / n)

    def metrics(self, costs: CostModel) -> dict[str, float]:
        """The keys of :func:`~modelops.core.metrics.classification_metrics`: counts, decision
        metrics, cost, log loss and Brier exact; ROC-AUC, PR-AUC and ECE from the bins."""
        pos = self.positives.astype("float64")
        neg = self.negatives.astype("float64")
        n = self.rows
        positives = int(self.positives.sum())
        tp, fp = self.flagged_positives, self.flagged_negatives
        fn, tn = positives - tp, n - positives - fp
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        cost = fn * costs.false_negative + fp * costs.false_positive
        nan = math.nan
        return {
            "rows": float(n),
            "positives": float(positives),
            "positive_rate": positives / n if n else nan,
            "roc_auc": float(_roc_auc_from_groups(pos, neg)),
            "pr_auc": float(_average_precision_from_groups(pos, neg)),
            "log_loss": self.log_loss_sum / n if n else nan,
            "brier": self.brier_sum / n if n else nan,
            "ece": self.ece(),
            "threshold": self.threshold,
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "false_positive_rate": fp / (fp + tn) if fp + tn else 0.0,
            "alert_rate": (tp + fp) / n if n else nan,
            "cost_per_1000": 1000.0 * cost / n if n else nan,
        }


@dataclass
class RowSample:
    """Per class, the ``k`` rows with the smallest row hash: their hashes, labels and each
    model's scores (columns in the order of the models). Merging keeps the ``k`` smallest of
    the union, so the sample of a holdout is the same however it was partitioned."""

    k: int
    hashes: np.ndarray
    labels: np.ndarray
    scores: np.ndarray

    @classmethod
    def of(cls, hashes: Any, labels: Any, scores: Any, k: int = DEFAULT_MAX_ROWS) -> RowSample:
        import numpy as np

        h = np.asarray(hashes, dtype=np.uint64)
        y = np.asarray(labels, dtype=np.int8)
        s = np.asarray(scores, dtype=np.float64).reshape(len(h), -1)
        return cls(k, h, y, s)._kept()

    def _kept(self) -> RowSample:
        import numpy as np

        positives = int(np.count_nonzero(self.labels))
        if max(positives, len(self.labels) - positives) <= self.k:
            return self  # nothing to trim
        keep = []
        for cls_ in (0, 1):
            members = np.flatnonzero(self.labels == cls_)
            if len(members) > self.k:  # the k smallest hashes, unordered: linear time
                members = members[np.argpartition(self.hashes[members], self.k - 1)[: self.k]]
            keep.append(members)
        rows = np.concatenate(keep)
        return RowSample(self.k, self.hashes[rows], self.labels[rows], self.scores[rows])

    def merge(self, other: RowSample) -> RowSample:
        import numpy as np

        if self.k != other.k or self.scores.shape[1] != other.scores.shape[1]:
            raise ValueError("cannot merge row samples of different sizes or models")
        # a class already holding k rows keeps only the other's rows hashed below its largest
        wanted = np.ones(len(other.hashes), dtype=bool)
        for cls_ in (0, 1):
            held = self.hashes[self.labels == cls_]
            if len(held) >= self.k:
                wanted &= (other.labels != cls_) | (other.hashes < held.max())
        return RowSample(
            self.k,
            np.r_[self.hashes, other.hashes[wanted]],
            np.r_[self.labels, other.labels[wanted]],
            np.vstack([self.scores, other.scores[wanted]]),
        )._kept()

    def stratified(self, positives: int, rows: int, max_rows: int) -> np.ndarray:
        """Positions of a subsample of at most ``max_rows`` rows with the holdout's label mix
        (``positives`` of ``rows``), as :func:`~.interval.stratified_subsample` sizes it: the
        smallest hashes of each class, in ascending hash order."""
        import numpy as np

        negatives = rows - positives
        if rows <= max_rows:
            take_pos, take_neg = positives, negatives
        else:
            take_pos = round(max_rows * positives / rows)
            if positives:
                take_pos = min(max(take_pos, 1), positives, max_rows - 1 if negatives else rows)
            take_neg = min(max_rows - take_pos, negatives)
        if take_pos > self.k or take_neg > self.k:
            raise ValueError(f"the sample keeps {self.k} rows per class, {max_rows} asked for")
        chosen = []
        for cls_, take in ((1, take_pos), (0, take_neg)):
            members = np.flatnonzero(self.labels == cls_)
            chosen.append(members[np.argsort(self.hashes[members], kind="stable")][:take])
        picked = np.concatenate(chosen)
        return picked[np.argsort(self.hashes[picked], kind="stable")]


def _sum(histograms: list[ScoreHistogram]) -> ScoreHistogram:
    total = histograms[0]
    for h in histograms[1:]:
        total = total.merge(h)
    return total


def _merge_maps(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for key, value in b.items():
        out[key] = out[key].merge(value) if key in out else value
    return out


@dataclass
class Slice:
    """One set of rows (the holdout, or a segment): a histogram per model and the sample."""

    histograms: dict[str, ScoreHistogram]
    sample: RowSample

    def merge(self, other: Slice) -> Slice:
        histograms = _merge_maps(self.histograms, other.histograms)
        return Slice(histograms, self.sample.merge(other.sample))


@dataclass
class HoldoutStats:
    """The gate's aggregates of a holdout: overall and per ``column=value`` segment."""

    roles: tuple[str, ...]
    overall: Slice
    segments: dict[str, Slice] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        labels: Any,
        scores: dict[str, Any],
        thresholds: dict[str, float],
        hashes: Any,
        segment_keys: dict[str, Any] | None = None,
        *,
        bins: int = DEFAULT_BINS,
        k: int = DEFAULT_MAX_ROWS,
    ) -> HoldoutStats:
        """``scores`` and ``thresholds`` by role; ``segment_keys``: per segment column, each
        row's value as a string (missing values already named)."""
        import numpy as np
        import pandas as pd

        roles = tuple(scores)
        y = np.asarray(labels, dtype=np.int64)
        h = np.asarray(hashes, dtype=np.uint64)
        matrix = np.column_stack([np.asarray(scores[r], dtype=np.float64) for r in roles])

        def sample_of(rows: Any) -> RowSample:
            return RowSample.of(h[rows], y[rows], matrix[rows], k)

        def histograms(groups: Any, count: int) -> list[dict[str, ScoreHistogram]]:
            by_role = {
                role: ScoreHistogram.grouped(y, matrix[:, i], thresholds[role], groups, count, bins)
                for i, role in enumerate(roles)
            }
            return [{role: by_role[role][j] for role in roles} for j in range(count)]

        segments = {}
        whole: dict[str, ScoreHistogram] | None = None
        for column, values in (segment_keys or {}).items():
            codes, uniques = pd.factorize(pd.Series(values, dtype=object), use_na_sentinel=False)
            parts = histograms(codes, len(uniques))
            if whole is None and parts:  # the segments of one column partition the rows
                whole = {role: _sum([p[role] for p in parts]) for role in roles}
            for j, hists in enumerate(parts):
                rows = np.flatnonzero(codes == j)
                segments[f"{column}={uniques[j]}"] = Slice(hists, sample_of(rows))
        if whole is None:
            whole = histograms(np.zeros(len(y), dtype=np.intp), 1)[0]
        return cls(roles, Slice(whole, sample_of(slice(None))), segments)

    def merge(self, other: HoldoutStats) -> HoldoutStats:
        if self.roles != other.roles:
            raise ValueError(f"cannot merge statistics of {self.roles} with {other.roles}")
        segments = _merge_maps(self.segments, other.segments)
        return HoldoutStats(self.roles, self.overall.merge(other.overall), segments)


def poisson_paired(
    metric: str,
    part: Slice,
    roles: tuple[str, str],
    *,
    costs: CostModel,
    level: float = 0.95,
    replicates: int = REPLICATES,
    seed: int = 0,
    max_rows: int = DEFAULT_MAX_ROWS,
) -> PairedBootstrap:
    """The gain of ``roles[0]`` over ``roles[1]`` on ``metric``: estimate from the histograms,
    interval from a Poisson bootstrap of the stratified hash sample (see the module)."""
    return _poisson(metric, part, roles[0], roles[1], costs, (level, replicates, seed, max_rows))


def poisson_metric_interval(
    metric: str,
    part: Slice,
    role: str,
    against: float,
    *,
    costs: CostModel,
    level: float = 0.95,
    replicates: int = REPLICATES,
    seed: int = 0,
    max_rows: int = DEFAULT_MAX_ROWS,
) -> Interval:
    """One model's ``metric`` minus a known value ``against`` (negated for lower-is-better
    metrics), as :func:`~modelops.core.stats.interval.metric_interval` bounds it on rows, here
    from the merged statistics: what the monitor's live-drop judgement reads on Spark."""
    if not math.isfinite(against):
        raise ValueError(f"the value {metric} is compared with must be finite, got {against}")
    bootstrap = (level, replicates, seed, max_rows)
    return _poisson(metric, part, role, float(against), costs, bootstrap).interval


def _poisson(
    metric: str,
    part: Slice,
    role: str,
    reference: str | float,
    costs: CostModel,
    bootstrap: tuple[float, int, int, int],
) -> PairedBootstrap:
    """``role``'s gain over ``reference`` (another role, or a fixed value) on ``metric``."""
    import numpy as np

    level, replicates, seed, max_rows = bootstrap
    sign = DIRECTION[metric]
    c_hist = part.histograms[role]
    r_hist = part.histograms[reference] if isinstance(reference, str) else None
    total, positives = c_hist.rows, int(c_hist.positives.sum())
    estimate = math.nan
    if total:
        c_value = c_hist.metrics(costs)[metric]
        r_value = r_hist.metrics(costs)[metric] if r_hist is not None else reference
        estimate = float(sign * (c_value - float(r_value)))
    rows = part.sample.stratified(positives, total, max_rows)
    used = len(rows)
    method = "Poisson BCa"

    def outcome(low: float, high: float, how: str, reason: str, gains: Any) -> PairedBootstrap:
        interval = Interval(
            metric, estimate, low, high, level, how, replicates, used, total, used < total, reason
        )
        return PairedBootstrap(interval, np.asarray(gains, dtype=np.float64))

    if used < 2:
        return outcome(math.nan, math.nan, method, f"only {used} rows", [])
    if not math.isfinite(estimate):
        return outcome(math.nan, math.nan, method, f"{metric} is undefined (one class)", [])
    order = list(part.histograms)
    y = part.sample.labels[rows].astype(np.int64)
    scores = part.sample.scores[rows]
    candidate = Kernel(metric, y, scores[:, order.index(role)], c_hist.threshold, costs)
    if r_hist is not None:
        other: Kernel | Fixed = Kernel(
            metric, y, scores[:, order.index(str(reference))], r_hist.threshold, costs
        )
    else:
        other = Fixed(float(reference), used)
    statistic = Gain(candidate, other, sign)
    sub_estimate = float(statistic(np.arange(used)))
    batch = max(1, _BATCH_CELLS // used)
    hashes = part.sample.hashes[rows]
    gains = np.concatenate(
        [
            statistic.weighted(poisson_weights(hashes, min(batch, replicates - s), seed, s))
            for s in range(0, replicates, batch)
        ]
    )
    scale = math.sqrt(used / total)

    def rescale(v: Any) -> Any:
        return estimate + (v - sub_estimate) * scale

    finite = gains[np.isfinite(gains)]
    low, high = bca_bounds(gains, sub_estimate, statistic.jackknife(), level)
    if len(finite) == len(gains) and math.isfinite(low) and math.isfinite(high):
        return outcome(rescale(low), rescale(high), method, "", rescale(finite))
    if len(finite) < _MIN_FINITE_SHARE * replicates:
        why = f"{metric} undefined on {len(gains) - len(finite):,} of {replicates:,} replicates"
        return outcome(math.nan, math.nan, method, f"no interval: {why}", [])
    tail = (1 - level) / 2
    low, high = (float(q) for q in np.quantile(finite, [tail, 1 - tail]))
    reason = "BCa undefined; percentile interval of the Poisson replicates"
    return outcome(rescale(low), rescale(high), "Poisson percentile", reason, rescale(finite))


def segment_report(
    stats: HoldoutStats,
    metric: str,
    decision: DecisionKind,
    margin: float,
    *,
    costs: CostModel,
    alpha: float = 0.05,
    min_positives: int = 30,
    min_rows: int = 100,
    replicates: int = SEGMENT_RESAMPLES,
    level: float = 0.95,
    seed: int = 0,
    max_rows: int = DEFAULT_MAX_ROWS,
    roles: tuple[str, str] | None = None,
) -> SegmentReport:
    """:func:`~modelops.core.stats.segments.segment_decisions` on the merged statistics: the
    same screening (on every row's counts), the same degradation test of each segment's
    replicates against the bound, Holm-corrected the same way. ``roles``: (candidate,
    reference), by default the first two of ``stats``."""
    if replicates < 1000:
        raise ValueError(f"segments need at least 1,000 resamples, got {replicates}")
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    bound = bound_for(decision, margin)
    roles = roles or (stats.roles[0], stats.roles[1])
    skipped: dict[str, str] = {}
    runs: dict[str, PairedBootstrap] = {}
    for key, part in stats.segments.items():
        hist = part.histograms[roles[0]]
        rows, positives = hist.rows, int(hist.positives.sum())
        negatives = rows - positives
        if rows < min_rows:
            skipped[key] = f"{rows:,} rows, fewer than {min_rows:,}"
            continue
        if min(positives, negatives) < min_positives:
            skipped[key] = (
                f"{positives:,} positive and {negatives:,} negative rows, fewer than "
                f"{min_positives:,} of one class"
            )
            continue
        runs[key] = poisson_paired(
            metric,
            part,
            roles,
            costs=costs,
            level=level,
            replicates=replicates,
            seed=seed,
            max_rows=max_rows,
        )
    compared, failed = _holm_compared(runs, bound, alpha)
    return SegmentReport(
        metric, decision, margin, bound, alpha, replicates, compared, skipped, failed
    )
